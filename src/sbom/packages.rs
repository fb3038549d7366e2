//! Parsers for the package databases found in an image: os-release, dpkg status (and the
//! distroless `status.d/` variant), Debian machine-readable copyright files, the Alpine apk
//! database, and cargo-auditable dependency data.

use anyhow::{Context, Result};
use serde::Deserialize;

// ---------------------------------------------------------------------------------------
// os-release
// ---------------------------------------------------------------------------------------

/// The fields of `os-release(5)` an SBOM uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OsRelease {
    /// Lower-case identifier: `debian`, `ubuntu`, `alpine`.
    pub id: String,
    pub id_like: Vec<String>,
    pub version_id: Option<String>,
    pub version_codename: Option<String>,
    pub name: Option<String>,
    pub pretty_name: Option<String>,
}

impl OsRelease {
    /// Parses `KEY=value` lines; values may be single- or double-quoted, with shell escapes
    /// inside double quotes. `ID` defaults to `linux`, as the manual page says.
    pub fn parse(text: &str) -> OsRelease {
        let mut os = OsRelease {
            id: "linux".to_string(),
            ..OsRelease::default()
        };
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, raw)) = line.split_once('=') else {
                continue;
            };
            let value = unquote(raw.trim());
            let non_empty = (!value.is_empty()).then(|| value.clone());
            match key.trim() {
                "ID" if !value.is_empty() => os.id = value.to_ascii_lowercase(),
                "ID_LIKE" => {
                    os.id_like = value
                        .split_whitespace()
                        .map(str::to_ascii_lowercase)
                        .collect()
                }
                "VERSION_ID" => os.version_id = non_empty,
                "VERSION_CODENAME" => os.version_codename = non_empty,
                "NAME" => os.name = non_empty,
                "PRETTY_NAME" => os.pretty_name = non_empty,
                _ => {}
            }
        }
        os
    }

    /// Whether this distribution is `id` or says it is like it.
    pub fn is_like(&self, id: &str) -> bool {
        self.id == id || self.id_like.iter().any(|l| l == id)
    }

    /// The purl `distro` qualifier: `ID-VERSION_ID` (`debian-12`, `alpine-3.19.1`), or
    /// `ID-VERSION_CODENAME` for releases without a version number (Debian testing).
    pub fn distro_qualifier(&self) -> Option<String> {
        self.version_id
            .as_ref()
            .or(self.version_codename.as_ref())
            .map(|v| format!("{}-{v}", self.id))
    }
}

fn unquote(raw: &str) -> String {
    let bytes = raw.as_bytes();
    if bytes.len() >= 2 && bytes[0] == b'\'' && bytes[bytes.len() - 1] == b'\'' {
        return raw[1..raw.len() - 1].to_string();
    }
    if bytes.len() >= 2 && bytes[0] == b'"' && bytes[bytes.len() - 1] == b'"' {
        let inner = &raw[1..raw.len() - 1];
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some(e @ ('"' | '\\' | '$' | '`')) => out.push(e),
                    Some(other) => {
                        out.push('\\');
                        out.push(other);
                    }
                    None => out.push('\\'),
                }
            } else {
                out.push(c);
            }
        }
        return out;
    }
    raw.to_string()
}

// ---------------------------------------------------------------------------------------
// deb822 (dpkg status, status.d, DEP-5 copyright)
// ---------------------------------------------------------------------------------------

/// One paragraph of a deb822 file: fields in order, multi-line values joined with `\n`
/// (continuation lines without their leading space; a lone `.` line is an empty line).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stanza {
    pub fields: Vec<(String, String)>,
}

impl Stanza {
    /// A field's value (names compare case-insensitively, as deb822 says).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// A field's first line, trimmed, when not empty.
    pub fn first_line(&self, name: &str) -> Option<&str> {
        self.get(name)
            .and_then(|v| v.lines().next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }
}

/// Splits deb822 text into paragraphs. Lenient: lines that are neither fields nor
/// continuations are skipped, `#` comment lines ignored.
pub fn parse_deb822(text: &str) -> Vec<Stanza> {
    let mut stanzas = Vec::new();
    let mut current = Stanza::default();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.fields.is_empty() {
                stanzas.push(std::mem::take(&mut current));
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some((_, value)) = current.fields.last_mut() {
                let cont = line.trim();
                value.push('\n');
                if cont != "." {
                    value.push_str(cont);
                }
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim();
            if !name.is_empty() && !name.contains(' ') {
                current
                    .fields
                    .push((name.to_string(), value.trim().to_string()));
            }
        }
    }
    if !current.fields.is_empty() {
        stanzas.push(current);
    }
    stanzas
}

/// An installed Debian package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebPackage {
    pub name: String,
    pub version: String,
    pub arch: Option<String>,
    pub source: Option<String>,
    pub maintainer: Option<String>,
    /// The file the package was found in, for the SBOM's evidence.
    pub location: String,
}

