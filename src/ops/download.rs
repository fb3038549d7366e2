//! `wharf download signature|attestation|sbom`: what is attached to a manifest, unverified,
//! in the shapes cosign 2.5 prints, from both storage schemes (cosign 2.x's
//! `sha256-<hex>.sig/.att/.sbom` tags and Sigstore bundle / SBOM referrers).
//!
//! Nothing here is verified: this is for reading what is there (`| jq -r .payload | base64 -d`).
//! Finding nothing is an error, as in cosign ("no signatures associated", "found no
//! attestations"), so a script never takes an empty answer for an empty SBOM.

use super::attach::{read_tag_layers, TagLayers};
use super::bundles::{find_bundles, FoundBundles};
use super::referrers;
use crate::cosign::attestation::{parse_statement, Envelope, DSSE_MEDIA_TYPE};
use crate::cosign::sigmanifest::{
    attestation_tag, sbom_tag, signature_tag, BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION,
    CHAIN_ANNOTATION, RFC3161_ANNOTATION, SIGNATURE_ANNOTATION, SIMPLESIGNING_MEDIA_TYPE,
};
use crate::oci::{Descriptor, Digest, Manifest};
use crate::sigstore::bundle::{SigstoreBundle, SIGN_PREDICATE_TYPE};
use crate::store::{read_small_blob, ManifestRef, Store};
use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};

/// cosign's limit on signatures or attestations per image (`maxAllowedSigsOrAtts`).
pub const MAX_ATTACHED: usize = 100;
/// Largest signature payload read (as `wharf verify`).
const MAX_PAYLOAD: u64 = 1 << 20;
/// Largest DSSE envelope read (as `wharf verify-attestation`).
const MAX_ENVELOPE: u64 = 64 << 20;
/// Most bytes of payloads or envelopes one download reads from a tag, checked against the
/// sizes the manifest declares before anything is read.
const MAX_TOTAL: u64 = 256 << 20;
/// Largest SBOM read.
const MAX_SBOM: u64 = 256 << 20;

/// One signature as cosign's `download signature` prints it: for the tag scheme, its Go
/// `SignedPayload` (`Base64Signature`, `Payload` base64, `Cert`, `Chain`, `Bundle`,
/// `RFC3161Timestamp`); for a bundle referrer, the Sigstore bundle itself, as cosign 3 does.
/// `Cert` and `Chain` carry each certificate as `{"Raw": DER base64}`: Go prints its whole
/// parsed `x509.Certificate` there, whose `Raw` is the one field a script can use.
pub async fn signatures(store: &dyn Store, digest: &Digest) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    let tag = signature_tag(digest);
    for layer in candidates(store, &tag, SIMPLESIGNING_MEDIA_TYPE, "signatures").await? {
        let payload = read_small_blob(store, &layer, MAX_PAYLOAD)
            .await
            .with_context(|| format!("cannot read a signature payload of {tag}"))?;
        out.push(signed_payload(&layer, &payload)?);
    }
    for bundle in bundles(store, digest).await? {
        if bundle_predicate_type(&bundle).as_deref() == Some(SIGN_PREDICATE_TYPE)
            || bundle.message_signature.is_some()
        {
            out.push(serde_json::from_slice(&bundle.to_bytes())?);
        }
    }
    limit(&out, "signatures")?;
    if out.is_empty() {
        bail!(
            "no signatures associated with {digest}: there is no {tag} and no signature bundle \
             referrer in {}",
            store.repository()
        );
    }
    Ok(out)
}

/// The DSSE envelopes attesting `digest` (of `predicate_type` if given), as cosign's
/// `download attestation` prints them: `{"payloadType", "payload", "signatures"}`.
pub async fn attestations(
    store: &dyn Store,
    digest: &Digest,
    predicate_type: Option<&str>,
) -> Result<Vec<Envelope>> {
    let mut all = Vec::new();
    let tag = attestation_tag(digest);
    for layer in candidates(store, &tag, DSSE_MEDIA_TYPE, "attestations").await? {
        let bytes = read_small_blob(store, &layer, MAX_ENVELOPE)
            .await
            .with_context(|| format!("cannot read an attestation of {tag}"))?;
        all.push(Envelope::parse(&bytes).with_context(|| format!("an attestation of {tag}"))?);
    }
    for bundle in bundles(store, digest).await? {
        let predicate = bundle_predicate_type(&bundle);
        if predicate.is_some() && predicate.as_deref() != Some(SIGN_PREDICATE_TYPE) {
            all.extend(bundle.dsse_envelope);
        }
    }
    limit(&all, "attestations")?;
    if all.is_empty() {
        bail!(
            "found no attestations for {digest}: there is no {tag} and no attestation bundle \
             referrer in {}",
            store.repository()
        );
    }
    let Some(wanted) = predicate_type else {
        return Ok(all);
    };
    let matching: Vec<Envelope> = all
        .into_iter()
        .filter(|e| envelope_predicate_type(e).as_deref() == Some(wanted))
        .collect();
    if matching.is_empty() {
        bail!("no attestations with predicate type '{wanted}' found for {digest}");
    }
    Ok(matching)
}

