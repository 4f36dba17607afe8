//! `meta/info.json`, `meta/modality.json` and `meta/stats.json`: building (writer) and parsing
//! (reader), plus [`DatasetInfo`], the reader-facing summary.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::error::DatasetError;
use crate::json::{Oj, OrderedObject};
use crate::spec::{DatasetSpec, Dtype, FeatureSpec, Format, WriterOptions};
use crate::stats::FeatureStats;

/// `data_path` template of v2.1.
pub(crate) const V21_DATA_PATH: &str =
    "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet";
/// `video_path` template of v2.1.
pub(crate) const V21_VIDEO_PATH: &str =
    "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4";
/// `data_path` template of v3.0.
pub(crate) const V30_DATA_PATH: &str = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet";
/// `video_path` template of v3.0.
pub(crate) const V30_VIDEO_PATH: &str =
    "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4";
/// v3.0 episodes metadata path template.
pub(crate) const V30_EPISODES_PATH: &str =
    "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet";

/// What a dataset is: read from `meta/` by [`crate::Dataset::open`], returned by
/// [`crate::DatasetWriter::finish`].
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetInfo {
    /// Layout.
    pub format: Format,
    /// `codebase_version` as written (`v2.0`, `v2.1`, `v3.0`).
    pub codebase_version: String,
    /// Frames per second (Hz).
    pub fps: f64,
    /// `robot_type`, if any.
    pub robot_type: Option<String>,
    /// Number of episodes.
    pub total_episodes: usize,
    /// Number of frames over all episodes.
    pub total_frames: usize,
    /// Number of distinct tasks.
    pub total_tasks: usize,
    /// Max files per chunk directory.
    pub chunks_size: usize,
    /// `data_path` template (Python format string).
    pub data_path: String,
    /// `video_path` template, if the dataset has videos.
    pub video_path: Option<String>,
    /// Features in `info.json` order.
    pub features: Vec<FeatureSpec>,
    /// Task strings indexed by `task_index`.
    pub tasks: Vec<String>,
    /// Dataset-level statistics per feature key, in feature order: from `meta/stats.json`,
    /// else aggregated from the per-episode statistics like LeRobot does.
    pub stats: Vec<(String, FeatureStats)>,
}

impl DatasetInfo {
    /// The feature called `name`.
    pub fn feature(&self, name: &str) -> Option<&FeatureSpec> {
        self.features.iter().find(|f| f.name == name)
    }

    /// Statistics of feature `name`.
    pub fn stats(&self, name: &str) -> Option<&FeatureStats> {
        self.stats.iter().find(|(k, _)| k == name).map(|(_, s)| s)
    }

    /// Camera feature keys (`image` and `video`), in feature order.
    pub fn camera_keys(&self) -> Vec<&str> {
        self.features
            .iter()
            .filter(|f| f.dtype.is_visual())
            .map(|f| f.name.as_str())
            .collect()
    }

    /// Size of feature `name`'s vectors (first shape entry), 0 if absent.
    pub fn dim(&self, name: &str) -> usize {
        self.feature(name)
            .and_then(|f| f.shape.first().copied())
            .unwrap_or(0)
    }
}

/// `fps` as JSON: an integer when integral (LeRobot's type), else a float.
fn fps_json(fps: f64) -> Value {
    if fps.fract() == 0.0 && fps <= u32::MAX as f64 {
        Value::from(fps as u64)
    } else {
        Value::from(fps)
    }
}

fn feature_oj(f: &FeatureSpec) -> Oj {
    Oj::obj([
        ("dtype", Oj::v(f.dtype.as_str())),
        ("shape", Oj::v(f.shape.clone())),
        (
            "names",
            match &f.names {
                Some(n) => Oj::v(n.clone()),
                None => Oj::V(Value::Null),
            },
        ),
    ])
}

