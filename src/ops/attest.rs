//! `wharf attest` and `wharf verify-attestation`: in-toto statements in DSSE envelopes on the
//! `sha256-<hex>.att` tag, as cosign writes and reads them.

use super::attach::{
    read_tag_layers, upload_layer, write_layer, Attached, Attacher, Matcher, TagLayers,
};
use super::bundles::{find_bundles, sign_as_bundle, BundleFormat};
use super::failure::{Failure, FailureKind};
use super::graph::{read_graph, targets};
use super::sign::{certificate_annotations, existing_layers};
use super::verify::{
    describe, layer_annotations, require_targets, skipped_note, Policy, VerifyRequest,
};
use crate::cosign::attestation::{
    self, Envelope, DSSE_MEDIA_TYPE, IN_TOTO_PAYLOAD_TYPE, PREDICATE_TYPE_ANNOTATION,
};
use crate::cosign::sigmanifest;
use crate::oci::{Descriptor, Digest, Manifest, Platform};
use crate::report::{platform_suffix, Report};
use crate::sign::{verify_signature, Signer, Tlog};
use crate::sigstore::bundle::SIGN_PREDICATE_TYPE;
use crate::sigstore::rekor;
use crate::store::attach::nothing;
use crate::store::{read_small_blob, ManifestRef, Store};
use crate::verify::{
    verify_attestation_layer, verify_manifest_bundle, Context as VerifyContext, Rejection,
    RejectionKind, Rejections, VerifiedStatement, MAX_CANDIDATES,
};
use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;
use std::fmt::Write;
use std::sync::Arc;

pub struct AttestRequest {
    pub digest: Digest,
    /// Attest this platform's manifest of the index instead of the index itself.
    pub platform: Option<Platform>,
    pub predicate_type: String,
    pub predicate: Vec<u8>,
    /// Replace existing attestations of the same predicate type.
    pub replace: bool,
    /// Tag scheme, Sigstore bundle referrers, or both.
    pub format: BundleFormat,
}

#[derive(Debug, Serialize)]
pub struct AttestReport {
    pub repository: String,
    pub digest: String,
    pub platform: Option<String>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub attestation_tag: String,
    pub added: bool,
}

impl Report for AttestReport {
    fn text(&self) -> String {
        format!(
            "{} {} attestation on {}@{}{}\n",
            if self.added {
                "added"
            } else {
                "already present:"
            },
            self.predicate_type,
            self.repository,
            self.digest,
            platform_suffix(&self.platform)
        )
    }
}

/// The manifest `platform` names under `digest` (an index), or `digest` itself.
pub async fn platform_manifest(
    store: &dyn Store,
    digest: &Digest,
    platform: Option<&Platform>,
) -> Result<(Digest, Option<Platform>)> {
    let Some(wanted) = platform else {
        return Ok((digest.clone(), None));
    };
    let root = store
        .resolve(ManifestRef::Digest(digest))
        .await?
        .ok_or_else(|| anyhow!("manifest {digest} not found in {}", store.repository()))?;
    let graph = read_graph(store, &root, 4).await?;
    let matches: Vec<_> = graph
        .nodes
        .iter()
        .filter(|n| {
            matches!(n.parsed, Manifest::Image(_))
                && n.platform.as_ref().is_some_and(|p| wanted.matches(p))
        })
        .collect();
    match matches.as_slice() {
        [one] => Ok((one.digest().clone(), one.platform.clone())),
        [] => {
            let available: Vec<String> = graph.nodes.iter().filter_map(|n| n.platform.as_ref().map(|p| p.to_string())).collect();
            bail!("{digest} has no manifest for platform {wanted} (it has: {})", available.join(", "))
        }
        _ => bail!("{digest} has several manifests for platform {wanted}: add the variant, e.g. linux/arm/v7"),
    }
}

pub async fn attest(
    store: &dyn Store,
    signer: &dyn Signer,
    tlog: Option<&Tlog>,
    request: &AttestRequest,
) -> Result<AttestReport> {
    let attacher = Attacher::new(store);
    let report = attest_attached(&attacher, signer, tlog, request).await?;
    // After the last write: did it survive concurrent writers?
    attacher.finish().await?;
    Ok(report)
}

