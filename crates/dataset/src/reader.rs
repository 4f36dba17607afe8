//! [`Dataset`]: reads LeRobot v2.0/v2.1 and v3.0 datasets (ours and LeRobot's own), episodes and
//! training samples (state, action chunk with padding mask, task, images).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use serde_json::Value;
use tracing::warn;

use crate::columns;
use crate::error::DatasetError;
use crate::image::{Image, decode_png};
use crate::info::{self, DatasetInfo};
use crate::io::{self, ReadRequest};
use crate::spec::{ACTION_KEY, Dtype, Format, STATE_KEY};
use crate::stats::{self, FeatureStats};
use crate::writer::{EPISODE_META_KEY, read_episode_records};

/// One episode as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeData {
    /// Episode index.
    pub index: usize,
    /// Task of the first frame.
    pub task: String,
    /// Tasks listed in the episode metadata.
    pub tasks: Vec<String>,
    /// Seconds since the episode start, per frame.
    pub timestamps: Vec<f32>,
    /// Frame index within the episode, per frame.
    pub frame_index: Vec<i64>,
    /// Global (dataset-wide) frame index, per frame.
    pub global_index: Vec<i64>,
    /// Task index, per frame.
    pub task_index: Vec<i64>,
    /// `observation.state` per frame: `[T][D_state]`.
    pub state: Vec<Vec<f32>>,
    /// `action` per frame: `[T][D_action]`.
    pub action: Vec<Vec<f32>>,
    /// Decoded frames of each camera feature (key, `[T]` images), in feature order: `image`
    /// features from their PNG bytes, `video` features decoded by `ffmpeg` (lossy).
    pub images: Vec<(String, Vec<Image>)>,
    /// Episode metadata stored by our writer (`episode_meta`), `null` otherwise.
    pub meta: Value,
}

/// One training sample: state at `t` and the action chunk `[t, t + horizon)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Episode index.
    pub episode: usize,
    /// Frame index within the episode.
    pub t: usize,
    /// Seconds since the episode start at `t`.
    pub timestamp: f32,
    /// `observation.state` at `t`: `[D_state]`.
    pub state: Vec<f32>,
    /// Actions at `t, t+1, …, t+horizon-1`: `[horizon][D_action]`; steps past the episode end
    /// repeat the last action.
    pub actions: Vec<Vec<f32>>,
    /// Per action step: 1.0 = real, 0.0 = padding past the episode end. `[horizon]`.
    pub action_mask: Vec<f32>,
    /// Task string at `t`.
    pub task: String,
    /// Images at `t` of each camera feature (key, image), when requested.
    pub images: Vec<(String, Image)>,
}

#[derive(Debug, Clone)]
struct EpisodeEntry {
    index: usize,
    length: usize,
    tasks: Vec<String>,
    data_path: PathBuf,
    /// First row of the episode inside `data_path`.
    row_offset: usize,
    stats: Vec<(String, FeatureStats)>,
    meta: Value,
    /// Per `video` feature: key, mp4 file, start of the episode in it (s).
    videos: Vec<(String, PathBuf, f64)>,
}

/// Low-dimensional columns of one episode: flat state `[T * D_state]`, flat action
/// `[T * D_action]`, task index `[T]`, timestamps `[T]` (s).
type LowEpisode = (Vec<f32>, Vec<f32>, Vec<i64>, Vec<f32>);

/// Low-dimensional columns of every episode, loaded once for fast sampling.
struct LowDim {
    state_dim: usize,
    action_dim: usize,
    episodes: Vec<LowEpisode>,
}

/// A dataset opened for reading.
pub struct Dataset {
    dir: PathBuf,
    info: DatasetInfo,
    episodes: Vec<EpisodeEntry>,
    low: Mutex<Option<Arc<LowDim>>>,
}

impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataset")
            .field("dir", &self.dir)
            .field("format", &self.info.format)
            .field("episodes", &self.episodes.len())
            .finish()
    }
}

