//! `COSIGN_REPOSITORY`: cosign's `.sig`/`.att` tags kept in a repository of their own, as
//! cosign 2.5 keeps them, against real registries and the real cosign.
//!
//! - wharf signs and attests into it and cosign verifies with the same variable; cosign signs
//!   and attests into it and wharf verifies, and `tree` shows what it holds;
//! - without the variable nothing is found and verification fails closed;
//! - the repository may be on another registry, with its own credentials;
//! - Sigstore bundles (referrers) stay beside the image, as cosign 2.5 writes and reads them;
//! - `mirror` reads the source's signatures from it and writes them beside the destination
//!   image, as `cosign copy` does.

mod common;

use common::keys::{wharf_key, Key};
use common::*;
use std::process::Command;

const PASSWORD: &str = "cosign-repository-test-7c21";
const TWO: &[&str] = &["linux/amd64", "linux/arm64"];
const CYCLONEDX: &str = "https://cyclonedx.org/bom";

fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").expect("sha256 digest")
}

fn tag(digest: &str, suffix: &str) -> String {
    format!("sha256-{}.{suffix}", hex(digest))
}

fn with_repo<'a>(cmd: &'a mut Command, repo: Option<&str>) -> &'a mut Command {
    match repo {
        Some(repo) => cmd.env("COSIGN_REPOSITORY", repo),
        None => cmd.env_remove("COSIGN_REPOSITORY"),
    }
}

fn wharf_sign(key: &Key, image: &str, repo: Option<&str>) -> Command {
    let mut cmd = wharf_clean();
    cmd.args(["sign", "--allow-insecure-registry", "--tlog-upload=false"])
        .args(["--key", key.private(), image])
        .env("WHARF_PASSWORD", PASSWORD);
    with_repo(&mut cmd, repo);
    cmd
}

fn wharf_attest(
    key: &Key,
    image: &str,
    predicate: &std::path::Path,
    repo: Option<&str>,
) -> Command {
    let mut cmd = wharf_clean();
    cmd.args(["attest", "--allow-insecure-registry", "--tlog-upload=false"])
        .args(["--key", key.private(), "--type", "cyclonedx", "--predicate"])
        .arg(predicate)
        .arg(image)
        .env("WHARF_PASSWORD", PASSWORD);
    with_repo(&mut cmd, repo);
    cmd
}

fn wharf_verify(verb: &str, key: &Key, image: &str, repo: Option<&str>) -> Command {
    let mut cmd = wharf_clean();
    cmd.args([verb, "--allow-insecure-registry", "--insecure-ignore-tlog"])
        .args(["--key", key.public()]);
    if verb == "verify-attestation" {
        cmd.args(["--type", "cyclonedx"]);
    }
    cmd.arg(image);
    with_repo(&mut cmd, repo);
    cmd
}

fn cosign(args: &[&str], repo: Option<&str>) -> Command {
    let mut cmd = common::cosign();
    cmd.args(args).env("COSIGN_PASSWORD", PASSWORD);
    with_repo(&mut cmd, repo);
    cmd
}

fn cosign_verify(verb: &str, key: &Key, image: &str, repo: Option<&str>) -> Command {
    let mut args = vec![
        verb,
        "--allow-insecure-registry",
        "--insecure-ignore-tlog=true",
        "--key",
        key.public(),
    ];
    if verb == "verify-attestation" {
        args.extend(["--type", "cyclonedx"]);
    }
    args.push(image);
    cosign(&args, repo)
}

fn sbom_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("sbom.cdx.json");
    std::fs::write(
        &path,
        serde_json::to_vec(&serde_json::json!({
            "bomFormat": "CycloneDX",
            "specVersion": "1.5",
            "version": 1,
            "components": [{"type": "library", "name": "zlib", "version": "1.3"}]
        }))
        .unwrap(),
    )
    .unwrap();
    path
}

fn attachment_tags(reg: &Registry, name: &str) -> Vec<String> {
    reg.tags(name)
        .into_iter()
        .filter(|t| t.starts_with("sha256-"))
        .collect()
}

