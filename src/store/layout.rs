//! An OCI image layout directory as a store: `oci-layout`, `index.json`, `blobs/sha256/<hex>`.
//!
//! Tags are `index.json` entries carrying `org.opencontainers.image.ref.name`; manifests written
//! by digest only are blobs. Writers hold an exclusive lock on `oci-layout` (a file that is never
//! rewritten) while they change `index.json`, and every file appears by atomic rename, so
//! concurrent wharf processes and readers never see half-written state.

use super::{
    BlobIntegrityError, BlobSource, BlobStream, BlobTransfer, ManifestRef, OnBytes, Store, TagRead,
    TagWrite, VerifyingStream,
};
use crate::oci::manifest::sniff_media_type;
use crate::oci::{Descriptor, Digest, RawManifest, Repository};
use anyhow::{anyhow, bail, Context, Result};
use async_trait::async_trait;
use futures_util::StreamExt;
use std::io::Write;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
const LAYOUT_FILE: &str = "oci-layout";
const LAYOUT_CONTENT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

pub struct LayoutStore {
    dir: PathBuf,
    repository: Repository,
}

impl LayoutStore {
    /// Opens an existing layout, checking it is one.
    pub async fn open(dir: &Path) -> Result<LayoutStore> {
        let marker = dir.join(LAYOUT_FILE);
        let text = tokio::fs::read_to_string(&marker).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                anyhow!(
                    "{} is not an OCI image layout (no oci-layout file)",
                    dir.display()
                )
            } else {
                anyhow!("cannot read {}: {e}", marker.display())
            }
        })?;
        let version: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is malformed", marker.display()))?;
        if version.get("imageLayoutVersion").and_then(|v| v.as_str()) != Some("1.0.0") {
            bail!(
                "{} is malformed: expected imageLayoutVersion 1.0.0",
                marker.display()
            );
        }
        let store = LayoutStore::at(dir);
        store.read_index().await?;
        Ok(store)
    }

    /// Opens a layout for writing, creating an empty one if the directory has none.
    pub async fn create(dir: &Path) -> Result<LayoutStore> {
        if !dir.join(LAYOUT_FILE).exists() {
            tokio::fs::create_dir_all(dir.join("blobs/sha256"))
                .await
                .with_context(|| format!("cannot create layout directory {}", dir.display()))?;
            if !dir.join("index.json").exists() {
                write_atomically(
                    &dir.join("index.json"),
                    br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
                )?;
            }
            write_atomically(&dir.join(LAYOUT_FILE), LAYOUT_CONTENT.as_bytes())?;
        }
        LayoutStore::open(dir).await
    }

    fn at(dir: &Path) -> LayoutStore {
        LayoutStore {
            dir: dir.to_path_buf(),
            repository: Repository::Layout {
                dir: dir.to_path_buf(),
            },
        }
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest.hex())
    }

    fn index_path(&self) -> PathBuf {
        self.dir.join("index.json")
    }

    async fn read_index(&self) -> Result<Vec<Descriptor>> {
        let path = self.index_path();
        let bytes = tokio::fs::read(&path)
            .await
            .with_context(|| format!("cannot read {}", path.display()))?;
        parse_index_entries(&bytes).with_context(|| format!("{} is malformed", path.display()))
    }

    /// Runs `change` on `index.json` under the layout's write lock. `change` returns `false`
    /// to leave the file untouched.
    async fn update_index<F>(&self, change: F) -> Result<bool>
    where
        F: FnOnce(&mut Vec<serde_json::Value>) -> Result<bool> + Send + 'static,
    {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || -> Result<bool> {
            let lock = std::fs::File::open(dir.join(LAYOUT_FILE))
                .with_context(|| format!("cannot open {}", dir.join(LAYOUT_FILE).display()))?;
            lock.lock()
                .with_context(|| format!("cannot lock {}", dir.join(LAYOUT_FILE).display()))?;
            let path = dir.join("index.json");
            let bytes =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let mut index: serde_json::Value = serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is malformed", path.display()))?;
            let entries = index
                .get_mut("manifests")
                .and_then(|m| m.as_array_mut())
                .ok_or_else(|| anyhow!("{} is malformed: no manifests array", path.display()))?;
            if !change(entries)? {
                return Ok(false);
            }
            let mut out = serde_json::to_vec(&index)?;
            out.push(b'\n');
            write_atomically(&path, &out)?;
            Ok(true)
        })
        .await?
    }

    async fn read_blob_verified(&self, digest: &Digest) -> Result<Option<bytes::Bytes>> {
        match tokio::fs::read(self.blob_path(digest)).await {
            Ok(bytes) => {
                if !digest.matches(&bytes) {
                    bail!(
                        "blob {digest} in {} is corrupt: its bytes hash to {}",
                        self.repository,
                        Digest::of(&bytes)
                    );
                }
                Ok(Some(bytes.into()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow!(
                "cannot read blob {digest} in {}: {e}",
                self.repository
            )),
        }
    }

    async fn write_blob_bytes(&self, digest: &Digest, bytes: &[u8]) -> Result<()> {
        let path = self.blob_path(digest);
        if !path.exists() {
            write_atomically(&path, bytes)?;
        }
        Ok(())
    }
}

fn parse_index_entries(bytes: &[u8]) -> Result<Vec<Descriptor>> {
    #[derive(serde::Deserialize)]
    struct Index {
        manifests: Vec<Descriptor>,
    }
    let index: Index = serde_json::from_slice(bytes)?;
    Ok(index.manifests)
}

/// Writes a file so readers see either nothing or all of it.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().expect("layout paths have a parent");
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn entry_ref_name(entry: &serde_json::Value) -> Option<&str> {
    entry.get("annotations")?.get(REF_NAME)?.as_str()
}

#[async_trait]
impl Store for LayoutStore {
    fn repository(&self) -> &Repository {
        &self.repository
    }

    async fn resolve(&self, reference: ManifestRef<'_>) -> Result<Option<Descriptor>> {
        let entries = self.read_index().await?;
        match reference {
            ManifestRef::Tag(tag) => Ok(entries
                .into_iter()
                .find(|e| e.annotation(REF_NAME) == Some(tag))
                .map(|mut e| {
                    e.annotations = None;
                    e
                })),
            ManifestRef::Digest(digest) => {
                if let Some(mut e) = entries.into_iter().find(|e| &e.digest == digest) {
                    e.annotations = None;
                    return Ok(Some(e));
                }
                Ok(self.get_manifest(reference).await?.map(|m| m.descriptor()))
            }
        }
    }

    async fn get_manifest(&self, reference: ManifestRef<'_>) -> Result<Option<RawManifest>> {
        let (digest, media_type) = match reference {
            ManifestRef::Tag(_) => match self.resolve(reference).await? {
                Some(d) => (d.digest, Some(d.media_type)),
                None => return Ok(None),
            },
            ManifestRef::Digest(d) => (d.clone(), None),
        };
        let Some(bytes) = self.read_blob_verified(&digest).await? else {
            return Ok(None);
        };
        let media_type = match media_type {
            Some(m) => m,
            None => sniff_media_type(&bytes)
                .with_context(|| format!("manifest {digest} in {}", self.repository))?,
        };
        Ok(Some(RawManifest::new(bytes, Some(&media_type))?))
    }

    async fn put_manifest(&self, manifest: &RawManifest, tag: Option<&str>) -> Result<()> {
        self.write_blob_bytes(&manifest.digest, &manifest.bytes)
            .await?;
        if let Some(tag) = tag {
            let entry = tagged_entry(manifest, tag);
            let tag = tag.to_string();
            self.update_index(move |entries| {
                entries.retain(|e| entry_ref_name(e) != Some(&tag));
                entries.push(entry);
                Ok(true)
            })
            .await?;
        }
        Ok(())
    }

    async fn put_manifest_if(
        &self,
        manifest: &RawManifest,
        tag: &str,
        base: &TagRead,
    ) -> Result<TagWrite> {
        self.write_blob_bytes(&manifest.digest, &manifest.bytes)
            .await?;
        let entry = tagged_entry(manifest, tag);
        let tag = tag.to_string();
        let expected = base.digest().map(|d| d.to_string());
        self.update_index(move |entries| {
            let current = entries
                .iter()
                .find(|e| entry_ref_name(e) == Some(&tag))
                .and_then(|e| e.get("digest")?.as_str().map(str::to_string));
            if current != expected {
                return Ok(false);
            }
            entries.retain(|e| entry_ref_name(e) != Some(&tag));
            entries.push(entry);
            Ok(true)
        })
        .await
        .map(|written| {
            if written {
                TagWrite::Written
            } else {
                TagWrite::Superseded
            }
        })
    }

    /// `index.json` changes under the layout's lock: a true compare-and-swap.
    fn overwrite_window(&self) -> Option<std::time::Duration> {
        None
    }

    async fn blob_exists(&self, blob: &Descriptor) -> Result<bool> {
        match tokio::fs::metadata(self.blob_path(&blob.digest)).await {
            Ok(meta) => Ok(meta.len() == blob.size),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(anyhow!(
                "cannot read blob {} in {}: {e}",
                blob.digest,
                self.repository
            )),
        }
    }

    async fn open_blob_raw(&self, blob: &Descriptor) -> Result<BlobStream> {
        let path = self.blob_path(&blob.digest);
        let file = tokio::fs::File::open(&path).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                anyhow!("blob {} is missing from {}", blob.digest, self.repository)
            } else {
                anyhow!(
                    "cannot read blob {} in {}: {e}",
                    blob.digest,
                    self.repository
                )
            }
        })?;
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024);
        Ok(Box::pin(stream))
    }

    async fn put_blob(
        &self,
        blob: &Descriptor,
        source: &dyn BlobSource,
        on_bytes: OnBytes,
    ) -> Result<BlobTransfer> {
        let path = self.blob_path(&blob.digest);
        let dir = path
            .parent()
            .expect("blob paths have a parent")
            .to_path_buf();
        let tmp = tempfile::NamedTempFile::new_in(&dir)
            .with_context(|| format!("cannot write in {}", dir.display()))?;
        let (std_file, tmp_path) = tmp.into_parts();
        let mut file = tokio::fs::File::from_std(std_file);
        let mut stream = VerifyingStream::new(
            source.open().await?,
            blob.digest.clone(),
            blob.size,
            source.describe(),
        );
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| match e.into_inner() {
                Some(inner) => match inner.downcast::<BlobIntegrityError>() {
                    Ok(integrity) => anyhow::Error::new(*integrity),
                    Err(other) => anyhow!("reading blob {} failed: {other}", blob.digest),
                },
                None => anyhow!("reading blob {} failed", blob.digest),
            })?;
            file.write_all(&chunk).await.with_context(|| {
                format!("cannot write blob {} in {}", blob.digest, self.repository)
            })?;
            on_bytes(chunk.len() as u64);
        }
        file.flush().await?;
        drop(file);
        tmp_path
            .persist(&path)
            .with_context(|| format!("cannot write blob {} in {}", blob.digest, self.repository))?;
        Ok(BlobTransfer::Uploaded)
    }

    async fn list_tags(&self) -> Result<Vec<String>> {
        let mut tags: Vec<String> = self
            .read_index()
            .await?
            .iter()
            .filter_map(|e| e.annotation(REF_NAME).map(str::to_string))
            .collect();
        tags.sort();
        Ok(tags)
    }

    async fn default_manifest(&self) -> Result<Descriptor> {
        let mut entries = self.read_index().await?;
        match entries.len() {
            1 => {
                let mut entry = entries.remove(0);
                entry.annotations = None;
                Ok(entry)
            }
            0 => bail!("{} has no images in its index.json", self.repository),
            n => {
                let names: Vec<&str> = entries
                    .iter()
                    .filter_map(|e| e.annotation(REF_NAME))
                    .collect();
                bail!(
                    "{} holds {n} images: choose one with oci:DIR:REF (refs: {}) or oci:DIR@DIGEST",
                    self.repository,
                    names.join(", ")
                )
            }
        }
    }
}

