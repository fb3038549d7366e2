//! End-to-end tests of `wharf mirror` between real `docker-registry` instances (and OCI
//! layouts), with cosign and oras as independent checks of what arrived.
//!
//! Every test builds its own "release" in its own source registry (see [`release`]): a
//! two-platform image pushed with `wharf push --tag v1`, signed recursively by wharf, a
//! CycloneDX attestation by `cosign attest` on the index, an OCI referrer attached by
//! `oras attach` (distribution 2.8 has no referrers API, so oras writes the `sha256-<hex>`
//! fallback tag index), and a cosign signature on that referrer: an attachment of an
//! attachment. Faults are injected by the proxy in `tests/common/proxy.rs`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::proxy::{self, Action, Fault, Hook, Proxy, ProxyOptions};
use common::*;
use serde_json::{json, Value};

const PASSWORD: &str = "mirror-test-key-password";
const ATTACHED_ARTIFACT_TYPE: &str = "application/vnd.example.sbom+json";

/// Small layers: most tests are about bytes, digests and requests, not throughput.
fn small_spec(seed: u64) -> LayoutSpec {
    LayoutSpec {
        platforms: vec!["linux/amd64", "linux/arm64"],
        layers_per_platform: 1,
        layer_size: 64 * 1024,
        seed,
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------

/// `wharf mirror SRC DST [EXTRA…] --allow-insecure-registry`.
fn mirror_cmd(src: &str, dst: &str, extra: &[&str]) -> Command {
    let mut cmd = wharf();
    cmd.arg("mirror")
        .arg(src)
        .arg(dst)
        .args(extra)
        .arg("--allow-insecure-registry");
    cmd
}

/// Runs `wharf mirror … --output json` to success and returns the report.
fn mirror_json(src: &str, dst: &str, extra: &[&str]) -> Value {
    let mut cmd = mirror_cmd(src, dst, extra);
    cmd.args(["--output", "json"]);
    parse_json(&run_ok(&mut cmd))
}

/// A cosign command with the key password in its environment and Docker config isolated.
fn cosign(tmp: &Path) -> Command {
    let mut cmd = common::cosign();
    cmd.env("COSIGN_PASSWORD", PASSWORD)
        .env("DOCKER_CONFIG", tmp.join("docker"))
        .env_remove("WHARF_PASSWORD");
    cmd
}

fn oras(tmp: &Path) -> Command {
    let mut cmd = Command::new(require_tool("oras"));
    cmd.env("DOCKER_CONFIG", tmp.join("docker"));
    cmd
}

// ---------------------------------------------------------------------------------------
// The release
// ---------------------------------------------------------------------------------------

/// A signed, attested release with a referrer, in `registry/repo`.
struct Release {
    /// Keys, predicate files, the layout, cosign's Docker config.
    tmp: TempDir,
    layout: BuiltLayout,
    repo: String,
    /// The index.
    index: String,
    /// Its platform manifests.
    children: Vec<String>,
    /// The manifest `oras attach` wrote, referring to the index.
    referrer: String,
    pub_key: PathBuf,
}

impl Release {
    /// The index and its platform manifests.
    fn image_manifests(&self) -> Vec<String> {
        std::iter::once(self.index.clone())
            .chain(self.children.iter().cloned())
            .collect()
    }

    fn pub_key(&self) -> &str {
        self.pub_key.to_str().unwrap()
    }
}

/// Builds the release in `reg/repo` (see the file comment).
fn release(reg: &Registry, repo: &str, spec: &LayoutSpec) -> Release {
    let tmp = tempdir();
    let layout = make_layout(&tmp.path().join("layout"), spec);
    let dest = reg.repo(repo);

    // Push with wharf, tag v1.
    let out = run_ok(wharf().args(["push"]).arg(&layout.dir).arg(&dest).args([
        "--tag",
        "v1",
        "--allow-insecure-registry",
        "--output",
        "json",
    ]));
    let pushed = parse_json(&out);
    assert_eq!(pushed["digest"], json!(layout.root_digest), "{pushed:#}");
    let index = layout.root_digest.clone();
    let children: Vec<String> = layout.platforms.iter().map(|(_, d)| d.clone()).collect();

    // Key pair and recursive signature, by wharf.
    let prefix = tmp.path().join("release");
    run_ok(
        wharf()
            .args(["key", "generate", "--output-key-prefix"])
            .arg(&prefix)
            .env("WHARF_PASSWORD", PASSWORD),
    );
    let key = tmp.path().join("release.key");
    let pub_key = tmp.path().join("release.pub");
    run_ok(
        wharf()
            .args(["sign", "--key"])
            .arg(&key)
            .args([
                "--recursive",
                "--tlog-upload=false",
                "--allow-insecure-registry",
            ])
            .arg(format!("{dest}@{index}"))
            .env("WHARF_PASSWORD", PASSWORD),
    );

    // A CycloneDX attestation on the index, by cosign.
    let predicate = tmp.path().join("sbom.cdx.json");
    std::fs::write(
        &predicate,
        serde_json::to_vec_pretty(&json!({
            "bomFormat": "CycloneDX",
            "specVersion": "1.5",
            "version": 1,
            "components": [{"type": "library", "name": "hello", "version": "1.0.0"}]
        }))
        .unwrap(),
    )
    .unwrap();
    run_ok(
        cosign(tmp.path())
            .args(["attest", "--key"])
            .arg(&key)
            .args(["--tlog-upload=false", "--type", "cyclonedx", "--predicate"])
            .arg(&predicate)
            .args(["-y", "--allow-insecure-registry"])
            .arg(format!("{dest}@{index}")),
    );

    // An OCI referrer of the index, by oras (fallback tag index on distribution 2.8).
    std::fs::write(tmp.path().join("extra.json"), br#"{"hello": "referrer"}"#).unwrap();
    let out = run_ok(
        oras(tmp.path())
            .current_dir(tmp.path())
            .args([
                "attach",
                "--plain-http",
                "--artifact-type",
                ATTACHED_ARTIFACT_TYPE,
            ])
            .arg(format!("{dest}@{index}"))
            .arg("extra.json:application/json")
            .args(["--format", "json"]),
    );
    let attached = parse_json(&out);
    let referrer = attached["digest"]
        .as_str()
        .unwrap_or_else(|| panic!("oras attach printed no digest: {attached:#}"))
        .to_string();

    // A signature on the referrer: an attachment of an attachment.
    run_ok(
        cosign(tmp.path())
            .args(["sign", "--key"])
            .arg(&key)
            .args(["--tlog-upload=false", "-y", "--allow-insecure-registry"])
            .arg(format!("{dest}@{referrer}")),
    );

    let rel = Release {
        tmp,
        layout,
        repo: repo.to_string(),
        index,
        children,
        referrer,
        pub_key,
    };
    // Sanity: the source holds exactly what the tests expect.
    let tags = reg.tags(repo);
    let expected = expected_attachment_tags(&rel);
    let mut want: Vec<String> = expected.iter().cloned().collect();
    want.push("v1".into());
    want.sort();
    assert_eq!(tags, want, "unexpected tags in the source release");
    rel
}

/// `sha256-<hex>` of a digest.
fn tag_prefix(digest: &str) -> String {
    digest.replacen(':', "-", 1)
}

/// The attachment tags the release has: `.sig` of the index, each child and the referrer;
/// `.att` of the index; the referrers fallback index of the index.
fn expected_attachment_tags(rel: &Release) -> BTreeSet<String> {
    let mut tags = BTreeSet::new();
    for d in rel.image_manifests() {
        tags.insert(format!("{}.sig", tag_prefix(&d)));
    }
    tags.insert(format!("{}.sig", tag_prefix(&rel.referrer)));
    tags.insert(format!("{}.att", tag_prefix(&rel.index)));
    tags.insert(tag_prefix(&rel.index));
    tags
}

/// The tags of the source repository other than `v1`: every attachment tag.
fn source_attachment_tags(src: &Registry, rel: &Release) -> BTreeSet<String> {
    src.tags(&rel.repo)
        .into_iter()
        .filter(|t| t != "v1")
        .collect()
}

/// Every manifest reachable from `refs` (tags or digests) in `reg/repo`, following index
/// entries, keyed by digest; plus every blob (config, layer) those manifests name.
fn manifest_closure(
    reg: &Registry,
    repo: &str,
    refs: &[String],
) -> (BTreeMap<String, Vec<u8>>, BTreeSet<String>) {
    let mut manifests = BTreeMap::new();
    let mut blobs = BTreeSet::new();
    let mut todo: Vec<String> = refs.to_vec();
    while let Some(reference) = todo.pop() {
        let (bytes, _) = reg
            .get_manifest(repo, &reference)
            .unwrap_or_else(|| panic!("{repo}:{reference} missing from {}", reg.addr()));
        let digest = digest_of(&bytes);
        if reference.starts_with("sha256:") {
            assert_eq!(digest, reference, "{repo}@{reference} hashes differently");
        }
        let doc: Value = serde_json::from_slice(&bytes).expect("manifest is JSON");
        for child in doc["manifests"].as_array().into_iter().flatten() {
            let d = child["digest"]
                .as_str()
                .expect("index entry digest")
                .to_string();
            if !manifests.contains_key(&d) {
                todo.push(d);
            }
        }
        if let Some(d) = doc["config"]["digest"].as_str() {
            blobs.insert(d.to_string());
        }
        for layer in doc["layers"].as_array().into_iter().flatten() {
            blobs.insert(layer["digest"].as_str().expect("layer digest").to_string());
        }
        manifests.insert(digest, bytes);
    }
    (manifests, blobs)
}

/// Everything of the release in `src/rel.repo` (image, every attachment tag, the referrer, and
/// all they reach) is in `dst/dst_repo` with the same digests and bytes, every blob too; and
/// `dst_repo`'s tags are exactly the source's attachment tags plus `image_tags`.
fn assert_mirrored(
    src: &Registry,
    rel: &Release,
    dst: &Registry,
    dst_repo: &str,
    image_tags: &[&str],
) {
    let attachments = source_attachment_tags(src, rel);
    assert_eq!(
        attachments,
        expected_attachment_tags(rel),
        "source attachment tags"
    );

    // Tags: exactly the attachments' plus the requested ones (no `latest`, no strays).
    let mut want: BTreeSet<String> = attachments.clone();
    want.extend(image_tags.iter().map(|t| t.to_string()));
    let have: BTreeSet<String> = dst.tags(dst_repo).into_iter().collect();
    assert_eq!(
        have,
        want,
        "tags of {dst_repo}: extra {:?}, missing {:?}",
        have.difference(&want).collect::<Vec<_>>(),
        want.difference(&have).collect::<Vec<_>>()
    );

    // Each attachment tag points at the same bytes.
    for tag in &attachments {
        let (a, _) = src.get_manifest(&rel.repo, tag).unwrap();
        let (b, _) = dst
            .get_manifest(dst_repo, tag)
            .unwrap_or_else(|| panic!("{tag} missing from {dst_repo}"));
        assert!(a == b, "{tag}: bytes differ between source and destination");
    }
    for tag in image_tags {
        let digest = dst.manifest_digest(dst_repo, tag).unwrap();
        assert_eq!(digest, rel.index, "{dst_repo}:{tag}");
    }

    // Every manifest, by digest, byte for byte; every blob present.
    let mut roots: Vec<String> = attachments.iter().cloned().collect();
    roots.push(rel.index.clone());
    roots.push(rel.referrer.clone());
    let (manifests, blobs) = manifest_closure(src, &rel.repo, &roots);
    for d in rel.image_manifests() {
        assert!(manifests.contains_key(&d), "closure lacks {d}");
    }
    for d in &rel.layout.blob_digests {
        assert!(blobs.contains(d), "closure lacks blob {d}");
    }
    for (digest, bytes) in &manifests {
        let (copy, _) = dst
            .get_manifest(dst_repo, digest)
            .unwrap_or_else(|| panic!("manifest {digest} missing from {dst_repo}"));
        assert!(
            &copy == bytes,
            "manifest {digest} in {dst_repo} differs from the source's bytes"
        );
    }
    for blob in &blobs {
        assert!(
            dst.blob_exists(dst_repo, blob),
            "blob {blob} missing from {dst_repo}"
        );
    }
    eprintln!(
        "{dst_repo}: {} manifests and {} blobs identical to the source's",
        manifests.len(),
        blobs.len()
    );
}

/// `cosign verify` of the index, each platform and the referrer, and
/// `cosign verify-attestation --type cyclonedx` of the index, at `repo` (HOST/REPO).
fn cosign_verifies(rel: &Release, repo: &str) {
    for d in rel.image_manifests().iter().chain([&rel.referrer]) {
        run_ok(
            cosign(rel.tmp.path())
                .args(["verify", "--key", rel.pub_key()])
                .args(["--insecure-ignore-tlog=true", "--allow-insecure-registry"])
                .arg(format!("{repo}@{d}")),
        );
    }
    let out = run_ok(
        cosign(rel.tmp.path())
            .args(["verify-attestation", "--key", rel.pub_key()])
            .args(["--type", "cyclonedx"])
            .args(["--insecure-ignore-tlog=true", "--allow-insecure-registry"])
            .arg(format!("{repo}@{}", rel.index)),
    );
    assert!(
        stdout_of(&out).contains("payload"),
        "verify-attestation printed no attestation: {}",
        stdout_of(&out)
    );
}

/// `wharf verify --recursive` of the index at `image` (HOST/REPO or oci:DIR).
fn wharf_verifies(rel: &Release, image: &str) {
    run_ok(
        wharf()
            .args(["verify", "--key", rel.pub_key(), "--recursive"])
            .args(["--insecure-ignore-tlog", "--allow-insecure-registry"])
            .arg(format!("{image}@{}", rel.index)),
    );
}

/// `oras discover` at `repo` lists the referrer with its artifact type.
fn oras_discovers_referrer(rel: &Release, repo: &str) {
    let out = run_ok(
        oras(rel.tmp.path())
            .args(["discover", "--plain-http", "--format", "json"])
            .arg(format!("{repo}@{}", rel.index)),
    );
    let found = parse_json(&out);
    let manifests = found["manifests"].as_array().expect("manifests array");
    let entry = manifests
        .iter()
        .find(|m| m["digest"] == json!(rel.referrer))
        .unwrap_or_else(|| panic!("oras discover does not list {}: {found:#}", rel.referrer));
    assert_eq!(
        entry["artifactType"],
        json!(ATTACHED_ARTIFACT_TYPE),
        "{found:#}"
    );
}

// ---------------------------------------------------------------------------------------
// Copies
// ---------------------------------------------------------------------------------------

#[test]
fn mirror_by_tag_copies_release_byte_for_byte() {
    let a = Registry::start();
    let b = Registry::start();
    let rel = release(&a, "rel", &small_spec(101));

    let report = mirror_json(&a.repo("rel:v1"), &b.repo("rel"), &[]);
    assert_eq!(report["digest"], json!(rel.index), "{report:#}");
    assert_eq!(report["tags"], json!(["v1"]), "{report:#}");
    assert_eq!(
        report["reference"],
        json!(format!("{}@{}", b.repo("rel"), rel.index))
    );
    let artifacts = &report["artifacts"];
    assert_eq!(artifacts["signatures"], json!(4), "{report:#}"); // index, 2 children, referrer
    assert_eq!(artifacts["attestations"], json!(1), "{report:#}");
    assert_eq!(artifacts["referrers"], json!(1), "{report:#}");

    assert_mirrored(&a, &rel, &b, "rel", &["v1"]);
    cosign_verifies(&rel, &b.repo("rel"));
    wharf_verifies(&rel, &b.repo("rel"));
    oras_discovers_referrer(&rel, &b.repo("rel"));

    // The signature on the referrer arrived, and verifies there (cosign_verifies did).
    let sig_tag = format!("{}.sig", tag_prefix(&rel.referrer));
    assert_eq!(
        b.manifest_digest("rel", &sig_tag),
        a.manifest_digest("rel", &sig_tag),
        "{sig_tag}"
    );
}

#[test]
fn extra_tag_adds_exactly_that_tag() {
    let a = Registry::start();
    let b = Registry::start();
    let rel = release(&a, "rel", &small_spec(102));

    let report = mirror_json(&a.repo("rel:v1"), &b.repo("rel"), &["--tag", "extra"]);
    assert_eq!(report["tags"], json!(["extra", "v1"]), "{report:#}");
    assert_mirrored(&a, &rel, &b, "rel", &["v1", "extra"]);
}

#[test]
fn mirror_by_digest_writes_only_attachment_tags() {
    let a = Registry::start();
    let b = Registry::start();
    let rel = release(&a, "rel", &small_spec(103));

    let src = format!("{}@{}", a.repo("rel"), rel.index);
    let report = mirror_json(&src, &b.repo("pinned"), &[]);
    assert_eq!(report["tags"], json!([]), "{report:#}");
    assert_mirrored(&a, &rel, &b, "pinned", &[]);
    cosign_verifies(&rel, &b.repo("pinned"));
}

#[test]
fn remirror_unchanged_release_moves_nothing() {
    let a = Registry::start();
    let b = Registry::start();
    let rel = release(&a, "rel", &small_spec(105));
    mirror_json(&a.repo("rel:v1"), &b.repo("rel"), &[]);

    let mark = b.request_count();
    let report = mirror_json(&a.repo("rel:v1"), &b.repo("rel"), &[]);
    let requests = b.requests_since(mark);
    let listing: Vec<String> = requests
        .iter()
        .map(|r| format!("{} {} {}", r.method, r.uri, r.status))
        .collect();
    eprintln!(
        "second mirror: {} requests to the destination:\n  {}",
        requests.len(),
        listing.join("\n  ")
    );
    assert_mirrored(&a, &rel, &b, "rel", &["v1"]);

    let mut problems = Vec::new();
    if report["stats"]["bytes_uploaded"] != json!(0)
        || report["stats"]["blobs_uploaded"] != json!(0)
    {
        problems.push(format!("uploaded blobs: {}", report["stats"]));
    }
    if report["stats"]["manifests_written"] != json!(0) {
        problems.push(format!("wrote manifests: {}", report["stats"]));
    }
    let writes: Vec<&String> = requests
        .iter()
        .zip(&listing)
        .filter(|(r, _)| matches!(r.method.as_str(), "PUT" | "POST" | "PATCH" | "DELETE"))
        .map(|(_, l)| l)
        .collect();
    if !writes.is_empty() {
        problems.push(format!("wrote to the destination: {writes:?}"));
    }
    // One probe, one look per manifest of the image, one per attachment tag.
    let bound = 1 + rel.image_manifests().len() + expected_attachment_tags(&rel).len();
    if requests.len() > bound {
        problems.push(format!("{} requests, more than {bound}", requests.len()));
    }
    assert!(
        problems.is_empty(),
        "re-mirroring an unchanged release:\n  {}\nrequests:\n  {}",
        problems.join("\n  "),
        listing.join("\n  ")
    );
}

#[test]
fn mirror_within_registry_mounts_blobs() {
    let a = Registry::start();
    let rel = release(&a, "rel", &small_spec(106));

    let report = mirror_json(&a.repo("rel:v1"), &a.repo("other"), &[]);
    let stats = &report["stats"];
    assert!(
        stats["blobs_mounted"].as_u64().unwrap() > 0,
        "nothing mounted: {report:#}"
    );
    assert_eq!(stats["bytes_uploaded"], json!(0), "{report:#}");
    assert_eq!(stats["blobs_uploaded"], json!(0), "{report:#}");
    assert_mirrored(&a, &rel, &a, "other", &["v1"]);
    cosign_verifies(&rel, &a.repo("other"));
}

// ---------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------

/// Every fault kind the policy hands out was injected at least once.
fn assert_all_faults_injected(proxy: &Proxy) {
    let records = proxy.records();
    let total = records.len();
    let faults = records.iter().filter(|r| r.action != "forward").count();
    eprintln!(
        "proxy {}: {total} requests, {faults} faults (reset {}, 503 {}, 429 {}, slow {})",
        proxy.addr(),
        proxy.count("reset"),
        proxy.count("503"),
        proxy.count("429"),
        proxy.count("slow"),
    );
    for kind in ["reset", "503", "429", "slow"] {
        assert!(
            proxy.count(kind) > 0,
            "no {kind} fault injected in {total} requests"
        );
    }
}

#[test]
fn mirror_survives_destination_faults() {
    let a = Registry::start();
    let b = Registry::start();
    let rel = release(&a, "rel", &small_spec(107));
    // Every 5th request to the destination fails: 20%.
    let proxy = Proxy::start(b.addr(), proxy::every_nth(5, &Fault::ALL));

    let report = mirror_json(&a.repo("rel:v1"), &proxy.repo("rel"), &[]);
    assert_eq!(report["digest"], json!(rel.index), "{report:#}");
    assert_all_faults_injected(&proxy);
    assert_mirrored(&a, &rel, &b, "rel", &["v1"]);
    cosign_verifies(&rel, &b.repo("rel"));
}

/// Credentials that may push and pull but not list tags (a restricted CI role) on both
/// sides: the tag lists only save requests, so the mirror looks each attachment up instead and
/// everything still arrives.
#[test]
fn mirror_works_where_tags_cannot_be_listed() {
    let a = Registry::start();
    let b = Registry::start();
    let rel = release(&a, "rel", &small_spec(115));
    let no_listing = || -> proxy::Policy {
        Box::new(|req| {
            if req.path.contains("/tags/list") {
                Action::registry_error(403, "DENIED", "requested access to the resource is denied")
            } else {
                Action::Forward
            }
        })
    };
    let src = Proxy::start(a.addr(), no_listing());
    let dst = Proxy::start(b.addr(), no_listing());

    let report = mirror_json(&src.repo("rel:v1"), &dst.repo("rel"), &[]);
    assert_eq!(report["digest"], json!(rel.index), "{report:#}");
    assert!(src.count("403") >= 1 && dst.count("403") >= 1);
    assert_mirrored(&a, &rel, &b, "rel", &["v1"]);
    cosign_verifies(&rel, &b.repo("rel"));
}

#[test]
fn mirror_survives_source_faults() {
    let a = Registry::start();
    let b = Registry::start();
    let rel = release(&a, "rel", &small_spec(108));
    let proxy = Proxy::start(a.addr(), proxy::every_nth(5, &Fault::ALL));

    let report = mirror_json(&proxy.repo("rel:v1"), &b.repo("rel"), &["--jobs", "2"]);
    assert_eq!(report["digest"], json!(rel.index), "{report:#}");
    assert_all_faults_injected(&proxy);
    assert_mirrored(&a, &rel, &b, "rel", &["v1"]);
    cosign_verifies(&rel, &b.repo("rel"));
}

#[test]
fn mirror_survives_downloads_cut_off_midway() {
    let a = Registry::start();
    let b = Registry::start();
    let spec = LayoutSpec {
        layer_size: 1024 * 1024,
        ..small_spec(113)
    };
    let rel = release(&a, "rel", &spec);
    // The first download of every blob from the source breaks halfway.
    let seen = std::sync::Mutex::new(BTreeSet::new());
    let proxy = Proxy::start(
        a.addr(),
        Box::new(move |req| {
            if req.method == "GET"
                && req.path.contains("/blobs/sha256:")
                && seen.lock().unwrap().insert(req.path.clone())
            {
                Action::Truncate
            } else {
                Action::Forward
            }
        }),
    );

    let report = mirror_json(&proxy.repo("rel:v1"), &b.repo("rel"), &[]);
    assert_eq!(report["digest"], json!(rel.index), "{report:#}");
    eprintln!(
        "proxy {}: {} requests, {} downloads cut off",
        proxy.addr(),
        proxy.records().len(),
        proxy.count("truncate")
    );
    assert!(
        proxy.count("truncate") >= spec.platforms.len() * 2,
        "fewer cut-off downloads than layers and configs"
    );
    assert_mirrored(&a, &rel, &b, "rel", &["v1"]);
    cosign_verifies(&rel, &b.repo("rel"));
}

#[test]
fn mirror_survives_manifest_reads_cut_off_midway() {
    let a = Registry::start();
    let b = Registry::start();
    let rel = release(&a, "rel", &small_spec(114));
    // The first read of every manifest (by tag or digest) and of the tag list breaks halfway.
    let seen = std::sync::Mutex::new(BTreeSet::new());
    let proxy = Proxy::start(
        a.addr(),
        Box::new(move |req| {
            let manifest_or_tags =
                req.path.contains("/manifests/") || req.path.contains("/tags/list");
            if req.method == "GET"
                && manifest_or_tags
                && seen.lock().unwrap().insert(req.path.clone())
            {
                Action::Truncate
            } else {
                Action::Forward
            }
        }),
    );

    let report = mirror_json(&proxy.repo("rel:v1"), &b.repo("rel"), &[]);
    assert_eq!(report["digest"], json!(rel.index), "{report:#}");
    eprintln!(
        "proxy {}: {} requests, {} reads cut off",
        proxy.addr(),
        proxy.records().len(),
        proxy.count("truncate")
    );
    assert_mirrored(&a, &rel, &b, "rel", &["v1"]);
    cosign_verifies(&rel, &b.repo("rel"));
}

#[test]
fn mirror_gives_up_cleanly_when_destination_keeps_failing() {
    let a = Registry::start();
    let b = Registry::start();
    let rel = release(&a, "rel", &small_spec(109));
    let proxy = Proxy::start(b.addr(), proxy::fail_after(8));

    let out = run_fail(&mut mirror_cmd(
        &a.repo("rel:v1"),
        &proxy.repo("rel"),
        &["--retries", "1"],
    ));
    let line = single_error_line(&out);
    assert_mentions(&line, &["503"]);
    assert!(proxy.count("503") > 0, "no request was refused");
    assert!(
        b.manifest_digest("rel", "v1").is_none(),
        "v1 was written although the mirror failed: tags {:?}",
        b.tags("rel")
    );
    assert!(!b.tags("rel").contains(&"v1".to_string()));
    let _ = rel;
}

/// While `v1` exists at `reg/repo`, the index it names, every platform manifest and the
/// `.sig` of each must exist too. Returns whether `v1` exists.
fn check_tag_invariant(reg: &Registry, repo: &str, rel: &Release) -> bool {
    let Some((bytes, _)) = reg.get_manifest(repo, "v1") else {
        return false;
    };
    assert_eq!(digest_of(&bytes), rel.index, "v1 names another manifest");
    for d in rel.image_manifests() {
        assert!(
            reg.manifest_digest(repo, &d).is_some(),
            "v1 exists but manifest {d} does not"
        );
        let sig = format!("{}.sig", tag_prefix(&d));
        assert!(
            reg.manifest_digest(repo, &sig).is_some(),
            "v1 exists but {sig} does not"
        );
    }
    true
}

/// Bytes stored under a directory (recursively).
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[test]
fn interrupted_mirror_leaves_no_tag_and_resumes() {
    let a = Registry::start();
    let b = Registry::start();
    let spec = LayoutSpec {
        layer_size: 32 * 1024 * 1024,
        ..small_spec(110)
    };
    let rel = release(&a, "rel", &spec);
    // 8 MiB/s per upload keeps the 2 x 32 MiB transfer going for several seconds; one
    // transfer at a time (-j 1), so the first layer is complete before the second starts.
    let proxy = Proxy::start_with(
        b.addr(),
        ProxyOptions {
            upload_bytes_per_second: Some(8 * 1024 * 1024),
        },
        proxy::forward_all(),
    );

    let mut child = mirror_cmd(&a.repo("rel:v1"), &proxy.repo("rel"), &["-q", "-j", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn wharf mirror");
    let deadline = Instant::now() + Duration::from_secs(60);
    // Killed in the middle of the second layer: the first has fully arrived.
    let kill_after = spec.layer_size as u64 * 5 / 4;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the mirror finished ({status}) before it could be interrupted; {} body bytes \
                 forwarded",
                proxy.body_bytes_forwarded()
            );
        }
        assert!(
            !check_tag_invariant(&b, "rel", &rel),
            "v1 exists at the destination before the mirror ended"
        );
        if proxy.body_bytes_forwarded() >= kill_after {
            break;
        }
        assert!(Instant::now() < deadline, "no progress within 60 s");
        thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL wharf mirror");
    let status = child.wait().unwrap();
    let forwarded = proxy.body_bytes_forwarded();
    eprintln!(
        "killed the mirror ({status}) after {forwarded} body bytes; destination storage {} bytes",
        dir_size(&b.storage_dir())
    );
    assert!(forwarded >= kill_after);
    assert!(
        forwarded < 2 * spec.layer_size as u64,
        "everything had been sent before the kill"
    );
    assert!(
        !check_tag_invariant(&b, "rel", &rel),
        "v1 exists after the interrupted mirror: tags {:?}",
        b.tags("rel")
    );

    // Rerun to completion (straight to B), polling the invariant while it runs.
    let mut child = mirror_cmd(&a.repo("rel:v1"), &b.repo("rel"), &["--output", "json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wharf mirror");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut polls = 0;
    while child.try_wait().unwrap().is_none() {
        check_tag_invariant(&b, "rel", &rel);
        polls += 1;
        assert!(
            Instant::now() < deadline,
            "rerun did not finish within 120 s"
        );
        thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "rerun failed: {}\n{}",
        out.status,
        stderr_of(&out)
    );
    let report = parse_json(&out);
    eprintln!("rerun ({polls} invariant polls) stats: {}", report["stats"]);
    assert!(
        report["stats"]["bytes_skipped"].as_u64().unwrap() >= spec.layer_size as u64,
        "the rerun sent again the layer that had fully arrived: {report:#}"
    );
    assert!(check_tag_invariant(&b, "rel", &rel));
    assert_mirrored(&a, &rel, &b, "rel", &["v1"]);
    cosign_verifies(&rel, &b.repo("rel"));
    wharf_verifies(&rel, &b.repo("rel"));
}

// ---------------------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------------------

#[test]
fn destination_repository_that_cannot_be_created_is_named() {
    let a = Registry::start();
    let b = Registry::start();
    let rel = release(&a, "rel", &small_spec(111));

    // A registry that does not create repositories on push (ECR, say).
    let proxy = Proxy::start(
        b.addr(),
        Box::new(|req| {
            if req.method == "POST" && req.path.starts_with("/v2/team/app/blobs/uploads/") {
                Action::registry_error(404, "NAME_UNKNOWN", "repository name not known to registry")
            } else {
                Action::Forward
            }
        }),
    );
    let out = run_fail(&mut mirror_cmd(
        &a.repo("rel:v1"),
        &proxy.repo("team/app"),
        &[],
    ));
    let line = single_error_line(&out);
    assert_mentions(&line, &["team/app"]);
    assert!(b.tags("team/app").is_empty(), "{:?}", b.tags("team/app"));

    // One that refuses pushes to it (Docker Hub or GHCR without access).
    let proxy = Proxy::start(
        b.addr(),
        Box::new(|req| {
            if req.method == "POST" && req.path.starts_with("/v2/team/app/blobs/uploads/") {
                Action::registry_error(403, "DENIED", "requested access to the resource is denied")
            } else {
                Action::Forward
            }
        }),
    );
    let out = run_fail(&mut mirror_cmd(
        &a.repo("rel:v1"),
        &proxy.repo("team/app"),
        &[],
    ));
    let line = single_error_line(&out);
    assert_mentions(&line, &["team/app", "403", "DENIED"]);
    assert!(b.tags("team/app").is_empty(), "{:?}", b.tags("team/app"));
    let _ = rel;
}

#[test]
fn refused_manifest_is_named() {
    let a = Registry::start();
    let b = Registry::start();
    let rel = release(&a, "rel", &small_spec(112));

    // A registry that refuses OCI indexes.
    let proxy = Proxy::start(
        b.addr(),
        Box::new(|req| {
            if req.method == "PUT"
                && req.path.starts_with("/v2/idx/manifests/")
                && req.content_type() == Some(media_type::OCI_INDEX)
            {
                Action::registry_error(400, "MANIFEST_INVALID", "manifest invalid")
            } else {
                Action::Forward
            }
        }),
    );
    let out = run_fail(&mut mirror_cmd(&a.repo("rel:v1"), &proxy.repo("idx"), &[]));
    let line = single_error_line(&out);
    assert_mentions(
        &line,
        &[&rel.index, media_type::OCI_INDEX, "MANIFEST_INVALID", "400"],
    );
    assert!(b.tags("idx").is_empty(), "{:?}", b.tags("idx"));

    // One that refuses the referrer's manifest (an artifact it does not support).
    let referrer_path = format!("/v2/art/manifests/{}", rel.referrer);
    let proxy = Proxy::start(
        b.addr(),
        Box::new(move |req| {
            if req.method == "PUT" && req.path == referrer_path {
                Action::registry_error(415, "MANIFEST_INVALID", "artifact type not supported")
            } else {
                Action::Forward
            }
        }),
    );
    let out = run_fail(&mut mirror_cmd(&a.repo("rel:v1"), &proxy.repo("art"), &[]));
    let line = single_error_line(&out);
    assert_mentions(&line, &[&rel.referrer, "415", "MANIFEST_INVALID"]);
    assert!(
        !b.tags("art").contains(&"v1".to_string()),
        "v1 written although an attachment failed: {:?}",
        b.tags("art")
    );
}

// ---------------------------------------------------------------------------------------
// Air-gapped sites: layouts and archives every tool reads
// ---------------------------------------------------------------------------------------

fn skopeo() -> Command {
    let mut cmd = Command::new(require_tool("skopeo"));
    // Its blob-info cache would let one run borrow from another.
    cmd.env(
        "XDG_DATA_HOME",
        std::env::temp_dir().join("wharf-test-skopeo"),
    );
    cmd
}

/// `wharf tree --output json` of `image`.
fn tree_json(image: &str) -> Value {
    parse_json(&run_ok(wharf().args(["tree", "--output", "json", image])))
}

/// Registry → layout → archive → another registry: digests, tags and every attachment arrive,
/// and cosign verifies signatures and attestation by digest on the far side.
#[test]
fn air_gap_round_trip_through_a_layout_and_an_archive() {
    let a = Registry::start();
    let c = Registry::start();
    let rel = release(&a, "rel", &small_spec(140));
    let dir = rel.tmp.path().join("air-gap");
    let layout = format!("oci:{}", dir.display());
    let archive = format!(
        "oci-archive:{}",
        rel.tmp.path().join("air-gap.tar").display()
    );

    let report = mirror_json(&a.repo("rel:v1"), &layout, &[]);
    assert_eq!(report["digest"], json!(rel.index), "{report:#}");
    wharf_verifies(&rel, &layout);
    // The image is listed under its tag, each attachment under its own.
    let listing = layout_listing(&dir);
    let images: Vec<&(String, Option<String>)> = listing
        .iter()
        .filter(|(_, t)| t.as_deref() == Some("v1"))
        .collect();
    assert_eq!(images, [&(rel.index.clone(), Some("v1".to_string()))]);
    let attachments: BTreeSet<String> = listing
        .iter()
        .filter_map(|(_, t)| t.clone())
        .filter(|t| t != "v1")
        .collect();
    assert_eq!(attachments, expected_attachment_tags(&rel));
    assert_eq!(listing.len(), attachments.len() + 1, "{listing:#?}");

    mirror_json(&format!("{layout}:v1"), &archive, &[]);
    wharf_verifies(&rel, &archive);
    let report = mirror_json(&format!("{archive}:v1"), &c.repo("rel"), &[]);
    assert_eq!(report["digest"], json!(rel.index), "{report:#}");
    assert_eq!(report["tags"], json!(["v1"]), "{report:#}");

    assert_mirrored(&a, &rel, &c, "rel", &["v1"]);
    cosign_verifies(&rel, &c.repo("rel"));
    wharf_verifies(&rel, &c.repo("rel"));
    oras_discovers_referrer(&rel, &c.repo("rel"));
}

#[test]
fn mirror_by_digest_lists_the_image_untagged() {
    let a = Registry::start();
    let rel = release(&a, "rel", &small_spec(141));
    let dir = rel.tmp.path().join("pinned");
    mirror_json(
        &format!("{}@{}", a.repo("rel"), rel.index),
        &format!("oci:{}", dir.display()),
        &[],
    );
    let listing = layout_listing(&dir);
    let untagged: Vec<&String> = listing
        .iter()
        .filter(|(_, t)| t.is_none())
        .map(|(d, _)| d)
        .collect();
    assert_eq!(untagged, [&rel.index], "{listing:#?}");
    // Alone among the attachments, it is the layout's one image.
    let tree = tree_json(&format!("oci:{}", dir.display()));
    let images = tree["images"].as_array().unwrap();
    assert_eq!(images.len(), 1, "{tree:#}");
    assert_eq!(images[0]["digest"], json!(rel.index));
    let root_attachments = images[0]["manifests"][0]["attachments"].as_array().unwrap();
    assert_eq!(root_attachments.len(), 3, "{tree:#}"); // .sig, .att, the oras referrer
}

#[test]
fn skopeo_and_oras_read_the_layout_and_archive_wharf_wrote() {
    let a = Registry::start();
    let b = Registry::start();
    let rel = release(&a, "rel", &small_spec(142));
    let dir = rel.tmp.path().join("air-gap");
    let file = rel.tmp.path().join("air-gap.tar");
    mirror_json(&a.repo("rel:v1"), &format!("oci:{}", dir.display()), &[]);
    mirror_json(
        &a.repo("rel:v1"),
        &format!("oci-archive:{}", file.display()),
        &[],
    );
    let (index_bytes, _) = a.get_manifest("rel", &rel.index).unwrap();

    for (n, source) in [
        format!("oci:{}:v1", dir.display()),
        format!("oci-archive:{}:v1", file.display()),
    ]
    .iter()
    .enumerate()
    {
        let raw = run_ok(skopeo().args(["inspect", "--raw", source]));
        assert!(
            raw.stdout == index_bytes,
            "skopeo inspect {source}: other bytes"
        );
        let repo = format!("skopeo-{n}");
        run_ok(
            skopeo()
                .args(["copy", "--quiet", "--all", "--preserve-digests"])
                .args([
                    "--dest-tls-verify=false",
                    source,
                    &format!("docker://{}:v1", b.repo(&repo)),
                ]),
        );
        assert_eq!(
            b.manifest_digest(&repo, "v1"),
            Some(rel.index.clone()),
            "{source}"
        );
    }

    for location in [&dir, &file] {
        for reference in [format!("@{}", rel.index), ":v1".to_string()] {
            let target = format!("{}{reference}", location.display());
            let out = run_ok(
                oras(rel.tmp.path())
                    .args(["manifest", "fetch", "--oci-layout"])
                    .arg(&target),
            );
            assert!(
                out.stdout == index_bytes,
                "oras manifest fetch {target}: other bytes"
            );
        }
    }
    // oras copies the image with its referrer out of the layout.
    run_ok(
        oras(rel.tmp.path())
            .args(["cp", "-r", "--from-oci-layout"])
            .arg(format!("{}:v1", dir.display()))
            .args(["--to-plain-http", &b.repo("oras:v1")]),
    );
    assert_eq!(b.manifest_digest("oras", "v1"), Some(rel.index.clone()));
    oras_discovers_referrer(&rel, &b.repo("oras"));
}

#[test]
fn wharf_reads_layouts_and_archives_skopeo_and_oras_wrote() {
    let a = Registry::start();
    let c = Registry::start();
    let rel = release(&a, "rel", &small_spec(143));
    let tmp = rel.tmp.path();
    let source = format!("docker://{}:v1", a.repo("rel"));
    let skopeo_archive = format!("oci-archive:{}:v1", tmp.join("skopeo.tar").display());
    let skopeo_layout = format!("oci:{}:v1", tmp.join("skopeo-layout").display());
    for dest in [&skopeo_archive, &skopeo_layout] {
        run_ok(
            skopeo()
                .args(["copy", "--quiet", "--all", "--preserve-digests"])
                .args(["--src-tls-verify=false", &source, dest]),
        );
    }
    // skopeo copies the image only: wharf carries it on with its digests.
    for (source, repo) in [
        (&skopeo_archive, "from-archive"),
        (&skopeo_layout, "from-layout"),
    ] {
        let report = mirror_json(source, &c.repo(repo), &[]);
        assert_eq!(report["digest"], json!(rel.index), "{report:#}");
        assert_eq!(c.manifest_digest(repo, "v1"), Some(rel.index.clone()));
        for child in &rel.children {
            assert!(c.get_manifest(repo, child).is_some(), "{child} missing");
        }
    }

    // oras lists every manifest it writes, platform manifests and the referrer among them,
    // without names: wharf still finds one image, with the referrer attached.
    let oras_dir = tmp.join("oras-layout");
    run_ok(
        oras(tmp)
            .args(["cp", "-r", "--from-plain-http"])
            .arg(a.repo("rel:v1"))
            .arg("--to-oci-layout")
            .arg(format!("{}:v1", oras_dir.display())),
    );
    assert!(
        layout_listing(&oras_dir).len() > 2,
        "oras listed only the root"
    );
    let tree = tree_json(&format!("oci:{}", oras_dir.display()));
    let images = tree["images"].as_array().unwrap();
    assert_eq!(images.len(), 1, "{tree:#}");
    assert_eq!(images[0]["tags"], json!(["v1"]), "{tree:#}");
    let root = &images[0]["manifests"][0];
    assert!(
        root["attachments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["reference"] == json!(rel.referrer)),
        "{tree:#}"
    );
    mirror_json(
        &format!("oci:{}:v1", oras_dir.display()),
        &c.repo("from-oras"),
        &[],
    );
    assert_eq!(
        c.manifest_digest("from-oras", "v1"),
        Some(rel.index.clone())
    );
    oras_discovers_referrer(&rel, &c.repo("from-oras"));
}

#[test]
fn archive_is_added_to_and_never_left_half_written() {
    let a = Registry::start();
    let one = release(&a, "one", &small_spec(144));
    let two = release(&a, "two", &small_spec(145));
    let tmp = one.tmp.path();
    let file = tmp.join("train.tar");
    let archive = format!("oci-archive:{}", file.display());

    mirror_json(&a.repo("one:v1"), &archive, &[]);
    mirror_json(
        &format!("{}@{}", a.repo("two"), two.index),
        &archive,
        &["--tag", "two"],
    );
    let tree = tree_json(&archive);
    let images: Vec<(Value, Value)> = tree["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["digest"].clone(), i["tags"].clone()))
        .collect();
    assert_eq!(
        images,
        [
            (json!(one.index), json!(["v1"])),
            (json!(two.index), json!(["two"]))
        ]
    );
    wharf_verifies(&one, &archive);
    wharf_verifies(&two, &archive);
    // Signing happens in a registry or a directory; an archive is only ever written whole.
    let out = run_fail(
        wharf()
            .args(["sign", "--key"])
            .arg(tmp.join("release.key"))
            .args(["--tlog-upload=false"])
            .arg(format!("{archive}@{}", one.index))
            .env("WHARF_PASSWORD", PASSWORD),
    );
    assert_mentions(
        &single_error_line(&out),
        &[&archive, "is read here, not written"],
    );

    // Mirroring what it already holds rewrites nothing.
    let before = std::fs::read(&file).unwrap();
    let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let first_inode = inode(&file);
    let report = mirror_json(&a.repo("one:v1"), &archive, &[]);
    assert!(!report_wrote(&report), "{report:#}");
    assert_eq!(inode(&file), first_inode, "the archive was rewritten");

    // A mirror that fails half-way (a signature's payload is missing from its source, found
    // once the image is staged) leaves the archive as it was and no temporary files beside it.
    let three = release(&a, "three", &small_spec(146));
    let broken = tmp.join("broken");
    mirror_json(
        &a.repo("three:v1"),
        &format!("oci:{}", broken.display()),
        &[],
    );
    let sig_tag = format!("{}.sig", tag_prefix(&three.children[0]));
    let sig = layout_listing(&broken)
        .into_iter()
        .find(|(_, t)| t.as_deref() == Some(sig_tag.as_str()))
        .expect("a .sig entry")
        .0;
    let sig_manifest: Value =
        serde_json::from_slice(&std::fs::read(blob_path(&broken, &sig)).unwrap()).unwrap();
    remove_blob(
        &broken,
        sig_manifest["layers"][0]["digest"].as_str().unwrap(),
    );
    let out = run_fail(&mut mirror_cmd(
        &format!("oci:{}:v1", broken.display()),
        &format!("{archive}:again"),
        &[],
    ));
    single_error_line(&out);
    assert!(
        std::fs::read(&file).unwrap() == before,
        "the archive changed"
    );
    let strays: Vec<String> = std::fs::read_dir(tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".train.tar"))
        .collect();
    assert!(strays.is_empty(), "left behind: {strays:?}");
}

/// Whether a mirror report says anything was written.
fn report_wrote(report: &Value) -> bool {
    let stats = &report["stats"];
    let artifacts = &report["artifacts"];
    report["tags_written"] != json!(0)
        || stats["manifests_written"] != json!(0)
        || stats["blobs_uploaded"] != json!(0)
        || ["signatures", "attestations", "sboms", "referrers", "merged"]
            .iter()
            .any(|k| artifacts[k] != json!(0))
}

#[test]
fn source_and_destination_credentials_differ_from_flags_env_or_an_auth_file() {
    let src = Registry::start_with_basic_auth("src-bot", "src-password");
    let dst = Registry::start_with_basic_auth("dst-bot", "dst-password");
    let tmp = tempdir();
    let layout = make_layout(&tmp.path().join("layout"), &small_spec(121));
    src.push_layout(&layout, "app", "v1");

    // Flags and environment: the destination's password on standard input, the source's in
    // the environment.
    let out = run_with_stdin(
        wharf()
            .args(["mirror", "--allow-insecure-registry"])
            .args([&src.repo("app:v1"), &dst.repo("app")])
            .args(["--source-registry-username", "src-bot"])
            .args([
                "--registry-username",
                "dst-bot",
                "--registry-password-stdin",
            ])
            .env("WHARF_SOURCE_REGISTRY_PASSWORD", "src-password"),
        "dst-password\n",
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(
        dst.manifest_digest("app", "v1").as_deref(),
        Some(layout.root_digest.as_str())
    );

    // Per-host entries in an auth file.
    let auth_file = tmp.path().join("auth.json");
    std::fs::write(
        &auth_file,
        serde_json::to_vec(&json!({"auths": {
            src.addr(): {"username": "src-bot", "password": "src-password"},
            dst.addr(): {"auth": basic_auth("dst-bot", "dst-password").trim_start_matches("Basic ")},
        }}))
        .unwrap(),
    )
    .unwrap();
    run_ok(
        wharf()
            .args(["mirror", "--allow-insecure-registry"])
            .args([&src.repo("app:v1"), &dst.repo("copy")])
            .arg("--registry-auth-file")
            .arg(&auth_file),
    );
    assert_eq!(
        dst.manifest_digest("copy", "v1").as_deref(),
        Some(layout.root_digest.as_str())
    );

    // One registry's password given for the other is refused by that registry, and named.
    let out = run_fail(
        wharf()
            .args(["mirror", "--allow-insecure-registry"])
            .args([&src.repo("app:v1"), &dst.repo("other")])
            .args(["--registry-username", "src-bot"])
            .env("WHARF_REGISTRY_PASSWORD", "src-password"),
    );
    let line = error_line(&out);
    assert!(
        line.contains(src.addr()) && line.contains("requires authentication"),
        "{line}"
    );
}

/// The empty `{}` config every Sigstore bundle referrer shares.
const EMPTY_CONFIG: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/// Bundle referrers of several subjects share one config blob, and their copies run side by
/// side. Distribution rewrites a repository's blob link in place (truncate, then write) each
/// time the blob is uploaded, so a second upload of that config can make it unknown for a
/// moment to a referrer manifest another copy is writing (MANIFEST_BLOB_UNKNOWN). A blob must
/// count as present only once it is: the copies wait for the one upload in flight and nobody
/// sends it again.
///
/// The proxy makes that moment as long as the config's upload (held 300 ms after distribution
/// committed it): every manifest PUT naming the config while any upload of it is unanswered is
/// refused as distribution may refuse it. The mirror succeeds only if no referrer manifest is
/// written while its config is in flight, whatever the timing.
#[test]
fn bundle_referrers_sharing_a_config_are_mirrored_when_its_upload_is_slow() {
    let a = Registry::start();
    let b = Registry::start();
    let tmp = tempdir();
    let key = keys::openssl_key(tmp.path(), "release");
    let image = push_to(
        &a,
        "app",
        &["linux/amd64", "linux/arm64", "linux/s390x"],
        131,
    );
    // A signature bundle on the index and each platform: four referrers, four subjects.
    run_ok(
        wharf()
            .args(["sign", "--recursive", "--allow-insecure-registry"])
            .args(["--key", key.private(), "--tlog-upload=false"])
            .args(["--bundle-format", "bundle"])
            .arg(image.index()),
    );

    let in_flight = Arc::new(AtomicU64::new(0));
    let policy: proxy::Policy = {
        let in_flight = in_flight.clone();
        Box::new(move |req| {
            let committing = req.method == "PUT"
                && req.path.contains("/blobs/uploads/")
                && req.path.contains(&format!("digest={EMPTY_CONFIG}"));
            if !committing {
                return Action::Forward;
            }
            in_flight.fetch_add(1, Ordering::SeqCst);
            let in_flight = in_flight.clone();
            Action::Intercept {
                hook: Hook::new(move || {
                    thread::sleep(Duration::from_millis(300));
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                }),
                delay: Duration::ZERO,
                answer: None,
            }
        })
    };
    let refused = Arc::new(AtomicU64::new(0));
    let rule: proxy::ManifestRule = {
        let refused = refused.clone();
        Box::new(move |_req, body| {
            let names_config = String::from_utf8_lossy(body).contains(EMPTY_CONFIG);
            if names_config && in_flight.load(Ordering::SeqCst) > 0 {
                refused.fetch_add(1, Ordering::SeqCst);
                return Some(Action::registry_error(
                    400,
                    "MANIFEST_BLOB_UNKNOWN",
                    "blob unknown to registry",
                ));
            }
            None
        })
    };
    let proxy = Proxy::start_with_manifest_rule(b.addr(), policy, rule);

    let out = run_ok(&mut mirror_cmd(
        &image.index(),
        &proxy.repo("app"),
        &["--output", "json"],
    ));
    let report = parse_json(&out);
    assert_eq!(report["artifacts"]["referrers"], json!(4), "{report:#}");
    assert_eq!(refused.load(Ordering::SeqCst), 0);
    let commits = proxy
        .records()
        .iter()
        .filter(|r| r.method == "PUT" && r.path.contains(&format!("digest={EMPTY_CONFIG}")))
        .count();
    assert_eq!(commits, 1, "the shared config is sent once");
    for digest in image.all_digests() {
        run_ok(&mut wharf_verify_key(
            key.public(),
            &image.via(b.addr(), &digest),
        ));
    }
}
