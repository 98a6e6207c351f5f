//! Location normalization: the one way two spellings of the same object compare equal.
//!
//! Hazard: orphan cleaners have deleted live files because metadata said `s3a://b/t/f` while listing
//! said `s3://b/t/f`, or `file:/x` against `file:///x`, or `…/data/./f` against `…/data/f`, or because
//! `…/t2/f` was taken to be inside `…/t`. Every comparison of locations in this crate goes through
//! [`normalize`] and [`is_within`] (references, listings and the deletion gate alike).
//!
//! Percent-encoding is ambiguous between engines (one reads `a%20b` as the object `a%20b`, another as
//! `a b`), so [`normalize`] keeps it verbatim and [`percent_decoded`] gives the other reading; the live
//! set holds both, so neither object can be taken for an orphan.

/// Canonical form of a location: scheme aliases folded (`s3a`/`s3n` → `s3`), local paths as
/// `file:///abs/path`, repeated slashes collapsed, `.` segments dropped and `..` resolved, no trailing
/// slash. `None` for a location that is not absolute (a relative path names nothing reliably), or whose
/// `..` climbs above its root.
pub fn normalize(location: &str) -> Option<String> {
    // Surrounding whitespace is not trimmed away: `…/t ` and `…/t` are different directories, and a
    // location that cannot be compared exactly is no location (callers fail closed).
    if location.is_empty() || location.trim() != location {
        return None;
    }
    let (scheme, rest) = match location.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => match split_scheme(location) {
            // `file:/x` (single slash, no authority), any case of the scheme.
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("file") && rest.starts_with('/') => {
                return Some(format!("file://{}", collapse(rest)?));
            }
            Some(_) => return None,
            None if location.starts_with('/') => return Some(format!("file://{}", collapse(location)?)),
            None => return None,
        },
    };
    match scheme.as_str() {
        "file" => {
            // `file:///x` → "/x"; `file://localhost/x` (any case) → "/x". Any other host has two
            // readings (iceberg-rust: `/host/x`; Hadoop: `/x`): no canonical form.
            let path = match rest.find('/') {
                Some(0) => rest,
                Some(i) if rest[..i].eq_ignore_ascii_case("localhost") => &rest[i..],
                _ => return None,
            };
            Some(format!("file://{}", collapse(path)?))
        }
        "s3" | "s3a" | "s3n" | "gs" | "gcs" | "abfs" | "abfss" | "memory" => {
            let scheme = match scheme.as_str() {
                "s3a" | "s3n" => "s3",
                "gcs" => "gs",
                other => other,
            };
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            // Bucket names are lower case; an upper-case one may name the same bucket (DNS) or a
            // legacy bucket of its own: no canonical form.
            if authority.is_empty() || authority.chars().any(|c| c.is_ascii_uppercase()) {
                return None;
            }
            // A bucket has no user or port: `s3a://user@bucket/k` or `s3://bucket:9000/k` names the
            // object `s3://bucket/k` for Hadoop, but would not compare equal to it here.
            if matches!(scheme, "s3" | "gs") && authority.contains(['@', ':']) {
                return None;
            }
            let path = collapse(path)?;
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

/// `scheme:rest` for a location whose first `:` follows a valid URI scheme.
fn split_scheme(location: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = location.split_once(':')?;
    let valid = scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some((scheme, rest))
}

/// Collapses repeated slashes, drops `.` segments and a trailing slash, resolves `..` lexically.
/// `None` when `..` would climb above the root.
fn collapse(path: &str) -> Option<String> {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop()?;
            }
            other => segments.push(other),
        }
    }
    let joined = segments.join("/");
    Some(if path.starts_with('/') { format!("/{joined}") } else { joined })
}

/// The other reading of a location that contains percent-escapes: decoded, then normalized. `None`
/// when there is nothing to decode, the escapes are not UTF-8, or the result does not normalize.
pub fn percent_decoded(location: &str) -> Option<String> {
    if !location.contains('%') {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(location).decode_utf8().ok()?;
    let normalized = normalize(&decoded)?;
    (normalized != location).then_some(normalized)
}

/// Whether two locations name the same object or directory.
pub fn same_location(a: &str, b: &str) -> bool {
    matches!((normalize(a), normalize(b)), (Some(a), Some(b)) if a == b)
}

/// The table location a metadata file implies: `…/t/metadata/00001-x.metadata.json` → `…/t`. `None` when
/// the file does not sit in a `metadata` directory (the table's location is then unknown).
pub fn table_location_of_metadata(metadata_location: &str) -> Option<String> {
    let normalized = normalize(metadata_location)?;
    let (dir, _file) = normalized.rsplit_once('/')?;
    let (table, last) = dir.rsplit_once('/')?;
    if last != "metadata" {
        return None;
    }
    normalize(table)
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
        // A user or a port in the authority: the same object for Hadoop, no canonical form here.
        for odd in ["s3a://user@bucket/w/t/f.parquet", "s3://bucket:9000/w/t/f.parquet", "gs://u:p@b/k"] {
            assert_eq!(normalize(odd), None, "{odd}");
        }
        // Azure's authority is `container@account`: kept as it is.
        assert!(normalize("abfss://c@acct.dfs.core.windows.net/w/t").is_some());
    }

    #[test]
    fn dot_segments_resolve_and_cannot_climb_above_the_root() {
        let want = Some("file:///w/t/data/f.parquet".to_string());
        assert_eq!(normalize("file:///w/t/data/./f.parquet"), want);
        assert_eq!(normalize("file:///w/t/a/../data/f.parquet"), want);
        assert_eq!(normalize("/w/t/./data//x/../f.parquet"), want);
        assert_eq!(normalize("s3://b/w/./t/../t/f"), Some("s3://b/w/t/f".to_string()));
        assert_eq!(normalize("file:///../etc/passwd"), None);
        assert_eq!(normalize("s3://b/../other/k"), None);
        assert!(!is_within("file:///w/t", "file:///w/t/../u/f"));
        assert!(is_within("file:///w/t", "file:///w/u/../t/f"));
    }

    #[test]
    fn percent_escapes_have_a_second_reading() {
        assert_eq!(percent_decoded("file:///w/t/a%20b.parquet"), Some("file:///w/t/a b.parquet".into()));
        assert_eq!(percent_decoded("s3://b/t/a%2Fb"), Some("s3://b/t/a/b".into()));
        assert_eq!(percent_decoded("file:///w/t/plain.parquet"), None);
        assert_eq!(percent_decoded("file:///w/t/bad%FF.parquet"), None);
    }

    #[test]
    fn metadata_files_imply_their_table_location() {
        assert_eq!(
            table_location_of_metadata("file:///w/acme/t/metadata/00001-x.metadata.json"),
            Some("file:///w/acme/t".into())
        );
        assert_eq!(
            table_location_of_metadata("s3a://b/w/t/metadata/v1.metadata.json"),
            Some("s3://b/w/t".into())
        );
        assert_eq!(table_location_of_metadata("file:///w/t/00001-x.metadata.json"), None);
        assert!(same_location("file:/w/t/", "file:///w//t"));
        assert!(!same_location("file:///w/t", "file:///w/t2"));
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

#[cfg(test)]
mod attack {
    use super::*;

    #[test]
    fn attack_scheme_case_does_not_change_the_local_path() {
        assert_eq!(normalize("FILE:///w/t/f"), Some("file:///w/t/f".to_string()));
    }
}
