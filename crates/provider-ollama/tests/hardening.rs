//! The hardening cases of issue 19 for the Ollama provider: a key echoed
//! back by the server is masked (a 401 and inside a 500 body), bodies are
//! capped (huge Content-Length, chunked forever, endless error body), no
//! credential follows a redirect to another origin, a base URL with
//! userinfo is refused, server text reaches messages on one safe line,
//! and the fingerprint names every vector-changing setting.

use std::time::Duration;

use embeddings_core::{Config, Embedder, ErrorKind};
use embeddings_http::testing::{RawReply, RawServer};
use embeddings_ollama::OllamaEmbedder;
use embeddings_testkit::{FakeServer, FakeServerConfig, Fault, FaultAction, Route, StatusFault};

/// The address of a raw server answering every request with `reply`.
async fn serve(reply: RawReply) -> String {
    RawServer::start(reply).await.unwrap().url().to_owned()
}

const KEY: &str = "olkey-SECRET-0123456789abcdef";

fn ollama(base: &str, extra: &str) -> OllamaEmbedder {
    let toml = format!(
        "provider = \"ollama\"\nmodel = \"all-minilm\"\nbase_url = \"{base}\"\napi_key = \"{KEY}\"\n{extra}"
    );
    OllamaEmbedder::from_config(&Config::from_toml_str(&toml).expect("config")).expect("embedder")
}

fn assert_no_key(texts: &[String]) {
    for t in texts {
        for run in KEY.as_bytes().windows(8) {
            let run = std::str::from_utf8(run).unwrap();
            assert!(!t.contains(run), "{run:?} of the key leaked: {t}");
        }
    }
}

#[tokio::test]
async fn a_key_echoed_back_is_masked_in_every_error() {
    let s = FakeServer::start(FakeServerConfig::default())
        .await
        .unwrap();
    for (status, message) in [
        (401, format!("invalid api key {KEY}")),
        (500, format!("internal error while checking {KEY}: boom")),
        // Part of the key, as a cut or a log line shows it.
        (500, format!("token ...{}... rejected", &KEY[6..20])),
    ] {
        s.set_faults(vec![
            Fault::new(FaultAction::Status(StatusFault {
                message: Some(message),
                ..StatusFault::new(status)
            }))
            .on(Route::OllamaEmbed),
        ]);
        let e = ollama(&s.base_url(), "dimensions = 8");
        let err = e.embed_documents(&["a"]).await.unwrap_err();
        assert_eq!(err.status(), Some(status), "{err}");
        assert_no_key(&[err.to_string(), format!("{err:?}")]);
    }
}

#[tokio::test]
async fn a_huge_content_length_is_refused() {
    let head = "HTTP/1.1 200 OK
content-length: 50000000

"
    .to_owned();
    let piece = vec![b'['; 16 * 1024];
    let base = serve(RawReply::Forever { head, piece }).await;
    let e = ollama(&base, "dimensions = 8");
    let err = e.embed_documents(&["a", "b"]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidResponse, "{err}");
    assert!(err.message().contains("larger than"), "{err}");
    assert!(err.message().contains("2 vectors of dimension 8"), "{err}");
}

#[tokio::test]
async fn a_chunked_answer_that_never_ends_is_cut_at_the_cap() {
    let base = serve(RawReply::chunked_forever("200 OK", vec![b'['; 16 * 1024])).await;
    for extra in ["dimensions = 8", ""] {
        let e = ollama(&base, extra);
        let err = tokio::time::timeout(Duration::from_secs(60), e.embed_documents(&["a", "b"]))
            .await
            .expect("ends")
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidResponse, "{extra}: {err}");
        assert!(err.message().contains("larger than"), "{err}");
    }
}

#[tokio::test]
async fn an_endless_error_body_ends_in_a_typed_error() {
    let reply = RawReply::chunked_forever("500 Internal Server Error", b"error ".repeat(4096));
    let base = serve(reply).await;
    let e = ollama(&base, "dimensions = 8");
    let err = tokio::time::timeout(Duration::from_secs(60), e.embed_documents(&["a"]))
        .await
        .expect("ends")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.message().len() < 600, "{err}");
}

