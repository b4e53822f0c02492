//! Resumable fits (`fit_resumable`, `FitCheckpoint`, `resume_fit`): a fit checkpointed after
//! every stage and resumed from each checkpoint in fresh memory ends bit-identical to the
//! uninterrupted fit (parameters, report, the later epochs' figures and checkpoints), and the
//! checkpoints change nothing about the fit itself; a fit stopped by its checkpoint callback
//! resumes to the same end; every truncation and every single-byte corruption of a checkpoint
//! is a typed format error, and bytes altered behind a valid checksum never panic.

use lwflow::format::crc32;
use lwflow::rand_core::SeedableRng;
use lwflow::train::{
    fit_in_box, fit_resumable, normalise_log_weights, resume_fit, sample_box, BaseChoice,
    CheckpointInfo, FitBuffers, FitCheckpoint, FitConfig, FitData, FitMemory, FitStage,
    NonFinitePolicy, ResumeBuffers, StopReason, TrainConfig,
};
use lwflow::{Error, FormatError, Real, Shape};
use rand_xoshiro::Xoshiro256PlusPlus;

const LO: [f64; 2] = [-4.0, -4.0];
const HI: [f64; 2] = [4.0, 4.0];

/// Two correlated Gaussian modes.
fn log_likelihood(t: &[f64]) -> f64 {
    let a = -0.5 * ((t[0] - 1.0) / 0.6).powi(2) - 0.5 * ((t[1] + 1.0) / 0.5).powi(2);
    let b = -0.5 * ((t[0] + 1.5) / 0.5).powi(2) - 0.5 * ((t[1] - 1.5) / 0.7).powi(2);
    let m = a.max(b);
    m + (1.0 + (-(a - b).abs()).exp()).ln() + 0.2 * t[0] * t[1]
}

/// Prior samples on the box, their log-likelihoods and weights.
struct Data<T> {
    theta: Vec<T>,
    log_l: Vec<f64>,
    weights: Vec<T>,
    stats: lwflow::train::WeightStats,
}

fn data<T: Real>(n: usize) -> Data<T> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
    let mut theta = vec![T::ZERO; n * 2];
    let (lo, hi) = (LO.map(T::from_f64), HI.map(T::from_f64));
    sample_box(&lo, &hi, &mut rng, &mut theta).unwrap();
    let log_l: Vec<f64> = theta
        .chunks(2)
        .map(|t| log_likelihood(&[t[0].to_f64(), t[1].to_f64()]))
        .collect();
    let mut weights = vec![T::ZERO; n];
    let stats = normalise_log_weights(&log_l, NonFinitePolicy::Error, 1.0, &mut weights).unwrap();
    Data {
        theta,
        log_l,
        weights,
        stats,
    }
}

/// A fit that trains for a while: EM base, early stopping on the box with the affine map.
fn setup(base: BaseChoice, patience: usize, epochs: usize) -> (Shape, FitConfig) {
    let template = Shape::new(2, 8, 2).with_bounded(true).with_affine(true);
    let cfg = FitConfig {
        base,
        em: Default::default(),
        train: TrainConfig {
            max_epochs: epochs,
            batch_size: 64,
            patience,
            ..Default::default()
        },
        init_seed: 3,
    };
    (template, cfg)
}

/// What a fit did, bit for bit: parameters, report, every epoch's figures, every checkpoint.
#[derive(Debug, PartialEq)]
struct Outcome {
    params: Vec<u64>,
    report: String,
    epochs: Vec<[u64; 3]>,
    checkpoints: Vec<(FitStage, Vec<u8>)>,
}

fn bits<T: Real>(v: &[T]) -> Vec<u64> {
    v.iter().map(|x| x.to_f64().to_bits()).collect()
}

/// Fit memory for `n` samples.
struct Memory<T> {
    params: Vec<T>,
    reals: Vec<T>,
    order: Vec<u32>,
    em: Vec<f64>,
}

