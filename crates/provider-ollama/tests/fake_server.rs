//! The Ollama provider against the testkit's fake server (127.0.0.1 only):
//! every row checked against DESIGN.md §4, the wire format, the legacy
//! fallback, dimension discovery, every fault, and the conformance suite.

use std::time::Duration;

use embeddings_core::{Config, Embedder, ErrorKind};
use embeddings_ollama::{OllamaEmbedder, PROBE_TEXT};
use embeddings_testkit::conformance::{self, Expectations, check_rows};
use embeddings_testkit::{
    FakeServer, FakeServerConfig, Fault, FaultAction, RateLimitedFault, RecordedRequest, Route,
    StatusFault,
};
use serde_json::json;

async fn server() -> FakeServer {
    FakeServer::start(FakeServerConfig::default())
        .await
        .expect("fake server")
}

/// An embedder of `model` on `server`, with extra TOML (top-level keys, then
/// sections) appended to the configuration.
fn ollama(server: &FakeServer, model: &str, extra: &str) -> OllamaEmbedder {
    let toml = format!(
        "provider = \"ollama\"\nmodel = \"{model}\"\nbase_url = \"{}\"\n{extra}",
        server.base_url()
    );
    OllamaEmbedder::from_config(&Config::from_toml_str(&toml).expect("config")).expect("embedder")
}

fn on(server: &FakeServer, route: Route) -> Vec<RecordedRequest> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.route == route)
        .collect()
}

/// A 404 as an Ollama older than /api/embed answers it (the router's own).
fn route_missing(route: Route) -> Fault {
    Fault::new(FaultAction::Status(StatusFault {
        message: Some("404 page not found".into()),
        ..StatusFault::new(404)
    }))
    .on(route)
}

fn texts(n: usize) -> Vec<String> {
    let mut t = conformance::sample_texts();
    t.extend((0..n).map(|i| format!("document number {i}")));
    t
}

fn refs(t: &[String]) -> Vec<&str> {
    t.iter().map(String::as_str).collect()
}

#[tokio::test]
async fn one_request_for_n_inputs_and_every_row_is_the_design_vector() {
    let s = server().await;
    let e = ollama(&s, "all-minilm", "");
    assert_eq!(e.dimension(), 0, "unknown before the first call");
    let t = texts(40);
    let r = refs(&t);
    let out = e.embed_documents(&r).await.unwrap();
    assert_eq!((out.len(), out.dim()), (t.len(), 384));
    check_rows(&out, "all-minilm", &r);
    assert!(out.usage().unwrap().prompt_tokens > 0);
    // Learned from the answer: free from now on.
    assert_eq!(e.dimension(), 384);
    assert_eq!(e.info().dimension, 384);
    // A server on the user's hardware: four sub-batches in flight.
    assert_eq!(e.info().concurrency, 4);
    assert!(e.info().normalized);

    let reqs = s.requests();
    assert_eq!(reqs.len(), 1, "one request for {} inputs", t.len());
    let req = &reqs[0];
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("POST", "/api/embed")
    );
    assert_eq!(req.status, 200);
    assert_eq!(req.body["model"], "all-minilm");
    assert_eq!(req.body["input"], json!(t));
    // Nothing that was not configured is sent.
    let keys: Vec<&String> = req.body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["input", "model"]);
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.header("authorization"), None);

    // embed_query is one request of one input, the same vector.
    let q = e.embed_query("hello").await.unwrap();
    assert_eq!(q, embeddings_mock::vector("all-minilm", "hello", 384));
    assert_eq!(s.requests().len(), 2);
}

