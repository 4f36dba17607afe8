//! The burn models behind the runtime's [`Planner`] and [`ActionPolicy`] traits: a trained
//! checkpoint's System 2 and System 1 as nodes.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use bicameral_policy::HostTensor;
use bicameral_policy::burn::tensor::{Tensor, TensorData};
use bicameral_runtime::RuntimeError;
use bicameral_runtime::nodes::{ActionPolicy, Image, PlanTokens, Planner};
use bicameral_train::{Policy, TrainConfig, View, load_checkpoint};

fn node_err(e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Node(e.to_string())
}

/// A node's own compute pool: the rayon pool its tensor ops run on (burn-flex and its GEMM
/// split work over the current rayon pool). Sharing the process-wide pool between System 1 and
/// System 2 makes each wait behind the other's work and wake-ups; at the default model sizes one
/// thread per node is also faster per call than two (`benches/s1_vs_torch.sh`).
#[derive(Clone)]
pub struct ComputePool(Option<Arc<rayon::ThreadPool>>);

impl ComputePool {
    /// The process-wide pool (RAYON_NUM_THREADS or one thread per core).
    pub fn global() -> Self {
        ComputePool(None)
    }

    /// A pool of `threads` worker threads named `{name}-compute-{i}`; `threads` ≥ 1.
    pub fn new(name: &str, threads: usize) -> Result<Self> {
        if threads == 0 {
            bail!("{name}: threads must be at least 1");
        }
        let prefix = name.to_string();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(move |i| format!("{prefix}-compute-{i}"))
            // The main thread's size: whole commands (a training run) execute on these.
            .stack_size(8 << 20)
            .build()
            .with_context(|| format!("{name}: starting a compute pool of {threads} threads"))?;
        Ok(ComputePool(Some(Arc::new(pool))))
    }

    /// A pool of as many threads as the process-wide one (RAYON_NUM_THREADS, default one per
    /// core), for work that is entered once and runs long (a training run, a benchmark): its
    /// parallel tensor ops then start from a pool thread instead of handing each op over from
    /// outside and sleeping until it is done.
    pub fn sized_like_global(name: &str) -> Result<Self> {
        Self::new(name, rayon::current_num_threads())
    }

    /// Runs `f` in this pool (the calling thread waits for it).
    pub fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.0 {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }

    /// Worker threads `run` computes on.
    pub fn threads(&self) -> usize {
        match &self.0 {
            Some(pool) => pool.current_num_threads(),
            None => rayon::current_num_threads(),
        }
    }
}

/// Loads a checkpoint for inference on the CPU.
pub fn load(dir: &Path) -> Result<(Policy, TrainConfig)> {
    let device = bicameral_policy::cpu_device();
    let (policy, config, _) =
        load_checkpoint(dir, &device).with_context(|| format!("loading {}", dir.display()))?;
    Ok((policy, config))
}

/// System 2 from a checkpoint trained with `train dual`.
pub struct BurnPlanner {
    policy: Policy,
    cameras: Vec<String>,
    pool: ComputePool,
}

impl BurnPlanner {
    /// The planner of `policy`; `cameras` are the runtime camera names for its views, in order.
    pub fn new(policy: Policy, cameras: Vec<String>) -> Result<Self> {
        let Some(planner) = &policy.planner else {
            bail!("the checkpoint has no planner (System 2); it was trained with `train s1`");
        };
        if planner.config.num_views != cameras.len() {
            bail!(
                "the planner takes {} camera views, {} cameras given ({cameras:?})",
                planner.config.num_views,
                cameras.len()
            );
        }
        Ok(BurnPlanner {
            policy,
            cameras,
            pool: ComputePool::global(),
        })
    }

    /// Computes on `pool` instead of the process-wide pool.
    pub fn with_pool(mut self, pool: ComputePool) -> Self {
        self.pool = pool;
        self
    }
}

impl Planner for BurnPlanner {
    fn cameras(&self) -> Vec<String> {
        self.cameras.clone()
    }

