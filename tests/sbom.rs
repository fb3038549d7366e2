//! End-to-end SBOM generation through the library (no CLI): an OCI layout built from real
//! Debian packages, an Alpine-style apk database, a cargo-auditable ELF binary and OCI
//! whiteouts; the SBOM is checked for exactly the expected packages and purls and validated
//! against the official CycloneDX 1.5 JSON schema by an independent validator (Python
//! `jsonschema`, schemas from the `cyclonedx-python-lib` package).

mod common;

use common::{digest_of, require_tool, run_ok, stderr_of, stdout_of, validate_cyclonedx};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use wharf::oci::{Descriptor, Digest};
use wharf::sbom::{generate, SbomRequest};
use wharf::store::layout::LayoutStore;

/// Small, dependency-free Debian packages.
const DEBS: &[&str] = &["hostname", "netbase", "debianutils"];

const OS_RELEASE: &str = r#"PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
"#;

const APK_INSTALLED: &str = "\
C:Q1zq8dQvFd2T0bdoZpY2YbCHH0eZA=
P:musl
V:1.2.4_git20230717-r4
A:x86_64
S:383152
I:622592
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Timo Teräs <timo.teras@iki.fi>
F:lib
R:ld-musl-x86_64.so.1

C:Q1u7sZ4hPZ2fqs5vQ4+7ef0rPqUNs=
P:zlib
V:1.3.1-r0
A:x86_64
S:53347
I:110592
T:A compression/decompression Library
U:https://zlib.net/
L:Zlib
o:zlib
F:lib
R:libz.so.1.3.1
";

/// cargo-auditable data of the binary that stays.
const KEPT_AUDIT: &str = r#"{"packages":[
  {"name":"sbom-demo","version":"0.3.0","source":"local","dependencies":[1,2],"root":true},
  {"name":"serde","version":"1.0.197","source":"crates.io","dependencies":[3]},
  {"name":"anyhow","version":"1.0.81","source":"crates.io"},
  {"name":"serde_derive","version":"1.0.197","source":"crates.io","kind":"build"}]}"#;

/// cargo-auditable data of the binary a whiteout in layer 2 deletes.
const DELETED_AUDIT: &str = r#"{"packages":[
  {"name":"gone-app","version":"9.9.9","source":"local","dependencies":[1],"root":true},
  {"name":"regex","version":"1.10.4","source":"crates.io"}]}"#;

/// Debian control fields of one `.deb`.
struct DebInfo {
    package: String,
    version: String,
    arch: String,
}

/// Downloads the packages into `dir` with `apt-get download`, running `apt-get update`
/// once first if that fails (fresh machines have no package lists).
fn download_debs(dir: &Path) -> Vec<PathBuf> {
    // One apt at a time: parallel tests would otherwise race for apt's locks.
    static APT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _apt = APT.lock().unwrap_or_else(|e| e.into_inner());
    let apt = require_tool("apt-get");
    let download = || {
        Command::new(&apt)
            .arg("download")
            .args(DEBS)
            .current_dir(dir)
            .output()
            .expect("spawn apt-get")
    };
    let mut out = download();
    if !out.status.success() {
        run_ok(Command::new(&apt).args(["update", "-q"]));
        out = download();
    }
    assert!(
        out.status.success(),
        "apt-get download {DEBS:?} failed:\n{}\n{}",
        stdout_of(&out),
        stderr_of(&out)
    );
    let mut debs: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    debs.sort();
    assert_eq!(debs.len(), DEBS.len(), "downloaded: {debs:?}");
    debs
}

fn deb_field(deb: &Path, field: &str) -> String {
    stdout_of(&run_ok(
        Command::new(require_tool("dpkg-deb"))
            .arg("-f")
            .arg(deb)
            .arg(field),
    ))
    .trim()
    .to_string()
}

