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

/// Components of the planner that can be frozen (as GR00T freezes its VLM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlannerPart {
    /// The SigLIP tower.
    Vision,
    /// The connector (`mlp1`).
    Connector,
    /// The language model.
    Language,
}

/// System 2's size when it is trained jointly with System 1 (`[planner]`). The tokenizer is a
/// word-level vocabulary built from the datasets' task strings at the start of training (its
/// size must stay below `vocab_size`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannerSize {
    /// Dataset camera features fed to the planner, one view each (e.g.
    /// `observation.images.head`).
    pub cameras: Vec<String>,
    /// Square input size (px); camera frames are resized to it.
    pub image_size: usize,
    /// Patch size (px); must divide `image_size`.
    pub patch_size: usize,
    /// SigLIP layers.
    pub vision_layers: usize,
    /// SigLIP width.
    pub vision_width: usize,
    /// SigLIP heads.
    pub vision_heads: usize,
    /// SigLIP MLP width.
    pub vision_mlp: usize,
    /// `s`: `s×s` patches per image token.
    #[serde(default = "one")]
    pub pixel_shuffle: usize,
    /// `linear` or `mlp`.
    pub connector: bicameral_policy::ConnectorKind,
    /// LM layers (all run: `select_layer` = this).
    pub lm_layers: usize,
    /// LM width (= the plan width, `head.plan_dim`).
    pub lm_width: usize,
    /// LM query heads.
    pub lm_heads: usize,
    /// LM key/value heads.
    pub lm_kv_heads: usize,
    /// LM head width.
    pub lm_head_dim: usize,
    /// LM MLP width.
    pub lm_mlp: usize,
    /// Embedding rows (≥ the tokenizer's vocabulary).
    pub vocab_size: usize,
    /// Token budget for the instruction.
    pub max_text_tokens: usize,
    /// Prompt template with one `{images}` and one `{instruction}` (default
    /// `"{images} {instruction}"`, GR00T's order). With `"{instruction} {images}"` the causal
    /// LM's image tokens see the instruction, so each image token can tell whether it shows
    /// the named object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_template: Option<String>,
    /// Weight of the auxiliary subgoal loss (0 = no subgoal head). Labels: the episode
    /// metadata's `subgoal` array (6 values: where the object is and where it must go, m);
    /// episodes without it do not contribute.
    #[serde(default)]
    pub subgoal_weight: f32,
    /// How the subgoal head pools the plan tokens: 0 (default) = their masked mean, `n` = `n`
    /// learned attention queries (e.g. 2: one for the object, one for its destination), so the
    /// head can read the named object's image token instead of an average over all tokens.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub subgoal_queries: usize,
    /// Parts that do not train.
    #[serde(default)]
    pub freeze: Vec<PlannerPart>,
    /// Grounding frames added to every batch from the `--grounding` datasets (e.g. `datagen
    /// --scenes`): they train System 2 through the subgoal loss only (System 1 never sees
    /// them). 0 = none.
    #[serde(default)]
    pub grounding_batch: usize,
    /// Whether demonstration frames train the subgoal head too (default). `false`: only the
    /// grounding frames do. On demonstration frames the arm's pose and the scene's progress
    /// give the episode away, and the head can memorize the episode's subgoal instead of
    /// finding the object (measured on a 4 750-step run: subgoal loss 0.0005 m² on its own
    /// demonstrations against 0.0078 m² on unseen ones).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub subgoal_from_demos: bool,
}

/// Values in a subgoal: object position and destination, `[x, y, z]` each (m, world frame).
pub const SUBGOAL_DIM: usize = 6;

