//! Checkpoint IO: safetensors files with upstream tensor names (prefix `action_head.`), single
//! file (`model.safetensors`) or sharded (`model.safetensors.index.json` +
//! `model-0000i-of-0000n.safetensors`), plus plain host tensors for inputs/outputs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use crate::config::FlowmatchingActionHeadConfig;
use crate::error::PolicyError;
use crate::model::ActionHead;
use crate::nn::{Builder, Init, ParamSource};
use crate::rng::Rng;

/// Tensor-name prefix of the action head inside a GR00T checkpoint.
pub const DEFAULT_PREFIX: &str = "action_head.";
/// Single-file weights inside a checkpoint directory.
pub const SINGLE_FILE: &str = "model.safetensors";
/// Shard index inside a checkpoint directory.
pub const INDEX_FILE: &str = "model.safetensors.index.json";
/// Config inside a checkpoint directory.
pub const CONFIG_FILE: &str = "config.json";

/// Values of a host tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum HostData {
    /// Floats (F32; BF16/F16/F64 are converted on read).
    F32(Vec<f32>),
    /// Integers (I64; I32/U8/... are converted on read).
    I64(Vec<i64>),
}

/// A row-major tensor in host memory.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Shape.
    pub shape: Vec<usize>,
    /// Values.
    pub data: HostData,
}

impl HostTensor {
    /// A float tensor.
    pub fn f32(shape: Vec<usize>, values: Vec<f32>) -> Self {
        Self {
            shape,
            data: HostData::F32(values),
        }
    }

    /// An integer tensor.
    pub fn i64(shape: Vec<usize>, values: Vec<i64>) -> Self {
        Self {
            shape,
            data: HostData::I64(values),
        }
    }

    /// The float values, if this is a float tensor.
    /// Host copy (row-major float32) of a tensor.
    pub fn from_tensor<const D: usize>(t: Tensor<D>) -> Result<Self, PolicyError> {
        let (shape, values) = crate::nn::to_host(t)?;
        Ok(Self::f32(shape, values))
    }

    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            HostData::F32(v) => Some(v),
            HostData::I64(_) => None,
        }
    }

    /// The integer values, if this is an integer tensor.
    pub fn as_i64(&self) -> Option<&[i64]> {
        match &self.data {
            HostData::I64(v) => Some(v),
            HostData::F32(_) => None,
        }
    }
}

fn st_err(path: &Path, e: impl std::fmt::Display) -> PolicyError {
    PolicyError::Safetensors {
        path: path.to_path_buf(),
        msg: e.to_string(),
    }
}

fn convert(view: &TensorView<'_>) -> Result<HostData, String> {
    let b = view.data();
    let f = |n: usize| b.chunks_exact(n);
    Ok(match view.dtype() {
        Dtype::F32 => HostData::F32(
            f(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        Dtype::BF16 => HostData::F32(
            f(2).map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16))
                .collect(),
        ),
        Dtype::F16 => HostData::F32(
            f(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        ),
        Dtype::F64 => HostData::F32(
            f(8).map(|c| {
                f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
            })
            .collect(),
        ),
        Dtype::I64 => HostData::I64(
            f(8).map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        ),
        Dtype::I32 => HostData::I64(
            f(4).map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
        ),
        Dtype::U8 => HostData::I64(b.iter().map(|&x| i64::from(x)).collect()),
        Dtype::BOOL => HostData::I64(b.iter().map(|&x| i64::from(x != 0)).collect()),
        other => return Err(format!("unsupported dtype {other:?}")),
    })
}

/// Reads the tensors of a safetensors file whose names `keep` accepts (the others are never
/// converted).
pub fn read_safetensors_where(
    path: &Path,
    keep: &dyn Fn(&str) -> bool,
) -> Result<BTreeMap<String, HostTensor>, PolicyError> {
    let bytes = std::fs::read(path).map_err(|e| PolicyError::io(path, e))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| st_err(path, e))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.iter() {
        if !keep(name) {
            continue;
        }
        let data = convert(&view).map_err(|e| st_err(path, format!("tensor `{name}`: {e}")))?;
        out.insert(
            name.to_owned(),
            HostTensor {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    Ok(out)
}

/// Reads every tensor of a safetensors file.
pub fn read_safetensors(path: &Path) -> Result<BTreeMap<String, HostTensor>, PolicyError> {
    read_safetensors_where(path, &|_| true)
}

fn serialize(tensors: &BTreeMap<String, HostTensor>, path: &Path) -> Result<Vec<u8>, PolicyError> {
    let bytes: Vec<(&String, Dtype, &Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, t)| match &t.data {
            HostData::F32(v) => (
                name,
                Dtype::F32,
                &t.shape,
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
            HostData::I64(v) => (
                name,
                Dtype::I64,
                &t.shape,
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
        })
        .collect();
    let mut views = Vec::with_capacity(bytes.len());
    for (name, dtype, shape, data) in &bytes {
        let view = TensorView::new(*dtype, shape.to_vec(), data)
            .map_err(|e| st_err(path, format!("tensor `{name}`: {e}")))?;
        views.push((name.as_str(), view));
    }
    let meta = HashMap::from([("format".to_owned(), "pt".to_owned())]);
    safetensors::serialize(views, Some(meta)).map_err(|e| st_err(path, e))
}

/// Writes `bytes` to `path` atomically (temporary file in the same directory, then rename).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PolicyError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(|e| PolicyError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| PolicyError::io(path, e))
}

/// Writes tensors to a safetensors file (metadata `format: pt`, like torch), atomically.
pub fn write_safetensors(
    path: &Path,
    tensors: &BTreeMap<String, HostTensor>,
) -> Result<(), PolicyError> {
    let bytes = serialize(tensors, path)?;
    write_atomic(path, &bytes)
}

/// What to do with tensors that do not match the model.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Name prefix of the head's tensors (default `action_head.`); tensors without it are
    /// ignored (e.g. the backbone in a full GR00T checkpoint).
    pub prefix: String,
    /// Accept missing tensors (they keep their random initialization, seeded by `seed`).
    pub allow_missing: bool,
    /// Accept unused tensors under `prefix`.
    pub allow_unexpected: bool,
    /// Seed of the initialization of missing tensors.
    pub seed: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            prefix: DEFAULT_PREFIX.to_owned(),
            allow_missing: false,
            allow_unexpected: false,
            seed: 0,
        }
    }
}

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// Tensors loaded.
    pub loaded: usize,
    /// Tensors the model needs that were absent (left initialized).
    pub missing: Vec<String>,
    /// Tensors under the prefix that the model does not use.
    pub unexpected: Vec<String>,
}