/// [`attest`] for a caller attaching more in the same run, which checks at its end that all
/// of it survived concurrent writers ([`Attacher::finish`]).
pub async fn attest_attached(
    attacher: &Attacher<'_>,
    signer: &dyn Signer,
    tlog: Option<&Tlog>,
    request: &AttestRequest,
) -> Result<AttestReport> {
    let store = attacher.store();
    attestation::check_predicate(&request.predicate_type, &request.predicate)?;
    let (digest, platform) =
        platform_manifest(store, &request.digest, request.platform.as_ref()).await?;
    let mut added_bundle = false;
    if request.format.bundle() {
        added_bundle = sign_as_bundle(
            attacher,
            signer,
            tlog,
            &digest,
            &request.predicate_type,
            &request.predicate,
        )
        .await
        .with_context(|| format!("attesting {digest} as a Sigstore bundle"))?;
        if !request.format.legacy() {
            let tag = sigmanifest::attestation_tag(&digest);
            return Ok(report(store, &digest, platform, request, tag, added_bundle));
        }
    }
    let subject = store.repository().docker_reference();
    let statement = attestation::statement(
        &subject,
        &digest,
        &request.predicate_type,
        &request.predicate,
    )?;
    let signed = attestation::pae(IN_TOTO_PAYLOAD_TYPE, &statement);
    let tag = sigmanifest::attestation_tag(&digest);
    let public_key = signer.public_key();
    let predicate_type = request.predicate_type.clone();

    // Same statement already attested with this key: a rerun. Nothing to add or log.
    let same_statement_same_key = |d: &Descriptor| {
        signer.certificate_pem().is_none()
            && d.annotation(PREDICATE_TYPE_ANNOTATION) == Some(predicate_type.as_str())
    };
    let existing = existing_layers(store, &tag).await?;
    for layer in existing.iter().filter(|d| same_statement_same_key(d)) {
        if let Some(env) = read_envelope(store, layer).await? {
            let same_payload = env.payload_bytes().ok().as_deref() == Some(statement.as_slice());
            let by_us = env
                .signature_bytes()
                .unwrap_or_default()
                .iter()
                .any(|sig| verify_signature(&public_key, &signed, sig).is_ok());
            if same_payload && by_us {
                return Ok(report(store, &digest, platform, request, tag, added_bundle));
            }
        }
    }

    let signature = signer.sign(&signed)?;
    let envelope = Envelope::new(&statement, &signature).to_bytes();
    let mut annotations = certificate_annotations(signer);
    if let Some(tlog) = tlog {
        let bundle = tlog
            .log(&rekor::dsse(&envelope, &signer.verifier_pem()))
            .await
            .with_context(|| format!("logging the attestation of {digest}"))?;
        annotations.insert(
            sigmanifest::BUNDLE_ANNOTATION.to_string(),
            bundle.bundle.to_annotation(),
        );
    }
    let layer = attestation::attestation_layer(&envelope, &request.predicate_type, annotations);
    let replaces: Matcher = {
        let (replace, predicate_type) = (request.replace, request.predicate_type.clone());
        Arc::new(move |d: &Descriptor| {
            replace && d.annotation(PREDICATE_TYPE_ANNOTATION) == Some(predicate_type.as_str())
        })
    };
    let envelope = Bytes::from(envelope);
    let outcome = async {
        upload_layer(store, &layer, envelope.clone()).await?;
        write_layer(attacher, &tag, &layer, envelope, nothing(), replaces).await
    }
    .await
    .with_context(|| format!("attesting {digest}"))?;
    Ok(report(
        store,
        &digest,
        platform,
        request,
        tag,
        outcome == Attached::Added,
    ))
}

fn report(
    store: &dyn Store,
    digest: &Digest,
    platform: Option<Platform>,
    request: &AttestRequest,
    tag: String,
    added: bool,
) -> AttestReport {
    AttestReport {
        repository: store.repository().to_string(),
        digest: digest.to_string(),
        platform: platform.map(|p| p.to_string()),
        predicate_type: request.predicate_type.clone(),
        attestation_tag: tag,
        added,
    }
}

