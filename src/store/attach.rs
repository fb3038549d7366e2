//! Attaching things to manifests without losing anyone else's: appending a layer to a cosign
//! `.sig`/`.att` manifest, an entry to a `sha256-<hex>` referrers fallback index, and putting
//! a referrer however the store allows.
//!
//! Those are read-modify-writes of a tag. A layout compares and swaps under a lock; a registry
//! cannot (distribution ignores `If-Match`), so two writers that read the same version and
//! both write can drop one's change. Against that:
//!
//! - the store completes a write only shortly after the read it is based on, so a write
//!   from an old read cannot land long after others have written ([`Store::put_manifest_if`]);
//! - a write whose fate is unknown (429, 5xx, a broken connection) is never resent as it was:
//!   the tag is read again and the change merged again;
//! - [`Attacher::finish`], after the run's last write, waits out the store's
//!   [`Store::overwrite_window`] (past it, no write based on a read older than ours can still
//!   land), reads every changed tag again and writes again what was lost, until all of it
//!   has survived.
//!
//! What remains possible is said in the README: a write held up in the network for longer
//! than that window after it left its writer.

use super::{no_progress, BytesBlob, ManifestRef, Store, TagRead, TagWrite};
use crate::cosign::sigmanifest;
use crate::oci::manifest::{ImageIndex, ImageManifest};
use crate::oci::{media, Descriptor, Digest, Manifest, RawManifest};
use crate::store::registry::RegistryError;
use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attached {
    Added,
    /// An equivalent entry was there already (a rerun, or the same signature twice).
    AlreadyPresent,
}

/// Recognises descriptors (layers, index entries).
pub type Matcher = Arc<dyn Fn(&Descriptor) -> bool + Send + Sync>;

/// A matcher matching nothing.
pub fn nothing() -> Matcher {
    Arc::new(|_| false)
}

type Merge = dyn Fn(Option<&RawManifest>) -> Result<Option<RawManifest>> + Send + Sync;
type Holds = dyn Fn(&RawManifest) -> Result<bool> + Send + Sync;

/// A change to what a tag holds, as a merge that can be applied to whatever the tag holds by
/// the time it is written (and again if it was lost).
pub struct TagChange {
    tag: String,
    /// The manifest to write, given what the tag holds now; `None` when it already holds
    /// the change.
    merge: Box<Merge>,
    /// Whether the tag still holds the change (or something that supersedes it on purpose).
    holds: Box<Holds>,
    /// Blobs the written manifest references: uploaded again when the registry says one is
    /// unknown (concurrent writers relinking the same blob make it look missing briefly).
    blobs: Vec<(Descriptor, Bytes)>,
}

impl TagChange {
    /// Appends `layer` (its blob `blob`) to the cosign tag-scheme manifest at `tag`, created
    /// if absent. Nothing is added when a layer `equivalent` matches is there; layers
    /// `replaces` matches are dropped (`attest --replace`), and such a layer written later
    /// by someone else counts as superseding ours rather than as a loss.
    pub fn layer(
        tag: &str,
        layer: Descriptor,
        blob: Bytes,
        equivalent: Matcher,
        replaces: Matcher,
    ) -> TagChange {
        let is_ours = {
            let layer = layer.clone();
            move |d: &Descriptor| d.digest == layer.digest && d.annotations == layer.annotations
        };
        // The layers our writes dropped: one of them back means a stale write undid ours,
        // not that someone replaced ours on purpose.
        let dropped: Arc<Mutex<Vec<Digest>>> = Arc::default();
        let tag_name = tag.to_string();
        let merge = {
            let (is_ours, equivalent, replaces) =
                (is_ours.clone(), equivalent.clone(), replaces.clone());
            let (layer, dropped) = (layer.clone(), dropped.clone());
            move |current: Option<&RawManifest>| {
                let existing = layers_of(current, &tag_name)?;
                if existing.iter().any(|d| is_ours(d) || equivalent(d)) {
                    return Ok(None);
                }
                let (replaced, mut layers): (Vec<Descriptor>, Vec<Descriptor>) =
                    existing.into_iter().partition(|d| replaces(d));
                dropped
                    .lock()
                    .expect("dropped layers")
                    .extend(replaced.into_iter().map(|d| d.digest));
                layers.push(layer.clone());
                Ok(Some(sigmanifest::build(&layers).manifest))
            }
        };
        let tag_name = tag.to_string();
        let holds = move |current: &RawManifest| {
            let dropped = dropped.lock().expect("dropped layers");
            Ok(layers_of(Some(current), &tag_name)?.iter().any(|d| {
                is_ours(d) || equivalent(d) || (replaces(d) && !dropped.contains(&d.digest))
            }))
        };
        let (config, config_descriptor) = sigmanifest::shared_config();
        TagChange {
            tag: tag.to_string(),
            merge: Box::new(merge),
            holds: Box::new(holds),
            blobs: vec![(layer, blob), (config_descriptor, config)],
        }
    }

