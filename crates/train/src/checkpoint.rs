//! Checkpoint directories of System 1:
//!
//! ```text
//! config.json            head config (upstream GR00T layout)
//! model.safetensors      head weights, upstream names (`action_head.` prefix); the EMA weights
//!                        when the run keeps an EMA
//! null_plan.safetensors  learned plan tokens `null_plan` [P, Db]
//! normalization.json     per-embodiment min–max statistics of state and action (physical units)
//! train.toml             the training configuration
//! state.json             {"step": N}: optimizer steps done
//! train_state/           what resuming needs beyond the deployable weights:
//!   optimizer.bpk        AdamW moments and step counts (burnpack), keyed by parameter id
//!   param_ids.json       the trained parameters' ids in module visit order
//!   raw/                 the raw (non-averaged) weights, only when the run keeps an EMA
//! ```
//!
//! A checkpoint is written to `<dir>.partial` and renamed over `<dir>`, so a crash never leaves a
//! half-written checkpoint in place.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bicameral_policy::burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use bicameral_policy::burn::optim::ModuleOptimizer;
use bicameral_policy::burn::tensor::{Device, Tensor, TensorData};
use bicameral_policy::planner::{PLANNER_CONFIG_FILE, TOKENIZER_FILE};
use bicameral_policy::{
    ActionHead, HostTensor, LoadOptions, Planner, PromptEncoder, read_safetensors, save_tokenizer,
    write_safetensors,
};

use crate::config::TrainConfig;
use crate::error::TrainError;
use crate::policy::{Normalizer, Policy};

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut s = dir.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    std::fs::write(path, bytes).map_err(|e| TrainError::io(path, e))
}

fn mkdir(path: &Path) -> Result<(), TrainError> {
    std::fs::create_dir_all(path).map_err(|e| TrainError::io(path, e))
}

/// The training state saved next to the deployable weights so that a run resumes exactly.
pub struct TrainState<'a> {
    /// The weights being optimized, when they differ from the deployed (EMA) ones.
    pub raw: Option<&'a Policy>,
    /// The model whose parameter ids key `optimizer`'s state (the raw weights).
    pub optimized: &'a Policy,
    /// The optimizer.
    pub optimizer: &'a ModuleOptimizer,
}

/// Writes the deployable part of a policy (head, null plan, normalization) into `dir`.
fn write_weights(policy: &Policy, dir: &Path) -> Result<(), TrainError> {
    policy.head.save(dir)?;
    let mut t = BTreeMap::new();
    t.insert(
        "null_plan".to_string(),
        HostTensor::from_tensor(policy.null_plan.val())?,
    );
    write_safetensors(&dir.join("null_plan.safetensors"), &t)?;
    if let (Some(planner), Some(prompt)) = (&policy.planner, &policy.prompt) {
        planner.save(dir)?;
        save_tokenizer(prompt, dir)?;
    }
    let norm = serde_json::to_string_pretty(&policy.normalizer)
        .map_err(|e| TrainError::config(dir.join("normalization.json"), e.to_string()))?;
    write(&dir.join("normalization.json"), norm.as_bytes())
}

struct IdCollector(Vec<u64>);

impl ModuleVisitor for IdCollector {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push(param.id.val());
    }
}

/// Ids of `model`'s float parameters in visit order.
fn param_ids(model: &Policy) -> Vec<u64> {
    let mut c = IdCollector(Vec::new());
    model.visit(&mut c);
    c.0
}

struct IdSetter<'a> {
    ids: std::slice::Iter<'a, u64>,
}

impl ModuleMapper for IdSetter<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, value, mapper) = param.consume();
        let id = self.ids.next().map_or(id, |&v| ParamId::from(v));
        Param::from_mapped_value(id, value, mapper)
    }
}

