//! PostgreSQL connection URLs (libpq's syntax), read once into a [`PgUrl`]:
//! the connection is configured from that structure, and the name that
//! messages, logs and the run history show is derived from it, without the
//! password. The text itself is never cut up to hide a password: a cut that
//! misreads the URL would show what it missed.
//!
//! The one rule for reading a URL, for connecting and showing alike: the
//! authority (`USER:PASSWORD@HOSTS`) ends at the first `/` or `?`; it holds at
//! most one `@`, the one before the hosts, and no other `@` or any `#` may
//! follow anywhere. A user name or password holding `@ / ? #` unencoded
//! cannot be read one way only (libpq and the client crate would each read
//! it differently), so such a URL is refused, saying how to percent-encode
//! it; a `:` in the password is plain (the first `:` ends the user name).
//! Every part is percent-decoded as libpq does, parameter names included
//! (`pass%77ord` is `password`), and a parameter that libpq documents
//! overrides the authority's part of the same name (`?host=/tmp/sock`).
//! Parameters orderbatch does not know are refused by name; a
//! `--db` that looks like a libpq keyword/value string, or like a URL of
//! another kind, is refused rather than taken for a SQLite file name.

use std::fmt;

use postgres::config::SslMode as ClientSslMode;
use postgres::Config;

mod settings;

pub use settings::Setting;

/// The parameters a URL may have, for the message that refuses another.
const KNOWN: &str = "user, password, host, port, dbname, sslmode, sslrootcert, application_name, \
     options, connect_timeout, tcp_user_timeout, keepalives, keepalives_idle, keepalives_interval, \
     keepalives_retries, target_session_attrs, channel_binding, load_balance_hosts, sslnegotiation, hostaddr";

/// The URL form, for messages that refuse something else.
const FORM: &str = "postgresql://USER:PASSWORD@HOST:PORT/DBNAME?sslmode=require";

/// Why a `--db` cannot be used. No message holds the password, nor any
/// part of the text that might be one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error(
        "the PostgreSQL URL cannot be read one way only: it has an '@' after a '/' or '?', more than one '@', \
         or a '#'. Percent-encode these characters in a user name or password: @ as %40, / as %2F, \
         ? as %3F, # as %23, % as %25, : as %3A (in a user name), & as %26 (in a password= parameter) ({})",
        FORM
    )]
    Ambiguous,
    #[error("the {0} in the PostgreSQL URL has a '%' without two hexadecimal digits after it: write a '%' itself as %25")]
    BadEscape(&'static str),
    #[error("the {0} in the PostgreSQL URL is not UTF-8 text once percent-decoded")]
    NotText(&'static str),
    #[error("the {0} in the PostgreSQL URL holds a NUL character (%00)")]
    Nul(&'static str),
    #[error(
        "the host list of the PostgreSQL URL has an empty entry or a '[' without its ']': \
         write HOST:PORT,HOST:PORT (an IPv6 address in brackets: [::1]:5432)"
    )]
    BadHost,
    #[error(
        "a port in the PostgreSQL URL is not a number from 0 to 65535; if the text after a ':' \
         is a password, it needs an '@' before the host ({})",
        FORM
    )]
    BadPort,
    #[error("the PostgreSQL URL has {ports} ports for {hosts} hosts: give one port for all, or one per host")]
    PortCount { hosts: usize, ports: usize },
    #[error("the PostgreSQL URL parameter {0:?} is not one orderbatch knows; it knows {known}", known = KNOWN)]
    Unknown(String),
    #[error(
        "a parameter after password= in the PostgreSQL URL is not NAME=VALUE with a NAME orderbatch knows \
         (not shown: it may be part of the password, whose '&' must be percent-encoded as %26); it knows {}",
        KNOWN
    )]
    Unnamed,
    #[error("the PostgreSQL URL parameter {0:?} has no value: write {0}=VALUE")]
    NoValue(String),
    #[error("{name}={value:?} in the PostgreSQL URL is not valid: it takes {expected}")]
    BadValue {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error(
        "--db looks like a libpq keyword/value string (host=... dbname=...), which orderbatch does not take: \
         give a PostgreSQL URL, {} (a socket directory as the host percent-encoded, %2Fvar%2Frun%2Fpostgresql), \
         or, for a SQLite file whose name holds such a word, its path as ./NAME",
        FORM
    )]
    KeywordValue,
    #[error(
        "--db looks like a URL, but orderbatch opens only PostgreSQL URLs that start with postgresql:// \
         or postgres:// ({}), and SQLite files by path",
        FORM
    )]
    OtherUrl,
}

