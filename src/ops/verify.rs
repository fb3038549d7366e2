//! `wharf verify`: fail-closed verification of an image's signatures, by digest: Sigstore
//! bundle referrers first, then cosign's tag scheme. This module finds and reads the
//! candidates; the `verify` layer decides whether each counts.
//!
//! A manifest passes only if it exists and at least one signature satisfies the policy (a key,
//! or a certificate identity and issuer), has the required transparency-log evidence, and signs
//! exactly that manifest's digest. Otherwise the error names the most specific check that
//! failed, for which manifest.

use super::attach::{read_tag_layers, TagLayers};
use super::bundles::{find_bundles, BundleFormat};
use super::failure::{Failure, FailureKind};
use super::graph::targets;
use crate::cosign::sigmanifest::{
    self, BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, RFC3161_ANNOTATION, SIGNATURE_ANNOTATION,
    SIMPLESIGNING_MEDIA_TYPE,
};
use crate::oci::{Descriptor, Digest, Platform};
use crate::report::{platform_suffix, Report};
use crate::sigstore::bundle::SIGN_PREDICATE_TYPE;
use crate::sigstore::trust::TrustRoot;
use crate::store::{integrity_error, read_small_blob, Store};
use crate::verify::{
    cosign_verified_payload, verify_manifest_bundle, verify_signature_layer, Context,
    LayerAnnotations, Rejection, RejectionKind, Rejections, MAX_CANDIDATES,
};
use anyhow::{bail, Result};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;
use std::fmt::Write;

pub use crate::verify::Policy;