    /// Makes the referrers fallback index of `subject` list `entries` (adding what is missing,
    /// never dropping anything). `exact`: the bytes to write when there is no index yet (a
    /// mirror keeps the source's).
    pub fn index_entries(
        subject: &Digest,
        entries: Vec<Descriptor>,
        exact: Option<RawManifest>,
    ) -> TagChange {
        let tag = subject.tag_prefix();
        let entries = Arc::new(entries);
        let merge = {
            let (tag, entries) = (tag.clone(), entries.clone());
            move |current: Option<&RawManifest>| {
                let existing = index_entries_of(current, &tag)?;
                let missing: Vec<&Descriptor> = entries
                    .iter()
                    .filter(|w| !existing.iter().any(|e| e.digest == w.digest))
                    .collect();
                if missing.is_empty() {
                    return Ok(None);
                }
                Ok(Some(match (current, &exact) {
                    (None, Some(exact)) => exact.clone(),
                    _ => build_index(
                        existing
                            .into_iter()
                            .chain(missing.into_iter().cloned())
                            .collect(),
                    ),
                }))
            }
        };
        let holds = {
            let tag = tag.clone();
            move |current: &RawManifest| {
                let existing = index_entries_of(Some(current), &tag)?;
                Ok(entries
                    .iter()
                    .all(|w| existing.iter().any(|e| e.digest == w.digest)))
            }
        };
        TagChange {
            tag,
            merge: Box::new(merge),
            holds: Box::new(holds),
            blobs: Vec::new(),
        }
    }

    /// Makes the tag-scheme manifest at `tag` hold every layer of `source` (a mirror's copy):
    /// `source`'s exact bytes, unless the tag holds layers of its own (signatures added at
    /// the mirror), which are kept by merging. The flag returned tells whether the last
    /// manifest built was such a merge.
    pub fn mirrored_layers(tag: &str, source: RawManifest) -> Result<(TagChange, Arc<AtomicBool>)> {
        let merged = Arc::new(AtomicBool::new(false));
        let source_layers = match source.parse()? {
            Manifest::Image(m) => Arc::new(m.layers),
            Manifest::Index(_) => bail!("{tag} in the source is an index, not layers"),
        };
        let has = |layers: &[Descriptor], l: &Descriptor| {
            layers
                .iter()
                .any(|s| s.digest == l.digest && s.annotations == l.annotations)
        };
        let merge = {
            let (tag, source_layers) = (tag.to_string(), source_layers.clone());
            let merged = merged.clone();
            move |current: Option<&RawManifest>| {
                let existing = layers_of(current, &tag)?;
                if source_layers.iter().all(|l| has(&existing, l)) {
                    return Ok(None);
                }
                let extra: Vec<Descriptor> = existing
                    .into_iter()
                    .filter(|l| !has(&source_layers, l))
                    .collect();
                merged.store(!extra.is_empty(), Ordering::Relaxed);
                Ok(Some(if extra.is_empty() {
                    source.clone()
                } else {
                    let layers: Vec<Descriptor> =
                        source_layers.iter().cloned().chain(extra).collect();
                    sigmanifest::build(&layers).manifest
                }))
            }
        };
        let holds = {
            let tag = tag.to_string();
            move |current: &RawManifest| {
                let existing = layers_of(Some(current), &tag)?;
                Ok(source_layers.iter().all(|l| has(&existing, l)))
            }
        };
        let (config, config_descriptor) = sigmanifest::shared_config();
        let change = TagChange {
            tag: tag.to_string(),
            merge: Box::new(merge),
            holds: Box::new(holds),
            blobs: vec![(config_descriptor, config)],
        };
        Ok((change, merged))
    }
}

/// The layers of a tag-scheme manifest (none when absent).
fn layers_of(current: Option<&RawManifest>, tag: &str) -> Result<Vec<Descriptor>> {
    Ok(match current.map(|c| c.parse()).transpose()? {
        None => Vec::new(),
        Some(Manifest::Image(m)) => m.layers,
        Some(Manifest::Index(_)) => bail!("{tag} is an index, not a signature manifest"),
    })
}

/// The entries of a fallback index (none when absent).
fn index_entries_of(current: Option<&RawManifest>, tag: &str) -> Result<Vec<Descriptor>> {
    Ok(match current.map(|c| c.parse()).transpose()? {
        None => Vec::new(),
        Some(Manifest::Index(i)) => i.manifests,
        Some(Manifest::Image(_)) => {
            bail!("{tag} is an image, not a referrers index: refusing to overwrite it")
        }
    })
}

