//! System 2's towers in burn, loading Hugging Face `transformers` checkpoints under their own
//! tensor names: the SigLIP vision tower (`SiglipVisionModel`) and the Qwen3 language model
//! (`Qwen3ForCausalLM`), as GR00T N1.5's Eagle 2.5 backbone uses them.
//!
//! Shapes: images `pixel_values [B, C, H, W]` (NCHW, normalized to [-1, 1]); vision tokens
//! `[B, N, D]` with `N = (H / patch)·(W / patch)` in row-major (y, x) patch order; token ids
//! `[B, T]` with an attention mask `[B, T]` (1 = token, 0 = padding); LM hidden states
//! `[B, T, D]`, logits `[B, T, vocab]`.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::{Module, Param};
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{
    HostTensor, LoadOptions, LoadReport, build_from_tensors, build_random, read_checkpoint_tensors,
    read_checkpoint_tensors_where,
};
use crate::error::PolicyError;
use crate::nn::{
    Attention, Builder, Exported, HF_ATTENTION, Init, LayerNorm, Linear, export_param, gelu_tanh,
    join, swish, transpose,
};

/// Fields of a Hugging Face config that do not change the computation here; accepted and
/// ignored. Any other unknown field is reported as a warning (HF configs grow fields).
const IGNORED_FIELDS: &[&str] = &[
    "architectures",
    "torch_dtype",
    "transformers_version",
    "_name_or_path",
    "attention_dropout",
    "initializer_range",
    "use_cache",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "max_window_layers",
    "use_sliding_window",
    "sliding_window",
    "vision_use_head",
    "projection_dim",
];

fn warn_unknown(kind: &str, extra: &BTreeMap<String, serde_json::Value>) {
    for k in extra
        .keys()
        .filter(|k| !IGNORED_FIELDS.contains(&k.as_str()))
    {
        tracing::warn!(config = kind, field = %k, "unknown config field ignored");
    }
}

/// Reads an HF `config.json`, checks it with `validate` and warns about unknown fields.
fn read_config<T: serde::de::DeserializeOwned>(
    path: &Path,
    kind: &str,
    validate: fn(&T) -> Result<(), String>,
    extra: fn(&T) -> &BTreeMap<String, serde_json::Value>,
) -> Result<T, PolicyError> {
    let text = std::fs::read_to_string(path).map_err(|e| PolicyError::io(path, e))?;
    let c: T = serde_json::from_str(&text).map_err(|e| config_err(path, e.to_string()))?;
    validate(&c).map_err(|m| config_err(path, m))?;
    warn_unknown(kind, extra(&c));
    Ok(c)
}

