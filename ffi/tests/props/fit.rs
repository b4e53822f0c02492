//! The one-call fits and the refinement with random configs (`LwfFitConfig`,
//! `LwfRefineConfig`: every field sometimes out of range, NaN or extreme; the budgets small so
//! one input runs fast), random boxes, samples, log-weights and likelihoods (NaN, infinities,
//! huge values, a failing or lazy callback), odd buffers and pointers.
//!
//! Properties, besides the ones every call gets (`check`): the likelihood callback only ever
//! sees finite points inside the box, in batches of at most `likelihood_batch` (D3); the size
//! queries agree with each other and with the fit (what they accept the fit does not refuse
//! as a shape or a size); a failed fit writes nothing (model memory, report, handle); a fit
//! that returns `LWF_OK` or `LWF_CANCELLED` leaves a valid model whose every evaluation is
//! finite (`abi::exercise`) and a finite report; a refinement hands out finite points inside
//! its box, refuses bad tells without changing, and ends in a model that evaluates.

use super::abi::{self, Arg, Model, Out};
use super::buf::Guarded;
use super::check::*;
use super::input::{unaddressable, Src, SPECIAL};
use super::lwf::{self, *};
use core::ffi::{c_int, c_void};
use core::mem::{offset_of, size_of, size_of_val};
use core::ptr::{null, null_mut};

/// Largest model or work memory a case allocates (bytes).
const MEM_CAP: usize = 1 << 20;
/// A fit's first byte at or above this picks its resumable form (checkpoints, resumptions).
const RESUMABLE: u8 = 0x98;
/// Where an aliased output points into a refinement's work memory (bytes).
const GUARDED_WORK_OFFSET: usize = 16;

fn code(s: LwfStatus) -> i32 {
    lwf::code(s)
}

// ---------------------------------------------------------------------------------------
// Likelihoods

/// What a likelihood callback computes, and what it saw.
pub struct Lik {
    /// 0 Gaussian, 1 constant, 2 Gaussian with special values sprinkled in, 3 Gaussian that
    /// fails at call `fail_at`, 4 Gaussian leaving some entries unwritten, 5 two modes, 6
    /// mostly -inf.
    pub mode: u8,
    pub center: Vec<f64>,
    pub sigma: f64,
    pub value: f64,
    pub every: usize,
    pub fail_at: usize,
    /// The box the points must lie in, and the largest batch allowed.
    pub lo: Vec<f64>,
    pub hi: Vec<f64>,
    pub dim: usize,
    pub max_batch: usize,
    /// Calls and points so far.
    pub calls: usize,
    pub points: usize,
    /// The first broken rule seen (reported by the harness after the call returns: a panic
    /// must not unwind through the library).
    pub violation: Option<String>,
}

impl Lik {
    /// Decodes a likelihood for the box [lo, hi].
    pub fn decode(src: &mut Src, lo: &[f64], hi: &[f64], max_batch: usize) -> Lik {
        let d = lo.len().min(hi.len());
        let center = (0..d)
            .map(|j| {
                let (a, b) = (lo[j], hi[j]);
                if a.is_finite() && b.is_finite() && a < b {
                    a + (b - a) * src.f64_in(0.1, 0.9)
                } else {
                    0.0
                }
            })
            .collect();
        let mode = match src.u8() {
            0..=139 => 0,
            140..=159 => 1,
            160..=189 => 2,
            190..=204 => 3,
            205..=219 => 4,
            220..=239 => 5,
            _ => 6,
        };
        Lik {
            mode,
            center,
            sigma: src.f64_in(0.05, 2.0),
            value: src.f64(),
            every: src.range(1, 9),
            fail_at: src.range(0, 3),
            lo: lo.to_vec(),
            hi: hi.to_vec(),
            dim: d,
            max_batch,
            calls: 0,
            points: 0,
            violation: None,
        }
    }

    /// The log-likelihood of one point (`index`: its position over all calls).
    pub fn value_at(&self, row: &[f64], index: usize) -> Option<f64> {
        let gauss = |c: &[f64], s: f64| {
            -0.5 * row
                .iter()
                .zip(c)
                .map(|(x, m)| ((x - m) / s).powi(2))
                .sum::<f64>()
        };
        Some(match self.mode {
            1 => self.value,
            2 if index % self.every == 0 => {
                [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e308, -1e308]
                    [(index / self.every) % 5]
            }
            4 if index % self.every == 0 => return None,
            5 => {
                let other: Vec<f64> = self.center.iter().map(|c| -c).collect();
                let (a, b) = (gauss(&self.center, self.sigma), gauss(&other, self.sigma));
                a.max(b) + (1.0 + (-(a - b).abs()).exp()).ln()
            }
            6 if index % self.every != 0 => f64::NEG_INFINITY,
            _ => gauss(&self.center, self.sigma),
        })
    }

    /// Checks one batch the library hands over, and fills `out` (ask/tell: the harness's side).
    fn batch(&mut self, theta: &[f64], n: usize, dim: usize, out: &mut [f64]) -> c_int {
        if self.violation.is_some() {
            return 1;
        }
        if n == 0 || n > self.max_batch || dim != self.dim {
            self.violation = Some(format!(
                "likelihood called with n = {n} (batch cap {}), dim = {dim} (want {})",
                self.max_batch, self.dim
            ));
            return 1;
        }
        for (i, row) in theta.chunks(dim).enumerate() {
            let inside = row
                .iter()
                .zip(self.lo.iter().zip(&self.hi))
                .all(|(&t, (&a, &b))| t.is_finite() && t >= a && t <= b);
            if !inside {
                self.violation = Some(format!(
                    "likelihood got point {row:?} outside the box [{:?}, {:?}] (D3)",
                    self.lo, self.hi
                ));
                return 1;
            }
            if let Some(v) = self.value_at(row, self.points + i) {
                out[i] = v;
            }
        }
        self.calls += 1;
        self.points += n;
        if self.mode == 3 && self.calls > self.fail_at {
            return 7;
        }
        0
    }

    /// Panics with the first broken rule, if any.
    pub fn assert_clean(&self, call: &str) {
        if let Some(v) = &self.violation {
            panic!("{call}: {v}");
        }
    }
}

/// The likelihood callback: `user` is a `Lik`.
///
/// # Safety
/// As `LwfLogLikelihoodFn`; `user` points at a live `Lik`.
unsafe extern "C" fn likelihood(
    theta: *const f64,
    n: usize,
    dim: usize,
    out: *mut f64,
    user: *mut c_void,
) -> c_int {
    // SAFETY: the harness passes a pointer to its `Lik`, alive during the call.
    let lik = unsafe { &mut *user.cast::<Lik>() };
    if theta.is_null() || out.is_null() || n.checked_mul(dim).is_none() {
        lik.violation = Some("likelihood called with NULL buffers".into());
        return 1;
    }
    // SAFETY: the library hands over n rows of dim doubles and room for n values.
    let (theta, out) = unsafe {
        (
            core::slice::from_raw_parts(theta, n * dim),
            core::slice::from_raw_parts_mut(out, n),
        )
    };
    lik.batch(theta, n, dim, out)
}

/// What a progress callback saw and when it cancels.
pub struct Progress {
    pub cancel_at: usize,
    pub max_epochs: usize,
    pub last: usize,
    pub calls: usize,
    pub violation: Option<String>,
}

/// The fit's progress callback: `user` is a `Progress`.
///
/// # Safety
/// As `LwfProgressFn`; `user` points at a live `Progress`.
unsafe extern "C" fn progress(report: *const LwfEpochReport, user: *mut c_void) -> c_int {
    // SAFETY: the harness passes a pointer to its `Progress`, alive during the call.
    let p = unsafe { &mut *user.cast::<Progress>() };
    if report.is_null() {
        p.violation = Some("progress with a NULL report".into());
        return 1;
    }
    // SAFETY: valid during the call (documented).
    let r = unsafe { report.read() };
    p.calls += 1;
    let ok = r.epoch >= 1
        && r.epoch <= p.max_epochs
        && r.max_epochs == p.max_epochs
        && r.epoch > p.last
        && r.lr.is_finite()
        && r.lr >= 0.0;
    // The losses of a diverging epoch may be infinite: the report is a callback's argument,
    // not an output of the call (the final report and model are checked after LWF_OK).
    if !ok && p.violation.is_none() {
        p.violation = Some(format!("progress report {r:?} after epoch {}", p.last));
    }
    p.last = r.epoch;
    c_int::from(p.cancel_at != 0 && r.epoch >= p.cancel_at)
}

/// What the refinement's progress callback saw.
pub struct RoundProgress {
    pub cancel_at: usize,
    pub violation: Option<String>,
    pub calls: usize,
}

/// The refinement's progress callback: `user` is a `RoundProgress`.
///
/// # Safety
/// As `LwfRefineProgressFn`; `user` points at a live `RoundProgress`.
unsafe extern "C" fn round_progress(round: *const LwfRefineRound, user: *mut c_void) -> c_int {
    // SAFETY: the harness passes a pointer to its `RoundProgress`, alive during the call.
    let p = unsafe { &mut *user.cast::<RoundProgress>() };
    p.calls += 1;
    if round.is_null() {
        p.violation = Some("round progress with a NULL report".into());
        return 1;
    }
    // SAFETY: valid during the call (documented).
    let r = unsafe { round.read() };
    if let Err(e) = round_ok(&r) {
        p.violation.get_or_insert(e);
    }
    c_int::from(p.cancel_at != 0 && p.calls >= p.cancel_at)
}

/// The figures of a round: finite, consistent flags.
fn round_ok(r: &LwfRefineRound) -> Result<(), String> {
    let finite = [r.beta, r.next_beta, r.log_z, r.log_z_se, r.ess, r.k_hat]
        .iter()
        .all(|v| v.is_finite());
    let flags = (r.has_k_hat == 0 || r.has_k_hat == 1)
        && (r.still_improving == 0 || r.still_improving == 1)
        && (r.has_k_hat == 1 || r.k_hat == 0.0);
    let betas = (0.0..=1.0).contains(&r.beta) && (0.0..=1.0).contains(&r.next_beta);
    if finite && flags && betas && r.best_epoch <= r.epochs {
        Ok(())
    } else {
        Err(format!("round figures {r:?}"))
    }
}

// ---------------------------------------------------------------------------------------
// Configs

/// A double field: mostly `default`, sometimes (`src.odd`) one of `palette` or of the special
/// values.
fn field(src: &mut Src, default: f64, palette: &[f64]) -> f64 {
    if !src.chance(src.odd) {
        return default;
    }
    if src.chance(64) {
        src.pick(&SPECIAL)
    } else {
        src.pick(palette)
    }
}

/// A count field: mostly in `lo..=hi`, sometimes (`src.odd`) one of `odd`.
fn count(src: &mut Src, lo: usize, hi: usize, odd: &[usize]) -> usize {
    if src.chance(src.odd) {
        src.pick(odd)
    } else {
        src.range(lo, hi)
    }
}

/// A code field: mostly `default`, sometimes (`src.odd`) any of `codes`.
fn code_field(src: &mut Src, default: i32, codes: &[i32]) -> i32 {
    if src.chance(src.odd) {
        src.pick(codes)
    } else {
        default
    }
}

/// How odd a config is: half of them have no odd field at all, the others a decoded rate.
fn set_oddness(src: &mut Src) {
    src.odd = if src.flag() {
        0
    } else {
        src.range(2, 48) as u8
    };
}

const CODES: [i32; 8] = [0, 1, 2, 3, 4, -1, i32::MAX, i32::MIN];

