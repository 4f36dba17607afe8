//! Configuration of the action head, with upstream (Isaac-GR00T) field names.
//!
//! [`FlowmatchingActionHeadConfig`] is the dict upstream passes to
//! `FlowmatchingActionHeadConfig(**cfg)`; a full GR00T checkpoint `config.json` nests it under
//! `action_head_cfg` (see [`FlowmatchingActionHeadConfig::from_json_str`]). Unknown fields are
//! rejected so that a typo or an upstream change is noticed instead of silently ignored.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::PolicyError;

fn default_true() -> bool {
    true
}
fn default_max_num_embodiments() -> usize {
    32
}
fn default_max_seq_len() -> usize {
    1024
}
fn default_num_timestep_buckets() -> usize {
    1000
}
fn default_num_inference_timesteps() -> usize {
    4
}
fn default_num_target_vision_tokens() -> usize {
    32
}
fn default_noise_beta_alpha() -> f64 {
    1.5
}
fn default_noise_beta_beta() -> f64 {
    1.0
}
fn default_noise_s() -> f64 {
    0.999
}
fn default_model_dtype() -> String {
    "float32".to_owned()
}
fn default_activation() -> String {
    "gelu-approximate".to_owned()
}
fn default_norm_type() -> String {
    "ada_norm".to_owned()
}
fn default_norm_eps() -> f64 {
    1e-5
}

/// The flow-matching action head (`FlowmatchingActionHeadConfig` upstream).
///
/// Notation used in the docs of this crate: `D = input_embedding_dim` (DiT inner width),
/// `Hs = hidden_size`, `H = action_horizon`, `F = num_target_vision_tokens`,
/// `Db = backbone_embedding_dim`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowmatchingActionHeadConfig {
    /// Action dimension produced by the head (padded, per step).
    pub action_dim: usize,
    /// H: actions per chunk.
    pub action_horizon: usize,
    /// Add the learned `position_embedding` to the action tokens.
    #[serde(default = "default_true")]
    pub add_pos_embed: bool,
    /// Db: width of the backbone (VLM) features.
    pub backbone_embedding_dim: usize,
    /// The DiT.
    pub diffusion_model_cfg: DiTConfig,
    /// Hs: width of the DiT output and of the state encoder / action decoder hidden layers.
    pub hidden_size: usize,
    /// D: width of the DiT tokens (= heads · head_dim of the DiT).
    pub input_embedding_dim: usize,
    /// Padded action dimension of the dataset (carried along; the head reads `action_dim`).
    #[serde(default)]
    pub max_action_dim: Option<usize>,
    /// Number of embodiment slots of the category-specific MLPs.
    #[serde(default = "default_max_num_embodiments")]
    pub max_num_embodiments: usize,
    /// Rows of `position_embedding`.
    #[serde(default = "default_max_seq_len")]
    pub max_seq_len: usize,
    /// Padded state dimension (input width of the state encoder).
    pub max_state_dim: usize,
    /// Upstream compute dtype; this implementation always computes in float32.
    #[serde(default = "default_model_dtype")]
    pub model_dtype: String,
    /// Training time distribution: `u ~ Beta(alpha, beta)`.
    #[serde(default = "default_noise_beta_alpha")]
    pub noise_beta_alpha: f64,
    /// Training time distribution: `u ~ Beta(alpha, beta)`.
    #[serde(default = "default_noise_beta_beta")]
    pub noise_beta_beta: f64,
    /// Training time mapping `t = (s - u) / s`.
    #[serde(default = "default_noise_s")]
    pub noise_s: f64,
    /// N: Euler steps at inference.
    #[serde(default = "default_num_inference_timesteps")]
    pub num_inference_timesteps: usize,
    /// F: learned "future" tokens inserted between the state token and the action tokens.
    #[serde(default = "default_num_target_vision_tokens")]
    pub num_target_vision_tokens: usize,
    /// Continuous time `t` is discretized as `int(t · num_timestep_buckets)`.
    #[serde(default = "default_num_timestep_buckets")]
    pub num_timestep_buckets: usize,
    /// Training flag (upstream `requires_grad` on the DiT); informational here.
    #[serde(default = "default_true")]
    pub tune_diffusion_model: bool,
    /// Training flag (upstream `requires_grad` on the projectors); informational here.
    #[serde(default = "default_true")]
    pub tune_projector: bool,
    /// Use `vlln` + `vl_self_attention` on the backbone features (identity otherwise).
    #[serde(default = "default_true")]
    pub use_vlln: bool,
    /// The self-attention adapter over the backbone features.
    pub vl_self_attention_cfg: SelfAttentionConfig,
}