const MAX_ENVELOPE: u64 = 64 << 20;

async fn read_envelope(store: &dyn Store, layer: &Descriptor) -> Result<Option<Envelope>> {
    if layer.media_type != DSSE_MEDIA_TYPE {
        return Ok(None);
    }
    let bytes = read_small_blob(store, layer, MAX_ENVELOPE).await?;
    Ok(Envelope::parse(&bytes).ok())
}

#[derive(Debug, Serialize)]
pub struct VerifiedAttestations {
    pub digest: String,
    pub platform: Option<String>,
    /// The verified in-toto statements.
    pub statements: Vec<serde_json::Value>,
    /// Each statement's predicate, exactly as attached.
    #[serde(skip)]
    pub predicates: Vec<String>,
    /// Each statement's DSSE envelope, as cosign prints it.
    #[serde(skip)]
    pub envelopes: Vec<Envelope>,
}

#[derive(Debug, Serialize)]
pub struct VerifyAttestationReport {
    pub repository: String,
    #[serde(rename = "predicateType")]
    pub predicate_type: Option<String>,
    pub verified: Vec<VerifiedAttestations>,
    /// Text mode prints the decoded statements (`--statements`) instead of cosign's envelopes.
    #[serde(skip)]
    pub statements_on_stdout: bool,
}

impl Report for VerifyAttestationReport {
    fn notes(&self) -> String {
        let mut s = String::new();
        for v in &self.verified {
            let _ = writeln!(
                s,
                "verified {} attestation(s) on {}{}",
                v.statements.len(),
                v.digest,
                platform_suffix(&v.platform)
            );
        }
        s
    }

    /// Like cosign: each verified DSSE envelope on a line of its own (`| jq -r .payload |
    /// base64 -d` gives the statement); or the decoded statements, one a line.
    fn result(&self) -> String {
        let mut s = String::new();
        for v in &self.verified {
            if self.statements_on_stdout {
                for statement in &v.statements {
                    let _ = writeln!(s, "{statement}");
                }
            } else {
                for envelope in &v.envelopes {
                    // An envelope is strings and bytes: it serialises without fail.
                    let _ = writeln!(s, "{}", serde_json::to_string(envelope).unwrap_or_default());
                }
            }
        }
        s
    }
}

pub async fn verify_attestations(
    store: &dyn Store,
    policy: &Policy,
    request: &VerifyRequest,
    predicate_type: Option<&str>,
) -> Result<VerifyAttestationReport> {
    let mut targets = targets(store, &request.digest, request.recursive, request.jobs).await?;
    if request.recursive && targets.len() > 1 {
        // Attestations describe the images under the index: every manifest under it must have
        // one, with a platform or without; the index itself may, but need not.
        targets.retain(|(digest, _)| digest != &request.digest);
    }
    require_targets(&targets, &request.digest)?;
    let verified = stream::iter(targets)
        .map(|(digest, platform)| async move {
            let what = describe(&digest, platform.as_ref());
            let (statements, envelopes): (Vec<_>, Vec<_>) =
                verify_manifest_attestations(store, policy, request, &digest, predicate_type)
                    .await
                    .with_context(|| format!("verification failed for {what}"))?
                    .into_iter()
                    .unzip();
            Ok::<_, anyhow::Error>(VerifiedAttestations {
                digest: digest.to_string(),
                platform: platform.map(|p| p.to_string()),
                predicates: statements.iter().map(|s| s.predicate.clone()).collect(),
                statements: statements.into_iter().map(|s| s.value).collect(),
                envelopes,
            })
        })
        .buffered(request.jobs.max(1))
        .try_collect()
        .await?;
    Ok(VerifyAttestationReport {
        repository: store.repository().to_string(),
        predicate_type: predicate_type.map(str::to_string),
        verified,
        statements_on_stdout: false,
    })
}

