//! Reading files the user names on the command line or in a config (predicates, SBOMs, release
//! configs, identity tokens, passwords, keys): whole, but never more than a limit set per kind,
//! so a path that turns out to be `/dev/zero`, a pipe that never ends or a sparse terabyte
//! ends in one clear error instead of eating memory.
//!
//! Layouts and archives someone else wrote are opened more strictly (regular files only, never
//! leaving the layout): see `store::layout`.

use anyhow::{anyhow, bail, Result};
use std::io::Read;
use std::path::Path;

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
}
