//! stub
pub mod sigv4;
