//! `wharf verify`: fail-closed verification of cosign tag-scheme signatures, by digest.
//!
//! A manifest passes only if it exists and at least one signature on its `.sig` verifies under
//! the policy and signs exactly that manifest's digest. Every other outcome is an error that
//! says which check failed, for which manifest.

use super::sign::targets;
use crate::cosign::payload::SimpleSigning;
use crate::cosign::sigmanifest::{
    self, BUNDLE_ANNOTATION, SIGNATURE_ANNOTATION, SIMPLESIGNING_MEDIA_TYPE,
};
use crate::oci::{Descriptor, Digest, Manifest, Platform};
use crate::sign::{keys, verify_signature};
use crate::store::{ManifestRef, Store};
use anyhow::{anyhow, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use p256::PublicKey;
use serde::Serialize;

/// Who must have signed.
pub enum Policy {
    Key(PublicKey),
}

pub struct VerifyRequest {
    pub digest: Digest,
    pub recursive: bool,
    /// Accept signatures without transparency-log evidence.
    pub ignore_tlog: bool,
    pub jobs: usize,
}

#[derive(Debug, Serialize)]
pub struct VerifiedManifest {
    pub digest: String,
    pub platform: Option<String>,
    /// The verified Simple Signing payloads, as signed.
    pub payloads: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub repository: String,
    pub verified: Vec<VerifiedManifest>,
    pub checks: Vec<String>,
}

/// Why one signature layer did not count, most specific first.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Rejection {
    /// Verifies, but signs another manifest: a `.sig` copied from elsewhere.
    OtherDigest(String),
    /// Verifies, but carries no transparency-log evidence while it is required.
    NoTlog,
    /// The payload blob's bytes do not match the layer's digest.
    PayloadAltered(String),
    /// The signature does not verify under the key.
    NotVerified,
    /// The signature or payload cannot be decoded at all.
    Malformed(String),
}

const MAX_PAYLOAD: u64 = 1 << 20;

pub async fn verify(
    store: &dyn Store,
    policy: &Policy,
    request: &VerifyRequest,
) -> Result<VerifyReport> {
    let targets = targets(store, &request.digest, request.recursive, request.jobs).await?;
    let verified: Vec<VerifiedManifest> = stream::iter(targets)
        .map(|(digest, platform)| async move {
            let payloads = verify_manifest(
                store,
                policy,
                &digest,
                platform.as_ref(),
                request.ignore_tlog,
            )
            .await?;
            Ok::<_, anyhow::Error>(VerifiedManifest {
                digest: digest.to_string(),
                platform: platform.map(|p| p.to_string()),
                payloads,
            })
        })
        .buffered(request.jobs.max(1))
        .try_collect()
        .await?;
    let mut checks = vec![
        "the image manifest exists and was looked up by digest".to_string(),
        "the cosign claims were validated (the payload signs exactly this digest)".to_string(),
        "the signatures were verified against the specified public key".to_string(),
    ];
    if request.ignore_tlog {
        checks
            .push("transparency log evidence was NOT checked (--insecure-ignore-tlog)".to_string());
    }
    Ok(VerifyReport {
        repository: store.repository().to_string(),
        verified,
        checks,
    })
}

fn describe(digest: &Digest, platform: Option<&Platform>) -> String {
    match platform {
        Some(p) => format!("{digest} ({p})"),
        None => digest.to_string(),
    }
}

