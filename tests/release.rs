//! `wharf release` end to end, against real registries (`docker-registry`), the loopback
//! Sigstore stand-in and the real cosign:
//!
//! - the whole pipeline with a key and keyless: push by digest, sign every manifest, attest a
//!   CycloneDX SBOM per platform, verify, tag, mirror and verify there; cosign verifies the
//!   signatures and attestations on the primary registry and on the mirror;
//! - a rerun is idempotent (no second signature, attestation or tag), the tag never appears
//!   before the signatures and attestations it promises, and a release killed at any point
//!   finishes on a rerun in the same state as an uninterrupted one;
//! - the config: `--dry-run`, unknown keys, `--set` and `WHARF_CFG_*` overrides, refused
//!   combinations;
//! - GitHub Actions integration (step outputs, job summary, `::error::`), the admission
//!   policies and verification guide generated from the config, the project's workflow files
//!   and reusable action, its release key, and the README's first command.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use common::k8s::{cluster_image_policy_globs, kyverno_image_references, yaml_documents};
use common::keys::{wharf_key, Key};
use common::standin::SigstoreStandIn;
use common::toml_str as q;
use common::*;
use serde_json::Value;

const PASSWORD: &str = "release-test-password-5c21";
const CYCLONEDX: &str = "https://cyclonedx.org/bom";
const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";

// ---------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------

/// `wharf release --config CONFIG` with the key password, in `cwd` if given.
fn release_cmd(config: &Path) -> Command {
    let mut cmd = wharf_clean();
    cmd.args(["release", "--config"])
        .arg(config)
        .env("WHARF_PASSWORD", PASSWORD);
    cmd
}

/// Runs `wharf release --config CONFIG EXTRA… --output json` to success; the report.
fn release_json(config: &Path, extra: &[&str]) -> Value {
    let out = run_ok(release_cmd(config).args(extra).args(["--output", "json"]));
    parse_json(&out)
}

// ---------------------------------------------------------------------------------------
// Keys, layouts, configs
// ---------------------------------------------------------------------------------------

