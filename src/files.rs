//! Local files wharf reads whole or writes: read only when they are regular files of a
//! bounded size (a key path that is a FIFO must not hang wharf, one linked to `/dev/zero`
//! must not eat its memory), and written atomically (a temporary file in the same directory,
//! synced, then renamed into place), so a crash leaves the old file or the new one, never
//! half of either, and a symlink at the path is replaced, never written through.

use anyhow::{anyhow, bail, Context, Result};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

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
            crate::store::body::describe_size(limit)
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
