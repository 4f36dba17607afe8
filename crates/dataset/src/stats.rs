//! Per-dimension statistics in LeRobot's layout (`min, max, mean, std, count, q01, q10, q50, q90,
//! q99`), computed exactly: vectors are sorted per dimension (numpy's linear-interpolation
//! quantile), images use a 256-bin histogram per channel (exact for u8 pixels).

use serde_json::{Value, json};

use crate::json::Oj;

/// Quantile keys LeRobot ≥ 0.4 writes, with their probabilities.
pub const QUANTILES: [(&str, f64); 5] = [
    ("q01", 0.01),
    ("q10", 0.10),
    ("q50", 0.50),
    ("q90", 0.90),
    ("q99", 0.99),
];

/// Statistics of one feature. Every vector has one value per element of `shape` (flattened
/// row-major): `[D]` for vectors, `[1]` for scalars, `[3, 1, 1]` for images (per RGB channel,
/// pixel values scaled to [0, 1], as LeRobot stores them).
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureStats {
    /// Shape of each statistic as written to JSON.
    pub shape: Vec<usize>,
    /// Per-element minimum.
    pub min: Vec<f64>,
    /// Per-element maximum.
    pub max: Vec<f64>,
    /// Per-element mean.
    pub mean: Vec<f64>,
    /// Per-element population standard deviation.
    pub std: Vec<f64>,
    /// Number of frames (images for visual features) the statistics cover.
    pub count: u64,
    /// Quantiles present, keyed as in [`QUANTILES`] (`q01`…`q99`), in that order. Empty for
    /// datasets written by LeRobot < 0.4.
    pub quantiles: Vec<(String, Vec<f64>)>,
}

impl FeatureStats {
    /// The quantile `key` (`"q01"`, `"q99"`…), if stored.
    pub fn quantile(&self, key: &str) -> Option<&[f64]> {
        self.quantiles
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    /// LeRobot's JSON object: `{"min": [...], "max": [...], "mean": [...], "std": [...],
    /// "count": [n], "q01": [...], ...}`, nested to `shape`.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.to_oj()).unwrap_or(Value::Null)
    }

    /// [`FeatureStats::to_json`] with LeRobot's key order.
    pub(crate) fn to_oj(&self) -> Oj {
        let mut o = vec![
            ("min".to_string(), Oj::V(nest(&self.min, &self.shape))),
            ("max".to_string(), Oj::V(nest(&self.max, &self.shape))),
            ("mean".to_string(), Oj::V(nest(&self.mean, &self.shape))),
            ("std".to_string(), Oj::V(nest(&self.std, &self.shape))),
            ("count".to_string(), Oj::V(json!([self.count]))),
        ];
        for (k, v) in &self.quantiles {
            o.push((k.clone(), Oj::V(nest(v, &self.shape))));
        }
        Oj::O(o)
    }

    /// Parses LeRobot's JSON object (see [`FeatureStats::to_json`]); `None` if `min`/`max`/
    /// `mean`/`std` are missing or not numeric arrays. A missing count reads as 0.
    pub fn from_json(v: &Value) -> Option<FeatureStats> {
        let obj = v.as_object()?;
        let (min, shape) = flatten(obj.get("min")?)?;
        let (max, _) = flatten(obj.get("max")?)?;
        let (mean, _) = flatten(obj.get("mean")?)?;
        let (std, _) = flatten(obj.get("std")?)?;
        let count = obj
            .get("count")
            .and_then(|c| flatten(c).map(|(v, _)| v.first().copied().unwrap_or(0.0)))
            .unwrap_or(0.0) as u64;
        let mut quantiles = Vec::new();
        for (k, _) in QUANTILES {
            if let Some((q, _)) = obj.get(k).and_then(flatten) {
                quantiles.push((k.to_string(), q));
            }
        }
        Some(FeatureStats {
            shape,
            min,
            max,
            mean,
            std,
            count,
            quantiles,
        })
    }
}

