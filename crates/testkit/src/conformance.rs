//! The conformance suite: checks that any [`Embedder`] keeps the contract of
//! DESIGN.md §2. Every check panics with a message naming what broke, like
//! `assert!`, so it reads well inside a `#[tokio::test]`.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use embeddings_testkit::conformance::{Expectations, run_all};
//! let mock = embeddings_mock::MockEmbedder::new("mock", 32).unwrap();
//! run_all(&mock, &Expectations::deterministic("mock", 32)).await;
//! # });
//! ```

use embeddings_core::{Embedder, Embeddings, Error, ErrorKind};
use futures::future::join_all;

/// What the embedder under test is expected to return.
#[derive(Debug, Clone)]
pub struct Expectations {
    /// The dimension of every row.
    pub dimension: usize,
    /// When set, every row must equal `embeddings_mock::vector(model, text, dimension)`
    /// (DESIGN.md §4) within 1e-5: the mock and the fake server promise this.
    pub deterministic_model: Option<String>,
    /// Whether an empty string may be refused (with `InvalidInput`) instead of embedded.
    pub empty_string_may_be_refused: bool,
}

impl Expectations {
    /// Rows of `dimension` equal to the §4 vectors of `model`.
    pub fn deterministic(model: impl Into<String>, dimension: usize) -> Self {
        Expectations {
            dimension,
            deterministic_model: Some(model.into()),
            empty_string_may_be_refused: true,
        }
    }

    /// Rows of `dimension`, values not known in advance (a real provider).
    pub fn dimension_only(dimension: usize) -> Self {
        Expectations {
            dimension,
            deterministic_model: None,
            empty_string_may_be_refused: true,
        }
    }
}

/// Texts of varied shape: ASCII, accents, CJK, emoji, whitespace, long.
pub fn sample_texts() -> Vec<String> {
    let mut v: Vec<String> = [
        "hello",
        "The quick brown fox jumps over the lazy dog.",
        "déjà vu 🌍",
        "日本語のテキスト",
        "  leading and trailing spaces  ",
        "tabs\tand\nnewlines",
        "hello",
        "Ünïcödé ñ ß Ω ж",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    v.push("long text ".repeat(200));
    v
}

fn refs(texts: &[String]) -> Vec<&str> {
    texts.iter().map(String::as_str).collect()
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-5)
}

fn must<T>(what: &str, r: Result<T, Error>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected error: {e}"),
    }
}

/// Runs every check below.
pub async fn run_all(embedder: &dyn Embedder, expect: &Expectations) {
    check_dimension(embedder, expect).await;
    check_empty_input(embedder).await;
    check_order_preserved(embedder, expect).await;
    check_batch_equals_single(embedder).await;
    check_empty_string_and_unicode(embedder, expect).await;
    check_concurrent_calls(embedder).await;
    check_normalized(embedder).await;
}

/// Every row has the expected dimension, and so does `dimension()` once known.
pub async fn check_dimension(embedder: &dyn Embedder, expect: &Expectations) {
    let texts = sample_texts();
    let e = must(
        "embed_documents",
        embedder.embed_documents(&refs(&texts)).await,
    );
    assert_eq!(e.len(), texts.len(), "one row per input");
    assert_eq!(e.dim(), expect.dimension, "row dimension");
    for (i, row) in e.iter().enumerate() {
        assert_eq!(row.len(), expect.dimension, "row {i} dimension");
    }
    let q = must("embed_query", embedder.embed_query("dimension probe").await);
    assert_eq!(q.len(), expect.dimension, "embed_query dimension");
    assert_eq!(
        embedder.dimension(),
        expect.dimension,
        "dimension() after a call"
    );
}

/// An empty list gives an empty result, not an error and not a request.
pub async fn check_empty_input(embedder: &dyn Embedder) {
    let e = must("empty list", embedder.embed_documents(&[]).await);
    assert!(e.is_empty(), "empty input gave {} rows", e.len());
}

