//! `wharf download signature|attestation|sbom`, as cosign's: unverified, one JSON line per
//! signature or DSSE envelope (the SBOM as it is), from both storage schemes.

use super::{CredentialTargets, GlobalArgs, OutputFormat};
use crate::cosign::attestation;
use crate::oci::{Digest, ImageRef, Platform};
use crate::ops::attest::platform_manifest;
use crate::ops::download;
use crate::store::Store;
use anyhow::Result;
use clap::{Args, Subcommand};
use std::io::Write;
use std::process::ExitCode;

/// Print what is attached to an image, unverified, as `cosign download` does.
///
/// Reads both storage schemes: cosign 2.x's sha256-<hex>.sig/.att/.sbom tags and Sigstore
/// bundle (or SBOM) referrers. Nothing is verified: use `wharf verify` and
/// `wharf verify-attestation` for that. An image with nothing of the kind attached is an
/// error, never an empty answer.
///
/// Examples:
///   wharf download signature ghcr.io/acme/app@sha256:...
///   wharf download attestation --predicate-type https://cyclonedx.org/bom \
///     ghcr.io/acme/app:2.1.0@sha256:... | jq -r .payload | base64 -d | jq .predicate
///   wharf download sbom ghcr.io/acme/app@sha256:... > sbom.json  # as cosign attach sbom attached it
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct DownloadArgs {
    #[command(subcommand)]
    pub what: Download,
}

#[derive(Subcommand, Debug)]
pub enum Download {
    /// Print the signatures of an image, one JSON object a line.
    ///
    /// Tag scheme: cosign's SignedPayload ({"Base64Signature", "Payload" (base64), "Cert",
    /// "Chain", "Bundle", "RFC3161Timestamp"}; certificates as {"Raw": DER base64}). Bundle
    /// referrers: the Sigstore bundle, one line each.
    Signature(DownloadImageArgs),
    /// Print the attestations of an image: one DSSE envelope a line
    /// ({"payloadType", "payload" (base64 in-toto statement), "signatures"}).
    Attestation(DownloadAttestationArgs),
    /// Write the SBOM attached to an image (cosign attach sbom's .sbom tag, or an SBOM
    /// referrer) to standard output, as it is; its media type goes to standard error.
    Sbom(DownloadPlatformArgs),
}

#[derive(Args, Debug)]
pub struct DownloadImageArgs {
    /// The image: HOST/REPO[:TAG][@DIGEST], oci:DIR[:REF][@DIGEST].
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

#[derive(Args, Debug)]
pub struct DownloadPlatformArgs {
    #[command(flatten)]
    pub image: DownloadImageArgs,

    /// For an index: the platform (os/arch[/variant]) whose manifest to read.
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
}

#[derive(Args, Debug)]
pub struct DownloadAttestationArgs {
    #[command(flatten)]
    pub target: DownloadPlatformArgs,

    /// Only attestations of this predicate type (a URI, or cyclonedx, spdxjson,
    /// slsaprovenance1, ... as `wharf attest --type` takes).
    #[arg(long, value_name = "TYPE")]
    pub predicate_type: Option<String>,
}

pub async fn run(args: &DownloadArgs, global: &GlobalArgs) -> Result<ExitCode> {
    let mut lines: Vec<String> = Vec::new();
    match &args.what {
        Download::Signature(a) => {
            let (store, digest) = open(a, None, global).await?;
            for s in download::signatures(store.as_ref(), &digest).await? {
                lines.push(serde_json::to_string(&s)?);
            }
        }
        Download::Attestation(a) => {
            let predicate_type = a
                .predicate_type
                .as_deref()
                .map(attestation::predicate_type)
                .transpose()?;
            let (store, digest) =
                open(&a.target.image, a.target.platform.as_deref(), global).await?;
            for e in
                download::attestations(store.as_ref(), &digest, predicate_type.as_deref()).await?
            {
                lines.push(serde_json::to_string(&e)?);
            }
        }
        Download::Sbom(a) => {
            let (store, digest) = open(&a.image, a.platform.as_deref(), global).await?;
            let (media_type, bytes) = download::sbom(store.as_ref(), &digest).await?;
            if global.output == OutputFormat::Json {
                // The SBOM is the result; with --output json it must be JSON itself.
                serde_json::from_slice::<serde_json::Value>(&bytes)
                    .map_err(|e| anyhow::anyhow!("the SBOM ({media_type}) is not JSON: {e}"))?;
            }
            if !global.quiet {
                eprintln!("Found SBOM of media type: {media_type}");
            }
            std::io::stdout().write_all(&bytes)?;
            return Ok(ExitCode::SUCCESS);
        }
    }
    let mut out = std::io::stdout().lock();
    for line in lines {
        writeln!(out, "{line}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The store and the manifest digest to read: IMAGE's own digest (its manifest need not
/// exist, as with cosign), its tag resolved, or with `platform` that platform's manifest.
async fn open(
    image: &DownloadImageArgs,
    platform: Option<&str>,
    global: &GlobalArgs,
) -> Result<(std::sync::Arc<dyn Store>, Digest)> {
    let image = ImageRef::parse(&image.image)?;
    let platform = platform.map(Platform::parse).transpose()?;
    let stores = global.stores(CredentialTargets::image(&image))?;
    let store = stores.open(&image).await?;
    let digest = super::sign::digest_of(store.as_ref(), &image, true).await?;
    let (digest, _) = platform_manifest(store.as_ref(), &digest, platform.as_ref()).await?;
    Ok((store, digest))
}
