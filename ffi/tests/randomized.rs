//! The fuzz targets' properties on stable Rust, in CI: the checks of `ffi/tests/props` (the same
//! code the cargo-fuzz targets in `fuzz/` run) on byte strings from a fixed seed, through the
//! built `liblwflow.so` (the real exported symbols, resolved with libloading against the
//! mirror declarations below).
//!
//! 150,000 random cases in all (loader, every C entry point, fit and refinement configs) plus
//! the committed seed corpus (`fuzz/seeds`, regenerated from `props::seeds`). Every case
//! asserts: no panic / `LWF_PANIC`, never `LWF_OK` with a non-finite output, no write outside
//! the buffers given (guard bytes) or into a const input, nothing written on failure, and the
//! agreement of the entry points with each other and with the core's loader. Each test also
//! asserts that its cases reached the successful paths (not only the argument checks).
//!
//! `LWFLOW_WRITE_SEEDS=<dir>` writes the seed corpus to `<dir>/<target>/<name>`;
//! `LWFLOW_RANDOMIZED_CASES=<n>` runs `n` cases per target instead of the default.

mod common;

/// The header's types and functions, mirrored field for field, called through the cdylib.
#[allow(dead_code, clippy::too_many_arguments, clippy::missing_safety_doc)]
mod lwf {
    use core::ffi::{c_char, c_int, c_void};
    use std::sync::OnceLock;

    /// Statuses are read as the C `int` they are.
    pub type LwfStatus = i32;

    /// A status as its C `int`.
    pub fn code(s: LwfStatus) -> i32 {
        s
    }

    /// Opaque model handle.
    pub enum LwfModel {}
    /// Opaque refinement handle.
    pub enum LwfRefine {}

    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub struct LwfShape {
        pub dim: usize,
        pub hidden: usize,
        pub hidden_layers: usize,
        pub couplings: usize,
        pub components: usize,
        pub clamp: f64,
        pub base: i32,
        pub activation: i32,
        pub affine: i32,
        pub bounded: i32,
    }

    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub struct LwfAdam {
        pub lr: f64,
        pub beta1: f64,
        pub beta2: f64,
        pub eps: f64,
        pub weight_decay: f64,
    }

    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct LwfRng {
        pub state: [u64; 4],
    }

    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub struct LwfFitConfig {
        pub struct_size: usize,
        pub base: i32,
        pub non_finite: i32,
        pub components: usize,
        pub min_ess: f64,
        pub sample_seed: u64,
        pub likelihood_batch: usize,
        pub em_max_iter: usize,
        pub em_tol: f64,
        pub em_var_floor: f64,
        pub em_restarts: usize,
        pub em_min_weight: f64,
        pub em_seed: u64,
        pub max_epochs: usize,
        pub batch_size: usize,
        pub lr: f64,
        pub beta1: f64,
        pub beta2: f64,
        pub eps: f64,
        pub weight_decay: f64,
        pub schedule: i32,
        pub min_lr_factor: f64,
        pub patience: usize,
        pub validation_fraction: f64,
        pub clip_norm: f64,
        pub min_weight: f64,
        pub seed: u64,
        pub init_seed: u64,
        pub bounded: i32,
    }

    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub struct LwfImportanceSummary {
        pub n: usize,
        pub log_z: f64,
        pub log_z_se: f64,
        pub ess: f64,
        pub kl: f64,
        pub k_hat: f64,
        pub has_k_hat: i32,
    }

    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub struct LwfEpochReport {
        pub epoch: usize,
        pub max_epochs: usize,
        pub train_loss: f64,
        pub val_loss: f64,
        pub best_val_loss: f64,
        pub lr: f64,
        pub skipped_steps: u64,
    }

    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub struct LwfFitReport {
        pub n_samples: usize,
        pub skipped_samples: usize,
        pub ess: f64,
        pub log_mean_weight: f64,
        pub components: usize,
        pub em_iterations: usize,
        pub em_mean_log_likelihood: f64,
        pub em_bic: f64,
        pub epochs: usize,
        pub best_epoch: usize,
        pub steps: u64,
        pub skipped_steps: u64,
        pub initial_val_loss: f64,
        pub best_val_loss: f64,
        pub stop_reason: i32,
    }

    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub struct LwfRefineConfig {
        pub struct_size: usize,
        pub initial_samples: usize,
        pub samples_per_round: usize,
        pub check_samples: usize,
        pub max_calls: usize,
        pub max_rounds: usize,
        pub ess_fraction: f64,
        pub target_ess: f64,
        pub max_k_hat: f64,
        pub log_z_tol: f64,
        pub warm_start: i32,
        pub bounded: i32,
        pub affine: i32,
        pub non_finite: i32,
        pub max_components: usize,
        pub max_epochs: usize,
        pub batch_size: usize,
        pub patience: usize,
        pub learning_rate: f64,
        pub seed: u64,
        pub max_kl: f64,
    }

    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub struct LwfRefineReport {
        pub status: i32,
        pub has_k_hat: i32,
        pub rounds: usize,
        pub calls: usize,
        pub draws: usize,
        pub log_z: f64,
        pub log_z_se: f64,
        pub ess: f64,
        pub k_hat: f64,
        pub beta: f64,
        pub components: usize,
        pub epochs: usize,
        pub best_epoch: usize,
    }

    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub struct LwfRefineRound {
        pub round: usize,
        pub calls: usize,
        pub draws: usize,
        pub beta: f64,
        pub next_beta: f64,
        pub log_z: f64,
        pub log_z_se: f64,
        pub ess: f64,
        pub k_hat: f64,
        pub has_k_hat: i32,
        pub still_improving: i32,
        pub components: usize,
        pub epochs: usize,
        pub best_epoch: usize,
    }

