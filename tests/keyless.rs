//! Keyless signing and transparency-log evidence, end to end, against a loopback Sigstore (the
//! stand-in of `tests/sigstore-stand-in`: Fulcio, Rekor v1 and GitHub Actions' OIDC endpoint)
//! and a real registry, checked both ways with the real cosign:
//!
//! - `wharf sign` without `--key` (explicit token or GitHub ambient credentials) writes what
//!   cosign writes (certificate, chain, Rekor bundle) and cosign verifies it; one certificate
//!   serves a whole recursive run, with one log entry per manifest.
//! - cosign's keyless signatures verify in wharf.
//! - key signatures are logged in Rekor by default and verify without `--insecure-ignore-tlog`.
//! - every way a keyless signature can be wrong fails `wharf verify` with its own message.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use common::keys::{openssl_key, Key};
use common::standin::{SigstoreStandIn, GITHUB_ISSUER, REQUEST_TOKEN};
use common::*;
use serde_json::{json, Value};

const SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";

const OCTO_IDENTITY_REGEXP: &str = "https://github.com/octo-org/octo-repo/.*";
const PASSWORD: &str = "keyless-test-password-41c7";

const TWO: &[&str] = &["linux/amd64", "linux/arm64"];

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// `wharf sign --allow-insecure-registry --fulcio-url … --rekor-url … --trusted-root …`,
/// keyless, without a token yet (add `--identity-token` or the ambient variables).
fn wharf_sign_keyless(si: &SigstoreStandIn, image: &str) -> Command {
    let mut cmd = wharf_clean();
    cmd.args(["sign", "--allow-insecure-registry"])
        .args(si.wharf_args())
        .arg(image);
    cmd
}

/// `wharf sign` keyless with a fresh default token from `si`.
fn wharf_sign_with_token(si: &SigstoreStandIn, image: &str) -> Command {
    let mut cmd = wharf_sign_keyless(si, image);
    cmd.args(["--identity-token", &si.token("")]);
    cmd
}

/// `wharf verify --allow-insecure-registry --rekor-url … --trusted-root … IMAGE` with no policy.
fn wharf_verify_bare(si: &SigstoreStandIn, image: &str) -> Command {
    let mut cmd = wharf_clean();
    cmd.args(["verify", "--allow-insecure-registry"])
        .args(si.wharf_verify_args())
        .arg(image);
    cmd
}

/// `wharf verify` with the octo-org identity policy (GitHub issuer) and `si`'s trust.
fn wharf_verify_octo(si: &SigstoreStandIn, image: &str) -> Command {
    let mut cmd = wharf_verify_bare(si, image);
    cmd.args([
        "--certificate-identity-regexp",
        OCTO_IDENTITY_REGEXP,
        "--certificate-oidc-issuer",
        GITHUB_ISSUER,
    ]);
    cmd
}

/// `cosign verify` with the octo-org identity policy.
fn cosign_verify_octo(si: &SigstoreStandIn, image: &str) -> Command {
    let mut cmd = si.cosign();
    cmd.args([
        "verify",
        "--allow-insecure-registry",
        "--rekor-url",
        &si.rekor_url,
        "--certificate-identity-regexp",
        OCTO_IDENTITY_REGEXP,
        "--certificate-oidc-issuer",
        GITHUB_ISSUER,
        image,
    ]);
    cmd
}

/// `cosign sign` keyless against `si` with a fresh default token.
fn cosign_sign_keyless(si: &SigstoreStandIn, image: &str) -> Command {
    let mut cmd = si.cosign();
    cmd.args([
        "sign",
        "-y",
        "--allow-insecure-registry",
        "--fulcio-url",
        &si.fulcio_url,
        "--rekor-url",
        &si.rekor_url,
        "--identity-token",
        &si.token(""),
        image,
    ]);
    cmd
}

/// A registry and a stand-in of its own, with a two-platform image pushed as `app`.
struct Setup {
    reg: Registry,
    si: SigstoreStandIn,
    img: Pushed,
}

fn setup(seed: u64) -> Setup {
    setup_with(SigstoreStandIn::start(), seed)
}

fn setup_with(si: SigstoreStandIn, seed: u64) -> Setup {
    let reg = Registry::start();
    let img = push_to(&reg, "app", TWO, seed);
    Setup { reg, si, img }
}

/// [`setup`], then `wharf sign --recursive` keylessly with a default token.
fn keyless_signed(seed: u64) -> Setup {
    let s = setup(seed);
    run_ok(wharf_sign_with_token(&s.si, &s.img.index()).arg("--recursive"));
    s
}

/// The `.sig` manifest of `digest` as JSON.
fn sig_manifest(reg: &Registry, name: &str, digest: &str) -> Value {
    let (bytes, _) = reg
        .get_manifest(name, &sig_tag(digest))
        .unwrap_or_else(|| panic!("no {} in {name}", sig_tag(digest)));
    serde_json::from_slice(&bytes).expect("sig manifest JSON")
}

