//! OCI 1.1 referrers: finding what refers to a manifest, and the `sha256-<hex>` fallback tag
//! index for registries without the referrers API.

use super::attach::settle_delay;
use crate::oci::manifest::ImageIndex;
use crate::oci::{media, Descriptor, Digest, Manifest, RawManifest};
use crate::store::{ManifestRef, Store};
use anyhow::{bail, Result};
use std::collections::HashSet;

/// The fallback tag for `subject`: `sha256-<hex>`.
pub fn fallback_tag(subject: &Digest) -> String {
    subject.tag_prefix()
}

/// What refers to `subject` in `store`: through the API when it has one, else the fallback
/// tag index (returned too, so a copy can keep its exact bytes).
pub async fn list(
    store: &dyn Store,
    subject: &Digest,
) -> Result<(Vec<Descriptor>, Option<RawManifest>)> {
    list_with(store, subject, None).await
}

/// [`list`] for a caller that has listed the store's `tags`: a fallback tag not among them
/// is not fetched. (Whether the store has the referrers API, it remembers itself.)
pub async fn list_with(
    store: &dyn Store,
    subject: &Digest,
    tags: Option<&HashSet<String>>,
) -> Result<(Vec<Descriptor>, Option<RawManifest>)> {
    if let Some(found) = store.referrers(subject).await? {
        return Ok((found, None));
    }
    let tag = fallback_tag(subject);
    if tags.is_some_and(|tags| !tags.contains(&tag)) {
        return Ok((Vec::new(), None));
    }
    let Some(index) = store.get_manifest(ManifestRef::Tag(&tag)).await? else {
        return Ok((Vec::new(), None));
    };
    match index.parse()? {
        Manifest::Index(i) => Ok((i.manifests, Some(index))),
        // A tag of that name that is not an index is not a referrers index (cosign copy writes
        // such tags for images); ignore it.
        Manifest::Image(_) => Ok((Vec::new(), None)),
    }
}

/// Builds a fallback index listing `descriptors`.
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

/// Makes the fallback index of `subject` in `store` list `wanted` (adding what is missing,
/// never dropping anything). `exact` is the source's index: written byte-for-byte when the
/// destination has none yet. Returns whether anything was written.
pub async fn merge_into_fallback_index(
    store: &dyn Store,
    subject: &Digest,
    wanted: &[Descriptor],
    exact: Option<&RawManifest>,
) -> Result<bool> {
    let tag = fallback_tag(subject);
    for _ in 0..20 {
        let started = std::time::Instant::now();
        let current = store.get_manifest(ManifestRef::Tag(&tag)).await?;
        let existing: Vec<Descriptor> = match current.as_ref().map(|c| c.parse()).transpose()? {
            Some(Manifest::Index(i)) => i.manifests,
            Some(Manifest::Image(_)) => bail!(
                "{tag} in {} is an image, not a referrers index: refusing to overwrite it",
                store.repository()
            ),
            None => Vec::new(),
        };
        let missing: Vec<&Descriptor> = wanted
            .iter()
            .filter(|w| !existing.iter().any(|e| e.digest == w.digest))
            .collect();
        if missing.is_empty() {
            return Ok(false);
        }
        let new = match (current.is_none(), exact) {
            (true, Some(exact)) => exact.clone(),
            _ => build_index(
                existing
                    .iter()
                    .cloned()
                    .chain(missing.into_iter().cloned())
                    .collect(),
            ),
        };
        let expected = current.as_ref().map(|c| &c.digest);
        if !store.put_manifest_if(&new, &tag, expected).await? {
            continue;
        }
        if store.atomic_tags() {
            return Ok(true);
        }
        tokio::time::sleep(settle_delay(started.elapsed())).await;
        let after = store.get_manifest(ManifestRef::Tag(&tag)).await?;
        if let Some(Manifest::Index(i)) = after.map(|a| a.parse()).transpose()? {
            if wanted
                .iter()
                .all(|w| i.manifests.iter().any(|e| e.digest == w.digest))
            {
                return Ok(true);
            }
        }
    }
    bail!(
        "could not update the referrers index {tag} in {}: it kept changing under concurrent writers",
        store.repository()
    )
}