    pub type LwfLogLikelihoodFn =
        Option<unsafe extern "C" fn(*const f64, usize, usize, *mut f64, *mut c_void) -> c_int>;
    pub type LwfProgressFn =
        Option<unsafe extern "C" fn(*const LwfEpochReport, *mut c_void) -> c_int>;
    pub type LwfRefineProgressFn =
        Option<unsafe extern "C" fn(*const LwfRefineRound, *mut c_void) -> c_int>;
    pub type LwfCheckpointFn =
        Option<unsafe extern "C" fn(*const u8, usize, usize, *mut c_void) -> c_int>;

    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct LwfFitCheckpointInfo {
        pub epoch: usize,
        pub n_samples: usize,
        pub dim: usize,
        pub model_bytes: usize,
        pub work_bytes: usize,
        pub checkpoint_bytes: usize,
    }

    /// Declares each exported function once: a field of the resolved table and a wrapper with
    /// the header's signature.
    macro_rules! abi {
        ($( fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty; )*) => {
            struct Api {
                $($name: unsafe extern "C" fn($($ty),*) -> $ret,)*
            }

            fn api() -> &'static Api {
                static API: OnceLock<Api> = OnceLock::new();
                API.get_or_init(|| {
                    let lib = crate::common::loaded_cdylib();
                    Api {
                        $($name: {
                            // SAFETY: the field's type is the header's declaration of the
                            // symbol (the header test keeps the header equal to the library).
                            let f = unsafe { lib.get(concat!(stringify!($name), "\0").as_bytes()) };
                            *f.expect(stringify!($name))
                        },)*
                    }
                })
            }

            $(
                pub unsafe fn $name($($arg: $ty),*) -> $ret {
                    // SAFETY: the caller's contract is the exported function's.
                    unsafe { (api().$name)($($arg),*) }
                }
            )*
        };
    }

    abi! {
        fn lwf_adam_default(out: *mut LwfAdam) -> LwfStatus;
        fn lwf_fit_checkpoint_inspect(bytes: *const u8, len: usize, out_info: *mut LwfFitCheckpointInfo) -> LwfStatus;
        fn lwf_fit_checkpoint_size(shape: *const LwfShape, config: *const LwfFitConfig, n_samples: usize, out_bytes: *mut usize) -> LwfStatus;
        fn lwf_fit_config_default(out: *mut LwfFitConfig) -> LwfStatus;
        fn lwf_fit_model_size(shape: *const LwfShape, config: *const LwfFitConfig, out: *mut usize) -> LwfStatus;
        fn lwf_fit_work_size(shape: *const LwfShape, config: *const LwfFitConfig, n: usize, out: *mut usize) -> LwfStatus;
        fn lwf_importance_summary(log_w: *const f64, n: usize, scratch: *mut f64, scratch_len: usize, out: *mut LwfImportanceSummary) -> LwfStatus;
        fn lwf_model_adam_reset(model: *mut LwfModel) -> LwfStatus;
        fn lwf_model_adam_step(model: *mut LwfModel, adam: *const LwfAdam, grad: *const f64, grad_len: usize) -> LwfStatus;
        fn lwf_model_fit_prior_box(
            mem: *mut c_void, mem_len: usize, shape: *const LwfShape, config: *const LwfFitConfig,
            lo: *const f64, lo_len: usize, hi: *const f64, hi_len: usize, n_samples: usize,
            log_likelihood: LwfLogLikelihoodFn, log_likelihood_user: *mut c_void,
            progress: LwfProgressFn, progress_user: *mut c_void, work: *mut c_void,
            work_len: usize, out_report: *mut LwfFitReport, out_model: *mut *mut LwfModel,
        ) -> LwfStatus;
        fn lwf_model_fit_prior_box_resumable(
            mem: *mut c_void, mem_len: usize, shape: *const LwfShape, config: *const LwfFitConfig,
            lo: *const f64, lo_len: usize, hi: *const f64, hi_len: usize, n_samples: usize,
            log_likelihood: LwfLogLikelihoodFn, log_likelihood_user: *mut c_void,
            progress: LwfProgressFn, progress_user: *mut c_void,
            checkpoint: LwfCheckpointFn, checkpoint_user: *mut c_void,
            checkpoint_buf: *mut c_void, checkpoint_len: usize,
            work: *mut c_void, work_len: usize, out_report: *mut LwfFitReport,
            out_model: *mut *mut LwfModel) -> LwfStatus;
        fn lwf_model_fit_resume(
            mem: *mut c_void, mem_len: usize, bytes: *const u8, len: usize,
            progress: LwfProgressFn, progress_user: *mut c_void,
            checkpoint: LwfCheckpointFn, checkpoint_user: *mut c_void,
            checkpoint_buf: *mut c_void, checkpoint_len: usize,
            work: *mut c_void, work_len: usize, out_report: *mut LwfFitReport,
            out_model: *mut *mut LwfModel) -> LwfStatus;
        fn lwf_model_fit_samples(
            mem: *mut c_void, mem_len: usize, shape: *const LwfShape, config: *const LwfFitConfig,
            theta: *const f64, theta_len: usize, log_weights: *const f64, n: usize,
            progress: LwfProgressFn, progress_user: *mut c_void, work: *mut c_void,
            work_len: usize, out_report: *mut LwfFitReport, out_model: *mut *mut LwfModel,
        ) -> LwfStatus;
        fn lwf_model_fit_samples_in_box(
            mem: *mut c_void, mem_len: usize, shape: *const LwfShape, config: *const LwfFitConfig,
            lo: *const f64, lo_len: usize, hi: *const f64, hi_len: usize,
            theta: *const f64, theta_len: usize, log_weights: *const f64, n: usize,
            progress: LwfProgressFn, progress_user: *mut c_void, work: *mut c_void,
            work_len: usize, out_report: *mut LwfFitReport, out_model: *mut *mut LwfModel,
        ) -> LwfStatus;
        fn lwf_model_forward(model: *mut LwfModel, z: *const f64, z_len: usize, out_theta: *mut f64, theta_len: usize, out_log_det: *mut f64, n: usize) -> LwfStatus;
        fn lwf_model_fit_samples_resumable(
            mem: *mut c_void, mem_len: usize, shape: *const LwfShape, config: *const LwfFitConfig,
            lo: *const f64, lo_len: usize, hi: *const f64, hi_len: usize,
            theta: *const f64, theta_len: usize, log_weights: *const f64, n: usize,
            progress: LwfProgressFn, progress_user: *mut c_void,
            checkpoint: LwfCheckpointFn, checkpoint_user: *mut c_void,
            checkpoint_buf: *mut c_void, checkpoint_len: usize,
            work: *mut c_void, work_len: usize, out_report: *mut LwfFitReport,
            out_model: *mut *mut LwfModel) -> LwfStatus;
        fn lwf_model_get_params(model: *const LwfModel, out: *mut f64, len: usize) -> LwfStatus;
        fn lwf_model_init(mem: *mut c_void, mem_len: usize, shape: *const LwfShape, seed: u64, out_model: *mut *mut LwfModel) -> LwfStatus;
        fn lwf_model_inspect(bytes: *const u8, bytes_len: usize, out_shape: *mut LwfShape) -> LwfStatus;
        fn lwf_model_inverse(model: *mut LwfModel, theta: *const f64, theta_len: usize, out_z: *mut f64, z_len: usize, out_log_det: *mut f64, n: usize) -> LwfStatus;
        fn lwf_model_load(mem: *mut c_void, mem_len: usize, bytes: *const u8, bytes_len: usize, out_model: *mut *mut LwfModel) -> LwfStatus;
        fn lwf_model_log_prob(model: *mut LwfModel, theta: *const f64, theta_len: usize, out: *mut f64, n: usize) -> LwfStatus;
        fn lwf_model_log_prob_ws(model: *const LwfModel, theta: *const f64, theta_len: usize, out: *mut f64, n: usize, ws: *mut f64, ws_len: usize) -> LwfStatus;
        fn lwf_model_loss_grad(model: *mut LwfModel, theta: *const f64, theta_len: usize, weights: *const f64, weights_len: usize, out_grad: *mut f64, grad_len: usize, out_loss: *mut f64) -> LwfStatus;
        fn lwf_model_loss_grad_accumulate(model: *mut LwfModel, theta: *const f64, theta_len: usize, weights: *const f64, weights_len: usize, scale: f64, inout_grad: *mut f64, grad_len: usize, inout_loss: *mut f64) -> LwfStatus;
        fn lwf_model_sample(model: *mut LwfModel, rng: *mut LwfRng, out_theta: *mut f64, theta_len: usize, out_log_q: *mut f64, n: usize) -> LwfStatus;
        fn lwf_model_sample_ws(model: *const LwfModel, rng: *mut LwfRng, out_theta: *mut f64, theta_len: usize, out_log_q: *mut f64, n: usize, ws: *mut f64, ws_len: usize) -> LwfStatus;
        fn lwf_model_save(model: *const LwfModel, out: *mut u8, len: usize, written: *mut usize) -> LwfStatus;
        fn lwf_model_set_affine(model: *mut LwfModel, shift: *const f64, dim: usize, chol: *const f64, chol_len: usize) -> LwfStatus;
        fn lwf_model_set_box(model: *mut LwfModel, lo: *const f64, hi: *const f64, dim: usize) -> LwfStatus;
        fn lwf_model_set_gaussian_base(model: *mut LwfModel, loc: *const f64, loc_len: usize, scale: *const f64, scale_len: usize) -> LwfStatus;
        fn lwf_model_set_mixture_base(model: *mut LwfModel, w: *const f64, w_len: usize, mu: *const f64, mu_len: usize, s: *const f64, s_len: usize) -> LwfStatus;
        fn lwf_model_set_params(model: *mut LwfModel, params: *const f64, len: usize) -> LwfStatus;
        fn lwf_model_shape(model: *const LwfModel, out: *mut LwfShape) -> LwfStatus;
        fn lwf_refine_ask(refine: *mut LwfRefine, out_theta: *mut f64, capacity_rows: usize, out_n: *mut usize) -> LwfStatus;
        fn lwf_refine_batch_capacity(refine: *const LwfRefine, out_rows: *mut usize) -> LwfStatus;
        fn lwf_refine_checkpoint(refine: *const LwfRefine, out: *mut u8, out_len: usize, out_written: *mut usize) -> LwfStatus;
        fn lwf_refine_checkpoint_size(refine: *const LwfRefine, out_bytes: *mut usize) -> LwfStatus;
        fn lwf_refine_config_default(dim: usize, out: *mut LwfRefineConfig) -> LwfStatus;
        fn lwf_refine_init(work: *mut c_void, work_len: usize, shape: *const LwfShape, lo: *const f64, hi: *const f64, dim: usize, config: *const LwfRefineConfig, out: *mut *mut LwfRefine) -> LwfStatus;
        fn lwf_refine_model_size(refine: *const LwfRefine, out: *mut usize) -> LwfStatus;
        fn lwf_refine_restore(work: *mut c_void, work_len: usize, bytes: *const u8, len: usize, dim: usize, out_refine: *mut *mut LwfRefine) -> LwfStatus;
        fn lwf_refine_report(refine: *const LwfRefine, out: *mut LwfRefineReport) -> LwfStatus;
        fn lwf_refine_run(refine: *mut LwfRefine, log_likelihood: LwfLogLikelihoodFn, batch: usize, user: *mut c_void, progress: LwfRefineProgressFn, progress_user: *mut c_void) -> LwfStatus;
        fn lwf_refine_status(refine: *const LwfRefine, out: *mut i32) -> LwfStatus;
        fn lwf_refine_tell(refine: *mut LwfRefine, loglik: *const f64, n: usize, out_round: *mut LwfRefineRound) -> LwfStatus;
        fn lwf_refine_work_size(shape: *const LwfShape, config: *const LwfRefineConfig, out: *mut usize) -> LwfStatus;
        fn lwf_refine_write_model(refine: *const LwfRefine, mem: *mut c_void, mem_len: usize, out_model: *mut *mut LwfModel) -> LwfStatus;
        fn lwf_rng_init(out: *mut LwfRng, seed: u64) -> LwfStatus;
        fn lwf_rng_jump(rng: *mut LwfRng) -> LwfStatus;
        fn lwf_shape_default(dim: usize, hidden: usize, couplings: usize, out: *mut LwfShape) -> LwfStatus;
        fn lwf_shape_model_size(shape: *const LwfShape, out: *mut usize) -> LwfStatus;
        fn lwf_shape_param_count(shape: *const LwfShape, out: *mut usize) -> LwfStatus;
        fn lwf_shape_serialized_size(shape: *const LwfShape, out: *mut usize) -> LwfStatus;
        fn lwf_shape_validate(shape: *const LwfShape) -> LwfStatus;
        fn lwf_shape_workspace_count(shape: *const LwfShape, out: *mut usize) -> LwfStatus;
    }

    // The four functions without a status are safe in the ABI crate; so are their mirrors.
    pub fn lwf_model_align() -> usize {
        static F: OnceLock<unsafe extern "C" fn() -> usize> = OnceLock::new();
        let f = F.get_or_init(|| {
            // SAFETY: the header's declaration.
            *unsafe { crate::common::loaded_cdylib().get(b"lwf_model_align\0") }.expect("symbol")
        });
        // SAFETY: no arguments, no preconditions.
        unsafe { f() }
    }

    pub fn lwf_version() -> u32 {
        static F: OnceLock<unsafe extern "C" fn() -> u32> = OnceLock::new();
        let f = F.get_or_init(|| {
            // SAFETY: the header's declaration.
            *unsafe { crate::common::loaded_cdylib().get(b"lwf_version\0") }.expect("symbol")
        });
        // SAFETY: no arguments, no preconditions.
        unsafe { f() }
    }

    pub fn lwf_version_string() -> *const c_char {
        static F: OnceLock<unsafe extern "C" fn() -> *const c_char> = OnceLock::new();
        let f = F.get_or_init(|| {
            // SAFETY: the header's declaration.
            *unsafe { crate::common::loaded_cdylib().get(b"lwf_version_string\0") }.expect("symbol")
        });
        // SAFETY: no arguments, no preconditions.
        unsafe { f() }
    }

    pub fn lwf_status_message(status: c_int) -> *const c_char {
        static F: OnceLock<unsafe extern "C" fn(c_int) -> *const c_char> = OnceLock::new();
        let f = F.get_or_init(|| {
            // SAFETY: the header's declaration.
            *unsafe { crate::common::loaded_cdylib().get(b"lwf_status_message\0") }.expect("symbol")
        });
        // SAFETY: any int is valid.
        unsafe { f(status) }
    }
}

