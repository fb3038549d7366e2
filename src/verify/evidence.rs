//! The core of the engine, shared by every storage format: a signature over some content, the
//! material that says who signed (a key or a certificate), transparency log entries and signed
//! timestamps, checked against a policy and a trusted root at a given time. Formats (Sigstore
//! bundles, cosign's tag scheme) only translate themselves into [`Evidence`].
//!
//! Two phases, so a format can check what the signature covers in between: [`check_signature`]
//! (is the content signed under the policy?) and [`check_evidence`] (is that signature logged,
//! timestamped, and made by a certificate the trusted root vouches for, at a trusted time?).

use super::policy::Policy;
use super::rejection::{reject, Rejection, RejectionKind as Kind};
use crate::cosign::attestation::{pae, Envelope};
use crate::sigstore::cert::{verify_chain, verify_embedded_sct, SigningCert};
use crate::sigstore::checkpoint::{self, Origin};
use crate::sigstore::merkle;
use crate::sigstore::pubkey::{HashAlg, VerifyingKey};
use crate::sigstore::rekor::{self, LoggedSubject};
use crate::sigstore::trust::{format_rfc3339, LogKey, TrustRoot};
use crate::sigstore::tsa;
use sha2::{Digest as _, Sha256};

/// Most transparency log entries and timestamps one signature may come with.
pub const MAX_LOG_ENTRIES: usize = 32;
pub const MAX_TIMESTAMPS: usize = 32;
/// How far in the future a log's integrated time may lie (clock skew between log and verifier).
pub const MAX_CLOCK_SKEW: i64 = 60;

/// What was signed.
#[derive(Debug, Clone)]
pub enum Content {
    /// A signature over bytes whose SHA-256 is `digest` (a file, a Simple Signing payload).
    Message {
        digest: [u8; 32],
        signature: Vec<u8>,
    },
    /// A DSSE envelope: the signature is over its pre-authentication encoding.
    Dsse {
        payload_type: String,
        payload: Vec<u8>,
        signatures: Vec<Vec<u8>>,
    },
}

impl Content {
    pub fn from_envelope(envelope: &Envelope) -> Result<Content, Rejection> {
        let payload = envelope
            .payload_bytes()
            .or_else(|_| reject(Kind::Malformed, "the envelope is malformed (bad base64)"))?;
        let signatures = envelope
            .signature_bytes()
            .or_else(|_| reject(Kind::Malformed, "the envelope is malformed (bad base64)"))?;
        Ok(Content::Dsse {
            payload_type: envelope.payload_type.clone(),
            payload,
            signatures,
        })
    }
}

/// Who the content says signed it.
#[derive(Debug, Clone)]
pub enum Material {
    /// A signing certificate (Fulcio's, for keyless signatures).
    Certificate(Box<SigningCert>),
    /// A key; the policy supplies the key itself.
    Key,
}

/// One transparency log entry, in the shape every format can be brought to.
#[derive(Debug, Clone)]
pub struct LogEvidence {
    pub log_id: Vec<u8>,
    pub log_index: i64,
    /// `kind` and `version` as the entry's metadata states them (checked against the body).
    pub kind_version: Option<(String, String)>,
    pub integrated_time: i64,
    /// The Signed Entry Timestamp, when the entry has one.
    pub promise: Option<Vec<u8>>,
    pub proof: Option<ProofEvidence>,
    /// The canonicalized body, base64 as logged (what the SET signs) and decoded.
    pub body_b64: String,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct ProofEvidence {
    pub log_index: i64,
    pub tree_size: i64,
    pub root_hash: [u8; 32],
    pub hashes: Vec<[u8; 32]>,
    pub checkpoint: Option<String>,
}

/// Everything one signature comes with.
#[derive(Debug, Clone)]
pub struct Evidence {
    pub content: Content,
    pub material: Material,
    pub tlog: Vec<LogEvidence>,
    /// DER RFC 3161 timestamps over the signature.
    pub timestamps: Vec<Vec<u8>>,
    /// Each log entry must carry a Signed Entry Timestamp (bundles v0.1, cosign's tag scheme).
    pub promise_required: bool,
    /// Each log entry must carry an inclusion proof (bundles v0.2 and later).
    pub proof_required: bool,
}

/// What the verifier takes as given: the trust root, the time now, and what was waived.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub trust: &'a TrustRoot,
    /// Unix seconds.
    pub now: i64,
    /// Accept signatures without transparency log evidence (`--insecure-ignore-tlog`).
    pub ignore_tlog: bool,
    /// Accept certificates without a checkable SCT (`--insecure-ignore-sct`).
    pub ignore_sct: bool,
}

