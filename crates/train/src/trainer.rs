//! The System 1 training loop.

use std::io::Write;
use std::path::{Path, PathBuf};

use bicameral_dataset::Dataset;
use bicameral_policy::burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use bicameral_policy::burn::optim::{AdamWConfig, GradientsParams};
use bicameral_policy::burn::tensor::{Device, Tensor, TensorData};
use bicameral_policy::rng::Rng;
use bicameral_policy::{Planner, PromptEncoder, word_level_tokenizer_json};

use crate::checkpoint::{TrainState, load_training_state, save_checkpoint};
use crate::config::{PlannerPart, PlannerSize, SUBGOAL_DIM, TrainConfig};
use crate::error::TrainError;
use crate::policy::{EmbodimentNorm, Normalizer, Policy, View};
use crate::rng::{beta, step_rng};

/// What a run did.
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// Loss of every step of this run (`(step, loss)`, loss = masked mean squared velocity error
    /// in the normalized action space).
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
fn clip_global_norm(model: &Policy, grads: &mut GradientsParams, max_norm: f32) -> f32 {
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

/// Everything known about one optimizer step (for progress displays and loss curves).
#[derive(Debug, Clone, Copy)]
pub struct StepInfo {
    /// 0-based step.
    pub step: usize,
    /// Flow-matching loss of the step's batch.
    pub loss: f32,
    /// Learning rate used.
    pub lr: f64,
    /// Global gradient L2 norm before clipping (NaN when clipping is off).
    pub grad_norm: f32,
    /// Auxiliary subgoal loss (mean squared error, m²; NaN without a subgoal head or labels)
    /// over every labeled row: demonstration frames and grounding frames.
    pub subgoal_loss: f32,
    /// The subgoal loss over the grounding frames alone (m²; NaN without grounding data). On
    /// demonstration frames the arm's own motion gives the target away; the grounding frames
    /// show whether System 2 finds the named object from the image and the words.
    pub grounding_loss: f32,
}

/// Header of `loss.csv`.
pub const LOSS_CSV_HEADER: &str = "step,loss,lr,grad_norm,subgoal_loss,grounding_loss";

/// Header of `val.csv` (written at checkpoints when `validation_episodes` > 0): the step, and
/// the held-out frames' mean flow-matching and subgoal loss (NaN without a subgoal head).
pub const VAL_CSV_HEADER: &str = "step,val_loss,val_subgoal_loss";

/// Makes `path` a curve (`header`, then rows starting with a step) of a run that continues at
/// step `start`: a fresh file with the header when `start` is 0 (or when there is no file
/// yet); otherwise one row per step before `start`, under the current header (rows from an
/// older layout padded with NaN). Rows a killed run wrote after its last checkpoint were
/// trained again on resuming: where the steps go back, the later rows replace the earlier
/// ones, as they do for the steps from `start` on now. Replaced atomically (written beside it
/// and renamed).
fn prepare_csv(path: &Path, header: &str, start: usize) -> Result<(), TrainError> {
    let columns = header.split(',').count();
    let mut rows: Vec<(usize, &str)> = Vec::new();
    let old = if start > 0 {
        match std::fs::read_to_string(path) {
            Ok(old) => old,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(TrainError::io(path, e)),
        }
    } else {
        String::new()
    };
    for (i, line) in old.lines().enumerate().skip(1) {
        let step = line.split(',').next().and_then(|v| v.parse::<usize>().ok());
        let Some(step) = step else {
            return Err(TrainError::config(
                path,
                format!("line {}: {line:?} does not start with a step number", i + 1),
            ));
        };
        while rows.last().is_some_and(|r| r.0 >= step) {
            rows.pop();
        }
        rows.push((step, line));
    }
    let mut text = String::from(header);
    text.push('\n');
    for (_, line) in rows.iter().take_while(|r| r.0 < start) {
        text.push_str(line);
        for _ in line.split(',').count()..columns {
            text.push_str(",NaN");
        }
        text.push('\n');
    }
    let tmp = path.with_extension("csv.partial");
    std::fs::write(&tmp, text).map_err(|e| TrainError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| TrainError::io(path, e))
}

/// Collects the inner (non-autodiff) values of every float parameter, in visit order.
struct ValueCollector(Vec<Tensor<1>>);

impl ModuleVisitor for ValueCollector {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val().inner();
        let n = t.shape().num_elements();
        self.0.push(t.reshape([n]));
    }
}