mod props;

use props::{SplitMix, Tally};
use std::time::Instant;

/// Cases per target (the total is 150,000: loader 60,000, ABI 60,000, fits 30,000).
fn cases(default: usize) -> usize {
    std::env::var("LWFLOW_RANDOMIZED_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `n` random cases of `target` (bytes of up to `max_len` from `seed`); on a failure,
/// says which case and its bytes before the panic continues.
fn run_cases(
    name: &str,
    seed: u64,
    n: usize,
    mut case: impl FnMut(&mut SplitMix) -> Vec<u8>,
    target: fn(&[u8], &mut Tally),
) -> Tally {
    let start = Instant::now();
    let mut rng = SplitMix(seed);
    let mut tally = Tally::default();
    for i in 0..n {
        let data = case(&mut rng);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            target(&data, &mut tally);
        }));
        if let Err(e) = r {
            eprintln!(
                "{name}: case {i} of seed {seed:#x} failed; its bytes: {}",
                data.iter().map(|b| format!("{b:02x}")).collect::<String>()
            );
            std::panic::resume_unwind(e);
        }
    }
    eprintln!(
        "{name}: {n} cases in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    if std::env::var_os("LWFLOW_TALLY").is_some() {
        for (call, counts) in &tally.calls {
            let total: u64 = counts.iter().sum();
            eprintln!(
                "  {call:32} {total:8} calls, {:8} LWF_OK, by status {counts:?}",
                counts[0]
            );
        }
    }
    tally
}

