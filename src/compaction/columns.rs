//! Making the reader's batches writable: what iceberg's reader returns is not always what its Parquet
//! writer accepts.
//!
//! Hazard (iceberg-rust 0.10.1): identity-partition columns come back as run-end-encoded constants
//! (filled from the manifest's partition tuple, not read from the file); the Parquet writer rejects
//! `RunEndEncoded` arrays. They are expanded into plain arrays of the value type here.
//!
//! Hazard: a file written before a field was added inside a struct (or a list/map of structs) cannot
//! be read with the current schema; it is read with its own nested shape ([`prune_nested`]) and its
//! batches widened to the current one ([`conform`]).

use std::collections::HashSet;
use std::sync::Arc;

use arrow_array::types::{Int16Type, Int32Type, Int64Type, RunEndIndexType};
use arrow_array::{
    Array, ArrayRef, LargeListArray, ListArray, MapArray, RecordBatch, RunArray, StructArray, cast::AsArray,
    new_null_array,
};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use iceberg::spec::{ListType, MapType, NestedFieldRef, Schema as IcebergSchema, StructType, Type};

/// Rows `start..start + len` of `batch`: a zero-copy slice, except that columns holding a list or a
/// map (at any depth inside structs) are copied. A sliced list or map keeps its parent's whole child
/// array, which iceberg's writer reads whole when it counts NaNs (`NanValueCountVisitor` reads
/// `values()`). The copy takes just the range, nulls as they are (`MutableArrayData`, as `concat`
/// copies): rebuilding through `take` re-validates structs and rejects a required struct inside an
/// optional one, as the Parquet reader builds them.
pub fn rows(batch: &RecordBatch, start: usize, len: usize) -> Result<RecordBatch, ArrowError> {
    fn holds_list_or_map(t: &DataType) -> bool {
        match t {
            DataType::List(_) | DataType::LargeList(_) | DataType::Map(..) => true,
            DataType::Struct(fields) => fields.iter().any(|f| holds_list_or_map(f.data_type())),
            _ => false,
        }
    }
    let columns = batch
        .columns()
        .iter()
        .map(|c| {
            if !holds_list_or_map(c.data_type()) {
                return c.slice(start, len);
            }
            let data = c.to_data();
            let mut copy = arrow_data::transform::MutableArrayData::new(vec![&data], false, len);
            copy.extend(0, start, start + len);
            arrow_array::make_array(copy.freeze())
        })
        .collect();
    RecordBatch::try_new(batch.schema(), columns)
}

/// `batch` with every top-level run-end-encoded column expanded into a plain array of its value type
/// (field name, nullability and metadata kept). Batches without such columns are returned as they are.
pub fn materialize(batch: RecordBatch) -> Result<RecordBatch, ArrowError> {
    let schema = batch.schema();
    if !schema.fields().iter().any(|f| matches!(f.data_type(), DataType::RunEndEncoded(..))) {
        return Ok(batch);
    }
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        match field.data_type() {
            DataType::RunEndEncoded(run_ends, values) => {
                let expanded = match run_ends.data_type() {
                    DataType::Int16 => expand(column.as_run::<Int16Type>())?,
                    DataType::Int32 => expand(column.as_run::<Int32Type>())?,
                    DataType::Int64 => expand(column.as_run::<Int64Type>())?,
                    other => {
                        return Err(ArrowError::InvalidArgumentError(format!(
                            "column {}: run-end type {other}",
                            field.name()
                        )));
                    }
                };
                fields.push(Arc::new(
                    Field::new(field.name(), values.data_type().clone(), field.is_nullable())
                        .with_metadata(field.metadata().clone()),
                ));
                columns.push(expanded);
            }
            _ => {
                fields.push(field.clone());
                columns.push(column.clone());
            }
        }
    }
    let schema = Schema::new_with_metadata(fields, schema.metadata().clone());
    RecordBatch::try_new(Arc::new(schema), columns)
}

