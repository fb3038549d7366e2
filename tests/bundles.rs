//! Sigstore bundles (v0.3) as OCI 1.1 referrers (`--bundle-format bundle|both` on `wharf sign`
//! and `wharf attest`), against a real registry (distribution 2.8: no referrers API, so the
//! `sha256-<hex>` fallback tag index), the loopback Sigstore stand-in and independent tools:
//!
//! - the shape of what is written (`oras discover`, the fallback index, the referrer manifest);
//! - independent verification of the bundles (sigstore-python, `cosign
//!   verify-blob-attestation --new-bundle-format`, `cosign verify-attestation
//!   --new-bundle-format`);
//! - `wharf verify` / `verify-attestation` reading bundles (keyless and key), `--bundle-format
//!   both`, and bundles written by cosign;
//! - `wharf tree`, eight concurrent writers, a registry refusing manifests with `subject`
//!   (through the fault-injecting proxy), and `wharf mirror` copying the referrers.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use common::keys::{openssl_key, Key};
use common::proxy::{self, Proxy};
use common::standin::{cosign_plain, wharf_clean, SigstoreStandIn, GITHUB_ISSUER};
use common::*;
use serde_json::{json, Value};

const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const CONTENT_ANNOTATION: &str = "dev.sigstore.bundle.content";
const PREDICATE_TYPE_ANNOTATION: &str = "dev.sigstore.bundle.predicateType";
const CREATED_ANNOTATION: &str = "org.opencontainers.image.created";
const SIGN_PREDICATE_TYPE: &str = "https://sigstore.dev/cosign/sign/v1";
const CYCLONEDX: &str = "https://cyclonedx.org/bom";
const CUSTOM: &str = "https://cosign.sigstore.dev/attestation/v1";

const OCTO_IDENTITY_REGEXP: &str = "https://github.com/octo-org/octo-repo/.*";

const TWO: &[&str] = &["linux/amd64", "linux/arm64"];

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// `cosign` pointed at `si`'s trust material.
fn cosign_si(si: &SigstoreStandIn) -> Command {
    let mut cmd = cosign_plain();
    si.cosign_env(&mut cmd);
    cmd
}

fn oras() -> Command {
    Command::new(require_tool("oras"))
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Keyless `wharf sign --bundle-format FORMAT` against `si` with a fresh default token.
fn wharf_sign_keyless(si: &SigstoreStandIn, image: &str, format: &str) -> Command {
    let mut cmd = wharf_clean();
    cmd.args([
        "sign",
        "--allow-insecure-registry",
        "--bundle-format",
        format,
    ])
    .args(si.wharf_args())
    .args(["--identity-token", &si.token("")])
    .arg(image);
    cmd
}

/// Keyless `wharf attest --bundle-format FORMAT --type T --predicate P` against `si`.
fn wharf_attest_keyless(
    si: &SigstoreStandIn,
    image: &str,
    format: &str,
    kind: &str,
    predicate: &Path,
) -> Command {
    let mut cmd = wharf_clean();
    cmd.args([
        "attest",
        "--allow-insecure-registry",
        "--bundle-format",
        format,
    ])
    .args(si.wharf_args())
    .args(["--identity-token", &si.token("")])
    .args(["--type", kind, "--predicate"])
    .arg(predicate)
    .arg(image);
    cmd
}

/// `wharf verify` (or `verify-attestation`, per `subcommand`) with the octo-org identity
/// policy and `si`'s trust.
fn wharf_verify_octo(si: &SigstoreStandIn, subcommand: &str, image: &str) -> Command {
    let mut cmd = wharf_clean();
    cmd.args([subcommand, "--allow-insecure-registry"])
        .args(si.wharf_verify_args())
        .args(["--certificate-identity-regexp", OCTO_IDENTITY_REGEXP])
        .args(["--certificate-oidc-issuer", GITHUB_ISSUER])
        .arg(image);
    cmd
}

/// A small CycloneDX 1.6 SBOM naming `component`, written to `dir/name`.
fn cyclonedx(dir: &Path, name: &str, component: &str) -> PathBuf {
    let doc = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "version": 1,
        "components": [{"type": "library", "name": component, "version": "1.0"}],
    });
    let path = dir.join(name);
    fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    path
}

fn sig_tag(digest: &str) -> String {
    format!("{}.sig", fallback_tag(digest))
}

fn fallback_tag(digest: &str) -> String {
    format!(
        "sha256-{}",
        digest.strip_prefix("sha256:").expect("sha256 digest")
    )
}

/// The fallback referrers index of `digest` (which must exist and be an OCI index).
fn fallback_index(reg: &Registry, name: &str, digest: &str) -> Value {
    let (bytes, content_type) = reg
        .get_manifest(name, &fallback_tag(digest))
        .unwrap_or_else(|| panic!("no fallback tag {} in {name}", fallback_tag(digest)));
    assert_eq!(
        content_type, OCI_INDEX,
        "the fallback tag is not an OCI index"
    );
    let index: Value = serde_json::from_slice(&bytes).expect("fallback index JSON");
    assert_eq!(index["mediaType"], OCI_INDEX, "{index}");
    assert_eq!(index["schemaVersion"], 2, "{index}");
    index
}

/// The descriptors the fallback index of `digest` lists.
fn fallback_entries(reg: &Registry, name: &str, digest: &str) -> Vec<Value> {
    fallback_index(reg, name, digest)["manifests"]
        .as_array()
        .expect("manifests")
        .clone()
}