async fn verify_manifest_attestations(
    store: &dyn Store,
    policy: &Policy,
    request: &VerifyRequest,
    digest: &Digest,
    predicate_type: Option<&str>,
) -> Result<Vec<(VerifiedStatement, Envelope)>> {
    let ctx = request.context();
    let mut statements = Vec::new();
    let mut rejections = Rejections::default();
    let mut skipped = 0;
    let mut record =
        |outcome: std::result::Result<(VerifiedStatement, Envelope), Rejection>| match outcome {
            Ok(statement) => statements.push(statement),
            Err(r) => rejections.push(r),
        };
    // Sigstore bundles (cosign v3, GitHub) first, then cosign 2.x's tag scheme.
    if request.accept.bundle() {
        let found = find_bundles(store, digest).await?;
        skipped += found.not_examined;
        for (referrer, bundle) in found.bundles {
            let is_plain_signature = bundle
                .as_ref()
                .ok()
                .and_then(|b| b.dsse_envelope.as_ref())
                .and_then(|e| e.payload_bytes().ok())
                .and_then(|p| {
                    attestation::parse_statement(&p)
                        .ok()
                        .map(|s| s.predicate_type == SIGN_PREDICATE_TYPE)
                })
                .unwrap_or(false);
            if is_plain_signature && predicate_type != Some(SIGN_PREDICATE_TYPE) {
                continue;
            }
            record(
                bundle
                    .map_err(|e| {
                        Rejection::new(
                            RejectionKind::Malformed,
                            format!("bundle {referrer} is malformed: {e:#}"),
                        )
                    })
                    .and_then(|b| {
                        verify_manifest_bundle(&b, &digest.sha256(), predicate_type, policy, &ctx)
                            .and_then(|(_, statement)| {
                                let envelope = b.dsse_envelope.clone().ok_or_else(|| {
                                    Rejection::new(
                                        RejectionKind::Malformed,
                                        "the bundle holds no DSSE envelope",
                                    )
                                })?;
                                Ok((statement, envelope))
                            })
                    }),
            );
        }
    }
    let tag = sigmanifest::attestation_tag(digest);
    let found = if request.accept.legacy() {
        read_tag_layers(store, &tag).await?
    } else {
        TagLayers::Absent
    };
    let layers = match found {
        TagLayers::Absent => Vec::new(),
        TagLayers::Layers(layers) => layers,
        TagLayers::Malformed(why) => {
            record(Err(Rejection::new(
                RejectionKind::Malformed,
                format!("malformed attestation manifest {tag}: {why}"),
            )));
            Vec::new()
        }
    };
    let envelopes: Vec<&Descriptor> = layers
        .iter()
        .filter(|l| l.media_type == DSSE_MEDIA_TYPE)
        .collect();
    skipped += envelopes.len().saturating_sub(MAX_CANDIDATES);
    for layer in envelopes.into_iter().take(MAX_CANDIDATES) {
        record(check_attestation(store, policy, &ctx, digest, predicate_type, layer).await);
    }
    if !statements.is_empty() {
        return Ok(statements);
    }
    match rejections.best() {
        Some(r) => Err(Failure::error(
            FailureKind::NoMatchingAttestation,
            format!("{r}{}", skipped_note(skipped)),
        )),
        None => Err(Failure::error(
            FailureKind::NoAttestations,
            format!(
                "no attestations: there is no {tag} and no attestation bundle referrer in {}{}",
                store.repository(),
                skipped_note(skipped)
            ),
        )),
    }
}

/// Reads and checks one attestation layer; any failure is this layer's rejection.
async fn check_attestation(
    store: &dyn Store,
    policy: &Policy,
    ctx: &VerifyContext<'_>,
    digest: &Digest,
    predicate_type: Option<&str>,
    layer: &Descriptor,
) -> std::result::Result<(VerifiedStatement, Envelope), Rejection> {
    let envelope = read_small_blob(store, layer, MAX_ENVELOPE)
        .await
        .map_err(|e| {
            Rejection::new(
                RejectionKind::Unavailable,
                format!("tampered attestation: {e:#}"),
            )
        })?;
    verify_attestation_layer(
        &envelope,
        &layer_annotations(layer),
        digest,
        predicate_type,
        policy,
        ctx,
    )
    .and_then(|(_, statement)| {
        let envelope = Envelope::parse(&envelope)
            .map_err(|e| Rejection::new(RejectionKind::Malformed, format!("{e:#}")))?;
        Ok((statement, envelope))
    })
}
