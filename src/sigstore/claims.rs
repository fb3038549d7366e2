//! The claims Fulcio copies from an OIDC token into the certificates it issues, as X.509
//! extensions under Sigstore's arc `1.3.6.1.4.1.57264.1`: the token's issuer and, for GitHub
//! Actions tokens, the workflow run. Their object identifiers are named here and nowhere else.
//!
//! Fulcio writes each GitHub claim twice: the legacy extensions (`.2`–`.6`, raw bytes) that
//! cosign's `--certificate-github-workflow-*` flags compare, and since Fulcio 1.4 the v2
//! extensions (`.8`–`.22`, DER UTF8Strings) with the same facts in a provider-neutral form.
//! wharf compares the legacy ones, as cosign does.

/// Every Sigstore certificate extension starts with this.
pub const ARC: &str = "1.3.6.1.4.1.57264.1.";

/// The OIDC issuer that vouched for the identity: legacy (raw bytes) and v2 (UTF8String).
pub const ISSUER_V1: &str = "1.3.6.1.4.1.57264.1.1";
pub const ISSUER_V2: &str = "1.3.6.1.4.1.57264.1.8";

/// The otherName SAN under which Fulcio writes a username identity.
pub const USERNAME_SAN: &str = "1.3.6.1.4.1.57264.1.7";

/// A GitHub Actions claim a keyless policy can require.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GithubClaim {
    /// The event that started the workflow (`push`).
    WorkflowTrigger,
    /// The commit it ran for.
    WorkflowSha,
    /// The workflow's name.
    WorkflowName,
    /// `OWNER/REPO`.
    WorkflowRepository,
    /// The git ref it ran for (`refs/tags/v1.2.0`).
    WorkflowRef,
}

impl GithubClaim {
    /// In the order of their OIDs.
    pub const ALL: [GithubClaim; 5] = [
        GithubClaim::WorkflowTrigger,
        GithubClaim::WorkflowSha,
        GithubClaim::WorkflowName,
        GithubClaim::WorkflowRepository,
        GithubClaim::WorkflowRef,
    ];

    /// The legacy extension, which policies compare.
    pub fn oid(self) -> &'static str {
        match self {
            GithubClaim::WorkflowTrigger => "1.3.6.1.4.1.57264.1.2",
            GithubClaim::WorkflowSha => "1.3.6.1.4.1.57264.1.3",
            GithubClaim::WorkflowName => "1.3.6.1.4.1.57264.1.4",
            GithubClaim::WorkflowRepository => "1.3.6.1.4.1.57264.1.5",
            GithubClaim::WorkflowRef => "1.3.6.1.4.1.57264.1.6",
        }
    }

    /// The v2 extension carrying the same fact: Build Trigger, Source Repository Digest,
    /// Source Repository URI (`https://github.com/OWNER/REPO`, a URI where the legacy claim
    /// has `OWNER/REPO`), Source Repository Ref. The workflow's name has none.
    pub fn v2_oid(self) -> Option<&'static str> {
        match self {
            GithubClaim::WorkflowTrigger => Some("1.3.6.1.4.1.57264.1.20"),
            GithubClaim::WorkflowSha => Some("1.3.6.1.4.1.57264.1.13"),
            GithubClaim::WorkflowName => None,
            GithubClaim::WorkflowRepository => Some("1.3.6.1.4.1.57264.1.12"),
            GithubClaim::WorkflowRef => Some("1.3.6.1.4.1.57264.1.14"),
        }
    }

    /// The name cosign's `verify` gives the legacy extension in a payload's `optional`
    /// (its `CertExtensionMap`), beside the OID itself.
    pub fn cosign_name(self) -> &'static str {
        match self {
            GithubClaim::WorkflowTrigger => "githubWorkflowTrigger",
            GithubClaim::WorkflowSha => "githubWorkflowSha",
            GithubClaim::WorkflowName => "githubWorkflowName",
            GithubClaim::WorkflowRepository => "githubWorkflowRepository",
            GithubClaim::WorkflowRef => "githubWorkflowRef",
        }
    }

    /// What a rejection calls it: "wrong workflow repository".
    pub fn name(self) -> &'static str {
        match self {
            GithubClaim::WorkflowTrigger => "workflow trigger",
            GithubClaim::WorkflowSha => "workflow sha",
            GithubClaim::WorkflowName => "workflow name",
            GithubClaim::WorkflowRepository => "workflow repository",
            GithubClaim::WorkflowRef => "workflow ref",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_claim_is_a_distinct_extension_of_the_arc() {
        let mut oids: Vec<&str> = vec![ISSUER_V1, ISSUER_V2, USERNAME_SAN];
        for claim in GithubClaim::ALL {
            oids.push(claim.oid());
            oids.extend(claim.v2_oid());
        }
        assert!(oids.iter().all(|o| o.starts_with(ARC)), "{oids:?}");
        let mut distinct = oids.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), oids.len(), "{oids:?}");
    }
}
