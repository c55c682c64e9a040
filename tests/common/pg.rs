//! A throwaway PostgreSQL 15 cluster for the integration tests.
//!
//! One cluster per test process, started on first use by [`cluster()`]:
//!
//! * a fresh directory `obpg-XXXXXX` under `std::env::temp_dir()` (mode 0755,
//!   so that an unprivileged server user can traverse it) holding `data/`
//!   (the cluster), `sock/` (the only listening socket: no TCP at all) and
//!   `server.log`;
//! * `initdb -A trust -U postgres --no-sync -E UTF8 --locale=C`, then
//!   `postgres` with fsync, synchronous_commit and full_page_writes off;
//! * the server refuses to run as root: when the tests run as root (CI), the
//!   server programs run as `nobody:nogroup` (the same as
//!   `setpriv --reuid=nobody --regid=nogroup --clear-groups`, done by std's
//!   `CommandExt::uid/gid`, which also drops the supplementary groups), and the
//!   directories it writes are chowned to that user. As a normal user they run
//!   as that user;
//! * stopping: a libc `atexit` handler (the test harness ends through `exit`)
//!   sends SIGQUIT (immediate shutdown) to the postmaster, reaps it, and
//!   removes the directory. A detached watchdog shell, started before the
//!   server, does the same once the test process is gone, for the case that it
//!   was killed (SIGKILL, a crash) and ran no atexit handler.
//!
//! Connection URLs have the form
//! `postgresql://postgres@%2Ftmp%2Fobpg-XXXXXX%2Fsock/DBNAME`: the socket
//! directory, percent-encoded, as the host. Both libpq (psql) and the Rust
//! `postgres` / `tokio-postgres` crates read it as a Unix-socket directory.
//! (The libpq form `postgresql://postgres@localhost/DB?host=/dir` is NOT
//! equivalent in rust-postgres: there `?host=` adds a second host after
//! `localhost`, which is tried first over TCP.)
//!
//! Without PostgreSQL 15 installed, the first use panics and says what to
//! install; test files can check [`skip_requested()`] (ORDERBATCH_SKIP_PG=1)
//! to opt out explicitly instead.
#![allow(dead_code)]

use std::ffi::CString;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// Where Debian's postgresql-15 package puts the server programs.
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// The client (Debian's version-choosing wrapper); the one in [`PG_BIN`] is
/// used when present.
pub const PSQL_WRAPPER: &str = "/usr/bin/psql";
/// The environment variable that asks to skip the PostgreSQL tests.
pub const SKIP_ENV: &str = "ORDERBATCH_SKIP_PG";

const MISSING_MSG: &str = "PostgreSQL 15 is needed for these tests: apt-get install postgresql-15 \
                           (or set ORDERBATCH_SKIP_PG=1 to skip them explicitly)";

/// How long the server may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long initdb may take.
const INITDB_TIMEOUT: Duration = Duration::from_secs(120);
/// How long one psql run from a test (or CREATE DATABASE) may take.
const PSQL_TIMEOUT: Duration = Duration::from_secs(120);
/// How long one readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the postmaster gets to exit after SIGQUIT before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Unix socket paths are limited to 107 bytes; this is the longest socket
/// directory that leaves room for "/.s.PGSQL.5432.lock".
const MAX_SOCK_DIR_LEN: usize = 107 - 20;

/// True when ORDERBATCH_SKIP_PG=1 is set: the test should print a loud line
/// saying it is skipped and return without calling [`cluster()`].
pub fn skip_requested() -> bool {
    std::env::var(SKIP_ENV)
        .map(|v| v.trim() == "1")
        .unwrap_or(false)
}

/// The cluster of this test process, started on first call. Panics (in every
/// test that asks, with the same message) when it cannot be started.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
    match CLUSTER.get_or_init(Cluster::start) {
        Ok(c) => c,
        Err(msg) => panic!("{msg}"),
    }
}

