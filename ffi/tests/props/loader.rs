//! The model loader, both widths: the core's `format::inspect` / `load::<f32>` /
//! `load::<f64>` / `save` and the C ABI's `lwf_model_inspect` / `lwf_model_load` on the same
//! bytes.
//!
//! Input: one mode byte, then the file. Mode bit 0 rewrites the CRC-32 trailer, bit 1 sizes
//! the body to the header's shape (then rewrites the CRC), bit 2 writes valid outer-map
//! parameters (identity affine map, unit box) — so that mutations reach the checks behind the
//! checksum. The checks of an accepted file that cost most run when the mode asks: bit 3 the
//! core's round trips, bit 4 the ABI's load and evaluations (both when neither is set).
//!
//! Properties: no panic; the core's inspect and f64 load agree (and fail with the same error);
//! whatever f32 load accepts f64 load accepts; a failed load leaves the output alone; a loaded
//! model of either width builds a `Flow` and evaluates, saves back bit for bit (the same bytes
//! when width and version match) and loads again to the same parameters; the C ABI's inspect
//! and load agree with the core (`LWF_OK` exactly when the core accepts, the same shape and
//! parameters), and the loaded model evaluates with valid arguments (`abi::exercise`).

use super::abi;
use super::check::Tally;
use lwflow::format::{crc32, inspect, load, save, HEADER_LEN};
use lwflow::{Activation, BaseKind, Flow, Real, Shape};

/// Largest body `fit_body` writes, bytes.
const BODY_CAP: usize = 1 << 16;
/// Largest workspace the core evaluation allocates (values).
const WS_CAP: usize = 1 << 16;

/// Rewrites the CRC-32 trailer of `file` (at least 44 bytes).
pub fn fix_crc(file: &mut [u8]) {
    let n = file.len();
    let crc = crc32(&file[..n - 4]);
    file[n - 4..].copy_from_slice(&crc.to_le_bytes());
}

fn u32_at(b: &[u8], at: usize) -> usize {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize
}

/// The shape the header describes, when it is a valid one.
fn header_shape(file: &[u8]) -> Option<(Shape, usize)> {
    if file.len() < HEADER_LEN {
        return None;
    }
    let width = file[6] as usize;
    let k = u32_at(file, 24);
    let base = match file[7] {
        0 => BaseKind::StandardNormal,
        1 => BaseKind::Gaussian,
        _ => BaseKind::Mixture(k),
    };
    let shape = Shape {
        dim: u32_at(file, 8),
        hidden: u32_at(file, 12),
        hidden_layers: u32_at(file, 16),
        couplings: u32_at(file, 20),
        base,
        activation: if file[28] == 0 {
            Activation::Relu
        } else {
            Activation::Tanh
        },
        clamp: f32::from_le_bytes([file[32], file[33], file[34], file[35]]),
        affine: file[29] & 1 != 0,
        bounded: file[29] & 2 != 0,
    };
    ((width == 4 || width == 8) && shape.validate().is_ok()).then_some((shape, width))
}

/// Sizes the body to the header's shape (zero-padded or cut) and sets the parameter count.
fn fit_body(file: &mut Vec<u8>) {
    let Some((shape, width)) = header_shape(file) else {
        return;
    };
    let p = shape.param_len();
    if p.saturating_mul(width) > BODY_CAP {
        return;
    }
    file[36..40].copy_from_slice(&(p as u32).to_le_bytes());
    file.resize(HEADER_LEN + p * width + 4, 0);
}

/// Writes the identity affine map and the unit box into the body, in the file's width.
fn valid_outer(file: &mut [u8]) {
    let Some((shape, width)) = header_shape(file) else {
        return;
    };
    if file.len() != HEADER_LEN + shape.param_len() * width + 4 {
        return;
    }
    let d = shape.dim;
    let mut at = shape.flow_param_len() + shape.base_param_len();
    let put = |file: &mut [u8], i: usize, v: f64| {
        let o = HEADER_LEN + i * width;
        if width == 4 {
            file[o..o + 4].copy_from_slice(&(v as f32).to_le_bytes());
        } else {
            file[o..o + 8].copy_from_slice(&v.to_le_bytes());
        }
    };
    if shape.affine {
        for j in 0..d {
            put(file, at + j, 0.0);
        }
        at += d;
        for r in 0..d {
            for c in 0..=r {
                put(file, at, if r == c { 1.0 } else { 0.0 });
                at += 1;
            }
        }
    }
    if shape.bounded {
        for j in 0..d {
            put(file, at + j, 0.0);
            put(file, at + d + j, 1.0);
        }
    }
}

/// Decodes the input and checks the file it holds.
pub fn run(data: &[u8], t: &mut Tally) {
    let (mode, rest) = data.split_first().map_or((0, &[][..]), |(m, r)| (*m, r));
    let mut file = rest.to_vec();
    if mode & 2 != 0 {
        fit_body(&mut file);
    }
    if mode & 4 != 0 {
        valid_outer(&mut file);
    }
    if mode & 3 != 0 && file.len() >= HEADER_LEN + 4 {
        fix_crc(&mut file);
    }
    let (roundtrips, abi_load) = match mode & 0x18 {
        0x08 => (true, false),
        0x10 => (false, true),
        _ => (true, true),
    };
    check_file(&file, u64::from(mode), roundtrips, abi_load, t);
}

