//! The `embed` binary against the fake OpenAI/Ollama server: the real
//! providers end to end, configured the ways users configure them
//! (flags and environment variables).

use std::process::{Command, Output};

use embeddings_mock::vector;
use embeddings_testkit::{FakeServer, FakeServerConfig, Route};

async fn embed(args: Vec<String>, env: Vec<(&'static str, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_embed"));
        cmd.args(&args);
        for k in [
            "EMBEDDINGS_PROVIDER",
            "EMBEDDINGS_MODEL",
            "EMBEDDINGS_DIMENSIONS",
            "OPENAI_API_KEY",
            "OPENAI_BASE_URL",
            "OLLAMA_HOST",
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
        assert_eq!(rows[i]["index"], i);
        let got: Vec<f32> = rows[i]["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        let want = vector(model, t, dim);
        assert_eq!(got.len(), dim);
        assert!(
            got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-5),
            "row {i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_with_base_url_flag_and_key_from_the_environment() {
    let key = "sk-cli-test-0123456789";
    let server = FakeServer::start(FakeServerConfig {
        api_key: Some(key.into()),
        ..FakeServerConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (input, texts) = docs(dir.path());
    let o = embed(
        vec![
            "--provider".into(),
            "openai".into(),
            "--base-url".into(),
            server.openai_base_url(),
            "-i".into(),
            input,
        ],
        vec![("OPENAI_API_KEY", key.into())],
    )
    .await;
    check_rows(&o, "text-embedding-3-small", &texts, 1536);
    assert!(!String::from_utf8_lossy(&o.stderr).contains(key));
    // One request for the whole file, base64, with the key.
    let reqs: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.route == Route::OpenaiEmbeddings)
        .collect();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].body["input"].as_array().unwrap().len(), texts.len());
    assert_eq!(reqs[0].body["encoding_format"], "base64");
    assert_eq!(
        reqs[0].header("authorization"),
        Some(format!("Bearer {key}").as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_base_url_from_the_environment_and_a_wrong_key() {
    let server = FakeServer::start(FakeServerConfig {
        api_key: Some("sk-right".into()),
        ..FakeServerConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (input, texts) = docs(dir.path());
    let env = |k: &str| {
        vec![
            ("OPENAI_BASE_URL", server.openai_base_url()),
            ("OPENAI_API_KEY", k.to_owned()),
        ]
    };
    let args = vec![
        "-p".into(),
        "openai".into(),
        "-d".into(),
        "64".into(),
        "-i".into(),
        input,
    ];
    check_rows(
        &embed(args.clone(), env("sk-right")).await,
        "text-embedding-3-small",
        &texts,
        64,
    );
    let o = embed(args, env("sk-wrong-key-42")).await;
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("embed: authentication: "), "{err}");
    assert!(!err.contains("sk-wrong-key-42"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ollama_with_host_from_the_environment() {
    let server = FakeServer::start(FakeServerConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (input, texts) = docs(dir.path());
    let host = server.addr().to_string(); // Ollama's own `host:port` form
    let o = embed(
        vec![
            "--provider".into(),
            "ollama".into(),
            "--model".into(),
            "all-minilm".into(),
            "-i".into(),
            input,
        ],
        vec![("OLLAMA_HOST", host)],
    )
    .await;
    check_rows(&o, "all-minilm", &texts, 384);
    let embeds: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.route == Route::OllamaEmbed)
        .collect();
    assert_eq!(embeds.len(), 1, "one batched /api/embed for the whole file");
    assert_eq!(
        embeds[0].body["input"].as_array().unwrap().len(),
        texts.len()
    );
    // health: the server is up and the model is pulled.
    let o = embed(
        vec![
            "health".into(),
            "-p".into(),
            "ollama".into(),
            "-m".into(),
            "all-minilm".into(),
            "--base-url".into(),
            server.base_url(),
        ],
        vec![],
    )
    .await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = embed(
        vec![
            "health".into(),
            "-p".into(),
            "ollama".into(),
            "-m".into(),
            "not-pulled".into(),
            "--base-url".into(),
            server.base_url(),
        ],
        vec![],
    )
    .await;
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("embed: not_found: ") && err.contains("ollama pull not-pulled"),
        "{err}"
    );
}

/// `RUST_LOG=trace` and `--log-level trace` print the library's log lines on
/// stderr, and none of them holds the API key: not on success, not on a
/// retried 503, not on a refused key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logs_go_to_stderr_and_never_hold_the_key() {
    let key = "sk-trace-test-SECRET-0123456789abcdef";
    // A server per run: each run's first request is answered 503, then retried.
    let server = || async {
        FakeServer::start(
            FakeServerConfig::from_toml(&format!(
                "api_key = \"{key}\"\n[[faults]]\ntrigger = {{ first = 1 }}\naction = {{ status = 503 }}\n"
            ))
            .unwrap(),
        )
        .await
        .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let (input, texts) = docs(dir.path());
    let base = |server: &FakeServer| {
        vec![
            "-p".to_owned(),
            "openai".into(),
            "--base-url".into(),
            server.openai_base_url(),
            "-d".into(),
            "8".into(),
            "-i".into(),
            input.clone(),
        ]
    };
    let runs = [
        (vec![], vec![("RUST_LOG", "trace".to_owned())], key),
        (vec!["--log-level".to_owned(), "trace".into()], vec![], key),
        (
            vec!["--log-level".to_owned(), "trace".into()],
            vec![],
            "sk-wrong-SECRET-key-0987654321",
        ),
    ];
    for (i, (extra, mut env, used_key)) in runs.into_iter().enumerate() {
        let server = server().await;
        let mut args = base(&server);
        args.extend(extra);
        env.push(("OPENAI_API_KEY", used_key.to_owned()));
        let o = embed(args, env).await;
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        if i < 2 {
            check_rows(&o, "text-embedding-3-small", &texts, 8);
            // The retried 503 is logged.
            assert!(err.contains("retrying"), "run {i}: {err}");
        } else {
            assert!(!o.status.success());
        }
        let logged = err.lines().filter(|l| l.contains("embeddings")).count();
        assert!(logged >= 2, "run {i}: no log lines on stderr: {err}");
        for line in err.lines() {
            assert!(!line.contains(used_key), "run {i}: the key in {line}");
            assert!(
                !line.contains("SECRET"),
                "run {i}: part of the key in {line}"
            );
        }
    }
    // A bad --log-level is a one-line error.
    let server = server().await;
    let mut args = base(&server);
    args.extend(["--log-level".to_owned(), "loud=;;=".into()]);
    let o = embed(args, vec![("OPENAI_API_KEY", key.to_owned())]).await;
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("embed: invalid_config: `--log-level`"),
        "{err}"
    );
}

fn faulty_server_config(faults: &str) -> FakeServerConfig {
    FakeServerConfig::from_toml(faults).unwrap()
}

/// `--on-error skip`: a batch refused (400) is retried one input at a time;
/// an input refused alone is skipped, listed and counted; an input whose
/// request failed for another reason (503, retries off) stops the job and is
/// embedded on `--resume`, never lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipped_inputs_stay_skipped_and_failed_ones_are_embedded_on_resume() {
    // Request 1: the batch of 4 -> 400; 2: input 0 -> ok; 3: input 1 -> 400
    // (skipped); 4: input 2 -> 503 (the job stops); later requests succeed.
    let server = FakeServer::start(faulty_server_config(
        "[[faults]]\ntrigger = { nth = 1 }\naction = { status = 400 }\n\
         [[faults]]\ntrigger = { nth = 3 }\naction = { status = 400 }\n\
         [[faults]]\ntrigger = { nth = 4 }\naction = { status = 503 }\n",
    ))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let texts: Vec<String> = (0..4).map(|i| format!("input {i}")).collect();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, texts.join("\n") + "\n").unwrap();
    let out = dir.path().join("o.jsonl");
    let args = |extra: &[&str]| {
        let mut v: Vec<String> = [
            "-p",
            "openai",
            "-d",
            "8",
            "--batch-size",
            "4",
            "--concurrency",
            "1",
            "--max-retries",
            "0",
            "--on-error",
            "skip",
            "--stats",
            "json",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        v.extend([
            "--base-url".to_owned(),
            server.openai_base_url(),
            "-i".into(),
            input.to_str().unwrap().into(),
            "-o".into(),
            out.to_str().unwrap().into(),
        ]);
        v.extend(extra.iter().map(|s| (*s).to_owned()));
        v
    };
    let env = || vec![("OPENAI_API_KEY", "sk-test".to_owned())];
    let o = embed(args(&[]), env()).await;
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("embed: unavailable: ") && err.contains("rerun with --resume"),
        "{err}"
    );
    let o = embed(args(&["--resume"]), env()).await;
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    let stats: serde_json::Value = serde_json::from_str(err.trim()).unwrap();
    assert_eq!(stats["rows"], 3, "{err}");
    assert_eq!(stats["skipped"], 1, "{err}");
    assert!(
        stats["skipped_inputs"][0]
            .as_str()
            .unwrap()
            .contains("in.txt line 2"),
        "{err}"
    );
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let indices: Vec<u64> = rows.iter().map(|r| r["index"].as_u64().unwrap()).collect();
    assert_eq!(indices, [0, 2, 3]);
    for r in &rows {
        let i = r["index"].as_u64().unwrap() as usize;
        let got: Vec<f32> = r["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        let want = vector("text-embedding-3-small", &texts[i], 8);
        assert!(
            got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-5),
            "row {i}"
        );
    }
}

/// A server that refuses every request: with `--on-error skip` every input
/// is skipped, and that is a failed job; the summary counts the failed
/// requests apart from the retries (re-attempts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_every_input_is_skipped_fails_and_failures_are_not_retries() {
    let server = FakeServer::start(faulty_server_config(
        "[[faults]]\naction = { status = 400 }\n",
    ))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (input, texts) = docs(dir.path());
    let base = |extra: &[&str]| {
        let mut v: Vec<String> = [
            "-p",
            "openai",
            "-d",
            "8",
            "--batch-size",
            "4",
            "--concurrency",
            "1",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        v.extend([
            "--base-url".to_owned(),
            server.openai_base_url(),
            "-i".into(),
            input.clone(),
        ]);
        v.extend(extra.iter().map(|s| (*s).to_owned()));
        v
    };
    let env = || vec![("OPENAI_API_KEY", "sk-test".to_owned())];
    let o = embed(base(&["--on-error", "skip"]), env()).await;
    assert!(!o.status.success());
    assert!(o.stdout.is_empty());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "embed: invalid_input: all {} inputs were skipped",
            texts.len()
        )),
        "{err}"
    );
    // Without skip: the refused batch is named by its lines.
    let o = embed(base(&[]), env()).await;
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("embed: invalid_input: openai: "), "{err}");
    assert!(err.contains("docs.txt lines 1-4: "), "{err}");
    assert!(!err.contains("inputs 0..4"), "{err}");
    // The counts, on a job that gets some rows: a 503 retried once, then a 400.
    let server = FakeServer::start(faulty_server_config(
        "[[faults]]\ntrigger = { nth = 1 }\naction = { status = 503 }\n\
         [[faults]]\ntrigger = { nth = 2 }\naction = { status = 400 }\n",
    ))
    .await
    .unwrap();
    let mut args = base(&[
        "--on-error",
        "skip",
        "--stats",
        "json",
        "--max-retries",
        "1",
    ]);
    let at = args.iter().position(|a| a == "--base-url").unwrap();
    args[at + 1] = server.openai_base_url();
    let o = embed(args, env()).await;
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    let stats: serde_json::Value = serde_json::from_str(err.trim()).unwrap();
    // Batch 1 (4 inputs): 503, retried: 400, then one by one (4 requests);
    // batch 2 (3 inputs): 1 request. 7 requests, 2 failed, 1 retry.
    assert_eq!(stats["rows"], texts.len(), "{err}");
    assert_eq!(stats["requests"], 7, "{err}");
    assert_eq!(stats["failed_requests"], 2, "{err}");
    assert_eq!(stats["retries"], 1, "{err}");
}
