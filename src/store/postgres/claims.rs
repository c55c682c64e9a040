//! Inbox claims on PostgreSQL: workers on any number of hosts ask at once.
//! A claim is read and changed in one short transaction holding its row
//! (FOR UPDATE SKIP LOCKED: a row another worker holds right now is
//! someone else's for the moment, never waited for). Times are the server's
//! clock in Unix milliseconds, so hosts whose clocks differ agree on when a
//! lease ends. A claim whose lease has ended is no longer this worker's,
//! whether or not another took it over yet: neither its renewal nor its
//! fence succeeds then.

use std::time::Duration;

use postgres::{Client, GenericClient, Row};

use super::super::claims::{ms, new_token, ClaimRow, Take};
use super::super::{
    AttemptOutcome, ClaimEnd, ClaimResult, ClaimState, ClaimToken, Claimant, InboxFile, Release,
};

/// The server's clock now, in Unix milliseconds (not the transaction's start).
const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

type PgResult<T> = std::result::Result<T, postgres::Error>;

fn claim_row(r: &Row) -> ClaimRow {
    let state: String = r.get(0);
    ClaimRow {
        // The CHECK constraint allows no other value.
        state: ClaimState::parse(&state).unwrap_or(ClaimState::Waiting),
        token: r.get(1),
        host: r.get(2),
        pid: r.get(3),
        lease_until: r.get(4),
        attempts: i64::from(r.get::<_, i32>(5)),
        next_try_at: r.get(6),
        message: r.get(7),
    }
}

/// The claim on a file's content, as [`decide`] rules (see `InboxClaims::claim_file`).
pub(super) fn claim(
    client: &mut Client,
    file: InboxFile<'_>,
    who: Claimant<'_>,
) -> PgResult<ClaimResult> {
    let mut tx = client.transaction()?;
    let now: i64 = tx.query_one(&format!("SELECT {NOW_MS}"), &[])?.get(0);
    // The row exists (free) before it is held: the first asker creates it.
    tx.execute(
        "INSERT INTO inbox_claims (sha256, name, state, attempts, next_try_at, updated_at)
         VALUES ($1, $2, $3, 0, 0, $4) ON CONFLICT (sha256) DO NOTHING",
        &[
            &file.sha256,
            &file.name,
            &ClaimState::Waiting.as_str(),
            &now,
        ],
    )?;
    let rows = tx.query(
        "SELECT state, token, host, pid, lease_until, attempts, next_try_at, message
         FROM inbox_claims WHERE sha256 = $1 FOR UPDATE SKIP LOCKED",
        &[&file.sha256],
    )?;
    let Some(row) = rows.first() else {
        // Another worker is changing it at this moment.
        return Ok(ClaimResult::Held { for_ms: 0 });
    };
    let was = claim_row(row).state;
    let take = match Take::of(Some(&claim_row(row)), now) {
        Ok(take) => take,
        Err(refused) => return Ok(refused),
    };
    let (attempts, message) = (take.attempts, &take.message);
    let token = new_token();
    let pid = i64::from(who.pid);
    tx.execute(
        "UPDATE inbox_claims SET name = $2, state = $3, token = $4, host = $5, pid = $6,
             lease_until = $7, attempts = $8, next_try_at = 0, message = $9, updated_at = $10
         WHERE sha256 = $1",
        &[
            &file.sha256,
            &file.name,
            &ClaimState::Claimed.as_str(),
            &token,
            &who.host,
            &pid,
            &now.saturating_add(ms(who.lease)),
            &(attempts as i32),
            &message,
            &now,
        ],
    )?;
    if let Some((old, _)) = &take.lapsed {
        tx.execute(
            "UPDATE inbox_attempts SET outcome = $2, ended_at = $3, message = $4
             WHERE token = $1 AND outcome IS NULL",
            &[old, &AttemptOutcome::Lapsed.as_str(), &now, &message],
        )?;
    }
    tx.execute(
        "INSERT INTO inbox_attempts (token, sha256, name, attempt, host, pid, started_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &token,
            &file.sha256,
            &file.name,
            &(attempts as i32 + 1),
            &who.host,
            &pid,
            &now,
        ],
    )?;
    tx.commit()?;
    Ok(take.granted(file, token, was))
}

