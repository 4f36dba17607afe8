//! System 1 as trained here: the action head, a learned null plan, and the normalization that
//! maps physical states/actions to the head's [-1, 1] space.

use bicameral_dataset::DatasetInfo;
use bicameral_policy::burn::module::{Module, Param};
use bicameral_policy::burn::tensor::{Device, Tensor, TensorData};
use bicameral_policy::{ActionHead, FlowmatchingActionHeadConfig, InitialNoise};
use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// Per-dimension min–max normalization to [-1, 1] (GR00T's `min_max` mode). Dimensions whose
/// range is below 1e-6 map to 0 and back to their minimum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalizer {
    /// State minimum per dimension (physical units).
    pub state_min: Vec<f32>,
    /// State maximum per dimension.
    pub state_max: Vec<f32>,
    /// Action minimum per dimension.
    pub action_min: Vec<f32>,
    /// Action maximum per dimension.
    pub action_max: Vec<f32>,
}

fn to_unit(x: f32, lo: f32, hi: f32) -> f32 {
    if hi - lo < 1e-6 {
        0.0
    } else {
        2.0 * (x - lo) / (hi - lo) - 1.0
    }
}

fn from_unit(y: f32, lo: f32, hi: f32) -> f32 {
    if hi - lo < 1e-6 {
        lo
    } else {
        lo + (y.clamp(-1.0, 1.0) + 1.0) * 0.5 * (hi - lo)
    }
}

impl Normalizer {
    /// From a dataset's `observation.state` and `action` statistics.
    pub fn from_info(info: &DatasetInfo, dir: &std::path::Path) -> Result<Self, TrainError> {
        let get = |key: &str| {
            info.stats(key).ok_or_else(|| TrainError::Dataset {
                dir: dir.to_path_buf(),
                message: format!("meta has no statistics for \"{key}\""),
            })
        };
        let (s, a) = (get("observation.state")?, get("action")?);
        let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        Ok(Self {
            state_min: f(&s.min),
            state_max: f(&s.max),
            action_min: f(&a.min),
            action_max: f(&a.max),
        })
    }

    /// State dimension.
    pub fn state_dim(&self) -> usize {
        self.state_min.len()
    }

    /// Action dimension.
    pub fn action_dim(&self) -> usize {
        self.action_min.len()
    }

    /// Physical state → [-1, 1].
    pub fn state(&self, s: &[f32]) -> Vec<f32> {
        s.iter()
            .zip(self.state_min.iter().zip(&self.state_max))
            .map(|(&x, (&lo, &hi))| to_unit(x, lo, hi))
            .collect()
    }

    /// Physical action → [-1, 1].
    pub fn action(&self, a: &[f32]) -> Vec<f32> {
        a.iter()
            .zip(self.action_min.iter().zip(&self.action_max))
            .map(|(&x, (&lo, &hi))| to_unit(x, lo, hi))
            .collect()
    }

    /// [-1, 1] → physical action (clamped to the training range).
    pub fn unaction(&self, y: &[f32]) -> Vec<f32> {
        y.iter()
            .zip(self.action_min.iter().zip(&self.action_max))
            .map(|(&v, (&lo, &hi))| from_unit(v, lo, hi))
            .collect()
    }
}

/// The trainable System 1: the action head and a learned null plan `[P, Db]` that stands in
/// for System 2's plan tokens when System 1 is trained and run alone.
#[derive(Module, Debug)]
pub struct S1Policy {
    /// The flow-matching action head.
    pub head: ActionHead,
    /// Learned plan tokens `[P, Db]`.
    pub null_plan: Param<Tensor<2>>,
    /// Normalization statistics (travel with the checkpoint).
    #[module(skip)]
    pub normalizer: Normalizer,
}

impl S1Policy {
    /// A freshly initialized policy (deterministic in `seed`).
    pub fn init(
        config: &FlowmatchingActionHeadConfig,
        plan_tokens: usize,
        normalizer: Normalizer,
        device: &Device,
        seed: u64,
    ) -> Result<Self, TrainError> {
        let head = ActionHead::init(config, device, seed)?;
        let db = config.backbone_embedding_dim;
        let values: Vec<f32> = bicameral_policy::rng::Rng::new(seed ^ 0x5eed)
            .normal_vec(plan_tokens * db)
            .into_iter()
            .map(|x| 0.02 * x)
            .collect();
        let null_plan = Param::from_tensor(Tensor::from_data(
            TensorData::new(values, [plan_tokens, db]),
            device,
        ));
        Ok(Self {
            head,
            null_plan,
            normalizer,
        })
    }

    /// The plan tokens for a batch of `b`: `[b, P, Db]`.
    pub fn plan(&self, b: usize) -> Tensor<3> {
        let [p, db] = self.null_plan.val().dims();
        self.null_plan.val().reshape([1, p, db]).repeat_dim(0, b)
    }

    /// One chunk of `H` actions (physical units, action layout) for a physical `state`:
    /// K Euler steps from seeded noise.
    pub fn act(&self, state: &[f32], seed: u64) -> Result<Vec<Vec<f32>>, TrainError> {
        let cfg = &self.head.config;
        if state.len() != self.normalizer.state_dim() {
            return Err(TrainError::Policy(bicameral_policy::PolicyError::Config(
                format!(
                    "state has {} values, the policy was trained on {}",
                    state.len(),
                    self.normalizer.state_dim()
                ),
            )));
        }
        let device = self.head.device();
        let s = Tensor::<3>::from_data(
            TensorData::new(self.normalizer.state(state), [1, 1, cfg.max_state_dim]),
            &device,
        );
        let out = self
            .head
            .get_action(self.plan(1), s, &[0], InitialNoise::Seed(seed), None)?;
        let values: Vec<f32> = out
            .actions
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| bicameral_policy::PolicyError::Config(format!("{e:?}")))?;
        Ok(values
            .chunks(cfg.action_dim)
            .map(|row| self.normalizer.unaction(row))
            .collect())
    }
}