/// The fallback entry of `digest` whose bundle has `predicate_type`.
fn entry_of_type(reg: &Registry, name: &str, digest: &str, predicate_type: &str) -> Value {
    let entries = fallback_entries(reg, name, digest);
    let found: Vec<&Value> = entries
        .iter()
        .filter(|e| e["annotations"][PREDICATE_TYPE_ANNOTATION] == predicate_type)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {predicate_type} referrer of {digest}: {entries:#?}"
    );
    found[0].clone()
}

/// A referrer manifest by digest, as JSON.
fn manifest_json(reg: &Registry, name: &str, digest: &str) -> Value {
    let (bytes, _) = reg
        .get_manifest(name, digest)
        .unwrap_or_else(|| panic!("no manifest {digest} in {name}"));
    assert_eq!(digest_of(&bytes), digest);
    serde_json::from_slice(&bytes).expect("manifest JSON")
}

/// The bundle blob of referrer `referrer` (its single bundle layer).
fn bundle_bytes(reg: &Registry, name: &str, referrer: &str) -> Vec<u8> {
    let manifest = manifest_json(reg, name, referrer);
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "{manifest}");
    assert_eq!(layers[0]["mediaType"], BUNDLE_MEDIA_TYPE, "{manifest}");
    reg.get_blob(name, layers[0]["digest"].as_str().unwrap())
        .expect("bundle blob")
}

/// `oras discover --plain-http IMAGE --format json`: the referrer descriptors.
fn oras_discover(image: &str) -> Vec<Value> {
    let out = run_ok(
        oras()
            .args(["discover", "--plain-http", "--format", "json"])
            .arg(image),
    );
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("oras discover JSON ({e}): {}", stdout_of(&out)));
    doc["manifests"].as_array().cloned().unwrap_or_default()
}

/// The manifest digests `wharf verify` vouched for: its stdout is a JSON array of payloads,
/// Simple Signing (`.sig`) or in-toto statements (bundles).
fn verified_digests(out: &Output) -> BTreeSet<String> {
    let payloads: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("verify stdout is not JSON ({e}): {}", stdout_of(out)));
    payloads
        .as_array()
        .expect("verify stdout is a JSON array")
        .iter()
        .flat_map(|p| -> Vec<String> {
            if let Some(d) = p["critical"]["image"]["docker-manifest-digest"].as_str() {
                vec![d.to_string()]
            } else {
                assert_eq!(p["predicateType"], SIGN_PREDICATE_TYPE, "{p}");
                subjects(p).into_iter().collect()
            }
        })
        .collect()
}

/// The subject digests of an in-toto statement, as `sha256:<hex>`.
fn subjects(statement: &Value) -> BTreeSet<String> {
    statement["subject"]
        .as_array()
        .expect("subject")
        .iter()
        .map(|s| format!("sha256:{}", s["digest"]["sha256"].as_str().expect("sha256")))
        .collect()
}

/// The statements `wharf verify-attestation` prints: DSSE envelopes, one a line, as cosign
/// prints them.
fn wharf_statements(out: &Output) -> Vec<Value> {
    envelope_statements(out)
}

/// Checks one fallback-index entry and the referrer manifest it names: a Sigstore bundle
/// referrer of `subject` with `predicate_type`.
fn check_referrer(reg: &Registry, name: &str, subject: &str, entry: &Value, predicate_type: &str) {
    assert_eq!(entry["mediaType"], OCI_MANIFEST, "{entry}");
    assert_eq!(entry["artifactType"], BUNDLE_MEDIA_TYPE, "{entry}");
    let annotations = &entry["annotations"];
    assert_eq!(annotations[CONTENT_ANNOTATION], "dsse-envelope", "{entry}");
    assert_eq!(
        annotations[PREDICATE_TYPE_ANNOTATION], predicate_type,
        "{entry}"
    );
    let created = annotations[CREATED_ANNOTATION]
        .as_str()
        .expect("created annotation");
    assert!(
        created.len() == 20 && created.ends_with('Z') && created.as_bytes()[10] == b'T',
        "created is not RFC 3339 UTC: {created}"
    );

    let referrer = entry["digest"].as_str().unwrap();
    let (bytes, content_type) = reg.get_manifest(name, referrer).expect("referrer manifest");
    assert_eq!(content_type, OCI_MANIFEST);
    assert_eq!(entry["size"], bytes.len(), "{entry}");
    let manifest: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(manifest["mediaType"], OCI_MANIFEST, "{manifest}");
    assert_eq!(manifest["artifactType"], BUNDLE_MEDIA_TYPE, "{manifest}");
    assert_eq!(manifest["annotations"], entry["annotations"], "{manifest}");

    // The subject is exactly the signed manifest.
    let (subject_bytes, subject_type) = reg.get_manifest(name, subject).expect("subject");
    assert_eq!(manifest["subject"]["digest"], subject, "{manifest}");
    assert_eq!(
        manifest["subject"]["mediaType"],
        subject_type.as_str(),
        "{manifest}"
    );
    assert_eq!(
        manifest["subject"]["size"],
        subject_bytes.len(),
        "{manifest}"
    );

    // The empty config and one bundle layer.
    assert_eq!(manifest["config"]["mediaType"], OCI_EMPTY, "{manifest}");
    assert_eq!(manifest["config"]["digest"], digest_of(b"{}"), "{manifest}");
    assert_eq!(manifest["config"]["size"], 2, "{manifest}");
    assert_eq!(
        reg.get_blob(name, manifest["config"]["digest"].as_str().unwrap()),
        Some(b"{}".to_vec())
    );
    let bundle: Value = serde_json::from_slice(&bundle_bytes(reg, name, referrer)).unwrap();
    assert_eq!(bundle["mediaType"], BUNDLE_MEDIA_TYPE, "{bundle}");
    let envelope = &bundle["dsseEnvelope"];
    assert_eq!(envelope["payloadType"], "application/vnd.in-toto+json");
    let statement: Value =
        serde_json::from_slice(&B64.decode(envelope["payload"].as_str().unwrap()).unwrap())
            .unwrap();
    assert_eq!(statement["predicateType"], predicate_type, "{statement}");
    assert_eq!(subjects(&statement), BTreeSet::from([subject.to_string()]));
}

