//! System 2's towers against the upstream fixtures (transformers 4.51.3 on tiny random models,
//! tests/fixtures/{siglip-vision-tiny, qwen3-tiny}): every hidden state, the pooled output and
//! the logits to ≤ 1e-4 absolute; truncation at `select_layer` loads and runs only the kept
//! layers; bad checkpoints are reported by name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bicameral_policy::burn::tensor::{Int, Tensor, TensorData};
use bicameral_policy::{
    HostTensor, LoadOptions, PolicyError, Qwen3, Qwen3Config, SiglipVision, read_safetensors,
};

const TOL: f32 = 1e-4;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn opts() -> LoadOptions {
    LoadOptions {
        prefix: String::new(),
        ..LoadOptions::default()
    }
}

fn check<const D: usize>(name: &str, got: Tensor<D>, want: &HostTensor) {
    let data = got.into_data();
    assert_eq!(data.shape().to_vec(), want.shape, "{name}: shape");
    let got = data.convert::<f32>().try_into_vec::<f32>().unwrap();
    let err = got
        .iter()
        .zip(want.as_f32().unwrap())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    eprintln!("{name:28} max abs err {err:.3e}");
    assert!(
        err.is_finite() && err <= TOL,
        "{name}: max abs err {err:e} > {TOL:e}"
    );
}

/// Entry `i` of a stacked `[L+1, ...]` tensor.
fn entry(t: &HostTensor, i: usize) -> HostTensor {
    let per: usize = t.shape[1..].iter().product();
    HostTensor::f32(
        t.shape[1..].to_vec(),
        t.as_f32().unwrap()[i * per..(i + 1) * per].to_vec(),
    )
}

#[test]
fn siglip_matches_transformers() {
    let dir = fixture("siglip-vision-tiny");
    let device = bicameral_policy::cpu_device();
    let (tower, report) = SiglipVision::load(&dir, &device, &opts()).unwrap();
    assert_eq!(report.loaded, 48);
    let inputs = read_safetensors(&dir.join("inputs.safetensors")).unwrap();
    let outputs = read_safetensors(&dir.join("outputs.safetensors")).unwrap();
    let px = &inputs["pixel_values"];
    let pixels = Tensor::<4>::from_data(
        TensorData::new(px.as_f32().unwrap().to_vec(), [2, 3, 56, 56]),
        &device,
    );
    let out = tower.forward(pixels).unwrap();
    check("patch_embeds", out.patch_embeds, &outputs["patch_embeds"]);
    let hs = &outputs["hidden_states"];
    assert_eq!(out.hidden_states.len(), hs.shape[0]);
    for (i, h) in out.hidden_states.into_iter().enumerate() {
        check(&format!("hidden_states[{i}]"), h, &entry(hs, i));
    }
    check(
        "last_hidden_state",
        out.last_hidden_state.clone(),
        &outputs["last_hidden_state"],
    );
    let pooled = tower
        .pool(out.last_hidden_state)
        .expect("the fixture has a head");
    check("pooler_output", pooled, &outputs["pooler_output"]);

    // Wrong image size is an input error that names the tensor.
    let bad = Tensor::<4>::zeros([1, 3, 28, 28], &device);
    let err = tower.forward(bad).unwrap_err().to_string();
    assert!(err.contains("pixel_values"), "{err}");
}

fn lm_inputs(dir: &Path) -> (Vec<i64>, Vec<Vec<bool>>) {
    let inputs = read_safetensors(&dir.join("inputs.safetensors")).unwrap();
    let ids = inputs["input_ids"].as_i64().unwrap().to_vec();
    let m = inputs["attention_mask"].as_i64().unwrap();
    let mask = m
        .chunks(9)
        .map(|r| r.iter().map(|&v| v == 1).collect())
        .collect();
    (ids, mask)
}

