//! Local files wharf reads or writes for the user.
//!
//! Reading: files the user names (predicates, SBOMs, release configs, identity tokens) are read
//! whole but never past a limit per kind, so a path that turns out to be `/dev/zero`, a pipe
//! that never ends or a sparse terabyte ends in one clear error ([`read_bounded`]); secrets
//! (keys, password files) only when they are regular files ([`read_regular_file`]), so a key
//! path that is a FIFO cannot hang wharf. Layouts and archives someone else wrote are opened
//! more strictly still (regular files only, never leaving the layout): see `store::layout`.
//!
//! Writing: atomically (a temporary file in the same directory, synced, then renamed into
//! place), so a crash leaves the old file or the new one, never half of either, and a symlink
//! at the path is replaced, never written through.

use anyhow::{anyhow, bail, Context, Result};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Predicates and SBOM files: an SBOM of a large image is a few MiB; the DSSE envelope that
/// carries it (base64, so 4/3 larger) must stay under what verifiers read back.
pub const PREDICATE_LIMIT: u64 = 32 << 20;
/// Release configs.
pub const CONFIG_LIMIT: u64 = 1 << 20;
/// Key files, password files, identity tokens: a few KiB at most.
pub const SECRET_LIMIT: u64 = 64 << 10;

/// Reads `path` whole, refusing more than `limit` bytes. `what` names the file in messages
/// ("predicate", "release config").
///
/// Pipes and character devices are read too, up to the limit: `--predicate <(…)` and
/// `/dev/stdin` are ordinary ways to hand over a file. A directory is refused by name.
pub fn read_bounded(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| anyhow!("cannot read {what} {shown}: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| anyhow!("cannot read {what} {shown}: {e}"))?;
    if meta.is_dir() {
        bail!("{what} {shown} is a directory, not a file");
    }
    if meta.is_file() && meta.len() > limit {
        bail!(
            "{what} {shown} is {} bytes, more than the {} a {what} may have",
            meta.len(),
            size_text(limit)
        );
    }
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| anyhow!("cannot read {what} {shown}: {e}"))?;
    if bytes.len() as u64 > limit {
        bail!(
            "{what} {shown} is larger than the {} a {what} may have",
            size_text(limit)
        );
    }
    Ok(bytes)
}

/// [`read_bounded`] for text files.
pub fn read_bounded_text(path: &Path, limit: u64, what: &str) -> Result<String> {
    String::from_utf8(read_bounded(path, limit, what)?)
        .map_err(|_| anyhow!("{what} {} is not UTF-8 text", path.display()))
}