/// The installed packages of a dpkg database (`var/lib/dpkg/status`): stanzas whose
/// `Status` says `installed` (`install ok installed`, `hold ok installed`). Distroless
/// `status.d/` files often have no `Status` at all: with `status_required` false, a missing
/// `Status` counts as installed.
pub fn parse_dpkg(text: &str, location: &str, status_required: bool) -> Vec<DebPackage> {
    parse_deb822(text)
        .into_iter()
        .filter_map(|s| {
            let name = s.first_line("Package")?;
            let version = s.first_line("Version")?;
            let installed = match s.first_line("Status") {
                Some(status) => status.split_whitespace().last() == Some("installed"),
                None => !status_required,
            };
            installed.then(|| DebPackage {
                name: name.to_string(),
                version: version.to_string(),
                arch: s.first_line("Architecture").map(str::to_string),
                source: s.first_line("Source").map(str::to_string),
                maintainer: s.first_line("Maintainer").map(str::to_string),
                location: location.to_string(),
            })
        })
        .collect()
}

/// The licence short names of a machine-readable (DEP-5) `debian/copyright` file, in order
/// of first appearance, each once; `None` when the file is not in that format. Compound
/// values (`GPL-2+ or Artistic`, `MIT and BSD-3-clause`) are split into their names; a name
/// `with` an exception is kept whole.
pub fn parse_dep5_licenses(text: &str) -> Option<Vec<String>> {
    let first = text.lines().find(|l| !l.trim().is_empty())?;
    let is_dep5 = first.split_once(':').is_some_and(|(k, v)| {
        k.trim().eq_ignore_ascii_case("Format") && v.contains("copyright-format")
    });
    if !is_dep5 {
        return None;
    }
    let mut names: Vec<String> = Vec::new();
    for stanza in parse_deb822(text) {
        let Some(value) = stanza.first_line("License") else {
            continue;
        };
        for name in split_license_names(value) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    Some(names)
}

fn split_license_names(value: &str) -> Vec<String> {
    let value = value.trim_end_matches(',');
    if value.to_ascii_lowercase().contains(" with ") {
        return vec![value.trim().to_string()];
    }
    let mut out = Vec::new();
    let mut current = Vec::new();
    for word in value.split_whitespace() {
        if word.eq_ignore_ascii_case("or") || word.eq_ignore_ascii_case("and") {
            if !current.is_empty() {
                out.push(current.join(" "));
                current.clear();
            }
        } else {
            current.push(word.trim_matches(|c| c == '(' || c == ')' || c == ','));
        }
    }
    if !current.is_empty() {
        out.push(current.join(" "));
    }
    out.retain(|n| !n.is_empty());
    out
}

/// The SPDX identifier for a Debian (DEP-5) licence short name, when there is an exact one.
/// Names that are SPDX identifiers already are returned as they are.
pub fn dep5_to_spdx(name: &str) -> Option<&'static str> {
    const TABLE: &[(&str, &str)] = &[
        ("GPL-1", "GPL-1.0-only"),
        ("GPL-1+", "GPL-1.0-or-later"),
        ("GPL-2", "GPL-2.0-only"),
        ("GPL-2+", "GPL-2.0-or-later"),
        ("GPL-3", "GPL-3.0-only"),
        ("GPL-3+", "GPL-3.0-or-later"),
        ("LGPL-2", "LGPL-2.0-only"),
        ("LGPL-2+", "LGPL-2.0-or-later"),
        ("LGPL-2.1", "LGPL-2.1-only"),
        ("LGPL-2.1+", "LGPL-2.1-or-later"),
        ("LGPL-3", "LGPL-3.0-only"),
        ("LGPL-3+", "LGPL-3.0-or-later"),
        ("AGPL-3", "AGPL-3.0-only"),
        ("AGPL-3+", "AGPL-3.0-or-later"),
        ("GFDL-1.2", "GFDL-1.2-only"),
        ("GFDL-1.2+", "GFDL-1.2-or-later"),
        ("GFDL-1.3", "GFDL-1.3-only"),
        ("GFDL-1.3+", "GFDL-1.3-or-later"),
        ("Apache-2", "Apache-2.0"),
        ("Apache-2.0", "Apache-2.0"),
        ("Expat", "MIT"),
        ("MIT", "MIT"),
        ("BSD-2-clause", "BSD-2-Clause"),
        ("BSD-3-clause", "BSD-3-Clause"),
        ("BSD-4-clause", "BSD-4-Clause"),
        ("ISC", "ISC"),
        ("Zlib", "Zlib"),
        ("MPL-1.1", "MPL-1.1"),
        ("MPL-2.0", "MPL-2.0"),
        ("Artistic", "Artistic-1.0-Perl"),
        ("Artistic-2.0", "Artistic-2.0"),
        ("CC0-1.0", "CC0-1.0"),
        ("OpenSSL", "OpenSSL"),
        ("Unicode-DFS-2016", "Unicode-DFS-2016"),
        ("BSL-1.0", "BSL-1.0"),
        ("curl", "curl"),
        ("X11", "X11"),
    ];
    TABLE
        .iter()
        .find(|(deb, _)| deb.eq_ignore_ascii_case(name))
        .map(|(_, spdx)| *spdx)
}

