//! A model in caller memory: layout, the tagged header that lets every call recognise a valid
//! handle, initialisation, and access to its parameters and base.
//!
//! Layout of the `lwf_shape_model_size` bytes at `mem` (8-byte aligned; offsets in bytes):
//!
//! | offset | content |
//! |---:|---|
//! | 0 | header: tag, layout version, shape, total size, header checksum, Adam step count |
//! | 96 | busy word: 0, or the model's address while a call uses its workspace (see [`Busy`]) |
//! | 128 | parameters, P doubles (flow, then base: the core's flat order) |
//! | 128 + 8P | gradient scratch, P doubles (results are copied out only on success) |
//! | 128 + 16P | Adam first moments, then second moments, 2P doubles |
//! | 128 + 32P | workspace, `Shape::workspace_len()` doubles |
//!
//! The layout holds no pointers, so the memory is position-independent (the busy word holds
//! an address only during a call, and one left in a byte copy means nothing at another
//! address). Nothing in it is global: two models are two disjoint pieces of memory.
//!
//! The busy word sits in bytes 96..104, which layout version 2 has always zero-filled and
//! never read, and 0 means "idle": memory initialised by an earlier build of this layout
//! version is valid as is, so the tag is not bumped.

use crate::guard::{self, check_ptr, disjoint, guard, input, out_scalar, write_scalar, Span};
use crate::layout::{layout, Layout, HEADER_BYTES, MODEL_ALIGN};
use crate::shape::{read_shape, LwfShape};
use crate::status::LwfStatus::{self, *};
use core::ffi::c_void;
use core::mem::{align_of, offset_of, size_of};
use core::sync::atomic::{AtomicUsize, Ordering};
use lwflow::rand_core::SeedableRng;
use lwflow::{
    init_params, set_affine, set_box, set_gaussian_base, set_mixture_base, Activation, BaseKind,
    Flow, Shape,
};
use rand_xoshiro::Xoshiro256PlusPlus;

/// An initialised model: an opaque view of the caller's memory. Obtain it from
/// `lwf_model_init` or `lwf_model_load`; it stays valid as long as that memory does. A model
/// may be used by one thread at a time for calls taking `LwfModel *`; calls taking
/// `const LwfModel *` may run concurrently with each other. A call taking `LwfModel *` that
/// finds another such call in progress on the same handle returns `LWF_BUSY` without touching
/// the model or its outputs (the misuse is detected, not queued: retry, or use a model or a
/// `_ws` workspace per thread). Freeing the model is freeing the memory: the library holds no
/// other resource.
pub struct LwfModel {
    _opaque: [u8; 0],
}

/// First word of every model: "LWFLOW" + layout version 2 (the header holds the outer maps) +
/// 0x4D ('M').
const TAG: u64 = u64::from_le_bytes(*b"LWFLOW\x02M");

/// The header at the start of model memory. Plain integers only: any bits are a valid value,
/// so a garbage handle is detected by its tag and checksum rather than being undefined.
#[repr(C)]
#[derive(Clone, Copy)]
struct Header {
    tag: u64,
    dim: u64,
    hidden: u64,
    hidden_layers: u64,
    couplings: u64,
    components: u64,
    base: u32,
    activation: u32,
    /// The outer maps: `LwfShape.affine` and `LwfShape.bounded` (0 or 1 each).
    affine: u32,
    bounded: u32,
    clamp_bits: u64,
    total_bytes: u64,
    /// FNV-1a of every field above.
    check: u64,
    /// Adam steps taken (mutable; not covered by `check`).
    adam_step: u64,
}

const _: () = assert!(size_of::<Header>() <= HEADER_BYTES);
const _: () = assert!(HEADER_BYTES % MODEL_ALIGN == 0);