/// A fit config: the defaults, then every field decoded (budgets kept small: epochs, EM
/// iterations and restarts, components, samples).
pub fn fit_config(src: &mut Src) -> LwfFitConfig {
    set_oddness(src);
    let mut c = default_fit_config();
    let v = src.range(0, 3) as i32;
    c.base = code_field(src, v, &CODES);
    let v = src.range(0, 1) as i32;
    c.non_finite = code_field(src, v, &CODES);
    c.components = count(src, 1, 3, &[0, 4, 1 << 20, usize::MAX]);
    let v = src.f64_in(0.0, 4.0);
    c.min_ess = field(src, v, &[0.0, 1.0, 100.0, 1e9, -1.0, 1e300]);
    c.sample_seed = src.u64();
    c.likelihood_batch = count(src, 1, 64, &[0, usize::MAX, 1]);
    c.em_max_iter = count(src, 1, 12, &[0, 1, 40]);
    c.em_tol = field(src, 1e-6, &[0.0, 1e-2, -1.0, 1e300]);
    c.em_var_floor = field(src, 1e-6, &[0.0, 1.0, -1.0, 1e300, 1e-300]);
    c.em_restarts = count(src, 1, 2, &[0, 3]);
    c.em_min_weight = field(src, 1e-10, &[0.0, 0.5, 1.0, -1.0, 2.0]);
    c.em_seed = src.u64();
    c.max_epochs = count(src, 1, 3, &[0, 1, 5]);
    c.batch_size = count(src, 1, 64, &[0, usize::MAX, 1]);
    c.lr = field(src, 1e-3, &[0.1, 10.0, 0.0, -1.0, 1e300, 1e-300]);
    c.beta1 = field(src, 0.9, &[0.0, 0.99999, 1.0, -0.1]);
    c.beta2 = field(src, 0.999, &[0.0, 0.99999, 1.0, -0.1]);
    c.eps = field(src, 1e-8, &[0.0, 1e-300, 1.0, -1.0]);
    c.weight_decay = field(src, 0.0, &[1e-2, 1e10, -1.0, 1e300]);
    let v = src.range(0, 1) as i32;
    c.schedule = code_field(src, v, &CODES);
    c.min_lr_factor = field(src, 0.05, &[0.0, 1.0, 1.5, -0.1]);
    c.patience = count(src, 0, 3, &[usize::MAX]);
    c.validation_fraction = field(src, 0.2, &[0.0, 0.9, 0.95, 1.0, -0.1, 0.5]);
    c.clip_norm = field(src, 10.0, &[0.0, 1e-300, 1e300, -1.0]);
    c.min_weight = field(src, 1e-5, &[0.0, 0.5, 0.999, 1.0, -1.0]);
    c.seed = src.u64();
    c.init_seed = src.u64();
    let v = src.range(0, 1) as i32;
    c.bounded = code_field(src, v, &CODES);
    c
}

/// `lwf_fit_config_default` through the ABI.
pub fn default_fit_config() -> LwfFitConfig {
    let out = Out::exact::<LwfFitConfig>();
    // SAFETY: a writable config.
    let st = code(unsafe { lwf_fit_config_default(out.typed()) });
    assert_eq!(st, OK);
    out.buf.check_guards("lwf_fit_config_default");
    let c = out.read::<LwfFitConfig>();
    assert_eq!(c.struct_size, size_of::<LwfFitConfig>());
    c
}

/// The config in guarded memory of the size its layout says: the current one, the first
/// layout (fields up to `init_seed`), or an odd `struct_size` (refused before any read past
/// the first field).
fn config_memory<T: Copy>(
    src: &mut Src,
    c: &mut T,
    sizes: [usize; 2],
    write: fn(&T, usize) -> Guarded,
) -> (Guarded, usize) {
    let size = match src.u8() {
        0..=199 => sizes[1],
        200..=239 => sizes[0],
        _ => src.pick(&[0, 8, sizes[1] + 8, sizes[0] - 8, usize::MAX, 1]),
    };
    // SAFETY: T is a #[repr(C)] config whose first field is the usize struct_size.
    unsafe { (c as *mut T).cast::<usize>().write(size) };
    let bytes = if size == sizes[0] || size == sizes[1] {
        size
    } else {
        size_of::<usize>()
    };
    (write(c, bytes), size)
}

/// A fit config in memory of its current or first layout (or a bad `struct_size`), by
/// `config_memory`. A config of the first layout has no `bounded` field: the ABI fits on the
/// box then (the default), so the harness's copy says so too.
fn fit_config_memory(src: &mut Src, cfg: &mut LwfFitConfig) -> Guarded {
    let first = offset_of!(LwfFitConfig, bounded);
    let (cb, size) = config_memory(
        src,
        cfg,
        [first, size_of::<LwfFitConfig>()],
        fit_config_bytes,
    );
    if size == first {
        cfg.bounded = 1;
    }
    cb
}

/// The first `bytes` bytes of a fit config between guards, written field by field into zeroed
/// memory: the struct has padding (after `schedule`, at the end), which a copy of the whole
/// value would leave uninitialised (reading it is undefined behaviour; Miri reports it).
fn fit_config_bytes(c: &LwfFitConfig, bytes: usize) -> Guarded {
    let g = Guarded::bytes(bytes, 0);
    macro_rules! put {
        ($($f:ident),* $(,)?) => {$(
            let (at, size) = (offset_of!(LwfFitConfig, $f), size_of_val(&c.$f));
            if at + size <= bytes {
                // SAFETY: inside the buffer (checked); a scalar field has no padding.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        core::ptr::addr_of!(c.$f).cast::<u8>(),
                        g.ptr().add(at),
                        size,
                    )
                };
            }
        )*};
    }
    put!(
        struct_size,
        base,
        non_finite,
        components,
        min_ess,
        sample_seed,
        likelihood_batch,
        em_max_iter,
        em_tol,
        em_var_floor,
        em_restarts,
        em_min_weight,
        em_seed,
        max_epochs,
        batch_size,
        lr,
        beta1,
        beta2,
        eps,
        weight_decay,
        schedule,
        min_lr_factor,
        patience,
        validation_fraction,
        clip_norm,
        min_weight,
        seed,
        init_seed,
        bounded,
    );
    g
}

/// A shape for a fit or refinement: small dims and widths; sometimes odd fields.
fn fit_shape(src: &mut Src) -> LwfShape {
    let mut s = LwfShape {
        dim: src.range(2, 3),
        hidden: src.range(1, 4),
        hidden_layers: src.range(1, 2),
        couplings: src.range(1, 2),
        components: 1,
        clamp: src.pick(&[3.0, 0.0, 1.0]),
        base: 1,
        activation: src.range(0, 1) as i32,
        affine: 0,
        bounded: 0,
    };
    if src.chance(20) {
        abi::wild_shape(src, &mut s);
    }
    s
}

/// A box for dimension `d`: mostly ordinary, sometimes decoded values (NaN, inf, huge,
/// lo >= hi, a width that overflows: D3).
fn decode_box(src: &mut Src, d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut lo = Vec::with_capacity(d);
    let mut hi = Vec::with_capacity(d);
    for _ in 0..d {
        match src.u8() {
            0..=9 => {
                lo.push(src.f64());
                hi.push(src.f64());
            }
            10..=14 => {
                let a = src.pick(&[-1e308, -f64::MAX, -1e300, -1e154, 0.0]);
                lo.push(a);
                hi.push(-a + 1.0);
            }
            15..=17 => {
                let a = src.f64_in(-3.0, 3.0);
                lo.push(a);
                hi.push(a + src.pick(&[0.0, 1e-300, 5e-324, 1e-15, -1.0]));
            }
            _ => {
                let a = src.f64_in(-4.0, 1.0);
                lo.push(a);
                hi.push(a + src.f64_in(0.25, 5.0));
            }
        }
    }
    (lo, hi)
}

/// A model that a fit or refinement returned, in guarded memory.
fn adopt(t: &mut Tally, mem: Guarded, handle: *mut LwfModel) -> Model {
    assert_eq!(
        handle.cast::<u8>(),
        mem.ptr(),
        "the handle is the memory's address"
    );
    let sb = Out::exact::<LwfShape>();
    // SAFETY: a handle a fit returned with LWF_OK, and a writable shape.
    let st = code(unsafe { lwf_model_shape(handle, sb.typed()) });
    assert_eq!(
        t.status("lwf_model_shape", st),
        OK,
        "a fitted model's handle"
    );
    let shape = sb.read::<LwfShape>();
    let sizes = abi::sizes(t, &shape).expect("a fitted model's shape is valid");
    assert!(
        sizes.model_bytes <= mem.len(),
        "the model fits the memory given"
    );
    Model {
        mem,
        handle,
        shape,
        sizes,
    }
}

// ---------------------------------------------------------------------------------------
// The target

/// Decodes one fit or refinement and checks it.
pub fn run(data: &[u8], t: &mut Tally) {
    let mut src = Src::new(data);
    match src.u8() % 8 {
        0..=1 => fit_prior_box(t, &mut src),
        2..=3 => fit_samples(t, &mut src, false),
        4 => fit_samples(t, &mut src, true),
        _ => refine(t, &mut src),
    }
}

/// Model and work memory for a fit: the size queries (which must agree), then decoded
/// buffers. `None` when the sizes are over the cap.
struct FitMemory {
    mem: Guarded,
    mem_ptr: *mut c_void,
    mem_len: usize,
    work: Guarded,
    work_ptr: *mut c_void,
    work_len: usize,
    /// Sizes the queries accepted and buffers of exactly those sizes, correctly passed.
    exact: bool,
    /// What `lwf_fit_work_size` returned, and `lwf_fit_model_size`'s answer (0 if refused).
    ws: i32,
    model_bytes: usize,
}

fn fit_memory(
    t: &mut Tally,
    src: &mut Src,
    shape: &Guarded,
    config: &Guarded,
    n: usize,
    work_saving: usize,
) -> Option<FitMemory> {
    let mo = Out::exact::<usize>();
    let cw = Watch::new("config", config);
    let sw = Watch::new("shape", shape);
    let ow = mo.watch("out_bytes");
    // SAFETY: valid shape and config memory (of its struct_size), a writable usize.
    let ms = code(unsafe { lwf_fit_model_size(shape.typed(), config.typed(), mo.typed()) });
    let ms = t.status("lwf_fit_model_size", ms);
    after_call("lwf_fit_model_size", ms, &[&cw, &sw], &[&ow], false);
    let wo = Out::exact::<usize>();
    let ow = wo.watch("out_bytes");
    // SAFETY: as above.
    let ws = code(unsafe { lwf_fit_work_size(shape.typed(), config.typed(), n, wo.typed()) });
    let ws = t.status("lwf_fit_work_size", ws);
    after_call("lwf_fit_work_size", ws, &[&cw, &sw], &[&ow], false);
    if ms != OK {
        assert_ne!(
            ws, OK,
            "lwf_fit_work_size accepts what lwf_fit_model_size refuses ({ms})"
        );
    }
    if ms == OK && ws != OK {
        assert!(
            (ws == EMPTY_BATCH && n == 0)
                || (ws == INVALID_ARGUMENT && n > u32::MAX as usize)
                || ws == LENGTH_MISMATCH,
            "lwf_fit_work_size {ws} where lwf_fit_model_size accepts (n = {n})"
        );
    }
    let (need_m, need_w) = if ms == OK && ws == OK {
        let (m, w) = (mo.read::<usize>(), wo.read::<usize>());
        if m > MEM_CAP || w > MEM_CAP {
            return None;
        }
        (m, w.saturating_sub(work_saving))
    } else {
        (4096, 4096)
    };
    let exact_sizes = ms == OK && ws == OK;
    let mem_len = match src.u8() {
        0..=5 => need_m.saturating_sub(8),
        6..=7 => 0,
        8 => unaddressable(src, 1),
        _ => need_m,
    };
    let work_len = match src.u8() {
        0..=5 => need_w.saturating_sub(8),
        6..=7 => 0,
        8 => unaddressable(src, 1),
        _ => need_w,
    };
    let mem = Guarded::bytes(mem_len.min(need_m), 0xEE);
    let work = Guarded::bytes(work_len.min(need_w), 0xDD);
    let mem_ptr: *mut c_void = match src.u8() {
        0..=3 => null_mut(),
        4..=6 => mem.offset_ptr(4).cast(),
        _ => mem.ptr().cast(),
    };
    let mut work_ptr: *mut c_void = match src.u8() {
        0..=3 => null_mut(),
        4..=6 => work.offset_ptr(4).cast(),
        _ => work.ptr().cast(),
    };
    if src.chance(4) && mem.len() >= 16 {
        // The work memory overlapping the model memory.
        work_ptr = mem.ptr().cast();
    }
    let exact = exact_sizes
        && mem_len == need_m
        && work_len == need_w
        && mem_ptr == mem.ptr().cast::<c_void>()
        && work_ptr == work.ptr().cast::<c_void>();
    Some(FitMemory {
        mem,
        mem_ptr,
        mem_len,
        work,
        work_ptr,
        work_len,
        exact,
        ws,
        model_bytes: if ms == OK { mo.read::<usize>() } else { 0 },
    })
}

