//! Inbox claims on SQLite: every write runs inside a transaction that holds
//! the whole database (BEGIN IMMEDIATE), so reading a claim and changing it
//! are one step for every worker of the host. Times are the host's clock in
//! Unix milliseconds.
//!
//! A run holds the database for its whole transaction, so a heartbeat cannot
//! renew its claim meanwhile, and no other worker can take the claim over
//! either: the fence checks the holder's token, not the lease, and a renewal
//! extends a lease that ended while the database was held, as long as no
//! worker took the claim over since.

use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::super::claims::{ms, new_token, ClaimRow, Take};
use super::super::{
    AttemptOutcome, ClaimEnd, ClaimResult, ClaimState, ClaimToken, Claimant, InboxFile, Release,
};

const NOW_MS: &str = "SELECT CAST(unixepoch('subsec') * 1000 AS INTEGER)";

fn now(c: &Connection) -> rusqlite::Result<i64> {
    c.query_row(NOW_MS, [], |r| r.get(0))
}

fn claim_row(r: &Row<'_>) -> rusqlite::Result<ClaimRow> {
    let state: String = r.get(0)?;
    Ok(ClaimRow {
        // The CHECK constraint allows no other value.
        state: ClaimState::parse(&state).unwrap_or(ClaimState::Waiting),
        token: r.get(1)?,
        host: r.get(2)?,
        pid: r.get(3)?,
        lease_until: r.get(4)?,
        attempts: r.get(5)?,
        next_try_at: r.get(6)?,
        message: r.get(7)?,
    })
}

/// The claim on a file's content, as [`decide`] rules (see `InboxClaims::claim_file`).
pub(super) fn claim(
    c: &Connection,
    file: InboxFile<'_>,
    who: Claimant<'_>,
) -> rusqlite::Result<ClaimResult> {
    let now = now(c)?;
    let row = c
        .query_row(
            "SELECT state, token, host, pid, lease_until, attempts, next_try_at, message
             FROM inbox_claims WHERE sha256 = ?1",
            [file.sha256],
            claim_row,
        )
        .optional()?;
    let was = row.as_ref().map_or(ClaimState::Waiting, |r| r.state);
    let take = match Take::of(row.as_ref(), now) {
        Ok(take) => take,
        Err(refused) => return Ok(refused),
    };
    let (attempts, message) = (take.attempts, &take.message);
    let token = new_token();
    c.execute(
        "INSERT INTO inbox_claims (sha256, name, state, token, host, pid, lease_until, attempts,
             next_try_at, message, moved_to, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9, NULL, ?10)
         ON CONFLICT (sha256) DO UPDATE SET name = excluded.name, state = excluded.state,
             token = excluded.token, host = excluded.host, pid = excluded.pid,
             lease_until = excluded.lease_until, attempts = excluded.attempts, next_try_at = 0,
             message = excluded.message, updated_at = excluded.updated_at",
        params![
            file.sha256,
            file.name,
            ClaimState::Claimed.as_str(),
            token,
            who.host,
            who.pid,
            now.saturating_add(ms(who.lease)),
            attempts,
            message,
            now
        ],
    )?;
    if let Some((old, _)) = &take.lapsed {
        c.execute(
            "UPDATE inbox_attempts SET outcome = ?2, ended_at = ?3, message = ?4
             WHERE token = ?1 AND outcome IS NULL",
            params![old, AttemptOutcome::Lapsed.as_str(), now, message],
        )?;
    }
    c.execute(
        "INSERT INTO inbox_attempts (token, sha256, name, attempt, host, pid, started_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            token,
            file.sha256,
            file.name,
            attempts + 1,
            who.host,
            who.pid,
            now
        ],
    )?;
    Ok(take.granted(file, token, was))
}

pub(super) fn renew(c: &Connection, claim: &ClaimToken, lease: Duration) -> rusqlite::Result<bool> {
    let now = now(c)?;
    let n = c.execute(
        "UPDATE inbox_claims SET lease_until = ?3, updated_at = ?4
         WHERE sha256 = ?1 AND token = ?2 AND state = ?5",
        params![
            claim.sha256,
            claim.token,
            now.saturating_add(ms(lease)),
            now,
            ClaimState::Claimed.as_str()
        ],
    )?;
    Ok(n == 1)
}

pub(super) fn release(
    c: &Connection,
    claim: &ClaimToken,
    release: Release<'_>,
) -> rusqlite::Result<bool> {
    let now = now(c)?;
    let next = now.saturating_add(release.delay_ms());
    let n = c.execute(
        "UPDATE inbox_claims SET state = ?3, token = NULL, lease_until = NULL,
             attempts = attempts + ?4, next_try_at = ?5, message = coalesce(?6, message), updated_at = ?7
         WHERE sha256 = ?1 AND token = ?2",
        params![
            claim.sha256,
            claim.token,
            release.state().as_str(),
            release.counted(),
            next,
            release.message(),
            now
        ],
    )?;
    if n == 1 {
        let next_try = matches!(release, Release::Retry { .. }).then_some(next);
        c.execute(
            "UPDATE inbox_attempts SET outcome = ?2, ended_at = ?3, next_try_at = ?4, message = ?5
             WHERE token = ?1",
            params![
                claim.token,
                release.outcome().as_str(),
                now,
                next_try,
                release.message()
            ],
        )?;
    }
    Ok(n == 1)
}

pub(super) fn fence(
    c: &Connection,
    claim: &ClaimToken,
    run_id: Option<i64>,
) -> rusqlite::Result<bool> {
    let held = c
        .query_row(
            "SELECT 1 FROM inbox_claims WHERE sha256 = ?1 AND token = ?2 AND state = ?3",
            params![claim.sha256, claim.token, ClaimState::Claimed.as_str()],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if held {
        if let Some(run) = run_id {
            c.execute(
                "UPDATE inbox_attempts SET run_id = ?2 WHERE token = ?1",
                params![claim.token, run],
            )?;
        }
    }
    Ok(held)
}

pub(super) fn end(c: &Connection, claim: &ClaimToken, end: ClaimEnd<'_>) -> rusqlite::Result<()> {
    let now = now(c)?;
    c.execute(
        "UPDATE inbox_claims SET state = ?3, token = NULL, lease_until = NULL, moved_to = ?4,
             message = ?5, updated_at = ?6
         WHERE sha256 = ?1 AND token = ?2",
        params![
            claim.sha256,
            claim.token,
            end.state().as_str(),
            end.moved_to,
            end.message,
            now
        ],
    )?;
    c.execute(
        "UPDATE inbox_attempts SET outcome = ?2, ended_at = ?3, run_id = coalesce(?4, run_id),
             message = ?5
         WHERE token = ?1",
        params![
            claim.token,
            end.outcome.as_str(),
            now,
            end.run_id,
            end.message
        ],
    )?;
    Ok(())
}

pub(super) fn processed_by(c: &Connection, sha256: &str) -> rusqlite::Result<Option<i64>> {
    c.query_row(
        "SELECT min(id) FROM runs WHERE status = 'completed' AND (
             id IN (SELECT run_id FROM run_inputs WHERE sha256 = ?1)
             OR id IN (SELECT run_id FROM inbox_attempts WHERE sha256 = ?1 AND run_id IS NOT NULL))",
        [sha256],
        |r| r.get(0),
    )
}