/// Bytes of the header that identify the model (tag to checksum): everything but the mutable
/// Adam step count, which a handle check must not read while another call may write it.
const HEADER_ID_BYTES: usize = offset_of!(Header, adam_step);
/// Offset of the busy word, right after the header, in bytes every layout-2 model has zeroed.
const BUSY_OFFSET: usize = size_of::<Header>();
const _: () = assert!(BUSY_OFFSET + size_of::<AtomicUsize>() <= HEADER_BYTES);
const _: () = assert!(BUSY_OFFSET % align_of::<AtomicUsize>() == 0);
const _: () = assert!(align_of::<AtomicUsize>() <= MODEL_ALIGN);

/// The claim of one call on a model's memory (its workspace, gradient scratch, Adam state and
/// parameters), held from [`open_mut`] to the end of the call and released on drop (every
/// return path, and unwinding from a panic).
///
/// The busy word holds 0 when idle and the model's own address while claimed. A
/// compare-exchange from 0 claims it; finding the model's own address means another call on
/// this handle is running: `LWF_BUSY`. Any other non-zero value can only have come with the
/// bytes from a copy of a model taken while a call ran on the original (at another address),
/// so it is stale and is taken over: a byte copy of a model always stays usable at its new
/// address.
pub(crate) struct Busy<'a> {
    word: &'a AtomicUsize,
    owner: usize,
}

impl<'a> Busy<'a> {
    /// Claims the busy word of the model at `model`.
    ///
    /// # Safety
    /// `model` passed `read_header`: a valid model of at least HEADER_BYTES bytes, 8-byte
    /// aligned, valid for reads and writes while `'a`.
    unsafe fn claim(model: *mut LwfModel) -> Result<Busy<'a>, LwfStatus> {
        let owner = model as usize;
        // SAFETY: BUSY_OFFSET + size_of::<AtomicUsize>() <= HEADER_BYTES and aligned (const
        // asserts); while the memory holds a model this library accesses these bytes only
        // atomically (init and load write them plainly, owning the memory by their contract).
        let word = unsafe { &*model.cast::<u8>().add(BUSY_OFFSET).cast::<AtomicUsize>() };
        let mut seen = 0;
        // One exchange when idle; a second takes over a stale word. The bound only guards
        // against a word that keeps changing under misuse: never spin.
        for _ in 0..4 {
            match word.compare_exchange(seen, owner, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return Ok(Busy { word, owner }),
                Err(v) if v == owner => return Err(LWF_BUSY),
                // A stale address from a byte copy (or 0 after a release): try to take it.
                Err(v) => seen = v,
            }
        }
        Err(LWF_BUSY)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        // Only our own claim is released (a word taken over since is left alone).
        let _ = self
            .word
            .compare_exchange(self.owner, 0, Ordering::Release, Ordering::Relaxed);
    }
}

impl Header {
    const ZERO: Header = Header {
        tag: 0,
        dim: 0,
        hidden: 0,
        hidden_layers: 0,
        couplings: 0,
        components: 0,
        base: 0,
        activation: 0,
        affine: 0,
        bounded: 0,
        clamp_bits: 0,
        total_bytes: 0,
        check: 0,
        adam_step: 0,
    };

    fn new(shape: &Shape, total_bytes: usize) -> Header {
        let (base, components) = shape.base.code();
        let mut h = Header {
            tag: TAG,
            dim: shape.dim as u64,
            hidden: shape.hidden as u64,
            hidden_layers: shape.hidden_layers as u64,
            couplings: shape.couplings as u64,
            components: components as u64,
            base: base.into(),
            activation: shape.activation.code().into(),
            affine: shape.affine.into(),
            bounded: shape.bounded.into(),
            clamp_bits: u64::from(shape.clamp.to_bits()),
            total_bytes: total_bytes as u64,
            check: 0,
            adam_step: 0,
        };
        h.check = h.checksum();
        h
    }

