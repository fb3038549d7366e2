//! `wharf sign` and `wharf verify` against real registries and the real cosign: signatures
//! made by either tool verify in the other (index and every platform manifest), signatures
//! from several keys accumulate (also when signers race), tags are refused unless resolved
//! explicitly, OCI layouts work, and every kind of tampering fails verification with its own
//! message.
//!
//! No transparency log is involved (the tests must not reach the public Rekor): every
//! signature is made with `--tlog-upload=false` and verified with `--insecure-ignore-tlog`
//! (cosign: `--insecure-ignore-tlog=true`).

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::process::{Command, Stdio};

use common::keys::{cosign_key, openssl_key, wharf_key, Key};
use common::*;
use serde_json::{json, Value};

const PASSWORD: &str = "sign-test-password-6d1f";
const SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// `wharf sign --key K --tlog-upload=false --allow-insecure-registry IMAGE` with the password.
fn wharf_sign(key: &Key, image: &str) -> Command {
    let mut cmd = wharf();
    cmd.args([
        "sign",
        "--key",
        key.private(),
        "--tlog-upload=false",
        "--allow-insecure-registry",
        image,
    ])
    .env("WHARF_PASSWORD", PASSWORD);
    cmd
}

/// `wharf verify --key K.pub --insecure-ignore-tlog=true --allow-insecure-registry IMAGE`.
fn wharf_verify(key: &Key, image: &str) -> Command {
    let mut cmd = wharf();
    cmd.args([
        "verify",
        "--key",
        key.public(),
        "--insecure-ignore-tlog=true",
        "--allow-insecure-registry",
        image,
    ]);
    cmd
}

/// `cosign sign --key K --tlog-upload=false -y --allow-insecure-registry IMAGE`.
fn cosign_sign(key: &Key, image: &str) -> Command {
    let mut cmd = cosign();
    cmd.args([
        "sign",
        "--key",
        key.private(),
        "--tlog-upload=false",
        "-y",
        "--allow-insecure-registry",
        image,
    ])
    .env("COSIGN_PASSWORD", PASSWORD);
    cmd
}

/// `cosign verify --key K.pub --insecure-ignore-tlog=true --allow-insecure-registry IMAGE`.
fn cosign_verify(key: &Key, image: &str) -> Command {
    let mut cmd = cosign();
    cmd.args([
        "verify",
        "--key",
        key.public(),
        "--insecure-ignore-tlog=true",
        "--allow-insecure-registry",
        image,
    ]);
    cmd
}

/// What `wharf push -o json` reported.
struct Pushed {
    /// `HOST:PORT/NAME`.
    repo: String,
    /// `NAME`, for the harness's direct registry calls.
    name: String,
    /// The index.
    digest: String,
    /// `(platform, digest)` of every manifest under the index.
    children: Vec<(String, String)>,
}

impl Pushed {
    fn at(&self, digest: &str) -> String {
        format!("{}@{digest}", self.repo)
    }
    fn index(&self) -> String {
        self.at(&self.digest)
    }
    fn child(&self, i: usize) -> &str {
        &self.children[i].1
    }
    fn all_digests(&self) -> BTreeSet<String> {
        std::iter::once(self.digest.clone())
            .chain(self.children.iter().map(|(_, d)| d.clone()))
            .collect()
    }
}

