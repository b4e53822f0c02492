//! The runtime shape of a flow and every size derived from it, as `const fn`s.
//!
//! ```
//! use lwflow::{Shape, BaseKind};
//! const SHAPE: Shape = Shape::new(2, 16, 4).with_base(BaseKind::Mixture(2));
//! static PARAMS: [f32; SHAPE.param_len()] = [0.0; SHAPE.param_len()];
//! assert_eq!(PARAMS.len(), SHAPE.param_len());
//! assert!(SHAPE.validate().is_ok());
//! ```

use crate::error::ShapeError;

/// Samples per tile: the kernels push this many samples at once through every layer, with the
/// activations of one tile laid out feature-major (`[feature][lane]`) in the workspace.
///
/// 32 on 64-bit x86 and ARM (two AVX-512 vectors of f32 per row: the weight gradient's
/// per-tile load/store of its accumulators is amortised over twice the samples of a 16-lane
/// tile, measured 12 % faster training at batch 4096), 16 elsewhere (half the workspace on
/// microcontrollers, where there are no wide vectors to feed).
pub const TILE: usize = if cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
    32
} else {
    16
};

/// Upper bound on each of dim, hidden width, hidden layers, couplings and components, so every
/// size fits the format's `u32` fields and no size computation can overflow.
pub const MAX_EXTENT: usize = 1 << 16;

/// The one rule for a soft-clamp bound, applied by [`Shape::validate`] and so by every
/// door (model bytes, the C ABI's shapes and model headers): exactly +0.0 (the clamp is off)
/// or a positive normal finite f32. −0.0, subnormals (whose reciprocal overflows f32), NaN,
/// infinities and negative values are refused.
pub const fn clamp_valid(clamp: f32) -> bool {
    clamp.to_bits() == 0 || (clamp.is_normal() && clamp.is_sign_positive())
}

/// The base distribution of the flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BaseKind {
    /// Fixed standard normal N(0, I): no trainable parameters.
    StandardNormal,
    /// Diagonal Gaussian with trainable mean and log-scale (normflows' `DiagGaussian`).
    /// Parameters: `loc[D]`, then `log_scale[D]`.
    Gaussian,
    /// Mixture of K diagonal Gaussians with trainable logits, means and log-scales (normflows'
    /// `GaussianMixture`). Parameters: `logits[K]`, `loc[K][D]`, `log_scale[K][D]`.
    Mixture(usize),
}

/// Hidden-layer activation of the coupling conditioners.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    /// max(x, 0), as normflows' `MLP` (LeakyReLU with slope 0).
    Relu,
    /// tanh(x): smooth, so the density is smooth in θ.
    Tanh,
}

impl BaseKind {
    /// The base's code in every external form (saved models, refinement states, the C ABI's
    /// `LwfShape.base` and its model header): 0 standard normal, 1 Gaussian, 2 mixture; with
    /// its component count (1 for the single Gaussians).
    pub const fn code(self) -> (u8, usize) {
        match self {
            BaseKind::StandardNormal => (0, 1),
            BaseKind::Gaussian => (1, 1),
            BaseKind::Mixture(k) => (2, k),
        }
    }

    /// The base of [`code`](Self::code) `code` with `components` components; `None` for an
    /// unknown code, or a single Gaussian whose count is not 1. (A mixture's count is checked
    /// by [`Shape::validate`].)
    pub const fn from_code(code: u32, components: usize) -> Option<BaseKind> {
        match code {
            0 if components == 1 => Some(BaseKind::StandardNormal),
            1 if components == 1 => Some(BaseKind::Gaussian),
            2 => Some(BaseKind::Mixture(components)),
            _ => None,
        }
    }
}

impl Activation {
    /// The activation's code in every external form: 0 ReLU, 1 tanh.
    pub const fn code(self) -> u8 {
        match self {
            Activation::Relu => 0,
            Activation::Tanh => 1,
        }
    }

    /// The activation of [`code`](Self::code) `code`; `None` for an unknown code.
    pub const fn from_code(code: u32) -> Option<Activation> {
        match code {
            0 => Some(Activation::Relu),
            1 => Some(Activation::Tanh),
            _ => None,
        }
    }
}

