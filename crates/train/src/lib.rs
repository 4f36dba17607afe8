//! Training System 1 of bicameral: the flow-matching action head ([`bicameral_policy`]) on
//! LeRobot datasets ([`bicameral_dataset`]).
//!
//! * [`TrainConfig`]: the head's size and the optimisation settings (TOML, `models/*.toml`).
//! * [`Policy`]: the head plus a learned "null plan" (the plan tokens System 1 sees when it
//!   is trained alone, without System 2), with the dataset's normalization statistics.
//! * [`train_s1`]: flow-matching loss with Beta-distributed time, AdamW, linear warm-up +
//!   cosine decay, global gradient-norm clipping (PyTorch `clip_grad_norm_` semantics),
//!   optional EMA of the weights, several datasets / embodiments mixed in every batch (one
//!   embodiment id per `robot_type`, as GR00T's embodiment tags), loss curve to CSV and to a
//!   callback, checkpoints that resume exactly (AdamW moments included).
//!
//! Units: states and actions are in the dataset's physical units (rad, m) at the API; inside,
//! both are min–max normalized per embodiment and dimension to [-1, 1] (GR00T's `min_max` mode) and padded to
//! the head's `max_state_dim` / `action_dim` with zeros (padded action dimensions are masked
//! out of the loss).

pub mod checkpoint;
pub mod config;
pub mod error;
pub mod policy;
pub mod rng;
pub mod trainer;

pub use checkpoint::{Resumed, TrainState, load_checkpoint, load_training_state, save_checkpoint};
pub use config::{HeadSize, OptimConfig, PlannerPart, PlannerSize, TrainConfig};
pub use error::TrainError;
pub use policy::{EmbodimentNorm, Normalizer, Policy, View};
pub use trainer::{
    LOSS_CSV_HEADER, Score, StepInfo, TrainReport, VAL_CSV_HEADER, score, train, train_s1,
};