impl<T: Real> Memory<T> {
    fn new(template: &Shape, cfg: &FitConfig, n: usize) -> Self {
        let m = FitMemory::new(template, cfg, n);
        Memory {
            params: vec![T::ZERO; cfg.base.max_shape(template).param_len()],
            reals: vec![T::ZERO; m.reals],
            order: vec![0; m.order],
            em: vec![0.0; m.em],
        }
    }
    fn split(&mut self, t: &Shape, c: &FitConfig, n: usize) -> (&mut [T], FitBuffers<'_, T>) {
        let b = FitBuffers::split(t, c, n, &mut self.reals, &mut self.order, &mut self.em);
        (&mut self.params, b.unwrap())
    }
}

/// The uninterrupted fit with a checkpoint at every stage; `stop_at` makes the checkpoint
/// callback ask to stop after that epoch.
fn uninterrupted<T: Real>(
    template: &Shape,
    cfg: &FitConfig,
    d: &Data<T>,
    stop_at: Option<usize>,
) -> Outcome {
    let n = d.weights.len();
    let mut mem = Memory::<T>::new(template, cfg, n);
    let (params, buf) = mem.split(template, cfg, n);
    let (mut epochs, mut checkpoints) = (Vec::new(), Vec::new());
    let data = FitData {
        samples: &d.theta,
        weights: &d.weights,
        log_values: &d.log_l,
        stats: Some(d.stats),
    };
    let report = fit_resumable(
        template,
        cfg,
        Some((&LO, &HI)),
        params,
        data,
        buf,
        |e| {
            epochs.push([e.epoch as u64, e.val_loss.to_bits(), e.train_loss.to_bits()]);
            true
        },
        |c: &FitCheckpoint<'_, T>| {
            let mut out = vec![0u8; FitCheckpoint::<T>::max_len(template, cfg, n)];
            let len = c.to_bytes(&mut out).expect("fits in max_len");
            assert_eq!(len, c.byte_len());
            out.truncate(len);
            checkpoints.push((c.stage(), out));
            stop_at.is_none_or(|k| c.stage() != FitStage::Epoch(k))
        },
    )
    .expect("fit");
    Outcome {
        params: bits(&mem.params[..report.shape.param_len()]),
        report: format!("{report:?}"),
        epochs,
        checkpoints,
    }
}

/// Resumes from `bytes` in fresh memory sized from the checkpoint alone.
fn resumed<T: Real>(bytes: &[u8]) -> Result<Outcome, Error> {
    let info = CheckpointInfo::read(bytes)?;
    let (t, c, n) = (info.template, info.cfg, info.n);
    let mut mem = Memory::<T>::new(&t, &c, n);
    let (nr, nf) = info.data_len();
    let (mut reals, mut f64s) = (vec![T::ZERO; nr], vec![0.0; nf]);
    let data = ResumeBuffers::split(&info, &mut reals, &mut f64s)?;
    let (params, buf) = mem.split(&t, &c, n);
    let (mut epochs, mut checkpoints) = (Vec::new(), Vec::new());
    let report = resume_fit(
        bytes,
        params,
        data,
        buf,
        |e| {
            epochs.push([e.epoch as u64, e.val_loss.to_bits(), e.train_loss.to_bits()]);
            true
        },
        |c: &FitCheckpoint<'_, T>| {
            let mut out = vec![0u8; c.byte_len()];
            c.to_bytes(&mut out).expect("exact length");
            checkpoints.push((c.stage(), out));
            true
        },
    )?;
    Ok(Outcome {
        params: bits(&mem.params[..report.shape.param_len()]),
        report: format!("{report:?}"),
        epochs,
        checkpoints,
    })
}

/// Resuming from every checkpoint of `whole` gives its parameters and report, and the
/// epochs and checkpoints after the resumed one.
fn check_every_resume<T: Real>(whole: &Outcome) {
    assert!(whole.checkpoints.len() >= 3, "{:?}", whole.report);
    assert_eq!(whole.checkpoints[0].0, FitStage::Samples);
    for (i, (stage, bytes)) in whole.checkpoints.iter().enumerate() {
        let back = resumed::<T>(bytes).unwrap_or_else(|e| panic!("{stage:?}: {e}"));
        assert_eq!(back.params, whole.params, "{stage:?}: parameters");
        assert_eq!(back.report, whole.report, "{stage:?}: report");
        let done = match stage {
            FitStage::Samples => 0,
            FitStage::Epoch(k) => *k,
        };
        assert_eq!(back.epochs, whole.epochs[done..], "{stage:?}: later epochs");
        assert!(back.checkpoints == whole.checkpoints[i + 1..], "{stage:?}");
    }
}

