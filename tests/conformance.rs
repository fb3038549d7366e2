//! The Sigstore conformance suite's bundle verification cases (tests/conformance, vendored
//! from sigstore-conformance; see its README), run through `scripts/sigstore-conformance-client`
//! exactly as the suite's harness runs a client: each case by the artifact's path and by its
//! `sha256:` digest. Happy cases must verify; `_fail` cases must be refused, each for the
//! reason the table below names (the rejection kind wharf reports with `--output json`), so a
//! client that refuses everything cannot pass.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every case and the reason wharf must refuse it for (`None`: it must verify).
const CASES: &[(&str, Option<&str>)] = &[
    (
        "bundle-empty-certificate-chain_fail",
        Some("untrusted-certificate"),
    ),
    ("bundle-from-wrong-instance_fail", Some("tlog-unknown-log")),
    ("bundle-invalid-base64-signature_fail", Some("malformed")),
    // A truncated file is not a bundle at all: refused before the engine sees it.
    ("bundle-malformed-json_fail", Some("input")),
    ("bundle-negative-log-index_fail", Some("malformed")),
    ("bundle-unknown-version_fail", Some("unsupported-version")),
    ("bundle-with-root-cert_fail", Some("untrusted-certificate")),
    ("bundle-with-sct-with-extensions", None),
    ("checkpoint-bad-keyhint_fail", Some("tlog-checkpoint")),
    ("checkpoint-wrong-roothash_fail", Some("tlog-checkpoint")),
    ("dsse-invalid-sig_fail", Some("bad-signature")),
    ("dsse-mismatch-envelope_fail", Some("tlog-entry-mismatch")),
    ("dsse-mismatch-sig_fail", Some("tlog-entry-mismatch")),
    ("happy-path-intoto-in-dsse-v3", None),
    ("happy-path-v0.1", None),
    ("happy-path-v0.2", None),
    ("happy-path-v0.3", None),
    ("happy-path-v0.3-new-mediaType", None),
    ("inclusion-proof-corrupted-hash_fail", Some("tlog-proof")),
    // The entry's public key was changed: its Signed Entry Timestamp no longer verifies.
    ("incorrect-public-key_fail", Some("tlog-promise")),
    ("integrated-time-in-future_fail", Some("outside-validity")),
    ("intoto-expired-certificate_fail", Some("outside-validity")),
    (
        "intoto-log-entry-mismatch_fail",
        Some("tlog-entry-mismatch"),
    ),
    ("intoto-missing-inclusion-proof_fail", Some("tlog-proof")),
    (
        "intoto-set-outside-signing-cert-validity_fail",
        Some("outside-validity"),
    ),
    (
        "intoto-tsa-timestamp-outside-cert-validity_fail",
        Some("outside-validity"),
    ),
    ("intoto-with-custom-trust-root", None),
    ("invalid-checkpoint-signature_fail", Some("tlog-checkpoint")),
    ("invalid-ct-key_fail", Some("sct")),
    // An old proof without its checkpoint: nothing signed vouches for its root.
    ("invalid-inclusion-proof_fail", Some("tlog-checkpoint")),
    ("managed-key-and-trusted-root", None),
    ("managed-key-happy-path", None),
    ("managed-key-no-key_fail", Some("wrong-material")),
    // key.pub is not a valid key: the policy cannot even be built.
    ("managed-key-wrong-key_fail", Some("policy")),
    ("message-digest-mismatch_fail", Some("wrong-artifact")),
    ("rekor2-checkpoint-cosigned", None),
    (
        "rekor2-checkpoint-missing-log-signature_fail",
        Some("tlog-checkpoint"),
    ),
    (
        "rekor2-checkpoint-missing-origin_fail",
        Some("tlog-checkpoint"),
    ),
    (
        "rekor2-checkpoint-missing-root-hash_fail",
        Some("tlog-checkpoint"),
    ),
    (
        "rekor2-checkpoint-missing-size_fail",
        Some("tlog-checkpoint"),
    ),
    ("rekor2-checkpoint-multiple-cosigs", None),
    (
        "rekor2-checkpoint-no-matching-signature_fail",
        Some("tlog-checkpoint"),
    ),
    ("rekor2-checkpoint-origin-not-first", None),
    ("rekor2-checkpoint-two-sigs-cosigned", None),
    ("rekor2-checkpoint-two-sigs-from-origin", None),
    ("rekor2-dsse-happy-path", None),
    ("rekor2-dsse-invalid-sig_fail", Some("bad-signature")),
    (
        "rekor2-dsse-mismatch-envelope_fail",
        Some("tlog-entry-mismatch"),
    ),
    ("rekor2-dsse-mismatch-sig_fail", Some("tlog-entry-mismatch")),
    ("rekor2-happy-path", None),
    ("rekor2-no-inclusion-proof_fail", Some("tlog-proof")),
    ("rekor2-no-timestamp_fail", Some("timestamp-missing")),
    (
        "rekor2-timestamp-outside-trust-root-tsa-validity_fail",
        Some("timestamp-invalid"),
    ),
    (
        "rekor2-timestamp-outside-tsa-cert-validity_fail",
        Some("timestamp-invalid"),
    ),
    (
        "rekor2-timestamp-payload-mismatch_fail",
        Some("timestamp-invalid"),
    ),
    (
        "rekor2-timestamp-untrusted-tsa-with-embedded-cert_fail",
        Some("timestamp-invalid"),
    ),
    (
        "rekor2-timestamp-untrusted-tsa-without-embedded-cert_fail",
        Some("timestamp-invalid"),
    ),
    ("rekor2-timestamp-with-embedded-cert", None),
    ("rekor2-timestamp-with-expired-cert-chain", None),
    (
        "rekor2-timestamp-with-incorrect-time_fail",
        Some("outside-validity"),
    ),
    ("rekor2-timestamp-without-embedded-cert", None),
    ("set-invalid-signature_fail", Some("tlog-promise")),
    ("signature-mismatch_fail", Some("bad-signature")),
    (
        "trust-root-tlog-missing-validity-start_fail",
        Some("trusted-root"),
    ),
    ("trust-root-tlog-validity-end-inclusive", None),
    ("trust-root-tsa-validity-end-inclusive", None),
    (
        "wrong-hashedrekord-artifact_fail",
        Some("tlog-entry-mismatch"),
    ),
    (
        "wrong-hashedrekord-cert-and-sig_fail",
        Some("tlog-entry-mismatch"),
    ),
    ("wrong-hashedrekord-entry_fail", Some("tlog-entry-mismatch")),
    ("wrong-material_fail", Some("wrong-artifact")),
];

