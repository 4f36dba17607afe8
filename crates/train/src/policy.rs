//! System 1 as trained here: the action head, a learned null plan, and the per-embodiment
//! normalization that maps physical states/actions to the head's [-1, 1] space.

use bicameral_dataset::DatasetInfo;
use bicameral_policy::burn::module::{Module, Param};
use bicameral_policy::burn::tensor::{Device, Tensor, TensorData};
use bicameral_policy::{
    ActionHead, FlowmatchingActionHeadConfig, InitialNoise, PlanOutput, Planner, PromptEncoder,
    RtcPrefix, preprocess_image,
};
use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// Min–max statistics of one embodiment (GR00T's `min_max` mode): physical values map to
/// [-1, 1] per dimension. Dimensions whose range is below 1e-6 map to 0 and back to their
/// minimum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbodimentNorm {
    /// Embodiment name (the dataset's `robot_type`); its index is the head's embodiment id.
    pub name: String,
    /// State minimum per dimension (physical units: rad, m, gripper opening).
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

impl EmbodimentNorm {
    /// From a dataset's `observation.state` and `action` statistics; the name is its
    /// `robot_type` (or `"robot"` when it has none).
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
            name: info.robot_type.clone().unwrap_or_else(|| "robot".into()),
            state_min: f(&s.min),
            state_max: f(&s.max),
            action_min: f(&a.min),
            action_max: f(&a.max),
        })
    }

    /// Widens the ranges to cover `other` (another dataset of the same embodiment).
    pub fn merge(&mut self, other: &Self) -> Result<(), String> {
        if other.state_dim() != self.state_dim() || other.action_dim() != self.action_dim() {
            return Err(format!(
                "embodiment \"{}\" has {}/{} state/action values in one dataset and {}/{} in another",
                self.name,
                self.state_dim(),
                self.action_dim(),
                other.state_dim(),
                other.action_dim()
            ));
        }
        let widen = |lo: &mut [f32], hi: &mut [f32], olo: &[f32], ohi: &[f32]| {
            for i in 0..lo.len() {
                lo[i] = lo[i].min(olo[i]);
                hi[i] = hi[i].max(ohi[i]);
            }
        };
        widen(
            &mut self.state_min,
            &mut self.state_max,
            &other.state_min,
            &other.state_max,
        );
        widen(
            &mut self.action_min,
            &mut self.action_max,
            &other.action_min,
            &other.action_max,
        );
        Ok(())
    }

    /// State dimension.
    pub fn state_dim(&self) -> usize {
        self.state_min.len()
    }

    /// Action dimension.
    pub fn action_dim(&self) -> usize {
        self.action_min.len()
    }

    /// Physical state → [-1, 1], zero-padded to `width`.
    pub fn state(&self, s: &[f32], width: usize) -> Vec<f32> {
        let mut out: Vec<f32> = s
            .iter()
            .zip(self.state_min.iter().zip(&self.state_max))
            .map(|(&x, (&lo, &hi))| to_unit(x, lo, hi))
            .collect();
        out.resize(width.max(out.len()), 0.0);
        out
    }

    /// Physical action → [-1, 1], zero-padded to `width`.
    pub fn action(&self, a: &[f32], width: usize) -> Vec<f32> {
        let mut out: Vec<f32> = a
            .iter()
            .zip(self.action_min.iter().zip(&self.action_max))
            .map(|(&x, (&lo, &hi))| to_unit(x, lo, hi))
            .collect();
        out.resize(width.max(out.len()), 0.0);
        out
    }

    /// [-1, 1] (padded) → physical action of this embodiment (clamped to the training range).
    pub fn unaction(&self, y: &[f32]) -> Vec<f32> {
        y.iter()
            .zip(self.action_min.iter().zip(&self.action_max))
            .map(|(&v, (&lo, &hi))| from_unit(v, lo, hi))
            .collect()
    }
}

/// Normalization of every embodiment the policy was trained on; embodiment `i` is the head's
/// embodiment id `i`. States and actions are zero-padded to the widest embodiment (GR00T's
/// `max_state_dim` / `max_action_dim`), and padded action dimensions are masked out of the loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalizer {
    /// One entry per embodiment id.
    pub embodiments: Vec<EmbodimentNorm>,
}

impl Normalizer {
    /// The head's state width (widest embodiment).
    pub fn max_state_dim(&self) -> usize {
        self.embodiments
            .iter()
            .map(|e| e.state_dim())
            .max()
            .unwrap_or(0)
    }

    /// The head's action width (widest embodiment).
    pub fn max_action_dim(&self) -> usize {
        self.embodiments
            .iter()
            .map(|e| e.action_dim())
            .max()
            .unwrap_or(0)
    }

    /// The id of the embodiment called `name`.
    pub fn id(&self, name: &str) -> Option<usize> {
        self.embodiments.iter().position(|e| e.name == name)
    }

