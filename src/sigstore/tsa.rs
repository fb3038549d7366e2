//! RFC 3161 signed timestamps, as Sigstore bundles carry them (a DER `TimeStampResp`, or a
//! bare `TimeStampToken`): CMS SignedData over a `TSTInfo` whose message imprint is the hash of
//! a signature. A timestamp counts only when a timestamp authority of the trusted root signed
//! it, its chain is valid at the time it states, and that time lies in the authority's window.

use super::pubkey::HashAlg;
use super::trust::{format_rfc3339, TimestampAuthority};
use super::x509::{self, Purpose};
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier};
use der::asn1::{Any, ObjectIdentifier, OctetString};
use der::{Decode, Encode, Sequence, Tag, Tagged};
use x509_cert::ext::pkix::SubjectKeyIdentifier;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;

const OID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
const OID_TST_INFO: &str = "1.2.840.113549.1.9.16.1.4";
const OID_CONTENT_TYPE: &str = "1.2.840.113549.1.9.3";
const OID_MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
const OID_SUBJECT_KEY_IDENTIFIER: &str = "2.5.29.14";

/// A timestamp that verified: when, and by whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedTimestamp {
    /// `genTime`, Unix seconds (fractions dropped).
    pub time: i64,
    pub authority: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("malformed RFC 3161 timestamp: {0}")]
    Malformed(String),
    #[error("the timestamp is over other data, not this signature")]
    WrongImprint,
    #[error("the trusted root lists no timestamp authority")]
    NoAuthorities,
    #[error("the timestamp was signed by a timestamp authority the trusted root does not list")]
    Untrusted,
    #[error("the timestamp ({time}) lies outside the validity window the trusted root gives timestamp authority {authority}")]
    OutsideWindow { time: String, authority: String },
    #[error(
        "the timestamp authority's certificate chain is not valid at the timestamp's time: {0}"
    )]
    Chain(String),
    #[error("the timestamp's signature does not verify")]
    BadSignature,
}

fn malformed<T>(why: impl Into<String>) -> Result<T, TimestampError> {
    Err(TimestampError::Malformed(why.into()))
}

#[derive(Sequence)]
struct MessageImprint {
    hash_algorithm: AlgorithmIdentifierOwned,
    hashed_message: OctetString,
}

/// The parts of a TSTInfo verification uses.
struct TstInfo {
    imprint: MessageImprint,
    gen_time: i64,
}

/// `YYYYMMDDHHMMSS[.f*]Z` into Unix seconds.
fn parse_generalized_time(text: &str) -> Option<i64> {
    let text = text.strip_suffix('Z')?;
    let (main, fraction) = text.split_once('.').unwrap_or((text, "0"));
    if main.len() != 14 || !main.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| main[r].parse::<i64>().ok();
    let rfc3339 = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        n(0..4)?,
        n(4..6)?,
        n(6..8)?,
        n(8..10)?,
        n(10..12)?,
        n(12..14)?
    );
    super::trust::parse_rfc3339(&rfc3339).ok()
}

fn parse_tst_info(der: &[u8]) -> Result<TstInfo, TimestampError> {
    let fields: Vec<Any> = Vec::<Any>::from_der(der)
        .map_err(|e| TimestampError::Malformed(format!("TSTInfo: {e}")))?;
    if fields.len() < 5 {
        return malformed("TSTInfo has too few fields");
    }
    let imprint: MessageImprint = fields[2]
        .decode_as()
        .map_err(|e| TimestampError::Malformed(format!("messageImprint: {e}")))?;
    if fields[4].tag() != Tag::GeneralizedTime {
        return malformed("TSTInfo genTime is not a GeneralizedTime");
    }
    let text = std::str::from_utf8(fields[4].value())
        .ok()
        .ok_or_else(|| TimestampError::Malformed("genTime is not text".into()))?;
    let gen_time = parse_generalized_time(text)
        .ok_or_else(|| TimestampError::Malformed(format!("genTime {text:?}")))?;
    Ok(TstInfo { imprint, gen_time })
}

