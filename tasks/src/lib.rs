//! # lwflow-tasks
//!
//! The benchmark posteriors of `docs/TASKS.md`, the accuracy [`metrics`] that score a fit
//! against them and the [`Draws`] their exact samplers use: the yardstick of lwflow's tests,
//! examples, benches and Cortex-M firmware, kept out of the library's public API (a dev-only
//! crate of the workspace, never published).
//!
//! The posteriors: prior uniform on [−6, 6]^D, closed-form likelihoods, so the true posterior
//! p(θ) = L(θ)·1\[box\]/Z is known exactly and can be sampled exactly. Z is the likelihood mass
//! inside the box; the evidence is Z / 12^D.
//!
//! The paper-reproduction suite ([`Task::ALL`]; equal-weight mixtures):
//!
//! | task | D | likelihood |
//! |---|---|---|
//! | 2D1 | 2 | N((0,0), 1²I) |
//! | 2D2 | 2 | N((∓2.5, 0), 0.6²I) |
//! | 2D3 | 2 | N(3(cos a, sin a), 0.5²I), a = 90°, 210°, 330° |
//! | 2DB | 2 | bananas k = ±1: N(θ₁; 0, 1.25²)·N(θ₂; 2k + 0.25kθ₁², 0.35²) |
//! | 3D2 | 3 | N((∓2.5, 0, 0), 0.6²I) |
//! | 3D4 | 3 | N(√3·v, 0.5²I), v = (1,1,1), (1,−1,−1), (−1,1,−1), (−1,−1,1) |
//!
//! The refinement suite ([`Task::REFINE`]):
//!
//! | task | D | likelihood | Z |
//! |---|---|---|---:|
//! | 2DC | 2 | N((5.4, 5.4), 0.7²I): one mode cut by the box on both axes | 0.646926 |
//! | 5D2 | 5 | weights 0.5/0.5: N(±(−2, −1, 0, 1, 2), 0.6²I) | 1 |
//! | 8D3 | 8 | weights 0.5/0.3/0.2: N((2,2,2,2,0,0,0,0), 0.7²I), N((−2,0,2,−2,2,0,−2,0), 0.7²I), N((0,−2.5,0,2.5,0,−2.5,0,2.5), 0.5²I) | 1 − 1.9e-8 |
//! | 10D1 | 10 | N(0, Σ), Σᵢⱼ = 0.8^\|i−j\| | 1 − O(1e-8) |

#![no_std]
#![deny(unsafe_code)]
#![deny(missing_docs)]
// `!(x > y)` is deliberate throughout: it sends NaN to the refusing branch.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

mod draws;
pub mod metrics;

pub use draws::Draws;

/// Half-width of the prior box [−6, 6]^D.
pub const BOX: f64 = 6.0;
/// The largest dimension of any task (10D1): `[f64; MAX_DIM]` holds one point of any task.
pub const MAX_DIM: usize = 10;
const MAX_COMPONENTS: usize = 4;
const LN_2PI: f64 = 1.837_877_066_409_345_3;
/// ln 12, the log-width of the prior box on one axis.
const LN_12: f64 = 2.484_906_649_788_000_4;
/// Rejection sampling gives up after this many draws outside the box (the worst acceptance
/// rate of any task is 0.65, so this is never reached in practice: 0.35¹⁰⁰⁰ ≈ 10⁻⁴⁵⁶).
const MAX_TRIES: usize = 1000;

const MEANS_2DC: [f64; 2] = [5.4, 5.4];
const MEANS_5D2: [[f64; 5]; 2] = [[-2.0, -1.0, 0.0, 1.0, 2.0], [2.0, 1.0, 0.0, -1.0, -2.0]];
const MEANS_8D3: [[f64; 8]; 3] = [
    [2.0, 2.0, 2.0, 2.0, 0.0, 0.0, 0.0, 0.0],
    [-2.0, 0.0, 2.0, -2.0, 2.0, 0.0, -2.0, 0.0],
    [0.0, -2.5, 0.0, 2.5, 0.0, -2.5, 0.0, 2.5],
];
const SDS_8D3: [f64; 3] = [0.7, 0.7, 0.5];
const WEIGHTS_8D3: [f64; 3] = [0.5, 0.3, 0.2];
/// Neighbour correlation of 10D1's AR(1) covariance Σᵢⱼ = ρ^|i−j|.
const RHO_10D1: f64 = 0.8;

