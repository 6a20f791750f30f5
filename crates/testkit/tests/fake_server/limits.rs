//! Requests- and tokens-per-minute limits that really reject, with their headers.

use std::time::Duration;

use embeddings_testkit::{FakeServerConfig, Route, count_tokens};
use serde_json::json;

use crate::common::*;

#[tokio::test(start_paused = true)]
async fn requests_per_minute() {
    let config = FakeServerConfig {
        requests_per_minute: Some(3),
        ..Default::default()
    };
    let s = start(config).await;
    let body = json!({"model": SMALL, "input": "hello", "dimensions": 2});
    for left in [2, 1, 0] {
        let a = openai(&s, body.clone()).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.header("x-ratelimit-limit-requests"), Some("3"));
        assert_eq!(
            a.header("x-ratelimit-remaining-requests"),
            Some(left.to_string().as_str())
        );
        assert_eq!(a.header("x-ratelimit-limit-tokens"), Some("4294967295"));
    }
    let a = openai(&s, body.clone()).await;
    assert_openai_error(&a, 429, "requests", None, Some("rate_limit_exceeded"));
    assert_eq!(a.header("x-ratelimit-remaining-requests"), Some("0"));
    // One request comes back every 20 s.
    assert_eq!(a.header("retry-after"), Some("20"));
    assert_eq!(a.header("retry-after-ms"), Some("20000"));
    assert_eq!(a.header("x-ratelimit-reset-requests"), Some("1m0s"));
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("requests per min")
    );
    // An Ollama request shares the budget.
    let o = ollama(
        &s,
        "/api/embed",
        json!({"model": "all-minilm", "input": "x"}),
    )
    .await;
    assert_ollama_error(&o, 429, "rate limit exceeded");
    assert_eq!(o.header("retry-after"), Some("20"));

    tokio::time::advance(Duration::from_secs(20)).await;
    let a = openai(&s, body.clone()).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("x-ratelimit-remaining-requests"), Some("0"));
    assert_eq!(s.stats().rate_limited, 2);
    assert_eq!(s.stats().count(Route::OpenaiEmbeddings, 429), 1);
}

#[tokio::test(start_paused = true)]
async fn tokens_per_minute() {
    let config = FakeServerConfig {
        tokens_per_minute: Some(60),
        ..Default::default()
    };
    let s = start(config).await;
    let text = "one two three four five six seven eight nine ten"; // 10 tokens
    assert_eq!(count_tokens(text), 10);
    let body = json!({"model": SMALL, "input": [text, text, text, text, text], "dimensions": 2});
    let a = openai(&s, body.clone()).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("x-ratelimit-limit-tokens"), Some("60"));
    assert_eq!(a.header("x-ratelimit-remaining-tokens"), Some("10"));
    assert_eq!(a.header("x-ratelimit-reset-tokens"), Some("50s"));
    let a = openai(&s, body.clone()).await;
    assert_openai_error(&a, 429, "tokens", None, Some("rate_limit_exceeded"));
    // 40 more tokens at one a second.
    assert_eq!(a.header("retry-after-ms"), Some("40000"));
    assert_eq!(a.header("retry-after"), Some("40"));
    tokio::time::advance(Duration::from_secs(40)).await;
    assert_eq!(openai(&s, body.clone()).await.status, 200);

    // A request larger than the whole budget can never pass: no retry-after.
    let big = json!({"model": SMALL, "input": vec![text; 7], "dimensions": 2});
    tokio::time::advance(Duration::from_secs(60)).await;
    let a = openai(&s, big).await;
    assert_openai_error(&a, 429, "tokens", None, Some("rate_limit_exceeded"));
    assert!(a.header("retry-after").is_none());
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Request too large")
    );
}

#[tokio::test(start_paused = true)]
async fn set_rate_limits_at_run_time() {
    let s = server().await;
    let body = json!({"model": SMALL, "input": "x", "dimensions": 2});
    assert_eq!(openai(&s, body.clone()).await.status, 200);
    s.set_rate_limits(Some(1), None);
    assert_eq!(openai(&s, body.clone()).await.status, 200);
    assert_eq!(openai(&s, body.clone()).await.status, 429);
    s.set_rate_limits(None, None);
    assert_eq!(openai(&s, body).await.status, 200);
}