#[test]
fn wharf_signs_and_attests_into_it_and_cosign_verifies_with_the_same_variable() {
    let reg = Registry::start();
    let dir = tempdir();
    let key = wharf_key(dir.path(), "release", PASSWORD);
    let img = push_to(&reg, "app", TWO, 1);
    let sigs = reg.repo("app-signatures");
    let sbom = sbom_file(dir.path());

    let out = run_ok(wharf_sign(&key, &img.index(), Some(&sigs)).arg("--recursive"));
    assert!(
        stderr_of(&out).contains(&format!(".sig/.att tags go to {sigs} (COSIGN_REPOSITORY)")),
        "{}",
        stderr_of(&out)
    );
    run_ok(&mut wharf_attest(&key, &img.index(), &sbom, Some(&sigs)));

    assert_eq!(attachment_tags(&reg, "app"), Vec::<String>::new());
    let mut expected: Vec<String> = img
        .all_digests()
        .iter()
        .map(|d| tag(d, "sig"))
        .chain([tag(&img.digest, "att")])
        .collect();
    expected.sort();
    assert_eq!(attachment_tags(&reg, "app-signatures"), expected);

    for verb in ["verify", "verify-attestation"] {
        run_ok(&mut cosign_verify(verb, &key, &img.index(), Some(&sigs)));
        run_ok(&mut wharf_verify(verb, &key, &img.index(), Some(&sigs)));
        // Without the variable, neither tool finds anything: a failure, never a pass.
        run_fail(&mut cosign_verify(verb, &key, &img.index(), None));
        let out = run_fail(&mut wharf_verify(verb, &key, &img.index(), None));
        assert!(out.stdout.is_empty(), "{verb} printed on failure");
    }
    for (_, child) in &img.children {
        run_ok(&mut cosign_verify(
            "verify",
            &key,
            &img.at(child),
            Some(&sigs),
        ));
        run_ok(&mut wharf_verify(
            "verify",
            &key,
            &img.at(child),
            Some(&sigs),
        ));
    }
}

#[test]
fn cosign_signs_and_attests_into_it_and_wharf_verifies_and_tree_shows_them() {
    let reg = Registry::start();
    let dir = tempdir();
    let key = wharf_key(dir.path(), "release", PASSWORD);
    let img = push_to(&reg, "app", TWO, 2);
    let sigs = reg.repo("signatures");
    let sbom = sbom_file(dir.path());
    let index = img.index();
    let common = ["--allow-insecure-registry", "--tlog-upload=false", "-y"];

    let mut sign = vec!["sign", "--key", key.private()];
    sign.extend(common);
    sign.push(&index);
    run_ok(&mut cosign(&sign, Some(&sigs)));
    let predicate = sbom.to_str().unwrap();
    let mut attest = vec!["attest", "--key", key.private(), "--type", "cyclonedx"];
    attest.extend(["--predicate", predicate]);
    attest.extend(common);
    attest.push(&index);
    run_ok(&mut cosign(&attest, Some(&sigs)));
    assert_eq!(attachment_tags(&reg, "app"), Vec::<String>::new());

    for verb in ["verify", "verify-attestation"] {
        run_ok(&mut wharf_verify(verb, &key, &index, Some(&sigs)));
        run_fail(&mut wharf_verify(verb, &key, &index, None));
    }

    let tree = |repo| {
        let mut cmd = wharf_clean();
        cmd.args(["tree", "--allow-insecure-registry", &index]);
        with_repo(&mut cmd, repo);
        stdout_of(&run_ok(&mut cmd))
    };
    let text = tree(Some(&sigs));
    for (suffix, kind) in [("sig", "signature"), ("att", "attestation")] {
        let line = text
            .lines()
            .find(|l| l.contains(&tag(&img.digest, suffix)))
            .unwrap_or_else(|| panic!("no .{suffix} line:\n{text}"));
        assert!(line.contains(kind), "{line}");
    }
    assert!(text.contains(CYCLONEDX), "{text}");
    let text = tree(None);
    assert!(!text.contains(".sig") && !text.contains(".att"), "{text}");

    // Mirrored within the registry (blob mounts asked from the image's repository): cosign's
    // own `.sig` and `.att` manifests, configs and all, arrive beside the copy.
    let mut mirror = wharf_clean();
    mirror
        .args(["mirror", "--allow-insecure-registry", &index])
        .arg(reg.repo("mirror/app"));
    run_ok(with_repo(&mut mirror, Some(&sigs)));
    let copy = format!("{}@{}", reg.repo("mirror/app"), img.digest);
    for verb in ["verify", "verify-attestation"] {
        run_ok(&mut cosign_verify(verb, &key, &copy, None));
        run_ok(&mut wharf_verify(verb, &key, &copy, None));
    }
    assert_eq!(
        reg.get_manifest("mirror/app", &tag(&img.digest, "sig")),
        reg.get_manifest("signatures", &tag(&img.digest, "sig")),
        "the .sig was not copied byte for byte"
    );
}

