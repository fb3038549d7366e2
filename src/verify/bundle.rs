//! Sigstore bundles (v0.1, v0.2, v0.3 in both media types): for a file (`verify-blob`), and
//! for an image manifest (OCI referrers, cosign v3 and GitHub attestations).

use super::evidence::{
    check_evidence, check_signature, Content, Context, Evidence, LogEvidence, Material,
    ProofEvidence, Verified, MAX_LOG_ENTRIES, MAX_TIMESTAMPS,
};
use super::policy::Policy;
use super::rejection::{reject, Rejection, RejectionKind as Kind};
use super::statement::{check_statement, Naming, VerifiedStatement};
use crate::cosign::attestation::IN_TOTO_PAYLOAD_TYPE;
use crate::sigstore::bundle::{decode_bytes, BundleVersion, SigstoreBundle, TlogEntry};
use crate::sigstore::cert::SigningCert;
use crate::sigstore::x509;

/// Most certificates a bundle's chain may list.
const MAX_CHAIN: usize = 10;

/// What a verified bundle said.
#[derive(Debug, Clone)]
pub struct BundleVerdict {
    pub verified: Verified,
    /// For DSSE bundles: the in-toto statement, verified to name the artifact.
    pub statement: Option<VerifiedStatement>,
}

fn malformed<T>(why: impl Into<String>) -> Result<T, Rejection> {
    reject(Kind::Malformed, why)
}

fn b64(text: &str, what: &str) -> Result<Vec<u8>, Rejection> {
    decode_bytes(text).map_or_else(|| malformed(format!("{what} is not base64")), Ok)
}

fn int(text: &str, what: &str) -> Result<i64, Rejection> {
    text.parse()
        .or_else(|_| malformed(format!("{what} {text:?} is not an integer")))
}

fn hash32(text: &str, what: &str) -> Result<[u8; 32], Rejection> {
    b64(text, what)?
        .try_into()
        .or_else(|_| malformed(format!("{what} is not 32 bytes")))
}

/// A bundle's log entry in the engine's shape.
pub fn log_evidence(entry: &TlogEntry) -> Result<LogEvidence, Rejection> {
    let proof = entry
        .inclusion_proof
        .as_ref()
        .map(|p| -> Result<ProofEvidence, Rejection> {
            if p.hashes.len() > crate::sigstore::merkle::MAX_PROOF_HASHES {
                return malformed("the inclusion proof is too long");
            }
            Ok(ProofEvidence {
                log_index: int(&p.log_index, "the inclusion proof's log index")?,
                tree_size: int(&p.tree_size, "the inclusion proof's tree size")?,
                root_hash: hash32(&p.root_hash, "the inclusion proof's root hash")?,
                hashes: p
                    .hashes
                    .iter()
                    .map(|h| hash32(h, "an inclusion proof hash"))
                    .collect::<Result<_, _>>()?,
                checkpoint: p.checkpoint.as_ref().map(|c| c.envelope.clone()),
            })
        })
        .transpose()?;
    Ok(LogEvidence {
        log_id: b64(&entry.log_id.key_id, "the log id")?,
        log_index: int(&entry.log_index, "the log index")?,
        kind_version: Some((
            entry.kind_version.kind.clone(),
            entry.kind_version.version.clone(),
        )),
        integrated_time: int(&entry.integrated_time, "the integrated time")?,
        promise: entry
            .inclusion_promise
            .as_ref()
            .map(|p| b64(&p.signed_entry_timestamp, "the Signed Entry Timestamp"))
            .transpose()?,
        proof,
        body: b64(&entry.canonicalized_body, "the log entry body")?,
        body_b64: entry.canonicalized_body.clone(),
    })
}

/// The bundle's signing certificate or key hint. Certificates in a bundle are never trusted
/// as CAs: a chain's intermediates are ignored and a root certificate is refused.
fn material(bundle: &SigstoreBundle) -> Result<Material, Rejection> {
    let m = &bundle.verification_material;
    let leaf_der = match (&m.certificate, &m.x509_certificate_chain, &m.public_key) {
        (Some(cert), _, _) => b64(&cert.raw_bytes, "the bundle's certificate")?,
        (None, Some(chain), _) => {
            if chain.certificates.is_empty() {
                return reject(
                    Kind::UntrustedCertificate,
                    "the bundle's certificate chain is empty",
                );
            }
            if chain.certificates.len() > MAX_CHAIN {
                return malformed(format!(
                    "the bundle's certificate chain has more than {MAX_CHAIN} certificates"
                ));
            }
            let mut ders = Vec::new();
            for raw in &chain.certificates {
                let der = b64(&raw.raw_bytes, "a certificate of the bundle's chain")?;
                let cert = x509::parse_der(&der).map_err(|e| {
                    Rejection::new(Kind::Malformed, format!("the bundle's chain: {e}"))
                })?;
                if x509::is_root(&cert) {
                    return reject(
                        Kind::UntrustedCertificate,
                        format!(
                            "the bundle's certificate chain includes a root certificate ({}): roots come from the trusted root only",
                            x509::describe(&cert)
                        ),
                    );
                }
                ders.push(der);
            }
            ders.swap_remove(0)
        }
        (None, None, Some(_)) => return Ok(Material::Key),
        (None, None, None) => {
            return malformed("the bundle has no verification material (certificate or key)")
        }
    };
    let cert = SigningCert::from_der(&leaf_der).map_err(|e| {
        Rejection::new(
            Kind::Malformed,
            format!("malformed bundle certificate: {e:#}"),
        )
    })?;
    Ok(Material::Certificate(Box::new(cert)))
}

