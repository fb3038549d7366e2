//! Shared end-to-end test harness for wharf's integration tests.
//!
//! Each integration test file pulls this in with `mod common;` and uses a subset of:
//!
//! - [`Registry`]: a real CNCF distribution registry (`docker-registry serve`) on a free
//!   loopback port, with its own storage, optional htpasswd basic auth, an access log that
//!   can be counted ([`Registry::request_count`], [`Registry::requests_since`]) and a few
//!   read helpers that talk to it without going through wharf.
//! - process helpers: [`wharf`], [`require_tool`], [`run_ok`], [`run_fail`].
//! - an OCI image layout generator ([`LayoutSpec`], [`make_layout`]) for the tests' input
//!   images, plus [`corrupt_blob`] / [`remove_blob`] to damage them.
//! - a tiny HTTP/1.1 client over `std::net::TcpStream` ([`http_request`]).
#![allow(dead_code)]

pub mod fake_registry;
pub mod hostile;
pub mod k8s;
pub mod keys;
pub mod proxy;
pub mod standin;
pub mod tuf;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

pub use tempfile::TempDir;

/// A fresh temporary directory, removed when the returned guard is dropped.
pub fn tempdir() -> TempDir {
    tempfile::Builder::new()
        .prefix("wharf-test-")
        .tempdir()
        .expect("create temp dir")
}

// ---------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------

/// Host environment variables that would change wharf's behaviour; [`wharf`] removes them
/// so a developer's shell or a CI runner cannot leak into a test.
pub const HOST_ENV_REMOVED: &[&str] = &[
    "GITHUB_OUTPUT",
    "GITHUB_STEP_SUMMARY",
    "GITHUB_ACTIONS",
    "DOCKER_CONFIG",
    "REGISTRY_AUTH_FILE",
    "WHARF_PASSWORD",
    "COSIGN_PASSWORD",
    "COSIGN_REPOSITORY",
    "WHARF_TRUSTED_ROOT",
    "WHARF_TUF_ROOT",
];

/// Where [`wharf`] points the TUF repository of the Sigstore trust root: a loopback port
/// nothing listens on, so no test ever reaches the public-good repository on the internet
/// (commands then fall back to the built-in root with a warning, as offline).
pub const UNREACHABLE_TUF_URL: &str = "http://127.0.0.1:1";

/// A `Command` for the `wharf` binary under test, with `NO_COLOR=1`, the host variables
/// in [`HOST_ENV_REMOVED`] removed and the TUF repository at [`UNREACHABLE_TUF_URL`].
pub fn wharf() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wharf"));
    cmd.env("NO_COLOR", "1");
    cmd.env("WHARF_TUF_URL", UNREACHABLE_TUF_URL);
    for var in HOST_ENV_REMOVED {
        cmd.env_remove(var);
    }
    cmd
}

/// Host variables that would change how wharf or cosign find tokens, trust roots, passwords,
/// output or the example's directory; [`clean`] removes them.
pub const HOST_TOOL_ENV: &[&str] = &[
    "SIGSTORE_ID_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "SIGSTORE_ROOT_FILE",
    "SIGSTORE_CT_LOG_PUBLIC_KEY_FILE",
    "SIGSTORE_REKOR_PUBLIC_KEY",
    "COSIGN_PASSWORD",
    "COSIGN_REPOSITORY",
    "WHARF_OUTPUT",
    "WHARF_EXAMPLE_OUT",
    "WHARF_TRUSTED_ROOT",
    "WHARF_REKOR_URL",
    "WHARF_FULCIO_URL",
    "WHARF_BUNDLE_FORMAT",
];

/// Removes [`HOST_TOOL_ENV`] and any `WHARF_CFG_*` of the host from `cmd` (wharf, cosign, or a
/// shell running them).
pub fn clean(cmd: &mut Command) -> &mut Command {
    for var in HOST_TOOL_ENV {
        cmd.env_remove(var);
    }
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("WHARF_CFG_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// [`wharf`], [`clean`]ed.
pub fn wharf_clean() -> Command {
    let mut cmd = wharf();
    clean(&mut cmd);
    cmd
}

/// A TOML string (JSON's escapes, `\"` `\\` `\n` `\uXXXX`, are TOML's too).
pub fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// The executable `name` found on `PATH`, if any.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The executable `name` on `PATH`; panics (failing the test, never skipping it) when the
/// tool is missing.
pub fn require_tool(name: &str) -> PathBuf {
    find_tool(name).unwrap_or_else(|| {
        panic!("{name} not found on PATH: run the tests through scripts/test.sh, which installs it")
    })
}

/// Runs `cmd` to completion (stdin is closed) and returns its output; panics with the command
/// line, exit status, stdout and stderr unless it succeeded.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    if !out.status.success() {
        panic!("command failed\n{}", describe_run(cmd, &out));
    }
    out
}

/// Runs `cmd` to completion (stdin is closed) and returns its output; panics with the command
/// line, stdout and stderr if it unexpectedly succeeded.
pub fn run_fail(cmd: &mut Command) -> Output {
    let out = run(cmd);
    if out.status.success() {
        panic!(
            "command succeeded but was expected to fail\n{}",
            describe_run(cmd, &out)
        );
    }
    out
}

/// Runs `cmd` with `input` on its standard input (then closed) and returns its output.
pub fn run_with_stdin(cmd: &mut Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the command");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input.as_bytes()).expect("write stdin");
    } // closed: EOF
    child.wait_with_output().expect("wait for the command")
}

/// `cosign`, [`clean`]ed (no host password, token or trust variables).
pub fn cosign() -> Command {
    let mut cmd = Command::new(require_tool("cosign"));
    clean(&mut cmd);
    cmd
}

/// `wharf verify --key PUBLIC --insecure-ignore-tlog IMAGE` on a loopback registry.
pub fn wharf_verify_key(public: &str, image: &str) -> Command {
    let mut cmd = wharf_clean();
    cmd.args([
        "verify",
        "--allow-insecure-registry",
        "--insecure-ignore-tlog",
        "--key",
        public,
        image,
    ]);
    cmd
}

/// Attaches the CycloneDX `sbom` to `image` with `cosign attach sbom` (`cosign` is
/// [`cosign`] or a stand-in's), as pipelines did before SBOMs were attested.
pub fn cosign_attach_sbom(mut cosign: Command, sbom: &Path, image: &str) {
    run_ok(
        cosign
            .args([
                "attach",
                "sbom",
                "--allow-insecure-registry",
                "--type",
                "cyclonedx",
                "--sbom",
            ])
            .arg(sbom)
            .arg(image),
    );
}

/// A path as the UTF-8 word a command line takes.
pub fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// The repository the tests run from.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Standard output of a finished command as JSON; panics with both outputs unless it is.
pub fn parse_json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\n--- stderr ---\n{}",
            stdout_of(out),
            stderr_of(out)
        )
    })
}

