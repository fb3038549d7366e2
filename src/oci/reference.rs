//! Where an image lives: `HOST[:PORT]/REPO[:TAG][@DIGEST]` in a registry, or
//! `oci:DIR[:REF][@DIGEST]` in an OCI image layout directory.

use super::digest::Digest;
use anyhow::{anyhow, bail, Context, Result};
use std::fmt;
use std::path::PathBuf;

/// A repository: the unit a store works on. Signatures and attestations live in the same
/// repository as what they sign.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Repository {
    /// `registry` is as written (`docker.io`, `localhost:5000`); `name` is the path in it.
    Registry {
        registry: String,
        name: String,
    },
    Layout {
        dir: PathBuf,
    },
}

impl Repository {
    /// The name cosign writes into a signature's `docker-reference`: `REGISTRY/REPO`
    /// (docker.io resolved to `index.docker.io`, as go-containerregistry does).
    pub fn docker_reference(&self) -> String {
        match self {
            Repository::Registry { registry, name } => {
                let registry = if registry == "docker.io" {
                    "index.docker.io"
                } else {
                    registry
                };
                format!("{registry}/{name}")
            }
            Repository::Layout { dir } => format!("oci:{}", dir.display()),
        }
    }

    pub fn is_layout(&self) -> bool {
        matches!(self, Repository::Layout { .. })
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Repository::Registry { registry, name } => write!(f, "{registry}/{name}"),
            Repository::Layout { dir } => write!(f, "oci:{}", dir.display()),
        }
    }
}

/// A reference to an image: a repository plus an optional tag and/or digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub repository: Repository,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl ImageRef {
    pub fn parse(input: &str) -> Result<ImageRef> {
        if let Some(rest) = input.strip_prefix("oci:") {
            return parse_layout(rest);
        }
        parse_registry(input)
    }

    pub fn with_digest(&self, digest: Digest) -> ImageRef {
        ImageRef {
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest),
        }
    }

    /// The digest, or an error explaining why signing by tag is refused.
    pub fn require_digest(&self) -> Result<&Digest> {
        self.digest.as_ref().ok_or_else(|| {
            anyhow!(
                "{self} has no digest: wharf signs and verifies digests, never tags, because a tag \
                 can be moved between reading and signing; use {}@sha256:<digest> \
                 (printed by `wharf push`), or pass --resolve-tag to resolve the tag once",
                self.repository
            )
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn parse_layout(rest: &str) -> Result<ImageRef> {
    if rest.is_empty() {
        bail!("oci: reference needs a directory, e.g. oci:./out or oci:./out:v1");
    }
    let (rest, digest) = match rest.rsplit_once('@') {
        Some((dir, d)) => (
            dir,
            Some(
                d.parse::<Digest>()
                    .with_context(|| format!("in reference oci:{rest}"))?,
            ),
        ),
        None => (rest, None),
    };
    // `oci:DIR:REF`: the part after the last ':' is a ref name unless it looks like a path.
    let (dir, tag) = match rest.rsplit_once(':') {
        Some((dir, tag)) if !dir.is_empty() && !tag.contains('/') && !tag.is_empty() => {
            (dir, Some(tag.to_string()))
        }
        _ => (rest, None),
    };
    Ok(ImageRef {
        repository: Repository::Layout {
            dir: PathBuf::from(dir),
        },
        tag,
        digest,
    })
}

fn parse_registry(input: &str) -> Result<ImageRef> {
    let parsed = oci_client::Reference::try_from(input)
        .map_err(|e| anyhow!("invalid image reference {input:?}: {e}"))?;
    // oci-client fills in `latest` when no tag is written; we must know whether one was.
    let name_part = input.split('@').next().unwrap_or(input);
    let last_segment = name_part.rsplit('/').next().unwrap_or(name_part);
    let explicit_tag = last_segment.contains(':') && name_part.contains('/');
    let tag = parsed.tag().filter(|_| explicit_tag).map(str::to_string);
    let digest = parsed
        .digest()
        .map(|d| d.parse::<Digest>())
        .transpose()
        .with_context(|| format!("in reference {input:?}"))?;
    if !input.contains('/') {
        bail!(
            "invalid image reference {input:?}: write the registry and repository in full, \
             e.g. ghcr.io/OWNER/NAME or localhost:5000/NAME (or oci:DIR for a layout directory)"
        );
    }
    Ok(ImageRef {
        repository: Repository::Registry {
            registry: parsed.registry().to_string(),
            name: parsed.repository().to_string(),
        },
        tag,
        digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_refs() {
        let r = ImageRef::parse("localhost:5000/team/app:v1").unwrap();
        assert_eq!(r.repository.to_string(), "localhost:5000/team/app");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert!(r.digest.is_none());

        let d = format!("sha256:{}", "b".repeat(64));
        let r = ImageRef::parse(&format!("127.0.0.1:5000/app@{d}")).unwrap();
        assert_eq!(r.tag, None, "host port is not a tag");
        assert_eq!(r.digest.unwrap().as_str(), d);

        let r = ImageRef::parse("docker.io/library/alpine").unwrap();
        assert_eq!(
            r.repository.docker_reference(),
            "index.docker.io/library/alpine"
        );
        assert!(ImageRef::parse("alpine").is_err());
        assert!(ImageRef::parse("localhost:5000/App").is_err());
    }

    #[test]
    fn layout_refs() {
        let r = ImageRef::parse("oci:./out:v1").unwrap();
        assert_eq!(
            r.repository,
            Repository::Layout {
                dir: "./out".into()
            }
        );
        assert_eq!(r.tag.as_deref(), Some("v1"));
        let r = ImageRef::parse("oci:/tmp/x").unwrap();
        assert_eq!(r.tag, None);
        let d = format!("sha256:{}", "c".repeat(64));
        let r = ImageRef::parse(&format!("oci:/tmp/x@{d}")).unwrap();
        assert_eq!(r.digest.unwrap().as_str(), d);
        assert!(ImageRef::parse("oci:").is_err());
    }

    #[test]
    fn digest_is_required_for_signing() {
        let r = ImageRef::parse("localhost:5000/app:v1").unwrap();
        let err = r.require_digest().unwrap_err().to_string();
        assert!(err.contains("--resolve-tag"), "{err}");
    }
}
