//! The baseline file and the comparison of two sets of measurements: pure
//! logic, unit-tested without valgrind.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// The version of the baseline file format.
pub(crate) const FORMAT: u32 = 1;

/// What the instruction counts depend on besides our code. Counts taken with
/// a different toolchain are not comparable: a compiler upgrade moves them by
/// several percent either way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub(crate) struct Toolchain {
    /// `rustc -vV`: `release`, e.g. `1.95.0`.
    pub(crate) rustc: String,
    /// `rustc -vV`: `commit-hash`.
    pub(crate) rustc_commit: String,
    /// `rustc -vV`: `host`.
    pub(crate) host: String,
    /// `rustc -vV`: `LLVM version`.
    pub(crate) llvm: String,
    /// `valgrind --version`, e.g. `valgrind-3.19.0`.
    pub(crate) valgrind: String,
}

impl Toolchain {
    /// One line per field that differs: `rustc: 1.95.0 (baseline) vs 1.96.0 (now)`.
    pub(crate) fn differences(&self, now: &Toolchain) -> Vec<String> {
        let fields = [
            ("rustc", &self.rustc, &now.rustc),
            ("rustc commit", &self.rustc_commit, &now.rustc_commit),
            ("host", &self.host, &now.host),
            ("LLVM", &self.llvm, &now.llvm),
            ("valgrind", &self.valgrind, &now.valgrind),
        ];
        fields
            .into_iter()
            .filter(|(_, a, b)| a != b)
            .map(|(k, a, b)| format!("{k}: {a:?} in the baseline, {b:?} now"))
            .collect()
    }
}

/// One scenario's counts for its measured region (all iterations together).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Measurement {
    /// How many times the operation ran in the region.
    pub(crate) iterations: u64,
    /// Instructions executed in the region (callgrind's `Ir`).
    pub(crate) instructions: u64,
    /// Heap allocations made in the region.
    pub(crate) allocations: u64,
    /// Bytes those allocations asked for.
    pub(crate) bytes: u64,
}

impl Measurement {
    /// Instructions per iteration.
    pub(crate) fn ir_per_iter(&self) -> f64 {
        self.instructions as f64 / self.iterations.max(1) as f64
    }

    /// Allocations per iteration.
    pub(crate) fn allocs_per_iter(&self) -> f64 {
        self.allocations as f64 / self.iterations.max(1) as f64
    }
}

/// The file `crates/bench/baselines/icount.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Baseline {
    /// [`FORMAT`].
    pub(crate) format: u32,
    /// What the counts were taken with.
    pub(crate) toolchain: Toolchain,
    /// Scenario name -> counts, sorted by name.
    pub(crate) scenarios: BTreeMap<String, Measurement>,
}

impl Baseline {
    /// Parses the file's text.
    pub(crate) fn from_json(text: &str) -> Result<Baseline, String> {
        let b: Baseline = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if b.format != FORMAT {
            return Err(format!(
                "format {} is not the supported format {FORMAT}",
                b.format
            ));
        }
        Ok(b)
    }

    /// The file's text (pretty, sorted, with a final newline).
    pub(crate) fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a baseline serialises");
        s.push('\n');
        s
    }
}

/// The verdict on one scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within the threshold.
    Ok,
    /// More than the threshold below the baseline: passes; consider saving a
    /// new baseline so that the gain is kept.
    Improved,
    /// More than the threshold above the baseline: fails.
    Regressed,
    /// More allocations per iteration than the baseline: fails.
    MoreAllocations,
    /// In the baseline but not measured now: fails (a bench was removed or
    /// renamed without a new baseline).
    MissingNow,
    /// Measured now but not in the baseline: fails (a new bench needs a
    /// baseline to be gated).
    MissingInBaseline,
}

impl Verdict {
    /// Whether this verdict fails the gate.
    pub(crate) fn fails(self) -> bool {
        !matches!(self, Verdict::Ok | Verdict::Improved)
    }

    fn label(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Improved => "improved",
            Verdict::Regressed => "REGRESSED",
            Verdict::MoreAllocations => "MORE ALLOCATIONS",
            Verdict::MissingNow => "MISSING NOW",
            Verdict::MissingInBaseline => "NOT IN BASELINE",
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    /// Scenario name.
    pub(crate) name: String,
    /// From the baseline file.
    pub(crate) baseline: Option<Measurement>,
    /// Measured now.
    pub(crate) now: Option<Measurement>,
    /// Change of instructions per iteration, in percent.
    pub(crate) change_pct: Option<f64>,
    /// The verdict.
    pub(crate) verdict: Verdict,
}

/// The outcome of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Report {
    /// One row per scenario in either set, sorted by name.
    pub(crate) rows: Vec<Row>,
    /// The toolchain differences (empty when the toolchains match).
    pub(crate) toolchain_mismatch: Vec<String>,
    /// The threshold in percent.
    pub(crate) threshold_pct: f64,
}

