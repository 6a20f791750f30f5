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