async fn verify_manifest(
    store: &dyn Store,
    policy: &Policy,
    digest: &Digest,
    platform: Option<&Platform>,
    ignore_tlog: bool,
) -> Result<Vec<serde_json::Value>> {
    let what = describe(digest, platform);
    let repo = store.repository();
    let tag = sigmanifest::signature_tag(digest);
    let Some(raw) = store.get_manifest(ManifestRef::Tag(&tag)).await? else {
        return Err(anyhow!(
            "no signatures for {what} in {repo}: there is no {tag}"
        ));
    };
    let layers = match raw.parse() {
        Ok(Manifest::Image(m)) => m.layers,
        Ok(Manifest::Index(_)) => {
            return Err(anyhow!(
                "malformed signature manifest {tag} for {what}: it is an index"
            ))
        }
        Err(e) => {
            return Err(anyhow!(
                "malformed signature manifest {tag} for {what}: {e:#}"
            ))
        }
    };
    let signatures: Vec<&Descriptor> = layers
        .iter()
        .filter(|l| l.media_type == SIMPLESIGNING_MEDIA_TYPE)
        .collect();
    if signatures.is_empty() {
        return Err(anyhow!(
            "no signatures for {what} in {repo}: {tag} holds no signature layers"
        ));
    }
    let mut payloads = Vec::new();
    let mut rejections = Vec::new();
    for layer in signatures {
        match check_layer(store, policy, digest, layer, ignore_tlog).await? {
            Ok(payload) => payloads.push(payload),
            Err(r) => rejections.push(r),
        }
    }
    if !payloads.is_empty() {
        return Ok(payloads);
    }
    rejections.sort();
    let n = rejections.len();
    let fingerprint = match policy {
        Policy::Key(k) => keys::fingerprint(k),
    };
    Err(match rejections.remove(0) {
        Rejection::OtherDigest(other) => anyhow!(
            "signature for another image on {what}: {tag} verifies but signs {other}, not {digest} (a signature copied from another image?)"
        ),
        Rejection::NoTlog => anyhow!(
            "signature on {what} has no transparency log bundle; pass --insecure-ignore-tlog to accept signatures made with --tlog-upload=false"
        ),
        Rejection::PayloadAltered(detail) => anyhow!("tampered signature payload on {what}: {detail}"),
        Rejection::NotVerified => anyhow!(
            "no valid signature on {what}: none of the {n} signature(s) in {tag} verifies under the key {fingerprint} (wrong key, or the payload or signature was altered)"
        ),
        Rejection::Malformed(detail) => anyhow!("signature invalid on {what}: {detail}"),
    })
}

/// Checks one signature layer. Outer `Err`: the store failed; inner: this layer does not count.
async fn check_layer(
    store: &dyn Store,
    policy: &Policy,
    digest: &Digest,
    layer: &Descriptor,
    ignore_tlog: bool,
) -> Result<std::result::Result<serde_json::Value, Rejection>> {
    let Some(signature_b64) = layer.annotation(SIGNATURE_ANNOTATION) else {
        return Ok(Err(Rejection::Malformed(
            "a signature layer has no signature annotation".into(),
        )));
    };
    let Ok(signature) = B64.decode(signature_b64.trim()) else {
        return Ok(Err(Rejection::Malformed(
            "a signature annotation is not base64".into(),
        )));
    };
    if layer.size > MAX_PAYLOAD {
        return Ok(Err(Rejection::Malformed(format!(
            "a payload is {} bytes, too large to be a signature payload",
            layer.size
        ))));
    }
    let payload = match store.open_blob(layer).await {
        Ok(stream) => match stream.map_ok(|b| b.to_vec()).try_concat().await {
            Ok(bytes) => bytes,
            Err(e) => return Ok(Err(Rejection::PayloadAltered(e.to_string()))),
        },
        Err(e) => return Ok(Err(Rejection::PayloadAltered(format!("{e:#}")))),
    };
    match policy {
        Policy::Key(key) => {
            if verify_signature(key, &payload, &signature).is_err() {
                return Ok(Err(Rejection::NotVerified));
            }
        }
    }
    let parsed = match SimpleSigning::parse(&payload) {
        Ok(p) => p,
        Err(e) => return Ok(Err(Rejection::Malformed(format!("{e:#}")))),
    };
    if parsed.signed_digest() != digest.as_str() {
        return Ok(Err(Rejection::OtherDigest(
            parsed.signed_digest().to_string(),
        )));
    }
    if !ignore_tlog {
        if layer.annotation(BUNDLE_ANNOTATION).is_none() {
            return Ok(Err(Rejection::NoTlog));
        }
        return Err(anyhow!(
            "the signature on {digest} carries a transparency log bundle, which this version of wharf cannot verify yet; pass --insecure-ignore-tlog to rely on the key alone"
        ));
    }
    Ok(Ok(serde_json::from_slice(&payload).expect("parsed above")))
}
