//! `LwfFitConfig`: every setting of the one-call fit (base choice, weights, EM, training,
//! seeds) in one growable struct, its defaults (the core's `TrainConfig::default()` and
//! `EmConfig::default()`) and its validation into the core's `FitConfig`.

use crate::guard::{guard, out_scalar, read_growable, write_scalar};
use crate::status::LwfStatus::{self, *};
use core::mem::size_of;
use lwflow::base::em::EmConfig;
use lwflow::train::{BaseChoice, FitConfig, NonFinitePolicy, Schedule, TrainConfig};
use lwflow::Adam;

/// Base choice codes for `LwfFitConfig.base`.
// Same shape as LwfSchedule below (duplicates): repr(C) code enums, each spelling out its own
// codes for the header.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LwfFitBase {
    /// Trainable diagonal Gaussian starting at N(0, I) (the paper's unimodal base).
    /// `components` is ignored.
    LWF_FIT_BASE_GAUSSIAN = 0,
    /// `components` trainable Gaussians initialised the paper's way (normflows'
    /// `GaussianMixture`: means N(0, 1), unit scales, equal weights).
    LWF_FIT_BASE_PAPER_MIXTURE = 1,
    /// `components` Gaussians fitted by weighted EM to the weighted samples.
    LWF_FIT_BASE_MIXTURE = 2,
    /// K = 1..`components` fitted by weighted EM, the smallest BIC wins (the default).
    LWF_FIT_BASE_AUTO = 3,
}

/// Learning-rate schedule codes for `LwfFitConfig.schedule`.
// Same shape as LwfFitBase, LwfNonFinitePolicy, shape.rs::LwfBaseKind and fit.rs::LwfStopReason
// (duplicates): repr(C) code enums, each spelling out its own codes for the header.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LwfSchedule {
    /// `lr` throughout.
    LWF_SCHEDULE_CONSTANT = 0,
    /// Cosine decay from `lr` to `min_lr_factor * lr` at the last step (the default).
    LWF_SCHEDULE_COSINE = 1,
}

/// What the fit does with a NaN or +inf log-likelihood or log-weight (`LwfFitConfig.non_finite`);
/// -inf is always a valid zero weight.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LwfNonFinitePolicy {
    /// Refuse the whole set (the default): `LWF_CALLBACK_FAILED` for values from the
    /// likelihood callback, `LWF_NON_FINITE` for caller-provided log-weights.
    LWF_NON_FINITE_ERROR = 0,
    /// Give such samples weight 0 and count them in `LwfFitReport.skipped_samples`.
    LWF_NON_FINITE_SKIP = 1,
}

