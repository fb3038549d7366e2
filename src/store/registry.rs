//! A repository in a remote registry, over the OCI distribution API.
//!
//! This speaks HTTP itself (reqwest, the client oci-client is built on) rather than through
//! oci-client, because byte-for-byte, frugal, restartable transfers need what oci-client does not
//! expose: response headers (`Retry-After`, `Docker-Content-Digest`, `OCI-Subject`), a mount
//! answered with 202, upload bodies that can be reopened on retry, and per-registry TLS choices.

use super::credentials::{CredentialSource, Credentials};
use super::stream::integrity_error;
use super::{BlobSource, BlobStream, BlobTransfer, ManifestRef, OnBytes, Store};
use crate::oci::{media, Descriptor, Digest, RawManifest, Repository};
use anyhow::{anyhow, bail, Context, Result};
use async_trait::async_trait;
use base64::Engine;
use bytes::{Buf, Bytes, BytesMut};
use futures_util::StreamExt;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Which registries may be reached without verified TLS.
#[derive(Debug, Clone, Default)]
pub enum InsecureRegistries {
    #[default]
    None,
    All,
    Hosts(Vec<String>),
}

impl InsecureRegistries {
    fn allows(&self, registry: &str) -> bool {
        match self {
            InsecureRegistries::None => false,
            InsecureRegistries::All => true,
            InsecureRegistries::Hosts(hosts) => hosts.iter().any(|h| h == registry),
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

/// Shared by every repository of every registry in one run: connection pools, the scheme
/// each insecure registry answered on, and auth tokens.
pub struct RegistryClient {
    /// Built on first use: a client loads the system's root certificates, which costs a
    /// command that never needs it (a layout, or only insecure registries) tens of ms.
    verified: OnceLock<Result<reqwest::Client, String>>,
    unverified: OnceLock<Result<reqwest::Client, String>>,
    options: RegistryOptions,
    schemes: tokio::sync::Mutex<HashMap<String, &'static str>>,
    /// `(registry, scope)` → `Authorization` value; scope "" holds Basic credentials.
    auth: Mutex<HashMap<(String, String), HeaderValue>>,
}

fn http_client(accept_invalid_certs: bool) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .user_agent(concat!("wharf/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(15))
        .read_timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(16)
        .tls_danger_accept_invalid_certs(accept_invalid_certs)
        .build()
        .map_err(|e| format!("cannot start the HTTP client: {e}"))
}

/// The host an API request goes to (Docker Hub's API is not at `docker.io`).
fn api_host(registry: &str) -> &str {
    if registry == "docker.io" {
        "index.docker.io"
    } else {
        registry
    }
}

/// What a request needs permission for, as a token scope.
#[derive(Clone)]
struct Scope<'a> {
    repository: &'a str,
    push: bool,
    mount_from: Option<&'a str>,
}

impl Scope<'_> {
    fn scopes(&self) -> Vec<String> {
        let actions = if self.push { "pull,push" } else { "pull" };
        let mut scopes = vec![format!("repository:{}:{actions}", self.repository)];
        if let Some(from) = self.mount_from {
            scopes.push(format!("repository:{from}:pull"));
        }
        scopes
    }
    fn key(&self) -> String {
        self.scopes().join(" ")
    }
}

enum Body {
    Empty,
    Bytes(Bytes),
}

impl RegistryClient {
    pub fn new(options: RegistryOptions) -> Result<RegistryClient> {
        Ok(RegistryClient {
            verified: OnceLock::new(),
            unverified: OnceLock::new(),
            options,
            schemes: Default::default(),
            auth: Default::default(),
        })
    }

    fn http(&self, registry: &str) -> Result<&reqwest::Client> {
        let client = if self.options.insecure.allows(registry) {
            self.unverified.get_or_init(|| http_client(true))
        } else {
            self.verified.get_or_init(|| http_client(false))
        };
        client.as_ref().map_err(|e| anyhow!("{e}"))
    }

    /// `https://HOST`, or for a registry the user allowed to be insecure, whichever of https
    /// (unverified) and plain http it answers on, probed once.
    async fn base_url(&self, registry: &str) -> Result<String> {
        let host = api_host(registry);
        if !self.options.insecure.allows(registry) {
            return Ok(format!("https://{host}"));
        }
        let mut schemes = self.schemes.lock().await;
        if let Some(scheme) = schemes.get(registry) {
            return Ok(format!("{scheme}://{host}"));
        }
        let probe = self
            .http(registry)?
            .get(format!("https://{host}/v2/"))
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        let scheme = if probe.is_ok() { "https" } else { "http" };
        schemes.insert(registry.to_string(), scheme);
        Ok(format!("{scheme}://{host}"))
    }

    fn cached_auth(&self, registry: &str, scope: &Scope<'_>) -> Option<HeaderValue> {
        let auth = self.auth.lock().expect("auth cache lock");
        auth.get(&(registry.to_string(), scope.key()))
            .or_else(|| auth.get(&(registry.to_string(), String::new())))
            .or_else(|| {
                // A push token also allows pulls.
                let push = Scope {
                    push: true,
                    ..scope.clone()
                };
                auth.get(&(registry.to_string(), push.key()))
            })
            .cloned()
    }

    fn credentials(&self, registry: &str) -> Result<Option<Credentials>> {
        self.options.credentials.lookup(registry)
    }

    /// Answers a 401 challenge: Basic with the user's credentials, or a Bearer token from the
    /// registry's token service.
    async fn authenticate(
        &self,
        registry: &str,
        scope: &Scope<'_>,
        challenge: Option<&str>,
    ) -> Result<()> {
        let creds = self.credentials(registry)?;
        let challenge = challenge.unwrap_or("");
        let (kind, params) = parse_challenge(challenge);
        if kind.eq_ignore_ascii_case("basic") {
            let creds = creds.ok_or_else(|| no_credentials(registry))?;
            let value = basic_auth_value(&creds);
            self.auth
                .lock()
                .expect("auth cache lock")
                .insert((registry.to_string(), String::new()), value);
            return Ok(());
        }
        if !kind.eq_ignore_ascii_case("bearer") {
            bail!("{registry} asked for authentication wharf does not know ({challenge:?})");
        }
        let realm = params
            .get("realm")
            .ok_or_else(|| anyhow!("{registry} sent a Bearer challenge without a realm"))?;
        let mut url = reqwest::Url::parse(realm)
            .with_context(|| format!("{registry} sent an invalid token realm {realm:?}"))?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = params.get("service") {
                query.append_pair("service", service);
            }
            for s in scope.scopes() {
                query.append_pair("scope", &s);
            }
        }
        let mut request = self.http(registry)?.get(url);
        if let Some(c) = &creds {
            request = request.header(header::AUTHORIZATION, basic_auth_value(c));
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the token service of {registry}"))?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(match &creds {
                Some(c) => anyhow!(
                    "{registry} rejected the credentials of user {:?}: wrong username or password",
                    c.username
                ),
                None => no_credentials(registry),
            });
        }
        if !status.is_success() {
            bail!("the token service of {registry} answered {status}");
        }
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            token: Option<String>,
            access_token: Option<String>,
        }
        let answer: TokenAnswer = response
            .json()
            .await
            .with_context(|| format!("the token service of {registry} answered malformed JSON"))?;
        let token = answer
            .token
            .or(answer.access_token)
            .ok_or_else(|| anyhow!("the token service of {registry} returned no token"))?;
        let value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| anyhow!("the token service of {registry} returned an invalid token"))?;
        self.auth
            .lock()
            .expect("auth cache lock")
            .insert((registry.to_string(), scope.key()), value);
        Ok(())
    }

    fn backoff(&self, attempt: u32, response: Option<&Response>) -> Duration {
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

    /// Sends a request with a replayable body: authenticates on 401, retries 429/5xx and
    /// connection failures with backoff. Returns whatever final response the registry gave.
    async fn send(
        &self,
        registry: &str,
        method: Method,
        path_or_url: &str,
        headers: HeaderMap,
        body: Body,
        scope: Scope<'_>,
    ) -> Result<Response> {
        let mut attempt = 0;
        let mut authenticated = false;
        loop {
            let url = self.url(registry, path_or_url).await?;
            let mut request = self
                .http(registry)?
                .request(method.clone(), &url)
                .headers(headers.clone());
            if let Some(auth) = self.cached_auth(registry, &scope) {
                request = request.header(header::AUTHORIZATION, auth);
            }
            request = match &body {
                Body::Empty => request,
                Body::Bytes(b) => request.body(b.clone()),
            };
            match request.send().await {
                Ok(response) if response.status() == StatusCode::UNAUTHORIZED && !authenticated => {
                    let challenge = auth_challenge(&response);
                    self.authenticate(registry, &scope, challenge.as_deref())
                        .await?;
                    authenticated = true;
                }
                Ok(response)
                    if is_retryable(response.status()) && attempt < self.options.retries =>
                {
                    tokio::time::sleep(self.backoff(attempt, Some(&response))).await;
                    attempt += 1;
                }
                Ok(response) => return Ok(response),
                Err(e) if attempt < self.options.retries && is_transient(&e) => {
                    tokio::time::sleep(self.backoff(attempt, None)).await;
                    attempt += 1;
                }
                Err(e) => return Err(connection_error(registry, &method, &url, e)),
            }
        }
    }

    async fn url(&self, registry: &str, path_or_url: &str) -> Result<String> {
        if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            Ok(path_or_url.to_string())
        } else {
            Ok(format!("{}{path_or_url}", self.base_url(registry).await?))
        }
    }
}

