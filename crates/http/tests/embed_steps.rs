//! The shared steps of an embedding call (`HttpClient::embed`,
//! `call_rows`, `call_ok`, `InfoCell`) against raw servers on 127.0.0.1:
//! what a provider built on them does without writing it.

use embeddings_core::{
    EmbedRequest, Embeddings, Error, ErrorKind, OutputType, ProviderInfo, Result,
};
use embeddings_http::reqwest::header::HeaderMap;
use embeddings_http::testing::{RawReply, RawServer};
use embeddings_http::{
    Auth, BodyCap, ErrorDetail, HttpClient, InfoCell, Masker, Url, default_kind, status_error,
};

const KEY: &str = "sk-steps-0123456789abcdef";

fn client() -> HttpClient {
    HttpClient::builder("steps")
        .auth(Auth::Bearer(KEY.into()))
        .build()
        .unwrap()
}

fn url(s: &RawServer) -> Url {
    Url::parse(&format!("{}/embed", s.url())).unwrap()
}

fn cap(rows: usize, dim: usize) -> BodyCap {
    BodyCap::Rows {
        rows,
        dim,
        key: "embedding",
    }
}

/// A provider's error parser: the toolkit's table on `{"error": ...}`.
fn parse_error(status: u16, headers: &HeaderMap, body: &[u8], masker: &Masker) -> Error {
    let d = ErrorDetail::from_body(body, masker);
    status_error(default_kind(status), d.message, status, headers)
}

/// A decoder of `{"rows": [[..], ..]}` (serde, enough for these tests).
fn decode(body: &[u8], rows: usize) -> Result<Embeddings> {
    let bad = |e: serde_json::Error| Error::invalid_response(e.to_string());
    let v: serde_json::Value = serde_json::from_slice(body).map_err(bad)?;
    let rs: Vec<Vec<f32>> = serde_json::from_value(v["rows"].clone()).map_err(bad)?;
    if rs.len() != rows {
        return Err(Error::invalid_response(format!(
            "{} rows for {rows}",
            rs.len()
        )));
    }
    let dim = rs.first().map_or(0, Vec::len);
    Embeddings::from_flat(rs.concat(), dim)
}

