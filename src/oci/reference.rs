//! Where an image lives: `HOST[:PORT]/REPO[:TAG][@DIGEST]` in a registry,
//! `oci:DIR[:REF][@DIGEST]` in an OCI image layout directory, or `oci-archive:FILE[:REF][@DIGEST]`
//! in a layout packed into one tar file (skopeo's name for the same thing).

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
    /// An OCI image layout as one tar file.
    Archive {
        file: PathBuf,
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
            Repository::Layout { .. } | Repository::Archive { .. } => self.to_string(),
        }
    }

    /// Whether this is a local OCI layout, a directory or an archive.
    ///
    /// See also [`names_layout`] for references still in text form.
    pub fn is_layout(&self) -> bool {
        matches!(self, Repository::Layout { .. } | Repository::Archive { .. })
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Repository::Registry { registry, name } => write!(f, "{registry}/{name}"),
            Repository::Layout { dir } => write!(f, "oci:{}", dir.display()),
            Repository::Archive { file } => write!(f, "oci-archive:{}", file.display()),
        }
    }
}

/// Whether a reference, as written, names a local layout (`oci:DIR`, `oci-archive:FILE`)
/// rather than a registry repository.
pub fn names_layout(reference: &str) -> bool {
    reference.starts_with("oci:") || reference.starts_with("oci-archive:")
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
        if let Some(rest) = input.strip_prefix("oci-archive:") {
            if rest.is_empty() {
                bail!(
                    "oci-archive: reference needs a file, e.g. oci-archive:./release.tar or \
                     oci-archive:./release.tar:v1"
                );
            }
            let mut reference = parse_layout(rest)?;
            if let Repository::Layout { dir } = reference.repository {
                reference.repository = Repository::Archive { file: dir };
            }
            return Ok(reference);
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

/// Parses `[HOST[:PORT]/]PATH[:TAG][@DIGEST]` by the distribution reference grammar, with
/// Docker Hub's shorthands (`docker.io` when the first component is not a host, `library/`
/// for its official images), as docker, cosign and go-containerregistry read references.
///
/// Written out by hand rather than with oci-client's parser: that one compiles a large regular
/// expression on first use, which cost every wharf command about 45 ms before its first request.
fn parse_registry(input: &str) -> Result<ImageRef> {
    let invalid = |why: String| anyhow!("invalid image reference {input:?}: {why}");
    if !input.contains('/') {
        bail!(
            "invalid image reference {input:?}: write the registry and repository in full, \
             e.g. ghcr.io/OWNER/NAME or localhost:5000/NAME (or oci:DIR for a layout directory)"
        );
    }
    let (name_and_tag, digest) = match input.split_once('@') {
        Some((name, digest)) => (
            name,
            Some(
                digest
                    .parse::<Digest>()
                    .with_context(|| format!("in reference {input:?}"))?,
            ),
        ),
        None => (input, None),
    };
    // A ':' after the last '/' starts the tag; one before it is the host's port.
    let last_slash = name_and_tag.rfind('/').unwrap_or(0);
    let (name, tag) = match name_and_tag.rfind(':') {
        Some(colon) if colon > last_slash => {
            (&name_and_tag[..colon], Some(&name_and_tag[colon + 1..]))
        }
        _ => (name_and_tag, None),
    };
    if let Some(tag) = tag {
        if !is_valid_tag(tag) {
            return Err(invalid(format!(
                "tag {tag:?} must be 1 to 128 letters, digits, '_', '.' or '-', not starting \
                 with '.' or '-'"
            )));
        }
    }
    let (first, rest) = name
        .split_once('/')
        .ok_or_else(|| invalid("no repository after the registry".into()))?;
    let names_a_host = first.contains('.') || first.contains(':') || first == "localhost";
    let (registry, path) = if names_a_host {
        (first, rest)
    } else {
        ("docker.io", name)
    };
    let registry = if registry == "index.docker.io" {
        "docker.io"
    } else {
        registry
    };
    if !is_valid_host(registry) {
        return Err(invalid(format!(
            "{registry:?} is not a registry host (HOST or HOST:PORT)"
        )));
    }
    let path = if registry == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path.to_string()
    };
    if let Some(bad) = path.split('/').find(|c| !is_valid_path_component(c)) {
        return Err(invalid(format!(
            "repository path component {bad:?} must be lowercase letters and digits, \
             separated by '.', '_', '__' or dashes"
        )));
    }
    if registry.len() + 1 + path.len() > 255 {
        return Err(invalid("the name is longer than 255 characters".into()));
    }
    Ok(ImageRef {
        repository: Repository::Registry {
            registry: registry.to_string(),
            name: path,
        },
        tag: tag.map(str::to_string),
        digest,
    })
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`
fn is_valid_tag(tag: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = tag.chars();
    tag.len() <= 128
        && chars.next().is_some_and(word)
        && chars.all(|c| word(c) || c == '.' || c == '-')
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn is_valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !bytes.first().is_some_and(alnum) || !bytes.last().is_some_and(alnum) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(&bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(&bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// A host name or IPv4 address (`[A-Za-z0-9.-]`), or a bracketed IPv6 address, with an
/// optional numeric port.
fn is_valid_host(host: &str) -> bool {
    let (name, port) = if let Some(v6) = host.strip_prefix('[') {
        match v6.split_once(']') {
            Some((addr, rest))
                if !addr.is_empty() && addr.chars().all(|c| c.is_ascii_hexdigit() || c == ':') =>
            {
                match rest.strip_prefix(':') {
                    Some(port) => ("v6", Some(port)),
                    None if rest.is_empty() => ("v6", None),
                    None => return false,
                }
            }
            _ => return false,
        }
    } else {
        match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        }
    };
    let name_ok = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    name_ok && port_ok
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
    fn registry_refs_follow_the_distribution_grammar() {
        let repo = |s: &str| match ImageRef::parse(s).unwrap().repository {
            Repository::Registry { registry, name } => (registry, name),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            repo("acme/app:1.0"),
            ("docker.io".into(), "acme/app".into())
        );
        assert_eq!(
            repo("docker.io/alpine"),
            ("docker.io".into(), "library/alpine".into())
        );
        assert_eq!(
            repo("index.docker.io/acme/app"),
            ("docker.io".into(), "acme/app".into())
        );
        assert_eq!(repo("localhost/app"), ("localhost".into(), "app".into()));
        assert_eq!(repo("[::1]:5000/a/b"), ("[::1]:5000".into(), "a/b".into()));
        assert_eq!(
            repo("ghcr.io/o/a.b_c__d--e/f"),
            ("ghcr.io".into(), "o/a.b_c__d--e/f".into())
        );
        let r = ImageRef::parse("ghcr.io/o/app:v1.2_rc-3").unwrap();
        assert_eq!(r.tag.as_deref(), Some("v1.2_rc-3"));
        let d = format!("sha256:{}", "a".repeat(64));
        let r = ImageRef::parse(&format!("ghcr.io/o/app:v1@{d}")).unwrap();
        assert_eq!(
            (r.tag.as_deref(), r.digest.unwrap().as_str()),
            (Some("v1"), d.as_str())
        );
        for bad in [
            "ghcr.io/o/app:",
            "ghcr.io/o/app:.v1",
            "ghcr.io/o//app",
            "ghcr.io/o/app_",
            "ghcr.io/o/a...b",
            "ghcr.io/o/a___b",
            "ghcr.io:port/o/app",
            "-bad.io/o/app",
            "ghcr.io/o/app@sha256:xyz",
            "ghcr.io/o/app:v1 ",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad} should be refused");
        }
        let long = format!("ghcr.io/{}", "a".repeat(250));
        assert!(ImageRef::parse(&long).is_err());
        let long_tag = format!("ghcr.io/o/app:{}", "t".repeat(129));
        assert!(ImageRef::parse(&long_tag).is_err());
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
        let r = ImageRef::parse(&format!("oci-archive:./rel.tar:v1@{d}")).unwrap();
        assert_eq!(
            r.repository,
            Repository::Archive {
                file: PathBuf::from("./rel.tar")
            }
        );
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.digest.as_ref().map(Digest::as_str), Some(d.as_str()));
        assert_eq!(r.to_string(), format!("oci-archive:./rel.tar:v1@{d}"));
        assert!(r.repository.is_layout());
        assert!(ImageRef::parse("oci-archive:").is_err());
        assert!(names_layout("oci:./x") && names_layout("oci-archive:x.tar"));
        assert!(!names_layout("ghcr.io/o/oci-archive"));
    }

    #[test]
    fn digest_is_required_for_signing() {
        let r = ImageRef::parse("localhost:5000/app:v1").unwrap();
        let err = r.require_digest().unwrap_err().to_string();
        assert!(err.contains("--resolve-tag"), "{err}");
    }
}
