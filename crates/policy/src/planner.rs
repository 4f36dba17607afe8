//! System 2, the planner: camera images + an instruction → plan tokens for System 1, laid out
//! like GR00T N1.5's Eagle backbone.
//!
//! `pixels [B·V, 3, H, W]` → SigLIP tower → `[B·V, N, Dv]` → optional pixel shuffle (`s×s`
//! neighbouring patches concatenated: `[B·V, N/s², s²·Dv]`) → connector (Linear, or Eagle's
//! LayerNorm–Linear–GELU–Linear MLP) → image embeddings `[B, V·N/s², Dl]` spliced into the
//! token embeddings at the image placeholder positions → Qwen3 LM run up to `select_layer`
//! (final RMSNorm applied, as transformers' last `hidden_states` entry) → optional
//! `eagle_linear` projection → plan tokens `[B, S, Dp]` with their attention and image masks.
//!
//! The `vlln` LayerNorm and the self-attention adapter that GR00T applies to these features
//! live in the action head (`action_head.vlln`, `action_head.vl_self_attention`), exactly as
//! upstream, so a plan is the backbone's output and GR00T checkpoints split the same way.
//!
//! An optional subgoal head maps the plan tokens to a small vector (for the tasks here: where the
//! named object is and where it must go, `[x, y, z]` twice, metres in the robot base frame),
//! trained with an auxiliary loss so a plan is inspectable and drawable. It pools the tokens by
//! their masked mean, or (`subgoal_queries = n > 0`) by `n` learned attention queries, so that
//! the head can read one image token (the named object's) instead of an average over all.
//!
//! Checkpoint layout (names as in Eagle / GR00T's `backbone.eagle_model.*`, without that prefix
//! by default): `vision_model.vision_model.*`, `language_model.model.*`, `mlp1.{0,1,3}.*`,
//! `eagle_linear.*`, `subgoal_head.{fc1,fc2}.*` (+ `subgoal_head.queries` `[n, Dp]`).

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::{Module, Param};
use burn::tensor::activation::{gelu, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{
    HostTensor, LoadOptions, LoadReport, build_from_tensors, build_random, read_safetensors,
    write_safetensors,
};
use crate::error::PolicyError;
use crate::nn::{Builder, Exported, Init, LayerNorm, Linear, export_param, join};
use crate::text::{Prompt, PromptConfig, PromptEncoder};
use crate::vlm::{Qwen3, Qwen3Config, SiglipVision, SiglipVisionConfig};

/// Files of a planner checkpoint directory.
pub const PLANNER_CONFIG_FILE: &str = "planner.json";
/// Weights.
pub const PLANNER_WEIGHTS_FILE: &str = "planner.safetensors";
/// Tokenizer.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// The connector between the towers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorKind {
    /// One Linear `s²·Dv → Dl` (`mlp1.0`), as GR00T N1.5.
    Linear,
    /// LayerNorm `mlp1.0`, Linear `mlp1.1`, GELU, Linear `mlp1.3` (Eagle 2 / GR00T N1).
    Mlp,
}

/// The planner's architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannerConfig {
    /// The vision tower (transformers `SiglipVisionConfig` fields).
    pub vision: SiglipVisionConfig,
    /// The language model (transformers `Qwen3Config` fields).
    pub text: Qwen3Config,
    /// LM layers run (and loaded); the plan is the final-normed output of layer
    /// `select_layer` (GR00T N1.5: 12 of Qwen3-1.7B's 28).
    pub select_layer: usize,
    /// Pixel-shuffle factor `s` (1 = none): `s×s` patches become one token.
    #[serde(default = "one")]
    pub pixel_shuffle: usize,
    /// The connector.
    pub connector: ConnectorKind,
    /// `eagle_linear`: project the LM width to this plan width (none = plan width is the LM's).
    #[serde(default)]
    pub project_to_dim: Option<usize>,
    /// Camera views per observation `V`.
    pub num_views: usize,
    /// Width of the subgoal head's output (0 = no head).
    #[serde(default)]
    pub subgoal_dim: usize,
    /// How the subgoal head pools the plan tokens: 0 = masked mean; `n > 0` = `n` learned
    /// queries, each a softmax-weighted sum of the real tokens (scores `q·t/√Dp`), concatenated
    /// `[B, n·Dp]` before `fc1`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub subgoal_queries: usize,
    /// Prompt layout.
    pub prompt: PromptConfig,
}

