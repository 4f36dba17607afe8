//! Pure-CPU camera renderer for the simulator: a z-buffered triangle rasteriser with Lambert
//! shading, a metric depth image and an object-id (segmentation) image.
//!
//! # Frames and units
//! * World frame: z up, metres.
//! * Every [`RenderItem`] carries the pose of its mesh frame in the world.
//! * The camera pose passed to [`Renderer::render`] is the camera **optical** frame in the world,
//!   OpenCV convention: x right, y down, z forward (see [`camera_look_at`]).
//! * Pinhole model ([`Intrinsics`]), pixels: a camera-frame point (x, y, z) with z > 0 projects to
//!   `u = fx·x/z + cx`, `v = fy·y/z + cy`. Pixel (col, row) covers `[col, col+1) × [row, row+1)`,
//!   its sample point is the centre `(col + 0.5, row + 0.5)`. With `cx = width/2` the optical axis
//!   passes through the corner shared by the four central pixels.
//!
//! # Image layouts
//! All images are row-major, top row (row 0, smallest v) first:
//! * RGB: `H·W·3` bytes, `rgb[(row·W + col)·3 + channel]`, sRGB-encoded (gamma) u8.
//! * Depth: `H·W` f32, metres along the optical z axis (not the ray length);
//!   `f32::INFINITY` where nothing is hit.
//! * Ids: `H·W` u16, index of the visible item in the `items` slice **plus one**; 0 = background.
//!
//! # Algorithm
//! Per item: transform vertices to the camera frame, per-vertex Lambert shading (Gouraud),
//! outcodes against the view frustum (whole-item and per-triangle trivial rejection). Triangles
//! crossing the near plane, or reaching beyond a wide guard band around the image, are clipped in
//! camera space (Sutherland–Hodgman, with clip points computed identically for the two triangles
//! sharing an edge). Scan conversion uses exact integer edge functions (8 sub-pixel bits, a
//! top-left style tie rule, so shared edges are drawn exactly once and meshes are watertight)
//! over the triangle's bounding box, row by row: per-pixel tests with early exit for small boxes,
//! solved spans for wide ones. Depth is exact up to f32 rounding: `1/z` at a pixel is evaluated
//! from the triangle's plane in camera space (it is affine in (u, v)) and compared against a
//! `1/z` buffer (nearest wins; the first drawn wins ties). Shading is deferred: the buffers keep
//! `1/z`, `shade/z` and the id, and a final pass writes perspective-correct colour, depth and
//! ids for visible pixels only, through a linear → sRGB lookup table.
//!
//! Precision: vertices are transformed to the camera frame in f32, so depth carries an absolute
//! error of roughly 1e-7 × (distance of the triangle's vertices from the camera): sub-micrometre
//! for table-sized geometry, ~10 µm for a 400 m ground plane.
//!
//! Triangles are **two-sided** by default (open meshes and the insides of containers render
//! correctly; back faces are lit with the flipped normal). [`Renderer::set_back_face_culling`]
//! trades that for speed when every mesh is closed and wound counter-clockwise seen from outside
//! (all meshes from [`tessellate`] are).

mod raster;
mod tessellate;

use nalgebra::{Isometry3, Matrix3, Point3, Rotation3, Translation3, UnitQuaternion, Vector3};

use raster::{ClipVert, DepthPlane, FrameBuffers, Frustum};
pub use tessellate::{DEFAULT_DETAIL, open_box, tessellate};

/// Largest accepted image side, pixels (keeps fixed-point edge functions far from overflow).
pub const MAX_IMAGE_SIDE: u32 = 16384;

/// Largest number of items per frame: ids are u16 and 0 means background.
pub const MAX_ITEMS: usize = u16::MAX as usize;

