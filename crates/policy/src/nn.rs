//! Building blocks of the action head, written against burn 0.22 (no backend generic).
//!
//! Every block is constructed from a [`ParamSource`] under its upstream tensor name, and can
//! export its tensors back under the same names in upstream (PyTorch) layout. `nn.Linear`
//! weights are stored `[out, in]` upstream and `[in, out]` here (burn's convention); the
//! transposition happens on the host at load/save time and is exact.

use burn::module::{Module, Param};
use burn::tensor::activation::{relu, sigmoid, silu};
use burn::tensor::module::{attention, linear};
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::error::PolicyError;

/// How a tensor is initialized when it is not loaded from a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Init {
    /// `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` (PyTorch `nn.Linear` weights and biases).
    Uniform { fan_in: usize },
    /// `N(0, std²)`.
    Normal { std: f64 },
    /// Constant.
    Constant(f32),
}

/// Where parameters come from: a checkpoint or a random initializer.
pub(crate) trait ParamSource {
    /// The host values (row-major f32) of tensor `name`, whose upstream shape is `shape`.
    /// A source that cannot supply it records the problem and returns zeros.
    fn take(&mut self, name: &str, shape: &[usize], init: Init) -> Vec<f32>;
}

/// Tensors exported for saving: `(name, upstream shape, row-major f32 values)`.
pub(crate) type Exported = Vec<(String, Vec<usize>, Vec<f32>)>;

/// Builds parameters on one device from a source.
pub(crate) struct Builder<'a> {
    pub(crate) device: Device,
    pub(crate) source: &'a mut dyn ParamSource,
}

impl Builder<'_> {
    pub(crate) fn param<const D: usize>(
        &mut self,
        name: &str,
        shape: [usize; D],
        init: Init,
    ) -> Param<Tensor<D>> {
        let values = self.source.take(name, &shape, init);
        Param::from_tensor(Tensor::from_data(
            TensorData::new(values, shape),
            &self.device,
        ))
    }

    /// A `[d_in, d_out]` parameter from an upstream `[d_out, d_in]` tensor.
    pub(crate) fn param_transposed(
        &mut self,
        name: &str,
        d_in: usize,
        d_out: usize,
    ) -> Param<Tensor<2>> {
        let values = self
            .source
            .take(name, &[d_out, d_in], Init::Uniform { fan_in: d_in });
        let t = transpose(&values, d_out, d_in);
        Param::from_tensor(Tensor::from_data(
            TensorData::new(t, [d_in, d_out]),
            &self.device,
        ))
    }
}

/// A source seen through a name prefix (a sub-module of a composite checkpoint).
struct Prefixed<'a> {
    inner: &'a mut dyn ParamSource,
    prefix: &'a str,
}

impl ParamSource for Prefixed<'_> {
    fn take(&mut self, name: &str, shape: &[usize], init: Init) -> Vec<f32> {
        self.inner
            .take(&format!("{}{name}", self.prefix), shape, init)
    }
}

impl Builder<'_> {
    /// Runs `build` with every tensor name prefixed by `prefix` (e.g. `"vision_model."`).
    pub(crate) fn scoped<T>(
        &mut self,
        prefix: &str,
        build: impl FnOnce(&mut Builder<'_>) -> T,
    ) -> T {
        let mut src = Prefixed {
            inner: &mut *self.source,
            prefix,
        };
        let mut b = Builder {
            device: self.device.clone(),
            source: &mut src,
        };
        build(&mut b)
    }
}

/// Row-major `[rows, cols]` → `[cols, rows]`.
pub(crate) fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    out
}

pub(crate) fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Host copy (row-major f32) of a tensor.
pub(crate) fn to_host<const D: usize>(t: Tensor<D>) -> Result<(Vec<usize>, Vec<f32>), PolicyError> {
    let data = t
        .try_into_data()
        .map_err(|e| PolicyError::Readback(format!("{e:?}")))?;
    let shape = data.shape().to_vec();
    let values = data
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| PolicyError::Readback(format!("{e:?}")))?;
    Ok((shape, values))
}

pub(crate) fn export_param<const D: usize>(
    out: &mut Exported,
    name: String,
    p: &Param<Tensor<D>>,
) -> Result<(), PolicyError> {
    let (shape, values) = to_host(p.val())?;
    out.push((name, shape, values));
    Ok(())
}

