//! The GR00T N1.5 flow-matching action head: VL adapter, embodiment-specific encoders/decoder,
//! and the DiT, with upstream tensor names.
//!
//! Notation: `B` batch, `S` backbone tokens, `Db = backbone_embedding_dim`,
//! `D = input_embedding_dim` (DiT width), `Hs = hidden_size`, `H = action_horizon`,
//! `A = action_dim`, `F = num_target_vision_tokens`, `Ts` state tokens (1 upstream),
//! `L = Ts + F + H` DiT tokens.

use burn::module::{Module, Param};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::config::FlowmatchingActionHeadConfig;
use crate::error::PolicyError;
use crate::nn::{
    Attention, Builder, CategorySpecificLinear, CategorySpecificMlp, Exported, FeedForward, Init,
    KeyValue, LayerNorm, Linear, action_encoder_freqs, diffusers_timestep_freqs, join, outer,
    swish,
};

/// Channels of the DiT's sinusoidal timestep projection (diffusers `Timesteps(256, ...)`).
pub const TIMESTEP_CHANNELS: usize = 256;

/// One block of `vl_self_attention` (diffusers `BasicTransformerBlock`, `layer_norm`):
/// `x = x + attn1(norm1(x)); x = x + ff(norm3(x))`, LayerNorms with affine, eps 1e-5.
#[derive(Module, Debug)]
pub struct VlBlock {
    /// `norm1` (affine, eps 1e-5).
    pub norm1: LayerNorm,
    /// `attn1` (self-attention).
    pub attn1: Attention,
    /// `norm3` (affine, eps 1e-5).
    pub norm3: LayerNorm,
    /// `ff`.
    pub ff: FeedForward,
}

impl VlBlock {
    fn new(b: &mut Builder<'_>, name: &str, dim: usize, heads: usize, head_dim: usize) -> Self {
        Self {
            norm1: LayerNorm::affine(b, &join(name, "norm1"), dim, 1e-5),
            attn1: Attention::new(b, &join(name, "attn1"), dim, dim, heads, head_dim),
            norm3: LayerNorm::affine(b, &join(name, "norm3"), dim, 1e-5),
            ff: FeedForward::new(b, &join(name, "ff"), dim),
        }
    }

    /// `[B, S, Db]` → `[B, S, Db]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = self.norm1.forward(x.clone());
        let x = x + self.attn1.forward(h.clone(), h);
        let h = self.norm3.forward(x.clone());
        x + self.ff.forward(h)
    }

    fn export(&self, name: &str, out: &mut Exported) -> Result<(), PolicyError> {
        self.norm1.export(&join(name, "norm1"), out)?;
        self.attn1.export(&join(name, "attn1"), out)?;
        self.norm3.export(&join(name, "norm3"), out)?;
        self.ff.export(&join(name, "ff"), out)
    }
}

/// diffusers `AdaLayerNorm` as used by the DiT: `linear(SiLU(temb))` → `(scale, shift)`
/// (**scale first**), `LN(x; no affine) * (1 + scale) + shift`.
#[derive(Module, Debug)]
pub struct AdaLayerNorm {
    /// `norm1.linear`: `D → 2D`.
    pub linear: Linear,
    /// The LayerNorm (no affine).
    pub norm: LayerNorm,
}

impl AdaLayerNorm {
    /// `x [B, L, D]`, `silu_temb = SiLU(temb) [B, D]` → `[B, L, D]`.
    pub fn forward(&self, x: Tensor<3>, silu_temb: Tensor<2>) -> Tensor<3> {
        let m = self.linear.forward(silu_temb);
        let mut parts = m.chunk(2, 1);
        let shift = parts.pop().map(|t| t.unsqueeze_dim::<3>(1));
        let scale = parts.pop().map(|t| t.unsqueeze_dim::<3>(1));
        let (Some(scale), Some(shift)) = (scale, shift) else {
            unreachable!("chunk(2) of an even dimension yields two parts")
        };
        self.norm.forward(x) * scale.add_scalar(1.0) + shift
    }
}