fn one() -> usize {
    1
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl PlannerConfig {
    /// Reads and checks `planner.json`.
    pub fn from_file(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError::io(path, e))?;
        let c: Self = serde_json::from_str(&text).map_err(|e| PolicyError::ConfigFile {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        c.validate().map_err(|msg| PolicyError::ConfigFile {
            path: path.to_path_buf(),
            msg,
        })?;
        Ok(c)
    }

    /// Range checks; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        self.vision.validate().map_err(|m| format!("vision: {m}"))?;
        self.text.validate().map_err(|m| format!("text: {m}"))?;
        self.text
            .layers_kept(Some(self.select_layer))
            .map_err(|m| format!("select_layer: {m}"))?;
        if self.select_layer == 0 {
            return Err("select_layer must be at least 1".into());
        }
        let s = self.pixel_shuffle;
        if s == 0 || !self.vision.grid().is_multiple_of(s) {
            return Err(format!(
                "pixel_shuffle ({s}) must divide the patch grid ({})",
                self.vision.grid()
            ));
        }
        if self.num_views == 0 {
            return Err("num_views must be at least 1".into());
        }
        if self.project_to_dim == Some(0) {
            return Err("project_to_dim must be positive".into());
        }
        Ok(())
    }

    /// Image tokens per view after the pixel shuffle.
    pub fn tokens_per_view(&self) -> usize {
        let g = self.vision.grid() / self.pixel_shuffle;
        g * g
    }

    /// Plan tokens `S` (image tokens of all views + text budget).
    pub fn plan_tokens(&self) -> usize {
        self.num_views * self.tokens_per_view() + self.prompt.max_text_tokens
    }

    /// Plan width `Dp`.
    pub fn plan_dim(&self) -> usize {
        self.project_to_dim.unwrap_or(self.text.hidden_size)
    }
}

/// `mlp1`: vision features (after pixel shuffle) → LM width.
#[derive(Module, Debug)]
pub struct Connector {
    /// `mlp1.0` (MLP kind only).
    pub norm: Option<LayerNorm>,
    /// `mlp1.0` (Linear kind) or `mlp1.1` (MLP kind).
    pub fc1: Linear,
    /// `mlp1.3` (MLP kind only).
    pub fc2: Option<Linear>,
}

impl Connector {
    fn new(b: &mut Builder<'_>, kind: ConnectorKind, d_in: usize, d_out: usize) -> Self {
        match kind {
            ConnectorKind::Linear => Self {
                norm: None,
                fc1: Linear::new(b, "mlp1.0", d_in, d_out),
                fc2: None,
            },
            ConnectorKind::Mlp => Self {
                norm: Some(LayerNorm::affine(b, "mlp1.0", d_in, 1e-5)),
                fc1: Linear::new(b, "mlp1.1", d_in, d_out),
                fc2: Some(Linear::new(b, "mlp1.3", d_out, d_out)),
            },
        }
    }

    /// `[B, N, d_in]` → `[B, N, d_out]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let x = match &self.norm {
            Some(n) => n.forward(x),
            None => x,
        };
        let x = self.fc1.forward(x);
        match &self.fc2 {
            Some(f) => f.forward(gelu(x)),
            None => x,
        }
    }

    fn export(&self, out: &mut Exported) -> Result<(), PolicyError> {
        match (&self.norm, &self.fc2) {
            (Some(n), Some(f)) => {
                n.export("mlp1.0", out)?;
                self.fc1.export("mlp1.1", out)?;
                f.export("mlp1.3", out)
            }
            _ => self.fc1.export("mlp1.0", out),
        }
    }
}

