//! SignalDB-shaped table definitions: columns, partitioning, sort orders and properties (DESIGN §2).
//!
//! One column model per signal drives both the Iceberg schema and the Arrow batches, so adding a table
//! is adding a list of columns, not another code path.

use std::collections::HashMap;
use std::sync::Arc;

use iceberg::spec::{
    MapType, NestedField, NullOrder, PrimitiveType, Schema, SortDirection, SortField, SortOrder, Transform,
    Type, UnboundPartitionSpec,
};

/// How a column's values are generated.
#[derive(Debug, Clone, Copy)]
pub enum Gen {
    /// Microseconds within the file's hour, sorted ascending.
    Timestamp,
    /// Lowercase hex of this many characters.
    Hex(usize),
    /// Like `Hex`, null for about a third of rows.
    MaybeHex(usize),
    Pick(&'static [&'static str]),
    /// A short log line.
    Text,
    Int(i32, i32),
    Long(i64, i64),
    Double,
    Bool,
    /// `map<string, string>` with a few attributes.
    Attributes,
}

#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub generator: Gen,
}

const SERVICES: &[&str] =
    &["api-gateway", "checkout", "payments", "inventory", "search", "auth", "frontend", "email"];
const SPAN_NAMES: &[&str] = &["GET /cart", "POST /pay", "SELECT orders", "publish", "render", "rpc.call"];
const SPAN_KINDS: &[&str] = &["SERVER", "CLIENT", "INTERNAL", "PRODUCER", "CONSUMER"];
const STATUS: &[&str] = &["OK", "OK", "OK", "UNSET", "ERROR"];
const SEVERITIES: &[&str] = &["DEBUG", "INFO", "INFO", "INFO", "WARN", "ERROR"];
const METRICS: &[&str] =
    &["http.server.duration", "process.cpu.time", "system.memory.usage", "queue.depth", "db.connections"];
const PROFILE_TYPES: &[&str] = &["cpu", "alloc_space", "goroutines", "wall"];

const fn col(name: &'static str, generator: Gen) -> Column {
    Column { name, generator }
}

/// The tables `generate` writes: the three core ones, or all eight SignalDB tables.
pub fn table_names(all_signals: bool) -> &'static [&'static str] {
    if all_signals {
        &[
            "traces",
            "logs",
            "profiles",
            "metrics_gauge",
            "metrics_sum",
            "metrics_histogram",
            "metrics_exponential_histogram",
            "metrics_summary",
        ]
    } else {
        &["traces", "logs", "metrics_gauge"]
    }
}

pub fn columns(table: &str) -> Vec<Column> {
    use Gen::*;
    let metric_base =
        [col("timestamp", Timestamp), col("metric_name", Pick(METRICS)), col("service_name", Pick(SERVICES))];
    let mut cols: Vec<Column> = match table {
        "traces" => vec![
            col("timestamp", Timestamp),
            col("trace_id", Hex(32)),
            col("span_id", Hex(16)),
            col("parent_span_id", MaybeHex(16)),
            col("service_name", Pick(SERVICES)),
            col("span_name", Pick(SPAN_NAMES)),
            col("span_kind", Pick(SPAN_KINDS)),
            col("status_code", Pick(STATUS)),
            col("duration_nanos", Long(1_000, 5_000_000_000)),
        ],
        "logs" => vec![
            col("timestamp", Timestamp),
            col("trace_id", MaybeHex(32)),
            col("span_id", MaybeHex(16)),
            col("service_name", Pick(SERVICES)),
            col("severity_text", Pick(SEVERITIES)),
            col("severity_number", Int(1, 24)),
            col("body", Text),
        ],
        "profiles" => vec![
            col("timestamp", Timestamp),
            col("service_name", Pick(SERVICES)),
            col("profile_type", Pick(PROFILE_TYPES)),
            col("duration_nanos", Long(1_000_000, 60_000_000_000)),
            col("sample_count", Long(1, 100_000)),
        ],
        "metrics_gauge" => [&metric_base[..], &[col("value", Double)]].concat(),
        "metrics_sum" => [&metric_base[..], &[col("value", Double), col("is_monotonic", Bool)]].concat(),
        "metrics_histogram" | "metrics_summary" => {
            [&metric_base[..], &[col("count", Long(1, 10_000)), col("sum", Double)]].concat()
        }
        "metrics_exponential_histogram" => [
            &metric_base[..],
            &[col("count", Long(1, 10_000)), col("sum", Double), col("scale", Int(-10, 20))],
        ]
        .concat(),
        other => panic!("no column model for table {other}"),
    };
    cols.push(col("attributes", Attributes));
    cols
}