/// Pushes a multi-platform image to `reg` as repository `name`.
fn push_to(reg: &Registry, name: &str, platforms: &[&'static str], seed: u64) -> Pushed {
    let report = push_image(&reg.repo(name), platforms, seed);
    let pushed = Pushed {
        repo: reg.repo(name),
        name: name.to_string(),
        digest: report["digest"].as_str().unwrap().to_string(),
        children: children_of(&report),
    };
    assert_eq!(pushed.children.len(), platforms.len());
    pushed
}

/// The `.sig` manifest of `digest` as JSON, or `None`.
fn sig_manifest(reg: &Registry, name: &str, digest: &str) -> Option<Value> {
    reg.get_manifest(name, &sig_tag(digest))
        .map(|(bytes, _)| serde_json::from_slice(&bytes).expect("sig manifest JSON"))
}

fn sig_layers(reg: &Registry, name: &str, digest: &str) -> Vec<Value> {
    let manifest = sig_manifest(reg, name, digest)
        .unwrap_or_else(|| panic!("no {} in {name}", sig_tag(digest)));
    manifest["layers"].as_array().expect("layers").clone()
}

/// Runs `wharf verify` expecting failure; returns the error line.
fn verify_fails(key: &Key, image: &str) -> String {
    common::verify_fails(&mut wharf_verify(key, image))
}

const TWO: &[&str] = &["linux/amd64", "linux/arm64"];
const THREE: &[&str] = &["linux/amd64", "linux/arm64", "linux/arm/v7"];

// ---------------------------------------------------------------------------------------
// Interoperability with cosign
// ---------------------------------------------------------------------------------------

#[test]
fn wharf_recursive_signatures_verify_in_cosign() {
    let reg = Registry::start();
    let dir = tempdir();
    let key = wharf_key(dir.path(), "wharf", PASSWORD);
    let img = push_to(&reg, "app", THREE, 1);

    let out = run_ok(wharf_sign(&key, &img.index()).arg("--recursive"));
    let text = stdout_of(&out);
    for digest in img.all_digests() {
        assert!(
            text.contains(&format!("signed {}", img.at(&digest))),
            "sign output lacks {digest}:\n{text}"
        );
    }

    for digest in img.all_digests() {
        let out = run_ok(&mut cosign_verify(&key, &img.at(&digest)));
        let payloads: Value = serde_json::from_slice(&out.stdout).expect("cosign JSON");
        assert_eq!(
            payloads[0]["critical"]["image"]["docker-manifest-digest"],
            digest.as_str()
        );
        assert_eq!(
            payloads[0]["critical"]["identity"]["docker-reference"],
            img.repo.as_str()
        );
    }

    let out = run_ok(
        cosign()
            .args(["tree", "--allow-insecure-registry"])
            .arg(img.index()),
    );
    let tree = stdout_of(&out) + &stderr_of(&out);
    assert!(
        tree.contains(&sig_tag(&img.digest)),
        "cosign tree does not list the index's signature:\n{tree}"
    );

    // And wharf itself agrees.
    let out = run_ok(wharf_verify(&key, &img.index()).arg("--recursive"));
    assert_eq!(verified_digests(&out), img.all_digests());
}

#[test]
fn cosign_recursive_signatures_verify_in_wharf() {
    let reg = Registry::start();
    let dir = tempdir();
    let key = cosign_key(dir.path(), "cosign", PASSWORD);
    let img = push_to(&reg, "app", THREE, 2);

    run_ok(cosign_sign(&key, &img.index()).arg("--recursive"));

    let out = run_ok(wharf_verify(&key, &img.index()).arg("--recursive"));
    assert_eq!(verified_digests(&out), img.all_digests());
    let payloads: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(payloads.as_array().unwrap().len(), 4);
    for p in payloads.as_array().unwrap() {
        assert_eq!(
            p["critical"]["identity"]["docker-reference"],
            img.repo.as_str()
        );
    }
    let stderr = stderr_of(&out);
    for (platform, digest) in &img.children {
        assert!(
            stderr.contains(&format!("verified {digest} ({platform})")),
            "{stderr}"
        );
    }

    // Each child on its own, without --recursive.
    for (_, digest) in &img.children {
        let out = run_ok(&mut wharf_verify(&key, &img.at(digest)));
        assert_eq!(verified_digests(&out), BTreeSet::from([digest.clone()]));
    }
}

/// wharf's `.sig` manifests share one config blob (so signing N manifests uploads N payloads,
/// not N payloads and N configs), and cosign appends its own signatures to them as it does to
/// its own manifests: afterwards both keys verify everywhere, in both tools.
#[test]
fn cosign_appends_to_wharf_signature_manifests_with_the_shared_config() {
    let reg = Registry::start();
    let dir = tempdir();
    let a = wharf_key(dir.path(), "a", PASSWORD);
    let b = cosign_key(dir.path(), "b", PASSWORD);
    let img = push_to(&reg, "app", THREE, 22);

    run_ok(wharf_sign(&a, &img.index()).arg("--recursive"));
    let configs: BTreeSet<String> = img
        .all_digests()
        .iter()
        .map(|d| {
            let manifest = sig_manifest(&reg, &img.name, d).expect("a .sig manifest");
            assert_eq!(
                manifest["config"]["mediaType"],
                "application/vnd.oci.image.config.v1+json"
            );
            manifest["config"]["digest"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(configs.len(), 1, "one config for every .sig: {configs:?}");

    run_ok(cosign_sign(&b, &img.index()).arg("--recursive"));
    for digest in img.all_digests() {
        assert_eq!(sig_layers(&reg, &img.name, &digest).len(), 2, "{digest}");
    }
    for key in [&a, &b] {
        let out = run_ok(wharf_verify(key, &img.index()).arg("--recursive"));
        assert_eq!(verified_digests(&out), img.all_digests());
        for digest in img.all_digests() {
            run_ok(&mut cosign_verify(key, &img.at(&digest)));
        }
    }
}

/// `--recursive` reads only indexes to find what to sign (an image manifest's descriptor says
/// all there is), so a nested index must still be opened and its manifests signed: all five
/// manifests of outer index → (two images, inner index → image) end up signed, and cosign
/// agrees on each. Docker media types, so a manifest list is recognised as an index too.
#[test]
fn recursive_signing_reaches_manifests_under_a_nested_index() {
    let reg = Registry::start();
    let dir = tempdir();
    let key = wharf_key(dir.path(), "k", PASSWORD);
    let layout = make_layout(
        &dir.path().join("layout"),
        &LayoutSpec {
            platforms: THREE.to_vec(),
            nested_index: true,
            docker_media_types: true,
            seed: 23,
            ..LayoutSpec::default()
        },
    );
    assert_eq!(layout.manifest_digests.len(), 5);
    run_ok(
        wharf()
            .args(["push", "--allow-insecure-registry", "-q"])
            .arg(&layout.dir)
            .arg(reg.repo("nested")),
    );
    let index = format!("{}@{}", reg.repo("nested"), layout.root_digest);
    let out = run_ok(wharf_sign(&key, &index).args(["--recursive", "--output", "json"]));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let signed: BTreeSet<String> = report["signed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect();
    let all: BTreeSet<String> = layout.manifest_digests.iter().cloned().collect();
    assert_eq!(signed, all);
    let out = run_ok(wharf_verify(&key, &index).arg("--recursive"));
    assert_eq!(verified_digests(&out), all);
    for digest in &all {
        run_ok(&mut cosign_verify(
            &key,
            &format!("{}@{digest}", reg.repo("nested")),
        ));
    }
}

#[test]
fn wharf_generated_key_signs_in_cosign_and_verifies_in_wharf() {
    let reg = Registry::start();
    let dir = tempdir();
    let key = wharf_key(dir.path(), "wharf", PASSWORD);
    let img = push_to(&reg, "app", TWO, 3);

    run_ok(cosign_sign(&key, &img.index()).arg("--recursive"));
    let out = run_ok(wharf_verify(&key, &img.index()).arg("--recursive"));
    assert_eq!(verified_digests(&out), img.all_digests());
}

#[test]
fn cosign_generated_key_signs_in_wharf_and_verifies_in_cosign() {
    let reg = Registry::start();
    let dir = tempdir();
    let key = cosign_key(dir.path(), "cosign", PASSWORD);
    let img = push_to(&reg, "app", TWO, 4);

    run_ok(wharf_sign(&key, &img.index()).arg("--recursive"));
    for digest in img.all_digests() {
        run_ok(&mut cosign_verify(&key, &img.at(&digest)));
    }
}

#[test]
fn cosign_signature_by_the_same_key_is_not_duplicated_by_wharf() {
    let reg = Registry::start();
    let dir = tempdir();
    let key = cosign_key(dir.path(), "cosign", PASSWORD);
    let img = push_to(&reg, "app", TWO, 5);

    run_ok(&mut cosign_sign(&key, &img.index()));
    assert_eq!(sig_layers(&reg, &img.name, &img.digest).len(), 1);
    // wharf writes the same Simple Signing payload bytes as cosign: an equivalent signature.
    let out = run_ok(wharf_sign(&key, &img.index()).args(["--output", "json"]));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["signed"][0]["added"], false, "{report}");
    assert_eq!(sig_layers(&reg, &img.name, &img.digest).len(), 1);
}

// ---------------------------------------------------------------------------------------
// Several signatures
// ---------------------------------------------------------------------------------------

#[test]
fn second_key_appends_and_same_key_adds_nothing() {
    let reg = Registry::start();
    let dir = tempdir();
    let a = wharf_key(dir.path(), "a", PASSWORD);
    let b = cosign_key(dir.path(), "b", PASSWORD);
    let img = push_to(&reg, "app", TWO, 6);

    run_ok(&mut wharf_sign(&a, &img.index()));
    assert_eq!(sig_layers(&reg, &img.name, &img.digest).len(), 1);
    run_ok(&mut wharf_sign(&b, &img.index()));
    let layers = sig_layers(&reg, &img.name, &img.digest);
    assert_eq!(layers.len(), 2, "{layers:?}");
    for layer in &layers {
        assert_eq!(layer["mediaType"], SIMPLESIGNING);
        assert!(layer["annotations"][SIGNATURE_ANNOTATION].is_string());
    }
    let manifest_digest = reg
        .manifest_digest(&img.name, &sig_tag(&img.digest))
        .unwrap();

    for key in [&a, &b] {
        let out = run_ok(&mut wharf_verify(key, &img.index()));
        assert_eq!(verified_digests(&out), BTreeSet::from([img.digest.clone()]));
        run_ok(&mut cosign_verify(key, &img.index()));
    }

    // Signing again with A: nothing added, text and JSON say so.
    let out = run_ok(&mut wharf_sign(&a, &img.index()));
    let text = stdout_of(&out);
    assert!(
        text.contains(&format!("already signed {}", img.index())),
        "{text}"
    );
    let out = run_ok(wharf_sign(&a, &img.index()).args(["--output", "json"]));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["signed"][0]["added"], false, "{report}");
    assert_eq!(
        report["signed"][0]["signature_tag"],
        sig_tag(&img.digest).as_str()
    );
    assert_eq!(sig_layers(&reg, &img.name, &img.digest).len(), 2);
    assert_eq!(
        reg.manifest_digest(&img.name, &sig_tag(&img.digest))
            .unwrap(),
        manifest_digest,
        "the .sig manifest was rewritten"
    );
}

/// Six `wharf sign` processes, six keys, one digest, started at once: every signature lands.
/// The signers write identical payload and first-round config blobs at the same moment, which
/// distribution's filesystem storage briefly reports as unknown to a concurrent manifest PUT;
/// several rounds make that window likely to be hit.
#[test]
fn six_concurrent_signers_with_different_keys_all_land() {
    const SIGNERS: usize = 6;
    const ROUNDS: u64 = 3;
    let reg = Registry::start();
    let dir = tempdir();
    let keys: Vec<Key> = (0..SIGNERS)
        .map(|i| openssl_key(dir.path(), &format!("k{i}")))
        .collect();

    for round in 0..ROUNDS {
        let img = push_to(&reg, &format!("app{round}"), TWO, 70 + round);
        let children: Vec<_> = keys
            .iter()
            .map(|key| {
                wharf_sign(key, &img.index())
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn wharf sign")
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: a concurrent signer failed: {}\n{}",
                stdout_of(&out),
                stderr_of(&out)
            );
        }

        let layers = sig_layers(&reg, &img.name, &img.digest);
        assert_eq!(
            layers.len(),
            SIGNERS,
            "round {round}: signatures were lost by concurrent signers: {layers:#?}"
        );
        let signatures: BTreeSet<&str> = layers
            .iter()
            .map(|l| l["annotations"][SIGNATURE_ANNOTATION].as_str().unwrap())
            .collect();
        assert_eq!(signatures.len(), SIGNERS);
        for key in &keys {
            run_ok(&mut wharf_verify(key, &img.index()));
            if round == 0 {
                run_ok(&mut cosign_verify(key, &img.index()));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// References
// ---------------------------------------------------------------------------------------

#[test]
fn sign_refuses_a_tag_without_digest() {
    let reg = Registry::start();
    let dir = tempdir();
    let key = wharf_key(dir.path(), "k", PASSWORD);
    let report = push_image(&reg.repo("app"), TWO, 8);
    let digest = report["digest"].as_str().unwrap();
    // Tag it with the harness, then try to sign the tag.
    let (index, _) = reg.get_manifest("app", digest).unwrap();
    reg.push_manifest("app", "v1", &index);

    let out = run_fail(&mut wharf_sign(&key, &format!("{}:v1", reg.repo("app"))));
    let line = error_line(&out);
    assert!(line.contains("digest"), "{line}");
    assert!(line.contains("--resolve-tag"), "{line}");
    assert!(
        reg.get_manifest("app", &sig_tag(digest)).is_none(),
        "a signature was written anyway"
    );
}

#[test]
fn resolve_tag_signs_the_resolved_digest_and_prints_it() {
    let reg = Registry::start();
    let dir = tempdir();
    let key = wharf_key(dir.path(), "k", PASSWORD);
    let report = push_image(&reg.repo("app"), TWO, 9);
    let digest = report["digest"].as_str().unwrap();
    let (index, _) = reg.get_manifest("app", digest).unwrap();
    reg.push_manifest("app", "v1", &index);

    let out = run_ok(wharf_sign(&key, &format!("{}:v1", reg.repo("app"))).arg("--resolve-tag"));
    let all = stdout_of(&out) + &stderr_of(&out);
    assert!(
        all.contains(digest),
        "the resolved digest is not printed:\n{all}"
    );
    assert_eq!(sig_layers(&reg, "app", digest).len(), 1);
    let out = run_ok(&mut wharf_verify(
        &key,
        &format!("{}@{digest}", reg.repo("app")),
    ));
    assert_eq!(verified_digests(&out), BTreeSet::from([digest.to_string()]));
    run_ok(&mut cosign_verify(
        &key,
        &format!("{}@{digest}", reg.repo("app")),
    ));
}

/// `wharf verify --help` documents `--insecure-ignore-tlog IMAGE` (flag, then the image), as
/// cosign accepts it; the flag must not swallow the image as its value.
#[test]
fn insecure_ignore_tlog_flag_followed_by_image_is_accepted() {
    let reg = Registry::start();
    let dir = tempdir();
    let key = wharf_key(dir.path(), "k", PASSWORD);
    let img = push_to(&reg, "app", TWO, 10);
    run_ok(wharf_sign(&key, &img.index()).arg("--recursive"));
    let out = run_ok(wharf().args([
        "verify",
        "--allow-insecure-registry",
        "--key",
        key.public(),
        "--recursive",
        "--insecure-ignore-tlog",
        &img.index(),
    ]));
    assert_eq!(verified_digests(&out), img.all_digests());
}

#[test]
fn verify_without_insecure_ignore_tlog_refuses_signatures_without_bundle() {
    let reg = Registry::start();
    let dir = tempdir();
    let key = wharf_key(dir.path(), "k", PASSWORD);
    let img = push_to(&reg, "app", TWO, 11);
    run_ok(&mut wharf_sign(&key, &img.index()));
    let out = run_fail(wharf().args([
        "verify",
        "--allow-insecure-registry",
        "--key",
        key.public(),
        &img.index(),
    ]));
    let line = error_line(&out);
    assert!(line.contains("transparency log"), "{line}");
    assert!(line.contains("--insecure-ignore-tlog"), "{line}");
}

// ---------------------------------------------------------------------------------------
// OCI layouts
// ---------------------------------------------------------------------------------------

#[test]
fn sign_and_verify_an_oci_layout() {
    let dir = tempdir();
    let key = wharf_key(dir.path(), "k", PASSWORD);
    let out_dir = dir.path().join("out");
    let dest = format!("oci:{}", out_dir.display());
    let report = push_image(&dest, THREE, 13);
    let digest = report["digest"].as_str().unwrap().to_string();
    let children = children_of(&report);
    let image = format!("{dest}@{digest}");

    run_ok(wharf_sign(&key, &image).arg("--recursive"));
    let index: Value =
        serde_json::from_slice(&fs::read(out_dir.join("index.json")).unwrap()).unwrap();
    let refs: BTreeSet<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .collect();
    let mut expected: Vec<String> = vec![sig_tag(&digest)];
    expected.extend(children.iter().map(|(_, d)| sig_tag(d)));
    for tag in &expected {
        assert!(
            refs.contains(tag.as_str()),
            "index.json lacks {tag}: {index:#}"
        );
    }

    let out = run_ok(wharf_verify(&key, &image).arg("--recursive"));
    let mut all: BTreeSet<String> = children.iter().map(|(_, d)| d.clone()).collect();
    all.insert(digest.clone());
    assert_eq!(verified_digests(&out), all);

    // Re-signing adds nothing; a second key appends.
    let out = run_ok(wharf_sign(&key, &image).args(["--output", "json"]));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["signed"][0]["added"], false);
    let other = wharf_key(dir.path(), "other", PASSWORD);
    run_ok(&mut wharf_sign(&other, &image));
    run_ok(&mut wharf_verify(&other, &image));
    run_ok(&mut wharf_verify(&key, &image));
}

#[test]
fn payload_altered_in_place_in_an_oci_layout_is_detected() {
    let dir = tempdir();
    let key = wharf_key(dir.path(), "k", PASSWORD);
    let out_dir = dir.path().join("out");
    let dest = format!("oci:{}", out_dir.display());
    let report = push_image(&dest, TWO, 14);
    let digest = report["digest"].as_str().unwrap().to_string();
    let image = format!("{dest}@{digest}");
    run_ok(&mut wharf_sign(&key, &image));

    // Find the .sig manifest through index.json and rewrite its payload blob in place.
    let index: Value =
        serde_json::from_slice(&fs::read(out_dir.join("index.json")).unwrap()).unwrap();
    let sig = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"] == sig_tag(&digest).as_str()
        })
        .expect("sig entry in index.json");
    let sig_manifest: Value = serde_json::from_slice(
        &fs::read(blob_path(&out_dir, sig["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let payload_digest = sig_manifest["layers"][0]["digest"].as_str().unwrap();
    let path = blob_path(&out_dir, payload_digest);
    let payload = fs::read_to_string(&path).unwrap();
    let altered = payload.replacen("\"optional\":null", "\"optional\":{\"x\":1}", 1);
    assert_ne!(payload, altered);
    fs::write(&path, altered).unwrap();

    let line = verify_fails(&key, &image);
    assert!(line.contains("tampered signature payload"), "{line}");
    assert!(line.contains(&digest), "{line}");
}

// ---------------------------------------------------------------------------------------
// Tampering: each fails in wharf (with its own message) and in cosign
// ---------------------------------------------------------------------------------------

/// A registry with a 2-platform image whose index is signed (not recursively) by `key`.
fn signed_image(seed: u64) -> (Registry, TempDir, Key, Pushed) {
    let reg = Registry::start();
    let dir = tempdir();
    let key = wharf_key(dir.path(), "k", PASSWORD);
    let img = push_to(&reg, "app", TWO, seed);
    run_ok(&mut wharf_sign(&key, &img.index()));
    run_ok(&mut wharf_verify(&key, &img.index()));
    (reg, dir, key, img)
}

#[test]
fn modified_payload_fails_verification() {
    let (reg, _dir, key, img) = signed_image(20);
    let mut manifest = sig_manifest(&reg, &img.name, &img.digest).unwrap();
    let old_digest = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let payload = String::from_utf8(reg.get_blob(&img.name, &old_digest).unwrap()).unwrap();
    // Same image digest, another identity: only the signature can catch this.
    let altered = payload.replace(&img.repo, "evil.example/app");
    assert_ne!(altered, payload);
    let new_digest = reg.push_blob(&img.name, altered.as_bytes());
    manifest["layers"][0]["digest"] = json!(new_digest);
    manifest["layers"][0]["size"] = json!(altered.len());
    put_sig_manifest(&reg, &img.name, &img.digest, &manifest);

    let line = verify_fails(&key, &img.index());
    assert!(line.contains("verifies under the key"), "{line}");
    assert!(line.contains("altered"), "{line}");
    assert!(line.contains(&img.digest), "{line}");
    run_fail(&mut cosign_verify(&key, &img.index()));
}

#[test]
fn modified_signature_fails_verification() {
    let (reg, _dir, key, img) = signed_image(21);
    // A valid signature by the same key, over other bytes: the first child's payload.
    run_ok(&mut wharf_sign(&key, &img.at(img.child(0))));
    let other = sig_layers(&reg, &img.name, img.child(0));
    let other_signature = other[0]["annotations"][SIGNATURE_ANNOTATION].clone();

    let mut manifest = sig_manifest(&reg, &img.name, &img.digest).unwrap();
    assert_ne!(
        manifest["layers"][0]["annotations"][SIGNATURE_ANNOTATION],
        other_signature
    );
    manifest["layers"][0]["annotations"][SIGNATURE_ANNOTATION] = other_signature;
    put_sig_manifest(&reg, &img.name, &img.digest, &manifest);

    let line = verify_fails(&key, &img.index());
    assert!(line.contains("verifies under the key"), "{line}");
    assert!(line.contains(&img.digest), "{line}");
    run_fail(&mut cosign_verify(&key, &img.index()));
}

#[test]
fn signature_that_is_not_base64_fails_verification() {
    let (reg, _dir, key, img) = signed_image(22);
    let mut manifest = sig_manifest(&reg, &img.name, &img.digest).unwrap();
    manifest["layers"][0]["annotations"][SIGNATURE_ANNOTATION] = json!("%%% not base64 %%%");
    put_sig_manifest(&reg, &img.name, &img.digest, &manifest);

    let line = verify_fails(&key, &img.index());
    assert!(line.contains("signature invalid"), "{line}");
    assert!(line.contains("base64"), "{line}");
    run_fail(&mut cosign_verify(&key, &img.index()));
}

#[test]
fn signature_copied_from_another_image_fails_verification() {
    let reg = Registry::start();
    let dir = tempdir();
    let key = wharf_key(dir.path(), "k", PASSWORD);
    let img = push_to(&reg, "app", TWO, 23);
    let (x, y) = (img.child(0).to_string(), img.child(1).to_string());
    run_ok(&mut wharf_sign(&key, &img.at(&x)));
    // Copy X's .sig manifest bytes to Y's signature tag.
    let (bytes, _) = reg.get_manifest(&img.name, &sig_tag(&x)).unwrap();
    reg.push_manifest(&img.name, &sig_tag(&y), &bytes);

    run_ok(&mut wharf_verify(&key, &img.at(&x)));
    let line = verify_fails(&key, &img.at(&y));
    assert!(line.contains("another image"), "{line}");
    assert!(
        line.contains(&x),
        "the message does not name the signed digest: {line}"
    );
    assert!(line.contains(&y), "{line}");
    run_fail(&mut cosign_verify(&key, &img.at(&y)));
}

#[test]
fn wrong_key_fails_verification() {
    let (_reg, dir, key, img) = signed_image(24);
    let other = wharf_key(dir.path(), "other", PASSWORD);
    let line = verify_fails(&other, &img.index());
    assert!(line.contains("verifies under the key"), "{line}");
    assert!(line.contains("wrong key"), "{line}");
    // The message names the key that was tried.
    let fp = run_ok(wharf().args(["key", "fingerprint", other.public()]));
    assert!(line.contains(stdout_of(&fp).trim()), "{line}");
    run_fail(&mut cosign_verify(&other, &img.index()));
    // The right key still verifies.
    run_ok(&mut wharf_verify(&key, &img.index()));
}

#[test]
fn empty_signature_manifest_fails_verification() {
    let (reg, _dir, key, img) = signed_image(25);
    let config = br#"{"architecture":"","created":"0001-01-01T00:00:00Z","history":[],"os":"","rootfs":{"type":"layers","diff_ids":[]},"config":{}}"#;
    let config_digest = reg.push_blob(&img.name, config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": [],
    });
    put_sig_manifest(&reg, &img.name, &img.digest, &manifest);

    let line = verify_fails(&key, &img.index());
    assert!(line.contains("no signatures"), "{line}");
    assert!(line.contains("holds no signature layers"), "{line}");
    run_fail(&mut cosign_verify(&key, &img.index()));
}

#[test]
fn missing_signature_manifest_fails_verification() {
    let reg = Registry::start();
    let dir = tempdir();
    let key = wharf_key(dir.path(), "k", PASSWORD);
    let img = push_to(&reg, "app", TWO, 26);

    let line = verify_fails(&key, &img.index());
    assert!(line.contains("no signatures"), "{line}");
    assert!(line.contains(&sig_tag(&img.digest)), "{line}");
    run_fail(&mut cosign_verify(&key, &img.index()));
}

#[test]
fn index_at_signature_tag_is_malformed() {
    let (reg, _dir, key, img) = signed_image(27);
    // The image's own index (its children exist, so the registry accepts it).
    let (index, _) = reg.get_manifest(&img.name, &img.digest).unwrap();
    reg.push_manifest(&img.name, &sig_tag(&img.digest), &index);

    let line = verify_fails(&key, &img.index());
    assert!(line.contains("malformed"), "{line}");
    assert!(line.contains(&img.digest), "{line}");
    run_fail(&mut cosign_verify(&key, &img.index()));

    // Signing refuses to append to it rather than replacing it.
    let out = run_fail(&mut wharf_sign(&key, &img.index()));
    let line = error_line(&out);
    assert!(line.contains("index"), "{line}");
}

#[test]
fn tamper_failures_have_distinct_messages() {
    // The kinds the verifier can tell apart: each must produce its own message.
    let reg = Registry::start();
    let dir = tempdir();
    let key = wharf_key(dir.path(), "k", PASSWORD);
    let other_key = wharf_key(dir.path(), "other", PASSWORD);
    let mut messages: Vec<(&str, String)> = Vec::new();
    let mut record = |case: &'static str, line: String, digest: &str| {
        // Compare the messages without the digests, tags and fingerprints in them.
        let mut message = line.replace(digest, "<D>").replace(&sig_tag(digest), "<T>");
        if let Some(i) = message.find("under the key ") {
            message.truncate(i);
        }
        messages.push((case, message));
    };

    let img = push_to(&reg, "none", TWO, 30);
    record("no .sig", verify_fails(&key, &img.index()), &img.digest);

    let img = push_to(&reg, "wrongkey", TWO, 31);
    run_ok(&mut wharf_sign(&key, &img.index()));
    record(
        "wrong key",
        verify_fails(&other_key, &img.index()),
        &img.digest,
    );

    let img = push_to(&reg, "copied", TWO, 32);
    run_ok(&mut wharf_sign(&key, &img.at(img.child(0))));
    let (bytes, _) = reg.get_manifest("copied", &sig_tag(img.child(0))).unwrap();
    reg.push_manifest("copied", &sig_tag(img.child(1)), &bytes);
    let line = verify_fails(&key, &img.at(img.child(1)));
    record("copied", line.replace(img.child(0), "<X>"), img.child(1));

    let img = push_to(&reg, "index", TWO, 33);
    let (index, _) = reg.get_manifest("index", &img.digest).unwrap();
    reg.push_manifest("index", &sig_tag(&img.digest), &index);
    record(
        "index at .sig",
        verify_fails(&key, &img.index()),
        &img.digest,
    );

    let img = push_to(&reg, "notb64", TWO, 34);
    run_ok(&mut wharf_sign(&key, &img.index()));
    let mut manifest = sig_manifest(&reg, "notb64", &img.digest).unwrap();
    manifest["layers"][0]["annotations"][SIGNATURE_ANNOTATION] = json!("!!");
    put_sig_manifest(&reg, "notb64", &img.digest, &manifest);
    record("not base64", verify_fails(&key, &img.index()), &img.digest);

    let img = push_to(&reg, "notlog", TWO, 35);
    run_ok(&mut wharf_sign(&key, &img.index()));
    let out = run_fail(wharf().args([
        "verify",
        "--allow-insecure-registry",
        "--key",
        key.public(),
        &img.index(),
    ]));
    record("no tlog", error_line(&out), &img.digest);

    for (i, (case, message)) in messages.iter().enumerate() {
        for (other_case, other) in &messages[i + 1..] {
            assert_ne!(message, other, "{case} and {other_case} share a message");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Recursive verification
// ---------------------------------------------------------------------------------------

#[test]
fn recursive_verify_names_the_child_whose_signature_is_missing() {
    let reg = Registry::start();
    let dir = tempdir();
    let key = wharf_key(dir.path(), "k", PASSWORD);
    let img = push_to(&reg, "app", THREE, 40);
    run_ok(wharf_sign(&key, &img.index()).arg("--recursive"));
    run_ok(wharf_verify(&key, &img.index()).arg("--recursive"));

    // Remove the second child's signature manifest (the registry drops its tag with it).
    let (platform, missing) = img.children[1].clone();
    let sig_digest = reg.manifest_digest(&img.name, &sig_tag(&missing)).unwrap();
    assert!(reg.delete_manifest(&img.name, &sig_digest));
    assert!(reg.get_manifest(&img.name, &sig_tag(&missing)).is_none());

    let out = run_fail(wharf_verify(&key, &img.index()).arg("--recursive"));
    let line_r = error_line(&out);
    assert!(
        line_r.contains(&missing),
        "the failing child is not named: {line_r}"
    );
    assert!(
        line_r.contains(&platform),
        "the failing platform is not named: {line_r}"
    );
    assert!(line_r.contains("no signatures"), "{line_r}");
    assert_eq!(stdout_of(&out).trim(), "", "payloads printed on failure");
    // Without --recursive the index alone still verifies, as does the other child.
    run_ok(&mut wharf_verify(&key, &img.index()));
    run_ok(&mut wharf_verify(&key, &img.at(img.child(0))));
    run_fail(&mut cosign_verify(&key, &img.at(&missing)));
}