/// Row `i` belongs to input `i`: distinct texts give distinct rows, repeated
/// texts identical rows, and (when deterministic) each row is its §4 vector.
pub async fn check_order_preserved(embedder: &dyn Embedder, expect: &Expectations) {
    let texts: Vec<String> = (0..40).map(|i| format!("document number {i}")).collect();
    let e = must(
        "embed_documents",
        embedder.embed_documents(&refs(&texts)).await,
    );
    assert_eq!(e.len(), texts.len(), "one row per input");
    if let Some(model) = &expect.deterministic_model {
        check_rows(&e, model, &refs(&texts));
    }
    // At dimension 1 every unit vector is ±1, so distinctness means nothing there.
    for i in (1..e.len()).filter(|_| e.dim() >= 4) {
        assert!(
            !close(e.row(i - 1), e.row(i)),
            "rows {} and {i} are equal",
            i - 1
        );
    }
    let mut reversed = texts.clone();
    reversed.reverse();
    let r = must(
        "embed_documents",
        embedder.embed_documents(&refs(&reversed)).await,
    );
    for i in 0..texts.len() {
        assert!(
            close(e.row(i), r.row(texts.len() - 1 - i)),
            "input {i} got another vector when the batch was reversed"
        );
    }
}

/// Asserts every row of `e` is the §4 vector of `(model, texts[i])`.
pub fn check_rows(e: &Embeddings, model: &str, texts: &[&str]) {
    assert_eq!(e.len(), texts.len(), "one row per input");
    for (i, t) in texts.iter().enumerate() {
        let want = embeddings_mock::vector(model, t, e.dim());
        assert!(
            close(e.row(i), &want),
            "row {i} ({t:?}) is not the deterministic vector of model {model:?}"
        );
    }
}

/// Embedding a batch gives the same rows as embedding each text alone.
pub async fn check_batch_equals_single(embedder: &dyn Embedder) {
    let texts = sample_texts();
    let batch = must(
        "embed_documents",
        embedder.embed_documents(&refs(&texts)).await,
    );
    for (i, t) in texts.iter().enumerate() {
        let one = must(
            "single embed_documents",
            embedder.embed_documents(&[t]).await,
        );
        assert_eq!(one.len(), 1);
        assert!(
            close(batch.row(i), one.row(0)),
            "input {i}: batch row != single row"
        );
        let q = must("embed_query", embedder.embed_query(t).await);
        assert!(
            close(batch.row(i), &q),
            "input {i}: batch row != embed_query"
        );
    }
}

/// An empty string is embedded or refused with `InvalidInput`; unicode
/// texts are embedded with finite values.
pub async fn check_empty_string_and_unicode(embedder: &dyn Embedder, expect: &Expectations) {
    match embedder.embed_documents(&[""]).await {
        Ok(e) => {
            assert_eq!(e.len(), 1, "one row for the empty string");
            if let Some(model) = &expect.deterministic_model {
                check_rows(&e, model, &[""]);
            }
        }
        Err(err) => {
            assert!(
                expect.empty_string_may_be_refused,
                "empty string refused: {err}"
            );
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "empty string: {err}");
        }
    }
    let texts = ["déjà vu 🌍", "日本語", "emoji 👩‍👩‍👧‍👦", "\u{200b}zero width"];
    let e = must("unicode", embedder.embed_documents(&texts).await);
    assert!(
        e.as_flat().iter().all(|x| x.is_finite()),
        "non-finite value"
    );
    if let Some(model) = &expect.deterministic_model {
        check_rows(&e, model, &texts);
    }
}

/// Concurrent calls on one embedder each get their own rows.
pub async fn check_concurrent_calls(embedder: &dyn Embedder) {
    let batches: Vec<Vec<String>> = (0..8)
        .map(|b| (0..5).map(|i| format!("batch {b} item {i}")).collect())
        .collect();
    let results = join_all(batches.iter().map(|b| async move {
        let r = refs(b);
        embedder.embed_documents(&r).await
    }))
    .await;
    for (b, r) in batches.iter().zip(results) {
        let e = must("concurrent call", r);
        for (i, t) in b.iter().enumerate() {
            let q = must("embed_query", embedder.embed_query(t).await);
            assert!(close(e.row(i), &q), "concurrent batch row {i} misplaced");
        }
    }
}