fn config_err(path: &Path, msg: impl Into<String>) -> PolicyError {
    PolicyError::ConfigFile {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// transformers `SiglipVisionConfig` (the fields that matter; others are ignored with a warning).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiglipVisionConfig {
    /// `siglip_vision_model`.
    #[serde(default)]
    pub model_type: Option<String>,
    /// Token width D.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads (D must be divisible by it).
    pub num_attention_heads: usize,
    /// Input channels (3).
    #[serde(default = "three")]
    pub num_channels: usize,
    /// Image side (px); the tower has `(image_size / patch_size)²` position embeddings.
    pub image_size: usize,
    /// Patch side (px).
    pub patch_size: usize,
    /// LayerNorm epsilon.
    #[serde(default = "ln_eps")]
    pub layer_norm_eps: f64,
    /// Only `gelu_pytorch_tanh` is supported.
    #[serde(default = "gelu_tanh_name")]
    pub hidden_act: String,
    /// Other fields.
    #[serde(flatten, skip_serializing)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

fn three() -> usize {
    3
}
fn ln_eps() -> f64 {
    1e-6
}
fn gelu_tanh_name() -> String {
    "gelu_pytorch_tanh".into()
}

impl SiglipVisionConfig {
    /// Reads and checks `config.json`.
    pub fn from_file(path: &Path) -> Result<Self, PolicyError> {
        read_config(path, "siglip", Self::validate, |c| &c.extra)
    }

    /// Range checks; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.hidden_size == 0 || self.num_attention_heads == 0 {
            return Err("hidden_size and num_attention_heads must be positive".into());
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(format!(
                "hidden_size ({}) must be divisible by num_attention_heads ({})",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.patch_size == 0 || !self.image_size.is_multiple_of(self.patch_size) {
            return Err(format!(
                "image_size ({}) must be a positive multiple of patch_size ({})",
                self.image_size, self.patch_size
            ));
        }
        if self.hidden_act != "gelu_pytorch_tanh" {
            return Err(format!(
                "hidden_act \"{}\" is not supported (gelu_pytorch_tanh is)",
                self.hidden_act
            ));
        }
        Ok(())
    }

    /// Patches per image side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }
}

/// One pre-LN SigLIP encoder layer.
#[derive(Module, Debug)]
pub struct SiglipLayer {
    /// `layer_norm1`.
    pub layer_norm1: LayerNorm,
    /// `self_attn.{q,k,v,out}_proj`.
    pub self_attn: Attention,
    /// `layer_norm2`.
    pub layer_norm2: LayerNorm,
    /// `mlp.fc1`.
    pub fc1: Linear,
    /// `mlp.fc2`.
    pub fc2: Linear,
}

impl SiglipLayer {
    fn new(b: &mut Builder<'_>, name: &str, c: &SiglipVisionConfig) -> Self {
        let d = c.hidden_size;
        let heads = c.num_attention_heads;
        Self {
            layer_norm1: LayerNorm::affine(b, &join(name, "layer_norm1"), d, c.layer_norm_eps),
            self_attn: Attention::named(
                b,
                &join(name, "self_attn"),
                HF_ATTENTION,
                d,
                d,
                heads,
                d / heads,
            ),
            layer_norm2: LayerNorm::affine(b, &join(name, "layer_norm2"), d, c.layer_norm_eps),
            fc1: Linear::new(b, &join(name, "mlp.fc1"), d, c.intermediate_size),
            fc2: Linear::new(b, &join(name, "mlp.fc2"), c.intermediate_size, d),
        }
    }

    fn export(&self, name: &str, out: &mut Exported) -> Result<(), PolicyError> {
        self.layer_norm1.export(&join(name, "layer_norm1"), out)?;
        self.self_attn
            .export_named(&join(name, "self_attn"), HF_ATTENTION, out)?;
        self.layer_norm2.export(&join(name, "layer_norm2"), out)?;
        self.fc1.export(&join(name, "mlp.fc1"), out)?;
        self.fc2.export(&join(name, "mlp.fc2"), out)
    }

    /// `[B, N, D]` → `[B, N, D]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = self.layer_norm1.forward(x.clone());
        let x = x + self.self_attn.forward(h.clone(), h);
        let h = self.layer_norm2.forward(x.clone());
        x + self.fc2.forward(gelu_tanh(self.fc1.forward(h)))
    }
}

/// The multihead-attention pooling head (`vision_model.head`): a learned probe attends over
/// the tokens, then a residual MLP. GR00T does not use it; loaded when present.
#[derive(Module, Debug)]
pub struct SiglipPoolingHead {
    /// `probe [1, 1, D]`.
    pub probe: Param<Tensor<3>>,
    /// `attention` (`in_proj_weight` split into q, k, v; `out_proj`).
    pub attention: Attention,
    /// `layernorm`.
    pub layernorm: LayerNorm,
    /// `mlp.fc1`.
    pub fc1: Linear,
    /// `mlp.fc2`.
    pub fc2: Linear,
}

impl SiglipPoolingHead {
    fn new(b: &mut Builder<'_>, name: &str, c: &SiglipVisionConfig) -> Self {
        let d = c.hidden_size;
        let heads = c.num_attention_heads;
        let probe = b.param(&join(name, "probe"), [1, 1, d], Init::Normal { std: 1.0 });
        // torch MultiheadAttention packs q, k, v as rows of in_proj_weight [3D, D].
        let w = b.source.take(
            &join(name, "attention.in_proj_weight"),
            &[3 * d, d],
            Init::Uniform { fan_in: d },
        );
        let bias = b.source.take(
            &join(name, "attention.in_proj_bias"),
            &[3 * d],
            Init::Constant(0.0),
        );
        let device = b.device.clone();
        let part = |i: usize| {
            let rows = &w[i * d * d..(i + 1) * d * d];
            Linear {
                weight: Param::from_tensor(Tensor::from_data(
                    TensorData::new(transpose(rows, d, d), [d, d]),
                    &device,
                )),
                bias: Some(Param::from_tensor(Tensor::from_data(
                    TensorData::new(bias[i * d..(i + 1) * d].to_vec(), [d]),
                    &device,
                ))),
            }
        };
        let (to_q, to_k, to_v) = (part(0), part(1), part(2));
        Self {
            probe,
            attention: Attention {
                to_q,
                to_k,
                to_v,
                to_out: Linear::new(b, &join(name, "attention.out_proj"), d, d),
                heads,
                head_dim: d / heads,
            },
            layernorm: LayerNorm::affine(b, &join(name, "layernorm"), d, c.layer_norm_eps),
            fc1: Linear::new(b, &join(name, "mlp.fc1"), d, c.intermediate_size),
            fc2: Linear::new(b, &join(name, "mlp.fc2"), c.intermediate_size, d),
        }
    }

    fn export(&self, name: &str, out: &mut Exported) -> Result<(), PolicyError> {
        export_param(out, join(name, "probe"), &self.probe)?;
        // Re-pack q, k, v into torch's in_proj_weight [3D, D] / in_proj_bias [3D].
        let mut parts = Exported::new();
        let att = &self.attention;
        for (i, l) in [&att.to_q, &att.to_k, &att.to_v].into_iter().enumerate() {
            l.export(&format!("p{i}"), &mut parts)?;
        }
        let (mut w, mut bias) = (Vec::new(), Vec::new());
        let mut d = 0;
        for (n, shape, values) in parts {
            if n.ends_with(".weight") {
                d = shape[1];
                w.extend(values);
            } else {
                bias.extend(values);
            }
        }
        out.push((join(name, "attention.in_proj_weight"), vec![3 * d, d], w));
        out.push((join(name, "attention.in_proj_bias"), vec![3 * d], bias));
        att.to_out.export(&join(name, "attention.out_proj"), out)?;
        self.layernorm.export(&join(name, "layernorm"), out)?;
        self.fc1.export(&join(name, "mlp.fc1"), out)?;
        self.fc2.export(&join(name, "mlp.fc2"), out)
    }

    /// `[B, N, D]` → `[B, D]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<2> {
        let [bsz, _, d] = x.dims();
        let probe = self.probe.val().expand([bsz, 1, d]);
        let r = self.attention.forward(probe, x);
        let y = r.clone()
            + self
                .fc2
                .forward(gelu_tanh(self.fc1.forward(self.layernorm.forward(r))));
        y.reshape([bsz, d])
    }
}

/// What the vision tower returns.
#[derive(Debug, Clone)]
pub struct VisionOutput {
    /// Patch-embedding output before position embeddings `[B, N, D]`.
    pub patch_embeds: Tensor<3>,
    /// `[embeddings, after layer 1, …, after layer L]` (before the post-LayerNorm), each
    /// `[B, N, D]` (transformers' `hidden_states` tuple).
    pub hidden_states: Vec<Tensor<3>>,
    /// `post_layernorm(last layer output)` `[B, N, D]`.
    pub last_hidden_state: Tensor<3>,
}

/// SigLIP vision tower (`SiglipVisionModel`, tensors under `vision_model.`).
#[derive(Module, Debug)]
pub struct SiglipVision {
    /// Patch embedding as a linear map of flattened `C·p·p` patches (a stride-p convolution).
    pub patch_embedding: Linear,
    /// `embeddings.position_embedding.weight [N, D]`.
    pub position_embedding: Param<Tensor<2>>,
    /// Encoder layers.
    pub layers: Vec<SiglipLayer>,
    /// `post_layernorm`.
    pub post_layernorm: LayerNorm,
    /// `head` (pooling), when the checkpoint has one.
    pub head: Option<SiglipPoolingHead>,
    /// The configuration.
    #[module(skip)]
    pub config: SiglipVisionConfig,
}

impl SiglipVision {
    pub(crate) fn build(c: &SiglipVisionConfig, with_head: bool, b: &mut Builder<'_>) -> Self {
        let d = c.hidden_size;
        let (ch, p) = (c.num_channels, c.patch_size);
        let k = ch * p * p;
        // Conv2d weight [D, C, p, p] is row-major [D, C·p·p]: the linear weight of a patch
        // flattened in (c, y, x) order.
        let w = b.source.take(
            "vision_model.embeddings.patch_embedding.weight",
            &[d, ch, p, p],
            Init::Uniform { fan_in: k },
        );
        let weight = Param::from_tensor(Tensor::from_data(
            TensorData::new(transpose(&w, d, k), [k, d]),
            &b.device,
        ));
        let bias = b.param(
            "vision_model.embeddings.patch_embedding.bias",
            [d],
            Init::Uniform { fan_in: k },
        );
        let n = c.grid() * c.grid();
        Self {
            patch_embedding: Linear {
                weight,
                bias: Some(bias),
            },
            position_embedding: b.param(
                "vision_model.embeddings.position_embedding.weight",
                [n, d],
                Init::Normal { std: 0.02 },
            ),
            layers: (0..c.num_hidden_layers)
                .map(|i| SiglipLayer::new(b, &format!("vision_model.encoder.layers.{i}"), c))
                .collect(),
            post_layernorm: LayerNorm::affine(
                b,
                "vision_model.post_layernorm",
                d,
                c.layer_norm_eps,
            ),
            head: with_head.then(|| SiglipPoolingHead::new(b, "vision_model.head", c)),
            config: c.clone(),
        }
    }

    /// A randomly initialized tower (with the pooling head when `with_head`).
    pub fn init(
        c: &SiglipVisionConfig,
        with_head: bool,
        device: &Device,
        seed: u64,
    ) -> Result<Self, PolicyError> {
        c.validate().map_err(PolicyError::Config)?;
        Ok(build_random(device, seed, |b| Self::build(c, with_head, b)))
    }

    /// Builds the tower from host tensors (transformers names under `options.prefix`); the
    /// pooling head is built when its tensors are present.
    pub fn from_tensors(
        c: &SiglipVisionConfig,
        device: &Device,
        tensors: &BTreeMap<String, HostTensor>,
        options: &LoadOptions,
        origin: &Path,
    ) -> Result<(Self, LoadReport), PolicyError> {
        c.validate().map_err(|m| config_err(origin, m))?;
        let with_head = tensors.contains_key(&format!("{}vision_model.head.probe", options.prefix));
        build_from_tensors(device, tensors, options, origin, &|_| false, |b| {
            Self::build(c, with_head, b)
        })
    }

    /// Loads a checkpoint directory (`config.json` + weights, single or sharded).
    pub fn load(
        dir: &Path,
        device: &Device,
        options: &LoadOptions,
    ) -> Result<(Self, LoadReport), PolicyError> {
        let c = SiglipVisionConfig::from_file(&dir.join("config.json"))?;
        let tensors = read_checkpoint_tensors(dir, &options.prefix)?;
        Self::from_tensors(&c, device, &tensors, options, dir)
    }

    /// Every tensor under transformers' names and layout (`vision_model.*`).
    pub(crate) fn export(&self, out: &mut Exported) -> Result<(), PolicyError> {
        let c = &self.config;
        let mut patch = Exported::new();
        self.patch_embedding
            .export("vision_model.embeddings.patch_embedding", &mut patch)?;
        for (name, shape, values) in patch {
            let shape = if name.ends_with(".weight") {
                vec![shape[0], c.num_channels, c.patch_size, c.patch_size]
            } else {
                shape
            };
            out.push((name, shape, values));
        }
        export_param(
            out,
            "vision_model.embeddings.position_embedding.weight".into(),
            &self.position_embedding,
        )?;
        for (i, l) in self.layers.iter().enumerate() {
            l.export(&format!("vision_model.encoder.layers.{i}"), out)?;
        }
        self.post_layernorm
            .export("vision_model.post_layernorm", out)?;
        if let Some(h) = &self.head {
            h.export("vision_model.head", out)?;
        }
        Ok(())
    }

    /// `pixel_values [B, C, H, W]` → tokens `[B, N, C·p·p]` in row-major patch order.
    fn patchify(&self, pixels: Tensor<4>) -> Result<Tensor<3>, PolicyError> {
        let c = &self.config;
        let [b, ch, h, w] = pixels.dims();
        let p = c.patch_size;
        if ch != c.num_channels || h != c.image_size || w != c.image_size {
            return Err(PolicyError::input(
                "pixel_values",
                format!(
                    "shape {:?}, expected [B, {}, {}, {}] [B, C, H, W]",
                    pixels.dims(),
                    c.num_channels,
                    c.image_size,
                    c.image_size
                ),
            ));
        }
        let (gh, gw) = (h / p, w / p);
        Ok(pixels
            .reshape([b * ch, gh, p, gw, p])
            .swap_dims(2, 3) // [B·C, gh, gw, p, p]
            .reshape([b, ch, gh * gw, p * p])
            .swap_dims(1, 2) // [B, N, C, p·p]
            .reshape([b, gh * gw, ch * p * p]))
    }

    /// Runs the tower on `pixel_values [B, C, H, W]`.
    pub fn forward(&self, pixels: Tensor<4>) -> Result<VisionOutput, PolicyError> {
        let patches = self.patchify(pixels)?;
        let patch_embeds = self.patch_embedding.forward(patches);
        let mut x = patch_embeds.clone() + self.position_embedding.val().unsqueeze::<3>();
        let mut hidden_states = vec![x.clone()];
        for layer in &self.layers {
            x = layer.forward(x);
            hidden_states.push(x.clone());
        }
        Ok(VisionOutput {
            patch_embeds,
            hidden_states,
            last_hidden_state: self.post_layernorm.forward(x),
        })
    }

    /// The pooling head's output `[B, D]` for a `last_hidden_state`, if the tower has a head.
    pub fn pool(&self, last_hidden_state: Tensor<3>) -> Option<Tensor<2>> {
        self.head.as_ref().map(|h| h.forward(last_hidden_state))
    }
}

/// transformers `Qwen3Config` (the fields that matter; others are ignored with a warning).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Qwen3Config {
    /// `qwen3`.
    #[serde(default)]
    pub model_type: Option<String>,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Token width D.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Decoder layers in the checkpoint.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention; divides `num_attention_heads`).
    pub num_key_value_heads: usize,
    /// Width of one head (independent of `hidden_size / heads`).
    pub head_dim: usize,
    /// RMSNorm epsilon.
    #[serde(default = "ln_eps")]
    pub rms_norm_eps: f64,
    /// RoPE base θ.
    #[serde(default = "rope_theta")]
    pub rope_theta: f64,
    /// Only `null` (plain RoPE) is supported.
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    /// `lm_head` shares `embed_tokens`' weight (then it is absent from the checkpoint).
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Biases on q/k/v/o (Qwen3: false).
    #[serde(default)]
    pub attention_bias: bool,
    /// Only `silu` is supported.
    #[serde(default = "silu_name")]
    pub hidden_act: String,
    /// Longest sequence (positions).
    #[serde(default = "max_pos")]
    pub max_position_embeddings: usize,
    /// Other fields.
    #[serde(flatten, skip_serializing)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

