//! Ollama's routes: shapes, vectors, validation.

use embeddings_testkit::{FakeServerConfig, OllamaModel, count_tokens};
use serde_json::json;

use crate::common::*;

fn assert_embed(a: &Answer, model: &str, vector_model: &str, texts: &[&str], dim: usize) {
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(
        a.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    let body = a.body.as_object().unwrap();
    let mut keys: Vec<_> = body.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "embeddings",
            "load_duration",
            "model",
            "prompt_eval_count",
            "total_duration"
        ]
    );
    assert_eq!(a.body["model"], model);
    assert!(a.body["total_duration"].as_u64().unwrap() > 0);
    assert!(a.body["load_duration"].is_u64());
    let tokens: usize = texts.iter().map(|t| count_tokens(t)).sum();
    assert_eq!(a.body["prompt_eval_count"], tokens);
    let rows = a.body["embeddings"].as_array().unwrap();
    assert_eq!(rows.len(), texts.len());
    for (row, text) in rows.iter().zip(texts) {
        assert_vector(vector_model, text, dim, &floats(row));
    }
}

#[tokio::test]
async fn embed_a_batch_and_a_single_string() {
    let s = server().await;
    let texts = ["hello", "déjà vu 🌍", "third"];
    let a = ollama(
        &s,
        "/api/embed",
        json!({"model": "all-minilm", "input": texts}),
    )
    .await;
    assert_embed(&a, "all-minilm", "all-minilm", &texts, 384);
    let a = ollama(
        &s,
        "/api/embed",
        json!({"model": "nomic-embed-text", "input": "solo", "truncate": true, "options": {"num_ctx": 8}, "keep_alive": "5m"}),
    )
    .await;
    assert_embed(&a, "nomic-embed-text", "nomic-embed-text", &["solo"], 768);
    let a = ollama(
        &s,
        "/api/embed",
        json!({"model": "mxbai-embed-large", "input": ["x"], "dimensions": 16}),
    )
    .await;
    assert_embed(&a, "mxbai-embed-large", "mxbai-embed-large", &["x"], 16);
}

#[tokio::test]
async fn name_and_name_latest_are_the_same_model() {
    let s = server().await;
    let a = ollama(
        &s,
        "/api/embed",
        json!({"model": "all-minilm:latest", "input": ["x", "y"]}),
    )
    .await;
    // The answer names the model as asked; the vectors are the model's own.
    assert_embed(&a, "all-minilm:latest", "all-minilm", &["x", "y"], 384);
}

#[tokio::test]
async fn empty_or_missing_input_gives_no_rows() {
    let s = server().await;
    for body in [
        json!({"model": "all-minilm", "input": []}),
        json!({"model": "all-minilm"}),
    ] {
        let a = ollama(&s, "/api/embed", body).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.body["embeddings"], json!([]));
        assert_eq!(a.body["prompt_eval_count"], 0);
    }
}

#[tokio::test]
async fn errors_are_ollama_shaped() {
    let s = server().await;
    let a = ollama(&s, "/api/embed", json!({"model": "nope", "input": "x"})).await;
    assert_ollama_error(&a, 404, "model \"nope\" not found, try pulling it first");
    let a = ollama(
        &s,
        "/api/embeddings",
        json!({"model": "nope:latest", "prompt": "x"}),
    )
    .await;
    assert_ollama_error(
        &a,
        404,
        "model \"nope:latest\" not found, try pulling it first",
    );
    let a = ollama(&s, "/api/embed", json!({"input": "x"})).await;
    assert_ollama_error(&a, 400, "model is required");
    let a = ollama(&s, "/api/embed", json!({"model": "all-minilm", "input": 3})).await;
    assert_eq!(a.status, 400);
    assert!(a.body["error"].is_string());
    let a = ollama(
        &s,
        "/api/embed",
        json!({"model": "all-minilm", "input": [[1, 2]]}),
    )
    .await;
    assert_ollama_error(&a, 400, "invalid input type");
    let a = ollama(
        &s,
        "/api/embed",
        json!({"model": "all-minilm", "input": "x", "dimensions": 385}),
    )
    .await;
    assert_eq!(a.status, 400);
    let a = send(
        client()
            .post(format!("{}/api/embed", s.base_url()))
            .body("{nope"),
    )
    .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body.as_object().unwrap().len(), 1);
    assert!(a.body["error"].is_string());
    let a = get(&format!("{}/api/embed", s.base_url())).await;
    assert_eq!(a.status, 405);
}

