//! Real-time chunking (RTC): sampling a new action chunk while the previous one is still being
//! executed, so that chunk switches neither jump nor stall.
//!
//! When chunk k+1 is requested, the executor has already committed the next `d` actions of
//! chunk k (those that will run during the inference delay), and chunk k has `P ≥ d` actions
//! left in all, aligned with the first `P` steps of the new chunk. The new chunk is sampled with
//! those `P` actions as a prefix (GR00T's RTC, with Black et al. 2025's soft mask, arXiv
//! 2506.07339):
//!
//! * every step `i` gets a weight `w_i` of the new sample: `w_i = 0` for `i < d` (frozen),
//!   `w_i = 1 - W_i` in the overlap `d ≤ i < P` where `W_i = c_i (e^{c_i} - 1) / (e - 1)` with
//!   `c_i = (P - i) / (P - d + 1)` decays from ≈ 1 to ≈ 0 (Black et al.'s soft mask), and
//!   `w_i = 1` after the overlap;
//! * `x_0 = (1 - w) · prefix + w · noise`, and every Euler update is scaled by `w`:
//!   `x_{k+1} = x_k + w · v_k / N`.
//!
//! So the first `d` actions equal the prefix exactly (bit for bit), the overlap blends from the
//! old chunk into the new one, and the rest is an ordinary sample conditioned on a DiT input
//! that already contains the committed actions. Training-free; one head evaluation per Euler
//! step, like plain sampling.

use burn::tensor::{Tensor, TensorData};

use crate::error::PolicyError;
use crate::model::{ActionHead, Conditioning, InitialNoise, Sample};

/// What the executor has committed: the previous chunk's remaining actions, in the head's
/// (normalized) action space.
#[derive(Debug, Clone)]
pub struct RtcPrefix {
    /// `[B, P, A]`: the previous chunk's actions for the first `P` steps of the new chunk
    /// (`P ≤ H`).
    pub actions: Tensor<3>,
    /// `d`: how many of them are frozen (will execute before the new chunk arrives); `d ≤ P`.
    pub frozen: usize,
}

/// Per-step weight of the new sample (see the module docs): `H` values in `[0, 1]`.
pub fn rtc_weights(horizon: usize, prefix_len: usize, frozen: usize) -> Vec<f32> {
    let e = std::f64::consts::E;
    (0..horizon)
        .map(|i| {
            if i < frozen {
                0.0
            } else if i < prefix_len {
                let c = (prefix_len - i) as f64 / (prefix_len - frozen + 1) as f64;
                let w_old = c * (c.exp() - 1.0) / (e - 1.0);
                (1.0 - w_old) as f32
            } else {
                1.0
            }
        })
        .collect()
}

impl ActionHead {
    /// Samples a chunk that continues `prefix` (real-time chunking, see [`crate::rtc`]):
    /// `actions[:, :d]` equal `prefix.actions[:, :d]` exactly; steps `d..P` blend from the prefix
    /// into the new sample; the rest is sampled normally. `num_steps` defaults to
    /// `num_inference_timesteps`.
    pub fn sample_rtc(
        &self,
        cond: &Conditioning,
        noise: InitialNoise,
        prefix: &RtcPrefix,
        num_steps: Option<usize>,
    ) -> Result<Sample, PolicyError> {
        let n = num_steps.unwrap_or(self.config.num_inference_timesteps);
        if n == 0 {
            return Err(PolicyError::input("num_steps", "must be > 0"));
        }
        let b = cond.batch();
        let (h, a) = (self.config.action_horizon, self.config.action_dim);
        let [pb, p, pa] = prefix.actions.dims();
        if pb != b || p > h || pa != a {
            return Err(PolicyError::input(
                "prefix",
                format!(
                    "shape {:?}: expected [{b}, P ≤ {h}, {a}] [B, P, action_dim]",
                    prefix.actions.dims()
                ),
            ));
        }
        if prefix.frozen > p {
            return Err(PolicyError::input(
                "prefix",
                format!("frozen = {} exceeds the prefix length {p}", prefix.frozen),
            ));
        }
        let device = self.device();
        let noise = match noise {
            InitialNoise::Tensor(x) => x,
            InitialNoise::Seed(seed) => {
                let values = crate::rng::Rng::new(seed).normal_vec(b * h * a);
                Tensor::from_data(TensorData::new(values, [b, h, a]), &device)
            }
        };
        if noise.dims() != [b, h, a] {
            return Err(PolicyError::input(
                "init_noise",
                format!("shape {:?}, expected [{b}, {h}, {a}]", noise.dims()),
            ));
        }
        let w = rtc_weights(h, p, prefix.frozen);
        let w = Tensor::<3>::from_data(TensorData::new(w, [1, h, 1]), &device);
        // The prefix padded to H steps (the padding has weight 0 in the blend: w = 1 there).
        let padded = if p < h {
            Tensor::cat(
                vec![
                    prefix.actions.clone(),
                    Tensor::zeros([b, h - p, a], &device),
                ],
                1,
            )
        } else {
            prefix.actions.clone()
        };
        // Weight of the prefix: 1 - w.
        let keep = w.clone().neg().add_scalar(1.0);
        let mut x = noise.clone();
        let dt = 1.0 / n as f32;
        let mut velocities = Vec::with_capacity(n);
        let mut timesteps = Vec::with_capacity(n);
        for k in 0..n {
            // Inpainting: before every step, the prefix part of x_τ is replaced (softly, by
            // 1 - w) with the prefix on the same noise path, τ·prefix + (1 - τ)·noise, so the
            // head sees a prefix of the noise level it was trained on and continues it.
            let tau = k as f32 / n as f32;
            let on_path = padded.clone().mul_scalar(tau) + noise.clone().mul_scalar(1.0 - tau);
            x = keep.clone() * on_path + w.clone() * x;
            let t_disc = self.config.inference_timestep(k, n);
            let v = self.velocity(cond, x.clone(), t_disc)?;
            x = x + v.clone().mul_scalar(dt);
            velocities.push(v);
            timesteps.push(t_disc);
        }
        // τ = 1: frozen steps become the prefix exactly, the overlap blends softly.
        let x = keep * padded + w * x;
        Ok(Sample {
            actions: x,
            velocities,
            timesteps,
        })
    }
}
