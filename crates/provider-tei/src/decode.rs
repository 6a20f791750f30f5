//! TEI's wire shapes: the `/embed` request, its answer (a bare array of
//! float arrays, one per input, in input order) and `/info`.

use embeddings_core::{Embeddings, Error, Result};
use embeddings_http::json::{RowBuffer, Scanner};
use serde::{Deserialize, Serialize};

/// The body of `POST /embed`.
#[derive(Debug, Serialize)]
pub(crate) struct EmbedBody<'a> {
    pub(crate) inputs: &'a [&'a str],
    pub(crate) normalize: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) truncate: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) truncation_direction: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) prompt_name: Option<&'a str>,
}

pub(crate) fn encode_request(body: &EmbedBody<'_>) -> Result<Vec<u8>> {
    serde_json::to_vec(body).map_err(|e| Error::invalid_input(format!("encoding the request: {e}")))
}

/// Decodes `/embed`'s answer: `[[f, ...], ...]`, exactly `rows` rows of
/// `dim` values (`0`: learned from the first row; every row must agree),
/// finite; anything else is `InvalidResponse`. TEI answers in input order
/// (its router sorts the batch back), so rows are placed by position.
pub fn decode_embed_response(body: &[u8], rows: usize, dim: usize) -> Result<Embeddings> {
    decode(body, rows, dim).map_err(|m| Error::invalid_response(format!("TEI /embed answer: {m}")))
}

fn decode(body: &[u8], rows: usize, dim: usize) -> Result<Embeddings, String> {
    let mut s = Scanner::new(body);
    let mut buf = RowBuffer::sequential(rows, dim);
    s.eat(b'[', "'[' (an array of embeddings)")?;
    if !s.eat_if(b']') {
        loop {
            let i = buf.count();
            if i >= rows {
                return Err(format!("more than the {rows} embeddings asked for"));
            }
            buf.floats_at(&mut s, i)
                .map_err(|e| format!("embedding {i}: {e}"))?;
            if !s.more(b']')? {
                break;
            }
        }
    }
    s.end()?;
    buf.finish().map_err(|e| e.message().to_owned())
}

/// What `GET /info` says (the fields this crate reads; the others are ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct ServerInfo {
    /// The model served (`BAAI/bge-small-en-v1.5`).
    #[serde(default)]
    pub model_id: String,
    /// `{"embedding": {...}}`, `{"reranker": {...}}` or `{"classifier": {...}}`.
    #[serde(default)]
    pub model_type: Option<serde_json::Value>,
    /// Most tokens per input.
    #[serde(default)]
    pub max_input_length: Option<usize>,
    /// Most tokens the server batches at once.
    #[serde(default)]
    pub max_batch_tokens: Option<usize>,
    /// Most inputs per request.
    #[serde(default)]
    pub max_client_batch_size: Option<usize>,
    /// Whether over-long inputs are truncated when a request does not say.
    #[serde(default)]
    pub auto_truncate: Option<bool>,
    /// The server's version.
    #[serde(default)]
    pub version: Option<String>,
}

impl ServerInfo {
    /// `Some("reranker")` / `Some("classifier")` when the model does not embed.
    pub fn non_embedding_kind(&self) -> Option<String> {
        let serde_json::Value::Object(o) = self.model_type.as_ref()? else {
            return None;
        };
        if o.contains_key("embedding") {
            return None;
        }
        o.keys().next().cloned()
    }
}

/// Parses `/info`; a limit of 0 or a body that is not an object is `InvalidResponse`.
pub fn parse_info(body: &[u8]) -> Result<ServerInfo> {
    let info: ServerInfo = serde_json::from_slice(body).map_err(|e| {
        Error::invalid_response(format!("TEI /info answer is not the expected object: {e}"))
    })?;
    for (name, v) in [
        ("max_input_length", info.max_input_length),
        ("max_batch_tokens", info.max_batch_tokens),
        ("max_client_batch_size", info.max_client_batch_size),
    ] {
        if v == Some(0) {
            return Err(Error::invalid_response(format!(
                "TEI /info says {name} = 0"
            )));
        }
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rows_in_order_and_every_refusal() {
        let e = decode_embed_response(b"[[1,0],[0.5, -0.5]]", 2, 0).unwrap();
        assert_eq!((e.len(), e.dim()), (2, 2));
        assert_eq!(e.row(1), [0.5, -0.5]);
        for (body, rows, dim, want) in [
            (&b"[[1,0]]"[..], 2, 0, "expected 2 embeddings"),
            (b"[[1,0],[1,0],[1,0]]", 2, 0, "more than the 2"),
            (b"[[1,0],[1]]", 2, 0, "embedding 1"),
            (b"[[1,0,3]]", 1, 2, "embedding 0"),
            (b"[[1,NaN]]", 1, 2, "embedding 0"),
            (b"[[1,1e999]]", 1, 2, "embedding 0"),
            (b"{\"error\":\"x\"}", 1, 2, "'['"),
            (b"[[1,0]] x", 1, 2, ""),
            (b"[[1,0]", 1, 2, ""),
            (b"", 1, 2, ""),
        ] {
            let err = decode_embed_response(body, rows, dim).unwrap_err();
            assert_eq!(err.kind(), embeddings_core::ErrorKind::InvalidResponse);
            assert!(
                err.message().contains(want),
                "{}: {err}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(decode_embed_response(b"[]", 0, 3).unwrap().is_empty());
    }

    #[test]
    fn info_fields_and_kinds() {
        let i = parse_info(br#"{"model_id":"BAAI/bge-small-en-v1.5","model_sha":null,"model_dtype":"float16",
            "model_type":{"embedding":{"pooling":"cls"}},"max_concurrent_requests":512,"max_input_length":512,
            "max_batch_tokens":16384,"max_batch_requests":null,"max_client_batch_size":32,"auto_truncate":false,
            "tokenization_workers":2,"version":"1.8.0","sha":null,"docker_label":null}"#).unwrap();
        assert_eq!(i.max_client_batch_size, Some(32));
        assert_eq!(i.non_embedding_kind(), None);
        let r =
            parse_info(br#"{"model_id":"x","model_type":{"reranker":{"id2label":{}}}}"#).unwrap();
        assert_eq!(r.non_embedding_kind().as_deref(), Some("reranker"));
        assert!(parse_info(br#"{"max_client_batch_size":0}"#).is_err());
        assert!(parse_info(b"[1]").is_err());
        assert!(parse_info(br#"{"max_client_batch_size":-1}"#).is_err());
    }

    #[test]
    fn request_shape() {
        let body = encode_request(&EmbedBody {
            inputs: &["a"],
            normalize: true,
            truncate: None,
            truncation_direction: None,
            prompt_name: Some("query"),
        })
        .unwrap();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"inputs":["a"],"normalize":true,"prompt_name":"query"}"#
        );
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256), rows in 0usize..4, dim in 0usize..4) {
            let _ = decode_embed_response(&bytes, rows, dim);
            let _ = parse_info(&bytes);
        }

        #[test]
        fn round_trips(m in proptest::collection::vec(proptest::collection::vec(-1e30f32..1e30, 3), 0..5)) {
            let body = serde_json::to_vec(&m).unwrap();
            let e = decode_embed_response(&body, m.len(), 3).unwrap();
            prop_assert_eq!(e.into_vecs(), m);
        }
    }
}
