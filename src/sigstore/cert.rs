//! Fulcio certificates: the identity they carry, their chain to a trusted CA, and the signed
//! certificate timestamps (SCTs) that prove they were logged.

use super::claims;
use super::pem;
use super::pubkey::{HashAlg, VerifyingKey};
use super::trust::{CertificateAuthority, LogKey, TrustRoot};
use super::x509::{self, extension, unix, Purpose};
use anyhow::{anyhow, bail, Context, Result};
use der::asn1::{Any, OctetString, Utf8StringRef};
use der::{Decode, Encode, Tag, Tagged};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectAltName};
use x509_cert::ext::Extension;
use x509_cert::Certificate;

const OID_SAN: &str = "2.5.29.17";
const OID_EKU: &str = "2.5.29.37";
const OID_CODE_SIGNING: &str = "1.3.6.1.5.5.7.3.3";
const OID_SCT_LIST: &str = "1.3.6.1.4.1.11129.2.4.2";

/// What wharf needs from a signing certificate.
#[derive(Debug, Clone)]
pub struct SigningCert {
    pub cert: Certificate,
    pub der: Vec<u8>,
    pub public_key: VerifyingKey,
    pub not_before: i64,
    pub not_after: i64,
    /// Subject alternative names: URIs and email addresses.
    pub identities: Vec<String>,
    pub issuer: Option<String>,
    /// Sigstore extension values by OID (GitHub claims among them).
    pub extensions: BTreeMap<String, String>,
    pub code_signing: bool,
}

/// Parses concatenated PEM certificates, as leniently as Go's `encoding/pem` (any line
/// length, CRLF, text between blocks); blocks that are not certificates are skipped.
pub fn parse_pem_chain(text: &str) -> Result<Vec<Certificate>> {
    let certs = pem::decode_all(text)
        .map_err(|e| anyhow!("certificate PEM: {e}"))?
        .into_iter()
        .filter(|b| b.label == "CERTIFICATE")
        .map(|b| {
            Certificate::from_der(&b.der).map_err(|e| anyhow!("certificate does not parse: {e}"))
        })
        .collect::<Result<Vec<_>>>()?;
    if certs.is_empty() {
        bail!("no certificate in PEM");
    }
    Ok(certs)
}

/// A Sigstore extension value: DER UTF8String (newer OIDs) or raw bytes (legacy OIDs).
fn extension_text(ext: &Extension) -> String {
    let raw = ext.extn_value.as_bytes();
    if let Ok(s) = Utf8StringRef::from_der(raw) {
        return s.as_str().to_string();
    }
    String::from_utf8_lossy(raw).into_owned()
}

impl SigningCert {
    pub fn parse(cert: Certificate) -> Result<SigningCert> {
        let der = cert.to_der()?;
        let tbs = cert.tbs_certificate();
        let public_key =
            x509::public_key(&cert).map_err(|e| anyhow!("the signing certificate's key: {e}"))?;
        let mut identities = Vec::new();
        if let Some(san) = extension(&cert, OID_SAN) {
            let san = SubjectAltName::from_der(san.extn_value.as_bytes())
                .context("malformed SAN extension")?;
            for name in san.0 {
                match name {
                    GeneralName::UniformResourceIdentifier(u) => identities.push(u.to_string()),
                    GeneralName::Rfc822Name(e) => identities.push(e.to_string()),
                    _ => {}
                }
            }
        }
        let code_signing = match extension(&cert, OID_EKU) {
            Some(eku) => ExtendedKeyUsage::from_der(eku.extn_value.as_bytes())
                .context("malformed extended key usage")?
                .0
                .iter()
                .any(|o| o.to_string() == OID_CODE_SIGNING),
            None => false,
        };
        let mut extensions = BTreeMap::new();
        if let Some(exts) = tbs.extensions() {
            for e in exts {
                let oid = e.extn_id.to_string();
                if oid.starts_with(claims::ARC) {
                    extensions.insert(oid, extension_text(e));
                }
            }
        }
        let issuer = extensions
            .get(claims::ISSUER_V2)
            .or_else(|| extensions.get(claims::ISSUER_V1))
            .cloned();
        Ok(SigningCert {
            not_before: unix(tbs.validity().not_before),
            not_after: unix(tbs.validity().not_after),
            cert,
            der,
            public_key,
            identities,
            issuer,
            extensions,
            code_signing,
        })
    }

    pub fn from_pem(pem: &str) -> Result<SigningCert> {
        let mut certs = parse_pem_chain(pem)?;
        SigningCert::parse(certs.remove(0))
    }

    pub fn from_der(der: &[u8]) -> Result<SigningCert> {
        SigningCert::parse(Certificate::from_der(der).context("certificate does not parse")?)
    }

