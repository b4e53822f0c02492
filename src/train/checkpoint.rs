//! Resumable fits: a [`FitCheckpoint`] of a fit in progress as bytes, and [`resume_fit`],
//! which continues from them to the same bits as the uninterrupted fit.
//!
//! [`fit_resumable`](super::fit::fit_resumable) hands a checkpoint to its callback twice
//! over: once of the weighted samples, before the base is fitted ([`FitStage::Samples`]), then
//! after every epoch ([`FitStage::Epoch`]). Each holds everything the continuation reads: the
//! template, the settings and the box; every sample with its weight, and, when the host gave
//! them, the log-likelihoods (or log-weights) the weights came from and their statistics;
//! after an epoch also the placed base (fitted shape, EM fit, whether the samples were
//! whitened), the training state ([`TrainState`]: epochs, Adam's step counter, skipped steps,
//! the early-stopping figures and the split's sizes), the parameters, the best parameters and
//! Adam's moments. The trainer's generator is not stored: it is a function of the seed and the
//! epochs run, and a resumed fit rebuilds it, and the sample order, by replaying the shuffles.
//! The samples in the fit's own coordinates (through the box map and the whitening) are
//! recomputed from θ, bit for bit. A host killed mid-fit resumes from its last checkpoint
//! without a single likelihood call.
//!
//! Layout (little-endian; every `usize` is written as a `u64`, every enum as a one-byte code,
//! every `Option` as a presence byte 0/1 followed by its value only when present; "reals" are
//! in the float width W of byte 6):
//!
//! | offset | bytes | field |
//! |---:|---:|---|
//! | 0 | 4 | magic `LWCK` |
//! | 4 | 2 | version (u16, currently 1) |
//! | 6 | 1 | float width W of the reals: 4 (`f32`) or 8 (`f64`) |
//! | 7 | 1 | reserved, zero |
//! | 8 | 8 | total length L in bytes, trailer included (u64) |
//! | 16 | | the template shape, the fit settings, n, the box lo\[D\] and hi\[D\] (doubles; bounded templates only), whether log values are present, the weight statistics (ESS, n, skipped, ln mean weight), the stage (0 samples, 1 epoch) |
//! | | | stage 1 only: the fitted shape, the EM fit (K, mean log-likelihood, ESS, BIC, iterations), whitened (bool), the training state (epochs, steps, skipped steps, initial and best validation loss, best epoch, training and kept samples) |
//! | | | stage 1 only: the parameters (P of the fitted shape), then the best parameters and Adam's moments of its trained prefix (P′ and 2P′), reals |
//! | | | the samples θ (n·D) and weights (n), reals; the log values (n doubles) when present |
//! | L − 4 | 4 | CRC-32 ([`crate::format::crc32`]) of every byte before it |
//!
//! [`CheckpointInfo::read`] checks, in order: length ≥ the fixed prefix (`Truncated`), magic
//! (`BadMagic`), version (`UnsupportedVersion`), float width (`BadFloatWidth`), the stored
//! length against the slice (shorter: `Truncated`, longer: `TrailingBytes`), the checksum
//! (`Checksum`), then every field: the reserved byte, unknown codes, invalid booleans, shapes
//! and settings a fit refuses, a box with lo ≥ hi, counts that contradict each other or the
//! settings, a length other than the one the fields imply (`BadHeader`), and non-finite
//! values where the fit never stores one: settings, bounds, samples, weights, parameters and
//! moments (`NonFiniteParameter`; a negative weight is `BadHeader`; Adam's second moments may
//! be +∞, as a squared gradient beyond the largest double leaves them in the fit itself). Nothing panics, whatever
//! the bytes: a truncated or corrupted checkpoint is an `Error::Format`, never a wrong resume.

use super::fit::{FitConfig, FitData, FitReport, Job, Placed, Trained};
use crate::base::em::MixtureFit;
use crate::codec::{bad, check_frame, non_finite, seal, Reader, Writer, SHAPE_LEN};
use crate::error::{check_min, Error, FormatError};
use crate::real::Real;
use crate::shape::{BaseKind, Shape};
use crate::train::codec::{check_fit_config, FIT_LEN};
use crate::train::fit::{BaseChoice, FitBuffers};
use crate::train::trainer::{EpochReport, TrainSnapshot, TrainState};
use crate::train::weights::WeightStats;

