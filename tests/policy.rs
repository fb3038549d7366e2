//! `wharf policy` and `wharf docs verify` against what the real controllers and tools do:
//!
//! - every generated admission policy validates against the controllers' own CRD schemas
//!   (vendored in `tests/data/crds`, unknown fields rejected), for a matrix of release configs;
//! - the images each policy admits, decided the way each controller decides it (reimplemented
//!   here from their source: go-containerregistry's name normalisation and policy-controller's
//!   glob; Kyverno's reference parsing and wildcard), are exactly the released repositories'
//!   tags and digests, never a sibling repository;
//! - the YAML writer round-trips hostile strings through an independent parser;
//! - the verification guide's commands, run as written (with wharf and cosign) against a real
//!   release on a loopback registry, pass; the same commands for a wrong identity, key or
//!   workflow repository fail.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::k8s::{
    cluster_image_policy_globs, crd_violations, kyverno_image_references, yaml_documents,
    yaml_documents_of_each, Crd,
};
use common::keys::{openssl_key, Key};
use common::standin::SigstoreStandIn;
use common::toml_str as q;
use common::*;
use regex::Regex;
use serde_json::Value;

const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";
const SLSA_V1: &str = "https://slsa.dev/provenance/v1";
/// The identity regexp a real project (OpenMed) uses, for its own organisation and repository.
fn openmed_regexp(repo: &str) -> String {
    format!(
        r"^https://github\.com/{}/\.github/workflows/image-signing\.yml@refs/(heads/master|tags/v.*)$",
        repo.replace('.', r"\.")
    )
}

// ---------------------------------------------------------------------------------------
// The matrix of release configs
// ---------------------------------------------------------------------------------------

/// Where a release publishes: the primary and its mirrors.
struct Destinations {
    name: &'static str,
    primary: &'static str,
    mirrors: &'static [&'static str],
}

const DESTINATIONS: &[Destinations] = &[
    Destinations {
        name: "ghcr+hub+ecr",
        primary: "ghcr.io/acme/app",
        mirrors: &[
            "docker.io/acme/app",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/acme/app",
            "oci:air-gap/app",
        ],
    },
    Destinations {
        name: "hub-short+ghcr",
        primary: "acme/app",
        mirrors: &["ghcr.io/acme/app"],
    },
    Destinations {
        name: "hub-library+ecr-public",
        primary: "docker.io/library/app",
        mirrors: &["public.ecr.aws/acme/app"],
    },
];

/// How a release is signed, as `[signing]` and `[verify]` lines.
struct Signer {
    name: &'static str,
    key: bool,
    signing: Vec<String>,
    verify: Vec<String>,
}

