//! Peak memory of this process (resident set), per piece of work: the kernel's high-water mark
//! (`VmHWM` in `/proc/self/status`), which writing `5` to `/proc/self/clear_refs` resets (Linux 4.0
//! and later). Elsewhere, or where `/proc` is not readable, there is no figure (`None`), never a
//! wrong one.

/// Starts a new peak: the high-water mark drops to what is resident now. False where it cannot
/// (then [`peak_rss_mib`] keeps the peak since the process started).
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The largest resident set since the process started or [`reset_peak`], in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_follows_an_allocation_and_resets() {
        let Some(before) = peak_rss_mib() else { return }; // no /proc here
        // 64 MiB touched page by page, then freed.
        let mut v = vec![0u8; 64 << 20];
        for i in (0..v.len()).step_by(4096) {
            v[i] = 1;
        }
        std::hint::black_box(&v);
        let with = peak_rss_mib().unwrap();
        assert!(with >= before + 60.0, "{before} -> {with}");
        drop(v);
        if reset_peak() {
            let after = peak_rss_mib().unwrap();
            assert!(after < with - 60.0, "the reset peak {after} still counts the freed 64 MiB ({with})");
        }
    }
}
