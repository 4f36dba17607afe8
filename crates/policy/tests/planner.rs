//! System 2's planner: prompt layout, image splicing, the upstream towers inside the planner
//! (fixture parity through the composite checkpoint), exact save/load, GR00T N1.5 dims at
//! reduced depth, and clear errors on bad input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bicameral_policy::burn::tensor::{Int, Tensor, TensorData};
use bicameral_policy::text::tokenizer_from_json;
use bicameral_policy::{
    ConnectorKind, HostTensor, LoadOptions, Planner, PlannerConfig, PolicyError, PromptConfig,
    PromptEncoder, Qwen3Config, SiglipVisionConfig, preprocess_image, read_safetensors,
    word_level_tokenizer_json,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
}

fn max_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max)
}

const CORPUS: &[&str] = &[
    "put the red cube in the blue bowl",
    "stack the green block on the yellow block",
    "hand the purple cylinder over",
];

fn encoder(template: &str, max_text_tokens: usize) -> PromptEncoder {
    let json = word_level_tokenizer_json(CORPUS.iter().copied());
    let tok = tokenizer_from_json(&json, Path::new("test")).unwrap();
    PromptEncoder::new(
        tok,
        PromptConfig {
            template: template.into(),
            max_text_tokens,
            ..PromptConfig::default()
        },
        Path::new("test"),
    )
    .unwrap()
}

/// The fixtures' towers (SigLIP 56 px / patch 14, Qwen3 3 layers × 32) as one planner.
fn fixture_config(template: &str, select_layer: usize, connector: ConnectorKind) -> PlannerConfig {
    let vision = SiglipVisionConfig::from_file(&fixture("siglip-vision-tiny/config.json")).unwrap();
    let text = Qwen3Config::from_file(&fixture("qwen3-tiny/config.json")).unwrap();
    PlannerConfig {
        vision,
        text,
        select_layer,
        pixel_shuffle: 2,
        connector,
        project_to_dim: None,
        num_views: 1,
        subgoal_dim: 6,
        subgoal_queries: 0,
        prompt: PromptConfig {
            template: template.into(),
            max_text_tokens: 12,
            ..PromptConfig::default()
        },
    }
}

fn fixture_pixels(n: usize) -> Tensor<4> {
    let inputs = read_safetensors(&fixture("siglip-vision-tiny/inputs.safetensors")).unwrap();
    let px = inputs["pixel_values"].as_f32().unwrap();
    let per = 3 * 56 * 56;
    Tensor::from_data(
        TensorData::new(px[..n * per].to_vec(), [n, 3, 56, 56]),
        &bicameral_policy::cpu_device(),
    )
}

#[test]
fn prompt_places_images_and_instruction() {
    let enc = encoder("{images} {instruction}", 8);
    let p = enc.encode("Put the RED cube in the bowl", 4).unwrap();
    assert_eq!(p.ids.len(), 12);
    assert_eq!(enc.sequence_len(4), 12);
    let img = enc.image_token_id();
    assert_eq!(&p.ids[..4], &[img; 4]);
    assert_eq!(p.image_mask, [vec![true; 4], vec![false; 8]].concat());
    // 7 words, lower-cased, all in the vocabulary; then one pad.
    let words = enc.tokenize("put the red cube in the bowl").unwrap();
    assert_eq!(&p.ids[4..11], words.as_slice());
    assert!(!words.contains(&1), "known words must not map to <unk>");
    assert_eq!(p.attention_mask, [vec![true; 11], vec![false]].concat());
    assert_eq!(p.ids[11], 0, "padding uses <pad>");
    assert!(!p.truncated);

    // Unknown words map to <unk>; a long instruction is cut to the budget.
    let q = enc
        .encode("put the shiny teapot in the sink now please", 4)
        .unwrap();
    assert!(q.truncated);
    assert_eq!(q.attention_mask.iter().filter(|&&m| m).count(), 12);
    assert_eq!(
        &q.ids[6..8],
        &[1, 1],
        "\"shiny teapot\" is not in the vocabulary"
    );

    // Instruction first, images after.
    let enc2 = encoder("{instruction} . {images}", 8);
    let r = enc2.encode("put the cube", 3).unwrap();
    assert_eq!(
        r.image_mask,
        [vec![false; 4], vec![true; 3], vec![false; 4]].concat()
    );
}

