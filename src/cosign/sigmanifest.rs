//! The manifests of cosign's tag scheme: `sha256-<hex>.sig` (signatures) and `.att`
//! (attestations), one layer per signature, in the signed image's repository.

use crate::oci::manifest::{Annotations, ImageManifest};
use crate::oci::{media, Descriptor, Digest, RawManifest};
use bytes::Bytes;

pub const SIMPLESIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
/// An RFC 3161 timestamp over the signature, as JSON `{"SignedRFC3161Timestamp": base64}`.
pub const RFC3161_ANNOTATION: &str = "dev.sigstore.cosign/rfc3161timestamp";

pub fn signature_tag(digest: &Digest) -> String {
    format!("{}.sig", digest.tag_prefix())
}

pub fn attestation_tag(digest: &Digest) -> String {
    format!("{}.att", digest.tag_prefix())
}

pub fn sbom_tag(digest: &Digest) -> String {
    format!("{}.sbom", digest.tag_prefix())
}

/// Splits a tag named after a sha256 digest, `sha256-<hex>[.SUFFIX]`, into the hex digest and
/// the suffix (`""` for the referrers fallback tag, `"sig"`, `"att"`, `"sbom"`, or another a
/// tool chose). `None` for any other tag.
pub fn parse_digest_tag(tag: &str) -> Option<(&str, &str)> {
    let rest = tag.strip_prefix("sha256-")?;
    let (hex, suffix) = rest.split_at(rest.len().min(64));
    let hex_ok = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let suffix = match suffix.strip_prefix('.') {
        None if suffix.is_empty() => "",
        Some(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric()) => s,
        _ => return None,
    };
    hex_ok.then_some((hex, suffix))
}

/// A tag-scheme manifest with its config blob, ready to write (config first).
pub struct TagArtifact {
    pub manifest: RawManifest,
    pub config: Bytes,
    pub config_descriptor: Descriptor,
}

/// The config blob of every tag-scheme manifest wharf writes: the image config of an empty
/// image (what go-containerregistry, and so cosign, starts from), with no layers listed.
///
/// Cosign lists each layer's digest in the config, which makes the config different for every
/// signature: one more blob to upload each time. Nothing reads it (cosign, policy-controller
/// and Kyverno read the layers and their annotations; cosign rewrites it when it appends), so
/// wharf writes the same bytes every time and uploads them once per repository. It stays an
/// image config, not the OCI 1.1 empty descriptor, because registries that allow-list config
/// media types (Quay) accept cosign's signatures for exactly that reason.
pub fn shared_config() -> (Bytes, Descriptor) {
    const CONFIG: &[u8] = br#"{"architecture":"","created":"0001-01-01T00:00:00Z","os":"","rootfs":{"type":"layers","diff_ids":[]},"config":{}}"#;
    let config = Bytes::from_static(CONFIG);
    let descriptor = Descriptor::new(media::OCI_CONFIG, Digest::of(&config), config.len() as u64);
    (config, descriptor)
}

/// Builds a tag-scheme manifest for these layers: an OCI image manifest, as cosign writes,
/// with the [`shared_config`].
pub fn build(layers: &[Descriptor]) -> TagArtifact {
    let (config, config_descriptor) = shared_config();
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.to_string()),
        artifact_type: None,
        config: config_descriptor.clone(),
        layers: layers.to_vec(),
        subject: None,
        annotations: None,
    };
    TagArtifact {
        manifest: RawManifest::from_manifest(&manifest, media::OCI_MANIFEST),
        config,
        config_descriptor,
    }
}

/// A signature layer's descriptor: the payload blob plus the signature and, for keyless,
/// certificate, chain and transparency-log bundle as annotations.
pub fn signature_layer(payload: &[u8], annotations: Annotations) -> Descriptor {
    let mut d = Descriptor::new(
        SIMPLESIGNING_MEDIA_TYPE,
        Digest::of(payload),
        payload.len() as u64,
    );
    d.annotations = Some(annotations);
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_follow_cosign_scheme() {
        let d = Digest::of(b"x");
        assert_eq!(signature_tag(&d), format!("sha256-{}.sig", d.hex()));
        assert_eq!(attestation_tag(&d), format!("sha256-{}.att", d.hex()));
    }

    #[test]
    fn digest_tags_split_into_hex_and_suffix() {
        let d = Digest::of(b"x");
        let hex = d.hex();
        assert_eq!(parse_digest_tag(&signature_tag(&d)), Some((hex, "sig")));
        assert_eq!(parse_digest_tag(&sbom_tag(&d)), Some((hex, "sbom")));
        assert_eq!(parse_digest_tag(&d.tag_prefix()), Some((hex, "")));
        for other in [
            "v1".to_string(),
            format!("sha256-{hex}."),
            format!("sha256-{hex}.sig.x"),
            format!("sha256-{}.sig", &hex[..63]),
            format!("sha256-{}.sig", hex.to_uppercase()),
        ] {
            assert_eq!(parse_digest_tag(&other), None, "{other}");
        }
    }

    #[test]
    fn manifest_lists_layers_and_config() {
        let layer = signature_layer(
            b"{}",
            Annotations::from([(SIGNATURE_ANNOTATION.to_string(), "MEU=".to_string())]),
        );
        let artifact = build(std::slice::from_ref(&layer));
        let parsed: serde_json::Value = serde_json::from_slice(&artifact.manifest.bytes).unwrap();
        assert_eq!(
            parsed["layers"][0]["annotations"][SIGNATURE_ANNOTATION],
            "MEU="
        );
        assert_eq!(
            parsed["config"]["digest"],
            artifact.config_descriptor.digest.to_string()
        );
        // Every tag-scheme manifest shares one config: a valid image config, uploaded once.
        assert_eq!(artifact.config_descriptor, build(&[]).config_descriptor);
        assert_eq!(parsed["config"]["mediaType"], media::OCI_CONFIG);
        let config: serde_json::Value = serde_json::from_slice(&artifact.config).unwrap();
        assert_eq!(config["rootfs"]["type"], "layers");
        assert_eq!(config["os"], "");
    }
}
