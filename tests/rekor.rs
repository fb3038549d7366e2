//! Logging in Rekor v1 when the entry is there already: Rekor answers 409 Conflict with a
//! `Location` naming the existing entry, and wharf returns that entry (as cosign does) once it
//! has shown it is the entry it asked for. P-256 signing is deterministic (RFC 6979), so
//! signing the same thing with the same key logs the same entry twice: a rerun after a crash
//! between logging and storing, or one envelope stored in two formats.
//!
//! Against the loopback Sigstore stand-in (which answers duplicates as production Rekor does),
//! and hostile Rekors: a 409 naming another entry, naming none, naming one on another host,
//! or answering the entry with 1 GiB.

mod common;

use common::fake_registry::{FakeRequest, FakeResponse, FakeServer, GIB};
use common::hostile::{assert_refused, run_bounded};
use common::keys::{openssl_key, Key};
use common::standin::SigstoreStandIn;
use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use wharf::cosign::attestation::{pae, Envelope, IN_TOTO_PAYLOAD_TYPE};
use wharf::sign::{keys, KeySigner, Signer};
use wharf::sigstore::rekor::{self, LogEntry};

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// What identifies a log entry (the SET is signed afresh on every read).
fn identity(e: &LogEntry) -> (i64, String, String, i64, String, String) {
    let p = &e.bundle.payload;
    (
        p.log_index,
        p.log_id.clone(),
        p.body.clone(),
        p.integrated_time,
        e.kind.clone(),
        e.version.clone(),
    )
}

#[test]
fn the_same_envelope_logged_twice_is_the_same_entry() {
    let si = SigstoreStandIn::start();
    let signer = KeySigner::new(keys::generate());
    let statement = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"x","digest":{"sha256":"0000000000000000000000000000000000000000000000000000000000000000"}}],"predicateType":"https://example.com/p","predicate":{}}"#;
    let signature = signer.sign(&pae(IN_TOTO_PAYLOAD_TYPE, statement)).unwrap();
    let envelope = Envelope::new(statement, &signature).to_bytes();
    let dsse = rekor::dsse(&envelope, &signer.verifier_pem());
    let payload = b"a signed payload";
    let hashedrekord = rekor::hashedrekord(
        payload,
        &signer.sign(payload).unwrap(),
        &signer.verifier_pem(),
    );
    let http = reqwest::Client::new();

    runtime().block_on(async {
        for entry in [&dsse, &hashedrekord] {
            let first = rekor::upload(&http, &si.rekor_url, entry).await.unwrap();
            let again = rekor::upload(&http, &si.rekor_url, entry).await.unwrap();
            assert_eq!(identity(&again), identity(&first));
            assert!(again.inclusion_proof.is_some(), "no inclusion proof");
        }
    });
    assert_eq!(si.tree_size(), 2, "one entry per distinct signature");
    assert_eq!(
        si.log().matches("POST /api/v1/log/entries -> 409").count(),
        2,
        "{}",
        si.log()
    );
}

/// `wharf sign-blob --key KEY --bundle OUT FILE`, logged in `rekor_url`.
fn sign_blob(key: &Key, rekor_url: &str, bundle: &Path, file: &Path) -> Command {
    let mut cmd = wharf_clean();
    cmd.args(["-q", "sign-blob", "--key", key.private()])
        .args(["--rekor-url", rekor_url])
        .args(["--bundle", s(bundle)])
        .arg(file);
    cmd
}

/// `wharf verify-blob --key` of `file` with `bundle`, under the stand-in's trust, to success.
fn verify_blob(si: &SigstoreStandIn, key: &Key, bundle: &Path, file: &Path) {
    run_ok(
        wharf_clean()
            .args(["verify-blob", "--key", key.public()])
            .args(["--trusted-root", s(&si.trusted_root)])
            .args(["--bundle", s(bundle)])
            .arg(file),
    );
}