/// One DiT block (diffusers `BasicTransformerBlock`, `ada_norm`): only `norm1`, `attn1`,
/// `norm3`, `ff`. `x = x + attn1(AdaLN(x, temb), ctx); x = x + ff(LN(x))`.
#[derive(Module, Debug)]
pub struct DitBlock {
    /// `norm1` (time-conditioned).
    pub norm1: AdaLayerNorm,
    /// `attn1`: cross-attention over the VL tokens, or self-attention.
    pub attn1: Attention,
    /// `norm3` (no affine).
    pub norm3: LayerNorm,
    /// `ff`.
    pub ff: FeedForward,
    /// Whether `attn1` is a self-attention.
    pub self_attention: bool,
}

impl DitBlock {
    fn new(
        b: &mut Builder<'_>,
        name: &str,
        cfg: &FlowmatchingActionHeadConfig,
        self_attention: bool,
    ) -> Self {
        let dit = &cfg.diffusion_model_cfg;
        let dim = cfg.input_embedding_dim;
        let kv_dim = if self_attention {
            dim
        } else {
            cfg.backbone_embedding_dim
        };
        Self {
            norm1: AdaLayerNorm {
                linear: Linear::new(b, &join(name, "norm1.linear"), dim, 2 * dim),
                norm: LayerNorm::plain(dit.norm_eps),
            },
            attn1: Attention::new(
                b,
                &join(name, "attn1"),
                dim,
                kv_dim,
                dit.num_attention_heads,
                dit.attention_head_dim,
            ),
            norm3: LayerNorm::plain(dit.norm_eps),
            ff: FeedForward::new(b, &join(name, "ff"), dim),
            self_attention,
        }
    }

    /// `x [B, L, D]`, `silu_temb [B, D]`, `cross_kv`: K/V of the VL tokens (cross-attention
    /// blocks) → `[B, L, D]`.
    pub fn forward(
        &self,
        x: Tensor<3>,
        silu_temb: Tensor<2>,
        cross_kv: Option<&KeyValue>,
    ) -> Tensor<3> {
        let h = self.norm1.forward(x.clone(), silu_temb);
        let a = match cross_kv {
            Some(kv) if !self.self_attention => self.attn1.forward_kv(h, kv),
            _ => self.attn1.forward(h.clone(), h),
        };
        let x = x + a;
        let h = self.norm3.forward(x.clone());
        x + self.ff.forward(h)
    }

    fn export(&self, name: &str, out: &mut Exported) -> Result<(), PolicyError> {
        self.norm1.linear.export(&join(name, "norm1.linear"), out)?;
        self.attn1.export(&join(name, "attn1"), out)?;
        self.ff.export(&join(name, "ff"), out)
    }
}

/// `model.timestep_encoder`: diffusers `Timesteps(256, flip_sin_to_cos=True,
/// downscale_freq_shift=1)` then `TimestepEmbedding(256 → D → D)` (SiLU in between).
#[derive(Module, Debug)]
pub struct TimestepEncoder {
    /// `timestep_embedder.linear_1`: `256 → D`.
    pub linear_1: Linear,
    /// `timestep_embedder.linear_2`: `D → D`.
    pub linear_2: Linear,
}

impl TimestepEncoder {
    /// The 256-channel sinusoidal projection of integer timesteps `t [B]` (as float) →
    /// `[B, 256]`, `cat[cos, sin]` (cos first).
    pub fn projection(&self, t: Tensor<1>) -> Tensor<2> {
        let device = t.device();
        let arg = outer(t, &diffusers_timestep_freqs(TIMESTEP_CHANNELS), &device);
        Tensor::cat(vec![arg.clone().cos(), arg.sin()], 1)
    }

    /// `t [B]` (integer timesteps as float) → `temb [B, D]`.
    pub fn forward(&self, t: Tensor<1>) -> Tensor<2> {
        self.embed(self.projection(t))
    }

    /// `proj [B, 256]` → `temb [B, D]`.
    pub fn embed(&self, proj: Tensor<2>) -> Tensor<2> {
        self.linear_2.forward(swish(self.linear_1.forward(proj)))
    }
}

/// The DiT (`model` upstream).
#[derive(Module, Debug)]
pub struct Dit {
    /// `timestep_encoder`.
    pub timestep_encoder: TimestepEncoder,
    /// `transformer_blocks`.
    pub transformer_blocks: Vec<DitBlock>,
    /// `norm_out`: LayerNorm, eps 1e-6, no affine.
    pub norm_out: LayerNorm,
    /// `proj_out_1`: `D → 2D` → `(shift, scale)` (**shift first**).
    pub proj_out_1: Linear,
    /// `proj_out_2`: `D → Hs`.
    pub proj_out_2: Linear,
}

