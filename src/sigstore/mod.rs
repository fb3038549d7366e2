//! Sigstore: OIDC tokens, Fulcio certificates and the claims they carry, Rekor transparency
//! log entries, checkpoints and inclusion proofs, RFC 3161 timestamps, bundles, trust roots
//! and where a command gets its trust root (a file or TUF). The primitives; deciding whether
//! a signature counts is the `verify` layer's job.
//!
//! sigstore-rs 0.15 cannot sign against a custom Fulcio/Rekor, insists on an `email` claim
//! (GitHub tokens have none) and skips SET and inclusion-proof checks when verifying, so wharf
//! speaks these small JSON protocols itself and verifies certificates, SCTs, SETs, proofs,
//! checkpoints and timestamps with RustCrypto's formats and aws-lc-rs's signatures.

pub mod bundle;
pub mod cert;
pub mod checkpoint;
pub mod claims;
pub mod fulcio;
pub mod merkle;
pub mod oidc;
pub mod pem;
pub mod pubkey;
pub mod rekor;
pub mod trust;
pub mod trust_source;
pub mod tsa;
pub mod tuf;
pub mod x509;

/// The public-good Sigstore instance.
pub const PUBLIC_FULCIO_URL: &str = "https://fulcio.sigstore.dev";
pub const PUBLIC_REKOR_URL: &str = "https://rekor.sigstore.dev";

/// The HTTP client for Fulcio and Rekor.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .user_agent(concat!("wharf/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(15))
        .timeout(std::time::Duration::from_secs(60))
        .build()?)
}

/// POSTs `body` as JSON to `url` and returns the answer's JSON, decoded as `T`. `service`
/// names the server in errors ("Fulcio at URL"), `refusal` what a non-2xx answer means.
pub(crate) async fn post_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
    service: &str,
    refusal: &str,
) -> anyhow::Result<T> {
    let response = send(http.post(url).json(body), service).await?;
    read_json(response, service, refusal).await
}

/// GETs `url` and returns the answer's JSON, decoded as `T` (see [`post_json`]).
pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    service: &str,
    refusal: &str,
) -> anyhow::Result<T> {
    let response = send(http.get(url), service).await?;
    read_json(response, service, refusal).await
}

/// Sends a request to `service`.
pub(crate) async fn send(
    request: reqwest::RequestBuilder,
    service: &str,
) -> anyhow::Result<reqwest::Response> {
    use anyhow::Context;
    request
        .send()
        .await
        .with_context(|| format!("cannot reach {service}"))
}

/// The JSON of a 2xx answer of `service`, decoded as `T`, read up to [`ANSWER_LIMIT`];
/// any other answer is an error saying `refusal` and quoting the start of its body.
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    service: &str,
    refusal: &str,
) -> anyhow::Result<T> {
    use anyhow::Context;
    let status = response.status();
    if !status.is_success() {
        let body = crate::store::body::read_prefix(response, ERROR_LIMIT).await;
        anyhow::bail!(
            "{service} {refusal}: {status}: {}",
            crate::text::excerpt(&String::from_utf8_lossy(&body), 300)
        );
    }
    let body = crate::store::body::read_limited(response, ANSWER_LIMIT)
        .await
        .map_err(|e| anyhow::anyhow!("the answer of {service} is unreadable: {e}"))?;
    serde_json::from_slice(&body).with_context(|| format!("{service} answered malformed JSON"))
}

/// The most read of a Fulcio or Rekor answer (a certificate chain, a log entry with its
/// proof: a few KiB), and of an error answer, of which only the start is shown.
const ANSWER_LIMIT: u64 = 1 << 20;
const ERROR_LIMIT: u64 = 64 << 10;