/// A fitted model's parameters and, when it was written, its report.
type Fitted = (Vec<f64>, Option<LwfFitReport>);

/// Checks a fit's outcome: on `LWF_OK` / `LWF_CANCELLED` the handle, report and model (which
/// is exercised; its parameters and report returned); otherwise nothing written.
#[allow(clippy::too_many_arguments)]
fn after_fit(
    t: &mut Tally,
    name: &'static str,
    st: i32,
    fm: FitMemory,
    report: &Out,
    out_model: &Out,
    n: usize,
    max_epochs: usize,
    box_: Option<(&[f64], &[f64])>,
    seed: u64,
) -> Option<Fitted> {
    fm.work.check_guards(&format!("{name}: work"));
    if fm.exact {
        // What the size queries accepted, the fit does not refuse as a shape or a size.
        assert!(
            st != INVALID_SHAPE && st != BUFFER_TOO_SMALL,
            "{name} returned {st} with buffers of the sizes the queries gave"
        );
    }
    if st != OK && st != CANCELLED {
        return None;
    }
    assert!(out_model.is_direct() && fm.mem_ptr == fm.mem.ptr().cast::<c_void>());
    let handle = out_model.read::<*mut LwfModel>();
    let mut written = None;
    if report.is_direct() {
        let r = report.read::<LwfFitReport>();
        written = Some(r);
        let ok = r.n_samples == n
            && r.skipped_samples <= n
            && r.ess.is_finite()
            && r.ess > 0.0
            && r.ess <= n as f64 * (1.0 + 1e-9)
            && r.log_mean_weight.is_finite()
            && r.components >= 1
            && r.epochs <= max_epochs
            && r.best_epoch <= r.epochs
            && !r.em_mean_log_likelihood.is_infinite()
            && !r.em_bic.is_infinite()
            && !r.initial_val_loss.is_infinite()
            && !r.best_val_loss.is_infinite()
            && (r.stop_reason == 2) == (st == CANCELLED)
            && (0..=2).contains(&r.stop_reason);
        assert!(ok, "{name} ({st}) report {r:?}");
    }
    let m = adopt(t, fm.mem, handle);
    if let Some((lo, hi)) = box_ {
        if m.shape.bounded == 1 {
            let p = m.params(t);
            let d = m.shape.dim;
            let (mlo, mhi) = (&p[p.len() - 2 * d..p.len() - d], &p[p.len() - d..]);
            assert!(
                mlo.iter().zip(lo).all(|(a, b)| a.to_bits() == b.to_bits())
                    && mhi.iter().zip(hi).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{name}: the model's box is not the one given"
            );
        }
    }
    let params = m.params(t);
    abi::exercise(t, &m, seed);
    m.mem.check_guards(&format!("{name}: model"));
    Some((params, written))
}

fn fit_prior_box(t: &mut Tally, src: &mut Src) {
    let resumable = src.u8() >= RESUMABLE;
    let name = if resumable {
        "lwf_model_fit_prior_box_resumable"
    } else {
        "lwf_model_fit_prior_box"
    };
    let shape = fit_shape(src);
    let mut cfg = fit_config(src);
    let cb = fit_config_memory(src, &mut cfg);
    let sb = Guarded::of(&shape);
    let n = count(src, 4, 40, &[0, 1, 2, u32::MAX as usize + 1, usize::MAX]);
    let Some(mut fm) = fit_memory(t, src, &sb, &cb, n, 0) else {
        return;
    };
    let mut ck = resumable.then(|| checkpoint_args(t, src, &sb, &cb, n, &fm, true));
    fm.exact &= ck.as_ref().is_none_or(|c| c.exact);
    let d = shape.dim.min(8);
    let (lo, hi) = decode_box(src, d);
    let lo_arg = if src.chance(12) {
        Arg::input(src, d)
    } else {
        Arg::exact(&lo)
    };
    let hi_arg = if src.chance(12) {
        Arg::input(src, d)
    } else {
        Arg::exact(&hi)
    };
    let (blo, bhi) = (lo_arg.values(), hi_arg.values());
    let mut lik = Lik::decode(src, &blo, &bhi, cfg.likelihood_batch);
    lik.dim = shape.dim;
    let mut prog = Progress {
        cancel_at: if src.chance(40) { src.range(1, 3) } else { 0 },
        max_epochs: cfg.max_epochs,
        last: 0,
        calls: 0,
        violation: None,
    };
    let with_progress = src.flag();
    let report = Out::decode::<LwfFitReport>(src);
    let mut out_model = Out::decode::<*mut LwfModel>(src);
    if src.chance(6) && fm.mem.len() >= 16 {
        out_model.ptr = fm.mem.offset_ptr(8);
    }
    let callback: LwfLogLikelihoodFn = if src.chance(6) {
        None
    } else {
        Some(likelihood)
    };
    let (sw, cw, lw, hw) = (
        Watch::new("shape", &sb),
        Watch::new("config", &cb),
        lo_arg.watch("lo"),
        hi_arg.watch("hi"),
    );
    let (mw, rw, ow) = (
        Watch::new("mem", &fm.mem),
        report.watch_typed::<LwfFitReport>("out_report"),
        out_model.watch("out_model"),
    );
    let prog_fn: LwfProgressFn = if with_progress { Some(progress) } else { None };
    let prog_user: *mut c_void = (&mut prog as *mut Progress).cast();
    let lik_user: *mut c_void = (&mut lik as *mut Lik).cast();
    let st = if let Some(ck) = ck.as_mut() {
        // SAFETY: as below; the checkpoint buffer holds the length passed (or is refused).
        code(unsafe {
            lwf_model_fit_prior_box_resumable(
                fm.mem_ptr,
                fm.mem_len,
                sb.typed(),
                cb.typed(),
                lo_arg.ptr,
                lo_arg.len,
                hi_arg.ptr,
                hi_arg.len,
                n,
                callback,
                lik_user,
                prog_fn,
                prog_user,
                ck.callback,
                ck.callback_user(),
                ck.ptr,
                ck.len,
                fm.work_ptr,
                fm.work_len,
                report.typed(),
                out_model.typed(),
            )
        })
    } else {
        // SAFETY: every buffer valid for the length passed (or refused before use); the
        // callbacks get pointers to live contexts.
        code(unsafe {
            lwf_model_fit_prior_box(
                fm.mem_ptr,
                fm.mem_len,
                sb.typed(),
                cb.typed(),
                lo_arg.ptr,
                lo_arg.len,
                hi_arg.ptr,
                hi_arg.len,
                n,
                callback,
                lik_user,
                prog_fn,
                prog_user,
                fm.work_ptr,
                fm.work_len,
                report.typed(),
                out_model.typed(),
            )
        })
    };
    let st = t.status(name, st);
    lik.assert_clean(name);
    if let Some(v) = &prog.violation {
        panic!("{name}: {v}");
    }
    after_call(name, st, &[&sw, &cw, &lw, &hw], &[&mw, &rw, &ow], false);
    if lik.calls > 0 {
        assert!(lik.points <= n, "{name}: {} points for n = {n}", lik.points);
    }
    if st == OK || st == CANCELLED {
        assert_eq!(lik.points, n, "{name}: every sample evaluated once");
    }
    let stopped_at = ck.as_ref().and_then(|c| c.saver.stopped);
    if st == CANCELLED {
        assert!(
            (with_progress && prog.cancel_at != 0) || stopped_at.is_some(),
            "{name}: LWF_CANCELLED without a stop"
        );
    }
    let box_ = (cfg.bounded == 1).then_some((blo.as_slice(), bhi.as_slice()));
    let fit = Finish {
        name,
        st,
        n,
        max_epochs: cfg.max_epochs,
        dim: shape.dim,
        progress_cancel: with_progress && prog.cancel_at != 0,
    };
    if st == CANCELLED && stopped_at == Some(0) {
        for w in [&mw, &rw, &ow] {
            w.assert_unchanged(name, "a stop at the samples checkpoint writes nothing");
        }
    }
    finish(t, src, &fit, fm, &report, &out_model, box_, ck.as_ref());
}

/// The checks after a fit, with or without checkpoints.
struct Finish {
    name: &'static str,
    st: i32,
    /// Samples given, the config's epochs, the dimension.
    n: usize,
    max_epochs: usize,
    dim: usize,
    /// The progress callback was set to cancel.
    progress_cancel: bool,
}

/// After a fit: a checkpoint buffer that had to be refused was; every checkpoint handed over
/// passes inspect; the outcome (`after_fit`, except after a stop at the samples checkpoint,
/// which writes nothing); a fit that ran to its end handed over one checkpoint per epoch and
/// the samples'; then resumptions from its checkpoints.
#[allow(clippy::too_many_arguments)]
fn finish(
    t: &mut Tally,
    src: &mut Src,
    f: &Finish,
    fm: FitMemory,
    report: &Out,
    out_model: &Out,
    box_: Option<(&[f64], &[f64])>,
    ck: Option<&CheckpointArgs>,
) {
    let name = f.name;
    if let Some(c) = ck {
        c.buf.check_guards(&format!("{name}: checkpoint_buf"));
        if c.refused {
            assert!(
                f.st != OK && f.st != CANCELLED && c.saver.got.is_empty(),
                "{name} returned {} with a checkpoint buffer it must refuse ({:?}, {} bytes, \
                 cap {})",
                f.st,
                c.ptr,
                c.len,
                c.saver.cap
            );
        }
        check_saved(name, t, &c.saver, f.n, f.dim, fm.model_bytes);
    }
    let stopped_at = ck.and_then(|c| c.saver.stopped);
    let fitted = if f.st == CANCELLED && stopped_at == Some(0) {
        fm.work.check_guards(&format!("{name}: work"));
        None
    } else {
        let seed = src.u64();
        after_fit(
            t,
            name,
            f.st,
            fm,
            report,
            out_model,
            f.n,
            f.max_epochs,
            box_,
            seed,
        )
    };
    let Some(c) = ck else {
        return;
    };
    if let Some((_, Some(r))) = &fitted {
        if let (Some(k), false) = (stopped_at, f.progress_cancel) {
            assert_eq!(r.epochs, k, "{name}: stopped by the checkpoint callback");
        }
        if f.st == OK && c.callback.is_some() {
            assert_eq!(
                c.saver.got.len(),
                r.epochs + 1,
                "{name}: one checkpoint per epoch and the samples'"
            );
        }
    }
    let orig = Original {
        got: &c.saver.got,
        fitted: fitted.as_ref().filter(|_| f.st == OK),
        max_epochs: f.max_epochs,
    };
    after_resumable(t, src, &orig);
}

