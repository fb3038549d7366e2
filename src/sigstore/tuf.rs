//! Keeping the Sigstore trust root current through TUF.
//!
//! A Sigstore instance publishes its `trusted_root.json` (and `signing_config.v0.2.json`) as
//! targets of a TUF repository. `tough` runs the TUF client workflow (root rotation chain,
//! threshold signatures, versions and expiry of every role, rollback and fast-forward checks,
//! target hashes and lengths); this module adds what tough leaves to its caller:
//!
//! - a transport that bounds every response (size, connect and read time) and an overall
//!   deadline on one refresh;
//! - a cache that a failed refresh never damages: the verified metadata and targets are one
//!   file, replaced by an atomic rename only after everything verified;
//! - freshness: while the cached metadata has not expired (in practice: the timestamp role's
//!   expiry, the earliest of the four), nothing is fetched;
//! - fallbacks when a refresh fails: the stale cache, then (for the public-good repository or a
//!   mirror of it) the trusted root built into wharf, each with a warning for the user.

use crate::sigstore::trust::{format_rfc3339, parse_rfc3339, TrustRoot};
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tough::{IntoVec, TargetName, Transport, TransportError, TransportErrorKind, TransportStream};

/// The public-good instance's TUF repository: metadata at the top, targets under `targets/`.
pub const PUBLIC_GOOD_TUF_URL: &str = "https://tuf-repo-cdn.sigstore.dev";

/// The public-good repository's root metadata, version 15: the start of the chain of trust.
/// Newer roots are fetched and checked against it. Origin: github.com/sigstore/root-signing,
/// `metadata/root_history/15.root.json` at commit 60cf2ce8b2e45d600dc17c4421e8c751e75772be
/// (Apache-2.0).
const PUBLIC_GOOD_TUF_ROOT: &[u8] = include_bytes!("public_good_tuf_root.json");

/// The trusted root built into wharf, for the public-good instance.
const PUBLIC_GOOD_TRUSTED_ROOT: &[u8] = include_bytes!("public_good_trusted_root.json");

const TRUSTED_ROOT_TARGET: &str = "trusted_root.json";
/// Signing configurations by preference: the current format first.
const SIGNING_CONFIG_TARGETS: [&str; 2] = ["signing_config.v0.2.json", "signing_config.json"];

const CACHE_FILE: &str = "cache.json";

/// Everything read from a TUF repository is bounded by these.
#[derive(Debug, Clone)]
pub struct Bounds {
    pub max_root: u64,
    pub max_timestamp: u64,
    pub max_snapshot: u64,
    pub max_targets_metadata: u64,
    /// One target file (trusted root, signing config).
    pub max_target: u64,
    /// Root versions walked in one refresh.
    pub max_root_updates: u64,
    pub connect_timeout: Duration,
    /// One request, headers and body.
    pub request_timeout: Duration,
    /// One whole refresh.
    pub total_timeout: Duration,
}

impl Default for Bounds {
    fn default() -> Bounds {
        // Sigstore's files are a few KiB each (root ~6 KiB, trusted_root ~10 KiB): these
        // leave two orders of magnitude of room.
        Bounds {
            max_root: 512 * 1024,
            max_timestamp: 64 * 1024,
            max_snapshot: 1024 * 1024,
            max_targets_metadata: 4 * 1024 * 1024,
            max_target: 4 * 1024 * 1024,
            max_root_updates: 64,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            total_timeout: Duration::from_secs(120),
        }
    }
}

impl Bounds {
    /// The largest single response any role or target may have.
    fn max_response(&self) -> u64 {
        [
            self.max_root,
            self.max_timestamp,
            self.max_snapshot,
            self.max_targets_metadata,
            self.max_target,
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
    }
}

/// A TUF repository serving a Sigstore trust root, and the root metadata it is trusted from.
#[derive(Debug, Clone)]
pub struct TufRepository {
    url: String,
    initial_root: Vec<u8>,
    /// Bootstrapped from the public-good root: the public-good repository or a mirror of it,
    /// so the trusted root built into wharf is a valid last resort.
    public_good: bool,
}

impl TufRepository {
    pub fn public_good() -> TufRepository {
        TufRepository {
            url: PUBLIC_GOOD_TUF_URL.to_string(),
            initial_root: PUBLIC_GOOD_TUF_ROOT.to_vec(),
            public_good: true,
        }
    }

