//! The Redis connection setup shared by every Redis user of the workspace
//! (this crate's store, and the job queue of `embeddings-distributed`):
//! a URL parsed once, a lazy `ConnectionManager` with bounded timeouts, and
//! errors that never show the URL's password.

use std::fmt;
use std::time::Duration;

use embeddings_core::{Error, Result};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use crate::config::redact_url;

/// A Redis server, connected on first use and reconnected by redis-rs's
/// connection manager after the server went away. Cheap to share by
/// reference; `Debug` and errors show the URL with its password as `***`.
pub struct RedisConnection {
    client: redis::Client,
    url: String,
    password: Option<String>,
    timeout: Duration,
    conn: OnceCell<ConnectionManager>,
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConnection")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisConnection {
    /// The server at `url` (`redis://[user:password@]host:port/db`;
    /// `rediss://` with the `tls` feature). `what` names the setting in a
    /// configuration error (`cache.url`, `--queue`). Does not connect yet.
    pub fn new(url: &str, what: &str, timeout: Duration) -> Result<RedisConnection> {
        let redacted = redact_url(url);
        let password = redis::parse_redis_url(url).and_then(|u| u.password().map(str::to_owned));
        let client = redis::Client::open(url).map_err(|e| {
            let mut msg = e.to_string();
            if let Some(p) = password.as_deref().filter(|p| !p.is_empty()) {
                msg = msg.replace(p, "***");
            }
            Error::config(format!("`{what}` = {redacted:?}: {msg}"))
        })?;
        Ok(RedisConnection {
            client,
            url: redacted,
            password,
            timeout,
            conn: OnceCell::new(),
        })
    }

    /// The URL with its password replaced by `***`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `e`'s message with the password (if any) replaced by `***`,
    /// prefixed with the redacted URL.
    pub fn describe(&self, e: impl fmt::Display) -> String {
        let mut msg = e.to_string();
        if let Some(p) = self.password.as_deref().filter(|p| !p.is_empty()) {
            msg = msg.replace(p, "***");
        }
        format!("{}: {msg}", self.url)
    }

    /// The shared connection manager, made on first use; the error is a
    /// [`describe`](Self::describe)d message.
    pub async fn manager(&self) -> std::result::Result<ConnectionManager, String> {
        self.conn
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(10))
                    .set_max_delay(Duration::from_millis(200));
                ConnectionManager::new_with_config(self.client.clone(), config).await
            })
            .await
            .cloned()
            .map_err(|e| self.describe(e))
    }
}