#[tokio::test]
async fn every_option_reaches_the_wire_as_ollama_documents_it() {
    let s = server().await;
    let e = ollama(
        &s,
        "nomic-embed-text:latest",
        "dimensions = 64\napi_key = \"sk-ollama-secret\"\n\
         [ollama]\ntruncate = false\nkeep_alive = \"10m\"\n\
         headers = { \"X-Team\" = \"search\" }\n\
         [ollama.options]\nnum_ctx = 512\ntemperature = 0.5\nstop = [\"a\", \"b\"]\n",
    );
    assert_eq!(e.dimension(), 64);
    let out = e.embed_documents(&["alpha", "beta"]).await.unwrap();
    check_rows(&out, "nomic-embed-text", &["alpha", "beta"]);
    assert_eq!(out.dim(), 64);
    let reqs = s.requests();
    let req = &reqs[0];
    assert_eq!(
        req.body,
        json!({
            "model": "nomic-embed-text:latest",
            "input": ["alpha", "beta"],
            "truncate": false,
            "keep_alive": "10m",
            "dimensions": 64,
            "options": { "num_ctx": 512, "temperature": 0.5, "stop": ["a", "b"] },
        })
    );
    assert_eq!(req.header("authorization"), Some("Bearer sk-ollama-secret"));
    assert_eq!(req.header("x-team"), Some("search"));
    assert!(!format!("{e:?}").contains("sk-ollama-secret"));

    // keep_alive in seconds is sent as a number; -1 keeps the model loaded.
    let e = ollama(
        &s,
        "all-minilm",
        "[ollama]\nkeep_alive = -1\ntruncate = true\n",
    );
    e.embed_query("x").await.unwrap();
    let last = s.requests().pop().unwrap();
    assert_eq!(last.body["keep_alive"], json!(-1));
    assert_eq!(last.body["truncate"], json!(true));
}

#[tokio::test]
async fn truncate_false_surfaces_context_length_exceeded() {
    let s = server().await;
    let e = ollama(&s, "all-minilm", "[ollama]\ntruncate = false\n");
    let long = "many words ".repeat(2000);
    let err = e.embed_documents(&["short", &long]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ContextLengthExceeded, "{err}");
    assert_eq!(err.status(), Some(400));
    // With Ollama's default (truncate), the same input is embedded.
    let e = ollama(&s, "all-minilm", "");
    let out = e.embed_documents(&["short", &long]).await.unwrap();
    check_rows(&out, "all-minilm", &["short", &long]);
}

#[tokio::test]
async fn a_missing_api_embed_falls_back_to_the_legacy_route_once_and_for_all() {
    let s = server().await;
    s.set_faults(vec![route_missing(Route::OllamaEmbed)]);
    let e = ollama(
        &s,
        "all-minilm",
        "[ollama]\nkeep_alive = \"1m\"\n[ollama.options]\nnum_thread = 2\n",
    );
    let t = ["first", "second", "third"];
    let out = e.embed_documents(&t).await.unwrap();
    check_rows(&out, "all-minilm", &t);
    assert!(e.uses_legacy_endpoint());
    assert!(!e.info().normalized, "the legacy route does not normalise");
    assert_eq!(e.info().dimension, 384);

    let embed = on(&s, Route::OllamaEmbed);
    let legacy = on(&s, Route::OllamaEmbeddings);
    assert_eq!(embed.len(), 1);
    assert_eq!(legacy.len(), 3, "one legacy request per input");
    for (req, text) in legacy.iter().zip(t) {
        assert_eq!(
            req.body,
            json!({ "model": "all-minilm", "prompt": text, "keep_alive": "1m",
                    "options": { "num_thread": 2 } })
        );
    }

    // Remembered: no second try of /api/embed.
    let out = e.embed_documents(&["fourth", "fifth"]).await.unwrap();
    check_rows(&out, "all-minilm", &["fourth", "fifth"]);
    assert_eq!(on(&s, Route::OllamaEmbed).len(), 1);
    assert_eq!(on(&s, Route::OllamaEmbeddings).len(), 5);

    // An empty text is refused up front: the legacy route cannot embed it.
    let before = s.requests().len();
    let err = e.embed_documents(&["x", ""]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.message().contains("input 1"), "{err}");
    assert_eq!(s.requests().len(), before);

    // The conformance suite holds on the legacy route too.
    conformance::run_all(&e, &Expectations::deterministic("all-minilm", 384)).await;
}

