//! The vectorisable `exp_lanes` / `tanh_lanes` against `libm` (error bounds of their docs).

use lwflow::Real;

fn ulp_f32(a: f32, b: f32) -> f64 {
    ((a - b).abs() / (f32::EPSILON * b.abs().max(f32::MIN_POSITIVE))) as f64
}

fn ulp_f64(a: f64, b: f64) -> f64 {
    (a - b).abs() / (f64::EPSILON * b.abs().max(f64::MIN_POSITIVE))
}

#[test]
fn exp_lanes_within_two_ulp() {
    let mut worst = (0.0f64, 0.0f64);
    for i in 0..=200_000 {
        let x = -87.0 + 175.0 * i as f64 / 200_000.0;
        let e32 = ulp_f32((x as f32).exp_lanes(), libm::expf(x as f32));
        let x64 = -700.0 + 1400.0 * i as f64 / 200_000.0;
        // f64 is the reference type: exactly libm.
        let e64 = ulp_f64(x64.exp_lanes(), libm::exp(x64));
        assert_eq!(e64, 0.0);
        worst = (worst.0.max(e32), worst.1.max(e64));
    }
    assert!(worst.0 <= 2.0 && worst.1 <= 2.0, "{worst:?}");
    assert_eq!(100.0f32.exp_lanes(), f32::INFINITY);
    assert_eq!((-100.0f32).exp_lanes(), 0.0);
    assert_eq!(1000.0f64.exp_lanes(), f64::INFINITY);
    assert!(f32::NAN.exp_lanes().is_nan() && f64::NAN.exp_lanes().is_nan());
}

#[test]
fn tanh_lanes_within_two_ulp_of_one() {
    for i in 0..=100_000 {
        let x = -30.0 + 60.0 * i as f64 / 100_000.0;
        let d32 = ((x as f32).tanh_lanes() - libm::tanhf(x as f32)).abs();
        let d64 = (x.tanh_lanes() - libm::tanh(x)).abs();
        assert!(d32 <= 2.0 * f32::EPSILON, "{x}: {d32}");
        assert!(d64 <= 2.0 * f64::EPSILON, "{x}: {d64}");
    }
}

#[test]
fn sqrt_lanes_within_one_ulp() {
    let mut x = 1e-38f32;
    while x < 1e38 {
        for f in [1.0f32, 1.37, 2.0, 3.3, 7.9] {
            let v = x * f;
            if !v.is_finite() {
                continue;
            }
            assert!(ulp_f32(v.sqrt_lanes(), libm::sqrtf(v)) <= 1.0, "{v}");
        }
        x *= 1.9;
    }
    assert_eq!(0.0f32.sqrt_lanes(), 0.0);
    assert_eq!(f32::INFINITY.sqrt_lanes(), f32::INFINITY);
    assert!((-1.0f32).sqrt_lanes().is_nan() && f32::NAN.sqrt_lanes().is_nan());
    assert_eq!(2.0f64.sqrt_lanes(), libm::sqrt(2.0));
}
