//! Partition source columns whose names are not Avro names (PyIceberg writes them into every
//! manifest's Avro schema, sanitized or, for non-ASCII letters, not at all): compaction, retention and
//! an orphan dry-run must fare exactly as under apache-avro's own regex checks. The validators are
//! process-wide and registered once, so each side runs in a process of its own (this test binary,
//! re-run on the ignored `side` test).
//!
//! Under both, such a table must be refused before any commit (`table/guard.rs`): iceberg-rust
//! 0.10.1 reads PyIceberg's sanitized partition names (`http_x2Dstatus`) as null, and before the
//! guard a compaction rewrote every file of the partition under a null value (a filter on the column
//! then found 0 of its 21 rows) and wrote manifests no Avro reader accepts.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use signaldb_compactor::compaction::CompactionJob;
use signaldb_compactor::config::{Mode, RetentionValue};
use signaldb_compactor::job::{Job, PassReport, PassRequest};
use signaldb_compactor::orphans::OrphanJob;
use signaldb_compactor::retention::RetentionJob;
use tokio_util::sync::CancellationToken;

use crate::support::{context, pyiceberg};

/// (tenant, partition source column): dash, leading digit, non-ASCII letter, dot, space, and a control.
const COLUMNS: [(&str, &str); 6] = [
    ("dash", "http-status"),
    ("digit", "1st"),
    ("naive", "naïve"),
    ("dot", "a.b"),
    ("space", "has space"),
    ("plain", "plain"),
];

#[test]
fn unusual_partition_names_fare_as_under_the_librarys_own_checks() {
    // One clock for both sides: the recent rows' hour, and whether it is closed, must not depend on
    // when each side runs.
    let now = Utc::now().to_rfc3339();
    let run = |side: &str| -> serde_json::Value {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("outcome.json");
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "avro_names::side", "--ignored", "--nocapture", "--test-threads=1"])
            .env("AVRO_NAMES_SIDE", side)
            .env("AVRO_NAMES_OUT", &out)
            .env("AVRO_NAMES_NOW", &now)
            .status()
            .unwrap();
        assert!(status.success(), "{side} side failed");
        serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap()
    };
    let library = run("library");
    let ours = run("ours");
    assert_eq!(ours, library, "ours:\n{ours:#}\nlibrary:\n{library:#}");
    eprintln!("{ours:#}");
    // The control table is compacted; every other is refused by compaction and retention alike,
    // and no table loses a row or a partition value (a filter on the column finds what it found).
    let plain = &ours["plain.ds.logs"];
    assert_eq!(plain["compaction"]["status"], "succeeded", "{plain:#}");
    for (tenant, _) in COLUMNS {
        let t = &ours[format!("{tenant}.ds.logs")];
        assert_eq!(t["rows_kept_by_compaction"], true, "{tenant}: {t:#}");
        assert_eq!(t["filtered_rows_after_compaction"], t["filtered_rows_before"], "{tenant}: {t:#}");
        if tenant != "plain" {
            for job in ["compaction", "retention"] {
                let detail = t[job]["detail"].as_str().unwrap_or_default();
                assert!(detail.contains("partition_names_not_avro"), "{tenant} {job}: {t:#}");
            }
            assert_eq!(t["files_after_compaction"], t["files_before"], "{tenant}: untouched {t:#}");
            assert_eq!(t["rows_after_retention"], t["rows_before"], "{tenant}: untouched {t:#}");
        }
    }
}

