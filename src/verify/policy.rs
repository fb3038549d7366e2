//! Who must have signed: a key, or a certificate identity vouched for by an OIDC issuer.

use super::rejection::{reject, Rejection, RejectionKind};
use crate::sigstore::cert::{SigningCert, GITHUB_CLAIMS};

/// Who must have signed.
#[derive(Debug, Clone)]
pub enum Policy {
    Key(p256::PublicKey),
    /// Keyless: a Fulcio certificate for this identity and issuer.
    Identity(IdentityPolicy),
}

/// A regular expression that must match a whole value: compiled as `^(?:RE)$`, so an
/// alternation such as `A|A-v2` accepts `A-v2` (leftmost-first matching of the bare pattern
/// would stop at `A` and refuse it).
#[derive(Debug, Clone)]
pub struct FullMatch {
    pattern: String,
    anchored: regex::Regex,
}

impl FullMatch {
    pub fn new(pattern: &str) -> Result<FullMatch, regex::Error> {
        Ok(FullMatch {
            anchored: regex::Regex::new(&format!("^(?:{pattern})$"))?,
            pattern: pattern.to_string(),
        })
    }

    pub fn is_match(&self, value: &str) -> bool {
        self.anchored.is_match(value)
    }

    /// The pattern as the user gave it.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }
}

/// Who must have signed, for keyless verification.
#[derive(Debug, Clone, Default)]
pub struct IdentityPolicy {
    pub identity: Option<String>,
    pub identity_regexp: Option<FullMatch>,
    pub issuer: Option<String>,
    pub issuer_regexp: Option<FullMatch>,
    /// Required GitHub claims: (extension OID, expected value).
    pub github_claims: Vec<(String, String)>,
}

impl IdentityPolicy {
    pub fn is_set(&self) -> bool {
        (self.identity.is_some() || self.identity_regexp.is_some())
            && (self.issuer.is_some() || self.issuer_regexp.is_some())
    }

    /// Checks the certificate against the policy; the rejection says which part did not match.
    pub fn check(&self, cert: &SigningCert) -> Result<(), Rejection> {
        if !cert.code_signing {
            return reject(
                RejectionKind::UntrustedCertificate,
                "the certificate is not for code signing (no codeSigning extended key usage)",
            );
        }
        let identity_ok = cert.identities.iter().any(|id| {
            self.identity.as_ref().is_some_and(|want| want == id)
                || self
                    .identity_regexp
                    .as_ref()
                    .is_some_and(|re| re.is_match(id))
        });
        if !identity_ok {
            let wanted = self
                .identity
                .clone()
                .or_else(|| {
                    self.identity_regexp
                        .as_ref()
                        .map(|r| format!("/{}/", r.as_str()))
                })
                .unwrap_or_default();
            return reject(
                RejectionKind::WrongIdentity,
                format!(
                    "wrong identity: the certificate was issued to {:?}, which does not match {wanted}",
                    cert.identities
                ),
            );
        }
        let issuer = cert.issuer.as_deref().unwrap_or("");
        let issuer_ok = self.issuer.as_deref().is_some_and(|w| w == issuer)
            || self
                .issuer_regexp
                .as_ref()
                .is_some_and(|re| re.is_match(issuer));
        if !issuer_ok {
            return reject(
                RejectionKind::WrongIdentity,
                format!("wrong OIDC issuer: the certificate's issuer is {issuer:?}"),
            );
        }
        for (oid, want) in &self.github_claims {
            let have = cert.extensions.get(oid).map(String::as_str).unwrap_or("");
            if have != want {
                let name = GITHUB_CLAIMS
                    .iter()
                    .find(|(o, _)| o == oid)
                    .map(|(_, n)| *n)
                    .unwrap_or(oid);
                return reject(
                    RejectionKind::WrongIdentity,
                    format!("wrong {name}: the certificate says {have:?}, expected {want:?}"),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexps_match_in_full() {
        let re = FullMatch::new("A|A-v2").unwrap();
        assert!(re.is_match("A"));
        assert!(re.is_match("A-v2"));
        assert!(!re.is_match("A-v3"));
        assert!(!re.is_match("xA"));
        let prefix = FullMatch::new("https://github.com/acme/.*").unwrap();
        assert!(prefix.is_match("https://github.com/acme/app/.github/workflows/r.yml@refs/tags/v1"));
        assert!(!prefix.is_match("https://evil.example/https://github.com/acme/x"));
        assert_eq!(prefix.as_str(), "https://github.com/acme/.*");
    }
}