/// A fallback index listing `descriptors`.
pub fn build_index(descriptors: Vec<Descriptor>) -> RawManifest {
    let index = ImageIndex {
        schema_version: 2,
        media_type: Some(media::OCI_INDEX.to_string()),
        artifact_type: None,
        manifests: descriptors,
        subject: None,
        annotations: None,
    };
    RawManifest::from_manifest(&index, media::OCI_INDEX)
}

/// How a referrer was written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReferrerWritten {
    pub digest: String,
    /// The registry refused a manifest with `subject`; it was written without one and found
    /// through the fallback tag index only (as GitHub's attest does).
    pub subject_dropped: bool,
    /// The `sha256-<hex>` fallback index was updated (the store has no referrers API).
    pub fallback_index: bool,
}

/// How many times a read-modify-write is tried when other writers keep changing the tag.
const MAX_ROUNDS: u32 = 20;

/// How many failed writes (429, 5xx, broken connections) a change survives, as many as the
/// registry client's default retries.
const MAX_INTERRUPTIONS: u32 = 5;

/// A pause before trying again after losing to another writer: random, up to 5 ms a round
/// lost so far, so that writers who keep colliding stop doing it in step.
fn collision_pause(round: u32) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    Duration::from_micros(u64::from(nanos % 5000) * u64::from(round))
}

/// How many times the final check writes lost changes again before giving up.
const CONFIRM_ROUNDS: usize = 10;

/// Tag changes and referrers for one store in one run, checked once more at the end.
pub struct Attacher<'a> {
    store: &'a dyn Store,
    /// Changes written in this run, to be checked by [`Attacher::finish`].
    written: Mutex<Vec<Arc<TagChange>>>,
    /// When the last of them was written.
    last_write: Mutex<Option<Instant>>,
}

impl<'a> Attacher<'a> {
    pub fn new(store: &'a dyn Store) -> Attacher<'a> {
        Attacher {
            store,
            written: Mutex::new(Vec::new()),
            last_write: Mutex::new(None),
        }
    }

    pub fn store(&self) -> &'a dyn Store {
        self.store
    }

    /// Applies `change` to its tag: reads it, merges, writes; again on every conflict.
    pub async fn apply(&self, change: TagChange) -> Result<Attached> {
        self.write(Arc::new(change)).await
    }