fn signers(key: &Key) -> Vec<Signer> {
    let public = format!("key = {}", q(key.public()));
    vec![
        Signer {
            name: "key, logged",
            key: true,
            signing: vec![format!("key = {}", q(key.private()))],
            verify: vec![public.clone()],
        },
        Signer {
            name: "key, not logged",
            key: true,
            signing: vec![
                format!("key = {}", q(key.private())),
                "tlog_upload = false".into(),
            ],
            verify: vec![public, "insecure_ignore_tlog = true".into()],
        },
        Signer {
            name: "keyless, exact",
            key: false,
            signing: vec![],
            verify: vec![
                format!(
                    "certificate_identity = {}",
                    q("https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.0")
                ),
                format!("certificate_oidc_issuer = {}", q(GITHUB_ISSUER)),
            ],
        },
        Signer {
            name: "keyless, regexps (OpenMed) and workflow repository",
            key: false,
            signing: vec![],
            verify: vec![
                format!(
                    "certificate_identity_regexp = {}",
                    q(&openmed_regexp("acme/app"))
                ),
                format!(
                    "certificate_oidc_issuer_regexp = {}",
                    q(r"^https://token\.actions\.githubusercontent\.com$")
                ),
                "certificate_github_workflow_repository = \"acme/app\"".into(),
            ],
        },
        Signer {
            name: "keyless, exact with wildcard characters and a regexp",
            key: false,
            signing: vec![],
            verify: vec![
                format!(
                    "certificate_identity = {}",
                    q("https://ci.example/build?job=*")
                ),
                format!(
                    "certificate_identity_regexp = {}",
                    q(r#"https://ci\.example/"q"/'s'/\d+"#)
                ),
                format!("certificate_oidc_issuer = {}", q("https://ci.example")),
            ],
        },
    ]
}

const FORMATS: &[&str] = &["legacy", "bundle", "both"];

fn config_text(d: &Destinations, signer: &Signer, format: &str, attest: bool) -> String {
    let mut t = format!("layout = \"l\"\nrepository = {}\n", q(d.primary));
    t += &format!(
        "\n[signing]\nbundle_format = {}\n{}\n",
        q(format),
        signer.signing.join("\n")
    );
    if attest {
        t += "\n[attestations]\nsbom = \"generate\"\nprovenance = true\n";
    }
    t += &format!("\n[verify]\n{}\n", signer.verify.join("\n"));
    for m in d.mirrors {
        t += &format!("\n[[mirror]]\ndestination = {}\n", q(m));
    }
    t
}

fn wharf_policy(config: &Path, format: &str) -> Output {
    wharf_clean()
        .args(["policy", "--format", format, "--config"])
        .arg(config)
        .output()
        .unwrap()
}

/// One generated policy of the matrix.
struct Generated {
    label: String,
    controller: Crd,
    text: String,
    docs: Vec<Value>,
    keyless: bool,
    format: &'static str,
    attest: bool,
    workflow_repository: bool,
    tlog: bool,
}

fn generate_matrix(dir: &Path) -> (Vec<Generated>, usize) {
    let key = openssl_key(dir, "release");
    let mut out = Vec::new();
    let mut refused = 0;
    for d in DESTINATIONS {
        for signer in signers(&key) {
            for format in FORMATS {
                for attest in [false, true] {
                    let text = config_text(d, &signer, format, attest);
                    let path = dir.join(format!("c{}.toml", out.len() + refused));
                    fs::write(&path, &text).unwrap();
                    for (flag, crd) in [
                        ("sigstore-policy-controller", Crd::ClusterImagePolicy),
                        ("kyverno", Crd::KyvernoClusterPolicy),
                    ] {
                        let label = format!(
                            "{flag}: {}, {}, {format}, attestations {attest}",
                            d.name, signer.name
                        );
                        let run = wharf_policy(&path, flag);
                        if crd == Crd::ClusterImagePolicy && signer.key && *format == "bundle" {
                            // policy-controller verifies bundles for keyless authorities only:
                            // one clear line, nothing written.
                            assert!(!run.status.success(), "{label}");
                            assert!(run.stdout.is_empty(), "{label}");
                            let line = error_line(&run);
                            assert!(line.contains("only for keyless"), "{label}: {line}");
                            refused += 1;
                            continue;
                        }
                        assert!(run.status.success(), "{label}: {}", stderr_of(&run));
                        out.push(Generated {
                            label,
                            controller: crd,
                            docs: Vec::new(),
                            text: stdout_of(&run),
                            keyless: !signer.key,
                            format,
                            attest,
                            workflow_repository: signer
                                .verify
                                .iter()
                                .any(|l| l.starts_with("certificate_github_workflow_repository")),
                            tlog: !signer.signing.iter().any(|l| l == "tlog_upload = false"),
                        });
                    }
                }
            }
        }
    }
    let texts: Vec<&str> = out.iter().map(|g| g.text.as_str()).collect();
    let parsed = yaml_documents_of_each(&texts);
    for (g, docs) in out.iter_mut().zip(parsed) {
        g.docs = docs;
    }
    (out, refused)
}

#[test]
fn every_generated_policy_validates_against_its_controllers_crd() {
    let tmp = tempdir();
    let (generated, refused) = generate_matrix(tmp.path());
    // 3 destinations x 5 signers x 3 formats x 2 attestation sets x 2 controllers, less the
    // key-signed bundle-only releases policy-controller cannot verify.
    assert_eq!(generated.len() + refused, 180);
    assert_eq!(refused, 12);
    for crd in [Crd::ClusterImagePolicy, Crd::KyvernoClusterPolicy] {
        let objects: Vec<(String, Value)> = generated
            .iter()
            .filter(|g| g.controller == crd)
            .flat_map(|g| {
                g.docs
                    .iter()
                    .enumerate()
                    .map(|(i, d)| (format!("{} #{i}", g.label), d.clone()))
            })
            .collect();
        assert!(objects.len() >= 80, "{crd:?}: {}", objects.len());
        let violations = crd_violations(crd, &objects);
        assert!(violations.is_empty(), "{crd:?}: {violations:#?}");
    }

    // What each document says, beyond its shape.
    for g in &generated {
        let (label, text) = (&g.label, &g.text);
        match g.controller {
            Crd::ClusterImagePolicy => {
                assert_eq!(g.docs.len(), if g.attest { 2 } else { 1 }, "{label}");
                let signature = &g.docs[0]["spec"]["authorities"][0];
                if g.format == "bundle" {
                    // policy-controller reads bundles as attestations only.
                    assert_eq!(
                        signature["attestations"][0]["predicateType"],
                        "https://sigstore.dev/cosign/sign/v1",
                        "{label}"
                    );
                } else {
                    assert!(signature["attestations"].is_null(), "{label}");
                }
                assert_eq!(
                    signature["signatureFormat"].as_str(),
                    (g.format == "bundle").then_some("bundle"),
                    "{label}"
                );
                // policy-controller skips the log check without ctlog; bundles carry it.
                assert_eq!(
                    signature["ctlog"].is_object(),
                    g.tlog && g.format != "bundle",
                    "{label}"
                );
                if g.attest {
                    let provenance = &g.docs[1]["spec"]["authorities"][0];
                    assert_eq!(
                        provenance["attestations"][0]["predicateType"], SLSA_V1,
                        "{label}"
                    );
                    assert_eq!(g.docs[1]["spec"]["images"], g.docs[0]["spec"]["images"]);
                }
                assert_eq!(
                    text.contains("NOT ENFORCED HERE: certificate_github_workflow_repository"),
                    g.workflow_repository,
                    "{label}"
                );
            }
            Crd::KyvernoClusterPolicy => {
                assert_eq!(g.docs.len(), 1, "{label}");
                let doc = &g.docs[0];
                let verify = &doc["spec"]["rules"][0]["verifyImages"][0];
                assert_eq!(
                    verify["type"].as_str(),
                    (g.format == "bundle").then_some("SigstoreBundle"),
                    "{label}"
                );
                let min = doc["metadata"]["annotations"]["policies.kyverno.io/minversion"]
                    .as_str()
                    .unwrap();
                let key_bundle = !g.keyless && g.format == "bundle";
                assert_eq!(min, if key_bundle { "1.19.0" } else { "1.13.0" }, "{label}");
                assert!(text.contains(&format!("Needs Kyverno {min} or later")));
                let entry = &verify["attestors"][0]["entries"][0];
                if g.keyless {
                    let extensions = &entry["keyless"]["additionalExtensions"];
                    assert_eq!(
                        extensions["githubWorkflowRepository"].as_str(),
                        (g.workflow_repository && g.format != "bundle").then_some("acme/app"),
                        "{label}"
                    );
                } else {
                    assert_eq!(
                        entry["keys"]["rekor"]["ignoreTlog"].as_bool(),
                        (!g.tlog).then_some(true)
                    );
                }
                let attestations = &verify["attestations"];
                if g.attest {
                    assert_eq!(attestations[0]["type"], SLSA_V1, "{label}");
                    assert_eq!(attestations[0]["attestors"], verify["attestors"], "{label}");
                } else {
                    assert!(attestations.is_null(), "{label}");
                }
            }
        }
        // Per-platform SBOMs cannot be required by a controller that checks the index.
        assert!(!text.contains("cyclonedx.org"), "{label}");
        assert_eq!(
            text.contains("Not required here: the CycloneDX SBOM"),
            g.attest
        );
        // Identity regexps are anchored; an exact identity is written exactly (Kyverno: as an
        // escaped regexp when it holds wildcard characters).
        if g.keyless {
            for doc in &g.docs {
                for value in string_values(doc) {
                    if value.contains("github") && value.contains("workflows") {
                        assert!(
                            value.starts_with("^(?:^https://github\\.com/acme/app/")
                                || value == "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.0",
                            "{label}: {value}"
                        );
                    }
                }
            }
        }
    }
}

/// Every string in a JSON value.
fn string_values(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().flat_map(string_values).collect(),
        Value::Object(o) => o.values().flat_map(string_values).collect(),
        _ => vec![],
    }
}

