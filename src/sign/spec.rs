//! Who signs and where the signatures are logged, as one value built from command-line flags
//! (`--key`, `--identity-token`, `--tlog-upload`, ...) or from a release config's `[signing]`,
//! and the signer it makes.

use super::keyless::KeylessSigner;
use super::keyref::{KeyRef, PasswordSource};
use super::{KeySigner, Signer, Tlog};
use crate::sigstore::oidc::TokenSource;
use crate::sigstore::trust::TrustRoot;
use crate::sigstore::trust_source::TrustSource;
use anyhow::{bail, Result};

/// Who signs.
#[derive(Debug, Clone)]
pub enum SignerKind {
    /// A static key, with where its password comes from if it is encrypted.
    Key {
        key: KeyRef,
        password: PasswordSource,
    },
    /// An ephemeral key certified by Fulcio for the identity in an OIDC token.
    Keyless {
        /// The token, or a file holding it; else GitHub Actions' own.
        identity_token: Option<String>,
        fulcio_url: String,
        /// Sign even when the trusted root lists no CT log to check the certificate's SCT
        /// against (`--insecure-ignore-sct`).
        ignore_sct: bool,
    },
}

/// Who signs, and where the signatures are logged.
#[derive(Debug, Clone)]
pub struct SignerSpec {
    pub kind: SignerKind,
    /// Rekor, where each signature is logged; `None`: not logged (key signing only).
    pub rekor_url: Option<String>,
}

/// A signer made from a [`SignerSpec`], ready to sign.
pub struct Signing {
    pub signer: Box<dyn Signer>,
    pub tlog: Option<Tlog>,
    /// The certificate's identity, when keyless.
    pub identity: Option<String>,
}

impl SignerSpec {
    /// Whether making the signer needs the Sigstore trust root (a keyless certificate is
    /// checked against it before anything is signed with it).
    pub fn needs_trust_root(&self) -> bool {
        matches!(self.kind, SignerKind::Keyless { .. })
    }

    /// The signer, with the trust root loaded from `trust` only if it needs one.
    pub async fn build(&self, trust: &TrustSource) -> Result<Signing> {
        let root = match self.needs_trust_root() {
            true => Some(trust.load().await?),
            false => None,
        };
        self.build_with(root.as_ref()).await
    }

    /// The signer, given the trust root (which a keyless signer needs).
    pub async fn build_with(&self, trust: Option<&TrustRoot>) -> Result<Signing> {
        let http = match (&self.kind, &self.rekor_url) {
            (SignerKind::Key { .. }, None) => None,
            // The HTTP client (root certificates to load) only when Fulcio or Rekor is used.
            _ => Some(crate::sigstore::http_client()?),
        };
        let (signer, identity): (Box<dyn Signer>, _) = match &self.kind {
            SignerKind::Key { key, password } => {
                // Decrypting a key is deliberately slow (scrypt): off the async threads, so
                // the caller can read the registry meanwhile.
                let (key, password) = (key.clone(), password.clone());
                let secret =
                    tokio::task::spawn_blocking(move || key.load_private(&password)).await??;
                (Box::new(KeySigner::new(secret)), None)
            }
            SignerKind::Keyless {
                identity_token,
                fulcio_url,
                ignore_sct,
            } => {
                let (Some(trust), Some(http)) = (trust, &http) else {
                    bail!("keyless signing needs the Sigstore trust root");
                };
                if self.rekor_url.is_none() {
                    bail!("keyless signatures must be logged in the transparency log");
                }
                let tokens = TokenSource {
                    explicit: identity_token.clone(),
                    audience: "sigstore".into(),
                };
                let signer =
                    KeylessSigner::obtain(http, fulcio_url, &tokens, trust, *ignore_sct).await?;
                let identity = signer.identity();
                (Box::new(signer), Some(identity))
            }
        };
        let tlog = match (&self.rekor_url, http) {
            (Some(rekor_url), Some(http)) => Some(Tlog {
                http,
                rekor_url: rekor_url.clone(),
            }),
            _ => None,
        };
        Ok(Signing {
            signer,
            tlog,
            identity,
        })
    }

    /// The signer in words, for a plan: "key release.key" or "keyless (Fulcio URL)".
    pub fn describe(&self) -> String {
        match &self.kind {
            SignerKind::Key { key, .. } => format!("key {key}"),
            SignerKind::Keyless { fulcio_url, .. } => format!("keyless (Fulcio {fulcio_url})"),
        }
    }
}