/// First four bytes of a checkpoint.
const MAGIC: [u8; 4] = *b"LWCK";
/// The version this build writes and reads.
pub const CHECKPOINT_VERSION: u16 = 1;
/// Magic, version, width, reserved, length.
const PREFIX: usize = 16;
/// The CRC-32.
const TRAILER: usize = 4;
/// Encoded bytes of the weight statistics, the EM fit and the training state.
const STATS_LEN: usize = 4 * 8;
const MIXTURE_LEN: usize = 5 * 8;
const STATE_LEN: usize = 8 * 8;

/// Where a fit stood when its checkpoint was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FitStage {
    /// The weighted samples, before the base was fitted: a resumed fit runs from the start
    /// (EM, initialisation, training) without new samples.
    Samples,
    /// After this many epochs (≥ 1) of training.
    Epoch(usize),
}

/// The training part of a checkpoint: the placed base, the state and the buffers it reads.
#[derive(Clone, Copy, Debug)]
struct Progress<'a, T> {
    placed: Placed,
    snapshot: TrainSnapshot<'a, T>,
    /// The parameters after the trained prefix: the outer maps'.
    outer: &'a [T],
}

/// A fit in progress, as [`fit_resumable`](super::fit::fit_resumable)'s checkpoint callback
/// sees it: a view of the fit's own memory, valid during the call. [`to_bytes`](Self::to_bytes)
/// writes it; [`resume_fit`] continues from the bytes.
#[derive(Clone, Copy, Debug)]
pub struct FitCheckpoint<'a, T> {
    job: Job<'a, T>,
    progress: Option<Progress<'a, T>>,
}

impl<'a, T: Real> FitCheckpoint<'a, T> {
    pub(crate) fn samples(job: Job<'a, T>) -> Self {
        FitCheckpoint {
            job,
            progress: None,
        }
    }

    pub(crate) fn trained(
        job: Job<'a, T>,
        placed: Placed,
        snapshot: &TrainSnapshot<'a, T>,
        outer: &'a [T],
    ) -> Self {
        let snapshot = *snapshot;
        FitCheckpoint {
            job,
            progress: Some(Progress {
                placed,
                snapshot,
                outer,
            }),
        }
    }

    /// Where the fit stands.
    pub fn stage(&self) -> FitStage {
        match &self.progress {
            None => FitStage::Samples,
            Some(p) => FitStage::Epoch(p.snapshot.state.epochs),
        }
    }

    /// The exact length [`to_bytes`](Self::to_bytes) writes.
    pub fn byte_len(&self) -> usize {
        self.encode(&mut [])
    }

    /// The largest checkpoint a fit of `n` samples with `cfg` on `template` writes in `T`
    /// (the largest base `cfg.base` can produce, log values and statistics present): size
    /// the buffer of every checkpoint of a fit with it. Saturates instead of overflowing.
    pub fn max_len(template: &Shape, cfg: &FitConfig, n: usize) -> usize {
        let max = cfg.base.max_shape(template);
        let (p, pi, d) = (max.param_len(), max.inner().param_len(), template.dim);
        let fixed = PREFIX
            + 2 * SHAPE_LEN
            + FIT_LEN
            + 8
            + 1
            + (1 + STATS_LEN)
            + 1
            + (1 + MIXTURE_LEN)
            + 1
            + STATE_LEN
            + TRAILER;
        let reals = p
            .saturating_add(pi.saturating_mul(3))
            .saturating_add(n.saturating_mul(d.saturating_add(1)));
        fixed
            .saturating_add(d.saturating_mul(16))
            .saturating_add(reals.saturating_mul(T::BYTES))
            .saturating_add(n.saturating_mul(8))
    }

    /// Writes the checkpoint into `out` (at least [`byte_len`](Self::byte_len) bytes; at most
    /// [`max_len`](Self::max_len)) and returns the number of bytes written. `BufferTooSmall`
    /// (nothing written) when `out` is shorter.
    pub fn to_bytes(&self, out: &mut [u8]) -> Result<usize, Error> {
        let len = self.byte_len();
        check_min(out, len)?;
        let out = &mut out[..len];
        self.encode(out);
        seal(out);
        Ok(len)
    }

