//! Fulcio certificates: the identity they carry, their chain to a trusted CA, and the signed
//! certificate timestamps (SCTs) that prove they were logged.

use super::trust::{CertificateAuthority, LogKey, TrustRoot};
use anyhow::{anyhow, bail, Context, Result};
use der::asn1::{Any, OctetString, Utf8StringRef};
use der::{Decode, Encode, Tag, Tagged};
use p256::pkcs8::DecodePublicKey;
use sha2::{Digest as _, Sha256, Sha384};
use std::collections::BTreeMap;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectAltName};
use x509_cert::ext::Extension;
use x509_cert::Certificate;

const OID_SAN: &str = "2.5.29.17";
const OID_EKU: &str = "2.5.29.37";
const OID_CODE_SIGNING: &str = "1.3.6.1.5.5.7.3.3";
const OID_SCT_LIST: &str = "1.3.6.1.4.1.11129.2.4.2";
const OID_ISSUER_V1: &str = "1.3.6.1.4.1.57264.1.1";
const OID_ISSUER_V2: &str = "1.3.6.1.4.1.57264.1.8";
const OID_ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const OID_ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";

/// GitHub workflow claims Fulcio copies into its certificates (legacy raw-string extensions).
pub const GITHUB_CLAIMS: [(&str, &str); 5] = [
    ("1.3.6.1.4.1.57264.1.2", "workflow trigger"),
    ("1.3.6.1.4.1.57264.1.3", "workflow sha"),
    ("1.3.6.1.4.1.57264.1.4", "workflow name"),
    ("1.3.6.1.4.1.57264.1.5", "workflow repository"),
    ("1.3.6.1.4.1.57264.1.6", "workflow ref"),
];

/// What wharf needs from a signing certificate.
#[derive(Debug, Clone)]
pub struct SigningCert {
    pub cert: Certificate,
    pub der: Vec<u8>,
    pub public_key: p256::PublicKey,
    pub not_before: i64,
    pub not_after: i64,
    /// Subject alternative names: URIs and email addresses.
    pub identities: Vec<String>,
    pub issuer: Option<String>,
    /// Sigstore extension values by OID (GitHub claims among them).
    pub extensions: BTreeMap<String, String>,
    pub code_signing: bool,
}

/// Parses concatenated PEM certificates. Lenient about line length (some CAs do not wrap
/// base64 at 64 columns), strict about everything else.
pub fn parse_pem_chain(pem: &str) -> Result<Vec<Certificate>> {
    use base64::Engine;
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut certs = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find(BEGIN) {
        let after = &rest[start + BEGIN.len()..];
        let end = after
            .find(END)
            .ok_or_else(|| anyhow!("certificate PEM is truncated (no END line)"))?;
        let body: String = after[..end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| anyhow!("certificate PEM is not valid base64"))?;
        certs.push(
            Certificate::from_der(&der).map_err(|e| anyhow!("certificate does not parse: {e}"))?,
        );
        rest = &after[end + END.len()..];
    }
    if certs.is_empty() {
        bail!("no certificate in PEM");
    }
    Ok(certs)
}

fn unix(t: x509_cert::time::Time) -> i64 {
    t.to_unix_duration().as_secs() as i64
}

fn extension<'a>(cert: &'a Certificate, oid: &str) -> Option<&'a Extension> {
    cert.tbs_certificate()
        .extensions()?
        .iter()
        .find(|e| e.extn_id.to_string() == oid)
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
        let spki = tbs.subject_public_key_info().to_der()?;
        let public_key = p256::PublicKey::from_public_key_der(&spki)
            .map_err(|_| anyhow!("the signing certificate's key is not ECDSA P-256"))?;
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
                if oid.starts_with("1.3.6.1.4.1.57264.1.") {
                    extensions.insert(oid, extension_text(e));
                }
            }
        }
        let issuer = extensions
            .get(OID_ISSUER_V2)
            .or_else(|| extensions.get(OID_ISSUER_V1))
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

    pub fn to_pem(&self) -> String {
        pem_rfc7468::encode_string("CERTIFICATE", pem_rfc7468::LineEnding::LF, &self.der)
            .expect("DER encodes as PEM")
    }
}

/// Checks `signed` (DER) was signed by `issuer`'s key with an ECDSA algorithm.
fn verify_issued_by(
    signed_tbs: &[u8],
    algorithm: &str,
    signature: &[u8],
    issuer: &Certificate,
) -> Result<()> {
    let spki = issuer
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()?;
    let prehash: Vec<u8> = match algorithm {
        OID_ECDSA_SHA256 => Sha256::digest(signed_tbs).to_vec(),
        OID_ECDSA_SHA384 => Sha384::digest(signed_tbs).to_vec(),
        other => bail!("unsupported certificate signature algorithm {other}"),
    };
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    if let Ok(key) = p256::ecdsa::VerifyingKey::from_public_key_der(&spki) {
        let sig = p256::ecdsa::Signature::from_der(signature)
            .map_err(|_| anyhow!("malformed certificate signature"))?;
        return key
            .verify_prehash(&prehash, &sig)
            .map_err(|_| anyhow!("certificate signature does not verify"));
    }
    if let Ok(key) = p384::ecdsa::VerifyingKey::from_public_key_der(&spki) {
        let sig = p384::ecdsa::Signature::from_der(signature)
            .map_err(|_| anyhow!("malformed certificate signature"))?;
        return key
            .verify_prehash(&prehash, &sig)
            .map_err(|_| anyhow!("certificate signature does not verify"));
    }
    bail!("unsupported CA key type (ECDSA P-256 and P-384 are supported)")
}