/// The subgoal head: pooled plan tokens (masked mean, or learned attention queries) → Linear
/// → GELU → Linear.
#[derive(Module, Debug)]
pub struct SubgoalHead {
    /// `subgoal_head.queries` `[n, Dp]` (attention pooling only).
    pub queries: Option<Param<Tensor<2>>>,
    /// `subgoal_head.fc1` `max(n, 1)·Dp → Dp`.
    pub fc1: Linear,
    /// `subgoal_head.fc2` `Dp → subgoal_dim`.
    pub fc2: Linear,
}

/// What the planner produces for a batch.
#[derive(Debug, Clone)]
pub struct PlanOutput {
    /// Plan tokens `[B, S, Dp]` (System 1's `backbone_features`).
    pub tokens: Tensor<3>,
    /// `[B][S]`: 1 = a real token, 0 = padding.
    pub attention_mask: Vec<Vec<bool>>,
    /// `[B][S]`: 1 = an image token.
    pub image_mask: Vec<Vec<bool>>,
    /// Subgoal `[B, subgoal_dim]` when the planner has a subgoal head.
    pub subgoal: Option<Tensor<2>>,
    /// `[B]`: whether the prompt's instruction was cut to fit.
    pub truncated: Vec<bool>,
}

/// The planner (a burn module).
#[derive(Module, Debug)]
pub struct Planner {
    /// SigLIP tower (`vision_model.`).
    pub vision: SiglipVision,
    /// `mlp1`.
    pub connector: Connector,
    /// Qwen3 LM cut at `select_layer` (`language_model.`).
    pub language: Qwen3,
    /// `eagle_linear`.
    pub projection: Option<Linear>,
    /// `subgoal_head`.
    pub subgoal_head: Option<SubgoalHead>,
    /// The architecture.
    #[module(skip)]
    pub config: PlannerConfig,
}

impl Planner {
    fn build(c: &PlannerConfig, b: &mut Builder<'_>) -> Self {
        let dv = c.vision.hidden_size * c.pixel_shuffle * c.pixel_shuffle;
        let dl = c.text.hidden_size;
        let dp = c.plan_dim();
        let vision = b.scoped("vision_model.", |b| {
            SiglipVision::build(&c.vision, false, b)
        });
        let connector = Connector::new(b, c.connector, dv, dl);
        let language = b.scoped("language_model.", |b| {
            Qwen3::build(&c.text, c.select_layer, false, b)
        });
        let projection = c
            .project_to_dim
            .map(|d| Linear::new(b, "eagle_linear", dl, d));
        let nq = c.subgoal_queries;
        let subgoal_head = (c.subgoal_dim > 0).then(|| SubgoalHead {
            queries: (nq > 0)
                .then(|| b.param("subgoal_head.queries", [nq, dp], Init::Normal { std: 0.02 })),
            fc1: Linear::new(b, "subgoal_head.fc1", nq.max(1) * dp, dp),
            fc2: Linear::new(b, "subgoal_head.fc2", dp, c.subgoal_dim),
        });
        Self {
            vision,
            connector,
            language,
            projection,
            subgoal_head,
            config: c.clone(),
        }
    }

    /// A randomly initialized planner (deterministic in `seed`).
    pub fn init(c: &PlannerConfig, device: &Device, seed: u64) -> Result<Self, PolicyError> {
        c.validate().map_err(PolicyError::Config)?;
        Ok(build_random(device, seed, |b| Self::build(c, b)))
    }

