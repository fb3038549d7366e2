//! `wharf sign`: cosign tag-scheme signatures on an image and, recursively, on every manifest
//! under its index.

use super::attach::{
    ensure_shared_config, read_tag_layers, upload_layer, write_layer, Attached, Attacher, Matcher,
    TagLayers,
};
use super::bundles::{sign_as_bundle, BundleFormat};
use super::graph::targets;
use crate::cosign::payload::SimpleSigning;
use crate::cosign::sigmanifest::{self, SIGNATURE_ANNOTATION};
use crate::oci::manifest::Annotations;
use crate::oci::{Descriptor, Digest, Platform};
use crate::report::{platform_suffix, Report};
use crate::sign::{verify_signature, Signer, Tlog};
use crate::sigstore::bundle::SIGN_PREDICATE_TYPE;
use crate::sigstore::rekor;
use crate::store::attach::nothing;
use crate::store::Store;
use crate::ui::Progress;
use anyhow::{Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

/// The certificate and chain annotations a keyless signer's layers carry (none for a key).
pub(crate) fn certificate_annotations(signer: &dyn Signer) -> Annotations {
    let mut annotations = Annotations::new();
    if let Some(cert) = signer.certificate_pem() {
        annotations.insert(
            sigmanifest::CERTIFICATE_ANNOTATION.to_string(),
            cert.to_string(),
        );
    }
    if let Some(chain) = signer.chain_pem() {
        annotations.insert(sigmanifest::CHAIN_ANNOTATION.to_string(), chain.to_string());
    }
    annotations
}

pub struct SignRequest {
    pub digest: Digest,
    pub recursive: bool,
    /// Extra claims for the payload's `optional` section (`-a KEY=VALUE`).
    pub annotations: BTreeMap<String, String>,
    /// Tag scheme, Sigstore bundle referrers, or both.
    pub format: BundleFormat,
    pub jobs: usize,
}

#[derive(Debug, Serialize)]
pub struct SignedManifest {
    pub digest: String,
    pub platform: Option<String>,
    /// The tag the signature is stored under.
    pub signature_tag: String,
    /// false when an equivalent signature was already there (nothing written).
    pub added: bool,
}

#[derive(Debug, Serialize)]
pub struct SignReport {
    pub repository: String,
    pub signed: Vec<SignedManifest>,
    /// The digest asked for (the index, for a recursive signing).
    #[serde(skip)]
    pub digest: String,
}

impl Report for SignReport {
    fn text(&self) -> String {
        let mut s = String::new();
        for m in &self.signed {
            let verb = if m.added { "signed" } else { "already signed" };
            let _ = writeln!(
                s,
                "{verb} {}@{}{}",
                self.repository,
                m.digest,
                platform_suffix(&m.platform)
            );
        }
        s
    }

    fn github_outputs(&self) -> Vec<(String, String)> {
        vec![("signed-digest".into(), self.digest.clone())]
    }
}

pub async fn sign(
    store: &dyn Store,
    signer: &dyn Signer,
    tlog: Option<&Tlog>,
    request: &SignRequest,
    progress: &Progress,
) -> Result<SignReport> {
    let targets = targets(store, &request.digest, request.recursive, request.jobs).await?;
    let staged = stage(store, request, targets).await?;
    sign_staged(store, signer, tlog, request, staged, progress).await
}

/// A manifest to sign, with its Simple Signing payload built and, for the tag scheme,
/// already uploaded.
pub struct Staged {
    digest: Digest,
    platform: Option<Platform>,
    payload: Bytes,
}

/// Builds every target's payload and uploads it, with the shared signature manifest config.
/// None of this needs the signer, so callers run it while the signer is being made (a key
/// being decrypted, a certificate being issued); what is left after is signing and one quick
/// read-modify-write of each `.sig` tag.
pub async fn stage(
    store: &dyn Store,
    request: &SignRequest,
    targets: Vec<(Digest, Option<Platform>)>,
) -> Result<Vec<Staged>> {
    let docker_reference = store.repository().docker_reference();
    let staged: Vec<Staged> = targets
        .into_iter()
        .map(|(digest, platform)| Staged {
            payload: SimpleSigning::new(&docker_reference, &digest, &request.annotations)
                .to_bytes()
                .into(),
            digest,
            platform,
        })
        .collect();
    if request.format.legacy() {
        let uploads = stream::iter(&staged)
            .map(|s| {
                let layer = sigmanifest::signature_layer(&s.payload, Annotations::new());
                async move { upload_layer(store, &layer, s.payload.clone()).await }
            })
            .buffer_unordered(request.jobs.max(1))
            .try_collect::<Vec<()>>();
        tokio::try_join!(uploads, ensure_shared_config(store))?;
    }
    Ok(staged)
}

/// Signs what [`stage`] prepared.
pub async fn sign_staged(
    store: &dyn Store,
    signer: &dyn Signer,
    tlog: Option<&Tlog>,
    request: &SignRequest,
    staged: Vec<Staged>,
    progress: &Progress,
) -> Result<SignReport> {
    let bar = progress.items("signing", staged.len() as u64);
    let attacher = Attacher::new(store);
    let signed: Vec<SignedManifest> = stream::iter(staged)
        .map(|target| {
            let (bar, attacher) = (&bar, &attacher);
            async move {
                let digest = &target.digest;
                let mut added = false;
                if request.format.legacy() {
                    let outcome = sign_manifest(attacher, signer, tlog, &target)
                        .await
                        .with_context(|| format!("signing {digest}"))?;
                    added |= outcome == Attached::Added;
                }
                if request.format.bundle() {
                    let predicate = serde_json::to_vec(
                        &serde_json::json!({ "annotations": request.annotations }),
                    )?;
                    added |= sign_as_bundle(
                        attacher,
                        signer,
                        tlog,
                        digest,
                        SIGN_PREDICATE_TYPE,
                        &predicate,
                    )
                    .await
                    .with_context(|| format!("signing {digest} as a Sigstore bundle"))?;
                }
                bar.inc(1);
                Ok::<_, anyhow::Error>(SignedManifest {
                    signature_tag: sigmanifest::signature_tag(digest),
                    digest: digest.to_string(),
                    platform: target.platform.map(|p| p.to_string()),
                    added,
                })
            }
        })
        .buffered(request.jobs.max(1))
        .try_collect()
        .await?;
    attacher.finish().await?;
    bar.finish_and_clear();
    Ok(SignReport {
        repository: store.repository().to_string(),
        signed,
        digest: request.digest.to_string(),
    })
}

/// Signs one staged manifest: signature, optional Rekor entry, appended to its `.sig`.
async fn sign_manifest(
    attacher: &Attacher<'_>,
    signer: &dyn Signer,
    tlog: Option<&Tlog>,
    target: &Staged,
) -> Result<Attached> {
    let store = attacher.store();
    let payload = &target.payload;
    let tag = sigmanifest::signature_tag(&target.digest);
    // The same payload already signed by this key (a rerun, or cosign with the same key) is as
    // good as a new signature: one signature per manifest per key. Checked before signing so a
    // rerun does not log a new Rekor entry either. Keyless certificates differ every run.
    let same_key_same_payload: Matcher = {
        let (public_key, payload) = (signer.public_key(), payload.clone());
        let payload_digest = Digest::of(&payload);
        let keyed = signer.certificate_pem().is_none();
        Arc::new(move |d: &Descriptor| {
            keyed
                && d.digest == payload_digest
                && d.annotation(SIGNATURE_ANNOTATION)
                    .and_then(|s| B64.decode(s).ok())
                    .is_some_and(|sig| verify_signature(&public_key, &payload, &sig).is_ok())
        })
    };
    // Without a log to write to, write_layer's own check is enough (one request fewer).
    if tlog.is_some()
        && existing_layers(store, &tag)
            .await?
            .iter()
            .any(|d| same_key_same_payload(d))
    {
        return Ok(Attached::AlreadyPresent);
    }
    let signature = signer.sign(payload)?;
    let mut layer_annotations = certificate_annotations(signer);
    layer_annotations.insert(SIGNATURE_ANNOTATION.to_string(), B64.encode(&signature));
    if let Some(tlog) = tlog {
        let entry = rekor::hashedrekord(payload, &signature, &signer.verifier_pem());
        let bundle = tlog.log(&entry).await?;
        layer_annotations.insert(
            sigmanifest::BUNDLE_ANNOTATION.to_string(),
            bundle.bundle.to_annotation(),
        );
    }
    let layer = sigmanifest::signature_layer(payload, layer_annotations);
    write_layer(
        attacher,
        &tag,
        &layer,
        payload.clone(),
        same_key_same_payload,
        nothing(),
    )
    .await
}

/// The layers of the tag-scheme manifest at `tag`: none when absent or not an image manifest
/// (writing to it then reports the problem).
pub async fn existing_layers(store: &dyn Store, tag: &str) -> Result<Vec<Descriptor>> {
    Ok(match read_tag_layers(store, tag).await? {
        TagLayers::Layers(layers) => layers,
        TagLayers::Absent | TagLayers::Malformed(_) => Vec::new(),
    })
}
