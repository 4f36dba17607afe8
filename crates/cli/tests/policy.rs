//! `bicameral policy run-head` / `run-vlm` on the tiny golden fixtures reproduce upstream's
//! outputs (actions and per-step velocities; hidden states, pooled output, logits).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bicameral_policy::{HostTensor, read_safetensors};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bicameral-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `bicameral policy <cmd> --checkpoint C --inputs I --out O <extra...>`.
fn run(cmd: &str, checkpoint: &Path, inputs: &Path, out: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bicameral"))
        .env("BICAMERAL_LOG", "warn")
        .args(["policy", cmd])
        .args(extra)
        .arg("--checkpoint")
        .arg(checkpoint)
        .arg("--inputs")
        .arg(inputs)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn assert_ok(res: &Output, what: &str) {
    assert!(
        res.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&res.stderr)
    );
}

/// Max absolute difference between two float tensors of the same shape.
fn max_abs_err(got: &HostTensor, want: &HostTensor, what: &str) -> f32 {
    assert_eq!(got.shape, want.shape, "{what}: shape");
    got.as_f32()
        .unwrap()
        .iter()
        .zip(want.as_f32().unwrap())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max)
}

/// Every tensor named in `names` is within 1e-4 of the fixture's, and nothing else was written.
fn assert_matches_fixture(out: &Path, fixture: &Path, names: &[&str]) {
    let got = read_safetensors(out).unwrap();
    let want = read_safetensors(&fixture.join("outputs.safetensors")).unwrap();
    let mut sorted = names.to_vec();
    sorted.sort();
    assert_eq!(got.keys().map(String::as_str).collect::<Vec<_>>(), sorted);
    for name in names {
        let err = max_abs_err(&got[*name], &want[*name], name);
        assert!(err <= 1e-4, "{name}: max abs err {err:e}");
    }
}

#[test]
fn policy_run_head_matches_upstream_fixture() {
    let fixture = fixture("gr00t-n1.5-action-head-tiny");
    let dir = tmp_dir("policy");
    let out = dir.join("out.safetensors");
    let inputs = fixture.join("inputs.safetensors");
    assert_ok(&run("run-head", &fixture, &inputs, &out, &[]), "run-head");
    assert_matches_fixture(&out, &fixture, &["action_pred", "v_0", "v_1", "v_2", "v_3"]);

    // --steps changes the number of velocities; a missing checkpoint is a clear error.
    assert_ok(
        &run("run-head", &fixture, &inputs, &out, &["--steps", "2"]),
        "run-head --steps 2",
    );
    let got = read_safetensors(&out).unwrap();
    assert!(got.contains_key("v_1") && !got.contains_key("v_2"));
    let res = run("run-head", &dir.join("nope"), &inputs, &out, &[]);
    assert!(!res.status.success());
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(err.contains("config.json"), "{err}");
}

/// `policy run-vlm` on each System 2 fixture writes every upstream output within 1e-4.
#[test]
fn policy_run_vlm_matches_upstream_fixtures() {
    let dir = tmp_dir("vlm");
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
        let fixture = fixture(name);
        let out = dir.join(format!("{name}.safetensors"));
        let res = run(
            "run-vlm",
            &fixture,
            &fixture.join("inputs.safetensors"),
            &out,
            &[],
        );
        assert_ok(&res, name);
        assert_matches_fixture(&out, &fixture, outputs);
    }
    // Feeding the LM the vision inputs is an error naming the missing tensor.
    let out = dir.join("x.safetensors");
    let res = run(
        "run-vlm",
        &fixture("qwen3-tiny"),
        &fixture("siglip-vision-tiny").join("inputs.safetensors"),
        &out,
        &[],
    );
    assert!(!res.status.success());
    assert!(String::from_utf8_lossy(&res.stderr).contains("input_ids"));
    assert!(!out.exists());
}
