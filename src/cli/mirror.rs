//! `wharf mirror`.

use super::{default_jobs, CredentialTargets, GlobalArgs};
use crate::oci::ImageRef;
use crate::ops::mirror::{mirror, MirrorRequest};
use crate::store::Stores;
use anyhow::Result;
use clap::Args;
use std::process::ExitCode;

/// Copy an image with its signatures, attestations and referrers, byte for byte.
///
/// Copies the index, every platform's manifest and blob, and everything attached to any of
/// them: cosign's sha256-<hex>.sig/.att/.sbom tags and OCI 1.1 referrers (through the referrers
/// API, or the sha256-<hex> fallback tag index), recursively. Digests at the destination equal
/// the source's, so the same `verify` command works against either. The destination gets the
/// source tag (if SRC names one) and any --tag, and only once everything is in place; no other
/// tag is created. Rerunning skips what already arrived.
///
/// SRC and DST are HOST/REPO[:TAG|@DIGEST], oci:DIR[:REF] (an OCI layout directory) or
/// oci-archive:FILE[:REF] (the same layout in one tar file, as skopeo and `docker buildx
/// --output type=oci` write it), in any combination. Several images can share one layout:
/// each keeps its index.json entries. An archive destination is written whole once the
/// mirror succeeds (under a temporary name, then renamed); one that exists is added to.
/// Each registry gets its own credentials: DST's from --registry-username, SRC's from
/// --source-registry-username, or either from --registry-auth-file, podman's auth.json or the
/// Docker config.
///
/// Examples:
///   wharf mirror ghcr.io/acme/app:v1.2.0 123456789.dkr.ecr.eu-west-1.amazonaws.com/app
///   wharf mirror docker.io/acme/app@sha256:... oci:./airgap
///   wharf mirror ghcr.io/acme/app:v1.2.0 oci-archive:./app-v1.2.0.tar
///   wharf mirror oci-archive:./app-v1.2.0.tar:v1.2.0 registry.internal/acme/app
///   echo "$DST_TOKEN" | WHARF_SOURCE_REGISTRY_PASSWORD="$SRC_TOKEN" wharf mirror \
///     --source-registry-username src-bot --registry-username dst-bot \
///     --registry-password-stdin ghcr.io/acme/app:v1 registry.internal/acme/app
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct MirrorArgs {
    /// What to copy: HOST/REPO:TAG, HOST/REPO@sha256:..., oci:DIR[:REF] or
    /// oci-archive:FILE[:REF].
    #[arg(value_name = "SRC")]
    pub source: String,

    /// Where to: HOST/REPO (the source tag comes along), HOST/REPO:TAG, oci:DIR or
    /// oci-archive:FILE.
    #[arg(value_name = "DST")]
    pub dest: String,

    /// Extra tag for the image at the destination (repeatable).
    #[arg(long = "tag", short = 't', value_name = "TAG")]
    pub tags: Vec<String>,

    /// How many transfers to run at once.
    #[arg(long, short = 'j', default_value_t = default_jobs(), value_name = "N")]
    pub jobs: usize,
}

impl MirrorArgs {
    /// The request these arguments make, and the stores to run it with: credentials for the
    /// destination from the target flags, for the source from the source flags.
    pub(super) fn request(&self, global: &GlobalArgs) -> Result<(MirrorRequest, Stores)> {
        let request = MirrorRequest {
            source: ImageRef::parse(&self.source)?,
            dest: ImageRef::parse(&self.dest)?,
            tags: self.tags.clone(),
            jobs: self.jobs,
        };
        let stores = global.stores(CredentialTargets {
            target: Some(&request.dest.repository),
            source: Some(&request.source.repository),
        })?;
        Ok((request, stores))
    }
}

pub async fn run(args: &MirrorArgs, global: &GlobalArgs) -> Result<ExitCode> {
    let (request, stores) = args.request(global)?;
    let report = mirror(&stores, &request, &global.progress()).await?;
    global.emit(&report)?;
    Ok(ExitCode::SUCCESS)
}