/// Complete lines of a JSON-lines file (a torn last line is ignored), or none if absent.
fn read_jsonl(path: &Path) -> Result<Vec<Value>, DatasetError> {
    if !path.exists() {
        return Ok(vec![]);
    }
    let bytes = io::read(path)?;
    let mut out = Vec::new();
    for (i, line) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice(line) {
            Ok(v) => out.push(v),
            Err(e) if !line.ends_with(b"\n") => {
                warn!(file = %path.display(), "ignoring torn last line: {e}");
            }
            Err(e) => {
                return Err(DatasetError::format(
                    path,
                    format!("line {}", i + 1),
                    e.to_string(),
                ));
            }
        }
    }
    Ok(out)
}

fn stats_from_object(v: &Value) -> Vec<(String, FeatureStats)> {
    v.as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, s)| FeatureStats::from_json(s).map(|s| (k.clone(), s)))
                .collect()
        })
        .unwrap_or_default()
}

impl Dataset {
    /// Opens the dataset at `dir`; the layout comes from `meta/info.json`'s `codebase_version`.
    /// Only the first `total_episodes` episodes are visible (anything beyond belongs to an
    /// interrupted write).
    pub fn open(dir: &Path) -> Result<Self, DatasetError> {
        let info_path = dir.join("meta/info.json");
        let bytes = io::read(&info_path)?;
        let mut info = info::parse_info(&info_path, &bytes)?;
        let n = info.total_episodes;
        let mut episodes = match info.format {
            Format::LeRobotV21 => Self::open_v21(dir, &mut info)?,
            Format::LeRobotV30 => Self::open_v30(dir, &mut info)?,
        };
        episodes.sort_by_key(|e| e.index);
        episodes.retain(|e| e.index < n);
        if episodes.len() != n || episodes.iter().enumerate().any(|(i, e)| e.index != i) {
            return Err(DatasetError::format(
                dir.join("meta"),
                "episodes",
                format!(
                    "info.json lists {n} episodes but the episode metadata has {} of 0..{n}",
                    episodes.len()
                ),
            ));
        }
        let frames: usize = episodes.iter().map(|e| e.length).sum();
        if frames != info.total_frames {
            warn!(
                dir = %dir.display(),
                "info.json total_frames {} but episodes sum to {frames}",
                info.total_frames
            );
            info.total_frames = frames;
        }
        info.total_tasks = info.tasks.len();

        // Dataset statistics: stats.json, completed by aggregating per-episode statistics.
        let stats_path = dir.join("meta/stats.json");
        let file_stats = if stats_path.exists() {
            stats_from_object(&io::read_json(&stats_path)?)
        } else {
            vec![]
        };
        let mut all = Vec::new();
        for f in &info.features {
            if let Some((_, s)) = file_stats.iter().find(|(k, _)| *k == f.name) {
                all.push((f.name.clone(), s.clone()));
                continue;
            }
            let parts: Vec<&FeatureStats> = episodes
                .iter()
                .filter_map(|e| e.stats.iter().find(|(k, _)| *k == f.name).map(|(_, s)| s))
                .collect();
            if parts.len() == episodes.len()
                && let Some(s) = stats::aggregate(&parts)
            {
                all.push((f.name.clone(), s));
            }
        }
        info.stats = all;
        Ok(Self {
            dir: dir.to_path_buf(),
            info,
            episodes,
            low: Mutex::new(None),
        })
    }

