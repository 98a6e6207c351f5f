//! The one definition of "deletable", as pure functions over plain values (no IO): the deletion gate
//! applies it to every candidate of every deletion path (orphan cleanup, snapshot-expiry cleanup), and
//! orphan cleanup classifies its listing with it before the gate checks again.
//!
//! Terms: a *root* is the configured warehouse location or an extra root an operator listed in
//! `[storage] extra_roots`. The *layout* is what a pass knows of every catalog table: its location (from
//! its metadata, or implied by the catalog row's metadata pointer) and who references which file. A
//! *scope* is one table's right to delete, established once per pass by [`Layout::scope`].
//!
//! An object is deletable only when (a) it lies inside a root; (b) it lies inside the table's own
//! location and inside no other catalog table's location; (c) no table of the catalog references it;
//! (d) it is older than the grace period; (e) it is not a symlink and not reached through one.
//!
//! Fail closed: a table whose location equals another table's, equals a root or lies outside every
//! root deletes nothing; so does every table while some table's location is unknown (it could lie
//! anywhere, including inside the table being cleaned); so does a table one of whose own references
//! cannot be put in canonical form.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use super::path::{is_within, normalize, percent_decoded, same_location};
use crate::storage::reachable::Reachable;

/// Why a table deletes nothing this pass. `reason()` is the metric label and the report's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableSkip {
    /// Its own metadata could not be read (and no location could be implied).
    UnreadableMetadata,
    LocationOutsideWarehouse {
        location: String,
    },
    LocationIsRoot {
        location: String,
    },
    SharedLocation {
        location: String,
        with: String,
    },
    UnknownNeighbour {
        neighbour: String,
    },
    UncanonicalReference {
        reference: String,
    },
}

impl TableSkip {
    pub fn reason(&self) -> &'static str {
        match self {
            TableSkip::UnreadableMetadata => "unreadable_metadata",
            TableSkip::LocationOutsideWarehouse { .. } => "location_outside_warehouse",
            TableSkip::LocationIsRoot { .. } => "location_is_root",
            TableSkip::SharedLocation { .. } => "shared_location",
            TableSkip::UnknownNeighbour { .. } => "unknown_neighbour",
            TableSkip::UncanonicalReference { .. } => "uncanonical_reference",
        }
    }
}

/// Whether a report about a table of `tenant` may name table `name` (as the census prints it:
/// `tenant.dataset.table`, or `catalog:…` for another catalog): only a table of the same tenant in
/// this catalog. Reports reach tenant-scoped admin tokens and audit rows; log lines name everything.
pub fn may_name_in_report(name: &str, tenant: &str) -> bool {
    name.strip_prefix(tenant).is_some_and(|rest| rest.starts_with('.')) && !name.contains(':')
}

/// `name`, or a stand-in when a report about a table of `tenant` may not name it.
pub fn report_name(name: &str, tenant: &str) -> String {
    if may_name_in_report(name, tenant) {
        name.to_string()
    } else {
        "a table of another tenant or catalog (the log names it)".to_string()
    }
}

impl TableSkip {
    /// The reason as a report about a table of `tenant` shows it: another table is named only when it
    /// belongs to the same tenant ([`may_name_in_report`]).
    pub fn for_report(&self, tenant: &str) -> String {
        match self {
            TableSkip::SharedLocation { location, with } if !may_name_in_report(with, tenant) => {
                format!("shared_location: {location} is also the location of {}", report_name(with, tenant))
            }
            TableSkip::UnknownNeighbour { neighbour } if !may_name_in_report(neighbour, tenant) => {
                format!(
                    "unknown_neighbour: the location of {} cannot be established this pass",
                    report_name(neighbour, tenant)
                )
            }
            // The reference may be another table's (one committed during the pass): not quoted.
            TableSkip::UncanonicalReference { .. } => {
                "uncanonical_reference: metadata references a location that cannot be put in canonical \
                 form (the log quotes it)"
                    .to_string()
            }
            other => other.to_string(),
        }
    }
}

