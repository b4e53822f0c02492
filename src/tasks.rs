//! The benchmark posteriors of the paper-reproduction suite (`BENCHMARKS.md`): prior uniform
//! on [−6, 6]^D, closed-form likelihoods, so the true posterior p(θ) = L(θ)·1[box]/Z is known
//! exactly and can be sampled exactly.
//!
//! | task | D | likelihood (equal-weight mixture) |
//! |---|---|---|
//! | 2D1 | 2 | N((0,0), 1²I) |
//! | 2D2 | 2 | N((∓2.5, 0), 0.6²I) |
//! | 2D3 | 2 | N(3(cos a, sin a), 0.5²I), a = 90°, 210°, 330° |
//! | 2DB | 2 | bananas k = ±1: N(θ₁; 0, 1.25²)·N(θ₂; 2k + 0.25kθ₁², 0.35²) |
//! | 3D2 | 3 | N((∓2.5, 0, 0), 0.6²I) |
//! | 3D4 | 3 | N(√3·v, 0.5²I), v = (1,1,1), (1,−1,−1), (−1,1,−1), (−1,−1,1) |

use crate::rng::Draws;

/// Half-width of the prior box [−6, 6]^D.
pub const BOX: f64 = 6.0;
const MAX_COMPONENTS: usize = 4;
const LN_2PI: f64 = 1.837_877_066_409_345_3;

/// One of the six benchmark tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Task {
    /// One 2-D Gaussian.
    T2D1,
    /// Two 2-D Gaussians.
    T2D2,
    /// Three 2-D Gaussians on a circle.
    T2D3,
    /// Two bananas.
    T2DB,
    /// Two 3-D Gaussians.
    T3D2,
    /// Four 3-D Gaussians on tetrahedron vertices.
    T3D4,
}

impl Task {
    /// All tasks in the suite's order.
    pub const ALL: [Task; 6] = [
        Task::T2D1,
        Task::T2D2,
        Task::T2D3,
        Task::T2DB,
        Task::T3D2,
        Task::T3D4,
    ];

