//! Adaptive refinement through the C ABI: the core's `lwflow::train::Refiner` (in `double`) in
//! one caller-provided work buffer, driven step by step (`lwf_refine_ask` / `lwf_refine_tell`)
//! or by a likelihood callback (`lwf_refine_run`), ending in an ordinary model
//! (`lwf_refine_write_model`) with the box support and the affine standardisation.
//!
//! Layout of the `lwf_refine_work_size` bytes at `work` (8-byte aligned; offsets in bytes):
//!
//! | offset | content |
//! |---:|---|
//! | 0 | header: tag, total size, region sizes, length of the state bytes, failure status, checksum |
//! | 128 | the refinement's state: `RefineState::to_bytes` (CRC-32 protected), room for `STATE_BYTES` |
//! | 128 + S | the core's `T` region (`RefineMemory::reals` doubles): samples, weights, proposals, fit memory |
//! | ... | the core's `f64` region (`RefineMemory::f64s` doubles): log-likelihoods, mixture terms, EM |
//! | ... | the log-likelihoods of one batch for `lwf_refine_run` (the batch capacity, doubles) |
//! | ... | the core's `u32` region (`RefineMemory::order`) |
//!
//! Every call reads the header (tag and checksum), decodes and checks the state bytes (magic,
//! version, checksum and every field), checks that the sizes the state implies are the
//! header's, carves the regions, resumes the `Refiner`, acts, and writes the state back only
//! when the action succeeded. The memory holds no pointers: a byte copy of it at another
//! (8-byte aligned) address is the same refinement, whose handle is that address.

use crate::fit::LwfLogLikelihoodFn;
use crate::guard::{
    self, check_ptr, disjoint, guard, input, out_scalar, read_growable, write_scalar, Span,
};
use crate::layout::layout;
use crate::model::{prepare_memory, write_model, LwfModel};
use crate::shape::{read_shape, LwfShape};
use crate::status::{
    LwfStatus::{self, *},
    ALL_STATUSES,
};
use core::ffi::{c_int, c_void};
use core::mem::size_of;
use lwflow::train::refine::MAX_DIM;
use lwflow::train::{
    BaseChoice, NonFinitePolicy, RefineBuffers, RefineConfig, RefineMemory, RefineReport,
    RefineState, RefineStatus, Refiner, RoundReport, STATE_BYTES,
};
use lwflow::Shape;

/// A refinement in progress or finished: an opaque view of the caller's work memory. Obtain
/// it from `lwf_refine_init`; it is the address of that memory and stays valid as long as the
/// memory does. One thread at a time for calls taking `LwfRefine *`; calls taking
/// `const LwfRefine *` only read. Freeing the memory frees the refinement.
pub struct LwfRefine {
    _opaque: [u8; 0],
}

/// Where a refinement stands (`lwf_refine_status`, `LwfRefineReport.status`).
// Same shape as status.rs::LwfStatus (duplicates): each C enum spells out its own codes for the
// header.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LwfRefineStatus {
    /// Still running: the next step is `lwf_refine_ask` (or `lwf_refine_run`).
    LWF_REFINE_RUNNING = 0,
    /// Every stopping target held (ESS, k-hat, log Z stable).
    LWF_REFINE_CONVERGED = 1,
    /// The likelihood-call budget ran out first; the model was fitted on all samples.
    LWF_REFINE_BUDGET_EXHAUSTED = 2,
    /// The round cap was reached first; the model was fitted on all samples.
    LWF_REFINE_MAX_ROUNDS = 3,
    /// A fit inside `lwf_refine_tell` / `lwf_refine_run` failed (its status was returned); the
    /// refinement cannot continue: start a new one.
    LWF_REFINE_FAILED = 4,
}

fn status_code(s: RefineStatus) -> LwfRefineStatus {
    match s {
        RefineStatus::Running => LwfRefineStatus::LWF_REFINE_RUNNING,
        RefineStatus::Converged => LwfRefineStatus::LWF_REFINE_CONVERGED,
        RefineStatus::BudgetExhausted => LwfRefineStatus::LWF_REFINE_BUDGET_EXHAUSTED,
        RefineStatus::MaxRounds => LwfRefineStatus::LWF_REFINE_MAX_ROUNDS,
    }
}

/// Settings of a refinement. Fill it with `lwf_refine_config_default(dim, &config)`, then
/// change fields. Every field is checked by `lwf_refine_work_size` and `lwf_refine_init`; any
/// value out of range (NaN included) gives `LWF_INVALID_ARGUMENT`. The settings not listed
/// here (EM, validation split, schedule, clipping) are the core's `RefineConfig::for_dim`.
///
/// The struct can grow: new fields are only ever appended, and `struct_size` (written by
/// `lwf_refine_config_default`) tells the library which fields the caller's header has: the
/// library accepts its own `sizeof(LwfRefineConfig)` and every earlier one (the fields an
/// older header lacks take their defaults for the dimension), and refuses any other size
/// (`LWF_INVALID_ARGUMENT`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LwfRefineConfig {
    /// `sizeof(LwfRefineConfig)` of the caller's header; written by `lwf_refine_config_default`.
    pub struct_size: usize,
    /// Prior draws in round 0 (>= 2; default 500 in 2-D, 1,000 in 3-D, 4,000 to 8-D, then
    /// 5,000).
    pub initial_samples: usize,
    /// Draws per later round (>= 2; default 1,000 in 2-D, 2,000 in 3-D, then 2,500).
    pub samples_per_round: usize,
    /// Draws of a check round, drawn to measure the k-hat of a fit whose weights already reach
    /// `target_ess` (>= 2; default 1,000 up to 3-D, then 1,250).
    pub check_samples: usize,
    /// Likelihood-call budget, round 0 included (>= `initial_samples`; default 10,000 up to
    /// 3-D, 40,000 to 8-D, then 60,000).
    pub max_calls: usize,
    /// Round cap, round 0 included, in 2..=32 (default 32).
    pub max_rounds: usize,
    /// Tempering: the next beta keeps the Kish ESS of all weights >= this x the round size, in
    /// (0, 1) (default 0.2 up to 3-D, then 0.5).
    pub ess_fraction: f64,
    /// Stop when the Kish ESS of the final weights reaches this (>= 0; default 2,500 in 2-D,
    /// 5,000 in 3-D, then 6,000).
    pub target_ess: f64,
    /// Stop only when the PSIS k-hat of the last proposal is at most this (>= 0; default 0.5).
    pub max_k_hat: f64,
    /// Stop only when ln Z moved by at most this since the previous round (>= 0; default 0.02).
    pub log_z_tol: f64,
    /// 1: later fits at beta = 1 start from the previous parameters (default); 0: afresh.
    pub warm_start: i32,
    /// 1: the proposals and the model live on the prior box (default); 0: unbounded.
    pub bounded: i32,
    /// 1: the affine standardisation from each fit's weighted mean and covariance (default).
    pub affine: i32,
    /// An `LwfNonFinitePolicy` code for NaN / +inf log-likelihoods (default
    /// `LWF_NON_FINITE_ERROR`: refused; `LWF_NON_FINITE_SKIP`: zero likelihood).
    pub non_finite: i32,
    /// Mixture base with K = 1..`max_components` chosen by BIC in every fit (>= 1; default 8).
    pub max_components: usize,
    /// Training epochs per fit, at most (>= 1; default 30).
    pub max_epochs: usize,
    /// Minibatch size (>= 1; default 256).
    pub batch_size: usize,
    /// Early-stopping patience in epochs (0 = never; default 4 up to 3-D, then 3).
    pub patience: usize,
    /// Adam learning rate (> 0; default 1e-3).
    pub learning_rate: f64,
    /// Seed of the draws (default 0). The same inputs give bit-identical results.
    pub seed: u64,
    /// Stop only when the KL(p||q) estimated from the check round's draws is at most this
    /// (finite, >= 0; default 0.005 up to 3-D, then 0.02). The estimate is the sum over the
    /// draws of wn_i ln(w_i / mean w), with w the importance weights and wn = w / sum w: 0 only
    /// when every weight is equal. Unlike k-hat it sees the mass a proposal spends where the
    /// posterior has none (bridges between modes). Not in the first layout of this struct: a
    /// config of that size gets the default.
    pub max_kl: f64,
}

