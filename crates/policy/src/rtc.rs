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
//!
//! **Guided** (`RtcPrefix::guidance = Some(β)`): inpainting as above plus Black et al.'s
//! guidance term (their Algorithm 1), which pulls the whole sample towards the prefix rather
//! than only overwriting it. At every Euler step, with `τ = k/N` and `x` already inpainted:
//!
//! * `Â¹ = x + (1 − τ)·v(x)` is the head's estimate of the final chunk;
//! * `e = W ⊙ (Y − Â¹)` is its error against the prefix `Y`, weighted by the soft mask
//!   `W = 1 − w` (1 on frozen steps, decaying over the overlap, 0 after it);
//! * `g = eᵀ ∂Â¹/∂x` is one vector-Jacobian product through the head (burn autodiff; the
//!   weights stay constants);
//! * `x ← x + (v + min(β, (1 − τ)/(τ·r²))·g)/N` with `r² = (1 − τ)²/(τ² + (1 − τ)²)`.
//!
//! It costs a forward and a backward pass per Euler step (about 3× plain sampling); Black et
//! al. use β = 5. The guidance is only as strong as the head's Jacobian: a head whose estimate
//! `Â¹` hardly depends on `x` (a sharply multimodal one, early in sampling) gets little pull.

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
    /// `Some(β)`: guided RTC with the guidance weight clipped at `β > 0` (see the module
    /// docs); `None`: inpainting only.
    pub guidance: Option<f32>,
}

/// Guidance weight at flow time `τ`: `min(β, (1 − τ)/(τ·r²))`, `r² = (1 − τ)²/(τ² + (1 − τ)²)`.
fn guidance_weight(tau: f32, beta: f32) -> f32 {
    if tau <= 0.0 {
        return beta;
    }
    let r2 = (1.0 - tau).powi(2) / (tau.powi(2) + (1.0 - tau).powi(2));
    ((1.0 - tau) / (tau * r2)).min(beta)
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
        if let Some(beta) = prefix.guidance
            && !(beta.is_finite() && beta > 0.0)
        {
            return Err(PolicyError::input(
                "prefix",
                format!("guidance weight β = {beta} must be finite and > 0"),
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
        let guidance = prefix.guidance;
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
            let v = match guidance {
                None => {
                    let v = self.velocity(cond, x.clone(), t_disc)?;
                    x = x + v.clone().mul_scalar(dt);
                    v
                }
                Some(beta) => {
                    let (v, g) = self.guidance(cond, &x, &padded, &keep, tau, t_disc)?;
                    let weight = guidance_weight(tau, beta);
                    x = x + (v.clone() + g.mul_scalar(weight)).mul_scalar(dt);
                    v
                }
            };
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

    /// The velocity at `x` and the guidance VJP `g = eᵀ ∂Â¹/∂x` with `Â¹ = x + (1 - τ)·v(x)` and
    /// `e = mask ⊙ (y - Â¹)`.
    fn guidance(
        &self,
        cond: &Conditioning,
        x: &Tensor<3>,
        y: &Tensor<3>,
        mask: &Tensor<3>,
        tau: f32,
        t_disc: i64,
    ) -> Result<(Tensor<3>, Tensor<3>), PolicyError> {
        let xa = x.clone().autodiff().require_grad();
        let v = self.velocity(cond, xa.clone(), t_disc)?;
        let f = xa.clone() + v.clone().mul_scalar(1.0 - tau);
        let e = (y.clone() - f.clone().inner()) * mask.clone();
        let grads = (f * e).sum().backward();
        let g = xa.grad(&grads).ok_or_else(|| {
            PolicyError::input("prefix", "guided RTC: no gradient reached the actions")
        })?;
        Ok((v.inner(), g))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ActionHead;

    #[test]
    fn guidance_weight_follows_black_et_al() {
        assert_eq!(guidance_weight(0.0, 5.0), 5.0);
        // τ = 0.5: r² = 0.5, (1 - τ)/(τ r²) = 2.
        assert!((guidance_weight(0.5, 5.0) - 2.0).abs() < 1e-6);
        // Near τ = 0 the clip binds.
        assert_eq!(guidance_weight(0.01, 5.0), 5.0);
    }

    /// The guidance term is the vector-Jacobian product it claims to be: compared with central
    /// finite differences of `φ(x) = Σ e ⊙ Â¹(x)` (e held fixed) on the upstream tiny head.
    #[test]
    fn guidance_is_the_vjp_of_the_weighted_error() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/gr00t-n1.5-action-head-tiny");
        let device = crate::cpu_device();
        let (head, _) = ActionHead::load(&dir, &device, &Default::default()).unwrap();
        let cfg = head.config.clone();
        let (h, a, db) = (
            cfg.action_horizon,
            cfg.action_dim,
            cfg.backbone_embedding_dim,
        );
        let t3 =
            |v: Vec<f32>, s: [usize; 3]| Tensor::<3>::from_data(TensorData::new(v, s), &device);
        let feats = t3(crate::rng::Rng::new(3).normal_vec(6 * db), [1, 6, db]);
        let state = Tensor::<3>::zeros([1, 1, cfg.max_state_dim], &device);
        let cond = head.condition(feats, state, &[1]).unwrap();
        let x0 = crate::rng::Rng::new(11).normal_vec(h * a);
        let y = t3(crate::rng::Rng::new(12).normal_vec(h * a), [1, h, a]);
        let mask: Vec<f32> = rtc_weights(h, h / 2, 2).iter().map(|w| 1.0 - w).collect();
        let mask = Tensor::<3>::from_data(TensorData::new(mask, [1, h, 1]), &device);
        let (tau, t_disc) = (0.25f32, cfg.inference_timestep(1, 4));
        let x = t3(x0.clone(), [1, h, a]);
        let (_, g) = head.guidance(&cond, &x, &y, &mask, tau, t_disc).unwrap();
        let g: Vec<f32> = g.into_data().try_to_vec::<f32>().unwrap();
        let f = |xv: &[f32]| -> Tensor<3> {
            let x = t3(xv.to_vec(), [1, h, a]);
            let v = head.velocity(&cond, x.clone(), t_disc).unwrap();
            x + v.mul_scalar(1.0 - tau)
        };
        let e = (y.clone() - f(&x0)) * mask.clone();
        let phi = |xv: &[f32]| -> f64 {
            let p: Vec<f32> = (f(xv) * e.clone()).into_data().try_to_vec::<f32>().unwrap();
            p.iter().map(|&v| f64::from(v)).sum()
        };
        let eps = 1e-2f32;
        // Coordinates in the frozen part, the overlap and past it.
        for i in [0, a + 1, (h / 2 - 1) * a + 2, (h - 1) * a + a - 1] {
            let (mut up, mut down) = (x0.clone(), x0.clone());
            up[i] += eps;
            down[i] -= eps;
            let fd = (phi(&up) - phi(&down)) / (2.0 * f64::from(eps));
            let err = (fd - f64::from(g[i])).abs();
            assert!(
                err <= 2e-3 + 2e-2 * fd.abs(),
                "coordinate {i}: VJP {} vs finite differences {fd}",
                g[i]
            );
        }
        // And it is not trivially zero.
        assert!(g.iter().map(|v| v.abs()).sum::<f32>() > 1e-3);
    }
}