#[test]
fn identity_values_are_exactly_what_wharf_enforces() {
    let tmp = tempdir();
    let key = openssl_key(tmp.path(), "release");
    let all = signers(&key);
    let by_name = |n: &str| all.iter().find(|s| s.name.starts_with(n)).unwrap();
    let d = &DESTINATIONS[0];
    let policies = |signer: &Signer, format: &str| -> (Value, Value) {
        let path = tmp.path().join("c.toml");
        fs::write(&path, config_text(d, signer, format, false)).unwrap();
        let pc = yaml_documents(&stdout_of(&run_ok(
            wharf_clean()
                .args([
                    "policy",
                    "--format",
                    "sigstore-policy-controller",
                    "--config",
                ])
                .arg(&path),
        )));
        let ky = yaml_documents(&stdout_of(&run_ok(
            wharf_clean()
                .args(["policy", "--format", "kyverno", "--config"])
                .arg(&path),
        )));
        (
            pc[0]["spec"]["authorities"][0]["keyless"]["identities"][0].clone(),
            ky[0]["spec"]["rules"][0]["verifyImages"][0]["attestors"][0]["entries"][0]["keyless"]
                .clone(),
        )
    };

    // The OpenMed regexp and an issuer regexp: anchored, backslashes intact.
    let (pc, ky) = policies(by_name("keyless, regexps"), "legacy");
    let subject = format!("^(?:{})$", openmed_regexp("acme/app"));
    let issuer = r"^(?:^https://token\.actions\.githubusercontent\.com$)$";
    assert_eq!(pc["subjectRegExp"], subject.as_str());
    assert_eq!(pc["issuerRegExp"], issuer);
    assert_eq!(ky["subjectRegExp"], subject.as_str());
    assert_eq!(ky["issuerRegExp"], issuer);
    assert!(pc["subject"].is_null() && pc["issuer"].is_null());

    // Exact stays exact.
    let (pc, ky) = policies(by_name("keyless, exact"), "both");
    let exact = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.2.0";
    assert_eq!(pc["subject"], exact);
    assert_eq!(pc["issuer"], GITHUB_ISSUER);
    assert_eq!(ky["subject"], exact);
    assert_eq!(ky["issuer"], GITHUB_ISSUER);

    // An exact identity and a regexp: wharf accepts either, so one anchored alternation; its
    // `?` and `*` are escaped, quotes survive YAML.
    let (pc, ky) = policies(by_name("keyless, exact with"), "legacy");
    let either = r#"^(?:https://ci\.example/build\?job=\*|https://ci\.example/"q"/'s'/\d+)$"#;
    assert_eq!(pc["subjectRegExp"], either);
    assert_eq!(ky["subjectRegExp"], either);
    let re = Regex::new(either).unwrap();
    for accepted in [
        "https://ci.example/build?job=*",
        r#"https://ci.example/"q"/'s'/42"#,
    ] {
        assert!(re.is_match(accepted), "{accepted}");
    }
    for refused in [
        "https://ci.example/build?job=x",
        "https://ci.example/buildXjob=*",
        r#"https://ci.example/"q"/'s'/42/more"#,
        r#"x-https://ci.example/"q"/'s'/42"#,
    ] {
        assert!(!re.is_match(refused), "{refused}");
    }
}

// ---------------------------------------------------------------------------------------
// Which images each controller lets the policy apply to
// ---------------------------------------------------------------------------------------

