//! `wharf verify`: fail-closed verification of cosign tag-scheme signatures, by digest.
//!
//! A manifest passes only if it exists and at least one signature on its `.sig` satisfies the
//! policy (a key, or a certificate identity and issuer), has the required transparency-log
//! evidence, and signs exactly that manifest's digest. Otherwise the error names the most
//! specific check that failed, for which manifest.

use super::attach::{read_tag_layers, TagLayers};
use super::bundles::{check_bundle, find_bundles, BundleFormat};
use super::sign::targets;
use crate::cosign::payload::SimpleSigning;
use crate::cosign::sigmanifest::{
    self, BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, SIGNATURE_ANNOTATION, SIMPLESIGNING_MEDIA_TYPE,
};
use crate::oci::{Descriptor, Digest, Platform};
use crate::sign::{keys, verify_signature};
use crate::sigstore::bundle::SIGN_PREDICATE_TYPE;
use crate::sigstore::cert::{verify_chain, verify_embedded_sct, IdentityPolicy, SigningCert};
use crate::sigstore::rekor::Bundle;
use crate::sigstore::trust::TrustRoot;
use crate::store::{integrity_error, read_small_blob, Store};
use anyhow::{anyhow, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use p256::pkcs8::EncodePublicKey;
use p256::PublicKey;
use serde::Serialize;

/// Who must have signed.
pub enum Policy {
    Key(PublicKey),
    /// Keyless: a Fulcio certificate for this identity and issuer.
    Identity(IdentityPolicy),
}

pub struct VerifyRequest {
    pub digest: Digest,
    pub recursive: bool,
    /// Accept signatures without transparency-log evidence.
    pub ignore_tlog: bool,
    /// Rekor and CT log keys, Fulcio CAs.
    pub trust: TrustRoot,
    /// Which storage schemes count: cosign's tags, Sigstore bundle referrers, or either.
    pub accept: BundleFormat,
    pub jobs: usize,
}

impl VerifyRequest {
    /// The same checks, for another manifest.
    pub fn for_digest(&self, digest: &Digest, recursive: bool) -> VerifyRequest {
        VerifyRequest {
            digest: digest.clone(),
            recursive,
            ignore_tlog: self.ignore_tlog,
            trust: self.trust.clone(),
            accept: self.accept,
            jobs: self.jobs,
        }
    }
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

/// Why one signature layer did not count. Lower rank = more specific, reported first: "it is
/// signed by the right key but for another image" tells more than "some layer is garbled".
pub(crate) struct Rejection {
    pub(crate) rank: u8,
    pub(crate) message: String,
}

pub(crate) fn reject(rank: u8, message: impl Into<String>) -> Rejection {
    Rejection {
        rank,
        message: message.into(),
    }
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
            let payloads =
                verify_manifest(store, policy, request, &digest, platform.as_ref()).await?;
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
    ];
    match policy {
        Policy::Key(_) => {
            checks.push("the signatures were verified against the specified public key".into())
        }
        Policy::Identity(_) => {
            checks.push(
                "the certificate chains to a trusted Fulcio CA and carries a valid SCT".into(),
            );
            checks.push("the certificate identity and OIDC issuer match the policy".into());
        }
    }
    if request.ignore_tlog {
        checks.push("transparency log evidence was NOT checked (--insecure-ignore-tlog)".into());
    } else {
        checks.push(
            "the transparency log bundle (SET) was verified offline and matches the signature"
                .into(),
        );
    }
    Ok(VerifyReport {
        repository: store.repository().to_string(),
        verified,
        checks,
    })
}

async fn verify_manifest(
    store: &dyn Store,
    policy: &Policy,
    request: &VerifyRequest,
    digest: &Digest,
    platform: Option<&Platform>,
) -> Result<Vec<serde_json::Value>> {
    let what = match platform {
        Some(p) => format!("{digest} ({p})"),
        None => digest.to_string(),
    };
    let repo = store.repository();
    let mut payloads = Vec::new();
    let mut rejections = Vec::new();

    // Sigstore bundles (cosign v3) first, then cosign 2.x's tag scheme.
    let bundles = if request.accept.bundle() {
        find_bundles(store, digest).await?
    } else {
        Vec::new()
    };
    for (referrer, bundle) in bundles {
        let checked = bundle
            .map_err(|e| reject(9, format!("bundle {referrer} is malformed: {e:#}")))
            .and_then(|b| check_bundle(policy, request, digest, Some(SIGN_PREDICATE_TYPE), &b));
        match checked {
            Ok((statement, _)) => payloads.push(statement),
            Err(r) => rejections.push(r),
        }
    }
    if !payloads.is_empty() {
        return Ok(payloads);
    }

    let tag = sigmanifest::signature_tag(digest);
    let found = if request.accept.legacy() {
        read_tag_layers(store, &tag).await?
    } else {
        TagLayers::Absent
    };
    let tag_exists = !matches!(found, TagLayers::Absent);
    let layers = match found {
        TagLayers::Absent => Vec::new(),
        TagLayers::Layers(layers) => layers,
        TagLayers::Malformed(why) => {
            rejections.push(reject(
                9,
                format!("malformed signature manifest {tag}: {why}"),
            ));
            Vec::new()
        }
    };
    let signatures: Vec<&Descriptor> = layers
        .iter()
        .filter(|l| l.media_type == SIMPLESIGNING_MEDIA_TYPE)
        .collect();
    for layer in &signatures {
        match check_layer(store, policy, request, digest, layer).await? {
            Ok(payload) => payloads.push(payload),
            Err(r) => rejections.push(r),
        }
    }
    if !payloads.is_empty() {
        return Ok(payloads);
    }
    if rejections.is_empty() {
        return Err(if tag_exists {
            anyhow!("no signatures for {what} in {repo}: {tag} holds no signature layers")
        } else {
            anyhow!("no signatures for {what} in {repo}: there is no {tag} and no signature bundle referrer")
        });
    }
    rejections.sort_by_key(|r| r.rank);
    let n = rejections.len();
    let best = rejections.remove(0);
    let others = if n > 1 {
        format!(" ({n} signatures, none valid)")
    } else {
        String::new()
    };
    Err(anyhow!(
        "verification failed for {what}: {}{others}",
        best.message
    ))
}

/// Checks one signature layer. Outer `Err`: the store failed; inner: this layer does not count.
async fn check_layer(
    store: &dyn Store,
    policy: &Policy,
    request: &VerifyRequest,
    digest: &Digest,
    layer: &Descriptor,
) -> Result<std::result::Result<serde_json::Value, Rejection>> {
    let Some(signature_b64) = layer.annotation(SIGNATURE_ANNOTATION) else {
        return Ok(Err(reject(
            9,
            "signature invalid: a signature layer has no signature annotation",
        )));
    };
    let Ok(signature) = B64.decode(signature_b64.trim()) else {
        return Ok(Err(reject(
            9,
            "signature invalid: the signature annotation is not base64",
        )));
    };
    let payload = match read_small_blob(store, layer, MAX_PAYLOAD).await {
        Ok(bytes) => bytes,
        Err(e) if e.chain().any(|c| integrity_error(c).is_some()) => {
            return Ok(Err(reject(7, format!("tampered signature payload: {e:#}"))))
        }
        Err(e) => {
            return Ok(Err(reject(
                7,
                format!("signature payload unavailable: {e:#}"),
            )))
        }
    };

    let certificate = match layer_certificate(layer) {
        Ok(c) => c,
        Err(r) => return Ok(Err(r)),
    };
    let (verifier_der, certificate) = match verify_crypto(policy, certificate, &payload, &signature)
    {
        Ok(v) => v,
        Err(r) => return Ok(Err(r)),
    };
    let parsed = match SimpleSigning::parse(&payload) {
        Ok(p) => p,
        Err(e) => return Ok(Err(reject(9, format!("signature invalid: {e:#}")))),
    };
    if parsed.signed_digest() != digest.as_str() {
        return Ok(Err(reject(
            0,
            format!(
                "signature for another image: it verifies but signs {}, not {digest} (a signature copied from another image?)",
                parsed.signed_digest()
            ),
        )));
    }
    let body_check = |bundle: &Bundle| bundle.check_body(&payload, &signature, &verifier_der);
    if let Err(r) = verify_evidence(
        policy,
        request,
        layer_tlog(layer),
        certificate.as_ref(),
        &body_check,
    ) {
        return Ok(Err(r));
    }
    Ok(Ok(serde_json::from_slice(&payload).expect("parsed above")))
}

/// Is `signature` over `signed` made under the policy? Returns the signer's DER (public key
/// or certificate, as the log entry names it) and, keyless, its certificate.
pub(crate) fn verify_crypto(
    policy: &Policy,
    certificate: Option<SigningCert>,
    signed: &[u8],
    signature: &[u8],
) -> std::result::Result<(Vec<u8>, Option<SigningCert>), Rejection> {
    match policy {
        Policy::Key(key) => {
            if verify_signature(key, signed, signature).is_err() {
                return Err(reject(
                    8,
                    format!(
                        "no signature verifies under the key {} (wrong key, or the payload or signature was altered)",
                        keys::fingerprint(key)
                    ),
                ));
            }
            let der = key
                .to_public_key_der()
                .map_err(|e| reject(9, format!("cannot encode the key: {e}")))?;
            Ok((der.as_bytes().to_vec(), None))
        }
        Policy::Identity(_) => {
            let Some(cert) = certificate else {
                return Err(reject(
                    6,
                    "the signature has no certificate (it was made with a key: verify with --key)",
                ));
            };
            if verify_signature(&cert.public_key, signed, signature).is_err() {
                return Err(reject(
                    8,
                    "the signature does not verify under its certificate's key (the payload or signature was altered)",
                ));
            }
            Ok((cert.der.clone(), Some(cert)))
        }
    }
}

/// The transparency-log evidence and, keyless, the certificate's chain, SCT and identity.
pub(crate) fn verify_evidence(
    policy: &Policy,
    request: &VerifyRequest,
    tlog: Option<Result<Bundle>>,
    certificate: Option<&SigningCert>,
    body_check: &dyn Fn(&Bundle) -> Result<()>,
) -> std::result::Result<(), Rejection> {
    // When was it signed? The log says; without the log only "now" can be checked.
    let signed_at = if request.ignore_tlog {
        now()
    } else {
        let Some(bundle) = tlog else {
            return Err(reject(
                3,
                "there is no transparency log bundle; pass --insecure-ignore-tlog to accept signatures made with --tlog-upload=false",
            ));
        };
        let bundle = bundle.map_err(|e| reject(3, format!("{e:#}")))?;
        bundle
            .verify_set(&request.trust)
            .map_err(|e| reject(2, format!("transparency log evidence invalid: {e:#}")))?;
        body_check(&bundle)
            .map_err(|e| reject(2, format!("transparency log evidence invalid: {e:#}")))?;
        bundle.payload.integrated_time
    };
    if let (Policy::Identity(identity), Some(cert)) = (policy, certificate) {
        if signed_at < cert.not_before || signed_at > cert.not_after {
            return Err(reject(
                2,
                format!(
                    "signed outside the certificate's validity (signed at {signed_at}, certificate valid {}..{}){}",
                    cert.not_before,
                    cert.not_after,
                    if request.ignore_tlog {
                        ": without the transparency log the signing time is unknown, so an expired certificate fails"
                    } else {
                        ""
                    }
                ),
            ));
        }
        let ca = verify_chain(cert, &request.trust, signed_at)
            .map_err(|e| reject(1, format!("{e:#}")))?;
        if !request.trust.ct_keys.is_empty() {
            verify_embedded_sct(cert, &ca.chain[0], &request.trust.ct_keys)
                .map_err(|e| reject(1, format!("{e:#}")))?;
        }
        identity
            .check(cert)
            .map_err(|e| reject(1, format!("{e:#}")))?;
    }
    Ok(())
}

/// The signing certificate a tag-scheme layer carries, if any.
pub(crate) fn layer_certificate(
    layer: &Descriptor,
) -> std::result::Result<Option<SigningCert>, Rejection> {
    layer
        .annotation(CERTIFICATE_ANNOTATION)
        .map(|pem| {
            SigningCert::from_pem(pem)
                .map_err(|e| reject(9, format!("malformed signing certificate: {e:#}")))
        })
        .transpose()
}

/// The transparency-log bundle a tag-scheme layer carries, if any.
pub(crate) fn layer_tlog(layer: &Descriptor) -> Option<Result<Bundle>> {
    layer.annotation(BUNDLE_ANNOTATION).map(Bundle::parse)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64
}
