//! Key handling, no registry needed: `wharf key generate` / `generate-key-pair` write cosign's
//! encrypted format; keys made by cosign and openssl (PKCS#8 plain and PBES2-encrypted, SEC1,
//! `env://VAR`) load in wharf and wharf's load in cosign; fingerprints match openssl's; broken
//! keys and wrong passwords fail with one distinct `wharf: error:` line that never shows the
//! password.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

/// Password of every key in these tests: distinctive, so a leak into output is detectable.
const PASSWORD: &str = "Tr0ub4dor-and-3-horse-battery-staple";
const WRONG_PASSWORD: &str = "not-the-right-one-42";

fn openssl() -> Command {
    Command::new(require_tool("openssl"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// `wharf key generate --output-key-prefix DIR/NAME` with [`PASSWORD`]; returns (key, pub).
fn wharf_generate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let prefix = dir.join(name);
    run_ok(
        wharf()
            .args(["key", "generate", "--output-key-prefix"])
            .arg(&prefix)
            .env("WHARF_PASSWORD", PASSWORD),
    );
    (prefix.with_extension("key"), prefix.with_extension("pub"))
}

/// `cosign generate-key-pair --output-key-prefix DIR/NAME` with [`PASSWORD`].
fn cosign_generate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let prefix = dir.join(name);
    run_ok(
        cosign()
            .args(["generate-key-pair", "--output-key-prefix"])
            .arg(&prefix)
            .env("COSIGN_PASSWORD", PASSWORD),
    );
    (prefix.with_extension("key"), prefix.with_extension("pub"))
}

/// A plain PKCS#8 P-256 key made by openssl.
fn openssl_p256(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    run_ok(
        openssl()
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
            ])
            .arg(&path),
    );
    path
}

/// openssl's public key PEM for a private or public key file.
fn openssl_public_pem(key: &Path) -> String {
    let out = run_ok(openssl().arg("pkey").arg("-in").arg(key).arg("-pubout"));
    stdout_of(&out)
}

/// `wharf key public --key KEY` with `password` in WHARF_PASSWORD (if any).
fn wharf_public(key: &str, password: Option<&str>) -> Command {
    let mut cmd = wharf();
    cmd.args(["key", "public", "--key", key]);
    if let Some(pw) = password {
        cmd.env("WHARF_PASSWORD", pw);
    }
    cmd
}

/// Asserts the failure is one `wharf: error:` line on stderr ([`common::single_error_line`]),
/// no other line, not a byte on stdout and no password anywhere; returns that line.
fn single_error_line(out: &Output) -> String {
    let stderr = stderr_of(out);
    let stdout = stdout_of(out);
    for secret in [PASSWORD, WRONG_PASSWORD] {
        assert!(
            !stderr.contains(secret) && !stdout.contains(secret),
            "the password leaked into the output:\nstdout: {stdout}\nstderr: {stderr}"
        );
    }
    assert!(stdout.is_empty(), "stdout of a failure: {stdout:?}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "expected one stderr line, got:\n{stderr}"
    );
    let line = common::single_error_line(out);
    assert!(line.starts_with("wharf: error: "), "{line}");
    line
}

// ---------------------------------------------------------------------------------------
// Generation and inspection
// ---------------------------------------------------------------------------------------

#[test]
fn key_generate_writes_encrypted_private_key_0600_and_public_key() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempdir();
    let (key, public) = wharf_generate(dir.path(), "p");
    let key_text = read(&key);
    assert!(
        key_text.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"),
        "{key_text}"
    );
    assert!(key_text
        .trim_end()
        .ends_with("-----END ENCRYPTED SIGSTORE PRIVATE KEY-----"));
    let mode = fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "mode of {} is {mode:o}", key.display());
    let pub_text = read(&public);
    assert!(
        pub_text.starts_with("-----BEGIN PUBLIC KEY-----\n"),
        "{pub_text}"
    );
    // openssl parses it as a P-256 key.
    let out = run_ok(
        openssl()
            .args(["pkey", "-pubin", "-noout", "-text", "-in"])
            .arg(&public),
    );
    assert!(stdout_of(&out).contains("P-256"), "{}", stdout_of(&out));
}

