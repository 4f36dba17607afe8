//! Frustum outcodes, camera-space clipping and integer edge-function scan conversion.
//!
//! Screen positions are fixed point with [`SUB_BITS`] fractional bits (pixels · 256). Pixel
//! (col, row) is sampled at its centre, `((col·256 + 128), (row·256 + 128))` in fixed point.

use super::Intrinsics;

/// Fractional bits of fixed-point screen coordinates.
pub(super) const SUB_BITS: u32 = 8;
/// One pixel in fixed point.
pub(super) const SUB: i64 = 1 << SUB_BITS;
/// Half a pixel in fixed point (offset of the pixel centre).
const HALF: i64 = SUB / 2;
/// Guard band, pixels beyond each image edge: triangles reaching past it are clipped so that
/// fixed-point edge functions stay far from i64 overflow (|coordinate| < 2^24 · 256).
const GUARD_PX: f32 = 16384.0;
/// Largest accepted |fixed-point coordinate| (2^28, i.e. 2^20 pixels): far beyond the guard band,
/// so only garbage input is rejected, and edge functions stay below 2^60.
const MAX_FIXED: i64 = 1 << 28;
/// Bounding boxes at least this wide (pixels) are filled span by span (three divisions per
/// row) instead of testing every pixel of the box.
const SPAN_MIN_WIDTH: usize = 24;
/// Largest polygon after clipping a triangle by five planes (3 + 5), with slack.
const MAX_CLIP_VERTS: usize = 12;

/// Per-pixel working buffers, row-major `height × width`.
#[derive(Debug, Clone, Default)]
pub(super) struct FrameBuffers {
    pub width: usize,
    pub height: usize,
    /// 1/z of the nearest fragment (1/far where nothing was drawn), 1/m.
    pub iz: Vec<f32>,
    /// shade/z of the nearest fragment (meaningless where `ids == 0`).
    pub sz: Vec<f32>,
    /// Item index + 1 of the nearest fragment, 0 = nothing.
    pub ids: Vec<u16>,
}

impl FrameBuffers {
    /// Resizes to `width × height` (reusing capacity) and clears.
    pub fn clear(&mut self, width: usize, height: usize, iz_far: f32) {
        let n = width * height;
        self.width = width;
        self.height = height;
        self.iz.clear();
        self.iz.resize(n, iz_far);
        self.sz.resize(n, 0.0);
        self.ids.clear();
        self.ids.resize(n, 0);
    }
}

/// `1/z = a·(u − u0) + b·(v − v0) + c` over a triangle, `u`, `v` in pixels, `(u0, v0)` the
/// principal point (which keeps the terms small); results are clamped to `[lo, hi]` (the range
/// of 1/z over the triangle's vertices) against rounding.
#[derive(Debug, Clone, Copy)]
pub(super) struct DepthPlane {
    pub a: f32,
    pub b: f32,
    pub c: f32,
    pub u0: f32,
    pub v0: f32,
    pub lo: f32,
    pub hi: f32,
}

/// A clip-space polygon vertex: camera-frame position (m) and shade.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ClipVert {
    pub p: [f32; 3],
    pub s: f32,
}

/// View-frustum planes in the camera optical frame, each `[a, b, c, d]` with
/// `a·x + b·y + c·z + d ≥ 0` inside; bit `i` of an outcode is set when plane `i` is violated.
#[derive(Debug, Clone)]
pub(super) struct Frustum {
    planes: [[f32; 4]; 10],
    pub fx: f32,
    pub fy: f32,
    pub cx: f32,
    pub cy: f32,
    pub near: f32,
}

impl Frustum {
    const NEAR: u16 = 1 << 0;
    const FAR: u16 = 1 << 1;
    const LEFT: u16 = 1 << 2;
    const RIGHT: u16 = 1 << 3;
    const TOP: u16 = 1 << 4;
    const BOTTOM: u16 = 1 << 5;
    const GUARD_LEFT: u16 = 1 << 6;
    const GUARD_RIGHT: u16 = 1 << 7;
    const GUARD_TOP: u16 = 1 << 8;
    const GUARD_BOTTOM: u16 = 1 << 9;
    /// A triangle whose vertices all violate one of these planes is invisible.
    pub const REJECT: u16 =
        Self::NEAR | Self::FAR | Self::LEFT | Self::RIGHT | Self::TOP | Self::BOTTOM;
    /// A triangle with any vertex violating one of these planes must be clipped.
    pub const CLIP: u16 =
        Self::NEAR | Self::GUARD_LEFT | Self::GUARD_RIGHT | Self::GUARD_TOP | Self::GUARD_BOTTOM;