impl Dit {
    fn new(b: &mut Builder<'_>, name: &str, cfg: &FlowmatchingActionHeadConfig) -> Self {
        let dim = cfg.input_embedding_dim;
        let te = join(name, "timestep_encoder.timestep_embedder");
        Self {
            timestep_encoder: TimestepEncoder {
                linear_1: Linear::new(b, &join(&te, "linear_1"), TIMESTEP_CHANNELS, dim),
                linear_2: Linear::new(b, &join(&te, "linear_2"), dim, dim),
            },
            transformer_blocks: (0..cfg.diffusion_model_cfg.num_layers)
                .map(|i| {
                    DitBlock::new(
                        b,
                        &join(name, &format!("transformer_blocks.{i}")),
                        cfg,
                        cfg.block_is_self_attention(i),
                    )
                })
                .collect(),
            norm_out: LayerNorm::plain(1e-6),
            proj_out_1: Linear::new(b, &join(name, "proj_out_1"), dim, 2 * dim),
            proj_out_2: Linear::new(b, &join(name, "proj_out_2"), dim, cfg.hidden_size),
        }
    }

    /// Output AdaLN + `proj_out_2`: `x [B, L', D]`, `silu_temb [B, D]` → `[B, L', Hs]`.
    pub fn output(&self, x: Tensor<3>, silu_temb: Tensor<2>) -> Tensor<3> {
        let m = self.proj_out_1.forward(silu_temb);
        let mut parts = m.chunk(2, 1);
        let scale = parts.pop().map(|t| t.unsqueeze_dim::<3>(1));
        let shift = parts.pop().map(|t| t.unsqueeze_dim::<3>(1));
        let (Some(scale), Some(shift)) = (scale, shift) else {
            unreachable!("chunk(2) of an even dimension yields two parts")
        };
        let y = self.norm_out.forward(x) * scale.add_scalar(1.0) + shift;
        self.proj_out_2.forward(y)
    }

    fn export(&self, name: &str, out: &mut Exported) -> Result<(), PolicyError> {
        let te = join(name, "timestep_encoder.timestep_embedder");
        self.timestep_encoder
            .linear_1
            .export(&join(&te, "linear_1"), out)?;
        self.timestep_encoder
            .linear_2
            .export(&join(&te, "linear_2"), out)?;
        for (i, blk) in self.transformer_blocks.iter().enumerate() {
            blk.export(&join(name, &format!("transformer_blocks.{i}")), out)?;
        }
        self.proj_out_1.export(&join(name, "proj_out_1"), out)?;
        self.proj_out_2.export(&join(name, "proj_out_2"), out)
    }
}

/// Upstream `MultiEmbodimentActionEncoder`: `W3(swish(W2(cat[W1(x), SinEnc(t)])))`.
#[derive(Module, Debug)]
pub struct ActionEncoder {
    /// `W1`: `A → D`.
    pub w1: CategorySpecificLinear,
    /// `W2`: `2D → D`.
    pub w2: CategorySpecificLinear,
    /// `W3`: `D → D`.
    pub w3: CategorySpecificLinear,
}

impl ActionEncoder {
    /// Sinusoidal time encoding `t [B]` → `[B, D]`, `cat[sin, cos]` (sin first).
    pub fn time_encoding(&self, t: Tensor<1>) -> Tensor<2> {
        let [_, _, dim] = self.w3.w.dims();
        let device = t.device();
        let arg = outer(t, &action_encoder_freqs(dim), &device);
        Tensor::cat(vec![arg.clone().sin(), arg.cos()], 1)
    }

    /// `x [B, H, A]`, `t [B]` (integer timesteps as float), `ids [B]` → `[B, H, D]`.
    pub fn forward(&self, x: Tensor<3>, t: Tensor<1>, ids: Tensor<1, Int>) -> Tensor<3> {
        let [_, h, _] = x.dims();
        let a = self.w1.forward(x, ids.clone());
        let tau = self.time_encoding(t).unsqueeze_dim::<3>(1).repeat_dim(1, h);
        let h = swish(self.w2.forward(Tensor::cat(vec![a, tau], 2), ids.clone()));
        self.w3.forward(h, ids)
    }
}

