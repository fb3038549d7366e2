//! Adding a layer to a tag-scheme manifest (`.sig`, `.att`) without losing anyone else's.
//!
//! The blobs go up first, so the read-modify-write of the tag is only two quick requests.
//! Where the store cannot compare-and-swap a tag (registries), the writer pauses and reads the
//! tag again, and repeats until its layer has survived: a concurrent writer that read before
//! our write and wrote after it would have dropped it.

use crate::cosign::sigmanifest;
use crate::oci::{Descriptor, Manifest};
use crate::store::registry::RegistryError;
use crate::store::{no_progress, BytesBlob, ManifestRef, Store};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attached {
    Added,
    /// An equivalent layer was there already (a rerun, or the same signature twice).
    AlreadyPresent,
}

/// How long to wait before checking that a write survived: longer than another writer's
/// read-to-write window, which is about as long as ours was (`window`: the time our own read
/// and write took), plus jitter up to half of it so writers do not check in lockstep.
pub(crate) fn settle_delay(window: Duration) -> Duration {
    let window = window.max(Duration::from_millis(25));
    let fraction = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos()
        % 500;
    window + window * fraction / 1000
}

const MAX_ROUNDS: usize = 20;

/// Appends `layer` (whose bytes are `blob`) to the manifest at `tag`, creating it if absent.
/// `replaces` picks existing layers the new one supersedes (e.g. `attest --replace`);
/// `equivalent` recognises a layer that makes the new one redundant.
pub async fn append_layer(
    store: &dyn Store,
    tag: &str,
    layer: &Descriptor,
    blob: Bytes,
    equivalent: &(dyn Fn(&Descriptor) -> bool + Sync),
    replaces: &(dyn Fn(&Descriptor) -> bool + Sync),
) -> Result<Attached> {
    // Signature payloads and their configs are small and almost always new: uploading them
    // outright costs fewer round trips than asking first.
    store
        .put_blob(layer, &BytesBlob(blob.clone()), no_progress())
        .await
        .with_context(|| format!("uploading {tag} layer {}", layer.digest))?;
    let is_ours = |d: &Descriptor| d.digest == layer.digest && d.annotations == layer.annotations;
    for _ in 0..MAX_ROUNDS {
        let started = std::time::Instant::now();
        let current = store.get_manifest(ManifestRef::Tag(tag)).await?;
        let existing = match &current {
            None => Vec::new(),
            Some(raw) => match raw.parse()? {
                Manifest::Image(m) => m.layers,
                Manifest::Index(_) => bail!(
                    "{tag} in {} is an index, not a signature manifest",
                    store.repository()
                ),
            },
        };
        if existing.iter().any(|d| is_ours(d) || equivalent(d)) {
            return Ok(Attached::AlreadyPresent);
        }
        let mut layers: Vec<Descriptor> = existing.into_iter().filter(|d| !replaces(d)).collect();
        layers.push(layer.clone());
        let artifact = sigmanifest::build(&layers);
        store
            .put_blob(
                &artifact.config_descriptor,
                &BytesBlob(artifact.config.clone()),
                no_progress(),
            )
            .await?;
        let expected = current.as_ref().map(|m| &m.digest);
        match store
            .put_manifest_if(&artifact.manifest, tag, expected)
            .await
        {
            Ok(true) => {}
            Ok(false) => continue,
            // Concurrent writers uploading the same blob can make the registry briefly see it
            // as missing; make sure the blobs are there and go round again.
            Err(e) if RegistryError::is_blob_unknown(&e) => {
                store
                    .put_blob(layer, &BytesBlob(blob.clone()), no_progress())
                    .await?;
                store
                    .put_blob(
                        &artifact.config_descriptor,
                        &BytesBlob(artifact.config.clone()),
                        no_progress(),
                    )
                    .await?;
                continue;
            }
            Err(e) => return Err(e),
        }
        if store.atomic_tags() {
            return Ok(Attached::Added);
        }
        tokio::time::sleep(settle_delay(started.elapsed())).await;
        let after = store.get_manifest(ManifestRef::Tag(tag)).await?;
        let survived = match after.map(|m| m.parse()).transpose()? {
            Some(Manifest::Image(m)) => m.layers.iter().any(is_ours),
            _ => false,
        };
        if survived {
            return Ok(Attached::Added);
        }
    }
    bail!(
        "could not add a layer to {tag} in {}: it kept changing under concurrent writers",
        store.repository()
    )
}
