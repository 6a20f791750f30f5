//! Compatible servers that break `encoding_format: base64`: the embedder
//! detects it from the first answer, switches to floats once, remembers it
//! and logs it once; a configured `encoding_format` wins.

use std::sync::{Arc, Mutex};

use embeddings_core::{Config, Embedder, ErrorKind};
use embeddings_openai::{EncodingFormat, OpenAiEmbedder};
use embeddings_testkit::{FakeServer, OpenAiDialect};

const MODEL: &str = "text-embedding-3-small";

async fn server(d: OpenAiDialect) -> FakeServer {
    FakeServer::builder().dialect(d).start().await.unwrap()
}

fn config(s: &FakeServer, extra: &str) -> Config {
    Config::from_toml_str(&format!(
        "provider = \"openai\"\nmodel = \"{MODEL}\"\ndimensions = 32\nbase_url = \"{}/v1\"\napi_key = \"sk-test-0123456789abcdef\"\n{extra}",
        s.base_url()
    ))
    .unwrap()
}

#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn formats(s: &FakeServer) -> Vec<String> {
    s.requests()
        .iter()
        .map(|r| r.body["encoding_format"].as_str().unwrap_or("").to_owned())
        .collect()
}

async fn three_calls(e: &OpenAiEmbedder) {
    for text in ["a", "b", "c"] {
        let row = e.embed_query(text).await.unwrap();
        assert_eq!(row, embeddings_mock::vector(MODEL, text, 32));
    }
}

#[tokio::test]
async fn floats_in_a_base64_answer_switch_to_floats_once_and_log_once() {
    let logs = Logs::default();
    let sink = logs.clone();
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || sink.clone())
        .finish();
    let _g = tracing::subscriber::set_default(sub);
    let s = server(OpenAiDialect::new().base64_as_floats()).await;
    let e = OpenAiEmbedder::from_config(&config(&s, "")).unwrap();
    three_calls(&e).await;
    assert!(e.fell_back_to_float());
    assert_eq!(e.encoding_format(), EncodingFormat::Float);
    assert_eq!(formats(&s), ["base64", "float", "float"]);
    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert_eq!(
        text.matches("breaks `encoding_format: base64`").count(),
        1,
        "{text}"
    );
}

#[tokio::test]
async fn a_wrong_dimension_in_base64_switches_to_floats_and_is_remembered() {
    let s = server(OpenAiDialect::new().base64_as_f64()).await;
    let e = OpenAiEmbedder::from_config(&config(&s, "")).unwrap();
    // The broken answer is this call's error (one request per call) ...
    let err = e.embed_query("a").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidResponse);
    assert!(e.fell_back_to_float());
    // ... and every later call asks for floats.
    three_calls(&e).await;
    assert_eq!(formats(&s), ["base64", "float", "float", "float"]);
}

#[tokio::test]
async fn a_good_base64_server_is_checked_once_and_kept() {
    let s = server(OpenAiDialect::new()).await;
    let e = OpenAiEmbedder::from_config(&config(&s, "")).unwrap();
    three_calls(&e).await;
    assert!(!e.fell_back_to_float());
    assert_eq!(formats(&s), ["base64", "base64", "base64"]);
}

#[tokio::test]
async fn an_explicit_encoding_format_wins() {
    let s = server(OpenAiDialect::new().base64_as_f64()).await;
    let e =
        OpenAiEmbedder::from_config(&config(&s, "[openai]\nencoding_format = \"base64\"")).unwrap();
    let err = e.embed_query("a").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidResponse);
    assert!(!e.fell_back_to_float());
    assert_eq!(formats(&s), ["base64"]);
    // Floats in a base64 answer are still decoded right, but not switched.
    let s = server(OpenAiDialect::new().base64_as_floats()).await;
    let e =
        OpenAiEmbedder::from_config(&config(&s, "[openai]\nencoding_format = \"base64\"")).unwrap();
    three_calls(&e).await;
    assert_eq!(formats(&s), ["base64", "base64", "base64"]);
}

/// An OpenAI-compatible server whose base64 rows are garbage (the right
/// length, not base64) while its float rows are right.
#[derive(Debug)]
struct GarbageBase64;

const GARBAGE_ROUTE: embeddings_testkit::Route =
    embeddings_testkit::Route::new("garbage_embeddings");