/// The current layout of `LwfRefineConfig`.
// Same shape as fit_config.rs's LwfFitConfig layout constants (duplicates): each growable
// repr(C) config names its own layouts.
const CONFIG_SIZE: usize = size_of::<LwfRefineConfig>();
/// The first layout: every field up to `seed`.
const CONFIG_SIZE_V1: usize = core::mem::offset_of!(LwfRefineConfig, max_kl);
/// Every layout the library reads, oldest first.
const CONFIG_LAYOUTS: [usize; 2] = [CONFIG_SIZE_V1, CONFIG_SIZE];
const _: () = assert!(CONFIG_SIZE_V1 < CONFIG_SIZE);

impl LwfRefineConfig {
    fn from_core(c: &RefineConfig) -> LwfRefineConfig {
        LwfRefineConfig {
            struct_size: CONFIG_SIZE,
            initial_samples: c.initial_samples,
            samples_per_round: c.samples_per_round,
            check_samples: c.check_samples,
            max_calls: c.max_calls,
            max_rounds: c.max_rounds,
            ess_fraction: c.ess_fraction,
            target_ess: c.target_ess,
            max_k_hat: c.max_k_hat,
            log_z_tol: c.log_z_tol,
            warm_start: i32::from(c.warm_start),
            bounded: i32::from(c.bounded),
            affine: i32::from(c.affine),
            non_finite: match c.policy {
                NonFinitePolicy::Error => 0,
                NonFinitePolicy::Skip => 1,
            },
            max_components: c.fit.base.max_components(),
            max_epochs: c.fit.train.max_epochs,
            batch_size: c.fit.train.batch_size,
            patience: c.fit.train.patience,
            learning_rate: c.fit.train.adam.lr,
            seed: c.seed,
            max_kl: c.max_kl,
        }
    }

    /// The core's configuration for dimension `dim`, or `LWF_INVALID_ARGUMENT`.
    fn to_core(self, dim: usize) -> Result<RefineConfig, LwfStatus> {
        if !CONFIG_LAYOUTS.contains(&self.struct_size) {
            return Err(LWF_INVALID_ARGUMENT);
        }
        let flag = |v: i32| match v {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(LWF_INVALID_ARGUMENT),
        };
        let mut c = RefineConfig::for_dim(dim);
        c.initial_samples = self.initial_samples;
        c.samples_per_round = self.samples_per_round;
        c.check_samples = self.check_samples;
        c.max_calls = self.max_calls;
        c.max_rounds = self.max_rounds;
        c.ess_fraction = self.ess_fraction;
        c.target_ess = self.target_ess;
        c.max_k_hat = self.max_k_hat;
        c.max_kl = self.max_kl;
        c.log_z_tol = self.log_z_tol;
        c.warm_start = flag(self.warm_start)?;
        c.bounded = flag(self.bounded)?;
        c.affine = flag(self.affine)?;
        c.policy = match self.non_finite {
            0 => NonFinitePolicy::Error,
            1 => NonFinitePolicy::Skip,
            _ => return Err(LWF_INVALID_ARGUMENT),
        };
        c.fit.base = BaseChoice::Auto(self.max_components);
        c.fit.train.max_epochs = self.max_epochs;
        c.fit.train.batch_size = self.batch_size;
        c.fit.train.patience = self.patience;
        c.fit.train.adam.lr = self.learning_rate;
        c.seed = self.seed;
        // NaN settings are NonFinite in the core; for a config every problem is an argument.
        c.validate().map_err(|_| LWF_INVALID_ARGUMENT)?;
        Ok(c)
    }
}

/// Reads and checks a config argument: `struct_size` first, then the fields it covers (the
/// fields a first-layout config lacks take the defaults for `dim`).
///
/// # Safety
/// `config` is NULL or valid for reads of `config->struct_size` bytes (at least the
/// `struct_size` field itself).
unsafe fn read_config(
    config: *const LwfRefineConfig,
    dim: usize,
) -> Result<RefineConfig, LwfStatus> {
    let defaults = LwfRefineConfig::from_core(&RefineConfig::for_dim(dim));
    // SAFETY: forwarded contract; every field is an integer or a float, so any bits are a
    // valid value.
    unsafe { read_growable(config, &CONFIG_LAYOUTS, defaults) }?.to_core(dim)
}

/// What one round measured (`lwf_refine_tell`'s output and the progress callback's argument).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LwfRefineRound {
    /// Round number (0 = the prior draws).
    pub round: usize,
    /// Likelihood calls so far, all rounds.
    pub calls: usize,
    /// Draws so far, the zero-weight draws outside the box included.
    pub draws: usize,
    /// beta of the fit whose draws this round made (0 for round 0).
    pub beta: f64,
    /// beta chosen for the next fit.
    pub next_beta: f64,
    /// ln Z = ln of the integral of L times the prior, so far.
    pub log_z: f64,
    /// Standard error of `log_z`.
    pub log_z_se: f64,
    /// Kish ESS of all samples' beta = 1 weights.
    pub ess: f64,
    /// PSIS k-hat of this round's proposal against the posterior (0 when `has_k_hat` is 0).
    pub k_hat: f64,
    /// 1 when the round's draws gave a k-hat, 0 when they could not (too few non-zero weights).
    pub has_k_hat: i32,
    /// 1 when the proposal's fit hit its epoch cap while still improving.
    pub still_improving: i32,
    /// Mixture components of the proposal (0 for the prior).
    pub components: usize,
    /// Training epochs of the proposal's fit (0 for the prior).
    pub epochs: usize,
    /// Epoch of the restored parameters of that fit.
    pub best_epoch: usize,
}

