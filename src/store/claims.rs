//! Inbox claims, as the store keeps them (schema v5, `inbox_claims` and
//! `inbox_attempts`): which worker holds which file of an inbox, under a
//! lease, and what became of every attempt. The types, and the one rule
//! both backends apply when a worker asks for a file ([`decide`]); each
//! backend reads and writes the rows in its own short transactions.
//!
//! A claim is on a file's content (its sha256), naming the file: two files
//! of the same content share one claim, so they are never run at once.
//! Times are Unix milliseconds of the database's clock (PostgreSQL's, so
//! that hosts whose clocks differ agree on when a lease ends; on SQLite the
//! host's, the only one there is).

use std::io::Read;
use std::time::Duration;

/// A file of an inbox, as its claim names it.
#[derive(Debug, Clone, Copy)]
pub struct InboxFile<'a> {
    /// Its name in the inbox directory.
    pub name: &'a str,
    /// Hex SHA-256 of its bytes.
    pub sha256: &'a str,
}

/// The worker that asks: where it runs, and how long its lease lasts.
#[derive(Debug, Clone, Copy)]
pub struct Claimant<'a> {
    pub host: &'a str,
    pub pid: u32,
    pub lease: Duration,
}

/// A claim this worker holds: the content it is on, and the random token
/// that fences it (a claim taken over has another token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimToken {
    pub sha256: String,
    pub token: String,
}

/// The state of a claim row, as `inbox_claims.state` records it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::EnumString, strum::VariantArray,
)]
#[strum(serialize_all = "snake_case")]
pub enum ClaimState {
    /// A worker holds it until its lease ends.
    Claimed,
    /// Free to take, from `next_try_at` on.
    Waiting,
    /// The file was moved to the done directory.
    Done,
    /// The file was moved to the failed directory.
    Failed,
}

impl ClaimState {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn parse(s: &str) -> Option<ClaimState> {
        s.parse().ok()
    }
}

/// How an attempt ended, as `inbox_attempts.outcome` records it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::EnumString, strum::VariantArray,
)]
#[strum(serialize_all = "snake_case")]
pub enum AttemptOutcome {
    /// Its run committed (or a dry run ended); the file went to done.
    Done,
    /// A completed run had processed the same content: done without a run.
    Duplicate,
    /// The file went to failed.
    Failed,
    /// A temporary problem: tried again after a delay.
    Retry,
    /// Stopped by the operator (a signal): not counted.
    Stopped,
    /// Its worker's lease ended and another worker took the file over.
    Lapsed,
    /// The file went away (or changed) once claimed.
    Vanished,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The worker whose lease ran out, when a claim takes a file over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lapsed {
    pub host: String,
    pub pid: i64,
}

/// A claim granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub claim: ClaimToken,
    /// Attempts counted before this one (those that ended for a temporary
    /// problem, and lapsed ones).
    pub attempts: u32,
    /// Set when the file was taken over from a worker whose lease ended.
    pub took_over: Option<Lapsed>,
    /// The last attempt's message, if any.
    pub message: Option<String>,
    /// The claim's state before it was granted (for [`Release::Vanished`]).
    pub was: ClaimState,
}

/// What asking for a file's claim came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimResult {
    Claimed(Claimed),
    /// Another worker holds it; its lease ends in this many milliseconds
    /// (0: the row is being changed right now).
    Held {
        for_ms: i64,
    },
    /// An earlier attempt's delay has not passed: the next try is in this
    /// many milliseconds.
    Later {
        in_ms: i64,
    },
}

/// How a claim ends with the file left in the inbox.
#[derive(Debug, Clone, Copy)]
pub enum Release<'a> {
    /// A temporary problem: counted, and free again after `delay`.
    Retry { delay: Duration, message: &'a str },
    /// Stopped by the operator: not counted, free at once.
    Stopped,
    /// The file went away or changed once claimed (another worker moved
    /// it meanwhile): not counted, the claim back as it was.
    Vanished { was: ClaimState },
}