/// Runs one side (`AVRO_NAMES_SIDE`: `library` or `ours`) and writes its outcome to `AVRO_NAMES_OUT`.
#[tokio::test]
#[ignore = "one side of the test above, run in a process of its own"]
async fn side() {
    let side = std::env::var("AVRO_NAMES_SIDE").expect("run by unusual_partition_names_...");
    match side.as_str() {
        "library" => {
            // Parsing a schema with every kind of name registers the library's own four checks.
            apache_avro::Schema::parse_str(
                r#"{"type":"record","name":"r","namespace":"n.m","fields":[
                    {"name":"f","type":{"type":"enum","name":"e","symbols":["A"]}}]}"#,
            )
            .unwrap();
            assert!(apache_avro::validator::set_schema_name_validator(Box::new(Probe)).is_err());
            assert!(apache_avro::validator::set_record_field_name_validator(Box::new(Probe)).is_err());
            assert!(apache_avro::validator::set_schema_namespace_validator(Box::new(Probe)).is_err());
            assert!(apache_avro::validator::set_enum_symbol_name_validator(Box::new(Probe)).is_err());
        }
        "ours" => signaldb_compactor::avro_names::install(),
        other => panic!("side {other}"),
    }
    let now: chrono::DateTime<Utc> =
        std::env::var("AVRO_NAMES_NOW").expect("set by the test above").parse().unwrap();
    let recent = (now - TimeDelta::minutes(30)).naive_utc().format("%Y-%m-%dT%H:%M:%S").to_string();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut outcome = serde_json::Map::new();
    let mut before = std::collections::HashMap::new();
    let mut before_x = std::collections::HashMap::new();
    for (tenant, column) in COLUMNS {
        let t = format!("{tenant}.ds.logs");
        let args = [
            "kind",
            "--kind",
            "avro-names",
            "--column",
            column,
            "--recent",
            &recent,
            "--table",
            &t,
            "--rows",
            "20",
            "--appends",
            "3",
        ];
        pyiceberg(d, &args);
        before.insert(t.clone(), pyiceberg(d, &["scan", "--table", &t]));
        before_x.insert(t.clone(), filtered(d, &t, column));
    }

    let ctx = context(d, now, |c| c.compaction.min_input_files = 2).await;
    let compaction = CompactionJob::new(&ctx)
        .run_once(&PassRequest::all(Mode::Execute), &CancellationToken::new())
        .await
        .unwrap();
    let mut after_compaction = std::collections::HashMap::new();
    let mut after_compaction_x = std::collections::HashMap::new();
    for (tenant, column) in COLUMNS {
        let t = format!("{tenant}.ds.logs");
        after_compaction.insert(t.clone(), pyiceberg(d, &["scan", "--table", &t]));
        after_compaction_x.insert(t.clone(), filtered(d, &t, column));
    }

    // Ten days on: the January half is past a 30-day retention, and every snapshot but the head expires.
    let later = now + TimeDelta::days(10);
    let ctx = context(d, later, |c| {
        c.retention.enabled = true;
        c.retention.mode = Mode::Execute;
        c.retention.policy.global.logs = Some(RetentionValue::For(Duration::from_secs(30 * 86_400)));
        c.retention.snapshots_to_keep = 1;
        c.orphans.enabled = true;
        c.orphans.mode = Mode::DryRun;
    })
    .await;
    let retention = RetentionJob::new(&ctx)
        .run_once(&PassRequest::all(Mode::Execute), &CancellationToken::new())
        .await
        .unwrap();
    let orphans = OrphanJob::new(&ctx)
        .run_once(&PassRequest::all(Mode::DryRun), &CancellationToken::new())
        .await
        .unwrap();

    for (tenant, _) in COLUMNS {
        let t = format!("{tenant}.ds.logs");
        let (b, c) = (&before[&t], &after_compaction[&t]);
        let after_retention = pyiceberg(d, &["scan", "--table", &t]);
        outcome.insert(
            t.clone(),
            serde_json::json!({
                "compaction": table_outcome(&compaction, &t, d),
                "retention": table_outcome(&retention, &t, d),
                "orphans": table_outcome(&orphans, &t, d),
                "rows_before": b["rows"],
                "files_before": b["files"],
                "rows_kept_by_compaction": c["rows"] == b["rows"] && c["checksum"] == b["checksum"],
                "files_after_compaction": c["files"],
                "filtered_rows_before": before_x[&t],
                "filtered_rows_after_compaction": after_compaction_x[&t],
                "rows_after_retention": after_retention["rows"],
                "files_after_retention": after_retention["files"],
            }),
        );
    }
    let out = std::env::var("AVRO_NAMES_OUT").unwrap();
    std::fs::write(out, serde_json::to_vec_pretty(&outcome).unwrap()).unwrap();
}

/// Rows with `column = 'x'` through PyIceberg's filter (partition pruning included); PyIceberg's
/// filter parser takes no dotted column name, so `a.b` is not filtered.
fn filtered(dir: &std::path::Path, table: &str, column: &str) -> serde_json::Value {
    if column.contains('.') {
        return serde_json::Value::Null;
    }
    let filter = format!("\"{column}\" = 'x'");
    pyiceberg(dir, &["scan", "--table", table, "--filter", &filter])["rows"].clone()
}

/// A table's status in a pass, with what varies between two runs (the directory, ids) masked.
fn table_outcome(report: &PassReport, table: &str, dir: &std::path::Path) -> serde_json::Value {
    let Some(r) = report.tables.iter().find(|r| r.table == table) else {
        return serde_json::json!("absent");
    };
    let status = serde_json::to_value(&r.status).unwrap();
    let text = mask(&status.to_string().replace(&dir.display().to_string(), "<DIR>"));
    serde_json::json!({
        "status": status.get("status").cloned().unwrap_or(status.clone()),
        "detail": text,
        "names_table": text.contains(table) || r.table == table,
        "files_before": r.files_before,
        "files_after": r.files_after,
        "rows": r.rows,
    })
}

/// Runs of 8+ hex digits and dashes (UUIDs, snapshot ids) become `#`.
fn mask(s: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    for ch in s.chars().chain(std::iter::once('\u{0}')) {
        if ch.is_ascii_hexdigit() || ch == '-' {
            run.push(ch);
            continue;
        }
        if run.len() >= 8 {
            out.push('#')
        } else {
            out.push_str(&run)
        }
        run.clear();
        if ch != '\u{0}' {
            out.push(ch);
        }
    }
    out
}

struct Probe;
impl apache_avro::validator::SchemaNameValidator for Probe {
    fn validate(&self, _: &str) -> apache_avro::AvroResult<(String, apache_avro::schema::Namespace)> {
        unreachable!()
    }
}
impl apache_avro::validator::RecordFieldNameValidator for Probe {
    fn validate(&self, _: &str) -> apache_avro::AvroResult<()> {
        unreachable!()
    }
}
impl apache_avro::validator::SchemaNamespaceValidator for Probe {
    fn validate(&self, _: &str) -> apache_avro::AvroResult<()> {
        unreachable!()
    }
}
impl apache_avro::validator::EnumSymbolNameValidator for Probe {
    fn validate(&self, _: &str) -> apache_avro::AvroResult<()> {
        unreachable!()
    }
}
