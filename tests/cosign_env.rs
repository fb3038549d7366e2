//! The environment variables cosign users set, as wharf reads them:
//!
//! - `SIGSTORE_ID_TOKEN`: the identity token for keyless signing, as `--identity-token`;
//! - `COSIGN_PASSWORD`: the password of a signing key, as `WHARF_PASSWORD`;
//! - `SIGSTORE_ROOT_FILE`: for cosign a PEM file of Fulcio CAs alone; wharf takes a whole
//!   trusted_root.json, so a keyless command refuses to run while it is set (rather than
//!   trusting the public-good CAs the user meant to replace), unless `--trusted-root` says
//!   what to trust. Key-based commands, which no CA concerns, are not affected.

mod common;

use common::cosign;
use common::keys::wharf_key;
use common::standin::{SigstoreStandIn, GITHUB_ISSUER, OCTO_IDENTITY_REGEXP};
use common::*;
use std::process::Command;

const PASSWORD: &str = "cosign-env-test-58e3";

fn sig_tags(reg: &Registry, name: &str) -> Vec<String> {
    reg.tags(name)
        .into_iter()
        .filter(|t| t.ends_with(".sig"))
        .collect()
}

/// `wharf verify` keyless with the octo-org policy and `si`'s trust root.
fn wharf_verify_keyless(si: &SigstoreStandIn, image: &str) -> Command {
    let mut cmd = wharf_clean();
    cmd.args(["verify", "--allow-insecure-registry"])
        .args(si.wharf_verify_args())
        .args(["--certificate-identity-regexp", OCTO_IDENTITY_REGEXP])
        .args(["--certificate-oidc-issuer", GITHUB_ISSUER])
        .arg(image);
    cmd
}

#[test]
fn sigstore_id_token_signs_keyless_like_identity_token() {
    let si = SigstoreStandIn::start();
    let reg = Registry::start();
    let img = push_to(&reg, "app", &["linux/amd64"], 1);
    run_ok(
        wharf_clean()
            .args(["sign", "--allow-insecure-registry"])
            .args(si.wharf_args())
            .arg(img.index())
            .env("SIGSTORE_ID_TOKEN", si.token("")),
    );
    assert_eq!(sig_tags(&reg, "app").len(), 1);
    run_ok(&mut wharf_verify_keyless(&si, &img.index()));
    let mut cosign = cosign();
    si.cosign_env(&mut cosign);
    run_ok(
        cosign
            .args(["verify", "--allow-insecure-registry"])
            .args(["--certificate-identity-regexp", OCTO_IDENTITY_REGEXP])
            .args(["--certificate-oidc-issuer", GITHUB_ISSUER])
            .arg(img.index()),
    );
}

#[test]
fn cosign_password_decrypts_the_signing_key() {
    let reg = Registry::start();
    let dir = tempdir();
    let key = wharf_key(dir.path(), "release", PASSWORD);
    let img = push_to(&reg, "app", &["linux/amd64"], 2);
    let sign = |password: Option<&str>| {
        let mut cmd = wharf_clean();
        cmd.args(["sign", "--allow-insecure-registry", "--tlog-upload=false"])
            .args(["--key", key.private(), &img.index()]);
        if let Some(password) = password {
            cmd.env("COSIGN_PASSWORD", password);
        }
        cmd
    };
    let out = run_fail(&mut sign(Some("not-the-password")));
    assert!(
        error_line(&out).contains("password"),
        "{}",
        error_line(&out)
    );
    assert!(sig_tags(&reg, "app").is_empty());
    run_ok(&mut sign(Some(PASSWORD)));
    run_ok(&mut wharf_verify_key(key.public(), &img.index()));
}

#[test]
fn sigstore_root_file_is_refused_where_fulcio_cas_matter_unless_a_trusted_root_is_given() {
    let si = SigstoreStandIn::start();
    let reg = Registry::start();
    let dir = tempdir();
    let img = push_to(&reg, "app", &["linux/amd64"], 3);
    let root_file = si.fulcio_root_pem.clone();

    // Keyless signing without --trusted-root: refused before any token or certificate is
    // asked for, nothing written.
    let out = run_fail(
        wharf_clean()
            .args(["sign", "--allow-insecure-registry"])
            .args(["--fulcio-url", &si.fulcio_url, "--rekor-url", &si.rekor_url])
            .args(["--identity-token", &si.token("")])
            .arg(img.index())
            .env("SIGSTORE_ROOT_FILE", &root_file),
    );
    let line = error_line(&out);
    assert!(
        line.contains("SIGSTORE_ROOT_FILE") && line.contains("--trusted-root"),
        "{line}"
    );
    assert!(sig_tags(&reg, "app").is_empty());

    // With --trusted-root, that is what is trusted.
    run_ok(
        wharf_clean()
            .args(["sign", "--allow-insecure-registry"])
            .args(si.wharf_args())
            .args(["--identity-token", &si.token("")])
            .arg(img.index())
            .env("SIGSTORE_ROOT_FILE", &root_file),
    );
    run_ok(wharf_verify_keyless(&si, &img.index()).env("SIGSTORE_ROOT_FILE", &root_file));

    // Keyless verification without --trusted-root: refused, nothing on stdout.
    let out = run_fail(
        wharf_clean()
            .args(["verify", "--allow-insecure-registry"])
            .args(["--rekor-url", &si.rekor_url])
            .args(["--certificate-identity-regexp", OCTO_IDENTITY_REGEXP])
            .args(["--certificate-oidc-issuer", GITHUB_ISSUER])
            .arg(img.index())
            .env("SIGSTORE_ROOT_FILE", &root_file),
    );
    assert!(error_line(&out).contains("SIGSTORE_ROOT_FILE"));
    assert!(out.stdout.is_empty());

    // A key concerns no CA: the variable changes nothing.
    let key = wharf_key(dir.path(), "release", PASSWORD);
    run_ok(
        wharf_clean()
            .args(["sign", "--allow-insecure-registry", "--tlog-upload=false"])
            .args(["--key", key.private(), &img.index()])
            .env("WHARF_PASSWORD", PASSWORD)
            .env("SIGSTORE_ROOT_FILE", &root_file),
    );
    run_ok(wharf_verify_key(key.public(), &img.index()).env("SIGSTORE_ROOT_FILE", &root_file));
}
