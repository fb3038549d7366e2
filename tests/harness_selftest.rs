//! Tests of the shared test harness itself (`tests/common`): the layout generator writes
//! consistent OCI layouts, the registry starts, counts requests and enforces basic auth.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::Value;

/// What walking a layout from `index.json` found.
#[derive(Default)]
struct Walk {
    manifests: BTreeSet<String>,
    blobs: BTreeSet<String>,
    /// `os/arch[/variant]` → image manifest digest.
    platforms: BTreeSet<(String, String)>,
    /// Layer digests of every image manifest, in manifest order.
    layers_per_manifest: Vec<Vec<String>>,
}

/// Reads blob `digest` of `desc` and checks that it exists with the declared digest and size.
fn read_checked(dir: &Path, desc: &Value) -> Vec<u8> {
    let digest = desc["digest"].as_str().expect("descriptor digest");
    let size = desc["size"].as_u64().expect("descriptor size");
    let bytes = fs::read(blob_path(dir, digest)).unwrap_or_else(|e| panic!("blob {digest}: {e}"));
    assert_eq!(digest_of(&bytes), digest, "content of blob {digest}");
    assert_eq!(bytes.len() as u64, size, "size of blob {digest}");
    bytes
}

/// Walks the manifest (or index) behind `desc`, checking every referenced blob.
fn walk(dir: &Path, desc: &Value, platform: Option<String>, out: &mut Walk) {
    let kind = desc["mediaType"].as_str().expect("descriptor mediaType");
    let bytes = read_checked(dir, desc);
    let doc: Value = serde_json::from_slice(&bytes).expect("manifest JSON");
    assert_eq!(doc["schemaVersion"], 2);
    assert_eq!(doc["mediaType"], kind, "mediaType inside the manifest");
    out.manifests
        .insert(desc["digest"].as_str().unwrap().to_string());

    match kind {
        media_type::OCI_INDEX | media_type::DOCKER_LIST => {
            for child in doc["manifests"].as_array().expect("index manifests") {
                let platform = child.get("platform").map(|p| {
                    let field = |k: &str| p.get(k).map(|v| v.as_str().expect("platform field"));
                    [field("os"), field("architecture"), field("variant")]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join("/")
                });
                walk(dir, child, platform, out);
            }
        }
        media_type::OCI_MANIFEST | media_type::DOCKER_MANIFEST => {
            let docker = kind == media_type::DOCKER_MANIFEST;
            let config_desc = &doc["config"];
            let expected_config = if docker {
                media_type::DOCKER_CONFIG
            } else {
                media_type::OCI_CONFIG
            };
            assert_eq!(config_desc["mediaType"], expected_config);
            let config: Value =
                serde_json::from_slice(&read_checked(dir, config_desc)).expect("config JSON");
            out.blobs
                .insert(config_desc["digest"].as_str().unwrap().to_string());

            let mut layers = Vec::new();
            for layer in doc["layers"].as_array().expect("layers") {
                let expected_layer = if docker {
                    media_type::DOCKER_LAYER
                } else {
                    media_type::OCI_LAYER
                };
                assert_eq!(layer["mediaType"], expected_layer);
                read_checked(dir, layer);
                let digest = layer["digest"].as_str().unwrap().to_string();
                out.blobs.insert(digest.clone());
                layers.push(digest);
            }
            let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
                .as_array()
                .expect("diff_ids")
                .iter()
                .map(|d| d.as_str().unwrap().to_string())
                .collect();
            assert_eq!(diff_ids, layers, "config diff_ids = layer digests");
            assert_eq!(config["rootfs"]["type"], "layers");
            assert!(config["config"].is_object());

            if let Some(platform) = platform {
                let mut parts = platform.split('/');
                assert_eq!(config["os"], parts.next().unwrap());
                assert_eq!(config["architecture"], parts.next().unwrap());
                assert_eq!(config["variant"].as_str(), parts.next());
                out.platforms
                    .insert((platform, desc["digest"].as_str().unwrap().to_string()));
            }
            out.layers_per_manifest.push(layers);
        }
        other => panic!("unexpected media type {other}"),
    }
}