/// A triangle mesh in its own (local) frame, metres.
///
/// `positions[i]` and `normals[i]` describe vertex `i`; `normals` are unit vectors in the same
/// frame. `indices` are triangles, counter-clockwise seen from outside (right-hand rule gives the
/// outward normal). Triangles referring to missing vertices are skipped by the renderer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TriMesh {
    /// Vertex positions in the mesh frame (m).
    pub positions: Vec<[f32; 3]>,
    /// Unit vertex normals in the mesh frame; same length as `positions`.
    pub normals: Vec<[f32; 3]>,
    /// Triangles as indices into `positions` / `normals`.
    pub indices: Vec<[u32; 3]>,
}

impl TriMesh {
    /// Appends `other`, placed at `pose` (the frame of `other` expressed in the frame of `self`).
    pub fn append(&mut self, other: &TriMesh, pose: &Isometry3<f32>) {
        let base = self.positions.len() as u32;
        self.positions.extend(other.positions.iter().map(|p| {
            let q = pose * Point3::from(*p);
            [q.x, q.y, q.z]
        }));
        self.normals.extend(other.normals.iter().map(|n| {
            let m = pose.rotation * Vector3::from(*n);
            [m.x, m.y, m.z]
        }));
        self.indices.extend(
            other
                .indices
                .iter()
                .map(|t| [t[0] + base, t[1] + base, t[2] + base]),
        );
    }

    /// Number of triangles.
    pub fn triangle_count(&self) -> usize {
        self.indices.len()
    }
}

/// One object to draw.
#[derive(Debug, Clone, Copy)]
pub struct RenderItem<'a> {
    /// Geometry in its local frame.
    pub mesh: &'a TriMesh,
    /// Pose of the mesh frame in the world frame.
    pub pose: Isometry3<f32>,
    /// Linear RGB albedo, each channel in [0, 1].
    pub colour: [f32; 3],
}

/// Pinhole camera intrinsics, pixels (see the module documentation for the conventions).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Intrinsics {
    /// Image width, pixels (columns).
    pub width: u32,
    /// Image height, pixels (rows).
    pub height: u32,
    /// Focal length along u, pixels.
    pub fx: f32,
    /// Focal length along v, pixels.
    pub fy: f32,
    /// Principal point u coordinate, pixels (`width/2` for a centred optical axis).
    pub cx: f32,
    /// Principal point v coordinate, pixels (`height/2` for a centred optical axis).
    pub cy: f32,
    /// Near clipping distance along the optical axis, metres (> 0).
    pub near: f32,
    /// Far clipping distance along the optical axis, metres (> near; may be `f32::INFINITY`).
    pub far: f32,
}

impl Intrinsics {
    /// Square pixels, centred principal point, given the **vertical** field of view (radians).
    pub fn from_vertical_fov(width: u32, height: u32, fov_y: f32, near: f32, far: f32) -> Self {
        let fy = 0.5 * height as f32 / (0.5 * fov_y).tan();
        Self {
            width,
            height,
            fx: fy,
            fy,
            cx: 0.5 * width as f32,
            cy: 0.5 * height as f32,
            near,
            far,
        }
    }

    /// Checks sizes (1..=[`MAX_IMAGE_SIDE`]), finite positive focal lengths, finite principal
    /// point and `0 < near < far`.
    pub fn validate(&self) -> Result<(), RenderError> {
        let bad = |why: &'static str| Err(RenderError::InvalidIntrinsics(why));
        if self.width == 0 || self.height == 0 {
            return bad("image size must be positive");
        }
        if self.width > MAX_IMAGE_SIDE || self.height > MAX_IMAGE_SIDE {
            return bad("image side larger than MAX_IMAGE_SIDE");
        }
        if !(self.fx.is_finite() && self.fy.is_finite() && self.fx > 0.0 && self.fy > 0.0) {
            return bad("focal lengths must be finite and positive");
        }
        if !(self.cx.is_finite() && self.cy.is_finite()) {
            return bad("principal point must be finite");
        }
        if !(self.near.is_finite() && self.near > 0.0) {
            return bad("near must be finite and positive");
        }
        if self.far.is_nan() || self.far <= self.near {
            return bad("far must be greater than near");
        }
        Ok(())
    }
}