/// The action head (`FlowmatchingActionHead` upstream), weights under `action_head.` in a GR00T
/// checkpoint.
#[derive(Module, Debug)]
pub struct ActionHead {
    /// `vlln`: LayerNorm over the backbone features (eps 1e-5, affine); absent without
    /// `use_vlln`.
    pub vlln: Option<LayerNorm>,
    /// `vl_self_attention.transformer_blocks` (empty without `use_vlln`).
    pub vl_self_attention: Vec<VlBlock>,
    /// `state_encoder`: `max_state_dim → Hs → D`.
    pub state_encoder: CategorySpecificMlp,
    /// `action_encoder`.
    pub action_encoder: ActionEncoder,
    /// `action_decoder`: `Hs → Hs → A`.
    pub action_decoder: CategorySpecificMlp,
    /// `future_tokens.weight`: `[F, D]` (absent when F = 0).
    pub future_tokens: Option<Param<Tensor<2>>>,
    /// `position_embedding.weight`: `[max_seq_len, D]` (absent without `add_pos_embed`).
    pub position_embedding: Option<Param<Tensor<2>>>,
    /// `model`: the DiT.
    pub model: Dit,
    /// The configuration the head was built from.
    #[module(skip)]
    pub config: FlowmatchingActionHeadConfig,
}

/// Per-chunk conditioning: everything that does not depend on the Euler step.
#[derive(Debug, Clone)]
pub struct Conditioning {
    /// `vl_embs [B, S, Db]`: the DiT cross-attention context.
    pub vl_embs: Tensor<3>,
    /// `state_features [B, Ts, D]`.
    pub state_features: Tensor<3>,
    /// Embodiment ids `[B]`.
    pub embodiment: Tensor<1, Int>,
    /// Per DiT block: keys/values of `vl_embs` for cross-attention blocks (`None` for
    /// self-attention blocks). They depend only on `vl_embs`, so computing them once per chunk
    /// instead of at every Euler step (as upstream does) gives identical results.
    pub cross_kv: Vec<Option<KeyValue>>,
}

impl Conditioning {
    /// Batch size `B`.
    pub fn batch(&self) -> usize {
        self.vl_embs.dims()[0]
    }
}

/// Intermediates of one velocity prediction (for parity checks and debugging).
#[derive(Debug, Clone)]
pub struct StepTrace {
    /// Sinusoidal projection `[B, 256]` before the timestep embedder.
    pub timestep_proj: Tensor<2>,
    /// `temb [B, D]`.
    pub temb: Tensor<2>,
    /// Sinusoidal time encoding inside the action encoder `[B, D]` (same for every token).
    pub action_time_encoding: Tensor<2>,
    /// Action encoder output `[B, H, D]` (before the position embedding).
    pub action_encoder_out: Tensor<3>,
    /// DiT input `[B, L, D]` = cat(state, future tokens, action tokens + position embedding).
    pub dit_input: Tensor<3>,
    /// Output of every DiT block `[B, L, D]`.
    pub block_outputs: Vec<Tensor<3>>,
    /// DiT output for all tokens `[B, L, Hs]`.
    pub dit_output: Tensor<3>,
    /// Action decoder output for all tokens `[B, L, A]`.
    pub decoder_output: Tensor<3>,
    /// The velocity: last H rows of `decoder_output`, `[B, H, A]`.
    pub velocity: Tensor<3>,
}

/// Initial noise of the sampler.
// Built once per chunk and consumed at once: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum InitialNoise {
    /// Given `x_0 [B, H, A]`.
    Tensor(Tensor<3>),
    /// `x_0 ~ N(0, I)` drawn from a deterministic generator with this seed (not torch's).
    Seed(u64),
}

/// Result of Euler sampling.
#[derive(Debug, Clone)]
pub struct Sample {
    /// `action_pred = x_N [B, H, A]` (normalized action space, no clipping).
    pub actions: Tensor<3>,
    /// `v_k [B, H, A]` for every step k.
    pub velocities: Vec<Tensor<3>>,
    /// Integer timestep `int(k/N · buckets)` of every step.
    pub timesteps: Vec<i64>,
}