#[tokio::test]
async fn the_legacy_route_cannot_honour_dimensions_and_says_so() {
    let s = server().await;
    s.set_faults(vec![route_missing(Route::OllamaEmbed)]);
    let e = ollama(&s, "nomic-embed-text", "dimensions = 32");
    let err = e.embed_documents(&["a", "b"]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidResponse, "{err}");
    assert!(err.message().contains("768 values, expected 32"), "{err}");
    assert!(err.message().contains("ignores `dimensions`"), "{err}");
    // One request: the first answer already shows it.
    assert_eq!(on(&s, Route::OllamaEmbeddings).len(), 1);
}

#[tokio::test]
async fn a_missing_model_is_not_found_with_a_pull_hint_and_no_fallback() {
    let s = server().await;
    let e = ollama(&s, "no-such-model", "");
    let err = e.embed_documents(&["x"]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.message().contains("ollama pull no-such-model"), "{err}");
    assert_eq!(err.status(), Some(404));
    assert!(!e.uses_legacy_endpoint());
    assert_eq!(s.requests().len(), 1);

    let err = e.discover_dimension().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let err = e.health_check().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.message().contains("ollama pull no-such-model"), "{err}");
}

#[tokio::test]
async fn a_server_without_either_route_says_so() {
    let s = server().await;
    let mut c = Config::for_provider("ollama");
    c.base_url = Some(format!("{}/not-ollama", s.base_url()));
    c.model = Some("all-minilm".into());
    let e = OllamaEmbedder::from_config(&c).unwrap();
    let err = e.embed_documents(&["x"]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(
        err.message()
            .contains("neither /api/embed nor /api/embeddings"),
        "{err}"
    );
    let paths: Vec<String> = s.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        ["/not-ollama/api/embed", "/not-ollama/api/embeddings"]
    );
}

#[tokio::test]
async fn dimension_is_discovered_from_api_show() {
    let s = server().await;
    let e = ollama(&s, "nomic-embed-text", "");
    assert_eq!(e.discover_dimension().await.unwrap(), 768);
    assert_eq!(e.dimension(), 768);
    assert_eq!(e.info().dimension, 768);
    // The context length came along.
    assert_eq!(e.info().max_input_tokens, 2048);
    let reqs = s.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].route, Route::OllamaShow);
    assert_eq!(reqs[0].body, json!({ "model": "nomic-embed-text" }));
    // Cached: no more requests.
    assert_eq!(e.discover_dimension().await.unwrap(), 768);
    assert_eq!(s.requests().len(), 1);
    // And then checked against every answer.
    let out = e.embed_documents(&["a"]).await.unwrap();
    check_rows(&out, "nomic-embed-text", &["a"]);
}

#[tokio::test]
async fn dimension_is_discovered_by_a_probe_without_api_show() {
    let s = server().await;
    s.set_faults(vec![route_missing(Route::OllamaShow)]);
    let e = ollama(&s, "mxbai-embed-large", "");
    assert_eq!(e.discover_dimension().await.unwrap(), 1024);
    assert_eq!(e.dimension(), 1024);
    let probe = on(&s, Route::OllamaEmbed);
    assert_eq!(probe.len(), 1);
    assert_eq!(probe[0].body["input"], json!([PROBE_TEXT]));
    assert_eq!(e.discover_dimension().await.unwrap(), 1024);
    assert_eq!(s.requests().len(), 2);
}

#[tokio::test]
async fn a_configured_dimension_needs_no_discovery() {
    let s = server().await;
    let e = ollama(&s, "all-minilm", "dimensions = 100");
    assert_eq!(e.discover_dimension().await.unwrap(), 100);
    assert!(s.requests().is_empty());
}