    fn open_v21(dir: &Path, info: &mut DatasetInfo) -> Result<Vec<EpisodeEntry>, DatasetError> {
        let tasks_path = dir.join("meta/tasks.jsonl");
        let mut tasks: Vec<(usize, String)> = read_jsonl(&tasks_path)?
            .iter()
            .filter_map(|v| {
                Some((
                    v.get("task_index")?.as_u64()? as usize,
                    v.get("task")?.as_str()?.to_string(),
                ))
            })
            .collect();
        tasks.sort();
        info.tasks = dense_tasks(&tasks_path, tasks)?;
        let ep_path = dir.join("meta/episodes.jsonl");
        let stats_lines = read_jsonl(&dir.join("meta/episodes_stats.jsonl"))?;
        let mut out = Vec::new();
        for v in read_jsonl(&ep_path)? {
            let index = v
                .get("episode_index")
                .and_then(Value::as_u64)
                .ok_or_else(|| DatasetError::format(&ep_path, "episode_index", "missing"))?
                as usize;
            let length = v
                .get("length")
                .and_then(Value::as_u64)
                .ok_or_else(|| DatasetError::format(&ep_path, "length", "missing"))?
                as usize;
            let rel = info::format_template(
                &info.data_path,
                &[
                    ("episode_chunk", index / info.chunks_size),
                    ("episode_index", index),
                ],
                &[],
            )
            .map_err(|p| DatasetError::format(dir.join("meta/info.json"), "data_path", p))?;
            let stats = stats_lines
                .iter()
                .find(|s| s.get("episode_index").and_then(Value::as_u64) == Some(index as u64))
                .and_then(|s| s.get("stats"))
                .map(stats_from_object)
                .unwrap_or_default();
            let mut videos = vec![];
            for f in info.features.iter().filter(|f| f.dtype == Dtype::Video) {
                let template = info.video_path.as_deref().ok_or_else(|| {
                    DatasetError::format(
                        dir.join("meta/info.json"),
                        "video_path",
                        "missing although there are video features",
                    )
                })?;
                let rel = info::format_template(
                    template,
                    &[
                        ("episode_chunk", index / info.chunks_size),
                        ("episode_index", index),
                    ],
                    &[("video_key", &f.name)],
                )
                .map_err(|p| DatasetError::format(dir.join("meta/info.json"), "video_path", p))?;
                videos.push((f.name.clone(), dir.join(rel), 0.0));
            }
            out.push(EpisodeEntry {
                videos,
                index,
                length,
                tasks: v
                    .get("tasks")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|t| t.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                data_path: dir.join(rel),
                row_offset: 0,
                stats,
                meta: v.get(EPISODE_META_KEY).cloned().unwrap_or(Value::Null),
            });
        }
        Ok(out)
    }

    fn open_v30(dir: &Path, info: &mut DatasetInfo) -> Result<Vec<EpisodeEntry>, DatasetError> {
        let tasks_path = dir.join("meta/tasks.parquet");
        info.tasks = if tasks_path.exists() {
            read_tasks_parquet(&tasks_path)?
        } else {
            vec![]
        };
        let mut records = Vec::new();
        for f in io::walk_files(&dir.join("meta/episodes"))? {
            if f.extension().and_then(|s| s.to_str()) == Some("parquet") {
                records.extend(read_episode_records(&f)?);
            }
        }
        records.retain(|r| r.index < info.total_episodes);
        // First global index of each data file = smallest `from` of its episodes.
        let mut file_start: std::collections::BTreeMap<(usize, usize), usize> = Default::default();
        for r in &records {
            let e = file_start
                .entry((r.data_chunk, r.data_file))
                .or_insert(r.from);
            *e = (*e).min(r.from);
        }
        let mut out = Vec::new();
        for r in records {
            let rel = info::format_template(
                &info.data_path,
                &[("chunk_index", r.data_chunk), ("file_index", r.data_file)],
                &[],
            )
            .map_err(|p| DatasetError::format(dir.join("meta/info.json"), "data_path", p))?;
            let start = file_start[&(r.data_chunk, r.data_file)];
            let mut videos = vec![];
            for v in &r.videos {
                let template = info.video_path.as_deref().ok_or_else(|| {
                    DatasetError::format(
                        dir.join("meta/info.json"),
                        "video_path",
                        "missing although episodes reference videos",
                    )
                })?;
                let rel = info::format_template(
                    template,
                    &[("chunk_index", v.chunk), ("file_index", v.file)],
                    &[("video_key", &v.key)],
                )
                .map_err(|p| DatasetError::format(dir.join("meta/info.json"), "video_path", p))?;
                videos.push((v.key.clone(), dir.join(rel), v.from));
            }
            out.push(EpisodeEntry {
                videos,
                index: r.index,
                length: r.length,
                tasks: r.tasks,
                data_path: dir.join(rel),
                row_offset: r.from - start,
                stats: r.stats,
                meta: r.meta,
            });
        }
        Ok(out)
    }