/// `nn.Linear`: `y = x W + b`, weight stored `[in, out]` (upstream `[out, in]`).
#[derive(Module, Debug)]
pub struct Linear {
    /// `[in, out]`.
    pub weight: Param<Tensor<2>>,
    /// `[out]` (absent for bias-free layers such as Qwen3's projections).
    pub bias: Option<Param<Tensor<1>>>,
}

impl Linear {
    pub(crate) fn new(b: &mut Builder<'_>, name: &str, d_in: usize, d_out: usize) -> Self {
        let weight = b.param_transposed(&join(name, "weight"), d_in, d_out);
        let bias = Some(b.param(&join(name, "bias"), [d_out], Init::Uniform { fan_in: d_in }));
        Self { weight, bias }
    }

    /// A bias-free linear layer (`nn.Linear(..., bias=False)`).
    pub(crate) fn no_bias(b: &mut Builder<'_>, name: &str, d_in: usize, d_out: usize) -> Self {
        let weight = b.param_transposed(&join(name, "weight"), d_in, d_out);
        Self { weight, bias: None }
    }

    /// `[..., in]` → `[..., out]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        linear(x, self.weight.val(), self.bias.as_ref().map(|b| b.val()))
    }

    pub(crate) fn export(&self, name: &str, out: &mut Exported) -> Result<(), PolicyError> {
        let (shape, values) = to_host(self.weight.val())?;
        out.push((
            join(name, "weight"),
            vec![shape[1], shape[0]],
            transpose(&values, shape[0], shape[1]),
        ));
        match &self.bias {
            Some(b) => export_param(out, join(name, "bias"), b),
            None => Ok(()),
        }
    }
}

/// `nn.LayerNorm` over the last dimension, optionally with an affine (weight, bias).
#[derive(Module, Debug)]
pub struct LayerNorm {
    /// `[dim]` (absent without affine).
    pub weight: Option<Param<Tensor<1>>>,
    /// `[dim]` (absent without affine).
    pub bias: Option<Param<Tensor<1>>>,
    /// Epsilon added to the (biased) variance.
    pub eps: f64,
}

impl LayerNorm {
    pub(crate) fn affine(b: &mut Builder<'_>, name: &str, dim: usize, eps: f64) -> Self {
        Self {
            weight: Some(b.param(&join(name, "weight"), [dim], Init::Constant(1.0))),
            bias: Some(b.param(&join(name, "bias"), [dim], Init::Constant(0.0))),
            eps,
        }
    }

    pub(crate) fn plain(eps: f64) -> Self {
        Self {
            weight: None,
            bias: None,
            eps,
        }
    }

    /// `[..., dim]` → `[..., dim]`: `(x - mean) / sqrt(var + eps) * weight + bias`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let (var, mean) = x.clone().var_mean_bias(D - 1);
        let y = (x - mean) / (var + self.eps).sqrt();
        let y = match &self.weight {
            Some(w) => y * w.val().unsqueeze::<D>(),
            None => y,
        };
        match &self.bias {
            Some(b) => y + b.val().unsqueeze::<D>(),
            None => y,
        }
    }

    pub(crate) fn export(&self, name: &str, out: &mut Exported) -> Result<(), PolicyError> {
        if let Some(w) = &self.weight {
            export_param(out, join(name, "weight"), w)?;
        }
        if let Some(b) = &self.bias {
            export_param(out, join(name, "bias"), b)?;
        }
        Ok(())
    }
}

/// Upstream `CategorySpecificLinear`: one linear layer per embodiment,
/// `y = x @ W[id] + b[id]`.
#[derive(Module, Debug)]
pub struct CategorySpecificLinear {
    /// `W`: `[num_embodiments, in, out]` (not transposed, same as upstream).
    pub w: Param<Tensor<3>>,
    /// `b`: `[num_embodiments, out]`.
    pub b: Param<Tensor<2>>,
}

impl CategorySpecificLinear {
    pub(crate) fn new(
        b: &mut Builder<'_>,
        name: &str,
        n: usize,
        d_in: usize,
        d_out: usize,
    ) -> Self {
        Self {
            w: b.param(
                &join(name, "W"),
                [n, d_in, d_out],
                Init::Normal { std: 0.02 },
            ),
            b: b.param(&join(name, "b"), [n, d_out], Init::Constant(0.0)),
        }
    }

