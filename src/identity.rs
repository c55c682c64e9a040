//! Who runs a command and where, as the history records it: the host name
//! (the runs' host column, inbox claims, liveness on SQLite) and the user
//! (who closed a failure). Both come from the system (`whoami`: the kernel's
//! host name, the password database's name of the effective user), not from
//! `$HOSTNAME`/`$USER`, which a cron job or `env -i` may not set.

/// This machine's name; `localhost` when the system gives none.
pub fn host_name() -> String {
    whoami::hostname()
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The effective user's name; `uid N` when the password database has none.
pub fn user_name() -> String {
    whoami::username()
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| format!("uid {}", rustix::process::geteuid().as_raw()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_the_kernel_s_name_whatever_the_environment() {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(host_name(), kernel.trim());
    }

    #[test]
    fn the_user_is_the_password_database_s_name_of_the_effective_uid() {
        let uid = rustix::process::geteuid().as_raw();
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
        let listed = passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.get(2) == Some(&uid.to_string().as_str())).then(|| f[0].to_string())
        });
        assert_eq!(user_name(), listed.unwrap_or_else(|| format!("uid {uid}")));
    }
}
