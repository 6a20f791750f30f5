//! Deciding, per request, which faults fire.

use std::time::Duration;

use embeddings_mock::splitmix64;

use super::config::{Fault, FaultAction, Latency, RateLimitedFault, StatusFault, Trigger};
use super::route::Route;

/// A fault with its own request counter and random generator.
#[derive(Debug)]
pub(crate) struct FaultState {
    fault: Fault,
    seen: u64,
    rng: u64,
}

impl FaultState {
    pub(crate) fn new(fault: Fault, index: usize) -> Self {
        let seed = match fault.trigger {
            Trigger::Rate { seed, .. } => seed,
            _ => 0x5EED ^ index as u64,
        };
        FaultState {
            fault,
            seen: 0,
            rng: seed,
        }
    }

    fn next_f64(&mut self) -> f64 {
        (splitmix64(&mut self.rng) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn fires(&mut self) -> bool {
        self.seen += 1;
        let n = self.seen;
        match self.fault.trigger {
            Trigger::Always => true,
            Trigger::EveryNth(k) => k > 0 && n % k == 0,
            Trigger::Nth(k) => n == k,
            Trigger::First(k) => n <= k,
            Trigger::Rate { probability, .. } => self.next_f64() < probability,
        }
    }
}

/// What answers instead of the server.
#[derive(Debug, Clone)]
pub(crate) enum Preempt {
    Status(StatusFault),
    RateLimited(RateLimitedFault),
    Hang,
    Reset,
}

/// What changes the body of a successful embedding answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowFault {
    WrongCount(i64),
    Shuffle(u64),
    Duplicate,
    Nan,
    WrongDimension(i64),
}

impl RowFault {
    pub(crate) fn kind(self) -> crate::dialect::RowFaultKind {
        use crate::dialect::RowFaultKind as K;
        match self {
            RowFault::WrongCount(_) => K::WrongCount,
            RowFault::Shuffle(_) => K::Shuffle,
            RowFault::Duplicate => K::Duplicate,
            RowFault::Nan => K::Nan,
            RowFault::WrongDimension(_) => K::WrongDimension,
        }
    }
}

/// What changes the bytes of whatever body is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFault {
    Truncate,
    MalformedJson,
}

/// The faults that fired for one request.
#[derive(Debug, Default)]
pub(crate) struct Fired {
    pub(crate) latency: Duration,
    pub(crate) preempt: Option<Preempt>,
    pub(crate) rows: Vec<RowFault>,
    pub(crate) body: Option<BodyFault>,
    pub(crate) count: u64,
}

/// The request a fault may apply to: its route, the dialect serving it, and
/// whether it answers with embeddings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    pub(crate) route: Route,
    pub(crate) dialect: Option<&'a str>,
    pub(crate) embedding: bool,
}

impl Target<'_> {
    /// Whether a fault scoped to `scope` applies: every route, this route, or
    /// this route's dialect.
    fn covered_by(&self, scope: Route) -> bool {
        scope == Route::All || scope == self.route || self.dialect == Some(scope.as_str())
    }
}

/// Advances the counters of every fault that covers `target` and collects those that fire.
pub(crate) fn evaluate(faults: &mut [FaultState], target: Target<'_>) -> Fired {
    let mut fired = Fired::default();
    for f in faults.iter_mut() {
        if !target.covered_by(f.fault.route) {
            continue;
        }
        let row_fault = matches!(
            f.fault.action,
            FaultAction::WrongCount(_)
                | FaultAction::ShuffleIndex
                | FaultAction::DuplicateIndex
                | FaultAction::Nan
                | FaultAction::WrongDimension(_)
        );
        // Row faults only count the requests they can change.
        if row_fault && !target.embedding {
            continue;
        }
        if !f.fires() {
            continue;
        }
        fired.count += 1;
        let action = f.fault.action.clone();
        match &action {
            FaultAction::Latency(Latency::Fixed(d)) => fired.latency += *d,
            FaultAction::Latency(Latency::Uniform { min, max }) => {
                let span = max.saturating_sub(*min).as_secs_f64();
                let u = f.next_f64();
                fired.latency += *min + Duration::from_secs_f64(span * u);
            }
            FaultAction::Status(s) => {
                fired.preempt.get_or_insert(Preempt::Status(s.clone()));
            }
            FaultAction::RateLimited(r) => {
                fired.preempt.get_or_insert(Preempt::RateLimited(r.clone()));
            }
            FaultAction::Hang => {
                fired.preempt.get_or_insert(Preempt::Hang);
            }
            FaultAction::Reset => {
                fired.preempt.get_or_insert(Preempt::Reset);
            }
            FaultAction::Truncate => {
                fired.body.get_or_insert(BodyFault::Truncate);
            }
            FaultAction::MalformedJson => {
                fired.body.get_or_insert(BodyFault::MalformedJson);
            }
            FaultAction::WrongCount(d) => fired.rows.push(RowFault::WrongCount(*d)),
            FaultAction::ShuffleIndex => {
                let seed = splitmix64(&mut f.rng);
                fired.rows.push(RowFault::Shuffle(seed));
            }
            FaultAction::DuplicateIndex => fired.rows.push(RowFault::Duplicate),
            FaultAction::Nan => fired.rows.push(RowFault::Nan),
            FaultAction::WrongDimension(d) => fired.rows.push(RowFault::WrongDimension(*d)),
        }
    }
    fired
}

/// One row of an embedding answer: which input's vector, at which dimension,
/// under which `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RowPlan {
    pub(crate) index: usize,
    pub(crate) text: usize,
    pub(crate) dim: usize,
    pub(crate) nan: bool,
}

/// The most rows, or components, a row fault adds (a bound on what a config can ask).
const MAX_EXTRA: i64 = 4096;