/// Loads `file` into `T` parameters; checks the failure paths write nothing.
fn load_width<T: Real>(file: &[u8], n: usize) -> Result<(Shape, Vec<T>), lwflow::Error> {
    let mark = T::from_f64(-777.25);
    let mut params = vec![mark; n];
    match load::<T>(file, &mut params) {
        Ok(shape) => {
            assert_eq!(shape.param_len(), n);
            Ok((shape, params))
        }
        Err(e) => {
            assert!(
                params
                    .iter()
                    .all(|v| v.to_f64().to_bits() == mark.to_f64().to_bits()),
                "a failed load wrote to the parameters"
            );
            Err(e)
        }
    }
}

/// A loaded model of width `T`: builds a flow, evaluates, saves back and loads again.
fn roundtrip<T: Real>(file: &[u8], shape: &Shape, params: &[T]) {
    let flow =
        Flow::new(*shape, params).expect("a loaded model builds a Flow (one rule at every door)");
    let ws_len = shape.workspace_len();
    if ws_len <= WS_CAP {
        let mut ws = vec![T::ZERO; ws_len];
        let theta: Vec<T> = (0..2 * shape.dim)
            .map(|i| T::from_f64(if i % 2 == 0 { 0.5 } else { 0.25 }))
            .collect();
        let mut out = [T::ZERO; 2];
        flow.log_prob(&theta, &mut out, &mut ws)
            .expect("log_prob of a loaded model with valid buffers");
    }
    let mut out = vec![0u8; lwflow::format::serialized_len(shape, T::BYTES)];
    let n = save(shape, params, &mut out).expect("a loaded model saves");
    assert_eq!(n, out.len());
    if file[6] as usize == T::BYTES && file[4] == 3 && file[5] == 0 {
        assert!(out == file, "save(load(file)) differs from the file");
    }
    let mut back = vec![T::ZERO; params.len()];
    load::<T>(&out, &mut back).expect("a saved model loads");
    assert!(
        params
            .iter()
            .zip(&back)
            .all(|(a, b)| a.to_f64().to_bits() == b.to_f64().to_bits()),
        "save/load changed a parameter"
    );
}

/// Every property of the loader on one file (the round trips and the ABI's load of an
/// accepted file when asked).
pub fn check_file(file: &[u8], seed: u64, roundtrips: bool, abi_load: bool, t: &mut Tally) {
    let core = inspect(file);
    let n = core.map_or(0, |(s, _)| s.param_len());
    let r64 = load_width::<f64>(file, n);
    let r32 = load_width::<f32>(file, n);
    match (&core, &r64) {
        (Ok(_), Ok(_)) => {}
        (Err(a), Err(b)) => assert_eq!(a, b, "inspect and load::<f64> fail differently"),
        _ => panic!(
            "inspect ({core:?}) and load::<f64> ({:?}) disagree",
            r64.as_ref().err()
        ),
    }
    if r32.is_ok() {
        assert!(r64.is_ok(), "load::<f32> accepts what load::<f64> refuses");
    }
    if let (true, Ok((shape, _))) = (roundtrips, &core) {
        // A parameter buffer of the wrong length is refused.
        let e = load_width::<f64>(file, n + 1);
        assert!(
            e.is_err(),
            "load into {} values of a {n}-parameter model",
            n + 1
        );
        let (s64, p64) = r64.as_ref().expect("ok");
        assert_eq!(s64, shape);
        roundtrip::<f64>(file, s64, p64);
        if let Ok((s32, p32)) = &r32 {
            assert_eq!(s32, shape);
            roundtrip::<f32>(file, s32, p32);
        }
    }
    // The C ABI on the same bytes.
    let Some(cshape) = abi::inspect(t, file) else {
        return;
    };
    let Some(sizes) = abi::sizes(t, &cshape) else {
        panic!("lwf_model_inspect gave a shape the size queries refuse: {cshape:?}");
    };
    if !abi_load || sizes.model_bytes > abi::MEM_CAP {
        return;
    }
    let mut models = Vec::new();
    let mut state = abi::State {
        t,
        models: Vec::new(),
        rng: super::buf::Guarded::of(&super::lwf::LwfRng {
            state: [1, 2, 3, 4],
        }),
    };
    let expect = r64.as_ref().map(|(_, p)| p.as_slice()).ok();
    // Valid arguments: bytes of 255 pick the plain path at every choice.
    let mut src = super::input::Src::new(&[255; 32]);
    abi::load_into(&mut state, &mut src, file, expect);
    core::mem::swap(&mut models, &mut state.models);
    let m = models.pop().expect("lwf_model_load accepted the file");
    abi::exercise(state.t, &m, seed);
}