    /// Builds the planner from host tensors named `options.prefix` + the names above (use
    /// `backbone.eagle_model.` for a GR00T checkpoint). The LM's layers after `select_layer`,
    /// its `lm_head` and the SigLIP pooling head are not used and not reported as unexpected.
    pub fn from_tensors(
        c: &PlannerConfig,
        device: &Device,
        tensors: &BTreeMap<String, HostTensor>,
        options: &LoadOptions,
        origin: &Path,
    ) -> Result<(Self, LoadReport), PolicyError> {
        c.validate().map_err(|msg| PolicyError::ConfigFile {
            path: origin.to_path_buf(),
            msg,
        })?;
        let n = c.select_layer;
        let skip = |k: &str| {
            let Some(rest) = k.strip_prefix(options.prefix.as_str()) else {
                return false;
            };
            if rest.starts_with("vision_model.vision_model.head.") {
                return true;
            }
            let Some(lm) = rest.strip_prefix("language_model.") else {
                return false;
            };
            if lm.starts_with("lm_head.") {
                return true;
            }
            lm.strip_prefix("model.layers.")
                .and_then(|l| l.split('.').next())
                .and_then(|i| i.parse::<usize>().ok())
                .is_some_and(|i| i >= n)
        };
        build_from_tensors(device, tensors, options, origin, &skip, |b| {
            Self::build(c, b)
        })
    }

    /// Every tensor (float32, names as documented above with `prefix`).
    pub fn to_tensors(&self, prefix: &str) -> Result<BTreeMap<String, HostTensor>, PolicyError> {
        let mut out = Exported::new();
        let mut vision = Exported::new();
        self.vision.export(&mut vision)?;
        out.extend(
            vision
                .into_iter()
                .map(|(n, s, v)| (format!("vision_model.{n}"), s, v)),
        );
        self.connector.export(&mut out)?;
        let mut lm = Exported::new();
        self.language.export(&mut lm)?;
        out.extend(
            lm.into_iter()
                .map(|(n, s, v)| (format!("language_model.{n}"), s, v)),
        );
        if let Some(p) = &self.projection {
            p.export("eagle_linear", &mut out)?;
        }
        if let Some(h) = &self.subgoal_head {
            if let Some(q) = &h.queries {
                export_param(&mut out, join("subgoal_head", "queries"), q)?;
            }
            h.fc1.export(&join("subgoal_head", "fc1"), &mut out)?;
            h.fc2.export(&join("subgoal_head", "fc2"), &mut out)?;
        }
        Ok(out
            .into_iter()
            .map(|(n, s, v)| (format!("{prefix}{n}"), HostTensor::f32(s, v)))
            .collect())
    }

    /// Saves `planner.json` and `planner.safetensors` into `dir` (the tokenizer is saved by
    /// [`save_tokenizer`]).
    pub fn save(&self, dir: &Path) -> Result<(), PolicyError> {
        std::fs::create_dir_all(dir).map_err(|e| PolicyError::io(dir, e))?;
        let path = dir.join(PLANNER_CONFIG_FILE);
        let text = serde_json::to_string_pretty(&self.config)
            .map_err(|e| PolicyError::Config(e.to_string()))?;
        std::fs::write(&path, text).map_err(|e| PolicyError::io(&path, e))?;
        write_safetensors(&dir.join(PLANNER_WEIGHTS_FILE), &self.to_tensors("")?)
    }

    /// Loads `planner.json` + `planner.safetensors` from `dir`.
    pub fn load(dir: &Path, device: &Device) -> Result<(Self, LoadReport), PolicyError> {
        let c = PlannerConfig::from_file(&dir.join(PLANNER_CONFIG_FILE))?;
        let weights = dir.join(PLANNER_WEIGHTS_FILE);
        let tensors = read_safetensors(&weights)?;
        let options = LoadOptions {
            prefix: String::new(),
            ..LoadOptions::default()
        };
        Self::from_tensors(&c, device, &tensors, &options, &weights)
    }

    /// The device of the parameters.
    pub fn device(&self) -> Device {
        self.language.embed_tokens.val().device()
    }

