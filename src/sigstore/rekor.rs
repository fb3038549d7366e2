//! Rekor: logging a signature as a `hashedrekord` entry, the bundle cosign stores beside it
//! (`dev.sigstore.cosign/bundle`), and checking that bundle offline.

use super::trust::TrustRoot;
use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use p256::ecdsa::signature::Verifier;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;

/// The bundle annotation, exactly as cosign writes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Bundle {
    #[serde(rename = "SignedEntryTimestamp")]
    pub signed_entry_timestamp: String,
    #[serde(rename = "Payload")]
    pub payload: BundlePayload,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BundlePayload {
    pub body: String,
    #[serde(rename = "integratedTime")]
    pub integrated_time: i64,
    #[serde(rename = "logIndex")]
    pub log_index: i64,
    #[serde(rename = "logID")]
    pub log_id: String,
}

/// A `hashedrekord` entry proposal for a signature over `payload` by `verifier` (a PEM
/// certificate or public key).
pub fn hashedrekord(payload: &[u8], signature: &[u8], verifier_pem: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": hex::encode(Sha256::digest(payload))}},
            "signature": {
                "content": B64.encode(signature),
                "publicKey": {"content": B64.encode(verifier_pem.as_bytes())},
            },
        },
    })
}

/// A logged entry: the legacy bundle (what cosign's tag scheme stores) plus what the Sigstore
/// bundle format also carries.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub bundle: Bundle,
    /// `kind` and `apiVersion` of the canonicalized body.
    pub kind: String,
    pub version: String,
    /// Rekor's inclusion proof, when it returned one (hex hashes, as Rekor v1 sends them).
    pub inclusion_proof: Option<InclusionProof>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InclusionProof {
    pub log_index: i64,
    pub root_hash: String,
    pub tree_size: i64,
    pub hashes: Vec<String>,
    pub checkpoint: Option<String>,
}

/// Logs an entry and returns the bundle proving it.
pub async fn upload(
    http: &reqwest::Client,
    rekor_url: &str,
    entry: &serde_json::Value,
) -> Result<LogEntry> {
    let url = format!("{}/api/v1/log/entries", rekor_url.trim_end_matches('/'));
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Entry {
        body: String,
        integrated_time: i64,
        #[serde(rename = "logID")]
        log_id: String,
        log_index: i64,
        verification: Verification,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Verification {
        signed_entry_timestamp: String,
        inclusion_proof: Option<InclusionProof>,
    }
    let service = format!("Rekor at {rekor_url}");
    let entries: BTreeMap<String, Entry> =
        super::post_json(http, &url, entry, &service, "refused the entry").await?;
    let entry = entries
        .into_values()
        .next()
        .ok_or_else(|| anyhow!("Rekor at {rekor_url} returned no entry"))?;
    let body: serde_json::Value = B64
        .decode(&entry.body)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    Ok(LogEntry {
        kind: body["kind"].as_str().unwrap_or_default().to_string(),
        version: body["apiVersion"].as_str().unwrap_or_default().to_string(),
        inclusion_proof: entry.verification.inclusion_proof,
        bundle: Bundle {
            signed_entry_timestamp: entry.verification.signed_entry_timestamp,
            payload: BundlePayload {
                body: entry.body,
                integrated_time: entry.integrated_time,
                log_index: entry.log_index,
                log_id: entry.log_id,
            },
        },
    })
}

impl Bundle {
    pub fn parse(annotation: &str) -> Result<Bundle> {
        serde_json::from_str(annotation).context("the transparency log bundle is malformed")
    }

    pub fn to_annotation(&self) -> String {
        serde_json::to_string(self).expect("bundle serialises")
    }

    /// Checks the Signed Entry Timestamp: the log's signature over the canonical JSON of the
    /// entry, with the log key the entry's `logID` names.
    pub fn verify_set(&self, trust: &TrustRoot) -> Result<()> {
        let log_id = hex::decode(&self.payload.log_id)
            .map_err(|_| anyhow!("the bundle's logID is not hex"))?;
        let key = trust.rekor_key(&log_id).ok_or_else(|| {
            anyhow!(
                "the bundle names transparency log {} which the trusted root does not know",
                self.payload.log_id
            )
        })?;
        // Canonical JSON: keys sorted, no whitespace (the payload holds only strings and ints).
        let canonical = serde_json::to_vec(&serde_json::json!({
            "body": self.payload.body,
            "integratedTime": self.payload.integrated_time,
            "logID": self.payload.log_id,
            "logIndex": self.payload.log_index,
        }))?;
        let set = B64
            .decode(&self.signed_entry_timestamp)
            .map_err(|_| anyhow!("the Signed Entry Timestamp is not base64"))?;
        let sig = p256::ecdsa::Signature::from_der(&set)
            .map_err(|_| anyhow!("the Signed Entry Timestamp is malformed"))?;
        p256::ecdsa::VerifyingKey::from(&key.key)
            .verify(&canonical, &sig.normalize_s())
            .map_err(|_| {
                anyhow!("the Signed Entry Timestamp does not verify: the bundle was altered")
            })?;
        if !key.valid.contains(self.payload.integrated_time) {
            bail!("the log key was not valid at the entry's integrated time");
        }
        Ok(())
    }

    /// Checks the logged entry is about this signature: same payload hash, same signature,
    /// same certificate or key.
    pub fn check_body(&self, payload: &[u8], signature: &[u8], verifier_der: &[u8]) -> Result<()> {
        let body = B64
            .decode(&self.payload.body)
            .map_err(|_| anyhow!("the log entry body is not base64"))?;
        let body: serde_json::Value =
            serde_json::from_slice(&body).context("the log entry body is not JSON")?;
        let kind = body["kind"].as_str().unwrap_or("");
        if kind != "hashedrekord" {
            bail!("the log entry is a {kind:?} entry, not hashedrekord");
        }
        let spec = &body["spec"];
        let mismatch = || anyhow!("the log entry is for a different signature");
        if spec["data"]["hash"]["value"].as_str() != Some(&hex::encode(Sha256::digest(payload))) {
            return Err(mismatch());
        }
        let logged_sig = spec["signature"]["content"]
            .as_str()
            .and_then(|s| B64.decode(s).ok())
            .ok_or_else(mismatch)?;
        if logged_sig != signature {
            return Err(mismatch());
        }
        let logged_key = spec["signature"]["publicKey"]["content"]
            .as_str()
            .and_then(|s| B64.decode(s).ok())
            .ok_or_else(mismatch)?;
        let logged_der = pem_rfc7468::decode_vec(&logged_key)
            .map(|(_, d)| d)
            .map_err(|_| mismatch())?;
        if logged_der != verifier_der {
            return Err(anyhow!(
                "the log entry is for a different certificate or key"
            ));
        }
        Ok(())
    }
}

/// A `dsse` entry proposal for a signed envelope (`verifier_pem`: certificate or public key).
pub fn dsse(envelope_json: &[u8], verifier_pem: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "proposedContent": {
                "envelope": String::from_utf8_lossy(envelope_json),
                "verifiers": [B64.encode(verifier_pem.as_bytes())],
            },
        },
    })
}

