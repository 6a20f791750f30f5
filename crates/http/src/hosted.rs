//! How a hosted API (one vendor's service, a bearer key) is reached: the
//! endpoint and the client every such provider's `from_config` resolved the
//! same way.

use std::time::Duration;

use embeddings_core::{Error, ProviderInfo, Result, SecretString};

use crate::client::{Auth, DEFAULT_CONNECT_TIMEOUT, HttpClient};
use crate::env::{resolve_key, resolve_setting};
use crate::url::{Url, parse_base_url, push_path, redact_url};

/// A hosted API's address and key, resolved from the configuration, else
/// the environment, else its defaults.
///
/// ```
/// use embeddings_core::ProviderInfo;
/// use embeddings_http::HostedApi;
///
/// const API: HostedApi = HostedApi {
///     provider: "example",
///     default_base_url: "https://api.example.com/v1",
///     base_url_env: &["EXAMPLE_BASE_URL"],
///     key_env: &["EXAMPLE_API_KEY"],
///     path: &["embeddings"],
/// };
/// let mut info = ProviderInfo::new("example", "m", 8);
/// let (url, shown) = API.url(Some("http://127.0.0.1:9/v1"), &mut info)?;
/// assert_eq!(shown, "http://127.0.0.1:9/v1/embeddings");
/// assert!(info.fingerprint().contains("endpoint=http://127.0.0.1:9/v1/embeddings"));
/// let client = API.client(Some(&"k-123".into()), None, None)?;
/// # let _ = (url, client);
/// # Ok::<(), embeddings_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct HostedApi {
    /// The registered provider name (in errors and the client).
    pub provider: &'static str,
    /// The service's base URL (`https://api.mistral.ai/v1`); its host is
    /// the one that needs no `endpoint` in the fingerprint.
    pub default_base_url: &'static str,
    /// The variables read for the base URL when `base_url` is not set.
    pub base_url_env: &'static [&'static str],
    /// The variables read for the key when `api_key` is not set (the first
    /// is the one an error names).
    pub key_env: &'static [&'static str],
    /// The embedding route under the base URL.
    pub path: &'static [&'static str],
}

impl HostedApi {
    /// The embedding URL and its redacted form: `configured` (the config's
    /// `base_url`), else the first set variable of `base_url_env`, else
    /// the default, checked by [`parse_base_url`] (the error names where
    /// the value came from), `path` pushed. A server on another host than
    /// the default's adds `endpoint` (without query, redacted) to `info`'s
    /// fingerprint: its vectors may differ.
    pub fn url(&self, configured: Option<&str>, info: &mut ProviderInfo) -> Result<(Url, String)> {
        let (base, from) = resolve_setting(configured, "base_url", self.base_url_env)
            .unwrap_or_else(|| (self.default_base_url.to_owned(), "base_url"));
        let mut url = parse_base_url(from, &base).map_err(|e| e.with_provider(self.provider))?;
        push_path(&mut url, self.path);
        let home = Url::parse(self.default_base_url).ok();
        if url.host_str() != home.as_ref().and_then(|u| u.host_str()) {
            let mut shown = url.clone();
            shown.set_query(None);
            info.add_fingerprint("endpoint", redact_url(&shown));
        }
        let shown = redact_url(&url);
        Ok((url, shown))
    }

    /// The client: the key from `configured` (the config's `api_key`),
    /// else the first set variable of `key_env` (neither: `InvalidConfig`
    /// naming both), sent as `Authorization: Bearer`; the connect timeout
    /// (default [`DEFAULT_CONNECT_TIMEOUT`]) and the deadline of a whole
    /// request (default none: the timeout layer's); the user agent
    /// `embeddings-rs/<version>`.
    pub fn client(
        &self,
        configured: Option<&SecretString>,
        connect_timeout: Option<Duration>,
        request_timeout: Option<Duration>,
    ) -> Result<HttpClient> {
        let key = resolve_key(configured, self.key_env).ok_or_else(|| {
            Error::config(format!(
                "no API key: set `api_key` in the config or {}",
                self.key_env
                    .first()
                    .copied()
                    .unwrap_or("its environment variable")
            ))
            .with_provider(self.provider)
        })?;
        HttpClient::builder(self.provider)
            .user_agent(concat!("embeddings-rs/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT))
            .request_timeout(request_timeout)
            .auth(Auth::Bearer(key))
            .build()
            .map_err(|e| e.with_provider(self.provider))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embeddings_core::ErrorKind;

    const API: HostedApi = HostedApi {
        provider: "hosted-test",
        default_base_url: "https://api.example.com/v1",
        base_url_env: &["EMBEDDINGS_HTTP_HOSTED_TEST_BASE_URL_UNSET"],
        key_env: &["EMBEDDINGS_HTTP_HOSTED_TEST_KEY_UNSET"],
        path: &["v2", "embed"],
    };

    #[test]
    fn the_default_host_needs_no_endpoint_in_the_fingerprint() {
        let mut info = ProviderInfo::new("hosted-test", "m", 8);
        let (url, shown) = API.url(None, &mut info).unwrap();
        assert_eq!(url.as_str(), "https://api.example.com/v1/v2/embed");
        assert_eq!(shown, url.as_str());
        assert_eq!(info.fingerprint(), "provider=hosted-test;model=m");
        // Another port of the same host is the same service.
        let mut info = ProviderInfo::new("hosted-test", "m", 8);
        API.url(Some("https://api.example.com:8443/v1?x=secret"), &mut info)
            .unwrap();
        assert!(
            !info.fingerprint().contains("endpoint"),
            "{}",
            info.fingerprint()
        );
        // Another host is named, without its query.
        let mut info = ProviderInfo::new("hosted-test", "m", 8);
        API.url(Some("https://proxy.internal/v1?x=secret"), &mut info)
            .unwrap();
        assert!(
            info.fingerprint()
                .ends_with(";endpoint=https://proxy.internal/v1/v2/embed"),
            "{}",
            info.fingerprint()
        );
    }

    #[test]
    fn a_bad_url_and_a_missing_key_are_config_errors_naming_the_provider() {
        let mut info = ProviderInfo::new("hosted-test", "m", 8);
        let e = API
            .url(Some("https://user:pw@api.example.com"), &mut info)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e}");
        assert_eq!(e.provider(), Some("hosted-test"));
        let e = API.client(None, None, None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig);
        assert_eq!(e.provider(), Some("hosted-test"));
        assert!(
            e.message()
                .contains("set `api_key` in the config or EMBEDDINGS_HTTP_HOSTED_TEST_KEY_UNSET"),
            "{e}"
        );
        // A blank configured key is no key.
        let blank = SecretString::from("  ".to_owned());
        assert!(API.client(Some(&blank), None, None).is_err());
        let key = SecretString::from("k-0123456789".to_owned());
        let c = API.client(Some(&key), None, None).unwrap();
        assert!(!format!("{c:?}").contains("k-0123456789"));
    }
}
