//! Partition values as people and time windows see them, read from manifest partition structs (never
//! from paths): a human label (`timestamp_hour=2026-11-21-10`) and the time range a partition covers.
//!
//! Terms: a partition's *time range* is `[start, end)` in UTC for the most specific time field of its
//! spec (`hour`/`day`/`month`/`year` transform, or `identity` on a timestamp/date column). A partition
//! with no such field, or a null value, has no range: callers must treat it as "unknown".

use chrono::{DateTime, Months, TimeDelta, TimeZone, Utc};
use iceberg::spec::{
    Literal, PartitionSpec, PrimitiveLiteral, PrimitiveType, Schema, Struct, Transform, Type,
};

/// The `[start, end)` a partition covers, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

fn int_of(value: Option<&Literal>) -> Option<i64> {
    match value? {
        Literal::Primitive(PrimitiveLiteral::Int(i)) => Some(i64::from(*i)),
        Literal::Primitive(PrimitiveLiteral::Long(l)) => Some(*l),
        _ => None,
    }
}

fn epoch_month(months: i64) -> Option<DateTime<Utc>> {
    let base = Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).single()?;
    if months >= 0 {
        base.checked_add_months(Months::new(u32::try_from(months).ok()?))
    } else {
        base.checked_sub_months(Months::new(u32::try_from(months.checked_neg()?).ok()?))
    }
}

fn source_type(schema: &Schema, source_id: i32) -> Option<&PrimitiveType> {
    match schema.field_by_id(source_id)?.field_type.as_ref() {
        Type::Primitive(p) => Some(p),
        _ => None,
    }
}

fn is_time(p: &PrimitiveType) -> bool {
    matches!(
        p,
        PrimitiveType::Timestamp
            | PrimitiveType::Timestamptz
            | PrimitiveType::TimestampNs
            | PrimitiveType::TimestamptzNs
            | PrimitiveType::Date
    )
}

/// The range one partition field's value covers, if the field is a time field.
fn field_range(transform: Transform, source: &PrimitiveType, value: Option<&Literal>) -> Option<TimeRange> {
    let v = int_of(value)?;
    let (start, end) = match transform {
        Transform::Hour => {
            let s = Utc.timestamp_opt(v.checked_mul(3600)?, 0).single()?;
            (s, s.checked_add_signed(TimeDelta::hours(1))?)
        }
        Transform::Day => {
            let s = Utc.timestamp_opt(v.checked_mul(86_400)?, 0).single()?;
            (s, s.checked_add_signed(TimeDelta::days(1))?)
        }
        Transform::Month => (epoch_month(v)?, epoch_month(v.checked_add(1)?)?),
        Transform::Year => {
            (epoch_month(v.checked_mul(12)?)?, epoch_month(v.checked_add(1)?.checked_mul(12)?)?)
        }
        Transform::Identity => match source {
            PrimitiveType::Date => {
                let s = Utc.timestamp_opt(v.checked_mul(86_400)?, 0).single()?;
                (s, s.checked_add_signed(TimeDelta::days(1))?)
            }
            PrimitiveType::Timestamp | PrimitiveType::Timestamptz => {
                let s = Utc.timestamp_micros(v).single()?;
                (s, s.checked_add_signed(TimeDelta::microseconds(1))?)
            }
            PrimitiveType::TimestampNs | PrimitiveType::TimestamptzNs => {
                let s = Utc.timestamp_nanos(v);
                (s, s.checked_add_signed(TimeDelta::nanoseconds(1))?)
            }
            _ => return None,
        },
        _ => return None,
    };
    Some(TimeRange { start, end })
}

/// The narrowest time range among the spec's time fields (e.g. `day` and `hour` together give the
/// hour). `None` when the spec has no time field or the value is null.
pub fn time_range(spec: &PartitionSpec, schema: &Schema, value: &Struct) -> Option<TimeRange> {
    spec.fields()
        .iter()
        .zip(value.iter())
        .filter_map(|(field, v)| {
            let source = source_type(schema, field.source_id)?;
            is_time(source).then(|| field_range(field.transform, source, v)).flatten()
        })
        .min_by_key(|r| r.end - r.start)
}