    fn checksum(&self) -> u64 {
        let words = [
            self.tag,
            self.dim,
            self.hidden,
            self.hidden_layers,
            self.couplings,
            self.components,
            u64::from(self.base) | (u64::from(self.activation) << 32),
            u64::from(self.affine) | (u64::from(self.bounded) << 32),
            self.clamp_bits,
            self.total_bytes,
        ];
        words
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
            })
    }

    /// The shape this header describes, or `LWF_INVALID_MODEL` if it is not a valid header.
    fn shape(&self) -> Result<(Shape, Layout), LwfStatus> {
        if self.tag != TAG || self.check != self.checksum() {
            return Err(LWF_INVALID_MODEL);
        }
        let bad = || LWF_INVALID_MODEL;
        let to_usize = |v: u64| usize::try_from(v).map_err(|_| bad());
        let flag = |v: u32| match v {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(bad()),
        };
        let shape = Shape {
            dim: to_usize(self.dim)?,
            hidden: to_usize(self.hidden)?,
            hidden_layers: to_usize(self.hidden_layers)?,
            couplings: to_usize(self.couplings)?,
            base: BaseKind::from_code(self.base, to_usize(self.components)?).ok_or_else(bad)?,
            activation: Activation::from_code(self.activation).ok_or_else(bad)?,
            clamp: f32::from_bits(u32::try_from(self.clamp_bits).map_err(|_| bad())?),
            affine: flag(self.affine)?,
            bounded: flag(self.bounded)?,
        };
        shape.validate().map_err(|_| bad())?;
        let layout = layout(&shape).map_err(|_| bad())?;
        if layout.total_bytes as u64 != self.total_bytes {
            return Err(LWF_INVALID_MODEL);
        }
        Ok((shape, layout))
    }
}

/// Exclusive views of an open model's regions, valid while the call holds the model's busy
/// word (released when this is dropped).
pub(crate) struct ModelMut<'a> {
    pub(crate) shape: Shape,
    pub(crate) params: &'a mut [f64],
    pub(crate) grad: &'a mut [f64],
    pub(crate) adam: &'a mut [f64],
    pub(crate) workspace: &'a mut [f64],
    pub(crate) adam_step: &'a mut u64,
    _busy: Busy<'a>,
}

/// Shared view of an open model.
pub(crate) struct ModelRef<'a> {
    pub(crate) shape: Shape,
    pub(crate) params: &'a [f64],
}

// Model memory keeps its parameters finite: init, load, set_params, the base and outer-map
// setters, the fits and the Adam step all refuse non-finite values before writing. An open
// model (header tag and checksum verified) is that proof, so its flow is built without
// rescanning the P parameters on every call (`Flow::over_finite`, O(D)). A caller that writes
// into the memory behind the library's back breaks the handle's contract: its outputs are
// meaningless (the entry points still never return LWF_OK with a non-finite one).

impl<'a> ModelRef<'a> {
    /// The model's flow.
    pub(crate) fn flow(&self) -> Result<Flow<'a, f64>, LwfStatus> {
        Ok(Flow::over_finite(self.shape, self.params)?)
    }
}

/// An open model's flow with its gradient scratch and workspace (disjoint borrows).
pub(crate) type FlowParts<'s> = (Flow<'s, f64>, &'s mut [f64], &'s mut [f64]);

impl ModelMut<'_> {
    /// The model's flow with the gradient scratch and the workspace.
    pub(crate) fn flow(&mut self) -> Result<FlowParts<'_>, LwfStatus> {
        let flow = Flow::over_finite(self.shape, self.params)?;
        Ok((flow, self.grad, self.workspace))
    }
}

/// Checks the handle and reads its header.
///
/// # Safety
/// `model` is NULL or valid for reads of the header.
unsafe fn read_header(model: *const LwfModel) -> Result<(Shape, Layout, Span), LwfStatus> {
    let header = model.cast::<Header>();
    check_ptr(header, 1)?;
    let mut h = Header::ZERO;
    // SAFETY: non-NULL, 8-byte aligned (checked); readable by the caller's contract; Header is
    // plain integers, so whatever the memory holds is a valid Header value. Only the
    // identifying prefix is read: the Adam step count after it may be written by a call
    // holding the busy word.
    unsafe {
        core::ptr::copy_nonoverlapping(
            header.cast::<u8>(),
            (&raw mut h).cast::<u8>(),
            HEADER_ID_BYTES,
        )
    };
    let (shape, layout) = h.shape()?;
    Ok((shape, layout, Span::raw(model.cast(), layout.total_bytes)))
}

