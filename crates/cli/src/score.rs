//! `bicameral policy score`: a checkpoint's flow-matching and subgoal loss on demonstration
//! datasets, offline (data it trained on against data it never saw).

use std::path::PathBuf;

use anyhow::{Context, Result};
use bicameral_train::{load_checkpoint, score};
use clap::Args;
use serde_json::json;

#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Checkpoint directory written by `bicameral train`.
    #[arg(long)]
    checkpoint: PathBuf,
    /// LeRobot dataset(s) to score on (their robot_type must be one of the checkpoint's
    /// embodiments).
    #[arg(long, required = true)]
    dataset: Vec<PathBuf>,
    /// Score only the last N episodes of each dataset (e.g. those a run with
    /// `validation_episodes = N` held out); default: all.
    #[arg(long)]
    last_episodes: Option<usize>,
}

pub fn run(args: &ScoreArgs) -> Result<()> {
    let device = bicameral_policy::cpu_device();
    let (policy, config, step) = load_checkpoint(&args.checkpoint, &device)
        .with_context(|| format!("loading {}", args.checkpoint.display()))?;
    let s = score(&policy, &config, &args.dataset, args.last_episodes, &device)
        .with_context(|| format!("scoring on {:?}", args.dataset))?;
    let out = json!({
        "checkpoint": args.checkpoint,
        "step": step,
        "datasets": args.dataset,
        "last_episodes": args.last_episodes,
        "frames": s.frames,
        "sampled_frames": s.sampled_frames,
        "flow_loss": s.flow_loss,
        "subgoal_loss_m2": s.subgoal_loss,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
