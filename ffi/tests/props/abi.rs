//! Every C entry point on random shapes, lengths, pointers and values: a fuzz input decodes
//! into a sequence of calls on up to three models (plus copies of their memory, valid or with
//! a corrupted header), each call's arguments decoded from the next bytes.
//!
//! Per call: the status is a header code, never `LWF_PANIC` or `LWF_BUSY`; guards intact;
//! inputs unchanged; outputs unchanged after a failure (evaluations: or all NaN after
//! `LWF_NON_FINITE`); every output finite after `LWF_OK`; an output overlapping another
//! buffer or the model never gives `LWF_OK`; the parameters unchanged by any evaluation and by
//! any failed call; what the size queries accept, `lwf_model_init` accepts.

use super::buf::Guarded;
use super::check::*;
use super::input::{unaddressable, Src, SPECIAL};
use super::lwf::{self, *};
use core::ffi::c_void;
use core::mem::size_of;
use core::ptr::{null, null_mut};

/// Largest model memory a case allocates (bytes); bigger shapes are only size-queried.
pub const MEM_CAP: usize = 256 << 10;
/// Most calls one input decodes to (after the first model).
pub const MAX_OPS: usize = 24;
/// Largest batch of points a call gets.
pub const MAX_N: usize = 6;
/// Bytes of the model header that identify a model (tag to checksum): a change to any one of
/// them must make every call refuse the handle (`LWF_INVALID_MODEL`).
const HEADER_ID_BYTES: usize = 88;
/// The sentinel an output buffer holds before a call.
pub const SENTINEL: f64 = -777.25;

fn code(s: LwfStatus) -> i32 {
    lwf::code(s)
}

// ---------------------------------------------------------------------------------------
// Shapes

/// A shape: mostly small and valid (so models get built and evaluated), sometimes with
/// fields from a wide palette of invalid, huge or odd values.
pub fn shape(src: &mut Src) -> LwfShape {
    let mut s = LwfShape {
        dim: src.range(2, 4),
        hidden: src.range(1, 6),
        hidden_layers: src.range(1, 2),
        couplings: src.range(1, 3),
        components: 1,
        clamp: src.pick(&[3.0, 3.0, 0.0, 1.5, 8.0]),
        base: src.range(0, 2) as i32,
        activation: src.range(0, 1) as i32,
        affine: i32::from(src.chance(64)),
        bounded: i32::from(src.chance(64)),
    };
    if s.base == 2 {
        s.components = src.range(1, 3);
    }
    if src.chance(40) {
        wild_shape(src, &mut s);
    }
    s
}

/// Replaces some fields of `s` with odd values.
pub fn wild_shape(src: &mut Src, s: &mut LwfShape) {
    const SIZES: [usize; 12] = [
        0,
        1,
        2,
        3,
        64,
        65,
        1 << 16,
        (1 << 16) + 1,
        1 << 20,
        u32::MAX as usize,
        usize::MAX / 2,
        usize::MAX,
    ];
    const CODES: [i32; 7] = [-1, 0, 1, 2, 3, i32::MAX, i32::MIN];
    let mask = src.u16();
    if mask & 1 != 0 {
        s.dim = src.pick(&SIZES);
    }
    if mask & 2 != 0 {
        s.hidden = src.pick(&SIZES);
    }
    if mask & 4 != 0 {
        s.hidden_layers = src.pick(&SIZES);
    }
    if mask & 8 != 0 {
        s.couplings = src.pick(&SIZES);
    }
    if mask & 16 != 0 {
        s.components = src.pick(&SIZES);
    }
    if mask & 32 != 0 {
        s.clamp = if src.flag() {
            src.pick(&SPECIAL)
        } else {
            src.pick(&[
                1e-42,
                -0.0,
                1e39,
                1e-39,
                3.4e38,
                1.1754942e-38,
                1.1754943e-38,
                1e-46,
            ])
        };
    }
    if mask & 64 != 0 {
        s.base = src.pick(&CODES);
    }
    if mask & 128 != 0 {
        s.activation = src.pick(&CODES);
    }
    if mask & 256 != 0 {
        s.affine = src.pick(&CODES);
    }
    if mask & 512 != 0 {
        s.bounded = src.pick(&CODES);
    }
}

/// What the size queries say about a shape.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    pub model_bytes: usize,
    pub params: usize,
    pub workspace: usize,
    pub serialized: usize,
}

/// Runs every size query and `lwf_shape_validate` on `shape` (passed in guarded memory) and
/// checks that they agree: all `LWF_OK` or all the same error; the sizes are non-zero and
/// consistent. `None` for an invalid shape.
pub fn sizes(t: &mut Tally, shape: &LwfShape) -> Option<Sizes> {
    let sb = Guarded::of(shape);
    let sw = Watch::new("shape", &sb);
    // SAFETY: a readable shape.
    let v = t.status(
        "lwf_shape_validate",
        code(unsafe { lwf_shape_validate(sb.typed()) }),
    );
    sw.guards("lwf_shape_validate");
    sw.assert_unchanged("lwf_shape_validate", "a const input");
    let names = [
        "lwf_shape_model_size",
        "lwf_shape_param_count",
        "lwf_shape_workspace_count",
        "lwf_shape_serialized_size",
    ];
    let mut out = [0usize; 4];
    for (i, name) in names.into_iter().enumerate() {
        let ob = Guarded::out::<usize>(0x5A);
        let ow = Watch::new("out", &ob);
        let (sp, op) = (sb.typed(), ob.typed());
        // SAFETY: readable shape, writable usize.
        let st = unsafe {
            match i {
                0 => lwf_shape_model_size(sp, op),
                1 => lwf_shape_param_count(sp, op),
                2 => lwf_shape_workspace_count(sp, op),
                _ => lwf_shape_serialized_size(sp, op),
            }
        };
        let st = t.status(name, code(st));
        after_call(name, st, &[&sw], &[&ow], false);
        assert_eq!(
            st, v,
            "{name} says {st} where lwf_shape_validate says {v}: {shape:?}"
        );
        if st == OK {
            out[i] = ob.read::<usize>();
        }
    }
    if v != OK {
        assert_eq!(v, INVALID_SHAPE, "lwf_shape_validate: {v}");
        return None;
    }
    let s = Sizes {
        model_bytes: out[0],
        params: out[1],
        workspace: out[2],
        serialized: out[3],
    };
    assert!(s.workspace > 0 && s.serialized > 44, "{s:?}");
    assert_eq!(s.serialized, 44 + 8 * s.params, "{s:?}");
    assert!(
        s.model_bytes >= 128 + 32 * s.params + 8 * s.workspace,
        "{s:?}"
    );
    Some(s)
}

// ---------------------------------------------------------------------------------------
// Models and handles

/// A model in guarded memory.
pub struct Model {
    pub mem: Guarded,
    pub handle: *mut LwfModel,
    pub shape: LwfShape,
    pub sizes: Sizes,
}

impl Model {
    /// The parameters, through `lwf_model_get_params` (which must succeed).
    pub fn params(&self, t: &mut Tally) -> Vec<f64> {
        params_of(t, self.handle, self.sizes.params)
    }
}

/// The parameters of a valid handle through `lwf_model_get_params`.
pub fn params_of(t: &mut Tally, handle: *const LwfModel, p: usize) -> Vec<f64> {
    let out = Guarded::f64s(p, SENTINEL);
    // SAFETY: a valid handle; `out` holds p doubles.
    let st = code(unsafe { lwf_model_get_params(handle, out.f64_ptr(), p) });
    let st = t.status("lwf_model_get_params", st);
    out.check_guards("lwf_model_get_params");
    assert_eq!(st, OK, "lwf_model_get_params on a valid model");
    let v = out.read_f64s();
    all_finite("lwf_model_get_params", &v);
    v
}

/// Initialises a model of `shape` (valid arguments); `None` when the shape is invalid or its
/// memory over the cap. An invalid shape must be refused with `LWF_INVALID_SHAPE`, a valid
/// one accepted.
pub fn init_model(t: &mut Tally, shape: &LwfShape, seed: u64) -> Option<Model> {
    let sizes = sizes(t, shape);
    let Some(sizes) = sizes.filter(|s| s.model_bytes <= MEM_CAP) else {
        if sizes.is_none() {
            // The same verdict from lwf_model_init, with memory for the smallest model.
            let mem = Guarded::bytes(4096, 0xEE);
            let sb = Guarded::of(shape);
            let ob = Guarded::out::<*mut LwfModel>(0x11);
            let (mw, sw, ow) = (
                Watch::new("mem", &mem),
                Watch::new("shape", &sb),
                Watch::new("out_model", &ob),
            );
            // SAFETY: valid buffers of the lengths passed.
            let st = code(unsafe {
                lwf_model_init(mem.ptr().cast(), mem.len(), sb.typed(), seed, ob.typed())
            });
            let st = t.status("lwf_model_init", st);
            after_call("lwf_model_init", st, &[&sw], &[&mw, &ow], false);
            assert_eq!(
                st, INVALID_SHAPE,
                "lwf_model_init of an invalid shape: {shape:?}"
            );
        }
        return None;
    };
    let mem = Guarded::bytes(sizes.model_bytes, 0xEE);
    let sb = Guarded::of(shape);
    let ob = Guarded::out::<*mut LwfModel>(0x11);
    let (sw, ow) = (Watch::new("shape", &sb), Watch::new("out_model", &ob));
    // SAFETY: valid buffers of the lengths passed.
    let st =
        code(unsafe { lwf_model_init(mem.ptr().cast(), mem.len(), sb.typed(), seed, ob.typed()) });
    let st = t.status("lwf_model_init", st);
    after_call("lwf_model_init", st, &[&sw], &[&ow], false);
    mem.check_guards("lwf_model_init: mem");
    assert_eq!(
        st, OK,
        "lwf_model_init refused a shape every size query accepts: {shape:?}"
    );
    let handle = ob.read::<*mut LwfModel>();
    assert_eq!(
        handle.cast::<u8>(),
        mem.ptr(),
        "the handle is the memory's address"
    );
    let m = Model {
        mem,
        handle,
        shape: *shape,
        sizes,
    };
    check_model_shape(t, &m);
    m.params(t);
    Some(m)
}

