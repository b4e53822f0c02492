//! Dense layers and activations on feature-major tiles (`[feature][lane]`, [`TILE`] lanes).
//!
//! [`TILE`]: crate::shape::TILE

pub mod activation;
pub mod dense;
pub mod isa;