/// One running throwaway PostgreSQL 15 server, listening only on a Unix
/// socket in its own temp directory. Superuser `postgres`, trust auth.
pub struct Cluster {
    dir: PathBuf,
    data_dir: PathBuf,
    sock_dir: PathBuf,
    log_path: PathBuf,
    postmaster_pid: u32,
    /// Run the server programs as this (uid, gid), when the tests run as root.
    run_as: Option<(u32, u32)>,
    next_db: AtomicU64,
}

impl Cluster {
    /// URL of a database on this server, for psql and for the `postgres` crate.
    pub fn url(&self, dbname: &str) -> String {
        format!(
            "postgresql://postgres@{}/{}",
            percent_encode(self.sock_dir.to_str().expect("socket dir is UTF-8")),
            percent_encode(dbname)
        )
    }

    /// URL of the `postgres` maintenance database, as the superuser.
    pub fn superuser_url(&self) -> String {
        self.url("postgres")
    }

    /// Creates a new, empty, uniquely named database and returns its URL.
    pub fn new_database(&self) -> String {
        let n = self.next_db.fetch_add(1, Ordering::Relaxed);
        let name = format!("ob_{}_{}", std::process::id(), n);
        self.psql(
            &self.superuser_url(),
            &format!("CREATE DATABASE \"{name}\""),
        );
        self.url(&name)
    }

    /// Runs `sql` (one or more statements, as a psql script) with
    /// `psql -X -q -A -t -v ON_ERROR_STOP=1` and returns its trimmed stdout:
    /// unaligned rows, `|` between columns, no headers, no command tags.
    /// Panics with psql's stderr (and the server log's tail) on failure.
    pub fn psql(&self, url: &str, sql: &str) -> String {
        match run_psql(url, sql, PSQL_TIMEOUT) {
            Ok(out) => out.trim().to_string(),
            Err(e) => panic!(
                "psql failed on {url}\n--- sql ---\n{sql}\n--- error ---\n{e}\n--- server log tail ({}) ---\n{}",
                self.log_path.display(),
                log_tail(&self.log_path, 30)
            ),
        }
    }

