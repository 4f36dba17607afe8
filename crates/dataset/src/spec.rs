//! What a dataset holds: format, features, the writer's input types.

use serde::{Deserialize, Serialize};

use crate::error::DatasetError;

/// Feature key of the robot state vector.
pub const STATE_KEY: &str = "observation.state";
/// Feature key of the action vector.
pub const ACTION_KEY: &str = "action";
/// Prefix of camera feature keys: `observation.images.{camera}`.
pub const IMAGE_PREFIX: &str = "observation.images.";
/// The five per-frame bookkeeping columns every LeRobot dataset has, in LeRobot's order.
pub const DEFAULT_KEYS: [&str; 5] = [
    "timestamp",
    "frame_index",
    "episode_index",
    "index",
    "task_index",
];

/// On-disk layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Format {
    /// LeRobot codebase v2.1: one parquet file per episode, JSON-lines metadata; plus GR00T's
    /// `meta/modality.json`. What Isaac-GR00T (N1/N1.5) reads.
    LeRobotV21,
    /// LeRobot codebase v3.0 (lerobot ≥ 0.4): many episodes per parquet file, parquet metadata.
    LeRobotV30,
}

impl Format {
    /// The `codebase_version` string in `meta/info.json`.
    pub fn codebase_version(self) -> &'static str {
        match self {
            Format::LeRobotV21 => "v2.1",
            Format::LeRobotV30 => "v3.0",
        }
    }

    /// Parses a `codebase_version` ("v2.1", "v3.0"; "v2.0" is read as v2.1's layout).
    pub fn from_codebase_version(v: &str) -> Option<Format> {
        match v {
            "v2.0" | "v2.1" => Some(Format::LeRobotV21),
            "v3.0" => Some(Format::LeRobotV30),
            _ => None,
        }
    }
}

/// Element type of a feature, as LeRobot's `dtype` string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// `float32`.
    Float32,
    /// `float64` (written by some third-party converters; read as f32).
    Float64,
    /// `int64`.
    Int64,
    /// `image`: struct<bytes: binary (PNG), path: string> column.
    Image,
    /// `video`: frames in mp4 files, no parquet column.
    Video,
    /// Any other dtype string (`bool`, `string`, `int32`…), kept verbatim.
    Other(String),
}

impl Dtype {
    /// LeRobot's dtype string.
    pub fn as_str(&self) -> &str {
        match self {
            Dtype::Float32 => "float32",
            Dtype::Float64 => "float64",
            Dtype::Int64 => "int64",
            Dtype::Image => "image",
            Dtype::Video => "video",
            Dtype::Other(s) => s,
        }
    }

    /// Parses LeRobot's dtype string.
    pub fn parse(s: &str) -> Dtype {
        match s {
            "float32" => Dtype::Float32,
            "float64" => Dtype::Float64,
            "int64" => Dtype::Int64,
            "image" => Dtype::Image,
            "video" => Dtype::Video,
            other => Dtype::Other(other.to_string()),
        }
    }

    /// True for `image` and `video` (camera) features.
    pub fn is_visual(&self) -> bool {
        matches!(self, Dtype::Image | Dtype::Video)
    }
}

/// One entry of `info.json`'s `features`: `{dtype, shape, names}`.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSpec {
    /// Feature key, e.g. `observation.state`, `observation.images.ego_view`, `timestamp`.
    pub name: String,
    /// Element type.
    pub dtype: Dtype,
    /// Shape of one frame's value: `[D]` for vectors, `[1]` for scalars, `[H, W, 3]` for images.
    pub shape: Vec<usize>,
    /// Per-dimension names (joint names; `["height","width","channel"]` for images), if any.
    pub names: Option<Vec<String>>,
}

/// What the writer is told about the robot and its cameras.
///
/// Serde form (e.g. in a TOML config): the field names below; slices and cameras as arrays
/// (`state_slices = [["left_arm", 0, 7], ...]`, `cameras = [["ego_view", 224, 224]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    /// Frames per second of every episode (Hz). Timestamps are `frame_index / fps` seconds.
    pub fps: f64,
    /// Robot name stored as `robot_type` in `info.json`.
    pub robot_type: String,
    /// One name per dimension of `observation.state` (its length is the state size).
    pub state_names: Vec<String>,
    /// One name per dimension of `action` (its length is the action size).
    pub action_names: Vec<String>,
    /// GR00T `modality.json` state groups: `(key, start, end)`, a half-open range of dimensions.
    pub state_slices: Vec<(String, usize, usize)>,
    /// GR00T `modality.json` action groups: `(key, start, end)`.
    pub action_slices: Vec<(String, usize, usize)>,
    /// Cameras `(name, width px, height px)`; feature `observation.images.{name}`, in this order.
    pub cameras: Vec<(String, u32, u32)>,
    /// Store cameras as mp4 `video` features (H.264 yuv420p through an `ffmpeg` executable on
    /// `PATH`; even widths and heights) instead of PNG `image` columns.
    #[serde(default)]
    pub video: bool,
}

