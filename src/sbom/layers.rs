//! An image's layers applied in order as a sparse virtual filesystem: only the files an SBOM
//! reads are kept (package databases, os-release, Debian copyright files, and the
//! cargo-auditable data of ELF binaries), with OCI whiteouts honoured.
//!
//! Layers are streamed: a blocking task reads the tar (gzip detected by magic bytes) from a
//! channel fed by the store's verifying blob stream, so a layer is never held in memory.
//! ELF files are read whole, one at a time and only up to [`ELF_SIZE_CAP`], to look for a
//! `.dep-v0` section; only the extracted JSON is kept.

use super::packages;
use crate::oci::Descriptor;
use crate::store::Store;
use anyhow::{anyhow, bail, Context, Result};
use bytes::{Buf, Bytes};
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Component, Path};

/// ELF files larger than this are not searched for cargo-auditable data.
pub const ELF_SIZE_CAP: u64 = 64 << 20;
/// Package databases larger than this are refused (a dpkg status of 10,000 packages is ~10 MiB).
const TEXT_SIZE_CAP: u64 = 64 << 20;
/// Debian copyright files larger than this are skipped.
const COPYRIGHT_SIZE_CAP: u64 = 4 << 20;
/// Upper bound on the decompressed cargo-auditable JSON of one binary.
const AUDITABLE_JSON_CAP: usize = 8 << 20;

const ELF_MAGIC: [u8; 4] = [0x7f, b'E', b'L', b'F'];
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// What is kept of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A small text file read whole (os-release, dpkg status, apk database).
    Text(Vec<u8>),
    /// A Debian machine-readable copyright file, reduced to its licence names.
    Licenses(Vec<String>),
    /// An ELF binary's decompressed cargo-auditable JSON.
    Cargo(String),
    /// A symbolic link at a path of interest, with its target as written.
    Symlink(String),
}

/// The kept files of the image so far, by normalised path (`etc/os-release`).
#[derive(Debug, Default, Clone)]
pub struct Filesystem {
    nodes: BTreeMap<String, Node>,
}

/// How a path is treated when a layer has a regular file there.
#[derive(Debug, PartialEq, Eq)]
enum Interest {
    Text,
    Copyright,
    /// Anything else: kept only if it is an ELF file with cargo-auditable data.
    Other,
}

fn interest(path: &str) -> Interest {
    match path {
        "etc/os-release"
        | "usr/lib/os-release"
        | "var/lib/dpkg/status"
        | "lib/apk/db/installed"
        | "usr/lib/apk/db/installed" => return Interest::Text,
        _ => {}
    }
    if let Some(name) = path.strip_prefix("var/lib/dpkg/status.d/") {
        if !name.contains('/') && !name.ends_with(".md5sums") && !name.starts_with('.') {
            return Interest::Text;
        }
    }
    if let Some(rest) = path.strip_prefix("usr/share/doc/") {
        if let Some((pkg, "copyright")) = rest.split_once('/') {
            if !pkg.is_empty() {
                return Interest::Copyright;
            }
        }
    }
    Interest::Other
}

/// Normalises an archive path: no leading `/` or `./`, no `.` segments, `..` applied.
pub fn normalize(path: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    parts.join("/")
}