impl std::fmt::Display for TableSkip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TableSkip::UnreadableMetadata => write!(f, "unreadable_metadata"),
            TableSkip::LocationOutsideWarehouse { location } => {
                write!(f, "location_outside_warehouse: {location} lies outside every allowed root")
            }
            TableSkip::LocationIsRoot { location } => {
                write!(f, "location_is_root: {location} is a warehouse root")
            }
            TableSkip::SharedLocation { location, with } => {
                write!(f, "shared_location: {location} is also the location of {with}")
            }
            TableSkip::UnknownNeighbour { neighbour } => {
                write!(f, "unknown_neighbour: the location of {neighbour} cannot be established this pass")
            }
            TableSkip::UncanonicalReference { reference } => {
                write!(f, "uncanonical_reference: metadata references {reference:?}")
            }
        }
    }
}

/// Why an object is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Keep {
    NotCanonical,
    OutsideWarehouse,
    OutsideTableLocation,
    InsideOtherTable,
    StillReferenced,
    ReferencedByOtherTable,
    Symlink,
    YoungerThanGracePeriod,
    /// The table is skipped this pass (see [`TableSkip`]).
    TableSkipped,
    /// A scope that may delete superseded `metadata.json` files only was handed another file.
    NotSupersededMetadata,
}

pub use crate::config::UnreadableNeighbours;

/// Which tables reference a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owners {
    One(usize),
    Many,
}

/// One catalog table as the layout knows it.
#[derive(Debug, Clone)]
pub struct TableFacts {
    /// `tenant.dataset.table` (or the catalog row's identifier).
    pub name: String,
    /// Canonical location; `None` when neither the metadata nor the catalog row tells it.
    pub location: Option<String>,
    /// Whether every file it references is known (recorded through [`Layout::add_references`], all
    /// of them canonical).
    pub references_known: bool,
    /// Its first reference that could not be put in canonical form, if any.
    pub uncanonical: Option<String>,
}

/// What one pass knows of the whole catalog.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    roots: Vec<String>,
    unreadable: UnreadableNeighbours,
    tables: Vec<TableFacts>,
    references: HashMap<String, Owners>,
}

impl Layout {
    /// The roots (normalized).
    pub fn roots(&self) -> &[String] {
        &self.roots
    }

    /// A layout over `roots` (locations; any that does not normalize is dropped, which only narrows).
    pub fn new(roots: impl IntoIterator<Item = String>) -> Layout {
        let roots = roots.into_iter().filter_map(|r| normalize(&r)).collect();
        Layout { roots, ..Layout::default() }
    }

    /// Sets what an unreadable neighbour means (default [`UnreadableNeighbours::Block`]).
    pub fn with_unreadable(mut self, policy: UnreadableNeighbours) -> Layout {
        self.unreadable = policy;
        self
    }

    /// Adds a table with its location (any spelling; `None` = unknown) and returns its index.
    pub fn add_table(&mut self, name: &str, location: Option<&str>) -> usize {
        let location = location.and_then(normalize);
        self.tables.push(TableFacts {
            name: name.to_string(),
            location,
            references_known: false,
            uncanonical: None,
        });
        self.tables.len() - 1
    }

    /// Records every reference of table `index`.
    pub fn add_references(&mut self, index: usize, refs: &Reachable) {
        for path in refs.iter() {
            self.add_reference(index, path);
        }
        // A reference that cannot be put in canonical form could name any file: unknown.
        self.tables[index].references_known = refs.uncanonical().is_empty();
        self.tables[index].uncanonical = refs.uncanonical().first().cloned();
    }

    /// Records one reference (any spelling) of table `index`, with its percent-decoded reading.
    pub fn add_reference(&mut self, index: usize, location: &str) {
        let canonical = normalize(location).unwrap_or_else(|| location.to_string());
        let decoded = percent_decoded(&canonical);
        for path in std::iter::once(canonical).chain(decoded) {
            self.references
                .entry(path)
                .and_modify(|o| {
                    if *o != Owners::One(index) {
                        *o = Owners::Many
                    }
                })
                .or_insert(Owners::One(index));
        }
    }

    /// Whether any table references `location` (any spelling).
    pub fn is_referenced(&self, location: &str) -> bool {
        normalize(location).is_some_and(|n| self.references.contains_key(&n))
    }

    pub fn tables(&self) -> &[TableFacts] {
        &self.tables
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.tables.iter().position(|t| t.name == name)
    }

