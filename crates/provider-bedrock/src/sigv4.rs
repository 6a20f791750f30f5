//! AWS credentials and the one function that signs a request (Signature
//! Version 4, with the `aws-sigv4` crate).

use std::fmt;
use std::time::SystemTime;

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use embeddings_core::{Error, ErrorKind, ExposeSecret, Result, SecretString};

/// The environment variable of the access key id.
pub const ENV_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
/// The environment variable of the secret access key.
pub const ENV_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
/// The environment variable of the session token (temporary credentials).
pub const ENV_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";

/// An access key id, its secret and, for temporary credentials, a session
/// token. `Debug` shows none of them.
#[derive(Clone)]
pub struct AwsCredentials {
    access_key_id: String,
    secret_access_key: SecretString,
    session_token: Option<SecretString>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &"[redacted]")
            .field("secret_access_key", &"[redacted]")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

impl AwsCredentials {
    /// Credentials from their parts.
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: SecretString,
        session_token: Option<SecretString>,
    ) -> Self {
        AwsCredentials {
            access_key_id: access_key_id.into(),
            secret_access_key,
            session_token: session_token.filter(|t| !t.expose_secret().is_empty()),
        }
    }

    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and (optionally)
    /// `AWS_SESSION_TOKEN`; `None` unless both of the first two are set.
    pub fn from_env() -> Option<Self> {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let id = get(ENV_ACCESS_KEY_ID)?;
        let secret = get(ENV_SECRET_ACCESS_KEY)?;
        Some(AwsCredentials::new(
            id.trim(),
            SecretString::from(secret.trim().to_owned()),
            get(ENV_SESSION_TOKEN).map(|t| SecretString::from(t.trim().to_owned())),
        ))
    }

    /// The access key id.
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// Whether there is a session token.
    pub fn has_session_token(&self) -> bool {
        self.session_token.is_some()
    }

    /// The secrets (the secret key, the session token), for masking.
    pub(crate) fn secrets(&self) -> impl Iterator<Item = &SecretString> {
        std::iter::once(&self.secret_access_key).chain(self.session_token.as_ref())
    }
}

/// A header the signature adds to the request.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedHeader {
    /// The lower-case name (`authorization`, `x-amz-date`, `x-amz-security-token`).
    pub name: &'static str,
    /// The value.
    pub value: String,
    /// Whether the value is a credential (to be sent marked sensitive).
    pub sensitive: bool,
}

impl fmt::Debug for SignedHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = if self.sensitive {
            "[redacted]"
        } else {
            &self.value
        };
        write!(f, "{}: {value}", self.name)
    }
}

