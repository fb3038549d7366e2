//! Public keys as Sigstore meets them (X.509 SubjectPublicKeyInfo DER): ECDSA P-256/P-384/P-521
//! (Fulcio, Rekor v1, CT logs, TSAs, cosign keys), RSA (some private CAs and CT logs) and
//! Ed25519 (Rekor v2 logs). One verifier for all, over a message or a prehashed digest.

use aws_lc_rs::digest;
use aws_lc_rs::signature::{self as alg, UnparsedPublicKey, VerificationAlgorithm};
use der::asn1::ObjectIdentifier;
use der::Decode;
use x509_cert::spki::SubjectPublicKeyInfoRef;

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_P521: &str = "1.3.132.0.35";
const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_ED25519: &str = "1.3.101.112";

/// The hash a signature scheme uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        digest::digest(self.aws(), data).as_ref().to_vec()
    }

    pub fn output_len(self) -> usize {
        self.aws().output_len()
    }

    fn aws(self) -> &'static digest::Algorithm {
        match self {
            HashAlg::Sha256 => &digest::SHA256,
            HashAlg::Sha384 => &digest::SHA384,
            HashAlg::Sha512 => &digest::SHA512,
        }
    }

    /// From an X.509/CMS digest algorithm OID.
    pub fn from_oid(oid: &ObjectIdentifier) -> Option<HashAlg> {
        match oid.to_string().as_str() {
            "2.16.840.1.101.3.4.2.1" => Some(HashAlg::Sha256),
            "2.16.840.1.101.3.4.2.2" => Some(HashAlg::Sha384),
            "2.16.840.1.101.3.4.2.3" => Some(HashAlg::Sha512),
            _ => None,
        }
    }

    /// From a Sigstore `HashAlgorithm` name (`SHA2_256`, ...).
    pub fn from_sigstore_name(name: &str) -> Option<HashAlg> {
        match name {
            "SHA2_256" => Some(HashAlg::Sha256),
            "SHA2_384" => Some(HashAlg::Sha384),
            "SHA2_512" => Some(HashAlg::Sha512),
            _ => None,
        }
    }

    pub fn sigstore_name(self) -> &'static str {
        match self {
            HashAlg::Sha256 => "SHA2_256",
            HashAlg::Sha384 => "SHA2_384",
            HashAlg::Sha512 => "SHA2_512",
        }
    }
}

/// What kind of key a SubjectPublicKeyInfo holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    EcdsaP256,
    EcdsaP384,
    EcdsaP521,
    Rsa,
    Ed25519,
}

impl KeyKind {
    /// The hash this key signs with by default (what Sigstore's `keyDetails` pair with it).
    pub fn default_hash(self) -> HashAlg {
        match self {
            KeyKind::EcdsaP384 => HashAlg::Sha384,
            KeyKind::EcdsaP521 => HashAlg::Sha512,
            _ => HashAlg::Sha256,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            KeyKind::EcdsaP256 => "ECDSA P-256",
            KeyKind::EcdsaP384 => "ECDSA P-384",
            KeyKind::EcdsaP521 => "ECDSA P-521",
            KeyKind::Rsa => "RSA",
            KeyKind::Ed25519 => "Ed25519",
        }
    }
}

/// Why a key could not be used or a signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not a DER SubjectPublicKeyInfo")]
    Malformed,
    #[error("unsupported key type (algorithm {0})")]
    Unsupported(String),
    #[error("{0} cannot verify a signature over a prehashed digest")]
    NoPrehash(&'static str),
    #[error("the signature does not verify")]
    BadSignature,
}

/// A public key that verifies signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    kind: KeyKind,
    spki_der: Vec<u8>,
}

