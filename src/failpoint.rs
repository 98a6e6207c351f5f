//! Crash injection for tests: `SIGNALDB_FAILPOINT=<name>` makes the process SIGKILL itself when it
//! reaches the failpoint of that name, the same as `kill -9` at that instant (no destructors, no
//! flushing). Unset in production: a check is one load of a cached environment lookup.

use std::sync::OnceLock;

static ACTIVE: OnceLock<Option<String>> = OnceLock::new();

/// Names the failpoints of this build, for documentation and tests.
pub const COMPACTION_BEFORE_SWAP: &str = "compaction-before-swap";
pub const ORPHANS_AFTER_BATCH: &str = "orphans-after-batch";

pub fn hit(name: &str) {
    let active = ACTIVE.get_or_init(|| std::env::var("SIGNALDB_FAILPOINT").ok());
    if active.as_deref() == Some(name) {
        tracing::warn!(failpoint = name, "failpoint reached: killing the process");
        let pid = std::process::id().to_string();
        let _ = std::process::Command::new("kill").args(["-KILL", &pid]).status();
        // SIGKILL is asynchronous; never run past the failpoint.
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
}
