//! The hardening cases of issue 19 for the OpenAI provider, each against a
//! hand-written server on 127.0.0.1: no credential follows a redirect to
//! another origin, a key echoed in an error `code` or in a 200 answer
//! without `data` is masked, userinfo in a base URL is refused, server text
//! is printed on one safe line, and a model of unknown dimension cannot
//! make the provider buffer gigabytes.

use embeddings_core::{Config, Embedder, ErrorKind, SecretString};
use embeddings_http::testing::{RawReply, RawServer};
use embeddings_openai::OpenAiEmbedder;

/// The address of a raw server answering every request with `reply`.
async fn serve(reply: RawReply) -> String {
    RawServer::start(reply).await.unwrap().url().to_owned()
}

const KEY: &str = "sk-test-0123456789abcdefSECRET";

fn config(toml: &str) -> Config {
    let mut c = Config::from_toml_str(toml).unwrap();
    c.api_key = Some(SecretString::from(KEY));
    c
}

fn assert_no_key(texts: &[String]) {
    for t in texts {
        assert!(!t.contains(KEY), "the key leaked: {t}");
        for run in KEY.as_bytes().windows(8) {
            let run = std::str::from_utf8(run).unwrap();
            assert!(!t.contains(run), "{run:?} of the key leaked: {t}");
        }
    }
}

#[tokio::test]
async fn a_redirect_to_another_origin_is_refused_and_no_credential_follows() {
    let stolen = RawServer::start(RawReply::json("200 OK", "{}"))
        .await
        .unwrap();
    let elsewhere = stolen.url().to_owned();
    for status in ["307 Temporary Redirect", "308 Permanent Redirect"] {
        let to = format!("{elsewhere}/openai/deployments/d/embeddings");
        let base = serve(RawReply::redirect(status, &to)).await;
        for extra in [
            format!("[openai.azure]\nendpoint = \"{base}\"\n"),
            format!(
                "base_url = \"{base}/v1\"\n[openai.headers]\nX-Secret = \"hdr-secret-value\"\n"
            ),
        ] {
            let (top, section) = extra.split_at(if extra.starts_with("base_url") {
                extra.find('\n').unwrap() + 1
            } else {
                0
            });
            let c = config(&format!(
                "provider = \"openai\"\nmodel = \"m\"\ndimensions = 4\n{top}{section}"
            ));
            let e = OpenAiEmbedder::from_config(&c).unwrap();
            let err = e.embed_query("x").await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{status}: {err}");
            assert!(err.message().contains("another origin"), "{err}");
            assert!(!err.is_retryable());
        }
    }
    let got = stolen.requests();
    assert!(got.is_empty(), "the other origin got: {got:?}");
}

#[tokio::test]
async fn a_key_in_an_error_code_is_masked() {
    // The code holds the key after 40 characters: cut to 64 characters
    // before masking, 24 characters of the key used to show.
    let body = format!(
        r#"{{"error":{{"message":"bad key","type":"invalid_request_error","code":"{}{KEY}"}}}}"#,
        "c".repeat(40)
    );
    let base = serve(RawReply::json("401 Unauthorized", &body)).await;
    let c = config(&format!(
        "provider = \"openai\"\nmodel = \"m\"\ndimensions = 4\nbase_url = \"{base}/v1\""
    ));
    let err = OpenAiEmbedder::from_config(&c)
        .unwrap()
        .embed_query("x")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication, "{err}");
    assert_no_key(&[err.to_string(), format!("{err:?}")]);
}

#[tokio::test]
async fn a_key_in_a_200_answer_without_data_is_masked() {
    // The key sits where the 300-character excerpt of the `error` cuts it.
    let body = format!(
        r#"{{"error":{{"message":"{} invalid key {KEY} (check it)"}}}}"#,
        "x".repeat(262)
    );
    let base = serve(RawReply::json("200 OK", &body)).await;
    let c = config(&format!(
        "provider = \"openai\"\nmodel = \"m\"\ndimensions = 4\nbase_url = \"{base}/v1\""
    ));
    let err = OpenAiEmbedder::from_config(&c)
        .unwrap()
        .embed_query("x")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidResponse, "{err}");
    assert!(err.message().contains("no `data`"), "{err}");
    assert_no_key(&[err.to_string(), format!("{err:?}")]);
}

