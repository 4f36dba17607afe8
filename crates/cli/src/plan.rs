//! `bicameral policy plan`: run System 2 of a trained checkpoint on camera images and an
//! instruction; print the plan's shape, its subgoal and the planner's latency.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use bicameral_policy::HostTensor;
use bicameral_train::{View, load_checkpoint};
use clap::Args;
use serde_json::json;

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Checkpoint directory written by `bicameral train dual` (planner.json,
    /// planner.safetensors, tokenizer.json next to the head).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Camera image (PNG), one per planner view, in the planner's view order.
    #[arg(long, required = true)]
    image: Vec<PathBuf>,
    /// The instruction.
    #[arg(long)]
    instruction: String,
    /// Timed runs (after one warm-up); the median is reported.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Also write the plan (plan_tokens [1,S,D], attention_mask, image_mask [1,S], subgoal
    /// [1,G]) to this safetensors file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &PlanArgs) -> Result<()> {
    let device = bicameral_policy::cpu_device();
    let (policy, _, step) = load_checkpoint(&args.checkpoint, &device)
        .with_context(|| format!("loading {}", args.checkpoint.display()))?;
    let Some(planner) = &policy.planner else {
        bail!(
            "{}: the checkpoint has no planner (System 2); it was trained with `train s1`",
            args.checkpoint.display()
        );
    };
    let images = args
        .image
        .iter()
        .map(|p| {
            let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            bicameral_dataset::decode_png(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: not a readable PNG: {e}", p.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let views: Vec<View<'_>> = images
        .iter()
        .map(|im| View {
            rgb: &im.rgb,
            width: im.width as usize,
            height: im.height as usize,
        })
        .collect();
    let run = || -> Result<(bicameral_policy::PlanOutput, f64)> {
        let t0 = Instant::now();
        let out = policy.plan_observation(&views, &args.instruction)?;
        let tokens = HostTensor::from_tensor(out.tokens.clone())?;
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        drop(tokens);
        Ok((out, ms))
    };
    let (out, _) = run()?;
    let mut times = (0..args.repeats.max(1))
        .map(|_| run().map(|r| r.1))
        .collect::<Result<Vec<f64>>>()?;
    times.sort_by(f64::total_cmp);
    let dims = out.tokens.dims();
    let real = out.attention_mask[0].iter().filter(|&&m| m).count();
    let image_tokens = out.image_mask[0].iter().filter(|&&m| m).count();
    let subgoal = match &out.subgoal {
        Some(s) => Some(HostTensor::from_tensor(s.clone())?),
        None => None,
    };
    let truncated = out.truncated[0];
    if let Some(path) = &args.out {
        let mask = |m: &Vec<bool>| {
            HostTensor::i64(vec![1, m.len()], m.iter().map(|&v| v as i64).collect())
        };
        let mut t = std::collections::BTreeMap::new();
        t.insert(
            "plan_tokens".to_string(),
            HostTensor::from_tensor(out.tokens.clone())?,
        );
        t.insert("attention_mask".into(), mask(&out.attention_mask[0]));
        t.insert("image_mask".into(), mask(&out.image_mask[0]));
        if let Some(s) = &subgoal {
            t.insert("subgoal".into(), s.clone());
        }
        bicameral_policy::write_safetensors(path, &t)?;
    }
    let median = times[times.len() / 2];
    let sg: Option<Vec<f32>> = subgoal
        .as_ref()
        .and_then(|s| s.as_f32())
        .map(<[f32]>::to_vec);
    if args.json {
        let v = json!({
            "checkpoint_step": step,
            "plan_shape": dims,
            "real_tokens": real,
            "image_tokens": image_tokens,
            "instruction_truncated": truncated,
            "subgoal": sg,
            "planner_ms_median": median,
            "planner_ms_min": times[0],
            "repeats": times.len(),
            "select_layer": planner.config.select_layer,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "plan {dims:?} [B, S, D]: {real} real tokens ({image_tokens} image, {} text), LM cut at layer {}",
        real - image_tokens,
        planner.config.select_layer
    );
    if truncated {
        println!(
            "instruction cut to the prompt's {} text tokens",
            planner.config.prompt.max_text_tokens
        );
    }
    match &sg {
        Some(s) if s.len() == 6 => println!(
            "subgoal: object at [{:.3}, {:.3}, {:.3}] m → destination [{:.3}, {:.3}, {:.3}] m",
            s[0], s[1], s[2], s[3], s[4], s[5]
        ),
        Some(s) => println!("subgoal: {s:?}"),
        None => println!("subgoal: (no subgoal head)"),
    }
    println!(
        "planner: {median:.2} ms median, {:.2} ms min over {} runs (images → plan tokens)",
        times[0],
        times.len()
    );
    Ok(())
}
