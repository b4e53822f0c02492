//! A [`RefineState`] as bytes: a host that keeps a refinement between calls in memory it
//! copies, saves or hands across a language boundary (the C ABI keeps it in the caller's work
//! buffer) writes it with [`RefineState::to_bytes`] and reads it back with
//! [`RefineState::from_bytes`], which checks everything a resumed [`Refiner`](super::Refiner)
//! relies on.
//!
//! Layout (little-endian; every `usize` is written as a `u64`, every enum as a one-byte code,
//! every `Option` as a presence byte 0/1 followed by its value only when present):
//!
//! | offset | bytes | field |
//! |---:|---:|---|
//! | 0 | 4 | magic `LWRS` |
//! | 4 | 2 | version (u16, currently 1) |
//! | 6 | 2 | reserved, zero |
//! | 8 | 4 | total length L in bytes, trailer included (u32) |
//! | 12 | L − 16 | the fields, in declaration order: the template shape, the configuration, lo\[D\] and hi\[D\], ln π, the counters, the 32 proposal slots, the round counter, the 32 report slots, the status, the final slot and its k̂, the last summary, the evidence |
//! | L − 4 | 4 | CRC-32 ([`crate::format::crc32`]) of every byte before it |
//!
//! [`RefineState::from_bytes`] checks, in order: length ≥ the fixed prefix, magic, version,
//! the stored length against the slice (shorter: `Truncated`, longer: `TrailingBytes`), the
//! checksum, then every field: unknown codes, invalid booleans, an invalid shape or
//! configuration, counts that the buffers could not hold or that contradict each other, and
//! non-finite values where the loop never stores one (`BadHeader`, or `NonFiniteParameter`
//! for a non-finite bound or setting). Nothing panics, whatever the bytes.

use super::{
    Evidence, Proposal, RefineConfig, RefineReport, RefineState, RefineStatus, RoundReport,
    Summary, MAX_DIM, MAX_ROUNDS,
};
use crate::codec::{bad, check_frame, non_finite, seal, Reader, Writer, SHAPE_LEN};
use crate::error::{Error, FormatError};
use crate::real::Real;
use crate::shape::{BaseKind, Shape, MAX_EXTENT};
use crate::train::codec::{FIT_LEN, TRAIN_REPORT_LEN};
use crate::train::fit::BaseChoice;
use crate::train::weights::NonFinitePolicy;