/// The `info.json` object LeRobot writes for this format, with the given totals.
pub(crate) fn info_json(
    format: Format,
    spec: &DatasetSpec,
    opts: &WriterOptions,
    total_episodes: usize,
    total_frames: usize,
    total_tasks: usize,
) -> Oj {
    let features = Oj::O(
        spec.features()
            .iter()
            .map(|f| {
                let mut o = feature_oj(f);
                if f.dtype == Dtype::Video
                    && let (Oj::O(entries), [h, w, _]) = (&mut o, f.shape.as_slice())
                {
                    entries.push((
                        "info".to_string(),
                        crate::video::video_info(*w as u32, *h as u32, spec.fps),
                    ));
                }
                (f.name.clone(), o)
            })
            .collect(),
    );
    let splits = if total_episodes == 0 {
        Oj::O(vec![])
    } else {
        Oj::obj([("train", Oj::v(format!("0:{total_episodes}")))])
    };
    let n_videos = if spec.video { spec.cameras.len() } else { 0 };
    let mut o: Vec<(String, Oj)> = vec![
        ("codebase_version".into(), Oj::v(format.codebase_version())),
        ("robot_type".into(), Oj::v(spec.robot_type.clone())),
        ("total_episodes".into(), Oj::v(total_episodes)),
        ("total_frames".into(), Oj::v(total_frames)),
        ("total_tasks".into(), Oj::v(total_tasks)),
    ];
    match format {
        Format::LeRobotV21 => {
            o.push(("total_videos".into(), Oj::v(total_episodes * n_videos)));
            o.push((
                "total_chunks".into(),
                Oj::v(total_episodes.div_ceil(opts.chunks_size)),
            ));
            o.push(("chunks_size".into(), Oj::v(opts.chunks_size)));
        }
        Format::LeRobotV30 => {
            o.push(("chunks_size".into(), Oj::v(opts.chunks_size)));
            o.push((
                "data_files_size_in_mb".into(),
                Oj::v(opts.data_files_size_in_mb),
            ));
            o.push((
                "video_files_size_in_mb".into(),
                Oj::v(opts.video_files_size_in_mb),
            ));
        }
    }
    let (data_path, video_path) = match format {
        Format::LeRobotV21 => (V21_DATA_PATH, V21_VIDEO_PATH),
        Format::LeRobotV30 => (V30_DATA_PATH, V30_VIDEO_PATH),
    };
    o.push(("fps".into(), Oj::V(fps_json(spec.fps))));
    o.push(("splits".into(), splits));
    o.push(("data_path".into(), Oj::v(data_path)));
    o.push((
        "video_path".into(),
        if spec.video {
            Oj::v(video_path)
        } else {
            Oj::V(Value::Null)
        },
    ));
    o.push(("features".into(), features));
    Oj::O(o)
}

/// GR00T's `meta/modality.json`: slices of the state/action vectors, camera keys, and the task
/// annotation mapped to the `task_index` column (Isaac-GR00T's convention). Without slices a
/// single group `all` covers the whole vector.
pub(crate) fn modality_json(spec: &DatasetSpec) -> Oj {
    let slices = |s: &[(String, usize, usize)], dim: usize| {
        let default = [("all".to_string(), 0, dim)];
        let s: &[(String, usize, usize)] = if s.is_empty() { &default } else { s };
        Oj::O(
            s.iter()
                .map(|(k, a, b)| {
                    (
                        k.clone(),
                        Oj::obj([("start", Oj::v(*a)), ("end", Oj::v(*b))]),
                    )
                })
                .collect(),
        )
    };
    Oj::obj([
        ("state", slices(&spec.state_slices, spec.state_names.len())),
        (
            "action",
            slices(&spec.action_slices, spec.action_names.len()),
        ),
        (
            "video",
            Oj::O(
                spec.cameras
                    .iter()
                    .enumerate()
                    .map(|(i, (name, _, _))| {
                        (
                            name.clone(),
                            Oj::obj([("original_key", Oj::v(spec.camera_key(i)))]),
                        )
                    })
                    .collect(),
            ),
        ),
        (
            "annotation",
            Oj::obj([(
                "human.task_description",
                Oj::obj([("original_key", Oj::v("task_index"))]),
            )]),
        ),
    ])
}

/// `stats.json`: `{feature: {min, max, ...}}` in the given order.
pub(crate) fn stats_json(stats: &[(String, FeatureStats)]) -> Oj {
    Oj::O(stats.iter().map(|(k, s)| (k.clone(), s.to_oj())).collect())
}