    /// The socket directory (what libpq calls the host).
    pub fn socket_dir(&self) -> &Path {
        &self.sock_dir
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `lines` lines of the server log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log_path, lines)
    }

    pub fn postmaster_pid(&self) -> u32 {
        self.postmaster_pid
    }

    /// The whole start-up; an Err is the panic message for every test.
    fn start() -> Result<Cluster, String> {
        let initdb = Path::new(PG_BIN).join("initdb");
        let postgres = Path::new(PG_BIN).join("postgres");
        if !initdb.exists() || !postgres.exists() || psql_program().is_none() {
            return Err(format!(
                "\n\n==================== {MISSING_MSG} ====================\n\
                 (looked for {} , {} and {PSQL_WRAPPER})\n",
                initdb.display(),
                postgres.display()
            ));
        }

        let run_as = if unsafe { libc::geteuid() } == 0 {
            Some(lookup_user("nobody").map_err(|e| {
                format!("pg harness: running as root, so the server must run as `nobody`, but {e}")
            })?)
        } else {
            None
        };

        let dir = make_cluster_dir(run_as.is_some())?;
        let data_dir = dir.join("data");
        let sock_dir = dir.join("sock");
        let log_path = dir.join("server.log");

        // From here on, whatever happens, the directory (and a server, once
        // there is one) is cleaned up at exit, or by the watchdog.
        register_cleanup(&dir);
        if let Err(e) = spawn_watchdog(&dir) {
            eprintln!("pg harness: warning: no watchdog ({e}); a killed test process may leave a server behind");
        }

        let step = |what: &str, e: &dyn std::fmt::Display| {
            format!(
                "pg harness: {what} failed: {e}\n(cluster directory {})",
                dir.display()
            )
        };
        for d in [&data_dir, &sock_dir] {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(d)
                .map_err(|e| step(&format!("creating {}", d.display()), &e))?;
            if let Some((uid, gid)) = run_as {
                chown(d, uid, gid)
                    .map_err(|e| step(&format!("chown {} to nobody", d.display()), &e))?;
            }
        }

        // initdb
        let mut cmd = server_command(&initdb, &dir, run_as);
        cmd.arg("-D")
            .arg(&data_dir)
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .arg("--no-instructions");
        let out =
            run_with_timeout(cmd, None, INITDB_TIMEOUT).map_err(|e| step("running initdb", &e))?;
        if !out.status.success() {
            return Err(step(
                "initdb",
                &format!(
                    "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    out.status, out.stdout, out.stderr
                ),
            ));
        }

        // postgres
        let log = File::create(&log_path).map_err(|e| step("creating server.log", &e))?;
        let log2 = log.try_clone().map_err(|e| step("dup of server.log", &e))?;
        let mut cmd = server_command(&postgres, &dir, run_as);
        cmd.arg("-D").arg(&data_dir);
        for setting in [
            "fsync=off".to_string(),
            "synchronous_commit=off".to_string(),
            "full_page_writes=off".to_string(),
            "listen_addresses=".to_string(),
            format!("unix_socket_directories={}", sock_dir.display()),
            "max_connections=100".to_string(),
            "shared_buffers=64MB".to_string(),
        ] {
            cmd.arg("-c").arg(setting);
        }
        // Own process group: a terminal's Ctrl-C goes to the tests only; the
        // server is then stopped by the watchdog like after any other death.
        cmd.stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0);
        let child = cmd.spawn().map_err(|e| step("starting postgres", &e))?;
        let postmaster_pid = child.id();
        with_cleanup(|c| c.child = Some(child));

        let cluster = Cluster {
            dir: dir.clone(),
            data_dir,
            sock_dir,
            log_path,
            postmaster_pid,
            run_as,
            next_db: AtomicU64::new(0),
        };
        cluster.wait_ready()?;
        Ok(cluster)
    }

    /// Polls `SELECT 1` until it answers, the server dies, or READY_TIMEOUT.
    fn wait_ready(&self) -> Result<(), String> {
        let url = self.superuser_url();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) =
                with_cleanup(|c| c.child.as_mut().and_then(|ch| ch.try_wait().ok().flatten()))
            {
                return Err(
                    self.failure(&format!("postgres exited during start-up ({status})"), "")
                );
            }
            let last_err = match run_psql(&url, "SELECT 1", PROBE_TIMEOUT) {
                Ok(out) if out.trim() == "1" => return Ok(()),
                Ok(out) => format!("unexpected answer to SELECT 1: {out:?}"),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(self.failure(
                    &format!("postgres did not accept connections within {READY_TIMEOUT:?}"),
                    &last_err,
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn failure(&self, what: &str, last_err: &str) -> String {
        let last_err = if last_err.is_empty() {
            String::new()
        } else {
            format!("--- last psql error ---\n{last_err}\n")
        };
        format!(
            "pg harness: {what}\n(cluster directory {}, socket {}, postmaster pid {})\n\
             {last_err}--- server log tail ({}) ---\n{}",
            self.dir.display(),
            self.sock_dir.display(),
            self.postmaster_pid,
            self.log_path.display(),
            log_tail(&self.log_path, 40)
        )
    }
}

// ---------------------------------------------------------------- cleanup

struct Cleanup {
    dir: PathBuf,
    child: Option<Child>,
}

static CLEANUP: Mutex<Option<Cleanup>> = Mutex::new(None);

fn with_cleanup<R>(f: impl FnOnce(&mut Cleanup) -> R) -> R {
    let mut guard = CLEANUP.lock().unwrap_or_else(|p| p.into_inner());
    f(guard.as_mut().expect("cleanup registered before use"))
}

fn register_cleanup(dir: &Path) {
    *CLEANUP.lock().unwrap_or_else(|p| p.into_inner()) = Some(Cleanup {
        dir: dir.to_path_buf(),
        child: None,
    });
    static REGISTERED: OnceLock<()> = OnceLock::new();
    REGISTERED.get_or_init(|| {
        // SAFETY: registering a plain extern "C" fn.
        if unsafe { libc::atexit(cleanup_at_exit) } != 0 {
            eprintln!("pg harness: warning: atexit failed; only the watchdog will stop the server");
        }
    });
}

/// Runs from `exit()`: immediate shutdown of the server, then the directory.
extern "C" fn cleanup_at_exit() {
    // Never unwind out of an extern "C" fn.
    let _ = std::panic::catch_unwind(|| {
        // Another thread could hold the lock (it never does for long):
        // try for a while rather than block forever.
        let mut guard = None;
        for _ in 0..50 {
            match CLEANUP.try_lock() {
                Ok(g) => {
                    guard = Some(g);
                    break;
                }
                Err(std::sync::TryLockError::Poisoned(p)) => {
                    guard = Some(p.into_inner());
                    break;
                }
                Err(std::sync::TryLockError::WouldBlock) => {
                    thread::sleep(Duration::from_millis(100))
                }
            }
        }
        let Some(mut guard) = guard else {
            eprintln!("pg harness: cleanup lock busy at exit; leaving the server to the watchdog");
            return;
        };
        let Some(mut c) = guard.take() else { return };
        if let Some(child) = c.child.as_mut() {
            stop_child(child);
        }
        let _ = fs::remove_dir_all(&c.dir);
    });
}

/// SIGQUIT (PostgreSQL's immediate shutdown; the postmaster takes its
/// children down before it exits), bounded wait, then SIGKILL.
fn stop_child(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGQUIT) };
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    eprintln!("pg harness: postgres ignored SIGQUIT for {STOP_TIMEOUT:?}; sending SIGKILL");
    let _ = child.kill();
    let _ = child.wait();
}