/// What go-containerregistry's `ParseReference(image, WeakValidation).Name()` gives: Docker Hub
/// as `index.docker.io`, `library/` for one-component Docker Hub names, `:latest` when there is
/// neither tag nor digest, and the tag dropped when there is a digest.
fn ggcr_name(image: &str) -> String {
    let (base, digest) = match image.split_once('@') {
        Some((b, d)) => (b, Some(d)),
        None => (image, None),
    };
    let last_slash = base.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match base[last_slash..].rfind(':') {
        Some(i) => (&base[..last_slash + i], Some(&base[last_slash + i + 1..])),
        None => (base, None),
    };
    let (registry, path) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            (first, rest.to_string())
        }
        _ => ("index.docker.io", name.to_string()),
    };
    let registry = if registry == "docker.io" {
        "index.docker.io"
    } else {
        registry
    };
    let path = if registry == "index.docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    match digest {
        Some(d) => format!("{registry}/{path}@{d}"),
        None => format!("{registry}/{path}:{}", tag.unwrap_or("latest")),
    }
}

/// policy-controller's `glob.Compile`: `.` literal, `**` any characters, `*` any but `/`,
/// anchored; `*` and `*/*` alone mean Docker Hub.
fn policy_controller_glob(glob: &str) -> Regex {
    let glob = match glob {
        "*/*" => "index.docker.io/*/*",
        "*" => "index.docker.io/library/*",
        g => g,
    };
    let valid = Regex::new(r"^[a-zA-Z0-9-_:/*.@]+$").unwrap();
    assert!(
        valid.is_match(glob),
        "policy-controller refuses the glob {glob:?}"
    );
    let re = glob
        .replace('.', r"\.")
        .replace("**", "#")
        .replace('*', "[^/]*")
        .replace('#', ".*");
    Regex::new(&format!("^{re}$")).unwrap()
}

/// policy-controller's `glob.Match`: the normalised name, then (deprecated fallback) the image
/// as written.
fn policy_controller_matches(glob: &str, image: &str) -> bool {
    let re = policy_controller_glob(glob);
    let name = ggcr_name(image);
    re.is_match(&name) || (name != image && re.is_match(image))
}

/// What Kyverno's `GetImageInfo(image).String()` gives: its default registry (`docker.io`)
/// added to names whose first component is not a host, no further normalisation, `:latest`
/// without tag or digest, the tag dropped with a digest; with `mutation` off, the default
/// registry is left out again.
fn kyverno_image(image: &str, mutation: bool) -> String {
    let added = match image.find('/') {
        None => true,
        Some(i) => {
            let first = &image[..i];
            !first.contains(['.', ':']) && first != "localhost" && first.to_lowercase() == first
        }
    };
    let full = if added {
        format!("docker.io/{image}")
    } else {
        image.to_string()
    };
    let (base, digest) = match full.split_once('@') {
        Some((b, d)) => (b.to_string(), Some(d.to_string())),
        None => (full.clone(), None),
    };
    let last_slash = base.rfind('/').unwrap() + 1;
    let (name, tag) = match base[last_slash..].rfind(':') {
        Some(i) => (
            base[..last_slash + i].to_string(),
            base[last_slash + i + 1..].to_string(),
        ),
        None => (base.clone(), "latest".to_string()),
    };
    let (registry, path) = name.split_once('/').unwrap();
    let registry = if added && !mutation { "" } else { registry };
    let image = if registry.is_empty() {
        path.to_string()
    } else {
        format!("{registry}/{path}")
    };
    match digest {
        Some(d) => format!("{image}@{d}"),
        None => format!("{image}:{tag}"),
    }
}

/// Kyverno's wildcard match (go-wildcard 1.0): `*` any run of characters, `/` included, `?`
/// exactly one, anything else itself.
fn kyverno_wildcard(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('*', rest)) => {
            kyverno_wildcard(rest, text)
                || (!text.is_empty() && kyverno_wildcard(pattern, &text[1..]))
        }
        Some(('?', rest)) => !text.is_empty() && kyverno_wildcard(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && kyverno_wildcard(rest, &text[1..]),
    }
}

fn kyverno_matches(pattern: &str, image: &str, mutation: bool) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = kyverno_image(image, mutation).chars().collect();
    kyverno_wildcard(&p, &t)
}

#[test]
fn controller_models_agree_with_their_sources_test_cases() {
    // go-containerregistry / policy-controller (pkg/apis/glob/glob_test.go cases).
    for (image, glob, want) in [
        ("foo", "index.docker.io/library/foo:latest", true),
        ("foo", "index.docker.io/library/*", true),
        ("foo", "index.docker.io/*/*", true),
        ("foo", "*", true),
        ("foo", "foo", true),
        ("myuser/myapp", "index.docker.io/myuser/myapp:*", true),
        ("myuser/myapp", "*/*", true),
        ("ghcr.io/foo/bar", "ghcr.io/*/*", true),
        ("ghcr.io/foo", "ghcr.io/*/*", false),
        ("ghcr.io/foo", "ghcr.io/foo*", true),
        ("prefix-ghcr.io/foo", "ghcr.io/foo", false),
        ("ghcr.io/foo-suffix", "ghcr.io/foo", false),
        ("ghcrxio/foo", "ghcr.io/**", false),
        // What the issue saw: `acme/app` is `index.docker.io/acme/app` (the deprecated
        // fallback compares the name as written, so `docker.io/acme/app:v1` would match).
        ("acme/app:v1", "docker.io/acme/app**", false),
        ("docker.io/acme/app:v1", "docker.io/acme/app**", true),
    ] {
        assert_eq!(
            policy_controller_matches(glob, image),
            want,
            "{image} ~ {glob}"
        );
    }
    assert_eq!(
        ggcr_name("ghcr.io/a/b:v1@sha256:00"),
        "ghcr.io/a/b@sha256:00"
    );
    // Kyverno (ext/wildcard/match_test.go cases and pkg/utils/image/infos.go behaviour).
    for (pattern, text, want) in [
        ("my-bucket/In*", "my-bucket/India/Karnataka/", true),
        ("my-bucket?/abc*", "mybucket/abc", false),
        ("my-bucket?abc*", "my-bucket/abc", true),
        ("my-bucket/abc????", "my-bucket/abcde", false),
    ] {
        let p: Vec<char> = pattern.chars().collect();
        let t: Vec<char> = text.chars().collect();
        assert_eq!(kyverno_wildcard(&p, &t), want, "{text} ~ {pattern}");
    }
    assert_eq!(kyverno_image("nginx", true), "docker.io/nginx:latest");
    assert_eq!(kyverno_image("nginx", false), "nginx:latest");
    assert_eq!(
        kyverno_image("index.docker.io/nginx:1", true),
        "index.docker.io/nginx:1"
    );
    assert_eq!(
        kyverno_image("ghcr.io/a/b:v1@sha256:00", true),
        "ghcr.io/a/b@sha256:00"
    );
    assert_eq!(
        kyverno_image("localhost:5000/a", false),
        "localhost:5000/a:latest"
    );
}

