//! Building the `icount` runner of `embeddings-bench` and counting each
//! scenario's instructions under callgrind.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::compare::{Baseline, FORMAT, Measurement, Toolchain};
use crate::{Result, cargo, workspace_root};

/// The marker function of `crates/bench/src/bin/icount.rs`: callgrind
/// collects only while it runs.
const REGION: &str = "*icount_measured_region*";

/// Runs `program args` and returns its stdout, or an error naming the command.
fn output(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run `{program}`: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            out.status
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `valgrind --version`, or an error that says how to install it.
pub(crate) fn valgrind_version() -> Result<String> {
    match Command::new("valgrind").arg("--version").output() {
        Ok(out) if out.status.success() => {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        }
        _ => Err(
            "valgrind was not found on PATH. `cargo xtask bench-check` counts \
                  instructions with valgrind's callgrind tool; install it \
                  (Debian/Ubuntu: `apt-get install -y valgrind`; Fedora: `dnf install valgrind`; \
                  macOS is not supported by valgrind: run the gate on Linux), \
                  or compare wall-clock times with `cargo xtask bench-check --time`."
                .to_owned(),
        ),
    }
}

/// The toolchain the counts are taken with: `rustc -vV` and `valgrind --version`.
pub(crate) fn toolchain() -> Result<Toolchain> {
    let valgrind = valgrind_version()?;
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let vv = output(&rustc, &["-vV"])?;
    let field = |key: &str| {
        vv.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    Ok(Toolchain {
        rustc: field("release:"),
        rustc_commit: field("commit-hash:"),
        host: field("host:"),
        llvm: field("LLVM version:"),
        valgrind,
    })
}

/// Builds the runner in release mode (with `features`) and returns a copy of
/// it named `icount-<tag>`, so that a later build with other features does
/// not replace it under us.
pub(crate) fn build_runner(features: &[&str], tag: &str) -> Result<PathBuf> {
    let mut cmd = cargo();
    cmd.current_dir(workspace_root()).args([
        "build",
        "--release",
        "--package",
        "embeddings-bench",
        "--bin",
        "icount",
        "--message-format=json-render-diagnostics",
    ]);
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    eprintln!(
        "building the instruction-count runner (release{})",
        if features.is_empty() {
            String::new()
        } else {
            format!(", features {}", features.join(","))
        }
    );
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err("building the instruction-count runner failed".to_owned());
    }
    let exe = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact" && v["target"]["name"] == "icount")
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .ok_or("cargo did not report the icount executable")?;
    let copy = exe.with_file_name(format!("icount-{tag}"));
    std::fs::copy(&exe, &copy)
        .map_err(|e| format!("cannot copy {} to {}: {e}", exe.display(), copy.display()))?;
    Ok(copy)
}

/// The runner's scenarios, in its order.
pub(crate) fn list(runner: &Path) -> Result<Vec<String>> {
    let text = output(&runner.to_string_lossy(), &["--list"])?;
    Ok(text
        .lines()
        .filter_map(|l| l.split('\t').next())
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect())
}

/// Counts one scenario under callgrind; `out_dir` receives the callgrind file.
pub(crate) fn run_one(runner: &Path, scenario: &str, out_dir: &Path) -> Result<Measurement> {
    let file = out_dir.join(format!("{}.callgrind", scenario.replace('/', "__")));
    let out = Command::new("valgrind")
        .args([
            "--tool=callgrind",
            "--collect-atstart=no",
            &format!("--toggle-collect={REGION}"),
            &format!("--callgrind-out-file={}", file.display()),
        ])
        .arg(runner)
        .arg(scenario)
        .output()
        .map_err(|e| format!("cannot run valgrind: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "scenario {scenario} failed under valgrind ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| format!("scenario {scenario}: the runner printed no result"))?;
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("scenario {scenario}: {e}: {line}"))?;
    let int = |k: &str| {
        v[k].as_u64()
            .ok_or_else(|| format!("scenario {scenario}: no {k} in {line}"))
    };
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let instructions =
        callgrind_total(&text).ok_or_else(|| format!("no `totals:` line in {}", file.display()))?;
    if instructions == 0 {
        return Err(format!(
            "scenario {scenario}: callgrind counted 0 instructions: the marker \
             function `icount_measured_region` was not found (inlined or renamed?)"
        ));
    }
    Ok(Measurement {
        iterations: int("iterations")?,
        instructions,
        allocations: int("allocations")?,
        bytes: int("bytes")?,
    })
}

/// The `Ir` total of a callgrind output file (`totals:`, else `summary:`).
pub(crate) fn callgrind_total(text: &str) -> Option<u64> {
    let find = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    };
    find("totals:").or_else(|| find("summary:"))
}

/// Counts every scenario, `jobs` valgrind processes at a time (counts do not
/// depend on parallelism: each process runs one scenario on one thread).
pub(crate) fn run_all(
    runner: &Path,
    scenarios: &[String],
    jobs: usize,
    label: &str,
) -> Result<Baseline> {
    let out_dir = runner
        .parent()
        .unwrap_or(Path::new("."))
        .join("xtask-callgrind")
        .join(label);
    std::fs::create_dir_all(&out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let toolchain = toolchain()?;
    eprintln!(
        "counting {} scenarios under callgrind ({jobs} at a time, {label})",
        scenarios.len()
    );
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(name) = scenarios.get(i) else { break };
                    let r = run_one(runner, name, &out_dir);
                    results.lock().unwrap().push((name.clone(), r));
                }
            });
        }
    });
    let mut map = std::collections::BTreeMap::new();
    let mut errors = Vec::new();
    for (name, r) in results.into_inner().unwrap() {
        match r {
            Ok(m) => {
                map.insert(name, m);
            }
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors.join("\n"));
    }
    Ok(Baseline {
        format: FORMAT,
        toolchain,
        scenarios: map,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_callgrind_total() {
        let text = "version: 1\ncmd: icount x\nevents: Ir\nsummary: 6761698\n\nfn=(1)\n5 3\n\ntotals: 6761698\n";
        assert_eq!(callgrind_total(text), Some(6_761_698));
        assert_eq!(callgrind_total("summary: 12\n"), Some(12));
        assert_eq!(callgrind_total("events: Ir\n"), None);
    }
}