fn rope_theta() -> f64 {
    1_000_000.0
}
fn silu_name() -> String {
    "silu".into()
}
fn max_pos() -> usize {
    40960
}

impl Qwen3Config {
    /// Reads and checks `config.json`.
    pub fn from_file(path: &Path) -> Result<Self, PolicyError> {
        read_config(path, "qwen3", Self::validate, |c| &c.extra)
    }

    /// Layers kept for `select_layer` (all when `None`).
    pub fn layers_kept(&self, select_layer: Option<usize>) -> Result<usize, String> {
        let n = select_layer.unwrap_or(self.num_hidden_layers);
        if n > self.num_hidden_layers {
            return Err(format!(
                "select_layer {n} exceeds num_hidden_layers {}",
                self.num_hidden_layers
            ));
        }
        Ok(n)
    }

    /// Whether tensor `name` (without prefix) belongs to what a cut after `n` layers drops:
    /// layers `n..` and, when anything is cut, the LM head.
    fn cut_away(&self, name: &str, n: usize) -> bool {
        if let Some(l) = name.strip_prefix("model.layers.") {
            return l
                .split('.')
                .next()
                .and_then(|i| i.parse::<usize>().ok())
                .is_some_and(|i| i >= n);
        }
        n < self.num_hidden_layers && name.starts_with("lm_head.")
    }

