//! Every example in `--help` runs: each subcommand's long help is read from the binary, the
//! command lines under "Examples:" are taken out of it, their placeholders are pointed at
//! test registries, a layout, keys and files made here, and each runs in bash and must exit 0.
//!
//! Placeholders: `ghcr.io/acme/app`, `docker.io/acme/app` and `localhost:5000/app` are one
//! source registry's `acme/app`; the ECR and `registry.internal` names are a second registry
//! (the mirror destinations); `@sha256:...` is the pushed image's digest; `./out` is a
//! two-platform layout with real layers (refs `v1` and `v1.2.0`); system paths (`/usr/...`, `~`, zsh's
//! `$fpath`) are directories of the test. Examples that say `# keyless, in GitHub Actions`,
//! like every keyless one, run with the Sigstore stand-in as GitHub's token service, Fulcio
//! and Rekor (`ACTIONS_ID_TOKEN_REQUEST_*`, `WHARF_FULCIO_URL`, `WHARF_REKOR_URL`,
//! `WHARF_TRUSTED_ROOT`). Registry commands get `--allow-insecure-registry` (the test
//! registries speak plain HTTP). The only examples not run are those whose comment says
//! `# in PowerShell` (not a bash command line).
//!
//! Examples run in the order `--help` shows them, subcommands in the order `wharf --help`
//! lists them, so push comes before sign and sign before verify, as a reader would run them.

mod common;

use common::keys::wharf_key;
use common::standin::SigstoreStandIn;
use common::*;
use std::fs;
use std::path::Path;
use std::process::Command;

const PASSWORD: &str = "help-examples-7a0e";
/// What marks an example that is not a bash command line.
const NOT_BASH: &str = "# in PowerShell";

/// Every subcommand, as the words after `wharf`, in the order `--help` lists them.
fn subcommands(cmd: &clap::Command, path: &[String], out: &mut Vec<Vec<String>>) {
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        let mut p = path.to_vec();
        p.push(sub.get_name().to_string());
        out.push(p.clone());
        subcommands(sub, &p, out);
    }
}

/// The command lines under "Examples:" in a long help, continuation lines joined.
fn examples(help: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut current = String::new();
    for line in help
        .lines()
        .skip_while(|l| l.trim() != "Examples:")
        .skip(1)
        .take_while(|l| l.starts_with("  ") && !l.trim().is_empty())
    {
        let line = line.trim();
        match line.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head.trim_end());
                current.push(' ');
            }
            None => {
                current.push_str(line);
                found.push(std::mem::take(&mut current));
            }
        }
    }
    assert!(
        current.is_empty(),
        "an example ends in a continuation: {current}"
    );
    found
}

/// The example with its comment removed and its placeholders pointed at this test's things.
fn substitute(example: &str, src: &str, dst: &str, digest: &str) -> String {
    let command = match example.find(" #") {
        Some(at) => &example[..at],
        None => example,
    };
    let mut command = command.trim().to_string();
    for (placeholder, value) in [
        ("ghcr.io/acme/app", format!("{src}/acme/app")),
        ("docker.io/acme/app", format!("{src}/acme/app")),
        ("localhost:5000/app", format!("{src}/acme/app")),
        (
            "123456789.dkr.ecr.eu-west-1.amazonaws.com/app",
            format!("{dst}/ecr/app"),
        ),
        ("registry.internal/acme/app", format!("{dst}/acme/app")),
        ("@sha256:...", format!("@{digest}")),
        (" /usr/", " ./usr/".to_string()),
        ("\"${fpath[1]}/_wharf\"", "zsh/_wharf".to_string()),
    ] {
        command = command.replace(placeholder, &value);
    }
    let words: Vec<String> = command
        .split(' ')
        .map(|w| match w {
            "wharf" => "wharf --allow-insecure-registry".to_string(),
            "(wharf" => "(wharf --allow-insecure-registry".to_string(),
            _ => w.to_string(),
        })
        .collect();
    words.join(" ")
}

/// A CycloneDX document naming one package.
fn cyclonedx(name: &str) -> String {
    serde_json::json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "components": [{"type": "library", "name": name, "version": "1.0"}]
    })
    .to_string()
}

/// An SLSA provenance v1 predicate.
fn provenance() -> String {
    serde_json::json!({
        "buildDefinition": {
            "buildType": "https://actions.github.io/buildtypes/workflow/v1",
            "externalParameters": {"workflow": {"ref": "refs/tags/v1.2.0", "repository": "https://github.com/acme/app", "path": ".github/workflows/release.yml"}},
            "internalParameters": {},
            "resolvedDependencies": []
        },
        "runDetails": {
            "builder": {"id": "https://github.com/actions/runner/github-hosted"},
            "metadata": {"invocationId": "https://github.com/acme/app/actions/runs/1/attempts/1"}
        }
    })
    .to_string()
}

