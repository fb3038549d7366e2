//! Descriptors, image manifests and indexes (OCI and Docker schema 2).
//!
//! Manifests are always carried as their exact bytes ([`RawManifest`]); the parsed view is only
//! used to find what a manifest points at. Re-serialising would change the digest.

use super::digest::Digest;
use super::media;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

pub type Annotations = BTreeMap<String, String>;

/// The most a manifest may be, as distribution's default: nothing legitimate comes close, and
/// a manifest is read whole into memory.
pub const MANIFEST_LIMIT: u64 = 4 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            urls: None,
            annotations: None,
            platform: None,
            artifact_type: None,
        }
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
}

impl Platform {
    /// Parses `os/arch[/variant]`, the form `docker --platform` uses.
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: parts.get(2).map(|v| v.to_string()),
                os_version: None,
            }),
            _ => bail!("invalid platform {s:?}: expected os/arch[/variant], e.g. linux/arm64"),
        }
    }

    /// Whether a descriptor's platform satisfies this requested one (an unspecified variant
    /// matches any variant).
    pub fn matches(&self, candidate: &Platform) -> bool {
        self.os == candidate.os
            && self.architecture == candidate.architecture
            && (self.variant.is_none() || self.variant == candidate.variant)
    }
}

/// `os/arch[/variant]`. The parts are whatever a manifest said: shown escaped, so a peer's
/// platform cannot start a line of its own wherever it is printed.
impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::text::one_line;
        write!(f, "{}/{}", one_line(&self.os), one_line(&self.architecture))?;
        if let Some(v) = &self.variant {
            write!(f, "/{}", one_line(v))?;
        }
        Ok(())
    }
}

/// An image manifest (OCI or Docker schema 2).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
}

/// An image index (OCI) or manifest list (Docker).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
}

// A handful of manifests are alive at once; boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Manifest {
    Image(ImageManifest),
    Index(ImageIndex),
}

/// A manifest as stored: exact bytes, their media type and digest.
#[derive(Debug, Clone)]
pub struct RawManifest {
    pub bytes: bytes::Bytes,
    pub media_type: String,
    pub digest: Digest,
}

impl RawManifest {
    /// Wraps bytes, taking the media type from `content_type` (what the store reported) or,
    /// failing that, from the document itself.
    pub fn new(bytes: impl Into<bytes::Bytes>, content_type: Option<&str>) -> Result<RawManifest> {
        let bytes = bytes.into();
        let media_type = match content_type.filter(|c| media::is_manifest(c)) {
            Some(c) => c.to_string(),
            None => sniff_media_type(&bytes)?,
        };
        Ok(RawManifest {
            digest: Digest::of(&bytes),
            bytes,
            media_type,
        })
    }

    /// Serialises a manifest wharf builds itself (signature manifests, referrers).
    pub fn from_manifest<T: Serialize>(value: &T, media_type: &str) -> RawManifest {
        let bytes = serde_json::to_vec(value).expect("manifest serialises");
        RawManifest {
            digest: Digest::of(&bytes),
            bytes: bytes.into(),
            media_type: media_type.to_string(),
        }
    }

    pub fn parse(&self) -> Result<Manifest> {
        parse_manifest(&self.bytes, &self.media_type)
            .with_context(|| format!("manifest {} is malformed", self.digest))
    }

    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            &self.media_type,
            self.digest.clone(),
            self.bytes.len() as u64,
        )
    }
}

/// Reads the media type a manifest declares, or infers it from its shape when it declares none
/// (allowed for OCI manifests).
pub fn sniff_media_type(bytes: &[u8]) -> Result<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        layers: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(bytes).context("manifest is not valid JSON")?;
    match probe {
        Probe {
            media_type: Some(m),
            ..
        } if media::is_manifest(&m) => Ok(m),
        Probe {
            media_type: Some(m),
            ..
        } => bail!("unsupported manifest media type {m:?}"),
        Probe {
            manifests: Some(_), ..
        } => Ok(media::OCI_INDEX.to_string()),
        Probe {
            layers: Some(_), ..
        } => Ok(media::OCI_MANIFEST.to_string()),
        _ => bail!("document is neither an image manifest nor an index"),
    }
}

