//! `wharf policy` and `wharf docs verify`: documents generated from the release config.

use super::key::{read_key_reference, PasswordArgs};
use super::release::load_config;
use super::GlobalArgs;
use crate::ops::release_docs::{admission_policy, verifying_guide};
use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum PolicyFormat {
    SigstorePolicyController,
    Kyverno,
}

/// Write the Kubernetes admission policy that enforces what the release config promises:
/// the signature identity (or key) and the SBOM and provenance attestations, for the primary
/// repository and every mirror. Deploy images by digest; the Kyverno policy also rewrites tags
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

/// Write docs/verifying.md: how users verify the project's images and mirrors with cosign, gh
/// and wharf, generated from the release config so it never drifts.
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
    let config = load_config(&args.config, &args.sets)?;
    let key_pem = match (&config.verify.key, &config.signing.key) {
        (Some(k), _) => {
            Some(String::from_utf8(read_key_reference(k)?).context("the public key is not text")?)
        }
        (None, Some(k)) => Some(crate::sign::keys::public_key_pem(
            &super::key::load_private_key(
                k,
                &PasswordArgs {
                    password_file: config.signing.password_file.as_ref().map(PathBuf::from),
                },
            )?
            .public_key(),
        )),
        (None, None) => None,
    };
    let format = match args.format {
        PolicyFormat::SigstorePolicyController => "sigstore-policy-controller",
        PolicyFormat::Kyverno => "kyverno",
    };
    write(
        args.output_file.as_ref(),
        &admission_policy(&config, format, key_pem.as_deref())?,
    )?;
    Ok(ExitCode::SUCCESS)
}

pub fn run_docs(args: &DocsArgs, _global: &GlobalArgs) -> Result<ExitCode> {
    let DocsCommand::Verify(args) = &args.command;
    let config = load_config(&args.config, &args.sets)?;
    let project = args.project.clone().unwrap_or_else(|| {
        config
            .repository
            .rsplit('/')
            .next()
            .unwrap_or("the project")
            .to_string()
    });
    write(Some(&args.output_file), &verifying_guide(&config, &project))?;
    Ok(ExitCode::SUCCESS)
}
