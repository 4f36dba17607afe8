//! The default humanoid's workspace and cameras, checked in the default scene.

use std::path::Path;

use bicameral_robot::{IkConfig, IkSolver};
use bicameral_sim::{CameraImage, DataRoot, SimSetup, top_down};
use nalgebra::{Isometry3, Point3, Translation3, Vector3};

fn setup() -> SimSetup {
    let root = DataRoot {
        root: Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."),
    };
    SimSetup::load(&root, "default", None).expect("default scene loads")
}

/// Top-down grasps (fingers down, any of five yaw angles) 2.5 cm above the table top over the
/// whole 60 × 80 cm table area x ∈ [0.15, 0.75] m, y ∈ [−0.40, 0.40] m, on a 5 cm grid: every
/// point is reachable by at least one hand, and each hand reaches its own half plus a 20 cm band
/// across the middle (where handovers happen).
#[test]
fn hands_cover_the_table_area() {
    let s = setup();
    let table_z = 0.70;
    let solver = |side: &str| {
        let mut dofs: Vec<String> = s.embodiment.group("waist").unwrap().to_vec();
        dofs.extend(s.embodiment.group(&format!("{side}_arm")).unwrap().to_vec());
        let names: Vec<&str> = dofs.iter().map(String::as_str).collect();
        IkSolver::new(
            &s.kin,
            &format!("{side}_grasp_site"),
            Vector3::zeros(),
            &names,
            IkConfig {
                restarts: 20,
                ..IkConfig::default()
            },
        )
        .unwrap()
    };
    let solvers = [
        ("left", solver("left"), 1.0),
        ("right", solver("right"), -1.0),
    ];
    let yaws = [0.0, 0.5, -0.5, 1.0, -1.0];
    let mut missed_union = Vec::new();
    let mut missed_side = Vec::new();
    let mut total = 0;
    for ix in 0..=12 {
        for iy in 0..=16 {
            let (x, y) = (0.15 + 0.05 * ix as f64, -0.40 + 0.05 * iy as f64);
            total += 1;
            let mut any = false;
            for (side, ik, sign) in &solvers {
                let ok = yaws.iter().any(|&yaw| {
                    let target = Isometry3::from_parts(
                        Translation3::new(x, y, table_z + 0.025),
                        top_down(yaw),
                    );
                    ik.solve(&s.drive.initial, &target).converged
                });
                any |= ok;
                // Own half plus the central band.
                if !ok && sign * y >= -0.10 {
                    missed_side.push((side.to_string(), x, y));
                }
            }
            if !any {
                missed_union.push((x, y));
            }
        }
    }
    // The check discriminates: a point 1.2 m in front of the robot is out of reach.
    let far = Isometry3::from_parts(Translation3::new(1.2, 0.0, table_z + 0.025), top_down(0.0));
    for (side, ik, _) in &solvers {
        assert!(
            !ik.solve(&s.drive.initial, &far).converged,
            "{side} hand reaches 1.2 m"
        );
    }
    assert!(
        missed_union.is_empty(),
        "{} of {total} table points unreachable by both hands: {missed_union:?}",
        missed_union.len()
    );
    assert!(
        missed_side.is_empty(),
        "points of a hand's own half missed: {missed_side:?}"
    );
}

#[test]
fn ego_camera_sees_the_table_at_the_right_depth_and_the_cube_where_projected() {
    let s = setup();
    let world = s.world().unwrap();
    let mut cams = s.cameras(&world).unwrap();
    let ego = cams
        .specs()
        .iter()
        .position(|c| c.name == "ego_view")
        .unwrap();
    let mut img = CameraImage::default();
    cams.render_into(&world, ego, &mut img).unwrap();
    let k = cams.specs()[ego].intrinsics;
    assert_eq!((img.width, img.height), (224, 224));
    assert_eq!(img.rgb.len(), 224 * 224 * 3);

    // Depth along the optical axis where the pixel ray meets the table top (z = 0.70), for a
    // few pixels that see the bare table.
    let pose = img.pose;
    let table_z = 0.70;
    let mut checked = 0;
    for (u, v) in [(112, 112), (60, 150), (170, 150), (112, 200)] {
        let dir_cam = Vector3::new(
            (u as f64 + 0.5 - f64::from(k.cx)) / f64::from(k.fx),
            (v as f64 + 0.5 - f64::from(k.cy)) / f64::from(k.fy),
            1.0,
        );
        let dir = pose.rotation * dir_cam;
        let o = pose.translation.vector;
        let t = (table_z - o.z) / dir.z; // depth along the optical axis, since dir_cam.z = 1
        let hit = o + dir * t;
        let on_table = (0.15..0.85).contains(&hit.x) && hit.y.abs() < 0.5;
        let clear = s.scene.objects.iter().filter(|o| !o.fixed).all(|obj| {
            let p = Vector3::from(obj.position);
            (hit.xy() - p.xy()).norm() > 0.12
        });
        if !(on_table && clear) {
            continue;
        }
        let d = f64::from(img.depth[v * 224 + u]);
        assert!(
            (d - t).abs() < 1e-3,
            "pixel ({u}, {v}): depth {d:.4} m, table plane at {t:.4} m"
        );
        checked += 1;
    }
    assert!(checked >= 2, "only {checked} bare-table pixels checked");

    // The red cube's centre projects onto a red pixel.
    let cube = s.scene.object("red_cube").unwrap();
    let pc = pose.inverse_transform_point(&Point3::from(cube.position));
    assert!(pc.z > 0.0, "cube behind the ego camera");
    let u = (f64::from(k.fx) * pc.x / pc.z + f64::from(k.cx)) as usize;
    let v = (f64::from(k.fy) * pc.y / pc.z + f64::from(k.cy)) as usize;
    assert!(
        u < 224 && v < 224,
        "cube projects outside the image at ({u}, {v})"
    );
    let px = &img.rgb[(v * 224 + u) * 3..(v * 224 + u) * 3 + 3];
    assert!(
        px[0] > 150
            && u16::from(px[0]) > 2 * u16::from(px[1])
            && u16::from(px[0]) > 2 * u16::from(px[2]),
        "pixel ({u}, {v}) at the cube's centre is {px:?}, not red"
    );
    // Depth there is the distance to the cube's top face or side: within its half-diagonal.
    let d = f64::from(img.depth[v * 224 + u]);
    assert!(
        (d - pc.z).abs() < 0.05,
        "cube depth {d:.3} vs centre {:.3}",
        pc.z
    );
}
