//! Sums of weights given by their logs, the one home of the weight code's log-sum-exp
//! (importance weights, their ESS, the evidence, the KL estimate).
//!
//! Every weight eᵢ = exp(ℓᵢ − max ℓ) lies in [0, 1] and at least one is 1, so no sum can
//! overflow or underflow to zero. The sums run left to right in the order given, so a caller
//! that switched to this from its own loop keeps its bits.
//!
//! Two log-sum-exps stay elsewhere on purpose: the mixture base's (`base::gmm`), generic over
//! the flow's precision and vectorised over a tile of lanes, and EM's `component_shares`,
//! fused with the responsibilities it computes in the same pass.

/// Σ eᵢ and Σ eᵢ² of weights exp(ℓᵢ), scaled by the largest.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scaled {
    /// max ℓᵢ (finite).
    pub(crate) max: f64,
    /// Σ exp(ℓᵢ − max) ≥ 1.
    pub(crate) sum: f64,
    /// Σ exp(ℓᵢ − max)².
    pub(crate) sum2: f64,
}

impl Scaled {
    /// The sums over `logs`; `None` when the largest is not finite (all −∞, an empty
    /// sequence, or a +∞). NaN values are skipped by the maximum but poison the sums: callers
    /// refuse or map them first.
    pub(crate) fn of(logs: impl Iterator<Item = f64> + Clone) -> Option<Scaled> {
        let max = logs.clone().fold(f64::NEG_INFINITY, f64::max);
        if !max.is_finite() {
            return None;
        }
        let (mut sum, mut sum2) = (0.0, 0.0);
        for v in logs {
            let e = libm::exp(v - max);
            sum += e;
            sum2 += e * e;
        }
        Some(Scaled { max, sum, sum2 })
    }

    /// The scaled weight exp(ℓ − max) of a log-weight ℓ.
    #[inline]
    pub(crate) fn weight(&self, log: f64) -> f64 {
        libm::exp(log - self.max)
    }

    /// ln of the mean weight over `n` (the evidence estimate of importance sampling).
    pub(crate) fn log_mean(&self, n: usize) -> f64 {
        self.max + libm::log(self.sum / n as f64)
    }

    /// Kish's effective sample size (Σ w)² / Σ w².
    pub(crate) fn kish_ess(&self) -> f64 {
        self.sum * self.sum / self.sum2
    }
}

#[cfg(test)]
mod tests {
    use super::Scaled;

    #[test]
    fn sums_match_the_direct_ones_and_survive_huge_logs() {
        let logs = [0.5, -1.25, 2.0, -30.0];
        let s = Scaled::of(logs.iter().copied()).unwrap();
        let w: [f64; 4] = logs.map(libm::exp);
        let (sum, sum2): (f64, f64) = (w.iter().sum(), w.iter().map(|v| v * v).sum());
        assert!((s.log_mean(4) - libm::log(sum / 4.0)).abs() < 1e-14);
        assert!((s.kish_ess() - sum * sum / sum2).abs() < 1e-12);
        // Shifted by 1e4 the direct sums overflow; the scaled ones only move the maximum
        // (up to the rounding of ℓ + 1e4, about 1e-12).
        let t = Scaled::of(logs.iter().map(|v| v + 1e4)).unwrap();
        assert!((t.sum - s.sum).abs() < 1e-11 && t.sum.is_finite());
        assert!((t.log_mean(4) - 1e4 - s.log_mean(4)).abs() < 1e-11);
        assert!(Scaled::of([f64::NEG_INFINITY; 3].into_iter()).is_none());
        assert!(Scaled::of([1.0, f64::INFINITY].into_iter()).is_none());
        assert!(Scaled::of(core::iter::empty()).is_none());
    }
}