/// `lwf_model_shape` of a valid model gives back its shape (clamp rounded to float).
pub fn check_model_shape(t: &mut Tally, m: &Model) {
    let ob = Guarded::out::<LwfShape>(0x22);
    // SAFETY: a valid handle and a writable LwfShape.
    let st = code(unsafe { lwf_model_shape(m.handle, ob.typed()) });
    let st = t.status("lwf_model_shape", st);
    ob.check_guards("lwf_model_shape");
    assert_eq!(st, OK);
    let got = ob.read::<LwfShape>();
    let want = m.shape;
    assert!(
        got.dim == want.dim
            && got.hidden == want.hidden
            && got.hidden_layers == want.hidden_layers
            && got.couplings == want.couplings
            && got.components == want.components
            && got.base == want.base
            && got.activation == want.activation
            && got.affine == want.affine
            && got.bounded == want.bounded
            && got.clamp == f64::from(want.clamp as f32),
        "lwf_model_shape {got:?} for a model of {want:?}"
    );
}

/// The model argument of a call.
pub enum Handle {
    /// A model's own handle (index into the models).
    Slot(usize),
    /// NULL.
    Null,
    /// A model's address plus 4.
    Misaligned(usize),
    /// A byte copy of a model's memory with one identifying header byte changed.
    Corrupt(Guarded),
    /// A byte copy of a model's memory: valid at its new address (index of the original).
    Copy(Guarded, usize),
}

impl Handle {
    /// Decodes a handle; mostly one of the models.
    pub fn decode(src: &mut Src, models: &[Model]) -> Handle {
        if models.is_empty() {
            return Handle::Null;
        }
        let i = src.below(models.len());
        match src.u8() {
            0..=5 => Handle::Null,
            6..=9 => Handle::Misaligned(i),
            10..=17 => {
                let mut bytes = models[i].mem.snapshot();
                let at = src.below(HEADER_ID_BYTES);
                bytes[at] ^= src.u8().max(1);
                Handle::Corrupt(Guarded::from_bytes(&bytes))
            }
            18..=25 => Handle::Copy(Guarded::from_bytes(&models[i].mem.snapshot()), i),
            _ => Handle::Slot(i),
        }
    }

    /// The pointer passed.
    pub fn ptr(&self, models: &[Model]) -> *mut LwfModel {
        match self {
            Handle::Slot(i) => models[*i].handle,
            Handle::Null => null_mut(),
            Handle::Misaligned(i) => models[*i].mem.offset_ptr(4).cast(),
            Handle::Corrupt(g) | Handle::Copy(g, _) => g.ptr().cast(),
        }
    }

