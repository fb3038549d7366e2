//! The HTTP side of registries: clients per TLS choice, base URLs, sending with
//! authentication and retries, and reading documents whole within their limits.

use super::auth::{
    api_host, auth_challenge, authority, on_registry_host, AuthCache, AuthTransport, Authenticator,
    Scope,
};
use super::capabilities::{Capabilities, DocumentKind};
use super::errors::{connection_error, registry_error_text};
use crate::files::size_text;
use crate::store::body::{read_limited, read_prefix, BodyError};
use crate::store::credentials::CredentialSource;
use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use reqwest::header::{self, HeaderMap};
use reqwest::{Method, Response, StatusCode, Url};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Which registries may be reached without verified TLS.
#[derive(Debug, Clone, Default)]
pub enum InsecureRegistries {
    #[default]
    None,
    All,
    Hosts(Vec<String>),
}

impl InsecureRegistries {
    pub fn allows(&self, registry: &str) -> bool {
        match self {
            InsecureRegistries::None => false,
            InsecureRegistries::All => true,
            InsecureRegistries::Hosts(hosts) => {
                hosts.iter().any(|h| h.eq_ignore_ascii_case(registry))
            }
        }
    }
}

#[derive(Clone)]
pub struct RegistryOptions {
    pub insecure: InsecureRegistries,
    pub credentials: CredentialSource,
    /// How many times a failed request is retried (429, 5xx, connection errors).
    pub retries: u32,
    /// First backoff delay; doubled on each retry.
    pub backoff: Duration,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            insecure: InsecureRegistries::None,
            credentials: CredentialSource::default(),
            retries: 5,
            backoff: Duration::from_millis(250),
        }
    }
}

/// Shared by every repository of every registry in one run: connection pools, what each host
/// has shown of itself, and auth tokens.
pub struct RegistryClient {
    /// Built on first use: a client loads the system's root certificates, which costs a
    /// command that never needs it (a layout, or only insecure registries) tens of ms.
    verified: OnceLock<Result<reqwest::Client, String>>,
    unverified: OnceLock<Result<reqwest::Client, String>>,
    pub(super) options: RegistryOptions,
    pub(super) capabilities: Capabilities,
    pub(super) auth: AuthCache,
}

fn http_client(accept_invalid_certs: bool) -> Result<reqwest::Client, String> {
    // Redirects (blob downloads sent to a CDN) are followed, a few at most, never from HTTPS
    // down to plain HTTP; reqwest drops the `Authorization` header on the way to another
    // host or port.
    let redirects = reqwest::redirect::Policy::custom(|attempt| {
        let downgrade = attempt.url().scheme() == "http"
            && attempt
                .previous()
                .last()
                .is_some_and(|from| from.scheme() == "https");
        if downgrade {
            attempt.error("a redirect from HTTPS to plain HTTP")
        } else if attempt.previous().len() > 5 {
            attempt.error("more than 5 redirects")
        } else {
            attempt.follow()
        }
    });
    reqwest::Client::builder()
        .user_agent(concat!("wharf/", env!("CARGO_PKG_VERSION")))
        .redirect(redirects)
        .connect_timeout(Duration::from_secs(15))
        .read_timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(16)
        .tls_danger_accept_invalid_certs(accept_invalid_certs)
        .build()
        .map_err(|e| format!("cannot start the HTTP client: {e}"))
}

/// A request body that can be sent again.
pub enum Body {
    Empty,
    Bytes(Bytes),
}

/// A response read to its end (or, for an error answer, to its limit).
pub struct Document {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When the request that got it was sent.
    pub sent: Instant,
}

impl Document {
    pub fn error(&self, registry: &str, what: &str) -> anyhow::Error {
        registry_error_text(
            self.status,
            &String::from_utf8_lossy(&self.body),
            registry,
            what,
        )
    }
}

impl RegistryClient {
    pub fn new(options: RegistryOptions) -> Result<RegistryClient> {
        Ok(RegistryClient {
            verified: OnceLock::new(),
            unverified: OnceLock::new(),
            options,
            capabilities: Capabilities::default(),
            auth: AuthCache::default(),
        })
    }

    /// The HTTP client for requests to `host`: TLS unverified only for a host marked insecure.
    pub fn http(&self, host: &str) -> Result<&reqwest::Client> {
        let client = if self.options.insecure.allows(host) {
            self.unverified.get_or_init(|| http_client(true))
        } else {
            self.verified.get_or_init(|| http_client(false))
        };
        client.as_ref().map_err(|e| anyhow!("{e}"))
    }

