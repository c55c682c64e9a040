-- orderbatch SQLite schema, version 5: the inbox (`orderbatch inbox`), and
-- the catalog's version.
--
-- A claim is on a file's content (its sha256) and names the file: files of
-- the same content share it, so they are never run at once. Times are Unix
-- milliseconds. A worker holds a claim while `lease_until` is ahead and its
-- `token` is the one in the row; another worker takes it over once the lease
-- has ended. `attempts` counts the tries that ended for a temporary problem
-- or lapsed; no claim is granted before `next_try_at`.
CREATE TABLE inbox_claims (
    sha256      TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('claimed', 'waiting', 'done', 'failed')),
    token       TEXT,                 -- the holder's random token, while claimed
    host        TEXT,                 -- the last holder
    pid         INTEGER,
    lease_until INTEGER,
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_try_at INTEGER NOT NULL DEFAULT 0,
    message     TEXT,                 -- the last attempt's problem
    moved_to    TEXT,                 -- where the file went (done, failed)
    updated_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- Every attempt at a claimed file, by its claim's token: who, when, how it
-- ended (NULL while it goes on), the run it committed, and the next try.
CREATE TABLE inbox_attempts (
    token       TEXT PRIMARY KEY,
    sha256      TEXT NOT NULL,
    name        TEXT NOT NULL,
    attempt     INTEGER NOT NULL,     -- 1 for the first try of the file
    host        TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    outcome     TEXT CHECK (outcome IN ('done', 'duplicate', 'failed', 'retry', 'stopped', 'lapsed', 'vanished')),
    run_id      INTEGER,              -- recorded inside the run's own transaction
    next_try_at INTEGER,
    message     TEXT
) WITHOUT ROWID;
CREATE INDEX inbox_attempts_sha256 ON inbox_attempts (sha256, started_at);

-- Whether a completed run already processed a content.
CREATE INDEX run_inputs_sha256 ON run_inputs (sha256);

-- Bumped by every catalog load (`inventory load`, `--catalog`): a worker
-- that keeps the catalog in memory between files reloads it when it changed.
CREATE TABLE catalog_version (version INTEGER NOT NULL);
INSERT INTO catalog_version (version) VALUES (1);
