//! Arrow schemas and arrays of LeRobot's parquet files: building them (writer) and pulling typed
//! values out of whatever a producer wrote (reader: f32/f64, fixed or variable lists, int widths).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, FixedSizeListArray, Float32Array, Int64Array,
    RecordBatch, StringArray, StructArray,
};
use arrow::datatypes::{DataType, Field, Fields, Float32Type, Float64Type, Int64Type, Schema};
use parquet::schema::types::ColumnPath;

use crate::error::DatasetError;
use crate::json::Oj;
use crate::spec::{DEFAULT_KEYS, DatasetSpec, Format};

/// Name of the child field of list columns (what pyarrow ≥ 13 / HF datasets write).
const LIST_ITEM: &str = "element";

fn list_item(dt: DataType) -> Arc<Field> {
    Arc::new(Field::new(LIST_ITEM, dt, true))
}

/// Fields of `struct<bytes: binary, path: string>`: HF datasets' `Image()` feature.
fn image_fields() -> Fields {
    Fields::from(vec![
        Field::new("bytes", DataType::Binary, true),
        Field::new("path", DataType::Utf8, true),
    ])
}

/// `struct<bytes: binary, path: string>`.
pub(crate) fn image_type() -> DataType {
    DataType::Struct(image_fields())
}

/// `fixed_size_list<element: float>[dim]`.
fn vector_type(dim: usize) -> DataType {
    DataType::FixedSizeList(list_item(DataType::Float32), dim as i32)
}

/// HF datasets' `huggingface` schema metadata, so `datasets` decodes images as `Image()` and
/// vectors as fixed-length sequences. v2.1 uses the datasets 3.x spelling (`Sequence`, what
/// lerobot 0.3 wrote), v3.0 the datasets 4.x one (`List`).
fn hf_features_json(format: Format, spec: &DatasetSpec) -> String {
    let list = match format {
        Format::LeRobotV21 => "Sequence",
        Format::LeRobotV30 => "List",
    };
    let value = |dtype: &str| Oj::obj([("dtype", Oj::v(dtype)), ("_type", Oj::v("Value"))]);
    let seq = |dim: usize| {
        Oj::obj([
            ("feature", value("float32")),
            ("length", Oj::v(dim)),
            ("_type", Oj::v(list)),
        ])
    };
    let mut feats = vec![
        (
            crate::spec::STATE_KEY.to_string(),
            seq(spec.state_names.len()),
        ),
        (
            crate::spec::ACTION_KEY.to_string(),
            seq(spec.action_names.len()),
        ),
    ];
    if !spec.video {
        for i in 0..spec.cameras.len() {
            feats.push((spec.camera_key(i), Oj::obj([("_type", Oj::v("Image"))])));
        }
    }
    for key in DEFAULT_KEYS {
        let dt = if key == "timestamp" {
            "float32"
        } else {
            "int64"
        };
        feats.push((key.to_string(), value(dt)));
    }
    let root = Oj::obj([("info", Oj::obj([("features", Oj::O(feats))]))]);
    let mut line = crate::io::to_json_line(&root);
    line.pop();
    String::from_utf8_lossy(&line).into_owned()
}

/// Schema of the data parquet files (both formats): state, action, image columns, bookkeeping.
pub(crate) fn data_schema(format: Format, spec: &DatasetSpec) -> Arc<Schema> {
    let mut fields = vec![
        Field::new(
            crate::spec::STATE_KEY,
            vector_type(spec.state_names.len()),
            true,
        ),
        Field::new(
            crate::spec::ACTION_KEY,
            vector_type(spec.action_names.len()),
            true,
        ),
    ];
    if !spec.video {
        for i in 0..spec.cameras.len() {
            fields.push(Field::new(spec.camera_key(i), image_type(), true));
        }
    }
    fields.push(Field::new("timestamp", DataType::Float32, true));
    for key in &DEFAULT_KEYS[1..] {
        fields.push(Field::new(*key, DataType::Int64, true));
    }
    let metadata = HashMap::from([("huggingface".to_string(), hf_features_json(format, spec))]);
    Arc::new(Schema::new_with_metadata(fields, metadata))
}

/// Leaf columns holding PNG bytes (no dictionary, no statistics).
pub(crate) fn image_byte_columns(spec: &DatasetSpec) -> Vec<ColumnPath> {
    if spec.video {
        return vec![];
    }
    (0..spec.cameras.len())
        .map(|i| ColumnPath::new(vec![spec.camera_key(i), "bytes".to_string()]))
        .collect()
}