/// A detached `sh` (own session, no inherited stdio) that waits for this
/// process to disappear, then stops the postmaster named in postmaster.pid
/// (SIGQUIT, up to 10 s, then SIGKILL) and removes the directory. After a
/// normal exit it finds nothing left to do. Polls every 0.5 s.
fn spawn_watchdog(dir: &Path) -> std::io::Result<()> {
    let script = r#"
        while kill -0 "$1" 2>/dev/null; do sleep 0.5; done
        pidfile="$2/data/postmaster.pid"
        if [ -f "$pidfile" ]; then
            pm=$(head -n 1 "$pidfile" 2>/dev/null)
            case "$pm" in
                ''|*[!0-9]*) ;;
                *)
                    kill -QUIT "$pm" 2>/dev/null
                    n=0
                    while kill -0 "$pm" 2>/dev/null && [ $n -lt 100 ]; do sleep 0.1; n=$((n+1)); done
                    kill -KILL "$pm" 2>/dev/null
                    ;;
            esac
        fi
        rm -rf "$2"
    "#;
    Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .arg("orderbatch-pg-watchdog")
        .arg(std::process::id().to_string())
        .arg(dir)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn_detached()
}

trait SpawnDetached {
    fn spawn_detached(&mut self) -> std::io::Result<()>;
}

impl SpawnDetached for Command {
    /// Spawns in a new session (no terminal signals reach it) and drops the
    /// `Child`: once this process is gone, init (or a subreaper) reaps it.
    fn spawn_detached(&mut self) -> std::io::Result<()> {
        // SAFETY: setsid is async-signal-safe; the child of a fork is never a
        // process group leader, so it cannot fail.
        unsafe {
            self.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        self.spawn().map(drop)
    }
}

// ---------------------------------------------------------------- helpers

/// A command for a server program: PG* variables removed, cwd in the
/// cluster directory (the caller's cwd may not be readable by `nobody`),
/// and the user switched when running as root.
fn server_command(program: &Path, dir: &Path, run_as: Option<(u32, u32)>) -> Command {
    let mut cmd = Command::new(program);
    clear_pg_env(&mut cmd);
    cmd.current_dir(dir).env("LC_ALL", "C");
    if let Some((uid, gid)) = run_as {
        // std sets the gid, drops the supplementary groups (setgroups(0)) and
        // then the uid, between fork and exec: `setpriv --clear-groups`.
        cmd.uid(uid).gid(gid);
    }
    cmd
}

fn clear_pg_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PG") {
            cmd.env_remove(k);
        }
    }
}