/// Result of the flow-matching training loss.
#[derive(Debug, Clone)]
pub struct LossOutput {
    /// `sum((pred - target)² · mask) / sum(mask)`, shape `[1]`.
    pub loss: Tensor<1>,
    /// Predicted velocity `[B, H, A]`.
    pub pred_velocity: Tensor<3>,
    /// Target velocity `actions - noise` `[B, H, A]`.
    pub target_velocity: Tensor<3>,
    /// `(1 - t) · noise + t · actions` `[B, H, A]`.
    pub noisy_trajectory: Tensor<3>,
    /// `(t · buckets).long()` computed in float32 `[B]`.
    pub t_discretized: Tensor<1, Int>,
    /// `temb [B, D]`.
    pub temb: Tensor<2>,
    /// DiT output for all tokens `[B, L, Hs]`.
    pub dit_output: Tensor<3>,
}

impl ActionHead {
    pub(crate) fn build(cfg: &FlowmatchingActionHeadConfig, b: &mut Builder<'_>) -> Self {
        let n = cfg.max_num_embodiments;
        let d = cfg.input_embedding_dim;
        let hs = cfg.hidden_size;
        let a = cfg.action_dim;
        let db = cfg.backbone_embedding_dim;
        let vl = &cfg.vl_self_attention_cfg;
        let (vlln, vl_self_attention) = if cfg.use_vlln {
            (
                Some(LayerNorm::affine(b, "vlln", db, 1e-5)),
                (0..vl.num_layers)
                    .map(|i| {
                        VlBlock::new(
                            b,
                            &format!("vl_self_attention.transformer_blocks.{i}"),
                            db,
                            vl.num_attention_heads,
                            vl.attention_head_dim,
                        )
                    })
                    .collect(),
            )
        } else {
            (None, Vec::new())
        };
        let f = cfg.num_target_vision_tokens;
        Self {
            vlln,
            vl_self_attention,
            state_encoder: CategorySpecificMlp::new(
                b,
                "state_encoder",
                n,
                cfg.max_state_dim,
                hs,
                d,
            ),
            action_encoder: ActionEncoder {
                w1: CategorySpecificLinear::new(b, "action_encoder.W1", n, a, d),
                w2: CategorySpecificLinear::new(b, "action_encoder.W2", n, 2 * d, d),
                w3: CategorySpecificLinear::new(b, "action_encoder.W3", n, d, d),
            },
            action_decoder: CategorySpecificMlp::new(b, "action_decoder", n, hs, hs, a),
            future_tokens: (f > 0)
                .then(|| b.param("future_tokens.weight", [f, d], Init::Normal { std: 0.02 })),
            position_embedding: cfg.add_pos_embed.then(|| {
                b.param(
                    "position_embedding.weight",
                    [cfg.max_seq_len, d],
                    Init::Normal { std: 0.02 },
                )
            }),
            model: Dit::new(b, "model", cfg),
            config: cfg.clone(),
        }
    }

    /// All tensors in upstream layout and names (without the `action_head.` prefix).
    pub(crate) fn export(&self) -> Result<Exported, PolicyError> {
        let mut out = Exported::new();
        if let Some(ln) = &self.vlln {
            ln.export("vlln", &mut out)?;
        }
        for (i, blk) in self.vl_self_attention.iter().enumerate() {
            blk.export(
                &format!("vl_self_attention.transformer_blocks.{i}"),
                &mut out,
            )?;
        }
        self.state_encoder.export("state_encoder", &mut out)?;
        self.action_encoder
            .w1
            .export("action_encoder.W1", &mut out)?;
        self.action_encoder
            .w2
            .export("action_encoder.W2", &mut out)?;
        self.action_encoder
            .w3
            .export("action_encoder.W3", &mut out)?;
        self.action_decoder.export("action_decoder", &mut out)?;
        for (name, p) in [
            ("future_tokens.weight", &self.future_tokens),
            ("position_embedding.weight", &self.position_embedding),
        ] {
            if let Some(p) = p {
                let (shape, values) = crate::nn::to_host(p.val())?;
                out.push((name.to_owned(), shape, values));
            }
        }
        self.model.export("model", &mut out)?;
        Ok(out)
    }

