//! `bicameral bench s2`: System 2 planner latency per observation (one 224² camera image and a
//! 16-token instruction → plan tokens) on the CPU, for the shipped default size and a "small"
//! size; `--export` writes weights and inputs for benches/s2_vs_torch.sh (transformers on the
//! same machine).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use bicameral_policy::burn::tensor::{Tensor, TensorData};
use bicameral_policy::{
    HostTensor, Planner, PromptEncoder, preprocess_image, save_tokenizer, word_level_tokenizer_json,
};
use bicameral_train::{PlannerSize, TrainConfig};
use clap::Args;
use serde_json::json;

#[derive(Debug, Args)]
pub struct BenchS2Args {
    /// Configurations to time (comma-separated): default, small.
    #[arg(long, default_value = "default,small")]
    configs: String,
    /// Timed observations per configuration.
    #[arg(long, default_value_t = 20)]
    repeats: usize,
    /// Write each configuration's random weights, tokenizer and inputs into `DIR/<config>/`
    /// (planner.json, planner.safetensors, tokenizer.json, bench_inputs.safetensors with our
    /// plan tokens) for benches/s2_vs_torch.sh.
    #[arg(long)]
    export: Option<PathBuf>,
    /// Print JSON only (no human summary on stderr).
    #[arg(long)]
    json: bool,
}

/// The 16-word instruction of every timed observation.
pub const INSTRUCTION: &str = "pick up the small red cube on the left and put it in the blue bowl";

/// The shipped default (models/dual_default.toml's `[planner]`) and the "small" size:
/// SigLIP 12 × 384 at 224 px / patch 16 (196 tokens), Qwen3-style LM 12 × 512.
fn configs() -> Result<Vec<(&'static str, PlannerSize)>> {
    let default: TrainConfig = toml::from_str(include_str!("../../../models/dual_default.toml"))
        .context("models/dual_default.toml")?;
    let default = default
        .planner
        .context("models/dual_default.toml has no [planner]")?;
    let small = PlannerSize {
        image_size: 224,
        patch_size: 16,
        vision_layers: 12,
        vision_width: 384,
        vision_heads: 6,
        vision_mlp: 1536,
        lm_layers: 12,
        lm_width: 512,
        lm_heads: 8,
        lm_kv_heads: 4,
        lm_head_dim: 64,
        lm_mlp: 1536,
        vocab_size: 1024,
        max_text_tokens: 16,
        ..default.clone()
    };
    Ok(vec![("default", default), ("small", small)])
}

/// A deterministic 224×224 RGB test image (gradients and a square).
fn test_image() -> Vec<u8> {
    let mut rgb = Vec::with_capacity(224 * 224 * 3);
    for y in 0..224usize {
        for x in 0..224usize {
            let inside = (80..140).contains(&x) && (100..160).contains(&y);
            rgb.extend(if inside {
                [200, 30, 20]
            } else {
                [x as u8, y as u8, ((x + y) / 2) as u8]
            });
        }
    }
    rgb
}

