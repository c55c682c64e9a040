//! Child processes and database sessions for the concurrency and kill tests.
//! Every child is bounded: it is SIGKILLed and reaped when its handle is
//! dropped (a failing assertion included), and every wait has a deadline.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::Env;

/// How long any one wait of these tests may take before it counts as a hang.
pub const HANG: Duration = Duration::from_secs(120);

/// A spawned child, SIGKILLed and reaped when dropped.
pub struct Kid {
    child: Child,
    what: String,
    status: Option<ExitStatus>,
}

impl Kid {
    pub fn spawn(cmd: &mut Command, what: &str) -> Kid {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Kid {
            child,
            what: what.to_string(),
            status: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn take_stdin(&mut self) -> ChildStdin {
        self.child.stdin.take().expect("stdin piped")
    }

    pub fn take_stdout(&mut self) -> std::process::ChildStdout {
        self.child.stdout.take().expect("stdout piped")
    }

    pub fn take_stderr(&mut self) -> std::process::ChildStderr {
        self.child.stderr.take().expect("stderr piped")
    }

    /// The exit status, when it has ended.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status
    }

    /// Waits for the child to end; after `limit` it is killed and the test fails.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.try_status() {
                return s;
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!("{} did not end within {limit:?}; killed", self.what);
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILL now (a no-op when it has ended already), then reap.
    pub fn kill(&mut self) -> ExitStatus {
        if let Some(s) = self.try_status() {
            return s;
        }
        let _ = self.child.kill();
        let s = self.child.wait().expect("wait after SIGKILL");
        self.status = Some(s);
        s
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `probe` every few milliseconds until it gives a value; fails the
/// test after [`HANG`], naming `what` it waited for.
pub fn poll<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + HANG;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "waited {HANG:?} for {what}; giving up"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// Writes the first `upto` bytes of `data` into a child's stdin from a
/// thread, then closes it (`close`) or keeps it open.
pub struct Feeder {
    handle: thread::JoinHandle<std::io::Result<Option<ChildStdin>>>,
}

impl Feeder {
    pub fn start(mut stdin: ChildStdin, data: Arc<Vec<u8>>, upto: usize, close: bool) -> Feeder {
        Feeder {
            handle: thread::spawn(move || {
                stdin.write_all(&data[..upto])?;
                stdin.flush()?;
                Ok((!close).then_some(stdin))
            }),
        }
    }

    /// Waits for the writes to be done: the child has then read all but what
    /// the pipe holds (64 KiB at most). Gives the pipe back when still open.
    pub fn finish(self) -> Option<ChildStdin> {
        let deadline = Instant::now() + HANG;
        while !self.handle.is_finished() {
            assert!(
                Instant::now() < deadline,
                "the child did not read its input within {HANG:?}"
            );
            thread::sleep(Duration::from_millis(2));
        }
        self.handle
            .join()
            .expect("feeder thread")
            .expect("writing the child's input")
    }

    /// Once the child is gone: the writes end (with EPIPE if it had not read
    /// everything), whatever became of them.
    pub fn abandon(self) {
        let _ = self.handle.join();
    }
}

/// Text of a child's pipe, read to its end by a thread.
pub fn drain(mut r: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// A long-lived `psql` session on one database: statements run in it hold
/// their locks (an open transaction) until told otherwise.
pub struct PgSession {
    kid: Kid,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    stderr: Option<thread::JoinHandle<String>>,
}

const DONE: &str = "__psql_done__";

impl PgSession {
    pub fn open(url: &str) -> PgSession {
        let program = [
            std::path::Path::new(crate::common::pg::PG_BIN).join("psql"),
            std::path::PathBuf::from(crate::common::pg::PSQL_WRAPPER),
        ]
        .into_iter()
        .find(|p| p.exists())
        .expect("psql is installed");
        let mut cmd = Command::new(program);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("PG") {
                cmd.env_remove(k);
            }
        }
        cmd.env("LC_ALL", "C")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut kid = Kid::spawn(&mut cmd, "psql session");
        let stdin = kid.take_stdin();
        let stdout = kid.take_stdout();
        let stderr = Some(drain(kid.take_stderr()));
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        PgSession {
            kid,
            stdin,
            lines,
            stderr,
        }
    }

    /// Runs `sql` (one or more statements; the last `;` may be left out)
    /// and returns its output rows (`|` between columns), once psql has
    /// answered all of it.
    pub fn exec(&mut self, sql: &str) -> Vec<String> {
        let end = if sql.trim_end().ends_with(';') {
            ""
        } else {
            ";"
        };
        writeln!(self.stdin, "{sql}{end}\n\\echo {DONE}").expect("writing to psql");
        self.stdin.flush().expect("writing to psql");
        let deadline = Instant::now() + HANG;
        let mut rows = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l == DONE => return rows,
                Ok(l) if l.is_empty() => {}
                Ok(l) => rows.push(l),
                Err(_) => {
                    self.kid.kill();
                    let err = self.stderr.take().map(|h| h.join().unwrap_or_default());
                    panic!("psql did not answer {sql:?}: {err:?}");
                }
            }
        }
    }
}

impl Drop for PgSession {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "\\q");
        let _ = self.stdin.flush();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.kid.try_status().is_none() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        // Kid's own drop kills it if it is still there.
    }
}

/// The server sessions orderbatch has open on the database `session` is
/// connected to (its connections name themselves `orderbatch`).
pub fn orderbatch_backends(session: &mut PgSession) -> usize {
    session.exec(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = 'orderbatch'",
    )[0]
    .parse()
    .unwrap()
}

/// Waits until no orderbatch session is left on the server: a client that
/// was killed has its session ended, and its transaction rolled back, by the
/// server only when the session next talks to it.
pub fn wait_backends_gone(session: &mut PgSession) {
    poll("the killed run's server session to end", || {
        (orderbatch_backends(session) == 0).then_some(())
    });
}

/// The binary run in `env` with `args`, its stdout and stderr piped.
pub fn spawn(env: &Env, args: &[&str], what: &str) -> Kid {
    let mut cmd = env.spawnable();
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    Kid::spawn(&mut cmd, what)
}

/// Sends `sig` to a child this test started and has not reaped.
pub fn signal(kid: &Kid, sig: i32) {
    // SAFETY: kill(2) on the pid of a child this test spawned and has not reaped.
    let rc = unsafe { libc::kill(kid.pid() as i32, sig) };
    assert_eq!(rc, 0, "kill({}, {sig})", kid.pid());
}

/// The orderbatch sessions of `probe`'s database waiting for a lock.
pub fn waiting(probe: &mut PgSession) -> usize {
    probe.exec(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = 'orderbatch'
           AND wait_event_type = 'Lock'",
    )[0]
    .parse()
    .unwrap()
}

/// The orderbatch sessions of `probe`'s database waiting for a lock in a
/// statement that contains `stmt`.
pub fn waiting_in(probe: &mut PgSession, stmt: &str) -> usize {
    probe.exec(&format!(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = 'orderbatch'
           AND wait_event_type = 'Lock' AND query LIKE '%{stmt}%'"
    ))[0]
        .parse()
        .unwrap()
}
