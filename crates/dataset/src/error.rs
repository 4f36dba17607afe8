//! Typed errors of the dataset crate: every variant names the file, field or episode concerned.

use std::path::PathBuf;

/// Everything that can go wrong writing or reading a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// An operating-system I/O error on `path` (create, read, write, rename, remove).
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The parquet library failed to read or write `path`.
    #[error("{path}: parquet: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// Building or slicing arrow arrays for `path` failed.
    #[error("{path}: arrow: {source}")]
    Arrow {
        path: PathBuf,
        #[source]
        source: arrow::error::ArrowError,
    },
    /// `path` is not valid JSON (or not the expected JSON shape).
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A dataset file is readable but its content is wrong: `field` names the key/column.
    #[error("{path}: {field}: {problem}")]
    Format {
        path: PathBuf,
        field: String,
        problem: String,
    },
    /// `create` was pointed at a non-empty directory that is not a LeRobot dataset.
    #[error(
        "{dir}: directory is not empty and is not a LeRobot dataset (no meta/info.json); refusing to write into it"
    )]
    NotADataset { dir: PathBuf },
    /// `create` without `resume` was pointed at an existing dataset.
    #[error("{dir}: a dataset already exists here; pass resume=true to continue it")]
    AlreadyExists { dir: PathBuf },
    /// `resume` found a dataset whose format or features differ from the requested ones.
    #[error("{dir}: cannot resume: {problem}")]
    ResumeMismatch { dir: PathBuf, problem: String },
    /// The [`crate::DatasetSpec`] is unusable.
    #[error("invalid dataset spec: {field}: {problem}")]
    InvalidSpec { field: String, problem: String },
    /// One frame of an episode handed to the writer is wrong.
    #[error("episode {episode}, frame {frame}: {field}: {problem}")]
    InvalidFrame {
        episode: usize,
        frame: usize,
        field: String,
        problem: String,
    },
    /// An episode handed to the writer is wrong as a whole (e.g. no frames, empty task).
    #[error("episode {episode}: {field}: {problem}")]
    InvalidEpisode {
        episode: usize,
        field: String,
        problem: String,
    },
    /// An episode, frame or horizon argument outside the dataset.
    #[error("{what} {index} out of range (valid: {valid})")]
    OutOfRange {
        what: &'static str,
        index: usize,
        valid: String,
    },
    /// A stored image could not be decoded (or encoded).
    #[error("{path}: {field}, row {row}: image: {problem}")]
    Image {
        path: PathBuf,
        field: String,
        row: usize,
        problem: String,
    },
    /// Encoding or decoding an mp4 (`video` feature) with ffmpeg failed.
    #[error("{path}: video: {problem}")]
    Video { path: PathBuf, problem: String },
    /// A dataset feature this crate does not handle (e.g. decoding `video` features).
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl DatasetError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn parquet(path: impl Into<PathBuf>, source: parquet::errors::ParquetError) -> Self {
        Self::Parquet {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn arrow(path: impl Into<PathBuf>, source: arrow::error::ArrowError) -> Self {
        Self::Arrow {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn json(path: impl Into<PathBuf>, source: serde_json::Error) -> Self {
        Self::Json {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn format(
        path: impl Into<PathBuf>,
        field: impl Into<String>,
        problem: impl Into<String>,
    ) -> Self {
        Self::Format {
            path: path.into(),
            field: field.into(),
            problem: problem.into(),
        }
    }

    pub(crate) fn spec(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::InvalidSpec {
            field: field.into(),
            problem: problem.into(),
        }
    }
}
