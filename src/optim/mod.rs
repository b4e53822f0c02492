//! Optimisers over the flat parameter slice.

pub mod adam;