    /// Metadata, features, tasks and dataset statistics.
    pub fn info(&self) -> &DatasetInfo {
        &self.info
    }

    /// The dataset directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of episodes.
    pub fn num_episodes(&self) -> usize {
        self.episodes.len()
    }

    /// Number of frames of episode `i` (0 if out of range).
    pub fn episode_len(&self, i: usize) -> usize {
        self.episodes.get(i).map(|e| e.length).unwrap_or(0)
    }

    /// Per-episode statistics of episode `i` (from `episodes_stats.jsonl` or the episodes
    /// parquet), in stored order.
    pub fn episode_stats(&self, i: usize) -> Result<&[(String, FeatureStats)], DatasetError> {
        Ok(&self.entry(i)?.stats)
    }

    /// Metadata our writer stored for episode `i` (`episode_meta`; `null` for datasets written
    /// elsewhere), without reading its frames.
    pub fn episode_meta(&self, i: usize) -> Result<&Value, DatasetError> {
        Ok(&self.entry(i)?.meta)
    }

    fn entry(&self, i: usize) -> Result<&EpisodeEntry, DatasetError> {
        self.episodes.get(i).ok_or(DatasetError::OutOfRange {
            what: "episode",
            index: i,
            valid: format!("0..{}", self.episodes.len()),
        })
    }

    fn feature_dtype(&self, name: &str) -> Option<&Dtype> {
        self.info.feature(name).map(|f| &f.dtype)
    }

    /// Keys of the `image` (PNG) camera features.
    fn image_keys(&self) -> Vec<String> {
        self.info
            .features
            .iter()
            .filter(|f| f.dtype == Dtype::Image)
            .map(|f| f.name.clone())
            .collect()
    }

    fn task_name(&self, path: &Path, task_index: i64) -> Result<String, DatasetError> {
        usize::try_from(task_index)
            .ok()
            .and_then(|i| self.info.tasks.get(i))
            .cloned()
            .ok_or_else(|| {
                DatasetError::format(
                    path,
                    "task_index",
                    format!("{task_index} has no task ({} tasks)", self.info.tasks.len()),
                )
            })
    }

    /// Reads rows `[row_offset + start, row_offset + end)` of episode `e`'s data file.
    fn read_rows(
        &self,
        e: &EpisodeEntry,
        start: usize,
        end: usize,
        columns: Option<&[&str]>,
    ) -> Result<RecordBatch, DatasetError> {
        let (schema, batches) = io::read_parquet(
            &e.data_path,
            &ReadRequest {
                columns,
                rows: Some((e.row_offset + start, e.row_offset + end)),
            },
        )?;
        let projected: Arc<arrow::datatypes::Schema> = match columns {
            Some(cols) => Arc::new(arrow::datatypes::Schema::new(
                schema
                    .fields()
                    .iter()
                    .filter(|f| cols.contains(&f.name().as_str()))
                    .cloned()
                    .collect::<Vec<_>>(),
            )),
            None => schema,
        };
        let b = io::concat(&e.data_path, &projected, &batches)?;
        if b.num_rows() != end - start {
            return Err(DatasetError::format(
                &e.data_path,
                "rows",
                format!(
                    "episode {}: expected {} rows, read {}",
                    e.index,
                    end - start,
                    b.num_rows()
                ),
            ));
        }
        if let Some(col) = b.column_by_name("episode_index") {
            let idx = columns::i64_column(&e.data_path, "episode_index", col)?;
            if idx.iter().any(|&x| x != e.index as i64) {
                return Err(DatasetError::format(
                    &e.data_path,
                    "episode_index",
                    format!(
                        "rows {}..{} do not all belong to episode {}",
                        e.row_offset + start,
                        e.row_offset + end,
                        e.index
                    ),
                ));
            }
        }
        Ok(b)
    }