/// Checks the whole layout against what `make_layout` reported and returns the walk.
fn check_layout(built: &BuiltLayout, spec: &LayoutSpec) -> Walk {
    let dir = &built.dir;
    let oci_layout: Value =
        serde_json::from_slice(&fs::read(dir.join("oci-layout")).unwrap()).unwrap();
    assert_eq!(oci_layout["imageLayoutVersion"], "1.0.0");

    let index: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["mediaType"], media_type::OCI_INDEX);
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "index.json has one entry");
    let root = &entries[0];
    assert_eq!(root["digest"], built.root_digest.as_str());
    assert_eq!(root["mediaType"], built.root_media_type.as_str());
    assert_eq!(root["size"], built.root_size);
    assert_eq!(
        root["annotations"][REF_NAME_ANNOTATION].as_str(),
        spec.ref_name.as_deref()
    );

    let mut found = Walk::default();
    let root_platform = spec.single_manifest.then(|| spec.platforms[0].to_string());
    walk(dir, root, root_platform, &mut found);

    // What make_layout reported is exactly what is reachable ...
    let reported: BTreeSet<String> = built.manifest_digests.iter().cloned().collect();
    assert_eq!(
        reported.len(),
        built.manifest_digests.len(),
        "manifests unique"
    );
    assert_eq!(found.manifests, reported);
    assert_eq!(built.manifest_digests.last(), Some(&built.root_digest));
    let reported: BTreeSet<String> = built.blob_digests.iter().cloned().collect();
    assert_eq!(reported.len(), built.blob_digests.len(), "blobs unique");
    assert_eq!(found.blobs, reported);
    let reported: BTreeSet<(String, String)> = built.platforms.iter().cloned().collect();
    assert_eq!(found.platforms, reported);

    // ... and nothing else (no leftover temp files) is in the blob store.
    let on_disk: BTreeSet<String> = fs::read_dir(dir.join("blobs/sha256"))
        .unwrap()
        .map(|e| format!("sha256:{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    let reachable: BTreeSet<String> = found.manifests.union(&found.blobs).cloned().collect();
    assert_eq!(on_disk, reachable);

    let expected_layers = spec.layers_per_platform + usize::from(spec.shared_layer);
    for layers in &found.layers_per_manifest {
        assert_eq!(layers.len(), expected_layers);
        for layer in layers {
            let size = fs::metadata(blob_path(dir, layer)).unwrap().len();
            assert_eq!(size, spec.layer_size as u64);
        }
    }
    found
}

fn layout_specs() -> Vec<(&'static str, LayoutSpec)> {
    vec![
        ("default", LayoutSpec::default()),
        (
            "docker",
            LayoutSpec {
                docker_media_types: true,
                ..Default::default()
            },
        ),
        (
            "nested",
            LayoutSpec {
                platforms: vec!["linux/amd64", "linux/arm64", "linux/arm/v7"],
                nested_index: true,
                ..Default::default()
            },
        ),
        (
            "nested docker",
            LayoutSpec {
                nested_index: true,
                docker_media_types: true,
                ..Default::default()
            },
        ),
        (
            "single manifest",
            LayoutSpec {
                single_manifest: true,
                ref_name: None,
                ..Default::default()
            },
        ),
        (
            "single docker manifest",
            LayoutSpec {
                platforms: vec!["linux/arm/v7"],
                single_manifest: true,
                docker_media_types: true,
                ..Default::default()
            },
        ),
        (
            "shared layers",
            LayoutSpec {
                platforms: vec!["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/s390x"],
                layers_per_platform: 3,
                layer_size: 1000,
                shared_layer: true,
                ref_name: Some("multi".into()),
                seed: 7,
                ..Default::default()
            },
        ),
    ]
}

#[test]
fn every_layout_kind_is_consistent() {
    for (name, spec) in layout_specs() {
        let tmp = tempdir();
        let built = make_layout(tmp.path(), &spec);
        // Printed (and shown by the test runner) if the check below panics.
        println!("checking layout kind {name:?}");
        check_layout(&built, &spec);

        let expected_root = match (spec.single_manifest, spec.docker_media_types) {
            (true, false) => media_type::OCI_MANIFEST,
            (true, true) => media_type::DOCKER_MANIFEST,
            (false, false) => media_type::OCI_INDEX,
            (false, true) => media_type::DOCKER_LIST,
        };
        assert_eq!(built.root_media_type, expected_root, "{name}");
        let platforms = if spec.single_manifest {
            1
        } else {
            spec.platforms.len()
        };
        assert_eq!(built.platforms.len(), platforms, "{name}");
        let indexes = usize::from(!spec.single_manifest) + usize::from(spec.nested_index);
        assert_eq!(built.manifest_digests.len(), platforms + indexes, "{name}");
    }
}

#[test]
fn nested_index_holds_the_last_platform() {
    let tmp = tempdir();
    let spec = LayoutSpec {
        platforms: vec!["linux/amd64", "linux/arm64", "linux/arm/v7"],
        nested_index: true,
        ..Default::default()
    };
    let built = make_layout(tmp.path(), &spec);
    let outer: Value = serde_json::from_slice(&built.read_blob(&built.root_digest)).unwrap();
    let entries = outer["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[2]["mediaType"], media_type::OCI_INDEX);
    assert!(entries[2].get("platform").is_none());
    let inner: Value =
        serde_json::from_slice(&built.read_blob(entries[2]["digest"].as_str().unwrap())).unwrap();
    assert_eq!(
        inner["manifests"][0]["digest"],
        built.platform_digest("linux/arm/v7")
    );
    assert_eq!(inner["manifests"][0]["platform"]["variant"], "v7");
    // Children precede their parents: arm/v7 manifest, then inner index, then root.
    let pos = |d: &str| built.manifest_digests.iter().position(|m| m == d).unwrap();
    assert!(
        pos(built.platform_digest("linux/arm/v7")) < pos(entries[2]["digest"].as_str().unwrap())
    );
}

#[test]
fn shared_layer_is_in_every_platform() {
    let tmp = tempdir();
    let spec = LayoutSpec {
        platforms: vec!["linux/amd64", "linux/arm64", "linux/arm/v7"],
        shared_layer: true,
        layers_per_platform: 2,
        ..Default::default()
    };
    let built = make_layout(tmp.path(), &spec);
    let walk = check_layout(&built, &spec);
    let first = &walk.layers_per_manifest[0][0];
    assert!(walk.layers_per_manifest.iter().all(|l| &l[0] == first));
    // 1 shared + 3 × 2 own layers + 3 configs
    assert_eq!(built.blob_digests.len(), 1 + 6 + 3);
}

#[test]
fn content_is_deterministic_from_the_seed() {
    let (a, b, c) = (tempdir(), tempdir(), tempdir());
    let spec = LayoutSpec::default();
    let first = make_layout(a.path(), &spec);
    let again = make_layout(b.path(), &spec);
    let other = make_layout(
        c.path(),
        &LayoutSpec {
            seed: 2,
            ..Default::default()
        },
    );
    assert_eq!(first.root_digest, again.root_digest);
    assert_eq!(first.blob_digests, again.blob_digests);
    assert_ne!(first.root_digest, other.root_digest);
    assert!(first
        .blob_digests
        .iter()
        .all(|d| !other.blob_digests.contains(d)));
}

#[test]
fn layers_stream_in_chunks_of_any_size() {
    let tmp = tempdir();
    // Over two 1 MiB chunks and not a multiple of 8.
    let spec = LayoutSpec {
        platforms: vec!["linux/amd64"],
        single_manifest: true,
        layer_size: (2 << 20) + 3,
        ..Default::default()
    };
    let built = make_layout(tmp.path(), &spec);
    check_layout(&built, &spec);
}

#[test]
fn corrupt_and_remove_blob() {
    let tmp = tempdir();
    let built = make_layout(tmp.path(), &LayoutSpec::default());
    let layer = built.blob_digests[1].clone();
    let before = built.read_blob(&layer);
    corrupt_blob(&built.dir, &layer);
    let after = built.read_blob(&layer);
    assert_eq!(before.len(), after.len());
    assert_ne!(digest_of(&after), layer);

    remove_blob(&built.dir, &layer);
    assert!(!built.blob_path(&layer).exists());
}

#[test]
fn digest_helpers() {
    assert_eq!(
        digest_of(b""),
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(sha256_hex(b"abc").len(), 64);
}

#[test]
fn access_log_lines_parse() {
    let line = r#"127.0.0.1 - - [22/Nov/2026:02:26:27 +0000] "HEAD /v2/a/b/blobs/sha256:ab?x=1 HTTP/1.1" 404 0 "" "skopeo/1.9.3 \"q\"""#;
    let entry = parse_access_log_line(line).unwrap();
    assert_eq!(entry.method, "HEAD");
    assert_eq!(entry.uri, "/v2/a/b/blobs/sha256:ab?x=1");
    assert_eq!(entry.status, 404);
    assert_eq!(entry.user_agent, r#"skopeo/1.9.3 "q""#);
    let app = r#"time="2026-11-22T02:26:25Z" level=info msg="listening on 127.0.0.1:5999""#;
    assert!(parse_access_log_line(app).is_none());
    assert!(parse_access_log_line("").is_none());
}

#[test]
fn registry_starts_answers_and_stops() {
    let registry = Registry::start();
    assert!(registry.addr().starts_with("127.0.0.1:"));
    assert_eq!(registry.repo("a/b"), format!("{}/a/b", registry.addr()));
    assert!(registry.storage_dir().is_dir());

    let resp = registry.request("GET", "/v2/", &[], b"");
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );
    assert!(registry.tags("nothing/here").is_empty());
    assert!(registry.get_manifest("nothing/here", "v1").is_none());
    assert!(registry.manifest_digest("nothing/here", "v1").is_none());
    let empty = digest_of(b"");
    assert!(!registry.blob_exists("nothing/here", &empty));
    assert!(registry.log().contains("listening on"));

    let addr = registry.addr().to_string();
    drop(registry);
    assert!(
        http_request(&addr, "GET", "/v2/", &[], b"").is_err(),
        "registry still answers after drop"
    );
}

#[test]
fn request_counting_ignores_the_harness() {
    let registry = Registry::start();
    // Readiness polls and the read helpers are the harness's own requests.
    assert!(registry.tags("x").is_empty());
    assert_eq!(registry.request_count(), 0);

    let mark = registry.request_count();
    let url = format!("http://{}/v2/counted/tags/list", registry.addr());
    for _ in 0..3 {
        run_ok(Command::new("curl").args(["-s", "-o", "/dev/null", &url]));
    }
    let requests = registry.requests_since(mark);
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert!(requests.iter().all(|r| r.method == "GET"
        && r.uri == "/v2/counted/tags/list"
        && r.status == 404
        && r.user_agent.starts_with("curl/")));
    assert_eq!(registry.request_count_since(mark + 1), 2);
    assert_eq!(registry.request_count(), 3);
}

#[test]
fn auth_registry_requires_credentials() {
    let registry = Registry::start_with_basic_auth("alice", "s3cret pass");
    assert_eq!(registry.credentials(), Some(("alice", "s3cret pass")));

    let anonymous = registry.request_anonymous("GET", "/v2/");
    assert_eq!(anonymous.status, 401);
    assert_eq!(
        anonymous.header("www-authenticate"),
        Some(r#"Basic realm="wharf-test""#)
    );

    let authed = registry.request("GET", "/v2/", &[], b"");
    assert_eq!(authed.status, 200);

    let wrong = http_request(
        registry.addr(),
        "GET",
        "/v2/",
        &[("Authorization", &basic_auth("alice", "wrong"))],
        b"",
    )
    .unwrap();
    assert_eq!(wrong.status, 401);

    // The read helpers authenticate by themselves.
    assert!(registry.tags("app").is_empty());

    let tmp = tempdir();
    let config_dir = registry.docker_config(&tmp.path().join("docker"));
    let config: Value =
        serde_json::from_slice(&fs::read(config_dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config["auths"][registry.addr()]["auth"],
        "YWxpY2U6czNjcmV0IHBhc3M="
    );
}

/// Checks that `built` is in `repo` of `registry` byte-for-byte, its root tagged `tag`.
fn assert_in_registry(registry: &Registry, repo: &str, tag: &str, built: &BuiltLayout) {
    let (bytes, content_type) = registry.get_manifest(repo, tag).expect("root pushed");
    assert_eq!(bytes, built.read_blob(&built.root_digest), "{repo}");
    assert_eq!(content_type, built.root_media_type, "{repo}");
    assert_eq!(
        registry.manifest_digest(repo, tag).as_deref(),
        Some(built.root_digest.as_str())
    );
    for digest in &built.manifest_digests {
        let (bytes, _) = registry
            .get_manifest(repo, digest)
            .expect("manifest pushed");
        assert_eq!(digest_of(&bytes), *digest, "{repo}");
    }
    for digest in &built.blob_digests {
        assert!(registry.blob_exists(repo, digest), "{repo} {digest}");
    }
    let config = &built.blob_digests[0];
    assert_eq!(
        registry.get_blob(repo, config).unwrap(),
        built.read_blob(config)
    );
}

/// The harness's own pusher: the registry accepts every layout kind (it checks that each
/// referenced blob and child manifest exists) and the read helpers see it byte-for-byte.
#[test]
fn every_layout_kind_pushes_to_the_registry() {
    let registry = Registry::start();
    for (i, (_, spec)) in layout_specs().into_iter().enumerate() {
        let tmp = tempdir();
        let built = make_layout(tmp.path(), &spec);
        let repo = format!("kind{i}");
        let mark = registry.request_count();
        registry.push_layout(&built, &repo, "v1");
        // Harness requests are not counted.
        assert_eq!(registry.request_count_since(mark), 0);
        assert_in_registry(&registry, &repo, "v1", &built);
        assert_eq!(registry.tags(&repo), vec!["v1".to_string()]);
    }

    // Deleting a manifest by digest removes the tag pointing at it.
    let digest = registry.manifest_digest("kind0", "v1").unwrap();
    assert!(registry.delete_manifest("kind0", &digest));
    assert!(registry.get_manifest("kind0", "v1").is_none());
    assert!(registry.tags("kind0").is_empty());
    assert!(!registry.delete_manifest("kind0", &digest));
}

/// skopeo, an independent reader of OCI layouts, copies the generated layouts; the access
/// log shows its requests. (skopeo 1.9 cannot copy nested indexes nor `index.json` entries
/// with Docker media types, so only OCI layouts without nesting are tried.)
#[test]
fn skopeo_copies_generated_layouts() {
    let skopeo = require_tool("skopeo");
    let registry = Registry::start();
    let kinds = [
        ("oci", LayoutSpec::default()),
        (
            "shared",
            LayoutSpec {
                platforms: vec!["linux/amd64", "linux/arm64", "linux/arm/v7"],
                shared_layer: true,
                seed: 2,
                ..Default::default()
            },
        ),
        (
            "single",
            LayoutSpec {
                single_manifest: true,
                seed: 3,
                ..Default::default()
            },
        ),
    ];
    for (name, spec) in kinds {
        let tmp = tempdir();
        let built = make_layout(tmp.path(), &spec);
        let mark = registry.request_count();
        run_ok(
            Command::new(&skopeo)
                .args([
                    "copy",
                    "--all",
                    "--preserve-digests",
                    "--dest-tls-verify=false",
                ])
                .arg(format!("oci:{}:v1", built.dir.display()))
                .arg(format!("docker://{}:v1", registry.repo(name))),
        );
        let requests = registry.requests_since(mark);
        assert!(requests.iter().all(|r| r.user_agent.starts_with("skopeo/")));
        let manifest_puts = requests
            .iter()
            .filter(|r| r.method == "PUT" && r.uri.contains("/manifests/") && r.status == 201)
            .count();
        assert_eq!(
            manifest_puts,
            built.manifest_digests.len(),
            "{name}: {requests:?}"
        );
        assert_in_registry(&registry, name, "v1", &built);
    }
}

#[test]
fn bounded_run_kills_at_the_limit_and_measures_memory() {
    use common::hostile::run_bounded;
    use std::time::Duration;

    let slow = run_bounded(Command::new("sleep").arg("30"), Duration::from_millis(300));
    assert!(slow.killed, "sleep 30 was not killed");
    assert!(slow.elapsed < Duration::from_secs(10));
    assert!(!slow.output.status.success());

    // python allocating ~300 MiB and touching it: the peak must show it.
    let big = run_bounded(
        Command::new("python3").args(["-c", "b = bytearray(300 << 20); print(len(b))"]),
        Duration::from_secs(60),
    );
    assert!(big.output.status.success(), "{}", big.stderr());
    assert!(!big.killed);
    assert!(
        big.peak_rss_kib > 300 * 1024,
        "peak {} KiB for a 300 MiB buffer",
        big.peak_rss_kib
    );
    assert_eq!(big.stdout().trim(), (300u64 << 20).to_string());
}