#[test]
fn resuming_after_every_epoch_is_bit_identical_and_checkpoints_change_nothing() {
    for (base, patience) in [(BaseChoice::Auto(3), 0), (BaseChoice::Gaussian, 3)] {
        let (template, cfg) = setup(base, patience, 12);
        let d = data::<f64>(400);
        let whole = uninterrupted(&template, &cfg, &d, None);
        check_every_resume::<f64>(&whole);
        // The plain fit, without checkpoints: the same bits.
        let mut mem = Memory::<f64>::new(&template, &cfg, 400);
        let (params, buf) = mem.split(&template, &cfg, 400);
        let r = fit_in_box(
            &template,
            &cfg,
            &LO,
            &HI,
            params,
            &d.theta,
            &d.weights,
            buf,
            |_| true,
        )
        .unwrap();
        assert_eq!(bits(&mem.params[..r.shape.param_len()]), whole.params);
        assert_eq!(format!("{r:?}"), whole.report);
    }
}

#[test]
fn f32_fits_resume_bit_identically_and_widths_are_checked() {
    let (template, cfg) = setup(BaseChoice::Mixture(2), 4, 8);
    let whole = uninterrupted(&template, &cfg, &data::<f32>(300), None);
    check_every_resume::<f32>(&whole);
    let bytes = &whole.checkpoints[2].1;
    assert_eq!(CheckpointInfo::read(bytes).map(|i| i.width), Ok(4));
    assert_eq!(
        resumed::<f64>(bytes).err(),
        Some(Error::Format(FormatError::BadFloatWidth))
    );
}

#[test]
fn a_fit_stopped_by_its_checkpoint_callback_resumes_to_the_same_end() {
    let (template, cfg) = setup(BaseChoice::Auto(2), 0, 10);
    let d = data::<f64>(300);
    let whole = uninterrupted(&template, &cfg, &d, None);
    let stopped = uninterrupted(&template, &cfg, &d, Some(4));
    assert!(stopped
        .report
        .contains(&format!("{:?}", StopReason::Cancelled)));
    assert_eq!(stopped.checkpoints.len(), 5);
    let (stage, bytes) = stopped.checkpoints.last().unwrap();
    assert_eq!(*stage, FitStage::Epoch(4));
    assert!(*bytes == whole.checkpoints[4].1);
    let back = resumed::<f64>(bytes).unwrap();
    assert_eq!(back.params, whole.params);
    assert_eq!(back.report, whole.report);
    // A stop at the samples stage, before any model exists, is a callback error.
    let mut mem = Memory::<f64>::new(&template, &cfg, 300);
    let (params, buf) = mem.split(&template, &cfg, 300);
    let data = FitData::new(&d.theta, &d.weights);
    let r = fit_resumable(
        &template,
        &cfg,
        Some((&LO, &HI)),
        params,
        data,
        buf,
        |_| true,
        |_| false,
    );
    assert_eq!(r.err(), Some(Error::Callback));
}

/// A checkpoint of a small fit after its second epoch.
fn small_checkpoint() -> Vec<u8> {
    let (template, cfg) = setup(BaseChoice::Auto(2), 0, 3);
    let whole = uninterrupted(&template, &cfg, &data::<f64>(120), None);
    whole.checkpoints[2].1.clone()
}

