//! The System 1 training loop.

use std::io::Write;
use std::path::{Path, PathBuf};

use bicameral_dataset::Dataset;
use bicameral_policy::burn::module::{Module, ModuleVisitor, Param};
use bicameral_policy::burn::optim::{AdamWConfig, GradientsParams};
use bicameral_policy::burn::tensor::{Device, Tensor, TensorData};
use bicameral_policy::rng::Rng;

use crate::checkpoint::{load_checkpoint, save_checkpoint};
use crate::config::TrainConfig;
use crate::error::TrainError;
use crate::policy::{Normalizer, S1Policy};
use crate::rng::beta;

/// What a run did.
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// Loss of every step of this run (`(step, loss)`).
    pub losses: Vec<(usize, f32)>,
    /// Steps done in total (including those before a resume).
    pub steps_done: usize,
    /// Where the final checkpoint is.
    pub checkpoint: PathBuf,
}

/// Sum of squared gradients over all parameters.
struct NormVisitor<'a> {
    grads: &'a GradientsParams,
    sum: f64,
}

impl ModuleVisitor for NormVisitor<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            self.sum += g.clone().mul(g).sum().into_scalar::<f32>() as f64;
        }
    }
}

/// Scales every gradient by `factor`.
struct ScaleVisitor<'a> {
    grads: &'a mut GradientsParams,
    factor: f32,
}

impl ModuleVisitor for ScaleVisitor<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads.register(param.id, g.mul_scalar(self.factor));
        }
    }
}

/// Clips the global L2 norm of `grads` to `max_norm` (PyTorch `clip_grad_norm_`); returns the
/// norm before clipping.
fn clip_global_norm(model: &S1Policy, grads: &mut GradientsParams, max_norm: f32) -> f32 {
    let mut v = NormVisitor { grads, sum: 0.0 };
    model.visit(&mut v);
    let norm = v.sum.sqrt() as f32;
    if norm > max_norm {
        let mut s = ScaleVisitor {
            grads,
            factor: max_norm / (norm + 1e-6),
        };
        model.visit(&mut s);
    }
    norm
}

/// A training batch in the head's normalized space.
struct Batch {
    state: Tensor<3>,
    actions: Tensor<3>,
    mask: Tensor<3>,
}

fn sample_batch(
    ds: &Dataset,
    frames: &[(usize, usize)],
    norm: &Normalizer,
    horizon: usize,
    b: usize,
    rng: &mut Rng,
    device: &Device,
) -> Result<Batch, TrainError> {
    let (ds_dim, da) = (norm.state_dim(), norm.action_dim());
    let mut state = Vec::with_capacity(b * ds_dim);
    let mut actions = Vec::with_capacity(b * horizon * da);
    let mut mask = Vec::with_capacity(b * horizon * da);
    for _ in 0..b {
        let (ep, t) = frames[(rng.next_u64() % frames.len() as u64) as usize];
        let s = ds.sample(ep, t, horizon, false)?;
        state.extend(norm.state(&s.state));
        for (a, m) in s.actions.iter().zip(&s.action_mask) {
            actions.extend(norm.action(a));
            mask.extend(std::iter::repeat_n(*m, da));
        }
    }
    Ok(Batch {
        state: Tensor::from_data(TensorData::new(state, [b, 1, ds_dim]), device),
        actions: Tensor::from_data(TensorData::new(actions, [b, horizon, da]), device),
        mask: Tensor::from_data(TensorData::new(mask, [b, horizon, da]), device),
    })
}