/// A registry and a stand-in with `app` (two platforms) signed keylessly with `wharf sign
/// --recursive --bundle-format bundle` and its index attested (CycloneDX) the same way.
struct Bundled {
    reg: Registry,
    si: SigstoreStandIn,
    img: Pushed,
    dir: TempDir,
    sbom: PathBuf,
}

fn bundled(seed: u64) -> Bundled {
    let si = SigstoreStandIn::start();
    let reg = Registry::start();
    si.burn_log_index_zero(&reg);
    let dir = tempdir();
    let img = push_to(&reg, "app", TWO, seed);
    let sbom = cyclonedx(dir.path(), "sbom.cdx.json", "zlib");
    run_ok(wharf_sign_keyless(&si, &img.index(), "bundle").arg("--recursive"));
    run_ok(&mut wharf_attest_keyless(
        &si,
        &img.index(),
        "bundle",
        "cyclonedx",
        &sbom,
    ));
    Bundled {
        reg,
        si,
        img,
        dir,
        sbom,
    }
}

// ---------------------------------------------------------------------------------------
// What is written
// ---------------------------------------------------------------------------------------

#[test]
fn keyless_bundles_are_oci_referrers_with_a_fallback_index() {
    let Bundled {
        reg, si: _si, img, ..
    } = bundled(1);

    // distribution 2.8 has no referrers API: the fallback tag is what makes them findable.
    let resp = reg.request(
        "GET",
        &format!("/v2/{}/referrers/{}", img.name, img.digest),
        &[("Accept", OCI_INDEX)],
        b"",
    );
    assert_eq!(
        resp.status, 404,
        "the registry has a referrers API after all"
    );

    // Bundle format only: no cosign tags.
    let tags = reg.tags(&img.name);
    assert!(
        tags.iter()
            .all(|t| !t.ends_with(".sig") && !t.ends_with(".att")),
        "{tags:?}"
    );
    for digest in img.all_digests() {
        assert!(tags.contains(&fallback_tag(&digest)), "{tags:?}");
    }

    // oras finds them: two on the index (signature and SBOM), one on each platform.
    for digest in img.all_digests() {
        let found = oras_discover(&img.at(&digest));
        let expected = if digest == img.digest { 2 } else { 1 };
        assert_eq!(found.len(), expected, "{digest}: {found:#?}");
        for r in &found {
            assert_eq!(r["artifactType"], BUNDLE_MEDIA_TYPE, "{r}");
        }
        let types: BTreeSet<&str> = found
            .iter()
            .map(|r| {
                r["annotations"][PREDICATE_TYPE_ANNOTATION]
                    .as_str()
                    .unwrap()
            })
            .collect();
        let mut want = BTreeSet::from([SIGN_PREDICATE_TYPE]);
        if digest == img.digest {
            want.insert(CYCLONEDX);
        }
        assert_eq!(types, want);

        // And the fallback index and the referrer manifests have the expected shape.
        let entries = fallback_entries(&reg, &img.name, &digest);
        assert_eq!(entries.len(), expected, "{entries:#?}");
        let listed: BTreeSet<&str> = entries
            .iter()
            .map(|e| e["digest"].as_str().unwrap())
            .collect();
        let discovered: BTreeSet<&str> = found
            .iter()
            .map(|e| e["digest"].as_str().unwrap())
            .collect();
        assert_eq!(listed, discovered);
        for t in want {
            let entry = entry_of_type(&reg, &img.name, &digest, t);
            check_referrer(&reg, &img.name, &digest, &entry, t);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Independent verification
// ---------------------------------------------------------------------------------------

/// `cosign verify-blob-attestation --new-bundle-format --trusted-root …` with none of the
/// `SIGSTORE_*` variables and an empty TUF root: the trusted root alone.
fn cosign_verify_blob_attestation(
    si: &SigstoreStandIn,
    tuf: &Path,
    bundle: &Path,
    kind: &str,
    file: &Path,
) -> Command {
    let mut cmd = cosign_plain();
    cmd.env("TUF_ROOT", tuf)
        .args(["verify-blob-attestation", "--new-bundle-format"])
        .args(["--bundle", s(bundle), "--trusted-root", s(&si.trusted_root)])
        .args(["--type", kind])
        .args(["--certificate-identity-regexp", OCTO_IDENTITY_REGEXP])
        .args(["--certificate-oidc-issuer", GITHUB_ISSUER])
        .arg(file);
    cmd
}

#[test]
fn bundles_verify_in_sigstore_python_and_cosign() {
    let Bundled {
        reg,
        si,
        img,
        dir,
        sbom,
    } = bundled(2);
    let tuf = dir.path().join("tuf");
    fs::create_dir_all(&tuf).unwrap();

    // The subject: the index manifest's exact bytes.
    let (manifest_bytes, _) = reg.get_manifest(&img.name, &img.digest).unwrap();
    assert_eq!(digest_of(&manifest_bytes), img.digest);
    let manifest_file = dir.path().join("index.json");
    fs::write(&manifest_file, &manifest_bytes).unwrap();
    let tampered_file = dir.path().join("index-tampered.json");
    let mut tampered = manifest_bytes.clone();
    tampered.push(b'\n');
    fs::write(&tampered_file, &tampered).unwrap();

    for (predicate_type, kind) in [
        (CYCLONEDX, "cyclonedx"),
        (SIGN_PREDICATE_TYPE, SIGN_PREDICATE_TYPE),
    ] {
        let entry = entry_of_type(&reg, &img.name, &img.digest, predicate_type);
        let bundle = dir
            .path()
            .join(format!("{kind}.sigstore.json").replace(['/', ':'], "_"));
        fs::write(
            &bundle,
            bundle_bytes(&reg, &img.name, entry["digest"].as_str().unwrap()),
        )
        .unwrap();

        // sigstore-python: the right identity passes, prints the statement; others fail.
        let out = run_ok(&mut si.sigstore_python_verify(&bundle, &si.identity, &manifest_file));
        assert!(
            format!("{}{}", stdout_of(&out), stderr_of(&out)).contains("OK"),
            "{}",
            stderr_of(&out)
        );
        let out = run_fail(&mut si.sigstore_python_verify(
            &bundle,
            "https://github.com/evil/repo/.github/workflows/release.yml@refs/heads/main",
            &manifest_file,
        ));
        assert!(
            stderr_of(&out).contains("SANs do not match"),
            "{}",
            stderr_of(&out)
        );
        run_fail(&mut si.sigstore_python_verify(&bundle, &si.identity, &tampered_file));

        // cosign, from the trusted root alone.
        run_ok(&mut cosign_verify_blob_attestation(
            &si,
            &tuf,
            &bundle,
            kind,
            &manifest_file,
        ));
        run_fail(&mut cosign_verify_blob_attestation(
            &si,
            &tuf,
            &bundle,
            kind,
            &tampered_file,
        ));
        if predicate_type == CYCLONEDX {
            // The predicate in the bundle is the SBOM.
            let out = run_ok(&mut si.sigstore_python_verify(&bundle, &si.identity, &manifest_file));
            let printed = stdout_of(&out);
            // sigstore-python prints the verified statement (its predicate as signed, so
            // over several lines) on stdout.
            if let Some(start) = printed.find('{') {
                let statement: Value = serde_json::Deserializer::from_str(&printed[start..])
                    .into_iter::<Value>()
                    .next()
                    .expect("a statement")
                    .expect("the statement sigstore-python printed is JSON");
                let original: Value = serde_json::from_slice(&fs::read(&sbom).unwrap()).unwrap();
                assert_eq!(statement["predicate"], original);
            }
            // (cosign 2.5's verify-blob-attestation ignores --type with --new-bundle-format:
            // a wrong type is no negative check there.)
        }
    }

    // cosign 2.5 also finds and verifies the SBOM bundle on the image itself (its OCI
    // referrer lookup, --new-bundle-format with the trusted root).
    let out = run_ok(
        cosign_si(&si)
            .args([
                "verify-attestation",
                "--new-bundle-format",
                "--allow-insecure-registry",
            ])
            .args(["--trusted-root", s(&si.trusted_root), "--type", "cyclonedx"])
            .args(["--certificate-identity-regexp", OCTO_IDENTITY_REGEXP])
            .args(["--certificate-oidc-issuer", GITHUB_ISSUER])
            .arg(img.index()),
    );
    assert!(stdout_of(&out).contains("payload"), "{}", stdout_of(&out));
}

// ---------------------------------------------------------------------------------------
// wharf reads bundles
// ---------------------------------------------------------------------------------------

#[test]
fn wharf_verifies_an_image_signed_only_with_bundles() {
    let Bundled {
        reg: _reg,
        si,
        img,
        sbom,
        dir: _dir,
    } = bundled(3);

    let out = run_ok(wharf_verify_octo(&si, "verify", &img.index()).arg("--recursive"));
    assert_eq!(
        verified_digests(&out),
        img.all_digests().into_iter().collect::<BTreeSet<_>>()
    );
    for (_, child) in &img.children {
        let out = run_ok(&mut wharf_verify_octo(&si, "verify", &img.at(child)));
        assert_eq!(verified_digests(&out), BTreeSet::from([child.clone()]));
    }

    let out = run_ok(
        wharf_verify_octo(&si, "verify-attestation", &img.index()).args(["--type", "cyclonedx"]),
    );
    let statements = wharf_statements(&out);
    assert_eq!(statements.len(), 1, "{}", stdout_of(&out));
    assert_eq!(statements[0]["predicateType"], CYCLONEDX);
    assert_eq!(
        subjects(&statements[0]),
        BTreeSet::from([img.digest.clone()])
    );
    assert_eq!(
        statements[0]["predicate"],
        serde_json::from_slice::<Value>(&fs::read(&sbom).unwrap()).unwrap()
    );

    // The policy still applies to bundles.
    let out = run_fail(
        wharf_clean()
            .args(["verify", "--allow-insecure-registry", "--recursive"])
            .args(si.wharf_verify_args())
            .args([
                "--certificate-identity-regexp",
                "https://github.com/other/.*",
            ])
            .args(["--certificate-oidc-issuer", GITHUB_ISSUER])
            .arg(img.index()),
    );
    assert!(
        error_line(&out).contains("wrong identity"),
        "{}",
        error_line(&out)
    );
    // A platform has no SBOM bundle.
    let child = &img.children[0].1;
    let out = run_fail(
        wharf_verify_octo(&si, "verify-attestation", &img.at(child)).args(["--type", "cyclonedx"]),
    );
    assert!(
        error_line(&out).contains(child.as_str()),
        "{}",
        error_line(&out)
    );
}

#[test]
fn bundle_format_both_writes_the_sig_tag_and_the_referrer() {
    let si = SigstoreStandIn::start();
    let reg = Registry::start();
    let img = push_to(&reg, "app", TWO, 4);
    run_ok(wharf_sign_keyless(&si, &img.index(), "both").arg("--recursive"));

    for digest in img.all_digests() {
        assert!(
            reg.get_manifest(&img.name, &sig_tag(&digest)).is_some(),
            "no .sig for {digest}"
        );
        let entry = entry_of_type(&reg, &img.name, &digest, SIGN_PREDICATE_TYPE);
        check_referrer(&reg, &img.name, &digest, &entry, SIGN_PREDICATE_TYPE);
    }
    // cosign 2.x reads the tag scheme...
    for digest in img.all_digests() {
        run_ok(
            cosign_si(&si)
                .args([
                    "verify",
                    "--allow-insecure-registry",
                    "--rekor-url",
                    &si.rekor_url,
                ])
                .args(["--certificate-identity-regexp", OCTO_IDENTITY_REGEXP])
                .args(["--certificate-oidc-issuer", GITHUB_ISSUER])
                .arg(img.at(&digest)),
        );
    }
    let out = run_ok(wharf_verify_octo(&si, "verify", &img.index()).arg("--recursive"));
    assert_eq!(
        verified_digests(&out),
        img.all_digests().into_iter().collect::<BTreeSet<_>>()
    );

    // ...and wharf still verifies from the bundles alone once the .sig manifests are gone.
    for digest in img.all_digests() {
        let sig = reg.manifest_digest(&img.name, &sig_tag(&digest)).unwrap();
        assert!(reg.delete_manifest(&img.name, &sig));
        assert!(reg.get_manifest(&img.name, &sig_tag(&digest)).is_none());
    }
    let out = run_ok(wharf_verify_octo(&si, "verify", &img.index()).arg("--recursive"));
    assert_eq!(
        verified_digests(&out),
        img.all_digests().into_iter().collect::<BTreeSet<_>>()
    );
}

#[test]
fn key_bundles_verify_with_the_key() {
    let reg = Registry::start();
    let dir = tempdir();
    let Key { private, public } = openssl_key(dir.path(), "k");
    let Key {
        private: _,
        public: other_public,
    } = openssl_key(dir.path(), "other");
    let img = push_to(&reg, "app", TWO, 5);
    let sbom = cyclonedx(dir.path(), "sbom.json", "zlib");

    let out = run_ok(
        wharf_clean()
            .args([
                "sign",
                "--allow-insecure-registry",
                "--recursive",
                "--bundle-format",
                "bundle",
            ])
            .args(["--key", s(&private), "--tlog-upload=false"])
            .arg(img.index()),
    );
    assert_eq!(
        stdout_of(&out).matches("signed ").count(),
        3,
        "{}",
        stdout_of(&out)
    );
    run_ok(
        wharf_clean()
            .args([
                "attest",
                "--allow-insecure-registry",
                "--bundle-format",
                "bundle",
            ])
            .args(["--key", s(&private), "--tlog-upload=false"])
            .args(["--type", "cyclonedx", "--predicate", s(&sbom)])
            .arg(img.index()),
    );
    let tags = reg.tags(&img.name);
    assert!(
        tags.iter()
            .all(|t| !t.ends_with(".sig") && !t.ends_with(".att")),
        "{tags:?}"
    );

    // A key bundle carries a key hint, not a certificate, and no log entry.
    let entry = entry_of_type(&reg, &img.name, &img.digest, SIGN_PREDICATE_TYPE);
    check_referrer(&reg, &img.name, &img.digest, &entry, SIGN_PREDICATE_TYPE);
    let bundle: Value = serde_json::from_slice(&bundle_bytes(
        &reg,
        &img.name,
        entry["digest"].as_str().unwrap(),
    ))
    .unwrap();
    let material = &bundle["verificationMaterial"];
    assert!(material.get("certificate").is_none(), "{material}");
    assert!(material["publicKey"]["hint"].is_string(), "{material}");
    assert_eq!(material["tlogEntries"], json!([]), "{material}");

    let verify = |key: &Path, extra: &[&str]| {
        let mut cmd = wharf_clean();
        cmd.args([
            "verify",
            "--allow-insecure-registry",
            "--recursive",
            "--key",
            s(key),
        ])
        .args(extra)
        .arg(img.index());
        cmd
    };
    let out = run_ok(&mut verify(&public, &["--insecure-ignore-tlog"]));
    assert_eq!(
        verified_digests(&out),
        img.all_digests().into_iter().collect::<BTreeSet<_>>()
    );
    let out = run_fail(&mut verify(&other_public, &["--insecure-ignore-tlog"]));
    let wrong_key = error_line(&out);
    // No log entry: refused unless the tlog is waived.
    let out = run_fail(&mut verify(&public, &[]));
    let no_tlog = error_line(&out);
    assert!(no_tlog.contains("transparency log"), "{no_tlog}");
    assert_ne!(wrong_key, no_tlog);

    let out = run_ok(
        wharf_clean()
            .args([
                "verify-attestation",
                "--allow-insecure-registry",
                "--type",
                "cyclonedx",
            ])
            .args(["--key", s(&public), "--insecure-ignore-tlog"])
            .arg(img.index()),
    );
    assert_eq!(wharf_statements(&out).len(), 1);

    // A rerun with the same key adds no referrer.
    let before = fallback_entries(&reg, &img.name, &img.digest);
    let out = run_ok(
        wharf_clean()
            .args([
                "attest",
                "--allow-insecure-registry",
                "--bundle-format",
                "bundle",
            ])
            .args(["--key", s(&private), "--tlog-upload=false"])
            .args(["--type", "cyclonedx", "--predicate", s(&sbom)])
            .arg(img.index()),
    );
    assert!(
        stdout_of(&out).starts_with("already present"),
        "{}",
        stdout_of(&out)
    );
    assert_eq!(fallback_entries(&reg, &img.name, &img.digest), before);
}

// ---------------------------------------------------------------------------------------
// Bundles written by cosign
// ---------------------------------------------------------------------------------------

#[test]
fn cosign_new_bundle_format_attestation_verifies_in_wharf() {
    let si = SigstoreStandIn::start();
    let reg = Registry::start();
    let dir = tempdir();
    let img = push_to(&reg, "app", TWO, 6);
    let child = img.children[0].1.clone();
    let sbom = cyclonedx(dir.path(), "sbom.json", "openssl");

    // See SigstoreStandIn::burn_log_index_zero.
    si.burn_log_index_zero(&reg);

    // cosign 2.5 writes a new-format bundle to the image with the stand-in's SIGSTORE_*
    // trust (no TUF needed to write).
    run_ok(
        cosign_si(&si)
            .args([
                "attest",
                "-y",
                "--new-bundle-format",
                "--allow-insecure-registry",
            ])
            .args(["--fulcio-url", &si.fulcio_url, "--rekor-url", &si.rekor_url])
            .args(["--identity-token", &si.token("")])
            .args(["--type", "cyclonedx", "--predicate", s(&sbom)])
            .arg(img.at(&child)),
    );
    // What cosign 2.5 wrote: a referrer manifest with artifactType and subject, listed in the
    // fallback index. Its index entry's artifactType is the config's media type (the empty
    // type), not the bundle type: go-containerregistry's fallback writes it that way.
    let entries = fallback_entries(&reg, &img.name, &child);
    assert_eq!(entries.len(), 1, "{entries:#?}");
    let referrer = manifest_json(&reg, &img.name, entries[0]["digest"].as_str().unwrap());
    assert_eq!(referrer["artifactType"], BUNDLE_MEDIA_TYPE, "{referrer}");
    assert_eq!(referrer["subject"]["digest"], child.as_str(), "{referrer}");
    assert_eq!(
        referrer["layers"][0]["mediaType"], BUNDLE_MEDIA_TYPE,
        "{referrer}"
    );
    // cosign itself verifies it.
    run_ok(
        cosign_si(&si)
            .args([
                "verify-attestation",
                "--new-bundle-format",
                "--allow-insecure-registry",
            ])
            .args(["--trusted-root", s(&si.trusted_root), "--type", "cyclonedx"])
            .args(["--certificate-identity-regexp", OCTO_IDENTITY_REGEXP])
            .args(["--certificate-oidc-issuer", GITHUB_ISSUER])
            .arg(img.at(&child)),
    );

    // wharf finds and verifies it. (It must look past the index entry's artifactType, which
    // cosign 2.5 sets to the empty config type, to the manifest's own artifactType or its
    // bundle layer.)
    let out = run_ok(
        wharf_verify_octo(&si, "verify-attestation", &img.at(&child)).args(["--type", "cyclonedx"]),
    );
    let statements = wharf_statements(&out);
    assert_eq!(statements.len(), 1, "{}", stdout_of(&out));
    assert_eq!(subjects(&statements[0]), BTreeSet::from([child.clone()]));
    assert_eq!(
        statements[0]["predicate"],
        serde_json::from_slice::<Value>(&fs::read(&sbom).unwrap()).unwrap()
    );
}

// ---------------------------------------------------------------------------------------
// wharf tree
// ---------------------------------------------------------------------------------------

#[test]
fn tree_lists_sig_att_and_bundle_referrers() {
    let reg = Registry::start();
    let dir = tempdir();
    let Key {
        private,
        public: _public,
    } = openssl_key(dir.path(), "k");
    let img = push_to(&reg, "app", TWO, 7);
    let sbom = cyclonedx(dir.path(), "sbom.json", "zlib");
    let key_args = [
        "--key",
        s(&private),
        "--tlog-upload=false",
        "--allow-insecure-registry",
    ];

    run_ok(
        wharf_clean()
            .args(["sign", "--recursive"])
            .args(key_args)
            .arg(img.index()),
    );
    run_ok(
        wharf_clean()
            .args(["sign", "--recursive", "--bundle-format", "bundle"])
            .args(key_args)
            .arg(img.index()),
    );
    run_ok(
        wharf_clean()
            .args([
                "attest",
                "--bundle-format",
                "both",
                "--type",
                "cyclonedx",
                "--predicate",
                s(&sbom),
            ])
            .args(key_args)
            .arg(img.index()),
    );

    let out = run_ok(
        wharf_clean()
            .args(["tree", "--allow-insecure-registry"])
            .arg(img.index()),
    );
    let text = stdout_of(&out);
    assert!(text.starts_with(&format!("{}\n", img.index())), "{text}");
    let hex = img.digest.strip_prefix("sha256:").unwrap();
    let sig_line = text
        .lines()
        .find(|l| l.contains(&format!("sha256-{hex}.sig")))
        .unwrap_or_else(|| panic!("no .sig line:\n{text}"));
    assert!(
        sig_line.contains("signature") && sig_line.contains("1 layer(s)"),
        "{sig_line}"
    );
    let att_line = text
        .lines()
        .find(|l| l.contains(&format!("sha256-{hex}.att")))
        .unwrap_or_else(|| panic!("no .att line:\n{text}"));
    assert!(
        att_line.contains("attestation") && att_line.contains(CYCLONEDX),
        "{att_line}"
    );
    let referrer_lines: Vec<&str> = text.lines().filter(|l| l.contains("referrer")).collect();
    // Index: signature + SBOM bundles; each platform: a signature bundle.
    assert_eq!(referrer_lines.len(), 4, "{text}");
    for l in &referrer_lines {
        assert!(l.contains(BUNDLE_MEDIA_TYPE), "{l}");
    }
    for (platform, digest) in &img.children {
        assert!(text.contains(&format!("{digest} ({platform})")), "{text}");
    }
    let sbom_referrer = entry_of_type(&reg, &img.name, &img.digest, CYCLONEDX);
    assert!(
        referrer_lines
            .iter()
            .any(|l| l.contains(sbom_referrer["digest"].as_str().unwrap())
                && l.contains(&format!("({CYCLONEDX})"))),
        "{text}"
    );

    let out = run_ok(
        wharf_clean()
            .args(["tree", "--allow-insecure-registry", "--output", "json"])
            .arg(img.index()),
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("tree JSON");
    assert_eq!(report["digest"], img.digest.as_str());
    let manifests = report["manifests"].as_array().expect("manifests");
    assert_eq!(manifests.len(), 3);
    for m in manifests {
        let digest = m["digest"].as_str().unwrap();
        let kinds: Vec<&str> = m["attachments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["kind"].as_str().unwrap())
            .collect();
        let referrers = kinds.iter().filter(|k| **k == "referrer").count();
        if digest == img.digest {
            assert!(m["platform"].is_null());
            assert!(
                kinds.contains(&"signature") && kinds.contains(&"attestation"),
                "{m}"
            );
            assert_eq!(referrers, 2, "{m}");
        } else {
            assert!(m["platform"].is_string(), "{m}");
            assert!(
                kinds.contains(&"signature") && !kinds.contains(&"attestation"),
                "{m}"
            );
            assert_eq!(referrers, 1, "{m}");
        }
        for a in m["attachments"].as_array().unwrap() {
            if a["kind"] == "referrer" {
                assert!(
                    a["detail"].as_str().unwrap().starts_with(BUNDLE_MEDIA_TYPE),
                    "{a}"
                );
                assert!(
                    a["reference"].as_str().unwrap().starts_with("sha256:"),
                    "{a}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Concurrent writers
// ---------------------------------------------------------------------------------------

#[test]
fn eight_concurrent_bundle_attestations_all_land_in_the_fallback_index() {
    let reg = Registry::start();
    let dir = tempdir();
    let Key { private, public } = openssl_key(dir.path(), "k");
    let img = push_to(&reg, "app", TWO, 8);
    let predicates: Vec<PathBuf> = (0..8)
        .map(|i| {
            let path = dir.path().join(format!("p{i}.json"));
            fs::write(
                &path,
                format!("{{\"writer\": {i}, \"note\": \"concurrent bundle {i}\"}}"),
            )
            .unwrap();
            path
        })
        .collect();

    let children: Vec<_> = predicates
        .iter()
        .map(|p| {
            wharf_clean()
                .args([
                    "attest",
                    "--allow-insecure-registry",
                    "--bundle-format",
                    "bundle",
                ])
                .args(["--key", s(&private), "--tlog-upload=false"])
                .args(["--type", "custom", "--predicate", s(p)])
                .arg(img.index())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn wharf attest")
        })
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().expect("wait for wharf attest");
        assert!(
            out.status.success(),
            "writer {i} failed: {}\n{}",
            stdout_of(&out),
            stderr_of(&out)
        );
    }

    let entries = fallback_entries(&reg, &img.name, &img.digest);
    let digests: Vec<&str> = entries
        .iter()
        .map(|e| e["digest"].as_str().unwrap())
        .collect();
    let unique: BTreeSet<&str> = digests.iter().copied().collect();
    assert_eq!(digests.len(), 8, "{entries:#?}");
    assert_eq!(
        unique.len(),
        8,
        "duplicates in the fallback index: {entries:#?}"
    );
    for entry in &entries {
        check_referrer(&reg, &img.name, &img.digest, entry, CUSTOM);
    }
    // oras sees all eight, and wharf verifies all eight predicates.
    assert_eq!(oras_discover(&img.index()).len(), 8);
    let out = run_ok(
        wharf_clean()
            .args([
                "verify-attestation",
                "--allow-insecure-registry",
                "--type",
                "custom",
            ])
            .args(["--key", s(&public), "--insecure-ignore-tlog"])
            .arg(img.index()),
    );
    let writers: BTreeSet<i64> = wharf_statements(&out)
        .iter()
        .map(|st| st["predicate"]["writer"].as_i64().expect("writer"))
        .collect();
    assert_eq!(writers, (0..8).collect());
}

// ---------------------------------------------------------------------------------------
// A registry that refuses referrers
// ---------------------------------------------------------------------------------------

#[test]
fn refused_subject_falls_back_to_a_referrer_without_subject() {
    let reg = Registry::start();
    let dir = tempdir();
    let Key { private, public } = openssl_key(dir.path(), "k");
    let img = push_to(&reg, "app", TWO, 9);
    let proxy = Proxy::start_with_manifest_rule(
        reg.addr(),
        proxy::forward_all(),
        proxy::refuse_manifests_with_subject(400),
    );

    let out = run_ok(
        wharf_clean()
            .args([
                "sign",
                "--allow-insecure-registry",
                "--recursive",
                "--bundle-format",
                "bundle",
            ])
            .args(["--key", s(&private), "--tlog-upload=false"])
            .arg(img.via(proxy.addr(), &img.digest)),
    );
    assert_eq!(
        stdout_of(&out).matches("signed ").count(),
        3,
        "{}",
        stdout_of(&out)
    );
    assert_eq!(
        proxy.count("400"),
        3,
        "one refused referrer per manifest: {:#?}",
        proxy.records()
    );

    for digest in img.all_digests() {
        let entries = fallback_entries(&reg, &img.name, &digest);
        assert_eq!(entries.len(), 1, "{entries:#?}");
        let entry = &entries[0];
        // The index entry still says what it is...
        assert_eq!(entry["artifactType"], BUNDLE_MEDIA_TYPE, "{entry}");
        assert_eq!(
            entry["annotations"][PREDICATE_TYPE_ANNOTATION],
            SIGN_PREDICATE_TYPE
        );
        // ...the manifest has no subject, and still holds the bundle.
        let manifest = manifest_json(&reg, &img.name, entry["digest"].as_str().unwrap());
        assert!(manifest.get("subject").is_none(), "{manifest}");
        assert_eq!(manifest["config"]["mediaType"], OCI_EMPTY, "{manifest}");
        let bundle: Value = serde_json::from_slice(&bundle_bytes(
            &reg,
            &img.name,
            entry["digest"].as_str().unwrap(),
        ))
        .unwrap();
        let statement: Value = serde_json::from_slice(
            &B64.decode(bundle["dsseEnvelope"]["payload"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(subjects(&statement), BTreeSet::from([digest.clone()]));
    }

    // Verification through the same registry finds them through the fallback index.
    let out = run_ok(
        wharf_clean()
            .args(["verify", "--allow-insecure-registry", "--recursive"])
            .args(["--key", s(&public), "--insecure-ignore-tlog"])
            .arg(img.via(proxy.addr(), &img.digest)),
    );
    assert_eq!(
        verified_digests(&out),
        img.all_digests().into_iter().collect::<BTreeSet<_>>()
    );
    let found = oras_discover(&img.via(proxy.addr(), &img.digest));
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0]["artifactType"], BUNDLE_MEDIA_TYPE);
}

// ---------------------------------------------------------------------------------------
// Mirroring
// ---------------------------------------------------------------------------------------

#[test]
fn mirror_copies_bundle_referrers() {
    let Bundled { reg, si, img, .. } = bundled(10);
    let dest = Registry::start();

    run_ok(
        wharf_clean()
            .args(["mirror", "--allow-insecure-registry"])
            .arg(img.index())
            .arg(dest.repo(&img.name)),
    );

    for digest in img.all_digests() {
        // The same referrers, byte for byte, listed by the same fallback index.
        let src = reg.get_manifest(&img.name, &fallback_tag(&digest)).unwrap();
        let dst = dest
            .get_manifest(&img.name, &fallback_tag(&digest))
            .unwrap_or_else(|| panic!("no fallback index for {digest} at the mirror"));
        assert_eq!(
            digest_of(&dst.0),
            digest_of(&src.0),
            "the fallback index changed:\n{}\n{}",
            String::from_utf8_lossy(&src.0),
            String::from_utf8_lossy(&dst.0)
        );
        for entry in fallback_entries(&dest, &img.name, &digest) {
            let r = entry["digest"].as_str().unwrap();
            assert_eq!(
                dest.get_manifest(&img.name, r).map(|m| m.0),
                reg.get_manifest(&img.name, r).map(|m| m.0)
            );
            check_referrer(
                &dest,
                &img.name,
                &digest,
                &entry,
                entry["annotations"][PREDICATE_TYPE_ANNOTATION]
                    .as_str()
                    .unwrap(),
            );
        }
        let found = oras_discover(&img.via(dest.addr(), &digest));
        let expected = if digest == img.digest { 2 } else { 1 };
        assert_eq!(found.len(), expected, "{found:#?}");
    }

    let out = run_ok(
        wharf_verify_octo(&si, "verify", &img.via(dest.addr(), &img.digest)).arg("--recursive"),
    );
    assert_eq!(
        verified_digests(&out),
        img.all_digests().into_iter().collect::<BTreeSet<_>>()
    );
    run_ok(
        wharf_verify_octo(
            &si,
            "verify-attestation",
            &img.via(dest.addr(), &img.digest),
        )
        .args(["--type", "cyclonedx"]),
    );
}
