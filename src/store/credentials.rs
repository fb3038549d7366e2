//! Registry credentials, each bound to one registry host (or one repository namespace on it),
//! looked up in this order, the first that has an entry winning:
//!
//! 1. explicit ones (flags/env), each given for a named host;
//! 2. wharf's `--registry-auth-file`;
//! 3. the files podman, skopeo and buildah read (`podman login` writes them), in their order:
//!    `$REGISTRY_AUTH_FILE` alone when it is set, else `$XDG_RUNTIME_DIR/containers/auth.json`
//!    (`/run/containers/$UID/auth.json` without `XDG_RUNTIME_DIR`), then
//!    `${XDG_CONFIG_HOME:-~/.config}/containers/auth.json`;
//! 4. the Docker config (`auths`, `credHelpers`, `credsStore`), what `docker login` writes.
//!
//! All are in the Docker config's format. An `auths` key may name a repository namespace
//! (`quay.io/acme`, as `podman login quay.io/acme` writes): it serves that namespace only, the
//! most specific key first, as podman reads them. A registry's credentials are looked up by its
//! host, so one registry's password is never handed to another.

use crate::files::read_bounded;
use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub secret: Secret,
}

/// The user name under which the Docker credential helper protocol hands over an identity
/// token rather than a password.
pub const IDENTITY_TOKEN_USER: &str = "<token>";

impl Credentials {
    /// An identity token: an OAuth2 refresh token for the registry's token service, as
    /// `docker login` with OAuth and Azure's `az acr login` store it (`identitytoken`).
    pub fn identity_token(token: String) -> Credentials {
        Credentials {
            username: IDENTITY_TOKEN_USER.into(),
            secret: Secret::new(token),
        }
    }

    /// The refresh token these credentials are, when they are an identity token: it goes to
    /// the token service in an OAuth2 `refresh_token` grant, never as a Basic password.
    pub fn refresh_token(&self) -> Option<&str> {
        (self.username == IDENTITY_TOKEN_USER).then(|| self.secret.expose())
    }
}

/// A password or identity token. Its `Debug` never shows the value.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ***)", self.username)
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: HashMap<String, String>,
}

#[derive(serde::Deserialize, Default)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

/// A file of credentials in the Docker config's format.
#[derive(Clone, Debug)]
pub struct CredentialFile {
    pub path: PathBuf,
    /// What the file is, for messages ("registry auth file", "Docker config").
    pub what: &'static str,
    /// Whether a missing file is an error (a file the user named) or just has no entries.
    pub required: bool,
}

impl CredentialFile {
    fn optional(path: PathBuf, what: &'static str) -> CredentialFile {
        CredentialFile {
            path,
            what,
            required: false,
        }
    }
}

/// Where credentials for a registry come from.
#[derive(Clone, Default)]
pub struct CredentialSource {
    /// Given on the command line or in the environment, each for the registry host it names
    /// (`--registry-username` for the registry a command writes to, the source's for mirror).
    pub explicit: Vec<(String, Credentials)>,
    /// `--registry-auth-file`: per-host entries in the Docker config's format, looked at
    /// before the login files. Unlike them it must exist.
    pub auth_file: Option<PathBuf>,
    /// The files `podman login` and `docker login` write, in the order they are read; `None`
    /// finds them where the environment says (see the module's documentation).
    pub login_files: Option<Vec<CredentialFile>>,
}

/// Credentials found for a repository.
#[derive(Debug, Clone)]
pub struct Found {
    pub credentials: Credentials,
    /// Whether they serve every repository of the host; `false` for an entry for a
    /// repository namespace (`quay.io/acme`), which serves repositories under it only.
    pub host_wide: bool,
}

