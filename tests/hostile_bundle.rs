//! Hostile Sigstore bundles and signature stores: each must end in one clear error line, a
//! non-zero exit, memory under the limit and an end in seconds (`common::hostile`).
//!
//! - tampered bundles: an altered DSSE payload, a statement about another artifact, a swapped
//!   certificate, a log entry for another artifact, an altered SET, an inclusion proof of
//!   another entry, a root certificate in the chain;
//! - oversized or pathological input: a huge bundle file, deeply nested JSON, thousands of
//!   log entries, a kilometre-long inclusion proof, a device instead of a file;
//! - registries: junk and unreadable referrers (one bad candidate is a rejection, not an
//!   abort; past the cap the rest are counted, not read), and `verify-attestation
//!   --recursive` over an index whose children have no platform.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::hostile::{assert_refused, run_bounded};
use common::keys::openssl_key;
use common::proxy::{Action, Proxy};
use common::standin::SigstoreStandIn;
use common::*;
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(20);

/// Two files, each keyless-signed (`sign-blob`) and attested (`attest-blob`) against one
/// stand-in: genuine material to tamper with.
struct Material {
    si: SigstoreStandIn,
    dir: TempDir,
    a: PathBuf,
    b: PathBuf,
}

impl Material {
    fn new() -> Material {
        let si = SigstoreStandIn::start();
        let dir = tempdir();
        let m = Material {
            a: dir.path().join("a.bin"),
            b: dir.path().join("b.bin"),
            si,
            dir,
        };
        fs::write(&m.a, b"artifact a\n").unwrap();
        fs::write(&m.b, b"artifact b\n").unwrap();
        let predicate = m.dir.path().join("predicate.json");
        fs::write(&predicate, b"{\"built\": true}").unwrap();
        for file in [&m.a, &m.b] {
            let name = file.file_name().unwrap().to_str().unwrap();
            run_ok(
                wharf_clean()
                    .args(["-q", "sign-blob"])
                    .args(m.si.wharf_args())
                    .args(["--identity-token", &m.si.token("")])
                    .args(["--bundle", s(&m.path(&format!("{name}.sig.json")))])
                    .arg(file),
            );
            run_ok(
                wharf_clean()
                    .args(["-q", "attest-blob", "--type", "custom"])
                    .args(["--predicate", s(&predicate)])
                    .args(m.si.wharf_args())
                    .args(["--identity-token", &m.si.token("")])
                    .args(["--bundle", s(&m.path(&format!("{name}.att.json")))])
                    .arg(file),
            );
        }
        m
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn bundle(&self, name: &str) -> Value {
        serde_json::from_slice(&fs::read(self.path(name)).unwrap()).unwrap()
    }

    fn write(&self, name: &str, bundle: &Value) -> PathBuf {
        let path = self.path(name);
        fs::write(&path, serde_json::to_vec(bundle).unwrap()).unwrap();
        path
    }

    fn verify(&self, verb: &str, bundle: &Path, file: &Path) -> Command {
        self.si.wharf_verify_blob(verb, bundle, file)
    }

    /// Runs `verify` bounded and checks it is refused with all of `needles` in its line.
    fn refused(&self, verb: &str, bundle: &Path, file: &Path, needles: &[&str]) -> String {
        assert_refused(
            &run_bounded(&mut self.verify(verb, bundle, file), LIMIT),
            needles,
        )
    }
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

#[test]
fn tampered_bundles_are_refused_for_what_was_tampered() {
    let m = Material::new();
    // Genuine ones pass.
    run_ok(&mut m.verify("verify-blob", &m.path("a.bin.sig.json"), &m.a));
    run_ok(&mut m.verify("verify-blob-attestation", &m.path("a.bin.att.json"), &m.a));

    // An altered DSSE payload: the statement now names b, the signature is a's.
    let mut att = m.bundle("a.bin.att.json");
    let payload = unb64(att["dsseEnvelope"]["payload"].as_str().unwrap());
    let b_hex = sha256_hex(&fs::read(&m.b).unwrap());
    let a_hex = sha256_hex(&fs::read(&m.a).unwrap());
    let altered = String::from_utf8(payload).unwrap().replace(&a_hex, &b_hex);
    att["dsseEnvelope"]["payload"] = json!(b64(altered.as_bytes()));
    let path = m.write("altered-payload.json", &att);
    m.refused(
        "verify-blob-attestation",
        &path,
        &m.b,
        &["does not verify", "b.bin"],
    );

    // A genuine statement about another artifact.
    m.refused(
        "verify-blob-attestation",
        &m.path("b.bin.att.json"),
        &m.a,
        &["bundle for another artifact", &a_hex],
    );

    // A swapped certificate: b's certificate on a's signature.
    let mut sig = m.bundle("a.bin.sig.json");
    let other = m.bundle("b.bin.sig.json");
    sig["verificationMaterial"]["certificate"] =
        other["verificationMaterial"]["certificate"].clone();
    let path = m.write("swapped-certificate.json", &sig);
    m.refused(
        "verify-blob",
        &path,
        &m.a,
        &["does not verify under its certificate"],
    );

    // A log entry for another artifact: b's genuine entry under a's signature.
    let mut sig = m.bundle("a.bin.sig.json");
    sig["verificationMaterial"]["tlogEntries"] =
        other["verificationMaterial"]["tlogEntries"].clone();
    let path = m.write("entry-of-another-artifact.json", &sig);
    m.refused(
        "verify-blob",
        &path,
        &m.a,
        &[
            "transparency log",
            "different signature, over a different artifact",
        ],
    );

    // An altered SET.
    let mut sig = m.bundle("a.bin.sig.json");
    let promise = &mut sig["verificationMaterial"]["tlogEntries"][0]["inclusionPromise"]
        ["signedEntryTimestamp"];
    let mut set = unb64(promise.as_str().unwrap());
    let last = set.len() - 3;
    set[last] ^= 0x01;
    *promise = json!(b64(&set));
    let path = m.write("altered-set.json", &sig);
    m.refused("verify-blob", &path, &m.a, &["Signed Entry Timestamp"]);

    // b's inclusion proof under a's entry.
    let mut sig = m.bundle("a.bin.sig.json");
    sig["verificationMaterial"]["tlogEntries"][0]["inclusionProof"] =
        other["verificationMaterial"]["tlogEntries"][0]["inclusionProof"].clone();
    let path = m.write("proof-of-another-entry.json", &sig);
    m.refused("verify-blob", &path, &m.a, &["inclusion proof"]);

    // A v0.1-style chain that carries a root: refused, roots come from the trusted root only.
    let mut sig = m.bundle("a.bin.sig.json");
    let leaf = sig["verificationMaterial"]["certificate"].take();
    let root_pem = fs::read_to_string(&m.si.fulcio_root_pem).unwrap();
    let root_der = common_pem_der(&root_pem);
    sig["verificationMaterial"]
        .as_object_mut()
        .unwrap()
        .remove("certificate");
    sig["verificationMaterial"]["x509CertificateChain"] =
        json!({"certificates": [leaf, {"rawBytes": b64(&root_der)}]});
    let path = m.write("root-in-chain.json", &sig);
    m.refused("verify-blob", &path, &m.a, &["root certificate"]);
}

/// The DER of the first PEM block in `pem`.
fn common_pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    unb64(&body)
}

#[test]
fn oversized_and_pathological_bundles_are_refused_quickly() {
    let m = Material::new();
    // A 3 GiB bundle (sparse): refused before it is read.
    let huge = m.path("huge.json");
    fs::File::create(&huge).unwrap().set_len(3 << 30).unwrap();
    m.refused("verify-blob", &huge, &m.a, &["huge.json", "more than"]);

    // Just under the size limit, one enormous string: read, refused, memory bounded.
    let mut sig = m.bundle("a.bin.sig.json");
    sig["padding"] = json!("x".repeat(15 << 20));
    let path = m.write("padded.json", &sig);
    let run = run_bounded(&mut m.verify("verify-blob", &path, &m.a), LIMIT);
    // Unknown fields are ignored: the padded bundle is still a valid one.
    assert!(run.output.status.success(), "{}", run.stderr());
    assert!(run.peak_rss_kib < common::hostile::MEMORY_LIMIT_KIB);

    // Deeply nested JSON.
    let nested = m.path("nested.json");
    let depth = 1_000_000;
    let mut text = String::from("{\"mediaType\":");
    text.push_str(&"[".repeat(depth));
    text.push_str(&"]".repeat(depth));
    text.push('}');
    fs::write(&nested, text).unwrap();
    m.refused(
        "verify-blob",
        &nested,
        &m.a,
        &["nested.json", "not a Sigstore bundle"],
    );

    // Thousands of log entries.
    let mut sig = m.bundle("a.bin.sig.json");
    let entry = sig["verificationMaterial"]["tlogEntries"][0].clone();
    let entries: Vec<Value> = (0..500)
        .map(|i| {
            let mut e = entry.clone();
            e["logIndex"] = json!(i.to_string());
            e
        })
        .collect();
    sig["verificationMaterial"]["tlogEntries"] = json!(entries);
    let path = m.write("many-entries.json", &sig);
    m.refused(
        "verify-blob",
        &path,
        &m.a,
        &["500 transparency log entries, more than 32"],
    );

    // An inclusion proof of 100 000 hashes.
    let mut sig = m.bundle("a.bin.sig.json");
    let hash = json!(b64(&[7u8; 32]));
    sig["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["hashes"] =
        json!(vec![hash; 100_000]);
    let path = m.write("long-proof.json", &sig);
    m.refused("verify-blob", &path, &m.a, &["inclusion proof is too long"]);

    // A checkpoint with thousands of signature lines.
    let mut sig = m.bundle("a.bin.sig.json");
    let checkpoint = &mut sig["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
        ["checkpoint"]["envelope"];
    let mut text = checkpoint.as_str().unwrap().to_string();
    let line = format!("\u{2014} witness {}\n", b64(&[1u8; 68]));
    text.push_str(&line.repeat(5000));
    *checkpoint = json!(text);
    let path = m.write("many-cosignatures.json", &sig);
    m.refused(
        "verify-blob",
        &path,
        &m.a,
        &["checkpoint", "more than 100 signature lines"],
    );

    // Neither bundle nor artifact may be a device or a FIFO.
    m.refused(
        "verify-blob",
        Path::new("/dev/zero"),
        &m.a,
        &["/dev/zero", "not a regular file"],
    );
    let fifo = m.path("fifo");
    run_ok(Command::new("mkfifo").arg(&fifo));
    m.refused("verify-blob", &fifo, &m.a, &["fifo", "not a regular file"]);
    m.refused(
        "verify-blob",
        &m.path("a.bin.sig.json"),
        &fifo,
        &["fifo", "not a regular file"],
    );
}

// ---------------------------------------------------------------------------------------
// Registries: candidates past the cap, unreadable candidates, unplatformed children
// ---------------------------------------------------------------------------------------

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

fn key_verify(key: &common::keys::Key, image: &str) -> Command {
    let mut cmd = wharf_clean();
    cmd.args(["verify", "--allow-insecure-registry", "--key", key.public()])
        .arg("--insecure-ignore-tlog")
        .arg(image);
    cmd
}

/// Pushes an image manifest with one layer of `BUNDLE_MEDIA_TYPE` holding `bundle`; `count`
/// distinct ones (told apart by an annotation) sharing the same blobs. Returns their
/// fallback-index entries.
fn push_referrers(reg: &Registry, name: &str, bundle: &[u8], count: usize) -> Vec<Value> {
    let config = reg.push_blob(name, b"{}");
    let layer = reg.push_blob(name, bundle);
    (0..count)
        .map(|salt| {
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": BUNDLE_MEDIA_TYPE,
                "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
                "layers": [{"mediaType": BUNDLE_MEDIA_TYPE, "digest": layer, "size": bundle.len()}],
                "annotations": {"salt": salt.to_string()},
            });
            let bytes = serde_json::to_vec(&manifest).unwrap();
            let digest = reg.push_manifest(name, &digest_of(&bytes), &bytes);
            json!({
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": bytes.len(),
                "artifactType": BUNDLE_MEDIA_TYPE,
            })
        })
        .collect()
}

#[test]
fn one_unreadable_referrer_is_a_rejection_and_junk_past_the_cap_is_counted() {
    let reg = Registry::start();
    let img = push_to(&reg, "app", &["linux/amd64"], 41);
    let dir = tempdir();
    let key = openssl_key(dir.path(), "k");
    run_ok(
        wharf_clean()
            .args([
                "-q",
                "sign",
                "--allow-insecure-registry",
                "--key",
                key.private(),
            ])
            .args(["--tlog-upload=false", "--bundle-format", "bundle"])
            .arg(img.index()),
    );
    run_ok(&mut key_verify(&key, &img.index()));

    // Listed before the genuine bundle: a referrer the registry refuses to serve and one whose
    // bundle is not JSON. Each is a candidate that does not count; the genuine bundle still
    // verifies.
    let mut index = reg.fallback_index(&img.name, &img.digest);
    let genuine = index["manifests"][0].clone();
    let refused = push_referrers(&reg, &img.name, b"{\"mediaType\": \"x\"}", 1).remove(0);
    let refused_digest = refused["digest"].as_str().unwrap().to_string();
    let garbage = push_referrers(&reg, &img.name, b"not a bundle", 1).remove(0);
    index["manifests"] = json!([refused, garbage, genuine]);
    let bytes = serde_json::to_vec(&index).unwrap();
    reg.push_manifest(&img.name, &fallback_tag(&img.digest), &bytes);
    let proxy = Proxy::start(
        reg.addr(),
        Box::new(move |req| {
            if req.method == "GET" && req.path.ends_with(&refused_digest) {
                Action::registry_error(403, "DENIED", "injected fault: access denied")
            } else {
                Action::Forward
            }
        }),
    );
    let through_proxy = img.via(proxy.addr(), &img.digest);
    let run = run_bounded(&mut key_verify(&key, &through_proxy), LIMIT);
    assert!(run.output.status.success(), "{}", run.stderr());
    assert_eq!(proxy.count("403"), 1);
    // Without the genuine bundle, the refusal names the most telling reason.
    index["manifests"] = json!([index["manifests"][0], index["manifests"][1]]);
    let bytes = serde_json::to_vec(&index).unwrap();
    reg.push_manifest(&img.name, &fallback_tag(&img.digest), &bytes);
    let run = run_bounded(&mut key_verify(&key, &through_proxy), LIMIT);
    assert_refused(
        &run,
        &[
            "verification failed",
            &img.digest,
            "2 signatures, none valid",
        ],
    );

    // 200 junk referrers before the genuine one: 64 are examined, the rest counted, and the
    // refusal says so; nothing is fetched for the ones past the cap.
    let mut junk = push_referrers(&reg, &img.name, b"junk", 200);
    junk.push(genuine);
    index["manifests"] = json!(junk);
    let bytes = serde_json::to_vec(&index).unwrap();
    reg.push_manifest(&img.name, &fallback_tag(&img.digest), &bytes);
    let mark = reg.request_count();
    let run = run_bounded(&mut key_verify(&key, &img.index()), LIMIT);
    assert_refused(
        &run,
        &["137 more candidate(s) were not examined (limit 64)"],
    );
    let manifest_gets = reg
        .requests_since(mark)
        .iter()
        .filter(|r| r.method == "GET" && r.uri.contains("/manifests/sha256:"))
        .count();
    assert!(manifest_gets <= 64 + 2, "{manifest_gets} manifest reads");
}

#[test]
fn recursive_attestation_verification_checks_children_without_platform() {
    let reg = Registry::start();
    let img = push_to(&reg, "app", &["linux/amd64", "linux/arm64"], 42);
    // The same children, listed by an index that gives them no platform.
    let (bytes, _) = reg.get_manifest(&img.name, &img.digest).unwrap();
    let mut index: Value = serde_json::from_slice(&bytes).unwrap();
    for child in index["manifests"].as_array_mut().unwrap() {
        child.as_object_mut().unwrap().remove("platform");
    }
    assert_eq!(index["mediaType"], OCI_INDEX);
    let bytes = serde_json::to_vec(&index).unwrap();
    let bare = reg.push_manifest(&img.name, &digest_of(&bytes), &bytes);
    let dir = tempdir();
    let key = openssl_key(dir.path(), "k");
    let predicate = dir.path().join("p.json");
    fs::write(&predicate, b"{\"x\": 1}").unwrap();
    let verify = || {
        let mut cmd = wharf_clean();
        cmd.args([
            "verify-attestation",
            "--allow-insecure-registry",
            "--recursive",
        ])
        .args([
            "--key",
            key.public(),
            "--insecure-ignore-tlog",
            "--type",
            "custom",
        ])
        .args(["--output", "json"])
        .arg(img.at(&bare));
        cmd
    };
    // Nothing attested: refused (it used to check nothing and print "verified": []).
    let run = run_bounded(&mut verify(), LIMIT);
    assert_refused(&run, &["no attestations", img.child(0)]);

    // One child attested: the other is still a target, and fails.
    let attest = |digest: &str| {
        run_ok(
            wharf_clean()
                .args([
                    "-q",
                    "attest",
                    "--allow-insecure-registry",
                    "--key",
                    key.private(),
                ])
                .args([
                    "--tlog-upload=false",
                    "--type",
                    "custom",
                    "--predicate",
                    s(&predicate),
                ])
                .arg(img.at(digest)),
        );
    };
    attest(img.child(0));
    let run = run_bounded(&mut verify(), LIMIT);
    assert_refused(&run, &["no attestations", img.child(1)]);

    // Both attested: both verified, each listed.
    attest(img.child(1));
    let out = run_ok(&mut verify());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let verified: Vec<&str> = report["verified"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["digest"].as_str().unwrap())
        .collect();
    assert_eq!(verified, vec![img.child(0), img.child(1)]);
}