/// Panics unless `call` returned `LWF_OK` at least `min` times.
fn reached(tally: &Tally, call: &str, min: u64) {
    let ok = tally.count(call, props::check::OK);
    assert!(
        ok >= min,
        "{call}: {ok} LWF_OK of {} calls (want >= {min}); the cases no longer reach it",
        tally.total(call)
    );
}

/// `LWFLOW_CASE=<target>:<hex>` runs one case (a failure's bytes, as printed).
#[test]
fn one_case() {
    let Ok(case) = std::env::var("LWFLOW_CASE") else {
        return;
    };
    let (target, hex) = case.split_once(':').expect("<target>:<hex>");
    let data: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    let run: fn(&[u8], &mut Tally) = match target {
        "loader" => props::loader::run,
        "abi" => props::abi::run,
        _ => props::fit::run,
    };
    let mut tally = Tally::default();
    run(&data, &mut tally);
    if std::env::var_os("LWFLOW_TALLY").is_some() {
        for (call, counts) in &tally.calls {
            eprintln!("  {call:32} by status {counts:?}");
        }
    }
}

/// A loader case: a seed file (valid, of either width) with a random mode byte and up to four
/// random changes (a byte set, a bit flipped, the file cut short or grown by a byte), as a
/// mutating fuzzer makes them; one case in eight is random bytes.
fn loader_case(rng: &mut SplitMix, seeds: &[Vec<u8>]) -> Vec<u8> {
    if rng.next_u64() % 8 == 0 {
        return rng.bytes(160);
    }
    let mut d = seeds[(rng.next_u64() % seeds.len() as u64) as usize].clone();
    d[0] = (rng.next_u64() % 8) as u8;
    for _ in 0..rng.next_u64() % 5 {
        let r = rng.next_u64();
        let at = 1 + (r >> 8) as usize % (d.len() - 1).max(1);
        match r % 8 {
            0..=3 if at < d.len() => d[at] = (r >> 40) as u8,
            4 | 5 if at < d.len() => d[at] ^= 1 << ((r >> 40) % 8),
            6 => d.truncate(at),
            _ => d.insert(at.min(d.len()), (r >> 40) as u8),
        }
    }
    d
}

