//! `wharf copy`: cosign's name for `wharf mirror`, with cosign's `--only`, `--force`,
//! `--platform` (and the deprecated `--sig-only`).

use super::mirror::MirrorArgs;
use super::GlobalArgs;
use crate::oci::Platform;
use crate::ops::copy_only::CopyOnly;
use crate::ops::mirror::copy;
use anyhow::Result;
use clap::Args;
use std::process::ExitCode;

/// Copy an image and what is attached to it (cosign's name for `wharf mirror`).
///
/// Everything `wharf mirror` does (see `wharf mirror --help`), byte for byte, plus cosign's
/// flags: --only to take along only some attachments (the image is copied by digest and no
/// tag is written, as cosign does), --platform to copy one platform's manifest, and --force
/// to move a destination tag that names another image (without it, that is an error, as in
/// cosign). Signature and attestation tags are merged with the destination's, never
/// overwritten, with or without --force.
///
/// Examples:
///   wharf copy ghcr.io/acme/app:v1.2.0 registry.internal/acme/app:v1.2.0
///   wharf copy --only sig,att ghcr.io/acme/app@sha256:... registry.internal/acme/app
///   wharf copy --platform linux/arm64 ghcr.io/acme/app:v1 registry.internal/acme/app-arm64:v1
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct CopyArgs {
    #[command(flatten)]
    pub mirror: MirrorArgs,

    /// Copy only these attachments (comma-separated: sig, att, sbom) with the image, by
    /// digest, and write no tag.
    #[arg(long, value_name = "KINDS")]
    pub only: Vec<String>,

    /// Deprecated in cosign: the same as --only sig.
    #[arg(long, hide = true)]
    pub sig_only: bool,

    /// Move destination tags that name another image.
    #[arg(long, short = 'f')]
    pub force: bool,

    /// Copy only the manifest of this platform (os/arch[/variant]) under the index, with
    /// what is attached to it.
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
}

pub async fn run(args: &CopyArgs, global: &GlobalArgs) -> Result<ExitCode> {
    let mut only_values = args.only.clone();
    if args.sig_only {
        only_values.push("sig".into());
    }
    let only = if only_values.is_empty() {
        CopyOnly::all()
    } else {
        CopyOnly::parse(&only_values)?
    };
    let platform = args.platform.as_deref().map(Platform::parse).transpose()?;
    let (request, stores) = args.mirror.request(global)?;
    let report = copy(
        &stores,
        request,
        &only,
        platform.as_ref(),
        args.force,
        &global.progress(),
    )
    .await?;
    global.emit(&report)?;
    Ok(ExitCode::SUCCESS)
}
