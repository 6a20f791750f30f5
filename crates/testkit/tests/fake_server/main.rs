//! The fake server driven with plain reqwest: every route, every validation
//! rule, every fault, the limits, the log and the binary.

mod binary;
mod common;
mod dialect;
mod faults;
mod limits;
mod ollama;
mod openai;
mod record;
