//! Sigstore bundles as OCI 1.1 referrers (cosign v3, GitHub artifact attestations): writing
//! one for a manifest, and finding and checking those of a manifest.

use super::referrers;
use crate::cosign::attestation::{self, Envelope, IN_TOTO_PAYLOAD_TYPE};
use crate::oci::manifest::{Annotations, ImageManifest};
use crate::oci::{media, Descriptor, Digest, Manifest};
use crate::sigstore::bundle::{SigstoreBundle, BUNDLE_MEDIA_TYPE};
use crate::sigstore::cert::SigningCert;
use crate::store::attach::Attacher;
pub use crate::store::attach::ReferrerWritten;
use crate::store::{read_small_blob, ManifestRef, Store};
use crate::verify::MAX_CANDIDATES;
use anyhow::{anyhow, Context, Result};
use bytes::Bytes;

pub const CONTENT_ANNOTATION: &str = "dev.sigstore.bundle.content";
pub const PREDICATE_TYPE_ANNOTATION: &str = "dev.sigstore.bundle.predicateType";
pub const CREATED_ANNOTATION: &str = "org.opencontainers.image.created";
const EMPTY_CONFIG: &[u8] = b"{}";

/// Which format signatures and attestations are written in.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum BundleFormat {
    /// cosign 2.x's tag scheme (`.sig`/`.att`): what cosign 2, skopeo and policy
    /// controllers read, and cosign 3 falls back to.
    Legacy,
    /// Sigstore bundle v0.3 as an OCI referrer: what cosign 3 and GitHub attestations write.
    Bundle,
    /// Both, for readers of either kind.
    Both,
}

impl BundleFormat {
    pub fn legacy(self) -> bool {
        matches!(self, BundleFormat::Legacy | BundleFormat::Both)
    }
    pub fn bundle(self) -> bool {
        matches!(self, BundleFormat::Bundle | BundleFormat::Both)
    }
}

/// Pushes `bundle` as a referrer of `subject` (through the store's referrers API, its
/// fallback index, or without a subject where the store refuses one; see
/// [`Attacher::put_referrer`]).
pub async fn push_bundle(
    attacher: &Attacher<'_>,
    subject: &Descriptor,
    bundle: &SigstoreBundle,
    predicate_type: &str,
) -> Result<ReferrerWritten> {
    let bytes = bundle.to_bytes();
    let layer = Descriptor::new(BUNDLE_MEDIA_TYPE, Digest::of(&bytes), bytes.len() as u64);
    let config = Descriptor::new(
        media::OCI_EMPTY,
        Digest::of(EMPTY_CONFIG),
        EMPTY_CONFIG.len() as u64,
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    let annotations = Annotations::from([
        (CONTENT_ANNOTATION.to_string(), "dsse-envelope".to_string()),
        (
            PREDICATE_TYPE_ANNOTATION.to_string(),
            predicate_type.to_string(),
        ),
        (
            CREATED_ANNOTATION.to_string(),
            crate::sigstore::trust::format_rfc3339(now),
        ),
    ]);
    let mut subject_desc =
        Descriptor::new(&subject.media_type, subject.digest.clone(), subject.size);
    subject_desc.platform = None;
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.into()),
        artifact_type: Some(BUNDLE_MEDIA_TYPE.into()),
        config: config.clone(),
        layers: vec![layer.clone()],
        subject: Some(subject_desc),
        annotations: Some(annotations),
    };
    let blobs = [
        (config, Bytes::from_static(EMPTY_CONFIG)),
        (layer, Bytes::from(bytes)),
    ];
    attacher.put_referrer(manifest, &blobs).await
}

/// Whether a referrer descriptor may be a Sigstore bundle. cosign 2.5 lists its bundles in
/// the fallback index with the config's media type (the empty type) instead of the bundle type,
/// so those are looked at too.
fn may_be_bundle(d: &Descriptor) -> bool {
    match d.artifact_type.as_deref() {
        Some(BUNDLE_MEDIA_TYPE) | None => true,
        Some(t) => t == media::OCI_EMPTY || d.annotation(PREDICATE_TYPE_ANNOTATION).is_some(),
    }
}

/// Largest bundle read from a registry.
pub const MAX_BUNDLE: u64 = 16 << 20;

