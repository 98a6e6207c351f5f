//! Storage: one `object_store` handle per warehouse, shared by our own listing/deletion and by
//! iceberg's `FileIO` (through [`fileio::ObjectStoreStorageFactory`]), so both see the same objects
//! with the same credentials.
//!
//! Terms: a *location* is a URL-like string as Iceberg metadata stores it (`file:///w/t/f.parquet`,
//! `s3://bucket/w/t/f.parquet`); an *object path* is the key inside the store (`w/t/f.parquet`).

pub mod deletable;
/// Tests only (`test-util`).
#[cfg(feature = "test-util")]
pub mod faults;
mod fileio;
pub mod gate;
pub mod path;
pub mod reachable;

use std::path::{Component, Path as FsPath, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;

pub use fileio::ObjectStoreStorageFactory;

pub use crate::config::Dsn;
use crate::config::StorageConfig;
use crate::model::Access;

/// One listed object.
#[derive(Debug, Clone)]
pub struct Listed {
    pub location: String,
    pub size: u64,
    pub last_modified: chrono::DateTime<chrono::Utc>,
    /// The object is a symlink (reported, never followed).
    pub link: bool,
}

/// Walks `dir` depth-first without following links, sending every non-directory entry. Stops when the
/// receiver is gone. A missing `dir` lists nothing (like an object store); other errors are sent.
fn walk_local(dir: &FsPath, location: &str, tx: &tokio::sync::mpsc::Sender<Result<Listed, StorageError>>) {
    let error = |e: std::io::Error, path: &FsPath| StorageError::ObjectStore {
        location: location.to_string(),
        source: object_store::Error::Generic {
            store: "local",
            source: format!("{}: {e}", path.display()).into(),
        },
    };
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                let _ = tx.blocking_send(Err(error(e, &dir)));
                return;
            }
        };
        let mut names: Vec<_> = entries.filter_map(Result::ok).collect();
        names.sort_by_key(|e| e.file_name());
        for entry in names.into_iter().rev() {
            let path = entry.path();
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(meta) => meta,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    let _ = tx.blocking_send(Err(error(e, &path)));
                    return;
                }
            };
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            // A name that is not UTF-8 cannot be compared with any reference: never listed, never deleted.
            let Some(text) = path.to_str() else {
                tracing::warn!(path = %path.display(), "a file name that is not UTF-8 is left alone");
                continue;
            };
            let listed = Listed {
                location: format!("file://{text}"),
                size: meta.len(),
                last_modified: meta.modified().map(chrono::DateTime::from).unwrap_or_default(),
                link: meta.file_type().is_symlink(),
            };
            if tx.blocking_send(Ok(listed)).is_err() {
                return;
            }
        }
    }
}

/// Directories already looked at by [`Warehouse::through_link`] (one listing's worth).
#[derive(Debug, Default)]
pub struct LinkCache(std::collections::HashMap<PathBuf, bool>);

/// Storage errors carry the location they concern.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("location {location} is outside this warehouse's store ({root})")]
    Foreign { location: String, root: String },
    #[error("location {location}: {source}")]
    ObjectStore {
        location: String,
        #[source]
        source: object_store::Error,
    },
    #[error("storage {root}: {reason}")]
    Unsupported { root: String, reason: String },
}

/// Maps locations to object paths for one store. Local stores are rooted at `/` so that any
/// `file:` location a table uses is reachable; an S3 store serves one bucket.
#[derive(Debug, Clone)]
pub(crate) enum PathMapper {
    Local,
    S3 { bucket: String },
}

impl PathMapper {
    pub(crate) fn object_path(&self, location: &str) -> Result<ObjectPath, StorageError> {
        let foreign = || StorageError::Foreign { location: location.to_string(), root: self.describe() };
        let normalized = path::normalize(location).ok_or_else(foreign)?;
        let key = match self {
            PathMapper::Local => normalized.strip_prefix("file:///").ok_or_else(foreign)?,
            PathMapper::S3 { bucket } => {
                let rest = normalized.strip_prefix("s3://").ok_or_else(foreign)?;
                let (b, key) = rest.split_once('/').unwrap_or((rest, ""));
                if b != bucket {
                    return Err(foreign());
                }
                key
            }
        };
        ObjectPath::parse(key)
            .map_err(|e| StorageError::ObjectStore { location: location.to_string(), source: e.into() })
    }