impl CredentialSource {
    /// The credentials for `repository` on `registry` (a host, `HOST:PORT`), from wherever
    /// they are found first; `None` when there are none (requests go anonymous).
    pub fn lookup(&self, registry: &str, repository: &str) -> Result<Option<Found>> {
        if let Some((_, c)) = self
            .explicit
            .iter()
            .find(|(host, _)| same_registry(host, registry))
        {
            return Ok(Some(Found {
                credentials: c.clone(),
                host_wide: true,
            }));
        }
        let named = self.auth_file.iter().map(|path| CredentialFile {
            path: path.clone(),
            what: "registry auth file",
            required: true,
        });
        let login_files = match &self.login_files {
            Some(files) => files.clone(),
            None => login_files_from_environment(),
        };
        for file in named.chain(login_files) {
            let Some(config) = read_config(&file)? else {
                continue;
            };
            if let Some(found) =
                from_docker_config(&config, registry, repository).with_context(|| {
                    format!("credentials for {registry} from {}", file.path.display())
                })?
            {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }
}

/// Whether two registry names are the same registry (Docker Hub goes by several).
pub fn same_registry(a: &str, b: &str) -> bool {
    canonical_registry(a) == canonical_registry(b)
}

fn canonical_registry(r: &str) -> String {
    let r = r.to_ascii_lowercase();
    match r.as_str() {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        _ => r,
    }
}

/// The most read of a credentials file: they hold a few entries.
const CONFIG_LIMIT: u64 = 1 << 20;

/// Reads a Docker-config-format file; `None` when it does not exist and need not.
fn read_config(file: &CredentialFile) -> Result<Option<DockerConfig>> {
    let (path, what) = (&file.path, file.what);
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if file.required {
                bail!("{what} {} does not exist", path.display());
            }
            return Ok(None);
        }
        Err(e) => bail!("cannot read {what} {}: {e}", path.display()),
        Ok(_) => {}
    }
    let bytes = read_bounded(path, CONFIG_LIMIT, what)?;
    let config = serde_json::from_slice(&bytes)
        .with_context(|| format!("{what} {} is malformed", path.display()))?;
    Ok(Some(config))
}

/// The login files where podman and skopeo (containers/image) look, then the Docker config.
/// `REGISTRY_AUTH_FILE` replaces podman's own files, as it does for podman; the Docker config
/// is still read after it, as wharf always has.
fn login_files_from_environment() -> Vec<CredentialFile> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let home = var("HOME").map(PathBuf::from);
    let mut files = Vec::new();
    const PODMAN: &str = "containers auth file";
    if let Some(path) = var("REGISTRY_AUTH_FILE") {
        files.push(CredentialFile::optional(path.into(), PODMAN));
    } else {
        let runtime_file = match var("XDG_RUNTIME_DIR") {
            Some(dir) => PathBuf::from(dir).join("containers/auth.json"),
            // SAFETY: getuid has no preconditions and cannot fail.
            None => format!("/run/containers/{}/auth.json", unsafe { libc::getuid() }).into(),
        };
        files.push(CredentialFile::optional(runtime_file, PODMAN));
        let config_home = var("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".config")));
        if let Some(dir) = config_home {
            files.push(CredentialFile::optional(
                dir.join("containers/auth.json"),
                PODMAN,
            ));
        }
    }
    let docker_config = match var("DOCKER_CONFIG") {
        Some(dir) => Some(PathBuf::from(dir).join("config.json")),
        None => home.map(|h| h.join(".docker/config.json")),
    };
    files.extend(docker_config.map(|path| CredentialFile::optional(path, "Docker config")));
    files
}

/// The keys `docker login` may have used for a registry host, the plain host first.
fn config_keys(registry: &str) -> Vec<String> {
    if canonical_registry(registry) == "docker.io" {
        vec![
            "https://index.docker.io/v1/".into(),
            "index.docker.io".into(),
            "docker.io".into(),
        ]
    } else {
        vec![
            registry.to_string(),
            format!("https://{registry}"),
            format!("http://{registry}"),
        ]
    }
}

/// `HOST/a/b/c`, `HOST/a/b`, `HOST/a` for repository `a/b/c`: the namespace keys that may hold
/// its credentials, most specific first.
fn namespace_keys(registry: &str, repository: &str) -> Vec<String> {
    let host = match canonical_registry(registry).as_str() {
        "docker.io" => "docker.io".to_string(),
        _ => registry.to_string(),
    };
    let mut keys = Vec::new();
    let mut namespace = repository.trim_matches('/');
    while !namespace.is_empty() {
        keys.push(format!("{host}/{namespace}"));
        namespace = namespace.rsplit_once('/').map_or("", |(parent, _)| parent);
    }
    keys
}

/// Whether an `auths` key written as a URL (`https://ghcr.io/v1/`, as older `docker login`
/// wrote them) is for `registry`.
fn url_key_is_for(key: &str, registry: &str) -> bool {
    key.strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .and_then(|rest| rest.split('/').next())
        .is_some_and(|host| host.eq_ignore_ascii_case(registry))
}

