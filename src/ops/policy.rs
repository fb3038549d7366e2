//! Who must have signed, as one value built from command-line flags (`--key`,
//! `--certificate-identity`, ...) or from a release config's `[verify]`, and the verification
//! policy it resolves to (reading the key it names).

use crate::sign::keyref::{KeyRef, PasswordSource};
use crate::sign::Signer;
use crate::sigstore::trust::TrustRoot;
use crate::sigstore::trust_source::TrustSource;
use crate::verify::{IdentityPolicy, Policy};
use anyhow::{bail, Result};

/// Who must have signed, and which evidence may be missing.
#[derive(Debug, Clone, Default)]
pub struct PolicySpec {
    /// The key the signatures must verify under (a private key yields its public half).
    pub key: Option<KeyRef>,
    pub password: PasswordSource,
    /// Keyless: the certificate identity, its OIDC issuer, and GitHub claims.
    pub identity: IdentityPolicy,
    /// Accept signatures without transparency-log evidence.
    pub ignore_tlog: bool,
    /// Accept certificates whose SCT cannot be checked.
    pub ignore_sct: bool,
}

impl PolicySpec {
    /// The policy, reading the key if there is one. Fail-closed: a spec naming neither a key
    /// nor an identity with its issuer is no policy.
    pub fn policy(&self) -> Result<Policy> {
        match &self.key {
            Some(key) => Ok(Policy::Key(key.load_public(&self.password)?)),
            None if self.identity.is_set() => Ok(Policy::Identity(self.identity.clone())),
            None => bail!(
                "no verification policy: a key, or a certificate identity with its OIDC issuer"
            ),
        }
    }

    /// The policy for what `signer` signs: a key-signed release verifies under its signer's
    /// public key unless the spec names another, so the key is read (and decrypted) once.
    pub fn policy_for(&self, signer: &dyn Signer) -> Result<Policy> {
        if self.key.is_none() && signer.certificate_pem().is_none() {
            return Ok(Policy::Key(signer.public_key()));
        }
        self.policy()
    }

    /// The Sigstore trust material the checks need: a key without the transparency log
    /// needs none, so it never waits on a TUF refresh.
    pub async fn trust_root(&self, source: &TrustSource) -> Result<TrustRoot> {
        source
            .load_if(!(self.key.is_some() && self.ignore_tlog))
            .await
    }
}
