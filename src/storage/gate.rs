//! The deletion gate: the one way this daemon deletes objects that metadata once referenced (snapshot
//! expiry cleanup, orphan cleanup). Every candidate is checked against the one definition of
//! deletable ([`super::deletable`]), freshly, right before deletion:
//!
//! 1. the table's [`Scope`] was established this pass (its location lies inside a root, is shared with
//!    no other table, is not a root, and every neighbour's location is known);
//! 2. the object lies inside a root and the table's own location, inside no other table's location;
//! 3. no table of the catalog references it (the table's own current references, the census' record
//!    of every other table's);
//! 4. it is not a symlink and not reached through one (local stores; looked at now, not at listing);
//! 5. its last-modified time is older than the grace period;
//! 6. the mode is not dry-run.
//!
//! `NotFound` on delete (or on the age check) is success: the object is gone either way, which makes
//! every caller idempotent and safe to rerun after a kill.
//!
//! Candidates are checked independently (up to 16 at once), and those that pass every check are deleted
//! together through the store's batch delete (`delete_stream`: S3 `DeleteObjects`, up to 1,000 keys per
//! request). A candidate the batch does not confirm is looked at again: gone counts as deleted, still
//! there as failed (retried next pass).

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use object_store::ObjectStoreExt;
use serde::Serialize;

use super::deletable::{Keep, Scope};
use super::{LinkCache, Warehouse};
use crate::config::Mode;

/// Why the gate kept a candidate: the rule of [`super::deletable`] that keeps it.
pub type Refusal = Keep;

/// What the gate did with each candidate.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GateOutcome {
    /// (location, bytes) deleted, or already gone.
    pub deleted: Vec<(String, u64)>,
    /// Dry-run: (location, bytes, age) that would have been deleted.
    pub would_delete: Vec<(String, u64, Duration)>,
    pub refused: Vec<(String, Refusal)>,
    /// (location, error) that could not be checked or deleted; retried next pass.
    pub failed: Vec<(String, String)>,
}

impl GateOutcome {
    pub fn bytes_deleted(&self) -> u64 {
        self.deleted.iter().map(|(_, b)| b).sum()
    }
}

/// Candidates checked at once.
const CONCURRENCY: usize = 16;

enum Verdict {
    /// Passed every check: delete it (path, bytes).
    Delete(object_store::path::Path, u64),
    Gone,
    WouldDelete(u64, Duration),
    Refused(Refusal),
    Failed(String),
}

/// The checks' parameters for one table.
pub struct DeletionGate<'a> {
    pub warehouse: &'a Warehouse,
    pub scope: &'a Scope<'a>,
    pub grace: Duration,
    pub now: DateTime<Utc>,
    pub mode: Mode,
}