    pub(crate) fn location(&self, path: &ObjectPath) -> String {
        match self {
            PathMapper::Local => format!("file:///{path}"),
            PathMapper::S3 { bucket } => format!("s3://{bucket}/{path}"),
        }
    }

    fn describe(&self) -> String {
        match self {
            PathMapper::Local => "file:///".into(),
            PathMapper::S3 { bucket } => format!("s3://{bucket}"),
        }
    }
}

/// The warehouse: its root location and the one store that serves it.
#[derive(Debug, Clone)]
pub struct Warehouse {
    root: String,
    /// Listings walk the local filesystem ourselves, never following symlinks (the store opened by
    /// [`Warehouse::open`] on a local `dsn`; an injected store is listed through itself).
    native_local: bool,
    /// The deletion gate unlinks local files itself, walking down from the root with `O_NOFOLLOW`
    /// (native local stores; tests may ask for it on an injected one).
    local_deletes: bool,
    /// `[storage] extra_roots`: further locations deletion may happen in (canonical).
    extra_roots: Vec<String>,
    store: Arc<dyn ObjectStore>,
    mapper: PathMapper,
}

impl Warehouse {
    /// Opens the configured store. With [`Access::ReadWrite`] a missing local warehouse directory is
    /// created; read-only access creates nothing.
    pub fn open(config: &StorageConfig, access: Access) -> Result<Warehouse, StorageError> {
        let root = config.dsn.root_location();
        match &config.dsn {
            Dsn::Local { root: dir } => {
                if access == Access::ReadWrite {
                    std::fs::create_dir_all(dir).map_err(|e| StorageError::Unsupported {
                        root: root.clone(),
                        reason: format!("cannot create warehouse directory: {e}"),
                    })?;
                }
                Ok(Warehouse {
                    root,
                    native_local: true,
                    local_deletes: true,
                    extra_roots: config.extra_roots.clone(),
                    store: Arc::new(LocalFileSystem::new()),
                    mapper: PathMapper::Local,
                })
            }
            Dsn::S3 { bucket, .. } => {
                // Standard AWS environment first (AWS_ACCESS_KEY_ID, AWS_REGION, AWS_ENDPOINT, …), then
                // the configuration's explicit settings.
                let mut builder = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_allow_http(config.allow_http)
                    .with_virtual_hosted_style_request(!config.path_style);
                if let Some(region) = &config.region {
                    builder = builder.with_region(region);
                }
                if let Some(endpoint) = &config.endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                if let (Some(key), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
                    builder = builder.with_access_key_id(key).with_secret_access_key(secret);
                }
                let store = builder
                    .build()
                    .map_err(|e| StorageError::Unsupported { root: root.clone(), reason: e.to_string() })?;
                Ok(Warehouse {
                    root,
                    native_local: false,
                    local_deletes: false,
                    extra_roots: config.extra_roots.clone(),
                    store: Arc::new(store),
                    mapper: PathMapper::S3 { bucket: bucket.clone() },
                })
            }
        }
    }

    /// Builds a warehouse over an arbitrary store (tests inject failing or in-memory stores).
    pub fn with_store(root: String, store: Arc<dyn ObjectStore>) -> Warehouse {
        let mapper = match root.strip_prefix("s3://") {
            Some(rest) => PathMapper::S3 { bucket: rest.split('/').next().unwrap_or("").to_string() },
            None => PathMapper::Local,
        };
        Warehouse { root, native_local: false, local_deletes: false, extra_roots: Vec::new(), store, mapper }
    }

    /// The same warehouse with further roots deletion may happen in (tests; config sets them at open).
    pub fn with_extra_roots(mut self, roots: Vec<String>) -> Warehouse {
        self.extra_roots = roots;
        self
    }

