//! The conformance suite: checks that any [`Embedder`] keeps the contract of
//! DESIGN.md §2. Every check panics with a message naming what broke, like
//! `assert!`, so it reads well inside a `#[tokio::test]`.
//!
//! The suite respects the limits the embedder advertises: it runs
//! [`Embedder::prepare`] first (discovery), then never sends more inputs
//! or tokens in one call than `info()` allows (larger batches are split, see
//! [`embed_within_limits`]). [`run_fixture`] runs everything over a
//! provider built from a [`Fixture`] against its fake server, including the
//! checks that need the server: input types on the wire (read back from the
//! request log) and typed, keyless errors.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use embeddings_testkit::conformance::{Expectations, run_all};
//! let mock = embeddings_mock::MockEmbedder::new("mock", 32).unwrap();
//! run_all(&mock, &Expectations::deterministic("mock", 32)).await;
//! # });
//! ```

use embeddings_core::{
    EmbedRequest, Embedder, Embeddings, Error, ErrorKind, InputType, OutputType, RowRef,
};
use futures::future::join_all;

use crate::fixture::Fixture;
use crate::server::{FakeServer, Fault, FaultAction, StatusFault};

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
    /// For `binary` and `ubinary` asked of an embedder that does not produce
    /// them natively: `Some(true)`, they must come back packed from its
    /// `f32` rows (the facade's layers do that); `Some(false)`, they must be
    /// refused with `InvalidInput` (a bare provider); `None`, either.
    pub packs_binary: Option<bool>,
}

impl Expectations {
    /// Rows of `dimension` equal to the §4 vectors of `model`.
    pub fn deterministic(model: impl Into<String>, dimension: usize) -> Self {
        Expectations {
            dimension,
            deterministic_model: Some(model.into()),
            empty_string_may_be_refused: true,
            packs_binary: None,
        }
    }

    /// Rows of `dimension`, values not known in advance (a real provider).
    pub fn dimension_only(dimension: usize) -> Self {
        Expectations {
            dimension,
            deterministic_model: None,
            empty_string_may_be_refused: true,
            packs_binary: None,
        }
    }

