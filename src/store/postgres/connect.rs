//! Connecting to PostgreSQL from a read URL ([`PgUrl`]): the client crate's
//! configuration made from it, TLS as libpq's `sslmode` and `sslrootcert`
//! ask, and a failure told with what to check. Messages name the database
//! by its shown name, never by the text given.

use std::time::Duration;

use postgres::error::SqlState;
use postgres::Client;

use super::url::{PgUrl, SslMode, Verify};
use crate::store::{Result, StoreError};

/// How long a connection attempt may take when the URL does not say.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A session on the server `url` names; `name` is its shown name.
pub(super) fn connect(url: &PgUrl, name: &str) -> Result<Client> {
    let unavailable = |what: String| StoreError::Unavailable {
        db: name.to_string(),
        what,
    };
    let mut config = url.client_config()?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    // Over Unix sockets there is no TLS (as in libpq, sslmode means nothing
    // there): the system's certificates are not even read, which costs tens
    // of milliseconds per connection.
    let connected = if url.is_local() {
        config.ssl_mode(postgres::config::SslMode::Disable);
        config.connect(postgres::NoTls)
    } else {
        config.connect(tls(url).map_err(unavailable)?)
    };
    connected.map_err(|e| unavailable(failure(&e, url)))
}

/// The TLS connector `sslmode` and `sslrootcert` ask for.
fn tls(url: &PgUrl) -> std::result::Result<postgres_native_tls::MakeTlsConnector, String> {
    let mut b = native_tls::TlsConnector::builder();
    if let Some(path) = &url.sslrootcert {
        let pem = std::fs::read(path).map_err(|e| {
            format!("cannot read sslrootcert {path}: {e}: give the path of the CA certificate (PEM) that signed the server's")
        })?;
        let cert = native_tls::Certificate::from_pem(&pem)
            .map_err(|e| format!("sslrootcert {path} is not a PEM certificate: {e}"))?;
        b.add_root_certificate(cert);
    }
    match url.sslmode.map_or(Verify::Nothing, SslMode::verify) {
        // As libpq: require encrypts but checks nothing (verify-ca/full check).
        Verify::Nothing => {
            b.danger_accept_invalid_certs(true)
                .danger_accept_invalid_hostnames(true);
        }
        Verify::Chain => {
            b.danger_accept_invalid_hostnames(true);
        }
        Verify::Full => {}
    }
    let c = b.build().map_err(|e| format!("cannot set up TLS: {e}"))?;
    Ok(postgres_native_tls::MakeTlsConnector::new(c))
}

/// Why a connection failed, and what to check: the server's own reason
/// (wrong password, no such database, no pg_hba.conf line), the TLS
/// handshake's, or the network's.
fn failure(e: &postgres::Error, url: &PgUrl) -> String {
    if let Some(d) = e.as_db_error() {
        let code = d.code();
        let check = if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            "check the user and password in the URL (percent-encoded) and the server's pg_hba.conf"
        } else if *code == SqlState::INVALID_CATALOG_NAME {
            "check the database name in the URL, or create the database"
        } else {
            "check that the server accepts this user (pg_hba.conf), and the URL"
        };
        return format!("{}: {check}", d.message());
    }
    let source = std::error::Error::source(e).map(ToString::to_string);
    let why = match &source {
        Some(src) => format!("{e}: {src}"),
        None => e.to_string(),
    };
    // The client crate's kinds of error are not public; its message for a
    // failed handshake is fixed.
    if e.to_string() == "error performing TLS handshake" {
        return format!("{why}: {}", tls_advice(url, source.as_deref()));
    }
    if source.as_deref() == Some("password missing") {
        return format!(
            "{why}: the server asks for a password: give it in the URL, percent-encoded \
             (postgresql://USER:PASSWORD@HOST:PORT/DBNAME)"
        );
    }
    format!("{why}: check that the server runs and accepts this user (pg_hba.conf), and the URL")
}

/// What to check when TLS failed, for the `sslmode` the URL gives.
fn tls_advice(url: &PgUrl, source: Option<&str>) -> String {
    if source == Some("server does not support TLS") {
        return "the server does not offer TLS: turn ssl on in its postgresql.conf, or give \
                sslmode=prefer (encrypted where the server offers it) or sslmode=disable"
            .into();
    }
    let mode = url.sslmode.map_or("prefer", SslMode::as_str);
    let roots = match &url.sslrootcert {
        Some(path) => format!("sslrootcert={path}"),
        None => "the system's trusted certificates (no sslrootcert given)".into(),
    };
    format!(
        "check sslmode (here {mode}: verify-ca and verify-full check the server's certificate \
         against {roots}, verify-full also its host name; require encrypts without checking) \
         and sslrootcert (the CA certificate, PEM, that signed the server's)"
    )
}