    /// Range checks; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.num_key_value_heads == 0
            || !self
                .num_attention_heads
                .is_multiple_of(self.num_key_value_heads)
        {
            return Err(format!(
                "num_attention_heads ({}) must be a positive multiple of num_key_value_heads ({})",
                self.num_attention_heads, self.num_key_value_heads
            ));
        }
        if self.head_dim == 0 || !self.head_dim.is_multiple_of(2) {
            return Err(format!(
                "head_dim ({}) must be even and positive",
                self.head_dim
            ));
        }
        if self.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            return Err("rope_scaling is not supported (null only)".into());
        }
        if self.hidden_act != "silu" {
            return Err(format!(
                "hidden_act \"{}\" is not supported (silu is)",
                self.hidden_act
            ));
        }
        if self.attention_bias {
            return Err("attention_bias = true is not supported (Qwen3 has none)".into());
        }
        Ok(())
    }
}

/// Qwen3 RMSNorm: `w · x / sqrt(mean(x²) + eps)` over the last dimension.
#[derive(Module, Debug)]
pub struct RmsNorm {
    /// `[dim]`.
    pub weight: Param<Tensor<1>>,
    /// Epsilon.
    pub eps: f64,
}

impl RmsNorm {
    fn new(b: &mut Builder<'_>, name: &str, dim: usize, eps: f64) -> Self {
        Self {
            weight: b.param(&join(name, "weight"), [dim], Init::Constant(1.0)),
            eps,
        }
    }