    fn decode_image_column(
        &self,
        path: &Path,
        batch: &RecordBatch,
        key: &str,
    ) -> Result<Vec<Image>, DatasetError> {
        let col = columns::column(path, batch, key)?;
        let mut out = Vec::with_capacity(col.len());
        for (row, img) in columns::image_column(path, key, col)?
            .into_iter()
            .enumerate()
        {
            let err = |problem: String| DatasetError::Image {
                path: path.to_path_buf(),
                field: key.to_string(),
                row,
                problem,
            };
            let owned;
            let bytes = match (img.bytes, img.path) {
                (Some(b), _) => b,
                (None, Some(p)) => {
                    let p = Path::new(p);
                    let p = if p.is_absolute() {
                        p.to_path_buf()
                    } else {
                        self.dir.join(p)
                    };
                    owned = io::read(&p)?;
                    owned.as_slice()
                }
                (None, None) => return Err(err("neither bytes nor path".to_string())),
            };
            out.push(decode_png(bytes).map_err(err)?);
        }
        Ok(out)
    }

    /// Decodes `n` frames of video feature `key` of episode `e`, starting at frame `t`.
    fn decode_video(
        &self,
        e: &EpisodeEntry,
        key: &str,
        t: usize,
        n: usize,
    ) -> Result<Vec<Image>, DatasetError> {
        let (_, path, from) = e.videos.iter().find(|(k, _, _)| k == key).ok_or_else(|| {
            DatasetError::format(
                self.dir.join("meta"),
                key,
                format!("episode {} has no video location", e.index),
            )
        })?;
        let f = self.info.feature(key).ok_or_else(|| {
            DatasetError::format(self.dir.join("meta/info.json"), key, "feature missing")
        })?;
        let axis = |name: &str, default: usize| -> usize {
            f.names
                .as_ref()
                .and_then(|n| n.iter().position(|x| x == name))
                .unwrap_or(default)
        };
        let (h, w) = (
            f.shape.get(axis("height", 0)).copied().unwrap_or(0) as u32,
            f.shape.get(axis("width", 1)).copied().unwrap_or(0) as u32,
        );
        let fps = self.info.fps;
        crate::video::decode_frames(path, from + t as f64 / fps, n, w, h, fps)
    }

    /// Camera features (`image` and `video`) in feature order.
    fn visual_features(&self) -> Vec<(String, Dtype)> {
        self.info
            .features
            .iter()
            .filter(|f| f.dtype.is_visual())
            .map(|f| (f.name.clone(), f.dtype.clone()))
            .collect()
    }

    /// Reads episode `i`: vectors, bookkeeping columns and decoded camera frames.
    pub fn episode(&self, i: usize) -> Result<EpisodeData, DatasetError> {
        let e = self.entry(i)?;
        let path = &e.data_path;
        let b = self.read_rows(e, 0, e.length, None)?;
        let matrix = |key: &str| -> Result<Vec<Vec<f32>>, DatasetError> {
            let (v, dim) = columns::f32_matrix(path, key, columns::column(path, &b, key)?)?;
            Ok(v.chunks(dim.max(1)).map(<[f32]>::to_vec).collect())
        };
        let ints = |key: &str| -> Result<Vec<i64>, DatasetError> {
            columns::i64_column(path, key, columns::column(path, &b, key)?)
        };
        let task_index = ints("task_index")?;
        let task = match task_index.first() {
            Some(&t) => self.task_name(path, t)?,
            None => e.tasks.first().cloned().unwrap_or_default(),
        };
        let mut images = Vec::new();
        for (key, dtype) in self.visual_features() {
            let frames = if dtype == Dtype::Video {
                self.decode_video(e, &key, 0, e.length)?
            } else {
                self.decode_image_column(path, &b, &key)?
            };
            images.push((key, frames));
        }
        Ok(EpisodeData {
            index: e.index,
            task,
            tasks: e.tasks.clone(),
            timestamps: columns::f32_column(
                path,
                "timestamp",
                columns::column(path, &b, "timestamp")?,
            )?,
            frame_index: ints("frame_index")?,
            global_index: ints("index")?,
            task_index,
            state: matrix(STATE_KEY)?,
            action: matrix(ACTION_KEY)?,
            images,
            meta: e.meta.clone(),
        })
    }

