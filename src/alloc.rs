//! Giving the memory a pass freed back to the operating system.
//!
//! The binary's global allocator is mimalloc 3 (`src/main.rs`). It returns freed memory lazily, in two
//! steps, both driven by later calls into the allocator: a thread hands the pages it no longer uses
//! back to the shared arenas when it allocates again (or collects), and an arena page is purged
//! (`madvise`) once it has been free for `purge_delay` (1 s) and some thread looks. A daemon that goes
//! idle after a pass makes no further calls, so what the pass freed would stay resident until the next
//! pass, hours later. Two hooks close that gap:
//!
//! - [`collect_thread`] on every runtime thread as it parks (goes idle), at most four times a second
//!   per thread: the thread hands back its free pages and purges arena pages whose delay has passed
//!   (a non-forcing, thread-local collect);
//! - [`release_after_pass`] when a pass ends: a moment later, once the workers have parked, and again
//!   once the blocking pool's idle threads have exited, a forced purge of all arenas (process-wide)
//!   returns everything free to the operating system.
//!
//! Where the process runs with another global allocator (the test harness), the calls only touch
//! mimalloc's own empty state: harmless, and cheap.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// How long after a pass the forced purge runs: long enough for the runtime's workers to park (and
/// hand back their pages) once the pass's last task is done.
const SETTLE: Duration = Duration::from_millis(1500);

/// Then once more after tokio's blocking-pool threads have exited (their keep-alive is 10 s), which
/// hands their pages back to the arenas.
const BLOCKING_THREADS_EXITED: Duration = Duration::from_secs(11);

/// Shortest time between two collections of one thread: a busy worker parks thousands of times a
/// second while it waits for IO, and collecting at each park cost 7 % more CPU in a rewrite.
const THREAD_COLLECT_EVERY: Duration = Duration::from_millis(250);

thread_local! {
    static LAST_COLLECT: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Hands this thread's free pages back and purges expired arena pages, at most once per
/// [`THREAD_COLLECT_EVERY`]. For `on_thread_park`.
pub fn collect_thread() {
    let now = Instant::now();
    let due = LAST_COLLECT.with(|last| match last.get() {
        Some(at) if now.duration_since(at) < THREAD_COLLECT_EVERY => false,
        _ => {
            last.set(Some(now));
            true
        }
    });
    if due {
        // SAFETY: `mi_collect` has no preconditions; any thread may call it at any time.
        unsafe { libmimalloc_sys::mi_collect(false) }
    }
}

/// Returns every free page of every arena to the operating system now.
pub fn release_free_memory() {
    // SAFETY: as above; `force` also purges arena pages whose delay has not expired.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// Schedules [`release_free_memory`] shortly after a pass, on the current runtime.
pub fn release_after_pass() {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async {
            tokio::time::sleep(SETTLE).await;
            release_free_memory();
            // Blocking-pool threads (object-store IO) keep their pages until they exit, 10 s idle.
            tokio::time::sleep(BLOCKING_THREADS_EXITED).await;
            release_free_memory();
        });
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn collecting_is_harmless_under_any_global_allocator() {
        let kept: Vec<u64> = (0..10_000).collect();
        super::collect_thread();
        super::release_free_memory();
        assert_eq!(kept.iter().sum::<u64>(), 49_995_000);
    }
}