/// Random initialization (PyTorch-like: uniform ±1/sqrt(fan_in) for linears, N(0, 0.02²) for
/// embeddings and category-specific weights, ones/zeros for LayerNorms).
struct RandomSource {
    rng: Rng,
}

impl ParamSource for RandomSource {
    fn take(&mut self, _name: &str, shape: &[usize], init: Init) -> Vec<f32> {
        let n: usize = shape.iter().product();
        match init {
            Init::Constant(c) => vec![c; n],
            Init::Normal { std } => (0..n).map(|_| (self.rng.normal() * std) as f32).collect(),
            Init::Uniform { fan_in } => {
                let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
                (0..n)
                    .map(|_| ((self.rng.uniform() * 2.0 - 1.0) * bound) as f32)
                    .collect()
            }
        }
    }
}

struct CheckpointSource<'a> {
    tensors: &'a BTreeMap<String, HostTensor>,
    prefix: &'a str,
    used: BTreeSet<String>,
    missing: Vec<String>,
    mismatched: Vec<String>,
    fallback: RandomSource,
}

impl ParamSource for CheckpointSource<'_> {
    fn take(&mut self, name: &str, shape: &[usize], init: Init) -> Vec<f32> {
        let full = format!("{}{name}", self.prefix);
        let Some(t) = self.tensors.get(&full) else {
            self.missing.push(full);
            return self.fallback.take(name, shape, init);
        };
        self.used.insert(full.clone());
        if t.shape != shape {
            self.mismatched
                .push(format!("{full}: shape {:?}, expected {shape:?}", t.shape));
            return self.fallback.take(name, shape, init);
        }
        match &t.data {
            HostData::F32(v) => v.clone(),
            HostData::I64(_) => {
                self.mismatched
                    .push(format!("{full}: integer tensor, expected float"));
                self.fallback.take(name, shape, init)
            }
        }
    }
}

/// The `weight_map` of a shard index: tensor name → shard file name.
fn read_weight_map(index: &Path) -> Result<Vec<(String, String)>, PolicyError> {
    let text = std::fs::read_to_string(index).map_err(|e| PolicyError::io(index, e))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| st_err(index, e))?;
    let map = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| st_err(index, "no `weight_map` object"))?;
    map.iter()
        .map(|(name, file)| {
            file.as_str()
                .map(|f| (name.clone(), f.to_owned()))
                .ok_or_else(|| st_err(index, format!("weight_map[{name}] is not a string")))
        })
        .collect()
}

/// Weight files of a checkpoint directory that hold tensors `keep` accepts: `model.safetensors`,
/// or the shards the index lists for such tensors (a full GR00T checkpoint's backbone-only
/// shards are not read for the action head, nor the shards of layers after a cut).
fn weights_files_for(dir: &Path, keep: &dyn Fn(&str) -> bool) -> Result<Vec<PathBuf>, PolicyError> {
    let single = dir.join(SINGLE_FILE);
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join(INDEX_FILE);
    if !index.is_file() {
        return Err(PolicyError::NoWeights(dir.to_path_buf()));
    }
    let files: BTreeSet<PathBuf> = read_weight_map(&index)?
        .into_iter()
        .filter(|(name, _)| keep(name))
        .map(|(_, file)| dir.join(file))
        .collect();
    Ok(files.into_iter().collect())
}