/// The `var/lib/dpkg/status` stanza of an installed `.deb`: its control file with
/// `Status: install ok installed` after `Package:`, as dpkg writes it.
fn status_stanza(deb: &Path) -> String {
    let control = stdout_of(&run_ok(
        Command::new(require_tool("dpkg-deb")).arg("-f").arg(deb),
    ));
    let mut out = String::new();
    for line in control.lines() {
        out.push_str(line);
        out.push('\n');
        if line.starts_with("Package:") {
            out.push_str("Status: install ok installed\n");
        }
    }
    out
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// Copies ELF `template` to `dest` with a `.dep-v0` section holding `json`, the way
/// `cargo auditable` embeds it.
fn auditable_binary(template: &Path, dest: &Path, json: &str, scratch: &Path) {
    let section = scratch.join(format!(
        "{}.dep-v0",
        dest.file_name().unwrap().to_string_lossy()
    ));
    fs::write(&section, zlib(json.as_bytes())).unwrap();
    fs::create_dir_all(dest.parent().unwrap()).unwrap();
    run_ok(
        Command::new(require_tool("objcopy"))
            .arg("--add-section")
            .arg(format!(".dep-v0={}", section.display()))
            .arg(template)
            .arg(dest),
    );
}

/// `tar` of a directory's contents, with the system's GNU tar (`./`-prefixed paths).
fn tar_dir(dir: &Path, out: &Path, gzip: bool) {
    let mut cmd = Command::new(require_tool("tar"));
    cmd.arg("--numeric-owner")
        .arg("--owner=0")
        .arg("--group=0")
        .arg(if gzip { "-czf" } else { "-cf" })
        .arg(out)
        .arg("-C")
        .arg(dir)
        .arg(".");
    run_ok(&mut cmd);
}

/// Writes a blob into the layout; returns its digest and size.
fn put_blob(layout: &Path, bytes: &[u8]) -> (String, u64) {
    let digest = digest_of(bytes);
    let path = common::blob_path(layout, &digest);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, bytes).unwrap();
    (digest, bytes.len() as u64)
}

/// Percent-encodes like a purl version (everything outside RFC 3986 unreserved).
fn purl_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

struct BuiltImage {
    _tmp: common::TempDir,
    layout: PathBuf,
    manifest: Descriptor,
    layer2_digest: String,
    debs: Vec<DebInfo>,
}

