//! `COSIGN_REPOSITORY`: cosign's tag-scheme attachments (`sha256-<hex>.sig`, `.att`, `.sbom`)
//! kept in a repository of their own instead of beside the image, so that they do not bury
//! the image's release tags, or so that images one can only read can still be signed.
//!
//! It works as cosign 2.5's `WithTargetRepository` does: only those tags (and the blobs their
//! manifests name) move. Sigstore bundles stored as OCI referrers stay in the image's
//! repository, as cosign writes and reads them there: a referrer names its subject by digest
//! within one repository, and the referrers API and its `sha256-<hex>` fallback tag are per
//! repository. Layouts are self-contained directories and always keep their attachments.
//!
//! [`SplitStore`] is a [`Store`] over both repositories, so every operation (sign, attest,
//! verify, tree, mirror's source, release) honours the variable without knowing about it.

use super::{BlobSource, BlobTransfer, ManifestRef, OnBytes, Store, StoreBlob, TagRead, TagWrite};
use super::{BlobStream, ListedImage};
use crate::cosign::attestation::DSSE_MEDIA_TYPE;
use crate::cosign::sigmanifest::{self, SIMPLESIGNING_MEDIA_TYPE};
use crate::oci::{Descriptor, Digest, ImageRef, Manifest, RawManifest, Repository};
use anyhow::{bail, Context, Result};
use async_trait::async_trait;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The variable cosign reads, and wharf with it.
pub const ENV: &str = "COSIGN_REPOSITORY";

/// The repository `COSIGN_REPOSITORY` names, if set (and not empty).
pub fn from_env() -> Result<Option<Repository>> {
    match std::env::var(ENV) {
        Ok(value) if !value.trim().is_empty() => parse(value.trim()).map(Some),
        _ => Ok(None),
    }
}

/// Parses a `COSIGN_REPOSITORY` value: a registry repository, `HOST/NAME`, without tag or
/// digest.
pub fn parse(value: &str) -> Result<Repository> {
    let reference =
        ImageRef::parse(value).with_context(|| format!("${ENV} is not a repository"))?;
    if reference.repository.is_layout() {
        bail!(
            "${ENV}={value:?} names a layout: it takes a registry repository, HOST/NAME \
             (a layout keeps its signatures inside)"
        );
    }
    if reference.tag.is_some() || reference.digest.is_some() {
        bail!("${ENV}={value:?} names a tag or digest: give the repository alone, HOST/NAME");
    }
    Ok(reference.repository)
}

/// Whether `tag` is one of cosign's tag-scheme tags, the ones `COSIGN_REPOSITORY` moves.
/// (The referrers fallback tag, `sha256-<hex>` without suffix, stays with the image.)
pub fn is_moved_tag(tag: &str) -> bool {
    sigmanifest::parse_digest_tag(tag)
        .is_some_and(|(_, suffix)| matches!(suffix, "sig" | "att" | "sbom"))
}

/// Blobs that only tag-scheme manifests name: written straight to the signature repository
/// (the image's may not even be writable). Anything else goes to the image's repository and,
/// if a tag-scheme manifest names it after all, is copied over before that manifest is.
fn is_attachment_blob(blob: &Descriptor) -> bool {
    blob.media_type == SIMPLESIGNING_MEDIA_TYPE
        || blob.media_type == DSSE_MEDIA_TYPE
        || blob.digest == sigmanifest::shared_config().1.digest
}

/// An image's repository with its tag-scheme attachments in another.
pub struct SplitStore {
    image: Arc<dyn Store>,
    signatures: Arc<dyn Store>,
    /// Blobs known to be in `signatures` (written or seen there this run).
    in_signatures: Mutex<HashSet<Digest>>,
}

impl SplitStore {
    pub fn new(image: Arc<dyn Store>, signatures: Arc<dyn Store>) -> SplitStore {
        SplitStore {
            image,
            signatures,
            in_signatures: Mutex::default(),
        }
    }

    /// Where the signatures are, for messages.
    pub fn signature_repository(&self) -> &Repository {
        self.signatures.repository()
    }

    fn for_tag(&self, tag: &str) -> &dyn Store {
        if is_moved_tag(tag) {
            self.signatures.as_ref()
        } else {
            self.image.as_ref()
        }
    }

    /// Where a blob is looked for first.
    fn blob_order(&self, blob: &Descriptor) -> [&dyn Store; 2] {
        if is_attachment_blob(blob) {
            [self.signatures.as_ref(), self.image.as_ref()]
        } else {
            [self.image.as_ref(), self.signatures.as_ref()]
        }
    }

    fn known(&self, digest: &Digest) -> bool {
        self.in_signatures
            .lock()
            .expect("known blobs")
            .contains(digest)
    }

    fn remember(&self, digest: &Digest) {
        self.in_signatures
            .lock()
            .expect("known blobs")
            .insert(digest.clone());
    }

    /// Before a tag-scheme manifest goes to the signature repository: copies there what it
    /// names and only the image's repository holds (a config cosign wrote, say), so the
    /// registry does not refuse it.
    async fn bring_blobs(&self, manifest: &RawManifest) -> Result<()> {
        let Ok(Manifest::Image(m)) = manifest.parse() else {
            return Ok(());
        };
        for blob in std::iter::once(&m.config).chain(&m.layers) {
            if self.known(&blob.digest) {
                continue;
            }
            if !self.signatures.blob_exists(blob).await? {
                let source = StoreBlob {
                    store: self.image.as_ref(),
                    blob,
                };
                self.signatures
                    .put_blob(blob, &source, super::no_progress())
                    .await
                    .with_context(|| {
                        format!(
                            "copying blob {} to the signature repository {}",
                            blob.digest,
                            self.signatures.repository()
                        )
                    })?;
            }
            self.remember(&blob.digest);
        }
        Ok(())
    }
}