    pub fn new(k: &Intrinsics) -> Self {
        let (w, h) = (k.width as f32, k.height as f32);
        let g = GUARD_PX;
        Self {
            planes: [
                [0.0, 0.0, 1.0, -k.near],
                [0.0, 0.0, -1.0, k.far],
                [k.fx, 0.0, k.cx, 0.0],
                [-k.fx, 0.0, w - k.cx, 0.0],
                [0.0, k.fy, k.cy, 0.0],
                [0.0, -k.fy, h - k.cy, 0.0],
                [k.fx, 0.0, k.cx + g, 0.0],
                [-k.fx, 0.0, w + g - k.cx, 0.0],
                [0.0, k.fy, k.cy + g, 0.0],
                [0.0, -k.fy, h + g - k.cy, 0.0],
            ],
            fx: k.fx,
            fy: k.fy,
            cx: k.cx,
            cy: k.cy,
            near: k.near,
        }
    }

    /// Outcode of a camera-frame point.
    #[inline]
    pub fn outcode(&self, x: f32, y: f32, z: f32) -> u16 {
        let mut code = 0;
        for (i, p) in self.planes.iter().enumerate() {
            if p[0] * x + p[1] * y + p[2] * z + p[3] < 0.0 {
                code |= 1 << i;
            }
        }
        code
    }

    /// The 1/z plane of the camera-frame plane `n·p = d` (`d ≠ 0`): a pixel ray
    /// `z·((u−cx)/fx, (v−cy)/fy, 1)` meets it at `1/z = n·((u−cx)/fx, (v−cy)/fy, 1) / d`.
    /// (`lo`, `hi` are left open for the caller.)
    pub fn depth_plane(&self, n: [f64; 3], d: f64) -> DepthPlane {
        let (fx, fy) = (self.fx as f64, self.fy as f64);
        DepthPlane {
            a: (n[0] / (fx * d)) as f32,
            b: (n[1] / (fy * d)) as f32,
            c: (n[2] / d) as f32,
            u0: self.cx,
            v0: self.cy,
            lo: 0.0,
            hi: f32::INFINITY,
        }
    }
}

/// Rounds screen coordinates (pixels) to fixed point.
#[inline]
pub(super) fn to_fixed(u: f32, v: f32) -> [i64; 2] {
    // Adding and removing 1.5·2^52 rounds an f64 to the nearest integer without a libm call.
    const MAGIC: f64 = 6_755_399_441_055_744.0;
    let s = SUB as f64;
    [
        ((u as f64 * s + MAGIC) - MAGIC) as i64,
        ((v as f64 * s + MAGIC) - MAGIC) as i64,
    ]
}

/// Clips triangle `input` (camera frame) by the planes flagged in `code_or` among
/// [`Frustum::CLIP`], projects the polygon and rasterises it as a fan. Returns the number of
/// triangles rasterised.
pub(super) fn clip_and_raster(
    fb: &mut FrameBuffers,
    frustum: &Frustum,
    input: &[ClipVert; 3],
    code_or: u16,
    plane: &DepthPlane,
    id: u16,
) -> usize {
    let mut poly = [ClipVert::default(); MAX_CLIP_VERTS];
    let mut scratch = [ClipVert::default(); MAX_CLIP_VERTS];
    poly[..3].copy_from_slice(input);
    let mut n = 3;
    for (i, pl) in frustum.planes.iter().enumerate() {
        let bit = 1u16 << i;
        if bit & Frustum::CLIP & code_or == 0 {
            continue;
        }
        let near_plane = bit == Frustum::NEAR;
        n = clip_polygon(
            &poly[..n],
            pl,
            near_plane.then_some(frustum.near),
            &mut scratch,
        );
        std::mem::swap(&mut poly, &mut scratch);
        if n < 3 {
            return 0;
        }
    }

    let mut pts = [[0i64; 2]; MAX_CLIP_VERTS];
    let mut szs = [0f32; MAX_CLIP_VERTS];
    let (mut lo, mut hi) = (f32::INFINITY, 0.0f32);
    for ((cv, pt), s) in poly[..n].iter().zip(&mut pts).zip(&mut szs) {
        let z = cv.p[2].max(frustum.near);
        let iz = 1.0 / z;
        *pt = to_fixed(
            frustum.fx * cv.p[0] * iz + frustum.cx,
            frustum.fy * cv.p[1] * iz + frustum.cy,
        );
        *s = cv.s * iz;
        lo = lo.min(iz);
        hi = hi.max(iz);
    }
    let plane = DepthPlane { lo, hi, ..*plane };
    for i in 1..n - 1 {
        raster_tri(
            fb,
            [pts[0], pts[i], pts[i + 1]],
            [szs[0], szs[i], szs[i + 1]],
            &plane,
            id,
        );
    }
    n - 2
}