fn psql_program() -> Option<PathBuf> {
    // The version's own binary skips the Perl wrapper's start-up cost.
    [Path::new(PG_BIN).join("psql"), PathBuf::from(PSQL_WRAPPER)]
        .into_iter()
        .find(|p| p.exists())
}

/// psql with the script on stdin; Ok(stdout) or Err(description).
fn run_psql(url: &str, sql: &str, timeout: Duration) -> Result<String, String> {
    let program = psql_program().ok_or_else(|| MISSING_MSG.to_string())?;
    let mut cmd = Command::new(program);
    clear_pg_env(&mut cmd);
    cmd.env("PGCONNECT_TIMEOUT", "5").env("LC_ALL", "C").args([
        "-X",
        "-q",
        "-A",
        "-t",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        url,
    ]);
    let out =
        run_with_timeout(cmd, Some(sql.as_bytes()), timeout).map_err(|e| format!("psql: {e}"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(format!("psql {}\n{}{}", out.status, out.stderr, out.stdout))
    }
}

struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` with `input` on stdin; kills it after `timeout`.
fn run_with_timeout(
    mut cmd: Command,
    input: Option<&[u8]>,
    timeout: Duration,
) -> Result<Output, String> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    let mut stdin = child.stdin.take().expect("piped");
    let input = input.unwrap_or_default().to_vec();
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let reader = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = reader(Box::new(child.stdout.take().expect("piped")));
    let err = reader(Box::new(child.stderr.take().expect("piped")));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = writer.join();
                return Err(format!(
                    "{:?} did not finish within {timeout:?}; killed.\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    cmd.get_program(),
                    out.join().unwrap_or_default(),
                    err.join().unwrap_or_default()
                ));
            }
            Err(e) => return Err(format!("waiting for {:?}: {e}", cmd.get_program())),
        }
    };
    let _ = writer.join();
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// A new 0755 directory `obpg-XXXXXX` under the temp dir. As root, the temp
/// dir must be traversable by others (for `nobody`), else /tmp is used; a
/// path too long for a Unix socket also falls back to /tmp.
fn make_cluster_dir(as_root: bool) -> Result<PathBuf, String> {
    let mut base = std::env::temp_dir();
    if !base.exists() {
        let _ = fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&base);
    }
    let traversable = |p: &Path| {
        p.ancestors().all(|a| {
            fs::metadata(a)
                .map(|m| m.permissions().mode() & 0o001 != 0)
                .unwrap_or(false)
        })
    };
    // "/obpg-XXXXXX/sock" is 17 bytes.
    if (as_root && !traversable(&base)) || base.as_os_str().len() + 17 > MAX_SOCK_DIR_LEN {
        base = PathBuf::from("/tmp");
    }
    let dir = tempfile::Builder::new()
        .prefix("obpg-")
        .rand_bytes(6)
        .tempdir_in(&base)
        .map_err(|e| {
            format!(
                "pg harness: cannot create a directory in {}: {e}",
                base.display()
            )
        })?
        .keep();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("pg harness: chmod 0755 {}: {e}", dir.display()))?;
    Ok(dir)
}

fn lookup_user(name: &str) -> Result<(u32, u32), String> {
    let cname = CString::new(name).expect("no NUL");
    // SAFETY: getpwnam returns NULL or a pointer to static storage; read at
    // once. Only called under the OnceLock, so not concurrently with itself.
    let pw = unsafe { libc::getpwnam(cname.as_ptr()) };
    if pw.is_null() {
        return Err(format!("there is no user `{name}` on this machine"));
    }
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Ok((uid, gid))
}

fn chown(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
}

fn log_tail(path: &Path, lines: usize) -> String {
    match fs::read_to_string(path) {
        Ok(s) => {
            let all: Vec<&str> = s.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
