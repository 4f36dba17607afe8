//! Training configuration (`models/*.toml`).

use std::path::Path;

use bicameral_policy::FlowmatchingActionHeadConfig;
use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// The head's size; state and action widths come from the dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadSize {
    /// DiT blocks (alternating cross- and self-attention).
    pub layers: usize,
    /// DiT attention heads.
    pub heads: usize,
    /// Channels per DiT head; the DiT width is `heads · head_dim`.
    pub head_dim: usize,
    /// Hidden width of the state encoder / action decoder and the DiT output.
    pub hidden_size: usize,
    /// Width of the plan tokens (System 2's output).
    pub plan_dim: usize,
    /// Plan tokens (learned null plan when System 1 trains alone).
    pub plan_tokens: usize,
    /// Learned future tokens between the state token and the action tokens.
    pub future_tokens: usize,
    /// Self-attention blocks of the plan adapter.
    pub adapter_layers: usize,
    /// Heads of the plan adapter (`plan_dim` must be divisible by it).
    pub adapter_heads: usize,
    /// H: actions per chunk.
    pub action_horizon: usize,
    /// K: Euler steps at inference.
    pub inference_steps: usize,
}

/// AdamW with linear warm-up and cosine decay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    /// Peak learning rate.
    pub lr: f64,
    /// Linear warm-up steps from 0 to `lr`.
    pub warmup_steps: usize,
    /// Final learning rate as a fraction of `lr` (cosine decay ends there).
    #[serde(default)]
    pub final_lr_fraction: f64,
    /// Decoupled weight decay.
    pub weight_decay: f32,
    /// Adam β1.
    #[serde(default = "beta1")]
    pub beta1: f32,
    /// Adam β2.
    #[serde(default = "beta2")]
    pub beta2: f32,
    /// Adam ε.
    #[serde(default = "eps")]
    pub eps: f32,
    /// Clip the global gradient norm (over all parameters) to this value.
    pub grad_clip_norm: Option<f32>,
    /// Keep an exponential moving average of the weights with this decay (e.g. 0.999), warmed
    /// up as `min(decay, (1 + step) / (10 + step))`; the checkpoint then deploys the averaged
    /// weights. Off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ema_decay: Option<f64>,
}

fn beta1() -> f32 {
    0.9
}
fn beta2() -> f32 {
    0.95
}
fn eps() -> f32 {
    1e-8
}

/// A training run of System 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Optimizer steps in total.
    pub steps: usize,
    /// Samples per step.
    pub batch_size: usize,
    /// Seed of initialization, batch sampling, time and noise draws.
    pub seed: u64,
    /// Write a checkpoint every this many steps (and at the end).
    pub checkpoint_every: usize,
    /// The head.
    pub head: HeadSize,
    /// The optimizer.
    pub optim: OptimConfig,
}

impl TrainConfig {
    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Self, TrainError> {
        let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
        let cfg: Self =
            toml::from_str(&text).map_err(|e| TrainError::config(path, e.to_string()))?;
        cfg.validate().map_err(|m| TrainError::config(path, m))?;
        Ok(cfg)
    }

    /// Checks ranges; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        let h = &self.head;
        let positive = [
            ("steps", self.steps),
            ("batch_size", self.batch_size),
            ("checkpoint_every", self.checkpoint_every),
            ("head.layers", h.layers),
            ("head.heads", h.heads),
            ("head.head_dim", h.head_dim),
            ("head.hidden_size", h.hidden_size),
            ("head.plan_dim", h.plan_dim),
            ("head.plan_tokens", h.plan_tokens),
            ("head.adapter_heads", h.adapter_heads),
            ("head.action_horizon", h.action_horizon),
            ("head.inference_steps", h.inference_steps),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(format!("{name} must be at least 1"));
            }
        }
        if !h.plan_dim.is_multiple_of(h.adapter_heads) {
            return Err(format!(
                "head.plan_dim ({}) must be divisible by head.adapter_heads ({})",
                h.plan_dim, h.adapter_heads
            ));
        }
        let o = &self.optim;
        if !(o.lr.is_finite() && o.lr > 0.0) {
            return Err("optim.lr must be positive".into());
        }
        if !(0.0..=1.0).contains(&o.final_lr_fraction) {
            return Err("optim.final_lr_fraction must be in [0, 1]".into());
        }
        if o.grad_clip_norm.is_some_and(|c| c.is_nan() || c <= 0.0) {
            return Err("optim.grad_clip_norm must be positive".into());
        }
        if o.ema_decay.is_some_and(|d| !(0.0..1.0).contains(&d)) {
            return Err("optim.ema_decay must be in [0, 1)".into());
        }
        Ok(())
    }

    /// Learning rate at `step` (0-based): linear warm-up, then cosine decay to
    /// `final_lr_fraction · lr` at the last step.
    pub fn lr_at(&self, step: usize) -> f64 {
        let o = &self.optim;
        if step < o.warmup_steps {
            return o.lr * (step + 1) as f64 / o.warmup_steps as f64;
        }
        let span = self.steps.saturating_sub(o.warmup_steps).max(1) as f64;
        let p = ((step - o.warmup_steps) as f64 / span).min(1.0);
        let floor = o.lr * o.final_lr_fraction;
        floor + (o.lr - floor) * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
    }

    /// The head configuration (upstream layout) for `embodiments` embodiments whose widest
    /// state / action have `state_dim` / `action_dim` values.
    pub fn head_config(
        &self,
        state_dim: usize,
        action_dim: usize,
        embodiments: usize,
    ) -> Result<FlowmatchingActionHeadConfig, TrainError> {
        let h = &self.head;
        let json = serde_json::json!({
            "action_dim": action_dim,
            "action_horizon": h.action_horizon,
            "add_pos_embed": true,
            "backbone_embedding_dim": h.plan_dim,
            "diffusion_model_cfg": {
                "attention_head_dim": h.head_dim,
                "cross_attention_dim": h.plan_dim,
                "dropout": 0.0,
                "final_dropout": false,
                "interleave_self_attention": true,
                "norm_type": "ada_norm",
                "num_attention_heads": h.heads,
                "num_layers": h.layers,
                "output_dim": h.hidden_size,
                "positional_embeddings": null
            },
            "hidden_size": h.hidden_size,
            "input_embedding_dim": h.heads * h.head_dim,
            "max_action_dim": action_dim,
            "max_num_embodiments": embodiments.max(1),
            "max_seq_len": h.action_horizon.max(16),
            "max_state_dim": state_dim,
            "num_inference_timesteps": h.inference_steps,
            "num_target_vision_tokens": h.future_tokens,
            "use_vlln": true,
            "vl_self_attention_cfg": {
                "attention_head_dim": h.plan_dim / h.adapter_heads,
                "dropout": 0.0,
                "final_dropout": false,
                "num_attention_heads": h.adapter_heads,
                "num_layers": h.adapter_layers,
                "positional_embeddings": null
            }
        });
        Ok(FlowmatchingActionHeadConfig::from_json_str(
            &json.to_string(),
        )?)
    }
}
