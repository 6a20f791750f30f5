//! Issue 15's Jina and Mistral providers end to end: the `embed` binary
//! against their fake servers (their dialects), key and endpoint from the
//! environment or flags, input and output types from the command line,
//! every row checked, the providers' batch limits honoured.

use std::process::{Command, Output};

use embeddings::{Embeddings, OutputType};
use embeddings_jina::testkit::{JINA_EMBEDDINGS, JinaDialect};
use embeddings_mistral::testkit::{MISTRAL_EMBEDDINGS, MistralDialect};
use embeddings_testkit::FakeServer;

const KEY: &str = "cli-provider-15-key-0123456789";

async fn embed(args: Vec<String>, env: Vec<(&'static str, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_embed"));
        cmd.args(&args);
        for k in [
            "EMBEDDINGS_PROVIDER",
            "EMBEDDINGS_MODEL",
            "EMBEDDINGS_DIMENSIONS",
            "EMBEDDINGS_CONFIG",
            "JINA_API_KEY",
            "JINA_BASE_URL",
            "MISTRAL_API_KEY",
            "MISTRAL_BASE_URL",
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

fn docs(dir: &std::path::Path, n: usize) -> (String, Vec<String>) {
    let texts: Vec<String> = (0..n)
        .map(|i| format!("document {i}: déjà vu 🌍"))
        .collect();
    let p = dir.join("docs.txt");
    std::fs::write(&p, texts.join("\n") + "\n").unwrap();
    (p.to_str().unwrap().to_owned(), texts)
}

/// The JSONL rows of stdout, each `embedding` as the bytes of its type.
fn rows(o: &Output, n: usize) -> Vec<Vec<f64>> {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!String::from_utf8_lossy(&o.stderr).contains(KEY));
    let text = String::from_utf8(o.stdout.clone()).unwrap();
    let rows: Vec<Vec<f64>> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["index"], i);
            v["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), n);
    rows
}

fn check_floats(o: &Output, model: &str, texts: &[String], dim: usize) {
    for (i, (got, t)) in rows(o, texts.len()).iter().zip(texts).enumerate() {
        let want = embeddings_mock::vector(model, t, dim);
        assert_eq!(got.len(), dim, "row {i}");
        assert!(
            got.iter()
                .zip(&want)
                .all(|(a, b)| (*a as f32 - b).abs() < 1e-5),
            "row {i}"
        );
    }
}

fn check_quantized(o: &Output, model: &str, texts: &[String], dim: usize, t: OutputType) {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let want = Embeddings::from_rows(
        dim,
        refs.iter().map(|x| embeddings_mock::vector(model, x, dim)),
    )
    .unwrap()
    .quantized(t)
    .unwrap();
    for (i, got) in rows(o, texts.len()).iter().enumerate() {
        let want: Vec<f64> = match t {
            OutputType::Int8 | OutputType::Binary => want
                .row_bytes(i)
                .iter()
                .map(|b| f64::from(*b as i8))
                .collect(),
            _ => want.row_bytes(i).iter().map(|b| f64::from(*b)).collect(),
        };
        assert_eq!(got, &want, "{t} row {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jina_end_to_end_with_a_query_task_and_binary_rows() {
    let server = FakeServer::builder()
        .dialect(JinaDialect::default().api_key(KEY))
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (input, texts) = docs(dir.path(), 9);
    let base = |extra: &[&str]| {
        let mut a: Vec<String> = [
            "-p",
            "jina",
            "-d",
            "128",
            "--base-url",
            &format!("{}/v1", server.base_url()),
            "-i",
            &input,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let o = embed(
        base(&["--input-type", "query"]),
        vec![("JINA_API_KEY", KEY.into())],
    )
    .await;
    check_floats(&o, "jina-embeddings-v3", &texts, 128);
    let reqs: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.route == JINA_EMBEDDINGS)
        .collect();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].body["task"], "retrieval.query");
    assert_eq!(reqs[0].body["embedding_type"], "base64");
    assert_eq!(reqs[0].body["dimensions"], 128);
    server.reset_log();
    let o = embed(
        base(&["--output-type", "binary"]),
        vec![("JINA_API_KEY", KEY.into())],
    )
    .await;
    check_quantized(&o, "jina-embeddings-v3", &texts, 128, OutputType::Binary);
    let r = &server.requests()[0];
    assert_eq!(
        (&r.body["embedding_type"], &r.body["task"]),
        (
            &serde_json::json!("binary"),
            &serde_json::json!("retrieval.passage")
        )
    );
    // int8 is not Jina's: a clear error naming provider and type, no request.
    server.reset_log();
    let o = embed(
        base(&["--output-type", "int8"]),
        vec![("JINA_API_KEY", KEY.into())],
    )
    .await;
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("jina") && err.contains("int8"), "{err}");
    assert!(server.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistral_end_to_end_within_512_inputs_per_request_and_int8_rows() {
    let server = FakeServer::builder()
        .dialect(MistralDialect::default().api_key(KEY))
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (input, texts) = docs(dir.path(), 700);
    let env = || {
        vec![
            ("MISTRAL_API_KEY", KEY.to_owned()),
            ("MISTRAL_BASE_URL", format!("{}/v1", server.base_url())),
        ]
    };
    let o = embed(
        vec!["-p".into(), "mistral".into(), "-i".into(), input.clone()],
        env(),
    )
    .await;
    check_floats(&o, "mistral-embed", &texts, 1024);
    let sizes: Vec<usize> = server
        .requests()
        .iter()
        .filter(|r| r.route == MISTRAL_EMBEDDINGS)
        .map(|r| {
            assert_eq!(r.status, 200);
            r.inputs.unwrap()
        })
        .collect();
    assert!(sizes.iter().all(|&n| n <= 512), "{sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 700);
    server.reset_log();
    let few = &texts[..5];
    let mut args: Vec<String> = [
        "-p",
        "mistral",
        "-m",
        "codestral-embed",
        "-d",
        "64",
        "--output-type",
        "int8",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(few.iter().cloned());
    let o = embed(args, env()).await;
    check_quantized(&o, "codestral-embed", few, 64, OutputType::Int8);
    let r = &server.requests()[0];
    assert_eq!(
        (&r.body["output_dtype"], &r.body["output_dimension"]),
        (&serde_json::json!("int8"), &serde_json::json!(64))
    );
    // A wrong key: an authentication error that does not show it.
    let o = embed(
        vec!["-p".into(), "mistral".into(), "x".into()],
        vec![
            ("MISTRAL_API_KEY", "mistral-wrong-key-0123456789".into()),
            ("MISTRAL_BASE_URL", format!("{}/v1", server.base_url())),
        ],
    )
    .await;
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("mistral-wrong-key-0123456789"), "{err}");
    assert!(
        err.to_lowercase().contains("auth") || err.contains("401"),
        "{err}"
    );
}