/// `ema ← d · ema + (1 - d) · value`, parameter by parameter in visit order.
struct EmaUpdate {
    values: std::vec::IntoIter<Tensor<1>>,
    decay: f32,
}

impl ModuleMapper for EmaUpdate {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(v) = self.values.next() else {
            return param;
        };
        let d = self.decay;
        param.map(|e| {
            let shape = e.shape();
            e.mul_scalar(d).add(v.reshape(shape).mul_scalar(1.0 - d))
        })
    }
}

fn ema_update(ema: Policy, model: &Policy, decay: f32) -> Policy {
    let mut c = ValueCollector(Vec::new());
    model.visit(&mut c);
    ema.map(&mut EmaUpdate {
        values: c.0.into_iter(),
        decay,
    })
}

/// One dataset in the mix and the embodiment it trains.
struct Source {
    ds: Dataset,
    embodiment: usize,
    /// Per episode: its subgoal label, when its metadata has one.
    subgoals: Vec<Option<Vec<f32>>>,
}

/// A training batch in the head's normalized space.
struct Batch {
    state: Tensor<3>,
    actions: Tensor<3>,
    mask: Tensor<3>,
    embodiment: Vec<i64>,
    /// Planner input, when System 2 trains too.
    observation: Option<Observation>,
}

/// What System 2 sees in a batch.
struct Observation {
    /// `[R·V, 3, S, S]` with `R = B` demonstration rows plus any grounding rows.
    pixels: Tensor<4>,
    prompts: Vec<bicameral_policy::Prompt>,
    /// Subgoal labels `[R, SUBGOAL_DIM]` and their mask `[R, SUBGOAL_DIM]` (0 = no label).
    subgoal: Tensor<2>,
    subgoal_mask: Tensor<2>,
}

/// `(source, episode, frame)` of every frame of `episodes` of dataset `ds` (source `i`).
fn episode_frames(
    i: usize,
    ds: &Dataset,
    episodes: std::ops::Range<usize>,
) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
    episodes.flat_map(move |e| (0..ds.episode_len(e)).map(move |t| (i, e, t)))
}

/// The subgoal label of an episode: its metadata's `subgoal` array, when it has one.
fn subgoal_label(ds: &Dataset, episode: usize) -> Option<Vec<f32>> {
    let v = ds.episode_meta(episode).ok()?.get("subgoal")?.as_array()?;
    let out: Vec<f32> = v
        .iter()
        .filter_map(|x| x.as_f64())
        .map(|x| x as f32)
        .collect();
    (out.len() == SUBGOAL_DIM && v.len() == SUBGOAL_DIM).then_some(out)
}

/// Grounding data: datasets whose labeled frames train System 2's subgoal loss only.
struct Grounding {
    /// Each dataset with its episodes' subgoal labels.
    sets: Vec<(Dataset, Vec<Option<Vec<f32>>>)>,
    /// `(source, episode, frame)` of every frame of a labeled episode.
    frames: Vec<(usize, usize, usize)>,
    /// Frames per batch.
    batch: usize,
}

/// Opens the grounding datasets: every one must have subgoal labels and the planner's cameras.
fn open_grounding(
    dirs: &[PathBuf],
    batch: usize,
    cameras: &[String],
) -> Result<Option<Grounding>, TrainError> {
    if dirs.is_empty() {
        return Ok(None);
    }
    if batch == 0 {
        return Err(TrainError::config(
            PathBuf::from("planner.grounding_batch"),
            "grounding datasets were given but planner.grounding_batch is 0",
        ));
    }
    let mut sets = Vec::new();
    let mut frames = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        let ds = Dataset::open(dir)?;
        let keys = ds.info().camera_keys();
        if let Some(missing) = cameras.iter().find(|c| !keys.contains(&c.as_str())) {
            return Err(TrainError::Dataset {
                dir: dir.clone(),
                message: format!(
                    "grounding data has no camera feature \"{missing}\" (planner.cameras); it has {keys:?}"
                ),
            });
        }
        let subgoals: Vec<Option<Vec<f32>>> = (0..ds.num_episodes())
            .map(|e| subgoal_label(&ds, e))
            .collect();
        for (e, l) in subgoals.iter().enumerate() {
            if l.is_some() {
                frames.extend(episode_frames(i, &ds, e..e + 1));
            }
        }
        sets.push((ds, subgoals));
    }
    if frames.is_empty() {
        return Err(TrainError::Dataset {
            dir: dirs[0].clone(),
            message: "the grounding datasets have no episode with a subgoal label".into(),
        });
    }
    Ok(Some(Grounding {
        sets,
        frames,
        batch,
    }))
}