    /// The device of the parameters.
    pub fn device(&self) -> Device {
        self.model.proj_out_2.weight.val().device()
    }

    /// `vl_embs = vl_self_attention(vlln(backbone_features))`: `[B, S, Db]` → `[B, S, Db]`.
    /// No mask: padded backbone positions are attended to, exactly as upstream.
    pub fn vl_embeddings(&self, backbone_features: Tensor<3>) -> Tensor<3> {
        let mut x = match &self.vlln {
            Some(ln) => ln.forward(backbone_features),
            None => backbone_features,
        };
        for blk in &self.vl_self_attention {
            x = blk.forward(x);
        }
        x
    }

    /// Embodiment ids `[B]` on the device, after checking `0 <= id < max_num_embodiments`.
    pub fn embodiment_tensor(&self, ids: &[i64]) -> Result<Tensor<1, Int>, PolicyError> {
        let n = self.config.max_num_embodiments as i64;
        if let Some(bad) = ids.iter().find(|&&i| i < 0 || i >= n) {
            return Err(PolicyError::input(
                "embodiment_id",
                format!("id {bad} is outside 0..{n}"),
            ));
        }
        Ok(Tensor::from_data(
            TensorData::new(ids.to_vec(), [ids.len()]),
            &self.device(),
        ))
    }

    fn check_inputs(
        &self,
        backbone_features: &Tensor<3>,
        state: &Tensor<3>,
        ids: &[i64],
    ) -> Result<usize, PolicyError> {
        let cfg = &self.config;
        let [b, _, db] = backbone_features.dims();
        if db != cfg.backbone_embedding_dim {
            return Err(PolicyError::input(
                "backbone_features",
                format!(
                    "shape {:?}: last dimension must be backbone_embedding_dim = {}",
                    backbone_features.dims(),
                    cfg.backbone_embedding_dim
                ),
            ));
        }
        let [bs, ts, ds] = state.dims();
        if bs != b || ts == 0 || ds != cfg.max_state_dim {
            return Err(PolicyError::input(
                "state",
                format!(
                    "shape {:?}: expected [{b}, 1, {}] (max_state_dim)",
                    state.dims(),
                    cfg.max_state_dim
                ),
            ));
        }
        if ids.len() != b {
            return Err(PolicyError::input(
                "embodiment_id",
                format!("{} ids for batch size {b}", ids.len()),
            ));
        }
        Ok(b)
    }

    /// Per-chunk conditioning: `backbone_features [B, S, Db]`, `state [B, Ts, max_state_dim]`
    /// (Ts = 1 upstream), embodiment ids `[B]`. Computes `vl_embs`, the state token and the
    /// cross-attention K/V of every cross-attention block once.
    pub fn condition(
        &self,
        backbone_features: Tensor<3>,
        state: Tensor<3>,
        embodiment_id: &[i64],
    ) -> Result<Conditioning, PolicyError> {
        self.check_inputs(&backbone_features, &state, embodiment_id)?;
        let embodiment = self.embodiment_tensor(embodiment_id)?;
        let vl_embs = self.vl_embeddings(backbone_features);
        let state_features = self.state_encoder.forward(state, embodiment.clone());
        let cross_kv = self
            .model
            .transformer_blocks
            .iter()
            .map(|blk| (!blk.self_attention).then(|| blk.attn1.key_value(vl_embs.clone())))
            .collect();
        Ok(Conditioning {
            vl_embs,
            state_features,
            embodiment,
            cross_kv,
        })
    }

    /// DiT input `[B, L, D]` from the conditioning and encoded action tokens `[B, H, D]`
    /// (position embedding added to the action tokens only).
    fn dit_input(&self, cond: &Conditioning, action_tokens: Tensor<3>) -> Tensor<3> {
        let [b, h, _] = action_tokens.dims();
        let action_features = match &self.position_embedding {
            Some(pe) => action_tokens + pe.val().slice(0..h).unsqueeze::<3>(),
            None => action_tokens,
        };
        let mut parts = vec![cond.state_features.clone()];
        if let Some(ft) = &self.future_tokens {
            let [f, d] = ft.dims();
            parts.push(ft.val().unsqueeze::<3>().expand([b, f, d]));
        }
        parts.push(action_features);
        Tensor::cat(parts, 1)
    }