    /// Sets [`Expectations::packs_binary`]: `true` for an embedder wrapped
    /// in the facade's layers, `false` for a bare provider.
    pub fn packs_binary(mut self, packs: bool) -> Self {
        self.packs_binary = Some(packs);
        self
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

/// Runs every check that needs no server: discovery first, then the checks
/// below, each within the embedder's advertised limits.
pub async fn run_all(embedder: &dyn Embedder, expect: &Expectations) {
    must("prepare (discovery)", embedder.prepare().await);
    check_dimension(embedder, expect).await;
    check_empty_input(embedder).await;
    check_order_preserved(embedder, expect).await;
    check_batch_equals_single(embedder).await;
    check_empty_string_and_unicode(embedder, expect).await;
    check_concurrent_calls(embedder).await;
    check_normalized(embedder).await;
    check_output_types(embedder, expect).await;
}

/// Embeds `request` in as many calls as the embedder's advertised limits
/// require (`max_batch_size` inputs and `max_batch_tokens` tokens per call,
/// by its own token count), in order, and puts the rows together. Call
/// [`Embedder::prepare`] first so that limits the server advertises are known.
pub async fn embed_within_limits(
    embedder: &dyn Embedder,
    request: EmbedRequest<'_>,
) -> Result<Embeddings, Error> {
    let info = embedder.info();
    let max_inputs = info.max_batch_size.max(1);
    let max_tokens = info.max_batch_tokens.max(1);
    let inputs = request.inputs;
    if inputs.is_empty() {
        return embedder.embed(request).await;
    }
    let mut out: Option<Embeddings> = None;
    let mut start = 0;
    while start < inputs.len() {
        let mut end = start;
        let mut tokens = 0usize;
        while end < inputs.len() && end - start < max_inputs {
            let t = embedder.count_tokens(inputs[end]);
            if end > start && tokens.saturating_add(t) > max_tokens {
                break;
            }
            tokens = tokens.saturating_add(t);
            end += 1;
        }
        let part = embedder.embed(request.slice(start..end)).await?;
        if part.len() != end - start {
            return Err(Error::new(
                ErrorKind::InvalidResponse,
                format!("{} rows for {} inputs", part.len(), end - start),
            ));
        }
        match &mut out {
            None => out = Some(part),
            Some(all) => all.extend(&part)?,
        }
        start = end;
    }
    Ok(out.unwrap_or_default())
}

/// [`embed_within_limits`] of documents as `f32`.
async fn documents(embedder: &dyn Embedder, texts: &[&str]) -> Result<Embeddings, Error> {
    embed_within_limits(embedder, EmbedRequest::new(texts)).await
}

/// Every row has the expected dimension, and so does `dimension()` once known.
pub async fn check_dimension(embedder: &dyn Embedder, expect: &Expectations) {
    let texts = sample_texts();
    let e = must("embed_documents", documents(embedder, &refs(&texts)).await);
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
    let e = must("embed_documents", documents(embedder, &refs(&texts)).await);
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
        documents(embedder, &refs(&reversed)).await,
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
    let batch = must("embed_documents", documents(embedder, &refs(&texts)).await);
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
    let e = must("unicode", documents(embedder, &texts).await);
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
        documents(embedder, &r).await
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
    let e = must("embed_documents", documents(embedder, &refs(&texts)).await);
    for (i, row) in e.iter().enumerate() {
        let n = row
            .iter()
            .map(|x| f64::from(*x).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!((n - 1.0).abs() < 1e-3, "row {i} has norm {n}");
    }
}

/// Every output type comes back as asked, or is refused as the contract says:
/// a type the embedder produces natively (`info().output_types`, and `f32`)
/// must equal [`Embeddings::quantized`] of its own `f32` rows (and, when
/// deterministic, of the DESIGN.md §4 vectors); `binary`/`ubinary` from an
/// `f32`-only embedder follow [`Expectations::packs_binary`]; `int8`/`uint8`
/// it does not produce are refused with `InvalidInput`.
pub async fn check_output_types(embedder: &dyn Embedder, expect: &Expectations) {
    let texts = [
        "hello",
        "déjà vu 🌍",
        "The quick brown fox jumps over the lazy dog.",
    ];
    let f32_rows = must("f32 rows", documents(embedder, &texts).await);
    let reference = expect.deterministic_model.as_ref().map(|model| {
        let flat: Vec<f32> = texts
            .iter()
            .flat_map(|t| embeddings_mock::vector(model, t, f32_rows.dim()))
            .collect();
        must(
            "the §4 vectors",
            Embeddings::from_flat(flat, f32_rows.dim()),
        )
    });
    let info = embedder.info();
    for output in OutputType::ALL {
        let native = info.supports_output_type(output);
        let result =
            embed_within_limits(embedder, EmbedRequest::new(&texts).with_output_type(output)).await;
        let must_convert = native || (output.is_packed() && expect.packs_binary == Some(true));
        let must_refuse = !native && (!output.is_packed() || expect.packs_binary == Some(false));
        let got = match result {
            Ok(got) => {
                assert!(
                    !must_refuse,
                    "{output}: produced, but must be refused with InvalidInput"
                );
                got
            }
            Err(err) => {
                assert!(!must_convert, "{output}: unexpected error: {err}");
                assert_eq!(
                    err.kind(),
                    ErrorKind::InvalidInput,
                    "{output} refused: {err}"
                );
                continue;
            }
        };
        assert_eq!(got.output_type(), output, "asked for {output}");
        assert_eq!(
            (got.len(), got.dim()),
            (texts.len(), f32_rows.dim()),
            "{output}: rows and dimension"
        );
        let want = must("quantized", f32_rows.clone().quantized(output));
        assert!(
            same_rows(&got, &want, 0),
            "{output} rows are not the quantized f32 rows of the same embedder"
        );
        if let Some(reference) = &reference {
            let want = must("quantized", reference.clone().quantized(output));
            // The §4 floats are compared within 1e-5, so an int8 may be one off.
            assert!(
                same_rows(&got, &want, 1),
                "{output} rows are not the quantized §4 vectors"
            );
        }
    }
}

/// Whether every row of `a` equals `b`'s, bytes within `tolerance`
/// (floats within 1e-5).
fn same_rows(a: &Embeddings, b: &Embeddings, tolerance: i16) -> bool {
    if a.len() != b.len() || a.output_type() != b.output_type() {
        return false;
    }
    (0..a.len()).all(|i| match (a.row_ref(i), b.row_ref(i)) {
        (RowRef::F32(x), RowRef::F32(y)) => close(x, y),
        (RowRef::I8(x), RowRef::I8(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|(p, q)| (i16::from(*p) - i16::from(*q)).abs() <= tolerance)
        }
        (RowRef::U8(x), RowRef::U8(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|(p, q)| (i16::from(*p) - i16::from(*q)).abs() <= tolerance)
        }
        _ => false,
    })
}

/// Every input type the embedder says it honours natively
/// (`info().input_types`) reaches the wire: after a call of that type, every
/// request the fake server logged on `route` carries it (as its dialect
/// reads it back, [`crate::dialect::Dialect::describe`]); a query made with
/// `embed_query` arrives as a query. Without native input types there is
/// nothing on the wire to check.
pub async fn check_input_types(embedder: &dyn Embedder, server: &FakeServer, route: crate::Route) {
    let texts = ["what is on the wire?", "a second input"];
    for &t in embedder.info().input_types {
        server.reset_log();
        must(
            "typed call",
            embed_within_limits(embedder, EmbedRequest::new(&texts).with_input_type(t)).await,
        );
        let sent: Vec<_> = server
            .requests()
            .into_iter()
            .filter(|r| r.route == route)
            .collect();
        assert!(!sent.is_empty(), "a {t} call sent no request on {route}");
        for r in &sent {
            assert_eq!(
                r.input_type,
                Some(t),
                "a {t} call reached {route} as {:?} (body {})",
                r.input_type,
                r.body
            );
        }
    }
    if embedder.info().supports_input_type(InputType::Query) {
        server.reset_log();
        must("embed_query", embedder.embed_query("a query").await);
        let sent: Vec<_> = server
            .requests()
            .into_iter()
            .filter(|r| r.route == route)
            .collect();
        assert!(
            !sent.is_empty() && sent.iter().all(|r| r.input_type == Some(InputType::Query)),
            "embed_query did not reach {route} as a query: {:?}",
            sent.iter().map(|r| r.input_type).collect::<Vec<_>>()
        );
    }
}

/// Everything, over a provider built from `fixture` against `server` (a
/// server of the fixture's dialects): `info()` agrees with the fixture
/// (provider, native input and output types), [`run_all`] with the
/// fixture's §4 vectors, [`check_input_types`] on the fixture's route, and a
/// 401 on that route is an `Authentication` error that shows no secret.
/// `layered`: the embedder is wrapped in the facade's layers (see
/// [`Expectations::packs_binary`]). Leaves the server without faults.
pub async fn run_fixture(
    embedder: &dyn Embedder,
    fixture: &dyn Fixture,
    server: &FakeServer,
    layered: bool,
) {
    must("prepare (discovery)", embedder.prepare().await);
    let info = embedder.info();
    let name = fixture.provider();
    assert_eq!(
        info.provider, name,
        "the fixture of {name} built another provider"
    );
    let mut said: Vec<_> = info.input_types.to_vec();
    let mut want: Vec<_> = fixture.input_types().to_vec();
    said.sort_by_key(|t| t.as_str());
    want.sort_by_key(|t| t.as_str());
    assert_eq!(said, want, "{name}: input types honoured on the wire");
    for &t in fixture.output_types() {
        assert!(
            info.supports_output_type(t),
            "{name}: does not produce {t} natively"
        );
    }
    let expect =
        Expectations::deterministic(fixture.model(), fixture.dimension()).packs_binary(layered);
    run_all(embedder, &expect).await;
    check_input_types(embedder, server, fixture.embedding_route()).await;
    server.set_faults(vec![
        Fault::new(FaultAction::Status(StatusFault::new(401))).on(fixture.embedding_route()),
    ]);
    let err = check_error(embedder, ErrorKind::Authentication, fixture.secret()).await;
    server.set_faults(Vec::new());
    assert!(!err.is_retryable(), "{name}: a 401 is retryable: {err}");
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

/// The provider's status table through the fake server: each `status`
/// answered on `route` (a [`StatusFault`], in the dialect's error shape)
/// makes a call of `embedder` fail with `kind`, retryable or not as the
/// table says, with the HTTP status kept, and (with `secret`) without the
/// key in its `Debug`. The faults are cleared at the end.
///
/// ```ignore
/// conformance::check_statuses(&e, &server, MY_EMBEDDINGS, &[
///     (401, ErrorKind::Authentication, false),
///     (429, ErrorKind::RateLimited, true),
/// ], Some(MyFixture::KEY)).await;
/// ```
pub async fn check_statuses(
    embedder: &dyn Embedder,
    server: &FakeServer,
    route: crate::Route,
    table: &[(u16, ErrorKind, bool)],
    secret: Option<&str>,
) {
    for &(status, kind, retryable) in table {
        server.set_faults(vec![
            Fault::new(FaultAction::Status(StatusFault::new(status))).on(route),
        ]);
        let err = match embedder.embed_documents(&["x"]).await {
            Ok(e) => panic!(
                "HTTP {status}: expected a {kind} error, got {} rows",
                e.len()
            ),
            Err(e) => e,
        };
        assert_eq!(
            (err.kind(), err.is_retryable(), err.status()),
            (kind, retryable, Some(status)),
            "{status}: {err}"
        );
        if let Some(s) = secret {
            assert!(
                !format!("{err:?}").contains(s),
                "the key leaked into: {err:?}"
            );
        }
    }
    server.set_faults(Vec::new());
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

    /// Before the suite split its batches, 40 inputs went in one call and a
    /// provider advertising 4 refused them.
    #[tokio::test]
    async fn the_suite_respects_an_advertised_batch_limit() {
        let c = Config::from_toml_str("dimensions = 8\n[mock]\nmax_batch_size = 4").unwrap();
        let m = MockEmbedder::from_config(&c).unwrap();
        assert_eq!(m.info().max_batch_size, 4);
        assert!(
            m.embed_documents(&["a"; 5]).await.is_err(),
            "the mock enforces its limit"
        );
        run_all(&m, &Expectations::deterministic("mock", 8)).await;
    }

    #[tokio::test]
    async fn every_output_type_of_the_mock_is_the_quantized_design_vector() {
        let m = MockEmbedder::new("mock", 20).unwrap();
        check_output_types(
            &m,
            &Expectations::deterministic("mock", 20).packs_binary(false),
        )
        .await;
        // And by hand, for one row of each type.
        let v = embeddings_mock::vector("mock", "hello", 20);
        let bits: Vec<u8> = v
            .chunks(8)
            .map(|c| {
                c.iter()
                    .enumerate()
                    .fold(0u8, |b, (j, x)| b | (u8::from(*x > 0.0) << (7 - j)))
            })
            .collect();
        let e = m
            .embed(EmbedRequest::new(&["hello"]).with_output_type(OutputType::Ubinary))
            .await
            .unwrap();
        assert_eq!(e.as_u8().unwrap(), &bits[..]);
        let e = m
            .embed(EmbedRequest::new(&["hello"]).with_output_type(OutputType::Int8))
            .await
            .unwrap();
        let int8: Vec<i8> = v.iter().map(|x| (x * 127.0).round() as i8).collect();
        assert_eq!(e.as_i8().unwrap(), &int8[..]);
    }

    /// An embedder that claims binary natively but packs the bits the wrong way round.
    #[derive(Debug)]
    struct LsbFirst(MockEmbedder);

    #[embeddings_core::async_trait]
    impl Embedder for LsbFirst {
        fn info(&self) -> &embeddings_core::ProviderInfo {
            self.0.info()
        }
        async fn embed(&self, request: EmbedRequest<'_>) -> embeddings_core::Result<Embeddings> {
            let mut e = self.0.embed(request).await?;
            if request.output_type == OutputType::Ubinary {
                for b in e.as_u8_mut().unwrap() {
                    *b = b.reverse_bits();
                }
            }
            Ok(e)
        }
        async fn health_check(&self) -> embeddings_core::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    #[should_panic(expected = "ubinary rows are not the quantized")]
    async fn the_suite_catches_wrongly_packed_bits() {
        let m = LsbFirst(MockEmbedder::new("mock", 16).unwrap());
        check_output_types(&m, &Expectations::deterministic("mock", 16)).await;
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