/// The bundle in the engine's shape, for an artifact whose SHA-256 is `artifact`.
fn evidence(bundle: &SigstoreBundle, artifact: &[u8; 32]) -> Result<Evidence, Rejection> {
    let Some(version) = bundle.version() else {
        return reject(
            Kind::UnsupportedVersion,
            format!(
                "unsupported bundle version: media type {:?} (wharf reads bundles v0.1 to v0.3)",
                bundle.media_type
            ),
        );
    };
    let content = match (&bundle.message_signature, &bundle.dsse_envelope) {
        (Some(message), None) => {
            let signature = b64(&message.signature, "the bundle's signature")?;
            if let Some(hint) = &message.message_digest {
                let digest = b64(&hint.digest, "the bundle's message digest")?;
                if hint.algorithm != "SHA2_256" || digest != artifact {
                    return reject(
                        Kind::WrongArtifact,
                        format!(
                            "the bundle is for another artifact: its message digest is {} {}, the artifact's is SHA2_256 {}",
                            hint.algorithm,
                            hex::encode(&digest),
                            hex::encode(artifact)
                        ),
                    );
                }
            }
            Content::Message {
                digest: *artifact,
                signature,
            }
        }
        (None, Some(envelope)) => {
            if envelope.signatures.len() != 1 {
                return malformed(format!(
                    "the bundle's envelope has {} signatures, a bundle's must have exactly one",
                    envelope.signatures.len()
                ));
            }
            Content::from_envelope(envelope)?
        }
        (Some(_), Some(_)) => {
            return malformed("the bundle has both a message signature and an envelope")
        }
        (None, None) => {
            return malformed("the bundle has neither a message signature nor an envelope")
        }
    };
    let m = &bundle.verification_material;
    if m.tlog_entries.len() > MAX_LOG_ENTRIES {
        return malformed(format!(
            "{} transparency log entries, more than {MAX_LOG_ENTRIES}",
            m.tlog_entries.len()
        ));
    }
    let tlog = m
        .tlog_entries
        .iter()
        .map(log_evidence)
        .collect::<Result<Vec<_>, _>>()?;
    let timestamps: Vec<_> = m
        .timestamp_verification_data
        .iter()
        .flat_map(|d| d.rfc3161_timestamps.iter())
        .collect();
    if timestamps.len() > MAX_TIMESTAMPS {
        return malformed(format!(
            "{} signed timestamps, more than {MAX_TIMESTAMPS}",
            timestamps.len()
        ));
    }
    let timestamps = timestamps
        .into_iter()
        .map(|t| b64(&t.signed_timestamp, "a signed timestamp"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Evidence {
        content,
        material: material(bundle)?,
        tlog,
        timestamps,
        promise_required: version == BundleVersion::V01,
        proof_required: version >= BundleVersion::V02,
    })
}

/// Verifies a bundle for a file whose SHA-256 is `artifact`: a message signature over the
/// file, or a DSSE in-toto statement naming the file's digest among its subjects (and, with
/// `predicate_type`, of that type).
pub fn verify_blob_bundle(
    bundle: &SigstoreBundle,
    artifact: &[u8; 32],
    predicate_type: Option<&str>,
    policy: &Policy,
    ctx: &Context<'_>,
) -> Result<BundleVerdict, Rejection> {
    let naming = Naming {
        holder: "bundle",
        target: "artifact",
    };
    verify_bundle(bundle, artifact, predicate_type, naming, policy, ctx)
}

fn verify_bundle(
    bundle: &SigstoreBundle,
    artifact: &[u8; 32],
    predicate_type: Option<&str>,
    naming: Naming,
    policy: &Policy,
    ctx: &Context<'_>,
) -> Result<BundleVerdict, Rejection> {
    let evidence = evidence(bundle, artifact)?;
    let signed = check_signature(&evidence, policy)?;
    let statement = match &evidence.content {
        Content::Dsse {
            payload_type,
            payload,
            ..
        } => Some(check_statement(
            payload_type,
            payload,
            artifact,
            predicate_type,
            naming,
        )?),
        Content::Message { .. } => {
            if let Some(wanted) = predicate_type {
                return reject(
                    Kind::WrongPredicateType,
                    format!("the bundle is a plain signature, not an attestation of type {wanted}"),
                );
            }
            None
        }
    };
    let verified = check_evidence(&evidence, signed, policy, ctx)?;
    Ok(BundleVerdict {
        verified,
        statement,
    })
}

/// Verifies a bundle attached to an image manifest whose digest is `manifest`: a DSSE in-toto
/// statement about that manifest (of `predicate_type`, when given).
pub fn verify_manifest_bundle(
    bundle: &SigstoreBundle,
    manifest: &[u8; 32],
    predicate_type: Option<&str>,
    policy: &Policy,
    ctx: &Context<'_>,
) -> Result<(Verified, VerifiedStatement), Rejection> {
    let Some(envelope) = &bundle.dsse_envelope else {
        return malformed("the bundle holds no DSSE envelope");
    };
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return malformed("the bundle's envelope is not an in-toto statement");
    }
    let naming = Naming {
        holder: "bundle",
        target: "image",
    };
    let verdict = verify_bundle(bundle, manifest, predicate_type, naming, policy, ctx)?;
    let statement = verdict.statement.expect("a DSSE bundle has a statement");
    Ok((verdict.verified, statement))
}
