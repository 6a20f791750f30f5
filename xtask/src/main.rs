//! `cargo xtask`: workspace automation.
//!
//! ```text
//! cargo xtask bench-check               instruction counts (callgrind) vs crates/bench/baselines/icount.json
//! cargo xtask bench-save                rewrite that baseline
//! cargo xtask bench-check --self-test   prove the gate: repeat runs are identical, a slower build fails
//! cargo xtask bench-check --time        criterion wall-clock medians vs a saved criterion baseline
//! cargo xtask bench-save --time         save that criterion baseline (on a quiet machine)
//! ```
//!
//! The instruction-count gate: the `icount` runner of `embeddings-bench` is
//! built once in release mode, every scenario runs once under
//! `valgrind --tool=callgrind --collect-atstart=no --toggle-collect=*icount_measured_region*`
//! (single-threaded, fixed inputs, a fixed iteration count), and callgrind's
//! `Ir` total of the measured region is compared per iteration with the
//! baseline. The gate fails (exit 1) when a scenario is more than 5% above
//! its baseline, allocates more per iteration, is missing from either side,
//! or when the baseline was taken with another rustc or valgrind (counts from
//! different toolchains are not comparable; `--allow-toolchain-mismatch`
//! turns that into a loud warning). Exit 2: the gate could not run.
//!
//! No workspace crates are dependencies (DESIGN.md §1): xtask shells out to
//! cargo and valgrind.

mod compare;
mod icount;
mod timing;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use compare::{Baseline, Report, Verdict, compare};

/// Errors are messages for the terminal.
pub(crate) type Result<T> = std::result::Result<T, String>;

/// The scenario the `slowdown` feature of `embeddings-bench` slows down.
const SLOWED_SCENARIO: &str = "embed_query/mock/256";

const HELP: &str = "\
usage: cargo xtask <command> [options]

commands:
  bench-check    count the instructions of every benchmark scenario under valgrind
                 (callgrind) and compare them with crates/bench/baselines/icount.json;
                 exits 1 on a scenario more than 5% above its baseline, one that
                 allocates more, one missing from either side, or a toolchain mismatch
  bench-save     count them and rewrite crates/bench/baselines/icount.json (each
                 scenario twice: refuses to save counts that are not reproducible)
  distill        rebuild the embedded static model (crates/provider-static/model)
                 from all-MiniLM-L6-v2 (--teacher DIR, else $EMBEDDINGS_LOCAL_TEST_MODEL)
                 and print its quality; `distill --check` compares instead of
                 writing (same inputs, same bytes). Runs `cargo fetch` first: the
                 corpus is read from the locked crates' sources.

options:
  --threshold PCT              the regression threshold in percent (default 5)
  --jobs N                     valgrind processes at once (default: the number of cores)
  --filter TEXT                bench-check only the scenarios whose name contains TEXT
  --allow-toolchain-mismatch   compare counts taken with another rustc/valgrind
                               (warns loudly; without it a mismatch fails the gate)
  --self-test                  (bench-check) prove the gate: two runs of an unchanged
                               build are identical (0.0%), and a build with the
                               `slowdown` feature (~10% more instructions in
                               embed_query/mock/256) fails
  --time                       wall-clock medians from the criterion benches instead,
                               against a criterion baseline saved on this machine
                               with `bench-save --time` (for a quiet machine)
  --quick                      (--time) short runs: --warm-up-time 1 --measurement-time 3
  --name NAME                  (--time) the criterion baseline name (default: main)
  -- ARGS                      (--time) passed on to criterion (e.g. a bench filter)
";

/// The workspace root (xtask lives in `<root>/xtask`).
pub(crate) fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map_or(manifest.clone(), PathBuf::from)
}

/// The cargo that runs us (`$CARGO`), else `cargo` on PATH.
pub(crate) fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn baseline_path() -> PathBuf {
    workspace_root().join("crates/bench/baselines/icount.json")
}

#[derive(Debug, Default)]
struct Options {
    command: String,
    threshold_pct: f64,
    jobs: usize,
    filter: Option<String>,
    allow_toolchain_mismatch: bool,
    self_test: bool,
    time: bool,
    quick: bool,
    name: String,
    extra: Vec<String>,
}