    fn plan(
        &mut self,
        images: &[Image<'_>],
        instruction: &str,
    ) -> Result<PlanTokens, RuntimeError> {
        let views: Vec<View<'_>> = images
            .iter()
            .map(|i| View {
                rgb: i.rgb,
                width: i.width,
                height: i.height,
            })
            .collect();
        let policy = &self.policy;
        let out = self
            .pool
            .run(|| policy.plan_observation(&views, instruction))
            .map_err(node_err)?;
        let [_, s, d] = out.tokens.dims();
        let tokens = HostTensor::from_tensor(out.tokens).map_err(node_err)?;
        let subgoal = match out.subgoal {
            Some(t) => HostTensor::from_tensor(t)
                .map_err(node_err)?
                .as_f32()
                .unwrap_or_default()
                .to_vec(),
            None => Vec::new(),
        };
        let mask = |m: &[Vec<bool>]| -> Vec<u8> {
            m.first()
                .map(|r| r.iter().map(|&b| u8::from(b)).collect())
                .unwrap_or_default()
        };
        Ok(PlanTokens {
            tokens: tokens.as_f32().unwrap_or_default().to_vec(),
            len: s,
            dim: d,
            attention_mask: mask(&out.attention_mask),
            image_mask: mask(&out.image_mask),
            subgoal,
        })
    }
}

/// System 1 from a checkpoint (`train s1` or `train dual`).
pub struct BurnActor {
    policy: Policy,
    embodiment: usize,
    dt: f64,
    needs_plan: bool,
    rtc_guidance: Option<f32>,
    pool: ComputePool,
}

impl BurnActor {
    /// The head of `policy` acting for embodiment `embodiment` (the dataset's robot type) with
    /// actions `dt` s apart.
    pub fn new(policy: Policy, embodiment: &str, dt: f64) -> Result<Self> {
        let id = policy.normalizer.id(embodiment).with_context(|| {
            format!(
                "the checkpoint has no embodiment \"{embodiment}\" (it knows {:?})",
                policy.normalizer.names()
            )
        })?;
        let needs_plan = policy.planner.is_some();
        Ok(BurnActor {
            policy,
            embodiment: id,
            dt,
            needs_plan,
            rtc_guidance: None,
            pool: ComputePool::global(),
        })
    }
}

impl BurnActor {
    /// Acts on the checkpoint's learned null plan and never waits for System 2 (the
    /// "no plan" ablation).
    pub fn without_plan(mut self) -> Self {
        self.needs_plan = false;
        self
    }

    /// Guided real-time chunking with guidance clip `β` (Black et al.; see
    /// `bicameral_policy::rtc`) instead of inpainting only; `None` keeps inpainting.
    pub fn with_rtc_guidance(mut self, beta: Option<f32>) -> Self {
        self.rtc_guidance = beta;
        self
    }

    /// Computes on `pool` instead of the process-wide pool.
    pub fn with_pool(mut self, pool: ComputePool) -> Self {
        self.pool = pool;
        self
    }
}

impl ActionPolicy for BurnActor {
    fn horizon(&self) -> usize {
        self.policy.head.config.action_horizon
    }

    fn action_dim(&self) -> usize {
        self.policy.normalizer.embodiments[self.embodiment].action_dim()
    }

    fn action_dt(&self) -> f64 {
        self.dt
    }

    fn needs_plan(&self) -> bool {
        self.needs_plan
    }

    fn act(
        &mut self,
        plan: Option<&PlanTokens>,
        state: &[f32],
        prefix: &[f32],
        frozen: usize,
        seed: u64,
    ) -> Result<Vec<f32>, RuntimeError> {
        let d = self.action_dim();
        let rows: Vec<Vec<f32>> = prefix.chunks(d).map(<[f32]>::to_vec).collect();
        let (policy, embodiment, guidance) = (&self.policy, self.embodiment, self.rtc_guidance);
        let out = self
            .pool
            .run(|| {
                let device = policy.head.device();
                let plan = match plan {
                    Some(p) => Tensor::from_data(
                        TensorData::new(p.tokens.clone(), [1, p.len, p.dim]),
                        &device,
                    ),
                    None => policy.plan(1),
                };
                if rows.is_empty() {
                    policy.act_with_plan(embodiment, state, plan, seed)
                } else {
                    policy.act_rtc_with_plan(embodiment, state, plan, &rows, frozen, guidance, seed)
                }
            })
            .map_err(node_err)?;
        Ok(out.into_iter().flatten().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::ComputePool;

    #[test]
    fn a_node_pool_runs_its_work_on_its_own_threads() {
        let pool = ComputePool::new("action", 1).expect("pool");
        assert_eq!(pool.threads(), 1);
        let (threads, name) = pool.run(|| {
            (
                rayon::current_num_threads(),
                std::thread::current().name().map(str::to_string),
            )
        });
        // Tensor ops inside `run` see a one-thread pool (burn-flex and gemm size their work
        // by `rayon::current_num_threads`), on the node's named worker.
        assert_eq!(threads, 1);
        assert_eq!(name.as_deref(), Some("action-compute-0"));
        let two = ComputePool::new("planner", 2).expect("pool");
        assert_eq!(two.run(rayon::current_num_threads), 2);
        let err = ComputePool::new("planner", 0)
            .err()
            .expect("0 threads is refused");
        assert!(
            err.to_string()
                .contains("planner: threads must be at least 1")
        );
    }
}
