//! In-toto statements inside verified DSSE envelopes: they must name the artifact among their
//! subjects and, when a type is asked for, be of that predicate type.

use super::rejection::{reject, Rejection, RejectionKind as Kind};
use crate::cosign::attestation::{parse_statement, IN_TOTO_PAYLOAD_TYPE};

/// A statement that names the artifact.
#[derive(Debug, Clone)]
pub struct VerifiedStatement {
    /// The whole statement, as signed.
    pub value: serde_json::Value,
    pub predicate_type: String,
    /// The predicate's exact bytes (with the whitespace embedded around it).
    pub predicate: String,
}

/// How messages name what holds the statement and what it should be about:
/// ("bundle", "image"), ("attestation", "image"), ("bundle", "artifact").
#[derive(Debug, Clone, Copy)]
pub struct Naming {
    pub holder: &'static str,
    pub target: &'static str,
}

/// Checks `payload` (of `payload_type`) is an in-toto statement about the SHA-256 `subject`.
pub fn check_statement(
    payload_type: &str,
    payload: &[u8],
    subject: &[u8; 32],
    predicate_type: Option<&str>,
    naming: Naming,
) -> Result<VerifiedStatement, Rejection> {
    let Naming { holder, target } = naming;
    if payload_type != IN_TOTO_PAYLOAD_TYPE {
        return reject(
            Kind::Malformed,
            format!("the {holder}'s envelope is not an in-toto statement (payload type {payload_type:?})"),
        );
    }
    let statement =
        parse_statement(payload).map_err(|e| Rejection::new(Kind::Malformed, format!("{e:#}")))?;
    let wanted = hex::encode(subject);
    if !statement
        .subject_digests
        .iter()
        .any(|d| d.eq_ignore_ascii_case(&wanted))
    {
        return reject(
            Kind::WrongArtifact,
            format!(
                "{holder} for another {target}: its subject is {:?}, not sha256:{wanted}",
                statement.subject_digests
            ),
        );
    }
    if let Some(wanted_type) = predicate_type {
        if statement.predicate_type != wanted_type {
            return reject(
                Kind::WrongPredicateType,
                format!(
                    "no {holder} of type {wanted_type} (found {})",
                    statement.predicate_type
                ),
            );
        }
    }
    let value = serde_json::from_slice(payload)
        .map_err(|e| Rejection::new(Kind::Malformed, format!("{e}")))?;
    Ok(VerifiedStatement {
        value,
        predicate_type: statement.predicate_type,
        predicate: statement.predicate.to_string(),
    })
}
