//! Typed errors shared by every provider and layer.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::time::Duration;

/// The result type of this workspace.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in terms a caller can act on.
///
/// Layers decide what to do from the kind alone (retry, wait, give up); they
/// never look at a provider's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The configuration is invalid (bad key, bad value, missing setting).
    InvalidConfig,
    /// No provider of that name is registered; the message lists those that are.
    ProviderNotFound,
    /// The request was refused because of its input (empty text, too many inputs, ...).
    InvalidInput,
    /// The credentials were missing or refused.
    Authentication,
    /// The credentials are valid but may not do this.
    PermissionDenied,
    /// The model (or route) does not exist on the server.
    NotFound,
    /// Too many requests or tokens: wait and try again.
    RateLimited,
    /// The account's quota or credit is spent: waiting does not help.
    QuotaExceeded,
    /// An input is longer than the model accepts.
    ContextLengthExceeded,
    /// The request took too long.
    Timeout,
    /// The server could not be reached or the connection broke.
    Connection,
    /// The server is overloaded or failing (5xx).
    Unavailable,
    /// The server answered with something that is not a valid, complete answer.
    InvalidResponse,
    /// A vector of another dimension than expected.
    DimensionMismatch,
    /// The work was cancelled.
    Cancelled,
    /// A bug or an unexpected state in this library.
    Internal,
}

impl ErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: [ErrorKind; 16] = [
        ErrorKind::InvalidConfig,
        ErrorKind::ProviderNotFound,
        ErrorKind::InvalidInput,
        ErrorKind::Authentication,
        ErrorKind::PermissionDenied,
        ErrorKind::NotFound,
        ErrorKind::RateLimited,
        ErrorKind::QuotaExceeded,
        ErrorKind::ContextLengthExceeded,
        ErrorKind::Timeout,
        ErrorKind::Connection,
        ErrorKind::Unavailable,
        ErrorKind::InvalidResponse,
        ErrorKind::DimensionMismatch,
        ErrorKind::Cancelled,
        ErrorKind::Internal,
    ];

    /// Whether an error of this kind may succeed when tried again.
    pub const fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::RateLimited
                | ErrorKind::Timeout
                | ErrorKind::Connection
                | ErrorKind::Unavailable
        )
    }

    /// A short, stable, snake_case name (used in metrics labels and CLI messages).
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidConfig => "invalid_config",
            ErrorKind::ProviderNotFound => "provider_not_found",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Authentication => "authentication",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::NotFound => "not_found",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::QuotaExceeded => "quota_exceeded",
            ErrorKind::ContextLengthExceeded => "context_length_exceeded",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connection => "connection",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::InvalidResponse => "invalid_response",
            ErrorKind::DimensionMismatch => "dimension_mismatch",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Internal => "internal",
        }
    }

    /// Parses the name given by [`ErrorKind::as_str`].
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error from a provider, a layer, or the configuration.
///
/// `Display` reads `<kind>: [<provider>: ]<message>[ (HTTP <status>)]`. The
/// message never holds an API key: providers build it from the status and a
/// short excerpt of the server's answer.
pub struct Error {
    kind: ErrorKind,
    message: String,
    provider: Option<Cow<'static, str>>,
    status: Option<u16>,
    retry_after: Option<Duration>,
    retryable: Option<bool>,
    attempts: Option<u32>,
    inputs: Option<Range<usize>>,
    source: Option<Source>,
}