/// Writes `policy` (the deployable weights) after `step` optimizer steps of `config` to `dir`
/// (atomically replaced), with the training state needed to resume when given.
pub fn save_checkpoint(
    policy: &Policy,
    config: &TrainConfig,
    step: usize,
    dir: &Path,
    state: Option<&TrainState<'_>>,
) -> Result<(), TrainError> {
    let tmp = sibling(dir, ".partial");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    }
    mkdir(&tmp)?;
    // A failed write (a full disk) leaves the previous checkpoint as it was and no partial one.
    if let Err(e) = write_partial(policy, config, step, &tmp, state) {
        if let Err(rm) = std::fs::remove_dir_all(&tmp) {
            tracing::warn!(dir = %tmp.display(), error = %rm, "could not remove the partial checkpoint");
        }
        return Err(e);
    }
    let old = sibling(dir, ".old");
    if dir.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| TrainError::io(&old, e))?;
        }
        std::fs::rename(dir, &old).map_err(|e| TrainError::io(dir, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| TrainError::io(dir, e))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| TrainError::io(&old, e))?;
    }
    tracing::info!(dir = %dir.display(), step, "checkpoint written");
    Ok(())
}

/// Everything of a checkpoint, into the fresh directory `tmp`.
fn write_partial(
    policy: &Policy,
    config: &TrainConfig,
    step: usize,
    tmp: &Path,
    state: Option<&TrainState<'_>>,
) -> Result<(), TrainError> {
    write_weights(policy, tmp)?;
    let toml = toml::to_string_pretty(config)
        .map_err(|e| TrainError::config(tmp.join("train.toml"), e.to_string()))?;
    write(&tmp.join("train.toml"), toml.as_bytes())?;
    write(
        &tmp.join("state.json"),
        serde_json::json!({ "step": step }).to_string().as_bytes(),
    )?;
    if let Some(s) = state {
        let ts = tmp.join("train_state");
        mkdir(&ts)?;
        if let Some(raw) = s.raw {
            let raw_dir = ts.join("raw");
            mkdir(&raw_dir)?;
            write_weights(raw, &raw_dir)?;
        }
        let ids = serde_json::to_string(&param_ids(s.optimized))
            .map_err(|e| TrainError::config(ts.join("param_ids.json"), e.to_string()))?;
        write(&ts.join("param_ids.json"), ids.as_bytes())?;
        let opt_path = ts.join("optimizer.bpk");
        s.optimizer.save(&opt_path).map_err(|e| {
            TrainError::config(&opt_path, format!("writing optimizer state: {e:?}"))
        })?;
    }
    Ok(())
}

/// Loads the weights, null plan and normalization in `dir` (a checkpoint or its
/// `train_state/raw`).
fn read_weights(dir: &Path, device: &Device) -> Result<Policy, TrainError> {
    let (head, _) = ActionHead::load(dir, device, &LoadOptions::default())?;
    let plan_path = dir.join("null_plan.safetensors");
    let tensors = read_safetensors(&plan_path)?;
    let plan = tensors
        .get("null_plan")
        .ok_or_else(|| TrainError::config(&plan_path, "no tensor \"null_plan\""))?;
    let values = plan
        .as_f32()
        .ok_or_else(|| TrainError::config(&plan_path, "null_plan is not float32"))?;
    let (p, db) = match plan.shape[..] {
        [p, db] if db == head.config.backbone_embedding_dim => (p, db),
        _ => {
            return Err(TrainError::config(
                &plan_path,
                format!(
                    "null_plan has shape {:?}, expected [P, {}]",
                    plan.shape, head.config.backbone_embedding_dim
                ),
            ));
        }
    };
    let null_plan = Param::from_tensor(Tensor::from_data(
        TensorData::new(values.to_vec(), [p, db]),
        device,
    ));
    let norm_path = dir.join("normalization.json");
    let text = std::fs::read_to_string(&norm_path).map_err(|e| TrainError::io(&norm_path, e))?;
    let normalizer: Normalizer =
        serde_json::from_str(&text).map_err(|e| TrainError::config(&norm_path, e.to_string()))?;
    let c = &head.config;
    if normalizer.embodiments.is_empty()
        || normalizer.max_state_dim() != c.max_state_dim
        || normalizer.max_action_dim() != c.action_dim
        || normalizer.embodiments.len() > c.max_num_embodiments
    {
        return Err(TrainError::config(
            &norm_path,
            format!(
                "statistics for {} embodiments of up to {} state / {} action values, the head \
                 has {} embodiments and {} / {}",
                normalizer.embodiments.len(),
                normalizer.max_state_dim(),
                normalizer.max_action_dim(),
                c.max_num_embodiments,
                c.max_state_dim,
                c.action_dim
            ),
        ));
    }
    let mut policy = Policy {
        head,
        null_plan,
        planner: None,
        prompt: None,
        normalizer,
    };
    if dir.join(PLANNER_CONFIG_FILE).is_file() {
        let (planner, _) = Planner::load(dir, device)?;
        let prompt = PromptEncoder::load(&dir.join(TOKENIZER_FILE), planner.config.prompt.clone())?;
        policy = policy.with_planner(planner, prompt)?;
    }
    Ok(policy)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, TrainError> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| TrainError::config(path, e.to_string()))
}

