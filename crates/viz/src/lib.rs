//! rerun logging for bicameral: the simulated world (robot links, objects, contacts), camera
//! images, joint signals. Never used on a real-time path: callers log from their own loop.
//!
//! Entity layout (3D space is the world frame, z up, metres):
//! - `world/robot/<link>`: link pose (updated every logged step); its children `g<i>` carry the
//!   static visual shapes at their link-frame offsets.
//! - `world/objects/<name>`: object pose; children `g<i>` the static shapes.
//! - `world/contacts`: contact points and normal-impulse arrows.
//! - `world/cameras/<name>`: camera pose + pinhole; `.../image` and `.../depth` the images.
//! - `joints/{position,velocity,effort,target}/<joint>`: scalar series.
//!
//! Timeline: `sim_time` (seconds of simulated time).

use std::path::{Path, PathBuf};

use bicameral_robot::model::Shape;
use bicameral_sim::{BodyPart, SimWorld};
use nalgebra::Isometry3;
pub use rerun::RecordingStream;

/// Errors opening or writing a recording.
#[derive(Debug, thiserror::Error)]
pub enum VizError {
    /// The rerun SDK refused to open the sink.
    #[error("rerun: cannot open {sink}: {message}")]
    Open {
        /// Which sink.
        sink: String,
        /// The SDK's message.
        message: String,
    },
    /// Writing or flushing failed.
    #[error("rerun: {0}")]
    Write(String),
}

/// Where a recording goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    /// An `.rrd` file. Written to `<path>.partial` and renamed when finished.
    Save(PathBuf),
    /// Spawn a local viewer (`rerun` on PATH).
    Spawn,
    /// Stream to a running viewer or server, e.g. `rerun+http://127.0.0.1:9876/proxy`.
    Connect(String),
}

/// An open recording plus what is needed to finish it cleanly.
pub struct Recording {
    /// The rerun stream.
    pub rec: RecordingStream,
    finish: Option<(PathBuf, PathBuf)>,
}

impl Recording {
    /// Opens a recording for application `app_id`.
    pub fn open(app_id: &'static str, sink: &Sink) -> Result<Self, VizError> {
        let builder = rerun::RecordingStreamBuilder::new(app_id);
        let err = |sink: String| {
            move |e: rerun::RecordingStreamError| VizError::Open {
                sink,
                message: e.to_string(),
            }
        };
        match sink {
            Sink::Save(path) => {
                let partial = partial_path(path);
                let rec = builder
                    .save(&partial)
                    .map_err(err(partial.display().to_string()))?;
                Ok(Self {
                    rec,
                    finish: Some((partial, path.clone())),
                })
            }
            Sink::Spawn => Ok(Self {
                rec: builder.spawn().map_err(err("a spawned viewer".into()))?,
                finish: None,
            }),
            Sink::Connect(url) => Ok(Self {
                rec: builder
                    .connect_grpc_opts(url.clone())
                    .map_err(err(url.clone()))?,
                finish: None,
            }),
        }
    }

    /// Flushes everything and, for files, renames the finished recording into place.
    pub fn finish(mut self) -> Result<(), VizError> {
        self.rec
            .flush_blocking()
            .map_err(|e| VizError::Write(e.to_string()))?;
        self.rec.disconnect();
        if let Some((partial, path)) = self.finish.take() {
            std::fs::rename(&partial, &path).map_err(|e| {
                VizError::Write(format!(
                    "renaming {} to {}: {e}",
                    partial.display(),
                    path.display()
                ))
            })?;
        }
        Ok(())
    }
}

impl Drop for Recording {
    /// A file recording dropped without [`Recording::finish`] (an error on the way) removes its
    /// `.partial` file: nothing half-written stays on disk.
    fn drop(&mut self) {
        if let Some((partial, _)) = self.finish.take() {
            self.rec.disconnect();
            if let Err(e) = std::fs::remove_file(&partial) {
                tracing::warn!(file = %partial.display(), error = %e, "removing an unfinished recording");
            }
        }
    }
}

fn partial_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".partial");
    PathBuf::from(s)
}

