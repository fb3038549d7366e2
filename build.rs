//! Build metadata for `wharf --version`: the commit the binary was built from and the build
//! date, as `WHARF_BUILD_COMMIT`, `WHARF_BUILD_COMMIT_SHORT`, `WHARF_BUILD_DATE` and
//! `WHARF_BUILD_TARGET` for `env!`.
//!
//! The commit comes from, in order: the `WHARF_BUILD_COMMIT` variable (for packagers building
//! from a plain tarball); `.cargo_vcs_info.json`, which `cargo package` writes into the crate
//! (so `cargo install wharf` names the commit it was published from); `git`, when this
//! package is the top of a git work tree; otherwise "unknown". A build never fails for lack
//! of git.
//!
//! The date is `SOURCE_DATE_EPOCH` when set (reproducible builds: the release workflow sets
//! it to the commit's time), otherwise today's date (UTC).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=WHARF_BUILD_COMMIT");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");

    let commit = std::env::var("WHARF_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .map(|c| c.trim().to_string())
        .or_else(|| packaged_commit(&manifest_dir))
        .or_else(|| git_commit(&manifest_dir))
        .unwrap_or_else(|| "unknown".to_string());
    let short = short_commit(&commit);
    let date = civil_date(build_time());

    println!("cargo:rustc-env=WHARF_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=WHARF_BUILD_COMMIT_SHORT={short}");
    println!("cargo:rustc-env=WHARF_BUILD_DATE={date}");
    println!(
        "cargo:rustc-env=WHARF_BUILD_TARGET={}",
        std::env::var("TARGET").unwrap_or_default()
    );
}

/// `abcdef012345…-dirty` -> `abcdef012-dirty` (nine hex digits, as rustc prints its own).
fn short_commit(commit: &str) -> String {
    let (hash, dirty) = match commit.strip_suffix("-dirty") {
        Some(hash) => (hash, "-dirty"),
        None => (commit, ""),
    };
    let is_hex = !hash.is_empty() && hash.chars().all(|c| c.is_ascii_hexdigit());
    if is_hex && hash.len() > 9 {
        format!("{}{dirty}", &hash[..9])
    } else {
        commit.to_string()
    }
}

/// The commit recorded by `cargo package` in `.cargo_vcs_info.json`:
/// `{"git": {"sha1": "<40 hex>", "dirty": true}, "path_in_vcs": ""}`.
fn packaged_commit(manifest_dir: &Path) -> Option<String> {
    let path = manifest_dir.join(".cargo_vcs_info.json");
    if !path.is_file() {
        return None;
    }
    println!("cargo:rerun-if-changed={}", path.display());
    let text = std::fs::read_to_string(&path).ok()?;
    // A tiny scan instead of a JSON parser as a build dependency: the file is cargo's own.
    let after_key = &text[text.find("\"sha1\"")? + "\"sha1\"".len()..];
    let value = after_key.split('"').nth(1)?;
    if value.len() != 40 || !value.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let dirty = text.contains("\"dirty\": true") || text.contains("\"dirty\":true");
    Some(format!("{value}{}", if dirty { "-dirty" } else { "" }))
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// HEAD of the git work tree whose top is this package (not of some repository the sources
/// happen to sit in, such as a packaged crate unpacked under another checkout), with
/// `-dirty` when tracked files differ from it.
fn git_commit(manifest_dir: &Path) -> Option<String> {
    let top = PathBuf::from(git(manifest_dir, &["rev-parse", "--show-toplevel"])?);
    if top.canonicalize().ok()? != manifest_dir.canonicalize().ok()? {
        return None;
    }
    let head = git(manifest_dir, &["rev-parse", "HEAD"])?;
    // Rebuild when HEAD moves (checkout, commit) and when sources change (dirty state).
    let mut watched = vec![git(manifest_dir, &["rev-parse", "--git-path", "HEAD"])?];
    if let Some(branch) = git(manifest_dir, &["symbolic-ref", "-q", "HEAD"]) {
        watched.extend(git(manifest_dir, &["rev-parse", "--git-path", &branch]));
    }
    watched.extend(git(
        manifest_dir,
        &["rev-parse", "--git-path", "packed-refs"],
    ));
    watched.extend(["src", "Cargo.toml", "Cargo.lock"].map(String::from));
    for path in watched {
        let path = manifest_dir.join(path);
        // A watched path that does not exist would rerun this script on every build.
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    let dirty = git(
        manifest_dir,
        &["status", "--porcelain", "--untracked-files=no"],
    )
    .is_some_and(|s| !s.is_empty());
    Some(format!("{head}{}", if dirty { "-dirty" } else { "" }))
}

/// Seconds since the epoch: `SOURCE_DATE_EPOCH` (https://reproducible-builds.org/specs/
/// source-date-epoch/), or now.
fn build_time() -> u64 {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) if !value.trim().is_empty() => value.trim().parse().unwrap_or_else(|_| {
            panic!("SOURCE_DATE_EPOCH={value:?} is not a number of seconds since 1970")
        }),
        _ => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    }
}

/// The UTC calendar date (YYYY-MM-DD) of a Unix time, in the proleptic Gregorian calendar.
fn civil_date(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    // Shift the epoch to 0000-03-01 so leap days fall at the end of a 400-year era's years.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // 0 = March
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}