impl embeddings_testkit::Dialect for GarbageBase64 {
    fn name(&self) -> &'static str {
        "garbage-base64"
    }

    fn routes(&self) -> Vec<embeddings_testkit::dialect::RouteSpec> {
        vec![
            embeddings_testkit::dialect::RouteSpec::post(GARBAGE_ROUTE, ["/v1/embeddings"])
                .embedding(),
        ]
    }

    fn handle(
        &self,
        ex: &embeddings_testkit::dialect::Exchange<'_>,
    ) -> embeddings_testkit::dialect::Reply {
        use embeddings_testkit::dialect::{JSON, Reply, RowStyle};
        let body: serde_json::Value = serde_json::from_slice(ex.body()).unwrap_or_default();
        let texts: Vec<String> = body["input"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let base64 = body["encoding_format"] == "base64";
        let rows = ex.rows(MODEL, &texts, 32, RowStyle::Indexed);
        let data: Vec<serde_json::Value> = (0..rows.len())
            .map(|i| {
                let embedding = if base64 {
                    // 32 f32 = 128 bytes = 172 base64 characters, none valid.
                    serde_json::json!("!".repeat(172))
                } else {
                    serde_json::json!(rows.row(i))
                };
                serde_json::json!({"object": "embedding", "index": rows.index(i), "embedding": embedding})
            })
            .collect();
        Reply::json(
            200,
            JSON,
            &serde_json::json!({"object": "list", "data": data, "model": MODEL}),
        )
    }

    fn error(
        &self,
        _route: embeddings_testkit::Route,
        e: &embeddings_testkit::dialect::EngineError<'_>,
    ) -> embeddings_testkit::dialect::Reply {
        embeddings_testkit::dialect::Reply::error(e.status(), &e.message())
    }

    fn describe(
        &self,
        _r: &embeddings_testkit::RecordedRequest,
    ) -> embeddings_testkit::dialect::RequestSummary {
        embeddings_testkit::dialect::RequestSummary::default()
    }
}

fn capture_info() -> (Logs, tracing::subscriber::DefaultGuard) {
    let logs = Logs::default();
    let sink = logs.clone();
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || sink.clone())
        .finish();
    (logs, tracing::subscriber::set_default(sub))
}

fn switches_logged(logs: &Logs) -> usize {
    String::from_utf8_lossy(&logs.0.lock().unwrap())
        .matches("breaks `encoding_format: base64`")
        .count()
}

#[tokio::test]
async fn undecodable_base64_rows_switch_to_floats_once_remembered_and_logged_once() {
    let (logs, _g) = capture_info();
    let s = FakeServer::builder()
        .dialect(GarbageBase64)
        .start()
        .await
        .unwrap();
    let e = OpenAiEmbedder::from_config(&config(&s, "")).unwrap();
    let err = e.embed_query("a").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidResponse, "{err}");
    assert!(e.fell_back_to_float());
    three_calls(&e).await;
    assert_eq!(formats(&s), ["base64", "float", "float", "float"]);
    assert_eq!(switches_logged(&logs), 1);
    // An explicit base64 keeps asking for it, and keeps refusing the garbage.
    let e =
        OpenAiEmbedder::from_config(&config(&s, "[openai]\nencoding_format = \"base64\"")).unwrap();
    for _ in 0..2 {
        assert_eq!(
            e.embed_query("a").await.unwrap_err().kind(),
            ErrorKind::InvalidResponse
        );
    }
    assert!(!e.fell_back_to_float());
    assert_eq!(switches_logged(&logs), 1);
}

#[tokio::test]
async fn concurrent_first_calls_switch_once_and_log_once() {
    let (logs, _g) = capture_info();
    for dialect in [
        OpenAiDialect::new().base64_as_floats(),
        OpenAiDialect::new().base64_as_f64(),
    ] {
        let s = server(dialect).await;
        let e = OpenAiEmbedder::from_config(&config(&s, "")).unwrap();
        let texts = ["a", "b", "c", "d", "e"];
        let results = futures_join(&e, &texts).await;
        assert!(e.fell_back_to_float());
        // Whatever failed in the first round succeeds as floats now.
        for (t, r) in texts.iter().zip(results) {
            let row = match r {
                Ok(row) => row,
                Err(err) => {
                    assert_eq!(err.kind(), ErrorKind::InvalidResponse);
                    e.embed_query(t).await.unwrap()
                }
            };
            assert_eq!(row, embeddings_mock::vector(MODEL, t, 32));
        }
        // Every request after the first round asks for floats.
        let first_round = formats(&s);
        assert_eq!(
            first_round.iter().filter(|f| *f == "base64").count(),
            texts.len()
        );
        e.embed_query("z").await.unwrap();
        assert_eq!(
            formats(&s)[texts.len()..]
                .iter()
                .filter(|f| *f != "float")
                .count(),
            0
        );
    }
    assert_eq!(switches_logged(&logs), 2, "once per embedder");
}

/// Every text embedded concurrently on this task.
async fn futures_join(
    e: &OpenAiEmbedder,
    texts: &[&str],
) -> Vec<embeddings_core::Result<Vec<f32>>> {
    let mut futs: Vec<_> = texts.iter().map(|t| Box::pin(e.embed_query(t))).collect();
    let mut out: Vec<Option<embeddings_core::Result<Vec<f32>>>> =
        texts.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in futs.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(r) => out[i] = Some(r),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|r| r.unwrap()).collect()
}

#[tokio::test]
async fn an_explicit_float_never_asks_for_base64() {
    let s = server(OpenAiDialect::new().base64_as_f64()).await;
    let e =
        OpenAiEmbedder::from_config(&config(&s, "[openai]\nencoding_format = \"float\"")).unwrap();
    three_calls(&e).await;
    assert!(!e.fell_back_to_float());
    assert_eq!(formats(&s), ["float", "float", "float"]);
}
