//! `wharf release`: the whole publisher pipeline, in the order that never exposes a tag on
//! unsigned content: push (no tag) → sign recursively → attest → verify → tag → for each
//! mirror: mirror, verify.
//!
//! Every step first checks whether its result is already there and verifies (a rerun after a
//! failure), so rerunning finishes the job without duplicating signatures or attestations.

use super::attest::{attest_attached, verify_attestations, AttestRequest};
use super::bundles::BundleFormat;
use super::copy::put_tag;
use super::graph::read_graph;
use super::mirror::{mirror, MirrorRequest};
use super::push::layout_source;
use super::push::{push, PushReport, PushRequest};
use super::release_config::{ReleaseConfig, SbomSource};
use super::sign::{sign, SignRequest, Tlog};
use super::verify::{verify, Policy, VerifyRequest};
use crate::cosign::attestation;
use crate::oci::{Digest, ImageRef, Manifest, Platform};
use crate::sbom::{generate, SbomRequest};
use crate::sign::Signer;
use crate::sigstore::trust::TrustRoot;
use crate::store::attach::Attacher;
use crate::store::{resolve_reference, ManifestRef, Store, Stores};
use crate::ui::Progress;
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;

const CYCLONEDX: &str = "https://cyclonedx.org/bom";
const SLSA_V1: &str = "https://slsa.dev/provenance/v1";

pub struct ReleaseInputs<'a> {
    pub config: &'a ReleaseConfig,
    pub signer: &'a dyn Signer,
    pub tlog: Option<&'a Tlog>,
    pub policy: &'a Policy,
    pub trust: &'a TrustRoot,
    /// SLSA provenance predicate, when the config asks for it.
    pub provenance: Option<Vec<u8>>,
    pub jobs: usize,
}

#[derive(Debug, Serialize, Clone)]
pub struct PlatformDigest {
    pub platform: String,
    pub digest: String,
}

#[derive(Debug, Serialize)]
pub struct Location {
    pub repository: String,
    pub reference: String,
    pub tags: Vec<String>,
    pub verified: bool,
}

#[derive(Debug, Serialize)]
pub struct ReleaseReport {
    pub digest: String,
    pub manifests: Vec<PlatformDigest>,
    pub primary: Location,
    pub mirrors: Vec<Location>,
    /// What each step did: "done", or "already done" on a rerun.
    pub steps: Vec<(String, String)>,
}

/// The plan, as `--dry-run` prints it.
pub fn plan(config: &ReleaseConfig) -> Vec<String> {
    let mut steps = vec![format!(
        "push {} to {} by digest (no tag)",
        config.layout, config.repository
    )];
    let signer = match &config.signing.key {
        Some(k) => format!("key {k}"),
        None => format!("keyless (Fulcio {})", config.signing.fulcio_url),
    };
    let tlog = if config.signing.tlog_upload {
        format!(", logged in Rekor {}", config.signing.rekor_url)
    } else {
        ", not logged".to_string()
    };
    steps.push(format!(
        "sign the index and every platform's manifest with {signer}{tlog} ({:?} format)",
        config.signing.bundle_format
    ));
    match config.attestations.sbom {
        SbomSource::Generate => {
            steps.push("attest a generated CycloneDX SBOM on every platform".into())
        }
        SbomSource::Files => steps.push(format!(
            "attest the CycloneDX SBOM files for {}",
            config
                .attestations
                .sbom_files
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )),
        SbomSource::None => {}
    }
    if config.attestations.provenance {
        steps.push(
            "attest SLSA provenance (from the GitHub Actions environment) on the index".into(),
        );
    }
    steps.push("verify signatures and attestations against the [verify] policy".into());
    if !config.tags.is_empty() {
        steps.push(format!(
            "tag {} in {}",
            config.tags.join(", "),
            config.repository
        ));
    }
    for m in &config.mirrors {
        steps.push(format!(
            "mirror to {} (with signatures, attestations, referrers; tags {}), then verify there",
            m.destination,
            m.tags.as_ref().unwrap_or(&config.tags).join(", ")
        ));
    }
    steps
}

