//! The release's steps, in the order that never exposes a tag on unsigned content: push (no
//! tag) → sign recursively → attest → verify → tag → for each mirror: mirror, verify.
//!
//! Every step first checks whether its result is already there and verifies (a rerun after a
//! failure), so rerunning finishes the job without duplicating signatures or attestations.
//! Each step is one function below, its skip/redo logic with it.

use super::config::{Mirror, ReleaseConfig, SbomSource};
use super::report::{Location, PlatformDigest, ReleaseReport};
use crate::cosign::attestation::{self, CYCLONEDX, SLSA_PROVENANCE_V1};
use crate::oci::{Digest, ImageRef, Manifest, Platform, RawManifest};
use crate::ops::attest::{attest_attached, verify_attestations, AttestRequest};
use crate::ops::bundles::BundleFormat;
use crate::ops::copy::put_tag;
use crate::ops::graph::read_graph;
use crate::ops::mirror::{mirror, MirrorRequest};
use crate::ops::push::{layout_source, push, PushReport, PushRequest};
use crate::ops::sign::{sign, SignRequest};
use crate::ops::verify::{verify, Policy, VerifyRequest};
use crate::sbom::{generate, SbomRequest};
use crate::sign::{Signer, Tlog};
use crate::sigstore::trust::TrustRoot;
use crate::store::attach::Attacher;
use crate::store::{resolve_reference, ManifestRef, Store, Stores};
use crate::ui::Progress;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::BTreeMap;
use std::sync::Arc;

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

/// What a step did, as the report says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Done,
    /// A rerun found the step's result already there.
    AlreadyDone,
    /// Verification, which is never skipped.
    Verified,
}

impl Status {
    fn of(wrote: bool) -> Status {
        if wrote {
            Status::Done
        } else {
            Status::AlreadyDone
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Status::Done => "done",
            Status::AlreadyDone => "already done",
            Status::Verified => "verified",
        }
    }
}

/// The pushed image and what every later step checks it with.
struct Pushed<'a> {
    inputs: &'a ReleaseInputs<'a>,
    primary: ImageRef,
    report: PushReport,
    /// The primary repository, holding the pushed image.
    store: Arc<dyn Store>,
    digest: Digest,
    /// The image's platforms and their manifests.
    platforms: Vec<(Platform, Digest)>,
}

impl Pushed<'_> {
    /// The verification every step checks its result with: the index (and with `recursive`
    /// everything under it), in every format the release writes, each on its own.
    fn verify_request(&self, recursive: bool) -> VerifyRequest {
        VerifyRequest {
            digest: self.digest.clone(),
            recursive,
            ignore_tlog: self.inputs.config.verify.insecure_ignore_tlog,
            ignore_sct: self.inputs.config.verify.insecure_ignore_sct,
            trust: self.inputs.trust.clone(),
            accept: self.inputs.config.signing.bundle_format,
            jobs: self.inputs.jobs,
        }
    }
}

/// The plan, as `--dry-run` prints it.
pub fn plan(config: &ReleaseConfig) -> Vec<String> {
    let mut steps = vec![format!(
        "push {} to {} by digest (no tag)",
        config.layout, config.repository
    )];
    let signer = config.signer_spec().describe();
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
    let mut steps = Vec::new();
    let mut record = |name: &str, status: Status| {
        steps.push((name.to_string(), status.as_str().to_string()));
    };

    step("push");
    let (pushed, status) = push_step(stores, inputs, progress).await?;
    record("push", status);
    let store = pushed.store.as_ref();

    step("sign");
    record("sign", sign_step(store, &pushed, progress).await?);

    step("attest");
    if let Some(status) = attest_step(store, &pushed).await? {
        record("attest", status);
    }

    step("verify");
    verify_release(store, &pushed).await.context("verify")?;
    // Verification is never skipped: it is how a rerun knows the rest is really there.
    record("verify", Status::Verified);

    step("tag");
    if let Some(status) = tag_step(store, &pushed).await? {
        record("tag", status);
    }

    let mut mirrors = Vec::new();
    for m in &inputs.config.mirrors {
        let name = format!("mirror {}", m.destination);
        step(&name);
        let (location, status) = mirror_step(stores, &pushed, m, progress).await?;
        record(&name, status);
        mirrors.push(location);
    }

    Ok(ReleaseReport {
        digest: pushed.digest.to_string(),
        manifests: pushed
            .platforms
            .iter()
            .map(|(p, d)| PlatformDigest {
                platform: p.to_string(),
                digest: d.to_string(),
            })
            .collect(),
        primary: Location {
            repository: pushed.report.repository.clone(),
            reference: pushed.report.reference.clone(),
            tags: inputs.config.tags.clone(),
            verified: true,
        },
        mirrors,
        steps,
        verify_commands: inputs
            .config
            .verify_commands(&pushed.report.reference)
            .into_iter()
            .map(|(_, command)| command)
            .collect(),
    })
}

