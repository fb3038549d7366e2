//! Authentication: answering a registry's 401 challenge (Basic, or a Bearer token from its
//! token service), caching what it gave per scope, and deciding which URLs may carry it.
//!
//! Credentials belong to one registry host. They go only to URLs on that host (an absolute
//! `Link` or upload `Location` elsewhere gets none), never over plain HTTP unless that host was
//! marked insecure, and to a token service (`realm`) on another host only over HTTPS unless
//! that host was marked insecure too.

use super::capabilities::DocumentKind;
use super::errors::registry_error;
use crate::store::body::{read_limited, read_prefix};
use crate::store::credentials::{CredentialSource, Credentials};
use crate::text;
use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use reqwest::header::{self, HeaderValue};
use reqwest::{Response, StatusCode, Url};
use std::collections::HashMap;
use std::sync::Mutex;

/// What a request needs permission for, as a token scope.
#[derive(Clone)]
pub struct Scope<'a> {
    pub repository: &'a str,
    pub push: bool,
    pub mount_from: Option<&'a str>,
}

impl Scope<'_> {
    pub fn scopes(&self) -> Vec<String> {
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

/// `(registry, scope)` → `Authorization` value; scope "" holds Basic credentials.
#[derive(Default)]
pub struct AuthCache(Mutex<HashMap<(String, String), HeaderValue>>);

impl AuthCache {
    fn get(&self, registry: &str, scope: &Scope<'_>) -> Option<HeaderValue> {
        let auth = self.0.lock().expect("auth cache lock");
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

    fn insert(&self, registry: &str, scope: String, value: HeaderValue) {
        self.0
            .lock()
            .expect("auth cache lock")
            .insert((registry.to_string(), scope), value);
    }
}

/// The host an API request goes to (Docker Hub's API is not at `docker.io`).
pub fn api_host(registry: &str) -> &str {
    if registry == "docker.io" {
        "index.docker.io"
    } else {
        registry
    }
}

/// `HOST` or `HOST:PORT` of a URL, the port only when it is not the scheme's default: the
/// form `--insecure-registry` takes.
pub fn authority(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// Whether `url` is on `registry`'s own host: same host name, same port (a registry named
/// without a port is on the scheme's default one).
pub fn on_registry_host(registry: &str, url: &Url) -> bool {
    let own = api_host(registry);
    let (host, port) = match own.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => (h, p.parse::<u16>().ok()),
        _ => (own, None),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let url_host = url
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    url_host.eq_ignore_ascii_case(host)
        && match port {
            Some(p) => url.port_or_known_default() == Some(p),
            None => url.port().is_none(),
        }
}

/// What authentication needs of the HTTP side, which the registry client provides: whether a
/// host was marked insecure, and the HTTP client (TLS verified or not) for a URL.
pub trait AuthTransport {
    /// Whether `host` (`HOST` or `HOST:PORT`) was marked insecure: plain HTTP allowed.
    fn is_insecure(&self, host: &str) -> bool;
    /// The HTTP client for a request to `url` on behalf of `registry`.
    fn http_for(&self, registry: &str, url: &Url) -> Result<&reqwest::Client>;
}

/// Authentication for one run: the user's credentials, the cache of what registries gave for
/// them, and the HTTP side to ask token services through.
pub struct Authenticator<'a, T: AuthTransport> {
    pub transport: &'a T,
    pub credentials: &'a CredentialSource,
    pub cache: &'a AuthCache,
}

impl<T: AuthTransport> Authenticator<'_, T> {
    /// Whether a request to `url` may carry `registry`'s credentials: it is on the registry's
    /// own host, over HTTPS or over plain HTTP to a host marked insecure.
    pub fn may_authenticate(&self, registry: &str, url: &Url) -> bool {
        on_registry_host(registry, url)
            && (url.scheme() == "https"
                || (url.scheme() == "http" && self.transport.is_insecure(registry)))
    }

    /// The `Authorization` value to send to `url` for `scope`, if any.
    pub fn cached_auth(&self, registry: &str, url: &Url, scope: &Scope<'_>) -> Option<HeaderValue> {
        if !self.may_authenticate(registry, url) {
            return None;
        }
        self.cache.get(registry, scope)
    }

    /// Answers a 401 challenge: Basic with the user's credentials, or a Bearer token from the
    /// registry's token service (asked with the user's password, or with an identity token
    /// exchanged in an OAuth2 refresh-token grant).
    pub async fn authenticate(
        &self,
        registry: &str,
        scope: &Scope<'_>,
        challenge: Option<&str>,
    ) -> Result<()> {
        let found = self.credentials.lookup(registry, scope.repository)?;
        let challenge = challenge.unwrap_or("");
        let (kind, params) = parse_challenge(challenge);
        if kind.eq_ignore_ascii_case("basic") {
            let found = found.ok_or_else(|| no_credentials(registry))?;
            if found.credentials.refresh_token().is_some() {
                bail!(
                    "{registry} asks for a username and password (Basic authentication), but \
                     its credentials are an identity token, which only a token service takes: \
                     log in to {registry} with a username and password"
                );
            }
            // Credentials for a repository namespace serve this scope only.
            let cache_scope = if found.host_wide {
                String::new()
            } else {
                scope.key()
            };
            self.cache
                .insert(registry, cache_scope, basic_auth_value(&found.credentials));
            return Ok(());
        }
        if !kind.eq_ignore_ascii_case("bearer") {
            bail!(
                "{registry} asked for authentication wharf does not know ({})",
                text::excerpt(challenge, 100)
            );
        }
        let creds = found.map(|f| f.credentials);
        let realm = params
            .get("realm")
            .ok_or_else(|| anyhow!("{registry} sent a Bearer challenge without a realm"))?;
        let shown_realm = text::excerpt(realm, 200);
        let url = Url::parse(realm)
            .with_context(|| format!("{registry} sent an invalid token realm {shown_realm}"))?;
        let realm_host = authority(&url);
        let plain_http_allowed = if on_registry_host(registry, &url) {
            self.transport.is_insecure(registry)
        } else {
            self.transport.is_insecure(&realm_host)
        };
        match url.scheme() {
            "https" => {}
            "http" if plain_http_allowed => {}
            // Anonymous tokens carry nothing of the user's; credentials never go in clear.
            "http" if creds.is_none() => {}
            "http" => bail!(
                "{registry} sends token requests to {shown_realm} over plain HTTP: wharf does \
                 not send credentials there (if {realm_host} is a trusted host without TLS, \
                 pass --insecure-registry {realm_host})"
            ),
            other => bail!("{registry} sent a token realm with scheme {other:?}: {shown_realm}"),
        }
        let service = params.get("service").map(String::as_str);
        let token = match creds.as_ref().and_then(|c| c.refresh_token()) {
            Some(refresh_token) => {
                self.token_from_refresh_token(registry, &url, service, scope, refresh_token)
                    .await?
            }
            None => {
                self.token_with_password(registry, url, service, scope, creds.as_ref())
                    .await?
            }
        };
        let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| anyhow!("the token service of {registry} returned an invalid token"))?;
        value.set_sensitive(true);
        self.cache.insert(registry, scope.key(), value);
        Ok(())
    }

    /// A token asked for with `GET realm?service=…&scope=…`, with the user's password as Basic
    /// credentials if there is one (distribution's token protocol).
    async fn token_with_password(
        &self,
        registry: &str,
        mut realm: Url,
        service: Option<&str>,
        scope: &Scope<'_>,
        creds: Option<&Credentials>,
    ) -> Result<String> {
        {
            let mut query = realm.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            for s in scope.scopes() {
                query.append_pair("scope", &s);
            }
        }
        let realm_host = authority(&realm);
        let mut request = self.transport.http_for(registry, &realm)?.get(realm);
        if let Some(c) = creds {
            request = request.header(header::AUTHORIZATION, basic_auth_value(c));
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the token service of {registry}"))?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(match creds {
                Some(c) => anyhow!(
                    "{registry} rejected the credentials of user {:?}: wrong username or password",
                    c.username
                ),
                None => no_credentials(registry),
            });
        }
        if !status.is_success() {
            return Err(
                registry_error(response, &realm_host, &format!("a token for {registry}")).await,
            );
        }
        read_token_answer(response, registry, &realm_host).await
    }

    /// A token for an identity token: an OAuth2 refresh-token grant, `POST`ed to the realm as
    /// a form (distribution's OAuth2 token specification, what docker does), never sent as a
    /// Basic password.
    async fn token_from_refresh_token(
        &self,
        registry: &str,
        realm: &Url,
        service: Option<&str>,
        scope: &Scope<'_>,
        refresh_token: &str,
    ) -> Result<String> {
        let realm_host = authority(realm);
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", refresh_token)
            .append_pair("service", service.unwrap_or_default())
            // One `scope` field, its scopes separated by spaces, as the specification has it.
            .append_pair("scope", &scope.scopes().join(" "))
            .append_pair("client_id", OAUTH_CLIENT_ID)
            .finish();
        let response = self
            .transport
            .http_for(registry, realm)?
            .post(realm.clone())
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            )
            .header(header::CONTENT_LENGTH, HeaderValue::from(form.len()))
            // A body that cannot be sent twice: a 307 or 308 would otherwise carry the refresh
            // token on to wherever it points; the client hands such an answer back instead.
            .body(reqwest::Body::wrap_stream(futures_util::stream::once(
                async move { Ok::<_, std::io::Error>(form) },
            )))
            .send()
            .await
            .with_context(|| format!("cannot reach the token service of {registry}"))?;
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(|l| text::excerpt(l, 200))
                .unwrap_or_default();
            bail!(
                "the token service of {registry} ({realm_host}) redirects the identity token \
                 ({status} to {location}): wharf sends it to the realm {registry} named only"
            );
        }
        if status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED {
            bail!(
                "the token service of {registry} ({realm_host}) does not take identity tokens \
                 (its OAuth2 endpoint answered {status}): log in to {registry} with a username \
                 and password instead"
            );
        }
        if status.is_client_error() {
            let body = read_prefix(response, DocumentKind::Error.limit()).await;
            return Err(anyhow!(
                "the token service of {registry} ({realm_host}) refused its identity token \
                 ({status}{}): it may have expired or been revoked; log in to {registry} again",
                oauth_error_detail(&body)
            ));
        }
        if !status.is_success() {
            return Err(
                registry_error(response, &realm_host, &format!("a token for {registry}")).await,
            );
        }
        read_token_answer(response, registry, &realm_host).await
    }
}