#[tokio::test]
async fn health_check_wants_the_server_and_the_model() {
    let s = server().await;
    for model in ["nomic-embed-text", "nomic-embed-text:latest", "all-minilm"] {
        ollama(&s, model, "").health_check().await.unwrap();
    }
    let paths: Vec<String> = s.requests().into_iter().take(2).map(|r| r.path).collect();
    assert_eq!(paths, ["/api/version", "/api/tags"]);

    let err = ollama(&s, "all-minilm:33m", "")
        .health_check()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(
        err.message().contains("`ollama pull all-minilm:33m`"),
        "{err}"
    );

    s.set_faults(vec![
        Fault::new(FaultAction::Status(StatusFault::new(503))).on(Route::OllamaVersion),
    ]);
    let err = ollama(&s, "all-minilm", "")
        .health_check()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.message().contains("/api/version"), "{err}");
}

/// Every fault of the fake server maps onto a typed error, never a partial
/// result; with `expected_dim` known or not.
#[tokio::test]
async fn every_fault_is_mapped() {
    let s = server().await;
    let status = |n| FaultAction::Status(StatusFault::new(n));
    let cases: Vec<(FaultAction, ErrorKind)> = vec![
        (status(400), ErrorKind::InvalidInput),
        (status(401), ErrorKind::Authentication),
        (status(403), ErrorKind::PermissionDenied),
        (status(404), ErrorKind::NotFound),
        (status(408), ErrorKind::Timeout),
        (status(413), ErrorKind::InvalidInput),
        (status(429), ErrorKind::RateLimited),
        (status(500), ErrorKind::Unavailable),
        (status(502), ErrorKind::Unavailable),
        (status(503), ErrorKind::Unavailable),
        (status(504), ErrorKind::Timeout),
        (FaultAction::Reset, ErrorKind::Connection),
        (FaultAction::Truncate, ErrorKind::Connection),
        (FaultAction::MalformedJson, ErrorKind::InvalidResponse),
        (FaultAction::WrongCount(-1), ErrorKind::InvalidResponse),
        (FaultAction::WrongCount(1), ErrorKind::InvalidResponse),
        (FaultAction::WrongCount(-3), ErrorKind::InvalidResponse),
        (FaultAction::Nan, ErrorKind::InvalidResponse),
        (FaultAction::WrongDimension(1), ErrorKind::InvalidResponse),
        (FaultAction::WrongDimension(-1), ErrorKind::InvalidResponse),
    ];
    for (action, kind) in cases {
        for dims in ["", "dimensions = 384"] {
            s.set_faults(vec![Fault::new(action.clone()).on(Route::OllamaEmbed)]);
            let e = ollama(&s, "all-minilm", dims);
            let err = e
                .embed_documents(&["one", "two", "three"])
                .await
                .expect_err(&format!("{action:?} must fail"));
            assert_eq!(err.kind(), kind, "{action:?} ({dims}): {err}");
            assert_eq!(err.provider(), Some("ollama"), "{err}");
            assert!(err.message().len() < 600, "{action:?}: long message {err}");
            assert_eq!(err.is_retryable(), kind.is_retryable(), "{action:?}");
            if let FaultAction::Status(f) = &action {
                assert_eq!(err.status(), Some(f.status));
            }
            if kind == ErrorKind::Connection {
                assert!(err.message().contains(&s.base_url()), "{err}");
            }
        }
        // The same fault on the legacy route.
        if !matches!(action, FaultAction::WrongCount(_)) {
            s.set_faults(vec![
                route_missing(Route::OllamaEmbed),
                Fault::new(action.clone()).on(Route::OllamaEmbeddings),
            ]);
            let e = ollama(&s, "all-minilm", "dimensions = 384");
            let err = e
                .embed_documents(&["one", "two"])
                .await
                .expect_err(&format!("legacy {action:?} must fail"));
            assert_eq!(err.kind(), kind, "legacy {action:?}: {err}");
        }
    }
    // A well-behaved call afterwards is whole.
    s.set_faults(Vec::new());
    let e = ollama(&s, "all-minilm", "");
    check_rows(
        &e.embed_documents(&["ok"]).await.unwrap(),
        "all-minilm",
        &["ok"],
    );
}