    /// Writes everything but the checksum into `out` (if it fits) and returns the length,
    /// trailer included.
    fn encode(&self, out: &mut [u8]) -> usize {
        let job = &self.job;
        let mut w = Writer { out, at: PREFIX };
        w.shape(&job.template);
        w.fit_config(&job.cfg);
        w.usize(job.data.weights.len());
        if let Some((lo, hi)) = job.bounds {
            w.f64s(lo);
            w.f64s(hi);
        }
        w.bool(!job.data.log_values.is_empty());
        w.bool(job.data.stats.is_some());
        if let Some(s) = &job.data.stats {
            w.f64(s.ess);
            w.usize(s.n);
            w.usize(s.skipped);
            w.f64(s.log_mean_weight);
        }
        w.u8(u8::from(self.progress.is_some()));
        if let Some(p) = &self.progress {
            progress(&mut w, p);
        }
        w.reals(job.data.samples);
        w.reals(job.data.weights);
        w.f64s(job.data.log_values);
        let len = w.at.saturating_add(TRAILER);
        w.at = 0;
        w.bytes(&MAGIC);
        w.bytes(&CHECKPOINT_VERSION.to_le_bytes());
        w.u8(T::BYTES as u8);
        w.u8(0);
        w.u64(len as u64);
        len
    }
}

/// The training part: the placed base, the state, then the parameters, best parameters and
/// moments.
// Same shape within progress, and as its reader in CheckpointInfo::read (duplicates): one
// writer call per field, in the order of the format; each field has its own type and name.
fn progress<T: Real>(w: &mut Writer<'_>, p: &Progress<'_, T>) {
    w.shape(&p.placed.shape);
    w.bool(p.placed.mixture.is_some());
    if let Some(m) = &p.placed.mixture {
        w.usize(m.components);
        w.f64(m.mean_log_likelihood);
        w.f64(m.ess);
        w.f64(m.bic);
        w.usize(m.iterations);
    }
    w.bool(p.placed.whiten);
    let s = &p.snapshot.state;
    w.usize(s.epochs);
    w.u64(s.steps);
    w.u64(s.skipped_steps);
    w.f64(s.initial_val_loss);
    w.f64(s.best_val_loss);
    w.usize(s.best_epoch);
    w.usize(s.n_train);
    w.usize(s.n_kept);
    w.reals(p.snapshot.params);
    w.reals(p.outer);
    w.reals(p.snapshot.best);
    w.reals(p.snapshot.adam_state);
}

/// What a checkpoint holds, read and checked (every check of the module docs) by
/// [`CheckpointInfo::read`]: enough to size the memory [`resume_fit`] needs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CheckpointInfo {
    /// Bytes of the checkpoint.
    pub len: usize,
    /// Float width of its reals (4 or 8): [`resume_fit`] needs `T` of this width.
    pub width: usize,
    /// The fit's template (with its outer maps).
    pub template: Shape,
    /// The fit's settings.
    pub cfg: FitConfig,
    /// Samples.
    pub n: usize,
    /// Where the fit stood.
    pub stage: FitStage,
    /// The fitted shape, once training has started.
    pub shape: Option<Shape>,
    /// Whether the log values of the weights are stored.
    pub log_values: bool,
    /// The weights' statistics, when stored.
    pub stats: Option<WeightStats>,
    trained: Option<Trained>,
    /// Offsets of the box and of the arrays.
    box_at: usize,
    arrays_at: usize,
}