pub struct VerifyRequest {
    pub digest: Digest,
    pub recursive: bool,
    /// Accept signatures without transparency-log evidence.
    pub ignore_tlog: bool,
    /// Accept certificates whose SCT cannot be checked (a trusted root without CT logs).
    pub ignore_sct: bool,
    /// Rekor and CT log keys, Fulcio CAs, timestamp authorities.
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
            ignore_sct: self.ignore_sct,
            trust: self.trust.clone(),
            accept: self.accept,
            jobs: self.jobs,
        }
    }

    /// What the engine takes as given, at this moment.
    pub fn context(&self) -> Context<'_> {
        Context {
            trust: &self.trust,
            now: now(),
            ignore_tlog: self.ignore_tlog,
            ignore_sct: self.ignore_sct,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct VerifiedManifest {
    pub digest: String,
    pub platform: Option<String>,
    /// The verified Simple Signing payloads: as signed, plus the evidence cosign copies into
    /// `optional` (tag scheme).
    pub payloads: Vec<serde_json::Value>,
    /// Candidates beyond [`MAX_CANDIDATES`] that were not examined.
    #[serde(skip_serializing_if = "is_zero")]
    pub candidates_not_examined: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub repository: String,
    pub verified: Vec<VerifiedManifest>,
    pub checks: Vec<String>,
    /// The digest asked for.
    #[serde(skip)]
    pub digest: String,
    /// The image as the user named it (a tag too), for cosign's header; else `repository@digest`.
    #[serde(skip)]
    pub image: Option<String>,
}

impl Report for VerifyReport {
    fn notes(&self) -> String {
        let image = match &self.image {
            Some(image) => image.clone(),
            None => format!("{}@{}", self.repository, self.digest),
        };
        // cosign's header: a blank line, then the image as given.
        let mut s = format!("\nVerification for {image} --\n");
        s += "The following checks were performed on each of these signatures:\n";
        for c in &self.checks {
            let _ = writeln!(s, "  - {c}");
        }
        for m in &self.verified {
            let _ = writeln!(s, "  verified {}{}", m.digest, platform_suffix(&m.platform));
            if m.candidates_not_examined > 0 {
                let _ = writeln!(
                    s,
                    "    ({} more candidate(s) were not examined)",
                    m.candidates_not_examined
                );
            }
        }
        s
    }

    /// Like cosign: the verified payloads, as a JSON array.
    fn result(&self) -> String {
        let payloads: Vec<&serde_json::Value> =
            self.verified.iter().flat_map(|m| &m.payloads).collect();
        // Values already parsed serialise without fail.
        format!("{}\n", serde_json::to_string(&payloads).unwrap_or_default())
    }
}

const MAX_PAYLOAD: u64 = 1 << 20;

/// The checks a verification performed, in words (cosign prints the same kind of list).
pub(crate) fn checks_performed(
    policy: &Policy,
    ignore_tlog: bool,
    ignore_sct: bool,
) -> Vec<String> {
    let mut checks = Vec::new();
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
    if ignore_sct {
        checks.push("the certificate's SCT was NOT checked (--insecure-ignore-sct)".into());
    }
    if ignore_tlog {
        checks.push("transparency log evidence was NOT checked (--insecure-ignore-tlog)".into());
    } else {
        checks.push(
            "the transparency log bundle (SET) was verified offline and matches the signature"
                .into(),
        );
    }
    checks
}

/// Fails unless there is something to verify: a filter that leaves nothing must not pass.
pub(crate) fn require_targets<T>(targets: &[T], digest: &Digest) -> Result<()> {
    if targets.is_empty() {
        bail!("nothing to verify under {digest}: no manifest was found to check");
    }
    Ok(())
}

pub async fn verify(
    store: &dyn Store,
    policy: &Policy,
    request: &VerifyRequest,
) -> Result<VerifyReport> {
    let targets = targets(store, &request.digest, request.recursive, request.jobs).await?;
    require_targets(&targets, &request.digest)?;
    let verified: Vec<VerifiedManifest> = stream::iter(targets)
        .map(|(digest, platform)| async move {
            let (payloads, candidates_not_examined) =
                verify_manifest(store, policy, request, &digest, platform.as_ref()).await?;
            Ok::<_, anyhow::Error>(VerifiedManifest {
                digest: digest.to_string(),
                platform: platform.map(|p| p.to_string()),
                payloads,
                candidates_not_examined,
            })
        })
        .buffered(request.jobs.max(1))
        .try_collect()
        .await?;
    let mut checks = vec![
        "the image manifest exists and was looked up by digest".to_string(),
        "the cosign claims were validated (the payload signs exactly this digest)".to_string(),
    ];
    checks.extend(checks_performed(
        policy,
        request.ignore_tlog,
        request.ignore_sct,
    ));
    Ok(VerifyReport {
        repository: store.repository().to_string(),
        verified,
        checks,
        digest: request.digest.to_string(),
        image: None,
    })
}

/// "for DIGEST (PLATFORM)".
pub(crate) fn describe(digest: &Digest, platform: Option<&Platform>) -> String {
    match platform {
        Some(p) => format!("{digest} ({p})"),
        None => digest.to_string(),
    }
}

/// " (N more candidates not examined, limit M)" when some were skipped.
pub(crate) fn skipped_note(skipped: usize) -> String {
    if skipped == 0 {
        String::new()
    } else {
        format!("; {skipped} more candidate(s) were not examined (limit {MAX_CANDIDATES})")
    }
}

/// Verifies one manifest's signatures. Returns the verified payloads and how many candidates
/// were left unexamined.
async fn verify_manifest(
    store: &dyn Store,
    policy: &Policy,
    request: &VerifyRequest,
    digest: &Digest,
    platform: Option<&Platform>,
) -> Result<(Vec<serde_json::Value>, usize)> {
    let what = describe(digest, platform);
    let repo = store.repository();
    let ctx = request.context();
    let mut payloads = Vec::new();
    let mut rejections = Rejections::default();
    let mut skipped = 0;

    // Sigstore bundles (cosign v3) first, then cosign 2.x's tag scheme.
    if request.accept.bundle() {
        let found = find_bundles(store, digest).await?;
        skipped += found.not_examined;
        for (referrer, bundle) in found.bundles {
            let checked = bundle
                .map_err(|e| {
                    Rejection::new(
                        RejectionKind::Malformed,
                        format!("bundle {referrer} is malformed: {e:#}"),
                    )
                })
                .and_then(|b| {
                    verify_manifest_bundle(
                        &b,
                        &digest.sha256(),
                        Some(SIGN_PREDICATE_TYPE),
                        policy,
                        &ctx,
                    )
                });
            match checked {
                Ok((_, statement)) => payloads.push(statement.value),
                Err(r) => rejections.push(r),
            }
        }
        if !payloads.is_empty() {
            return Ok((payloads, skipped));
        }
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
            rejections.push(Rejection::new(
                RejectionKind::Malformed,
                format!("malformed signature manifest {tag}: {why}"),
            ));
            Vec::new()
        }
    };
    let signatures: Vec<&Descriptor> = layers
        .iter()
        .filter(|l| l.media_type == SIMPLESIGNING_MEDIA_TYPE)
        .collect();
    skipped += signatures.len().saturating_sub(MAX_CANDIDATES);
    for layer in signatures.into_iter().take(MAX_CANDIDATES) {
        match check_layer(store, policy, &ctx, digest, layer).await {
            Ok(payload) => payloads.push(payload),
            Err(r) => rejections.push(r),
        }
    }
    if !payloads.is_empty() {
        return Ok((payloads, skipped));
    }
    let Some((best, others)) = rejections.summary("signatures") else {
        let message = if tag_exists {
            format!(
                "no signatures for {what} in {repo}: {tag} holds no signature layers{}",
                skipped_note(skipped)
            )
        } else {
            format!("no signatures for {what} in {repo}: there is no {tag} and no signature bundle referrer{}", skipped_note(skipped))
        };
        return Err(Failure::error(FailureKind::NoSignatures, message));
    };
    Err(Failure::error(
        FailureKind::NoMatchingSignature,
        format!(
            "verification failed for {what}: {best}{others}{}",
            skipped_note(skipped)
        ),
    ))
}

/// Reads and checks one signature layer; any failure is this layer's rejection.
async fn check_layer(
    store: &dyn Store,
    policy: &Policy,
    ctx: &Context<'_>,
    digest: &Digest,
    layer: &Descriptor,
) -> Result<serde_json::Value, Rejection> {
    let payload = match read_small_blob(store, layer, MAX_PAYLOAD).await {
        Ok(bytes) => bytes,
        Err(e) if e.chain().any(|c| integrity_error(c).is_some()) => {
            return Err(Rejection::new(
                RejectionKind::Unavailable,
                format!("tampered signature payload: {e:#}"),
            ))
        }
        Err(e) => {
            return Err(Rejection::new(
                RejectionKind::Unavailable,
                format!("signature payload unavailable: {e:#}"),
            ))
        }
    };
    let annotations = layer_annotations(layer);
    let (verified, value) = verify_signature_layer(&payload, &annotations, digest, policy, ctx)?;
    Ok(cosign_verified_payload(value, &annotations, &verified))
}

/// The annotations of a tag-scheme layer the engine reads.
pub(crate) fn layer_annotations(layer: &Descriptor) -> LayerAnnotations<'_> {
    LayerAnnotations {
        signature: layer.annotation(SIGNATURE_ANNOTATION),
        certificate: layer.annotation(CERTIFICATE_ANNOTATION),
        rekor_bundle: layer.annotation(BUNDLE_ANNOTATION),
        rfc3161_timestamp: layer.annotation(RFC3161_ANNOTATION),
    }
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64
}
