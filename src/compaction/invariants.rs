//! Content invariants checked before every compaction commit: the output must hold the same content as
//! the inputs, as far as the files' own statistics can tell. A row-count check alone passes when values
//! land in the wrong column (read by position), when partitions are merged by a printed label, or when
//! a reader fills a column with the wrong constant; these checks catch all three.
//!
//! Checked per group (pure: no IO), with the statistics of the input manifests and of the written files:
//! - every output file's partition tuple equals the group's;
//! - for every column with statistics in every input and in every output: the output's null and NaN
//!   counts equal the inputs' sums, and the output's lower/upper bounds lie within the inputs' (string
//!   and binary bounds may be truncated, so they are compared on the prefix both sides have kept).
//!
//! When deletes were applied (fewer rows written than the inputs hold), null and NaN counts may be
//! below the inputs' sums, never above; bounds still lie within the inputs'.
//!
//! Only primitive columns outside lists and maps are compared: counts inside repeated fields are
//! defined differently by different writers.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};

use iceberg::spec::{
    DataFile, Datum, Literal, NestedFieldRef, PartitionSpec, PrimitiveLiteral, PrimitiveType, Schema, Struct,
    Transform, Type,
};
use iceberg::transform::create_transform_function;

/// A broken invariant: which check, which column, the inputs' and the output's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub check: &'static str,
    pub column: String,
    pub input: String,
    pub output: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} of column {}: inputs {}, output {}", self.check, self.column, self.input, self.output)
    }
}