impl LwfRefineRound {
    fn from_core(r: &RoundReport) -> LwfRefineRound {
        let has = r.k_hat.is_finite();
        LwfRefineRound {
            round: r.round,
            calls: r.calls,
            draws: r.draws,
            beta: r.beta,
            next_beta: r.next_beta,
            log_z: r.log_z,
            log_z_se: r.log_z_se,
            ess: r.ess,
            k_hat: if has { r.k_hat } else { 0.0 },
            has_k_hat: i32::from(has),
            still_improving: i32::from(r.still_improving),
            components: r.components,
            epochs: r.epochs,
            best_epoch: r.best_epoch,
        }
    }
}

/// The end of a refinement (`lwf_refine_report`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LwfRefineReport {
    /// An `LwfRefineStatus` code: why it ended.
    pub status: i32,
    /// 1 when `k_hat` was measured on the returned model's own draws; 0 when the model was
    /// fitted after the budget ran out and never drawn from (`k_hat` is then 0).
    pub has_k_hat: i32,
    /// Rounds run.
    pub rounds: usize,
    /// Likelihood calls.
    pub calls: usize,
    /// Samples held (calls and draws outside the box).
    pub draws: usize,
    /// ln Z, the log evidence ln of the integral of L times the prior.
    pub log_z: f64,
    /// Standard error of `log_z`.
    pub log_z_se: f64,
    /// Kish ESS of the final weights.
    pub ess: f64,
    /// PSIS k-hat of the returned model against the posterior.
    pub k_hat: f64,
    /// beta of the returned model's fit (1 unless the budget ran out while tempering).
    pub beta: f64,
    /// Mixture components of the returned model.
    pub components: usize,
    /// Training epochs of the returned model's fit.
    pub epochs: usize,
    /// Epoch of its restored parameters.
    pub best_epoch: usize,
}

impl LwfRefineReport {
    fn from_core(r: &RefineReport) -> LwfRefineReport {
        LwfRefineReport {
            status: status_code(r.status) as i32,
            has_k_hat: i32::from(r.k_hat.is_some()),
            rounds: r.rounds,
            calls: r.calls,
            draws: r.draws,
            log_z: r.log_z,
            log_z_se: r.log_z_se,
            ess: r.ess,
            k_hat: r.k_hat.unwrap_or(0.0),
            beta: r.beta,
            components: r.shape.components(),
            epochs: r.train.epochs,
            best_epoch: r.train.best_epoch,
        }
    }
}

/// Called by `lwf_refine_run` after every round with that round's figures; return 0 to
/// continue, non-zero to stop (`lwf_refine_run` then returns `LWF_CANCELLED`; the refinement
/// stays valid and can be continued). The report is valid during the call only. Same rules
/// as `LwfLogLikelihoodFn`: no `longjmp` or exception through the library, and the callback
/// must not touch the refinement's work memory.
pub type LwfRefineProgressFn =
    Option<unsafe extern "C" fn(round: *const LwfRefineRound, user: *mut c_void) -> c_int>;

/// Alignment the work memory needs, in bytes.
const WORK_ALIGN: usize = 8;
/// Bytes reserved for the header.
const HEADER_BYTES: usize = 128;
/// Bytes reserved for the state (a multiple of 8, so the regions after it stay aligned).
const STATE_REGION: usize = STATE_BYTES.div_ceil(8) * 8;
/// The smallest work memory of any refinement: header and state region.
pub(crate) const MIN_WORK_BYTES: usize = HEADER_BYTES + STATE_REGION;
/// First word of every refinement: "LWFLOW" + layout version 1 + 0x52 ('R').
const TAG: u64 = u64::from_le_bytes(*b"LWFLOW\x01R");

/// The header at the start of the work memory. Plain integers only: any bits are a valid
/// value, so a garbage handle is detected by its tag and checksum.
#[repr(C)]
#[derive(Clone, Copy)]
struct Header {
    tag: u64,
    total_bytes: u64,
    /// Bytes of the encoded state at `HEADER_BYTES`.
    state_len: u64,
    reals: u64,
    f64s: u64,
    batch: u64,
    order: u64,
    /// 0, or the status of the failed fit that ended the refinement.
    failed: u64,
    /// FNV-1a of every field above.
    check: u64,
}

const _: () = assert!(size_of::<Header>() <= HEADER_BYTES);
const _: () = assert!(HEADER_BYTES % WORK_ALIGN == 0 && STATE_REGION % WORK_ALIGN == 0);

impl Header {
    fn checksum(&self) -> u64 {
        [
            self.tag,
            self.total_bytes,
            self.state_len,
            self.reals,
            self.f64s,
            self.batch,
            self.order,
            self.failed,
        ]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }

    fn sealed(mut self) -> Header {
        self.check = self.checksum();
        self
    }
}

/// Element counts of the work regions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct WorkLayout {
    reals: usize,
    f64s: usize,
    batch: usize,
    order: usize,
    total_bytes: usize,
}

impl WorkLayout {
    /// The layout for refining with `cfg` on `template` (`LWF_LENGTH_MISMATCH` if it would not
    /// fit the address space).
    fn new(template: &Shape, cfg: &RefineConfig) -> Result<WorkLayout, LwfStatus> {
        // RefineMemory saturates instead of overflowing: a saturated count fails below.
        let need = RefineMemory::new(template, cfg);
        let batch = cfg
            .initial_samples
            .max(cfg.samples_per_round)
            .max(cfg.check_samples);
        let total_bytes = need
            .reals
            .checked_add(need.f64s)
            .and_then(|v| v.checked_add(batch))
            .and_then(|v| v.checked_mul(size_of::<f64>()))
            .and_then(|v| v.checked_add(need.order.checked_mul(size_of::<u32>())?))
            .and_then(|v| v.checked_add(HEADER_BYTES + STATE_REGION))
            .filter(|&v| v <= isize::MAX as usize)
            .ok_or(LWF_LENGTH_MISMATCH)?;
        Ok(WorkLayout {
            reals: need.reals,
            f64s: need.f64s,
            batch,
            order: need.order,
            total_bytes,
        })
    }

    fn header(&self, state_len: usize) -> Header {
        Header {
            tag: TAG,
            total_bytes: self.total_bytes as u64,
            state_len: state_len as u64,
            reals: self.reals as u64,
            f64s: self.f64s as u64,
            batch: self.batch as u64,
            order: self.order as u64,
            failed: 0,
            check: 0,
        }
        .sealed()
    }

    fn matches(&self, h: &Header) -> bool {
        let same = |a: usize, b: u64| a as u64 == b;
        same(self.total_bytes, h.total_bytes)
            && same(self.reals, h.reals)
            && same(self.f64s, h.f64s)
            && same(self.batch, h.batch)
            && same(self.order, h.order)
    }
}

