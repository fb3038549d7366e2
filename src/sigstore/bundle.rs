//! Sigstore bundles, v0.1 to v0.3: a message signature or a DSSE envelope with its
//! verification material (certificate, certificate chain or key hint; transparency log
//! entries; RFC 3161 timestamps) in one protobuf-JSON document. What cosign v3 and GitHub's
//! artifact attestations store as OCI referrers, and `sign-blob --bundle` writes.
//!
//! These are wharf's own serde types rather than `sigstore_protobuf_specs`': see README,
//! "Design".

use super::rekor::LogEntry;
use crate::cosign::attestation::Envelope;
use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// The bundle versions wharf reads, by media type (v0.3 has two spellings).
pub const BUNDLE_MEDIA_TYPES: [(&str, BundleVersion); 4] = [
    (
        "application/vnd.dev.sigstore.bundle+json;version=0.1",
        BundleVersion::V01,
    ),
    (
        "application/vnd.dev.sigstore.bundle+json;version=0.2",
        BundleVersion::V02,
    ),
    (
        "application/vnd.dev.sigstore.bundle+json;version=0.3",
        BundleVersion::V03,
    ),
    (BUNDLE_MEDIA_TYPE, BundleVersion::V03),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum BundleVersion {
    V01,
    V02,
    V03,
}
/// The predicate type cosign v3 uses for a plain image signature in bundle form.
pub const SIGN_PREDICATE_TYPE: &str = "https://sigstore.dev/cosign/sign/v1";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SigstoreBundle {
    pub media_type: String,
    pub verification_material: VerificationMaterial,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_signature: Option<MessageSignature>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dsse_envelope: Option<Envelope>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationMaterial {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<RawBytes>,
    /// v0.1 and v0.2: the leaf first, perhaps followed by intermediates (never trusted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x509_certificate_chain: Option<CertificateChain>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<KeyHint>,
    #[serde(default)]
    pub tlog_entries: Vec<TlogEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_verification_data: Option<TimestampVerificationData>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CertificateChain {
    #[serde(default)]
    pub certificates: Vec<RawBytes>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimestampVerificationData {
    #[serde(default)]
    pub rfc3161_timestamps: Vec<SignedTimestamp>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SignedTimestamp {
    pub signed_timestamp: String,
}

/// A signature over an artifact's bytes, and the artifact's digest as a (non-binding) hint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageSignature {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_digest: Option<HashOutput>,
    pub signature: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HashOutput {
    pub algorithm: String,
    pub digest: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawBytes {
    pub raw_bytes: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyHint {
    #[serde(default)]
    pub hint: String,
}

/// A transparency log entry, protobuf-JSON style (64-bit integers as strings).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlogEntry {
    // Protobuf JSON leaves out zero values (a first entry has no logIndex; Rekor v2 entries
    // have no integratedTime) and writes 64-bit integers as strings, or numbers.
    #[serde(default = "zero", deserialize_with = "int64")]
    pub log_index: String,
    pub log_id: LogId,
    pub kind_version: KindVersion,
    #[serde(default = "zero", deserialize_with = "int64")]
    pub integrated_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inclusion_promise: Option<InclusionPromise>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inclusion_proof: Option<InclusionProofJson>,
    pub canonicalized_body: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogId {
    pub key_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KindVersion {
    pub kind: String,
    pub version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InclusionPromise {
    pub signed_entry_timestamp: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InclusionProofJson {
    #[serde(default = "zero", deserialize_with = "int64")]
    pub log_index: String,
    pub root_hash: String,
    #[serde(default = "zero", deserialize_with = "int64")]
    pub tree_size: String,
    #[serde(default)]
    pub hashes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    pub envelope: String,
}

/// Decodes a protobuf-JSON `bytes` field as Go's protojson does: standard or URL-safe
/// alphabet, padded or not, line breaks ignored (a base64 tool's 76-column output pasted in).
pub fn decode_bytes(text: &str) -> Option<Vec<u8>> {
    use base64::alphabet;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const ANY_PADDING: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, ANY_PADDING);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, ANY_PADDING);
    let compact: String = text.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
    let engine = if compact.contains(['-', '_']) {
        URL_SAFE
    } else {
        STANDARD
    };
    engine.decode(compact.as_bytes()).ok()
}

fn zero() -> String {
    "0".into()
}

/// A protobuf-JSON int64: a string of digits or a JSON number, kept as its decimal text.
fn int64<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    use serde::de::Error;
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) if s.parse::<i64>().is_ok() => Ok(s),
        serde_json::Value::Number(n) if n.is_i64() => Ok(n.to_string()),
        other => Err(D::Error::custom(format!("{other} is not a 64-bit integer"))),
    }
}

fn hex_to_b64(hex_text: &str) -> Result<String> {
    Ok(B64.encode(hex::decode(hex_text).map_err(|_| anyhow!("Rekor returned a non-hex hash"))?))
}

impl TlogEntry {
    pub fn from_log_entry(entry: &LogEntry) -> Result<TlogEntry> {
        let b = &entry.bundle;
        Ok(TlogEntry {
            log_index: b.payload.log_index.to_string(),
            log_id: LogId {
                key_id: hex_to_b64(&b.payload.log_id)?,
            },
            kind_version: KindVersion {
                kind: entry.kind.clone(),
                version: entry.version.clone(),
            },
            integrated_time: b.payload.integrated_time.to_string(),
            inclusion_promise: Some(InclusionPromise {
                signed_entry_timestamp: b.signed_entry_timestamp.clone(),
            }),
            inclusion_proof: entry
                .inclusion_proof
                .as_ref()
                .map(|p| -> Result<InclusionProofJson> {
                    Ok(InclusionProofJson {
                        log_index: p.log_index.to_string(),
                        root_hash: hex_to_b64(&p.root_hash)?,
                        tree_size: p.tree_size.to_string(),
                        hashes: p
                            .hashes
                            .iter()
                            .map(|h| hex_to_b64(h))
                            .collect::<Result<_>>()?,
                        checkpoint: p.checkpoint.clone().map(|envelope| Checkpoint { envelope }),
                    })
                })
                .transpose()?,
            canonicalized_body: b.payload.body.clone(),
        })
    }
}

impl VerificationMaterial {
    fn new(
        certificate_der: Option<&[u8]>,
        key_hint: Option<String>,
        log: Option<&LogEntry>,
    ) -> Result<Self> {
        Ok(VerificationMaterial {
            certificate: certificate_der.map(|d| RawBytes {
                raw_bytes: B64.encode(d),
            }),
            x509_certificate_chain: None,
            public_key: if certificate_der.is_none() {
                Some(KeyHint {
                    hint: key_hint.unwrap_or_default(),
                })
            } else {
                None
            },
            tlog_entries: log
                .map(TlogEntry::from_log_entry)
                .transpose()?
                .into_iter()
                .collect(),
            timestamp_verification_data: None,
        })
    }
}

impl SigstoreBundle {
    /// A bundle for a DSSE envelope signed by a certificate (keyless) or a key (with a hint).
    pub fn new(
        envelope: Envelope,
        certificate_der: Option<&[u8]>,
        key_hint: Option<String>,
        log: Option<&LogEntry>,
    ) -> Result<Self> {
        Ok(SigstoreBundle {
            message_signature: None,
            dsse_envelope: Some(envelope),
            ..Self::empty(certificate_der, key_hint, log)?
        })
    }

    /// A bundle for a signature over a file whose SHA-256 is `digest`.
    pub fn for_message(
        digest: &[u8; 32],
        signature: &[u8],
        certificate_der: Option<&[u8]>,
        key_hint: Option<String>,
        log: Option<&LogEntry>,
    ) -> Result<Self> {
        Ok(SigstoreBundle {
            message_signature: Some(MessageSignature {
                message_digest: Some(HashOutput {
                    algorithm: "SHA2_256".into(),
                    digest: B64.encode(digest),
                }),
                signature: B64.encode(signature),
            }),
            ..Self::empty(certificate_der, key_hint, log)?
        })
    }

    /// A v0.3 bundle with its verification material and no content yet.
    fn empty(
        certificate_der: Option<&[u8]>,
        key_hint: Option<String>,
        log: Option<&LogEntry>,
    ) -> Result<Self> {
        Ok(SigstoreBundle {
            media_type: BUNDLE_MEDIA_TYPE.into(),
            verification_material: VerificationMaterial::new(certificate_der, key_hint, log)?,
            message_signature: None,
            dsse_envelope: None,
        })
    }

    /// Which version the media type names, if it is one wharf reads.
    pub fn version(&self) -> Option<BundleVersion> {
        BUNDLE_MEDIA_TYPES
            .iter()
            .find(|(m, _)| *m == self.media_type)
            .map(|(_, v)| *v)
    }

    /// Parses a bundle of any media type of the Sigstore family (the version is checked when
    /// it is verified, so an unknown version gets its own answer).
    pub fn parse(bytes: &[u8]) -> Result<SigstoreBundle> {
        let b: SigstoreBundle = serde_json::from_slice(bytes).context("not a Sigstore bundle")?;
        if !b
            .media_type
            .starts_with("application/vnd.dev.sigstore.bundle")
        {
            bail!("unexpected bundle media type {:?}", b.media_type);
        }
        Ok(b)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("bundle serialises")
    }

    pub fn certificate_der(&self) -> Result<Option<Vec<u8>>> {
        self.verification_material
            .certificate
            .as_ref()
            .map(|c| {
                B64.decode(&c.raw_bytes)
                    .map_err(|_| anyhow!("the bundle certificate is not base64"))
            })
            .transpose()
    }
}
