//! The encodings of the training settings and reports inside the checksummed formats (the
//! refinement state and the fit checkpoint): [`crate::codec`]'s writer and reader extended
//! here, so that the codec does not depend on `train` (which uses it).

use crate::base::em::EmConfig;
use crate::codec::{bad, non_finite, Reader, Writer};
use crate::error::Error;
use crate::optim::adam::Adam;
use crate::train::fit::{BaseChoice, FitConfig};
use crate::train::trainer::{Schedule, StopReason, TrainConfig, TrainReport};

/// Encoded bytes of an [`EmConfig`].
pub(crate) const EM_LEN: usize = 6 * 8;
/// Encoded bytes of a [`TrainConfig`].
pub(crate) const TRAIN_CONFIG_LEN: usize = 2 * 8 + 5 * 8 + 1 + 8 + 8 + 3 * 8 + 8;
/// Encoded bytes of a [`FitConfig`].
pub(crate) const FIT_LEN: usize = 1 + 8 + EM_LEN + TRAIN_CONFIG_LEN + 8;
/// Encoded bytes of a [`TrainReport`].
pub(crate) const TRAIN_REPORT_LEN: usize = 4 * 8 + 2 * 8 + 1;

impl Writer<'_> {
    pub(crate) fn fit_config(&mut self, f: &FitConfig) {
        let (code, k) = match f.base {
            BaseChoice::Gaussian => (0, 1),
            BaseChoice::PaperMixture(k) => (1, k),
            BaseChoice::Mixture(k) => (2, k),
            BaseChoice::Auto(k) => (3, k),
        };
        self.u8(code);
        self.usize(k);
        let e = &f.em;
        // Same shape as train/refine/bytes.rs's RefineConfig writer (duplicates): one writer
        // call per field in the format's order; the configs differ.
        self.usize(e.max_iter);
        self.f64(e.tol);
        self.f64(e.var_floor);
        self.usize(e.restarts);
        self.f64(e.min_weight);
        self.u64(e.seed);
        self.train_config(&f.train);
        self.u64(f.init_seed);
    }

    fn train_config(&mut self, t: &TrainConfig) {
        self.usize(t.max_epochs);
        self.usize(t.batch_size);
        self.f64(t.adam.lr);
        self.f64(t.adam.beta1);
        self.f64(t.adam.beta2);
        self.f64(t.adam.eps);
        self.f64(t.adam.weight_decay);
        let (code, min_factor) = match t.schedule {
            Schedule::Constant => (0, 0.0),
            Schedule::Cosine { min_factor } => (1, min_factor),
        };
        self.u8(code);
        self.f64(min_factor);
        self.usize(t.patience);
        self.f64(t.validation_fraction);
        self.f64(t.clip_norm);
        self.f64(t.min_weight);
        self.u64(t.seed);
    }

    pub(crate) fn train_report(&mut self, t: &TrainReport) {
        self.usize(t.epochs);
        self.usize(t.best_epoch);
        self.f64(t.best_val_loss);
        self.f64(t.initial_val_loss);
        self.u64(t.steps);
        self.u64(t.skipped_steps);
        self.u8(match t.stop {
            StopReason::MaxEpochs => 0,
            StopReason::EarlyStopped => 1,
            StopReason::Cancelled => 2,
        });
    }
}

impl Reader<'_> {
    /// Fit settings with known codes and finite reals (`NonFiniteParameter`); their ranges
    /// are the caller's to check.
    pub(crate) fn fit_config(&mut self) -> Result<FitConfig, Error> {
        let code = self.u8()?;
        let k = self.usize()?;
        let base = match code {
            0 if k == 1 => BaseChoice::Gaussian,
            1 => BaseChoice::PaperMixture(k),
            2 => BaseChoice::Mixture(k),
            3 => BaseChoice::Auto(k),
            _ => return Err(bad()),
        };
        // Same shape as TrainConfig below and the checkpoint readers (duplicates): one reader
        // call per field in the format's order; the fields differ.
        let em = EmConfig {
            max_iter: self.usize()?,
            tol: self.finite()?,
            var_floor: self.finite()?,
            restarts: self.usize()?,
            min_weight: self.finite()?,
            seed: self.u64()?,
        };
        let train = self.train_config()?;
        Ok(FitConfig {
            base,
            em,
            train,
            init_seed: self.u64()?,
        })
    }

    // Same shape as the EmConfig reader above (duplicates): one reader call per field, another
    // struct's fields.
    fn train_config(&mut self) -> Result<TrainConfig, Error> {
        let max_epochs = self.usize()?;
        let batch_size = self.usize()?;
        let adam = Adam {
            lr: self.finite()?,
            beta1: self.finite()?,
            beta2: self.finite()?,
            eps: self.finite()?,
            weight_decay: self.finite()?,
        };
        let schedule_code = self.u8()?;
        let min_factor = self.finite()?;
        let schedule = match schedule_code {
            0 if min_factor.to_bits() == 0 => Schedule::Constant,
            1 => Schedule::Cosine { min_factor },
            _ => return Err(bad()),
        };
        Ok(TrainConfig {
            max_epochs,
            batch_size,
            adam,
            schedule,
            patience: self.usize()?,
            validation_fraction: self.finite()?,
            clip_norm: self.finite()?,
            min_weight: self.finite()?,
            seed: self.u64()?,
        })
    }

    pub(crate) fn train_report(&mut self) -> Result<TrainReport, Error> {
        Ok(TrainReport {
            epochs: self.usize()?,
            best_epoch: self.usize()?,
            best_val_loss: self.f64()?,
            initial_val_loss: self.f64()?,
            steps: self.u64()?,
            skipped_steps: self.u64()?,
            stop: match self.u8()? {
                0 => StopReason::MaxEpochs,
                1 => StopReason::EarlyStopped,
                2 => StopReason::Cancelled,
                _ => return Err(bad()),
            },
        })
    }
}

/// Settings a fit accepts: the trainer's and EM's own checks (`NonFinite` is reported as
/// `NonFiniteParameter`, anything else as `BadHeader`). The core checks the EM settings only
/// when EM runs; stored settings must be ones a fit accepts whatever the base.
pub(crate) fn check_fit_config(f: &FitConfig) -> Result<(), Error> {
    let map = |e: Error| match e {
        Error::NonFinite => non_finite(),
        _ => bad(),
    };
    f.train.validate().map_err(map)?;
    f.em.validate().map_err(map)?;
    if f.base.max_components() == 0 {
        return Err(bad());
    }
    Ok(())
}
