//! Fixed inputs shared by the criterion benches and the instruction-count
//! scenarios, so that both measure the same work.

use std::sync::Arc;

use embeddings::{Config, Embedder};

/// The mock's model name used everywhere here.
pub const MODEL: &str = "mock";

/// The query text of the `embed_query` benches.
pub const QUERY: &str = "what does the quick brown fox jump over?";

/// The dimensions the benches run at: the mock's default, the size of issue
/// 2's targets, and OpenAI's `text-embedding-3-small`.
pub const DIMS: [usize; 3] = [128, 256, 1536];

/// The batch sizes of the `embed_documents` benches: a handful, a page, and
/// OpenAI's largest request.
pub const BATCHES: [usize; 3] = [5, 100, 2048];

/// `n` fixed documents of 56 bytes each (about 14 tokens).
pub fn texts(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("document {i:06}: the quick brown fox jumps over the lazy dog"))
        .collect()
}

/// Borrows `texts` as the `&[&str]` the `Embedder` API takes.
pub fn refs(texts: &[String]) -> Vec<&str> {
    texts.iter().map(String::as_str).collect()
}

/// The configuration of the mock at `dim` dimensions (default layers).
pub fn config(dim: usize) -> Config {
    let mut c = Config::for_provider("mock");
    c.dimensions = Some(dim);
    c
}

/// The bare mock from the registry (`registry::build`, no layers).
pub fn bare(dim: usize) -> Arc<dyn Embedder> {
    embeddings::registry::build(&config(dim)).expect("the mock builds")
}

/// The mock wrapped in the default layer stack (`embeddings::from_config`).
pub fn layered(dim: usize) -> Arc<dyn Embedder> {
    embeddings::from_config(&config(dim)).expect("the mock builds with its layers")
}

/// A current-thread tokio runtime with time and I/O: one thread, so that
/// instruction and allocation counts are deterministic.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

/// The OpenAI model of the encode/decode scenarios (1536 dimensions).
pub const OPENAI_MODEL: &str = "text-embedding-3-small";
/// Its dimension.
pub const OPENAI_DIM: usize = 1536;
/// The Ollama model of the parse scenarios (768 dimensions).
pub const OLLAMA_MODEL: &str = "nomic-embed-text";
/// Its dimension.
pub const OLLAMA_DIM: usize = 768;

/// The vectors of `rows` fixed documents for `model` at `dim`, as the fake
/// server would answer them.
fn vectors(model: &str, rows: usize, dim: usize) -> Vec<Vec<f32>> {
    texts(rows)
        .iter()
        .map(|t| embeddings::mock::vector(model, t, dim))
        .collect()
}

/// A `POST /v1/embeddings` answer of `rows` vectors of `dim` values, with
/// `base64` (little-endian `f32`) or JSON float arrays (shortest `f32`
/// representation, as OpenAI's ~9 significant digits), shaped like OpenAI's.
pub fn openai_response(rows: usize, dim: usize, base64: bool) -> Vec<u8> {
    use base64::Engine as _;
    let mut out = String::from(r#"{"object":"list","data":["#);
    for (i, v) in vectors(OPENAI_MODEL, rows, dim).iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let embedding = if base64 {
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            format!(
                "\"{}\"",
                base64::engine::general_purpose::STANDARD.encode(bytes)
            )
        } else {
            serde_json::to_string(v).expect("floats serialise")
        };
        out.push_str(&format!(
            r#"{{"object":"embedding","index":{i},"embedding":{embedding}}}"#
        ));
    }
    let tokens = rows * 14;
    out.push_str(&format!(
        r#"],"model":"{OPENAI_MODEL}","usage":{{"prompt_tokens":{tokens},"total_tokens":{tokens}}}}}"#
    ));
    out.into_bytes()
}

/// A `POST /api/embed` answer of `rows` vectors of `dim` values, shaped like
/// Ollama's.
pub fn ollama_response(rows: usize, dim: usize) -> Vec<u8> {
    let embeddings =
        serde_json::to_string(&vectors(OLLAMA_MODEL, rows, dim)).expect("floats serialise");
    format!(
        r#"{{"model":"{OLLAMA_MODEL}","embeddings":{embeddings},"total_duration":14143917,"load_duration":1019500,"prompt_eval_count":{}}}"#,
        rows * 14
    )
    .into_bytes()
}

/// Token counts of `n` inputs for the batch planner: 5 to 54 tokens, fixed.
pub fn token_counts(n: usize) -> Vec<usize> {
    (0..n).map(|i| 5 + (i * 7919) % 50).collect()
}