/// Nests a flat vector into `shape` as JSON arrays.
fn nest(values: &[f64], shape: &[usize]) -> Value {
    fn rec(values: &[f64], shape: &[usize]) -> Value {
        if shape.len() <= 1 {
            return Value::Array(values.iter().map(|v| json!(v)).collect());
        }
        let inner: usize = shape[1..].iter().product();
        Value::Array(
            values
                .chunks(inner.max(1))
                .map(|c| rec(c, &shape[1..]))
                .collect(),
        )
    }
    rec(values, shape)
}

/// Flattens nested numeric JSON arrays; returns the values and the nesting shape.
pub(crate) fn flatten(v: &Value) -> Option<(Vec<f64>, Vec<usize>)> {
    fn rec(v: &Value, depth: usize, out: &mut Vec<f64>, shape: &mut Vec<usize>) -> Option<()> {
        match v {
            Value::Array(a) => {
                if shape.len() <= depth {
                    shape.push(a.len());
                }
                for x in a {
                    rec(x, depth + 1, out, shape)?;
                }
                Some(())
            }
            Value::Number(n) => {
                out.push(n.as_f64()?);
                Some(())
            }
            _ => None,
        }
    }
    let mut out = Vec::new();
    let mut shape = Vec::new();
    rec(v, 0, &mut out, &mut shape)?;
    if shape.is_empty() {
        shape.push(1);
    }
    Some((out, shape))
}

/// numpy's default (linear) quantile of an ascending-sorted slice.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Exact statistics of `n = values.len() / dim` row-major vectors of size `dim`.
/// `shape` is what the JSON should show (`[dim]`, or `[1]` for scalars).
pub fn vector_stats<T: Copy + Into<f64>>(
    values: &[T],
    dim: usize,
    shape: Vec<usize>,
) -> FeatureStats {
    let n = values.len().checked_div(dim).unwrap_or(0);
    let mut s = FeatureStats {
        shape,
        min: Vec::with_capacity(dim),
        max: Vec::with_capacity(dim),
        mean: Vec::with_capacity(dim),
        std: Vec::with_capacity(dim),
        count: n as u64,
        quantiles: QUANTILES
            .iter()
            .map(|(k, _)| (k.to_string(), Vec::with_capacity(dim)))
            .collect(),
    };
    let mut col = Vec::with_capacity(n);
    for d in 0..dim {
        col.clear();
        col.extend((0..n).map(|i| values[i * dim + d].into()));
        let mean = col.iter().sum::<f64>() / n.max(1) as f64;
        let var = col.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n.max(1) as f64;
        col.sort_by(f64::total_cmp);
        s.min.push(col.first().copied().unwrap_or(f64::NAN));
        s.max.push(col.last().copied().unwrap_or(f64::NAN));
        s.mean.push(mean);
        s.std.push(var.sqrt());
        for (i, (_, q)) in QUANTILES.iter().enumerate() {
            s.quantiles[i].1.push(quantile_sorted(&col, *q));
        }
    }
    s
}

/// Per-channel 256-bin histogram of RGB u8 images: exact image statistics without keeping pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageHistogram {
    /// `counts[c][v]`: number of pixels with value `v` in channel `c`.
    pub counts: [[u64; 256]; 3],
    /// Number of images added.
    pub images: u64,
}

impl Default for ImageHistogram {
    fn default() -> Self {
        Self {
            counts: [[0; 256]; 3],
            images: 0,
        }
    }
}

impl ImageHistogram {
    /// Adds one H×W×3 RGB image.
    pub fn add(&mut self, rgb: &[u8]) {
        for px in rgb.chunks_exact(3) {
            self.counts[0][px[0] as usize] += 1;
            self.counts[1][px[1] as usize] += 1;
            self.counts[2][px[2] as usize] += 1;
        }
        self.images += 1;
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &ImageHistogram) {
        for c in 0..3 {
            for v in 0..256 {
                self.counts[c][v] += other.counts[c][v];
            }
        }
        self.images += other.images;
    }

