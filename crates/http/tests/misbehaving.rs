//! The toolkit against hand-written misbehaving servers on 127.0.0.1: every
//! way a body can be too large ends in a typed error with bounded memory,
//! a redirect never carries credentials to another origin, and what the
//! server echoes back is masked.

use std::sync::{Arc, Mutex};

use embeddings_core::ErrorKind;
use embeddings_http::testing::{RawReply, RawServer};
use embeddings_http::{
    Auth, BodyCap, ErrorDetail, HttpClient, MAX_ERROR_BODY, Url, default_kind, max_response_len,
    status_error,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn serve(reply: RawReply) -> (String, RawServer) {
    let s = RawServer::start(reply).await.unwrap();
    (s.url().to_owned(), s)
}

fn client(key: &str) -> HttpClient {
    HttpClient::builder("test")
        .auth(Auth::Header("api-key".parse().unwrap(), key.into()))
        .secret_header("test.headers", "x-secret", "hdr-secret-value-42")
        .unwrap()
        .build()
        .unwrap()
}

fn url(base: &str) -> Url {
    Url::parse(&format!("{base}/embed")).unwrap()
}

#[tokio::test]
async fn a_huge_content_length_is_refused_before_reading() {
    let head = "HTTP/1.1 200 OK\r\ncontent-length: 9000000000\r\n\r\n".to_owned();
    let (base, _) = serve(RawReply::Forever {
        head,
        piece: vec![b'['; 16 * 1024],
    })
    .await;
    let c = client("k-0123456789");
    let cap = BodyCap::Rows {
        rows: 2,
        dim: 8,
        key: "embedding",
    };
    let err = c
        .call(c.post_json(&url(&base), b"{}".to_vec()), &base, cap)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidResponse, "{err}");
    assert!(
        err.message().contains("9000000000 bytes is larger than"),
        "{err}"
    );
    assert!(err.message().contains("2 vectors of dimension 8"), "{err}");
}

#[tokio::test]
async fn a_chunked_body_that_never_ends_is_cut_at_the_cap() {
    let (base, _) = serve(RawReply::chunked_forever("200 OK", vec![b'['; 16 * 1024])).await;
    let c = client("k-0123456789");
    for (rows, dim) in [(2, 8), (1, 0)] {
        let cap = BodyCap::Rows {
            rows,
            dim,
            key: "embedding",
        };
        let err = c
            .call(c.post_json(&url(&base), b"{}".to_vec()), &base, cap)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidResponse, "{err}");
        let limit = max_response_len(rows, dim);
        assert!(
            err.message().contains(&format!("more than {limit}")),
            "{err}"
        );
    }
}

#[tokio::test]
async fn an_unknown_dimension_is_bounded_by_the_first_row() {
    // A first row of 4 values, then rows forever: 2048 rows of an unknown
    // dimension would allow gigabytes; the first row says 4, so the cap is
    // that of 2048 x 4.
    let mut piece = b"{\"data\":[{\"index\":0,\"embedding\":[0.1,0.2,0.3,0.4]}".to_vec();
    piece.extend(std::iter::repeat_n(b' ', 16 * 1024));
    let (base, _) = serve(RawReply::chunked_forever("200 OK", piece)).await;
    let c = client("k-0123456789");
    let cap = BodyCap::Rows {
        rows: 2048,
        dim: 0,
        key: "embedding",
    };
    let err = c
        .call(c.post_json(&url(&base), b"{}".to_vec()), &base, cap)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidResponse, "{err}");
    let limit = max_response_len(2048, 4);
    assert!(
        err.message().contains(&format!("more than {limit}")),
        "{err}"
    );
    assert!(limit < 64 * 1024 * 1024);
}

#[tokio::test]
async fn an_endless_error_body_is_read_to_the_error_cap_only() {
    let (base, _) = serve(RawReply::chunked_forever(
        "500 Internal Server Error",
        b"oops ".repeat(2000),
    ))
    .await;
    let c = client("k-0123456789");
    let a = c
        .call(
            c.post_json(&url(&base), b"{}".to_vec()),
            &base,
            BodyCap::Bytes(1 << 20),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 500);
    assert_eq!(a.body.len(), MAX_ERROR_BODY);
    let d = ErrorDetail::from_body(&a.body, c.masker());
    let e = c.finish(status_error(
        default_kind(a.status),
        d.message,
        a.status,
        &a.headers,
    ));
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.message().len() < 2000);
}

