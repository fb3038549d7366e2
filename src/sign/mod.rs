//! Signing: one [`Signer`] trait over a static key ([`KeySigner`]) and keyless certificates
//! ([`keyless::KeylessSigner`]); the transparency log signatures are written to ([`Tlog`]);
//! and who signs as one value ([`spec::SignerSpec`]), from flags or a release config, with the
//! key references and passwords it resolves ([`keyref`]).

pub mod keyless;
pub mod keyref;
pub mod keys;
pub mod spec;

use anyhow::{anyhow, Result};
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{DerSignature, Signature, SigningKey, VerifyingKey};
use p256::PublicKey;

/// What signs wharf's payloads: ECDSA P-256 over SHA-256 of the payload bytes.
pub trait Signer: Send + Sync {
    /// An ASN.1 DER signature over `payload`.
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>>;
    /// The same signature, given only the payload's SHA-256 (a file too large to hold).
    fn sign_digest(&self, sha256: &[u8; 32]) -> Result<Vec<u8>>;
    /// The public key matching the signatures.
    fn public_key(&self) -> PublicKey;
    /// The signing certificate (PEM) for keyless signers; `None` for a static key.
    fn certificate_pem(&self) -> Option<&str> {
        None
    }
    /// The certificate chain (PEM, leaf excluded) for keyless signers.
    fn chain_pem(&self) -> Option<&str> {
        None
    }
    /// What a transparency log entry names as the verifier: the certificate (keyless) or the
    /// public key, PEM.
    fn verifier_pem(&self) -> String {
        match self.certificate_pem() {
            Some(cert) => cert.to_string(),
            None => keys::public_key_pem(&self.public_key()),
        }
    }
}

/// Where signatures are logged (Rekor), when they are.
pub struct Tlog {
    pub http: reqwest::Client,
    pub rekor_url: String,
}

impl Tlog {
    pub async fn log(&self, entry: &serde_json::Value) -> Result<crate::sigstore::rekor::LogEntry> {
        crate::sigstore::rekor::upload(&self.http, &self.rekor_url, entry).await
    }
}

/// A static ECDSA P-256 key.
pub struct KeySigner {
    key: SigningKey,
}

impl KeySigner {
    pub fn new(secret: p256::SecretKey) -> KeySigner {
        KeySigner {
            key: SigningKey::from(secret),
        }
    }
}

impl Signer for KeySigner {
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>> {
        let signature: Signature = self.key.sign(payload);
        let der: DerSignature = signature.to_der();
        Ok(der.as_bytes().to_vec())
    }

    fn sign_digest(&self, sha256: &[u8; 32]) -> Result<Vec<u8>> {
        use p256::ecdsa::signature::hazmat::PrehashSigner;
        let signature: Signature = self
            .key
            .sign_prehash(sha256)
            .map_err(|e| anyhow!("cannot sign: {e}"))?;
        Ok(signature.to_der().as_bytes().to_vec())
    }

    fn public_key(&self) -> PublicKey {
        PublicKey::from(self.key.verifying_key())
    }
}

/// Checks an ECDSA P-256/SHA-256 signature (ASN.1 DER, or raw r||s) over `payload`.
pub fn verify_signature(key: &PublicKey, payload: &[u8], signature: &[u8]) -> Result<()> {
    let sig = Signature::from_der(signature)
        .or_else(|_| Signature::from_slice(signature))
        .map_err(|_| anyhow!("the signature is not an ECDSA signature (malformed encoding)"))?;
    // Go's crypto/ecdsa may produce high-S signatures; they are valid ECDSA.
    let sig = sig.normalize_s();
    VerifyingKey::from(key)
        .verify(payload, &sig)
        .map_err(|_| anyhow!("the signature does not verify"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    #[test]
    fn sign_then_verify() {
        let signer = KeySigner::new(keys::generate());
        let sig = signer.sign(b"payload").unwrap();
        verify_signature(&signer.public_key(), b"payload", &sig).unwrap();
        assert!(verify_signature(&signer.public_key(), b"other", &sig).is_err());
        let digest: [u8; 32] = sha2::Sha256::digest(b"payload").into();
        let prehashed = signer.sign_digest(&digest).unwrap();
        verify_signature(&signer.public_key(), b"payload", &prehashed).unwrap();
        let other = keys::generate().public_key();
        assert!(verify_signature(&other, b"payload", &sig).is_err());
        assert!(verify_signature(&other, b"payload", b"junk").is_err());
    }
}