#[test]
fn qwen3_matches_transformers() {
    let dir = fixture("qwen3-tiny");
    let device = bicameral_policy::cpu_device();
    let (lm, report) = Qwen3::load(&dir, None, &device, &opts()).unwrap();
    assert_eq!(report.loaded, 36);
    let outputs = read_safetensors(&dir.join("outputs.safetensors")).unwrap();
    let (ids, mask) = lm_inputs(&dir);
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [2, 9]), &device);
    let out = lm.forward(ids.clone(), &mask).unwrap();
    let hs = &outputs["hidden_states"];
    assert_eq!(out.hidden_states.len(), hs.shape[0]);
    for (i, h) in out.hidden_states.iter().enumerate() {
        check(&format!("hidden_states[{i}]"), h.clone(), &entry(hs, i));
    }
    check(
        "last_layer_output_prenorm",
        out.last_prenorm,
        &outputs["last_layer_output_prenorm"],
    );
    check("logits", out.logits.unwrap(), &outputs["logits"]);

    // Cut at select_layer = 2: only layers 0 and 1 (and no LM head) are loaded and run; the
    // raw output after 2 layers equals upstream's hidden_states[2].
    let (cut, report) = Qwen3::load(&dir, Some(2), &device, &opts()).unwrap();
    assert_eq!(cut.layers.len(), 2);
    assert_eq!(
        report.loaded,
        2 + 2 * 11,
        "embeddings, final norm, 2 layers of 11 tensors"
    );
    assert!(report.unexpected.is_empty());
    let out = cut.forward(ids, &mask).unwrap();
    assert!(out.logits.is_none());
    check("select_layer 2 (pre-norm)", out.last_prenorm, &entry(hs, 2));
    let err = Qwen3::load(&dir, Some(4), &device, &opts())
        .unwrap_err()
        .to_string();
    assert!(err.contains("select_layer"), "{err}");
}

#[test]
fn qwen3_tied_embeddings_and_bad_checkpoints() {
    let dir = fixture("qwen3-tiny");
    let device = bicameral_policy::cpu_device();
    let mut cfg = Qwen3Config::from_file(&dir.join("config.json")).unwrap();
    let mut tensors: BTreeMap<String, HostTensor> =
        read_safetensors(&dir.join("model.safetensors")).unwrap();
    // Tied: lm_head absent, logits = normed hidden · embed_tokensᵀ.
    let lm_head = tensors.remove("lm_head.weight").unwrap();
    let err = Qwen3::from_tensors(&cfg, None, &device, &tensors, &opts(), &dir).unwrap_err();
    assert!(
        matches!(&err, PolicyError::CheckpointMismatch { missing, .. } if missing == &["lm_head.weight"]),
        "{err}"
    );
    cfg.tie_word_embeddings = true;
    let (lm, _) = Qwen3::from_tensors(&cfg, None, &device, &tensors, &opts(), &dir).unwrap();
    let (ids, mask) = lm_inputs(&dir);
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [2, 9]), &device);
    let out = lm.forward(ids, &mask).unwrap();
    let logits = out
        .logits
        .unwrap()
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap();
    let normed = out
        .hidden_states
        .last()
        .unwrap()
        .clone()
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap();
    let emb = tensors["model.embed_tokens.weight"].as_f32().unwrap();
    // Spot-check one logit against a host dot product.
    let (pos, tok) = (4usize, 17usize);
    let want: f32 = (0..32)
        .map(|k| normed[pos * 32 + k] * emb[tok * 32 + k])
        .sum();
    assert!((logits[pos * 128 + tok] - want).abs() < 1e-4);
    // A misshaped tensor is named.
    let mut bad = tensors.clone();
    bad.insert("lm_head.weight".into(), lm_head);
    bad.insert(
        "model.norm.weight".into(),
        HostTensor::f32(vec![31], vec![1.0; 31]),
    );
    cfg.tie_word_embeddings = false;
    let err = Qwen3::from_tensors(&cfg, None, &device, &bad, &opts(), &dir)
        .unwrap_err()
        .to_string();
    assert!(err.contains("model.norm.weight"), "{err}");
}
