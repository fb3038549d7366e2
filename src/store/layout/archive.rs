//! `oci-archive:FILE`: an OCI image layout in one tar file, as skopeo's `oci-archive:`
//! transport and `docker buildx --output type=oci` write it (`oci-layout`, `index.json`,
//! `blobs/sha256/<hex>`, with or without `./` prefixes and directory entries; other files,
//! such as buildx's `manifest.json`, are carried along untouched).
//!
//! Reading never extracts. One pass over the headers records where each file's bytes lie, and
//! reads then go straight to those offsets. The pass refuses whatever a layout has no use for
//! and an extractor could be tricked by: absolute paths and paths climbing out with `..`,
//! symbolic and hard links, devices and FIFOs, the same path twice, an entry running past the
//! end of the file, extended headers larger than any real one. Memory follows the number of
//! entries (capped), never the size of the archive.
//!
//! Writing goes through a staging layout directory beside the archive (see `LayoutStore`);
//! [`write_archive`] then writes the archive to a temporary file in the same directory and
//! renames it over the final name, so a partial archive never carries that name.

use crate::store::BlobStream;
use anyhow::{anyhow, bail, Context, Result};
use rustix::fs::{Mode, OFlags};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

const BLOCK: u64 = 512;
/// Entries an archive may hold. A release with 32 platforms, signatures and attestations has
/// a few hundred; the cap keeps the index of offsets small whatever a header claims.
pub const MAX_ENTRIES: usize = 100_000;
/// Pax and GNU long-name headers: real ones hold a path or two.
const MAX_EXTENDED_HEADER: u64 = 64 << 10;

/// Where a file's bytes lie in the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub offset: u64,
    pub size: u64,
}

/// What identifies the file an archive was read from: a writer that finds another file
/// under the name when it is done (or a changed one) knows someone else wrote meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

impl FileIdentity {
    fn of(meta: &std::fs::Metadata) -> FileIdentity {
        FileIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
        }
    }
}

/// An archive's regular files and where their bytes are.
pub struct TarIndex {
    file: Arc<File>,
    shown: String,
    files: HashMap<String, Span>,
    /// The regular files in archive order (a rewrite keeps it).
    order: Vec<String>,
    identity: FileIdentity,
}

impl TarIndex {
    /// Opens and indexes the archive at `path` (`shown`, e.g. `oci-archive:FILE`, names it in
    /// messages). The path is the user's choice, so a link naming it is followed, but it must
    /// be a regular file: it is opened without blocking and refused otherwise.
    pub fn open(path: &Path, shown: &str) -> Result<TarIndex> {
        let how = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
        let file = match rustix::fs::open(path, how, Mode::empty()) {
            Ok(fd) => File::from(fd),
            Err(rustix::io::Errno::NOENT) => bail!("{shown} does not exist"),
            Err(e) => bail!("cannot open {shown}: {e}"),
        };
        let meta = file
            .metadata()
            .map_err(|e| anyhow!("cannot read {shown}: {e}"))?;
        if !meta.is_file() {
            bail!("{shown} is not a regular file: an archive is read from a file");
        }
        let mut index = TarIndex {
            file: Arc::new(file),
            shown: shown.to_string(),
            files: HashMap::new(),
            order: Vec::new(),
            identity: FileIdentity::of(&meta),
        };
        index.scan(meta.len())?;
        for required in ["oci-layout", "index.json"] {
            if !index.files.contains_key(required) {
                bail!("{shown} is not an OCI image layout archive: it has no {required} file");
            }
        }
        Ok(index)
    }

    pub fn identity(&self) -> FileIdentity {
        self.identity
    }

    pub fn span(&self, name: &str) -> Option<Span> {
        self.files.get(name).copied()
    }

    /// Reads a file of the archive whole (the caller has checked its size).
    pub fn read(&self, span: Span) -> std::io::Result<Vec<u8>> {
        let mut bytes = vec![0; span.size as usize];
        self.file.read_exact_at(&mut bytes, span.offset)?;
        Ok(bytes)
    }