/// One Sutherland–Hodgman step: keeps the part of `poly` where `plane` is ≥ 0, writing it to
/// `out`; returns the new vertex count. `snap_z` forces z of new vertices (the near plane).
fn clip_polygon(
    poly: &[ClipVert],
    plane: &[f32; 4],
    snap_z: Option<f32>,
    out: &mut [ClipVert; MAX_CLIP_VERTS],
) -> usize {
    let dist = |v: &ClipVert| plane[0] * v.p[0] + plane[1] * v.p[1] + plane[2] * v.p[2] + plane[3];
    let mut n = 0;
    let mut push = |v: ClipVert, n: &mut usize| {
        if let Some(slot) = out.get_mut(*n) {
            *slot = v;
            *n += 1;
        }
    };
    for (i, cur) in poly.iter().enumerate() {
        let next = &poly[(i + 1) % poly.len()];
        let (dc, dn) = (dist(cur), dist(next));
        if dc >= 0.0 {
            push(*cur, &mut n);
        }
        if (dc >= 0.0) != (dn >= 0.0) {
            // Interpolate from the inside end to the outside end, whatever the traversal
            // direction: the two triangles sharing an edge then get bit-identical clip points,
            // which keeps clipped meshes watertight.
            let ((a, da), (b, db)) = if dc >= 0.0 {
                ((cur, dc), (next, dn))
            } else {
                ((next, dn), (cur, dc))
            };
            let t = da / (da - db);
            let mut p = [
                a.p[0] + t * (b.p[0] - a.p[0]),
                a.p[1] + t * (b.p[1] - a.p[1]),
                a.p[2] + t * (b.p[2] - a.p[2]),
            ];
            if let Some(z) = snap_z {
                p[2] = z;
            }
            let s = a.s + t * (b.s - a.s);
            push(ClipVert { p, s }, &mut n);
        }
    }
    n
}

#[inline]
fn floor_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b)
}

#[inline]
fn ceil_div(a: i64, b: i64) -> i64 {
    -(-a).div_euclid(b)
}

/// Edge function setup for edge `a → b`: value at the first sample, step per pixel in x and y.
/// The value is biased by −1 on edges that do not own their boundary samples (fill rule:
/// a sample exactly on an edge belongs to the triangle for which the edge function grows in the
/// direction (ε, ε²)), so `value ≥ 0` ⇔ covered and shared edges are drawn exactly once.
#[inline]
fn edge(a: [i64; 2], b: [i64; 2], x0: i64, y0: i64) -> (i64, i64, i64) {
    let dx = b[0] - a[0];
    let dy = b[1] - a[1];
    let owns = dy < 0 || (dy == 0 && dx > 0);
    let value = dx * (y0 - a[1]) - dy * (x0 - a[0]) - i64::from(!owns);
    (value, -dy * SUB, dx * SUB)
}

/// Pixel offsets `k0..=k1` within a row of `n` pixels where every edge function
/// `e + k·step` is ≥ 0; `None` if empty.
#[inline]
fn row_span(edges: [(i64, i64); 3], n: usize) -> Option<(usize, usize)> {
    let (mut k0, mut k1) = (0i64, n as i64 - 1);
    for (e, step) in edges {
        if step > 0 {
            if e < 0 {
                k0 = k0.max((-e + step - 1) / step);
            }
        } else if e < 0 {
            return None;
        } else if step < 0 {
            k1 = k1.min(e / -step);
        }
    }
    (k0 <= k1).then_some((k0 as usize, k1 as usize))
}