    /// A repository at `url` (default: the public-good one) trusted from `initial_root`
    /// (default: the public-good root metadata, for a mirror of the public-good repository).
    pub fn new(url: Option<&str>, initial_root: Option<Vec<u8>>) -> Result<TufRepository> {
        let mut repo = TufRepository::public_good();
        if let Some(url) = url {
            let parsed =
                url::Url::parse(url).with_context(|| format!("invalid TUF URL {url:?}"))?;
            if !matches!(parsed.scheme(), "https" | "http") {
                bail!("the TUF URL {url:?} is not http(s)");
            }
            repo.url = url.trim_end_matches('/').to_string();
        }
        if let Some(root) = initial_root {
            repo.initial_root = root;
            repo.public_good = false;
        }
        Ok(repo)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// `CACHE_HOME/wharf/tuf/<first 16 hex digits of SHA-256(url)>`.
    pub fn cache_dir(&self, cache_home: &Path) -> PathBuf {
        let hash = hex::encode(Sha256::digest(self.url.as_bytes()));
        cache_home.join("wharf").join("tuf").join(&hash[..16])
    }
}

/// The user's cache directory: `$XDG_CACHE_HOME`, else `$HOME/.cache`.
pub fn default_cache_home() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| Path::new(d).is_absolute()) {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| anyhow!("neither XDG_CACHE_HOME nor HOME is set: no cache directory"))?;
    Ok(PathBuf::from(home).join(".cache"))
}

/// Versions of the four top-level roles.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct RoleVersions {
    pub root: u64,
    pub timestamp: u64,
    pub snapshot: u64,
    pub targets: u64,
}

/// The cache file: what the last successful refresh verified.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CacheFile {
    repository: String,
    /// When the refresh happened (RFC 3339).
    updated: String,
    /// The earliest expiry of the four roles (RFC 3339): the cache is fresh until then.
    expires: String,
    versions: RoleVersions,
    /// tough's datastore (trusted root, timestamp and snapshot metadata, last known time): the
    /// start of the next refresh and its rollback protection.
    metadata: BTreeMap<String, String>,
    trusted_root: String,
    signing_config: Option<String>,
}

/// The cached state of one repository, as `wharf trust update` and `wharf trust show` print it.
#[derive(Debug, Clone, Serialize)]
pub struct TufStatus {
    pub repository: String,
    pub cache_file: PathBuf,
    pub updated: String,
    pub expires: String,
    /// Not yet expired: commands use it without asking the repository.
    pub fresh: bool,
    pub versions: RoleVersions,
    pub trusted_root_sha256: String,
    pub signing_config: bool,
}

/// Where the trust material in hand comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrustSource {
    /// The cache, not yet expired: no network.
    FreshCache,
    /// Just fetched and verified.
    Refreshed,
    /// The cache, expired, because a refresh failed.
    StaleCache,
    /// The trusted root built into wharf, because a refresh failed and nothing was cached.
    BuiltIn,
}

/// Current Sigstore trust material: the bytes of `trusted_root.json` (for
/// [`TrustRoot::from_json`]) and, when the repository has one, of the signing configuration.
#[derive(Debug, Clone)]
pub struct TrustMaterial {
    pub trusted_root: Vec<u8>,
    pub signing_config: Option<Vec<u8>>,
    pub source: TrustSource,
    /// One line for the user when the material is not what the repository vouches for now.
    pub warning: Option<String>,
}

/// A TUF client for one repository and its cache.
pub struct TufClient {
    repo: TufRepository,
    cache_dir: PathBuf,
    bounds: Bounds,
    http: reqwest::Client,
}

impl TufClient {
    pub fn new(repo: TufRepository, cache_home: &Path, bounds: Bounds) -> Result<TufClient> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("wharf/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(bounds.connect_timeout)
            .timeout(bounds.request_timeout)
            .build()?;
        Ok(TufClient {
            cache_dir: repo.cache_dir(cache_home),
            repo,
            bounds,
            http,
        })
    }

