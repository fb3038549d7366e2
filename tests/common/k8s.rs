//! Kubernetes documents in tests: YAML parsed by an independent parser (PyYAML), and objects
//! validated against the admission controllers' vendored CRD schemas (`tests/data/crds`) with
//! unknown fields rejected, as the API server's structural schemas do.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use super::{require_tool, stderr_of};

/// Parses YAML (every document) with PyYAML's `safe_load_all`; the documents as JSON.
pub fn yaml_documents(text: &str) -> Vec<Value> {
    yaml_documents_of_each(&[text]).remove(0)
}

/// [`yaml_documents`] for several texts, in one Python process.
pub fn yaml_documents_of_each(texts: &[&str]) -> Vec<Vec<Value>> {
    let input = serde_json::to_vec(texts).unwrap();
    let out = python(
        &[
            "-c",
            "import json, sys, yaml\n\
             json.dump([list(yaml.safe_load_all(t)) for t in json.load(sys.stdin)], sys.stdout, default=str)",
        ],
        &input,
    );
    assert!(
        out.status.success(),
        "not YAML: {}\n--- texts ---\n{}",
        stderr_of(&out),
        texts.join("\n--- next ---\n")
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The `images[].glob` of a policy-controller `ClusterImagePolicy`.
pub fn cluster_image_policy_globs(doc: &Value) -> Vec<&str> {
    doc["spec"]["images"]
        .as_array()
        .expect("spec.images")
        .iter()
        .map(|i| i["glob"].as_str().expect("glob"))
        .collect()
}

/// The first rule's first `verifyImages[].imageReferences` of a Kyverno `ClusterPolicy`.
pub fn kyverno_image_references(doc: &Value) -> Vec<&str> {
    doc["spec"]["rules"][0]["verifyImages"][0]["imageReferences"]
        .as_array()
        .expect("imageReferences")
        .iter()
        .map(|r| r.as_str().expect("image reference"))
        .collect()
}

/// An admission controller's CRD, vendored with its origin in `tests/data/crds/README.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crd {
    /// Sigstore policy-controller `ClusterImagePolicy`, version `v1beta1`.
    ClusterImagePolicy,
    /// Kyverno `ClusterPolicy`, version `v1`.
    KyvernoClusterPolicy,
}

impl Crd {
    fn file_and_version(self) -> (PathBuf, &'static str) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/crds");
        match self {
            Crd::ClusterImagePolicy => (
                dir.join("policy-controller-clusterimagepolicy.yaml"),
                "v1beta1",
            ),
            Crd::KyvernoClusterPolicy => (dir.join("kyverno-clusterpolicies.yaml"), "v1"),
        }
    }
}

/// Validates each `(name, object)` against `crd`'s schema; the `(name, error)` of every object
/// that does not validate. One Python process for all of them (the Kyverno CRD is 1.4 MB).
pub fn crd_violations(crd: Crd, objects: &[(String, Value)]) -> Vec<(String, String)> {
    let (file, version) = crd.file_and_version();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/crd_schema.py");
    let input = serde_json::to_vec(objects).unwrap();
    let out = python(
        &[script.to_str().unwrap(), file.to_str().unwrap(), version],
        &input,
    );
    assert!(
        out.status.success(),
        "crd_schema.py failed: {}",
        stderr_of(&out)
    );
    serde_json::from_slice(&out.stdout).expect("crd_schema.py prints JSON")
}

/// Runs python3 with `args`, `stdin` on its standard input; PyYAML and jsonschema must be
/// installed (scripts/install-test-deps.sh does).
fn python(args: &[&str], stdin: &[u8]) -> std::process::Output {
    let python = require_tool("python3");
    let probe = Command::new(&python)
        .args(["-c", "import yaml, jsonschema"])
        .output()
        .unwrap();
    assert!(
        probe.status.success(),
        "PyYAML or jsonschema is missing (scripts/install-test-deps.sh installs them)"
    );
    let mut child = Command::new(&python)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Written from another thread: the child may fill its stdout pipe before reading all of
    // its input.
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.to_vec();
    let writer = std::thread::spawn(move || pipe.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    out
}
