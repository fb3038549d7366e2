//! Registry credentials, each bound to one registry host: explicit ones (flags/env, given for a
//! named host), then an auth file of per-host entries, then the Docker config (`auths`,
//! `credHelpers`, `credsStore`), the same places `docker login` writes to. A registry's
//! credentials are looked up by its host alone, so one registry's password is never handed to
//! another.

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub secret: Secret,
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

/// Where credentials for a registry come from.
#[derive(Clone, Default)]
pub struct CredentialSource {
    /// Given on the command line or in the environment, each for the registry host it names
    /// (`--registry-username` for the registry a command writes to, the source's for mirror).
    pub explicit: Vec<(String, Credentials)>,
    /// `--registry-auth-file`: per-host entries in the Docker config's format, looked at
    /// before the Docker config. Unlike the Docker config it must exist.
    pub auth_file: Option<PathBuf>,
    /// The Docker config file; `None` looks in `$DOCKER_CONFIG` or `~/.docker`.
    pub docker_config: Option<PathBuf>,
}

impl CredentialSource {
    /// The credentials for `registry` (a host, `HOST:PORT`), from wherever they are found
    /// first; `None` when there are none (requests go anonymous).
    pub fn lookup(&self, registry: &str) -> Result<Option<Credentials>> {
        if let Some((_, c)) = self
            .explicit
            .iter()
            .find(|(host, _)| same_registry(host, registry))
        {
            return Ok(Some(c.clone()));
        }
        if let Some(path) = &self.auth_file {
            let config = read_config(path, "registry auth file")?
                .ok_or_else(|| anyhow!("registry auth file {} does not exist", path.display()))?;
            if let Some(c) = from_docker_config(&config, registry)
                .with_context(|| format!("credentials for {registry} from {}", path.display()))?
            {
                return Ok(Some(c));
            }
        }
        let Some(path) = self.docker_config.clone().or_else(default_docker_config) else {
            return Ok(None);
        };
        let Some(config) = read_config(&path, "Docker config")? else {
            return Ok(None);
        };
        from_docker_config(&config, registry)
            .with_context(|| format!("credentials for {registry} from {}", path.display()))
    }
}

/// Whether two registry names are the same registry (Docker Hub goes by several).
pub fn same_registry(a: &str, b: &str) -> bool {
    fn canonical(r: &str) -> String {
        let r = r.to_ascii_lowercase();
        match r.as_str() {
            "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
            _ => r,
        }
    }
    canonical(a) == canonical(b)
}

/// The most read of a credentials file: they hold a few entries.
const CONFIG_LIMIT: u64 = 1 << 20;

/// Reads a Docker-config-format file; `None` when it does not exist.
fn read_config(path: &std::path::Path, what: &str) -> Result<Option<DockerConfig>> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => bail!("cannot read {what} {}: {e}", path.display()),
    };
    let mut text = String::new();
    file.take(CONFIG_LIMIT + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    if text.len() as u64 > CONFIG_LIMIT {
        bail!("{what} {} is larger than 1 MiB", path.display());
    }
    let config = serde_json::from_str(&text)
        .with_context(|| format!("{what} {} is malformed", path.display()))?;
    Ok(Some(config))
}

fn default_docker_config() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// The keys `docker login` may have used for a registry host.
fn config_keys(registry: &str) -> Vec<String> {
    if matches!(
        registry,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    ) {
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

fn from_docker_config(config: &DockerConfig, registry: &str) -> Result<Option<Credentials>> {
    let keys = config_keys(registry);
    for key in &keys {
        if let Some(helper) = config.cred_helpers.get(key) {
            return credential_helper(helper, key);
        }
    }
    for (key, entry) in &config.auths {
        let normalized = key.trim_end_matches('/');
        if keys
            .iter()
            .any(|k| k == key || k.trim_end_matches('/') == normalized)
            || normalized
                .strip_prefix("https://")
                .or_else(|| normalized.strip_prefix("http://"))
                .map(|h| h.split('/').next() == Some(registry))
                .unwrap_or(false)
        {
            if let Some(c) = from_auth_entry(entry)? {
                return Ok(Some(c));
            }
        }
    }
    if let Some(store) = &config.creds_store {
        return credential_helper(store, &keys[0]);
    }
    Ok(None)
}

fn from_auth_entry(entry: &AuthEntry) -> Result<Option<Credentials>> {
    if let Some(token) = &entry.identitytoken {
        return Ok(Some(Credentials {
            username: "<token>".into(),
            secret: Secret::new(token.clone()),
        }));
    }
    if let Some(auth) = &entry.auth {
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

/// Runs `docker-credential-<helper> get` (the Docker credential helper protocol).
fn credential_helper(helper: &str, server: &str) -> Result<Option<Credentials>> {
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run credential helper {program}"))?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(server.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stdout).trim().to_string();
        // Helpers answer "credentials not found in native keychain" when they have none.
        if msg.to_lowercase().contains("not found") {
            return Ok(None);
        }
        bail!("{program} failed: {msg}");
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct HelperAnswer {
        username: String,
        secret: String,
    }
    let answer: HelperAnswer = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{program} answered something that is not credentials"))?;
    Ok(Some(Credentials {
        username: answer.username,
        secret: Secret::new(answer.secret),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auths_entry_is_decoded() {
        let config: DockerConfig = serde_json::from_str(
            r#"{"auths":{"https://ghcr.io":{"auth":"dXNlcjpwYXNz"},"localhost:5000":{"username":"a","password":"b"}}}"#,
        )
        .unwrap();
        let c = from_docker_config(&config, "ghcr.io").unwrap().unwrap();
        assert_eq!((c.username.as_str(), c.secret.expose()), ("user", "pass"));
        let c = from_docker_config(&config, "localhost:5000")
            .unwrap()
            .unwrap();
        assert_eq!(c.username, "a");
        assert!(from_docker_config(&config, "quay.io").unwrap().is_none());
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
            docker_config: Some("/nonexistent/config.json".into()),
        };
        let user = |r: &str| source.lookup(r).unwrap().map(|c| c.username);
        assert_eq!(user("dst.example:5000").as_deref(), Some("dst"));
        assert_eq!(user("src.example:5000"), None);
        assert_eq!(user("dst.example"), None);
        assert_eq!(user("index.docker.io").as_deref(), Some("hub"));
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
