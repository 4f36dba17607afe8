//! STL (binary and ASCII) and OBJ parsing on tiny files.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use bicameral_robot::MeshError;
use bicameral_robot::mesh::{load_mesh, parse_obj, parse_stl};

use common::temp_dir;

const TETRA: [[[f32; 3]; 3]; 4] = [
    [[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]],
    [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]],
    [[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]],
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
];

fn binary_stl(header: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0u8; 80];
    bytes[..header.len()].copy_from_slice(header);
    bytes.extend_from_slice(&(TETRA.len() as u32).to_le_bytes());
    for tri in TETRA {
        bytes.extend_from_slice(&[0u8; 12]);
        for v in tri {
            for c in v {
                bytes.extend_from_slice(&c.to_le_bytes());
            }
        }
        bytes.extend_from_slice(&[0u8; 2]);
    }
    bytes
}

fn ascii_stl() -> String {
    let mut s = String::from("solid tetra\n");
    for tri in TETRA {
        s.push_str("  facet normal 0 0 0\n    outer loop\n");
        for v in tri {
            s.push_str(&format!("      vertex {} {} {}\n", v[0], v[1], v[2]));
        }
        s.push_str("    endloop\n  endfacet\n");
    }
    s.push_str("endsolid tetra\n");
    s
}

#[test]
fn binary_and_ascii_stl_agree() {
    let dir = temp_dir("stl");
    // A binary header starting with "solid" must not fool the detector.
    std::fs::write(dir.join("bin.stl"), binary_stl(b"solid but binary")).unwrap();
    std::fs::write(dir.join("ascii.STL"), ascii_stl()).unwrap();
    let bin = load_mesh(&dir.join("bin.stl")).unwrap();
    let ascii = load_mesh(&dir.join("ascii.STL")).unwrap();
    assert_eq!(bin.vertices.len(), 4, "shared vertices merged");
    assert_eq!(bin.triangles.len(), 4);
    assert_eq!(bin, ascii);
    assert_eq!(bin.triangles[0], [0, 1, 2]);
    assert_eq!(bin.vertices[1], [0.0, 1.0, 0.0]);
}

#[test]
fn obj_with_polygons_and_index_forms() {
    let dir = temp_dir("obj");
    let text = "# cube face and a triangle\nmtllib x.mtl\no thing\n\
        v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvn 0 0 1\nvt 0 0\n\
        f 1/1/1 2/1/1 3/1/1 4/1/1\nf -4//1 -3//1 -1//1\n";
    std::fs::write(dir.join("quad.obj"), text).unwrap();
    let mesh = load_mesh(&dir.join("quad.obj")).unwrap();
    assert_eq!(mesh.vertices.len(), 4);
    assert_eq!(mesh.triangles, vec![[0, 1, 2], [0, 2, 3], [0, 1, 3]]);
}

#[test]
fn malformed_meshes_are_errors() {
    assert!(matches!(
        parse_obj("v 0 0\n"),
        Err(MeshError::Obj { line: 1, .. })
    ));
    assert!(matches!(
        parse_obj("v 0 0 0\nf 1 2 3\n"),
        Err(MeshError::Obj { line: 2, .. })
    ));
    assert!(matches!(
        parse_obj("v 0 0 0\nv 1 0 0\nf 1 2\n"),
        Err(MeshError::Obj { .. })
    ));
    assert!(matches!(parse_stl(b"garbage"), Err(MeshError::Stl(_))));
    let truncated = &binary_stl(b"")[..100];
    assert!(parse_stl(truncated).is_err());
    let bad_facet = "solid x\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 0\nendloop\nendfacet\nendsolid\n";
    assert!(matches!(
        parse_stl(bad_facet.as_bytes()),
        Err(MeshError::Stl(_))
    ));
    let dir = temp_dir("mesh-errors");
    std::fs::write(dir.join("empty.obj"), "v 0 0 0\n").unwrap();
    assert!(matches!(
        load_mesh(&dir.join("empty.obj")),
        Err(MeshError::Empty)
    ));
    std::fs::write(dir.join("x.ply"), "ply").unwrap();
    assert!(matches!(
        load_mesh(&dir.join("x.ply")),
        Err(MeshError::UnsupportedFormat(_))
    ));
    assert!(matches!(
        load_mesh(&dir.join("none.stl")),
        Err(MeshError::Io { .. })
    ));
}
