//! Property test of the deletion rules on real directories: random hostile layouts (nested, shared,
//! root and outside locations, sibling prefixes, tables whose location or references are unknown,
//! symlinks out of the warehouse and into other tables, odd file names, references spelled with `.`,
//! `..`, `//`, `file:/` and percent-escapes), cleaned by every table in turn through the real listing,
//! classification and deletion gate. The oracle is the model the layout was built from, not the rules:
//!
//! nothing is deleted that lies outside the table that deleted it or inside another table's location,
//! that any table references (however spelled), that is younger than the grace period, that is a
//! symlink or reached through one, or anything at all while a neighbour's location or references are
//! unknown. A link's target is only ever deleted under its real path, as a plain file of the table
//! that holds it (and then only if every rule above allows it); everything a link points to outside
//! the warehouse survives.
//!
//! `SIGNALDB_PROPTEST_CASES` sets the number of cases (default 500).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use chrono::Utc;
use futures::TryStreamExt;
use proptest::prelude::*;
use signaldb_compactor::catalog::Access;
use signaldb_compactor::config::Mode;
use signaldb_compactor::storage::deletable::{Layout, Object};
use signaldb_compactor::storage::gate::DeletionGate;
use signaldb_compactor::storage::{LinkCache, Warehouse};
use signaldb_compactor::table::reachability::Reachable;

const GRACE: Duration = Duration::from_secs(3600);

/// File names a careless or hostile writer produces.
const NAMES: &[&str] = &[
    "f.parquet",
    "a b.parquet",
    "a%20b.parquet",
    "é-ü 東.parquet",
    "a%2Fb.parquet",
    "x..y",
    "..hidden",
    "%",
];

#[derive(Debug, Clone)]
enum Placement {
    Fresh,
    NestedIn(usize),
    SharedWith(usize),
    Root,
    Outside,
    SiblingOf(usize),
}

#[derive(Debug, Clone)]
enum Knowledge {
    Known,
    /// Location implied by its pointer, references unknown (a corrupt manifest).
    ReferencesUnknown,
    /// Neither location nor references known.
    Unknown,
}

#[derive(Debug, Clone)]
struct FileModel {
    name: usize,
    subdir: usize,
    /// (table index, spelling) of a reference, if any.
    referenced_by: Option<(usize, usize)>,
    young: bool,
}

#[derive(Debug, Clone)]
struct TableModel {
    placement: Placement,
    knowledge: Knowledge,
    files: Vec<FileModel>,
    /// (kind, other table) links planted in its data directory.
    links: Vec<(usize, usize)>,
}

fn file_model() -> impl Strategy<Value = FileModel> {
    (
        0..NAMES.len(),
        0..3usize,
        proptest::option::weighted(0.4, (0..6usize, 0..6usize)),
        proptest::bool::weighted(0.2),
    )
        .prop_map(|(name, subdir, referenced_by, young)| FileModel {
            name,
            subdir,
            referenced_by,
            young,
        })
}

fn table_model() -> impl Strategy<Value = TableModel> {
    let placement = prop_oneof![
        6 => Just(Placement::Fresh),
        2 => (0..6usize).prop_map(Placement::NestedIn),
        1 => (0..6usize).prop_map(Placement::SharedWith),
        1 => Just(Placement::Root),
        1 => Just(Placement::Outside),
        1 => (0..6usize).prop_map(Placement::SiblingOf),
    ];
    let knowledge = prop_oneof![
        12 => Just(Knowledge::Known),
        1 => Just(Knowledge::ReferencesUnknown),
        1 => Just(Knowledge::Unknown),
    ];
    (
        placement,
        knowledge,
        proptest::collection::vec(file_model(), 1..7),
        proptest::collection::vec((0..3usize, 0..6usize), 0..3),
    )
        .prop_map(|(placement, knowledge, files, links)| TableModel {
            placement,
            knowledge,
            files,
            links,
        })
}

/// A location spelled one of six ways that all name `path`.
fn spell(path: &Path, how: usize) -> String {
    let s = path.display().to_string();
    let (dir, name) = s.rsplit_once('/').unwrap();
    let last_dir = dir.rsplit_once('/').unwrap().1;
    match how {
        0 => format!("file://{s}"),
        1 => format!("file://{dir}/./{name}"),
        2 => format!("file://{dir}/../{last_dir}/{name}"),
        3 => format!("file://{dir}//{name}"),
        4 => format!("file:{s}"),
        _ => format!("file://{dir}/{}", name.replace(' ', "%20")),
    }
}