/// The regions of checked work memory.
struct Regions<'a> {
    state: &'a mut [u8],
    reals: &'a mut [f64],
    f64s: &'a mut [f64],
    batch: &'a mut [f64],
    order: &'a mut [u32],
}

/// Carves the work memory into its regions.
///
/// # Safety
/// `work` is 8-byte aligned and valid for reads and writes of `wl.total_bytes` bytes, and no
/// other reference to that memory exists during `'a`.
unsafe fn carve<'a>(work: *mut u8, wl: &WorkLayout) -> Result<Regions<'a>, LwfStatus> {
    // SAFETY: the regions are disjoint, in bounds of `total_bytes` (WorkLayout::new sums them)
    // and aligned: the header and the state region are multiples of 8 bytes, the doubles
    // follow, the u32 region starts at a multiple of 8.
    unsafe {
        let doubles = work.add(HEADER_BYTES + STATE_REGION).cast::<f64>();
        Ok(Regions {
            state: guard::output(work.add(HEADER_BYTES), STATE_REGION)?,
            reals: guard::output(doubles, wl.reals)?,
            f64s: guard::output(doubles.add(wl.reals), wl.f64s)?,
            batch: guard::output(doubles.add(wl.reals + wl.f64s), wl.batch)?,
            order: guard::output(
                doubles.add(wl.reals + wl.f64s + wl.batch).cast::<u32>(),
                wl.order,
            )?,
        })
    }
}

/// A checked refinement: its header, decoded state, layout and the span of its memory.
pub(crate) struct Opened {
    header: Header,
    state: RefineState,
    layout: WorkLayout,
    pub(crate) span: Span,
}

impl Opened {
    /// Bytes of the refinement's memory.
    pub(crate) fn total_bytes(&self) -> usize {
        self.layout.total_bytes
    }

    /// The refinement's dimension.
    pub(crate) fn dim(&self) -> usize {
        self.state.template().dim
    }

    /// The status of the fit that ended the refinement, if one did.
    fn failure(&self) -> Option<LwfStatus> {
        (self.header.failed != 0).then(|| {
            ALL_STATUSES
                .iter()
                .copied()
                .find(|s| *s as u64 == self.header.failed)
                .unwrap_or(LWF_INVALID_MODEL)
        })
    }
}

/// Checks a handle: tag and checksum of the header, the state bytes (format, checksum, every
/// field), and that the state's sizes are the header's. `LWF_INVALID_MODEL` for anything else
/// than an initialised refinement.
///
/// # Safety
/// `refine` is NULL or a handle from `lwf_refine_init` (or a byte copy of its memory) whose
/// memory is valid for reads and not written by another thread during the call.
pub(crate) unsafe fn open(refine: *const LwfRefine) -> Result<Opened, LwfStatus> {
    let hp = refine.cast::<Header>();
    check_ptr(hp, 1)?;
    // SAFETY: non-NULL and 8-byte aligned (checked); readable by the caller's contract; the
    // header is plain integers, so any bits are a valid value.
    let header = unsafe { hp.read() };
    if header.tag != TAG || header.check != header.checksum() {
        return Err(LWF_INVALID_MODEL);
    }
    let state_len = usize::try_from(header.state_len).map_err(|_| LWF_INVALID_MODEL)?;
    let total = usize::try_from(header.total_bytes).map_err(|_| LWF_INVALID_MODEL)?;
    if state_len > STATE_REGION || total < HEADER_BYTES + STATE_REGION {
        return Err(LWF_INVALID_MODEL);
    }
    // SAFETY: a valid header means the caller's memory holds `total_bytes` bytes (the handle's
    // contract), and the state region lies inside them (checked above).
    let bytes = unsafe { input(refine.cast::<u8>().add(HEADER_BYTES), state_len) }?;
    let state = RefineState::from_bytes(bytes).map_err(|_| LWF_INVALID_MODEL)?;
    let layout =
        WorkLayout::new(&state.template(), state.config()).map_err(|_| LWF_INVALID_MODEL)?;
    if !layout.matches(&header) {
        return Err(LWF_INVALID_MODEL);
    }
    Ok(Opened {
        header,
        state,
        layout,
        span: Span::raw(refine.cast(), layout.total_bytes),
    })
}

/// A refinement resumed for an action that changes it.
struct Session<'a> {
    header_ptr: *mut Header,
    header: Header,
    state_bytes: &'a mut [u8],
    batch: &'a mut [f64],
    refiner: Refiner<'a, f64>,
}

impl Session<'_> {
    /// Writes the refiner's state and a fresh header: the action succeeded.
    fn save(&mut self) -> Result<(), LwfStatus> {
        let len = self.refiner.state().to_bytes(self.state_bytes)?;
        self.header.state_len = len as u64;
        self.header = self.header.sealed();
        // SAFETY: the header lies in the checked work memory, disjoint from every region.
        unsafe { self.header_ptr.write(self.header) };
        Ok(())
    }

    /// Marks the refinement failed: a fit failed after the samples were changed, so the
    /// stored state no longer matches them. Returns `status` for the caller.
    fn fail(&mut self, status: LwfStatus) -> LwfStatus {
        self.header.failed = status as u64;
        self.header = self.header.sealed();
        // SAFETY: as in `save`.
        unsafe { self.header_ptr.write(self.header) };
        status
    }
}

/// Resumes an opened refinement for an action; a failed one gives its failure status.
///
/// # Safety
/// `refine` is the handle `opened` came from, valid for reads and writes of its memory, and
/// no other reference to that memory exists during `'a`.
unsafe fn resume<'a>(refine: *mut LwfRefine, opened: Opened) -> Result<Session<'a>, LwfStatus> {
    if let Some(status) = opened.failure() {
        return Err(status);
    }
    let work = refine.cast::<u8>();
    // SAFETY: `open` checked the header; the memory holds the layout's bytes (contract).
    let r = unsafe { carve(work, &opened.layout) }?;
    let template = opened.state.template();
    let cfg = *opened.state.config();
    let buf = RefineBuffers::split(&template, &cfg, r.reals, r.f64s, r.order)
        .map_err(|_| LWF_INVALID_MODEL)?;
    let refiner = Refiner::resume(opened.state, buf).map_err(|_| LWF_INVALID_MODEL)?;
    Ok(Session {
        header_ptr: work.cast::<Header>(),
        header: opened.header,
        state_bytes: r.state,
        batch: r.batch,
        refiner,
    })
}

/// NaN and +inf log-likelihoods (-inf is a valid zero likelihood).
fn refused(v: f64) -> bool {
    v.is_nan() || v == f64::INFINITY
}

/// An optional output: NULL is allowed; otherwise aligned.
fn optional_out<T>(ptr: *mut T) -> Result<Option<Span>, LwfStatus> {
    if ptr.is_null() {
        Ok(None)
    } else {
        Span::checked(ptr.cast_const(), 1).map(Some)
    }
}