#[tokio::test]
async fn call_rows_decodes_the_rows_and_takes_the_rate_limit_headers() {
    let body = r#"{"rows":[[0.5,-1],[0.25,2]]}"#;
    let s = RawServer::start(RawReply::Once {
        head: format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-ratelimit-remaining-requests: 41\r\nx-ratelimit-limit-tokens: 9000\r\ncontent-length: {}\r\n\r\n",
            body.len()
        ),
        body: body.as_bytes().to_vec(),
    })
    .await
    .unwrap();
    let c = client();
    let out = c
        .call_rows(
            c.post_json(&url(&s), br#"{"input":["a","b"]}"#.to_vec()),
            s.url(),
            cap(2, 0),
            parse_error,
            |b| decode(b, 2),
        )
        .await
        .unwrap();
    assert_eq!(
        (out.row(0), out.row(1)),
        (&[0.5, -1.0][..], &[0.25, 2.0][..])
    );
    let rl = out.rate_limits().expect("the x-ratelimit-* headers");
    assert_eq!(
        (rl.remaining_requests, rl.limit_tokens, rl.limit_requests),
        (Some(41), Some(9000), None)
    );
    // The body went as JSON, once.
    let reqs = s.requests();
    assert_eq!(reqs.len(), 1);
    assert!(reqs[0].starts_with("POST /embed"), "{}", reqs[0]);
    assert!(reqs[0].contains(r#"{"input":["a","b"]}"#), "{}", reqs[0]);
}

#[tokio::test]
async fn an_error_status_goes_to_the_providers_parser_with_the_clients_masker() {
    let s = RawServer::start(RawReply::json(
        "429 Too Many Requests",
        &format!(r#"{{"error":{{"message":"slow down, {KEY}"}}}}"#),
    ))
    .await
    .unwrap();
    let c = client();
    let mut decoded = false;
    let err = c
        .call_rows(
            c.post_json(&url(&s), b"{}".to_vec()),
            s.url(),
            cap(1, 4),
            parse_error,
            |b| {
                decoded = true;
                decode(b, 1)
            },
        )
        .await
        .unwrap_err();
    assert!(!decoded, "an error answer is not decoded as rows");
    assert_eq!(err.kind(), ErrorKind::RateLimited, "{err}");
    assert_eq!(err.status(), Some(429));
    assert!(err.message().contains("slow down"), "{err}");
    assert!(!err.to_string().contains(&KEY[3..15]), "{err}");

    // `call_ok` is the same step, and hands back a success whole.
    let err = c
        .call_ok(
            c.post_json(&url(&s), b"{}".to_vec()),
            s.url(),
            cap(1, 4),
            |status, _: &HeaderMap, _: &[u8], _: &Masker| {
                Error::new(ErrorKind::Unavailable, format!("mine: {status}"))
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.message(), "mine: 429");
}

#[tokio::test]
async fn a_bad_answer_is_the_decoders_error_and_no_partial_result() {
    let s = RawServer::start(RawReply::json("200 OK", r#"{"rows":[[1,2]]}"#))
        .await
        .unwrap();
    let c = client();
    let err = c
        .call_rows(
            c.post_json(&url(&s), b"{}".to_vec()),
            s.url(),
            cap(2, 2),
            parse_error,
            |b| decode(b, 2),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidResponse, "{err}");
    assert!(err.message().contains("1 rows for 2"), "{err}");
}

fn info(output_types: &'static [OutputType]) -> ProviderInfo {
    let mut i = ProviderInfo::new("steps", "m", 3);
    i.output_types = output_types;
    i
}

#[tokio::test]
async fn embed_checks_the_type_answers_empty_requests_and_finishes_errors() {
    let c = client();
    let posted = std::sync::atomic::AtomicUsize::new(0);
    let post = |_: EmbedRequest<'_>| async {
        posted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Err::<Embeddings, _>(Error::new(
            ErrorKind::Authentication,
            format!("the server says {KEY} is wrong"),
        ))
    };
    let plain = info(&[]);

    // A type the provider does not produce: refused, nothing posted.
    let req = EmbedRequest::new(&["a"]).with_output_type(OutputType::Int8);
    let err = c.embed(&plain, req, post).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.message().contains("does not produce int8"), "{err}");

    // An empty request: an empty batch of the asked type and the
    // provider's dimension, nothing posted.
    let native = info(&[OutputType::Uint8]);
    let empty: [&str; 0] = [];
    let req = EmbedRequest::new(&empty).with_output_type(OutputType::Uint8);
    let out = c.embed(&native, req, post).await.unwrap();
    assert_eq!(
        (out.len(), out.dim(), out.output_type()),
        (0, 3, OutputType::Uint8)
    );
    assert_eq!(posted.load(std::sync::atomic::Ordering::Relaxed), 0);

    // Otherwise the post, its error named and masked.
    let err = c
        .embed(&plain, EmbedRequest::new(&["a"]), post)
        .await
        .unwrap_err();
    assert_eq!(posted.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(err.kind(), ErrorKind::Authentication);
    assert_eq!(err.provider(), Some("steps"));
    assert!(!err.to_string().contains(&KEY[3..15]), "{err}");
}

#[test]
fn the_info_cell_keeps_the_first_learned_dimension_and_a_learned_info() {
    let cell = InfoCell::new(ProviderInfo::new("steps", "m", 0));
    cell.learn_dimension(0);
    assert!(!cell.is_learned());
    cell.learn_dimension(8);
    cell.learn_dimension(16);
    assert_eq!(cell.get().dimension, 8);
    assert_eq!(cell.configured().dimension, 0);
    assert!(!cell.learn(ProviderInfo::new("steps", "other", 4)));
    assert_eq!(cell.get().model, "m");

    // A configured dimension is never replaced by an answer's.
    let cell = InfoCell::new(ProviderInfo::new("steps", "m", 5));
    cell.learn_dimension(8);
    assert_eq!((cell.get().dimension, cell.is_learned()), (5, false));
    // What `prepare()` read from the server, once.
    let mut served = ProviderInfo::new("steps", "served", 5);
    served.max_batch_size = 7;
    assert!(cell.learn(served));
    assert_eq!(
        (cell.get().model.as_str(), cell.get().max_batch_size),
        ("served", 7)
    );
    assert_eq!(cell.configured().model, "m");
}