    /// Loads (once) state/action/task/timestamp columns of all episodes.
    fn low_dim(&self) -> Result<Arc<LowDim>, DatasetError> {
        let mut guard = self
            .low
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(l) = guard.as_ref() {
            return Ok(l.clone());
        }
        for key in [STATE_KEY, ACTION_KEY] {
            if self.feature_dtype(key).is_none() {
                return Err(DatasetError::format(
                    self.dir.join("meta/info.json"),
                    key,
                    "feature missing: needed for samples",
                ));
            }
        }
        let cols = [
            STATE_KEY,
            ACTION_KEY,
            "task_index",
            "timestamp",
            "episode_index",
        ];
        let mut low = LowDim {
            state_dim: self.info.dim(STATE_KEY),
            action_dim: self.info.dim(ACTION_KEY),
            episodes: Vec::with_capacity(self.episodes.len()),
        };
        // Read each data file once; episodes of a file are consecutive in index order.
        let mut cache: Option<(PathBuf, RecordBatch)> = None;
        for e in &self.episodes {
            if cache.as_ref().map(|(p, _)| p) != Some(&e.data_path) {
                let (schema, batches) = io::read_parquet(
                    &e.data_path,
                    &ReadRequest {
                        columns: Some(&cols),
                        rows: None,
                    },
                )?;
                let projected = Arc::new(arrow::datatypes::Schema::new(
                    schema
                        .fields()
                        .iter()
                        .filter(|f| cols.contains(&f.name().as_str()))
                        .cloned()
                        .collect::<Vec<_>>(),
                ));
                cache = Some((
                    e.data_path.clone(),
                    io::concat(&e.data_path, &projected, &batches)?,
                ));
            }
            let Some((path, all)) = cache.as_ref() else {
                continue;
            };
            if e.row_offset + e.length > all.num_rows() {
                return Err(DatasetError::format(
                    path,
                    "rows",
                    format!(
                        "episode {} needs rows {}..{}, file has {}",
                        e.index,
                        e.row_offset,
                        e.row_offset + e.length,
                        all.num_rows()
                    ),
                ));
            }
            let b = all.slice(e.row_offset, e.length);
            let idx = columns::i64_column(
                path,
                "episode_index",
                columns::column(path, &b, "episode_index")?,
            )?;
            if idx.iter().any(|&x| x != e.index as i64) {
                return Err(DatasetError::format(
                    path,
                    "episode_index",
                    format!(
                        "rows of episode {} are not where the metadata says",
                        e.index
                    ),
                ));
            }
            let (s, ds) =
                columns::f32_matrix(path, STATE_KEY, columns::column(path, &b, STATE_KEY)?)?;
            let (a, da) =
                columns::f32_matrix(path, ACTION_KEY, columns::column(path, &b, ACTION_KEY)?)?;
            if ds != low.state_dim || da != low.action_dim {
                return Err(DatasetError::format(
                    path,
                    STATE_KEY,
                    format!(
                        "vectors of {ds}/{da} values, info.json says {}/{}",
                        low.state_dim, low.action_dim
                    ),
                ));
            }
            let t =
                columns::i64_column(path, "task_index", columns::column(path, &b, "task_index")?)?;
            let ts =
                columns::f32_column(path, "timestamp", columns::column(path, &b, "timestamp")?)?;
            low.episodes.push((s, a, t, ts));
        }
        let low = Arc::new(low);
        *guard = Some(low.clone());
        Ok(low)
    }