#[tokio::test]
async fn over_long_input_is_truncated_unless_truncate_is_false() {
    let s = server().await;
    let long = "word ".repeat(600); // > 512 tokens, all-minilm's context
    assert!(count_tokens(&long) > 512);
    let a = ollama(
        &s,
        "/api/embed",
        json!({"model": "all-minilm", "input": [long.as_str()]}),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["prompt_eval_count"], 512);
    assert_vector("all-minilm", &long, 384, &floats(&a.body["embeddings"][0]));
    let a = ollama(
        &s,
        "/api/embed",
        json!({"model": "all-minilm", "input": [long.as_str()], "truncate": false}),
    )
    .await;
    assert_ollama_error(&a, 400, "the input length exceeds the context length");
    let a = ollama(
        &s,
        "/api/embed",
        json!({"model": "all-minilm", "input": ["short"], "truncate": false}),
    )
    .await;
    assert_eq!(a.status, 200);
}

#[tokio::test]
async fn legacy_embeddings_route() {
    let s = server().await;
    let a = ollama(
        &s,
        "/api/embeddings",
        json!({"model": "nomic-embed-text", "prompt": "hello", "options": {}}),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body.as_object().unwrap().len(), 1);
    assert_vector(
        "nomic-embed-text",
        "hello",
        768,
        &floats(&a.body["embedding"]),
    );
    let a = ollama(
        &s,
        "/api/embeddings",
        json!({"model": "nomic-embed-text:latest", "prompt": ""}),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["embedding"], json!([]));
}

#[tokio::test]
async fn tags_show_version_and_root() {
    let mut config = FakeServerConfig::default();
    config.ollama_models.insert(
        "custom:latest".into(),
        OllamaModel {
            dimension: 32,
            context_length: 128,
            family: "nomic-bert".into(),
        },
    );
    let s = start(config).await;
    let a = get(&format!("{}/api/tags", s.base_url())).await;
    assert_eq!(a.status, 200);
    let models = a.body["models"].as_array().unwrap();
    let names: Vec<&str> = models.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "all-minilm:latest",
            "custom:latest",
            "mxbai-embed-large:latest",
            "nomic-embed-text:latest"
        ]
    );
    for m in models {
        assert_eq!(m["model"], m["name"]);
        assert!(m["size"].as_u64().unwrap() > 0);
        assert_eq!(m["digest"].as_str().unwrap().len(), 64);
        assert!(m["modified_at"].is_string());
        assert_eq!(m["details"]["format"], "gguf");
        assert!(m["details"]["family"].is_string());
    }

    for (name, family, dim, ctx) in [
        ("all-minilm", "bert", 384, 512),
        ("nomic-embed-text:latest", "nomic-bert", 768, 2048),
        ("mxbai-embed-large", "bert", 1024, 512),
        ("custom", "nomic-bert", 32, 128),
    ] {
        let a = ollama(&s, "/api/show", json!({"model": name})).await;
        assert_eq!(a.status, 200, "{name}");
        let info = &a.body["model_info"];
        assert_eq!(info["general.architecture"], family);
        assert_eq!(info[format!("{family}.embedding_length")], dim);
        assert_eq!(info[format!("{family}.context_length")], ctx);
        assert_eq!(a.body["details"]["family"], family);
        assert_eq!(a.body["capabilities"], json!(["embedding"]));
    }
    // The legacy `name` key.
    let a = ollama(&s, "/api/show", json!({"name": "custom"})).await;
    assert_eq!(a.status, 200);
    let a = ollama(&s, "/api/show", json!({"model": "nope"})).await;
    assert_ollama_error(&a, 404, "model 'nope' not found");

    let a = ollama(&s, "/api/embed", json!({"model": "custom", "input": "x"})).await;
    assert_embed(&a, "custom", "custom", &["x"], 32);

    let a = get(&format!("{}/api/version", s.base_url())).await;
    assert_eq!(a.status, 200);
    assert!(a.body["version"].is_string());
    let a = get(&format!("{}/", s.base_url())).await;
    assert_eq!(a.body, "Ollama is running");
}