    /// The embodiments' names, in id order (for error messages).
    pub fn names(&self) -> Vec<&str> {
        self.embodiments.iter().map(|e| e.name.as_str()).collect()
    }

    /// Adds `norm` as a new embodiment or merges it into the one of the same name; returns its id.
    pub fn add(&mut self, norm: EmbodimentNorm) -> Result<usize, String> {
        match self.id(&norm.name) {
            Some(i) => {
                self.embodiments[i].merge(&norm)?;
                Ok(i)
            }
            None => {
                self.embodiments.push(norm);
                Ok(self.embodiments.len() - 1)
            }
        }
    }
}

/// One camera frame for the planner: RGB u8 `[height][width][3]`.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// Pixels, row-major.
    pub rgb: &'a [u8],
    /// Width (px).
    pub width: usize,
    /// Height (px).
    pub height: usize,
}

/// The trainable policy: System 1 (the action head and a learned null plan `[P, Db]` that
/// stands in for System 2's plan tokens when System 1 runs alone) and, when trained jointly,
/// System 2 (the planner and its prompt encoder).
#[derive(Module, Debug)]
pub struct Policy {
    /// The flow-matching action head.
    pub head: ActionHead,
    /// Learned plan tokens `[P, Db]`.
    pub null_plan: Param<Tensor<2>>,
    /// System 2, when the policy has one.
    pub planner: Option<Planner>,
    /// The planner's tokenizer and prompt layout (present with `planner`).
    #[module(skip)]
    pub prompt: Option<PromptEncoder>,
    /// Normalization statistics (travel with the checkpoint).
    #[module(skip)]
    pub normalizer: Normalizer,
}

fn policy_err(message: String) -> TrainError {
    TrainError::Policy(bicameral_policy::PolicyError::Config(message))
}

