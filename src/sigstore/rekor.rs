//! Rekor: logging a signature as a `hashedrekord` entry, the bundle cosign stores beside it
//! (`dev.sigstore.cosign/bundle`), and checking that bundle offline.

use super::pubkey::HashAlg;
use super::trust::LogKey;
use anyhow::{anyhow, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
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
    hashedrekord_for_digest(&Sha256::digest(payload).into(), signature, verifier_pem)
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
}

/// A `hashedrekord` entry proposal for a signature over a SHA-256 `digest` (a file signed
/// without holding it in memory) by `verifier` (a PEM certificate or public key).
pub fn hashedrekord_for_digest(
    digest: &[u8; 32],
    signature: &[u8],
    verifier_pem: &str,
) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": hex::encode(digest)}},
            "signature": {
                "content": B64.encode(signature),
                "publicKey": {"content": B64.encode(verifier_pem.as_bytes())},
            },
        },
    })
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

/// Why a Signed Entry Timestamp does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    #[error("the Signed Entry Timestamp does not verify: the entry or its SET was altered")]
    BadSignature,
    #[error("the log key was not valid at the entry's integrated time {0}")]
    KeyNotValid(String),
}

/// Checks a Signed Entry Timestamp (Rekor v1's inclusion promise): the log's signature over
/// the canonical JSON of the entry's body, integrated time, log id (hex) and index.
pub fn verify_set(
    set: &[u8],
    body_b64: &str,
    integrated_time: i64,
    log_index: i64,
    key: &LogKey,
) -> Result<(), SetError> {
    // Canonical JSON: keys sorted, no whitespace (the payload holds only strings and ints).
    let canonical = serde_json::to_vec(&serde_json::json!({
        "body": body_b64,
        "integratedTime": integrated_time,
        "logID": hex::encode(&key.id),
        "logIndex": log_index,
    }))
    .expect("JSON encodes");
    key.key
        .verify(key.key.kind().default_hash(), &canonical, set)
        .map_err(|_| SetError::BadSignature)?;
    if !key.valid.contains(integrated_time) {
        return Err(SetError::KeyNotValid(super::trust::format_rfc3339(
            integrated_time,
        )));
    }
    Ok(())
}

/// What a logged entry says was signed, by whom, over all the entry kinds Sigstore writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEntry {
    pub kind: String,
    pub version: String,
    pub subject: LoggedSubject,
    pub signatures: Vec<LoggedSignature>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoggedSubject {
    /// `hashedrekord`: the hash of what was signed (a file, a payload, or for Rekor v2 DSSE
    /// the hash of the envelope's pre-authentication encoding).
    Digest { hash: HashAlg, digest: Vec<u8> },
    /// `dsse`, `intoto`: the SHA-256 of the envelope's payload.
    Payload { sha256: Vec<u8> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedSignature {
    pub signature: Vec<u8>,
    /// The DER of the certificate or SubjectPublicKeyInfo the entry names as verifier.
    pub verifier_der: Vec<u8>,
}

impl LoggedEntry {
    /// Rekor v2 (rekor-tiles) entry types: no integrated time, no SET, a checkpoint whose
    /// origin is the log's host.
    pub fn is_rekor_v2(&self) -> bool {
        matches!(
            (self.kind.as_str(), self.version.as_str()),
            ("hashedrekord", "0.0.2") | ("dsse", "0.0.2")
        )
    }
}

/// Why a log entry body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the log entry body is malformed: {0}")]
pub struct BodyError(pub String);

fn body_error<T>(why: impl Into<String>) -> Result<T, BodyError> {
    Err(BodyError(why.into()))
}

fn text<'a>(v: &'a serde_json::Value, what: &str) -> Result<&'a str, BodyError> {
    v.as_str()
        .ok_or_else(|| BodyError(format!("{what} is missing")))
}

fn b64(v: &serde_json::Value, what: &str) -> Result<Vec<u8>, BodyError> {
    B64.decode(text(v, what)?)
        .map_err(|_| BodyError(format!("{what} is not base64")))
}

fn hex_field(v: &serde_json::Value, what: &str) -> Result<Vec<u8>, BodyError> {
    hex::decode(text(v, what)?).map_err(|_| BodyError(format!("{what} is not hex")))
}

/// A Rekor v1 verifier: base64 of a PEM certificate or public key, read as leniently as Go.
fn pem_verifier(v: &serde_json::Value, what: &str) -> Result<Vec<u8>, BodyError> {
    let pem_bytes = b64(v, what)?;
    let pem_text = std::str::from_utf8(&pem_bytes)
        .map_err(|_| BodyError(format!("{what} is not PEM text")))?;
    super::pem::decode_first(pem_text)
        .map(|b| b.der)
        .map_err(|e| BodyError(format!("{what}: {e}")))
}

/// A Rekor v2 verifier: `{publicKey: {rawBytes}} | {x509Certificate: {rawBytes}}`.
fn v2_verifier(v: &serde_json::Value) -> Result<Vec<u8>, BodyError> {
    if let Some(raw) = v["x509Certificate"].get("rawBytes") {
        return b64(raw, "verifier certificate");
    }
    if let Some(raw) = v["publicKey"].get("rawBytes") {
        return b64(raw, "verifier public key");
    }
    body_error("the verifier is neither a certificate nor a public key")
}

