//! Files signed into Sigstore bundles: `wharf sign-blob`, `attest-blob`, `verify-blob`,
//! `verify-blob-attestation`, key and keyless against the loopback Sigstore stand-in, and
//! interoperability both ways with `cosign` 2.5 (`--new-bundle-format`) and sigstore-python.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::keys::{openssl_key, wharf_key, Key};
use common::standin::{SigstoreStandIn, GITHUB_ISSUER, OCTO_IDENTITY_REGEXP};
use common::*;
use serde_json::Value;

const CUSTOM: &str = "https://cosign.sigstore.dev/attestation/v1";
const SLSA1: &str = "https://slsa.dev/provenance/v1";

/// A stand-in, a directory, a file to sign and a throwaway entry at log index 0: cosign 2.5
/// refuses a bundle whose entry has index 0 ("nil value in transaction log entry"), which
/// only a brand-new log hands out.
struct Setup {
    si: SigstoreStandIn,
    dir: TempDir,
    file: PathBuf,
}

fn setup() -> Setup {
    let si = SigstoreStandIn::start();
    let dir = tempdir();
    let file = dir.path().join("wharf-linux-amd64.tar.gz");
    fs::write(&file, b"release bytes\n").unwrap();
    let first = dir.path().join("first");
    fs::write(&first, b"occupies log index 0").unwrap();
    let key = openssl_key(dir.path(), "first");
    run_ok(
        wharf_clean()
            .args(["-q", "sign-blob", "--key", key.private()])
            .args(["--rekor-url", &si.rekor_url])
            .args(["--bundle", s(&dir.path().join("first.json"))])
            .arg(&first),
    );
    Setup { si, dir, file }
}

impl Setup {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Keyless `wharf sign-blob` (or `attest-blob` with `extra`) with a fresh token.
    fn wharf_keyless(&self, verb: &str, bundle: &Path, extra: &[&str]) -> Command {
        let mut cmd = wharf_clean();
        cmd.args(["-q", verb])
            .args(self.si.wharf_args())
            .args(["--identity-token", &self.si.token("")])
            .args(extra)
            .args(["--bundle", s(bundle)])
            .arg(&self.file);
        cmd
    }

    fn wharf_verify_octo(&self, verb: &str, bundle: &Path, artifact: &str) -> Command {
        self.si.wharf_verify_blob(verb, bundle, artifact)
    }

    /// `wharf verify-blob --key`.
    fn wharf_verify_key(&self, key: &Key, bundle: &Path, artifact: &str) -> Command {
        let mut cmd = wharf_clean();
        cmd.args(["verify-blob", "--key", key.public()])
            .args(["--trusted-root", s(&self.si.trusted_root)])
            .args(["--bundle", s(bundle)])
            .arg(artifact);
        cmd
    }

    /// `cosign VERB --new-bundle-format --trusted-root …` with the trusted root alone (no
    /// `SIGSTORE_*` variables, an empty TUF root).
    fn cosign_verify(&self, verb: &str, bundle: &Path, policy: &[&str], file: &Path) -> Command {
        let tuf = self.path("tuf");
        fs::create_dir_all(&tuf).unwrap();
        let mut cmd = cosign();
        cmd.env("TUF_ROOT", &tuf)
            .args([verb, "--new-bundle-format"])
            .args(["--bundle", s(bundle)])
            .args(["--trusted-root", s(&self.si.trusted_root)])
            .args(policy)
            .arg(file);
        cmd
    }

    /// `cosign sign-blob` or `attest-blob` against the stand-in, writing a new-format bundle.
    fn cosign_sign(&self, verb: &str, bundle: &Path, extra: &[&str]) -> Command {
        let mut cmd = cosign();
        self.si.cosign_env(&mut cmd);
        cmd.args([verb, "-y", "--new-bundle-format"])
            .args(["--fulcio-url", &self.si.fulcio_url])
            .args(["--rekor-url", &self.si.rekor_url])
            .args(extra)
            .args(["--bundle", s(bundle)])
            .arg(&self.file);
        cmd
    }

    fn digest_arg(&self) -> String {
        format!("sha256:{}", sha256_hex(&fs::read(&self.file).unwrap()))
    }

    fn tampered(&self) -> PathBuf {
        let path = self.path("tampered.tar.gz");
        fs::write(&path, b"release bytes, altered\n").unwrap();
        path
    }
}

fn octo_policy() -> Vec<&'static str> {
    vec![
        "--certificate-identity-regexp",
        OCTO_IDENTITY_REGEXP,
        "--certificate-oidc-issuer",
        GITHUB_ISSUER,
    ]
}