    fn export(&self, name: &str, out: &mut Exported) -> Result<(), PolicyError> {
        export_param(out, join(name, "weight"), &self.weight)
    }

    /// `[..., dim]` → `[..., dim]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let ms = x.clone().square().mean_dim(D - 1);
        x / (ms + self.eps).sqrt() * self.weight.val().unsqueeze::<D>()
    }
}

/// One Qwen3 decoder layer.
#[derive(Module, Debug)]
pub struct Qwen3Layer {
    /// `input_layernorm`.
    pub input_layernorm: RmsNorm,
    /// `self_attn.q_proj` `D → heads·hd`.
    pub q_proj: Linear,
    /// `self_attn.k_proj` `D → kv_heads·hd`.
    pub k_proj: Linear,
    /// `self_attn.v_proj` `D → kv_heads·hd`.
    pub v_proj: Linear,
    /// `self_attn.o_proj` `heads·hd → D`.
    pub o_proj: Linear,
    /// `self_attn.q_norm` (per head, `[hd]`).
    pub q_norm: RmsNorm,
    /// `self_attn.k_norm` (per head, `[hd]`).
    pub k_norm: RmsNorm,
    /// `post_attention_layernorm`.
    pub post_attention_layernorm: RmsNorm,
    /// `mlp.gate_proj`.
    pub gate_proj: Linear,
    /// `mlp.up_proj`.
    pub up_proj: Linear,
    /// `mlp.down_proj`.
    pub down_proj: Linear,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
}

