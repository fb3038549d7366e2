//! Where a command's Sigstore trust root comes from: a `trusted_root.json` file when one is
//! named (TUF is then not used), else the TUF repository's current one (see [`super::tuf`]).
//! The one place commands, and the release, get it from.

use super::trust::TrustRoot;
use super::tuf::{default_cache_home, Bounds, TrustMaterial, TufClient, TufRepository};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// A TUF repository serving a Sigstore trust root.
#[derive(Debug, Clone, Default)]
pub struct TufSource {
    /// Its URL; default: the public-good instance's (or a mirror of it named here).
    pub url: Option<String>,
    /// The root.json it is first trusted from; default: the public-good root, built in.
    pub root: Option<PathBuf>,
}

impl TufSource {
    pub fn client(&self) -> Result<TufClient> {
        let initial_root = self
            .root
            .as_ref()
            .map(|path| {
                read_small(path, 1024 * 1024)
                    .with_context(|| format!("cannot read the TUF root {}", path.display()))
            })
            .transpose()?;
        let repo = TufRepository::new(self.url.as_deref(), initial_root)?;
        TufClient::new(repo, &default_cache_home()?, Bounds::default())
    }

    /// The current trusted root through TUF: the fresh cache, else a refresh, else a
    /// fallback announced by one warning line on stderr.
    pub async fn current(&self) -> Result<TrustMaterial> {
        let material = self.client()?.current().await?;
        if let Some(warning) = &material.warning {
            eprintln!("wharf: warning: {warning}");
        }
        Ok(material)
    }
}

/// A trusted root file, else TUF.
#[derive(Debug, Clone, Default)]
pub struct TrustSource {
    pub trusted_root: Option<PathBuf>,
    pub tuf: TufSource,
}

impl TrustSource {
    /// The trust root: the file when given, else the current one through TUF.
    pub async fn load(&self) -> Result<TrustRoot> {
        match &self.trusted_root {
            Some(path) => TrustRoot::load(path),
            None => {
                let material = self.tuf.current().await?;
                TrustRoot::from_json(&material.trusted_root).context("the Sigstore trusted root")
            }
        }
    }

    /// [`Self::load`], for a check that may need no Sigstore material at all (a key without
    /// the transparency log): then the built-in root, never waiting on a TUF refresh, unless
    /// a file is named.
    pub async fn load_if(&self, needed: bool) -> Result<TrustRoot> {
        if !needed && self.trusted_root.is_none() {
            return Ok(TrustRoot::public_good());
        }
        self.load().await
    }
}

/// Reads a file of at most `limit` bytes.
pub fn read_small(path: &Path, limit: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_end(&mut bytes)?;
    anyhow::ensure!(bytes.len() as u64 <= limit, "larger than {limit} bytes");
    Ok(bytes)
}
