//! A loopback Sigstore for end-to-end tests: `tests/sigstore-stand-in/server.js` (Fulcio,
//! Rekor v1 and GitHub Actions' OIDC token endpoint in one node process, see its README).
//!
//! [`SigstoreStandIn::start`] runs it on a port the OS picks, with `--exit-with-stdin` (the
//! harness holds the stdin pipe, so the server cannot outlive a test process that dies), waits
//! for its state file and exposes what it says: URLs, the identity a default token yields and
//! the trust files (`trusted_root.json` for wharf, PEM files for cosign's `SIGSTORE_*`
//! variables). Each instance has its own keys, CA and log. Dropping it kills the server; if the
//! test is panicking, the tail of its request log is printed first.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::{http_request, require_tool, tempdir, wharf, TempDir};

/// How long the stand-in may take to write its state file (it usually takes ~1.2 s).
const STATE_TIMEOUT: Duration = Duration::from_secs(15);

/// The OIDC issuer of GitHub Actions tokens (and of the stand-in's).
pub const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";

/// A regexp matching the identity of the stand-in's default tokens.
pub const OCTO_IDENTITY_REGEXP: &str = "https://github.com/octo-org/octo-repo/.*";

/// Host variables that would change how wharf, cosign or sigstore-python find tokens and trust.
pub const SIGSTORE_ENV: &[&str] = &[
    "SIGSTORE_ID_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "WHARF_TRUSTED_ROOT",
    "WHARF_REKOR_URL",
    "WHARF_FULCIO_URL",
    "WHARF_BUNDLE_FORMAT",
    "SIGSTORE_ROOT_FILE",
    "SIGSTORE_CT_LOG_PUBLIC_KEY_FILE",
    "SIGSTORE_REKOR_PUBLIC_KEY",
];

/// `wharf` without the host's Sigstore variables.
pub fn wharf_clean() -> Command {
    let mut cmd = wharf();
    for var in SIGSTORE_ENV {
        cmd.env_remove(var);
    }
    cmd
}

/// `cosign` without the host's Sigstore variables and password.
pub fn cosign_plain() -> Command {
    let mut cmd = Command::new(require_tool("cosign"));
    for var in SIGSTORE_ENV {
        cmd.env_remove(var);
    }
    cmd.env_remove("COSIGN_PASSWORD");
    cmd
}

/// `ACTIONS_ID_TOKEN_REQUEST_TOKEN` the stand-in's OIDC endpoint requires by default.
pub const REQUEST_TOKEN: &str = "test-request-token";

/// The stand-in's directory in the source tree.
pub fn standin_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sigstore-stand-in")
}

/// A running stand-in and the contents of its state file.
pub struct SigstoreStandIn {
    child: Child,
    /// Held open: the server exits when it closes (`--exit-with-stdin`).
    stdin: Option<ChildStdin>,
    dir: TempDir,
    /// `http://127.0.0.1:PORT`; Fulcio and Rekor are served there too.
    pub url: String,
    pub fulcio_url: String,
    pub rekor_url: String,
    /// What `ACTIONS_ID_TOKEN_REQUEST_URL` holds in a workflow (already has a query string).
    pub oidc_url: String,
    /// What `ACTIONS_ID_TOKEN_REQUEST_TOKEN` must hold.
    pub oidc_request_token: String,
    /// `https://token.actions.githubusercontent.com`.
    pub oidc_issuer: String,
    pub oidc_audience: String,
    /// The default `repository` claim, `octo-org/octo-repo`.
    pub repository: String,
    /// The certificate SAN a default token yields.
    pub identity: String,
    /// Sigstore `TrustedRoot` JSON (for `wharf --trusted-root`).
    pub trusted_root: PathBuf,
    pub trust_config: PathBuf,
    /// Root then intermediate (cosign's `SIGSTORE_ROOT_FILE`).
    pub fulcio_root_pem: PathBuf,
    /// Intermediate then root.
    pub fulcio_chain_pem: PathBuf,
    /// cosign's `SIGSTORE_CT_LOG_PUBLIC_KEY_FILE`.
    pub ctlog_public_key_pem: PathBuf,
    /// cosign's `SIGSTORE_REKOR_PUBLIC_KEY`.
    pub rekor_public_key_pem: PathBuf,
    pub oidc_jwks: PathBuf,
    pub cert_lifetime_seconds: i64,
    /// The whole state file.
    pub state: serde_json::Value,
}