#[test]
fn generate_key_pair_alias_writes_the_same_files() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempdir();
    let prefix = dir.path().join("alias");
    run_ok(
        wharf()
            .args(["generate-key-pair", "--output-key-prefix"])
            .arg(&prefix)
            .env("WHARF_PASSWORD", PASSWORD),
    );
    let key = prefix.with_extension("key");
    assert!(read(&key).starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"));
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let public = prefix.with_extension("pub");
    let out = run_ok(&mut wharf_public(s(&key), Some(PASSWORD)));
    assert_eq!(stdout_of(&out), read(&public));
}

#[test]
fn key_generate_refuses_to_overwrite_without_force() {
    let dir = tempdir();
    let (key, _) = wharf_generate(dir.path(), "p");
    let before = read(&key);
    let prefix = dir.path().join("p");
    let out = run_fail(
        wharf()
            .args(["key", "generate", "--output-key-prefix"])
            .arg(&prefix)
            .env("WHARF_PASSWORD", PASSWORD),
    );
    let line = single_error_line(&out);
    assert!(line.contains("already exists"), "{line}");
    assert_eq!(read(&key), before, "the existing key was changed");
}

#[test]
fn fingerprint_matches_openssl_sha256_of_der_spki() {
    let dir = tempdir();
    let (key, public) = wharf_generate(dir.path(), "p");
    let der = run_ok(
        openssl()
            .args(["pkey", "-pubin", "-outform", "DER", "-in"])
            .arg(&public),
    )
    .stdout;
    let expected = sha256_hex(&der);
    // Cross-check with openssl's own digest tool.
    let dgst = run_ok(
        Command::new("sh")
            .arg("-c")
            .arg("openssl pkey -pubin -in \"$1\" -outform DER | openssl dgst -sha256")
            .arg("sh")
            .arg(&public),
    );
    assert!(stdout_of(&dgst).trim_end().ends_with(&expected));

    let out = run_ok(wharf().args(["key", "fingerprint", s(&public)]));
    assert_eq!(stdout_of(&out).trim(), expected);
    // JSON output, and the private key's fingerprint is its public half's.
    let out = run_ok(
        wharf()
            .args(["key", "fingerprint", "--output", "json", s(&key)])
            .env("WHARF_PASSWORD", PASSWORD),
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["sha256"], expected.as_str());
}

#[test]
fn key_public_prints_the_pub_file() {
    let dir = tempdir();
    let (key, public) = wharf_generate(dir.path(), "p");
    let out = run_ok(&mut wharf_public(s(&key), Some(PASSWORD)));
    assert_eq!(stdout_of(&out), read(&public));
    // --output-file writes the same.
    let file = dir.path().join("again.pub");
    run_ok(
        wharf_public(s(&key), Some(PASSWORD))
            .arg("--output-file")
            .arg(&file),
    );
    assert_eq!(read(&file), read(&public));
    // COSIGN_PASSWORD works as well as WHARF_PASSWORD.
    let out = run_ok(
        wharf()
            .args(["key", "public", "--key", s(&key)])
            .env("COSIGN_PASSWORD", PASSWORD),
    );
    assert_eq!(stdout_of(&out), read(&public));
}

