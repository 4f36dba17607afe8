//! Checkpoint directories of System 1:
//!
//! ```text
//! config.json            head config (upstream GR00T layout)
//! model.safetensors      head weights, upstream names (`action_head.` prefix)
//! null_plan.safetensors  learned plan tokens `null_plan` [P, Db]
//! normalization.json     min–max statistics of state and action (physical units)
//! train.toml             the training configuration
//! state.json             {"step": N}: optimizer steps done
//! ```
//!
//! A checkpoint is written to `<dir>.partial` and renamed over `<dir>`, so a crash never leaves a
//! half-written checkpoint in place.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bicameral_policy::burn::module::Param;
use bicameral_policy::burn::tensor::{Device, Tensor, TensorData};
use bicameral_policy::{ActionHead, HostTensor, LoadOptions, read_safetensors, write_safetensors};

use crate::config::TrainConfig;
use crate::error::TrainError;
use crate::policy::{Normalizer, S1Policy};

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut s = dir.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    std::fs::write(path, bytes).map_err(|e| TrainError::io(path, e))
}

/// Writes `policy` after `step` optimizer steps of `config` to `dir` (atomically replaced).
pub fn save_checkpoint(
    policy: &S1Policy,
    config: &TrainConfig,
    step: usize,
    dir: &Path,
) -> Result<(), TrainError> {
    let tmp = sibling(dir, ".partial");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    }
    policy.head.save(&tmp)?;
    let plan = policy.null_plan.val();
    let shape = plan.dims().to_vec();
    let values = plan
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| bicameral_policy::PolicyError::Config(format!("{e:?}")))?;
    let mut t = BTreeMap::new();
    t.insert("null_plan".to_string(), HostTensor::f32(shape, values));
    write_safetensors(&tmp.join("null_plan.safetensors"), &t)?;
    let norm = serde_json::to_string_pretty(&policy.normalizer)
        .map_err(|e| TrainError::config(tmp.join("normalization.json"), e.to_string()))?;
    write(&tmp.join("normalization.json"), norm.as_bytes())?;
    let toml = toml::to_string_pretty(config)
        .map_err(|e| TrainError::config(tmp.join("train.toml"), e.to_string()))?;
    write(&tmp.join("train.toml"), toml.as_bytes())?;
    write(
        &tmp.join("state.json"),
        serde_json::json!({ "step": step }).to_string().as_bytes(),
    )?;
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

/// Loads a checkpoint written by [`save_checkpoint`]: the policy on `device`, its training
/// configuration and the number of steps done.
pub fn load_checkpoint(
    dir: &Path,
    device: &Device,
) -> Result<(S1Policy, TrainConfig, usize), TrainError> {
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
    if normalizer.state_dim() != head.config.max_state_dim
        || normalizer.action_dim() != head.config.action_dim
    {
        return Err(TrainError::config(
            &norm_path,
            format!(
                "statistics for {} state / {} action values, the head has {} / {}",
                normalizer.state_dim(),
                normalizer.action_dim(),
                head.config.max_state_dim,
                head.config.action_dim
            ),
        ));
    }
    let config = TrainConfig::load(&dir.join("train.toml"))?;
    let state_path = dir.join("state.json");
    let text = std::fs::read_to_string(&state_path).map_err(|e| TrainError::io(&state_path, e))?;
    let state: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| TrainError::config(&state_path, e.to_string()))?;
    let step = state["step"].as_u64().ok_or_else(|| {
        TrainError::config(&state_path, "field \"step\" missing or not an integer")
    })? as usize;
    Ok((
        S1Policy {
            head,
            null_plan,
            normalizer,
        },
        config,
        step,
    ))
}