impl DeletionGate<'_> {
    /// Deletes those `candidates` that pass every check; the outcome lists them in input order.
    pub async fn delete(&self, candidates: &[String]) -> GateOutcome {
        // Indexes, not `candidates.iter()`: a closure over borrowed items trips async_trait's Send check.
        let verdicts: Vec<Verdict> = futures::stream::iter(0..candidates.len())
            .map(|i| self.check(&candidates[i]))
            .buffered(CONCURRENCY)
            .collect()
            .await;
        let batch: Vec<object_store::path::Path> = verdicts
            .iter()
            .filter_map(|v| match v {
                Verdict::Delete(path, _) => Some(path.clone()),
                _ => None,
            })
            .collect();
        let (confirmed, batch_error) = self.delete_batch(batch).await;
        let mut out = GateOutcome::default();
        for (location, verdict) in candidates.iter().zip(verdicts) {
            match verdict {
                Verdict::Delete(path, bytes) => {
                    if confirmed.contains(&path) {
                        out.deleted.push((location.clone(), bytes));
                        continue;
                    }
                    match self.warehouse.store().head(&path).await {
                        Err(object_store::Error::NotFound { .. }) => {
                            out.deleted.push((location.clone(), bytes))
                        }
                        _ => out.failed.push((
                            location.clone(),
                            batch_error
                                .clone()
                                .unwrap_or_else(|| "the batch delete did not confirm it".into()),
                        )),
                    }
                }
                Verdict::Gone => out.deleted.push((location.clone(), 0)),
                Verdict::WouldDelete(bytes, age) => out.would_delete.push((location.clone(), bytes, age)),
                Verdict::Refused(why) => out.refused.push((location.clone(), why)),
                Verdict::Failed(error) => out.failed.push((location.clone(), error)),
            }
        }
        out
    }

    /// Every check for one candidate.
    async fn check(&self, location: &str) -> Verdict {
        let canonical = match self.scope.precheck(location) {
            Ok(c) => c,
            Err(keep) => return Verdict::Refused(keep),
        };
        match self.warehouse.through_link(&canonical, &mut LinkCache::default()) {
            Ok(false) => {}
            Ok(true) => return Verdict::Refused(Keep::Symlink),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Verdict::Gone,
            Err(e) => return Verdict::Failed(format!("{location}: {e}")),
        }
        let path = match self.warehouse.object_path(&canonical) {
            Ok(p) => p,
            Err(e) => return Verdict::Failed(e.to_string()),
        };
        let meta = match self.warehouse.store().head(&path).await {
            Ok(meta) => meta,
            Err(object_store::Error::NotFound { .. }) => return Verdict::Gone,
            Err(e) => return Verdict::Failed(e.to_string()),
        };
        let age = (self.now - meta.last_modified).to_std().unwrap_or_default();
        if age < self.grace {
            return Verdict::Refused(Keep::YoungerThanGracePeriod);
        }
        if self.mode.is_dry_run() {
            return Verdict::WouldDelete(meta.size, age);
        }
        Verdict::Delete(path, meta.size)
    }

    /// Deletes `paths` through the store's batch delete: the paths it confirmed (a missing object counts
    /// as confirmed) and the first error it reported.
    async fn delete_batch(
        &self,
        paths: Vec<object_store::path::Path>,
    ) -> (std::collections::HashSet<object_store::path::Path>, Option<String>) {
        let mut confirmed = std::collections::HashSet::new();
        let mut first_error = None;
        if paths.is_empty() {
            return (confirmed, first_error);
        }
        if self.warehouse.deletes_locally() {
            // One by one, each walked down from its root without following a link (see
            // `Warehouse::unlink_local`): nothing swapped in since the checks is followed.
            let warehouse = self.warehouse.clone();
            let done = tokio::task::spawn_blocking(move || {
                let mut out = (std::collections::HashSet::new(), None);
                for path in paths {
                    match warehouse.unlink_local(&warehouse.location(&path)) {
                        Ok(()) => {
                            out.0.insert(path);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            out.0.insert(path);
                        }
                        Err(e) => {
                            out.1.get_or_insert_with(|| format!("{}: {e}", warehouse.location(&path)));
                        }
                    }
                }
                out
            })
            .await;
            return done.unwrap_or_else(|e| (Default::default(), Some(format!("delete task failed: {e}"))));
        }
        let input = futures::stream::iter(paths.into_iter().map(Ok)).boxed();
        let mut results = self.warehouse.store().delete_stream(input);
        while let Some(result) = results.next().await {
            match result {
                Ok(path) => {
                    confirmed.insert(path);
                }
                // Which path a NotFound names is store-specific: such candidates are looked at again.
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    first_error.get_or_insert_with(|| e.to_string());
                }
            }
        }
        (confirmed, first_error)
    }
}