    pub fn repository(&self) -> &TufRepository {
        &self.repo
    }

    pub fn cache_file(&self) -> PathBuf {
        self.cache_dir.join(CACHE_FILE)
    }

    /// The cached state, without any network; `None` when nothing is cached.
    pub fn status(&self) -> Result<Option<TufStatus>> {
        Ok(self.read_cache()?.map(|c| self.status_of(&c)))
    }

    /// The trusted root (and signing configuration) to use now: the cache while it is fresh;
    /// otherwise refreshed from the repository; when that fails, the stale cache or the
    /// built-in root with a warning, or an error for a private repository with nothing cached.
    pub async fn current(&self) -> Result<TrustMaterial> {
        let cached = self.read_cache();
        if let Ok(Some(cache)) = &cached {
            if is_fresh(cache) {
                return Ok(material(cache, TrustSource::FreshCache, None));
            }
        }
        let error = match self.refresh().await {
            Ok(cache) => return Ok(material(&cache, TrustSource::Refreshed, None)),
            Err(e) => e,
        };
        let why = format!(
            "cannot refresh the Sigstore trust root from the TUF repository {}: {}",
            self.repo.url,
            one_line(&format!("{error:#}"))
        );
        match cached {
            Ok(Some(cache)) => {
                let warning = format!(
                    "{why}; using the copy cached on {} (expired {})",
                    cache.updated, cache.expires
                );
                Ok(material(&cache, TrustSource::StaleCache, Some(warning)))
            }
            Ok(None) | Err(_) if self.repo.public_good => Ok(TrustMaterial {
                trusted_root: PUBLIC_GOOD_TRUSTED_ROOT.to_vec(),
                signing_config: None,
                source: TrustSource::BuiltIn,
                warning: Some(format!(
                    "{why}; using the public-good trusted root built into wharf"
                )),
            }),
            Ok(None) => Err(error.context(format!(
                "no Sigstore trust root: the TUF repository {} cannot be read and nothing is cached",
                self.repo.url
            ))),
            Err(cache_error) => Err(cache_error.context(why)),
        }
    }

    /// Fetches and verifies the repository's current metadata and trust root now, and caches
    /// them. The cache is replaced only when everything verified.
    pub async fn update(&self) -> Result<TufStatus> {
        let cache = self.refresh().await?;
        Ok(self.status_of(&cache))
    }

    async fn refresh(&self) -> Result<CacheFile> {
        let deadline = self.bounds.total_timeout;
        tokio::time::timeout(deadline, self.fetch_and_cache())
            .await
            .map_err(|_| {
                anyhow!(
                    "the TUF repository {} did not answer within {} s",
                    self.repo.url,
                    deadline.as_secs()
                )
            })?
    }

