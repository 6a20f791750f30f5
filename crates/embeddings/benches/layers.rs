//! Layer overhead over the bare mock provider (filled in below).

fn main() {}
