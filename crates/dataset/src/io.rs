//! File plumbing: atomic writes (temp name + rename), deterministic parquet writing, parquet
//! reading with column projection and row selection, and Python-style compact JSON.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReaderBuilder, RowSelection, RowSelector};
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::error::DatasetError;

/// Suffix of in-progress files. Never matches `*.parquet` / `*.json*` globs of readers.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

/// `created_by` of every parquet file we write: fixed, so files are reproducible byte for byte.
pub(crate) const CREATED_BY: &str = "bicameral-dataset (parquet-rs 58.4.1)";

/// Path of the temporary file used while writing `path`.
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(TMP_SUFFIX);
    path.with_file_name(name)
}

/// Creates `dir` and its parents.
pub(crate) fn create_dir_all(dir: &Path) -> Result<(), DatasetError> {
    fs::create_dir_all(dir).map_err(|e| DatasetError::io(dir, e))
}

/// Writes `bytes` to `path` atomically: `path.tmp`, fsync, rename over `path`.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), DatasetError> {
    if let Some(parent) = path.parent() {
        create_dir_all(parent)?;
    }
    let tmp = tmp_path(path);
    {
        let mut f = fs::File::create(&tmp).map_err(|e| DatasetError::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| DatasetError::io(&tmp, e))?;
        f.sync_all().map_err(|e| DatasetError::io(&tmp, e))?;
    }
    fs::rename(&tmp, path).map_err(|e| DatasetError::io(path, e))?;
    Ok(())
}

/// Appends `bytes` (whole JSON lines) to `path` with one write call, then fsyncs.
pub(crate) fn append(path: &Path, bytes: &[u8]) -> Result<(), DatasetError> {
    if let Some(parent) = path.parent() {
        create_dir_all(parent)?;
    }
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| DatasetError::io(path, e))?;
    f.write_all(bytes).map_err(|e| DatasetError::io(path, e))?;
    f.sync_data().map_err(|e| DatasetError::io(path, e))?;
    Ok(())
}

/// Reads a whole file.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, DatasetError> {
    fs::read(path).map_err(|e| DatasetError::io(path, e))
}

/// Reads and parses a JSON file.
pub(crate) fn read_json(path: &Path) -> Result<serde_json::Value, DatasetError> {
    let bytes = read(path)?;
    serde_json::from_slice(&bytes).map_err(|e| DatasetError::json(path, e))
}

/// Removes a file if it exists.
pub(crate) fn remove_file_if_exists(path: &Path) -> Result<(), DatasetError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DatasetError::io(path, e)),
    }
}

/// All regular files under `dir` (recursive), sorted.
pub(crate) fn walk_files(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(DatasetError::io(&d, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| DatasetError::io(&d, e))?;
            let ft = entry
                .file_type()
                .map_err(|e| DatasetError::io(entry.path(), e))?;
            if ft.is_dir() {
                stack.push(entry.path());
            } else {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// JSON pretty-printed like Python's `json.dump(indent=4)` (what LeRobot writes for info.json).
pub(crate) fn to_pretty_json(v: &impl serde::Serialize) -> Vec<u8> {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    // Serializing a Value into a Vec cannot fail.
    let _ = serde::Serialize::serialize(v, &mut ser);
    out
}

/// Python's `json.dumps` default separators (`", "` and `": "`), as in LeRobot's JSON-lines.
struct PyCompact;

impl serde_json::ser::Formatter for PyCompact {
    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }
    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> std::io::Result<()> {
        writer.write_all(b": ")
    }
}

/// One JSON line (with trailing newline) in Python's compact style.
pub(crate) fn to_json_line(v: &impl serde::Serialize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PyCompact);
    let _ = serde::Serialize::serialize(v, &mut ser);
    out.push(b'\n');
    out
}

/// Writer settings shared by every parquet file: snappy (pandas' default), fixed `created_by`,
/// row groups only where we flush, `extra_kv` (e.g. `huggingface`, `pandas`) in the footer.
/// `binary_columns` (PNG bytes) get no dictionary and no min/max statistics.
fn writer_props(extra_kv: Vec<KeyValue>, binary_columns: &[ColumnPath]) -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_created_by(CREATED_BY.to_string())
        .set_max_row_group_row_count(None)
        .set_key_value_metadata(if extra_kv.is_empty() {
            None
        } else {
            Some(extra_kv)
        });
    for c in binary_columns {
        b = b
            .set_column_dictionary_enabled(c.clone(), false)
            .set_column_statistics_enabled(c.clone(), EnabledStatistics::None);
    }
    b.build()
}

