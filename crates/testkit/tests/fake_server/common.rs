//! Helpers shared by the fake-server tests.

use base64::Engine as _;
use embeddings_testkit::{FakeServer, FakeServerConfig};
use reqwest::header::HeaderMap;
use serde_json::Value;

pub(crate) const SMALL: &str = "text-embedding-3-small";

pub(crate) async fn start(config: FakeServerConfig) -> FakeServer {
    FakeServer::start(config)
        .await
        .expect("the fake server starts")
}

pub(crate) async fn server() -> FakeServer {
    start(FakeServerConfig::default()).await
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a reqwest client")
}

/// A JSON answer: status, headers and body.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
}

impl Answer {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub(crate) async fn send(req: reqwest::RequestBuilder) -> Answer {
    let resp = req.send().await.expect("an answer");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("a complete body");
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Answer {
        status,
        headers,
        body,
    }
}

pub(crate) async fn post(url: &str, body: Value) -> Answer {
    send(client().post(url).json(&body)).await
}

pub(crate) async fn get(url: &str) -> Answer {
    send(client().get(url)).await
}

pub(crate) async fn openai(server: &FakeServer, body: Value) -> Answer {
    post(&format!("{}/embeddings", server.openai_base_url()), body).await
}

pub(crate) async fn ollama(server: &FakeServer, path: &str, body: Value) -> Answer {
    post(&format!("{}{path}", server.base_url()), body).await
}

/// Asserts `got` is the DESIGN.md §4 vector of `(model, text)` at `got.len()`.
pub(crate) fn assert_vector(model: &str, text: &str, dim: usize, got: &[f32]) {
    assert_eq!(got.len(), dim, "dimension of the vector of {text:?}");
    let want = embeddings_mock::vector(model, text, dim);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() < 1e-5,
            "{model}/{text:?}[{i}]: got {g}, want {w}"
        );
    }
}

pub(crate) fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("an array of floats")
        .iter()
        .map(|x| x.as_f64().expect("a float") as f32)
        .collect()
}

pub(crate) fn base64_floats(v: &Value) -> Vec<f32> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.as_str().expect("a base64 string"))
        .expect("valid base64");
    assert_eq!(bytes.len() % 4, 0);
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Asserts an OpenAI error body: `{error: {message, type, param, code}}`.
pub(crate) fn assert_openai_error(
    a: &Answer,
    status: u16,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) {
    assert_eq!(a.status, status, "{:?}", a.body);
    let e = &a.body["error"];
    let obj = e.as_object().expect("an error object");
    assert_eq!(obj.len(), 4, "exactly message, type, param, code: {e}");
    assert!(
        !e["message"].as_str().expect("a message").is_empty(),
        "a message"
    );
    assert_eq!(e["type"], kind, "{e}");
    assert_eq!(e["param"].as_str(), param, "{e}");
    assert!(e["param"].is_null() || e["param"].is_string());
    assert_eq!(e["code"].as_str(), code, "{e}");
    assert!(e["code"].is_null() || e["code"].is_string());
    assert!(
        a.header("content-type")
            .unwrap()
            .starts_with("application/json"),
        "JSON content type"
    );
}

/// Asserts an Ollama error body: `{error: "..."}`.
pub(crate) fn assert_ollama_error(a: &Answer, status: u16, message: &str) {
    assert_eq!(a.status, status, "{:?}", a.body);
    let obj = a.body.as_object().expect("an error object");
    assert_eq!(obj.len(), 1, "{:?}", a.body);
    assert_eq!(a.body["error"], message);
}