fn parent_and_name(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some((dir, name)) => (dir, name),
        None => ("", path),
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// What one layer does to the layers below it, gathered while reading it: whiteouts only
/// hide lower layers, whatever their order in the tar.
#[derive(Default)]
struct LayerChanges {
    opaque_dirs: Vec<String>,
    whiteouts: Vec<String>,
    /// Lower-layer files or trees replaced by a non-directory entry.
    replaced_trees: Vec<String>,
    /// Lower-layer files replaced by a directory.
    replaced_files: Vec<String>,
    added: BTreeMap<String, Node>,
}

impl Filesystem {
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// The kept files, by path.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.nodes.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Kept files directly inside `dir`.
    pub fn children<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = (&'a str, &'a Node)> {
        let prefix = format!("{dir}/");
        self.nodes
            .range(prefix.clone()..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .filter(move |(k, _)| !k[dir.len() + 1..].contains('/'))
            .map(|(k, v)| (k.as_str(), v))
    }

    /// The content of a text file at `path`, following one symbolic link (relative or
    /// absolute) if `path` is one.
    pub fn text(&self, path: &str) -> Option<&[u8]> {
        match self.nodes.get(path)? {
            Node::Text(bytes) => Some(bytes),
            Node::Symlink(target) => {
                let resolved = if target.starts_with('/') {
                    normalize(Path::new(target))
                } else {
                    let (dir, _) = parent_and_name(path);
                    normalize(&Path::new(dir).join(target))
                };
                match self.nodes.get(&resolved)? {
                    Node::Text(bytes) => Some(bytes),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    fn has_tree(&self, path: &str) -> bool {
        if path.is_empty() {
            return !self.nodes.is_empty();
        }
        if self.nodes.contains_key(path) {
            return true;
        }
        let prefix = format!("{path}/");
        self.nodes
            .range(prefix.clone()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(&prefix))
    }

    /// Removes `path` and everything under it (`""`: everything).
    fn remove_tree(&mut self, path: &str) {
        if path.is_empty() {
            self.nodes.clear();
            return;
        }
        self.nodes.remove(path);
        self.remove_children(path);
    }

    /// Removes everything under directory `dir` (`""`: everything), keeping `dir` itself.
    fn remove_children(&mut self, dir: &str) {
        if dir.is_empty() {
            self.nodes.clear();
            return;
        }
        let prefix = format!("{dir}/");
        let doomed: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            self.nodes.remove(&k);
        }
    }

    /// Reads one layer (an uncompressed or gzip-compressed tar) to its end and applies it.
    pub fn apply_layer<R: Read>(&mut self, reader: R) -> Result<()> {
        let mut reader = open_decompressed(reader)?;
        let changes = {
            let mut archive = tar::Archive::new(&mut reader);
            let changes = self.scan(&mut archive)?;
            // Read what is left (tar padding, the gzip trailer and its CRC check) so that
            // the blob stream below reaches its end, where its digest is verified.
            io::copy(&mut archive.into_inner(), &mut io::sink())
                .context("reading the end of the layer")?;
            changes
        };
        self.apply(changes);
        Ok(())
    }

    fn scan<R: Read>(&self, archive: &mut tar::Archive<R>) -> Result<LayerChanges> {
        let mut changes = LayerChanges::default();
        for entry in archive.entries().context("layer is not a tar archive")? {
            let mut entry = entry.context("layer is not a valid tar archive")?;
            let path = normalize(&entry.path().context("tar entry has a bad path")?);
            if path.is_empty() {
                continue; // the root directory itself
            }
            let (dir, name) = parent_and_name(&path);
            if name == OPAQUE_MARKER {
                changes.opaque_dirs.push(dir.to_string());
                continue;
            }
            if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
                if !hidden.is_empty() {
                    changes.whiteouts.push(join(dir, hidden));
                }
                continue;
            }
            let kind = entry.header().entry_type();
            use tar::EntryType as T;
            match kind {
                T::Directory => {
                    if self.nodes.contains_key(&path) {
                        changes.replaced_files.push(path.clone());
                    }
                    // A directory replaces a file of this layer seen earlier too.
                    changes.added.remove(&path);
                    continue;
                }
                T::Regular
                | T::Continuous
                | T::GNUSparse
                | T::Symlink
                | T::Link
                | T::Char
                | T::Block
                | T::Fifo => {}
                _ => continue, // PAX global headers and the like: not files
            }
            if self.has_tree(&path) {
                changes.replaced_trees.push(path.clone());
            }
            changes.added.remove(&path);
            let interest = interest(&path);
            match kind {
                T::Symlink if interest != Interest::Other => {
                    if let Some(target) = entry.link_name().ok().flatten() {
                        let target = target.to_string_lossy().into_owned();
                        changes.added.insert(path, Node::Symlink(target));
                    }
                }
                T::Link => {
                    // A hard link shares its target's content: the target came earlier in
                    // this layer or lives in a lower one.
                    if let Some(target) = entry.link_name().ok().flatten() {
                        let target = normalize(&target);
                        let node = changes
                            .added
                            .get(&target)
                            .or_else(|| self.nodes.get(&target))
                            .cloned();
                        if let Some(node) = node {
                            if !matches!(node, Node::Symlink(_)) {
                                changes.added.insert(path, node);
                            }
                        }
                    }
                }
                T::Regular | T::Continuous => {
                    let size = entry.size();
                    let node = match interest {
                        Interest::Text => {
                            if size > TEXT_SIZE_CAP {
                                bail!("{path} is too large ({size} bytes) to read");
                            }
                            let mut buf = Vec::with_capacity(size as usize);
                            entry
                                .read_to_end(&mut buf)
                                .with_context(|| format!("reading {path}"))?;
                            Some(Node::Text(buf))
                        }
                        Interest::Copyright if size <= COPYRIGHT_SIZE_CAP => {
                            let mut buf = Vec::with_capacity(size as usize);
                            entry
                                .read_to_end(&mut buf)
                                .with_context(|| format!("reading {path}"))?;
                            packages::parse_dep5_licenses(&String::from_utf8_lossy(&buf))
                                .map(Node::Licenses)
                        }
                        Interest::Copyright => None,
                        Interest::Other => read_auditable(&mut entry, size)
                            .with_context(|| format!("reading {path}"))?
                            .map(Node::Cargo),
                    };
                    if let Some(node) = node {
                        changes.added.insert(path, node);
                    }
                }
                _ => {}
            }
        }
        Ok(changes)
    }

    fn apply(&mut self, changes: LayerChanges) {
        for dir in &changes.opaque_dirs {
            self.remove_children(dir);
        }
        for path in changes.whiteouts.iter().chain(&changes.replaced_trees) {
            self.remove_tree(path);
        }
        for path in &changes.replaced_files {
            self.nodes.remove(path);
        }
        self.nodes.extend(changes.added);
    }
}

/// Reads a regular file's cargo-auditable JSON if it is an ELF file within the size cap
/// that has some. The file is read whole only after its magic bytes say ELF.
fn read_auditable<R: Read>(entry: &mut R, size: u64) -> io::Result<Option<String>> {
    if !(64..=ELF_SIZE_CAP).contains(&size) {
        return Ok(None);
    }
    let mut magic = [0u8; 4];
    entry.read_exact(&mut magic)?;
    if magic != ELF_MAGIC {
        return Ok(None);
    }
    let mut buf = Vec::with_capacity(size as usize);
    buf.extend_from_slice(&magic);
    entry.read_to_end(&mut buf)?;
    // No `.dep-v0` section, or a malformed one: not a cargo-auditable binary. Best effort.
    Ok(auditable_info::json_from_slice(&buf, AUDITABLE_JSON_CAP).ok())
}

/// Wraps `reader` in a gzip decoder when its first bytes are the gzip magic; refuses zstd.
fn open_decompressed<'a, R: Read + 'a>(mut reader: R) -> Result<Box<dyn Read + 'a>> {
    let mut magic = [0u8; 4];
    let mut n = 0;
    while n < magic.len() {
        match reader.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(anyhow!(e).context("reading the layer")),
        }
    }
    let prefix = io::Cursor::new(magic[..n].to_vec());
    let whole = Read::chain(prefix, reader);
    if n >= 2 && magic[..2] == GZIP_MAGIC {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(whole)))
    } else if n == 4 && magic == ZSTD_MAGIC {
        bail!("zstd-compressed layers are not supported yet (only tar and tar+gzip)")
    } else {
        Ok(Box::new(whole))
    }
}