    /// Every object below the directory `location`, as (location, size, last modified, is a symlink).
    /// On a local warehouse the walk never follows a symlink: a link is reported as an object of its
    /// own (and nothing behind it), so a link to `/` costs one entry, not a walk of the filesystem.
    pub fn list(&self, location: &str) -> BoxStream<'static, Result<Listed, StorageError>> {
        let prefix = match self.object_path(location) {
            Ok(p) => p,
            Err(e) => return futures::stream::once(async { Err(e) }).boxed(),
        };
        if !self.native_local {
            let (mapper, location) = (self.mapper.clone(), location.to_string());
            return self
                .store
                .list(Some(&prefix))
                .map(move |r| match r {
                    Ok(meta) => Ok(Listed {
                        location: mapper.location(&meta.location),
                        size: meta.size,
                        last_modified: meta.last_modified,
                        link: false,
                    }),
                    Err(source) => Err(StorageError::ObjectStore { location: location.clone(), source }),
                })
                .boxed();
        }
        let dir = PathBuf::from(format!("/{prefix}"));
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let location = location.to_string();
        tokio::task::spawn_blocking(move || walk_local(&dir, &location, &tx));
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }).boxed()
    }

    /// The same warehouse, deleting local files itself (as a local `dsn` does) whatever store it holds.
    pub fn with_local_deletes(mut self) -> Warehouse {
        self.local_deletes = matches!(self.mapper, PathMapper::Local);
        self
    }

    /// Whether the deletion gate deletes through [`Warehouse::unlink_local`] rather than the store.
    pub fn deletes_locally(&self) -> bool {
        self.local_deletes
    }

    /// The filesystem path of the local `location` and of the outermost root that contains it (links
    /// are looked for, and deletes walk down, from there).
    fn local_target_and_root(&self, location: &str) -> std::io::Result<(PathBuf, PathBuf)> {
        let local = |l: &str| path::normalize(l).and_then(|n| n.strip_prefix("file://").map(PathBuf::from));
        let target = local(location).ok_or_else(|| std::io::Error::other("not a local location"))?;
        let root = self
            .roots()
            .iter()
            .filter_map(|r| local(r))
            .filter(|r| target.starts_with(r) && target != *r)
            .min_by_key(|r| r.components().count())
            .ok_or_else(|| std::io::Error::other("outside every root"))?;
        Ok((target, root))
    }

    /// Deletes the local file `location`, opening every directory from the root that contains it
    /// down with `O_NOFOLLOW`, so a directory swapped for a link after the gate's checks is never
    /// followed, and unlinking only a regular file. `NotFound` when it is gone.
    pub fn unlink_local(&self, location: &str) -> std::io::Result<()> {
        use rustix::fs::{AtFlags, FileType, Mode, OFlags};
        let (target, root) = self.local_target_and_root(location)?;
        let relative: Vec<_> =
            target.strip_prefix(&root).map_err(std::io::Error::other)?.components().collect();
        let (last, dirs) = relative.split_last().ok_or_else(|| std::io::Error::other("the root itself"))?;
        let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let mut dir = rustix::fs::open(&root, dir_flags, Mode::empty())?;
        for part in dirs {
            let Component::Normal(name) = part else { return Err(std::io::Error::other("not a plain path")) };
            dir = rustix::fs::openat(&dir, *name, dir_flags | OFlags::NOFOLLOW, Mode::empty())?;
        }
        let Component::Normal(name) = last else { return Err(std::io::Error::other("not a plain path")) };
        let stat = rustix::fs::statat(&dir, *name, AtFlags::SYMLINK_NOFOLLOW)?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(std::io::Error::other("not a regular file (a link, directory or device): kept"));
        }
        rustix::fs::unlinkat(&dir, *name, AtFlags::empty())?;
        Ok(())
    }

    /// Every root deletion may happen in: the warehouse root and the configured extra roots.
    pub fn roots(&self) -> Vec<String> {
        std::iter::once(self.root.clone()).chain(self.extra_roots.iter().cloned()).collect()
    }

    /// Whether `location` is a symlink or lies below one, looking at every path component below the
    /// root that contains it (a root that is itself reached through a link is the operator's choice).
    /// Always `Ok(false)` on object stores, which have no links; `Err(NotFound)` when it is gone.
    pub fn through_link(&self, location: &str, cache: &mut LinkCache) -> std::io::Result<bool> {
        if !matches!(self.mapper, PathMapper::Local) {
            return Ok(false);
        }
        let (target, root) = self.local_target_and_root(location)?;
        // The object itself: a fresh look every time.
        if std::fs::symlink_metadata(&target)?.file_type().is_symlink() {
            return Ok(true);
        }
        let mut dir = target.parent();
        while let Some(d) = dir {
            if d == root || !d.starts_with(&root) {
                break;
            }
            let linked = match cache.0.get(d) {
                Some(known) => *known,
                None => {
                    let known = std::fs::symlink_metadata(d)?.file_type().is_symlink();
                    cache.0.insert(d.to_path_buf(), known);
                    known
                }
            };
            if linked {
                return Ok(true);
            }
            dir = d.parent();
        }
        Ok(false)
    }

    /// The warehouse root as a location.
    pub fn root(&self) -> &str {
        &self.root
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    pub fn object_path(&self, location: &str) -> Result<ObjectPath, StorageError> {
        self.mapper.object_path(location)
    }

    pub fn location(&self, path: &ObjectPath) -> String {
        self.mapper.location(path)
    }

    /// The iceberg storage factory over this same store.
    pub fn storage_factory(&self) -> Arc<ObjectStoreStorageFactory> {
        Arc::new(ObjectStoreStorageFactory::new(self.store.clone(), self.mapper.clone()))
    }

    /// Reachability probe for `/ready`: one listing request under the root.
    pub async fn ping(&self) -> Result<(), StorageError> {
        let prefix = self.object_path(&self.root)?;
        self.store
            .list_with_delimiter(Some(&prefix))
            .await
            .map(|_| ())
            .map_err(|source| StorageError::ObjectStore { location: self.root.clone(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dsn_forms() {
        let cwd = FsPath::new("/srv/signaldb");
        assert_eq!(Dsn::parse("file:///data/w", cwd), Ok(Dsn::Local { root: "/data/w".into() }));
        assert_eq!(
            Dsn::parse("file://.data/warehouse", cwd),
            Ok(Dsn::Local { root: "/srv/signaldb/.data/warehouse".into() })
        );
        assert_eq!(Dsn::parse("./w/../x", cwd), Ok(Dsn::Local { root: "/srv/signaldb/x".into() }));
        assert_eq!(
            Dsn::parse("s3://my-bucket/lake/", cwd),
            Ok(Dsn::S3 { bucket: "my-bucket".into(), prefix: "lake".into() })
        );
        assert_eq!(
            Dsn::parse("s3a://my-bucket", cwd).map(|d| d.root_location()),
            Ok("s3://my-bucket".to_string())
        );
        assert!(Dsn::parse("s3://Bad_Bucket/x", cwd).unwrap_err().contains("bucket"));
        assert!(Dsn::parse("gs://b/x", cwd).unwrap_err().contains("scheme"));
        assert!(Dsn::parse("", cwd).is_err());
    }

    #[test]
    fn mapper_round_trips_and_refuses_foreign_locations() {
        let local = PathMapper::Local;
        let p = local.object_path("file:/w/t/data/f.parquet").unwrap();
        assert_eq!(p.as_ref(), "w/t/data/f.parquet");
        assert_eq!(local.location(&p), "file:///w/t/data/f.parquet");
        assert!(local.object_path("s3://b/x").is_err());

        let s3 = PathMapper::S3 { bucket: "b".into() };
        let p = s3.object_path("s3a://b/w/t/f").unwrap();
        assert_eq!(p.as_ref(), "w/t/f");
        assert_eq!(s3.location(&p), "s3://b/w/t/f");
        assert!(s3.object_path("s3://other/w/t/f").is_err());
        assert!(s3.object_path("file:///w/t/f").is_err());
    }
}

#[cfg(test)]
mod attack {
    use super::*;

    /// `through_link` only looks at components below the *longest* root containing the target. An extra
    /// root listed inside the warehouse (overlapping roots) hides every link at or above it: here
    /// `<w>/t` is a link out of the warehouse, and a file behind it is reported as not linked.
    #[test]
    fn attack_an_extra_root_inside_the_warehouse_hides_links_above_it() {
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path().join("w");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(outside.join("data")).unwrap();
        std::fs::write(outside.join("data/precious"), b"x").unwrap();
        std::fs::create_dir_all(&w).unwrap();
        std::os::unix::fs::symlink(&outside, w.join("t")).unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new());
        let plain = Warehouse::with_store(format!("file://{}", w.display()), store.clone());
        let target = format!("file://{}", w.join("t/data/precious").display());
        assert!(plain.through_link(&target, &mut LinkCache::default()).unwrap(), "caught with one root");
        let overlapping = Warehouse::with_store(format!("file://{}", w.display()), store)
            .with_extra_roots(vec![format!("file://{}", w.join("t/data").display())]);
        assert!(
            overlapping.through_link(&target, &mut LinkCache::default()).unwrap(),
            "a file reached through the link <w>/t is not seen as linked once <w>/t/data is an extra root"
        );
    }
}
