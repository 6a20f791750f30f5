//! Every fault and every trigger, scoped to routes.

use std::time::Duration;

use embeddings_testkit::{
    FakeServerConfig, Fault, FaultAction, Latency, RateLimitedFault, Route, StatusFault, Trigger,
};
use serde_json::{Value, json};

use crate::common::*;

fn with_faults(faults: Vec<Fault>) -> FakeServerConfig {
    FakeServerConfig {
        faults,
        ..Default::default()
    }
}

fn status(code: u16) -> FaultAction {
    FaultAction::Status(StatusFault::new(code))
}

async fn statuses(s: &embeddings_testkit::FakeServer, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            openai(s, json!({"model": SMALL, "input": "x", "dimensions": 2}))
                .await
                .status,
        );
    }
    out
}

#[tokio::test]
async fn every_nth_first_nth_and_always() {
    let s = start(with_faults(vec![
        Fault::new(status(503)).when(Trigger::EveryNth(3)),
    ]))
    .await;
    assert_eq!(statuses(&s, 7).await, [200, 200, 503, 200, 200, 503, 200]);

    s.set_faults(vec![Fault::new(status(500)).when(Trigger::First(2))]);
    assert_eq!(statuses(&s, 4).await, [500, 500, 200, 200]);

    s.set_faults(vec![Fault::new(status(502)).when(Trigger::Nth(2))]);
    assert_eq!(statuses(&s, 3).await, [200, 502, 200]);

    s.set_faults(vec![Fault::new(status(504))]);
    assert_eq!(statuses(&s, 2).await, [504, 504]);

    s.set_faults(vec![]);
    assert_eq!(statuses(&s, 2).await, [200, 200]);
}

#[tokio::test]
async fn a_seeded_rate_repeats_itself() {
    let fault = Fault::new(status(503)).when(Trigger::Rate {
        probability: 0.5,
        seed: 42,
    });
    let a = start(with_faults(vec![fault.clone()])).await;
    let b = start(with_faults(vec![fault])).await;
    let sa = statuses(&a, 24).await;
    assert_eq!(sa, statuses(&b, 24).await);
    let failed = sa.iter().filter(|s| **s == 503).count();
    assert!((4..=20).contains(&failed), "{sa:?}");
}

#[tokio::test]
async fn faults_are_scoped_to_their_route() {
    let s = start(with_faults(vec![
        Fault::new(status(503)).on(Route::Ollama),
        Fault::new(status(418)).on(Route::OllamaTags),
    ]))
    .await;
    assert_eq!(statuses(&s, 2).await, [200, 200]);
    let a = ollama(
        &s,
        "/api/embed",
        json!({"model": "all-minilm", "input": "x"}),
    )
    .await;
    assert_ollama_error(
        &a,
        503,
        "The engine is currently overloaded, please try again later.",
    );
    // The first fault that fires answers.
    let a = get(&format!("{}/api/tags", s.base_url())).await;
    assert_eq!(a.status, 503);

    s.set_faults(vec![Fault::new(status(500)).on(Route::OpenaiModels)]);
    assert_eq!(statuses(&s, 1).await, [200]);
    assert_eq!(
        get(&format!("{}/models", s.openai_base_url())).await.status,
        500
    );
}

#[tokio::test]
async fn status_faults_use_the_providers_error_bodies() {
    let s = start(with_faults(vec![
        Fault::new(FaultAction::Status(StatusFault {
            status: 429,
            code: Some("insufficient_quota".into()),
            error_type: Some("insufficient_quota".into()),
            message: Some("You exceeded your current quota.".into()),
        }))
        .when(Trigger::Nth(1)),
        Fault::new(status(503)).when(Trigger::Nth(2)),
        Fault::new(status(401)).when(Trigger::Nth(3)),
    ]))
    .await;
    let a = openai(&s, json!({"model": SMALL, "input": "x"})).await;
    assert_openai_error(
        &a,
        429,
        "insufficient_quota",
        None,
        Some("insufficient_quota"),
    );
    assert_eq!(
        a.body["error"]["message"],
        "You exceeded your current quota."
    );
    let a = openai(&s, json!({"model": SMALL, "input": "x"})).await;
    assert_openai_error(&a, 503, "server_error", None, None);
    assert!(a.header("x-ratelimit-limit-requests").is_some());
    let a = openai(&s, json!({"model": SMALL, "input": "x"})).await;
    assert_openai_error(
        &a,
        401,
        "invalid_request_error",
        None,
        Some("invalid_api_key"),
    );
}

