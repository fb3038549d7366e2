//! Sigstore bundles (v0.3): a DSSE envelope with its verification material (certificate or
//! key hint, transparency log entries) in one JSON document. What cosign v3 and GitHub's
//! artifact attestations store as OCI referrers.

use super::rekor::{Bundle as LegacyBundle, BundlePayload, LogEntry};
use crate::cosign::attestation::Envelope;
use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The predicate type cosign v3 uses for a plain image signature in bundle form.
pub const SIGN_PREDICATE_TYPE: &str = "https://sigstore.dev/cosign/sign/v1";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SigstoreBundle {
    pub media_type: String,
    pub verification_material: VerificationMaterial,
    pub dsse_envelope: Option<Envelope>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationMaterial {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<RawBytes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<KeyHint>,
    #[serde(default)]
    pub tlog_entries: Vec<TlogEntry>,
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
    // Protobuf JSON leaves out zero values: a first entry has no logIndex.
    #[serde(default = "zero")]
    pub log_index: String,
    pub log_id: LogId,
    pub kind_version: KindVersion,
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
    #[serde(default = "zero")]
    pub log_index: String,
    pub root_hash: String,
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

fn zero() -> String {
    "0".into()
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

    /// The same evidence in cosign's legacy bundle shape, to check its SET.
    pub fn as_legacy(&self) -> Result<LegacyBundle> {
        let promise = self
            .inclusion_promise
            .as_ref()
            .ok_or_else(|| anyhow!("the log entry has no inclusion promise (SET)"))?;
        let log_id = B64
            .decode(&self.log_id.key_id)
            .map_err(|_| anyhow!("the log id is not base64"))?;
        Ok(LegacyBundle {
            signed_entry_timestamp: promise.signed_entry_timestamp.clone(),
            payload: BundlePayload {
                body: self.canonicalized_body.clone(),
                integrated_time: self.integrated_time.parse().context("integratedTime")?,
                log_index: self.log_index.parse().context("logIndex")?,
                log_id: hex::encode(log_id),
            },
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
            media_type: BUNDLE_MEDIA_TYPE.into(),
            verification_material: VerificationMaterial {
                certificate: certificate_der.map(|d| RawBytes {
                    raw_bytes: B64.encode(d),
                }),
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
            },
            dsse_envelope: Some(envelope),
        })
    }

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