/// Asserts a failed command printed exactly one non-empty stderr line, starting
/// `wharf: error:`, and nothing on stdout; returns that line.
pub fn single_error_line(out: &Output) -> String {
    assert!(!out.status.success(), "expected failure");
    let stderr = stderr_of(out);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one stderr line, got:\n{stderr}\n--- stdout ---\n{}",
        stdout_of(out)
    );
    assert!(
        lines[0].starts_with("wharf: error:"),
        "stderr does not start with `wharf: error:`: {stderr}"
    );
    assert!(
        stdout_of(out).trim().is_empty(),
        "a failed command printed on stdout: {}",
        stdout_of(out)
    );
    eprintln!("error line: {}", lines[0]);
    lines[0].to_string()
}

/// The single `wharf: error:` line of a failed run; panics unless there is exactly one.
pub fn error_line(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected a failure, the command succeeded:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("wharf: error:"))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "expected exactly one `wharf: error:` line:\n{stderr}"
    );
    errors[0].to_string()
}

/// Lossy UTF-8 stdout of a finished command.
pub fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The in-toto statements in the DSSE envelopes a command printed, one envelope a line, the
/// statement base64 in `payload`: what `cosign verify-attestation`, `cosign download
/// attestation` and their wharf namesakes print. Lines that are not JSON objects (cosign's
/// progress notes) are skipped.
pub fn envelope_statements(out: &Output) -> Vec<serde_json::Value> {
    stdout_of(out)
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(|l| {
            let envelope: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("envelope line {l:?}: {e}"));
            assert_eq!(
                envelope["payloadType"], "application/vnd.in-toto+json",
                "{envelope}"
            );
            let payload = base64::engine::general_purpose::STANDARD
                .decode(envelope["payload"].as_str().expect("payload"))
                .expect("payload is base64");
            serde_json::from_slice(&payload).expect("payload is a JSON statement")
        })
        .collect()
}

/// Lossy UTF-8 stderr of a finished command.
pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", describe_command(cmd)))
}

/// `KEY=value program arg…` for the variables the test set explicitly, shell-quoted enough
/// to be pasted into a terminal.
fn describe_command(cmd: &Command) -> String {
    let envs = cmd
        .get_envs()
        .filter_map(|(k, v)| v.map(|v| format!("{}={}", k.to_string_lossy(), shell_quote(v))));
    let argv = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(shell_quote);
    envs.chain(argv).collect::<Vec<_>>().join(" ")
}

