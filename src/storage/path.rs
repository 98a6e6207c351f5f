//! Location normalization: the one way two spellings of the same object compare equal.
//!
//! Hazard: orphan cleaners have deleted live files because metadata said `s3a://b/t/f` while listing
//! said `s3://b/t/f`, or `file:/x` against `file:///x`, or because `…/t2/f` was taken to be inside
//! `…/t`. Every comparison of locations in this crate goes through [`normalize`] and [`is_within`].

/// Canonical form of a location: scheme aliases folded (`s3a`/`s3n` → `s3`), local paths as
/// `file:///abs/path`, repeated slashes collapsed, no trailing slash. `None` for a location that is not
/// absolute (a relative path names nothing reliably).
pub fn normalize(location: &str) -> Option<String> {
    let location = location.trim();
    let (scheme, rest) = match location.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => match location.strip_prefix("file:") {
            // `file:/x` (single slash, no authority).
            Some(rest) => ("file".to_string(), rest),
            None if location.starts_with('/') => ("file".to_string(), location),
            None => return None,
        },
    };
    match scheme.as_str() {
        "file" => {
            // `file:///x` → rest "/x"; `file://localhost/x` → "/x"; iceberg's local storage reads
            // `file://x/y` as `/x/y`, so the same object is named here.
            let rest = rest.strip_prefix("localhost/").map(|r| format!("/{r}"));
            let rest = rest.as_deref().unwrap_or_else(|| location_rest(location));
            let path = collapse(rest);
            Some(format!("file:///{}", path.trim_start_matches('/')))
        }
        "s3" | "s3a" | "s3n" | "gs" | "gcs" | "abfs" | "abfss" | "memory" => {
            let scheme = match scheme.as_str() {
                "s3a" | "s3n" => "s3",
                "gcs" => "gs",
                other => other,
            };
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            if authority.is_empty() {
                return None;
            }
            let path = collapse(path);
            let path = path.trim_start_matches('/');
            if path.is_empty() {
                Some(format!("{scheme}://{authority}"))
            } else {
                Some(format!("{scheme}://{authority}/{path}"))
            }
        }
        _ => None,
    }
}

/// The path part of a `file:` location in any of its spellings.
fn location_rest(location: &str) -> &str {
    location.strip_prefix("file://").or_else(|| location.strip_prefix("file:")).unwrap_or(location)
}

/// Collapses repeated slashes and drops a trailing slash.
fn collapse(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 1);
    if path.starts_with('/') {
        out.push('/');
    }
    for (i, segment) in path.split('/').filter(|s| !s.is_empty()).enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(segment);
    }
    out
}

/// Whether `location` lies inside the directory `dir` (both normalized here). A directory does not
/// contain itself, and `…/t` does not contain `…/t2/f`.
pub fn is_within(dir: &str, location: &str) -> bool {
    match (normalize(dir), normalize(location)) {
        (Some(dir), Some(loc)) => {
            loc.len() > dir.len() + 1 && loc.starts_with(&dir) && loc.as_bytes()[dir.len()] == b'/'
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_spellings_are_one_location() {
        let want = Some("file:///data/w/t/f.parquet".to_string());
        assert_eq!(normalize("file:///data/w/t/f.parquet"), want);
        assert_eq!(normalize("file:/data/w/t/f.parquet"), want);
        assert_eq!(normalize("/data/w/t/f.parquet"), want);
        assert_eq!(normalize("file://localhost/data/w/t/f.parquet"), want);
        assert_eq!(normalize("file:///data//w/t/f.parquet"), want);
        assert_eq!(normalize("file:///data/w/t/f.parquet/"), want);
    }

    #[test]
    fn s3_aliases_fold_to_s3() {
        let want = Some("s3://bucket/w/t/f.parquet".to_string());
        assert_eq!(normalize("s3a://bucket/w/t/f.parquet"), want);
        assert_eq!(normalize("s3n://bucket/w/t/f.parquet"), want);
        assert_eq!(normalize("S3://bucket/w//t/f.parquet"), want);
        assert_eq!(normalize("s3://bucket/w/t/f.parquet/"), want);
        assert_eq!(normalize("s3://bucket/"), Some("s3://bucket".to_string()));
    }

    #[test]
    fn relative_and_unknown_locations_do_not_normalize() {
        assert_eq!(normalize("data/w/t"), None);
        assert_eq!(normalize("ftp://host/x"), None);
        assert_eq!(normalize("s3:///no-bucket"), None);
    }

    #[test]
    fn sibling_prefixes_are_not_inside() {
        assert!(is_within("file:///w/acme.prod/traces", "file:///w/acme.prod/traces/data/f"));
        assert!(is_within("file:///w/acme.prod/traces/", "file:/w/acme.prod/traces/data/f"));
        assert!(!is_within("file:///w/acme.prod/traces", "file:///w/acme.prod/traces_v2/data/f"));
        assert!(!is_within("file:///w/acme.prod/t", "file:///w/acme.prod/t2/f"));
        assert!(!is_within("file:///w/t", "file:///w/t"));
        assert!(is_within("s3a://b/w/t", "s3://b/w/t/metadata/x.json"));
        assert!(!is_within("s3://b/w/t", "s3://other/w/t/x"));
        assert!(!is_within("s3://b/w/t", "file:///w/t/x"));
    }
}