    /// Training sample at frame `t` of `episode`: state at `t`, the `horizon` actions from `t`
    /// (padded with the last action past the episode end; `action_mask` 1 = real, 0 = padding),
    /// the task at `t`, and (if `with_images`) each `image` camera's frame at `t`.
    pub fn sample(
        &self,
        episode: usize,
        t: usize,
        horizon: usize,
        with_images: bool,
    ) -> Result<Sample, DatasetError> {
        let e = self.entry(episode)?;
        if t >= e.length {
            return Err(DatasetError::OutOfRange {
                what: "frame",
                index: t,
                valid: format!("0..{} (episode {episode})", e.length),
            });
        }
        if horizon == 0 {
            return Err(DatasetError::OutOfRange {
                what: "horizon",
                index: 0,
                valid: "1..".to_string(),
            });
        }
        let low = self.low_dim()?;
        let (s, a, task_idx, ts) = &low.episodes[episode];
        let (ds, da) = (low.state_dim, low.action_dim);
        let mut actions = Vec::with_capacity(horizon);
        let mut mask = Vec::with_capacity(horizon);
        for k in 0..horizon {
            let j = (t + k).min(e.length - 1);
            actions.push(a[j * da..(j + 1) * da].to_vec());
            mask.push(if t + k < e.length { 1.0 } else { 0.0 });
        }
        let mut images = Vec::new();
        if with_images {
            let keys = self.image_keys();
            let row = if keys.is_empty() {
                None
            } else {
                let cols: Vec<&str> = keys
                    .iter()
                    .map(String::as_str)
                    .chain(["episode_index"])
                    .collect();
                Some(self.read_rows(e, t, t + 1, Some(&cols))?)
            };
            for (key, dtype) in self.visual_features() {
                let mut imgs = match (&dtype, &row) {
                    (Dtype::Video, _) => self.decode_video(e, &key, t, 1)?,
                    (_, Some(b)) => self.decode_image_column(&e.data_path, b, &key)?,
                    (_, None) => vec![],
                };
                if let Some(img) = imgs.pop() {
                    images.push((key, img));
                }
            }
        }
        Ok(Sample {
            episode,
            t,
            timestamp: ts[t],
            state: s[t * ds..(t + 1) * ds].to_vec(),
            actions,
            action_mask: mask,
            task: self.task_name(&e.data_path, task_idx[t])?,
            images,
        })
    }
}

/// Task strings by index; indices must be exactly 0..n.
fn dense_tasks(path: &Path, tasks: Vec<(usize, String)>) -> Result<Vec<String>, DatasetError> {
    let mut out = Vec::with_capacity(tasks.len());
    for (i, (idx, t)) in tasks.into_iter().enumerate() {
        if idx != i {
            return Err(DatasetError::format(
                path,
                "task_index",
                format!("task indices are not 0..n (found {idx} at position {i})"),
            ));
        }
        out.push(t);
    }
    Ok(out)
}

/// `meta/tasks.parquet`: the task strings are the pandas index column (named by the `pandas`
/// metadata: `task` in ours, `__index_level_0__` in LeRobot's), `task_index` a column.
fn read_tasks_parquet(path: &Path) -> Result<Vec<String>, DatasetError> {
    let (schema, batches) = io::read_parquet(path, &ReadRequest::default())?;
    let b = io::concat(path, &schema, &batches)?;
    let index_col = schema
        .metadata()
        .get("pandas")
        .and_then(|m| serde_json::from_str::<Value>(m).ok())
        .and_then(|m| {
            m.get("index_columns")?
                .as_array()?
                .iter()
                .find_map(|c| c.as_str().map(str::to_string))
        });
    let name = index_col
        .filter(|c| b.column_by_name(c).is_some())
        .or_else(|| {
            ["task", "__index_level_0__"]
                .iter()
                .find(|c| b.column_by_name(c).is_some())
                .map(|c| c.to_string())
        })
        .ok_or_else(|| DatasetError::format(path, "task", "no task string column"))?;
    let strings = columns::string_column(path, &name, columns::column(path, &b, &name)?)?;
    let idx = columns::i64_column(path, "task_index", columns::column(path, &b, "task_index")?)?;
    let mut pairs: Vec<(usize, String)> = idx
        .into_iter()
        .zip(strings)
        .map(|(i, s)| (i.max(0) as usize, s.unwrap_or_default()))
        .collect();
    pairs.sort();
    dense_tasks(path, pairs)
}