/// Settings of `lwf_model_fit_prior_box` and `lwf_model_fit_samples`. Fill it with
/// `lwf_fit_config_default`, then change fields. Every field is checked by the fit functions
/// and the size queries, whatever the base choice; any value out of range (including NaN)
/// gives `LWF_INVALID_ARGUMENT`.
///
/// The struct can grow: new fields are only ever appended, and `struct_size` (written by
/// `lwf_fit_config_default`) tells the library which fields the caller's header has: the
/// library accepts its own `sizeof(LwfFitConfig)` and every earlier one (the fields an older
/// header lacks take their defaults), and refuses any other size (`LWF_INVALID_ARGUMENT`).
/// Enumerated fields are plain `int32_t` codes so that any value is defined; unknown codes
/// give `LWF_INVALID_ARGUMENT`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LwfFitConfig {
    /// `sizeof(LwfFitConfig)` of the caller's header; written by `lwf_fit_config_default`.
    pub struct_size: usize,
    /// An `LwfFitBase` code (default `LWF_FIT_BASE_AUTO`).
    pub base: i32,
    /// An `LwfNonFinitePolicy` code (default `LWF_NON_FINITE_ERROR`).
    pub non_finite: i32,
    /// K for `LWF_FIT_BASE_PAPER_MIXTURE` and `LWF_FIT_BASE_MIXTURE`, the largest K for
    /// `LWF_FIT_BASE_AUTO` (>= 1; default 8, as the refinement's: with 4, a five-mode
    /// posterior came back with KL 0.44). Ignored for `LWF_FIT_BASE_GAUSSIAN`.
    pub components: usize,
    /// Refuse a weight set whose Kish effective sample size (sum w)^2 / sum w^2 is below this
    /// (`LWF_DEGENERATE_WEIGHTS`); finite, >= 0 (default 100).
    pub min_ess: f64,
    /// Prior-box fit: seed of the prior draws (xoshiro256++ as `lwf_rng_init`; default 0).
    pub sample_seed: u64,
    /// Prior-box fit: the likelihood callback gets at most this many points per call (>= 1;
    /// default 4096; a value >= n_samples gives one call).
    pub likelihood_batch: usize,
    /// EM: iteration cap per restart (>= 1; default 200).
    pub em_max_iter: usize,
    /// EM: stop when the weighted mean log-likelihood improves by less than this, relative
    /// (finite, >= 0; default 1e-6).
    pub em_tol: f64,
    /// EM: variance floor relative to the weighted data variance per dimension (finite, >= 0;
    /// default 1e-6).
    pub em_var_floor: f64,
    /// EM: k-means++ restarts, the best log-likelihood wins (>= 1; default 3).
    pub em_restarts: usize,
    /// EM: samples with weight below this fraction of the largest are ignored (finite, >= 0;
    /// default 1e-10).
    pub em_min_weight: f64,
    /// EM: seed of the k-means++ seedings (default 0).
    pub em_seed: u64,
    /// Training: upper bound on epochs (>= 1; default 200).
    pub max_epochs: usize,
    /// Training: minibatch size (>= 1; default 512).
    pub batch_size: usize,
    /// Adam learning rate (> 0; default 1e-3).
    pub lr: f64,
    /// Adam first-moment decay in [0, 1) (default 0.9).
    pub beta1: f64,
    /// Adam second-moment decay in [0, 1) (default 0.999).
    pub beta2: f64,
    /// Adam epsilon (> 0; default 1e-8).
    pub eps: f64,
    /// L2 weight decay on the coupling parameters (>= 0; default 0).
    pub weight_decay: f64,
    /// An `LwfSchedule` code (default `LWF_SCHEDULE_COSINE`).
    pub schedule: i32,
    /// Cosine schedule: final rate as a fraction of `lr`, in [0, 1] (default 0.05).
    pub min_lr_factor: f64,
    /// Stop after this many epochs without a validation improvement (0 = never; default 20).
    pub patience: usize,
    /// Share of the samples held out for validation, early stopping and restoring the best
    /// parameters, in [0, 0.9] (0 = none; default 0.2).
    pub validation_fraction: f64,
    /// Clip the gradient to this global L2 norm (>= 0, 0 = off; default 10).
    pub clip_norm: f64,
    /// Samples whose weight is below this fraction of the largest are left out of training
    /// and validation, in [0, 1) (default 1e-5).
    pub min_weight: f64,
    /// Training: seed of the validation split and the shuffles (default 0).
    pub seed: u64,
    /// Seed of the parameter initialisation, as `lwf_model_init`'s (default 0).
    pub init_seed: u64,
    /// 1 (the default): a fit that knows a box -- `lwf_model_fit_prior_box`, and
    /// `lwf_model_fit_samples_in_box` -- returns a model on it: the box support is the model's
    /// outermost map (its shape has `bounded` 1 and its parameters end with lo, then hi), every
    /// sample lies inside the box and log q is -inf outside. The base is fitted and the
    /// couplings trained in the box map's unbounded coordinates, so the report's EM figures and
    /// validation losses are in those. 0: an unbounded model, as the first layout of this
    /// struct gave. `lwf_model_fit_samples` knows no box and ignores this field. Not in the
    /// first layout: a config of that size gets the default, 1.
    pub bounded: i32,
}