/// Rotary tables for positions `0..T`: `cos`, `sin` `[1, 1, T, hd]` (halves repeated).
#[derive(Debug, Clone)]
pub struct Rope {
    cos: Tensor<4>,
    /// `[-sin, sin]` over the two halves of the head: `rotate_half(x)·sin` is
    /// `[x₂, x₁]·[-sin, sin]` (the same products, no negation pass).
    sin_signed: Tensor<4>,
}

impl Rope {
    /// Tables for `t` positions, head width `hd`, base `theta` (computed like transformers:
    /// `inv_freq_i = θ^(-2i/hd)` in float32, angles `pos · inv_freq`).
    pub fn new(t: usize, hd: usize, theta: f64, device: &Device) -> Self {
        let half = hd / 2;
        let inv: Vec<f32> = (0..half)
            .map(|i| (1.0 / theta.powf((2 * i) as f64 / hd as f64)) as f32)
            .collect();
        let mut cos = Vec::with_capacity(t * hd);
        let mut sin = Vec::with_capacity(t * hd);
        for p in 0..t {
            for sign in [-1.0f32, 1.0] {
                for f in &inv {
                    let a = p as f32 * f;
                    cos.push(a.cos());
                    sin.push(sign * a.sin());
                }
            }
        }
        Self {
            cos: Tensor::from_data(TensorData::new(cos, [1, 1, t, hd]), device),
            sin_signed: Tensor::from_data(TensorData::new(sin, [1, 1, t, hd]), device),
        }
    }

    /// `x [B, h, T, hd]` → `x·cos + rotate_half(x)·sin`, where `rotate_half(x) = [-x₂, x₁]`.
    pub fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, t, hd] = x.dims();
        let half = hd / 2;
        let x1 = x.clone().slice_dim(3, 0..half);
        let x2 = x.clone().slice_dim(3, half..hd);
        let swapped = Tensor::cat(vec![x2, x1], 3);
        x * self.cos.clone().slice_dim(2, 0..t)
            + swapped * self.sin_signed.clone().slice_dim(2, 0..t)
    }
}

impl Qwen3Layer {
    fn new(b: &mut Builder<'_>, name: &str, c: &Qwen3Config) -> Self {
        let (d, hd) = (c.hidden_size, c.head_dim);
        let (h, kv) = (c.num_attention_heads, c.num_key_value_heads);
        let a = join(name, "self_attn");
        let m = join(name, "mlp");
        Self {
            input_layernorm: RmsNorm::new(b, &join(name, "input_layernorm"), d, c.rms_norm_eps),
            q_proj: Linear::no_bias(b, &join(&a, "q_proj"), d, h * hd),
            k_proj: Linear::no_bias(b, &join(&a, "k_proj"), d, kv * hd),
            v_proj: Linear::no_bias(b, &join(&a, "v_proj"), d, kv * hd),
            o_proj: Linear::no_bias(b, &join(&a, "o_proj"), h * hd, d),
            q_norm: RmsNorm::new(b, &join(&a, "q_norm"), hd, c.rms_norm_eps),
            k_norm: RmsNorm::new(b, &join(&a, "k_norm"), hd, c.rms_norm_eps),
            post_attention_layernorm: RmsNorm::new(
                b,
                &join(name, "post_attention_layernorm"),
                d,
                c.rms_norm_eps,
            ),
            gate_proj: Linear::no_bias(b, &join(&m, "gate_proj"), d, c.intermediate_size),
            up_proj: Linear::no_bias(b, &join(&m, "up_proj"), d, c.intermediate_size),
            down_proj: Linear::no_bias(b, &join(&m, "down_proj"), c.intermediate_size, d),
            heads: h,
            kv_heads: kv,
            head_dim: hd,
        }
    }

    fn export(&self, name: &str, out: &mut Exported) -> Result<(), PolicyError> {
        let a = join(name, "self_attn");
        let m = join(name, "mlp");
        self.input_layernorm
            .export(&join(name, "input_layernorm"), out)?;
        self.q_proj.export(&join(&a, "q_proj"), out)?;
        self.k_proj.export(&join(&a, "k_proj"), out)?;
        self.v_proj.export(&join(&a, "v_proj"), out)?;
        self.o_proj.export(&join(&a, "o_proj"), out)?;
        self.q_norm.export(&join(&a, "q_norm"), out)?;
        self.k_norm.export(&join(&a, "k_norm"), out)?;
        self.post_attention_layernorm
            .export(&join(name, "post_attention_layernorm"), out)?;
        self.gate_proj.export(&join(&m, "gate_proj"), out)?;
        self.up_proj.export(&join(&m, "up_proj"), out)?;
        self.down_proj.export(&join(&m, "down_proj"), out)
    }