/// `5days`, `3h`: ages in the form the dry-run lines use (whole days from one day on).
pub fn human_age(age: Duration) -> String {
    let secs = age.as_secs();
    match secs {
        s if s >= 86_400 => format!("{}days", s / 86_400),
        s if s >= 3600 => format!("{}h", s / 3600),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use object_store::PutPayload;
    use object_store::memory::InMemory;

    use super::*;
    use crate::storage::deletable::Layout;
    use crate::storage::reachable::Reachable;

    fn layout(tables: &[&str]) -> Layout {
        let mut l = Layout::new(["s3://bucket/w".to_string()]);
        for t in tables {
            let i = l.add_table(t, Some(t));
            l.add_references(i, &Reachable::default());
        }
        l
    }

    fn warehouse() -> Warehouse {
        Warehouse::with_store("s3://bucket/w".into(), Arc::new(InMemory::new()))
    }

    async fn put(w: &Warehouse, location: &str) {
        w.store().put(&w.object_path(location).unwrap(), PutPayload::from_static(b"data")).await.unwrap();
    }

    async fn exists(w: &Warehouse, location: &str) -> bool {
        w.store().head(&w.object_path(location).unwrap()).await.is_ok()
    }

    #[tokio::test]
    async fn only_unreferenced_old_files_inside_the_table_are_deleted() {
        let w = warehouse();
        let table = "s3://bucket/w/acme.prod/traces";
        let files = [
            format!("{table}/data/old-orphan.parquet"),
            format!("{table}/data/live.parquet"),
            "s3://bucket/w/acme.prod/traces_v2/data/sibling.parquet".to_string(),
        ];
        for f in &files {
            put(&w, f).await;
        }
        let live = Reachable::from_locations([files[1].as_str()]);
        let layout = layout(&[table, "s3://bucket/w/acme.prod/traces_v2"]);
        let scope = layout.scope(0, &live).unwrap();
        let gate = |now, mode| DeletionGate {
            warehouse: &w,
            scope: &scope,
            grace: Duration::from_secs(3600),
            now,
            mode,
        };
        let young = gate(Utc::now(), Mode::Execute).delete(&files).await;
        assert!(young.deleted.is_empty());
        assert_eq!(
            young.refused,
            vec![
                (files[0].clone(), Keep::YoungerThanGracePeriod),
                (files[1].clone(), Keep::StillReferenced),
                (files[2].clone(), Keep::OutsideTableLocation),
            ]
        );

        let later = Utc::now() + chrono::Duration::hours(2);
        let dry = gate(later, Mode::DryRun).delete(&files).await;
        assert_eq!(dry.would_delete.len(), 1);
        assert!(exists(&w, &files[0]).await, "dry-run deletes nothing");

        let done = gate(later, Mode::Execute).delete(&files).await;
        assert_eq!(done.deleted, vec![(files[0].clone(), 4)]);
        assert!(!exists(&w, &files[0]).await);
        assert!(exists(&w, &files[1]).await && exists(&w, &files[2]).await);

        // Idempotent: the file is gone, a rerun reports it deleted and fails nothing.
        let again = gate(later, Mode::Execute).delete(&files[..1]).await;
        assert_eq!(again.deleted, vec![(files[0].clone(), 0)]);
        assert!(again.failed.is_empty());
    }

    #[tokio::test]
    async fn deletions_go_out_as_one_batch_and_unconfirmed_ones_fail() {
        let faulty = Arc::new(crate::storage::faults::FaultyStore::new(Arc::new(InMemory::new()), 7));
        let w = Warehouse::with_store("s3://bucket/w".into(), faulty.clone());
        let table = "s3://bucket/w/acme.prod/traces";
        let files: Vec<String> = (0..40).map(|i| format!("{table}/data/orphan-{i:02}.parquet")).collect();
        for f in &files {
            put(&w, f).await;
        }
        let live = Reachable::from_locations(std::iter::empty::<&str>());
        let layout = layout(&[table]);
        let scope = layout.scope(0, &live).unwrap();
        let gate = DeletionGate {
            warehouse: &w,
            scope: &scope,
            grace: Duration::from_secs(3600),
            now: Utc::now() + chrono::Duration::hours(2),
            mode: Mode::Execute,
        };
        let calls = || faulty.faults.delete_calls.load(std::sync::atomic::Ordering::SeqCst);

        // Every delete fails: nothing is reported deleted, each names the store's error, all stay.
        faulty.faults.set(0, 0, 0, 1000);
        let failing = gate.delete(&files[..10]).await;
        assert_eq!(calls(), 1, "one batch delete for the whole batch");
        assert!(failing.deleted.is_empty());
        assert_eq!(failing.failed.len(), 10);
        assert!(failing.failed[0].1.contains("injected delete failure"), "{:?}", failing.failed[0]);
        for f in &files[..10] {
            assert!(exists(&w, f).await);
        }

        faulty.faults.set(0, 0, 0, 0);
        let done = gate.delete(&files).await;
        assert_eq!(calls(), 2, "40 deletions, one batch delete");
        assert_eq!(done.deleted.len(), 40);
        assert!(done.failed.is_empty());
        for f in &files {
            assert!(!exists(&w, f).await);
        }
    }

    #[test]
    fn ages_read_like_the_dry_run_lines() {
        assert_eq!(human_age(Duration::from_secs(8 * 86_400 + 5)), "8days");
        assert_eq!(human_age(Duration::from_secs(7200)), "2h");
        assert_eq!(human_age(Duration::from_secs(42)), "42s");
    }
}

#[cfg(test)]
mod attack {
    use std::sync::Arc;

    use object_store::local::LocalFileSystem;

    use super::*;
    use crate::storage::deletable::Layout;
    use crate::storage::reachable::Reachable;

    /// Time of check vs time of use: the gate looks for links (lstat per component), then HEADs, then
    /// deletes by path through `std::fs::remove_file`, which follows a directory link swapped in
    /// meanwhile. Here the table's `data/` directory becomes a link to a directory outside the
    /// warehouse while the gate is between its link check and its delete.
    #[tokio::test]
    async fn attack_a_directory_swapped_for_a_link_after_the_check_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path().join("w");
        let table = w.join("t");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(table.join("data")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(table.join("data/victim.parquet"), b"orphan").unwrap();
        std::fs::write(outside.join("victim.parquet"), b"precious").unwrap();
        let faulty = Arc::new(crate::storage::faults::FaultyStore::new(Arc::new(LocalFileSystem::new()), 1));
        faulty.faults.latency_ms.store(400, std::sync::atomic::Ordering::SeqCst);
        let root = format!("file://{}", w.display());
        let warehouse = Warehouse::with_store(root.clone(), faulty).with_local_deletes();
        let mut layout = Layout::new([root]);
        let i = layout.add_table("t", Some(&format!("file://{}", table.display())));
        layout.add_references(i, &Reachable::default());
        let live = Reachable::default();
        let scope = layout.scope(i, &live).unwrap();
        let gate = DeletionGate {
            warehouse: &warehouse,
            scope: &scope,
            grace: Duration::ZERO,
            now: Utc::now() + chrono::Duration::hours(1),
            mode: Mode::Execute,
        };
        let (t2, o2) = (table.clone(), outside.clone());
        let swap = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            std::fs::rename(t2.join("data"), t2.join("data.moved")).unwrap();
            std::os::unix::fs::symlink(&o2, t2.join("data")).unwrap();
        });
        let candidate = format!("file://{}", table.join("data/victim.parquet").display());
        let outcome = gate.delete(&[candidate]).await;
        swap.await.unwrap();
        assert!(
            outside.join("victim.parquet").exists(),
            "a file outside the warehouse was deleted through a link: {outcome:?}"
        );
    }
}
