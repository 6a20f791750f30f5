//! `[openai] preset = "..."`: what each preset fills in, that every
//! explicit setting wins over it, and two presets against the fake server
//! (LM Studio's floats from the first request, TEI's batch limit).

use embeddings_core::{Config, EmbedRequest, Embedder, ErrorKind};
use embeddings_openai::{EncodingFormat, OpenAiEmbedder, Preset};
use embeddings_testkit::{FakeServer, OpenAiDialect, conformance};

fn build(toml: &str) -> embeddings_core::Result<OpenAiEmbedder> {
    OpenAiEmbedder::from_config(&Config::from_toml_str(toml).unwrap())
}

#[test]
fn every_preset_fills_in_url_model_limits_and_encoding() {
    for (preset, url, model, batch, tokens, encoding) in [
        (
            "together",
            "https://api.together.xyz/v1/embeddings",
            "BAAI/bge-base-en-v1.5",
            2048,
            512,
            EncodingFormat::Base64,
        ),
        (
            "fireworks",
            "https://api.fireworks.ai/inference/v1/embeddings",
            "nomic-ai/nomic-embed-text-v1.5",
            256,
            8192,
            EncodingFormat::Base64,
        ),
        (
            "deepinfra",
            "https://api.deepinfra.com/v1/openai/embeddings",
            "BAAI/bge-m3",
            1024,
            8192,
            EncodingFormat::Base64,
        ),
        (
            "tei",
            "http://localhost:8080/v1/embeddings",
            "tei",
            32,
            512,
            EncodingFormat::Base64,
        ),
    ] {
        let e = build(&format!(
            "provider = \"openai\"\napi_key = \"preset-key-0123456789\"\n[openai]\npreset = \"{preset}\"\n"
        ))
        .unwrap();
        let info = e.info();
        assert_eq!(e.endpoint(), url, "{preset}");
        assert_eq!(info.model, model, "{preset}");
        assert_eq!(
            (info.max_batch_size, info.max_input_tokens),
            (batch, tokens),
            "{preset}"
        );
        assert_eq!(e.encoding_format(), encoding, "{preset}");
        assert!(
            info.fingerprint().contains(url),
            "{preset}: the endpoint is in the fingerprint"
        );
    }
    // The local servers that serve whatever they loaded need a model.
    for preset in ["vllm", "lmstudio", "lm-studio"] {
        let err = build(&format!(
            "provider = \"openai\"\n[openai]\npreset = \"{preset}\"\n"
        ))
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        assert!(err.to_string().contains("set `model`"), "{err}");
        let e = build(&format!(
            "provider = \"openai\"\nmodel = \"nomic-embed-text\"\n[openai]\npreset = \"{preset}\"\n"
        ))
        .unwrap();
        assert!(
            e.endpoint().starts_with("http://localhost:"),
            "{}",
            e.endpoint()
        );
    }
    let e =
        build("provider = \"openai\"\nmodel = \"m\"\n[openai]\npreset = \"lmstudio\"\n").unwrap();
    assert_eq!(
        e.encoding_format(),
        EncodingFormat::Float,
        "LM Studio: floats"
    );
    assert_eq!(Preset::ALL.len(), 6);
    for p in Preset::ALL {
        assert!(
            !p.spec().key_env.is_empty() && p.spec().base_url.contains("/v1"),
            "{p}"
        );
    }
}

#[test]
fn explicit_settings_win_over_the_preset() {
    let e = build(
        "provider = \"openai\"\nmodel = \"BAAI/bge-large-en-v1.5\"\nbase_url = \"https://proxy.example/v1\"\napi_key = \"k-0123456789\"\n\
         [openai]\npreset = \"together\"\nencoding_format = \"float\"\nmax_batch_size = 7\nmax_input_tokens = 100\nmax_batch_tokens = 700\n",
    )
    .unwrap();
    let info = e.info();
    assert_eq!(e.endpoint(), "https://proxy.example/v1/embeddings");
    assert_eq!(info.model, "BAAI/bge-large-en-v1.5");
    assert_eq!(
        (
            info.max_batch_size,
            info.max_input_tokens,
            info.max_batch_tokens
        ),
        (7, 100, 700)
    );
    assert_eq!(e.encoding_format(), EncodingFormat::Float);
    // LM Studio's floats give way to a configured base64.
    let e = build("provider = \"openai\"\nmodel = \"m\"\n[openai]\npreset = \"lmstudio\"\nencoding_format = \"base64\"\n").unwrap();
    assert_eq!(e.encoding_format(), EncodingFormat::Base64);
}

#[test]
fn a_cloud_preset_without_its_key_is_refused_and_presets_exclude_azure() {
    if std::env::var_os("FIREWORKS_API_KEY").is_none() {
        let err = build("provider = \"openai\"\n[openai]\npreset = \"fireworks\"\n").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        assert!(err.to_string().contains("FIREWORKS_API_KEY"), "{err}");
    }
    let err = build(
        "provider = \"openai\"\napi_key = \"k\"\n[openai]\npreset = \"together\"\n[openai.azure]\nendpoint = \"https://r.openai.azure.com\"\n",
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    let err = build("provider = \"openai\"\n[openai]\npreset = \"nope\"\n").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(
        err.to_string().contains("nope") && err.to_string().contains("lmstudio"),
        "{err}"
    );
}

async fn server(model: &str, dim: usize) -> FakeServer {
    FakeServer::builder()
        .dialect(OpenAiDialect::new().model(model, dim).base64_as_f64())
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn lm_studio_asks_for_floats_from_the_first_request() {
    // A server whose base64 is broken: the preset never asks for it.
    let s = server("text-embedding-nomic-embed-text-v1.5", 24).await;
    let e = build(&format!(
        "provider = \"openai\"\nmodel = \"text-embedding-nomic-embed-text-v1.5\"\nbase_url = \"{}/v1\"\n[openai]\npreset = \"lmstudio\"\n",
        s.base_url()
    ))
    .unwrap();
    for text in ["a", "b"] {
        let row = e.embed_query(text).await.unwrap();
        assert_eq!(
            row,
            embeddings_mock::vector("text-embedding-nomic-embed-text-v1.5", text, 24)
        );
    }
    let formats: Vec<_> = s
        .requests()
        .iter()
        .map(|r| r.body["encoding_format"].clone())
        .collect();
    assert_eq!(
        formats,
        [serde_json::json!("float"), serde_json::json!("float")]
    );
    assert!(!e.fell_back_to_float(), "no detection was needed");
}

#[tokio::test]
async fn tei_preset_keeps_requests_within_32_inputs() {
    let s = FakeServer::builder()
        .dialect(OpenAiDialect::new().model("tei", 16))
        .start()
        .await
        .unwrap();
    let e = build(&format!(
        "provider = \"openai\"\nbase_url = \"{}/v1\"\n[openai]\npreset = \"tei\"\n",
        s.base_url()
    ))
    .unwrap();
    let owned: Vec<String> = (0..70).map(|i| format!("t{i}")).collect();
    let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
    assert_eq!(
        e.embed_documents(&texts).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let rows = conformance::embed_within_limits(&e, EmbedRequest::new(&texts))
        .await
        .unwrap();
    assert_eq!(rows.row(69), &embeddings_mock::vector("tei", "t69", 16)[..]);
    let sizes: Vec<usize> = s.requests().iter().map(|r| r.inputs.unwrap()).collect();
    assert!(
        sizes.iter().all(|&n| n <= 32) && sizes.iter().sum::<usize>() == 70,
        "{sizes:?}"
    );
    assert!(s.requests().iter().all(|r| r.body["model"] == "tei"));
}