#[tokio::test]
async fn rate_limited_sends_retry_after_headers() {
    let s = start(with_faults(vec![
        Fault::new(FaultAction::RateLimited(RateLimitedFault {
            retry_after_secs: Some(2),
            retry_after_ms: Some(1500),
            http_date: false,
            should_retry: Some(true),
        }))
        .when(Trigger::First(1)),
    ]))
    .await;
    let a = openai(&s, json!({"model": SMALL, "input": "x"})).await;
    assert_openai_error(&a, 429, "requests", None, Some("rate_limit_exceeded"));
    assert_eq!(a.header("retry-after"), Some("2"));
    assert_eq!(a.header("retry-after-ms"), Some("1500"));
    assert_eq!(a.header("x-should-retry"), Some("true"));
    assert_eq!(
        openai(&s, json!({"model": SMALL, "input": "x"}))
            .await
            .status,
        200
    );

    s.set_faults(vec![Fault::new(FaultAction::RateLimited(
        RateLimitedFault {
            retry_after_secs: Some(30),
            http_date: true,
            ..Default::default()
        },
    ))]);
    let a = ollama(
        &s,
        "/api/embed",
        json!({"model": "all-minilm", "input": "x"}),
    )
    .await;
    assert_ollama_error(&a, 429, "rate limit exceeded");
    let date = httpdate::parse_http_date(a.header("retry-after").unwrap()).unwrap();
    let wait = date
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    assert!(
        wait > Duration::from_secs(20) && wait <= Duration::from_secs(31),
        "{wait:?}"
    );
    assert!(a.header("retry-after-ms").is_none());
}