fn shell_quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c));
    if plain {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn describe_run(cmd: &Command, out: &Output) -> String {
    format!(
        "command: {}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        describe_command(cmd),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    )
}

// ---------------------------------------------------------------------------------------
// YAML (workflows, the action, admission policies)
// ---------------------------------------------------------------------------------------

/// Parses YAML (every document) with PyYAML's `safe_load_all`; the documents as JSON
/// ([`k8s::yaml_documents`]).
pub fn yaml(text: &str) -> Vec<serde_json::Value> {
    k8s::yaml_documents(text)
}

pub fn yaml_file(path: &Path) -> serde_json::Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut docs = yaml(&text);
    assert_eq!(docs.len(), 1, "{}: one YAML document", path.display());
    docs.remove(0)
}

// ---------------------------------------------------------------------------------------

/// A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it; another process may
/// still grab it before the caller binds, so callers should retry on "address in use").
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

// ---------------------------------------------------------------------------------------
// Tiny HTTP/1.1 client
// ---------------------------------------------------------------------------------------

/// User-Agent of every request the harness itself sends. The request counters of
/// [`Registry`] leave these requests out, so readiness polls and read helpers never
/// inflate the count of a command under test.
pub const HARNESS_USER_AGENT: &str = "wharf-test-harness/1";

/// A complete HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as lossy UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `Basic <base64(user:password)>`, the value of an `Authorization` header.
pub fn basic_auth(user: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

/// Sends one HTTP/1.1 request to `addr` ("host:port") with `Connection: close` and reads
/// the whole response (Content-Length, chunked, or until EOF). `path` includes any query.
/// `Host`, `User-Agent` ([`HARNESS_USER_AGENT`]) and `Content-Length` (for a non-empty body
/// or a PUT/POST/PATCH) are added automatically.
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<HttpResponse> {
    let sock = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address"))?;
    let mut stream = TcpStream::connect_timeout(&sock, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.set_write_timeout(Some(Duration::from_secs(60)))?;

    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: {HARNESS_USER_AGENT}\r\nConnection: close\r\n"
    );
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    if !body.is_empty() || matches!(method, "PUT" | "POST" | "PATCH") {
        let _ = write!(head, "Content-Length: {}\r\n", body.len());
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;

    // With `Connection: close` the server ends the stream after the response.
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_http_response(&raw, method == "HEAD")
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn parse_http_response(raw: &[u8], head_request: bool) -> io::Result<HttpResponse> {
    let head_end = find(raw, b"\r\n\r\n").ok_or_else(|| invalid("truncated response head"))?;
    let head = std::str::from_utf8(&raw[..head_end]).map_err(|_| invalid("non-UTF-8 head"))?;
    let rest = &raw[head_end + 4..];

    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut resp = HttpResponse {
        status,
        headers,
        body: Vec::new(),
    };

    // Responses to HEAD, 1xx, 204 and 304 carry no body whatever their headers say.
    if head_request || status < 200 || status == 204 || status == 304 {
        return Ok(resp);
    }
    let chunked = resp
        .header("Transfer-Encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    resp.body = if chunked {
        decode_chunked(rest)?
    } else if let Some(len) = resp.header("Content-Length") {
        let len: usize = len.parse().map_err(|_| invalid("bad Content-Length"))?;
        rest.get(..len)
            .ok_or_else(|| invalid("body shorter than Content-Length"))?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(resp)
}

fn decode_chunked(mut data: &[u8]) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = find(data, b"\r\n").ok_or_else(|| invalid("truncated chunk size"))?;
        let size_line = std::str::from_utf8(&data[..line_end]).map_err(|_| invalid("chunk"))?;
        // A chunk size may be followed by `;extensions`.
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| invalid("bad chunk size"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(body); // trailers, if any, are ignored
        }
        let chunk = data.get(..size).ok_or_else(|| invalid("truncated chunk"))?;
        body.extend_from_slice(chunk);
        data = data
            .get(size + 2..)
            .ok_or_else(|| invalid("truncated chunk"))?;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------------------
// Registry
// ---------------------------------------------------------------------------------------

/// `Accept` header for manifest reads: OCI and Docker schema 2 manifests and indexes. It
/// also keeps distribution 2.8 from down-converting schema 2 manifests to schema 1.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json";

/// One line of the registry's access log.
///
/// distribution 2.8 writes one Apache "combined" line per HTTP request to its stdout once
/// the response is complete, e.g.
/// `127.0.0.1 - - [22/Nov/2026:02:26:27 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "curl/7.88.1"`.
/// Its application log (logrus, stderr) lines start with `time="…"` instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogEntry {
    pub method: String,
    /// Request URI as sent: path plus query, e.g. `/v2/app/blobs/uploads/?mount=…`.
    pub uri: String,
    pub status: u16,
    pub user_agent: String,
}

/// Parses one access-log line; `None` for any other line (application log, blank, torn).
pub fn parse_access_log_line(line: &str) -> Option<AccessLogEntry> {
    // host ident user [date] "request" status size "referer" "user-agent"
    let mut fields = line.splitn(4, ' ');
    let (_host, _ident, _user) = (fields.next()?, fields.next()?, fields.next()?);
    let rest = fields.next()?.strip_prefix('[')?;
    let (_date, rest) = rest.split_once("] ")?;
    let (request, rest) = take_quoted(rest)?;
    let mut request_parts = request.splitn(3, ' ');
    let method = request_parts.next()?.to_string();
    let uri = request_parts.next()?.to_string();
    if !request_parts.next()?.starts_with("HTTP/") {
        return None;
    }
    let mut rest = rest.trim_start().splitn(3, ' ');
    let status = rest.next()?.parse().ok()?;
    let _size = rest.next()?;
    let (_referer, rest) = take_quoted(rest.next()?)?;
    let (user_agent, _) = take_quoted(rest.trim_start())?;
    Some(AccessLogEntry {
        method,
        uri,
        status,
        user_agent,
    })
}

/// Splits `"quoted \"text\"" rest` into the unescaped text and the rest after the quote.
fn take_quoted(s: &str) -> Option<(String, &str)> {
    let s = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?.1),
            '"' => return Some((out, &s[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

/// A real `docker-registry` (CNCF distribution 2.8) serving on 127.0.0.1 with storage,
/// config and log in its own temp dir. Dropping it kills the process; if the test is
/// panicking, the tail of the registry log is printed first.
pub struct Registry {
    child: Child,
    addr: String,
    dir: TempDir,
    credentials: Option<(String, String)>,
    /// Numbers the sentinel requests of [`Registry::sync_access_log`].
    sync_counter: AtomicU64,
}

const REGISTRY_LOG: &str = "registry.log";
const READY_TIMEOUT: Duration = Duration::from_secs(10);

impl Registry {
    /// Starts an open (anonymous read/write) registry.
    pub fn start() -> Registry {
        Self::start_inner(None)
    }

    /// Starts a registry that requires HTTP basic auth for every request (htpasswd file with
    /// one bcrypt user, realm `wharf-test`).
    pub fn start_with_basic_auth(user: &str, password: &str) -> Registry {
        Self::start_inner(Some((user.to_string(), password.to_string())))
    }

    fn start_inner(credentials: Option<(String, String)>) -> Registry {
        let bin = require_tool("docker-registry");
        let dir = tempfile::Builder::new()
            .prefix("wharf-registry-")
            .tempdir()
            .expect("create registry temp dir");
        let storage = dir.path().join("storage");
        fs::create_dir(&storage).expect("create registry storage dir");

        let htpasswd = credentials.as_ref().map(|(user, password)| {
            let out = run_ok(
                Command::new(require_tool("htpasswd"))
                    .args(["-Bbn", user, password])
                    .env_clear(),
            );
            let path = dir.path().join("htpasswd");
            fs::write(&path, &out.stdout).expect("write htpasswd");
            path
        });
        let auth_header = credentials.as_ref().map(|(u, p)| basic_auth(u, p));

        let log_path = dir.path().join(REGISTRY_LOG);
        let config_path = dir.path().join("config.yml");
        // free_port() can race with another process taking the port; the registry then
        // exits at once and we retry with a new one.
        for _attempt in 0..5 {
            let addr = format!("127.0.0.1:{}", free_port());
            let config = registry_config(&addr, &storage, htpasswd.as_deref());
            fs::write(&config_path, config).expect("write registry config");

            // stdout (access log) and stderr (application log) share one O_APPEND file
            // description; each log line is a single write, so lines never interleave.
            let log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .expect("open registry log");
            let mut cmd = Command::new(&bin);
            cmd.arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone log handle"))
                .stderr(log);
            // REGISTRY_* variables override the config file; keep the host's out.
            for (key, _) in std::env::vars_os() {
                if key.to_string_lossy().starts_with("REGISTRY_") {
                    cmd.env_remove(key);
                }
            }
            let mut child = cmd.spawn().expect("spawn docker-registry");

            match wait_until_ready(&mut child, &addr, auth_header.as_deref()) {
                Ok(()) => {
                    return Registry {
                        child,
                        addr,
                        dir,
                        credentials,
                        sync_counter: AtomicU64::new(0),
                    }
                }
                Err(ReadyError::Exited) => {} // port taken: try another
                Err(ReadyError::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "docker-registry on {addr} not ready after {READY_TIMEOUT:?}; log:\n{}",
                        read_lossy(&log_path)
                    );
                }
            }
        }
        panic!(
            "docker-registry exited at start-up 5 times; log:\n{}",
            read_lossy(&log_path)
        );
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `127.0.0.1:PORT/name`, a repository reference without tag or digest.
    pub fn repo(&self, name: &str) -> String {
        format!("{}/{name}", self.addr)
    }

    /// The registry's filesystem storage root.
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The basic-auth user and password, for a registry started with them.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// Path of the combined log (access log on stdout + application log on stderr).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join(REGISTRY_LOG)
    }

    /// The whole registry log so far.
    pub fn log(&self) -> String {
        read_lossy(&self.log_path())
    }

    /// Writes `DIR/config.json` in Docker's format with this registry's credentials (an
    /// empty `auths` for an open registry) and returns `DIR`, ready for `DOCKER_CONFIG`.
    pub fn docker_config(&self, dir: &Path) -> PathBuf {
        let mut auths = serde_json::Map::new();
        if let Some((user, password)) = self.credentials() {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            auths.insert(self.addr.clone(), serde_json::json!({ "auth": token }));
        }
        fs::create_dir_all(dir).expect("create docker config dir");
        let config = serde_json::json!({ "auths": auths });
        fs::write(
            dir.join("config.json"),
            serde_json::to_vec_pretty(&config).unwrap(),
        )
        .expect("write docker config.json");
        dir.to_path_buf()
    }

    // --- request counting -------------------------------------------------------------

    /// Every request in the access log except the harness's own, oldest first.
    pub fn requests(&self) -> Vec<AccessLogEntry> {
        self.sync_access_log();
        self.log()
            .lines()
            .filter_map(parse_access_log_line)
            .filter(|e| e.user_agent != HARNESS_USER_AGENT)
            .collect()
    }

    /// Number of requests served so far, not counting the harness's own. Take one before a
    /// command and pass it to [`Registry::requests_since`] to see that command's requests.
    pub fn request_count(&self) -> usize {
        self.requests().len()
    }

    /// The requests after `mark`, an earlier [`Registry::request_count`].
    pub fn requests_since(&self, mark: usize) -> Vec<AccessLogEntry> {
        let mut all = self.requests();
        assert!(mark <= all.len(), "mark {mark} is past the log end");
        all.split_off(mark)
    }

    /// Number of requests after `mark`, an earlier [`Registry::request_count`].
    pub fn request_count_since(&self, mark: usize) -> usize {
        self.requests_since(mark).len()
    }

    /// The registry writes an access-log line only after the response has gone out, so
    /// a client can finish before the line of its last request exists. Send a numbered
    /// sentinel request and wait for its line: lines of requests answered before it are
    /// then in the log too.
    fn sync_access_log(&self) {
        let id = self.sync_counter.fetch_add(1, Ordering::Relaxed);
        let uri = format!("/v2/?harness-sync={id}");
        self.request("GET", &uri, &[], b"");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self
                .log()
                .lines()
                .filter_map(parse_access_log_line)
                .any(|e| e.uri == uri);
            if found {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "sentinel request {uri} never reached the registry access log"
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    // --- direct reads -----------------------------------------------------------------

    /// Sends a request with this registry's credentials (if any); panics on I/O errors.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        let auth = self.credentials().map(|(u, p)| basic_auth(u, p));
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if let Some(auth) = &auth {
            all.push(("Authorization", auth));
        }
        http_request(&self.addr, method, path, &all, body)
            .unwrap_or_else(|e| panic!("{method} http://{}{path}: {e}", self.addr))
    }

    /// A read (GET or HEAD) with this registry's credentials, retried while the registry
    /// answers 500. Distribution's filesystem driver rewrites a tag's link file in place, so
    /// a read racing a tag write can find it empty and answer 500 ("invalid checksum digest
    /// format"); a watcher polling during a release must see the next state, not that.
    fn read_request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
        let mut attempts = 0;
        loop {
            let resp = self.request(method, path, headers, b"");
            attempts += 1;
            if resp.status != 500 || attempts == 50 {
                return resp;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends a request without credentials; panics on I/O errors.
    pub fn request_anonymous(&self, method: &str, path: &str) -> HttpResponse {
        http_request(&self.addr, method, path, &[], b"")
            .unwrap_or_else(|e| panic!("{method} http://{}{path}: {e}", self.addr))
    }

    /// The manifest `repo:reference` (tag or digest) exactly as stored, with its
    /// Content-Type; `None` if the registry answers 404. Panics on any other status.
    pub fn get_manifest(&self, repo: &str, reference: &str) -> Option<(Vec<u8>, String)> {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let resp = self.read_request("GET", &path, &[("Accept", MANIFEST_ACCEPT)]);
        match resp.status {
            200 => {
                let content_type = resp.header("Content-Type").unwrap_or_default().to_string();
                Some((resp.body, content_type))
            }
            404 => None,
            s => panic!("GET {path}: unexpected status {s}: {}", resp.text()),
        }
    }

    /// The digest (`Docker-Content-Digest` of a HEAD) of manifest `repo:reference`, or
    /// `None` if it does not exist.
    pub fn manifest_digest(&self, repo: &str, reference: &str) -> Option<String> {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let resp = self.read_request("HEAD", &path, &[("Accept", MANIFEST_ACCEPT)]);
        match resp.status {
            200 => Some(
                resp.header("Docker-Content-Digest")
                    .expect("HEAD manifest without Docker-Content-Digest")
                    .to_string(),
            ),
            404 => None,
            s => panic!("HEAD {path}: unexpected status {s}"),
        }
    }

    /// Deletes manifest `repo@digest`; true if the registry accepted (202), false on 404.
    pub fn delete_manifest(&self, repo: &str, digest: &str) -> bool {
        let path = format!("/v2/{repo}/manifests/{digest}");
        let resp = self.request("DELETE", &path, &[], b"");
        match resp.status {
            202 => true,
            404 => false,
            s => panic!("DELETE {path}: unexpected status {s}: {}", resp.text()),
        }
    }

    /// The repository's tags, sorted (the registry does not sort them); empty when the
    /// repository does not exist.
    pub fn tags(&self, repo: &str) -> Vec<String> {
        let path = format!("/v2/{repo}/tags/list");
        let resp = self.read_request("GET", &path, &[]);
        match resp.status {
            200 => {}
            404 => return Vec::new(),
            s => panic!("GET {path}: unexpected status {s}: {}", resp.text()),
        }
        let list: serde_json::Value =
            serde_json::from_slice(&resp.body).expect("tags/list is not JSON");
        // `tags` is null for a repository whose tags were all deleted.
        let mut tags: Vec<String> = list["tags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|t| t.as_str().expect("tag is not a string").to_string())
                    .collect()
            })
            .unwrap_or_default();
        tags.sort();
        tags
    }

    /// The referrers fallback index of `digest` in `repo` (which must exist), parsed.
    pub fn fallback_index(&self, repo: &str, digest: &str) -> serde_json::Value {
        let (bytes, _) = self
            .get_manifest(repo, &fallback_tag(digest))
            .unwrap_or_else(|| panic!("no fallback tag {} in {repo}", fallback_tag(digest)));
        serde_json::from_slice(&bytes).expect("fallback index JSON")
    }

    /// Whether blob `digest` is reachable through `repo` (HEAD 200 vs 404).
    pub fn blob_exists(&self, repo: &str, digest: &str) -> bool {
        let path = format!("/v2/{repo}/blobs/{digest}");
        let resp = self.read_request("HEAD", &path, &[]);
        match resp.status {
            200 => true,
            404 => false,
            s => panic!("HEAD {path}: unexpected status {s}"),
        }
    }

    /// The content of blob `digest` through `repo`, or `None` on 404.
    pub fn get_blob(&self, repo: &str, digest: &str) -> Option<Vec<u8>> {
        let path = format!("/v2/{repo}/blobs/{digest}");
        let resp = self.read_request("GET", &path, &[]);
        match resp.status {
            200 => Some(resp.body),
            404 => None,
            s => panic!("GET {path}: unexpected status {s}: {}", resp.text()),
        }
    }

    // --- direct writes ----------------------------------------------------------------

    /// Pushes a generated layout to `repo` without wharf, byte-for-byte, and tags its root
    /// `tag`: to seed a source registry (e.g. for mirror tests) with layout kinds other
    /// tools cannot copy (skopeo 1.9 refuses nested indexes and Docker-typed `index.json`
    /// entries). Blobs are held in memory one at a time, so keep layers modest.
    pub fn push_layout(&self, layout: &BuiltLayout, repo: &str, tag: &str) {
        for digest in &layout.blob_digests {
            self.push_blob(repo, &layout.read_blob(digest));
        }
        // manifest_digests lists children before parents, as the registry requires.
        for digest in &layout.manifest_digests {
            let bytes = layout.read_blob(digest);
            self.push_manifest(repo, digest, &bytes);
        }
        let root = layout.read_blob(&layout.root_digest);
        self.push_manifest(repo, tag, &root);
    }

    /// Uploads `bytes` as a blob of `repo` (POST to open a session, then one PUT with the
    /// whole content: distribution 2.8 has no single-POST upload) and returns its digest.
    pub fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = digest_of(bytes);
        let start = format!("/v2/{repo}/blobs/uploads/");
        let resp = self.request("POST", &start, &[], b"");
        assert_eq!(resp.status, 202, "POST {start}: {}", resp.text());
        let location = resp.header("Location").expect("upload without Location");
        // The Location is absolute (http://host:port/v2/…) in 2.8; keep path and query.
        let location = match location.split_once("://") {
            Some((_, rest)) => &rest[rest.find('/').unwrap_or(rest.len())..],
            None => location,
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{separator}digest={digest}");
        let headers = [("Content-Type", "application/octet-stream")];
        let resp = self.request("PUT", &put, &headers, bytes);
        assert_eq!(resp.status, 201, "PUT {put}: {}", resp.text());
        digest
    }

    /// Stores manifest `bytes` as `repo:reference` (tag or digest), with the `mediaType`
    /// inside the manifest as Content-Type, and returns its digest.
    pub fn push_manifest(&self, repo: &str, reference: &str, bytes: &[u8]) -> String {
        let doc: serde_json::Value = serde_json::from_slice(bytes).expect("manifest is JSON");
        let media_type = doc["mediaType"]
            .as_str()
            .expect("manifest without mediaType");
        let path = format!("/v2/{repo}/manifests/{reference}");
        let resp = self.request("PUT", &path, &[("Content-Type", media_type)], bytes);
        assert_eq!(resp.status, 201, "PUT {path}: {}", resp.text());
        digest_of(bytes)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if thread::panicking() {
            // Every request has an access-log line and a logrus "response completed" line;
            // show only the former (errors keep their "completed with error" line).
            let log = self.log();
            let lines: Vec<&str> = log
                .lines()
                .filter(|l| !l.contains(r#"msg="response completed" "#))
                .collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            eprintln!(
                "--- docker-registry {} log, last {} lines ---\n{}",
                self.addr,
                tail.len(),
                tail.join("\n")
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn registry_config(addr: &str, storage: &Path, htpasswd: Option<&Path>) -> String {
    // JSON strings are valid YAML double-quoted scalars: a safe way to quote paths.
    let quote = |p: &Path| serde_json::to_string(&p.to_string_lossy()).unwrap();
    let mut config = format!(
        r#"version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: {addr}
  secret: wharf-test-harness
"#,
        storage = quote(storage),
    );
    if let Some(htpasswd) = htpasswd {
        let _ = write!(
            config,
            "auth:\n  htpasswd:\n    realm: wharf-test\n    path: {}\n",
            quote(htpasswd)
        );
    }
    config
}

enum ReadyError {
    Exited,
    Timeout,
}

/// Polls `GET /v2/` until the registry answers 200 or 401.
fn wait_until_ready(child: &mut Child, addr: &str, auth: Option<&str>) -> Result<(), ReadyError> {
    let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
    let deadline = Instant::now() + READY_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return Err(ReadyError::Exited);
        }
        if let Ok(resp) = http_request(addr, "GET", "/v2/", &headers, b"") {
            if matches!(resp.status, 200 | 401) {
                return Ok(());
            }
        }
        thread::sleep(Duration::from_millis(50));
    }
    Err(ReadyError::Timeout)
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// OCI image layouts
// ---------------------------------------------------------------------------------------

/// Media types used by the layout generator.
pub mod media_type {
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
}

/// Annotation carrying the tag of an `index.json` entry.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// What [`make_layout`] generates.
#[derive(Debug, Clone)]
pub struct LayoutSpec {
    /// Platforms as `os/arch[/variant]`, e.g. `linux/amd64`, `linux/arm/v7`.
    pub platforms: Vec<&'static str>,
    /// Layers unique to each platform's image.
    pub layers_per_platform: usize,
    /// Size in bytes of every layer (also the shared one).
    pub layer_size: usize,
    /// One extra layer, identical in every platform, placed first (a common base layer).
    pub shared_layer: bool,
    /// The last platform sits inside an inner index referenced from the outer index.
    pub nested_index: bool,
    /// Docker manifest list v2 + schema 2 manifests, Docker config and layer types.
    pub docker_media_types: bool,
    /// No index at all: `index.json` points straight at the image manifest of the first
    /// platform (the other platforms are ignored). Incompatible with `nested_index`.
    pub single_manifest: bool,
    /// `org.opencontainers.image.ref.name` annotation of the `index.json` entry.
    pub ref_name: Option<String>,
    /// All content is a deterministic function of the spec, seed included.
    pub seed: u64,
}

impl Default for LayoutSpec {
    fn default() -> Self {
        LayoutSpec {
            platforms: vec!["linux/amd64", "linux/arm64"],
            layers_per_platform: 1,
            layer_size: 4096,
            shared_layer: false,
            nested_index: false,
            docker_media_types: false,
            single_manifest: false,
            ref_name: Some("v1".to_string()),
            seed: 1,
        }
    }
}

/// What [`make_layout`] wrote.
#[derive(Debug, Clone)]
pub struct BuiltLayout {
    pub dir: PathBuf,
    /// The manifest or index `index.json` points at.
    pub root_digest: String,
    pub root_media_type: String,
    pub root_size: u64,
    /// `(platform, image manifest digest)` in spec order (nested platform included).
    pub platforms: Vec<(String, String)>,
    /// Every manifest: image manifests, nested index, root. Children come before their
    /// parents (a valid push order); the root is last.
    pub manifest_digests: Vec<String>,
    /// Configs and layers, each once, in order of first use.
    pub blob_digests: Vec<String>,
}

impl BuiltLayout {
    /// Path of blob `digest` inside the layout.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        blob_path(&self.dir, digest)
    }

    /// Content of blob (or manifest) `digest`.
    pub fn read_blob(&self, digest: &str) -> Vec<u8> {
        let path = self.blob_path(digest);
        fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// The image manifest digest of `platform` (e.g. `linux/arm64`).
    pub fn platform_digest(&self, platform: &str) -> &str {
        self.platforms
            .iter()
            .find(|(p, _)| p == platform)
            .map(|(_, d)| d.as_str())
            .unwrap_or_else(|| panic!("layout has no platform {platform}"))
    }
}

/// The example image (real tar+gzip layers, so SBOMs can be generated from them), written
/// by `scripts/make-example-layout.py` into `dir`; its `index.json` entry is named `v1`.
pub fn example_layout(dir: &Path) -> PathBuf {
    run_ok(
        Command::new(require_tool("python3"))
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/make-example-layout.py"))
            .arg(dir),
    );
    dir.to_path_buf()
}

/// `sha256` of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `sha256:<hex>` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// The hex of a `sha256:<hex>` digest.
pub fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").expect("sha256 digest")
}

/// cosign's signature tag of `digest`: `sha256-<hex>.sig`.
pub fn sig_tag(digest: &str) -> String {
    format!("{}.sig", fallback_tag(digest))
}

/// Stores `manifest` (re-serialised; the blobs it names are already in the repository) at
/// `digest`'s signature tag.
pub fn put_sig_manifest(reg: &Registry, name: &str, digest: &str, manifest: &serde_json::Value) {
    let bytes = serde_json::to_vec(manifest).unwrap();
    reg.push_manifest(name, &sig_tag(digest), &bytes);
}

/// cosign's attestation tag of `digest`: `sha256-<hex>.att`.
pub fn att_tag(digest: &str) -> String {
    format!("{}.att", fallback_tag(digest))
}

/// The OCI referrers fallback tag of `digest`: `sha256-<hex>`.
pub fn fallback_tag(digest: &str) -> String {
    format!("sha256-{}", hex(digest))
}

/// `LAYOUT/blobs/sha256/<hex>` for `sha256:<hex>`.
pub fn blob_path(layout_dir: &Path, digest: &str) -> PathBuf {
    let (algorithm, hex) = digest
        .split_once(':')
        .unwrap_or_else(|| panic!("not a digest: {digest}"));
    layout_dir.join("blobs").join(algorithm).join(hex)
}

/// The `manifests` of a layout directory's `index.json`.
pub fn layout_index_entries(dir: &Path) -> Vec<serde_json::Value> {
    let path = dir.join("index.json");
    let bytes = fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let index: serde_json::Value = serde_json::from_slice(&bytes).expect("index.json is JSON");
    index["manifests"]
        .as_array()
        .expect("manifests array")
        .clone()
}

/// `(digest, ref name)` of each entry of a layout directory's `index.json`, in order.
pub fn layout_listing(dir: &Path) -> Vec<(String, Option<String>)> {
    layout_index_entries(dir)
        .iter()
        .map(|e| {
            (
                e["digest"].as_str().expect("entry digest").to_string(),
                e["annotations"][REF_NAME_ANNOTATION]
                    .as_str()
                    .map(str::to_string),
            )
        })
        .collect()
}

/// Flips every bit of one byte in the middle of blob `digest`: same size, wrong content.
pub fn corrupt_blob(layout_dir: &Path, digest: &str) {
    let path = blob_path(layout_dir, digest);
    let mut bytes = fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(!bytes.is_empty(), "cannot corrupt empty blob {digest}");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Deletes blob `digest` from the layout.
pub fn remove_blob(layout_dir: &Path, digest: &str) {
    let path = blob_path(layout_dir, digest);
    fs::remove_file(&path).unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
}

/// Writes an OCI image layout described by `spec` into `dir` (created if needed) and
/// returns what it contains. Layers are pseudo-random bytes (not real tarballs), streamed
/// to disk in 1 MiB chunks, so large layers need little memory. Manifests and configs are
/// pretty-printed JSON: a tool that re-serialises them instead of copying bytes changes
/// their digests, which tests then notice.
pub fn make_layout(dir: &Path, spec: &LayoutSpec) -> BuiltLayout {
    assert!(!spec.platforms.is_empty(), "a layout needs a platform");
    assert!(
        !(spec.single_manifest && spec.nested_index),
        "single_manifest and nested_index exclude each other"
    );
    let types = if spec.docker_media_types {
        MediaTypes::DOCKER
    } else {
        MediaTypes::OCI
    };
    let mut w = LayoutWriter::new(dir, types);

    let shared_layer = spec.shared_layer.then(|| {
        let seed = derive_seed(spec.seed, &[SEED_SHARED_LAYER]);
        w.write_random_blob(spec.layer_size, seed)
    });
    let platforms = if spec.single_manifest {
        &spec.platforms[..1]
    } else {
        &spec.platforms[..]
    };
    let mut entries = Vec::new(); // image manifest descriptors, with platform
    let mut built_platforms = Vec::new();
    for (p_index, platform) in platforms.iter().enumerate() {
        let mut layers: Vec<(String, u64)> = shared_layer.iter().cloned().collect();
        for l_index in 0..spec.layers_per_platform {
            let seed = derive_seed(spec.seed, &[SEED_LAYER, p_index as u64, l_index as u64]);
            layers.push(w.write_random_blob(spec.layer_size, seed));
        }
        let entry = w.write_image(PlatformJson::parse(platform), layers);
        built_platforms.push((platform.to_string(), entry.digest.clone()));
        entries.push(entry);
    }

    let root = if spec.single_manifest {
        let mut root = entries.pop().expect("one platform");
        root.platform = None;
        root
    } else {
        if spec.nested_index {
            let inner = entries.pop().expect("at least one platform");
            entries.push(w.write_index(vec![inner]));
        }
        w.write_index(entries)
    };

    let mut root_entry = root.clone();
    root_entry.annotations = spec
        .ref_name
        .as_ref()
        .map(|name| BTreeMap::from([(REF_NAME_ANNOTATION.to_string(), name.clone())]));
    let index_json = ImageIndex {
        schema_version: 2,
        media_type: media_type::OCI_INDEX,
        manifests: vec![root_entry],
    };
    write_file(
        &dir.join("index.json"),
        &serde_json::to_vec_pretty(&index_json).unwrap(),
    );
    write_file(
        &dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    );

    BuiltLayout {
        dir: dir.to_path_buf(),
        root_digest: root.digest,
        root_media_type: root.media_type.to_string(),
        root_size: root.size,
        platforms: built_platforms,
        manifest_digests: w.manifests,
        blob_digests: w.blobs,
    }
}

struct MediaTypes {
    index: &'static str,
    manifest: &'static str,
    config: &'static str,
    layer: &'static str,
}

impl MediaTypes {
    const OCI: MediaTypes = MediaTypes {
        index: media_type::OCI_INDEX,
        manifest: media_type::OCI_MANIFEST,
        config: media_type::OCI_CONFIG,
        layer: media_type::OCI_LAYER,
    };
    const DOCKER: MediaTypes = MediaTypes {
        index: media_type::DOCKER_LIST,
        manifest: media_type::DOCKER_MANIFEST,
        config: media_type::DOCKER_CONFIG,
        layer: media_type::DOCKER_LAYER,
    };
}

// Serialisation structs: serde keeps field order, so the JSON looks like real manifests
// (schemaVersion, mediaType, config, layers) whatever serde_json features are enabled.

#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: &'static str,
    digest: String,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<PlatformJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<String, String>>,
}

impl Descriptor {
    fn new(media_type: &'static str, digest: String, size: u64) -> Self {
        Descriptor {
            media_type,
            digest,
            size,
            platform: None,
            annotations: None,
        }
    }
}

#[derive(Serialize, Clone)]
struct PlatformJson {
    architecture: String,
    os: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
}

impl PlatformJson {
    /// `os/arch[/variant]`.
    fn parse(platform: &str) -> Self {
        let parts: Vec<&str> = platform.split('/').collect();
        match parts[..] {
            [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => PlatformJson {
                architecture: arch.to_string(),
                os: os.to_string(),
                variant: parts.get(2).map(ToString::to_string),
            },
            _ => panic!("platform {platform:?} is not os/arch[/variant]"),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ImageManifest {
    schema_version: u32,
    media_type: &'static str,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ImageIndex {
    schema_version: u32,
    media_type: &'static str,
    manifests: Vec<Descriptor>,
}

#[derive(Serialize)]
struct ImageConfig {
    architecture: String,
    os: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
    created: &'static str,
    config: serde_json::Map<String, serde_json::Value>,
    rootfs: RootFs,
}

#[derive(Serialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<String>,
}

/// Writes blobs into `DIR/blobs/sha256` and records what it wrote.
struct LayoutWriter {
    blob_dir: PathBuf,
    types: MediaTypes,
    /// Configs and layers, once each, in order of first write.
    blobs: Vec<String>,
    /// Manifests and indexes in write order, so children before parents.
    manifests: Vec<String>,
}

const CHUNK: usize = 1 << 20;

impl LayoutWriter {
    fn new(dir: &Path, types: MediaTypes) -> Self {
        let blob_dir = dir.join("blobs").join("sha256");
        fs::create_dir_all(&blob_dir)
            .unwrap_or_else(|e| panic!("create {}: {e}", blob_dir.display()));
        LayoutWriter {
            blob_dir,
            types,
            blobs: Vec::new(),
            manifests: Vec::new(),
        }
    }

    /// Writes the config and manifest of one platform's image over already written
    /// `(digest, size)` layers; returns the manifest's descriptor, with platform.
    fn write_image(&mut self, platform: PlatformJson, layers: Vec<(String, u64)>) -> Descriptor {
        let layers: Vec<Descriptor> = layers
            .into_iter()
            .map(|(digest, size)| Descriptor::new(self.types.layer, digest, size))
            .collect();
        let config = ImageConfig {
            architecture: platform.architecture.clone(),
            os: platform.os.clone(),
            variant: platform.variant.clone(),
            created: "2024-01-01T00:00:00Z",
            config: serde_json::Map::new(),
            rootfs: RootFs {
                kind: "layers",
                diff_ids: layers.iter().map(|l| l.digest.clone()).collect(),
            },
        };
        let (digest, size) = self.write_json_blob(&config);
        self.note_blob(&digest);
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: self.types.manifest,
            config: Descriptor::new(self.types.config, digest, size),
            layers,
        };
        let (digest, size) = self.write_json_blob(&manifest);
        self.manifests.push(digest.clone());
        let mut entry = Descriptor::new(self.types.manifest, digest, size);
        entry.platform = Some(platform);
        entry
    }

    /// Writes an index (or Docker manifest list) of `entries`; returns its descriptor.
    fn write_index(&mut self, entries: Vec<Descriptor>) -> Descriptor {
        let index = ImageIndex {
            schema_version: 2,
            media_type: self.types.index,
            manifests: entries,
        };
        let (digest, size) = self.write_json_blob(&index);
        self.manifests.push(digest.clone());
        Descriptor::new(self.types.index, digest, size)
    }

    /// Records a config or layer in `blobs` once.
    fn note_blob(&mut self, digest: &str) {
        if !self.blobs.iter().any(|d| d == digest) {
            self.blobs.push(digest.to_string());
        }
    }

    /// Writes pretty JSON as a blob; returns its digest and size.
    fn write_json_blob(&mut self, value: &impl Serialize) -> (String, u64) {
        let bytes = serde_json::to_vec_pretty(value).expect("serialise JSON");
        let hex = sha256_hex(&bytes);
        write_file(&self.blob_dir.join(&hex), &bytes);
        (format!("sha256:{hex}"), bytes.len() as u64)
    }

    /// Streams `size` pseudo-random bytes from `seed` into a layer blob, hashing as it goes;
    /// returns its digest and size.
    fn write_random_blob(&mut self, size: usize, seed: u64) -> (String, u64) {
        let tmp = self.blob_dir.join(format!(".tmp-{seed:016x}"));
        let mut file =
            File::create(&tmp).unwrap_or_else(|e| panic!("create {}: {e}", tmp.display()));
        let mut hasher = Sha256::new();
        let mut rng = SplitMix64(seed);
        let mut buf = vec![0u8; size.min(CHUNK)];
        let mut left = size;
        while left > 0 {
            let chunk = &mut buf[..left.min(CHUNK)];
            rng.fill(chunk);
            hasher.update(&*chunk);
            file.write_all(chunk)
                .unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
            left -= chunk.len();
        }
        drop(file);
        let hex = hex::encode(hasher.finalize());
        let path = self.blob_dir.join(&hex);
        fs::rename(&tmp, &path).unwrap_or_else(|e| panic!("rename {}: {e}", tmp.display()));
        let digest = format!("sha256:{hex}");
        self.note_blob(&digest);
        (digest, size as u64)
    }
}

fn write_file(path: &Path, bytes: &[u8]) {
    fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

// Domain tags that keep the seeds of different kinds of content apart.
const SEED_LAYER: u64 = 1;
const SEED_SHARED_LAYER: u64 = 2;

/// Folds `parts` into `seed`, each step through SplitMix64's output function.
fn derive_seed(seed: u64, parts: &[u64]) -> u64 {
    parts
        .iter()
        .fold(SplitMix64(seed).next_u64(), |acc, &part| {
            SplitMix64(acc ^ part.wrapping_mul(0x9e37_79b9_7f4a_7c15)).next_u64()
        })
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, good enough for test content.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        let mut words = buf.chunks_exact_mut(8);
        for word in &mut words {
            word.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let tail = words.into_remainder();
        if !tail.is_empty() {
            let bytes = self.next_u64().to_le_bytes();
            tail.copy_from_slice(&bytes[..tail.len()]);
        }
    }
}

/// An image `wharf push --output json` put in a registry: its index and the manifests under it.
pub struct Pushed {
    /// `HOST:PORT/NAME`.
    pub repo: String,
    /// `NAME`, for the harness's direct registry calls.
    pub name: String,
    /// The index.
    pub digest: String,
    /// `(platform, digest)` of every manifest under the index.
    pub children: Vec<(String, String)>,
}

impl Pushed {
    pub fn at(&self, digest: &str) -> String {
        format!("{}@{digest}", self.repo)
    }
    pub fn index(&self) -> String {
        self.at(&self.digest)
    }
    pub fn child(&self, i: usize) -> &str {
        &self.children[i].1
    }
    pub fn platform(&self, platform: &str) -> &str {
        self.children
            .iter()
            .find(|(p, _)| p == platform)
            .map(|(_, d)| d.as_str())
            .unwrap_or_else(|| panic!("pushed image has no {platform}"))
    }
    /// Index first, then the children in order.
    pub fn all_digests(&self) -> Vec<String> {
        std::iter::once(self.digest.clone())
            .chain(self.children.iter().map(|(_, d)| d.clone()))
            .collect()
    }
    /// The same image reached through `host` (a proxy or a mirror) as `HOST/NAME@DIGEST`.
    pub fn via(&self, host: &str, digest: &str) -> String {
        format!("{host}/{}@{digest}", self.name)
    }
}

/// Generates a layout with `platforms` and pushes it with `wharf push DIR DEST -o json`;
/// the report, its digest checked.
pub fn push_image(dest: &str, platforms: &[&'static str], seed: u64) -> serde_json::Value {
    let dir = tempdir();
    let layout = make_layout(
        &dir.path().join("layout"),
        &LayoutSpec {
            platforms: platforms.to_vec(),
            layer_size: 512,
            seed,
            ..LayoutSpec::default()
        },
    );
    let out = run_ok(
        wharf()
            .args(["push", "--allow-insecure-registry", "--output", "json"])
            .arg(&layout.dir)
            .arg(dest),
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("push JSON");
    assert_eq!(report["digest"], layout.root_digest.as_str());
    report
}

/// `(platform, digest)` of every manifest a `wharf push` report lists.
pub fn children_of(report: &serde_json::Value) -> Vec<(String, String)> {
    report["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| {
            (
                m["platform"].as_str().expect("platform").to_string(),
                m["digest"].as_str().expect("digest").to_string(),
            )
        })
        .collect()
}

/// Generates a layout with `platforms` and pushes it to `reg` as `name` with `wharf push`
/// ([`push_image`]), checking the reported digests.
pub fn push_to(reg: &Registry, name: &str, platforms: &[&'static str], seed: u64) -> Pushed {
    let report = push_image(&reg.repo(name), platforms, seed);
    let children = children_of(&report);
    assert_eq!(children.len(), platforms.len());
    Pushed {
        repo: reg.repo(name),
        name: name.to_string(),
        digest: report["digest"].as_str().expect("digest").to_string(),
        children,
    }
}

/// Asserts every word of `words` is in the error `line`.
pub fn assert_mentions(line: &str, words: &[&str]) {
    for word in words {
        assert!(
            line.contains(word),
            "error {line:?} does not mention {word:?}"
        );
    }
}

/// Runs a `wharf verify` or `verify-attestation` expecting failure, with nothing (no payload,
/// no statement) on stdout; returns the error line.
pub fn verify_fails(cmd: &mut Command) -> String {
    let out = run_fail(cmd);
    assert_eq!(
        stdout_of(&out).trim(),
        "",
        "a failed verification printed on stdout"
    );
    error_line(&out)
}

/// The docker-manifest-digests of the Simple Signing payloads `wharf verify` prints on stdout
/// (a JSON array), each payload checked to be a cosign image signature.
pub fn verified_digests(out: &Output) -> std::collections::BTreeSet<String> {
    let payloads: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("verify stdout is not JSON ({e}): {}", stdout_of(out)));
    payloads
        .as_array()
        .expect("verify stdout is a JSON array")
        .iter()
        .map(|p| {
            assert_eq!(p["critical"]["type"], "cosign container image signature");
            p["critical"]["image"]["docker-manifest-digest"]
                .as_str()
                .expect("docker-manifest-digest")
                .to_string()
        })
        .collect()
}

/// The in-toto statements `wharf verify-attestation` prints: DSSE envelopes, one a line, as
/// cosign prints them.
pub fn wharf_statements(out: &Output) -> Vec<serde_json::Value> {
    envelope_statements(out)
}

/// The subject digests of an in-toto statement, as `sha256:<hex>`.
pub fn subjects(statement: &serde_json::Value) -> std::collections::BTreeSet<String> {
    statement["subject"]
        .as_array()
        .expect("subject")
        .iter()
        .map(|s| format!("sha256:{}", s["digest"]["sha256"].as_str().expect("sha256")))
        .collect()
}

/// A small CycloneDX 1.6 SBOM naming `component`, written to `dir/name`.
pub fn cyclonedx(dir: &Path, name: &str, component: &str) -> PathBuf {
    let doc = serde_json::json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "version": 1,
        "components": [{"type": "library", "name": component, "version": "1.0"}],
    });
    let path = dir.join(name);
    fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    path
}

/// Validates the CycloneDX document at `path` against the official CycloneDX 1.5 JSON schema
/// (and the SPDX and JSF schemas it references), as shipped in the `cyclonedx-python-lib`
/// package, with Python's `jsonschema`. Returns the validator's messages on failure.
pub fn validate_cyclonedx(path: &Path) -> Result<(), String> {
    let out = Command::new(require_tool("python3"))
        .arg("-c")
        .arg(CYCLONEDX_VALIDATOR)
        .arg(path)
        .output()
        .expect("spawn python3");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{}{}", stdout_of(&out), stderr_of(&out)))
    }
}

const CYCLONEDX_VALIDATOR: &str = r#"
import glob, importlib.util, json, os, sys
from urllib.parse import urljoin
from jsonschema import Draft7Validator
from referencing import Registry, Resource

spec = importlib.util.find_spec("cyclonedx")
if spec is None:
    sys.exit("cyclonedx-python-lib is not installed (pip install cyclonedx-python-lib)")
res = os.path.join(list(spec.submodule_search_locations)[0], "schema", "_res")

def find(pattern):
    found = sorted(glob.glob(os.path.join(res, pattern)))
    if not found:
        sys.exit(f"no {pattern} in {res}")
    return found[0]

def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)

schema = load(find("bom-1.5*.schema.json"))
resources = []
for pattern in ("spdx*.schema.json", "jsf-0.82*.schema.json"):
    path = find(pattern)
    contents = load(path)
    resource = Resource.from_contents(contents)
    # Reachable both by the file name the BOM schema refers to and by the schema's own $id.
    resources.append((urljoin(schema["$id"], os.path.basename(path)), resource))
    resources.append((contents["$id"], resource))
validator = Draft7Validator(
    schema,
    registry=Registry().with_resources(resources),
    format_checker=Draft7Validator.FORMAT_CHECKER,
)
doc = load(sys.argv[1])
errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
for e in errors:
    print("/" + "/".join(map(str, e.absolute_path)) + ": " + e.message, file=sys.stderr)
sys.exit(1 if errors else 0)
"#;