    /// `x [B, T, D]` with an additive attention bias `[B, heads, T, T]` → `[B, T, D]`.
    pub fn forward(&self, x: Tensor<3>, rope: &Rope, bias: &Tensor<4>) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let hd = self.head_dim;
        let h = self.input_layernorm.forward(x.clone());
        let split = |y: Tensor<3>, n: usize| y.reshape([b, t, n, hd]).swap_dims(1, 2);
        let q = rope.apply(
            self.q_norm
                .forward(split(self.q_proj.forward(h.clone()), self.heads)),
        );
        let k = rope.apply(
            self.k_norm
                .forward(split(self.k_proj.forward(h.clone()), self.kv_heads)),
        );
        let v = split(self.v_proj.forward(h), self.kv_heads);
        let rep = self.heads / self.kv_heads;
        let repeat = |y: Tensor<4>| {
            if rep == 1 {
                y
            } else {
                y.unsqueeze_dim::<5>(2)
                    .expand([b, self.kv_heads, rep, t, hd])
                    .reshape([b, self.heads, t, hd])
            }
        };
        let o = attention(
            q,
            repeat(k),
            repeat(v),
            None,
            Some(bias.clone()),
            AttentionModuleOptions::default(),
        );
        let o = o.swap_dims(1, 2).reshape([b, t, self.heads * hd]);
        let x = x + self.o_proj.forward(o);
        let h = self.post_attention_layernorm.forward(x.clone());
        x + self
            .down_proj
            .forward(swish(self.gate_proj.forward(h.clone())) * self.up_proj.forward(h))
    }
}

/// What the language model returns.
#[derive(Debug, Clone)]
pub struct LmOutput {
    /// `[embeddings, after layer 1, …, after layer n-1, norm(after layer n)]`, each
    /// `[B, T, D]`, where `n` is the number of layers run — transformers' `hidden_states`
    /// tuple (whose last entry is after the final norm).
    pub hidden_states: Vec<Tensor<3>>,
    /// Output of the last layer run, before the final norm `[B, T, D]`.
    pub last_prenorm: Tensor<3>,
    /// `[B, T, vocab]`, when the model has an LM head.
    pub logits: Option<Tensor<3>>,
}

/// Qwen3 language model (`Qwen3ForCausalLM` names: `model.*`, `lm_head`), possibly truncated
/// to its first `layers.len()` layers (GR00T's `select_layer`): the layers after the cut are
/// neither loaded nor run.
#[derive(Module, Debug)]
pub struct Qwen3 {
    /// `model.embed_tokens.weight [vocab, D]`.
    pub embed_tokens: Param<Tensor<2>>,
    /// The decoder layers kept.
    pub layers: Vec<Qwen3Layer>,
    /// `model.norm`.
    pub norm: RmsNorm,
    /// `lm_head` (`[D, vocab]`); `None` when truncated, or tied (then `embed_tokens` is used).
    pub lm_head: Option<Linear>,
    /// Whether logits come from `embed_tokens` (tied embeddings).
    pub tied: bool,
    /// The configuration.
    #[module(skip)]
    pub config: Qwen3Config,
}

impl Qwen3 {
    pub(crate) fn build(
        c: &Qwen3Config,
        layers: usize,
        with_lm_head: bool,
        b: &mut Builder<'_>,
    ) -> Self {
        let d = c.hidden_size;
        let tied = with_lm_head && c.tie_word_embeddings;
        Self {
            embed_tokens: b.param(
                "model.embed_tokens.weight",
                [c.vocab_size, d],
                Init::Normal { std: 0.02 },
            ),
            layers: (0..layers)
                .map(|i| Qwen3Layer::new(b, &format!("model.layers.{i}"), c))
                .collect(),
            norm: RmsNorm::new(b, "model.norm", d, c.rms_norm_eps),
            lm_head: (with_lm_head && !tied)
                .then(|| Linear::no_bias(b, "lm_head", d, c.vocab_size)),
            tied,
            config: c.clone(),
        }
    }

    /// A randomly initialized model with `layers` layers (≤ `num_hidden_layers`).
    pub fn init(
        c: &Qwen3Config,
        layers: usize,
        with_lm_head: bool,
        device: &Device,
        seed: u64,
    ) -> Result<Self, PolicyError> {
        c.validate().map_err(PolicyError::Config)?;
        Ok(build_random(device, seed, |b| {
            Self::build(c, layers.min(c.num_hidden_layers), with_lm_head, b)
        }))
    }

