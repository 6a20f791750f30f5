//! The check of DESIGN.md §10's shared tokens-per-minute budget, for the
//! tests that run many embedders (or worker processes) against one
//! [`FakeServer`](crate::FakeServer) limit.
//!
//! ```
//! use std::time::Duration;
//! use embeddings_testkit::budget::BudgetedRun;
//!
//! // 1,180 tokens over 6 s at L = 12,000 a minute (200 a second).
//! let run = BudgetedRun {
//!     tokens: 1_180,
//!     rate_limited: 0,
//!     span: Duration::from_secs(6),
//!     max_cost: 24,
//! };
//! run.assert_paced("example", 12_000, Duration::from_millis(100), Duration::ZERO);
//! ```

use std::time::Duration;

/// What a job under a tokens-per-minute budget sent, as the fake server
/// counted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetedRun {
    /// Tokens the server admitted (cl100k).
    pub tokens: u64,
    /// The server's answers of 429.
    pub rate_limited: u64,
    /// The time over which the tokens were sent.
    pub span: Duration,
    /// The most tokens of one request.
    pub max_cost: u64,
}

impl BudgetedRun {
    /// Asserts the budget `tokens_per_minute` (L) was kept and used:
    ///
    /// * the server never answered 429;
    /// * at least 90% of L over the span (all but the last request);
    /// * at most L: a GCRA limiter admits every request but the last within
    ///   the span plus its `burst`, plus `slack` where the span is measured
    ///   elsewhere than at the limiter (at the server, which sees each
    ///   request some scheduling delay after it was admitted);
    /// * bounded: under 30 s.
    ///
    /// Prints the figures first, so a failure shows how close it was.
    ///
    /// # Panics
    ///
    /// When one of the above does not hold; this is a test helper.
    pub fn assert_paced(
        &self,
        label: &str,
        tokens_per_minute: u32,
        burst: Duration,
        slack: Duration,
    ) {
        let per_sec = f64::from(tokens_per_minute) / 60.0;
        let secs = self.span.as_secs_f64();
        let paced_tokens = self.tokens.saturating_sub(self.max_cost) as f64;
        let achieved = paced_tokens / secs;
        let allowed = secs + burst.as_secs_f64() + slack.as_secs_f64();
        eprintln!(
            "{label}: {} tokens in {secs:.2} s: {:.1}% of L ({per_sec:.1}/s; all but the last \
             request over the span); over the span plus {} ms of burst and {} ms of slack: \
             {:.1}%; {} 429s",
            self.tokens,
            100.0 * achieved / per_sec,
            burst.as_millis(),
            slack.as_millis(),
            100.0 * paced_tokens / allowed / per_sec,
            self.rate_limited
        );
        assert_eq!(self.rate_limited, 0, "{label}: answers of 429");
        assert!(
            achieved >= 0.9 * per_sec,
            "{label}: {achieved:.1} tokens/s < 90% of {per_sec:.1}"
        );
        let bound = per_sec * allowed;
        assert!(
            paced_tokens <= bound,
            "{label}: {} tokens (less one request of {}) in {secs:.2} s > {bound:.0}: over L",
            self.tokens,
            self.max_cost
        );
        assert!(secs < 30.0, "{label}: not bounded: {secs:.1} s");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(tokens: u64, secs: f64) -> BudgetedRun {
        BudgetedRun {
            tokens,
            rate_limited: 0,
            span: Duration::from_secs_f64(secs),
            max_cost: 20,
        }
    }

    #[test]
    fn a_run_at_the_budget_passes() {
        run(1_220, 6.0).assert_paced("at L", 12_000, Duration::from_millis(100), Duration::ZERO);
    }

    #[test]
    #[should_panic(expected = "over L")]
    fn a_run_over_the_budget_fails() {
        run(1_300, 6.0).assert_paced("over", 12_000, Duration::from_millis(100), Duration::ZERO);
    }

    #[test]
    fn slack_widens_only_the_upper_bound() {
        run(1_300, 6.0).assert_paced(
            "slack",
            12_000,
            Duration::from_millis(100),
            Duration::from_millis(400),
        );
    }

    #[test]
    #[should_panic(expected = "< 90%")]
    fn a_run_under_the_budget_fails() {
        run(1_000, 6.0).assert_paced("under", 12_000, Duration::from_millis(100), Duration::ZERO);
    }

    #[test]
    #[should_panic(expected = "answers of 429")]
    fn a_refused_run_fails() {
        BudgetedRun {
            rate_limited: 1,
            ..run(1_200, 6.0)
        }
        .assert_paced(
            "refused",
            12_000,
            Duration::from_millis(100),
            Duration::ZERO,
        );
    }
}