fn fit_samples(t: &mut Tally, src: &mut Src, in_box: bool) {
    let resumable = src.u8() >= RESUMABLE;
    let name = match (resumable, in_box) {
        (true, _) => "lwf_model_fit_samples_resumable",
        (false, true) => "lwf_model_fit_samples_in_box",
        (false, false) => "lwf_model_fit_samples",
    };
    let shape = fit_shape(src);
    let mut cfg = fit_config(src);
    let cb = fit_config_memory(src, &mut cfg);
    let sb = Guarded::of(&shape);
    let n = count(src, 4, 40, &[0, 1, 2]);
    let d = shape.dim.min(8);
    let saving = if src.chance(64) { n * (d + 1) * 8 } else { 0 };
    let Some(mut fm) = fit_memory(t, src, &sb, &cb, n.max(1), saving) else {
        return;
    };
    let mut ck = resumable
        .then(|| checkpoint_args(t, src, &sb, &cb, n.max(1), &fm, in_box || cfg.bounded != 1));
    fm.exact &= ck.as_ref().is_none_or(|c| c.exact);
    let (lo, hi) = decode_box(src, d);
    let lik = Lik::decode(src, &lo, &hi, usize::MAX);
    // Samples inside the box (or decoded), log-weights from the likelihood (or decoded).
    let mut theta = Vec::with_capacity(n * d);
    for _ in 0..n {
        for j in 0..d {
            let v = if lo[j].is_finite() && hi[j].is_finite() && lo[j] < hi[j] {
                lo[j] + (hi[j] - lo[j]) * src.f64_in(0.001, 0.999)
            } else {
                src.f64_in(-2.0, 2.0)
            };
            theta.push(v);
        }
    }
    let theta_arg = if src.chance(16) {
        Arg::input(src, n * d)
    } else {
        Arg::exact(&theta)
    };
    let lw: Vec<f64> = (0..n)
        .map(|i| {
            lik.value_at(&theta[i * d..(i + 1) * d], i)
                .unwrap_or(f64::NAN)
        })
        .collect();
    let lw_arg = if src.chance(16) {
        Arg::input(src, n)
    } else {
        Arg::exact(&lw)
    };
    let lo_arg = if src.chance(12) {
        Arg::input(src, d)
    } else {
        Arg::exact(&lo)
    };
    let hi_arg = if src.chance(12) {
        Arg::input(src, d)
    } else {
        Arg::exact(&hi)
    };
    // The sizes were queried for n samples: other lengths may need more memory.
    fm.exact &= theta_arg.len == n * d && lw_arg.len == n && n > 0;
    let mut prog = Progress {
        cancel_at: if src.chance(40) { src.range(1, 3) } else { 0 },
        max_epochs: cfg.max_epochs,
        last: 0,
        calls: 0,
        violation: None,
    };
    let with_progress = src.flag();
    let report = Out::decode::<LwfFitReport>(src);
    let mut out_model = Out::decode::<*mut LwfModel>(src);
    if src.chance(6) && fm.mem.len() >= 16 {
        out_model.ptr = fm.mem.offset_ptr(8);
    }
    let (sw, cw) = (Watch::new("shape", &sb), Watch::new("config", &cb));
    let (tw, ww, low, hiw) = (
        theta_arg.watch("theta"),
        lw_arg.watch("log_weights"),
        lo_arg.watch("lo"),
        hi_arg.watch("hi"),
    );
    let (mw, rw, ow) = (
        Watch::new("mem", &fm.mem),
        report.watch_typed::<LwfFitReport>("out_report"),
        out_model.watch("out_model"),
    );
    let prog_fn: LwfProgressFn = if with_progress { Some(progress) } else { None };
    let prog_user: *mut c_void = (&mut prog as *mut Progress).cast();
    let st = if let Some(ck) = ck.as_mut() {
        // No box: NULL and 0 for both bounds.
        let (lo_ptr, lo_len, hi_ptr, hi_len) = if in_box {
            (lo_arg.ptr, lo_arg.len, hi_arg.ptr, hi_arg.len)
        } else {
            (null_mut(), 0, null_mut(), 0)
        };
        // SAFETY: every buffer valid for the length passed (or refused before use).
        code(unsafe {
            lwf_model_fit_samples_resumable(
                fm.mem_ptr,
                fm.mem_len,
                sb.typed(),
                cb.typed(),
                lo_ptr,
                lo_len,
                hi_ptr,
                hi_len,
                theta_arg.ptr,
                theta_arg.len,
                lw_arg.ptr,
                lw_arg.len,
                prog_fn,
                prog_user,
                ck.callback,
                ck.callback_user(),
                ck.ptr,
                ck.len,
                fm.work_ptr,
                fm.work_len,
                report.typed(),
                out_model.typed(),
            )
        })
    } else if in_box {
        // SAFETY: every buffer valid for the length passed (or refused before use).
        code(unsafe {
            lwf_model_fit_samples_in_box(
                fm.mem_ptr,
                fm.mem_len,
                sb.typed(),
                cb.typed(),
                lo_arg.ptr,
                lo_arg.len,
                hi_arg.ptr,
                hi_arg.len,
                theta_arg.ptr,
                theta_arg.len,
                lw_arg.ptr,
                lw_arg.len,
                prog_fn,
                prog_user,
                fm.work_ptr,
                fm.work_len,
                report.typed(),
                out_model.typed(),
            )
        })
    } else {
        // SAFETY: as above.
        code(unsafe {
            lwf_model_fit_samples(
                fm.mem_ptr,
                fm.mem_len,
                sb.typed(),
                cb.typed(),
                theta_arg.ptr,
                theta_arg.len,
                lw_arg.ptr,
                lw_arg.len,
                prog_fn,
                prog_user,
                fm.work_ptr,
                fm.work_len,
                report.typed(),
                out_model.typed(),
            )
        })
    };
    let st = t.status(name, st);
    if let Some(v) = &prog.violation {
        panic!("{name}: {v}");
    }
    after_call(
        name,
        st,
        &[&sw, &cw, &tw, &ww, &low, &hiw],
        &[&mw, &rw, &ow],
        false,
    );
    let nn = lw_arg.len;
    let stopped_at = ck.as_ref().and_then(|c| c.saver.stopped);
    if st == CANCELLED {
        assert!(
            (with_progress && prog.cancel_at != 0) || stopped_at.is_some(),
            "{name}: LWF_CANCELLED without a stop"
        );
        if stopped_at == Some(0) {
            for w in [&mw, &rw, &ow] {
                w.assert_unchanged(name, "a stop at the samples checkpoint writes nothing");
            }
        }
    }
    let box_ = (in_box && cfg.bounded == 1).then(|| (lo_arg.values(), hi_arg.values()));
    let box_ref = box_.as_ref().map(|(a, b)| (a.as_slice(), b.as_slice()));
    let fit = Finish {
        name,
        st,
        n: nn,
        max_epochs: cfg.max_epochs,
        dim: shape.dim,
        progress_cancel: with_progress && prog.cancel_at != 0,
    };
    finish(t, src, &fit, fm, &report, &out_model, box_ref, ck.as_ref());
}

// ---------------------------------------------------------------------------------------
// Checkpoints of the fits

/// What a checkpoint callback saw and when it asks to stop.
pub struct Saver {
    /// Ask to stop (return non-zero) at this epoch.
    pub stop_at: Option<usize>,
    /// The buffer size the ABI gave (`lwf_fit_checkpoint_size`, or the resumed checkpoint's
    /// `checkpoint_bytes`): no checkpoint may be longer. `usize::MAX` when unknown.
    pub cap: usize,
    /// The epoch of the first checkpoint (0 for a fit, the resumed epoch + 1 for a resume).
    pub first: usize,
    /// Every checkpoint received: its epoch and a copy of its bytes.
    pub got: Vec<(usize, Vec<u8>)>,
    /// The epoch at which the callback asked to stop.
    pub stopped: Option<usize>,
    pub violation: Option<String>,
}

impl Saver {
    fn new(stop_at: Option<usize>, cap: usize, first: usize) -> Saver {
        Saver {
            stop_at,
            cap,
            first,
            got: Vec::new(),
            stopped: None,
            violation: None,
        }
    }
}

/// The checkpoint callback: `user` is a `Saver`. Checkpoints come in epoch order, one per
/// epoch, each no longer than the size the ABI gave; the bytes are copied (valid during the
/// call only) and checked after the fit returns.
///
/// # Safety
/// As `LwfCheckpointFn`; `user` points at a live `Saver`.
unsafe extern "C" fn checkpoint(
    bytes: *const u8,
    len: usize,
    epoch: usize,
    user: *mut c_void,
) -> c_int {
    // SAFETY: the harness passes a pointer to its `Saver`, alive during the call.
    let s = unsafe { &mut *user.cast::<Saver>() };
    let want = s.got.last().map_or(s.first, |(e, _)| e + 1);
    if bytes.is_null() || len == 0 || len > s.cap || epoch != want || s.stopped.is_some() {
        s.violation.get_or_insert(format!(
            "checkpoint of {len} bytes at epoch {epoch} (cap {}, epoch {want} expected, \
             stopped {:?})",
            s.cap, s.stopped
        ));
        return 1;
    }
    // SAFETY: `len` bytes at `bytes`, valid during the call (LwfCheckpointFn).
    let copy = unsafe { core::slice::from_raw_parts(bytes, len) }.to_vec();
    s.got.push((epoch, copy));
    if s.stop_at == Some(epoch) {
        s.stopped = Some(epoch);
        return 1;
    }
    0
}

/// The checkpoint arguments of a resumable fit, decoded: the callback (or none), its context
/// and its buffer (exact, short, empty, NULL, misaligned, or overlapping the model memory).
struct CheckpointArgs {
    saver: Box<Saver>,
    callback: LwfCheckpointFn,
    /// Keeps the buffer alive and watched by its guards.
    buf: Guarded,
    ptr: *mut c_void,
    len: usize,
    /// With a callback: the buffer must be refused (NULL, short, overlapping, size unknown).
    refused: bool,
    /// No callback, or a buffer of exactly the size the ABI gave.
    exact: bool,
}

impl CheckpointArgs {
    fn callback_user(&mut self) -> *mut c_void {
        (&mut *self.saver as *mut Saver).cast()
    }
}

/// `lwf_fit_checkpoint_size` (which must agree with `lwf_fit_work_size`), then decoded
/// checkpoint arguments. `tight`: the size is what the fit needs (not so for an unboxed
/// samples fit with `bounded` set: the size counts a box the fit never has, so a buffer a few
/// bytes shorter may be accepted).
fn checkpoint_args(
    t: &mut Tally,
    src: &mut Src,
    shape: &Guarded,
    config: &Guarded,
    n: usize,
    fm: &FitMemory,
    tight: bool,
) -> CheckpointArgs {
    let name = "lwf_fit_checkpoint_size";
    let out = Out::exact::<usize>();
    let (sw, cw, ow) = (
        Watch::new("shape", shape),
        Watch::new("config", config),
        out.watch("out_bytes"),
    );
    // SAFETY: valid shape and config memory, a writable usize.
    let st =
        code(unsafe { lwf_fit_checkpoint_size(shape.typed(), config.typed(), n, out.typed()) });
    let st = t.status(name, st);
    after_call(name, st, &[&sw, &cw], &[&ow], false);
    assert_eq!(
        st, fm.ws,
        "{name} says {st} where lwf_fit_work_size says {} (n = {n})",
        fm.ws
    );
    if src.chance(24) {
        // An output NULL or misaligned: refused before anything is read.
        let bad = Out::exact::<usize>();
        let null = src.flag();
        let ptr: *mut usize = if null {
            null_mut()
        } else {
            bad.buf.offset_ptr(src.range(1, 7)).cast()
        };
        let bw = bad.watch("out_bytes");
        // SAFETY: as above; the output is refused.
        let st2 = code(unsafe { lwf_fit_checkpoint_size(shape.typed(), config.typed(), n, ptr) });
        let st2 = t.status(name, st2);
        after_call(name, st2, &[&sw, &cw], &[&bw], false);
        assert_eq!(st2, if null { NULL_POINTER } else { MISALIGNED }, "{name}");
    }
    let known = st == OK && out.read::<usize>() <= MEM_CAP;
    let need = if known { out.read::<usize>() } else { 4096 };
    if st == OK {
        assert!(out.read::<usize>() > 16, "{name}: {}", out.read::<usize>());
    }
    let with_callback = src.u8() < 224;
    let mut len = match src.u8() {
        0..=5 => need.saturating_sub(8),
        6 => 0,
        _ => need,
    };
    // Room for a misaligned start: the buffer never ends before the length passed.
    let buf = Guarded::bytes(len + 8, 0xCC);
    let mut ptr: *mut c_void = match src.u8() {
        0..=2 => null_mut(),
        3..=12 => buf.offset_ptr(src.range(1, 7)).cast(),
        _ => buf.ptr().cast(),
    };
    let overlap = src.chance(4) && fm.mem.len() >= 16;
    if overlap {
        ptr = fm.mem.ptr().cast();
        len = len.min(fm.mem.len());
    }
    let refused =
        with_callback && (ptr.is_null() || (len < need && tight) || len == 0 || overlap || !known);
    let stop_at = if src.chance(60) {
        Some(src.range(0, 3))
    } else {
        None
    };
    CheckpointArgs {
        saver: Box::new(Saver::new(
            stop_at,
            if known { need.min(len) } else { usize::MAX },
            0,
        )),
        callback: if with_callback {
            Some(checkpoint)
        } else {
            None
        },
        buf,
        ptr,
        len,
        refused,
        exact: !with_callback || (known && !ptr.is_null() && len == need && !overlap),
    }
}