/// Pushes the layout by digest, untagged. Done already when no manifest had to be written.
async fn push_step<'a>(
    stores: &Stores,
    inputs: &'a ReleaseInputs<'a>,
    progress: &Progress,
) -> Result<(Pushed<'a>, Status)> {
    let config = inputs.config;
    let primary = ImageRef::parse(&config.repository).context("[repository]")?;
    let report = push(
        stores,
        &PushRequest {
            source: layout_source(&config.layout).context("[layout]")?,
            dest: ImageRef {
                tag: None,
                ..primary.clone()
            },
            tags: Vec::new(),
            jobs: inputs.jobs,
        },
        progress,
    )
    .await
    .context("push")?;
    let status = Status::of(report.stats.manifests_written > 0);
    let digest: Digest = report.digest.parse()?;
    let store = stores.open(&primary).await?;
    let platforms = image_platforms(store.as_ref(), &digest, inputs.jobs).await?;
    let pushed = Pushed {
        inputs,
        primary,
        report,
        store,
        digest,
        platforms,
    };
    Ok((pushed, status))
}

/// Signs the index and every manifest under it in each format the release writes that does
/// not verify yet.
async fn sign_step(store: &dyn Store, pushed: &Pushed<'_>, progress: &Progress) -> Result<Status> {
    let inputs = pushed.inputs;
    let mut missing = Vec::new();
    for scheme in schemes(inputs.config.signing.bundle_format) {
        let check = VerifyRequest {
            accept: scheme,
            ..pushed.verify_request(true)
        };
        if verify(store, inputs.policy, &check).await.is_err() {
            missing.push(scheme);
        }
    }
    if missing.is_empty() {
        return Ok(Status::AlreadyDone);
    }
    sign(
        store,
        inputs.signer,
        inputs.tlog,
        &SignRequest {
            digest: pushed.digest.clone(),
            recursive: true,
            annotations: BTreeMap::new(),
            format: combine(&missing),
            jobs: inputs.jobs,
        },
        progress,
    )
    .await
    .context("sign")?;
    Ok(Status::Done)
}

/// Attests each platform's SBOM and the index's provenance, as the config asks, where a
/// verified one is not there yet. `None` when the config asks for no attestation.
async fn attest_step(store: &dyn Store, pushed: &Pushed<'_>) -> Result<Option<Status>> {
    let inputs = pushed.inputs;
    let config = inputs.config;
    // One check at the end that every attestation survived concurrent writers.
    let attacher = Attacher::new(store);
    let mut attested = Vec::new();
    if config.attestations.sbom != SbomSource::None {
        for (platform, manifest_digest) in &pushed.platforms {
            let source = sbom_source(config, platform)?;
            let done = attest_once(
                &attacher,
                pushed,
                Some(platform),
                manifest_digest,
                CYCLONEDX,
                || sbom(store, platform, manifest_digest, source),
            )
            .await?;
            attested.push(done);
        }
    }
    if let Some(provenance) = &inputs.provenance {
        let done = attest_once(
            &attacher,
            pushed,
            None,
            &pushed.digest,
            SLSA_PROVENANCE_V1,
            || async { Ok(provenance.clone()) },
        )
        .await?;
        attested.push(done);
    }
    attacher.finish().await.context("attest")?;
    Ok((!attested.is_empty()).then(|| Status::of(attested.iter().any(|d| *d))))
}

/// A platform's SBOM file (`sbom = "files"`), or `None` to generate it.
fn sbom_source(config: &ReleaseConfig, platform: &Platform) -> Result<Option<Vec<u8>>> {
    if config.attestations.sbom != SbomSource::Files {
        return Ok(None);
    }
    let Some(file) = config.attestations.sbom_files.get(&platform.to_string()) else {
        bail!("[attestations] sbom_files has no file for {platform}");
    };
    crate::files::read_bounded(
        std::path::Path::new(file),
        crate::files::PREDICATE_LIMIT,
        "SBOM file",
    )
    .map(Some)
    .context("[attestations]")
}