    /// Builds the model from host tensors, keeping the first `select_layer` layers
    /// (all when `None`); with a cut, the LM head and the layers after the cut are skipped
    /// (not reported as unexpected).
    pub fn from_tensors(
        c: &Qwen3Config,
        select_layer: Option<usize>,
        device: &Device,
        tensors: &BTreeMap<String, HostTensor>,
        options: &LoadOptions,
        origin: &Path,
    ) -> Result<(Self, LoadReport), PolicyError> {
        c.validate().map_err(|m| config_err(origin, m))?;
        let n = c
            .layers_kept(select_layer)
            .map_err(|m| config_err(origin, m))?;
        let skip = |k: &str| {
            k.strip_prefix(options.prefix.as_str())
                .is_some_and(|rest| c.cut_away(rest, n))
        };
        build_from_tensors(device, tensors, options, origin, &skip, |b| {
            Self::build(c, n, n == c.num_hidden_layers, b)
        })
    }

    /// Loads a checkpoint directory (`config.json` + weights), truncated at `select_layer`:
    /// the tensors after the cut are not read (nor the shards holding only them).
    pub fn load(
        dir: &Path,
        select_layer: Option<usize>,
        device: &Device,
        options: &LoadOptions,
    ) -> Result<(Self, LoadReport), PolicyError> {
        let path = dir.join("config.json");
        let c = Qwen3Config::from_file(&path)?;
        let n = c
            .layers_kept(select_layer)
            .map_err(|m| config_err(&path, m))?;
        let tensors = read_checkpoint_tensors_where(dir, &|k| {
            k.strip_prefix(options.prefix.as_str())
                .is_some_and(|rest| !c.cut_away(rest, n))
        })?;
        Self::from_tensors(&c, select_layer, device, &tensors, options, dir)
    }

    /// Every tensor under transformers' names and layout (`model.*`, `lm_head.*`).
    pub(crate) fn export(&self, out: &mut Exported) -> Result<(), PolicyError> {
        export_param(out, "model.embed_tokens.weight".into(), &self.embed_tokens)?;
        for (i, l) in self.layers.iter().enumerate() {
            l.export(&format!("model.layers.{i}"), out)?;
        }
        self.norm.export("model.norm", out)?;
        if let Some(h) = &self.lm_head {
            h.export("lm_head", out)?;
        }
        Ok(())
    }

    /// Token embeddings `[B, T, D]` of `ids` `[B, T]`.
    pub fn embed(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        let [b, t] = ids.dims();
        let d = self.config.hidden_size;
        self.embed_tokens
            .val()
            .select(0, ids.reshape([b * t]))
            .reshape([b, t, d])
    }

    /// Runs the kept layers on embeddings `[B, T, D]` (e.g. with image embeddings spliced in)
    /// with `mask [B, T]` (1 = token, 0 = padding; causal and key-padding masking, positions
    /// `0..T` for every row as transformers does without `position_ids`).
    pub fn forward_embeds(
        &self,
        x: Tensor<3>,
        mask: &[Vec<bool>],
    ) -> Result<LmOutput, PolicyError> {
        let [b, t, _] = x.dims();
        if mask.len() != b || mask.iter().any(|r| r.len() != t) {
            return Err(PolicyError::input(
                "attention_mask",
                format!("expected [{b}, {t}] to match the tokens"),
            ));
        }
        let device = x.device();
        let c = &self.config;
        let rope = Rope::new(t, c.head_dim, c.rope_theta, &device);
        // Additive bias: 0 where query i may attend key j (j ≤ i and j is a token), the float32
        // minimum elsewhere (finite, like transformers, so rows with no visible key stay finite).
        let mut bias = Vec::with_capacity(b * t * t);
        for row in mask {
            for i in 0..t {
                for (j, &valid) in row.iter().enumerate() {
                    bias.push(if j <= i && valid { 0.0 } else { f32::MIN });
                }
            }
        }
        let heads = c.num_attention_heads;
        let bias = Tensor::<4>::from_data(TensorData::new(bias, [b, 1, t, t]), &device);
        // flex's attention broadcasts a bias over heads in place; other backends get it at full
        // size (an expanded view, which flex would copy out per layer).
        let bias = if device == Device::flex() {
            bias
        } else {
            bias.expand([b, heads, t, t])
        };
        let mut hidden_states = vec![x.clone()];
        let mut x = x;
        for layer in &self.layers {
            x = layer.forward(x, &rope, &bias);
            hidden_states.push(x.clone());
        }
        let normed = self.norm.forward(x.clone());
        if let Some(last) = hidden_states.last_mut() {
            *last = normed.clone();
        }
        let logits = if self.tied {
            Some(normed.matmul(self.embed_tokens.val().transpose().unsqueeze::<3>()))
        } else {
            self.lm_head.as_ref().map(|h| h.forward(normed))
        };
        Ok(LmOutput {
            hidden_states,
            last_prenorm: x,
            logits,
        })
    }

    /// [`embed`](Self::embed) then [`forward_embeds`](Self::forward_embeds).
    pub fn forward(
        &self,
        ids: Tensor<2, Int>,
        mask: &[Vec<bool>],
    ) -> Result<LmOutput, PolicyError> {
        let x = self.embed(ids);
        self.forward_embeds(x, mask)
    }
}