/// The ways a pod can name repository `canonical` (as wharf parses it: `docker.io/PATH` for
/// Docker Hub), each as tag, bare, digest and tag+digest references.
fn references_to(canonical: &str) -> Vec<String> {
    let digest = format!("sha256:{}", "ab".repeat(32));
    let names: Vec<String> = match canonical.strip_prefix("docker.io/") {
        Some(path) => {
            let mut paths = vec![path.to_string()];
            if let Some(short) = path.strip_prefix("library/") {
                paths.push(short.to_string());
            }
            let mut names = paths.clone();
            for host in ["docker.io", "index.docker.io"] {
                names.extend(paths.iter().map(|p| format!("{host}/{p}")));
            }
            names
        }
        None => vec![canonical.to_string()],
    };
    names
        .iter()
        .flat_map(|n| {
            [
                format!("{n}:v1.2.0"),
                n.clone(),
                format!("{n}@{digest}"),
                format!("{n}:v1@{digest}"),
            ]
        })
        .collect()
}

/// Repositories next to `canonical` that a prefix pattern would also catch.
fn siblings_of(canonical: &str) -> Vec<String> {
    let digest = format!("sha256:{}", "cd".repeat(32));
    let parent = canonical.rsplit_once('/').unwrap().0;
    let mut names = vec![
        format!("{canonical}-frontend"),
        format!("{canonical}lication/x"),
        format!("{canonical}/sub"),
        format!("{canonical}2"),
        parent.to_string(),
        format!("{parent}/other"),
        format!("evil.example/{canonical}"),
    ];
    if let Some((host, rest)) = canonical.split_once('/') {
        if host.contains('.') {
            names.push(format!("{host}.evil.example/{rest}"));
            names.push(format!("{}x{}/{rest}", &host[..1], &host[2..]));
        }
    }
    names
        .into_iter()
        .flat_map(|n| {
            let mut refs = vec![format!("{n}:v1"), format!("{n}@{digest}")];
            if let Some(path) = n.strip_prefix("docker.io/") {
                refs.push(format!("{path}:v1"));
                refs.push(format!("index.docker.io/{path}@{digest}"));
            }
            refs
        })
        .collect()
}

#[test]
fn policies_cover_exactly_the_released_repositories_tags_and_digests() {
    let tmp = tempdir();
    let key = openssl_key(tmp.path(), "release");
    let keyless = &signers(&key)[3];
    let mut checked = (0, 0);
    for d in DESTINATIONS {
        let path = tmp.path().join(format!("{}.toml", d.name));
        fs::write(&path, config_text(d, keyless, "both", true)).unwrap();
        let released: Vec<String> = std::iter::once(d.primary)
            .chain(d.mirrors.iter().copied())
            .filter(|r| !r.starts_with("oci:"))
            .map(|r| match r.split_once('/') {
                Some((first, _)) if first.contains('.') => r.to_string(),
                _ => format!("docker.io/{r}"),
            })
            .collect();
        let accepted: Vec<String> = released.iter().flat_map(|r| references_to(r)).collect();
        let refused: Vec<String> = released
            .iter()
            .flat_map(|r| siblings_of(r))
            .filter(|s| {
                // Not another spelling of a released repository.
                !released.iter().any(|r| {
                    references_to(r)
                        .iter()
                        .any(|a| ggcr_name(a) == ggcr_name(s))
                })
            })
            .collect();
        assert!(refused.len() > 20, "{refused:?}");

        // policy-controller: every document's globs (the provenance policy's too).
        let pc = yaml_documents(&stdout_of(&run_ok(&mut wharf_policy_cmd(
            &path,
            "sigstore-policy-controller",
        ))));
        for doc in &pc {
            let globs = cluster_image_policy_globs(doc);
            for image in &accepted {
                assert!(
                    globs.iter().any(|g| policy_controller_matches(g, image)),
                    "policy-controller misses {image} ({}): {globs:?}",
                    ggcr_name(image)
                );
                checked.0 += 1;
            }
            for image in &refused {
                let hit = globs.iter().find(|g| policy_controller_matches(g, image));
                assert!(hit.is_none(), "policy-controller: {hit:?} catches {image}");
                checked.1 += 1;
            }
        }

        // Kyverno, with its default registry mutation on and off.
        let ky = yaml_documents(&stdout_of(&run_ok(&mut wharf_policy_cmd(&path, "kyverno"))));
        let patterns = kyverno_image_references(&ky[0]);
        for mutation in [true, false] {
            for image in &accepted {
                assert!(
                    patterns.iter().any(|p| kyverno_matches(p, image, mutation)),
                    "Kyverno misses {image} ({}): {patterns:?}",
                    kyverno_image(image, mutation)
                );
                checked.0 += 1;
            }
            for image in &refused {
                let hit = patterns
                    .iter()
                    .find(|p| kyverno_matches(p, image, mutation));
                assert!(hit.is_none(), "Kyverno: {hit:?} catches {image}");
                checked.1 += 1;
            }
        }
    }
    // 64 released references (every spelling, tag, bare, digest, tag+digest), checked against
    // two policy-controller documents and Kyverno with and without its registry mutation.
    assert_eq!(checked.0, 256);
    assert!(checked.1 > 600, "{checked:?}");
}

