//! # lwflow
//!
//! Allocation-free, panic-free `no_std` likelihood-weighted normalizing flows: RealNVP affine
//! coupling flows on Gaussian or Gaussian-mixture bases, with exact hand-written gradients,
//! Adam, and a checksummed model format. All storage is the caller's: a flat parameter slice
//! ([`Shape::param_len`]), a workspace ([`Shape::workspace_len`]) and batch buffers.
//!
//! ```
//! use lwflow::{Adam, BaseKind, Flow, Shape, init_params};
//! use rand_xoshiro::{rand_core::SeedableRng, Xoshiro256PlusPlus};
//!
//! const SHAPE: Shape = Shape::new(2, 16, 4).with_base(BaseKind::Mixture(2));
//! let mut params = [0.0f64; SHAPE.param_len()];
//! let mut grad = [0.0f64; SHAPE.param_len()];
//! let mut adam_state = [0.0f64; SHAPE.optimizer_len()];
//! let mut ws = [0.0f64; SHAPE.workspace_len()];
//! let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
//! init_params(&SHAPE, &mut params, &mut rng)?;
//!
//! // Weighted samples θᵢ, wᵢ (here: two points, equal weights).
//! let theta = [-1.0, 0.5, 2.0, -0.25];
//! let weights = [1.0, 1.0];
//! let adam = Adam::default();
//! for t in 1..=10 {
//!     let loss = Flow::new(SHAPE, &params)?.loss_and_gradient(&theta, &weights, &mut grad, &mut ws)?;
//!     assert!(loss.is_finite());
//!     adam.step(&SHAPE, &mut params, &grad, &mut adam_state, t)?;
//! }
//! let flow = Flow::new(SHAPE, &params)?;
//! let mut log_q = [0.0; 2];
//! flow.log_prob(&theta, &mut log_q, &mut ws)?;
//! let (mut samples, mut sample_log_q) = ([0.0; 8], [0.0; 4]);
//! flow.sample(&mut rng, &mut samples, &mut sample_log_q, &mut ws)?;
//! # Ok::<(), lwflow::Error>(())
//! ```
//!
//! The core never allocates and never panics: every fallible call returns [`Error`].
#![no_std]
// Unsafe only where a kernel compiled for AVX2/AVX-512 is called after run-time detection
// (`nn::dense`'s dispatch) and for the detection itself (`kernels`); each site is an
// `#[allow(unsafe_code)]` with a SAFETY comment.
#![deny(unsafe_code)]
#![deny(missing_docs)]
#![doc(test(attr(deny(warnings))))]
// `!(x > y)` is deliberate throughout: it sends NaN to the refusing branch.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod base;
mod codec;
pub mod diagnostics;
pub mod error;
pub mod flow;
pub mod format;
pub mod init;
pub mod kernels;
mod logsum;
mod nn;
pub mod optim;
pub mod real;
mod rng;
pub mod shape;
pub mod train;

pub use error::{Error, FormatError, ShapeError};
pub use flow::Flow;
pub use init::{
    init_params, latent_index, set_affine, set_box, set_gaussian_base, set_mixture_base,
};
pub use optim::adam::Adam;
pub use rand_core;
pub use real::Real;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
pub use shape::{Activation, BaseKind, Shape, TILE};