/// `lwf_fit_checkpoint_inspect` of checkpoint bytes (exact arguments): its status and info.
fn inspect(t: &mut Tally, bytes: &Guarded) -> (i32, Option<LwfFitCheckpointInfo>) {
    let name = "lwf_fit_checkpoint_inspect";
    let out = Out::exact::<LwfFitCheckpointInfo>();
    let (bw, ow) = (Watch::new("bytes", bytes), out.watch("out_info"));
    // SAFETY: `bytes` holds its length; a writable info.
    let st = code(unsafe { lwf_fit_checkpoint_inspect(bytes.ptr(), bytes.len(), out.typed()) });
    let st = t.status(name, st);
    after_call(name, st, &[&bw], &[&ow], false);
    (st, (st == OK).then(|| out.read::<LwfFitCheckpointInfo>()))
}

/// Every checkpoint a fit handed over passes `lwf_fit_checkpoint_inspect`: its epoch, its
/// samples and dimension, no longer than the buffer sizes the ABI gave, needing no more model
/// memory than `lwf_fit_model_size` gave (0: unknown). The sizes are upper bounds: an unboxed
/// samples fit never needs the box that the config's `bounded` sizes for.
fn check_saved(name: &str, t: &mut Tally, saver: &Saver, n: usize, dim: usize, model: usize) {
    if let Some(v) = &saver.violation {
        panic!("{name}: {v}");
    }
    for (epoch, bytes) in &saver.got {
        let g = Guarded::from_bytes(bytes);
        let (st, info) = inspect(t, &g);
        let Some(info) = info else {
            panic!(
                "{name}: the checkpoint of epoch {epoch} fails lwf_fit_checkpoint_inspect ({st}; \
                 the core: {:?})",
                lwflow::train::CheckpointInfo::read(bytes).err()
            );
        };
        let ok = info.epoch == *epoch
            && info.n_samples == n
            && info.dim == dim
            && bytes.len() <= info.checkpoint_bytes
            && info.checkpoint_bytes <= saver.cap
            && (model == 0 || info.model_bytes <= model)
            && info.work_bytes > 0;
        assert!(
            ok,
            "{name}: checkpoint of {} bytes at epoch {epoch} (n = {n}, dim = {dim}, cap {}, \
             model {model}): {info:?}",
            bytes.len(),
            saver.cap
        );
    }
}

/// The same report, field by field and bit for bit.
fn same_report(a: &LwfFitReport, b: &LwfFitReport) -> bool {
    let bits = |x: f64, y: f64| x.to_bits() == y.to_bits();
    a.n_samples == b.n_samples
        && a.skipped_samples == b.skipped_samples
        && bits(a.ess, b.ess)
        && bits(a.log_mean_weight, b.log_mean_weight)
        && a.components == b.components
        && a.em_iterations == b.em_iterations
        && bits(a.em_mean_log_likelihood, b.em_mean_log_likelihood)
        && bits(a.em_bic, b.em_bic)
        && a.epochs == b.epochs
        && a.best_epoch == b.best_epoch
        && a.steps == b.steps
        && a.skipped_steps == b.skipped_steps
        && bits(a.initial_val_loss, b.initial_val_loss)
        && bits(a.best_val_loss, b.best_val_loss)
        && a.stop_reason == b.stop_reason
}

/// What a resumable fit produced, for the resumption checks.
struct Original<'a> {
    /// Every checkpoint it handed over.
    got: &'a [(usize, Vec<u8>)],
    /// The model and report of the fit when it ran to its end (`LWF_OK`): a resumption from
    /// any of its checkpoints ends bit-identical to it.
    fitted: Option<&'a Fitted>,
    max_epochs: usize,
}

/// After a resumable fit: its checkpoints checked, then one or two resumptions from one of
/// them, as given or damaged.
fn after_resumable(t: &mut Tally, src: &mut Src, orig: &Original) {
    if orig.got.is_empty() {
        return;
    }
    for _ in 0..src.range(1, 2) {
        let k = src.below(orig.got.len());
        resume(t, src, k, orig);
    }
}

/// `lwf_fit_checkpoint_inspect` and `lwf_model_fit_resume` on checkpoint `k` of a fit, valid
/// (variants 0-2), truncated (3), with one to three bytes changed (4; resealed with a valid
/// checksum: 5), or random bytes (6; behind a checkpoint's own prefix and resealed: 7).
/// A valid checkpoint resumes (`LWF_OK` / `LWF_CANCELLED` with a model that evaluates, or a
/// fit's own error with nothing written), bit-identical to the uninterrupted fit; a truncated
/// one and one with a single changed byte are `LWF_BAD_FORMAT`; any other bytes are refused
/// with the status inspect gives (nothing written) or, when inspect accepts them (a valid
/// checksum), resume as a valid one does.
fn resume(t: &mut Tally, src: &mut Src, k: usize, orig: &Original) {
    let name = "lwf_model_fit_resume";
    let (epoch, base) = (&orig.got[k].0, &orig.got[k].1);
    let variant = src.u8() % 8;
    let mut bytes = base.clone();
    let mut flips = 0;
    match variant {
        0..=2 => {}
        3 => bytes.truncate(src.below(bytes.len())),
        4 | 5 => {
            flips = src.range(1, 3);
            for _ in 0..flips {
                let at = src.below(bytes.len());
                bytes[at] ^= src.u8().max(1);
            }
            if variant == 5 {
                lwflow::format::seal(&mut bytes);
            }
        }
        _ => {
            let len = src.range(0, 300);
            bytes = (0..len).map(|_| src.u8()).collect();
            if variant == 7 && len >= 20 {
                bytes[..8].copy_from_slice(&base[..8]);
                bytes[8..16].copy_from_slice(&(len as u64).to_le_bytes());
                lwflow::format::seal(&mut bytes);
            }
        }
    }
    let valid = variant <= 2;
    let strict = variant == 3 || (variant == 4 && flips == 1);
    let inb = Guarded::from_bytes(&bytes);
    let (ist, info) = inspect(t, &inb);
    if valid {
        assert_eq!(
            ist, OK,
            "lwf_fit_checkpoint_inspect of a checkpoint a fit gave"
        );
    } else if strict {
        assert_eq!(
            ist, BAD_FORMAT,
            "lwf_fit_checkpoint_inspect of a checkpoint truncated or with one byte changed"
        );
    } else {
        assert!(
            matches!(ist, OK | BAD_FORMAT | INVALID_ARGUMENT),
            "lwf_fit_checkpoint_inspect of other bytes: {ist}"
        );
    }
    if src.chance(48) {
        inspect_odd(t, src, &inb);
    }
    let mut max_epochs = if valid { orig.max_epochs } else { usize::MAX };
    if !valid && ist == OK {
        // Bytes the core's reader accepts too (the ABI and the core agree). Resumed only
        // within the budgets of the harness's configs: a changed byte under a resealed
        // checksum can ask for millions of epochs, a valid (if slow) fit.
        let core = lwflow::train::CheckpointInfo::read(&bytes);
        let Ok(core) = core else {
            panic!("lwf_fit_checkpoint_inspect accepts what the core refuses: {core:?}");
        };
        let (tc, em) = (&core.cfg.train, &core.cfg.em);
        if tc.max_epochs > 5 || em.max_iter > 40 || em.restarts > 3 {
            return;
        }
        max_epochs = tc.max_epochs;
    }
    let (mb, wb, cb) = info.map_or((4096, 4096, 4096), |i| {
        (i.model_bytes, i.work_bytes, i.checkpoint_bytes)
    });
    if mb > MEM_CAP || wb > MEM_CAP || cb > MEM_CAP {
        return;
    }
    let short = src.u8() % 16;
    let mem_len = if short == 0 { mb.saturating_sub(8) } else { mb };
    let work_len = if short == 1 { wb.saturating_sub(8) } else { wb };
    let mem = Guarded::bytes(mem_len, 0xEE);
    let work = Guarded::bytes(work_len, 0xDD);
    let first = info.map_or(1, |i| i.epoch + 1);
    let stop_at = if src.chance(40) {
        Some(first + src.range(0, 2))
    } else {
        None
    };
    let mut saver = Saver::new(stop_at, cb, first);
    let with_callback = src.flag();
    let ckbuf = Guarded::bytes(cb, 0xCC);
    let overlap = with_callback && src.chance(12) && !inb.is_empty();
    let (ck_ptr, ck_len): (*mut c_void, usize) = if overlap {
        (inb.ptr().cast(), inb.len())
    } else {
        (ckbuf.ptr().cast(), cb)
    };
    let mut prog = Progress {
        cancel_at: if src.chance(40) { first + 1 } else { 0 },
        max_epochs,
        last: first - 1,
        calls: 0,
        violation: None,
    };
    // The progress reports carry the config's max_epochs: known for the fit's own bytes.
    let with_progress = valid && src.flag();
    let report = Out::decode::<LwfFitReport>(src);
    let out_model = Out::decode::<*mut LwfModel>(src);
    let (iw, mw, rw, ow) = (
        Watch::new("bytes", &inb),
        Watch::new("mem", &mem),
        report.watch_typed::<LwfFitReport>("out_report"),
        out_model.watch("out_model"),
    );
    // SAFETY: every buffer holds the length passed; the callbacks get live contexts.
    let st = code(unsafe {
        lwf_model_fit_resume(
            mem.ptr().cast(),
            mem.len(),
            inb.ptr(),
            inb.len(),
            if with_progress { Some(progress) } else { None },
            (&mut prog as *mut Progress).cast(),
            if with_callback {
                Some(checkpoint)
            } else {
                None
            },
            (&mut saver as *mut Saver).cast(),
            ck_ptr,
            ck_len,
            work.ptr().cast(),
            work.len(),
            report.typed(),
            out_model.typed(),
        )
    });
    let st = t.status(name, st);
    if let Some(v) = &prog.violation {
        panic!("{name}: {v}");
    }
    after_call(name, st, &[&iw], &[&mw, &rw, &ow], false);
    ckbuf.check_guards(&format!("{name}: checkpoint_buf"));
    if ist != OK {
        // The checkpoint is checked first, as inspect checks it.
        assert_eq!(
            st, ist,
            "{name} of bytes lwf_fit_checkpoint_inspect refuses"
        );
        assert!(saver.got.is_empty());
        work.check_guards(&format!("{name}: work"));
        return;
    }
    let info = info.expect("inspected");
    let exact = short >= 2
        && !overlap
        && out_model.is_direct()
        && (report.is_direct() || report.ptr.is_null());
    if short < 2 || overlap {
        assert!(
            st != OK && st != CANCELLED,
            "{name} ({st}) with a short or overlapping buffer"
        );
    }
    if exact {
        assert!(
            !matches!(
                st,
                BUFFER_TOO_SMALL | NULL_POINTER | MISALIGNED | OVERLAPPING_BUFFERS | BAD_FORMAT
            ),
            "{name} returned {st} with the buffers inspect sized"
        );
    }
    if st == CANCELLED {
        assert!(
            (with_progress && prog.cancel_at != 0) || saver.stopped.is_some(),
            "{name}: LWF_CANCELLED without a stop"
        );
    }
    check_saved(name, t, &saver, info.n_samples, info.dim, info.model_bytes);
    let fm = FitMemory {
        mem_ptr: mem.ptr().cast(),
        mem_len: mem.len(),
        mem,
        work_ptr: work.ptr().cast(),
        work_len: work.len(),
        work,
        exact,
        ws: OK,
        model_bytes: info.model_bytes,
    };
    let n = info.n_samples;
    let got = after_fit(
        t,
        name,
        st,
        fm,
        &report,
        &out_model,
        n,
        max_epochs,
        None,
        src.u64(),
    );
    // Bit-identical to the uninterrupted fit: the model, the report, every later checkpoint.
    let (Some(reference), Some(resumed)) = (orig.fitted.filter(|_| valid), got) else {
        return;
    };
    if st != OK {
        return;
    }
    let same = reference.0.len() == resumed.0.len()
        && reference
            .0
            .iter()
            .zip(&resumed.0)
            .all(|(a, b)| a.to_bits() == b.to_bits());
    assert!(
        same,
        "{name} from epoch {epoch}: parameters differ from the uninterrupted fit's"
    );
    if let (Some(a), Some(b)) = (&reference.1, &resumed.1) {
        assert!(
            same_report(a, b),
            "{name} from epoch {epoch}: report {b:?}, uninterrupted {a:?}"
        );
    }
    for (e, b) in &saver.got {
        let same = orig.got.iter().any(|(oe, ob)| oe == e && ob == b);
        assert!(
            same,
            "{name} from epoch {epoch}: its checkpoint of epoch {e} differs from the fit's"
        );
    }
}

