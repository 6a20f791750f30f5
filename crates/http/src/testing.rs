//! A hand-written misbehaving HTTP/1.1 server on 127.0.0.1, for the tests
//! of providers built on the toolkit (feature `testing`): it answers every
//! request with fixed bytes, optionally forever, so that body caps,
//! redirects and echoed keys can be tested where a well-behaved fake
//! server cannot go.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the server sends after reading a request.
#[derive(Debug, Clone)]
pub enum RawReply {
    /// `head` (status line and headers, ending in `\r\n\r\n`), then `body`.
    Once {
        /// The status line and headers.
        head: String,
        /// The body.
        body: Vec<u8>,
    },
    /// `head`, then `piece` again and again until the client hangs up
    /// (each piece a chunk when `head` says `transfer-encoding: chunked`).
    Forever {
        /// The status line and headers.
        head: String,
        /// What is repeated.
        piece: Vec<u8>,
    },
}

impl RawReply {
    /// A complete JSON answer: `status` is the status line's tail
    /// (`"401 Unauthorized"`).
    pub fn json(status: &str, body: &str) -> RawReply {
        RawReply::Once {
            head: format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            ),
            body: body.as_bytes().to_vec(),
        }
    }

    /// A redirect to `location`; `status` such as `"307 Temporary Redirect"`.
    pub fn redirect(status: &str, location: &str) -> RawReply {
        RawReply::Once {
            head: format!("HTTP/1.1 {status}\r\nlocation: {location}\r\ncontent-length: 0\r\n\r\n"),
            body: Vec::new(),
        }
    }

    /// A chunked answer of `status` whose body never ends.
    pub fn chunked_forever(status: &str, piece: Vec<u8>) -> RawReply {
        RawReply::Forever {
            head: format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
            ),
            piece,
        }
    }
}

/// The server; it stops when the test's runtime ends.
#[derive(Debug, Clone)]
pub struct RawServer {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl RawServer {
    /// Binds 127.0.0.1 on a free port and answers every connection with `reply`.
    pub async fn start(reply: RawReply) -> std::io::Result<RawServer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let (reply, log) = (reply.clone(), log.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let n = sock.read(&mut buf).await.unwrap_or(0);
                    if let Ok(mut l) = log.lock() {
                        l.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                    }
                    match reply {
                        RawReply::Once { head, body } => {
                            let _ = sock.write_all(head.as_bytes()).await;
                            let _ = sock.write_all(&body).await;
                        }
                        RawReply::Forever { head, piece } => {
                            if sock.write_all(head.as_bytes()).await.is_err() {
                                return;
                            }
                            let mut chunk = piece.clone();
                            if head.to_ascii_lowercase().contains("chunked") {
                                chunk = format!("{:x}\r\n", piece.len()).into_bytes();
                                chunk.extend_from_slice(&piece);
                                chunk.extend_from_slice(b"\r\n");
                            }
                            while sock.write_all(&chunk).await.is_ok() {}
                        }
                    }
                });
            }
        });
        Ok(RawServer { url, requests })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The requests received so far (what one read of each connection got).
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}
