//! An OCI image layout as a store: `oci-layout`, `index.json`, `blobs/sha256/<hex>`, in a
//! directory (`oci:DIR`) or packed into one tar file (`oci-archive:FILE`).
//!
//! Tags are `index.json` entries carrying `org.opencontainers.image.ref.name`; [`index`] says
//! what is listed and how. Writers hold an exclusive lock on `oci-layout` (a file that is never
//! rewritten) while they change `index.json`, and every file appears by atomic rename, so
//! concurrent wharf processes and readers never see half-written state.
//!
//! Layouts come from elsewhere, so reading one trusts nothing in it: files are opened only
//! inside the layout and only when regular ([`confined`]), and nothing is read into memory past
//! a limit (`index.json`, manifests) or past the size its descriptor gives (blobs).
//!
//! An archive is read in place ([`archive`]). Written, it is staged: changes go to a layout
//! directory beside it (reads look there first, then in the archive being appended to), and
//! [`Store::commit`] writes the whole archive to a temporary file renamed over the name. A run
//! that fails leaves the archive as it was; one that changes nothing rewrites nothing.

mod archive;
mod confined;
mod index;

pub use index::{ListedImage, REF_NAME};

use super::{
    BlobIntegrityError, BlobSource, BlobStream, BlobTransfer, ManifestRef, OnBytes, Store, TagRead,
    TagWrite, VerifyingStream,
};
use crate::files::size_text;
use crate::oci::manifest::{sniff_media_type, MANIFEST_LIMIT};
use crate::oci::{Descriptor, Digest, Manifest, RawManifest, Repository};
use anyhow::{anyhow, bail, Context, Result};
use archive::{Span, TarIndex};
use async_trait::async_trait;
use confined::{LayoutDir, OpenedFile};
use futures_util::StreamExt;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

const LAYOUT_FILE: &str = "oci-layout";
const LAYOUT_CONTENT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;
const EMPTY_INDEX: &[u8] =
    br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;

/// How much of a kind of file is read into memory, and what to call the kind in a refusal.
#[derive(Clone, Copy)]
struct Limit {
    bytes: u64,
    kind: &'static str,
}

impl Limit {
    /// Refuses a file of `len` bytes past the limit, before anything is read.
    fn check(&self, len: u64, what: &str) -> Result<()> {
        if len > self.bytes {
            bail!(
                "{what} is {len} bytes, more than the {} {} may have",
                size_text(self.bytes),
                self.kind
            );
        }
        Ok(())
    }
}

/// `index.json` is read whole: room for tens of thousands of entries.
const INDEX_LIMIT: Limit = Limit {
    bytes: 8 << 20,
    kind: "an index.json",
};
/// The `oci-layout` marker is one short line.
const MARKER_LIMIT: Limit = Limit {
    bytes: 4 << 10,
    kind: "an oci-layout file",
};
const MANIFEST: Limit = Limit {
    bytes: MANIFEST_LIMIT,
    kind: "a manifest",
};

/// Where a layout's files are read from.
#[derive(Clone)]
enum Files {
    /// A layout directory, read and written in place.
    Dir(LayoutDir),
    /// An archive, read only.
    Archive(Arc<TarIndex>),
    /// An archive being written: the staging directory first, then the archive appended to.
    Staged {
        dir: LayoutDir,
        base: Option<Arc<TarIndex>>,
    },
}

/// A file of the layout, found.
enum Found {
    File(OpenedFile),
    Span(Arc<TarIndex>, Span),
}

impl Found {
    fn len(&self) -> u64 {
        match self {
            Found::File(f) => f.len,
            Found::Span(_, span) => span.size,
        }
    }

    /// Reads the file whole, refusing one larger than `limit` (also if it grows meanwhile).
    fn read(self, limit: Limit, what: &str) -> Result<Vec<u8>> {
        limit.check(self.len(), what)?;
        match self {
            Found::File(f) => {
                let mut bytes = Vec::with_capacity(f.len as usize);
                (&f.file)
                    .take(limit.bytes + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|e| anyhow!("cannot read {what}: {e}"))?;
                if bytes.len() as u64 > limit.bytes {
                    bail!(
                        "{what} grew past the {} {} may have while being read",
                        size_text(limit.bytes),
                        limit.kind
                    );
                }
                Ok(bytes)
            }
            Found::Span(tar, span) => tar
                .read(span)
                .map_err(|e| anyhow!("cannot read {what}: {e}")),
        }
    }