    /// One velocity prediction. `x [B, H, A]`, `t [B]` integer timesteps (as float).
    /// With `trace`, every intermediate is kept and the output layers run on all L tokens
    /// (as upstream); otherwise they run on the last H tokens only (they act per token, so the
    /// velocity is the same).
    fn predict(
        &self,
        cond: &Conditioning,
        x: Tensor<3>,
        t: Tensor<1>,
        trace: bool,
    ) -> (Tensor<3>, Option<StepTrace>) {
        let [_, h, _] = x.dims();
        let timestep_proj = self.model.timestep_encoder.projection(t.clone());
        let temb = self.model.timestep_encoder.embed(timestep_proj.clone());
        let silu_temb = swish(temb.clone());
        let action_encoder_out = self
            .action_encoder
            .forward(x, t.clone(), cond.embodiment.clone());
        let dit_input = self.dit_input(cond, action_encoder_out.clone());
        let mut hidden = dit_input.clone();
        let mut block_outputs = Vec::new();
        for (blk, kv) in self.model.transformer_blocks.iter().zip(&cond.cross_kv) {
            hidden = blk.forward(hidden, silu_temb.clone(), kv.as_ref());
            if trace {
                block_outputs.push(hidden.clone());
            }
        }
        if !trace {
            let [_, l, _] = hidden.dims();
            let last = hidden.slice_dim(1, l - h..l);
            let out = self.model.output(last, silu_temb);
            let v = self.action_decoder.forward(out, cond.embodiment.clone());
            return (v, None);
        }
        let dit_output = self.model.output(hidden, silu_temb);
        let decoder_output = self
            .action_decoder
            .forward(dit_output.clone(), cond.embodiment.clone());
        let [_, l, _] = decoder_output.dims();
        let velocity = decoder_output.clone().slice_dim(1, l - h..l);
        let st = StepTrace {
            timestep_proj,
            temb,
            action_time_encoding: self.action_encoder.time_encoding(t),
            action_encoder_out,
            dit_input,
            block_outputs,
            dit_output,
            decoder_output,
            velocity: velocity.clone(),
        };
        (velocity, Some(st))
    }

    fn timestep_tensor(&self, t_disc: i64, batch: usize) -> Tensor<1> {
        Tensor::from_data(
            TensorData::new(vec![t_disc as f32; batch], [batch]),
            &self.device(),
        )
    }

    fn check_actions(
        &self,
        name: &'static str,
        x: &Tensor<3>,
        batch: usize,
    ) -> Result<(), PolicyError> {
        let want = [batch, self.config.action_horizon, self.config.action_dim];
        if x.dims() != want {
            return Err(PolicyError::input(
                name,
                format!("shape {:?}, expected {want:?} [B, H, action_dim]", x.dims()),
            ));
        }
        Ok(())
    }

    /// Velocity `[B, H, A]` at actions `x [B, H, A]` and integer timestep `t_disc`
    /// (same for every batch row).
    pub fn velocity(
        &self,
        cond: &Conditioning,
        x: Tensor<3>,
        t_disc: i64,
    ) -> Result<Tensor<3>, PolicyError> {
        self.check_actions("actions", &x, cond.batch())?;
        let t = self.timestep_tensor(t_disc, cond.batch());
        Ok(self.predict(cond, x, t, false).0)
    }

    /// Like [`velocity`](Self::velocity), keeping every intermediate.
    pub fn velocity_traced(
        &self,
        cond: &Conditioning,
        x: Tensor<3>,
        t_disc: i64,
    ) -> Result<StepTrace, PolicyError> {
        self.check_actions("actions", &x, cond.batch())?;
        let t = self.timestep_tensor(t_disc, cond.batch());
        match self.predict(cond, x, t, true) {
            (_, Some(tr)) => Ok(tr),
            (_, None) => unreachable!("predict with trace returns a trace"),
        }
    }