fn wharf_policy_cmd(config: &Path, format: &str) -> Command {
    let mut cmd = wharf_clean();
    cmd.args(["policy", "--format", format, "--config"])
        .arg(config);
    cmd
}

// ---------------------------------------------------------------------------------------
// YAML
// ---------------------------------------------------------------------------------------

#[test]
fn yaml_round_trips_hostile_strings_through_pyyaml() {
    use wharf::yaml::{documents, Yaml};
    let mut strings: Vec<String> = (0u32..0x100)
        .chain([
            0x2028, 0x2029, 0xfeff, 0xfffe, 0xffff, 0xd7ff, 0xe000, 0x10ffff, 0x1f600,
        ])
        .filter_map(char::from_u32)
        .map(|c| format!("a{c}b"))
        .collect();
    for s in [
        "",
        " ",
        " leading",
        "trailing ",
        "key: value",
        "a #comment",
        "#",
        "---",
        "...",
        "- item",
        "*alias",
        "&anchor",
        "!tag",
        "%directive",
        "@at",
        "`tick",
        "{a: b}",
        "[a]",
        "'single'",
        "\"double\"",
        "back\\slash",
        r"^https://github\.com/a/b/\.github/workflows/x\.yml@refs/(heads/master|tags/v.*)$",
        "yes",
        "no",
        "on",
        "off",
        "null",
        "~",
        "1.0",
        "0x1F",
        "1e3",
        "true",
        "\n",
        "\n\n",
        "a\nb",
        "a\nb\n",
        "a\nb\n\n",
        " a\nb\n",
        "a\n\nb\n",
        "a \nb\n",
        "a\r\nb\n",
        "a\tb\nc\n",
        "é\nb\n",
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n",
    ] {
        strings.push(s.to_string());
    }
    let keys = [
        "on",
        "a: b",
        "",
        "with space",
        "k-1/x.y",
        "Yes",
        "-dash",
        "#",
    ];
    let mut entries: Vec<(String, Yaml)> = strings
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("s{i}"), Yaml::str(s.as_str())))
        .collect();
    for k in keys {
        entries.push((k.to_string(), Yaml::str(k)));
    }
    entries.push((
        "list".into(),
        Yaml::Seq(strings.iter().map(|s| Yaml::str(s.as_str())).collect()),
    ));
    let text = documents(&[(
        vec!["a comment: with \"quotes\"".into()],
        Yaml::Map(entries),
    )]);
    let parsed = yaml_documents(&text);
    assert_eq!(parsed.len(), 1);
    let doc = &parsed[0];
    for (i, s) in strings.iter().enumerate() {
        assert_eq!(doc[format!("s{i}")], s.as_str(), "string {i}: {s:?}");
        assert_eq!(doc["list"][i], s.as_str(), "list item {i}: {s:?}");
    }
    for k in keys {
        assert_eq!(doc[k], k, "key {k:?}");
    }
}

// ---------------------------------------------------------------------------------------
// The verification guide, run against real releases
// ---------------------------------------------------------------------------------------

/// The shell commands of a guide: every line of its ```sh blocks.
fn guide_commands(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_block = false;
    for line in md.lines() {
        match (in_block, line.trim()) {
            (false, "```sh") => in_block = true,
            (true, "```") => in_block = false,
            (true, l) if !l.is_empty() => out.push(l.to_string()),
            _ => {}
        }
    }
    out
}

/// Where the guide's commands run: a directory whose `bin` puts the wharf under test and
/// cosign on PATH, pointed at this machine's loopback environment (plain-HTTP registries; the
/// Sigstore stand-in's trust root, which a user of a private Sigstore gets from the project).
struct Shell {
    dir: TempDir,
    trust: Option<PathBuf>,
}

impl Shell {
    fn new(si: Option<&SigstoreStandIn>) -> Shell {
        let dir = tempdir();
        let bin = dir.path().join("bin");
        fs::create_dir(&bin).unwrap();
        let trust = si.map(|s| s.trusted_root.clone());
        let wrapper = |name: &str, body: String| {
            let path = bin.join(name);
            fs::write(&path, body).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        };
        wrapper(
            "wharf",
            format!(
                "#!/bin/sh\nexec {} --allow-insecure-registry \"$@\"\n",
                env!("CARGO_BIN_EXE_wharf")
            ),
        );
        // cosign 2.5 takes a custom trust root for Sigstore bundles only with --trusted-root.
        let bundle_trust = match &trust {
            Some(t) => format!(
                "for a in \"$@\"; do [ \"$a\" = --new-bundle-format ] && set -- \"$@\" --trusted-root {}; done\n",
                t.display()
            ),
            None => String::new(),
        };
        wrapper(
            "cosign",
            format!(
                "#!/bin/sh\n{bundle_trust}exec {} \"$@\" --allow-insecure-registry\n",
                require_tool("cosign").display()
            ),
        );
        Shell { dir, trust }
    }