    async fn write(&self, change: Arc<TagChange>) -> Result<Attached> {
        let store = self.store;
        let tag = &change.tag;
        let mut interruptions = 0;
        // Once a write of ours may have landed, finding the change there is our doing.
        let mut attempted = false;
        for round in 0..MAX_ROUNDS {
            let base: TagRead = store.read_tag(tag).await?;
            let Some(next) = (change.merge)(base.manifest.as_ref())
                .with_context(|| format!("in {}", store.repository()))?
            else {
                return Ok(if attempted {
                    self.record(change);
                    Attached::Added
                } else {
                    Attached::AlreadyPresent
                });
            };
            match store.put_manifest_if(&next, tag, &base).await {
                Ok(TagWrite::Written) => {
                    self.record(change);
                    return Ok(Attached::Added);
                }
                Ok(TagWrite::Superseded) => tokio::time::sleep(collision_pause(round)).await,
                Ok(TagWrite::Interrupted { error, retry_after }) => {
                    attempted = true;
                    interruptions += 1;
                    if interruptions > MAX_INTERRUPTIONS {
                        return Err(error.context(format!("writing {tag}")));
                    }
                    tokio::time::sleep(retry_after).await;
                }
                Err(e) if RegistryError::is_blob_unknown(&e) && !change.blobs.is_empty() => {
                    for (descriptor, bytes) in &change.blobs {
                        store
                            .put_blob(descriptor, &BytesBlob(bytes.clone()), no_progress())
                            .await?;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        bail!(
            "could not write {tag} in {}: it kept changing under concurrent writers",
            store.repository()
        )
    }

    fn record(&self, change: Arc<TagChange>) {
        *self.last_write.lock().expect("last write") = Some(Instant::now());
        self.written.lock().expect("written").push(change);
    }

    /// Puts `manifest`, a referrer (its `subject` set), however the store allows: through the
    /// referrers API where there is one; else also listed in the subject's `sha256-<hex>`
    /// fallback index; and where the store refuses referrer manifests (some registries do
    /// for some subjects), without `subject` and `artifactType`, found through the fallback
    /// index only. `blobs`: its config and layers, uploaded first where missing.
    pub async fn put_referrer(
        &self,
        mut manifest: ImageManifest,
        blobs: &[(Descriptor, Bytes)],
    ) -> Result<ReferrerWritten> {
        let store = self.store;
        let subject = manifest
            .subject
            .clone()
            .ok_or_else(|| anyhow!("a referrer needs a subject"))?;
        for (descriptor, bytes) in blobs {
            if !store.blob_exists(descriptor).await? {
                store
                    .put_blob(descriptor, &BytesBlob(bytes.clone()), no_progress())
                    .await?;
            }
        }
        // The index entry says what the referrer is, even when the manifest may not.
        let artifact_type = manifest
            .artifact_type
            .clone()
            .unwrap_or_else(|| manifest.config.media_type.clone());
        let annotations = manifest.annotations.clone();
        let mut raw = RawManifest::from_manifest(&manifest, media::OCI_MANIFEST);
        let mut subject_dropped = false;
        if let Err(refused) = self.put_with_blobs(&raw, blobs).await {
            manifest.subject = None;
            manifest.artifact_type = None;
            raw = RawManifest::from_manifest(&manifest, media::OCI_MANIFEST);
            self.put_with_blobs(&raw, blobs).await.with_context(|| {
                format!(
                    "{} refused the referrer ({refused:#}), and also without a subject",
                    store.repository()
                )
            })?;
            subject_dropped = true;
        }
        let api = !subject_dropped && store.referrers(&subject.digest).await?.is_some();
        if !api {
            let mut entry = raw.descriptor();
            entry.artifact_type = Some(artifact_type);
            entry.annotations = annotations;
            self.apply(TagChange::index_entries(&subject.digest, vec![entry], None))
                .await?;
        }
        Ok(ReferrerWritten {
            digest: raw.digest.to_string(),
            subject_dropped,
            fallback_index: !api,
        })
    }

    /// Writes `raw` by digest. A registry saying a blob it references is unknown, while other
    /// writers upload the same blob (the empty config every referrer shares), gets the blobs
    /// again: that is no refusal of the manifest.
    async fn put_with_blobs(&self, raw: &RawManifest, blobs: &[(Descriptor, Bytes)]) -> Result<()> {
        let mut tries = 0;
        loop {
            match self.store.put_manifest(raw, None).await {
                Err(e) if RegistryError::is_blob_unknown(&e) && tries < 3 => {
                    tries += 1;
                    for (descriptor, bytes) in blobs {
                        self.store
                            .put_blob(descriptor, &BytesBlob(bytes.clone()), no_progress())
                            .await?;
                    }
                }
                result => return result,
            }
        }
    }

    /// Checks, once no write based on a read older than ours can still land, that every
    /// change of this run is still there, and writes again what was lost, until all of it
    /// has survived. Call after the run's last write; a store that compares and swaps has
    /// nothing to check.
    pub async fn finish(self) -> Result<()> {
        let Some(window) = self.store.overwrite_window() else {
            return Ok(());
        };
        let mut rounds = 0;
        loop {
            let pending = std::mem::take(&mut *self.written.lock().expect("written"));
            if pending.is_empty() {
                return Ok(());
            }
            if rounds == CONFIRM_ROUNDS {
                let mut tags: Vec<&str> = pending.iter().map(|c| c.tag.as_str()).collect();
                tags.dedup();
                bail!(
                    "{} in {} kept being overwritten by concurrent writers ({CONFIRM_ROUNDS} \
                     times written again)",
                    tags.join(", "),
                    self.store.repository()
                );
            }
            rounds += 1;
            let last = self
                .last_write
                .lock()
                .expect("last write")
                .unwrap_or_else(Instant::now);
            tokio::time::sleep_until((last + window).into()).await;
            // One read per tag, however many changes it got.
            let mut tags: Vec<&str> = pending.iter().map(|c| c.tag.as_str()).collect();
            tags.sort();
            tags.dedup();
            let current: Vec<(String, Option<RawManifest>)> = stream::iter(tags)
                .map(|tag| async move {
                    let read = self.store.get_manifest(ManifestRef::Tag(tag)).await?;
                    Ok::<_, anyhow::Error>((tag.to_string(), read))
                })
                .buffer_unordered(16)
                .try_collect()
                .await?;
            let mut lost = Vec::new();
            for change in pending {
                let now = current
                    .iter()
                    .find(|(t, _)| *t == change.tag)
                    .and_then(|(_, m)| m.as_ref());
                let held = match now {
                    Some(m) => (change.holds)(m)?,
                    None => false,
                };
                if !held {
                    lost.push(change);
                }
            }
            // Written again, they are checked again in the next round.
            stream::iter(lost)
                .map(|change| self.write(change))
                .buffer_unordered(16)
                .try_collect::<Vec<_>>()
                .await?;
        }
    }
}