/// The root digest of a layout and its platforms' manifest digests (`os/arch[/variant]`).
fn layout_image(dir: &Path) -> (String, Vec<(String, String)>) {
    let index: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    let root = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let root_manifest: Value = serde_json::from_slice(&fs::read(blob_path(dir, &root)).unwrap())
        .expect("root manifest JSON");
    let platforms = root_manifest["manifests"]
        .as_array()
        .expect("the layout's root is an index")
        .iter()
        .map(|m| {
            (
                platform_of(&m["platform"]),
                m["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (root, platforms)
}

fn platform_of(p: &Value) -> String {
    let mut s = format!(
        "{}/{}",
        p["os"].as_str().unwrap(),
        p["architecture"].as_str().unwrap()
    );
    if let Some(v) = p["variant"].as_str() {
        s.push('/');
        s.push_str(v);
    }
    s
}

fn toml_list<S: AsRef<str>>(items: &[S]) -> String {
    let items: Vec<String> = items.iter().map(|s| q(s.as_ref())).collect();
    format!("[{}]", items.join(", "))
}

/// A release config, written as TOML.
#[derive(Clone)]
struct Config {
    layout: String,
    repository: String,
    tags: Vec<String>,
    /// `key = value` lines of each section (values already TOML).
    signing: Vec<String>,
    attestations: Vec<String>,
    verify: Vec<String>,
    mirrors: Vec<String>,
    insecure: Vec<String>,
}

impl Config {
    /// Key-signed, not logged, a generated SBOM per platform, tags `v1` and `latest`.
    fn key(layout: &str, repository: &str, key: &Key) -> Config {
        Config {
            layout: layout.to_string(),
            repository: repository.to_string(),
            tags: vec!["v1".into(), "latest".into()],
            signing: vec![
                format!("key = {}", q(key.private())),
                "tlog_upload = false".into(),
            ],
            attestations: vec!["sbom = \"generate\"".into()],
            verify: vec!["insecure_ignore_tlog = true".into()],
            mirrors: Vec::new(),
            insecure: Vec::new(),
        }
    }

    /// Keyless against the stand-in `si`, trusting `trusted_root`, its default identity as
    /// the policy; a generated SBOM per platform, tag `v1`.
    fn keyless(
        layout: &str,
        repository: &str,
        si: &SigstoreStandIn,
        trusted_root: &Path,
    ) -> Config {
        Config {
            layout: layout.to_string(),
            repository: repository.to_string(),
            tags: vec!["v1".into()],
            signing: vec![
                format!("fulcio_url = {}", q(&si.fulcio_url)),
                format!("rekor_url = {}", q(&si.rekor_url)),
                format!("trusted_root = {}", q(trusted_root.to_str().unwrap())),
                format!("identity_token = {}", q(&si.token(""))),
            ],
            attestations: vec!["sbom = \"generate\"".into()],
            verify: vec![
                format!("certificate_identity = {}", q(&si.identity)),
                format!("certificate_oidc_issuer = {}", q(&si.oidc_issuer)),
            ],
            mirrors: Vec::new(),
            insecure: Vec::new(),
        }
    }

    fn mirror(mut self, destination: &str) -> Config {
        self.mirrors.push(destination.to_string());
        self
    }

    fn insecure(mut self, registries: &[&Registry]) -> Config {
        self.insecure
            .extend(registries.iter().map(|r| r.addr().to_string()));
        self
    }

    fn text(&self) -> String {
        let mut t = format!(
            "layout = {}\nrepository = {}\ntags = {}\n",
            q(&self.layout),
            q(&self.repository),
            toml_list(&self.tags)
        );
        if !self.insecure.is_empty() {
            t += &format!("insecure_registries = {}\n", toml_list(&self.insecure));
        }
        for (name, lines) in [
            ("signing", &self.signing),
            ("attestations", &self.attestations),
            ("verify", &self.verify),
        ] {
            if !lines.is_empty() {
                t += &format!("\n[{name}]\n{}\n", lines.join("\n"));
            }
        }
        for m in &self.mirrors {
            t += &format!("\n[[mirror]]\ndestination = {}\n", q(m));
        }
        t
    }

    fn write(&self, path: &Path) -> PathBuf {
        fs::write(path, self.text()).unwrap();
        path.to_path_buf()
    }
}

// ---------------------------------------------------------------------------------------
// Reading what a registry holds
// ---------------------------------------------------------------------------------------

fn manifest_value(reg: &Registry, repo: &str, reference: &str) -> Option<Value> {
    reg.get_manifest(repo, reference)
        .map(|(bytes, _)| serde_json::from_slice(&bytes).expect("manifest JSON"))
}

/// Layers of `repo:TAG` (empty when the tag does not exist).
fn layers(reg: &Registry, repo: &str, tag: &str) -> Vec<Value> {
    manifest_value(reg, repo, tag)
        .map(|m| m["layers"].as_array().cloned().unwrap_or_default())
        .unwrap_or_default()
}

/// `predicateType` annotations of the `.att` layers of `digest`.
fn attestation_types(reg: &Registry, repo: &str, digest: &str) -> Vec<String> {
    layers(reg, repo, &att_tag(digest))
        .iter()
        .map(|l| {
            l["annotations"]["predicateType"]
                .as_str()
                .unwrap_or("?")
                .to_string()
        })
        .collect()
}

/// The tags that are not cosign's `sha256-…` tags, sorted.
fn release_tags(reg: &Registry, repo: &str) -> Vec<String> {
    reg.tags(repo)
        .into_iter()
        .filter(|t| !t.starts_with("sha256-"))
        .collect()
}

fn catalog(reg: &Registry) -> Vec<String> {
    let resp = reg.request("GET", "/v2/_catalog", &[], b"");
    assert_eq!(resp.status, 200, "{}", resp.text());
    let v: Value = serde_json::from_slice(&resp.body).unwrap();
    v["repositories"]
        .as_array()
        .map(|a| a.iter().map(|r| r.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// What `wharf release --output json` reported.
struct Report {
    digest: String,
    /// `(platform, digest)`.
    platforms: Vec<(String, String)>,
    steps: Vec<(String, String)>,
    json: Value,
}

impl Report {
    fn of(json: Value) -> Report {
        let digest = json["digest"].as_str().expect("digest").to_string();
        let platforms = json["manifests"]
            .as_array()
            .expect("manifests")
            .iter()
            .map(|m| {
                (
                    m["platform"].as_str().unwrap().to_string(),
                    m["digest"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let steps = json["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .map(|s| {
                (
                    s[0].as_str().unwrap().to_string(),
                    s[1].as_str().unwrap().to_string(),
                )
            })
            .collect();
        Report {
            digest,
            platforms,
            steps,
            json,
        }
    }

    /// Asserts every step was done this run (verify says "verified").
    fn assert_every_step_done(&self) {
        assert!(
            self.steps
                .iter()
                .all(|(step, s)| s == "done" || (step == "verify" && s == "verified")),
            "{:?}",
            self.steps
        );
    }

    /// The index and every platform's manifest.
    fn all_digests(&self) -> Vec<String> {
        std::iter::once(self.digest.clone())
            .chain(self.platforms.iter().map(|(_, d)| d.clone()))
            .collect()
    }
}

/// Everything a finished release promises in `reg/repo`, for a key-signed (one key) release
/// with an SBOM per platform: exactly one signature per manifest, exactly one CycloneDX
/// attestation per platform, the release tags pointing at the index.
fn assert_release_state(reg: &Registry, repo: &str, report: &Report, tags: &[&str]) {
    for digest in report.all_digests() {
        let (bytes, _) = reg
            .get_manifest(repo, &digest)
            .unwrap_or_else(|| panic!("{repo}@{digest} missing in {}", reg.addr()));
        assert_eq!(digest_of(&bytes), digest, "{repo}@{digest} bytes");
        let sigs = layers(reg, repo, &sig_tag(&digest));
        assert_eq!(
            sigs.len(),
            1,
            "{}/{repo}: {digest} should have exactly one signature: {sigs:#?}",
            reg.addr()
        );
        assert!(sigs[0]["annotations"][SIGNATURE_ANNOTATION].is_string());
    }
    for (platform, digest) in &report.platforms {
        assert_eq!(
            attestation_types(reg, repo, digest),
            vec![CYCLONEDX.to_string()],
            "{}/{repo}: {platform} should have exactly one SBOM attestation",
            reg.addr()
        );
    }
    let mut want: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    want.sort();
    assert_eq!(release_tags(reg, repo), want, "{}/{repo} tags", reg.addr());
    for tag in tags {
        assert_eq!(
            reg.manifest_digest(repo, tag).as_deref(),
            Some(report.digest.as_str()),
            "{}/{repo}:{tag}",
            reg.addr()
        );
    }
}

// ---------------------------------------------------------------------------------------
// cosign as the independent verifier
// ---------------------------------------------------------------------------------------

/// Asserts cosign's `verify` output names exactly `digest`.
fn assert_cosign_payloads(out: &Output, digest: &str) {
    let payloads: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("cosign verify output is not JSON ({e}): {}", stdout_of(out)));
    let payloads = payloads.as_array().expect("cosign prints an array");
    assert!(!payloads.is_empty());
    for p in payloads {
        assert_eq!(
            p["critical"]["image"]["docker-manifest-digest"], digest,
            "cosign verified a payload for another digest: {p}"
        );
    }
}

/// Asserts cosign's `verify-attestation` output holds CycloneDX statements about `digest`.
fn assert_cosign_attestations(out: &Output, digest: &str) {
    let text = stdout_of(out);
    let mut seen = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let envelope: Value = serde_json::from_str(line).expect("cosign attestation line");
        let statement: Value = serde_json::from_slice(
            &B64.decode(envelope["payload"].as_str().expect("payload"))
                .expect("base64 payload"),
        )
        .expect("statement JSON");
        assert_eq!(statement["predicateType"], CYCLONEDX, "{statement}");
        assert_eq!(statement["subject"][0]["digest"]["sha256"], hex(digest));
        assert_eq!(statement["predicate"]["bomFormat"], "CycloneDX");
        seen += 1;
    }
    assert!(seen >= 1, "cosign printed no attestation:\n{text}");
}

fn cosign_verify_key(key: &Key, image: &str) -> Output {
    run_ok(cosign().args([
        "verify",
        "--key",
        key.public(),
        "--insecure-ignore-tlog=true",
        "--allow-insecure-registry",
        image,
    ]))
}

fn cosign_verify_attestation_key(key: &Key, image: &str) -> Output {
    run_ok(cosign().args([
        "verify-attestation",
        "--type",
        "cyclonedx",
        "--key",
        key.public(),
        "--insecure-ignore-tlog=true",
        "--allow-insecure-registry",
        image,
    ]))
}

// ---------------------------------------------------------------------------------------
// 1. Key-signed, two registries
// ---------------------------------------------------------------------------------------

#[test]
fn key_release_to_two_registries_verifies_in_cosign_on_both() {
    let a = Registry::start();
    let b = Registry::start();
    let tmp = tempdir();
    let key = wharf_key(tmp.path(), "release", PASSWORD);
    let layout = example_layout(&tmp.path().join("layout"));
    let (layout_root, layout_platforms) = layout_image(&layout);
    let config = Config::key(&format!("{}:v1", layout.display()), &a.repo("app"), &key)
        .mirror(&b.repo("app"))
        .insecure(&[&a, &b])
        .write(&tmp.path().join("wharf.toml"));

    let report = Report::of(release_json(&config, &[]));

    // The JSON names what the registries hold: the layout's index and platforms, byte for
    // byte, on both.
    assert_eq!(report.digest, layout_root);
    assert_eq!(report.platforms, layout_platforms);
    assert_eq!(
        report.json["primary"]["reference"],
        format!("{}@{}", a.repo("app"), report.digest)
    );
    assert_eq!(
        report.json["mirrors"][0]["reference"],
        format!("{}@{}", b.repo("app"), report.digest)
    );
    assert_eq!(report.json["primary"]["verified"], true);
    assert_eq!(report.json["mirrors"][0]["verified"], true);
    let steps: Vec<&str> = report.steps.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        steps,
        [
            "push",
            "sign",
            "attest",
            "verify",
            "tag",
            &format!("mirror {}", b.repo("app")),
        ]
    );
    report.assert_every_step_done();
    for reg in [&a, &b] {
        let index = manifest_value(reg, "app", &report.digest).expect("index");
        let children: Vec<(String, String)> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    platform_of(&m["platform"]),
                    m["digest"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(children, report.platforms, "{} index children", reg.addr());
        assert_release_state(reg, "app", &report, &["v1", "latest"]);
        // The mirror holds the primary's signature and attestation manifests, byte for byte.
        for digest in report.all_digests() {
            assert_eq!(
                reg.get_manifest("app", &sig_tag(&digest)),
                a.get_manifest("app", &sig_tag(&digest))
            );
        }
    }

    // cosign verifies every manifest's signature and every platform's SBOM attestation, on
    // the primary and on the mirror.
    for reg in [&a, &b] {
        for digest in report.all_digests() {
            let image = format!("{}@{digest}", reg.repo("app"));
            assert_cosign_payloads(&cosign_verify_key(&key, &image), &digest);
        }
        for (_, digest) in &report.platforms {
            let image = format!("{}@{digest}", reg.repo("app"));
            assert_cosign_attestations(&cosign_verify_attestation_key(&key, &image), digest);
        }
        // And by tag, as users deploying `app:v1` would.
        let out = cosign_verify_key(&key, &format!("{}:v1", reg.repo("app")));
        assert_cosign_payloads(&out, &report.digest);
    }
}

// ---------------------------------------------------------------------------------------
// 2. Keyless, with the Sigstore stand-in
// ---------------------------------------------------------------------------------------

#[test]
fn keyless_release_verifies_in_cosign_on_primary_and_mirror() {
    let si = SigstoreStandIn::start();
    let a = Registry::start();
    let b = Registry::start();
    let tmp = tempdir();
    let layout = example_layout(&tmp.path().join("layout"));
    let path = Config::keyless(
        &format!("{}:v1", layout.display()),
        &a.repo("app"),
        &si,
        &si.trusted_root,
    )
    .mirror(&b.repo("app"))
    .insecure(&[&a, &b])
    .write(&tmp.path().join("wharf.toml"));

    let report = Report::of(release_json(&path, &[]));
    report.assert_every_step_done();
    assert_eq!(report.platforms.len(), 2);

    let cosign_keyless = |args: &[&str]| {
        let mut cmd = cosign();
        si.cosign_env(&mut cmd);
        cmd.args(args).args([
            "--allow-insecure-registry",
            "--rekor-url",
            &si.rekor_url,
            "--certificate-identity",
            &si.identity,
            "--certificate-oidc-issuer",
            &si.oidc_issuer,
        ]);
        cmd
    };
    for reg in [&a, &b] {
        assert_eq!(release_tags(reg, "app"), ["v1"]);
        for digest in report.all_digests() {
            let sigs = layers(reg, "app", &sig_tag(&digest));
            assert_eq!(sigs.len(), 1, "{}: {digest}: {sigs:#?}", reg.addr());
            assert!(sigs[0]["annotations"][CERTIFICATE_ANNOTATION].is_string());
            let image = format!("{}@{digest}", reg.repo("app"));
            let out = run_ok(cosign_keyless(&["verify"]).arg(&image));
            assert_cosign_payloads(&out, &digest);
        }
        for (_, digest) in &report.platforms {
            assert_eq!(attestation_types(reg, "app", digest), [CYCLONEDX]);
            let image = format!("{}@{digest}", reg.repo("app"));
            let out =
                run_ok(cosign_keyless(&["verify-attestation", "--type", "cyclonedx"]).arg(&image));
            assert_cosign_attestations(&out, digest);
        }
    }

    // Another identity's policy does not pass (the release really is bound to its identity).
    let mut other = cosign();
    si.cosign_env(&mut other);
    run_fail(other.args([
        "verify",
        "--allow-insecure-registry",
        "--rekor-url",
        &si.rekor_url,
        "--certificate-identity",
        "https://github.com/evil/repo/.github/workflows/release.yml@refs/heads/main",
        "--certificate-oidc-issuer",
        &si.oidc_issuer,
        &format!("{}@{}", b.repo("app"), report.digest),
    ]));
}

// ---------------------------------------------------------------------------------------
// 3. Rerun
// ---------------------------------------------------------------------------------------

#[test]
fn rerun_is_idempotent() {
    let a = Registry::start();
    let b = Registry::start();
    let tmp = tempdir();
    let key = wharf_key(tmp.path(), "release", PASSWORD);
    let layout = example_layout(&tmp.path().join("layout"));
    let config = Config::key(&format!("{}:v1", layout.display()), &a.repo("app"), &key)
        .mirror(&b.repo("app"))
        .insecure(&[&a, &b])
        .write(&tmp.path().join("wharf.toml"));

    let first = Report::of(release_json(&config, &[]));
    let tags_a = a.tags("app");
    let tags_b = b.tags("app");
    let sigs_before: Vec<_> = first
        .all_digests()
        .iter()
        .map(|d| a.get_manifest("app", &sig_tag(d)))
        .collect();
    let mark_a = a.request_count();
    let mark_b = b.request_count();

    let second = Report::of(release_json(&config, &[]));
    assert_eq!(second.digest, first.digest);
    assert_eq!(second.platforms, first.platforms);

    // Nothing was written to either registry.
    for (reg, mark) in [(&a, mark_a), (&b, mark_b)] {
        let writes: Vec<AccessLogEntry> = reg
            .requests_since(mark)
            .into_iter()
            .filter(|e| !matches!(e.method.as_str(), "GET" | "HEAD"))
            .collect();
        assert!(
            writes.is_empty(),
            "{}: the rerun wrote {writes:#?}",
            reg.addr()
        );
    }
    assert_eq!(a.tags("app"), tags_a, "the rerun added tags on the primary");
    assert_eq!(b.tags("app"), tags_b, "the rerun added tags on the mirror");
    let sigs_after: Vec<_> = first
        .all_digests()
        .iter()
        .map(|d| a.get_manifest("app", &sig_tag(d)))
        .collect();
    assert!(
        sigs_before == sigs_after,
        "the rerun changed a .sig manifest"
    );
    assert_release_state(&a, "app", &second, &["v1", "latest"]);
    assert_release_state(&b, "app", &second, &["v1", "latest"]);

    // Every step of the rerun reports that it had nothing to do; verification is never
    // skipped (it is how the rerun knows the rest is there), so it reports "verified".
    let not_skipped: Vec<&(String, String)> = second
        .steps
        .iter()
        .filter(|(step, status)| {
            status != "already done" && !(step == "verify" && status == "verified")
        })
        .collect();
    assert!(
        not_skipped.is_empty(),
        "rerun steps not \"already done\": {not_skipped:?} (all: {:?})",
        second.steps
    );
}

/// The release decrypts its key once, so it asks for the password once: here the password
/// comes on a pipe (no terminal, nothing in the environment) through the password file
/// `/dev/stdin`, which holds it for one read only. A second ask would read nothing and fail
/// as a wrong password; the release succeeding counts exactly one.
#[test]
fn release_asks_for_the_key_password_once() {
    let reg = Registry::start();
    let tmp = tempdir();
    let key = wharf_key(tmp.path(), "release", PASSWORD);
    let layout = example_layout(&tmp.path().join("layout"));
    let config = Config::key(&format!("{}:v1", layout.display()), &reg.repo("app"), &key)
        .insecure(&[&reg])
        .write(&tmp.path().join("wharf.toml"));
    let mut cmd = wharf_clean();
    cmd.args(["release", "--config"]).arg(&config).args([
        "--set",
        "signing.password_file=/dev/stdin",
        "--output",
        "json",
    ]);
    let out = run_with_stdin(&mut cmd, &format!("{PASSWORD}\n"));
    assert!(
        out.status.success(),
        "the release asked for the password more than once:\n{}",
        stderr_of(&out)
    );
    let report = Report::of(parse_json(&out));
    assert_release_state(&reg, "app", &report, &["v1", "latest"]);
}

// ---------------------------------------------------------------------------------------
// 4. Tags come last
// ---------------------------------------------------------------------------------------

#[test]
fn tag_never_precedes_signatures_and_attestations() {
    let a = Registry::start();
    let b = Registry::start();
    let tmp = tempdir();
    let key = wharf_key(tmp.path(), "release", PASSWORD);
    let layout = example_layout(&tmp.path().join("layout"));
    let (root, platforms) = layout_image(&layout);
    let config = Config::key(&format!("{}:v1", layout.display()), &a.repo("app"), &key)
        .mirror(&b.repo("app"))
        .insecure(&[&a, &b])
        .write(&tmp.path().join("wharf.toml"));
    let all: Vec<String> = std::iter::once(root.clone())
        .chain(platforms.iter().map(|(_, d)| d.clone()))
        .collect();

    let done = AtomicBool::new(false);
    // What each watcher saw: (polls without the tag, polls with it, violations).
    let watch = |reg: &Registry| -> (usize, usize, Vec<String>) {
        let (mut absent, mut present, mut violations) = (0, 0, Vec::new());
        loop {
            // Read the flag first: a poll after the process ended still counts.
            let finished = done.load(Ordering::SeqCst);
            match reg.manifest_digest("app", "v1") {
                None => absent += 1,
                Some(digest) => {
                    present += 1;
                    if digest != root {
                        violations.push(format!("v1 points at {digest}"));
                    }
                    if reg.get_manifest("app", &root).is_none() {
                        violations.push("v1 exists, the index does not".into());
                    }
                    for d in &all {
                        if layers(reg, "app", &sig_tag(d)).is_empty() {
                            violations.push(format!("v1 exists, {d} has no signature"));
                        }
                    }
                    for (p, d) in &platforms {
                        if !attestation_types(reg, "app", d)
                            .iter()
                            .any(|t| t == CYCLONEDX)
                        {
                            violations.push(format!("v1 exists, {p} has no SBOM attestation"));
                        }
                    }
                }
            }
            if finished {
                return (absent, present, violations);
            }
            thread::sleep(Duration::from_millis(20));
        }
    };
    let (seen_a, seen_b, status) = thread::scope(|s| {
        let wa = s.spawn(|| watch(&a));
        let wb = s.spawn(|| watch(&b));
        // Let both watchers see the empty registries first.
        thread::sleep(Duration::from_millis(100));
        let status = release_cmd(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run wharf release");
        done.store(true, Ordering::SeqCst);
        (wa.join().unwrap(), wb.join().unwrap(), status)
    });
    assert!(status.success(), "wharf release failed: {status}");
    for (name, (absent, present, violations)) in [("primary", seen_a), ("mirror", seen_b)] {
        eprintln!("{name}: {absent} polls before the tag, {present} with it");
        assert!(violations.is_empty(), "{name}: {violations:#?}");
        assert!(
            absent > 0 && present > 0,
            "{name}: the watcher saw no transition"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 5. Killed at any point, finished by a rerun
// ---------------------------------------------------------------------------------------

/// When to SIGKILL the release.
#[derive(Debug, Clone)]
enum KillAt {
    /// After this long.
    Delay(Duration),
    /// As soon as the access log of the primary (`false`) or the mirror (`true`) registry
    /// shows a successful request with this method whose URI contains this text.
    Request {
        mirror: bool,
        method: &'static str,
        contains: String,
    },
}

#[test]
fn release_killed_at_any_step_finishes_on_rerun() {
    let a = Registry::start();
    let b = Registry::start();
    let tmp = tempdir();
    let key = wharf_key(tmp.path(), "release", PASSWORD);
    // Larger than the example, so that pushing and mirroring take a while; random layers are
    // not tars, so the SBOMs come from files.
    let platforms = vec!["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/s390x"];
    let built = make_layout(
        &tmp.path().join("layout"),
        &LayoutSpec {
            platforms: platforms.clone(),
            layers_per_platform: 2,
            layer_size: 3 << 20,
            shared_layer: true,
            seed: 77,
            ..Default::default()
        },
    );
    let mut sbom_files = Vec::new();
    for p in &platforms {
        let path = tmp
            .path()
            .join(format!("sbom-{}.cdx.json", p.replace('/', "-")));
        let sbom = serde_json::json!({
            "bomFormat": "CycloneDX",
            "specVersion": "1.5",
            "version": 1,
            "metadata": {"component": {"type": "container", "name": format!("app {p}")}},
            "components": [],
        });
        fs::write(&path, serde_json::to_vec_pretty(&sbom).unwrap()).unwrap();
        sbom_files.push(format!("{} = {}", q(p), q(path.to_str().unwrap())));
    }
    let config_for = |name: &str| -> PathBuf {
        let mut c = Config::key(
            &format!("{}:v1", built.dir.display()),
            &a.repo(&format!("{name}/app")),
            &key,
        )
        .mirror(&b.repo(&format!("{name}/app")))
        .insecure(&[&a, &b]);
        c.attestations = vec![
            "sbom = \"files\"".into(),
            format!("sbom_files = {{ {} }}", sbom_files.join(", ")),
        ];
        c.write(&tmp.path().join(format!("{}.toml", name.replace('/', "-"))))
    };

    // The uninterrupted release everything else must end up equal to.
    let reference = Report::of(release_json(&config_for("ref"), &[]));
    assert_eq!(reference.platforms.len(), platforms.len());
    let state = |name: &str| -> BTreeMap<String, Vec<String>> {
        // Tag → what it holds: release tags their digest, .sig/.att tags their layer count
        // (signatures differ run to run: ECDSA is randomised) and predicate types.
        let repo = format!("{name}/app");
        let mut out = BTreeMap::new();
        for reg in [&a, &b] {
            for tag in reg.tags(&repo) {
                let what = if tag.ends_with(".sig") {
                    vec![format!("{} signature(s)", layers(reg, &repo, &tag).len())]
                } else if tag.ends_with(".att") {
                    layers(reg, &repo, &tag)
                        .iter()
                        .map(|l| l["annotations"]["predicateType"].to_string())
                        .collect()
                } else {
                    vec![reg.manifest_digest(&repo, &tag).unwrap()]
                };
                out.insert(
                    format!("{}:{tag}", if std::ptr::eq(reg, &a) { "A" } else { "B" }),
                    what,
                );
            }
        }
        out
    };
    let want = state("ref");
    assert_release_state(&a, "ref/app", &reference, &["v1", "latest"]);
    assert_release_state(&b, "ref/app", &reference, &["v1", "latest"]);

    let scenarios: Vec<KillAt> = vec![
        KillAt::Delay(Duration::from_millis(50)),
        KillAt::Delay(Duration::from_millis(200)),
        KillAt::Delay(Duration::from_millis(500)),
        KillAt::Delay(Duration::from_millis(1000)),
        // Mid-push: the first manifest (blobs are all there by then).
        KillAt::Request {
            mirror: false,
            method: "PUT",
            contains: "/manifests/sha256:".into(),
        },
        KillAt::Request {
            mirror: false,
            method: "PUT",
            contains: ".sig".into(),
        },
        KillAt::Request {
            mirror: false,
            method: "PUT",
            contains: ".att".into(),
        },
        KillAt::Request {
            mirror: false,
            method: "PUT",
            contains: "/manifests/v1".into(),
        },
        KillAt::Request {
            mirror: true,
            method: "PUT",
            contains: "/blobs/uploads/".into(),
        },
        KillAt::Request {
            mirror: true,
            method: "PUT",
            contains: ".sig".into(),
        },
    ];
    let mut summary = Vec::new();
    for (i, kill_at) in scenarios.iter().enumerate() {
        let name = format!("s{i}");
        let config = config_for(&name);
        let prefix = format!("/v2/{name}/app/");
        let mut child = release_cmd(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn wharf release");
        let start = Instant::now();
        let killed = loop {
            if child.try_wait().unwrap().is_some() {
                break false;
            }
            let fire = match kill_at {
                KillAt::Delay(d) => start.elapsed() >= *d,
                KillAt::Request {
                    mirror,
                    method,
                    contains,
                } => {
                    let reg = if *mirror { &b } else { &a };
                    reg.log()
                        .lines()
                        .filter_map(parse_access_log_line)
                        .any(|e| {
                            e.method == *method
                                && e.uri.starts_with(&prefix)
                                && e.uri.contains(contains.as_str())
                                && e.status < 300
                        })
                }
            };
            if fire {
                child.kill().expect("SIGKILL wharf release");
                break true;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "{kill_at:?}: release hangs"
            );
            thread::sleep(Duration::from_millis(2));
        };
        let status = child.wait().unwrap();
        let elapsed = start.elapsed();
        let partial_tags = (
            release_tags(&a, &format!("{name}/app")),
            release_tags(&b, &format!("{name}/app")),
        );
        summary.push(format!(
            "{kill_at:?}: {} after {elapsed:?} ({status}); tags then: {partial_tags:?}",
            if killed {
                "killed"
            } else {
                "finished before the kill"
            }
        ));

        // The rerun finishes the job, with nothing duplicated.
        let rerun = Report::of(release_json(&config, &[]));
        assert_eq!(rerun.digest, reference.digest, "{kill_at:?}");
        assert_eq!(rerun.platforms, reference.platforms, "{kill_at:?}");
        for reg in [&a, &b] {
            assert_release_state(reg, &format!("{name}/app"), &rerun, &["v1", "latest"]);
        }
        let got = state(&name);
        assert_eq!(
            got, want,
            "{kill_at:?}: end state differs from an uninterrupted release"
        );
        // The mirror holds the primary's attachments byte for byte.
        for digest in rerun.all_digests() {
            assert_eq!(
                b.get_manifest(&format!("{name}/app"), &sig_tag(&digest)),
                a.get_manifest(&format!("{name}/app"), &sig_tag(&digest)),
                "{kill_at:?}: mirror's signature of {digest}"
            );
        }
    }
    eprintln!("{}", summary.join("\n"));
    let killed = summary.iter().filter(|s| s.contains(": killed")).count();
    assert!(
        killed >= 6,
        "too few runs were actually interrupted:\n{}",
        summary.join("\n")
    );
}

/// A release in both storage formats (`bundle_format = "both"`) that was interrupted between
/// the two formats is completed by the rerun: every manifest ends up with its `.sig`
/// signature *and* its Sigstore bundle, every platform with its `.att` attestation *and* its
/// attestation bundle. The interrupted states are made deterministically with `wharf sign`
/// and `wharf attest` in one format only: exactly what SIGKILL leaves between the two writes
/// (`sign` writes the `.sig` first, `attest` the bundle first).
#[test]
fn both_formats_release_interrupted_between_formats_is_completed_on_rerun() {
    let a = Registry::start();
    let tmp = tempdir();
    let key = wharf_key(tmp.path(), "release", PASSWORD);
    let layout = example_layout(&tmp.path().join("layout"));
    let config_for = |repo: &str| -> PathBuf {
        let mut c =
            Config::key(&format!("{}:v1", layout.display()), &a.repo(repo), &key).insecure(&[&a]);
        c.signing.push("bundle_format = \"both\"".into());
        c.write(&tmp.path().join(format!("{repo}.toml")))
    };
    let push = |repo: &str| -> String {
        let out = run_ok(
            wharf_clean()
                .args(["push", "--allow-insecure-registry", "--output", "json"])
                .arg(format!("{}:v1", layout.display()))
                .arg(a.repo(repo)),
        );
        parse_json(&out)["digest"].as_str().unwrap().to_string()
    };
    let sign = |image: &str, format: &str| {
        run_ok(
            wharf_clean()
                .args(["sign", "--allow-insecure-registry", "--recursive"])
                .args(["--key", key.private(), "--tlog-upload=false"])
                .args(["--bundle-format", format, image])
                .env("WHARF_PASSWORD", PASSWORD),
        );
    };
    let (_, platforms) = layout_image(&layout);

    // What an uninterrupted "both" release holds: the control for the checks below.
    let reference = Report::of(release_json(&config_for("ref"), &[]));
    let complete = |repo: &str| -> Vec<String> {
        let mut missing = Vec::new();
        for d in reference.all_digests() {
            if layers(&a, repo, &sig_tag(&d)).len() != 1 {
                missing.push(format!("{d}: .sig signature"));
            }
            if bundles(&a, repo, &d, "https://sigstore.dev/cosign/sign/v1") != 1 {
                missing.push(format!("{d}: signature bundle"));
            }
        }
        for (p, d) in &platforms {
            if attestation_types(&a, repo, d) != [CYCLONEDX] {
                missing.push(format!("{p}: .att attestation"));
            }
            if bundles(&a, repo, d, CYCLONEDX) != 1 {
                missing.push(format!("{p}: attestation bundle"));
            }
        }
        missing
    };
    assert_eq!(
        complete("ref"),
        Vec::<String>::new(),
        "the uninterrupted release"
    );

    // Killed in `sign`, after the .sig signatures, before the bundles.
    let digest = push("after-sig");
    sign(&format!("{}@{digest}", a.repo("after-sig")), "legacy");
    let rerun = Report::of(release_json(&config_for("after-sig"), &[]));
    let missing_sig = complete("after-sig");

    // Killed in `attest`, after the attestation bundles, before the .att attestations.
    let digest = push("after-bundle");
    sign(&format!("{}@{digest}", a.repo("after-bundle")), "both");
    for (platform, _) in &platforms {
        let sbom = tmp.path().join("sbom.json");
        fs::write(
            &sbom,
            r#"{"bomFormat":"CycloneDX","specVersion":"1.5","version":1,"components":[]}"#,
        )
        .unwrap();
        run_ok(
            wharf_clean()
                .args(["attest", "--allow-insecure-registry", "--type", "cyclonedx"])
                .arg("--predicate")
                .arg(&sbom)
                .args(["--platform", platform])
                .args(["--key", key.private(), "--tlog-upload=false"])
                .args(["--bundle-format", "bundle"])
                .arg(format!("{}@{digest}", a.repo("after-bundle")))
                .env("WHARF_PASSWORD", PASSWORD),
        );
    }
    let rerun2 = Report::of(release_json(&config_for("after-bundle"), &[]));
    let missing_att = complete("after-bundle");

    assert!(
        missing_sig.is_empty() && missing_att.is_empty(),
        "a rerun of a bundle_format = \"both\" release does not complete it:\n\
         interrupted after the .sig signatures (rerun steps {:?}), still missing: {missing_sig:#?}\n\
         interrupted after the attestation bundles (rerun steps {:?}), still missing: {missing_att:#?}",
        rerun.steps,
        rerun2.steps
    );
}

/// A release in both storage formats with the transparency log on logs each attestation's
/// DSSE envelope twice: once for the `.att` layer, once for the bundle. P-256 signing is
/// deterministic (RFC 6979), so the second is the same entry and Rekor answers 409 Conflict;
/// wharf takes the existing entry, as cosign does. `keyless`: a Fulcio certificate (one per
/// run) instead of a key.
fn both_formats_release_with_tlog(keyless: bool) {
    let si = SigstoreStandIn::start();
    let a = Registry::start();
    let tmp = tempdir();
    let layout = example_layout(&tmp.path().join("layout"));
    let key = wharf_key(tmp.path(), "release", PASSWORD);
    let layout_ref = format!("{}:v1", layout.display());
    let mut config = Config::keyless(&layout_ref, &a.repo("app"), &si, &si.trusted_root);
    if !keyless {
        config.signing = vec![
            format!("key = {}", q(key.private())),
            format!("rekor_url = {}", q(&si.rekor_url)),
            format!("trusted_root = {}", q(si.trusted_root.to_str().unwrap())),
        ];
        config.verify.clear();
    }
    config.signing.push("bundle_format = \"both\"".into());
    let config = config.insecure(&[&a]).write(&tmp.path().join("wharf.toml"));

    let report = Report::of(release_json(&config, &[]));
    report.assert_every_step_done();
    assert_eq!(release_tags(&a, "app"), ["v1"]);
    for digest in report.all_digests() {
        assert_eq!(layers(&a, "app", &sig_tag(&digest)).len(), 1, "{digest}");
        assert_eq!(
            bundles(&a, "app", &digest, "https://sigstore.dev/cosign/sign/v1"),
            1,
            "{digest}"
        );
    }
    for (platform, digest) in &report.platforms {
        let att = layers(&a, "app", &att_tag(digest));
        assert_eq!(att.len(), 1, "{platform}: {att:#?}");
        assert_eq!(bundles(&a, "app", digest, CYCLONEDX), 1, "{platform}");
        // The `.att` layer and the bundle carry the one log entry of that envelope.
        let legacy: Value = serde_json::from_str(
            att[0]["annotations"]["dev.sigstore.cosign/bundle"]
                .as_str()
                .expect("the .att layer carries its log entry"),
        )
        .unwrap();
        let index = manifest_value(&a, "app", &format!("sha256-{}", hex(digest))).unwrap();
        let referrer = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["dev.sigstore.bundle.predicateType"] == CYCLONEDX)
            .unwrap();
        let manifest =
            manifest_value(&a, "app", referrer["digest"].as_str().unwrap()).expect("referrer");
        let bundle: Value = serde_json::from_slice(
            &a.get_blob("app", manifest["layers"][0]["digest"].as_str().unwrap())
                .expect("bundle blob"),
        )
        .unwrap();
        let entry = &bundle["verificationMaterial"]["tlogEntries"][0];
        assert_eq!(
            entry["logIndex"].as_str(),
            Some(legacy["Payload"]["logIndex"].to_string().as_str()),
            "{platform}: the bundle and the .att layer name different log entries"
        );
        assert_eq!(
            entry["canonicalizedBody"], legacy["Payload"]["body"],
            "{platform}"
        );
    }

    // Verified from outside too, with the log: every signature and attestation.
    let policy: Vec<String> = if keyless {
        vec![
            "--certificate-identity".into(),
            si.identity.clone(),
            "--certificate-oidc-issuer".into(),
            si.oidc_issuer.clone(),
        ]
    } else {
        vec!["--key".into(), key.public().to_string()]
    };
    let image = format!("{}@{}", a.repo("app"), report.digest);
    for verb in [
        vec!["verify"],
        vec!["verify-attestation", "--type", "cyclonedx"],
    ] {
        run_ok(
            wharf_clean()
                .args(&verb)
                .args(["--recursive", "--allow-insecure-registry"])
                .args(si.wharf_verify_args())
                .args(&policy)
                .arg(&image),
        );
    }
}

#[test]
fn key_release_in_both_formats_with_tlog_logs_each_envelope_once_and_verifies() {
    both_formats_release_with_tlog(false);
}

#[test]
fn keyless_release_in_both_formats_with_tlog_logs_each_envelope_once_and_verifies() {
    both_formats_release_with_tlog(true);
}

/// A keyless release against a private Sigstore whose trusted root lists no CT log: refused
/// before anything is signed or written, unless `[verify] insecure_ignore_sct = true` says
/// the releaser knows; then it signs, verifies, and prints verify commands that pass.
#[test]
fn keyless_release_without_ct_logs_needs_insecure_ignore_sct() {
    let si = SigstoreStandIn::start();
    let a = Registry::start();
    let tmp = tempdir();
    let layout = example_layout(&tmp.path().join("layout"));
    let no_ct = si.trusted_root_without_ct_logs();
    let config = Config::keyless(
        &format!("{}:v1", layout.display()),
        &a.repo("app"),
        &si,
        &no_ct,
    )
    .insecure(&[&a]);

    let refused = config.write(&tmp.path().join("refused.toml"));
    let line = error_line(&run_fail(&mut release_cmd(&refused)));
    assert!(line.contains("no CT log"), "{line}");
    assert!(line.contains("insecure_ignore_sct"), "{line}");
    assert_eq!(catalog(&a), Vec::<String>::new(), "something was pushed");

    let mut knowingly = config.clone();
    knowingly.verify.push("insecure_ignore_sct = true".into());
    let path = knowingly.write(&tmp.path().join("wharf.toml"));
    let out = run_ok(&mut release_cmd(&path));
    let stdout = stdout_of(&out);
    let commands: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("verify with:"))
        .map(str::trim)
        .filter(|l| l.starts_with("wharf "))
        .collect();
    assert_eq!(commands.len(), 2, "{stdout}");
    for command in commands {
        assert!(command.contains(" --insecure-ignore-sct "), "{command}");
        let argv = format!(
            "{command} --allow-insecure-registry --trusted-root {}",
            no_ct.display()
        );
        run_ok(wharf_clean().args(argv.split_whitespace().skip(1)));
    }
}

/// Sigstore bundles referring to `digest` with this predicate type, through the referrers
/// fallback tag index (`sha256-<hex>`; distribution 2.8 has no referrers API).
fn bundles(reg: &Registry, repo: &str, digest: &str, predicate_type: &str) -> usize {
    let Some(index) = manifest_value(reg, repo, &format!("sha256-{}", hex(digest))) else {
        return 0;
    };
    index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| {
            m["artifactType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
                && m["annotations"]["dev.sigstore.bundle.predicateType"] == predicate_type
        })
        .count()
}

// ---------------------------------------------------------------------------------------
// 6. The config: dry run, unknown keys, overrides, refused combinations
// ---------------------------------------------------------------------------------------

#[test]
fn dry_run_prints_the_plan_and_touches_nothing() {
    let a = Registry::start();
    let b = Registry::start();
    let tmp = tempdir();
    let key = wharf_key(tmp.path(), "release", PASSWORD);
    let layout = example_layout(&tmp.path().join("layout"));
    let config = Config::key(&format!("{}:v1", layout.display()), &a.repo("app"), &key)
        .mirror(&b.repo("app"))
        .insecure(&[&a, &b])
        .write(&tmp.path().join("wharf.toml"));

    let out = run_ok(release_cmd(&config).arg("--dry-run"));
    let plan = stdout_of(&out);
    for needle in [
        "push",
        &a.repo("app"),
        "sign",
        "SBOM",
        "verify",
        "tag v1, latest",
        &format!("mirror to {}", b.repo("app")),
    ] {
        assert!(plan.contains(needle), "plan lacks {needle:?}:\n{plan}");
    }
    // Steps in the safe order: tag after sign and attest, mirror last.
    let pos = |s: &str| {
        plan.find(s)
            .unwrap_or_else(|| panic!("{s:?} not in plan:\n{plan}"))
    };
    assert!(pos("push ") < pos("sign ") && pos("sign ") < pos("SBOM"));
    assert!(pos("SBOM") < pos("tag v1") && pos("tag v1") < pos("mirror to"));

    let json = parse_json(&run_ok(release_cmd(&config).args([
        "--dry-run",
        "--output",
        "json",
    ])));
    assert!(
        json["plan"].as_array().is_some_and(|p| p.len() >= 5),
        "{json}"
    );
    assert_eq!(json["config"]["repository"], a.repo("app"));

    for reg in [&a, &b] {
        assert_eq!(
            reg.request_count(),
            0,
            "{}: the dry run sent requests",
            reg.addr()
        );
        assert!(
            catalog(reg).is_empty(),
            "{}: {:?}",
            reg.addr(),
            catalog(reg)
        );
    }
}

#[test]
fn unknown_config_key_is_an_error_naming_its_line() {
    let tmp = tempdir();
    let key = wharf_key(tmp.path(), "release", PASSWORD);
    let mut c = Config::key("layout:v1", "127.0.0.1:1/app", &key);
    c.attestations.push("sboms = \"generate\"".into());
    let text = c.text();
    let line = text.lines().position(|l| l.starts_with("sboms")).unwrap() + 1;
    let config = tmp.path().join("wharf.toml");
    fs::write(&config, &text).unwrap();
    for extra in [&[][..], &["--dry-run"][..]] {
        let out = run_fail(release_cmd(&config).args(extra));
        let err = error_line(&out);
        assert!(err.contains("sboms"), "{err}");
        assert!(
            err.contains(&format!("line {line}")),
            "not line {line}: {err}\n{text}"
        );
        assert!(err.contains("wharf.toml"), "{err}");
    }

    // An unknown key brought in by an override is named too.
    let good = Config::key("layout:v1", "127.0.0.1:1/app", &key).write(&tmp.path().join("ok.toml"));
    let out = run_fail(release_cmd(&good).args(["--dry-run", "--set", "signing.keyy=x"]));
    let err = error_line(&out);
    assert!(err.contains("keyy"), "{err}");
    let out = run_fail(
        release_cmd(&good)
            .arg("--dry-run")
            .env("WHARF_CFG_VERIFY__NO_SUCH_KEY", "1"),
    );
    assert!(
        error_line(&out).contains("no_such_key"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn set_and_environment_overrides_take_effect() {
    let a = Registry::start();
    let tmp = tempdir();
    let key = wharf_key(tmp.path(), "release", PASSWORD);
    let layout = example_layout(&tmp.path().join("layout"));
    let config = Config::key(&format!("{}:v1", layout.display()), &a.repo("app"), &key)
        .insecure(&[&a])
        .write(&tmp.path().join("wharf.toml"));

    // In the plan: --set over WHARF_CFG_ over the file.
    let json = parse_json(&run_ok(
        release_cmd(&config)
            .args(["--dry-run", "--output", "json"])
            .args(["--set", "tags=[\"from-set\"]"])
            .env("WHARF_CFG_TAGS", "[\"from-env\"]")
            .env("WHARF_CFG_REPOSITORY", a.repo("env-app"))
            .env("WHARF_CFG_ATTESTATIONS__SBOM", "none"),
    ));
    assert_eq!(json["config"]["tags"], serde_json::json!(["from-set"]));
    assert_eq!(json["config"]["repository"], a.repo("env-app"));
    assert_eq!(json["config"]["attestations"]["sbom"], "none");
    let json = parse_json(&run_ok(
        release_cmd(&config)
            .args(["--dry-run", "--output", "json"])
            .env("WHARF_CFG_TAGS", "[\"from-env\"]"),
    ));
    assert_eq!(json["config"]["tags"], serde_json::json!(["from-env"]));

    // And for real: the overridden repository and tags are what the registry gets.
    let run = release_cmd(&config)
        .args(["--set", "tags=[\"rc1\", \"edge\"]"])
        .env("WHARF_CFG_REPOSITORY", a.repo("env-app"))
        .env("WHARF_CFG_ATTESTATIONS__SBOM", "none")
        .args(["--output", "json"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr_of(&run));
    let report = Report::of(parse_json(&run));
    assert_eq!(release_tags(&a, "env-app"), ["edge", "rc1"]);
    assert!(catalog(&a) == ["env-app"], "{:?}", catalog(&a));
    for (_, digest) in &report.platforms {
        assert!(
            attestation_types(&a, "env-app", digest).is_empty(),
            "sbom = none still attested"
        );
    }
    assert!(
        !report.steps.iter().any(|(s, _)| s == "attest"),
        "{:?}",
        report.steps
    );
}

#[test]
fn inconsistent_configs_are_refused_with_a_clear_error() {
    let a = Registry::start();
    let tmp = tempdir();
    let key = wharf_key(tmp.path(), "release", PASSWORD);
    let base = Config::key("layout:v1", &a.repo("app"), &key).insecure(&[&a]);

    let keyless = Config {
        signing: vec![],
        verify: vec![],
        ..base.clone()
    };
    let mut no_ignore = base.clone();
    no_ignore.verify.clear();
    let mut keyless_unlogged = keyless.clone();
    keyless_unlogged.signing = vec!["tlog_upload = false".into()];
    keyless_unlogged.verify = vec![
        "certificate_identity = \"a@b\"".into(),
        "certificate_oidc_issuer = \"https://issuer\"".into(),
        "insecure_ignore_tlog = true".into(),
    ];
    let mut files_without_files = base.clone();
    files_without_files.attestations = vec!["sbom = \"files\"".into()];
    let mut bad_regexp = keyless.clone();
    bad_regexp.verify = vec![
        "certificate_identity_regexp = \"(unclosed\"".into(),
        "certificate_oidc_issuer = \"https://issuer\"".into(),
    ];

    let cases: Vec<(&str, Config, &[&str])> = vec![
        (
            "keyless without an identity policy",
            keyless,
            &["identity policy", "[verify]"],
        ),
        (
            "tlog off without insecure_ignore_tlog",
            no_ignore,
            &["insecure_ignore_tlog"],
        ),
        (
            "keyless and not logged",
            keyless_unlogged,
            &["tlog_upload = false", "key"],
        ),
        (
            "sbom files without files",
            files_without_files,
            &["sbom_files"],
        ),
        (
            "a bad identity regexp",
            bad_regexp,
            &["certificate_identity_regexp"],
        ),
    ];
    for (what, config, words) in cases {
        let path = config.write(&tmp.path().join("wharf.toml"));
        for extra in [&[][..], &["--dry-run"][..]] {
            if what == "a bad identity regexp" && !extra.is_empty() {
                continue; // the regexp is compiled when the policy is built, not for a plan
            }
            let out = run_fail(release_cmd(&path).args(extra));
            let err = error_line(&out);
            for w in words {
                assert!(err.contains(w), "{what}: {err:?} lacks {w:?}");
            }
        }
    }
    assert_eq!(
        a.request_count(),
        0,
        "a refused config reached the registry"
    );
}

// ---------------------------------------------------------------------------------------
// 7. GitHub Actions
// ---------------------------------------------------------------------------------------

#[test]
fn github_actions_outputs_summary_and_error_annotation() {
    let a = Registry::start();
    let b = Registry::start();
    let tmp = tempdir();
    let key = wharf_key(tmp.path(), "release", PASSWORD);
    let layout = example_layout(&tmp.path().join("layout"));
    let config = Config::key(&format!("{}:v1", layout.display()), &a.repo("app"), &key)
        .mirror(&b.repo("app"))
        .insecure(&[&a, &b])
        .write(&tmp.path().join("wharf.toml"));
    let output = tmp.path().join("github_output");
    let summary = tmp.path().join("step_summary");

    let out = run_ok(
        release_cmd(&config)
            .args(["--output", "json"])
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_OUTPUT", &output)
            .env("GITHUB_STEP_SUMMARY", &summary),
    );
    let report = Report::of(parse_json(&out));
    let outputs: BTreeMap<String, String> = fs::read_to_string(&output)
        .expect("GITHUB_OUTPUT written")
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("not k=v: {l}"));
            (k.to_string(), v.to_string())
        })
        .collect();
    assert_eq!(outputs["digest"], report.digest);
    assert_eq!(
        outputs["reference"],
        format!("{}@{}", a.repo("app"), report.digest)
    );
    for (platform, digest) in &report.platforms {
        assert_eq!(
            &outputs[&format!("digest-{}", platform.replace('/', "-"))],
            digest
        );
    }
    assert_eq!(outputs["digest-linux-amd64"], report.platforms[0].1);
    assert_eq!(
        outputs["mirror-1-reference"],
        format!("{}@{}", b.repo("app"), report.digest)
    );

    let md = fs::read_to_string(&summary).expect("GITHUB_STEP_SUMMARY written");
    let reference = format!("{}@{}", a.repo("app"), report.digest);
    for needle in [
        format!("cosign verify --key {}", key.public()),
        format!("wharf verify --recursive --key {}", key.public()),
        "cosign verify-attestation --type cyclonedx".to_string(),
        reference.clone(),
        b.repo("app"),
        report.platforms[1].1.clone(),
    ] {
        assert!(md.contains(&needle), "summary lacks {needle:?}:\n{md}");
    }
    // The summary's wharf verify command works as printed (plus the registry flag).
    let line = md
        .lines()
        .find(|l| l.starts_with("wharf verify --recursive"))
        .unwrap();
    let args: Vec<&str> = line.split_whitespace().skip(1).collect();
    run_ok(wharf_clean().args(&args).arg("--allow-insecure-registry"));

    // A failure in Actions: an `::error::` annotation on stdout, the error on stderr.
    let dead = format!("127.0.0.1:{}", free_port());
    let failing = Config::key(
        &format!("{}:v1", layout.display()),
        &format!("{dead}/app"),
        &key,
    )
    .write(&tmp.path().join("dead.toml"));
    let out = run_fail(
        release_cmd(&failing)
            .args(["--retries", "0", "--insecure-registry", &dead])
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_OUTPUT", tmp.path().join("out2"))
            .env("GITHUB_STEP_SUMMARY", tmp.path().join("summary2")),
    );
    let stdout = stdout_of(&out);
    let annotation = stdout
        .lines()
        .find(|l| l.starts_with("::error::"))
        .unwrap_or_else(|| {
            panic!(
                "no ::error:: line on stdout:\n{stdout}\n{}",
                stderr_of(&out)
            )
        });
    assert!(
        annotation.contains(&dead) || annotation.contains("push"),
        "{annotation}"
    );
    assert!(!annotation[9..].contains('\n'));
    error_line(&out);
    // Outside Actions, no annotation.
    let out =
        run_fail(release_cmd(&failing).args(["--retries", "0", "--insecure-registry", &dead]));
    assert!(
        !stdout_of(&out).contains("::error::"),
        "{}",
        stdout_of(&out)
    );
}

// ---------------------------------------------------------------------------------------
// 8. Admission policies and the verification guide
// ---------------------------------------------------------------------------------------

#[test]
fn admission_policies_parse_and_name_the_release() {
    let tmp = tempdir();
    let key = wharf_key(tmp.path(), "release", PASSWORD);
    let primary = "127.0.0.1:5000/acme/app";
    let mirror = "127.0.0.1:5001/mirror/app";
    let config = Config::key("layout:v1", primary, &key)
        .mirror(mirror)
        .mirror("oci:air-gap")
        .write(&tmp.path().join("wharf.toml"));
    let public = fs::read_to_string(&key.public).unwrap();
    // Every document the policy has (policy-controller: a second one for provenance).
    let policies = |format: &str, config: &Path| -> Vec<Value> {
        let out = run_ok(
            wharf_clean()
                .args(["policy", "--format", format, "--config"])
                .arg(config)
                .env("WHARF_PASSWORD", PASSWORD),
        );
        yaml_documents(&stdout_of(&out))
    };
    let policy = |format: &str, config: &Path| -> Value {
        let mut docs = policies(format, config);
        assert_eq!(docs.len(), 1);
        docs.remove(0)
    };

    // Key-signed: the public key (from the private one) is in the policy.
    let cip = policy("sigstore-policy-controller", &config);
    assert_eq!(cip["apiVersion"], "policy.sigstore.dev/v1beta1");
    assert_eq!(cip["kind"], "ClusterImagePolicy");
    let globs = cluster_image_policy_globs(&cip);
    // The repositories' own tags and digests, never a sibling repository (`app**` would be).
    assert_eq!(
        globs,
        [
            format!("{primary}:*"),
            format!("{primary}@*"),
            format!("{mirror}:*"),
            format!("{mirror}@*")
        ]
    );
    let authority = &cip["spec"]["authorities"][0];
    assert_eq!(
        authority["key"]["data"].as_str().unwrap().trim(),
        public.trim(),
        "{cip:#}"
    );
    // SBOMs are attested per platform; a controller checks the digest a pod names (the
    // index), so requiring them would deny every image.
    assert!(authority["attestations"].is_null(), "{cip:#}");

    let ky = policy("kyverno", &config);
    assert_eq!(ky["apiVersion"], "kyverno.io/v1");
    assert_eq!(ky["kind"], "ClusterPolicy");
    let rule = &ky["spec"]["rules"][0];
    let verify = &rule["verifyImages"][0];
    let refs = kyverno_image_references(&ky);
    assert_eq!(
        refs,
        [
            format!("{primary}:*"),
            format!("{primary}@*"),
            format!("{mirror}:*"),
            format!("{mirror}@*")
        ]
    );
    assert_eq!(verify["mutateDigest"], true);
    let keys = &verify["attestors"][0]["entries"][0]["keys"];
    assert_eq!(keys["publicKeys"].as_str().unwrap().trim(), public.trim());
    assert_eq!(keys["rekor"]["ignoreTlog"], true);
    assert!(verify["attestations"].is_null(), "{ky:#}");

    // Keyless: the identity and issuer.
    let mut keyless = Config::key("layout:v1", primary, &key).mirror(mirror);
    keyless.signing.clear();
    keyless.attestations.push("provenance = true".into());
    keyless.verify = vec![
        "certificate_identity_regexp = \"https://github.com/acme/app/.github/workflows/release.yml@.*\"".into(),
        "certificate_oidc_issuer = \"https://token.actions.githubusercontent.com\"".into(),
    ];
    let keyless = keyless.write(&tmp.path().join("keyless.toml"));
    let cips = policies("sigstore-policy-controller", &keyless);
    assert_eq!(cips.len(), 2, "signatures, then provenance: {cips:#?}");
    let cip = &cips[0];
    let identity = &cip["spec"]["authorities"][0]["keyless"]["identities"][0];
    assert_eq!(
        identity["issuer"],
        "https://token.actions.githubusercontent.com"
    );
    // Anchored: policy-controller matches regexps anywhere, wharf in full.
    assert_eq!(
        identity["subjectRegExp"],
        "^(?:https://github.com/acme/app/.github/workflows/release.yml@.*)$"
    );
    assert!(cip["spec"]["authorities"][0]["attestations"].is_null());
    let provenance = &cips[1]["spec"]["authorities"][0];
    assert_eq!(provenance["keyless"]["identities"][0], *identity);
    let types: Vec<&str> = provenance["attestations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["predicateType"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["https://slsa.dev/provenance/v1"]);
    let ky = policy("kyverno", &keyless);
    let entry = &ky["spec"]["rules"][0]["verifyImages"][0]["attestors"][0]["entries"][0];
    assert_eq!(
        entry["keyless"]["issuer"],
        "https://token.actions.githubusercontent.com"
    );
    assert_eq!(
        entry["keyless"]["subjectRegExp"],
        "^(?:https://github.com/acme/app/.github/workflows/release.yml@.*)$"
    );

    // The policy can go to a file, and the project's own config makes a valid one too.
    let file = tmp.path().join("policy/cip.yaml");
    run_ok(
        wharf_clean()
            .args(["policy", "--format", "sigstore-policy-controller", "-o"])
            .arg(&file)
            .arg("--config")
            .arg(repo_root().join(".github/wharf-release.toml")),
    );
    let docs = yaml_documents(&fs::read_to_string(&file).unwrap());
    assert!(!docs.is_empty());
    assert!(
        docs.iter().all(|d| d["kind"] == "ClusterImagePolicy"),
        "{docs:#?}"
    );
}

#[test]
fn docs_verify_writes_the_verify_commands() {
    let tmp = tempdir();
    let key = wharf_key(tmp.path(), "release", PASSWORD);
    let primary = "127.0.0.1:5000/acme/app";
    let mirror = "127.0.0.1:5001/mirror/app";
    let mut c = Config::key("layout:v1", primary, &key).mirror(mirror);
    c.verify.push(format!("key = {}", q(key.public())));
    let config = c.write(&tmp.path().join("wharf.toml"));
    let guide = tmp.path().join("docs/verifying.md");
    run_ok(
        wharf_clean()
            .args(["docs", "verify", "--config"])
            .arg(&config)
            .arg("-o")
            .arg(&guide),
    );
    let md = fs::read_to_string(&guide).unwrap();
    assert!(md.starts_with("# Verifying app images"), "{md}");
    for needle in [
        format!("## `{primary}`"),
        format!("## `{mirror}`"),
        format!(
            "cosign verify --key {} --insecure-ignore-tlog=true {primary}@sha256:DIGEST",
            key.public()
        ),
        format!(
            "cosign verify --key {} --insecure-ignore-tlog=true {mirror}@sha256:DIGEST",
            key.public()
        ),
        format!("wharf verify --recursive --key {}", key.public()),
        "cosign verify-attestation --type cyclonedx".to_string(),
    ] {
        assert!(md.contains(&needle), "guide lacks {needle:?}:\n{md}");
    }
    // The committed guide is what the project's config generates.
    let committed = repo_root().join("docs/verifying.md");
    let regenerated = tmp.path().join("verifying.md");
    run_ok(
        wharf_clean()
            .current_dir(repo_root())
            .args([
                "docs",
                "verify",
                "--config",
                ".github/wharf-release.toml",
                "-o",
            ])
            .arg(&regenerated),
    );
    assert_eq!(
        fs::read_to_string(&regenerated).unwrap(),
        fs::read_to_string(&committed).unwrap(),
        "docs/verifying.md is stale: regenerate with `wharf docs verify --config .github/wharf-release.toml`"
    );
}

// ---------------------------------------------------------------------------------------
// 9. The project's workflows and reusable action
// ---------------------------------------------------------------------------------------

/// The `run:` scripts of a workflow's steps, all jobs.
fn workflow_runs(workflow: &Value) -> Vec<String> {
    let mut runs = Vec::new();
    for (_, job) in workflow["jobs"].as_object().expect("jobs") {
        for step in job["steps"].as_array().expect("steps") {
            if let Some(run) = step["run"].as_str() {
                runs.push(run.to_string());
            }
        }
    }
    runs
}

/// `on:` (PyYAML reads the bare key `on` as the boolean true).
fn workflow_on(workflow: &Value) -> &Value {
    let on = &workflow["on"];
    if on.is_null() {
        &workflow["true"]
    } else {
        on
    }
}

/// Every `NAME` in `prefix.NAME` inside a `${{ … }}` expression of `text`.
fn expression_refs(text: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        let after = &rest[start + 3..];
        let end = after.find("}}").expect("unclosed ${{");
        let expr = &after[..end];
        let mut e = expr;
        while let Some(i) = e.find(prefix) {
            let preceded_ok = i == 0
                || !e[..i]
                    .chars()
                    .last()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
            let name: String = e[i + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect();
            if preceded_ok && !name.is_empty() {
                out.push(name);
            }
            e = &e[i + prefix.len()..];
        }
        rest = &after[end + 2..];
    }
    out
}

#[test]
fn ci_workflow_formats_lints_and_runs_the_readme_test_command() {
    let ci = yaml_file(&repo_root().join(".github/workflows/ci.yml"));
    let on = workflow_on(&ci);
    assert!(
        on.get("push").is_some() && on.get("pull_request").is_some(),
        "{on}"
    );
    let runs = workflow_runs(&ci);
    let readme = fs::read_to_string(repo_root().join("README.md")).unwrap();
    assert!(readme.contains("bash scripts/test.sh"));
    assert!(
        runs.iter().any(|r| r.trim() == "bash scripts/test.sh"),
        "{runs:#?}"
    );
    assert!(
        runs.iter()
            .any(|r| r.contains("cargo fmt") && r.contains("--check")),
        "{runs:#?}"
    );
    assert!(
        runs.iter()
            .any(|r| r.contains("cargo clippy") && r.contains("-D warnings")),
        "{runs:#?}"
    );
}

#[test]
fn release_workflow_is_keyless_tag_triggered_and_runs_wharf_release() {
    let wf = yaml_file(&repo_root().join(".github/workflows/release.yml"));
    let tags = &workflow_on(&wf)["push"]["tags"];
    assert!(
        tags.as_array().is_some_and(|t| !t.is_empty()),
        "not triggered by tags: {wf:#}"
    );
    // Least privilege: nothing granted workflow-wide, each job its own permissions; the job
    // that runs `wharf release` signs keylessly and pushes to GHCR, and no other job may push
    // packages.
    assert_eq!(
        wf["permissions"],
        serde_json::json!({}),
        "workflow-wide permissions"
    );
    let jobs = wf["jobs"].as_object().unwrap();
    for (name, job) in jobs {
        assert!(
            job["permissions"].is_object(),
            "job {name} has no permissions of its own"
        );
        let runs_release = job["steps"].as_array().unwrap().iter().any(|s| {
            s["run"]
                .as_str()
                .is_some_and(|r| r.contains("wharf release --config"))
        });
        let p = &job["permissions"];
        if runs_release {
            assert!(
                p["id-token"] == "write" && p["packages"] == "write",
                "job {name} runs wharf release: needs id-token: write and packages: write: {p}"
            );
        } else {
            assert!(p["packages"].is_null(), "job {name} may push packages: {p}");
        }
    }
    let runs = workflow_runs(&wf);
    let release = runs
        .iter()
        .find(|r| r.contains("wharf release --config .github/wharf-release.toml"))
        .unwrap_or_else(|| {
            panic!("no `wharf release --config .github/wharf-release.toml`: {runs:#?}")
        });

    // The config loads, alone and with the overrides the workflow passes.
    let out = run_ok(wharf_clean().current_dir(repo_root()).args([
        "release",
        "--config",
        ".github/wharf-release.toml",
        "--dry-run",
    ]));
    assert!(stdout_of(&out).contains("keyless"), "{}", stdout_of(&out));
    let mut cmd = wharf_clean();
    cmd.current_dir(repo_root())
        .args([
            "release",
            "--config",
            ".github/wharf-release.toml",
            "--dry-run",
        ])
        .args(["--output", "json"])
        .args(["--set", "tags=[\"1.2.3\",\"1.2\",\"latest\"]"])
        .args([
            "--set",
            "mirror=[{destination=\"registry.example/mirror/wharf\"}]",
        ]);
    let env = wf["jobs"]["release"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["run"].as_str() == Some(release.as_str()))
        .map(|s| s["env"].clone())
        .unwrap_or(Value::Null);
    let mut env_names = Vec::new();
    for (name, _) in env.as_object().into_iter().flatten() {
        if name.starts_with("WHARF_CFG_") {
            env_names.push(name.clone());
            cmd.env(name, format!("value-of-{name}"));
        }
    }
    assert!(
        env_names.contains(&"WHARF_CFG_REPOSITORY".to_string()),
        "{env_names:?}"
    );
    let json = parse_json(&run_ok(&mut cmd));
    assert_eq!(
        json["config"]["repository"],
        "value-of-WHARF_CFG_REPOSITORY"
    );
    assert_eq!(
        json["config"]["tags"],
        serde_json::json!(["1.2.3", "1.2", "latest"])
    );
    assert_eq!(
        json["config"]["mirror"][0]["destination"],
        "registry.example/mirror/wharf"
    );
}

#[test]
fn action_is_composite_and_its_references_resolve() {
    let path = repo_root().join("action.yml");
    let text = fs::read_to_string(&path).unwrap();
    let action = yaml_file(&path);
    assert_eq!(action["runs"]["using"], "composite");
    let inputs: BTreeSet<String> = action["inputs"]
        .as_object()
        .expect("inputs")
        .keys()
        .cloned()
        .collect();
    let used: BTreeSet<String> = expression_refs(&text, "inputs.").into_iter().collect();
    assert!(!used.is_empty());
    let unknown: Vec<&String> = used.difference(&inputs).collect();
    assert!(
        unknown.is_empty(),
        "action.yml uses undeclared inputs {unknown:?}"
    );

    let steps = action["runs"]["steps"].as_array().expect("steps");
    let ids: BTreeSet<&str> = steps.iter().filter_map(|s| s["id"].as_str()).collect();
    for step in steps {
        if step.get("run").is_some() {
            assert!(
                step["shell"].is_string(),
                "composite run steps need a shell: {step}"
            );
        }
    }
    let outputs = action["outputs"].as_object().expect("outputs");
    assert!(outputs.contains_key("digest"));
    for (name, output) in outputs {
        let value = output["value"]
            .as_str()
            .unwrap_or_else(|| panic!("output {name} has no value"));
        let refs = expression_refs(value, "steps.");
        assert!(!refs.is_empty(), "output {name}: {value}");
        for id in refs {
            assert!(
                ids.contains(id.as_str()),
                "output {name} refers to unknown step {id:?}"
            );
        }
        // And to an output wharf writes.
        let written = value
            .split(".outputs.")
            .nth(1)
            .map(|s| s.trim_end_matches(['}', ' ']).to_string())
            .unwrap_or_default();
        assert!(
            ["digest", "reference"].contains(&written.as_str())
                || written.starts_with("digest-")
                || (written.starts_with("mirror-") && written.ends_with("-reference")),
            "output {name} reads {written:?}, which wharf release does not write"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 10. The project's release key
// ---------------------------------------------------------------------------------------

#[test]
fn release_key_fingerprint_matches_readme_and_openssl() {
    let root = repo_root();
    let out =
        run_ok(
            wharf_clean()
                .current_dir(&root)
                .args(["key", "fingerprint", "keys/release.pub"]),
        );
    let wharf_fp = stdout_of(&out).trim().to_string();
    assert_eq!(wharf_fp.len(), 64, "{wharf_fp}");

    let readme = fs::read_to_string(root.join("keys/README.md")).unwrap();
    let documented: Vec<&str> = readme
        .lines()
        .map(str::trim)
        .filter(|l| l.len() == 64 && l.chars().all(|c| c.is_ascii_hexdigit()))
        .collect();
    assert_eq!(
        documented,
        [wharf_fp.as_str()],
        "keys/README.md fingerprint"
    );

    require_tool("openssl");
    let out = run_ok(Command::new("bash").current_dir(&root).args([
        "-c",
        "set -o pipefail; openssl pkey -pubin -in keys/release.pub -outform DER | openssl dgst -sha256",
    ]));
    let openssl_fp = stdout_of(&out)
        .split_whitespace()
        .last()
        .unwrap()
        .to_string();
    assert_eq!(openssl_fp, wharf_fp);
}

// ---------------------------------------------------------------------------------------
// 11. README's first command
// ---------------------------------------------------------------------------------------

/// The example script builds the release binary and writes under the repository: one at a
/// time.
static EXAMPLE_SCRIPT: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `bash scripts/release-example.sh` from the repository root, with `WHARF_EXAMPLE_OUT`
/// if given; its output.
fn run_example_script(out_dir: Option<&Path>) -> Output {
    let mut cmd = Command::new("bash");
    clean(&mut cmd);
    cmd.current_dir(repo_root())
        .arg("scripts/release-example.sh")
        .env_remove("WHARF_PASSWORD");
    if let Some(dir) = out_dir {
        cmd.env("WHARF_EXAMPLE_OUT", dir);
    }
    run_ok(&mut cmd)
}

/// The commands the script prints after "Done. Verify …".
fn printed_verify_commands(stdout: &str) -> Vec<String> {
    let commands: Vec<String> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("Done. Verify"))
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    assert!(commands.len() >= 2, "no verify commands printed:\n{stdout}");
    commands
}

/// Runs `command` with bash from the repository root, to success.
fn run_from_root(command: &str) -> Output {
    run_ok(
        clean(&mut Command::new("bash"))
            .current_dir(repo_root())
            .args(["-c", command]),
    )
}

/// The README's first command, exactly as written: the example release lands in `./out`,
/// and every verify command it prints (the release's own table and the script's last lines)
/// passes as printed.
#[test]
fn readme_first_command_releases_the_example_and_its_verify_commands_pass() {
    let _one = EXAMPLE_SCRIPT.lock().unwrap_or_else(|e| e.into_inner());
    let root = repo_root();
    let readme = fs::read_to_string(root.join("README.md")).unwrap();
    let first = readme
        .lines()
        .find(|l| l.starts_with("bash "))
        .expect("README has a command block");
    assert!(
        first.starts_with("bash scripts/release-example.sh"),
        "{first}"
    );

    let out = run_example_script(None);
    let stdout = stdout_of(&out);
    let out_dir = root.join("out");
    for f in [
        "example.key",
        "example.pub",
        "release/index.json",
        "mirror/index.json",
    ] {
        assert!(out_dir.join(f).is_file(), "out/{f} missing\n{stdout}");
    }
    // The fingerprint printed is the generated key's.
    let fp = stdout_of(&run_ok(wharf_clean().current_dir(&root).args([
        "key",
        "fingerprint",
        "out/example.pub",
    ])));
    assert!(
        stdout.contains(&format!("fingerprint: {}", fp.trim())),
        "{stdout}"
    );
    // A fresh release of fresh layouts: every step did its work.
    for step in ["push", "sign", "attest", "tag"] {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(step))
            .unwrap_or_else(|| panic!("no {step} step in\n{stdout}"));
        assert!(
            line.trim_end().ends_with(" done") && !line.contains("already"),
            "{line}"
        );
    }

    // The release's "verify with:" commands (wharf from target/release) …
    let table: Vec<String> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("verify with:"))
        .skip(1)
        .map(str::trim)
        .take_while(|l| !l.is_empty())
        .map(|l| l.replacen("wharf ", "target/release/wharf ", 1))
        .collect();
    assert!(
        table.len() >= 2,
        "no verify commands in the release table:\n{stdout}"
    );
    // … and the script's closing ones, as printed.
    for command in table.iter().chain(printed_verify_commands(&stdout).iter()) {
        run_from_root(command);
    }
    // They fail under another key: they really check the release.
    let tmp = tempdir();
    let other = wharf_key(tmp.path(), "other", PASSWORD);
    let command = printed_verify_commands(&stdout)[0].replace("out/example.pub", other.public());
    run_fail(
        clean(&mut Command::new("bash"))
            .current_dir(&root)
            .args(["-c", &command]),
    );
}

/// `WHARF_EXAMPLE_OUT` (which the script reads) moves the whole example release, so that the
/// commands it prints verify what it released.
#[test]
fn release_example_honours_wharf_example_out() {
    let _one = EXAMPLE_SCRIPT.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempdir();
    let out_dir = tmp.path().join("example-out");
    let out = run_example_script(Some(&out_dir));
    let stdout = stdout_of(&out);
    assert!(out_dir.join("example.key").is_file() && out_dir.join("example.pub").is_file());
    assert!(
        out_dir.join("release/index.json").is_file() && out_dir.join("mirror/index.json").is_file(),
        "WHARF_EXAMPLE_OUT={} but the release is not there: examples/wharf.toml hardcodes out/ \
         (repository, signing.key, verify.key, mirror) and the script does not override them\n{stdout}",
        out_dir.display()
    );
    for command in printed_verify_commands(&stdout) {
        run_from_root(&command);
    }
}