/// Whether `db` is a PostgreSQL URL rather than a SQLite path.
pub fn is_url(db: &str) -> bool {
    scheme_of(db).is_some()
}

/// The scheme as written (lower case) and the text after `://`.
fn scheme_of(db: &str) -> Option<(&'static str, &str)> {
    ["postgresql", "postgres"].into_iter().find_map(|scheme| {
        let rest = db.get(scheme.len()..)?.strip_prefix("://")?;
        let named = db.get(..scheme.len())?.eq_ignore_ascii_case(scheme);
        named.then_some((scheme, rest))
    })
}

/// The libpq keywords a keyword/value connection string is told by.
const KEYWORDS: [&str; 14] = [
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "service",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "options",
    "application_name",
];

/// Refuse a `--db` that is not a PostgreSQL URL but must not be taken for
/// a SQLite path either: a file would be created under a name that may hold
/// a password, and every message would show it. A libpq keyword/value
/// string has a known keyword and `=` at the start of a word; a URL of
/// another scheme than SQLite's own `file:` has `://`; and a PostgreSQL URL
/// missing a slash starts with `postgres:`.
pub fn refuse_lookalikes(db: &str) -> Result<(), UrlError> {
    let word_starts = std::iter::once(0).chain(
        db.char_indices()
            .filter(|(_, c)| c.is_whitespace())
            .map(|(i, c)| i + c.len_utf8()),
    );
    let keyword_at = |i: usize| {
        KEYWORDS.iter().any(|k| {
            db[i..]
                .strip_prefix(k)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
    };
    if db.contains('=') && { word_starts }.any(keyword_at) {
        return Err(UrlError::KeywordValue);
    }
    let other_scheme = db.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            && !scheme.eq_ignore_ascii_case("file")
    });
    let lower = db.get(..11).unwrap_or(db).to_ascii_lowercase();
    if other_scheme || lower.starts_with("postgres:") || lower.starts_with("postgresql:") {
        return Err(UrlError::OtherUrl);
    }
    Ok(())
}

/// A password: its bytes, never shown (not even by `Debug`).
#[derive(Clone, PartialEq, Eq)]
pub struct Password(Vec<u8>);

impl Password {
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(not shown)")
    }
}

/// A host: a name or address over TCP, or a Unix-socket directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Tcp(String),
    Socket(String),
}

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

const SSL_MODES: [(SslMode, &str); 6] = [
    (SslMode::Disable, "disable"),
    (SslMode::Allow, "allow"),
    (SslMode::Prefer, "prefer"),
    (SslMode::Require, "require"),
    (SslMode::VerifyCa, "verify-ca"),
    (SslMode::VerifyFull, "verify-full"),
];

impl SslMode {
    fn named(s: &str) -> Option<SslMode> {
        SSL_MODES.iter().find(|(_, n)| *n == s).map(|(m, _)| *m)
    }

    pub fn as_str(self) -> &'static str {
        SSL_MODES
            .iter()
            .find(|(m, _)| *m == self)
            .map_or("prefer", |(_, n)| n)
    }

    /// What the client crate is told: it knows disable, prefer and require
    /// only; the checks of verify-ca and verify-full are ours (see
    /// [`SslMode::verify`]), and `allow` is taken as `prefer`.
    pub fn client(self) -> ClientSslMode {
        match self {
            SslMode::Disable => ClientSslMode::Disable,
            SslMode::Allow | SslMode::Prefer => ClientSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => ClientSslMode::Require,
        }
    }

    /// How the server's certificate is checked.
    pub fn verify(self) -> Verify {
        match self {
            SslMode::VerifyCa => Verify::Chain,
            SslMode::VerifyFull => Verify::Full,
            _ => Verify::Nothing,
        }
    }
}

