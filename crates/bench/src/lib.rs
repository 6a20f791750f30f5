//! Benchmarks of the `embeddings` workspace and the instruction-count runner
//! behind `cargo xtask bench-check` (DESIGN.md §6).
//!
//! * `benches/embedder.rs`: criterion benches of what users pay for (registry,
//!   `embed_query`, `embed_documents`, `dimension()`, layer overhead), with
//!   allocations per call.
//! * `src/bin/icount.rs`: runs one [`scenarios`] entry N times on one thread
//!   for callgrind, counting only the measured region.
//! * [`alloc`]: the counting global allocator both use.
//! * [`fixtures`]: the fixed inputs both use.
//!
//! See `crates/bench/README.md` for how to run them and how the gate works.

pub mod alloc;
pub mod fixtures;
pub mod scenarios;