#[test]
fn loader_properties() {
    let seeds: Vec<Vec<u8>> = props::seeds::loader().into_iter().map(|(_, d)| d).collect();
    let t = run_cases(
        "loader",
        0x10AD,
        cases(60_000),
        |rng| loader_case(rng, &seeds),
        props::loader::run,
    );
    let n = cases(60_000) as u64;
    // Both the refusals and the loads happen, and the loaded models are evaluated.
    assert!(t.count("lwf_model_inspect", props::check::BAD_FORMAT) > n / 4);
    reached(&t, "lwf_model_inspect", n / 20);
    reached(&t, "lwf_model_load", n / 20);
    reached(&t, "lwf_model_sample", n / 20);
}

#[test]
fn abi_properties() {
    let t = run_cases(
        "abi",
        0xAB1,
        cases(60_000),
        |r| r.bytes(300),
        props::abi::run,
    );
    let n = cases(60_000) as u64;
    for (call, share) in [
        ("lwf_model_init", 4),
        ("lwf_model_log_prob", 40),
        ("lwf_model_log_prob_ws", 40),
        ("lwf_model_sample", 80),
        ("lwf_model_sample_ws", 200),
        ("lwf_model_forward", 200),
        ("lwf_model_inverse", 200),
        ("lwf_model_loss_grad", 80),
        ("lwf_model_loss_grad_accumulate", 400),
        ("lwf_model_set_params", 400),
        ("lwf_model_set_gaussian_base", 2000),
        ("lwf_model_set_mixture_base", 4000),
        ("lwf_model_adam_step", 400),
        ("lwf_model_save", 100),
        ("lwf_model_load", 400),
        ("lwf_importance_summary", 400),
        ("lwf_rng_jump", 400),
    ] {
        reached(&t, call, n / share);
    }
    assert!(t.count("lwf_model_log_prob", props::check::INVALID_MODEL) > 0);
    assert!(t.count("lwf_model_log_prob", props::check::OVERLAPPING_BUFFERS) > 0);
    assert!(t.count("lwf_model_log_prob", props::check::NON_FINITE) > 0);
}