    /// `x [B, T, in]`, `ids [B]` → `[B, T, out]`.
    pub fn forward(&self, x: Tensor<3>, ids: Tensor<1, Int>) -> Tensor<3> {
        let w = self.w.val().select(0, ids.clone()); // [B, in, out]
        let b = self.b.val().select(0, ids).unsqueeze_dim::<3>(1); // [B, 1, out]
        x.matmul(w) + b
    }

    pub(crate) fn export(&self, name: &str, out: &mut Exported) -> Result<(), PolicyError> {
        export_param(out, join(name, "W"), &self.w)?;
        export_param(out, join(name, "b"), &self.b)
    }
}

/// Upstream `CategorySpecificMLP`: `layer2(relu(layer1(x)))`.
#[derive(Module, Debug)]
pub struct CategorySpecificMlp {
    /// `in → hidden`.
    pub layer1: CategorySpecificLinear,
    /// `hidden → out`.
    pub layer2: CategorySpecificLinear,
}

impl CategorySpecificMlp {
    pub(crate) fn new(
        b: &mut Builder<'_>,
        name: &str,
        n: usize,
        d_in: usize,
        d_hidden: usize,
        d_out: usize,
    ) -> Self {
        Self {
            layer1: CategorySpecificLinear::new(b, &join(name, "layer1"), n, d_in, d_hidden),
            layer2: CategorySpecificLinear::new(b, &join(name, "layer2"), n, d_hidden, d_out),
        }
    }

    /// `x [B, T, in]`, `ids [B]` → `[B, T, out]`.
    pub fn forward(&self, x: Tensor<3>, ids: Tensor<1, Int>) -> Tensor<3> {
        let h = relu(self.layer1.forward(x, ids.clone()));
        self.layer2.forward(h, ids)
    }

    pub(crate) fn export(&self, name: &str, out: &mut Exported) -> Result<(), PolicyError> {
        self.layer1.export(&join(name, "layer1"), out)?;
        self.layer2.export(&join(name, "layer2"), out)
    }
}

/// Keys and values of an attention, split into heads: each `[B, heads, S, head_dim]`.
#[derive(Debug, Clone)]
pub struct KeyValue {
    /// `[B, heads, S, head_dim]`.
    pub k: Tensor<4>,
    /// `[B, heads, S, head_dim]`.
    pub v: Tensor<4>,
}

/// Projection names of diffusers' `Attention`.
const DIFFUSERS_ATTENTION: [&str; 4] = ["to_q", "to_k", "to_v", "to_out.0"];
/// Projection names of transformers' attention layers (SigLIP, CLIP).
pub(crate) const HF_ATTENTION: [&str; 4] = ["q_proj", "k_proj", "v_proj", "out_proj"];

/// diffusers `Attention` (SDPA processor): biased q/k/v/out projections, scale
/// `head_dim^-0.5`, softmax, no mask.
#[derive(Module, Debug)]
pub struct Attention {
    /// `to_q`: `D → heads·head_dim`.
    pub to_q: Linear,
    /// `to_k`: `D_kv → heads·head_dim`.
    pub to_k: Linear,
    /// `to_v`: `D_kv → heads·head_dim`.
    pub to_v: Linear,
    /// `to_out.0`: `heads·head_dim → D`.
    pub to_out: Linear,
    /// Heads.
    pub heads: usize,
    /// Width of one head.
    pub head_dim: usize,
}

impl Attention {
    pub(crate) fn new(
        b: &mut Builder<'_>,
        name: &str,
        dim: usize,
        kv_dim: usize,
        heads: usize,
        head_dim: usize,
    ) -> Self {
        Self::named(b, name, DIFFUSERS_ATTENTION, dim, kv_dim, heads, head_dim)
    }

    /// Like [`new`](Self::new) with the q, k, v, out projections under `names` (e.g.
    /// transformers' `q_proj`, `k_proj`, `v_proj`, `out_proj`).
    pub(crate) fn named(
        b: &mut Builder<'_>,
        name: &str,
        names: [&str; 4],
        dim: usize,
        kv_dim: usize,
        heads: usize,
        head_dim: usize,
    ) -> Self {
        let inner = heads * head_dim;
        Self {
            to_q: Linear::new(b, &join(name, names[0]), dim, inner),
            to_k: Linear::new(b, &join(name, names[1]), kv_dim, inner),
            to_v: Linear::new(b, &join(name, names[2]), kv_dim, inner),
            to_out: Linear::new(b, &join(name, names[3]), inner, dim),
            heads,
            head_dim,
        }
    }