// ---------------------------------------------------------------------------------------
// Alpine apk database
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApkPackage {
    pub name: String,
    pub version: String,
    pub arch: Option<String>,
    pub license: Option<String>,
    pub origin: Option<String>,
    pub maintainer: Option<String>,
    pub location: String,
}

/// Parses `lib/apk/db/installed`: paragraphs of `K:value` lines (`P` name, `V` version,
/// `A` architecture, `L` licence, `o` origin, `m` maintainer).
pub fn parse_apk(text: &str, location: &str) -> Vec<ApkPackage> {
    #[derive(Default)]
    struct Partial {
        name: Option<String>,
        version: Option<String>,
        arch: Option<String>,
        license: Option<String>,
        origin: Option<String>,
        maintainer: Option<String>,
    }
    let mut out = Vec::new();
    let mut flush = |p: &mut Partial| {
        let p = std::mem::take(p);
        if let (Some(name), Some(version)) = (p.name, p.version) {
            out.push(ApkPackage {
                name,
                version,
                arch: p.arch,
                license: p.license,
                origin: p.origin,
                maintainer: p.maintainer,
                location: location.to_string(),
            });
        }
    };
    let mut current = Partial::default();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            flush(&mut current);
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        let value = (!value.is_empty()).then(|| value.to_string());
        match key {
            "P" => current.name = value,
            "V" => current.version = value,
            "A" => current.arch = value,
            "L" => current.license = value,
            "o" => current.origin = value,
            "m" => current.maintainer = value,
            _ => {}
        }
    }
    flush(&mut current);
    out
}

// ---------------------------------------------------------------------------------------
// cargo-auditable
// ---------------------------------------------------------------------------------------

/// One crate of a binary's cargo-auditable data (the `.dep-v0` section's JSON).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AuditablePackage {
    pub name: String,
    pub version: String,
    /// `crates.io`, `git`, `local`, `registry`, or something newer.
    #[serde(default)]
    pub source: Option<String>,
    /// `build` for build-time-only crates (build scripts, proc macros); absent for runtime.
    #[serde(default)]
    pub kind: Option<String>,
    /// Indexes into the same package list.
    #[serde(default)]
    pub dependencies: Vec<usize>,
    /// The crate the binary was built from.
    #[serde(default)]
    pub root: bool,
}

#[derive(Debug, Clone, Deserialize)]
struct AuditableData {
    packages: Vec<AuditablePackage>,
}

