//! Who must have signed: a key, or a certificate identity vouched for by an OIDC issuer.

use super::rejection::{reject, Rejection, RejectionKind};
use crate::sigstore::cert::SigningCert;
use crate::sigstore::claims::GithubClaim;

/// Who must have signed.
#[derive(Debug, Clone)]
pub enum Policy {
    Key(p256::PublicKey),
    /// Keyless: a Fulcio certificate for this identity and issuer.
    Identity(IdentityPolicy),
}

/// `pattern` anchored at both ends, `^(?:RE)$`: what matches it anywhere in a value matches
/// `pattern` in full. The one place wharf anchors an identity regexp, for its own matching
/// ([`FullMatch`]) and for tools that match anywhere ([`IdentityMatch::anchored_regexp`]).
pub fn anchored(pattern: &str) -> String {
    format!("^(?:{pattern})$")
}

/// A regular expression that must match a whole value: compiled [`anchored`], so an
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
            anchored: regex::Regex::new(&anchored(pattern))?,
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

/// One part of a keyless identity policy (the certificate identity, or its OIDC issuer) as
/// wharf matches it: an exact value, or a regular expression matched in full. What the
/// documents and admission policies generated for a release say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityMatch {
    Exact(String),
    Regexp(String),
}

impl IdentityMatch {
    /// From an exact value and a regexp. With both, wharf accepts a value equal to the first
    /// or matching the second: one regular expression says the same.
    pub fn from_pair(exact: Option<&str>, regexp: Option<&str>) -> Option<IdentityMatch> {
        match (exact, regexp) {
            (Some(e), None) => Some(IdentityMatch::Exact(e.to_string())),
            (None, Some(r)) => Some(IdentityMatch::Regexp(r.to_string())),
            (Some(e), Some(r)) => Some(IdentityMatch::Regexp(format!("{}|{r}", regex::escape(e)))),
            (None, None) => None,
        }
    }

    /// The same policy for tools that match a regular expression anywhere in the value (Go's
    /// `MatchString`: cosign, policy-controller, Kyverno): anchored at both ends, so they
    /// accept exactly what wharf accepts.
    pub fn anchored_regexp(&self) -> String {
        match self {
            IdentityMatch::Exact(value) => format!("^{}$", regex::escape(value)),
            IdentityMatch::Regexp(re) => anchored(re),
        }
    }
}

/// Who must have signed, for keyless verification.
#[derive(Debug, Clone, Default)]
pub struct IdentityPolicy {
    pub identity: Option<String>,
    pub identity_regexp: Option<FullMatch>,
    pub issuer: Option<String>,
    pub issuer_regexp: Option<FullMatch>,
    /// Required GitHub claims, with the value each must have.
    pub github_claims: Vec<(GithubClaim, String)>,
}

impl IdentityPolicy {
    /// The identity part as the release documents state it.
    pub fn identity_match(&self) -> Option<IdentityMatch> {
        IdentityMatch::from_pair(
            self.identity.as_deref(),
            self.identity_regexp.as_ref().map(FullMatch::as_str),
        )
    }

    /// The OIDC issuer part as the release documents state it.
    pub fn issuer_match(&self) -> Option<IdentityMatch> {
        IdentityMatch::from_pair(
            self.issuer.as_deref(),
            self.issuer_regexp.as_ref().map(FullMatch::as_str),
        )
    }

    /// Whether any part of a keyless policy is given (a key policy must have none).
    pub fn any(&self) -> bool {
        self.identity.is_some()
            || self.identity_regexp.is_some()
            || self.issuer.is_some()
            || self.issuer_regexp.is_some()
    }

    /// Whether the policy names both an identity and an issuer: the least that counts.
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
        for (claim, want) in &self.github_claims {
            let have = cert
                .extensions
                .get(claim.oid())
                .map(String::as_str)
                .unwrap_or("");
            if have != want {
                let name = claim.name();
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
