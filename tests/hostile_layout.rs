//! Hostile OCI layouts and archives: a layout or an archive comes from elsewhere (a build, a
//! disk carried across an air gap) and is not trusted. A blob that is a FIFO, a link to
//! `/dev/zero` or out of the layout, a sparse terabyte, a directory or a device; an
//! `index.json` too large to read; a tar entry that climbs out with `..`, is absolute, a link,
//! a device, twice there or cut short: each ends in one clear error line naming what and
//! where, a non-zero exit, peak memory under 256 MiB, an end in seconds, and nothing written.

mod common;

use common::hostile::{assert_refused, file_tree, run_bounded, tar_entry, tar_with};
use common::keys::openssl_key;
use common::*;
use serde_json::Value;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Every refusal must come well inside this; a hang is killed here and fails the test.
const LIMIT: Duration = Duration::from_secs(20);
/// Sparse files this large cost nothing on disk and would take minutes to read.
const SPARSE: u64 = 64 << 30;

/// A two-platform layout whose index is signed in place (key, no transparency log), as a
/// release directory carried across an air gap looks.
struct SignedLayout {
    tmp: TempDir,
    dir: PathBuf,
    root: String,
    /// A layer of the first platform.
    layer: String,
    /// The payload blob of the index's signature.
    payload: String,
    pub_key: PathBuf,
}

