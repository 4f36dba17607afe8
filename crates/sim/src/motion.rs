//! Smooth motion primitives: minimum-jerk time scaling, joint-space and Cartesian segments.

use nalgebra::{Isometry3, Translation3};

/// Minimum-jerk time scaling: s(0) = 0, s(1) = 1, zero velocity and acceleration at both ends.
pub fn min_jerk(s: f64) -> f64 {
    let s = s.clamp(0.0, 1.0);
    s * s * s * (10.0 + s * (-15.0 + 6.0 * s))
}

/// Joint-space interpolation from `a` to `b` at phase `s` ∈ [0, 1] with minimum-jerk scaling.
pub fn interpolate_joints(a: &[f64], b: &[f64], s: f64) -> Vec<f64> {
    let k = min_jerk(s);
    a.iter().zip(b).map(|(x, y)| x + (y - x) * k).collect()
}

/// Cartesian interpolation (straight line, slerped rotation) with minimum-jerk scaling.
pub fn interpolate_pose(a: &Isometry3<f64>, b: &Isometry3<f64>, s: f64) -> Isometry3<f64> {
    let k = min_jerk(s);
    let t = a.translation.vector.lerp(&b.translation.vector, k);
    let r = a.rotation.slerp(&b.rotation, k);
    Isometry3::from_parts(Translation3::from(t), r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_jerk_boundary_conditions() {
        assert_eq!(min_jerk(0.0), 0.0);
        assert_eq!(min_jerk(1.0), 1.0);
        assert!((min_jerk(0.5) - 0.5).abs() < 1e-12);
        // Zero slope at both ends (finite differences).
        let h = 1e-5;
        assert!(min_jerk(h) / h < 1e-6);
        assert!((1.0 - min_jerk(1.0 - h)) / h < 1e-6);
        // Monotonic.
        let mut prev = 0.0;
        for i in 1..=100 {
            let v = min_jerk(i as f64 / 100.0);
            assert!(v >= prev);
            prev = v;
        }
    }

    #[test]
    fn pose_interpolation_hits_endpoints() {
        let a = Isometry3::translation(0.1, 0.2, 0.3);
        let b = Isometry3::new(
            nalgebra::Vector3::new(0.5, -0.2, 0.9),
            nalgebra::Vector3::new(0.0, 0.0, 1.0),
        );
        assert!(
            (interpolate_pose(&a, &b, 0.0).translation.vector - a.translation.vector).norm()
                < 1e-12
        );
        let end = interpolate_pose(&a, &b, 1.0);
        assert!((end.translation.vector - b.translation.vector).norm() < 1e-12);
        assert!(end.rotation.angle_to(&b.rotation) < 1e-9);
    }
}
