//! End-to-end tests of `wharf push` against real `docker-registry` instances on loopback
//! ports (see `tests/common`), with skopeo as an independent reference implementation.
//!
//! Every test starts its own registry and writes its layouts into its own temp dirs.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};

use common::hostile;
use common::proxy::{self, Action, Fault, Proxy, Record};
use common::*;
use serde_json::{json, Value};

/// Layers are small: these tests are about bytes and digests, not throughput.
const LAYER_SIZE: usize = 64 * 1024;

/// Three platforms (one with a variant) sharing a base layer, plus one own layer each.
fn multi_arch_spec(seed: u64) -> LayoutSpec {
    LayoutSpec {
        platforms: vec!["linux/amd64", "linux/arm64", "linux/arm/v7"],
        layers_per_platform: 1,
        layer_size: LAYER_SIZE,
        shared_layer: true,
        seed,
        ..Default::default()
    }
}

/// `wharf push [ARGS…] --allow-insecure-registry` (the registries speak plain HTTP).
fn push_cmd(args: &[&str]) -> Command {
    let mut cmd = wharf();
    cmd.arg("push").args(args).arg("--allow-insecure-registry");
    cmd
}

/// Runs `wharf push LAYOUT DEST [EXTRA…] --output json` and returns the parsed report.
fn push_json(layout: &str, dest: &str, extra: &[&str]) -> Value {
    let mut args = vec![layout, dest];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--output", "json"]);
    let out = run_ok(&mut push_cmd(&args));
    parse_json(&out)
}

/// The layout's path as a `wharf push` source argument, with `:REF` when given.
fn source(layout: &BuiltLayout, reference: Option<&str>) -> String {
    match reference {
        Some(r) => format!("{}:{r}", layout.dir.display()),
        None => layout.dir.display().to_string(),
    }
}

/// Every manifest of `layout` is in `repo` by digest, byte-for-byte; every config and
/// layer too.
fn assert_layout_in_registry(reg: &Registry, repo: &str, layout: &BuiltLayout) {
    for digest in &layout.manifest_digests {
        let (bytes, _) = reg
            .get_manifest(repo, digest)
            .unwrap_or_else(|| panic!("manifest {digest} missing from {repo}"));
        assert!(
            bytes == layout.read_blob(digest),
            "manifest {digest} in {repo} differs from the layout's bytes"
        );
    }
    for digest in &layout.blob_digests {
        let bytes = reg
            .get_blob(repo, digest)
            .unwrap_or_else(|| panic!("blob {digest} missing from {repo}"));
        assert!(
            bytes == layout.read_blob(digest),
            "blob {digest} in {repo} differs"
        );
    }
}

