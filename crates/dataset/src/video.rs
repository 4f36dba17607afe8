//! mp4 (H.264, yuv420p) encoding and decoding of `video` features through an `ffmpeg`
//! subprocess: raw RGB frames are piped in/out, so nothing links against FFmpeg.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::DatasetError;
use crate::image::Image;
use crate::json::Oj;

/// Codec name recorded in `info.json` (`video.codec`).
pub(crate) const CODEC: &str = "h264";

/// True if an `ffmpeg` executable runs from `PATH`.
pub(crate) fn ffmpeg_available() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn video_err(path: &Path, problem: impl Into<String>) -> DatasetError {
    DatasetError::Video {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// `fps` as ffmpeg's frame rate argument.
fn rate(fps: f64) -> String {
    if fps.fract() == 0.0 {
        format!("{}", fps as u64)
    } else {
        format!("{fps}")
    }
}

/// Encodes H×W×3 RGB frames to an mp4 at `out` (any name: the container is forced to mp4).
/// libx264, yuv420p, a keyframe every 2 frames (exact seeking, as LeRobot does), CRF 23, one
/// thread and bit-exact muxing: the same frames give the same bytes.
pub(crate) fn encode_mp4(
    out: &Path,
    frames: &[&[u8]],
    width: u32,
    height: u32,
    fps: f64,
) -> Result<(), DatasetError> {
    let mut child = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin"])
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24"])
        .args(["-video_size", &format!("{width}x{height}")])
        .args(["-framerate", &rate(fps), "-i", "pipe:0"])
        .args([
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "2", "-crf", "23",
        ])
        .args([
            "-threads",
            "1",
            "-fflags",
            "+bitexact",
            "-flags:v",
            "+bitexact",
        ])
        .args(["-map_metadata", "-1", "-f", "mp4", "-y"])
        .arg(out)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| video_err(out, format!("cannot run ffmpeg: {e}")))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| video_err(out, "no stdin pipe to ffmpeg"))?;
    let mut stderr = child
        .stderr
        .take()
        .ok_or_else(|| video_err(out, "no stderr pipe from ffmpeg"))?;
    // Drain stderr concurrently so ffmpeg never blocks on a full pipe while we write frames.
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut write_err = None;
    for f in frames {
        if let Err(e) = stdin.write_all(f) {
            write_err = Some(e);
            break;
        }
    }
    drop(stdin);
    let status = child
        .wait()
        .map_err(|e| video_err(out, format!("waiting for ffmpeg: {e}")))?;
    let log = err_reader.join().unwrap_or_default();
    if !status.success() || write_err.is_some() {
        return Err(video_err(
            out,
            format!(
                "ffmpeg encoding failed ({status}{}): {}",
                write_err.map(|e| format!(", {e}")).unwrap_or_default(),
                log.trim()
            ),
        ));
    }
    Ok(())
}

/// Decodes `n` frames starting at `start_s` seconds (the frame whose timestamp is `start_s`)
/// from `path`, scaled to nothing: frames must be `width`×`height`.
pub(crate) fn decode_frames(
    path: &Path,
    start_s: f64,
    n: usize,
    width: u32,
    height: u32,
    fps: f64,
) -> Result<Vec<Image>, DatasetError> {
    if !path.is_file() {
        return Err(video_err(path, "video file missing"));
    }
    // Half a frame early: accurate seeking keeps frames with pts >= the seek point.
    let seek = (start_s - 0.5 / fps).max(0.0);
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin"])
        .args(["-ss", &format!("{seek:.6}"), "-i"])
        .arg(path)
        .args(["-frames:v", &n.to_string()])
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            DatasetError::Unsupported(format!(
                "decoding {}: cannot run ffmpeg (needed for video features): {e}",
                path.display()
            ))
        })?;
    if !out.status.success() {
        return Err(video_err(
            path,
            format!(
                "ffmpeg decoding failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    let frame = width as usize * height as usize * 3;
    if out.stdout.len() != n * frame {
        return Err(video_err(
            path,
            format!(
                "decoded {} bytes from {start_s:.4} s, expected {n} frames of {width}x{height}",
                out.stdout.len()
            ),
        ));
    }
    Ok(out
        .stdout
        .chunks_exact(frame)
        .map(|c| Image {
            width,
            height,
            rgb: c.to_vec(),
        })
        .collect())
}

/// The `info` object LeRobot stores under a video feature in `info.json`.
pub(crate) fn video_info(width: u32, height: u32, fps: f64) -> Oj {
    Oj::obj([
        ("video.height", Oj::v(height)),
        ("video.width", Oj::v(width)),
        ("video.codec", Oj::v(CODEC)),
        ("video.pix_fmt", Oj::v("yuv420p")),
        ("video.is_depth_map", Oj::v(false)),
        (
            "video.fps",
            if fps.fract() == 0.0 {
                Oj::v(fps as u64)
            } else {
                Oj::v(fps)
            },
        ),
        ("video.channels", Oj::v(3)),
        ("has_audio", Oj::v(false)),
    ])
}