impl CheckpointInfo {
    /// Reads and checks a checkpoint: exactly the bytes [`FitCheckpoint::to_bytes`] wrote (a
    /// longer slice is `TrailingBytes`). Every check of the module docs runs, the values of
    /// every array included; errors are `Error::Format(_)`.
    // Same shape as train/refine/bytes.rs::RefineState::from_bytes (duplicates): both formats
    // open with the same prefix checks against their own MAGIC and version constant; the frame
    // checks after them are shared (codec::check_frame).
    pub fn read(bytes: &[u8]) -> Result<CheckpointInfo, Error> {
        if bytes.len() < PREFIX + TRAILER {
            return Err(FormatError::Truncated.into());
        }
        if bytes[0..4] != MAGIC {
            return Err(FormatError::BadMagic.into());
        }
        if u16::from_le_bytes([bytes[4], bytes[5]]) != CHECKPOINT_VERSION {
            return Err(FormatError::UnsupportedVersion.into());
        }
        let width = bytes[6] as usize;
        if width != 4 && width != 8 {
            return Err(FormatError::BadFloatWidth.into());
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(&bytes[8..16]);
        let len = usize::try_from(u64::from_le_bytes(len)).unwrap_or(usize::MAX);
        let body = check_frame(bytes, len, PREFIX)?;
        if bytes[7] != 0 {
            return Err(bad());
        }
        let mut r = Reader {
            b: &bytes[..body],
            at: PREFIX,
        };
        let info = head(&mut r, len, width)?;
        check_arrays(&bytes[info.arrays_at..body], &info)?;
        let outer_ok = match width {
            4 => outer_valid::<f32>(&bytes[..body], &info),
            _ => outer_valid::<f64>(&bytes[..body], &info),
        };
        if !outer_ok {
            return Err(bad());
        }
        Ok(info)
    }

    /// Element counts of the two slices [`ResumeBuffers::split`] carves for this checkpoint:
    /// reals (`n·(D + 1)`: samples and weights) and doubles (`n` log values when stored, `2D`
    /// for the box of a bounded template).
    pub fn data_len(&self) -> (usize, usize) {
        let (n, d) = (self.n, self.template.dim);
        let logs = if self.log_values { n } else { 0 };
        let bounds = if self.template.bounded { 2 * d } else { 0 };
        (n.saturating_mul(d + 1), logs + bounds)
    }

    /// Reals of the model buffer [`resume_fit`] needs: the largest shape the settings can
    /// produce (as for the fit).
    pub fn param_len(&self) -> usize {
        self.cfg.base.max_shape(&self.template).param_len()
    }

    /// The parameter-sized array lengths of the training part: P, P′ (trained prefix).
    fn train_lens(&self) -> Option<(usize, usize)> {
        self.trained.map(|t| {
            let s = t.placed.shape;
            (s.param_len(), s.inner().param_len())
        })
    }
}

/// The fields before the arrays, checked.
fn head(r: &mut Reader<'_>, len: usize, width: usize) -> Result<CheckpointInfo, Error> {
    let template = r.shape()?;
    let cfg = r.fit_config()?;
    check_fit_config(&cfg)?;
    let max = cfg.base.max_shape(&template);
    max.validate().map_err(|_| bad())?;
    let n = r.usize()?;
    if n == 0 || n > u32::MAX as usize {
        return Err(bad());
    }
    let box_at = r.at;
    if template.bounded {
        check_box(r, template.dim)?;
    }
    let log_values = r.bool()?;
    let stats = if r.bool()? { Some(stats(r, n)?) } else { None };
    let trained = match r.u8()? {
        0 => None,
        1 => Some(trained(r, &template, &cfg, n)?),
        _ => return Err(bad()),
    };
    let info = CheckpointInfo {
        len,
        width,
        template,
        cfg,
        n,
        stage: trained.map_or(FitStage::Samples, |t| FitStage::Epoch(t.state.epochs)),
        shape: trained.map(|t| t.placed.shape),
        log_values,
        stats,
        trained,
        box_at,
        arrays_at: r.at,
    };
    // The arrays fill the rest exactly.
    let (p, pi) = info.train_lens().unwrap_or((0, 0));
    let d = template.dim;
    let reals = n
        .checked_mul(d.checked_add(1).ok_or(bad())?)
        .and_then(|v| v.checked_add(p.checked_add(pi.checked_mul(3)?)?))
        .and_then(|v| v.checked_mul(width));
    let logs = if log_values {
        n.checked_mul(8)
    } else {
        Some(0)
    };
    let want = reals.and_then(|v| {
        v.checked_add(logs?)?
            .checked_add(r.at.checked_add(TRAILER)?)
    });
    if want != Some(len) {
        return Err(bad());
    }
    Ok(info)
}

/// lo\[D\], hi\[D\]: finite, lo < hi with a finite width.
fn check_box(r: &mut Reader<'_>, d: usize) -> Result<(), Error> {
    let lo_at = r.at;
    for _ in 0..2 * d {
        r.finite()?;
    }
    let mut lo = Reader { b: r.b, at: lo_at };
    let mut hi = Reader {
        b: r.b,
        at: lo_at + 8 * d,
    };
    for _ in 0..d {
        let (a, b) = (lo.f64()?, hi.f64()?);
        if !(b > a && (b - a).is_finite()) {
            return Err(bad());
        }
    }
    Ok(())
}

fn stats(r: &mut Reader<'_>, n: usize) -> Result<WeightStats, Error> {
    let s = WeightStats {
        ess: r.finite()?,
        n: r.usize()?,
        skipped: r.usize()?,
        log_mean_weight: r.finite()?,
    };
    // Kish's ESS lies in (0, n] (with room for rounding): a larger one cannot come from these
    // weights (fuzz/regressions/fit/ess-above-n).
    let ess_ok = s.ess > 0.0 && s.ess <= n as f64 * (1.0 + 1e-9);
    if s.n != n || s.skipped > n || !ess_ok {
        return Err(bad());
    }
    Ok(s)
}

/// The placed base and the training state, checked against the settings and n.
fn trained(
    r: &mut Reader<'_>,
    template: &Shape,
    cfg: &FitConfig,
    n: usize,
) -> Result<Trained, Error> {
    let shape = r.shape()?;
    let mixture = if r.bool()? {
        Some(MixtureFit {
            components: r.usize()?,
            mean_log_likelihood: r.f64()?,
            ess: r.f64()?,
            bic: r.f64()?,
            iterations: r.usize()?,
        })
    } else {
        None
    };
    let whiten = r.bool()?;
    // Same shape as the FitConfig reader in train/codec.rs (duplicates): one reader call per
    // field in the format's order; the fields differ.
    let state = TrainState {
        epochs: r.usize()?,
        steps: r.u64()?,
        skipped_steps: r.u64()?,
        initial_val_loss: r.f64()?,
        best_val_loss: r.f64()?,
        best_epoch: r.usize()?,
        n_train: r.usize()?,
        n_kept: r.usize()?,
    };
    let placed = Placed {
        shape,
        mixture,
        whiten,
    };
    let ok = placed_fits(&placed, template, cfg) && state_fits(&state, cfg, n);
    if !ok {
        return Err(bad());
    }
    Ok(Trained { placed, state })
}

/// The shape a fit with `cfg` on `template` produces, with the EM fit it came from.
fn placed_fits(p: &Placed, template: &Shape, cfg: &FitConfig) -> bool {
    let base_ok = match (cfg.base, p.shape.base, p.mixture) {
        (BaseChoice::Gaussian, BaseKind::Gaussian, None) => true,
        (BaseChoice::PaperMixture(c), BaseKind::Mixture(k), None) => k == c,
        (BaseChoice::Mixture(c) | BaseChoice::Auto(c), BaseKind::Mixture(k), Some(m)) => {
            k <= c && m.components == k
        }
        _ => false,
    };
    base_ok && p.shape.with_base(template.base) == *template && (!p.whiten || template.affine)
}

/// Epoch counts within the settings, a split within n, steps within the epochs run.
fn state_fits(s: &TrainState, cfg: &FitConfig, n: usize) -> bool {
    let bs = cfg.train.batch_size.min(n) as u64;
    let per_epoch = (s.n_train as u64).div_ceil(bs.max(1));
    let most = per_epoch.checked_mul(s.epochs as u64);
    let done = s.steps.checked_add(s.skipped_steps);
    s.epochs >= 1
        && s.epochs <= cfg.train.max_epochs
        && s.best_epoch <= s.epochs
        && s.n_train >= 1
        && s.n_train <= s.n_kept
        && s.n_kept <= n
        && matches!((most, done), (Some(m), Some(d)) if d <= m)
}

/// The outer maps' parameters of the trained flow (after its trained prefix in the first
/// array) describe valid maps in `T`, and a bounded flow's box is the fit's, as `init::set_box`
/// wrote it. The checksum guards against accidents, this against a changed and resealed
/// checkpoint whose flow would carry a box of its own, even lo > hi
/// (`fuzz/regressions/fit/resumed-box-lo-above-hi`).
fn outer_valid<T: Real>(body: &[u8], info: &CheckpointInfo) -> bool {
    let Some(shape) = info.trained.map(|t| t.placed.shape) else {
        return true;
    };
    let (w, d) = (info.width, shape.dim);
    let params = body.get(info.arrays_at..).unwrap_or(&[]);
    // The flow's box (after the affine map's parameters) against the fit's, as T.
    let at = (shape.flow_param_len() + shape.base_param_len() + shape.affine_param_len()) * w;
    let same_box = !shape.bounded || (0..2 * d).all(|i| {
        let flow = params
            .get(at + i * w..at + (i + 1) * w)
            .and_then(|c| T::read_le(c, w));
        let fit = body.get(info.box_at + 8 * i..info.box_at + 8 * (i + 1));
        let fit = fit.and_then(|c| f64::read_le(c, 8)).map(T::from_f64);
        matches!((flow, fit), (Some(a), Some(b)) if a.to_f64().to_bits() == b.to_f64().to_bits())
    });
    same_box && crate::format::outer_valid::<T>(&shape, params, w)
}

/// The values of the arrays: parameters, moments, samples finite (second moments: or +∞);
/// weights finite and ≥ 0.
fn check_arrays(b: &[u8], info: &CheckpointInfo) -> Result<(), Error> {
    let w = info.width;
    let (p, pi) = info.train_lens().unwrap_or((0, 0));
    let (n, d) = (info.n, info.template.dim);
    // The lengths were checked against the total by `head`; a mismatch is refused all the same.
    let (params, rest) = b.split_at_checked((p + 3 * pi) * w).ok_or(bad())?;
    let (samples, rest) = rest.split_at_checked(n * d * w).ok_or(bad())?;
    let weights = rest.get(..n * w).ok_or(bad())?;
    // Adam's second moments (the last P′ values) may be +∞: a squared gradient beyond the
    // largest double makes them so in the fit itself (that coordinate then stays put), and a
    // checkpoint holds the state the fit holds.
    let second = p + 2 * pi;
    for (i, c) in params.chunks_exact(w).enumerate() {
        let v = f64::read_le(c, w);
        if !v.is_some_and(|v| v.is_finite() || (i >= second && v == f64::INFINITY)) {
            return Err(non_finite());
        }
    }
    for c in samples.chunks_exact(w) {
        if !f64::read_le(c, w).is_some_and(f64::is_finite) {
            return Err(non_finite());
        }
    }
    for c in weights.chunks_exact(w) {
        match f64::read_le(c, w) {
            Some(v) if v.is_finite() && v >= 0.0 => {}
            Some(v) if v.is_finite() => return Err(bad()),
            _ => return Err(non_finite()),
        }
    }
    Ok(())
}

/// The caller's memory a checkpoint's data is restored into, carved by [`split`](Self::split).
// Same shape as train/refine.rs::RefineBuffers (duplicates): named caller buffers carved by
// split; the buffers differ.
pub struct ResumeBuffers<'b, T> {
    samples: &'b mut [T],
    weights: &'b mut [T],
    log_values: &'b mut [f64],
    bounds: &'b mut [f64],
}