#[test]
fn prompt_config_errors_name_the_field() {
    let json = word_level_tokenizer_json(CORPUS.iter().copied());
    let tok = tokenizer_from_json(&json, Path::new("t")).unwrap();
    let bad = |cfg: PromptConfig| {
        PromptEncoder::new(tok.clone(), cfg, Path::new("tokenizer.json"))
            .unwrap_err()
            .to_string()
    };
    let e = bad(PromptConfig {
        template: "{images}".into(),
        ..PromptConfig::default()
    });
    assert!(
        e.contains("prompt.template") && e.contains("tokenizer.json"),
        "{e}"
    );
    let e = bad(PromptConfig {
        image_token: "<img>".into(),
        ..PromptConfig::default()
    });
    assert!(
        e.contains("prompt.image_token") && e.contains("<img>"),
        "{e}"
    );
    let e = bad(PromptConfig {
        template: "put the {images} red cube {instruction}".into(),
        max_text_tokens: 3,
        ..PromptConfig::default()
    });
    assert!(e.contains("max_text_tokens"), "{e}");
    let e = tokenizer_from_json("{\"model\": 3}", Path::new("x/tokenizer.json"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("x/tokenizer.json"), "{e}");
}

/// The fixture checkpoints renamed into the planner's layout; connector/subgoal random.
fn planner_tensors(seed_planner: &Planner) -> BTreeMap<String, HostTensor> {
    let mut t = seed_planner.to_tensors("").unwrap();
    for (k, v) in read_safetensors(&fixture("siglip-vision-tiny/model.safetensors")).unwrap() {
        if !k.starts_with("vision_model.head.") {
            t.insert(format!("vision_model.{k}"), v);
        }
    }
    for (k, v) in read_safetensors(&fixture("qwen3-tiny/model.safetensors")).unwrap() {
        t.insert(format!("language_model.{k}"), v);
    }
    t
}

#[test]
fn planner_runs_the_upstream_towers() {
    let device = bicameral_policy::cpu_device();
    // select_layer 2 of 3: layer 2, lm_head and the SigLIP pooling head are skipped, not
    // unexpected.
    let cfg = fixture_config("{images} {instruction}", 2, ConnectorKind::Mlp);
    let random = Planner::init(&cfg, &device, 1).unwrap();
    let mut tensors = planner_tensors(&random);
    for (k, v) in read_safetensors(&fixture("siglip-vision-tiny/model.safetensors")).unwrap() {
        if k.starts_with("vision_model.head.") {
            tensors.insert(format!("vision_model.{k}"), v);
        }
    }
    let opts = LoadOptions {
        prefix: String::new(),
        ..LoadOptions::default()
    };
    let (planner, report) =
        Planner::from_tensors(&cfg, &device, &tensors, &opts, Path::new("mem")).unwrap();
    assert!(report.unexpected.is_empty() && report.missing.is_empty());

    // Vision tower inside the planner = transformers' SiglipVisionModel.
    let outputs = read_safetensors(&fixture("siglip-vision-tiny/outputs.safetensors")).unwrap();
    let v = planner.vision.forward(fixture_pixels(2)).unwrap();
    let err = max_err(
        &host(v.last_hidden_state),
        outputs["last_hidden_state"].as_f32().unwrap(),
    );
    assert!(err <= 1e-4, "vision last_hidden_state err {err}");

    // LM inside the planner, cut at layer 2 = transformers' hidden_states[0..2].
    let inputs = read_safetensors(&fixture("qwen3-tiny/inputs.safetensors")).unwrap();
    let lm_out = read_safetensors(&fixture("qwen3-tiny/outputs.safetensors")).unwrap();
    let ids = &inputs["input_ids"];
    let mask = &inputs["attention_mask"];
    let (b, t) = (ids.shape[0], ids.shape[1]);
    let mask_rows: Vec<Vec<bool>> = mask
        .as_i64()
        .unwrap()
        .chunks(t)
        .map(|r| r.iter().map(|&m| m != 0).collect())
        .collect();
    let ids_t = Tensor::<2, Int>::from_data(
        TensorData::new(ids.as_i64().unwrap().to_vec(), [b, t]),
        &device,
    );
    assert_eq!(planner.language.layers.len(), 2);
    let out = planner.language.forward(ids_t, &mask_rows).unwrap();
    let hs = &lm_out["hidden_states"];
    let per = b * t * 32;
    for i in 0..2 {
        let want = &hs.as_f32().unwrap()[i * per..(i + 1) * per];
        let err = max_err(&host(out.hidden_states[i].clone()), want);
        assert!(err <= 1e-4, "LM hidden_states[{i}] err {err}");
    }
}

#[test]
fn images_are_spliced_at_the_placeholders() {
    let device = bicameral_policy::cpu_device();
    // Instruction first: causal attention means the text positions cannot see the images.
    let cfg = fixture_config("{instruction} {images}", 3, ConnectorKind::Linear);
    let planner = Planner::init(&cfg, &device, 3).unwrap();
    let enc = encoder(&cfg.prompt.template, cfg.prompt.max_text_tokens);
    let n_img = cfg.num_views * cfg.tokens_per_view();
    assert_eq!(
        n_img, 4,
        "56 px / patch 14 = 4×4 patches, shuffled 2×2 → 4 tokens"
    );
    let p = enc
        .encode("put the red cube in the blue bowl", n_img)
        .unwrap();
    assert_eq!(p.ids.len(), cfg.plan_tokens());
    let prompts = vec![p.clone(), p.clone()];
    let px = fixture_pixels(2); // two different images, same prompt
    let out = planner.forward(px, &prompts).unwrap();
    let s = cfg.plan_tokens();
    let d = cfg.plan_dim();
    assert_eq!(out.tokens.dims(), [2, s, d]);
    assert_eq!(out.subgoal.as_ref().unwrap().dims(), [2, 6]);
    let tok = host(out.tokens);
    let row = |b: usize, t: usize| &tok[(b * s + t) * d..(b * s + t + 1) * d];
    let first_img = p.image_mask.iter().position(|&m| m).unwrap();
    assert_eq!(first_img, 8, "8 instruction words come first");
    for t in 0..s {
        let e = max_err(row(0, t), row(1, t));
        if t < first_img {
            assert!(e < 1e-6, "text position {t} changed with the image ({e})");
        } else if p.attention_mask[t] {
            assert!(e > 1e-4, "position {t} does not see the image ({e})");
        }
    }
    // Bad prompt / image counts are errors, not panics.
    let err = planner.forward(fixture_pixels(1), &prompts).unwrap_err();
    assert!(matches!(err, PolicyError::Input { .. }), "{err}");
    let mut short = p.clone();
    short.ids.pop();
    let err = planner.forward(fixture_pixels(1), &[short]).unwrap_err();
    assert!(err.to_string().contains("prompt"), "{err}");
}

#[test]
fn save_load_round_trip_is_exact() {
    let device = bicameral_policy::cpu_device();
    let cfg = fixture_config("{images} {instruction}", 2, ConnectorKind::Mlp);
    let planner = Planner::init(&cfg, &device, 7).unwrap();
    let dir = std::env::temp_dir().join(format!("bicameral-planner-{}", std::process::id()));
    planner.save(&dir).unwrap();
    let (back, report) = Planner::load(&dir, &device).unwrap();
    assert_eq!(report.loaded, planner.to_tensors("").unwrap().len());
    let enc = encoder("{images} {instruction}", 12);
    let p = enc
        .encode("stack the green block", cfg.tokens_per_view())
        .unwrap();
    let a = planner
        .forward(fixture_pixels(1), std::slice::from_ref(&p))
        .unwrap();
    let b = back.forward(fixture_pixels(1), &[p]).unwrap();
    assert_eq!(host(a.tokens), host(b.tokens));
    assert_eq!(host(a.subgoal.unwrap()), host(b.subgoal.unwrap()));
    // A corrupted config is reported with its path.
    std::fs::write(dir.join("planner.json"), "{\"vision\": 1}").unwrap();
    let err = Planner::load(&dir, &device).unwrap_err().to_string();
    assert!(err.contains("planner.json"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Attention pooling: the subgoal is `fc2(gelu(fc1([softmax_t(q_i·t/√D) · tokens]_i)))` over
/// the real tokens only, recomputed here on the host from the plan tokens and the saved weights;
/// the queries are saved and loaded with the rest.
#[test]
fn attention_pooled_subgoal_reads_only_real_tokens() {
    let device = bicameral_policy::cpu_device();
    let mut cfg = fixture_config("{images} {instruction}", 2, ConnectorKind::Linear);
    cfg.subgoal_queries = 2;
    let planner = Planner::init(&cfg, &device, 11).unwrap();
    let w = planner.to_tensors("").unwrap();
    let d = cfg.plan_dim();
    assert_eq!(w["subgoal_head.queries"].shape, vec![2, d]);
    assert_eq!(w["subgoal_head.fc1.weight"].shape, vec![d, 2 * d]);
    let enc = encoder("{images} {instruction}", 12);
    // 3 words of a 12-token budget: the rest is padding.
    let p = enc
        .encode("stack the block", cfg.tokens_per_view())
        .unwrap();
    let real = p.attention_mask.iter().filter(|&&m| m).count();
    assert!(real < p.attention_mask.len(), "the prompt has padding");
    let out = planner
        .forward(fixture_pixels(1), std::slice::from_ref(&p))
        .unwrap();
    let tok = host(out.tokens.clone());
    let s = cfg.plan_tokens();
    let f32s = |n: &str| w[n].as_f32().unwrap().to_vec();
    let (q, w1, b1, w2, b2) = (
        f32s("subgoal_head.queries"),
        f32s("subgoal_head.fc1.weight"),
        f32s("subgoal_head.fc1.bias"),
        f32s("subgoal_head.fc2.weight"),
        f32s("subgoal_head.fc2.bias"),
    );
    let mut pooled = vec![0.0f64; 2 * d];
    for i in 0..2 {
        let score = |t: usize| {
            (0..d)
                .map(|k| (q[i * d + k] * tok[t * d + k]) as f64)
                .sum::<f64>()
                / (d as f64).sqrt()
        };
        let ts: Vec<usize> = (0..s).filter(|&t| p.attention_mask[t]).collect();
        let mx = ts.iter().map(|&t| score(t)).fold(f64::MIN, f64::max);
        let z: f64 = ts.iter().map(|&t| (score(t) - mx).exp()).sum();
        for &t in &ts {
            let a = (score(t) - mx).exp() / z;
            for k in 0..d {
                pooled[i * d + k] += a * tok[t * d + k] as f64;
            }
        }
    }
    // Upstream Linear layout: weight [out, in].
    // Exact GELU x·Φ(x); erf by Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5e-7).
    let erf = |x: f64| {
        let t = 1.0 / (1.0 + 0.3275911 * x.abs());
        let poly = t
            * (0.254829592
                + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
        (1.0 - poly * (-x * x).exp()).copysign(x)
    };
    let gelu = |x: f64| 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2));
    let hidden: Vec<f64> = (0..d)
        .map(|o| {
            gelu(
                b1[o] as f64
                    + (0..2 * d)
                        .map(|k| w1[o * 2 * d + k] as f64 * pooled[k])
                        .sum::<f64>(),
            )
        })
        .collect();
    let expect: Vec<f32> = (0..6)
        .map(|o| {
            (b2[o] as f64
                + (0..d)
                    .map(|k| w2[o * d + k] as f64 * hidden[k])
                    .sum::<f64>()) as f32
        })
        .collect();
    let got = host(out.subgoal.unwrap());
    assert!(max_err(&got, &expect) < 1e-4, "{got:?} vs {expect:?}");
    // Round trip, queries included.
    let dir = std::env::temp_dir().join(format!("bicameral-planner-q-{}", std::process::id()));
    planner.save(&dir).unwrap();
    let (back, _) = Planner::load(&dir, &device).unwrap();
    assert_eq!(back.config.subgoal_queries, 2);
    let again = back.forward(fixture_pixels(1), &[p]).unwrap();
    assert_eq!(host(again.subgoal.unwrap()), got);
    std::fs::remove_dir_all(&dir).ok();
}

/// GR00T N1.5's backbone dims as shipped in models/planner_n1.5.json (SigLIP-2 400M at 224 px /
/// patch 14 → 256 tokens, Linear 1152 → 2048 connector, Qwen3-1.7B cut at layer 12), built with
/// one layer in each tower and a 1024-word vocabulary instead of 151 936 (the embedding table
/// alone would be 1.2 GB): the plan has GR00T's shape [1, 256 + 16, 2048].
#[test]
fn groot_n15_dims_at_reduced_depth() {
    let device = bicameral_policy::cpu_device();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/planner_n1.5.json");
    let mut cfg = PlannerConfig::from_file(&shipped).unwrap();
    assert_eq!(cfg.select_layer, 12);
    assert_eq!(cfg.text.num_hidden_layers, 28);
    assert_eq!(cfg.plan_tokens(), 256 + 64);
    cfg.vision.num_hidden_layers = 1;
    cfg.text.vocab_size = 1024;
    cfg.prompt = PromptConfig::default();
    assert_eq!(cfg.tokens_per_view(), 256);
    assert_eq!(cfg.plan_dim(), 2048);
    cfg.validate().unwrap();
    // Build only one LM layer (the shape check does not need twelve).
    cfg.select_layer = 1;
    let planner = Planner::init(&cfg, &device, 0).unwrap();
    assert_eq!(planner.connector.fc1.weight.dims(), [1152, 2048]);
    let enc = encoder("{images} {instruction}", 16);
    let p = enc
        .encode("put the red cube in the blue bowl", 256)
        .unwrap();
    let rgb: Vec<u8> = (0..224 * 224 * 3).map(|i| (i % 251) as u8).collect();
    let px = preprocess_image(&rgb, 224, 224, 224);
    let pixels = Tensor::<4>::from_data(TensorData::new(px, [1, 3, 224, 224]), &device);
    let out = planner.forward(pixels, &[p]).unwrap();
    assert_eq!(out.tokens.dims(), [1, 272, 2048]);
    assert!(host(out.tokens).iter().all(|v| v.is_finite()));
}

#[test]
fn preprocess_resizes_and_normalizes() {
    // A 2×2 image: black, white / white, black. Downsampled to 1×1 it is mid-grey (0 after
    // normalization); kept at 2×2 it reproduces ±1.
    let rgb = [0, 0, 0, 255, 255, 255, 255, 255, 255, 0, 0, 0];
    let one = preprocess_image(&rgb, 2, 2, 1);
    assert!(one.iter().all(|v| v.abs() < 1e-6), "{one:?}");
    let same = preprocess_image(&rgb, 2, 2, 2);
    assert_eq!(&same[..4], &[-1.0, 1.0, 1.0, -1.0]);
    assert_eq!(same.len(), 12);
}