/// The Iceberg schema of a column list: ids 1..=n for top-level columns, map key/value ids after.
pub fn schema(columns: &[Column]) -> iceberg::Result<Schema> {
    let mut next_nested = columns.len() as i32 + 1;
    let fields = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let id = i as i32 + 1;
            let (ty, required) = match c.generator {
                Gen::Timestamp => (Type::Primitive(PrimitiveType::Timestamp), true),
                Gen::Hex(_) | Gen::Pick(_) | Gen::Text => (Type::Primitive(PrimitiveType::String), true),
                Gen::MaybeHex(_) => (Type::Primitive(PrimitiveType::String), false),
                Gen::Int(..) => (Type::Primitive(PrimitiveType::Int), true),
                Gen::Long(..) => (Type::Primitive(PrimitiveType::Long), true),
                Gen::Double => (Type::Primitive(PrimitiveType::Double), true),
                Gen::Bool => (Type::Primitive(PrimitiveType::Boolean), true),
                Gen::Attributes => {
                    let (k, v) = (next_nested, next_nested + 1);
                    next_nested += 2;
                    let string = Type::Primitive(PrimitiveType::String);
                    (Type::Map(MapType::optional(k, string.clone(), v, string)), false)
                }
            };
            Arc::new(NestedField::new(id, c.name, ty, required))
        })
        .collect::<Vec<_>>();
    Schema::builder().with_schema_id(0).with_fields(fields).build()
}

/// Partition spec 0: `hour(timestamp)` named `timestamp_hour`.
pub fn partition_spec(schema: &Schema) -> iceberg::Result<UnboundPartitionSpec> {
    let ts = schema.field_by_name("timestamp").expect("every table has a timestamp").id;
    UnboundPartitionSpec::builder()
        .with_spec_id(0)
        .add_partition_field(ts, "timestamp_hour", Transform::Hour)
        .map(|b| b.build())
}

/// The sort order SignalDB declares for a table, if any.
pub fn sort_order(table: &str, schema: &Schema) -> iceberg::Result<Option<SortOrder>> {
    let names: &[&str] = match table {
        "traces" => &["timestamp", "trace_id"],
        "logs" => &["timestamp", "service_name", "severity_text"],
        t if t.starts_with("metrics_") => &["timestamp", "metric_name", "service_name"],
        _ => return Ok(None),
    };
    let mut builder = SortOrder::builder();
    builder.with_order_id(1);
    for name in names {
        let source_id = schema.field_by_name(name).expect("sort column exists").id;
        builder.with_sort_field(SortField {
            source_id,
            transform: Transform::Identity,
            direction: SortDirection::Ascending,
            null_order: NullOrder::First,
        });
    }
    builder.build(schema).map(Some)
}

/// The table properties SignalDB sets (DESIGN §2).
pub fn properties(table: &str) -> HashMap<String, String> {
    let bloom = match table {
        "traces" => Some("trace_id"),
        "logs" => Some("trace_id"),
        _ => None,
    };
    let mut p: HashMap<String, String> = [
        ("write.parquet.compression-codec", "zstd"),
        ("write.parquet.compression-level", "1"),
        ("write.target-file-size-bytes", "134217728"),
        ("write.metadata.delete-after-commit.enabled", "true"),
        ("write.metadata.previous-versions-max", "100"),
        ("signaldb.generated-by", "signaldb-compactor generate"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if let Some(col) = bloom {
        p.insert(format!("write.parquet.bloom-filter-enabled.column.{col}"), "true".into());
    }
    p
}