/// The checked shape and config of a new refinement and its work layout.
struct Plan {
    template: Shape,
    cfg: RefineConfig,
    layout: WorkLayout,
}

/// # Safety
/// `shape` and `config` are NULL or readable.
unsafe fn plan(shape: *const LwfShape, config: *const LwfRefineConfig) -> Result<Plan, LwfStatus> {
    // SAFETY: forwarded contract.
    let template = unsafe { read_shape(shape) }?;
    // SAFETY: forwarded contract.
    let cfg = unsafe { read_config(config, template.dim) }?;
    if template.dim > MAX_DIM {
        return Err(LWF_INVALID_ARGUMENT);
    }
    let proposal = cfg.proposal_template(&template);
    let max = cfg.fit.base.max_shape(&proposal);
    if max.validate().is_err() || layout(&max).is_err() {
        return Err(LWF_INVALID_ARGUMENT);
    }
    let layout = WorkLayout::new(&proposal, &cfg)?;
    Ok(Plan {
        template,
        cfg,
        layout,
    })
}

/// Writes the default refinement settings for dimension `dim` (2..=64) into `*out_config`:
/// the core's `RefineConfig::for_dim(dim)` (see `LwfRefineConfig` for each default), with
/// `struct_size = sizeof(LwfRefineConfig)`.
///
/// Errors: `LWF_NULL_POINTER`, `LWF_MISALIGNED`, `LWF_INVALID_ARGUMENT` (`dim` out of range).
///
/// # Safety
/// `out_config` is NULL or valid for one write of `LwfRefineConfig`.
#[no_mangle]
pub unsafe extern "C" fn lwf_refine_config_default(
    dim: usize,
    out_config: *mut LwfRefineConfig,
) -> LwfStatus {
    guard(|| {
        let out = out_scalar(out_config)?;
        if !(2..=MAX_DIM).contains(&dim) {
            return Err(LWF_INVALID_ARGUMENT);
        }
        let config = LwfRefineConfig::from_core(&RefineConfig::for_dim(dim));
        // SAFETY: checked by out_scalar; writability is the caller's contract.
        unsafe { write_scalar(out, config) };
        Ok(())
    })
}

/// Bytes of work memory (8-byte aligned) a refinement with this shape and config needs: the
/// state, every sample the budget allows with its log-likelihood and weights, one stored
/// proposal per round, and the fits' memory. The shape gives dim (<= 64), hidden width,
/// layers, couplings, activation and clamp; its base, components and outer-map flags are
/// replaced per the config.
///
/// Errors: `LWF_NULL_POINTER`, `LWF_MISALIGNED`, `LWF_INVALID_SHAPE`, `LWF_INVALID_ARGUMENT`
/// (a config field, dim > 64, a largest model too large), `LWF_LENGTH_MISMATCH` (the size does
/// not fit the address space).
///
/// # Safety
/// `shape` and `config` NULL or readable; `out_bytes` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lwf_refine_work_size(
    shape: *const LwfShape,
    config: *const LwfRefineConfig,
    out_bytes: *mut usize,
) -> LwfStatus {
    guard(|| {
        let out = out_scalar(out_bytes)?;
        // SAFETY: forwarded contract.
        let plan = unsafe { plan(shape, config) }?;
        // SAFETY: checked by out_scalar.
        unsafe { write_scalar(out, plan.layout.total_bytes) };
        Ok(())
    })
}

/// Starts a refinement of the posterior proportional to L(theta) times the uniform prior on
/// the box [lo, hi] (`dim` values each, finite, lo < hi) in the caller's work memory `work`
/// (`work_len` bytes, at least `lwf_refine_work_size`, 8-byte aligned), and writes its handle
/// (the address `work`) to `*out_refine`. Nothing is evaluated yet: drive it with
/// `lwf_refine_ask` / `lwf_refine_tell` or `lwf_refine_run`.
///
/// Errors: `LWF_NULL_POINTER`, `LWF_MISALIGNED`, `LWF_INVALID_SHAPE`, `LWF_INVALID_ARGUMENT`
/// (a config field, lo >= hi, dim > 64), `LWF_LENGTH_MISMATCH` (`dim` other than the shape's),
/// `LWF_NON_FINITE` (NaN / inf bounds, or a box width that overflows), `LWF_BUFFER_TOO_SMALL`
/// (`work_len`), `LWF_OVERLAPPING_BUFFERS` (`lo`, `hi` or `out_refine` inside `work`). On error
/// nothing is written.
///
/// # Safety
/// `work` NULL or writable for `work_len` bytes; `shape`, `config` NULL or readable; `lo`,
/// `hi` NULL or readable for `dim` doubles; `out_refine` NULL or writable.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn lwf_refine_init(
    work: *mut c_void,
    work_len: usize,
    shape: *const LwfShape,
    lo: *const f64,
    hi: *const f64,
    dim: usize,
    config: *const LwfRefineConfig,
    out_refine: *mut *mut LwfRefine,
) -> LwfStatus {
    guard(|| {
        let out = out_scalar(out_refine)?;
        // SAFETY: forwarded contract.
        let plan = unsafe { plan(shape, config) }?;
        let inputs = [Span::checked(lo, dim)?, Span::checked(hi, dim)?];
        if dim != plan.template.dim {
            return Err(LWF_LENGTH_MISMATCH);
        }
        let work = work.cast::<u8>();
        check_ptr(work.cast_const(), work_len)?;
        if work.is_null() {
            // NULL with length 0 is an empty buffer: too small for any refinement.
            return Err(LWF_BUFFER_TOO_SMALL);
        }
        if (work as usize) % WORK_ALIGN != 0 {
            return Err(LWF_MISALIGNED);
        }
        let wl = plan.layout;
        if work_len < wl.total_bytes {
            return Err(LWF_BUFFER_TOO_SMALL);
        }
        let work_span = Span::raw(work, wl.total_bytes);
        disjoint(work_span, &inputs)?;
        disjoint(Span::checked(out.cast_const(), 1)?, &[work_span])?;
        // SAFETY: forwarded contract; only read, disjoint from the work memory (checked).
        let (lo, hi) = unsafe { (input(lo, dim)?, input(hi, dim)?) };
        if !lo.iter().chain(hi).all(|v| v.is_finite()) {
            return Err(LWF_NON_FINITE);
        }
        if lo.iter().zip(hi).any(|(a, b)| a >= b) {
            return Err(LWF_INVALID_ARGUMENT);
        }
        // Every remaining check is the core's; `Refiner::new` writes nothing to the buffers.
        let state = {
            // SAFETY: checked above: aligned, `total_bytes` long, exclusively the caller's.
            let r = unsafe { carve(work, &wl) }?;
            let buf = RefineBuffers::split(&plan.template, &plan.cfg, r.reals, r.f64s, r.order)?;
            Refiner::new(&plan.template, lo, hi, &plan.cfg, buf)?.into_state()
        };
        // SAFETY: as above; no slice of the memory is alive any more.
        unsafe { core::ptr::write_bytes(work, 0, wl.total_bytes) };
        // SAFETY: as above.
        let r = unsafe { carve(work, &wl) }?;
        let len = state.to_bytes(r.state)?;
        // SAFETY: the header fits in HEADER_BYTES (const assert); `work` is 8-byte aligned.
        unsafe { work.cast::<Header>().write(wl.header(len)) };
        // SAFETY: checked by out_scalar; disjoint from the work memory.
        unsafe { write_scalar(out, work.cast::<LwfRefine>()) };
        Ok(())
    })
}