/// Per-frame values of one episode, ready to become a record batch.
pub(crate) struct EpisodeColumns<'a> {
    pub state: Vec<f32>,
    pub action: Vec<f32>,
    /// `pngs[camera][frame]`.
    pub pngs: Vec<Vec<Vec<u8>>>,
    pub timestamps: Vec<f32>,
    pub episode_index: i64,
    pub global_start: i64,
    pub task_index: i64,
    pub spec: &'a DatasetSpec,
}

/// Builds the data record batch of one episode.
pub(crate) fn episode_batch(
    path: &Path,
    schema: &Arc<Schema>,
    c: EpisodeColumns<'_>,
) -> Result<RecordBatch, DatasetError> {
    let n = c.timestamps.len();
    let vec_col = |values: Vec<f32>, dim: usize| -> Result<ArrayRef, DatasetError> {
        let arr = FixedSizeListArray::try_new(
            list_item(DataType::Float32),
            dim as i32,
            Arc::new(Float32Array::from(values)),
            None,
        )
        .map_err(|e| DatasetError::arrow(path, e))?;
        Ok(Arc::new(arr))
    };
    let mut cols: Vec<ArrayRef> = vec![
        vec_col(c.state, c.spec.state_names.len())?,
        vec_col(c.action, c.spec.action_names.len())?,
    ];
    for pngs in c.pngs {
        let bytes: BinaryArray = pngs.iter().map(|p| Some(p.as_slice())).collect();
        let paths = StringArray::from(vec![None::<&str>; n]);

        let s = StructArray::try_new(image_fields(), vec![Arc::new(bytes), Arc::new(paths)], None)
            .map_err(|e| DatasetError::arrow(path, e))?;
        cols.push(Arc::new(s));
    }
    cols.push(Arc::new(Float32Array::from(c.timestamps)));
    cols.push(Arc::new(Int64Array::from_iter_values(0..n as i64)));
    cols.push(Arc::new(Int64Array::from(vec![c.episode_index; n])));
    cols.push(Arc::new(Int64Array::from_iter_values(
        c.global_start..c.global_start + n as i64,
    )));
    cols.push(Arc::new(Int64Array::from(vec![c.task_index; n])));
    RecordBatch::try_new(schema.clone(), cols).map_err(|e| DatasetError::arrow(path, e))
}

/// Looks a column up by name.
pub(crate) fn column<'a>(
    path: &Path,
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a ArrayRef, DatasetError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| DatasetError::format(path, name, "column missing"))
}

fn no_nulls(path: &Path, name: &str, a: &dyn Array) -> Result<(), DatasetError> {
    if a.null_count() > 0 {
        return Err(DatasetError::format(
            path,
            name,
            format!("{} null values", a.null_count()),
        ));
    }
    Ok(())
}

/// Numeric array → f32 values (float32/float64/integers).
fn numeric_to_f32(path: &Path, name: &str, a: &ArrayRef) -> Result<Vec<f32>, DatasetError> {
    no_nulls(path, name, a.as_ref())?;
    match a.data_type() {
        DataType::Float32 => Ok(a.as_primitive::<Float32Type>().values().to_vec()),
        DataType::Float64 => Ok(a
            .as_primitive::<Float64Type>()
            .values()
            .iter()
            .map(|&v| v as f32)
            .collect()),
        dt if dt.is_integer() || dt == &DataType::Boolean => {
            let c = arrow::compute::cast(a, &DataType::Float32)
                .map_err(|e| DatasetError::arrow(path, e))?;
            Ok(c.as_primitive::<Float32Type>().values().to_vec())
        }
        other => Err(DatasetError::format(
            path,
            name,
            format!("expected numbers, found {other}"),
        )),
    }
}

/// Scalar numeric column → f32 per row.
pub(crate) fn f32_column(path: &Path, name: &str, a: &ArrayRef) -> Result<Vec<f32>, DatasetError> {
    match a.data_type() {
        DataType::FixedSizeList(_, 1) | DataType::List(_) | DataType::LargeList(_) => {
            let (v, dim) = f32_matrix(path, name, a)?;
            if dim != 1 {
                return Err(DatasetError::format(
                    path,
                    name,
                    format!("expected a scalar, found vectors of {dim}"),
                ));
            }
            Ok(v)
        }
        _ => numeric_to_f32(path, name, a),
    }
}

/// Scalar numeric column → f64 per row (float64 kept exact).
pub(crate) fn f32_column_f64(
    path: &Path,
    name: &str,
    a: &ArrayRef,
) -> Result<Vec<f64>, DatasetError> {
    no_nulls(path, name, a.as_ref())?;
    match a.data_type() {
        DataType::Float64 => Ok(a.as_primitive::<Float64Type>().values().to_vec()),
        _ => Ok(numeric_to_f32(path, name, a)?
            .into_iter()
            .map(f64::from)
            .collect()),
    }
}