/// Checks the `manifests[]` of a push report against the layout's platforms.
fn assert_report_platforms(report: &Value, layout: &BuiltLayout) {
    let manifests = report["manifests"].as_array().expect("manifests array");
    for (platform, digest) in &layout.platforms {
        let entry = manifests
            .iter()
            .find(|m| m["platform"] == json!(platform))
            .unwrap_or_else(|| panic!("report lists no {platform}: {report:#}"));
        assert_eq!(entry["digest"], json!(digest), "digest of {platform}");
        assert_eq!(
            entry["size"],
            json!(layout.read_blob(digest).len()),
            "size of {platform}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Pushing to a registry
// ---------------------------------------------------------------------------------------

#[test]
fn multi_arch_layout_pushes_by_digest_then_tags() {
    let reg = Registry::start();
    let tmp = tempdir();
    let layout = make_layout(&tmp.path().join("layout"), &multi_arch_spec(11));
    let dest = reg.repo("app");

    let report = push_json(&source(&layout, None), &dest, &[]);
    assert_eq!(report["digest"], json!(layout.root_digest), "{report:#}");
    assert_eq!(report["mediaType"], json!(media_type::OCI_INDEX));
    assert_eq!(report["size"], json!(layout.root_size));
    assert_eq!(
        report["reference"],
        json!(format!("{dest}@{}", layout.root_digest))
    );
    assert_eq!(report["tags"], json!([]));
    let manifests = report["manifests"].as_array().expect("manifests array");
    assert_eq!(manifests.len(), 3, "{report:#}");
    assert_report_platforms(&report, &layout);
    let platforms: Vec<&str> = manifests
        .iter()
        .map(|m| m["platform"].as_str().unwrap_or("-"))
        .collect();
    assert!(platforms.contains(&"linux/arm/v7"), "{platforms:?}");

    assert_layout_in_registry(&reg, "app", &layout);
    let (root, content_type) = reg.get_manifest("app", &layout.root_digest).unwrap();
    assert!(root == layout.read_blob(&layout.root_digest));
    assert_eq!(content_type, media_type::OCI_INDEX);
    assert_eq!(
        reg.tags("app"),
        Vec::<String>::new(),
        "push by digest tagged"
    );

    let report = push_json(
        &source(&layout, None),
        &dest,
        &["--tag", "v1", "--tag", "latest"],
    );
    assert_eq!(report["digest"], json!(layout.root_digest));
    let mut tags: Vec<String> = serde_json::from_value(report["tags"].clone()).unwrap();
    tags.sort();
    assert_eq!(tags, ["latest", "v1"]);
    assert_eq!(reg.tags("app"), ["latest", "v1"]);
    for tag in ["v1", "latest"] {
        assert_eq!(
            reg.manifest_digest("app", tag).as_deref(),
            Some(layout.root_digest.as_str()),
            "tag {tag}"
        );
    }
}

#[test]
fn skopeo_inspect_raw_returns_the_layout_root_bytes() {
    let skopeo = require_tool("skopeo");
    let reg = Registry::start();
    let tmp = tempdir();
    let layout = make_layout(&tmp.path().join("layout"), &multi_arch_spec(12));
    let report = push_json(&source(&layout, Some("v1")), &reg.repo("app"), &[]);
    assert_eq!(report["digest"], json!(layout.root_digest));

    let out = run_ok(
        Command::new(skopeo)
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!(
                "docker://{}@{}",
                reg.repo("app"),
                layout.root_digest
            )),
    );
    assert!(
        out.stdout == layout.read_blob(&layout.root_digest),
        "skopeo inspect --raw differs from the layout's root manifest:\n{}",
        stdout_of(&out)
    );
}

#[test]
fn skopeo_copy_yields_the_same_digests_as_wharf() {
    let skopeo = require_tool("skopeo");
    let reg = Registry::start();
    let tmp = tempdir();
    let layout = make_layout(&tmp.path().join("layout"), &multi_arch_spec(13));

    let report = push_json(&source(&layout, None), &reg.repo("by-wharf"), &[]);
    run_ok(
        Command::new(skopeo)
            .args([
                "copy",
                "--all",
                "--preserve-digests",
                "--dest-tls-verify=false",
            ])
            .arg(format!("oci:{}:v1", layout.dir.display()))
            .arg(format!("docker://{}:v1", reg.repo("by-skopeo"))),
    );

    let skopeo_root = reg
        .manifest_digest("by-skopeo", "v1")
        .expect("skopeo pushed no v1");
    assert_eq!(report["digest"], json!(skopeo_root), "root digests differ");
    let (wharf_root, _) = reg.get_manifest("by-wharf", &skopeo_root).unwrap();
    let (skopeo_root_bytes, _) = reg.get_manifest("by-skopeo", &skopeo_root).unwrap();
    assert!(wharf_root == skopeo_root_bytes);

    // Children: what the index lists is what both tools stored.
    let index: Value = serde_json::from_slice(&skopeo_root_bytes).unwrap();
    let children: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    assert_eq!(children.len(), 3);
    let reported: Vec<&str> = report["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    for child in children {
        assert!(reported.contains(&child), "wharf did not report {child}");
        let (w, _) = reg
            .get_manifest("by-wharf", child)
            .unwrap_or_else(|| panic!("{child} missing from by-wharf"));
        let (s, _) = reg
            .get_manifest("by-skopeo", child)
            .unwrap_or_else(|| panic!("{child} missing from by-skopeo"));
        assert!(w == s, "manifest {child} differs between wharf and skopeo");
    }
}

#[test]
fn nested_index_digests_are_preserved() {
    let reg = Registry::start();
    let tmp = tempdir();
    let spec = LayoutSpec {
        nested_index: true,
        ..multi_arch_spec(14)
    };
    let layout = make_layout(&tmp.path().join("layout"), &spec);
    assert_eq!(layout.manifest_digests.len(), 5); // 3 images, inner index, root

    let report = push_json(&source(&layout, None), &reg.repo("nested"), &["-t", "v1"]);
    assert_eq!(report["digest"], json!(layout.root_digest));
    assert_report_platforms(&report, &layout);
    // Every manifest below the root, the inner index included.
    let mut reported: Vec<String> = report["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect();
    reported.sort();
    let mut expected: Vec<String> = layout
        .manifest_digests
        .iter()
        .filter(|d| **d != layout.root_digest)
        .cloned()
        .collect();
    expected.sort();
    assert_eq!(reported, expected, "{report:#}");

    assert_layout_in_registry(&reg, "nested", &layout);
    assert_eq!(
        reg.manifest_digest("nested", "v1").as_deref(),
        Some(layout.root_digest.as_str())
    );
}

#[test]
fn docker_media_types_are_preserved() {
    let reg = Registry::start();
    let tmp = tempdir();
    let spec = LayoutSpec {
        docker_media_types: true,
        ..multi_arch_spec(15)
    };
    let layout = make_layout(&tmp.path().join("layout"), &spec);
    assert_eq!(layout.root_media_type, media_type::DOCKER_LIST);

    let report = push_json(&source(&layout, None), &reg.repo("docker"), &["-t", "v1"]);
    assert_eq!(report["digest"], json!(layout.root_digest));
    assert_eq!(report["mediaType"], json!(media_type::DOCKER_LIST));
    assert_report_platforms(&report, &layout);
    assert_layout_in_registry(&reg, "docker", &layout);

    let (_, content_type) = reg.get_manifest("docker", &layout.root_digest).unwrap();
    assert_eq!(content_type, media_type::DOCKER_LIST);
    let (_, content_type) = reg.get_manifest("docker", "v1").unwrap();
    assert_eq!(content_type, media_type::DOCKER_LIST);
    for (platform, digest) in &layout.platforms {
        let (_, content_type) = reg.get_manifest("docker", digest).unwrap();
        assert_eq!(content_type, media_type::DOCKER_MANIFEST, "{platform}");
    }
}

#[test]
fn single_manifest_layout_digest_is_preserved() {
    let reg = Registry::start();
    let tmp = tempdir();
    let spec = LayoutSpec {
        single_manifest: true,
        ..multi_arch_spec(16)
    };
    let layout = make_layout(&tmp.path().join("layout"), &spec);
    assert_eq!(layout.root_media_type, media_type::OCI_MANIFEST);

    let report = push_json(&source(&layout, None), &reg.repo("single"), &["-t", "v1"]);
    assert_eq!(report["digest"], json!(layout.root_digest));
    assert_eq!(report["mediaType"], json!(media_type::OCI_MANIFEST));
    assert_eq!(report["manifests"], json!([]), "{report:#}");
    assert_layout_in_registry(&reg, "single", &layout);
    let (bytes, content_type) = reg.get_manifest("single", "v1").unwrap();
    assert!(bytes == layout.read_blob(&layout.root_digest));
    assert_eq!(content_type, media_type::OCI_MANIFEST);
}

#[test]
fn second_push_moves_nothing() {
    let reg = Registry::start();
    let tmp = tempdir();
    let layout = make_layout(&tmp.path().join("layout"), &multi_arch_spec(17));
    let dest = reg.repo("again");

    let first = push_json(&source(&layout, None), &dest, &[]);
    assert_eq!(first["stats"]["manifests_written"], json!(4), "{first:#}");
    // 3 configs + 3 own layers + 1 shared layer.
    assert_eq!(first["stats"]["blobs_uploaded"], json!(7), "{first:#}");

    let mark = reg.request_count();
    let second = push_json(&source(&layout, None), &dest, &[]);
    let requests = reg.requests_since(mark);

    assert_eq!(second["digest"], json!(layout.root_digest));
    assert_eq!(second["stats"]["manifests_written"], json!(0), "{second:#}");
    assert_eq!(second["stats"]["blobs_uploaded"], json!(0), "{second:#}");
    assert_eq!(second["stats"]["bytes_uploaded"], json!(0), "{second:#}");
    let writes: Vec<_> = requests
        .iter()
        .filter(|r| matches!(r.method.as_str(), "PUT" | "PATCH" | "POST"))
        .collect();
    assert!(writes.is_empty(), "second push wrote: {writes:#?}");
    assert!(
        requests.len() <= 2,
        "second push sent {} requests: {requests:#?}",
        requests.len()
    );
    let root_head = format!("/v2/again/manifests/{}", layout.root_digest);
    assert!(
        requests
            .iter()
            .any(|r| r.method == "HEAD" && r.uri == root_head),
        "no HEAD of the root manifest: {requests:#?}"
    );
    for r in &requests {
        assert!(
            r.uri == root_head || r.uri == "/v2/",
            "unexpected request {} {}",
            r.method,
            r.uri
        );
    }
}

// ---------------------------------------------------------------------------------------
// oci:DIR destinations
// ---------------------------------------------------------------------------------------

#[test]
fn oci_destination_round_trips() {
    let reg = Registry::start();
    let tmp = tempdir();
    let layout = make_layout(&tmp.path().join("layout"), &multi_arch_spec(18));
    let out_dir = tmp.path().join("out");

    let to_dir = push_json(
        &source(&layout, None),
        &format!("oci:{}", out_dir.display()),
        &["--tag", "v1"],
    );
    assert_eq!(to_dir["digest"], json!(layout.root_digest));

    // OUT is a valid layout holding the image under v1, byte-for-byte.
    let marker: Value =
        serde_json::from_slice(&fs::read(out_dir.join("oci-layout")).unwrap()).unwrap();
    assert_eq!(marker["imageLayoutVersion"], "1.0.0");
    let index: Value =
        serde_json::from_slice(&fs::read(out_dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    let entries = index["manifests"].as_array().expect("index.json manifests");
    let v1: Vec<&Value> = entries
        .iter()
        .filter(|e| e["annotations"][REF_NAME_ANNOTATION] == "v1")
        .collect();
    assert_eq!(v1.len(), 1, "index.json: {index:#}");
    assert_eq!(v1[0]["digest"], json!(layout.root_digest));
    assert_eq!(v1[0]["mediaType"], json!(media_type::OCI_INDEX));
    assert_eq!(v1[0]["size"], json!(layout.root_size));
    for digest in layout.manifest_digests.iter().chain(&layout.blob_digests) {
        let copied = fs::read(blob_path(&out_dir, digest))
            .unwrap_or_else(|e| panic!("{digest} not in the output layout: {e}"));
        assert!(copied == layout.read_blob(digest), "{digest} differs");
    }

    // And OUT:v1 pushes to a registry with the same digests.
    let to_registry = push_json(
        &format!("{}:v1", out_dir.display()),
        &reg.repo("round-trip"),
        &["--tag", "v1"],
    );
    assert_eq!(to_registry["digest"], json!(layout.root_digest));
    assert_eq!(to_registry["manifests"], to_dir["manifests"]);
    assert_layout_in_registry(&reg, "round-trip", &layout);
    assert_eq!(
        reg.manifest_digest("round-trip", "v1").as_deref(),
        Some(layout.root_digest.as_str())
    );
}

#[test]
fn untagged_push_lists_the_image_once_and_a_later_tag_names_that_entry() {
    let tmp = tempdir();
    let layout = make_layout(&tmp.path().join("layout"), &multi_arch_spec(30));
    let out_dir = tmp.path().join("out");
    let dest = format!("oci:{}", out_dir.display());
    let root = layout.root_digest.clone();

    push_json(&source(&layout, None), &dest, &[]);
    push_json(&source(&layout, None), &dest, &[]);
    let entries = layout_index_entries(&out_dir);
    assert_eq!(
        entries,
        [json!({"mediaType": layout.root_media_type, "digest": root, "size": layout.root_size})],
        "one untagged entry, whatever the number of pushes"
    );

    push_json(&source(&layout, None), &dest, &["--tag", "v1"]);
    assert_eq!(
        layout_listing(&out_dir),
        [(root.clone(), Some("v1".into()))]
    );
    push_json(&source(&layout, None), &dest, &["--tag", "latest"]);
    assert_eq!(
        layout_listing(&out_dir),
        [
            (root.clone(), Some("v1".into())),
            (root.clone(), Some("latest".into()))
        ]
    );

    // skopeo and oras read it by name.
    let raw = run_ok(
        Command::new(require_tool("skopeo"))
            .args(["inspect", "--raw"])
            .arg(format!("{dest}:latest")),
    );
    assert!(
        raw.stdout == layout.read_blob(&root),
        "skopeo read other bytes"
    );
    let tags = run_ok(
        Command::new(require_tool("oras"))
            .args(["repo", "tags", "--oci-layout"])
            .arg(&out_dir),
    );
    assert_eq!(
        stdout_of(&tags).lines().collect::<Vec<_>>(),
        ["latest", "v1"]
    );
}

#[test]
fn several_images_share_one_layout_and_tree_lists_them_all() {
    let tmp = tempdir();
    let layouts: Vec<BuiltLayout> = (0..3)
        .map(|i| make_layout(&tmp.path().join(format!("l{i}")), &multi_arch_spec(31 + i)))
        .collect();
    let out_dir = tmp.path().join("train");
    let dest = format!("oci:{}", out_dir.display());
    push_json(&source(&layouts[0], None), &dest, &["--tag", "a"]);
    push_json(&source(&layouts[1], None), &dest, &["--tag", "b"]);
    push_json(&source(&layouts[2], None), &dest, &[]);
    push_json(&source(&layouts[0], None), &dest, &[]);
    assert_eq!(
        layout_listing(&out_dir),
        [
            (layouts[0].root_digest.clone(), Some("a".into())),
            (layouts[1].root_digest.clone(), Some("b".into())),
            (layouts[2].root_digest.clone(), None),
        ]
    );

    let out = run_ok(wharf().args(["tree", "--output", "json", &dest]));
    let tree = parse_json(&out);
    let images = tree["images"].as_array().expect("images");
    let seen: Vec<(&str, Value)> = images
        .iter()
        .map(|i| (i["digest"].as_str().unwrap(), i["tags"].clone()))
        .collect();
    assert_eq!(
        seen,
        [
            (layouts[0].root_digest.as_str(), json!(["a"])),
            (layouts[1].root_digest.as_str(), json!(["b"])),
            (layouts[2].root_digest.as_str(), Value::Null),
        ]
    );
    for (image, layout) in images.iter().zip(&layouts) {
        assert_eq!(
            image["manifests"].as_array().unwrap().len(),
            layout.manifest_digests.len(),
            "{image:#}"
        );
    }

    // Named without a ref, the layout is ambiguous: the error lists what to choose from.
    let reg = Registry::start();
    let line = single_error_line(&run_fail(&mut push_cmd(&[&dest, &reg.repo("app")])));
    assert_mentions(&line, &["holds 3 images", "a, b", &layouts[2].root_digest]);
}

/// An archive as `docker buildx build --output type=oci,dest=FILE` writes it (BuildKit uses
/// containerd's exporter): entries sorted by name, directory entries, read-only blobs, and a
/// Docker `manifest.json` beside the layout.
#[test]
fn buildx_style_archive_pushes_by_digest() {
    let reg = Registry::start();
    let tmp = tempdir();
    let layout = make_layout(&tmp.path().join("layout"), &multi_arch_spec(36));
    let mut files: Vec<(String, Vec<u8>)> = layout
        .manifest_digests
        .iter()
        .chain(&layout.blob_digests)
        .map(|d| (format!("blobs/sha256/{}", &d[7..]), layout.read_blob(d)))
        .collect();
    for name in ["index.json", "oci-layout"] {
        files.push((name.to_string(), fs::read(layout.dir.join(name)).unwrap()));
    }
    files.push((
        "manifest.json".to_string(),
        br#"[{"Config":"","RepoTags":[],"Layers":[]}]"#.to_vec(),
    ));
    files.sort();
    files.dedup();
    let mut entries = vec![
        hostile::tar_entry("blobs/", tar::EntryType::Directory, b"", ""),
        hostile::tar_entry("blobs/sha256/", tar::EntryType::Directory, b"", ""),
    ];
    entries.extend(
        files
            .iter()
            .map(|(name, bytes)| hostile::tar_entry(name, tar::EntryType::Regular, bytes, "")),
    );
    let archive = tmp.path().join("image.tar");
    fs::write(&archive, hostile::tar_with(&[0; 1024], &entries)).unwrap();

    let report = push_json(
        &archive.display().to_string(),
        &reg.repo("app"),
        &["--tag", "v1"],
    );
    assert_eq!(report["digest"], json!(layout.root_digest));
    assert_layout_in_registry(&reg, "app", &layout);
}

#[test]
fn archive_round_trip_keeps_memory_flat() {
    let reg = Registry::start();
    let tmp = tempdir();
    let spec = LayoutSpec {
        platforms: vec!["linux/amd64", "linux/arm64"],
        layer_size: 128 << 20,
        seed: 35,
        ..Default::default()
    };
    let layout = make_layout(&tmp.path().join("layout"), &spec);
    let archive = tmp.path().join("image.tar");
    let limit = std::time::Duration::from_secs(120);
    let runs = [
        push_cmd(&[
            &source(&layout, None),
            &format!("oci-archive:{}", archive.display()),
            "--tag",
            "v1",
        ]),
        // A bare path naming a file is an archive.
        push_cmd(&[
            &format!("{}:v1", archive.display()),
            &reg.repo("app"),
            "--tag",
            "v1",
        ]),
    ];
    for mut cmd in runs {
        let run = hostile::run_bounded(&mut cmd, limit);
        assert!(run.output.status.success(), "{}", run.stderr());
        eprintln!("peak {} MiB in {:?}", run.peak_rss_kib / 1024, run.elapsed);
        assert!(
            run.peak_rss_kib < 96 * 1024,
            "peak memory {} MiB moving 256 MiB of layers",
            run.peak_rss_kib / 1024
        );
    }
    assert_layout_in_registry(&reg, "app", &layout);
    assert_eq!(
        reg.manifest_digest("app", "v1").as_deref(),
        Some(layout.root_digest.as_str())
    );
}

// ---------------------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------------------

const USER: &str = "pusher";
const PASSWORD: &str = "s3cret-Pa55word-4711";
const WRONG_PASSWORD: &str = "wrong-Pa55word-0815";

#[test]
fn basic_auth_with_docker_config() {
    let reg = Registry::start_with_basic_auth(USER, PASSWORD);
    let tmp = tempdir();
    let layout = make_layout(&tmp.path().join("layout"), &multi_arch_spec(19));
    let config = reg.docker_config(&tmp.path().join("docker"));

    let out = run_ok(
        push_cmd(&[
            &source(&layout, None),
            &reg.repo("private"),
            "--tag",
            "v1",
            "--output",
            "json",
        ])
        .env("DOCKER_CONFIG", &config),
    );
    let report = parse_json(&out);
    assert_eq!(report["digest"], json!(layout.root_digest));
    assert_layout_in_registry(&reg, "private", &layout);
    assert_eq!(reg.tags("private"), ["v1"]);
    assert!(!stdout_of(&out).contains(PASSWORD));
    assert!(!stderr_of(&out).contains(PASSWORD));
}

#[test]
fn basic_auth_with_username_and_password_on_stdin() {
    let reg = Registry::start_with_basic_auth(USER, PASSWORD);
    let tmp = tempdir();
    let layout = make_layout(&tmp.path().join("layout"), &multi_arch_spec(20));

    let out = run_with_stdin(
        &mut push_cmd(&[
            &source(&layout, None),
            &reg.repo("private"),
            "--tag",
            "v1",
            "--output",
            "json",
            "--registry-username",
            USER,
            "--registry-password-stdin",
        ]),
        &format!("{PASSWORD}\n"),
    );
    assert!(
        out.status.success(),
        "push failed:\n{}\n{}",
        stdout_of(&out),
        stderr_of(&out)
    );
    let report = parse_json(&out);
    assert_eq!(report["digest"], json!(layout.root_digest));
    assert_layout_in_registry(&reg, "private", &layout);
    assert_eq!(reg.tags("private"), ["v1"]);
    assert!(!stdout_of(&out).contains(PASSWORD));
    assert!(!stderr_of(&out).contains(PASSWORD));
}

#[test]
fn basic_auth_with_a_wrong_password_fails_cleanly() {
    let reg = Registry::start_with_basic_auth(USER, PASSWORD);
    let tmp = tempdir();
    let layout = make_layout(&tmp.path().join("layout"), &multi_arch_spec(21));

    // Wrong password on stdin.
    let out = run_with_stdin(
        &mut push_cmd(&[
            &source(&layout, None),
            &reg.repo("private"),
            "--tag",
            "v1",
            "--registry-username",
            USER,
            "--registry-password-stdin",
        ]),
        &format!("{WRONG_PASSWORD}\n"),
    );
    check_auth_failure(&reg, &out);

    // Wrong password in the Docker config.
    let config_dir = tmp.path().join("docker");
    fs::create_dir_all(&config_dir).unwrap();
    let auth = base64_encode(&format!("{USER}:{WRONG_PASSWORD}"));
    fs::write(
        config_dir.join("config.json"),
        serde_json::to_vec(&json!({ "auths": { reg.addr(): { "auth": auth } } })).unwrap(),
    )
    .unwrap();
    let out = run_fail(
        push_cmd(&[&source(&layout, None), &reg.repo("private"), "--tag", "v1"])
            .env("DOCKER_CONFIG", &config_dir),
    );
    check_auth_failure(&reg, &out);
}

fn check_auth_failure(reg: &Registry, out: &Output) {
    let line = single_error_line(out);
    assert_mentions(&line, &[reg.addr()]);
    let lower = line.to_lowercase();
    assert!(
        ["credentials", "password", "unauthorized"]
            .iter()
            .any(|w| lower.contains(w)),
        "error does not say the credentials were refused: {line}"
    );
    for text in [stdout_of(out), stderr_of(out)] {
        assert!(!text.contains(WRONG_PASSWORD), "password leaked: {text}");
        assert!(!text.contains(PASSWORD), "password leaked: {text}");
        assert!(
            !text.contains(&base64_encode(&format!("{USER}:{WRONG_PASSWORD}"))),
            "encoded credentials leaked: {text}"
        );
    }
    assert_eq!(reg.tags("private"), Vec::<String>::new(), "tag written");
}

fn base64_encode(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

// ---------------------------------------------------------------------------------------
// Chunked uploads: a body size limit in front of the registry
// ---------------------------------------------------------------------------------------

/// The body size limit of the proxies below (nginx's `client_max_body_size 1m`).
const BODY_LIMIT: u64 = 1024 * 1024;

/// The upload session (its id) of a request to `/v2/…/blobs/uploads/<id>?…`.
fn upload_session(path: &str) -> Option<&str> {
    let rest = path.split_once("/blobs/uploads/")?.1;
    let id = rest.split('?').next().unwrap_or_default();
    (!id.is_empty()).then_some(id)
}

/// `(start, end)` of a PATCH's `Content-Range: start-end`.
fn content_range(r: &Record) -> (u64, u64) {
    let range = r
        .header("Content-Range")
        .unwrap_or_else(|| panic!("PATCH #{} without Content-Range: {r:?}", r.seq));
    let (start, end) = range
        .split_once('-')
        .unwrap_or_else(|| panic!("malformed Content-Range {range:?}"));
    (start.trim().parse().unwrap(), end.trim().parse().unwrap())
}

/// The `digest=` query parameter of a closing PUT.
fn closing_digest(path: &str) -> Option<String> {
    let query = path.split_once('?')?.1;
    query
        .split('&')
        .find_map(|p| p.strip_prefix("digest="))
        .map(|d| d.replace("%3A", ":").replace("%3a", ":"))
}

/// Checks every chunked upload among the requests the proxy forwarded: per upload session,
/// each PATCH has a `Content-Range` matching its `Content-Length` and at most `max_chunk`
/// bytes, the ranges follow each other from byte 0, and the session is closed by a PUT
/// without body naming a blob of `layout` whose size the ranges add up to. Returns the
/// digests uploaded in chunks.
fn check_chunked_uploads(
    records: &[Record],
    layout: &BuiltLayout,
    max_chunk: u64,
) -> BTreeSet<String> {
    let mut sessions: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.action == "forward") {
        if let Some(id) = upload_session(&r.path) {
            sessions.entry(id).or_default().push(r);
        }
    }
    let mut chunked = BTreeSet::new();
    for (id, mut requests) in sessions {
        requests.sort_by_key(|r| r.seq);
        let patches: Vec<&Record> = requests
            .iter()
            .copied()
            .filter(|r| r.method == "PATCH")
            .collect();
        if patches.is_empty() {
            continue;
        }
        let mut next = 0;
        for p in &patches {
            let (start, end) = content_range(p);
            let len = p.content_length().expect("PATCH without Content-Length");
            assert_eq!(
                start, next,
                "session {id}: PATCH #{} starts at {start}, not where the last one ended",
                p.seq
            );
            assert_eq!(
                end - start + 1,
                len,
                "PATCH #{}: range and length differ",
                p.seq
            );
            assert!(
                len <= max_chunk,
                "PATCH #{} of {len} bytes was forwarded",
                p.seq
            );
            next = end + 1;
        }
        let close = requests
            .iter()
            .find(|r| r.method == "PUT")
            .unwrap_or_else(|| panic!("session {id} was never closed: {requests:#?}"));
        assert_eq!(close.content_length(), Some(0), "closing PUT with a body");
        let digest = closing_digest(&close.path)
            .unwrap_or_else(|| panic!("closing PUT without digest: {}", close.path));
        assert!(
            layout.blob_digests.contains(&digest),
            "session {id} closed as {digest}, not a blob of the layout"
        );
        assert_eq!(
            next,
            layout.read_blob(&digest).len() as u64,
            "the PATCHes of {digest} do not add up to its size"
        );
        chunked.insert(digest);
    }
    chunked
}

/// The layout's blobs larger than `size`.
fn blobs_over(layout: &BuiltLayout, size: u64) -> BTreeSet<String> {
    layout
        .blob_digests
        .iter()
        .filter(|d| layout.read_blob(d).len() as u64 > size)
        .cloned()
        .collect()
}

#[test]
fn blobs_too_large_for_a_proxy_are_pushed_in_chunks() {
    let reg = Registry::start();
    let proxy = Proxy::start(reg.addr(), proxy::refuse_bodies_over(BODY_LIMIT));
    let tmp = tempdir();
    let spec = LayoutSpec {
        platforms: vec!["linux/amd64", "linux/arm64"],
        layers_per_platform: 1,
        // Not a multiple of any chunk size: the last chunk is a short one.
        layer_size: 3 * 1024 * 1024 + 12345,
        shared_layer: true,
        seed: 40,
        ..Default::default()
    };
    let layout = make_layout(&tmp.path().join("layout"), &spec);
    let layers = blobs_over(&layout, BODY_LIMIT);
    assert_eq!(layers.len(), 3);

    let report = push_json(
        &source(&layout, None),
        &proxy.repo("chunked"),
        &["--tag", "v1"],
    );
    assert_eq!(report["digest"], json!(layout.root_digest), "{report:#}");
    assert_report_platforms(&report, &layout);
    assert_layout_in_registry(&reg, "chunked", &layout);
    assert_eq!(reg.tags("chunked"), ["v1"]);

    let records = proxy.records();
    eprintln!(
        "proxy {}: {} requests, {} answered 413, {} PATCHes",
        proxy.addr(),
        records.len(),
        proxy.count("413"),
        records.iter().filter(|r| r.method == "PATCH").count()
    );
    for r in &records {
        if r.content_length().is_some_and(|n| n > BODY_LIMIT) {
            assert_eq!(r.action, "413", "{r:?}");
        }
    }
    // Each layer was first offered in one PUT, refused, then sent in chunks.
    let refused_puts = records
        .iter()
        .filter(|r| r.method == "PUT" && r.action == "413")
        .count();
    assert_eq!(refused_puts, layers.len(), "{records:#?}");
    assert_eq!(check_chunked_uploads(&records, &layout, BODY_LIMIT), layers);
}

/// The piece size a body limit forced on one blob is where the next blobs start: one at a
/// time (-j 1), only the first blob's pieces are refused (twice: 3 MiB, then 1.5 MiB).
#[test]
fn piece_size_learnt_from_a_body_limit_holds_for_later_blobs() {
    let reg = Registry::start();
    let proxy = Proxy::start(reg.addr(), proxy::refuse_bodies_over(BODY_LIMIT));
    let tmp = tempdir();
    let spec = LayoutSpec {
        layer_size: 3 * 1024 * 1024 + 12345,
        shared_layer: true,
        seed: 45,
        ..Default::default()
    };
    let layout = make_layout(&tmp.path().join("layout"), &spec);
    let report = push_json(&source(&layout, None), &proxy.repo("learn"), &["-j", "1"]);
    assert_eq!(report["digest"], json!(layout.root_digest), "{report:#}");
    assert_layout_in_registry(&reg, "learn", &layout);
    let refused_pieces = proxy
        .records()
        .iter()
        .filter(|r| r.method == "PATCH" && r.action == "413")
        .count();
    assert_eq!(refused_pieces, 2);
}

/// A chunked push where the third PATCH the proxy would forward gets `fault` (`kind` in
/// the proxy's records) instead: the upload resumes where the registry stands rather than
/// starting the blob over.
fn chunked_push_resumes_after(fault: Action, kind: &str) {
    let reg = Registry::start();
    let forwarded_patches = AtomicU64::new(0);
    let proxy = Proxy::start(
        reg.addr(),
        Box::new(move |req| {
            if req.content_length().is_some_and(|n| n > BODY_LIMIT) {
                return proxy::payload_too_large();
            }
            if req.method == "PATCH" && forwarded_patches.fetch_add(1, Ordering::SeqCst) == 2 {
                return fault.clone();
            }
            Action::Forward
        }),
    );
    let tmp = tempdir();
    let spec = LayoutSpec {
        platforms: vec!["linux/amd64"],
        single_manifest: true,
        layers_per_platform: 1,
        layer_size: 4 * 1024 * 1024 + 777,
        seed: 41,
        ..Default::default()
    };
    let layout = make_layout(&tmp.path().join("layout"), &spec);
    let report = push_json(&source(&layout, None), &proxy.repo("resume"), &[]);
    assert_eq!(report["digest"], json!(layout.root_digest), "{report:#}");
    assert_layout_in_registry(&reg, "resume", &layout);

    let records = proxy.records();
    let failed: Vec<&Record> = records
        .iter()
        .filter(|r| r.method == "PATCH" && r.action == kind)
        .collect();
    assert_eq!(failed.len(), 1, "{records:#?}");
    let failed = failed[0];
    let session = upload_session(&failed.path).expect("PATCH outside an upload session");
    let (start, _) = content_range(failed);
    assert!(start > 0, "the failed PATCH was the first of its blob");
    let later: Vec<&Record> = records
        .iter()
        .filter(|r| r.seq > failed.seq && upload_session(&r.path) == Some(session))
        .collect();
    // The registry was asked how much it holds, then sent the rest from there.
    let status = later
        .iter()
        .position(|r| r.method == "GET")
        .unwrap_or_else(|| panic!("no status request after the failure: {later:#?}"));
    let resumed = later
        .iter()
        .position(|r| r.method == "PATCH")
        .unwrap_or_else(|| panic!("the session got no more PATCHes: {later:#?}"));
    assert!(status < resumed, "{later:#?}");
    assert_eq!(
        content_range(later[resumed]).0,
        start,
        "resumed elsewhere than at the failed chunk"
    );
    let restarts = records
        .iter()
        .filter(|r| r.seq > failed.seq && r.method == "POST")
        .count();
    assert_eq!(restarts, 0, "a new upload was started: {records:#?}");
    assert_eq!(
        check_chunked_uploads(&records, &layout, BODY_LIMIT),
        blobs_over(&layout, BODY_LIMIT)
    );
}

#[test]
fn chunked_push_resumes_after_a_connection_reset() {
    chunked_push_resumes_after(Action::Reset, "reset");
}

#[test]
fn chunked_push_resumes_after_a_503() {
    chunked_push_resumes_after(Fault::Unavailable.action(), "503");
}

/// A connection that breaks under a large blob sent in one request: the retry goes in
/// pieces (16 MiB), so a further break would cost one piece, not the whole blob.
#[test]
fn large_blob_whose_upload_breaks_is_retried_in_pieces() {
    const LAYER: usize = 20 * 1024 * 1024;
    let reg = Registry::start();
    let broken = AtomicU64::new(0);
    let proxy = Proxy::start(
        reg.addr(),
        Box::new(move |req| {
            let large_put =
                req.method == "PUT" && req.content_length().is_some_and(|n| n >= LAYER as u64);
            if large_put && broken.fetch_add(1, Ordering::SeqCst) == 0 {
                Action::Reset
            } else {
                Action::Forward
            }
        }),
    );
    let tmp = tempdir();
    let spec = LayoutSpec {
        platforms: vec!["linux/amd64"],
        layer_size: LAYER,
        seed: 44,
        ..Default::default()
    };
    let layout = make_layout(&tmp.path().join("layout"), &spec);
    let report = push_json(&source(&layout, None), &proxy.repo("flaky"), &[]);
    assert_eq!(report["digest"], json!(layout.root_digest), "{report:#}");
    assert_layout_in_registry(&reg, "flaky", &layout);

    let records = proxy.records();
    assert_eq!(proxy.count("reset"), 1);
    let large_puts = records
        .iter()
        .filter(|r| r.method == "PUT" && r.content_length() >= Some(LAYER as u64))
        .count();
    assert_eq!(
        large_puts, 1,
        "the blob was sent whole again after the break"
    );
    assert_eq!(
        check_chunked_uploads(&records, &layout, 16 * 1024 * 1024),
        blobs_over(&layout, 1024 * 1024)
    );
}

#[test]
fn registry_asking_for_a_minimum_chunk_length_gets_chunks() {
    const MIN: u64 = 256 * 1024;
    let reg = Registry::start();
    // distribution does not announce a minimum; the proxy adds the header to its answers
    // to upload starts.
    let proxy = Proxy::start(
        reg.addr(),
        Box::new(|req| {
            if req.method == "POST" && req.path.contains("/blobs/uploads/") {
                Action::ForwardAddingHeaders(vec![("OCI-Chunk-Min-Length".into(), MIN.to_string())])
            } else {
                Action::Forward
            }
        }),
    );
    let tmp = tempdir();
    let spec = LayoutSpec {
        layer_size: 1024 * 1024 + 7,
        shared_layer: true,
        seed: 42,
        ..Default::default()
    };
    let layout = make_layout(&tmp.path().join("layout"), &spec);
    let report = push_json(&source(&layout, None), &proxy.repo("min"), &[]);
    assert_eq!(report["digest"], json!(layout.root_digest), "{report:#}");
    assert_layout_in_registry(&reg, "min", &layout);

    let records = proxy.records();
    assert_eq!(proxy.count("413"), 0);
    // Blobs above the minimum went up in chunks from the start (never in one PUT); the
    // small configs in one PUT.
    for r in records.iter().filter(|r| r.method == "PUT") {
        if let Some(digest) = closing_digest(&r.path) {
            let size = layout.read_blob(&digest).len() as u64;
            let expected = if size > MIN { 0 } else { size };
            assert_eq!(r.content_length(), Some(expected), "PUT of {digest}");
        }
    }
    assert_eq!(
        check_chunked_uploads(&records, &layout, u64::MAX),
        blobs_over(&layout, MIN)
    );
}

#[test]
fn body_limit_below_64_kib_fails_with_one_clear_line() {
    let reg = Registry::start();
    let proxy = Proxy::start(reg.addr(), proxy::refuse_bodies_over(16 * 1024));
    let tmp = tempdir();
    let layout = make_layout(&tmp.path().join("layout"), &multi_arch_spec(43));

    let out = run_fail(&mut push_cmd(&[
        &source(&layout, None),
        &proxy.repo("tiny"),
        "--tag",
        "v1",
    ]));
    let line = single_error_line(&out);
    assert_mentions(&line, &[proxy.addr(), "413", "64 KiB"]);
    assert_eq!(reg.tags("tiny"), Vec::<String>::new());
    // Pieces were not made smaller than 64 KiB.
    let records = proxy.records();
    assert!(
        records.iter().any(|r| r.method == "PATCH"),
        "no chunk was tried: {records:#?}"
    );
    for r in records.iter().filter(|r| r.method == "PATCH") {
        assert!(
            r.content_length().unwrap() >= 64 * 1024,
            "PATCH of {:?} bytes",
            r.content_length()
        );
    }
}

// ---------------------------------------------------------------------------------------
// Bad input: one clear error line, nothing tagged
// ---------------------------------------------------------------------------------------

#[test]
fn missing_blob_in_layout_is_named() {
    let reg = Registry::start();
    let tmp = tempdir();
    let layout = make_layout(&tmp.path().join("layout"), &multi_arch_spec(22));
    let arm = layout.platform_digest("linux/arm64").to_string();
    let manifest: Value = serde_json::from_slice(&layout.read_blob(&arm)).unwrap();
    let layer = manifest["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    remove_blob(&layout.dir, &layer);

    let mark = reg.request_count();
    let out = run_fail(&mut push_cmd(&[
        &source(&layout, None),
        &reg.repo("app"),
        "--tag",
        "v1",
    ]));
    let line = single_error_line(&out);
    assert_mentions(
        &line,
        &[&layer, "missing", &layout.dir.display().to_string()],
    );
    assert_eq!(reg.tags("app"), Vec::<String>::new());
    // Checked before anything is written anywhere.
    let writes: Vec<_> = reg
        .requests_since(mark)
        .into_iter()
        .filter(|r| r.method != "GET" && r.method != "HEAD")
        .collect();
    assert!(writes.is_empty(), "wrote before failing: {writes:#?}");
}

#[test]
fn corrupt_blob_in_layout_is_refused() {
    let reg = Registry::start();
    let tmp = tempdir();
    let layout = make_layout(&tmp.path().join("layout"), &multi_arch_spec(23));
    let amd = layout.platform_digest("linux/amd64").to_string();
    let manifest: Value = serde_json::from_slice(&layout.read_blob(&amd)).unwrap();
    let layer = manifest["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    corrupt_blob(&layout.dir, &layer);

    let out = run_fail(&mut push_cmd(&[
        &source(&layout, None),
        &reg.repo("app"),
        "--tag",
        "v1",
    ]));
    let line = single_error_line(&out);
    // The fault is the layout's: the message says which blob of which layout is bad.
    assert_mentions(
        &line,
        &[&layer, "does not match", &layout.dir.display().to_string()],
    );
    assert_eq!(reg.tags("app"), Vec::<String>::new());
    // Neither the corrupt blob nor anything pointing at it reached the registry.
    assert!(!reg.blob_exists("app", &layer));
    assert_eq!(reg.manifest_digest("app", &amd), None);
    assert_eq!(reg.manifest_digest("app", &layout.root_digest), None);
}

/// The same corruption with a layout directory as destination: nothing of the image lands
/// there, and the error names the bad blob.
#[test]
fn corrupt_blob_in_layout_is_refused_for_an_oci_destination() {
    let tmp = tempdir();
    let layout = make_layout(&tmp.path().join("layout"), &multi_arch_spec(28));
    let amd = layout.platform_digest("linux/amd64").to_string();
    let manifest: Value = serde_json::from_slice(&layout.read_blob(&amd)).unwrap();
    let layer = manifest["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    corrupt_blob(&layout.dir, &layer);
    let out_dir = tmp.path().join("out");

    let out = run_fail(&mut push_cmd(&[
        &source(&layout, None),
        &format!("oci:{}", out_dir.display()),
        "--tag",
        "v1",
    ]));
    let line = single_error_line(&out);
    assert_mentions(
        &line,
        &[&layer, "does not match", &layout.dir.display().to_string()],
    );
    assert!(!blob_path(&out_dir, &layer).exists(), "corrupt blob copied");
    assert!(
        !blob_path(&out_dir, &layout.root_digest).exists(),
        "root written"
    );
    if let Ok(index) = fs::read(out_dir.join("index.json")) {
        let index: Value = serde_json::from_slice(&index).unwrap();
        assert_eq!(index["manifests"], json!([]), "tag written: {index:#}");
    }
}

#[test]
fn unknown_ref_is_named() {
    let reg = Registry::start();
    let tmp = tempdir();
    let layout = make_layout(&tmp.path().join("layout"), &multi_arch_spec(24));

    let out = run_fail(&mut push_cmd(&[
        &source(&layout, Some("nope")),
        &reg.repo("app"),
        "--tag",
        "v1",
    ]));
    let line = single_error_line(&out);
    assert_mentions(&line, &["nope", &layout.dir.display().to_string()]);
    assert!(line.contains("not found"), "{line}");
    assert_eq!(reg.tags("app"), Vec::<String>::new());
    assert_eq!(reg.request_count(), 0, "{:#?}", reg.requests());
}

#[test]
fn malformed_index_json_is_named() {
    let reg = Registry::start();
    let tmp = tempdir();
    let layout = make_layout(&tmp.path().join("layout"), &multi_arch_spec(25));
    fs::write(layout.dir.join("index.json"), b"{\"manifests\": [garbage").unwrap();

    let out = run_fail(&mut push_cmd(&[
        &source(&layout, None),
        &reg.repo("app"),
        "--tag",
        "v1",
    ]));
    let line = single_error_line(&out);
    assert_mentions(&line, &["index.json", &layout.dir.display().to_string()]);
    assert_eq!(reg.tags("app"), Vec::<String>::new());
}

#[test]
fn unreachable_registry_is_named() {
    let tmp = tempdir();
    let layout = make_layout(&tmp.path().join("layout"), &multi_arch_spec(26));
    let addr = format!("127.0.0.1:{}", free_port());

    let out = run_fail(&mut push_cmd(&[
        &source(&layout, None),
        &format!("{addr}/app"),
        "--tag",
        "v1",
        "--retries",
        "1",
    ]));
    let line = single_error_line(&out);
    assert_mentions(&line, &["cannot reach", &addr]);
}

/// A layout whose only image has one non-distributable ("foreign") layer with a URL: wharf
/// does not upload such a layer (clients fetch it from the URL), but distribution 2.8
/// refuses manifests carrying URLs unless `validation.manifests.urls.allow` admits them.
fn foreign_layer_layout(dir: &Path) -> (String, String) {
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> (String, usize) {
        fs::write(blobs.join(sha256_hex(bytes)), bytes).unwrap();
        (digest_of(bytes), bytes.len())
    };
    let layer_bytes = b"a foreign layer that lives elsewhere";
    let layer_digest = digest_of(layer_bytes); // not in the layout, on purpose
    let config = serde_json::to_vec_pretty(&json!({
        "architecture": "amd64",
        "os": "windows",
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
    }))
    .unwrap();
    let (config_digest, config_size) = put(&config);
    let manifest = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "config": {
            "mediaType": media_type::OCI_CONFIG,
            "digest": config_digest,
            "size": config_size,
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
            "digest": layer_digest,
            "size": layer_bytes.len(),
            "urls": ["https://foreign.example.com/layer.tar.gz"],
        }],
    }))
    .unwrap();
    let (manifest_digest, manifest_size) = put(&manifest);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_INDEX,
        "manifests": [{
            "mediaType": media_type::OCI_MANIFEST,
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": { REF_NAME_ANNOTATION: "v1" },
        }],
    });
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec_pretty(&index).unwrap(),
    )
    .unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    (manifest_digest, layer_digest)
}

#[test]
fn registry_refusing_a_manifest_is_named() {
    let reg = Registry::start();
    let tmp = tempdir();
    let dir = tmp.path().join("foreign");
    let (manifest_digest, layer_digest) = foreign_layer_layout(&dir);

    let out = run_fail(&mut push_cmd(&[
        &format!("{}:v1", dir.display()),
        &reg.repo("foreign"),
        "--tag",
        "v1",
        // distribution answers this refusal with a 500, which wharf retries with backoff.
        "--retries",
        "1",
    ]));
    let line = single_error_line(&out);
    assert_mentions(&line, &[reg.addr(), &manifest_digest]);
    assert!(line.contains("refused"), "{line}");
    assert_eq!(reg.tags("foreign"), Vec::<String>::new());
    assert_eq!(reg.manifest_digest("foreign", &manifest_digest), None);
    // The foreign layer itself was never uploaded.
    assert!(!reg.blob_exists("foreign", &layer_digest));
}

// ---------------------------------------------------------------------------------------
// Command line and CI integration
// ---------------------------------------------------------------------------------------

#[test]
fn help_and_version() {
    let out = run_ok(wharf().arg("--help"));
    let help = stdout_of(&out);
    assert!(help.contains("Usage"), "{help}");
    assert!(help.contains("push"), "{help}");

    let out = run_ok(wharf().args(["push", "--help"]));
    let help = stdout_of(&out);
    assert!(help.contains("Usage: wharf push"), "{help}");
    assert!(help.contains("--tag"), "{help}");
    assert!(help.contains("--allow-insecure-registry"), "{help}");

    // `wharf 0.1.0 (COMMIT DATE)` and more lines (tests/distribution.rs checks them).
    let out = run_ok(wharf().arg("--version"));
    let version = stdout_of(&out);
    assert!(
        version.starts_with(&format!("wharf {} (", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
}

#[test]
fn github_output_gets_the_digests() {
    let reg = Registry::start();
    let tmp = tempdir();
    let layout = make_layout(&tmp.path().join("layout"), &multi_arch_spec(27));
    let output_file = tmp.path().join("github_output");
    let summary_file = tmp.path().join("github_summary");

    run_ok(
        push_cmd(&[&source(&layout, None), &reg.repo("ci"), "-q"])
            .env("GITHUB_OUTPUT", &output_file)
            .env("GITHUB_STEP_SUMMARY", &summary_file),
    );
    let outputs = fs::read_to_string(&output_file).expect("GITHUB_OUTPUT written");
    let lines: Vec<&str> = outputs.lines().collect();
    assert!(
        lines.contains(&format!("digest={}", layout.root_digest).as_str()),
        "{outputs}"
    );
    assert!(
        lines.contains(&format!("reference={}@{}", reg.repo("ci"), layout.root_digest).as_str()),
        "{outputs}"
    );
    for (name, platform) in [
        ("linux-amd64", "linux/amd64"),
        ("linux-arm64", "linux/arm64"),
        ("linux-arm-v7", "linux/arm/v7"),
    ] {
        let line = format!("digest-{name}={}", layout.platform_digest(platform));
        assert!(lines.contains(&line.as_str()), "no {line} in\n{outputs}");
    }
    let summary = fs::read_to_string(&summary_file).expect("GITHUB_STEP_SUMMARY written");
    assert!(summary.contains(&layout.root_digest), "{summary}");
}
