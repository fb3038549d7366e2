//! X.509 path validation for Sigstore's fixed chains: a leaf (a Fulcio signing certificate, a
//! TSA's signing certificate) and the chain a trusted root lists for its authority, checked
//! link by link at one point in time. There is no path building: the trusted root says which
//! intermediates and root belong together, and nothing from a bundle is trusted as a CA.

use super::pubkey::{HashAlg, VerifyingKey};
use der::{Decode, Encode};
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage};
use x509_cert::ext::Extension;
use x509_cert::Certificate;

pub const OID_SUBJECT_ALT_NAME: &str = "2.5.29.17";
pub const OID_KEY_USAGE: &str = "2.5.29.15";
pub const OID_BASIC_CONSTRAINTS: &str = "2.5.29.19";
pub const OID_EXTENDED_KEY_USAGE: &str = "2.5.29.37";
const OID_ANY_EKU: &str = "2.5.29.37.0";
const OID_CODE_SIGNING: &str = "1.3.6.1.5.5.7.3.3";
const OID_TIME_STAMPING: &str = "1.3.6.1.5.5.7.3.8";

/// The extensions whose meaning this validator enforces. Any other extension marked critical
/// makes a certificate unusable (RFC 5280 section 4.2).
const UNDERSTOOD_CRITICAL: [&str; 4] = [
    OID_SUBJECT_ALT_NAME,
    OID_KEY_USAGE,
    OID_BASIC_CONSTRAINTS,
    OID_EXTENDED_KEY_USAGE,
];

/// What the leaf certificate must be for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    CodeSigning,
    TimeStamping,
}

impl Purpose {
    fn oid(self) -> &'static str {
        match self {
            Purpose::CodeSigning => OID_CODE_SIGNING,
            Purpose::TimeStamping => OID_TIME_STAMPING,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Purpose::CodeSigning => "codeSigning",
            Purpose::TimeStamping => "timeStamping",
        }
    }
}

/// Why a path did not validate; the text names the certificate and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PathError(pub String);

fn fail<T>(message: impl Into<String>) -> Result<T, PathError> {
    Err(PathError(message.into()))
}

/// Unix seconds of an X.509 time.
pub fn unix(t: x509_cert::time::Time) -> i64 {
    t.to_unix_duration().as_secs() as i64
}

pub fn extension<'a>(cert: &'a Certificate, oid: &str) -> Option<&'a Extension> {
    cert.tbs_certificate()
        .extensions()?
        .iter()
        .find(|e| e.extn_id.to_string() == oid)
}

/// The subject's common name (or the whole subject) for messages.
pub fn describe(cert: &Certificate) -> String {
    let subject = cert.tbs_certificate().subject().to_string();
    if subject.is_empty() {
        "the signing certificate".to_string()
    } else {
        format!("certificate {subject:?}")
    }
}

/// Is the certificate a CA, by its basicConstraints? `Err` if the extension is malformed.
pub fn is_ca(cert: &Certificate) -> Result<bool, PathError> {
    Ok(basic_constraints(cert)?.is_some_and(|b| b.ca))
}

fn basic_constraints(cert: &Certificate) -> Result<Option<BasicConstraints>, PathError> {
    extension(cert, OID_BASIC_CONSTRAINTS)
        .map(|e| {
            BasicConstraints::from_der(e.extn_value.as_bytes()).map_err(|_| {
                PathError(format!(
                    "{}: malformed basicConstraints extension",
                    describe(cert)
                ))
            })
        })
        .transpose()
}

fn key_usage(cert: &Certificate) -> Result<Option<KeyUsage>, PathError> {
    extension(cert, OID_KEY_USAGE)
        .map(|e| {
            KeyUsage::from_der(e.extn_value.as_bytes())
                .map_err(|_| PathError(format!("{}: malformed keyUsage extension", describe(cert))))
        })
        .transpose()
}

fn extended_key_usage(cert: &Certificate) -> Result<Option<Vec<String>>, PathError> {
    extension(cert, OID_EXTENDED_KEY_USAGE)
        .map(|e| {
            ExtendedKeyUsage::from_der(e.extn_value.as_bytes())
                .map(|eku| eku.0.iter().map(|o| o.to_string()).collect())
                .map_err(|_| {
                    PathError(format!(
                        "{}: malformed extendedKeyUsage extension",
                        describe(cert)
                    ))
                })
        })
        .transpose()
}

/// The certificate's public key.
pub fn public_key(cert: &Certificate) -> Result<VerifyingKey, PathError> {
    let spki = cert
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|_| PathError(format!("{}: malformed public key", describe(cert))))?;
    VerifyingKey::from_spki_der(&spki)
        .map_err(|e| PathError(format!("{}: public key: {e}", describe(cert))))
}