impl SignedLayout {
    fn new(seed: u64) -> SignedLayout {
        let tmp = tempdir();
        let layout = make_layout(
            &tmp.path().join("layout"),
            &LayoutSpec {
                seed,
                ..Default::default()
            },
        );
        let key = openssl_key(tmp.path(), "release");
        let image = format!("oci:{}@{}", layout.dir.display(), layout.root_digest);
        run_ok(
            wharf()
                .args(["sign", "--key", key.private(), "--tlog-upload=false", "-q"])
                .arg(&image),
        );
        let manifest: Value =
            serde_json::from_slice(&layout.read_blob(&layout.platforms[0].1)).unwrap();
        let layer = manifest["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string();
        let index: Value =
            serde_json::from_slice(&fs::read(layout.dir.join("index.json")).unwrap()).unwrap();
        let sig_tag = format!("{}.sig", layout.root_digest.replacen(':', "-", 1));
        let sig = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["annotations"][REF_NAME_ANNOTATION] == sig_tag.as_str())
            .expect("the signature is listed in index.json");
        let sig_manifest: Value =
            serde_json::from_slice(&layout.read_blob(sig["digest"].as_str().unwrap())).unwrap();
        let payload = sig_manifest["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string();
        let signed = SignedLayout {
            dir: layout.dir.clone(),
            root: layout.root_digest.clone(),
            layer,
            payload,
            pub_key: key.public.clone(),
            tmp,
        };
        // The untouched layout verifies: every refusal below is the tampering's doing.
        run_ok(&mut signed.verify_cmd());
        signed
    }

    fn image(&self) -> String {
        format!("oci:{}@{}", self.dir.display(), self.root)
    }

    fn blob(&self, digest: &str) -> PathBuf {
        blob_path(&self.dir, digest)
    }

    fn verify_cmd(&self) -> Command {
        let mut cmd = wharf();
        cmd.args(["verify", "--key"])
            .arg(&self.pub_key)
            .args(["--insecure-ignore-tlog", "-q"])
            .arg(self.image());
        cmd
    }

    /// Replaces a blob by whatever `make` puts at its path.
    fn replace(&self, digest: &str, make: impl FnOnce(&Path)) {
        let path = self.blob(digest);
        fs::remove_file(&path).unwrap();
        make(&path);
    }

    /// Runs `cmd` bounded and asserts the refusal (see the file comment); nothing under the
    /// test's directory may change. Returns the error line.
    fn refused(&self, cmd: &mut Command, needles: &[&str]) -> String {
        let before = file_tree(self.tmp.path());
        let run = run_bounded(cmd.current_dir(self.tmp.path()), LIMIT);
        let line = assert_refused(&run, needles);
        assert!(
            run.elapsed < Duration::from_secs(10),
            "took {:?}",
            run.elapsed
        );
        assert_eq!(
            file_tree(self.tmp.path()),
            before,
            "the run wrote something"
        );
        eprintln!(
            "refused in {:?}, peak {} MiB: {line}",
            run.elapsed,
            run.peak_rss_kib / 1024
        );
        line
    }

    fn verify_refused(&self, needles: &[&str]) -> String {
        let mut cmd = self.verify_cmd();
        self.refused(&mut cmd, needles)
    }

    fn shown(&self) -> String {
        self.dir.display().to_string()
    }
}

fn mkfifo(path: &Path) {
    run_ok(Command::new("mkfifo").arg(path));
}

/// A sparse file of `len` bytes: no disk used, endless to read.
fn sparse(path: &Path, len: u64) {
    fs::File::create(path).unwrap().set_len(len).unwrap();
}

// ---------------------------------------------------------------------------------------
// Layout directories
// ---------------------------------------------------------------------------------------

#[test]
fn signature_payload_that_is_a_fifo_is_refused_without_hanging() {
    let l = SignedLayout::new(1);
    l.replace(&l.payload, mkfifo);
    l.verify_refused(&[
        &l.payload,
        &l.shown(),
        "is a FIFO (named pipe), not a regular file",
    ]);
}

#[test]
fn signature_payload_linked_to_dev_zero_is_refused() {
    let l = SignedLayout::new(2);
    l.replace(&l.payload, |p| symlink("/dev/zero", p).unwrap());
    l.verify_refused(&[&l.payload, &l.shown(), "leads outside the layout"]);
}

#[test]
fn blob_linked_out_of_the_layout_is_refused_even_with_the_right_bytes() {
    let l = SignedLayout::new(3);
    let outside = l.tmp.path().join("outside-payload");
    fs::copy(l.blob(&l.payload), &outside).unwrap();
    l.replace(&l.payload, |p| symlink(&outside, p).unwrap());
    l.verify_refused(&[&l.payload, "leads outside the layout"]);
    // Relative, climbing out through `..`, the same.
    l.replace(&l.payload, |p| {
        symlink("../../../outside-payload", p).unwrap();
        assert!(p.exists(), "the link resolves");
    });
    l.verify_refused(&[&l.payload, "leads outside the layout"]);
}

#[test]
fn link_that_stays_inside_the_layout_is_followed() {
    let l = SignedLayout::new(4);
    let shared = l.dir.join("shared");
    fs::create_dir(&shared).unwrap();
    fs::rename(l.blob(&l.payload), shared.join("payload")).unwrap();
    symlink("../../shared/payload", l.blob(&l.payload)).unwrap();
    run_ok(&mut l.verify_cmd());
}

#[test]
fn sparse_huge_manifest_is_refused_by_its_size() {
    let l = SignedLayout::new(5);
    l.replace(&l.root, |p| sparse(p, SPARSE));
    l.verify_refused(&[
        &l.root,
        &l.shown(),
        &format!("is {SPARSE} bytes, more than the 4 MiB a manifest may have"),
    ]);
}

#[test]
fn sparse_huge_index_json_is_refused_by_its_size() {
    let l = SignedLayout::new(6);
    let index = l.dir.join("index.json");
    fs::remove_file(&index).unwrap();
    sparse(&index, SPARSE);
    l.verify_refused(&[
        &index.display().to_string(),
        "more than the 8 MiB an index.json may have",
    ]);
}

#[test]
fn index_json_that_is_a_fifo_is_refused_without_hanging() {
    let l = SignedLayout::new(7);
    let index = l.dir.join("index.json");
    fs::remove_file(&index).unwrap();
    mkfifo(&index);
    l.verify_refused(&[&index.display().to_string(), "is a FIFO"]);
}

#[test]
fn blob_longer_than_its_descriptor_is_refused() {
    let l = SignedLayout::new(8);
    let mut bytes = fs::read(l.blob(&l.payload)).unwrap();
    bytes.extend_from_slice(b"  ");
    fs::write(l.blob(&l.payload), bytes).unwrap();
    l.verify_refused(&[&l.payload, &l.shown(), "does not match its descriptor"]);
}

#[test]
fn sparse_blob_far_longer_than_its_descriptor_is_refused_after_one_byte() {
    let l = SignedLayout::new(9);
    let path = l.blob(&l.payload);
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(SPARSE).unwrap();
    l.verify_refused(&[&l.payload, &l.shown(), "does not match its descriptor"]);
}

#[test]
fn directory_where_a_blob_or_manifest_should_be_is_refused() {
    let l = SignedLayout::new(10);
    l.replace(&l.payload, |p| fs::create_dir(p).unwrap());
    l.verify_refused(&[&l.payload, "is a directory, not a regular file"]);
    let l = SignedLayout::new(11);
    l.replace(&l.root, |p| fs::create_dir(p).unwrap());
    l.verify_refused(&[&l.root, "is a directory, not a regular file"]);
}

#[test]
fn device_where_a_blob_should_be_is_refused() {
    let l = SignedLayout::new(12);
    let path = l.blob(&l.payload);
    fs::remove_file(&path).unwrap();
    // A character device like /dev/zero (1, 5), made in the layout itself.
    let made = Command::new("mknod")
        .arg(&path)
        .args(["c", "1", "5"])
        .status()
        .unwrap();
    if !made.success() {
        eprintln!("mknod is not permitted here: only the FIFO and link cases cover devices");
        return;
    }
    l.verify_refused(&[&l.payload, "is a character device, not a regular file"]);
}

#[test]
fn push_and_mirror_of_a_hostile_layout_write_nothing() {
    let l = SignedLayout::new(13);
    l.replace(&l.layer, |p| symlink("/dev/zero", p).unwrap());
    let out_dir = l.tmp.path().join("out");
    let archive = l.tmp.path().join("out.tar");
    let source = format!("oci:{}:v1", l.dir.display());
    for dest in [
        format!("oci:{}", out_dir.display()),
        format!("oci-archive:{}", archive.display()),
    ] {
        l.refused(
            wharf().args(["push", &source, &dest]),
            &[&l.layer, "leads outside the layout"],
        );
        l.refused(
            wharf().args(["mirror", &source, &dest]),
            &[&l.layer, "leads outside the layout"],
        );
    }
    // A FIFO layer the same, without hanging.
    l.replace(&l.layer, mkfifo);
    l.refused(
        wharf().args([
            "mirror",
            &source,
            &format!("oci-archive:{}", archive.display()),
        ]),
        &[&l.layer, "is a FIFO"],
    );
}

// ---------------------------------------------------------------------------------------
// Archives
// ---------------------------------------------------------------------------------------

/// A signed layout and the archive wharf makes of it (`good.tar`), to damage.
fn signed_archive(seed: u64) -> (SignedLayout, Vec<u8>) {
    let l = SignedLayout::new(seed);
    let good = l.tmp.path().join("good.tar");
    run_ok(wharf().args([
        "mirror",
        "-q",
        &format!("oci:{}:v1", l.dir.display()),
        &format!("oci-archive:{}", good.display()),
    ]));
    let bytes = fs::read(&good).unwrap();
    (l, bytes)
}

/// Writes `bytes` as `bad.tar` and asserts that mirroring and verifying from it are refused
/// with `needles` and write nothing (no extraction anywhere, no destination).
fn archive_refused(l: &SignedLayout, bytes: &[u8], needles: &[&str]) -> String {
    let bad = l.tmp.path().join("bad.tar");
    fs::write(&bad, bytes).unwrap();
    let shown = format!("oci-archive:{}", bad.display());
    let mut all = vec![shown.as_str()];
    all.extend_from_slice(needles);
    let out = format!("oci:{}", l.tmp.path().join("out").display());
    let line = l.refused(wharf().args(["mirror", &format!("{shown}:v1"), &out]), &all);
    l.refused(
        wharf()
            .args(["verify", "--key"])
            .arg(&l.pub_key)
            .args(["--insecure-ignore-tlog"])
            .arg(format!("{shown}@{}", l.root)),
        &all,
    );
    line
}

#[test]
fn wharf_reads_the_archive_it_wrote() {
    let (l, _) = signed_archive(20);
    let good = format!("oci-archive:{}", l.tmp.path().join("good.tar").display());
    run_ok(
        wharf()
            .args(["verify", "--key"])
            .arg(&l.pub_key)
            .args(["--insecure-ignore-tlog", "-q"])
            .arg(format!("{good}@{}", l.root)),
    );
}

#[test]
fn truncated_archive_is_refused() {
    let (l, good) = signed_archive(21);
    // Cut inside a blob, inside a header, and just before the end marker.
    for cut in [good.len() / 2 + 100, 700, good.len() - 1024] {
        archive_refused(&l, &good[..cut], &["is truncated"]);
    }
}

#[test]
fn archive_entry_climbing_out_with_dotdot_is_refused_and_not_extracted() {
    let (l, good) = signed_archive(22);
    let entry = tar_entry("../../evil", tar::EntryType::Regular, b"evil", "");
    archive_refused(
        &l,
        &tar_with(&good, &[entry]),
        &["\"../../evil\"", "climbs out"],
    );
    assert!(!l.tmp.path().join("evil").exists());
    assert!(!l.tmp.path().parent().unwrap().join("evil").exists());
}

#[test]
fn archive_entry_with_an_absolute_path_is_refused() {
    let (l, good) = signed_archive(23);
    let target = l.tmp.path().join("absolute-evil");
    let name = target.to_str().unwrap();
    let entry = tar_entry(name, tar::EntryType::Regular, b"evil", "");
    archive_refused(&l, &tar_with(&good, &[entry]), &[name, "absolute path"]);
    assert!(!target.exists());
}

#[test]
fn archive_links_are_refused() {
    let (l, good) = signed_archive(24);
    let symlink_entry = tar_entry(
        "blobs/sha256/x",
        tar::EntryType::Symlink,
        b"",
        "/etc/passwd",
    );
    archive_refused(
        &l,
        &tar_with(&good, &[symlink_entry]),
        &[
            "\"blobs/sha256/x\"",
            "is a symbolic link (to \"/etc/passwd\")",
        ],
    );
    let hardlink_entry = tar_entry("blobs/sha256/y", tar::EntryType::Link, b"", "index.json");
    archive_refused(
        &l,
        &tar_with(&good, &[hardlink_entry]),
        &["\"blobs/sha256/y\"", "is a hard link (to \"index.json\")"],
    );
}

#[test]
fn archive_with_a_duplicate_entry_is_refused() {
    let (l, good) = signed_archive(25);
    let index = tar_entry(
        "index.json",
        tar::EntryType::Regular,
        br#"{"schemaVersion":2,"manifests":[]}"#,
        "",
    );
    archive_refused(
        &l,
        &tar_with(&good, &[index]),
        &["\"index.json\"", "appears twice"],
    );
}

#[test]
fn archive_devices_and_fifos_are_refused() {
    let (l, good) = signed_archive(26);
    for (kind, why) in [
        (tar::EntryType::Char, "is a device"),
        (tar::EntryType::Block, "is a device"),
        (tar::EntryType::Fifo, "is a FIFO"),
    ] {
        let entry = tar_entry("blobs/sha256/dev", kind, b"", "");
        archive_refused(
            &l,
            &tar_with(&good, &[entry]),
            &["\"blobs/sha256/dev\"", why],
        );
    }
}

#[test]
fn archive_with_a_huge_extended_header_is_refused_unread() {
    let (l, good) = signed_archive(27);
    // A pax header claiming 4 GiB, its bytes a sparse hole: read whole, it would eat memory.
    let mut header = tar::Header::new_ustar();
    header.set_path("PaxHeader").unwrap();
    header.set_entry_type(tar::EntryType::XHeader);
    header.set_size(4 << 30);
    header.set_cksum();
    let with_header = tar_with(&good, &[header.as_bytes().to_vec()]);
    let prefix = &with_header[..with_header.len() - 1024];
    let bad = l.tmp.path().join("bad.tar");
    fs::write(&bad, prefix).unwrap();
    let file = fs::OpenOptions::new().write(true).open(&bad).unwrap();
    file.set_len(prefix.len() as u64 + (4 << 30) + 1024)
        .unwrap();
    drop(file);
    let out = format!("oci:{}", l.tmp.path().join("out").display());
    l.refused(
        wharf().args(["mirror", &format!("oci-archive:{}:v1", bad.display()), &out]),
        &["extended header", "more than the 64 KiB"],
    );
}

#[test]
fn archive_that_is_not_a_file_is_refused_without_hanging() {
    let l = SignedLayout::new(28);
    let fifo = l.tmp.path().join("fifo.tar");
    mkfifo(&fifo);
    let zero = l.tmp.path().join("zero.tar");
    symlink("/dev/zero", &zero).unwrap();
    let out = format!("oci:{}", l.tmp.path().join("out").display());
    for path in [&fifo, &zero] {
        let shown = format!("oci-archive:{}", path.display());
        l.refused(
            wharf().args(["mirror", &format!("{shown}:v1"), &out]),
            &[&shown, "is not a regular file"],
        );
    }
    let junk = l.tmp.path().join("junk.tar");
    fs::write(&junk, vec![0x5a; 10_000]).unwrap();
    let shown = format!("oci-archive:{}", junk.display());
    l.refused(
        wharf().args(["mirror", &format!("{shown}:v1"), &out]),
        &[&shown, "is not a tar archive"],
    );
}
