//! The request log and the counters.

use embeddings_testkit::{FakeServerConfig, Fault, FaultAction, Route, StatusFault, count_tokens};
use serde_json::{Value, json};

use crate::common::*;

#[tokio::test]
async fn the_log_holds_what_the_client_sent() {
    let s = server().await;
    let body = json!({"model": SMALL, "input": ["a", "b"], "dimensions": 4});
    let a = send(
        client()
            .post(format!("{}/embeddings?trace=1", s.openai_base_url()))
            .bearer_auth("sk-abc")
            .header("X-Custom", "Yes")
            .json(&body),
    )
    .await;
    assert_eq!(a.status, 200);
    send(
        client()
            .post(format!("{}/api/show", s.base_url()))
            .body("plain text"),
    )
    .await;
    get(&format!("{}/api/version", s.base_url())).await;

    let log = s.requests();
    assert_eq!(log.len(), 3);
    let r = &log[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/embeddings?trace=1");
    assert_eq!(r.route, Route::OpenaiEmbeddings);
    assert_eq!(r.body, body);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("authorization"), Some("Bearer sk-abc"));
    assert!(r.headers.iter().any(|(k, v)| k == "x-custom" && v == "Yes"));
    assert!(r.headers.iter().all(|(k, _)| *k == k.to_lowercase()));
    // What the dialect read from it: OpenAI has no input or output type.
    assert_eq!(r.dialect, Some("openai"));
    assert_eq!((r.model.as_deref(), r.inputs), (Some(SMALL), Some(2)));
    assert_eq!((r.input_type, r.output_type), (None, None));
    assert_eq!(log[1].body, Value::Null);
    assert_eq!(log[1].status, 400);
    assert_eq!(log[1].route, Route::OllamaShow);
    assert_eq!(log[2].method, "GET");
    assert_eq!(log[2].path, "/api/version");

    s.reset_log();
    assert!(s.requests().is_empty());
    get(&format!("{}/api/version", s.base_url())).await;
    assert_eq!(s.requests().len(), 1);
}

#[tokio::test]
async fn the_log_keeps_the_latest_requests() {
    let config = FakeServerConfig {
        request_log_limit: Some(2),
        ..Default::default()
    };
    let s = start(config).await;
    for i in 0..4 {
        get(&format!("{}/api/version?i={i}", s.base_url())).await;
    }
    let paths: Vec<_> = s.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/api/version?i=2", "/api/version?i=3"]);

    let off = start(FakeServerConfig {
        request_log_limit: Some(0),
        ..Default::default()
    })
    .await;
    get(&format!("{}/api/version", off.base_url())).await;
    assert!(off.requests().is_empty());
    assert_eq!(off.stats().requests, 1);
}

#[tokio::test]
async fn counters_by_route_and_status_inputs_and_tokens() {
    let s = server().await;
    let texts = ["hello world", "déjà vu"];
    openai(&s, json!({"model": SMALL, "input": texts})).await;
    openai(&s, json!({"model": "nope", "input": "x"})).await;
    ollama(
        &s,
        "/api/embed",
        json!({"model": "all-minilm", "input": ["x", "y", "z"]}),
    )
    .await;
    get(&format!("{}/api/tags", s.base_url())).await;
    s.set_faults(vec![
        Fault::new(FaultAction::Status(StatusFault::new(503))).on(Route::OllamaTags),
    ]);
    get(&format!("{}/api/tags", s.base_url())).await;

    let st = s.stats();
    assert_eq!(st.requests, 5);
    assert_eq!(st.count(Route::OpenaiEmbeddings, 200), 1);
    assert_eq!(st.count(Route::OpenaiEmbeddings, 404), 1);
    assert_eq!(st.route(Route::OpenaiEmbeddings), 2);
    assert_eq!(st.count(Route::OllamaEmbed, 200), 1);
    assert_eq!(st.count(Route::OllamaTags, 200), 1);
    assert_eq!(st.count(Route::OllamaTags, 503), 1);
    assert_eq!(st.by_status[&200], 3);
    assert_eq!(st.inputs, 5);
    let tokens: usize = texts.iter().map(|t| count_tokens(t)).sum::<usize>() + 3;
    assert_eq!(st.tokens, tokens as u64);
    assert_eq!(st.faults, 1);
    s.reset_stats();
    assert_eq!(s.stats(), Default::default());
}