#[test]
fn fit_properties() {
    let t = run_cases(
        "fit",
        0xF17,
        cases(30_000),
        |r| r.bytes(700),
        props::fit::run,
    );
    let n = cases(30_000) as u64;
    for (call, share) in [
        ("lwf_model_fit_prior_box", 400),
        ("lwf_model_fit_samples", 400),
        ("lwf_model_fit_samples_in_box", 2000),
        ("lwf_refine_init", 100),
        ("lwf_refine_tell", 100),
        ("lwf_refine_write_model", 2000),
        ("lwf_model_fit_prior_box_resumable", 100),
        ("lwf_model_fit_samples_resumable", 100),
        ("lwf_fit_checkpoint_size", 20),
        ("lwf_fit_checkpoint_inspect", 20),
        ("lwf_model_fit_resume", 100),
        ("lwf_refine_checkpoint_size", 40),
        ("lwf_refine_checkpoint", 40),
        ("lwf_refine_restore", 100),
    ] {
        reached(&t, call, n / share);
    }
    // Damaged checkpoints are refused, and the checkpoint callback's stops happen.
    use props::check::{BAD_FORMAT, CANCELLED};
    assert!(t.count("lwf_model_fit_resume", BAD_FORMAT) > 0);
    assert!(t.count("lwf_refine_restore", BAD_FORMAT) > 0);
    assert!(t.count("lwf_model_fit_prior_box_resumable", CANCELLED) > 0);
    assert!(t.count("lwf_model_fit_samples_resumable", CANCELLED) > 0);
}

