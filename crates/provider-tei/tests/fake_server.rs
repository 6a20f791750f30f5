//! The `tei` provider against the fake TEI server (its dialect in
//! `embeddings_tei::testkit`) and against raw misbehaving servers.
//!
//! `cargo test -p embeddings-tei --features testkit`

#![cfg(feature = "testkit")]

use embeddings_core::{Config, EmbedRequest, Embedder, ErrorKind, InputType};
use embeddings_http::testing::{RawReply, RawServer};
use embeddings_tei::TeiEmbedder;
use embeddings_tei::testkit::{TEI_EMBED, TEI_INFO, TeiDialect, TeiFixture};
use embeddings_testkit::{FakeServer, Fixture, conformance};

async fn server(d: TeiDialect) -> FakeServer {
    FakeServer::builder().dialect(d).start().await.unwrap()
}

fn provider(s: &FakeServer) -> TeiEmbedder {
    TeiEmbedder::from_config(&TeiFixture.config(&s.base_url())).unwrap()
}

#[tokio::test]
async fn passes_the_conformance_suite_bare() {
    let s = server(TeiDialect::new()).await;
    conformance::run_fixture(&provider(&s), &TeiFixture, &s, false).await;
}

#[tokio::test]
async fn prepare_reads_info_and_probes_the_dimension() {
    let s = server(
        TeiDialect::new()
            .max_client_batch_size(4)
            .max_input_length(128),
    )
    .await;
    let p = provider(&s);
    assert_eq!(p.info().dimension, 0);
    p.prepare().await.unwrap();
    p.prepare().await.unwrap();
    let i = p.info();
    assert_eq!((i.max_batch_size, i.max_input_tokens), (4, 128));
    // A server on the user's hardware: four sub-batches in flight.
    assert_eq!(i.concurrency, 4);
    assert_eq!((i.model.as_str(), i.dimension), (TeiFixture::MODEL, 384));
    let routes: Vec<_> = s.requests().iter().map(|r| r.route).collect();
    assert_eq!(routes, [TEI_INFO, TEI_EMBED], "one /info, one probe, once");
    // More than the server's limit: refused without a request.
    s.reset_log();
    let texts = ["a"; 5];
    let e = p.embed_documents(&texts).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(s.requests().is_empty());
}

#[tokio::test]
async fn a_configured_cap_below_the_server_wins_and_a_wrong_model_is_refused() {
    let s = server(TeiDialect::new()).await;
    let mut c = TeiFixture.config(&s.base_url());
    c.sections
        .insert("tei".into(), serde_json::json!({ "max_batch_size": 8 }));
    c.dimensions = Some(384);
    let p = TeiEmbedder::from_config(&c).unwrap();
    p.prepare().await.unwrap();
    assert_eq!(p.info().max_batch_size, 8);
    assert!(
        s.requests().iter().all(|r| r.route == TEI_INFO),
        "no probe when the dimension is given"
    );
    c.model = Some("intfloat/e5-small".into());
    let e = TeiEmbedder::from_config(&c)
        .unwrap()
        .prepare()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig);
    assert!(e.message().contains("BAAI/bge-small-en-v1.5"), "{e}");
}

#[tokio::test]
async fn prompt_name_and_options_on_the_wire() {
    let s = server(TeiDialect::new()).await;
    let mut c = TeiFixture.config(&s.base_url());
    c.dimensions = Some(384);
    c.sections.insert(
        "tei".into(),
        serde_json::json!({ "prompts": { "query": "query" }, "truncate": true,
            "truncation_direction": "left", "normalize": false }),
    );
    let p = TeiEmbedder::from_config(&c).unwrap();
    p.embed(EmbedRequest::new(&["q"]).with_input_type(InputType::Query))
        .await
        .unwrap();
    p.embed_documents(&["d"]).await.unwrap();
    let bodies: Vec<_> = s.requests().into_iter().map(|r| r.body).collect();
    assert_eq!(
        bodies[0],
        serde_json::json!({"inputs": ["q"], "normalize": false, "truncate": true,
            "truncation_direction": "Left", "prompt_name": "query"})
    );
    assert!(bodies[1].get("prompt_name").is_none(), "{}", bodies[1]);
    assert!(!p.info().normalized);
}

#[tokio::test]
async fn a_prompt_the_model_lacks_is_the_servers_422() {
    let s = server(TeiDialect::new()).await;
    let mut c = TeiFixture.config(&s.base_url());
    c.dimensions = Some(384);
    c.sections.insert(
        "tei".into(),
        serde_json::json!({ "prompts": { "query": "search_query" } }),
    );
    let p = TeiEmbedder::from_config(&c).unwrap();
    let e = p.embed_query("q").await.unwrap_err();
    assert_eq!((e.kind(), e.status()), (ErrorKind::InvalidInput, Some(422)));
    assert!(e.message().contains("search_query"), "{e}");
}

#[tokio::test]
async fn over_long_input_unhealthy_server_and_auth() {
    let s = server(TeiDialect::new().max_input_length(3)).await;
    let mut c = TeiFixture.config(&s.base_url());
    c.dimensions = Some(384);
    let p = TeiEmbedder::from_config(&c).unwrap();
    let e = p
        .embed_documents(&["one two three four five six"])
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind(), e.status()),
        (ErrorKind::ContextLengthExceeded, Some(413))
    );
    p.health_check().await.unwrap();

    let s = server(TeiDialect::new().healthy(false)).await;
    let e = TeiEmbedder::from_config(&TeiFixture.config(&s.base_url()))
        .unwrap()
        .health_check()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);

    let s = server(TeiDialect::new().api_key("right-key-0123456789")).await;
    let e = provider(&s).prepare().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication);
    assert!(!format!("{e} {e:?}").contains(TeiFixture::KEY));
}

#[tokio::test]
async fn misbehaving_servers_are_typed_errors() {
    let mut c = Config::for_provider("tei");
    c.dimensions = Some(2);
    for (reply, kind) in [
        (
            RawReply::json("200 OK", "[[1,0],[0,1]]"),
            ErrorKind::InvalidResponse,
        ),
        (
            RawReply::json("200 OK", "{\"embeddings\":[[1,0]]}"),
            ErrorKind::InvalidResponse,
        ),
        (
            RawReply::json("200 OK", "[[1,0,0]]"),
            ErrorKind::InvalidResponse,
        ),
        (
            RawReply::json(
                "424 Failed Dependency",
                r#"{"error":"Backend error","error_type":"backend"}"#,
            ),
            ErrorKind::Unavailable,
        ),
        (
            RawReply::json(
                "429 Too Many Requests",
                r#"{"error":"Model is overloaded","error_type":"overloaded"}"#,
            ),
            ErrorKind::RateLimited,
        ),
        (
            RawReply::redirect("307 Temporary Redirect", "http://example.invalid/embed"),
            ErrorKind::InvalidConfig,
        ),
    ] {
        let raw = RawServer::start(reply).await.unwrap();
        c.base_url = Some(raw.url().to_owned());
        let e = TeiEmbedder::from_config(&c)
            .unwrap()
            .embed_documents(&["x"])
            .await
            .unwrap_err();
        assert_eq!(e.kind(), kind, "{e}");
        assert_eq!(e.provider(), Some("tei"));
    }
    let raw = RawServer::start(RawReply::json(
        "200 OK",
        r#"{"max_client_batch_size":"many"}"#,
    ))
    .await
    .unwrap();
    c.base_url = Some(raw.url().to_owned());
    let e = TeiEmbedder::from_config(&c)
        .unwrap()
        .prepare()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidResponse);
}
