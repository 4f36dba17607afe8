//! [`DatasetWriter`]: appends episodes to a LeRobot v2.1 or v3.0 dataset, atomically and
//! resumably, producing byte-identical files for identical input.
//!
//! Consistency protocol: every file is written to `NAME.tmp` then renamed, except the two
//! append-only JSON-lines files of v2.1 (`episodes.jsonl`, `episodes_stats.jsonl`), which get one
//! whole line per episode in a single write. `meta/info.json` is rewritten last for each episode:
//! its `total_episodes` is the commit point. A reader (or `resume`) trusts only the first
//! `total_episodes` episodes; `resume` deletes or truncates whatever a killed write left beyond
//! them. `meta/stats.json` (exact dataset statistics) is written by [`DatasetWriter::finish`] and
//! deleted on resume until the next `finish`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Float64Array, Int64Array, ListArray, RecordBatch, StringArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use parquet::schema::types::ColumnPath;
use serde_json::Value;
use tracing::{debug, info, warn};

use crate::columns::{self, EpisodeColumns};
use crate::error::DatasetError;
use crate::image::{decode_png, encode_png};
use crate::info::{
    self, DatasetInfo, V21_DATA_PATH, V21_VIDEO_PATH, V30_DATA_PATH, V30_EPISODES_PATH,
    V30_VIDEO_PATH,
};
use crate::io::{self, ReadRequest};
use crate::json::Oj;
use crate::spec::{
    ACTION_KEY, DEFAULT_KEYS, DatasetSpec, Episode, FeatureSpec, Format, STATE_KEY, WriterOptions,
};
use crate::stats::{FeatureStats, ImageHistogram, vector_stats};

const MIB: f64 = 1024.0 * 1024.0;
/// Column (v3.0) / key (v2.1) holding [`Episode::meta`] as JSON.
pub(crate) const EPISODE_META_KEY: &str = "episode_meta";

/// What the writer remembers about each committed episode.
#[derive(Debug, Clone)]
pub(crate) struct EpisodeRecord {
    pub index: usize,
    pub tasks: Vec<String>,
    pub length: usize,
    pub data_chunk: usize,
    pub data_file: usize,
    pub from: usize,
    pub to: usize,
    pub meta_chunk: usize,
    pub meta_file: usize,
    pub stats: Vec<(String, FeatureStats)>,
    pub meta: Value,
    /// Where each `video` feature's frames are (empty for image datasets).
    pub videos: Vec<VideoRef>,
}

/// Location of one episode's frames of one video feature.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VideoRef {
    /// Feature key (`observation.images.{camera}`).
    pub key: String,
    pub chunk: usize,
    pub file: usize,
    /// Seconds into the file where the episode starts / ends.
    pub from: f64,
    pub to: f64,
}

/// Everything needed for exact dataset-level statistics at `finish`.
#[derive(Default)]
struct Accumulator {
    state: Vec<f32>,
    action: Vec<f32>,
    timestamp: Vec<f32>,
    frame_index: Vec<f64>,
    episode_index: Vec<f64>,
    index: Vec<f64>,
    task_index: Vec<f64>,
    images: Vec<ImageHistogram>,
}

/// The v3.0 data (or episodes-metadata) parquet file episodes are currently appended to.
struct OpenFile {
    chunk: usize,
    file: usize,
    /// One batch per episode already in the file.
    batches: Vec<RecordBatch>,
    /// Rows (data) or episodes (metadata) in the file.
    rows: usize,
    /// Size of the file on disk (bytes).
    size: u64,
}

/// Appends episodes to a dataset directory. See the module docs for the on-disk protocol.
pub struct DatasetWriter {
    dir: PathBuf,
    format: Format,
    spec: DatasetSpec,
    opts: WriterOptions,
    schema: SchemaRef,
    binary_cols: Vec<ColumnPath>,
    tasks: Vec<String>,
    episodes: Vec<EpisodeRecord>,
    total_frames: usize,
    acc: Accumulator,
    data_file: Option<OpenFile>,
    meta_file: Option<OpenFile>,
    /// Set when a write failed half-way: the directory needs `resume` to be consistent again.
    poisoned: bool,
}

impl std::fmt::Debug for DatasetWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatasetWriter")
            .field("dir", &self.dir)
            .field("format", &self.format)
            .field("episodes", &self.episodes.len())
            .field("frames", &self.total_frames)
            .finish()
    }
}

/// Next (chunk, file) pair: files wrap into a new chunk after `chunks_size`.
fn next_file(chunk: usize, file: usize, chunks_size: usize) -> (usize, usize) {
    if file + 1 >= chunks_size {
        (chunk + 1, 0)
    } else {
        (chunk, file + 1)
    }
}

impl DatasetWriter {
    /// Creates a new dataset at `dir` (which must be absent or empty), or with `resume` reopens
    /// an existing one written with the same format and spec: episodes already committed are
    /// kept (see [`DatasetWriter::episodes_written`]), leftovers of an interrupted write are
    /// removed. `resume` on an absent or empty directory creates a new dataset.
    pub fn create(
        dir: &Path,
        format: Format,
        spec: DatasetSpec,
        resume: bool,
    ) -> Result<Self, DatasetError> {
        Self::create_with(dir, format, spec, resume, WriterOptions::default())
    }

    /// [`DatasetWriter::create`] with non-default layout options (ignored on resume: the
    /// dataset's own `info.json` settings are kept).
    pub fn create_with(
        dir: &Path,
        format: Format,
        spec: DatasetSpec,
        resume: bool,
        opts: WriterOptions,
    ) -> Result<Self, DatasetError> {
        spec.validate()?;
        if spec.video {
            if let Some((name, w, h)) = spec
                .cameras
                .iter()
                .find(|(_, w, h)| w % 2 == 1 || h % 2 == 1)
            {
                return Err(DatasetError::spec(
                    "cameras",
                    format!("{name}: {w}x{h}: video (yuv420p) needs even width and height"),
                ));
            }
            if !spec.cameras.is_empty() && !crate::video::ffmpeg_available() {
                return Err(DatasetError::Unsupported(
                    "video = true needs the `ffmpeg` executable on PATH (not found); install \
                     ffmpeg or use video = false (PNG image columns)"
                        .to_string(),
                ));
            }
        }
        if opts.chunks_size == 0 {
            return Err(DatasetError::spec("chunks_size", "must be at least 1"));
        }
        let info_path = dir.join("meta/info.json");
        let exists = dir.exists();
        if exists && !dir.is_dir() {
            return Err(DatasetError::NotADataset {
                dir: dir.to_path_buf(),
            });
        }
        let empty = !exists
            || std::fs::read_dir(dir)
                .map_err(|e| DatasetError::io(dir, e))?
                .next()
                .is_none();
        let mut w = Self {
            dir: dir.to_path_buf(),
            format,
            schema: columns::data_schema(format, &spec),
            binary_cols: columns::image_byte_columns(&spec),
            acc: Accumulator {
                images: vec![ImageHistogram::default(); spec.cameras.len()],
                ..Default::default()
            },
            spec,
            opts,
            tasks: vec![],
            episodes: vec![],
            total_frames: 0,
            data_file: None,
            meta_file: None,
            poisoned: false,
        };
        if empty {
            io::create_dir_all(&dir.join("meta"))?;
            w.write_info()?;
            w.write_modality()?;
            info!(dir = %dir.display(), format = format.codebase_version(), "created dataset");
            return Ok(w);
        }
        if !info_path.is_file() {
            return Err(DatasetError::NotADataset {
                dir: dir.to_path_buf(),
            });
        }
        if !resume {
            return Err(DatasetError::AlreadyExists {
                dir: dir.to_path_buf(),
            });
        }
        w.resume()?;
        Ok(w)
    }

