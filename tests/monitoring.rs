//! What a run tells those who watch it: on stderr (nothing with `-q` but
//! failures, stage timings with `-v`, control characters of its input
//! escaped, one JSON object per event with `--log-format json`), and in its
//! metrics file, with the real tools: the metrics files of real runs pass
//! `promtool check metrics`, the alert rules pass `promtool check rules` and
//! their unit tests, and a real node_exporter (textfile collector only) and
//! a real Prometheus loading deploy/prometheus/orderbatch-alerts.yml serve
//! every query of the Grafana dashboard and raise OrderbatchLastRunFailed
//! for a failed run; and the inbox's systemd unit passes `systemd-analyze
//! verify` with a command line this orderbatch runs.
//!
//! The tools come from the Debian packages prometheus (prometheus, promtool),
//! prometheus-node-exporter, curl and systemd (systemd-analyze). A missing
//! tool fails the test with the package to install;
//! ORDERBATCH_SKIP_MONITORING=1 skips the tests that need them, loudly.

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::*;

// ---------------------------------------------------------------- what a run says on stderr

#[test]
fn quiet_success_prints_nothing_and_failures_still_speak() {
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 10);
        env.write("orders.csv", csv_file(&[order_rows("A-1", &[(0, 1)])]));
        let out = env.run(&["process", "orders.csv", "-q"]);
        assert_eq!(out.status.code(), Some(0), "{b:?}: {out:?}");
        assert!(
            out.stdout.is_empty() && out.stderr.is_empty(),
            "{b:?}: {out:?}"
        );
        env.write("bad.csv", csv_file(&[order_rows("B-1", &[(9, 1)])]));
        let out = env.run(&["-q", "process", "bad.csv"]);
        assert_eq!(out.status.code(), Some(3), "{b:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with(
                "run 2 completed: 1 orders: 0 accepted, 0 skipped, 1 failed (UNKNOWN_SKU 1);"
            ) && err.lines().count() == 1,
            "{b:?}: {err}"
        );
    }
}

#[test]
fn verbose_prints_stage_timings() {
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 10);
        env.write("orders.csv", csv_file(&[order_rows("A-1", &[(0, 1)])]));
        let out = env.run(&["-v", "process", "orders.csv"]);
        assert_eq!(out.status.code(), Some(0), "{b:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(
            lines.len(),
            2,
            "{b:?}: the timings, then the summary: {err}"
        );
        assert!(
            lines[1].starts_with("run 1 completed: 1 orders: 1 accepted,"),
            "{b:?}: {err}"
        );
        for stage in ["read", "validate", "apply", "report", "commit"] {
            let secs = lines[0]
                .split_once(&format!(" {stage} "))
                .and_then(|(_, rest)| rest.split(' ').next())
                .and_then(|n| n.parse::<f64>().ok());
            assert!(
                secs.is_some_and(|s| s >= 0.0),
                "{b:?}: seconds of {stage}: {err}"
            );
        }
    }
}

