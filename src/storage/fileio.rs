//! iceberg's `Storage`/`StorageFactory` implemented over our `object_store` handle, so that iceberg's
//! readers and writers and our own listing and deletion use one client with one set of credentials.
//!
//! iceberg serializes storages with typetag; the store handle itself cannot be serialized, so a
//! deserialized instance has no store and fails every call with a clear error (we never ship a
//! `FileIO` across processes).

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use iceberg::io::{
    FileMetadata, FileRead, FileWrite, InputFile, OutputFile, Storage, StorageConfig, StorageFactory,
};
use iceberg::{Error, ErrorKind, Result};
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use super::PathMapper;

#[derive(Debug, Clone)]
struct Inner {
    store: Arc<dyn ObjectStore>,
    mapper: PathMapper,
}

/// Builds [`ObjectStoreStorage`] instances sharing one store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectStoreStorageFactory {
    #[serde(skip)]
    inner: Option<Inner>,
}

impl ObjectStoreStorageFactory {
    pub(crate) fn new(store: Arc<dyn ObjectStore>, mapper: PathMapper) -> Self {
        Self { inner: Some(Inner { store, mapper }) }
    }
}

#[typetag::serde]
impl StorageFactory for ObjectStoreStorageFactory {
    fn build(&self, _config: &StorageConfig) -> Result<Arc<dyn Storage>> {
        Ok(Arc::new(ObjectStoreStorage { inner: self.inner.clone() }))
    }
}

/// An iceberg `Storage` backed by an `object_store`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectStoreStorage {
    #[serde(skip)]
    inner: Option<Inner>,
}

fn io_error(path: &str, op: &str, e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Unexpected, format!("{op} {path}: {e}"))
}

fn not_found_or(path: &str, op: &str, e: object_store::Error) -> Error {
    match e {
        object_store::Error::NotFound { .. } => {
            Error::new(ErrorKind::DataInvalid, format!("{op} {path}: not found"))
        }
        other => io_error(path, op, other),
    }
}

impl ObjectStoreStorage {
    fn inner(&self) -> Result<&Inner> {
        self.inner.as_ref().ok_or_else(|| {
            Error::new(ErrorKind::Unexpected, "object store storage was deserialized without a store")
        })
    }

    fn resolve(&self, path: &str) -> Result<(Arc<dyn ObjectStore>, ObjectPath)> {
        let inner = self.inner()?;
        let object_path =
            inner.mapper.object_path(path).map_err(|e| Error::new(ErrorKind::DataInvalid, e.to_string()))?;
        Ok((inner.store.clone(), object_path))
    }
}

#[async_trait]
#[typetag::serde]
impl Storage for ObjectStoreStorage {
    async fn exists(&self, path: &str) -> Result<bool> {
        let (store, p) = self.resolve(path)?;
        match store.head(&p).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(io_error(path, "head", e)),
        }
    }

    async fn metadata(&self, path: &str) -> Result<FileMetadata> {
        let (store, p) = self.resolve(path)?;
        let meta = store.head(&p).await.map_err(|e| not_found_or(path, "head", e))?;
        Ok(FileMetadata { size: meta.size })
    }

    async fn read(&self, path: &str) -> Result<Bytes> {
        let (store, p) = self.resolve(path)?;
        let got = store.get(&p).await.map_err(|e| not_found_or(path, "get", e))?;
        got.bytes().await.map_err(|e| io_error(path, "read", e))
    }

    async fn reader(&self, path: &str) -> Result<Box<dyn FileRead>> {
        let (store, p) = self.resolve(path)?;
        Ok(Box::new(ObjectRead { store, path: p, location: path.to_string() }))
    }

    async fn write(&self, path: &str, bs: Bytes) -> Result<()> {
        let (store, p) = self.resolve(path)?;
        store.put(&p, PutPayload::from_bytes(bs)).await.map(|_| ()).map_err(|e| io_error(path, "put", e))
    }

    async fn writer(&self, path: &str) -> Result<Box<dyn FileWrite>> {
        let (store, p) = self.resolve(path)?;
        // At most two 10 MiB parts in flight: bounds a big output file's buffered bytes (compaction's
        // memory model, docs/configuration.md).
        let writer = BufWriter::new(store, p).with_max_concurrency(WRITE_CONCURRENCY);
        Ok(Box::new(ObjectWrite { writer: Some(writer), location: path.to_string() }))
    }

    async fn delete(&self, path: &str) -> Result<()> {
        let (store, p) = self.resolve(path)?;
        match store.delete(&p).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(io_error(path, "delete", e)),
        }
    }

    /// Refused. Only two paths delete: the deletion gate (orphans, expiry cleanup, superseded
    /// metadata), which checks every object against the catalog first, and `discard_uncommitted`,
    /// which deletes files this process wrote for a commit that definitely failed. A recursive delete
    /// by prefix would be a third, unchecked one. Nothing calls it today (our code, iceberg 0.10.1 and
    /// iceberg-catalog-sql's `purge_table` included, which deletes file by file).
    async fn delete_prefix(&self, path: &str) -> Result<()> {
        Err(Error::new(
            ErrorKind::FeatureUnsupported,
            format!("delete_prefix {path}: refused (the compactor deletes only through its deletion gate)"),
        ))
    }

    async fn delete_stream(&self, mut paths: BoxStream<'static, String>) -> Result<()> {
        while let Some(path) = paths.next().await {
            self.delete(&path).await?;
        }
        Ok(())
    }

    fn new_input(&self, path: &str) -> Result<InputFile> {
        Ok(InputFile::new(Arc::new(self.clone()), path.to_string()))
    }

    fn new_output(&self, path: &str) -> Result<OutputFile> {
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_string()))
    }
}

struct ObjectRead {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    location: String,
}

#[async_trait]
impl FileRead for ObjectRead {
    async fn read(&self, range: Range<u64>) -> Result<Bytes> {
        self.store.get_range(&self.path, range).await.map_err(|e| io_error(&self.location, "get_range", e))
    }
}

/// Parts of a multipart write uploaded at once.
const WRITE_CONCURRENCY: usize = 2;

/// Streams writes through `object_store`'s buffered writer: small files become one `put`, large ones a
/// multipart upload. On the local store either is an atomic rename, so a crash never leaves a
/// half-written file at the final name.
struct ObjectWrite {
    writer: Option<BufWriter>,
    location: String,
}

#[async_trait]
impl FileWrite for ObjectWrite {
    async fn write(&mut self, bs: Bytes) -> Result<()> {
        let writer =
            self.writer.as_mut().ok_or_else(|| io_error(&self.location, "write", "file already closed"))?;
        writer.put(bs).await.map_err(|e| io_error(&self.location, "write", e))
    }

    async fn close(&mut self) -> Result<()> {
        let mut writer =
            self.writer.take().ok_or_else(|| io_error(&self.location, "close", "file already closed"))?;
        writer.shutdown().await.map_err(|e| io_error(&self.location, "close", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delete_prefix_refuses_and_deletes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t/data/a.parquet");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, b"x").unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::local::LocalFileSystem::new());
        let storage = ObjectStoreStorageFactory::new(store, PathMapper::Local)
            .build(&StorageConfig::default())
            .unwrap();
        let prefix = format!("file://{}/t", dir.path().display());
        let refused = storage.delete_prefix(&prefix).await.unwrap_err();
        assert!(matches!(refused.kind(), ErrorKind::FeatureUnsupported), "{refused}");
        assert!(file.exists(), "nothing deleted");
    }
}
