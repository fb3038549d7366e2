//! cosign copy's `--only sig,att,sbom`: which attachments a copy takes along. Tag-scheme
//! manifests by their suffix; OCI referrers by what they are (a Sigstore bundle signing the
//! image is a signature, any other bundle an attestation, a CycloneDX or SPDX artifact an
//! SBOM); a referrer of no such kind is left behind when a selection is made.

use super::bundles::PREDICATE_TYPE_ANNOTATION;
use crate::oci::Descriptor;
use crate::sigstore::bundle::{BUNDLE_MEDIA_TYPES, SIGN_PREDICATE_TYPE};
use anyhow::{bail, Result};

/// The attachment kinds, named as cosign's tag suffixes and `--only` values.
pub const KINDS: [&str; 3] = ["sig", "att", "sbom"];

/// Which attachments to copy: all of them (a mirror), or those of the listed kinds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyOnly {
    kinds: Option<Vec<&'static str>>,
}

impl CopyOnly {
    /// Everything attached, of any kind.
    pub fn all() -> CopyOnly {
        CopyOnly::default()
    }

    /// From `--only` values (each may hold several, comma-separated, as cosign's flag).
    pub fn parse(values: &[String]) -> Result<CopyOnly> {
        let mut kinds = Vec::new();
        for value in values.iter().flat_map(|v| v.split(',')) {
            let value = value.trim();
            match KINDS.iter().find(|k| **k == value) {
                Some(k) if !kinds.contains(k) => kinds.push(*k),
                Some(_) => {}
                None => bail!("--only {value:?} is not one of sig, att, sbom"),
            }
        }
        if kinds.is_empty() {
            bail!("--only needs at least one of sig, att, sbom");
        }
        Ok(CopyOnly { kinds: Some(kinds) })
    }

    /// Whether only some attachments are copied (then no tag is written, as in cosign).
    pub fn is_selective(&self) -> bool {
        self.kinds.is_some()
    }

    /// Whether the `.sig`/`.att`/`.sbom` manifest of `kind` is copied.
    pub fn tag_kind(&self, kind: &str) -> bool {
        self.kinds.as_ref().is_none_or(|k| k.contains(&kind))
    }

    /// Whether the referrer `d` is copied.
    pub fn referrer(&self, d: &Descriptor) -> bool {
        match &self.kinds {
            None => true,
            Some(kinds) => referrer_kind(d).is_some_and(|k| kinds.contains(&k)),
        }
    }
}

/// What a referrer is, as far as `--only` (and `download sbom`) goes: `sig`, `att`, `sbom`.
pub(super) fn referrer_kind(d: &Descriptor) -> Option<&'static str> {
    let artifact = d.artifact_type.as_deref().unwrap_or_default();
    let predicate = d.annotation(PREDICATE_TYPE_ANNOTATION);
    if BUNDLE_MEDIA_TYPES.iter().any(|(t, _)| *t == artifact) || predicate.is_some() {
        return Some(if predicate == Some(SIGN_PREDICATE_TYPE) {
            "sig"
        } else {
            "att"
        });
    }
    (artifact.contains("cyclonedx") || artifact.contains("spdx")).then_some("sbom")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::Digest;

    fn referrer(artifact: &str, predicate: Option<&str>) -> Descriptor {
        let mut d = Descriptor::new(
            "application/vnd.oci.image.manifest.v1+json",
            Digest::of(b"x"),
            1,
        );
        d.artifact_type = Some(artifact.into());
        if let Some(p) = predicate {
            d.annotations
                .get_or_insert_with(Default::default)
                .insert(PREDICATE_TYPE_ANNOTATION.into(), p.into());
        }
        d
    }

    #[test]
    fn only_parses_as_cosign_and_refuses_what_it_does_not_know() {
        let only = CopyOnly::parse(&["sig,att".into()]).unwrap();
        assert!(only.tag_kind("sig") && only.tag_kind("att") && !only.tag_kind("sbom"));
        assert!(only.is_selective());
        assert!(CopyOnly::parse(&["sig".into(), "sbom".into()])
            .unwrap()
            .tag_kind("sbom"));
        assert!(CopyOnly::parse(&["sigs".into()]).is_err());
        assert!(CopyOnly::parse(&[]).is_err());
        let all = CopyOnly::all();
        assert!(!all.is_selective() && all.tag_kind("sbom"));
    }

    #[test]
    fn referrers_are_sorted_by_what_they_are() {
        let bundle = "application/vnd.dev.sigstore.bundle.v0.3+json";
        let sig = referrer(bundle, Some(SIGN_PREDICATE_TYPE));
        let att = referrer(bundle, Some("https://slsa.dev/provenance/v1"));
        let sbom = referrer("application/vnd.cyclonedx+json", None);
        let other = referrer("application/vnd.example.thing", None);
        let only_sig = CopyOnly::parse(&["sig".into()]).unwrap();
        assert!(only_sig.referrer(&sig));
        assert!(
            !only_sig.referrer(&att) && !only_sig.referrer(&sbom) && !only_sig.referrer(&other)
        );
        let att_sbom = CopyOnly::parse(&["att,sbom".into()]).unwrap();
        assert!(att_sbom.referrer(&att) && att_sbom.referrer(&sbom) && !att_sbom.referrer(&sig));
        assert!(CopyOnly::all().referrer(&other));
    }
}