pub async fn release(
    stores: &Stores,
    inputs: &ReleaseInputs<'_>,
    progress: &Progress,
    step: &(dyn Fn(&str) + Sync),
) -> Result<ReleaseReport> {
    let config = inputs.config;
    let mut steps = Vec::new();
    let primary_ref = ImageRef::parse(&config.repository).context("[repository]")?;

    step("push");
    let pushed: PushReport = push(
        stores,
        &PushRequest {
            source: layout_source(&config.layout).context("[layout]")?,
            dest: ImageRef {
                tag: None,
                ..primary_ref.clone()
            },
            tags: Vec::new(),
            jobs: inputs.jobs,
        },
        progress,
    )
    .await
    .context("push")?;
    steps.push((
        "push".into(),
        if pushed.stats.manifests_written == 0 {
            "already done"
        } else {
            "done"
        }
        .into(),
    ));
    let digest: Digest = pushed.digest.parse()?;
    let store = stores.open(&primary_ref).await?;
    let platforms = image_platforms(store.as_ref(), &digest, inputs.jobs).await?;

    step("sign");
    let format = config.signing.bundle_format;
    let verify_request = |recursive| VerifyRequest {
        digest: digest.clone(),
        recursive,
        ignore_tlog: config.verify.insecure_ignore_tlog,
        ignore_sct: config.verify.insecure_ignore_sct,
        trust: inputs.trust.clone(),
        // The release promises every format it writes, so each must verify on its own.
        accept: format,
        jobs: inputs.jobs,
    };
    let mut missing = Vec::new();
    for scheme in schemes(format) {
        let check = VerifyRequest {
            accept: scheme,
            ..verify_request(true)
        };
        if verify(store.as_ref(), inputs.policy, &check).await.is_err() {
            missing.push(scheme);
        }
    }
    if missing.is_empty() {
        steps.push(("sign".into(), "already done".into()));
    } else {
        sign(
            store.as_ref(),
            inputs.signer,
            inputs.tlog,
            &SignRequest {
                digest: digest.clone(),
                recursive: true,
                annotations: BTreeMap::new(),
                format: combine(&missing),
                jobs: inputs.jobs,
            },
            progress,
        )
        .await
        .context("sign")?;
        steps.push(("sign".into(), "done".into()));
    }

    step("attest");
    // One check at the end that every attestation survived concurrent writers.
    let attacher = Attacher::new(store.as_ref());
    let mut attested = Vec::new();
    for (platform, manifest_digest) in &platforms {
        let predicate = match config.attestations.sbom {
            SbomSource::None => continue,
            SbomSource::Files => match config.attestations.sbom_files.get(&platform.to_string()) {
                Some(file) => crate::files::read_bounded(
                    std::path::Path::new(file),
                    crate::files::PREDICATE_LIMIT,
                    "SBOM file",
                )
                .context("[attestations]")?,
                None => {
                    return Err(anyhow!(
                        "[attestations] sbom_files has no file for {platform}"
                    ))
                }
            },
            SbomSource::Generate => Vec::new(),
        };
        let done = attest_once(
            &attacher,
            inputs,
            &verify_request(false),
            &digest,
            Some(platform),
            manifest_digest,
            CYCLONEDX,
            || async {
                if predicate.is_empty() {
                    let desc = store
                        .resolve(ManifestRef::Digest(manifest_digest))
                        .await?
                        .ok_or_else(|| anyhow!("manifest {manifest_digest} vanished"))?;
                    generate(
                        store.as_ref(),
                        &desc,
                        &SbomRequest {
                            image_name: store.repository().to_string(),
                            manifest_digest: manifest_digest.clone(),
                            platform: Some(platform.clone()),
                        },
                    )
                    .await
                    .with_context(|| format!("generating the SBOM of {platform}"))
                } else {
                    Ok(predicate.clone())
                }
            },
        )
        .await?;
        attested.push(done);
    }
    if let Some(provenance) = &inputs.provenance {
        let p = provenance.clone();
        let done = attest_once(
            &attacher,
            inputs,
            &verify_request(false),
            &digest,
            None,
            &digest,
            SLSA_V1,
            || async { Ok(p.clone()) },
        )
        .await?;
        attested.push(done);
    }
    attacher.finish().await.context("attest")?;
    if !attested.is_empty() {
        let status = if attested.iter().all(|d| !d) {
            "already done"
        } else {
            "done"
        };
        steps.push(("attest".into(), status.into()));
    }

    step("verify");
    verify_release(store.as_ref(), inputs, &verify_request(true), &platforms)
        .await
        .context("verify")?;
    // Verification is never skipped: it is how a rerun knows the rest is really there.
    steps.push(("verify".into(), "verified".into()));

    step("tag");
    let mut wrote = false;
    for tag in &config.tags {
        wrote |= put_tag(
            store.as_ref(),
            &store_manifest(store.as_ref(), &digest).await?,
            tag,
        )
        .await?;
    }
    if !config.tags.is_empty() {
        steps.push((
            "tag".into(),
            if wrote { "done" } else { "already done" }.into(),
        ));
    }

    let mut mirrors = Vec::new();
    for m in &config.mirrors {
        step(&format!("mirror {}", m.destination));
        let dest = ImageRef::parse(&m.destination)
            .with_context(|| format!("[[mirror]] {}", m.destination))?;
        let tags = m.tags.clone().unwrap_or_else(|| config.tags.clone());
        let report = mirror(
            stores,
            &MirrorRequest {
                source: primary_ref.with_digest(digest.clone()),
                dest: ImageRef {
                    tag: None,
                    digest: None,
                    ..dest.clone()
                },
                tags: tags.clone(),
                jobs: inputs.jobs,
            },
            progress,
        )
        .await
        .with_context(|| format!("mirror to {}", m.destination))?;
        let mirror_store = stores.with_attachments_beside_images().open(&dest).await?;
        verify_release(
            mirror_store.as_ref(),
            inputs,
            &verify_request(true),
            &platforms,
        )
        .await
        .with_context(|| format!("verify at mirror {}", m.destination))?;
        let status = if report.wrote_anything() {
            "done"
        } else {
            "already done"
        };
        steps.push((format!("mirror {}", m.destination), status.into()));
        mirrors.push(Location {
            repository: report.destination,
            reference: report.reference,
            tags,
            verified: true,
        });
    }

    Ok(ReleaseReport {
        digest: digest.to_string(),
        manifests: platforms
            .iter()
            .map(|(p, d)| PlatformDigest {
                platform: p.to_string(),
                digest: d.to_string(),
            })
            .collect(),
        primary: Location {
            repository: pushed.repository.clone(),
            reference: pushed.reference.clone(),
            tags: config.tags.clone(),
            verified: true,
        },
        mirrors,
        steps,
    })
}