fn basic_auth_value(c: &Credentials) -> HeaderValue {
    let raw = format!("{}:{}", c.username, c.secret.expose());
    let mut value = HeaderValue::from_str(&format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    ))
    .expect("base64 is a valid header value");
    value.set_sensitive(true);
    value
}

fn no_credentials(registry: &str) -> anyhow::Error {
    anyhow!(
        "{registry} requires authentication: run `docker login {registry}`, or pass \
         --registry-username with --registry-password-stdin (or set WHARF_REGISTRY_USERNAME and \
         WHARF_REGISTRY_PASSWORD)"
    )
}

/// Splits `Bearer realm="x",service="y"` into the scheme and its parameters.
fn parse_challenge(challenge: &str) -> (String, HashMap<String, String>) {
    let challenge = challenge.trim();
    let (kind, rest) = challenge.split_once(' ').unwrap_or((challenge, ""));
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            (&quoted[..end], quoted.get(end + 1..).unwrap_or(""))
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        params.insert(key, value.to_string());
        rest = remaining.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
    }
    (kind.to_string(), params)
}

fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

fn is_transient(e: &reqwest::Error) -> bool {
    e.is_connect() || e.is_timeout() || e.is_request() || e.is_body() || e.is_decode()
}

fn retry_after(response: &Response) -> Option<Duration> {
    let value = response.headers().get(header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

fn connection_error(
    registry: &str,
    method: &Method,
    url: &str,
    e: reqwest::Error,
) -> anyhow::Error {
    let mut cause = String::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    let cause = if cause.is_empty() {
        e.to_string()
    } else {
        cause
    };
    let hint = if url.starts_with("https://") && cause.to_lowercase().contains("certificate") {
        " (for a registry without trusted TLS, pass --insecure-registry HOST)"
    } else {
        ""
    };
    anyhow!("cannot reach registry {registry} ({method} {url}): {cause}{hint}")
}

/// The registry's own words about a failed request, from its JSON error body.
async fn registry_error(response: Response, registry: &str, what: &str) -> anyhow::Error {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    registry_error_text(status, &text, registry, what)
}

/// [`registry_error`] for a response whose body was already read.
fn registry_error_text(
    status: StatusCode,
    text: &str,
    registry: &str,
    what: &str,
) -> anyhow::Error {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorItem {
        code: Option<String>,
        message: Option<String>,
        detail: Option<serde_json::Value>,
    }
    let parsed = serde_json::from_str::<Errors>(text).ok();
    let codes: Vec<String> = parsed
        .iter()
        .flat_map(|e| e.errors.iter().filter_map(|i| i.code.clone()))
        .collect();
    let detail = match parsed {
        Some(e) if !e.errors.is_empty() => e
            .errors
            .iter()
            .map(|i| {
                let mut s = i.code.clone().unwrap_or_default();
                if let Some(m) = &i.message {
                    s.push_str(&format!(": {m}"));
                }
                match &i.detail {
                    Some(serde_json::Value::String(d)) if !d.is_empty() => {
                        s.push_str(&format!(" ({d})"))
                    }
                    Some(v) if !v.is_null() && v.to_string().len() < 200 => {
                        s.push_str(&format!(" ({v})"))
                    }
                    _ => {}
                }
                s
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => text
            .chars()
            .take(200)
            .collect::<String>()
            .trim()
            .to_string(),
    };
    let detail = if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    };
    let message = if status == StatusCode::UNAUTHORIZED {
        format!("{registry} refused {what}: 401 Unauthorized (wrong credentials, or no access to this repository){detail}")
    } else {
        format!("{registry} refused {what}: {status}{detail}")
    };
    anyhow::Error::new(RegistryError {
        status: status.as_u16(),
        codes,
        message,
    })
}

/// A request the registry answered with an error, with the distribution error codes it gave
/// (`MANIFEST_BLOB_UNKNOWN`, `NAME_UNKNOWN`, ...), so callers can react to specific ones.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RegistryError {
    pub status: u16,
    pub codes: Vec<String>,
    pub message: String,
}

impl RegistryError {
    /// Whether `err` is a registry's complaint that something a manifest references is
    /// missing: transient while a concurrent writer relinks the same blob.
    pub fn is_blob_unknown(err: &anyhow::Error) -> bool {
        err.chain().any(|e| {
            e.downcast_ref::<RegistryError>().is_some_and(|r| {
                r.codes.iter().any(|c| {
                    c == "MANIFEST_BLOB_UNKNOWN" || c == "BLOB_UNKNOWN" || c == "DIGEST_INVALID"
                })
            })
        })
    }
}

/// One repository of a registry.
pub struct RemoteRepository {
    client: Arc<RegistryClient>,
    repository: Repository,
    registry: String,
    name: String,
    /// Whether the registry answers the referrers API, learnt from the first call.
    referrers_api: tokio::sync::OnceCell<bool>,
    /// The piece size chunked uploads start at: a body limit one blob ran into (413) holds
    /// for the next ones too, which then do not hit it again.
    piece_size: AtomicUsize,
}

impl RemoteRepository {
    pub fn new(client: Arc<RegistryClient>, repository: Repository) -> RemoteRepository {
        let Repository::Registry { registry, name } = &repository else {
            panic!("RemoteRepository needs a registry repository");
        };
        RemoteRepository {
            registry: registry.clone(),
            name: name.clone(),
            client,
            repository,
            referrers_api: tokio::sync::OnceCell::new(),
            piece_size: AtomicUsize::new(CHUNK_SIZE),
        }
    }

    fn scope(&self, push: bool) -> Scope<'_> {
        Scope {
            repository: &self.name,
            push,
            mount_from: None,
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: HeaderMap,
        body: Body,
        push: bool,
    ) -> Result<Response> {
        self.client
            .send(
                &self.registry,
                method,
                path,
                headers,
                body,
                self.scope(push),
            )
            .await
    }

    /// A GET whose body is read whole, retrying when the connection breaks mid-body: for
    /// small documents (manifests, tag lists, indexes) a complete status line is not enough.
    async fn get_document(&self, path: &str, headers: HeaderMap) -> Result<Document> {
        let mut attempt = 0;
        loop {
            let response = self
                .send(Method::GET, path, headers.clone(), Body::Empty, false)
                .await?;
            let status = response.status();
            let response_headers = response.headers().clone();
            match response.bytes().await {
                Ok(body) => {
                    return Ok(Document {
                        status,
                        headers: response_headers,
                        body,
                    })
                }
                Err(e) if attempt < self.client.options.retries => {
                    let _ = e;
                    tokio::time::sleep(self.client.backoff(attempt, None)).await;
                    attempt += 1;
                }
                Err(e) => {
                    return Err(anyhow!(
                        "the connection to {} broke while reading {path}: {e}",
                        self.registry
                    ))
                }
            }
        }
    }

    fn manifest_path(&self, reference: ManifestRef<'_>) -> String {
        let r = match reference {
            ManifestRef::Tag(t) => t.to_string(),
            ManifestRef::Digest(d) => d.to_string(),
        };
        format!("/v2/{}/manifests/{r}", self.name)
    }

    fn accept_manifests() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static(media::MANIFEST_ACCEPT),
        );
        h
    }

    /// Starts an upload session, or mounts the blob from `from` (same registry). Returns
    /// `None` when the mount succeeded, else the session.
    async fn start_upload(
        &self,
        blob: &Descriptor,
        from: Option<&str>,
    ) -> Result<Option<UploadSession>> {
        let path = match from {
            Some(from) => format!(
                "/v2/{}/blobs/uploads/?mount={}&from={from}",
                self.name, blob.digest
            ),
            None => format!("/v2/{}/blobs/uploads/", self.name),
        };
        let scope = Scope {
            repository: &self.name,
            push: true,
            mount_from: from,
        };
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        let response = self
            .client
            .send(
                &self.registry,
                Method::POST,
                &path,
                headers,
                Body::Empty,
                scope,
            )
            .await?;
        match response.status() {
            StatusCode::CREATED if from.is_some() => Ok(None),
            StatusCode::ACCEPTED | StatusCode::CREATED => {
                let location = response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        anyhow!("{} started an upload without a Location", self.registry)
                    })?;
                let chunk_min_length = response
                    .headers()
                    .get("oci-chunk-min-length")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .filter(|&n| n > 0);
                Ok(Some(UploadSession {
                    location: self.absolute(location).await?,
                    chunk_min_length,
                }))
            }
            StatusCode::NOT_FOUND => Err(anyhow!(
                "repository {} does not exist and {} did not create it on push (create it first, \
                 e.g. `aws ecr create-repository` for ECR)",
                self.name,
                self.registry
            )),
            _ => Err(registry_error(
                response,
                &self.registry,
                &format!("an upload to {}", self.name),
            )
            .await),
        }
    }

    async fn absolute(&self, location: &str) -> Result<String> {
        if location.starts_with("http://") || location.starts_with("https://") {
            Ok(location.to_string())
        } else {
            Ok(format!(
                "{}{location}",
                self.client.base_url(&self.registry).await?
            ))
        }
    }

    /// One attempt at streaming a blob's bytes into an upload session.
    async fn upload_once(
        &self,
        location: &str,
        blob: &Descriptor,
        source: &dyn BlobSource,
        progress: Arc<UploadProgress>,
        integrity_failure: &Arc<Mutex<Option<String>>>,
    ) -> Result<std::result::Result<(), UploadFailure>> {
        let stream: BlobStream = source.open().await?;
        let failure = integrity_failure.clone();
        let mut streamed = 0u64;
        let counted = stream.map(move |item| {
            match &item {
                Ok(chunk) => {
                    streamed += chunk.len() as u64;
                    progress.reached(streamed);
                }
                Err(e) => {
                    if integrity_error(e).is_some() {
                        *failure.lock().expect("failure slot") = Some(e.to_string());
                    }
                }
            }
            item
        });
        let url = with_digest(location, &blob.digest);
        let mut request = self
            .client
            .http(&self.registry)?
            .put(&url)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, blob.size)
            .body(reqwest::Body::wrap_stream(counted));
        if let Some(auth) = self.client.cached_auth(&self.registry, &self.scope(true)) {
            request = request.header(header::AUTHORIZATION, auth);
        }
        let result = request.send().await;
        if let Some(msg) = integrity_failure.lock().expect("failure slot").take() {
            bail!("{msg}");
        }
        self.closing_put_outcome(result, location, blob, source)
            .await
    }

    /// What the PUT that ends an upload (with `?digest=`) came to: done, a failure worth
    /// another attempt (429/5xx, 401, connection trouble, 413 for a body too large), or an
    /// error.
    async fn closing_put_outcome(
        &self,
        result: reqwest::Result<Response>,
        location: &str,
        blob: &Descriptor,
        source: &dyn BlobSource,
    ) -> Result<std::result::Result<(), UploadFailure>> {
        match result {
            Ok(r) if r.status().is_success() => Ok(Ok(())),
            Ok(r)
                if is_retryable(r.status())
                    || r.status() == StatusCode::UNAUTHORIZED
                    || r.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Ok(Err(UploadFailure::Response(r)))
            }
            Ok(r) => {
                let err = registry_error(r, &self.registry, &format!("blob {}", blob.digest)).await;
                // The registry recomputed the digest of what it received (sources are not
                // hashed on the way out): the bytes at the source are not what they claim.
                let digest_refused = err.downcast_ref::<RegistryError>().is_some_and(|r| {
                    r.codes
                        .iter()
                        .any(|c| c == "DIGEST_INVALID" || c == "SIZE_INVALID")
                });
                if digest_refused {
                    return Err(anyhow!(
                        "{} does not match its descriptor: the registry computed another digest for what was read ({err})",
                        source.describe()
                    ));
                }
                Err(err)
            }
            Err(e) if is_transient(&e) => Ok(Err(UploadFailure::Transport(e))),
            Err(e) => Err(connection_error(&self.registry, &Method::PUT, location, e)),
        }
    }

    /// Uploads a blob in pieces, as the OCI distribution spec describes for chunked pushes:
    /// one `PATCH` per piece with its `Content-Range`, each to the `Location` the previous
    /// answer gave, then a `PUT ?digest=` without a body.
    ///
    /// This is the fallback for a body size limit in front of the registry (a 413 for the
    /// whole blob in one request, e.g. nginx's `client_max_body_size`) and for registries that
    /// ask for chunks of a minimum size (`OCI-Chunk-Min-Length`). At most one chunk is held in
    /// memory, so memory does not grow with the blob.
    ///
    /// Failures are handled per piece, keeping what the registry already accepted: a 413
    /// halves the piece size; a transient failure (429, 5xx, connection trouble) waits, then
    /// asks the registry how much it holds and resumes there. Those waits count against
    /// `attempt`, the blob's retry budget. When the session cannot be resumed, the answer is
    /// [`UploadFailure::Restart`] (already waited for and counted).
    async fn upload_chunked(
        &self,
        session: &UploadSession,
        blob: &Descriptor,
        source: &dyn BlobSource,
        progress: &UploadProgress,
        attempt: &mut u32,
    ) -> Result<std::result::Result<(), UploadFailure>> {
        let mut location = session.location.clone();
        let min_length = session.chunk_min_length.unwrap_or(0);
        let mut chunk_size = usize::try_from(min_length)
            .unwrap_or(usize::MAX)
            .max(self.piece_size.load(Ordering::Relaxed));
        let mut reader = ChunkReader {
            stream: source.open().await?,
            leftover: Bytes::new(),
        };
        // Bytes the registry has accepted, all from the start of the blob.
        let mut accepted = 0u64;
        // Read from the source but not accepted yet: the bytes from `accepted` on.
        let mut pending = Bytes::new();
        loop {
            if pending.is_empty() {
                let remaining = blob.size.saturating_sub(accepted);
                let want = usize::try_from(remaining)
                    .unwrap_or(usize::MAX)
                    .min(chunk_size);
                pending = match reader.read(want).await {
                    Ok(bytes) => bytes,
                    Err(e) if integrity_error(&e).is_some() => bail!("{e}"),
                    Err(e) => return Ok(Err(UploadFailure::Source(e))),
                };
                if pending.is_empty() {
                    break;
                }
            }
            let piece = pending.slice(..pending.len().min(chunk_size));
            let failure = match self.patch_piece(&location, accepted, &piece).await? {
                PatchOutcome::Accepted(next) => {
                    if let Some(next) = next {
                        location = next;
                    }
                    accepted += piece.len() as u64;
                    pending.advance(piece.len());
                    progress.reached(accepted);
                    continue;
                }
                PatchOutcome::TooLarge => {
                    // A body limit between us and the registry: send the rest in smaller
                    // pieces (what was accepted stays).
                    if piece.len() <= MIN_CHUNK_SIZE {
                        bail!(
                            "{} refused a {}-byte chunk of blob {} as too large (413 Payload \
                             Too Large): it, or a proxy in front of it, refuses even {} KiB \
                             request bodies; raise its body size limit (e.g. nginx \
                             client_max_body_size)",
                            self.registry,
                            piece.len(),
                            blob.digest,
                            MIN_CHUNK_SIZE / 1024
                        );
                    }
                    chunk_size = (piece.len() / 2).max(MIN_CHUNK_SIZE);
                    self.piece_size.fetch_min(chunk_size, Ordering::Relaxed);
                    continue;
                }
                PatchOutcome::Failed(failure) => failure,
            };
            if *attempt >= self.client.options.retries {
                return Ok(Err(failure));
            }
            let wait = match &failure {
                UploadFailure::Response(r) => self.client.backoff(*attempt, Some(r)),
                _ => self.client.backoff(*attempt, None),
            };
            drop(failure);
            tokio::time::sleep(wait).await;
            *attempt += 1;
            // The piece may have arrived in part, entirely, or not at all: the registry says
            // how much it holds. Resume there if those bytes are still at hand.
            let held = self.upload_status(&location).await?;
            match held {
                Some((next, held))
                    if held >= accepted && held - accepted <= pending.len() as u64 =>
                {
                    location = next;
                    pending.advance((held - accepted) as usize);
                    accepted = held;
                    progress.reached(accepted);
                }
                _ => return Ok(Err(UploadFailure::Restart)),
            }
        }
        let url = with_digest(&location, &blob.digest);
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        let result = self
            .upload_request(Method::PUT, &url, headers, Some(Bytes::new()))
            .await?;
        self.closing_put_outcome(result, &location, blob, source)
            .await
    }

    /// Sends one piece of a chunked upload, starting at byte `start` of the blob.
    async fn patch_piece(&self, location: &str, start: u64, piece: &Bytes) -> Result<PatchOutcome> {
        let end = start + piece.len() as u64 - 1;
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(piece.len()));
        headers.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("{start}-{end}")).expect("digits and a dash"),
        );
        let result = self
            .upload_request(Method::PATCH, location, headers, Some(piece.clone()))
            .await?;
        match result {
            Ok(r) if r.status().is_success() => {
                let next = match r
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                {
                    Some(next) => Some(self.absolute(next).await?),
                    None => None,
                };
                Ok(PatchOutcome::Accepted(next))
            }
            Ok(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => Ok(PatchOutcome::TooLarge),
            // 416: the registry holds another amount than we think; asking it is the cure
            // for that as much as for a lost answer.
            Ok(r)
                if is_retryable(r.status()) || r.status() == StatusCode::RANGE_NOT_SATISFIABLE =>
            {
                Ok(PatchOutcome::Failed(UploadFailure::Response(r)))
            }
            Ok(r) => Err(registry_error(
                r,
                &self.registry,
                &format!("bytes {start}-{end} of an upload to {}", self.name),
            )
            .await),
            Err(e) if is_transient(&e) => Ok(PatchOutcome::Failed(UploadFailure::Transport(e))),
            Err(e) => Err(connection_error(
                &self.registry,
                &Method::PATCH,
                location,
                e,
            )),
        }
    }

    /// How many bytes an upload session holds (`GET` on its location, answered `204` with
    /// `Range: 0-<last>`), with the location to continue at. `None` when the registry cannot
    /// say: the session is gone, or the answer is not a usable count.
    async fn upload_status(&self, location: &str) -> Result<Option<(String, u64)>> {
        let response = match self
            .upload_request(Method::GET, location, HeaderMap::new(), None)
            .await?
        {
            Ok(r) if r.status().is_success() => r,
            _ => return Ok(None),
        };
        let Some(held) = upload_range_len(response.headers()) else {
            return Ok(None);
        };
        let next = match response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
        {
            Some(next) => self.absolute(next).await?,
            None => location.to_string(),
        };
        Ok(Some((next, held)))
    }

    /// One request within an upload session, with its credentials, answering a 401 challenge
    /// once. Never retried here: whether an upload request may be repeated depends on what the
    /// registry kept, which the caller finds out.
    async fn upload_request(
        &self,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Option<Bytes>,
    ) -> Result<reqwest::Result<Response>> {
        let scope = self.scope(true);
        let mut authenticated = false;
        loop {
            let mut request = self
                .client
                .http(&self.registry)?
                .request(method.clone(), url)
                .headers(headers.clone());
            if let Some(auth) = self.client.cached_auth(&self.registry, &scope) {
                request = request.header(header::AUTHORIZATION, auth);
            }
            if let Some(body) = &body {
                request = request.body(body.clone());
            }
            match request.send().await {
                Ok(r) if r.status() == StatusCode::UNAUTHORIZED && !authenticated => {
                    let challenge = auth_challenge(&r);
                    self.client
                        .authenticate(&self.registry, &scope, challenge.as_deref())
                        .await?;
                    authenticated = true;
                }
                result => return Ok(result),
            }
        }
    }
}