fn colour(c: [f32; 3]) -> rerun::Color {
    let u = |x: f32| (x.clamp(0.0, 1.0).powf(1.0 / 2.2) * 255.0).round() as u8;
    rerun::Color::from_rgb(u(c[0]), u(c[1]), u(c[2]))
}

/// rerun transform of an isometry.
pub fn transform(iso: &Isometry3<f64>) -> rerun::Transform3D {
    let t = iso.translation.vector;
    let q = iso.rotation.quaternion();
    rerun::Transform3D::from_translation_rotation(
        [t.x as f32, t.y as f32, t.z as f32],
        rerun::Quaternion::from_xyzw([q.i as f32, q.j as f32, q.k as f32, q.w as f32]),
    )
}

fn log_part(rec: &RecordingStream, path: &str, part: &BodyPart) -> Result<(), VizError> {
    let w = |e: rerun::RecordingStreamError| VizError::Write(e.to_string());
    rec.log_static(path, &transform(&part.local)).map_err(w)?;
    let c = colour(part.colour);
    let solid = rerun::components::FillMode::Solid;
    match &part.shape {
        Shape::Box { size } => rec.log_static(
            path,
            &rerun::Boxes3D::from_sizes([[size.x as f32, size.y as f32, size.z as f32]])
                .with_colors([c])
                .with_fill_mode(solid),
        ),
        Shape::Cylinder { radius, length } => rec.log_static(
            path,
            &rerun::Cylinders3D::from_lengths_and_radii([*length as f32], [*radius as f32])
                .with_colors([c])
                .with_fill_mode(solid),
        ),
        Shape::Capsule { radius, length } => rec.log_static(
            path,
            &rerun::Capsules3D::from_lengths_and_radii([*length as f32], [*radius as f32])
                .with_translations([[0.0, 0.0, -(*length as f32) / 2.0]])
                .with_colors([c])
                .with_fill_mode(solid),
        ),
        Shape::Sphere { radius } => rec.log_static(
            path,
            &rerun::Ellipsoids3D::from_radii([*radius as f32])
                .with_colors([c])
                .with_fill_mode(solid),
        ),
        Shape::Mesh {
            vertices,
            triangles,
            ..
        } => rec.log_static(
            path,
            &rerun::Mesh3D::new(
                vertices
                    .iter()
                    .map(|v| [v[0] as f32, v[1] as f32, v[2] as f32]),
            )
            .with_triangle_indices(triangles.iter().map(|t| rerun::TriangleIndices::from(*t)))
            .with_albedo_factor(c.0),
        ),
    }
    .map_err(w)
}

/// Logs a simulated world to rerun.
pub struct SimLogger<'a> {
    rec: &'a RecordingStream,
}

impl<'a> SimLogger<'a> {
    /// A logger writing to `rec`.
    pub fn new(rec: &'a RecordingStream) -> Self {
        Self { rec }
    }

    fn w(e: rerun::RecordingStreamError) -> VizError {
        VizError::Write(e.to_string())
    }

    /// Logs the static geometry of the robot and the objects (once per recording).
    pub fn log_static_scene(&self, world: &SimWorld) -> Result<(), VizError> {
        self.rec
            .log_static("world", &rerun::ViewCoordinates::RIGHT_HAND_Z_UP())
            .map_err(Self::w)?;
        let model = world.model();
        for (link, parts) in model.links.iter().zip(world.link_visuals()) {
            for (i, part) in parts.iter().enumerate() {
                log_part(self.rec, &format!("world/robot/{}/g{i}", link.name), part)?;
            }
        }
        for o in world.objects() {
            for (i, part) in o.parts.iter().enumerate() {
                log_part(self.rec, &format!("world/objects/{}/g{i}", o.name), part)?;
            }
        }
        Ok(())
    }

    /// Sets the `sim_time` timeline to the world's time.
    pub fn set_time(&self, world: &SimWorld) {
        self.rec.set_duration_secs("sim_time", world.time());
    }

