use std::time::Duration;

use proptest::prelude::*;

use super::*;

fn parse(url: &str) -> PgUrl {
    PgUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"))
}

fn password(url: &PgUrl) -> Option<&[u8]> {
    url.password.as_ref().map(Password::bytes)
}

/// Every byte but RFC 3986's unreserved ones as %XX (written apart from the
/// module's own encoder, so that the property below checks that one too).
fn percent_encoded(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn urls_are_told_from_paths() {
    assert!(is_url("postgres://h/db"));
    assert!(is_url("PostgreSQL://h/db"));
    assert!(!is_url("postgres.db"));
    assert!(!is_url("./postgres://x"));
    assert!(!is_url("postgresé://x"));
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
            "postgres://u@h/db?sslmode=require",
        ),
        ("postgres://h/db?password=pw", "postgres://h/db"),
        ("postgres://u@h/db", "postgres://u@h/db"),
        ("postgres://u:a:b@h1,h2/db", "postgres://u@h1,h2/db"),
        (
            "postgres://u:pw@%2Ftmp%2Fsock/db",
            "postgres://u@%2Ftmp%2Fsock/db",
        ),
        ("postgresql://u@h/db?pass%77ord=pw", "postgresql://u@h/db"),
        ("POSTGRESQL://u:pw@h", "postgresql://u@h"),
    ] {
        let shown = parse(url).shown();
        assert_eq!(shown, want, "{url}");
        assert!(!shown.contains("pw"), "{url}");
    }
}

#[test]
fn a_colon_in_the_password_is_plain() {
    let url = parse("postgresql://ob:a:b:c@db.example:6543/orders");
    assert_eq!(url.user.as_deref(), Some("ob"));
    assert_eq!(password(&url), Some(&b"a:b:c"[..]));
    assert_eq!(url.hosts, [Host::Tcp("db.example".into())]);
    assert_eq!(url.ports, [Some(6543)]);
    assert_eq!(url.shown(), "postgresql://ob@db.example:6543/orders");
}

#[test]
fn a_password_with_unencoded_separators_is_refused_and_never_shown() {
    for url in [
        "postgresql://ob2:ab/cdLeakZ@host/db",
        "postgresql://ob2:ab?cdLeakZ@host/db",
        "postgresql://ob2:ab#cdLeakZ@host/db",
        "postgresql://ob2:ab@cdLeakZ@host/db",
        "postgresql://ob2:abcdLeakZ@host/db#frag",
        "postgresql://host/db?application_name=a@LeakZ",
    ] {
        let e = PgUrl::parse(url).unwrap_err();
        assert_eq!(e, UrlError::Ambiguous, "{url}");
        let msg = e.to_string();
        assert!(!msg.contains("LeakZ") && !msg.contains("frag"), "{msg}");
        assert!(
            msg.contains("%2F") && msg.contains("%40") && msg.contains("%23"),
            "{msg}"
        );
    }
    // The same passwords, percent-encoded, are read whole.
    let url = parse("postgresql://ob2:ab%2Fc%3Fd%23e%40f%3Ag@host/db");
    assert_eq!(password(&url), Some(&b"ab/c?d#e@f:g"[..]));
    assert_eq!(url.shown(), "postgresql://ob2@host/db");
}

#[test]
fn a_password_without_an_at_is_never_echoed_as_a_port() {
    let e = PgUrl::parse("postgresql://ob:LeakZ/db").unwrap_err();
    assert_eq!(e, UrlError::BadPort);
    assert!(!e.to_string().contains("LeakZ"));
}

#[test]
fn parameter_names_are_percent_decoded() {
    let url = parse("postgresql://u@host/db?pass%77ord=SECRET&%75ser=bob&%73slmode=require");
    assert_eq!(password(&url), Some(&b"SECRET"[..]));
    assert_eq!(url.user.as_deref(), Some("bob"));
    assert_eq!(url.sslmode, Some(SslMode::Require));
    assert_eq!(url.shown(), "postgresql://bob@host/db?sslmode=require");
}

#[test]
fn parameters_override_the_authority_as_in_libpq() {
    let url = parse("postgresql://u:one@h1:5433/a?password=two&dbname=b&host=h2,h3&port=6000");
    assert_eq!(password(&url), Some(&b"two"[..]));
    assert_eq!(url.dbname.as_deref(), Some("b"));
    assert_eq!(url.shown(), "postgresql://u@h2:6000,h3:6000/b");
    let e = PgUrl::parse("postgresql://h1:1,h2:2/db?host=a,b,c").unwrap_err();
    assert_eq!(e, UrlError::PortCount { hosts: 3, ports: 2 });
}