/// Signing the same file again (a rerun after a crash that lost the first bundle) gets the
/// entry already logged, and its bundle verifies.
#[test]
fn signing_a_file_again_reuses_its_log_entry_and_verifies() {
    let si = SigstoreStandIn::start();
    let tmp = tempdir();
    let key = openssl_key(tmp.path(), "release");
    let file = tmp.path().join("app.tar.gz");
    std::fs::write(&file, b"release bytes\n").unwrap();
    let (first, again) = (tmp.path().join("first.json"), tmp.path().join("again.json"));
    run_ok(&mut sign_blob(&key, &si.rekor_url, &first, &file));
    run_ok(&mut sign_blob(&key, &si.rekor_url, &again, &file));
    assert_eq!(si.tree_size(), 1);
    let entry = |path: &Path| -> serde_json::Value {
        let bundle: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let e = &bundle["verificationMaterial"]["tlogEntries"][0];
        serde_json::json!([e["logIndex"], e["canonicalizedBody"], e["integratedTime"]])
    };
    assert_eq!(entry(&again), entry(&first));
    verify_blob(&si, &key, &again, &file);
}

/// A Rekor in front of the stand-in that answers every entry as a duplicate: a POST is
/// answered 409 naming `location(uuid)` for the stand-in's `existing` entry (raw `{uuid:
/// entry}` JSON); GETs of entries are answered by `entry`.
fn conflicting_rekor(
    location: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    entry: impl Fn(&FakeRequest) -> FakeResponse + Send + Sync + 'static,
    existing: &serde_json::Value,
) -> FakeServer {
    let uuid = existing
        .as_object()
        .and_then(|m| m.keys().next())
        .expect("an entry map")
        .clone();
    FakeServer::start(move |req| {
        if req.method == "POST" {
            let mut answer = FakeResponse::json(
                409,
                &serde_json::json!({"code": 409, "message": "an equivalent entry already exists in the transparency log"}),
            );
            if let Some(l) = location(&uuid) {
                answer = answer.with_header("Location", &l);
            }
            answer
        } else {
            entry(req)
        }
    })
}

/// Signs `name` in the stand-in with `key`; the raw `{uuid: entry}` Rekor then holds for it.
fn logged_entry(si: &SigstoreStandIn, dir: &Path, key: &Key, name: &str) -> serde_json::Value {
    let file = dir.join(name);
    std::fs::write(&file, name.as_bytes()).unwrap();
    run_ok(&mut sign_blob(
        key,
        &si.rekor_url,
        &dir.join(format!("{name}.json")),
        &file,
    ));
    si.log_entry(si.tree_size() - 1)
}

/// Runs `cmd` with a time and memory bound and asserts one error line naming `needles`,
/// with no bundle written.
fn refused(cmd: &mut Command, bundle: &Path, needles: &[&str]) -> String {
    let run = run_bounded(cmd, Duration::from_secs(60));
    let line = assert_refused(&run, needles);
    assert!(
        run.elapsed < Duration::from_secs(20),
        "took {:?}",
        run.elapsed
    );
    assert!(!bundle.exists(), "a bundle was written: {line}");
    line
}