/// `value` typed as `spec` over `schema` types it now: a partition tuple written before its source
/// column was promoted (`int` → `long`, `float` → `double`) holds the old type, which iceberg's
/// summary and writer code cannot take with the new field type. Partitions equal in value compare
/// equal after this; anything that cannot be converted is kept as it is.
pub fn coerce(spec: &PartitionSpec, schema: &Schema, value: &Struct) -> Struct {
    let Ok(partition_type) = spec.partition_type(schema) else {
        return value.clone();
    };
    value
        .iter()
        .zip(partition_type.fields())
        .map(|(v, field)| match (v, field.field_type.as_ref()) {
            (Some(Literal::Primitive(PrimitiveLiteral::Int(i))), Type::Primitive(PrimitiveType::Long)) => {
                Some(Literal::long(i64::from(*i)))
            }
            (
                Some(Literal::Primitive(PrimitiveLiteral::Float(f))),
                Type::Primitive(PrimitiveType::Double),
            ) => Some(Literal::double(f64::from(f.0))),
            (v, _) => v.cloned(),
        })
        .collect()
}

/// Whether every value of `value` already has the type `spec` over `schema` gives its field.
pub fn is_typed_as(spec: &PartitionSpec, schema: &Schema, value: &Struct) -> bool {
    coerce(spec, schema, value) == *value
}

