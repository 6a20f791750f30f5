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
