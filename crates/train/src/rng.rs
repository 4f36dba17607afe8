//! Gamma and Beta draws on top of the policy crate's deterministic generator.

use bicameral_policy::rng::Rng;

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
