//! The shipped default model (models/default, what `bicameral demo` — the README's main
//! command — runs): it loads, System 2 plans and System 1 acts inside the robot's limits in the
//! lock-step loop, at the rates the loop asks for.

mod common;

use std::path::Path;

use common::{bicameral, ok, tmp_dir};

#[test]
fn the_default_model_runs_the_dual_system_in_closed_loop() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let ckpt = root.join("models/default");
    for f in [
        "config.json",
        "model.safetensors",
        "planner.json",
        "planner.safetensors",
        "tokenizer.json",
        "normalization.json",
        "README.md",
    ] {
        assert!(ckpt.join(f).is_file(), "models/default/{f} is missing");
    }
    let dir = tmp_dir("default-model");
    let json = dir.join("eval.json");
    ok(
        &bicameral(&[
            "eval",
            "--checkpoint",
            ckpt.to_str().unwrap(),
            "--episodes",
            "1",
            "--time-limit",
            "2",
            "--conditions",
            "policy",
            "--json",
            json.to_str().unwrap(),
        ]),
        "eval models/default",
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let e = &r["results"][0];
    assert!(e["plans"].as_u64().unwrap() >= 9, "{e}");
    assert!(e["chunks"].as_u64().unwrap() >= 55, "{e}");
    assert_eq!(e["rejected_chunks"], 0, "{e}");
}
