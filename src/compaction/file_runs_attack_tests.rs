//! Hostile property test of `file_span`: whatever the key type, direction, null order, nulls present,
//! null counts missing, and (for strings) bounds truncated the way Iceberg truncates them, a start is
//! never above the file's real first row, and an end never below its real last row's first key.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow_array::{Date32Array, TimestampMicrosecondArray};
use arrow_schema::SortOptions;
use iceberg::arrow::schema_to_arrow_schema;
use iceberg::spec::{
    DataContentType, DataFileBuilder, DataFileFormat, Datum, ManifestEntry, ManifestStatus, NestedField,
    PrimitiveType, Schema, Type,
};
use proptest::prelude::*;

use super::file_span;
use crate::compaction::sort::{SortPlan, sort_batch};
use crate::table::LiveFile;

/// Iceberg's upper-bound truncation: the first `n` characters with the last incremented (dropping
/// characters that cannot be), `None` if none can.
fn truncate_upper(s: &str, n: usize) -> Option<String> {
    let mut chars: Vec<char> = s.chars().take(n).collect();
    if chars.len() == s.chars().count() {
        return Some(s.to_string());
    }
    while let Some(c) = chars.pop() {
        let mut next = c as u32 + 1;
        if (0xD800..0xE000).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

fn string() -> impl Strategy<Value = String> {
    proptest::collection::vec(prop_oneof![Just('a'), Just('b'), Just('\u{7f}'), Just('\u{10ffff}')], 0..5)
        .prop_map(|c| c.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]
    #[test]
    fn a_files_span_never_starts_above_its_rows_or_ends_below_them(
        kind in 0u8..6,
        descending in any::<bool>(),
        nulls_first in any::<bool>(),
        ints in proptest::collection::vec(proptest::option::weighted(0.8, -4i64..4), 1..20),
        strs in proptest::collection::vec(proptest::option::weighted(0.8, string()), 20),
        seconds in proptest::collection::vec(proptest::option::of(string()), 20),
        counts_known in any::<bool>(),
        truncate in 1usize..4,
    ) {
        let n = ints.len();
        let primitive = match kind {
            0 => PrimitiveType::Int,
            1 | 5 => PrimitiveType::Long, // 5: a long column whose file was written as int
            2 => PrimitiveType::Date,
            3 => PrimitiveType::Timestamptz,
            _ => PrimitiveType::String,
        };
        let schema = Arc::new(Schema::builder().with_fields(vec![
            NestedField::optional(1, "k", Type::Primitive(primitive)).into(),
            NestedField::optional(2, "s", Type::Primitive(PrimitiveType::String)).into(),
        ]).build().unwrap());
        let arrow_schema = Arc::new(schema_to_arrow_schema(&schema).unwrap());
        let key: ArrayRef = match kind {
            0 => Arc::new(ints.iter().map(|v| v.map(|v| v as i32)).collect::<Int32Array>()),
            1 | 5 => Arc::new(ints.iter().copied().collect::<Int64Array>()),
            2 => Arc::new(ints.iter().map(|v| v.map(|v| v as i32)).collect::<Date32Array>()),
            3 => Arc::new(ints.iter().copied().collect::<TimestampMicrosecondArray>().with_timezone("+00:00")),
            _ => Arc::new(strs[..n].iter().map(|s| s.as_deref()).collect::<StringArray>()),
        };
        let second: ArrayRef = Arc::new(seconds[..n].iter().map(|s| s.as_deref()).collect::<StringArray>());
        let batch = RecordBatch::try_new(arrow_schema.clone(), vec![key, second]).unwrap();
        let plan = SortPlan { order_id: 1, keys: vec![
            (0, SortOptions { descending, nulls_first }),
            (1, SortOptions { descending: !descending, nulls_first: !nulls_first }),
        ] };
        let sorted = sort_batch(&plan, &batch).unwrap();
        // Bounds as a writer records them.
        let nulls = if kind == 4 { strs[..n].iter().filter(|s| s.is_none()).count() }
            else { ints.iter().filter(|v| v.is_none()).count() } as u64;
        let (mut lower, mut upper) = (HashMap::new(), HashMap::new());
        if kind == 4 {
            let present: Vec<&String> = strs[..n].iter().flatten().collect();
            if let (Some(min), Some(max)) = (present.iter().min(), present.iter().max()) {
                lower.insert(1, Datum::string(min.chars().take(truncate).collect::<String>()));
                if let Some(up) = truncate_upper(max, truncate) {
                    upper.insert(1, Datum::string(up));
                }
            }
        } else {
            let present: Vec<i64> = ints.iter().flatten().copied().collect();
            if let (Some(&min), Some(&max)) = (present.iter().min(), present.iter().max()) {
                let datum = |v: i64| match kind {
                    0 | 5 => Datum::int(v as i32),
                    1 => Datum::long(v),
                    2 => Datum::date(v as i32),
                    _ => Datum::timestamptz_micros(v),
                };
                lower.insert(1, datum(min));
                upper.insert(1, datum(max));
            }
        }
        let null_counts = if counts_known { HashMap::from([(1, nulls)]) } else { HashMap::new() };
        let data_file = DataFileBuilder::default()
            .content(DataContentType::Data)
            .file_path("file:///x.parquet".to_string())
            .file_format(DataFileFormat::Parquet)
            .record_count(n as u64)
            .file_size_in_bytes(100)
            .null_value_counts(null_counts)
            .lower_bounds(lower)
            .upper_bounds(upper)
            .sort_order_id(1)
            .build()
            .unwrap();
        let entry = ManifestEntry::builder().status(ManifestStatus::Added).data_file(data_file).build();
        let file = LiveFile { entry: Arc::new(entry), spec_id: 0, manifest: 0 };
        let (start, end) = file_span(&file, &plan, &schema, &arrow_schema);
        let converter = plan.converter(&arrow_schema).unwrap();
        let rows = plan.rows(&converter, &sorted).unwrap();
        if let Some(start) = &start {
            prop_assert!(start.as_slice() <= rows.row(0).as_ref(),
                "start above the first row: kind {} desc {} nf {} {:?}", kind, descending, nulls_first, sorted);
        }
        if let Some(end) = &end {
            // Every row's first key is not above the end (as a prefix: the row's lead part <= end).
            let lead = plan.lead_row(&arrow_schema, sorted.column(0).slice(n - 1, 1)).unwrap();
            prop_assert!(lead.as_slice() <= end.as_slice(),
                "end below the last row: kind {} desc {} nf {} {:?}", kind, descending, nulls_first, sorted);
        }
        // With nulls in the key, null counts known and nulls first, a start must be unknown.
        if nulls > 0 && nulls_first {
            prop_assert!(start.is_none());
        }
    }
}