/// The `client_id` wharf names itself with in OAuth2 requests: the specification requires
/// one, registered or not, for the token service's audit.
const OAUTH_CLIENT_ID: &str = "wharf";

/// `: invalid_grant (the refresh token expired)` from an OAuth2 error answer (RFC 6749
/// 5.2), escaped; empty when the answer is not one.
fn oauth_error_detail(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct OAuthError {
        error: String,
        error_description: Option<String>,
    }
    match serde_json::from_slice::<OAuthError>(body) {
        Ok(e) => match e.error_description {
            Some(d) => format!(
                ": {} ({})",
                text::excerpt(&e.error, 64),
                text::excerpt(&d, 200)
            ),
            None => format!(": {}", text::excerpt(&e.error, 64)),
        },
        Err(_) => String::new(),
    }
}

/// The token of a token service's answer (`token`, or OAuth2's `access_token`), read within
/// the token answer's limit.
async fn read_token_answer(response: Response, registry: &str, realm_host: &str) -> Result<String> {
    let body = read_limited(response, DocumentKind::Token.limit())
        .await
        .map_err(|e| {
            anyhow!("the token answer of {realm_host} for {registry} is unreadable: {e}")
        })?;
    #[derive(serde::Deserialize)]
    struct TokenAnswer {
        token: Option<String>,
        access_token: Option<String>,
    }
    let answer: TokenAnswer = serde_json::from_slice(&body)
        .with_context(|| format!("the token service of {registry} answered malformed JSON"))?;
    answer
        .token
        .or(answer.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| anyhow!("the token service of {registry} returned no token"))
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
        "{registry} requires authentication: run `docker login {registry}` (or `podman \
         login`), list it in \
         --registry-auth-file, or pass --registry-username with --registry-password-stdin \
         (WHARF_REGISTRY_USERNAME/_PASSWORD) if it is the registry the command works on, \
         --source-registry-username (WHARF_SOURCE_REGISTRY_USERNAME/_PASSWORD) if it is \
         mirror's SRC"
    )
}