/// The size of the first request body of a chunked upload: large enough that per-request
/// overhead does not matter, small enough to hold once per concurrent upload.
const CHUNK_SIZE: usize = 16 << 20;

/// The smallest piece a 413 makes a chunked upload shrink to; a registry refusing even this
/// is refused back with an error rather than sent thousands of tiny requests.
const MIN_CHUNK_SIZE: usize = 64 << 10;

/// An upload session the registry opened.
struct UploadSession {
    /// Absolute URL of the session.
    location: String,
    /// `OCI-Chunk-Min-Length`: the registry wants chunks (all but the last) at least this big.
    chunk_min_length: Option<u64>,
}

/// The `WWW-Authenticate` challenge of a 401 answer.
fn auth_challenge(response: &Response) -> Option<String> {
    response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `location` with the `digest` query parameter that closes an upload.
fn with_digest(location: &str, digest: &Digest) -> String {
    let separator = if location.contains('?') { '&' } else { '?' };
    format!("{location}{separator}digest={digest}")
}

/// The number of bytes an upload session holds, from the `Range: 0-<last>` of a status
/// answer. `None` for a missing or malformed header, and for `0-0`: distribution answers it
/// for an empty session and for one holding one byte alike.
fn upload_range_len(headers: &HeaderMap) -> Option<u64> {
    let range = headers.get(header::RANGE)?.to_str().ok()?.trim();
    let range = range.strip_prefix("bytes=").unwrap_or(range);
    let (start, last) = range.split_once('-')?;
    let last: u64 = last.trim().parse().ok()?;
    if start.trim() != "0" || last == 0 {
        return None;
    }
    Some(last + 1)
}

/// A blob's upload progress, reported as the furthest byte reached: bytes sent again (a
/// retry, a resumed piece, the switch to chunks) are not counted twice.
struct UploadProgress {
    on_bytes: OnBytes,
    reported: AtomicU64,
}

impl UploadProgress {
    fn new(on_bytes: OnBytes) -> UploadProgress {
        UploadProgress {
            on_bytes,
            reported: AtomicU64::new(0),
        }
    }

    /// The first `position` bytes of the blob have been sent.
    fn reached(&self, position: u64) {
        let before = self.reported.fetch_max(position, Ordering::Relaxed);
        if position > before {
            (self.on_bytes)(position - before);
        }
    }
}

/// Cuts a blob stream into pieces of a chosen size, holding no more than one piece plus the
/// unread rest of the stream's last item.
struct ChunkReader {
    stream: BlobStream,
    leftover: Bytes,
}

impl ChunkReader {
    /// The next `limit` bytes; fewer only at the end of the stream, none after it.
    async fn read(&mut self, limit: usize) -> std::io::Result<Bytes> {
        if limit == 0 {
            return Ok(Bytes::new());
        }
        if self.leftover.is_empty() {
            match self.stream.next().await {
                Some(item) => self.leftover = item?,
                None => return Ok(Bytes::new()),
            }
        }
        // A stream item holding the whole piece is sliced, not copied.
        if self.leftover.len() >= limit {
            return Ok(self.leftover.split_to(limit));
        }
        let mut piece = BytesMut::with_capacity(limit);
        loop {
            let take = self.leftover.len().min(limit - piece.len());
            piece.extend_from_slice(&self.leftover.split_to(take));
            if piece.len() == limit {
                break;
            }
            match self.stream.next().await {
                Some(item) => self.leftover = item?,
                None => break,
            }
        }
        Ok(piece.freeze())
    }
}

/// What became of one `PATCH` of a chunked upload.
enum PatchOutcome {
    /// Accepted; the registry's `Location` for the next request, when it gave one.
    Accepted(Option<String>),
    /// 413: the body was too large for the registry or a proxy in front of it.
    TooLarge,
    Failed(UploadFailure),
}

/// A response read to its end.
struct Document {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Document {
    fn error(&self, registry: &str, what: &str) -> anyhow::Error {
        registry_error_text(
            self.status,
            &String::from_utf8_lossy(&self.body),
            registry,
            what,
        )
    }
}

/// Why an upload attempt failed in a way another attempt may cure.
enum UploadFailure {
    Response(Response),
    Transport(reqwest::Error),
    /// Reading the source broke off (not an integrity failure: those are errors).
    Source(std::io::Error),
    /// A chunked upload lost its session and has already waited and counted the attempt:
    /// start a new session at once.
    Restart,
}

#[async_trait]
impl Store for RemoteRepository {
    fn repository(&self) -> &Repository {
        &self.repository
    }

    async fn resolve(&self, reference: ManifestRef<'_>) -> Result<Option<Descriptor>> {
        let path = self.manifest_path(reference);
        let response = self
            .send(
                Method::HEAD,
                &path,
                Self::accept_manifests(),
                Body::Empty,
                false,
            )
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => return Ok(None),
            s if s.is_success() => {}
            _ => {
                return Err(registry_error(
                    response,
                    &self.registry,
                    &format!("looking up {reference} in {}", self.name),
                )
                .await)
            }
        }
        let headers = response.headers();
        let digest = headers
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok());
        let media_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
            .filter(|m| media::is_manifest(m));
        let size = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        match (digest, media_type, size) {
            (Some(digest), Some(media_type), Some(size)) => {
                if let ManifestRef::Digest(wanted) = reference {
                    if &digest != wanted {
                        bail!(
                            "{} answered {digest} when asked for {wanted}",
                            self.registry
                        );
                    }
                }
                Ok(Some(Descriptor::new(&media_type, digest, size)))
            }
            // Some registries omit headers on HEAD: fetch the manifest instead.
            _ => Ok(self.get_manifest(reference).await?.map(|m| m.descriptor())),
        }
    }

    async fn get_manifest(&self, reference: ManifestRef<'_>) -> Result<Option<RawManifest>> {
        let path = self.manifest_path(reference);
        let doc = self.get_document(&path, Self::accept_manifests()).await?;
        match doc.status {
            StatusCode::NOT_FOUND => return Ok(None),
            s if s.is_success() => {}
            _ => {
                return Err(doc.error(
                    &self.registry,
                    &format!("reading {reference} in {}", self.name),
                ))
            }
        }
        let content_type = doc
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
        let bytes = doc.body;
        let manifest = RawManifest::new(bytes, content_type.as_deref())
            .with_context(|| format!("manifest {reference} in {}", self.repository))?;
        if let ManifestRef::Digest(wanted) = reference {
            if &manifest.digest != wanted {
                bail!(
                    "{} returned a manifest whose bytes hash to {} when asked for {wanted}",
                    self.registry,
                    manifest.digest
                );
            }
        }
        Ok(Some(manifest))
    }

    async fn put_manifest(&self, manifest: &RawManifest, tag: Option<&str>) -> Result<()> {
        let reference = match tag {
            Some(t) => ManifestRef::Tag(t),
            None => ManifestRef::Digest(&manifest.digest),
        };
        let response = self
            .put_manifest_request(manifest, reference, HeaderMap::new())
            .await?;
        self.check_manifest_put(response, manifest, reference).await
    }

    async fn put_manifest_if(
        &self,
        manifest: &RawManifest,
        tag: &str,
        expected: Option<&Digest>,
    ) -> Result<bool> {
        // Registries rarely honour conditional manifest writes; send the condition anyway
        // (412 means we lost) and let callers re-read afterwards (atomic_tags is false).
        let mut headers = HeaderMap::new();
        match expected {
            Some(d) => headers.insert(
                header::IF_MATCH,
                HeaderValue::from_str(&format!("\"{d}\""))?,
            ),
            None => headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*")),
        };
        let reference = ManifestRef::Tag(tag);
        let response = self
            .put_manifest_request(manifest, reference, headers)
            .await?;
        if response.status() == StatusCode::PRECONDITION_FAILED {
            return Ok(false);
        }
        self.check_manifest_put(response, manifest, reference)
            .await?;
        Ok(true)
    }

    fn atomic_tags(&self) -> bool {
        false
    }

    async fn blob_exists(&self, blob: &Descriptor) -> Result<bool> {
        let path = format!("/v2/{}/blobs/{}", self.name, blob.digest);
        let response = self
            .send(Method::HEAD, &path, HeaderMap::new(), Body::Empty, false)
            .await?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(registry_error(
                response,
                &self.registry,
                &format!("checking blob {}", blob.digest),
            )
            .await),
        }
    }

    async fn open_blob_raw(&self, blob: &Descriptor) -> Result<BlobStream> {
        let path = format!("/v2/{}/blobs/{}", self.name, blob.digest);
        let response = self
            .send(Method::GET, &path, HeaderMap::new(), Body::Empty, false)
            .await?;
        match response.status() {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => {
                bail!("blob {} is missing from {}", blob.digest, self.repository)
            }
            _ => {
                return Err(registry_error(
                    response,
                    &self.registry,
                    &format!("reading blob {}", blob.digest),
                )
                .await)
            }
        }
        let stream = response
            .bytes_stream()
            .map(|item| item.map_err(std::io::Error::other));
        Ok(Box::pin(stream))
    }

    async fn put_blob(
        &self,
        blob: &Descriptor,
        source: &dyn BlobSource,
        on_bytes: OnBytes,
    ) -> Result<BlobTransfer> {
        // Same registry, other repository: ask the registry to link the blob instead of
        // moving its bytes.
        let mount_from = match source.mount_from() {
            Some(Repository::Registry { registry, name })
                if registry == &self.registry && name != &self.name =>
            {
                Some(name.as_str())
            }
            _ => None,
        };
        let integrity_failure = Arc::new(Mutex::new(None));
        let progress = Arc::new(UploadProgress::new(on_bytes));
        let mut attempt = 0;
        let mut try_mount = mount_from.is_some();
        // Set when a body limit refused the blob in one request, or when the connection broke
        // under a large one: from then on, in chunks, so that a break costs one piece rather
        // than the whole blob.
        let mut in_pieces = false;
        loop {
            let session = match self
                .start_upload(blob, if try_mount { mount_from } else { None })
                .await?
            {
                None => return Ok(BlobTransfer::Mounted),
                Some(session) => session,
            };
            try_mount = false;
            let chunked = in_pieces || session.chunk_min_length.is_some_and(|min| blob.size > min);
            let outcome = if chunked {
                self.upload_chunked(&session, blob, source, &progress, &mut attempt)
                    .await?
            } else {
                self.upload_once(
                    &session.location,
                    blob,
                    source,
                    progress.clone(),
                    &integrity_failure,
                )
                .await?
            };
            let failure = match outcome {
                Ok(()) => return Ok(BlobTransfer::Uploaded),
                Err(UploadFailure::Restart) => continue,
                Err(UploadFailure::Response(r))
                    if r.status() == StatusCode::PAYLOAD_TOO_LARGE && !chunked =>
                {
                    // Not a fault to retry: the same request would be refused again. A
                    // fresh session, in case the refusal spoilt this one.
                    in_pieces = true;
                    continue;
                }
                Err(failure @ UploadFailure::Transport(_))
                    if !chunked && blob.size > CHUNK_SIZE as u64 =>
                {
                    in_pieces = true;
                    failure
                }
                Err(UploadFailure::Response(r)) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    return Err(registry_error(
                        r,
                        &self.registry,
                        &format!("the end of an upload of blob {}", blob.digest),
                    )
                    .await)
                }
                Err(failure) => failure,
            };
            if attempt >= self.client.options.retries {
                return Err(match failure {
                    UploadFailure::Response(r) => {
                        registry_error(
                            r,
                            &self.registry,
                            &format!("blob {} after {attempt} retries", blob.digest),
                        )
                        .await
                    }
                    UploadFailure::Transport(e) => {
                        connection_error(&self.registry, &Method::PUT, &session.location, e)
                    }
                    UploadFailure::Source(e) => {
                        anyhow!("cannot read {}: {e}", source.describe())
                    }
                    // Restarts never get here (see above); named for completeness.
                    UploadFailure::Restart => anyhow!(
                        "{} lost the upload session of blob {} after {attempt} retries",
                        self.registry,
                        blob.digest
                    ),
                });
            }
            let wait = match &failure {
                UploadFailure::Response(r) if r.status() == StatusCode::UNAUTHORIZED => {
                    let challenge = auth_challenge(r);
                    self.client
                        .authenticate(&self.registry, &self.scope(true), challenge.as_deref())
                        .await?;
                    Duration::ZERO
                }
                UploadFailure::Response(r) => self.client.backoff(attempt, Some(r)),
                _ => self.client.backoff(attempt, None),
            };
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn list_tags(&self) -> Result<Vec<String>> {
        let mut tags = Vec::new();
        let mut next = Some(format!("/v2/{}/tags/list", self.name));
        while let Some(path) = next.take() {
            let doc = self.get_document(&path, HeaderMap::new()).await?;
            match doc.status {
                StatusCode::NOT_FOUND => return Ok(Vec::new()),
                s if s.is_success() => {}
                _ => {
                    return Err(doc.error(&self.registry, &format!("listing tags of {}", self.name)))
                }
            }
            next = doc
                .headers
                .get(header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .map(|v| {
                    v.trim()
                        .trim_start_matches('<')
                        .trim_end_matches('>')
                        .to_string()
                });
            #[derive(serde::Deserialize)]
            struct TagList {
                tags: Option<Vec<String>>,
            }
            let list: TagList = serde_json::from_slice(&doc.body)
                .with_context(|| format!("{} answered a malformed tag list", self.registry))?;
            tags.extend(list.tags.unwrap_or_default());
        }
        tags.sort();
        tags.dedup();
        Ok(tags)
    }

    async fn referrers(&self, digest: &Digest) -> Result<Option<Vec<Descriptor>>> {
        if self.referrers_api.get() == Some(&false) {
            return Ok(None);
        }
        let path = format!("/v2/{}/referrers/{digest}", self.name);
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static(media::OCI_INDEX));
        let doc = self.get_document(&path, headers).await?;
        let status = doc.status;
        // A registry with the API answers 200 (an empty index when nothing refers to the
        // digest); anything else means no API.
        if !status.is_success() {
            let _ = self.referrers_api.set(false);
            return Ok(None);
        }
        let _ = self.referrers_api.set(true);
        let bytes = doc.body;
        let index: crate::oci::manifest::ImageIndex =
            serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{} answered a malformed referrers index for {digest}",
                    self.registry
                )
            })?;
        Ok(Some(index.manifests))
    }
}

