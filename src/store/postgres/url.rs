//! PostgreSQL connection URLs: recognising one, and showing one without its
//! password (in the user-info part or as a `password=` parameter).

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