/// `Ok` if `ok`, else the bytes are not a valid state (`BadFormat`).
fn ensure(ok: bool) -> Result<(), Error> {
    if ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// First four bytes of an encoded state.
const MAGIC: [u8; 4] = *b"LWRS";
/// The version this build writes and reads.
const STATE_VERSION: u16 = 1;
/// Magic, version, reserved, length.
const PREFIX: usize = 12;
/// The CRC-32.
const TRAILER: usize = 4;

// Encoded sizes of the parts (their largest, for the optional ones).
const CONFIG_LEN: usize = 5 * 8 + 5 * 8 + 3 + FIT_LEN + 1 + 8;
const PROPOSAL_LEN: usize = 1 + SHAPE_LEN + 8 + 8 + 1 + TRAIN_REPORT_LEN + 8;
const ROUND_LEN: usize = 1 + 3 * 8 + 8 * 8 + 4 * 8 + 1;
const SUMMARY_LEN: usize = 1 + 3 * 8;
const EVIDENCE_LEN: usize = 3 * 8 + 8;
const BODY_MAX: usize = SHAPE_LEN
    + CONFIG_LEN
    + 2 * MAX_DIM * 8
    + 8
    + 4 * 8
    + 1
    // Slot 0, the prior, never has a training report.
    + MAX_ROUNDS * PROPOSAL_LEN
    - TRAIN_REPORT_LEN
    + 8
    + MAX_ROUNDS * ROUND_LEN
    + 1
    + 8
    + 2 * (1 + 8)
    + SUMMARY_LEN
    + EVIDENCE_LEN;

/// Upper bound on the bytes [`RefineState::to_bytes`] writes (the exact length of a state with
/// D = [`MAX_DIM`] and every optional field that a valid state can hold present).
pub const STATE_BYTES: usize = PREFIX + BODY_MAX + TRAILER;

const _: () = assert!(STATE_BYTES <= u32::MAX as usize);

/// The refinement's own parts; the shared ones are [`crate::codec`]'s.
impl Writer<'_> {
    fn config(&mut self, c: &RefineConfig) {
        self.usize(c.initial_samples);
        self.usize(c.samples_per_round);
        self.usize(c.check_samples);
        self.usize(c.max_calls);
        // Same shape as train/codec.rs's FitConfig writer (duplicates): one writer call per
        // field in the format's order; the configs differ.
        self.usize(c.max_rounds);
        self.f64(c.ess_fraction);
        self.f64(c.target_ess);
        self.f64(c.max_k_hat);
        self.f64(c.max_kl);
        self.f64(c.log_z_tol);
        self.bool(c.warm_start);
        self.bool(c.bounded);
        self.bool(c.affine);
        self.fit_config(&c.fit);
        self.u8(match c.policy {
            NonFinitePolicy::Error => 0,
            NonFinitePolicy::Skip => 1,
        });
        self.u64(c.seed);
    }

    fn proposal(&mut self, p: &Option<Proposal>) {
        self.bool(p.is_some());
        let Some(p) = p else { return };
        self.shape(&p.shape);
        self.usize(p.draws);
        self.f64(p.beta);
        self.bool(p.train.is_some());
        if let Some(t) = &p.train {
            self.train_report(t);
        }
        self.f64(p.train_ess);
    }

    fn round(&mut self, r: &Option<RoundReport>) {
        self.bool(r.is_some());
        let Some(r) = r else { return };
        self.usize(r.round);
        self.usize(r.calls);
        self.usize(r.draws);
        for v in [
            r.beta,
            r.next_beta,
            r.log_z,
            r.log_z_se,
            r.ess,
            r.k_hat,
            r.kl,
            r.own_log_z,
        ] {
            self.f64(v);
        }
        self.usize(r.evidence_rounds);
        self.usize(r.components);
        self.usize(r.epochs);
        self.usize(r.best_epoch);
        self.bool(r.still_improving);
    }
}

/// The refinement's own parts; the shared ones are [`crate::codec`]'s.
impl Reader<'_> {
    fn config(&mut self) -> Result<RefineConfig, Error> {
        let initial_samples = self.usize()?;
        let samples_per_round = self.usize()?;
        let check_samples = self.usize()?;
        let max_calls = self.usize()?;
        let max_rounds = self.usize()?;
        let ess_fraction = self.finite()?;
        let target_ess = self.finite()?;
        let max_k_hat = self.finite()?;
        let max_kl = self.finite()?;
        let log_z_tol = self.finite()?;
        let warm_start = self.bool()?;
        let bounded = self.bool()?;
        let affine = self.bool()?;
        let fit = self.fit_config()?;
        let policy = match self.u8()? {
            0 => NonFinitePolicy::Error,
            1 => NonFinitePolicy::Skip,
            _ => return Err(bad()),
        };
        let seed = self.u64()?;
        let cfg = RefineConfig {
            initial_samples,
            samples_per_round,
            check_samples,
            max_calls,
            max_rounds,
            ess_fraction,
            target_ess,
            max_k_hat,
            max_kl,
            log_z_tol,
            warm_start,
            bounded,
            affine,
            fit,
            policy,
            seed,
        };
        cfg.validate().map_err(|e| match e {
            Error::NonFinite => non_finite(),
            _ => bad(),
        })?;
        // `RefineConfig::validate` checks the EM settings too (a fit checks them only when EM
        // runs): a stored state holds settings every fit accepts.
        Ok(cfg)
    }

    fn proposal(&mut self) -> Result<Option<Proposal>, Error> {
        if !self.bool()? {
            return Ok(None);
        }
        let shape = self.shape()?;
        let draws = self.usize()?;
        let beta = self.finite()?;
        let train = if self.bool()? {
            Some(self.train_report()?)
        } else {
            None
        };
        let train_ess = self.finite()?;
        Ok(Some(Proposal {
            shape,
            draws,
            beta,
            train,
            train_ess,
        }))
    }

    fn round(&mut self) -> Result<Option<RoundReport>, Error> {
        if !self.bool()? {
            return Ok(None);
        }
        Ok(Some(RoundReport {
            round: self.usize()?,
            calls: self.usize()?,
            draws: self.usize()?,
            beta: self.finite()?,
            next_beta: self.finite()?,
            log_z: self.f64()?,
            log_z_se: self.f64()?,
            ess: self.f64()?,
            k_hat: self.f64()?,
            kl: self.f64()?,
            own_log_z: self.f64()?,
            evidence_rounds: self.usize()?,
            components: self.usize()?,
            epochs: self.usize()?,
            best_epoch: self.usize()?,
            still_improving: self.bool()?,
        }))
    }
}

