//! Cameras of a simulated world: robot-mounted (head, wrists) and fixed in the scene, rendered on
//! the CPU from the same shapes the physics uses (link visuals and object parts).

use nalgebra::{Isometry3, Point3, Vector3};

use crate::render::{Intrinsics, Light, RenderError, RenderItem, Renderer, TriMesh, tessellate};
use crate::scene::{LightConfig, SceneCameraConfig};
use crate::world::SimWorld;

/// Where a camera is mounted and how it projects.
#[derive(Debug, Clone)]
pub struct CameraSpec {
    /// Camera name (e.g. `ego_view`).
    pub name: String,
    /// Link carrying the camera; `None` for a camera fixed in the world.
    pub link: Option<usize>,
    /// Optical frame (x right, y down, z forward) in the link frame (or the world frame).
    pub mount: Isometry3<f64>,
    /// Pinhole intrinsics.
    pub intrinsics: Intrinsics,
}

impl CameraSpec {
    /// A world-fixed camera from a scene entry. `None` if it looks straight up or down.
    pub fn from_scene(c: &SceneCameraConfig) -> Option<Self> {
        let eye = Point3::from(c.position.map(|v| v as f32));
        let target = Point3::from(c.look_at.map(|v| v as f32));
        let pose = crate::render::camera_look_at(&eye, &target, &Vector3::z())?;
        Some(Self {
            name: c.name.clone(),
            link: None,
            mount: pose.cast::<f64>(),
            intrinsics: Intrinsics::from_vertical_fov(
                c.width,
                c.height,
                (c.fov_y_deg as f32).to_radians(),
                0.02,
                20.0,
            ),
        })
    }

    /// World pose of the optical frame given link poses.
    pub fn pose(&self, link_poses: &[Isometry3<f64>]) -> Isometry3<f64> {
        match self.link.and_then(|l| link_poses.get(l)) {
            Some(p) => p * self.mount,
            None => self.mount,
        }
    }
}

/// One rendered frame.
#[derive(Debug, Clone, Default)]
pub struct CameraImage {
    /// Width (px).
    pub width: u32,
    /// Height (px).
    pub height: u32,
    /// H×W×3 sRGB, row-major.
    pub rgb: Vec<u8>,
    /// H×W optical-axis depth (m); `f32::INFINITY` where nothing is hit.
    pub depth: Vec<f32>,
    /// Camera optical frame in the world at render time.
    pub pose: Isometry3<f64>,
}

/// Tessellated shapes of one body: mesh, pose in the body frame, colour.
type BodyMeshes = Vec<(TriMesh, Isometry3<f64>, [f32; 3])>;

/// Renders the cameras of one world. Meshes are tessellated once, at construction.
pub struct WorldCameras {
    specs: Vec<CameraSpec>,
    link_meshes: Vec<BodyMeshes>,
    object_meshes: Vec<BodyMeshes>,
    light: Light,
    renderer: Renderer,
    /// Colour where no geometry is hit.
    pub background: [u8; 3],
}

/// Tessellation detail used for curved primitives.
const DETAIL: u32 = 16;

impl WorldCameras {
    /// Prepares rendering of `world` with `specs` under `light`.
    pub fn new(world: &SimWorld, specs: Vec<CameraSpec>, light: &LightConfig) -> Self {
        let mesh = |p: &crate::world::BodyPart| (tessellate(&p.shape, DETAIL), p.local, p.colour);
        Self {
            specs,
            link_meshes: world
                .link_visuals()
                .iter()
                .map(|parts| parts.iter().map(mesh).collect())
                .collect(),
            object_meshes: world
                .objects()
                .iter()
                .map(|o| o.parts.iter().map(mesh).collect())
                .collect(),
            light: Light {
                direction: Vector3::from(light.direction.map(|v| v as f32)),
                intensity: light.intensity as f32,
                ambient: light.ambient as f32,
            },
            renderer: Renderer::new(),
            background: [150, 175, 205],
        }
    }

    /// The camera specifications.
    pub fn specs(&self) -> &[CameraSpec] {
        &self.specs
    }

    /// Index of the camera named `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.specs.iter().position(|s| s.name == name)
    }

    /// Renders camera `index` into `out` (buffers reused).
    pub fn render_into(
        &mut self,
        world: &SimWorld,
        index: usize,
        out: &mut CameraImage,
    ) -> Result<(), RenderError> {
        let link_poses = world.link_poses();
        let mut items = Vec::new();
        for (parts, pose) in self.link_meshes.iter().zip(&link_poses) {
            for (m, local, c) in parts {
                items.push(RenderItem {
                    mesh: m,
                    pose: (pose * local).cast::<f32>(),
                    colour: *c,
                });
            }
        }
        for (parts, o) in self.object_meshes.iter().zip(world.objects()) {
            let pose = world.object_body_pose(o);
            for (m, local, c) in parts {
                items.push(RenderItem {
                    mesh: m,
                    pose: (pose * local).cast::<f32>(),
                    colour: *c,
                });
            }
        }
        let spec = &self.specs[index];
        let pose = spec.pose(&link_poses);
        self.renderer.render(
            &items,
            &pose.cast::<f32>(),
            &spec.intrinsics,
            &self.light,
            self.background,
            &mut out.rgb,
            &mut out.depth,
            None,
        )?;
        out.width = spec.intrinsics.width;
        out.height = spec.intrinsics.height;
        out.pose = pose;
        Ok(())
    }

    /// Renders every camera.
    pub fn render_all(&mut self, world: &SimWorld) -> Result<Vec<CameraImage>, RenderError> {
        (0..self.specs.len())
            .map(|i| {
                let mut img = CameraImage::default();
                self.render_into(world, i, &mut img).map(|_| img)
            })
            .collect()
    }
}