#[tokio::test]
async fn a_cross_origin_redirect_is_refused_and_carries_no_credential() {
    let (elsewhere, seen) = serve(RawReply::json("200 OK", "{}")).await;
    for status in [
        "307 Temporary Redirect",
        "308 Permanent Redirect",
        "302 Found",
    ] {
        let to = format!("{elsewhere}/steal?x=1");
        let (base, _) = serve(RawReply::redirect(status, &to)).await;
        let c = client("azure-key-0123456789");
        let err = c
            .call(
                c.post_json(&url(&base), b"{}".to_vec()),
                &base,
                BodyCap::Bytes(1024),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{status}: {err}");
        assert!(err.message().contains("another origin"), "{err}");
        assert!(err.message().contains(&elsewhere), "{err}");
        assert!(!err.is_retryable());
    }
    assert!(
        seen.requests().is_empty(),
        "the other origin got a request: {:?}",
        seen.requests()
    );
}

#[tokio::test]
async fn same_origin_redirects_are_followed_a_few_times() {
    // Every answer redirects to the same origin: followed, then refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let base = format!("http://127.0.0.1:{port}");
    let head = format!(
        "HTTP/1.1 307 Temporary Redirect\r\nlocation: {base}/again\r\ncontent-length: 0\r\n\r\n"
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let count = Arc::new(Mutex::new(0usize));
    let n = count.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let head = head.clone();
            let n = n.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                while let Ok(k) = sock.read(&mut buf).await {
                    if k == 0 {
                        return;
                    }
                    *n.lock().unwrap() += 1;
                    if sock.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let c = client("k-0123456789");
    let err = c
        .call(
            c.post_json(&url(&base), b"{}".to_vec()),
            &base,
            BodyCap::Bytes(1024),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidResponse, "{err}");
    assert!(err.message().contains("too many redirects"), "{err}");
    assert_eq!(*count.lock().unwrap(), embeddings_http::MAX_REDIRECTS + 1);
}

#[tokio::test]
async fn a_key_echoed_back_is_masked_whole_and_in_part() {
    let key = "olkey-SECRET-0123456789abcdef";
    let body = format!(
        "{{\"error\":{{\"message\":\"invalid api key {key}\\r\\u001b[2J\\u0007\",\"code\":\"{}\"}}}}",
        &key[6..30.min(key.len())]
    );
    let (base, _) = serve(RawReply::json("401 Unauthorized", &body)).await;
    let c = client(key);
    let a = c
        .call(
            c.post_json(&url(&base), b"{}".to_vec()),
            &base,
            BodyCap::Bytes(1024),
        )
        .await
        .unwrap();
    let d = ErrorDetail::from_body(&a.body, c.masker());
    let msg = format!("{} [{}]", d.message, d.code());
    let e = c.finish(status_error(
        default_kind(a.status),
        msg,
        a.status,
        &a.headers,
    ));
    assert_eq!(e.kind(), ErrorKind::Authentication);
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains("SECRET"), "{shown}");
    assert!(!shown.contains("01234567"), "{shown}");
    assert!(
        !shown.contains('\u{1b}') && !shown.contains('\r') && !shown.contains('\u{7}'),
        "{shown:?}"
    );
}

#[tokio::test]
async fn connection_refused_names_the_host_and_the_hint() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let c = HttpClient::builder("test")
        .connect_hint("is the server running?")
        .build()
        .unwrap();
    let err = c
        .call(
            c.post_json(&url(&base), b"{}".to_vec()),
            &base,
            BodyCap::Bytes(10),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(
        err.message().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    assert!(err.message().contains("is the server running?"), "{err}");
    assert_eq!(err.provider(), Some("test"));
}

#[tokio::test]
async fn a_query_key_never_shows_in_an_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let c = HttpClient::builder("test")
        .auth(Auth::Query("key".into(), "query-secret-0123456789".into()))
        .build()
        .unwrap();
    let err = c
        .call(
            c.post_json(&url(&base), b"{}".to_vec()),
            &base,
            BodyCap::Bytes(10),
        )
        .await
        .unwrap_err();
    let shown = format!("{err} {err:?} {c:?}");
    assert!(!shown.contains("query-secret"), "{shown}");
}