fn status_code(s: RefineStatus) -> u8 {
    match s {
        RefineStatus::Running => 0,
        RefineStatus::Converged => 1,
        RefineStatus::BudgetExhausted => 2,
        RefineStatus::MaxRounds => 3,
    }
}

impl RefineState {
    /// Writes the state into `out` (at most [`STATE_BYTES`] bytes; the exact length depends
    /// on D and on which rounds have run) and returns the number of bytes written.
    /// `BufferTooSmall` (nothing written) when `out` is shorter.
    pub fn to_bytes(&self, out: &mut [u8]) -> Result<usize, Error> {
        // First pass counts, second writes: nothing is written to a short buffer.
        let len = self.encode(&mut []);
        if out.len() < len {
            return Err(Error::BufferTooSmall {
                needed: len,
                actual: out.len(),
            });
        }
        let out = &mut out[..len];
        self.encode(out);
        seal(out);
        Ok(len)
    }

    /// Writes everything but the checksum into `out` (if it fits) and returns the length,
    /// trailer included.
    fn encode(&self, out: &mut [u8]) -> usize {
        let mut w = Writer { out, at: PREFIX };
        w.shape(&self.template);
        w.config(&self.cfg);
        let d = self.template.dim.min(MAX_DIM);
        for v in self.lo[..d].iter().chain(&self.hi[..d]) {
            w.f64(*v);
        }
        w.f64(self.log_prior);
        w.usize(self.n);
        w.usize(self.calls);
        w.usize(self.round_start);
        w.usize(self.pending);
        w.bool(self.asked);
        for p in &self.proposals {
            w.proposal(p);
        }
        w.usize(self.rounds);
        for r in &self.reports {
            w.round(r);
        }
        w.u8(status_code(self.status));
        w.usize(self.final_slot);
        w.opt_f64(self.final_k_hat);
        w.opt_f64(self.final_kl);
        w.bool(self.last.is_some());
        if let Some(s) = &self.last {
            w.f64(s.log_z);
            w.f64(s.log_z_se);
            w.f64(s.ess);
        }
        let e = &self.evidence;
        w.f64(e.reference);
        w.f64(e.sum_inv_var);
        w.f64(e.sum_z_inv_var);
        w.usize(e.rounds);
        let len = w.at + TRAILER;
        w.at = 0;
        w.bytes(&MAGIC);
        w.bytes(&STATE_VERSION.to_le_bytes());
        w.bytes(&[0, 0]);
        w.bytes(&(len as u32).to_le_bytes());
        len
    }

