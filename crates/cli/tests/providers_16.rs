//! Issue 16's providers end to end: the `embed` binary (and the library's
//! layer stack) against their fake servers. TEI: limits from `/info`
//! honoured from the very first call. Gemini: renormalised rows, at most
//! 100 per call. Bedrock: signed requests (the dialect verifies SigV4),
//! Titan's one text per request made of a batch by the layers.

use std::process::{Command, Output};

use embeddings::Embedder;
use embeddings_mock::vector;
use embeddings_tei::testkit::{TEI_EMBED, TEI_INFO, TeiDialect, TeiFixture};
use embeddings_testkit::{FakeServer, Fixture};

async fn embed(args: Vec<String>, env: Vec<(&'static str, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_embed"));
        cmd.args(&args);
        for k in [
            "EMBEDDINGS_PROVIDER",
            "EMBEDDINGS_MODEL",
            "EMBEDDINGS_DIMENSIONS",
            "TEI_BASE_URL",
            "TEI_API_KEY",
            "HF_TOKEN",
            "GEMINI_API_KEY",
            "GOOGLE_API_KEY",
            "GEMINI_BASE_URL",
            "GOOGLE_OAUTH_ACCESS_TOKEN",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
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

fn texts(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("document {i}: déjà vu 🌍"))
        .collect()
}

fn check_rows(o: &Output, texts: &[String]) {
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
        let want = vector(TeiFixture::MODEL, t, TeiFixture::DIMENSION);
        assert_eq!(got.len(), want.len());
        assert!(
            got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-5),
            "row {i}"
        );
    }
}