/// Everything the examples name, in `work`: the layout, its archive, keys, predicates, blobs,
/// a release configuration, and the directories system paths stand for.
fn prepare(work: &Path, src: &str) -> String {
    // Real tar+gzip layers (linux/amd64 and linux/arm64), so SBOMs can be generated.
    example_layout(&work.join("out"));
    // The same image also under the name v1.2.0, as a build tagging a release writes it.
    let index_path = work.join("out/index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&fs::read(&index_path).unwrap()).unwrap();
    let mut entry = index["manifests"][0].clone();
    entry["annotations"][REF_NAME_ANNOTATION] = "v1.2.0".into();
    index["manifests"].as_array_mut().unwrap().push(entry);
    fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    run_ok(
        Command::new("tar")
            .args(["-cf", "image.tar", "-C", "out", "."])
            .current_dir(work),
    );

    let key = wharf_key(work, "cosign", PASSWORD);
    fs::create_dir_all(work.join("keys")).unwrap();
    for (from, to) in [
        (key.private(), "release.key"),
        (key.public(), "release.pub"),
        (key.public(), "keys/release.pub"),
    ] {
        fs::copy(from, work.join(to)).unwrap();
    }
    fs::write(work.join("sbom.cdx.json"), cyclonedx("zlib")).unwrap();
    fs::write(work.join("sbom-arm64.cdx.json"), cyclonedx("zlib-arm64")).unwrap();
    fs::write(work.join("provenance.json"), provenance()).unwrap();
    fs::write(work.join("wharf.tar.gz"), b"a release archive\n").unwrap();
    fs::write(work.join("app"), b"a binary\n").unwrap();
    fs::write(
        work.join("wharf.toml"),
        format!(
            r#"layout = "out:v1"
repository = "{src}/acme/release"
tags = ["v1"]

[signing]
key = "cosign.key"
tlog_upload = false
bundle_format = "both"

[attestations]
sbom = "generate"
provenance = false

[verify]
key = "cosign.pub"
insecure_ignore_tlog = true

[[mirror]]
destination = "oci:release-mirror"
"#
        ),
    )
    .unwrap();
    for dir in [
        "usr/share/bash-completion/completions",
        "usr/local/share/man/man1",
        "home/.config/fish/completions",
        "zsh",
    ] {
        fs::create_dir_all(work.join(dir)).unwrap();
    }
    index["manifests"][0]["digest"]
        .as_str()
        .expect("index.json digest")
        .to_string()
}

#[test]
fn every_help_example_runs() {
    let src = Registry::start();
    let dst = Registry::start();
    let si = SigstoreStandIn::start_with_args(&["--repository", "acme/app"]);
    let dir = tempdir();
    let work = dir.path();
    let digest = prepare(work, src.addr());
    let bin = Path::new(env!("CARGO_BIN_EXE_wharf")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let signing_key = fs::read_to_string(work.join("cosign.key")).unwrap();

    let mut paths = Vec::new();
    subcommands(&wharf::cli::command(), &[], &mut paths);
    let (mut ran, mut skipped, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    let mut sbom_attached = false;
    for words in &paths {
        let help = stdout_of(&run_ok(wharf_clean().args(words).arg("--help")));
        for example in examples(&help) {
            assert!(
                example.starts_with("wharf ")
                    || example.contains(" wharf ")
                    || example.contains("(wharf "),
                "`wharf {}` example does not run wharf: {example}",
                words.join(" ")
            );
            if example.contains(NOT_BASH) {
                skipped.push(example);
                continue;
            }
            if words.first().map(String::as_str) == Some("download") && !sbom_attached {
                // `download sbom` reads what `cosign attach sbom` attaches (wharf attests its
                // SBOMs instead): cosign attaches one, as a user's older pipeline did.
                let image = format!("{}/acme/app@{digest}", src.addr());
                cosign_attach_sbom(cosign(), &work.join("sbom.cdx.json"), &image);
                sbom_attached = true;
            }
            let command = substitute(&example, src.addr(), dst.addr(), &digest);
            for leftover in [
                "...",
                "ghcr.io",
                "docker.io",
                "amazonaws.com",
                "registry.internal",
            ] {
                assert!(
                    !command.contains(leftover),
                    "`wharf {}` example has a placeholder the test does not know ({leftover}): {example}",
                    words.join(" ")
                );
            }
            let mut bash = Command::new("bash");
            clean(&mut bash);
            for var in HOST_ENV_REMOVED {
                bash.env_remove(var);
            }
            bash.args(["-c", &format!("set -euo pipefail\n{command}")])
                .current_dir(work)
                .env("PATH", &path)
                .env("HOME", work.join("home"))
                .env("NO_COLOR", "1")
                .env("WHARF_TUF_URL", UNREACHABLE_TUF_URL)
                .env("WHARF_PASSWORD", PASSWORD)
                .env("SIGNING_KEY", &signing_key)
                .env("SRC_TOKEN", "source-token")
                .env("DST_TOKEN", "destination-token")
                .env("WHARF_FULCIO_URL", &si.fulcio_url)
                .env("WHARF_REKOR_URL", &si.rekor_url)
                .env("WHARF_TRUSTED_ROOT", &si.trusted_root)
                .env("ACTIONS_ID_TOKEN_REQUEST_URL", &si.oidc_url)
                .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", &si.oidc_request_token);
            let out = bash.output().expect("run bash");
            if out.status.success() {
                ran.push(example);
            } else {
                failed.push(format!(
                    "{example}\n  ran: {command}\n  exit: {}\n  stderr: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
    }
    eprintln!(
        "help examples: {} ran, {} skipped ({NOT_BASH}), {} failed",
        ran.len(),
        skipped.len(),
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "failing --help examples:\n{}",
        failed.join("\n\n")
    );
    assert_eq!(
        skipped,
        ["wharf completion powershell | Out-String | Invoke-Expression   # in PowerShell"]
    );
    assert!(ran.len() >= 35, "only {} examples ran", ran.len());
}
