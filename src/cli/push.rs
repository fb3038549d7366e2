//! `wharf push`.

use super::{default_jobs, CredentialTargets, GlobalArgs};
use crate::oci::ImageRef;
use crate::ops::push::{layout_source, push, PushRequest};
use anyhow::Result;
use clap::Args;
use std::process::ExitCode;

/// Push a (multi-arch) image from an OCI image layout to a registry, by digest.
///
/// Every blob and manifest is written byte-for-byte, so the digests at the destination are
/// the layout's. Blobs go first, then per-platform manifests, then the index. Nothing is tagged
/// unless you ask with --tag, and tags are written only once everything else is in place.
/// What the destination already has is skipped. Into a layout, an image pushed without a tag
/// is still listed in its index.json (without a name).
///
/// The layout may be a directory or a tar archive of one (what `docker buildx build --output
/// type=oci,dest=FILE.tar` and `skopeo copy ... oci-archive:FILE.tar` write).
///
/// Examples:
///   wharf push ./out ghcr.io/acme/app --output json
///   wharf push ./out:v1.2.0 localhost:5000/app --tag v1.2.0
///   wharf push ./image.tar localhost:5000/app --tag v1
///   wharf push ./out oci:./mirror-dir --tag v1
///   wharf push ./out oci-archive:./release.tar --tag v1
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct PushArgs {
    /// The OCI image layout: a directory or a .tar file (or oci:DIR, oci-archive:FILE), with
    /// :REF to pick an index.json entry by its org.opencontainers.image.ref.name (optional
    /// when the layout holds one image), or @sha256:DIGEST.
    #[arg(value_name = "LAYOUT[:REF]")]
    pub layout: String,

    /// Where to: HOST[:PORT]/REPO, oci:DIR (a layout directory, created if absent) or
    /// oci-archive:FILE (a layout in one tar file, written whole at the end; added to when
    /// it exists).
    #[arg(value_name = "DEST")]
    pub dest: String,

    /// Tag to point at the pushed image once it is complete (repeatable).
    #[arg(long = "tag", short = 't', value_name = "TAG")]
    pub tags: Vec<String>,

    /// How many blobs to upload at once.
    #[arg(long, short = 'j', default_value_t = default_jobs(), value_name = "N")]
    pub jobs: usize,
}

pub async fn run(args: &PushArgs, global: &GlobalArgs) -> Result<ExitCode> {
    let request = PushRequest {
        source: layout_source(&args.layout)?,
        dest: ImageRef::parse(&args.dest)?,
        tags: args.tags.clone(),
        jobs: args.jobs,
    };
    let stores = global.stores(CredentialTargets::image(&request.dest))?;
    let report = push(&stores, &request, &global.progress()).await?;
    global.emit(&report)?;
    Ok(ExitCode::SUCCESS)
}