    /// `[B, T, heads·head_dim]` → `[B, heads, T, head_dim]`.
    fn split_heads(&self, x: Tensor<3>) -> Tensor<4> {
        let [b, t, _] = x.dims();
        x.reshape([b, t, self.heads, self.head_dim]).swap_dims(1, 2)
    }

    /// Keys and values of a context `[B, S, D_kv]`.
    pub fn key_value(&self, context: Tensor<3>) -> KeyValue {
        KeyValue {
            k: self.split_heads(self.to_k.forward(context.clone())),
            v: self.split_heads(self.to_v.forward(context)),
        }
    }

    /// Attention of queries from `x [B, T, D]` over precomputed keys/values → `[B, T, D]`.
    pub fn forward_kv(&self, x: Tensor<3>, kv: &KeyValue) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let q = self.split_heads(self.to_q.forward(x));
        let o = attention(
            q,
            kv.k.clone(),
            kv.v.clone(),
            None,
            None,
            AttentionModuleOptions::default(),
        ); // [B, heads, T, head_dim]
        let o = o
            .swap_dims(1, 2)
            .reshape([b, t, self.heads * self.head_dim]);
        self.to_out.forward(o)
    }

    /// Attention of `x [B, T, D]` over `context [B, S, D_kv]` (`x` itself for self-attention).
    pub fn forward(&self, x: Tensor<3>, context: Tensor<3>) -> Tensor<3> {
        let kv = self.key_value(context);
        self.forward_kv(x, &kv)
    }

    pub(crate) fn export(&self, name: &str, out: &mut Exported) -> Result<(), PolicyError> {
        self.export_named(name, DIFFUSERS_ATTENTION, out)
    }

    /// Exports the projections under `names` (as given to [`named`](Self::named)).
    pub(crate) fn export_named(
        &self,
        name: &str,
        names: [&str; 4],
        out: &mut Exported,
    ) -> Result<(), PolicyError> {
        self.to_q.export(&join(name, names[0]), out)?;
        self.to_k.export(&join(name, names[1]), out)?;
        self.to_v.export(&join(name, names[2]), out)?;
        self.to_out.export(&join(name, names[3]), out)
    }
}

/// diffusers `FeedForward` with `gelu-approximate`: `net.2(gelu_tanh(net.0.proj(x)))`.
#[derive(Module, Debug)]
pub struct FeedForward {
    /// `ff.net.0.proj`: `D → 4D`.
    pub proj_in: Linear,
    /// `ff.net.2`: `4D → D`.
    pub proj_out: Linear,
}

impl FeedForward {
    pub(crate) fn new(b: &mut Builder<'_>, name: &str, dim: usize) -> Self {
        Self {
            proj_in: Linear::new(b, &join(name, "net.0.proj"), dim, 4 * dim),
            proj_out: Linear::new(b, &join(name, "net.2"), 4 * dim, dim),
        }
    }

    /// `[B, T, D]` → `[B, T, D]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.proj_out.forward(gelu_tanh(self.proj_in.forward(x)))
    }

    pub(crate) fn export(&self, name: &str, out: &mut Exported) -> Result<(), PolicyError> {
        self.proj_in.export(&join(name, "net.0.proj"), out)?;
        self.proj_out.export(&join(name, "net.2"), out)
    }
}

/// GELU with the tanh approximation (PyTorch `gelu(approximate="tanh")`, transformers'
/// `gelu_pytorch_tanh`), computed as `x · σ(2·√(2/π)·(x + 0.044715·x³))`, which equals
/// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` exactly in real arithmetic. Inference on flex
/// runs it as one fused host pass ([`fused_host`]); elsewhere (autodiff, GPU) it is composed
/// of tensor ops (burn's `gelu_approximate` would run a scalar `powf` and `tanh` per element).
pub fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    fused_host(x, fast::gelu_tanh, |x| {
        let x3 = x.clone() * x.clone() * x.clone();
        let inner = (x3 * fast::GELU_CUBIC + x.clone()) * (2.0 * fast::SQRT_2_OVER_PI);
        x * sigmoid(inner)
    })
}

/// `x * sigmoid(x)` (swish = SiLU); fused on the host for inference on flex like [`gelu_tanh`].
pub fn swish<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    fused_host(x, fast::silu, silu)
}