/// Opens a model for reading; `LWF_OVERLAPPING_BUFFERS` if one of the `outputs` (spans of the
/// call's output buffers) overlaps the model's memory.
///
/// # Safety
/// `model` is NULL or a handle from `lwf_model_init` / `lwf_model_load` whose memory is still
/// valid and not being written by another thread.
pub(crate) unsafe fn open_ref<'a>(
    model: *const LwfModel,
    outputs: &[Span],
) -> Result<ModelRef<'a>, LwfStatus> {
    // SAFETY: forwarded contract.
    let (shape, layout, span) = unsafe { read_header(model) }?;
    for out in outputs {
        disjoint(*out, &[span])?;
    }
    // SAFETY: the header is valid, so the memory holds `total_bytes` bytes (the caller's
    // contract for a handle) and the parameters lie at HEADER_BYTES, 8-byte aligned.
    let params = unsafe {
        input(
            model.cast::<u8>().add(HEADER_BYTES).cast::<f64>(),
            layout.params,
        )
    }?;
    Ok(ModelRef { shape, params })
}

/// Opens a model for reading and writing; `LWF_OVERLAPPING_BUFFERS` if any of `buffers` (the
/// spans of every other buffer of the call) overlaps the model's memory, `LWF_BUSY` if
/// another call holds the model (see [`Busy`]). The claim lasts as long as the result.
///
/// # Safety
/// `model` is NULL or a handle from `lwf_model_init` / `lwf_model_load` whose memory is still
/// valid and, apart from calls through this library that take the busy word, not accessed by
/// another thread during the call.
pub(crate) unsafe fn open_mut<'a>(
    model: *mut LwfModel,
    buffers: &[Span],
) -> Result<ModelMut<'a>, LwfStatus> {
    // SAFETY: forwarded contract.
    let (shape, layout, span) = unsafe { read_header(model) }?;
    disjoint(span, buffers)?;
    // Claimed before any view of the regions exists; released on every early return below.
    // SAFETY: the header is valid (read_header), so the memory is a model.
    let busy = unsafe { Busy::claim(model) }?;
    let base = model.cast::<u8>();
    let p = layout.params;
    // SAFETY: a valid header means the caller gave `total_bytes` bytes of memory, which this
    // call now holds exclusively (the busy word); the regions below are disjoint, in bounds
    // and 8-byte aligned by construction of Layout, disjoint from the busy word, and no
    // buffer of the call overlaps them (checked above).
    unsafe {
        let data = base.add(HEADER_BYTES).cast::<f64>();
        let adam_step = &mut (*base.cast::<Header>()).adam_step;
        Ok(ModelMut {
            shape,
            params: guard::output(data, p)?,
            grad: guard::output(data.add(p), p)?,
            adam: guard::output(data.add(2 * p), 2 * p)?,
            workspace: guard::output(data.add(4 * p), layout.workspace)?,
            adam_step,
            _busy: busy,
        })
    }
}

/// Checks caller memory for a model of `shape` and zero-fills it.
///
/// # Safety
/// `mem` is NULL or valid for writes of `mem_len` bytes; `out_model` is NULL or writable.
pub(crate) unsafe fn prepare_memory(
    mem: *mut c_void,
    mem_len: usize,
    shape: &Shape,
    out_model: *mut *mut LwfModel,
) -> Result<(*mut u8, Layout), LwfStatus> {
    let out = out_scalar(out_model)?;
    let mem = mem.cast::<u8>();
    check_ptr(mem, mem_len)?;
    if (mem as usize) % MODEL_ALIGN != 0 {
        return Err(LWF_MISALIGNED);
    }
    let layout = layout(shape)?;
    if mem_len < layout.total_bytes {
        return Err(LWF_BUFFER_TOO_SMALL);
    }
    disjoint(
        Span::raw(out.cast::<u8>(), size_of::<*mut LwfModel>()),
        &[Span::raw(mem, layout.total_bytes)],
    )?;
    Ok((mem, layout))
}

