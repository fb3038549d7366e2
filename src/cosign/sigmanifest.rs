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

pub fn signature_tag(digest: &Digest) -> String {
    format!("{}.sig", digest.tag_prefix())
}

pub fn attestation_tag(digest: &Digest) -> String {
    format!("{}.att", digest.tag_prefix())
}

pub fn sbom_tag(digest: &Digest) -> String {
    format!("{}.sbom", digest.tag_prefix())
}

/// A tag-scheme manifest with its config blob, ready to write (config first).
pub struct TagArtifact {
    pub manifest: RawManifest,
    pub config: Bytes,
    pub config_descriptor: Descriptor,
}

/// Builds the manifest cosign would write for these layers: an OCI image manifest whose config
/// is an empty image config listing the layers (what go-containerregistry produces when layers
/// are appended to an empty image).
pub fn build(layers: &[Descriptor]) -> TagArtifact {
    let epoch = "0001-01-01T00:00:00Z";
    let config = serde_json::json!({
        "architecture": "",
        "created": epoch,
        "history": layers.iter().map(|_| serde_json::json!({"created": epoch})).collect::<Vec<_>>(),
        "os": "",
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.digest.to_string()).collect::<Vec<_>>(),
        },
        "config": {},
    });
    let config = Bytes::from(serde_json::to_vec(&config).expect("config serialises"));
    let config_descriptor =
        Descriptor::new(media::OCI_CONFIG, Digest::of(&config), config.len() as u64);
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
        let config: serde_json::Value = serde_json::from_slice(&artifact.config).unwrap();
        assert_eq!(config["rootfs"]["diff_ids"][0], layer.digest.to_string());
    }
}
