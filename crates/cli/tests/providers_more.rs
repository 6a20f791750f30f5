//! The `embed` binary against the Cohere and Voyage fake servers (their
//! dialects): the providers end to end, key from the environment, input
//! type from the command line, every row checked.

use std::process::{Command, Output};

use embeddings_cohere::testkit::{COHERE_EMBED, CohereDialect};
use embeddings_testkit::FakeServer;
use embeddings_voyage::testkit::{VOYAGE_EMBEDDINGS, VoyageDialect};

const KEY: &str = "cli-provider-key-0123456789";

async fn embed(args: Vec<String>, env: Vec<(&'static str, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_embed"));
        cmd.args(&args);
        for k in [
            "EMBEDDINGS_PROVIDER",
            "EMBEDDINGS_MODEL",
            "EMBEDDINGS_DIMENSIONS",
            "COHERE_API_KEY",
            "CO_API_KEY",
            "COHERE_BASE_URL",
            "CO_API_URL",
            "VOYAGE_API_KEY",
            "VOYAGE_BASE_URL",
        ] {
            cmd.env_remove(k);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    })
    .await
    .unwrap()
}

fn docs(dir: &std::path::Path) -> (String, Vec<String>) {
    let texts: Vec<String> = (0..7)
        .map(|i| format!("document {i}: déjà vu 🌍"))
        .collect();
    let p = dir.join("docs.txt");
    std::fs::write(&p, texts.join("\n") + "\n").unwrap();
    (p.to_str().unwrap().to_owned(), texts)
}

fn check_rows(o: &Output, model: &str, texts: &[String], dim: usize) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout.clone()).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), texts.len());
    for (i, t) in texts.iter().enumerate() {
        let got: Vec<f32> = rows[i]["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        let want = embeddings_mock::vector(model, t, dim);
        assert_eq!(got.len(), dim);
        assert!(
            got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-5),
            "row {i}"
        );
    }
    assert!(!String::from_utf8_lossy(&o.stderr).contains(KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cohere_end_to_end() {
    let server = FakeServer::builder()
        .dialect(CohereDialect::default().api_key(KEY))
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (input, texts) = docs(dir.path());
    let o = embed(
        vec![
            "-p".into(),
            "cohere".into(),
            "--base-url".into(),
            server.base_url(),
            "-m".into(),
            "embed-english-light-v3.0".into(),
            "-i".into(),
            input,
        ],
        vec![("COHERE_API_KEY", KEY.into())],
    )
    .await;
    check_rows(&o, "embed-english-light-v3.0", &texts, 384);
    let reqs: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.route == COHERE_EMBED)
        .collect();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].body["input_type"], "search_document");
    assert_eq!(reqs[0].body["embedding_types"][0], "float");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voyage_end_to_end() {
    let server = FakeServer::builder()
        .dialect(VoyageDialect::default().api_key(KEY))
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (input, texts) = docs(dir.path());
    let o = embed(
        vec![
            "-p".into(),
            "voyage".into(),
            "-m".into(),
            "voyage-3.5".into(),
            "-i".into(),
            input,
        ],
        vec![
            ("VOYAGE_API_KEY", KEY.into()),
            ("VOYAGE_BASE_URL", format!("{}/v1", server.base_url())),
        ],
    )
    .await;
    check_rows(&o, "voyage-3.5", &texts, 1024);
    let reqs: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.route == VOYAGE_EMBEDDINGS)
        .collect();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].body["input_type"], "document");
    assert_eq!(reqs[0].body["encoding_format"], "base64");
}