/// `lwf_fit_checkpoint_inspect` with an odd argument: NULL bytes, a NULL or misaligned
/// output, an output inside the input. Refused, nothing written.
fn inspect_odd(t: &mut Tally, src: &mut Src, inb: &Guarded) {
    let name = "lwf_fit_checkpoint_inspect";
    let out = Out::exact::<LwfFitCheckpointInfo>();
    let which = src.u8() % 4;
    let (bytes, ptr): (*const u8, *mut LwfFitCheckpointInfo) = match which {
        0 => (null(), out.typed()),
        1 => (inb.ptr(), null_mut()),
        2 => (inb.ptr(), out.buf.offset_ptr(src.range(1, 7)).cast()),
        _ if inb.len() >= size_of::<LwfFitCheckpointInfo>() => (inb.ptr(), inb.typed()),
        _ => (inb.ptr(), null_mut()),
    };
    let (bw, ow) = (Watch::new("bytes", inb), out.watch("out_info"));
    // SAFETY: NULL, or `inb` with its length; the output NULL, misaligned (inside its
    // buffer's guards) or inside the input (refused as overlapping).
    let st = code(unsafe { lwf_fit_checkpoint_inspect(bytes, inb.len(), ptr) });
    let st = t.status(name, st);
    after_call(name, st, &[&bw], &[&ow], false);
    let want: &[i32] = match which {
        0 if inb.is_empty() => &[NULL_POINTER, BAD_FORMAT],
        0 => &[NULL_POINTER],
        2 => &[MISALIGNED],
        3 if !ptr.is_null() => &[OVERLAPPING_BUFFERS],
        _ => &[NULL_POINTER],
    };
    assert!(
        want.contains(&st),
        "{name} with odd argument {which}: {st}, want one of {want:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Refinement

/// A refinement config: the defaults for `dim`, then every field decoded (budgets small).
fn refine_config(src: &mut Src, dim: usize) -> LwfRefineConfig {
    let out = Out::exact::<LwfRefineConfig>();
    // SAFETY: a writable config.
    let st = code(unsafe { lwf_refine_config_default(dim.clamp(2, 64), out.typed()) });
    assert_eq!(st, OK);
    let mut c = out.read::<LwfRefineConfig>();
    set_oddness(src);
    c.initial_samples = count(src, 2, 40, &[0, 1, usize::MAX]);
    c.samples_per_round = count(src, 2, 40, &[0, 1]);
    c.check_samples = count(src, 2, 40, &[0, 1]);
    c.max_calls = c
        .initial_samples
        .saturating_add(count(src, 0, 120, &[usize::MAX, 1 << 40]));
    if src.chance(8) {
        c.max_calls = src.range(0, 4);
    }
    c.max_rounds = count(src, 2, 4, &[0, 1, 33, usize::MAX]);
    c.ess_fraction = field(src, c.ess_fraction, &[0.0, 1.0, 1e-300, 0.999, -0.5]);
    let v = src.f64_in(0.0, 60.0);
    c.target_ess = field(src, v, &[0.0, 1e300, -1.0]);
    c.max_k_hat = field(src, c.max_k_hat, &[0.0, 10.0, -1.0, 1e300]);
    c.log_z_tol = field(src, c.log_z_tol, &[0.0, 10.0, -1.0, 1e300]);
    let v = src.range(0, 1) as i32;
    c.warm_start = code_field(src, v, &CODES);
    let v = if src.chance(200) { 1 } else { 0 };
    c.bounded = code_field(src, v, &CODES);
    let v = src.range(0, 1) as i32;
    c.affine = code_field(src, v, &CODES);
    let v = src.range(0, 1) as i32;
    c.non_finite = code_field(src, v, &CODES);
    c.max_components = count(src, 1, 3, &[0, 9, 1 << 20, usize::MAX]);
    c.max_epochs = count(src, 1, 3, &[0]);
    c.batch_size = count(src, 1, 64, &[0, usize::MAX]);
    c.patience = count(src, 0, 3, &[usize::MAX]);
    c.learning_rate = field(src, c.learning_rate, &[0.1, 10.0, 0.0, -1.0, 1e300]);
    c.seed = src.u64();
    c.max_kl = field(src, c.max_kl, &[0.0, 10.0, -1.0, 1e300]);
    c
}

/// A refinement handle argument: the refinement, NULL, misaligned, or a copy of its memory
/// with one header byte changed.
fn refine_handle(src: &mut Src, work: &Guarded) -> (*mut LwfRefine, Option<Guarded>, bool) {
    match src.u8() {
        0..=3 => (null_mut(), None, false),
        4..=6 => (work.offset_ptr(4).cast(), None, false),
        7..=10 => {
            let mut bytes = work.snapshot();
            // The checksummed header (tag to checksum, 72 bytes): any change is detected.
            let at = src.below(bytes.len().min(72));
            bytes[at] ^= src.u8().max(1);
            let g = Guarded::from_bytes(&bytes);
            (g.ptr().cast(), Some(g), false)
        }
        _ => (work.ptr().cast(), None, true),
    }
}

/// `lwf_refine_status` of a valid refinement.
fn refine_status(t: &mut Tally, r: *const LwfRefine) -> i32 {
    let out = Out::exact::<i32>();
    // SAFETY: a valid refinement and a writable int32.
    let st = code(unsafe { lwf_refine_status(r, out.typed()) });
    assert_eq!(t.status("lwf_refine_status", st), OK, "lwf_refine_status");
    let s = out.read::<i32>();
    assert!((0..=4).contains(&s), "refine status {s}");
    s
}

/// `lwf_refine_batch_capacity` of a valid refinement.
fn refine_capacity(t: &mut Tally, r: *const LwfRefine) -> usize {
    let out = Out::exact::<usize>();
    // SAFETY: a valid refinement and a writable usize.
    let st = code(unsafe { lwf_refine_batch_capacity(r, out.typed()) });
    assert_eq!(t.status("lwf_refine_batch_capacity", st), OK);
    out.read::<usize>()
}

fn refine(t: &mut Tally, src: &mut Src) {
    let mut shape = fit_shape(src);
    if src.chance(8) {
        shape.dim = src.pick(&[0, 1, 65, 1 << 20]);
    }
    let d = shape.dim;
    let mut cfg = refine_config(src, d);
    let (cb, _) = config_memory(
        src,
        &mut cfg,
        [
            offset_of!(LwfRefineConfig, max_kl),
            size_of::<LwfRefineConfig>(),
        ],
        Guarded::of_prefix,
    );
    let sb = Guarded::of(&shape);
    let (sw, cw) = (Watch::new("shape", &sb), Watch::new("config", &cb));
    let so = Out::decode::<usize>(src);
    let ow = so.watch("out_bytes");
    // SAFETY: valid shape and config memory, an output NULL, misaligned or writable.
    let st = code(unsafe { lwf_refine_work_size(sb.typed(), cb.typed(), so.typed()) });
    let st = t.status("lwf_refine_work_size", st);
    after_call("lwf_refine_work_size", st, &[&sw, &cw], &[&ow], false);
    if !so.is_direct() {
        return;
    }
    let need = if st == OK { so.read::<usize>() } else { 4096 };
    if need > MEM_CAP {
        return;
    }
    let dd = d.min(8);
    let (lo, hi) = decode_box(src, dd);
    let lo_arg = if src.chance(12) {
        Arg::input(src, dd)
    } else {
        Arg::exact(&lo)
    };
    let hi_arg = if src.chance(12) {
        Arg::input(src, dd)
    } else {
        Arg::exact(&hi)
    };
    let dim_arg = if src.chance(8) { src.range(0, 4) } else { dd };
    // Never more than the buffers hold (an unaddressable length comes with one double).
    let dim_arg = dim_arg.min(lo_arg.buf.len() / 8).min(hi_arg.buf.len() / 8);
    let work_len = match src.u8() {
        0..=5 => need.saturating_sub(8),
        6 => 0,
        7 => unaddressable(src, 1),
        _ => need,
    };
    let work = Guarded::bytes(work_len.min(need), 0xDD);
    let work_ptr: *mut c_void = match src.u8() {
        0..=3 => null_mut(),
        4..=6 => work.offset_ptr(4).cast(),
        _ => work.ptr().cast(),
    };
    let mut out = Out::decode::<*mut LwfRefine>(src);
    if src.chance(6) && work.len() >= 16 {
        out.ptr = work.offset_ptr(8);
    }
    let (lw, hw, ow) = (
        lo_arg.watch("lo"),
        hi_arg.watch("hi"),
        out.watch("out_refine"),
    );
    let ww = Watch::new("work", &work);
    // SAFETY: every buffer valid for the length passed (or refused before use).
    let ist = code(unsafe {
        lwf_refine_init(
            work_ptr,
            work_len,
            sb.typed(),
            lo_arg.ptr,
            hi_arg.ptr,
            dim_arg,
            cb.typed(),
            out.typed(),
        )
    });
    let ist = t.status("lwf_refine_init", ist);
    after_call(
        "lwf_refine_init",
        ist,
        &[&sw, &cw, &lw, &hw],
        &[&ww, &ow],
        false,
    );
    let exact = st == OK
        && work_len == need
        && work_ptr == work.ptr().cast::<c_void>()
        && out.is_direct()
        && dim_arg == d
        && lo_arg.is_exact(d)
        && hi_arg.is_exact(d);
    if exact {
        assert!(
            ist == OK || ist == INVALID_ARGUMENT || ist == NON_FINITE,
            "lwf_refine_init {ist} with the size lwf_refine_work_size gave"
        );
    }
    if ist != OK {
        return;
    }
    let r = out.read::<*mut LwfRefine>();
    assert_eq!(r.cast::<u8>(), work.ptr());
    // The box the refinement read: `dim_arg` values of each.
    let (blo, bhi) = (
        lo_arg.buf.read_f64s()[..dim_arg].to_vec(),
        hi_arg.buf.read_f64s()[..dim_arg].to_vec(),
    );
    let mut lik = Lik::decode(src, &blo, &bhi, usize::MAX);
    let cap = refine_capacity(t, r);
    let (mut work, mut r) = (work, r);
    for _ in 0..12 {
        if refine_status(t, r) != 0 {
            break;
        }
        let op = src.u8();
        match op % 8 {
            0 => refine_run(t, src, r, &work, &mut lik),
            // A checkpoint, restored into fresh memory: the harness goes on with that one.
            1 if op & 0x40 != 0 => {
                if let Some((w, h)) = refine_checkpoint(t, src, r, &work, &lik) {
                    (work, r) = (w, h);
                }
            }
            1 => refine_bad_call(t, src, r, &work, cap, &lik),
            _ => {
                if !refine_ask_tell(t, src, r, &work, cap, &mut lik) {
                    break;
                }
            }
        }
        work.check_guards("refinement work");
    }
    if src.chance(64) {
        // A checkpoint of the finished, failed or still running refinement.
        if let Some((w, h)) = refine_checkpoint(t, src, r, &work, &lik) {
            (work, r) = (w, h);
        }
    }
    refine_finish(t, src, r, &work, &lik);
}

/// A checkpoint of the refinement at its current point (running, finished or failed):
/// `lwf_refine_checkpoint_size` and `lwf_refine_checkpoint` with valid and odd arguments (the
/// refinement only read; the bytes hold its memory byte for byte), then `lwf_refine_restore`
/// into fresh work memory from the checkpoint as given (variants 0-2), truncated (3), with one
/// to three bytes changed (4; resealed with a valid checksum: 5), or random bytes (6; behind
/// the checkpoint's prefix and resealed: 7). A valid checkpoint restores (with the right
/// dimension and memory) to the same memory, status and next batch; a truncated one or one
/// with a single changed byte is `LWF_BAD_FORMAT` with nothing written; other bytes are
/// refused, or restore when their checksum is valid. A restored refinement is returned: the
/// harness drives it on.
fn refine_checkpoint(
    t: &mut Tally,
    src: &mut Src,
    r: *mut LwfRefine,
    work: &Guarded,
    lik: &Lik,
) -> Option<(Guarded, *mut LwfRefine)> {
    let status = refine_status(t, r);
    let ww = Watch::new("work", work);
    let name = "lwf_refine_checkpoint_size";
    if src.chance(48) {
        let (h, copy, valid) = refine_handle(src, work);
        let so = Out::decode::<usize>(src);
        let sw = so.watch("out_bytes");
        // SAFETY: a handle NULL, misaligned, valid, or a corrupted copy; the output NULL,
        // misaligned or writable.
        let st = code(unsafe { lwf_refine_checkpoint_size(h, so.typed()) });
        let st = t.status(name, st);
        after_call(name, st, &[&ww], &[&sw], false);
        if let Some(g) = copy {
            g.check_guards(name);
        }
        assert_eq!(
            st == OK,
            valid && so.is_direct(),
            "{name} ({st}) of a handle valid: {valid}, output direct: {}",
            so.is_direct()
        );
    }
    let so = Out::exact::<usize>();
    // SAFETY: a valid refinement, a writable usize.
    let st = code(unsafe { lwf_refine_checkpoint_size(r, so.typed()) });
    assert_eq!(t.status(name, st), OK, "{name} of a valid refinement");
    let need = so.read::<usize>();
    assert_eq!(need, work.len() + 20, "{name}: its memory and 20 bytes");
    let name = "lwf_refine_checkpoint";
    let out = Guarded::bytes(need, 0x5A);
    let which = src.u8() % 8;
    if which < 4 {
        // Refused: a buffer one byte short, NULL, inside the work memory, or `out_written`
        // inside the buffer.
        let written = Out::exact::<usize>();
        let (ptr, len, wptr): (*mut u8, usize, *mut usize) = match which {
            0 => (out.ptr(), need - 1, written.typed()),
            1 => (null_mut(), need, written.typed()),
            2 => (work.ptr(), need, written.typed()),
            _ => (out.ptr(), need, out.typed()),
        };
        let (ow, wrw) = (Watch::new("out", &out), written.watch("out_written"));
        // SAFETY: the buffers hold the lengths passed (the one in the work memory is refused
        // as overlapping before any write; guards would catch one).
        let st = code(unsafe { lwf_refine_checkpoint(r, ptr, len, wptr) });
        let st = t.status(name, st);
        after_call(name, st, &[&ww], &[&ow, &wrw], false);
        let want: &[i32] = match which {
            0 => &[BUFFER_TOO_SMALL],
            1 => &[NULL_POINTER, BUFFER_TOO_SMALL],
            _ => &[OVERLAPPING_BUFFERS],
        };
        assert!(want.contains(&st), "{name} odd argument {which}: {st}");
    }
    let written = Out::exact::<usize>();
    let (ow, wrw) = (Watch::new("out", &out), written.watch("out_written"));
    // SAFETY: a valid refinement, `need` writable bytes, a writable usize.
    let st = code(unsafe { lwf_refine_checkpoint(r, out.ptr(), need, written.typed()) });
    let st = t.status(name, st);
    after_call(name, st, &[&ww], &[&ow, &wrw], false);
    assert_eq!(st, OK, "{name} of a valid refinement");
    assert_eq!(written.read::<usize>(), need);
    let base = out.snapshot();
    assert!(
        base[16..need - 4] == work.snapshot()[..],
        "{name}: the bytes are not the refinement's memory"
    );
    let variant = src.u8() % 8;
    let mut bytes = base.clone();
    let mut flips = 0;
    match variant {
        0..=2 => {}
        3 => bytes.truncate(src.below(bytes.len())),
        4 | 5 => {
            flips = src.range(1, 3);
            for _ in 0..flips {
                let at = src.below(bytes.len());
                bytes[at] ^= src.u8().max(1);
            }
            if variant == 5 {
                lwflow::format::seal(&mut bytes);
            }
        }
        _ => {
            let len = src.range(0, 400);
            bytes = (0..len).map(|_| src.u8()).collect();
            if variant == 7 && len >= 20 {
                bytes[..8].copy_from_slice(&base[..8]);
                bytes[8..16].copy_from_slice(&(len as u64).to_le_bytes());
                lwflow::format::seal(&mut bytes);
            }
        }
    }
    let valid = variant <= 2;
    let strict = variant == 3 || (variant == 4 && flips == 1);
    let name = "lwf_refine_restore";
    let dim = if src.chance(16) {
        src.range(0, 4)
    } else {
        lik.dim
    };
    let short = src.chance(16);
    let wlen = bytes.len().saturating_sub(20).min(MEM_CAP);
    let wlen = if short { wlen.saturating_sub(8) } else { wlen };
    let w2 = Guarded::bytes(wlen, 0xAB);
    let wptr: *mut c_void = match src.u8() {
        0..=2 => null_mut(),
        3..=5 => w2.offset_ptr(4).cast(),
        _ => w2.ptr().cast(),
    };
    let outr = Out::decode::<*mut LwfRefine>(src);
    let inb = Guarded::from_bytes(&bytes);
    let (iw, orw, w2w) = (
        Watch::new("bytes", &inb),
        outr.watch("out_refine"),
        Watch::new("work", &w2),
    );
    // SAFETY: `w2` holds `wlen` bytes (or NULL / misaligned, refused), `inb` its length.
    let st =
        code(unsafe { lwf_refine_restore(wptr, wlen, inb.ptr(), inb.len(), dim, outr.typed()) });
    let st = t.status(name, st);
    after_call(name, st, &[&iw], &[&orw], false);
    w2w.guards(name);
    let args_ok = wptr == w2.ptr().cast::<c_void>() && outr.is_direct();
    if !args_ok {
        assert_ne!(st, OK, "{name} with a NULL or misaligned argument");
    } else if valid {
        let want = if short {
            BUFFER_TOO_SMALL
        } else if dim != lik.dim {
            LENGTH_MISMATCH
        } else {
            OK
        };
        assert_eq!(
            st, want,
            "{name} of a valid checkpoint (dim {dim}, short {short})"
        );
    } else if strict {
        assert_eq!(
            st, BAD_FORMAT,
            "{name} of a truncated or changed checkpoint"
        );
    }
    if st != OK {
        // The work memory untouched, except for contents copied and found no refinement (or
        // of another dimension): then it holds none.
        if !w2w.unchanged() {
            assert!(
                !strict && (st == BAD_FORMAT || st == LENGTH_MISMATCH),
                "{name} ({st}) wrote to the work memory"
            );
            let so = Out::exact::<i32>();
            // SAFETY: readable memory of a header's size at least; a writable int32.
            let s2 = code(unsafe { lwf_refine_status(w2.ptr().cast(), so.typed()) });
            let s2 = t.status("lwf_refine_status", s2);
            assert_ne!(s2, OK, "{name} ({st}) left a refinement in the work memory");
        }
        return None;
    }
    let h = outr.read::<*mut LwfRefine>();
    assert_eq!(
        h.cast::<u8>(),
        w2.ptr(),
        "{name}: the handle is the memory's address"
    );
    let now = refine_status(t, h);
    if valid {
        assert!(
            w2.snapshot() == work.snapshot() && now == status,
            "{name}: the restored refinement is not the checkpointed one"
        );
        if status == 0 {
            // The same next batch.
            let cap = refine_capacity(t, r).max(1);
            let d = lik.dim;
            let (a, b) = (Guarded::f64s(cap * d, 0.0), Guarded::f64s(cap * d, 0.0));
            let (na, nb) = (Out::exact::<usize>(), Out::exact::<usize>());
            // SAFETY: valid refinements, room for `cap` points, writable counts.
            let (sa, sb) = unsafe {
                (
                    code(lwf_refine_ask(r, a.f64_ptr(), cap, na.typed())),
                    code(lwf_refine_ask(h, b.f64_ptr(), cap, nb.typed())),
                )
            };
            let (sa, sb) = (
                t.status("lwf_refine_ask", sa),
                t.status("lwf_refine_ask", sb),
            );
            assert_eq!(
                sa, sb,
                "lwf_refine_ask: the restored refinement answers otherwise"
            );
            if sa == OK {
                assert!(
                    na.read::<usize>() == nb.read::<usize>() && a.snapshot() == b.snapshot(),
                    "lwf_refine_ask: the restored refinement asks another batch"
                );
            }
        }
    }
    Some((w2, h))
}

/// One ask / tell round with the harness's likelihood; false once the refinement failed.
fn refine_ask_tell(
    t: &mut Tally,
    src: &mut Src,
    r: *mut LwfRefine,
    work: &Guarded,
    cap: usize,
    lik: &mut Lik,
) -> bool {
    let d = lik.dim;
    let rows = cap.max(1);
    let theta = Guarded::f64s(rows * d, abi::SENTINEL);
    let n_out = Out::exact::<usize>();
    // SAFETY: a valid refinement, room for `rows` points, a writable usize.
    let st = code(unsafe { lwf_refine_ask(r, theta.f64_ptr(), rows, n_out.typed()) });
    let st = t.status("lwf_refine_ask", st);
    theta.check_guards("lwf_refine_ask: theta");
    n_out.buf.check_guards("lwf_refine_ask: out_n");
    if st != OK {
        return false;
    }
    let n = n_out.read::<usize>();
    assert!(
        n <= cap,
        "lwf_refine_ask: {n} points for a capacity of {cap}"
    );
    let pts = theta.read_f64s();
    let pts = &pts[..n * d];
    for row in pts.chunks(d) {
        let inside = row
            .iter()
            .zip(lik.lo.iter().zip(&lik.hi))
            .all(|(&x, (&a, &b))| x.is_finite() && x >= a && x <= b);
        assert!(inside, "lwf_refine_ask: point {row:?} outside the box");
    }
    if src.chance(40) {
        // Asking again gives the same batch.
        let again = Guarded::f64s(rows * d, abi::SENTINEL);
        let n2 = Out::exact::<usize>();
        // SAFETY: as above.
        let st = code(unsafe { lwf_refine_ask(r, again.f64_ptr(), rows, n2.typed()) });
        assert_eq!(t.status("lwf_refine_ask", st), OK);
        assert_eq!(n2.read::<usize>(), n);
        let a2 = again.read_f64s();
        assert!(
            pts.iter().zip(&a2).all(|(a, b)| a.to_bits() == b.to_bits()),
            "asking again gave another batch"
        );
    }
    let mut ll = vec![0.0; n];
    for (i, row) in pts.chunks(d).enumerate() {
        ll[i] = lik.value_at(row, lik.points + i).unwrap_or(f64::NAN);
    }
    lik.points += n;
    let ll_buf = Guarded::from_f64s(&ll);
    let round = Out::decode::<LwfRefineRound>(src);
    let (lw, rw) = (Watch::new("loglik", &ll_buf), round.watch("out_round"));
    let before = refine_status(t, r);
    // SAFETY: a valid refinement, n values, a round output NULL, misaligned or writable.
    let st = code(unsafe {
        lwf_refine_tell(
            r,
            if n == 0 { null() } else { ll_buf.f64_ptr() },
            n,
            round.typed(),
        )
    });
    let st = t.status("lwf_refine_tell", st);
    after_call("lwf_refine_tell", st, &[&lw], &[&rw], false);
    work.check_guards("lwf_refine_tell: work");
    if st == OK && round.is_direct() {
        let rr = round.read::<LwfRefineRound>();
        if let Err(e) = round_ok(&rr) {
            panic!("lwf_refine_tell: {e}");
        }
    }
    if st != OK {
        // Refused (the refinement unchanged, the tell repeatable), or the fit inside failed:
        // the refinement is then failed, whatever the status says (it can be any code, also
        // LWF_NON_FINITE: a box of width 2e300 overflows the fit).
        let now = refine_status(t, r);
        if now == 4 {
            return false;
        }
        assert_eq!(now, before, "a refused tell ({st}) changed the refinement");
    }
    true
}

/// `lwf_refine_run` to the end (or a cancel) with the likelihood callback.
fn refine_run(t: &mut Tally, src: &mut Src, r: *mut LwfRefine, work: &Guarded, lik: &mut Lik) {
    let batch = count(src, 1, 50, &[0, usize::MAX]);
    lik.max_batch = batch;
    let mut prog = RoundProgress {
        cancel_at: if src.chance(60) { src.range(1, 2) } else { 0 },
        violation: None,
        calls: 0,
    };
    let with_progress = src.flag();
    // SAFETY: a valid refinement; the callbacks get pointers to live contexts.
    let st = code(unsafe {
        lwf_refine_run(
            r,
            Some(likelihood),
            batch,
            (lik as *mut Lik).cast(),
            if with_progress {
                Some(round_progress)
            } else {
                None
            },
            (&mut prog as *mut RoundProgress).cast(),
        )
    });
    let st = t.status("lwf_refine_run", st);
    lik.assert_clean("lwf_refine_run");
    if let Some(v) = &prog.violation {
        panic!("lwf_refine_run: {v}");
    }
    work.check_guards("lwf_refine_run: work");
    if batch == 0 {
        assert_eq!(st, INVALID_ARGUMENT);
    }
    if st == CANCELLED {
        assert!(with_progress && prog.cancel_at != 0);
    }
    lik.max_batch = usize::MAX;
}

/// A call with odd arguments: it must fail (or do what a valid call does) and leave the
/// refinement's status as it was.
fn refine_bad_call(
    t: &mut Tally,
    src: &mut Src,
    r: *mut LwfRefine,
    work: &Guarded,
    cap: usize,
    lik: &Lik,
) {
    let before = refine_status(t, r);
    let (h, copy, valid) = refine_handle(src, work);
    let d = lik.dim;
    match src.u8() % 6 {
        0 => {
            let rows = src.pick(&[0, cap.saturating_sub(1), cap, usize::MAX / 2]);
            // usize::MAX / 2 rows of d >= 2 doubles are refused before use.
            let real = if rows == usize::MAX / 2 { 1 } else { rows * d };
            let theta = Guarded::f64s(real, abi::SENTINEL);
            let mut ptr: *mut f64 = match src.u8() {
                0..=9 => null_mut(),
                10..=19 => theta.offset_ptr(4).cast(),
                _ => theta.f64_ptr(),
            };
            let aliased = src.chance(16) && rows > 0 && work.len() >= 64;
            if aliased {
                ptr = work.offset_ptr(GUARDED_WORK_OFFSET).cast();
            }
            let mut n_out = Out::decode::<usize>(src);
            let n_alias = src.chance(16) && work.len() >= 16;
            if n_alias {
                n_out.ptr = work.offset_ptr(8);
            }
            let ow = n_out.watch("out_n");
            // SAFETY: `ptr` is NULL, misaligned, inside the work memory, or holds `rows * d`
            // doubles (an overflowing count is refused before use).
            let st = code(unsafe { lwf_refine_ask(h, ptr, rows, n_out.typed()) });
            let st = t.status("lwf_refine_ask", st);
            theta.check_guards("lwf_refine_ask: theta");
            ow.guards("lwf_refine_ask");
            if !valid || aliased || n_alias {
                assert_ne!(
                    st, OK,
                    "lwf_refine_ask with a bad handle or overlapping output"
                );
            }
        }
        1 => {
            let n = src.range(0, 60);
            let ll = Arg::input(src, n);
            let round = Out::decode::<LwfRefineRound>(src);
            let (lw, rw) = (ll.watch("loglik"), round.watch("out_round"));
            // SAFETY: `ll` holds its claimed length (or it is refused as unaddressable).
            let st = code(unsafe { lwf_refine_tell(h, ll.ptr, ll.len, round.typed()) });
            let st = t.status("lwf_refine_tell", st);
            after_call("lwf_refine_tell", st, &[&lw], &[&rw], false);
            if !valid {
                assert_ne!(st, OK, "lwf_refine_tell with a bad handle");
            }
            if st != OK && valid {
                let now = refine_status(t, r);
                if now != 4 {
                    assert_eq!(now, before, "a refused tell changed the refinement");
                }
            }
            return;
        }
        2 => {
            let out = Out::decode::<LwfRefineReport>(src);
            let w = out.watch("out_report");
            // SAFETY: NULL, misaligned or valid pointers.
            let st = code(unsafe { lwf_refine_report(h, out.typed()) });
            let st = t.status("lwf_refine_report", st);
            after_call("lwf_refine_report", st, &[], &[&w], false);
            assert_ne!(st, OK, "lwf_refine_report of a running refinement");
        }
        3 => {
            let out = Out::decode::<usize>(src);
            let w = out.watch("out_bytes");
            // SAFETY: as above.
            let st = code(unsafe { lwf_refine_model_size(h, out.typed()) });
            let st = t.status("lwf_refine_model_size", st);
            after_call("lwf_refine_model_size", st, &[], &[&w], false);
            assert_ne!(st, OK, "lwf_refine_model_size of a running refinement");
        }
        4 => {
            let out = Out::decode::<i32>(src);
            let w = out.watch("out_status");
            // SAFETY: as above.
            let st = code(unsafe { lwf_refine_status(h, out.typed()) });
            let st = t.status("lwf_refine_status", st);
            after_call("lwf_refine_status", st, &[], &[&w], false);
            if !valid {
                assert_ne!(st, OK);
            }
            let out = Out::decode::<usize>(src);
            let w = out.watch("out_rows");
            // SAFETY: as above.
            let st = code(unsafe { lwf_refine_batch_capacity(h, out.typed()) });
            let st = t.status("lwf_refine_batch_capacity", st);
            after_call("lwf_refine_batch_capacity", st, &[], &[&w], false);
            if !valid {
                assert_ne!(st, OK);
            }
        }
        _ => {
            let mem = Guarded::bytes(4096, 0xEE);
            let out = Out::decode::<*mut LwfModel>(src);
            let (mw, ow) = (Watch::new("mem", &mem), out.watch("out_model"));
            // SAFETY: as above; `mem` holds 4096 bytes.
            let st = code(unsafe {
                lwf_refine_write_model(h, mem.ptr().cast(), mem.len(), out.typed())
            });
            let st = t.status("lwf_refine_write_model", st);
            after_call("lwf_refine_write_model", st, &[], &[&mw, &ow], false);
            assert_ne!(st, OK, "lwf_refine_write_model of a running refinement");
        }
    }
    if let Some(g) = copy {
        g.check_guards("refinement copy");
    }
    assert_eq!(
        refine_status(t, r),
        before,
        "a refused call changed the refinement"
    );
}

/// A finished refinement: its report, model size and model (exercised); a running or failed
/// one refuses them.
fn refine_finish(t: &mut Tally, src: &mut Src, r: *mut LwfRefine, work: &Guarded, lik: &Lik) {
    let status = refine_status(t, r);
    let rep = Out::exact::<LwfRefineReport>();
    let ww = Watch::new("work", work);
    // SAFETY: a valid refinement, a writable report.
    let st = code(unsafe { lwf_refine_report(r, rep.typed()) });
    let st = t.status("lwf_refine_report", st);
    ww.guards("lwf_refine_report");
    ww.assert_unchanged("lwf_refine_report", "a const refinement");
    let finished = (1..=3).contains(&status);
    assert_eq!(
        st == OK,
        finished,
        "lwf_refine_report ({st}) at status {status}"
    );
    if finished {
        let rr = rep.read::<LwfRefineReport>();
        let ok = rr.status == status
            && [rr.log_z, rr.log_z_se, rr.ess, rr.k_hat, rr.beta]
                .iter()
                .all(|v| v.is_finite())
            && (rr.has_k_hat == 0 || rr.has_k_hat == 1)
            && rr.best_epoch <= rr.epochs
            && rr.components >= 1;
        assert!(ok, "lwf_refine_report {rr:?}");
    }
    let so = Out::exact::<usize>();
    // SAFETY: a valid refinement, a writable usize.
    let st = code(unsafe { lwf_refine_model_size(r, so.typed()) });
    let st = t.status("lwf_refine_model_size", st);
    assert_eq!(
        st == OK,
        finished,
        "lwf_refine_model_size ({st}) at status {status}"
    );
    if !finished {
        return;
    }
    let need = so.read::<usize>();
    if need > MEM_CAP {
        return;
    }
    let short = src.chance(24);
    let mem = Guarded::bytes(if short { need - 8 } else { need }, 0xEE);
    let out = Out::exact::<*mut LwfModel>();
    let (mw, ow) = (Watch::new("mem", &mem), out.watch("out_model"));
    // SAFETY: a valid refinement, exact buffers.
    let st = code(unsafe { lwf_refine_write_model(r, mem.ptr().cast(), mem.len(), out.typed()) });
    let st = t.status("lwf_refine_write_model", st);
    after_call("lwf_refine_write_model", st, &[], &[&mw, &ow], false);
    ww.assert_unchanged("lwf_refine_write_model", "a const refinement");
    if short {
        assert_eq!(st, BUFFER_TOO_SMALL);
        return;
    }
    assert_eq!(st, OK, "lwf_refine_write_model of a finished refinement");
    let m = adopt(t, mem, out.read::<*mut LwfModel>());
    if m.shape.bounded == 1 {
        let p = m.params(t);
        let d = m.shape.dim;
        assert!(
            p[p.len() - 2 * d..p.len() - d]
                .iter()
                .zip(&lik.lo)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "the refined model's box is not the prior's"
        );
    }
    abi::exercise(t, &m, src.u64());
}
