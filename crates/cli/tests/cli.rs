//! End-to-end tests of the `bicameral` binary: the sim tour writes a recording rerun can decode,
//! the bench prints its JSON, bad input gets a clear error.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn bicameral() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bicameral"));
    c.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    c.env("BICAMERAL_LOG", "warn");
    c
}

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bicameral-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Entity paths of every chunk in an .rrd file, decoded with rerun's own decoder.
fn rrd_entities(path: &Path) -> (usize, BTreeSet<String>) {
    use rerun::external::re_log_encoding::DecoderApp;
    use rerun::external::re_log_types::LogMsg;
    let reader = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let mut chunks = 0;
    let mut entities = BTreeSet::new();
    for msg in DecoderApp::decode_eager(reader).expect("an rrd file") {
        if let LogMsg::ArrowMsg(_, arrow) = msg.expect("decodable message") {
            let chunk = rerun::log::Chunk::from_arrow_msg(&arrow).expect("a chunk");
            chunks += 1;
            entities.insert(chunk.entity_path().to_string());
        }
    }
    (chunks, entities)
}

#[test]
fn sim_view_saves_a_recording_rerun_decodes() {
    let dir = tmp_dir("view");
    let out = dir.join("view.rrd");
    let res = bicameral()
        .args([
            "sim",
            "view",
            "--seconds",
            "2.5",
            "--camera-hz",
            "4",
            "--save",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "sim view failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert!(out.is_file(), "no recording written");
    assert!(
        !dir.join("view.rrd.partial").exists(),
        "partial file left behind"
    );
    let (chunks, entities) = rrd_entities(&out);
    assert!(chunks > 100, "only {chunks} chunks");
    for e in [
        "/world/robot/left_hand",
        "/world/robot/left_hand/g0",
        "/world/objects/red_cube",
        "/world/cameras/ego_view/image",
        "/world/cameras/ego_view/depth",
        "/world/cameras/left_wrist/image",
        "/world/contacts",
        "/joints/position/left_elbow_pitch",
        "/joints/effort/waist_pitch",
    ] {
        assert!(
            entities.contains(e),
            "{e} missing from the recording; has {entities:?}"
        );
    }
    let stdout = String::from_utf8_lossy(&res.stdout);
    assert!(stdout.contains("saved"), "{stdout}");
}

#[test]
fn bench_sim_prints_json() {
    let res = bicameral()
        .args([
            "bench",
            "sim",
            "--json",
            "--seconds",
            "0.2",
            "--repeats",
            "1",
            "--frames",
            "5",
            "--workers",
            "2",
        ])
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&res.stdout).expect("JSON on stdout");
    for key in [
        "physics_steps_per_s_one_world",
        "physics_steps_per_s_n_worlds",
        "physics_steps_per_s_with_cameras",
        "render_frames_per_s",
    ] {
        let x = v[key].as_f64().unwrap_or(0.0);
        assert!(x > 0.0, "{key} = {x}");
    }
    assert_eq!(v["trajectory_steps"].as_u64(), Some(100));
    assert!(v["render_pixels_hit"].as_u64().unwrap() > 1000);
}

#[test]
fn bad_scene_is_a_clear_error() {
    let dir = tmp_dir("bad");
    let scene = dir.join("broken_scene.toml");
    std::fs::write(
        &scene,
        "name = \"x\"\nrobot = \"bc_humanoid\"\n[physics]\ndt = -1.0\n",
    )
    .unwrap();
    let res = bicameral()
        .args(["sim", "view", "--seconds", "0.1", "--scene"])
        .arg(&scene)
        .arg("--save")
        .arg(dir.join("x.rrd"))
        .output()
        .unwrap();
    assert!(!res.status.success());
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains("broken_scene.toml") && err.contains("physics.dt"),
        "{err}"
    );
    assert!(!dir.join("x.rrd").exists());
}