/// How the server's certificate is checked, as libpq's `sslmode` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// disable, allow, prefer, require: encrypted (where asked) but not checked.
    Nothing,
    /// verify-ca: the certificate chain must lead to a trusted root.
    Chain,
    /// verify-full: the chain, and the host name must match.
    Full,
}

/// A PostgreSQL URL, read: what the connection is made from, and what its
/// shown name is derived from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgUrl {
    /// `postgresql` or `postgres`, as written.
    scheme: &'static str,
    pub user: Option<String>,
    pub password: Option<Password>,
    pub hosts: Vec<Host>,
    /// One port for every host, or one per host (`None`: the default, 5432).
    pub ports: Vec<Option<u16>>,
    pub dbname: Option<String>,
    pub sslmode: Option<SslMode>,
    /// The file of trusted root certificates (PEM).
    pub sslrootcert: Option<String>,
    /// The other parameters, decoded and checked, in the order first
    /// written (a name given again replaces its value, as in libpq).
    pub settings: Vec<(Setting, String)>,
}

impl PgUrl {
    /// Read a URL by the rule of this module's documentation.
    pub fn parse(url: &str) -> Result<PgUrl, UrlError> {
        let (scheme, rest) = scheme_of(url).ok_or(UrlError::OtherUrl)?;
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if rest.contains('#') || tail.contains('@') || authority.matches('@').count() > 1 {
            return Err(UrlError::Ambiguous);
        }
        let mut parsed = PgUrl {
            scheme,
            user: None,
            password: None,
            hosts: Vec::new(),
            ports: Vec::new(),
            dbname: None,
            sslmode: None,
            sslrootcert: None,
            settings: Vec::new(),
        };
        let hosts = match authority.split_once('@') {
            Some((userinfo, hosts)) => {
                parsed.read_userinfo(userinfo)?;
                hosts
            }
            None => authority,
        };
        parsed.read_hosts(hosts)?;
        let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
        if let Some(db) = path.strip_prefix('/').filter(|d| !d.is_empty()) {
            parsed.dbname = Some(decode_text(db, "database name")?);
        }
        parsed.read_query(query)?;
        parsed.check_ports()?;
        Ok(parsed)
    }