const DEFAULT_IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const DEFAULT_ISSUER: &str = "https://token.actions.githubusercontent.com";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn cases_dir() -> PathBuf {
    root().join("tests/conformance/bundle-verify")
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Input {
    Path,
    Digest,
}

/// The suite's `verify-bundle` invocation for one case, through the client script. A case
/// without its own trusted root uses production's (the suite's default), vendored here so the
/// test does not depend on the built-in root of the day.
fn client_command(case: &str, input: Input) -> Command {
    let dir = cases_dir().join(case);
    let artifact = if dir.join("artifact").exists() {
        dir.join("artifact")
    } else {
        cases_dir().join("a.txt")
    };
    let text = |name: &str, default: &str| {
        std::fs::read_to_string(dir.join(name))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| default.to_string())
    };
    let mut cmd = Command::new(root().join("scripts/sigstore-conformance-client"));
    cmd.env("WHARF", env!("CARGO_BIN_EXE_wharf"))
        .env("WHARF_OUTPUT", "json")
        .env("NO_COLOR", "1")
        .env_remove("WHARF_TRUSTED_ROOT")
        .arg("verify-bundle")
        .arg("--bundle")
        .arg(dir.join("bundle.sigstore.json"));
    if dir.join("key.pub").exists() {
        cmd.arg("--key").arg(dir.join("key.pub"));
    } else {
        cmd.args([
            "--certificate-identity",
            &text("identity", DEFAULT_IDENTITY),
        ])
        .args(["--certificate-oidc-issuer", &text("issuer", DEFAULT_ISSUER)]);
    }
    let trusted_root = if dir.join("trusted_root.json").exists() {
        dir.join("trusted_root.json")
    } else {
        root().join("tests/conformance/trusted-roots/public-good.json")
    };
    cmd.arg("--trusted-root").arg(trusted_root);
    match input {
        Input::Path => cmd.arg(&artifact),
        Input::Digest => cmd.arg(format!(
            "sha256:{}",
            common::sha256_hex(&std::fs::read(&artifact).unwrap())
        )),
    };
    cmd
}

