//! `[storage] dsn`: where the warehouse lives, parsed once at the edge (the storage layer opens it).

use std::path::{Component, Path as FsPath, PathBuf};

use serde::Serialize;

/// Where the warehouse lives, as configured by `[storage] dsn`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Dsn {
    /// A local directory (absolute after parsing).
    Local { root: PathBuf },
    /// An S3-compatible bucket and key prefix (no leading or trailing slash).
    S3 { bucket: String, prefix: String },
}

impl Dsn {
    /// Parses `file:///abs`, `file://relative` (relative to `cwd`), a bare path, or `s3://bucket/prefix`
    /// (`s3a://` accepted). The error says why, for the config error line.
    pub fn parse(text: &str, cwd: &FsPath) -> Result<Dsn, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("must not be empty".into());
        }
        if let Some(rest) = ["s3://", "s3a://"].iter().find_map(|p| text.strip_prefix(p)) {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            validate_bucket(bucket)?;
            let prefix = prefix.trim_matches('/').to_string();
            if prefix.split('/').any(|s| s == "." || s == "..") {
                return Err("the key prefix must not contain . or .. segments".into());
            }
            return Ok(Dsn::S3 { bucket: bucket.to_string(), prefix });
        }
        let local = if let Some(rest) = text.strip_prefix("file://") {
            rest
        } else if let Some(rest) = text.strip_prefix("file:") {
            rest
        } else if text.contains("://") {
            return Err("unsupported scheme; expected file:// or s3://".into());
        } else {
            text
        };
        if local.is_empty() {
            return Err("a file:// DSN needs a path".into());
        }
        let joined = cwd.join(local);
        Ok(Dsn::Local { root: lexical_normalize(&joined) })
    }

    /// The warehouse root as a location, e.g. `file:///abs/warehouse` or `s3://bucket/prefix`.
    pub fn root_location(&self) -> String {
        match self {
            Dsn::Local { root } => format!("file://{}", root.display()),
            Dsn::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
            Dsn::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        }
    }
}

fn validate_bucket(bucket: &str) -> Result<(), String> {
    let ok_chars =
        bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if !(3..=63).contains(&bucket.len()) || !ok_chars {
        return Err(format!(
            "bucket {bucket:?} is not a valid S3 bucket name (3-63 lowercase letters, digits, '-', '.')"
        ));
    }
    Ok(())
}

/// Removes `.` and resolves `..` without touching the filesystem (the directory may not exist yet).
fn lexical_normalize(path: &FsPath) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}