impl Error {
    /// An error of `kind` with a human-readable message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            provider: None,
            status: None,
            retry_after: None,
            retryable: None,
            attempts: None,
            inputs: None,
            source: None,
        }
    }

    /// Shorthand for [`ErrorKind::InvalidConfig`].
    pub fn config(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidConfig, message)
    }

    /// Shorthand for [`ErrorKind::InvalidInput`].
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidInput, message)
    }

    /// Shorthand for [`ErrorKind::InvalidResponse`].
    pub fn invalid_response(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidResponse, message)
    }

    /// Names the provider the error came from.
    pub fn with_provider(mut self, provider: impl Into<Cow<'static, str>>) -> Self {
        self.provider = Some(provider.into());
        self
    }

    /// Records the HTTP status of the answer.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Records how long the server asked us to wait before trying again.
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = Some(retry_after);
        self
    }

    /// Overrides whether the error is retryable (for example from the
    /// server's `x-should-retry` header).
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.retryable = Some(retryable);
        self
    }

    /// Records how many attempts were made before giving up.
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = Some(attempts);
        self
    }

    /// Records the range of the request's inputs this error is about
    /// (`i..i + 1` for one input). The batch layer turns a sub-request's
    /// range into the caller's indices.
    pub fn with_inputs(mut self, inputs: Range<usize>) -> Self {
        self.inputs = Some(inputs);
        self
    }

    /// Shifts the recorded input range by `offset` (a sub-request starting
    /// at input `offset` of the caller's request); without a range, the
    /// whole sub-request `offset..offset + len` is recorded.
    pub fn offset_inputs(mut self, offset: usize, len: usize) -> Self {
        self.inputs = Some(match self.inputs.take() {
            Some(r) => r.start + offset..r.end + offset,
            None => offset..offset + len,
        });
        self
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl Into<Source>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Replaces the message (keeping kind, status and the rest).
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The human-readable message (without kind and provider).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The provider the error came from, when known.
    pub fn provider(&self) -> Option<&str> {
        self.provider.as_deref()
    }

    /// The HTTP status of the answer, when there was one.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// How long the server asked us to wait, when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// How many attempts were made, when a retry layer gave up.
    pub fn attempts(&self) -> Option<u32> {
        self.attempts
    }

    /// The range of the request's inputs the error is about, when known.
    pub fn inputs(&self) -> Option<Range<usize>> {
        self.inputs.clone()
    }

    /// Whether trying again may succeed: the kind decides
    /// ([`ErrorKind::is_retryable`]) unless the server said otherwise.
    pub fn is_retryable(&self) -> bool {
        self.retryable.unwrap_or(self.kind.is_retryable())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.kind)?;
        if let Some(p) = &self.provider {
            write!(f, "{p}: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(s) = self.status {
            write!(f, " (HTTP {s})")?;
        }
        if let Some(a) = self.attempts {
            write!(f, " after {a} attempt{}", if a == 1 { "" } else { "s" })?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(p) = &self.provider {
            d.field("provider", p);
        }
        if let Some(s) = self.status {
            d.field("status", &s);
        }
        if let Some(r) = self.retry_after {
            d.field("retry_after", &r);
        }
        if let Some(a) = self.attempts {
            d.field("attempts", &a);
        }
        if let Some(r) = &self.inputs {
            d.field("inputs", r);
        }
        if let Some(s) = &self.source {
            d.field("source", &s.to_string());
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_kinds_are_exactly_the_transient_ones() {
        let retryable: Vec<_> = ErrorKind::ALL
            .into_iter()
            .filter(|k| k.is_retryable())
            .collect();
        assert_eq!(
            retryable,
            [
                ErrorKind::RateLimited,
                ErrorKind::Timeout,
                ErrorKind::Connection,
                ErrorKind::Unavailable
            ]
        );
    }

    #[test]
    fn server_can_override_retryability() {
        let e = Error::new(ErrorKind::InvalidInput, "x").with_retryable(true);
        assert!(e.is_retryable());
        let e = Error::new(ErrorKind::Unavailable, "x").with_retryable(false);
        assert!(!e.is_retryable());
    }

    #[test]
    fn display_names_kind_provider_status_and_attempts() {
        let e = Error::new(ErrorKind::RateLimited, "slow down")
            .with_provider("openai")
            .with_status(429)
            .with_attempts(3)
            .with_retry_after(Duration::from_secs(2));
        assert_eq!(
            e.to_string(),
            "rate_limited: openai: slow down (HTTP 429) after 3 attempts"
        );
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
    }

    #[test]
    fn input_ranges_are_shifted_into_the_callers_indices() {
        let e = Error::invalid_input("x")
            .with_inputs(2..3)
            .offset_inputs(10, 5);
        assert_eq!(e.inputs(), Some(12..13));
        let e = Error::invalid_input("x").offset_inputs(10, 5);
        assert_eq!(e.inputs(), Some(10..15));
        assert!(format!("{e:?}").contains("inputs: 10..15"));
    }

    #[test]
    fn kind_names_round_trip() {
        for k in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_name(k.as_str()), Some(k));
        }
        assert_eq!(ErrorKind::from_name("nope"), None);
    }
}