/// Writes a fresh model (zero Adam state, zero step count) into prepared memory; `fill` sets
/// the parameters and cannot fail once the inputs have been checked.
///
/// # Safety
/// `mem` came from `prepare_memory` with this `layout`.
pub(crate) unsafe fn write_model(
    mem: *mut u8,
    shape: &Shape,
    layout: Layout,
    fill: impl FnOnce(&mut [f64]) -> Result<(), LwfStatus>,
) -> Result<(), LwfStatus> {
    // SAFETY: `mem` is valid for `total_bytes` writes (prepare_memory). Zeroing first means
    // every f64 we later view as a slice is initialised.
    unsafe { core::ptr::write_bytes(mem, 0, layout.total_bytes) };
    // SAFETY: params start at HEADER_BYTES inside the zeroed, exclusively owned memory.
    let params = unsafe { guard::output(mem.add(HEADER_BYTES).cast::<f64>(), layout.params) }?;
    fill(params)?;
    // SAFETY: the header fits in HEADER_BYTES (const assert) and mem is 8-byte aligned.
    unsafe {
        mem.cast::<Header>()
            .write(Header::new(shape, layout.total_bytes))
    };
    Ok(())
}

/// Required alignment, in bytes, of model memory (8: what `malloc`, `new double[]` and
/// Fortran allocatable arrays give). 64-byte aligned memory makes the parameters
/// cache-line aligned too.
#[no_mangle]
pub extern "C" fn lwf_model_align() -> usize {
    MODEL_ALIGN
}

/// Initialises a model of `*shape` in the caller's memory `mem` (`mem_len` bytes, at least
/// `lwf_shape_model_size`, aligned to `lwf_model_align()`), with parameters drawn from `seed`
/// (hidden layers uniform on +-1/sqrt(fan_in), last layers zero so the flow starts as the
/// identity; base N(0, I), or for a mixture equal weights, unit scales and N(0, 1) means;
/// outer maps: the identity affine map and the unit box [0, 1]^dim, to be set with
/// `lwf_model_set_affine` and `lwf_model_set_box`).
/// The same shape and seed give bit-identical parameters. Writes the handle, which points into
/// `mem`, to `*out_model`. The library allocates nothing and keeps no reference elsewhere.
///
/// Errors: `LWF_NULL_POINTER`, `LWF_MISALIGNED`, `LWF_INVALID_SHAPE`,
/// `LWF_BUFFER_TOO_SMALL` (mem_len), `LWF_OVERLAPPING_BUFFERS` (`out_model` inside `mem`).
///
/// # Safety
/// `mem` is NULL or valid for writes of `mem_len` bytes; `shape` is NULL or readable;
/// `out_model` is NULL or valid for one write.
// Same shape as refine.rs::lwf_refine_write_model (duplicates): both place a model in caller
// memory through prepare_memory; C entry points each spell out their argument list and forward
// to one implementation.
#[no_mangle]
pub unsafe extern "C" fn lwf_model_init(
    mem: *mut c_void,
    mem_len: usize,
    shape: *const LwfShape,
    seed: u64,
    out_model: *mut *mut LwfModel,
) -> LwfStatus {
    guard(|| {
        // SAFETY: forwarded contract.
        let shape = unsafe { read_shape(shape) }?;
        // SAFETY: forwarded contract.
        let (mem, layout) = unsafe { prepare_memory(mem, mem_len, &shape, out_model) }?;
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        // SAFETY: `mem` and `layout` come from prepare_memory.
        unsafe {
            write_model(mem, &shape, layout, |params| {
                init_params(&shape, params, &mut rng).map_err(LwfStatus::from)
            })
        }?;
        // SAFETY: checked by out_scalar in prepare_memory; disjoint from the model.
        unsafe { write_scalar(out_model, mem.cast::<LwfModel>()) };
        Ok(())
    })
}