/// The DiT (`diffusion_model_cfg` upstream, keyword arguments of `DiT(...)`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiTConfig {
    /// Head width of every attention.
    pub attention_head_dim: usize,
    /// Width of the cross-attention context (= `backbone_embedding_dim`).
    #[serde(default)]
    pub cross_attention_dim: Option<usize>,
    /// Dropout probability (inactive at inference; no weights).
    #[serde(default)]
    pub dropout: f64,
    /// Dropout after the attention (no weights).
    #[serde(default)]
    pub final_dropout: bool,
    /// Odd blocks self-attend, even blocks cross-attend (all blocks cross-attend otherwise).
    #[serde(default = "default_true")]
    pub interleave_self_attention: bool,
    /// Only `"ada_norm"` is supported.
    #[serde(default = "default_norm_type")]
    pub norm_type: String,
    /// Heads of every attention.
    pub num_attention_heads: usize,
    /// Transformer blocks.
    pub num_layers: usize,
    /// Width of the DiT output (= `hidden_size`).
    pub output_dim: usize,
    /// Must be null (real checkpoints); diffusers' sinusoidal variant is not supported.
    #[serde(default)]
    pub positional_embeddings: Option<String>,
    /// Feed-forward activation; only `"gelu-approximate"` is supported.
    #[serde(default = "default_activation")]
    pub activation_fn: String,
    /// LayerNorm epsilon of `norm1`/`norm3` (the output norm always uses 1e-6).
    #[serde(default = "default_norm_eps")]
    pub norm_eps: f64,
    /// Number of timestep buckets of the ada norm (unused by the computation).
    #[serde(default)]
    pub num_embeds_ada_norm: Option<usize>,
    /// Upstream compute dtype (ignored: float32).
    #[serde(default)]
    pub compute_dtype: Option<String>,
}

/// The VL self-attention adapter (`vl_self_attention_cfg` upstream, `SelfAttentionTransformer`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelfAttentionConfig {
    /// Head width.
    pub attention_head_dim: usize,
    /// Dropout probability (no weights).
    #[serde(default)]
    pub dropout: f64,
    /// Dropout after the attention (no weights).
    #[serde(default)]
    pub final_dropout: bool,
    /// Heads.
    pub num_attention_heads: usize,
    /// Blocks.
    pub num_layers: usize,
    /// Must be null (real checkpoints).
    #[serde(default)]
    pub positional_embeddings: Option<String>,
    /// Feed-forward activation; only `"gelu-approximate"` is supported.
    #[serde(default = "default_activation")]
    pub activation_fn: String,
}

/// A full GR00T checkpoint `config.json`: only `action_head_cfg` is read.
#[derive(Debug, Deserialize)]
struct FullCheckpointConfig {
    action_head_cfg: FlowmatchingActionHeadConfig,
}

/// The transformer-block options this port supports, for config section `section`: no
/// sinusoidal positional embeddings, `gelu-approximate` activation.
fn supported_block(section: &str, positional: bool, activation_fn: &str) -> Result<(), String> {
    if positional {
        return Err(format!(
            "{section}.positional_embeddings must be null (sinusoidal positional embeddings \
             are not supported)"
        ));
    }
    if activation_fn != "gelu-approximate" {
        return Err(format!(
            "{section}.activation_fn {activation_fn:?} is not supported (gelu-approximate)"
        ));
    }
    Ok(())
}