    /// Per-channel statistics of pixel values / 255, shape `[3, 1, 1]`, count = images.
    pub fn stats(&self) -> FeatureStats {
        let mut s = FeatureStats {
            shape: vec![3, 1, 1],
            min: vec![],
            max: vec![],
            mean: vec![],
            std: vec![],
            count: self.images,
            quantiles: QUANTILES
                .iter()
                .map(|(k, _)| (k.to_string(), vec![]))
                .collect(),
        };
        for hist in &self.counts {
            let n: u64 = hist.iter().sum();
            let nf = n.max(1) as f64;
            let mean = hist
                .iter()
                .enumerate()
                .map(|(v, &c)| v as f64 * c as f64)
                .sum::<f64>()
                / nf;
            let var = hist
                .iter()
                .enumerate()
                .map(|(v, &c)| (v as f64 - mean) * (v as f64 - mean) * c as f64)
                .sum::<f64>()
                / nf;
            let min = hist.iter().position(|&c| c > 0).unwrap_or(0) as f64;
            let max = hist.iter().rposition(|&c| c > 0).unwrap_or(0) as f64;
            s.min.push(min / 255.0);
            s.max.push(max / 255.0);
            s.mean.push(mean / 255.0);
            s.std.push(var.sqrt() / 255.0);
            // Value of the k-th smallest pixel (0-based).
            let kth = |k: u64| -> f64 {
                let mut cum = 0u64;
                for (v, &c) in hist.iter().enumerate() {
                    cum += c;
                    if cum > k {
                        return v as f64;
                    }
                }
                max
            };
            for (i, (_, q)) in QUANTILES.iter().enumerate() {
                let v = if n == 0 {
                    0.0
                } else {
                    let pos = q * (n - 1) as f64;
                    let lo = pos.floor();
                    let (a, b) = (kth(lo as u64), kth(pos.ceil() as u64));
                    a + (b - a) * (pos - lo)
                };
                s.quantiles[i].1.push(v / 255.0);
            }
        }
        s
    }
}

/// Combines statistics of disjoint parts the way LeRobot's `aggregate_stats` does: exact
/// min/max/mean/std (parallel variance), count-weighted average of the quantiles (approximate).
/// Used only when a dataset has no `meta/stats.json`.
pub fn aggregate(parts: &[&FeatureStats]) -> Option<FeatureStats> {
    let first = parts.first()?;
    let dim = first.mean.len();
    if parts.iter().any(|p| p.mean.len() != dim) {
        return None;
    }
    let total: u64 = parts.iter().map(|p| p.count).sum();
    let tf = total.max(1) as f64;
    let mut out = FeatureStats {
        shape: first.shape.clone(),
        min: vec![f64::INFINITY; dim],
        max: vec![f64::NEG_INFINITY; dim],
        mean: vec![0.0; dim],
        std: vec![0.0; dim],
        count: total,
        quantiles: vec![],
    };
    for p in parts {
        for d in 0..dim {
            out.min[d] = out.min[d].min(p.min[d]);
            out.max[d] = out.max[d].max(p.max[d]);
            out.mean[d] += p.mean[d] * p.count as f64 / tf;
        }
    }
    for p in parts {
        for d in 0..dim {
            let dm = p.mean[d] - out.mean[d];
            out.std[d] += (p.std[d] * p.std[d] + dm * dm) * p.count as f64 / tf;
        }
    }
    for s in &mut out.std {
        *s = s.sqrt();
    }
    for (k, _) in QUANTILES {
        if parts
            .iter()
            .all(|p| p.quantile(k).is_some_and(|q| q.len() == dim))
        {
            let mut q = vec![0.0; dim];
            for p in parts {
                if let Some(pq) = p.quantile(k) {
                    for d in 0..dim {
                        q[d] += pq[d] * p.count as f64 / tf;
                    }
                }
            }
            out.quantiles.push((k.to_string(), q));
        }
    }
    Some(out)
}