/// One of the benchmark tasks.
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
    /// One 2-D Gaussian piled in the corner (5.4, 5.4), cut by the box on both axes.
    T2DC,
    /// Two 5-D Gaussians at ±(−2, −1, 0, 1, 2), equal weights.
    T5D2,
    /// Three 8-D Gaussians, weights 0.5/0.3/0.2 and spreads 0.7/0.7/0.5.
    T8D3,
    /// One correlated 10-D Gaussian N(0, Σ), Σᵢⱼ = 0.8^|i−j|.
    T10D1,
}

impl Task {
    /// The six tasks of the paper-reproduction suite, in the suite's order.
    pub const ALL: [Task; 6] = [
        Task::T2D1,
        Task::T2D2,
        Task::T2D3,
        Task::T2DB,
        Task::T3D2,
        Task::T3D4,
    ];

    /// The four tasks of the refinement suite (`docs/TASKS.md`, "The refinement suite").
    pub const REFINE: [Task; 4] = [Task::T2DC, Task::T5D2, Task::T8D3, Task::T10D1];

    /// Every task: [`Task::ALL`] then [`Task::REFINE`].
    pub const PUBLIC: [Task; 10] = [
        Task::T2D1,
        Task::T2D2,
        Task::T2D3,
        Task::T2DB,
        Task::T3D2,
        Task::T3D4,
        Task::T2DC,
        Task::T5D2,
        Task::T8D3,
        Task::T10D1,
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
            Task::T2DC => "2DC",
            Task::T5D2 => "5D2",
            Task::T8D3 => "8D3",
            Task::T10D1 => "10D1",
        }
    }

    /// Dimension D (at most [`MAX_DIM`]).
    pub fn dim(self) -> usize {
        match self {
            Task::T2D1 | Task::T2D2 | Task::T2D3 | Task::T2DB | Task::T2DC => 2,
            Task::T3D2 | Task::T3D4 => 3,
            Task::T5D2 => 5,
            Task::T8D3 => 8,
            Task::T10D1 => 10,
        }
    }

    /// Number of separated modes (mixture components of the likelihood).
    pub fn modes(self) -> usize {
        match self {
            Task::T2D1 | Task::T2DC | Task::T10D1 => 1,
            Task::T2D2 | Task::T2DB | Task::T3D2 | Task::T5D2 => 2,
            Task::T2D3 | Task::T8D3 => 3,
            Task::T3D4 => 4,
        }
    }

    /// `true` for the tasks whose likelihood is a Gaussian mixture (all but 2DB).
    pub fn is_gaussian_mixture(self) -> bool {
        self != Task::T2DB
    }

    /// Mixture weight of component `j` (0 for `j ≥ modes()`): 1/K on every task but 8D3
    /// (0.5, 0.3, 0.2).
    pub fn mode_weight(self, j: usize) -> f64 {
        if j >= self.modes() {
            0.0
        } else if self == Task::T8D3 {
            WEIGHTS_8D3[j.min(2)]
        } else {
            1.0 / self.modes() as f64
        }
    }

    /// −ln of the weight of component `j < modes()`, in the form the likelihood uses
    /// (ln K for the equal-weight tasks).
    fn neg_log_weight(self, j: usize) -> f64 {
        if self == Task::T8D3 {
            -libm::log(WEIGHTS_8D3[j.min(2)])
        } else {
            libm::log(self.modes() as f64)
        }
    }

    /// Centre (first D entries; the rest 0) and standard deviation of Gaussian component `j`
    /// (`j` past the last component means the last). For 2DB: the point (0, 2k) on banana j and
    /// the θ₂ spread; for 10D1: the origin and the marginal standard deviation 1 (Σ is not
    /// isotropic there).
    pub fn component(self, j: usize) -> ([f64; MAX_DIM], f64) {
        let mut c = [0.0; MAX_DIM];
        let s = match self {
            Task::T2D1 => 1.0,
            Task::T2D2 | Task::T3D2 => {
                c[0] = if j == 0 { -2.5 } else { 2.5 };
                0.6
            }
            Task::T2D3 => {
                let a = [90.0f64, 210.0, 330.0][j.min(2)].to_radians();
                c[0] = 3.0 * libm::cos(a);
                c[1] = 3.0 * libm::sin(a);
                0.5
            }
            Task::T2DB => {
                c[1] = if j == 0 { 2.0 } else { -2.0 };
                0.35
            }
            Task::T3D4 => {
                let s3 = libm::sqrt(3.0);
                let v = [
                    [1.0, 1.0, 1.0],
                    [1.0, -1.0, -1.0],
                    [-1.0, 1.0, -1.0],
                    [-1.0, -1.0, 1.0],
                ][j.min(3)];
                c[0] = s3 * v[0];
                c[1] = s3 * v[1];
                c[2] = s3 * v[2];
                0.5
            }
            Task::T2DC => {
                c[..2].copy_from_slice(&MEANS_2DC);
                0.7
            }
            Task::T5D2 => {
                c[..5].copy_from_slice(&MEANS_5D2[j.min(1)]);
                0.6
            }
            Task::T8D3 => {
                c[..8].copy_from_slice(&MEANS_8D3[j.min(2)]);
                SDS_8D3[j.min(2)]
            }
            Task::T10D1 => 1.0,
        };
        (c, s)
    }

    /// Writes the centre of component `j` (as [`Task::component`]) into `out[..D]` (as much as
    /// fits), e.g. to build the `means` of [`mode_shares`](metrics::mode_shares).
    pub fn mode_mean(self, j: usize, out: &mut [f64]) {
        let (c, _) = self.component(j);
        for (o, &v) in out.iter_mut().zip(&c[..self.dim()]) {
            *o = v;
        }
    }

    /// ln Z: the log of the likelihood mass inside the box. 0 for the paper's Gaussian tasks
    /// (1 − Z < 1e-8) and 10D1 (1 − Z < 2e-8: at most 20 one-axis tails Φ(−6)); 2DB by
    /// quadrature (0.998451, from the benchmark sheet, `docs/TASKS.md`); 2DC, 5D2 and 8D3
    /// exactly, from the normal CDF (2DC: Z = (Φ(0.6/0.7) − Φ(−11.4/0.7))² = 0.646926; 5D2:
    /// 1 − 2.6e-11; 8D3: 1 − 1.9e-8, not "to 1e-9" as the benchmark sheet has it).
    pub fn log_evidence(self) -> f64 {
        match self {
            Task::T2DB => libm::log(0.998_451),
            Task::T2DC | Task::T5D2 | Task::T8D3 => libm::log(self.isotropic_box_mass()),
            _ => 0.0,
        }
    }

    /// The log evidence (marginal likelihood) under the uniform prior on the box:
    /// ln Z − D ln 12.
    pub fn log_evidence_with_prior(self) -> f64 {
        self.log_evidence() - self.dim() as f64 * LN_12
    }

    /// Σⱼ wⱼ Πᵢ P(|θᵢ| ≤ 6) for an isotropic Gaussian mixture, each factor as 1 minus the two
    /// tails (accurate when both tails are tiny).
    fn isotropic_box_mass(self) -> f64 {
        let d = self.dim();
        let mut z = 0.0;
        for j in 0..self.modes() {
            let (c, s) = self.component(j);
            let mut m = self.mode_weight(j);
            for &ci in &c[..d] {
                let upper = 0.5 * libm::erfc((BOX - ci) / (s * core::f64::consts::SQRT_2));
                let lower = 0.5 * libm::erfc((BOX + ci) / (s * core::f64::consts::SQRT_2));
                m *= 1.0 - upper - lower;
            }
            z += m;
        }
        z
    }

    /// log L(θ) for one point θ (`D` values); −∞ far from every mode.
    pub fn log_likelihood(self, theta: &[f64]) -> f64 {
        if self == Task::T10D1 {
            return ar1_log_density(theta, self.dim(), RHO_10D1);
        }
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
            } - self.neg_log_weight(j);
        }
        let terms = &terms[..self.modes().min(MAX_COMPONENTS)];
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

    /// Picks a component: uniformly on the equal-weight tasks (one `below` draw), by weight on
    /// 8D3 (one uniform draw).
    fn pick_component(self, draws: &mut Draws<'_>) -> usize {
        if self == Task::T8D3 {
            let u = draws.uniform();
            let mut acc = 0.0;
            for (j, &w) in WEIGHTS_8D3.iter().enumerate() {
                acc += w;
                if u < acc {
                    return j;
                }
            }
            WEIGHTS_8D3.len() - 1
        } else {
            draws.below(self.modes())
        }
    }

    /// Draws one exact posterior sample into `theta[..D]`: pick a component by weight, draw
    /// from it (10D1: x = Lz through the Cholesky factor L of Σ, which for the AR(1)
    /// covariance is the recursion x₀ = z₀, xᵢ = ρxᵢ₋₁ + √(1−ρ²)zᵢ), reject draws outside the
    /// box. After 1000 rejections in a row (never, in practice) the last draw is clamped to
    /// the box.
    pub fn sample_posterior(self, draws: &mut Draws<'_>, theta: &mut [f64]) {
        let d = self.dim();
        for _ in 0..MAX_TRIES {
            let j = self.pick_component(draws);
            let (c, s) = self.component(j);
            if self == Task::T2DB {
                let k = if j == 0 { 1.0 } else { -1.0 };
                let x = 1.25 * draws.normal();
                let y = 2.0 * k + 0.25 * k * x * x + s * draws.normal();
                if let Some(t) = theta.get_mut(..2) {
                    t[0] = x;
                    t[1] = y;
                }
            } else if self == Task::T10D1 {
                let r = RHO_10D1;
                let sc = libm::sqrt(1.0 - r * r);
                let mut prev = 0.0;
                for (i, t) in theta.iter_mut().enumerate().take(d) {
                    let z = draws.normal();
                    *t = if i == 0 { z } else { r * prev + sc * z };
                    prev = *t;
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
        for t in theta.iter_mut().take(d) {
            *t = t.clamp(-BOX, BOX);
        }
    }

    /// The 0.1 % quantile of log p over `scratch.len()` exact posterior samples (drawn here),
    /// the threshold of the tail-mass metric ([`tail_mass`](metrics::tail_mass)).
    /// The suite (`docs/TASKS.md`) estimates it from 10⁶ samples: pass a scratch of 10⁶
    /// values. On return `scratch` holds the samples' log p, partially ordered; the threshold
    /// is its k-th smallest value, k = ⌊n/1000⌋ (0-based), so exactly k of the n samples lie
    /// strictly below it (without ties). NaN if `scratch` is empty.
    pub fn tail_threshold(self, draws: &mut Draws<'_>, scratch: &mut [f64]) -> f64 {
        let d = self.dim();
        let mut row = [0.0; MAX_DIM];
        for v in scratch.iter_mut() {
            self.sample_posterior(draws, &mut row[..d]);
            *v = self.log_posterior(&row[..d]);
        }
        let k = scratch.len() / 1000;
        if k >= scratch.len() {
            return f64::NAN;
        }
        let (_, kth, _) = scratch.select_nth_unstable_by(k, |a, b| a.total_cmp(b));
        *kth
    }
}

/// log N(θ; 0, Σ) for the AR(1) correlation Σᵢⱼ = ρ^|i−j| in `d` dimensions, in closed form:
/// Σ⁻¹ is tridiagonal, so θᵀΣ⁻¹θ = θ₀² + Σᵢ₌₁ (θᵢ − ρθᵢ₋₁)² / (1 − ρ²) and
/// ln det Σ = (d − 1) ln(1 − ρ²).
fn ar1_log_density(theta: &[f64], d: usize, rho: f64) -> f64 {
    let v = 1.0 - rho * rho;
    let mut q = 0.0;
    let mut prev = 0.0;
    for (i, &t) in theta.iter().enumerate().take(d) {
        q += if i == 0 {
            t * t
        } else {
            (t - rho * prev) * (t - rho * prev) / v
        };
        prev = t;
    }
    -0.5 * d as f64 * LN_2PI - 0.5 * (d as f64 - 1.0) * libm::log(v) - 0.5 * q
}
