//! Helpers shared by the training tests.

use std::path::PathBuf;

use bicameral_train::{HeadSize, OptimConfig, TrainConfig};

/// A fresh (removed) temporary directory for test `name`.
pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bicameral-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A tiny head (DiT 2 × 32, 2 plan tokens × 16, H = 8, K = 8) trained with AdamW at 3e-3
/// (50 warm-up steps, cosine to 10 %), batch 32, clipping at 1.
pub fn tiny_config(steps: usize, seed: u64, ema_decay: Option<f64>) -> TrainConfig {
    TrainConfig {
        steps,
        batch_size: 32,
        seed,
        checkpoint_every: 100,
        head: HeadSize {
            layers: 2,
            heads: 2,
            head_dim: 16,
            hidden_size: 32,
            plan_dim: 16,
            plan_tokens: 2,
            future_tokens: 2,
            adapter_layers: 1,
            adapter_heads: 2,
            action_horizon: 8,
            inference_steps: 8,
        },
        optim: OptimConfig {
            lr: 3e-3,
            warmup_steps: 50,
            final_lr_fraction: 0.1,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            grad_clip_norm: Some(1.0),
            ema_decay,
        },
        planner: None,
        validation_episodes: 0,
    }
}
