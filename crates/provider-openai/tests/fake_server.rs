//! The provider against the testkit's fake OpenAI server (127.0.0.1 only):
//! every row checked against DESIGN.md §4, both encodings, every fault
//! mapped to its error kind, the conformance suite, and no key anywhere.

use std::time::Duration;

use embeddings_core::{Config, Embedder, ErrorKind, SecretString};
use embeddings_openai::{EncodingFormat, OpenAiEmbedder};
use embeddings_testkit::conformance::{self, Expectations};
use embeddings_testkit::{
    FakeServer, FakeServerConfig, Fault, FaultAction, RateLimitedFault, Route, StatusFault, Trigger,
};

mod common;

use common::{KEY, MODEL, config, server};

fn embedder(server: &FakeServer, dims: Option<usize>, format: EncodingFormat) -> OpenAiEmbedder {
    let extra = format!("[openai]\nencoding_format = \"{format}\"\n");
    OpenAiEmbedder::from_config(&config(server, MODEL, dims, &extra)).expect("builds")
}

fn texts() -> Vec<String> {
    let mut t: Vec<String> = conformance::sample_texts();
    t.extend((0..50).map(|i| format!("document number {i}")));
    t
}

fn refs(t: &[String]) -> Vec<&str> {
    t.iter().map(String::as_str).collect()
}

#[tokio::test]
async fn every_row_is_the_design_vector_in_both_encodings() {
    let s = server().await;
    let t = texts();
    for (model, dims, want) in [
        ("text-embedding-3-small", None, 1536),
        ("text-embedding-3-small", Some(256), 256),
        ("text-embedding-3-large", Some(64), 64),
        ("text-embedding-ada-002", None, 1536),
    ] {
        for format in [EncodingFormat::Base64, EncodingFormat::Float] {
            s.reset_log();
            let extra = format!("[openai]\nencoding_format = \"{format}\"\n");
            let e = OpenAiEmbedder::from_config(&config(&s, model, dims, &extra)).unwrap();
            assert_eq!(e.dimension(), want);
            let out = e.embed_documents(&refs(&t)).await.unwrap();
            assert_eq!(out.dim(), want);
            conformance::check_rows(&out, model, &refs(&t));
            let usage = out.usage().expect("usage reported");
            assert!(usage.prompt_tokens > 0);
            assert!(out.rate_limits().is_some(), "rate-limit headers exposed");

            let reqs = s.requests();
            assert_eq!(reqs.len(), 1, "one request per call");
            let r = &reqs[0];
            assert_eq!(r.method, "POST");
            assert_eq!(r.path, "/v1/embeddings");
            assert_eq!(r.header("authorization"), Some(&*format!("Bearer {KEY}")));
            assert_eq!(r.body["encoding_format"], format.as_str());
            assert_eq!(r.body["model"], model);
            assert_eq!(r.body["input"].as_array().unwrap().len(), t.len());
            match dims {
                Some(d) => assert_eq!(r.body["dimensions"], d),
                None => assert!(r.body.get("dimensions").is_none(), "{}", r.body),
            }
            assert!(r.body.get("user").is_none());
        }
    }
}

#[tokio::test]
async fn shuffled_indices_are_put_back_in_order() {
    let s = server().await;
    s.set_faults(vec![
        Fault::new(FaultAction::ShuffleIndex).on(Route::OpenaiEmbeddings),
    ]);
    let t = texts();
    for format in [EncodingFormat::Base64, EncodingFormat::Float] {
        let e = embedder(&s, Some(32), format);
        let out = e.embed_documents(&refs(&t)).await.unwrap();
        conformance::check_rows(&out, MODEL, &refs(&t));
    }
    assert!(s.stats().faults >= 2, "the shuffle fault fired");
}