fn parse(args: Vec<String>) -> Result<Option<Options>> {
    let mut o = Options {
        threshold_pct: 5.0,
        jobs: std::thread::available_parallelism().map_or(2, usize::from),
        name: "main".to_owned(),
        ..Options::default()
    };
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| it.next().ok_or_else(|| format!("{flag} needs a value"));
        match a.as_str() {
            "-h" | "--help" | "help" => return Ok(None),
            "--threshold" => {
                o.threshold_pct = value("--threshold")?
                    .parse()
                    .ok()
                    .filter(|t: &f64| t.is_finite() && *t >= 0.0)
                    .ok_or("--threshold wants a percentage such as 5")?;
            }
            "--jobs" => {
                o.jobs = value("--jobs")?
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or("--jobs wants a positive integer")?;
            }
            "--filter" => o.filter = Some(value("--filter")?),
            "--name" => o.name = value("--name")?,
            "--allow-toolchain-mismatch" => o.allow_toolchain_mismatch = true,
            "--self-test" => o.self_test = true,
            "--time" => o.time = true,
            "--quick" => o.quick = true,
            "--" => o.extra.extend(it.by_ref()),
            cmd if o.command.is_empty() && !cmd.starts_with('-') => o.command = cmd.to_owned(),
            other => return Err(format!("unknown argument {other:?}\n\n{HELP}")),
        }
    }
    match o.command.as_str() {
        "bench-check" | "bench-save" => {}
        "" => return Ok(None),
        c => return Err(format!("unknown command {c:?}\n\n{HELP}")),
    }
    if o.command == "bench-save" && (o.filter.is_some() || o.self_test) {
        return Err(
            "bench-save rewrites the whole baseline: --filter and --self-test do not apply".into(),
        );
    }
    if o.self_test && o.time {
        return Err(
            "--self-test proves the instruction-count gate; it does not combine with --time".into(),
        );
    }
    Ok(Some(o))
}

/// `cargo xtask distill [ARGS]`: `cargo fetch` (the corpus is the locked
/// crates' docs), then the distill binary in release mode.
fn distill(args: &[String]) -> ExitCode {
    let root = workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let run = |args: &[&str]| {
        std::process::Command::new(&cargo)
            .args(args)
            .current_dir(&root)
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if !run(&["fetch", "--locked"]) {
        eprintln!("xtask: cargo fetch failed");
        return ExitCode::from(2);
    }
    let mut a = vec![
        "run",
        "--release",
        "--locked",
        "-p",
        "embeddings-distill",
        "--",
        "build",
    ];
    a.extend(args.iter().map(String::as_str));
    if run(&a) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "distill") {
        return distill(&args[1..]);
    }
    let o = match parse(std::env::args().skip(1).collect()) {
        Ok(Some(o)) => o,
        Ok(None) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("xtask: {e}");
            return ExitCode::from(2);
        }
    };
    let result = if o.time {
        let t = timing::TimeOptions {
            name: o.name.clone(),
            quick: o.quick,
            extra: o.extra.clone(),
            threshold_pct: o.threshold_pct,
        };
        if o.command == "bench-save" {
            timing::save(&t).map(|()| true)
        } else {
            timing::check(&t).map(|failed| !failed)
        }
    } else if o.self_test {
        self_test(&o)
    } else if o.command == "bench-save" {
        bench_save(&o).map(|()| true)
    } else {
        bench_check(&o)
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::from(2)
        }
    }
}

fn read_baseline() -> Result<Baseline> {
    let path = baseline_path();
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "cannot read the baseline {}: {e}\n(create it with `cargo xtask bench-save`)",
            path.display()
        )
    })?;
    Baseline::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn scenarios(runner: &std::path::Path, filter: Option<&str>) -> Result<Vec<String>> {
    let mut names = icount::list(runner)?;
    if let Some(f) = filter {
        names.retain(|n| n.contains(f));
        if names.is_empty() {
            return Err(format!("no scenario name contains {f:?}"));
        }
    }
    Ok(names)
}

