//! `wharf policy` and `wharf docs verify`: documents generated from the release config.

use super::GlobalArgs;
use crate::release::docs::verifying_guide;
use crate::release::policy::{admission_policy, Controller};
use crate::release::ReleaseConfig;
use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum PolicyFormat {
    SigstorePolicyController,
    Kyverno,
}

/// Write the Kubernetes admission policy that enforces what the release config promises: the
/// signature by the release key or keyless identity (regexps anchored as wharf matches them),
/// in the format the release writes, and its SLSA provenance, for the primary repository and
/// every registry mirror: only those repositories' tags and digests, in every spelling the
/// controller compares (Docker Hub's included). The policy's comments say what the controller
/// cannot check (per-platform SBOMs; the workflow repository with policy-controller) and the
/// controller version it needs. Deploy images by digest; the Kyverno policy also rewrites tags
/// to digests.
///
/// Examples:
///   wharf policy --format sigstore-policy-controller > cluster-image-policy.yaml
///   wharf policy --format kyverno --config wharf.toml -o kyverno-policy.yaml
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct PolicyArgs {
    #[arg(long, value_enum)]
    pub format: PolicyFormat,
    #[arg(long, short = 'c', default_value = "wharf.toml", value_name = "FILE")]
    pub config: PathBuf,
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub sets: Vec<String>,
    /// Write to this file instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output_file: Option<PathBuf>,
}

/// Generated documentation.
#[derive(Args, Debug)]
pub struct DocsArgs {
    #[command(subcommand)]
    pub command: DocsCommand,
}

#[derive(Subcommand, Debug)]
pub enum DocsCommand {
    Verify(DocsVerifyArgs),
}

/// Write docs/verifying.md: how users verify the project's images and mirrors with wharf and
/// cosign (signatures, SBOMs, provenance), and for key-signed releases the key's fingerprint and
/// where to get it, generated from the release config so it never drifts.
#[derive(Args, Debug)]
pub struct DocsVerifyArgs {
    #[arg(long, short = 'c', default_value = "wharf.toml", value_name = "FILE")]
    pub config: PathBuf,
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub sets: Vec<String>,
    /// The project's name, for the title (default: the repository's last path element).
    #[arg(long)]
    pub project: Option<String>,
    #[arg(
        long,
        short = 'o',
        default_value = "docs/verifying.md",
        value_name = "FILE"
    )]
    pub output_file: PathBuf,
}

fn write(output: Option<&PathBuf>, text: &str) -> Result<()> {
    match output {
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            crate::files::write_output(path, text.as_bytes())
        }
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

pub fn run_policy(args: &PolicyArgs, _global: &GlobalArgs) -> Result<ExitCode> {
    let config = ReleaseConfig::read(&args.config, &args.sets)?;
    let key_pem = config
        .public_key()?
        .map(|k| crate::sign::keys::public_key_pem(&k));
    let controller = match args.format {
        PolicyFormat::SigstorePolicyController => Controller::PolicyController,
        PolicyFormat::Kyverno => Controller::Kyverno,
    };
    write(
        args.output_file.as_ref(),
        &admission_policy(&config, controller, key_pem.as_deref())?,
    )?;
    Ok(ExitCode::SUCCESS)
}

pub fn run_docs(args: &DocsArgs, _global: &GlobalArgs) -> Result<ExitCode> {
    let DocsCommand::Verify(args) = &args.command;
    let config = ReleaseConfig::read(&args.config, &args.sets)?;
    let project = args.project.clone().unwrap_or_else(|| {
        config
            .repository
            .rsplit('/')
            .next()
            .unwrap_or("the project")
            .to_string()
    });
    let fingerprint = config
        .public_key()?
        .map(|k| crate::sign::keys::fingerprint(&k));
    write(
        Some(&args.output_file),
        &verifying_guide(&config, &project, fingerprint.as_deref())?,
    )?;
    Ok(ExitCode::SUCCESS)
}