/// `bytes` with the f64 at `at` set to `v` and the checksum made valid again.
fn resealed_with(bytes: &[u8], at: usize, v: f64) -> Vec<u8> {
    let (mut b, len) = (bytes.to_vec(), bytes.len());
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    let crc = crc32(&b[..len - 4]);
    b[len - 4..].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Every offset where `pattern` starts in `bytes`.
fn places_of(bytes: &[u8], pattern: &[u8]) -> Vec<usize> {
    bytes
        .windows(pattern.len())
        .enumerate()
        .filter(|(_, w)| *w == pattern)
        .map(|(i, _)| i)
        .collect()
}

fn is_format_error(r: &Result<CheckpointInfo, Error>) -> bool {
    matches!(r, Err(Error::Format(_)))
}

#[test]
fn every_truncation_and_single_byte_corruption_is_a_typed_error() {
    let bytes = small_checkpoint();
    let len = bytes.len();
    assert!(CheckpointInfo::read(&bytes).is_ok());
    for cut in 0..len {
        assert_eq!(
            CheckpointInfo::read(&bytes[..cut]).err(),
            Some(Error::Format(FormatError::Truncated)),
            "cut at {cut}"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(
        CheckpointInfo::read(&longer).err(),
        Some(Error::Format(FormatError::TrailingBytes))
    );
    let mut b = bytes.clone();
    for at in 0..len {
        for flip in [0x01u8, 0x80, 0xff] {
            b[at] ^= flip;
            assert!(
                is_format_error(&CheckpointInfo::read(&b)),
                "byte {at} ^ {flip:#x}"
            );
            b[at] ^= flip;
        }
    }
    // resume_fit runs the same checks first: a sample of positions through it.
    for at in (0..len).step_by(97) {
        b[at] ^= 0x10;
        assert!(
            matches!(resumed::<f64>(&b), Err(Error::Format(_))),
            "byte {at}"
        );
        b[at] ^= 0x10;
    }
}

#[test]
fn bytes_altered_behind_a_valid_checksum_never_panic() {
    let bytes = small_checkpoint();
    let len = bytes.len();
    let reseal = |b: &mut Vec<u8>| {
        let crc = crc32(&b[..len - 4]);
        b[len - 4..].copy_from_slice(&crc.to_le_bytes());
    };
    // Every header byte (and a sample of the arrays) set to a few values, the checksum made
    // valid again: a format error, or a checkpoint that resumes (a loss, a log value) without
    // a panic. Only those with the original settings are resumed: others may ask for 2^63
    // epochs, which is valid and would take as long.
    let info = CheckpointInfo::read(&bytes).unwrap();
    let head = 16 + 400;
    let mut resumed_ok = 0;
    for at in (16..head.min(len - 4)).chain((head..len - 4).step_by(53)) {
        for v in [0u8, 1, 2, 0x7f, 0xff] {
            let mut b = bytes.clone();
            if b[at] == v {
                continue;
            }
            b[at] = v;
            reseal(&mut b);
            let same = |i: CheckpointInfo| i.cfg == info.cfg && i.template == info.template;
            if CheckpointInfo::read(&b).is_ok_and(same) {
                resumed_ok += usize::from(resumed::<f64>(&b).is_ok());
            }
        }
    }
    assert!(resumed_ok > 0);
    // The reserved byte and the version are checked.
    let mut b = bytes.clone();
    b[7] = 1;
    reseal(&mut b);
    assert_eq!(
        CheckpointInfo::read(&b).err(),
        Some(Error::Format(FormatError::BadHeader))
    );
    let mut b = bytes.clone();
    b[4] = 2;
    assert_eq!(
        CheckpointInfo::read(&b).err(),
        Some(Error::Format(FormatError::UnsupportedVersion))
    );
    assert_eq!(info.stage, FitStage::Epoch(2));
}

#[test]
fn short_buffers_are_refused_before_anything_runs() {
    let bytes = small_checkpoint();
    let info = CheckpointInfo::read(&bytes).unwrap();
    let (nr, nf) = info.data_len();
    let (mut reals, mut f64s) = (vec![0.0f64; nr - 1], vec![0.0; nf]);
    assert!(matches!(
        ResumeBuffers::split(&info, &mut reals, &mut f64s),
        Err(Error::BufferTooSmall { .. })
    ));
    let mut out = vec![0u8; 10];
    let (template, cfg) = (info.template, info.cfg);
    let d = data::<f64>(120);
    let mut mem = Memory::<f64>::new(&template, &cfg, 120);
    let (params, buf) = mem.split(&template, &cfg, 120);
    let mut refused = None;
    let data = FitData::new(&d.theta, &d.weights);
    let r = fit_resumable(
        &template,
        &cfg,
        Some((&LO, &HI)),
        params,
        data,
        buf,
        |_| true,
        |c| {
            refused = Some(c.to_bytes(&mut out));
            false
        },
    );
    assert_eq!(r.err(), Some(Error::Callback));
    assert!(matches!(refused, Some(Err(Error::BufferTooSmall { .. }))));
    assert!(out.iter().all(|&b| b == 0));
}

/// `train_resumable` on its own: a run continued from the snapshot of every epoch (state,
/// parameters, best parameters and moments copied out) ends bit-identical to the whole run; a
/// state that does not fit the run is refused.
#[test]
fn training_continues_from_every_epoch_snapshot() {
    use lwflow::train::{train_resumable, TrainBuffers, TrainState};
    let d = data::<f64>(300);
    let shape = Shape::new(2, 8, 2);
    let cfg = TrainConfig {
        max_epochs: 6,
        batch_size: 64,
        patience: 0,
        ..Default::default()
    };
    let p = shape.param_len();
    let init = {
        let mut v = vec![0.0; p];
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        lwflow::init_params(&shape, &mut v, &mut rng).unwrap();
        v
    };
    type Snapshot = (TrainState, Vec<f64>, Vec<f64>, Vec<f64>);
    let run = |params: &mut Vec<f64>,
               best: &mut Vec<f64>,
               adam: &mut Vec<f64>,
               from: Option<&TrainState>,
               snaps: &mut Vec<Snapshot>| {
        let (mut grad, mut ws) = (vec![0.0; p], vec![0.0; shape.workspace_len()]);
        let (mut bt, mut bw, mut bo) = (vec![0.0; 64 * 2], vec![0.0; 64], vec![0.0; 64]);
        let mut order = vec![0u32; 300];
        let buf = TrainBuffers {
            grad: &mut grad,
            adam_state: adam,
            best,
            workspace: &mut ws,
            batch_theta: &mut bt,
            batch_weights: &mut bw,
            batch_out: &mut bo,
            order: &mut order,
        };
        let (t, w) = (&d.theta, &d.weights);
        train_resumable(&shape, params, t, w, &cfg, buf, from, |_, s| {
            let copy = |v: &[f64]| v.to_vec();
            snaps.push((s.state, copy(s.params), copy(s.best), copy(s.adam_state)));
            true
        })
    };
    let (mut params, mut best, mut adam) = (init.clone(), vec![0.0; p], vec![0.0; 2 * p]);
    let mut snaps = Vec::new();
    let whole = run(&mut params, &mut best, &mut adam, None, &mut snaps).unwrap();
    assert_eq!(snaps.len(), 6);
    for (state, sp, sb, sa) in snaps.clone() {
        let (mut q, mut b, mut a) = (sp, sb, sa);
        let mut later = Vec::new();
        let r = run(&mut q, &mut b, &mut a, Some(&state), &mut later).unwrap();
        assert_eq!(
            format!("{r:?}"),
            format!("{whole:?}"),
            "from {}",
            state.epochs
        );
        assert_eq!(bits(&q), bits(&params), "from {}", state.epochs);
        assert_eq!(later.len(), 6 - state.epochs);
    }
    let (state, ..) = snaps[2].clone();
    for bad in [
        TrainState { epochs: 7, ..state },
        TrainState {
            best_epoch: 4,
            ..state
        },
        TrainState {
            n_train: state.n_train + 1,
            ..state
        },
        TrainState {
            steps: u64::MAX,
            ..state
        },
    ] {
        let (mut q, mut b, mut a) = (init.clone(), vec![0.0; p], vec![0.0; 2 * p]);
        let r = run(&mut q, &mut b, &mut a, Some(&bad), &mut Vec::new());
        assert_eq!(r.err(), Some(Error::InvalidArgument));
    }
}

/// Fuzz regression (`fuzz/regressions/fit/adam-second-moment-overflow`): a fit whose squared
/// gradient overflowed holds +∞ in Adam's second moment (that coordinate then stays put), and
/// it handed over checkpoints that its own reader refused (`NonFiniteParameter`), so the fit
/// could not be resumed. +∞ there is now read and resumed; NaN or −∞ there are still refused.
#[test]
fn an_overflowed_second_moment_is_read_and_resumed() {
    let bytes = small_checkpoint();
    let len = bytes.len();
    let info = CheckpointInfo::read(&bytes).unwrap();
    let (n, d) = (info.n, info.template.dim);
    // After the arrays of the training part: the samples, the weights, the log values.
    let tail = 4 + 8 * n * (d + 1 + usize::from(info.log_values));
    // The last second moment.
    let at = len - tail - 8;
    let put = |v: f64| resealed_with(&bytes, at, v);
    let inf = put(f64::INFINITY);
    assert!(CheckpointInfo::read(&inf).is_ok());
    let r = resumed::<f64>(&inf);
    assert!(r.is_ok(), "{:?}", r.err());
    for v in [f64::NAN, f64::NEG_INFINITY] {
        assert_eq!(
            CheckpointInfo::read(&put(v)).err(),
            Some(Error::Format(FormatError::NonFiniteParameter))
        );
    }
    // Before the fix, +∞ was refused like them: the same bytes with the moment finite again.
    assert!(CheckpointInfo::read(&put(1.0)).is_ok());
}

/// Fuzz regression (`fuzz/regressions/fit/ess-above-n`): a resealed checkpoint (bytes changed,
/// checksum made valid again) whose stored Kish ESS exceeded its number of samples was read and
/// resumed, and the resumed fit reported that ESS (123 of 25 samples) with LWF_OK. The reader
/// now takes the ESS only in (0, n] (with room for rounding) and refuses the rest as a format
/// error.
#[test]
fn a_stored_ess_outside_zero_to_n_is_a_format_error() {
    let bytes = small_checkpoint();
    let info = CheckpointInfo::read(&bytes).unwrap();
    let (n, ess) = (info.n, info.stats.expect("stats are stored").ess);
    assert!(ess > 0.0 && ess <= n as f64);
    // The statistics: ESS, then n, then the skipped count.
    let mut pattern = ess.to_le_bytes().to_vec();
    pattern.extend_from_slice(&(n as u64).to_le_bytes());
    let at = places_of(&bytes, &pattern);
    assert_eq!(at.len(), 1, "the statistics are found once");
    let put = |v: f64| resealed_with(&bytes, at[0], v);
    for v in [n as f64 + 1.0, 4.9 * n as f64, 0.0, -1.0, f64::NAN] {
        assert!(is_format_error(&CheckpointInfo::read(&put(v))), "ESS {v}");
        assert!(
            matches!(resumed::<f64>(&put(v)), Err(Error::Format(_))),
            "ESS {v}"
        );
    }
    // The edges that real weights give are still read: equal weights (n) and one weight (1).
    for v in [n as f64, 1.0, ess] {
        let b = put(v);
        assert!(CheckpointInfo::read(&b).is_ok(), "ESS {v}");
    }
}

/// Fuzz regression (`fuzz/regressions/fit/resumed-box-lo-above-hi`): a resealed checkpoint
/// whose trained parameters carried a box of their own (there: lo > hi in one coordinate) passed
/// `lwf_fit_checkpoint_inspect` and resumed with `LWF_OK` into a model that every evaluation
/// then refused (`LWF_INVALID_ARGUMENT`). The reader now requires the flow's box to be the fit's
/// and the outer maps to be valid.
#[test]
fn a_flow_box_other_than_the_fits_is_a_format_error() {
    let bytes = small_checkpoint();
    let info = CheckpointInfo::read(&bytes).unwrap();
    assert!(info.template.bounded && info.width == 8 && info.shape.is_some());
    let d = info.template.dim;
    // The fit's box is stored once as lo[D], hi[D]; the trained parameters end their outer maps
    // with the same 2D values, so the pattern is found twice: the box, then the flow's copy.
    let (lo, hi) = (LO, HI);
    let mut pattern = Vec::new();
    for v in lo.iter().chain(hi.iter()) {
        pattern.extend_from_slice(&v.to_le_bytes());
    }
    let at = places_of(&bytes, &pattern);
    assert_eq!(at.len(), 2, "the box and the flow's copy");
    let flow_hi = |j: usize| at[1] + 8 * (d + j);
    let put = |at: usize, v: f64| resealed_with(&bytes, at, v);
    for v in [lo[1] - 1.0, hi[1] + 1.0, hi[1] - 1e-9] {
        let b = put(flow_hi(1), v);
        assert!(is_format_error(&CheckpointInfo::read(&b)), "flow hi {v}");
        assert!(
            matches!(resumed::<f64>(&b), Err(Error::Format(_))),
            "flow hi {v}"
        );
    }
    // The same value written back is read as before.
    assert!(CheckpointInfo::read(&put(flow_hi(1), hi[1])).is_ok());
}
