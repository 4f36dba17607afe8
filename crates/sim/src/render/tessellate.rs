//! Triangle meshes for the robot model's shapes. All meshes are in the shape frame (metres),
//! centred like [`Shape`] (cylinders and capsules along z), triangles counter-clockwise seen from
//! outside, unit normals.

use std::f64::consts::{FRAC_PI_2, TAU};

use bicameral_robot::model::Shape;
use nalgebra::{Isometry3, Vector3};

use super::TriMesh;

/// A good default for [`tessellate`]'s `detail`: 16 segments around a cylinder, sphere or
/// capsule (≈ 64–260 triangles per primitive).
pub const DEFAULT_DETAIL: u32 = 16;

/// Triangulates `shape`.
///
/// * Box: 24 vertices, 12 triangles, flat normals.
/// * Cylinder: `max(detail, 3)` segments around z, smooth side normals, flat caps.
/// * Sphere / capsule: `max(detail, 3)` segments around z and `max(ceil(detail/4), 1)` rings per
///   hemisphere (capsule: plus the cylindrical band), smooth normals.
/// * Mesh: the given triangles with flat (face) normals, three vertices per triangle; triangles
///   referring to missing vertices are dropped, degenerate ones get normal +z.
pub fn tessellate(shape: &Shape, detail: u32) -> TriMesh {
    let slices = detail.max(3) as usize;
    let rings = detail.div_ceil(4).max(1) as usize;
    match shape {
        Shape::Box { size } => box_mesh([
            0.5 * size.x as f32,
            0.5 * size.y as f32,
            0.5 * size.z as f32,
        ]),
        Shape::Cylinder { radius, length } => {
            let (r, h) = (*radius, 0.5 * length);
            let profile = [
                ProfilePoint::new(0.0, h, 0.0, 1.0),
                ProfilePoint::new(r, h, 0.0, 1.0),
                ProfilePoint::new(r, h, 1.0, 0.0),
                ProfilePoint::new(r, -h, 1.0, 0.0),
                ProfilePoint::new(r, -h, 0.0, -1.0),
                ProfilePoint::new(0.0, -h, 0.0, -1.0),
            ];
            lathe(&profile, slices)
        }
        Shape::Capsule { radius, length } => {
            lathe(&capsule_profile(*radius, *length, rings), slices)
        }
        Shape::Sphere { radius } => lathe(&capsule_profile(*radius, 0.0, rings), slices),
        Shape::Mesh {
            vertices,
            triangles,
            ..
        } => flat_mesh(vertices, triangles),
    }
}

/// An open-top box container (tray, bin): a floor and four walls of thickness `wall`, merged into
/// one mesh. `outer` are the full outer extents (m); the frame is at the centre of the outer
/// bounding box, z up, so the floor's underside is at `z = −outer[2]/2` and the rim at
/// `+outer[2]/2`. `wall` is clamped to at most half of each extent.
pub fn open_box(outer: [f32; 3], wall: f32) -> TriMesh {
    let [sx, sy, sz] = outer.map(f32::abs);
    let w = wall.abs().min(0.5 * sx).min(0.5 * sy).min(sz);
    let wall_h = sz - w;
    let zc = 0.5 * w; // centre height of the walls
    let parts: [([f32; 3], [f32; 3]); 5] = [
        ([sx, sy, w], [0.0, 0.0, -0.5 * sz + 0.5 * w]),
        ([w, sy, wall_h], [0.5 * (sx - w), 0.0, zc]),
        ([w, sy, wall_h], [-0.5 * (sx - w), 0.0, zc]),
        ([sx - 2.0 * w, w, wall_h], [0.0, 0.5 * (sy - w), zc]),
        ([sx - 2.0 * w, w, wall_h], [0.0, -0.5 * (sy - w), zc]),
    ];
    let mut mesh = TriMesh::default();
    for (size, at) in parts {
        let part = box_mesh(size.map(|s| 0.5 * s));
        mesh.append(&part, &Isometry3::translation(at[0], at[1], at[2]));
    }
    mesh
}