/// A directional light plus ambient term.
///
/// A surface with unit world normal `n` and albedo `c` gets linear colour
/// `c · (ambient + intensity · max(0, n · (−direction/|direction|)))`, clamped to [0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Light {
    /// Direction in the world frame pointing **from** the light toward the scene (any length > 0).
    pub direction: Vector3<f32>,
    /// Directional intensity (≥ 0, dimensionless).
    pub intensity: f32,
    /// Ambient intensity (≥ 0, dimensionless).
    pub ambient: f32,
}

impl Default for Light {
    /// Light from above (tilted: it comes from +x, −y), intensity 0.75, ambient 0.3.
    fn default() -> Self {
        Self {
            direction: Vector3::new(-0.3, 0.2, -1.0),
            intensity: 0.75,
            ambient: 0.3,
        }
    }
}

/// Why a frame could not be rendered. Nothing is drawn when an error is returned.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RenderError {
    /// See [`Intrinsics::validate`].
    #[error("invalid camera intrinsics: {0}")]
    InvalidIntrinsics(&'static str),
    /// Light direction zero or not finite, or negative/non-finite intensities.
    #[error("invalid light: {0}")]
    InvalidLight(&'static str),
    /// More than [`MAX_ITEMS`] items.
    #[error("too many render items: {count} (at most {max})")]
    TooManyItems {
        /// Items given.
        count: usize,
        /// [`MAX_ITEMS`].
        max: usize,
    },
    /// A mesh whose `normals` and `positions` lengths differ.
    #[error("render item {item}: mesh has {positions} positions but {normals} normals")]
    NormalsMismatch {
        /// Index of the item in the slice.
        item: usize,
        /// `positions.len()`.
        positions: usize,
        /// `normals.len()`.
        normals: usize,
    },
}

/// Counters from one [`Renderer::render`] call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RenderStats {
    /// Items entirely outside the view frustum (skipped after the vertex pass).
    pub items_culled: usize,
    /// Triangles of non-culled items.
    pub triangles_in: usize,
    /// Triangles sent to scan conversion (after rejection, culling and clipping; a clipped
    /// triangle may count several times).
    pub triangles_rasterized: usize,
    /// Triangles that went through near-plane / guard-band clipping.
    pub triangles_clipped: usize,
}

/// Per-vertex data of the item being drawn (camera frame).
#[derive(Debug, Clone, Copy, Default)]
struct Vert {
    /// Position in the camera optical frame (m).
    cam: [f32; 3],
    /// Frustum outcode, see [`raster::Frustum`].
    code: u16,
    /// Shade (ambient + diffuse factor) for front-facing and back-facing triangles.
    shade: [f32; 2],
    /// Fixed-point screen position (valid only when `code & CLIP == 0`).
    screen: [i64; 2],
    /// 1/z (valid only when `code & CLIP == 0`).
    iz: f32,
}

/// Reusable rasteriser state. Buffers grow to the largest frame seen and are then reused, so
/// rendering allocates nothing after the first frame of a given size (and the largest mesh).
#[derive(Debug, Clone)]
pub struct Renderer {
    fb: FrameBuffers,
    verts: Vec<Vert>,
    colours: Vec<[f32; 3]>,
    srgb: Box<[u8; SRGB_LUT_LEN]>,
    cull_back_faces: bool,
}

impl Default for Renderer {
    fn default() -> Self {
        Self::new()
    }
}

/// Entries of the linear → sRGB lookup table, a power of two (linear step 1/16383: the table's
/// quantisation adds at most ~0.1 of a u8 level to the final rounding, at the dark end).
const SRGB_LUT_LEN: usize = 1 << 14;

fn srgb_encode(linear: f64) -> u8 {
    let l = linear.clamp(0.0, 1.0);
    let s = if l <= 0.003_130_8 {
        12.92 * l
    } else {
        1.055 * l.powf(1.0 / 2.4) - 0.055
    };
    (s * 255.0).round().clamp(0.0, 255.0) as u8
}

