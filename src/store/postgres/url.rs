//! PostgreSQL connection URLs: recognising one, showing one without its
//! password (in the user-info part or as a `password=` parameter), and the
//! TLS settings of libpq's `sslmode` and `sslrootcert` that the client crate
//! does not know itself.

/// Whether `db` is a PostgreSQL URL rather than a SQLite path.
pub fn is_url(db: &str) -> bool {
    let lower = db.get(..13).unwrap_or(db).to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// The URL with any password removed, for messages and the history.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority_end, _) = rest
        .char_indices()
        .find(|(_, c)| matches!(c, '/' | '?' | '#'))
        .unwrap_or((rest.len(), ' '));
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{user}@{hosts}")
        }
        None => authority.to_string(),
    };
    format!("{scheme}://{authority}{}", redact_query(tail))
}

/// `password=...` parameters of the query string removed.
fn redact_query(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_string();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| {
            let key = kv.split_once('=').map_or(*kv, |(k, _)| k);
            !key.eq_ignore_ascii_case("password")
        })
        .collect();
    if kept.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", kept.join("&"))
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

/// A URL as the client crate takes it, and what it leaves to us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub url: String,
    pub verify: Verify,
    /// The file of trusted root certificates (PEM), from `sslrootcert`.
    pub root_cert: Option<String>,
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Take `sslmode=verify-ca|verify-full` (as `require`) and `sslrootcert` out
/// of the URL's parameters; `allow` is taken as `prefer`. Errors name the
/// parameter, never the URL (it may hold a password).
pub fn prepare(url: &str) -> Result<Prepared, String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => (url, ""),
    };
    let mut kept = Vec::new();
    let mut verify = Verify::Nothing;
    let mut root_cert = None;
    for kv in query.split('&').filter(|kv| !kv.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match (k, percent_decode(v).as_str()) {
            ("sslmode", "verify-ca") => {
                verify = Verify::Chain;
                kept.push("sslmode=require".to_string());
            }
            ("sslmode", "verify-full") => {
                verify = Verify::Full;
                kept.push("sslmode=require".to_string());
            }
            ("sslmode", "allow") => kept.push("sslmode=prefer".to_string()),
            ("sslmode", "disable" | "prefer" | "require") => kept.push(kv.to_string()),
            ("sslmode", other) => {
                return Err(format!(
                    "sslmode={other} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                ))
            }
            ("sslrootcert", path) => root_cert = Some(path.to_string()),
            _ => kept.push(kv.to_string()),
        }
    }
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok(Prepared {
        url,
        verify,
        root_cert,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_from_paths() {
        assert!(is_url("postgres://h/db"));
        assert!(is_url("PostgreSQL://h/db"));
        assert!(!is_url("postgres.db"));
        assert!(!is_url("./postgres://x"));
        assert!(!is_url(""));
    }

    #[test]
    fn libpq_tls_settings_are_taken_out_of_the_url() {
        let p = prepare("postgres://u:pw@h/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x").unwrap();
        assert_eq!(
            p.url,
            "postgres://u:pw@h/db?sslmode=require&application_name=x"
        );
        assert_eq!(p.verify, Verify::Full);
        assert_eq!(p.root_cert.as_deref(), Some("/etc/ca.pem"));
        let p = prepare("postgres://h/db?sslmode=verify-ca").unwrap();
        assert_eq!(
            (p.url.as_str(), p.verify),
            ("postgres://h/db?sslmode=require", Verify::Chain)
        );
        let p = prepare("postgres://h/db").unwrap();
        assert_eq!(
            (p.url.as_str(), p.verify, p.root_cert),
            ("postgres://h/db", Verify::Nothing, None)
        );
        assert_eq!(
            prepare("postgres://h/db?sslmode=allow").unwrap().url,
            "postgres://h/db?sslmode=prefer"
        );
        let e = prepare("postgres://u:secret@h/db?sslmode=maybe").unwrap_err();
        assert!(e.contains("maybe") && !e.contains("secret"));
    }

    #[test]
    fn passwords_never_survive() {
        for (url, want) in [
            ("postgres://u:pw@h:5432/db", "postgres://u@h:5432/db"),
            (
                "postgresql://u:p%40ss@h/db?sslmode=require",
                "postgresql://u@h/db?sslmode=require",
            ),
            (
                "postgres://h/db?user=u&password=pw&sslmode=require",
                "postgres://h/db?user=u&sslmode=require",
            ),
            ("postgres://h/db?password=pw", "postgres://h/db"),
            ("postgres://u@h/db", "postgres://u@h/db"),
            ("postgres://u:a:b@h1,h2/db", "postgres://u@h1,h2/db"),
            (
                "postgres://u:pw@%2Ftmp%2Fsock/db",
                "postgres://u@%2Ftmp%2Fsock/db",
            ),
        ] {
            assert_eq!(redact(url), want, "{url}");
            assert!(!redact(url).contains("pw"));
        }
    }
}
