//! lwflow on a Cortex-M4F: fits an f32 flow with an EM + BIC mixture base to benchmark task
//! 2D2 from prior samples, samples from it, and prints KL(p‖q), the mode shares, emulated
//! instruction counts and the painted-stack peak over semihosting. Exits 0 when KL and both
//! modes pass the thresholds of [`pipeline::solved`], 1 otherwise (and on any fault or panic).
//!
//! Every buffer is in one `static` (`.bss`) or on the stack; no allocator is linked.
//! Optional overrides come from the semihosting command line (QEMU `-append "h=1 l=1"`):
//! `h=` width, `l=` couplings, `n=` prior samples, `seed=`, `epochs=`, `base=gauss`, and the
//! EM settings `em_iter=`, `em_restarts=`, `em_tol_exp=`, `em_min_weight_exp=` (see README.md).
#![no_std]
#![no_main]

#[cfg_attr(not(feature = "self-check"), allow(dead_code))]
mod pipeline;

use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{SCB, SYST};
use cortex_m_rt::{entry, exception, ExceptionFrame};
use cortex_m_semihosting::{debug, hprintln};
use lwflow::train::{BaseChoice, StopReason};
use lwflow::BaseKind;
use panic_semihosting as _;
use pipeline::{Buffers, Report, RunConfig};

/// The one home of every large buffer (zero-initialised, so it lands in `.bss`).
static mut BUFFERS: Buffers = Buffers::ZERO;

/// The word painted over the free stack at start-up.
const STACK_PAINT: u32 = 0xC0FF_EE42;

/// SysTick reload: the 24-bit maximum.
const RELOAD: u32 = 0x00FF_FFFF;
/// SysTick periods elapsed (counted by the SysTick handler).
static WRAPS: AtomicU32 = AtomicU32::new(0);
/// Emulated instructions per SysTick tick: the mps2 SysTick runs at 25 MHz and
/// `-icount shift=0` advances virtual time by 1 ns per instruction.
const INSTRUCTIONS_PER_TICK: u64 = 40;

extern "C" {
    /// Top of the stack (cortex-m-rt: end of RAM).
    static _stack_start: u32;
    /// Bottom of the stack region (cortex-m-rt: end of `.bss` / `.uninit`).
    static _stack_end: u32;
}

#[entry]
fn main() -> ! {
    paint_stack();
    let mut core = cortex_m::Peripherals::take().unwrap_or_else(|| fail("peripherals taken"));
    start_clock(&mut core.SYST);

    let cfg = command_line_config();
    print_banner(&cfg);
    let calibration = calibrate();

    // SAFETY: `main` runs once and is the only code that names BUFFERS, so this is the only
    // reference to it for the rest of the program.
    let buffers = unsafe { &mut *core::ptr::addr_of_mut!(BUFFERS) };
    let mut clock = instructions;
    let report = match pipeline::run(buffers, &cfg, &mut clock) {
        Ok(r) => r,
        Err(e) => {
            hprintln!("error: {}", e);
            exit(false)
        }
    };
    print_report(&report, calibration);
    #[cfg(feature = "self-check")]
    self_check(buffers, &report, &cfg);
    let ok = pipeline::solved(&report);
    let (peak, total) = stack_peak();
    hprintln!("stack: peak {} of {} bytes (painted)", peak, total);
    hprintln!("verdict: {}", if ok { "PASS" } else { "FAIL" });
    exit(ok)
}

fn exit(ok: bool) -> ! {
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    // Only reached without a semihosting host.
    loop {
        cortex_m::asm::bkpt();
    }
}

fn fail(why: &str) -> ! {
    hprintln!("error: {}", why);
    exit(false)
}

// ---------------------------------------------------------------------------------------------
// Emulated instruction counter