#[test]
fn input_text_echoed_to_the_terminal_has_its_control_characters_escaped() {
    let env = Env::new();
    load_catalog(&env, 10);
    let evil = "order_id,placed_at\x1b]0;owned\x07,\x1b[2Jcustomer_email\n";
    env.write("evil.csv", evil);
    let out = env.run(&["process", "evil.csv"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains('\x1b') && !err.contains('\x07'), "{err:?}");
    assert!(err.contains("\\x1b]0;owned\\x07"), "{err}");
    // A file name with an escape and a newline, in runs list and runs show.
    let name = "in\x1b[31m\nred.csv";
    env.write(name, csv_file(&[order_rows("T-1", &[(0, 1)])]));
    env.ok(&["process", name], 0);
    for args in [&["runs", "list"][..], &["runs", "show", "1"]] {
        let text = env.ok(args, 0);
        assert!(!text.contains('\x1b'), "{args:?}: {text:?}");
        assert!(text.contains("in\\x1b[31m\\nred.csv"), "{text}");
    }
    let list = env.ok(&["runs", "list"], 0);
    assert_eq!(
        list.lines().count(),
        2,
        "the header and one line per run: {list}"
    );
}

/// Every stderr line as a JSON object.
fn events(out: &std::process::Output) -> Vec<serde_json::Value> {
    String::from_utf8(out.stderr.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

#[test]
fn a_run_logs_its_start_its_end_and_its_problems_as_json() {
    let env = Env::new();
    env.write("catalog.csv", catalog(3, 10));
    env.write(
        "orders.csv",
        csv_file(&[order_rows("J-1", &[(0, 1)]), order_rows("J-2", &[(9, 1)])]),
    );
    let out = env.run(&[
        "--log-format",
        "json",
        "process",
        "orders.csv",
        "--catalog",
        "catalog.csv",
    ]);
    assert_eq!(out.status.code(), Some(3));
    let ev = events(&out);
    let names: Vec<&str> = ev.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(names, ["run_started", "run_finished"]);
    assert_eq!(ev[0]["run_id"], 1);
    assert_eq!(ev[0]["inputs"], serde_json::json!(["orders.csv"]));
    let end = &ev[1];
    assert_eq!(
        (end["level"].as_str(), end["exit_code"].as_u64()),
        (Some("info"), Some(3))
    );
    assert_eq!(
        (end["accepted"].as_u64(), end["failed"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(end["errors_by_code"]["UNKNOWN_SKU"], 1);
    assert_eq!(end["reports"], "reports/run-1");
    assert!(end["stage_seconds"]["apply"].as_f64().is_some());
    assert!(end["ts"].as_str().unwrap().ends_with('Z'));
    assert!(end["message"]
        .as_str()
        .unwrap()
        .starts_with("run 1 completed"));
    // --quiet keeps the events: a collector wants them all.
    let out = env.run(&["--log-format", "json", "-q", "process", "orders.csv"]);
    assert_eq!(events(&out).len(), 2);
}

#[test]
fn errors_and_warnings_are_json_with_card_numbers_masked_and_controls_escaped() {
    let env = Env::new();
    // A file name with a control character and a card number.
    let name = "in\x1b[2J4111111111111111.csv";
    let out = env.run(&["--log-format", "json", "process", name]);
    assert_eq!(out.status.code(), Some(2));
    let raw = String::from_utf8_lossy(&out.stderr);
    assert!(!raw.contains('\x1b'), "{raw:?}");
    assert!(!raw.contains("4111111111111111"), "{raw}");
    let ev = events(&out);
    assert_eq!(ev.len(), 1);
    assert_eq!(
        (ev[0]["event"].as_str(), ev[0]["level"].as_str()),
        (Some("error"), Some("error"))
    );
    assert_eq!(ev[0]["exit_code"], 2);
    assert!(
        ev[0]["message"]
            .as_str()
            .unwrap()
            .contains("************1111"),
        "{}",
        ev[0]
    );
    // verify's faults are events too.
    env.write("catalog.csv", catalog(2, 5));
    env.ok(&["inventory", "load", "catalog.csv"], 0);
    env.db()
        .execute_batch("UPDATE products SET on_hand = 9 WHERE sku = 'SKU-0'")
        .unwrap();
    let out = env.run(&["--log-format", "json", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let ev = events(&out);
    assert_eq!(ev[0]["event"], "fault");
    assert!(ev[0]["message"].as_str().unwrap().contains("SKU-0"));
}

// ---------------------------------------------------------------- the metrics file

/// A minimal check of the Prometheus text format: comments are HELP/TYPE,
/// samples are `name{label="v",...} number`, and every sample has a TYPE.
fn parse_prometheus(text: &str) -> std::collections::BTreeMap<String, f64> {
    let mut typed = std::collections::HashSet::new();
    let mut samples = std::collections::BTreeMap::new();
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap();
            let name = parts.next().unwrap();
            assert!(name_ok(name), "{line}");
            match kind {
                "TYPE" => {
                    assert!(matches!(parts.next(), Some("gauge" | "counter")), "{line}");
                    typed.insert(name.to_string());
                }
                "HELP" => assert!(parts.next().is_some_and(|h| !h.is_empty())),
                _ => panic!("unknown comment: {line}"),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value in {line}"));
        let name = series.split('{').next().unwrap();
        assert!(name_ok(name) && typed.contains(name), "{line}");
        if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
            let inner = labels
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .expect(line);
            for pair in inner.split(',') {
                let (k, v) = pair.split_once('=').expect(line);
                assert!(
                    name_ok(k) && v.starts_with('"') && v.ends_with('"'),
                    "{line}"
                );
            }
        }
        samples.insert(series.to_string(), value);
    }
    samples
}

/// An RFC 3339 time of the history in Unix milliseconds.
fn unix_ms(rfc3339: &serde_json::Value) -> i64 {
    let text = rfc3339
        .as_str()
        .unwrap_or_else(|| panic!("a time: {rfc3339}"));
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{e}: {text}"))
        .timestamp_millis()
}

#[test]
fn metrics_parse_and_a_failed_run_keeps_the_last_success_time() {
    for b in backends() {
        let env = env_for(b);
        load_catalog(&env, 10);
        env.write(
            "orders.csv",
            csv_file(&[order_rows("A-1", &[(0, 1)]), order_rows("A-2", &[(9, 1)])]),
        );
        let before = unix_now();
        env.ok(&["process", "orders.csv", "--metrics-file", "m.prom"], 3);
        let after = unix_now();
        let m = parse_prometheus(&env.read("m.prom"));
        assert_eq!(
            m["orderbatch_last_run_orders{status=\"accepted\"}"], 1.0,
            "{b:?}"
        );
        assert_eq!(
            m["orderbatch_last_run_orders{status=\"skipped\"}"], 0.0,
            "{b:?}"
        );
        assert_eq!(
            m["orderbatch_last_run_orders{status=\"failed\"}"], 1.0,
            "{b:?}"
        );
        assert_eq!(
            m["orderbatch_last_run_order_errors{code=\"UNKNOWN_SKU\"}"], 1.0,
            "{b:?}"
        );
        assert_eq!(m["orderbatch_last_run_exit_code"], 3.0, "{b:?}");
        assert_eq!(
            m["orderbatch_last_run_input_bytes"],
            std::fs::metadata(env.path("orders.csv")).unwrap().len() as f64,
            "{b:?}: the bytes of the input file"
        );
        assert!(m["orderbatch_last_run_peak_rss_bytes"] > 1e6, "{b:?}");
        assert!(m["orderbatch_last_run_cpu_seconds"] >= 0.0, "{b:?}");
        for stage in ["read", "validate", "apply", "report", "commit"] {
            let key = format!("orderbatch_last_run_stage_seconds{{stage=\"{stage}\"}}");
            assert!(m.contains_key(&key), "{b:?}: {key}");
        }
        // The run's duration and the last success are the history's, to the
        // millisecond; the run's own timestamp is when it ended.
        let list = json(&env.ok(&["runs", "list", "--json"], 0));
        assert_eq!(list[0]["id"], 1, "{b:?}: {list}");
        let ms = |v: f64| (v * 1000.0).round() as i64;
        assert_eq!(
            Some(ms(m["orderbatch_last_run_duration_seconds"])),
            list[0]["duration_ms"].as_i64(),
            "{b:?}: {list}"
        );
        let success = m["orderbatch_last_success_timestamp_seconds"];
        assert_eq!(
            ms(success),
            unix_ms(&list[0]["finished_at"]),
            "{b:?}: {list}"
        );
        let ended = m["orderbatch_last_run_timestamp_seconds"];
        assert!(
            before - 0.001 <= ended && ended <= after + 0.001,
            "{b:?}: {before} <= {ended} <= {after}"
        );

        env.write(
            "more.csv",
            csv_file(&[order_rows("B-1", &[(9, 1)]), order_rows("B-2", &[(9, 1)])]),
        );
        let before = unix_now();
        env.ok(
            &[
                "process",
                "more.csv",
                "--max-errors",
                "1",
                "--metrics-file",
                "m.prom",
            ],
            4,
        );
        let after = unix_now();
        let m2 = parse_prometheus(&env.read("m.prom"));
        assert_eq!(
            m2["orderbatch_last_success_timestamp_seconds"], success,
            "{b:?}"
        );
        let ended = m2["orderbatch_last_run_timestamp_seconds"];
        assert!(
            before - 0.001 <= ended && ended <= after + 0.001,
            "{b:?}: {before} <= {ended} <= {after}"
        );
        assert_eq!(m2["orderbatch_last_run_exit_code"], 4.0, "{b:?}");
        let leftovers: Vec<_> = std::fs::read_dir(env.dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
            .collect();
        assert!(
            leftovers.is_empty(),
            "{b:?}: no temporary metrics file left behind: {leftovers:?}"
        );
    }
}

// ------------------------- the real tools: promtool, node_exporter and Prometheus, systemd-analyze

const SKIP_ENV: &str = "ORDERBATCH_SKIP_MONITORING";

const INSTALL: &str = "apt-get install prometheus prometheus-node-exporter curl systemd";

/// How long the end-to-end test may wait, in all, for the servers to come
/// up and for Prometheus to show what the runs wrote.
const DEADLINE: Duration = Duration::from_secs(60);

/// The pause between two polls.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// A tool and the Debian package it comes with.
struct Tool {
    name: &'static str,
    package: &'static str,
}

const PROMTOOL: Tool = Tool {
    name: "promtool",
    package: "prometheus",
};

const PROMETHEUS: Tool = Tool {
    name: "prometheus",
    package: "prometheus",
};

const NODE_EXPORTER: Tool = Tool {
    name: "prometheus-node-exporter",
    package: "prometheus-node-exporter",
};

const CURL: Tool = Tool {
    name: "curl",
    package: "curl",
};

const SYSTEMD_ANALYZE: Tool = Tool {
    name: "systemd-analyze",
    package: "systemd",
};

fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The paths of `tools`, in order; None when ORDERBATCH_SKIP_MONITORING=1
/// asks to skip the test (said loudly). A missing tool fails the test.
fn tools(test: &str, needed: &[Tool]) -> Option<Vec<PathBuf>> {
    if std::env::var(SKIP_ENV).is_ok_and(|v| v.trim() == "1") {
        eprintln!("!!! {SKIP_ENV}=1: the monitoring test {test} is SKIPPED");
        return None;
    }
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for t in needed {
        match find_tool(t.name) {
            Some(p) => found.push(p),
            None => missing.push(format!("{} (Debian package {})", t.name, t.package)),
        }
    }
    assert!(
        missing.is_empty(),
        "{test} needs {}, not found in PATH, /usr/bin or /usr/sbin: {INSTALL} \
         (or set {SKIP_ENV}=1 to skip the monitoring tests)",
        missing.join(", ")
    );
    Some(found)
}

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn shown(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// `n` orders of one line each; every `bad_every`-th (if any) names the
/// unknown SKU-9.
fn orders(prefix: &str, n: usize, bad_every: Option<usize>) -> String {
    let rows: Vec<String> = (0..n)
        .map(|i| {
            let sku = match bad_every {
                Some(k) if i % k == 0 => 9,
                _ => i % 5,
            };
            order_rows(&format!("{prefix}-{i}"), &[(sku, 1)])
        })
        .collect();
    csv_file(&rows)
}

/// The samples of a metrics file: `name{label="v",...}` (labels sorted) -> value.
fn samples_of_file(content: &str) -> BTreeMap<String, f64> {
    content
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("{l:?}"));
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => {
                    let inner = rest.strip_suffix('}').unwrap_or_else(|| panic!("{l:?}"));
                    let labels: Vec<(String, String)> = inner
                        .split(',')
                        .filter(|p| !p.is_empty())
                        .map(|p| {
                            let (k, v) = p.split_once('=').unwrap_or_else(|| panic!("{l:?}"));
                            (k.to_string(), v.trim_matches('"').to_string())
                        })
                        .collect();
                    (n, labels)
                }
                None => (series, Vec::new()),
            };
            let v: f64 = value.parse().unwrap_or_else(|e| panic!("{l:?}: {e}"));
            (series_key(name, labels), v)
        })
        .collect()
}

fn series_key(name: &str, mut labels: Vec<(String, String)>) -> String {
    labels.sort();
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{name}{{{}}}", inner.join(","))
}

/// A server started by the test: killed and reaped when dropped, also when
/// the test fails.
struct Server {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Server {
    fn start(name: &'static str, mut cmd: Command, log: PathBuf) -> Server {
        let out = File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Server { name, child, log }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let from = lines.len().saturating_sub(15);
        format!(
            "--- last lines of the {} log:\n{}",
            self.name,
            lines[from..].join("\n")
        )
    }

    /// Why the server is no longer running, if it is not.
    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(None) => None,
            Ok(Some(st)) => Some(format!("{} exited ({st})\n{}", self.name, self.log_tail())),
            Err(e) => Some(format!("{}: {e}", self.name)),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One sample of an instant query: its labels and value.
type Sample = (BTreeMap<String, String>, f64);

/// The servers and the deadline every wait shares.
struct Stack {
    curl: PathBuf,
    servers: Vec<Server>,
    deadline: Instant,
    prometheus_port: u16,
}

impl Stack {
    /// Poll `check` until it gives a value; fail when a server dies or the
    /// deadline passes, with the last reason `check` gave.
    fn poll<T>(&mut self, what: &str, mut check: impl FnMut(&Stack) -> Result<T, String>) -> T {
        loop {
            let why = match check(self) {
                Ok(v) => return v,
                Err(why) => why,
            };
            for s in &mut self.servers {
                if let Some(msg) = s.exited() {
                    panic!("{what}: {msg}");
                }
            }
            if Instant::now() >= self.deadline {
                let logs: Vec<String> = self.servers.iter().map(Server::log_tail).collect();
                panic!(
                    "{what}: not so within {DEADLINE:?}; last: {why}\n{}",
                    logs.join("\n")
                );
            }
            std::thread::sleep(POLL_EVERY);
        }
    }

    /// The body of GET http://127.0.0.1:port/path (with `query` URL-encoded).
    fn get(&self, port: u16, path: &str, query: Option<&str>) -> Result<String, String> {
        let mut c = Command::new(&self.curl);
        c.args(["-sS", "--noproxy", "*", "--max-time", "5", "-G"]);
        if let Some(q) = query {
            c.arg("--data-urlencode").arg(format!("query={q}"));
        }
        c.arg(format!("http://127.0.0.1:{port}{path}"));
        let out = c.output().map_err(|e| format!("curl: {e}"))?;
        if !out.status.success() {
            return Err(format!("GET {path}: curl {}", shown(&out)));
        }
        Ok(text(&out.stdout))
    }

    /// The `data` of a Prometheus API answer.
    fn api(&self, path: &str, query: Option<&str>) -> Result<Value, String> {
        let body = self.get(self.prometheus_port, path, query)?;
        let v: Value =
            serde_json::from_str(&body).map_err(|e| format!("GET {path}: {e}: {body}"))?;
        if v["status"] != "success" {
            return Err(format!("GET {path} {query:?}: {body}"));
        }
        Ok(v["data"].clone())
    }

    /// The samples of an instant query: (labels, value).
    fn query(&self, expr: &str) -> Result<Vec<Sample>, String> {
        let data = self.api("/api/v1/query", Some(expr))?;
        if data["resultType"] != "vector" {
            return Err(format!("{expr}: not an instant vector: {data}"));
        }
        data["result"]
            .as_array()
            .ok_or_else(|| format!("{expr}: {data}"))?
            .iter()
            .map(|s| {
                let labels = s["metric"]
                    .as_object()
                    .ok_or_else(|| format!("{expr}: {s}"))?
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect();
                let v = s["value"][1]
                    .as_str()
                    .and_then(|v| v.parse::<f64>().ok())
                    .ok_or_else(|| format!("{expr}: {s}"))?;
                Ok((labels, v))
            })
            .collect()
    }

    /// The value of a query that must give exactly one sample.
    fn one(&self, expr: &str) -> Result<f64, String> {
        match self.query(expr)?.as_slice() {
            [(_, v)] => Ok(*v),
            other => Err(format!("{expr}: {} samples: {other:?}", other.len())),
        }
    }
}

fn unix_seconds(rfc3339: &str) -> Result<f64, String> {
    let t = chrono::DateTime::parse_from_rfc3339(rfc3339).map_err(|e| format!("{rfc3339}: {e}"))?;
    Ok(t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) / 1e9)
}

/// The alert rules of the group `orderbatch` as Prometheus evaluated them,
/// once every rule of it has been evaluated at or after `since` (Unix time
/// on Prometheus' clock) without an error: name -> rule.
fn rules_evaluated_since(stack: &Stack, since: f64) -> Result<BTreeMap<String, Value>, String> {
    let data = stack.api("/api/v1/rules", None)?;
    let groups = data["groups"].as_array().cloned().unwrap_or_default();
    let [group] = groups.as_slice() else {
        return Err(format!("one rule group loaded: {data}"));
    };
    if group["name"] != "orderbatch" {
        return Err(format!("the group orderbatch: {group}"));
    }
    let mut alerts = BTreeMap::new();
    for rule in group["rules"].as_array().cloned().unwrap_or_default() {
        let name = rule["name"].as_str().unwrap_or_default().to_string();
        let at = unix_seconds(rule["lastEvaluation"].as_str().unwrap_or_default())?;
        if at < since {
            return Err(format!("{name} last evaluated at {at}, before {since}"));
        }
        if rule["health"] != "ok" {
            return Err(format!(
                "rule {name}: health {}, error {}",
                rule["health"], rule["lastError"]
            ));
        }
        if rule["type"] == "alerting" {
            alerts.insert(name, rule);
        }
    }
    if alerts.is_empty() {
        return Err(format!("no alert rules loaded: {group}"));
    }
    Ok(alerts)
}

/// Each alert rule's state and active alerts, for a failure message.
fn states_of(rules: &BTreeMap<String, Value>) -> String {
    let lines: Vec<String> = rules
        .iter()
        .map(|(name, r)| format!("{name}: {} {}", r["state"], r["alerts"]))
        .collect();
    lines.join("\n")
}

/// What a dashboard expression must give: at least one sample, every value
/// a finite number.
fn dashboard_ok(stack: &Stack, queries: &[String]) -> Result<(), String> {
    for q in queries {
        let samples = stack.query(q)?;
        if samples.is_empty() {
            return Err(format!("dashboard query gives no data: {q}"));
        }
        if let Some((labels, v)) = samples.iter().find(|(_, v)| !v.is_finite()) {
            return Err(format!("dashboard query gives {v} for {labels:?}: {q}"));
        }
    }
    Ok(())
}

/// Prometheus holds exactly the samples of the metrics file, with the
/// node_exporter target's `instance` and `job`; gives the scrape time of
/// the newest of them.
fn scraped(stack: &Stack, file: &BTreeMap<String, f64>, instance: &str) -> Result<f64, String> {
    let mut got = BTreeMap::new();
    for (labels, v) in stack.query("{__name__=~\"orderbatch_.+\"}")? {
        if labels.get("instance").map(String::as_str) != Some(instance)
            || labels.get("job").map(String::as_str) != Some("node")
        {
            return Err(format!("a series not of the node target: {labels:?}"));
        }
        let name = labels["__name__"].clone();
        let rest = labels
            .into_iter()
            .filter(|(k, _)| !matches!(k.as_str(), "__name__" | "instance" | "job"))
            .collect();
        got.insert(series_key(&name, rest), v);
    }
    if &got != file {
        return Err(format!(
            "Prometheus has {got:?}\nthe metrics file has {file:?}"
        ));
    }
    if stack.one("max(node_textfile_scrape_error)")? != 0.0 {
        return Err("node_exporter reports node_textfile_scrape_error".into());
    }
    stack.one("max(timestamp(orderbatch_last_run_exit_code))")
}

#[test]
fn promtool_check_metrics_is_silent_on_the_metrics_of_real_runs() {
    let Some(paths) = tools("promtool check metrics", &[PROMTOOL]) else {
        return;
    };
    let promtool = &paths[0];
    let env = Env::new();
    load_catalog(&env, 10);
    env.write(
        "orders.csv",
        csv_file(&[order_rows("A-1", &[(0, 1)]), order_rows("A-2", &[(9, 1)])]),
    );
    env.write(
        "more.csv",
        csv_file(&[order_rows("B-1", &[(9, 1)]), order_rows("B-2", &[(9, 1)])]),
    );
    env.write("good.csv", csv_file(&[order_rows("C-1", &[(1, 2)])]));
    // An inbox whose last file is refused: the last run's metrics and the inbox's.
    env.write("in/a-good.csv", csv_file(&[order_rows("I-1", &[(1, 1)])]));
    env.write("in/b-bad.csv", "order_id,sku\nX,SKU-1\n");
    let runs: [(&[&str], i32, &str); 6] = [
        (&["process", "orders.csv"], 3, "some orders failed"),
        (&["reprocess"], 3, "a reprocess whose order fails again"),
        (
            &["process", "more.csv", "--max-errors", "1"],
            4,
            "aborted by --max-errors",
        ),
        (&["process", "missing.csv"], 2, "input file missing"),
        (&["process", "good.csv"], 0, "every order accepted"),
        (
            &["inbox", "in", "--settle", "0"],
            2,
            "an inbox that moved a file to failed",
        ),
    ];
    for (i, (args, code, what)) in runs.iter().enumerate() {
        let name = format!("run-{i}.prom");
        let mut all = args.to_vec();
        all.extend(["--metrics-file", &name]);
        env.ok(&all, *code);
        let content = env.read(&name);
        assert!(
            content.contains(&format!("\norderbatch_last_run_exit_code {code}\n")),
            "{what}: the metrics file records exit code {code}:\n{content}"
        );
        if args[0] == "inbox" {
            assert!(
                content.contains("\norderbatch_inbox_files{state=\"failed\"} 1\n"),
                "{what}: {content}"
            );
        }
        let out = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(File::open(env.path(&name)).unwrap())
            .output()
            .unwrap();
        assert_eq!(
            (out.status.code(), text(&out.stdout), text(&out.stderr)),
            (Some(0), String::new(), String::new()),
            "promtool check metrics on the metrics of a run that exits {code} ({what}):\n{content}"
        );
    }
}

#[test]
fn the_alert_rules_pass_promtool_check_rules_and_their_unit_tests() {
    let Some(paths) = tools("promtool test rules", &[PROMTOOL]) else {
        return;
    };
    let promtool = &paths[0];
    let check = Command::new(promtool)
        .args(["check", "rules", "deploy/prometheus/orderbatch-alerts.yml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", shown(&check));
    assert!(text(&check.stdout).contains("SUCCESS"), "{}", shown(&check));

    let test = Command::new(promtool)
        .args([
            "test",
            "rules",
            "deploy/prometheus/orderbatch-alerts.test.yml",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(test.status.code(), Some(0), "{}", shown(&test));
    assert!(text(&test.stdout).contains("SUCCESS"), "{}", shown(&test));
    assert!(!text(&test.stdout).contains("FAILED"), "{}", shown(&test));
}

/// node_exporter (textfile collector only) and Prometheus (scraping it every
/// second, evaluating deploy/prometheus/orderbatch-alerts.yml every second),
/// both on 127.0.0.1. After a successful run (of a file an inbox took, so
/// that the inbox's gauges are there too) and then a run aborted by
/// --max-errors (exit 4), each time once Prometheus holds exactly the samples
/// of the metrics file: every expression of deploy/grafana/queries.txt gives
/// data (finite values), every rule evaluates without an error; after the
/// success no alert is active, after the abort only OrderbatchLastRunFailed
/// is, for the node, with exit code 4, in the state its `for:` allows
/// (firing without one, pending or firing with one).
#[test]
fn node_exporter_and_prometheus_serve_the_dashboard_and_alert_on_a_failed_run() {
    let Some(paths) = tools(
        "node_exporter + Prometheus",
        &[PROMETHEUS, NODE_EXPORTER, CURL],
    ) else {
        return;
    };
    let [prometheus, node_exporter, curl] = <[PathBuf; 3]>::try_from(paths).unwrap();
    let queries: Vec<String> = std::fs::read_to_string(repo_file("deploy/grafana/queries.txt"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    assert!(queries.len() >= 10, "dashboard queries: {queries:?}");

    let env = Env::new();
    load_catalog(&env, 1000);
    let textfile = env.path("textfile");
    std::fs::create_dir(&textfile).unwrap();
    let metrics = textfile.join("orderbatch.prom");
    let metrics_arg = metrics.to_str().unwrap().to_string();

    let node_port = free_port();
    let instance = format!("127.0.0.1:{node_port}");
    let mut ne = Command::new(node_exporter);
    ne.arg("--collector.disable-defaults")
        .arg("--collector.textfile")
        .arg(format!(
            "--collector.textfile.directory={}",
            textfile.display()
        ))
        .arg(format!("--web.listen-address={instance}"));
    let node = Server::start("node_exporter", ne, env.path("node_exporter.log"));

    let prometheus_port = free_port();
    let rules = repo_file("deploy/prometheus/orderbatch-alerts.yml");
    let config = env.write(
        "prometheus.yml",
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules:?}\n\
             scrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: [{instance:?}]\n",
            rules = rules.display().to_string(),
        ),
    );
    let mut pr = Command::new(prometheus);
    pr.arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            env.path("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}"));
    let prom = Server::start("prometheus", pr, env.path("prometheus.log"));

    let mut stack = Stack {
        curl,
        servers: vec![node, prom],
        deadline: Instant::now() + DEADLINE,
        prometheus_port,
    };
    stack.poll("node_exporter answers", |s| {
        let body = s.get(node_port, "/metrics", None)?;
        body.contains("node_textfile_scrape_error")
            .then_some(())
            .ok_or(body)
    });
    stack.poll("Prometheus is ready", |s| {
        let body = s.get(prometheus_port, "/-/ready", None)?;
        body.contains("Ready").then_some(()).ok_or(body)
    });

    // 1. A successful run, of a file an inbox took: the dashboard has all
    // its data (the inbox's panels too), no alert is active.
    env.write("in/good.csv", orders("G", 300, None));
    let inbox = [
        "inbox",
        "in",
        "--settle",
        "0",
        "--metrics-file",
        &metrics_arg,
    ];
    env.ok(&inbox, 0);
    assert!(env.exists("in/done/good.csv"));
    let good = samples_of_file(&std::fs::read_to_string(&metrics).unwrap());
    assert_eq!(good["orderbatch_last_run_exit_code{}"], 0.0);
    let success = good["orderbatch_last_success_timestamp_seconds{}"];
    let scrape = stack.poll("Prometheus has the successful run's metrics", |s| {
        scraped(s, &good, &instance)
    });
    stack.poll(
        "every dashboard query has data after the successful run",
        |s| dashboard_ok(s, &queries),
    );
    stack.poll(
        "node_exporter's mtime of the metrics file matches the file regex of OrderbatchMetricsStale",
        |s| {
            let q = r#"node_textfile_mtime_seconds{file=~"(.*/)?orderbatch\\.prom"}"#;
            match s.query(q)?.len() {
                1 => Ok(()),
                n => Err(format!("{n} samples of {q}")),
            }
        },
    );
    let alert_rules = stack.poll("the rules evaluated on the successful run", |s| {
        rules_evaluated_since(s, scrape)
    });
    assert!(
        alert_rules.values().all(|r| r["state"] == "inactive"),
        "no alert is active after a successful run: {}",
        states_of(&alert_rules)
    );
    let failed_rule = alert_rules
        .get("OrderbatchLastRunFailed")
        .unwrap_or_else(|| panic!("the rule OrderbatchLastRunFailed: {alert_rules:?}"));
    // The state the rule defines for a failed run: firing at once without
    // a `for:`, pending (then firing) with one.
    let wait_for = failed_rule["duration"].as_f64().unwrap_or(0.0);
    let states: &[&str] = if wait_for == 0.0 {
        &["firing"]
    } else {
        &["pending", "firing"]
    };

    // 2. A run aborted by --max-errors (exit 4): the dashboard still has all
    // its data, the last success stays, and OrderbatchLastRunFailed (only it)
    // is active for the node with the exit code 4.
    env.write("bad.csv", orders("B", 300, Some(2)));
    env.ok(
        &[
            "process",
            "bad.csv",
            "--max-errors",
            "5",
            "--metrics-file",
            &metrics_arg,
        ],
        4,
    );
    let bad = samples_of_file(&std::fs::read_to_string(&metrics).unwrap());
    assert_eq!(bad["orderbatch_last_run_exit_code{}"], 4.0);
    assert_eq!(
        bad["orderbatch_last_success_timestamp_seconds{}"], success,
        "a failed run keeps the last success"
    );
    let scrape = stack.poll("Prometheus has the failed run's metrics", |s| {
        scraped(s, &bad, &instance)
    });
    stack.poll("every dashboard query has data after the failed run", |s| {
        dashboard_ok(s, &queries)?;
        let age = s.one("time() - orderbatch_last_success_timestamp_seconds")?;
        if !(0.0..120.0).contains(&age) {
            return Err(format!("the last success is {age} s old"));
        }
        let runs = s.one("changes(orderbatch_last_run_timestamp_seconds[1d])")?;
        if runs < 1.0 {
            return Err(format!("changes() of the run timestamp: {runs}"));
        }
        Ok(())
    });
    // The scrape's timestamp is taken before its samples are stored: an
    // evaluation a moment after it can still see the run before. So wait
    // (bounded) for an evaluation that sees the failed run, then check that
    // it is the only rule it makes active.
    let alert_rules = stack.poll(
        "the rules evaluated on the failed run, OrderbatchLastRunFailed active",
        |s| {
            let rules = rules_evaluated_since(s, scrape)?;
            match rules.get("OrderbatchLastRunFailed") {
                Some(r) if r["state"] != "inactive" => Ok(rules),
                Some(r) => Err(format!("OrderbatchLastRunFailed is {}", r["state"])),
                None => Err(format!(
                    "no rule OrderbatchLastRunFailed: {}",
                    states_of(&rules)
                )),
            }
        },
    );
    let active: Vec<&String> = alert_rules
        .iter()
        .filter(|(_, r)| r["state"] != "inactive")
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        active,
        ["OrderbatchLastRunFailed"],
        "the alert rules active after a run that exits 4: {}",
        states_of(&alert_rules)
    );
    let alert = stack.poll("OrderbatchLastRunFailed in /api/v1/alerts", |s| {
        let data = s.api("/api/v1/alerts", None)?;
        let all = data["alerts"].as_array().cloned().unwrap_or_default();
        match all.as_slice() {
            [a] if a["labels"]["alertname"] == "OrderbatchLastRunFailed"
                && states.iter().any(|st| a["state"] == *st) =>
            {
                Ok(a.clone())
            }
            _ => Err(format!("alerts: {data}")),
        }
    });
    assert_eq!(alert["labels"]["instance"], instance.as_str(), "{alert}");
    assert_eq!(alert["labels"]["job"], "node", "{alert}");
    assert_eq!(alert["labels"]["severity"], "critical", "{alert}");
    assert_eq!(
        alert["value"].as_str().and_then(|v| v.parse::<f64>().ok()),
        Some(4.0),
        "{alert}"
    );
    let summary = alert["annotations"]["summary"].as_str().unwrap_or_default();
    assert_eq!(
        summary,
        format!(
            "orderbatch on {instance}: last run failed with exit code 4 (aborted by --max-errors)"
        ),
        "{alert}"
    );
}

/// deploy/systemd/orderbatch-inbox.service: `systemd-analyze verify` finds
/// nothing to say about it (its ExecStart pointed at the built binary), it
/// has what the README promises (restart on failure, SIGTERM, a strict
/// sandbox, an environment file for the URL), and its command line, with
/// the directories of a test and without --watch, runs.
#[test]
fn the_inbox_unit_passes_systemd_analyze_verify_and_its_command_runs() {
    let Some(paths) = tools("systemd-analyze verify", &[SYSTEMD_ANALYZE]) else {
        return;
    };
    let unit =
        std::fs::read_to_string(repo_file("deploy/systemd/orderbatch-inbox.service")).unwrap();
    for needed in [
        "Restart=on-failure",
        "KillSignal=SIGTERM",
        "ProtectSystem=strict",
        "ReadWritePaths=/srv/orders/in /srv/orders/reports",
        "EnvironmentFile=",
    ] {
        assert!(unit.contains(needed), "{needed} in the unit");
    }
    let env = Env::new();
    let built = bin_path().display().to_string();
    let path = env.write(
        "orderbatch-inbox.service",
        unit.replace("/usr/local/bin/orderbatch", &built),
    );
    let out = Command::new(&paths[0])
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        !said.contains("orderbatch-inbox.service"),
        "systemd-analyze verify has something to say about the unit:\n{said}"
    );
    // Its command line: the unit's directories swapped for the test's.
    let exec = unit
        .replace("\\\n", " ")
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart=").map(str::to_string))
        .expect("an ExecStart line");
    let args: Vec<String> = exec
        .split_whitespace()
        .skip(1)
        .filter(|a| *a != "--watch")
        .map(|a| {
            a.replace("/srv/orders/", "")
                .replace("/var/lib/node_exporter/textfile/", "")
        })
        .collect();
    env.write("catalog.csv", catalog(5, 10));
    env.ok(&["inventory", "load", "catalog.csv"], 0);
    env.write("in/a.csv", csv_file(&[order_rows("U-1", &[(0, 1)])]));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    env.ok(&[&args[..], &["--settle", "0"]].concat(), 0);
    assert!(env.exists("in/done/a.csv") && env.exists("orderbatch.prom"));
}
