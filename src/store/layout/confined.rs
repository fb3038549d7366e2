//! Opening the files of a layout directory someone else wrote.
//!
//! A layout arrives from elsewhere (a build, a disk carried across an air gap), so its files
//! are untrusted: a blob may be a FIFO (an open or read that never returns), a symbolic link
//! to `/dev/zero` (endless bytes) or to a file outside the layout (someone else's data passed
//! off as a blob), a directory, or a sparse file of a terabyte. Every file of a layout is
//! therefore opened here: resolved beneath the layout directory (symbolic links are followed
//! while they stay inside it, as tools that deduplicate blobs write them; one that leaves it is
//! refused), opened without blocking, and refused unless it is a regular file. Callers check
//! the size against a descriptor or a limit before reading anything.

use anyhow::{anyhow, Result};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A layout directory, held open, whose files are opened only beneath it.
#[derive(Clone)]
pub struct LayoutDir {
    /// `O_PATH` descriptor of the directory: lookups start here even if the path is renamed.
    root: Arc<OwnedFd>,
    /// The directory with every link resolved, for kernels without `openat2`.
    real_root: Arc<PathBuf>,
    /// As the user named it, for messages.
    shown: Arc<PathBuf>,
}

/// A regular file of the layout, opened, with its size when opened.
pub struct OpenedFile {
    pub file: File,
    pub len: u64,
}

impl LayoutDir {
    /// Opens the layout directory. The directory itself is the user's choice, so a symbolic
    /// link naming it is followed.
    pub fn open(dir: &Path) -> std::io::Result<LayoutDir> {
        let root = rustix::fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(LayoutDir {
            root: Arc::new(root),
            real_root: Arc::new(std::fs::canonicalize(dir)?),
            shown: Arc::new(dir.to_path_buf()),
        })
    }

    /// The directory as the user named it.
    pub fn path(&self) -> &Path {
        &self.shown
    }

    /// Opens `rel` (a `/`-separated path inside the layout) for reading; `None` when it does
    /// not exist. `what` names it in errors ("blob sha256:… in oci:DIR").
    pub fn open_regular(&self, rel: &str, what: &str) -> Result<Option<OpenedFile>> {
        self.open_regular_with(rel, what, true)
    }

    fn open_regular_with(
        &self,
        rel: &str,
        what: &str,
        use_openat2: bool,
    ) -> Result<Option<OpenedFile>> {
        // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
        let how = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
        let opened = if use_openat2 {
            match rustix::fs::openat2(
                &*self.root,
                rel,
                how,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
            ) {
                // No openat2 (Linux before 5.6, or a sandbox that hides it).
                Err(Errno::NOSYS) | Err(Errno::PERM) => self.open_resolved(rel, how),
                other => other,
            }
        } else {
            self.open_resolved(rel, how)
        };
        let fd = match opened {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::XDEV) => {
                return Err(anyhow!(
                    "{what} leads outside the layout: a symbolic link that leaves the layout \
                     directory is not followed"
                ))
            }
            Err(Errno::LOOP) => return Err(anyhow!("{what} is a loop of symbolic links")),
            Err(Errno::NXIO) => return Err(anyhow!("{what} is a socket, not a regular file")),
            Err(e) => return Err(anyhow!("cannot open {what}: {e}")),
        };
        let file = File::from(fd);
        let meta = file
            .metadata()
            .map_err(|e| anyhow!("cannot read {what}: {e}"))?;
        let kind = meta.file_type();
        if !kind.is_file() {
            return Err(anyhow!(
                "{what} is {}, not a regular file",
                describe_kind(&kind)
            ));
        }
        Ok(Some(OpenedFile {
            file,
            len: meta.len(),
        }))
    }

    /// Resolves every link of `rel` first, checks the result is still inside the layout, then
    /// opens it without following links. (openat2 does the same atomically.)
    fn open_resolved(&self, rel: &str, how: OFlags) -> rustix::io::Result<OwnedFd> {
        let real = std::fs::canonicalize(self.real_root.join(rel))
            .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))?;
        if !real.starts_with(&*self.real_root) {
            return Err(Errno::XDEV);
        }
        rustix::fs::open(&real, how | OFlags::NOFOLLOW, Mode::empty())
    }
}

fn describe_kind(kind: &std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a plain file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn layout_with_outside() -> (tempfile::TempDir, LayoutDir) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("layout");
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("blobs/sha256/real"), b"inside").unwrap();
        std::fs::write(tmp.path().join("secret"), b"outside").unwrap();
        symlink("real", dir.join("blobs/sha256/near")).unwrap();
        symlink("../../../secret", dir.join("blobs/sha256/away")).unwrap();
        symlink("/dev/zero", dir.join("blobs/sha256/zero")).unwrap();
        symlink("loop", dir.join("blobs/sha256/loop")).unwrap();
        std::fs::create_dir(dir.join("blobs/sha256/dir")).unwrap();
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            dir.join("blobs/sha256/fifo"),
            Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        let opened = LayoutDir::open(&dir).unwrap();
        (tmp, opened)
    }

    fn check(layout: &LayoutDir, use_openat2: bool) {
        let open = |name: &str| {
            layout.open_regular_with(&format!("blobs/sha256/{name}"), "blob x", use_openat2)
        };
        assert_eq!(open("real").unwrap().unwrap().len, 6);
        assert_eq!(
            open("near").unwrap().unwrap().len,
            6,
            "a link inside is followed"
        );
        assert!(open("absent").unwrap().is_none());
        let err = |name: &str| open(name).err().unwrap().to_string();
        assert!(
            err("away").contains("leads outside the layout"),
            "{}",
            err("away")
        );
        assert!(
            err("zero").contains("leads outside the layout"),
            "{}",
            err("zero")
        );
        assert!(
            err("loop").contains("loop of symbolic links"),
            "{}",
            err("loop")
        );
        assert!(
            err("dir").starts_with("blob x is a directory"),
            "{}",
            err("dir")
        );
        assert!(
            err("fifo").starts_with("blob x is a FIFO"),
            "{}",
            err("fifo")
        );
        let escape = layout
            .open_regular_with("../secret", "blob x", use_openat2)
            .err()
            .unwrap()
            .to_string();
        assert!(escape.contains("leads outside the layout"), "{escape}");
    }

    #[test]
    fn opens_only_regular_files_inside() {
        let (_tmp, layout) = layout_with_outside();
        check(&layout, true);
    }

    #[test]
    fn the_fallback_without_openat2_refuses_the_same() {
        let (_tmp, layout) = layout_with_outside();
        check(&layout, false);
    }
}