/// Loads a checkpoint written by [`save_checkpoint`] for inference: the deployable policy on
/// `device`, its training configuration and the number of steps done.
pub fn load_checkpoint(
    dir: &Path,
    device: &Device,
) -> Result<(Policy, TrainConfig, usize), TrainError> {
    let policy = read_weights(dir, device)?;
    let config = TrainConfig::load(&dir.join("train.toml"))?;
    let state_path = dir.join("state.json");
    let state: serde_json::Value = read_json(&state_path)?;
    let step = state["step"].as_u64().ok_or_else(|| {
        TrainError::config(&state_path, "field \"step\" missing or not an integer")
    })? as usize;
    Ok((policy, config, step))
}

/// What [`load_training_state`] restores.
pub struct Resumed {
    /// The weights being optimized (parameter ids as when saved).
    pub model: Policy,
    /// The EMA weights, when the checkpoint has them.
    pub ema: Option<Policy>,
    /// The optimizer with its moments.
    pub optimizer: ModuleOptimizer,
    /// The training configuration.
    pub config: TrainConfig,
    /// Steps done.
    pub step: usize,
}

/// Loads everything needed to continue training from a checkpoint: the raw weights on
/// `device` (an autodiff device) with their original parameter ids, the EMA weights (on the
/// inner device) when present, and `optimizer` with the saved moments.
pub fn load_training_state(
    dir: &Path,
    device: &Device,
    optimizer: ModuleOptimizer,
) -> Result<Resumed, TrainError> {
    let (deployed, config, step) = load_checkpoint(dir, device)?;
    let ts = dir.join("train_state");
    let raw_dir = ts.join("raw");
    let (model, ema) = if raw_dir.is_dir() {
        (read_weights(&raw_dir, device)?, Some(deployed.valid()))
    } else {
        (deployed, None)
    };
    let ids_path = ts.join("param_ids.json");
    if !ids_path.is_file() {
        tracing::warn!(dir = %dir.display(), "checkpoint has no optimizer state; AdamW moments restart from zero");
        return Ok(Resumed {
            model,
            ema,
            optimizer,
            config,
            step,
        });
    }
    let ids: Vec<u64> = read_json(&ids_path)?;
    let n = param_ids(&model).len();
    if ids.len() != n {
        return Err(TrainError::config(
            &ids_path,
            format!(
                "{} parameter ids for a model with {n} parameters",
                ids.len()
            ),
        ));
    }
    let model = model.map(&mut IdSetter { ids: ids.iter() });
    let opt_path = ts.join("optimizer.bpk");
    let optimizer = optimizer
        .load(&opt_path)
        .map_err(|e| TrainError::config(&opt_path, format!("reading optimizer state: {e:?}")))?;
    Ok(Resumed {
        model,
        ema,
        optimizer,
        config,
        step,
    })
}