pub fn run(args: &BenchS2Args) -> Result<()> {
    let device = bicameral_policy::cpu_device();
    let wanted: Vec<&str> = args.configs.split(',').map(str::trim).collect();
    let all = configs()?;
    for w in &wanted {
        if !all.iter().any(|(n, _)| n == w) {
            anyhow::bail!("--configs: unknown configuration \"{w}\" (known: default, small)");
        }
    }
    let image = test_image();
    let mut rows = serde_json::Map::new();
    for (name, size) in all.iter().filter(|(n, _)| wanted.contains(n)) {
        let cfg = size
            .planner_config()
            .map_err(|m| anyhow::anyhow!("{name}: {m}"))?;
        let planner = Planner::init(&cfg, &device, 0)?;
        let json = word_level_tokenizer_json([INSTRUCTION]);
        let tok =
            bicameral_policy::text::tokenizer_from_json(&json, std::path::Path::new("bench"))?;
        let prompt = PromptEncoder::new(tok, cfg.prompt.clone(), std::path::Path::new("bench"))?;
        let image_tokens = cfg.num_views * cfg.tokens_per_view();
        let n = cfg.vision.image_size;
        let observe = || -> Result<(Tensor<3>, Vec<f32>, bicameral_policy::Prompt, f64)> {
            let t0 = Instant::now();
            let px = preprocess_image(&image, 224, 224, n);
            let p = prompt.encode(INSTRUCTION, image_tokens)?;
            let pixels = Tensor::<4>::from_data(TensorData::new(px.clone(), [1, 3, n, n]), &device);
            let out = planner.forward(pixels, std::slice::from_ref(&p))?;
            // Wait for the result (the backend may run lazily).
            let _ = out.tokens.clone().into_data();
            Ok((out.tokens, px, p, t0.elapsed().as_secs_f64() * 1000.0))
        };
        let (tokens, px, p, _) = observe()?;
        let text_tokens = p.attention_mask.iter().filter(|&&m| m).count() - image_tokens;
        let tensors = planner.to_tensors("")?;
        let params: usize = tensors
            .values()
            .map(|t| t.shape.iter().product::<usize>())
            .sum();
        drop(tensors);
        if let Some(dir) = &args.export {
            let d = dir.join(name);
            planner.save(&d)?;
            save_tokenizer(&prompt, &d)?;
            let s = p.ids.len();
            let mut t = std::collections::BTreeMap::new();
            t.insert(
                "pixel_values".to_string(),
                HostTensor::f32(vec![1, 3, n, n], px),
            );
            t.insert(
                "input_ids".into(),
                HostTensor::i64(vec![1, s], p.ids.iter().map(|&i| i as i64).collect()),
            );
            let mask =
                |m: &[bool]| HostTensor::i64(vec![1, s], m.iter().map(|&v| v as i64).collect());
            t.insert("attention_mask".into(), mask(&p.attention_mask));
            t.insert("image_mask".into(), mask(&p.image_mask));
            t.insert("plan_tokens".into(), HostTensor::from_tensor(tokens)?);
            bicameral_policy::write_safetensors(&d.join("bench_inputs.safetensors"), &t)
                .with_context(|| format!("writing {}", d.display()))?;
        }
        let repeats = args.repeats.max(1);
        // Timed inside a compute pool, as the runtime's planner node runs.
        let pool = crate::agents::ComputePool::sized_like_global("bench")?;
        let mut times = pool.run(|| -> Result<Vec<f64>> {
            observe()?;
            (0..repeats).map(|_| observe().map(|r| r.3)).collect()
        })?;
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        if !args.json {
            eprintln!(
                "{name}: {params} parameters, plan {} × {}, {median:.2} ms per observation ({:.1} Hz)",
                cfg.plan_tokens(),
                cfg.plan_dim(),
                1000.0 / median
            );
        }
        rows.insert(
            name.to_string(),
            json!({
                "params": params,
                "image_size": n,
                "image_tokens": image_tokens,
                "text_tokens": text_tokens,
                "plan_tokens": cfg.plan_tokens(),
                "plan_dim": cfg.plan_dim(),
                "vision": format!("{} × {}", cfg.vision.num_hidden_layers, cfg.vision.hidden_size),
                "lm": format!("{} × {}", cfg.select_layer, cfg.text.hidden_size),
                "observation_ms": median,
                "observation_ms_min": times[0],
                "hz": 1000.0 / median,
                "repeats": repeats,
            }),
        );
    }
    let report = json!({
        "bench": "s2",
        "backend": "burn flex (CPU)",
        "threads": rayon::current_num_threads(),
        "observation": "one 224x224 RGB image (resized to the model's input) + a 16-word instruction, B = 1; preprocessing included",
        "configs": rows,
        "compare_with": "benches/s2_vs_torch.sh (transformers SiglipVisionModel + Qwen3Model, PyTorch eager on the CPU, same weights and inputs)",
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