impl Bundle {
    /// Checks the logged entry is about this attestation: a `dsse` entry (what wharf writes)
    /// or an `intoto` entry (what cosign writes) for the same payload, signature and signer.
    pub fn check_attestation_body(
        &self,
        payload: &[u8],
        signature: &[u8],
        verifier_der: &[u8],
    ) -> Result<()> {
        let body = B64
            .decode(&self.payload.body)
            .map_err(|_| anyhow!("the log entry body is not base64"))?;
        let body: serde_json::Value =
            serde_json::from_slice(&body).context("the log entry body is not JSON")?;
        let payload_hash = hex::encode(Sha256::digest(payload));
        let mismatch = || anyhow!("the log entry is for a different attestation");
        let decode_pem = |b64: Option<&str>| -> Option<Vec<u8>> {
            let pem = B64.decode(b64?).ok()?;
            pem_rfc7468::decode_vec(&pem).ok().map(|(_, d)| d)
        };
        match body["kind"].as_str().unwrap_or("") {
            "dsse" => {
                let spec = &body["spec"];
                if spec["payloadHash"]["value"].as_str() != Some(&payload_hash) {
                    return Err(mismatch());
                }
                let ok = spec["signatures"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|s| {
                        s["signature"]
                            .as_str()
                            .and_then(|v| B64.decode(v).ok())
                            .as_deref()
                            == Some(signature)
                            && decode_pem(s["verifier"].as_str()).as_deref() == Some(verifier_der)
                    });
                if !ok {
                    return Err(mismatch());
                }
            }
            "intoto" => {
                let content = &body["spec"]["content"];
                if content["payloadHash"]["value"].as_str() != Some(&payload_hash) {
                    return Err(mismatch());
                }
                // intoto v0.0.2 stores each signature base64-encoded once more.
                let ok = content["envelope"]["signatures"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|s| {
                        let sig = s["sig"].as_str().and_then(|v| B64.decode(v).ok());
                        let sig = sig.as_deref().and_then(|inner| {
                            std::str::from_utf8(inner)
                                .ok()
                                .and_then(|t| B64.decode(t).ok())
                                .or(Some(inner.to_vec()))
                        });
                        sig.as_deref() == Some(signature)
                            && decode_pem(s["publicKey"].as_str()).as_deref() == Some(verifier_der)
                    })
                    || body["spec"]["publicKey"]
                        .as_str()
                        .is_some_and(|k| decode_pem(Some(k)).as_deref() == Some(verifier_der));
                if !ok {
                    return Err(mismatch());
                }
            }
            other => bail!("the log entry is a {other:?} entry, not an attestation"),
        }
        Ok(())
    }
}
