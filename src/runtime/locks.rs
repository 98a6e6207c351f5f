//! One job per table at a time within this process: compaction, retention and orphan cleanup each take
//! the table's lock for the duration of their work on it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

#[derive(Debug, Clone, Default)]
pub struct TableLocks {
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl TableLocks {
    /// Waits for and takes the lock of `table` (`tenant.dataset.table`).
    pub async fn lock(&self, table: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut map = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(table.to_string()).or_default().clone()
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn second_job_waits_for_the_first() {
        let locks = TableLocks::default();
        let first = locks.lock("a.b.t").await;
        let other = locks.lock("a.b.other").await; // other tables are independent
        let waiting = tokio::spawn({
            let locks = locks.clone();
            async move { locks.lock("a.b.t").await }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiting.is_finished());
        drop(first);
        tokio::time::timeout(Duration::from_secs(1), waiting).await.unwrap().unwrap();
        drop(other);
    }
}
