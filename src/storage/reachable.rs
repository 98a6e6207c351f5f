//! The reachable set: normalized locations of every file some metadata references. Computed by
//! `table::reachability` (which reads the metadata); consumed here by the deletion rules.

use std::collections::HashSet;

use super::path::{normalize, percent_decoded};

/// Normalized locations of every file the table's metadata references.
///
/// A reference with percent-escapes also makes its decoded reading live (engines disagree on which
/// object such a location names), and a reference that does not normalize at all is kept verbatim and
/// listed in [`Reachable::uncanonical`]: a cleaner must then delete nothing for the table.
#[derive(Debug, Clone, Default)]
pub struct Reachable {
    paths: HashSet<String>,
    /// Second readings of percent-escaped references: live, but not the table's own spelling.
    alternates: HashSet<String>,
    uncanonical: Vec<String>,
}

impl Reachable {
    /// A set from known locations (tests, and callers that add files they know are live).
    pub fn from_locations<'a>(locations: impl IntoIterator<Item = &'a str>) -> Reachable {
        let mut out = Reachable::default();
        for l in locations {
            out.insert(l);
        }
        out
    }

    pub fn contains(&self, location: &str) -> bool {
        normalize(location).is_some_and(|n| self.paths.contains(&n) || self.alternates.contains(&n))
    }

    /// References that could not be put in canonical form (kept verbatim).
    pub fn uncanonical(&self) -> &[String] {
        &self.uncanonical
    }

    /// Every canonical reference (not the alternate readings).
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.paths.iter().map(String::as_str)
    }

    /// Adds every reference of `other` (a later reading of the same table).
    pub fn extend(&mut self, other: &Reachable) {
        self.paths.extend(other.paths.iter().cloned());
        self.alternates.extend(other.alternates.iter().cloned());
        self.uncanonical.extend(other.uncanonical.iter().cloned());
    }

    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Locations in `self` but not in `other` (sorted).
    pub fn minus(&self, other: &Reachable) -> Vec<String> {
        let mut out: Vec<String> = self.paths.difference(&other.paths).cloned().collect();
        out.sort();
        out
    }

    /// Adds one referenced location (normalized; kept verbatim when it does not normalize).
    pub fn insert(&mut self, location: &str) {
        match normalize(location) {
            Some(n) => {
                if let Some(decoded) = percent_decoded(&n) {
                    self.alternates.insert(decoded);
                }
                self.paths.insert(n);
            }
            None => {
                // Cannot be compared; keep it verbatim so it is never mistaken for unreferenced.
                self.uncanonical.push(location.to_string());
                self.paths.insert(location.to_string());
            }
        }
    }
}

/// `live` plus, for every local reference reached through a symbolic link, the same file under its
/// real path. A table that references `…/t/data/shared/f.parquet` where `shared` links to `…/u/data`
/// (or `…/t/data/f.parquet` that is itself a link to `…/u/data/g.parquet`) reads the file under `u`;
/// that file must count as referenced when `u`'s location is cleaned, where the listing names it by
/// its real path. One `realpath` per distinct directory and one `lstat` per file, on a blocking
/// thread. A path that does not exist adds nothing (nothing can be reached through it); any other
/// failure is an `Err`: the caller then treats the table's references as unknown.
///
/// Not followed: a `..` after a link (`…/t/data/lnk/../f`): references are normalized as text first,
/// as every engine's path handling does.
///
/// Real paths are also spelled from each local root as configured: a root reached through a link
/// itself (`/data/wh -> /mnt/wh`) is listed under its configured spelling, which is what the cleaner
/// compares.
pub async fn with_link_targets(live: Reachable, roots: &[String]) -> Result<Reachable, String> {
    let roots: Vec<String> = roots
        .iter()
        .filter_map(|r| r.strip_prefix("file://"))
        .map(|r| r.trim_end_matches('/').to_string())
        .collect();
    let mut dirs: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
    for path in live.paths.iter().chain(&live.alternates) {
        if let Some((dir, name)) = path.strip_prefix("file://").and_then(|p| p.rsplit_once('/')) {
            dirs.entry(dir.to_string()).or_default().push(name.to_string());
        }
    }
    if dirs.is_empty() {
        return Ok(live);
    }
    let resolved = tokio::task::spawn_blocking(move || -> Result<Vec<String>, String> {
        let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
        let real = |path: &str| -> Result<Option<String>, String> {
            match std::fs::canonicalize(path) {
                Ok(p) => p
                    .to_str()
                    .map(|p| Some(p.trim_end_matches('/').to_string()))
                    .ok_or_else(|| format!("{path} resolves to a path that is not UTF-8")),
                Err(e) if gone(&e) => Ok(None),
                Err(e) => Err(format!("resolving {path}: {e}")),
            }
        };
        // Each local root's real path, with its configured spelling.
        let mut real_roots = Vec::new();
        for root in &roots {
            if let Some(real_root) = real(if root.is_empty() { "/" } else { root.as_str() })?
                && real_root != *root
            {
                real_roots.push((real_root, root.clone()));
            }
        }
        let respelled = |real_path: &str| -> Vec<String> {
            let mut spellings = vec![format!("file://{real_path}")];
            for (real_root, root) in &real_roots {
                if let Some(rest) = real_path.strip_prefix(real_root.as_str()).filter(|r| r.starts_with('/'))
                {
                    spellings.push(format!("file://{root}{rest}"));
                }
            }
            spellings
        };
        let mut out = Vec::new();
        for (dir, names) in dirs {
            let Some(real_dir) = real(if dir.is_empty() { "/" } else { dir.as_str() })? else { continue };
            for name in names {
                let file = format!("{real_dir}/{name}");
                if real_dir != dir {
                    out.extend(respelled(&file));
                }
                match std::fs::symlink_metadata(&file) {
                    Ok(meta) if meta.file_type().is_symlink() => {
                        if let Some(target) = real(&file)? {
                            out.extend(respelled(&target));
                        }
                    }
                    Ok(_) => {}
                    Err(e) if gone(&e) => {}
                    Err(e) => return Err(format!("reading {file}: {e}")),
                }
            }
        }
        Ok(out)
    })
    .await
    .map_err(|e| format!("resolving the links of local references: {e}"))??;
    let mut out = live;
    for path in &resolved {
        out.insert(path);
    }
    Ok(out)
}