    /// Number of committed episodes; the next episode gets this index.
    pub fn episodes_written(&self) -> usize {
        self.episodes.len()
    }

    /// Number of committed frames.
    pub fn frames_written(&self) -> usize {
        self.total_frames
    }

    /// The dataset directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn v21_data_rel(&self, episode: usize) -> String {
        // The template has only these two fields: formatting cannot fail.
        info::format_template(
            V21_DATA_PATH,
            &[
                ("episode_chunk", episode / self.opts.chunks_size),
                ("episode_index", episode),
            ],
            &[],
        )
        .unwrap_or_default()
    }

    fn v30_rel(template: &str, chunk: usize, file: usize) -> String {
        info::format_template(
            template,
            &[("chunk_index", chunk), ("file_index", file)],
            &[],
        )
        .unwrap_or_default()
    }

    fn write_info(&self) -> Result<(), DatasetError> {
        let j = info::info_json(
            self.format,
            &self.spec,
            &self.opts,
            self.episodes.len(),
            self.total_frames,
            self.tasks.len(),
        );
        io::write_atomic(&self.path("meta/info.json"), &io::to_pretty_json(&j))
    }

    fn write_modality(&self) -> Result<(), DatasetError> {
        let j = info::modality_json(&self.spec);
        io::write_atomic(&self.path("meta/modality.json"), &io::to_pretty_json(&j))
    }

    /// Checks one episode against the spec. Errors name the episode, frame and field.
    fn validate(&self, ep: &Episode) -> Result<(), DatasetError> {
        let e = self.episodes.len();
        let bad_ep = |field: &str, problem: String| DatasetError::InvalidEpisode {
            episode: e,
            field: field.to_string(),
            problem,
        };
        if ep.frames.is_empty() {
            return Err(bad_ep(
                "frames",
                "an episode needs at least one frame".into(),
            ));
        }
        if ep.task.trim().is_empty() {
            return Err(bad_ep("task", "empty task string".into()));
        }
        for (t, f) in ep.frames.iter().enumerate() {
            let bad = |field: String, problem: String| DatasetError::InvalidFrame {
                episode: e,
                frame: t,
                field,
                problem,
            };
            for (key, v, n) in [
                (STATE_KEY, &f.state, self.spec.state_names.len()),
                (ACTION_KEY, &f.action, self.spec.action_names.len()),
            ] {
                if v.len() != n {
                    return Err(bad(
                        key.to_string(),
                        format!("has {} values, the spec says {n}", v.len()),
                    ));
                }
                if let Some(d) = v.iter().position(|x| !x.is_finite()) {
                    return Err(bad(
                        key.to_string(),
                        format!("non-finite value {} at dimension {d}", v[d]),
                    ));
                }
            }
            if f.images.len() != self.spec.cameras.len() {
                return Err(bad(
                    "images".to_string(),
                    format!(
                        "{} images, the spec has {} cameras",
                        f.images.len(),
                        self.spec.cameras.len()
                    ),
                ));
            }
            for (c, (img, (name, w, h))) in f.images.iter().zip(&self.spec.cameras).enumerate() {
                let want = *w as usize * *h as usize * 3;
                if img.len() != want {
                    return Err(bad(
                        self.spec.camera_key(c),
                        format!(
                            "{} bytes, camera {name} needs {w}x{h}x3 = {want} (H×W×3 RGB u8)",
                            img.len()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Appends `ep` as episode [`DatasetWriter::episodes_written`] and commits it.
    pub fn write_episode(&mut self, ep: &Episode) -> Result<(), DatasetError> {
        if self.poisoned {
            return Err(DatasetError::ResumeMismatch {
                dir: self.dir.clone(),
                problem: "an earlier write failed half-way; reopen the dataset with resume=true"
                    .to_string(),
            });
        }
        self.validate(ep)?;
        let e = self.episodes.len();
        let n = ep.frames.len();
        let global_start = self.total_frames;
        let (task_index, new_task) = match self.tasks.iter().position(|t| *t == ep.task) {
            Some(i) => (i, false),
            None => (self.tasks.len(), true),
        };

        // Columns.
        let ds = self.spec.state_names.len();
        let da = self.spec.action_names.len();
        let mut state = Vec::with_capacity(n * ds);
        let mut action = Vec::with_capacity(n * da);
        for f in &ep.frames {
            state.extend_from_slice(&f.state);
            action.extend_from_slice(&f.action);
        }
        let timestamps: Vec<f32> = (0..n).map(|t| (t as f64 / self.spec.fps) as f32).collect();
        let (pngs, hists) = self.encode_images(ep)?;
        let pngs = if self.spec.video { vec![] } else { pngs };
        let videos = self.encode_videos(ep)?;

        // Per-episode statistics, in feature order.
        let mut stats = vec![
            (STATE_KEY.to_string(), vector_stats(&state, ds, vec![ds])),
            (ACTION_KEY.to_string(), vector_stats(&action, da, vec![da])),
        ];
        for (c, h) in hists.iter().enumerate() {
            stats.push((self.spec.camera_key(c), h.stats()));
        }
        let frame_index: Vec<f64> = (0..n).map(|t| t as f64).collect();
        let episode_index = vec![e as f64; n];
        let index: Vec<f64> = (0..n).map(|t| (global_start + t) as f64).collect();
        let task_col = vec![task_index as f64; n];
        stats.push(("timestamp".into(), vector_stats(&timestamps, 1, vec![1])));
        for (key, v) in [
            ("frame_index", &frame_index),
            ("episode_index", &episode_index),
            ("index", &index),
            ("task_index", &task_col),
        ] {
            stats.push((key.to_string(), vector_stats(v, 1, vec![1])));
        }

        let data_path = match self.format {
            Format::LeRobotV21 => self.path(&self.v21_data_rel(e)),
            Format::LeRobotV30 => self.dir.clone(),
        };
        let batch = columns::episode_batch(
            &data_path,
            &self.schema,
            EpisodeColumns {
                state: state.clone(),
                action: action.clone(),
                pngs,
                timestamps: timestamps.clone(),
                episode_index: e as i64,
                global_start: global_start as i64,
                task_index: task_index as i64,
                spec: &self.spec,
            },
        )?;
        let mut record = EpisodeRecord {
            index: e,
            tasks: vec![ep.task.clone()],
            length: n,
            data_chunk: e / self.opts.chunks_size,
            data_file: 0,
            from: global_start,
            to: global_start + n,
            meta_chunk: 0,
            meta_file: 0,
            stats,
            meta: ep.meta.clone(),
            videos: videos.iter().map(|(v, _)| v.clone()).collect(),
        };

        // Files. From here on a failure leaves the directory needing `resume`.
        self.poisoned = true;
        for (_, path) in &videos {
            let tmp = io::tmp_path(path);
            std::fs::rename(&tmp, path).map_err(|e| DatasetError::io(path, e))?;
        }
        if new_task {
            self.tasks.push(ep.task.clone());
        }
        let res = match self.format {
            Format::LeRobotV21 => self.commit_v21(&record, batch, new_task),
            Format::LeRobotV30 => self.commit_v30(&mut record, batch, new_task),
        };
        if let Err(err) = res {
            if new_task {
                self.tasks.pop();
            }
            return Err(err);
        }
        self.episodes.push(record);
        self.total_frames += n;
        if let Err(err) = self.write_info() {
            self.episodes.pop();
            self.total_frames -= n;
            if new_task {
                self.tasks.pop();
            }
            return Err(err);
        }
        self.poisoned = false;

        // Accumulate for the dataset statistics.
        self.acc.state.extend_from_slice(&state);
        self.acc.action.extend_from_slice(&action);
        self.acc.timestamp.extend_from_slice(&timestamps);
        self.acc.frame_index.extend_from_slice(&frame_index);
        self.acc.episode_index.extend_from_slice(&episode_index);
        self.acc.index.extend_from_slice(&index);
        self.acc.task_index.extend_from_slice(&task_col);
        for (acc, h) in self.acc.images.iter_mut().zip(&hists) {
            acc.merge(h);
        }
        debug!(episode = e, frames = n, "episode written");
        Ok(())
    }

    /// Relative mp4 path and (chunk, file) of camera feature `key` for episode `e`: one episode
    /// per file in both layouts.
    fn video_rel(&self, key: &str, e: usize) -> (String, usize, usize) {
        let cs = self.opts.chunks_size;
        let (chunk, file) = (e / cs, e % cs);
        let rel = match self.format {
            Format::LeRobotV21 => info::format_template(
                V21_VIDEO_PATH,
                &[("episode_chunk", chunk), ("episode_index", e)],
                &[("video_key", key)],
            ),
            Format::LeRobotV30 => info::format_template(
                V30_VIDEO_PATH,
                &[("chunk_index", chunk), ("file_index", file)],
                &[("video_key", key)],
            ),
        };
        // Our own templates: formatting cannot fail.
        (rel.unwrap_or_default(), chunk, file)
    }

    /// Encodes each camera's frames to `{final path}.tmp` (cameras in parallel); the caller
    /// renames them into place when committing.
    fn encode_videos(&self, ep: &Episode) -> Result<Vec<(VideoRef, PathBuf)>, DatasetError> {
        if !self.spec.video {
            return Ok(vec![]);
        }
        let e = self.episodes.len();
        let n = ep.frames.len();
        let mut jobs = Vec::new();
        for (c, (_, w, h)) in self.spec.cameras.iter().enumerate() {
            let key = self.spec.camera_key(c);
            let (rel, chunk, file) = self.video_rel(&key, e);
            let path = self.path(&rel);
            if let Some(parent) = path.parent() {
                io::create_dir_all(parent)?;
            }
            let r = VideoRef {
                key,
                chunk,
                file,
                from: 0.0,
                to: n as f64 / self.spec.fps,
            };
            jobs.push((c, *w, *h, r, path));
        }
        let fps = self.spec.fps;
        let results: Vec<Result<(), DatasetError>> = std::thread::scope(|s| {
            let handles: Vec<_> = jobs
                .iter()
                .map(|(c, w, h, _, path)| {
                    s.spawn(move || {
                        let frames: Vec<&[u8]> =
                            ep.frames.iter().map(|f| f.images[*c].as_slice()).collect();
                        crate::video::encode_mp4(&io::tmp_path(path), &frames, *w, *h, fps)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(DatasetError::Unsupported(
                            "a video encoding thread panicked".to_string(),
                        ))
                    })
                })
                .collect()
        });
        let failed = results.into_iter().find_map(Result::err);
        if let Some(err) = failed {
            for (_, _, _, _, path) in &jobs {
                let _ = io::remove_file_if_exists(&io::tmp_path(path));
            }
            return Err(err);
        }
        Ok(jobs.into_iter().map(|(_, _, _, r, p)| (r, p)).collect())
    }

    /// PNG-encodes every camera frame (in parallel, deterministic output) and histograms them.
    #[allow(clippy::type_complexity)]
    fn encode_images(
        &self,
        ep: &Episode,
    ) -> Result<(Vec<Vec<Vec<u8>>>, Vec<ImageHistogram>), DatasetError> {
        let cams = self.spec.cameras.len();
        let n = ep.frames.len();
        if cams == 0 {
            return Ok((vec![], vec![]));
        }
        let jobs: Vec<(usize, usize)> = (0..cams)
            .flat_map(|c| (0..n).map(move |t| (c, t)))
            .collect();
        let workers = std::thread::available_parallelism()
            .map(|p| p.get())
            .unwrap_or(1)
            .min(jobs.len())
            .max(1);
        let per = jobs.len().div_ceil(workers);
        type Encoded = Vec<((usize, usize), Result<Vec<u8>, String>)>;
        let results: Vec<(Encoded, Vec<ImageHistogram>)> = std::thread::scope(|s| {
            let handles: Vec<_> = jobs
                .chunks(per)
                .map(|chunk| {
                    s.spawn(move || {
                        let mut hists = vec![ImageHistogram::default(); cams];
                        let mut out = Vec::with_capacity(chunk.len());
                        for &(c, t) in chunk {
                            let (_, w, h) = &self.spec.cameras[c];
                            let rgb = &ep.frames[t].images[c];
                            hists[c].add(rgb);
                            let png = if self.spec.video {
                                Ok(vec![])
                            } else {
                                encode_png(rgb, *w, *h)
                            };
                            out.push(((c, t), png));
                        }
                        (out, hists)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| (vec![], vec![ImageHistogram::default(); cams]))
                })
                .collect()
        });
        let mut pngs = vec![vec![Vec::new(); n]; cams];
        let mut hists = vec![ImageHistogram::default(); cams];
        let mut done = 0;
        for (out, hs) in results {
            for ((c, t), r) in out {
                pngs[c][t] = r.map_err(|problem| DatasetError::InvalidFrame {
                    episode: self.episodes.len(),
                    frame: t,
                    field: self.spec.camera_key(c),
                    problem: format!("PNG encoding failed: {problem}"),
                })?;
                done += 1;
            }
            for (a, h) in hists.iter_mut().zip(&hs) {
                a.merge(h);
            }
        }
        if done != jobs.len() {
            return Err(DatasetError::Unsupported(
                "a PNG encoding thread panicked".to_string(),
            ));
        }
        Ok((pngs, hists))
    }

    fn commit_v21(
        &mut self,
        r: &EpisodeRecord,
        batch: RecordBatch,
        new_task: bool,
    ) -> Result<(), DatasetError> {
        let data = self.path(&self.v21_data_rel(r.index));
        io::write_parquet(&data, &self.schema, &[batch], &self.binary_cols)?;
        io::append(
            &self.path("meta/episodes_stats.jsonl"),
            &io::to_json_line(&episode_stats_line(r)),
        )?;
        if new_task {
            let i = self.tasks.len() - 1;
            io::append(
                &self.path("meta/tasks.jsonl"),
                &io::to_json_line(&task_line(i, &self.tasks[i])),
            )?;
        }
        io::append(
            &self.path("meta/episodes.jsonl"),
            &io::to_json_line(&episode_line(r)),
        )?;
        Ok(())
    }

    fn commit_v30(
        &mut self,
        r: &mut EpisodeRecord,
        batch: RecordBatch,
        new_task: bool,
    ) -> Result<(), DatasetError> {
        let limit = self.opts.data_files_size_in_mb as f64;
        let chunks = self.opts.chunks_size;
        // Data file: continue the current one unless it would reach the size limit.
        let (chunk, file, mut batches) = match self.data_file.take() {
            None => (0, 0, vec![]),
            Some(f) => {
                let size_mb = f.size as f64 / MIB;
                let per_row = size_mb / f.rows.max(1) as f64;
                if size_mb + per_row * r.length as f64 >= limit {
                    let (c, i) = next_file(f.chunk, f.file, chunks);
                    (c, i, vec![])
                } else {
                    (f.chunk, f.file, f.batches)
                }
            }
        };
        batches.push(batch);
        let path = self.path(&Self::v30_rel(V30_DATA_PATH, chunk, file));
        let size = io::write_parquet(&path, &self.schema, &batches, &self.binary_cols)?;
        let file_rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        r.data_chunk = chunk;
        r.data_file = file;
        self.data_file = Some(OpenFile {
            chunk,
            file,
            batches,
            rows: file_rows,
            size,
        });

        // Tasks (rewritten whenever the table changes; cheap).
        if new_task {
            write_tasks_parquet(&self.path("meta/tasks.parquet"), &self.tasks)?;
        }

        // Episodes metadata file.
        let (mchunk, mfile, start) = match &self.meta_file {
            None => (0, 0, true),
            Some(f) => {
                let size_mb = f.size as f64 / MIB;
                if size_mb + size_mb / f.rows.max(1) as f64 >= limit {
                    let (c, i) = next_file(f.chunk, f.file, chunks);
                    (c, i, true)
                } else {
                    (f.chunk, f.file, false)
                }
            }
        };
        r.meta_chunk = mchunk;
        r.meta_file = mfile;
        let mut rows: Vec<&EpisodeRecord> = if start {
            vec![]
        } else {
            self.episodes
                .iter()
                .filter(|e| e.meta_chunk == mchunk && e.meta_file == mfile)
                .collect()
        };
        rows.push(r);
        let mpath = self.path(&Self::v30_rel(V30_EPISODES_PATH, mchunk, mfile));
        let size = write_episodes_parquet(&mpath, &self.spec, &rows)?;
        self.meta_file = Some(OpenFile {
            chunk: mchunk,
            file: mfile,
            batches: vec![],
            rows: rows.len(),
            size,
        });
        Ok(())
    }

    /// Exact dataset statistics of the committed episodes, in feature order.
    fn dataset_stats(&self, with_images: bool) -> Vec<(String, FeatureStats)> {
        let ds = self.spec.state_names.len();
        let da = self.spec.action_names.len();
        let mut out = vec![
            (
                STATE_KEY.to_string(),
                vector_stats(&self.acc.state, ds, vec![ds]),
            ),
            (
                ACTION_KEY.to_string(),
                vector_stats(&self.acc.action, da, vec![da]),
            ),
        ];
        if with_images {
            for (c, h) in self.acc.images.iter().enumerate() {
                let key = self.spec.camera_key(c);
                if self.spec.video {
                    // Decoded video frames differ from what was encoded, so resumed datasets
                    // cannot rebuild an exact histogram: aggregate the (exact) per-episode
                    // statistics as LeRobot does.
                    let parts: Vec<&FeatureStats> = self
                        .episodes
                        .iter()
                        .filter_map(|e| e.stats.iter().find(|(k, _)| *k == key).map(|(_, s)| s))
                        .collect();
                    if let Some(s) = crate::stats::aggregate(&parts) {
                        out.push((key, s));
                    }
                } else {
                    out.push((key, h.stats()));
                }
            }
        }
        out.push((
            "timestamp".to_string(),
            vector_stats(&self.acc.timestamp, 1, vec![1]),
        ));
        for (key, v) in [
            ("frame_index", &self.acc.frame_index),
            ("episode_index", &self.acc.episode_index),
            ("index", &self.acc.index),
            ("task_index", &self.acc.task_index),
        ] {
            out.push((key.to_string(), vector_stats(v, 1, vec![1])));
        }
        out
    }

    /// Writes `meta/stats.json` (exact statistics over all episodes; v2.1 leaves out image
    /// features, as GR00T's loader expects flat lists there) and the final `info.json`.
    pub fn finish(self) -> Result<DatasetInfo, DatasetError> {
        if self.poisoned {
            return Err(DatasetError::ResumeMismatch {
                dir: self.dir.clone(),
                problem: "an earlier write failed half-way; reopen the dataset with resume=true"
                    .to_string(),
            });
        }
        let all = self.dataset_stats(true);
        let file_stats: Vec<(String, FeatureStats)> = match self.format {
            Format::LeRobotV30 => all.clone(),
            Format::LeRobotV21 => self.dataset_stats(false).into_iter().collect(),
        };
        if !self.episodes.is_empty() {
            io::write_atomic(
                &self.path("meta/stats.json"),
                &io::to_pretty_json(&info::stats_json(&file_stats)),
            )?;
        }
        self.write_info()?;
        let features = self.spec.features();
        info!(
            dir = %self.dir.display(),
            episodes = self.episodes.len(),
            frames = self.total_frames,
            "dataset finished"
        );
        Ok(DatasetInfo {
            format: self.format,
            codebase_version: self.format.codebase_version().to_string(),
            fps: self.spec.fps,
            robot_type: Some(self.spec.robot_type.clone()),
            total_episodes: self.episodes.len(),
            total_frames: self.total_frames,
            total_tasks: self.tasks.len(),
            chunks_size: self.opts.chunks_size,
            data_path: match self.format {
                Format::LeRobotV21 => V21_DATA_PATH.to_string(),
                Format::LeRobotV30 => V30_DATA_PATH.to_string(),
            },
            video_path: self.spec.video.then(|| {
                match self.format {
                    Format::LeRobotV21 => V21_VIDEO_PATH,
                    Format::LeRobotV30 => V30_VIDEO_PATH,
                }
                .to_string()
            }),
            features,
            tasks: self.tasks.clone(),
            stats: all,
        })
    }

    // ---------------------------------------------------------------- resume

    fn resume(&mut self) -> Result<(), DatasetError> {
        let info_path = self.path("meta/info.json");
        let bytes = io::read(&info_path)?;
        let parsed = info::parse_info(&info_path, &bytes)?;
        let raw: Value =
            serde_json::from_slice(&bytes).map_err(|e| DatasetError::json(&info_path, e))?;
        let mismatch = |problem: String| DatasetError::ResumeMismatch {
            dir: self.dir.clone(),
            problem,
        };
        if parsed.codebase_version != self.format.codebase_version() {
            return Err(mismatch(format!(
                "dataset is codebase_version {}, requested {}",
                parsed.codebase_version,
                self.format.codebase_version()
            )));
        }
        let want: Vec<FeatureSpec> = self.spec.features();
        if parsed.features != want {
            return Err(mismatch(
                "features (names, dtypes, shapes) differ from the spec".to_string(),
            ));
        }
        if (parsed.fps - self.spec.fps).abs() > 1e-9
            || parsed.robot_type.as_deref() != Some(self.spec.robot_type.as_str())
        {
            return Err(mismatch(
                "fps or robot_type differ from the spec".to_string(),
            ));
        }
        // Keep the dataset's own layout settings.
        self.opts.chunks_size = parsed.chunks_size;
        for (key, slot) in [
            (
                "data_files_size_in_mb",
                &mut self.opts.data_files_size_in_mb,
            ),
            (
                "video_files_size_in_mb",
                &mut self.opts.video_files_size_in_mb,
            ),
        ] {
            if let Some(v) = raw.get(key).and_then(Value::as_u64) {
                *slot = v as usize;
            }
        }
        let n = parsed.total_episodes;

        // Leftovers of an interrupted write.
        for f in io::walk_files(&self.dir)? {
            if f.to_string_lossy().ends_with(io::TMP_SUFFIX) {
                warn!(file = %f.display(), "removing partial file of an interrupted write");
                io::remove_file_if_exists(&f)?;
            }
        }
        io::remove_file_if_exists(&self.path("meta/stats.json"))?;

        match self.format {
            Format::LeRobotV21 => self.resume_v21(n)?,
            Format::LeRobotV30 => self.resume_v30(n)?,
        }
        self.total_frames = self.episodes.iter().map(|e| e.length).sum();
        self.tasks = tasks_of(&self.episodes);
        self.write_modality()?;
        self.write_info()?;
        info!(
            dir = %self.dir.display(),
            episodes = n,
            frames = self.total_frames,
            "resumed dataset"
        );
        Ok(())
    }

    /// Keeps the first `n` lines of a JSON-lines file (checking `episode_index` = line number).
    fn truncate_jsonl(&self, rel: &str, n: usize) -> Result<Vec<Value>, DatasetError> {
        let path = self.path(rel);
        let bytes = if path.exists() {
            io::read(&path)?
        } else {
            vec![]
        };
        let mut kept = Vec::new();
        let mut values = Vec::new();
        for line in bytes.split_inclusive(|&b| b == b'\n') {
            if values.len() == n {
                break;
            }
            if !line.ends_with(b"\n") {
                break; // torn last line of a killed write
            }
            let v: Value =
                serde_json::from_slice(line).map_err(|e| DatasetError::json(&path, e))?;
            let idx = v.get("episode_index").and_then(Value::as_u64);
            if idx != Some(values.len() as u64) {
                return Err(DatasetError::format(
                    &path,
                    format!("line {}", values.len() + 1),
                    format!("episode_index {idx:?}, expected {}", values.len()),
                ));
            }
            kept.extend_from_slice(line);
            values.push(v);
        }
        if values.len() != n {
            return Err(DatasetError::format(
                &path,
                "lines",
                format!("{} complete episodes, info.json says {n}", values.len()),
            ));
        }
        if kept.len() != bytes.len() {
            warn!(file = %path.display(), "dropping lines of an uncommitted episode");
            io::write_atomic(&path, &kept)?;
        }
        Ok(values)
    }

    fn resume_v21(&mut self, n: usize) -> Result<(), DatasetError> {
        let eps = self.truncate_jsonl("meta/episodes.jsonl", n)?;
        let stats_lines = self.truncate_jsonl("meta/episodes_stats.jsonl", n)?;
        for (i, v) in eps.iter().enumerate() {
            let stats: Vec<(String, FeatureStats)> = stats_lines[i]
                .get("stats")
                .and_then(Value::as_object)
                .map(|o| {
                    o.iter()
                        .filter_map(|(k, s)| FeatureStats::from_json(s).map(|s| (k.clone(), s)))
                        .collect()
                })
                .unwrap_or_default();
            let videos = (0..self.spec.cameras.len())
                .filter(|_| self.spec.video)
                .map(|c| {
                    let key = self.spec.camera_key(c);
                    let (_, chunk, file) = self.video_rel(&key, i);
                    let length = v.get("length").and_then(Value::as_u64).unwrap_or(0);
                    VideoRef {
                        key,
                        chunk,
                        file,
                        from: 0.0,
                        to: length as f64 / self.spec.fps,
                    }
                })
                .collect();
            let tasks = v
                .get("tasks")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|t| t.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let length = v.get("length").and_then(Value::as_u64).unwrap_or(0) as usize;
            let from = self.episodes.last().map(|e| e.to).unwrap_or(0);
            self.episodes.push(EpisodeRecord {
                index: i,
                tasks,
                length,
                data_chunk: i / self.opts.chunks_size,
                data_file: 0,
                from,
                to: from + length,
                meta_chunk: 0,
                meta_file: 0,
                stats,
                meta: v.get(EPISODE_META_KEY).cloned().unwrap_or(Value::Null),
                videos,
            });
        }
        // tasks.jsonl: exactly the tasks of the committed episodes.
        let tasks = tasks_of(&self.episodes);
        let mut bytes = Vec::new();
        for (i, t) in tasks.iter().enumerate() {
            bytes.extend(io::to_json_line(&task_line(i, t)));
        }
        let tpath = self.path("meta/tasks.jsonl");
        let old = if tpath.exists() {
            io::read(&tpath)?
        } else {
            vec![]
        };
        if old != bytes {
            io::write_atomic(&tpath, &bytes)?;
        }
        // Data files of uncommitted episodes.
        for f in io::walk_files(&self.path("data"))? {
            let name = f.file_name().and_then(|s| s.to_str()).unwrap_or_default();
            let idx = name
                .strip_prefix("episode_")
                .and_then(|s| s.strip_suffix(".parquet"))
                .and_then(|s| s.parse::<usize>().ok());
            if let Some(i) = idx
                && i >= n
            {
                warn!(file = %f.display(), "removing data of an uncommitted episode");
                io::remove_file_if_exists(&f)?;
            }
        }
        self.remove_unreferenced_videos()?;
        // Statistics accumulator from the committed data.
        for i in 0..n {
            let path = self.path(&self.v21_data_rel(i));
            let (_, batches) = io::read_parquet(&path, &ReadRequest::default())?;
            for b in &batches {
                self.accumulate(&path, b)?;
            }
        }
        Ok(())
    }

    /// Deletes mp4 files no committed episode points to (leftovers of an uncommitted one).
    fn remove_unreferenced_videos(&self) -> Result<(), DatasetError> {
        let keep: std::collections::BTreeSet<PathBuf> = self
            .episodes
            .iter()
            .flat_map(|e| {
                e.videos
                    .iter()
                    .map(move |v| self.path(&self.video_rel(&v.key, e.index).0))
            })
            .collect();
        for f in io::walk_files(&self.path("videos"))? {
            if !keep.contains(&f) {
                warn!(file = %f.display(), "removing video of an uncommitted episode");
                io::remove_file_if_exists(&f)?;
            }
        }
        Ok(())
    }

    fn resume_v30(&mut self, n: usize) -> Result<(), DatasetError> {
        // Episodes metadata.
        let mut records = Vec::new();
        for f in io::walk_files(&self.path("meta/episodes"))? {
            if f.extension().and_then(|s| s.to_str()) != Some("parquet") {
                continue;
            }
            records.extend(read_episode_records(&f)?);
        }
        records.sort_by_key(|r| r.index);
        records.retain(|r| r.index < n);
        if records.len() != n || records.iter().enumerate().any(|(i, r)| r.index != i) {
            return Err(DatasetError::format(
                self.path("meta/episodes"),
                "episode_index",
                format!("episodes 0..{n} are not all present exactly once"),
            ));
        }
        self.episodes = records;
        self.remove_unreferenced_videos()?;
        // Rewrite the metadata files to exactly the committed rows, drop unreferenced ones.
        let mut keep_meta = std::collections::BTreeSet::new();
        for r in &self.episodes {
            keep_meta.insert((r.meta_chunk, r.meta_file));
        }
        for &(c, f) in &keep_meta {
            let rows: Vec<&EpisodeRecord> = self
                .episodes
                .iter()
                .filter(|r| (r.meta_chunk, r.meta_file) == (c, f))
                .collect();
            let path = self.path(&Self::v30_rel(V30_EPISODES_PATH, c, f));
            let bytes = encode_episodes_parquet(&path, &self.spec, &rows)?;
            if io::read(&path).ok().as_deref() != Some(bytes.as_slice()) {
                io::write_atomic(&path, &bytes)?;
            }
            self.meta_file = Some(OpenFile {
                chunk: c,
                file: f,
                batches: vec![],
                rows: rows.len(),
                size: bytes.len() as u64,
            });
        }
        for f in io::walk_files(&self.path("meta/episodes"))? {
            let keep = keep_meta
                .iter()
                .any(|&(c, i)| f == self.path(&Self::v30_rel(V30_EPISODES_PATH, c, i)));
            if !keep {
                warn!(file = %f.display(), "removing episodes metadata of an uncommitted episode");
                io::remove_file_if_exists(&f)?;
            }
        }
        // Tasks.
        let tasks = tasks_of(&self.episodes);
        if !tasks.is_empty() {
            write_tasks_parquet(&self.path("meta/tasks.parquet"), &tasks)?;
        } else {
            io::remove_file_if_exists(&self.path("meta/tasks.parquet"))?;
        }
        // Data files: keep the committed rows only.
        let mut keep_data = std::collections::BTreeSet::new();
        for r in &self.episodes {
            keep_data.insert((r.data_chunk, r.data_file));
        }
        for f in io::walk_files(&self.path("data"))? {
            let keep = keep_data
                .iter()
                .any(|&(c, i)| f == self.path(&Self::v30_rel(V30_DATA_PATH, c, i)));
            if !keep {
                warn!(file = %f.display(), "removing data of an uncommitted episode");
                io::remove_file_if_exists(&f)?;
            }
        }
        let last = keep_data.iter().next_back().copied();
        for &(c, f) in &keep_data {
            let path = self.path(&Self::v30_rel(V30_DATA_PATH, c, f));
            let (_, batches) = io::read_parquet(&path, &ReadRequest::default())?;
            let all = io::concat(&path, &self.schema, &batches)?;
            let all = RecordBatch::try_new(self.schema.clone(), all.columns().to_vec())
                .map_err(|e| DatasetError::arrow(&path, e))?;
            // Split the file's rows back into one batch per committed episode.
            let ep_col = columns::i64_column(
                &path,
                "episode_index",
                columns::column(&path, &all, "episode_index")?,
            )?;
            let mut per_episode = Vec::new();
            let mut row = 0usize;
            for r in self
                .episodes
                .iter()
                .filter(|r| (r.data_chunk, r.data_file) == (c, f))
            {
                if row + r.length > all.num_rows()
                    || ep_col[row..row + r.length]
                        .iter()
                        .any(|&x| x != r.index as i64)
                {
                    return Err(DatasetError::format(
                        &path,
                        "episode_index",
                        format!(
                            "rows of episode {} are not where the metadata says",
                            r.index
                        ),
                    ));
                }
                per_episode.push(all.slice(row, r.length));
                row += r.length;
            }
            let bytes = if row != all.num_rows() {
                warn!(file = %path.display(), "dropping rows of an uncommitted episode");
                let bytes =
                    io::encode_parquet(&path, &self.schema, &per_episode, &self.binary_cols)?;
                io::write_atomic(&path, &bytes)?;
                bytes.len() as u64
            } else {
                std::fs::metadata(&path)
                    .map_err(|e| DatasetError::io(&path, e))?
                    .len()
            };
            for b in &per_episode {
                self.accumulate(&path, b)?;
            }
            if Some((c, f)) == last {
                self.data_file = Some(OpenFile {
                    chunk: c,
                    file: f,
                    rows: row,
                    batches: per_episode,
                    size: bytes,
                });
            }
        }
        Ok(())
    }

    /// Adds one batch of committed data rows to the statistics accumulator.
    fn accumulate(&mut self, path: &Path, b: &RecordBatch) -> Result<(), DatasetError> {
        let (s, _) = columns::f32_matrix(path, STATE_KEY, columns::column(path, b, STATE_KEY)?)?;
        let (a, _) = columns::f32_matrix(path, ACTION_KEY, columns::column(path, b, ACTION_KEY)?)?;
        self.acc.state.extend(s);
        self.acc.action.extend(a);
        self.acc.timestamp.extend(columns::f32_column(
            path,
            "timestamp",
            columns::column(path, b, "timestamp")?,
        )?);
        for key in &DEFAULT_KEYS[1..] {
            let v = columns::i64_column(path, key, columns::column(path, b, key)?)?;
            let dst = match *key {
                "frame_index" => &mut self.acc.frame_index,
                "episode_index" => &mut self.acc.episode_index,
                "index" => &mut self.acc.index,
                _ => &mut self.acc.task_index,
            };
            dst.extend(v.iter().map(|&x| x as f64));
        }
        let image_cams = if self.spec.video {
            0
        } else {
            self.spec.cameras.len()
        };
        for c in 0..image_cams {
            let key = self.spec.camera_key(c);
            let col = columns::column(path, b, &key)?;
            for (row, img) in columns::image_column(path, &key, col)?.iter().enumerate() {
                let bytes = img.bytes.ok_or_else(|| DatasetError::Image {
                    path: path.to_path_buf(),
                    field: key.clone(),
                    row,
                    problem: "no PNG bytes".to_string(),
                })?;
                let im = decode_png(bytes).map_err(|problem| DatasetError::Image {
                    path: path.to_path_buf(),
                    field: key.clone(),
                    row,
                    problem,
                })?;
                self.acc.images[c].add(&im.rgb);
            }
        }
        Ok(())
    }
}

/// Tasks in order of first appearance over the episodes (= task_index order).
fn tasks_of(episodes: &[EpisodeRecord]) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for e in episodes {
        for t in &e.tasks {
            if !out.contains(t) {
                out.push(t.clone());
            }
        }
    }
    out
}

fn task_line(i: usize, task: &str) -> Oj {
    Oj::obj([("task_index", Oj::v(i)), ("task", Oj::v(task))])
}

fn episode_line(r: &EpisodeRecord) -> Oj {
    let mut o = vec![
        ("episode_index".to_string(), Oj::v(r.index)),
        ("tasks".to_string(), Oj::v(r.tasks.clone())),
        ("length".to_string(), Oj::v(r.length)),
    ];
    if !r.meta.is_null() {
        o.push((EPISODE_META_KEY.to_string(), Oj::V(r.meta.clone())));
    }
    Oj::O(o)
}

fn episode_stats_line(r: &EpisodeRecord) -> Oj {
    Oj::obj([
        ("episode_index", Oj::v(r.index)),
        ("stats", info::stats_json(&r.stats)),
    ])
}

/// `meta/tasks.parquet` as pandas writes a DataFrame indexed by task: column `task_index`
/// (int64) and index column `task` (string), with the `pandas` schema metadata naming it.
pub(crate) fn write_tasks_parquet(path: &Path, tasks: &[String]) -> Result<(), DatasetError> {
    let pandas_meta = format!(
        concat!(
            r#"{{"index_columns": ["task"], "column_indexes": [{{"name": null, "field_name": null, "#,
            r#""pandas_type": "unicode", "numpy_type": "object", "metadata": {{"encoding": "UTF-8"}}}}], "#,
            r#""columns": [{{"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "#,
            r#""numpy_type": "int64", "metadata": null}}, {{"name": "task", "field_name": "task", "#,
            r#""pandas_type": "unicode", "numpy_type": "object", "metadata": null}}], "#,
            r#""creator": {{"library": "bicameral-dataset", "version": "{}"}}, "pandas_version": "2.2.3"}}"#
        ),
        env!("CARGO_PKG_VERSION")
    );
    let schema = Arc::new(Schema::new_with_metadata(
        vec![
            Field::new("task_index", DataType::Int64, true),
            Field::new("task", DataType::Utf8, true),
        ],
        std::collections::HashMap::from([("pandas".to_string(), pandas_meta)]),
    ));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(0..tasks.len() as i64)),
            Arc::new(StringArray::from_iter_values(tasks)),
        ],
    )
    .map_err(|e| DatasetError::arrow(path, e))?;
    io::write_parquet(path, &schema, &[batch], &[])?;
    Ok(())
}

/// Nested `list<…list<double>>` column of `shape` (one level per shape entry) from flat rows.
fn nested_f64(rows: &[&[f64]], shape: &[usize]) -> ArrayRef {
    let values: Vec<f64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    let mut arr: ArrayRef = Arc::new(Float64Array::from(values));
    let mut dt = DataType::Float64;
    // Innermost level first: lists of shape[k] elements, rows*prod(shape[..k]) of them.
    for k in (0..shape.len()).rev() {
        let outer: usize = rows.len() * shape[..k].iter().product::<usize>();
        let field = Arc::new(Field::new("element", dt.clone(), true));
        let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(shape[k], outer));
        arr = Arc::new(ListArray::new(field.clone(), offsets, arr, None));
        dt = DataType::List(field);
    }
    arr
}

fn list_i64(values: &[i64]) -> ArrayRef {
    let field = Arc::new(Field::new("element", DataType::Int64, true));
    Arc::new(ListArray::new(
        field,
        OffsetBuffer::from_lengths(std::iter::repeat_n(1, values.len())),
        Arc::new(Int64Array::from(values.to_vec())),
        None,
    ))
}

/// Encodes a v3.0 `meta/episodes/chunk-*/file-*.parquet` with LeRobot's columns.
pub(crate) fn encode_episodes_parquet(
    path: &Path,
    spec: &DatasetSpec,
    rows: &[&EpisodeRecord],
) -> Result<Vec<u8>, DatasetError> {
    let mut fields: Vec<Field> = vec![];
    let mut cols: Vec<ArrayRef> = vec![];
    let int_col = |f: &dyn Fn(&EpisodeRecord) -> usize| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| f(r) as i64),
        ))
    };
    let mut push = |name: &str, col: ArrayRef| {
        fields.push(Field::new(name, col.data_type().clone(), true));
        cols.push(col);
    };
    push("episode_index", int_col(&|r| r.index));
    {
        let field = Arc::new(Field::new("element", DataType::Utf8, true));
        let lens = rows.iter().map(|r| r.tasks.len());
        let values: StringArray = rows
            .iter()
            .flat_map(|r| r.tasks.iter().map(|t| Some(t.as_str())))
            .collect();
        push(
            "tasks",
            Arc::new(ListArray::new(
                field,
                OffsetBuffer::from_lengths(lens),
                Arc::new(values),
                None,
            )),
        );
    }
    push("length", int_col(&|r| r.length));
    push("data/chunk_index", int_col(&|r| r.data_chunk));
    push("data/file_index", int_col(&|r| r.data_file));
    push("dataset_from_index", int_col(&|r| r.from));
    push("dataset_to_index", int_col(&|r| r.to));
    // Video locations: videos/{key}/{chunk_index, file_index, from_timestamp, to_timestamp}.
    if let Some(first) = rows.first() {
        for (v, vref) in first.videos.iter().enumerate() {
            let get = |r: &EpisodeRecord| r.videos.get(v).cloned();
            if rows
                .iter()
                .any(|r| get(r).is_none_or(|x| x.key != vref.key))
            {
                return Err(DatasetError::format(
                    path,
                    format!("videos/{}", vref.key),
                    "missing for some episodes",
                ));
            }
            let refs: Vec<VideoRef> = rows.iter().filter_map(|r| get(r)).collect();
            let k = &vref.key;
            push(
                &format!("videos/{k}/chunk_index"),
                Arc::new(Int64Array::from_iter_values(
                    refs.iter().map(|x| x.chunk as i64),
                )),
            );
            push(
                &format!("videos/{k}/file_index"),
                Arc::new(Int64Array::from_iter_values(
                    refs.iter().map(|x| x.file as i64),
                )),
            );
            push(
                &format!("videos/{k}/from_timestamp"),
                Arc::new(Float64Array::from_iter_values(refs.iter().map(|x| x.from))),
            );
            push(
                &format!("videos/{k}/to_timestamp"),
                Arc::new(Float64Array::from_iter_values(refs.iter().map(|x| x.to))),
            );
        }
    }
    // Per-episode statistics, flattened as LeRobot does: stats/{feature}/{stat}.
    let features: Vec<FeatureSpec> = spec.features();
    for f in &features {
        let Some(first) = rows
            .first()
            .and_then(|r| r.stats.iter().find(|(k, _)| *k == f.name))
        else {
            continue;
        };
        let shape = first.1.shape.clone();
        let stats: Vec<&FeatureStats> = rows
            .iter()
            .filter_map(|r| r.stats.iter().find(|(k, _)| *k == f.name).map(|(_, s)| s))
            .collect();
        if stats.len() != rows.len() {
            return Err(DatasetError::format(
                path,
                format!("stats/{}", f.name),
                "missing for some episodes",
            ));
        }
        for (stat, sel) in [
            (
                "min",
                (|s: &FeatureStats| s.min.as_slice()) as fn(&FeatureStats) -> &[f64],
            ),
            ("max", |s| s.max.as_slice()),
            ("mean", |s| s.mean.as_slice()),
            ("std", |s| s.std.as_slice()),
        ] {
            let vals: Vec<&[f64]> = stats.iter().map(|s| sel(s)).collect();
            push(
                &format!("stats/{}/{stat}", f.name),
                nested_f64(&vals, &shape),
            );
        }
        let counts: Vec<i64> = stats.iter().map(|s| s.count as i64).collect();
        push(&format!("stats/{}/count", f.name), list_i64(&counts));
        for (q, _) in crate::stats::QUANTILES {
            let vals: Option<Vec<&[f64]>> = stats.iter().map(|s| s.quantile(q)).collect();
            if let Some(vals) = vals {
                push(&format!("stats/{}/{q}", f.name), nested_f64(&vals, &shape));
            }
        }
    }
    push("meta/episodes/chunk_index", int_col(&|r| r.meta_chunk));
    push("meta/episodes/file_index", int_col(&|r| r.meta_file));
    let metas: StringArray = rows
        .iter()
        .map(|r| {
            if r.meta.is_null() {
                None
            } else {
                Some(r.meta.to_string())
            }
        })
        .collect();
    push(EPISODE_META_KEY, Arc::new(metas));
    let schema = Arc::new(Schema::new(fields));
    let batch =
        RecordBatch::try_new(schema.clone(), cols).map_err(|e| DatasetError::arrow(path, e))?;
    io::encode_parquet(path, &schema, &[batch], &[])
}