#[test]
fn a_base_url_with_userinfo_is_refused() {
    for url in [
        "http://user:hunter2@127.0.0.1:1/v1",
        "http://user@127.0.0.1:1/v1",
    ] {
        let c = config(&format!("provider = \"openai\"\nbase_url = \"{url}\""));
        let err = OpenAiEmbedder::from_config(&c).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{url}: {err}");
        assert!(err.message().contains("user name or password"), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}

#[tokio::test]
async fn server_text_is_printed_on_one_safe_line() {
    let body =
        r#"{"error":{"message":"bad\r\u001b[2J\u0007\u0000\u2028\u2029 input","code":"x\u001by"}}"#;
    let base = serve(RawReply::json("400 Bad Request", body)).await;
    let c = config(&format!(
        "provider = \"openai\"\nmodel = \"m\"\ndimensions = 4\nbase_url = \"{base}/v1\""
    ));
    let err = OpenAiEmbedder::from_config(&c)
        .unwrap()
        .embed_query("x")
        .await
        .unwrap_err();
    let shown = err.to_string();
    for bad in ['\r', '\n', '\u{1b}', '\u{7}', '\0', '\u{2028}', '\u{2029}'] {
        assert!(!shown.contains(bad), "{bad:?} in {shown:?}");
    }
    assert!(shown.contains("bad"), "{shown}");
}

#[tokio::test]
async fn an_unknown_dimension_caps_the_body_by_the_first_row() {
    // 2048 inputs of an unknown model: the old bound let ~1.6 GB through;
    // the first row (4 values) bounds the rest of the body.
    let mut piece = br#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,0.2,0.3,0.4]}"#.to_vec();
    piece.extend(std::iter::repeat_n(b' ', 64 * 1024));
    let base = serve(RawReply::chunked_forever("200 OK", piece)).await;
    let c = config(&format!(
        "provider = \"openai\"\nmodel = \"unknown-model\"\nbase_url = \"{base}/v1\""
    ));
    let e = OpenAiEmbedder::from_config(&c).unwrap();
    assert_eq!(e.dimension(), 0);
    let texts: Vec<&str> = vec!["t"; 2048];
    let err = e.embed_documents(&texts).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidResponse, "{err}");
    assert!(err.message().contains("larger than"), "{err}");
    let limit: usize = err
        .message()
        .split("larger than ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("the message names the limit");
    assert!(
        limit < 16 << 20,
        "a {limit}-byte cap for 2048 rows of 4 values"
    );
}

#[test]
fn the_fingerprint_holds_every_vector_changing_setting_and_no_secret() {
    let c = config("provider = \"openai\"\nmodel = \"text-embedding-3-small\"\ndimensions = 256");
    let f = OpenAiEmbedder::from_config(&c)
        .unwrap()
        .info()
        .fingerprint();
    assert!(f.contains("model=text-embedding-3-small"), "{f}");
    assert!(f.contains("dimensions=256"), "{f}");
    assert!(!f.contains("endpoint"), "{f}");
    let c = config(
        "provider = \"openai\"\nmodel = \"bge\"\nbase_url = \"http://gpu-box:8000/v1?key=qsecret\"",
    );
    let f = OpenAiEmbedder::from_config(&c)
        .unwrap()
        .info()
        .fingerprint();
    assert!(
        f.contains("endpoint=http://gpu-box:8000/v1/embeddings"),
        "{f}"
    );
    assert!(!f.contains("qsecret") && !f.contains(KEY), "{f}");
    let c = config(
        "provider = \"openai\"\nmodel = \"m\"\n[openai.azure]\nendpoint = \"https://r.openai.azure.com\"\ndeployment = \"dep\"",
    );
    let f = OpenAiEmbedder::from_config(&c)
        .unwrap()
        .info()
        .fingerprint();
    assert!(
        f.contains("deployment=dep") && f.contains("r.openai.azure.com"),
        "{f}"
    );
    assert!(!f.contains("api-version"), "{f}");
}