    async fn fetch_and_cache(&self) -> Result<CacheFile> {
        // A cache that cannot be read is not used as the start: the initial root is.
        let previous = self.read_cache().ok().flatten();
        let datastore = tempfile::Builder::new()
            .prefix("wharf-tuf-")
            .tempdir()
            .context("cannot create a temporary TUF datastore")?;
        let initial_root = match &previous {
            Some(cache) => {
                for (name, text) in &cache.metadata {
                    std::fs::write(datastore.path().join(name), text)?;
                }
                cache
                    .metadata
                    .get("root.json")
                    .map(|r| r.as_bytes().to_vec())
                    .unwrap_or_else(|| self.repo.initial_root.clone())
            }
            None => self.repo.initial_root.clone(),
        };
        let metadata_url = url::Url::parse(&format!("{}/", self.repo.url))?;
        let targets_url = url::Url::parse(&format!("{}/targets/", self.repo.url))?;
        let b = &self.bounds;
        let repository = tough::RepositoryLoader::new(&initial_root, metadata_url, targets_url)
            .transport(BoundedTransport {
                http: self.http.clone(),
                max_bytes: b.max_response(),
            })
            .limits(tough::Limits {
                max_root_size: b.max_root,
                max_targets_size: b.max_targets_metadata,
                max_timestamp_size: b.max_timestamp,
                max_snapshot_size: b.max_snapshot,
                max_root_updates: b.max_root_updates,
            })
            .datastore(datastore.path())
            .expiration_enforcement(tough::ExpirationEnforcement::Safe)
            .load()
            .await
            .map_err(tough_error)
            .with_context(|| format!("TUF repository {}", self.repo.url))?;

        let trusted_root = self
            .read_target(&repository, TRUSTED_ROOT_TARGET)
            .await?
            .ok_or_else(|| {
                anyhow!(
                    "the TUF repository {} has no {TRUSTED_ROOT_TARGET} target",
                    self.repo.url
                )
            })?;
        TrustRoot::from_json(trusted_root.as_bytes()).with_context(|| {
            format!(
                "the {TRUSTED_ROOT_TARGET} of the TUF repository {}",
                self.repo.url
            )
        })?;
        let mut signing_config = None;
        for name in SIGNING_CONFIG_TARGETS {
            if let Some(text) = self.read_target(&repository, name).await? {
                signing_config = Some(text);
                break;
            }
        }

        let expires = [
            repository.root().signed.expires,
            repository.timestamp().signed.expires,
            repository.snapshot().signed.expires,
            repository.targets().signed.expires,
        ]
        .into_iter()
        .min()
        .expect("four roles");
        let cache = CacheFile {
            repository: self.repo.url.clone(),
            updated: format_rfc3339(unix_now()),
            expires: format_rfc3339(expires.as_second()),
            versions: RoleVersions {
                root: repository.root().signed.version.get(),
                timestamp: repository.timestamp().signed.version.get(),
                snapshot: repository.snapshot().signed.version.get(),
                targets: repository.targets().signed.version.get(),
            },
            metadata: read_datastore(datastore.path(), b.max_response())?,
            trusted_root,
            signing_config,
        };
        self.write_cache(&cache)?;
        Ok(cache)
    }

    /// One target, verified by tough against the targets metadata (length and hashes);
    /// `None` when the repository does not list it.
    async fn read_target(
        &self,
        repository: &tough::Repository,
        name: &str,
    ) -> Result<Option<String>> {
        let target_name = TargetName::new(name).map_err(tough_error)?;
        let Ok(target) = repository.targets().signed.find_target(&target_name, false) else {
            return Ok(None);
        };
        if target.length > self.bounds.max_target {
            bail!(
                "the TUF target {name} is {} bytes, more than the {} wharf accepts",
                target.length,
                self.bounds.max_target
            );
        }
        let stream = repository
            .read_target(&target_name)
            .await
            .map_err(tough_error)
            .with_context(|| format!("TUF target {name}"))?
            .ok_or_else(|| anyhow!("the TUF target {name} is listed but cannot be read"))?;
        let bytes = stream
            .into_vec()
            .await
            .map_err(tough_error)
            .with_context(|| format!("TUF target {name}"))?;
        let text = String::from_utf8(bytes)
            .with_context(|| format!("the TUF target {name} is not UTF-8"))?;
        Ok(Some(text))
    }

    fn read_cache(&self) -> Result<Option<CacheFile>> {
        let path = self.cache_file();
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        // The datastore plus two targets: bounded like what the network may send.
        let limit = 8 * self.bounds.max_response();
        let mut bytes = Vec::new();
        file.take(limit + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if bytes.len() as u64 > limit {
            bail!(
                "the TUF cache {} is larger than {limit} bytes",
                path.display()
            );
        }
        let cache: CacheFile = serde_json::from_slice(&bytes)
            .with_context(|| format!("the TUF cache {} is damaged", path.display()))?;
        if cache.repository != self.repo.url {
            bail!(
                "the TUF cache {} belongs to {}, not {}",
                path.display(),
                cache.repository,
                self.repo.url
            );
        }
        parse_rfc3339(&cache.expires)
            .with_context(|| format!("the TUF cache {} is damaged", path.display()))?;
        Ok(Some(cache))
    }

    /// Writes the cache file whole: a temporary file in the same directory, synced, then
    /// renamed over the old one. Readers see the old file or the new one, never a mix.
    fn write_cache(&self, cache: &CacheFile) -> Result<()> {
        std::fs::create_dir_all(&self.cache_dir)
            .with_context(|| format!("cannot create {}", self.cache_dir.display()))?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.cache_dir)
            .with_context(|| format!("cannot write into {}", self.cache_dir.display()))?;
        serde_json::to_writer_pretty(&mut tmp, cache)?;
        tmp.write_all(b"\n")?;
        tmp.as_file().sync_all()?;
        let path = self.cache_file();
        tmp.persist(&path)
            .with_context(|| format!("cannot replace {}", path.display()))?;
        Ok(())
    }