/// Compares `now` with `baseline`. A scenario fails when its instructions
/// per iteration are more than `threshold_pct` percent above the baseline,
/// when it allocates more per iteration, or when it is missing from either
/// side.
pub(crate) fn compare(baseline: &Baseline, now: &Baseline, threshold_pct: f64) -> Report {
    let names: BTreeSet<&String> = baseline
        .scenarios
        .keys()
        .chain(now.scenarios.keys())
        .collect();
    let rows = names
        .into_iter()
        .map(|name| {
            let b = baseline.scenarios.get(name).copied();
            let n = now.scenarios.get(name).copied();
            let (change_pct, verdict) = match (b, n) {
                (Some(b), Some(n)) => {
                    let change = change_pct(b.ir_per_iter(), n.ir_per_iter());
                    // The epsilon keeps exactly +threshold (in decimal) a pass
                    // despite binary floating point.
                    let verdict = if change > threshold_pct + 1e-9 {
                        Verdict::Regressed
                    } else if more_allocations(&b, &n) {
                        Verdict::MoreAllocations
                    } else if change < -threshold_pct - 1e-9 {
                        Verdict::Improved
                    } else {
                        Verdict::Ok
                    };
                    (Some(change), verdict)
                }
                (Some(_), None) => (None, Verdict::MissingNow),
                (None, _) => (None, Verdict::MissingInBaseline),
            };
            Row {
                name: name.clone(),
                baseline: b,
                now: n,
                change_pct,
                verdict,
            }
        })
        .collect();
    Report {
        rows,
        toolchain_mismatch: baseline.toolchain.differences(&now.toolchain),
        threshold_pct,
    }
}

/// `now` relative to `base`, in percent.
pub(crate) fn change_pct(base: f64, now: f64) -> f64 {
    if base == 0.0 {
        if now == 0.0 { 0.0 } else { f64::INFINITY }
    } else {
        (now / base - 1.0) * 100.0
    }
}

/// Allocation counts are exact: any increase per iteration is a regression.
/// With equal iteration counts the totals are compared exactly; otherwise per
/// iteration.
fn more_allocations(b: &Measurement, n: &Measurement) -> bool {
    if b.iterations == n.iterations {
        n.allocations > b.allocations
    } else {
        n.allocs_per_iter() > b.allocs_per_iter() + 1e-9
    }
}

impl Report {
    /// Whether the gate fails: any failing row, or a toolchain mismatch
    /// unless `allow_toolchain_mismatch`.
    pub(crate) fn fails(&self, allow_toolchain_mismatch: bool) -> bool {
        self.rows.iter().any(|r| r.verdict.fails())
            || (!self.toolchain_mismatch.is_empty() && !allow_toolchain_mismatch)
    }

