//! The parameters of a URL that the client crate takes as they are
//! (`application_name`, `connect_timeout`, `keepalives`...): their names,
//! and the one reading of each value, used both to check a URL and to
//! configure the connection.

use std::time::Duration;

use postgres::config::{ChannelBinding, LoadBalanceHosts, SslNegotiation, TargetSessionAttrs};
use postgres::Config;

/// A parameter besides those that name the connection's parts (user,
/// password, host, port, dbname) and its TLS (sslmode, sslrootcert): passed
/// to the client crate as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    ApplicationName,
    Options,
    ConnectTimeout,
    TcpUserTimeout,
    Keepalives,
    KeepalivesIdle,
    KeepalivesInterval,
    KeepalivesRetries,
    TargetSessionAttrs,
    ChannelBinding,
    LoadBalanceHosts,
    SslNegotiation,
    HostAddr,
}

const SETTINGS: [(Setting, &str); 13] = [
    (Setting::ApplicationName, "application_name"),
    (Setting::Options, "options"),
    (Setting::ConnectTimeout, "connect_timeout"),
    (Setting::TcpUserTimeout, "tcp_user_timeout"),
    (Setting::Keepalives, "keepalives"),
    (Setting::KeepalivesIdle, "keepalives_idle"),
    (Setting::KeepalivesInterval, "keepalives_interval"),
    (Setting::KeepalivesRetries, "keepalives_retries"),
    (Setting::TargetSessionAttrs, "target_session_attrs"),
    (Setting::ChannelBinding, "channel_binding"),
    (Setting::LoadBalanceHosts, "load_balance_hosts"),
    (Setting::SslNegotiation, "sslnegotiation"),
    (Setting::HostAddr, "hostaddr"),
];

/// Whole seconds; as libpq, zero or less means no limit (left unset).
fn seconds(value: &str) -> Result<Option<Duration>, &'static str> {
    let n: i64 = value.parse().map_err(|_| "a whole number of seconds")?;
    Ok(u64::try_from(n)
        .ok()
        .filter(|n| *n > 0)
        .map(Duration::from_secs))
}

/// One of `choices` by its name.
fn choice<T: Copy>(
    value: &str,
    choices: &[(&str, T)],
    expected: &'static str,
) -> Result<T, &'static str> {
    choices
        .iter()
        .find(|(n, _)| *n == value)
        .map(|(_, v)| *v)
        .ok_or(expected)
}

impl Setting {
    pub(super) fn named(name: &str) -> Option<Setting> {
        SETTINGS.iter().find(|(_, n)| *n == name).map(|(s, _)| *s)
    }

    pub fn name(self) -> &'static str {
        SETTINGS
            .iter()
            .find(|(s, _)| *s == self)
            .map_or("", |(_, n)| n)
    }

    /// Set this on `config`. The one reading of each value: a URL is
    /// checked by applying its settings to a scratch configuration, and
    /// connected by applying them to the real one. The error says what
    /// the value should be.
    pub fn apply(self, config: &mut Config, value: &str) -> Result<(), &'static str> {
        match self {
            Setting::ApplicationName => {
                config.application_name(value);
            }
            Setting::Options => {
                config.options(value);
            }
            Setting::ConnectTimeout => {
                if let Some(d) = seconds(value)? {
                    config.connect_timeout(d);
                }
            }
            Setting::TcpUserTimeout => {
                if let Some(d) = seconds(value)? {
                    config.tcp_user_timeout(d);
                }
            }
            Setting::Keepalives => {
                let n: u64 = value.parse().map_err(|_| "0 (off) or 1 (on)")?;
                config.keepalives(n != 0);
            }
            Setting::KeepalivesIdle => {
                if let Some(d) = seconds(value)? {
                    config.keepalives_idle(d);
                }
            }
            Setting::KeepalivesInterval => {
                if let Some(d) = seconds(value)? {
                    config.keepalives_interval(d);
                }
            }
            Setting::KeepalivesRetries => {
                config.keepalives_retries(value.parse().map_err(|_| "a whole number")?);
            }
            Setting::HostAddr => {
                for addr in value.split(',') {
                    let ip = addr
                        .parse()
                        .map_err(|_| "IP addresses, separated by commas")?;
                    config.hostaddr(ip);
                }
            }
            _ => self.apply_choice(config, value)?,
        }
        Ok(())
    }

    /// The settings whose value is one of a few names.
    fn apply_choice(self, config: &mut Config, value: &str) -> Result<(), &'static str> {
        match self {
            Setting::TargetSessionAttrs => {
                config.target_session_attrs(choice(
                    value,
                    &[
                        ("any", TargetSessionAttrs::Any),
                        ("read-write", TargetSessionAttrs::ReadWrite),
                        ("read-only", TargetSessionAttrs::ReadOnly),
                    ],
                    "any, read-write or read-only",
                )?);
            }
            Setting::ChannelBinding => {
                config.channel_binding(choice(
                    value,
                    &[
                        ("disable", ChannelBinding::Disable),
                        ("prefer", ChannelBinding::Prefer),
                        ("require", ChannelBinding::Require),
                    ],
                    "disable, prefer or require",
                )?);
            }
            Setting::LoadBalanceHosts => {
                config.load_balance_hosts(choice(
                    value,
                    &[
                        ("disable", LoadBalanceHosts::Disable),
                        ("random", LoadBalanceHosts::Random),
                    ],
                    "disable or random",
                )?);
            }
            Setting::SslNegotiation => {
                config.ssl_negotiation(choice(
                    value,
                    &[
                        ("postgres", SslNegotiation::Postgres),
                        ("direct", SslNegotiation::Direct),
                    ],
                    "postgres or direct",
                )?);
            }
            _ => return Err("a value orderbatch knows"),
        }
        Ok(())
    }
}