    /// Reads a state written by [`to_bytes`](Self::to_bytes): exactly the bytes it wrote (a
    /// longer slice is `TrailingBytes`). Every check of the module docs runs before the
    /// state is returned; errors are `Error::Format(_)`.
    // Same shape as train/checkpoint.rs::CheckpointInfo::read (duplicates): the same prefix
    // checks against this format's own MAGIC and version constant; the frame checks after them
    // are shared (codec::check_frame).
    pub fn from_bytes(bytes: &[u8]) -> Result<RefineState, Error> {
        if bytes.len() < PREFIX + TRAILER {
            return Err(FormatError::Truncated.into());
        }
        if bytes[0..4] != MAGIC {
            return Err(FormatError::BadMagic.into());
        }
        if u16::from_le_bytes([bytes[4], bytes[5]]) != STATE_VERSION {
            return Err(FormatError::UnsupportedVersion.into());
        }
        let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
        let body = check_frame(bytes, len, PREFIX)?;
        if bytes[6..8] != [0, 0] {
            return Err(bad());
        }
        let mut r = Reader {
            b: &bytes[..body],
            at: PREFIX,
        };
        let st = Self::decode(&mut r)?;
        if r.at != body {
            return Err(bad());
        }
        st.check()?;
        Ok(st)
    }

    fn decode(r: &mut Reader<'_>) -> Result<RefineState, Error> {
        let template = r.shape()?;
        let cfg = r.config()?;
        let d = template.dim;
        if d > MAX_DIM {
            return Err(bad());
        }
        let (mut lo, mut hi) = ([0.0; MAX_DIM], [0.0; MAX_DIM]);
        for v in &mut lo[..d] {
            *v = r.finite()?;
        }
        for v in &mut hi[..d] {
            *v = r.finite()?;
        }
        let log_prior = r.finite()?;
        let n = r.usize()?;
        let calls = r.usize()?;
        let round_start = r.usize()?;
        let pending = r.usize()?;
        let asked = r.bool()?;
        let mut proposals = [None; MAX_ROUNDS];
        for p in &mut proposals {
            *p = r.proposal()?;
        }
        let rounds = r.usize()?;
        let mut reports = [None; MAX_ROUNDS];
        for rep in &mut reports {
            *rep = r.round()?;
        }
        let status = match r.u8()? {
            0 => RefineStatus::Running,
            1 => RefineStatus::Converged,
            2 => RefineStatus::BudgetExhausted,
            3 => RefineStatus::MaxRounds,
            _ => return Err(bad()),
        };
        let final_slot = r.usize()?;
        let final_k_hat = r.opt_f64()?;
        let final_kl = r.opt_f64()?;
        let last = if r.bool()? {
            Some(Summary {
                log_z: r.f64()?,
                log_z_se: r.f64()?,
                ess: r.f64()?,
            })
        } else {
            None
        };
        let evidence = Evidence {
            reference: r.f64()?,
            sum_inv_var: r.f64()?,
            sum_z_inv_var: r.f64()?,
            rounds: r.usize()?,
        };
        Ok(RefineState {
            template,
            cfg,
            lo,
            hi,
            log_prior,
            n,
            calls,
            round_start,
            pending,
            asked,
            proposals,
            rounds,
            reports,
            status,
            final_slot,
            final_k_hat,
            final_kl,
            last,
            evidence,
        })
    }

    /// The invariants a [`Refiner`](super::Refiner) relies on (every index it forms stays
    /// inside buffers sized for this configuration), and the consistency of the counters.
    fn check(&self) -> Result<(), Error> {
        let stride = self.check_template_and_box()?;
        self.check_counters()?;
        self.check_proposals(stride)?;
        self.check_reports()?;
        // A finished loop has its model; a converged one measured its k̂.
        if self.status != RefineStatus::Running {
            ensure(self.proposals[self.final_slot].is_some_and(|p| p.train.is_some()))?;
        }
        for k in [self.final_k_hat, self.final_kl].into_iter().flatten() {
            ensure(k.is_finite() && self.status == RefineStatus::Converged)?;
        }
        ensure(self.evidence.rounds <= MAX_ROUNDS)
    }