/// The `TimeStampToken` (a CMS ContentInfo) from a `TimeStampResp` or the token itself.
fn token(bytes: &[u8]) -> Result<ContentInfo, TimestampError> {
    if let Ok(info) = ContentInfo::from_der(bytes) {
        return Ok(info);
    }
    let fields: Vec<Any> = Vec::<Any>::from_der(bytes)
        .map_err(|e| TimestampError::Malformed(format!("not a TimeStampResp: {e}")))?;
    let [status, token] = fields.as_slice() else {
        return malformed("a TimeStampResp without a token");
    };
    let status: Vec<Any> = status
        .decode_as()
        .map_err(|e| TimestampError::Malformed(format!("PKIStatusInfo: {e}")))?;
    let granted = status
        .first()
        .and_then(|s| s.decode_as::<u8>().ok())
        .is_some_and(|s| s <= 1);
    if !granted {
        return malformed("the timestamp authority did not grant the request");
    }
    token
        .decode_as()
        .map_err(|e| TimestampError::Malformed(format!("TimeStampToken: {e}")))
}

fn hash_of(alg: &AlgorithmIdentifierOwned) -> Result<HashAlg, TimestampError> {
    HashAlg::from_oid(&alg.oid)
        .ok_or_else(|| TimestampError::Malformed(format!("unsupported hash algorithm {}", alg.oid)))
}

/// The hash a CMS signature algorithm implies (`ecdsa-with-SHA384`...), or the digest
/// algorithm's for bare key algorithms (`rsaEncryption`, `id-ecPublicKey`).
fn signature_hash(
    signature_alg: &ObjectIdentifier,
    digest: HashAlg,
) -> Result<HashAlg, TimestampError> {
    Ok(match signature_alg.to_string().as_str() {
        "1.2.840.10045.4.3.2" | "1.2.840.113549.1.1.11" => HashAlg::Sha256,
        "1.2.840.10045.4.3.3" | "1.2.840.113549.1.1.12" => HashAlg::Sha384,
        "1.2.840.10045.4.3.4" | "1.2.840.113549.1.1.13" => HashAlg::Sha512,
        "1.2.840.113549.1.1.1" | "1.2.840.10045.2.1" => digest,
        other => return malformed(format!("unsupported signature algorithm {other}")),
    })
}

fn identifies(sid: &SignerIdentifier, cert: &Certificate) -> bool {
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(isn) => {
            &isn.issuer == cert.tbs_certificate().issuer()
                && &isn.serial_number == cert.tbs_certificate().serial_number()
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => {
            x509::extension(cert, OID_SUBJECT_KEY_IDENTIFIER)
                .and_then(|e| SubjectKeyIdentifier::from_der(e.extn_value.as_bytes()).ok())
                .is_some_and(|own| &own == ski)
        }
    }
}

fn attribute<'a>(
    attrs: &'a x509_cert::attr::Attributes,
    oid: &str,
) -> Result<&'a Any, TimestampError> {
    let found: Vec<_> = attrs.iter().filter(|a| a.oid.to_string() == oid).collect();
    match found.as_slice() {
        [one] if one.values.len() == 1 => Ok(one.values.iter().next().expect("one value")),
        _ => malformed(format!("signed attribute {oid} missing or repeated")),
    }
}