/// Integer column (any width, or a 1-element list) → i64 per row.
pub(crate) fn i64_column(path: &Path, name: &str, a: &ArrayRef) -> Result<Vec<i64>, DatasetError> {
    no_nulls(path, name, a.as_ref())?;
    let a = match a.data_type() {
        DataType::FixedSizeList(_, 1) => a.as_fixed_size_list().values().clone(),
        _ => a.clone(),
    };
    if a.data_type() == &DataType::Int64 {
        return Ok(a.as_primitive::<Int64Type>().values().to_vec());
    }
    if !a.data_type().is_integer() {
        return Err(DatasetError::format(
            path,
            name,
            format!("expected integers, found {}", a.data_type()),
        ));
    }
    let c = arrow::compute::cast(&a, &DataType::Int64).map_err(|e| DatasetError::arrow(path, e))?;
    Ok(c.as_primitive::<Int64Type>().values().to_vec())
}

/// Vector column (fixed-size or variable lists of floats) → row-major f32 values and dimension.
pub(crate) fn f32_matrix(
    path: &Path,
    name: &str,
    a: &ArrayRef,
) -> Result<(Vec<f32>, usize), DatasetError> {
    no_nulls(path, name, a.as_ref())?;
    let n = a.len();
    match a.data_type() {
        DataType::FixedSizeList(_, dim) => {
            let l = a.as_fixed_size_list();
            Ok((numeric_to_f32(path, name, l.values())?, *dim as usize))
        }
        DataType::List(_) | DataType::LargeList(_) => {
            let (offsets, values): (Vec<usize>, &ArrayRef) = match a.data_type() {
                DataType::List(_) => {
                    let l = a.as_list::<i32>();
                    (
                        l.value_offsets().iter().map(|&o| o as usize).collect(),
                        l.values(),
                    )
                }
                _ => {
                    let l = a.as_list::<i64>();
                    (
                        l.value_offsets().iter().map(|&o| o as usize).collect(),
                        l.values(),
                    )
                }
            };
            let (first, last) = (offsets[0], offsets[n]);
            let dim = if n == 0 { 0 } else { offsets[1] - offsets[0] };
            if offsets.windows(2).any(|w| w[1] - w[0] != dim) {
                return Err(DatasetError::format(
                    path,
                    name,
                    "rows have different vector lengths",
                ));
            }
            let v = numeric_to_f32(path, name, &values.slice(first, last - first))?;
            Ok((v, dim))
        }
        DataType::Float32 | DataType::Float64 => Ok((numeric_to_f32(path, name, a)?, 1)),
        other => Err(DatasetError::format(
            path,
            name,
            format!("expected a float vector column, found {other}"),
        )),
    }
}

/// One stored image: PNG bytes and/or a path.
pub(crate) struct StoredImage<'a> {
    pub bytes: Option<&'a [u8]>,
    pub path: Option<&'a str>,
}

/// Image column (`struct<bytes, path>`) → per-row bytes/path.
pub(crate) fn image_column<'a>(
    path: &Path,
    name: &str,
    a: &'a ArrayRef,
) -> Result<Vec<StoredImage<'a>>, DatasetError> {
    let s = a.as_struct_opt().ok_or_else(|| {
        DatasetError::format(
            path,
            name,
            format!("expected struct<bytes, path>, found {}", a.data_type()),
        )
    })?;
    let bytes = s.column_by_name("bytes");
    let paths = s.column_by_name("path");
    let mut out = Vec::with_capacity(s.len());
    for i in 0..s.len() {
        let b = match bytes {
            Some(b) if b.is_valid(i) => match b.data_type() {
                DataType::Binary => Some(b.as_binary::<i32>().value(i)),
                DataType::LargeBinary => Some(b.as_binary::<i64>().value(i)),
                DataType::BinaryView => Some(b.as_binary_view().value(i)),
                _ => None,
            },
            _ => None,
        };
        let p = match paths {
            Some(p) if p.is_valid(i) => match p.data_type() {
                DataType::Utf8 => Some(p.as_string::<i32>().value(i)),
                DataType::LargeUtf8 => Some(p.as_string::<i64>().value(i)),
                DataType::Utf8View => Some(p.as_string_view().value(i)),
                _ => None,
            },
            _ => None,
        };
        out.push(StoredImage {
            bytes: b.filter(|b| !b.is_empty()),
            path: p.filter(|p| !p.is_empty()),
        });
    }
    Ok(out)
}

