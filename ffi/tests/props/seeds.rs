//! The seed corpus: valid model files of both widths and of every kind of shape (made by the
//! library), and inputs for the ABI and fit targets that start on their successful paths.
//! `ffi/tests/randomized.rs` runs them all and, with `LWFLOW_WRITE_SEEDS=<dir>`, writes them
//! to `<dir>/<target>/` (the committed `fuzz/seeds/`).

use super::abi::{self, SENTINEL};
use super::buf::Guarded;
use super::check::{Tally, OK};
use super::lwf::{self, *};
use super::SplitMix;
use lwflow::format::{load, save};

/// Seeds of one target: (file name, bytes).
pub type Seeds = Vec<(String, Vec<u8>)>;

/// A model of `shape` made through the ABI (init with `seed`, then every parameter nudged so
/// the file is not all identity), saved: the f64 file.
fn model_file(shape: &LwfShape, seed: u64) -> Vec<u8> {
    let mut t = Tally::default();
    let m = abi::init_model(&mut t, shape, seed).expect("a valid seed shape");
    let mut p = m.params(&mut t);
    let tail = 2 * shape.dim * usize::try_from(shape.bounded).unwrap_or(0)
        + usize::try_from(shape.affine).unwrap_or(0)
            * (shape.dim + shape.dim * (shape.dim + 1) / 2);
    let n = p.len() - tail;
    for (i, v) in p[..n].iter_mut().enumerate() {
        *v += 0.01 * ((i % 7) as f64 - 3.0);
    }
    let pb = Guarded::from_f64s(&p);
    // SAFETY: a valid model and exactly P doubles.
    let st = lwf::code(unsafe { lwf_model_set_params(m.handle, pb.f64_ptr(), p.len()) });
    assert_eq!(st, OK);
    let out = Guarded::bytes(m.sizes.serialized, 0);
    let w = Guarded::out::<usize>(0);
    // SAFETY: a valid model and exact buffers.
    let st = lwf::code(unsafe { lwf_model_save(m.handle, out.ptr(), out.len(), w.typed()) });
    assert_eq!(st, OK);
    out.snapshot()
}

/// The same model saved with f32 parameters.
fn as_f32(file: &[u8]) -> Vec<u8> {
    let (shape, _) = lwflow::format::inspect(file).expect("valid");
    let mut p = vec![0.0f32; shape.param_len()];
    load::<f32>(file, &mut p).expect("loads as f32");
    let mut out = vec![0u8; lwflow::format::serialized_len(&shape, 4)];
    save(&shape, &p, &mut out).expect("saves");
    out
}

fn shapes() -> Vec<(&'static str, LwfShape)> {
    let base = LwfShape {
        dim: 2,
        hidden: 4,
        hidden_layers: 2,
        couplings: 2,
        components: 1,
        clamp: 3.0,
        base: 1,
        activation: 0,
        affine: 0,
        bounded: 0,
    };
    vec![
        ("gauss2", base),
        (
            "normal3_tanh",
            LwfShape {
                dim: 3,
                base: 0,
                activation: 1,
                ..base
            },
        ),
        (
            "mix2",
            LwfShape {
                base: 2,
                components: 2,
                ..base
            },
        ),
        (
            "mix3_d4",
            LwfShape {
                dim: 4,
                base: 2,
                components: 3,
                hidden: 3,
                couplings: 1,
                ..base
            },
        ),
        ("affine2", LwfShape { affine: 1, ..base }),
        ("box2", LwfShape { bounded: 1, ..base }),
        (
            "affine_box3_mix",
            LwfShape {
                dim: 3,
                affine: 1,
                bounded: 1,
                base: 2,
                components: 2,
                ..base
            },
        ),
        (
            "noclamp_1layer",
            LwfShape {
                clamp: 0.0,
                hidden_layers: 1,
                couplings: 3,
                ..base
            },
        ),
    ]
}

/// Loader seeds: mode byte 0 (no repair) or 7 (every repair) before each file.
pub fn loader() -> Seeds {
    let mut out = Seeds::new();
    for (i, (name, shape)) in shapes().into_iter().enumerate() {
        let f64_file = model_file(&shape, i as u64);
        let f32_file = as_f32(&f64_file);
        for (width, file) in [("f64", f64_file), ("f32", f32_file)] {
            let mut data = vec![0u8];
            data.extend_from_slice(&file);
            out.push((format!("{name}_{width}"), data));
        }
    }
    // A version-2 file (same layout, no outer maps), CRC repaired by mode bit 0.
    let mut v2 = model_file(&shapes()[0].1, 9);
    v2[4] = 2;
    let mut data = vec![1u8];
    data.extend_from_slice(&v2);
    out.push(("gauss2_v2".into(), data));
    // A header only, for mode bit 1 to size.
    let mut hdr = model_file(&shapes()[2].1, 3);
    hdr.truncate(40);
    let mut data = vec![7u8];
    data.extend_from_slice(&hdr);
    out.push(("mix2_header_only".into(), data));
    out
}

/// ABI seeds: every operation once after a valid first model, plus random programs.
pub fn abi() -> Seeds {
    let mut out = Seeds::new();
    for op in 0..28u8 {
        // The rng seed; a shape (D = 2, H = 4, two hidden layers, two couplings, clamp 3, a
        // Gaussian base, ReLU, no outer maps, no odd field: see `abi::shape`); the model seed;
        // then the op and its arguments (0xC8 bytes mostly pick valid pointers and lengths).
        let mut d = vec![0u8; 8];
        d.extend_from_slice(&[0, 3, 1, 1, 0, 1, 0, 255, 255, 255]);
        d.extend_from_slice(&[1; 8]);
        d.push(op);
        d.extend(std::iter::repeat_n(0xC8, 80));
        // The same op again with other argument bytes (0x65: mostly valid values too).
        d.push(op + 28);
        d.extend(std::iter::repeat_n(0x65, 80));
        d.push(op + 56);
        d.extend(std::iter::repeat_n(0x31, 40));
        out.push((format!("op{op:02}"), d));
    }
    let mut rng = SplitMix(0x05EE_DAB1);
    for i in 0..8 {
        out.push((format!("random{i}"), rng.bytes(600)));
    }
    out
}

/// Fit seeds: each kind of fit with mostly-default fields, plus random ones.
pub fn fit() -> Seeds {
    let mut out = Seeds::new();
    for kind in 0..8u8 {
        for (tag, fill) in [("c8", 0xC8u8), ("ff", 0xFF), ("80", 0x80)] {
            let mut d = vec![kind];
            d.extend(std::iter::repeat_n(fill, 400));
            out.push((format!("kind{kind}_{tag}"), d));
        }
    }
    // The checkpoint paths: a prior-box fit in its resumable form (a fit's first byte >= 0x98)
    // that runs to its end, then resumes from a valid checkpoint of it; a refinement whose
    // every op (0xC9: op 1 with bit 0x40) checkpoints it and restores it from valid bytes.
    for (name, kind, fill) in [("resumable0_98", 0u8, 0x98u8), ("checkpoint5_c9", 5, 0xC9)] {
        let mut d = vec![kind];
        d.extend(std::iter::repeat_n(fill, 400));
        out.push((name.into(), d));
    }
    let mut rng = SplitMix(0xF17);
    for i in 0..8 {
        out.push((format!("random{i}"), rng.bytes(800)));
    }
    out
}

/// Every target's seeds.
pub fn all() -> Vec<(&'static str, Seeds)> {
    let _ = SENTINEL;
    vec![("loader", loader()), ("abi", abi()), ("fit", fit())]
}
