//! Failure injection: an `ObjectStore` wrapper that fails a configurable share of puts, gets, lists and
//! deletes (per mille, changeable while running) and can add latency. Used by tests to prove that a
//! failing store fails a table's pass cleanly and the next pass succeeds. Compiled only with the
//! `test-util` feature: release builds do not contain it.

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Failure rates in per mille, per operation kind, and added latency in milliseconds.
#[derive(Debug, Default)]
pub struct Faults {
    pub put: AtomicU32,
    pub get: AtomicU32,
    pub list: AtomicU32,
    pub delete: AtomicU32,
    pub latency_ms: AtomicU64,
    /// Calls of `delete_stream` (every delete goes through it): how many delete requests callers made.
    pub delete_calls: AtomicU64,
    /// Failures injected so far, all operations.
    pub injected: AtomicU64,
}

impl Faults {
    pub fn set(&self, put: u32, get: u32, list: u32, delete: u32) {
        self.put.store(put, Ordering::SeqCst);
        self.get.store(get, Ordering::SeqCst);
        self.list.store(list, Ordering::SeqCst);
        self.delete.store(delete, Ordering::SeqCst);
    }
}

#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    pub faults: Arc<Faults>,
    rng: Mutex<StdRng>,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn ObjectStore>, seed: u64) -> FaultyStore {
        FaultyStore {
            inner,
            faults: Arc::new(Faults::default()),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        }
    }

    fn fails(&self, rate: &AtomicU32) -> bool {
        let per_mille = rate.load(Ordering::SeqCst);
        per_mille > 0 && self.rng.lock().unwrap_or_else(|p| p.into_inner()).random_range(0..1000) < per_mille
    }

    async fn check(&self, rate: &AtomicU32, op: &str, path: &Path) -> Result<()> {
        let latency = self.faults.latency_ms.load(Ordering::SeqCst);
        if latency > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
        }
        if self.fails(rate) {
            self.faults.injected.fetch_add(1, Ordering::SeqCst);
            return Err(injected(op, path));
        }
        Ok(())
    }
}

fn injected(op: &str, path: &Path) -> object_store::Error {
    object_store::Error::Generic {
        store: "faulty",
        source: format!("injected {op} failure at {path}").into(),
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Faulty({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.check(&self.faults.put, "put", location).await?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.check(&self.faults.put, "put", location).await?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.check(&self.faults.get, "get", location).await?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.check(&self.faults.get, "get", location).await?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.faults.delete_calls.fetch_add(1, Ordering::SeqCst);
        let faults = self.faults.clone();
        let seed = self.rng.lock().unwrap_or_else(|p| p.into_inner()).random::<u64>();
        let rng = Arc::new(Mutex::new(StdRng::seed_from_u64(seed)));
        let inner = self.inner.clone();
        let filtered = locations.map(move |l| {
            let per_mille = faults.delete.load(Ordering::SeqCst);
            match l {
                Ok(path)
                    if per_mille > 0
                        && rng.lock().unwrap_or_else(|p| p.into_inner()).random_range(0..1000)
                            < per_mille =>
                {
                    faults.injected.fetch_add(1, Ordering::SeqCst);
                    Err(injected("delete", &path))
                }
                other => other,
            }
        });
        // Injected failures pass through; the rest go to the inner store.
        filtered
            .flat_map(move |item| match item {
                Ok(path) => inner.delete_stream(futures::stream::iter([Ok(path)]).boxed()),
                Err(e) => futures::stream::iter([Err(e)]).boxed(),
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        if self.fails(&self.faults.list) {
            let path = prefix.cloned().unwrap_or_default();
            return futures::stream::iter([Err(injected("list", &path))]).boxed();
        }
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.check(&self.faults.list, "list", &prefix.cloned().unwrap_or_default()).await?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.check(&self.faults.put, "copy", to).await?;
        self.inner.copy_opts(from, to, options).await
    }
}
