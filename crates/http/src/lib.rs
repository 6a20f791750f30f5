//! The toolkit every HTTP embedding provider is built on, so that a
//! provider crate is only its request and response shapes.
//!
//! What it guarantees, for every provider built on it (the rules of
//! `docs/providers.md`):
//!
//! * **One request per call, no transport retry**: the client has
//!   reqwest's retry policy off; retries belong to the retry layer.
//! * **Credentials stay at their origin**: a redirect to another scheme,
//!   host or port is refused with an `InvalidConfig` error; same-origin
//!   redirects are followed (at most [`MAX_REDIRECTS`]). A base URL with
//!   `user:pass@` is refused ([`parse_base_url`]).
//! * **Keys only in headers** (or the query parameter an API demands),
//!   marked sensitive, held as `SecretString` ([`Auth`], [`resolve_key`]).
//! * **Capped bodies**: a success body is bounded by what the request can
//!   return ([`BodyCap`], [`max_response_len`]), an error body by
//!   [`MAX_ERROR_BODY`]; more is a typed error, never unbounded memory.
//! * **Typed errors**: [`default_kind`] maps statuses, [`status_error`]
//!   adds `retry-after(-ms)` and `x-should-retry`, [`transport_error`]
//!   names the host; [`rate_limit_snapshot`] reads `x-ratelimit-*`.
//! * **Nothing unsafe is printed**: server text reaches a message only as
//!   an [`excerpt`] (one printable line) with every secret masked
//!   ([`Masker`]: the configured key, whole or any 8-char run of it, and
//!   anything `sk-`/`Bearer`-shaped).
//! * **Rows decoded once**: [`json`] holds the validating scanner, the
//!   float-array and base64 row decoders and the batch buffer.
//! * **The common steps of a call, once**: [`HttpClient::embed`] (the body
//!   of `Embedder::embed`: output type checked, an empty request answered
//!   without a request, errors finished), [`HttpClient::call_rows`] (post,
//!   an error status through the provider's parser, decode, rate-limit
//!   snapshot) and [`InfoCell`] (the dimension learned from the first
//!   answer), so that a provider crate holds only its shapes.
//!
//! ```no_run
//! # async fn demo() -> embeddings_core::Result<()> {
//! use embeddings_http::{Auth, BodyCap, HttpClient, ErrorDetail, default_kind, parse_base_url,
//!     push_path, redact_url, resolve_key, status_error};
//!
//! let key = resolve_key(None, &["EXAMPLE_API_KEY"]);
//! let mut url = parse_base_url("base_url", "https://api.example.com/v1")?;
//! push_path(&mut url, &["embed"]);
//! let host = redact_url(&url);
//! let client = HttpClient::builder("example")
//!     .auth(key.map_or(Auth::None, Auth::Bearer))
//!     .build()?;
//! let answer = client
//!     .call(client.post_json(&url, br#"{"input":["hi"]}"#.to_vec()), &host,
//!           BodyCap::Rows { rows: 1, dim: 0, key: "embedding" })
//!     .await?;
//! if !answer.is_success() {
//!     let d = ErrorDetail::from_body(&answer.body, client.masker());
//!     let e = status_error(default_kind(answer.status), d.message, answer.status, &answer.headers);
//!     return Err(client.finish(e));
//! }
//! // ... decode `answer.body` with `embeddings_http::json` ...
//! # Ok(()) }
//! ```

mod body;
mod client;
mod embed;
mod env;
mod hosted;
pub mod json;
mod status;
#[cfg(feature = "testing")]
pub mod testing;
mod text;
mod url;

pub use crate::body::{
    BodyCap, BodyDecoder, BodyFeeder, DIRECT_PIECE, ENVELOPE_BYTES, MAX_BYTES_PER_VALUE,
    MAX_ERROR_BODY, ROW_OVERHEAD_BYTES, STREAM_WINDOW, first_row_dim, max_response_len, read_body,
    read_body_into, read_error_body,
};
pub use crate::client::{
    Answer, Auth, DEFAULT_CONNECT_TIMEOUT, HttpClient, HttpClientBuilder, MAX_REDIRECTS,
};
pub use crate::embed::InfoCell;
pub use crate::env::{env_first, resolve_key, resolve_setting};
pub use crate::hosted::HostedApi;
pub use crate::status::{
    ErrorDetail, MAX_RETRY_AFTER, RedirectRefused, default_kind, header_str,
    is_context_length_text, parse_reset, parse_retry_after, rate_limit_snapshot, retry_after,
    status_error, transport_error,
};
pub use crate::text::{MAX_EXCERPT, MIN_SECRET_RUN, Masker, excerpt, mask_tokens};
pub use crate::url::{
    Url, origin, parse_base_url, push_path, redact_url, redact_url_keeping, same_origin,
};
/// Re-exported so providers name the same reqwest types.
pub use reqwest;