/// `4 MiB`, `64 KiB`, `512 bytes`: limits as people write them.
pub fn size_text(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// Reads `path` whole if it is a regular file of at most `limit` bytes (symlinks are
/// followed to one). `what` names it in errors ("key", "password file").
pub fn read_regular_file(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    // Non-blocking, so that opening a FIFO returns at once instead of waiting for a writer;
    // it is refused right after.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    let kind = file
        .metadata()
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    let file_type = kind.file_type();
    if !file_type.is_file() {
        let is = if file_type.is_fifo() {
            "a FIFO"
        } else if file_type.is_char_device() || file_type.is_block_device() {
            "a device"
        } else if file_type.is_dir() {
            "a directory"
        } else if file_type.is_socket() {
            "a socket"
        } else {
            "not a file"
        };
        bail!(
            "{what} {} is {is}, not a regular file: refusing to read it",
            path.display()
        );
    }
    let too_large = || {
        anyhow!(
            "{what} {} is larger than {}: refusing to read it",
            path.display(),
            size_text(limit)
        )
    };
    if kind.len() > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// A file's new content, written and synced under a temporary name next to it, waiting to
/// take its place ([`Staged::commit`]). Dropped uncommitted, it is removed.
pub struct Staged {
    temp: tempfile::NamedTempFile,
    path: PathBuf,
}

/// Writes `bytes` to a temporary file beside `path`, created with permissions `mode` (less
/// the umask), and syncs it.
pub fn stage(path: &Path, bytes: &[u8], mode: u32) -> Result<Staged> {
    use std::os::unix::fs::PermissionsExt;
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(&dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    temp.write_all(bytes)
        .and_then(|_| temp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(Staged {
        temp,
        path: path.to_path_buf(),
    })
}

impl Staged {
    /// Puts the new content in place. `replace`: over whatever is at the path (a symlink
    /// there is replaced, not followed); otherwise only if nothing is (not even a dangling
    /// symlink), atomically.
    pub fn commit(self, replace: bool) -> Result<()> {
        let Staged { temp, path } = self;
        if replace {
            temp.persist(&path)
                .map_err(|e| anyhow!("cannot write {}: {}", path.display(), e.error))?;
        } else {
            temp.persist_noclobber(&path).map_err(|e| {
                if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                    anyhow!(
                        "{} already exists (pass --force to overwrite)",
                        path.display()
                    )
                } else {
                    anyhow!("cannot write {}: {}", path.display(), e.error)
                }
            })?;
        }
        // The rename itself reaches the disk with the directory.
        if let Ok(dir) = std::fs::File::open(parent_dir(&path)) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

/// Writes `bytes` to `path` atomically, replacing what is there (see [`stage`]), with
/// permissions `0644` less the umask: for outputs (public keys, predicates, SBOMs).
pub fn write_output(path: &Path, bytes: &[u8]) -> Result<()> {
    stage(path, bytes, 0o644)?.commit(true)
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_within_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        std::fs::write(&path, b"{}").unwrap();
        assert_eq!(read_bounded(&path, 2, "predicate").unwrap(), b"{}");
        let err = read_bounded(&path, 1, "predicate").unwrap_err().to_string();
        assert!(err.contains("is 2 bytes, more than the 1 bytes"), "{err}");
    }

    #[test]
    fn an_endless_device_stops_at_the_limit() {
        let err = read_bounded(Path::new("/dev/zero"), 1 << 10, "predicate")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "predicate /dev/zero is larger than the 1 KiB a predicate may have"
        );
    }

    #[test]
    fn a_directory_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_bounded(dir.path(), 10, "release config")
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("is a directory, not a file"), "{err}");
    }

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(size_text(4 << 20), "4 MiB");
        assert_eq!(size_text(64 << 10), "64 KiB");
        assert_eq!(size_text(1000), "1000 bytes");
        assert_eq!(size_text(8 << 30), "8 GiB");
    }

    #[test]
    fn new_files_never_replace_anything_not_even_a_dangling_link() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        stage(&path, b"one", 0o600).unwrap().commit(false).unwrap();
        let err = stage(&path, b"two", 0o600)
            .unwrap()
            .commit(false)
            .unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"one");

        let link = dir.path().join("l.key");
        let target = dir.path().join("elsewhere");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(stage(&link, b"x", 0o600).unwrap().commit(false).is_err());
        assert!(!target.exists(), "written through a symlink");
    }

    #[test]
    fn replacing_swaps_a_symlink_for_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"keep").unwrap();
        let link = dir.path().join("out");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_output(&link, b"new").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        assert!(!std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&link).unwrap(), b"new");
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn only_small_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"12345").unwrap();
        assert_eq!(read_regular_file(&path, 5, "key").unwrap(), b"12345");
        let err = read_regular_file(&path, 4, "key").unwrap_err();
        assert!(err.to_string().contains("larger than 4 bytes"), "{err}");
        let err = read_regular_file(Path::new("/dev/zero"), 64, "key").unwrap_err();
        assert!(err.to_string().contains("a device"), "{err}");
        let err = read_regular_file(dir.path(), 64, "key").unwrap_err();
        assert!(err.to_string().contains("a directory"), "{err}");
    }
}