fn start_clock(syst: &mut SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(RELOAD);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

#[exception]
fn SysTick() {
    WRAPS.fetch_add(1, Ordering::Relaxed);
}

/// SysTick ticks since start, wrap-safe: a wrap that is pending but not yet counted is seen
/// through the SysTick pending bit and added here.
fn ticks() -> u64 {
    cortex_m::interrupt::free(|_| {
        let wraps = u64::from(WRAPS.load(Ordering::Relaxed));
        let current = SYST::get_current();
        let (wraps, current) = if SCB::is_pendst_pending() {
            (wraps + 1, SYST::get_current())
        } else {
            (wraps, current)
        };
        wraps * (u64::from(RELOAD) + 1) + u64::from(RELOAD - current)
    })
}

/// Emulated instructions since start (exact to one tick, [`INSTRUCTIONS_PER_TICK`]).
fn instructions() -> u64 {
    ticks() * INSTRUCTIONS_PER_TICK
}

/// Runs a loop of a known instruction count and returns what the clock measured, so the
/// output shows whether the counts are instruction counts (`-icount shift=0`) or not.
fn calibrate() -> (u64, u64) {
    const LOOPS: u32 = 1_000_000;
    let start = instructions();
    // Two instructions per iteration: subs, bne.
    let mut n = LOOPS;
    // SAFETY: a register-only countdown loop; it touches no memory and leaves the flags
    // clobbered, which the asm block declares by omitting `preserves_flags`.
    unsafe {
        core::arch::asm!("1:", "subs {0}, {0}, #1", "bne 1b", inout(reg) n, options(nomem, nostack));
    }
    let measured = instructions() - start;
    let _ = n;
    (2 * u64::from(LOOPS), measured)
}

// ---------------------------------------------------------------------------------------------
// Painted stack

/// Fills the free stack below the current stack pointer (less a margin for this function's
/// own frame) with [`STACK_PAINT`]. Runs first thing in `main`, before any interrupt is
/// enabled, so nothing else uses the region being painted.
#[inline(never)]
fn paint_stack() {
    let bottom = core::ptr::addr_of!(_stack_end) as usize;
    let sp = cortex_m::register::msp::read() as usize;
    let top = sp.saturating_sub(64) & !3;
    let mut p = bottom;
    while p < top {
        // SAFETY: [bottom, top) lies between the end of .bss and the live stack: memory that
        // the linker gave to the stack and that no frame uses yet; `p` is 4-byte aligned.
        unsafe { core::ptr::write_volatile(p as *mut u32, STACK_PAINT) };
        p += 4;
    }
}

/// (deepest stack use in bytes, stack size in bytes): the first word from the bottom that no
/// longer holds the paint marks the high-water mark.
fn stack_peak() -> (usize, usize) {
    let bottom = core::ptr::addr_of!(_stack_end) as usize;
    let top = core::ptr::addr_of!(_stack_start) as usize;
    let mut p = bottom;
    // SAFETY: reads aligned words of the stack region [bottom, top), all mapped RAM.
    while p < top && unsafe { core::ptr::read_volatile(p as *const u32) } == STACK_PAINT {
        p += 4;
    }
    (top - p, top - bottom)
}

// ---------------------------------------------------------------------------------------------
// Faults

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    hprintln!(
        "HardFault at pc={:#010x} lr={:#010x}",
        frame.pc(),
        frame.lr()
    );
    exit(false)
}

#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    hprintln!("unexpected exception {}", irqn);
    exit(false)
}

// ---------------------------------------------------------------------------------------------
// Accuracy self-check (feature `self-check`, on by default)

/// Prints the f32 kernel's error against the same model in f64, and the error of the core's
/// f32 `exp` / `ln` / `tanh` against libm (zero unless built with `fast-math`).
#[cfg(feature = "self-check")]
fn self_check(buffers: &mut Buffers, report: &Report, cfg: &RunConfig) {
    let start = instructions();
    match pipeline::kernel_error(buffers, report, cfg) {
        Ok(a) => hprintln!(
            "f32_vs_f64: n={} log_q_max_err={} log_q_mean_err={} kl_shift={} instructions={}",
            a.n,
            Fixed(a.log_q_max, 7),
            Fixed(a.log_q_mean, 7),
            Fixed(a.kl_shift, 7),
            instructions() - start
        ),
        Err(e) => hprintln!("f32_vs_f64: error {}", e),
    }
    let e = pipeline::math_error();
    hprintln!(
        "math_error_e6: exp_rel={} ln_abs={} ln_abs_below_one={} tanh_abs={}",
        Fixed(e.exp_rel * 1e6, 3),
        Fixed(e.ln_abs * 1e6, 3),
        Fixed(e.ln_abs_below_one * 1e6, 3),
        Fixed(e.tanh_abs * 1e6, 3)
    );
}

// ---------------------------------------------------------------------------------------------
// Command line and output

/// Defaults of [`RunConfig`], overridden by `key=value` words of the semihosting command line.
fn command_line_config() -> RunConfig {
    let mut cfg = RunConfig::default();
    let mut line = [0u8; 256];
    let mut block = [line.as_mut_ptr() as usize, line.len() - 1];
    // SAFETY: SYS_GET_CMDLINE writes at most block[1] bytes into `line` and the length back
    // into block[1]; both outlive the call.
    let status = unsafe {
        cortex_m_semihosting::syscall1(
            cortex_m_semihosting::nr::GET_CMDLINE,
            block.as_mut_ptr() as usize,
        )
    };
    if status != 0 {
        return cfg;
    }
    // SAFETY: the host has written the length; read it back through the pointer it used.
    let len = unsafe { core::ptr::read_volatile(&block[1]) }.min(line.len());
    let text = core::str::from_utf8(line.get(..len).unwrap_or(&[])).unwrap_or("");
    for word in text.split_ascii_whitespace() {
        let Some((key, value)) = word.split_once('=') else {
            continue;
        };
        let number = value.parse::<usize>().ok();
        match (key, number) {
            ("h", Some(v)) => cfg.hidden = v,
            ("l", Some(v)) => cfg.couplings = v,
            ("n", Some(v)) => cfg.n_prior = v,
            ("seed", Some(v)) => cfg.seed = v as u64,
            ("epochs", Some(v)) => cfg.train.max_epochs = v,
            ("em_iter", Some(v)) => cfg.em.max_iter = v,
            ("em_restarts", Some(v)) => cfg.em.restarts = v,
            ("em_tol_exp", Some(v)) => cfg.em.tol = libm::pow(10.0, -(v as f64)),
            ("em_min_weight_exp", Some(v)) => cfg.em.min_weight = libm::pow(10.0, -(v as f64)),
            ("base", _) if value == "gauss" => cfg.base = BaseChoice::Gaussian,
            _ => hprintln!("ignored argument: {}", word),
        }
    }
    cfg
}

