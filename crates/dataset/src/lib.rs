//! LeRobot datasets for bicameral: a writer for demonstrations (LeRobot v2.1 with GR00T's
//! `meta/modality.json`, or LeRobot v3.0) and a reader for training (episodes, and samples of
//! state + action chunk + task + images) that also reads datasets LeRobot itself wrote.
//!
//! Files produced, v2.1:
//! `meta/{info.json, modality.json, tasks.jsonl, episodes.jsonl, episodes_stats.jsonl, stats.json}`,
//! `data/chunk-{c:03}/episode_{e:06}.parquet`. v3.0: `meta/{info.json, modality.json,
//! tasks.parquet, stats.json}`, `meta/episodes/chunk-{c:03}/file-{f:03}.parquet`,
//! `data/chunk-{c:03}/file-{f:03}.parquet`. Data columns (both): `observation.state` and
//! `action` as `fixed_size_list<float>[D]`, `observation.images.{camera}` as
//! `struct<bytes: binary (PNG), path: string>`, `timestamp` f32 (s), `frame_index`,
//! `episode_index`, `index`, `task_index` int64; one row group per episode.
//!
//! With `video = true` the cameras are `video` features instead: H.264 yuv420p mp4 files
//! encoded by an `ffmpeg` subprocess (v2.1: `videos/chunk-{c:03}/{key}/episode_{e:06}.mp4`;
//! v3.0: `videos/{key}/chunk-{c:03}/file-{f:03}.mp4`, one episode per file), decoded the same way.
//!
//! Writes are atomic per file and resumable; the same input gives byte-identical files (see
//! [`DatasetWriter`]).

mod columns;
mod error;
mod image;
mod info;
mod io;
mod json;
mod reader;
mod spec;
mod stats;
mod video;
mod writer;

pub use error::DatasetError;
pub use image::{Image, decode_png, encode_png};
pub use info::DatasetInfo;
pub use reader::{Dataset, EpisodeData, Sample};
pub use spec::{
    ACTION_KEY, DEFAULT_KEYS, DatasetSpec, Dtype, Episode, FeatureSpec, Format, Frame,
    IMAGE_PREFIX, STATE_KEY, WriterOptions,
};
pub use stats::{
    FeatureStats, ImageHistogram, QUANTILES, aggregate, quantile_sorted, vector_stats,
};
pub use writer::DatasetWriter;
