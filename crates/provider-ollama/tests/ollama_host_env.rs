//! `OLLAMA_HOST` in Ollama's own forms reaches the fake server. Alone in its
//! test binary: it sets the process environment.

#![allow(unsafe_code)]

use embeddings_core::{Config, Embedder};
use embeddings_ollama::OllamaEmbedder;
use embeddings_testkit::{FakeServer, FakeServerConfig};

#[tokio::test]
async fn ollama_host_is_read_in_each_form_and_base_url_wins() {
    let s = FakeServer::start(FakeServerConfig::default())
        .await
        .unwrap();
    let port = s.addr().port();
    let mut config = Config::for_provider("ollama");
    config.model = Some("all-minilm".into());
    for host in [
        format!("127.0.0.1:{port}"),
        format!("http://127.0.0.1:{port}"),
        format!("http://127.0.0.1:{port}/"),
        format!("0.0.0.0:{port}"),
        format!(":{port}"),
    ] {
        // SAFETY: the only test of this binary; no other thread reads the environment.
        unsafe { std::env::set_var("OLLAMA_HOST", &host) };
        let e = OllamaEmbedder::from_config(&config).unwrap();
        assert_eq!(e.host(), format!("http://127.0.0.1:{port}"), "{host}");
        let v = e.embed_query("hello").await.unwrap();
        assert_eq!(v, embeddings_mock::vector("all-minilm", "hello", 384));
    }
    // base_url wins over OLLAMA_HOST.
    unsafe { std::env::set_var("OLLAMA_HOST", "127.0.0.1:1") };
    config.base_url = Some(s.base_url());
    let e = OllamaEmbedder::from_config(&config).unwrap();
    e.health_check().await.unwrap();
    unsafe { std::env::remove_var("OLLAMA_HOST") };
    config.base_url = None;
    let e = OllamaEmbedder::from_config(&config).unwrap();
    assert_eq!(e.host(), "http://localhost:11434");
}
