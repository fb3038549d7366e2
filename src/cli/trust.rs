//! `wharf trust update|show`, and the TUF flags every command that needs the Sigstore trust
//! root shares (where it comes from: `sigstore::trust_source`).

use super::GlobalArgs;
use crate::report::Report;
use crate::sigstore::trust::TrustRoot;
use crate::sigstore::trust_source::{read_small, TufSource};
use crate::sigstore::tuf::{TufClient, TufStatus};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use std::path::PathBuf;
use std::process::ExitCode;

/// Where the Sigstore trust root is refreshed from.
#[derive(Args, Debug, Clone, Default)]
pub struct TufArgs {
    /// TUF repository serving the Sigstore trust root (trusted_root.json). Default: the
    /// public-good instance's, https://tuf-repo-cdn.sigstore.dev (or a mirror of it given here).
    #[arg(long, env = "WHARF_TUF_URL", value_name = "URL")]
    pub tuf_url: Option<String>,

    /// The root.json a private Sigstore deployment's TUF repository is first trusted from
    /// (newer roots are fetched and checked against it). Default: the public-good root,
    /// built in.
    #[arg(long, env = "WHARF_TUF_ROOT", value_name = "FILE")]
    pub tuf_root: Option<PathBuf>,
}

impl TufArgs {
    pub fn source(&self) -> TufSource {
        TufSource {
            url: self.tuf_url.clone(),
            root: self.tuf_root.clone(),
        }
    }

    pub fn client(&self) -> Result<TufClient> {
        self.source().client()
    }
}

/// Show or refresh the Sigstore trust root (Fulcio CAs, Rekor and CT log keys).
///
/// The trust root is Sigstore's trusted_root.json, kept current through TUF: fetched and
/// verified from the TUF repository, cached under $XDG_CACHE_HOME/wharf/tuf (or
/// ~/.cache/wharf/tuf), and refreshed automatically once the cached TUF timestamp has expired.
/// --trusted-root FILE on a command bypasses all of this.
#[derive(Args, Debug)]
pub struct TrustArgs {
    #[command(subcommand)]
    pub command: TrustCommand,
}

#[derive(Subcommand, Debug)]
pub enum TrustCommand {
    /// Fetch and verify the current trust root from the TUF repository now, and cache it.
    Update(TufArgs),
    /// Print where the trust root commands use comes from (no network).
    Show(ShowArgs),
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// A trusted_root.json that commands are given instead (bypasses TUF).
    #[arg(long, env = "WHARF_TRUSTED_ROOT", value_name = "FILE")]
    pub trusted_root: Option<PathBuf>,

    #[command(flatten)]
    pub tuf: TufArgs,
}

pub async fn run(args: &TrustArgs, global: &GlobalArgs) -> Result<ExitCode> {
    match &args.command {
        TrustCommand::Update(tuf) => update(tuf, global).await,
        TrustCommand::Show(show_args) => show(show_args, global),
    }
}

async fn update(tuf: &TufArgs, global: &GlobalArgs) -> Result<ExitCode> {
    let status = tuf.client()?.update().await?;
    global.emit(&Updated(&status))?;
    Ok(ExitCode::SUCCESS)
}

/// What `wharf trust update` reports: the refreshed cache's status.
#[derive(Serialize)]
#[serde(transparent)]
struct Updated<'a>(&'a TufStatus);

impl Report for Updated<'_> {
    fn text(&self) -> String {
        format!(
            "updated the Sigstore trust root from {}\n{}",
            self.0.repository,
            describe(self.0)
        )
    }
}

/// Where the trust root comes from, as `wharf trust show --output json` prints it.
#[derive(Serialize)]
struct ShowReport {
    /// `file` (--trusted-root), `tuf-cache`, or `not-cached` (the next command fetches it).
    source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trusted_root_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tuf: Option<TufStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    repository: Option<String>,
}

impl Report for ShowReport {
    fn text(&self) -> String {
        match (&self.file, &self.tuf, &self.repository) {
            (Some(path), _, _) => format!(
                "trusted root: {} (--trusted-root; TUF is not used)\n",
                path.display()
            ),
            (None, Some(status), _) => {
                let next = if status.fresh {
                    "fresh: used without asking the repository until it expires"
                } else {
                    "expired: the next command that needs it refreshes it"
                };
                format!(
                    "trusted root: TUF repository {}\n{}  {next}\n",
                    status.repository,
                    describe(status)
                )
            }
            (None, None, url) => format!(
                "trusted root: nothing cached yet for the TUF repository {}\n  \
                 the next command that needs it fetches it (`wharf trust update` does it now)\n",
                url.as_deref().unwrap_or_default()
            ),
        }
    }
}

fn show(args: &ShowArgs, global: &GlobalArgs) -> Result<ExitCode> {
    let report = if let Some(path) = &args.trusted_root {
        let bytes = read_small(path, 16 * 1024 * 1024)
            .with_context(|| format!("cannot read trusted root {}", path.display()))?;
        TrustRoot::from_json(&bytes).with_context(|| format!("trusted root {}", path.display()))?;
        ShowReport {
            source: "file",
            file: Some(path.clone()),
            trusted_root_sha256: Some(hex::encode(Sha256::digest(&bytes))),
            tuf: None,
            repository: None,
        }
    } else {
        let client = args.tuf.client()?;
        let url = client.repository().url().to_string();
        match client.status()? {
            Some(status) => ShowReport {
                source: "tuf-cache",
                file: None,
                trusted_root_sha256: Some(status.trusted_root_sha256.clone()),
                tuf: Some(status),
                repository: Some(url),
            },
            None => ShowReport {
                source: "not-cached",
                file: None,
                trusted_root_sha256: None,
                tuf: None,
                repository: Some(url),
            },
        }
    };
    global.emit(&report)?;
    Ok(ExitCode::SUCCESS)
}

fn describe(status: &TufStatus) -> String {
    let v = &status.versions;
    format!(
        "  cached:   {} (updated {})\n  versions: root {}, timestamp {}, snapshot {}, targets {}\n  \
         expires:  {}\n  trusted_root.json sha256: {}{}\n",
        status.cache_file.display(),
        status.updated,
        v.root,
        v.timestamp,
        v.snapshot,
        v.targets,
        status.expires,
        status.trusted_root_sha256,
        if status.signing_config {
            "\n  signing config: cached"
        } else {
            ""
        }
    )
}