impl Release<'_> {
    pub fn outcome(&self) -> AttemptOutcome {
        match self {
            Release::Retry { .. } => AttemptOutcome::Retry,
            Release::Stopped => AttemptOutcome::Stopped,
            Release::Vanished { .. } => AttemptOutcome::Vanished,
        }
    }

    /// How much it adds to the claim's attempt count.
    pub fn counted(&self) -> i64 {
        i64::from(matches!(self, Release::Retry { .. }))
    }

    /// The state the claim is left in.
    pub fn state(&self) -> ClaimState {
        match self {
            Release::Vanished { was } => *was,
            _ => ClaimState::Waiting,
        }
    }

    /// Milliseconds before the file may be claimed again.
    pub fn delay_ms(&self) -> i64 {
        match self {
            Release::Retry { delay, .. } => i64::try_from(delay.as_millis()).unwrap_or(i64::MAX),
            _ => 0,
        }
    }

    pub fn message(&self) -> Option<&str> {
        match self {
            Release::Retry { message, .. } => Some(message),
            _ => None,
        }
    }
}

/// How a claim ends with the file moved out of the inbox.
#[derive(Debug, Clone, Copy)]
pub struct ClaimEnd<'a> {
    /// Done, Duplicate or Failed.
    pub outcome: AttemptOutcome,
    /// The run that processed the content (its own, or an earlier one).
    pub run_id: Option<i64>,
    /// Where the file went (its path).
    pub moved_to: &'a str,
    pub message: Option<&'a str>,
}

impl ClaimEnd<'_> {
    pub fn state(&self) -> ClaimState {
        match self.outcome {
            AttemptOutcome::Failed => ClaimState::Failed,
            _ => ClaimState::Done,
        }
    }
}

/// A claim row as [`decide`] needs it.
#[derive(Debug, Clone)]
pub(crate) struct ClaimRow {
    pub state: ClaimState,
    pub token: Option<String>,
    pub host: Option<String>,
    pub pid: Option<i64>,
    pub lease_until: Option<i64>,
    pub attempts: i64,
    pub next_try_at: i64,
    pub message: Option<String>,
}

/// What a claim request does to an existing row, at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    Take(Take),
    Refuse(ClaimResult),
}

/// A claim to take: with this many attempts counted before, the last
/// message, and the token of the lapsed attempt it takes over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Take {
    pub attempts: i64,
    pub lapsed: Option<(String, Lapsed)>,
    pub message: Option<String>,
}

impl Take {
    /// The claim to take on a file's content whose row is `row` (none: a
    /// content never claimed, taken with nothing counted), or the answer
    /// that refuses it.
    pub(crate) fn of(row: Option<&ClaimRow>, now: i64) -> Result<Take, ClaimResult> {
        match row.map(|r| decide(r, now)) {
            None => Ok(Take::default()),
            Some(Decision::Take(take)) => Ok(take),
            Some(Decision::Refuse(refused)) => Err(refused),
        }
    }

    /// The answer to the worker once its claim is written under `token`;
    /// `was`: the row's state before.
    pub(crate) fn granted(
        self,
        file: InboxFile<'_>,
        token: String,
        was: ClaimState,
    ) -> ClaimResult {
        ClaimResult::Claimed(Claimed {
            claim: ClaimToken {
                sha256: file.sha256.to_string(),
                token,
            },
            attempts: u32::try_from(self.attempts).unwrap_or(u32::MAX),
            took_over: self.lapsed.map(|(_, who)| who),
            message: self.message,
            was,
        })
    }
}

/// A lease in milliseconds, as the claim rows count time.
pub(crate) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The one rule of claiming, the same on every backend: a live lease is
/// respected; a lapsed one is taken over and its attempt counted; a
/// waiting claim is free once its delay has passed; a claim whose file was
/// moved away (done, failed) is free again for a file of that content that
/// came since, which starts with no attempts counted.
pub(crate) fn decide(row: &ClaimRow, now: i64) -> Decision {
    match row.state {
        ClaimState::Claimed => match row.lease_until {
            Some(until) if until > now => Decision::Refuse(ClaimResult::Held {
                for_ms: until - now,
            }),
            _ => {
                let who = Lapsed {
                    host: row.host.clone().unwrap_or_default(),
                    pid: row.pid.unwrap_or_default(),
                };
                let message = format!(
                    "the worker on {} (pid {}) did not finish it: its lease ended (killed, or cut off from the database)",
                    who.host, who.pid
                );
                Decision::Take(Take {
                    attempts: row.attempts + 1,
                    lapsed: row.token.clone().map(|t| (t, who)),
                    message: Some(message),
                })
            }
        },
        ClaimState::Waiting if row.next_try_at > now => Decision::Refuse(ClaimResult::Later {
            in_ms: row.next_try_at - now,
        }),
        ClaimState::Waiting => Decision::Take(Take {
            attempts: row.attempts,
            lapsed: None,
            message: row.message.clone(),
        }),
        ClaimState::Done | ClaimState::Failed => Decision::Take(Take::default()),
    }
}

