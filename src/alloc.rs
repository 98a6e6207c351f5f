//! The process's allocator: glibc's malloc with two arenas, and giving what a pass freed back to the
//! operating system.
//!
//! glibc gives each thread that meets contention an arena of its own, up to eight per core, and
//! memory freed into one arena serves only that arena's threads. A rewrite allocates its largest
//! buffers (input column chunks, decoded batches, sort chunks, encoded pages) on some threads and
//! frees them on others, so with many arenas the resident size grew to 3–5× the live heap (a rewrite
//! at `memory_limit_mb = 64` peaked at 115 MB of live heap and 339 MiB resident; mimalloc, the
//! allocator before, 600 MiB: docs/BENCHMARKS.md, "Allocator"). Two arenas keep that within reach of
//! the live heap at the same speed. [`configure`] sets that once, at startup; an operator's own
//! `MALLOC_ARENA_MAX` wins.
//!
//! glibc returns free memory at the top of an arena by itself, but not pages in the middle of one. A
//! daemon that goes idle after a pass makes no further calls, so [`release_after_pass`] trims every
//! arena (`malloc_trim`) once the pass's workers have parked, and again once the blocking pool's idle
//! threads have exited.
//!
//! On other C libraries (no glibc) both are no-ops: the system allocator's own defaults apply.

use std::time::Duration;

/// How long after a pass the trim runs: long enough for the runtime's workers to finish the pass's
/// last tasks and drop what they held.
const SETTLE: Duration = Duration::from_millis(1500);

/// Then once more after tokio's blocking-pool threads have exited (their keep-alive is 10 s): their
/// thread-local caches go back to the arenas as they exit.
const BLOCKING_THREADS_EXITED: Duration = Duration::from_secs(11);

/// Arenas the process's allocator uses: two, for two cores' worth of concurrent allocation.
pub const ARENAS: i32 = 2;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    use std::ffi::c_int;

    /// `M_ARENA_MAX` of glibc's `<malloc.h>`.
    pub const M_ARENA_MAX: c_int = -8;

    unsafe extern "C" {
        pub fn mallopt(param: c_int, value: c_int) -> c_int;
        pub fn malloc_trim(pad: usize) -> c_int;
    }
}

/// Limits the allocator to [`ARENAS`] arenas unless the environment sets `MALLOC_ARENA_MAX`. Call
/// it first thing in `main`, before any thread starts.
pub fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: `mallopt` only sets a parameter of the allocator; it has no preconditions.
        unsafe { glibc::mallopt(glibc::M_ARENA_MAX, ARENAS) };
    }
}

/// Returns every free page of every arena to the operating system now.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` has no preconditions; any thread may call it at any time.
    unsafe {
        glibc::malloc_trim(0);
    }
}

/// Schedules [`release_free_memory`] shortly after a pass, on the current runtime.
pub fn release_after_pass() {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async {
            tokio::time::sleep(SETTLE).await;
            release_free_memory();
            tokio::time::sleep(BLOCKING_THREADS_EXITED).await;
            release_free_memory();
        });
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn trimming_keeps_what_is_live() {
        super::configure();
        let kept: Vec<u64> = (0..10_000).collect();
        let freed: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 1 << 16]).collect();
        drop(freed);
        super::release_free_memory();
        assert_eq!(kept.iter().sum::<u64>(), 49_995_000);
    }
}