/// Initialises a model from bytes written by `lwf_model_save` (or by the Rust API's
/// `format::save`, f32 or f64), in caller memory as for `lwf_model_init`; size the memory with
/// `lwf_model_inspect` + `lwf_shape_model_size`. Adam state and step count start at zero.
/// Every check (magic, version, length, checksum, header, finiteness) happens before `mem` is
/// touched.
///
/// Errors: `LWF_NULL_POINTER`, `LWF_MISALIGNED`, `LWF_BAD_FORMAT`, `LWF_BUFFER_TOO_SMALL`,
/// `LWF_OVERLAPPING_BUFFERS` (`bytes` or `out_model` inside `mem`).
///
/// # Safety
/// `mem` NULL or writable for `mem_len` bytes; `bytes` NULL or readable for `bytes_len` bytes;
/// `out_model` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lwf_model_load(
    mem: *mut c_void,
    mem_len: usize,
    bytes: *const u8,
    bytes_len: usize,
    out_model: *mut *mut LwfModel,
) -> LwfStatus {
    guard(|| {
        // SAFETY: forwarded contract.
        let bytes = unsafe { input(bytes, bytes_len) }?;
        let checked = lwflow::format::check(bytes)?;
        let shape = checked.shape();
        // SAFETY: forwarded contract.
        let (mem, layout) = unsafe { prepare_memory(mem, mem_len, &shape, out_model) }?;
        // `bytes` is only read, and `mem` is not yet viewed as a slice: check before writing.
        disjoint(
            Span::raw(mem, layout.total_bytes),
            &[Span::checked(bytes.as_ptr(), bytes.len())?],
        )?;
        // SAFETY: `mem` and `layout` come from prepare_memory; `bytes` does not overlap it.
        unsafe {
            write_model(mem, &shape, layout, |params| {
                checked.read_into(params).map_err(LwfStatus::from)
            })
        }?;
        // SAFETY: checked by out_scalar in prepare_memory; disjoint from the model.
        unsafe { write_scalar(out_model, mem.cast::<LwfModel>()) };
        Ok(())
    })
}

/// Writes the model's shape to `*out_shape`.
///
/// # Safety
/// `model` NULL or a valid handle; `out_shape` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lwf_model_shape(
    model: *const LwfModel,
    out_shape: *mut LwfShape,
) -> LwfStatus {
    guard(|| {
        let out = out_scalar(out_shape)?;
        // SAFETY: forwarded contract.
        let m = unsafe { open_ref(model, &[Span::checked(out.cast_const(), 1)?]) }?;
        // SAFETY: checked by out_scalar; disjoint from the model.
        unsafe { write_scalar(out, LwfShape::from_core(&m.shape)) };
        Ok(())
    })
}

/// Copies the flat parameter vector (`params_len` must equal `lwf_shape_param_count`) into
/// `out_params`: flow parameters, then base parameters, in the core's documented order.
///
/// # Safety
/// `model` NULL or a valid handle; `out_params` NULL or writable for `params_len` doubles.
#[no_mangle]
pub unsafe extern "C" fn lwf_model_get_params(
    model: *const LwfModel,
    out_params: *mut f64,
    params_len: usize,
) -> LwfStatus {
    guard(|| {
        let out_span = Span::checked(out_params.cast_const(), params_len)?;
        // SAFETY: forwarded contract.
        let m = unsafe { open_ref(model, &[out_span]) }?;
        if params_len != m.params.len() {
            return Err(LWF_LENGTH_MISMATCH);
        }
        // SAFETY: checked pointer, disjoint from the model (the only other buffer).
        let out = unsafe { guard::output(out_params, params_len) }?;
        out.copy_from_slice(m.params);
        Ok(())
    })
}