    /// Streams a file of the archive, 256 KiB at a time, from its own offsets: any number of
    /// streams read the one open file at once.
    pub fn stream(&self, span: Span) -> BlobStream {
        const CHUNK: u64 = 256 * 1024;
        let state = (self.file.clone(), span.offset, span.size);
        Box::pin(futures_util::stream::try_unfold(
            state,
            |(file, offset, left)| async move {
                if left == 0 {
                    return Ok(None);
                }
                let n = left.min(CHUNK);
                let (file, chunk) = tokio::task::spawn_blocking(move || {
                    let mut chunk = vec![0; n as usize];
                    file.read_exact_at(&mut chunk, offset)
                        .map(|()| (file, chunk))
                })
                .await
                .map_err(std::io::Error::other)??;
                Ok(Some((
                    bytes::Bytes::from(chunk),
                    (file, offset + n, left - n),
                )))
            },
        ))
    }

    /// One pass over the headers; see the module comment for what is refused.
    fn scan(&mut self, len: u64) -> Result<()> {
        let shown = self.shown.clone();
        let mut dirs: HashSet<String> = HashSet::new();
        let mut pending = Extended::default();
        let mut headers = 0usize;
        let mut pos = 0u64;
        let mut block = [0u8; BLOCK as usize];
        while self.read_header(&mut block, pos, len)? {
            let header = tar::Header::from_byte_slice(&block);
            headers += 1;
            if headers > 2 * MAX_ENTRIES {
                bail!("{shown} has more than {MAX_ENTRIES} entries");
            }
            let data = pos + BLOCK;
            let header_size = header
                .entry_size()
                .map_err(|_| anyhow!("{shown} is corrupt: the header at byte {pos} has no size"))?;
            let kind = header.entry_type();
            let extended = matches!(
                kind,
                tar::EntryType::XHeader
                    | tar::EntryType::XGlobalHeader
                    | tar::EntryType::GNULongName
                    | tar::EntryType::GNULongLink
            );
            let size = if extended {
                header_size
            } else {
                pending.size.take().unwrap_or(header_size)
            };
            let end = data
                .checked_add(size)
                .filter(|&end| end <= len)
                .ok_or_else(|| {
                    anyhow!(
                        "{shown} is truncated: the entry at byte {pos} needs {size} bytes, the \
                         archive ends at byte {len}"
                    )
                })?;
            if extended {
                self.read_extended(&mut pending, kind, pos, Span { offset: data, size })?;
            } else {
                let entry = Span { offset: data, size };
                self.add_entry(header, &mut pending, &mut dirs, entry)?;
            }
            pos = end.div_ceil(BLOCK) * BLOCK;
        }
        Ok(())
    }

    /// Reads the header block at `pos` into `block`: false at the end-of-archive marker.
    fn read_header(&self, block: &mut [u8; BLOCK as usize], pos: u64, len: u64) -> Result<bool> {
        let shown = &self.shown;
        if pos + BLOCK > len {
            if len == 0 {
                bail!("{shown} is not a tar archive: it is empty");
            }
            if pos < len {
                bail!("{shown} is truncated: it ends at byte {len}, inside a header");
            }
            bail!(
                "{shown} is truncated: it ends at byte {len} without the end-of-archive \
                 marker"
            );
        }
        self.file
            .read_exact_at(block, pos)
            .map_err(|e| anyhow!("cannot read {shown}: {e}"))?;
        if block.iter().all(|&b| b == 0) {
            return Ok(false);
        }
        if !checksum_matches(tar::Header::from_byte_slice(block)) {
            if pos == 0 {
                bail!("{shown} is not a tar archive");
            }
            bail!("{shown} is corrupt: the header at byte {pos} has a wrong checksum");
        }
        Ok(true)
    }

    /// Reads the extended header (PAX, GNU long name or link) at `pos` into `pending`, for
    /// the entry that follows.
    fn read_extended(
        &self,
        pending: &mut Extended,
        kind: tar::EntryType,
        pos: u64,
        span: Span,
    ) -> Result<()> {
        let shown = &self.shown;
        if span.size > MAX_EXTENDED_HEADER {
            bail!(
                "{shown}: the extended header at byte {pos} is {} bytes, more than the 64 KiB \
                 any real one needs",
                span.size
            );
        }
        let mut bytes = vec![0; span.size as usize];
        self.file
            .read_exact_at(&mut bytes, span.offset)
            .map_err(|e| anyhow!("cannot read {shown}: {e}"))?;
        pending
            .absorb(kind, bytes)
            .map_err(|why| anyhow!("{shown}: the extended header at byte {pos} {why}"))
    }