/// Shape of a RealNVP flow: dimension, conditioner size, number of couplings, base, activation
/// and the soft clamp of the log-scale.
///
/// Each coupling layer `l` is an affine coupling whose conditioner is an MLP
/// `[⌈D/2⌉, H (× hidden_layers), 2⌊D/2⌋]`, followed by a swap permutation (normflows'
/// `AffineCouplingBlock` + `Permute(D, 'swap')`). With `clamp > 0` the raw log-scale `r` is
/// soft-clamped to `s = clamp · tanh(r / clamp)`; `clamp == 0` uses `s = r` (normflows' exact
/// formulas).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shape {
    /// Dimension D ≥ 2 of θ.
    pub dim: usize,
    /// Hidden width H ≥ 1 of every conditioner layer.
    pub hidden: usize,
    /// Hidden layers per conditioner (≥ 1; normflows' `MLP([c, H, H, 2t])` has 2).
    pub hidden_layers: usize,
    /// Number of coupling layers L ≥ 1.
    pub couplings: usize,
    /// The base distribution.
    pub base: BaseKind,
    /// Hidden activation.
    pub activation: Activation,
    /// Soft-clamp bound of the log-scale: +0.0 (off, exact normflows behaviour) or a
    /// positive normal finite f32 (see [`clamp_valid`]).
    pub clamp: f32,
    /// An affine standardisation y = μ + L·u, L lower-triangular with a positive diagonal,
    /// between the couplings' output u and θ (or the box map): a correlated or far-off
    /// posterior starts as a whitened one. Parameters μ\[D\], then L packed row by row
    /// (D(D+1)/2 values), after the base's; never trained.
    pub affine: bool,
    /// The flow lives on a box \[lo, hi\]: the outermost bijection maps each coordinate of R
    /// onto (lo_d, hi_d), the identity on the central three quarters and a Gaussian-CDF
    /// approach to each edge in the outer eighths (`flow::outer`), so q has support exactly
    /// the box. Parameters lo\[D\], then hi\[D\], last; never trained.
    pub bounded: bool,
}

impl Shape {
    /// A shape with D = `dim`, H = `hidden`, L = `couplings`, two hidden layers per conditioner,
    /// a trainable Gaussian base, ReLU, and the default soft clamp of 3.
    pub const fn new(dim: usize, hidden: usize, couplings: usize) -> Self {
        Shape {
            dim,
            hidden,
            hidden_layers: 2,
            couplings,
            base: BaseKind::Gaussian,
            activation: Activation::Relu,
            clamp: 3.0,
            affine: false,
            bounded: false,
        }
    }

    /// The same shape with (or without) the affine standardisation.
    pub const fn with_affine(mut self, affine: bool) -> Self {
        self.affine = affine;
        self
    }

    /// The same shape with (or without) the bounded support on a box.
    // Same shape as the other with_* builders here (duplicates): const fn setters, one per
    // field (a macro would hide the docs and const-ness).
    pub const fn with_bounded(mut self, bounded: bool) -> Self {
        self.bounded = bounded;
        self
    }

    /// The same shape without the outer maps (affine and box): the couplings and base alone,
    /// whose parameters are a prefix of this shape's.
    pub const fn inner(self) -> Self {
        self.with_affine(false).with_bounded(false)
    }

    /// The same shape with another base.
    pub const fn with_base(mut self, base: BaseKind) -> Self {
        self.base = base;
        self
    }

    /// The same shape with another number of hidden layers per conditioner.
    pub const fn with_hidden_layers(mut self, hidden_layers: usize) -> Self {
        self.hidden_layers = hidden_layers;
        self
    }

