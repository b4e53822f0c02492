//! # lwflow C ABI
//!
//! The whole of lwflow for C, C++, Fortran and Julia callers, in `double`: shape validation and
//! size queries, a model in caller-provided memory, the one-call fit (prior box + likelihood
//! callback, or samples + log-weights; EM/BIC mixture base; configuration, report and a
//! progress callback that can cancel), the adaptive refinement (ask/tell or a likelihood
//! callback, in one work buffer, ending in a model with a box support and an affine
//! standardisation), batched `log_prob` and sampling, the training step's
//! pieces (loss + gradient into a flat buffer, Adam step) and save / load of the checksummed
//! model format. The header `include/lwflow.h` is generated from this crate by
//! cbindgen (pinned) and committed; a test fails on any drift.
//!
//! Conventions (see `ffi/README.md`):
//! - Symbols are `lwf_<object>_<verb>`; arguments are the object first, then inputs, then
//!   outputs; every buffer is followed by its length in elements (bytes for `uint8_t`);
//!   `const` pointers are never written.
//! - Every fallible function returns an [`LwfStatus`]; outputs are written only on `LWF_OK`
//!   (exceptions listed at [`LwfStatus`]), and `LWF_OK` never comes with a NaN or infinite
//!   output except the documented -inf log density outside a bounded model's box.
//! - Calls taking `LwfModel *` claim the model for their duration: a second such call on the
//!   same handle from another thread gets `LWF_BUSY` instead of corrupting the first.
//! - The library allocates nothing and has no global state: a model is the caller's memory,
//!   randomness is a caller-held [`LwfRng`] or a seed argument.
//! - Every exported function checks NULL, alignment, lengths, overlaps, shapes, finiteness
//!   and the model's tag, and catches panics (`LWF_PANIC`): no input can abort the host.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(missing_docs)]

mod checkpoint;
mod diagnostics;
mod eval;
mod fit;
mod fit_config;
mod guard;
#[cfg(test)]
mod harness;
mod io;
mod kernels;
mod layout;
mod model;
mod refine;
mod refine_checkpoint;
mod rng;
mod shape;
mod sink;
mod status;
mod train;
mod version;

pub use checkpoint::{
    lwf_fit_checkpoint_inspect, lwf_fit_checkpoint_size, lwf_model_fit_prior_box_resumable,
    lwf_model_fit_resume, lwf_model_fit_samples_resumable, LwfFitCheckpointInfo,
};
pub use diagnostics::{lwf_importance_summary, LwfImportanceSummary};
pub use eval::{
    lwf_model_forward, lwf_model_inverse, lwf_model_log_prob, lwf_model_log_prob_ws,
    lwf_model_sample, lwf_model_sample_ws,
};
pub use fit::{
    lwf_fit_model_size, lwf_fit_work_size, lwf_model_fit_prior_box, lwf_model_fit_samples,
    lwf_model_fit_samples_in_box, LwfEpochReport, LwfFitReport, LwfLogLikelihoodFn, LwfProgressFn,
    LwfStopReason,
};
pub use fit_config::{
    lwf_fit_config_default, LwfFitBase, LwfFitConfig, LwfNonFinitePolicy, LwfSchedule,
};
pub use io::{lwf_model_inspect, lwf_model_save};
pub use kernels::{lwf_kernels, lwf_use_kernels, LwfKernels};
pub use model::{
    lwf_model_align, lwf_model_get_params, lwf_model_init, lwf_model_load, lwf_model_set_affine,
    lwf_model_set_box, lwf_model_set_gaussian_base, lwf_model_set_mixture_base,
    lwf_model_set_params, lwf_model_shape, LwfModel,
};
pub use refine::{
    lwf_refine_ask, lwf_refine_batch_capacity, lwf_refine_config_default, lwf_refine_init,
    lwf_refine_model_size, lwf_refine_report, lwf_refine_run, lwf_refine_status, lwf_refine_tell,
    lwf_refine_work_size, lwf_refine_write_model, LwfRefine, LwfRefineConfig, LwfRefineProgressFn,
    LwfRefineReport, LwfRefineRound, LwfRefineStatus,
};
pub use refine_checkpoint::{
    lwf_refine_checkpoint, lwf_refine_checkpoint_size, lwf_refine_restore,
};
pub use rng::{lwf_rng_init, lwf_rng_jump, LwfRng};
pub use shape::{
    lwf_shape_default, lwf_shape_model_size, lwf_shape_param_count, lwf_shape_serialized_size,
    lwf_shape_validate, lwf_shape_workspace_count, LwfActivation, LwfBaseKind, LwfShape,
};
pub use sink::LwfCheckpointFn;
pub use status::{lwf_status_message, LwfStatus};
pub use train::{
    lwf_adam_default, lwf_model_adam_reset, lwf_model_adam_step, lwf_model_loss_grad,
    lwf_model_loss_grad_accumulate, LwfAdam,
};
pub use version::{
    lwf_version, lwf_version_string, LWFLOW_VERSION, LWFLOW_VERSION_MAJOR, LWFLOW_VERSION_MINOR,
    LWFLOW_VERSION_PATCH,
};