impl RemoteRepository {
    async fn put_manifest_request(
        &self,
        manifest: &RawManifest,
        reference: ManifestRef<'_>,
        mut headers: HeaderMap,
    ) -> Result<Response> {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(&manifest.media_type)
                .map_err(|_| anyhow!("invalid media type {:?}", manifest.media_type))?,
        );
        let path = self.manifest_path(reference);
        self.send(
            Method::PUT,
            &path,
            headers,
            Body::Bytes(manifest.bytes.clone()),
            true,
        )
        .await
    }

    async fn check_manifest_put(
        &self,
        response: Response,
        manifest: &RawManifest,
        reference: ManifestRef<'_>,
    ) -> Result<()> {
        if !response.status().is_success() {
            let what = format!(
                "manifest {} ({}) as {reference} in {}",
                manifest.digest, manifest.media_type, self.name
            );
            return Err(registry_error(response, &self.registry, &what).await);
        }
        if let Some(stored) = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
        {
            if stored != manifest.digest.as_str() {
                bail!(
                    "{} stored manifest {} as {stored}: the registry rewrote it",
                    self.registry,
                    manifest.digest
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenge() {
        let (kind, p) = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(kind, "Bearer");
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["service"], "registry.example");
        assert_eq!(p["scope"], "repository:a/b:pull,push");
        let (kind, p) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(kind, "Basic");
        assert_eq!(p["realm"], "Registry Realm");
    }

    #[test]
    fn retryable_statuses() {
        assert!(is_retryable(StatusCode::TOO_MANY_REQUESTS));
        assert!(is_retryable(StatusCode::SERVICE_UNAVAILABLE));
        assert!(!is_retryable(StatusCode::BAD_REQUEST));
        assert!(!is_retryable(StatusCode::NOT_FOUND));
    }

    #[test]
    fn scopes_include_mount_source() {
        let s = Scope {
            repository: "a",
            push: true,
            mount_from: Some("b"),
        };
        assert_eq!(
            s.scopes(),
            vec!["repository:a:pull,push", "repository:b:pull"]
        );
    }

    #[test]
    fn upload_range_counts_held_bytes() {
        let range = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::RANGE, HeaderValue::from_str(v).unwrap());
            upload_range_len(&h)
        };
        assert_eq!(range("0-1048575"), Some(1 << 20));
        assert_eq!(range("bytes=0-99"), Some(100));
        // Empty or one byte: distribution says `0-0` for both.
        assert_eq!(range("0-0"), None);
        assert_eq!(range("5-99"), None);
        assert_eq!(range("garbage"), None);
        assert_eq!(upload_range_len(&HeaderMap::new()), None);
    }

    #[test]
    fn digest_joins_the_location_query() {
        let d = Digest::of(b"x");
        assert_eq!(
            with_digest("http://r/u", &d),
            format!("http://r/u?digest={d}")
        );
        assert_eq!(
            with_digest("http://r/u?_state=abc", &d),
            format!("http://r/u?_state=abc&digest={d}")
        );
    }

    #[tokio::test]
    async fn chunk_reader_cuts_any_stream_into_pieces() {
        let items: Vec<std::io::Result<Bytes>> = vec![
            Ok(Bytes::from_static(b"abc")),
            Ok(Bytes::new()),
            Ok(Bytes::from_static(b"defghij")),
            Ok(Bytes::from_static(b"k")),
        ];
        let mut reader = ChunkReader {
            stream: Box::pin(futures_util::stream::iter(items)),
            leftover: Bytes::new(),
        };
        let mut pieces = Vec::new();
        for limit in [2, 4, 3, 5, 5] {
            pieces.push(reader.read(limit).await.unwrap());
        }
        assert_eq!(pieces, ["ab", "cdef", "ghi", "jk", ""]);
        assert_eq!(reader.read(0).await.unwrap(), "");
    }

    #[test]
    fn progress_counts_bytes_sent_again_once() {
        let total = Arc::new(AtomicU64::new(0));
        let sink = total.clone();
        let progress = UploadProgress::new(Arc::new(move |n| {
            sink.fetch_add(n, Ordering::Relaxed);
        }));
        progress.reached(100);
        progress.reached(60); // a retry starting over
        progress.reached(100);
        progress.reached(150);
        assert_eq!(total.load(Ordering::Relaxed), 150);
    }

    #[test]
    fn insecure_is_per_registry() {
        let hosts = InsecureRegistries::Hosts(vec!["127.0.0.1:5000".into()]);
        assert!(hosts.allows("127.0.0.1:5000"));
        assert!(!hosts.allows("ghcr.io"));
        assert!(!InsecureRegistries::None.allows("127.0.0.1:5000"));
    }
}