    fn status_of(&self, cache: &CacheFile) -> TufStatus {
        TufStatus {
            repository: cache.repository.clone(),
            cache_file: self.cache_file(),
            updated: cache.updated.clone(),
            expires: cache.expires.clone(),
            fresh: is_fresh(cache),
            versions: cache.versions,
            trusted_root_sha256: hex::encode(Sha256::digest(cache.trusted_root.as_bytes())),
            signing_config: cache.signing_config.is_some(),
        }
    }
}

fn material(cache: &CacheFile, source: TrustSource, warning: Option<String>) -> TrustMaterial {
    TrustMaterial {
        trusted_root: cache.trusted_root.as_bytes().to_vec(),
        signing_config: cache.signing_config.as_ref().map(|s| s.as_bytes().to_vec()),
        source,
        warning,
    }
}

fn is_fresh(cache: &CacheFile) -> bool {
    parse_rfc3339(&cache.expires).is_ok_and(|expires| unix_now() < expires)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Control characters (a peer's text inside an error) folded into spaces: one line.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A tough error as one readable line. Each level of tough's errors repeats its source in
/// its own text, so the chain printed whole says everything three times: keep what the
/// outermost level adds (which file) and the innermost cause (what was wrong with it).
fn tough_error(error: tough::error::Error) -> anyhow::Error {
    let mut chain = Vec::new();
    let mut next: Option<&dyn std::error::Error> = Some(&error);
    while let Some(e) = next {
        chain.push(e.to_string());
        next = e.source();
    }
    let (outer, inner) = (&chain[0], &chain[chain.len() - 1]);
    if chain.len() == 1 {
        return anyhow!(one_line(outer));
    }
    let own = chain
        .get(1)
        .and_then(|source| outer.strip_suffix(&format!(": {source}")))
        .unwrap_or(outer);
    // "Failed to fetch URL" adds nothing to a cause that names the URL itself.
    let url = own.split_whitespace().find(|w| w.starts_with("http"));
    if own.contains(inner.as_str()) {
        anyhow!(one_line(own))
    } else if url.is_some_and(|u| inner.contains(u)) {
        anyhow!(one_line(inner))
    } else {
        anyhow!(one_line(&format!("{own}: {inner}")))
    }
}

/// The files tough left in its datastore, as text, bounded in number and size.
fn read_datastore(dir: &Path, max_file: u64) -> Result<BTreeMap<String, String>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".json") || !entry.file_type()?.is_file() {
            continue;
        }
        if files.len() >= 16 {
            bail!("the TUF datastore holds more files than expected");
        }
        if entry.metadata()?.len() > max_file {
            bail!("the TUF datastore file {name} is larger than {max_file} bytes");
        }
        files.insert(name, std::fs::read_to_string(entry.path())?);
    }
    Ok(files)
}

/// HTTP for tough: every response read whole into memory, at most `max_bytes`, each request
/// within the client's timeouts. 404 and 403 mean "no such file" (what object stores answer),
/// which ends the walk up the root chain.
#[derive(Debug, Clone)]
struct BoundedTransport {
    http: reqwest::Client,
    max_bytes: u64,
}

