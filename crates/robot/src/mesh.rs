//! Minimal triangle-mesh readers for the formats robot descriptions use: STL (ASCII and binary)
//! and Wavefront OBJ (`v` and `f` records; polygons are fan-triangulated). Units are whatever
//! the file uses (URDF and MJCF assume metres); scaling is the caller's job.

use std::collections::HashMap;
use std::path::Path;

use thiserror::Error;

use crate::model::Shape;

/// A triangle mesh: shared vertices and counter-clockwise index triples.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TriMesh {
    /// Vertex positions in the mesh frame.
    pub vertices: Vec<[f64; 3]>,
    /// Triangles as indices into `vertices`.
    pub triangles: Vec<[u32; 3]>,
}

impl TriMesh {
    /// Applies a per-axis scale. A mirroring scale (negative determinant) also flips the
    /// triangle winding so faces stay counter-clockwise seen from outside.
    pub fn scaled(mut self, scale: [f64; 3]) -> Self {
        for v in &mut self.vertices {
            for (c, s) in v.iter_mut().zip(scale) {
                *c *= s;
            }
        }
        if scale[0] * scale[1] * scale[2] < 0.0 {
            for t in &mut self.triangles {
                t.swap(1, 2);
            }
        }
        self
    }

    /// Wraps the mesh as a model [`Shape`], `path` naming its source in messages.
    pub fn into_shape(self, path: String) -> Shape {
        Shape::Mesh {
            path,
            vertices: self.vertices,
            triangles: self.triangles,
        }
    }
}

/// Why a mesh could not be loaded.
#[derive(Debug, Error)]
pub enum MeshError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// Resolved path.
        path: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The extension is neither `.stl` nor `.obj`.
    #[error("unsupported mesh format {0:?} (expected .stl or .obj)")]
    UnsupportedFormat(String),
    /// A `package://`/`file://` URI or path that cannot be resolved.
    #[error("cannot resolve mesh path: {0}")]
    Unresolvable(String),
    /// The STL data is malformed.
    #[error("malformed STL: {0}")]
    Stl(String),
    /// The OBJ data is malformed.
    #[error("malformed OBJ, line {line}: {message}")]
    Obj {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The file parsed but holds no triangles.
    #[error("mesh has no triangles")]
    Empty,
}

/// Loads an STL or OBJ file, chosen by extension (case-insensitive).
pub fn load_mesh(path: &Path) -> Result<TriMesh, MeshError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let read_err = |source| MeshError::Io {
        path: path.display().to_string(),
        source,
    };
    let mesh = match ext.as_str() {
        "stl" => parse_stl(&std::fs::read(path).map_err(read_err)?)?,
        "obj" => parse_obj(&std::fs::read_to_string(path).map_err(read_err)?)?,
        _ => return Err(MeshError::UnsupportedFormat(path.display().to_string())),
    };
    if mesh.triangles.is_empty() {
        return Err(MeshError::Empty);
    }
    Ok(mesh)
}

/// Parses STL data, binary or ASCII. Binary is detected by its exact size
/// (84 + 50·n bytes), since binary files may also start with `solid`.
/// Coincident vertices are merged.
pub fn parse_stl(bytes: &[u8]) -> Result<TriMesh, MeshError> {
    if bytes.len() >= 84 {
        let count = u32::from_le_bytes([bytes[80], bytes[81], bytes[82], bytes[83]]) as usize;
        if count.checked_mul(50).and_then(|n| n.checked_add(84)) == Some(bytes.len()) {
            return Ok(parse_stl_binary(&bytes[84..], count));
        }
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| MeshError::Stl("not binary STL (size mismatch) and not UTF-8 text".into()))?;
    if !text.trim_start().starts_with("solid") {
        return Err(MeshError::Stl(
            "not binary STL (size mismatch) and no leading `solid` keyword".into(),
        ));
    }
    parse_stl_ascii(text)
}

fn parse_stl_binary(body: &[u8], count: usize) -> TriMesh {
    let mut builder = VertexDedup::default();
    for record in body.chunks_exact(50).take(count) {
        // 12 bytes normal, then 3 × 12 bytes vertices, then 2 bytes attribute.
        let mut tri = [0u32; 3];
        for (k, slot) in tri.iter_mut().enumerate() {
            let off = 12 + 12 * k;
            let f = |i: usize| {
                let b = &record[off + 4 * i..off + 4 * i + 4];
                f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            };
            *slot = builder.index([f(0), f(1), f(2)]);
        }
        builder.mesh.triangles.push(tri);
    }
    builder.mesh
}