    /// Table `index`'s right to delete this pass, given its own current references.
    pub fn scope<'a>(&'a self, index: usize, own: &'a Reachable) -> Result<Scope<'a>, TableSkip> {
        let facts = &self.tables[index];
        let location = facts.location.clone().ok_or(TableSkip::UnreadableMetadata)?;
        if let Some(reference) = own.uncanonical().first().or(facts.uncanonical.as_ref()) {
            return Err(TableSkip::UncanonicalReference { reference: reference.clone() });
        }
        if !facts.references_known {
            return Err(TableSkip::UnreadableMetadata);
        }
        if self.roots.iter().any(|r| same_location(r, &location)) {
            return Err(TableSkip::LocationIsRoot { location });
        }
        if !self.roots.iter().any(|r| is_within(r, &location)) {
            return Err(TableSkip::LocationOutsideWarehouse { location });
        }
        for (i, other) in self.tables.iter().enumerate() {
            if i == index {
                continue;
            }
            match &other.location {
                None => return Err(TableSkip::UnknownNeighbour { neighbour: other.name.clone() }),
                Some(l) if same_location(l, &location) => {
                    return Err(TableSkip::SharedLocation { location, with: other.name.clone() });
                }
                Some(_) if !other.references_known && self.unreadable == UnreadableNeighbours::Block => {
                    return Err(TableSkip::UnknownNeighbour { neighbour: other.name.clone() });
                }
                Some(_) => {}
            }
        }
        Ok(Scope { layout: self, index, location, own, census_self_is_live: true, metadata_only: false })
    }
}

/// One listed (or about-to-be-deleted) object's facts.
#[derive(Debug, Clone)]
pub struct Object<'a> {
    pub location: &'a str,
    pub age: Duration,
    /// A symlink itself, or reached through a symlinked directory below its root.
    pub through_link: bool,
}

/// A table's established right to delete inside its own location.
#[derive(Debug, Clone)]
pub struct Scope<'a> {
    layout: &'a Layout,
    index: usize,
    location: String,
    own: &'a Reachable,
    /// Whether the layout's record of this table's own references still counts as live. True for orphan
    /// cleanup (those references may be newer than `own`); false for expiry cleanup, whose candidates
    /// are exactly the table's references the layout recorded before the expiry.
    census_self_is_live: bool,
    /// Only `*.metadata.json` files may pass (a layout that knows catalog pointers, not manifests).
    metadata_only: bool,
}