/// `bench-check`: returns whether the gate passes.
fn bench_check(o: &Options) -> Result<bool> {
    icount::valgrind_version()?;
    let mut baseline = read_baseline()?;
    let started = std::time::Instant::now();
    let runner = icount::build_runner(&[], "check")?;
    let names = scenarios(&runner, o.filter.as_deref())?;
    let now = icount::run_all(&runner, &names, o.jobs, "check")?;
    if let Some(f) = &o.filter {
        baseline.scenarios.retain(|n, _| n.contains(f.as_str()));
    }
    let report = compare(&baseline, &now, o.threshold_pct);
    print!("{}", report.render(o.allow_toolchain_mismatch));
    let failed = report.fails(o.allow_toolchain_mismatch);
    println!(
        "bench-check {} in {:.0?} (baseline {})",
        if failed { "FAILED" } else { "passed" },
        started.elapsed(),
        baseline_path().display()
    );
    Ok(!failed)
}

/// `bench-save`: counts every scenario twice and writes the baseline when
/// both runs agree exactly.
fn bench_save(o: &Options) -> Result<()> {
    icount::valgrind_version()?;
    let runner = icount::build_runner(&[], "check")?;
    let names = scenarios(&runner, None)?;
    let first = icount::run_all(&runner, &names, o.jobs, "save-1")?;
    let second = icount::run_all(&runner, &names, o.jobs, "save-2")?;
    let repeat = compare(&first, &second, 0.0);
    if !repeat.identical() {
        print!("{}", repeat.table());
        return Err(
            "two runs of the same build gave different counts: not saving a \
                    baseline that cannot be reproduced (see the table above)"
                .into(),
        );
    }
    if let Ok(old) = read_baseline() {
        println!("compared with the previous baseline:");
        print!("{}", compare(&old, &first, o.threshold_pct).render(true));
    }
    let path = baseline_path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(&path, first.to_json())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!(
        "saved {} scenarios to {} (rustc {}, {})",
        first.scenarios.len(),
        path.display(),
        first.toolchain.rustc,
        first.toolchain.valgrind
    );
    Ok(())
}

/// `bench-check --self-test`: proves that the gate is deterministic and that
/// it fails on a deliberately slower build. Returns whether the proof holds.
fn self_test(o: &Options) -> Result<bool> {
    icount::valgrind_version()?;
    let started = std::time::Instant::now();
    // The slower build first, so that the normal build is what stays in target/.
    let slow_runner = icount::build_runner(&["slowdown"], "selftest-slow")?;
    let runner = icount::build_runner(&[], "selftest")?;
    let names = scenarios(&runner, o.filter.as_deref())?;
    let first = icount::run_all(&runner, &names, o.jobs, "selftest-1")?;
    let second = icount::run_all(&runner, &names, o.jobs, "selftest-2")?;
    let slow = icount::run_all(&slow_runner, &names, o.jobs, "selftest-slow")?;

    println!("1. the same build, counted twice (the second run gated against the first):");
    let repeat = compare(&first, &second, o.threshold_pct);
    print!("{}", repeat.render(false));
    let mut problems = check_repeat(&repeat);

    println!("\n2. the build with the `slowdown` feature, gated against the first run:");
    let slowed = compare(&first, &slow, o.threshold_pct);
    print!("{}", slowed.render(false));
    problems.extend(check_slowdown(
        &slowed,
        names.iter().any(|n| n == SLOWED_SCENARIO),
    ));

    if problems.is_empty() {
        println!(
            "\nself-test passed in {:.0?}: repeated counts are identical (0.0% change) and the \
             gate fails on the slower build ({SLOWED_SCENARIO})",
            started.elapsed()
        );
        Ok(true)
    } else {
        println!("\nself-test FAILED:");
        for p in problems {
            println!("  - {p}");
        }
        Ok(false)
    }
}

/// What is wrong with a repeat run of the same build (nothing when it is
/// identical and passes).
fn check_repeat(r: &Report) -> Vec<String> {
    let mut problems = Vec::new();
    if r.fails(false) {
        problems.push("the gate fails on an unchanged build".to_owned());
    }
    for row in &r.rows {
        if row.baseline != row.now {
            problems.push(format!(
                "{}: counts differ between two runs of the same build ({:?} vs {:?})",
                row.name, row.baseline, row.now
            ));
        }
    }
    problems
}