    /// The HTTP client for a request to `url` on behalf of `registry`.
    pub fn http_for(&self, registry: &str, url: &Url) -> Result<&reqwest::Client> {
        if on_registry_host(registry, url) {
            self.http(registry)
        } else {
            self.http(&authority(url))
        }
    }

    /// Authentication through this client's HTTP side, credentials and token cache.
    pub fn authenticator(&self) -> Authenticator<'_, Self> {
        Authenticator {
            transport: self,
            credentials: &self.options.credentials,
            cache: &self.auth,
        }
    }

    /// `https://HOST`, or for a registry the user allowed to be insecure, whichever of https
    /// (unverified) and plain http it answers on, probed once.
    pub async fn base_url(&self, registry: &str) -> Result<String> {
        let host = api_host(registry);
        if !self.options.insecure.allows(registry) {
            return Ok(format!("https://{host}"));
        }
        let capabilities = self.capabilities.host(registry);
        let scheme = capabilities
            .scheme
            .get_or_try_init(|| async {
                let probe = self
                    .http(registry)?
                    .get(format!("https://{host}/v2/"))
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                Ok::<_, anyhow::Error>(if probe.is_ok() { "https" } else { "http" })
            })
            .await?;
        Ok(format!("{scheme}://{host}"))
    }

    /// The URL of a request: a path on the registry, or an absolute URL it handed out (a
    /// `Link`, an upload `Location`).
    pub async fn url(&self, registry: &str, path_or_url: &str) -> Result<Url> {
        let text = if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            path_or_url.to_string()
        } else {
            format!("{}{path_or_url}", self.base_url(registry).await?)
        };
        Url::parse(&text).map_err(|e| {
            anyhow!(
                "{registry} handed out an invalid URL {}: {e}",
                crate::text::excerpt(&text, 200)
            )
        })
    }

    pub fn backoff(&self, attempt: u32, response: Option<&Response>) -> Duration {
        if let Some(after) = response.and_then(retry_after) {
            return after.min(Duration::from_secs(60));
        }
        let exp = self.options.backoff * 2u32.saturating_pow(attempt.min(6));
        // Jitter keeps concurrent uploads from retrying in lockstep.
        let jitter = (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos()
            % 1000) as u64;
        exp.min(Duration::from_secs(15))
            + Duration::from_micros(jitter * (exp.as_millis() as u64 / 4 + 1))
    }

    pub fn retries(&self) -> u32 {
        self.options.retries
    }

    /// Sends one request with the credentials `url` may carry, answering a 401 challenge
    /// once (only for the registry's own host: a challenge from elsewhere gets nothing).
    /// Never retried otherwise: callers decide whether the request may be repeated.
    pub async fn send_once(
        &self,
        registry: &str,
        method: Method,
        url: &Url,
        headers: HeaderMap,
        body: impl Fn() -> Option<reqwest::Body>,
        scope: &Scope<'_>,
    ) -> Result<reqwest::Result<Response>> {
        let mut authenticated = false;
        let own_host = on_registry_host(registry, url);
        loop {
            let mut request = self
                .http_for(registry, url)?
                .request(method.clone(), url.clone())
                .headers(headers.clone());
            if let Some(auth) = self.authenticator().cached_auth(registry, url, scope) {
                request = request.header(header::AUTHORIZATION, auth);
            }
            if let Some(body) = body() {
                request = request.body(body);
            }
            let sent = Instant::now();
            let result = request.send().await;
            if own_host && result.is_ok() {
                self.capabilities
                    .host(registry)
                    .record_round_trip(sent.elapsed());
            }
            match result {
                Ok(r)
                    if r.status() == StatusCode::UNAUTHORIZED
                        && !authenticated
                        && self.authenticator().may_authenticate(registry, url) =>
                {
                    let challenge = auth_challenge(&r);
                    self.authenticator()
                        .authenticate(registry, scope, challenge.as_deref())
                        .await?;
                    authenticated = true;
                }
                result => return Ok(result),
            }
        }
    }

    /// Sends a request with a replayable body: authenticates on 401, retries 429/5xx and
    /// connection failures with backoff. Returns whatever final response the registry gave.
    pub async fn send(
        &self,
        registry: &str,
        method: Method,
        path_or_url: &str,
        headers: HeaderMap,
        body: Body,
        scope: Scope<'_>,
    ) -> Result<Response> {
        let (response, _) = self
            .send_timed(registry, method, path_or_url, headers, body, scope)
            .await?;
        Ok(response)
    }

    /// [`RegistryClient::send`], also saying when the attempt that got the answer was sent.
    async fn send_timed(
        &self,
        registry: &str,
        method: Method,
        path_or_url: &str,
        headers: HeaderMap,
        body: Body,
        scope: Scope<'_>,
    ) -> Result<(Response, Instant)> {
        let url = self.url(registry, path_or_url).await?;
        let mut attempt = 0;
        loop {
            let sent = Instant::now();
            let result = self
                .send_once(
                    registry,
                    method.clone(),
                    &url,
                    headers.clone(),
                    || match &body {
                        Body::Empty => None,
                        Body::Bytes(b) => Some(b.clone().into()),
                    },
                    &scope,
                )
                .await?;
            match result {
                Ok(response)
                    if is_retryable(response.status()) && attempt < self.options.retries =>
                {
                    tokio::time::sleep(self.backoff(attempt, Some(&response))).await;
                    attempt += 1;
                }
                Ok(response) => return Ok((response, sent)),
                Err(e) if attempt < self.options.retries && is_transient(&e) => {
                    tokio::time::sleep(self.backoff(attempt, None)).await;
                    attempt += 1;
                }
                Err(e) => return Err(connection_error(registry, &method, url.as_str(), e)),
            }
        }
    }

    /// A GET whose body is read whole, retrying when the connection breaks mid-body: for
    /// small documents (manifests, tag lists, indexes) a complete status line is not enough.
    /// A successful answer larger than `kind`'s limit is an error naming `what` and the
    /// registry; of an error answer only the start is read.
    pub async fn get_document(
        &self,
        registry: &str,
        path_or_url: &str,
        headers: HeaderMap,
        scope: Scope<'_>,
        kind: DocumentKind,
        what: &str,
    ) -> Result<Document> {
        let mut attempt = 0;
        loop {
            let (response, sent) = self
                .send_timed(
                    registry,
                    Method::GET,
                    path_or_url,
                    headers.clone(),
                    Body::Empty,
                    scope.clone(),
                )
                .await?;
            let status = response.status();
            let response_headers = response.headers().clone();
            if !status.is_success() {
                let body = read_prefix(response, DocumentKind::Error.limit()).await;
                return Ok(Document {
                    status,
                    headers: response_headers,
                    body,
                    sent,
                });
            }
            match read_limited(response, kind.limit()).await {
                Ok(body) => {
                    return Ok(Document {
                        status,
                        headers: response_headers,
                        body,
                        sent,
                    })
                }
                Err(BodyError::TooLarge { limit }) => bail!(
                    "{what}: {registry} answered a {} larger than {}, the most wharf reads",
                    kind.describe(),
                    size_text(limit)
                ),
                Err(BodyError::Transport(_)) if attempt < self.options.retries => {
                    tokio::time::sleep(self.backoff(attempt, None)).await;
                    attempt += 1;
                }
                Err(BodyError::Transport(e)) => bail!(
                    "the connection to {registry} broke while reading {what}: {}",
                    connection_error(registry, &Method::GET, path_or_url, e)
                ),
            }
        }
    }
}