/// A blocking `Read` over chunks sent from an async task.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

/// Whether a layer media type is one whose blob is a (possibly compressed) filesystem tar.
fn check_layer_media_type(layer: &Descriptor) -> Result<()> {
    let mt = layer.media_type.as_str();
    if mt.ends_with("+zstd") || mt.ends_with(".zstd") {
        bail!(
            "layer {} is zstd-compressed ({mt}): not supported yet (only tar and tar+gzip)",
            layer.digest
        );
    }
    if !mt.contains(".tar") && !mt.contains("rootfs.diff") {
        bail!(
            "layer {} has media type {mt:?}, not a filesystem layer",
            layer.digest
        );
    }
    Ok(())
}

/// Streams one layer from `store` through `fs`.
pub async fn apply_from_store(
    store: &dyn Store,
    layer: &Descriptor,
    mut fs: Filesystem,
) -> Result<Filesystem> {
    check_layer_media_type(layer)?;
    let mut stream = store.open_blob(layer).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(8);
    let worker = tokio::task::spawn_blocking(move || {
        let reader = ChannelReader {
            rx,
            current: Bytes::new(),
        };
        fs.apply_layer(reader).map(|()| fs)
    });
    // Feeds the worker; `Ok(true)` when the worker stopped reading before the end.
    let pump = {
        let stream = &mut stream;
        async move {
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(bytes) => {
                        if tx.send(Ok(bytes)).await.is_err() {
                            return Ok(true);
                        }
                    }
                    Err(e) => {
                        let copy = io::Error::new(e.kind(), e.to_string());
                        let _ = tx.send(Err(copy)).await;
                        return Err(e);
                    }
                }
            }
            Ok::<bool, io::Error>(false)
        }
    };
    let (pumped, worked) = tokio::join!(pump, worker);
    let worked = worked.map_err(|e| anyhow!("reading the layer failed: {e}"))?;
    match (pumped, worked) {
        // A stream failure (a digest mismatch, a broken connection) is the cause of
        // whatever the worker then saw.
        (Err(e), _) => Err(anyhow!(e)),
        (Ok(_), Err(e)) => Err(e),
        (Ok(stopped_early), Ok(fs)) => {
            if stopped_early {
                while let Some(chunk) = stream.next().await {
                    chunk?;
                }
            }
            Ok(fs)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tar (optionally gzipped) from `(path, content)` pairs; a content of `None` makes a
    /// directory, `Some(b"->target")` a symlink.
    pub(crate) fn tar_of(entries: &[(&str, Option<&[u8]>)], gzip: bool) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, content) in entries {
            let mut header = tar::Header::new_gnu();
            match content {
                None => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(0o755);
                    header.set_size(0);
                    builder.append_data(&mut header, path, io::empty()).unwrap();
                }
                Some(c) if c.starts_with(b"->") => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    let target = std::str::from_utf8(&c[2..]).unwrap();
                    builder.append_link(&mut header, path, target).unwrap();
                }
                Some(c) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(0o644);
                    header.set_size(c.len() as u64);
                    builder.append_data(&mut header, path, *c).unwrap();
                }
            }
        }
        let tar = builder.into_inner().unwrap();
        if gzip {
            use std::io::Write;
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(&tar).unwrap();
            enc.finish().unwrap()
        } else {
            tar
        }
    }

    fn text(fs: &Filesystem, path: &str) -> Option<String> {
        fs.text(path)
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
    }

    fn paths(fs: &Filesystem) -> Vec<&str> {
        fs.iter().map(|(p, _)| p).collect()
    }

    #[test]
    fn paths_are_normalised() {
        assert_eq!(normalize(Path::new("./etc/os-release")), "etc/os-release");
        assert_eq!(
            normalize(Path::new("/etc/./x/../os-release")),
            "etc/os-release"
        );
        assert_eq!(normalize(Path::new("./")), "");
        let mut fs = Filesystem::default();
        fs.apply_layer(&tar_of(&[("./etc/os-release", Some(b"ID=debian\n"))], true)[..])
            .unwrap();
        assert_eq!(text(&fs, "etc/os-release").unwrap(), "ID=debian\n");
    }

    #[test]
    fn whiteout_deletes_file_and_directory_from_lower_layers() {
        let mut fs = Filesystem::default();
        let lower = tar_of(
            &[
                ("var/lib/dpkg/status.d/a", Some(b"Package: a\n")),
                ("var/lib/dpkg/status.d/b", Some(b"Package: b\n")),
                ("usr/share/doc/a/copyright", Some(b"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nLicense: MIT\n")),
                ("etc/os-release", Some(b"ID=debian\n")),
            ],
            true,
        );
        fs.apply_layer(&lower[..]).unwrap();
        assert_eq!(
            paths(&fs),
            [
                "etc/os-release",
                "usr/share/doc/a/copyright",
                "var/lib/dpkg/status.d/a",
                "var/lib/dpkg/status.d/b"
            ]
        );
        assert_eq!(
            fs.get("usr/share/doc/a/copyright"),
            Some(&Node::Licenses(vec!["MIT".into()]))
        );
        // The whiteouts come after a re-added file in the same layer: they still only hide
        // lower layers.
        let upper = tar_of(
            &[
                ("var/lib/dpkg/status.d/.wh.a", Some(b"")),
                (
                    "usr/share/doc/a/copyright",
                    Some(b"Format: copyright-format/1.0\n\nLicense: GPL-2\n"),
                ),
                ("usr/share/.wh.doc", Some(b"")),
            ],
            false,
        );
        fs.apply_layer(&upper[..]).unwrap();
        assert_eq!(
            paths(&fs),
            [
                "etc/os-release",
                "usr/share/doc/a/copyright",
                "var/lib/dpkg/status.d/b"
            ]
        );
        assert_eq!(
            fs.get("usr/share/doc/a/copyright"),
            Some(&Node::Licenses(vec!["GPL-2".into()]))
        );
    }

    #[test]
    fn opaque_directory_hides_lower_contents_only() {
        let mut fs = Filesystem::default();
        fs.apply_layer(
            &tar_of(
                &[
                    ("var/lib/dpkg/status.d/a", Some(b"Package: a\n")),
                    ("var/lib/dpkg/status.d/b", Some(b"Package: b\n")),
                    ("var/lib/dpkg/status", Some(b"Package: c\n")),
                ],
                true,
            )[..],
        )
        .unwrap();
        // The marker after the layer's own file: that file stays.
        fs.apply_layer(
            &tar_of(
                &[
                    ("var/lib/dpkg/status.d/", None),
                    ("var/lib/dpkg/status.d/z", Some(b"Package: z\n")),
                    ("var/lib/dpkg/status.d/.wh..wh..opq", Some(b"")),
                ],
                true,
            )[..],
        )
        .unwrap();
        assert_eq!(
            paths(&fs),
            ["var/lib/dpkg/status", "var/lib/dpkg/status.d/z"]
        );
        let children: Vec<_> = fs
            .children("var/lib/dpkg/status.d")
            .map(|(p, _)| p)
            .collect();
        assert_eq!(children, ["var/lib/dpkg/status.d/z"]);
    }

    #[test]
    fn upper_entries_replace_lower_files() {
        let mut fs = Filesystem::default();
        fs.apply_layer(
            &tar_of(
                &[
                    ("usr/lib/os-release", Some(b"ID=debian\nVERSION_ID=11\n")),
                    ("etc/os-release", Some(b"ID=old\n")),
                    ("lib/apk/db/installed", Some(b"P:x\nV:1\n")),
                ],
                false,
            )[..],
        )
        .unwrap();
        fs.apply_layer(
            &tar_of(
                &[
                    // A symlink replaces a regular file; a directory replaces a file.
                    ("etc/os-release", Some(b"->../usr/lib/os-release")),
                    ("lib/apk/db/installed", None),
                ],
                true,
            )[..],
        )
        .unwrap();
        assert_eq!(
            text(&fs, "etc/os-release").unwrap(),
            "ID=debian\nVERSION_ID=11\n"
        );
        assert_eq!(fs.get("lib/apk/db/installed"), None);
    }

    #[test]
    fn zstd_is_refused_with_a_clear_error() {
        let mut fs = Filesystem::default();
        let err = fs
            .apply_layer(&[0x28u8, 0xb5, 0x2f, 0xfd, 0, 0, 0][..])
            .unwrap_err();
        assert!(format!("{err:#}").contains("zstd"), "{err:#}");
        let mut layer = Descriptor::new(
            "application/vnd.oci.image.layer.v1.tar+zstd",
            crate::oci::Digest::of(b""),
            0,
        );
        assert!(check_layer_media_type(&layer).is_err());
        layer.media_type = "application/vnd.oci.image.layer.v1.tar".into();
        assert!(check_layer_media_type(&layer).is_ok());
        layer.media_type = "application/vnd.docker.image.rootfs.diff.tar.gzip".into();
        assert!(check_layer_media_type(&layer).is_ok());
        layer.media_type = "application/vnd.cncf.helm.chart.content.v1.tar+gzip".into();
        assert!(check_layer_media_type(&layer).is_ok()); // a tar; scanned, harmlessly
        layer.media_type = "application/octet-stream".into();
        assert!(check_layer_media_type(&layer).is_err());
    }

    #[test]
    fn garbage_is_not_a_tar() {
        let mut fs = Filesystem::default();
        assert!(fs.apply_layer(&[0x1fu8, 0x8b, 1, 2, 3][..]).is_err());
    }
}