    /// `USER[:PASSWORD]`: the first `:` ends the user name. Empty parts are
    /// not set, as in libpq.
    fn read_userinfo(&mut self, userinfo: &str) -> Result<(), UrlError> {
        let (user, password) = match userinfo.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (userinfo, None),
        };
        self.user = Some(decode_text(user, "user name")?).filter(|u| !u.is_empty());
        if let Some(p) = password {
            self.password = Some(decode(p, "password")?)
                .filter(|p| !p.is_empty())
                .map(Password);
        }
        Ok(())
    }

    /// `HOST[:PORT],...`, a host in brackets being an IPv6 address.
    fn read_hosts(&mut self, list: &str) -> Result<(), UrlError> {
        if list.is_empty() {
            return Ok(());
        }
        let many = list.contains(',');
        for entry in list.split(',') {
            let (host, port) = match entry.strip_prefix('[') {
                Some(bracketed) => {
                    let (host, after) = bracketed.split_once(']').ok_or(UrlError::BadHost)?;
                    match after {
                        "" => (host, None),
                        _ => (
                            host,
                            Some(after.strip_prefix(':').ok_or(UrlError::BadHost)?),
                        ),
                    }
                }
                None => match entry.split_once(':') {
                    Some((h, p)) => (h, Some(p)),
                    None => (entry, None),
                },
            };
            let host = decode_text(host, "host")?;
            match (host.is_empty(), many) {
                (true, true) => return Err(UrlError::BadHost),
                (true, false) => {}
                (false, _) => self.hosts.push(host_named(host)),
            }
            self.ports.push(port.map(read_port).transpose()?.flatten());
        }
        // No port anywhere is the default for all (and fits any `?host=`).
        if self.ports.iter().all(Option::is_none) {
            self.ports.clear();
        }
        Ok(())
    }

    /// `NAME=VALUE&...`, names and values percent-decoded. A name that
    /// follows `password=` is not shown in errors: with an unencoded `&`
    /// in the password, it would be the password's end.
    fn read_query(&mut self, query: &str) -> Result<(), UrlError> {
        let mut after_password = false;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = match pair.split_once('=') {
                Some((n, v)) => (decode_text(n, "parameter name")?, v),
                None if after_password => return Err(UrlError::Unnamed),
                None => return Err(UrlError::NoValue(decode_text(pair, "parameter name")?)),
            };
            match self.set(&name, value) {
                Err(UrlError::Unknown(_)) if after_password => return Err(UrlError::Unnamed),
                other => other?,
            }
            after_password = name == "password";
        }
        Ok(())
    }

    /// One parameter, its value as written (percent-encoded).
    fn set(&mut self, name: &str, raw: &str) -> Result<(), UrlError> {
        if name == "password" {
            self.password = Some(decode(raw, "password")?)
                .filter(|p| !p.is_empty())
                .map(Password);
            return Ok(());
        }
        let value = decode_text(raw, "value of a parameter")?;
        match name {
            "user" => self.user = Some(value).filter(|v| !v.is_empty()),
            "dbname" => self.dbname = Some(value).filter(|v| !v.is_empty()),
            "host" => {
                let hosts: Vec<&str> = value.split(',').collect();
                if hosts.iter().any(|h| h.is_empty()) {
                    return Err(UrlError::BadHost);
                }
                self.hosts = hosts
                    .into_iter()
                    .map(|h| host_named(h.to_string()))
                    .collect();
            }
            "port" => {
                let ports: Result<Vec<_>, _> = value.split(',').map(port_number).collect();
                self.ports = ports?;
            }
            "sslmode" => {
                let mode = SslMode::named(&value).ok_or_else(|| UrlError::BadValue {
                    name: "sslmode",
                    value: value.clone(),
                    expected: "disable, allow, prefer, require, verify-ca or verify-full",
                })?;
                self.sslmode = Some(mode);
            }
            "sslrootcert" => self.sslrootcert = Some(value),
            _ => self.set_setting(name, value)?,
        }
        Ok(())
    }

    fn set_setting(&mut self, name: &str, value: String) -> Result<(), UrlError> {
        let setting = Setting::named(name).ok_or_else(|| UrlError::Unknown(name.to_string()))?;
        setting
            .apply(&mut Config::new(), &value)
            .map_err(|expected| UrlError::BadValue {
                name: setting.name(),
                value: value.clone(),
                expected,
            })?;
        match self.settings.iter_mut().find(|(s, _)| *s == setting) {
            Some(slot) => slot.1 = value,
            None => self.settings.push((setting, value)),
        }
        Ok(())
    }

    /// As libpq: one port for all hosts, or one for each.
    fn check_ports(&self) -> Result<(), UrlError> {
        let (hosts, ports) = (self.hosts.len(), self.ports.len());
        if ports <= 1 || ports == hosts {
            Ok(())
        } else {
            Err(UrlError::PortCount { hosts, ports })
        }
    }

    /// The port of the `i`-th host, where one is given.
    fn port_of(&self, i: usize) -> Option<u16> {
        match self.ports.as_slice() {
            [one] => *one,
            ports => ports.get(i).copied().flatten(),
        }
    }

    /// The configuration of the client crate, made from this structure (the
    /// crate's own, lenient reading of the text is never used).
    pub fn client_config(&self) -> Result<Config, UrlError> {
        let mut config = Config::new();
        if let Some(user) = &self.user {
            config.user(user);
        }
        if let Some(password) = &self.password {
            config.password(password.bytes());
        }
        if let Some(db) = &self.dbname {
            config.dbname(db);
        }
        for host in &self.hosts {
            match host {
                Host::Tcp(name) => config.host(name),
                Host::Socket(dir) => config.host_path(dir),
            };
        }
        for port in &self.ports {
            config.port(port.unwrap_or(5432));
        }
        config.ssl_mode(self.sslmode.map_or(ClientSslMode::Prefer, SslMode::client));
        // The sessions of orderbatch are told by their name, unless the URL names them.
        config.application_name("orderbatch");
        for (setting, value) in &self.settings {
            setting
                .apply(&mut config, value)
                .map_err(|expected| UrlError::BadValue {
                    name: setting.name(),
                    value: value.clone(),
                    expected,
                })?;
        }
        Ok(config)
    }

    /// The URL as messages, logs and the run history show it: every part but
    /// the password, in one form (`postgresql://USER@HOST:PORT/DBNAME?...`)
    /// that reads back as the same connection, less its password.
    pub fn shown(&self) -> String {
        let mut s = format!("{}://", self.scheme);
        if let Some(user) = &self.user {
            s.push_str(&encode(user, b""));
            s.push('@');
        }
        s.push_str(&self.shown_hosts());
        if let Some(db) = &self.dbname {
            s.push('/');
            s.push_str(&encode(db, b""));
        }
        let mut params = Vec::new();
        if let Some(mode) = self.sslmode {
            params.push(format!("sslmode={}", mode.as_str()));
        }
        if let Some(path) = &self.sslrootcert {
            params.push(format!("sslrootcert={}", encode(path, b"/:")));
        }
        for (setting, value) in &self.settings {
            params.push(format!("{}={}", setting.name(), encode(value, b"/:,")));
        }
        if !params.is_empty() {
            s.push('?');
            s.push_str(&params.join("&"));
        }
        s
    }

    fn shown_hosts(&self) -> String {
        if self.hosts.is_empty() {
            return self.port_of(0).map(|p| format!(":{p}")).unwrap_or_default();
        }
        let shown: Vec<String> = self
            .hosts
            .iter()
            .enumerate()
            .map(|(i, host)| {
                let name = match host {
                    Host::Tcp(name) if name.contains(':') => format!("[{}]", encode(name, b":")),
                    Host::Tcp(name) | Host::Socket(name) => encode(name, b""),
                };
                match self.port_of(i) {
                    Some(port) => format!("{name}:{port}"),
                    None => name,
                }
            })
            .collect();
        shown.join(",")
    }

    pub fn is_local(&self) -> bool {
        !self.hosts.is_empty() && self.hosts.iter().all(|h| matches!(h, Host::Socket(_)))
    }
}