/// Verifies `timestamp` (DER) is a trusted authority's timestamp over `signature` (the bytes
/// whose hash the imprint must be) and returns its time.
pub fn verify(
    timestamp: &[u8],
    signature: &[u8],
    authorities: &[TimestampAuthority],
) -> Result<VerifiedTimestamp, TimestampError> {
    let info = token(timestamp)?;
    if info.content_type.to_string() != OID_SIGNED_DATA {
        return malformed("the token is not CMS SignedData");
    }
    let signed_data: SignedData = info
        .content
        .decode_as()
        .map_err(|e| TimestampError::Malformed(format!("SignedData: {e}")))?;
    let encap = &signed_data.encap_content_info;
    if encap.econtent_type.to_string() != OID_TST_INFO {
        return malformed("the signed content is not a TSTInfo");
    }
    let tst_der = encap
        .econtent
        .as_ref()
        .ok_or_else(|| TimestampError::Malformed("no TSTInfo".into()))?;
    let tst_der: OctetString = tst_der
        .decode_as()
        .map_err(|e| TimestampError::Malformed(format!("TSTInfo wrapper: {e}")))?;
    let tst = parse_tst_info(tst_der.as_bytes())?;
    let imprint_hash = hash_of(&tst.imprint.hash_algorithm)?;
    if imprint_hash.digest(signature) != tst.imprint.hashed_message.as_bytes() {
        return Err(TimestampError::WrongImprint);
    }
    let signer = match signed_data.signer_infos.0.as_slice() {
        [one] => one,
        _ => return malformed("the token must have exactly one signer"),
    };
    let digest_alg = hash_of(&signer.digest_alg)?;
    let attrs = signer
        .signed_attrs
        .as_ref()
        .ok_or_else(|| TimestampError::Malformed("no signed attributes".into()))?;
    let content_type: ObjectIdentifier = attribute(attrs, OID_CONTENT_TYPE)?
        .decode_as()
        .map_err(|e| TimestampError::Malformed(format!("content-type attribute: {e}")))?;
    if content_type.to_string() != OID_TST_INFO {
        return malformed("the content-type attribute is not TSTInfo");
    }
    let message_digest: OctetString = attribute(attrs, OID_MESSAGE_DIGEST)?
        .decode_as()
        .map_err(|e| TimestampError::Malformed(format!("message-digest attribute: {e}")))?;
    if digest_alg.digest(tst_der.as_bytes()) != message_digest.as_bytes() {
        return Err(TimestampError::BadSignature);
    }
    let signed_attrs = attrs
        .to_der()
        .map_err(|e| TimestampError::Malformed(format!("signed attributes: {e}")))?;
    let hash = signature_hash(&signer.signature_algorithm.oid, digest_alg)?;

    if authorities.is_empty() {
        return Err(TimestampError::NoAuthorities);
    }
    // Certificates embedded in the token are never trusted: the signer must be the signing
    // certificate of an authority the trusted root lists.
    let mut last_error = TimestampError::Untrusted;
    for authority in authorities {
        let Some(leaf) = authority.chain.first() else {
            continue;
        };
        if !identifies(&signer.sid, leaf) {
            continue;
        }
        let Ok(key) = x509::public_key(leaf) else {
            continue;
        };
        if key
            .verify(hash, &signed_attrs, signer.signature.as_bytes())
            .is_err()
        {
            last_error = TimestampError::BadSignature;
            continue;
        }
        if !authority.valid.contains(tst.gen_time) {
            last_error = TimestampError::OutsideWindow {
                time: format_rfc3339(tst.gen_time),
                authority: authority.uri.clone(),
            };
            continue;
        }
        // A one-certificate chain has no issuer to check the signing certificate against.
        if let Err(e) = x509::verify_path(
            leaf,
            &authority.chain[1..],
            tst.gen_time,
            Purpose::TimeStamping,
        ) {
            last_error = TimestampError::Chain(e.0);
            continue;
        }
        return Ok(VerifiedTimestamp {
            time: tst.gen_time,
            authority: authority.uri.clone(),
        });
    }
    Err(last_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generalized_time() {
        assert_eq!(parse_generalized_time("19700101000000Z"), Some(0));
        assert_eq!(
            parse_generalized_time("20250612120220.123Z"),
            super::super::trust::parse_rfc3339("2025-06-12T12:02:20Z").ok()
        );
        assert_eq!(parse_generalized_time("20250612120220"), None);
        assert_eq!(parse_generalized_time("20250612120220.Z"), None);
    }

    #[test]
    fn garbage_is_malformed() {
        assert!(matches!(
            verify(b"junk", b"sig", &[]),
            Err(TimestampError::Malformed(_))
        ));
    }
}