impl DatasetSpec {
    /// Checks names, sizes and slices.
    pub fn validate(&self) -> Result<(), DatasetError> {
        if !(self.fps.is_finite() && self.fps > 0.0) {
            return Err(DatasetError::spec(
                "fps",
                format!("must be a positive number, got {}", self.fps),
            ));
        }
        if self.state_names.is_empty() {
            return Err(DatasetError::spec("state_names", "must not be empty"));
        }
        if self.action_names.is_empty() {
            return Err(DatasetError::spec("action_names", "must not be empty"));
        }
        for (field, names) in [
            ("state_names", &self.state_names),
            ("action_names", &self.action_names),
        ] {
            let mut seen = std::collections::BTreeSet::new();
            for n in names {
                if !seen.insert(n.as_str()) {
                    return Err(DatasetError::spec(field, format!("duplicate name {n:?}")));
                }
            }
        }
        for (field, slices, dim) in [
            ("state_slices", &self.state_slices, self.state_names.len()),
            (
                "action_slices",
                &self.action_slices,
                self.action_names.len(),
            ),
        ] {
            let mut seen = std::collections::BTreeSet::new();
            for (key, start, end) in slices {
                if key.is_empty() || !seen.insert(key.as_str()) {
                    return Err(DatasetError::spec(
                        field,
                        format!("empty or duplicate key {key:?}"),
                    ));
                }
                if start >= end || *end > dim {
                    return Err(DatasetError::spec(
                        field,
                        format!("{key}: range {start}..{end} is empty or outside 0..{dim}"),
                    ));
                }
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (name, w, h) in &self.cameras {
            if name.is_empty()
                || name.contains('/')
                || name.contains('.')
                || !seen.insert(name.as_str())
            {
                return Err(DatasetError::spec(
                    "cameras",
                    format!("camera name {name:?} is empty, duplicate or contains '/' or '.'"),
                ));
            }
            if *w == 0 || *h == 0 {
                return Err(DatasetError::spec(
                    "cameras",
                    format!("{name}: size {w}x{h} must be positive"),
                ));
            }
        }
        Ok(())
    }

    /// Feature key of camera `i`: `observation.images.{name}`.
    pub fn camera_key(&self, i: usize) -> String {
        format!("{IMAGE_PREFIX}{}", self.cameras[i].0)
    }

    /// The `info.json` features, in LeRobot's column order: state, action, cameras, then the
    /// five bookkeeping columns.
    pub fn features(&self) -> Vec<FeatureSpec> {
        let mut f = vec![
            FeatureSpec {
                name: STATE_KEY.to_string(),
                dtype: Dtype::Float32,
                shape: vec![self.state_names.len()],
                names: Some(self.state_names.clone()),
            },
            FeatureSpec {
                name: ACTION_KEY.to_string(),
                dtype: Dtype::Float32,
                shape: vec![self.action_names.len()],
                names: Some(self.action_names.clone()),
            },
        ];
        for (i, (_, w, h)) in self.cameras.iter().enumerate() {
            f.push(FeatureSpec {
                name: self.camera_key(i),
                dtype: if self.video {
                    Dtype::Video
                } else {
                    Dtype::Image
                },
                shape: vec![*h as usize, *w as usize, 3],
                // LeRobot (and GR00T's loader) spell the video axis "channels".
                names: Some(vec![
                    "height".to_string(),
                    "width".to_string(),
                    if self.video { "channels" } else { "channel" }.to_string(),
                ]),
            });
        }
        for (key, dtype) in DEFAULT_KEYS.iter().zip([
            Dtype::Float32,
            Dtype::Int64,
            Dtype::Int64,
            Dtype::Int64,
            Dtype::Int64,
        ]) {
            f.push(FeatureSpec {
                name: key.to_string(),
                dtype,
                shape: vec![1],
                names: None,
            });
        }
        f
    }
}

/// Tunables of the on-disk layout (LeRobot's defaults unless changed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WriterOptions {
    /// Max files per `chunk-NNN` directory (LeRobot: 1000). v2.1: episodes per chunk.
    pub chunks_size: usize,
    /// v3.0: start a new data (and episodes-metadata) parquet file once the current one would
    /// reach this many MiB (LeRobot: 100). 0 = one episode per file.
    pub data_files_size_in_mb: usize,
    /// v3.0: the same for mp4 files (LeRobot: 200); recorded in `info.json`.
    pub video_files_size_in_mb: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            chunks_size: 1000,
            data_files_size_in_mb: 100,
            video_files_size_in_mb: 200,
        }
    }
}

/// One time step handed to the writer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Frame {
    /// Robot state, `state_names.len()` values (joint positions in rad / m as the robot defines).
    pub state: Vec<f32>,
    /// Commanded action, `action_names.len()` values.
    pub action: Vec<f32>,
    /// One image per camera in [`DatasetSpec::cameras`] order: H×W×3 RGB u8, row-major.
    pub images: Vec<Vec<u8>>,
}

/// One demonstration handed to the writer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Episode {
    /// Natural-language instruction; becomes a row of the tasks table and `task_index`.
    pub task: String,
    /// Frames at `1/fps` s spacing, at least one.
    pub frames: Vec<Frame>,
    /// Free-form episode metadata (seed, success, …). v2.1: `"episode_meta"` key of the
    /// episode's `episodes.jsonl` line; v3.0: `episode_meta` column (compact JSON string) of the
    /// episodes parquet. `null` is not stored.
    pub meta: serde_json::Value,
}
