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
    // Linux reports ru_maxrss in KiB. It also counts the peak of the process
    // this one was started from, up to its exec (a large parent that spawns
    // it with vfork or fork makes it look large): VmHWM, the peak of this
    // program's own memory, is the figure when /proc has it.
    let rss = own_peak().unwrap_or(u64::try_from(ru.ru_maxrss).unwrap_or(0) * 1024);
    (rss, secs(ru.ru_utime) + secs(ru.ru_stime))
}

/// The peak resident size of this program's memory (`VmHWM`), in bytes.
fn own_peak() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
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
