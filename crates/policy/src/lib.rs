//! System 1 of bicameral: the GR00T N1.5 flow-matching action head ("action expert") in burn
//! 0.22, numerically faithful to upstream Isaac-GR00T (`FlowmatchingActionHead`).
//!
//! * [`FlowmatchingActionHeadConfig`]: upstream config (also read from a full GR00T
//!   `config.json` under `action_head_cfg`).
//! * [`ActionHead`]: the model (a burn [`Module`](burn::module::Module)); load/save with upstream
//!   tensor names ([`ActionHead::load`], [`ActionHead::save`]), inference by Euler sampling
//!   ([`ActionHead::get_action`]), training loss ([`ActionHead::flow_matching_loss`]).
//!
//! System 2: [`Planner`] (SigLIP tower + connector + Qwen3 LM cut at `select_layer`, GR00T
//! N1.5 / Eagle layout) with its [`PromptEncoder`] (HF `tokenizer.json` + prompt template)
//! turns camera images and an instruction into plan tokens, the head's `backbone_features`.
//!
//! Shapes: backbone features `[B, S, Db]`, state `[B, 1, max_state_dim]`, embodiment ids `[B]`,
//! actions/noise/velocities `[B, H, action_dim]`. Everything is computed in float32. The backend
//! is chosen by the [`Device`](burn::tensor::Device) (`Device::flex()` on CPU by default,
//! `Device::cuda(0)` with the `cuda` feature).

pub mod checkpoint;
pub mod config;
pub mod error;
pub mod model;
pub mod nn;
pub mod planner;
pub mod rng;
pub mod rtc;
pub mod text;
pub mod vlm;

pub use burn;
pub use checkpoint::{
    HostData, HostTensor, LoadOptions, LoadReport, read_checkpoint_tensors, read_safetensors,
    write_safetensors,
};
pub use config::{DiTConfig, FlowmatchingActionHeadConfig, SelfAttentionConfig};
pub use error::PolicyError;
pub use model::{ActionHead, Conditioning, InitialNoise, LossOutput, Sample, StepTrace};
pub use planner::{
    ConnectorKind, PlanOutput, Planner, PlannerConfig, preprocess_image, save_tokenizer,
};
pub use rtc::{RtcPrefix, rtc_weights};
pub use text::{Prompt, PromptConfig, PromptEncoder, word_level_tokenizer_json};
pub use vlm::{LmOutput, Qwen3, Qwen3Config, SiglipVision, SiglipVisionConfig, VisionOutput};

/// The default CPU device (flex backend).
pub fn cpu_device() -> burn::tensor::Device {
    burn::tensor::Device::flex()
}
