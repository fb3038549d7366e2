//! `wharf attest` and `wharf verify-attestation` end to end, against real registries, the real
//! cosign and the loopback Sigstore stand-in (`tests/sigstore-stand-in`):
//!
//! - key attestations (CycloneDX, SLSA provenance v1 from `wharf provenance generate`) on an
//!   index and on one platform's manifest verify in cosign; keyless ones and key ones logged
//!   in Rekor verify in both tools; cosign's attestations (key and keyless) verify in wharf.
//! - the predicate comes back exactly as given (`--output-predicate`, `cosign download
//!   attestation`); predicates that are not what `--type` says are refused before anything is
//!   written.
//! - `--replace`, appending another type and reruns; `--recursive` verification naming the
//!   platform that lacks an attestation.
//! - tampering (altered payload, an attestation copied from another image, the wrong predicate
//!   type) fails with its own message, and in cosign too.
//! - `wharf sbom generate` on an OCI layout produces a CycloneDX document that attests,
//!   verifies and validates against the official CycloneDX 1.5 schema.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use common::keys::{cosign_key, openssl_key, wharf_key, Key};
use common::standin::SigstoreStandIn;
use common::*;
use serde_json::{json, Value};

const PASSWORD: &str = "attest-test-password-93be";
const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";
const OCTO_IDENTITY_REGEXP: &str = "https://github.com/octo-org/octo-repo/.*";

const CYCLONEDX: &str = "https://cyclonedx.org/bom";
const SLSA1: &str = "https://slsa.dev/provenance/v1";
const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";

const TWO: &[&str] = &["linux/amd64", "linux/arm64"];
const THREE: &[&str] = &["linux/amd64", "linux/arm64", "linux/arm/v7"];

/// A CycloneDX 1.6 SBOM as a person (or a tool with its own printer) might write it: tabs,
/// spaces before colons, runs of blanks, a `\u` escape, a number with a trailing zero, key
/// order no serialiser would choose, and a final newline. Any re-serialisation changes its
/// bytes. (The `cyclonedx-bom` crate cannot parse 1.6 documents, so wharf must not need to.)
const ODD_CYCLONEDX: &str = "{\n\t\"specVersion\" :   \"1.6\",\n  \"bomFormat\":\"CycloneDX\",\n\n    \"serialNumber\" : \"urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79\",\n  \"version\":1,\n  \"metadata\" : {\n\t\t\"lifecycles\" : [ { \"phase\" : \"build\" } ],\n\t\t\"component\": {\"type\":\"container\", \"name\" : \"caf\\u00e9-app\", \"version\": \"1.50\"}\n  },\n  \"components\" : [\n    {   \"type\" : \"library\" ,  \"name\":\"zlib\", \"version\" : \"1.3.1\",\n        \"purl\": \"pkg:generic/zlib@1.3.1\", \"x-score\": 1.50 }\n  ]\n}\n";

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// `wharf attest --allow-insecure-registry --key K --tlog-upload=false --type T --predicate P IMAGE`.
fn wharf_attest_key(key: &Key, image: &str, kind: &str, predicate: &Path) -> Command {
    let mut cmd = wharf_clean();
    cmd.args([
        "attest",
        "--allow-insecure-registry",
        "--key",
        key.private(),
    ])
    .args(["--tlog-upload=false", "--type", kind, "--predicate"])
    .arg(predicate)
    .arg(image)
    .env("WHARF_PASSWORD", PASSWORD);
    cmd
}

/// `wharf verify-attestation --allow-insecure-registry --key K.pub --insecure-ignore-tlog --type T IMAGE`.
fn wharf_verify_att_key(key: &Key, image: &str, kind: &str) -> Command {
    let mut cmd = wharf_clean();
    cmd.args(["verify-attestation", "--allow-insecure-registry"])
        .args(["--key", key.public(), "--insecure-ignore-tlog"])
        .args(["--type", kind])
        .arg(image);
    cmd
}

/// `cosign verify-attestation --key K.pub --insecure-ignore-tlog=true --type T IMAGE`.
fn cosign_verify_att_key(key: &Key, image: &str, kind: &str) -> Command {
    let mut cmd = cosign();
    cmd.args(["verify-attestation", "--allow-insecure-registry"])
        .args(["--key", key.public(), "--insecure-ignore-tlog=true"])
        .args(["--type", kind, image]);
    cmd
}

/// Keyless `wharf attest` against `si` with a fresh default token.
fn wharf_attest_keyless(
    si: &SigstoreStandIn,
    image: &str,
    kind: &str,
    predicate: &Path,
) -> Command {
    let mut cmd = wharf_clean();
    cmd.args(["attest", "--allow-insecure-registry"])
        .args(si.wharf_args())
        .args(["--identity-token", &si.token("")])
        .args(["--type", kind, "--predicate"])
        .arg(predicate)
        .arg(image);
    cmd
}

/// `wharf verify-attestation` with the octo-org identity policy and `si`'s trust.
fn wharf_verify_att_octo(si: &SigstoreStandIn, image: &str, kind: &str) -> Command {
    let mut cmd = wharf_clean();
    cmd.args(["verify-attestation", "--allow-insecure-registry"])
        .args(si.wharf_verify_args())
        .args(["--certificate-identity-regexp", OCTO_IDENTITY_REGEXP])
        .args(["--certificate-oidc-issuer", GITHUB_ISSUER])
        .args(["--type", kind])
        .arg(image);
    cmd
}