    /// `[B·V, N, D]` → `[B·V, N/s², s²·D]`: each `s×s` block of neighbouring patches (row-major
    /// within the block) becomes one token; tokens stay in row-major order of the blocks.
    fn pixel_shuffle(&self, x: Tensor<3>) -> Tensor<3> {
        let s = self.config.pixel_shuffle;
        if s == 1 {
            return x;
        }
        let [bv, _, d] = x.dims();
        let g = self.config.vision.grid();
        let gs = g / s;
        x.reshape([bv * gs, s, gs, s * d])
            .swap_dims(1, 2) // [B·V·gs, gs, s, s·D]: block column, row in block
            .reshape([bv, gs * gs, s * s * d])
    }

    /// Image embeddings in the LM's width `[B·V, N', Dl]` for `pixels [B·V, 3, H, W]`.
    pub fn image_embeddings(&self, pixels: Tensor<4>) -> Result<Tensor<3>, PolicyError> {
        let v = self.vision.forward(pixels)?;
        Ok(self
            .connector
            .forward(self.pixel_shuffle(v.last_hidden_state)))
    }

    /// Plans for a batch: `pixels [B·V, 3, H, W]` (view-major within each observation,
    /// normalized to [-1, 1], see [`preprocess_image`]) and one encoded prompt per observation.
    pub fn forward(
        &self,
        pixels: Tensor<4>,
        prompts: &[Prompt],
    ) -> Result<PlanOutput, PolicyError> {
        let c = &self.config;
        let b = prompts.len();
        let [bv, _, _, _] = pixels.dims();
        if b == 0 || bv != b * c.num_views {
            return Err(PolicyError::input(
                "pixel_values",
                format!(
                    "{bv} images for {b} prompts with {} views each",
                    c.num_views
                ),
            ));
        }
        let s = c.plan_tokens();
        let n_img = c.num_views * c.tokens_per_view();
        for (i, p) in prompts.iter().enumerate() {
            let k = p.image_mask.iter().filter(|&&m| m).count();
            if p.ids.len() != s
                || p.attention_mask.len() != s
                || p.image_mask.len() != s
                || k != n_img
            {
                return Err(PolicyError::input(
                    "prompt",
                    format!(
                        "prompt {i}: {} tokens with {k} image placeholders, expected {s} tokens with {n_img}",
                        p.ids.len()
                    ),
                ));
            }
            if let Some(bad) = p.ids.iter().find(|&&id| id as usize >= c.text.vocab_size) {
                return Err(PolicyError::input(
                    "prompt",
                    format!(
                        "prompt {i}: token id {bad} outside the vocabulary (size {})",
                        c.text.vocab_size
                    ),
                ));
            }
        }
        let device = self.device();
        let dl = c.text.hidden_size;
        let img = self.image_embeddings(pixels)?.reshape([b * n_img, dl]);
        let ids: Vec<i64> = prompts
            .iter()
            .flat_map(|p| p.ids.iter().map(|&i| i as i64))
            .collect();
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [b, s]), &device);
        let text = self.language.embed(ids).reshape([b * s, dl]);
        // Splice: row r of the result picks its text embedding (row r) or the next image
        // embedding (row b·s + j) — one differentiable gather.
        let mut index = Vec::with_capacity(b * s);
        let mut j = 0i64;
        for (i, p) in prompts.iter().enumerate() {
            for (t, &is_img) in p.image_mask.iter().enumerate() {
                if is_img {
                    index.push((b * s) as i64 + j);
                    j += 1;
                } else {
                    index.push((i * s + t) as i64);
                }
            }
        }
        let index = Tensor::<1, Int>::from_data(TensorData::new(index, [b * s]), &device);
        let embeds = Tensor::cat(vec![text, img], 0)
            .select(0, index)
            .reshape([b, s, dl]);
        let mask: Vec<Vec<bool>> = prompts.iter().map(|p| p.attention_mask.clone()).collect();
        let out = self.language.forward_embeds(embeds, &mask)?;
        let hidden = out
            .hidden_states
            .last()
            .cloned()
            .unwrap_or(out.last_prenorm);
        let tokens = match &self.projection {
            Some(p) => p.forward(hidden),
            None => hidden,
        };
        let subgoal = self.subgoal_head.as_ref().map(|h| {
            let m: Vec<f32> = mask
                .iter()
                .flat_map(|r| r.iter().map(|&v| if v { 1.0 } else { 0.0 }))
                .collect();
            let m = Tensor::<3>::from_data(TensorData::new(m, [b, s, 1]), &device);
            let [_, _, dp] = tokens.dims();
            let pooled = match &h.queries {
                None => {
                    let count = m.clone().sum_dim(1).clamp_min(1.0); // [B, 1, 1]
                    ((tokens.clone() * m).sum_dim(1) / count).reshape([b, dp])
                }
                Some(q) => {
                    let q = q.val(); // [n, Dp]
                    let [n, _] = q.dims();
                    let scores = tokens
                        .clone()
                        .matmul(q.transpose().unsqueeze::<3>().expand([b, dp, n]))
                        .div_scalar((dp as f32).sqrt()); // [B, S, n]
                    // Padding gets −1e9 before the softmax over the tokens (dim 1).
                    let scores = scores + (m - 1.0) * 1e9;
                    let w = softmax(scores, 1).swap_dims(1, 2); // [B, n, S]
                    w.matmul(tokens.clone()).reshape([b, n * dp])
                }
            };
            h.fc2.forward(gelu(h.fc1.forward(pooled)))
        });
        Ok(PlanOutput {
            tokens,
            attention_mask: mask,
            image_mask: prompts.iter().map(|p| p.image_mask.clone()).collect(),
            subgoal,
            truncated: prompts.iter().map(|p| p.truncated).collect(),
        })
    }
}