/// Test fault (`failpoint::COMPACTION_SWAP_COLUMNS`, `test-util` builds only): the values of the first
/// two columns of the same type trade places, as a reader resolving columns by position would do.
#[cfg(feature = "test-util")]
pub fn swap_first_two_of_a_type(batch: RecordBatch) -> RecordBatch {
    let fields = batch.schema().fields().clone();
    for i in 0..fields.len() {
        for j in i + 1..fields.len() {
            if fields[i].data_type() == fields[j].data_type()
                && fields[i].is_nullable() == fields[j].is_nullable()
            {
                let mut columns = batch.columns().to_vec();
                columns.swap(i, j);
                return RecordBatch::try_new(batch.schema(), columns).unwrap_or(batch);
            }
        }
    }
    batch
}

fn expand<R: RunEndIndexType>(run: &RunArray<R>) -> Result<ArrayRef, ArrowError> {
    let logical: Vec<u32> = (0..run.len() as u32).collect();
    let physical: Vec<u32> = run.get_physical_indices(&logical)?.into_iter().map(|i| i as u32).collect();
    arrow_select::take::take(run.values().as_ref(), &arrow_array::UInt32Array::from(physical), None)
}

/// Every field id the Parquet schema carries (nested ones included).
pub fn parquet_field_ids(root: &parquet::schema::types::Type) -> HashSet<i32> {
    fn walk(t: &parquet::schema::types::Type, out: &mut HashSet<i32>) {
        if t.get_basic_info().has_id() {
            out.insert(t.get_basic_info().id());
        }
        if t.is_group() {
            for f in t.get_fields() {
                walk(f, out);
            }
        }
    }
    let mut out = HashSet::new();
    for f in root.get_fields() {
        walk(f, &mut out);
    }
    out
}

/// For every group of a Parquet schema that carries a field id: its children that carry one, as
/// (id, name), in file order.
pub type StructChildren = std::collections::HashMap<i32, Vec<(i32, String)>>;

pub fn parquet_struct_children(root: &parquet::schema::types::Type) -> StructChildren {
    fn walk(t: &parquet::schema::types::Type, out: &mut StructChildren) {
        if !t.is_group() {
            return;
        }
        if t.get_basic_info().has_id() {
            let children = t
                .get_fields()
                .iter()
                .filter(|c| c.get_basic_info().has_id())
                .map(|c| (c.get_basic_info().id(), c.name().to_string()))
                .collect();
            out.insert(t.get_basic_info().id(), children);
        }
        for f in t.get_fields() {
            walk(f, out);
        }
    }
    let mut out = StructChildren::new();
    for f in root.get_fields() {
        walk(f, &mut out);
    }
    out
}

/// The first struct (a struct column, a list element or a map value struct, by field id) whose
/// children the file names or orders differently from `schema` (compared on the children both have).
/// Such a file must not go through iceberg 0.10.1's struct cast, which pairs children by position
/// when their names differ.
pub fn nested_layout_mismatch(file: &StructChildren, schema: &IcebergSchema) -> Option<i32> {
    fn visit(field: &NestedFieldRef, file: &StructChildren) -> Option<i32> {
        match field.field_type.as_ref() {
            Type::Struct(st) => {
                if let Some(in_file) = file.get(&field.id) {
                    let ours: Vec<(i32, &str)> =
                        st.fields().iter().map(|c| (c.id, c.name.as_str())).collect();
                    let common_file: Vec<(i32, &str)> = in_file
                        .iter()
                        .filter(|(id, _)| ours.iter().any(|(o, _)| o == id))
                        .map(|(id, name)| (*id, name.as_str()))
                        .collect();
                    let common_ours: Vec<(i32, &str)> =
                        ours.iter().filter(|(id, _)| in_file.iter().any(|(f, _)| f == id)).copied().collect();
                    if common_file != common_ours {
                        return Some(field.id);
                    }
                }
                st.fields().iter().find_map(|c| visit(c, file))
            }
            Type::List(ListType { element_field }) => visit(element_field, file),
            Type::Map(MapType { key_field, value_field }) => {
                visit(key_field, file).or_else(|| visit(value_field, file))
            }
            Type::Primitive(_) => None,
        }
    }
    schema.as_struct().fields().iter().find_map(|f| visit(f, file))
}