impl Policy {
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
            planner: None,
            prompt: None,
            normalizer,
        })
    }

    /// Adds System 2; its plan width must be the head's `backbone_embedding_dim`.
    pub fn with_planner(
        mut self,
        planner: Planner,
        prompt: PromptEncoder,
    ) -> Result<Self, TrainError> {
        let (dp, db) = (
            planner.config.plan_dim(),
            self.head.config.backbone_embedding_dim,
        );
        if dp != db {
            return Err(policy_err(format!(
                "the planner's plan width {dp} differs from the head's backbone_embedding_dim {db}"
            )));
        }
        self.planner = Some(planner);
        self.prompt = Some(prompt);
        Ok(self)
    }

    /// Planner input for a batch of observations: `views[b]` holds observation b's camera
    /// frames (one per planner view) and `instructions[b]` its instruction. Returns
    /// `pixels [B·V, 3, S, S]` on the planner's device and the encoded prompts.
    pub fn planner_input(
        &self,
        views: &[Vec<View<'_>>],
        instructions: &[&str],
    ) -> Result<(Tensor<4>, Vec<bicameral_policy::Prompt>), TrainError> {
        let (Some(planner), Some(prompt)) = (&self.planner, &self.prompt) else {
            return Err(policy_err("the policy has no planner (System 2)".into()));
        };
        let c = &planner.config;
        let size = c.vision.image_size;
        let mut px = Vec::with_capacity(views.len() * c.num_views * 3 * size * size);
        for (b, obs) in views.iter().enumerate() {
            if obs.len() != c.num_views {
                return Err(policy_err(format!(
                    "observation {b} has {} camera frames, the planner takes {}",
                    obs.len(),
                    c.num_views
                )));
            }
            for (i, v) in obs.iter().enumerate() {
                if v.width == 0 || v.height == 0 || v.rgb.len() != v.width * v.height * 3 {
                    return Err(policy_err(format!(
                        "observation {b}, view {i}: {} bytes for a {}×{} RGB image",
                        v.rgb.len(),
                        v.width,
                        v.height
                    )));
                }
                px.extend(preprocess_image(v.rgb, v.width, v.height, size));
            }
        }
        let n = views.len() * c.num_views;
        let pixels = Tensor::from_data(TensorData::new(px, [n, 3, size, size]), &planner.device());
        let image_tokens = c.num_views * c.tokens_per_view();
        let prompts = instructions
            .iter()
            .map(|t| prompt.encode(t, image_tokens))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((pixels, prompts))
    }

    /// System 2 on one observation: plan tokens `[1, S, Db]`, masks and subgoal.
    pub fn plan_observation(
        &self,
        views: &[View<'_>],
        instruction: &str,
    ) -> Result<PlanOutput, TrainError> {
        let (pixels, prompts) = self.planner_input(&[views.to_vec()], &[instruction])?;
        let planner = self
            .planner
            .as_ref()
            .ok_or_else(|| policy_err("the policy has no planner (System 2)".into()))?;
        Ok(planner.forward(pixels, &prompts)?)
    }

    /// The plan tokens for a batch of `b`: `[b, P, Db]`.
    pub fn plan(&self, b: usize) -> Tensor<3> {
        let [p, db] = self.null_plan.val().dims();
        self.null_plan.val().reshape([1, p, db]).repeat_dim(0, b)
    }

    fn embodiment(&self, id: usize) -> Result<&EmbodimentNorm, TrainError> {
        self.normalizer.embodiments.get(id).ok_or_else(|| {
            policy_err(format!(
                "embodiment id {id}: the policy knows {} embodiments",
                self.normalizer.embodiments.len()
            ))
        })
    }

    fn state_tensor(&self, norm: &EmbodimentNorm, state: &[f32]) -> Result<Tensor<3>, TrainError> {
        if state.len() != norm.state_dim() {
            return Err(policy_err(format!(
                "state has {} values, embodiment \"{}\" has {}",
                state.len(),
                norm.name,
                norm.state_dim()
            )));
        }
        let w = self.head.config.max_state_dim;
        Ok(Tensor::from_data(
            TensorData::new(norm.state(state, w), [1, 1, w]),
            &self.head.device(),
        ))
    }

    fn to_physical(
        &self,
        norm: &EmbodimentNorm,
        actions: Tensor<3>,
    ) -> Result<Vec<Vec<f32>>, TrainError> {
        let host = bicameral_policy::HostTensor::from_tensor(actions)?;
        let values = host.as_f32().unwrap_or_default();
        Ok(values
            .chunks(self.head.config.action_dim)
            .map(|row| norm.unaction(row))
            .collect())
    }

    /// One chunk of `H` actions (physical units, the embodiment's action layout) for a
    /// physical `state` of embodiment `embodiment`: K Euler steps from seeded noise, on the
    /// learned null plan (System 1 alone).
    pub fn act(
        &self,
        embodiment: usize,
        state: &[f32],
        seed: u64,
    ) -> Result<Vec<Vec<f32>>, TrainError> {
        self.act_with_plan(embodiment, state, self.plan(1), seed)
    }

    /// Like [`act`](Self::act) on System 2's plan tokens `plan [1, S, Db]`.
    pub fn act_with_plan(
        &self,
        embodiment: usize,
        state: &[f32],
        plan: Tensor<3>,
        seed: u64,
    ) -> Result<Vec<Vec<f32>>, TrainError> {
        let norm = self.embodiment(embodiment)?;
        let s = self.state_tensor(norm, state)?;
        let out = self.head.get_action(
            plan,
            s,
            &[embodiment as i64],
            InitialNoise::Seed(seed),
            None,
        )?;
        self.to_physical(norm, out.actions)
    }

    /// Like [`act`](Self::act), continuing the previous chunk with real-time chunking:
    /// `prefix` holds the previous chunk's actions for the first `P` steps of the new one
    /// (physical units), of which the first `frozen` are reproduced exactly and the rest are
    /// blended into the new sample (see `bicameral_policy::rtc`). `guidance = Some(β)` adds
    /// Black et al.'s guidance term (clip β), which keeps the whole new chunk on the committed
    /// chunk's mode; `None` is inpainting only.
    pub fn act_rtc(
        &self,
        embodiment: usize,
        state: &[f32],
        prefix: &[Vec<f32>],
        frozen: usize,
        guidance: Option<f32>,
        seed: u64,
    ) -> Result<Vec<Vec<f32>>, TrainError> {
        self.act_rtc_with_plan(
            embodiment,
            state,
            self.plan(1),
            prefix,
            frozen,
            guidance,
            seed,
        )
    }

    /// [`act_rtc`](Self::act_rtc) on System 2's plan tokens `plan [1, S, Db]`.
    #[allow(clippy::too_many_arguments)]
    pub fn act_rtc_with_plan(
        &self,
        embodiment: usize,
        state: &[f32],
        plan: Tensor<3>,
        prefix: &[Vec<f32>],
        frozen: usize,
        guidance: Option<f32>,
        seed: u64,
    ) -> Result<Vec<Vec<f32>>, TrainError> {
        let norm = self.embodiment(embodiment)?;
        let s = self.state_tensor(norm, state)?;
        let a = self.head.config.action_dim;
        let mut values = Vec::with_capacity(prefix.len() * a);
        for (i, row) in prefix.iter().enumerate() {
            if row.len() != norm.action_dim() {
                return Err(policy_err(format!(
                    "prefix action {i} has {} values, embodiment \"{}\" has {}",
                    row.len(),
                    norm.name,
                    norm.action_dim()
                )));
            }
            values.extend(norm.action(row, a));
        }
        let device = self.head.device();
        let prefix = RtcPrefix {
            actions: Tensor::from_data(TensorData::new(values, [1, prefix.len(), a]), &device),
            frozen,
            guidance,
        };
        let cond = self.head.condition(plan, s, &[embodiment as i64])?;
        let out = self
            .head
            .sample_rtc(&cond, InitialNoise::Seed(seed), &prefix, None)?;
        self.to_physical(norm, out.actions)
    }
}