#[test]
fn cosign_generated_keys_load_in_wharf() {
    let dir = tempdir();
    let (key, public) = cosign_generate(dir.path(), "c");
    assert!(read(&key).starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"));
    let out = run_ok(&mut wharf_public(s(&key), Some(PASSWORD)));
    assert_eq!(stdout_of(&out), read(&public));
    let fp = run_ok(wharf().args(["key", "fingerprint", s(&public)]));
    let der = run_ok(
        openssl()
            .args(["pkey", "-pubin", "-outform", "DER", "-in"])
            .arg(&public),
    )
    .stdout;
    assert_eq!(stdout_of(&fp).trim(), sha256_hex(&der));
}

#[test]
fn wharf_generated_keys_load_in_cosign() {
    let dir = tempdir();
    let (key, public) = wharf_generate(dir.path(), "p");
    let out = run_ok(
        cosign()
            .args(["public-key", "--key"])
            .arg(&key)
            .env("COSIGN_PASSWORD", PASSWORD),
    );
    assert_eq!(stdout_of(&out), read(&public));
}

#[test]
fn pkcs8_plain_key_loads() {
    let dir = tempdir();
    let key = openssl_p256(dir.path(), "plain.pem");
    assert!(read(&key).starts_with("-----BEGIN PRIVATE KEY-----"));
    // No password is needed (none is set, stdin is not a terminal).
    let out = run_ok(&mut wharf_public(s(&key), None));
    assert_eq!(stdout_of(&out), openssl_public_pem(&key));
}

#[test]
fn pkcs8_encrypted_pbes2_key_loads() {
    let dir = tempdir();
    let plain = openssl_p256(dir.path(), "plain.pem");
    let encrypted = dir.path().join("encrypted.pem");
    run_ok(
        openssl()
            .args(["pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in"])
            .arg(&plain)
            .arg("-out")
            .arg(&encrypted)
            .arg("-passout")
            .arg(format!("pass:{PASSWORD}")),
    );
    assert!(read(&encrypted).starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    let out = run_ok(&mut wharf_public(s(&encrypted), Some(PASSWORD)));
    assert_eq!(stdout_of(&out), openssl_public_pem(&plain));
}

#[test]
fn sec1_key_loads() {
    let dir = tempdir();
    let plain = openssl_p256(dir.path(), "plain.pem");
    let sec1 = dir.path().join("sec1.pem");
    run_ok(
        openssl()
            .arg("ec")
            .arg("-in")
            .arg(&plain)
            .arg("-out")
            .arg(&sec1),
    );
    assert!(read(&sec1).starts_with("-----BEGIN EC PRIVATE KEY-----"));
    let out = run_ok(&mut wharf_public(s(&sec1), None));
    assert_eq!(stdout_of(&out), openssl_public_pem(&plain));
}

#[test]
fn env_references_load_plain_and_encrypted_keys() {
    let dir = tempdir();
    let plain = openssl_p256(dir.path(), "plain.pem");
    let out =
        run_ok(wharf_public("env://WHARF_TEST_KEY", None).env("WHARF_TEST_KEY", read(&plain)));
    assert_eq!(stdout_of(&out), openssl_public_pem(&plain));

    let (key, public) = wharf_generate(dir.path(), "p");
    let out =
        run_ok(wharf_public("env://SIGNING_KEY", Some(PASSWORD)).env("SIGNING_KEY", read(&key)));
    assert_eq!(stdout_of(&out), read(&public));

    // A public key from the environment, for fingerprint.
    let out = run_ok(
        wharf()
            .args(["key", "fingerprint", "env://PUB"])
            .env("PUB", read(&public)),
    );
    let file_fp = run_ok(wharf().args(["key", "fingerprint", s(&public)]));
    assert_eq!(stdout_of(&out), stdout_of(&file_fp));
}

#[test]
fn env_reference_to_unset_variable_fails() {
    let out = run_fail(
        wharf_public("env://WHARF_TEST_UNSET_KEY_VAR", None).env_remove("WHARF_TEST_UNSET_KEY_VAR"),
    );
    let line = single_error_line(&out);
    assert!(line.contains("WHARF_TEST_UNSET_KEY_VAR"), "{line}");
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// The error line of `wharf key public` for each broken-key case, keyed by case name.
/// Every case must fail; the password is [`WRONG_PASSWORD`] or [`PASSWORD`] as the case needs.
fn error_case(dir: &Path, case: &str) -> String {
    let out = match case {
        "wrong password (cosign format)" => {
            let (key, _) = wharf_generate(dir, "p");
            run_fail(&mut wharf_public(s(&key), Some(WRONG_PASSWORD)))
        }
        "wrong password (PKCS#8 PBES2)" => {
            let plain = openssl_p256(dir, "plain.pem");
            let encrypted = dir.join("encrypted.pem");
            run_ok(
                openssl()
                    .args(["pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in"])
                    .arg(&plain)
                    .arg("-out")
                    .arg(&encrypted)
                    .arg("-passout")
                    .arg(format!("pass:{PASSWORD}")),
            );
            run_fail(&mut wharf_public(s(&encrypted), Some(WRONG_PASSWORD)))
        }
        "RSA key" => {
            let key = dir.join("rsa.pem");
            run_ok(
                openssl()
                    .args([
                        "genpkey",
                        "-algorithm",
                        "RSA",
                        "-pkeyopt",
                        "rsa_keygen_bits:2048",
                        "-out",
                    ])
                    .arg(&key),
            );
            run_fail(&mut wharf_public(s(&key), Some(PASSWORD)))
        }
        "P-384 key" => {
            let key = dir.join("p384.pem");
            run_ok(
                openssl()
                    .args([
                        "genpkey",
                        "-algorithm",
                        "EC",
                        "-pkeyopt",
                        "ec_paramgen_curve:P-384",
                        "-out",
                    ])
                    .arg(&key),
            );
            run_fail(&mut wharf_public(s(&key), Some(PASSWORD)))
        }
        "truncated file" => {
            let (key, _) = wharf_generate(dir, "p");
            let text = read(&key);
            let cut = dir.join("truncated.key");
            fs::write(&cut, &text[..text.len() / 2]).unwrap();
            run_fail(&mut wharf_public(s(&cut), Some(PASSWORD)))
        }
        "garbled file" => {
            // Valid PEM armour around a DER body with one base64 character changed early
            // on, where it breaks the ASN.1 structure.
            let plain = openssl_p256(dir, "plain.pem");
            let text = read(&plain);
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            let body = &mut lines[1];
            let replacement = if body.as_bytes()[10] == b'A' {
                "B"
            } else {
                "A"
            };
            body.replace_range(10..11, replacement);
            let garbled = dir.join("garbled.pem");
            fs::write(&garbled, lines.join("\n") + "\n").unwrap();
            run_fail(&mut wharf_public(s(&garbled), Some(PASSWORD)))
        }
        other => panic!("unknown case {other}"),
    };
    single_error_line(&out)
}

#[test]
fn wrong_password_is_reported_without_echoing_it() {
    let dir = tempdir();
    let line = error_case(dir.path(), "wrong password (cosign format)");
    assert!(line.contains("wrong password"), "{line}");
}

#[test]
fn wrong_password_for_cosign_generated_key() {
    let dir = tempdir();
    let (key, _) = cosign_generate(dir.path(), "c");
    let out = run_fail(&mut wharf_public(s(&key), Some(WRONG_PASSWORD)));
    let line = single_error_line(&out);
    assert!(line.contains("wrong password"), "{line}");
}

#[test]
fn wrong_password_for_encrypted_pkcs8_key() {
    let dir = tempdir();
    let line = error_case(dir.path(), "wrong password (PKCS#8 PBES2)");
    assert!(line.contains("wrong password"), "{line}");
}

#[test]
fn rsa_key_is_refused_as_not_p256() {
    let dir = tempdir();
    let line = error_case(dir.path(), "RSA key");
    assert!(line.contains("P-256"), "{line}");
}

#[test]
fn p384_key_is_refused_as_not_p256() {
    let dir = tempdir();
    let line = error_case(dir.path(), "P-384 key");
    assert!(line.contains("P-256"), "{line}");
}

#[test]
fn p384_sec1_key_and_public_key_are_refused() {
    let dir = tempdir();
    let key = dir.path().join("p384.pem");
    run_ok(
        openssl()
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-384",
                "-out",
            ])
            .arg(&key),
    );
    let sec1 = dir.path().join("p384-sec1.pem");
    run_ok(
        openssl()
            .arg("ec")
            .arg("-in")
            .arg(&key)
            .arg("-out")
            .arg(&sec1),
    );
    let line = single_error_line(&run_fail(&mut wharf_public(s(&sec1), None)));
    assert!(line.contains("P-256"), "{line}");

    let public = dir.path().join("p384.pub");
    fs::write(&public, openssl_public_pem(&key)).unwrap();
    let line = single_error_line(&run_fail(wharf().args(["key", "fingerprint", s(&public)])));
    assert!(line.contains("P-256"), "{line}");
}

#[test]
fn truncated_key_file_is_refused() {
    let dir = tempdir();
    let line = error_case(dir.path(), "truncated file");
    assert!(line.contains("truncated"), "{line}");
}

#[test]
fn garbled_key_file_is_refused() {
    let dir = tempdir();
    let line = error_case(dir.path(), "garbled file");
    assert!(line.contains("garbled"), "{line}");
}

#[test]
fn public_key_given_as_private_key_is_refused() {
    let dir = tempdir();
    let (_, public) = wharf_generate(dir.path(), "p");
    let line = single_error_line(&run_fail(&mut wharf_public(s(&public), None)));
    assert!(line.contains("public key"), "{line}");
}

#[test]
fn key_error_messages_are_distinct() {
    let dir = tempdir();
    let cases = [
        "wrong password (cosign format)",
        "RSA key",
        "P-384 key",
        "truncated file",
        "garbled file",
    ];
    let mut seen: Vec<(String, String)> = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let sub = dir.path().join(i.to_string());
        fs::create_dir(&sub).unwrap();
        let line = error_case(&sub, case);
        // `wharf: error: key PATH: MESSAGE` (temp paths hold no ": ").
        let message = line
            .strip_prefix("wharf: error: key ")
            .and_then(|rest| rest.split_once(": "))
            .map(|(_, message)| message.to_string())
            .unwrap_or_else(|| panic!("{case}: unexpected error shape: {line}"));
        // RSA and P-384 both say "not P-256" but name the algorithm/curve.
        for (other_case, other) in &seen {
            assert_ne!(
                &message, other,
                "{case:?} and {other_case:?} fail with the same message"
            );
        }
        seen.push((case.to_string(), message));
    }
    let kinds: Vec<&str> = seen
        .iter()
        .map(|(_, m)| {
            if m.contains("wrong password") {
                "password"
            } else if m.contains("P-256") {
                "curve"
            } else if m.contains("truncated") {
                "truncated"
            } else if m.contains("garbled") {
                "garbled"
            } else {
                "other"
            }
        })
        .collect();
    assert_eq!(
        kinds,
        ["password", "curve", "curve", "truncated", "garbled"],
        "{seen:?}"
    );
}