/// What is wrong with the comparison of the slower build (nothing when the
/// gate fails on exactly the slowed scenario and passes every other).
///
/// Other scenarios may move by a fraction of a percent: the `slowdown`
/// feature changes the code of the mock, and with it how neighbouring
/// functions are inlined and laid out. Exactness is what the repeated run
/// of one build proves ([`check_repeat`]).
fn check_slowdown(r: &Report, slowed_measured: bool) -> Vec<String> {
    let mut problems = Vec::new();
    if !slowed_measured {
        return vec![format!(
            "{SLOWED_SCENARIO} was not measured (filtered out?)"
        )];
    }
    if !r.fails(false) {
        problems.push("the gate PASSED the slower build".to_owned());
    }
    for row in &r.rows {
        let expected = if row.name == SLOWED_SCENARIO {
            Verdict::Regressed
        } else {
            Verdict::Ok
        };
        if row.verdict != expected {
            problems.push(format!(
                "{}: verdict {:?}, expected {expected:?}",
                row.name, row.verdict
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use compare::{FORMAT, Measurement, Toolchain};

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn parses_the_commands() {
        let o = parse(args("bench-check --threshold 2.5 --jobs 3 --filter embed"))
            .unwrap()
            .unwrap();
        assert_eq!(
            (o.command.as_str(), o.threshold_pct, o.jobs),
            ("bench-check", 2.5, 3)
        );
        assert_eq!(o.filter.as_deref(), Some("embed"));
        let o = parse(args("bench-check --time --quick -- embed_query"))
            .unwrap()
            .unwrap();
        assert!(o.time && o.quick);
        assert_eq!(o.extra, ["embed_query"]);
        assert!(parse(args("bench-save --self-test")).is_err());
        assert!(parse(args("bench-save --filter x")).is_err());
        assert!(parse(args("bench-check --time --self-test")).is_err());
        assert!(parse(args("frobnicate")).is_err());
        assert!(parse(args("bench-check --threshold -1")).is_err());
        assert!(parse(args("--help")).unwrap().is_none());
        assert!(parse(vec![]).unwrap().is_none());
    }

    fn set(items: &[(&str, u64)]) -> Baseline {
        Baseline {
            format: FORMAT,
            toolchain: Toolchain::default(),
            scenarios: items
                .iter()
                .map(|(k, ir)| {
                    let m = Measurement {
                        iterations: 10,
                        instructions: *ir,
                        allocations: 20,
                        bytes: 100,
                    };
                    (k.to_string(), m)
                })
                .collect(),
        }
    }

    #[test]
    fn the_self_test_checks_what_it_claims() {
        let a = set(&[(SLOWED_SCENARIO, 1000), ("other", 500)]);
        assert!(check_repeat(&compare(&a, &a.clone(), 5.0)).is_empty());
        let wobbly = set(&[(SLOWED_SCENARIO, 1001), ("other", 500)]);
        assert_eq!(check_repeat(&compare(&a, &wobbly, 5.0)).len(), 1);

        let slow = set(&[(SLOWED_SCENARIO, 1100), ("other", 500)]);
        assert!(check_slowdown(&compare(&a, &slow, 5.0), true).is_empty());
        // a slowdown under the threshold would not prove anything
        let slight = set(&[(SLOWED_SCENARIO, 1040), ("other", 500)]);
        assert!(!check_slowdown(&compare(&a, &slight, 5.0), true).is_empty());
        // other scenarios may move a little (code layout), within the gate
        let layout = set(&[(SLOWED_SCENARIO, 1100), ("other", 501)]);
        assert!(check_slowdown(&compare(&a, &layout, 5.0), true).is_empty());
        // but a slowdown that also fails other scenarios proves nothing about one
        let spread = set(&[(SLOWED_SCENARIO, 1100), ("other", 600)]);
        assert!(!check_slowdown(&compare(&a, &spread, 5.0), true).is_empty());
        assert!(!check_slowdown(&compare(&a, &slow, 5.0), false).is_empty());
    }

    /// The whole proof against the real build and valgrind: slow (two release
    /// builds and three counting runs), so it is ignored by default; run it
    /// with `cargo test -p xtask -- --ignored` (or `cargo xtask bench-check --self-test`).
    #[test]
    #[ignore = "builds the bench crate in release mode and runs valgrind (about 2 minutes)"]
    fn self_test_end_to_end() {
        let o = parse(args("bench-check --self-test")).unwrap().unwrap();
        assert_eq!(self_test(&o), Ok(true));
    }
}
