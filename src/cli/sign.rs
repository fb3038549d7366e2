//! `wharf sign` and `wharf verify`.

use super::key::{load_private_key, load_public_key, PasswordArgs};
use super::{default_jobs, github, GlobalArgs};
use crate::oci::{Digest, ImageRef};
use crate::ops::sign::{sign, SignRequest};
use crate::ops::verify::{verify, Policy, VerifyRequest};
use crate::sign::KeySigner;
use crate::store::{resolve_reference, Store};
use anyhow::{anyhow, bail, Result};
use clap::{ArgAction, Args};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::process::ExitCode;

/// Sign an image by digest, cosign-compatibly (tag sha256-<hex>.sig in the same repository).
///
/// With --recursive, the index and every manifest under it are signed, so each platform can be
/// verified on its own. Signatures are added to those already there, never replacing them; a
/// signature by the same key on the same payload is not added twice.
///
/// Examples:
///   wharf sign --key cosign.key --recursive ghcr.io/acme/app@sha256:...
///   wharf sign --key env://SIGNING_KEY --tlog-upload=false oci:./out@sha256:...
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct SignArgs {
    /// The image, by digest: HOST/REPO@sha256:... or oci:DIR@sha256:...
    #[arg(value_name = "IMAGE@DIGEST")]
    pub image: String,

    /// The private key: a file (cosign, PKCS#8 or SEC1 PEM), or env://VAR.
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,

    /// Sign the index and every manifest under it.
    #[arg(long, short = 'r')]
    pub recursive: bool,

    /// Extra claim for the signed payload (repeatable), e.g. -a git-sha=abc123.
    #[arg(long = "annotations", short = 'a', value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,

    /// Accept IMAGE:TAG: resolve the tag once, sign that digest and print it.
    #[arg(long)]
    pub resolve_tag: bool,

    /// Upload the signature to the Rekor transparency log (as cosign does by default).
    #[arg(long, default_value_t = true, action = ArgAction::Set, value_name = "BOOL")]
    pub tlog_upload: bool,

    /// How many manifests to sign at once.
    #[arg(long, short = 'j', default_value_t = default_jobs(), value_name = "N")]
    pub jobs: usize,

    #[command(flatten)]
    pub password: PasswordArgs,
}

/// Verify an image's signatures, fail-closed.
///
/// Exits 0 only if, for the image (and with --recursive every manifest under it), at least one
/// signature verifies under the key and its payload names exactly that manifest's digest.
/// Prints the verified payloads as JSON on standard output and the checks on standard error.
///
/// Examples:
///   wharf verify --key cosign.pub --recursive ghcr.io/acme/app@sha256:...
///   wharf verify --key keys/release.pub --insecure-ignore-tlog oci:./out:v1
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct VerifyArgs {
    /// The image: HOST/REPO@sha256:..., or a tag (resolved once and reported).
    #[arg(value_name = "IMAGE[@DIGEST]")]
    pub image: String,

    /// The public key (PEM file or env://VAR) the signatures must verify under.
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,

    /// Verify the index and every manifest under it.
    #[arg(long, short = 'r')]
    pub recursive: bool,

    /// Accept signatures without transparency log evidence (made with --tlog-upload=false).
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, value_name = "BOOL")]
    pub insecure_ignore_tlog: bool,

    #[arg(long, short = 'j', default_value_t = default_jobs(), value_name = "N")]
    pub jobs: usize,

    #[command(flatten)]
    pub password: PasswordArgs,
}

fn parse_annotations(pairs: &[String]) -> Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow!("annotation {p:?} is not KEY=VALUE"))
        })
        .collect()
}

/// The digest to work on: the reference's own, or with `allow_tag` its tag resolved once.
async fn digest_of(store: &dyn Store, image: &ImageRef, allow_tag: bool) -> Result<Digest> {
    if let Some(d) = &image.digest {
        return Ok(d.clone());
    }
    if !allow_tag {
        image.require_digest()?;
    }
    let resolved = resolve_reference(store, image).await?;
    eprintln!("wharf: resolved {image} to {}", resolved.digest);
    Ok(resolved.digest)
}

pub async fn run_sign(args: &SignArgs, global: &GlobalArgs) -> Result<ExitCode> {
    let Some(key) = &args.key else {
        bail!("keyless signing is not available in this version of wharf: pass --key KEY");
    };
    if args.tlog_upload {
        bail!(
            "uploading signatures to a transparency log is not available in this version of wharf: \
             pass --tlog-upload=false to sign with the key alone"
        );
    }
    let image = ImageRef::parse(&args.image)?;
    let signer = KeySigner::new(load_private_key(key, &args.password)?);
    let stores = global.stores()?;
    let store = stores.open(&image).await?;
    let digest = digest_of(store.as_ref(), &image, args.resolve_tag).await?;
    let request = SignRequest {
        digest: digest.clone(),
        recursive: args.recursive,
        annotations: parse_annotations(&args.annotations)?,
        jobs: args.jobs,
    };
    let report = sign(store.as_ref(), &signer, &request, &global.progress()).await?;
    github::set_outputs(&[("signed-digest".into(), digest.to_string())])?;
    global.print(&report, || {
        let mut s = String::new();
        for m in &report.signed {
            let _ = writeln!(
                s,
                "{} {}@{}{}",
                if m.added { "signed" } else { "already signed" },
                report.repository,
                m.digest,
                m.platform
                    .as_deref()
                    .map(|p| format!(" ({p})"))
                    .unwrap_or_default()
            );
        }
        s
    })?;
    Ok(ExitCode::SUCCESS)
}

pub async fn run_verify(args: &VerifyArgs, global: &GlobalArgs) -> Result<ExitCode> {
    let Some(key) = &args.key else {
        bail!("verification needs a policy: pass --key PUBLIC_KEY");
    };
    let image = ImageRef::parse(&args.image)?;
    let policy = Policy::Key(load_public_key(key, &args.password)?);
    let stores = global.stores()?;
    let store = stores.open(&image).await?;
    let digest = digest_of(store.as_ref(), &image, true).await?;
    let request = VerifyRequest {
        digest,
        recursive: args.recursive,
        ignore_tlog: args.insecure_ignore_tlog,
        jobs: args.jobs,
    };
    let report = verify(store.as_ref(), &policy, &request).await?;
    match global.output {
        super::OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        super::OutputFormat::Text => {
            if !global.quiet {
                eprintln!(
                    "Verification for {}@{} --",
                    report.repository, request.digest
                );
                eprintln!("The following checks were performed on each of these signatures:");
                for c in &report.checks {
                    eprintln!("  - {c}");
                }
                for m in &report.verified {
                    eprintln!(
                        "  verified {}{}",
                        m.digest,
                        m.platform
                            .as_deref()
                            .map(|p| format!(" ({p})"))
                            .unwrap_or_default()
                    );
                }
            }
            // Like cosign: the verified payloads, as a JSON array, on standard output.
            let payloads: Vec<&serde_json::Value> =
                report.verified.iter().flat_map(|m| &m.payloads).collect();
            println!("{}", serde_json::to_string(&payloads)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