/// Replaces the flat parameter vector (e.g. broadcast from rank 0). `params_len` must equal
/// `lwf_shape_param_count`; every value must be finite in the model's precision, which is
/// double for every model of the C ABI (`LWF_NON_FINITE` otherwise, and nothing changes), and
/// the outer maps' values valid (a positive diagonal of the affine map's L, lo < hi with a
/// finite width for the box; `LWF_INVALID_ARGUMENT` otherwise). Extreme finite values (say
/// 1e300) are accepted, but an evaluation they make overflow returns `LWF_NON_FINITE`, never
/// `LWF_OK` with NaN or infinity. Adam state is kept; call `lwf_model_adam_reset` to restart
/// it.
///
/// # Safety
/// `model` NULL or a valid handle not used by another thread during the call (detected:
/// `LWF_BUSY`); `params` NULL or readable for `params_len` doubles.
#[no_mangle]
pub unsafe extern "C" fn lwf_model_set_params(
    model: *mut LwfModel,
    params: *const f64,
    params_len: usize,
) -> LwfStatus {
    guard(|| {
        // SAFETY: forwarded contract.
        let m = unsafe { open_mut(model, &[Span::checked(params, params_len)?]) }?;
        // SAFETY: forwarded contract; disjoint from the model (checked by open_mut).
        let src = unsafe { input(params, params_len) }?;
        if src.len() != m.params.len() {
            return Err(LWF_LENGTH_MISMATCH);
        }
        // Finite, and the outer maps valid (the couplings and base accept any finite value).
        Flow::new(m.shape, src)?;
        m.params.copy_from_slice(src);
        Ok(())
    })
}

/// Sets a `LWF_BASE_GAUSSIAN` base: means `loc` (`dim`) and standard deviations `scale`
/// (`dim`, > 0), given in data space (theta coordinates): while the couplings are the identity
/// (as after `lwf_model_init`) the flow's density is exactly N(loc, diag(scale^2)) in theta.
/// (With outer maps the base lives in the coordinates before them: the couplings' output.)
/// `LWF_INVALID_ARGUMENT` for another base kind or a scale <= 0.
///
/// # Safety
/// `model` NULL or a valid handle not used by another thread during the call (detected:
/// `LWF_BUSY`); `loc`, `scale` NULL or readable for their lengths.
// Same shape as lwf_model_set_box below (duplicates): C entry points each spell out their
// argument list and forward to one implementation; the inputs and the core setter differ.
#[no_mangle]
pub unsafe extern "C" fn lwf_model_set_gaussian_base(
    model: *mut LwfModel,
    loc: *const f64,
    loc_len: usize,
    scale: *const f64,
    scale_len: usize,
) -> LwfStatus {
    guard(|| {
        let spans = [
            Span::checked(loc, loc_len)?,
            Span::checked(scale, scale_len)?,
        ];
        // SAFETY: forwarded contract.
        let m = unsafe { open_mut(model, &spans) }?;
        // SAFETY: forwarded contract; disjoint from the model (checked by open_mut).
        let (loc, scale) = unsafe { (input(loc, loc_len)?, input(scale, scale_len)?) };
        Ok(set_gaussian_base(&m.shape, m.params, loc, scale)?)
    })
}

/// Sets a `LWF_BASE_MIXTURE` base from component weights (`K`, > 0, any sum), means (`K*dim`,
/// row-major `[K][dim]`) and standard deviations (`K*dim`, > 0), given in data space (theta
/// coordinates): while the couplings are the identity (as after `lwf_model_init`) the flow's
/// density is exactly this mixture in theta. The stored logits are ln(weight / sum of weights),
/// computed in logs where that quotient would underflow or overflow, so they are finite for
/// any positive finite weights (e.g. 1e308 and 1e-308). `LWF_INVALID_ARGUMENT` for another
/// base kind or a non-positive weight or scale, `LWF_NON_FINITE` for NaN/inf; nothing changes
/// on error.
///
/// # Safety
/// `model` NULL or a valid handle not used by another thread during the call (detected:
/// `LWF_BUSY`); the arrays NULL or readable for their lengths.
#[no_mangle]
pub unsafe extern "C" fn lwf_model_set_mixture_base(
    model: *mut LwfModel,
    weights: *const f64,
    weights_len: usize,
    means: *const f64,
    means_len: usize,
    scales: *const f64,
    scales_len: usize,
) -> LwfStatus {
    guard(|| {
        let spans = [
            Span::checked(weights, weights_len)?,
            Span::checked(means, means_len)?,
            Span::checked(scales, scales_len)?,
        ];
        // SAFETY: forwarded contract.
        let m = unsafe { open_mut(model, &spans) }?;
        // SAFETY: forwarded contract; disjoint from the model (checked by open_mut).
        let (w, mu, s) = unsafe {
            (
                input(weights, weights_len)?,
                input(means, means_len)?,
                input(scales, scales_len)?,
            )
        };
        Ok(set_mixture_base(&m.shape, m.params, w, mu, s)?)
    })
}