/// Saves a prompt encoder's tokenizer as `dir/tokenizer.json`.
pub fn save_tokenizer(encoder: &PromptEncoder, dir: &Path) -> Result<(), PolicyError> {
    let path = dir.join(TOKENIZER_FILE);
    encoder
        .tokenizer()
        .save(&path, true)
        .map_err(|e| PolicyError::ConfigFile {
            path: path.clone(),
            msg: format!("writing tokenizer: {e}"),
        })
}

/// An RGB u8 image `[h][w][3]` → SigLIP input `[3, size, size]` (CHW, `(x/255 − 0.5)/0.5`),
/// resized with bilinear interpolation (pixel centres aligned, as PIL / torchvision without
/// antialiasing).
pub fn preprocess_image(rgb: &[u8], width: usize, height: usize, size: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; 3 * size * size];
    if width == 0 || height == 0 || rgb.len() < width * height * 3 {
        return out;
    }
    let sx = width as f32 / size as f32;
    let sy = height as f32 / size as f32;
    let px = |x: usize, y: usize, c: usize| rgb[(y * width + x) * 3 + c] as f32;
    for oy in 0..size {
        let fy = ((oy as f32 + 0.5) * sy - 0.5).clamp(0.0, (height - 1) as f32);
        let y0 = fy.floor() as usize;
        let y1 = (y0 + 1).min(height - 1);
        let wy = fy - y0 as f32;
        for ox in 0..size {
            let fx = ((ox as f32 + 0.5) * sx - 0.5).clamp(0.0, (width - 1) as f32);
            let x0 = fx.floor() as usize;
            let x1 = (x0 + 1).min(width - 1);
            let wx = fx - x0 as f32;
            for c in 0..3 {
                let top = px(x0, y0, c) * (1.0 - wx) + px(x1, y0, c) * wx;
                let bot = px(x0, y1, c) * (1.0 - wx) + px(x1, y1, c) * wx;
                let v = top * (1.0 - wy) + bot * wy;
                out[c * size * size + oy * size + ox] = (v / 255.0 - 0.5) / 0.5;
            }
        }
    }
    out
}