fn write_episodes_parquet(
    path: &Path,
    spec: &DatasetSpec,
    rows: &[&EpisodeRecord],
) -> Result<u64, DatasetError> {
    let bytes = encode_episodes_parquet(path, spec, rows)?;
    io::write_atomic(path, &bytes)?;
    Ok(bytes.len() as u64)
}

/// Reads the rows of a v3.0 episodes metadata file (ours or LeRobot's).
pub(crate) fn read_episode_records(path: &Path) -> Result<Vec<EpisodeRecord>, DatasetError> {
    let (schema, batches) = io::read_parquet(path, &ReadRequest::default())?;
    let b = io::concat(path, &schema, &batches)?;
    let n = b.num_rows();
    let int = |name: &str| -> Result<Vec<i64>, DatasetError> {
        columns::i64_column(path, name, columns::column(path, &b, name)?)
    };
    let int_or = |name: &str, default: i64| -> Result<Vec<i64>, DatasetError> {
        match b.column_by_name(name) {
            Some(c) => columns::i64_column(path, name, c),
            None => Ok(vec![default; n]),
        }
    };
    let index = int("episode_index")?;
    let length = int("length")?;
    let tasks = match b.column_by_name("tasks") {
        Some(c) => columns::string_list_column(path, "tasks", c)?,
        None => vec![vec![]; n],
    };
    let data_chunk = int_or("data/chunk_index", 0)?;
    let data_file = int_or("data/file_index", 0)?;
    let from = int("dataset_from_index")?;
    let to = int("dataset_to_index")?;
    let meta_chunk = int_or("meta/episodes/chunk_index", 0)?;
    let meta_file = int_or("meta/episodes/file_index", 0)?;
    // Ours: a JSON string. LeRobot's v2.1 → v3.0 converter turns the episodes.jsonl key into
    // a struct column: read any type as JSON.
    let metas: Vec<Value> = match b.column_by_name(EPISODE_META_KEY) {
        Some(c) => (0..n)
            .map(|row| match columns::cell_json(c, row) {
                Value::String(s) => {
                    serde_json::from_str(&s).map_err(|e| DatasetError::json(path, e))
                }
                other => Ok(other),
            })
            .collect::<Result<_, _>>()?,
        None => vec![Value::Null; n],
    };
    // videos/{key}/chunk_index etc., in file order.
    let mut video_keys: Vec<String> = vec![];
    for f in schema.fields() {
        if let Some(k) = f
            .name()
            .strip_prefix("videos/")
            .and_then(|r| r.strip_suffix("/chunk_index"))
        {
            video_keys.push(k.to_string());
        }
    }
    let mut video_cols = vec![];
    for k in &video_keys {
        let float = |stat: &str| -> Result<Vec<f64>, DatasetError> {
            let name = format!("videos/{k}/{stat}");
            match b.column_by_name(&name) {
                Some(c) => Ok(columns::f32_column_f64(path, &name, c)?),
                None => Ok(vec![0.0; n]),
            }
        };
        video_cols.push((
            k.clone(),
            int(&format!("videos/{k}/chunk_index"))?,
            int_or(&format!("videos/{k}/file_index"), 0)?,
            float("from_timestamp")?,
            float("to_timestamp")?,
        ));
    }
    // stats/{feature}/{stat} columns, in file order.
    let mut stat_cols: Vec<(String, String, ArrayRef)> = vec![];
    for (i, f) in schema.fields().iter().enumerate() {
        if let Some(rest) = f.name().strip_prefix("stats/")
            && let Some((feat, stat)) = rest.rsplit_once('/')
        {
            stat_cols.push((feat.to_string(), stat.to_string(), b.column(i).clone()));
        }
    }
    let mut out = Vec::with_capacity(n);
    for row in 0..n {
        let mut stats: Vec<(String, FeatureStats)> = vec![];
        let mut obj: Vec<(String, serde_json::Map<String, Value>)> = vec![];
        for (feat, stat, col) in &stat_cols {
            let cell = cell(col, row);
            let Some(values) = cell.as_ref().and_then(columns::flat_f64) else {
                continue;
            };
            let shape = cell.as_ref().map(cell_shape).unwrap_or_default();
            let j = nested_json(&values, &shape);
            match obj.iter_mut().find(|(k, _)| k == feat) {
                Some((_, m)) => {
                    m.insert(stat.clone(), j);
                }
                None => {
                    let mut m = serde_json::Map::new();
                    m.insert(stat.clone(), j);
                    obj.push((feat.clone(), m));
                }
            }
        }
        for (feat, m) in obj {
            if let Some(s) = FeatureStats::from_json(&Value::Object(m)) {
                stats.push((feat, s));
            }
        }
        let meta = metas[row].clone();
        let u = |v: i64| v.max(0) as usize;
        out.push(EpisodeRecord {
            index: u(index[row]),
            tasks: tasks[row].clone(),
            length: u(length[row]),
            data_chunk: u(data_chunk[row]),
            data_file: u(data_file[row]),
            from: u(from[row]),
            to: u(to[row]),
            meta_chunk: u(meta_chunk[row]),
            meta_file: u(meta_file[row]),
            stats,
            meta,
            videos: video_cols
                .iter()
                .map(|(k, c, f, a, b)| VideoRef {
                    key: k.clone(),
                    chunk: u(c[row]),
                    file: u(f[row]),
                    from: a[row],
                    to: b[row],
                })
                .collect(),
        });
    }
    Ok(out)
}

