//! What this process has cost so far: peak resident memory and CPU time.

/// Peak resident set size in bytes and user + system CPU seconds.
pub fn usage() -> (u64, f64) {
    // SAFETY: getrusage only writes the struct we pass; zeroed is a valid rusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer cannot fail on Linux.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return (0, 0.0);
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    // Linux reports ru_maxrss in KiB.
    let rss = u64::try_from(ru.ru_maxrss).unwrap_or(0) * 1024;
    (rss, secs(ru.ru_utime) + secs(ru.ru_stime))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_running_process_has_used_memory_and_time() {
        let v: Vec<u64> = (0..200_000).collect();
        let (rss, cpu) = super::usage();
        assert!(rss > 1024 * 1024, "{rss}");
        assert!(cpu >= 0.0);
        assert_eq!(v.len(), 200_000);
    }
}