    /// Streams the file as a blob of `size` bytes: never more than one byte past that, so a
    /// file longer than its descriptor says (a sparse terabyte, `/dev/zero` under a blob's
    /// name) costs one byte more to refuse, and the integrity check downstream names it.
    fn stream(self, size: u64) -> BlobStream {
        let limit = size.saturating_add(1);
        match self {
            Found::File(f) => {
                let file = tokio::io::AsyncReadExt::take(tokio::fs::File::from_std(f.file), limit);
                Box::pin(tokio_util::io::ReaderStream::with_capacity(
                    file,
                    256 * 1024,
                ))
            }
            Found::Span(tar, span) => tar.stream(Span {
                size: span.size.min(limit),
                ..span
            }),
        }
    }
}

impl Files {
    /// Finds `rel`; `None` when absent. `what` names it in errors.
    fn find(&self, rel: &str, what: &str) -> Result<Option<Found>> {
        let in_archive = |tar: &Arc<TarIndex>| tar.span(rel).map(|s| Found::Span(tar.clone(), s));
        Ok(match self {
            Files::Dir(dir) => dir.open_regular(rel, what)?.map(Found::File),
            Files::Archive(tar) => in_archive(tar),
            Files::Staged { dir, base } => match dir.open_regular(rel, what)? {
                Some(file) => Some(Found::File(file)),
                None => base.as_ref().and_then(in_archive),
            },
        })
    }

    /// The directory files are written to, where there is one.
    fn write_dir(&self) -> Option<&LayoutDir> {
        match self {
            Files::Dir(dir) | Files::Staged { dir, .. } => Some(dir),
            Files::Archive(_) => None,
        }
    }
}

/// Where a staged archive goes when the store commits.
struct ArchiveOut {
    target: PathBuf,
    /// Removed with the store: a run that never commits leaves nothing behind.
    staging: tempfile::TempDir,
    changed: AtomicBool,
}

pub struct LayoutStore {
    repository: Repository,
    files: Files,
    archive_out: Option<ArchiveOut>,
}

