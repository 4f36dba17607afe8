//! `bicameral train s1`: train System 1 on a LeRobot dataset.

use std::path::PathBuf;

use anyhow::{Context, Result};
use bicameral_train::{TrainConfig, train_s1};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, Args)]
pub struct TrainS1Args {
    /// LeRobot dataset directory (v2.1 or v3.0).
    #[arg(long)]
    dataset: PathBuf,
    /// Training configuration (TOML), e.g. models/s1_default.toml.
    #[arg(long)]
    config: PathBuf,
    /// Output directory: checkpoint/ and loss.csv.
    #[arg(long)]
    out: PathBuf,
    /// Continue from out/checkpoint.
    #[arg(long)]
    resume: bool,
}

pub fn run_s1(args: &TrainS1Args) -> Result<()> {
    let cfg = TrainConfig::load(&args.config)?;
    let bar = ProgressBar::new(cfg.steps as u64).with_style(ProgressStyle::with_template(
        "{bar:30} {pos}/{len} steps [{elapsed_precise} < {eta}] {per_sec} loss {msg}",
    )?);
    let device = bicameral_policy::cpu_device();
    let report = train_s1(
        &args.dataset,
        &cfg,
        &args.out,
        args.resume,
        &device,
        &mut |step, loss| {
            bar.set_position(step as u64 + 1);
            bar.set_message(format!("{loss:.4}"));
            true
        },
    )
    .with_context(|| format!("training on {}", args.dataset.display()))?;
    bar.finish_and_clear();
    let last = report.losses.last().map(|l| l.1);
    println!(
        "trained {} steps; last loss {}; checkpoint {}",
        report.steps_done,
        last.map_or("-".into(), |l| format!("{l:.5}")),
        report.checkpoint.display()
    );
    Ok(())
}
