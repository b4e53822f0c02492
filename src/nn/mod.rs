//! Dense layers and activations on feature-major tiles (`[feature][lane]`, [`TILE`] lanes):
//! the kernels, private to the crate. Which kernel set runs is public: [`crate::kernels`].
//!
//! [`TILE`]: crate::shape::TILE

pub(crate) mod activation;
pub(crate) mod dense;