impl<'b, T: Real> ResumeBuffers<'b, T> {
    /// Carves the data buffers of `info`'s checkpoint out of two caller slices of at least
    /// [`CheckpointInfo::data_len`] elements (`BufferTooSmall` otherwise).
    pub fn split(
        info: &CheckpointInfo,
        reals: &'b mut [T],
        f64s: &'b mut [f64],
    ) -> Result<Self, Error> {
        let (nr, nf) = info.data_len();
        check_min(reals, nr)?;
        check_min(f64s, nf)?;
        let (samples, weights) = reals.split_at_mut(info.n * info.template.dim);
        let logs = if info.log_values { info.n } else { 0 };
        let (log_values, bounds) = f64s.split_at_mut(logs);
        Self::new(info, samples, weights, log_values, bounds)
    }

    /// The data buffers as four caller slices, at least `n·D` samples, `n` weights, `n` log
    /// values when the checkpoint has them and `2D` bounds for a bounded template
    /// (`BufferTooSmall` otherwise; longer ones are cut).
    pub fn new(
        info: &CheckpointInfo,
        samples: &'b mut [T],
        weights: &'b mut [T],
        log_values: &'b mut [f64],
        bounds: &'b mut [f64],
    ) -> Result<Self, Error> {
        let (n, d) = (info.n, info.template.dim);
        let logs = if info.log_values { n } else { 0 };
        let boxed = if info.template.bounded { 2 * d } else { 0 };
        check_min(samples, n.saturating_mul(d))?;
        check_min(weights, n)?;
        check_min(log_values, logs)?;
        check_min(bounds, boxed)?;
        Ok(ResumeBuffers {
            samples: &mut samples[..n * d],
            weights: &mut weights[..n],
            log_values: &mut log_values[..logs],
            bounds: &mut bounds[..boxed],
        })
    }
}

