//! Test support for embedding providers.
//!
//! * [`conformance`]: `async fn`s that take any `&dyn Embedder` and check the
//!   contract of DESIGN.md §2 (order, batch == single, dimension, empty
//!   input, unicode, typed errors, the §4 vectors).

pub mod conformance;
