//! Keys and endpoints from the configuration, else a chain of environment
//! variables.

use embeddings_core::{ExposeSecret, SecretString};

/// The value of the first of `names` that is set and not blank, with its name.
///
/// ```
/// // SAFETY: the doc test is single-threaded.
/// unsafe { std::env::set_var("EMBEDDINGS_HTTP_DOC_B", "b") };
/// assert_eq!(
///     embeddings_http::env_first(&["EMBEDDINGS_HTTP_DOC_A", "EMBEDDINGS_HTTP_DOC_B"]),
///     Some(("EMBEDDINGS_HTTP_DOC_B", "b".to_owned()))
/// );
/// ```
pub fn env_first<'n>(names: &[&'n str]) -> Option<(&'n str, String)> {
    names.iter().find_map(|&n| {
        std::env::var(n)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(|v| (n, v))
    })
}

/// The API key: the configured one when not blank, else the first of the
/// environment variables `env` that is set (`["COHERE_API_KEY",
/// "CO_API_KEY"]`), else `None`. Held as a [`SecretString`] from the start.
pub fn resolve_key(configured: Option<&SecretString>, env: &[&str]) -> Option<SecretString> {
    match configured {
        Some(k) if !k.expose_secret().trim().is_empty() => Some(k.clone()),
        _ => env_first(env).map(|(_, v)| SecretString::from(v.trim().to_owned())),
    }
}

/// A setting (an endpoint) and where it came from: `config_key` when
/// configured, else the name of the first environment variable of `env`
/// that is set. `None` when neither gives one.
pub fn resolve_setting<'n>(
    configured: Option<&str>,
    config_key: &'n str,
    env: &[&'n str],
) -> Option<(String, &'n str)> {
    match configured.map(str::trim).filter(|s| !s.is_empty()) {
        Some(v) => Some((v.to_owned(), config_key)),
        None => env_first(env).map(|(n, v)| (v.trim().to_owned(), n)),
    }
}