/// The single signature layer of `digest`'s `.sig`.
fn sig_layer(reg: &Registry, name: &str, digest: &str) -> Value {
    let manifest = sig_manifest(reg, name, digest);
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "expected one signature layer: {manifest}");
    assert_eq!(layers[0]["mediaType"], SIMPLESIGNING);
    layers[0].clone()
}

fn annotation(layer: &Value, key: &str) -> String {
    layer["annotations"][key]
        .as_str()
        .unwrap_or_else(|| panic!("signature layer has no {key}: {layer}"))
        .to_string()
}

/// Rewrites the first signature layer's annotations of `digest`'s `.sig` with `edit`.
fn edit_sig_annotations(
    reg: &Registry,
    name: &str,
    digest: &str,
    edit: impl FnOnce(&mut serde_json::Map<String, Value>),
) {
    let mut manifest = sig_manifest(reg, name, digest);
    let annotations = manifest["layers"][0]["annotations"]
        .as_object_mut()
        .expect("layer annotations");
    edit(annotations);
    put_sig_manifest(reg, name, digest, &manifest);
}

/// The bundle annotation, parsed and checked for the shape cosign writes.
fn bundle_of(layer: &Value) -> Value {
    let raw = annotation(layer, BUNDLE_ANNOTATION);
    let bundle: Value = serde_json::from_str(&raw).expect("bundle annotation is JSON");
    let set = bundle["SignedEntryTimestamp"]
        .as_str()
        .expect("SignedEntryTimestamp");
    assert!(
        B64.decode(set).is_ok_and(|s| !s.is_empty()),
        "SignedEntryTimestamp is not base64: {set}"
    );
    let payload = &bundle["Payload"];
    let body = payload["body"].as_str().expect("Payload.body");
    let body: Value = serde_json::from_slice(&B64.decode(body).expect("Payload.body is base64"))
        .expect("Payload.body is JSON");
    assert_eq!(body["kind"], "hashedrekord", "{body}");
    assert!(
        payload["integratedTime"]
            .as_i64()
            .is_some_and(|t| t > 1_600_000_000),
        "Payload.integratedTime: {bundle}"
    );
    assert!(
        payload["logIndex"].as_i64().is_some_and(|i| i >= 0),
        "Payload.logIndex: {bundle}"
    );
    let log_id = payload["logID"].as_str().expect("Payload.logID");
    assert!(
        log_id.len() == 64 && log_id.chars().all(|c| c.is_ascii_hexdigit()),
        "Payload.logID is not 64 hex digits: {log_id}"
    );
    bundle
}

/// The subjectAltName extension of a PEM certificate, as `openssl x509 -ext` prints it.
fn san_of(pem: &str, dir: &Path) -> String {
    let path = dir.join(format!("cert-{}.pem", &sha256_hex(pem.as_bytes())[..12]));
    fs::write(&path, pem).unwrap();
    let out = run_ok(
        Command::new(require_tool("openssl"))
            .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
            .arg(&path),
    );
    stdout_of(&out)
}

// ---------------------------------------------------------------------------------------
// wharf signs keylessly, cosign and wharf verify
// ---------------------------------------------------------------------------------------

