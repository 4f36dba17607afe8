//! Gamma and Beta draws on top of the policy crate's deterministic generator.

use bicameral_policy::rng::Rng;

/// The random stream of training step `step` of a run seeded `seed`: the generator seeded
/// with a SplitMix64 hash of the pair, so the streams of different steps are unrelated.
/// (Seeding it with `seed ^ step·φ`, φ the generator's own increment, makes step `s + 1`'s
/// stream step `s`'s shifted by one draw: consecutive batches then share all but one sample.)
pub fn step_rng(seed: u64, step: u64) -> Rng {
    let mut z = seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    // Mix in the seed once more, so that (seed, step) pairs with equal `seed ^ step·φ` differ.
    Rng::new(z ^ seed.rotate_left(17))
}

/// Gamma(shape, 1) by Marsaglia–Tsang (with the `U^(1/shape)` boost for shape < 1).
pub fn gamma(rng: &mut Rng, shape: f64) -> f64 {
    if shape < 1.0 {
        let u = 1.0 - rng.uniform();
        return gamma(rng, shape + 1.0) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = rng.normal();
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u = 1.0 - rng.uniform();
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// Beta(alpha, beta) as `X / (X + Y)` with `X ~ Gamma(alpha)`, `Y ~ Gamma(beta)`.
pub fn beta(rng: &mut Rng, alpha: f64, beta: f64) -> f64 {
    let x = gamma(rng, alpha);
    let y = gamma(rng, beta);
    x / (x + y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_streams_do_not_overlap() {
        use std::collections::BTreeSet;
        for seed in [0u64, 1, 42] {
            let draws = |step: u64| -> Vec<u64> {
                let mut r = step_rng(seed, step);
                (0..64).map(|_| r.next_u64()).collect()
            };
            let mut seen = BTreeSet::new();
            for step in 0..200 {
                for v in draws(step) {
                    assert!(seen.insert(v), "seed {seed}, step {step}: a draw repeats");
                }
            }
            // The old seeding shared 63 of 64 draws between consecutive steps.
            let old = |step: u64| -> Vec<u64> {
                let mut r = Rng::new(seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                (0..64).map(|_| r.next_u64()).collect()
            };
            if seed == 0 {
                assert_eq!(old(5)[1..], old(6)[..63]);
            }
        }
    }

    #[test]
    fn beta_moments() {
        let mut rng = Rng::new(1);
        let (a, b) = (1.5, 1.0);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| beta(&mut rng, a, b)).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        let (m, v) = (a / (a + b), a * b / ((a + b).powi(2) * (a + b + 1.0)));
        assert!((mean - m).abs() < 0.003, "mean {mean} vs {m}");
        assert!((var - v).abs() < 0.002, "var {var} vs {v}");
        assert!(xs.iter().all(|x| (0.0..=1.0).contains(x)));
        let small: Vec<f64> = (0..n).map(|_| beta(&mut rng, 0.5, 0.5)).collect();
        let mean = small.iter().sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.005, "{mean}");
    }
}
