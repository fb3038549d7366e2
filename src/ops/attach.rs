//! Adding a layer to a tag-scheme manifest (`.sig`, `.att`) without losing anyone else's.
//!
//! The blobs go up first, so the read-modify-write of the tag is only two quick requests.
//! Where the store cannot compare-and-swap a tag (registries), the writer pauses and reads the
//! tag again, and repeats until its layer has survived: a concurrent writer that read before
//! our write and wrote after it would have dropped it.

use crate::cosign::sigmanifest;
use crate::oci::{Descriptor, Manifest, RawManifest};
use crate::store::registry::RegistryError;
use crate::store::{no_progress, BytesBlob, ManifestRef, Store};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
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

/// Makes sure the [`sigmanifest::shared_config`] is in `store`: asked once per repository per
/// run, however many signatures are being added at once (they all wait for the one check).
pub async fn ensure_shared_config(store: &dyn Store) -> Result<()> {
    type Checked = Arc<tokio::sync::OnceCell<()>>;
    static CHECKED: OnceLock<Mutex<HashMap<String, Checked>>> = OnceLock::new();
    let cell = CHECKED
        .get_or_init(Default::default)
        .lock()
        .expect("lock poisoned")
        .entry(store.repository().to_string())
        .or_default()
        .clone();
    cell.get_or_try_init(|| upload_shared_config(store, true))
        .await
        .map(|_| ())
}

async fn upload_shared_config(store: &dyn Store, ask_first: bool) -> Result<()> {
    let (config, descriptor) = sigmanifest::shared_config();
    if ask_first && store.blob_exists(&descriptor).await? {
        return Ok(());
    }
    store
        .put_blob(&descriptor, &BytesBlob(config), no_progress())
        .await
        .with_context(|| {
            format!(
                "uploading the signature manifest config to {}",
                store.repository()
            )
        })?;
    Ok(())
}

/// What a tag-scheme tag (`.sig`, `.att`) holds, for readers.
pub enum TagLayers {
    Absent,
    Layers(Vec<Descriptor>),
    /// Something that is not an image manifest (why, for messages).
    Malformed(String),
}

/// Reads the layers of the tag-scheme manifest at `tag`.
pub async fn read_tag_layers(store: &dyn Store, tag: &str) -> Result<TagLayers> {
    Ok(match read_tag(store, tag).await? {
        None => TagLayers::Absent,
        Some(raw) => match raw.parse() {
            Ok(Manifest::Image(m)) => TagLayers::Layers(m.layers),
            Ok(Manifest::Index(_)) => TagLayers::Malformed("it is an index".into()),
            Err(e) => TagLayers::Malformed(format!("{e:#}")),
        },
    })
}

async fn read_tag(store: &dyn Store, tag: &str) -> Result<Option<RawManifest>> {
    store.get_manifest(ManifestRef::Tag(tag)).await
}

/// Uploads a layer's blob and makes sure the shared config is there: everything
/// [`write_layer`] needs before it touches the tag.
pub async fn upload_layer(store: &dyn Store, layer: &Descriptor, blob: Bytes) -> Result<()> {
    // Signature payloads are small and almost always new: uploading them outright costs fewer
    // round trips than asking first.
    let upload = async {
        store
            .put_blob(layer, &BytesBlob(blob), no_progress())
            .await
            .with_context(|| format!("uploading layer {}", layer.digest))
    };
    tokio::try_join!(upload, ensure_shared_config(store))?;
    Ok(())
}

/// Appends `layer` (whose blob [`upload_layer`] has already put in `store`) to the manifest at
/// `tag`, creating it if absent. `replaces` picks existing layers the new one supersedes (e.g.
/// `attest --replace`); `equivalent` recognises a layer that makes the new one redundant.
///
/// The blobs go up before the tag is read, so that the read-modify-write of the tag is two
/// quick requests: the shorter that window, the shorter the wait before checking that no one
/// overwrote us.
pub async fn write_layer(
    store: &dyn Store,
    tag: &str,
    layer: &Descriptor,
    blob: Bytes,
    equivalent: &(dyn Fn(&Descriptor) -> bool + Sync),
    replaces: &(dyn Fn(&Descriptor) -> bool + Sync),
) -> Result<Attached> {
    let is_ours = |d: &Descriptor| d.digest == layer.digest && d.annotations == layer.annotations;
    for _ in 0..MAX_ROUNDS {
        let started = std::time::Instant::now();
        let current = read_tag(store, tag).await?;
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
        let expected = current.as_ref().map(|m| &m.digest);
        match store
            .put_manifest_if(&artifact.manifest, tag, expected)
            .await
        {
            Ok(true) => {}
            Ok(false) => continue,
            // Concurrent writers uploading the same blob can make the registry briefly see it
            // as missing (and a config checked earlier could have been garbage-collected since):
            // upload both again and go round again.
            Err(e) if RegistryError::is_blob_unknown(&e) => {
                store
                    .put_blob(layer, &BytesBlob(blob.clone()), no_progress())
                    .await?;
                upload_shared_config(store, false).await?;
                continue;
            }
            Err(e) => return Err(e),
        }
        if store.atomic_tags() {
            return Ok(Attached::Added);
        }
        tokio::time::sleep(settle_delay(started.elapsed())).await;
        let after = read_tag(store, tag).await?;
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