fn bundle_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

#[test]
fn keyless_blob_bundle_verifies_in_wharf_cosign_and_sigstore_python() {
    let t = setup();
    let bundle = t.path("keyless.sigstore.json");
    run_ok(&mut t.wharf_keyless("sign-blob", &bundle, &[]));

    // A v0.3 bundle: a message signature over the file's SHA-256, a hashedrekord entry with
    // its SET and inclusion proof, the leaf certificate alone.
    let b = bundle_json(&bundle);
    assert_eq!(
        b["mediaType"],
        "application/vnd.dev.sigstore.bundle.v0.3+json"
    );
    let digest = base64_decode(
        b["messageSignature"]["messageDigest"]["digest"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(hex::encode(digest), sha256_hex(&fs::read(&t.file).unwrap()));
    let entry = &b["verificationMaterial"]["tlogEntries"][0];
    assert_eq!(entry["kindVersion"]["kind"], "hashedrekord");
    assert!(entry["inclusionPromise"].is_object(), "{entry}");
    assert!(
        entry["inclusionProof"]["checkpoint"]["envelope"].is_string(),
        "{entry}"
    );
    assert!(b["verificationMaterial"]["certificate"]["rawBytes"].is_string());

    // wharf, by path and by digest.
    let out = run_ok(&mut t.wharf_verify_octo("verify-blob", &bundle, s(&t.file)));
    assert!(
        stderr_of(&out).contains("Verified OK"),
        "{}",
        stderr_of(&out)
    );
    run_ok(&mut t.wharf_verify_octo("verify-blob", &bundle, &t.digest_arg()));
    // cosign and sigstore-python, from the trusted root alone.
    run_ok(&mut t.cosign_verify("verify-blob", &bundle, &octo_policy(), &t.file));
    run_ok(
        &mut t
            .si
            .sigstore_python_verify(&bundle, &t.si.identity, &t.file),
    );

    // Another file, another identity, another issuer: each refused by all three.
    let tampered = t.tampered();
    let line = error_line(&run_fail(&mut t.wharf_verify_octo(
        "verify-blob",
        &bundle,
        s(&tampered),
    )));
    assert!(line.contains("another artifact"), "{line}");
    assert!(line.contains("tampered.tar.gz"), "{line}");
    run_fail(&mut t.cosign_verify("verify-blob", &bundle, &octo_policy(), &tampered));
    run_fail(
        &mut t
            .si
            .sigstore_python_verify(&bundle, &t.si.identity, &tampered),
    );
    let evil = "https://github.com/evil/repo/.github/workflows/release.yml@refs/heads/main";
    let line = error_line(&run_fail(
        wharf_clean()
            .args(["verify-blob", "--trusted-root", s(&t.si.trusted_root)])
            .args(["--certificate-identity", evil])
            .args(["--certificate-oidc-issuer", GITHUB_ISSUER])
            .args(["--bundle", s(&bundle)])
            .arg(&t.file),
    ));
    assert!(line.contains("wrong identity"), "{line}");
    run_fail(&mut t.si.sigstore_python_verify(&bundle, evil, &t.file));
    let line = error_line(&run_fail(
        wharf_clean()
            .args(["verify-blob", "--trusted-root", s(&t.si.trusted_root)])
            .args(["--certificate-identity", &t.si.identity])
            .args(["--certificate-oidc-issuer", "https://accounts.google.com"])
            .args(["--bundle", s(&bundle)])
            .arg(&t.file),
    ));
    assert!(line.contains("wrong OIDC issuer"), "{line}");
}

#[test]
fn key_blob_bundle_verifies_in_wharf_and_cosign() {
    let t = setup();
    let key = wharf_key(t.dir.path(), "release", "pw");
    let bundle = t.path("key.sigstore.json");
    run_ok(
        wharf_clean()
            .env("WHARF_PASSWORD", "pw")
            .args(["-q", "sign-blob", "--key", key.private()])
            .args(["--rekor-url", &t.si.rekor_url])
            .args(["--bundle", s(&bundle)])
            .arg(&t.file),
    );
    let b = bundle_json(&bundle);
    assert!(b["verificationMaterial"]["publicKey"].is_object(), "{b}");
    run_ok(&mut t.wharf_verify_key(&key, &bundle, s(&t.file)));
    run_ok(&mut t.wharf_verify_key(&key, &bundle, &t.digest_arg()));
    run_ok(&mut t.cosign_verify("verify-blob", &bundle, &["--key", key.public()], &t.file));

    // Another key, another file: refused, naming why.
    let other = openssl_key(t.dir.path(), "other");
    let line = error_line(&run_fail(&mut t.wharf_verify_key(
        &other,
        &bundle,
        s(&t.file),
    )));
    assert!(line.contains("verifies under the key"), "{line}");
    run_fail(&mut t.cosign_verify("verify-blob", &bundle, &["--key", other.public()], &t.file));
    let line = error_line(&run_fail(&mut t.wharf_verify_key(
        &key,
        &bundle,
        s(&t.tampered()),
    )));
    assert!(line.contains("another artifact"), "{line}");
    // A key bundle does not satisfy an identity policy.
    let line = error_line(&run_fail(&mut t.wharf_verify_octo(
        "verify-blob",
        &bundle,
        s(&t.file),
    )));
    assert!(line.contains("verify with --key"), "{line}");

    // Without the log, verification needs the waiver, in wharf as in cosign.
    let unlogged = t.path("unlogged.sigstore.json");
    run_ok(
        wharf_clean()
            .env("WHARF_PASSWORD", "pw")
            .args([
                "-q",
                "sign-blob",
                "--key",
                key.private(),
                "--tlog-upload=false",
            ])
            .args(["--bundle", s(&unlogged)])
            .arg(&t.file),
    );
    let line = error_line(&run_fail(&mut t.wharf_verify_key(
        &key,
        &unlogged,
        s(&t.file),
    )));
    assert!(line.contains("--insecure-ignore-tlog"), "{line}");
    run_ok(
        t.wharf_verify_key(&key, &unlogged, s(&t.file))
            .arg("--insecure-ignore-tlog"),
    );
}

#[test]
fn cosign_and_sigstore_python_blob_bundles_verify_in_wharf() {
    let t = setup();
    // cosign, keyless.
    let cosign_keyless = t.path("cosign-keyless.json");
    run_ok(&mut t.cosign_sign(
        "sign-blob",
        &cosign_keyless,
        &["--identity-token", &t.si.token("")],
    ));
    run_ok(&mut t.wharf_verify_octo("verify-blob", &cosign_keyless, s(&t.file)));
    run_ok(&mut t.wharf_verify_octo("verify-blob", &cosign_keyless, &t.digest_arg()));
    run_fail(&mut t.wharf_verify_octo("verify-blob", &cosign_keyless, s(&t.tampered())));

    // cosign, with a key of its own format.
    let key = common::keys::cosign_key(t.dir.path(), "cosign", "pw");
    let cosign_key = t.path("cosign-key.json");
    run_ok(
        t.cosign_sign("sign-blob", &cosign_key, &["--key", key.private()])
            .env("COSIGN_PASSWORD", "pw"),
    );
    run_ok(&mut t.wharf_verify_key(&key, &cosign_key, s(&t.file)));

    // sigstore-python, keyless.
    let python = t.path("python.json");
    run_ok(
        t.si.sigstore_python()
            .args(["sign", "--identity-token", &t.si.token("")])
            .args(["--bundle", s(&python)])
            .arg(&t.file),
    );
    run_ok(&mut t.wharf_verify_octo("verify-blob", &python, s(&t.file)));
    run_fail(&mut t.wharf_verify_octo("verify-blob", &python, s(&t.tampered())));
}

#[test]
fn blob_attestations_verify_in_wharf_cosign_and_sigstore_python_both_ways() {
    let t = setup();
    let predicate = t.path("provenance.json");
    fs::write(
        &predicate,
        b"{\"buildDefinition\": {\"buildType\": \"https://example.com/build/v1\", \"externalParameters\": {}}, \"runDetails\": {\"builder\": {\"id\": \"https://example.com/builder\"}}}\n",
    )
    .unwrap();
    let bundle = t.path("attestation.sigstore.json");
    run_ok(&mut t.wharf_keyless(
        "attest-blob",
        &bundle,
        &["--type", "slsaprovenance1", "--predicate", s(&predicate)],
    ));
    let b = bundle_json(&bundle);
    assert_eq!(
        b["dsseEnvelope"]["payloadType"],
        "application/vnd.in-toto+json"
    );
    assert_eq!(
        b["verificationMaterial"]["tlogEntries"][0]["kindVersion"]["kind"],
        "dsse"
    );

    // wharf prints the statement: the file is its subject, the predicate as given.
    let out = run_ok(
        t.wharf_verify_octo("verify-blob-attestation", &bundle, s(&t.file))
            .args(["--type", "slsaprovenance1"]),
    );
    let statement: Value = serde_json::from_str(stdout_of(&out).trim()).unwrap();
    assert_eq!(statement["predicateType"], SLSA1);
    assert_eq!(
        statement["subject"][0]["digest"]["sha256"],
        sha256_hex(&fs::read(&t.file).unwrap())
    );
    assert_eq!(statement["subject"][0]["name"], "wharf-linux-amd64.tar.gz");
    run_ok(
        t.wharf_verify_octo("verify-blob-attestation", &bundle, &t.digest_arg())
            .args(["--type", "slsaprovenance1"]),
    );
    let line = error_line(&run_fail(
        t.wharf_verify_octo("verify-blob-attestation", &bundle, s(&t.file))
            .args(["--type", "cyclonedx"]),
    ));
    assert!(
        line.contains("no bundle of type https://cyclonedx.org/bom"),
        "{line}"
    );
    let line = error_line(&run_fail(&mut t.wharf_verify_octo(
        "verify-blob-attestation",
        &bundle,
        s(&t.tampered()),
    )));
    assert!(line.contains("bundle for another artifact"), "{line}");
    run_ok(
        t.cosign_verify("verify-blob-attestation", &bundle, &octo_policy(), &t.file)
            .args(["--type", "slsaprovenance1"]),
    );
    run_ok(
        &mut t
            .si
            .sigstore_python_verify(&bundle, &t.si.identity, &t.file),
    );
    run_fail(
        &mut t
            .si
            .sigstore_python_verify(&bundle, &t.si.identity, &t.tampered()),
    );

    // A plain signature is not an attestation.
    let plain = t.path("plain.json");
    run_ok(&mut t.wharf_keyless("sign-blob", &plain, &[]));
    let line = error_line(&run_fail(&mut t.wharf_verify_octo(
        "verify-blob-attestation",
        &plain,
        s(&t.file),
    )));
    assert!(line.contains("not an attestation"), "{line}");

    // cosign's and sigstore-python's attestations verify in wharf.
    let custom = t.path("custom.json");
    fs::write(&custom, b"{\"hello\": \"world\"}").unwrap();
    let cosign_bundle = t.path("cosign-attestation.json");
    run_ok(&mut t.cosign_sign(
        "attest-blob",
        &cosign_bundle,
        &[
            "--identity-token",
            &t.si.token(""),
            "--type",
            "custom",
            "--predicate",
            s(&custom),
        ],
    ));
    let out = run_ok(
        t.wharf_verify_octo("verify-blob-attestation", &cosign_bundle, s(&t.file))
            .args(["--type", "custom"]),
    );
    assert!(stdout_of(&out).contains(CUSTOM), "{}", stdout_of(&out));
    let python_bundle = t.path("python-attestation.json");
    run_ok(
        t.si.sigstore_python()
            .args(["attest", "--identity-token", &t.si.token("")])
            .args(["--predicate-type", SLSA1, "--predicate", s(&predicate)])
            .args(["--bundle", s(&python_bundle)])
            .arg(&t.file),
    );
    run_ok(
        t.wharf_verify_octo("verify-blob-attestation", &python_bundle, s(&t.file))
            .args(["--type", "slsaprovenance1"]),
    );
}

#[test]
fn verify_blob_json_reports_what_was_checked_and_why_it_refused() {
    let t = setup();
    let bundle = t.path("keyless.sigstore.json");
    run_ok(&mut t.wharf_keyless("sign-blob", &bundle, &[]));
    let out = run_ok(
        t.wharf_verify_octo("verify-blob", &bundle, s(&t.file))
            .args(["--output", "json"]),
    );
    let report = parse_json(&out);
    assert_eq!(report["verified"], true);
    assert_eq!(
        report["digest"],
        format!("sha256:{}", sha256_hex(&fs::read(&t.file).unwrap()))
    );
    assert_eq!(report["signer"]["identities"][0], t.si.identity);
    assert_eq!(report["signer"]["issuer"], GITHUB_ISSUER);
    assert_eq!(report["logEntries"], 1);
    assert_eq!(report["times"][0]["source"], "transparency-log");

    let out = run_fail(
        t.wharf_verify_octo("verify-blob", &bundle, s(&t.tampered()))
            .args(["--output", "json"]),
    );
    let answer = parse_json(&out);
    assert_eq!(answer["verified"], false);
    assert_eq!(answer["reason"], "wrong-artifact");
    assert!(answer["error"]
        .as_str()
        .unwrap()
        .contains("another artifact"));
    // Input that is not a bundle says so, as its own reason.
    let junk = t.path("junk.json");
    fs::write(&junk, b"{\"mediaType\": 5").unwrap();
    let out = run_fail(
        t.wharf_verify_octo("verify-blob", &junk, s(&t.file))
            .args(["--output", "json"]),
    );
    assert_eq!(parse_json(&out)["reason"], "input");
    assert!(error_line(&out).contains("junk.json"));
}

#[test]
fn identity_regexps_match_in_full() {
    let t = setup();
    let bundle = t.path("keyless.sigstore.json");
    run_ok(&mut t.wharf_keyless("sign-blob", &bundle, &[]));
    let verify = |regexp: &str| {
        let mut cmd = wharf_clean();
        cmd.arg("verify-blob")
            .args(["--trusted-root", s(&t.si.trusted_root)])
            .args(["--certificate-identity-regexp", regexp])
            .args(["--certificate-oidc-issuer", GITHUB_ISSUER])
            .args(["--bundle", s(&bundle)])
            .arg(&t.file);
        cmd
    };
    // Leftmost-first matching of the bare pattern stops at the first alternative, a prefix
    // of the identity, and would refuse; anchored as ^(?:RE)$ the second alternative matches.
    let identity = regex_escape(&t.si.identity);
    let prefix = "https://github.com/octo-org/octo-repo";
    run_ok(&mut verify(&format!("{prefix}|{identity}")));
    // A prefix alone does not match the whole identity.
    let line = error_line(&run_fail(&mut verify(prefix)));
    assert!(line.contains("wrong identity"), "{line}");
    let line = error_line(&run_fail(&mut verify("octo-org")));
    assert!(line.contains("wrong identity"), "{line}");
    // The issuer regexp too.
    run_ok(
        wharf_clean()
            .arg("verify-blob")
            .args(["--trusted-root", s(&t.si.trusted_root)])
            .args(["--certificate-identity", &t.si.identity])
            .args([
                "--certificate-oidc-issuer-regexp",
                "https://token.actions.githubusercontent|https://token.actions.githubusercontent.com",
            ])
            .args(["--bundle", s(&bundle)])
            .arg(&t.file),
    );
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$".contains(c);
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect()
}

#[test]
fn trusted_root_without_ct_logs_needs_insecure_ignore_sct() {
    let t = setup();
    let bundle = t.path("keyless.sigstore.json");
    run_ok(&mut t.wharf_keyless("sign-blob", &bundle, &[]));
    let mut root: Value = serde_json::from_slice(&fs::read(&t.si.trusted_root).unwrap()).unwrap();
    root["ctlogs"] = Value::Array(vec![]);
    let no_ct = t.path("no-ct-trusted-root.json");
    fs::write(&no_ct, serde_json::to_vec(&root).unwrap()).unwrap();
    let verify = || {
        let mut cmd = wharf_clean();
        cmd.arg("verify-blob")
            .args(["--trusted-root", s(&no_ct)])
            .args(["--certificate-identity-regexp", OCTO_IDENTITY_REGEXP])
            .args(["--certificate-oidc-issuer", GITHUB_ISSUER])
            .args(["--bundle", s(&bundle)])
            .arg(&t.file);
        cmd
    };
    let line = error_line(&run_fail(&mut verify()));
    assert!(line.contains("no CT log"), "{line}");
    assert!(line.contains("--insecure-ignore-sct"), "{line}");
    let out = run_ok(verify().args(["--insecure-ignore-sct", "--output", "json"]));
    let checks = parse_json(&out)["checks"].to_string();
    assert!(checks.contains("SCT was NOT checked"), "{checks}");
}

#[test]
fn failed_signing_writes_nothing_and_bundles_are_replaced_whole() {
    let t = setup();
    let key = openssl_key(t.dir.path(), "k");
    let bundle = t.path("out.sigstore.json");
    // Rekor unreachable: an error, and no bundle.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let out = run_fail(
        wharf_clean()
            .args(["sign-blob", "--key", key.private(), "--rekor-url", &dead])
            .args(["--bundle", s(&bundle)])
            .arg(&t.file),
    );
    assert!(error_line(&out).contains("Rekor"), "{}", stderr_of(&out));
    assert!(!bundle.exists());
    // An existing bundle is replaced by a complete new one; no temporary file is left.
    fs::write(&bundle, b"old").unwrap();
    run_ok(
        wharf_clean()
            .args(["-q", "sign-blob", "--key", key.private()])
            .args(["--rekor-url", &t.si.rekor_url])
            .args(["--bundle", s(&bundle)])
            .arg(&t.file),
    );
    run_ok(&mut t.wharf_verify_key(&key, &bundle, s(&t.file)));
    let leftovers: Vec<_> = fs::read_dir(t.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}