#[tokio::test]
async fn a_redirect_to_another_origin_carries_no_credential() {
    let stolen = RawServer::start(RawReply::json("200 OK", "{}"))
        .await
        .unwrap();
    let elsewhere = stolen.url().to_owned();
    let to = format!("{elsewhere}/api/embed");
    let base = serve(RawReply::redirect("307 Temporary Redirect", &to)).await;
    let e = ollama(
        &base,
        "dimensions = 8\n[ollama]\nheaders = { \"X-Secret\" = \"hdr-secret\" }",
    );
    let err = e.embed_documents(&["a"]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
    assert!(err.message().contains("another origin"), "{err}");
    let got = stolen.requests();
    assert!(got.is_empty(), "the other origin got: {got:?}");
}

#[test]
fn a_base_url_with_userinfo_is_refused() {
    for base in [
        "http://user:hunter2@127.0.0.1:1",
        "user:hunter2@127.0.0.1:1",
    ] {
        let toml = format!("provider = \"ollama\"\nbase_url = \"{base}\"");
        let err = OllamaEmbedder::from_config(&Config::from_toml_str(&toml).unwrap()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
        assert!(err.message().contains("user name or password"), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}

#[tokio::test]
async fn server_text_reaches_messages_on_one_safe_line() {
    let s = FakeServer::start(FakeServerConfig::default())
        .await
        .unwrap();
    s.set_faults(vec![
        Fault::new(FaultAction::Status(StatusFault {
            message: Some("bad\r\x1b[2J\x07\0\u{2028} input".into()),
            ..StatusFault::new(400)
        }))
        .on(Route::OllamaEmbed),
    ]);
    let err = ollama(&s.base_url(), "dimensions = 8")
        .embed_documents(&["a"])
        .await
        .unwrap_err();
    let shown = err.to_string();
    for bad in ['\r', '\n', '\u{1b}', '\u{7}', '\0', '\u{2028}'] {
        assert!(!shown.contains(bad), "{bad:?} in {shown:?}");
    }
    assert!(shown.contains("bad"), "{shown}");
}

#[test]
fn the_fingerprint_names_every_vector_changing_setting() {
    let e = ollama(
        "127.0.0.1:1",
        "dimensions = 64\n[ollama]\ntruncate = false\nkeep_alive = \"5m\"\n[ollama.options]\nnum_ctx = 512\n",
    );
    let f = &e.info().fingerprint();
    assert!(f.contains("model=all-minilm"), "{f}");
    assert!(f.contains("truncate=false"), "{f}");
    assert!(f.contains(r#"options={"num_ctx":512}"#), "{f}");
    assert!(f.contains("dimensions=64"), "{f}");
    assert!(!f.contains("endpoint=legacy"), "{f}");
    assert!(!f.contains("5m") && !f.contains(KEY), "{f}");
}

#[tokio::test]
async fn the_legacy_endpoint_is_part_of_the_fingerprint() {
    let s = FakeServer::start(FakeServerConfig::default())
        .await
        .unwrap();
    s.set_faults(vec![
        Fault::new(FaultAction::Status(StatusFault {
            message: Some("404 page not found".into()),
            ..StatusFault::new(404)
        }))
        .on(Route::OllamaEmbed),
    ]);
    let e = ollama(&s.base_url(), "");
    let before = e.info().fingerprint();
    e.embed_documents(&["a"]).await.unwrap();
    assert!(e.uses_legacy_endpoint());
    let after = &e.info().fingerprint();
    assert!(!before.contains("legacy"), "{before}");
    assert!(after.contains("endpoint=legacy"), "{after}");
}

#[tokio::test]
async fn connect_timeout_is_configurable() {
    let e = ollama(
        "127.0.0.1:1",
        "[ollama]\nconnect_timeout = \"2s\"\nrequest_timeout = \"30s\"\n",
    );
    assert_eq!(e.section().connect_timeout, Some(Duration::from_secs(2)));
    assert_eq!(e.section().request_timeout, Some(Duration::from_secs(30)));
}

#[tokio::test]
async fn a_broken_connection_is_one_request_and_no_transport_retry() {
    let s = FakeServer::start(FakeServerConfig::default())
        .await
        .unwrap();
    for action in [FaultAction::Reset, FaultAction::Truncate] {
        s.set_faults(vec![Fault::new(action.clone()).on(Route::OllamaEmbed)]);
        s.reset_log();
        let err = ollama(&s.base_url(), "dimensions = 8")
            .embed_documents(&["a", "b"])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connection, "{action:?}: {err}");
        assert_eq!(s.requests().len(), 1, "{action:?}: one request, no retry");
    }
}
