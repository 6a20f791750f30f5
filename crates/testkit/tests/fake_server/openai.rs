//! `POST /v1/embeddings` and `/v1/models`: shapes, vectors, every validation rule.

use embeddings_testkit::{FakeServerConfig, count_tokens};
use serde_json::{Value, json};

use crate::common::*;

/// Checks an OpenAI embedding answer field by field and every row's vector.
fn assert_embeddings(a: &Answer, model: &str, texts: &[&str], dim: usize, base64: bool) {
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.header("content-type"), Some("application/json"));
    let body = a.body.as_object().unwrap();
    let mut keys: Vec<_> = body.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["data", "model", "object", "usage"]);
    assert_eq!(a.body["object"], "list");
    assert_eq!(a.body["model"], model);
    let tokens: usize = texts.iter().map(|t| count_tokens(t)).sum();
    assert_eq!(
        a.body["usage"],
        json!({"prompt_tokens": tokens, "total_tokens": tokens})
    );
    let data = a.body["data"].as_array().unwrap();
    assert_eq!(data.len(), texts.len());
    for (i, item) in data.iter().enumerate() {
        let obj = item.as_object().unwrap();
        assert_eq!(obj.len(), 3, "{item}");
        assert_eq!(item["object"], "embedding");
        assert_eq!(item["index"], i);
        let v = if base64 {
            base64_floats(&item["embedding"])
        } else {
            floats(&item["embedding"])
        };
        assert_vector(model, texts[i], dim, &v);
    }
    for h in ["requests", "tokens"] {
        for k in ["limit", "remaining", "reset"] {
            assert!(
                a.header(&format!("x-ratelimit-{k}-{h}")).is_some(),
                "x-ratelimit-{k}-{h}"
            );
        }
    }
}

#[tokio::test]
async fn float_batch_has_the_official_shape_and_the_design_vectors() {
    let s = server().await;
    let texts = [
        "hello",
        "déjà vu 🌍",
        "a longer sentence with \"quotes\" and \\ escapes\n",
    ];
    let a = openai(
        &s,
        json!({"model": SMALL, "input": texts, "encoding_format": "float", "user": "u1"}),
    )
    .await;
    assert_embeddings(&a, SMALL, &texts, 1536, false);
    // The reference value of DESIGN.md §4.
    let a = openai(
        &s,
        json!({"model": SMALL, "input": "déjà vu 🌍", "dimensions": 4}),
    )
    .await;
    let v = floats(&a.body["data"][0]["embedding"]);
    for (g, w) in v.iter().zip([-0.109552f32, -0.580843, 0.172196, 0.788015]) {
        assert!((g - w).abs() < 1e-5);
    }
}

#[tokio::test]
async fn a_single_string_and_the_path_without_v1() {
    let s = server().await;
    let a = post(
        &format!("{}/embeddings", s.base_url()),
        json!({"model": "text-embedding-ada-002", "input": "just one"}),
    )
    .await;
    assert_embeddings(&a, "text-embedding-ada-002", &["just one"], 1536, false);
}

#[tokio::test]
async fn base64_is_little_endian_f32_and_dimensions_truncate() {
    let s = server().await;
    let texts = ["one", "two", "three"];
    let a = openai(
        &s,
        json!({"model": "text-embedding-3-large", "input": texts, "encoding_format": "base64"}),
    )
    .await;
    assert_embeddings(&a, "text-embedding-3-large", &texts, 3072, true);
    let a = openai(
        &s,
        json!({"model": "text-embedding-3-large", "input": texts, "encoding_format": "base64", "dimensions": 256}),
    )
    .await;
    assert_embeddings(&a, "text-embedding-3-large", &texts, 256, true);
    let a = openai(
        &s,
        json!({"model": SMALL, "input": texts, "dimensions": 1536}),
    )
    .await;
    assert_embeddings(&a, SMALL, &texts, 1536, false);
    let a = openai(
        &s,
        json!({"model": SMALL, "input": texts, "dimensions": 1, "encoding_format": null}),
    )
    .await;
    assert_embeddings(&a, SMALL, &texts, 1, false);
}

#[tokio::test]
async fn token_arrays_are_decoded_with_cl100k() {
    let s = server().await;
    // "hello world" is [15339, 1917] in cl100k_base.
    let a = openai(
        &s,
        json!({"model": SMALL, "input": [15339, 1917], "dimensions": 8}),
    )
    .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_vector(
        SMALL,
        "hello world",
        8,
        &floats(&a.body["data"][0]["embedding"]),
    );
    assert_eq!(a.body["usage"]["prompt_tokens"], 2);
    let a = openai(
        &s,
        json!({"model": SMALL, "input": [[15339], [1917]], "dimensions": 8}),
    )
    .await;
    assert_eq!(a.body["data"].as_array().unwrap().len(), 2);
    assert_vector(SMALL, "hello", 8, &floats(&a.body["data"][0]["embedding"]));
    assert_vector(SMALL, " world", 8, &floats(&a.body["data"][1]["embedding"]));
}

#[tokio::test]
async fn configured_models_are_served_beside_the_defaults() {
    let mut config = FakeServerConfig::default();
    config.openai_models.insert("tiny".into(), 16);
    let s = start(config).await;
    let a = openai(&s, json!({"model": "tiny", "input": ["x", "y"]})).await;
    assert_embeddings(&a, "tiny", &["x", "y"], 16, false);
    let a = openai(&s, json!({"model": SMALL, "input": "x"})).await;
    assert_eq!(a.status, 200);
}