fn parse_stl_ascii(text: &str) -> Result<TriMesh, MeshError> {
    let mut builder = VertexDedup::default();
    let mut facet: Vec<u32> = Vec::with_capacity(3);
    for (n, line) in text.lines().enumerate() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("vertex") => {
                let mut v = [0.0; 3];
                for c in &mut v {
                    *c = words.next().and_then(|w| w.parse().ok()).ok_or_else(|| {
                        MeshError::Stl(format!("line {}: bad vertex {line:?}", n + 1))
                    })?;
                }
                facet.push(builder.index(v));
            }
            Some("endfacet") => {
                let tri: [u32; 3] = facet.as_slice().try_into().map_err(|_| {
                    MeshError::Stl(format!(
                        "line {}: facet has {} vertices, expected 3",
                        n + 1,
                        facet.len()
                    ))
                })?;
                builder.mesh.triangles.push(tri);
                facet.clear();
            }
            _ => {}
        }
    }
    Ok(builder.mesh)
}

/// Parses Wavefront OBJ text: `v x y z` and `f i j k …` (with `i/t/n`, `i//n` and negative
/// indices); other records are ignored. Polygons are split into a triangle fan.
pub fn parse_obj(text: &str) -> Result<TriMesh, MeshError> {
    let mut mesh = TriMesh::default();
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        let err = |message: String| MeshError::Obj {
            line: line_no,
            message,
        };
        let mut words = line.split_whitespace();
        match words.next() {
            Some("v") => {
                let mut v = [0.0; 3];
                for c in &mut v {
                    *c = words
                        .next()
                        .and_then(|w| w.parse().ok())
                        .ok_or_else(|| err(format!("bad vertex {line:?}")))?;
                }
                mesh.vertices.push(v);
            }
            Some("f") => {
                let count = mesh.vertices.len();
                let indices = words
                    .map(|w| {
                        obj_index(w, count).ok_or_else(|| err(format!("bad face index {w:?}")))
                    })
                    .collect::<Result<Vec<u32>, _>>()?;
                if indices.len() < 3 {
                    return Err(err(format!("face with {} vertices", indices.len())));
                }
                for k in 1..indices.len() - 1 {
                    mesh.triangles
                        .push([indices[0], indices[k], indices[k + 1]]);
                }
            }
            _ => {}
        }
    }
    Ok(mesh)
}

/// Resolves one OBJ face corner (`7`, `7/2`, `7//3`, `-1`) to a 0-based vertex index.
fn obj_index(word: &str, vertex_count: usize) -> Option<u32> {
    let raw: i64 = word.split('/').next()?.parse().ok()?;
    let count = i64::try_from(vertex_count).ok()?;
    let index = match raw {
        r if r > 0 && r <= count => r - 1,
        r if r < 0 && -r <= count => count + r,
        _ => return None,
    };
    u32::try_from(index).ok()
}

/// Builds a mesh while merging bit-identical vertices (STL repeats them per facet).
#[derive(Default)]
struct VertexDedup {
    mesh: TriMesh,
    seen: HashMap<[u64; 3], u32>,
}

impl VertexDedup {
    fn index(&mut self, v: [f64; 3]) -> u32 {
        let key = v.map(|c| (c + 0.0).to_bits());
        *self.seen.entry(key).or_insert_with(|| {
            self.mesh.vertices.push(v);
            // A u32 overflow would need a file of more than 100 GB.
            (self.mesh.vertices.len() - 1) as u32
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn obj_indices() {
        assert_eq!(obj_index("1", 3), Some(0));
        assert_eq!(obj_index("3/7/2", 3), Some(2));
        assert_eq!(obj_index("2//5", 3), Some(1));
        assert_eq!(obj_index("-1", 3), Some(2));
        assert_eq!(obj_index("-3", 3), Some(0));
        for bad in ["0", "4", "-4", "x", ""] {
            assert_eq!(obj_index(bad, 3), None, "{bad:?}");
        }
    }

    #[test]
    fn mirroring_scale_flips_winding() {
        let mesh = TriMesh {
            vertices: vec![[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
            triangles: vec![[0, 1, 2]],
        };
        let scaled = mesh.clone().scaled([2.0, 3.0, 4.0]);
        assert_eq!(scaled.vertices[2], [0.0, 3.0, 0.0]);
        assert_eq!(scaled.triangles, mesh.triangles);
        assert_eq!(mesh.scaled([-1.0, 1.0, 1.0]).triangles, vec![[0, 2, 1]]);
    }
}