#[tokio::test]
async fn every_fault_maps_to_its_error_kind() {
    let s = server().await;
    let status = |code: u16| FaultAction::Status(StatusFault::new(code));
    let cases: Vec<(FaultAction, ErrorKind, bool)> = vec![
        (status(400), ErrorKind::InvalidInput, false),
        (status(401), ErrorKind::Authentication, false),
        (status(403), ErrorKind::PermissionDenied, false),
        (status(404), ErrorKind::NotFound, false),
        (status(408), ErrorKind::Timeout, true),
        (status(409), ErrorKind::Unavailable, true),
        (status(429), ErrorKind::RateLimited, true),
        (
            FaultAction::Status(StatusFault {
                code: Some("insufficient_quota".into()),
                error_type: Some("insufficient_quota".into()),
                ..StatusFault::new(429)
            }),
            ErrorKind::QuotaExceeded,
            false,
        ),
        (
            FaultAction::Status(StatusFault {
                code: Some("context_length_exceeded".into()),
                ..StatusFault::new(400)
            }),
            ErrorKind::ContextLengthExceeded,
            false,
        ),
        (status(500), ErrorKind::Unavailable, true),
        (status(502), ErrorKind::Unavailable, true),
        (status(503), ErrorKind::Unavailable, true),
        (status(504), ErrorKind::Timeout, true),
        (
            FaultAction::RateLimited(RateLimitedFault {
                retry_after_secs: Some(2),
                ..RateLimitedFault::default()
            }),
            ErrorKind::RateLimited,
            true,
        ),
        (
            FaultAction::RateLimited(RateLimitedFault {
                should_retry: Some(false),
                ..RateLimitedFault::default()
            }),
            ErrorKind::RateLimited,
            false,
        ),
        (FaultAction::Reset, ErrorKind::Connection, true),
        (FaultAction::Truncate, ErrorKind::Connection, true),
        (
            FaultAction::MalformedJson,
            ErrorKind::InvalidResponse,
            false,
        ),
        (
            FaultAction::WrongCount(-1),
            ErrorKind::InvalidResponse,
            false,
        ),
        (
            FaultAction::WrongCount(1),
            ErrorKind::InvalidResponse,
            false,
        ),
        (
            FaultAction::DuplicateIndex,
            ErrorKind::InvalidResponse,
            false,
        ),
        (FaultAction::Nan, ErrorKind::InvalidResponse, false),
        (
            FaultAction::WrongDimension(-1),
            ErrorKind::InvalidResponse,
            false,
        ),
        (
            FaultAction::WrongDimension(1),
            ErrorKind::InvalidResponse,
            false,
        ),
        (
            FaultAction::WrongDimension(100_000),
            ErrorKind::InvalidResponse,
            false,
        ),
    ];
    for format in [EncodingFormat::Base64, EncodingFormat::Float] {
        let e = embedder(&s, Some(8), format);
        for (action, kind, retryable) in &cases {
            s.set_faults(vec![Fault::new(action.clone()).on(Route::OpenaiEmbeddings)]);
            s.reset_log();
            let err = e
                .embed_documents(&["one", "two", "three"])
                .await
                .expect_err(&format!("{action:?} must fail"));
            assert_eq!(err.kind(), *kind, "{format} {action:?}: {err}");
            assert_eq!(err.is_retryable(), *retryable, "{format} {action:?}: {err}");
            assert_eq!(err.provider(), Some("openai"));
            assert!(!err.message().is_empty());
            assert!(err.message().chars().count() <= 700, "{err}");
            assert_eq!(s.requests().len(), 1, "{action:?}: one request, no retry");
        }
    }
    // The retry-after the server asked for reaches the error.
    s.set_faults(vec![
        Fault::new(FaultAction::RateLimited(RateLimitedFault {
            retry_after_ms: Some(1500),
            retry_after_secs: Some(2),
            ..RateLimitedFault::default()
        }))
        .on(Route::OpenaiEmbeddings),
    ]);
    let e = embedder(&s, Some(8), EncodingFormat::Base64);
    let err = e.embed_query("x").await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_millis(1500)));
    // Faults on the Nth request only: the others succeed, with the right rows.
    s.set_faults(vec![
        Fault::new(status(503))
            .on(Route::OpenaiEmbeddings)
            .when(Trigger::Nth(2)),
    ]);
    assert!(e.embed_query("a").await.is_ok());
    assert_eq!(
        e.embed_query("a").await.unwrap_err().kind(),
        ErrorKind::Unavailable
    );
    let v = e.embed_query("a").await.unwrap();
    assert_eq!(v.len(), 8);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_server_times_out() {
    let s = server().await;
    s.set_faults(vec![
        Fault::new(FaultAction::Hang).on(Route::OpenaiEmbeddings),
    ]);
    let c = config(&s, MODEL, Some(8), "[openai]\nrequest_timeout = \"30s\"\n");
    let e = OpenAiEmbedder::from_config(&c).unwrap();
    let err = e.embed_query("x").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn connection_refused_is_a_connection_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut c = Config::for_provider("openai");
    c.base_url = Some(format!("http://127.0.0.1:{port}/v1"));
    let e = OpenAiEmbedder::from_config(&c).unwrap();
    let err = e.embed_query("x").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn conformance_suite_passes_in_both_encodings() {
    let s = server().await;
    for format in [EncodingFormat::Base64, EncodingFormat::Float] {
        for dims in [Some(1), Some(16), None] {
            let e = embedder(&s, dims, format);
            let d = dims.unwrap_or(1536);
            conformance::run_all(&e, &Expectations::deterministic(MODEL, d)).await;
        }
    }
    // Through the registry, by case-insensitive name.
    let mut c = config(&s, MODEL, Some(24), "");
    c.provider = "OpenAI".into();
    let e = embeddings_core::registry::build(&c).unwrap();
    conformance::run_all(e.as_ref(), &Expectations::deterministic(MODEL, 24)).await;
    e.health_check().await.unwrap();
}

#[tokio::test]
async fn a_model_of_unknown_size_is_learned_from_the_first_answer() {
    let s = FakeServer::start(FakeServerConfig {
        openai_models: [("my-local-model".to_owned(), 48)].into(),
        ..FakeServerConfig::default()
    })
    .await
    .unwrap();
    for format in ["base64", "float"] {
        let mut c = Config::from_toml_str(&format!(
            "provider = \"openai\"\nmodel = \"my-local-model\"\nbase_url = \"{}\"\n[openai]\nencoding_format = \"{format}\"",
            s.openai_base_url()
        ))
        .unwrap();
        c.api_key = None; // a local server needs no key
        let e = OpenAiEmbedder::from_config(&c).unwrap();
        assert_eq!(e.dimension(), 0);
        let t = texts();
        let out = e.embed_documents(&refs(&t)).await.unwrap();
        conformance::check_rows(&out, "my-local-model", &refs(&t));
        assert_eq!(e.dimension(), 48);
        conformance::run_all(&e, &Expectations::deterministic("my-local-model", 48)).await;
    }
    assert!(
        s.requests()
            .iter()
            .all(|r| r.header("authorization").is_none())
    );
}

#[tokio::test]
async fn health_check_proves_key_and_model() {
    let s = server().await;
    embedder(&s, None, EncodingFormat::Base64)
        .health_check()
        .await
        .unwrap();
    let mut c = config(&s, "no-such-model", None, "");
    c.api_key = Some(SecretString::from(KEY));
    let err = OpenAiEmbedder::from_config(&c)
        .unwrap()
        .health_check()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let mut c = config(&s, MODEL, None, "");
    c.api_key = Some(SecretString::from("sk-wrong-key-1234"));
    let err = OpenAiEmbedder::from_config(&c)
        .unwrap()
        .health_check()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
}

#[tokio::test]
async fn headers_user_and_azure_requests_are_shaped_as_documented() {
    let s = server().await;
    let extra = "[openai]\norganization = \"org-1\"\nproject = \"proj_2\"\nuser = \"u-3\"\n[openai.headers]\nX-Gateway = \"team-a\"\n";
    let e = OpenAiEmbedder::from_config(&config(&s, MODEL, Some(8), extra)).unwrap();
    e.embed_query("x").await.unwrap();
    let r = s.requests().pop().unwrap();
    assert_eq!(r.header("openai-organization"), Some("org-1"));
    assert_eq!(r.header("openai-project"), Some("proj_2"));
    assert_eq!(r.header("x-gateway"), Some("team-a"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.body["user"], "u-3");

    // Azure: the deployment URL, the api-version and the api-key header.
    let extra = format!(
        "[openai.azure]\nendpoint = \"{}\"\ndeployment = \"my dep\"\napi_version = \"2024-06-01\"\n",
        s.base_url()
    );
    let e = OpenAiEmbedder::from_config(&config(&s, MODEL, Some(8), &extra)).unwrap();
    assert!(e.is_azure());
    s.reset_log();
    let err = e.embed_query("x").await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::NotFound,
        "the fake server has no Azure route"
    );
    let r = s.requests().pop().unwrap();
    assert_eq!(
        r.path,
        "/openai/deployments/my%20dep/embeddings?api-version=2024-06-01"
    );
    assert_eq!(r.header("api-key"), Some(KEY));
    assert_eq!(r.header("authorization"), None);
}

#[tokio::test]
async fn rate_limit_headers_are_exposed_for_the_layer() {
    let s = FakeServer::start(FakeServerConfig {
        requests_per_minute: Some(100),
        tokens_per_minute: Some(100_000),
        ..FakeServerConfig::default()
    })
    .await
    .unwrap();
    let mut c = Config::for_provider("openai");
    c.base_url = Some(s.openai_base_url());
    c.dimensions = Some(4);
    let e = OpenAiEmbedder::from_config(&c).unwrap();
    let a = e.embed_documents(&["a"]).await.unwrap();
    let b = e.embed_documents(&["b"]).await.unwrap();
    let (a, b) = (a.rate_limits().unwrap(), b.rate_limits().unwrap());
    assert_eq!(a.limit_requests, Some(100));
    assert!(b.remaining_requests < a.remaining_requests, "{a:?} {b:?}");
    assert!(a.remaining_tokens.is_some());
}

#[test]
fn configuration_is_validated_up_front() {
    let build = |toml: &str| {
        let mut c = Config::from_toml_str(toml).unwrap();
        if c.api_key.is_none() {
            c.api_key = Some(SecretString::from("sk-x"));
        }
        OpenAiEmbedder::from_config(&c)
    };
    let err = build("provider = \"openai\"\nmodel = \"text-embedding-ada-002\"\ndimensions = 256")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(
        err.message().contains("does not accept `dimensions`"),
        "{err}"
    );
    assert!(
        build("provider = \"openai\"\nmodel = \"text-embedding-ada-002\"\ndimensions = 1536")
            .is_ok()
    );
    let err = build("provider = \"openai\"\nmodel = \"text-embedding-3-small\"\ndimensions = 2000")
        .unwrap_err();
    assert!(err.message().contains("at most 1536"), "{err}");
    let err = build("provider = \"openai\"\n[openai]\nencoding = \"float\"").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(err.to_string().contains("encoding"), "{err}");
    let err = build("provider = \"openai\"\n[openai]\nencoding_format = \"int8\"").unwrap_err();
    assert!(err.to_string().contains("int8"), "{err}");
    let err = build("provider = \"openai\"\nbase_url = \"not a url\"").unwrap_err();
    assert!(err.message().contains("base_url"), "{err}");
    let err = build("provider = \"openai\"\nbase_url = \"ftp://x/v1\"").unwrap_err();
    assert!(err.message().contains("http"), "{err}");
    let err = build("provider = \"openai\"\n[openai.headers]\n\"bad header\" = \"x\"").unwrap_err();
    assert!(err.message().contains("bad header"), "{err}");
    let err = build("provider = \"openai\"\n[openai]\nmax_batch_size = 0").unwrap_err();
    assert!(err.message().contains("openai.max_batch_size"), "{err}");
    let e = build("provider = \"openai\"\n[openai]\nmax_batch_size = 16\nmax_input_tokens = 512\nnormalized = false\nconnect_timeout = \"2s\"").unwrap();
    assert_eq!(e.info().max_batch_size, 16);
    // A hosted service: sub-batches of a call go out together.
    assert_eq!(e.info().concurrency, 16);
    assert_eq!(e.info().max_input_tokens, 512);
    assert!(!e.info().normalized);
    assert_eq!(e.info().max_batch_tokens, 300_000);
    assert_eq!(e.endpoint(), "https://api.openai.com/v1/embeddings");
    // A key is required by api.openai.com (OPENAI_API_KEY is not set in tests).
    if std::env::var_os("OPENAI_API_KEY").is_none() {
        let c = Config::from_toml_str("provider = \"openai\"").unwrap();
        let err = OpenAiEmbedder::from_config(&c).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        assert!(err.message().contains("OPENAI_API_KEY"), "{err}");
    }
    if std::env::var_os("AZURE_OPENAI_API_KEY").is_none()
        && std::env::var_os("OPENAI_API_KEY").is_none()
    {
        let c = Config::from_toml_str(
            "provider = \"openai\"\n[openai.azure]\nendpoint = \"https://r.openai.azure.com\"",
        )
        .unwrap();
        let err = OpenAiEmbedder::from_config(&c).unwrap_err();
        assert!(
            err.message().contains("Azure OpenAI needs an API key"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn inputs_beyond_max_batch_size_are_refused_without_a_request() {
    let s = server().await;
    let e = OpenAiEmbedder::from_config(&config(
        &s,
        MODEL,
        Some(4),
        "[openai]\nmax_batch_size = 2\n",
    ))
    .unwrap();
    let err = e.embed_documents(&["a", "b", "c"]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(s.requests().is_empty());
    assert!(e.embed_documents(&[]).await.unwrap().is_empty());
    assert!(s.requests().is_empty(), "an empty call sends nothing");
}

#[test]
fn token_counts_use_cl100k() {
    let e = OpenAiEmbedder::from_config(&{
        let mut c = Config::for_provider("openai");
        c.api_key = Some(SecretString::from("sk-x"));
        c
    })
    .unwrap();
    assert_eq!(e.count_tokens("tiktoken is great!"), 6);
    assert_eq!(e.count_tokens(""), 0);
    let long = "word ".repeat(100);
    let parts = e.split_tokens(&long, 10);
    assert_eq!(parts.concat(), long);
    assert!(parts.iter().all(|p| e.count_tokens(p) <= 10));
    assert_eq!(embeddings_testkit::count_tokens("tiktoken is great!"), 6);
}

#[tokio::test]
async fn a_body_larger_than_the_batch_justifies_is_refused() {
    use embeddings_http::testing::{RawReply, RawServer};
    for head in [
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 50000000\r\n\r\n",
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
    ] {
        let reply = RawReply::Forever {
            head: head.to_owned(),
            piece: vec![b'['; 16 * 1024],
        };
        let server = RawServer::start(reply).await.unwrap();
        let mut c = Config::for_provider("openai");
        c.base_url = Some(format!("{}/v1", server.url()));
        c.dimensions = Some(8);
        let e = OpenAiEmbedder::from_config(&c).unwrap();
        let err = e.embed_documents(&["a", "b"]).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidResponse, "{err}");
        assert!(err.message().contains("larger than"), "{err}");
        assert!(err.message().contains("2 vectors of dimension 8"), "{err}");
    }
}
