//! Base URLs: parsed and checked once, redacted for display.

use embeddings_core::{Error, Result};
pub use reqwest::Url;

use crate::text::excerpt;

/// Parses a configured base URL (`key` names the setting in errors).
///
/// Refuses anything but `http://` and `https://`, a URL that cannot be a
/// base, a fragment, and **userinfo** (`https://user:pass@host`): reqwest
/// would turn it into Basic auth that silently replaces the configured key,
/// and it would travel in every request. Credentials belong in `api_key`
/// (or a header); the error never repeats the password.
///
/// ```
/// use embeddings_http::parse_base_url;
/// assert_eq!(parse_base_url("base_url", "http://127.0.0.1:8080/v1/").unwrap().path(), "/v1/");
/// let e = parse_base_url("base_url", "https://me:hunter2@example.com").unwrap_err();
/// assert!(e.to_string().contains("user name or password"), "{e}");
/// assert!(!e.to_string().contains("hunter2"), "{e}");
/// ```
pub fn parse_base_url(key: &str, value: &str) -> Result<Url> {
    let value = value.trim();
    let url = Url::parse(value).map_err(|e| {
        Error::config(format!(
            "`{key}` = {:?}: not a URL ({e})",
            excerpt(&redact_str(value), 200)
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(Error::config(format!(
            "`{key}` = {:?}: must be an http:// or https:// URL",
            excerpt(&redact_url(&url), 200)
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::config(format!(
            "`{key}` = {:?}: a base URL must not hold a user name or password (`user:pass@`); \
             put the key in `api_key` (or its environment variable) or in a header",
            redact_url(&url)
        )));
    }
    if url.fragment().is_some() {
        return Err(Error::config(format!(
            "`{key}` = {:?}: a base URL must not have a #fragment",
            redact_url(&url)
        )));
    }
    Ok(url)
}

/// Appends path segments (percent-encoded as needed), dropping an empty
/// last segment first: `http://h/v1/` + `["embeddings"]` = `http://h/v1/embeddings`.
pub fn push_path(url: &mut Url, segments: &[&str]) {
    if let Ok(mut p) = url.path_segments_mut() {
        p.pop_if_empty().extend(segments);
    }
}

/// The URL for logs and messages: no user info, every query value replaced
/// by `…` (a query can hold a key).
pub fn redact_url(url: &Url) -> String {
    redact_url_keeping(url, &[])
}

/// [`redact_url`], keeping the values of the query parameters in `keep`
/// (such as `api-version`).
///
/// ```
/// let u = embeddings_http::Url::parse("https://u:p@h.example/x?api-version=1&key=secret").unwrap();
/// assert_eq!(embeddings_http::redact_url_keeping(&u, &["api-version"]), "https://h.example/x?api-version=1&key=%E2%80%A6");
/// ```
pub fn redact_url_keeping(url: &Url, keep: &[&str]) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_fragment(None);
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| {
            let shown = if keep.contains(&&*k) {
                v.into_owned()
            } else {
                "…".to_owned()
            };
            (k.into_owned(), shown)
        })
        .collect();
    if pairs.is_empty() {
        u.set_query(None);
    } else {
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

/// A string that may be a URL with credentials, for an error message.
fn redact_str(value: &str) -> String {
    match value.rsplit_once('@') {
        Some((head, tail)) if head.contains("://") => {
            let scheme = head.split("://").next().unwrap_or("");
            format!("{scheme}://[redacted]@{tail}")
        }
        _ => value.to_owned(),
    }
}

/// `scheme://host[:port]` (the port only when not the scheme's default).
///
/// ```
/// let u = embeddings_http::Url::parse("https://u:p@api.example.com:443/v1?x=1").unwrap();
/// assert_eq!(embeddings_http::origin(&u), "https://api.example.com");
/// ```
pub fn origin(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port() {
        Some(p) => format!("{}://{host}:{p}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

/// Whether `a` and `b` have the same scheme, host and port.
pub fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked() {
        for bad in [
            "ftp://x",
            "mailto:a@b",
            "http://user@h",
            "http://user:pw@h",
            "http://:pw@h",
            "http://h/#frag",
            "not a url",
        ] {
            let e = parse_base_url("base_url", bad).unwrap_err();
            assert!(e.to_string().contains("`base_url`"), "{bad}: {e}");
            assert!(!e.to_string().contains("pw"), "{bad}: {e}");
        }
        assert!(parse_base_url("k", " https://h.example/v1 ").is_ok());
    }

    #[test]
    fn urls_lose_credentials_and_query_values() {
        let u = Url::parse(
            "https://user:pw@x.openai.azure.com/openai/deployments/d/embeddings?api-version=2024-10-21&key=secret",
        )
        .unwrap();
        let s = redact_url_keeping(&u, &["api-version"]);
        assert!(
            !s.contains("pw") && !s.contains("secret") && !s.contains("user"),
            "{s}"
        );
        assert!(s.contains("api-version=2024-10-21"), "{s}");
        assert!(!redact_url(&u).contains("2024"));
    }

    #[test]
    fn origins() {
        let a = Url::parse("http://h:80/a").unwrap();
        let b = Url::parse("http://h/b?x").unwrap();
        let c = Url::parse("https://h/b").unwrap();
        let d = Url::parse("http://h:8080/b").unwrap();
        assert!(same_origin(&a, &b));
        assert!(!same_origin(&a, &c) && !same_origin(&a, &d));
        assert_eq!(origin(&d), "http://h:8080");
    }
}