fn from_docker_config(
    config: &DockerConfig,
    registry: &str,
    repository: &str,
) -> Result<Option<Found>> {
    let host_wide = |c: Option<Credentials>| {
        c.map(|credentials| Found {
            credentials,
            host_wide: true,
        })
    };
    let keys = config_keys(registry);
    for key in &keys {
        if let Some(helper) = config.cred_helpers.get(key) {
            return credential_helper(helper, key).map(host_wide);
        }
    }
    for key in namespace_keys(registry, repository) {
        if let Some(entry) = config.auths.get(&key) {
            if let Some(credentials) = from_auth_entry(entry)? {
                return Ok(Some(Found {
                    credentials,
                    host_wide: false,
                }));
            }
        }
    }
    let exact = keys.iter().filter_map(|k| config.auths.get(k));
    // Then keys written as URLs, in a fixed order (the map's own order is random).
    let mut url_keys: Vec<&String> = config
        .auths
        .keys()
        .filter(|k| !keys.contains(k) && url_key_is_for(k, registry))
        .collect();
    url_keys.sort();
    for entry in exact.chain(url_keys.into_iter().map(|k| &config.auths[k])) {
        if let Some(c) = from_auth_entry(entry)? {
            return Ok(host_wide(Some(c)));
        }
    }
    if let Some(store) = &config.creds_store {
        return credential_helper(store, &keys[0]).map(host_wide);
    }
    Ok(None)
}

fn from_auth_entry(entry: &AuthEntry) -> Result<Option<Credentials>> {
    if let Some(token) = entry.identitytoken.as_ref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credentials::identity_token(token.clone())));
    }
    if let Some(auth) = entry.auth.as_ref().filter(|a| !a.trim().is_empty()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| anyhow!("an `auth` entry is not valid base64"))?;
        let decoded =
            String::from_utf8(decoded).map_err(|_| anyhow!("an `auth` entry is not UTF-8"))?;
        let (user, pass) = decoded
            .split_once(':')
            .ok_or_else(|| anyhow!("an `auth` entry is not user:password"))?;
        return Ok(Some(Credentials {
            username: user.to_string(),
            secret: Secret::new(pass.to_string()),
        }));
    }
    if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
        return Ok(Some(Credentials {
            username: u.clone(),
            secret: Secret::new(p.clone()),
        }));
    }
    Ok(None)
}

/// Whether `name` can be the `NAME` of a `docker-credential-NAME` program: a name, never a
/// path, so a config file cannot make wharf run a program from elsewhere.
fn is_helper_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The most read of a credential helper's answer: a user name and a secret.
const HELPER_ANSWER_LIMIT: u64 = 64 << 10;

