//! The process's allocator: glibc's malloc with one arena, and giving what a pass freed back to the
//! operating system.
//!
//! glibc gives each new thread's first allocation an arena of its own until it has eight per core,
//! and memory freed into an arena serves only the threads that use it. A rewrite allocates its largest
//! buffers (input column chunks, decoded batches, sort chunks, encoded pages) on some threads and
//! frees them on others, so with many arenas the resident size grew to about 3× the live heap (a
//! rewrite at `memory_limit_mb = 64` peaked at 115 MB of live heap and 339 MiB resident; about 5×,
//! 486–666 MiB, under mimalloc, the allocator before: docs/BENCHMARKS.md, "Allocator"). With two
//! arenas half of the resident size at a rewrite's peak was still free memory inside them; one arena
//! brings a 2.1 GiB partition's rewrite within `memory_limit_mb` + 96 MiB at limits of 64 and 256 MB
//! (two arenas: 193–290 and 327–423 MiB), for 1–5 % more wall time on compaction and about 25 % on
//! retention (millions of small allocations from both cores then share one lock). [`configure`]
//! sets that once, at startup, unless the operator set the arena count (`MALLOC_ARENA_MAX`, or
//! `arena_max` in `GLIBC_TUNABLES`; docs/operations.md says when to raise it).
//!
//! glibc returns free memory at the top of an arena by itself, but not pages in the middle of one. A
//! daemon that goes idle after a pass makes no further calls, so [`release_after_pass`] trims every
//! arena (`malloc_trim`) once the pass's last tasks are done, and again once the blocking pool's idle
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

/// Arenas the process's allocator uses unless the operator says otherwise (measured on 2 cores).
pub const ARENAS: i32 = 1;

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

/// Limits the allocator to [`ARENAS`] arenas unless the environment sets the arena count; `true` if
/// it did. Call it first thing in `main`, before any thread starts (arenas made before stay).
pub fn configure() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` only sets a parameter of the allocator; it has no preconditions.
        !operator_set_arenas() && unsafe { glibc::mallopt(glibc::M_ARENA_MAX, ARENAS) } == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

/// Whether the environment sets the arena count (`MALLOC_ARENA_MAX`, or `arena_max` in
/// `GLIBC_TUNABLES`): then glibc reads it at startup and [`configure`] leaves it alone.
#[cfg_attr(not(all(target_os = "linux", target_env = "gnu")), allow(dead_code))]
fn operator_set_arenas() -> bool {
    std::env::var_os("MALLOC_ARENA_MAX").is_some()
        || std::env::var_os("GLIBC_TUNABLES")
            .is_some_and(|t| t.to_string_lossy().contains("glibc.malloc.arena_max"))
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
    /// glibc accepts the setting (the test binary's threads already run: arenas they made stay, later
    /// ones are limited), and trimming after a burst of frees leaves live memory intact.
    #[test]
    fn the_arena_limit_is_accepted_and_trimming_keeps_what_is_live() {
        let set = super::configure();
        if cfg!(all(target_os = "linux", target_env = "gnu")) && !super::operator_set_arenas() {
            assert!(set, "mallopt(M_ARENA_MAX) refused");
        } else {
            assert!(!set);
        }
        let kept: Vec<Vec<u64>> = (0..64).map(|i| vec![i; 1 << 13]).collect();
        let freed: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 1 << 16]).collect();
        drop(freed);
        super::release_free_memory();
        assert!(kept.iter().enumerate().all(|(i, v)| v.iter().all(|&x| x == i as u64)));
    }
}
