//! `bicameral train s1` (System 1 alone) and `bicameral train dual` (System 2 + System 1
//! jointly) on LeRobot datasets.

use std::path::PathBuf;

use anyhow::{Context, Result};
use bicameral_train::{StepInfo, TrainConfig, train};
use bicameral_viz::{Recording, SimLogger};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, Args)]
pub struct TrainS1Args {
    /// LeRobot dataset directory (v2.1 or v3.0). Repeat to mix datasets in every batch; each
    /// distinct robot_type becomes one embodiment of the head.
    #[arg(long, required = true)]
    dataset: Vec<PathBuf>,
    /// `train dual` only: grounding datasets (e.g. from `datagen --scenes`) whose labeled
    /// frames train System 2's subgoal loss, `[planner] grounding_batch` of them per batch.
    /// Repeatable.
    #[arg(long)]
    grounding: Vec<PathBuf>,
    /// Training configuration (TOML), e.g. models/s1_default.toml.
    #[arg(long)]
    config: PathBuf,
    /// Output directory: checkpoint/ and loss.csv.
    #[arg(long)]
    out: PathBuf,
    /// Continue from out/checkpoint (weights, EMA, optimizer moments, step).
    #[arg(long)]
    resume: bool,
    /// Also log the loss, learning rate and gradient norm per step to rerun (`train/*` on the
    /// `step` timeline).
    #[command(flatten)]
    rerun: crate::sink::SinkArgs,
}

pub fn run(args: &TrainS1Args, dual: bool) -> Result<()> {
    let cfg = TrainConfig::load(&args.config)?;
    match (dual, cfg.planner.is_some()) {
        (true, false) => anyhow::bail!(
            "{}: `train dual` needs a [planner] section (System 2); use `train s1` for System 1 alone",
            args.config.display()
        ),
        (false, true) => anyhow::bail!(
            "{}: has a [planner] section; use `train dual` to train System 2 with System 1",
            args.config.display()
        ),
        _ => {}
    }
    let recording = match args.rerun.sink() {
        Some(sink) => Some(Recording::open("bicameral_train", &sink)?),
        None => None,
    };
    let logger = recording.as_ref().map(|r| SimLogger::new(&r.rec));
    let names = [
        "loss".to_string(),
        "lr".into(),
        "grad_norm".into(),
        "subgoal_loss".into(),
        "grounding_loss".into(),
    ];
    let bar = ProgressBar::new(cfg.steps as u64).with_style(ProgressStyle::with_template(
        "{bar:30} {pos}/{len} steps [{elapsed_precise} < {eta}] {per_sec} loss {msg}",
    )?);
    let device = bicameral_policy::cpu_device();
    let mut log_error = None;
    // The whole run inside one compute pool (RAYON_NUM_THREADS threads, default one per core):
    // called from outside a pool, every parallel tensor op would be handed to the pool's threads
    // while this thread slept.
    let pool = crate::agents::ComputePool::sized_like_global("train")?;
    let report = pool
        .run(|| {
            train(
                &args.dataset,
                &args.grounding,
                &cfg,
                &args.out,
                args.resume,
                &device,
                &mut |s: &StepInfo| {
                    bar.set_position(s.step as u64 + 1);
                    bar.set_message(format!("{:.4}", s.loss));
                    if let Some(l) = &logger {
                        l.set_sequence("step", s.step as i64);
                        if let Err(e) = l.log_scalars(
                            "train",
                            &names[..if dual { 5 } else { 3 }],
                            &[
                                s.loss as f64,
                                s.lr,
                                s.grad_norm as f64,
                                s.subgoal_loss as f64,
                                s.grounding_loss as f64,
                            ][..if dual { 5 } else { 3 }],
                        ) {
                            log_error = Some(e);
                            return false;
                        }
                    }
                    true
                },
            )
        })
        .with_context(|| format!("training on {:?}", args.dataset))?;
    bar.finish_and_clear();
    if let Some(e) = log_error {
        return Err(e).context("logging the loss curve to rerun (the checkpoint was written)");
    }
    if let Some(r) = recording {
        r.finish()?;
    }
    let last = report.losses.last().map(|l| l.1);
    println!(
        "trained {} steps; last loss {}; checkpoint {}",
        report.steps_done,
        last.map_or("-".into(), |l| format!("{l:.5}")),
        report.checkpoint.display()
    );
    Ok(())
}
