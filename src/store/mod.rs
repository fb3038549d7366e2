//! Storage: one trait over a remote registry repository and an OCI image layout (a directory,
//! or an archive of one).
//!
//! Operations (push, sign, mirror, verify) are written against [`Store`] only, so every one of
//! them works registry→registry, layout→registry, registry→layout alike.

pub mod attach;
pub mod body;
pub mod credentials;
pub mod layout;
pub mod registry;
pub mod signature_repository;
mod stream;

pub use layout::ListedImage;
pub use stream::{integrity_error, BlobIntegrityError, BlobStream, VerifyingStream};

use crate::oci::{Descriptor, Digest, ImageRef, RawManifest, Repository};
use anyhow::Result;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a manifest is looked up or written by.
#[derive(Debug, Clone, Copy)]
pub enum ManifestRef<'a> {
    Tag(&'a str),
    Digest(&'a Digest),
}

impl std::fmt::Display for ManifestRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ManifestRef::Tag(t) => write!(f, "tag {t}"),
            ManifestRef::Digest(d) => write!(f, "{d}"),
        }
    }
}

/// Called with the number of bytes just transferred (progress bars). Shared, because a
/// streaming request body outlives the call that starts it.
pub type OnBytes = Arc<dyn Fn(u64) + Send + Sync>;

/// An [`OnBytes`] that reports nowhere.
pub fn no_progress() -> OnBytes {
    Arc::new(|_| {})
}

/// A tag as read before changing it.
pub struct TagRead {
    /// What the tag held (`None`: no such tag).
    pub manifest: Option<RawManifest>,
    /// When the read that saw it was sent.
    pub sent: Instant,
}

impl TagRead {
    /// The digest the tag pointed at.
    pub fn digest(&self) -> Option<&Digest> {
        self.manifest.as_ref().map(|m| &m.digest)
    }
}

/// What became of a [`Store::put_manifest_if`].
#[derive(Debug)]
pub enum TagWrite {
    Written,
    /// Not written: the tag changed since it was read, or the read is too old to write from.
    /// Read again and merge again.
    Superseded,
    /// The request failed in a way that leaves unknown whether the write landed (429, 5xx,
    /// a broken connection). Read again after `retry_after` and merge again; the same body
    /// is never sent twice, since another writer may have written in between.
    Interrupted {
        error: anyhow::Error,
        retry_after: Duration,
    },
}

/// How a blob reached the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobTransfer {
    Uploaded,
    Mounted,
}

/// Something a blob's bytes can be read from, again on every retry.
#[async_trait]
pub trait BlobSource: Send + Sync {
    async fn open(&self) -> Result<BlobStream>;
    /// The repository the bytes come from, when a registry could mount them from there.
    fn mount_from(&self) -> Option<&Repository> {
        None
    }
    /// Where the bytes come from, for messages.
    fn describe(&self) -> String {
        "the blob".into()
    }
}

/// One repository of a registry, or one OCI image layout directory.
#[async_trait]
pub trait Store: Send + Sync {
    /// Where this store is, for messages: `HOST/REPO` or `oci:DIR`.
    fn repository(&self) -> &Repository;