/// Axis-aligned box with half extents `h`, flat normals.
fn box_mesh(h: [f32; 3]) -> TriMesh {
    let mut mesh = TriMesh::default();
    for axis in 0..3 {
        // (u, v) chosen so that e_u × e_v = +e_axis.
        let (u, v) = ((axis + 1) % 3, (axis + 2) % 3);
        for sign in [1.0f32, -1.0] {
            let (u, v) = if sign > 0.0 { (u, v) } else { (v, u) };
            let mut normal = [0.0; 3];
            normal[axis] = sign;
            let base = mesh.positions.len() as u32;
            for (cu, cv) in [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)] {
                let mut p = [0.0; 3];
                p[axis] = sign * h[axis];
                p[u] = cu * h[u];
                p[v] = cv * h[v];
                mesh.positions.push(p);
                mesh.normals.push(normal);
            }
            mesh.indices.push([base, base + 1, base + 2]);
            mesh.indices.push([base, base + 2, base + 3]);
        }
    }
    mesh
}

/// A point of a surface-of-revolution profile: radius and height (m) and the unit normal's
/// radial and z components.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ProfilePoint {
    r: f64,
    z: f64,
    nr: f64,
    nz: f64,
}

impl ProfilePoint {
    fn new(r: f64, z: f64, nr: f64, nz: f64) -> Self {
        Self { r, z, nr, nz }
    }
}

/// Profile of a capsule (a sphere when `length == 0`) from the top pole to the bottom pole.
fn capsule_profile(radius: f64, length: f64, rings: usize) -> Vec<ProfilePoint> {
    let h = 0.5 * length;
    let mut profile = Vec::with_capacity(2 * rings + 2);
    for (hemisphere, (offset, phi0)) in [(h, 0.0), (-h, FRAC_PI_2)].into_iter().enumerate() {
        for k in 0..=rings {
            let phi = phi0 + FRAC_PI_2 * k as f64 / rings as f64;
            let pole = (hemisphere == 0 && k == 0) || (hemisphere == 1 && k == rings);
            let (s, c) = phi.sin_cos();
            let s = if pole { 0.0 } else { s };
            profile.push(ProfilePoint::new(radius * s, offset + radius * c, s, c));
        }
    }
    profile
}

/// Surface of revolution about z: one ring of `slices` vertices per profile point; bands between
/// consecutive profile points at the same position are skipped, as are the degenerate triangles
/// at poles (r = 0).
fn lathe(profile: &[ProfilePoint], slices: usize) -> TriMesh {
    let mut mesh = TriMesh::default();
    let ring: Vec<(f64, f64)> = (0..slices)
        .map(|j| (TAU * j as f64 / slices as f64).sin_cos())
        .map(|(s, c)| (c, s))
        .collect();
    for p in profile {
        for &(c, s) in &ring {
            mesh.positions
                .push([(p.r * c) as f32, (p.r * s) as f32, p.z as f32]);
            mesh.normals
                .push([(p.nr * c) as f32, (p.nr * s) as f32, p.nz as f32]);
        }
    }
    for (k, pair) in profile.windows(2).enumerate() {
        let (top, bot) = (pair[0], pair[1]);
        if top.r == bot.r && top.z == bot.z {
            continue;
        }
        let (t0, b0) = ((k * slices) as u32, ((k + 1) * slices) as u32);
        for j in 0..slices as u32 {
            let j1 = (j + 1) % slices as u32;
            if bot.r != 0.0 {
                mesh.indices.push([t0 + j, b0 + j, b0 + j1]);
            }
            if top.r != 0.0 {
                mesh.indices.push([t0 + j, b0 + j1, t0 + j1]);
            }
        }
    }
    mesh
}

/// Flat-shaded copy of a triangle soup.
fn flat_mesh(vertices: &[[f64; 3]], triangles: &[[u32; 3]]) -> TriMesh {
    let mut mesh = TriMesh::default();
    for tri in triangles {
        let (Some(a), Some(b), Some(c)) = (
            vertices.get(tri[0] as usize),
            vertices.get(tri[1] as usize),
            vertices.get(tri[2] as usize),
        ) else {
            continue;
        };
        let (a, b, c) = (Vector3::from(*a), Vector3::from(*b), Vector3::from(*c));
        let n = (b - a)
            .cross(&(c - a))
            .try_normalize(0.0)
            .unwrap_or_else(Vector3::z);
        let base = mesh.positions.len() as u32;
        for p in [a, b, c] {
            mesh.positions.push([p.x as f32, p.y as f32, p.z as f32]);
            mesh.normals.push([n.x as f32, n.y as f32, n.z as f32]);
        }
        mesh.indices.push([base, base + 1, base + 2]);
    }
    mesh
}