/// Scan-converts one triangle (fixed-point screen vertices, any winding) with per-vertex
/// `shade/z` values, depth-testing against and writing `fb`.
pub(super) fn raster_tri(
    fb: &mut FrameBuffers,
    p: [[i64; 2]; 3],
    sz: [f32; 3],
    plane: &DepthPlane,
    id: u16,
) {
    if p.iter().flatten().any(|c| c.abs() > MAX_FIXED) {
        return; // only reachable with non-finite or absurd inputs; keeps i64 maths exact
    }
    let [p0, mut p1, mut p2] = p;
    let [s0, mut s1, mut s2] = sz;
    let mut area = (p1[0] - p0[0]) * (p2[1] - p0[1]) - (p1[1] - p0[1]) * (p2[0] - p0[0]);
    if area == 0 {
        return;
    }
    if area < 0 {
        std::mem::swap(&mut p1, &mut p2);
        std::mem::swap(&mut s1, &mut s2);
        area = -area;
    }
    let (w, h) = (fb.width as i64, fb.height as i64);
    let min_x = p0[0].min(p1[0]).min(p2[0]);
    let max_x = p0[0].max(p1[0]).max(p2[0]);
    let min_y = p0[1].min(p1[1]).min(p2[1]);
    let max_y = p0[1].max(p1[1]).max(p2[1]);
    // Pixels whose centre lies in the bounding box.
    let px0 = ceil_div(min_x - HALF, SUB).max(0);
    let px1 = floor_div(max_x - HALF, SUB).min(w - 1);
    let py0 = ceil_div(min_y - HALF, SUB).max(0);
    let py1 = floor_div(max_y - HALF, SUB).min(h - 1);
    if px0 > px1 || py0 > py1 {
        return;
    }
    let (x0, y0) = (px0 * SUB + HALF, py0 * SUB + HALF);
    // e0 is the weight of p0 (edge p1 → p2), etc.
    let (mut r0, sx0, sy0) = edge(p1, p2, x0, y0);
    let (mut r1, sx1, sy1) = edge(p2, p0, x0, y0);
    let (mut r2, sx2, sy2) = edge(p0, p1, x0, y0);
    let inv_area = 1.0 / area as f32;
    let (t0, t1, t2) = (s0 * inv_area, s1 * inv_area, s2 * inv_area);

    let width = fb.width;
    let (u_start, n) = (px0 as f32 + 0.5 - plane.u0, (px1 - px0 + 1) as usize);
    // shade/z is affine in the edge functions, hence in the pixel position.
    let dsz = sx0 as f32 * t0 + sx1 as f32 * t1 + sx2 as f32 * t2;
    for py in py0..=py1 {
        let start = py as usize * width + px0 as usize;
        let (Some(izs), Some(szs), Some(ids)) = (
            fb.iz.get_mut(start..start + n),
            fb.sz.get_mut(start..start + n),
            fb.ids.get_mut(start..start + n),
        ) else {
            return;
        };
        let v_part = plane.b * (py as f32 + 0.5 - plane.v0) + plane.c;
        if n >= SPAN_MIN_WIDTH {
            // Wide triangle: solve each edge for the covered span of this row, then fill it
            // without per-pixel coverage tests.
            if let Some((k0, k1)) = row_span([(r0, sx0), (r1, sx1), (r2, sx2)], n) {
                let sz0 = r0 as f32 * t0 + r1 as f32 * t1 + r2 as f32 * t2;
                let span = izs[k0..=k1]
                    .iter_mut()
                    .zip(&mut szs[k0..=k1])
                    .zip(&mut ids[k0..=k1]);
                for (k, ((zb, sb), ib)) in (k0..=k1).zip(span) {
                    let kf = k as f32;
                    let iz = (plane.a * (u_start + kf) + v_part)
                        .max(plane.lo)
                        .min(plane.hi);
                    if iz > *zb {
                        *zb = iz;
                        *sb = sz0 + kf * dsz;
                        *ib = id;
                    }
                }
            }
        } else {
            let (mut e0, mut e1, mut e2) = (r0, r1, r2);
            let mut u = u_start;
            let mut entered = false;
            for ((zb, sb), ib) in izs.iter_mut().zip(szs.iter_mut()).zip(ids.iter_mut()) {
                if (e0 | e1 | e2) >= 0 {
                    entered = true;
                    let iz = (plane.a * u + v_part).max(plane.lo).min(plane.hi);
                    if iz > *zb {
                        *zb = iz;
                        *sb = e0 as f32 * t0 + e1 as f32 * t1 + e2 as f32 * t2;
                        *ib = id;
                    }
                } else if entered {
                    break;
                }
                e0 += sx0;
                e1 += sx1;
                e2 += sx2;
                u += 1.0;
            }
        }
        r0 += sy0;
        r1 += sy1;
        r2 += sy2;
    }
}