    pub fn to_pem(&self) -> String {
        pem::encode("CERTIFICATE", &self.der)
    }

    /// The identity cosign names as the certificate's subject: the first subject alternative
    /// name in Go's order (DNS names, emails, IP addresses, URIs, then Fulcio's username
    /// otherName), whatever their order in the certificate; empty when there is none.
    pub fn cosign_subject(&self) -> String {
        let Some(san) = extension(&self.cert, OID_SAN)
            .and_then(|e| SubjectAltName::from_der(e.extn_value.as_bytes()).ok())
        else {
            return String::new();
        };
        cosign_first_name(&san.0)
    }

    /// A legacy Sigstore extension as cosign reads it: the raw value bytes as text (not DER),
    /// each byte that is not UTF-8 shown as U+FFFD, as Go's JSON encoder does.
    pub fn raw_extension_text(&self, oid: &str) -> Option<String> {
        let raw = extension(&self.cert, oid)?.extn_value.as_bytes();
        let mut text = String::with_capacity(raw.len());
        for chunk in raw.utf8_chunks() {
            text.push_str(chunk.valid());
            text.extend(std::iter::repeat_n('\u{FFFD}', chunk.invalid().len()));
        }
        Some(text)
    }
}

/// The first name in Go's order of subject alternative name kinds.
fn cosign_first_name(names: &[GeneralName]) -> String {
    let ranked = |name: &GeneralName| -> Option<(u8, String)> {
        Some(match name {
            GeneralName::DnsName(d) => (0, d.to_string()),
            GeneralName::Rfc822Name(e) => (1, e.to_string()),
            GeneralName::IpAddress(ip) => (2, ip_text(ip.as_bytes())?),
            GeneralName::UniformResourceIdentifier(u) => (3, u.to_string()),
            GeneralName::OtherName(o) if o.type_id.to_string() == claims::USERNAME_SAN => {
                (4, Utf8StringRef::try_from(&o.value).ok()?.to_string())
            }
            _ => return None,
        })
    };
    // The first of the lowest rank: the order within a kind is the certificate's.
    names
        .iter()
        .filter_map(ranked)
        .min_by_key(|(rank, _)| *rank)
        .map(|(_, name)| name)
        .unwrap_or_default()
}

/// An IP address SAN as Go prints it (an IPv4-mapped IPv6 address in dotted form).
fn ip_text(bytes: &[u8]) -> Option<String> {
    use std::net::{Ipv4Addr, Ipv6Addr};
    Some(match bytes.len() {
        4 => Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?).to_string(),
        16 => {
            let v6 = Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?);
            match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => v6.to_string(),
            }
        }
        _ => return None,
    })
}

/// Finds the trusted CA whose chain issued `leaf`, valid at `time` by the trusted root's window
/// (inclusive) and by X.509 path rules (see [`x509::verify_path`]), and returns it.
pub fn verify_chain<'a>(
    leaf: &SigningCert,
    trust: &'a TrustRoot,
    time: i64,
) -> Result<&'a CertificateAuthority> {
    let validity = || {
        format!(
            "valid {} to {}",
            super::trust::format_rfc3339(leaf.not_before),
            super::trust::format_rfc3339(leaf.not_after)
        )
    };
    if time < leaf.not_before || time > leaf.not_after {
        bail!(
            "the signing certificate was not valid at {} ({})",
            super::trust::format_rfc3339(time),
            validity()
        );
    }
    let mut last_error = None;
    let mut outside_window = 0;
    for ca in &trust.authorities {
        if ca.chain.is_empty() {
            continue;
        }
        if !ca.valid.contains(time) {
            outside_window += 1;
            continue;
        }
        match x509::verify_path(&leaf.cert, &ca.chain, time, Purpose::CodeSigning) {
            Ok(()) => return Ok(ca),
            Err(e) => last_error = Some(e),
        }
    }
    let why = match (last_error, outside_window) {
        (Some(e), _) => format!(" ({e})"),
        (None, n) if n > 0 => format!(
            " (no certificate authority of the trusted root was valid at {})",
            super::trust::format_rfc3339(time)
        ),
        _ => String::new(),
    };
    Err(anyhow!(
        "certificate from an untrusted CA: it does not chain to any certificate authority of the trusted root{why}"
    ))
}