/// Elements per task when [`fused_host`] splits a pass over the compute pool (below twice this
/// the pass runs on the calling thread: a task hand-off costs more than it saves).
const FUSED_CHUNK: usize = 16 * 1024;

/// Applies the element-wise `f` to a float32 tensor on the host, in place, in passes the
/// compiler vectorizes, split over the current rayon pool for large tensors, when that is
/// free: the tensor lives on the CPU backend (flex, whose data is host memory) and is not
/// tracked by autodiff. A tensor nothing else holds is taken over without a copy. Composed
/// tensor ops instead allocate and run one single-threaded scalar pass per op (and flex's `exp`
/// is a libm call per element). Otherwise (training, GPU devices, other dtypes) `composed`, the
/// same function as tensor ops.
fn fused_host<const D: usize>(
    x: Tensor<D>,
    f: fn(&mut [f32]),
    composed: impl FnOnce(Tensor<D>) -> Tensor<D>,
) -> Tensor<D> {
    let device = x.device();
    if x.is_autodiff() || device != Device::flex() || x.dtype() != burn::tensor::DType::F32 {
        return composed(x);
    }
    let mut data = x.into_data();
    match data.as_mut_slice::<f32>() {
        Ok(v) if v.len() >= 2 * FUSED_CHUNK => {
            use rayon::prelude::*;
            v.par_chunks_mut(FUSED_CHUNK).for_each(f);
        }
        Ok(v) => f(v),
        Err(_) => return composed(Tensor::from_data(data, &device)),
    }
    Tensor::from_data(data, &device)
}

/// Branch-free float32 element-wise kernels that the compiler vectorizes (baseline SSE2 and up).
pub mod fast {
    /// `√(2/π)` (f64 for the composed tensor-op path; the kernels here use it as f32).
    pub const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
    /// The cubic coefficient of the tanh-approximated GELU.
    pub const GELU_CUBIC: f64 = 0.044715;

    /// `eˣ` to about 2 ulp for `x ∈ [-87.3, 88.3]` (clamped outside, so no inf/NaN from finite
    /// input): `x = n·ln2 + r`, `|r| ≤ ln2/2`, Cephes' degree-6 polynomial for `eʳ`, `2ⁿ` built
    /// in the exponent bits. `n` is rounded with the 1.5·2²³ trick (no `round` call).
    #[inline(always)]
    pub fn exp(x: f32) -> f32 {
        const MAGIC: f32 = 12_582_912.0; // 1.5·2²³
        let x = x.clamp(-87.3, 88.3);
        let t = x * std::f32::consts::LOG2_E + MAGIC;
        let n = t - MAGIC;
        let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
        let mut p = 1.987_569_1e-4f32;
        p = p * r + 1.398_199_9e-3;
        p = p * r + 8.333_452e-3;
        p = p * r + 4.166_579_6e-2;
        p = p * r + 0.166_666_65;
        p = p * r + 0.5;
        let e = p * r * r + r + 1.0;
        // n as an integer from t's mantissa bits (|n| < 2²²), then 2ⁿ = bits (n + 127) << 23.
        let ni = t.to_bits().wrapping_sub(MAGIC.to_bits()) as i32;
        e * f32::from_bits(((ni + 127) as u32) << 23)
    }

    /// `1 / (1 + e⁻ˣ)`.
    #[inline(always)]
    pub fn sigmoid(x: f32) -> f32 {
        1.0 / (1.0 + exp(-x))
    }

    /// In place: `x · σ(2·√(2/π)·(x + 0.044715·x³))`.
    pub fn gelu_tanh(v: &mut [f32]) {
        for x in v.iter_mut() {
            let u = (2.0 * SQRT_2_OVER_PI) as f32 * (*x + GELU_CUBIC as f32 * *x * *x * *x);
            *x *= sigmoid(u);
        }
    }

    /// In place: `x · σ(x)`.
    pub fn silu(v: &mut [f32]) {
        for x in v.iter_mut() {
            *x *= sigmoid(*x);
        }
    }
}

/// Frequencies of the action encoder's `SinusoidalPositionalEncoding` (upstream
/// `action_encoder.py`), computed in float32 like upstream:
/// `freq_k = exp(-k * (ln(10000) / half))`, `k = 0..half`.
pub(crate) fn action_encoder_freqs(dim: usize) -> Vec<f32> {
    let half = dim / 2;
    let ln = 10000.0f32.ln();
    let step = ln / half as f32;
    (0..half).map(|k| (-(k as f32) * step).exp()).collect()
}