/// Splits `Bearer realm="x",service="y"` into the scheme and its parameters.
pub fn parse_challenge(challenge: &str) -> (String, HashMap<String, String>) {
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

/// The `WWW-Authenticate` challenge of a 401 answer.
pub fn auth_challenge(response: &Response) -> Option<String> {
    response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
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
    fn registry_host_is_host_and_port() {
        let url = |u: &str| Url::parse(u).unwrap();
        assert!(on_registry_host("ghcr.io", &url("https://ghcr.io/v2/x")));
        assert!(on_registry_host(
            "GHCR.io",
            &url("https://ghcr.io:443/v2/x")
        ));
        assert!(on_registry_host(
            "ghcr.io:443",
            &url("https://ghcr.io/v2/x")
        ));
        assert!(!on_registry_host(
            "ghcr.io",
            &url("https://ghcr.io:8443/v2/x")
        ));
        assert!(!on_registry_host(
            "ghcr.io",
            &url("https://ghcr.io.evil.example/v2/x")
        ));
        assert!(on_registry_host(
            "127.0.0.1:5000",
            &url("http://127.0.0.1:5000/u")
        ));
        assert!(!on_registry_host(
            "127.0.0.1:5000",
            &url("http://127.0.0.1:5001/u")
        ));
        assert!(!on_registry_host(
            "localhost:5000",
            &url("http://127.0.0.1:5000/u")
        ));
        assert!(on_registry_host(
            "docker.io",
            &url("https://index.docker.io/v2/")
        ));
        assert!(on_registry_host(
            "[::1]:5000",
            &url("http://[::1]:5000/v2/")
        ));
        assert_eq!(authority(&url("http://127.0.0.1:5001/t")), "127.0.0.1:5001");
        assert_eq!(
            authority(&url("https://auth.docker.io/token")),
            "auth.docker.io"
        );
    }
}
