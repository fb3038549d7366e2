//! Hostile key files, and key files wharf writes where something hostile already sits.
//!
//! Reading: key-derivation parameters that would take hours or terabytes, huge files, a key
//! path that is a FIFO or a link to a device are refused at once with one error line, in
//! bounded memory. Writing: a new key never replaces anything and never goes through a
//! symlink; `--force` and the other outputs replace atomically, so a crash mid-write leaves
//! the old file whole.

mod common;

use common::hostile::{assert_refused, run_bounded};
use common::keys::{cosign_key_file_with_scrypt_n, pbes2_key_file, wharf_key, Kdf};
use common::*;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

/// `wharf key public --key KEY` with a password at hand.
fn key_public(key: &Path) -> Command {
    let mut cmd = wharf();
    cmd.args(["key", "public", "--key"])
        .arg(key)
        .env("WHARF_PASSWORD", "pw");
    cmd
}

/// Refused in seconds with one line naming the key and `needles`.
fn refused(key: &Path, needles: &[&str]) {
    let run = run_bounded(&mut key_public(key), LIMIT);
    let mut all = vec![key.to_str().unwrap()];
    all.extend_from_slice(needles);
    let line = assert_refused(&run, &all);
    assert!(
        run.elapsed < Duration::from_secs(10),
        "took {:?}: {line}",
        run.elapsed
    );
    assert!(run.stdout().is_empty(), "printed a key: {}", run.stdout());
}

#[test]
fn pbkdf2_with_2_32_iterations_is_refused_before_any_work() {
    let dir = tempdir();
    let key = dir.path().join("k.pem");
    pbes2_key_file(&key, Kdf::Pbkdf2(u32::MAX));
    refused(&key, &["PBKDF2", "4294967295 iterations"]);
}

#[test]
fn scrypt_asking_for_terabytes_is_refused_before_any_work() {
    let dir = tempdir();
    for (name, kdf, needle) in [
        ("n40.pem", Kdf::Scrypt(1 << 40, 8, 1), "N=1099511627776"),
        ("p.pem", Kdf::Scrypt(1 << 17, 8, u16::MAX), "p=65535"),
        ("r.pem", Kdf::Scrypt(1 << 14, u16::MAX, 1), "r=65535"),
    ] {
        let key = dir.path().join(name);
        pbes2_key_file(&key, kdf);
        refused(&key, &["scrypt", needle]);
    }
    let key = dir.path().join("cosign.key");
    cosign_key_file_with_scrypt_n(&key, 1 << 40);
    refused(&key, &["scrypt", "N=1099511627776"]);
}

#[test]
fn a_huge_key_file_is_not_read() {
    let dir = tempdir();
    let key = dir.path().join("huge.key");
    fs::File::create(&key).unwrap().set_len(1 << 30).unwrap();
    refused(&key, &["larger than 64 KiB"]);
}

#[test]
fn a_key_path_that_is_a_fifo_or_a_device_does_not_hang() {
    let dir = tempdir();
    let fifo = dir.path().join("fifo.key");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    refused(&fifo, &["a FIFO"]);
    let zero = dir.path().join("zero.key");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    refused(&zero, &["a device"]);
}

/// Every entry of `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_new_key_never_goes_through_a_symlink() {
    let dir = tempdir();
    let elsewhere = dir.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    // A dangling link where the key would go: it is something, so nothing is written.
    let target = elsewhere.join("stolen.key");
    std::os::unix::fs::symlink(&target, dir.path().join("release.key")).unwrap();
    let out = run_fail(
        wharf()
            .args(["key", "generate", "--output-key-prefix"])
            .arg(dir.path().join("release"))
            .env("WHARF_PASSWORD", "pw"),
    );
    assert!(
        error_line(&out).contains("already exists"),
        "{}",
        error_line(&out)
    );
    assert!(!target.exists(), "the key was written through the symlink");
    assert_eq!(entries(dir.path()), ["elsewhere", "release.key"]);

    // With --force the link itself is replaced; what it pointed at is untouched.
    fs::write(&target, "precious").unwrap();
    run_ok(
        wharf()
            .args(["key", "generate", "--force", "--output-key-prefix"])
            .arg(dir.path().join("release"))
            .env("WHARF_PASSWORD", "pw"),
    );
    assert_eq!(fs::read_to_string(&target).unwrap(), "precious");
    let key = dir.path().join("release.key");
    assert!(!fs::symlink_metadata(&key).unwrap().file_type().is_symlink());
    assert!(fs::read_to_string(&key)
        .unwrap()
        .contains("ENCRYPTED SIGSTORE PRIVATE KEY"));
    assert_eq!(
        entries(dir.path()),
        ["elsewhere", "release.key", "release.pub"]
    );
}

#[test]
fn a_crash_while_forcing_a_new_key_leaves_the_old_one_whole() {
    let dir = tempdir();
    let old = wharf_key(dir.path(), "release", "pw");
    let (old_key, old_pub) = (
        fs::read(&old.private).unwrap(),
        fs::read(&old.public).unwrap(),
    );
    // The process dies (SIGXFSZ) on its first write past 200 bytes: mid-key.
    let mut cmd = wharf();
    cmd.args(["key", "generate", "--force", "--output-key-prefix"])
        .arg(dir.path().join("release"))
        .env("WHARF_PASSWORD", "pw");
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 200,
                rlim_max: 200,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let run = run_bounded(&mut cmd, LIMIT);
    assert!(!run.output.status.success(), "the write did not fail");
    assert_eq!(
        fs::read(&old.private).unwrap(),
        old_key,
        "the old key was damaged"
    );
    assert_eq!(
        fs::read(&old.public).unwrap(),
        old_pub,
        "the old public key was damaged"
    );
    run_ok(&mut key_public(&old.private));
}

#[test]
fn outputs_replace_a_symlink_instead_of_writing_through_it() {
    let dir = tempdir();
    let key = wharf_key(dir.path(), "release", "pw");
    let target = dir.path().join("precious.txt");
    fs::write(&target, "precious").unwrap();
    let out_path = dir.path().join("out.pub");
    std::os::unix::fs::symlink(&target, &out_path).unwrap();
    run_ok(key_public(&key.private).arg("--output-file").arg(&out_path));
    assert_eq!(fs::read_to_string(&target).unwrap(), "precious");
    assert_eq!(fs::read(&out_path).unwrap(), fs::read(&key.public).unwrap());
    assert!(!fs::symlink_metadata(&out_path)
        .unwrap()
        .file_type()
        .is_symlink());
}