#[test]
fn seed_corpus() {
    let out = std::env::var_os("LWFLOW_WRITE_SEEDS").map(std::path::PathBuf::from);
    let mut tally = Tally::default();
    for (target, seeds) in props::seeds::all() {
        let run: fn(&[u8], &mut Tally) = match target {
            "loader" => props::loader::run,
            "abi" => props::abi::run,
            _ => props::fit::run,
        };
        for (name, data) in &seeds {
            run(data, &mut tally);
            if let Some(dir) = &out {
                let dir = dir.join(target);
                std::fs::create_dir_all(&dir).expect("seed dir");
                std::fs::write(dir.join(name), data).expect("write seed");
            }
        }
    }
    // The seed files are models of both widths that load through the ABI.
    reached(&tally, "lwf_model_load", 16);
    reached(&tally, "lwf_model_log_prob", 16);
}

/// The ABI and fit seeds decode as their comments say: they reach the successful paths (a
/// model, its evaluations, each kind of fit and its resumable form, a resumption, a finished
/// refinement, a refinement checkpointed and restored), not only the checks.
#[test]
fn seeds_decode_as_intended() {
    let mut tally = Tally::default();
    for (_, data) in props::seeds::abi() {
        props::abi::run(&data, &mut tally);
    }
    for call in [
        "lwf_model_init",
        "lwf_model_log_prob",
        "lwf_model_sample",
        "lwf_model_loss_grad",
        "lwf_model_save",
    ] {
        reached(&tally, call, 1);
    }
    let mut tally = Tally::default();
    for (_, data) in props::seeds::fit() {
        props::fit::run(&data, &mut tally);
    }
    for call in [
        "lwf_model_fit_prior_box",
        "lwf_model_fit_samples",
        "lwf_model_fit_samples_in_box",
        "lwf_refine_init",
        "lwf_refine_write_model",
        "lwf_model_fit_prior_box_resumable",
        "lwf_model_fit_samples_resumable",
        "lwf_fit_checkpoint_size",
        "lwf_fit_checkpoint_inspect",
        "lwf_model_fit_resume",
        "lwf_refine_checkpoint_size",
        "lwf_refine_checkpoint",
        "lwf_refine_restore",
    ] {
        reached(&tally, call, 1);
    }
}