/// Writes the largest number of points `lwf_refine_ask` can hand out in one batch (the
/// largest round size of the config): size the `out_theta` buffer with it times dim.
///
/// Errors: `LWF_NULL_POINTER`, `LWF_MISALIGNED`, `LWF_INVALID_MODEL` (not a refinement, or its
/// memory was overwritten).
///
/// # Safety
/// `refine` NULL or a valid handle; `out_rows` NULL or writable.
// Same shape as refine_checkpoint.rs::lwf_refine_checkpoint_size (duplicates): C entry points
// each spell out their argument list and forward to one implementation; the shared lines are
// the handle and output checks, the value written differs.
#[no_mangle]
pub unsafe extern "C" fn lwf_refine_batch_capacity(
    refine: *const LwfRefine,
    out_rows: *mut usize,
) -> LwfStatus {
    guard(|| {
        let out = out_scalar(out_rows)?;
        // SAFETY: forwarded contract.
        let o = unsafe { open(refine) }?;
        disjoint(Span::checked(out.cast_const(), 1)?, &[o.span])?;
        // SAFETY: checked by out_scalar; disjoint from the work memory.
        unsafe { write_scalar(out, o.state.batch_capacity()) };
        Ok(())
    })
}

/// Writes where the refinement stands (an `LwfRefineStatus` code) to `*out_status`.
///
/// Errors: `LWF_NULL_POINTER`, `LWF_MISALIGNED`, `LWF_INVALID_MODEL`.
///
/// # Safety
/// `refine` NULL or a valid handle; `out_status` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lwf_refine_status(
    refine: *const LwfRefine,
    out_status: *mut i32,
) -> LwfStatus {
    guard(|| {
        let out = out_scalar(out_status)?;
        // SAFETY: forwarded contract.
        let o = unsafe { open(refine) }?;
        disjoint(Span::checked(out.cast_const(), 1)?, &[o.span])?;
        let code = if o.failure().is_some() {
            LwfRefineStatus::LWF_REFINE_FAILED
        } else {
            status_code(o.state.status())
        };
        // SAFETY: checked by out_scalar; disjoint from the work memory.
        unsafe { write_scalar(out, code as i32) };
        Ok(())
    })
}

/// Draws the next round (the first call after `lwf_refine_init` or `lwf_refine_tell`) and
/// copies its points, all inside the box, into `out_theta` (row-major `[n][dim]`, room for
/// `capacity_rows` points, at least `lwf_refine_batch_capacity`, or the outstanding batch's
/// n when asking again), writing n to `*out_n`. Asking again before `lwf_refine_tell` gives
/// the same batch. n may be 0 (every draw fell outside the box): tell with n = 0 then.
///
/// Errors: `LWF_NULL_POINTER`, `LWF_MISALIGNED`, `LWF_INVALID_MODEL`, `LWF_INVALID_ARGUMENT`
/// (the refinement has finished), `LWF_BUFFER_TOO_SMALL` (`capacity_rows` too small),
/// `LWF_LENGTH_MISMATCH` (`capacity_rows * dim` overflows), `LWF_OVERLAPPING_BUFFERS`, or the
/// status of a failed refinement. On error nothing is written and the refinement is unchanged.
///
/// # Safety
/// `refine` NULL or a valid handle not used by another thread during the call; `out_theta`
/// NULL or writable for `capacity_rows * dim` doubles; `out_n` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lwf_refine_ask(
    refine: *mut LwfRefine,
    out_theta: *mut f64,
    capacity_rows: usize,
    out_n: *mut usize,
) -> LwfStatus {
    guard(|| {
        let out_n_ptr = out_scalar(out_n)?;
        // SAFETY: forwarded contract.
        let o = unsafe { open(refine) }?;
        let d = o.state.template().dim;
        let len = capacity_rows.checked_mul(d).ok_or(LWF_LENGTH_MISMATCH)?;
        let theta_span = Span::checked(out_theta.cast_const(), len)?;
        let n_span = Span::checked(out_n.cast_const(), 1)?;
        disjoint(theta_span, &[o.span, n_span])?;
        disjoint(n_span, &[o.span])?;
        // Checked before drawing: a refused call leaves every byte of the work as it was.
        let need = o.state.pending().unwrap_or(o.state.batch_capacity());
        if capacity_rows < need {
            return Err(LWF_BUFFER_TOO_SMALL);
        }
        // SAFETY: forwarded contract; the outputs lie outside the work memory (checked).
        let mut s = unsafe { resume(refine, o) }?;
        let m = s.refiner.ask()?.len() / d;
        if m > capacity_rows {
            return Err(LWF_BUFFER_TOO_SMALL);
        }
        s.save()?;
        // Asked: the same batch again, without drawing.
        let batch = s.refiner.ask()?;
        // SAFETY: checked pointer, disjoint from the work memory and `out_n`.
        let out = unsafe { guard::output(out_theta, len) }?;
        out[..batch.len()].copy_from_slice(batch);
        // SAFETY: checked by out_scalar; disjoint from everything else.
        unsafe { write_scalar(out_n_ptr, m) };
        Ok(())
    })
}

