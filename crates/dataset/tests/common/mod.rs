//! Shared helpers: a small deterministic synthetic dataset and directory utilities.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bicameral_dataset::{DatasetSpec, DatasetWriter, Episode, Format, Frame, WriterOptions};

/// Fresh, empty scratch directory for one test (under the system temp dir). Removed when the
/// test passes, kept for inspection when it panics.
pub struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub fn scratch(name: &str) -> Scratch {
    let dir = std::env::temp_dir()
        .join("bicameral-dataset-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    Scratch(dir)
}

/// xorshift64*: deterministic pseudo-random numbers.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [-1, 1).
    pub fn f32(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    pub fn byte(&mut self) -> u8 {
        (self.next_u64() >> 56) as u8
    }
}

pub const W: u32 = 8;
pub const H: u32 = 6;
pub const LENGTHS: [usize; 3] = [7, 3, 12];
pub const TASKS: [&str; 3] = [
    "pick up the red cube",
    "put it in the bowl",
    "pick up the red cube",
];

pub fn spec() -> DatasetSpec {
    DatasetSpec {
        fps: 10.0,
        robot_type: "bc_humanoid_test".to_string(),
        state_names: (0..5).map(|i| format!("joint_{i}")).collect(),
        action_names: (0..4).map(|i| format!("joint_{i}_target")).collect(),
        state_slices: vec![("left_arm".into(), 0, 3), ("left_hand".into(), 3, 5)],
        action_slices: vec![("left_arm".into(), 0, 3), ("left_hand".into(), 3, 4)],
        cameras: vec![("ego_view".into(), W, H), ("wrist_view".into(), W, H)],
        video: false,
    }
}

/// Episode `i` of the synthetic dataset (depends only on `i`).
pub fn episode(i: usize) -> Episode {
    let mut rng = Rng::new(1000 + i as u64);
    let n = LENGTHS[i];
    let frames = (0..n)
        .map(|_| Frame {
            state: (0..5).map(|_| rng.f32()).collect(),
            action: (0..4).map(|_| rng.f32() * 2.0).collect(),
            images: (0..2)
                .map(|_| (0..(W * H * 3)).map(|_| rng.byte()).collect())
                .collect(),
        })
        .collect();
    Episode {
        task: TASKS[i].to_string(),
        frames,
        meta: serde_json::json!({"seed": 1000 + i, "success": i.is_multiple_of(2)}),
    }
}

/// Writes the first `n` synthetic episodes into a new dataset and finishes it.
pub fn write_dataset(dir: &Path, format: Format, opts: &WriterOptions, n: usize) {
    let mut w = DatasetWriter::create_with(dir, format, spec(), false, opts.clone())
        .expect("create dataset");
    for i in 0..n {
        w.write_episode(&episode(i)).expect("write episode");
    }
    w.finish().expect("finish");
}

/// Every file under `dir` (relative path → bytes).
pub fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let p = entry.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(dir)
                    .expect("prefix")
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(&p).expect("read"));
            }
        }
    }
    out
}

/// Asserts two dataset directories hold the same files with the same bytes.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let (ta, tb) = (tree(a), tree(b));
    let ka: Vec<_> = ta.keys().collect();
    let kb: Vec<_> = tb.keys().collect();
    assert_eq!(
        ka,
        kb,
        "different file sets in {} and {}",
        a.display(),
        b.display()
    );
    for (k, v) in &ta {
        assert!(
            v == &tb[k],
            "{k} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}

/// Both formats with the layouts the tests exercise: LeRobot's defaults, and tiny chunks/files
/// (v2.1: 2 episodes per chunk; v3.0: one episode per data file, 2 files per chunk).
pub fn layouts() -> Vec<(Format, WriterOptions, &'static str)> {
    let small = WriterOptions {
        chunks_size: 2,
        data_files_size_in_mb: 0,
        video_files_size_in_mb: 200,
    };
    vec![
        (Format::LeRobotV21, WriterOptions::default(), "v21"),
        (Format::LeRobotV30, WriterOptions::default(), "v30"),
        (Format::LeRobotV21, small.clone(), "v21-small"),
        (Format::LeRobotV30, small, "v30-small"),
    ]
}

// ------------------------------------------------------------------ video datasets

pub const VW: u32 = 32;
pub const VH: u32 = 24;

pub fn ffmpeg() -> bool {
    std::process::Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn video_spec() -> DatasetSpec {
    DatasetSpec {
        cameras: vec![("ego_view".into(), VW, VH), ("wrist_view".into(), VW, VH)],
        video: true,
        ..spec()
    }
}

/// Smooth, moving gradients (video codecs are lossy on noise): episode i, frame t, camera c.
pub fn frame_image(i: usize, t: usize, c: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity((VW * VH * 3) as usize);
    for y in 0..VH as usize {
        for x in 0..VW as usize {
            let base = (x * 6 + y * 4 + t * 9 + i * 40 + c * 70) as f64;
            v.push((128.0 + 100.0 * (base / 40.0).sin()) as u8);
            v.push((128.0 + 100.0 * (base / 55.0 + 1.0).cos()) as u8);
            v.push(((x * 8 + t * 5) % 200 + 20) as u8);
        }
    }
    v
}

pub fn video_episode(i: usize) -> Episode {
    let base = episode(i);
    Episode {
        frames: base
            .frames
            .iter()
            .enumerate()
            .map(|(t, f)| Frame {
                state: f.state.clone(),
                action: f.action.clone(),
                images: (0..2).map(|c| frame_image(i, t, c)).collect(),
            })
            .collect(),
        ..base
    }
}
