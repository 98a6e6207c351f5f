//! Arrow record batches for generated files, matching the table's Arrow schema exactly (field ids
//! included), so iceberg's Parquet writer records correct field ids and column statistics.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, MapArray, RecordBatch, StringArray, StructArray, TimestampMicrosecondArray};
use arrow_buffer::{OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, SchemaRef};
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::schema::{Column, Gen};

/// What one generated file holds.
#[derive(Debug, Clone, Copy)]
pub struct FileSpec {
    pub seed: u64,
    pub rows: usize,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// A per-file seed from the run seed and the file's identity (independent of generation order).
pub fn file_seed(seed: u64, namespace: &str, table: &str, hour: DateTime<Utc>, index: usize) -> u64 {
    // FNV-1a: stable across Rust versions, unlike `DefaultHasher`.
    struct Fnv(u64);
    impl Hasher for Fnv {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for b in bytes {
                self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
            }
        }
    }
    let mut h = Fnv(0xcbf2_9ce4_8422_2325 ^ seed);
    (namespace, table, hour.timestamp(), index as u64).hash(&mut h);
    h.finish()
}

const WORDS: &[&str] = &[
    "request",
    "completed",
    "failed",
    "retrying",
    "user",
    "order",
    "cache",
    "miss",
    "hit",
    "timeout",
    "connection",
    "reset",
    "payload",
    "accepted",
    "queued",
    "latency",
    "high",
    "normal",
];

fn hex(rng: &mut StdRng, n: usize) -> String {
    const DIGITS: &[u8] = b"0123456789abcdef";
    (0..n).map(|_| DIGITS[rng.random_range(0..16)] as char).collect()
}

pub fn build(columns: &[Column], schema: &SchemaRef, spec: &FileSpec) -> anyhow::Result<RecordBatch> {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let arrays = columns
        .iter()
        .zip(schema.fields())
        .map(|(c, field)| column(c.generator, field, spec, &mut rng))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), arrays)?)
}

fn column(generator: Gen, field: &Field, spec: &FileSpec, rng: &mut StdRng) -> anyhow::Result<ArrayRef> {
    let n = spec.rows;
    Ok(match generator {
        Gen::Timestamp => {
            let (lo, hi) = (spec.start.timestamp_micros(), spec.end.timestamp_micros());
            let mut ts: Vec<i64> = (0..n).map(|_| rng.random_range(lo..hi)).collect();
            ts.sort_unstable();
            Arc::new(TimestampMicrosecondArray::from(ts))
        }
        Gen::Hex(len) => Arc::new(StringArray::from_iter_values((0..n).map(|_| hex(rng, len)))),
        Gen::MaybeHex(len) => Arc::new(StringArray::from_iter(
            (0..n).map(|_| (rng.random_range(0..3) > 0).then(|| hex(rng, len))),
        )),
        Gen::Pick(values) => {
            Arc::new(StringArray::from_iter_values((0..n).map(|_| values[rng.random_range(0..values.len())])))
        }
        Gen::Text => {
            let mut b = StringBuilder::new();
            for _ in 0..n {
                let words: Vec<&str> =
                    (0..rng.random_range(4..12)).map(|_| WORDS[rng.random_range(0..WORDS.len())]).collect();
                b.append_value(words.join(" "));
            }
            Arc::new(b.finish())
        }
        Gen::Int(lo, hi) => {
            let mut b = Int32Builder::with_capacity(n);
            (0..n).for_each(|_| b.append_value(rng.random_range(lo..=hi)));
            Arc::new(b.finish())
        }
        Gen::Long(lo, hi) => {
            let mut b = Int64Builder::with_capacity(n);
            (0..n).for_each(|_| b.append_value(rng.random_range(lo..=hi)));
            Arc::new(b.finish())
        }
        Gen::Double => {
            let mut b = Float64Builder::with_capacity(n);
            (0..n).for_each(|_| b.append_value((rng.random::<f64>() * 10_000.0).round() / 100.0));
            Arc::new(b.finish())
        }
        Gen::Bool => {
            let mut b = BooleanBuilder::with_capacity(n);
            (0..n).for_each(|_| b.append_value(rng.random_bool(0.5)));
            Arc::new(b.finish())
        }
        Gen::Attributes => attributes(field, n, rng)?,
    })
}

/// `map<string,string>` built against the schema's own entry field (names, nullability, field ids).
fn attributes(field: &Field, n: usize, rng: &mut StdRng) -> anyhow::Result<ArrayRef> {
    let DataType::Map(entries, sorted) = field.data_type() else {
        anyhow::bail!("column {} is not a map", field.name());
    };
    let DataType::Struct(kv_fields) = entries.data_type() else {
        anyhow::bail!("map entries of {} are not a struct", field.name());
    };
    let (mut keys, mut values, mut offsets) = (StringBuilder::new(), StringBuilder::new(), vec![0i32]);
    for _ in 0..n {
        keys.append_value("http.method");
        values.append_value(["GET", "POST", "PUT"][rng.random_range(0..3)]);
        keys.append_value("http.status_code");
        values.append_value(["200", "201", "404", "500"][rng.random_range(0..4)]);
        keys.append_value("host.name");
        values.append_value(format!("node-{}", rng.random_range(0..16)));
        offsets.push(offsets.last().unwrap() + 3);
    }
    let entries_array = StructArray::try_new(
        kv_fields.clone(),
        vec![Arc::new(keys.finish()), Arc::new(values.finish())],
        None,
    )?;
    let map = MapArray::try_new(
        entries.clone(),
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        entries_array,
        None,
        *sorted,
    )?;
    Ok(Arc::new(map))
}