#[tokio::test]
async fn every_validation_rule_is_a_400_in_openai_shape() {
    let s = server().await;
    let long = "word ".repeat(8200);
    let cases: Vec<(Value, Option<&str>, Option<&str>)> = vec![
        (json!({"model": SMALL, "input": "x", "foo": 1}), None, None),
        (json!({"model": SMALL, "input": ""}), Some("input"), None),
        (
            json!({"model": SMALL, "input": ["a", ""]}),
            Some("input"),
            None,
        ),
        (json!({"model": SMALL, "input": []}), Some("input"), None),
        (
            json!({"model": SMALL, "input": vec!["a"; 2049]}),
            Some("input"),
            None,
        ),
        (
            json!({"model": SMALL, "input": [long.as_str()]}),
            Some("input"),
            Some("context_length_exceeded"),
        ),
        (
            json!({"model": SMALL, "input": vec!["word ".repeat(150); 2048]}),
            Some("input"),
            Some("max_tokens_per_request"),
        ),
        (
            json!({"model": "text-embedding-ada-002", "input": "x", "dimensions": 8}),
            Some("dimensions"),
            None,
        ),
        (
            json!({"model": SMALL, "input": "x", "dimensions": 1537}),
            Some("dimensions"),
            None,
        ),
        (
            json!({"model": SMALL, "input": "x", "dimensions": 0}),
            Some("dimensions"),
            None,
        ),
        (
            json!({"model": SMALL, "input": "x", "encoding_format": "int8"}),
            Some("encoding_format"),
            None,
        ),
        (json!({"input": "x"}), None, None),
        (json!({"model": SMALL}), Some("input"), None),
        (
            json!({"model": SMALL, "input": ["a", 1]}),
            Some("input"),
            None,
        ),
        (json!({"model": SMALL, "input": 42}), None, None),
        (
            json!({"model": SMALL, "input": "x", "dimensions": "8"}),
            None,
            None,
        ),
    ];
    for (body, param, code) in cases {
        let a = openai(&s, body.clone()).await;
        let what = body.to_string();
        let what = &what[..what.len().min(120)];
        assert_eq!(a.status, 400, "{what}: {:?}", a.body);
        assert_openai_error(&a, 400, "invalid_request_error", param, code);
    }
    // The unknown key is named.
    let a = openai(&s, json!({"model": SMALL, "input": "x", "foo": 1})).await;
    assert_eq!(
        a.body["error"]["message"],
        "Unrecognized request argument supplied: foo"
    );
    // 2048 inputs are fine.
    let a = openai(
        &s,
        json!({"model": SMALL, "input": vec!["a"; 2048], "dimensions": 2}),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["data"].as_array().unwrap().len(), 2048);
}

#[tokio::test]
async fn malformed_json_and_non_json_bodies_are_400s() {
    let s = server().await;
    let url = format!("{}/embeddings", s.openai_base_url());
    for body in ["{\"model\": ", "not json", ""] {
        let a = send(client().post(&url).body(body)).await;
        assert_openai_error(&a, 400, "invalid_request_error", None, None);
    }
}

#[tokio::test]
async fn an_unknown_model_is_a_404_model_not_found() {
    let s = server().await;
    let a = openai(&s, json!({"model": "gpt-nope", "input": "x"})).await;
    assert_openai_error(
        &a,
        404,
        "invalid_request_error",
        None,
        Some("model_not_found"),
    );
    assert!(
        a.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("gpt-nope")
    );
}

#[tokio::test]
async fn a_configured_key_is_required() {
    let config = FakeServerConfig {
        api_key: Some("sk-test".into()),
        ..Default::default()
    };
    let s = start(config).await;
    let url = format!("{}/embeddings", s.openai_base_url());
    let body = json!({"model": SMALL, "input": "x"});
    let a = send(client().post(&url).json(&body)).await;
    assert_openai_error(&a, 401, "invalid_request_error", None, None);
    let a = send(client().post(&url).bearer_auth("sk-wrong").json(&body)).await;
    assert_openai_error(
        &a,
        401,
        "invalid_request_error",
        None,
        Some("invalid_api_key"),
    );
    assert!(
        !a.body.to_string().contains("sk-wrong"),
        "the key is not echoed"
    );
    let a = send(client().post(&url).bearer_auth("sk-test").json(&body)).await;
    assert_eq!(a.status, 200);
    let a = send(client().get(format!("{}/models", s.openai_base_url()))).await;
    assert_eq!(a.status, 401);
    // Ollama routes take no key.
    let a = get(&format!("{}/api/version", s.base_url())).await;
    assert_eq!(a.status, 200);
}

#[tokio::test]
async fn models_list_and_lookup() {
    let s = server().await;
    let a = get(&format!("{}/models", s.openai_base_url())).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["object"], "list");
    let ids: Vec<&str> = a.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "text-embedding-3-large",
            "text-embedding-3-small",
            "text-embedding-ada-002"
        ]
    );
    let a = get(&format!("{}/models/{SMALL}", s.openai_base_url())).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["id"], SMALL);
    assert_eq!(a.body["object"], "model");
    assert_eq!(a.body["owned_by"], "system");
    assert!(a.body["created"].is_u64());
    let a = get(&format!("{}/models/nope", s.openai_base_url())).await;
    assert_openai_error(
        &a,
        404,
        "invalid_request_error",
        Some("model"),
        Some("model_not_found"),
    );
}

#[tokio::test]
async fn wrong_method_and_unknown_paths() {
    let s = server().await;
    let a = get(&format!("{}/embeddings", s.openai_base_url())).await;
    assert_openai_error(&a, 405, "invalid_request_error", None, None);
    let a = post(&format!("{}/v1/nothing", s.base_url()), json!({})).await;
    assert_openai_error(&a, 404, "invalid_request_error", None, None);
    let a = get(&format!("{}/nothing", s.base_url())).await;
    assert_eq!(a.status, 404);
    assert_eq!(a.body, "404 page not found");
}