/// Every `/embed` request of the log carried at most `limit` inputs, and
/// `/info` came before the first.
fn check_within(server: &FakeServer, limit: usize, total: usize) {
    let log = server.requests();
    let first_embed = log
        .iter()
        .position(|r| r.route == TEI_EMBED)
        .expect("no /embed");
    assert!(
        log[..first_embed].iter().any(|r| r.route == TEI_INFO),
        "/info was not read before the first /embed: {:?}",
        log.iter().map(|r| r.route).collect::<Vec<_>>()
    );
    let sizes: Vec<usize> = log
        .iter()
        .filter(|r| r.route == TEI_EMBED)
        .map(|r| r.inputs.unwrap())
        .collect();
    assert!(
        sizes.iter().all(|&n| n <= limit),
        "sizes {sizes:?} over {limit}"
    );
    assert!(
        log.iter().all(|r| r.status == 200),
        "a request was refused: {:?}",
        log.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(sizes.iter().sum::<usize>() >= total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embed_p_tei_within_the_info_limit_from_the_first_request() {
    let server = FakeServer::builder()
        .dialect(TeiDialect::new().max_client_batch_size(4))
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let texts = texts(11);
    let input = dir.path().join("docs.txt");
    std::fs::write(&input, texts.join("\n") + "\n").unwrap();
    let o = embed(
        vec![
            "-p".into(),
            "tei".into(),
            "--base-url".into(),
            server.base_url(),
            "-i".into(),
            input.to_str().unwrap().into(),
        ],
        vec![],
    )
    .await;
    check_rows(&o, &texts);
    check_within(&server, 4, texts.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tei_base_url_and_key_from_the_environment() {
    let key = "hf_cli_test_key_0123456789";
    let server = FakeServer::builder()
        .dialect(TeiDialect::new().api_key(key))
        .start()
        .await
        .unwrap();
    let texts = texts(3);
    let mut args = vec!["-p".to_owned(), "tei".to_owned()];
    args.extend(texts.iter().cloned());
    let env = |k: &str| {
        vec![
            ("TEI_BASE_URL", server.base_url()),
            ("TEI_API_KEY", k.to_owned()),
        ]
    };
    let o = embed(args.clone(), env(key)).await;
    check_rows(&o, &texts);
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.header("authorization") == Some(format!("Bearer {key}").as_str()))
    );
    let o = embed(args, env("hf_wrong_key_0123456789")).await;
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("hf_wrong_key_0123456789"), "{err}");
}

/// The library: a TEI `/info` limit of 4 and a first call of 30 inputs
/// through `embeddings::from_config` (batch, retry, rate limit,
/// concurrency, timeout layers): every request on the wire ≤ 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layers_keep_every_request_within_an_info_limit_of_4() {
    for limit in [4, 32] {
        let server = FakeServer::builder()
            .dialect(TeiDialect::new().max_client_batch_size(limit))
            .start()
            .await
            .unwrap();
        let config = TeiFixture.config(&server.base_url());
        let e = embeddings::from_config(&config).unwrap();
        let owned = texts(30 + limit * 2);
        let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
        let rows = e.embed_documents(&refs).await.unwrap();
        assert_eq!(rows.len(), refs.len());
        for (i, t) in refs.iter().enumerate() {
            let want = vector(TeiFixture::MODEL, t, TeiFixture::DIMENSION);
            assert!(
                rows.row(i)
                    .iter()
                    .zip(&want)
                    .all(|(a, b)| (a - b).abs() < 1e-5)
            );
        }
        check_within(&server, limit, refs.len());
        assert_eq!(e.info().max_batch_size, limit);
    }
}

/// The JSONL rows of a successful run, each checked against the §4 vector.
fn check_rows_of(o: &Output, texts: &[String], model: &str, dim: usize) {
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
        assert_eq!(got.len(), want.len());
        assert!(
            got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-5),
            "row {i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embed_p_gemini_with_the_key_from_the_environment() {
    use embeddings_gemini::testkit::{GEMINI_EMBED, GeminiDialect, GeminiFixture};
    let server = FakeServer::builder()
        .dialect(GeminiDialect::default().api_key(GeminiFixture::KEY))
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let texts = texts(130);
    let input = dir.path().join("docs.txt");
    std::fs::write(&input, texts.join("\n") + "\n").unwrap();
    let args = |extra: &[&str]| {
        let mut a: Vec<String> = [
            "-p",
            "gemini",
            "--base-url",
            &server.base_url(),
            "-d",
            "768",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let o = embed(
        args(&["-i", input.to_str().unwrap()]),
        vec![("GEMINI_API_KEY", GeminiFixture::KEY.to_owned())],
    )
    .await;
    check_rows_of(&o, &texts, GeminiFixture::MODEL, 768);
    let log = server.requests();
    assert!(
        log.iter()
            .all(|r| r.route == GEMINI_EMBED && r.status == 200)
    );
    assert!(
        log.iter().all(|r| r.inputs.unwrap() <= 100),
        "at most 100 per call"
    );
    assert!(
        log.iter()
            .all(|r| r.header("x-goog-api-key") == Some(GeminiFixture::KEY))
    );
    // GOOGLE_API_KEY is the fallback; a wrong key fails without showing it.
    let wrong = "AIzaWrongCliKey0123456789abc";
    let o = embed(args(&["hello"]), vec![("GOOGLE_API_KEY", wrong.to_owned())]).await;
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !err.contains(wrong) && !err.contains(&wrong[4..16]),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embed_p_bedrock_signed_with_the_environments_credentials() {
    use embeddings_bedrock::testkit::{BEDROCK_INVOKE, BedrockDialect, BedrockFixture};
    let server = FakeServer::builder()
        .dialect(BedrockDialect::default())
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let texts = texts(11);
    let input = dir.path().join("docs.txt");
    std::fs::write(&input, texts.join("\n") + "\n").unwrap();
    let args = vec![
        "-p".to_owned(),
        "bedrock".to_owned(),
        "--base-url".to_owned(),
        server.base_url(),
        "-d".to_owned(),
        "512".to_owned(),
        "-i".to_owned(),
        input.to_str().unwrap().to_owned(),
    ];
    let env = |secret: &str| {
        vec![
            (
                "AWS_ACCESS_KEY_ID",
                BedrockFixture::ACCESS_KEY_ID.to_owned(),
            ),
            ("AWS_SECRET_ACCESS_KEY", secret.to_owned()),
            (
                "AWS_SESSION_TOKEN",
                BedrockFixture::SESSION_TOKEN.to_owned(),
            ),
            ("AWS_REGION", BedrockFixture::REGION.to_owned()),
        ]
    };
    let o = embed(args.clone(), env(BedrockFixture::SECRET)).await;
    check_rows_of(&o, &texts, BedrockFixture::MODEL, 512);
    let log = server.requests();
    assert_eq!(log.len(), texts.len(), "one request per text");
    assert!(
        log.iter()
            .all(|r| r.route == BEDROCK_INVOKE && r.status == 200 && r.inputs == Some(1))
    );
    let mut sent: Vec<String> = log
        .iter()
        .map(|r| r.body["inputText"].as_str().unwrap().to_owned())
        .collect();
    sent.sort();
    let mut all = texts.clone();
    all.sort();
    assert_eq!(sent, all, "every text exactly once");
    // A wrong secret: the service's InvalidSignatureException, no secret shown.
    let wrong = "wrongCliSecret/0123456789abcdefghijk";
    let o = embed(args, env(wrong)).await;
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("InvalidSignatureException"), "{err}");
    assert!(
        !err.contains(&wrong[..12]) && !err.contains(&BedrockFixture::SESSION_TOKEN[4..16]),
        "{err}"
    );
}

/// The library: a Titan batch of 10 through `embeddings::from_config` (the
/// batch and concurrency layers) is 10 signed requests of one text, rows in
/// input order; a Gemini batch of 250 is requests of at most 100.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layers_turn_batches_into_requests_the_services_take() {
    use embeddings_bedrock::testkit::{BedrockDialect, BedrockFixture};
    use embeddings_gemini::testkit::{GeminiDialect, GeminiFixture};
    let server = FakeServer::builder()
        .dialect(BedrockDialect::default())
        .start()
        .await
        .unwrap();
    let e = embeddings::from_config(&BedrockFixture.config(&server.base_url())).unwrap();
    assert_eq!(e.info().max_batch_size, 1);
    let owned = texts(10);
    let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
    let rows = e.embed_documents(&refs).await.unwrap();
    for (i, t) in refs.iter().enumerate() {
        let want = vector(BedrockFixture::MODEL, t, BedrockFixture::DIMENSION);
        assert!(
            rows.row(i)
                .iter()
                .zip(&want)
                .all(|(a, b)| (a - b).abs() < 1e-5),
            "row {i}"
        );
    }
    let log = server.requests();
    assert_eq!(log.len(), 10);
    assert!(log.iter().all(|r| r.inputs == Some(1) && r.status == 200));

    let server = FakeServer::builder()
        .dialect(GeminiDialect::default())
        .start()
        .await
        .unwrap();
    let e = embeddings::from_config(&GeminiFixture.config(&server.base_url())).unwrap();
    let owned = texts(250);
    let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
    let rows = e.embed_documents(&refs).await.unwrap();
    for i in [0, 99, 100, 249] {
        let want = vector(GeminiFixture::MODEL, refs[i], GeminiFixture::DIMENSION);
        assert!(
            rows.row(i)
                .iter()
                .zip(&want)
                .all(|(a, b)| (a - b).abs() < 1e-5),
            "row {i}"
        );
    }
    let sizes: Vec<usize> = server
        .requests()
        .iter()
        .map(|r| r.inputs.unwrap())
        .collect();
    assert!(sizes.iter().all(|&n| n <= 100), "{sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 250);
}