/// The SBOM of one platform: the file given, else generated from its layers.
async fn sbom(
    store: &dyn Store,
    platform: &Platform,
    manifest_digest: &Digest,
    file: Option<Vec<u8>>,
) -> Result<Vec<u8>> {
    if let Some(bytes) = file {
        return Ok(bytes);
    }
    let desc = store
        .resolve(ManifestRef::Digest(manifest_digest))
        .await?
        .ok_or_else(|| anyhow!("manifest {manifest_digest} vanished"))?;
    generate(
        store,
        &desc,
        &SbomRequest {
            image_name: store.repository().to_string(),
            manifest_digest: manifest_digest.clone(),
            platform: Some(platform.clone()),
        },
    )
    .await
    .with_context(|| format!("generating the SBOM of {platform}"))
}

/// Tags the index once everything it promises is there and verified.
async fn tag_step(store: &dyn Store, pushed: &Pushed<'_>) -> Result<Option<Status>> {
    let tags = &pushed.inputs.config.tags;
    let mut wrote = false;
    for tag in tags {
        wrote |= put_tag(store, &store_manifest(store, &pushed.digest).await?, tag).await?;
    }
    Ok((!tags.is_empty()).then(|| Status::of(wrote)))
}

/// Mirrors the release to one destination with everything attached, then verifies it there
/// as on the primary.
async fn mirror_step(
    stores: &Stores,
    pushed: &Pushed<'_>,
    m: &Mirror,
    progress: &Progress,
) -> Result<(Location, Status)> {
    let config = pushed.inputs.config;
    let dest =
        ImageRef::parse(&m.destination).with_context(|| format!("[[mirror]] {}", m.destination))?;
    let tags = m.tags.clone().unwrap_or_else(|| config.tags.clone());
    let report = mirror(
        stores,
        &MirrorRequest {
            source: pushed.primary.with_digest(pushed.digest.clone()),
            dest: ImageRef {
                tag: None,
                digest: None,
                ..dest.clone()
            },
            tags: tags.clone(),
            jobs: pushed.inputs.jobs,
        },
        progress,
    )
    .await
    .with_context(|| format!("mirror to {}", m.destination))?;
    let mirror_store = stores.with_attachments_beside_images().open(&dest).await?;
    verify_release(mirror_store.as_ref(), pushed)
        .await
        .with_context(|| format!("verify at mirror {}", m.destination))?;
    let location = Location {
        repository: report.destination.clone(),
        reference: report.reference.clone(),
        tags,
        verified: true,
    };
    Ok((location, Status::of(report.wrote_anything())))
}

async fn store_manifest(store: &dyn Store, digest: &Digest) -> Result<RawManifest> {
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
async fn attest_once<F, Fut>(
    attacher: &Attacher<'_>,
    pushed: &Pushed<'_>,
    platform: Option<&Platform>,
    subject: &Digest,
    predicate_type: &str,
    predicate: F,
) -> Result<bool>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<u8>>>,
{
    let inputs = pushed.inputs;
    let store = attacher.store();
    let mut missing = Vec::new();
    for scheme in schemes(inputs.config.signing.bundle_format) {
        let check = VerifyRequest {
            accept: scheme,
            ..pushed.verify_request(false).for_digest(subject, false)
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
            digest: pushed.digest.clone(),
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
async fn verify_release(store: &dyn Store, pushed: &Pushed<'_>) -> Result<()> {
    let inputs = pushed.inputs;
    let request = pushed.verify_request(true);
    verify(store, inputs.policy, &request).await?;
    if inputs.config.attestations.sbom != SbomSource::None {
        // Fail-closed: an SBOM per platform was promised, so no platform is no pass.
        if pushed.platforms.is_empty() {
            bail!(
                "{} has no platform image to check an SBOM attestation on (attestations.sbom asks for one per platform)",
                request.digest
            );
        }
        for (platform, digest) in &pushed.platforms {
            let check = request.for_digest(digest, false);
            verify_attestations(store, inputs.policy, &check, Some(CYCLONEDX))
                .await
                .with_context(|| format!("SBOM attestation of {platform}"))?;
        }
    }
    if inputs.provenance.is_some() {
        let check = request.for_digest(&request.digest, false);
        verify_attestations(store, inputs.policy, &check, Some(SLSA_PROVENANCE_V1))
            .await
            .context("provenance attestation")?;
    }
    Ok(())
}