/// `timestamp_hour=2026-11-21-10`, `day=2026-11-21`, `region=eu`; fields joined with `/`;
/// `unpartitioned` for an empty spec.
pub fn label(spec: &PartitionSpec, schema: &Schema, value: &Struct) -> String {
    if spec.fields().is_empty() {
        return "unpartitioned".to_string();
    }
    spec.fields()
        .iter()
        .zip(value.iter())
        .map(|(field, v)| {
            let source = source_type(schema, field.source_id);
            format!("{}={}", field.name, human_value(field.transform, source, v))
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn human_value(transform: Transform, source: Option<&PrimitiveType>, value: Option<&Literal>) -> String {
    let Some(literal) = value else {
        return "null".to_string();
    };
    let int = int_of(Some(literal));
    let time = source.filter(|s| is_time(s)).and_then(|s| field_range(transform, s, Some(literal)));
    match (transform, time, int) {
        (Transform::Hour, Some(r), _) => r.start.format("%Y-%m-%d-%H").to_string(),
        (Transform::Day, Some(r), _) => r.start.format("%Y-%m-%d").to_string(),
        (Transform::Month, Some(r), _) => r.start.format("%Y-%m").to_string(),
        (Transform::Year, Some(r), _) => r.start.format("%Y").to_string(),
        (Transform::Identity, Some(r), _) if source == Some(&PrimitiveType::Date) => {
            r.start.format("%Y-%m-%d").to_string()
        }
        (Transform::Identity, Some(r), _) => r.start.to_rfc3339(),
        (_, _, Some(i)) => i.to_string(),
        _ => match literal {
            Literal::Primitive(PrimitiveLiteral::String(s)) => s.clone(),
            Literal::Primitive(PrimitiveLiteral::Boolean(b)) => b.to_string(),
            other => format!("{other:?}"),
        },
    }
}

/// A partition field as `--partition` names it: its name, transform and source column type.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldInfo {
    pub name: String,
    pub transform: Transform,
    pub source: Option<PrimitiveType>,
}

/// Every partition field of every spec of a table (older specs too: their files are still live).
pub fn fields(metadata: &iceberg::spec::TableMetadata) -> Vec<FieldInfo> {
    let schema = metadata.current_schema();
    let mut out: Vec<FieldInfo> = Vec::new();
    for spec in metadata.partition_specs_iter() {
        for f in spec.fields() {
            let info = FieldInfo {
                name: f.name.clone(),
                transform: f.transform,
                source: source_type(schema, f.source_id).cloned(),
            };
            if !out.contains(&info) {
                out.push(info);
            }
        }
    }
    out
}

/// Checks a `--partition` selector (`field=value`, several joined with `/`, as [`label`] writes them)
/// against the partition fields of the selected tables: every field must exist and every value must be
/// written the way reports write it. A selector that could match nothing is an error, not a silent
/// no-op.
pub fn check_selector(selector: &str, fields: &[FieldInfo]) -> Result<(), String> {
    if selector == "unpartitioned" {
        return Ok(());
    }
    for pair in selector.split('/') {
        let Some((name, value)) = pair.split_once('=') else {
            return Err(format!("{pair:?} is not FIELD=VALUE (e.g. timestamp_hour=2026-11-21-10)"));
        };
        let Some(field) = fields.iter().find(|f| f.name == name) else {
            let known: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
            return Err(format!(
                "no partition field {name:?} in the selected tables (fields: {})",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            ));
        };
        if value == "null" {
            continue;
        }
        let time = field.source.as_ref().is_some_and(is_time);
        let (ok, form) = match (field.transform, time) {
            (Transform::Hour, true) => (
                chrono::NaiveDateTime::parse_from_str(&format!("{value}:00"), "%Y-%m-%d-%H:%M").is_ok(),
                "YYYY-MM-DD-HH",
            ),
            (Transform::Day, true) => {
                (chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").is_ok(), "YYYY-MM-DD")
            }
            (Transform::Identity, true) if field.source == Some(PrimitiveType::Date) => {
                (chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").is_ok(), "YYYY-MM-DD")
            }
            (Transform::Month, true) => {
                (chrono::NaiveDate::parse_from_str(&format!("{value}-01"), "%Y-%m-%d").is_ok(), "YYYY-MM")
            }
            (Transform::Year, true) => (value.len() == 4 && value.parse::<u16>().is_ok(), "YYYY"),
            (Transform::Identity, true) => (DateTime::parse_from_rfc3339(value).is_ok(), "an RFC 3339 time"),
            _ => (!value.is_empty(), "a value"),
        };
        if !ok {
            return Err(format!("{value:?} is not a valid {name} value (expected {form})"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use iceberg::spec::NestedField;

    use super::*;

    fn schema() -> Schema {
        Schema::builder()
            .with_fields(vec![
                Arc::new(NestedField::required(1, "timestamp", Type::Primitive(PrimitiveType::Timestamp))),
                Arc::new(NestedField::required(2, "day", Type::Primitive(PrimitiveType::Date))),
                Arc::new(NestedField::required(3, "region", Type::Primitive(PrimitiveType::String))),
            ])
            .build()
            .unwrap()
    }

    fn spec(fields: &[(i32, &str, Transform)]) -> PartitionSpec {
        let mut b = PartitionSpec::builder(schema());
        for (source, name, t) in fields {
            b = b
                .add_partition_field(schema().field_by_id(*source).unwrap().name.clone(), *name, *t)
                .unwrap();
        }
        b.build().unwrap()
    }

    fn ints(values: &[Option<i32>]) -> Struct {
        values.iter().map(|v| v.map(Literal::int)).collect()
    }

    fn utc(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    #[test]
    fn hour_partition_label_and_range() {
        let s = spec(&[(1, "timestamp_hour", Transform::Hour)]);
        let hour = (utc(2026, 11, 21, 10).timestamp() / 3600) as i32;
        let v = ints(&[Some(hour)]);
        assert_eq!(label(&s, &schema(), &v), "timestamp_hour=2026-11-21-10");
        assert_eq!(
            time_range(&s, &schema(), &v),
            Some(TimeRange { start: utc(2026, 11, 21, 10), end: utc(2026, 11, 21, 11) })
        );
    }

    #[test]
    fn day_month_year_and_identity_date_ranges() {
        let day = spec(&[(1, "ts_day", Transform::Day)]);
        let d = (utc(2026, 1, 15, 0).timestamp() / 86_400) as i32;
        assert_eq!(time_range(&day, &schema(), &ints(&[Some(d)])).unwrap().end, utc(2026, 1, 16, 0));
        assert_eq!(label(&day, &schema(), &ints(&[Some(d)])), "ts_day=2026-01-15");

        let month = spec(&[(1, "ts_month", Transform::Month)]);
        let m = (2026 - 1970) * 12 + 11; // December 2026
        let r = time_range(&month, &schema(), &ints(&[Some(m)])).unwrap();
        assert_eq!((r.start, r.end), (utc(2026, 12, 1, 0), utc(2027, 1, 1, 0)));
        assert_eq!(label(&month, &schema(), &ints(&[Some(m)])), "ts_month=2026-12");

        let year = spec(&[(1, "ts_year", Transform::Year)]);
        let r = time_range(&year, &schema(), &ints(&[Some(56)])).unwrap();
        assert_eq!((r.start, r.end), (utc(2026, 1, 1, 0), utc(2027, 1, 1, 0)));

        let ident = spec(&[(2, "day", Transform::Identity)]);
        let r = time_range(&ident, &schema(), &ints(&[Some(d)])).unwrap();
        assert_eq!((r.start, r.end), (utc(2026, 1, 15, 0), utc(2026, 1, 16, 0)));
        assert_eq!(label(&ident, &schema(), &ints(&[Some(d)])), "day=2026-01-15");
    }

    #[test]
    fn narrowest_time_field_wins_and_non_time_fields_have_no_range() {
        // identity(day: date) covers a day, hour(timestamp) an hour: the hour is the narrower range.
        let s = spec(&[(2, "day", Transform::Identity), (1, "ts_hour", Transform::Hour)]);
        let v = ints(&[
            Some((utc(2026, 3, 1, 0).timestamp() / 86_400) as i32),
            Some((utc(2026, 3, 1, 5).timestamp() / 3600) as i32),
        ]);
        assert_eq!(time_range(&s, &schema(), &v).unwrap().end, utc(2026, 3, 1, 6));

        let region = spec(&[(3, "region", Transform::Identity)]);
        let v: Struct = [Some(Literal::string("eu"))].into_iter().collect();
        assert_eq!(time_range(&region, &schema(), &v), None);
        assert_eq!(label(&region, &schema(), &v), "region=eu");
    }

    #[test]
    fn promoted_source_values_are_retyped() {
        let long_schema = Schema::builder()
            .with_fields(vec![Arc::new(NestedField::required(1, "n", Type::Primitive(PrimitiveType::Long)))])
            .build()
            .unwrap();
        let s = PartitionSpec::builder(long_schema.clone())
            .add_partition_field("n", "n", Transform::Identity)
            .unwrap()
            .build()
            .unwrap();
        let old = ints(&[Some(5)]);
        let new: Struct = [Some(Literal::long(5))].into_iter().collect();
        assert_eq!(coerce(&s, &long_schema, &old), new);
        assert!(!is_typed_as(&s, &long_schema, &old));
        assert!(is_typed_as(&s, &long_schema, &new));
        assert_eq!(coerce(&s, &long_schema, &ints(&[None])), ints(&[None]));
    }

    #[test]
    fn null_value_has_no_range() {
        let s = spec(&[(1, "timestamp_hour", Transform::Hour)]);
        assert_eq!(time_range(&s, &schema(), &ints(&[None])), None);
        assert_eq!(label(&s, &schema(), &ints(&[None])), "timestamp_hour=null");
    }

    #[test]
    fn partition_selectors_must_name_a_field_and_a_well_formed_value() {
        let hour = FieldInfo {
            name: "timestamp_hour".into(),
            transform: Transform::Hour,
            source: Some(PrimitiveType::Timestamptz),
        };
        let region = FieldInfo {
            name: "region".into(),
            transform: Transform::Identity,
            source: Some(PrimitiveType::String),
        };
        let fields = [hour, region];
        assert_eq!(check_selector("timestamp_hour=2026-11-21-10", &fields), Ok(()));
        assert_eq!(check_selector("timestamp_hour=2026-11-21-10/region=eu", &fields), Ok(()));
        assert_eq!(check_selector("timestamp_hour=null", &fields), Ok(()));
        for bad in [
            "bogus=1",
            "timestamp_hour=bogus",
            "timestamp_hour=2026-11-21",
            "timestamp_hour=2026-11-21-25",
            "timestamp_hour",
            "region=",
        ] {
            assert!(check_selector(bad, &fields).is_err(), "{bad}");
        }
        assert!(check_selector("bogus=1", &fields).unwrap_err().contains("\"bogus\""));
        assert!(check_selector("timestamp_hour=bogus", &fields).unwrap_err().contains("YYYY-MM-DD-HH"));
    }

    /// Extreme partition values (a hostile or corrupt manifest) give no range and a label, never a
    /// panic: the last day chrono can represent ends past its maximum.
    #[test]
    fn extreme_values_have_no_range_and_never_panic() {
        let sources = [
            PrimitiveType::Timestamp,
            PrimitiveType::Timestamptz,
            PrimitiveType::TimestampNs,
            PrimitiveType::Date,
        ];
        let transforms =
            [Transform::Hour, Transform::Day, Transform::Month, Transform::Year, Transform::Identity];
        let last_day = chrono::NaiveDate::MAX
            .signed_duration_since(chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
            .num_days();
        let values = [i64::MIN, i64::MIN + 1, -1, 0, last_day, last_day + 1, i64::MAX - 1, i64::MAX]
            .into_iter()
            .flat_map(|v| {
                [Literal::long(v), Literal::int(v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32)]
            });
        for value in values {
            for source in &sources {
                for transform in transforms {
                    let range = field_range(transform, source, Some(&value));
                    if let Some(r) = range {
                        assert!(r.start < r.end, "{transform:?} {source:?} {value:?}");
                    }
                    let _ = human_value(transform, Some(source), Some(&value));
                }
            }
        }
        assert_eq!(field_range(Transform::Day, &PrimitiveType::Date, Some(&Literal::long(last_day))), None);
        assert_eq!(
            field_range(Transform::Identity, &PrimitiveType::Date, Some(&Literal::long(last_day))),
            None
        );
    }
}
