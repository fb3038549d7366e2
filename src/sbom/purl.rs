//! Package URLs (purls) for the components an SBOM lists.
//!
//! Built by hand rather than with the `packageurl` crate because the encoding wanted here
//! is stricter than that crate's: every character outside the RFC 3986 unreserved set
//! (`A-Z a-z 0-9 - . _ ~`) is percent-encoded in names and versions, so a Debian version
//! `1:2.3+dfsg-1` becomes `1%3A2.3%2Bdfsg-1` (the form Trivy and most scanners emit and
//! match on). Qualifier values keep `/` readable (`repository_url=ghcr.io/acme/app`), as in
//! the purl specification's own examples. Qualifiers are sorted by key, as the specification
//! requires for the canonical form.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A package URL under construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purl {
    ty: &'static str,
    namespace: Option<String>,
    name: String,
    version: Option<String>,
    qualifiers: BTreeMap<&'static str, String>,
}

impl Purl {
    pub fn new(ty: &'static str, name: &str) -> Purl {
        Purl {
            ty,
            namespace: None,
            name: name.to_string(),
            version: None,
            qualifiers: BTreeMap::new(),
        }
    }

    pub fn namespace(mut self, namespace: &str) -> Purl {
        self.namespace = Some(namespace.to_string());
        self
    }

    pub fn version(mut self, version: &str) -> Purl {
        self.version = Some(version.to_string());
        self
    }

    /// Adds a qualifier; an empty value is left out (the specification forbids them).
    pub fn qualifier(mut self, key: &'static str, value: &str) -> Purl {
        if !value.is_empty() {
            self.qualifiers.insert(key, value.to_string());
        }
        self
    }

    /// Adds a qualifier when `value` is given and not empty.
    pub fn qualifier_opt(self, key: &'static str, value: Option<&str>) -> Purl {
        match value {
            Some(v) => self.qualifier(key, v),
            None => self,
        }
    }
}

impl std::fmt::Display for Purl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pkg:{}/", self.ty)?;
        if let Some(ns) = &self.namespace {
            for segment in ns.split('/').filter(|s| !s.is_empty()) {
                write!(f, "{}/", encode(segment, false))?;
            }
        }
        f.write_str(&encode(&self.name, false))?;
        if let Some(v) = &self.version {
            write!(f, "@{}", encode(v, false))?;
        }
        let mut sep = '?';
        for (key, value) in &self.qualifiers {
            write!(f, "{sep}{key}={}", encode(value, true))?;
            sep = '&';
        }
        Ok(())
    }
}

/// Percent-encodes everything outside the RFC 3986 unreserved characters (and `/` too
/// unless `keep_slash`), UTF-8 bytes included.
pub fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && b == b'/');
        if keep {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn debian_version_with_epoch_and_plus_is_encoded() {
        let purl = Purl::new("deb", "libfoo")
            .namespace("debian")
            .version("1:2.3+dfsg-1")
            .qualifier("distro", "debian-12")
            .qualifier("arch", "amd64")
            .to_string();
        assert_eq!(
            purl,
            "pkg:deb/debian/libfoo@1%3A2.3%2Bdfsg-1?arch=amd64&distro=debian-12"
        );
        // An independent parser decodes it back to the original version.
        let parsed = packageurl::PackageUrl::from_str(&purl).unwrap();
        assert_eq!(parsed.version(), Some("1:2.3+dfsg-1"));
        assert_eq!(parsed.namespace(), Some("debian"));
        assert_eq!(
            parsed.qualifiers().get("arch").map(|v| v.as_ref()),
            Some("amd64")
        );
    }

    #[test]
    fn tilde_and_dots_stay_readable() {
        let purl = Purl::new("deb", "debianutils")
            .namespace("debian")
            .version("5.7-0.5~deb12u1")
            .qualifier("arch", "amd64")
            .to_string();
        assert_eq!(
            purl,
            "pkg:deb/debian/debianutils@5.7-0.5~deb12u1?arch=amd64"
        );
    }

    #[test]
    fn apk_cargo_and_oci_forms() {
        assert_eq!(
            Purl::new("apk", "musl")
                .namespace("alpine")
                .version("1.2.4_git20230717-r4")
                .qualifier("arch", "x86_64")
                .qualifier("distro", "alpine-3.19.1")
                .to_string(),
            "pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=x86_64&distro=alpine-3.19.1"
        );
        assert_eq!(
            Purl::new("cargo", "serde").version("1.0.197").to_string(),
            "pkg:cargo/serde@1.0.197"
        );
        let oci = Purl::new("oci", "app")
            .version("sha256:abcd")
            .qualifier("repository_url", "ghcr.io/acme/app")
            .qualifier_opt("tag", None)
            .to_string();
        assert_eq!(
            oci,
            "pkg:oci/app@sha256%3Aabcd?repository_url=ghcr.io/acme/app"
        );
        let parsed = packageurl::PackageUrl::from_str(&oci).unwrap();
        assert_eq!(parsed.version(), Some("sha256:abcd"));
    }

    #[test]
    fn empty_qualifiers_are_dropped_and_odd_bytes_encoded() {
        assert_eq!(
            Purl::new("generic", "a b@c/d")
                .qualifier("x", "")
                .to_string(),
            "pkg:generic/a%20b%40c%2Fd"
        );
        assert_eq!(encode("é", false), "%C3%A9");
    }
}