#[test]
fn a_conflict_naming_another_entry_is_refused() {
    let si = SigstoreStandIn::start();
    let tmp = tempdir();
    let key = openssl_key(tmp.path(), "release");
    // A real entry, of another file: what a confused or lying Rekor points at.
    let other = logged_entry(&si, tmp.path(), &key, "other");
    let answer = other.clone();
    let rekor = conflicting_rekor(
        |uuid| Some(format!("/api/v1/log/entries/{uuid}")),
        move |_| FakeResponse::json(200, &answer),
        &other,
    );
    let file = tmp.path().join("mine");
    std::fs::write(&file, b"mine").unwrap();
    let bundle = tmp.path().join("mine.json");
    refused(
        &mut sign_blob(&key, &rekor.url(""), &bundle, &file),
        &bundle,
        &[
            "409 Conflict",
            "not the entry wharf asked to log",
            "another artifact",
        ],
    );

    // The same entry under a UUID that is not its leaf hash.
    let key_of_other = other.as_object().unwrap().keys().next().unwrap().clone();
    let renamed: serde_json::Value = serde_json::json!({
        "0".repeat(64): other[&key_of_other].clone()
    });
    let rekor = conflicting_rekor(
        |_| Some(format!("/api/v1/log/entries/{}", "0".repeat(64))),
        move |_| FakeResponse::json(200, &renamed),
        &other,
    );
    refused(
        &mut sign_blob(&key, &rekor.url(""), &bundle, &tmp.path().join("other")),
        &bundle,
        &[
            "not the entry wharf asked to log",
            "does not hash to that UUID",
        ],
    );
}

#[test]
fn a_conflict_naming_no_entry_is_refused() {
    let si = SigstoreStandIn::start();
    let tmp = tempdir();
    let key = openssl_key(tmp.path(), "release");
    let existing = logged_entry(&si, tmp.path(), &key, "file");
    for location in [None, Some("/api/v1/log/entries/not-a-uuid".to_string())] {
        let rekor = conflicting_rekor(
            move |_| location.clone(),
            |_| FakeResponse::status(500),
            &existing,
        );
        let bundle = tmp.path().join("again.json");
        refused(
            &mut sign_blob(&key, &rekor.url(""), &bundle, &tmp.path().join("file")),
            &bundle,
            &["409 Conflict", "names none"],
        );
        assert_eq!(rekor.requests().len(), 1, "only the POST");
    }
}

#[test]
fn a_conflicting_entry_of_one_gib_is_refused_at_the_limit() {
    let si = SigstoreStandIn::start();
    let tmp = tempdir();
    let key = openssl_key(tmp.path(), "release");
    let existing = logged_entry(&si, tmp.path(), &key, "file");
    for chunked in [true, false] {
        let rekor = conflicting_rekor(
            |uuid| Some(format!("/api/v1/log/entries/{uuid}")),
            move |_| FakeResponse::huge(200, "application/json", GIB, chunked),
            &existing,
        );
        let bundle = tmp.path().join("again.json");
        refused(
            &mut sign_blob(&key, &rekor.url(""), &bundle, &tmp.path().join("file")),
            &bundle,
            &["Rekor at", "larger than"],
        );
    }
}

/// A `Location` on another host: only the UUID is taken, and looked up on the Rekor the entry
/// was sent to.
#[test]
fn a_conflict_located_on_another_host_is_looked_up_on_the_log_itself() {
    let si = SigstoreStandIn::start();
    let tmp = tempdir();
    let key = openssl_key(tmp.path(), "release");
    let existing = logged_entry(&si, tmp.path(), &key, "file");
    let elsewhere = FakeServer::start(|_| FakeResponse::status(500));
    let elsewhere_url = elsewhere.url("");
    let answer = existing.clone();
    let rekor = conflicting_rekor(
        move |uuid| Some(format!("{elsewhere_url}/api/v1/log/entries/{uuid}")),
        move |_| FakeResponse::json(200, &answer),
        &existing,
    );
    let bundle = tmp.path().join("again.json");
    run_ok(&mut sign_blob(
        &key,
        &rekor.url(""),
        &bundle,
        &tmp.path().join("file"),
    ));
    assert!(
        elsewhere.requests().is_empty(),
        "{:?}",
        elsewhere.requests()
    );
    let uuid = existing.as_object().unwrap().keys().next().unwrap();
    let asked: Vec<String> = rekor.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        asked,
        [
            "/api/v1/log/entries".to_string(),
            format!("/api/v1/log/entries/{uuid}")
        ]
    );
    verify_blob(&si, &key, &bundle, &tmp.path().join("file"));
}