impl Scope<'_> {
    /// For superseded metadata files after a commit: a layout built from catalog pointers alone (which
    /// is all that can reference a `metadata.json`) may only ever let such files pass.
    pub fn metadata_files_only(mut self) -> Self {
        self.metadata_only = true;
        self
    }

    /// The table's canonical location.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// For expiry cleanup: the layout predates the change, so only other tables' references and
    /// `own` (the table's references after the change) count.
    pub fn after_change(mut self) -> Self {
        self.census_self_is_live = false;
        self
    }

    /// Whether `location` could be deletable, on the facts that need no IO (everything but age and
    /// links). `Err` names the first rule that keeps it.
    pub fn precheck(&self, location: &str) -> Result<String, Keep> {
        let canonical = normalize(location).ok_or(Keep::NotCanonical)?;
        if self.metadata_only && !canonical.ends_with(".metadata.json") {
            return Err(Keep::NotSupersededMetadata);
        }
        if !self.layout.roots.iter().any(|r| is_within(r, &canonical)) {
            return Err(Keep::OutsideWarehouse);
        }
        if !is_within(&self.location, &canonical) {
            return Err(Keep::OutsideTableLocation);
        }
        // Another table nested inside this one owns its subtree (a table enclosing this one does not
        // make every file of this one foreign).
        let inside_other = self.layout.tables.iter().enumerate().any(|(i, t)| {
            i != self.index
                && t.location.as_deref().is_none_or(|l| {
                    is_within(&self.location, l) && (same_location(l, &canonical) || is_within(l, &canonical))
                })
        });
        if inside_other {
            return Err(Keep::InsideOtherTable);
        }
        if self.own.contains(&canonical) {
            return Err(Keep::StillReferenced);
        }
        match self.layout.references.get(&canonical) {
            Some(Owners::One(i)) if *i == self.index && self.census_self_is_live => {
                return Err(Keep::StillReferenced);
            }
            Some(Owners::One(i)) if *i == self.index => {}
            Some(_) => return Err(Keep::ReferencedByOtherTable),
            None => {}
        }
        Ok(canonical)
    }

    /// The whole rule for one object.
    pub fn classify(&self, object: &Object<'_>, grace: Duration) -> Result<String, Keep> {
        let canonical = self.precheck(object.location)?;
        if object.through_link {
            return Err(Keep::Symlink);
        }
        if object.age < grace {
            return Err(Keep::YoungerThanGracePeriod);
        }
        Ok(canonical)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn old(location: &str) -> Object<'_> {
        Object { location, age: 2 * HOUR, through_link: false }
    }

    fn layout(tables: &[(&str, Option<&str>)]) -> Layout {
        let mut l = Layout::new(["file:///w".to_string()]);
        for (name, loc) in tables {
            let i = l.add_table(name, *loc);
            if loc.is_some() {
                l.add_references(i, &Reachable::default());
            }
        }
        l
    }

    /// Reports about an `acme` table name `acme` tables only: not `acme2`'s, not another catalog's.
    #[test]
    fn reports_name_tables_of_the_same_tenant_only() {
        let shared =
            |with: &str| TableSkip::SharedLocation { location: "file:///w/t".into(), with: with.into() };
        let unknown = |n: &str| TableSkip::UnknownNeighbour { neighbour: n.into() };
        for name in ["acme.prod.backup", "acme.eu.x"] {
            assert!(shared(name).for_report("acme").contains(name));
            assert!(unknown(name).for_report("acme").contains(name));
        }
        for name in ["globex.prod.backup", "acme2.prod.x", "spark:acme.prod.x", "acme"] {
            let (s, u) = (shared(name).for_report("acme"), unknown(name).for_report("acme"));
            assert!(!s.contains(name) && s.starts_with("shared_location: file:///w/t"), "{s}");
            assert!(!u.contains(name) && u.starts_with("unknown_neighbour"), "{u}");
        }
    }

    #[test]
    fn an_old_unreferenced_file_inside_the_table_is_deletable() {
        let l = layout(&[("a", Some("file:///w/a")), ("b", Some("file:///w/b"))]);
        let own = Reachable::from_locations(["file:///w/a/data/live.parquet"]);
        let s = l.scope(0, &own).unwrap();
        assert_eq!(
            s.classify(&old("file:///w/a/data/x.parquet"), HOUR),
            Ok("file:///w/a/data/x.parquet".into())
        );
        assert_eq!(s.classify(&old("file:///w/a/data/./live.parquet"), HOUR), Err(Keep::StillReferenced));
        assert_eq!(s.classify(&old("file:///w/b/data/x.parquet"), HOUR), Err(Keep::OutsideTableLocation));
        assert_eq!(s.classify(&old("file:///etc/passwd"), HOUR), Err(Keep::OutsideWarehouse));
        let young = Object { location: "file:///w/a/data/y", age: HOUR / 2, through_link: false };
        assert_eq!(s.classify(&young, HOUR), Err(Keep::YoungerThanGracePeriod));
        let link = Object { location: "file:///w/a/data/l", age: 2 * HOUR, through_link: true };
        assert_eq!(s.classify(&link, HOUR), Err(Keep::Symlink));
    }

    #[test]
    fn tables_that_cannot_be_placed_safely_delete_nothing() {
        let none = Reachable::default();
        let outside = layout(&[("a", Some("file:///srv"))]);
        assert_eq!(outside.scope(0, &none).unwrap_err().reason(), "location_outside_warehouse");
        let root = layout(&[("a", Some("file:///w/"))]);
        assert_eq!(root.scope(0, &none).unwrap_err().reason(), "location_is_root");
        let shared = layout(&[("a", Some("file:///w/t")), ("backup", Some("file:/w//t/"))]);
        assert_eq!(shared.scope(0, &none).unwrap_err().reason(), "shared_location");
        assert_eq!(shared.scope(1, &none).unwrap_err().reason(), "shared_location");
        let unknown = layout(&[("a", Some("file:///w/a")), ("lost", None)]);
        assert_eq!(
            unknown.scope(0, &none).unwrap_err(),
            TableSkip::UnknownNeighbour { neighbour: "lost".into() }
        );
        assert_eq!(unknown.scope(1, &none).unwrap_err().reason(), "unreadable_metadata");
        let odd = Reachable::from_locations(["data/relative.parquet"]);
        let fine = layout(&[("a", Some("file:///w/a"))]);
        assert_eq!(fine.scope(0, &odd).unwrap_err().reason(), "uncanonical_reference");
    }

    #[test]
    fn a_neighbour_whose_references_are_unknown_blocks_unless_the_operator_chose_otherwise() {
        let mut l = layout(&[("a", Some("file:///w/a"))]);
        l.add_table("corrupt", Some("file:///w/c"));
        let none = Reachable::default();
        assert_eq!(
            l.scope(0, &none).unwrap_err(),
            TableSkip::UnknownNeighbour { neighbour: "corrupt".into() }
        );
        let l = l.with_unreadable(UnreadableNeighbours::ProtectLocation);
        let s = l.scope(0, &none).unwrap();
        assert!(s.classify(&old("file:///w/a/data/x"), HOUR).is_ok());
        // Its location stays protected even then.
        let nested = {
            let mut l =
                layout(&[("a", Some("file:///w/a"))]).with_unreadable(UnreadableNeighbours::ProtectLocation);
            l.add_table("corrupt", Some("file:///w/a/inner"));
            l
        };
        let s = nested.scope(0, &none).unwrap();
        assert_eq!(s.classify(&old("file:///w/a/inner/data/f"), HOUR), Err(Keep::InsideOtherTable));
    }

    #[test]
    fn nested_tables_and_foreign_references_are_kept() {
        let mut l = layout(&[("outer", Some("file:///w/o")), ("inner", Some("file:///w/o/nested/i"))]);
        l.add_reference(1, "file:///w/o/data/borrowed.parquet");
        l.add_reference(0, "file:///w/o/data/own%20file.parquet");
        let none = Reachable::default();
        let s = l.scope(0, &none).unwrap();
        assert_eq!(s.classify(&old("file:///w/o/nested/i/data/f"), HOUR), Err(Keep::InsideOtherTable));
        // The inner table may clean itself: the enclosing table does not own its files.
        let inner = l.scope(1, &none).unwrap();
        assert!(inner.classify(&old("file:///w/o/nested/i/data/orphan"), HOUR).is_ok());
        assert_eq!(
            s.classify(&old("file:///w/o/data/borrowed.parquet"), HOUR),
            Err(Keep::ReferencedByOtherTable)
        );
        // The census' record of the table's own references counts for orphans, not after expiry.
        assert_eq!(s.classify(&old("file:///w/o/data/own file.parquet"), HOUR), Err(Keep::StillReferenced));
        let after = l.scope(0, &none).unwrap().after_change();
        assert!(after.classify(&old("file:///w/o/data/own%20file.parquet"), HOUR).is_ok());
        assert_eq!(
            after.classify(&old("file:///w/o/data/borrowed.parquet"), HOUR),
            Err(Keep::ReferencedByOtherTable)
        );
    }
}