/// Continues a fit from its checkpoint `bytes` ([`FitCheckpoint::to_bytes`]) to its end, as
/// [`fit_resumable`](super::fit::fit_resumable) would have run it: the report and the model
/// (the first `report.shape.param_len()` entries of `params`, at least
/// [`CheckpointInfo::param_len`] long) are bit-identical to the uninterrupted fit's, and the
/// callbacks see the epochs after the checkpoint's, with their checkpoints (the samples
/// checkpoint is not handed again). `data` ([`ResumeBuffers::split`] or
/// [`ResumeBuffers::new`] for this checkpoint) receives the samples, weights, log values and
/// box, where they stay; `buf` is the fit's memory ([`FitMemory`](super::fit::FitMemory) for
/// the checkpoint's template, settings and n).
///
/// Errors: every format error of [`CheckpointInfo::read`], `BadFloatWidth` for a checkpoint
/// of another float width than `T`, `InvalidArgument` for `data` carved for another
/// checkpoint's lengths, `BufferTooSmall` for short buffers, then the fit's own.
// Same shape as train/fit.rs::fit_resumable (duplicates): the resumed entry point takes the
// same buffers and callbacks and hands them to the same Job::run.
pub fn resume_fit<T: Real, F, C>(
    bytes: &[u8],
    params: &mut [T],
    data: ResumeBuffers<'_, T>,
    buf: FitBuffers<'_, T>,
    mut on_epoch: F,
    mut on_checkpoint: C,
) -> Result<FitReport, Error>
where
    F: FnMut(&EpochReport) -> bool,
    C: FnMut(&FitCheckpoint<'_, T>) -> bool,
{
    let info = CheckpointInfo::read(bytes)?;
    if info.width != T::BYTES {
        return Err(FormatError::BadFloatWidth.into());
    }
    let body = &bytes[..info.len - TRAILER];
    let ResumeBuffers {
        samples,
        weights,
        log_values,
        bounds,
    } = data;
    let (n, d) = (info.n, info.template.dim);
    let mut r = read_trained(&info, body, params, buf.train.best, buf.train.adam_state)?;
    // `ResumeBuffers::new` cut every buffer to the checkpoint's lengths; a mismatch (data for
    // another checkpoint) is refused.
    let logs = if info.log_values { n } else { 0 };
    let boxed = if info.template.bounded { 2 * d } else { 0 };
    let lens = [samples.len(), weights.len(), log_values.len(), bounds.len()];
    if lens != [n * d, n, logs, boxed] {
        return Err(Error::InvalidArgument);
    }
    r.reals_into(samples)?;
    r.reals_into(weights)?;
    r.f64s_into(log_values)?;
    Reader {
        b: body,
        at: info.box_at,
    }
    .f64s_into(bounds)?;
    let (lo, hi) = bounds.split_at(bounds.len() / 2);
    let job = Job {
        template: info.template,
        cfg: info.cfg,
        bounds: info.template.bounded.then_some((lo, hi)),
        data: FitData {
            samples,
            weights,
            log_values,
            stats: info.stats,
        },
    };
    super::fit::check_fit(
        &info.template,
        &info.cfg,
        job.bounds,
        params,
        job.data,
        &buf,
    )?;
    let from = info.trained;
    job.run(
        params,
        buf,
        from.as_ref(),
        None,
        &mut on_epoch,
        &mut on_checkpoint,
    )
}

/// Reads a checkpoint's parameter-sized arrays (parameters, best parameters, Adam moments;
/// none before the first epoch) into the fit's memory; returns the reader at the samples.
fn read_trained<'b, T: Real>(
    info: &CheckpointInfo,
    body: &'b [u8],
    params: &mut [T],
    best: &mut [T],
    adam_state: &mut [T],
) -> Result<Reader<'b>, Error> {
    let (p, pi) = info.train_lens().unwrap_or((0, 0));
    check_min(params, p)?;
    check_min(best, pi)?;
    check_min(adam_state, 2 * pi)?;
    let mut r = Reader {
        b: body,
        at: info.arrays_at,
    };
    r.reals_into(&mut params[..p])?;
    r.reals_into(&mut best[..pi])?;
    let (first, second) = adam_state[..2 * pi].split_at_mut(pi);
    r.reals_into(first)?;
    r.second_moments_into(second)?;
    Ok(r)
}