    /// Records the entry `header` describes, its content at `span`: a plain file or a
    /// directory, anything else refused.
    fn add_entry(
        &mut self,
        header: &tar::Header,
        pending: &mut Extended,
        dirs: &mut HashSet<String>,
        span: Span,
    ) -> Result<()> {
        let shown = &self.shown;
        let raw_path = pending
            .path
            .take()
            .unwrap_or_else(|| header.path_bytes().into_owned());
        let link = pending
            .link
            .take()
            .or_else(|| header.link_name_bytes().map(|l| l.into_owned()));
        let shown_path = format!("{:?}", String::from_utf8_lossy(&raw_path));
        let refuse = |why: String| {
            anyhow!(
                "{shown}: entry {shown_path} {why}; an OCI layout archive holds only plain files \
                 and directories"
            )
        };
        let name = normalize(&raw_path).map_err(|why| refuse(why.into()))?;
        let link_text = || {
            link.as_deref()
                .map(|l| format!(" (to {:?})", String::from_utf8_lossy(l)))
                .unwrap_or_default()
        };
        match header.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if name.is_empty() {
                    return Err(refuse("is a file without a name".into()));
                }
                if self.files.contains_key(&name) || dirs.contains(&name) {
                    return Err(refuse("appears twice".into()));
                }
                if self.order.len() >= MAX_ENTRIES {
                    bail!("{shown} has more than {MAX_ENTRIES} entries");
                }
                self.files.insert(name.clone(), span);
                self.order.push(name);
            }
            tar::EntryType::Directory => {
                if self.files.contains_key(&name) {
                    return Err(refuse("appears twice".into()));
                }
                dirs.insert(name);
            }
            tar::EntryType::Symlink => {
                return Err(refuse(format!("is a symbolic link{}", link_text())))
            }
            tar::EntryType::Link => return Err(refuse(format!("is a hard link{}", link_text()))),
            tar::EntryType::Char | tar::EntryType::Block => {
                return Err(refuse("is a device".into()))
            }
            tar::EntryType::Fifo => return Err(refuse("is a FIFO".into())),
            other => {
                return Err(refuse(format!(
                    "has entry type {:?}",
                    char::from(other.as_byte())
                )))
            }
        }
        Ok(())
    }
}

/// What pax and GNU extended headers say about the entry that follows them.
#[derive(Default)]
struct Extended {
    path: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    size: Option<u64>,
}