#[test]
fn wharf_keyless_recursive_signature_verifies_in_cosign_and_wharf() {
    let Setup { reg, si, img } = setup(1);
    let out = run_ok(wharf_sign_with_token(&si, &img.index()).arg("--recursive"));
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains(&format!("signing keylessly as {}", si.identity)),
        "{stderr}"
    );
    let text = stdout_of(&out);
    for digest in img.all_digests() {
        assert!(
            text.contains(&format!("signed {}", img.at(&digest))),
            "sign output lacks {digest}:\n{text}"
        );
    }

    // What cosign writes: signature, certificate, chain and Rekor bundle on every layer.
    for digest in img.all_digests() {
        let layer = sig_layer(&reg, &img.name, &digest);
        assert!(B64.decode(annotation(&layer, SIGNATURE_ANNOTATION)).is_ok());
        let cert = annotation(&layer, CERTIFICATE_ANNOTATION);
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
        assert_eq!(cert.matches("BEGIN CERTIFICATE").count(), 1, "{cert}");
        let chain = annotation(&layer, CHAIN_ANNOTATION);
        assert_eq!(
            chain.matches("BEGIN CERTIFICATE").count(),
            2,
            "chain is not intermediate + root: {chain}"
        );
        let bundle = bundle_of(&layer);
        // The log entry is for this signature and this certificate.
        let body: Value = serde_json::from_slice(
            &B64.decode(bundle["Payload"]["body"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            body["spec"]["signature"]["content"].as_str(),
            Some(annotation(&layer, SIGNATURE_ANNOTATION).as_str())
        );
        let logged_cert = B64
            .decode(
                body["spec"]["signature"]["publicKey"]["content"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap();
        assert!(
            String::from_utf8(logged_cert)
                .unwrap()
                .contains("BEGIN CERTIFICATE"),
            "the log entry does not name the certificate: {body}"
        );
        let payload = reg
            .get_blob(&img.name, layer["digest"].as_str().unwrap())
            .expect("payload blob");
        assert_eq!(
            body["spec"]["data"]["hash"]["value"].as_str(),
            Some(sha256_hex(&payload).as_str())
        );
    }

    // cosign verifies the index and each child on its own.
    for digest in img.all_digests() {
        let out = run_ok(&mut cosign_verify_octo(&si, &img.at(&digest)));
        let payloads: Value = serde_json::from_slice(&out.stdout).expect("cosign JSON");
        assert_eq!(
            payloads[0]["critical"]["image"]["docker-manifest-digest"],
            digest.as_str()
        );
    }

    // And wharf, recursively.
    let out = run_ok(wharf_verify_octo(&si, &img.index()).arg("--recursive"));
    assert_eq!(
        verified_digests(&out),
        img.all_digests().into_iter().collect()
    );
    let stderr = stderr_of(&out);
    assert!(stderr.contains("chains to a trusted Fulcio CA"), "{stderr}");
    assert!(stderr.contains("(SET) was verified"), "{stderr}");

    // The exact identity works too.
    run_ok(
        wharf_verify_bare(&si, &img.index())
            .args(["--certificate-identity", &si.identity])
            .args(["--certificate-oidc-issuer", &si.oidc_issuer]),
    );
}

#[test]
fn recursive_sign_uses_one_certificate_and_one_log_entry_per_manifest() {
    let Setup { reg, si, img } = keyless_signed(2);
    let layers: Vec<Value> = img
        .all_digests()
        .iter()
        .map(|d| sig_layer(&reg, &img.name, d))
        .collect();

    let certs: BTreeSet<String> = layers
        .iter()
        .map(|l| annotation(l, CERTIFICATE_ANNOTATION))
        .collect();
    assert_eq!(certs.len(), 1, "more than one certificate: {certs:#?}");
    let chains: BTreeSet<String> = layers
        .iter()
        .map(|l| annotation(l, CHAIN_ANNOTATION))
        .collect();
    assert_eq!(chains.len(), 1);
    // Fulcio was asked once.
    let cert_requests = si
        .log()
        .lines()
        .filter(|l| {
            l.contains("POST /api/v2/signingCert") || l.contains("POST /api/v1/signingCert")
        })
        .count();
    assert_eq!(cert_requests, 1, "stand-in log:\n{}", si.log());

    let bundles: Vec<Value> = layers.iter().map(bundle_of).collect();
    let indexes: BTreeSet<i64> = bundles
        .iter()
        .map(|b| b["Payload"]["logIndex"].as_i64().unwrap())
        .collect();
    assert_eq!(
        indexes.len(),
        3,
        "log indexes are not distinct: {indexes:?}"
    );
    let signatures: BTreeSet<String> = layers
        .iter()
        .map(|l| annotation(l, SIGNATURE_ANNOTATION))
        .collect();
    assert_eq!(signatures.len(), 3);

    // Each bundle is the log's own entry at that index.
    for bundle in &bundles {
        let index = bundle["Payload"]["logIndex"].as_i64().unwrap();
        let resp = http_request(
            si.addr(),
            "GET",
            &format!("/api/v1/log/entries?logIndex={index}"),
            &[],
            b"",
        )
        .unwrap();
        assert_eq!(resp.status, 200, "{}", resp.text());
        let entries: Value = serde_json::from_slice(&resp.body).unwrap();
        let entry = entries
            .as_object()
            .and_then(|m| m.values().next())
            .or_else(|| {
                entries
                    .as_array()
                    .and_then(|a| a.first())
                    .and_then(|m| m.as_object()?.values().next())
            })
            .unwrap_or_else(|| panic!("no entry at {index}: {entries}"));
        assert_eq!(entry["body"], bundle["Payload"]["body"]);
        assert_eq!(entry["integratedTime"], bundle["Payload"]["integratedTime"]);
    }
}

#[test]
fn github_ambient_credentials_sign_keylessly() {
    let Setup { reg, si, img } = setup(3);
    let out = run_ok(
        wharf_sign_keyless(&si, &img.index())
            .arg("--recursive")
            .env("ACTIONS_ID_TOKEN_REQUEST_URL", &si.oidc_url)
            .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN),
    );
    assert!(
        stderr_of(&out).contains(&format!("signing keylessly as {}", si.identity)),
        "{}",
        stderr_of(&out)
    );
    let token_requests = si
        .log()
        .lines()
        .filter(|l| l.contains("GET /oidc/token") && l.contains("-> 200"))
        .count();
    assert_eq!(token_requests, 1, "stand-in log:\n{}", si.log());

    let dir = tempdir();
    let layer = sig_layer(&reg, &img.name, &img.digest);
    let san = san_of(&annotation(&layer, CERTIFICATE_ANNOTATION), dir.path());
    assert!(san.contains(&format!("URI:{}", si.identity)), "{san}");

    let out = run_ok(
        wharf_verify_bare(&si, &img.index())
            .arg("--recursive")
            .args(["--certificate-identity", &si.identity])
            .args(["--certificate-oidc-issuer", GITHUB_ISSUER]),
    );
    assert_eq!(
        verified_digests(&out),
        img.all_digests().into_iter().collect()
    );
    run_ok(&mut cosign_verify_octo(&si, &img.index()));
}

#[test]
fn ambient_credentials_with_a_wrong_request_token_fail_to_sign() {
    let Setup { reg, si, img } = setup(4);
    let out = run_fail(
        wharf_sign_keyless(&si, &img.index())
            .env("ACTIONS_ID_TOKEN_REQUEST_URL", &si.oidc_url)
            .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "not-the-request-token"),
    );
    let line = error_line(&out);
    assert!(line.contains("token endpoint"), "{line}");
    assert!(line.contains("401"), "{line}");
    assert!(reg.get_manifest(&img.name, &sig_tag(&img.digest)).is_none());

    // Neither a token nor ambient credentials: a clear refusal, nothing written.
    let out = run_fail(&mut wharf_sign_keyless(&si, &img.index()));
    let line = error_line(&out);
    assert!(line.contains("needs an OIDC identity token"), "{line}");
    assert!(reg.get_manifest(&img.name, &sig_tag(&img.digest)).is_none());
}

#[test]
fn github_workflow_claims_are_checked() {
    let Setup { reg: _reg, si, img } = keyless_signed(5);
    let out = run_ok(
        wharf_verify_octo(&si, &img.index())
            .arg("--recursive")
            .args([
                "--certificate-github-workflow-repository",
                "octo-org/octo-repo",
            ])
            .args(["--certificate-github-workflow-trigger", "push"])
            .args(["--certificate-github-workflow-ref", "refs/heads/main"]),
    );
    assert_eq!(verified_digests(&out).len(), 3);

    let line = verify_fails(
        wharf_verify_octo(&si, &img.index())
            .args(["--certificate-github-workflow-repository", "other/repo"]),
    );
    assert!(line.contains("workflow repository"), "{line}");
    assert!(line.contains("octo-org/octo-repo"), "{line}");
    assert!(line.contains("other/repo"), "{line}");

    let line = verify_fails(
        wharf_verify_octo(&si, &img.index())
            .args(["--certificate-github-workflow-ref", "refs/tags/v1"]),
    );
    assert!(line.contains("workflow ref"), "{line}");

    let line = verify_fails(
        wharf_verify_octo(&si, &img.index())
            .args(["--certificate-github-workflow-trigger", "pull_request"]),
    );
    assert!(line.contains("workflow trigger"), "{line}");
}

#[test]
fn token_for_another_repository_fails_the_identity_and_repository_policy() {
    let Setup { reg: _reg, si, img } = setup(6);
    let token = si.token("repository=evil/repo");
    let out = run_ok(wharf_sign_keyless(&si, &img.index()).args(["--identity-token", &token]));
    assert!(
        stderr_of(&out).contains("https://github.com/evil/repo/"),
        "{}",
        stderr_of(&out)
    );
    let line = verify_fails(&mut wharf_verify_octo(&si, &img.index()));
    assert!(line.contains("wrong identity"), "{line}");
    assert!(line.contains("evil/repo"), "{line}");

    // Any identity of the issuer, but the repository claim still has to match.
    let line = verify_fails(
        wharf_verify_bare(&si, &img.index())
            .args(["--certificate-identity-regexp", ".*"])
            .args(["--certificate-oidc-issuer", GITHUB_ISSUER])
            .args([
                "--certificate-github-workflow-repository",
                "octo-org/octo-repo",
            ]),
    );
    assert!(line.contains("workflow repository"), "{line}");
    assert!(line.contains("evil/repo"), "{line}");
    run_fail(&mut cosign_verify_octo(&si, &img.index()));
}

// ---------------------------------------------------------------------------------------
// cosign signs keylessly, wharf verifies
// ---------------------------------------------------------------------------------------

#[test]
fn cosign_keyless_recursive_signature_verifies_in_wharf() {
    let Setup { reg, si, img } = setup(7);
    run_ok(cosign_sign_keyless(&si, &img.index()).arg("--recursive"));
    for digest in img.all_digests() {
        let layer = sig_layer(&reg, &img.name, &digest);
        bundle_of(&layer);
        annotation(&layer, CERTIFICATE_ANNOTATION);
    }
    let out = run_ok(wharf_verify_octo(&si, &img.index()).arg("--recursive"));
    assert_eq!(
        verified_digests(&out),
        img.all_digests().into_iter().collect()
    );
    for (_, digest) in &img.children {
        let out = run_ok(&mut wharf_verify_octo(&si, &img.at(digest)));
        assert_eq!(verified_digests(&out), BTreeSet::from([digest.clone()]));
    }
    let line = verify_fails(
        wharf_verify_bare(&si, &img.index())
            .args([
                "--certificate-identity-regexp",
                "https://github.com/other/.*",
            ])
            .args(["--certificate-oidc-issuer", GITHUB_ISSUER]),
    );
    assert!(line.contains("wrong identity"), "{line}");
}

// ---------------------------------------------------------------------------------------
// Key signatures logged in Rekor
// ---------------------------------------------------------------------------------------

#[test]
fn key_signature_is_logged_and_verifies_without_ignoring_the_tlog() {
    let Setup { reg, si, img } = setup(8);
    let dir = tempdir();
    let Key { private, public } = openssl_key(dir.path(), "key");
    run_ok(
        wharf_clean()
            .args(["sign", "--allow-insecure-registry", "--recursive"])
            .args(["--key", s(&private), "--rekor-url", &si.rekor_url])
            .arg(img.index())
            .env("WHARF_PASSWORD", PASSWORD),
    );
    let mut indexes = BTreeSet::new();
    for digest in img.all_digests() {
        let layer = sig_layer(&reg, &img.name, &digest);
        assert!(
            layer["annotations"].get(CERTIFICATE_ANNOTATION).is_none(),
            "a key signature carries a certificate: {layer}"
        );
        let bundle = bundle_of(&layer);
        indexes.insert(bundle["Payload"]["logIndex"].as_i64().unwrap());
        // The entry names the public key.
        let body: Value = serde_json::from_slice(
            &B64.decode(bundle["Payload"]["body"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
        let logged_key = String::from_utf8(
            B64.decode(
                body["spec"]["signature"]["publicKey"]["content"]
                    .as_str()
                    .unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        assert!(logged_key.contains("BEGIN PUBLIC KEY"), "{logged_key}");
    }
    assert_eq!(indexes.len(), 3);

    // wharf: the bundle is checked against the trusted root's Rekor key, no tlog waiver.
    let out =
        run_ok(wharf_verify_bare(&si, &img.index()).args(["--recursive", "--key", s(&public)]));
    assert_eq!(
        verified_digests(&out),
        img.all_digests().into_iter().collect()
    );
    assert!(
        stderr_of(&out).contains("(SET) was verified"),
        "{}",
        stderr_of(&out)
    );

    // cosign, with the stand-in's Rekor key.
    for digest in img.all_digests() {
        run_ok(
            si.cosign()
                .args(["verify", "--allow-insecure-registry"])
                .args(["--rekor-url", &si.rekor_url, "--key", s(&public)])
                .arg(img.at(&digest)),
        );
    }

    // Without --trusted-root wharf trusts only the public-good Rekor, which never logged this.
    let line = verify_fails(
        wharf_clean()
            .args(["verify", "--allow-insecure-registry", "--key", s(&public)])
            .arg(img.index()),
    );
    assert!(line.contains("transparency log"), "{line}");
}

// ---------------------------------------------------------------------------------------
// Negative cases: each fails with its own message
// ---------------------------------------------------------------------------------------

#[test]
fn wrong_identity_fails() {
    let Setup { reg: _reg, si, img } = keyless_signed(10);
    let line = verify_fails(
        wharf_verify_bare(&si, &img.index())
            .args([
                "--certificate-identity-regexp",
                "https://github.com/octo-org/other-repo/.*",
            ])
            .args(["--certificate-oidc-issuer", GITHUB_ISSUER]),
    );
    assert!(line.contains("wrong identity"), "{line}");
    assert!(line.contains(&si.identity), "{line}");
    assert!(line.contains(&img.digest), "{line}");

    // The regexp must match the whole identity.
    let line = verify_fails(
        wharf_verify_bare(&si, &img.index())
            .args([
                "--certificate-identity-regexp",
                "https://github.com/octo-org",
            ])
            .args(["--certificate-oidc-issuer", GITHUB_ISSUER]),
    );
    assert!(line.contains("wrong identity"), "{line}");

    let line = verify_fails(
        wharf_verify_bare(&si, &img.index())
            .args([
                "--certificate-identity",
                "https://github.com/octo-org/octo-repo",
            ])
            .args(["--certificate-oidc-issuer", GITHUB_ISSUER]),
    );
    assert!(line.contains("wrong identity"), "{line}");
}

#[test]
fn wrong_oidc_issuer_fails() {
    let Setup { reg: _reg, si, img } = keyless_signed(11);
    let line = verify_fails(
        wharf_verify_bare(&si, &img.index())
            .args(["--certificate-identity-regexp", OCTO_IDENTITY_REGEXP])
            .args(["--certificate-oidc-issuer", "https://accounts.google.com"]),
    );
    assert!(line.contains("wrong OIDC issuer"), "{line}");
    assert!(line.contains(GITHUB_ISSUER), "{line}");

    let line = verify_fails(
        wharf_verify_bare(&si, &img.index())
            .args(["--certificate-identity-regexp", OCTO_IDENTITY_REGEXP])
            .args([
                "--certificate-oidc-issuer-regexp",
                "https://token.actions.githubusercontent",
            ]),
    );
    assert!(line.contains("wrong OIDC issuer"), "{line}");

    run_ok(
        wharf_verify_bare(&si, &img.index())
            .args(["--certificate-identity-regexp", OCTO_IDENTITY_REGEXP])
            .args([
                "--certificate-oidc-issuer-regexp",
                r"https://token\.actions\..*",
            ]),
    );
}

/// A trusted root with `log_from`'s Rekor and CT log keys but `ca_from`'s certificate
/// authorities, written into `dir`.
fn mixed_trusted_root(
    log_from: &SigstoreStandIn,
    ca_from: &SigstoreStandIn,
    dir: &Path,
) -> PathBuf {
    let read = |p: &Path| -> Value { serde_json::from_slice(&fs::read(p).unwrap()).unwrap() };
    let mut root = read(&log_from.trusted_root);
    let other = read(&ca_from.trusted_root);
    root["certificateAuthorities"] = other["certificateAuthorities"].clone();
    let path = dir.join("mixed_trusted_root.json");
    fs::write(&path, serde_json::to_vec_pretty(&root).unwrap()).unwrap();
    path
}

#[test]
fn certificate_from_another_ca_fails() {
    let Setup { reg: _reg, si, img } = keyless_signed(12);
    let other = SigstoreStandIn::start();
    let dir = tempdir();

    let policy = |cmd: &mut Command| {
        cmd.args(["--certificate-identity-regexp", OCTO_IDENTITY_REGEXP])
            .args(["--certificate-oidc-issuer", GITHUB_ISSUER]);
    };

    // The log is trusted (this stand-in's Rekor key), the CA is another instance's.
    let mixed = mixed_trusted_root(&si, &other, dir.path());
    let mut cmd = wharf_clean();
    cmd.args([
        "verify",
        "--allow-insecure-registry",
        "--trusted-root",
        s(&mixed),
    ])
    .arg(img.index());
    policy(&mut cmd);
    let line = verify_fails(&mut cmd);
    assert!(line.contains("untrusted CA"), "{line}");
    assert!(line.contains("does not chain"), "{line}");

    // The second instance's trusted root as is: neither its log nor its CA vouches.
    let mut cmd = wharf_clean();
    cmd.args([
        "verify",
        "--allow-insecure-registry",
        "--trusted-root",
        s(&other.trusted_root),
    ])
    .arg(img.index());
    policy(&mut cmd);
    let line = verify_fails(&mut cmd);
    assert!(line.contains("transparency log"), "{line}");

    // Without the log the CA check is what fails.
    let mut cmd = wharf_clean();
    cmd.args([
        "verify",
        "--allow-insecure-registry",
        "--insecure-ignore-tlog",
    ])
    .args(["--trusted-root", s(&other.trusted_root)])
    .arg(img.index());
    policy(&mut cmd);
    let line = verify_fails(&mut cmd);
    assert!(line.contains("untrusted CA"), "{line}");

    // And signing with one instance's Fulcio while trusting the other's is refused up front.
    let mut cmd = wharf_clean();
    cmd.args(["sign", "--allow-insecure-registry"])
        .args(["--fulcio-url", &si.fulcio_url, "--rekor-url", &si.rekor_url])
        .args(["--trusted-root", s(&other.trusted_root)])
        .args(["--identity-token", &si.token("")])
        .arg(img.at(img.child(0)));
    let out = run_fail(&mut cmd);
    let line = error_line(&out);
    assert!(line.contains("not trusted"), "{line}");
}

#[test]
fn altered_signed_entry_timestamp_fails() {
    let Setup { reg, si, img } = keyless_signed(13);
    // A valid SET, from another manifest's entry: valid base64, valid DER, wrong content.
    let other_set =
        bundle_of(&sig_layer(&reg, &img.name, img.child(0)))["SignedEntryTimestamp"].clone();
    edit_sig_annotations(&reg, &img.name, &img.digest, |a| {
        let mut bundle: Value =
            serde_json::from_str(a[BUNDLE_ANNOTATION].as_str().unwrap()).unwrap();
        assert_ne!(bundle["SignedEntryTimestamp"], other_set);
        bundle["SignedEntryTimestamp"] = other_set;
        a.insert(BUNDLE_ANNOTATION.into(), json!(bundle.to_string()));
    });
    let line = verify_fails(&mut wharf_verify_octo(&si, &img.index()));
    assert!(line.contains("Signed Entry Timestamp"), "{line}");
    assert!(line.contains(&img.digest), "{line}");
    run_fail(&mut cosign_verify_octo(&si, &img.index()));

    // An altered integratedTime under the original SET fails the same way.
    let Setup { reg, si, img } = keyless_signed(14);
    edit_sig_annotations(&reg, &img.name, &img.digest, |a| {
        let mut bundle: Value =
            serde_json::from_str(a[BUNDLE_ANNOTATION].as_str().unwrap()).unwrap();
        let t = bundle["Payload"]["integratedTime"].as_i64().unwrap();
        bundle["Payload"]["integratedTime"] = json!(t - 1);
        a.insert(BUNDLE_ANNOTATION.into(), json!(bundle.to_string()));
    });
    let line = verify_fails(&mut wharf_verify_octo(&si, &img.index()));
    assert!(line.contains("Signed Entry Timestamp"), "{line}");
}

#[test]
fn missing_bundle_fails_when_the_tlog_is_required() {
    let Setup { reg, si, img } = keyless_signed(15);
    edit_sig_annotations(&reg, &img.name, &img.digest, |a| {
        assert!(a.remove(BUNDLE_ANNOTATION).is_some());
    });
    let line = verify_fails(&mut wharf_verify_octo(&si, &img.index()));
    assert!(line.contains("no transparency log bundle"), "{line}");
    assert!(line.contains(&img.digest), "{line}");
    // The children still have theirs.
    for (_, digest) in &img.children {
        run_ok(&mut wharf_verify_octo(&si, &img.at(digest)));
    }
    // Waiving the log accepts it (the certificate is still valid now).
    run_ok(wharf_verify_octo(&si, &img.index()).arg("--insecure-ignore-tlog"));
}

#[test]
fn bundle_of_a_different_signature_fails() {
    let Setup { reg, si, img } = keyless_signed(16);
    // Swap the bundles of the index and the first child: each is a genuine, validly signed
    // entry of the trusted log, for the other manifest's signature.
    let index_bundle = annotation(&sig_layer(&reg, &img.name, &img.digest), BUNDLE_ANNOTATION);
    let child_bundle = annotation(&sig_layer(&reg, &img.name, img.child(0)), BUNDLE_ANNOTATION);
    assert_ne!(index_bundle, child_bundle);
    edit_sig_annotations(&reg, &img.name, &img.digest, |a| {
        a.insert(BUNDLE_ANNOTATION.into(), json!(child_bundle));
    });
    edit_sig_annotations(&reg, &img.name, img.child(0), |a| {
        a.insert(BUNDLE_ANNOTATION.into(), json!(index_bundle));
    });
    let line = verify_fails(&mut wharf_verify_octo(&si, &img.index()));
    assert!(line.contains("different signature"), "{line}");
    assert!(line.contains(&img.digest), "{line}");
    let line = verify_fails(&mut wharf_verify_octo(&si, &img.at(img.child(0))));
    assert!(line.contains("different signature"), "{line}");
    run_fail(&mut cosign_verify_octo(&si, &img.index()));
    // The untouched child still verifies.
    run_ok(&mut wharf_verify_octo(&si, &img.at(img.child(1))));
}

#[test]
fn bundle_of_a_different_signature_in_a_second_layer_is_rejected() {
    // Two signature layers on one manifest (wharf, then cosign), bundles swapped between them:
    // neither layer counts.
    let Setup { reg, si, img } = keyless_signed(17);
    run_ok(&mut cosign_sign_keyless(&si, &img.index()));
    let mut manifest = sig_manifest(&reg, &img.name, &img.digest);
    let layers = manifest["layers"].as_array_mut().unwrap();
    assert_eq!(layers.len(), 2, "cosign did not append a layer");
    let a = layers[0]["annotations"][BUNDLE_ANNOTATION].clone();
    let b = layers[1]["annotations"][BUNDLE_ANNOTATION].clone();
    assert_ne!(a, b);
    layers[0]["annotations"][BUNDLE_ANNOTATION] = b;
    layers[1]["annotations"][BUNDLE_ANNOTATION] = a;
    put_sig_manifest(&reg, &img.name, &img.digest, &manifest);

    let line = verify_fails(&mut wharf_verify_octo(&si, &img.index()));
    assert!(line.contains("different signature"), "{line}");
    assert!(line.contains("2 signatures"), "{line}");
}

#[test]
fn wharf_refuses_to_sign_with_an_already_expired_certificate() {
    let expired = SigstoreStandIn::start_expiring_certs_after(-5);
    let Setup { reg, si, img } = setup_with(expired, 18);
    let out = run_fail(&mut wharf_sign_with_token(&si, &img.index()));
    let line = error_line(&out);
    assert!(line.contains("not trusted"), "{line}");
    assert!(line.contains("not valid"), "{line}");
    assert!(reg.get_manifest(&img.name, &sig_tag(&img.digest)).is_none());
}

#[test]
fn signature_logged_after_the_certificate_expired_fails() {
    // wharf will not sign with an expired certificate (see above), so cosign makes the
    // signature: its Rekor entry is integrated after the certificate's notAfter.
    let expired = SigstoreStandIn::start_expiring_certs_after(-5);
    let Setup { reg, si, img } = setup_with(expired, 19);
    run_ok(&mut cosign_sign_keyless(&si, &img.index()));
    let layer = sig_layer(&reg, &img.name, &img.digest);
    bundle_of(&layer);

    let line = verify_fails(&mut wharf_verify_octo(&si, &img.index()));
    assert!(
        line.contains("outside the certificate's validity"),
        "{line}"
    );
    assert!(line.contains(&img.digest), "{line}");
    let out = run_fail(&mut cosign_verify_octo(&si, &img.index()));
    assert!(stderr_of(&out).contains("expired"), "{}", stderr_of(&out));
}

#[test]
fn signature_made_while_the_certificate_was_valid_outlives_it() {
    // Certificates valid for 3 s: the log's integrated time proves the signature was made in
    // time, so it still verifies after expiry; without the log only "now" can be checked.
    let short = SigstoreStandIn::start_expiring_certs_after(3);
    let Setup { reg: _reg, si, img } = setup_with(short, 20);
    run_ok(wharf_sign_with_token(&si, &img.index()).arg("--recursive"));
    std::thread::sleep(std::time::Duration::from_secs(5));

    let out = run_ok(wharf_verify_octo(&si, &img.index()).arg("--recursive"));
    assert_eq!(verified_digests(&out).len(), 3);
    run_ok(&mut cosign_verify_octo(&si, &img.index()));

    let line = verify_fails(wharf_verify_octo(&si, &img.index()).arg("--insecure-ignore-tlog"));
    assert!(
        line.contains("outside the certificate's validity"),
        "{line}"
    );
    assert!(line.contains("signing time is unknown"), "{line}");
}

#[test]
fn verify_without_a_policy_fails() {
    let Setup { reg: _reg, si, img } = keyless_signed(21);
    let line = verify_fails(
        wharf_clean()
            .args(["verify", "--allow-insecure-registry"])
            .arg(img.index()),
    );
    assert!(line.contains("needs a policy"), "{line}");

    // An identity without an issuer (or the reverse) is no policy either.
    let line = verify_fails(
        wharf_verify_bare(&si, &img.index())
            .args(["--certificate-identity-regexp", OCTO_IDENTITY_REGEXP]),
    );
    assert!(line.contains("needs a policy"), "{line}");
    let line = verify_fails(
        wharf_verify_bare(&si, &img.index()).args(["--certificate-oidc-issuer", GITHUB_ISSUER]),
    );
    assert!(line.contains("needs a policy"), "{line}");
    // GitHub claims alone neither.
    let line = verify_fails(wharf_verify_bare(&si, &img.index()).args([
        "--certificate-github-workflow-repository",
        "octo-org/octo-repo",
    ]));
    assert!(line.contains("needs a policy"), "{line}");
}

#[test]
fn keyless_signature_does_not_satisfy_a_key_policy() {
    let Setup { reg: _reg, si, img } = keyless_signed(22);
    let dir = tempdir();
    let Key { private: _, public } = openssl_key(dir.path(), "key");
    let line = verify_fails(wharf_verify_bare(&si, &img.index()).args(["--key", s(&public)]));
    assert!(line.contains("verifies under the key"), "{line}");
}

/// A trusted root that lists no CT log leaves a certificate's SCT uncheckable. Verification
/// refuses that unless told `--insecure-ignore-sct`; signing does the same, before anything
/// is asked of Fulcio or written, and signs knowingly with the flag (or cosign's name for it,
/// `--insecure-skip-verify`).
#[test]
fn signing_against_a_trusted_root_without_ct_logs_needs_insecure_ignore_sct() {
    let s = setup(41);
    let no_ct = s.si.trusted_root_without_ct_logs();
    let sign = |image: &str| {
        let mut cmd = wharf_clean();
        cmd.args(["sign", "--allow-insecure-registry"])
            .args(["--fulcio-url", &s.si.fulcio_url])
            .args(["--rekor-url", &s.si.rekor_url])
            .args(["--trusted-root", no_ct.to_str().unwrap()])
            .args(["--identity-token", &s.si.token("")])
            .arg(image);
        cmd
    };
    let index = s.img.index();

    let line = error_line(&run_fail(&mut sign(&index)));
    assert!(line.contains("no CT log"), "{line}");
    assert!(line.contains("--insecure-ignore-sct"), "{line}");
    assert!(
        !s.si.log().contains("signingCert"),
        "Fulcio was asked:\n{}",
        s.si.log()
    );
    assert!(
        s.reg.get_manifest("app", &sig_tag(&s.img.digest)).is_none(),
        "a signature was written"
    );

    run_ok(sign(&index).arg("--insecure-ignore-sct"));
    let child = s.img.at(s.img.child(0));
    run_ok(sign(&child).arg("--insecure-skip-verify=true"));

    // Verified under the same trust only when told to ignore the SCT.
    for image in [&index, &child] {
        let verify = || {
            let mut cmd = wharf_clean();
            cmd.args(["verify", "--allow-insecure-registry"])
                .args(["--trusted-root", no_ct.to_str().unwrap()])
                .args(["--certificate-identity-regexp", OCTO_IDENTITY_REGEXP])
                .args(["--certificate-oidc-issuer", GITHUB_ISSUER])
                .arg(image);
            cmd
        };
        let line = verify_fails(&mut verify());
        assert!(line.contains("no CT log"), "{line}");
        run_ok(verify().arg("--insecure-ignore-sct"));
        // The certificates do carry an SCT: under the full trust root they verify as usual.
        run_ok(&mut wharf_verify_octo(&s.si, image));
    }
}