/// `cosign verify-attestation` with the octo-org identity policy and `si`'s trust.
fn cosign_verify_att_octo(si: &SigstoreStandIn, image: &str, kind: &str) -> Command {
    let mut cmd = si.cosign();
    cmd.args(["verify-attestation", "--allow-insecure-registry"])
        .args(["--rekor-url", &si.rekor_url])
        .args(["--certificate-identity-regexp", OCTO_IDENTITY_REGEXP])
        .args(["--certificate-oidc-issuer", GITHUB_ISSUER])
        .args(["--type", kind, image]);
    cmd
}

/// The `.att` manifest of `digest` as JSON, or `None`.
fn att_manifest(reg: &Registry, name: &str, digest: &str) -> Option<Value> {
    reg.get_manifest(name, &att_tag(digest))
        .map(|(bytes, _)| serde_json::from_slice(&bytes).expect(".att manifest JSON"))
}

/// The layers of `digest`'s `.att` (which must exist).
fn att_layers(reg: &Registry, name: &str, digest: &str) -> Vec<Value> {
    let manifest = att_manifest(reg, name, digest)
        .unwrap_or_else(|| panic!("no {} in {name}", att_tag(digest)));
    let layers = manifest["layers"].as_array().expect("layers").clone();
    for layer in &layers {
        assert_eq!(layer["mediaType"], DSSE_MEDIA_TYPE, "{manifest}");
    }
    layers
}

/// The `predicateType` annotations of `digest`'s `.att` layers, in layer order.
fn att_types(reg: &Registry, name: &str, digest: &str) -> Vec<String> {
    att_layers(reg, name, digest)
        .iter()
        .map(|l| {
            l["annotations"]["predicateType"]
                .as_str()
                .unwrap_or_else(|| panic!("layer without predicateType: {l}"))
                .to_string()
        })
        .collect()
}

fn count(types: &[String], wanted: &str) -> usize {
    types.iter().filter(|t| *t == wanted).count()
}

/// The in-toto statements in the DSSE envelopes cosign prints (`verify-attestation`,
/// `download attestation`).
fn cosign_statements(out: &Output) -> Vec<Value> {
    envelope_statements(out)
}