/// The current layout of `LwfFitConfig`.
// Same shape as refine.rs's LwfRefineConfig layout constants (duplicates): each growable
// repr(C) config names its own layouts.
const CONFIG_SIZE: usize = size_of::<LwfFitConfig>();
/// The first layout: every field up to `init_seed`.
const CONFIG_SIZE_V1: usize = core::mem::offset_of!(LwfFitConfig, bounded);
/// Every layout the library reads, oldest first.
const CONFIG_LAYOUTS: [usize; 2] = [CONFIG_SIZE_V1, CONFIG_SIZE];
const _: () = assert!(CONFIG_SIZE_V1 < CONFIG_SIZE);

impl LwfFitConfig {
    /// The defaults: the core's `TrainConfig::default()`, `EmConfig::default()` and
    /// `Adam::default()`, plus the C ABI's own fields.
    pub(crate) fn defaults() -> LwfFitConfig {
        let train = TrainConfig::default();
        let em = EmConfig::default();
        let (schedule, min_lr_factor) = match train.schedule {
            Schedule::Constant => (LwfSchedule::LWF_SCHEDULE_CONSTANT, 1.0),
            Schedule::Cosine { min_factor } => (LwfSchedule::LWF_SCHEDULE_COSINE, min_factor),
        };
        LwfFitConfig {
            struct_size: CONFIG_SIZE,
            base: LwfFitBase::LWF_FIT_BASE_AUTO as i32,
            non_finite: LwfNonFinitePolicy::LWF_NON_FINITE_ERROR as i32,
            // The refinement's cap: a posterior with more modes than the cap loses some (five
            // modes under a cap of 4: KL 0.44, ffi/tests/fit.rs).
            components: 8,
            min_ess: 100.0,
            sample_seed: 0,
            likelihood_batch: 4096,
            em_max_iter: em.max_iter,
            em_tol: em.tol,
            em_var_floor: em.var_floor,
            em_restarts: em.restarts,
            em_min_weight: em.min_weight,
            em_seed: em.seed,
            max_epochs: train.max_epochs,
            batch_size: train.batch_size,
            lr: train.adam.lr,
            beta1: train.adam.beta1,
            beta2: train.adam.beta2,
            eps: train.adam.eps,
            weight_decay: train.adam.weight_decay,
            schedule: schedule as i32,
            min_lr_factor,
            patience: train.patience,
            validation_fraction: train.validation_fraction,
            clip_norm: train.clip_norm,
            min_weight: train.min_weight,
            seed: train.seed,
            init_seed: 0,
            bounded: 1,
        }
    }

    /// The core's settings, or `LWF_INVALID_ARGUMENT` for any field out of range.
    pub(crate) fn to_core(self) -> Result<Settings, LwfStatus> {
        let invalid = Err(LWF_INVALID_ARGUMENT);
        if !CONFIG_LAYOUTS.contains(&self.struct_size) {
            return invalid;
        }
        let Some((base, bounded, policy, schedule)) = self.choices() else {
            return invalid;
        };
        let em = EmConfig {
            max_iter: self.em_max_iter,
            tol: self.em_tol,
            var_floor: self.em_var_floor,
            restarts: self.em_restarts,
            min_weight: self.em_min_weight,
            seed: self.em_seed,
        };
        let train = TrainConfig {
            max_epochs: self.max_epochs,
            batch_size: self.batch_size,
            adam: Adam {
                lr: self.lr,
                beta1: self.beta1,
                beta2: self.beta2,
                eps: self.eps,
                weight_decay: self.weight_decay,
            },
            schedule,
            patience: self.patience,
            validation_fraction: self.validation_fraction,
            clip_norm: self.clip_norm,
            min_weight: self.min_weight,
            seed: self.seed,
        };
        // The core checks the EM settings only when EM runs, after the likelihood has been
        // evaluated: check them here, whatever the base, so a bad field costs nothing. The
        // core gives NonFinite for a NaN setting; for the config every problem is
        // LWF_INVALID_ARGUMENT (LWF_NON_FINITE is about data).
        let min_ess_ok = self.min_ess.is_finite() && self.min_ess >= 0.0;
        if em.validate().is_err()
            || !min_ess_ok
            || self.likelihood_batch == 0
            || train.validate().is_err()
        {
            return invalid;
        }
        Ok(Settings {
            fit: FitConfig {
                base,
                em,
                train,
                init_seed: self.init_seed,
            },
            policy,
            min_ess: self.min_ess,
            sample_seed: self.sample_seed,
            likelihood_batch: self.likelihood_batch,
            bounded,
        })
    }