    /// The model this handle is valid for (its shape and sizes), if any.
    pub fn model<'m>(&self, models: &'m [Model]) -> Option<&'m Model> {
        match self {
            Handle::Slot(i) | Handle::Copy(_, i) => Some(&models[*i]),
            _ => None,
        }
    }

    /// The memory behind a valid handle.
    pub fn mem<'a>(&'a self, models: &'a [Model]) -> Option<&'a Guarded> {
        match self {
            Handle::Slot(i) => Some(&models[*i].mem),
            Handle::Copy(g, _) => Some(g),
            _ => None,
        }
    }

    /// Checks the guards of copies (the models' own are checked after every call).
    pub fn check_guards(&self, call: &str) {
        if let Handle::Corrupt(g) | Handle::Copy(g, _) = self {
            g.check_guards(&format!("{call}: model copy"));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Buffer arguments

/// A double buffer argument: the guarded buffer, the pointer and length passed.
pub struct Arg {
    pub buf: Guarded,
    pub ptr: *mut f64,
    pub len: usize,
    /// The pointer was redirected into another buffer of the call or into a model.
    pub aliased: bool,
}

/// The pointer for a buffer: mostly the buffer, sometimes NULL or misaligned.
fn pointer(src: &mut Src, buf: &Guarded) -> *mut f64 {
    match src.u8() {
        0..=4 => null_mut(),
        5..=8 => buf.offset_ptr(src.range(1, 7)).cast(),
        _ => buf.f64_ptr(),
    }
}

/// A length for `need` elements of `elem` bytes, and how many to back it with.
fn length(src: &mut Src, need: usize, elem: usize) -> (usize, usize) {
    if src.chance(3) {
        (unaddressable(src, elem), 1)
    } else {
        let l = src.len_for(need);
        (l, l)
    }
}

impl Arg {
    /// An input of `need` doubles (values, length and pointer decoded).
    pub fn input(src: &mut Src, need: usize) -> Arg {
        let (len, real) = length(src, need, 8);
        let buf = Guarded::from_f64s(&src.f64s(real));
        let ptr = pointer(src, &buf);
        Arg {
            buf,
            ptr,
            len,
            aliased: false,
        }
    }

    /// An input holding exactly `values`, passed correctly.
    pub fn exact(values: &[f64]) -> Arg {
        let buf = Guarded::from_f64s(values);
        let ptr = buf.f64_ptr();
        Arg {
            buf,
            ptr,
            len: values.len(),
            aliased: false,
        }
    }

    /// An output for `need` doubles, holding the sentinel.
    pub fn output(src: &mut Src, need: usize) -> Arg {
        let (len, real) = length(src, need, 8);
        let buf = Guarded::f64s(real, SENTINEL);
        let ptr = pointer(src, &buf);
        Arg {
            buf,
            ptr,
            len,
            aliased: false,
        }
    }

    /// An output of exactly `n` doubles, passed correctly.
    pub fn exact_out(n: usize) -> Arg {
        let buf = Guarded::f64s(n, SENTINEL);
        let ptr = buf.f64_ptr();
        Arg {
            buf,
            ptr,
            len: n,
            aliased: false,
        }
    }

    /// Sometimes redirects this output into `target` (another buffer of the call, or model
    /// memory), so that it overlaps it when both are non-empty.
    pub fn maybe_alias(&mut self, src: &mut Src, target: &Guarded) {
        if src.chance(10) && target.len() >= 8 {
            let words = target.len() / 8;
            let at = src.below(words);
            // SAFETY: word `at` lies inside the target buffer.
            self.ptr = unsafe { target.f64_ptr().add(at) };
            // Keep the claimed span inside the target: a call that ignored the overlap
            // would still write into memory that exists.
            self.len = self.len.min(words - at);
            self.aliased = self.len > 0;
        }
    }

    /// The doubles a successful call wrote (the claimed length, from a correct pointer).
    pub fn values(&self) -> Vec<f64> {
        let n = self.len.min(self.buf.len() / 8);
        self.buf.read_f64s()[..n].to_vec()
    }

    /// Watches the buffer.
    pub fn watch(&self, name: &'static str) -> Watch<'_> {
        Watch::new(name, &self.buf)
    }

    /// True when the argument is `n` doubles passed correctly.
    pub fn is_exact(&self, n: usize) -> bool {
        self.len == n && self.ptr == self.buf.f64_ptr() && !self.aliased
    }
}

/// A scalar or struct output of type `T`: its buffer and the pointer passed (mostly the
/// buffer, sometimes NULL or misaligned).
pub struct Out {
    pub buf: Guarded,
    pub ptr: *mut u8,
}

impl Out {
    /// Decodes an output for one `T`.
    pub fn decode<T>(src: &mut Src) -> Out {
        let buf = Guarded::out::<T>(0x3C);
        let ptr = match src.u8() {
            0..=4 => null_mut(),
            5..=7 if core::mem::align_of::<T>() > 1 => buf.offset_ptr(src.range(1, 3)),
            _ => buf.ptr(),
        };
        Out { buf, ptr }
    }

    /// A correct output for one `T`.
    pub fn exact<T>() -> Out {
        let buf = Guarded::out::<T>(0x3C);
        let ptr = buf.ptr();
        Out { buf, ptr }
    }

    /// True when the pointer is the buffer itself (a successful call then wrote it).
    pub fn is_direct(&self) -> bool {
        self.ptr == self.buf.ptr()
    }

    pub fn typed<T>(&self) -> *mut T {
        self.ptr.cast()
    }

    pub fn read<T: Copy>(&self) -> T {
        self.buf.read()
    }

    pub fn watch(&self, name: &'static str) -> Watch<'_> {
        Watch::new(name, &self.buf)
    }

    /// Watches the buffer as one `T` (a struct with padding: compared field by field).
    pub fn watch_typed<T: Copy + PartialEq + 'static>(&self, name: &'static str) -> Watch<'_> {
        Watch::typed::<T>(name, &self.buf)
    }
}

/// True when a box-bounded model's row lies on or outside its box (the last 2D parameters:
/// lo, then hi).
pub fn outside_box(shape: &LwfShape, params: &[f64], row: &[f64]) -> bool {
    if shape.bounded != 1 {
        return false;
    }
    let d = shape.dim;
    let lo = &params[params.len() - 2 * d..params.len() - d];
    let hi = &params[params.len() - d..];
    row.iter()
        .zip(lo.iter().zip(hi))
        .any(|(&t, (&a, &b))| !(t > a && t < b))
}

/// True when the row lies in the closed box (always without one).
pub fn in_closed_box(shape: &LwfShape, params: &[f64], row: &[f64]) -> bool {
    if shape.bounded != 1 {
        return true;
    }
    let d = shape.dim;
    let lo = &params[params.len() - 2 * d..params.len() - d];
    let hi = &params[params.len() - d..];
    row.iter()
        .zip(lo.iter().zip(hi))
        .all(|(&t, (&a, &b))| t >= a && t <= b)
}

/// Checks log densities returned with `LWF_OK`: finite, or -inf for a row on or outside a
/// bounded model's box.
pub fn check_log_q(call: &str, shape: &LwfShape, params: &[f64], theta: &[f64], log_q: &[f64]) {
    let d = shape.dim;
    for (i, &v) in log_q.iter().enumerate() {
        let row = &theta[i * d..(i + 1) * d];
        assert!(
            v.is_finite() || (v == f64::NEG_INFINITY && outside_box(shape, params, row)),
            "LWF_OK with log_q[{i}] = {v} from {call} at {row:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The program

/// The state of one decoded program.
pub struct State<'t> {
    pub t: &'t mut Tally,
    pub models: Vec<Model>,
    pub rng: Guarded,
}

/// Runs the calls `data` decodes to.
pub fn run(data: &[u8], t: &mut Tally) {
    let mut src = Src::new(data);
    let mut rng = LwfRng { state: [0; 4] };
    // SAFETY: a writable LwfRng.
    let st = code(unsafe { lwf_rng_init(&mut rng, src.u64()) });
    assert_eq!(t.status("lwf_rng_init", st), OK);
    let mut s = State {
        t,
        models: Vec::new(),
        rng: Guarded::of(&rng),
    };
    let first = shape(&mut src);
    let seed = src.u64();
    if let Some(m) = init_model(s.t, &first, seed) {
        s.models.push(m);
    }
    for _ in 0..MAX_OPS {
        if src.is_empty() {
            break;
        }
        let op = src.u8();
        step(&mut s, &mut src, op);
        for (i, m) in s.models.iter().enumerate() {
            m.mem.check_guards(&format!("after op {op}: model {i}"));
        }
        s.rng.check_guards("rng");
    }
}

/// One call (or a short fixed sequence) chosen by `op`.
pub fn step(s: &mut State, src: &mut Src, op: u8) {
    match op % 28 {
        0 => op_shape_queries(s, src),
        1 => op_init(s, src),
        2 => op_get_params(s, src),
        3 => op_set_params(s, src),
        4 => op_set_gaussian_base(s, src),
        5 => op_set_mixture_base(s, src),
        6 => op_set_box(s, src),
        7 => op_set_affine(s, src),
        8 | 9 => op_log_prob(s, src, false),
        10 => op_log_prob(s, src, true),
        11 => op_map(s, src, true),
        12 => op_map(s, src, false),
        13 | 14 => op_sample(s, src, false),
        15 => op_sample(s, src, true),
        16 | 17 => op_loss_grad(s, src),
        18 => op_accumulate(s, src),
        19 => op_adam(s, src),
        20 => op_save_load(s, src),
        21 => op_model_shape(s, src),
        22 => op_rng(s, src),
        23 => op_importance(s, src),
        24 => op_static(s, src),
        25 => op_copy(s, src),
        26 => op_inspect_bytes(s, src),
        _ => op_configs(s, src),
    }
}

/// The parameters of a valid handle's model before a call, to compare after it.
fn params_before(s: &mut State, h: &Handle) -> Option<(Vec<f64>, usize)> {
    let p = h.model(&s.models)?.sizes.params;
    let ptr = h.ptr(&s.models);
    Some((params_of(s.t, ptr, p), p))
}

/// After a call on handle `h`: copies' guards intact; the parameters unchanged unless the
/// call succeeded and may change them; a handle that is not a model never gives `LWF_OK`.
fn after_model_call(
    s: &mut State,
    call: &str,
    h: &Handle,
    st: i32,
    before: Option<(Vec<f64>, usize)>,
    may_change: bool,
) {
    h.check_guards(call);
    if h.model(&s.models).is_none() {
        assert_ne!(st, OK, "{call} accepted a handle that is not a model");
        if let Handle::Corrupt(_) = h {
            // Nothing else may be reported before the handle for a non-NULL, aligned pointer
            // unless another argument is wrong; either way never LWF_OK (asserted above).
        }
    }
    if let Some((params, p)) = before {
        let now = params_of(s.t, h.ptr(&s.models), p);
        if !(may_change && st == OK) {
            assert!(
                params
                    .iter()
                    .zip(&now)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{call} (status {st}) changed the parameters"
            );
        }
    }
}

fn op_shape_queries(s: &mut State, src: &mut Src) {
    let sh = shape(src);
    sizes(s.t, &sh);
    // lwf_shape_default: any dims; a valid result is the documented default.
    let (d, h, l) = (
        src.pick(&[0, 1, 2, 3, 64, 65, 1 << 16, usize::MAX]),
        src.pick(&[0, 1, 8, 1 << 16, (1 << 16) + 1, usize::MAX]),
        src.pick(&[0, 1, 4, 1 << 16, usize::MAX]),
    );
    let out = Out::decode::<LwfShape>(src);
    let w = out.watch("out_shape");
    // SAFETY: out_shape NULL, misaligned or writable.
    let st = code(unsafe { lwf_shape_default(d, h, l, out.typed()) });
    let st = s.t.status("lwf_shape_default", st);
    after_call("lwf_shape_default", st, &[], &[&w], false);
    if st == OK {
        assert!(out.is_direct());
        let got = out.read::<LwfShape>();
        assert!(got.dim == d && got.hidden == h && got.couplings == l && got.hidden_layers == 2);
        assert!(sizes(s.t, &got).is_some(), "lwf_shape_default gave {got:?}");
    }
    // NULL and misaligned pointers for the queries.
    let sb = Guarded::of(&sh);
    let sp: *const LwfShape = match src.u8() % 3 {
        0 => null(),
        1 => sb.offset_ptr(4).cast(),
        _ => sb.typed(),
    };
    let out = Out::decode::<usize>(src);
    let (sw, ow) = (Watch::new("shape", &sb), out.watch("out"));
    // SAFETY: pointers NULL, misaligned (inside the buffer) or valid.
    let st = code(unsafe { lwf_shape_model_size(sp, out.typed()) });
    let st = s.t.status("lwf_shape_model_size", st);
    after_call("lwf_shape_model_size", st, &[&sw], &[&ow], false);
    if st == OK {
        assert!(out.is_direct() && sp == sb.typed::<LwfShape>().cast_const());
    }
    // SAFETY: as above.
    let st = code(unsafe { lwf_shape_validate(sp) });
    let st = s.t.status("lwf_shape_validate", st);
    after_call("lwf_shape_validate", st, &[&sw], &[], false);
}

fn op_init(s: &mut State, src: &mut Src) {
    let sh = shape(src);
    let seed = src.u64();
    if src.chance(128) {
        // Valid arguments: a model to use.
        if let Some(m) = init_model(s.t, &sh, seed) {
            if s.models.len() < 3 {
                s.models.push(m);
            } else {
                let i = src.below(3);
                s.models[i] = m;
            }
        }
        return;
    }
    // Odd memory, shape and handle pointers.
    let valid = sizes(s.t, &sh);
    let need = valid.map_or(4096, |z| z.model_bytes.min(MEM_CAP));
    let len = match src.u8() % 6 {
        0 => need.saturating_sub(src.range(1, 64)),
        1 => 0,
        2 => unaddressable(src, 1),
        _ => need,
    };
    let mem = Guarded::bytes(len.min(MEM_CAP + 64), 0xEE);
    let mp: *mut c_void = match src.u8() % 8 {
        0 => null_mut(),
        1 => mem.offset_ptr(src.range(1, 7)).cast(),
        _ => mem.ptr().cast(),
    };
    let sb = Guarded::of(&sh);
    let sp: *const LwfShape = if src.chance(16) { null() } else { sb.typed() };
    let mut out = Out::decode::<*mut LwfModel>(src);
    let inside = src.chance(16) && mem.len() >= 16;
    if inside {
        out.ptr = mem.offset_ptr(8);
    }
    let (mw, sw, ow) = (
        Watch::new("mem", &mem),
        Watch::new("shape", &sb),
        out.watch("out_model"),
    );
    // SAFETY: every pointer NULL, misaligned inside its buffer, or valid for the length passed
    // (an unaddressable length is refused before use).
    let st = code(unsafe { lwf_model_init(mp, len, sp, seed, out.typed()) });
    let st = s.t.status("lwf_model_init", st);
    after_call("lwf_model_init", st, &[&sw], &[&mw, &ow], false);
    if inside {
        assert_ne!(st, OK, "lwf_model_init wrote the handle inside the model");
    }
    if valid.is_none() {
        assert_ne!(
            st, OK,
            "lwf_model_init accepted a shape the size queries refuse"
        );
    }
    if st == OK {
        assert!(out.is_direct() && mp == mem.ptr().cast::<c_void>() && len >= need);
        assert_eq!(out.read::<*mut LwfModel>().cast::<u8>(), mem.ptr());
    }
}

fn op_get_params(s: &mut State, src: &mut Src) {
    let h = Handle::decode(src, &s.models);
    let p = h.model(&s.models).map_or(4, |m| m.sizes.params);
    let mut out = Arg::output(src, p);
    if let Some(mem) = h.mem(&s.models) {
        out.maybe_alias(src, mem);
    }
    let mem_watch = h.mem(&s.models).map(|g| Watch::new("model", g));
    let w = out.watch("out_params");
    // SAFETY: buffers valid for the lengths passed (or refused before use).
    let st = code(unsafe { lwf_model_get_params(h.ptr(&s.models), out.ptr, out.len) });
    let st = s.t.status("lwf_model_get_params", st);
    after_call("lwf_model_get_params", st, &[], &[&w], false);
    if let Some(mw) = &mem_watch {
        mw.guards("lwf_model_get_params");
        mw.assert_unchanged("lwf_model_get_params", "a const model");
    }
    after_model_call(s, "lwf_model_get_params", &h, st, None, false);
    if out.aliased {
        assert_ne!(st, OK, "lwf_model_get_params into the model's own memory");
    }
    if st == OK {
        all_finite("lwf_model_get_params", &out.values());
    }
}

fn op_set_params(s: &mut State, src: &mut Src) {
    let h = Handle::decode(src, &s.models);
    let before = params_before(s, &h);
    let p = before.as_ref().map_or(4, |b| b.1);
    // Perturb the current parameters (keeps the outer maps valid often) or take new values.
    let arg = Arg::input(src, p);
    if let Some((cur, _)) = &before {
        if src.flag() && arg.len == p && arg.ptr == arg.buf.f64_ptr() {
            let scale = src.pick(&[0.0, 1e-3, 1.0, 1e3, 1e100, 1e300]);
            for (i, c) in cur.iter().enumerate() {
                arg.buf.set_f64(i, c + scale * arg.buf.f64_at(i));
            }
        }
    }
    let w = arg.watch("params");
    // SAFETY: buffers valid for the lengths passed (or refused before use).
    let st = code(unsafe { lwf_model_set_params(h.ptr(&s.models), arg.ptr, arg.len) });
    let st = s.t.status("lwf_model_set_params", st);
    after_call("lwf_model_set_params", st, &[&w], &[], false);
    after_model_call(s, "lwf_model_set_params", &h, st, before, true);
    if st == OK {
        let m = h.model(&s.models).expect("a model");
        let now = params_of(s.t, h.ptr(&s.models), m.sizes.params);
        let given = arg.values();
        assert!(
            now.iter()
                .zip(&given)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "lwf_model_set_params: the parameters are not the ones given"
        );
    }
}

fn op_set_gaussian_base(s: &mut State, src: &mut Src) {
    let h = Handle::decode(src, &s.models);
    let before = params_before(s, &h);
    let d = h.model(&s.models).map_or(2, |m| m.shape.dim);
    let loc = Arg::input(src, d);
    let scale = Arg::input(src, d);
    positive(src, &scale);
    let (lw, sw) = (loc.watch("loc"), scale.watch("scale"));
    // SAFETY: buffers valid for the lengths passed (or refused before use).
    let st = code(unsafe {
        lwf_model_set_gaussian_base(h.ptr(&s.models), loc.ptr, loc.len, scale.ptr, scale.len)
    });
    let st = s.t.status("lwf_model_set_gaussian_base", st);
    after_call("lwf_model_set_gaussian_base", st, &[&lw, &sw], &[], false);
    after_model_call(s, "lwf_model_set_gaussian_base", &h, st, before, true);
}

fn op_set_mixture_base(s: &mut State, src: &mut Src) {
    let h = Handle::decode(src, &s.models);
    let before = params_before(s, &h);
    let (d, k) = h
        .model(&s.models)
        .map_or((2, 2), |m| (m.shape.dim, m.shape.components));
    let weights = Arg::input(src, k);
    if src.flag() && weights.len == k && weights.ptr == weights.buf.f64_ptr() {
        // Positive weights across the whole double range (D2: logits must stay finite).
        for i in 0..k {
            let e = src.range(0, 616) as i32 - 308;
            weights.buf.set_f64(i, 10f64.powi(e) * src.f64_in(1.0, 9.9));
        }
    }
    positive(src, &weights);
    let means = Arg::input(src, k * d);
    let scales = Arg::input(src, k * d);
    positive(src, &scales);
    let ws = [
        weights.watch("weights"),
        means.watch("means"),
        scales.watch("scales"),
    ];
    // SAFETY: buffers valid for the lengths passed (or refused before use).
    let st = code(unsafe {
        lwf_model_set_mixture_base(
            h.ptr(&s.models),
            weights.ptr,
            weights.len,
            means.ptr,
            means.len,
            scales.ptr,
            scales.len,
        )
    });
    let st = s.t.status("lwf_model_set_mixture_base", st);
    after_call(
        "lwf_model_set_mixture_base",
        st,
        &[&ws[0], &ws[1], &ws[2]],
        &[],
        false,
    );
    after_model_call(s, "lwf_model_set_mixture_base", &h, st, before, true);
}

fn op_set_box(s: &mut State, src: &mut Src) {
    let h = Handle::decode(src, &s.models);
    let before = params_before(s, &h);
    let d = h.model(&s.models).map_or(2, |m| m.shape.dim);
    let lo = Arg::input(src, d);
    let hi = Arg::input(src, d);
    if src.chance(160) {
        // lo < hi where both are ordinary: hi = lo + a positive width.
        for i in 0..lo.buf.len().min(hi.buf.len()) / 8 {
            let w = src.f64_in(1e-3, 20.0);
            hi.buf.set_f64(i, lo.buf.f64_at(i) + w);
        }
    }
    let dim = if src.chance(24) { src.range(0, 5) } else { d };
    // Never more than the buffers hold (an unaddressable length comes with one double).
    let dim = dim.min(lo.buf.len() / 8).min(hi.buf.len() / 8);
    let (lw, hw) = (lo.watch("lo"), hi.watch("hi"));
    // SAFETY: both buffers hold at least `dim` doubles (or `dim` is refused before use).
    let st = code(unsafe { lwf_model_set_box(h.ptr(&s.models), lo.ptr, hi.ptr, dim) });
    let st = s.t.status("lwf_model_set_box", st);
    after_call("lwf_model_set_box", st, &[&lw, &hw], &[], false);
    after_model_call(s, "lwf_model_set_box", &h, st, before, true);
}

fn op_set_affine(s: &mut State, src: &mut Src) {
    let h = Handle::decode(src, &s.models);
    let before = params_before(s, &h);
    let d = h.model(&s.models).map_or(2, |m| m.shape.dim);
    let shift = Arg::input(src, d);
    let chol = Arg::input(src, d * (d + 1) / 2);
    if src.chance(160) {
        // A positive diagonal (entries 0, 2, 5, 9, ... of the packed rows).
        for r in 0..d {
            let at = r * (r + 1) / 2 + r;
            if at < chol.buf.len() / 8 {
                chol.buf.set_f64(at, src.f64_in(1e-3, 10.0));
            }
        }
    }
    let (aw, cw) = (shift.watch("shift"), chol.watch("chol"));
    // SAFETY: buffers valid for the lengths passed (or refused before use).
    let st = code(unsafe {
        lwf_model_set_affine(h.ptr(&s.models), shift.ptr, shift.len, chol.ptr, chol.len)
    });
    let st = s.t.status("lwf_model_set_affine", st);
    after_call("lwf_model_set_affine", st, &[&aw, &cw], &[], false);
    after_model_call(s, "lwf_model_set_affine", &h, st, before, true);
}

/// Often makes every value of an argument positive (scales, weights).
fn positive(src: &mut Src, arg: &Arg) {
    if src.chance(180) {
        for i in 0..arg.buf.len() / 8 {
            let v = arg.buf.f64_at(i);
            arg.buf
                .set_f64(i, if v.is_nan() { v } else { v.abs() + 1e-3 });
        }
    }
}

/// Rows for a model: ordinary points (inside the unit box most of the time) or decoded
/// doubles.
fn rows(src: &mut Src, n: usize, d: usize) -> Vec<f64> {
    if src.chance(160) {
        (0..n * d).map(|_| src.f64_in(-0.2, 1.2)).collect()
    } else {
        src.f64s(n * d)
    }
}

fn op_log_prob(s: &mut State, src: &mut Src, ws_form: bool) {
    let name = if ws_form {
        "lwf_model_log_prob_ws"
    } else {
        "lwf_model_log_prob"
    };
    let h = Handle::decode(src, &s.models);
    let before = params_before(s, &h);
    let (d, wsn) = h
        .model(&s.models)
        .map_or((2, 64), |m| (m.shape.dim, m.sizes.workspace));
    let n = src.range(0, MAX_N);
    let mut theta = Arg::input(src, n * d);
    if src.chance(200) && theta.len == n * d && theta.ptr == theta.buf.f64_ptr() {
        theta = Arg::exact(&rows(src, n, d));
    }
    let mut out = Arg::output(src, n);
    let mut ws = Arg::output(src, wsn);
    out.maybe_alias(src, &theta.buf);
    if let Some(mem) = h.mem(&s.models) {
        if !ws_form {
            out.maybe_alias(src, mem);
        }
    }
    if ws_form {
        ws.maybe_alias(src, &out.buf);
    }
    let mem_watch = h.mem(&s.models).map(|g| Watch::new("model", g));
    let (tw, ow) = (theta.watch("theta"), out.watch("out_log_q"));
    let hp = h.ptr(&s.models);
    let st = if ws_form {
        // SAFETY: buffers valid for the lengths passed (or refused before use).
        code(unsafe {
            lwf_model_log_prob_ws(hp, theta.ptr, theta.len, out.ptr, out.len, ws.ptr, ws.len)
        })
    } else {
        // SAFETY: as above.
        code(unsafe { lwf_model_log_prob(hp, theta.ptr, theta.len, out.ptr, out.len) })
    };
    let st = s.t.status(name, st);
    after_call(name, st, &[&tw], &[&ow], true);
    ws.buf.check_guards(&format!("{name}: ws"));
    if ws_form {
        if let Some(mw) = &mem_watch {
            mw.guards(name);
            mw.assert_unchanged(name, "a const model");
        }
    }
    after_model_call(s, name, &h, st, before, false);
    if out.aliased || (ws_form && ws.aliased) {
        assert_ne!(st, OK, "{name} with overlapping buffers");
    }
    if st == OK {
        let m = h.model(&s.models).expect("a model");
        let params = params_of(s.t, hp, m.sizes.params);
        check_log_q(name, &m.shape, &params, &theta.values(), &out.values());
        // The other form gives the same values (`out.len` rows: the call accepted it).
        let n = out.len;
        let again = Arg::exact_out(n);
        let t2 = theta.values();
        let wsb = Guarded::f64s(m.sizes.workspace, 0.0);
        // SAFETY: a valid model and exact buffers.
        let st2 = code(unsafe {
            lwf_model_log_prob_ws(
                hp,
                t2.as_ptr(),
                t2.len(),
                again.ptr,
                n,
                wsb.f64_ptr(),
                m.sizes.workspace,
            )
        });
        assert_eq!(s.t.status("lwf_model_log_prob_ws", st2), OK);
        wsb.check_guards("lwf_model_log_prob_ws: ws");
        let (a, b) = (out.values(), again.values());
        assert!(
            a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{name} and lwf_model_log_prob_ws differ: {a:?} vs {b:?}"
        );
    }
}

fn op_map(s: &mut State, src: &mut Src, forward: bool) {
    let name = if forward {
        "lwf_model_forward"
    } else {
        "lwf_model_inverse"
    };
    let h = Handle::decode(src, &s.models);
    let before = params_before(s, &h);
    let d = h.model(&s.models).map_or(2, |m| m.shape.dim);
    let n = src.range(0, MAX_N);
    let mut from = Arg::input(src, n * d);
    if src.chance(200) && from.len == n * d && from.ptr == from.buf.f64_ptr() {
        from = Arg::exact(&if forward {
            (0..n * d).map(|_| src.f64_in(-3.0, 3.0)).collect()
        } else {
            rows(src, n, d)
        });
    }
    let mut to = Arg::output(src, n * d);
    let mut ld = Arg::output(src, n);
    to.maybe_alias(src, &from.buf);
    ld.maybe_alias(src, &to.buf);
    if let Some(mem) = h.mem(&s.models) {
        ld.maybe_alias(src, mem);
    }
    let (fw, tw, lw) = (from.watch("in"), to.watch("out"), ld.watch("out_log_det"));
    let hp = h.ptr(&s.models);
    let st = if forward {
        // SAFETY: buffers valid for the lengths passed (or refused before use).
        code(unsafe { lwf_model_forward(hp, from.ptr, from.len, to.ptr, to.len, ld.ptr, ld.len) })
    } else {
        // SAFETY: as above.
        code(unsafe { lwf_model_inverse(hp, from.ptr, from.len, to.ptr, to.len, ld.ptr, ld.len) })
    };
    let st = s.t.status(name, st);
    // The overlap of the two outputs: the alias check below; the unchanged-after-failure
    // check looks at each output's own buffer.
    after_call(name, st, &[&fw], &[&tw, &lw], true);
    after_model_call(s, name, &h, st, before, false);
    if to.aliased || ld.aliased {
        assert_ne!(st, OK, "{name} with overlapping buffers");
    }
    if st == OK {
        all_finite(name, &to.values());
        all_finite(name, &ld.values());
    }
}

fn op_sample(s: &mut State, src: &mut Src, ws_form: bool) {
    let name = if ws_form {
        "lwf_model_sample_ws"
    } else {
        "lwf_model_sample"
    };
    let h = Handle::decode(src, &s.models);
    let before = params_before(s, &h);
    let (d, wsn) = h
        .model(&s.models)
        .map_or((2, 64), |m| (m.shape.dim, m.sizes.workspace));
    let n = src.range(0, MAX_N);
    let mut theta = Arg::output(src, n * d);
    let mut lq = Arg::output(src, n);
    let mut ws = Arg::output(src, wsn);
    lq.maybe_alias(src, &theta.buf);
    theta.maybe_alias(src, &s.rng);
    if let Some(mem) = h.mem(&s.models) {
        if !ws_form {
            theta.maybe_alias(src, mem);
        }
    }
    if ws_form {
        ws.maybe_alias(src, &lq.buf);
    }
    let rng_ptr: *mut LwfRng = match src.u8() {
        0..=3 => null_mut(),
        4..=5 => s.rng.offset_ptr(4).cast(),
        _ => s.rng.typed(),
    };
    let rw = Watch::new("rng", &s.rng);
    let mem_watch = h.mem(&s.models).map(|g| Watch::new("model", g));
    let (tw, lw) = (theta.watch("out_theta"), lq.watch("out_log_q"));
    let hp = h.ptr(&s.models);
    let st = if ws_form {
        // SAFETY: buffers valid for the lengths passed (or refused before use).
        code(unsafe {
            lwf_model_sample_ws(
                hp, rng_ptr, theta.ptr, theta.len, lq.ptr, lq.len, ws.ptr, ws.len,
            )
        })
    } else {
        // SAFETY: as above.
        code(unsafe { lwf_model_sample(hp, rng_ptr, theta.ptr, theta.len, lq.ptr, lq.len) })
    };
    let st = s.t.status(name, st);
    after_call(name, st, &[], &[&tw, &lw], true);
    ws.buf.check_guards(&format!("{name}: ws"));
    rw.guards(name);
    if st != OK {
        rw.assert_unchanged(name, "the rng advances only on success");
    }
    if ws_form {
        if let Some(mw) = &mem_watch {
            mw.guards(name);
            mw.assert_unchanged(name, "a const model");
        }
    }
    after_model_call(s, name, &h, st, before, false);
    if theta.aliased || lq.aliased || (ws_form && ws.aliased) {
        assert_ne!(st, OK, "{name} with overlapping buffers");
    }
    if st == OK {
        let m = h.model(&s.models).expect("a model");
        let (th, l) = (theta.values(), lq.values());
        all_finite(name, &th);
        all_finite(name, &l);
        let params = params_of(s.t, hp, m.sizes.params);
        for row in th.chunks(d) {
            assert!(
                in_closed_box(&m.shape, &params, row),
                "{name}: a sample outside the box: {row:?}"
            );
        }
    }
}

/// Decoded points and non-negative weights (mostly valid).
fn batch(src: &mut Src, n: usize, d: usize) -> (Arg, Arg) {
    let theta = if src.chance(200) {
        Arg::exact(&rows(src, n, d))
    } else {
        Arg::input(src, n * d)
    };
    let weights = if src.chance(200) {
        Arg::exact(&(0..n).map(|_| src.f64_in(0.0, 3.0)).collect::<Vec<_>>())
    } else {
        Arg::input(src, n)
    };
    (theta, weights)
}

fn op_loss_grad(s: &mut State, src: &mut Src) {
    let name = "lwf_model_loss_grad";
    let h = Handle::decode(src, &s.models);
    let before = params_before(s, &h);
    let (d, p) = h
        .model(&s.models)
        .map_or((2, 8), |m| (m.shape.dim, m.sizes.params));
    let n = src.range(0, MAX_N);
    let (theta, weights) = batch(src, n, d);
    let mut grad = Arg::output(src, p);
    let mut loss = Arg::output(src, 1);
    grad.maybe_alias(src, &theta.buf);
    loss.maybe_alias(src, &grad.buf);
    if let Some(mem) = h.mem(&s.models) {
        grad.maybe_alias(src, mem);
    }
    let (tw, ww) = (theta.watch("theta"), weights.watch("weights"));
    let (gw, lw) = (grad.watch("out_grad"), loss.watch("out_loss"));
    // SAFETY: buffers valid for the lengths passed (or refused before use); `loss` holds one
    // double unless its pointer is NULL or misaligned.
    let st = code(unsafe {
        lwf_model_loss_grad(
            h.ptr(&s.models),
            theta.ptr,
            theta.len,
            weights.ptr,
            weights.len,
            grad.ptr,
            grad.len,
            if loss.len == 0 { null_mut() } else { loss.ptr },
        )
    });
    let st = s.t.status(name, st);
    after_call(name, st, &[&tw, &ww], &[&gw, &lw], false);
    after_model_call(s, name, &h, st, before, false);
    if grad.aliased || loss.aliased {
        assert_ne!(st, OK, "{name} with overlapping buffers");
    }
    if st == OK {
        all_finite("lwf_model_loss_grad: grad", &grad.values());
        finite("lwf_model_loss_grad: loss", loss.buf.f64_at(0));
    }
}

fn op_accumulate(s: &mut State, src: &mut Src) {
    let name = "lwf_model_loss_grad_accumulate";
    let h = Handle::decode(src, &s.models);
    let before = params_before(s, &h);
    let (d, p) = h
        .model(&s.models)
        .map_or((2, 8), |m| (m.shape.dim, m.sizes.params));
    let n = src.range(0, MAX_N);
    let (theta, weights) = batch(src, n, d);
    let scale = if src.flag() {
        src.f64_in(0.0, 1.0)
    } else {
        src.f64()
    };
    // The running sums: zero, ordinary, or decoded (NaN/inf/huge: O2).
    let mut grad = Arg::input(src, p);
    if src.flag() {
        for i in 0..grad.buf.len() / 8 {
            grad.buf.set_f64(i, 0.0);
        }
    }
    let mut loss = Arg::input(src, 1);
    grad.maybe_alias(src, &theta.buf);
    loss.maybe_alias(src, &grad.buf);
    if let Some(mem) = h.mem(&s.models) {
        grad.maybe_alias(src, mem);
    }
    let (tw, ww) = (theta.watch("theta"), weights.watch("weights"));
    let (gw, lw) = (grad.watch("inout_grad"), loss.watch("inout_loss"));
    // SAFETY: buffers valid for the lengths passed (or refused before use); `loss` holds one
    // double unless its pointer is NULL or misaligned.
    let st = code(unsafe {
        lwf_model_loss_grad_accumulate(
            h.ptr(&s.models),
            theta.ptr,
            theta.len,
            weights.ptr,
            weights.len,
            scale,
            grad.ptr,
            grad.len,
            if loss.len == 0 { null_mut() } else { loss.ptr },
        )
    });
    let st = s.t.status(name, st);
    after_call(name, st, &[&tw, &ww], &[&gw, &lw], false);
    after_model_call(s, name, &h, st, before, false);
    if grad.aliased || loss.aliased {
        assert_ne!(st, OK, "{name} with overlapping buffers");
    }
    if st == OK {
        all_finite("lwf_model_loss_grad_accumulate: grad", &grad.values());
        finite("lwf_model_loss_grad_accumulate: loss", loss.buf.f64_at(0));
    }
}

fn op_adam(s: &mut State, src: &mut Src) {
    // lwf_adam_default, then odd hyper-parameters sometimes.
    let out = Out::decode::<LwfAdam>(src);
    let w = out.watch("out_adam");
    // SAFETY: NULL, misaligned or writable.
    let st = code(unsafe { lwf_adam_default(out.typed()) });
    let st = s.t.status("lwf_adam_default", st);
    after_call("lwf_adam_default", st, &[], &[&w], false);
    let mut adam = LwfAdam {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
    };
    if st == OK {
        let got = out.read::<LwfAdam>();
        assert!(
            got.lr == adam.lr
                && got.beta1 == adam.beta1
                && got.beta2 == adam.beta2
                && got.eps == adam.eps
                && got.weight_decay == adam.weight_decay,
            "lwf_adam_default"
        );
    }
    let h = Handle::decode(src, &s.models);
    if src.chance(24) {
        let before = params_before(s, &h);
        // SAFETY: a handle (valid, NULL, misaligned or a copy).
        let st = code(unsafe { lwf_model_adam_reset(h.ptr(&s.models)) });
        let st = s.t.status("lwf_model_adam_reset", st);
        after_model_call(s, "lwf_model_adam_reset", &h, st, before, false);
        return;
    }
    match src.u8() % 8 {
        0 => adam.lr = src.f64(),
        1 => adam.beta1 = src.f64(),
        2 => adam.beta2 = src.f64(),
        3 => adam.eps = src.f64(),
        4 => adam.weight_decay = src.f64(),
        _ => {}
    }
    let before = params_before(s, &h);
    let p = before.as_ref().map_or(8, |b| b.1);
    let grad = Arg::input(src, p);
    let ab = Guarded::of(&adam);
    let ap: *const LwfAdam = if src.chance(8) { null() } else { ab.typed() };
    let (aw, gw) = (Watch::new("adam", &ab), grad.watch("grad"));
    // SAFETY: buffers valid for the lengths passed (or refused before use).
    let st = code(unsafe { lwf_model_adam_step(h.ptr(&s.models), ap, grad.ptr, grad.len) });
    let st = s.t.status("lwf_model_adam_step", st);
    after_call("lwf_model_adam_step", st, &[&aw, &gw], &[], false);
    after_model_call(s, "lwf_model_adam_step", &h, st, before, true);
    if st == OK {
        let m = h.model(&s.models).expect("a model");
        params_of(s.t, h.ptr(&s.models), m.sizes.params);
    }
}

/// `lwf_model_save` into a decoded buffer; on success the bytes inspect and load back to the
/// same parameters, and with valid arguments the save must succeed.
fn op_save_load(s: &mut State, src: &mut Src) {
    let h = Handle::decode(src, &s.models);
    let need = h.model(&s.models).map_or(64, |m| m.sizes.serialized);
    let (len, real) = match src.u8() % 8 {
        0 => (need - 1, need - 1),
        1 => (0, 0),
        2 => (unaddressable(src, 1), 1),
        3 => (need + 9, need + 9),
        _ => (need, need),
    };
    let bytes = Guarded::bytes(real, 0x77);
    let bp: *mut u8 = if src.chance(8) {
        null_mut()
    } else {
        bytes.ptr()
    };
    let mut written = Out::decode::<usize>(src);
    if src.chance(8) && bytes.len() >= 16 {
        written.ptr = bytes.offset_ptr(8);
    }
    let mem_watch = h.mem(&s.models).map(|g| Watch::new("model", g));
    let (bw, ww) = (
        Watch::new("out_bytes", &bytes),
        written.watch("out_written"),
    );
    // SAFETY: buffers valid for the lengths passed (or refused before use).
    let st = code(unsafe { lwf_model_save(h.ptr(&s.models), bp, len, written.typed()) });
    let st = s.t.status("lwf_model_save", st);
    after_call("lwf_model_save", st, &[], &[&bw, &ww], false);
    if let Some(mw) = &mem_watch {
        mw.guards("lwf_model_save");
        mw.assert_unchanged("lwf_model_save", "a const model");
    }
    after_model_call(s, "lwf_model_save", &h, st, None, false);
    let valid_args = bp == bytes.ptr() && len >= need && len <= real && written.is_direct();
    if h.model(&s.models).is_some() && valid_args {
        assert_eq!(st, OK, "lwf_model_save with valid arguments");
    }
    if st != OK {
        return;
    }
    assert!(written.is_direct());
    let n = written.read::<usize>();
    assert_eq!(
        n, need,
        "lwf_model_save wrote {n} bytes, the size query says {need}"
    );
    let file = bytes.snapshot()[..n].to_vec();
    let m = h.model(&s.models).expect("a model");
    let params = params_of(s.t, h.ptr(&s.models), m.sizes.params);
    // The core reads it back bit for bit.
    let mut back = vec![0.0f64; params.len()];
    let shape = lwflow::format::load::<f64>(&file, &mut back).unwrap_or_else(|e| {
        panic!(
            "lwf_model_save wrote bytes the core refuses ({e:?}): {:?} with parameters {params:?}",
            m.shape
        )
    });
    assert_eq!(shape.param_len(), params.len());
    assert!(params
        .iter()
        .zip(&back)
        .all(|(a, b)| a.to_bits() == b.to_bits()));
    // Load it through the ABI into fresh memory, sometimes with odd arguments.
    load_into(s, src, &file, Some(&params));
}

/// `lwf_model_load` of `file` into decoded memory; with valid arguments and `expect` given, the
/// load succeeds and holds those parameters. A successful load may replace a model slot.
pub fn load_into(s: &mut State, src: &mut Src, file: &[u8], expect: Option<&[f64]>) {
    let inspected = inspect(s.t, file);
    let need = inspected
        .as_ref()
        .and_then(|sh| sizes(s.t, sh))
        .map_or(4096, |z| z.model_bytes);
    if need > MEM_CAP {
        return;
    }
    let fb = Guarded::from_bytes(file);
    let len = match src.u8() % 8 {
        0 => need.saturating_sub(8),
        1 => unaddressable(src, 1),
        _ => need,
    };
    let mem = Guarded::bytes(len.min(need), 0xEE);
    let mp: *mut c_void = match src.u8() % 16 {
        0 => null_mut(),
        1 => mem.offset_ptr(4).cast(),
        _ => mem.ptr().cast(),
    };
    let fp: *const u8 = if src.chance(8) { null() } else { fb.ptr() };
    let mut out = Out::decode::<*mut LwfModel>(src);
    if src.chance(8) && mem.len() >= 16 {
        out.ptr = mem.offset_ptr(8);
    }
    let (fw, mw, ow) = (
        Watch::new("bytes", &fb),
        Watch::new("mem", &mem),
        out.watch("out_model"),
    );
    // SAFETY: buffers valid for the lengths passed (or refused before use).
    let st = code(unsafe { lwf_model_load(mp, len, fp, fb.len(), out.typed()) });
    let st = s.t.status("lwf_model_load", st);
    after_call("lwf_model_load", st, &[&fw], &[&mw, &ow], false);
    let valid_args = mp == mem.ptr().cast::<c_void>() && len >= need && len <= mem.len();
    let valid_args = valid_args && fp == fb.ptr().cast_const() && out.is_direct();
    if inspected.is_some() && valid_args {
        assert_eq!(
            st, OK,
            "lwf_model_load refused bytes lwf_model_inspect accepts"
        );
    }
    if inspected.is_none() {
        assert_ne!(
            st, OK,
            "lwf_model_load accepted bytes lwf_model_inspect refuses"
        );
    }
    if st != OK {
        return;
    }
    let shape = inspected.expect("inspected");
    let sizes = sizes(s.t, &shape).expect("a loaded model's shape is valid");
    let m = Model {
        handle: out.read::<*mut LwfModel>(),
        mem,
        shape,
        sizes,
    };
    assert_eq!(m.handle.cast::<u8>(), m.mem.ptr());
    check_model_shape(s.t, &m);
    let params = m.params(s.t);
    if let Some(want) = expect {
        assert!(
            params
                .iter()
                .zip(want)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "lwf_model_load: not the saved parameters"
        );
    }
    if s.models.len() < 3 {
        s.models.push(m);
    } else {
        let i = src.below(3);
        s.models[i] = m;
    }
}

/// `lwf_model_inspect` with valid arguments: the shape, or `None` (`LWF_BAD_FORMAT`). Agrees
/// with the core's `format::inspect`.
pub fn inspect(t: &mut Tally, file: &[u8]) -> Option<LwfShape> {
    let fb = Guarded::from_bytes(file);
    let out = Out::exact::<LwfShape>();
    let (fw, ow) = (Watch::new("bytes", &fb), out.watch("out_shape"));
    // SAFETY: valid buffers.
    let st = code(unsafe { lwf_model_inspect(fb.ptr(), fb.len(), out.typed()) });
    let st = t.status("lwf_model_inspect", st);
    after_call("lwf_model_inspect", st, &[&fw], &[&ow], false);
    let core = lwflow::format::inspect(file);
    assert_eq!(
        st == OK,
        core.is_ok(),
        "lwf_model_inspect ({st}) and the core's inspect ({core:?}) disagree"
    );
    if st != OK {
        assert_eq!(st, BAD_FORMAT);
        return None;
    }
    let got = out.read::<LwfShape>();
    let (cs, _) = core.expect("ok");
    assert_eq!(got.dim, cs.dim);
    assert_eq!(got.hidden, cs.hidden);
    assert_eq!(got.hidden_layers, cs.hidden_layers);
    assert_eq!(got.couplings, cs.couplings);
    assert_eq!(got.components, cs.components());
    assert_eq!(got.clamp, f64::from(cs.clamp));
    assert_eq!(got.affine == 1, cs.affine);
    assert_eq!(got.bounded == 1, cs.bounded);
    Some(got)
}

fn op_model_shape(s: &mut State, src: &mut Src) {
    let h = Handle::decode(src, &s.models);
    let out = Out::decode::<LwfShape>(src);
    let mem_watch = h.mem(&s.models).map(|g| Watch::new("model", g));
    let w = out.watch("out_shape");
    // SAFETY: NULL, misaligned or valid pointers.
    let st = code(unsafe { lwf_model_shape(h.ptr(&s.models), out.typed()) });
    let st = s.t.status("lwf_model_shape", st);
    after_call("lwf_model_shape", st, &[], &[&w], false);
    if let Some(mw) = &mem_watch {
        mw.guards("lwf_model_shape");
        mw.assert_unchanged("lwf_model_shape", "a const model");
    }
    after_model_call(s, "lwf_model_shape", &h, st, None, false);
    if let (Some(m), true) = (h.model(&s.models), out.is_direct()) {
        assert_eq!(st, OK, "lwf_model_shape with valid arguments");
        check_model_shape(s.t, m);
    }
}

fn op_rng(s: &mut State, src: &mut Src) {
    let out = Out::decode::<LwfRng>(src);
    let w = out.watch("rng");
    let seed = src.u64();
    // SAFETY: NULL, misaligned or writable.
    let st = code(unsafe { lwf_rng_init(out.typed(), seed) });
    let st = s.t.status("lwf_rng_init", st);
    after_call("lwf_rng_init", st, &[], &[&w], false);
    if st == OK {
        s.rng.restore(&out.buf.snapshot());
    }
    if src.flag() {
        let p: *mut LwfRng = match src.u8() % 8 {
            0 => null_mut(),
            1 => s.rng.offset_ptr(4).cast(),
            _ => s.rng.typed(),
        };
        let w = Watch::new("rng", &s.rng);
        // SAFETY: NULL, misaligned or valid.
        let st = code(unsafe { lwf_rng_jump(p) });
        let st = s.t.status("lwf_rng_jump", st);
        after_call("lwf_rng_jump", st, &[], &[&w], false);
    }
}

fn op_importance(s: &mut State, src: &mut Src) {
    let name = "lwf_importance_summary";
    let n = src.range(0, 40);
    let mut log_w = Arg::input(src, n);
    if src.chance(160) {
        let v: Vec<f64> = (0..n)
            .map(|_| {
                if src.chance(20) {
                    f64::NEG_INFINITY
                } else {
                    src.f64_in(-30.0, 30.0)
                }
            })
            .collect();
        log_w = Arg::exact(&v);
    }
    let mut scratch = Arg::output(src, log_w.len.min(64));
    scratch.maybe_alias(src, &log_w.buf);
    let mut out = Out::decode::<LwfImportanceSummary>(src);
    if src.chance(6) && scratch.buf.len() >= 64 {
        out.ptr = scratch.buf.ptr();
    }
    let overlap = out.ptr == scratch.buf.ptr() && !scratch.aliased && scratch.len > 0;
    let (lw, ow) = (
        log_w.watch("log_w"),
        out.watch_typed::<LwfImportanceSummary>("out_summary"),
    );
    // SAFETY: buffers valid for the lengths passed (or refused before use).
    let st = code(unsafe {
        lwf_importance_summary(log_w.ptr, log_w.len, scratch.ptr, scratch.len, out.typed())
    });
    let st = s.t.status(name, st);
    after_call(name, st, &[&lw], &[&ow], false);
    scratch.buf.check_guards("lwf_importance_summary: scratch");
    if scratch.aliased || overlap {
        assert_ne!(st, OK, "{name} with overlapping buffers");
    }
    if st == OK {
        let r = out.read::<LwfImportanceSummary>();
        for (f, v) in [
            ("log_z", r.log_z),
            ("log_z_se", r.log_z_se),
            ("ess", r.ess),
            ("kl", r.kl),
            ("k_hat", r.k_hat),
        ] {
            finite(&format!("{name}.{f}"), v);
        }
        assert_eq!(r.n, log_w.len);
        assert!(
            r.ess >= 1.0 - 1e-9 && r.ess <= r.n as f64 * (1.0 + 1e-9),
            "{r:?}"
        );
        assert!(r.has_k_hat == 0 || r.has_k_hat == 1);
        if r.has_k_hat == 0 {
            assert_eq!(r.k_hat, 0.0);
        }
    }
}

/// The functions without arguments, and `lwf_status_message` of any int.
fn op_static(s: &mut State, src: &mut Src) {
    assert_eq!(lwf_model_align(), 8);
    assert_eq!(lwf_version(), 100);
    let v = lwf_version_string();
    assert!(!v.is_null());
    // SAFETY: a static NUL-terminated string (documented).
    let v = unsafe { core::ffi::CStr::from_ptr(v) };
    assert_eq!(v.to_bytes(), b"0.1.0");
    let code_in = if src.flag() {
        src.range(0, 19) as i32 - 1
    } else {
        src.u32() as i32
    };
    let m = lwf_status_message(code_in);
    assert!(!m.is_null());
    // SAFETY: a static NUL-terminated string (documented).
    let m = unsafe { core::ffi::CStr::from_ptr(m) };
    assert!(!m.to_bytes().is_empty() && m.to_bytes().len() < 300);
    let _ = s;
}

/// A byte copy of a model is the same model at its new address; a copy with a changed header
/// byte is refused.
fn op_copy(s: &mut State, src: &mut Src) {
    if s.models.is_empty() {
        return;
    }
    let i = src.below(s.models.len());
    let m = &s.models[i];
    let copy = Guarded::from_bytes(&m.mem.snapshot());
    let (p, d) = (m.sizes.params, m.shape.dim);
    let a = params_of(s.t, m.handle, p);
    let b = params_of(s.t, copy.ptr().cast(), p);
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    let theta: Vec<f64> = (0..2 * d).map(|_| src.f64_in(0.05, 0.95)).collect();
    let run = |t: &mut Tally, h: *mut LwfModel| {
        let out = Arg::exact_out(2);
        // SAFETY: a valid handle and exact buffers.
        let st = code(unsafe { lwf_model_log_prob(h, theta.as_ptr(), theta.len(), out.ptr, 2) });
        (t.status("lwf_model_log_prob", st), out.values())
    };
    let (sa, va) = run(s.t, s.models[i].handle);
    let (sb, vb) = run(s.t, copy.ptr().cast());
    assert_eq!(sa, sb, "a model and its byte copy disagree");
    assert!(va.iter().zip(&vb).all(|(x, y)| x.to_bits() == y.to_bits()));
    // One changed identifying byte: refused by every call that reads the model.
    let mut bytes = copy.snapshot();
    let at = src.below(HEADER_ID_BYTES);
    bytes[at] ^= src.u8().max(1);
    let bad = Guarded::from_bytes(&bytes);
    let out = Arg::exact_out(2);
    // SAFETY: `bad` is readable for the whole model; exact buffers.
    let st = code(unsafe {
        lwf_model_log_prob(bad.ptr().cast(), theta.as_ptr(), theta.len(), out.ptr, 2)
    });
    let st = s.t.status("lwf_model_log_prob", st);
    assert_eq!(st, INVALID_MODEL, "header byte {at} changed");
    let so = Out::exact::<LwfShape>();
    // SAFETY: as above.
    let st = code(unsafe { lwf_model_shape(bad.ptr().cast(), so.typed()) });
    assert_eq!(s.t.status("lwf_model_shape", st), INVALID_MODEL);
    bad.check_guards("corrupt copy");
    copy.check_guards("copy");
}

/// Random bytes, or a saved model with a few bytes changed (and sometimes its checksum
/// fixed), through `lwf_model_inspect` (odd pointers too) and `lwf_model_load`.
fn op_inspect_bytes(s: &mut State, src: &mut Src) {
    let mut file = if let (false, Some(m)) = (src.chance(40), s.models.first()) {
        let out = Guarded::bytes(m.sizes.serialized, 0);
        let w = Out::exact::<usize>();
        // SAFETY: a valid model and exact buffers.
        let st = code(unsafe { lwf_model_save(m.handle, out.ptr(), out.len(), w.typed()) });
        assert_eq!(s.t.status("lwf_model_save", st), OK);
        out.snapshot()
    } else {
        let n = src.range(0, 96);
        (0..n).map(|_| src.u8()).collect()
    };
    for _ in 0..src.range(0, 3) {
        if !file.is_empty() {
            let at = src.below(file.len());
            file[at] = src.u8();
        }
    }
    if src.flag() && file.len() >= 44 {
        super::loader::fix_crc(&mut file);
    }
    // Odd pointers.
    let fb = Guarded::from_bytes(&file);
    let fp: *const u8 = if src.chance(16) { null() } else { fb.ptr() };
    let mut out = Out::decode::<LwfShape>(src);
    if src.chance(8) && fb.len() >= 128 {
        out.ptr = fb.ptr();
    }
    let (fw, ow) = (Watch::new("bytes", &fb), out.watch("out_shape"));
    // SAFETY: buffers valid for the lengths passed.
    let st = code(unsafe { lwf_model_inspect(fp, fb.len(), out.typed()) });
    let st = s.t.status("lwf_model_inspect", st);
    after_call("lwf_model_inspect", st, &[&fw], &[&ow], false);
    if out.ptr == fb.ptr() {
        assert_ne!(st, OK, "lwf_model_inspect wrote into its input");
    }
    load_into(s, src, &file, None);
}

/// The config defaults (cheap; the fits themselves are the fit target's).
fn op_configs(s: &mut State, src: &mut Src) {
    let out = Out::decode::<LwfFitConfig>(src);
    let w = out.watch_typed::<LwfFitConfig>("out_config");
    // SAFETY: NULL, misaligned or writable.
    let st = code(unsafe { lwf_fit_config_default(out.typed()) });
    let st = s.t.status("lwf_fit_config_default", st);
    after_call("lwf_fit_config_default", st, &[], &[&w], false);
    if st == OK {
        assert_eq!(
            out.read::<LwfFitConfig>().struct_size,
            size_of::<LwfFitConfig>()
        );
    }
    let out = Out::decode::<LwfRefineConfig>(src);
    let w = out.watch("out_config");
    let dim = src.pick(&[0, 1, 2, 3, 8, 64, 65, usize::MAX]);
    // SAFETY: NULL, misaligned or writable.
    let st = code(unsafe { lwf_refine_config_default(dim, out.typed()) });
    let st = s.t.status("lwf_refine_config_default", st);
    after_call("lwf_refine_config_default", st, &[], &[&w], false);
    if st == OK {
        assert!((2..=64).contains(&dim));
        assert_eq!(
            out.read::<LwfRefineConfig>().struct_size,
            size_of::<LwfRefineConfig>()
        );
    }
}

// ---------------------------------------------------------------------------------------
// A model from elsewhere (a load, a fit, a refinement): every evaluation with valid arguments

/// Evaluates a valid model with valid arguments: `log_prob` (and `_ws`) of points inside its
/// box, `sample` (and `_ws`) with their log densities, `forward` / `inverse`, the loss and
/// gradient, a save that loads back. Each gives `LWF_OK` with finite outputs or, for the
/// evaluations, `LWF_NON_FINITE` (a result that overflowed); nothing else.
pub fn exercise(t: &mut Tally, m: &Model, seed: u64) {
    let d = m.shape.dim;
    let params = m.params(t);
    let n = 3;
    // Points: the middle of the box (or of [-1, 1]) and two others inside it.
    let (lo, hi): (Vec<f64>, Vec<f64>) = if m.shape.bounded == 1 {
        let p = params.len();
        (params[p - 2 * d..p - d].to_vec(), params[p - d..].to_vec())
    } else {
        (vec![-1.0; d], vec![1.0; d])
    };
    let theta: Vec<f64> = (0..n * d)
        .map(|i| {
            let (j, f) = (i % d, [0.5, 0.25, 0.875][i / d]);
            let (a, b) = (lo[j], hi[j]);
            // Strictly inside when the box has room (a box a few ulps wide may not at f).
            [a + f * (b - a), a + 0.5 * (b - a), 0.5 * a + 0.5 * b]
                .into_iter()
                .find(|v| *v > a && *v < b)
                .unwrap_or(a)
        })
        .collect();
    let all_inside = !theta
        .chunks(d)
        .any(|row| outside_box(&m.shape, &params, row));
    let allowed = |st: i32, name: &str| {
        assert!(
            st == OK || st == NON_FINITE,
            "{name} on a valid model with valid arguments: {st}; {:?} with parameters {params:?} at {theta:?}",
            m.shape
        );
    };
    // log_prob.
    let out = Arg::exact_out(n);
    // SAFETY: a valid model and exact buffers.
    let st = code(unsafe { lwf_model_log_prob(m.handle, theta.as_ptr(), theta.len(), out.ptr, n) });
    let st = t.status("lwf_model_log_prob", st);
    out.buf.check_guards("lwf_model_log_prob");
    allowed(st, "lwf_model_log_prob");
    if st == OK {
        check_log_q(
            "lwf_model_log_prob",
            &m.shape,
            &params,
            &theta,
            &out.values(),
        );
    } else {
        assert!(out.values().iter().all(|v| v.is_nan()));
    }
    // sample (+ the log density of the samples).
    let mut rng = LwfRng { state: [0; 4] };
    // SAFETY: a writable LwfRng.
    let st = code(unsafe { lwf_rng_init(&mut rng, seed) });
    assert_eq!(t.status("lwf_rng_init", st), OK);
    let rb = Guarded::of(&rng);
    let (th, lq) = (Arg::exact_out(n * d), Arg::exact_out(n));
    // SAFETY: a valid model and exact buffers.
    let st = code(unsafe { lwf_model_sample(m.handle, rb.typed(), th.ptr, n * d, lq.ptr, n) });
    let st = t.status("lwf_model_sample", st);
    rb.check_guards("lwf_model_sample: rng");
    th.buf.check_guards("lwf_model_sample");
    lq.buf.check_guards("lwf_model_sample");
    allowed(st, "lwf_model_sample");
    if st == OK {
        all_finite("lwf_model_sample: theta", &th.values());
        all_finite("lwf_model_sample: log_q", &lq.values());
        for row in th.values().chunks(d) {
            assert!(
                in_closed_box(&m.shape, &params, row),
                "a sample outside the box"
            );
        }
        let ws = Guarded::f64s(m.sizes.workspace, 0.0);
        let again = Arg::exact_out(n);
        let s2 = th.values();
        // SAFETY: a valid model and exact buffers.
        let st = code(unsafe {
            lwf_model_log_prob_ws(
                m.handle,
                s2.as_ptr(),
                s2.len(),
                again.ptr,
                n,
                ws.f64_ptr(),
                m.sizes.workspace,
            )
        });
        let st = t.status("lwf_model_log_prob_ws", st);
        ws.check_guards("lwf_model_log_prob_ws: ws");
        allowed(st, "lwf_model_log_prob_ws");
        if st == OK {
            check_log_q(
                "lwf_model_log_prob_ws",
                &m.shape,
                &params,
                &s2,
                &again.values(),
            );
        }
    }
    // forward of z = 0 and inverse of the points.
    let z = vec![0.0; n * d];
    let (to, ld) = (Arg::exact_out(n * d), Arg::exact_out(n));
    // SAFETY: a valid model and exact buffers.
    let st =
        code(unsafe { lwf_model_forward(m.handle, z.as_ptr(), n * d, to.ptr, n * d, ld.ptr, n) });
    let st = t.status("lwf_model_forward", st);
    allowed(st, "lwf_model_forward");
    if st == OK {
        all_finite("lwf_model_forward", &to.values());
        all_finite("lwf_model_forward: log_det", &ld.values());
    }
    let (to, ld) = (Arg::exact_out(n * d), Arg::exact_out(n));
    // SAFETY: a valid model and exact buffers.
    let st = code(unsafe {
        lwf_model_inverse(m.handle, theta.as_ptr(), n * d, to.ptr, n * d, ld.ptr, n)
    });
    let st = t.status("lwf_model_inverse", st);
    if st != INVALID_ARGUMENT || all_inside {
        allowed(st, "lwf_model_inverse");
    }
    if st == OK {
        all_finite("lwf_model_inverse", &to.values());
        all_finite("lwf_model_inverse: log_det", &ld.values());
    }
    // Loss and gradient.
    let w = vec![1.0; n];
    let (g, l) = (Arg::exact_out(m.sizes.params), Arg::exact_out(1));
    // SAFETY: a valid model and exact buffers.
    let st = code(unsafe {
        lwf_model_loss_grad(
            m.handle,
            theta.as_ptr(),
            n * d,
            w.as_ptr(),
            n,
            g.ptr,
            m.sizes.params,
            l.ptr,
        )
    });
    let st = t.status("lwf_model_loss_grad", st);
    assert!(st == OK || st == NON_FINITE, "lwf_model_loss_grad: {st}");
    if st == OK {
        all_finite("lwf_model_loss_grad", &g.values());
        finite("lwf_model_loss_grad: loss", l.buf.f64_at(0));
    }
    // Evaluations leave the parameters alone.
    let now = m.params(t);
    assert!(params
        .iter()
        .zip(&now)
        .all(|(a, b)| a.to_bits() == b.to_bits()));
    // Save and load back.
    let bytes = Guarded::bytes(m.sizes.serialized, 0);
    let wr = Out::exact::<usize>();
    // SAFETY: a valid model and exact buffers.
    let st = code(unsafe { lwf_model_save(m.handle, bytes.ptr(), bytes.len(), wr.typed()) });
    assert_eq!(
        t.status("lwf_model_save", st),
        OK,
        "lwf_model_save of a valid model"
    );
    bytes.check_guards("lwf_model_save");
    let file = bytes.snapshot();
    let mut back = vec![0.0; params.len()];
    lwflow::format::load::<f64>(&file, &mut back).expect("a saved model loads");
    assert!(params
        .iter()
        .zip(&back)
        .all(|(a, b)| a.to_bits() == b.to_bits()));
    assert!(inspect(t, &file).is_some());
}