    /// Logs link and object poses, joint signals and contacts at the world's current time.
    pub fn log_state(&self, world: &SimWorld) -> Result<(), VizError> {
        self.set_time(world);
        let model = world.model();
        for (link, pose) in model.links.iter().zip(world.link_poses()) {
            self.rec
                .log(format!("world/robot/{}", link.name), &transform(&pose))
                .map_err(Self::w)?;
        }
        for o in world.objects().iter().filter(|o| !o.fixed) {
            self.rec
                .log(
                    format!("world/objects/{}", o.name),
                    &transform(&world.object_body_pose(o)),
                )
                .map_err(Self::w)?;
        }
        let signals = [
            ("position", world.joint_positions()),
            ("velocity", world.joint_velocities()),
            ("effort", world.joint_efforts()),
            ("target", world.joint_targets().to_vec()),
        ];
        for (kind, values) in signals {
            for (name, v) in world.dof_names().iter().zip(values) {
                self.rec
                    .log(format!("joints/{kind}/{name}"), &rerun::Scalars::single(v))
                    .map_err(Self::w)?;
            }
        }
        let contacts = world.contacts();
        let points: Vec<[f32; 3]> = contacts.iter().map(|c| c.point.map(|x| x as f32)).collect();
        // Arrow length: 1 cm per mN·s of normal impulse, capped at 10 cm.
        let vectors: Vec<[f32; 3]> = contacts
            .iter()
            .map(|c| {
                let len = (c.impulse * 10.0).min(0.1) as f32;
                c.normal.map(|x| x as f32 * len)
            })
            .collect();
        self.rec
            .log(
                "world/contacts",
                &rerun::Points3D::new(points.clone())
                    .with_radii([0.004])
                    .with_colors([rerun::Color::from_rgb(255, 220, 0)]),
            )
            .map_err(Self::w)?;
        self.rec
            .log(
                "world/contacts/impulse",
                &rerun::Arrows3D::from_vectors(vectors)
                    .with_origins(points)
                    .with_colors([rerun::Color::from_rgb(255, 120, 0)]),
            )
            .map_err(Self::w)?;
        Ok(())
    }

    /// Logs a camera's pose, intrinsics, RGB image (H×W×3 u8) and depth (H×W f32, metres).
    #[allow(clippy::too_many_arguments)]
    pub fn log_camera(
        &self,
        name: &str,
        pose: &Isometry3<f64>,
        fx: f32,
        fy: f32,
        cx: f32,
        cy: f32,
        width: u32,
        height: u32,
        rgb: &[u8],
        depth: &[f32],
    ) -> Result<(), VizError> {
        let base = format!("world/cameras/{name}");
        self.rec
            .log(base.as_str(), &transform(pose))
            .map_err(Self::w)?;
        self.rec
            .log(
                base.as_str(),
                &rerun::Pinhole::from_focal_length_and_resolution(
                    [fx, fy],
                    [width as f32, height as f32],
                )
                .with_principal_point([cx, cy])
                .with_camera_xyz(rerun::components::ViewCoordinates::RDF),
            )
            .map_err(Self::w)?;
        self.rec
            .log(
                format!("{base}/image"),
                &rerun::Image::from_rgb24(rgb.to_vec(), [width, height]),
            )
            .map_err(Self::w)?;
        let bytes: Vec<u8> = depth
            .iter()
            .flat_map(|d| if d.is_finite() { *d } else { 0.0 }.to_le_bytes())
            .collect();
        self.rec
            .log(
                format!("{base}/depth"),
                &rerun::DepthImage::from_data_type_and_bytes(
                    bytes,
                    [width, height],
                    rerun::ChannelDatatype::F32,
                )
                .with_meter(1.0),
            )
            .map_err(Self::w)?;
        Ok(())
    }

    /// Sets the sequence timeline `name` (e.g. a training `step`) to `i`.
    pub fn set_sequence(&self, name: &'static str, i: i64) {
        self.rec.set_time_sequence(name, i);
    }

    /// Sets the `sim_time` timeline to `t` (s).
    pub fn set_time_secs(&self, t: f64) {
        self.rec.set_duration_secs("sim_time", t);
    }