impl LayoutStore {
    /// Opens an existing layout directory, checking it is one.
    pub async fn open(dir: &Path) -> Result<LayoutStore> {
        let not_a_layout = || {
            anyhow!(
                "{} is not an OCI image layout (no oci-layout file)",
                dir.display()
            )
        };
        let layout_dir = LayoutDir::open(dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory => not_a_layout(),
            _ => anyhow!("cannot open layout directory {}: {e}", dir.display()),
        })?;
        let store = LayoutStore {
            repository: Repository::Layout {
                dir: dir.to_path_buf(),
            },
            files: Files::Dir(layout_dir),
            archive_out: None,
        };
        store.check().await?;
        Ok(store)
    }

    /// Opens a layout directory for writing, creating an empty one if it has none.
    pub async fn create(dir: &Path) -> Result<LayoutStore> {
        ensure_blob_dir(dir)?;
        if !dir.join(LAYOUT_FILE).exists() {
            if !dir.join("index.json").exists() {
                write_atomically(&dir.join("index.json"), EMPTY_INDEX)?;
            }
            write_atomically(&dir.join(LAYOUT_FILE), LAYOUT_CONTENT.as_bytes())?;
        }
        LayoutStore::open(dir).await
    }

    /// Opens an archive for reading.
    pub async fn open_archive(file: &Path) -> Result<LayoutStore> {
        let repository = Repository::Archive {
            file: file.to_path_buf(),
        };
        let tar = index_archive(file, &repository).await?;
        let store = LayoutStore {
            repository,
            files: Files::Archive(Arc::new(tar)),
            archive_out: None,
        };
        store.check().await?;
        Ok(store)
    }

    /// Opens an archive for writing: a new one, or one to append to (rewritten whole on
    /// commit). Changes are staged in a directory beside it until then.
    pub async fn create_archive(file: &Path) -> Result<LayoutStore> {
        let repository = Repository::Archive {
            file: file.to_path_buf(),
        };
        let base = match std::fs::symlink_metadata(file) {
            Ok(_) => Some(Arc::new(index_archive(file, &repository).await?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => bail!("cannot read {repository}: {e}"),
        };
        let name = file
            .file_name()
            .ok_or_else(|| anyhow!("{repository} does not name a file"))?
            .to_string_lossy()
            .into_owned();
        let parent = match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let cannot = |e: std::io::Error| anyhow!("cannot write {repository}: {e}");
        std::fs::create_dir_all(parent).map_err(cannot)?;
        let staging = tempfile::Builder::new()
            .prefix(&format!(".{name}.staging-"))
            .tempdir_in(parent)
            .map_err(cannot)?;
        ensure_blob_dir(staging.path())?;
        let index = match &base {
            Some(base) => Files::Archive(base.clone())
                .find("index.json", "")?
                .expect("an indexed archive has an index.json")
                .read(INDEX_LIMIT, &format!("index.json in {repository}"))?,
            None => EMPTY_INDEX.to_vec(),
        };
        write_atomically(&staging.path().join("index.json"), &index)?;
        write_atomically(&staging.path().join(LAYOUT_FILE), LAYOUT_CONTENT.as_bytes())?;
        let dir = LayoutDir::open(staging.path()).map_err(cannot)?;
        let store = LayoutStore {
            repository,
            files: Files::Staged { dir, base },
            archive_out: Some(ArchiveOut {
                target: file.to_path_buf(),
                staging,
                changed: AtomicBool::new(false),
            }),
        };
        store.check().await?;
        Ok(store)
    }

    /// Checks the `oci-layout` marker and that `index.json` reads.
    async fn check(&self) -> Result<()> {
        let what = self.label(LAYOUT_FILE);
        let marker = self
            .read(LAYOUT_FILE, MARKER_LIMIT, what.clone())
            .await?
            .ok_or_else(|| match &self.repository {
                Repository::Layout { dir } => anyhow!(
                    "{} is not an OCI image layout (no oci-layout file)",
                    dir.display()
                ),
                other => anyhow!("{other} is not an OCI image layout (no oci-layout file)"),
            })?;
        let version: serde_json::Value =
            serde_json::from_slice(&marker).with_context(|| format!("{what} is malformed"))?;
        if version.get("imageLayoutVersion").and_then(|v| v.as_str()) != Some("1.0.0") {
            bail!("{what} is malformed: expected imageLayoutVersion 1.0.0");
        }
        self.read_index().await?;
        Ok(())
    }

    /// How messages name a file of the layout: its path in a directory, `NAME in
    /// oci-archive:FILE` in an archive.
    fn label(&self, rel: &str) -> String {
        match &self.repository {
            Repository::Layout { dir } => dir.join(rel).display().to_string(),
            other => format!("{rel} in {other}"),
        }
    }

    fn blob_rel(digest: &Digest) -> String {
        format!("blobs/sha256/{}", digest.hex())
    }

    /// The directory writes go to, or why there is none.
    fn writable(&self) -> Result<(&LayoutDir, &Path)> {
        match self.files.write_dir() {
            Some(dir) => Ok((dir, dir.path())),
            None => bail!(
                "{} is read here, not written: an archive is written whole by `wharf push` or \
                 `wharf mirror` naming it as the destination; sign and attest in a registry or \
                 an oci:DIR layout, then mirror that into the archive",
                self.repository
            ),
        }
    }

    fn mark_changed(&self) {
        if let Some(out) = &self.archive_out {
            out.changed.store(true, Ordering::Relaxed);
        }
    }

    /// Runs a lookup of the layout's files on the blocking pool (opening and reading files
    /// blocks).
    async fn with_files<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Files) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let files = self.files.clone();
        tokio::task::spawn_blocking(move || job(&files)).await?
    }

    /// Reads `rel` whole, refusing more than `limit`; `None` when absent.
    async fn read(&self, rel: &str, limit: Limit, what: String) -> Result<Option<Vec<u8>>> {
        let rel = rel.to_string();
        self.with_files(move |files| {
            files
                .find(&rel, &what)?
                .map(|found| found.read(limit, &what))
                .transpose()
        })
        .await
    }

    /// The size of `rel`, or `None` when absent.
    async fn len(&self, rel: String, what: String) -> Result<Option<u64>> {
        self.with_files(move |files| Ok(files.find(&rel, &what)?.map(|f| f.len())))
            .await
    }

    async fn read_index(&self) -> Result<Vec<Descriptor>> {
        let what = self.label("index.json");
        let bytes = self
            .read("index.json", INDEX_LIMIT, what.clone())
            .await?
            .ok_or_else(|| anyhow!("{what} is missing"))?;
        index::parse_entries(&bytes).with_context(|| format!("{what} is malformed"))
    }

    /// Runs `change` on `index.json`'s entries under the layout's write lock. `change` returns
    /// `false` to leave the file untouched; so does this.
    async fn update_index<F>(&self, change: F) -> Result<bool>
    where
        F: FnOnce(&mut Vec<serde_json::Value>) -> Result<bool> + Send + 'static,
    {
        let (dir, path) = self.writable()?;
        let (dir, index_path) = (dir.clone(), path.join("index.json"));
        let (marker, what) = (self.label(LAYOUT_FILE), self.label("index.json"));
        let changed = tokio::task::spawn_blocking(move || -> Result<bool> {
            let lock = dir
                .open_regular(LAYOUT_FILE, &marker)?
                .ok_or_else(|| anyhow!("{marker} is missing"))?;
            lock.file
                .lock()
                .with_context(|| format!("cannot lock {marker}"))?;
            let bytes = dir
                .open_regular("index.json", &what)?
                .ok_or_else(|| anyhow!("{what} is missing"))
                .and_then(|f| Found::File(f).read(INDEX_LIMIT, &what))?;
            let mut index: serde_json::Value =
                serde_json::from_slice(&bytes).with_context(|| format!("{what} is malformed"))?;
            let entries = index
                .get_mut("manifests")
                .and_then(|m| m.as_array_mut())
                .ok_or_else(|| anyhow!("{what} is malformed: no manifests array"))?;
            if !change(entries)? {
                return Ok(false);
            }
            let mut out = serde_json::to_vec(&index)?;
            out.push(b'\n');
            write_atomically(&index_path, &out)?;
            Ok(true)
        })
        .await??;
        if changed {
            self.mark_changed();
        }
        Ok(changed)
    }

    async fn read_manifest_bytes(&self, digest: &Digest) -> Result<Option<bytes::Bytes>> {
        let what = format!("manifest {digest} in {}", self.repository);
        let Some(bytes) = self
            .read(&Self::blob_rel(digest), MANIFEST, what.clone())
            .await?
        else {
            return Ok(None);
        };
        if !digest.matches(&bytes) {
            bail!(
                "blob {digest} in {} is corrupt: its bytes hash to {}",
                self.repository,
                Digest::of(&bytes)
            );
        }
        Ok(Some(bytes.into()))
    }

    async fn write_blob_bytes(&self, digest: &Digest, bytes: &[u8]) -> Result<()> {
        let (_, dir) = self.writable()?;
        let rel = Self::blob_rel(digest);
        let what = format!("blob {digest} in {}", self.repository);
        if self.len(rel.clone(), what).await?.is_none() {
            write_atomically(&dir.join(rel), bytes)?;
            self.mark_changed();
        }
        Ok(())
    }
}