#[async_trait]
impl Store for SplitStore {
    fn repository(&self) -> &Repository {
        self.image.repository()
    }

    /// By digest, the image's repository alone: an image is found where it is, never in
    /// the signature repository (which anyone able to sign may write to).
    async fn resolve(&self, reference: ManifestRef<'_>) -> Result<Option<Descriptor>> {
        match reference {
            ManifestRef::Tag(tag) => self.for_tag(tag).resolve(reference).await,
            ManifestRef::Digest(_) => self.image.resolve(reference).await,
        }
    }

    async fn get_manifest(&self, reference: ManifestRef<'_>) -> Result<Option<RawManifest>> {
        match reference {
            ManifestRef::Tag(tag) => self.for_tag(tag).get_manifest(reference).await,
            ManifestRef::Digest(_) => self.image.get_manifest(reference).await,
        }
    }

    async fn put_manifest(&self, manifest: &RawManifest, tag: Option<&str>) -> Result<()> {
        match tag {
            Some(tag) if is_moved_tag(tag) => {
                self.bring_blobs(manifest).await?;
                self.signatures.put_manifest(manifest, Some(tag)).await
            }
            _ => self.image.put_manifest(manifest, tag).await,
        }
    }

    async fn read_tag(&self, tag: &str) -> Result<TagRead> {
        self.for_tag(tag).read_tag(tag).await
    }

    async fn put_manifest_if(
        &self,
        manifest: &RawManifest,
        tag: &str,
        base: &TagRead,
    ) -> Result<TagWrite> {
        if is_moved_tag(tag) {
            self.bring_blobs(manifest).await?;
        }
        self.for_tag(tag).put_manifest_if(manifest, tag, base).await
    }

    fn overwrite_window(&self) -> Option<Duration> {
        match (
            self.image.overwrite_window(),
            self.signatures.overwrite_window(),
        ) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Asked where [`Store::put_blob`] would write it: an image blob the signature repository
    /// happens to hold must still be written beside the image (and a push must not pay a
    /// second request for every blob it is about to send).
    async fn blob_exists(&self, blob: &Descriptor) -> Result<bool> {
        self.blob_order(blob)[0].blob_exists(blob).await
    }

    /// From where it is expected, else from the other repository if it is there: a config
    /// cosign wrote for a `.sig` manifest looks like any image config.
    async fn open_blob_raw(&self, blob: &Descriptor) -> Result<BlobStream> {
        let [first, second] = self.blob_order(blob);
        match first.open_blob_raw(blob).await {
            Ok(stream) => Ok(stream),
            Err(e) if second.blob_exists(blob).await.unwrap_or(false) => {
                drop(e);
                second.open_blob_raw(blob).await
            }
            Err(e) => Err(e),
        }
    }

    async fn put_blob(
        &self,
        blob: &Descriptor,
        source: &dyn BlobSource,
        on_bytes: OnBytes,
    ) -> Result<BlobTransfer> {
        if is_attachment_blob(blob) {
            let transfer = self.signatures.put_blob(blob, source, on_bytes).await?;
            self.remember(&blob.digest);
            Ok(transfer)
        } else {
            self.image.put_blob(blob, source, on_bytes).await
        }
    }

    /// The image's tags, with the tag-scheme ones taken from the signature repository (and
    /// any left beside the image ignored, as cosign ignores them with the variable set).
    async fn list_tags(&self) -> Result<Vec<String>> {
        let (image, signatures) =
            futures_util::try_join!(self.image.list_tags(), self.signatures.list_tags())?;
        Ok(image
            .into_iter()
            .filter(|t| !is_moved_tag(t))
            .chain(signatures.into_iter().filter(|t| is_moved_tag(t)))
            .collect())
    }

    async fn referrers(&self, digest: &Digest) -> Result<Option<Vec<Descriptor>>> {
        self.image.referrers(digest).await
    }

    async fn default_manifest(&self) -> Result<Descriptor> {
        self.image.default_manifest().await
    }

    async fn list_untagged(&self, manifest: &RawManifest) -> Result<()> {
        self.image.list_untagged(manifest).await
    }

    async fn images(&self) -> Result<Option<Vec<ListedImage>>> {
        self.image.images().await
    }

    async fn commit(&self) -> Result<()> {
        self.image.commit().await?;
        self.signatures.commit().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_only_cosign_tag_scheme_tags() {
        let hex = "a".repeat(64);
        for suffix in ["sig", "att", "sbom"] {
            assert!(is_moved_tag(&format!("sha256-{hex}.{suffix}")));
        }
        assert!(!is_moved_tag(&format!("sha256-{hex}")), "fallback index");
        assert!(!is_moved_tag("v1.sig"));
        assert!(!is_moved_tag("latest"));
    }

    #[test]
    fn takes_a_registry_repository_only() {
        assert_eq!(
            parse("localhost:5000/acme/signatures").unwrap(),
            Repository::Registry {
                registry: "localhost:5000".into(),
                name: "acme/signatures".into()
            }
        );
        for bad in [
            "oci:./dir",
            "localhost:5000/acme/sigs:v1",
            &format!("localhost:5000/acme/sigs@sha256:{}", "b".repeat(64)),
            "nohost",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