    /// Euler sampling exactly as upstream `get_action`: `x_0` = noise, for k = 0..N-1
    /// `t_disc = int(k/N · buckets)`, `v_k = velocity(x_k, t_disc)`, `x_{k+1} = x_k + v_k / N`.
    /// `num_steps` defaults to `num_inference_timesteps`.
    pub fn sample(
        &self,
        cond: &Conditioning,
        noise: InitialNoise,
        num_steps: Option<usize>,
    ) -> Result<Sample, PolicyError> {
        let n = num_steps.unwrap_or(self.config.num_inference_timesteps);
        if n == 0 {
            return Err(PolicyError::input("num_steps", "must be > 0"));
        }
        let b = cond.batch();
        let mut x = match noise {
            InitialNoise::Tensor(x) => x,
            InitialNoise::Seed(seed) => {
                let shape = [b, self.config.action_horizon, self.config.action_dim];
                let values = crate::rng::Rng::new(seed).normal_vec(shape.iter().product());
                Tensor::from_data(TensorData::new(values, shape), &self.device())
            }
        };
        self.check_actions("init_noise", &x, b)?;
        let dt = 1.0 / n as f64;
        let mut velocities = Vec::with_capacity(n);
        let mut timesteps = Vec::with_capacity(n);
        for k in 0..n {
            let t_disc = self.config.inference_timestep(k, n);
            let t = self.timestep_tensor(t_disc, b);
            let (v, _) = self.predict(cond, x.clone(), t, false);
            x = x + v.clone().mul_scalar(dt as f32);
            velocities.push(v);
            timesteps.push(t_disc);
            tracing::trace!(step = k, t_disc, "euler step");
        }
        Ok(Sample {
            actions: x,
            velocities,
            timesteps,
        })
    }

    /// [`condition`](Self::condition) then [`sample`](Self::sample): upstream `get_action`.
    pub fn get_action(
        &self,
        backbone_features: Tensor<3>,
        state: Tensor<3>,
        embodiment_id: &[i64],
        noise: InitialNoise,
        num_steps: Option<usize>,
    ) -> Result<Sample, PolicyError> {
        let cond = self.condition(backbone_features, state, embodiment_id)?;
        self.sample(&cond, noise, num_steps)
    }

    /// Flow-matching training loss exactly as upstream `forward`, given the continuous time
    /// `t [B]`, `noise [B, H, A]`, target `actions [B, H, A]` and `action_mask [B, H, A]`
    /// (float 0/1): `noisy = (1 - t)·noise + t·actions`, `target = actions - noise`,
    /// `t_disc = (t · buckets).long()` in float32, `loss = Σ(pred - target)²·mask / Σ mask`.
    #[allow(clippy::too_many_arguments)]
    pub fn flow_matching_loss(
        &self,
        backbone_features: Tensor<3>,
        state: Tensor<3>,
        embodiment_id: &[i64],
        actions: Tensor<3>,
        noise: Tensor<3>,
        t: Tensor<1>,
        action_mask: Tensor<3>,
    ) -> Result<LossOutput, PolicyError> {
        let b = self.check_inputs(&backbone_features, &state, embodiment_id)?;
        self.check_actions("actions", &actions, b)?;
        self.check_actions("noise", &noise, b)?;
        self.check_actions("action_mask", &action_mask, b)?;
        if t.dims() != [b] {
            return Err(PolicyError::input(
                "t",
                format!("shape {:?}, expected [{b}]", t.dims()),
            ));
        }
        let cond = self.condition(backbone_features, state, embodiment_id)?;
        let t3 = t.clone().reshape([b, 1, 1]);
        let noisy = (t3.clone().neg().add_scalar(1.0)) * noise.clone() + t3 * actions.clone();
        let target = actions - noise;
        let t_discretized = t.mul_scalar(self.config.num_timestep_buckets as f32).int();
        let t_float = t_discretized.clone().float();
        let (_, trace) = self.predict(&cond, noisy.clone(), t_float, true);
        let Some(trace) = trace else {
            unreachable!("predict with trace returns a trace")
        };
        let diff = trace.velocity.clone() - target.clone();
        let loss = (diff.clone() * diff * action_mask.clone()).sum() / action_mask.sum();
        Ok(LossOutput {
            loss,
            pred_velocity: trace.velocity,
            target_velocity: target,
            noisy_trajectory: noisy,
            t_discretized,
            temb: trace.temb,
            dit_output: trace.dit_output,
        })
    }
}