pub fn parse_manifest(bytes: &[u8], media_type: &str) -> Result<Manifest> {
    if media::is_index(media_type) {
        let index: ImageIndex = serde_json::from_slice(bytes)?;
        Ok(Manifest::Index(index))
    } else if media::is_image_manifest(media_type) {
        let manifest: ImageManifest = serde_json::from_slice(bytes)?;
        Ok(Manifest::Image(manifest))
    } else {
        bail!("unsupported manifest media type {media_type:?}")
    }
}

impl Manifest {
    /// Child manifests (for an index) — what must exist before this manifest is written.
    pub fn child_manifests(&self) -> &[Descriptor] {
        match self {
            Manifest::Index(i) => &i.manifests,
            Manifest::Image(_) => &[],
        }
    }

    /// Blobs (config and layers) an image manifest references.
    pub fn blobs(&self) -> Vec<&Descriptor> {
        match self {
            Manifest::Image(m) => std::iter::once(&m.config).chain(&m.layers).collect(),
            Manifest::Index(_) => Vec::new(),
        }
    }

    pub fn subject(&self) -> Option<&Descriptor> {
        match self {
            Manifest::Image(m) => m.subject.as_ref(),
            Manifest::Index(i) => i.subject.as_ref(),
        }
    }

    pub fn artifact_type(&self) -> Option<&str> {
        match self {
            Manifest::Image(m) => m
                .artifact_type
                .as_deref()
                .or(Some(m.config.media_type.as_str())),
            Manifest::Index(i) => i.artifact_type.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","size":10,"platform":{"architecture":"arm","os":"linux","variant":"v7"}}]}"#;

    #[test]
    fn raw_manifest_keeps_bytes_and_digest() {
        let raw = RawManifest::new(INDEX.as_bytes().to_vec(), None).unwrap();
        assert_eq!(raw.media_type, media::OCI_INDEX);
        assert_eq!(raw.digest, Digest::of(INDEX.as_bytes()));
        let Manifest::Index(index) = raw.parse().unwrap() else {
            panic!("expected an index")
        };
        let platform = index.manifests[0].platform.as_ref().unwrap();
        assert_eq!(platform.to_string(), "linux/arm/v7");
    }

    #[test]
    fn sniffs_untyped_manifests() {
        assert_eq!(
            sniff_media_type(br#"{"schemaVersion":2,"manifests":[]}"#).unwrap(),
            media::OCI_INDEX
        );
        assert_eq!(
            sniff_media_type(br#"{"schemaVersion":2,"config":{},"layers":[]}"#).unwrap(),
            media::OCI_MANIFEST
        );
        assert!(sniff_media_type(b"[]").is_err());
        assert!(sniff_media_type(br#"{"mediaType":"text/plain"}"#).is_err());
    }

    #[test]
    fn a_platform_from_a_manifest_is_shown_on_one_line() {
        let p: Platform =
            serde_json::from_str(r#"{"os":"linux\n::add-mask::x","architecture":"amd64"}"#)
                .unwrap();
        assert_eq!(p.to_string(), "linux\\n::add-mask::x/amd64");
        assert_eq!(
            Platform::parse("linux/arm/v7").unwrap().to_string(),
            "linux/arm/v7"
        );
    }

    #[test]
    fn platform_parse_and_match() {
        let want = Platform::parse("linux/arm").unwrap();
        let have = Platform::parse("linux/arm/v7").unwrap();
        assert!(want.matches(&have));
        assert!(!have.matches(&Platform::parse("linux/arm/v6").unwrap()));
        assert!(Platform::parse("linux").is_err());
    }
}