/// A new random token (128 bits, hex) for a claim.
pub(crate) fn new_token() -> String {
    let mut bytes = [0u8; 16];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if random.is_err() {
        // No /dev/urandom (a bare chroot): the time, the process and a
        // counter still make it unique among workers, which is all a fence needs.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        bytes[..8].copy_from_slice(&super::seed().to_le_bytes());
        bytes[8..].copy_from_slice(&n.to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::VariantArray;

    /// The names the schema's CHECK constraints allow, each read back.
    #[test]
    fn claim_states_and_outcomes_keep_their_stored_names() {
        let states: Vec<&str> = ClaimState::VARIANTS.iter().map(|s| s.as_str()).collect();
        assert_eq!(states, ["claimed", "waiting", "done", "failed"]);
        for s in ClaimState::VARIANTS {
            assert_eq!(ClaimState::parse(s.as_str()), Some(*s));
        }
        assert_eq!(ClaimState::parse("Claimed"), None);
        assert_eq!(ClaimState::parse("lapsed"), None);
        let outcomes: Vec<&str> = AttemptOutcome::VARIANTS
            .iter()
            .map(|o| o.as_str())
            .collect();
        assert_eq!(
            outcomes,
            [
                "done",
                "duplicate",
                "failed",
                "retry",
                "stopped",
                "lapsed",
                "vanished"
            ]
        );
        for o in AttemptOutcome::VARIANTS {
            assert_eq!(o.as_str().parse::<AttemptOutcome>(), Ok(*o));
        }
        assert!("waiting".parse::<AttemptOutcome>().is_err());
    }

    fn row(state: ClaimState) -> ClaimRow {
        ClaimRow {
            state,
            token: Some("t1".into()),
            host: Some("h".into()),
            pid: Some(7),
            lease_until: Some(1_000),
            attempts: 2,
            next_try_at: 500,
            message: None,
        }
    }

    #[test]
    fn a_live_lease_is_respected_and_a_lapsed_one_taken_over_and_counted() {
        let r = row(ClaimState::Claimed);
        assert_eq!(
            decide(&r, 400),
            Decision::Refuse(ClaimResult::Held { for_ms: 600 })
        );
        let Decision::Take(Take {
            attempts,
            lapsed,
            message,
        }) = decide(&r, 1_000)
        else {
            panic!("a lapsed lease is taken over")
        };
        assert_eq!(attempts, 3);
        let who = Lapsed {
            host: "h".into(),
            pid: 7,
        };
        assert_eq!(lapsed, Some(("t1".into(), who)));
        assert!(message.unwrap().contains("on h (pid 7)"));
    }

    #[test]
    fn a_waiting_claim_is_free_after_its_delay_and_a_moved_one_starts_afresh() {
        let r = row(ClaimState::Waiting);
        assert_eq!(
            decide(&r, 499),
            Decision::Refuse(ClaimResult::Later { in_ms: 1 })
        );
        assert_eq!(
            decide(&r, 500),
            Decision::Take(Take {
                attempts: 2,
                lapsed: None,
                message: None
            })
        );
        for s in [ClaimState::Done, ClaimState::Failed] {
            assert_eq!(decide(&row(s), 0), Decision::Take(Take::default()));
        }
        assert_eq!(Take::of(None, 0), Ok(Take::default()), "never claimed");
    }

    #[test]
    fn tokens_differ_and_states_read_back() {
        assert_ne!(new_token(), new_token());
        assert_eq!(new_token().len(), 32);
        for s in ["claimed", "waiting", "done", "failed"] {
            assert_eq!(ClaimState::parse(s).map(ClaimState::as_str), Some(s));
        }
        assert_eq!(ClaimState::parse("x"), None);
    }
}
