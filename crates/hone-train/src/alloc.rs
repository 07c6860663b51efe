//! The allocator setting training processes run with. Under mimalloc (the `hone` binary's and the
//! benchmark's global allocator), freed pages are by default returned to the OS ("purged") after
//! a second; a training step frees its activation buffers and allocates the same sizes again within
//! milliseconds, so each step page-faulted and zeroed them anew (5% of a step's samples in
//! `clear_page_erms`; about 10% more tokens/s with purging off). The training step's peak is
//! unchanged (the pages kept are the ones the next step uses); a whole `hone run` peaks about 6%
//! higher, since memory freed between stages stays mapped.

/// mimalloc's option `purge_delay` by index: its position in `mi_option_e` in both the v2 and v3
/// headers of libmimalloc-sys 0.1.49 (pinned in the workspace; the test below checks the default).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory mapped for reuse instead of returning it to the OS. Call once at start-up,
/// before the work starts; harmless when mimalloc is not the global allocator.
pub fn keep_freed_memory() {
    // SAFETY: sets a plain integer option; called at start-up, before other threads allocate.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index names `purge_delay`: it holds that option's default in the mimalloc v3 sources the
    /// crate builds (1000 ms; no other option defaults to 1000), and setting it sticks.
    #[test]
    fn the_option_index_is_purge_delay() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            eprintln!("MIMALLOC_PURGE_DELAY is set: skipping the default check");
        } else {
            assert_eq!(unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) }, 1000);
        }
        keep_freed_memory();
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) }, -1);
    }
}