    /// The template is the configuration's proposal template and its largest shape valid;
    /// the box, and ln π exactly as `Refiner::new` computed it. Returns the parameter slot
    /// length (the largest shape's).
    fn check_template_and_box(&self) -> Result<usize, Error> {
        let (cfg, t) = (&self.cfg, &self.template);
        let d = t.dim;
        ensure(d <= MAX_DIM && t.affine == cfg.affine && t.bounded == cfg.bounded)?;
        let max = cfg.fit.base.max_shape(t);
        max.validate().map_err(|_| bad())?;
        let mut log_prior = 0.0;
        for i in 0..d {
            let width = self.hi[i] - self.lo[i];
            ensure(width > 0.0 && width.is_finite())?;
            log_prior -= libm::log(width);
        }
        ensure(log_prior.to_bits() == self.log_prior.to_bits())?;
        Ok(max.param_len())
    }

    /// The sample, call and round counters agree with each other and the configuration.
    fn check_counters(&self) -> Result<(), Error> {
        let cfg = &self.cfg;
        let running = self.status == RefineStatus::Running;
        let end = self.round_start.checked_add(self.pending);
        let called = self.calls.checked_add(self.pending);
        ensure(
            self.n <= cfg.capacity()
                && self.calls <= cfg.max_calls
                && self.calls <= self.n
                && self.round_start <= self.n
                && end.is_some_and(|e| e <= self.n)
                && called.is_some_and(|c| c <= cfg.max_calls)
                && (self.asked || self.pending == 0)
                && (running || !self.asked)
                && self.rounds <= cfg.max_rounds
                && (!running || self.rounds < cfg.max_rounds)
                && self.final_slot < cfg.max_rounds,
        )
    }

    /// Proposals: inside the configured slots, shapes of the template with a base no larger
    /// than the configuration's largest (at most `stride` parameters), round 0 the prior.
    fn check_proposals(&self, stride: usize) -> Result<(), Error> {
        let (cfg, t) = (&self.cfg, &self.template);
        for (i, p) in self.proposals.iter().enumerate() {
            let Some(p) = p else { continue };
            let same_flow = p.shape.with_base(t.base) == *t;
            let base_ok = match p.shape.base {
                BaseKind::StandardNormal => false,
                BaseKind::Gaussian => true,
                BaseKind::Mixture(k) => {
                    k <= cfg.fit.base.max_components()
                        && !matches!(cfg.fit.base, BaseChoice::Gaussian)
                }
            };
            let prior_ok = i > 0 || (p.shape == *t && p.beta == 0.0 && p.train.is_none());
            ensure(
                i < cfg.max_rounds
                    && same_flow
                    && (base_ok || i == 0)
                    && prior_ok
                    && p.shape.param_len() <= stride
                    && p.draws <= cfg.capacity()
                    && (0.0..=1.0).contains(&p.beta)
                    && p.train_ess >= 0.0,
            )?;
            if let Some(tr) = &p.train {
                ensure(tr.best_epoch <= tr.epochs)?;
            }
        }
        Ok(())
    }

    /// Reports: one per finished round, in its slot.
    fn check_reports(&self) -> Result<(), Error> {
        for (i, r) in self.reports.iter().enumerate() {
            let Some(r) = r else { continue };
            ensure(
                i < self.rounds
                    && r.round == i
                    && r.calls <= self.calls
                    && r.draws <= self.n
                    && (0.0..=1.0).contains(&r.beta)
                    && (0.0..=1.0).contains(&r.next_beta)
                    && r.evidence_rounds <= MAX_ROUNDS
                    && r.components <= MAX_EXTENT
                    && r.best_epoch <= r.epochs,
            )?;
        }
        Ok(())
    }