/// The images of `cameras` in `s`, in that order.
fn views_of(
    s: &mut bicameral_dataset::Sample,
    cameras: &[String],
    dir: &Path,
) -> Result<Vec<bicameral_dataset::Image>, TrainError> {
    let mut views = Vec::with_capacity(cameras.len());
    for key in cameras {
        let i = s
            .images
            .iter()
            .position(|(k, _)| k == key)
            .ok_or_else(|| TrainError::Dataset {
                dir: dir.to_path_buf(),
                message: format!(
                    "camera \"{key}\" (planner.cameras) missing at episode {}, frame {}",
                    s.episode, s.t
                ),
            })?;
        views.push(s.images.swap_remove(i).1);
    }
    Ok(views)
}

/// A batch of `b` demonstration frames (their subgoal labels kept when `demo_subgoals`); with
/// `grounding`, its frames follow them in the planner's part of the batch (observation rows
/// `b..`), labeled for the subgoal loss only.
#[allow(clippy::too_many_arguments)]
fn sample_batch(
    sources: &[Source],
    frames: &[(usize, usize, usize)],
    demo_subgoals: bool,
    grounding: Option<&Grounding>,
    model: &Policy,
    cameras: &[String],
    horizon: usize,
    b: usize,
    rng: &mut Rng,
    device: &Device,
) -> Result<Batch, TrainError> {
    let norm = &model.normalizer;
    let with_images = model.planner.is_some();
    let mut images: Vec<Vec<bicameral_dataset::Image>> = Vec::new();
    let mut tasks = Vec::new();
    let mut labels = Vec::new();
    let mut label_mask = Vec::new();
    let (ws, wa) = (norm.max_state_dim(), norm.max_action_dim());
    let mut state = Vec::with_capacity(b * ws);
    let mut actions = Vec::with_capacity(b * horizon * wa);
    let mut mask = Vec::with_capacity(b * horizon * wa);
    let mut embodiment = Vec::with_capacity(b);
    for _ in 0..b {
        let (src, ep, t) = frames[(rng.next_u64() % frames.len() as u64) as usize];
        let src = &sources[src];
        let en = &norm.embodiments[src.embodiment];
        let mut s = src.ds.sample(ep, t, horizon, with_images)?;
        if with_images {
            images.push(views_of(&mut s, cameras, src.ds.dir())?);
            tasks.push(std::mem::take(&mut s.task));
            match src.subgoals[ep].as_ref().filter(|_| demo_subgoals) {
                Some(l) => {
                    labels.extend(l);
                    label_mask.extend([1.0f32; SUBGOAL_DIM]);
                }
                None => {
                    labels.extend([0.0f32; SUBGOAL_DIM]);
                    label_mask.extend([0.0f32; SUBGOAL_DIM]);
                }
            }
        }
        state.extend(en.state(&s.state, ws));
        for (a, m) in s.actions.iter().zip(&s.action_mask) {
            actions.extend(en.action(a, wa));
            // Real action dimensions of real steps count; padding (past the episode end or past
            // this embodiment's width) does not.
            mask.extend((0..wa).map(|i| if i < en.action_dim() { *m } else { 0.0 }));
        }
        embodiment.push(src.embodiment as i64);
    }
    let mut rows = b;
    if let (true, Some(g)) = (with_images, grounding) {
        for _ in 0..g.batch {
            let (si, ep, t) = g.frames[(rng.next_u64() % g.frames.len() as u64) as usize];
            let (ds, subgoals) = &g.sets[si];
            let mut s = ds.sample(ep, t, 1, true)?;
            images.push(views_of(&mut s, cameras, ds.dir())?);
            tasks.push(std::mem::take(&mut s.task));
            // Every grounding frame is labeled (unlabeled episodes are not sampled).
            labels.extend(subgoals[ep].as_deref().unwrap_or(&[0.0; SUBGOAL_DIM]));
            label_mask.extend([1.0f32; SUBGOAL_DIM]);
        }
        rows += g.batch;
    }
    let observation = if with_images {
        let views: Vec<Vec<View<'_>>> = images
            .iter()
            .map(|obs| {
                obs.iter()
                    .map(|im| View {
                        rgb: &im.rgb,
                        width: im.width as usize,
                        height: im.height as usize,
                    })
                    .collect()
            })
            .collect();
        let task_refs: Vec<&str> = tasks.iter().map(String::as_str).collect();
        let (pixels, prompts) = model.planner_input(&views, &task_refs)?;
        Some(Observation {
            pixels,
            prompts,
            subgoal: Tensor::from_data(TensorData::new(labels, [rows, SUBGOAL_DIM]), device),
            subgoal_mask: Tensor::from_data(
                TensorData::new(label_mask, [rows, SUBGOAL_DIM]),
                device,
            ),
        })
    } else {
        None
    };
    Ok(Batch {
        state: Tensor::from_data(TensorData::new(state, [b, 1, ws]), device),
        actions: Tensor::from_data(TensorData::new(actions, [b, horizon, wa]), device),
        mask: Tensor::from_data(TensorData::new(mask, [b, horizon, wa]), device),
        embodiment,
        observation,
    })
}