/// Attack tests (issue 11 review): each names a spelling or neighbour the rules must not let through.
#[cfg(test)]
mod attack {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn old(location: &str) -> Object<'_> {
        Object { location, age: 2 * HOUR, through_link: false }
    }

    fn layout_with_a() -> (Layout, usize) {
        let mut l = Layout::new(["file:///w".to_string()]);
        let a = l.add_table("a", Some("file:///w/a"));
        l.add_references(a, &Reachable::default());
        (l, a)
    }

    /// PyIceberg (urlparse lowercases the scheme) and Java URIs read `FILE:///w/a/data/f` as
    /// `/w/a/data/f`; normalize turns it into `file:///FILE:/w/a/data/f`, so the live file is deletable.
    #[test]
    fn attack_uppercase_file_scheme_reference_keeps_the_live_file() {
        let (l, a) = layout_with_a();
        let own = Reachable::from_locations(["FILE:///w/a/data/live.parquet"]);
        match l.scope(a, &own) {
            Err(_) => {} // failing closed would also be acceptable
            Ok(s) => assert!(
                s.classify(&old("file:///w/a/data/live.parquet"), HOUR).is_err(),
                "a live file referenced as FILE:///… is deletable"
            ),
        }
    }

    /// A neighbour spelled with an upper-case scheme (location and references) is not seen as nested:
    /// the enclosing table deletes all of its files.
    #[test]
    fn attack_uppercase_scheme_neighbour_nested_inside_is_protected() {
        let (mut l, a) = layout_with_a();
        let n = l.add_table("n", Some("File:///w/a/nested/n"));
        l.add_references(n, &Reachable::from_locations(["File:///w/a/nested/n/data/f.parquet"]));
        let none = Reachable::default();
        if let Ok(s) = l.scope(a, &none) {
            assert!(
                s.classify(&old("file:///w/a/nested/n/data/f.parquet"), HOUR).is_err(),
                "the nested neighbour's live file is deletable"
            );
        }
    }

    /// RFC 8089 / Hadoop / PyIceberg read `file://LOCALHOST/x` as `/x`; normalize only strips the
    /// lower-case spelling and maps this to `/LOCALHOST/x`.
    #[test]
    fn attack_uppercase_localhost_reference_keeps_the_live_file() {
        let (l, a) = layout_with_a();
        let own = Reachable::from_locations(["file://LOCALHOST/w/a/data/live.parquet"]);
        if let Ok(s) = l.scope(a, &own) {
            assert!(
                s.classify(&old("file:///w/a/data/live.parquet"), HOUR).is_err(),
                "a live file referenced as file://LOCALHOST/… is deletable"
            );
        }
    }

    /// A neighbour's reference that does not normalize is stored verbatim and protects nothing, yet
    /// only the neighbour itself is skipped. `file:///w/n/../../../w/a/data/f` is `/w/a/data/f` to the
    /// OS (`/..` is `/`), to Java's File and to pyarrow.
    #[test]
    fn attack_uncanonical_reference_of_a_neighbour_fails_closed() {
        let (mut l, a) = layout_with_a();
        let n = l.add_table("n", Some("file:///w/n"));
        l.add_references(n, &Reachable::from_locations(["file:///w/n/../../../w/a/data/borrowed.parquet"]));
        let none = Reachable::default();
        if let Ok(s) = l.scope(a, &none) {
            assert!(
                s.classify(&old("file:///w/a/data/borrowed.parquet"), HOUR).is_err(),
                "a file the neighbour references (uncanonically) is deletable by the table it lies in"
            );
        }
    }

    /// S3 bucket names are DNS names (case-insensitive with virtual-hosted requests); the bucket part
    /// of a reference is compared case-sensitively.
    #[test]
    fn attack_uppercase_bucket_reference_keeps_the_live_file() {
        let mut l = Layout::new(["s3://bucket/w".to_string()]);
        let a = l.add_table("a", Some("s3://bucket/w/a"));
        l.add_references(a, &Reachable::default());
        let own = Reachable::from_locations(["s3://BUCKET/w/a/data/live.parquet"]);
        if let Ok(s) = l.scope(a, &own) {
            assert!(
                s.classify(&old("s3://bucket/w/a/data/live.parquet"), HOUR).is_err(),
                "a live file referenced as s3://BUCKET/… is deletable"
            );
        }
    }
    /// `normalize` trims whitespace, so a table whose location is `…/t ` (a careless `LOCATION` with a
    /// trailing space; its files live in the directory `t `) gets the right to delete in its sibling
    /// directory `…/t`, which is not its location.
    #[test]
    fn attack_a_location_with_trailing_space_is_not_its_trimmed_sibling() {
        let mut l = Layout::new(["file:///w".to_string()]);
        let t = l.add_table("t", Some("file:///w/t "));
        l.add_references(t, &Reachable::default());
        let none = Reachable::default();
        if let Ok(s) = l.scope(t, &none) {
            assert!(
                s.classify(&old("file:///w/t/data/not-mine.parquet"), HOUR).is_err(),
                "a table located at `…/t ` may delete in `…/t` (scope location {})",
                s.location()
            );
        }
    }

    /// Hadoop's local FileSystem (`path.toUri().getPath()`) reads `file://host/w/a/f` as `/w/a/f`;
    /// normalize reads it as `/host/w/a/f` (iceberg-rust's reading). Only one reading is protected.
    #[test]
    fn attack_file_uri_with_a_host_protects_both_readings() {
        let (l, a) = layout_with_a();
        let own = Reachable::from_locations(["file://datanode-1/w/a/data/live.parquet"]);
        if let Ok(s) = l.scope(a, &own) {
            assert!(
                s.classify(&old("file:///w/a/data/live.parquet"), HOUR).is_err(),
                "the Hadoop reading of file://host/… is deletable"
            );
        }
    }
}