/// Whether the schema has a struct, list or map column (the case [`prune_nested`] exists for).
/// The Arrow field carrying Parquet field id `id` (its `PARQUET:field_id` metadata), at any depth.
pub fn arrow_field_by_id(schema: &arrow_schema::Schema, id: i32) -> Option<&arrow_schema::Field> {
    fn find(field: &arrow_schema::Field, id: i32) -> Option<&arrow_schema::Field> {
        let own = field
            .metadata()
            .get(parquet::arrow::PARQUET_FIELD_ID_META_KEY)
            .and_then(|v| v.parse::<i32>().ok());
        if own == Some(id) {
            return Some(field);
        }
        use arrow_schema::DataType;
        match field.data_type() {
            DataType::Struct(children) => children.iter().find_map(|c| find(c, id)),
            DataType::List(child)
            | DataType::LargeList(child)
            | DataType::FixedSizeList(child, _)
            | DataType::Map(child, _) => find(child, id),
            _ => None,
        }
    }
    schema.fields().iter().find_map(|f| find(f, id))
}

pub fn has_nested(schema: &IcebergSchema) -> bool {
    schema.as_struct().fields().iter().any(|f| !f.field_type.is_primitive())
}

/// `schema` without the nested fields (inside structs, list elements and map values) a file lacks,
/// or `None` if it lacks none. Top-level columns are kept: the reader fills absent ones with nulls.
///
/// Hazard (iceberg-rust 0.10.1): reading a file written before a field was added inside a struct, a
/// list<struct> or a map value struct with the current schema fails (`Incorrect number of arrays for
/// StructArray fields`); reading it with its own shape and widening afterwards ([`conform`]) works.
pub fn prune_nested(schema: &IcebergSchema, present: &HashSet<i32>) -> Option<IcebergSchema> {
    fn prune_type(t: &Type, present: &HashSet<i32>, pruned: &mut bool) -> Type {
        match t {
            Type::Struct(s) => {
                let mut kept: Vec<NestedFieldRef> = Vec::with_capacity(s.fields().len());
                for f in s.fields() {
                    if present.contains(&f.id) {
                        kept.push(prune_field(f, present, pruned));
                    } else {
                        *pruned = true;
                    }
                }
                Type::Struct(StructType::new(kept))
            }
            Type::List(l) => Type::List(ListType::new(prune_field(&l.element_field, present, pruned))),
            Type::Map(m) => Type::Map(MapType::new(
                prune_field(&m.key_field, present, pruned),
                prune_field(&m.value_field, present, pruned),
            )),
            p => p.clone(),
        }
    }
    fn prune_field(f: &NestedFieldRef, present: &HashSet<i32>, pruned: &mut bool) -> NestedFieldRef {
        let mut field = f.as_ref().clone();
        field.field_type = Box::new(prune_type(&f.field_type, present, pruned));
        Arc::new(field)
    }
    let mut pruned = false;
    let fields: Vec<NestedFieldRef> = schema
        .as_struct()
        .fields()
        .iter()
        .map(|f| if present.contains(&f.id) { prune_field(f, present, &mut pruned) } else { f.clone() })
        .collect();
    if !pruned {
        return None;
    }
    IcebergSchema::builder()
        .with_schema_id(schema.schema_id())
        .with_identifier_field_ids(schema.identifier_field_ids())
        .with_fields(fields)
        .build()
        .ok()
}

/// `batch` with every column whose type differs from `target`'s (nested fields missing from an older
/// file) widened to it, the missing nested fields filled with nulls.
pub fn conform(batch: RecordBatch, target: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    let schema = batch.schema();
    if schema.fields().len() != target.fields().len()
        || schema.fields().iter().zip(target.fields()).all(|(a, b)| a.data_type() == b.data_type())
    {
        return Ok(batch);
    }
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for ((field, column), want) in schema.fields().iter().zip(batch.columns()).zip(target.fields()) {
        if field.data_type() == want.data_type() || !field.data_type().is_nested() {
            fields.push(field.clone());
            columns.push(column.clone());
        } else {
            columns.push(widen(column, want.data_type())?);
            fields.push(want.clone());
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())), columns)
}