/// A word-level tokenizer over every task string of the datasets, and a fresh planner.
fn new_planner(
    p: &PlannerSize,
    sources: &[Source],
    datasets: &[PathBuf],
    grounding: Option<&Grounding>,
    device: &Device,
    seed: u64,
) -> Result<(Planner, PromptEncoder), TrainError> {
    for (src, dir) in sources.iter().zip(datasets) {
        let keys = src.ds.info().camera_keys();
        if let Some(missing) = p.cameras.iter().find(|c| !keys.contains(&c.as_str())) {
            return Err(TrainError::Dataset {
                dir: dir.clone(),
                message: format!(
                    "no camera feature \"{missing}\" (planner.cameras); the dataset has {keys:?}"
                ),
            });
        }
    }
    // Every word an instruction can use, the grounding scenes' included (a word only they use
    // would otherwise be unknown to the tokenizer).
    let scenes = grounding
        .into_iter()
        .flat_map(|g| g.sets.iter().map(|(ds, _)| ds));
    let json = word_level_tokenizer_json(
        sources
            .iter()
            .map(|s| &s.ds)
            .chain(scenes)
            .flat_map(|ds| ds.info().tasks.iter().map(String::as_str)),
    );
    let origin = Path::new("tokenizer.json");
    let tokenizer = bicameral_policy::text::tokenizer_from_json(&json, origin)?;
    let vocab = tokenizer.get_vocab_size(true);
    if vocab > p.vocab_size {
        return Err(TrainError::config(
            PathBuf::from("planner.vocab_size"),
            format!(
                "the datasets' instructions have {vocab} distinct words and tokens, more than planner.vocab_size = {}",
                p.vocab_size
            ),
        ));
    }
    let cfg = p
        .planner_config()
        .map_err(|m| TrainError::config(PathBuf::from("[planner]"), m))?;
    let prompt = PromptEncoder::new(tokenizer, cfg.prompt.clone(), origin)?;
    let planner = Planner::init(&cfg, device, seed ^ 0x5e2)?;
    tracing::info!(vocab, plan_tokens = cfg.plan_tokens(), "new planner");
    Ok((planner, prompt))
}

/// Stops gradients of the frozen planner parts.
fn freeze(mut model: Policy, parts: &[PlannerPart]) -> Policy {
    if let Some(mut p) = model.planner.take() {
        for part in parts {
            match part {
                PlannerPart::Vision => p.vision = p.vision.no_grad(),
                PlannerPart::Connector => p.connector = p.connector.no_grad(),
                PlannerPart::Language => p.language = p.language.no_grad(),
            }
        }
        model.planner = Some(p);
    }
    model
}

/// Opens the datasets; datasets with the same `robot_type` share one embodiment (statistics
/// merged), each new `robot_type` becomes the next embodiment id.
fn open_sources(datasets: &[PathBuf]) -> Result<(Vec<Source>, Normalizer), TrainError> {
    if datasets.is_empty() {
        return Err(TrainError::config(
            PathBuf::from("--dataset"),
            "no dataset given",
        ));
    }
    let mut norm = Normalizer {
        embodiments: Vec::new(),
    };
    let mut sources = Vec::new();
    for dir in datasets {
        let ds = Dataset::open(dir)?;
        let en = EmbodimentNorm::from_info(ds.info(), dir)?;
        let embodiment = norm.add(en).map_err(|message| TrainError::Dataset {
            dir: dir.clone(),
            message,
        })?;
        let subgoals = (0..ds.num_episodes())
            .map(|e| subgoal_label(&ds, e))
            .collect();
        sources.push(Source {
            ds,
            embodiment,
            subgoals,
        });
    }
    Ok((sources, norm))
}