/// Signs a request with SigV4 (`AWS4-HMAC-SHA256`, the signature in the
/// `Authorization` header): `url` as it goes on the wire (already
/// percent-encoded), every header in `headers` signed (with `host`
/// derived from `url` when absent), the SHA-256 of `body`, the
/// credentials' session token signed as `x-amz-security-token`. Returns
/// the headers to add (`x-amz-date`, `authorization`, and
/// `x-amz-security-token` with a session token).
///
/// This is the function the provider signs every request with; its tests
/// reproduce the published signatures of AWS's SigV4 test suite.
///
/// `aws-sigv4` logs the canonical request (which holds the session token)
/// at trace level: signing runs with tracing switched off, so that no
/// subscriber ever sees it.
#[allow(clippy::too_many_arguments)]
pub fn sign_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    credentials: &AwsCredentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<Vec<SignedHeader>> {
    let fail = |what: &str, e: &dyn fmt::Display| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("SigV4 signing: {what}: {e}"),
        )
    };
    let identity = aws_credential_types::Credentials::new(
        credentials.access_key_id.clone(),
        credentials.secret_access_key.expose_secret().to_owned(),
        credentials
            .session_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned()),
        None,
        "embeddings-bedrock",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| fail("parameters", &e))?
        .into();
    let request = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| fail("the request", &e))?;
    let output =
        tracing::dispatcher::with_default(&tracing::Dispatch::none(), || sign(request, &params))
            .map_err(|e| fail("signing", &e))?;
    let (instructions, _signature) = output.into_parts();
    let (headers, _params) = instructions.into_parts();
    Ok(headers
        .into_iter()
        .map(|h| SignedHeader {
            name: h.name(),
            value: h.value().to_owned(),
            sensitive: h.sensitive()
                || h.name().eq_ignore_ascii_case("authorization")
                || h.name().eq_ignore_ascii_case("x-amz-security-token"),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    //! AWS's published SigV4 test suite ("aws-sig-v4-test-suite", the
    //! `.req` / `.authz` pairs of Amazon's Signature Version 4 test suite,
    //! documented at docs.aws.amazon.com/general/latest/gr/signature-v4-test-suite.html):
    //! the suite's credentials (`AKIDEXAMPLE` /
    //! `wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY`), region `us-east-1`,
    //! service `service`, time 2015-08-30T12:36:00Z, and the expected
    //! `Authorization` header of each case, embedded here as test data.

    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    pub(crate) const SUITE_KEY_ID: &str = "AKIDEXAMPLE";
    pub(crate) const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    /// The suite's example session token (post-sts-token).
    pub(crate) const SUITE_TOKEN: &str = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";

    /// 2015-08-30T12:36:00Z.
    fn suite_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    }

    struct Case {
        name: &'static str,
        method: &'static str,
        url: &'static str,
        headers: &'static [(&'static str, &'static str)],
        body: &'static [u8],
        token: bool,
        authorization: &'static str,
    }

    const HOST: (&str, &str) = ("Host", "example.amazonaws.com");
    const SCOPE: &str =
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request";

    fn cases() -> Vec<Case> {
        vec![
            Case {
                name: "get-vanilla",
                method: "GET",
                url: "https://example.amazonaws.com/",
                headers: &[HOST],
                body: b"",
                token: false,
                authorization: "SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            },
            Case {
                name: "get-vanilla-query-order-key-case",
                method: "GET",
                url: "https://example.amazonaws.com/?Param2=value2&Param1=value1",
                headers: &[HOST],
                body: b"",
                token: false,
                authorization: "SignedHeaders=host;x-amz-date, Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
            },
            Case {
                name: "post-vanilla",
                method: "POST",
                url: "https://example.amazonaws.com/",
                headers: &[HOST],
                body: b"",
                token: false,
                authorization: "SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
            },
            Case {
                name: "post-vanilla-query",
                method: "POST",
                url: "https://example.amazonaws.com/?Param1=value1",
                headers: &[HOST],
                body: b"",
                token: false,
                authorization: "SignedHeaders=host;x-amz-date, Signature=28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
            },
            Case {
                name: "post-header-key-case",
                method: "POST",
                url: "https://example.amazonaws.com/",
                headers: &[HOST, ("My-Header1", "value1")],
                body: b"",
                token: false,
                authorization: "SignedHeaders=host;my-header1;x-amz-date, Signature=c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c",
            },
            Case {
                name: "post-x-www-form-urlencoded",
                method: "POST",
                url: "https://example.amazonaws.com/",
                headers: &[("Content-Type", "application/x-www-form-urlencoded"), HOST],
                body: b"Param1=value1",
                token: false,
                authorization: "SignedHeaders=content-type;host;x-amz-date, Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
            },
            Case {
                name: "post-sts-token/post-sts-header-before",
                method: "POST",
                url: "https://example.amazonaws.com/",
                headers: &[HOST],
                body: b"",
                token: true,
                authorization: "SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead",
            },
        ]
    }

    pub(crate) fn suite_credentials(token: bool) -> AwsCredentials {
        AwsCredentials::new(
            SUITE_KEY_ID,
            SUITE_SECRET.to_owned().into(),
            token.then(|| SUITE_TOKEN.to_owned().into()),
        )
    }

    #[test]
    fn the_signing_path_reproduces_the_published_suite_signatures() {
        for c in cases() {
            let signed = sign_request(
                c.method,
                c.url,
                c.headers,
                c.body,
                &suite_credentials(c.token),
                "us-east-1",
                "service",
                suite_time(),
            )
            .unwrap();
            let get = |n: &str| {
                signed
                    .iter()
                    .find(|h| h.name == n)
                    .map(|h| h.value.as_str())
            };
            assert_eq!(
                get("authorization"),
                Some(format!("{SCOPE}, {}", c.authorization).as_str()),
                "{}",
                c.name
            );
            assert_eq!(get("x-amz-date"), Some("20150830T123600Z"), "{}", c.name);
            assert_eq!(
                get("x-amz-security-token"),
                c.token.then_some(SUITE_TOKEN),
                "{}",
                c.name
            );
        }
    }

    #[test]
    fn host_is_derived_from_the_url_and_the_signature_depends_on_everything() {
        let creds = suite_credentials(false);
        let auth = |url: &str, headers: &[(&str, &str)], body: &[u8], region: &str| {
            sign_request(
                "POST",
                url,
                headers,
                body,
                &creds,
                region,
                "service",
                suite_time(),
            )
            .unwrap()
            .into_iter()
            .find(|h| h.name == "authorization")
            .unwrap()
            .value
        };
        // post-vanilla without an explicit Host: the same signature.
        let vanilla = auth("https://example.amazonaws.com/", &[], b"", "us-east-1");
        assert!(
            vanilla.ends_with("5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b")
        );
        for other in [
            auth("https://example.amazonaws.com/", &[], b"x", "us-east-1"),
            auth("https://example.amazonaws.com/", &[], b"", "eu-west-1"),
            auth("https://example.amazonaws.com:8443/", &[], b"", "us-east-1"),
            auth("https://example.amazonaws.com/a", &[], b"", "us-east-1"),
        ] {
            assert_ne!(other, vanilla);
        }
    }

    #[test]
    fn debug_shows_no_credential() {
        let c = suite_credentials(true);
        let signed = sign_request(
            "GET",
            "https://example.amazonaws.com/",
            &[],
            b"",
            &c,
            "us-east-1",
            "service",
            suite_time(),
        )
        .unwrap();
        let text = format!("{c:?} {signed:?}");
        assert!(
            !text.contains(SUITE_SECRET)
                && !text.contains("AQoDYXdz")
                && !text.contains(SUITE_KEY_ID),
            "{text}"
        );
        assert!(text.contains("x-amz-date: 20150830T123600Z"), "{text}");
        assert_eq!(c.secrets().count(), 2);
    }
}