impl FlowmatchingActionHeadConfig {
    /// Parses either the head config itself or a full GR00T config with `action_head_cfg`
    /// (other top-level fields are ignored there), then [`validate`](Self::validate)s it.
    pub fn from_json_str(json: &str) -> Result<Self, PolicyError> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| PolicyError::Config(e.to_string()))?;
        let cfg = if value.get("action_head_cfg").is_some() {
            serde_json::from_value::<FullCheckpointConfig>(value)
                .map_err(|e| PolicyError::Config(format!("action_head_cfg: {e}")))?
                .action_head_cfg
        } else {
            serde_json::from_value::<Self>(value).map_err(|e| PolicyError::Config(e.to_string()))?
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and parses a `config.json` (see [`from_json_str`](Self::from_json_str)).
    pub fn from_file(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError::io(path, e))?;
        Self::from_json_str(&text).map_err(|e| match e {
            PolicyError::Config(msg) => PolicyError::ConfigFile {
                path: path.to_path_buf(),
                msg,
            },
            other => other,
        })
    }

    /// Checks the constraints upstream does not derive for you.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let dit = &self.diffusion_model_cfg;
        let vl = &self.vl_self_attention_cfg;
        let err = |m: String| Err(PolicyError::Config(m));
        for (name, v) in [
            ("action_dim", self.action_dim),
            ("action_horizon", self.action_horizon),
            ("backbone_embedding_dim", self.backbone_embedding_dim),
            ("hidden_size", self.hidden_size),
            ("input_embedding_dim", self.input_embedding_dim),
            ("max_num_embodiments", self.max_num_embodiments),
            ("max_state_dim", self.max_state_dim),
            ("num_inference_timesteps", self.num_inference_timesteps),
            ("num_timestep_buckets", self.num_timestep_buckets),
            (
                "diffusion_model_cfg.attention_head_dim",
                dit.attention_head_dim,
            ),
            (
                "diffusion_model_cfg.num_attention_heads",
                dit.num_attention_heads,
            ),
            ("diffusion_model_cfg.num_layers", dit.num_layers),
        ] {
            if v == 0 {
                return err(format!("{name} must be > 0"));
            }
        }
        let inner = dit.num_attention_heads * dit.attention_head_dim;
        if self.input_embedding_dim != inner {
            return err(format!(
                "input_embedding_dim ({}) must equal diffusion_model_cfg.num_attention_heads * \
                 attention_head_dim ({} * {} = {inner})",
                self.input_embedding_dim, dit.num_attention_heads, dit.attention_head_dim
            ));
        }
        if !self.input_embedding_dim.is_multiple_of(2) {
            return err(format!(
                "input_embedding_dim ({}) must be even (sinusoidal time encoding)",
                self.input_embedding_dim
            ));
        }
        if let Some(c) = dit.cross_attention_dim
            && c != self.backbone_embedding_dim
        {
            return err(format!(
                "diffusion_model_cfg.cross_attention_dim ({c}) must equal backbone_embedding_dim ({})",
                self.backbone_embedding_dim
            ));
        }
        if dit.output_dim != self.hidden_size {
            return err(format!(
                "diffusion_model_cfg.output_dim ({}) must equal hidden_size ({})",
                dit.output_dim, self.hidden_size
            ));
        }
        if self.use_vlln {
            if vl.num_attention_heads * vl.attention_head_dim != self.backbone_embedding_dim {
                return err(format!(
                    "vl_self_attention_cfg.num_attention_heads * attention_head_dim ({} * {} = {}) \
                     must equal backbone_embedding_dim ({})",
                    vl.num_attention_heads,
                    vl.attention_head_dim,
                    vl.num_attention_heads * vl.attention_head_dim,
                    self.backbone_embedding_dim
                ));
            }
            supported_block(
                "vl_self_attention_cfg",
                vl.positional_embeddings.is_some(),
                &vl.activation_fn,
            )
            .map_err(PolicyError::Config)?;
        }
        if self.add_pos_embed && self.action_horizon > self.max_seq_len {
            return err(format!(
                "action_horizon ({}) exceeds max_seq_len ({}) of the position embedding",
                self.action_horizon, self.max_seq_len
            ));
        }
        if let Some(m) = self.max_action_dim
            && m < self.action_dim
        {
            return err(format!(
                "max_action_dim ({m}) is smaller than action_dim ({})",
                self.action_dim
            ));
        }
        if dit.norm_type != "ada_norm" {
            return err(format!(
                "diffusion_model_cfg.norm_type {:?} is not supported (ada_norm)",
                dit.norm_type
            ));
        }
        supported_block(
            "diffusion_model_cfg",
            dit.positional_embeddings.is_some(),
            &dit.activation_fn,
        )
        .map_err(PolicyError::Config)?;
        if dit.norm_eps.is_nan() || dit.norm_eps <= 0.0 {
            return err("diffusion_model_cfg.norm_eps must be > 0".to_owned());
        }
        if self.noise_s.is_nan() || self.noise_s <= 0.0 {
            return err("noise_s must be > 0".to_owned());
        }
        Ok(())
    }

    /// `1 + F + H`: tokens of the DiT sequence.
    pub fn dit_sequence_len(&self) -> usize {
        1 + self.num_target_vision_tokens + self.action_horizon
    }

    /// Whether DiT block `index` self-attends (odd blocks with interleaving) or cross-attends.
    pub fn block_is_self_attention(&self, index: usize) -> bool {
        self.diffusion_model_cfg.interleave_self_attention && index % 2 == 1
    }

    /// `t_disc = int(t · num_timestep_buckets)` for Euler step `k` of `n`, computed as upstream
    /// (Python float64 `k / n`, then truncation): N=3 gives 0, 333, 666.
    pub fn inference_timestep(&self, k: usize, n: usize) -> i64 {
        let t_cont = k as f64 / n as f64;
        (t_cont * self.num_timestep_buckets as f64) as i64
    }
}