    /// The config's coded choices in the core's terms (base, bounded, non-finite policy,
    /// schedule), or `None` for a code out of range.
    fn choices(&self) -> Option<(BaseChoice, bool, NonFinitePolicy, Schedule)> {
        let k = self.components;
        let base = match self.base {
            0 => BaseChoice::Gaussian,
            1 if k >= 1 => BaseChoice::PaperMixture(k),
            2 if k >= 1 => BaseChoice::Mixture(k),
            3 if k >= 1 => BaseChoice::Auto(k),
            _ => return None,
        };
        let bounded = match self.bounded {
            0 => false,
            1 => true,
            _ => return None,
        };
        let policy = match self.non_finite {
            0 => NonFinitePolicy::Error,
            1 => NonFinitePolicy::Skip,
            _ => return None,
        };
        let schedule = match self.schedule {
            0 => Schedule::Constant,
            1 => Schedule::Cosine {
                min_factor: self.min_lr_factor,
            },
            _ => return None,
        };
        Some((base, bounded, policy, schedule))
    }
}

/// A checked `LwfFitConfig` in the core's terms.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    pub(crate) fit: FitConfig,
    pub(crate) policy: NonFinitePolicy,
    pub(crate) min_ess: f64,
    pub(crate) sample_seed: u64,
    pub(crate) likelihood_batch: usize,
    /// Fits that know a box fit on it.
    pub(crate) bounded: bool,
}

/// Reads and checks a config argument: `struct_size` first, then the fields it covers (the
/// fields a first-layout config lacks take their defaults).
///
/// # Safety
/// `config` is NULL or valid for reads of `config->struct_size` bytes (at least the
/// `struct_size` field itself).
pub(crate) unsafe fn read_config(config: *const LwfFitConfig) -> Result<Settings, LwfStatus> {
    // SAFETY: forwarded contract; every field is an integer or a float, so any bits are a
    // valid value.
    unsafe { read_growable(config, &CONFIG_LAYOUTS, LwfFitConfig::defaults()) }?.to_core()
}

