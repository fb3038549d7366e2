//! Rekor: logging a signature as a `hashedrekord` entry, the bundle cosign stores beside it
//! (`dev.sigstore.cosign/bundle`), and checking that bundle offline.

use super::pubkey::HashAlg;
use super::trust::LogKey;
use anyhow::{anyhow, bail, Context, Result};
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

/// One entry as Rekor v1 answers it (`{uuid: entry}` maps hold these).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EntryAnswer {
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

/// Logs an entry and returns the bundle proving it.
///
/// Logging an entry that is in the log already is answered 409 Conflict, with a `Location`
/// naming the entry there. That happens whenever the same signature is logged twice: ECDSA
/// signing is deterministic here (RFC 6979), so one envelope stored in two formats, or a rerun
/// after a crash between logging and storing, asks again. As cosign does, the existing entry
/// is fetched and returned, once it is shown to be the very entry asked for.
pub async fn upload(
    http: &reqwest::Client,
    rekor_url: &str,
    entry: &serde_json::Value,
) -> Result<LogEntry> {
    let base = rekor_url.trim_end_matches('/');
    let service = format!("Rekor at {rekor_url}");
    let response = super::send(
        http.post(format!("{base}/api/v1/log/entries")).json(entry),
        &service,
    )
    .await?;
    if response.status() == reqwest::StatusCode::CONFLICT {
        let uuid = conflicting_uuid(response.headers()).ok_or_else(|| {
            anyhow!("{service} holds an equivalent entry already (409 Conflict) but names none in its Location header")
        })?;
        let entries: BTreeMap<String, EntryAnswer> = super::get_json(
            http,
            &format!("{base}/api/v1/log/entries/{uuid}"),
            &service,
            &format!("did not return entry {uuid}, which it answered 409 Conflict for"),
        )
        .await?;
        let existing = only_entry(entries, &service)?;
        is_entry_asked_for(entry, &uuid, &existing.body).map_err(|why| {
            anyhow!("{service} answered 409 Conflict naming entry {uuid}, which is not the entry wharf asked to log: {why}")
        })?;
        return Ok(log_entry(existing));
    }
    let entries: BTreeMap<String, EntryAnswer> =
        super::read_json(response, &service, "refused the entry").await?;
    Ok(log_entry(only_entry(entries, &service)?))
}

fn only_entry(entries: BTreeMap<String, EntryAnswer>, service: &str) -> Result<EntryAnswer> {
    if entries.len() > 1 {
        bail!("{service} returned {} entries for one", entries.len());
    }
    entries
        .into_values()
        .next()
        .ok_or_else(|| anyhow!("{service} returned no entry"))
}

fn log_entry(entry: EntryAnswer) -> LogEntry {
    let body: serde_json::Value = B64
        .decode(&entry.body)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    LogEntry {
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
    }
}

/// The entry UUID a 409 answer's `Location` names (`/api/v1/log/entries/UUID`, relative or
/// absolute): 64 hex digits of leaf hash, optionally after 16 of tree ID. Only the UUID is
/// taken; it is looked up on the Rekor the entry was sent to, wherever `Location` points.
fn conflicting_uuid(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let location = headers.get(reqwest::header::LOCATION)?.to_str().ok()?;
    let path = location.split(['?', '#']).next()?;
    let uuid = path.trim_end_matches('/').rsplit('/').next()?;
    let is_hex = uuid.bytes().all(|b| b.is_ascii_hexdigit());
    (is_hex && (uuid.len() == 64 || uuid.len() == 80)).then(|| uuid.to_ascii_lowercase())
}

/// Whether the entry Rekor holds under `uuid`, with this base64 `body`, is what `proposal`
/// (an entry as wharf proposes them) becomes once Rekor canonicalizes it: the UUID is the
/// leaf hash of that body (RFC 6962), and the body logs the same subject, signatures and
/// verifiers. Compared by meaning, not bytes: Rekor re-encodes PEM its own way.
fn is_entry_asked_for(proposal: &serde_json::Value, uuid: &str, body: &str) -> Result<(), String> {
    let body = B64
        .decode(body)
        .map_err(|_| "its body is not base64".to_string())?;
    if !uuid.ends_with(&hex::encode(super::merkle::leaf_hash(&body))) {
        return Err("its body does not hash to that UUID".into());
    }
    let logged = parse_body(&body).map_err(|e| e.to_string())?;
    let (wanted, envelope_hash) = proposed_entry(proposal).map_err(|e| e.to_string())?;
    if (logged.kind.as_str(), logged.version.as_str())
        != (wanted.kind.as_str(), wanted.version.as_str())
    {
        return Err(format!(
            "it is a {} {} entry, not {} {}",
            logged.kind, logged.version, wanted.kind, wanted.version
        ));
    }
    if logged.subject != wanted.subject {
        return Err("it logs another artifact".into());
    }
    fn signatures(e: &LoggedEntry) -> std::collections::BTreeSet<&[u8]> {
        e.signatures.iter().map(|s| &s.signature[..]).collect()
    }
    let verifiers: Vec<&[u8]> = wanted
        .signatures
        .iter()
        .map(|s| &s.verifier_der[..])
        .collect();
    if signatures(&logged) != signatures(&wanted)
        || logged
            .signatures
            .iter()
            .any(|s| !verifiers.contains(&&s.verifier_der[..]))
    {
        return Err("it logs other signatures or verifiers".into());
    }
    if let Some(hash) = envelope_hash {
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        if v["spec"]["envelopeHash"]["value"].as_str() != Some(hash.as_str()) {
            return Err("it logs another envelope".into());
        }
    }
    Ok(())
}

