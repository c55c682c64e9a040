-- Version 5: the inbox (`orderbatch inbox`), and the catalog's version; the
-- same tables as SQLite's version 5 (see there).
--
-- A claim is on a file's content (its sha256) and names the file. Times are
-- Unix milliseconds of the server's clock, so that hosts whose clocks differ
-- agree on when a lease ends. A claim is taken with FOR UPDATE SKIP LOCKED,
-- and a run's commit and the move of its file hold the row (FOR UPDATE) and
-- check the holder's token: a worker whose claim was taken over commits and
-- moves nothing.
CREATE TABLE IF NOT EXISTS inbox_claims (
    sha256      text PRIMARY KEY,
    name        text NOT NULL,
    state       text NOT NULL CHECK (state IN ('claimed', 'waiting', 'done', 'failed')),
    token       text,
    host        text,
    pid         bigint,
    lease_until bigint,
    attempts    integer NOT NULL DEFAULT 0,
    next_try_at bigint NOT NULL DEFAULT 0,
    message     text,
    moved_to    text,
    updated_at  bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS inbox_attempts (
    token       text PRIMARY KEY,
    sha256      text NOT NULL,
    name        text NOT NULL,
    attempt     integer NOT NULL,
    host        text NOT NULL,
    pid         bigint NOT NULL,
    started_at  bigint NOT NULL,
    ended_at    bigint,
    outcome     text CHECK (outcome IN ('done', 'duplicate', 'failed', 'retry', 'stopped', 'lapsed', 'vanished')),
    run_id      bigint,
    next_try_at bigint,
    message     text
);
CREATE INDEX IF NOT EXISTS inbox_attempts_sha256 ON inbox_attempts (sha256, started_at);

CREATE INDEX IF NOT EXISTS run_inputs_sha256 ON run_inputs (sha256);

CREATE TABLE IF NOT EXISTS catalog_version (version bigint NOT NULL);
INSERT INTO catalog_version (version) SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM catalog_version);