impl AuthTransport for RegistryClient {
    fn is_insecure(&self, host: &str) -> bool {
        self.options.insecure.allows(host)
    }

    fn http_for(&self, registry: &str, url: &Url) -> Result<&reqwest::Client> {
        RegistryClient::http_for(self, registry, url)
    }
}

pub fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

pub fn is_transient(e: &reqwest::Error) -> bool {
    e.is_connect() || e.is_timeout() || e.is_request() || e.is_body() || e.is_decode()
}

fn retry_after(response: &Response) -> Option<Duration> {
    let value = response.headers().get(header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_statuses() {
        assert!(is_retryable(StatusCode::TOO_MANY_REQUESTS));
        assert!(is_retryable(StatusCode::SERVICE_UNAVAILABLE));
        assert!(!is_retryable(StatusCode::BAD_REQUEST));
        assert!(!is_retryable(StatusCode::NOT_FOUND));
    }

    #[test]
    fn insecure_is_per_registry() {
        let hosts = InsecureRegistries::Hosts(vec!["127.0.0.1:5000".into()]);
        assert!(hosts.allows("127.0.0.1:5000"));
        assert!(!hosts.allows("ghcr.io"));
        assert!(!InsecureRegistries::None.allows("127.0.0.1:5000"));
    }
}