/// The Sigstore bundles referring to a manifest, each read or why it could not be.
pub struct FoundBundles {
    pub bundles: Vec<(Digest, Result<SigstoreBundle>)>,
    /// Referrers beyond [`MAX_CANDIDATES`] that were not read.
    pub not_examined: usize,
}

/// The Sigstore bundles referring to `digest`: at most [`MAX_CANDIDATES`] are read, and one
/// that cannot be read is that candidate's failure, not the whole verification's.
pub async fn find_bundles(store: &dyn Store, digest: &Digest) -> Result<FoundBundles> {
    let (found, _) = referrers::list(store, digest).await?;
    let candidates: Vec<&Descriptor> = found.iter().filter(|d| may_be_bundle(d)).collect();
    let not_examined = candidates.len().saturating_sub(MAX_CANDIDATES);
    let mut bundles = Vec::new();
    for referrer in candidates.into_iter().take(MAX_CANDIDATES) {
        let read = async {
            let Some(raw) = store
                .get_manifest(ManifestRef::Digest(&referrer.digest))
                .await?
            else {
                return Ok(None);
            };
            let Ok(Manifest::Image(m)) = raw.parse() else {
                return Ok(None);
            };
            let Some(layer) = m.layers.iter().find(|l| l.media_type == BUNDLE_MEDIA_TYPE) else {
                // Some other artifact (an SBOM attached with oras, say): not ours to check.
                return Ok(None);
            };
            Ok::<_, anyhow::Error>(Some(layer.clone()))
        };
        let bundle = match read.await {
            Ok(None) => continue,
            Ok(Some(layer)) => {
                async { SigstoreBundle::parse(&read_small_blob(store, &layer, MAX_BUNDLE).await?) }
                    .await
            }
            Err(e) => Err(e.context(format!("cannot read referrer {}", referrer.digest))),
        };
        bundles.push((referrer.digest.clone(), bundle));
    }
    Ok(FoundBundles {
        bundles,
        not_examined,
    })
}

/// Signs an in-toto statement about `digest` and pushes it as a Sigstore bundle referrer.
/// A statement this key already signed (a rerun) is not signed or logged again.
pub async fn sign_as_bundle(
    attacher: &Attacher<'_>,
    signer: &dyn crate::sign::Signer,
    tlog: Option<&crate::sign::Tlog>,
    digest: &Digest,
    predicate_type: &str,
    predicate: &[u8],
) -> Result<bool> {
    let store = attacher.store();
    let subject = store
        .resolve(ManifestRef::Digest(digest))
        .await?
        .ok_or_else(|| anyhow!("manifest {digest} not found in {}", store.repository()))?;
    let statement = attestation::statement(
        &store.repository().docker_reference(),
        digest,
        predicate_type,
        predicate,
    )?;
    let signed = attestation::pae(IN_TOTO_PAYLOAD_TYPE, &statement);
    let public_key = signer.public_key();
    if signer.certificate_pem().is_none() {
        for (_, bundle) in find_bundles(store, digest).await?.bundles {
            let Some(envelope) = bundle.ok().and_then(|b| b.dsse_envelope) else {
                continue;
            };
            let same = envelope.payload_bytes().ok().as_deref() == Some(statement.as_slice())
                && envelope
                    .signature_bytes()
                    .unwrap_or_default()
                    .iter()
                    .any(|s| crate::sign::verify_signature(&public_key, &signed, s).is_ok());
            if same {
                return Ok(false);
            }
        }
    }
    let signature = signer.sign(&signed)?;
    let envelope = Envelope::new(&statement, &signature);
    let log = match tlog {
        Some(tlog) => {
            let entry = crate::sigstore::rekor::dsse(&envelope.to_bytes(), &signer.verifier_pem());
            Some(
                tlog.log(&entry)
                    .await
                    .with_context(|| format!("logging the bundle for {digest}"))?,
            )
        }
        None => None,
    };
    let certificate = signer
        .certificate_pem()
        .map(SigningCert::from_pem)
        .transpose()?;
    let bundle = SigstoreBundle::new(
        envelope,
        certificate.as_ref().map(|c| c.der.as_slice()),
        Some(crate::sign::keys::fingerprint(&public_key)),
        log.as_ref(),
    )?;
    push_bundle(attacher, &subject, &bundle, predicate_type).await?;
    Ok(true)
}
