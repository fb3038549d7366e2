//! `wharf release`: its flags; the release itself is [`crate::release`].

use super::trust::TufArgs;
use super::{default_jobs, CredentialTargets, GlobalArgs};
use crate::oci::ImageRef;
use crate::release::{self, ReleaseConfig, RunOptions};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Run the whole release: push by digest, sign every manifest, attest SBOMs and provenance,
/// verify, tag, mirror, and verify the mirrors, as wharf.toml says.
///
/// The order never lets a tag point at unsigned content. Every step checks first whether its
/// result is already there and verifies, so rerunning after a failure finishes the job without
/// duplicate signatures. Any config value can be overridden with --set PATH=VALUE or an
/// environment variable WHARF_CFG_PATH (sections joined by "__", e.g. WHARF_CFG_SIGNING__KEY).
///
/// Examples:
///   wharf release --config wharf.toml
///   wharf release --config wharf.toml --dry-run
///   wharf release --config wharf.toml --set 'tags=["v1.2.0","1.2","latest"]' --output json
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct ReleaseArgs {
    /// The release configuration (see docs/release-config.md).
    #[arg(long, short = 'c', default_value = "wharf.toml", value_name = "FILE")]
    pub config: PathBuf,

    /// Override a config value (repeatable), e.g. --set signing.key=env://RELEASE_KEY.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub sets: Vec<String>,

    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// How many transfers and signatures at once.
    #[arg(long, short = 'j', default_value_t = default_jobs(), value_name = "N")]
    pub jobs: usize,

    #[command(flatten)]
    pub tuf: TufArgs,
}

pub async fn run(args: &ReleaseArgs, global: &GlobalArgs) -> Result<ExitCode> {
    let config = ReleaseConfig::read(&args.config, &args.sets)?;
    if args.dry_run {
        global.emit(&release::plan(&config, &args.config.display().to_string()))?;
        return Ok(ExitCode::SUCCESS);
    }
    if config.signing.key.is_none() {
        let trusted_root = config
            .signing
            .trusted_root
            .as_deref()
            .map(std::path::Path::new);
        super::cosign_env::refuse_sigstore_root_file(trusted_root)?;
    }
    // --registry-username is for the registry the release publishes to; mirrors get theirs
    // from --registry-auth-file or the Docker config.
    let primary = ImageRef::parse(&config.repository)?;
    let options = RunOptions {
        registry: global.registry_options(CredentialTargets::image(&primary))?,
        tuf: args.tuf.source(),
        jobs: args.jobs,
    };
    let chatty = global.chatty();
    let report = release::run(&config, options, &global.progress(), &|step| {
        if chatty {
            eprintln!("wharf: {step}");
        }
    })
    .await?;
    global.emit(&report)?;
    Ok(ExitCode::SUCCESS)
}