/// The directory each table lives in (resolving references to tables that come later to `Fresh`).
fn table_dirs(root: &Path, outside: &Path, tables: &[TableModel]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        let earlier = |j: &usize| (*j < i).then(|| dirs[*j].clone());
        let fresh = root.join(format!("t{i}"));
        let dir = match &t.placement {
            Placement::Fresh => fresh,
            Placement::NestedIn(j) => earlier(j).map(|d| d.join(format!("nested/t{i}"))).unwrap_or(fresh),
            Placement::SharedWith(j) => earlier(j).unwrap_or(fresh),
            Placement::Root => root.to_path_buf(),
            Placement::Outside => outside.join(format!("t{i}")),
            Placement::SiblingOf(j) => {
                earlier(j).map(|d| PathBuf::from(format!("{}_x{i}", d.display()))).unwrap_or(fresh)
            }
        };
        dirs.push(dir);
    }
    dirs
}

fn set_age(path: &Path, young: bool) {
    let when = if young { SystemTime::now() } else { SystemTime::now() - Duration::from_secs(3 * 86_400) };
    std::fs::File::options().write(true).open(path).unwrap().set_modified(when).unwrap();
}

/// Every regular file and link under `dir` (links not followed).
fn all_entries(dir: &Path, out: &mut BTreeSet<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries {
        let path = entry.unwrap().path();
        if std::fs::symlink_metadata(&path).unwrap().is_dir() {
            all_entries(&path, out);
        } else {
            out.insert(path);
        }
    }
}

struct Figures {
    cases: AtomicU64,
    tables: AtomicU64,
    scopes: AtomicU64,
    files: AtomicU64,
    deletions: AtomicU64,
}

static FIGURES: Figures = Figures {
    cases: AtomicU64::new(0),
    tables: AtomicU64::new(0),
    scopes: AtomicU64::new(0),
    files: AtomicU64::new(0),
    deletions: AtomicU64::new(0),
};