/// Encodes `batches` as one parquet file, one row group per batch.
pub(crate) fn encode_parquet(
    path: &Path,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    binary_columns: &[ColumnPath],
) -> Result<Vec<u8>, DatasetError> {
    let kv: Vec<KeyValue> = schema
        .metadata()
        .iter()
        .map(|(k, v)| (k.clone(), KeyValue::new(k.clone(), v.clone())))
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_values()
        .collect();
    let props = writer_props(kv, binary_columns);
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, schema.clone(), Some(props))
        .map_err(|e| DatasetError::parquet(path, e))?;
    for b in batches {
        w.write(b).map_err(|e| DatasetError::parquet(path, e))?;
        w.flush().map_err(|e| DatasetError::parquet(path, e))?;
    }
    w.close().map_err(|e| DatasetError::parquet(path, e))?;
    Ok(buf)
}

/// Encodes and atomically writes a parquet file (see [`encode_parquet`]). Returns its size.
pub(crate) fn write_parquet(
    path: &Path,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    binary_columns: &[ColumnPath],
) -> Result<u64, DatasetError> {
    let bytes = encode_parquet(path, schema, batches, binary_columns)?;
    write_atomic(path, &bytes)?;
    Ok(bytes.len() as u64)
}

/// What to read from a parquet file.
#[derive(Default)]
pub(crate) struct ReadRequest<'a> {
    /// Top-level columns to read (by name); `None` = all. Missing names are skipped.
    pub columns: Option<&'a [&'a str]>,
    /// Rows `[start, end)` of the whole file to read; `None` = all.
    pub rows: Option<(usize, usize)>,
}

/// Reads (part of) a parquet file into one record batch per row group touched.
/// Returns the file's arrow schema (all columns, with metadata) and the batches.
pub(crate) fn read_parquet(
    path: &Path,
    req: &ReadRequest<'_>,
) -> Result<(SchemaRef, Vec<RecordBatch>), DatasetError> {
    let file = fs::File::open(path).map_err(|e| DatasetError::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| DatasetError::parquet(path, e))?;
    let full_schema = builder.schema().clone();
    let mut builder = builder;
    if let Some(cols) = req.columns {
        let roots: Vec<usize> = full_schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| cols.contains(&f.name().as_str()))
            .map(|(i, _)| i)
            .collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        builder = builder.with_projection(mask);
    }
    if let Some((start, end)) = req.rows {
        // Pick the row groups overlapping [start, end) and select rows inside them.
        let meta = builder.metadata().clone();
        let mut groups = Vec::new();
        let mut selectors = Vec::new();
        let mut offset = 0usize;
        for (i, rg) in meta.row_groups().iter().enumerate() {
            let n = rg.num_rows() as usize;
            let (a, b) = (offset, offset + n);
            offset = b;
            if b <= start || a >= end {
                continue;
            }
            groups.push(i);
            let s = start.max(a) - a;
            let e = end.min(b) - a;
            if s > 0 {
                selectors.push(RowSelector::skip(s));
            }
            selectors.push(RowSelector::select(e - s));
            if e < n {
                selectors.push(RowSelector::skip(n - e));
            }
        }
        if end > offset {
            return Err(DatasetError::format(
                path,
                "rows",
                format!("rows {start}..{end} requested, file has {offset}"),
            ));
        }
        builder = builder
            .with_row_groups(groups)
            .with_row_selection(RowSelection::from(selectors));
    }
    let reader = builder
        .with_batch_size(1 << 20)
        .build()
        .map_err(|e| DatasetError::parquet(path, e))?;
    let mut batches = Vec::new();
    for b in reader {
        batches.push(b.map_err(|e| DatasetError::arrow(path, e))?);
    }
    Ok((full_schema, batches))
}

/// Concatenates batches (all with the same schema) into one.
pub(crate) fn concat(
    path: &Path,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<RecordBatch, DatasetError> {
    let schema = batches
        .first()
        .map(|b| b.schema())
        .unwrap_or_else(|| Arc::clone(schema));
    arrow::compute::concat_batches(&schema, batches).map_err(|e| DatasetError::arrow(path, e))
}
