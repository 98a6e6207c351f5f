//! The commit path's check that this process still owns the table it commits to.
//!
//! Replicas divide tables with leases (the runtime's `leases` module). A holder that lost a table's
//! lease must not commit to it nor delete in its location: the commit transaction [`Fence::fence`]s
//! before it swaps the pointer, and orphan cleanup asks [`Fence::is_lost`] before each deletion
//! batch. The fence is an argument of both paths, never ambient state, so a path that forgets it does
//! not compile; [`Unleased`] says at the call site that no lease is involved.

/// What a table's work holds against other replicas.
#[async_trait::async_trait]
pub trait Fence: Send + Sync {
    /// Inside the transaction that swaps the table's pointer: extends the lease if this holder still
    /// has it. `Ok(false)`: the lease is lost and the transaction must not commit. Holding the updated
    /// row until the transaction ends keeps another replica from taking the lease meanwhile.
    async fn fence(&self, conn: &mut sqlx::AnyConnection) -> Result<bool, sqlx::Error>;

    /// Whether the lease is known lost (or may expire any moment): the work stops before its next
    /// deletion batch.
    fn is_lost(&self) -> bool;
}

/// No lease is involved: a dry run, a process whose leases are disabled (no write access to the
/// catalog database), or a test driving the commit path on its own.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unleased;

#[async_trait::async_trait]
impl Fence for Unleased {
    async fn fence(&self, _: &mut sqlx::AnyConnection) -> Result<bool, sqlx::Error> {
        Ok(true)
    }

    fn is_lost(&self) -> bool {
        false
    }
}