    /// The descriptor a tag or digest points at, or `None` when absent.
    async fn resolve(&self, reference: ManifestRef<'_>) -> Result<Option<Descriptor>>;

    /// A manifest's exact bytes, or `None` when absent. Bytes fetched by digest are checked
    /// against it.
    async fn get_manifest(&self, reference: ManifestRef<'_>) -> Result<Option<RawManifest>>;

    /// Writes a manifest by digest, or under `tag` when given. Everything it references must be
    /// present already.
    async fn put_manifest(&self, manifest: &RawManifest, tag: Option<&str>) -> Result<()>;

    /// Reads a tag for a change: what it holds now, and when that was asked, which
    /// [`Store::put_manifest_if`] needs.
    async fn read_tag(&self, tag: &str) -> Result<TagRead> {
        let sent = Instant::now();
        let manifest = self.get_manifest(ManifestRef::Tag(tag)).await?;
        Ok(TagRead { manifest, sent })
    }

    /// Writes a manifest under `tag` as a change of what `base` (from [`Store::read_tag`])
    /// saw there. A store that can compare and swap does so. One that cannot (registries)
    /// completes the write only while `base` is fresh, so that no write based on an old read
    /// lands later than [`Store::overwrite_window`] allows for; and a write whose fate is
    /// unknown is never sent again: the caller reads again and merges again.
    async fn put_manifest_if(
        &self,
        manifest: &RawManifest,
        tag: &str,
        base: &TagRead,
    ) -> Result<TagWrite>;

    /// `None` when [`Store::put_manifest_if`] is a true compare-and-swap. Otherwise, how long
    /// after a tag write of ours another writer's write, based on a read older than ours, can
    /// still land and drop our change: callers check again after that long.
    fn overwrite_window(&self) -> Option<Duration>;

    async fn blob_exists(&self, blob: &Descriptor) -> Result<bool>;

    /// Streams a blob as stored, unchecked. Copies use this: every destination checks what it
    /// receives (a registry recomputes the digest, a layout hashes as it writes), so hashing
    /// at the source too would only burn CPU the destination needs.
    async fn open_blob_raw(&self, blob: &Descriptor) -> Result<BlobStream>;

    /// Streams a blob; the stream fails as its last byte passes if the bytes do not match the
    /// descriptor. Everything that reads a blob for its content uses this.
    async fn open_blob(&self, blob: &Descriptor) -> Result<BlobStream> {
        let raw = self.open_blob_raw(blob).await?;
        Ok(Box::pin(VerifyingStream::new(
            raw,
            blob.digest.clone(),
            blob.size,
            format!("blob {} in {}", blob.digest, self.repository()),
        )))
    }

    /// Stores a blob from `source`, streaming. Retries transient failures by reopening it.
    async fn put_blob(
        &self,
        blob: &Descriptor,
        source: &dyn BlobSource,
        on_bytes: OnBytes,
    ) -> Result<BlobTransfer>;

    async fn list_tags(&self) -> Result<Vec<String>>;

    /// The manifests whose `subject` is `digest`, through the OCI 1.1 referrers API. `None`
    /// when the store has no such API: callers then use the `sha256-<hex>` fallback tag.
    async fn referrers(&self, _digest: &Digest) -> Result<Option<Vec<Descriptor>>> {
        Ok(None)
    }

    /// The manifest a reference with neither tag nor digest means. Only a layout listing a
    /// single image has one.
    async fn default_manifest(&self) -> Result<Descriptor> {
        anyhow::bail!(
            "{} names no tag or digest: add :TAG or @sha256:DIGEST",
            self.repository()
        )
    }

    /// Makes an image just written (by digest, untagged) one the store lists, so that readers
    /// find it without knowing its digest. A layout adds it to `index.json`; a registry keeps
    /// manifests by digest anyway.
    async fn list_untagged(&self, _manifest: &RawManifest) -> Result<()> {
        Ok(())
    }

    /// Every image the store lists, with its tags (a layout's `index.json`, attachments left
    /// out); `None` where there is no such list (a registry lists tags only).
    async fn images(&self) -> Result<Option<Vec<ListedImage>>> {
        Ok(None)
    }

    /// Makes what was written final. An archive destination is written here, whole, under
    /// its name (until then, nothing written to it is kept); other stores write as they go.
    async fn commit(&self) -> Result<()> {
        Ok(())
    }
}

/// A blob of one store, as a [`BlobSource`] for another.
pub struct StoreBlob<'a> {
    pub store: &'a dyn Store,
    pub blob: &'a Descriptor,
}

#[async_trait]
impl BlobSource for StoreBlob<'_> {
    async fn open(&self) -> Result<BlobStream> {
        self.store.open_blob_raw(self.blob).await
    }
    fn mount_from(&self) -> Option<&Repository> {
        Some(self.store.repository())
    }
    fn describe(&self) -> String {
        format!("blob {} in {}", self.blob.digest, self.store.repository())
    }
}

/// In-memory bytes as a [`BlobSource`] (signature payloads, small configs).
pub struct BytesBlob(pub bytes::Bytes);

#[async_trait]
impl BlobSource for BytesBlob {
    async fn open(&self) -> Result<BlobStream> {
        let bytes = self.0.clone();
        Ok(Box::pin(futures_util::stream::once(async move {
            Ok::<_, std::io::Error>(bytes)
        })))
    }
}