impl SigstoreStandIn {
    /// Starts a stand-in with default settings (certificates valid for 10 minutes).
    pub fn start() -> SigstoreStandIn {
        Self::start_with_args(&[])
    }

    /// Starts a stand-in whose certificates expire `seconds` after they are issued (negative:
    /// already expired when issued). See the stand-in README, "Expired certificates".
    pub fn start_expiring_certs_after(seconds: i64) -> SigstoreStandIn {
        Self::start_with_args(&["--expire-certs-after", &seconds.to_string()])
    }

    /// Starts a stand-in with extra command-line options (e.g. `--repository o/r`).
    pub fn start_with_args(extra: &[&str]) -> SigstoreStandIn {
        let node = super::find_tool("node").unwrap_or_else(|| {
            panic!(
                "node not found on PATH: run the tests through scripts/test.sh, which installs it"
            )
        });
        let src = standin_dir();
        if !src.join("node_modules").is_dir() {
            panic!(
                "{} is missing: run the tests through scripts/test.sh, which runs `npm ci --prefix tests/sigstore-stand-in`",
                src.join("node_modules").display()
            );
        }
        let dir = tempdir();
        let state_path = dir.path().join("state.json");
        let log_path = dir.path().join("stand-in.log");
        let log = File::create(&log_path).expect("create stand-in log");
        let mut child = Command::new(node)
            .arg(src.join("server.js"))
            .arg("--state")
            .arg(&state_path)
            .args(["--port", "0", "--exit-with-stdin"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn node tests/sigstore-stand-in/server.js");
        let stdin = child.stdin.take();

        let deadline = Instant::now() + STATE_TIMEOUT;
        let state = loop {
            // The state file is written atomically (temp file, then rename).
            if let Ok(bytes) = fs::read(&state_path) {
                break serde_json::from_slice::<serde_json::Value>(&bytes)
                    .unwrap_or_else(|e| panic!("stand-in state file is not JSON: {e}"));
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "sigstore stand-in exited at start-up ({status}); log:\n{}",
                    fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "sigstore stand-in wrote no state file in {STATE_TIMEOUT:?}; log:\n{}",
                    fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            thread::sleep(Duration::from_millis(25));
        };

        let text = |key: &str| -> String {
            state[key]
                .as_str()
                .unwrap_or_else(|| panic!("stand-in state has no string {key:?}: {state}"))
                .to_string()
        };
        let path = |key: &str| -> PathBuf {
            let p = PathBuf::from(text(key));
            assert!(
                p.is_file(),
                "stand-in state names {key} {}, which does not exist",
                p.display()
            );
            p
        };
        SigstoreStandIn {
            url: text("url"),
            fulcio_url: text("fulcio_url"),
            rekor_url: text("rekor_url"),
            oidc_url: text("oidc_url"),
            oidc_request_token: text("oidc_request_token"),
            oidc_issuer: text("oidc_issuer"),
            oidc_audience: text("oidc_audience"),
            repository: text("repository"),
            identity: text("identity"),
            trusted_root: path("trusted_root"),
            trust_config: path("trust_config"),
            fulcio_root_pem: path("fulcio_root_pem"),
            fulcio_chain_pem: path("fulcio_chain_pem"),
            ctlog_public_key_pem: path("ctlog_public_key_pem"),
            rekor_public_key_pem: path("rekor_public_key_pem"),
            oidc_jwks: path("oidc_jwks"),
            cert_lifetime_seconds: state["cert_lifetime_seconds"].as_i64().unwrap_or(600),
            state,
            child,
            stdin,
            dir,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        self.url
            .strip_prefix("http://")
            .expect("stand-in URL is http://")
            .trim_end_matches('/')
    }

    /// A fresh identity token (JWT) from the OIDC endpoint, audience `sigstore`.
    /// `extra_query` overrides claims, e.g. `"repository=evil/repo"` or `"&exp=-10"` (a
    /// leading `&` is optional; `""` for a default token).
    pub fn token(&self, extra_query: &str) -> String {
        let mut path = format!("/oidc/token?audience={}", self.oidc_audience);
        let extra = extra_query.trim_start_matches(['&', '?']);
        if !extra.is_empty() {
            path.push('&');
            path.push_str(extra);
        }
        let auth = format!("Bearer {}", self.oidc_request_token);
        let resp = http_request(self.addr(), "GET", &path, &[("Authorization", &auth)], b"")
            .unwrap_or_else(|e| panic!("GET {}{path}: {e}", self.url));
        assert_eq!(resp.status, 200, "GET {}{path}: {}", self.url, resp.text());
        let answer: serde_json::Value =
            serde_json::from_slice(&resp.body).expect("token answer is JSON");
        answer["value"]
            .as_str()
            .unwrap_or_else(|| panic!("token answer without value: {answer}"))
            .to_string()
    }

    /// Points cosign at this stand-in's trust material: `SIGSTORE_ROOT_FILE`,
    /// `SIGSTORE_CT_LOG_PUBLIC_KEY_FILE`, `SIGSTORE_REKOR_PUBLIC_KEY`, and `TUF_ROOT` set to an
    /// empty directory of this instance (so the host's TUF cache is never used). Removes
    /// `SIGSTORE_ID_TOKEN` and GitHub's ambient token variables, so only explicit tokens count.
    pub fn cosign_env(&self, cmd: &mut Command) {
        let tuf = self.dir.path().join("tuf");
        fs::create_dir_all(&tuf).expect("create TUF_ROOT");
        cmd.env("SIGSTORE_ROOT_FILE", &self.fulcio_root_pem)
            .env(
                "SIGSTORE_CT_LOG_PUBLIC_KEY_FILE",
                &self.ctlog_public_key_pem,
            )
            .env("SIGSTORE_REKOR_PUBLIC_KEY", &self.rekor_public_key_pem)
            .env("TUF_ROOT", &tuf)
            .env_remove("SIGSTORE_ID_TOKEN")
            .env_remove("ACTIONS_ID_TOKEN_REQUEST_URL")
            .env_remove("ACTIONS_ID_TOKEN_REQUEST_TOKEN");
    }

    /// `cosign` (without the host's Sigstore variables) pointed at this stand-in's trust
    /// material ([`Self::cosign_env`]).
    pub fn cosign(&self) -> Command {
        let mut cmd = cosign_plain();
        self.cosign_env(&mut cmd);
        cmd
    }

    /// `--fulcio-url URL --rekor-url URL --trusted-root FILE`, for `wharf sign`.
    pub fn wharf_args(&self) -> Vec<String> {
        vec![
            "--fulcio-url".into(),
            self.fulcio_url.clone(),
            "--rekor-url".into(),
            self.rekor_url.clone(),
            "--trusted-root".into(),
            self.trusted_root.display().to_string(),
        ]
    }

    /// `--rekor-url URL --trusted-root FILE`, for `wharf verify` (which has no Fulcio flag).
    pub fn wharf_verify_args(&self) -> Vec<String> {
        vec![
            "--rekor-url".into(),
            self.rekor_url.clone(),
            "--trusted-root".into(),
            self.trusted_root.display().to_string(),
        ]
    }

    /// `python3 -m sigstore --trust-config … verify identity --offline --bundle B
    /// --cert-identity ID --cert-oidc-issuer GITHUB FILE`: sigstore-python checking a bundle
    /// against this stand-in's trust alone.
    pub fn sigstore_python_verify(&self, bundle: &Path, identity: &str, file: &Path) -> Command {
        let mut cmd = self.sigstore_python();
        cmd.args(["verify", "identity", "--offline", "--bundle"])
            .arg(bundle)
            .args([
                "--cert-identity",
                identity,
                "--cert-oidc-issuer",
                GITHUB_ISSUER,
            ])
            .arg(file);
        cmd
    }

    /// `wharf VERB --trusted-root … --certificate-identity-regexp OCTO --certificate-oidc-issuer
    /// GITHUB --bundle B ARTIFACT` (VERB: `verify-blob` or `verify-blob-attestation`): a file
    /// or `sha256:` digest checked against this stand-in's trust and default identity.
    pub fn wharf_verify_blob(
        &self,
        verb: &str,
        bundle: &Path,
        artifact: impl AsRef<std::ffi::OsStr>,
    ) -> Command {
        let mut cmd = wharf_clean();
        cmd.arg(verb)
            .arg("--trusted-root")
            .arg(&self.trusted_root)
            .args(["--certificate-identity-regexp", OCTO_IDENTITY_REGEXP])
            .args(["--certificate-oidc-issuer", GITHUB_ISSUER])
            .arg("--bundle")
            .arg(bundle)
            .arg(artifact);
        cmd
    }

    /// `python3 -m sigstore --trust-config …` (sigstore-python with this stand-in's trust
    /// and services), without the host's Sigstore variables.
    pub fn sigstore_python(&self) -> Command {
        let mut cmd = Command::new(require_tool("python3"));
        for var in SIGSTORE_ENV {
            cmd.env_remove(var);
        }
        cmd.args(["-m", "sigstore", "--trust-config"])
            .arg(&self.trust_config);
        cmd
    }

    /// Makes the first entry of this stand-in's fresh transparency log (a legacy signature on
    /// a throwaway image of `reg`), so no bundle under test is logged at index 0.
    ///
    /// cosign 2.5 (sigstore-go) refuses any bundle whose log entry is at index 0 of a
    /// one-entry tree ("validation error: nil value in transaction log entry": the zero log
    /// index and the empty proof are absent from protobuf JSON), its own bundles included.
    /// That cannot happen on a real log; on the stand-in's fresh log it does, whoever wrote
    /// the bundle.
    pub fn burn_log_index_zero(&self, reg: &super::Registry) {
        let warmup = super::push_to(reg, "log-warmup", &["linux/amd64"], 999);
        super::run_ok(
            super::wharf()
                .args([
                    "sign",
                    "--allow-insecure-registry",
                    "--bundle-format",
                    "legacy",
                ])
                .args(self.wharf_args())
                .args(["--identity-token", &self.token("")])
                .arg(warmup.index()),
        );
    }

    /// This stand-in's trusted root without its CT log (a private Sigstore without
    /// certificate transparency), written beside it.
    pub fn trusted_root_without_ct_logs(&self) -> PathBuf {
        let mut root: serde_json::Value =
            serde_json::from_slice(&fs::read(&self.trusted_root).unwrap()).unwrap();
        root["ctlogs"] = serde_json::Value::Array(vec![]);
        let path = self.dir.path().join("no-ct-trusted-root.json");
        fs::write(&path, serde_json::to_vec(&root).unwrap()).unwrap();
        path
    }

    /// How many entries the log holds (`GET /api/v1/log`).
    pub fn tree_size(&self) -> u64 {
        let resp = super::http_request(self.addr(), "GET", "/api/v1/log", &[], b"").unwrap();
        let info: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        info["treeSize"].as_u64().expect("treeSize")
    }

    /// The log's entry at `index`, as Rekor answers it: `{uuid: entry}`.
    pub fn log_entry(&self, index: u64) -> serde_json::Value {
        let path = format!("/api/v1/log/entries?logIndex={index}");
        let resp = super::http_request(self.addr(), "GET", &path, &[], b"").unwrap();
        assert_eq!(resp.status, 200, "{}", resp.text());
        serde_json::from_slice(&resp.body).unwrap()
    }

    /// A directory that lives as long as this stand-in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The stand-in's request log so far (one line per request, 4xx reasons included).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("stand-in.log")).unwrap_or_default()
    }
}

impl Drop for SigstoreStandIn {
    fn drop(&mut self) {
        if thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            eprintln!(
                "--- sigstore stand-in {} log, last {} lines ---\n{}",
                self.url,
                tail.len(),
                tail.join("\n")
            );
        }
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