    /// The rows that fail.
    pub(crate) fn failures(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.verdict.fails())
    }

    /// Whether every scenario on both sides has exactly the same counts.
    pub(crate) fn identical(&self) -> bool {
        self.rows
            .iter()
            .all(|r| r.baseline.is_some() && r.baseline == r.now)
    }

    /// The table: bench, baseline, now (instructions per iteration), change,
    /// allocations per iteration, verdict.
    pub(crate) fn table(&self) -> String {
        let width = self
            .rows
            .iter()
            .map(|r| r.name.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<width$}  {:>14}  {:>14}  {:>9}  {:>13}  verdict",
            "bench", "baseline Ir/it", "now Ir/it", "change", "allocs/it"
        );
        for r in &self.rows {
            let ir =
                |m: Option<Measurement>| m.map_or("-".to_owned(), |m| fmt_count(m.ir_per_iter()));
            let change = r.change_pct.map_or("-".to_owned(), |c| format!("{c:+.1}%"));
            let allocs = match (r.baseline, r.now) {
                (Some(b), Some(n)) if b.allocs_per_iter() == n.allocs_per_iter() => {
                    fmt_allocs(n.allocs_per_iter())
                }
                (Some(b), Some(n)) => format!(
                    "{} -> {}",
                    fmt_allocs(b.allocs_per_iter()),
                    fmt_allocs(n.allocs_per_iter())
                ),
                (b, n) => fmt_allocs(b.or(n).map_or(0.0, |m| m.allocs_per_iter())),
            };
            let _ = writeln!(
                out,
                "{:<width$}  {:>14}  {:>14}  {:>9}  {:>13}  {}",
                r.name,
                ir(r.baseline),
                ir(r.now),
                change,
                allocs,
                r.verdict.label()
            );
        }
        out
    }

    /// The table, the toolchain warning and a summary, as printed by
    /// `bench-check`.
    pub(crate) fn render(&self, allow_toolchain_mismatch: bool) -> String {
        let mut out = self.table();
        if !self.toolchain_mismatch.is_empty() {
            let bar = "!".repeat(78);
            let _ = writeln!(out, "\n{bar}");
            let _ = writeln!(
                out,
                "TOOLCHAIN MISMATCH: the baseline was taken with another toolchain, so the\n\
                 counts are not comparable (a compiler upgrade moves them by several percent\n\
                 either way and could hide a real regression):"
            );
            for d in &self.toolchain_mismatch {
                let _ = writeln!(out, "  - {d}");
            }
            if allow_toolchain_mismatch {
                let _ = writeln!(
                    out,
                    "--allow-toolchain-mismatch given: comparing anyway; do not trust a pass."
                );
            } else {
                let _ = writeln!(
                    out,
                    "This fails the gate. Re-baseline on an unchanged main with this toolchain\n\
                     (`cargo xtask bench-save`, committed on its own), then check the change again."
                );
            }
            let _ = writeln!(out, "{bar}");
        }
        let failures = self.failures().count();
        let regressed = self
            .rows
            .iter()
            .filter(|r| r.verdict == Verdict::Regressed)
            .count();
        let missing = self
            .rows
            .iter()
            .filter(|r| matches!(r.verdict, Verdict::MissingNow | Verdict::MissingInBaseline))
            .count();
        let allocs = self
            .rows
            .iter()
            .filter(|r| r.verdict == Verdict::MoreAllocations)
            .count();
        let _ = writeln!(
            out,
            "\n{} scenarios; threshold +{:.1}% instructions per iteration; {} failing \
             ({regressed} regressed, {allocs} allocate more, {missing} missing on one side)",
            self.rows.len(),
            self.threshold_pct,
            failures
        );
        if self.rows.iter().any(|r| r.verdict == Verdict::Improved) {
            let _ = writeln!(
                out,
                "Some scenarios improved by more than the threshold: save a new baseline \
                 (`cargo xtask bench-save`) so that the gain is kept."
            );
        }
        out
    }
}