impl Extended {
    fn absorb(&mut self, kind: tar::EntryType, bytes: Vec<u8>) -> Result<(), &'static str> {
        let trim = |mut b: Vec<u8>| {
            while b.last() == Some(&0) {
                b.pop();
            }
            b
        };
        match kind {
            tar::EntryType::GNULongName => self.path = Some(trim(bytes)),
            tar::EntryType::GNULongLink => self.link = Some(trim(bytes)),
            // Global headers set defaults for the rest of the archive; none that matters here.
            tar::EntryType::XGlobalHeader => {}
            _ => {
                for record in tar::PaxExtensions::new(&bytes) {
                    let record = record.map_err(|_| "is malformed")?;
                    match record.key().map_err(|_| "is malformed")? {
                        "path" => self.path = Some(record.value_bytes().to_vec()),
                        "linkpath" => self.link = Some(record.value_bytes().to_vec()),
                        "size" => {
                            let size = std::str::from_utf8(record.value_bytes())
                                .ok()
                                .and_then(|s| s.parse().ok())
                                .ok_or("has a malformed size")?;
                            self.size = Some(size);
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }
}

/// The checksum covers the header with its own field read as spaces; old writers summed
/// signed bytes, so either sum is accepted.
fn checksum_matches(header: &tar::Header) -> bool {
    let Ok(stored) = header.cksum() else {
        return false;
    };
    let bytes = header.as_bytes();
    let (mut unsigned, mut signed) = (0u32, 0i32);
    for (i, &b) in bytes.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u32::from(b);
        signed += i32::from(b as i8);
    }
    stored == unsigned || stored as i32 == signed
}

/// An entry's path as a name inside the layout: `./` and empty components dropped; absolute
/// paths, `..` and anything not UTF-8 refused.
fn normalize(raw: &[u8]) -> Result<String, &'static str> {
    let path = std::str::from_utf8(raw).map_err(|_| "has a path that is not UTF-8")?;
    if path.starts_with('/') {
        return Err("has an absolute path");
    }
    if path.contains('\0') {
        return Err("has a NUL byte in its path");
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("climbs out of the archive with `..`"),
            part => parts.push(part),
        }
    }
    Ok(parts.join("/"))
}

/// Writes the layout in `staging` (plus every file of `base`, the archive being appended to)
/// as a tar archive at `target`: into a temporary file beside it, synced, then renamed over
/// `target`. `expected` is the identity of the archive `base` was read from (`None`: there
/// was none); if the file under `target` is no longer that one, someone else wrote it
/// meanwhile, and nothing is replaced.
pub fn write_archive(
    target: &Path,
    staging: &Path,
    base: Option<&TarIndex>,
    shown: &str,
) -> Result<()> {
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let file_name = target
        .file_name()
        .ok_or_else(|| anyhow!("{shown} does not name a file"))?
        .to_string_lossy();
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{file_name}."))
        .suffix(".partial")
        .tempfile_in(parent)
        .with_context(|| format!("cannot write {shown}"))?;
    let mut writer = TarWriter {
        out: tmp.as_file(),
        mtime: archive_mtime(),
        written: HashSet::new(),
    };
    let write = |w: &mut TarWriter| -> std::io::Result<()> {
        for name in ["oci-layout", "index.json"] {
            w.file_from_path(name, &staging.join(name))?;
        }
        w.directory("blobs")?;
        w.directory("blobs/sha256")?;
        if let Some(base) = base {
            let mut source = base.file.try_clone()?;
            for name in &base.order {
                if !w.written.contains(name) {
                    let span = base.files[name];
                    source.seek(SeekFrom::Start(span.offset))?;
                    w.file(name, span.size, &mut (&source).take(span.size))?;
                }
            }
        }
        let mut staged: Vec<String> = std::fs::read_dir(staging.join("blobs/sha256"))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
            .collect();
        staged.sort();
        for hex in staged {
            w.file_from_path(
                &format!("blobs/sha256/{hex}"),
                &staging.join("blobs/sha256").join(&hex),
            )?;
        }
        w.out.write_all(&[0; 2 * BLOCK as usize])?;
        w.out.sync_all()
    };
    write(&mut writer).with_context(|| format!("cannot write {shown}"))?;

    let mode = match base {
        Some(_) => std::fs::metadata(target).map(|m| m.permissions().mode() & 0o7777),
        None => Ok(0o644),
    }
    .unwrap_or(0o644);
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot write {shown}"))?;
    let now = std::fs::metadata(target).ok().map(|m| FileIdentity::of(&m));
    if now != base.map(TarIndex::identity) {
        bail!(
            "{shown} was changed by another writer while wharf wrote to it; it was left as that \
             writer left it: run again"
        );
    }
    tmp.persist(target)
        .map_err(|e| anyhow!("cannot write {shown}: {}", e.error))?;
    File::open(parent)
        .and_then(|dir| dir.sync_all())
        .with_context(|| format!("cannot sync the directory of {shown}"))?;
    Ok(())
}

/// Entry times: `SOURCE_DATE_EPOCH` when set (reproducible builds' convention), else now.
fn archive_mtime() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        })
}

struct TarWriter<'a> {
    out: &'a File,
    mtime: u64,
    written: HashSet<String>,
}

