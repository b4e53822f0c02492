//! The refinement state as bytes (`RefineState::to_bytes` / `from_bytes`): a refinement
//! suspended mid-run (between rounds, and between `ask` and `tell`), written to bytes, read
//! back and resumed with the same buffers ends bit-identical to an uninterrupted run (same
//! likelihood calls, same model parameters, same reports); every truncation and every
//! single-byte corruption of the bytes is a typed format error; bytes altered behind a valid
//! checksum never panic.

use lwflow::format::crc32;
use lwflow::rand_core::SeedableRng;
use lwflow::train::{
    RefineBuffers, RefineConfig, RefineMemory, RefineState, RefineStatus, Refiner, STATE_BYTES,
};
use lwflow::{Error, FormatError, Shape};
use lwflow_tasks::Draws;
use rand_xoshiro::Xoshiro256PlusPlus;

const LO: [f64; 2] = [-4.0, -4.0];
const HI: [f64; 2] = [4.0, 4.0];

/// ln L of a 2-D Gaussian N((1, −0.5), 0.5²I).
fn log_likelihood(theta: &[f64], out: &mut [f64]) {
    for (o, t) in out.iter_mut().zip(theta.chunks(2)) {
        let (a, b) = ((t[0] - 1.0) / 0.5, (t[1] + 0.5) / 0.5);
        *o = -0.5 * (a * a + b * b);
    }
}

fn template() -> Shape {
    Shape::new(2, 16, 2)
}

/// A short refinement: small rounds, few epochs, a budget it may run into.
fn config() -> RefineConfig {
    let mut c = RefineConfig::for_dim(2);
    c.initial_samples = 600;
    c.samples_per_round = 800;
    c.check_samples = 400;
    c.max_calls = 4_000;
    c.target_ess = 1_500.0;
    c.fit.train.max_epochs = 8;
    c.fit.base = lwflow::train::BaseChoice::Auto(3);
    c.seed = 7;
    c
}

struct Memory {
    reals: Vec<f64>,
    f64s: Vec<f64>,
    order: Vec<u32>,
}

impl Memory {
    fn new() -> Memory {
        let need = RefineMemory::new(&template(), &config());
        Memory {
            reals: vec![0.0; need.reals],
            f64s: vec![0.0; need.f64s],
            order: vec![0; need.order],
        }
    }

    fn buffers(&mut self) -> RefineBuffers<'_, f64> {
        RefineBuffers::split(
            &template(),
            &config(),
            &mut self.reals,
            &mut self.f64s,
            &mut self.order,
        )
        .expect("buffers")
    }
}