/// Takes the log-likelihoods ln L(theta_i) of the batch `lwf_refine_ask` handed out (`n`
/// values, in its order), weighs every sample, and fits the next proposal or finishes; writes
/// the round's figures to `*out_round` (may be NULL). -inf is a valid zero likelihood; NaN and
/// +inf follow the config's `non_finite` (`LWF_NON_FINITE`, nothing changed; or a zero
/// likelihood).
///
/// Errors, with the refinement unchanged and the call repeatable: `LWF_NULL_POINTER`,
/// `LWF_MISALIGNED`, `LWF_INVALID_MODEL`, `LWF_INVALID_ARGUMENT` (no batch outstanding: tell
/// before ask, or a finished refinement), `LWF_LENGTH_MISMATCH` (`n` is not the batch's),
/// `LWF_NON_FINITE` (NaN / +inf under `LWF_NON_FINITE_ERROR`), `LWF_OVERLAPPING_BUFFERS`.
/// A failure of the fit itself (`LWF_DEGENERATE_WEIGHTS`, `LWF_NOT_CONVERGED`, ...) ends the
/// refinement: its status becomes `LWF_REFINE_FAILED` and every later ask / tell / run returns
/// that same status.
///
/// # Safety
/// `refine` NULL or a valid handle not used by another thread during the call; `loglik` NULL
/// or readable for `n` doubles; `out_round` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lwf_refine_tell(
    refine: *mut LwfRefine,
    loglik: *const f64,
    n: usize,
    out_round: *mut LwfRefineRound,
) -> LwfStatus {
    guard(|| {
        // SAFETY: forwarded contract.
        let o = unsafe { open(refine) }?;
        let ll_span = Span::checked(loglik, n)?;
        let round_span = optional_out(out_round)?;
        disjoint(o.span, &[ll_span])?;
        if let Some(r) = round_span {
            disjoint(r, &[o.span, ll_span])?;
        }
        let policy = o.state.config().policy;
        let pending = o.state.pending();
        // SAFETY: forwarded contract; the other buffers lie outside the work memory (checked).
        let mut s = unsafe { resume(refine, o) }?;
        let m = pending.ok_or(LWF_INVALID_ARGUMENT)?;
        if n != m {
            return Err(LWF_LENGTH_MISMATCH);
        }
        // SAFETY: forwarded contract; only read, outside the work memory (checked).
        let values = unsafe { input(loglik, n) }?;
        if policy == NonFinitePolicy::Error && values.iter().any(|&v| refused(v)) {
            return Err(LWF_NON_FINITE);
        }
        // Every check of the core's `tell` has passed: an error now comes from the fit, after
        // the samples' buffers changed.
        let round = match s.refiner.tell(values) {
            Ok(r) => r,
            Err(e) => return Err(s.fail(e.into())),
        };
        s.save()?;
        if !out_round.is_null() {
            // SAFETY: aligned (optional_out) and disjoint from everything else.
            unsafe { write_scalar(out_round, LwfRefineRound::from_core(&round)) };
        }
        Ok(())
    })
}

/// Runs the refinement to its end with a batched likelihood: every round's points go to
/// `log_likelihood` in batches of at most `batch` points (as `lwf_model_fit_prior_box`'s
/// callback; its `theta` points into the work memory, read-only), then `progress` (may be
/// NULL) sees the round's figures. The results are bit-identical to `lwf_refine_ask` /
/// `lwf_refine_tell` with the same values, whatever `batch`. A finished refinement returns
/// `LWF_OK` at once. The state is written after every round, so a refinement stopped by a
/// callback can be continued (with `lwf_refine_run` again or ask / tell).
///
/// Returns `LWF_OK` when the refinement has ended (see `lwf_refine_status`), `LWF_CANCELLED`
/// when `progress` returned non-zero (after a finished round), `LWF_CALLBACK_FAILED` when the
/// likelihood returned non-zero or wrote NaN / +inf (or left an entry unwritten) under
/// `LWF_NON_FINITE_ERROR` (that round is still outstanding).
///
/// Errors: `LWF_NULL_POINTER` (`refine`, `log_likelihood`), `LWF_MISALIGNED`,
/// `LWF_INVALID_MODEL`, `LWF_INVALID_ARGUMENT` (`batch == 0`), and as `lwf_refine_tell` for a
/// failed fit.
///
/// # Safety
/// `refine` NULL or a valid handle not used by another thread during the call; the callbacks
/// follow `LwfLogLikelihoodFn` / `LwfRefineProgressFn`.
// Same shape as lwf_refine_tell above (duplicates): tell checks caller values (LWF_NON_FINITE)
// once, run fills them from the callback each round (LWF_CALLBACK_FAILED) with its own progress
// callback; the shared lines are the core tell, fail and save calls.
#[no_mangle]
pub unsafe extern "C" fn lwf_refine_run(
    refine: *mut LwfRefine,
    log_likelihood: LwfLogLikelihoodFn,
    batch: usize,
    log_likelihood_user: *mut c_void,
    progress: LwfRefineProgressFn,
    progress_user: *mut c_void,
) -> LwfStatus {
    guard(|| {
        let log_likelihood = log_likelihood.ok_or(LWF_NULL_POINTER)?;
        // SAFETY: forwarded contract.
        let o = unsafe { open(refine) }?;
        if batch == 0 {
            return Err(LWF_INVALID_ARGUMENT);
        }
        let d = o.state.template().dim;
        let policy = o.state.config().policy;
        // SAFETY: forwarded contract.
        let mut s = unsafe { resume(refine, o) }?;
        while s.refiner.status() == RefineStatus::Running {
            let m = s.refiner.ask()?.len() / d;
            s.save()?;
            let theta = s.refiner.ask()?;
            let out = s.batch.get_mut(..m).ok_or(LWF_INVALID_MODEL)?;
            // An entry the callback leaves unwritten reads as NaN, never as stale memory.
            out.fill(f64::NAN);
            let rows = batch.min(m).max(1);
            for (points, values) in theta.chunks(rows * d).zip(out.chunks_mut(rows)) {
                // SAFETY: the callback's contract (LwfLogLikelihoodFn): `points` holds
                // values.len() points of d doubles, `values` is writable for values.len()
                // doubles; both outlive the call.
                let rc = unsafe {
                    log_likelihood(
                        points.as_ptr(),
                        values.len(),
                        d,
                        values.as_mut_ptr(),
                        log_likelihood_user,
                    )
                };
                if rc != 0 {
                    return Err(LWF_CALLBACK_FAILED);
                }
            }
            if policy == NonFinitePolicy::Error && out.iter().any(|&v| refused(v)) {
                return Err(LWF_CALLBACK_FAILED);
            }
            let round = match s.refiner.tell(out) {
                Ok(r) => r,
                Err(e) => return Err(s.fail(e.into())),
            };
            s.save()?;
            if let Some(f) = progress {
                let report = LwfRefineRound::from_core(&round);
                // SAFETY: the callback's contract (LwfRefineProgressFn); the report outlives
                // the call.
                if unsafe { f(&report, progress_user) } != 0 {
                    return Err(LWF_CANCELLED);
                }
            }
        }
        Ok(())
    })
}

/// Writes the final report of a finished refinement to `*out_report`.
///
/// Errors: `LWF_NULL_POINTER`, `LWF_MISALIGNED`, `LWF_INVALID_MODEL`, `LWF_INVALID_ARGUMENT`
/// (still running, or failed).
///
/// # Safety
/// `refine` NULL or a valid handle; `out_report` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lwf_refine_report(
    refine: *const LwfRefine,
    out_report: *mut LwfRefineReport,
) -> LwfStatus {
    guard(|| {
        let out = out_scalar(out_report)?;
        // SAFETY: forwarded contract.
        let o = unsafe { open(refine) }?;
        disjoint(Span::checked(out.cast_const(), 1)?, &[o.span])?;
        let report = o.state.report()?;
        // SAFETY: checked by out_scalar; disjoint from the work memory.
        unsafe { write_scalar(out, LwfRefineReport::from_core(&report)) };
        Ok(())
    })
}