/// The losses of one batch (autodiff graphs where they train).
struct BatchLosses {
    /// Flow-matching loss over the `b` demonstration rows.
    flow: Tensor<1>,
    /// Subgoal loss over every labeled row (demonstration and grounding), when the planner has
    /// a subgoal head that trains.
    subgoal: Option<Tensor<1>>,
    /// Subgoal loss over the grounding rows alone (NaN without them), detached.
    grounding: f32,
}

/// Runs `model` on `batch` (`b` demonstration rows, then any grounding rows) with flow times
/// and noise drawn from `rng` (in that order).
fn batch_losses(
    model: &Policy,
    batch: Batch,
    b: usize,
    rng: &mut Rng,
    device: &Device,
    subgoal_weight: f32,
) -> Result<BatchLosses, TrainError> {
    let hc = &model.head.config;
    let h = hc.action_horizon;
    let t: Vec<f32> = (0..b)
        .map(|_| {
            let u = beta(rng, hc.noise_beta_alpha, hc.noise_beta_beta);
            ((hc.noise_s - u) / hc.noise_s) as f32
        })
        .collect();
    let noise = rng.normal_vec(b * h * hc.action_dim);
    let mut grounding = f32::NAN;
    let (plan, subgoal) = match (&model.planner, batch.observation) {
        (Some(planner), Some(obs)) => {
            let out = planner.forward(obs.pixels, &obs.prompts)?;
            let sg = match out.subgoal {
                Some(pred) if subgoal_weight > 0.0 => {
                    let m = obs.subgoal_mask;
                    let d = (pred - obs.subgoal) * m.clone();
                    let rows = d.dims()[0];
                    if rows > b {
                        // The grounding rows alone (first frames of held-apart scenes, where
                        // nothing but the image and the words tell where things are),
                        // detached: for the loss curve only.
                        let dg = d.clone().detach().slice_dim(0, b..rows);
                        let ng = m
                            .clone()
                            .detach()
                            .slice_dim(0, b..rows)
                            .sum()
                            .clamp_min(1.0);
                        grounding = (dg.square().sum() / ng).into_scalar::<f32>();
                    }
                    let n = m.sum().clamp_min(1.0);
                    Some(d.square().sum() / n)
                }
                _ => None,
            };
            // Grounding rows (after the first b) train only the subgoal loss.
            let tokens = if out.tokens.dims()[0] > b {
                out.tokens.slice_dim(0, 0..b)
            } else {
                out.tokens
            };
            (tokens, sg)
        }
        _ => (model.plan(b), None),
    };
    let out = model.head.flow_matching_loss(
        plan,
        batch.state,
        &batch.embodiment,
        batch.actions,
        Tensor::from_data(TensorData::new(noise, [b, h, hc.action_dim]), device),
        Tensor::from_data(TensorData::new(t, [b]), device),
        batch.mask,
    )?;
    Ok(BatchLosses {
        flow: out.loss,
        subgoal,
        grounding,
    })
}

/// The planner's cameras and subgoal-loss weight in `config` (none and 0 without a planner).
fn planner_inputs(config: &TrainConfig) -> (Vec<String>, f32) {
    config
        .planner
        .as_ref()
        .map_or((Vec::new(), 0.0), |p| (p.cameras.clone(), p.subgoal_weight))
}

/// Validation batches per evaluation (each `batch_size` frames).
const VALIDATION_BATCHES: u64 = 4;