#[test]
fn several_hosts_keep_their_ports() {
    let url = parse("postgresql://u:pw@h1:5433,h2,[::1]:5434,[fe80::1%25eth0]/db");
    assert_eq!(
        url.hosts,
        [
            Host::Tcp("h1".into()),
            Host::Tcp("h2".into()),
            Host::Tcp("::1".into()),
            Host::Tcp("fe80::1%eth0".into()),
        ]
    );
    assert_eq!(url.ports, [Some(5433), None, Some(5434), None]);
    let shown = url.shown();
    assert_eq!(
        shown,
        "postgresql://u@h1:5433,h2,[::1]:5434,[fe80::1%25eth0]/db"
    );
    assert_eq!(parse(&shown).hosts, url.hosts, "the shown form reads back");
    let config = url.client_config().unwrap();
    assert_eq!(config.get_ports(), [5433, 5432, 5434, 5432]);
    for bad in [
        "postgresql://h1,,h2/db",
        "postgresql://[::1/db",
        "postgresql://[::1]x/db",
    ] {
        assert_eq!(PgUrl::parse(bad).unwrap_err(), UrlError::BadHost, "{bad}");
    }
}

#[test]
fn socket_directories_are_hosts_starting_with_a_slash() {
    for url in [
        "postgresql://u:p@%2Ftmp%2Fsock/db",
        "postgresql://u:p@/db?host=/tmp/sock",
        "postgresql://u:p@localhost/db?host=%2Ftmp%2Fsock",
    ] {
        let parsed = parse(url);
        assert_eq!(parsed.hosts, [Host::Socket("/tmp/sock".into())], "{url}");
        assert!(parsed.is_local());
        assert_eq!(parsed.shown(), "postgresql://u@%2Ftmp%2Fsock/db");
        let config = parsed.client_config().unwrap();
        assert_eq!(
            config.get_hosts(),
            [postgres::config::Host::Unix("/tmp/sock".into())]
        );
    }
    assert!(!parse("postgresql://u@/db?host=/tmp/sock,db.example").is_local());
}

#[test]
fn libpq_tls_settings_are_read() {
    let url = parse(
        "postgres://u:pw@h/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x",
    );
    assert_eq!(url.sslmode, Some(SslMode::VerifyFull));
    assert_eq!(url.sslmode.map(SslMode::verify), Some(Verify::Full));
    assert_eq!(url.sslrootcert.as_deref(), Some("/etc/ca.pem"));
    assert_eq!(
        url.shown(),
        "postgres://u@h/db?sslmode=verify-full&sslrootcert=/etc/ca.pem&application_name=x"
    );
    let config = url.client_config().unwrap();
    assert_eq!(config.get_ssl_mode(), ClientSslMode::Require);
    assert_eq!(config.get_application_name(), Some("x"));
    let url = parse("postgres://h/db?sslmode=verify-ca");
    assert_eq!(url.sslmode.map(SslMode::verify), Some(Verify::Chain));
    let allow = parse("postgres://h/db?sslmode=allow")
        .client_config()
        .unwrap();
    assert_eq!(allow.get_ssl_mode(), ClientSslMode::Prefer);
    let e = PgUrl::parse("postgres://u:secret@h/db?sslmode=maybe").unwrap_err();
    assert!(matches!(
        e,
        UrlError::BadValue {
            name: "sslmode",
            ..
        }
    ));
    let msg = e.to_string();
    assert!(msg.contains("maybe") && !msg.contains("secret"), "{msg}");
}

#[test]
fn the_client_is_configured_from_the_parts() {
    let url = parse(
        "postgresql://ob%20user:p%26w@db.example:6543/my%2Fdb?connect_timeout=3&options=-c%20x%3D1&keepalives=0&target_session_attrs=read-write",
    );
    let config = url.client_config().unwrap();
    assert_eq!(config.get_user(), Some("ob user"));
    assert_eq!(config.get_password(), Some(&b"p&w"[..]));
    assert_eq!(config.get_dbname(), Some("my/db"));
    assert_eq!(
        config.get_hosts(),
        [postgres::config::Host::Tcp("db.example".into())]
    );
    assert_eq!(config.get_ports(), [6543]);
    assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(3)));
    assert_eq!(config.get_options(), Some("-c x=1"));
    assert!(!config.get_keepalives());
    assert_eq!(config.get_application_name(), Some("orderbatch"));
    assert_eq!(
        url.shown(),
        "postgresql://ob%20user@db.example:6543/my%2Fdb?connect_timeout=3&options=-c%20x%3D1&keepalives=0&target_session_attrs=read-write"
    );
    let zero = parse("postgresql://h/db?connect_timeout=0")
        .client_config()
        .unwrap();
    assert_eq!(
        zero.get_connect_timeout(),
        None,
        "0 leaves the default to the caller"
    );
}

