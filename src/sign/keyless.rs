//! Keyless signing: an ephemeral P-256 key certified by Fulcio for the identity in an OIDC
//! token. One certificate serves a whole run (every manifest of a recursive sign).

use super::{keys, KeySigner, Signer};
use crate::sigstore::cert::{verify_chain, verify_embedded_sct, SigningCert};
use crate::sigstore::oidc::{decode_claims, TokenSource};
use crate::sigstore::pubkey::VerifyingKey;
use crate::sigstore::{fulcio, trust::TrustRoot};
use anyhow::{bail, Context, Result};
use p256::PublicKey;

pub struct KeylessSigner {
    key: KeySigner,
    certificate: SigningCert,
    certificate_pem: String,
    chain_pem: String,
}

impl KeylessSigner {
    /// Gets a token, makes a key, has Fulcio certify it, and checks the certificate chains to
    /// the trusted root with a valid SCT before anything is signed with it.
    ///
    /// A trusted root that lists no CT log leaves the SCT uncheckable: that is refused before
    /// anything is asked of Fulcio, as verification refuses it, unless `ignore_sct`
    /// (`--insecure-ignore-sct`) says the signer knows. `ignore_sct` with CT logs listed
    /// changes nothing: a certificate whose SCT can be checked is.
    pub async fn obtain(
        http: &reqwest::Client,
        fulcio_url: &str,
        tokens: &TokenSource,
        trust: &TrustRoot,
        ignore_sct: bool,
    ) -> Result<KeylessSigner> {
        if trust.ct_keys.is_empty() && !ignore_sct {
            bail!("the trusted root lists no CT log, so the SCT of the certificate from {fulcio_url} cannot be checked; pass --insecure-ignore-sct (release config: [verify] insecure_ignore_sct = true) to sign without that proof");
        }
        let token = tokens.fetch(http).await?;
        let claims = decode_claims(&token)?;
        let key = KeySigner::new(keys::generate());
        let proof = key.sign(claims.proof_subject().as_bytes())?;
        let public_pem = keys::public_key_pem(&key.public_key());
        let issued =
            fulcio::request_certificate(http, fulcio_url, &token, &public_pem, &proof).await?;
        let certificate = SigningCert::from_pem(&issued.certificates[0])
            .context("the certificate Fulcio issued")?;
        if certificate.public_key != VerifyingKey::from_p256(&key.public_key()) {
            bail!("Fulcio at {fulcio_url} certified a different key than the one sent");
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs() as i64;
        let ca = verify_chain(&certificate, trust, now).with_context(|| {
            format!("the certificate from {fulcio_url} is not trusted (for a private Sigstore, pass --trusted-root)")
        })?;
        if !trust.ct_keys.is_empty() {
            verify_embedded_sct(&certificate, &ca.chain[0], &trust.ct_keys)
                .with_context(|| format!("the certificate from {fulcio_url}"))?;
        }
        let with_newline = |pem: &String| {
            if pem.ends_with('\n') {
                pem.clone()
            } else {
                format!("{pem}\n")
            }
        };
        Ok(KeylessSigner {
            key,
            certificate_pem: with_newline(&issued.certificates[0]),
            chain_pem: issued.certificates[1..].iter().map(with_newline).collect(),
            certificate,
        })
    }

    pub fn identity(&self) -> String {
        self.certificate.identities.join(", ")
    }
}

impl Signer for KeylessSigner {
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>> {
        self.key.sign(payload)
    }
    fn sign_digest(&self, sha256: &[u8; 32]) -> Result<Vec<u8>> {
        self.key.sign_digest(sha256)
    }
    fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }
    fn certificate_pem(&self) -> Option<&str> {
        Some(&self.certificate_pem)
    }
    fn chain_pem(&self) -> Option<&str> {
        (!self.chain_pem.is_empty()).then_some(self.chain_pem.as_str())
    }
}