fn widen(array: &ArrayRef, target: &DataType) -> Result<ArrayRef, ArrowError> {
    if array.data_type() == target {
        return Ok(array.clone());
    }
    match (array.data_type(), target) {
        (DataType::Struct(have), DataType::Struct(want)) => {
            let s = array.as_struct();
            let children = want
                .iter()
                .map(|w| match have.iter().position(|h| h.name() == w.name()) {
                    Some(i) => widen(s.column(i), w.data_type()),
                    None => Ok(new_null_array(w.data_type(), s.len())),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Arc::new(StructArray::try_new(want.clone(), children, s.nulls().cloned())?))
        }
        (DataType::List(_), DataType::List(want)) => {
            let l = array.as_list::<i32>();
            let values = widen(l.values(), want.data_type())?;
            Ok(Arc::new(ListArray::try_new(want.clone(), l.offsets().clone(), values, l.nulls().cloned())?))
        }
        (DataType::LargeList(_), DataType::LargeList(want)) => {
            let l = array.as_list::<i64>();
            let values = widen(l.values(), want.data_type())?;
            Ok(Arc::new(LargeListArray::try_new(
                want.clone(),
                l.offsets().clone(),
                values,
                l.nulls().cloned(),
            )?))
        }
        (DataType::Map(_, _), DataType::Map(want, sorted)) => {
            let m = array.as_map();
            let entries = widen(&(Arc::new(m.entries().clone()) as ArrayRef), want.data_type())?;
            Ok(Arc::new(MapArray::try_new(
                want.clone(),
                m.offsets().clone(),
                entries.as_struct().clone(),
                m.nulls().cloned(),
                *sorted,
            )?))
        }
        (have, want) => Err(ArrowError::SchemaError(format!("cannot widen {have} to {want}"))),
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::{Int32Array, Int64Array, StringArray};

    use super::*;

    #[test]
    fn a_struct_missing_an_added_field_is_widened_with_nulls() {
        use arrow_array::StructArray;
        let a = Arc::new(Field::new("a", DataType::Int32, true));
        let b = Arc::new(Field::new("b", DataType::Utf8, true));
        let old =
            StructArray::try_new(vec![a.clone()].into(), vec![Arc::new(Int32Array::from(vec![1, 2]))], None)
                .unwrap();
        let old_schema = Schema::new(vec![Field::new("s", old.data_type().clone(), true)]);
        let batch = RecordBatch::try_new(Arc::new(old_schema), vec![Arc::new(old)]).unwrap();
        let want = DataType::Struct(vec![a, b].into());
        let target = Arc::new(Schema::new(vec![Field::new("s", want.clone(), true)]));
        let out = conform(batch, &target).unwrap();
        assert_eq!(out.column(0).data_type(), &want);
        let s = out.column(0).as_struct();
        assert_eq!(s.column(0).as_primitive::<Int32Type>().values().to_vec(), vec![1, 2]);
        assert_eq!(s.column(1).null_count(), 2);
    }

    #[test]
    fn run_end_encoded_constants_become_plain_arrays() {
        let run = RunArray::<Int32Type>::try_new(
            &Int32Array::from(vec![2, 5]),
            &StringArray::from(vec![Some("eu"), None]),
        )
        .unwrap();
        let ree_field = Field::new("region", run.data_type().clone(), true)
            .with_metadata([("PARQUET:field_id".to_string(), "3".to_string())].into());
        let schema = Schema::new(vec![Field::new("id", DataType::Int64, false), ree_field]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5])), Arc::new(run)],
        )
        .unwrap();
        let out = materialize(batch.slice(1, 4)).unwrap();
        let field = out.schema().field(1).clone();
        assert_eq!(field.data_type(), &DataType::Utf8);
        assert_eq!(field.metadata()["PARQUET:field_id"], "3");
        let values = out.column(1).as_string::<i32>();
        let got: Vec<Option<&str>> = values.iter().collect();
        assert_eq!(got, vec![Some("eu"), None, None, None]);
    }
}