/// Verifies the certificate's embedded SCTs: at least one must be signed by a CT log of the
/// trusted root over the precertificate (the certificate minus its SCT list).
pub fn verify_embedded_sct(
    leaf: &SigningCert,
    issuer: &Certificate,
    ct_keys: &[LogKey],
) -> Result<()> {
    use tls_codec::{DeserializeBytes, Serialize as _};
    let Some(ext) = extension(&leaf.cert, OID_SCT_LIST) else {
        bail!("the signing certificate has no signed certificate timestamp (SCT)");
    };
    let list_bytes =
        OctetString::from_der(ext.extn_value.as_bytes()).context("malformed SCT list")?;
    let (list, _) = tls_codec::TlsByteVecU16::tls_deserialize_bytes(list_bytes.as_bytes())
        .map_err(|e| anyhow!("malformed SCT list: {e}"))?;
    let precert_tbs = precertificate_tbs(&leaf.cert)?;
    let issuer_spki = issuer
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()?;
    let issuer_key_hash: [u8; 32] = Sha256::digest(&issuer_spki).into();
    let mut rest = list.as_slice();
    let mut seen = 0;
    while !rest.is_empty() {
        let (entry, remaining) = tls_codec::TlsByteVecU16::tls_deserialize_bytes(rest)
            .map_err(|e| anyhow!("malformed SCT list: {e}"))?;
        rest = remaining;
        seen += 1;
        let (sct, _) =
            x509_cert::ext::pkix::sct::SignedCertificateTimestamp::tls_deserialize_bytes(
                entry.as_slice(),
            )
            .map_err(|e| anyhow!("malformed SCT: {e}"))?;
        let Some(log) = ct_keys.iter().find(|k| k.id == sct.log_id.key_id) else {
            continue;
        };
        // RFC 6962 §3.2: the digitally-signed struct for a precertificate entry.
        let mut signed = vec![0u8, 0u8];
        signed.extend_from_slice(&sct.timestamp.to_be_bytes());
        signed.extend_from_slice(&1u16.to_be_bytes());
        signed.extend_from_slice(&issuer_key_hash);
        let len = precert_tbs.len();
        signed.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8]);
        signed.extend_from_slice(&precert_tbs);
        let ext_bytes = sct
            .extensions
            .tls_serialize_detached()
            .map_err(|e| anyhow!("SCT: {e}"))?;
        signed.extend_from_slice(&ext_bytes);
        use x509_cert::ext::pkix::sct::HashAlgorithm;
        let hash = match sct.signature.algorithm.hash {
            HashAlgorithm::Sha256 => HashAlg::Sha256,
            HashAlgorithm::Sha384 => HashAlg::Sha384,
            HashAlgorithm::Sha512 => HashAlg::Sha512,
            other => bail!("the certificate's SCT uses an unsupported hash {other:?}"),
        };
        let when = (sct.timestamp / 1000) as i64;
        if !log.valid.contains(when) {
            bail!(
                "the certificate's SCT was issued at {} by a CT log whose key was not valid then",
                super::trust::format_rfc3339(when)
            );
        }
        if log
            .key
            .verify(hash, &signed, sct.signature.signature.as_slice())
            .is_ok()
        {
            return Ok(());
        }
        bail!("the certificate's SCT from a trusted CT log does not verify");
    }
    bail!("none of the certificate's {seen} SCT(s) comes from a CT log of the trusted root")
}

/// The TBS certificate with the SCT list extension removed, re-encoded: what the CT log signed.
fn precertificate_tbs(cert: &Certificate) -> Result<Vec<u8>> {
    let tbs = cert.tbs_certificate().to_der()?;
    let fields: Vec<Any> = Vec::<Any>::from_der(&tbs).context("TBS certificate")?;
    let mut out = Vec::with_capacity(fields.len());
    for field in fields {
        if field.tag()
            == (Tag::ContextSpecific {
                constructed: true,
                number: der::TagNumber(3),
            })
        {
            let exts: Vec<Extension> = Vec::<Extension>::from_der(field.value())?;
            let kept: Vec<Extension> = exts
                .into_iter()
                .filter(|e| e.extn_id.to_string() != OID_SCT_LIST)
                .collect();
            out.push(Any::new(field.tag(), kept.to_der()?)?);
        } else {
            out.push(field);
        }
    }
    Ok(out.to_der()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::asn1::Ia5String;

    fn ia5(s: &str) -> Ia5String {
        Ia5String::new(s).unwrap()
    }

    #[test]
    fn cosign_subject_takes_gos_order_of_name_kinds() {
        let uri = GeneralName::UniformResourceIdentifier(ia5("https://github.com/o/r"));
        let email = GeneralName::Rfc822Name(ia5("dev@example.com"));
        let mapped =
            OctetString::new([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1]).unwrap();
        let ip = GeneralName::IpAddress(mapped);
        assert_eq!(
            cosign_first_name(&[uri.clone(), email.clone()]),
            "dev@example.com"
        );
        assert_eq!(cosign_first_name(&[uri.clone(), ip]), "10.0.0.1");
        assert_eq!(cosign_first_name(&[uri]), "https://github.com/o/r");
        assert_eq!(cosign_first_name(&[]), "");
    }
}