/// A host name, or a socket directory (an absolute path, as in libpq).
fn host_named(host: String) -> Host {
    if host.starts_with('/') {
        Host::Socket(host)
    } else {
        Host::Tcp(host)
    }
}

/// A port as written in the authority (percent-encoded).
fn read_port(raw: &str) -> Result<Option<u16>, UrlError> {
    port_number(&decode_text(raw, "port").map_err(|_| UrlError::BadPort)?)
}

/// A port, decoded; empty is the default.
fn port_number(port: &str) -> Result<Option<u16>, UrlError> {
    if port.is_empty() {
        return Ok(None);
    }
    port.parse().map(Some).map_err(|_| UrlError::BadPort)
}

/// `%XX` decoded, as libpq does: a `%` without two hex digits, or a NUL,
/// is refused.
fn decode(s: &str, part: &'static str) -> Result<Vec<u8>, UrlError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let hex = |j: usize| b.get(j).and_then(|c| (*c as char).to_digit(16));
        let (Some(h), Some(l)) = (hex(i + 1), hex(i + 2)) else {
            return Err(UrlError::BadEscape(part));
        };
        let byte = (h * 16 + l) as u8;
        if byte == 0 {
            return Err(UrlError::Nul(part));
        }
        out.push(byte);
        i += 3;
    }
    Ok(out)
}

fn decode_text(s: &str, part: &'static str) -> Result<String, UrlError> {
    String::from_utf8(decode(s, part)?).map_err(|_| UrlError::NotText(part))
}

/// Percent-encoded but for RFC 3986's unreserved characters and `keep`.
fn encode(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