fn build_image() -> BuiltImage {
    let tmp = common::tempdir();
    let root = tmp.path();
    let debs_dir = root.join("debs");
    let scratch = root.join("scratch");
    let layer1 = root.join("layer1");
    let layer2 = root.join("layer2");
    let layout = root.join("layout");
    for d in [&debs_dir, &scratch, &layer1, &layer2, &layout] {
        fs::create_dir_all(d).unwrap();
    }

    // Layer 1: the packages' files, a dpkg database describing them, os-release.
    let deb_paths = download_debs(&debs_dir);
    let mut status = String::new();
    let mut debs = Vec::new();
    for deb in &deb_paths {
        run_ok(
            Command::new(require_tool("dpkg-deb"))
                .arg("-x")
                .arg(deb)
                .arg(&layer1),
        );
        status.push_str(&status_stanza(deb));
        status.push('\n');
        debs.push(DebInfo {
            package: deb_field(deb, "Package"),
            version: deb_field(deb, "Version"),
            arch: deb_field(deb, "Architecture"),
        });
    }
    // A removed package whose configuration files remain: not installed.
    status.push_str(
        "Package: removed-pkg\nStatus: deinstall ok config-files\nPriority: optional\n\
         Architecture: amd64\nVersion: 1.0-1\nConffiles:\n /etc/removed.conf 0123456789abcdef\n",
    );
    fs::create_dir_all(layer1.join("var/lib/dpkg")).unwrap();
    fs::write(layer1.join("var/lib/dpkg/status"), &status).unwrap();
    fs::create_dir_all(layer1.join("usr/lib")).unwrap();
    fs::create_dir_all(layer1.join("etc")).unwrap();
    fs::write(layer1.join("usr/lib/os-release"), OS_RELEASE).unwrap();
    // As in Debian itself: /etc/os-release is a relative symlink.
    std::os::unix::fs::symlink("../usr/lib/os-release", layer1.join("etc/os-release")).unwrap();
    // Two Rust binaries with cargo-auditable data, made from a real ELF of the packages.
    let template = layer1.join("bin/hostname");
    assert!(template.exists(), "hostname package has no bin/hostname");
    auditable_binary(
        &template,
        &layer1.join("usr/local/bin/sbom-demo"),
        KEPT_AUDIT,
        &scratch,
    );
    auditable_binary(
        &template,
        &layer1.join("usr/local/bin/gone-app"),
        DELETED_AUDIT,
        &scratch,
    );

    // Layer 2: an apk database, a whiteout deleting one binary of layer 1, and an opaque
    // directory hiding netbase's copyright file.
    fs::create_dir_all(layer2.join("lib/apk/db")).unwrap();
    fs::write(layer2.join("lib/apk/db/installed"), APK_INSTALLED).unwrap();
    fs::create_dir_all(layer2.join("usr/local/bin")).unwrap();
    fs::write(layer2.join("usr/local/bin/.wh.gone-app"), b"").unwrap();
    fs::create_dir_all(layer2.join("usr/share/doc/netbase")).unwrap();
    fs::write(layer2.join("usr/share/doc/netbase/.wh..wh..opq"), b"").unwrap();
    fs::write(layer2.join("usr/share/doc/netbase/NOTE"), b"replaced\n").unwrap();

    let l1 = scratch.join("layer1.tar.gz");
    let l2 = scratch.join("layer2.tar");
    tar_dir(&layer1, &l1, true);
    tar_dir(&layer2, &l2, false);
    let l1_bytes = fs::read(&l1).unwrap();
    let l2_bytes = fs::read(&l2).unwrap();
    let mut l1_tar = Vec::new();
    flate2::read::GzDecoder::new(&l1_bytes[..])
        .read_to_end(&mut l1_tar)
        .unwrap();

    let (l1_digest, l1_size) = put_blob(&layout, &l1_bytes);
    let (l2_digest, l2_size) = put_blob(&layout, &l2_bytes);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [digest_of(&l1_tar), digest_of(&l2_bytes)]},
    }))
    .unwrap();
    let (config_digest, config_size) = put_blob(&layout, &config);
    let manifest = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": l1_digest, "size": l1_size},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": l2_digest, "size": l2_size},
        ],
    }))
    .unwrap();
    let (manifest_digest, manifest_size) = put_blob(&layout, &manifest);
    let index = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": "v1"},
        }],
    }))
    .unwrap();
    fs::write(layout.join("index.json"), index).unwrap();
    fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();

    BuiltImage {
        manifest: Descriptor::new(
            "application/vnd.oci.image.manifest.v1+json",
            manifest_digest.parse().unwrap(),
            manifest_size,
        ),
        layout,
        layer2_digest: l2_digest,
        debs,
        _tmp: tmp,
    }
}

// ---------------------------------------------------------------------------------------
// Independent schema validation
// ---------------------------------------------------------------------------------------

fn validate_with_schema(doc: &[u8], dir: &Path) -> Result<(), String> {
    let path = dir.join("bom.json");
    fs::write(&path, doc).unwrap();
    validate_cyclonedx(&path)
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

fn component_by_name<'a>(components: &'a [Value], name: &str) -> &'a Value {
    components
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no component {name} in {components:#?}"))
}