/// Inputs on which a fuzz target once failed (`fuzz/regressions/<target>/<name>`, committed as
/// the fuzzer wrote them), replayed through the same checks: each must now pass.
/// `fit/evidence-subnormal-variance`: a refinement's combined evidence was −∞ ± NaN with
/// `LWF_OK` (a round's subnormal variance overflowed its inverse).
/// `fit/adam-second-moment-overflow`: a resumable samples fit whose squared gradient
/// overflowed (Adam's second moment +∞) handed over a checkpoint that
/// `lwf_fit_checkpoint_inspect` refused (`LWF_BAD_FORMAT`): the fit could not be resumed.
/// `fit/ess-above-n`: a resealed checkpoint (bytes changed, checksum valid again) stored a Kish
/// ESS of 123 for 25 samples; `lwf_model_fit_resume` resumed it and reported that ESS with
/// `LWF_OK`.
/// `fit/resumed-box-lo-above-hi`: a resealed checkpoint whose trained parameters carried a box
/// of their own (lo > hi) passed inspect and resumed with `LWF_OK` into a model every
/// evaluation refused.
/// `fit/first-layout-config-sizes-a-box`: a defect of the harness, not of the library: a
/// samples fit given a first-layout config (no `bounded` field, so the ABI fits on the box) was
/// judged by the harness's own `bounded` = 0, under which a checkpoint buffer 8 bytes shorter
/// than `lwf_fit_checkpoint_size` must be refused; on the box the fit needs those bytes only
/// for a box it does not have, so it rightly took the buffer.
#[test]
fn fuzz_regressions_replay() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions");
    let mut tally = Tally::default();
    let mut n = 0;
    for (target, run) in [
        ("loader", props::loader::run as fn(&[u8], &mut Tally)),
        ("abi", props::abi::run),
        ("fit", props::fit::run),
    ] {
        let Ok(dir) = std::fs::read_dir(root.join(target)) else {
            continue;
        };
        for entry in dir {
            let data = std::fs::read(entry.expect("entry").path()).expect("read regression");
            run(&data, &mut tally);
            n += 1;
        }
    }
    assert!(n >= 1, "no regression inputs under {}", root.display());
}