    /// The configuration the refinement runs with.
    pub fn config(&self) -> &RefineConfig {
        &self.cfg
    }

    /// The shape of every proposal but its base: the template with the configuration's
    /// outer maps ([`RefineConfig::proposal_template`]). [`RefineMemory::new`] of it and
    /// [`config`](Self::config) sizes the buffers.
    ///
    /// [`RefineMemory::new`]: super::RefineMemory::new
    pub fn template(&self) -> Shape {
        self.template
    }

    /// The prior box: lo\[D\] and hi\[D\].
    pub fn bounds(&self) -> (&[f64], &[f64]) {
        let d = self.template.dim.min(MAX_DIM);
        (&self.lo[..d], &self.hi[..d])
    }

    /// Where the loop stands.
    pub fn status(&self) -> RefineStatus {
        self.status
    }

    /// Likelihood calls so far.
    pub fn calls(&self) -> usize {
        self.calls
    }

    /// Rounds finished so far.
    pub fn rounds_done(&self) -> usize {
        self.rounds
    }

    /// The size of the outstanding batch (asked, not yet told), if any.
    pub fn pending(&self) -> Option<usize> {
        self.asked.then_some(self.pending)
    }

    /// The largest batch [`Refiner::ask`](super::Refiner::ask) can hand out: the largest
    /// round size of the configuration.
    pub fn batch_capacity(&self) -> usize {
        self.cfg
            .initial_samples
            .max(self.cfg.samples_per_round)
            .max(self.cfg.check_samples)
    }

    /// The report of round `round` once it has finished.
    pub fn round_report(&self, round: usize) -> Option<RoundReport> {
        self.reports.get(round).copied().flatten()
    }

    /// The proposal of the returned model once finished (`InvalidArgument` while running or
    /// without one).
    fn final_proposal(&self) -> Result<Proposal, Error> {
        if self.status == RefineStatus::Running {
            return Err(Error::InvalidArgument);
        }
        self.proposals
            .get(self.final_slot)
            .copied()
            .flatten()
            .ok_or(Error::InvalidArgument)
    }

    /// The final report (as [`Refiner::report`](super::Refiner::report); `InvalidArgument`
    /// while running).
    pub fn report(&self) -> Result<RefineReport, Error> {
        let p = self.final_proposal()?;
        let s = self.last.ok_or(Error::InvalidArgument)?;
        Ok(RefineReport {
            status: self.status,
            rounds: self.rounds,
            calls: self.calls,
            draws: self.n,
            log_z: s.log_z,
            log_z_se: s.log_z_se,
            ess: s.ess,
            k_hat: self.final_k_hat,
            kl: self.final_kl,
            shape: p.shape,
            train: p.train.ok_or(Error::InvalidArgument)?,
            beta: p.beta,
        })
    }