/// What a proposed `hashedrekord` 0.0.1 or `dsse` 0.0.1 entry logs, as [`parse_body`] reads
/// it from the canonicalized body; for `dsse`, also the envelope's SHA-256 (hex). A `dsse`
/// proposal names its verifiers apart from its signatures: each signature is paired with every
/// verifier here, and [`is_entry_asked_for`] only asks that a logged verifier be one of them.
fn proposed_entry(
    proposal: &serde_json::Value,
) -> Result<(LoggedEntry, Option<String>), BodyError> {
    let kind = text(&proposal["kind"], "kind")?;
    let version = text(&proposal["apiVersion"], "apiVersion")?;
    if (kind, version) != ("dsse", "0.0.1") {
        // hashedrekord proposals have the canonical shape already.
        let bytes = serde_json::to_vec(proposal).expect("JSON encodes");
        return Ok((parse_body(&bytes)?, None));
    }
    let content = &proposal["spec"]["proposedContent"];
    let envelope_text = text(&content["envelope"], "envelope")?;
    let envelope: serde_json::Value = serde_json::from_str(envelope_text)
        .map_err(|e| BodyError(format!("the envelope is not JSON: {e}")))?;
    let verifiers = content["verifiers"]
        .as_array()
        .ok_or_else(|| BodyError("verifiers are missing".into()))?
        .iter()
        .map(|v| pem_verifier(v, "verifier"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut signatures = Vec::new();
    for s in each_signature(&envelope["signatures"], |s| {
        Ok(LoggedSignature {
            signature: b64(&s["sig"], "signature")?,
            verifier_der: Vec::new(),
        })
    })? {
        for verifier in &verifiers {
            signatures.push(LoggedSignature {
                signature: s.signature.clone(),
                verifier_der: verifier.clone(),
            });
        }
    }
    let payload = b64(&envelope["payload"], "payload")?;
    let entry = LoggedEntry {
        kind: kind.to_string(),
        version: version.to_string(),
        subject: LoggedSubject::Payload {
            sha256: Sha256::digest(&payload).to_vec(),
        },
        signatures,
    };
    Ok((entry, Some(hex::encode(Sha256::digest(envelope_text)))))
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

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, LOCATION};

    fn located(location: &str) -> Option<String> {
        let mut headers = HeaderMap::new();
        headers.insert(LOCATION, HeaderValue::from_str(location).unwrap());
        conflicting_uuid(&headers)
    }

    #[test]
    fn the_uuid_of_a_conflict_is_the_last_segment_of_its_location() {
        let leaf = "ab".repeat(32);
        let tree = format!("{}{leaf}", "12".repeat(8));
        assert_eq!(
            located(&format!("/api/v1/log/entries/{leaf}")),
            Some(leaf.clone())
        );
        assert_eq!(
            located(&format!(
                "https://elsewhere.example/api/v1/log/entries/{tree}?x=1"
            )),
            Some(tree)
        );
        assert_eq!(
            located(&format!("/api/v1/log/entries/{}", leaf.to_uppercase())),
            Some(leaf.clone())
        );
        for bad in [
            "/api/v1/log/entries/",
            "/api/v1/log/entries/xyz",
            "/api/v1/log/entries/../../admin",
            &format!("/api/v1/log/entries/{}", &leaf[1..]),
        ] {
            assert_eq!(located(bad), None, "{bad}");
        }
        assert_eq!(conflicting_uuid(&HeaderMap::new()), None);
    }

    fn canonical_hashedrekord(proposal: &serde_json::Value) -> (String, String) {
        let body = serde_json::to_vec(proposal).unwrap();
        let mut leaf = Sha256::new();
        leaf.update([0u8]);
        leaf.update(&body);
        (hex::encode(leaf.finalize()), B64.encode(&body))
    }

    #[test]
    fn an_existing_entry_counts_only_when_it_logs_what_was_asked() {
        let key = crate::sign::keys::generate();
        let pem = crate::sign::keys::public_key_pem(&key.public_key());
        let signer = crate::sign::KeySigner::new(key);
        use crate::sign::Signer;
        let asked = hashedrekord(b"payload", &signer.sign(b"payload").unwrap(), &pem);
        let (uuid, body) = canonical_hashedrekord(&asked);
        assert_eq!(is_entry_asked_for(&asked, &uuid, &body), Ok(()));

        let other = hashedrekord(b"other", &signer.sign(b"other").unwrap(), &pem);
        let (other_uuid, other_body) = canonical_hashedrekord(&other);
        let err = is_entry_asked_for(&asked, &other_uuid, &other_body).unwrap_err();
        assert!(err.contains("another artifact"), "{err}");
        let err = is_entry_asked_for(&asked, &uuid, &other_body).unwrap_err();
        assert!(err.contains("does not hash to that UUID"), "{err}");
    }
}