/// Sets the box [lo, hi] (`dim` values each, finite, lo < hi with a finite width) of a model
/// whose shape has `bounded = 1`: its density is then zero outside the open box and every
/// sample lies inside it. `LWF_INVALID_ARGUMENT` for a model without a box or lo >= hi,
/// `LWF_NON_FINITE` for NaN/inf bounds, `LWF_LENGTH_MISMATCH` for `dim` other than the
/// model's; nothing changes on error.
///
/// # Safety
/// `model` NULL or a valid handle not used by another thread during the call (detected:
/// `LWF_BUSY`); `lo`, `hi` NULL or readable for `dim` doubles each.
// Same shape as lwf_model_set_gaussian_base, lwf_model_set_mixture_base and
// lwf_model_set_affine (duplicates): C entry points each spell out their argument list and
// forward to one implementation (init.rs's setters); the shared lines are the span checks of
// their input arrays.
#[no_mangle]
pub unsafe extern "C" fn lwf_model_set_box(
    model: *mut LwfModel,
    lo: *const f64,
    hi: *const f64,
    dim: usize,
) -> LwfStatus {
    guard(|| {
        let spans = [Span::checked(lo, dim)?, Span::checked(hi, dim)?];
        // SAFETY: forwarded contract.
        let m = unsafe { open_mut(model, &spans) }?;
        // SAFETY: forwarded contract; disjoint from the model (checked by open_mut).
        let (lo, hi) = unsafe { (input(lo, dim)?, input(hi, dim)?) };
        Ok(set_box(&m.shape, m.params, lo, hi)?)
    })
}

/// Sets the affine standardisation y = shift + L u of a model whose shape has `affine = 1`:
/// `shift` (`dim` values) and the lower-triangular L packed row by row (`chol_len ==
/// dim * (dim + 1) / 2` values: L[0][0], L[1][0], L[1][1], L[2][0], ...) with a positive
/// diagonal, e.g. the Cholesky factor of the posterior's covariance. `LWF_INVALID_ARGUMENT`
/// for a model without the map or a diagonal entry <= 0, `LWF_NON_FINITE` for NaN/inf,
/// `LWF_LENGTH_MISMATCH` for a wrong length; nothing changes on error.
///
/// # Safety
/// `model` NULL or a valid handle not used by another thread during the call (detected:
/// `LWF_BUSY`); `shift` NULL or readable for `dim` doubles;
/// `chol_packed` NULL or readable for `chol_len` doubles.
#[no_mangle]
pub unsafe extern "C" fn lwf_model_set_affine(
    model: *mut LwfModel,
    shift: *const f64,
    dim: usize,
    chol_packed: *const f64,
    chol_len: usize,
) -> LwfStatus {
    guard(|| {
        let spans = [
            Span::checked(shift, dim)?,
            Span::checked(chol_packed, chol_len)?,
        ];
        // SAFETY: forwarded contract.
        let m = unsafe { open_mut(model, &spans) }?;
        // SAFETY: forwarded contract; disjoint from the model (checked by open_mut).
        let (shift, chol) = unsafe { (input(shift, dim)?, input(chol_packed, chol_len)?) };
        Ok(set_affine(&m.shape, m.params, shift, chol)?)
    })
}