/// Runs every case one way and fails, listing them, if any did not behave as the table says.
fn assert_conformant(input: Input) {
    let mut wrong = Vec::new();
    for (case, expected) in CASES {
        let out = client_command(case, input)
            .output()
            .expect("run the client");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        match expected {
            None if out.status.success() => {}
            None => wrong.push(format!("{case}: refused, must verify: {}", stderr.trim())),
            Some(_) if out.status.success() => {
                wrong.push(format!("{case}: verified, must be refused"))
            }
            Some(reason) => {
                let answer: serde_json::Value = serde_json::from_str(&stdout)
                    .unwrap_or_else(|e| panic!("{case}: no JSON answer ({e}): {stdout}{stderr}"));
                if answer["reason"] != *reason {
                    wrong.push(format!(
                        "{case}: refused for {} instead of {reason}: {}",
                        answer["reason"],
                        stderr.trim()
                    ));
                }
                let errors = stderr.lines().filter(|l| l.starts_with("wharf: error:"));
                if errors.count() != 1 {
                    wrong.push(format!("{case}: not exactly one error line: {stderr}"));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of 70 cases wrong ({input:?}):\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn the_table_lists_every_vendored_case() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let in_table: BTreeSet<String> = CASES.iter().map(|(c, _)| c.to_string()).collect();
    assert_eq!(on_disk, in_table);
    assert_eq!(CASES.len(), 70);
    for (case, expected) in CASES {
        assert_eq!(
            case.ends_with("_fail"),
            expected.is_some(),
            "{case}: a case is expected to fail exactly when its name ends in _fail"
        );
    }
}

#[test]
fn every_case_by_artifact_path() {
    assert_conformant(Input::Path);
}

#[test]
fn every_case_by_artifact_digest() {
    assert_conformant(Input::Digest);
}

#[test]
fn staging_flag_uses_the_vendored_staging_root() {
    // A Rekor v2 bundle from staging verifies with --staging and no --trusted-root, and is
    // refused by production's root.
    let dir = cases_dir().join("rekor2-happy-path");
    let run = |staging: bool| {
        let mut cmd = Command::new(root().join("scripts/sigstore-conformance-client"));
        cmd.env("WHARF", env!("CARGO_BIN_EXE_wharf"))
            .env_remove("WHARF_TRUSTED_ROOT")
            .arg("verify-bundle");
        if staging {
            cmd.arg("--staging");
        }
        cmd.arg("--bundle")
            .arg(dir.join("bundle.sigstore.json"))
            .args(["--certificate-identity", DEFAULT_IDENTITY])
            .args(["--certificate-oidc-issuer", DEFAULT_ISSUER])
            .arg(cases_dir().join("a.txt"));
        cmd.output().unwrap()
    };
    let staging = run(true);
    assert!(
        staging.status.success(),
        "{}",
        String::from_utf8_lossy(&staging.stderr)
    );
    assert!(!run(false).status.success());
}

#[test]
fn client_refuses_what_the_protocol_does_not_define() {
    let client = root().join("scripts/sigstore-conformance-client");
    for args in [
        vec!["frobnicate"],
        vec!["verify-bundle", "--bundle"],
        vec!["verify-bundle", "--color", "x", "a.txt"],
        vec![
            "sign-bundle",
            "--in-toto",
            "--identity-token",
            "t",
            "--bundle",
            "b",
            "f",
        ],
    ] {
        let out = Command::new(&client)
            .env("WHARF", env!("CARGO_BIN_EXE_wharf"))
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}