#[test]
fn the_repository_may_be_on_another_registry_with_its_own_credentials() {
    let images = Registry::start();
    let signatures = Registry::start_with_basic_auth("signer", "sig-pass-41d0");
    let dir = tempdir();
    let key = wharf_key(dir.path(), "release", PASSWORD);
    let img = push_to(&images, "app", TWO, 3);
    let sigs = signatures.repo("acme/signatures");
    let config = signatures.docker_config(&dir.path().join("docker"));

    // No credentials for the signature registry: refused there, nothing written anywhere.
    let out =
        run_fail(wharf_sign(&key, &img.index(), Some(&sigs)).env("DOCKER_CONFIG", dir.path()));
    assert!(
        error_line(&out).contains(signatures.addr()),
        "{}",
        error_line(&out)
    );
    assert_eq!(attachment_tags(&images, "app"), Vec::<String>::new());

    run_ok(wharf_sign(&key, &img.index(), Some(&sigs)).env("DOCKER_CONFIG", &config));
    assert_eq!(
        attachment_tags(&signatures, "acme/signatures"),
        [tag(&img.digest, "sig")]
    );
    assert_eq!(attachment_tags(&images, "app"), Vec::<String>::new());
    run_ok(wharf_verify("verify", &key, &img.index(), Some(&sigs)).env("DOCKER_CONFIG", &config));
    run_ok(cosign_verify("verify", &key, &img.index(), Some(&sigs)).env("DOCKER_CONFIG", &config));
}

#[test]
fn bundles_stay_beside_the_image_as_cosign_keeps_them() {
    let reg = Registry::start();
    let dir = tempdir();
    let key = wharf_key(dir.path(), "release", PASSWORD);
    let img = push_to(&reg, "app", TWO, 4);
    let sigs = reg.repo("app-signatures");

    run_ok(wharf_sign(&key, &img.index(), Some(&sigs)).args(["--bundle-format", "both"]));
    // The tag scheme moved; the bundle referrer and its fallback index stayed.
    assert_eq!(
        attachment_tags(&reg, "app-signatures"),
        [tag(&img.digest, "sig")]
    );
    assert_eq!(
        attachment_tags(&reg, "app"),
        [format!("sha256-{}", hex(&img.digest))]
    );
    run_ok(&mut wharf_verify("verify", &key, &img.index(), Some(&sigs)));
    run_ok(&mut cosign_verify(
        "verify",
        &key,
        &img.index(),
        Some(&sigs),
    ));
    // Without the variable the `.sig` is not found, but the bundle beside the image is.
    run_ok(&mut wharf_verify("verify", &key, &img.index(), None));
}