impl Renderer {
    /// A renderer with empty buffers, two-sided triangles.
    pub fn new() -> Self {
        let mut srgb = Box::new([0u8; SRGB_LUT_LEN]);
        for (i, v) in srgb.iter_mut().enumerate() {
            *v = srgb_encode(i as f64 / (SRGB_LUT_LEN - 1) as f64);
        }
        Self {
            fb: FrameBuffers::default(),
            verts: Vec::new(),
            colours: Vec::new(),
            srgb,
            cull_back_faces: false,
        }
    }

    /// Skip triangles seen from behind (by their winding: counter-clockwise from outside is the
    /// front). Roughly halves rasterisation work for closed meshes; wrong for open meshes.
    /// Default: off (two-sided).
    pub fn set_back_face_culling(&mut self, on: bool) {
        self.cull_back_faces = on;
    }

    /// Whether back faces are culled, see [`Renderer::set_back_face_culling`].
    pub fn back_face_culling(&self) -> bool {
        self.cull_back_faces
    }

    /// Renders `items` seen from `camera_pose` (optical frame in world: x right, y down,
    /// z forward) into the output images, resized to `intrinsics.height × intrinsics.width`
    /// (layouts in the module documentation): `out_rgb` sRGB u8 (`background` where nothing is
    /// hit), `out_depth` optical-axis depth in metres (`f32::INFINITY` where nothing is hit), and
    /// if given `out_ids` the item index + 1 (0 = background). Surfaces nearer than
    /// `intrinsics.near` are clipped, farther than `intrinsics.far` discarded.
    #[allow(clippy::too_many_arguments)] // flat call with distinct roles, outputs are caller-owned
    pub fn render(
        &mut self,
        items: &[RenderItem<'_>],
        camera_pose: &Isometry3<f32>,
        intrinsics: &Intrinsics,
        light: &Light,
        background: [u8; 3],
        out_rgb: &mut Vec<u8>,
        out_depth: &mut Vec<f32>,
        out_ids: Option<&mut Vec<u16>>,
    ) -> Result<RenderStats, RenderError> {
        intrinsics.validate()?;
        let light_dir = validate_light(light)?;
        if items.len() > MAX_ITEMS {
            return Err(RenderError::TooManyItems {
                count: items.len(),
                max: MAX_ITEMS,
            });
        }
        for (item, it) in items.iter().enumerate() {
            if it.mesh.normals.len() != it.mesh.positions.len() {
                return Err(RenderError::NormalsMismatch {
                    item,
                    positions: it.mesh.positions.len(),
                    normals: it.mesh.normals.len(),
                });
            }
        }

        let frustum = Frustum::new(intrinsics);
        self.fb.clear(
            intrinsics.width as usize,
            intrinsics.height as usize,
            1.0 / intrinsics.far,
        );
        self.colours.clear();
        self.colours.extend(items.iter().map(|it| it.colour));

        let mut stats = RenderStats::default();
        let cam_from_world = camera_pose.inverse();
        let to_light_world = -light_dir;
        for (k, item) in items.iter().enumerate() {
            let id = (k + 1) as u16;
            self.draw_item(
                item,
                id,
                &(cam_from_world * item.pose),
                &to_light_world,
                light,
                &frustum,
                &mut stats,
            );
        }

        self.resolve(intrinsics.near, background, out_rgb, out_depth);
        if let Some(ids) = out_ids {
            ids.clear();
            ids.extend_from_slice(&self.fb.ids);
        }
        Ok(stats)
    }

    #[allow(clippy::too_many_arguments)] // internal hot path, plain parameters
    fn draw_item(
        &mut self,
        item: &RenderItem<'_>,
        id: u16,
        cam_from_mesh: &Isometry3<f32>,
        to_light_world: &Vector3<f32>,
        light: &Light,
        frustum: &Frustum,
        stats: &mut RenderStats,
    ) {
        let mesh = item.mesh;
        let rot = cam_from_mesh.rotation.to_rotation_matrix();
        let m: &Matrix3<f32> = rot.matrix();
        let t = cam_from_mesh.translation.vector;
        let l = item.pose.rotation.inverse_transform_vector(to_light_world);
        let (amb, int) = (light.ambient, light.intensity);

        // Vertex pass.
        self.verts.clear();
        let mut all_out = u16::MAX;
        for (p, n) in mesh.positions.iter().zip(&mesh.normals) {
            let x = m[(0, 0)] * p[0] + m[(0, 1)] * p[1] + m[(0, 2)] * p[2] + t.x;
            let y = m[(1, 0)] * p[0] + m[(1, 1)] * p[1] + m[(1, 2)] * p[2] + t.y;
            let z = m[(2, 0)] * p[0] + m[(2, 1)] * p[1] + m[(2, 2)] * p[2] + t.z;
            let code = frustum.outcode(x, y, z);
            all_out &= code;
            let ndl = n[0] * l.x + n[1] * l.y + n[2] * l.z;
            let shade = [amb + int * ndl.max(0.0), amb + int * (-ndl).max(0.0)];
            let (screen, iz) = if code & Frustum::CLIP == 0 {
                let iz = 1.0 / z;
                let u = frustum.fx * x * iz + frustum.cx;
                let v = frustum.fy * y * iz + frustum.cy;
                (raster::to_fixed(u, v), iz)
            } else {
                ([0, 0], 0.0)
            };
            self.verts.push(Vert {
                cam: [x, y, z],
                code,
                shade,
                screen,
                iz,
            });
        }
        if all_out & Frustum::REJECT != 0 {
            stats.items_culled += 1;
            return;
        }
        stats.triangles_in += mesh.indices.len();

        // Triangle pass.
        let verts = &self.verts;
        for tri in &mesh.indices {
            let (Some(a), Some(b), Some(c)) = (
                verts.get(tri[0] as usize),
                verts.get(tri[1] as usize),
                verts.get(tri[2] as usize),
            ) else {
                continue;
            };
            if a.code & b.code & c.code & Frustum::REJECT != 0 {
                continue;
            }
            // Plane n·p = d of the triangle in the camera frame; the camera sits at the origin,
            // so d < 0 means the counter-clockwise side faces the camera.
            let pa = [a.cam[0] as f64, a.cam[1] as f64, a.cam[2] as f64];
            let e1 = [
                b.cam[0] as f64 - pa[0],
                b.cam[1] as f64 - pa[1],
                b.cam[2] as f64 - pa[2],
            ];
            let e2 = [
                c.cam[0] as f64 - pa[0],
                c.cam[1] as f64 - pa[1],
                c.cam[2] as f64 - pa[2],
            ];
            let n = [
                e1[1] * e2[2] - e1[2] * e2[1],
                e1[2] * e2[0] - e1[0] * e2[2],
                e1[0] * e2[1] - e1[1] * e2[0],
            ];
            let d = n[0] * pa[0] + n[1] * pa[1] + n[2] * pa[2];
            if d == 0.0 || !d.is_finite() {
                continue; // degenerate or seen edge-on
            }
            let front = d < 0.0;
            if !front && self.cull_back_faces {
                continue;
            }
            let side = usize::from(!front);
            let plane = frustum.depth_plane(n, d);
            let shades = [a.shade[side], b.shade[side], c.shade[side]];

            if (a.code | b.code | c.code) & Frustum::CLIP == 0 {
                let lo = a.iz.min(b.iz).min(c.iz);
                let hi = a.iz.max(b.iz).max(c.iz);
                raster::raster_tri(
                    &mut self.fb,
                    [a.screen, b.screen, c.screen],
                    [shades[0] * a.iz, shades[1] * b.iz, shades[2] * c.iz],
                    &DepthPlane { lo, hi, ..plane },
                    id,
                );
                stats.triangles_rasterized += 1;
            } else {
                stats.triangles_clipped += 1;
                let input = [
                    ClipVert {
                        p: a.cam,
                        s: shades[0],
                    },
                    ClipVert {
                        p: b.cam,
                        s: shades[1],
                    },
                    ClipVert {
                        p: c.cam,
                        s: shades[2],
                    },
                ];
                let code_or = a.code | b.code | c.code;
                stats.triangles_rasterized +=
                    raster::clip_and_raster(&mut self.fb, frustum, &input, code_or, &plane, id);
            }
        }
    }

    /// Deferred shading pass: buffers → output images.
    fn resolve(
        &self,
        near: f32,
        background: [u8; 3],
        out_rgb: &mut Vec<u8>,
        out_depth: &mut Vec<f32>,
    ) {
        let n = self.fb.ids.len();
        out_rgb.clear();
        out_rgb.resize(3 * n, 0);
        out_depth.clear();
        out_depth.resize(n, f32::INFINITY);
        let lut: &[u8; SRGB_LUT_LEN] = &self.srgb;
        let scale = (SRGB_LUT_LEN - 1) as f32;
        let encode = |x: f32| -> u8 {
            // Clamp (NaN becomes `scale`), then round to an integer in the low mantissa bits by
            // adding 2^23: cheaper than a saturating float → int cast.
            let t = (x * scale).min(scale).max(0.0);
            lut[((t + 8_388_608.0).to_bits() as usize) & (SRGB_LUT_LEN - 1)]
        };
        let pixels = out_rgb
            .chunks_exact_mut(3)
            .zip(out_depth.iter_mut())
            .zip(self.fb.ids.iter().zip(self.fb.iz.iter().zip(&self.fb.sz)));
        for ((rgb, depth), (&id, (&iz, &sz))) in pixels {
            let colour = if id == 0 {
                None
            } else {
                self.colours.get(usize::from(id) - 1)
            };
            match colour {
                None => rgb.copy_from_slice(&background),
                Some(c) => {
                    let z = (1.0 / iz).max(near);
                    let s = (sz * z).max(0.0);
                    *depth = z;
                    rgb[0] = encode(c[0] * s);
                    rgb[1] = encode(c[1] * s);
                    rgb[2] = encode(c[2] * s);
                }
            }
        }
    }
}

fn validate_light(light: &Light) -> Result<Vector3<f32>, RenderError> {
    let dir = light
        .direction
        .try_normalize(1e-12)
        .filter(|d| d.iter().all(|c| c.is_finite()))
        .ok_or(RenderError::InvalidLight(
            "direction must be finite and non-zero",
        ))?;
    if !(light.intensity.is_finite() && light.intensity >= 0.0) {
        return Err(RenderError::InvalidLight(
            "intensity must be finite and >= 0",
        ));
    }
    if !(light.ambient.is_finite() && light.ambient >= 0.0) {
        return Err(RenderError::InvalidLight("ambient must be finite and >= 0"));
    }
    Ok(dir)
}

/// Camera optical-frame pose (x right, y down, z forward) at `eye` looking at `target`, with
/// image-up as close to world `up` as possible. `None` when `target == eye` or the viewing
/// direction is parallel to `up`.
pub fn camera_look_at(
    eye: &Point3<f32>,
    target: &Point3<f32>,
    up: &Vector3<f32>,
) -> Option<Isometry3<f32>> {
    let z = (target - eye).try_normalize(1e-9)?;
    let x = z.cross(up).try_normalize(1e-9)?;
    let y = z.cross(&x);
    let rot = Rotation3::from_matrix_unchecked(Matrix3::from_columns(&[x, y, z]));
    Some(Isometry3::from_parts(
        Translation3::from(eye.coords),
        UnitQuaternion::from_rotation_matrix(&rot),
    ))
}