/// Indexes the archive at `file` on the blocking pool.
async fn index_archive(file: &Path, repository: &Repository) -> Result<TarIndex> {
    let (file, shown) = (file.to_path_buf(), repository.to_string());
    tokio::task::spawn_blocking(move || TarIndex::open(&file, &shown)).await?
}

/// Creates `blobs/sha256` under `dir`, refusing to write through a symbolic link or into
/// something that is not a directory.
fn ensure_blob_dir(dir: &Path) -> Result<()> {
    for sub in ["blobs", "blobs/sha256"] {
        let path = dir.join(sub);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => continue,
            Ok(_) => bail!(
                "{} is not a directory (a symbolic link or a file): wharf writes blobs only into \
                 the layout's own blobs/sha256 directory",
                path.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir_all(&path)
                .with_context(|| format!("cannot create layout directory {}", dir.display()))?,
            Err(e) => bail!("cannot read {}: {e}", path.display()),
        }
    }
    Ok(())
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

/// An `index.json` entry for `manifest`, without a name.
fn entry_for(manifest: &RawManifest) -> serde_json::Value {
    serde_json::json!({
        "mediaType": manifest.media_type,
        "digest": manifest.digest,
        "size": manifest.bytes.len(),
    })
}

#[async_trait]
impl Store for LayoutStore {
    fn repository(&self) -> &Repository {
        &self.repository
    }

    async fn resolve(&self, reference: ManifestRef<'_>) -> Result<Option<Descriptor>> {
        let entries = self.read_index().await?;
        let found = match reference {
            ManifestRef::Tag(tag) => entries
                .into_iter()
                .find(|e| e.annotation(REF_NAME) == Some(tag)),
            ManifestRef::Digest(digest) => {
                match entries.into_iter().find(|e| &e.digest == digest) {
                    Some(entry) => Some(entry),
                    None => return Ok(self.get_manifest(reference).await?.map(|m| m.descriptor())),
                }
            }
        };
        let Some(mut entry) = found else {
            return Ok(None);
        };
        // Listed is not enough: the manifest itself must be there, and be one (a registry
        // answers for the manifest, not for a list naming it).
        let what = format!("manifest {} in {}", entry.digest, self.repository);
        match self
            .len(Self::blob_rel(&entry.digest), what.clone())
            .await?
        {
            None => return Ok(None),
            Some(len) => MANIFEST.check(len, &what)?,
        }
        entry.annotations = None;
        Ok(Some(entry))
    }

    async fn get_manifest(&self, reference: ManifestRef<'_>) -> Result<Option<RawManifest>> {
        let (digest, media_type) = match reference {
            ManifestRef::Tag(_) => match self.resolve(reference).await? {
                Some(d) => (d.digest, Some(d.media_type)),
                None => return Ok(None),
            },
            ManifestRef::Digest(d) => (d.clone(), None),
        };
        let Some(bytes) = self.read_manifest_bytes(&digest).await? else {
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
            let (entry, tag) = (entry_for(manifest), tag.to_string());
            self.update_index(move |entries| Ok(index::set_tag(entries, entry, &tag)))
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
        let (entry, tag) = (entry_for(manifest), tag.to_string());
        let expected = base.digest().map(|d| d.to_string());
        let swapped = Arc::new(AtomicBool::new(false));
        let flag = swapped.clone();
        self.update_index(move |entries| {
            if index::tagged_digest(entries, &tag) != expected.as_deref() {
                return Ok(false);
            }
            flag.store(true, Ordering::Relaxed);
            Ok(index::set_tag(entries, entry, &tag))
        })
        .await?;
        Ok(if swapped.load(Ordering::Relaxed) {
            TagWrite::Written
        } else {
            TagWrite::Superseded
        })
    }

    /// `index.json` changes under the layout's lock: a true compare-and-swap.
    fn overwrite_window(&self) -> Option<std::time::Duration> {
        None
    }

    async fn blob_exists(&self, blob: &Descriptor) -> Result<bool> {
        let what = format!("blob {} in {}", blob.digest, self.repository);
        Ok(self.len(Self::blob_rel(&blob.digest), what).await? == Some(blob.size))
    }

    async fn open_blob_raw(&self, blob: &Descriptor) -> Result<BlobStream> {
        let what = format!("blob {} in {}", blob.digest, self.repository);
        let missing = format!("blob {} is missing from {}", blob.digest, self.repository);
        let rel = Self::blob_rel(&blob.digest);
        let found = self
            .with_files(move |files| files.find(&rel, &what))
            .await?;
        Ok(found.ok_or_else(|| anyhow!(missing))?.stream(blob.size))
    }

    async fn put_blob(
        &self,
        blob: &Descriptor,
        source: &dyn BlobSource,
        on_bytes: OnBytes,
    ) -> Result<BlobTransfer> {
        let (_, dir) = self.writable()?;
        let path = dir.join(Self::blob_rel(&blob.digest));
        let blob_dir = path
            .parent()
            .expect("blob paths have a parent")
            .to_path_buf();
        let tmp = tempfile::NamedTempFile::new_in(&blob_dir)
            .with_context(|| format!("cannot write in {}", blob_dir.display()))?;
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
        self.mark_changed();
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
        let mut images = self.images().await?.unwrap_or_default();
        match images.len() {
            1 => Ok(images.remove(0).descriptor),
            0 => bail!("{} has no images in its index.json", self.repository),
            n => {
                let names: Vec<String> = images
                    .iter()
                    .map(|i| match i.tags.first() {
                        Some(tag) => tag.clone(),
                        None => i.descriptor.digest.to_string(),
                    })
                    .collect();
                bail!(
                    "{repo} holds {n} images: choose one with {repo}:REF or {repo}@DIGEST ({})",
                    names.join(", "),
                    repo = self.repository,
                )
            }
        }
    }

    /// Referrers that `index.json` lists (oras lists every manifest it writes, untagged, and
    /// finds referrers by their `subject`), with those of the fallback tag index. `None` when
    /// none is listed: callers then read the fallback tag index as for any store.
    async fn referrers(&self, digest: &Digest) -> Result<Option<Vec<Descriptor>>> {
        let mut found: Vec<Descriptor> = Vec::new();
        for entry in self.read_index().await? {
            if entry.annotation(REF_NAME).is_some()
                || found.iter().any(|f| f.digest == entry.digest)
            {
                continue;
            }
            let Some(manifest) = self
                .get_manifest(ManifestRef::Digest(&entry.digest))
                .await?
            else {
                continue;
            };
            let parsed = manifest.parse()?;
            if parsed.subject().is_some_and(|s| &s.digest == digest) {
                let mut referrer = manifest.descriptor();
                referrer.artifact_type = parsed.artifact_type().map(str::to_string);
                referrer.annotations = match &parsed {
                    Manifest::Image(m) => m.annotations.clone(),
                    Manifest::Index(i) => i.annotations.clone(),
                };
                found.push(referrer);
            }
        }
        if found.is_empty() {
            return Ok(None);
        }
        let fallback = digest.tag_prefix();
        if let Some(index) = self.get_manifest(ManifestRef::Tag(&fallback)).await? {
            if let Manifest::Index(index) = index.parse()? {
                for entry in index.manifests {
                    if !found.iter().any(|f| f.digest == entry.digest) {
                        found.push(entry);
                    }
                }
            }
        }
        Ok(Some(found))
    }

    async fn list_untagged(&self, manifest: &RawManifest) -> Result<()> {
        let entry = entry_for(manifest);
        self.update_index(move |entries| Ok(index::add_untagged(entries, entry)))
            .await?;
        Ok(())
    }

    /// The images of `index.json`. oras lists every manifest it writes (platform manifests and
    /// referrers too) without a name: an untagged entry that another listed index contains,
    /// or that refers to a subject, is part of an image, not one.
    async fn images(&self) -> Result<Option<Vec<ListedImage>>> {
        let mut images = index::listed_images(&self.read_index().await?);
        let mut parts = HashSet::new();
        for image in &images {
            let digest = &image.descriptor.digest;
            let Some(manifest) = self.get_manifest(ManifestRef::Digest(digest)).await? else {
                continue;
            };
            let parsed = manifest.parse()?;
            if parsed.subject().is_some() {
                parts.insert(digest.clone());
            }
            parts.extend(parsed.child_manifests().iter().map(|c| c.digest.clone()));
        }
        images.retain(|i| !i.tags.is_empty() || !parts.contains(&i.descriptor.digest));
        Ok(Some(images))
    }

    async fn commit(&self) -> Result<()> {
        let Some(out) = &self.archive_out else {
            return Ok(());
        };
        let Files::Staged { base, .. } = &self.files else {
            unreachable!("an archive being written is staged");
        };
        if base.is_some() && !out.changed.load(Ordering::Relaxed) {
            return Ok(());
        }
        let (target, staging) = (out.target.clone(), out.staging.path().to_path_buf());
        let (base, shown) = (base.clone(), self.repository.to_string());
        tokio::task::spawn_blocking(move || {
            archive::write_archive(&target, &staging, base.as_deref(), &shown)
        })
        .await?
    }
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
        // The image the tag left stays listed, untagged.
        let images = store.images().await.unwrap().unwrap();
        let listed: Vec<(&Digest, &[String])> = images
            .iter()
            .map(|i| (&i.descriptor.digest, i.tags.as_slice()))
            .collect();
        assert_eq!(
            listed,
            [(&a.digest, &[][..]), (&b.digest, &["v1".to_string()][..])]
        );
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