    /// The returned model once finished (as [`Refiner::model`](super::Refiner::model)), read
    /// from `reals`: the `T` slice the refinement's buffers were carved from
    /// ([`RefineBuffers::split`](super::RefineBuffers::split)). `InvalidArgument` while
    /// running, `BufferTooSmall` for a shorter slice.
    pub fn final_model<'a, T: Real>(&self, reals: &'a [T]) -> Result<(Shape, &'a [T]), Error> {
        let p = self.final_proposal()?;
        // The layout of `RefineBuffers::split`: θ (cap·D), training weights (cap), a log q
        // column (cap), then one model slot of the largest shape's size per round.
        let cap = self.cfg.capacity();
        let stride = self.cfg.fit.base.max_shape(&self.template).param_len();
        let start = cap
            .checked_mul(self.template.dim.saturating_add(2))
            .and_then(|v| v.checked_add(self.final_slot.checked_mul(stride)?))
            .ok_or(Error::InvalidArgument)?;
        let end = start.saturating_add(p.shape.param_len());
        let params = reals.get(start..end).ok_or(Error::BufferTooSmall {
            needed: end,
            actual: reals.len(),
        })?;
        Ok((p.shape, params))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::crc32;
    use crate::train::trainer::{StopReason, TrainReport};

    /// A state as large as the encoding gets: D = MAX_DIM, every slot and option present.
    fn largest() -> RefineState {
        let template = Shape::new(MAX_DIM, 4, 1)
            .with_affine(true)
            .with_bounded(true);
        let cfg = RefineConfig::for_dim(MAX_DIM);
        let train = TrainReport {
            epochs: 3,
            best_epoch: 2,
            best_val_loss: 1.0,
            initial_val_loss: 2.0,
            steps: 10,
            skipped_steps: 0,
            stop: StopReason::MaxEpochs,
        };
        let lo = [-1.0; MAX_DIM];
        let hi = [1.0; MAX_DIM];
        let mut log_prior = 0.0;
        for i in 0..MAX_DIM {
            log_prior -= libm::log(hi[i] - lo[i]);
        }
        let mut proposals = [None; MAX_ROUNDS];
        let mut reports = [None; MAX_ROUNDS];
        for i in 0..MAX_ROUNDS {
            proposals[i] = Some(full_proposal(i, template, train));
            reports[i] = Some(full_report(i));
        }
        RefineState {
            template,
            cfg,
            lo,
            hi,
            log_prior,
            n: 400,
            calls: 320,
            round_start: 0,
            pending: 0,
            asked: false,
            proposals,
            rounds: MAX_ROUNDS,
            reports,
            status: RefineStatus::Converged,
            final_slot: 5,
            final_k_hat: Some(0.3),
            final_kl: Some(0.004),
            last: Some(Summary {
                log_z: -1.0,
                log_z_se: 0.01,
                ess: 300.0,
            }),
            evidence: Evidence {
                reference: -1.0,
                sum_inv_var: 2.0,
                sum_z_inv_var: 2.0,
                rounds: 3,
            },
        }
    }

    /// Round `i`'s proposal in [`largest`]: the prior for round 0, else a trained mixture.
    fn full_proposal(i: usize, template: Shape, train: TrainReport) -> Proposal {
        Proposal {
            shape: if i == 0 {
                template
            } else {
                template.with_base(BaseKind::Mixture(2))
            },
            draws: 10,
            beta: if i == 0 { 0.0 } else { 1.0 },
            train: (i > 0).then_some(train),
            train_ess: 5.0,
        }
    }

    /// Round `i`'s report in [`largest`].
    fn full_report(i: usize) -> RoundReport {
        RoundReport {
            round: i,
            calls: 10,
            draws: 10,
            beta: 1.0,
            next_beta: 1.0,
            log_z: -1.0,
            log_z_se: 0.1,
            ess: 3.0,
            k_hat: f64::INFINITY,
            kl: f64::INFINITY,
            own_log_z: f64::NAN,
            evidence_rounds: 1,
            components: 2,
            epochs: 3,
            best_epoch: 2,
            still_improving: true,
        }
    }

    #[test]
    fn the_largest_state_fills_state_bytes_exactly_and_round_trips() {
        let st = largest();
        let mut buf = [0u8; STATE_BYTES];
        assert_eq!(st.to_bytes(&mut buf), Ok(STATE_BYTES));
        let back = RefineState::from_bytes(&buf).expect("valid");
        let mut again = [0u8; STATE_BYTES];
        assert_eq!(back.to_bytes(&mut again), Ok(STATE_BYTES));
        assert!(buf == again);
        let mut short = [0u8; STATE_BYTES - 1];
        assert_eq!(
            st.to_bytes(&mut short),
            Err(Error::BufferTooSmall {
                needed: STATE_BYTES,
                actual: STATE_BYTES - 1
            })
        );
        assert!(short.iter().all(|&b| b == 0));
    }

    /// Each mutation gives a state whose bytes carry a valid checksum but whose contents are
    /// impossible: every one must be refused as a format error.
    #[test]
    fn impossible_contents_are_refused() {
        let mutations: [fn(&mut RefineState); 24] = [
            |s| s.n = s.cfg.capacity() + 1,
            |s| s.calls = s.n + 1,
            |s| s.calls = s.cfg.max_calls + 1,
            |s| s.round_start = s.n + 1,
            |s| s.pending = 3,
            |s| {
                s.asked = true;
                s.pending = 1;
            },
            |s| s.rounds = s.cfg.max_rounds + 1,
            |s| s.final_slot = s.cfg.max_rounds,
            |s| s.lo[0] = s.hi[0],
            |s| s.lo[1] = f64::NAN,
            |s| s.log_prior += 1.0,
            |s| s.cfg.max_rounds = 1,
            |s| s.cfg.ess_fraction = f64::NAN,
            |s| s.cfg.fit.train.batch_size = 0,
            |s| s.cfg.affine = false,
            |s| s.cfg.fit.em.restarts = 0,
            |s| s.template.dim = 1,
            |s| {
                if let Some(p) = s.proposals[3].as_mut() {
                    p.shape = p.shape.with_base(BaseKind::Mixture(9));
                }
            },
            |s| {
                if let Some(p) = s.proposals[3].as_mut() {
                    p.shape.hidden += 1;
                }
            },
            |s| {
                if let Some(p) = s.proposals[3].as_mut() {
                    p.beta = 1.5;
                }
            },
            |s| {
                if let Some(r) = s.reports[2].as_mut() {
                    r.round = 1;
                }
            },
            |s| s.proposals[5] = None,
            |s| s.final_k_hat = Some(f64::NAN),
            |s| s.evidence.rounds = MAX_ROUNDS + 1,
        ];
        let mut buf = [0u8; STATE_BYTES];
        for (i, m) in mutations.iter().enumerate() {
            let mut st = largest();
            m(&mut st);
            let len = st.to_bytes(&mut buf).expect("fits");
            match RefineState::from_bytes(&buf[..len]) {
                Err(Error::Format(_)) => {}
                other => panic!("mutation {i}: {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_codes_and_booleans_are_refused() {
        let st = largest();
        let mut buf = [0u8; STATE_BYTES];
        let len = st.to_bytes(&mut buf).expect("fits");
        // Offsets inside the template shape: base code, activation, affine.
        for (at, v) in [(PREFIX + 32, 3u8), (PREFIX + 41, 2), (PREFIX + 46, 2)] {
            let mut b = buf;
            b[at] = v;
            let crc = crc32(&b[..len - 4]);
            b[len - 4..len].copy_from_slice(&crc.to_le_bytes());
            assert_eq!(
                RefineState::from_bytes(&b[..len]).err(),
                Some(Error::Format(FormatError::BadHeader)),
                "byte {at}"
            );
        }
        // Reserved bytes.
        let mut b = buf;
        b[6] = 1;
        let crc = crc32(&b[..len - 4]);
        b[len - 4..len].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            RefineState::from_bytes(&b[..len]).err(),
            Some(Error::Format(FormatError::BadHeader))
        );
    }

    #[test]
    fn final_model_is_where_the_buffers_put_it() {
        // The slot the refinement writes: RefineBuffers::split's models region.
        let st = largest();
        let cap = st.cfg.capacity();
        let stride = st.cfg.fit.base.max_shape(&st.template).param_len();
        let start = cap * (MAX_DIM + 2) + 5 * stride;
        let p = st.proposals[5].map(|p| p.shape.param_len()).unwrap_or(0);
        let need = crate::train::refine::RefineMemory::new(&st.template, &st.cfg).reals;
        assert!(start + p <= need);
        // Short of a real buffer: a slice long enough for the model but not the rest.
        assert!(matches!(
            st.final_model::<f64>(&[]),
            Err(Error::BufferTooSmall { .. })
        ));
    }
}