/// Runs `docker-credential-<helper> get` (the Docker credential helper protocol).
fn credential_helper(helper: &str, server: &str) -> Result<Option<Credentials>> {
    if !is_helper_name(helper) {
        bail!(
            "credential helper {} is not a program name",
            crate::text::excerpt(helper, 64)
        );
    }
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        // Helpers write their errors to stdout; anything on stderr is not for wharf's output.
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot run credential helper {program}"))?;
    let written = child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(server.as_bytes());
    let mut answer = Vec::new();
    let read = child
        .stdout
        .take()
        .expect("stdout is piped")
        .take(HELPER_ANSWER_LIMIT + 1)
        .read_to_end(&mut answer);
    if answer.len() as u64 > HELPER_ANSWER_LIMIT {
        let _ = child.kill();
        let _ = child.wait();
        bail!("{program} answered more than 64 KiB; credentials are a few bytes");
    }
    let status = child.wait()?;
    written.with_context(|| format!("cannot talk to credential helper {program}"))?;
    read.with_context(|| format!("cannot read the answer of credential helper {program}"))?;
    if !status.success() {
        let msg = String::from_utf8_lossy(&answer).trim().to_string();
        // Helpers answer "credentials not found in native keychain" when they have none.
        if msg.to_lowercase().contains("not found") {
            return Ok(None);
        }
        bail!("{program} failed: {}", crate::text::excerpt(&msg, 200));
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct HelperAnswer {
        username: String,
        secret: String,
    }
    let answer: HelperAnswer = serde_json::from_slice(&answer)
        .with_context(|| format!("{program} answered something that is not credentials"))?;
    Ok(Some(Credentials {
        username: answer.username,
        secret: Secret::new(answer.secret),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_in(dir: &std::path::Path, name: &str) -> CredentialFile {
        CredentialFile::optional(dir.join(name), "test file")
    }

    fn config(json: &str) -> DockerConfig {
        serde_json::from_str(json).unwrap()
    }

    fn user(found: Option<Found>) -> Option<String> {
        found.map(|f| f.credentials.username)
    }

    #[test]
    fn auths_entry_is_decoded() {
        let config = config(
            r#"{"auths":{"https://ghcr.io":{"auth":"dXNlcjpwYXNz"},"localhost:5000":{"username":"a","password":"b"}}}"#,
        );
        let c = from_docker_config(&config, "ghcr.io", "x")
            .unwrap()
            .unwrap()
            .credentials;
        assert_eq!((c.username.as_str(), c.secret.expose()), ("user", "pass"));
        let found = from_docker_config(&config, "localhost:5000", "x").unwrap();
        assert_eq!(user(found).as_deref(), Some("a"));
        assert!(from_docker_config(&config, "quay.io", "x")
            .unwrap()
            .is_none());
    }

    #[test]
    fn an_identity_token_is_a_refresh_token_not_a_password() {
        let config = config(
            r#"{"auths":{"acme.azurecr.io":{"auth":"MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAwOg==","identitytoken":"refresh-me"}}}"#,
        );
        let found = from_docker_config(&config, "acme.azurecr.io", "app")
            .unwrap()
            .unwrap();
        assert_eq!(found.credentials.refresh_token(), Some("refresh-me"));
        let password = Credentials {
            username: "u".into(),
            secret: Secret::new("p".into()),
        };
        assert_eq!(password.refresh_token(), None);
    }

    #[test]
    fn namespace_entries_serve_their_namespace_most_specific_first() {
        let config = config(
            r#"{"auths":{
                "quay.io":{"username":"host","password":"p"},
                "quay.io/acme":{"username":"acme","password":"p"},
                "quay.io/acme/app":{"username":"app","password":"p"}}}"#,
        );
        let found = |repo: &str| {
            from_docker_config(&config, "quay.io", repo)
                .unwrap()
                .unwrap()
        };
        let app = found("acme/app");
        assert_eq!(
            (app.credentials.username.as_str(), app.host_wide),
            ("app", false)
        );
        assert_eq!(found("acme/tools").credentials.username, "acme");
        assert_eq!(found("acme/app/sub").credentials.username, "app");
        let other = found("other/app");
        assert_eq!(
            (other.credentials.username.as_str(), other.host_wide),
            ("host", true)
        );
        // A key is a namespace by whole path segments only.
        assert_eq!(found("acme-corp/app").credentials.username, "host");
        assert_eq!(
            namespace_keys("index.docker.io", "library/alpine"),
            ["docker.io/library/alpine", "docker.io/library"]
        );
    }

    #[test]
    fn files_are_read_in_order_the_first_with_an_entry_winning() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, json: &str| std::fs::write(dir.path().join(name), json).unwrap();
        write(
            "podman.json",
            r#"{"auths":{"r.example":{"username":"podman","password":"p"}}}"#,
        );
        write(
            "docker.json",
            r#"{"auths":{"r.example":{"username":"docker","password":"p"},
                        "d.example":{"username":"docker","password":"p"}}}"#,
        );
        let source = CredentialSource {
            login_files: Some(vec![
                file_in(dir.path(), "missing.json"),
                file_in(dir.path(), "podman.json"),
                file_in(dir.path(), "docker.json"),
            ]),
            ..CredentialSource::default()
        };
        let found = |r: &str| user(source.lookup(r, "app").unwrap());
        assert_eq!(found("r.example").as_deref(), Some("podman"));
        assert_eq!(found("d.example").as_deref(), Some("docker"));
        assert_eq!(found("n.example"), None);

        let named = CredentialSource {
            auth_file: Some(dir.path().join("docker.json")),
            ..source.clone()
        };
        assert_eq!(
            user(named.lookup("r.example", "app").unwrap()).as_deref(),
            Some("docker")
        );
        let missing = CredentialSource {
            auth_file: Some(dir.path().join("nope.json")),
            ..source
        };
        let err = missing.lookup("r.example", "app").unwrap_err();
        assert!(format!("{err:#}").contains("does not exist"), "{err:#}");
    }

    #[test]
    fn explicit_credentials_belong_to_their_host_only() {
        let creds = |u: &str| Credentials {
            username: u.into(),
            secret: Secret::new("pw".into()),
        };
        let source = CredentialSource {
            explicit: vec![
                ("dst.example:5000".into(), creds("dst")),
                ("docker.io".into(), creds("hub")),
            ],
            auth_file: None,
            login_files: Some(Vec::new()),
        };
        let user = |r: &str| user(source.lookup(r, "app").unwrap());
        assert_eq!(user("dst.example:5000").as_deref(), Some("dst"));
        assert_eq!(user("src.example:5000"), None);
        assert_eq!(user("dst.example"), None);
        assert_eq!(user("index.docker.io").as_deref(), Some("hub"));
    }

    #[test]
    fn a_helper_is_named_never_a_path() {
        assert!(is_helper_name("ecr-login"));
        assert!(is_helper_name("osxkeychain"));
        assert!(!is_helper_name("../../tmp/evil"));
        assert!(!is_helper_name("x/y"));
        assert!(!is_helper_name(""));
        assert!(!is_helper_name("-rf"));
        let err = credential_helper("../evil", "r.example").unwrap_err();
        assert!(err.to_string().contains("not a program name"), "{err}");
    }

    #[test]
    fn secrets_do_not_leak_through_debug() {
        let c = Credentials {
            username: "u".into(),
            secret: Secret::new("hunter2".into()),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