fn license_strings(component: &Value) -> Vec<String> {
    component["licenses"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|l| {
                    let l = &l["license"];
                    l["id"].as_str().or(l["name"].as_str()).unwrap().to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sbom_of_a_debian_image_with_apk_cargo_and_whiteouts() {
    let image = build_image();
    let store = LayoutStore::open(&image.layout).await.unwrap();
    let request = SbomRequest {
        image_name: "ghcr.io/acme/sbom-test".to_string(),
        manifest_digest: image.manifest.digest.clone(),
        platform: None, // read from the image config
    };
    let bytes = generate(&store, &image.manifest, &request)
        .await
        .unwrap_or_else(|e| panic!("generate failed: {e:#}"));
    let bom: Value = serde_json::from_slice(&bytes).unwrap();
    let pretty = serde_json::to_string_pretty(&bom).unwrap();

    assert_eq!(bom["bomFormat"], "CycloneDX", "{pretty}");
    assert_eq!(bom["specVersion"], "1.5");
    assert!(bom["serialNumber"]
        .as_str()
        .unwrap()
        .starts_with("urn:uuid:"));

    // Metadata: tool, timestamp, the image itself.
    let meta = &bom["metadata"];
    assert!(meta["timestamp"].as_str().is_some_and(|t| t.contains('T')));
    assert_eq!(meta["tools"]["components"][0]["name"], "wharf");
    assert_eq!(
        meta["tools"]["components"][0]["version"],
        env!("CARGO_PKG_VERSION")
    );
    let subject = &meta["component"];
    let digest: &Digest = &image.manifest.digest;
    assert_eq!(subject["type"], "container");
    assert_eq!(subject["name"], "ghcr.io/acme/sbom-test");
    assert_eq!(subject["version"], digest.as_str());
    assert_eq!(
        subject["purl"],
        format!(
            "pkg:oci/sbom-test@sha256%3A{}?arch=amd64&repository_url=ghcr.io/acme/sbom-test",
            digest.hex()
        )
    );
    let props: BTreeMap<&str, &str> = subject["properties"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["value"].as_str().unwrap()))
        .collect();
    assert_eq!(props.get("wharf:platform"), Some(&"linux/amd64"));

    // Exactly the expected components.
    let components = bom["components"].as_array().unwrap();
    let mut expected: Vec<String> = Vec::new();
    for deb in &image.debs {
        expected.push(format!(
            "pkg:deb/debian/{}@{}?arch={}&distro=debian-12",
            deb.package,
            purl_encode(&deb.version),
            deb.arch
        ));
    }
    expected.push("pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=x86_64".into());
    expected.push("pkg:apk/alpine/zlib@1.3.1-r0?arch=x86_64".into());
    expected.push("pkg:cargo/sbom-demo@0.3.0".into());
    expected.push("pkg:cargo/serde@1.0.197".into());
    expected.push("pkg:cargo/anyhow@1.0.81".into());
    expected.sort();
    let mut purls: Vec<String> = components
        .iter()
        .filter_map(|c| c["purl"].as_str().map(str::to_string))
        .collect();
    purls.sort();
    assert_eq!(purls, expected, "{pretty}");
    // The OS has no purl; every other component has one, as its bom-ref.
    assert_eq!(components.len(), expected.len() + 1);
    let os = &components[0];
    assert_eq!(os["type"], "operating-system");
    assert_eq!(os["name"], "debian");
    assert_eq!(os["version"], "12");
    assert_eq!(os["description"], "Debian GNU/Linux 12 (bookworm)");
    for c in &components[1..] {
        assert_eq!(c["bom-ref"], c["purl"]);
    }

    // Versions as dpkg recorded them; `+` percent-encoded in the purl only.
    for deb in &image.debs {
        let c = component_by_name(components, &deb.package);
        assert_eq!(c["version"], deb.version.as_str());
        assert_eq!(c["type"], "library");
    }
    let hostname = component_by_name(components, "hostname");
    assert!(
        hostname["version"].as_str().unwrap().contains('+'),
        "hostname's version has a '+'"
    );
    assert!(hostname["purl"].as_str().unwrap().contains("%2B"));
    assert!(components.iter().all(|c| c["name"] != "removed-pkg"));

    // Licences from the DEP-5 copyright files; netbase's was hidden by the opaque dir.
    assert_eq!(license_strings(hostname), ["GPL-2.0-only"]);
    assert!(
        license_strings(component_by_name(components, "debianutils"))
            .contains(&"GPL-2.0-or-later".to_string())
    );
    assert_eq!(
        license_strings(component_by_name(components, "netbase")),
        Vec::<String>::new()
    );
    assert_eq!(
        license_strings(component_by_name(components, "musl")),
        ["MIT"]
    );
    assert_eq!(
        license_strings(component_by_name(components, "zlib")),
        ["Zlib"]
    );

    // The whited-out binary's crates are gone; the kept one's are found where it is.
    assert!(components
        .iter()
        .all(|c| c["name"] != "gone-app" && c["name"] != "regex"));
    assert!(
        components.iter().all(|c| c["name"] != "serde_derive"),
        "build deps are left out"
    );
    let demo = component_by_name(components, "sbom-demo");
    assert_eq!(demo["type"], "application");
    assert_eq!(
        demo["evidence"]["occurrences"][0]["location"],
        "/usr/local/bin/sbom-demo"
    );
    let deps = bom["dependencies"].as_array().unwrap();
    let demo_deps = deps
        .iter()
        .find(|d| d["ref"] == "pkg:cargo/sbom-demo@0.3.0")
        .unwrap();
    assert_eq!(
        demo_deps["dependsOn"],
        json!(["pkg:cargo/anyhow@1.0.81", "pkg:cargo/serde@1.0.197"])
    );

    // The official schema accepts it; and the validator is not vacuous: it refuses a
    // document with a bad component type.
    let scratch = common::tempdir();
    if let Err(msg) = validate_with_schema(&bytes, scratch.path()) {
        panic!("SBOM does not validate against the CycloneDX 1.5 schema:\n{msg}\n{pretty}");
    }
    let mut broken = bom.clone();
    broken["components"][1]["type"] = json!("not-a-type");
    let err = validate_with_schema(&serde_json::to_vec(&broken).unwrap(), scratch.path())
        .expect_err("a bad component type must fail validation");
    assert!(err.contains("not-a-type"), "{err}");
}

#[tokio::test]
async fn sbom_fails_on_a_tampered_layer() {
    let image = build_image();
    // Change one byte of the apk database inside the (uncompressed) layer 2: the tar still
    // parses, so only the digest check at the end of the blob stream can notice.
    let path = common::blob_path(&image.layout, &image.layer2_digest);
    let mut bytes = fs::read(&path).unwrap();
    let at = bytes
        .windows(6)
        .position(|w| w == b"P:musl")
        .expect("apk database in layer 2");
    bytes[at + 2] = b'M';
    fs::write(&path, bytes).unwrap();

    let store = LayoutStore::open(&image.layout).await.unwrap();
    let request = SbomRequest {
        image_name: format!("oci:{}", image.layout.display()),
        manifest_digest: image.manifest.digest.clone(),
        platform: None,
    };
    let err = generate(&store, &image.manifest, &request)
        .await
        .expect_err("a tampered layer must fail");
    let msg = format!("{err:#}");
    assert!(msg.contains("layer 2"), "{msg}");
    assert!(msg.contains("does not match"), "{msg}");
}

#[tokio::test]
async fn sbom_refuses_an_index() {
    let image = build_image();
    let store = LayoutStore::open(&image.layout).await.unwrap();
    // Wrap the manifest in an index and ask for that.
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": image.manifest.media_type,
            "digest": image.manifest.digest.as_str(),
            "size": image.manifest.size,
            "platform": {"architecture": "amd64", "os": "linux"},
        }],
    }))
    .unwrap();
    let (digest, size) = put_blob(&image.layout, &index);
    let desc = Descriptor::new(
        "application/vnd.oci.image.index.v1+json",
        digest.parse().unwrap(),
        size,
    );
    let request = SbomRequest {
        image_name: "ghcr.io/acme/sbom-test".into(),
        manifest_digest: desc.digest.clone(),
        platform: None,
    };
    let err = generate(&store, &desc, &request).await.unwrap_err();
    assert!(format!("{err:#}").contains("is an index"), "{err:#}");
}