/// Frequencies of diffusers `Timesteps(num_channels, flip_sin_to_cos=True,
/// downscale_freq_shift=1)`: `freq_k = exp(-ln(10000) * k / (half - 1))`, float32 like upstream.
pub(crate) fn diffusers_timestep_freqs(num_channels: usize) -> Vec<f32> {
    let half = num_channels / 2;
    let neg_ln = -(10000.0f64.ln()) as f32;
    let denom = (half as f32) - 1.0;
    (0..half)
        .map(|k| ((neg_ln * k as f32) / denom).exp())
        .collect()
}

/// `t [B] · freqs [half]` → `[B, half]`.
pub(crate) fn outer(t: Tensor<1>, freqs: &[f32], device: &Device) -> Tensor<2> {
    let f = Tensor::<1>::from_data(TensorData::new(freqs.to_vec(), [freqs.len()]), device);
    t.unsqueeze_dim::<2>(1) * f.unsqueeze::<2>()
}

#[cfg(test)]
mod fused_tests {
    use super::*;

    /// Host values of a tensor.
    fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap()
    }

    #[test]
    fn fast_exp_is_within_a_few_ulp_of_f64() {
        let mut worst = 0.0f64;
        for i in 0..=200_000 {
            let x = -87.0 + 175.0 * i as f64 / 200_000.0;
            let got = fast::exp(x as f32) as f64;
            let want = (x as f32 as f64).exp();
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 4e-7, "relative error {worst}");
        // Clamped, finite, ordered at the ends.
        assert_eq!(fast::exp(-1e4), fast::exp(-87.3));
        assert!(fast::exp(1e4).is_finite());
        assert!(fast::sigmoid(-1e4) >= 0.0 && fast::sigmoid(1e4) == 1.0);
    }

    /// The fused host pass (inference on flex) and the composed tensor ops (taken under
    /// autodiff) agree, so training and inference compute the same activations.
    #[test]
    fn fused_activations_match_the_composed_ops() {
        let device = Device::flex();
        let v: Vec<f32> = (0..999).map(|i| (i as f32 - 499.0) * 0.023).collect();
        let x = Tensor::<2>::from_data(TensorData::new(v.clone(), [27, 37]), &device);
        for (name, f) in [
            ("gelu_tanh", gelu_tanh::<2> as fn(Tensor<2>) -> Tensor<2>),
            ("swish", swish::<2>),
        ] {
            let fused = host(f(x.clone()));
            let composed = f(x.clone().autodiff());
            assert!(composed.is_autodiff());
            let composed = host(composed.inner());
            let err = fused
                .iter()
                .zip(&composed)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(err < 2e-6, "{name}: fused vs composed {err}");
        }
        // Reference values: gelu_tanh(1) = 0.841192, silu(1) = 0.731059.
        let one = Tensor::<1>::from_data(TensorData::new(vec![1.0f32], [1]), &device);
        assert!((host(gelu_tanh(one.clone()))[0] - 0.841_192).abs() < 1e-6);
        assert!((host(swish(one))[0] - 0.731_058_6).abs() < 1e-6);
    }

    /// A tensor large enough to be split over the pool gives the same bits as one serial pass,
    /// and a tensor that is still held elsewhere is copied, not changed under its other holder.
    #[test]
    fn split_fused_pass_equals_the_serial_pass_and_leaves_shared_tensors_alone() {
        let device = Device::flex();
        let n = 2 * FUSED_CHUNK + 12_345;
        let v: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 2001) as f32 * 0.004 - 4.0)
            .collect();
        let x = Tensor::<2>::from_data(TensorData::new(v.clone(), [1, n]), &device);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let (g, s) = pool.install(|| (host(gelu_tanh(x.clone())), host(swish(x.clone()))));
        let (mut g_want, mut s_want) = (v.clone(), v.clone());
        fast::gelu_tanh(&mut g_want);
        fast::silu(&mut s_want);
        assert!(
            g == g_want,
            "gelu_tanh split pass differs from the serial pass"
        );
        assert!(s == s_want, "swish split pass differs from the serial pass");
        assert_eq!(host(x), v, "the input, still held here, was changed");
    }
}