/// An SBOM attached to `digest`: the first layer of its `.sbom` tag (what `cosign attach
/// sbom` writes), or else the first referrer whose artifact type is an SBOM's. Returns its
/// media type and bytes.
pub async fn sbom(store: &dyn Store, digest: &Digest) -> Result<(String, Vec<u8>)> {
    let tag = sbom_tag(digest);
    if let Some(layer) = tag_layers(store, &tag).await?.into_iter().next() {
        let bytes = read_small_blob(store, &layer, MAX_SBOM)
            .await
            .with_context(|| format!("cannot read the SBOM of {tag}"))?;
        return Ok((layer.media_type, bytes));
    }
    let (found, _) = referrers::list(store, digest).await?;
    for referrer in found.iter().filter(|d| is_sbom_type(d)) {
        let Some(raw) = store
            .get_manifest(ManifestRef::Digest(&referrer.digest))
            .await?
        else {
            continue;
        };
        let Ok(Manifest::Image(m)) = raw.parse() else {
            continue;
        };
        if let Some(layer) = m.layers.first() {
            let bytes = read_small_blob(store, layer, MAX_SBOM)
                .await
                .with_context(|| format!("cannot read the SBOM referrer {}", referrer.digest))?;
            return Ok((layer.media_type.clone(), bytes));
        }
    }
    bail!(
        "no SBOM attached to {digest}: there is no {tag} and no SBOM referrer in {}",
        store.repository()
    )
}

async fn tag_layers(store: &dyn Store, tag: &str) -> Result<Vec<Descriptor>> {
    match read_tag_layers(store, tag).await? {
        TagLayers::Absent => Ok(Vec::new()),
        TagLayers::Layers(layers) => Ok(layers),
        TagLayers::Malformed(why) => bail!("malformed {tag}: {why}"),
    }
}

/// The layers of `media_type` at `tag`, refused before any is read when there are more than
/// cosign reads ([`MAX_ATTACHED`]) or they declare more than [`MAX_TOTAL`] bytes together.
async fn candidates(
    store: &dyn Store,
    tag: &str,
    media_type: &str,
    what: &str,
) -> Result<Vec<Descriptor>> {
    let layers: Vec<Descriptor> = tag_layers(store, tag)
        .await?
        .into_iter()
        .filter(|l| l.media_type == media_type)
        .collect();
    limit(&layers, what)?;
    let total: u64 = layers.iter().map(|l| l.size).fold(0, u64::saturating_add);
    if total > MAX_TOTAL {
        bail!("{tag} declares {total} bytes of {what}, more than wharf reads ({MAX_TOTAL})");
    }
    Ok(layers)
}

/// The bundles referring to `digest`; one that cannot be read fails the download (nothing
/// half-listed), and so do more than could be read.
async fn bundles(store: &dyn Store, digest: &Digest) -> Result<Vec<SigstoreBundle>> {
    let FoundBundles {
        bundles,
        not_examined,
    } = find_bundles(store, digest).await?;
    if not_examined > 0 {
        bail!("{digest} has more bundle referrers than wharf reads ({not_examined} left unread)");
    }
    bundles
        .into_iter()
        .map(|(referrer, bundle)| bundle.with_context(|| format!("bundle referrer {referrer}")))
        .collect()
}

fn limit<T>(items: &[T], what: &str) -> Result<()> {
    if items.len() > MAX_ATTACHED {
        bail!(
            "maximum number of {what} on an image is {MAX_ATTACHED}, found {}",
            items.len()
        );
    }
    Ok(())
}

fn envelope_predicate_type(envelope: &Envelope) -> Option<String> {
    let payload = envelope.payload_bytes().ok()?;
    Some(parse_statement(&payload).ok()?.predicate_type.to_string())
}

fn bundle_predicate_type(bundle: &SigstoreBundle) -> Option<String> {
    envelope_predicate_type(bundle.dsse_envelope.as_ref()?)
}

fn is_sbom_type(d: &Descriptor) -> bool {
    super::copy_only::referrer_kind(d) == Some("sbom")
}

/// cosign's `SignedPayload` for one `.sig` layer.
fn signed_payload(layer: &Descriptor, payload: &[u8]) -> Result<Value> {
    let certificates = |annotation: &str| -> Result<Option<Vec<Value>>> {
        let Some(pem) = layer.annotation(annotation) else {
            return Ok(None);
        };
        let blocks = crate::sigstore::pem::decode_all(pem)
            .map_err(|e| anyhow!("the {annotation} annotation is not PEM: {e}"))?;
        Ok(Some(
            blocks
                .into_iter()
                .map(|b| json!({ "Raw": B64.encode(b.der) }))
                .collect(),
        ))
    };
    let embedded_json = |annotation: &str| -> Result<Value> {
        layer
            .annotation(annotation)
            .map(|text| {
                serde_json::from_str(text)
                    .map_err(|e| anyhow!("the {annotation} annotation is not JSON: {e}"))
            })
            .transpose()
            .map(Option::unwrap_or_default)
    };
    let cert = certificates(CERTIFICATE_ANNOTATION)?
        .and_then(|c| c.into_iter().next())
        .unwrap_or(Value::Null);
    Ok(json!({
        "Base64Signature": layer.annotation(SIGNATURE_ANNOTATION).unwrap_or_default(),
        "Payload": B64.encode(payload),
        "Cert": cert,
        "Chain": certificates(CHAIN_ANNOTATION)?,
        "Bundle": embedded_json(BUNDLE_ANNOTATION)?,
        "RFC3161Timestamp": embedded_json(RFC3161_ANNOTATION)?,
    }))
}