/// A number printed with a fixed count of decimals using integer formatting only (core's
/// float formatting would add ≈ 20 KB of flash).
struct Fixed(f64, u32);

impl fmt::Display for Fixed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Fixed(v, decimals) = *self;
        if v.is_nan() {
            return f.write_str("NaN");
        }
        if v.is_infinite() {
            return f.write_str(if v > 0.0 { "inf" } else { "-inf" });
        }
        let scale = 10u64.saturating_pow(decimals).max(1);
        let scaled = libm::round(libm::fabs(v) * scale as f64);
        if scaled >= 1.8e19 {
            return f.write_str(if v > 0.0 { "huge" } else { "-huge" });
        }
        let scaled = scaled as u64;
        let sign = if v < 0.0 && scaled != 0 { "-" } else { "" };
        if decimals == 0 {
            return write!(f, "{}{}", sign, scaled);
        }
        write!(
            f,
            "{}{}.{:0width$}",
            sign,
            scaled / scale,
            scaled % scale,
            width = decimals as usize
        )
    }
}

fn print_banner(cfg: &RunConfig) {
    hprintln!(
        "lwflow cortex-m4f: task 2D2, f32, math {}",
        if cfg!(feature = "fast-math") {
            "micromath (fast-math)"
        } else {
            "libm"
        }
    );
    let base = match cfg.base {
        BaseChoice::Gaussian => "gaussian",
        _ => "auto",
    };
    hprintln!(
        "config: n={} h={} l={} base={} seed={} epochs={} eval={}",
        cfg.n_prior,
        cfg.hidden,
        cfg.couplings,
        base,
        cfg.seed,
        cfg.train.max_epochs,
        cfg.n_eval
    );
}

fn print_report(r: &Report, (expected, measured): (u64, u64)) {
    let s = &r.shape;
    let base = match s.base {
        BaseKind::Mixture(k) => k,
        _ => 1,
    };
    hprintln!(
        "shape: D={} H={} L={} hidden_layers={} components={} params={} workspace={}",
        s.dim,
        s.hidden,
        s.couplings,
        s.hidden_layers,
        base,
        s.param_len(),
        s.workspace_len()
    );
    hprintln!("prior: N={} ESS={}", r.n_prior, Fixed(r.ess, 1));
    hprintln!(
        "em: K={} iterations={} weights={} {} {}",
        r.components,
        r.em_iterations,
        Fixed(r.em_weights[0], 4),
        Fixed(r.em_weights[1], 4),
        Fixed(r.em_weights[2], 4)
    );
    let stop = match r.stop {
        StopReason::MaxEpochs => "max-epochs",
        StopReason::EarlyStopped => "early-stopped",
        StopReason::Cancelled => "cancelled",
    };
    hprintln!(
        "train: epochs={} best_epoch={} steps={} skipped={} stop={} val_loss={} -> {}",
        r.epochs,
        r.best_epoch,
        r.steps,
        r.skipped_steps,
        stop,
        Fixed(r.initial_val_loss, 6),
        Fixed(r.best_val_loss, 6)
    );
    hprintln!("kl: {}", Fixed(r.kl, 6));
    hprintln!(
        "mode_share: left={} right={}",
        Fixed(r.share_left, 4),
        Fixed(r.share_right(), 4)
    );
    hprintln!("bridge_mass: {}", Fixed(r.bridge_mass, 4));
    hprintln!("sample_sum: {}", Fixed(r.sample_sum, 3));
    hprintln!(
        "hash: params={:016x} samples={:016x}",
        r.params_hash,
        r.samples_hash
    );
    hprintln!("finite: {}", r.all_finite);
    let t = &r.timings;
    let n = (r.n_eval as u64).max(1);
    // Without `-icount shift=0` SysTick follows the host's clock and counts nothing useful.
    let valid = measured.abs_diff(expected) * 100 <= expected;
    hprintln!(
        "instructions: calibration {} expected {} measured ({})",
        expected,
        measured,
        if valid {
            "valid: emulated instruction counts"
        } else {
            "INVALID: run QEMU with -icount shift=0"
        }
    );
    hprintln!(
        "instructions: log_prob/sample={} sample/sample={} gradient/sample={} log_prob(1)={} sample(1)={}",
        t.log_prob / n,
        t.sample / n,
        t.gradient / pipeline::BATCH.min(r.n_prior).max(1) as u64,
        t.log_prob_one,
        t.sample_one
    );
    hprintln!(
        "instructions: prior={} weights={} fit={} (to end of epoch 1: {}) evaluation={}",
        t.prior,
        t.weights,
        t.fit,
        t.fit_first_epoch,
        t.evaluation
    );
    hprintln!("instructions: total={}", instructions());
}
