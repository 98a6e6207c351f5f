//! Iceberg machinery shared by the jobs: the live-file inventory of a snapshot, the snapshot producer
//! (`replace`/`delete` snapshots built on iceberg's public API) and the one commit path.

pub mod commit;
pub mod guard;
pub mod inventory;
pub mod partition;
pub mod producer;

pub use commit::{CommitError, Committed, RetryPolicy, commit_with_retry};
pub use inventory::{Inventory, LiveFile};
pub use producer::{AddedFile, Change, ProduceError, Staged};
