//! Fault injection for tests, compiled only with the `test-util` cargo feature (the tests enable it
//! through the crate's dev-dependency on itself). Without it (release builds) every check below is an
//! empty function: the process has no failpoint to reach, whatever its environment says.
//!
//! - Crash: `SIGNALDB_FAILPOINT=<name>` makes the process SIGKILL itself when it reaches the failpoint
//!   of that name, the same as `kill -9` at that instant (no destructors, no flushing).
//! - Per-table faults: `SIGNALDB_FAILPOINT=<name>@<tenant.dataset.table>`, or [`arm`] from an in-process
//!   test, arms a fault for that one table: [`panic_point`] panics (what a bug in a dependency does),
//!   other points misbehave where they are checked with [`is_armed`] (e.g. a reader swapping columns).
//!
//! With the feature and nothing set: a check is one load of a cached environment lookup (plus, for
//! panic points, one uncontended lock of an empty list).

/// Names the failpoints of this build, for documentation and tests.
pub const COMPACTION_BEFORE_SWAP: &str = "compaction-before-swap";
/// Crash point: a table's manifest rewrite, right before its commit (nothing of it is committed).
pub const MANIFESTS_BEFORE_SWAP: &str = "manifests-before-swap";
pub const ORPHANS_AFTER_BATCH: &str = "orphans-after-batch";
/// Panic point: compaction of one table, after a group was rewritten and right before its commit
/// (where iceberg's snapshot-summary code runs).
pub const COMPACTION_PANIC: &str = "compaction-panic";
/// Panic point: inside one compaction group's rewrite task, armed for `tenant.dataset.table/<partition
/// label>` (the group fails; the table's other groups go on).
pub const REWRITE_PANIC: &str = "compaction-rewrite-panic";
/// Fault point: compaction's reader swaps the values of two columns of the same type (a reader bug),
/// which the content invariants must catch.
pub const COMPACTION_SWAP_COLUMNS: &str = "compaction-swap-columns";

#[cfg(feature = "test-util")]
mod enabled {
    use std::sync::{Mutex, OnceLock};

    static ACTIVE: OnceLock<Option<String>> = OnceLock::new();
    static ARMED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

    fn active() -> Option<&'static str> {
        ACTIVE.get_or_init(|| std::env::var("SIGNALDB_FAILPOINT").ok()).as_deref()
    }

    pub fn hit(name: &str) {
        if active() == Some(name) {
            tracing::warn!(failpoint = name, "failpoint reached: killing the process");
            let pid = std::process::id().to_string();
            let _ = std::process::Command::new("kill").args(["-KILL", &pid]).status();
            // SIGKILL is asynchronous; never run past the failpoint.
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
    }

    /// Arms fault point `name` for `table` (`tenant.dataset.table`) in this process (tests only).
    pub fn arm(name: &str, table: &str) {
        ARMED.lock().unwrap_or_else(|p| p.into_inner()).push((name.to_string(), table.to_string()));
    }

    /// Whether fault point `name` is armed for `table` (by [`arm`] or `SIGNALDB_FAILPOINT=name@table`).
    pub fn is_armed(name: &str, table: &str) -> bool {
        let from_env = active().and_then(|a| a.split_once('@')).is_some_and(|(n, t)| n == name && t == table);
        from_env
            || ARMED.lock().unwrap_or_else(|p| p.into_inner()).iter().any(|(n, t)| n == name && t == table)
    }

    /// Panics if panic point `name` is armed for `table`.
    pub fn panic_point(name: &str, table: &str) {
        if is_armed(name, table) {
            panic!("failpoint {name} reached for table {table}");
        }
    }
}

#[cfg(feature = "test-util")]
pub use enabled::{arm, hit, is_armed, panic_point};

/// Without `test-util`: no failpoint is ever reached.
#[cfg(not(feature = "test-util"))]
#[inline(always)]
pub fn hit(_name: &str) {}

/// Without `test-util`: no fault is ever armed.
#[cfg(not(feature = "test-util"))]
#[inline(always)]
pub fn is_armed(_name: &str, _table: &str) -> bool {
    false
}

/// Without `test-util`: never panics.
#[cfg(not(feature = "test-util"))]
#[inline(always)]
pub fn panic_point(_name: &str, _table: &str) {}