/// `wharf provenance generate -o dir/provenance.json` in a simulated GitHub Actions run.
fn provenance(dir: &Path) -> PathBuf {
    let path = dir.join("provenance.json");
    run_ok(
        wharf_clean()
            .args(["provenance", "generate", "-o"])
            .arg(&path)
            .env("GITHUB_SERVER_URL", "https://github.com")
            .env("GITHUB_REPOSITORY", "octo-org/octo-repo")
            .env("GITHUB_SHA", "3d7efa7ef7c58712a7d754d395b811763d3c9263")
            .env("GITHUB_REF", "refs/tags/v1.2.0")
            .env(
                "GITHUB_WORKFLOW_REF",
                "octo-org/octo-repo/.github/workflows/release.yml@refs/tags/v1.2.0",
            )
            .env("GITHUB_RUN_ID", "3000003")
            .env("GITHUB_RUN_ATTEMPT", "1")
            .env("RUNNER_ENVIRONMENT", "github-hosted"),
    );
    let doc: Value = serde_json::from_slice(&fs::read(&path).unwrap()).expect("provenance JSON");
    assert!(
        doc.get("buildDefinition").is_some() && doc.get("runDetails").is_some(),
        "not an SLSA v1 predicate: {doc}"
    );
    assert!(
        doc.to_string()
            .contains("3d7efa7ef7c58712a7d754d395b811763d3c9263"),
        "the provenance does not name the commit: {doc}"
    );
    path
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------
// Key attestations verify in cosign
// ---------------------------------------------------------------------------------------

#[test]
fn key_attestations_on_index_and_platform_verify_in_cosign() {
    let reg = Registry::start();
    let dir = tempdir();
    let key = wharf_key(dir.path(), "release", PASSWORD);
    let img = push_to(&reg, "app", TWO, 1);
    let arm = img.platform("linux/arm64").to_string();
    let amd = img.platform("linux/amd64").to_string();
    let sbom = cyclonedx(dir.path(), "sbom.cdx.json", "zlib");

    let out = run_ok(&mut wharf_attest_key(
        &key,
        &img.index(),
        "cyclonedx",
        &sbom,
    ));
    assert_eq!(
        stdout_of(&out).trim(),
        format!("added {CYCLONEDX} attestation on {}", img.index())
    );
    let out = run_ok(
        wharf_attest_key(&key, &img.index(), "cyclonedx", &sbom)
            .args(["--platform", "linux/arm64"]),
    );
    assert_eq!(
        stdout_of(&out).trim(),
        format!(
            "added {CYCLONEDX} attestation on {} (linux/arm64)",
            img.at(&arm)
        )
    );
    assert_eq!(att_types(&reg, &img.name, &img.digest), [CYCLONEDX]);
    assert_eq!(att_types(&reg, &img.name, &arm), [CYCLONEDX]);
    assert!(
        att_manifest(&reg, &img.name, &amd).is_none(),
        "amd64 was attested too"
    );

    // cosign verifies both, and each statement names exactly its own manifest.
    let sbom_doc = read_json(&sbom);
    for digest in [&img.digest, &arm] {
        let out = run_ok(&mut cosign_verify_att_key(
            &key,
            &img.at(digest),
            "cyclonedx",
        ));
        let statements = cosign_statements(&out);
        assert_eq!(statements.len(), 1, "{}", stdout_of(&out));
        assert_eq!(statements[0]["predicateType"], CYCLONEDX);
        assert_eq!(subjects(&statements[0]), BTreeSet::from([digest.clone()]));
        assert_eq!(statements[0]["predicate"], sbom_doc);
    }
    run_fail(&mut cosign_verify_att_key(&key, &img.at(&amd), "cyclonedx"));

    // SLSA provenance v1 from `wharf provenance generate`, on the same two manifests.
    let prov = provenance(dir.path());
    let prov_doc = read_json(&prov);
    run_ok(&mut wharf_attest_key(
        &key,
        &img.index(),
        "slsaprovenance1",
        &prov,
    ));
    run_ok(
        wharf_attest_key(&key, &img.index(), "slsaprovenance1", &prov)
            .args(["--platform", "linux/arm64"]),
    );
    for digest in [&img.digest, &arm] {
        assert_eq!(att_types(&reg, &img.name, digest), [CYCLONEDX, SLSA1]);
        let out = run_ok(&mut cosign_verify_att_key(
            &key,
            &img.at(digest),
            "slsaprovenance1",
        ));
        let statements = cosign_statements(&out);
        assert_eq!(statements.len(), 1, "{}", stdout_of(&out));
        assert_eq!(statements[0]["predicateType"], SLSA1);
        assert_eq!(subjects(&statements[0]), BTreeSet::from([digest.clone()]));
        assert_eq!(statements[0]["predicate"], prov_doc);
        // cosign still finds the CycloneDX one next to it.
        run_ok(&mut cosign_verify_att_key(
            &key,
            &img.at(digest),
            "cyclonedx",
        ));

        // And wharf, per type.
        for (kind, uri, doc) in [
            ("cyclonedx", CYCLONEDX, &sbom_doc),
            ("slsaprovenance1", SLSA1, &prov_doc),
        ] {
            let out = run_ok(&mut wharf_verify_att_key(&key, &img.at(digest), kind));
            let statements = wharf_statements(&out);
            assert_eq!(statements.len(), 1, "{}", stdout_of(&out));
            assert_eq!(statements[0]["predicateType"], uri);
            assert_eq!(subjects(&statements[0]), BTreeSet::from([digest.clone()]));
            assert_eq!(&statements[0]["predicate"], doc);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Keyless, and key attestations logged in Rekor
// ---------------------------------------------------------------------------------------

#[test]
fn keyless_attestation_verifies_in_cosign_and_wharf() {
    let si = SigstoreStandIn::start();
    let reg = Registry::start();
    let dir = tempdir();
    let img = push_to(&reg, "app", TWO, 2);
    let amd = img.platform("linux/amd64").to_string();
    let sbom = cyclonedx(dir.path(), "sbom.cdx.json", "openssl");

    let out = run_ok(&mut wharf_attest_keyless(
        &si,
        &img.index(),
        "cyclonedx",
        &sbom,
    ));
    assert!(
        stderr_of(&out).contains(&format!("signing keylessly as {}", si.identity)),
        "{}",
        stderr_of(&out)
    );
    run_ok(
        wharf_attest_keyless(&si, &img.index(), "cyclonedx", &sbom)
            .args(["--platform", "linux/amd64"]),
    );

    for digest in [&img.digest, &amd] {
        // What cosign writes on a keyless attestation layer.
        let layers = att_layers(&reg, &img.name, digest);
        assert_eq!(layers.len(), 1);
        let annotations = &layers[0]["annotations"];
        assert!(
            annotations[CERTIFICATE_ANNOTATION]
                .as_str()
                .is_some_and(|c| c.starts_with("-----BEGIN CERTIFICATE-----")),
            "{annotations}"
        );
        assert_eq!(
            annotations[CHAIN_ANNOTATION]
                .as_str()
                .map(|c| c.matches("BEGIN CERTIFICATE").count()),
            Some(2),
            "{annotations}"
        );
        let bundle: Value = serde_json::from_str(
            annotations[BUNDLE_ANNOTATION]
                .as_str()
                .expect("bundle annotation"),
        )
        .expect("bundle is JSON");
        assert!(bundle["SignedEntryTimestamp"].is_string(), "{bundle}");

        let out = run_ok(&mut cosign_verify_att_octo(
            &si,
            &img.at(digest),
            "cyclonedx",
        ));
        let statements = cosign_statements(&out);
        assert_eq!(statements.len(), 1);
        assert_eq!(subjects(&statements[0]), BTreeSet::from([digest.clone()]));

        let out = run_ok(&mut wharf_verify_att_octo(
            &si,
            &img.at(digest),
            "cyclonedx",
        ));
        let statements = wharf_statements(&out);
        assert_eq!(statements.len(), 1);
        assert_eq!(subjects(&statements[0]), BTreeSet::from([digest.clone()]));
        assert_eq!(statements[0]["predicate"], read_json(&sbom));
        assert!(
            stderr_of(&out).contains(&format!("verified 1 attestation(s) on {digest}")),
            "{}",
            stderr_of(&out)
        );
    }

    // The exact identity works; another identity does not, in either tool.
    run_ok(
        wharf_clean()
            .args([
                "verify-attestation",
                "--allow-insecure-registry",
                "--type",
                "cyclonedx",
            ])
            .args(si.wharf_verify_args())
            .args(["--certificate-identity", &si.identity])
            .args(["--certificate-oidc-issuer", &si.oidc_issuer])
            .arg(img.index()),
    );
    let line = verify_fails(
        wharf_clean()
            .args([
                "verify-attestation",
                "--allow-insecure-registry",
                "--type",
                "cyclonedx",
            ])
            .args(si.wharf_verify_args())
            .args([
                "--certificate-identity-regexp",
                "https://github.com/other/.*",
            ])
            .args(["--certificate-oidc-issuer", GITHUB_ISSUER])
            .arg(img.index()),
    );
    assert!(line.contains("wrong identity"), "{line}");
    run_fail(
        si.cosign()
            .args([
                "verify-attestation",
                "--allow-insecure-registry",
                "--type",
                "cyclonedx",
            ])
            .args(["--rekor-url", &si.rekor_url])
            .args([
                "--certificate-identity-regexp",
                "https://github.com/other/.*",
            ])
            .args(["--certificate-oidc-issuer", GITHUB_ISSUER])
            .arg(img.index()),
    );
}

#[test]
fn key_attestation_logged_in_rekor_verifies_without_ignoring_the_tlog() {
    let si = SigstoreStandIn::start();
    let reg = Registry::start();
    let dir = tempdir();
    let key = openssl_key(dir.path(), "logged");
    let img = push_to(&reg, "app", TWO, 3);
    let sbom = cyclonedx(dir.path(), "sbom.cdx.json", "busybox");

    run_ok(
        wharf_clean()
            .args([
                "attest",
                "--allow-insecure-registry",
                "--key",
                key.private(),
            ])
            .args(["--rekor-url", &si.rekor_url])
            .args(["--type", "cyclonedx", "--predicate", s(&sbom)])
            .arg(img.index()),
    );
    let layers = att_layers(&reg, &img.name, &img.digest);
    assert_eq!(layers.len(), 1);
    let annotations = &layers[0]["annotations"];
    assert!(
        annotations.get(CERTIFICATE_ANNOTATION).is_none(),
        "a key attestation carries a certificate: {annotations}"
    );
    let bundle: Value = serde_json::from_str(
        annotations[BUNDLE_ANNOTATION]
            .as_str()
            .expect("a logged attestation has a bundle annotation"),
    )
    .unwrap();
    let body: Value = serde_json::from_slice(
        &B64.decode(bundle["Payload"]["body"].as_str().expect("Payload.body"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["kind"], "dsse", "{body}");

    // wharf checks the log evidence against the trusted root: no waiver needed.
    let out = run_ok(
        wharf_clean()
            .args([
                "verify-attestation",
                "--allow-insecure-registry",
                "--type",
                "cyclonedx",
            ])
            .args(["--key", key.public()])
            .args(si.wharf_verify_args())
            .arg(img.index()),
    );
    let statements = wharf_statements(&out);
    assert_eq!(statements.len(), 1);
    assert_eq!(
        subjects(&statements[0]),
        BTreeSet::from([img.digest.clone()])
    );

    // cosign, with the stand-in's Rekor key.
    let out = run_ok(
        si.cosign()
            .args([
                "verify-attestation",
                "--allow-insecure-registry",
                "--type",
                "cyclonedx",
            ])
            .args(["--key", key.public(), "--rekor-url", &si.rekor_url])
            .arg(img.index()),
    );
    assert_eq!(cosign_statements(&out).len(), 1);

    // Without --trusted-root only the public-good Rekor is trusted, which never logged this.
    let line = verify_fails(
        wharf_clean()
            .args([
                "verify-attestation",
                "--allow-insecure-registry",
                "--type",
                "cyclonedx",
            ])
            .args(["--key", key.public()])
            .arg(img.index()),
    );
    assert!(line.contains("transparency log"), "{line}");
}

// ---------------------------------------------------------------------------------------
// cosign attests, wharf verifies
// ---------------------------------------------------------------------------------------

#[test]
fn cosign_key_attestation_verifies_in_wharf() {
    let reg = Registry::start();
    let dir = tempdir();
    let key = cosign_key(dir.path(), "cosign", PASSWORD);
    let img = push_to(&reg, "app", TWO, 4);
    let arm = img.platform("linux/arm64").to_string();
    let sbom = cyclonedx(dir.path(), "sbom.cdx.json", "musl");

    for digest in [&img.digest, &arm] {
        run_ok(
            cosign()
                .args([
                    "attest",
                    "-y",
                    "--allow-insecure-registry",
                    "--tlog-upload=false",
                ])
                .args([
                    "--key",
                    key.private(),
                    "--type",
                    "cyclonedx",
                    "--predicate",
                    s(&sbom),
                ])
                .arg(img.at(digest))
                .env("COSIGN_PASSWORD", PASSWORD),
        );
        assert_eq!(att_types(&reg, &img.name, digest), [CYCLONEDX]);

        let predicate_out = dir.path().join("from-wharf.json");
        let out = run_ok(
            wharf_verify_att_key(&key, &img.at(digest), "cyclonedx")
                .arg("--output-predicate")
                .arg(&predicate_out),
        );
        let statements = wharf_statements(&out);
        assert_eq!(statements.len(), 1);
        assert_eq!(subjects(&statements[0]), BTreeSet::from([digest.clone()]));
        assert_eq!(read_json(&predicate_out), read_json(&sbom));
    }
    // The public key of cosign's pair is what matters: another key fails.
    let other = openssl_key(dir.path(), "other");
    let line = verify_fails(&mut wharf_verify_att_key(&other, &img.index(), "cyclonedx"));
    assert!(line.contains(&img.digest), "{line}");
}

#[test]
fn cosign_keyless_attestation_verifies_in_wharf() {
    let si = SigstoreStandIn::start();
    let reg = Registry::start();
    let dir = tempdir();
    let img = push_to(&reg, "app", TWO, 5);
    let sbom = cyclonedx(dir.path(), "sbom.cdx.json", "curl");

    run_ok(
        si.cosign()
            .args(["attest", "-y", "--allow-insecure-registry"])
            .args(["--fulcio-url", &si.fulcio_url, "--rekor-url", &si.rekor_url])
            .args(["--identity-token", &si.token("")])
            .args(["--type", "cyclonedx", "--predicate", s(&sbom)])
            .arg(img.index()),
    );
    assert_eq!(att_types(&reg, &img.name, &img.digest), [CYCLONEDX]);
    let out = run_ok(&mut wharf_verify_att_octo(&si, &img.index(), "cyclonedx"));
    let statements = wharf_statements(&out);
    assert_eq!(statements.len(), 1);
    assert_eq!(
        subjects(&statements[0]),
        BTreeSet::from([img.digest.clone()])
    );
    assert_eq!(statements[0]["predicate"], read_json(&sbom));

    let line = verify_fails(
        wharf_clean()
            .args([
                "verify-attestation",
                "--allow-insecure-registry",
                "--type",
                "cyclonedx",
            ])
            .args(si.wharf_verify_args())
            .args([
                "--certificate-identity-regexp",
                "https://github.com/octo-org/other/.*",
            ])
            .args(["--certificate-oidc-issuer", GITHUB_ISSUER])
            .arg(img.index()),
    );
    assert!(line.contains("wrong identity"), "{line}");
}

// ---------------------------------------------------------------------------------------
// The predicate, exactly
// ---------------------------------------------------------------------------------------

#[test]
fn output_predicate_is_the_predicate_byte_for_byte() {
    let reg = Registry::start();
    let dir = tempdir();
    let key = openssl_key(dir.path(), "k");
    let img = push_to(&reg, "app", TWO, 6);
    let sbom = dir.path().join("odd.cdx.json");
    fs::write(&sbom, ODD_CYCLONEDX).unwrap();

    run_ok(&mut wharf_attest_key(
        &key,
        &img.index(),
        "cyclonedx",
        &sbom,
    ));

    // cosign download attestation | jq -r .payload | base64 -d | jq .predicate
    let out = run_ok(
        cosign()
            .args(["download", "attestation", "--allow-insecure-registry"])
            .arg(img.index()),
    );
    let statements = cosign_statements(&out);
    assert_eq!(statements.len(), 1, "{}", stdout_of(&out));
    let original: Value = serde_json::from_str(ODD_CYCLONEDX).unwrap();
    assert_eq!(statements[0]["predicate"], original);
    assert_eq!(
        statements[0]["predicate"]["metadata"]["component"]["name"],
        "café-app"
    );

    // The signed statement holds the document's own bytes, not a re-serialisation.
    let envelope_line = stdout_of(&out)
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap()
        .to_string();
    let envelope: Value = serde_json::from_str(&envelope_line).unwrap();
    let payload = B64.decode(envelope["payload"].as_str().unwrap()).unwrap();
    let payload = String::from_utf8(payload).unwrap();
    assert!(
        payload.contains(ODD_CYCLONEDX.trim()),
        "the statement re-serialised the predicate:\n{payload}"
    );

    let written = dir.path().join("predicate.out.json");
    run_ok(
        wharf_verify_att_key(&key, &img.index(), "cyclonedx")
            .arg("--output-predicate")
            .arg(&written),
    );
    let written = fs::read_to_string(&written).unwrap();
    // The document itself, whitespace and escapes included...
    assert_eq!(
        written.trim_end(),
        ODD_CYCLONEDX.trim_end(),
        "--output-predicate changed the document"
    );
    // ...and the file as given, down to its final newline.
    assert_eq!(
        written, ODD_CYCLONEDX,
        "--output-predicate is not the predicate file byte for byte (down to its final newline)"
    );
}

#[test]
fn predicates_that_are_not_what_the_type_says_are_refused_before_anything_is_written() {
    let reg = Registry::start();
    let dir = tempdir();
    let key = openssl_key(dir.path(), "k");
    let img = push_to(&reg, "app", TWO, 7);
    let tags_before = reg.tags(&img.name);

    let spdx = dir.path().join("sbom.spdx.json");
    fs::write(
        &spdx,
        serde_json::to_vec_pretty(&json!({
            "spdxVersion": "SPDX-2.3",
            "SPDXID": "SPDXRef-DOCUMENT",
            "name": "app",
            "dataLicense": "CC0-1.0",
            "packages": [],
        }))
        .unwrap(),
    )
    .unwrap();
    let not_json = dir.path().join("sbom.txt");
    fs::write(&not_json, "zlib 1.3.1\nmusl 1.2.4\n").unwrap();
    let cdx = cyclonedx(dir.path(), "sbom.cdx.json", "zlib");

    let cases: [(&str, &Path, &str); 3] = [
        ("cyclonedx", &spdx, "not a CycloneDX document"),
        ("cyclonedx", &not_json, "not a JSON document"),
        ("slsaprovenance1", &cdx, "not SLSA provenance v1"),
    ];
    for (kind, predicate, expected) in cases {
        let mark = reg.request_count();
        let out = run_fail(&mut wharf_attest_key(&key, &img.index(), kind, predicate));
        let line = error_line(&out);
        assert!(line.contains(expected), "{line}");
        assert!(
            line.contains(predicate.file_name().unwrap().to_str().unwrap()),
            "the error does not name the file: {line}"
        );
        let writes: Vec<_> = reg
            .requests_since(mark)
            .into_iter()
            .filter(|r| matches!(r.method.as_str(), "PUT" | "POST" | "PATCH" | "DELETE"))
            .collect();
        assert!(writes.is_empty(), "a refused predicate wrote: {writes:?}");
        assert_eq!(stdout_of(&out).trim(), "");
    }
    assert_eq!(reg.tags(&img.name), tags_before);
    assert!(att_manifest(&reg, &img.name, &img.digest).is_none());

    // The same SPDX document is fine as what it is.
    run_ok(&mut wharf_attest_key(&key, &img.index(), "spdxjson", &spdx));
    assert_eq!(
        att_types(&reg, &img.name, &img.digest),
        ["https://spdx.dev/Document"]
    );
}

// ---------------------------------------------------------------------------------------
// Replace, append, rerun
// ---------------------------------------------------------------------------------------

#[test]
fn replace_append_and_rerun() {
    let reg = Registry::start();
    let dir = tempdir();
    let key = openssl_key(dir.path(), "k");
    let img = push_to(&reg, "app", TWO, 8);
    let v1 = cyclonedx(dir.path(), "v1.json", "zlib-v1");
    let v2 = cyclonedx(dir.path(), "v2.json", "zlib-v2");
    let v3 = cyclonedx(dir.path(), "v3.json", "zlib-v3");
    let prov = provenance(dir.path());
    let att = |reg: &Registry| reg.manifest_digest(&img.name, &att_tag(&img.digest));
    let verified_predicate = |kind: &str| -> Value {
        let path = dir.path().join(format!("verified-{kind}.json"));
        run_ok(
            wharf_verify_att_key(&key, &img.index(), kind)
                .arg("--output-predicate")
                .arg(&path),
        );
        read_json(&path)
    };

    run_ok(&mut wharf_attest_key(&key, &img.index(), "cyclonedx", &v1));
    assert_eq!(att_types(&reg, &img.name, &img.digest), [CYCLONEDX]);

    // A rerun adds nothing and says so.
    let before = att(&reg);
    let out = run_ok(&mut wharf_attest_key(&key, &img.index(), "cyclonedx", &v1));
    assert!(
        stdout_of(&out).starts_with("already present"),
        "{}",
        stdout_of(&out)
    );
    assert_eq!(att(&reg), before, "a rerun rewrote the .att manifest");
    assert_eq!(att_types(&reg, &img.name, &img.digest), [CYCLONEDX]);

    // --replace swaps the CycloneDX attestation for the new one.
    let out = run_ok(wharf_attest_key(&key, &img.index(), "cyclonedx", &v2).arg("--replace"));
    assert!(stdout_of(&out).starts_with("added"), "{}", stdout_of(&out));
    assert_eq!(att_types(&reg, &img.name, &img.digest), [CYCLONEDX]);
    assert_eq!(verified_predicate("cyclonedx"), read_json(&v2));

    // Another type is appended next to it.
    run_ok(&mut wharf_attest_key(
        &key,
        &img.index(),
        "slsaprovenance1",
        &prov,
    ));
    let types = att_types(&reg, &img.name, &img.digest);
    assert_eq!(
        (count(&types, CYCLONEDX), count(&types, SLSA1)),
        (1, 1),
        "{types:?}"
    );
    let before = att(&reg);
    let out = run_ok(&mut wharf_attest_key(
        &key,
        &img.index(),
        "slsaprovenance1",
        &prov,
    ));
    assert!(
        stdout_of(&out).starts_with("already present"),
        "{}",
        stdout_of(&out)
    );
    assert_eq!(att(&reg), before);

    // Without --replace a different CycloneDX document is appended...
    run_ok(&mut wharf_attest_key(&key, &img.index(), "cyclonedx", &v3));
    let types = att_types(&reg, &img.name, &img.digest);
    assert_eq!(
        (count(&types, CYCLONEDX), count(&types, SLSA1)),
        (2, 1),
        "{types:?}"
    );

    // ...and --replace leaves one of that type, and the provenance alone.
    run_ok(wharf_attest_key(&key, &img.index(), "cyclonedx", &v1).arg("--replace"));
    let types = att_types(&reg, &img.name, &img.digest);
    assert_eq!(
        (count(&types, CYCLONEDX), count(&types, SLSA1)),
        (1, 1),
        "{types:?}"
    );
    assert_eq!(verified_predicate("cyclonedx"), read_json(&v1));
    assert_eq!(verified_predicate("slsaprovenance1"), read_json(&prov));
    // cosign agrees.
    for kind in ["cyclonedx", "slsaprovenance1"] {
        let out = run_ok(&mut cosign_verify_att_key(&key, &img.index(), kind));
        assert_eq!(
            cosign_statements(&out).len(),
            1,
            "{kind}: {}",
            stdout_of(&out)
        );
    }
}

// ---------------------------------------------------------------------------------------
// Recursive verification
// ---------------------------------------------------------------------------------------

#[test]
fn recursive_verify_attestation_names_the_platform_without_one() {
    let reg = Registry::start();
    let dir = tempdir();
    let key = openssl_key(dir.path(), "k");
    let img = push_to(&reg, "app", THREE, 9);
    let sbom = cyclonedx(dir.path(), "sbom.json", "zlib");

    // Platform images only: the index itself need not carry one.
    for platform in ["linux/amd64", "linux/arm64"] {
        run_ok(
            wharf_attest_key(&key, &img.index(), "cyclonedx", &sbom).args(["--platform", platform]),
        );
    }
    let missing = img.platform("linux/arm/v7").to_string();
    let line =
        verify_fails(wharf_verify_att_key(&key, &img.index(), "cyclonedx").arg("--recursive"));
    assert!(line.contains(&missing), "{line}");
    assert!(line.contains("linux/arm/v7"), "{line}");
    assert!(line.contains("no attestations"), "{line}");

    run_ok(
        wharf_attest_key(&key, &img.index(), "cyclonedx", &sbom)
            .args(["--platform", "linux/arm/v7"]),
    );
    let out = run_ok(wharf_verify_att_key(&key, &img.index(), "cyclonedx").arg("--recursive"));
    let verified: BTreeSet<String> = wharf_statements(&out).iter().flat_map(subjects).collect();
    let expected: BTreeSet<String> = img.children.iter().map(|(_, d)| d.clone()).collect();
    assert_eq!(verified, expected);
    let stderr = stderr_of(&out);
    assert_eq!(
        stderr.matches("verified 1 attestation(s) on").count(),
        3,
        "{stderr}"
    );
    assert!(stderr.contains("(linux/arm/v7)"), "{stderr}");
}

// ---------------------------------------------------------------------------------------
// Tampering
// ---------------------------------------------------------------------------------------

/// A registry with `app` (two platforms) whose index carries a key CycloneDX attestation.
fn attested(seed: u64) -> (Registry, TempDir, Key, Pushed) {
    let reg = Registry::start();
    let dir = tempdir();
    let key = openssl_key(dir.path(), "k");
    let img = push_to(&reg, "app", TWO, seed);
    let sbom = cyclonedx(dir.path(), "sbom.json", "zlib");
    run_ok(&mut wharf_attest_key(
        &key,
        &img.index(),
        "cyclonedx",
        &sbom,
    ));
    (reg, dir, key, img)
}

/// Rewrites the first `.att` layer of `digest`: its DSSE payload becomes `edit(payload)`, the
/// signatures stay. The new envelope is uploaded and the `.att` manifest repointed.
fn alter_payload(reg: &Registry, name: &str, digest: &str, edit: impl FnOnce(&str) -> String) {
    let mut manifest = att_manifest(reg, name, digest).expect(".att manifest");
    let layer = &manifest["layers"][0];
    let blob = reg
        .get_blob(name, layer["digest"].as_str().unwrap())
        .expect("envelope blob");
    let mut envelope: Value = serde_json::from_slice(&blob).expect("envelope JSON");
    let payload =
        String::from_utf8(B64.decode(envelope["payload"].as_str().unwrap()).unwrap()).unwrap();
    let edited = edit(&payload);
    assert_ne!(edited, payload, "the edit changed nothing");
    envelope["payload"] = Value::String(B64.encode(edited.as_bytes()));
    let bytes = serde_json::to_vec(&envelope).unwrap();
    let new_digest = reg.push_blob(name, &bytes);
    manifest["layers"][0]["digest"] = Value::String(new_digest);
    manifest["layers"][0]["size"] = json!(bytes.len());
    reg.push_manifest(
        name,
        &att_tag(digest),
        &serde_json::to_vec(&manifest).unwrap(),
    );
}

fn altered_payload_message(reg: &Registry, key: &Key, img: &Pushed) -> String {
    alter_payload(reg, &img.name, &img.digest, |p| p.replace("zlib", "zlob"));
    let line = verify_fails(&mut wharf_verify_att_key(key, &img.index(), "cyclonedx"));
    assert!(line.contains(&img.digest), "{line}");
    run_fail(&mut cosign_verify_att_key(key, &img.index(), "cyclonedx"));
    line
}

fn copied_attestation_message(reg: &Registry, key: &Key, img: &Pushed) -> String {
    // Another image in the same repository (so the blobs the .att names are there too).
    let other = push_to(reg, &img.name, TWO, 1000 + img.digest.len() as u64);
    assert_ne!(other.digest, img.digest);
    let (bytes, _) = reg
        .get_manifest(&img.name, &att_tag(&img.digest))
        .expect(".att of the attested image");
    reg.push_manifest(&img.name, &att_tag(&other.digest), &bytes);
    let line = verify_fails(&mut wharf_verify_att_key(key, &other.index(), "cyclonedx"));
    assert!(line.contains(&other.digest), "{line}");
    let out = run_fail(&mut cosign_verify_att_key(key, &other.index(), "cyclonedx"));
    assert!(
        stderr_of(&out).contains("no matching subject digest"),
        "{}",
        stderr_of(&out)
    );
    line
}

fn wrong_type_message(key: &Key, img: &Pushed) -> String {
    let line = verify_fails(&mut wharf_verify_att_key(
        key,
        &img.index(),
        "slsaprovenance1",
    ));
    run_fail(&mut cosign_verify_att_key(
        key,
        &img.index(),
        "slsaprovenance1",
    ));
    line
}

#[test]
fn altered_envelope_payload_fails() {
    let (reg, _dir, key, img) = attested(20);
    run_ok(&mut wharf_verify_att_key(&key, &img.index(), "cyclonedx"));
    let line = altered_payload_message(&reg, &key, &img);
    assert!(line.contains("signature"), "{line}");
    assert!(!line.contains("another image"), "{line}");
}

#[test]
fn attestation_copied_from_another_image_fails() {
    let (reg, _dir, key, img) = attested(21);
    let line = copied_attestation_message(&reg, &key, &img);
    assert!(line.contains("attestation for another image"), "{line}");
    assert!(
        line.contains(img.digest.strip_prefix("sha256:").unwrap()),
        "{line}"
    );
}

#[test]
fn wrong_predicate_type_fails() {
    let (_reg, _dir, key, img) = attested(22);
    let line = wrong_type_message(&key, &img);
    assert!(
        line.contains(&format!("no attestation of type {SLSA1}")),
        "{line}"
    );
    assert!(line.contains(&format!("found {CYCLONEDX}")), "{line}");
}

#[test]
fn tamper_failures_have_distinct_messages() {
    let (reg, _dir, key, img) = attested(23);
    let messages = [
        wrong_type_message(&key, &img),
        copied_attestation_message(&reg, &key, &img),
        altered_payload_message(&reg, &key, &img),
    ];
    // Compare the messages without the digests they name.
    let shapes: BTreeSet<String> = messages
        .iter()
        .map(|m| {
            m.split(|c: char| c.is_whitespace() || c == '"' || c == '[' || c == ']')
                .filter(|w| {
                    !w.contains("sha256")
                        && (w.len() != 64 || !w.chars().all(|c| c.is_ascii_hexdigit()))
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    assert_eq!(shapes.len(), 3, "messages are not distinct: {messages:#?}");
}

// ---------------------------------------------------------------------------------------
// SBOM generation, attested
// ---------------------------------------------------------------------------------------

const OS_RELEASE: &str =
    "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
VERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n";

const DPKG_STATUS: &str = "\
Package: zlib1g
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 168
Maintainer: Mark Brown <broonie@debian.org>
Architecture: arm64
Multi-Arch: same
Source: zlib
Version: 1:1.2.13.dfsg-1
Description: compression library - runtime

Package: base-files
Status: install ok installed
Priority: required
Essential: yes
Architecture: arm64
Version: 12.4+deb12u5
Description: Debian base system miscellaneous files

Package: gone
Status: deinstall ok config-files
Architecture: arm64
Version: 0.1-1
Description: removed, only its configuration is left
";

/// Writes `bytes` as a blob of the layout at `dir`; returns `(digest, size)`.
fn layout_blob(dir: &Path, bytes: &[u8]) -> (String, u64) {
    let digest = digest_of(bytes);
    let path = blob_path(dir, &digest);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, bytes).unwrap();
    (digest, bytes.len() as u64)
}

/// An OCI layout whose index has a linux/arm64 image with one real (uncompressed) tar layer:
/// an os-release and a dpkg status database. Returns the layout dir and the manifest digest.
fn debian_layout(root: &Path) -> (PathBuf, String) {
    let rootfs = root.join("rootfs");
    fs::create_dir_all(rootfs.join("etc")).unwrap();
    fs::create_dir_all(rootfs.join("var/lib/dpkg")).unwrap();
    fs::write(rootfs.join("etc/os-release"), OS_RELEASE).unwrap();
    fs::write(rootfs.join("var/lib/dpkg/status"), DPKG_STATUS).unwrap();
    let tar = root.join("layer.tar");
    run_ok(
        Command::new(require_tool("tar"))
            .args(["--numeric-owner", "--owner=0", "--group=0", "-cf"])
            .arg(&tar)
            .arg("-C")
            .arg(&rootfs)
            .arg("."),
    );
    let layer = fs::read(&tar).unwrap();

    let layout = root.join("layout");
    let (layer_digest, layer_size) = layout_blob(&layout, &layer);
    let config = serde_json::to_vec(&json!({
        "architecture": "arm64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }))
    .unwrap();
    let (config_digest, config_size) = layout_blob(&layout, &config);
    let manifest = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}],
    }))
    .unwrap();
    let (manifest_digest, manifest_size) = layout_blob(&layout, &manifest);
    let index = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "platform": {"architecture": "arm64", "os": "linux"},
        }],
    }))
    .unwrap();
    let (index_digest, index_size) = layout_blob(&layout, &index);
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec_pretty(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": index_digest,
                "size": index_size,
                "annotations": {"org.opencontainers.image.ref.name": "v1"},
            }],
        }))
        .unwrap(),
    )
    .unwrap();
    fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    (layout, manifest_digest)
}