/// The parts of `info.json` the reader needs. Not `deny_unknown_fields`: this is a third-party
/// file format whose producers add keys (`total_videos`, per-feature `info`, `fps`, …).
#[derive(Deserialize)]
struct RawInfo {
    codebase_version: String,
    fps: f64,
    #[serde(default)]
    robot_type: Option<String>,
    #[serde(default)]
    total_episodes: usize,
    #[serde(default)]
    total_frames: usize,
    #[serde(default)]
    total_tasks: usize,
    #[serde(default = "default_chunks")]
    chunks_size: usize,
    data_path: String,
    #[serde(default)]
    video_path: Option<String>,
    features: OrderedObject,
}

fn default_chunks() -> usize {
    1000
}

/// Per-dimension names: a list of strings, or (older datasets) a dict holding one such list.
fn parse_names(v: Option<&Value>) -> Option<Vec<String>> {
    let list = |a: &Vec<Value>| -> Option<Vec<String>> {
        a.iter().map(|x| x.as_str().map(str::to_string)).collect()
    };
    match v? {
        Value::Array(a) => list(a),
        Value::Object(o) => o.values().find_map(|x| x.as_array().and_then(list)),
        _ => None,
    }
}

/// Parsed `info.json` (without tasks and stats, which live in other files).
pub(crate) fn parse_info(path: &Path, bytes: &[u8]) -> Result<DatasetInfo, DatasetError> {
    let raw: RawInfo = serde_json::from_slice(bytes).map_err(|e| DatasetError::json(path, e))?;
    let format = Format::from_codebase_version(&raw.codebase_version).ok_or_else(|| {
        DatasetError::format(
            path,
            "codebase_version",
            format!(
                "{:?} is not a supported LeRobot version (v2.0, v2.1, v3.0)",
                raw.codebase_version
            ),
        )
    })?;
    let mut features = Vec::new();
    for (name, v) in raw.features.0 {
        let dtype = v
            .get("dtype")
            .and_then(Value::as_str)
            .map(Dtype::parse)
            .ok_or_else(|| {
                DatasetError::format(path, format!("features.{name}.dtype"), "missing")
            })?;
        let shape = v
            .get("shape")
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .map(|x| x.as_u64().map(|u| u as usize))
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| {
                DatasetError::format(
                    path,
                    format!("features.{name}.shape"),
                    "missing or not a list of sizes",
                )
            })?;
        features.push(FeatureSpec {
            names: parse_names(v.get("names")),
            name,
            dtype,
            shape,
        });
    }
    if !(raw.fps.is_finite() && raw.fps > 0.0) {
        return Err(DatasetError::format(path, "fps", "must be positive"));
    }
    Ok(DatasetInfo {
        format,
        codebase_version: raw.codebase_version,
        fps: raw.fps,
        robot_type: raw.robot_type,
        total_episodes: raw.total_episodes,
        total_frames: raw.total_frames,
        total_tasks: raw.total_tasks,
        chunks_size: raw.chunks_size.max(1),
        data_path: raw.data_path,
        video_path: raw.video_path,
        features,
        tasks: vec![],
        stats: vec![],
    })
}

/// Expands a Python format template such as `data/chunk-{chunk_index:03d}/file-{file_index:03d}`
/// with integer (`{name:0Nd}`, `{name}`) and string (`{video_key}`) arguments.
pub(crate) fn format_template(
    template: &str,
    ints: &[(&str, usize)],
    strs: &[(&str, &str)],
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| format!("unclosed '{{' in {template:?}"))?
            + open;
        let field = &rest[open + 1..close];
        let (name, spec) = field.split_once(':').unwrap_or((field, ""));
        if let Some((_, v)) = ints.iter().find(|(k, _)| *k == name) {
            let width: usize = spec
                .trim_start_matches('0')
                .trim_end_matches('d')
                .parse()
                .unwrap_or(0);
            if spec.starts_with('0') {
                out.push_str(&format!("{v:0width$}"));
            } else {
                out.push_str(&format!("{v:width$}"));
            }
        } else if let Some((_, v)) = strs.iter().find(|(k, _)| *k == name) {
            out.push_str(v);
        } else {
            return Err(format!("unknown field {{{field}}} in {template:?}"));
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