/// When the provider says its vectors are normalised, every row has unit norm.
pub async fn check_normalized(embedder: &dyn Embedder) {
    if !embedder.info().normalized {
        return;
    }
    let texts = sample_texts();
    let e = must(
        "embed_documents",
        embedder.embed_documents(&refs(&texts)).await,
    );
    for (i, row) in e.iter().enumerate() {
        let n = row
            .iter()
            .map(|x| f64::from(*x).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!((n - 1.0).abs() < 1e-3, "row {i} has norm {n}");
    }
}

/// A call that must fail fails with `kind`, a non-empty message, and a
/// `Display`/`Debug` free of `secret` (an API key the embedder was given).
pub async fn check_error(embedder: &dyn Embedder, kind: ErrorKind, secret: Option<&str>) -> Error {
    let err = match embedder.embed_documents(&["this call must fail"]).await {
        Ok(e) => panic!("expected a {kind} error, got {} rows", e.len()),
        Err(e) => e,
    };
    assert_eq!(err.kind(), kind, "error kind of: {err}");
    assert!(!err.message().is_empty(), "empty error message");
    assert_eq!(
        err.is_retryable(),
        kind.is_retryable() || err.is_retryable()
    );
    if let Some(s) = secret {
        for text in [err.to_string(), format!("{err:?}"), format!("{embedder:?}")] {
            assert!(!text.contains(s), "the key leaked into: {text}");
        }
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;
    use embeddings_core::Config;
    use embeddings_mock::MockEmbedder;

    #[tokio::test]
    async fn mock_passes_the_suite_at_several_dimensions() {
        for dim in [1, 3, 128, 1536] {
            let m = MockEmbedder::new("mock", dim).unwrap();
            run_all(&m, &Expectations::deterministic("mock", dim)).await;
        }
    }

    #[tokio::test]
    async fn mock_built_through_the_registry_passes() {
        let mut c = Config::for_provider("MOCK");
        c.model = Some("text-embedding-3-small".into());
        c.dimensions = Some(64);
        let e = embeddings_core::registry::build(&c).unwrap();
        run_all(
            e.as_ref(),
            &Expectations::deterministic("text-embedding-3-small", 64),
        )
        .await;
    }

    #[tokio::test]
    #[should_panic(expected = "not the deterministic vector")]
    async fn the_suite_catches_a_wrong_model() {
        let m = MockEmbedder::new("other", 16).unwrap();
        run_all(&m, &Expectations::deterministic("mock", 16)).await;
    }

    #[derive(Debug)]
    struct Swapping(MockEmbedder);

    #[embeddings_core::async_trait]
    impl Embedder for Swapping {
        fn info(&self) -> &embeddings_core::ProviderInfo {
            self.0.info()
        }
        async fn embed(
            &self,
            request: embeddings_core::EmbedRequest<'_>,
        ) -> embeddings_core::Result<Embeddings> {
            let mut t = request.inputs.to_vec();
            if t.len() > 1 {
                t.swap(0, 1);
            }
            self.0.embed(request.with_inputs(&t)).await
        }
        async fn health_check(&self) -> embeddings_core::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    #[should_panic]
    async fn the_suite_catches_misplaced_rows() {
        let m = Swapping(MockEmbedder::new("mock", 16).unwrap());
        check_batch_equals_single(&m).await;
    }

    #[tokio::test]
    async fn errors_are_typed_and_keyless() {
        let c = Config::from_toml_str(
            "dimensions = 4\n[mock]\nerror_rate = 1.0\nerror_kind = \"authentication\"",
        )
        .unwrap();
        let m = MockEmbedder::from_config(&c).unwrap();
        let e = check_error(&m, ErrorKind::Authentication, Some("sk-secret")).await;
        assert!(!e.is_retryable());
    }
}