    /// Logs an H×W×3 sRGB image (row-major, `width * height * 3` bytes) at `entity`.
    pub fn log_rgb(
        &self,
        entity: &str,
        width: u32,
        height: u32,
        rgb: &[u8],
    ) -> Result<(), VizError> {
        let expected = width as usize * height as usize * 3;
        if rgb.len() != expected {
            return Err(VizError::Write(format!(
                "{entity}: image has {} bytes, {width}x{height} RGB needs {expected}",
                rgb.len()
            )));
        }
        self.rec
            .log(
                entity,
                &rerun::Image::from_rgb24(rgb.to_vec(), [width, height]),
            )
            .map_err(Self::w)
    }

    /// Logs one scalar series per name under `prefix/<name>`.
    pub fn log_scalars(
        &self,
        prefix: &str,
        names: &[String],
        values: &[f64],
    ) -> Result<(), VizError> {
        for (name, v) in names.iter().zip(values) {
            self.rec
                .log(format!("{prefix}/{name}"), &rerun::Scalars::single(*v))
                .map_err(Self::w)?;
        }
        Ok(())
    }

    /// Logs 3D points (world frame, m) at `entity` with one sRGB colour and a radius (m).
    pub fn log_points(
        &self,
        entity: &str,
        points: &[[f64; 3]],
        rgb: [u8; 3],
        radius: f32,
    ) -> Result<(), VizError> {
        let pts: Vec<[f32; 3]> = points.iter().map(|p| p.map(|x| x as f32)).collect();
        self.rec
            .log(
                entity,
                &rerun::Points3D::new(pts)
                    .with_colors([rerun::Color::from_rgb(rgb[0], rgb[1], rgb[2])])
                    .with_radii([radius]),
            )
            .map_err(Self::w)
    }

    /// Logs System 2's subgoal (`[object xyz, destination xyz]`, world frame, m) as two 3D
    /// markers at `world/plan/subgoal/{object,destination}`; shorter subgoals log nothing.
    pub fn log_subgoal(&self, subgoal: &[f32]) -> Result<(), VizError> {
        if subgoal.len() < 6 {
            return Ok(());
        }
        let p = |i: usize| [0, 1, 2].map(|k| f64::from(subgoal[i + k]));
        self.log_points("world/plan/subgoal/object", &[p(0)], [255, 220, 0], 0.02)?;
        self.log_points(
            "world/plan/subgoal/destination",
            &[p(3)],
            [0, 220, 120],
            0.02,
        )
    }

    /// Logs polylines (world frame, m) at `entity`, one sRGB colour each.
    pub fn log_paths(
        &self,
        entity: &str,
        paths: &[Vec<[f64; 3]>],
        colours: &[[u8; 3]],
    ) -> Result<(), VizError> {
        let strips: Vec<Vec<[f32; 3]>> = paths
            .iter()
            .map(|p| p.iter().map(|q| q.map(|x| x as f32)).collect())
            .collect();
        let cols: Vec<rerun::Color> = colours
            .iter()
            .map(|c| rerun::Color::from_rgb(c[0], c[1], c[2]))
            .collect();
        self.rec
            .log(entity, &rerun::LineStrips3D::new(strips).with_colors(cols))
            .map_err(Self::w)
    }

    /// Logs a text entry (e.g. the instruction) at `entity`.
    pub fn log_text(&self, entity: &str, text: &str) -> Result<(), VizError> {
        self.rec
            .log(entity, &rerun::TextDocument::new(text))
            .map_err(Self::w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unfinished_recording_leaves_no_file() {
        let dir = std::env::temp_dir().join(format!("bicameral-viz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("x.rrd");
        let rec = Recording::open("test", &Sink::Save(path.clone())).expect("open");
        assert!(partial_path(&path).exists());
        drop(rec);
        assert!(!partial_path(&path).exists() && !path.exists());
        let rec = Recording::open("test", &Sink::Save(path.clone())).expect("open");
        rec.finish().expect("finish");
        assert!(path.exists() && !partial_path(&path).exists());
        std::fs::remove_dir_all(&dir).ok();
    }
}