    fn command(&self, si: Option<&SigstoreStandIn>, line: &str) -> Command {
        let mut cmd = Command::new("bash");
        clean(&mut cmd);
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.current_dir(self.dir.path())
            .env("PATH", path)
            .args(["-c", line]);
        if let Some(si) = si {
            si.cosign_env(&mut cmd);
        }
        if let Some(t) = &self.trust {
            cmd.env("WHARF_TRUSTED_ROOT", t);
        }
        cmd
    }
}

/// A guide's command with the release's digests in place of its placeholders.
fn with_digests(line: &str, index: &str, platform: &str) -> String {
    line.replace("sha256:DIGEST", index)
        .replace("PLATFORM_DIGEST", platform)
}

fn is_verification(line: &str) -> bool {
    line.starts_with("wharf verify") || line.starts_with("cosign verify")
}

/// A finished release: its report's index digest and one platform's digest.
struct Released {
    index: String,
    platform: String,
}

fn release(config: &Path, env: &[(&str, &str)]) -> Released {
    let out = run_ok(
        wharf_clean()
            .args(["release", "--output", "json", "--config"])
            .arg(config)
            .envs(env.iter().copied()),
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    Released {
        index: report["digest"].as_str().unwrap().to_string(),
        platform: report["manifests"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string(),
    }
}

fn guide(config: &Path, dir: &Path, name: &str) -> String {
    let out = dir.join(name);
    run_ok(
        wharf_clean()
            .args(["docs", "verify", "--project", "app", "--config"])
            .arg(config)
            .arg("-o")
            .arg(&out),
    );
    fs::read_to_string(out).unwrap()
}

/// The GitHub Actions variables provenance is built from, for a tag push of `repository`.
const ACTIONS_ENV: &[(&str, &str)] = &[
    ("GITHUB_REPOSITORY", "octo-org/octo-repo"),
    ("GITHUB_SHA", "4f1b3c5d6e7f8091a2b3c4d5e6f708192a3b4c5d"),
    ("GITHUB_REF", "refs/tags/v1.2.0"),
    (
        "GITHUB_WORKFLOW_REF",
        "octo-org/octo-repo/.github/workflows/image-signing.yml@refs/tags/v1.2.0",
    ),
    ("GITHUB_RUN_ID", "4242"),
    ("GITHUB_RUN_ATTEMPT", "1"),
];

/// A keyless release as a GitHub tag push would make it (the OpenMed identity shape), in
/// `format`, with SBOMs and provenance, mirrored to a second registry if `mirrored`; its
/// guide's commands pass, and the commands of guides for a wrong identity, an unanchored
/// partial identity regexp, a wrong issuer or a wrong workflow repository fail.
fn keyless_guide_commands_check_the_release(format: &str, mirrored: bool) {
    let si = SigstoreStandIn::start();
    let a = Registry::start();
    let b = Registry::start();
    if format != "legacy" {
        si.burn_log_index_zero(&a);
    }
    let tmp = tempdir();
    let layout = example_layout(&tmp.path().join("layout"));
    let token = si.token(
        "&job_workflow_ref=octo-org/octo-repo/.github/workflows/image-signing.yml@refs/tags/v1.2.0&ref=refs/tags/v1.2.0",
    );
    let config_with = |verify: &[String], name: &str| -> PathBuf {
        let text = format!(
            "layout = {}\nrepository = {}\ntags = [\"v1.2.0\"]\ninsecure_registries = [{}, {}]\n\n[signing]\nfulcio_url = {}\nrekor_url = {}\ntrusted_root = {}\nidentity_token = {}\nbundle_format = {}\n\n[attestations]\nsbom = \"generate\"\nprovenance = true\n\n[verify]\n{}\n{}",
            q(&format!("{}:v1", layout.display())),
            q(&a.repo("openmed/app")),
            q(a.addr()),
            q(b.addr()),
            q(&si.fulcio_url),
            q(&si.rekor_url),
            q(si.trusted_root.to_str().unwrap()),
            q(&token),
            q(format),
            verify.join("\n"),
            if mirrored {
                format!("\n[[mirror]]\ndestination = {}\n", q(&b.repo("mirror/app")))
            } else {
                String::new()
            },
        );
        let path = tmp.path().join(name);
        fs::write(&path, text).unwrap();
        path
    };
    let policy = |identity: &str, issuer: &str, repo: &str| -> Vec<String> {
        vec![
            format!("certificate_identity_regexp = {}", q(identity)),
            format!("certificate_oidc_issuer = {}", q(issuer)),
            format!("certificate_github_workflow_repository = {}", q(repo)),
        ]
    };
    let right = openmed_regexp("octo-org/octo-repo");
    let config = config_with(&policy(&right, GITHUB_ISSUER, &si.repository), "wharf.toml");
    let released = release(&config, ACTIONS_ENV);

    let md = guide(&config, tmp.path(), "verifying.md");
    let commands = guide_commands(&md);
    let verifications = commands.iter().filter(|c| is_verification(c)).count();
    // wharf and cosign: signatures, SBOMs and provenance, at the primary (and the mirror).
    let locations = if mirrored { 2 } else { 1 };
    assert_eq!(verifications, 6 * locations, "{md}");
    assert_eq!(
        commands
            .iter()
            .filter(|c| c.contains("--new-bundle-format"))
            .count(),
        if format == "bundle" { 3 * locations } else { 0 },
        "{md}"
    );
    let shell = Shell::new(Some(&si));
    for line in &commands {
        let line = with_digests(line, &released.index, &released.platform);
        run_ok(&mut shell.command(Some(&si), &line));
    }

    // The same commands for a policy the release does not satisfy fail, every one.
    let partial = r"octo-org/octo-repo/\.github/workflows/image-signing\.yml@refs/tags/v1\.2\.0";
    for (name, verify) in [
        (
            "another repository's identity",
            policy(
                &openmed_regexp("octo-org/other-repo"),
                GITHUB_ISSUER,
                &si.repository,
            ),
        ),
        // Matched anywhere, this would pass; wharf matches in full, and so must cosign.
        (
            "a partial identity",
            policy(partial, GITHUB_ISSUER, &si.repository),
        ),
        (
            "another issuer",
            policy(&right, "https://gitlab.com", &si.repository),
        ),
        (
            "another workflow repository",
            policy(&right, GITHUB_ISSUER, "octo-org/evil"),
        ),
    ] {
        let wrong = config_with(&verify, "wrong.toml");
        let md = guide(&wrong, tmp.path(), "wrong.md");
        let primary = md.split("\n## ").nth(1).unwrap();
        let lines: Vec<String> = guide_commands(primary)
            .into_iter()
            .filter(|c| is_verification(c))
            .collect();
        assert_eq!(lines.len(), 6, "{name}: {primary}");
        for line in lines {
            let line = with_digests(&line, &released.index, &released.platform);
            let out = run_fail(&mut shell.command(Some(&si), &line));
            assert!(!stderr_of(&out).is_empty(), "{name}: {line}");
        }
    }
}

#[test]
fn keyless_guide_commands_check_a_release_in_cosign_2_format() {
    keyless_guide_commands_check_the_release("legacy", true);
}

#[test]
fn keyless_guide_commands_check_a_release_of_bundles_only() {
    keyless_guide_commands_check_the_release("bundle", true);
}

/// Both formats: every envelope is logged once, and each scheme's commands pass on the
/// primary and on the mirror.
#[test]
fn keyless_guide_commands_check_a_release_in_both_formats() {
    keyless_guide_commands_check_the_release("both", true);
}

/// A key-signed release without a transparency log, mirrored: the guide publishes the key's
/// fingerprint and where to fetch it; fetching and checking it as the guide says gives that
/// fingerprint, and its commands pass. The same guide for another key fails.
#[test]
fn key_guide_commands_fetch_the_key_and_check_the_release() {
    let a = Registry::start();
    let b = Registry::start();
    let tmp = tempdir();
    let layout = example_layout(&tmp.path().join("layout"));
    let key = common::keys::wharf_key(tmp.path(), "release", "pw-4c1e");
    let published = tmp.path().join("site");
    fs::create_dir(&published).unwrap();
    fs::copy(&key.public, published.join("release.pub")).unwrap();
    let config = {
        let text = format!(
            "layout = {}\nrepository = {}\ninsecure_registries = [{}, {}]\n\n[signing]\nkey = {}\ntlog_upload = false\n\n[attestations]\nsbom = \"generate\"\n\n[verify]\nkey = {}\nkey_url = {}\ninsecure_ignore_tlog = true\n\n[[mirror]]\ndestination = {}\n",
            q(&format!("{}:v1", layout.display())),
            q(&a.repo("acme/app")),
            q(a.addr()),
            q(b.addr()),
            q(key.private()),
            q(key.public()),
            q(&format!("file://{}", published.join("release.pub").display())),
            q(&b.repo("acme/app")),
        );
        let path = tmp.path().join("wharf.toml");
        fs::write(&path, text).unwrap();
        path
    };
    let released = release(&config, &[("WHARF_PASSWORD", "pw-4c1e")]);
    let md = {
        let out = tmp.path().join("verifying.md");
        run_ok(
            wharf_clean()
                .args(["docs", "verify", "--config"])
                .arg(&config)
                .arg("-o")
                .arg(&out)
                .env("WHARF_PASSWORD", "pw-4c1e"),
        );
        fs::read_to_string(out).unwrap()
    };
    let fingerprint = stdout_of(&run_ok(wharf().args(["key", "fingerprint", key.public()])))
        .trim()
        .to_string();
    assert!(md.contains(&format!("\n    {fingerprint}\n")), "{md}");

    let shell = Shell::new(None);
    let commands = guide_commands(&md);
    assert!(commands[0].starts_with("curl "), "{md}");
    assert_eq!(
        commands.iter().filter(|c| is_verification(c)).count(),
        8,
        "{md}"
    );
    for line in &commands {
        let line = with_digests(line, &released.index, &released.platform);
        let out = run_ok(&mut shell.command(None, &line));
        if line.starts_with("wharf key fingerprint") {
            assert_eq!(stdout_of(&out).trim(), fingerprint, "the guide's own check");
        }
    }

    // Someone else's key, published the same way: the fingerprint differs and every
    // verification fails.
    let other = common::keys::wharf_key(tmp.path(), "other", "pw-4c1e");
    let elsewhere = tmp.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    fs::copy(&other.public, elsewhere.join("release.pub")).unwrap();
    let shell = Shell::new(None);
    for line in guide_commands(&md) {
        // The guide of the release, run where the key fetched is another one.
        let line = with_digests(&line, &released.index, &released.platform)
            .replace(published.to_str().unwrap(), elsewhere.to_str().unwrap());
        if is_verification(&line) {
            run_fail(&mut shell.command(None, &line));
        } else {
            let out = run_ok(&mut shell.command(None, &line));
            if line.starts_with("wharf key fingerprint") {
                assert_ne!(stdout_of(&out).trim(), fingerprint);
            }
        }
    }
}