/// A signature that verified under the policy (phase one).
#[derive(Debug, Clone)]
pub struct Signed {
    /// The signature that verified.
    pub signature: Vec<u8>,
    /// DER of what a log entry must name as verifier: the certificate, or the key's SPKI.
    pub verifier_der: Vec<u8>,
    pub key: VerifyingKey,
    pub certificate: Option<SigningCert>,
}

/// Where a trusted time came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "source", content = "by")]
pub enum TimeSource {
    /// A transparency log's Signed Entry Timestamp (its URL).
    TransparencyLog(String),
    /// An RFC 3161 timestamp authority (its URL).
    TimestampAuthority(String),
    /// No signed time: the verifier's clock (`--insecure-ignore-tlog`).
    VerifierClock,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VerifiedTime {
    pub time: i64,
    #[serde(flatten)]
    pub source: TimeSource,
}

/// Everything that verified (phase two).
#[derive(Debug, Clone)]
pub struct Verified {
    pub signed: Signed,
    pub times: Vec<VerifiedTime>,
    /// Log entries that verified against the trusted root.
    pub log_entries: usize,
}

/// Phase one: is the content signed under the policy, by the key or certificate it names?
pub fn check_signature(evidence: &Evidence, policy: &Policy) -> Result<Signed, Rejection> {
    let (key, certificate, verifier_der) = match (policy, &evidence.material) {
        (Policy::Key(key), material) => {
            let key = VerifyingKey::from_p256(key);
            // A certificate for this very key may be named in the log entry instead.
            let verifier = match material {
                Material::Certificate(cert) if cert.public_key == key => cert.der.clone(),
                _ => key.spki_der().to_vec(),
            };
            (key, None, verifier)
        }
        (Policy::Identity(_), Material::Certificate(cert)) => (
            cert.public_key.clone(),
            Some((**cert).clone()),
            cert.der.clone(),
        ),
        (Policy::Identity(_), Material::Key) => {
            return reject(
                Kind::WrongMaterial,
                "the signature has no certificate (it was made with a key: verify with --key)",
            )
        }
    };
    let bad = || {
        match policy {
        Policy::Key(k) => Rejection::new(
            Kind::BadSignature,
            format!(
                "no signature verifies under the key {} (wrong key, or the payload or signature was altered)",
                crate::sign::keys::fingerprint(k)
            ),
        ),
        Policy::Identity(_) => Rejection::new(
            Kind::BadSignature,
            "the signature does not verify under its certificate's key (the payload or signature was altered)",
        ),
    }
    };
    let signature = match &evidence.content {
        Content::Message { digest, signature } => {
            key.verify_digest(HashAlg::Sha256, digest, signature)
                .map_err(|_| bad())?;
            signature.clone()
        }
        Content::Dsse {
            payload_type,
            payload,
            signatures,
        } => {
            if signatures.is_empty() {
                return reject(Kind::Malformed, "the envelope has no signature");
            }
            let signed = pae(payload_type, payload);
            let hash = key.kind().default_hash();
            signatures
                .iter()
                .find(|s| key.verify(hash, &signed, s).is_ok())
                .ok_or_else(bad)?
                .clone()
        }
    };
    Ok(Signed {
        signature,
        verifier_der,
        key,
        certificate,
    })
}

fn tlog_invalid(kind: Kind, why: impl std::fmt::Display) -> Rejection {
    Rejection::new(kind, format!("transparency log evidence invalid: {why}"))
}

/// Phase two: transparency log, signed timestamps, and for certificates the chain, SCT,
/// validity at every trusted time, and the identity.
pub fn check_evidence(
    evidence: &Evidence,
    signed: Signed,
    policy: &Policy,
    ctx: &Context<'_>,
) -> Result<Verified, Rejection> {
    let mut times = Vec::new();
    let mut log_entries = 0;
    let mut needs_timestamp = false;
    if !ctx.ignore_tlog {
        let outcome = check_tlog(evidence, &signed, ctx)?;
        log_entries = outcome.verified;
        needs_timestamp = outcome.needs_timestamp;
        times.extend(outcome.times);
    }
    let timestamp_times = check_timestamps(evidence, &signed, ctx)?;
    if needs_timestamp && timestamp_times.is_empty() {
        return reject(
            Kind::TimestampMissing,
            "the log entry is from a Rekor v2 log, which records no signing time: a signed timestamp from a timestamp authority of the trusted root is required, and there is none",
        );
    }
    times.extend(timestamp_times);
    if times.is_empty() && ctx.ignore_tlog {
        times.push(VerifiedTime {
            time: ctx.now,
            source: TimeSource::VerifierClock,
        });
    }
    if let (Policy::Identity(identity), Some(cert)) = (policy, &signed.certificate) {
        if times.is_empty() {
            return reject(
                Kind::OutsideValidity,
                "no trusted time for the signature (no Signed Entry Timestamp and no signed timestamp): the certificate's validity cannot be checked",
            );
        }
        for t in &times {
            check_certificate_at(cert, t, ctx)?;
        }
        identity.check(cert)?;
    }
    Ok(Verified {
        signed,
        times,
        log_entries,
    })
}

fn check_certificate_at(
    cert: &SigningCert,
    at: &VerifiedTime,
    ctx: &Context<'_>,
) -> Result<(), Rejection> {
    let t = at.time;
    if t < cert.not_before || t > cert.not_after {
        return reject(
            Kind::OutsideValidity,
            format!(
                "signed outside the certificate's validity (signed at {}, certificate valid {}..{}){}",
                format_rfc3339(t),
                format_rfc3339(cert.not_before),
                format_rfc3339(cert.not_after),
                match at.source {
                    TimeSource::VerifierClock => ": without the transparency log the signing time is unknown, so an expired certificate fails",
                    TimeSource::TimestampAuthority(_) => " (time from a signed timestamp)",
                    TimeSource::TransparencyLog(_) => " (time from the transparency log)",
                }
            ),
        );
    }
    let ca = verify_chain(cert, ctx.trust, t)
        .map_err(|e| Rejection::new(Kind::UntrustedCertificate, format!("{e:#}")))?;
    if ctx.trust.ct_keys.is_empty() {
        if !ctx.ignore_sct {
            return reject(
                Kind::Sct,
                "the trusted root lists no CT log, so the certificate's SCT cannot be checked; pass --insecure-ignore-sct to accept certificates without that proof",
            );
        }
    } else if !ctx.ignore_sct {
        verify_embedded_sct(cert, &ca.chain[0], &ctx.trust.ct_keys)
            .map_err(|e| Rejection::new(Kind::Sct, format!("{e:#}")))?;
    }
    Ok(())
}

struct TlogOutcome {
    verified: usize,
    times: Vec<VerifiedTime>,
    /// A Rekor v2 entry verified: it has no integrated time, so a timestamp is required.
    needs_timestamp: bool,
}

fn check_tlog(
    evidence: &Evidence,
    signed: &Signed,
    ctx: &Context<'_>,
) -> Result<TlogOutcome, Rejection> {
    if evidence.tlog.is_empty() {
        return reject(
            Kind::TlogMissing,
            "there is no transparency log bundle; pass --insecure-ignore-tlog to accept signatures made with --tlog-upload=false",
        );
    }
    if evidence.tlog.len() > MAX_LOG_ENTRIES {
        return reject(
            Kind::Malformed,
            format!(
                "{} transparency log entries, more than {MAX_LOG_ENTRIES}",
                evidence.tlog.len()
            ),
        );
    }
    for (i, a) in evidence.tlog.iter().enumerate() {
        if evidence.tlog[..i]
            .iter()
            .any(|b| b.log_id == a.log_id && b.log_index == a.log_index)
        {
            return reject(Kind::Malformed, "the same log entry is listed twice");
        }
    }
    let mut outcome = TlogOutcome {
        verified: 0,
        times: Vec::new(),
        needs_timestamp: false,
    };
    let mut unknown = Vec::new();
    for entry in &evidence.tlog {
        let Some(log) = ctx.trust.rekor_key(&entry.log_id) else {
            unknown.push(hex::encode(&entry.log_id));
            continue;
        };
        let v2 = check_entry(evidence, signed, entry, log, ctx)?;
        outcome.verified += 1;
        if v2 {
            outcome.needs_timestamp = true;
        } else if entry.promise.is_some() {
            outcome.times.push(VerifiedTime {
                time: entry.integrated_time,
                source: TimeSource::TransparencyLog(log.base_url.clone()),
            });
        }
    }
    if outcome.verified == 0 {
        return Err(tlog_invalid(
            Kind::TlogUnknownLog,
            format!(
                "the bundle names transparency log {} which the trusted root does not know",
                unknown.join(", ")
            ),
        ));
    }
    Ok(outcome)
}

/// Checks one entry of a log the trusted root lists. Returns whether it is a Rekor v2 entry.
fn check_entry(
    evidence: &Evidence,
    signed: &Signed,
    entry: &LogEvidence,
    log: &LogKey,
    ctx: &Context<'_>,
) -> Result<bool, Rejection> {
    if entry.log_index < 0 {
        return reject(
            Kind::Malformed,
            format!("the log entry has a negative log index {}", entry.log_index),
        );
    }
    if entry.integrated_time < 0 {
        return reject(
            Kind::Malformed,
            "the log entry has a negative integrated time",
        );
    }
    let logged =
        rekor::parse_body(&entry.body).map_err(|e| tlog_invalid(Kind::TlogEntryMismatch, e))?;
    if let Some((kind, version)) = &entry.kind_version {
        if kind != &logged.kind || version != &logged.version {
            return Err(tlog_invalid(
                Kind::TlogEntryMismatch,
                format!(
                    "the entry says it is {kind} {version}, its body is {} {}",
                    logged.kind, logged.version
                ),
            ));
        }
    }
    let v2 = logged.is_rekor_v2();
    if evidence.promise_required && entry.promise.is_none() && !v2 {
        return Err(tlog_invalid(
            Kind::TlogPromise,
            "the log entry has no inclusion promise (Signed Entry Timestamp)",
        ));
    }
    if (evidence.proof_required || v2) && entry.proof.is_none() {
        return Err(tlog_invalid(
            Kind::TlogProof,
            "the log entry has no inclusion proof",
        ));
    }
    if let (Some(set), false) = (&entry.promise, v2) {
        rekor::verify_set(
            set,
            &entry.body_b64,
            entry.integrated_time,
            entry.log_index,
            log,
        )
        .map_err(|e| match e {
            rekor::SetError::BadSignature => tlog_invalid(Kind::TlogPromise, e),
            rekor::SetError::KeyNotValid(_) => tlog_invalid(Kind::TlogTime, e),
        })?;
        if entry.integrated_time > ctx.now + MAX_CLOCK_SKEW {
            return Err(tlog_invalid(
                Kind::TlogTime,
                format!(
                    "the entry's integrated time {} is in the future",
                    format_rfc3339(entry.integrated_time)
                ),
            ));
        }
    }
    if let Some(proof) = &entry.proof {
        check_proof(entry, proof, log, v2)?;
    }
    check_binding(evidence, signed, &logged)?;
    Ok(v2)
}

fn check_proof(
    entry: &LogEvidence,
    proof: &ProofEvidence,
    log: &LogKey,
    v2: bool,
) -> Result<(), Rejection> {
    if proof.log_index < 0 || proof.tree_size < 0 {
        return reject(
            Kind::Malformed,
            "the inclusion proof has a negative index or size",
        );
    }
    if proof.hashes.len() > merkle::MAX_PROOF_HASHES {
        return reject(Kind::Malformed, "the inclusion proof is too long");
    }
    let Some(text) = &proof.checkpoint else {
        return Err(tlog_invalid(
            Kind::TlogCheckpoint,
            "the inclusion proof has no checkpoint (signed tree head)",
        ));
    };
    let leaf = merkle::leaf_hash(&entry.body);
    merkle::verify_inclusion(
        proof.log_index as u64,
        proof.tree_size as u64,
        &leaf,
        &proof.hashes,
        &proof.root_hash,
    )
    .map_err(|e| tlog_invalid(Kind::TlogProof, format!("inclusion proof: {e}")))?;
    let signed_checkpoint =
        checkpoint::parse(text).map_err(|e| tlog_invalid(Kind::TlogCheckpoint, e))?;
    let origin = if v2 {
        Origin::Exactly(checkpoint::origin_of(&log.base_url))
    } else {
        Origin::SignerPrefix
    };
    signed_checkpoint
        .verify(&log.id, &log.key, origin)
        .map_err(|e| tlog_invalid(Kind::TlogCheckpoint, e))?;
    let cp = &signed_checkpoint.checkpoint;
    if cp.size != proof.tree_size as u64 || cp.root_hash != proof.root_hash {
        return Err(tlog_invalid(
            Kind::TlogCheckpoint,
            "the checkpoint is for another tree head than the inclusion proof",
        ));
    }
    Ok(())
}

/// The entry is about this signature, by this certificate or key, over this content.
fn check_binding(
    evidence: &Evidence,
    signed: &Signed,
    logged: &rekor::LoggedEntry,
) -> Result<(), Rejection> {
    let mismatch = |what: &str| {
        Err(tlog_invalid(
            Kind::TlogEntryMismatch,
            format!("the log entry is for a different {what}"),
        ))
    };
    let content_matches = match (&evidence.content, &logged.subject) {
        (Content::Message { digest, .. }, LoggedSubject::Digest { hash, digest: d }) => {
            *hash == HashAlg::Sha256 && d == digest
        }
        (Content::Dsse { payload, .. }, LoggedSubject::Payload { sha256 }) => {
            sha256.as_slice() == Sha256::digest(payload).as_slice()
        }
        // Rekor v2 logs a DSSE envelope as a hashedrekord over its pre-authentication
        // encoding, hashed as the signing key hashes.
        (
            Content::Dsse {
                payload_type,
                payload,
                ..
            },
            LoggedSubject::Digest { hash, digest },
        ) if logged.is_rekor_v2() => {
            *hash == signed.key.kind().default_hash()
                && hash.digest(&pae(payload_type, payload)) == *digest
        }
        (Content::Message { .. }, LoggedSubject::Payload { .. }) => {
            return mismatch("kind of content (an envelope, not a signed message)");
        }
        (Content::Dsse { .. }, LoggedSubject::Digest { .. }) => {
            return mismatch("kind of content (a signed message, not an envelope)");
        }
    };
    let same_signature: Vec<_> = logged
        .signatures
        .iter()
        .filter(|s| s.signature == signed.signature)
        .collect();
    match (content_matches, same_signature.is_empty()) {
        (false, true) => return mismatch("signature, over a different artifact"),
        (false, false) => return mismatch("artifact (the logged digest is not this content's)"),
        (true, true) => return mismatch("signature"),
        (true, false) => {}
    }
    if !same_signature
        .iter()
        .any(|s| s.verifier_der == signed.verifier_der)
    {
        return mismatch("certificate or key");
    }
    Ok(())
}

fn check_timestamps(
    evidence: &Evidence,
    signed: &Signed,
    ctx: &Context<'_>,
) -> Result<Vec<VerifiedTime>, Rejection> {
    if evidence.timestamps.len() > MAX_TIMESTAMPS {
        return reject(
            Kind::Malformed,
            format!(
                "{} signed timestamps, more than {MAX_TIMESTAMPS}",
                evidence.timestamps.len()
            ),
        );
    }
    let mut times = Vec::new();
    for (i, ts) in evidence.timestamps.iter().enumerate() {
        if evidence.timestamps[..i].contains(ts) {
            return reject(Kind::Malformed, "the same signed timestamp is listed twice");
        }
        let verified = tsa::verify(ts, &signed.signature, &ctx.trust.timestamp_authorities)
            .map_err(|e| {
                Rejection::new(Kind::TimestampInvalid, format!("signed timestamp: {e}"))
            })?;
        times.push(VerifiedTime {
            time: verified.time,
            source: TimeSource::TimestampAuthority(verified.authority),
        });
    }
    Ok(times)
}