impl TarWriter<'_> {
    fn header(&mut self, name: &str, size: u64, kind: tar::EntryType) -> std::io::Result<()> {
        let mut header = tar::Header::new_ustar();
        header.set_path(name)?;
        header.set_size(size);
        header.set_entry_type(kind);
        header.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(self.mtime);
        header.set_cksum();
        self.out.write_all(header.as_bytes())
    }

    fn directory(&mut self, name: &str) -> std::io::Result<()> {
        self.header(name, 0, tar::EntryType::Directory)
    }

    /// One file: header, bytes (copied in the kernel where it can), padding.
    fn file(&mut self, name: &str, size: u64, bytes: &mut impl Read) -> std::io::Result<()> {
        self.header(name, size, tar::EntryType::Regular)?;
        let mut out = self.out;
        let copied = std::io::copy(bytes, &mut out)?;
        if copied != size {
            return Err(std::io::Error::other(format!(
                "{name} changed size while being archived"
            )));
        }
        let padding = (BLOCK - size % BLOCK) % BLOCK;
        out.write_all(&vec![0; padding as usize])?;
        self.written.insert(name.to_string());
        Ok(())
    }

    fn file_from_path(&mut self, name: &str, path: &Path) -> std::io::Result<()> {
        let source = File::open(path)?;
        let size = source.metadata()?.len();
        self.file(name, size, &mut source.take(size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header written field by field: `set_path` would refuse the paths under test.
    fn raw_header(name: &str, kind: tar::EntryType, size: u64) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        {
            let raw = &mut header.as_old_mut().name;
            raw.fill(0);
            raw[..name.len()].copy_from_slice(name.as_bytes());
        }
        header.set_size(size);
        header.set_entry_type(kind);
        header.set_mode(0o644);
        header.set_cksum();
        header
    }

    fn ustar(name: &str, kind: tar::EntryType, data: &[u8]) -> Vec<u8> {
        let header = raw_header(name, kind, data.len() as u64);
        let mut out = header.as_bytes().to_vec();
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
        out
    }

    fn archive(entries: &[Vec<u8>]) -> Vec<u8> {
        let mut out: Vec<u8> = entries.concat();
        out.extend_from_slice(&[0; 1024]);
        out
    }

    fn layout_entries() -> Vec<Vec<u8>> {
        vec![
            ustar("./", tar::EntryType::Directory, b""),
            ustar("./oci-layout", tar::EntryType::Regular, b"{}"),
            ustar(
                "./index.json",
                tar::EntryType::Regular,
                b"{\"manifests\":[]}",
            ),
            ustar("./blobs/sha256/", tar::EntryType::Directory, b""),
        ]
    }

    fn open(bytes: &[u8]) -> Result<TarIndex> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar");
        std::fs::write(&path, bytes).unwrap();
        TarIndex::open(&path, "oci-archive:a.tar")
    }

    fn refusal(entries: Vec<Vec<u8>>) -> String {
        match open(&archive(&entries)) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn indexes_files_with_dot_prefixes() {
        let mut entries = layout_entries();
        entries.push(ustar("blobs/sha256/ab", tar::EntryType::Regular, b"hello"));
        let index = open(&archive(&entries)).unwrap();
        let span = index.span("blobs/sha256/ab").unwrap();
        assert_eq!(span.size, 5);
        assert_eq!(index.read(span).unwrap(), b"hello");
        assert_eq!(index.order, ["oci-layout", "index.json", "blobs/sha256/ab"]);
    }

    #[test]
    fn refuses_what_an_extractor_could_be_tricked_by() {
        let with = |entry: Vec<u8>| {
            let mut entries = layout_entries();
            entries.push(entry);
            refusal(entries)
        };
        let cases = [
            (
                ustar("blobs/../../x", tar::EntryType::Regular, b"x"),
                "climbs out",
            ),
            (
                ustar("/etc/x", tar::EntryType::Regular, b"x"),
                "absolute path",
            ),
            (
                ustar("blobs/s", tar::EntryType::Symlink, b""),
                "symbolic link",
            ),
            (ustar("blobs/h", tar::EntryType::Link, b""), "hard link"),
            (ustar("blobs/c", tar::EntryType::Char, b""), "is a device"),
            (ustar("blobs/b", tar::EntryType::Block, b""), "is a device"),
            (ustar("blobs/f", tar::EntryType::Fifo, b""), "is a FIFO"),
            (
                ustar("index.json", tar::EntryType::Regular, b"{}"),
                "appears twice",
            ),
            (
                ustar("blobs/sp", tar::EntryType::GNUSparse, b""),
                "entry type 'S'",
            ),
        ];
        for (entry, why) in cases {
            let err = with(entry);
            assert!(err.contains(why), "{why}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn refuses_truncation_anywhere() {
        let mut entries = layout_entries();
        entries.push(ustar(
            "blobs/sha256/ab",
            tar::EntryType::Regular,
            &[7; 2000],
        ));
        let whole = archive(&entries);
        for cut in [whole.len() - 1024, whole.len() - 1500, 700, 100] {
            let err = match open(&whole[..cut]) {
                Ok(_) => panic!("accepted a cut at {cut}"),
                Err(e) => e.to_string(),
            };
            assert!(err.contains("truncated"), "cut {cut}: {err}");
        }
        assert!(open(b"").err().unwrap().to_string().contains("empty"));
        assert!(open(&[1; 4096])
            .err()
            .unwrap()
            .to_string()
            .ends_with("is not a tar archive"));
    }

    #[test]
    fn extended_headers_are_capped_and_honoured() {
        let mut entries = layout_entries();
        let record = "31 path=blobs/sha256/long-name\n";
        entries.push(ustar(
            "PaxHeader",
            tar::EntryType::XHeader,
            record.as_bytes(),
        ));
        entries.push(ustar("short", tar::EntryType::Regular, b"abc"));
        let index = open(&archive(&entries)).unwrap();
        assert!(index.span("blobs/sha256/long-name").is_some());
        assert!(index.span("short").is_none());

        let mut entries = layout_entries();
        let mut huge = raw_header("PaxHeader", tar::EntryType::XHeader, 1 << 20)
            .as_bytes()
            .to_vec();
        huge.resize(512 + (1 << 20), b'x');
        entries.push(huge);
        let err = refusal(entries);
        assert!(err.contains("more than the 64 KiB"), "{err}");
    }

    #[test]
    fn writes_an_archive_it_reads_back_and_appends() {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join("staging");
        std::fs::create_dir_all(staging.join("blobs/sha256")).unwrap();
        std::fs::write(staging.join("oci-layout"), b"{}").unwrap();
        std::fs::write(staging.join("index.json"), b"{\"manifests\":[]}").unwrap();
        let hex = "ab".repeat(32);
        std::fs::write(staging.join("blobs/sha256").join(&hex), b"first").unwrap();
        std::fs::write(staging.join("blobs/sha256/.tmp123"), b"ignored").unwrap();
        let target = dir.path().join("out.tar");
        write_archive(&target, &staging, None, "oci-archive:out.tar").unwrap();
        let first = TarIndex::open(&target, "a").unwrap();
        let name = format!("blobs/sha256/{hex}");
        assert_eq!(first.read(first.span(&name).unwrap()).unwrap(), b"first");
        assert_eq!(first.order.len(), 3, "{:?}", first.order);

        // Append: a second staging run with another blob keeps the first.
        let staging2 = dir.path().join("staging2");
        std::fs::create_dir_all(staging2.join("blobs/sha256")).unwrap();
        std::fs::write(staging2.join("oci-layout"), b"{}").unwrap();
        std::fs::write(staging2.join("index.json"), b"{\"manifests\":[1]}").unwrap();
        let hex2 = "cd".repeat(32);
        std::fs::write(staging2.join("blobs/sha256").join(&hex2), b"second").unwrap();
        write_archive(&target, &staging2, Some(&first), "oci-archive:out.tar").unwrap();
        let second = TarIndex::open(&target, "a").unwrap();
        assert_eq!(second.read(second.span(&name).unwrap()).unwrap(), b"first");
        let name2 = format!("blobs/sha256/{hex2}");
        assert_eq!(
            second.read(second.span(&name2).unwrap()).unwrap(),
            b"second"
        );
        let index = second.read(second.span("index.json").unwrap()).unwrap();
        assert_eq!(index, b"{\"manifests\":[1]}");

        // A writer that started from `first` finds the archive changed and replaces nothing.
        let err = write_archive(&target, &staging, Some(&first), "oci-archive:out.tar")
            .unwrap_err()
            .to_string();
        assert!(err.contains("changed by another writer"), "{err}");
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(names.is_empty(), "temporary files left: {names:?}");
    }
}