impl VerifyingKey {
    pub fn from_spki_der(der: &[u8]) -> Result<VerifyingKey, KeyError> {
        let spki = SubjectPublicKeyInfoRef::from_der(der).map_err(|_| KeyError::Malformed)?;
        let oid = spki.algorithm.oid.to_string();
        let kind = match oid.as_str() {
            OID_EC_PUBLIC_KEY => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                    .map(|o| o.to_string())
                    .unwrap_or_default();
                match curve.as_str() {
                    OID_P256 => KeyKind::EcdsaP256,
                    OID_P384 => KeyKind::EcdsaP384,
                    OID_P521 => KeyKind::EcdsaP521,
                    other => return Err(KeyError::Unsupported(format!("EC curve {other}"))),
                }
            }
            OID_RSA => KeyKind::Rsa,
            OID_ED25519 => KeyKind::Ed25519,
            other => return Err(KeyError::Unsupported(other.to_string())),
        };
        let key = VerifyingKey {
            kind,
            spki_der: der.to_vec(),
        };
        // Reject keys the backend cannot load now, not at the first signature.
        UnparsedPublicKey::new(key.algorithm(HashAlg::Sha256, false), &key.spki_der)
            .parse()
            .map_err(|_| KeyError::Malformed)?;
        Ok(key)
    }

    pub fn from_p256(key: &p256::PublicKey) -> VerifyingKey {
        use p256::pkcs8::EncodePublicKey;
        let der = key
            .to_public_key_der()
            .expect("a P-256 key encodes as SPKI");
        VerifyingKey {
            kind: KeyKind::EcdsaP256,
            spki_der: der.as_bytes().to_vec(),
        }
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    fn algorithm(&self, hash: HashAlg, fixed: bool) -> &'static dyn VerificationAlgorithm {
        use HashAlg::*;
        match (self.kind, hash, fixed) {
            (KeyKind::EcdsaP256, Sha256, false) => &alg::ECDSA_P256_SHA256_ASN1,
            (KeyKind::EcdsaP256, Sha384, false) => &alg::ECDSA_P256_SHA384_ASN1,
            (KeyKind::EcdsaP256, Sha512, false) => &alg::ECDSA_P256_SHA512_ASN1,
            (KeyKind::EcdsaP384, Sha256, false) => &alg::ECDSA_P384_SHA256_ASN1,
            (KeyKind::EcdsaP384, Sha384, false) => &alg::ECDSA_P384_SHA384_ASN1,
            (KeyKind::EcdsaP384, Sha512, false) => &alg::ECDSA_P384_SHA512_ASN1,
            (KeyKind::EcdsaP521, Sha256, false) => &alg::ECDSA_P521_SHA256_ASN1,
            (KeyKind::EcdsaP521, Sha384, false) => &alg::ECDSA_P521_SHA384_ASN1,
            (KeyKind::EcdsaP521, Sha512, false) => &alg::ECDSA_P521_SHA512_ASN1,
            // Raw r||s signatures, which cosign also accepts.
            (KeyKind::EcdsaP256, _, true) => &alg::ECDSA_P256_SHA256_FIXED,
            (KeyKind::EcdsaP384, _, true) => &alg::ECDSA_P384_SHA384_FIXED,
            (KeyKind::EcdsaP521, _, true) => &alg::ECDSA_P521_SHA512_FIXED,
            (KeyKind::Rsa, Sha256, _) => &alg::RSA_PKCS1_2048_8192_SHA256,
            (KeyKind::Rsa, Sha384, _) => &alg::RSA_PKCS1_2048_8192_SHA384,
            (KeyKind::Rsa, Sha512, _) => &alg::RSA_PKCS1_2048_8192_SHA512,
            (KeyKind::Ed25519, _, _) => &alg::ED25519,
        }
    }

    fn pss(hash: HashAlg) -> &'static dyn VerificationAlgorithm {
        match hash {
            HashAlg::Sha256 => &alg::RSA_PSS_2048_8192_SHA256,
            HashAlg::Sha384 => &alg::RSA_PSS_2048_8192_SHA384,
            HashAlg::Sha512 => &alg::RSA_PSS_2048_8192_SHA512,
        }
    }

    /// Verifies `signature` over `message` hashed with `hash` (ignored for Ed25519). ECDSA
    /// signatures may be ASN.1 DER or raw r||s; RSA signatures PKCS#1 v1.5 or PSS.
    pub fn verify(&self, hash: HashAlg, message: &[u8], signature: &[u8]) -> Result<(), KeyError> {
        let ok = |a: &'static dyn VerificationAlgorithm| {
            UnparsedPublicKey::new(a, &self.spki_der)
                .verify(message, signature)
                .is_ok()
        };
        let verified = match self.kind {
            KeyKind::Rsa => ok(self.algorithm(hash, false)) || ok(Self::pss(hash)),
            KeyKind::Ed25519 => ok(self.algorithm(hash, false)),
            _ => {
                ok(self.algorithm(hash, false))
                    || (hash == self.kind.default_hash() && ok(self.algorithm(hash, true)))
            }
        };
        verified.then_some(()).ok_or(KeyError::BadSignature)
    }

    /// Verifies `signature` over an already computed `digest` (what a Sigstore message
    /// signature over a file is, when only the file's digest is at hand).
    pub fn verify_digest(
        &self,
        hash: HashAlg,
        digest_bytes: &[u8],
        signature: &[u8],
    ) -> Result<(), KeyError> {
        if self.kind == KeyKind::Ed25519 {
            return Err(KeyError::NoPrehash(self.kind.name()));
        }
        let digest = digest::Digest::import_less_safe(digest_bytes, hash.aws())
            .map_err(|_| KeyError::BadSignature)?;
        let ok = |a: &'static dyn VerificationAlgorithm| {
            UnparsedPublicKey::new(a, &self.spki_der)
                .verify_digest(&digest, signature)
                .is_ok()
        };
        let verified = match self.kind {
            KeyKind::Rsa => ok(self.algorithm(hash, false)) || ok(Self::pss(hash)),
            _ => {
                ok(self.algorithm(hash, false))
                    || (hash == self.kind.default_hash() && ok(self.algorithm(hash, true)))
            }
        };
        verified.then_some(()).ok_or(KeyError::BadSignature)
    }

    /// Sigstore's name for the key and its default hash (`keyDetails`).
    pub fn key_details(&self) -> &'static str {
        match self.kind {
            KeyKind::EcdsaP256 => "PKIX_ECDSA_P256_SHA_256",
            KeyKind::EcdsaP384 => "PKIX_ECDSA_P384_SHA_384",
            KeyKind::EcdsaP521 => "PKIX_ECDSA_P521_SHA_512",
            KeyKind::Rsa => "PKIX_RSA_PKCS1V15_2048_SHA256",
            KeyKind::Ed25519 => "PKIX_ED25519",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    use p256::ecdsa::signature::Signer;

    #[test]
    fn p256_message_digest_der_and_fixed() {
        let secret = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
        let signing = p256::ecdsa::SigningKey::from(&secret);
        let key = VerifyingKey::from_p256(&secret.public_key());
        assert_eq!(key.kind(), KeyKind::EcdsaP256);
        let sig: p256::ecdsa::Signature = signing.sign(b"hello");
        key.verify(HashAlg::Sha256, b"hello", sig.to_der().as_bytes())
            .unwrap();
        key.verify(HashAlg::Sha256, b"hello", &sig.to_bytes())
            .unwrap();
        assert_eq!(
            key.verify(HashAlg::Sha256, b"hellO", sig.to_der().as_bytes()),
            Err(KeyError::BadSignature)
        );
        let digest = HashAlg::Sha256.digest(b"hello");
        key.verify_digest(HashAlg::Sha256, &digest, sig.to_der().as_bytes())
            .unwrap();
        let prehashed: p256::ecdsa::Signature = signing.sign_prehash(&digest).unwrap();
        key.verify(HashAlg::Sha256, b"hello", prehashed.to_der().as_bytes())
            .unwrap();
        assert!(key
            .verify_digest(HashAlg::Sha256, &[0u8; 32], sig.to_der().as_bytes())
            .is_err());
    }

    #[test]
    fn ed25519_from_spki() {
        // RFC 8410 section 10.1's example public key.
        let der = hex::decode("302a300506032b657003210019bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1").unwrap();
        let key = VerifyingKey::from_spki_der(&der).unwrap();
        assert_eq!(key.kind(), KeyKind::Ed25519);
        assert!(matches!(
            key.verify_digest(HashAlg::Sha256, &[0; 32], &[0; 64]),
            Err(KeyError::NoPrehash(_))
        ));
        assert_eq!(
            VerifyingKey::from_spki_der(b"junk"),
            Err(KeyError::Malformed)
        );
    }
}