/// The list value in row `row` of a list column (None for nulls / non-lists).
fn cell(col: &ArrayRef, row: usize) -> Option<ArrayRef> {
    use arrow::array::AsArray;
    if !col.is_valid(row) {
        return None;
    }
    match col.data_type() {
        DataType::List(_) => Some(col.as_list::<i32>().value(row)),
        DataType::LargeList(_) => Some(col.as_list::<i64>().value(row)),
        DataType::FixedSizeList(_, _) => Some(col.as_fixed_size_list().value(row)),
        _ => None,
    }
}

/// Shape of a nested list cell (sizes of the first element at each level).
fn cell_shape(a: &ArrayRef) -> Vec<usize> {
    use arrow::array::AsArray;
    let mut shape = vec![a.len()];
    let mut cur = a.clone();
    loop {
        let next = match cur.data_type() {
            DataType::List(_) if !cur.is_empty() => cur.as_list::<i32>().value(0),
            DataType::LargeList(_) if !cur.is_empty() => cur.as_list::<i64>().value(0),
            DataType::FixedSizeList(_, _) if !cur.is_empty() => cur.as_fixed_size_list().value(0),
            _ => break,
        };
        shape.push(next.len());
        cur = next;
    }
    shape
}

fn nested_json(values: &[f64], shape: &[usize]) -> Value {
    if shape.len() <= 1 {
        return Value::Array(values.iter().map(|&v| Value::from(v)).collect());
    }
    let inner: usize = shape[1..].iter().product::<usize>().max(1);
    Value::Array(
        values
            .chunks(inner)
            .map(|c| nested_json(c, &shape[1..]))
            .collect(),
    )
}
