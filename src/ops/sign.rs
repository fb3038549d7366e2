//! `wharf sign`: cosign tag-scheme signatures on an image and, recursively, on every manifest
//! under its index.

use super::attach::{append_layer, Attached};
use super::graph::read_graph;
use crate::cosign::payload::SimpleSigning;
use crate::cosign::sigmanifest::{self, SIGNATURE_ANNOTATION};
use crate::oci::manifest::Annotations;
use crate::oci::{Descriptor, Digest, Platform};
use crate::sign::{verify_signature, Signer};
use crate::store::{ManifestRef, Store};
use crate::ui::Progress;
use anyhow::{anyhow, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;
use std::collections::BTreeMap;

pub struct SignRequest {
    pub digest: Digest,
    pub recursive: bool,
    /// Extra claims for the payload's `optional` section (`-a KEY=VALUE`).
    pub annotations: BTreeMap<String, String>,
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
}

/// The manifests to sign: the image itself and, when recursive, everything under it.
pub async fn targets(
    store: &dyn Store,
    digest: &Digest,
    recursive: bool,
    jobs: usize,
) -> Result<Vec<(Digest, Option<Platform>)>> {
    let root = store
        .resolve(ManifestRef::Digest(digest))
        .await?
        .ok_or_else(|| anyhow!("manifest {digest} not found in {}", store.repository()))?;
    if !recursive {
        return Ok(vec![(root.digest, None)]);
    }
    let graph = read_graph(store, &root, jobs).await?;
    Ok(graph
        .nodes
        .into_iter()
        .map(|n| (n.manifest.digest, n.platform))
        .collect())
}

pub async fn sign(
    store: &dyn Store,
    signer: &dyn Signer,
    request: &SignRequest,
    progress: &Progress,
) -> Result<SignReport> {
    let targets = targets(store, &request.digest, request.recursive, request.jobs).await?;
    let bar = progress.items("signing", targets.len() as u64);
    let docker_reference = store.repository().docker_reference();
    let public_key = signer.public_key();
    let signed: Vec<SignedManifest> = stream::iter(targets)
        .map(|(digest, platform)| {
            let (docker_reference, bar, public_key) = (&docker_reference, &bar, &public_key);
            async move {
                let payload =
                    SimpleSigning::new(docker_reference, &digest, &request.annotations).to_bytes();
                let signature = signer.sign(&payload)?;
                let mut annotations = Annotations::new();
                annotations.insert(SIGNATURE_ANNOTATION.to_string(), B64.encode(&signature));
                if let Some(cert) = signer.certificate_pem() {
                    annotations.insert(
                        sigmanifest::CERTIFICATE_ANNOTATION.to_string(),
                        cert.to_string(),
                    );
                }
                if let Some(chain) = signer.chain_pem() {
                    annotations
                        .insert(sigmanifest::CHAIN_ANNOTATION.to_string(), chain.to_string());
                }
                let layer = sigmanifest::signature_layer(&payload, annotations);
                let tag = sigmanifest::signature_tag(&digest);
                // The same payload already signed by this key (a rerun, or cosign with the same
                // key) is as good as ours: one signature per manifest per key.
                let same_key_same_payload = |d: &Descriptor| {
                    d.digest == layer.digest
                        && d.annotation(SIGNATURE_ANNOTATION)
                            .and_then(|s| B64.decode(s).ok())
                            .is_some_and(|sig| verify_signature(public_key, &payload, &sig).is_ok())
                        && signer.certificate_pem().is_none()
                };
                let outcome = append_layer(
                    store,
                    &tag,
                    &layer,
                    payload.clone().into(),
                    &same_key_same_payload,
                    &|_| false,
                )
                .await
                .with_context(|| format!("signing {digest}"))?;
                bar.inc(1);
                Ok::<_, anyhow::Error>(SignedManifest {
                    digest: digest.to_string(),
                    platform: platform.map(|p| p.to_string()),
                    signature_tag: tag,
                    added: outcome == Attached::Added,
                })
            }
        })
        .buffered(request.jobs.max(1))
        .try_collect()
        .await?;
    bar.finish_and_clear();
    Ok(SignReport {
        repository: store.repository().to_string(),
        signed,
    })
}