fn one() -> usize {
    1
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl PlannerSize {
    /// Whether `other` describes the same planner weights: everything but the training-only
    /// knobs (`freeze`, `grounding_batch`, and the subgoal weight's value as long as both have
    /// a subgoal head or both have none) is equal. A resumed run may change those knobs.
    pub fn same_architecture(&self, other: &PlannerSize) -> bool {
        let norm = |p: &PlannerSize| PlannerSize {
            subgoal_weight: if p.subgoal_weight > 0.0 { 1.0 } else { 0.0 },
            freeze: Vec::new(),
            grounding_batch: 0,
            subgoal_from_demos: true,
            ..p.clone()
        };
        norm(self) == norm(other)
    }

    /// The planner architecture for a tokenizer built from the data.
    pub fn planner_config(&self) -> Result<bicameral_policy::PlannerConfig, String> {
        let vision = serde_json::json!({
            "model_type": "siglip_vision_model",
            "hidden_size": self.vision_width,
            "intermediate_size": self.vision_mlp,
            "num_attention_heads": self.vision_heads,
            "num_hidden_layers": self.vision_layers,
            "image_size": self.image_size,
            "patch_size": self.patch_size,
            "num_channels": 3,
            "hidden_act": "gelu_pytorch_tanh",
            "layer_norm_eps": 1e-6
        });
        let text = serde_json::json!({
            "model_type": "qwen3",
            "vocab_size": self.vocab_size,
            "hidden_size": self.lm_width,
            "intermediate_size": self.lm_mlp,
            "num_hidden_layers": self.lm_layers,
            "num_attention_heads": self.lm_heads,
            "num_key_value_heads": self.lm_kv_heads,
            "head_dim": self.lm_head_dim,
            "rms_norm_eps": 1e-6,
            "rope_theta": 10000.0,
            "tie_word_embeddings": true,
            "max_position_embeddings": 4096
        });
        let c = bicameral_policy::PlannerConfig {
            vision: serde_json::from_value(vision).map_err(|e| e.to_string())?,
            text: serde_json::from_value(text).map_err(|e| e.to_string())?,
            select_layer: self.lm_layers,
            pixel_shuffle: self.pixel_shuffle,
            connector: self.connector,
            project_to_dim: None,
            num_views: self.cameras.len(),
            subgoal_dim: if self.subgoal_weight > 0.0 {
                SUBGOAL_DIM
            } else {
                0
            },
            subgoal_queries: self.subgoal_queries,
            prompt: {
                let d = bicameral_policy::PromptConfig::default();
                bicameral_policy::PromptConfig {
                    max_text_tokens: self.max_text_tokens,
                    template: self.prompt_template.clone().unwrap_or(d.template.clone()),
                    ..d
                }
            },
        };
        c.validate()?;
        Ok(c)
    }
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
    /// System 2, trained jointly (absent: System 1 alone on its learned null plan).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planner: Option<PlannerSize>,
    /// Episodes held out of training at the end of each demonstration dataset (its last
    /// `validation_episodes`); at every checkpoint their flow-matching (and subgoal) loss is
    /// written to `val.csv`. 0 (default) = no validation.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub validation_episodes: usize,
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
        if let Some(p) = &self.planner {
            if p.cameras.is_empty() {
                return Err("planner.cameras must name at least one camera feature".into());
            }
            if p.lm_width != h.plan_dim {
                return Err(format!(
                    "planner.lm_width ({}) must equal head.plan_dim ({}): the plan tokens are the LM's output",
                    p.lm_width, h.plan_dim
                ));
            }
            if !(p.subgoal_weight.is_finite() && p.subgoal_weight >= 0.0) {
                return Err("planner.subgoal_weight must be ≥ 0".into());
            }
            if p.grounding_batch > 0 && p.subgoal_weight == 0.0 {
                return Err(
                    "planner.grounding_batch needs planner.subgoal_weight > 0 (grounding frames train only the subgoal head's loss)"
                        .into(),
                );
            }
            // Tower shapes (patch divides image, width divisible by heads, …) are checked by
            // the planner's own validation.
            p.planner_config().map_err(|m| format!("planner: {m}"))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn dual_default() -> PlannerSize {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../models/dual_default.toml"
        );
        TrainConfig::load(std::path::Path::new(path))
            .expect("models/dual_default.toml loads")
            .planner
            .expect("it has a [planner]")
    }

    #[test]
    fn the_prompt_template_reaches_the_planner_and_is_part_of_it() {
        let mut a = dual_default();
        assert_eq!(
            a.planner_config().unwrap().prompt.template,
            "{images} {instruction}"
        );
        let b = PlannerSize {
            prompt_template: Some("{instruction} {images}".into()),
            ..a.clone()
        };
        assert_eq!(
            b.planner_config().unwrap().prompt.template,
            "{instruction} {images}"
        );
        assert!(
            !a.same_architecture(&b),
            "the template changes what the weights mean"
        );
        a.prompt_template = Some("{images} {instruction}".into());
        assert!(dual_default().planner_config().unwrap() == a.planner_config().unwrap());
    }

    #[test]
    fn resume_may_change_training_knobs_but_not_the_planner() {
        let a = dual_default();
        let mut b = a.clone();
        b.subgoal_weight = a.subgoal_weight * 50.0;
        b.freeze = vec![PlannerPart::Vision];
        b.grounding_batch = 16;
        assert!(
            a.same_architecture(&b),
            "subgoal weight and freeze are training knobs"
        );
        // Dropping the subgoal head changes the weights.
        b.subgoal_weight = 0.0;
        assert!(!a.same_architecture(&b));
        let mut c = a.clone();
        c.lm_layers += 1;
        assert!(!a.same_architecture(&c));
    }
}
