//! Adding a layer to a tag-scheme manifest (`.sig`, `.att`) without losing anyone else's.
//!
//! The blobs go up first, so the read-modify-write of the tag is only two quick requests; the
//! write itself, and the check that it survived concurrent writers, is the store's
//! [`Attacher`]'s.

use crate::cosign::sigmanifest;
use crate::oci::{Descriptor, Manifest, RawManifest};
use crate::store::attach::TagChange;
pub use crate::store::attach::{Attached, Attacher, Matcher};
use crate::store::{no_progress, BytesBlob, ManifestRef, Store};
use anyhow::{Context, Result};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

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

/// Appends `layer` (whose blob [`upload_layer`] has already put in the store) to the manifest
/// at `tag`, creating it if absent. `replaces` picks existing layers the new one supersedes
/// (e.g. `attest --replace`); `equivalent` recognises a layer that makes the new one redundant.
/// The attacher checks at the end of the run that it survived.
pub async fn write_layer(
    attacher: &Attacher<'_>,
    tag: &str,
    layer: &Descriptor,
    blob: Bytes,
    equivalent: Matcher,
    replaces: Matcher,
) -> Result<Attached> {
    attacher
        .apply(TagChange::layer(
            tag,
            layer.clone(),
            blob,
            equivalent,
            replaces,
        ))
        .await
}