#[test]
fn mirror_carries_them_beside_the_destination_image() {
    let reg = Registry::start();
    let dest = Registry::start();
    let dir = tempdir();
    let key = wharf_key(dir.path(), "release", PASSWORD);
    let img = push_to(&reg, "app", TWO, 5);
    let sigs = reg.repo("app-signatures");
    let sbom = sbom_file(dir.path());
    run_ok(wharf_sign(&key, &img.index(), Some(&sigs)).args([
        "--recursive",
        "--bundle-format",
        "both",
    ]));
    run_ok(&mut wharf_attest(&key, &img.index(), &sbom, Some(&sigs)));

    let mut mirror = wharf_clean();
    mirror
        .args(["mirror", "--allow-insecure-registry", "--output", "json"])
        .arg(img.index())
        .arg(dest.repo("mirror/app"))
        .env("COSIGN_REPOSITORY", &sigs);
    let report: serde_json::Value =
        serde_json::from_slice(&run_ok(&mut mirror).stdout).expect("mirror JSON");
    assert_eq!(report["artifacts"]["signatures"], 3, "{report}");
    assert_eq!(report["artifacts"]["attestations"], 1, "{report}");

    let at_dest = format!("{}/mirror/app@{}", dest.addr(), img.digest);
    for verb in ["verify", "verify-attestation"] {
        run_ok(&mut wharf_verify(verb, &key, &at_dest, None));
    }
    run_ok(&mut cosign_verify("verify", &key, &at_dest, None));
    run_ok(&mut cosign_verify(
        "verify-attestation",
        &key,
        &at_dest,
        None,
    ));
    for (_, child) in &img.children {
        assert!(dest
            .get_manifest("mirror/app", &tag(child, "sig"))
            .is_some());
    }
    // The source's own repository is untouched: nothing was written beside its image.
    assert_eq!(
        attachment_tags(&reg, "app"),
        img.all_digests()
            .iter()
            .map(|d| format!("sha256-{}", hex(d)))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_value_that_is_not_a_registry_repository_is_refused() {
    let reg = Registry::start();
    let dir = tempdir();
    let key = wharf_key(dir.path(), "release", PASSWORD);
    let img = push_to(&reg, "app", &["linux/amd64"], 6);
    for bad in ["oci:./sigs", &format!("{}:v1", reg.repo("sigs"))] {
        let out = run_fail(&mut wharf_sign(&key, &img.index(), Some(bad)));
        assert!(
            error_line(&out).contains("COSIGN_REPOSITORY"),
            "{}",
            error_line(&out)
        );
    }
    assert_eq!(attachment_tags(&reg, "app"), Vec::<String>::new());
}

#[test]
fn a_release_signs_and_attests_into_it_and_its_mirror_gets_them_beside_the_image() {
    let reg = Registry::start();
    let dest = Registry::start();
    let dir = tempdir();
    let work = dir.path();
    let key = wharf_key(work, "release", PASSWORD);
    let layout = example_layout(&work.join("out"));
    let sigs = reg.repo("acme/signatures");
    let config = work.join("wharf.toml");
    std::fs::write(
        &config,
        format!(
            "layout = {layout}\nrepository = {repo}\ntags = [\"v1\"]\n\
             insecure_registries = [{src}, {dst}]\n\n\
             [signing]\nkey = {private}\ntlog_upload = false\n\n\
             [attestations]\nsbom = \"generate\"\nprovenance = false\n\n\
             [verify]\nkey = {public}\ninsecure_ignore_tlog = true\n\n\
             [[mirror]]\ndestination = {mirror}\n",
            layout = toml_str(&format!("{}:v1", layout.display())),
            repo = toml_str(&reg.repo("acme/app")),
            src = toml_str(reg.addr()),
            dst = toml_str(dest.addr()),
            private = toml_str(key.private()),
            public = toml_str(key.public()),
            mirror = toml_str(&dest.repo("mirror/app")),
        ),
    )
    .unwrap();
    run_ok(
        wharf_clean()
            .args(["release", "--config"])
            .arg(&config)
            .env("WHARF_PASSWORD", PASSWORD)
            .env("COSIGN_REPOSITORY", &sigs),
    );

    // (.sig, .att) tags: the index and both platforms signed, both platforms' SBOMs attested.
    let kinds = |tags: Vec<String>| {
        let count = |suffix| tags.iter().filter(|t| t.ends_with(suffix)).count();
        (count(".sig"), count(".att"))
    };
    assert_eq!(kinds(attachment_tags(&reg, "acme/signatures")), (3, 2));
    assert_eq!(kinds(attachment_tags(&reg, "acme/app")), (0, 0));
    assert_eq!(kinds(dest.tags("mirror/app")), (3, 2));
}

#[test]
fn a_layout_keeps_its_signatures_inside() {
    let reg = Registry::start();
    let dir = tempdir();
    let key = wharf_key(dir.path(), "release", PASSWORD);
    let layout = make_layout(&dir.path().join("out"), &LayoutSpec::default());
    let image = format!("oci:{}@{}", layout.dir.display(), layout.root_digest);
    let sigs = reg.repo("signatures");

    run_ok(&mut wharf_sign(&key, &image, Some(&sigs)));
    run_ok(&mut wharf_verify("verify", &key, &image, None));
    run_ok(&mut wharf_verify("verify", &key, &image, Some(&sigs)));
    assert!(reg.tags("signatures").is_empty());
}