/// Opens stores for image references; shared registry clients keep auth tokens between
/// repositories of the same registry.
#[derive(Clone)]
pub struct Stores {
    registries: Arc<registry::RegistryClient>,
    /// Where registry images keep their `.sig`/`.att`/`.sbom` tags, when not beside them
    /// (`COSIGN_REPOSITORY`).
    signatures: Option<Repository>,
}

impl Stores {
    pub fn new(options: registry::RegistryOptions) -> Result<Stores> {
        Ok(Stores {
            registries: Arc::new(registry::RegistryClient::new(options)?),
            signatures: signature_repository::from_env()?,
        })
    }

    /// These stores with attachments kept beside every image, whatever `COSIGN_REPOSITORY`
    /// says: a mirror's destination gets them where any verifier finds them unconfigured.
    pub fn with_attachments_beside_images(&self) -> Stores {
        Stores {
            signatures: None,
            ..self.clone()
        }
    }

    /// The separate repository of tag-scheme attachments, if one is set.
    pub fn signature_repository(&self) -> Option<&Repository> {
        self.signatures.as_ref()
    }

    /// A store for reading an existing repository, layout or archive (an archive is read
    /// only).
    pub async fn open(&self, reference: &ImageRef) -> Result<Arc<dyn Store>> {
        self.open_repository(&reference.repository, false).await
    }

    /// A store for writing; a layout directory is created if absent. An archive is staged
    /// and written by [`Store::commit`].
    pub async fn open_for_write(&self, reference: &ImageRef) -> Result<Arc<dyn Store>> {
        self.open_repository(&reference.repository, true).await
    }

    async fn open_repository(
        &self,
        repository: &Repository,
        create: bool,
    ) -> Result<Arc<dyn Store>> {
        Ok(match repository {
            Repository::Layout { dir } => Arc::new(if create {
                layout::LayoutStore::create(dir).await?
            } else {
                layout::LayoutStore::open(dir).await?
            }),
            Repository::Archive { file } => Arc::new(if create {
                layout::LayoutStore::create_archive(file).await?
            } else {
                layout::LayoutStore::open_archive(file).await?
            }),
            Repository::Registry { .. } => {
                let image = Arc::new(registry::RemoteRepository::new(
                    self.registries.clone(),
                    repository.clone(),
                ));
                match &self.signatures {
                    Some(signatures) if signatures != repository => {
                        Arc::new(signature_repository::SplitStore::new(
                            image,
                            Arc::new(registry::RemoteRepository::new(
                                self.registries.clone(),
                                signatures.clone(),
                            )),
                        ))
                    }
                    _ => image,
                }
            }
        })
    }
}

/// Reads a small blob (a signature payload, an envelope, a bundle) whole, refusing one whose
/// descriptor says it is larger than `limit`: such documents are never that big, and memory
/// must not follow a size someone else chose.
pub async fn read_small_blob(store: &dyn Store, blob: &Descriptor, limit: u64) -> Result<Vec<u8>> {
    use futures_util::TryStreamExt;
    if blob.size > limit {
        anyhow::bail!(
            "blob {} is {} bytes, more than the {limit} expected",
            blob.digest,
            blob.size
        );
    }
    Ok(store
        .open_blob(blob)
        .await?
        .map_ok(|b| b.to_vec())
        .try_concat()
        .await?)
}

/// Resolves a reference to the descriptor of its manifest: by digest if it has one (checking
/// a tag, when also given, agrees), else by tag.
pub async fn resolve_reference(store: &dyn Store, reference: &ImageRef) -> Result<Descriptor> {
    let repo = store.repository();
    if let Some(digest) = &reference.digest {
        return store
            .resolve(ManifestRef::Digest(digest))
            .await?
            .ok_or_else(|| anyhow::anyhow!("manifest {digest} not found in {repo}"));
    }
    match &reference.tag {
        Some(tag) => store
            .resolve(ManifestRef::Tag(tag))
            .await?
            .ok_or_else(|| anyhow::anyhow!("tag {tag:?} not found in {repo}")),
        None => store.default_manifest().await,
    }
}
