//! Fulcio: a short-lived signing certificate for an ephemeral key, in exchange for an OIDC
//! token (`POST /api/v2/signingCert`).

use anyhow::{anyhow, bail, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Deserialize;

/// The certificate chain Fulcio issued, leaf first, as PEM.
pub struct IssuedChain {
    pub certificates: Vec<String>,
}

pub async fn request_certificate(
    http: &reqwest::Client,
    fulcio_url: &str,
    token: &str,
    public_key_pem: &str,
    proof_of_possession: &[u8],
) -> Result<IssuedChain> {
    let url = format!("{}/api/v2/signingCert", fulcio_url.trim_end_matches('/'));
    let body = serde_json::json!({
        "credentials": {"oidcIdentityToken": token},
        "publicKeyRequest": {
            "publicKey": {"algorithm": "ECDSA", "content": public_key_pem},
            "proofOfPossession": B64.encode(proof_of_possession),
        },
    });
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Answer {
        signed_certificate_embedded_sct: Option<Signed>,
        signed_certificate_detached_sct: Option<Signed>,
    }
    #[derive(Deserialize)]
    struct Signed {
        chain: Chain,
    }
    #[derive(Deserialize)]
    struct Chain {
        certificates: Vec<String>,
    }
    let service = format!("Fulcio at {fulcio_url}");
    let answer: Answer = super::post_json(
        http,
        &url,
        &body,
        &service,
        "refused the certificate request",
    )
    .await?;
    if answer.signed_certificate_detached_sct.is_some() {
        bail!("Fulcio at {fulcio_url} returned a detached SCT; wharf needs certificates with embedded SCTs");
    }
    let signed = answer
        .signed_certificate_embedded_sct
        .ok_or_else(|| anyhow!("Fulcio at {fulcio_url} returned no certificate"))?;
    if signed.chain.certificates.is_empty() {
        bail!("Fulcio at {fulcio_url} returned an empty chain");
    }
    Ok(IssuedChain {
        certificates: signed.chain.certificates,
    })
}