    /// The suite's name ("2D1", ...).
    pub fn name(self) -> &'static str {
        match self {
            Task::T2D1 => "2D1",
            Task::T2D2 => "2D2",
            Task::T2D3 => "2D3",
            Task::T2DB => "2DB",
            Task::T3D2 => "3D2",
            Task::T3D4 => "3D4",
        }
    }

    /// Dimension D.
    pub fn dim(self) -> usize {
        match self {
            Task::T3D2 | Task::T3D4 => 3,
            _ => 2,
        }
    }

    /// Number of separated modes (mixture components of the likelihood).
    pub fn modes(self) -> usize {
        match self {
            Task::T2D1 => 1,
            Task::T2D2 | Task::T2DB | Task::T3D2 => 2,
            Task::T2D3 => 3,
            Task::T3D4 => 4,
        }
    }

    /// `true` for the tasks whose likelihood is a Gaussian mixture (all but 2DB).
    pub fn is_gaussian_mixture(self) -> bool {
        self != Task::T2DB
    }

    /// Centre and standard deviation of Gaussian component `j` (for 2DB: the point (0, 2k) on
    /// banana j and the θ₂ spread).
    pub fn component(self, j: usize) -> ([f64; 3], f64) {
        let s3 = libm::sqrt(3.0);
        match self {
            Task::T2D1 => ([0.0; 3], 1.0),
            Task::T2D2 => ([if j == 0 { -2.5 } else { 2.5 }, 0.0, 0.0], 0.6),
            Task::T2D3 => {
                let a = [90.0f64, 210.0, 330.0][j.min(2)].to_radians();
                ([3.0 * libm::cos(a), 3.0 * libm::sin(a), 0.0], 0.5)
            }
            Task::T2DB => ([0.0, if j == 0 { 2.0 } else { -2.0 }, 0.0], 0.35),
            Task::T3D2 => ([if j == 0 { -2.5 } else { 2.5 }, 0.0, 0.0], 0.6),
            Task::T3D4 => {
                let v = [
                    [1.0, 1.0, 1.0],
                    [1.0, -1.0, -1.0],
                    [-1.0, 1.0, -1.0],
                    [-1.0, -1.0, 1.0],
                ][j.min(3)];
                ([s3 * v[0], s3 * v[1], s3 * v[2]], 0.5)
            }
        }
    }

    /// ln Z: the log of the likelihood mass inside the box (0 within 1e-8 for the Gaussian
    /// tasks; 2DB by quadrature, from BENCHMARKS.md).
    pub fn log_evidence(self) -> f64 {
        match self {
            Task::T2DB => libm::log(0.998_451),
            _ => 0.0,
        }
    }

    /// log L(θ) for one point θ (`D` values); −∞ far from every mode.
    pub fn log_likelihood(self, theta: &[f64]) -> f64 {
        let d = self.dim();
        let mut terms = [f64::NEG_INFINITY; MAX_COMPONENTS];
        for (j, t) in terms.iter_mut().enumerate().take(self.modes()) {
            let (c, s) = self.component(j);
            *t = if self == Task::T2DB {
                let k = if j == 0 { 1.0 } else { -1.0 };
                let (x, y) = (
                    theta.first().copied().unwrap_or(0.0),
                    theta.get(1).copied().unwrap_or(0.0),
                );
                let sx = 1.25;
                let my = 2.0 * k + 0.25 * k * x * x;
                -LN_2PI
                    - libm::log(sx)
                    - libm::log(s)
                    - 0.5 * (x / sx) * (x / sx)
                    - 0.5 * ((y - my) / s) * ((y - my) / s)
            } else {
                let q: f64 = theta
                    .iter()
                    .zip(&c[..d])
                    .map(|(&t, &ci)| ((t - ci) / s) * ((t - ci) / s))
                    .sum();
                -0.5 * d as f64 * LN_2PI - d as f64 * libm::log(s) - 0.5 * q
            } - libm::log(self.modes() as f64);
        }
        let terms = &terms[..self.modes()];
        let m = terms.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
        if m == f64::NEG_INFINITY {
            return m;
        }
        m + libm::log(terms.iter().map(|&t| libm::exp(t - m)).sum::<f64>())
    }

    /// `true` if θ lies in the prior box.
    pub fn in_box(self, theta: &[f64]) -> bool {
        theta.iter().take(self.dim()).all(|v| v.abs() <= BOX)
    }

    /// Normalised log posterior log p(θ) (−∞ outside the box).
    pub fn log_posterior(self, theta: &[f64]) -> f64 {
        if self.in_box(theta) {
            self.log_likelihood(theta) - self.log_evidence()
        } else {
            f64::NEG_INFINITY
        }
    }

    /// log of the posterior's peak density, max p, used by the bridge-mass metric: the
    /// largest density over the component centres.
    pub fn log_peak(self) -> f64 {
        (0..self.modes())
            .map(|j| {
                let (c, _) = self.component(j);
                self.log_posterior(&c[..self.dim()])
            })
            .fold(f64::NEG_INFINITY, f64::max)
    }

    /// Draws one exact posterior sample into `theta[..D]`: pick a component uniformly, draw
    /// from it, reject draws outside the box.
    pub fn sample_posterior(self, draws: &mut Draws<'_>, theta: &mut [f64]) {
        let d = self.dim();
        loop {
            let j = draws.below(self.modes());
            let (c, s) = self.component(j);
            if self == Task::T2DB {
                let k = if j == 0 { 1.0 } else { -1.0 };
                let x = 1.25 * draws.normal();
                let y = 2.0 * k + 0.25 * k * x * x + s * draws.normal();
                if let Some(t) = theta.get_mut(..2) {
                    t[0] = x;
                    t[1] = y;
                }
            } else {
                for (i, t) in theta.iter_mut().enumerate().take(d) {
                    *t = c[i] + s * draws.normal();
                }
            }
            if self.in_box(theta) {
                return;
            }
        }
    }
}