/// Mean flow-matching and subgoal loss of `model` on the held-out frames: the same
/// [`VALIDATION_BATCHES`] batches (frames, flow times and noise drawn from fixed streams) at
/// every evaluation, so the curve compares like with like. Cameras and subgoal weight come
/// from `config`'s planner.
fn validation_losses(
    model: &Policy,
    sources: &[Source],
    frames: &[(usize, usize, usize)],
    config: &TrainConfig,
    device: &Device,
) -> Result<(f32, f32), TrainError> {
    let (cameras, subgoal_weight) = planner_inputs(config);
    let b = config.batch_size;
    let h = model.head.config.action_horizon;
    let (mut flow, mut sg, mut n_sg) = (0.0f64, 0.0f64, 0usize);
    for k in 0..VALIDATION_BATCHES {
        let mut rng = step_rng(config.seed ^ 0x7a11_da7e, k);
        // Held-out demonstrations always score the subgoal (a measurement, whatever trains).
        let batch = sample_batch(
            sources, frames, true, None, model, &cameras, h, b, &mut rng, device,
        )?;
        let l = batch_losses(model, batch, b, &mut rng, device, subgoal_weight)?;
        flow += f64::from(l.flow.into_scalar::<f32>());
        if let Some(s) = l.subgoal {
            sg += f64::from(s.into_scalar::<f32>());
            n_sg += 1;
        }
    }
    let mean_sg = if n_sg > 0 {
        (sg / n_sg as f64) as f32
    } else {
        f32::NAN
    };
    Ok(((flow / VALIDATION_BATCHES as f64) as f32, mean_sg))
}

/// Offline losses of a trained policy on demonstration datasets ([`score`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// Mean flow-matching loss (normalized action space, as in `loss.csv`).
    pub flow_loss: f32,
    /// Mean subgoal loss over labeled frames (m²); NaN without a subgoal head or labels.
    pub subgoal_loss: f32,
    /// Frames the batches were drawn from.
    pub frames: usize,
    /// Frames in the batches (drawn with replacement).
    pub sampled_frames: usize,
}

/// Scores `policy` (as loaded from a checkpoint with its training `config`) on the last
/// `last_episodes` episodes of each of `datasets` (all of them when `None`): the mean
/// flow-matching and subgoal loss over the same fixed batches [`train`]'s validation uses
/// (`batch_size` frames each, drawn with `config.seed`). Each dataset's `robot_type` must be
/// one of the policy's embodiments; the policy's own normalization is applied. Compares a
/// model on data it trained on with data it never saw.
pub fn score(
    policy: &Policy,
    config: &TrainConfig,
    datasets: &[PathBuf],
    last_episodes: Option<usize>,
    device: &Device,
) -> Result<Score, TrainError> {
    let mut sources = Vec::new();
    let mut frames = Vec::new();
    for (i, dir) in datasets.iter().enumerate() {
        let ds = Dataset::open(dir)?;
        let name = EmbodimentNorm::from_info(ds.info(), dir)?.name;
        let Some(embodiment) = policy.normalizer.id(&name) else {
            return Err(TrainError::Dataset {
                dir: dir.clone(),
                message: format!(
                    "robot_type \"{name}\" is not one of the policy's embodiments ({:?})",
                    policy.normalizer.names()
                ),
            });
        };
        let n = ds.num_episodes();
        frames.extend(episode_frames(
            i,
            &ds,
            n.saturating_sub(last_episodes.unwrap_or(n))..n,
        ));
        let subgoals = (0..n).map(|e| subgoal_label(&ds, e)).collect();
        sources.push(Source {
            ds,
            embodiment,
            subgoals,
        });
    }
    if frames.is_empty() {
        return Err(TrainError::config(
            PathBuf::from("--dataset"),
            "no frames to score",
        ));
    }
    let (flow_loss, subgoal_loss) = validation_losses(policy, &sources, &frames, config, device)?;
    Ok(Score {
        flow_loss,
        subgoal_loss,
        frames: frames.len(),
        sampled_frames: VALIDATION_BATCHES as usize * config.batch_size,
    })
}

/// Trains System 1 on the LeRobot datasets `datasets` (mixed in every batch, uniformly over
/// their frames; one embodiment per `robot_type`) with `config`, writing checkpoints to
/// `out/checkpoint` and the loss curve to `out/loss.csv` ([`LOSS_CSV_HEADER`]). With
/// `resume`, continues exactly from `out/checkpoint` (weights, EMA, AdamW moments, step; the
/// batches are a function of seed and step, so a resumed run equals an uninterrupted one).
/// `on_step` is called after every step (progress display, loss curves); when it returns `false`
/// the run stops there (after writing a checkpoint), as an interruption would.
pub fn train_s1(
    datasets: &[PathBuf],
    config: &TrainConfig,
    out: &Path,
    resume: bool,
    device: &Device,
    on_step: &mut dyn FnMut(&StepInfo) -> bool,
) -> Result<TrainReport, TrainError> {
    train(datasets, &[], config, out, resume, device, on_step)
}