fn verify_cert_signed_by(cert: &Certificate, issuer: &Certificate) -> Result<()> {
    let tbs = cert.tbs_certificate().to_der()?;
    let alg = cert.signature_algorithm().oid.to_string();
    let sig = cert
        .signature()
        .as_bytes()
        .ok_or_else(|| anyhow!("certificate signature has unused bits"))?;
    verify_issued_by(&tbs, &alg, sig, issuer)
}

/// Finds the trusted CA whose chain issued `leaf` and checks every link and validity period
/// at `time`. Returns the CA.
pub fn verify_chain<'a>(
    leaf: &SigningCert,
    trust: &'a TrustRoot,
    time: i64,
) -> Result<&'a CertificateAuthority> {
    if time < leaf.not_before || time > leaf.not_after {
        bail!(
            "the signing certificate was not valid at {} (valid {}..{})",
            time,
            leaf.not_before,
            leaf.not_after
        );
    }
    let mut last_error = None;
    for ca in &trust.authorities {
        if !ca.valid.contains(time) || ca.chain.is_empty() {
            continue;
        }
        let result = (|| -> Result<()> {
            verify_cert_signed_by(&leaf.cert, &ca.chain[0])?;
            for pair in ca.chain.windows(2) {
                verify_cert_signed_by(&pair[0], &pair[1])?;
            }
            let root = ca.chain.last().expect("non-empty");
            verify_cert_signed_by(root, root)?;
            for c in &ca.chain {
                let v = c.tbs_certificate().validity();
                if time < unix(v.not_before) || time > unix(v.not_after) {
                    bail!("a CA certificate was not valid at the signing time");
                }
            }
            Ok(())
        })();
        match result {
            Ok(()) => return Ok(ca),
            Err(e) => last_error = Some(e),
        }
    }
    Err(anyhow!(
        "certificate from an untrusted CA: it does not chain to any certificate authority of the trusted root{}",
        last_error.map(|e| format!(" ({e})")).unwrap_or_default()
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
        let sig = p256::ecdsa::Signature::from_der(sct.signature.signature.as_slice())
            .map_err(|_| anyhow!("malformed SCT signature"))?;
        use p256::ecdsa::signature::Verifier;
        if p256::ecdsa::VerifyingKey::from(&log.key)
            .verify(&signed, &sig)
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

/// Who must have signed, for keyless verification.
#[derive(Debug, Clone, Default)]
pub struct IdentityPolicy {
    pub identity: Option<String>,
    pub identity_regexp: Option<regex::Regex>,
    pub issuer: Option<String>,
    pub issuer_regexp: Option<regex::Regex>,
    /// Required GitHub claims: (extension OID, expected value).
    pub github_claims: Vec<(String, String)>,
}

impl IdentityPolicy {
    pub fn is_set(&self) -> bool {
        (self.identity.is_some() || self.identity_regexp.is_some())
            && (self.issuer.is_some() || self.issuer_regexp.is_some())
    }

    /// Checks the certificate against the policy; the error says which part did not match.
    pub fn check(&self, cert: &SigningCert) -> Result<()> {
        if !cert.code_signing {
            bail!("the certificate is not for code signing (no codeSigning extended key usage)");
        }
        let identity_ok = cert.identities.iter().any(|id| {
            self.identity.as_ref().is_some_and(|want| want == id)
                || self
                    .identity_regexp
                    .as_ref()
                    .is_some_and(|re| full_match(re, id))
        });
        if !identity_ok {
            bail!(
                "wrong identity: the certificate was issued to {:?}, which does not match {}",
                cert.identities,
                self.identity
                    .clone()
                    .or_else(|| self
                        .identity_regexp
                        .as_ref()
                        .map(|r| format!("/{}/", r.as_str())))
                    .unwrap_or_default()
            );
        }
        let issuer = cert.issuer.as_deref().unwrap_or("");
        let issuer_ok = self.issuer.as_deref().is_some_and(|w| w == issuer)
            || self
                .issuer_regexp
                .as_ref()
                .is_some_and(|re| full_match(re, issuer));
        if !issuer_ok {
            bail!("wrong OIDC issuer: the certificate's issuer is {issuer:?}");
        }
        for (oid, want) in &self.github_claims {
            let have = cert.extensions.get(oid).map(String::as_str).unwrap_or("");
            if have != want {
                let name = GITHUB_CLAIMS
                    .iter()
                    .find(|(o, _)| o == oid)
                    .map(|(_, n)| *n)
                    .unwrap_or(oid);
                bail!("wrong {name}: the certificate says {have:?}, expected {want:?}");
            }
        }
        Ok(())
    }
}

/// cosign anchors identity regexps at both ends; so do we.
fn full_match(re: &regex::Regex, s: &str) -> bool {
    re.find(s)
        .is_some_and(|m| m.start() == 0 && m.end() == s.len())
}