#[test]
fn generated_sbom_attests_verifies_and_is_valid_cyclonedx() {
    let reg = Registry::start();
    let dir = tempdir();
    let key = openssl_key(dir.path(), "k");
    let (layout, manifest_digest) = debian_layout(dir.path());

    let sbom = dir.path().join("sbom.cdx.json");
    run_ok(
        wharf_clean()
            .args(["sbom", "generate"])
            .arg(format!("oci:{}", layout.display()))
            .args(["--platform", "linux/arm64", "-o"])
            .arg(&sbom),
    );
    let doc = read_json(&sbom);
    assert_eq!(doc["bomFormat"], "CycloneDX");
    assert_eq!(doc["specVersion"], "1.5");
    let components = doc["components"].as_array().expect("components");
    let names: BTreeSet<&str> = components
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(
        names.contains("zlib1g") && names.contains("base-files"),
        "{names:?}"
    );
    assert!(
        !names.contains("gone"),
        "a removed package is listed: {names:?}"
    );
    let zlib = components.iter().find(|c| c["name"] == "zlib1g").unwrap();
    assert!(
        zlib["purl"]
            .as_str()
            .is_some_and(|p| p.starts_with("pkg:deb/debian/zlib1g@")),
        "{zlib}"
    );
    if let Err(msg) = validate_cyclonedx(&sbom) {
        panic!("the SBOM does not validate against the CycloneDX 1.5 schema:\n{msg}\n{doc:#}");
    }

    // Published, attested on the platform it describes, verified in both tools.
    let out = run_ok(
        wharf_clean()
            .args(["push", "--allow-insecure-registry", "--output", "json"])
            .arg(&layout)
            .arg(reg.repo("deb")),
    );
    let pushed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let index = format!("{}@{}", reg.repo("deb"), pushed["digest"].as_str().unwrap());
    let out = run_ok(
        wharf_attest_key(&key, &index, "cyclonedx", &sbom).args(["--platform", "linux/arm64"]),
    );
    assert!(
        stdout_of(&out).contains(&manifest_digest),
        "{}",
        stdout_of(&out)
    );
    let image = format!("{}@{manifest_digest}", reg.repo("deb"));
    let back = dir.path().join("back.json");
    run_ok(
        wharf_verify_att_key(&key, &image, "cyclonedx")
            .arg("--output-predicate")
            .arg(&back),
    );
    // The document comes back byte for byte, final newline included.
    assert_eq!(
        fs::read_to_string(&back).unwrap(),
        fs::read_to_string(&sbom).unwrap()
    );
    let out = run_ok(&mut cosign_verify_att_key(&key, &image, "cyclonedx"));
    let statements = cosign_statements(&out);
    assert_eq!(statements.len(), 1);
    assert_eq!(statements[0]["predicate"], doc);
}
