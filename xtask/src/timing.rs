//! `--time`: wall-clock medians from criterion, compared with a criterion
//! baseline saved on the same machine (`--save-baseline` / `--baseline`).
//!
//! Significance-aware: a bench fails only when its median is more than the
//! threshold slower *and* criterion's 95% bootstrap confidence interval of
//! the median's change lies entirely above zero. A raw 5% on noise passes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::SystemTime;

use crate::{Result, cargo, workspace_root};

/// Options of the time mode.
#[derive(Debug, Clone)]
pub(crate) struct TimeOptions {
    /// The criterion baseline name.
    pub(crate) name: String,
    /// Short runs (`--warm-up-time 1 --measurement-time 3`).
    pub(crate) quick: bool,
    /// Arguments for criterion (a filter, `--sample-size`, ...).
    pub(crate) extra: Vec<String>,
    /// Percent.
    pub(crate) threshold_pct: f64,
}

fn run_benches(opts: &TimeOptions, mode: &[&str]) -> Result<()> {
    let mut cmd = cargo();
    cmd.current_dir(workspace_root())
        .args(["bench", "--package", "embeddings-bench", "--benches", "--"])
        .args(mode);
    if opts.quick {
        cmd.args(["--warm-up-time", "1", "--measurement-time", "3"]);
    }
    cmd.args(&opts.extra);
    let status = cmd
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run cargo bench: {e}"))?;
    if !status.success() {
        return Err(format!("cargo bench failed: {status}"));
    }
    Ok(())
}

/// `bench-save --time`: runs the criterion benches and saves them as the
/// baseline `opts.name`.
pub(crate) fn save(opts: &TimeOptions) -> Result<()> {
    let start = SystemTime::now() - std::time::Duration::from_secs(2);
    run_benches(opts, &["--save-baseline", &opts.name])?;
    let mut rows = Vec::new();
    collect(&criterion_dir()?, &opts.name, start, &mut rows);
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    let width = rows.iter().map(|r| r.id.len()).max().unwrap_or(5).max(5);
    println!("{:<width$}  {:>12}", "bench", "median");
    for r in rows.iter().filter(|r| r.now_ns.is_some()) {
        println!(
            "{:<width$}  {:>12}",
            r.id,
            r.now_ns.map_or("-".to_owned(), fmt_ns)
        );
    }
    eprintln!(
        "saved criterion baseline {:?} under {}",
        opts.name,
        criterion_dir()?.display()
    );
    Ok(())
}

/// `bench-check --time`: runs the benches against the baseline and prints the
/// table. Returns whether the gate fails.
pub(crate) fn check(opts: &TimeOptions) -> Result<bool> {
    // File times have coarse resolution on some file systems.
    let start = SystemTime::now() - std::time::Duration::from_secs(2);
    run_benches(opts, &["--baseline-lenient", &opts.name])?;
    let dir = criterion_dir()?;
    let mut rows = Vec::new();
    collect(&dir, &opts.name, start, &mut rows);
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    let filtered = opts.extra.iter().any(|a| !a.starts_with('-'));
    let report = render(&rows, opts.threshold_pct, filtered);
    print!("{}", report.0);
    Ok(report.1)
}

fn criterion_dir() -> Result<PathBuf> {
    let out = cargo()
        .current_dir(workspace_root())
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("cannot read cargo metadata: {e}"))?;
    let target = v["target_directory"]
        .as_str()
        .ok_or("cargo metadata has no target_directory")?;
    Ok(Path::new(target).join("criterion"))
}

/// One criterion benchmark found on disk.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TimeRow {
    /// criterion's full id (`group/function/value`).
    pub(crate) id: String,
    /// Median of the baseline, in ns.
    pub(crate) base_ns: Option<f64>,
    /// Median now, in ns (when this run measured it).
    pub(crate) now_ns: Option<f64>,
    /// Relative change of the median and its 95% confidence interval.
    pub(crate) change: Option<(f64, f64, f64)>,
}

fn read_json(path: &Path) -> Option<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn fresh(path: &Path, since: SystemTime) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t >= since)
}

fn collect(dir: &Path, name: &str, since: SystemTime, rows: &mut Vec<TimeRow>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let new = dir.join("new");
    let base = dir.join(name);
    let bench_file = [new.join("benchmark.json"), base.join("benchmark.json")]
        .into_iter()
        .find(|p| p.exists());
    if let Some(bench_file) = bench_file {
        let id = read_json(&bench_file)
            .and_then(|v| v["full_id"].as_str().map(str::to_owned))
            .unwrap_or_else(|| dir.display().to_string());
        let median = |p: &Path| read_json(p).and_then(|v| v["median"]["point_estimate"].as_f64());
        let now_file = new.join("estimates.json");
        let now_ns = fresh(&now_file, since).then(|| median(&now_file)).flatten();
        let base_ns = median(&base.join("estimates.json"));
        let change_file = dir.join("change").join("estimates.json");
        let change = (now_ns.is_some() && base_ns.is_some() && fresh(&change_file, since))
            .then(|| read_json(&change_file))
            .flatten()
            .and_then(|v| {
                let m = &v["median"];
                Some((
                    m["point_estimate"].as_f64()?,
                    m["confidence_interval"]["lower_bound"].as_f64()?,
                    m["confidence_interval"]["upper_bound"].as_f64()?,
                ))
            });
        if now_ns.is_some() || base_ns.is_some() {
            rows.push(TimeRow {
                id,
                base_ns,
                now_ns,
                change,
            });
        }
    }
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() && p != new && p != base && !p.ends_with("change") && !p.ends_with("report") {
            collect(&p, name, since, rows);
        }
    }
}