#[tokio::test]
async fn rate_limits_carry_the_servers_wait() {
    let s = server().await;
    let e = ollama(&s, "all-minilm", "");
    for (fault, want) in [
        (
            RateLimitedFault {
                retry_after_secs: Some(3),
                ..RateLimitedFault::default()
            },
            Some(Duration::from_secs(3)),
        ),
        (
            RateLimitedFault {
                retry_after_secs: Some(2),
                retry_after_ms: Some(1500),
                ..RateLimitedFault::default()
            },
            Some(Duration::from_millis(1500)),
        ),
        (RateLimitedFault::default(), None),
    ] {
        s.set_faults(vec![
            Fault::new(FaultAction::RateLimited(fault)).on(Route::OllamaEmbed),
        ]);
        let err = e.embed_documents(&["x"]).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RateLimited, "{err}");
        assert!(err.is_retryable());
        assert_eq!(err.retry_after(), want);
    }
    // An HTTP date too (a few seconds ahead, so at most that).
    s.set_faults(vec![
        Fault::new(FaultAction::RateLimited(RateLimitedFault {
            retry_after_secs: Some(30),
            http_date: true,
            ..RateLimitedFault::default()
        }))
        .on(Route::OllamaEmbed),
    ]);
    let err = e.embed_documents(&["x"]).await.unwrap_err();
    let wait = err.retry_after().unwrap();
    assert!(wait <= Duration::from_secs(30), "{wait:?}");
}

/// A server that never answers leaves the call pending (the timeout layer
/// ends it); the provider invents no error and sends nothing else.
#[tokio::test(start_paused = true)]
async fn a_hanging_server_leaves_the_call_pending() {
    let s = server().await;
    s.set_faults(vec![Fault::new(FaultAction::Hang).on(Route::OllamaEmbed)]);
    let e = ollama(&s, "all-minilm", "");
    let r = tokio::time::timeout(Duration::from_secs(3600), e.embed_documents(&["x"])).await;
    assert!(r.is_err(), "still pending when the (virtual) hour is over");
    assert_eq!(s.requests().len(), 1);
}

#[tokio::test]
async fn conformance_on_api_embed() {
    let s = server().await;
    let e = ollama(&s, "all-minilm", "");
    conformance::run_all(&e, &Expectations::deterministic("all-minilm", 384)).await;
    let e = ollama(&s, "nomic-embed-text", "dimensions = 48");
    conformance::run_all(&e, &Expectations::deterministic("nomic-embed-text", 48)).await;
}

#[tokio::test]
async fn conformance_through_the_registry_and_keyless_errors() {
    let s = server().await;
    let mut c = Config::for_provider("Ollama");
    c.base_url = Some(s.addr().to_string()); // Ollama's host:port form
    c.model = Some("all-minilm".into());
    c.api_key = Some("sk-do-not-leak".to_owned().into());
    let e = embeddings_core::registry::build(&c).unwrap();
    assert_eq!(e.info().provider, "ollama");
    conformance::run_all(e.as_ref(), &Expectations::deterministic("all-minilm", 384)).await;
    s.set_faults(vec![
        Fault::new(FaultAction::Status(StatusFault::new(401))).on(Route::OllamaEmbed),
    ]);
    conformance::check_error(
        e.as_ref(),
        ErrorKind::Authentication,
        Some("sk-do-not-leak"),
    )
    .await;
    s.set_faults(vec![Fault::new(FaultAction::Reset).on(Route::OllamaEmbed)]);
    conformance::check_error(e.as_ref(), ErrorKind::Connection, Some("sk-do-not-leak")).await;
}
