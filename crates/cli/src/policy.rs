//! `bicameral policy run-head`: run the System 1 action head (GR00T N1.5 flow matching) on
//! tensors from a safetensors file, write the sampled actions and per-step velocities.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use bicameral_policy::burn::tensor::{Tensor, TensorData};
use bicameral_policy::{
    ActionHead, HostTensor, InitialNoise, LoadOptions, cpu_device, read_safetensors,
    write_safetensors,
};
use clap::Args;

#[derive(Debug, Args)]
pub struct RunHeadArgs {
    /// Checkpoint directory: config.json (head config, or a full GR00T config with
    /// action_head_cfg) and model.safetensors or model.safetensors.index.json + shards.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Inputs: backbone_features [B,S,Db] f32, state [B,1,max_state_dim] f32, embodiment_id [B]
    /// int, and optionally init_noise [B,H,action_dim] f32.
    #[arg(long)]
    inputs: PathBuf,
    /// Output safetensors file: action_pred [B,H,action_dim] and v_0..v_{K-1}.
    #[arg(long)]
    out: PathBuf,
    /// Euler steps K (default: num_inference_timesteps of the config).
    #[arg(long)]
    steps: Option<usize>,
    /// Seed of the initial noise when the inputs have no init_noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Accept missing or unexpected action-head tensors in the checkpoint.
    #[arg(long)]
    lenient: bool,
}

fn float3(inputs: &BTreeMap<String, HostTensor>, name: &str) -> Result<Tensor<3>> {
    let t = inputs
        .get(name)
        .with_context(|| format!("inputs have no tensor `{name}`"))?;
    let Some(values) = t.as_f32() else {
        bail!("input `{name}` must be a float tensor");
    };
    let Ok(shape) = <[usize; 3]>::try_from(t.shape.as_slice()) else {
        bail!(
            "input `{name}` has shape {:?}, expected 3 dimensions",
            t.shape
        );
    };
    Ok(Tensor::from_data(
        TensorData::new(values.to_vec(), shape),
        &cpu_device(),
    ))
}

pub fn run_head(args: &RunHeadArgs) -> Result<()> {
    if args.steps == Some(0) {
        bail!("--steps must be at least 1");
    }
    let device = cpu_device();
    let options = LoadOptions {
        allow_missing: args.lenient,
        allow_unexpected: args.lenient,
        ..LoadOptions::default()
    };
    let t0 = Instant::now();
    let (head, report) = ActionHead::load(&args.checkpoint, &device, &options)
        .with_context(|| format!("loading {}", args.checkpoint.display()))?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let inputs = read_safetensors(&args.inputs)?;
    let backbone = float3(&inputs, "backbone_features")?;
    let state = float3(&inputs, "state")?;
    let ids = inputs
        .get("embodiment_id")
        .context("inputs have no tensor `embodiment_id`")?
        .as_i64()
        .context("input `embodiment_id` must be an integer tensor")?
        .to_vec();
    let noise = if inputs.contains_key("init_noise") {
        InitialNoise::Tensor(float3(&inputs, "init_noise")?)
    } else {
        InitialNoise::Seed(args.seed)
    };
    let t1 = Instant::now();
    let sample = head.get_action(backbone, state, &ids, noise, args.steps)?;
    let mut out = BTreeMap::new();
    let mut put = |name: String, t: Tensor<3>| -> Result<()> {
        out.insert(name, HostTensor::from_tensor(t)?);
        Ok(())
    };
    let steps = sample.velocities.len();
    for (k, v) in sample.velocities.into_iter().enumerate() {
        put(format!("v_{k}"), v)?;
    }
    put("action_pred".to_owned(), sample.actions)?;
    let run_ms = t1.elapsed().as_secs_f64() * 1e3;
    write_safetensors(&args.out, &out)?;
    println!(
        "{}: action_pred {:?}, {steps} steps (t = {:?}); loaded {} tensors in {load_ms:.0} ms, \
         ran in {run_ms:.1} ms",
        args.out.display(),
        out["action_pred"].shape,
        sample.timesteps,
        report.loaded
    );
    Ok(())
}
