//! `icount`: runs one deterministic benchmark scenario N times for callgrind.
//!
//! ```text
//! icount --list                      the scenarios, one per line: name<TAB>iterations
//! icount <scenario> [--iterations N] prepare, warm up once, run N times, print a JSON line
//! ```
//!
//! Only the measured region is counted. `cargo xtask bench-check` runs
//!
//! ```text
//! valgrind --tool=callgrind --collect-atstart=no \
//!          --toggle-collect='*icount_measured_region*' icount <scenario>
//! ```
//!
//! so callgrind counts nothing until [`icount_measured_region`] is entered and
//! stops when it returns: process start-up, the scenario's setup (building
//! the embedder, the inputs, the runtime) and the warm-up iteration are
//! outside it.
//!
//! Why `--toggle-collect` on a marker function rather than client requests
//! (`crabgrind`, `valgrind_request`) or gungraun: it needs nothing but
//! valgrind itself — no C toolchain or valgrind headers at build time, no
//! `unsafe` client-request code, no separately installed runner binary that
//! must match a library version (gungraun), and no benchmark harness whose
//! own file format would sit between us and the baseline we own. The marker
//! is an ordinary `#[inline(never)]` function with a unique name; the same
//! binary runs normally outside valgrind (useful for `--list` and to check a
//! scenario works).
//!
//! The JSON line on stdout: `{"scenario": .., "iterations": N,
//! "allocations": A, "bytes": B}`, where A and B are what the region
//! allocated in total (a counting global allocator).

use std::process::ExitCode;

use embeddings_bench::alloc::{self, CountingAlloc};
use embeddings_bench::scenarios;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// The measured region: callgrind collects exactly while this runs (and what
/// it calls). Never inlined, so the symbol exists to toggle on.
#[inline(never)]
fn icount_measured_region(run: &mut dyn FnMut(u64), n: u64) {
    run(std::hint::black_box(n));
}

fn usage() -> &'static str {
    "usage: icount --list | icount <scenario> [--iterations N]"
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("-h" | "--help") => {
            println!("{}", usage());
            ExitCode::SUCCESS
        }
        Some("--list") => {
            for s in scenarios::all() {
                println!("{}\t{}", s.name, s.iterations);
            }
            ExitCode::SUCCESS
        }
        Some(name) => {
            let Some(scenario) = scenarios::find(name) else {
                eprintln!("icount: no scenario named {name:?} (see `icount --list`)");
                return ExitCode::from(2);
            };
            let iterations = match args.get(1..) {
                Some([flag, n]) if flag == "--iterations" => match n.parse::<u64>() {
                    Ok(n) if n > 0 => n,
                    _ => {
                        eprintln!("icount: --iterations wants a positive integer, got {n:?}");
                        return ExitCode::from(2);
                    }
                },
                Some([]) => scenario.iterations,
                _ => {
                    eprintln!("{}", usage());
                    return ExitCode::from(2);
                }
            };
            let mut run = scenario.prepare();
            // Warm-up: lazy initialisation (thread-locals, the runtime's first
            // poll, allocator pools) happens here, not in the region.
            run(1);
            let before = alloc::snapshot();
            icount_measured_region(&mut *run, iterations);
            let used = alloc::snapshot() - before;
            println!(
                "{{\"scenario\":\"{}\",\"iterations\":{},\"allocations\":{},\"bytes\":{}}}",
                scenario.name, iterations, used.allocations, used.bytes
            );
            ExitCode::SUCCESS
        }
    }
}