/// Field ids of the primitive columns outside lists and maps (top level and inside structs).
fn comparable_columns(schema: &Schema) -> BTreeSet<i32> {
    fn walk(fields: &[NestedFieldRef], out: &mut BTreeSet<i32>) {
        for f in fields {
            match f.field_type.as_ref() {
                Type::Primitive(_) => {
                    out.insert(f.id);
                }
                Type::Struct(s) => walk(s.fields(), out),
                Type::List(_) | Type::Map(_) => {}
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(schema.as_struct().fields(), &mut out);
    out
}

/// Checks `outputs` against `inputs` for a group of partition `partition` (see the module docs).
pub fn check(
    schema: &Schema,
    partition: &Struct,
    inputs: &[&DataFile],
    outputs: &[&DataFile],
    rows_deleted: bool,
) -> Result<(), Violation> {
    for out in outputs {
        if out.partition() != partition {
            return Err(Violation {
                check: "partition",
                column: "(partition tuple)".into(),
                input: format!("{partition:?}"),
                output: format!("{:?}", out.partition()),
            });
        }
    }
    check_content(schema, inputs, outputs, rows_deleted)
}

/// Checks a group whose inputs (of an older spec) were rewritten under `spec`, the current one, each
/// row's partition computed by `spec`'s transforms: the content checks of [`check`] over all outputs
/// together, and for every output, every field of a monotonic transform (`identity` on a non-string
/// column, `year`/`month`/`day`/`hour`) maps both bounds of its source column to the file's partition
/// value (a NULL value: the column has no bound, i.e. only nulls).
pub fn check_respec(
    schema: &Schema,
    spec: &PartitionSpec,
    inputs: &[&DataFile],
    outputs: &[&DataFile],
    rows_deleted: bool,
) -> Result<(), Violation> {
    for out in outputs {
        let values = out.partition().fields();
        if values.len() != spec.fields().len() {
            return Err(Violation {
                check: "partition",
                column: "(partition tuple)".into(),
                input: format!("{} fields of spec {}", spec.fields().len(), spec.spec_id()),
                output: format!("{:?}", out.partition()),
            });
        }
        for (field, value) in spec.fields().iter().zip(values) {
            let monotonic = match field.transform {
                Transform::Year | Transform::Month | Transform::Day | Transform::Hour => true,
                Transform::Identity => schema.field_by_id(field.source_id).is_some_and(|f| {
                    !matches!(
                        f.field_type.as_ref(),
                        Type::Primitive(PrimitiveType::String | PrimitiveType::Binary)
                    )
                }),
                _ => false,
            };
            if !monotonic {
                continue;
            }
            let Ok(function) = create_transform_function(&field.transform) else { continue };
            for (which, bounds) in [("lower", out.lower_bounds()), ("upper", out.upper_bounds())] {
                let got = match bounds.get(&field.source_id) {
                    Some(bound) => match function.transform_literal(bound) {
                        Ok(v) => v.map(|d| d.literal().clone()),
                        Err(_) => continue,
                    },
                    // Only nulls, or no statistics for the column: nothing to compare.
                    None => continue,
                };
                let want = match value {
                    Some(Literal::Primitive(p)) => Some(p.clone()),
                    None => None,
                    Some(_) => continue,
                };
                if got != want {
                    return Err(Violation {
                        check: "partition",
                        column: format!("{} ({which} bound of its source column)", field.name),
                        input: format!("{want:?}"),
                        output: format!("{got:?}"),
                    });
                }
            }
        }
    }
    check_content(schema, inputs, outputs, rows_deleted)
}

/// The statistics checks shared by [`check`] and [`check_respec`]. With `rows_deleted` (deletes were
/// applied) the outputs' null and NaN counts may be below the inputs' sums, never above.
fn check_content(
    schema: &Schema,
    inputs: &[&DataFile],
    outputs: &[&DataFile],
    rows_deleted: bool,
) -> Result<(), Violation> {
    let name = |id: i32| schema.name_by_field_id(id).map(str::to_string).unwrap_or_else(|| format!("#{id}"));
    for id in comparable_columns(schema) {
        for (check, get) in [
            ("null count", DataFile::null_value_counts as fn(&DataFile) -> &HashMap<i32, u64>),
            ("NaN count", DataFile::nan_value_counts),
        ] {
            if let (Some(input), Some(output)) = (sum(inputs, id, get), sum(outputs, id, get))
                && (output > input || (!rows_deleted && input != output))
            {
                return Err(Violation {
                    check,
                    column: name(id),
                    input: input.to_string(),
                    output: output.to_string(),
                });
            }
        }
        let (Some(in_lower), Some(out_lower)) = (
            extreme(inputs, id, DataFile::lower_bounds, Ordering::Less),
            extreme(outputs, id, DataFile::lower_bounds, Ordering::Less),
        ) else {
            continue;
        };
        if below(&out_lower, &in_lower, Bound::Lower) {
            return Err(Violation {
                check: "lower bound",
                column: name(id),
                input: in_lower.to_string(),
                output: out_lower.to_string(),
            });
        }
        let (Some(in_upper), Some(out_upper)) = (
            extreme(inputs, id, DataFile::upper_bounds, Ordering::Greater),
            extreme(outputs, id, DataFile::upper_bounds, Ordering::Greater),
        ) else {
            continue;
        };
        if below(&in_upper, &out_upper, Bound::Upper) {
            return Err(Violation {
                check: "upper bound",
                column: name(id),
                input: in_upper.to_string(),
                output: out_upper.to_string(),
            });
        }
    }
    Ok(())
}

/// The sum of a count over files, if every file has it.
fn sum(files: &[&DataFile], id: i32, get: fn(&DataFile) -> &HashMap<i32, u64>) -> Option<u64> {
    files.iter().map(|f| get(f).get(&id).copied()).sum()
}

/// The smallest (`Less`) or largest (`Greater`) bound over files, if every file has one and they
/// compare (bounds of one column written under different types do not).
fn extreme(
    files: &[&DataFile],
    id: i32,
    get: fn(&DataFile) -> &HashMap<i32, Datum>,
    want: Ordering,
) -> Option<Datum> {
    let mut best: Option<&Datum> = None;
    for f in files {
        let d = get(f).get(&id)?;
        best = match best {
            None => Some(d),
            Some(b) => match d.partial_cmp(b)? {
                o if o == want => Some(d),
                _ => Some(b),
            },
        };
    }
    best.cloned()
}

#[derive(Clone, Copy)]
enum Bound {
    Lower,
    Upper,
}

/// Iceberg's default metrics mode, `truncate(16)`: string and binary bounds of this length may be
/// truncated. A table that truncates shorter gets exact comparisons of its short bounds, which can
/// only make the check refuse a commit, never let a wrong one through.
const TRUNCATED_BOUND_LENGTH: usize = 16;

/// Whether `a < b` for certain. Truncated bounds: a lower bound is a prefix of the value, an upper
/// bound a prefix whose last character may be incremented; strings and binaries are therefore compared
/// on the prefix both kept (minus the last character for upper bounds). Incomparable: not below.
fn below(a: &Datum, b: &Datum, bound: Bound) -> bool {
    // Only a bound as long as the truncation length can have been truncated (and its last character
    // incremented); a shorter one is exact and compared whole.
    let keep = |len: usize| match bound {
        Bound::Upper if len >= TRUNCATED_BOUND_LENGTH => len - 1,
        _ => len,
    };
    match (a.literal(), b.literal()) {
        (PrimitiveLiteral::String(x), PrimitiveLiteral::String(y)) => {
            let n = keep(x.chars().count().min(y.chars().count()));
            x.chars().take(n).lt(y.chars().take(n))
        }
        (PrimitiveLiteral::Binary(x), PrimitiveLiteral::Binary(y)) => {
            let n = keep(x.len().min(y.len()));
            x[..n] < y[..n]
        }
        _ => a.partial_cmp(b) == Some(Ordering::Less),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use iceberg::spec::{
        DataContentType, DataFileBuilder, DataFileFormat, Literal, NestedField, PrimitiveType,
    };

    use super::*;

    fn schema() -> Schema {
        Schema::builder()
            .with_fields(vec![
                Arc::new(NestedField::optional(1, "code", Type::Primitive(PrimitiveType::Long))),
                Arc::new(NestedField::optional(2, "service", Type::Primitive(PrimitiveType::String))),
            ])
            .build()
            .unwrap()
    }

    fn file(nulls: u64, codes: (i64, i64), services: (&str, &str), partition: &Struct) -> DataFile {
        DataFileBuilder::default()
            .content(DataContentType::Data)
            .file_path("x.parquet".into())
            .file_format(DataFileFormat::Parquet)
            .partition(partition.clone())
            .record_count(10)
            .file_size_in_bytes(100)
            .null_value_counts(HashMap::from([(1, nulls), (2, 0)]))
            .lower_bounds(HashMap::from([(1, Datum::long(codes.0)), (2, Datum::string(services.0))]))
            .upper_bounds(HashMap::from([(1, Datum::long(codes.1)), (2, Datum::string(services.1))]))
            .partition_spec_id(0)
            .build()
            .unwrap()
    }

    fn part(v: Option<&str>) -> Struct {
        [v.map(Literal::string)].into_iter().collect()
    }

    #[test]
    fn same_content_passes_with_truncated_string_bounds() {
        let p = part(Some("eu"));
        let a = file(1, (100, 200), ("api-gateway-service-long-name", "web"), &p);
        let b = file(2, (150, 599), ("db", "worker-service-with-a-long-name-zz"), &p);
        // The output truncates its string bounds at 16 characters (the upper incremented).
        let out = file(3, (100, 599), ("api-gateway-serv", "worker-service-wj"), &p);
        assert_eq!(check(&schema(), &p, &[&a, &b], &[&out], false), Ok(()));
    }

    #[test]
    fn swapped_or_shifted_values_are_caught() {
        let p = part(Some("eu"));
        let a = file(1, (100, 200), ("api", "web"), &p);
        let wrong_nulls = file(0, (100, 200), ("api", "web"), &p);
        assert_eq!(check(&schema(), &p, &[&a], &[&wrong_nulls], false).unwrap_err().check, "null count");
        let wider = file(1, (7, 200), ("api", "web"), &p);
        let v = check(&schema(), &p, &[&a], &[&wider], false).unwrap_err();
        assert_eq!(
            (v.check, v.column.as_str(), v.input.as_str(), v.output.as_str()),
            ("lower bound", "code", "100", "7")
        );
        let above = file(1, (100, 200), ("api", "zzz"), &p);
        assert_eq!(check(&schema(), &p, &[&a], &[&above], false).unwrap_err().check, "upper bound");
    }

    #[test]
    fn a_null_partition_is_not_the_string_null() {
        let null = part(None);
        let string = part(Some("null"));
        let a = file(0, (1, 2), ("a", "b"), &null);
        let out = file(0, (1, 2), ("a", "b"), &string);
        assert_eq!(check(&schema(), &null, &[&a], &[&out], false).unwrap_err().check, "partition");
    }

    #[test]
    fn respec_outputs_must_hold_only_rows_of_their_partition() {
        use iceberg::spec::{PartitionSpec, Transform, UnboundPartitionField};
        // identity(code) and identity(service): only the non-string one is checked against bounds.
        let spec = PartitionSpec::builder(schema())
            .with_spec_id(1)
            .add_unbound_fields([
                UnboundPartitionField::builder()
                    .source_id(1)
                    .name("code".into())
                    .transform(Transform::Identity)
                    .build(),
                UnboundPartitionField::builder()
                    .source_id(2)
                    .name("service".into())
                    .transform(Transform::Identity)
                    .build(),
            ])
            .unwrap()
            .build()
            .unwrap();
        let old = part(Some("eu"));
        let input = file(0, (7, 8), ("api", "db"), &old);
        let p7: Struct = [Some(Literal::long(7)), Some(Literal::string("api"))].into_iter().collect();
        let p8: Struct = [Some(Literal::long(8)), Some(Literal::string("db"))].into_iter().collect();
        let good = [file(0, (7, 7), ("api", "api"), &p7), file(0, (8, 8), ("db", "db"), &p8)];
        assert_eq!(check_respec(&schema(), &spec, &[&input], &[&good[0], &good[1]], false), Ok(()));
        // A file labelled code=7 holding code 8 rows (rows under the wrong partition).
        let mixed = file(0, (7, 8), ("api", "db"), &p7);
        let v = check_respec(&schema(), &spec, &[&input], &[&mixed], false).unwrap_err();
        assert_eq!((v.check, v.column.as_str()), ("partition", "code (upper bound of its source column)"));
        // A tuple of the old spec's shape.
        assert_eq!(
            check_respec(&schema(), &spec, &[&input], &[&input], false).unwrap_err().check,
            "partition"
        );
        // The content checks still apply across all outputs.
        let lost_nulls = file(0, (7, 7), ("api", "api"), &p7);
        let with_nulls = file(5, (7, 8), ("api", "db"), &old);
        assert_eq!(
            check_respec(&schema(), &spec, &[&with_nulls], &[&lost_nulls], false).unwrap_err().check,
            "null count"
        );
    }

    #[test]
    fn with_deletes_applied_counts_may_only_shrink() {
        let p = part(Some("eu"));
        let a = file(4, (100, 200), ("api", "web"), &p);
        let fewer = file(1, (100, 150), ("api", "db"), &p);
        assert_eq!(check(&schema(), &p, &[&a], &[&fewer], true), Ok(()));
        assert_eq!(check(&schema(), &p, &[&a], &[&fewer], false).unwrap_err().check, "null count");
        let more = file(5, (100, 200), ("api", "web"), &p);
        assert_eq!(check(&schema(), &p, &[&a], &[&more], true).unwrap_err().check, "null count");
        let wider = file(1, (99, 150), ("api", "db"), &p);
        assert_eq!(check(&schema(), &p, &[&a], &[&wider], true).unwrap_err().check, "lower bound");
    }
}