/// [`train_s1`] with grounding data: `grounding` datasets (e.g. `datagen --scenes`) add
/// `planner.grounding_batch` labeled frames to every batch, which train System 2 through the
/// subgoal loss only. Needs a `[planner]` with a subgoal head.
pub fn train(
    datasets: &[PathBuf],
    grounding: &[PathBuf],
    config: &TrainConfig,
    out: &Path,
    resume: bool,
    device: &Device,
    on_step: &mut dyn FnMut(&StepInfo) -> bool,
) -> Result<TrainReport, TrainError> {
    let (sources, data_norm) = open_sources(datasets)?;
    let grounding = match &config.planner {
        Some(p) if p.subgoal_weight > 0.0 => {
            open_grounding(grounding, p.grounding_batch, &p.cameras)?
        }
        _ if grounding.is_empty() => None,
        _ => {
            return Err(TrainError::config(
                PathBuf::from("planner.subgoal_weight"),
                "grounding datasets train System 2's subgoal head: they need a [planner] with subgoal_weight > 0",
            ));
        }
    };
    let (mut frames, mut val_frames) = (Vec::new(), Vec::new());
    let held_out = config.validation_episodes;
    for (i, s) in sources.iter().enumerate() {
        let n = s.ds.num_episodes();
        if held_out > 0 && n <= held_out {
            return Err(TrainError::Dataset {
                dir: datasets[i].clone(),
                message: format!(
                    "has {n} episodes: too few to hold out validation_episodes = {held_out} and train on the rest"
                ),
            });
        }
        frames.extend(episode_frames(i, &s.ds, 0..n - held_out));
        val_frames.extend(episode_frames(i, &s.ds, n - held_out..n));
    }
    if frames.is_empty() {
        return Err(TrainError::Dataset {
            dir: datasets[0].clone(),
            message: "the datasets have no frames".into(),
        });
    }
    let ckpt_dir = out.join("checkpoint");
    let device = device.clone().autodiff();
    let o = &config.optim;
    let optim = AdamWConfig::new()
        .with_beta_1(o.beta1)
        .with_beta_2(o.beta2)
        .with_epsilon(o.eps)
        .with_weight_decay(o.weight_decay)
        .init();
    let (model, mut ema, mut optim, start) = if resume && ckpt_dir.join("state.json").is_file() {
        let r = load_training_state(&ckpt_dir, &device, optim)?;
        let same_planner = match (&r.config.planner, &config.planner) {
            (Some(a), Some(b)) => a.same_architecture(b),
            (None, None) => true,
            _ => false,
        };
        if r.config.head != config.head || !same_planner {
            return Err(TrainError::config(
                ckpt_dir.join("train.toml"),
                "the checkpoint's [head] or [planner] architecture differs from the configuration given; resume with the same model (only [planner] subgoal_weight and freeze may change)",
            ));
        }
        if r.model.normalizer.embodiments.len() != data_norm.embodiments.len()
            || r.model
                .normalizer
                .embodiments
                .iter()
                .zip(&data_norm.embodiments)
                .any(|(a, b)| a.name != b.name)
        {
            return Err(TrainError::config(
                ckpt_dir.join("normalization.json"),
                "the checkpoint was trained on other embodiments than the datasets given",
            ));
        }
        let ema = match (r.ema, o.ema_decay) {
            (Some(e), Some(_)) => Some(e),
            (None, Some(_)) => Some(r.model.valid()),
            (_, None) => None,
        };
        tracing::info!(step = r.step, "resuming");
        (r.model, ema, r.optimizer, r.step)
    } else {
        if ckpt_dir.exists() && !resume {
            return Err(TrainError::config(
                &ckpt_dir,
                "a checkpoint already exists here; pass --resume to continue it or choose another output directory",
            ));
        }
        let head_cfg = config.head_config(
            data_norm.max_state_dim(),
            data_norm.max_action_dim(),
            data_norm.embodiments.len(),
        )?;
        let mut model = Policy::init(
            &head_cfg,
            config.head.plan_tokens,
            data_norm,
            &device,
            config.seed,
        )?;
        if let Some(p) = &config.planner {
            let (planner, prompt) = new_planner(
                p,
                &sources,
                datasets,
                grounding.as_ref(),
                &device,
                config.seed,
            )?;
            model = model.with_planner(planner, prompt)?;
        }
        let ema = o.ema_decay.map(|_| model.valid());
        (model, ema, optim, 0)
    };
    let frozen = config
        .planner
        .as_ref()
        .map(|p| p.freeze.clone())
        .unwrap_or_default();
    let model = freeze(model, &frozen);
    let (cameras, subgoal_weight) = planner_inputs(config);
    let demo_subgoals = config.planner.as_ref().is_none_or(|p| p.subgoal_from_demos);
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
    let csv_path = out.join("loss.csv");
    prepare_csv(&csv_path, LOSS_CSV_HEADER, start)?;
    let mut csv = std::fs::OpenOptions::new()
        .append(true)
        .open(&csv_path)
        .map_err(|e| TrainError::io(&csv_path, e))?;
    // Validation rows are written at checkpoints: the one resumed from is kept.
    let val_path = out.join("val.csv");
    let mut val_csv = if val_frames.is_empty() {
        None
    } else {
        prepare_csv(&val_path, VAL_CSV_HEADER, start + 1)?;
        Some(
            std::fs::OpenOptions::new()
                .append(true)
                .open(&val_path)
                .map_err(|e| TrainError::io(&val_path, e))?,
        )
    };

    let mut model = model;
    let hc = model.head.config.clone();
    let h = hc.action_horizon;
    let mut losses = Vec::new();
    let mut steps_done = start;
    for step in start..config.steps {
        // One stream per step, derived from the seed and the step, so a resumed run draws the
        // same batches as an uninterrupted one.
        let mut rng = step_rng(config.seed, step as u64);
        let b = config.batch_size;
        let batch = sample_batch(
            &sources,
            &frames,
            demo_subgoals,
            grounding.as_ref(),
            &model,
            &cameras,
            h,
            b,
            &mut rng,
            &device,
        )?;
        let BatchLosses {
            flow: flow_loss,
            subgoal: subgoal_loss,
            grounding: grounding_loss,
        } = batch_losses(&model, batch, b, &mut rng, &device, subgoal_weight)?;
        let loss = flow_loss.clone().into_scalar::<f32>();
        let (total, subgoal_loss) = match subgoal_loss {
            Some(sg) => {
                let v = sg.clone().into_scalar::<f32>();
                (flow_loss + sg.mul_scalar(subgoal_weight), v)
            }
            None => (flow_loss, f32::NAN),
        };
        if !loss.is_finite() {
            return Err(TrainError::Diverged { step, loss });
        }
        let mut grads = GradientsParams::from_grads(total.backward(), &model);
        let grad_norm = match o.grad_clip_norm {
            Some(c) => clip_global_norm(&model, &mut grads, c),
            None => f32::NAN,
        };
        let lr = config.lr_at(step);
        model = optim.step(lr, model, grads);
        if let (Some(e), Some(decay)) = (ema.take(), o.ema_decay) {
            let d = decay.min((1.0 + step as f64) / (10.0 + step as f64)) as f32;
            ema = Some(ema_update(e, &model, d));
        }
        writeln!(
            csv,
            "{step},{loss},{lr},{grad_norm},{subgoal_loss},{grounding_loss}"
        )
        .map_err(|e| TrainError::io(&csv_path, e))?;
        losses.push((step, loss));
        let go_on = on_step(&StepInfo {
            step,
            loss,
            lr,
            grad_norm,
            subgoal_loss,
            grounding_loss,
        });
        let done = step + 1;
        if done % config.checkpoint_every == 0 || done == config.steps || !go_on {
            csv.flush().map_err(|e| TrainError::io(&csv_path, e))?;
            if let Some(v) = &mut val_csv {
                let (val_loss, val_subgoal) = validation_losses(
                    ema.as_ref().unwrap_or(&model),
                    &sources,
                    &val_frames,
                    config,
                    &device,
                )?;
                tracing::info!(step = done, val_loss, val_subgoal, "validation");
                writeln!(v, "{done},{val_loss},{val_subgoal}")
                    .and_then(|()| v.flush())
                    .map_err(|e| TrainError::io(&val_path, e))?;
            }
            let state = TrainState {
                raw: ema.as_ref().map(|_| &model),
                optimized: &model,
                optimizer: &optim,
            };
            save_checkpoint(
                ema.as_ref().unwrap_or(&model),
                config,
                done,
                &ckpt_dir,
                Some(&state),
            )?;
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
