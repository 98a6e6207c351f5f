//! Which delete files apply to which data files, as a rewrite of one partition must see it: by
//! partition (typed value and spec id, never the printed label), by sequence number, and by what
//! PyIceberg and DuckDB actually apply (position deletes naming files outside their partition,
//! equality deletes over NULLs). Pure: plain reads of the inventory's entries, no IO.
//!
//! Hazard: every question here fails closed. A delete that may apply and cannot be applied exactly
//! keeps its partition from being rewritten (`has_delete_files`); applying it could delete rows it does
//! not cover, not applying it could resurrect rows.

use std::collections::{HashMap, HashSet};

use iceberg::spec::Struct;
use iceberg::table::Table;

use crate::table::partition;
use crate::table::{Inventory, LiveFile};

/// A file's partition value typed as the current schema types it (see [`partition::coerce`]).
pub(super) fn typed_value(table: &Table, file: &LiveFile) -> Struct {
    let md = table.metadata();
    let value = file.entry.data_file().partition();
    match md.partition_spec_by_id(file.spec_id) {
        Some(spec) => partition::coerce(spec, md.current_schema(), value),
        None => value.clone(),
    }
}

/// The bit patterns of a partition value's floating-point fields (NaN canonical). `Struct` equality
/// goes through `OrderedFloat`, for which `-0.0 == 0.0`; identity partitions on a float column are two
/// partitions there (the reader fills the column from the partition value), as in Java's
/// `Double.compare`.
pub(super) fn float_bits(value: &Struct) -> Vec<u64> {
    use iceberg::spec::{Literal, PrimitiveLiteral};
    let canonical = |bits: u64, nan: bool| if nan { u64::MAX } else { bits };
    value
        .iter()
        .filter_map(|field| match field {
            Some(Literal::Primitive(PrimitiveLiteral::Float(f))) => {
                Some(canonical(u64::from(f.0.to_bits()), f.0.is_nan()))
            }
            Some(Literal::Primitive(PrimitiveLiteral::Double(d))) => {
                Some(canonical(d.0.to_bits(), d.0.is_nan()))
            }
            _ => None,
        })
        .collect()
}

/// Whether a delete file applies to every partition: its spec partitions nothing (no field, or only
/// `void` ones, as format v1 leaves a removed field), as Java's `PartitionSpec.isUnpartitioned` says.
/// A v1 table whose last field was removed writes its deletes under such a spec with a partition
/// tuple of one null: by that tuple alone it would look like a delete of the null partition only.
fn is_global(table: &Table, delete: &LiveFile) -> bool {
    delete.entry.data_file().partition().fields().is_empty()
        || table
            .metadata()
            .partition_spec_by_id(delete.spec_id)
            .is_some_and(|spec| spec.fields().iter().all(|f| f.transform == iceberg::spec::Transform::Void))
}

/// Whether a delete file may apply to rows of partition (`spec_id`, `value`). Fails closed: a delete
/// of an unpartitioned or all-void spec is global (as in Java), and so, here, is one of any other spec
/// than the partition's (it may name the partition's files; the partition is then not rewritten).
pub(super) fn delete_applies(table: &Table, delete: &LiveFile, spec_id: i32, value: &Struct) -> bool {
    let delete_value = typed_value(table, delete);
    is_global(table, delete)
        || delete.spec_id != spec_id
        || (delete_value == *value && float_bits(&delete_value) == float_bits(value))
}

/// Whether `delete` can be applied while rewriting partition (`spec_id`, `value`): a delete of an
/// unpartitioned spec, or of the partition's own spec and value. Any other delete that may apply
/// ([`delete_applies`]) makes the partition unrewritable (`has_delete_files`): applying it could
/// delete rows it does not cover (an equality delete of another spec), not applying it could
/// resurrect rows.
pub(super) fn delete_is_clean(table: &Table, delete: &LiveFile, spec_id: i32, value: &Struct) -> bool {
    let delete_value = typed_value(table, delete);
    delete.entry.data_file().partition().fields().is_empty()
        || (delete.spec_id == spec_id
            && delete_value == *value
            && float_bits(&delete_value) == float_bits(value))
}

/// A live file's data sequence number (0 for v1 entries, which have none).
fn data_seq(f: &LiveFile) -> i64 {
    f.entry.sequence_number().unwrap_or(0)
}

/// Whether delete `d` applies to data file `f` by sequence number (the spec's rule: position deletes
/// to data files of a sequence number at most theirs, equality deletes to strictly older ones).
pub(super) fn applies_by_seq(d: &LiveFile, f: &LiveFile) -> bool {
    match d.entry.content_type() {
        iceberg::spec::DataContentType::EqualityDeletes => data_seq(f) < data_seq(d),
        _ => data_seq(f) <= data_seq(d),
    }
}

