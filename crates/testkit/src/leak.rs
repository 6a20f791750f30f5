//! The no-secret-leak check of a provider's tests: every log line at trace
//! level (the provider's, the toolkit's, reqwest's, hyper's, ...), every
//! error's `Display` and `Debug` and the provider's `Debug` are collected,
//! then searched for each secret, whole and in part.
//!
//! [`LeakCheck::install`] sets the process's global tracing subscriber, so
//! a test that uses it stands alone in its test binary (a file of its own
//! under `tests/`); [`LeakCheck::scoped`] captures the current thread only
//! (a `current_thread` test runtime, among other tests).
//!
//! ```no_run
//! # async fn demo() -> embeddings_core::Result<()> {
//! use embeddings_core::EmbedRequest;
//! use embeddings_testkit::LeakCheck;
//!
//! let mut check = LeakCheck::install();
//! // Your provider, built with its key against a fake server.
//! let provider = embeddings_mock::MockEmbedder::new("mock", 8)?;
//! check.exercise(&provider, &[EmbedRequest::new(&["a", "b"])]).await;
//! assert!(check.logs().contains("POST embeddings"), "nothing was logged");
//! check.assert_hidden("sk-the-key-0123456789", 3..15);
//! # Ok(()) }
//! ```

use std::fmt::Debug;
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};

use embeddings_core::{EmbedRequest, Embedder, Error, Result};

/// Everything a provider showed during a test: its logs (captured from
/// [`LeakCheck::install`] on), and the `Debug` and error texts recorded.
#[derive(Debug)]
pub struct LeakCheck {
    logs: Sink,
    shown: Vec<String>,
    /// The thread's subscriber while a scoped check lives.
    _scope: Option<tracing::subscriber::DefaultGuard>,
}

/// Every byte the subscriber writes.
#[derive(Debug, Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LeakCheck {
    /// Installs the global tracing subscriber (every target, trace level,
    /// no colours) writing into this check: every thread and task of the
    /// process logs into it from now on.
    ///
    /// # Panics
    /// When a global subscriber is already set (one `LeakCheck` per test
    /// binary).
    pub fn install() -> LeakCheck {
        let logs = Sink::default();
        tracing::subscriber::set_global_default(subscriber(&logs))
            .expect("LeakCheck::install sets the global subscriber: one per test binary");
        LeakCheck {
            logs,
            shown: Vec::new(),
            _scope: None,
        }
    }

    /// The same capture for the current thread only, until the check is
    /// dropped: for a test on a `current_thread` runtime (the default of
    /// `#[tokio::test]`, where the client's tasks run on the test's
    /// thread) that shares its binary with other tests.
    pub fn scoped() -> LeakCheck {
        let logs = Sink::default();
        let scope = tracing::subscriber::set_default(subscriber(&logs));
        LeakCheck {
            logs,
            shown: Vec::new(),
            _scope: Some(scope),
        }
    }

    /// Records `value`'s `Debug` (a provider, a config, a client).
    pub fn debug(&mut self, value: &dyn Debug) {
        self.shown.push(format!("{value:?}"));
    }

    /// Records the error's `Display` and `Debug`.
    pub fn error(&mut self, e: &Error) {
        self.shown.push(format!("{e} {e:?}"));
    }

    /// Records the error's `Display` and `Debug`, when `result` is one.
    pub fn result<T>(&mut self, result: Result<T>) {
        if let Err(e) = result {
            self.error(&e);
        }
    }

    /// Runs `provider` through what a user does and records what it
    /// shows: its `Debug`, then `prepare()`, each of `requests`, and
    /// `health_check()`, every error recorded.
    pub async fn exercise(&mut self, provider: &dyn Embedder, requests: &[EmbedRequest<'_>]) {
        self.debug(&provider);
        self.result(provider.prepare().await);
        for r in requests {
            self.result(provider.embed(*r).await);
        }
        self.result(provider.health_check().await);
    }

    /// What was recorded: `Debug` texts and errors, in order.
    pub fn shown(&self) -> &[String] {
        &self.shown
    }

    /// Every log line captured so far.
    pub fn logs(&self) -> String {
        let bytes = self
            .logs
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Asserts that `secret` appears in no log line and nothing recorded:
    /// neither whole nor its characters `part` (a run that a masker that
    /// cut the secret short would still show).
    ///
    /// # Panics
    /// Naming the text the secret (or the part) appears in.
    pub fn assert_hidden(&self, secret: &str, part: Range<usize>) {
        let piece = &secret[part];
        let logs = self.logs();
        for text in self.shown.iter().chain([&logs]) {
            assert!(!text.contains(secret), "a secret leaked into: {text}");
            assert!(
                !text.contains(piece),
                "part of a secret ({piece:?}) leaked into: {text}"
            );
        }
    }
}

/// Every target at trace level, no colours, into `logs`.
fn subscriber(logs: &Sink) -> impl tracing::Subscriber + Send + Sync + 'static {
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "sk-leak-check-0123456789";

    #[test]
    #[should_panic(expected = "part of a secret")]
    fn a_run_of_the_secret_in_a_log_line_fails_the_check() {
        let check = LeakCheck::scoped();
        tracing::trace!(target: "some_provider", "echoed: {}", &SECRET[3..15]);
        check.assert_hidden(SECRET, 3..15);
    }

    #[test]
    #[should_panic(expected = "a secret leaked")]
    fn the_secret_in_an_error_fails_the_check() {
        let mut check = LeakCheck::scoped();
        check.result::<()>(Err(Error::invalid_input(format!("bad key {SECRET}"))));
        check.assert_hidden(SECRET, 3..15);
    }

    #[tokio::test]
    async fn exercise_records_debug_and_errors_and_captures_logs() {
        let mut check = LeakCheck::scoped();
        // The mock's second call fails (its fault section).
        let faults = embeddings_mock::MockFaults {
            fail_on_calls: vec![2],
            ..Default::default()
        };
        let mock = embeddings_mock::MockEmbedder::new("mock", 8)
            .unwrap()
            .with_faults(faults)
            .unwrap();
        check
            .exercise(
                &mock,
                &[EmbedRequest::new(&["a"]), EmbedRequest::new(&["b"])],
            )
            .await;
        tracing::debug!("a line");
        let shown = check.shown();
        assert!(shown[0].contains("MockEmbedder"), "{shown:?}");
        assert_eq!(shown.len(), 2, "{shown:?}");
        assert!(shown[1].contains("Error"), "{shown:?}");
        assert!(check.logs().contains("a line"));
        check.assert_hidden(SECRET, 3..15);
    }
}
