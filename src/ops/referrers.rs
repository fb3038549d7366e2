//! OCI 1.1 referrers: finding what refers to a manifest, through the referrers API or the
//! `sha256-<hex>` fallback tag index. (Writing them is the store's: [`crate::store::attach`].)

use crate::oci::{Descriptor, Digest, Manifest, RawManifest};
use crate::store::{ManifestRef, Store};
use anyhow::Result;
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
