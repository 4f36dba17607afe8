//! `bicameral policy run-head` on the GR00T N1.5 tiny golden fixture reproduces upstream's
//! `action_pred` and per-step velocities.

use std::path::{Path, PathBuf};
use std::process::Command;

use bicameral_policy::read_safetensors;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn policy_run_head_matches_upstream_fixture() {
    let fixture = root().join("tests/fixtures/gr00t-n1.5-action-head-tiny");
    let dir = std::env::temp_dir().join(format!("bicameral-cli-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("out.safetensors");
    let res = Command::new(env!("CARGO_BIN_EXE_bicameral"))
        .env("BICAMERAL_LOG", "warn")
        .args(["policy", "run-head", "--checkpoint"])
        .arg(&fixture)
        .arg("--inputs")
        .arg(fixture.join("inputs.safetensors"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "run-head failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    let got = read_safetensors(&out).unwrap();
    let want = read_safetensors(&fixture.join("outputs.safetensors")).unwrap();
    let names = ["action_pred", "v_0", "v_1", "v_2", "v_3"];
    assert_eq!(got.keys().collect::<Vec<_>>(), {
        let mut n = names.to_vec();
        n.sort();
        n
    });
    for name in names {
        assert_eq!(got[name].shape, want[name].shape, "{name}");
        let err = got[name]
            .as_f32()
            .unwrap()
            .iter()
            .zip(want[name].as_f32().unwrap())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(err <= 1e-4, "{name}: max abs err {err:e}");
    }

    // --steps changes the number of velocities; a missing checkpoint is a clear error.
    let res = Command::new(env!("CARGO_BIN_EXE_bicameral"))
        .env("BICAMERAL_LOG", "warn")
        .args(["policy", "run-head", "--steps", "2", "--checkpoint"])
        .arg(&fixture)
        .arg("--inputs")
        .arg(fixture.join("inputs.safetensors"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let got = read_safetensors(&out).unwrap();
    assert!(got.contains_key("v_1") && !got.contains_key("v_2"));
    let res = Command::new(env!("CARGO_BIN_EXE_bicameral"))
        .env("BICAMERAL_LOG", "warn")
        .args(["policy", "run-head", "--checkpoint"])
        .arg(dir.join("nope"))
        .arg("--inputs")
        .arg(fixture.join("inputs.safetensors"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!res.status.success());
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(err.contains("config.json"), "{err}");
}

/// `policy run-vlm` on each System 2 fixture writes every upstream output within 1e-4.
#[test]
fn policy_run_vlm_matches_upstream_fixtures() {
    let dir = std::env::temp_dir().join(format!("bicameral-cli-vlm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, outputs) in [
        (
            "siglip-vision-tiny",
            &[
                "hidden_states",
                "last_hidden_state",
                "patch_embeds",
                "pooler_output",
            ][..],
        ),
        (
            "qwen3-tiny",
            &[
                "hidden_states",
                "last_hidden_state",
                "last_layer_output_prenorm",
                "logits",
            ][..],
        ),
    ] {
        let fixture = root().join("tests/fixtures").join(name);
        let out = dir.join(format!("{name}.safetensors"));
        let res = Command::new(env!("CARGO_BIN_EXE_bicameral"))
            .env("BICAMERAL_LOG", "warn")
            .args(["policy", "run-vlm", "--checkpoint"])
            .arg(&fixture)
            .arg("--inputs")
            .arg(fixture.join("inputs.safetensors"))
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            res.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&res.stderr)
        );
        let got = read_safetensors(&out).unwrap();
        let want = read_safetensors(&fixture.join("outputs.safetensors")).unwrap();
        assert_eq!(got.keys().map(String::as_str).collect::<Vec<_>>(), outputs);
        for key in outputs {
            assert_eq!(got[*key].shape, want[*key].shape, "{name} {key}");
            let err = got[*key]
                .as_f32()
                .unwrap()
                .iter()
                .zip(want[*key].as_f32().unwrap())
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(err <= 1e-4, "{name} {key}: max abs err {err:e}");
        }
    }
    // Feeding the LM the vision inputs is an error naming the missing tensor.
    let res = Command::new(env!("CARGO_BIN_EXE_bicameral"))
        .env("BICAMERAL_LOG", "warn")
        .args(["policy", "run-vlm", "--checkpoint"])
        .arg(root().join("tests/fixtures/qwen3-tiny"))
        .arg("--inputs")
        .arg(root().join("tests/fixtures/siglip-vision-tiny/inputs.safetensors"))
        .arg("--out")
        .arg(dir.join("x.safetensors"))
        .output()
        .unwrap();
    assert!(!res.status.success());
    assert!(String::from_utf8_lossy(&res.stderr).contains("input_ids"));
    assert!(!dir.join("x.safetensors").exists());
}