/// Reads the tensors under `prefix` from a safetensors file, or from a checkpoint directory
/// (`model.safetensors`, or the shards listed in `model.safetensors.index.json`).
pub fn read_checkpoint_tensors(
    path: &Path,
    prefix: &str,
) -> Result<BTreeMap<String, HostTensor>, PolicyError> {
    read_checkpoint_tensors_where(path, &|name| name.starts_with(prefix))
}

/// Like [`read_checkpoint_tensors`], for the tensors whose full names `keep` accepts.
pub fn read_checkpoint_tensors_where(
    path: &Path,
    keep: &dyn Fn(&str) -> bool,
) -> Result<BTreeMap<String, HostTensor>, PolicyError> {
    let files = if path.is_dir() {
        weights_files_for(path, keep)?
    } else {
        vec![path.to_path_buf()]
    };
    let mut all = BTreeMap::new();
    for f in files {
        let t = read_safetensors_where(&f, keep)?;
        tracing::debug!(file = %f.display(), tensors = t.len(), "read weights");
        all.extend(t);
    }
    Ok(all)
}

/// Builds a module with `build` from a random initialization (deterministic in `seed`).
pub(crate) fn build_random<T>(
    device: &Device,
    seed: u64,
    build: impl FnOnce(&mut Builder<'_>) -> T,
) -> T {
    let mut src = RandomSource {
        rng: Rng::new(seed),
    };
    let mut b = Builder {
        device: device.clone(),
        source: &mut src,
    };
    build(&mut b)
}

/// Builds a module with `build` from host tensors named `options.prefix` + upstream name.
/// Fails with [`PolicyError::CheckpointMismatch`] on misshaped tensors, and on
/// missing/unexpected ones unless `options` allow them; tensors whose full name `skip`
/// accepts are deliberately unused (e.g. layers after a cut) and not unexpected. `origin` names
/// the checkpoint in errors.
pub(crate) fn build_from_tensors<T>(
    device: &Device,
    tensors: &BTreeMap<String, HostTensor>,
    options: &LoadOptions,
    origin: &Path,
    skip: &dyn Fn(&str) -> bool,
    build: impl FnOnce(&mut Builder<'_>) -> T,
) -> Result<(T, LoadReport), PolicyError> {
    let mut src = CheckpointSource {
        tensors,
        prefix: &options.prefix,
        used: BTreeSet::new(),
        missing: Vec::new(),
        mismatched: Vec::new(),
        fallback: RandomSource {
            rng: Rng::new(options.seed),
        },
    };
    let mut b = Builder {
        device: device.clone(),
        source: &mut src,
    };
    let module = build(&mut b);
    let unexpected: Vec<String> = tensors
        .keys()
        .filter(|k| k.starts_with(&options.prefix) && !src.used.contains(*k) && !skip(k))
        .cloned()
        .collect();
    let fatal_missing = !options.allow_missing && !src.missing.is_empty();
    let fatal_unexpected = !options.allow_unexpected && !unexpected.is_empty();
    if fatal_missing || fatal_unexpected || !src.mismatched.is_empty() {
        return Err(PolicyError::CheckpointMismatch {
            path: origin.to_path_buf(),
            missing: if fatal_missing {
                src.missing
            } else {
                Vec::new()
            },
            unexpected: if fatal_unexpected {
                unexpected
            } else {
                Vec::new()
            },
            mismatched: src.mismatched,
        });
    }
    if !src.missing.is_empty() {
        tracing::warn!(count = src.missing.len(), first = %src.missing[0], "missing tensors left initialized");
    }
    if !unexpected.is_empty() {
        tracing::warn!(count = unexpected.len(), first = %unexpected[0], "unexpected tensors ignored");
    }
    let report = LoadReport {
        loaded: src.used.len(),
        missing: src.missing,
        unexpected,
    };
    Ok((module, report))
}

impl ActionHead {
    /// A randomly initialized head (deterministic in `seed`).
    pub fn init(
        config: &FlowmatchingActionHeadConfig,
        device: &Device,
        seed: u64,
    ) -> Result<Self, PolicyError> {
        config.validate()?;
        Ok(build_random(device, seed, |b| Self::build(config, b)))
    }

    /// Builds the head from host tensors with upstream names (`prefix` + name, upstream
    /// layout). Fails with [`PolicyError::CheckpointMismatch`] on misshaped tensors, and on
    /// missing/unexpected ones unless `options` allow them. `origin` names the checkpoint in
    /// errors.
    pub fn from_tensors(
        config: &FlowmatchingActionHeadConfig,
        device: &Device,
        tensors: &BTreeMap<String, HostTensor>,
        options: &LoadOptions,
        origin: &Path,
    ) -> Result<(Self, LoadReport), PolicyError> {
        config.validate()?;
        build_from_tensors(device, tensors, options, origin, &|_| false, |b| {
            Self::build(config, b)
        })
    }

    /// Loads weights from a safetensors file or a checkpoint directory (single or sharded).
    pub fn load_weights(
        config: &FlowmatchingActionHeadConfig,
        device: &Device,
        path: &Path,
        options: &LoadOptions,
    ) -> Result<(Self, LoadReport), PolicyError> {
        let tensors = read_checkpoint_tensors(path, &options.prefix)?;
        Self::from_tensors(config, device, &tensors, options, path)
    }

    /// Loads a checkpoint directory: `config.json` (the head config, or a full GR00T config
    /// with `action_head_cfg`) and its weights (`model.safetensors` or sharded).
    pub fn load(
        dir: &Path,
        device: &Device,
        options: &LoadOptions,
    ) -> Result<(Self, LoadReport), PolicyError> {
        let config = FlowmatchingActionHeadConfig::from_file(&dir.join(CONFIG_FILE))?;
        let (head, report) = Self::load_weights(&config, device, dir, options)?;
        tracing::info!(dir = %dir.display(), tensors = report.loaded, "loaded action head");
        Ok((head, report))
    }

    /// Every tensor in upstream names (with `prefix`) and layout.
    pub fn to_tensors(&self, prefix: &str) -> Result<BTreeMap<String, HostTensor>, PolicyError> {
        Ok(self
            .export()?
            .into_iter()
            .map(|(name, shape, values)| {
                (format!("{prefix}{name}"), HostTensor::f32(shape, values))
            })
            .collect())
    }

    /// Writes the weights (float32, upstream names with `prefix`) to one safetensors file.
    pub fn save_weights(&self, path: &Path, prefix: &str) -> Result<(), PolicyError> {
        write_safetensors(path, &self.to_tensors(prefix)?)
    }

    fn write_config(&self, dir: &Path) -> Result<(), PolicyError> {
        let path = dir.join(CONFIG_FILE);
        let text = serde_json::to_string_pretty(&self.config)
            .map_err(|e| PolicyError::Config(e.to_string()))?;
        write_atomic(&path, text.as_bytes())
    }

    /// Saves a checkpoint directory: `config.json` (head config) and `model.safetensors`
    /// (names prefixed `action_head.`). Loading it back with [`load`](Self::load) is exact.
    pub fn save(&self, dir: &Path) -> Result<(), PolicyError> {
        std::fs::create_dir_all(dir).map_err(|e| PolicyError::io(dir, e))?;
        self.write_config(dir)?;
        self.save_weights(&dir.join(SINGLE_FILE), DEFAULT_PREFIX)
    }

    /// Saves a sharded checkpoint directory: `config.json`,
    /// `model-0000i-of-0000n.safetensors` (each at most about `max_shard_bytes`, tensors never
    /// split) and `model.safetensors.index.json` (`metadata.total_size`, `weight_map`), the
    /// layout HF `save_pretrained` writes.
    pub fn save_sharded(&self, dir: &Path, max_shard_bytes: usize) -> Result<(), PolicyError> {
        std::fs::create_dir_all(dir).map_err(|e| PolicyError::io(dir, e))?;
        self.write_config(dir)?;
        let tensors = self.to_tensors(DEFAULT_PREFIX)?;
        let mut shards: Vec<BTreeMap<String, HostTensor>> = vec![BTreeMap::new()];
        let mut size = 0usize;
        let mut total = 0usize;
        for (name, t) in tensors {
            let bytes = t.shape.iter().product::<usize>() * 4;
            total += bytes;
            if size > 0 && size + bytes > max_shard_bytes {
                shards.push(BTreeMap::new());
                size = 0;
            }
            size += bytes;
            if let Some(last) = shards.last_mut() {
                last.insert(name, t);
            }
        }
        let n = shards.len();
        let mut weight_map = serde_json::Map::new();
        for (i, shard) in shards.iter().enumerate() {
            let file = format!("model-{:05}-of-{n:05}.safetensors", i + 1);
            for name in shard.keys() {
                weight_map.insert(name.clone(), serde_json::Value::String(file.clone()));
            }
            write_safetensors(&dir.join(&file), shard)?;
        }
        let index = serde_json::json!({
            "metadata": { "total_size": total },
            "weight_map": weight_map,
        });
        let path = dir.join(INDEX_FILE);
        let text =
            serde_json::to_string_pretty(&index).map_err(|e| PolicyError::Config(e.to_string()))?;
        write_atomic(&path, text.as_bytes())
    }
}
