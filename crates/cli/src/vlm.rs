//! `bicameral policy run-vlm`: run a System 2 tower (SigLIP vision tower or Qwen3 language
//! model, chosen by `config.json`'s `model_type`) on tensors from a safetensors file and write
//! its outputs under transformers' names. Used to check ports against upstream.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use bicameral_policy::burn::tensor::{Int, Tensor, TensorData};
use bicameral_policy::{
    HostTensor, LoadOptions, Qwen3, SiglipVision, cpu_device, read_safetensors, write_safetensors,
};
use clap::Args;

#[derive(Debug, Args)]
pub struct RunVlmArgs {
    /// Checkpoint directory: config.json (model_type siglip_vision_model or qwen3) and
    /// model.safetensors or model.safetensors.index.json + shards, transformers tensor names.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Inputs: pixel_values [B,C,H,W] f32 (vision), or input_ids [B,T] int and optionally
    /// attention_mask [B,T] int (language model; all ones when absent).
    #[arg(long)]
    inputs: PathBuf,
    /// Output safetensors. Vision: last_hidden_state, hidden_states [L+1,B,N,D],
    /// patch_embeds, pooler_output (with a pooling head). LM: hidden_states [L+1,B,T,D],
    /// last_hidden_state, last_layer_output_prenorm, logits (without --select-layer).
    #[arg(long)]
    out: PathBuf,
    /// Language model only: keep the first N layers (GR00T's select_layer); the rest are not
    /// loaded.
    #[arg(long)]
    select_layer: Option<usize>,
    /// Prefix of the tower's tensor names in the checkpoint (e.g.
    /// `backbone.eagle_model.language_model.` in a full GR00T checkpoint).
    #[arg(long, default_value = "")]
    prefix: String,
}

fn host<const D: usize>(t: Tensor<D>) -> Result<HostTensor> {
    Ok(HostTensor::from_tensor(t)?)
}

fn model_type(dir: &Path) -> Result<String> {
    let path = dir.join("config.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    v.get("model_type")
        .and_then(|m| m.as_str())
        .map(str::to_owned)
        .with_context(|| format!("{}: no string field \"model_type\"", path.display()))
}

fn input<'a>(inputs: &'a BTreeMap<String, HostTensor>, name: &str) -> Result<&'a HostTensor> {
    inputs
        .get(name)
        .with_context(|| format!("inputs have no tensor `{name}`"))
}

pub fn run_vlm(args: &RunVlmArgs) -> Result<()> {
    let device = cpu_device();
    let options = LoadOptions {
        prefix: args.prefix.clone(),
        ..LoadOptions::default()
    };
    let kind = model_type(&args.checkpoint)?;
    let inputs = read_safetensors(&args.inputs)?;
    let mut out = BTreeMap::new();
    let t0 = Instant::now();
    let (loaded, run_ms) = match kind.as_str() {
        "siglip_vision_model" | "siglip" => {
            if args.select_layer.is_some() {
                bail!("--select-layer applies to language models only");
            }
            let (tower, report) = SiglipVision::load(&args.checkpoint, &device, &options)
                .with_context(|| format!("loading {}", args.checkpoint.display()))?;
            let px = input(&inputs, "pixel_values")?;
            let values = px.as_f32().context("`pixel_values` must be float32")?;
            let Ok(shape) = <[usize; 4]>::try_from(px.shape.as_slice()) else {
                bail!(
                    "`pixel_values` has shape {:?}, expected [B, C, H, W]",
                    px.shape
                );
            };
            let t1 = Instant::now();
            let pixels = Tensor::<4>::from_data(TensorData::new(values.to_vec(), shape), &device);
            let o = tower.forward(pixels)?;
            let pooled = tower.pool(o.last_hidden_state.clone());
            out.insert("patch_embeds".into(), host(o.patch_embeds)?);
            out.insert(
                "hidden_states".into(),
                host(Tensor::stack::<4>(o.hidden_states, 0))?,
            );
            out.insert("last_hidden_state".into(), host(o.last_hidden_state)?);
            if let Some(p) = pooled {
                out.insert("pooler_output".into(), host(p)?);
            }
            (report.loaded, t1.elapsed().as_secs_f64() * 1e3)
        }
        "qwen3" => {
            let (lm, report) = Qwen3::load(&args.checkpoint, args.select_layer, &device, &options)
                .with_context(|| format!("loading {}", args.checkpoint.display()))?;
            let ids = input(&inputs, "input_ids")?;
            let id_values = ids
                .as_i64()
                .context("`input_ids` must be an integer tensor")?;
            let Ok([b, t]) = <[usize; 2]>::try_from(ids.shape.as_slice()) else {
                bail!("`input_ids` has shape {:?}, expected [B, T]", ids.shape);
            };
            let vocab = lm.config.vocab_size as i64;
            if let Some(bad) = id_values.iter().find(|&&i| i < 0 || i >= vocab) {
                bail!("`input_ids` holds {bad}, outside the vocabulary 0..{vocab}");
            }
            let mask: Vec<Vec<bool>> = match inputs.get("attention_mask") {
                Some(m) => {
                    if m.shape != ids.shape {
                        bail!(
                            "`attention_mask` has shape {:?}, `input_ids` {:?}",
                            m.shape,
                            ids.shape
                        );
                    }
                    m.as_i64()
                        .context("`attention_mask` must be an integer tensor")?
                        .chunks(t)
                        .map(|r| r.iter().map(|&v| v != 0).collect())
                        .collect()
                }
                None => vec![vec![true; t]; b],
            };
            let t1 = Instant::now();
            let ids =
                Tensor::<2, Int>::from_data(TensorData::new(id_values.to_vec(), [b, t]), &device);
            let o = lm.forward(ids, &mask)?;
            let last = o.hidden_states.last().cloned().context("no layers")?;
            out.insert(
                "hidden_states".into(),
                host(Tensor::stack::<4>(o.hidden_states, 0))?,
            );
            out.insert("last_hidden_state".into(), host(last)?);
            out.insert("last_layer_output_prenorm".into(), host(o.last_prenorm)?);
            if let Some(l) = o.logits {
                out.insert("logits".into(), host(l)?);
            }
            (report.loaded, t1.elapsed().as_secs_f64() * 1e3)
        }
        other => bail!(
            "{}: model_type \"{other}\" is not a System 2 tower (siglip_vision_model or qwen3)",
            args.checkpoint.join("config.json").display()
        ),
    };
    write_safetensors(&args.out, &out)?;
    let shapes: Vec<String> = out
        .iter()
        .map(|(k, v)| format!("{k} {:?}", v.shape))
        .collect();
    println!(
        "{}: {kind}, {loaded} tensors loaded, ran in {run_ms:.1} ms ({:.0} ms total); {}",
        args.out.display(),
        t0.elapsed().as_secs_f64() * 1e3,
        shapes.join(", ")
    );
    Ok(())
}