/// Trains System 1 on the LeRobot dataset at `dataset` with `config`, writing checkpoints to
/// `out/checkpoint` and the loss curve to `out/loss.csv` (`step,loss,lr,grad_norm`). With
/// `resume`, continues from `out/checkpoint` (weights, statistics, step; the AdamW moments
/// restart from zero). `on_step(step, loss)` is called after every step (progress display); when
/// it returns `false` the run stops there (after writing a checkpoint), as an interruption would.
pub fn train_s1(
    dataset: &Path,
    config: &TrainConfig,
    out: &Path,
    resume: bool,
    device: &Device,
    on_step: &mut dyn FnMut(usize, f32) -> bool,
) -> Result<TrainReport, TrainError> {
    let ds = Dataset::open(dataset)?;
    let info = ds.info();
    let frames: Vec<(usize, usize)> = (0..ds.num_episodes())
        .flat_map(|e| (0..ds.episode_len(e)).map(move |t| (e, t)))
        .collect();
    if frames.is_empty() {
        return Err(TrainError::Dataset {
            dir: dataset.to_path_buf(),
            message: "has no frames".into(),
        });
    }
    let ckpt_dir = out.join("checkpoint");
    let device = device.clone().autodiff();
    let (mut model, start) = if resume && ckpt_dir.join("state.json").is_file() {
        let (m, saved, step) = load_checkpoint(&ckpt_dir, &device)?;
        if saved.head != config.head {
            return Err(TrainError::config(
                ckpt_dir.join("train.toml"),
                "the checkpoint's [head] differs from the configuration given; resume with the same model size",
            ));
        }
        tracing::info!(step, "resuming");
        (m, step)
    } else {
        if ckpt_dir.exists() && !resume {
            return Err(TrainError::config(
                &ckpt_dir,
                "a checkpoint already exists here; pass --resume to continue it or choose another output directory",
            ));
        }
        let norm = Normalizer::from_info(info, dataset)?;
        let head_cfg = config.head_config(norm.state_dim(), norm.action_dim())?;
        (
            S1Policy::init(
                &head_cfg,
                config.head.plan_tokens,
                norm,
                &device,
                config.seed,
            )?,
            0,
        )
    };
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
    let csv_path = out.join("loss.csv");
    let mut csv = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&csv_path)
        .map_err(|e| TrainError::io(&csv_path, e))?;
    if start == 0 {
        csv.set_len(0).map_err(|e| TrainError::io(&csv_path, e))?;
        writeln!(csv, "step,loss,lr,grad_norm").map_err(|e| TrainError::io(&csv_path, e))?;
    }

    let o = &config.optim;
    let mut optim = AdamWConfig::new()
        .with_beta_1(o.beta1)
        .with_beta_2(o.beta2)
        .with_epsilon(o.eps)
        .with_weight_decay(o.weight_decay)
        .init();
    let hc = model.head.config.clone();
    let h = hc.action_horizon;
    // One stream per step, derived from the seed and the step, so a resumed run draws the same
    // batches as an uninterrupted one.
    let mut losses = Vec::new();
    let mut steps_done = start;
    for step in start..config.steps {
        let mut rng = Rng::new(config.seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let b = config.batch_size;
        let batch = sample_batch(&ds, &frames, &model.normalizer, h, b, &mut rng, &device)?;
        let t: Vec<f32> = (0..b)
            .map(|_| {
                let u = beta(&mut rng, hc.noise_beta_alpha, hc.noise_beta_beta);
                ((hc.noise_s - u) / hc.noise_s) as f32
            })
            .collect();
        let noise = rng.normal_vec(b * h * hc.action_dim);
        let out_loss = model.head.flow_matching_loss(
            model.plan(b),
            batch.state,
            &vec![0; b],
            batch.actions,
            Tensor::from_data(TensorData::new(noise, [b, h, hc.action_dim]), &device),
            Tensor::from_data(TensorData::new(t, [b]), &device),
            batch.mask,
        )?;
        let loss = out_loss.loss.clone().into_scalar::<f32>();
        if !loss.is_finite() {
            return Err(TrainError::Diverged { step, loss });
        }
        let mut grads = GradientsParams::from_grads(out_loss.loss.backward(), &model);
        let grad_norm = match o.grad_clip_norm {
            Some(c) => clip_global_norm(&model, &mut grads, c),
            None => f32::NAN,
        };
        let lr = config.lr_at(step);
        model = optim.step(lr, model, grads);
        writeln!(csv, "{step},{loss},{lr},{grad_norm}")
            .map_err(|e| TrainError::io(&csv_path, e))?;
        losses.push((step, loss));
        let go_on = on_step(step, loss);
        let done = step + 1;
        if done % config.checkpoint_every == 0 || done == config.steps || !go_on {
            csv.flush().map_err(|e| TrainError::io(&csv_path, e))?;
            save_checkpoint(&model, config, done, &ckpt_dir)?;
        }
        steps_done = done;
        if !go_on {
            break;
        }
    }
    Ok(TrainReport {
        losses,
        steps_done,
        checkpoint: ckpt_dir,
    })
}
