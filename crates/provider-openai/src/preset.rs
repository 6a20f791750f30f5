//! Presets for well-known OpenAI-compatible services: `[openai] preset =
//! "together"`. A preset fills in what the configuration leaves out: the
//! base URL, where the key comes from, the default model, the limits the
//! service is known to have, and the encoding when its base64 is known to
//! be broken. Every explicit setting (`base_url`, `api_key`, `model`,
//! `[openai] encoding_format`, `max_batch_size`, ...) wins over the preset.
//!
//! With a preset the OpenAI variables (`OPENAI_API_KEY`, `OPENAI_BASE_URL`)
//! are not read: an OpenAI key is never sent to another company's server.

use std::fmt;

use serde::Deserialize;

use crate::decode::EncodingFormat;

/// A well-known OpenAI-compatible service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Preset {
    /// Together AI (`api.together.xyz`).
    Together,
    /// Fireworks AI (`api.fireworks.ai/inference`).
    Fireworks,
    /// DeepInfra's OpenAI-compatible API (`api.deepinfra.com/v1/openai`).
    #[serde(alias = "deep-infra", alias = "deep_infra")]
    DeepInfra,
    /// A vLLM server (`vllm serve`), local by default.
    Vllm,
    /// Hugging Face text-embeddings-inference's OpenAI route (`/v1`).
    Tei,
    /// LM Studio's local server.
    #[serde(alias = "lm-studio", alias = "lm_studio")]
    LmStudio,
}

/// What a preset fills in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PresetSpec {
    /// The base URL (ends before `/embeddings`).
    pub base_url: &'static str,
    /// Environment variables holding the key, in order.
    pub key_env: &'static [&'static str],
    /// Whether the service refuses requests without a key.
    pub key_required: bool,
    /// The model when none is configured; `None`: `model` must be set
    /// (a local server serves whatever it was started with).
    pub default_model: Option<&'static str>,
    /// Most inputs per request.
    pub max_batch_size: usize,
    /// Most tokens per input.
    pub max_input_tokens: usize,
    /// Most tokens per request.
    pub max_batch_tokens: usize,
    /// `Some(Float)` when the service's base64 is known to be broken (the
    /// floats are then asked for from the first request, no detection).
    pub encoding_format: Option<EncodingFormat>,
}

impl Preset {
    /// Every preset.
    pub const ALL: [Preset; 6] = [
        Preset::Together,
        Preset::Fireworks,
        Preset::DeepInfra,
        Preset::Vllm,
        Preset::Tei,
        Preset::LmStudio,
    ];

    /// The name in configuration files.
    pub const fn as_str(self) -> &'static str {
        match self {
            Preset::Together => "together",
            Preset::Fireworks => "fireworks",
            Preset::DeepInfra => "deepinfra",
            Preset::Vllm => "vllm",
            Preset::Tei => "tei",
            Preset::LmStudio => "lmstudio",
        }
    }

    /// What the preset fills in.
    pub const fn spec(self) -> PresetSpec {
        match self {
            // BGE base: 512-token inputs; Together documents no batch cap
            // for embeddings, so OpenAI's 2,048 is kept.
            Preset::Together => PresetSpec {
                base_url: "https://api.together.xyz/v1",
                key_env: &["TOGETHER_API_KEY"],
                key_required: true,
                default_model: Some("BAAI/bge-base-en-v1.5"),
                max_batch_size: 2048,
                max_input_tokens: 512,
                max_batch_tokens: 300_000,
                encoding_format: None,
            },
            // nomic-embed-text-v1.5: 8,192-token inputs.
            Preset::Fireworks => PresetSpec {
                base_url: "https://api.fireworks.ai/inference/v1",
                key_env: &["FIREWORKS_API_KEY"],
                key_required: true,
                default_model: Some("nomic-ai/nomic-embed-text-v1.5"),
                max_batch_size: 256,
                max_input_tokens: 8192,
                max_batch_tokens: 300_000,
                encoding_format: None,
            },
            // BGE-M3: 8,192-token inputs.
            Preset::DeepInfra => PresetSpec {
                base_url: "https://api.deepinfra.com/v1/openai",
                key_env: &["DEEPINFRA_API_KEY", "DEEPINFRA_TOKEN"],
                key_required: true,
                default_model: Some("BAAI/bge-m3"),
                max_batch_size: 1024,
                max_input_tokens: 8192,
                max_batch_tokens: 300_000,
                encoding_format: None,
            },
            // Whatever `vllm serve` loaded; its `--api-key` is VLLM_API_KEY.
            // Some versions break base64: detected from the first answer.
            Preset::Vllm => PresetSpec {
                base_url: "http://localhost:8000/v1",
                key_env: &["VLLM_API_KEY"],
                key_required: false,
                default_model: None,
                max_batch_size: 2048,
                max_input_tokens: 8192,
                max_batch_tokens: 300_000,
                encoding_format: None,
            },
            // TEI's defaults: --max-client-batch-size 32, 512-token models
            // (the native `tei` provider reads the real values from /info).
            // TEI serves one model and ignores the name.
            Preset::Tei => PresetSpec {
                base_url: "http://localhost:8080/v1",
                key_env: &["TEI_API_KEY"],
                key_required: false,
                default_model: Some("tei"),
                max_batch_size: 32,
                max_input_tokens: 512,
                max_batch_tokens: 16_384,
                encoding_format: None,
            },
            // LM Studio answers `encoding_format: base64` with floats or a
            // wrong dimension: floats from the start.
            Preset::LmStudio => PresetSpec {
                base_url: "http://localhost:1234/v1",
                key_env: &["LM_STUDIO_API_KEY", "LMSTUDIO_API_KEY"],
                key_required: false,
                default_model: None,
                max_batch_size: 256,
                max_input_tokens: 2048,
                max_batch_tokens: 65_536,
                encoding_format: Some(EncodingFormat::Float),
            },
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