pub(super) fn renew(client: &mut Client, claim: &ClaimToken, lease: Duration) -> PgResult<bool> {
    let n = client.execute(
        &format!(
            "UPDATE inbox_claims SET lease_until = {NOW_MS} + $3, updated_at = {NOW_MS}
             WHERE sha256 = $1 AND token = $2 AND state = $4 AND lease_until > {NOW_MS}"
        ),
        &[
            &claim.sha256,
            &claim.token,
            &ms(lease),
            &ClaimState::Claimed.as_str(),
        ],
    )?;
    Ok(n == 1)
}

pub(super) fn release(
    client: &mut Client,
    claim: &ClaimToken,
    release: Release<'_>,
) -> PgResult<bool> {
    let mut tx = client.transaction()?;
    let now: i64 = tx.query_one(&format!("SELECT {NOW_MS}"), &[])?.get(0);
    let next = now.saturating_add(release.delay_ms());
    let n = tx.execute(
        "UPDATE inbox_claims SET state = $3, token = NULL, lease_until = NULL,
             attempts = attempts + $4, next_try_at = $5, message = coalesce($6, message), updated_at = $7
         WHERE sha256 = $1 AND token = $2",
        &[
            &claim.sha256,
            &claim.token,
            &release.state().as_str(),
            &(release.counted() as i32),
            &next,
            &release.message(),
            &now,
        ],
    )?;
    if n == 1 {
        let next_try = matches!(release, Release::Retry { .. }).then_some(next);
        tx.execute(
            "UPDATE inbox_attempts SET outcome = $2, ended_at = $3, next_try_at = $4, message = $5
             WHERE token = $1",
            &[
                &claim.token,
                &release.outcome().as_str(),
                &now,
                &next_try,
                &release.message(),
            ],
        )?;
    }
    tx.commit()?;
    Ok(n == 1)
}

pub(super) fn fence(
    c: &mut impl GenericClient,
    claim: &ClaimToken,
    run_id: Option<i64>,
) -> PgResult<bool> {
    let held = !c
        .query(
            &format!(
                "SELECT 1 FROM inbox_claims
                 WHERE sha256 = $1 AND token = $2 AND state = $3 AND lease_until > {NOW_MS}
                 FOR UPDATE"
            ),
            &[&claim.sha256, &claim.token, &ClaimState::Claimed.as_str()],
        )?
        .is_empty();
    if held {
        if let Some(run) = run_id {
            c.execute(
                "UPDATE inbox_attempts SET run_id = $2 WHERE token = $1",
                &[&claim.token, &run],
            )?;
        }
    }
    Ok(held)
}

pub(super) fn end(
    c: &mut impl GenericClient,
    claim: &ClaimToken,
    end: ClaimEnd<'_>,
) -> PgResult<()> {
    c.execute(
        &format!(
            "UPDATE inbox_claims SET state = $3, token = NULL, lease_until = NULL, moved_to = $4,
                 message = $5, updated_at = {NOW_MS}
             WHERE sha256 = $1 AND token = $2"
        ),
        &[
            &claim.sha256,
            &claim.token,
            &end.state().as_str(),
            &end.moved_to,
            &end.message,
        ],
    )?;
    c.execute(
        &format!(
            "UPDATE inbox_attempts SET outcome = $2, ended_at = {NOW_MS}, run_id = coalesce($3, run_id),
                 message = $4
             WHERE token = $1"
        ),
        &[
            &claim.token,
            &end.outcome.as_str(),
            &end.run_id,
            &end.message,
        ],
    )?;
    Ok(())
}

pub(super) fn processed_by(client: &mut Client, sha256: &str) -> PgResult<Option<i64>> {
    let row = client.query_one(
        "SELECT min(id) FROM runs WHERE status = 'completed' AND (
             id IN (SELECT run_id FROM run_inputs WHERE sha256 = $1)
             OR id IN (SELECT run_id FROM inbox_attempts WHERE sha256 = $1 AND run_id IS NOT NULL))",
        &[&sha256],
    )?;
    Ok(row.get(0))
}