/// Checks `cert` was signed by `issuer`'s key.
pub fn verify_signed_by(cert: &Certificate, issuer: &Certificate) -> Result<(), PathError> {
    let key = public_key(issuer)?;
    let tbs = cert
        .tbs_certificate()
        .to_der()
        .map_err(|_| PathError(format!("{}: cannot re-encode", describe(cert))))?;
    let signature = cert.signature().as_bytes().ok_or_else(|| {
        PathError(format!(
            "{}: malformed signature (unused bits)",
            describe(cert)
        ))
    })?;
    let oid = cert.signature_algorithm().oid.to_string();
    let hash = match oid.as_str() {
        "1.2.840.10045.4.3.2" | "1.2.840.113549.1.1.11" => HashAlg::Sha256,
        "1.2.840.10045.4.3.3" | "1.2.840.113549.1.1.12" => HashAlg::Sha384,
        "1.2.840.10045.4.3.4" | "1.2.840.113549.1.1.13" => HashAlg::Sha512,
        "1.3.101.112" => HashAlg::Sha512,
        other => {
            return fail(format!(
                "{}: unsupported signature algorithm {other}",
                describe(cert)
            ))
        }
    };
    key.verify(hash, &tbs, signature).map_err(|_| {
        PathError(format!(
            "{}: signature by {} does not verify",
            describe(cert),
            describe(issuer)
        ))
    })
}

fn check_common(cert: &Certificate, time: i64) -> Result<(), PathError> {
    let validity = cert.tbs_certificate().validity();
    let (not_before, not_after) = (unix(validity.not_before), unix(validity.not_after));
    if time < not_before || time > not_after {
        return fail(format!(
            "{} was not valid at {} (valid {} to {})",
            describe(cert),
            super::trust::format_rfc3339(time),
            super::trust::format_rfc3339(not_before),
            super::trust::format_rfc3339(not_after)
        ));
    }
    for ext in cert.tbs_certificate().extensions().into_iter().flatten() {
        let oid = ext.extn_id.to_string();
        if ext.critical && !UNDERSTOOD_CRITICAL.contains(&oid.as_str()) {
            return fail(format!(
                "{} has an unknown critical extension {oid}",
                describe(cert)
            ));
        }
    }
    Ok(())
}

/// Validates `leaf` through `chain` (its issuer first, the trust anchor last) at `time`:
/// every validity period contains `time` (ends inclusive), every link is signed by the next
/// certificate, issuers are CAs allowed to sign certificates within their path length, the
/// leaf is not a CA and may sign for `purpose`, and no certificate carries a critical
/// extension this validator does not understand.
pub fn verify_path(
    leaf: &Certificate,
    chain: &[Certificate],
    time: i64,
    purpose: Purpose,
) -> Result<(), PathError> {
    if chain.is_empty() {
        return fail("the trusted chain is empty");
    }
    check_common(leaf, time)?;
    if is_ca(leaf)? {
        return fail(format!(
            "{} is a CA certificate, not a signing certificate",
            describe(leaf)
        ));
    }
    if let Some(usage) = key_usage(leaf)? {
        if !usage.digital_signature() {
            return fail(format!(
                "{} may not make digital signatures (keyUsage)",
                describe(leaf)
            ));
        }
    }
    match extended_key_usage(leaf)? {
        Some(ekus) if ekus.iter().any(|o| o == purpose.oid()) => {}
        _ => {
            return fail(format!(
                "{} is not for {} (extendedKeyUsage)",
                describe(leaf),
                purpose.name()
            ))
        }
    }
    let mut child = leaf;
    for (depth, issuer) in chain.iter().enumerate() {
        check_common(issuer, time)?;
        if child.tbs_certificate().issuer() != issuer.tbs_certificate().subject() {
            return fail(format!(
                "{} was not issued by {} (issuer name differs)",
                describe(child),
                describe(issuer)
            ));
        }
        verify_signed_by(child, issuer)?;
        let Some(constraints) = basic_constraints(issuer)?.filter(|b| b.ca) else {
            return fail(format!(
                "{} is not a CA (basicConstraints)",
                describe(issuer)
            ));
        };
        // CAs between this one and the leaf.
        if let Some(max) = constraints.path_len_constraint {
            if depth > max as usize {
                return fail(format!(
                    "{} allows {max} intermediate CA(s) below it, the chain has {depth}",
                    describe(issuer)
                ));
            }
        }
        if let Some(usage) = key_usage(issuer)? {
            if !usage.key_cert_sign() {
                return fail(format!(
                    "{} may not sign certificates (keyUsage)",
                    describe(issuer)
                ));
            }
        }
        if let Some(ekus) = extended_key_usage(issuer)? {
            if !ekus.iter().any(|o| o == purpose.oid() || o == OID_ANY_EKU) {
                return fail(format!(
                    "{} may not issue {} certificates (extendedKeyUsage)",
                    describe(issuer),
                    purpose.name()
                ));
            }
        }
        child = issuer;
    }
    Ok(())
}

/// Is `cert` a root: a self-issued CA certificate?
pub fn is_root(cert: &Certificate) -> bool {
    cert.tbs_certificate().issuer() == cert.tbs_certificate().subject()
        && is_ca(cert).unwrap_or(false)
}

/// Parses DER, refusing trailing bytes.
pub fn parse_der(der: &[u8]) -> Result<Certificate, PathError> {
    Certificate::from_der(der).map_err(|e| PathError(format!("certificate does not parse: {e}")))
}