/// Most signatures one logged envelope may carry.
const MAX_LOGGED_SIGNATURES: usize = 16;

fn each_signature(
    list: &serde_json::Value,
    read: impl Fn(&serde_json::Value) -> Result<LoggedSignature, BodyError>,
) -> Result<Vec<LoggedSignature>, BodyError> {
    let list = list
        .as_array()
        .ok_or_else(|| BodyError("signatures are missing".into()))?;
    if list.len() > MAX_LOGGED_SIGNATURES {
        return body_error(format!("more than {MAX_LOGGED_SIGNATURES} signatures"));
    }
    list.iter().map(read).collect()
}

/// Reads a log entry's canonicalized body.
pub fn parse_body(body: &[u8]) -> Result<LoggedEntry, BodyError> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| BodyError(format!("not JSON: {e}")))?;
    let kind = text(&v["kind"], "kind")?.to_string();
    let version = text(&v["apiVersion"], "apiVersion")?.to_string();
    let spec = &v["spec"];
    let (subject, signatures) = match (kind.as_str(), version.as_str()) {
        ("hashedrekord", "0.0.1") => {
            let hash = match text(&spec["data"]["hash"]["algorithm"], "hash algorithm")? {
                "sha256" => HashAlg::Sha256,
                "sha384" => HashAlg::Sha384,
                "sha512" => HashAlg::Sha512,
                other => return body_error(format!("unsupported hash algorithm {other:?}")),
            };
            let subject = LoggedSubject::Digest {
                hash,
                digest: hex_field(&spec["data"]["hash"]["value"], "hash value")?,
            };
            let signature = LoggedSignature {
                signature: b64(&spec["signature"]["content"], "signature")?,
                verifier_der: pem_verifier(
                    &spec["signature"]["publicKey"]["content"],
                    "public key",
                )?,
            };
            (subject, vec![signature])
        }
        ("hashedrekord", "0.0.2") => {
            let spec = &spec["hashedRekordV002"];
            let hash = HashAlg::from_sigstore_name(text(&spec["data"]["algorithm"], "algorithm")?)
                .ok_or_else(|| BodyError("unsupported hash algorithm".into()))?;
            let subject = LoggedSubject::Digest {
                hash,
                digest: b64(&spec["data"]["digest"], "digest")?,
            };
            let signature = LoggedSignature {
                signature: b64(&spec["signature"]["content"], "signature")?,
                verifier_der: v2_verifier(&spec["signature"]["verifier"])?,
            };
            (subject, vec![signature])
        }
        ("dsse", "0.0.1") => {
            if text(&spec["payloadHash"]["algorithm"], "payload hash algorithm")? != "sha256" {
                return body_error("the payload hash is not SHA-256");
            }
            let subject = LoggedSubject::Payload {
                sha256: hex_field(&spec["payloadHash"]["value"], "payload hash")?,
            };
            let signatures = each_signature(&spec["signatures"], |s| {
                Ok(LoggedSignature {
                    signature: b64(&s["signature"], "signature")?,
                    verifier_der: pem_verifier(&s["verifier"], "verifier")?,
                })
            })?;
            (subject, signatures)
        }
        ("dsse", "0.0.2") => {
            let spec = &spec["dsseV002"];
            if text(&spec["payloadHash"]["algorithm"], "payload hash algorithm")? != "SHA2_256" {
                return body_error("the payload hash is not SHA-256");
            }
            let subject = LoggedSubject::Payload {
                sha256: b64(&spec["payloadHash"]["digest"], "payload hash")?,
            };
            let signatures = each_signature(&spec["signatures"], |s| {
                Ok(LoggedSignature {
                    signature: b64(&s["content"], "signature")?,
                    verifier_der: v2_verifier(&s["verifier"])?,
                })
            })?;
            (subject, signatures)
        }
        ("intoto", "0.0.2") => {
            let content = &spec["content"];
            if text(
                &content["payloadHash"]["algorithm"],
                "payload hash algorithm",
            )? != "sha256"
            {
                return body_error("the payload hash is not SHA-256");
            }
            let subject = LoggedSubject::Payload {
                sha256: hex_field(&content["payloadHash"]["value"], "payload hash")?,
            };
            let signatures = each_signature(&content["envelope"]["signatures"], |s| {
                // intoto v0.0.2 stores each signature base64-encoded once more.
                let outer = b64(&s["sig"], "signature")?;
                let signature = std::str::from_utf8(&outer)
                    .ok()
                    .and_then(|t| B64.decode(t).ok())
                    .unwrap_or(outer);
                Ok(LoggedSignature {
                    signature,
                    verifier_der: pem_verifier(&s["publicKey"], "public key")?,
                })
            })?;
            (subject, signatures)
        }
        (kind, version) => {
            return body_error(format!("unsupported entry type {kind} {version}"));
        }
    };
    Ok(LoggedEntry {
        kind,
        version,
        subject,
        signatures,
    })
}