/// Bytes of model memory the result of a finished refinement needs (`lwf_shape_model_size`
/// of its shape: the mixture K the last fit chose, with the outer maps the config asked for).
///
/// Errors: `LWF_NULL_POINTER`, `LWF_MISALIGNED`, `LWF_INVALID_MODEL`, `LWF_INVALID_ARGUMENT`
/// (still running, or failed).
///
/// # Safety
/// `refine` NULL or a valid handle; `out_bytes` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lwf_refine_model_size(
    refine: *const LwfRefine,
    out_bytes: *mut usize,
) -> LwfStatus {
    guard(|| {
        let out = out_scalar(out_bytes)?;
        // SAFETY: forwarded contract.
        let o = unsafe { open(refine) }?;
        disjoint(Span::checked(out.cast_const(), 1)?, &[o.span])?;
        let shape = o.state.report()?.shape;
        let bytes = layout(&shape)?.total_bytes;
        // SAFETY: checked by out_scalar; disjoint from the work memory.
        unsafe { write_scalar(out, bytes) };
        Ok(())
    })
}

/// Writes the model a finished refinement returned into the caller's model memory `mem`
/// (`mem_len` bytes, at least `lwf_refine_model_size`, aligned to `lwf_model_align()`), as
/// `lwf_model_init` does (Adam state zero), and its handle to `*out_model`: an ordinary model
/// for `lwf_model_log_prob`, `lwf_model_sample`, `lwf_model_save`, ... With the config's
/// defaults it carries the prior box (log q = -inf outside it, every sample inside) and the
/// affine standardisation. The refinement is only read: the model can be written again.
///
/// Errors: `LWF_NULL_POINTER`, `LWF_MISALIGNED`, `LWF_INVALID_MODEL`, `LWF_INVALID_ARGUMENT`
/// (still running, or failed), `LWF_BUFFER_TOO_SMALL` (`mem_len`), `LWF_OVERLAPPING_BUFFERS`
/// (`mem` or `out_model` overlapping the work memory or each other). On error nothing is
/// written.
///
/// # Safety
/// `refine` NULL or a valid handle; `mem` NULL or writable for `mem_len` bytes; `out_model`
/// NULL or writable.
// Same shape as model.rs::lwf_model_init (duplicates): both place a model in caller memory
// through prepare_memory; C entry points each spell out their argument list and forward to one
// implementation.
#[no_mangle]
pub unsafe extern "C" fn lwf_refine_write_model(
    refine: *const LwfRefine,
    mem: *mut c_void,
    mem_len: usize,
    out_model: *mut *mut LwfModel,
) -> LwfStatus {
    guard(|| {
        // SAFETY: forwarded contract.
        let o = unsafe { open(refine) }?;
        let shape = o.state.report()?.shape;
        // SAFETY: forwarded contract.
        let (mem, ml) = unsafe { prepare_memory(mem, mem_len, &shape, out_model) }?;
        disjoint(Span::raw(mem, ml.total_bytes), &[o.span])?;
        disjoint(Span::checked(out_model.cast_const(), 1)?, &[o.span])?;
        let reals_ptr = refine
            .cast::<u8>()
            .wrapping_add(HEADER_BYTES + STATE_REGION)
            .cast::<f64>();
        // SAFETY: the checked header's layout puts `reals` doubles there; only read, and the
        // model memory does not overlap them (checked).
        let reals = unsafe { input(reals_ptr, o.layout.reals) }?;
        let (shape, params) = o.state.final_model(reals)?;
        // SAFETY: `mem` and `ml` come from prepare_memory for this shape.
        unsafe {
            write_model(mem, &shape, ml, |dst| {
                dst.copy_from_slice(params);
                Ok(())
            })
        }?;
        // SAFETY: checked by out_scalar (prepare_memory); disjoint from both memories.
        unsafe { write_scalar(out_model, mem.cast::<LwfModel>()) };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_for_every_dimension() {
        for dim in [2, 3, 4, 8, 9, MAX_DIM] {
            let core = RefineConfig::for_dim(dim);
            let c = LwfRefineConfig::from_core(&core);
            assert_eq!(c.struct_size, CONFIG_SIZE);
            assert_eq!(c.max_kl, if dim <= 3 { 0.005 } else { 0.02 }, "dim {dim}");
            assert_eq!(c.to_core(dim), Ok(core), "dim {dim}");
        }
    }

    #[test]
    fn max_kl_reaches_the_core_and_bad_values_are_invalid_arguments() {
        let c = LwfRefineConfig::from_core(&RefineConfig::for_dim(2));
        let tiny = LwfRefineConfig { max_kl: 1e-9, ..c };
        assert_eq!(tiny.to_core(2).map(|r| r.max_kl), Ok(1e-9));
        let zero = LwfRefineConfig { max_kl: 0.0, ..c };
        assert_eq!(zero.to_core(2).map(|r| r.max_kl), Ok(0.0));
        for bad in [f64::NAN, -1e-12, -1.0, f64::INFINITY, f64::NEG_INFINITY] {
            let cfg = LwfRefineConfig { max_kl: bad, ..c };
            assert_eq!(cfg.to_core(2), Err(LWF_INVALID_ARGUMENT), "max_kl {bad}");
        }
    }

    #[test]
    fn a_first_layout_config_gets_the_default_max_kl() {
        for dim in [2, 5] {
            let mut c = LwfRefineConfig::from_core(&RefineConfig::for_dim(dim));
            c.struct_size = CONFIG_SIZE_V1;
            c.seed = 77;
            // The caller's struct ends at `seed`: words past it hold garbage the library must
            // not read.
            let mut words = [u64::MAX; CONFIG_SIZE.div_ceil(8)];
            // SAFETY: `words` is at least as large as the struct and 8-byte aligned; only the
            // first-layout prefix is copied.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    (&c as *const LwfRefineConfig).cast::<u8>(),
                    words.as_mut_ptr().cast::<u8>(),
                    CONFIG_SIZE_V1,
                )
            };
            // SAFETY: readable for CONFIG_SIZE_V1 bytes (the whole array, in fact).
            let core = unsafe { read_config(words.as_ptr().cast(), dim) }.expect("first layout");
            assert_eq!(core.max_kl, RefineConfig::for_dim(dim).max_kl);
            assert_eq!(core.seed, 77);
            for size in [CONFIG_SIZE_V1 - 8, CONFIG_SIZE_V1 + 4, CONFIG_SIZE + 8, 0] {
                // SAFETY: `words` is aligned for and starts with a usize.
                unsafe { words.as_mut_ptr().cast::<usize>().write(size) };
                // SAFETY: as above.
                let got = unsafe { read_config(words.as_ptr().cast(), dim) };
                assert_eq!(got.err(), Some(LWF_INVALID_ARGUMENT), "struct_size {size}");
            }
        }
    }
}