#[tokio::test(start_paused = true)]
async fn fixed_and_uniform_latency_on_tokio_time() {
    let s = start(with_faults(vec![
        Fault::new(FaultAction::Latency(Latency::Fixed(Duration::from_secs(5))))
            .on(Route::OpenaiEmbeddings),
    ]))
    .await;
    let t = tokio::time::Instant::now();
    let a = openai(&s, json!({"model": SMALL, "input": "x"})).await;
    assert_eq!(a.status, 200);
    assert!(t.elapsed() >= Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(t.elapsed() < Duration::from_secs(6));
    // Other routes are not delayed.
    let t = tokio::time::Instant::now();
    get(&format!("{}/api/version", s.base_url())).await;
    assert!(t.elapsed() < Duration::from_secs(1));

    s.set_faults(vec![Fault::new(FaultAction::Latency(Latency::Uniform {
        min: Duration::from_secs(2),
        max: Duration::from_secs(4),
    }))]);
    let mut seen = Vec::new();
    for _ in 0..5 {
        let t = tokio::time::Instant::now();
        let a = ollama(
            &s,
            "/api/embed",
            json!({"model": "all-minilm", "input": "x"}),
        )
        .await;
        assert_eq!(a.status, 200);
        let e = t.elapsed();
        assert!(
            e >= Duration::from_secs(2) && e < Duration::from_millis(4500),
            "{e:?}"
        );
        seen.push(e);
    }
    seen.dedup();
    assert!(seen.len() > 1, "the delays vary: {seen:?}");

    // Latency adds up with an error.
    s.set_faults(vec![
        Fault::new(FaultAction::Latency(Latency::Fixed(Duration::from_secs(3)))),
        Fault::new(status(503)),
    ]);
    let t = tokio::time::Instant::now();
    assert_eq!(statuses(&s, 1).await, [503]);
    assert!(t.elapsed() >= Duration::from_secs(3));
}

#[tokio::test]
async fn hang_never_answers() {
    let s = start(with_faults(vec![
        Fault::new(FaultAction::Hang).when(Trigger::First(1)),
    ]))
    .await;
    let c = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let url = format!("{}/embeddings", s.openai_base_url());
    let err = c
        .post(&url)
        .json(&json!({"model": SMALL, "input": "x"}))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    // The next request is answered.
    let r = c
        .post(&url)
        .json(&json!({"model": SMALL, "input": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let stats = s.stats();
    assert_eq!(stats.count(Route::OpenaiEmbeddings, 0), 1);
    assert_eq!(stats.count(Route::OpenaiEmbeddings, 200), 1);
    assert_eq!(s.requests()[0].status, 0);
}

#[tokio::test]
async fn dropping_the_server_ends_hanging_connections() {
    let s = start(with_faults(vec![Fault::new(FaultAction::Hang)])).await;
    let url = format!("{}/embeddings", s.openai_base_url());
    let pending = tokio::spawn(async move {
        client()
            .post(&url)
            .json(&json!({"model": SMALL, "input": "x"}))
            .send()
            .await
    });
    while s.stats().requests == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let addr = s.addr();
    drop(s);
    let r = tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .expect("the client sees the end")
        .unwrap();
    assert!(r.is_err(), "{r:?}");
    // Nothing listens any more.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn reset_is_a_connection_error() {
    let s = start(with_faults(vec![
        Fault::new(FaultAction::Reset).when(Trigger::First(1)),
    ]))
    .await;
    let url = format!("{}/embeddings", s.openai_base_url());
    let err = client()
        .post(&url)
        .json(&json!({"model": SMALL, "input": "x"}))
        .send()
        .await
        .unwrap_err();
    assert!(!err.is_timeout() && err.status().is_none(), "{err:?}");
    let chain = format!("{:?}", anyhow_chain(&err));
    assert!(
        chain.contains("reset") || chain.contains("closed") || chain.contains("incomplete"),
        "{chain}"
    );
    assert_eq!(
        openai(&s, json!({"model": SMALL, "input": "x"}))
            .await
            .status,
        200
    );

    // On a raw socket: the RST is seen as ECONNRESET.
    s.set_faults(vec![Fault::new(FaultAction::Reset)]);
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(s.addr()).await.unwrap();
    sock.write_all(b"GET /api/version HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let e = sock.read(&mut buf).await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
}

fn anyhow_chain(e: &dyn std::error::Error) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push(s.to_string());
        cur = s.source();
    }
    out
}

#[tokio::test]
async fn truncated_body_fails_while_reading() {
    let s = start(with_faults(vec![Fault::new(FaultAction::Truncate)])).await;
    let resp = client()
        .post(format!("{}/embeddings", s.openai_base_url()))
        .json(&json!({"model": SMALL, "input": ["a", "b"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let full: usize = resp
        .headers()
        .get("content-length")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(full > 1000);
    assert!(resp.bytes().await.is_err(), "the body is cut");
}

#[tokio::test]
async fn malformed_json_is_a_complete_answer_that_does_not_parse() {
    let s = start(with_faults(vec![
        Fault::new(FaultAction::MalformedJson).on(Route::Ollama),
    ]))
    .await;
    for path in ["/api/embed", "/api/tags"] {
        let resp = client()
            .post(format!("{}{path}", s.base_url()))
            .json(&json!({"model": "all-minilm", "input": "x"}))
            .send()
            .await
            .unwrap();
        let bytes = resp.bytes().await.expect("a complete body");
        assert!(!bytes.is_empty());
        assert!(serde_json::from_slice::<Value>(&bytes).is_err());
    }
}

async fn rows(s: &embeddings_testkit::FakeServer, texts: &[&str], format: &str) -> Vec<Value> {
    let a = openai(
        s,
        json!({"model": SMALL, "input": texts, "dimensions": 8, "encoding_format": format}),
    )
    .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    a.body["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn wrong_count_removes_or_adds_rows() {
    let s = start(with_faults(vec![Fault::new(FaultAction::WrongCount(-1))])).await;
    assert_eq!(rows(&s, &["a", "b", "c"], "float").await.len(), 2);
    assert_eq!(rows(&s, &["a"], "float").await.len(), 0);
    s.set_faults(vec![Fault::new(FaultAction::WrongCount(2))]);
    let r = rows(&s, &["a", "b"], "float").await;
    let idx: Vec<_> = r.iter().map(|x| x["index"].as_u64().unwrap()).collect();
    assert_eq!(idx, [0, 1, 2, 3]);
    let a = ollama(
        &s,
        "/api/embed",
        json!({"model": "all-minilm", "input": ["a", "b"]}),
    )
    .await;
    assert_eq!(a.body["embeddings"].as_array().unwrap().len(), 4);
    // Row faults do not touch other routes, nor count them.
    assert_eq!(get(&format!("{}/api/tags", s.base_url())).await.status, 200);
}

#[tokio::test]
async fn shuffled_rows_keep_their_true_index() {
    let s = start(with_faults(vec![Fault::new(FaultAction::ShuffleIndex)])).await;
    let texts = ["a", "b", "c", "d", "e"];
    for _ in 0..3 {
        let r = rows(&s, &texts, "base64").await;
        let idx: Vec<usize> = r
            .iter()
            .map(|x| x["index"].as_u64().unwrap() as usize)
            .collect();
        assert_ne!(idx, [0, 1, 2, 3, 4], "out of order");
        let mut sorted = idx.clone();
        sorted.sort();
        assert_eq!(sorted, [0, 1, 2, 3, 4]);
        for row in &r {
            let i = row["index"].as_u64().unwrap() as usize;
            assert_vector(SMALL, texts[i], 8, &base64_floats(&row["embedding"]));
        }
    }
    // Ollama has no index: the rows are in the wrong order.
    let a = ollama(
        &s,
        "/api/embed",
        json!({"model": "all-minilm", "input": ["a", "b"]}),
    )
    .await;
    assert_vector("all-minilm", "b", 384, &floats(&a.body["embeddings"][0]));
    assert_vector("all-minilm", "a", 384, &floats(&a.body["embeddings"][1]));
}

#[tokio::test]
async fn duplicated_index() {
    let s = start(with_faults(vec![Fault::new(FaultAction::DuplicateIndex)])).await;
    let r = rows(&s, &["a", "b", "c"], "float").await;
    let idx: Vec<_> = r.iter().map(|x| x["index"].as_u64().unwrap()).collect();
    assert_eq!(idx, [0, 0, 2]);
    let r = rows(&s, &["a"], "float").await;
    let idx: Vec<_> = r.iter().map(|x| x["index"].as_u64().unwrap()).collect();
    assert_eq!(idx, [0, 0]);
    let a = ollama(
        &s,
        "/api/embed",
        json!({"model": "all-minilm", "input": ["a", "b"]}),
    )
    .await;
    assert_eq!(a.body["embeddings"][0], a.body["embeddings"][1]);
}

#[tokio::test]
async fn nan_in_a_vector() {
    let s = start(with_faults(vec![Fault::new(FaultAction::Nan)])).await;
    let r = rows(&s, &["a", "b"], "base64").await;
    let v = base64_floats(&r[0]["embedding"]);
    assert!(v[0].is_nan());
    assert!(v[1..].iter().all(|x| x.is_finite()));
    assert_vector(SMALL, "b", 8, &base64_floats(&r[1]["embedding"]));
    // JSON has no NaN: floats carry a null.
    let r = rows(&s, &["a"], "float").await;
    assert!(r[0]["embedding"][0].is_null());
    let a = ollama(
        &s,
        "/api/embeddings",
        json!({"model": "all-minilm", "prompt": "a"}),
    )
    .await;
    assert!(a.body["embedding"][0].is_null());
}

#[tokio::test]
async fn wrong_dimension() {
    let s = start(with_faults(vec![Fault::new(FaultAction::WrongDimension(
        -1,
    ))]))
    .await;
    let r = rows(&s, &["a", "b"], "float").await;
    assert_eq!(floats(&r[0]["embedding"]).len(), 7);
    assert_eq!(floats(&r[1]["embedding"]).len(), 8);
    s.set_faults(vec![Fault::new(FaultAction::WrongDimension(3))]);
    let r = rows(&s, &["a"], "base64").await;
    assert_eq!(base64_floats(&r[0]["embedding"]).len(), 11);
    let a = ollama(
        &s,
        "/api/embed",
        json!({"model": "all-minilm", "input": ["a"]}),
    )
    .await;
    assert_eq!(floats(&a.body["embeddings"][0]).len(), 387);
}

#[test]
fn the_toml_format() {
    let config = FakeServerConfig::from_toml(
        r#"
        api_key = "sk-test"
        requests_per_minute = 60
        tokens_per_minute = 10000
        request_log_limit = 100

        [openai_models]
        my-model = 64

        [ollama_models.my-embedder]
        dimension = 32
        context_length = 256

        [[faults]]
        route = "openai"
        trigger = { every_nth = 3 }
        action = { status = 503 }

        [[faults]]
        trigger = { rate = { probability = 0.1, seed = 7 } }
        action = { latency = { min = "10ms", max = "50ms" } }

        [[faults]]
        route = "ollama_embed"
        trigger = { first = 2 }
        action = "reset"

        [[faults]]
        action = { rate_limited = { retry_after_secs = 2, retry_after_ms = 1500 } }
        trigger = { nth = 5 }

        [[faults]]
        action = { status = { status = 429, code = "insufficient_quota" } }
        trigger = "always"
        route = "openai_embeddings"

        [[faults]]
        action = { wrong_count = -1 }

        [[faults]]
        action = { latency = "200ms" }
        "#,
    )
    .unwrap();
    assert_eq!(config.api_key.as_deref(), Some("sk-test"));
    assert_eq!(config.openai_models["my-model"], 64);
    assert_eq!(config.ollama_models["my-embedder"].context_length, 256);
    assert_eq!(config.ollama_models["my-embedder"].family, "bert");
    let f = &config.faults;
    assert_eq!(
        f[0],
        Fault::new(status(503))
            .on(Route::Openai)
            .when(Trigger::EveryNth(3))
    );
    assert_eq!(
        f[1].action,
        FaultAction::Latency(Latency::Uniform {
            min: Duration::from_millis(10),
            max: Duration::from_millis(50)
        })
    );
    assert_eq!(
        f[1].trigger,
        Trigger::Rate {
            probability: 0.1,
            seed: 7
        }
    );
    assert_eq!(
        f[2],
        Fault::new(FaultAction::Reset)
            .on(Route::OllamaEmbed)
            .when(Trigger::First(2))
    );
    assert_eq!(f[3].trigger, Trigger::Nth(5));
    assert!(
        matches!(&f[4].action, FaultAction::Status(s) if s.status == 429 && s.code.as_deref() == Some("insufficient_quota"))
    );
    assert_eq!(f[5].action, FaultAction::WrongCount(-1));
    assert_eq!(
        f[6].action,
        FaultAction::Latency(Latency::Fixed(Duration::from_millis(200)))
    );

    for bad in [
        "[[faults]]\ntrigger = { every_nth = 0 }\naction = \"hang\"",
        "[[faults]]\ntrigger = { rate = { probability = 2.0 } }\naction = \"hang\"",
        "[[faults]]\naction = { latency = { min = \"2s\", max = \"1s\" } }",
        "[[faults]]\naction = \"explode\"",
        "unknown_key = 1",
        "[openai_models]\nzero = 0",
    ] {
        assert!(FakeServerConfig::from_toml(bad).is_err(), "{bad}");
    }
}

/// Routes are open (each dialect brings its own), so a route no dialect of
/// the server serves is refused when the server starts, naming it.
#[tokio::test]
async fn a_fault_on_a_route_nobody_serves_is_refused_at_start() {
    let config =
        FakeServerConfig::from_toml("[[faults]]\nroute = \"nowhere\"\naction = \"hang\"").unwrap();
    let err = embeddings_testkit::FakeServer::start(config)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("\"nowhere\""), "{err}");
    assert!(err.to_string().contains("openai_embeddings"), "{err}");
    let s = server().await;
    assert!(
        s.try_set_faults(vec![
            Fault::new(FaultAction::Hang).on(Route::new("nowhere"))
        ])
        .is_err()
    );
    assert!(
        s.try_set_faults(vec![Fault::new(FaultAction::Hang).on(Route::Ollama)])
            .is_ok()
    );
}