/// Whether iceberg's reader applies delete `d` to data file `f` exactly as the spec does. Position
/// deletes it does. An equality delete it applies as the row filter `NOT (c1 = v1 AND …)`, which keeps a
/// row only where that is true: where one of the row's delete columns is NULL the filter is NULL and
/// the row is dropped (NULL equals no value: the row is live), and for a column the file lacks (added
/// after it was written, so NULL throughout) the filter is `false` for every row. So an equality
/// delete is applied only to files whose statistics show no NULL in every one of its columns; a
/// partition with any other file it applies to is left alone (`has_delete_files`).
///
/// Nor does the reader compare in the table's type: it casts the delete's values down to the type
/// the data file was written with (`try_cast_literal`, a NULL where the value does not fit), before
/// the file's columns are promoted. A long value beyond an `int` file's range then matches no row
/// and drops every row (`c != NULL`), and a double rounds to the float it does not equal. So an
/// equality delete is applied only when every schema the table ever had gives each of its columns
/// the current type (no promotion, so no file was written in another type).
pub(super) fn reader_applies_exactly(table: &Table, d: &LiveFile, f: &LiveFile) -> bool {
    if d.entry.content_type() != iceberg::spec::DataContentType::EqualityDeletes {
        return true;
    }
    let md = table.metadata();
    let current = md.current_schema();
    let never_promoted = |id: &i32| {
        let Some(now) = current.field_by_id(*id) else { return false };
        md.schemas_iter().all(|s| s.field_by_id(*id).is_none_or(|then| then.field_type == now.field_type))
    };
    let nulls = f.entry.data_file().null_value_counts();
    d.entry.data_file().equality_ids().is_some_and(|ids| {
        !ids.is_empty() && ids.iter().all(|id| nulls.get(id) == Some(&0) && never_promoted(id))
    })
}

/// Whether position delete `d` may name data file `f`, whatever their partitions: `d`'s `file_path`
/// bounds cover `f`'s path, or `d` has none. By the spec a position delete applies only to data files
/// of its own partition, but PyIceberg 0.12 and DuckDB 1.5 apply its entries to whichever file they
/// name: rewriting such a file (new path) or removing the delete would bring rows back for them. Java's
/// writers keep full `file_path` bounds, so a delete of one partition covers only that partition's paths.
pub(super) fn may_name(d: &LiveFile, f: &LiveFile) -> bool {
    use iceberg::metadata_columns::RESERVED_FIELD_ID_DELETE_FILE_PATH as FILE_PATH;
    use iceberg::spec::PrimitiveLiteral;
    // A delete names only files that existed when it was written (paths are never reused).
    if d.entry.content_type() != iceberg::spec::DataContentType::PositionDeletes || data_seq(f) > data_seq(d)
    {
        return false;
    }
    let file = d.entry.data_file();
    let bound =
        |bounds: &HashMap<i32, iceberg::spec::Datum>| match bounds.get(&FILE_PATH).map(|b| b.literal()) {
            Some(PrimitiveLiteral::String(s)) => Some(s.clone()),
            _ => None,
        };
    match (bound(file.lower_bounds()), bound(file.upper_bounds())) {
        // A truncated lower bound is a prefix (not above any value), a truncated upper bound is
        // incremented (not below any): the range covers every path named.
        (Some(lower), Some(upper)) => lower.as_str() <= f.path() && f.path() <= upper.as_str(),
        _ => true,
    }
}

/// Whether data file `f` lies in the scope of delete `d` (its partition, or everywhere for a delete of
/// an unpartitioned or all-void spec).
///
/// A delete of an all-void spec is applied only while rewriting its own (null) partition
/// ([`delete_is_clean`]); another spec's partition it applies to stays unrewritten (PyIceberg 0.12
/// does not apply it there, DuckDB and Java do: rewriting would change what one of them reads), but
/// it keeps the delete alive here.
fn in_scope(table: &Table, d: &LiveFile, f: &LiveFile) -> bool {
    is_global(table, d) || delete_is_clean(table, d, f.spec_id, &typed_value(table, f))
}

/// The deletes a rewrite of these inputs applied that afterwards apply to no live data file: none of
/// `remaining` (the table's live data files other than the inputs; the outputs carry the starting
/// sequence number, so no equality delete present at the start applies to them, and no position
/// delete names their new paths) is in a delete's scope and old enough for it, nor (a position delete)
/// outside its scope but possibly named by it ([`may_name`]).
pub(super) fn obsolete_deletes<'a>(
    table: &Table,
    deletes: impl Iterator<Item = &'a LiveFile>,
    remaining: &[&LiveFile],
) -> Vec<String> {
    deletes
        .filter(|d| {
            !remaining.iter().any(
                |f| {
                    if in_scope(table, d, f) { applies_by_seq(d, f) } else { may_name(d, f) }
                },
            )
        })
        .map(|d| d.path().to_string())
        .collect()
}

/// The live position deletes that may name a live data file outside their own scope ([`may_name`]).
/// PyIceberg and DuckDB apply such entries; PyIceberg only while the delete still attaches to a file
/// of its own partition. So no partition such a delete is clean for or may name is rewritten: the
/// delete keeps meaning to every reader what it meant before.
pub(super) fn crossing_deletes<'a>(table: &Table, inventory: &'a Inventory) -> HashSet<&'a str> {
    inventory
        .deletes
        .iter()
        .filter(|d| {
            inventory.data.iter().any(|f| {
                // Outside the partition the delete is applied in (not `in_scope`, which also counts
                // an all-void spec's reach): PyIceberg attaches a position delete only to files of its
                // own spec and partition.
                may_name(d, f) && !delete_is_clean(table, d, f.spec_id, &typed_value(table, f))
            })
        })
        .map(|d| d.path())
        .collect()
}