/// Writes the default fit configuration to `*out_config`, with `struct_size =
/// sizeof(LwfFitConfig)`: fits on the box when one is known (`bounded` 1), an automatic
/// mixture base (EM, K chosen by BIC up to 8),
/// `LWF_NON_FINITE_ERROR`, ESS floor 100, likelihood batches of 4096, the core's EM defaults
/// (200 iterations, tolerance 1e-6, variance floor 1e-6, 3 restarts, min weight 1e-10) and
/// training defaults (200 epochs, batch 512, Adam lr 1e-3 / 0.9 / 0.999 / 1e-8, no weight
/// decay, cosine schedule to 0.05 lr, patience 20, validation 0.2, clip norm 10, min weight
/// 1e-5), every seed 0.
///
/// Errors: `LWF_NULL_POINTER`, `LWF_MISALIGNED`.
///
/// # Safety
/// `out_config` is NULL or valid for one write of `LwfFitConfig`.
#[no_mangle]
pub unsafe extern "C" fn lwf_fit_config_default(out_config: *mut LwfFitConfig) -> LwfStatus {
    guard(|| {
        let out = out_scalar(out_config)?;
        // SAFETY: checked by out_scalar; writability is the caller's contract.
        unsafe { write_scalar(out, LwfFitConfig::defaults()) };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_are_the_cores() {
        let s = LwfFitConfig::defaults()
            .to_core()
            .expect("defaults are valid");
        assert_eq!(s.fit.train, TrainConfig::default());
        assert_eq!(s.fit.em, EmConfig::default());
        assert_eq!(s.fit.base, BaseChoice::Auto(8));
        assert_eq!(s.policy, NonFinitePolicy::Error);
        assert!(s.bounded);
    }

    #[test]
    fn the_box_switch_is_a_flag() {
        let d = LwfFitConfig::defaults();
        let off = LwfFitConfig { bounded: 0, ..d };
        assert!(!off.to_core().unwrap().bounded);
        for bad in [2, -1, i32::MIN] {
            let c = LwfFitConfig { bounded: bad, ..d };
            assert_eq!(
                c.to_core().err(),
                Some(LWF_INVALID_ARGUMENT),
                "bounded {bad}"
            );
        }
    }

    #[test]
    fn a_first_layout_config_fits_on_the_box_by_default() {
        let mut c = LwfFitConfig::defaults();
        c.bounded = 0;
        c.init_seed = 31;
        // The caller's struct ends at `init_seed`; the word after it is garbage (here a value
        // the library would refuse) that must not be read.
        let mut words = [u64::MAX; CONFIG_SIZE.div_ceil(8)];
        // SAFETY: `words` is 8-byte aligned and as large as the struct; the first-layout
        // prefix is copied, then its struct_size set.
        unsafe {
            core::ptr::copy_nonoverlapping(
                (&c as *const LwfFitConfig).cast::<u8>(),
                words.as_mut_ptr().cast::<u8>(),
                CONFIG_SIZE_V1,
            );
            words.as_mut_ptr().cast::<usize>().write(CONFIG_SIZE_V1);
        }
        // SAFETY: readable for CONFIG_SIZE_V1 bytes (the whole array, in fact).
        let s = unsafe { read_config(words.as_ptr().cast()) }.expect("first layout");
        assert!(s.bounded);
        assert_eq!(s.fit.init_seed, 31);
        for size in [CONFIG_SIZE_V1 - 8, CONFIG_SIZE_V1 + 4, CONFIG_SIZE + 8, 0] {
            // SAFETY: as above.
            unsafe { words.as_mut_ptr().cast::<usize>().write(size) };
            // SAFETY: as above.
            let got = unsafe { read_config(words.as_ptr().cast()) };
            assert_eq!(got.err(), Some(LWF_INVALID_ARGUMENT), "struct_size {size}");
        }
    }

    #[test]
    fn every_bad_field_is_an_invalid_argument() {
        let d = LwfFitConfig::defaults();
        let bad: [fn(&mut LwfFitConfig); 17] = [
            |c| c.struct_size -= 4,
            |c| c.bounded = 2,
            |c| c.base = 4,
            |c| c.components = 0,
            |c| c.non_finite = -1,
            |c| c.schedule = 2,
            |c| c.min_ess = f64::NAN,
            |c| c.min_ess = -1.0,
            |c| c.likelihood_batch = 0,
            |c| c.em_restarts = 0,
            |c| c.em_tol = f64::INFINITY,
            |c| c.max_epochs = 0,
            |c| c.lr = f64::NAN,
            |c| c.beta1 = 1.0,
            |c| c.validation_fraction = 0.95,
            |c| c.min_lr_factor = 1.5,
            |c| c.min_weight = 1.0,
        ];
        for (i, f) in bad.iter().enumerate() {
            let mut c = d;
            f(&mut c);
            assert_eq!(c.to_core().err(), Some(LWF_INVALID_ARGUMENT), "case {i}");
        }
        let mut gaussian = d;
        gaussian.base = 0;
        gaussian.components = 0;
        assert_eq!(gaussian.to_core().unwrap().fit.base, BaseChoice::Gaussian);
    }
}