fn tagged_entry(manifest: &RawManifest, tag: &str) -> serde_json::Value {
    serde_json::json!({
        "mediaType": manifest.media_type,
        "digest": manifest.digest,
        "size": manifest.bytes.len(),
        "annotations": { REF_NAME: tag },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::BytesBlob;

    fn manifest(n: u8) -> RawManifest {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"annotations":{{"n":"{n}"}}}}"#
        );
        RawManifest::new(body.into_bytes(), None).unwrap()
    }

    #[tokio::test]
    async fn tags_round_trip_and_cas() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::create(dir.path()).await.unwrap();
        let (a, b) = (manifest(1), manifest(2));
        store.put_manifest(&a, Some("v1")).await.unwrap();
        let got = store
            .get_manifest(ManifestRef::Tag("v1"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.bytes, a.bytes);
        // A stale expectation loses; the right one wins.
        let stale = TagRead {
            manifest: None,
            sent: std::time::Instant::now(),
        };
        let fresh = store.read_tag("v1").await.unwrap();
        assert!(matches!(
            store.put_manifest_if(&b, "v1", &stale).await.unwrap(),
            TagWrite::Superseded
        ));
        assert!(matches!(
            store.put_manifest_if(&b, "v1", &fresh).await.unwrap(),
            TagWrite::Written
        ));
        assert_eq!(store.list_tags().await.unwrap(), vec!["v1".to_string()]);
        assert_eq!(store.default_manifest().await.unwrap().digest, b.digest);
    }

    #[tokio::test]
    async fn blob_write_is_verified() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::create(dir.path()).await.unwrap();
        let good = Descriptor::new("application/octet-stream", Digest::of(b"abc"), 3);
        let source = BytesBlob(bytes::Bytes::from_static(b"abc"));
        store
            .put_blob(&good, &source, crate::store::no_progress())
            .await
            .unwrap();
        assert!(store.blob_exists(&good).await.unwrap());
        let bad = Descriptor::new("application/octet-stream", Digest::of(b"abd"), 3);
        let err = store
            .put_blob(&bad, &source, crate::store::no_progress())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
        assert!(!store.blob_exists(&bad).await.unwrap());
    }

    #[tokio::test]
    async fn malformed_index_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        LayoutStore::create(dir.path()).await.unwrap();
        std::fs::write(dir.path().join("index.json"), b"{not json").unwrap();
        let err = LayoutStore::open(dir.path()).await.err().unwrap();
        assert!(
            format!("{err:#}").contains("index.json is malformed"),
            "{err:#}"
        );
    }
}