#[test]
fn unknown_parameters_are_named_unless_they_may_be_a_password() {
    let e = PgUrl::parse("postgresql://u:pw@h/db?sslmod=require").unwrap_err();
    assert_eq!(e, UrlError::Unknown("sslmod".into()));
    assert!(e.to_string().contains("\"sslmod\""), "{e}");
    assert!(
        e.to_string().contains("sslrootcert"),
        "the known ones are listed: {e}"
    );
    for url in [
        "postgresql://h/db?password=ab&LeakZ=cd",
        "postgresql://h/db?password=ab&LeakZ",
    ] {
        let e = PgUrl::parse(url).unwrap_err();
        assert_eq!(e, UrlError::Unnamed, "{url}");
        assert!(!e.to_string().contains("LeakZ"));
    }
    assert_eq!(
        PgUrl::parse("postgresql://h/db?sslmode").unwrap_err(),
        UrlError::NoValue("sslmode".into())
    );
    for (url, name) in [
        ("postgresql://h/db?connect_timeout=soon", "connect_timeout"),
        (
            "postgresql://h/db?target_session_attrs=primary",
            "target_session_attrs",
        ),
        ("postgresql://h/db?hostaddr=db.example", "hostaddr"),
    ] {
        let e = PgUrl::parse(url).unwrap_err();
        assert!(
            matches!(e, UrlError::BadValue { name: n, .. } if n == name),
            "{url}: {e}"
        );
    }
}

#[test]
fn bad_escapes_are_refused_without_the_text() {
    for (url, want) in [
        (
            "postgresql://u:Leak%zz@h/db",
            UrlError::BadEscape("password"),
        ),
        (
            "postgresql://u:Leak%4@h/db",
            UrlError::BadEscape("password"),
        ),
        ("postgresql://u:Leak%00@h/db", UrlError::Nul("password")),
        ("postgresql://u%ff:x@h/db", UrlError::NotText("user name")),
        ("postgresql://u@h:54x2/db", UrlError::BadPort),
        ("postgresql://u@h:99999/db", UrlError::BadPort),
    ] {
        let e = PgUrl::parse(url).unwrap_err();
        assert_eq!(e, want, "{url}");
        assert!(!e.to_string().contains("Leak"));
    }
    // A password need not be UTF-8.
    let url = parse("postgresql://u:%ff%fe@h/db");
    assert_eq!(password(&url), Some(&[0xff, 0xfe][..]));
    assert_eq!(format!("{url:?}").matches("not shown").count(), 1);
}

#[test]
fn keyword_value_strings_and_other_urls_are_not_paths() {
    for db in [
        "host=/tmp port=5432 password=LeakZ dbname=orders",
        "dbname=orders",
        "user = shop",
        "  password=LeakZ",
        "sslmode=require\thost=db",
    ] {
        let e = refuse_lookalikes(db).unwrap_err();
        assert_eq!(e, UrlError::KeywordValue, "{db}");
        assert!(!e.to_string().contains("LeakZ"));
        assert!(e.to_string().contains("postgresql://USER"), "{e}");
    }
    for db in [
        "postgress://u:LeakZ@h/db",
        "postgres:/u:LeakZ@h/db",
        "PostgreSQL:u@h",
        "mysql://u:LeakZ@h/db",
    ] {
        let e = refuse_lookalikes(db).unwrap_err();
        assert_eq!(e, UrlError::OtherUrl, "{db}");
        assert!(!e.to_string().contains("LeakZ"));
    }
    for db in [
        "orderbatch.db",
        "postgres.db",
        "./host=x.db",
        "data/a=b.db",
        "username=x.db",
        "file:orders.db?mode=rwc",
        "file:///var/lib/orders.db",
    ] {
        assert_eq!(refuse_lookalikes(db), Ok(()), "{db}");
    }
}

fn printable_password() -> impl Strategy<Value = String> {
    prop_oneof!["[ -~]{4,24}", "\\PC{4,12}"]
}

const AROUND: [&str; 2] = ["postgresql://user:", "@host:5432/db?sslmode=require"];

proptest! {
    #[test]
    fn an_encoded_password_is_read_whole_and_never_shown(pw in printable_password()) {
        let text = format!("{}{}{}", AROUND[0], percent_encoded(&pw), AROUND[1]);
        prop_assume!(!AROUND.concat().contains(&pw));
        let url = PgUrl::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(password(&url), Some(pw.as_bytes()));
        let shown = url.shown();
        prop_assert!(!shown.contains(&pw), "{}", shown);
        prop_assert!(!shown.contains(&percent_encoded(&pw)), "{}", shown);
        prop_assert_eq!(shown, "postgresql://user@host:5432/db?sslmode=require");
    }

    #[test]
    fn an_unencoded_password_is_read_whole_or_refused_unseen(pw in printable_password()) {
        prop_assume!(!AROUND.concat().contains(&pw));
        let text = format!("{}{}{}", AROUND[0], pw, AROUND[1]);
        match PgUrl::parse(&text) {
            Ok(url) => {
                prop_assert_eq!(url.user.as_deref(), Some("user"));
                prop_assert_eq!(&url.hosts, &[Host::Tcp("host".into())]);
                prop_assert!(!url.shown().contains(&pw), "{}", url.shown());
            }
            // Only the errors whose text is all ours: nothing of the URL.
            Err(e) => prop_assert!(
                matches!(
                    e,
                    UrlError::Ambiguous
                        | UrlError::BadEscape(_)
                        | UrlError::Nul(_)
                        | UrlError::NotText(_)
                ),
                "{:?}",
                e
            ),
        }
    }
}