/// What a run did, bit for bit: every batch asked, the rounds, the report and the model.
#[derive(Debug, PartialEq)]
struct Outcome {
    batches: Vec<Vec<u64>>,
    rounds: String,
    report: String,
    shape: Shape,
    params: Vec<u64>,
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// One ask/tell step; returns false once the loop has finished.
fn step(r: &mut Refiner<'_, f64>, batches: &mut Vec<Vec<u64>>) -> bool {
    if r.status() != RefineStatus::Running {
        return false;
    }
    let theta = r.ask().expect("ask").to_vec();
    let mut ll = vec![0.0; theta.len() / 2];
    log_likelihood(&theta, &mut ll);
    batches.push(bits(&theta));
    r.tell(&ll).expect("tell");
    true
}

fn finish(r: Refiner<'_, f64>, batches: Vec<Vec<u64>>) -> (Outcome, RefineState) {
    let rounds = format!("{:?}", r.rounds().collect::<Vec<_>>());
    let report = format!("{:?}", r.report().expect("report"));
    let (shape, params) = r.model().expect("model");
    let params = bits(params);
    // The state's own view of the report is the refiner's.
    assert_eq!(format!("{:?}", r.state().report().expect("report")), report);
    let outcome = Outcome {
        batches,
        rounds,
        report,
        shape,
        params,
    };
    (outcome, r.into_state())
}

fn uninterrupted() -> Outcome {
    let mut mem = Memory::new();
    let mut r = Refiner::new(&template(), &LO, &HI, &config(), mem.buffers()).expect("new");
    let mut batches = Vec::new();
    while step(&mut r, &mut batches) {}
    let (out, st) = finish(r, batches);
    // final_model reads the same parameters from the raw slice.
    let (shape, params) = st.final_model(&mem.reals).expect("final model");
    assert_eq!(shape, out.shape);
    assert_eq!(bits(params), out.params);
    out
}

/// Runs `rounds` rounds (and an `ask` more when `mid_ask`), suspends to bytes, reads them
/// back and finishes with the same buffers.
fn interrupted(rounds: usize, mid_ask: bool) -> (Outcome, Vec<u8>) {
    let mut mem = Memory::new();
    let mut batches = Vec::new();
    let state = {
        let mut r = Refiner::new(&template(), &LO, &HI, &config(), mem.buffers()).expect("new");
        for _ in 0..rounds {
            assert!(step(&mut r, &mut batches));
        }
        if mid_ask {
            r.ask().expect("ask");
        }
        r.into_state()
    };
    let mut bytes = vec![0u8; STATE_BYTES];
    let len = state.to_bytes(&mut bytes).expect("to_bytes");
    bytes.truncate(len);
    let back = RefineState::from_bytes(&bytes).expect("from_bytes");
    let mut again = vec![0u8; STATE_BYTES];
    let len2 = back.to_bytes(&mut again).expect("to_bytes again");
    assert_eq!(
        &again[..len2],
        &bytes[..],
        "decode then encode is the identity"
    );
    assert_eq!(back.pending().is_some(), mid_ask);
    let mut r = Refiner::resume(back, mem.buffers()).expect("resume");
    if mid_ask {
        // The outstanding batch is handed out again, unchanged.
        let theta = r.ask().expect("ask").to_vec();
        let mut ll = vec![0.0; theta.len() / 2];
        log_likelihood(&theta, &mut ll);
        batches.push(bits(&theta));
        r.tell(&ll).expect("tell");
    }
    while step(&mut r, &mut batches) {}
    (finish(r, batches).0, bytes)
}

#[test]
fn a_resumed_refinement_ends_bit_identical_to_an_uninterrupted_one() {
    let whole = uninterrupted();
    assert!(whole.batches.len() >= 3, "{} rounds", whole.batches.len());
    eprintln!("{} rounds: {}", whole.batches.len(), whole.report);
    for (rounds, mid_ask) in [(0, true), (1, false), (2, true)] {
        let (resumed, _) = interrupted(rounds, mid_ask);
        assert!(
            resumed == whole,
            "suspended after {rounds} rounds (mid-ask {mid_ask}) differs"
        );
    }
}

fn is_format_error(r: Result<RefineState, Error>) -> bool {
    matches!(r, Err(Error::Format(_)))
}

#[test]
fn every_truncation_and_single_byte_corruption_is_a_format_error() {
    let (_, bytes) = interrupted(2, true);
    let len = bytes.len();
    assert!(len > 1000 && len <= STATE_BYTES);
    assert!(RefineState::from_bytes(&bytes).is_ok());
    for k in 0..len {
        let r = RefineState::from_bytes(&bytes[..k]);
        assert!(
            matches!(r, Err(Error::Format(FormatError::Truncated))),
            "{k}: {r:?}"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(
        RefineState::from_bytes(&longer).err(),
        Some(Error::Format(FormatError::TrailingBytes))
    );
    let mut b = bytes.clone();
    for i in 0..len {
        for x in [0x01u8, 0x80, 0xff] {
            b[i] ^= x;
            let r = RefineState::from_bytes(&b);
            assert!(is_format_error(r), "byte {i} ^ {x:#x}: {r:?}");
            b[i] ^= x;
        }
    }
    // The typed errors of the prefix.
    let mut b = bytes.clone();
    b[0] ^= 1;
    assert_eq!(
        RefineState::from_bytes(&b).err(),
        Some(Error::Format(FormatError::BadMagic))
    );
    let mut b = bytes.clone();
    b[4] ^= 1;
    assert_eq!(
        RefineState::from_bytes(&b).err(),
        Some(Error::Format(FormatError::UnsupportedVersion))
    );
    let mut b = bytes.clone();
    b[len / 2] ^= 1;
    assert_eq!(
        RefineState::from_bytes(&b).err(),
        Some(Error::Format(FormatError::Checksum))
    );
}

/// Random byte changes with the checksum recomputed: decoding never panics, and a state that
/// still decodes can be resumed and asked without a panic (an error is fine).
#[test]
fn altered_bytes_behind_a_valid_checksum_never_panic() {
    let (_, bytes) = interrupted(2, false);
    let mut mem = Memory::new();
    // The buffers the state belongs to.
    {
        let mut r = Refiner::new(&template(), &LO, &HI, &config(), mem.buffers()).expect("new");
        let mut b = Vec::new();
        for _ in 0..2 {
            step(&mut r, &mut b);
        }
    }
    let len = bytes.len();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
    let mut draws = Draws::new(&mut rng);
    let (mut decoded, mut refused, mut asked) = (0, 0, 0);
    for trial in 0..3000 {
        let mut b = bytes.clone();
        let changes = 1 + trial % 3;
        for _ in 0..changes {
            let at = 12 + (draws.uniform() * (len - 16) as f64) as usize;
            let v = (draws.uniform() * 256.0) as u8;
            b[at] = if trial % 2 == 0 {
                v
            } else {
                b[at] ^ (1 << (v % 8))
            };
        }
        let crc = crc32(&b[..len - 4]);
        b[len - 4..].copy_from_slice(&crc.to_le_bytes());
        match RefineState::from_bytes(&b) {
            Err(Error::Format(_)) => refused += 1,
            Err(e) => panic!("not a format error: {e:?}"),
            Ok(st) => {
                decoded += 1;
                // Resume on a copy of the buffers and draw the next round: no panic.
                if asked < 40 && st.status() == RefineStatus::Running {
                    asked += 1;
                    let mut m = Memory {
                        reals: mem.reals.clone(),
                        f64s: mem.f64s.clone(),
                        order: mem.order.clone(),
                    };
                    // Carved for the decoded state, as a host does.
                    let buf = RefineBuffers::split(
                        &st.template(),
                        st.config(),
                        &mut m.reals,
                        &mut m.f64s,
                        &mut m.order,
                    );
                    if let Ok(mut r) = buf.and_then(|b| Refiner::resume(st, b)) {
                        let _ = r.ask().map(|t| t.len());
                    }
                }
            }
        }
    }
    eprintln!("{decoded} decoded, {refused} refused, {asked} resumed and asked");
    assert!(refused > 0);
}