    /// The same shape with another activation.
    pub const fn with_activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }

    /// The same shape with another soft-clamp bound (0 = off).
    pub const fn with_clamp(mut self, clamp: f32) -> Self {
        self.clamp = clamp;
        self
    }

    /// Checks every field; the sizes below are meaningful only for a valid shape.
    pub fn validate(&self) -> Result<(), ShapeError> {
        let in_range = |v: usize| v <= MAX_EXTENT;
        if self.dim < 2 {
            return Err(ShapeError::Dim);
        }
        if self.hidden == 0 {
            return Err(ShapeError::Hidden);
        }
        if self.hidden_layers == 0 {
            return Err(ShapeError::HiddenLayers);
        }
        if self.couplings == 0 {
            return Err(ShapeError::Couplings);
        }
        if let BaseKind::Mixture(k) = self.base {
            if k == 0 {
                return Err(ShapeError::Components);
            }
            if !in_range(k) {
                return Err(ShapeError::TooLarge);
            }
        }
        if !clamp_valid(self.clamp) {
            return Err(ShapeError::Clamp);
        }
        if !(in_range(self.dim)
            && in_range(self.hidden)
            && in_range(self.hidden_layers)
            && in_range(self.couplings))
        {
            return Err(ShapeError::TooLarge);
        }
        // Every size must be exact (no saturation) and the parameter count must fit a u32;
        // 16 bytes per parameter must fit too, so byte counts derived from P (a saved file
        // is 8 per parameter plus a small header) cannot overflow on a 32-bit target.
        let p = self.param_len();
        let w = self.workspace_len();
        if p >= u32::MAX as usize || w == usize::MAX || p.checked_mul(16).is_none() {
            return Err(ShapeError::TooLarge);
        }
        Ok(())
    }

    /// ⌈D/2⌉: the conditioning part of a coupling (passed through unchanged).
    pub const fn cond_dim(&self) -> usize {
        self.dim - self.dim / 2
    }

    /// ⌊D/2⌋: the transformed part of a coupling.
    pub const fn trans_dim(&self) -> usize {
        self.dim / 2
    }

    /// Number of base components (1 for the Gaussian bases).
    pub const fn components(&self) -> usize {
        match self.base {
            BaseKind::Mixture(k) => k,
            _ => 1,
        }
    }

    /// Number of dense layers in one conditioner (hidden layers + the output layer).
    pub const fn dense_layers(&self) -> usize {
        self.hidden_layers.saturating_add(1)
    }

    /// (inputs, outputs) of dense layer `k` of a conditioner.
    pub const fn dense_dims(&self, k: usize) -> (usize, usize) {
        let n_in = if k == 0 { self.cond_dim() } else { self.hidden };
        let n_out = if k >= self.hidden_layers {
            2 * self.trans_dim()
        } else {
            self.hidden
        };
        (n_in, n_out)
    }

    /// Parameters of dense layer `k` (weights input-major `[in][out]`, i.e. torch's
    /// `nn.Linear.weight` transposed, then bias `[out]`).
    pub const fn dense_len(&self, k: usize) -> usize {
        let (i, o) = self.dense_dims(k);
        i.saturating_mul(o).saturating_add(o)
    }

    /// Parameters of one coupling layer's conditioner.
    pub const fn coupling_len(&self) -> usize {
        let first = self.dense_len(0);
        let mid = self
            .dense_len(1)
            .saturating_mul(self.hidden_layers.saturating_sub(1));
        let last = self.dense_len(self.hidden_layers);
        first.saturating_add(mid).saturating_add(last)
    }

    /// Parameters of all coupling layers (they come first in the flat parameter slice).
    pub const fn flow_param_len(&self) -> usize {
        self.coupling_len().saturating_mul(self.couplings)
    }

    /// Parameters of the base (after the flow's in the flat parameter slice).
    pub const fn base_param_len(&self) -> usize {
        match self.base {
            BaseKind::StandardNormal => 0,
            BaseKind::Gaussian => self.dim.saturating_mul(2),
            BaseKind::Mixture(k) => k.saturating_add(k.saturating_mul(self.dim).saturating_mul(2)),
        }
    }

    /// Parameters of the affine standardisation: μ\[D\] and the packed L (0 without it).
    pub const fn affine_param_len(&self) -> usize {
        if self.affine {
            let tri = self.dim.saturating_mul(self.dim.saturating_add(1)) / 2;
            self.dim.saturating_add(tri)
        } else {
            0
        }
    }

    /// Parameters of the box: lo\[D\] and hi\[D\] (0 when unbounded).
    pub const fn box_param_len(&self) -> usize {
        if self.bounded {
            self.dim.saturating_mul(2)
        } else {
            0
        }
    }

    /// Length of the flat parameter slice: couplings, base, then the affine map and the box
    /// (the last two only when present; they are never trained).
    pub const fn param_len(&self) -> usize {
        self.flow_param_len()
            .saturating_add(self.base_param_len())
            .saturating_add(self.affine_param_len())
            .saturating_add(self.box_param_len())
    }

    /// Length of the Adam state (first and second moments).
    pub const fn optimizer_len(&self) -> usize {
        self.param_len().saturating_mul(2)
    }

    /// Rows (of [`TILE`] lanes) of one coupling's slot: its output state, every hidden
    /// activation and the raw conditioner output. Training keeps one slot per coupling for the
    /// backward pass; evaluation reuses a single slot.
    pub const fn slot_rows(&self) -> usize {
        self.dim
            .saturating_add(self.hidden.saturating_mul(self.hidden_layers))
            .saturating_add(2 * self.trans_dim())
    }

    /// Rows of the evaluation region: state, one slot, log-det, base scratch (K + 1 rows).
    pub(crate) const fn eval_rows(&self) -> usize {
        self.dim
            .saturating_add(self.slot_rows())
            .saturating_add(2)
            .saturating_add(self.components())
    }

    /// Rows of the gradient region: state gradient, hidden ping/pong, conditioner-output
    /// gradient, conditioning-input gradient, per-lane loss coefficient, and one sample-major
    /// `TILE × TILE` block of a layer's output gradient for the weight gradient.
    pub(crate) const fn grad_rows(&self) -> usize {
        self.dim
            .saturating_add(self.hidden.saturating_mul(2))
            .saturating_add(2 * self.trans_dim())
            .saturating_add(self.cond_dim())
            .saturating_add(1)
            .saturating_add(TILE)
    }

    /// Workspace elements for `log_prob`, `sample`, `forward` and `inverse`, for any batch
    /// size: the kernels work one tile of [`TILE`] samples at a time.
    pub const fn eval_workspace_len(&self) -> usize {
        self.eval_rows().saturating_mul(TILE)
    }

    /// Workspace elements for the gradient (training) path; also enough for every evaluation.
    /// Independent of the batch size.
    pub const fn workspace_len(&self) -> usize {
        self.eval_rows()
            .saturating_add(self.slot_rows().saturating_mul(self.couplings))
            .saturating_add(self.grad_rows())
            .saturating_mul(TILE)
    }

    /// Workspace elements for the recompute-mode gradient
    /// ([`Flow::loss_and_gradient_recompute`](crate::Flow::loss_and_gradient_recompute)):
    /// the evaluation region and the gradient rows, without the L per-coupling slots of
    /// [`workspace_len`](Self::workspace_len). Independent of the batch size.
    pub const fn recompute_workspace_len(&self) -> usize {
        self.eval_rows()
            .saturating_add(self.grad_rows())
            .saturating_mul(TILE)
    }
}