fn run_case(tables: Vec<TableModel>) -> Result<(), TestCaseError> {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let (root, outside) = (base.join("warehouse"), base.join("outside"));
    std::fs::create_dir_all(&root).unwrap();
    let outside_file = outside.join("precious.parquet");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(&outside_file, b"outside").unwrap();
    set_age(&outside_file, false);
    let dirs = table_dirs(&root, &outside, &tables);
    let n = tables.len();

    // Files, references (in every spelling), and links.
    let mut refs: Vec<Vec<String>> = vec![Vec::new(); n];
    let mut referenced: BTreeSet<PathBuf> = BTreeSet::new();
    let mut young: BTreeSet<PathBuf> = BTreeSet::new();
    for (i, t) in tables.iter().enumerate() {
        for f in &t.files {
            let sub = ["data", "metadata", "data/deep"][f.subdir];
            let path = dirs[i].join(sub).join(NAMES[f.name]);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, b"bytes").unwrap();
            set_age(&path, f.young);
            if f.young {
                young.insert(path.clone());
            }
            if let Some((r, how)) = f.referenced_by {
                refs[r % n].push(spell(&path, how));
                referenced.insert(path);
            }
        }
    }
    // Ages may be overwritten by a later file of the same path: read them back.
    young.retain(|p| std::fs::metadata(p).unwrap().modified().unwrap() > SystemTime::now() - GRACE);
    let mut links: Vec<PathBuf> = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        for (k, (kind, other)) in t.links.iter().enumerate() {
            let target = match kind {
                0 => outside.clone(),
                1 => dirs[other % n].join("data"),
                _ => outside_file.clone(),
            };
            let link = dirs[i].join("data").join(format!("link{k}"));
            std::fs::create_dir_all(link.parent().unwrap()).unwrap();
            if std::os::unix::fs::symlink(&target, &link).is_ok() {
                links.push(link);
            }
        }
    }
    let mut before = BTreeSet::new();
    all_entries(&base, &mut before);
    let mut outside_before = BTreeSet::new();
    all_entries(&outside, &mut outside_before);

    // The census, as orphan cleanup builds it.
    let mut layout = Layout::new([format!("file://{}", root.display())]);
    let mut own: Vec<Reachable> = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        let location = format!("file://{}", dirs[i].display());
        let index = layout.add_table(
            &format!("t{i}"),
            (!matches!(t.knowledge, Knowledge::Unknown)).then_some(location.as_str()),
        );
        let r = Reachable::from_locations(refs[i].iter().map(String::as_str));
        if matches!(t.knowledge, Knowledge::Known) {
            layout.add_references(index, &r);
        }
        own.push(r);
    }
    let all_known = tables.iter().all(|t| matches!(t.knowledge, Knowledge::Known));
    let (_, storage) = signaldb_compactor::generate::dir_config(&base);
    let warehouse = Warehouse::open(&storage, Access::ReadOnly).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut deleted_by: BTreeMap<PathBuf, usize> = BTreeMap::new();
    rt.block_on(async {
        for (i, own) in own.iter().enumerate() {
            let Ok(scope) = layout.scope(i, own) else { continue };
            FIGURES.scopes.fetch_add(1, Ordering::Relaxed);
            let listed: Vec<_> = warehouse.list(scope.location()).try_collect().await.unwrap();
            let mut cache = LinkCache::default();
            let mut candidates = Vec::new();
            for meta in listed {
                let location = meta.location;
                let Ok(through_link) = warehouse.through_link(&location, &mut cache) else { continue };
                let through_link = through_link || meta.link;
                let age = (Utc::now() - meta.last_modified).to_std().unwrap_or_default();
                if let Ok(c) = scope.classify(&Object { location: &location, age, through_link }, GRACE) {
                    candidates.push(c);
                }
            }
            let gate = DeletionGate {
                warehouse: &warehouse,
                scope: &scope,
                grace: GRACE,
                now: Utc::now(),
                mode: Mode::Execute,
            };
            for (location, _) in gate.delete(&candidates).await.deleted {
                deleted_by.insert(PathBuf::from(location.trim_start_matches("file://")), i);
            }
        }
    });

    let mut after = BTreeSet::new();
    all_entries(&base, &mut after);
    let mut outside_after = BTreeSet::new();
    all_entries(&outside, &mut outside_after);
    prop_assert_eq!(outside_before, outside_after, "something outside the warehouse went");
    let gone: Vec<&PathBuf> = before.difference(&after).collect();
    FIGURES.cases.fetch_add(1, Ordering::Relaxed);
    FIGURES.tables.fetch_add(n as u64, Ordering::Relaxed);
    FIGURES.files.fetch_add(before.len() as u64, Ordering::Relaxed);
    FIGURES.deletions.fetch_add(gone.len() as u64, Ordering::Relaxed);
    for path in gone {
        let Some(&i) = deleted_by.get(path) else {
            return Err(TestCaseError::fail(format!(
                "{} vanished without the gate deleting it",
                path.display()
            )));
        };
        let why = |what: &str| {
            TestCaseError::fail(format!("t{i} deleted {} ({what}) in {tables:#?}", path.display()))
        };
        prop_assert!(all_known, "{}", why("while a neighbour was unknown"));
        prop_assert!(
            path.starts_with(&root) && dirs[i] != root,
            "{}",
            why("outside the warehouse or at its root")
        );
        prop_assert!(path.starts_with(&dirs[i]), "{}", why("outside its own table"));
        for (j, d) in dirs.iter().enumerate() {
            prop_assert!(j == i || *d != dirs[i], "{}", why("from a shared location"));
            if j != i && d.starts_with(&dirs[i]) {
                prop_assert!(!path.starts_with(d), "{}", why("inside a nested table"));
            }
        }
        prop_assert!(!referenced.contains(path), "{}", why("a referenced file"));
        prop_assert!(!young.contains(path), "{}", why("younger than the grace period"));
        prop_assert!(!links.contains(path), "{}", why("a symlink"));
        prop_assert!(
            path.ancestors().all(|a| !std::fs::symlink_metadata(a).is_ok_and(|m| m.file_type().is_symlink())),
            "{}",
            why("through a symlink")
        );
    }
    Ok(())
}

#[test]
fn hostile_layouts_never_lose_a_protected_file() {
    let cases = std::env::var("SIGNALDB_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(500);
    let config = ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |(tables in proptest::collection::vec(table_model(), 1..6))| {
        run_case(tables)?;
    });
    let f = &FIGURES;
    let (cases, deletions) = (f.cases.load(Ordering::Relaxed), f.deletions.load(Ordering::Relaxed));
    eprintln!(
        "deletion property test: {cases} cases, {} tables, {} tables allowed to delete, {} files and links, \
         {deletions} deletions checked, 0 violations",
        f.tables.load(Ordering::Relaxed),
        f.scopes.load(Ordering::Relaxed),
        f.files.load(Ordering::Relaxed),
    );
    assert!(
        deletions > cases / 4,
        "the layouts must let the rules delete something ({deletions} in {cases} cases)"
    );
}