fn fmt_count(x: f64) -> String {
    if x >= 100.0 {
        let n = x.round() as u64;
        let s = n.to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else {
        format!("{x:.2}")
    }
}

fn fmt_allocs(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tc() -> Toolchain {
        Toolchain {
            rustc: "1.95.0".into(),
            rustc_commit: "abc".into(),
            host: "x86_64-unknown-linux-gnu".into(),
            llvm: "22.1.2".into(),
            valgrind: "valgrind-3.19.0".into(),
        }
    }

    fn m(instructions: u64, allocations: u64) -> Measurement {
        Measurement {
            iterations: 100,
            instructions,
            allocations,
            bytes: allocations * 64,
        }
    }

    fn set(items: &[(&str, Measurement)]) -> Baseline {
        Baseline {
            format: FORMAT,
            toolchain: tc(),
            scenarios: items.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    fn verdict(r: &Report, name: &str) -> Verdict {
        r.rows.iter().find(|r| r.name == name).unwrap().verdict
    }

    #[test]
    fn identical_runs_pass_with_zero_change() {
        let a = set(&[("x", m(1_000_000, 200)), ("y", m(5_000, 0))]);
        let r = compare(&a, &a.clone(), 5.0);
        assert!(!r.fails(false));
        assert!(r.identical());
        assert!(r.rows.iter().all(|r| r.change_pct == Some(0.0)));
        assert!(r.table().contains("+0.0%"), "{}", r.table());
    }

    #[test]
    fn threshold_is_exclusive_and_per_iteration() {
        let base = set(&[("x", m(1_000_000, 0))]);
        // exactly +5.0%: passes
        let r = compare(&base, &set(&[("x", m(1_050_000, 0))]), 5.0);
        assert_eq!(verdict(&r, "x"), Verdict::Ok);
        assert!(!r.fails(false));
        // +5.01%: fails
        let r = compare(&base, &set(&[("x", m(1_050_100, 0))]), 5.0);
        assert_eq!(verdict(&r, "x"), Verdict::Regressed);
        assert!(r.fails(false));
        assert!(r.render(false).contains("1 regressed"));
        // -6%: passes, marked improved
        let r = compare(&base, &set(&[("x", m(940_000, 0))]), 5.0);
        assert_eq!(verdict(&r, "x"), Verdict::Improved);
        assert!(!r.fails(false));
        assert!(r.render(false).contains("bench-save"));
        // twice the iterations, twice the instructions: no change
        let mut twice = m(2_000_000, 0);
        twice.iterations = 200;
        let r = compare(&base, &set(&[("x", twice)]), 5.0);
        assert_eq!(r.rows[0].change_pct, Some(0.0));
        // a custom threshold
        let r = compare(&base, &set(&[("x", m(1_020_000, 0))]), 1.0);
        assert_eq!(verdict(&r, "x"), Verdict::Regressed);
    }

    #[test]
    fn one_more_allocation_fails_even_within_the_threshold() {
        let base = set(&[("x", m(1_000_000, 200))]);
        let r = compare(&base, &set(&[("x", m(1_000_000, 201))]), 5.0);
        assert_eq!(verdict(&r, "x"), Verdict::MoreAllocations);
        assert!(r.fails(false));
        assert!(r.table().contains("2 -> 2.010"), "{}", r.table());
        let r = compare(&base, &set(&[("x", m(1_000_000, 100))]), 5.0);
        assert_eq!(verdict(&r, "x"), Verdict::Ok);
    }

    #[test]
    fn missing_and_new_scenarios_fail() {
        let base = set(&[("kept", m(10, 0)), ("removed", m(10, 0))]);
        let now = set(&[("kept", m(10, 0)), ("added", m(10, 0))]);
        let r = compare(&base, &now, 5.0);
        assert_eq!(verdict(&r, "kept"), Verdict::Ok);
        assert_eq!(verdict(&r, "removed"), Verdict::MissingNow);
        assert_eq!(verdict(&r, "added"), Verdict::MissingInBaseline);
        assert!(r.fails(false));
        assert_eq!(r.failures().count(), 2);
        assert!(!r.identical());
        let text = r.render(false);
        assert!(
            text.contains("MISSING NOW") && text.contains("NOT IN BASELINE"),
            "{text}"
        );
        assert!(text.contains("2 missing on one side"), "{text}");
    }

    #[test]
    fn toolchain_mismatch_fails_loudly_unless_allowed() {
        let base = set(&[("x", m(1_000, 0))]);
        let mut now = base.clone();
        now.toolchain.rustc = "1.96.0".into();
        now.toolchain.valgrind = "valgrind-3.22.0".into();
        let r = compare(&base, &now, 5.0);
        assert_eq!(r.toolchain_mismatch.len(), 2);
        assert!(
            r.toolchain_mismatch[0].contains("1.95.0")
                && r.toolchain_mismatch[0].contains("1.96.0")
        );
        assert!(r.fails(false), "a mismatch must not pass silently");
        let text = r.render(false);
        assert!(
            text.contains("TOOLCHAIN MISMATCH") && text.contains("fails the gate"),
            "{text}"
        );
        // allowed: warns, and still fails on a regression
        assert!(!r.fails(true));
        assert!(r.render(true).contains("do not trust a pass"));
        now.scenarios.insert("x".into(), m(1_100, 0));
        assert!(compare(&base, &now, 5.0).fails(true));
    }

    #[test]
    fn baseline_round_trips_and_rejects_other_formats() {
        let b = set(&[("b", m(2, 1)), ("a", m(1, 0))]);
        let text = b.to_json();
        assert!(
            text.find("\"a\"").unwrap() < text.find("\"b\"").unwrap(),
            "sorted"
        );
        assert_eq!(Baseline::from_json(&text).unwrap(), b);
        let other = text.replace("\"format\": 1", "\"format\": 2");
        assert!(
            Baseline::from_json(&other)
                .unwrap_err()
                .contains("format 2")
        );
        assert!(Baseline::from_json("{").is_err());
    }

    #[test]
    fn counts_are_formatted_for_people() {
        assert_eq!(fmt_count(6761.698), "6,762");
        assert_eq!(fmt_count(1_234_567.0), "1,234,567");
        assert_eq!(fmt_count(15.0), "15.00");
        assert_eq!(fmt_allocs(2.0), "2");
        assert_eq!(change_pct(0.0, 0.0), 0.0);
        assert!(change_pct(0.0, 1.0).is_infinite());
    }
}