/// String column → per-row strings (utf8 / large utf8 / view).
pub(crate) fn string_column(
    path: &Path,
    name: &str,
    a: &ArrayRef,
) -> Result<Vec<Option<String>>, DatasetError> {
    let get = |i: usize| -> Option<String> {
        if !a.is_valid(i) {
            return None;
        }
        match a.data_type() {
            DataType::Utf8 => Some(a.as_string::<i32>().value(i).to_string()),
            DataType::LargeUtf8 => Some(a.as_string::<i64>().value(i).to_string()),
            DataType::Utf8View => Some(a.as_string_view().value(i).to_string()),
            _ => None,
        }
    };
    if !matches!(
        a.data_type(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    ) {
        return Err(DatasetError::format(
            path,
            name,
            format!("expected strings, found {}", a.data_type()),
        ));
    }
    Ok((0..a.len()).map(get).collect())
}

/// List-of-strings column → per-row string lists.
pub(crate) fn string_list_column(
    path: &Path,
    name: &str,
    a: &ArrayRef,
) -> Result<Vec<Vec<String>>, DatasetError> {
    let mut out = Vec::with_capacity(a.len());
    for i in 0..a.len() {
        let v: ArrayRef = match a.data_type() {
            DataType::List(_) => a.as_list::<i32>().value(i),
            DataType::LargeList(_) => a.as_list::<i64>().value(i),
            DataType::FixedSizeList(_, _) => a.as_fixed_size_list().value(i),
            other => {
                return Err(DatasetError::format(
                    path,
                    name,
                    format!("expected a list of strings, found {other}"),
                ));
            }
        };
        out.push(
            string_column(path, name, &v)?
                .into_iter()
                .flatten()
                .collect(),
        );
    }
    Ok(out)
}

/// Any (nested) numeric list cell → flat f64 values (for per-episode stats columns).
pub(crate) fn flat_f64(a: &ArrayRef) -> Option<Vec<f64>> {
    match a.data_type() {
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _) => {
            let mut out = Vec::new();
            for i in 0..a.len() {
                let v = match a.data_type() {
                    DataType::List(_) => a.as_list::<i32>().value(i),
                    DataType::LargeList(_) => a.as_list::<i64>().value(i),
                    _ => a.as_fixed_size_list().value(i),
                };
                out.extend(flat_f64(&v)?);
            }
            Some(out)
        }
        dt if dt.is_numeric() => {
            let c = arrow::compute::cast(a, &DataType::Float64).ok()?;
            Some(c.as_primitive::<Float64Type>().values().to_vec())
        }
        _ => None,
    }
}

/// Row `row` of any common arrow array as JSON (structs → objects, lists → arrays); types
/// without a JSON counterpart become their display string.
pub(crate) fn cell_json(a: &ArrayRef, row: usize) -> serde_json::Value {
    use serde_json::Value;
    if a.is_null(row) {
        return Value::Null;
    }
    let list = |v: ArrayRef| Value::Array((0..v.len()).map(|i| cell_json(&v, i)).collect());
    match a.data_type() {
        DataType::Boolean => Value::Bool(a.as_boolean().value(row)),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let v = match a.data_type() {
                DataType::Utf8 => a.as_string::<i32>().value(row),
                DataType::LargeUtf8 => a.as_string::<i64>().value(row),
                _ => a.as_string_view().value(row),
            };
            Value::String(v.to_string())
        }
        DataType::List(_) => list(a.as_list::<i32>().value(row)),
        DataType::LargeList(_) => list(a.as_list::<i64>().value(row)),
        DataType::FixedSizeList(_, _) => list(a.as_fixed_size_list().value(row)),
        DataType::Struct(fields) => {
            let s = a.as_struct();
            Value::Object(
                fields
                    .iter()
                    .zip(s.columns())
                    .map(|(f, c)| (f.name().clone(), cell_json(c, row)))
                    .collect(),
            )
        }
        dt if dt.is_integer() => match arrow::compute::cast(&a.slice(row, 1), &DataType::Int64) {
            Ok(c) => Value::from(c.as_primitive::<Int64Type>().value(0)),
            Err(_) => Value::Null,
        },
        dt if dt.is_floating() => {
            match arrow::compute::cast(&a.slice(row, 1), &DataType::Float64) {
                Ok(c) => Value::from(c.as_primitive::<Float64Type>().value(0)),
                Err(_) => Value::Null,
            }
        }
        _ => Value::String(format!("{:?}", a.slice(row, 1))),
    }
}