/// The verdict on one timed bench: `(label, fails)`.
pub(crate) fn verdict(row: &TimeRow, threshold_pct: f64, filtered: bool) -> (&'static str, bool) {
    let t = threshold_pct / 100.0;
    match (row.base_ns, row.now_ns, row.change) {
        (Some(_), Some(_), Some((point, lo, hi))) => {
            if point > t && lo > 0.0 {
                ("REGRESSED", true)
            } else if point > t {
                ("slower, not significant", false)
            } else if point < -t && hi < 0.0 {
                ("improved", false)
            } else {
                ("ok", false)
            }
        }
        (Some(_), Some(_), None) => ("no comparison", true),
        (None, Some(_), _) => ("NOT IN BASELINE", true),
        (Some(_), None, _) if filtered => ("not run (filtered)", false),
        (Some(_), None, _) => ("MISSING NOW", true),
        (None, None, _) => ("-", false),
    }
}

/// Formats nanoseconds for people.
pub(crate) fn fmt_ns(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.2} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.3} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.3} ms", ns / 1e6)
    } else {
        format!("{:.3} s", ns / 1e9)
    }
}

/// The table and whether the gate fails.
pub(crate) fn render(rows: &[TimeRow], threshold_pct: f64, filtered: bool) -> (String, bool) {
    let width = rows.iter().map(|r| r.id.len()).max().unwrap_or(5).max(5);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<width$}  {:>12}  {:>12}  {:>8}  {:>19}  verdict",
        "bench", "baseline", "now", "change", "95% CI"
    );
    let mut failed = 0;
    let mut skipped = 0;
    for r in rows {
        let (label, fails) = verdict(r, threshold_pct, filtered);
        if r.now_ns.is_none() && !fails {
            // Not run this time (a criterion filter): not worth a line.
            skipped += 1;
            continue;
        }
        failed += usize::from(fails);
        let t = |x: Option<f64>| x.map_or("-".to_owned(), fmt_ns);
        let (change, ci) = r
            .change
            .map_or(("-".to_owned(), "-".to_owned()), |(p, lo, hi)| {
                (
                    format!("{:+.1}%", p * 100.0),
                    format!("[{:+.1}%, {:+.1}%]", lo * 100.0, hi * 100.0),
                )
            });
        let _ = writeln!(
            out,
            "{:<width$}  {:>12}  {:>12}  {:>8}  {:>19}  {label}",
            r.id,
            t(r.base_ns),
            t(r.now_ns),
            change,
            ci
        );
    }
    let _ = writeln!(
        out,
        "\n{} benches (criterion medians; {skipped} not run); a bench fails when it is more than \
         {threshold_pct:.1}% slower and the 95% interval of the change is above zero; {failed} failing",
        rows.len() - skipped
    );
    (out, failed > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(change: Option<(f64, f64, f64)>) -> TimeRow {
        TimeRow {
            id: "g/f".into(),
            base_ns: Some(100.0),
            now_ns: Some(110.0),
            change,
        }
    }

    #[test]
    fn only_significant_slowdowns_over_the_threshold_fail() {
        assert_eq!(
            verdict(&row(Some((0.10, 0.08, 0.12))), 5.0, false),
            ("REGRESSED", true)
        );
        // +10% but the interval includes zero: noise
        assert!(!verdict(&row(Some((0.10, -0.02, 0.2))), 5.0, false).1);
        // significant but under the threshold
        assert_eq!(
            verdict(&row(Some((0.04, 0.03, 0.05))), 5.0, false),
            ("ok", false)
        );
        assert_eq!(
            verdict(&row(Some((-0.2, -0.25, -0.15))), 5.0, false),
            ("improved", false)
        );
    }

    #[test]
    fn missing_benches_fail_unless_filtered_out() {
        let mut r = row(None);
        r.now_ns = None;
        assert_eq!(verdict(&r, 5.0, false), ("MISSING NOW", true));
        assert!(!verdict(&r, 5.0, true).1);
        let mut r = row(None);
        r.base_ns = None;
        assert_eq!(verdict(&r, 5.0, false), ("NOT IN BASELINE", true));
        let (text, failed) = render(&[r], 5.0, false);
        assert!(failed && text.contains("1 failing"), "{text}");
    }

    #[test]
    fn times_are_formatted_for_people() {
        assert_eq!(fmt_ns(1.5), "1.50 ns");
        assert_eq!(fmt_ns(1_500.0), "1.500 µs");
        assert_eq!(fmt_ns(2_500_000.0), "2.500 ms");
    }
}