#[async_trait::async_trait]
impl Transport for BoundedTransport {
    async fn fetch(&self, url: url::Url) -> Result<TransportStream, TransportError> {
        let other = |e: anyhow::Error| {
            TransportError::new_with_cause(TransportErrorKind::Other, url.as_str(), e)
        };
        let response = self
            .http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| other(anyhow!("{}", reqwest_reason(&e))))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::FORBIDDEN {
            return Err(TransportError::new(
                TransportErrorKind::FileNotFound,
                url.as_str(),
            ));
        }
        if !status.is_success() {
            return Err(other(anyhow!("HTTP {status}")));
        }
        // A body that breaks a bound fails inside the stream, not at fetch: tough takes a
        // failed fetch of the next root version for "there is none" and would carry on.
        let body = read_body(response, self.max_bytes).await.map_err(other);
        Ok(Box::pin(futures_util::stream::once(async move { body })))
    }
}

async fn read_body(mut response: reqwest::Response, max_bytes: u64) -> Result<bytes::Bytes> {
    let too_large = || anyhow!("the response is larger than {max_bytes} bytes");
    if response.content_length().is_some_and(|n| n > max_bytes) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| anyhow!("{}", reqwest_reason(&e)))?
    {
        if (body.len() + chunk.len()) as u64 > max_bytes {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(bytes::Bytes::from(body))
}

/// reqwest's own error text plus its innermost cause ("connection refused", "timed out").
fn reqwest_reason(e: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = e;
    while let Some(next) = source.source() {
        source = next;
    }
    if e.is_timeout() {
        "timed out".to_string()
    } else {
        source.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_good_root_metadata_is_tuf_root() {
        let root: serde_json::Value = serde_json::from_slice(PUBLIC_GOOD_TUF_ROOT).unwrap();
        assert_eq!(root["signed"]["_type"], "root");
        assert_eq!(root["signed"]["version"], 15);
        assert!(TrustRoot::from_json(PUBLIC_GOOD_TRUSTED_ROOT).is_ok());
    }

    #[test]
    fn cache_dir_is_keyed_by_url() {
        let home = Path::new("/cache");
        let a = TufRepository::public_good().cache_dir(home);
        let b = TufRepository::new(Some("https://tuf-repo-cdn.sigstore.dev/"), None)
            .unwrap()
            .cache_dir(home);
        let c = TufRepository::new(Some("https://tuf.example.com"), None)
            .unwrap()
            .cache_dir(home);
        assert_eq!(a, b, "a trailing slash names the same repository");
        assert_ne!(a, c);
        assert!(a.starts_with("/cache/wharf/tuf"));
        assert_eq!(a.file_name().unwrap().len(), 16);
    }

    #[test]
    fn a_private_root_has_no_built_in_fallback() {
        let repo = TufRepository::new(Some("https://tuf.example.com"), Some(b"{}".to_vec()));
        assert!(!repo.unwrap().public_good);
        let mirror = TufRepository::new(Some("https://mirror.example.com"), None).unwrap();
        assert!(mirror.public_good);
        assert!(TufRepository::new(Some("file:///etc"), None).is_err());
    }

    #[tokio::test]
    async fn unreachable_public_good_mirror_falls_back_with_a_warning() {
        let cache = tempfile::tempdir().unwrap();
        // Port 1 on loopback: nothing listens, the connection is refused at once.
        let repo = TufRepository::new(Some("http://127.0.0.1:1"), None).unwrap();
        let client = TufClient::new(repo, cache.path(), Bounds::default()).unwrap();
        let material = client.current().await.unwrap();
        assert_eq!(material.source, TrustSource::BuiltIn);
        let warning = material.warning.unwrap();
        assert!(warning.contains("http://127.0.0.1:1"), "{warning}");
        assert!(!warning.contains('\n'), "{warning}");
        assert!(
            client.status().unwrap().is_none(),
            "a failed refresh cached nothing"
        );
    }

    #[tokio::test]
    async fn unreachable_private_repository_is_an_error() {
        let cache = tempfile::tempdir().unwrap();
        let repo = TufRepository::new(Some("http://127.0.0.1:1"), Some(b"{}".to_vec())).unwrap();
        let client = TufClient::new(repo, cache.path(), Bounds::default()).unwrap();
        let err = client.current().await.unwrap_err();
        assert!(format!("{err:#}").contains("nothing is cached"), "{err:#}");
    }
}