/// The rows to send for `n` inputs of `dim`, after the row faults.
///
/// `relabel_duplicate`: OpenAI rows carry an `index` that a duplicate
/// relabels; Ollama rows do not, so there the duplicate copies the vector.
pub(crate) fn plan_rows(
    n: usize,
    dim: usize,
    faults: &[RowFault],
    relabel_duplicate: bool,
) -> Vec<RowPlan> {
    let mut rows: Vec<RowPlan> = (0..n)
        .map(|i| RowPlan {
            index: i,
            text: i,
            dim,
            nan: false,
        })
        .collect();
    for fault in faults {
        match *fault {
            RowFault::WrongCount(d) if d < 0 => {
                let keep = rows.len().saturating_sub(d.unsigned_abs() as usize);
                rows.truncate(keep);
            }
            RowFault::WrongCount(d) => {
                // Extra rows repeat the inputs' vectors: none to repeat without inputs.
                let extra = if n == 0 { 0 } else { d.min(MAX_EXTRA) as usize };
                for k in 0..extra {
                    let text = k % n;
                    rows.push(RowPlan {
                        index: n + k,
                        text,
                        dim,
                        nan: false,
                    });
                }
            }
            RowFault::Shuffle(seed) => shuffle(&mut rows, seed),
            RowFault::Duplicate => {
                if rows.len() >= 2 {
                    if relabel_duplicate {
                        rows[1].index = rows[0].index;
                    } else {
                        rows[1].text = rows[0].text;
                    }
                } else if let Some(first) = rows.first().copied() {
                    rows.push(first);
                }
            }
            RowFault::Nan => {
                if let Some(r) = rows.first_mut() {
                    r.nan = true;
                }
            }
            RowFault::WrongDimension(d) => {
                if let Some(r) = rows.first_mut() {
                    let d = d.clamp(-MAX_EXTRA, MAX_EXTRA);
                    let wrong = (r.dim as i64).saturating_add(d).max(1) as usize;
                    r.dim = if wrong == r.dim { r.dim + 1 } else { wrong };
                }
            }
        }
    }
    rows
}

/// A seeded Fisher–Yates shuffle that never leaves two or more rows in order.
fn shuffle(rows: &mut [RowPlan], seed: u64) {
    if rows.len() < 2 {
        return;
    }
    let mut state = seed;
    for i in (1..rows.len()).rev() {
        let j = (splitmix64(&mut state) % (i as u64 + 1)) as usize;
        rows.swap(i, j);
    }
    if rows.windows(2).all(|w| w[0].index < w[1].index) {
        rows.swap(0, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMBED: Target<'static> = Target {
        route: Route::new("a_embed"),
        dialect: Some("a"),
        embedding: true,
    };
    const TAGS: Target<'static> = Target {
        route: Route::new("b_tags"),
        dialect: Some("b"),
        embedding: false,
    };

    #[test]
    fn triggers_count_per_fault() {
        let mut faults = vec![
            FaultState::new(Fault::new(FaultAction::Hang).when(Trigger::EveryNth(3)), 0),
            FaultState::new(
                Fault::new(FaultAction::Reset)
                    .when(Trigger::First(1))
                    .on(Route::new("b")),
                1,
            ),
        ];
        let hits: Vec<bool> = (0..7)
            .map(|_| evaluate(&mut faults, EMBED).preempt.is_some())
            .collect();
        assert_eq!(hits, [false, false, true, false, false, true, false]);
        assert!(matches!(
            evaluate(&mut faults, TAGS).preempt,
            Some(Preempt::Reset)
        ));
    }

    #[test]
    fn seeded_rate_is_repeatable_and_about_right() {
        let fault = Fault::new(FaultAction::Nan).when(Trigger::Rate {
            probability: 0.25,
            seed: 9,
        });
        let run = || {
            let mut f = vec![FaultState::new(fault.clone(), 0)];
            (0..1000)
                .map(|_| !evaluate(&mut f, EMBED).rows.is_empty())
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        let n = a.iter().filter(|x| **x).count();
        assert!((180..320).contains(&n), "{n}");
    }

    #[test]
    fn scopes_are_a_route_a_dialect_or_all() {
        let mut faults = vec![
            FaultState::new(Fault::new(FaultAction::Hang).on(Route::new("a")), 0),
            FaultState::new(Fault::new(FaultAction::Nan).on(Route::new("b_tags")), 1),
        ];
        assert!(evaluate(&mut faults, EMBED).preempt.is_some());
        let on_tags = evaluate(&mut faults, TAGS);
        // The row fault does not even count a route without embeddings.
        assert!(on_tags.preempt.is_none() && on_tags.rows.is_empty());
        assert_eq!(on_tags.count, 0);
    }

    #[test]
    fn row_faults_without_inputs_add_nothing() {
        assert!(
            plan_rows(
                0,
                4,
                &[RowFault::WrongCount(3), RowFault::Duplicate, RowFault::Nan],
                false
            )
            .is_empty()
        );
        let rows = plan_rows(1, 4, &[RowFault::WrongDimension(i64::MAX)], true);
        assert_eq!(rows[0].dim, 4 + 4096);
        let rows = plan_rows(1, 4, &[RowFault::WrongDimension(i64::MIN)], true);
        assert_eq!(rows[0].dim, 1);
    }

    #[test]
    fn shuffle_never_keeps_the_order() {
        for seed in 0..200 {
            let rows = plan_rows(3, 4, &[RowFault::Shuffle(seed)], true);
            assert!(rows.windows(2).any(|w| w[0].index > w[1].index));
            let mut idx: Vec<_> = rows.iter().map(|r| r.index).collect();
            idx.sort();
            assert_eq!(idx, [0, 1, 2]);
        }
    }
}
