//! `wharf sbom generate` and `wharf tree`.

use super::{CredentialTargets, GlobalArgs};
use crate::oci::{ImageRef, Platform};
use crate::ops::attest::platform_manifest;
use crate::ops::tree::{tree, tree_all};
use crate::sbom::{generate, SbomRequest};
use crate::store::{resolve_reference, ManifestRef};
use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Software bills of materials.
#[derive(Args, Debug)]
pub struct SbomArgs {
    #[command(subcommand)]
    pub command: SbomCommand,
}

#[derive(Subcommand, Debug)]
pub enum SbomCommand {
    Generate(GenerateArgs),
}

/// Build a CycloneDX 1.5 JSON SBOM from an image's own layers: the OS (os-release), Debian
/// packages (dpkg status and distroless status.d), Alpine packages (apk), and Rust binaries
/// built with cargo-auditable, each with name, version, licence where known and purl.
/// Attach it with `wharf attest --type cyclonedx --predicate FILE`.
///
/// Examples:
///   wharf sbom generate ghcr.io/acme/app@sha256:... --platform linux/arm64 -o sbom.json
///   wharf sbom generate oci:./out:v1 --platform linux/amd64 -o sbom.json
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct GenerateArgs {
    /// The image: HOST/REPO[:TAG|@DIGEST] or oci:DIR[:REF|@DIGEST].
    #[arg(value_name = "IMAGE")]
    pub image: String,

    /// Which platform of a multi-platform image (os/arch[/variant]).
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,

    /// Where to write the SBOM (default: standard output).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output_file: Option<PathBuf>,
}

pub async fn run(args: &SbomArgs, global: &GlobalArgs) -> Result<ExitCode> {
    let SbomCommand::Generate(args) = &args.command;
    let image = ImageRef::parse(&args.image)?;
    let platform = args.platform.as_deref().map(Platform::parse).transpose()?;
    let stores = global.stores(CredentialTargets::image(&image))?;
    let store = stores.open(&image).await?;
    let root = resolve_reference(store.as_ref(), &image).await?;
    let (digest, platform) = if crate::oci::media::is_index(&root.media_type) {
        if platform.is_none() {
            bail!("{image} is a multi-platform index: choose one with --platform, e.g. --platform linux/amd64");
        }
        platform_manifest(store.as_ref(), &root.digest, platform.as_ref()).await?
    } else {
        (root.digest.clone(), platform)
    };
    let manifest = store
        .resolve(ManifestRef::Digest(&digest))
        .await?
        .ok_or_else(|| anyhow!("manifest {digest} not found in {}", store.repository()))?;
    let request = SbomRequest {
        image_name: store.repository().to_string(),
        manifest_digest: digest,
        platform,
    };
    let sbom = generate(store.as_ref(), &manifest, &request).await?;
    match &args.output_file {
        Some(path) => crate::files::write_output(path, &sbom)?,
        None => println!("{}", String::from_utf8_lossy(&sbom)),
    }
    Ok(ExitCode::SUCCESS)
}

/// List what is attached to an image: cosign's .sig/.att/.sbom tags and OCI referrers
/// (Sigstore bundles and other artifacts), for the image and every manifest under it.
///
/// A layout named without :REF or @DIGEST (oci:DIR, oci-archive:FILE) lists every image in it,
/// each with its tags.
#[derive(Args, Debug)]
pub struct TreeArgs {
    /// The image: HOST/REPO[:TAG|@DIGEST], oci:DIR[:REF|@DIGEST] or
    /// oci-archive:FILE[:REF|@DIGEST].
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

pub async fn run_tree(args: &TreeArgs, global: &GlobalArgs) -> Result<ExitCode> {
    let image = ImageRef::parse(&args.image)?;
    let stores = global.stores(CredentialTargets::image(&image))?;
    let store = stores.open(&image).await?;
    if image.tag.is_none() && image.digest.is_none() {
        if let Some(images) = store.images().await? {
            global.emit(&tree_all(store.as_ref(), images).await?)?;
            return Ok(ExitCode::SUCCESS);
        }
    }
    let root = resolve_reference(store.as_ref(), &image).await?;
    global.emit(&tree(store.as_ref(), &root).await?)?;
    Ok(ExitCode::SUCCESS)
}