#[test]
fn no_password_and_no_terminal_names_wharf_password() {
    let dir = tempdir();
    let (key, _) = wharf_generate(dir.path(), "p");
    // run_fail closes stdin (not a terminal) and wharf() removes WHARF_/COSIGN_PASSWORD.
    let out = run_fail(&mut wharf_public(s(&key), None));
    let line = single_error_line(&out);
    assert!(line.contains("WHARF_PASSWORD"), "{line}");

    // Generating a key without a password fails the same way and writes nothing.
    let prefix = dir.path().join("new");
    let out = run_fail(
        wharf()
            .args(["key", "generate", "--output-key-prefix"])
            .arg(&prefix),
    );
    let line = single_error_line(&out);
    assert!(line.contains("WHARF_PASSWORD"), "{line}");
    assert!(!prefix.with_extension("key").exists());
    assert!(!prefix.with_extension("pub").exists());
}

#[test]
fn password_file_is_read() {
    let dir = tempdir();
    let (key, public) = wharf_generate(dir.path(), "p");
    let file = dir.path().join("pw.txt");
    fs::write(&file, format!("{PASSWORD}\n")).unwrap();
    let out = run_ok(
        wharf()
            .args(["key", "public", "--key", s(&key), "--password-file"])
            .arg(&file),
    );
    assert_eq!(stdout_of(&out), read(&public));
}