async fn store_manifest(store: &dyn Store, digest: &Digest) -> Result<crate::oci::RawManifest> {
    store
        .get_manifest(ManifestRef::Digest(digest))
        .await?
        .ok_or_else(|| anyhow!("manifest {digest} vanished from {}", store.repository()))
}

/// The storage schemes a format writes, each to be checked on its own.
fn schemes(format: BundleFormat) -> Vec<BundleFormat> {
    let mut out = Vec::new();
    if format.legacy() {
        out.push(BundleFormat::Legacy);
    }
    if format.bundle() {
        out.push(BundleFormat::Bundle);
    }
    out
}

/// The format that writes exactly these schemes.
fn combine(schemes: &[BundleFormat]) -> BundleFormat {
    match (
        schemes.contains(&BundleFormat::Legacy),
        schemes.contains(&BundleFormat::Bundle),
    ) {
        (true, true) => BundleFormat::Both,
        (false, true) => BundleFormat::Bundle,
        _ => BundleFormat::Legacy,
    }
}

/// The platforms of the image (image manifests with a platform; buildx's attestation
/// manifests, `unknown/unknown`, excluded).
async fn image_platforms(
    store: &dyn Store,
    digest: &Digest,
    jobs: usize,
) -> Result<Vec<(Platform, Digest)>> {
    let root = resolve_reference(
        store,
        &ImageRef {
            repository: store.repository().clone(),
            tag: None,
            digest: Some(digest.clone()),
        },
    )
    .await?;
    let graph = read_graph(store, &root, jobs).await?;
    Ok(graph
        .nodes
        .iter()
        .filter(|n| matches!(n.parsed, Manifest::Image(_)))
        .filter_map(|n| n.platform.clone().map(|p| (p, n.digest().clone())))
        .filter(|(p, _)| p.os != "unknown")
        .collect())
}

/// Attests unless a verified attestation of this type is already there. Returns whether it
/// wrote one.
#[allow(clippy::too_many_arguments)]
async fn attest_once<F, Fut>(
    attacher: &Attacher<'_>,
    inputs: &ReleaseInputs<'_>,
    verify_request: &VerifyRequest,
    index: &Digest,
    platform: Option<&Platform>,
    subject: &Digest,
    predicate_type: &str,
    predicate: F,
) -> Result<bool>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<u8>>>,
{
    let store = attacher.store();
    let mut missing = Vec::new();
    for scheme in schemes(inputs.config.signing.bundle_format) {
        let check = VerifyRequest {
            accept: scheme,
            ..verify_request.for_digest(subject, false)
        };
        if verify_attestations(store, inputs.policy, &check, Some(predicate_type))
            .await
            .is_err()
        {
            missing.push(scheme);
        }
    }
    if missing.is_empty() {
        return Ok(false);
    }
    let predicate = predicate().await?;
    attestation::check_predicate(predicate_type, &predicate)?;
    attest_attached(
        attacher,
        inputs.signer,
        inputs.tlog,
        &AttestRequest {
            digest: index.clone(),
            platform: platform.cloned(),
            predicate_type: predicate_type.to_string(),
            predicate,
            replace: true,
            format: combine(&missing),
        },
    )
    .await
    .with_context(|| match platform {
        Some(p) => format!("attest {predicate_type} on {p}"),
        None => format!("attest {predicate_type}"),
    })?;
    Ok(true)
}

/// Everything the release promises: every manifest signed under the policy, and every
/// attestation the config asks for present and verified.
async fn verify_release(
    store: &dyn Store,
    inputs: &ReleaseInputs<'_>,
    request: &VerifyRequest,
    platforms: &[(Platform, Digest)],
) -> Result<()> {
    verify(store, inputs.policy, request).await?;
    if inputs.config.attestations.sbom != SbomSource::None {
        // Fail-closed: an SBOM per platform was promised, so no platform is no pass.
        if platforms.is_empty() {
            bail!(
                "{} has no platform image to check an SBOM attestation on (attestations.sbom asks for one per platform)",
                request.digest
            );
        }
        for (platform, digest) in platforms {
            let check = request.for_digest(digest, false);
            verify_attestations(store, inputs.policy, &check, Some(CYCLONEDX))
                .await
                .with_context(|| format!("SBOM attestation of {platform}"))?;
        }
    }
    if inputs.provenance.is_some() {
        let check = request.for_digest(&request.digest, false);
        verify_attestations(store, inputs.policy, &check, Some(SLSA_V1))
            .await
            .context("provenance attestation")?;
    }
    Ok(())
}
