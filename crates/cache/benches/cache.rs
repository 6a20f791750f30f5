//! Cache benches (filled in below).
fn main() {}