/// Parses the JSON `cargo auditable` embeds (already decompressed).
pub fn parse_auditable(json: &str) -> Result<Vec<AuditablePackage>> {
    let data: AuditableData =
        serde_json::from_str(json).context("cargo-auditable data is malformed")?;
    Ok(data.packages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_quotes_and_defaults() {
        let os = OsRelease::parse(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
             VERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n\
             # comment\nHOME_URL='https://www.debian.org/'\n",
        );
        assert_eq!(os.id, "debian");
        assert_eq!(os.version_id.as_deref(), Some("12"));
        assert_eq!(os.name.as_deref(), Some("Debian GNU/Linux"));
        assert_eq!(
            os.pretty_name.as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(os.distro_qualifier().as_deref(), Some("debian-12"));

        let ubuntu = OsRelease::parse("ID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"22.04\"\n");
        assert!(ubuntu.is_like("debian"));
        assert_eq!(ubuntu.distro_qualifier().as_deref(), Some("ubuntu-22.04"));

        let alpine = OsRelease::parse("NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\n");
        assert_eq!(alpine.distro_qualifier().as_deref(), Some("alpine-3.19.1"));

        let testing = OsRelease::parse("ID=debian\nVERSION_CODENAME=trixie\n");
        assert_eq!(testing.distro_qualifier().as_deref(), Some("debian-trixie"));

        let empty = OsRelease::parse("");
        assert_eq!(empty.id, "linux");
        assert_eq!(empty.distro_qualifier(), None);

        assert_eq!(unquote(r#""a \"b\" \$c \\ d""#), r#"a "b" $c \ d"#);
    }

    const STATUS: &str = "\
Package: hostname
Status: install ok installed
Priority: required
Architecture: amd64
Version: 3.23+nmu1
Description: utility to set/show the host name or domain name
 This package provides commands which can be used to display the system's
 .
 DNS name.

Package: removed-one
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: libfoo
Status: hold ok installed
Source: foo (2.0-1)
Architecture: amd64
Version: 1:2.3+dfsg-1
Maintainer: Someone <someone@example.org>

Package: half-installed
Status: install reinstreq half-installed
Version: 0.1
";

    #[test]
    fn dpkg_status_keeps_only_installed() {
        let pkgs = parse_dpkg(STATUS, "var/lib/dpkg/status", true);
        let names: Vec<_> = pkgs.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["hostname", "libfoo"]);
        assert_eq!(pkgs[0].version, "3.23+nmu1");
        assert_eq!(pkgs[0].arch.as_deref(), Some("amd64"));
        assert_eq!(pkgs[1].version, "1:2.3+dfsg-1");
        assert_eq!(pkgs[1].source.as_deref(), Some("foo (2.0-1)"));
        assert_eq!(
            pkgs[1].maintainer.as_deref(),
            Some("Someone <someone@example.org>")
        );

        let stanzas = parse_deb822(STATUS);
        assert_eq!(stanzas.len(), 4);
        assert_eq!(
            stanzas[0].get("description").unwrap(),
            "utility to set/show the host name or domain name\n\
             This package provides commands which can be used to display the system's\n\nDNS name."
        );
    }

    #[test]
    fn distroless_status_d_without_status_field() {
        let text = "Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n";
        assert_eq!(parse_dpkg(text, "x", true), vec![]);
        let pkgs = parse_dpkg(text, "var/lib/dpkg/status.d/tzdata", false);
        assert_eq!(pkgs.len(), 1);
        assert_eq!(pkgs[0].name, "tzdata");
        // An explicit non-installed status is still honoured.
        let text = "Package: x\nVersion: 1\nStatus: purge ok not-installed\n";
        assert!(parse_dpkg(text, "x", false).is_empty());
    }

    #[test]
    fn dep5_licenses() {
        let text = "\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: thing

Files: *
Copyright: 2001 Somebody
License: GPL-2+
 This program is free software...

Files: lib/*
License: GPL-2+ or Artistic

Files: x/*
License: MIT and BSD-3-clause

Files: y/*
License: GPL-2+ with OpenSSL exception

License: Artistic
 full text
";
        assert_eq!(
            parse_dep5_licenses(text).unwrap(),
            [
                "GPL-2+",
                "Artistic",
                "MIT",
                "BSD-3-clause",
                "GPL-2+ with OpenSSL exception"
            ]
        );
        assert_eq!(parse_dep5_licenses("This is free software.\n"), None);
        assert_eq!(dep5_to_spdx("GPL-2"), Some("GPL-2.0-only"));
        assert_eq!(dep5_to_spdx("gpl-2+"), Some("GPL-2.0-or-later"));
        assert_eq!(dep5_to_spdx("Expat"), Some("MIT"));
        assert_eq!(dep5_to_spdx("public-domain"), None);
    }

    #[test]
    fn apk_database() {
        let text = "\
C:Q1abc=
P:musl
V:1.2.4_git20230717-r4
A:x86_64
S:383152
I:622592
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Timo Teräs <timo.teras@iki.fi>
F:lib
R:ld-musl-x86_64.so.1

P:busybox
V:1.36.1-r15
A:x86_64
L:GPL-2.0-only
F:bin
R:busybox

V:no-name-is-skipped
";
        let pkgs = parse_apk(text, "lib/apk/db/installed");
        assert_eq!(pkgs.len(), 2);
        assert_eq!(pkgs[0].name, "musl");
        assert_eq!(pkgs[0].version, "1.2.4_git20230717-r4");
        assert_eq!(pkgs[0].arch.as_deref(), Some("x86_64"));
        assert_eq!(pkgs[0].license.as_deref(), Some("MIT"));
        assert_eq!(pkgs[0].origin.as_deref(), Some("musl"));
        assert_eq!(pkgs[1].name, "busybox");
        assert_eq!(pkgs[1].license.as_deref(), Some("GPL-2.0-only"));
    }

    #[test]
    fn auditable_json() {
        let json = r#"{"packages":[
            {"name":"app","version":"0.1.0","source":"local","dependencies":[1,2],"root":true},
            {"name":"serde","version":"1.0.197","source":"crates.io"},
            {"name":"cc","version":"1.0.90","source":"crates.io","kind":"build"}]}"#;
        let pkgs = parse_auditable(json).unwrap();
        assert_eq!(pkgs.len(), 3);
        assert!(pkgs[0].root);
        assert_eq!(pkgs[0].dependencies, [1, 2]);
        assert_eq!(pkgs[2].kind.as_deref(), Some("build"));
        assert!(parse_auditable("{}").is_err());
    }
}
