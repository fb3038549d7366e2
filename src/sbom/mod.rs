//! CycloneDX 1.5 SBOMs generated from an image's layers.
//!
//! The layers are applied in order as a sparse filesystem ([`layers`]) that keeps only what
//! package discovery reads; the package databases found there ([`packages`]) become the
//! components, each with a package URL ([`purl`]). The document is built and serialised
//! with the `cyclonedx-bom` crate and checked with its validator before it is returned.

pub mod layers;
pub mod packages;
pub mod purl;

use crate::oci::{Descriptor, Digest, Manifest, Platform};
use crate::store::{ManifestRef, Store};
use anyhow::{anyhow, bail, Context, Result};
use cyclonedx_bom::external_models::normalized_string::NormalizedString;
use cyclonedx_bom::external_models::spdx::{SpdxExpression, SpdxIdentifier};
use cyclonedx_bom::models::component::{
    Classification, Component, ComponentEvidence, Components, Occurrence, Occurrences,
};
use cyclonedx_bom::models::dependency::{Dependencies, Dependency};
use cyclonedx_bom::models::license::{License, LicenseChoice, Licenses};
use cyclonedx_bom::models::metadata::Metadata;
use cyclonedx_bom::models::property::{Properties, Property};
use cyclonedx_bom::models::tool::Tools;
use cyclonedx_bom::prelude::{Bom, Purl as CdxPurl, SpecVersion, Validate};
use futures_util::StreamExt;
use layers::{Filesystem, Node};
use packages::{ApkPackage, AuditablePackage, DebPackage, OsRelease};
use purl::Purl;
use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

/// What the SBOM describes.
#[derive(Debug, Clone)]
pub struct SbomRequest {
    /// The image's repository as the user named it: `ghcr.io/acme/app`, or `oci:DIR`.
    pub image_name: String,
    /// The digest the SBOM is about: the image manifest's, or the index's when the SBOM
    /// describes one platform of a multi-platform image.
    pub manifest_digest: Digest,
    /// The platform of the image manifest, when known (else read from its config).
    pub platform: Option<Platform>,
}

/// Builds a CycloneDX 1.5 JSON SBOM from the layers of image manifest `manifest` in `store`.
pub async fn generate(
    store: &dyn Store,
    manifest: &Descriptor,
    request: &SbomRequest,
) -> Result<Vec<u8>> {
    let raw = store
        .get_manifest(ManifestRef::Digest(&manifest.digest))
        .await?
        .ok_or_else(|| {
            anyhow!(
                "manifest {} not found in {}",
                manifest.digest,
                store.repository()
            )
        })?;
    let image = match raw.parse()? {
        Manifest::Image(image) => image,
        Manifest::Index(_) => bail!(
            "{} is an index, not an image manifest: generate an SBOM for one platform's manifest",
            manifest.digest
        ),
    };

    let platform = match request
        .platform
        .clone()
        .or_else(|| manifest.platform.clone())
    {
        Some(p) => Some(p),
        None => read_config_platform(store, &image.config).await,
    };

    let mut fs = Filesystem::default();
    for (i, layer) in image.layers.iter().enumerate() {
        if crate::oci::media::is_foreign_layer(&layer.media_type) {
            continue; // non-distributable (Windows base) layers: not ours to read
        }
        fs = layers::apply_from_store(store, layer, fs)
            .await
            .with_context(|| format!("reading layer {} ({})", i + 1, layer.digest))?;
    }

    let inventory = Inventory::discover(&fs)?;
    let bom = build_bom(&inventory, request, platform.as_ref())?;
    serialize(bom)
}

/// The platform an image config declares, if it is an image config that says.
async fn read_config_platform(store: &dyn Store, config: &Descriptor) -> Option<Platform> {
    const CONFIG_CAP: u64 = 4 << 20;
    if config.size > CONFIG_CAP {
        return None;
    }
    let mut stream = store.open_blob(config).await.ok()?;
    let mut bytes = Vec::with_capacity(config.size as usize);
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.ok()?);
        if bytes.len() as u64 > CONFIG_CAP {
            return None;
        }
    }
    #[derive(serde::Deserialize)]
    struct Config {
        architecture: Option<String>,
        os: Option<String>,
        variant: Option<String>,
    }
    let c: Config = serde_json::from_slice(&bytes).ok()?;
    Some(Platform {
        architecture: c.architecture.filter(|a| !a.is_empty())?,
        os: c.os.filter(|o| !o.is_empty())?,
        variant: c.variant.filter(|v| !v.is_empty()),
        os_version: None,
    })
}

// ---------------------------------------------------------------------------------------
// Discovery
// ---------------------------------------------------------------------------------------

/// Everything found in the image's filesystem.
#[derive(Debug, Default)]
struct Inventory {
    os: Option<OsRelease>,
    debs: Vec<DebPackage>,
    /// Licence names per Debian package, from its copyright file.
    deb_licenses: BTreeMap<String, Vec<String>>,
    apks: Vec<ApkPackage>,
    /// Per binary path: its crates.
    binaries: Vec<(String, Vec<AuditablePackage>)>,
}

impl Inventory {
    fn discover(fs: &Filesystem) -> Result<Inventory> {
        let mut inv = Inventory::default();
        let os_text = fs
            .text("etc/os-release")
            .or_else(|| fs.text("usr/lib/os-release"));
        inv.os = os_text.map(|t| OsRelease::parse(&String::from_utf8_lossy(t)));

        if let Some(status) = fs.text("var/lib/dpkg/status") {
            inv.debs.extend(packages::parse_dpkg(
                &String::from_utf8_lossy(status),
                "var/lib/dpkg/status",
                true,
            ));
        }
        for (path, node) in fs.children("var/lib/dpkg/status.d") {
            if let Node::Text(bytes) = node {
                inv.debs.extend(packages::parse_dpkg(
                    &String::from_utf8_lossy(bytes),
                    path,
                    false,
                ));
            }
        }
        for path in ["lib/apk/db/installed", "usr/lib/apk/db/installed"] {
            if let Some(db) = fs.text(path) {
                inv.apks
                    .extend(packages::parse_apk(&String::from_utf8_lossy(db), path));
            }
        }
        for (path, node) in fs.iter() {
            match node {
                Node::Licenses(names) => {
                    if let Some(pkg) = path
                        .strip_prefix("usr/share/doc/")
                        .and_then(|r| r.strip_suffix("/copyright"))
                    {
                        inv.deb_licenses.insert(pkg.to_string(), names.clone());
                    }
                }
                Node::Cargo(json) => {
                    // Malformed data in one binary is not worth failing the whole SBOM.
                    if let Ok(crates) = packages::parse_auditable(json) {
                        inv.binaries.push((path.to_string(), crates));
                    }
                }
                _ => {}
            }
        }
        Ok(inv)
    }
}

// ---------------------------------------------------------------------------------------
// The BOM
// ---------------------------------------------------------------------------------------

/// Components keyed by bom-ref (their purl), so duplicates merge.
#[derive(Default)]
struct ComponentSet {
    order: Vec<String>,
    by_ref: BTreeMap<String, Component>,
}

impl ComponentSet {
    /// Adds a component, or merges its evidence locations into the one already there.
    fn add(&mut self, component: Component) {
        let key = component
            .bom_ref
            .clone()
            .expect("components have a bom-ref");
        match self.by_ref.get_mut(&key) {
            Some(existing) => {
                let new = occurrences(&component);
                if let Some(evidence) = existing.evidence.as_mut() {
                    let list = evidence.occurrences.get_or_insert(Occurrences(Vec::new()));
                    for occ in new {
                        if !list.0.iter().any(|o| o.location == occ.location) {
                            list.0.push(occ);
                        }
                    }
                }
            }
            None => {
                self.order.push(key.clone());
                self.by_ref.insert(key, component);
            }
        }
    }

    fn into_vec(mut self) -> Vec<Component> {
        self.order
            .iter()
            .filter_map(|k| self.by_ref.remove(k))
            .collect()
    }
}

fn occurrences(component: &Component) -> Vec<Occurrence> {
    component
        .evidence
        .as_ref()
        .and_then(|e| e.occurrences.as_ref())
        .map(|o| o.0.clone())
        .unwrap_or_default()
}

fn component(
    classification: Classification,
    name: &str,
    version: &str,
    purl: &str,
    location: Option<&str>,
) -> Component {
    let mut c = Component::new(classification, name, version, Some(purl.to_string()));
    c.purl = Some(CdxPurl::from_str(purl).expect("infallible"));
    if let Some(location) = location {
        c.evidence = Some(ComponentEvidence {
            licenses: None,
            copyright: None,
            occurrences: Some(Occurrences(vec![Occurrence::new(&format!("/{location}"))])),
            callstack: None,
            identity: None,
        });
    }
    c
}

fn property(name: &str, value: &str) -> Property {
    Property::new(name, value)
}

/// A licence as CycloneDX wants it: an SPDX identifier when it is one (checked against the
/// SPDX list), else a name.
fn license_entry(name: &str) -> LicenseChoice {
    match SpdxIdentifier::try_from(name.to_string()) {
        Ok(_) => LicenseChoice::License(License::license_id(name)),
        Err(_) => LicenseChoice::License(License::named_license(name)),
    }
}

/// An apk `L:` value: one SPDX identifier, an SPDX expression, or failing both a name.
fn apk_licenses(value: &str) -> Licenses {
    let value = value.trim();
    if SpdxIdentifier::try_from(value.to_string()).is_ok() {
        return Licenses(vec![LicenseChoice::License(License::license_id(value))]);
    }
    match SpdxExpression::try_from(value.to_string()) {
        Ok(expr) => Licenses(vec![LicenseChoice::Expression(expr)]),
        Err(_) => Licenses(vec![LicenseChoice::License(License::named_license(value))]),
    }
}

fn deb_licenses(names: &[String]) -> Option<Licenses> {
    let mut seen = BTreeSet::new();
    let list: Vec<LicenseChoice> = names
        .iter()
        .map(|n| {
            packages::dep5_to_spdx(n)
                .map(str::to_string)
                .unwrap_or_else(|| n.clone())
        })
        .filter(|n| seen.insert(n.clone()))
        .map(|n| license_entry(&n))
        .collect();
    (!list.is_empty()).then_some(Licenses(list))
}

/// The purl namespace for Debian packages, and the `distro` qualifier when the OS is it.
fn deb_namespace(os: Option<&OsRelease>) -> (String, Option<String>) {
    match os {
        Some(os) if os.id == "debian" || os.id == "ubuntu" => {
            (os.id.clone(), os.distro_qualifier())
        }
        Some(os) if os.is_like("ubuntu") => ("ubuntu".to_string(), None),
        Some(os) if os.is_like("debian") => ("debian".to_string(), None),
        _ => ("debian".to_string(), None),
    }
}

/// The purl namespace for apk packages, and the `distro` qualifier when the OS is it.
fn apk_namespace(os: Option<&OsRelease>) -> (String, Option<String>) {
    match os {
        Some(os) if !is_deb_family(os) && os.id != "linux" => {
            (os.id.clone(), os.distro_qualifier())
        }
        _ => ("alpine".to_string(), None),
    }
}

fn is_deb_family(os: &OsRelease) -> bool {
    os.is_like("debian") || os.is_like("ubuntu")
}

/// `pkg:oci/NAME@DIGEST?repository_url=REPO[&arch=ARCH]` for the image.
fn image_purl(image_name: &str, digest: &Digest, platform: Option<&Platform>) -> String {
    let (repository_url, name) = match image_name.strip_prefix("oci:") {
        Some(dir) => {
            // oci:DIR[:REF]: no registry; the name is the directory's.
            let dir = dir.split('@').next().unwrap_or(dir);
            let dir = match dir.rsplit_once(':') {
                Some((d, r)) if !d.is_empty() && !r.contains('/') => d,
                _ => dir,
            };
            let name = dir
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .filter(|n| !n.is_empty() && *n != "." && *n != "..")
                .unwrap_or("image");
            (None, name.to_string())
        }
        None => {
            let repo = image_name.split('@').next().unwrap_or(image_name);
            let repo = match repo.rsplit_once(':') {
                Some((r, tag)) if !tag.contains('/') => r,
                _ => repo,
            };
            let name = repo.rsplit('/').next().unwrap_or(repo).to_string();
            (Some(repo.to_string()), name)
        }
    };
    Purl::new("oci", &name.to_ascii_lowercase())
        .version(digest.as_str())
        .qualifier_opt("repository_url", repository_url.as_deref())
        .qualifier_opt("arch", platform.map(|p| p.architecture.as_str()))
        .to_string()
}

fn build_bom(inv: &Inventory, request: &SbomRequest, platform: Option<&Platform>) -> Result<Bom> {
    let mut set = ComponentSet::default();
    let os = inv.os.as_ref();
    if let Some(os) = os {
        set.add(os_component(os));
    }
    add_debs(&mut set, inv, os);
    add_apks(&mut set, inv, os);
    let crate_edges = add_crates(&mut set, inv);
    let (image_ref, image) = image_component(request, platform);

    // Dependencies: the image contains every package found; crates depend on crates.
    let components = set.into_vec();
    let mut dependencies = vec![Dependency {
        dependency_ref: image_ref,
        dependencies: components
            .iter()
            .filter_map(|c| c.bom_ref.clone())
            .collect(),
    }];
    for (from, to) in crate_edges {
        dependencies.push(Dependency {
            dependency_ref: from,
            dependencies: to.into_iter().collect(),
        });
    }

    let mut tool = Component::new(
        Classification::Application,
        "wharf",
        env!("CARGO_PKG_VERSION"),
        None,
    );
    tool.description = Some(NormalizedString::new(env!("CARGO_PKG_DESCRIPTION")));

    let mut metadata = Metadata::new().map_err(|e| anyhow!("cannot read the clock: {e}"))?;
    metadata.tools = Some(Tools::Object {
        services: None,
        components: Some(Components(vec![tool])),
    });
    metadata.component = Some(image);

    Ok(Bom {
        spec_version: SpecVersion::V1_5,
        metadata: Some(metadata),
        components: Some(Components(components)),
        dependencies: Some(Dependencies(dependencies)),
        ..Bom::default()
    })
}

/// The operating system, from os-release.
fn os_component(os: &OsRelease) -> Component {
    let version = os.version_id.clone().unwrap_or_default();
    let bom_ref = format!("os:{}@{}", os.id, version);
    let mut c = Component::new(
        Classification::OperatingSystem,
        &os.id,
        &version,
        Some(bom_ref),
    );
    if version.is_empty() {
        c.version = None;
    }
    c.description = os
        .pretty_name
        .as_deref()
        .or(os.name.as_deref())
        .map(NormalizedString::new);
    let mut props = Vec::new();
    if let Some(name) = &os.name {
        props.push(property("wharf:os:name", name));
    }
    if let Some(codename) = &os.version_codename {
        props.push(property("wharf:os:codename", codename));
    }
    if !props.is_empty() {
        c.properties = Some(Properties(props));
    }
    c
}

/// Debian packages (dpkg status and distroless status.d).
fn add_debs(set: &mut ComponentSet, inv: &Inventory, os: Option<&OsRelease>) {
    let (deb_ns, deb_distro) = deb_namespace(os);
    let mut debs: Vec<&DebPackage> = inv.debs.iter().collect();
    debs.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    for p in debs {
        let purl = Purl::new("deb", &p.name)
            .namespace(&deb_ns)
            .version(&p.version)
            .qualifier_opt("arch", p.arch.as_deref())
            .qualifier_opt("distro", deb_distro.as_deref())
            .to_string();
        let mut c = component(
            Classification::Library,
            &p.name,
            &p.version,
            &purl,
            Some(&p.location),
        );
        c.publisher = p.maintainer.as_deref().map(NormalizedString::new);
        c.licenses = inv.deb_licenses.get(&p.name).and_then(|n| deb_licenses(n));
        if let Some(source) = &p.source {
            c.properties = Some(Properties(vec![property("wharf:deb:source", source)]));
        }
        set.add(c);
    }
}

/// Alpine packages (apk's installed database).
fn add_apks(set: &mut ComponentSet, inv: &Inventory, os: Option<&OsRelease>) {
    let (apk_ns, apk_distro) = apk_namespace(os);
    let mut apks: Vec<&ApkPackage> = inv.apks.iter().collect();
    apks.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    for p in apks {
        let purl = Purl::new("apk", &p.name)
            .namespace(&apk_ns)
            .version(&p.version)
            .qualifier_opt("arch", p.arch.as_deref())
            .qualifier_opt("distro", apk_distro.as_deref())
            .to_string();
        let mut c = component(
            Classification::Library,
            &p.name,
            &p.version,
            &purl,
            Some(&p.location),
        );
        c.publisher = p.maintainer.as_deref().map(NormalizedString::new);
        c.licenses = p.license.as_deref().map(apk_licenses);
        if let Some(origin) = &p.origin {
            c.properties = Some(Properties(vec![property("wharf:apk:origin", origin)]));
        }
        set.add(c);
    }
}

/// Rust crates from cargo-auditable data; their dependency edges, by purl.
fn add_crates(set: &mut ComponentSet, inv: &Inventory) -> BTreeMap<String, BTreeSet<String>> {
    let mut crate_edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (binary, crates) in &inv.binaries {
        let purls: Vec<String> = crates
            .iter()
            .map(|k| Purl::new("cargo", &k.name).version(&k.version).to_string())
            .collect();
        let runtime = |k: &AuditablePackage| k.kind.as_deref() != Some("build");
        for (k, purl) in crates.iter().zip(&purls) {
            if !runtime(k) {
                continue; // build scripts and proc macros: not in the binary
            }
            let kind = if k.root {
                Classification::Application
            } else {
                Classification::Library
            };
            let mut c = component(kind, &k.name, &k.version, purl, Some(binary));
            if let Some(source) = k.source.as_deref().filter(|s| *s != "crates.io") {
                c.properties = Some(Properties(vec![property("wharf:cargo:source", source)]));
            }
            set.add(c);
            let edges = crate_edges.entry(purl.clone()).or_default();
            for &d in &k.dependencies {
                if let (Some(dep), Some(target)) = (crates.get(d), purls.get(d)) {
                    if runtime(dep) && target != purl {
                        edges.insert(target.clone());
                    }
                }
            }
        }
    }
    crate_edges
}

/// The image itself, and its purl (its BOM reference).
fn image_component(request: &SbomRequest, platform: Option<&Platform>) -> (String, Component) {
    let image_ref = image_purl(&request.image_name, &request.manifest_digest, platform);
    let mut image = Component::new(
        Classification::Container,
        &request.image_name,
        request.manifest_digest.as_str(),
        Some(image_ref.clone()),
    );
    image.purl = Some(CdxPurl::from_str(&image_ref).expect("infallible"));
    if let Some(p) = platform {
        let mut props = vec![
            property("wharf:platform", &p.to_string()),
            property("wharf:platform:os", &p.os),
            property("wharf:platform:architecture", &p.architecture),
        ];
        if let Some(v) = &p.variant {
            props.push(property("wharf:platform:variant", v));
        }
        if let Some(v) = &p.os_version {
            props.push(property("wharf:platform:os.version", v));
        }
        image.properties = Some(Properties(props));
    }
    (image_ref, image)
}

/// Checks the BOM with the crate's validator (a failure is a bug here, not bad input) and
/// writes spec 1.5 JSON.
fn serialize(bom: Bom) -> Result<Vec<u8>> {
    let result = bom.validate_version(SpecVersion::V1_5);
    if result.has_errors() {
        bail!("generated SBOM does not validate: {result:?}");
    }
    let mut out = Vec::new();
    bom.output_as_json(&mut out, SpecVersion::V1_5)
        .map_err(|e| anyhow!("cannot serialise the SBOM: {e}"))?;
    out.push(b'\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sbom::layers::tests::tar_of;

    fn fs_of(layers: &[Vec<u8>]) -> Filesystem {
        let mut fs = Filesystem::default();
        for l in layers {
            fs.apply_layer(&l[..]).unwrap();
        }
        fs
    }

    fn request() -> SbomRequest {
        SbomRequest {
            image_name: "ghcr.io/acme/app".into(),
            manifest_digest: Digest::of(b"manifest"),
            platform: Some(Platform::parse("linux/arm64/v8").unwrap()),
        }
    }

    fn to_json(bom: Bom) -> serde_json::Value {
        serde_json::from_slice(&serialize(bom).unwrap()).unwrap()
    }

    /// A minimal little-endian ELF64 file whose only section is `.dep-v0` with `data`.
    pub(crate) fn elf_with_dep_v0(data: &[u8]) -> Vec<u8> {
        let shstrtab = b"\0.dep-v0\0.shstrtab\0";
        let data_off = 64u64;
        let strtab_off = data_off + data.len() as u64;
        let mut shoff = strtab_off + shstrtab.len() as u64;
        shoff = shoff.div_ceil(8) * 8;
        let mut f = Vec::new();
        f.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        f.extend_from_slice(&0x3eu16.to_le_bytes()); // x86-64
        f.extend_from_slice(&1u32.to_le_bytes());
        f.extend_from_slice(&0u64.to_le_bytes()); // entry
        f.extend_from_slice(&0u64.to_le_bytes()); // phoff
        f.extend_from_slice(&shoff.to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes()); // flags
        f.extend_from_slice(&64u16.to_le_bytes()); // ehsize
        f.extend_from_slice(&56u16.to_le_bytes()); // phentsize
        f.extend_from_slice(&0u16.to_le_bytes()); // phnum
        f.extend_from_slice(&64u16.to_le_bytes()); // shentsize
        f.extend_from_slice(&3u16.to_le_bytes()); // shnum
        f.extend_from_slice(&2u16.to_le_bytes()); // shstrndx
        assert_eq!(f.len(), 64);
        f.extend_from_slice(data);
        f.extend_from_slice(shstrtab);
        f.resize(shoff as usize, 0);
        let section = |f: &mut Vec<u8>, name: u32, ty: u32, off: u64, size: u64| {
            f.extend_from_slice(&name.to_le_bytes());
            f.extend_from_slice(&ty.to_le_bytes());
            f.extend_from_slice(&0u64.to_le_bytes()); // flags
            f.extend_from_slice(&0u64.to_le_bytes()); // addr
            f.extend_from_slice(&off.to_le_bytes());
            f.extend_from_slice(&size.to_le_bytes());
            f.extend_from_slice(&0u32.to_le_bytes()); // link
            f.extend_from_slice(&0u32.to_le_bytes()); // info
            f.extend_from_slice(&1u64.to_le_bytes()); // addralign
            f.extend_from_slice(&0u64.to_le_bytes()); // entsize
        };
        section(&mut f, 0, 0, 0, 0);
        section(&mut f, 1, 1, data_off, data.len() as u64);
        section(&mut f, 9, 3, strtab_off, shstrtab.len() as u64);
        f
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    const AUDIT_JSON: &str = r#"{"packages":[
        {"name":"demo","version":"0.1.0","source":"local","dependencies":[1,2],"root":true},
        {"name":"serde","version":"1.0.197","source":"crates.io","dependencies":[2]},
        {"name":"serde_derive","version":"1.0.197","source":"crates.io","kind":"build"}]}"#;

    #[test]
    fn cargo_auditable_binary_is_found() {
        let elf = elf_with_dep_v0(&zlib(AUDIT_JSON.as_bytes()));
        let plain_elf = elf_with_dep_v0(b"");
        let fs = fs_of(&[tar_of(
            &[
                ("usr/local/bin/demo", Some(&elf)),
                ("usr/local/bin/other", Some(&plain_elf)),
                ("usr/local/bin/script", Some(b"#!/bin/sh\necho hello, this is not ELF at all....................................\n")),
            ],
            true,
        )]);
        let inv = Inventory::discover(&fs).unwrap();
        assert_eq!(inv.binaries.len(), 1);
        assert_eq!(inv.binaries[0].0, "usr/local/bin/demo");
        let bom = to_json(build_bom(&inv, &request(), None).unwrap());
        let purls: Vec<&str> = bom["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["purl"].as_str().unwrap())
            .collect();
        assert_eq!(purls, ["pkg:cargo/demo@0.1.0", "pkg:cargo/serde@1.0.197"]);
        assert_eq!(bom["components"][0]["type"], "application");
        assert_eq!(
            bom["components"][0]["evidence"]["occurrences"][0]["location"],
            "/usr/local/bin/demo"
        );
        let deps = bom["dependencies"].as_array().unwrap();
        let demo = deps
            .iter()
            .find(|d| d["ref"] == "pkg:cargo/demo@0.1.0")
            .unwrap();
        assert_eq!(
            demo["dependsOn"],
            serde_json::json!(["pkg:cargo/serde@1.0.197"])
        );
    }

    #[test]
    fn debian_image_end_to_end_in_memory() {
        let status = "\
Package: libfoo
Status: install ok installed
Architecture: amd64
Version: 1:2.3+dfsg-1
Source: foo

Package: gone
Status: deinstall ok config-files
Architecture: amd64
Version: 1
";
        let fs = fs_of(&[
            tar_of(
                &[
                    ("usr/lib/os-release", Some(b"ID=debian\nVERSION_ID=\"12\"\nNAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n")),
                    ("etc/os-release", Some(b"->../usr/lib/os-release")),
                    ("var/lib/dpkg/status", Some(status.as_bytes())),
                    ("usr/share/doc/libfoo/copyright", Some(b"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: GPL-2+ or Artistic\n\nFiles: x\nLicense: public-domain\n")),
                ],
                true,
            ),
            tar_of(&[("var/lib/dpkg/status.d/tzdata", Some(b"Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n"))], false),
        ]);
        let inv = Inventory::discover(&fs).unwrap();
        let bom = to_json(build_bom(&inv, &request(), request().platform.as_ref()).unwrap());
        assert_eq!(bom["specVersion"], "1.5");
        assert_eq!(bom["bomFormat"], "CycloneDX");
        let comps = bom["components"].as_array().unwrap();
        assert_eq!(comps.len(), 3, "{comps:#?}");
        assert_eq!(comps[0]["type"], "operating-system");
        assert_eq!(comps[0]["name"], "debian");
        assert_eq!(comps[0]["version"], "12");
        assert_eq!(
            comps[1]["purl"],
            "pkg:deb/debian/libfoo@1%3A2.3%2Bdfsg-1?arch=amd64&distro=debian-12"
        );
        assert_eq!(comps[1]["bom-ref"], comps[1]["purl"]);
        assert_eq!(
            comps[1]["licenses"],
            serde_json::json!([
                {"license": {"id": "GPL-2.0-or-later"}},
                {"license": {"id": "Artistic-1.0-Perl"}},
                {"license": {"name": "public-domain"}},
            ])
        );
        assert_eq!(
            comps[2]["purl"],
            "pkg:deb/debian/tzdata@2024a-0%2Bdeb12u1?arch=all&distro=debian-12"
        );
        let meta = &bom["metadata"];
        assert_eq!(meta["tools"]["components"][0]["name"], "wharf");
        assert_eq!(meta["component"]["type"], "container");
        assert_eq!(meta["component"]["name"], "ghcr.io/acme/app");
        assert_eq!(
            meta["component"]["version"],
            Digest::of(b"manifest").as_str()
        );
        assert_eq!(
            meta["component"]["purl"],
            format!(
                "pkg:oci/app@sha256%3A{}?arch=arm64&repository_url=ghcr.io/acme/app",
                Digest::of(b"manifest").hex()
            )
        );
        let props = meta["component"]["properties"].as_array().unwrap();
        assert!(props
            .contains(&serde_json::json!({"name": "wharf:platform", "value": "linux/arm64/v8"})));
    }

    #[test]
    fn alpine_image() {
        let fs = fs_of(&[tar_of(
            &[
                ("etc/os-release", Some(b"NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\n")),
                ("lib/apk/db/installed", Some(b"P:musl\nV:1.2.4_git20230717-r4\nA:x86_64\nL:MIT\n\nP:ssl_client\nV:3.1.4-r5\nA:x86_64\nL:Apache-2.0 AND MIT\n\nP:odd\nV:1\nA:x86_64\nL:custom licence\n")),
            ],
            true,
        )]);
        let inv = Inventory::discover(&fs).unwrap();
        let bom = to_json(build_bom(&inv, &request(), None).unwrap());
        let comps = bom["components"].as_array().unwrap();
        assert_eq!(comps.len(), 4);
        assert_eq!(
            comps[1]["purl"],
            "pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=x86_64&distro=alpine-3.19.1"
        );
        assert_eq!(
            comps[1]["licenses"],
            serde_json::json!([{"license": {"id": "MIT"}}])
        );
        assert_eq!(comps[2]["name"], "odd");
        assert_eq!(
            comps[2]["licenses"],
            serde_json::json!([{"license": {"name": "custom licence"}}])
        );
        assert_eq!(
            comps[3]["licenses"],
            serde_json::json!([{"expression": "Apache-2.0 AND MIT"}])
        );
    }

    #[test]
    fn image_purls() {
        let d = Digest::of(b"x");
        assert_eq!(
            image_purl("localhost:5000/Team/App:v1", &d, None),
            format!(
                "pkg:oci/app@sha256%3A{}?repository_url=localhost%3A5000/Team/App",
                d.hex()
            )
        );
        assert_eq!(
            image_purl("oci:./out/my-layout:v1", &d, None),
            format!("pkg:oci/my-layout@sha256%3A{}", d.hex())
        );
    }

    #[test]
    fn namespaces_follow_the_os() {
        let ubuntu = OsRelease::parse("ID=ubuntu\nID_LIKE=debian\nVERSION_ID=22.04\n");
        assert_eq!(
            deb_namespace(Some(&ubuntu)),
            ("ubuntu".into(), Some("ubuntu-22.04".into()))
        );
        let mint = OsRelease::parse("ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n");
        assert_eq!(deb_namespace(Some(&mint)), ("ubuntu".into(), None));
        assert_eq!(deb_namespace(None), ("debian".into(), None));
        let wolfi = OsRelease::parse("ID=wolfi\nVERSION_ID=20230201\n");
        assert_eq!(
            apk_namespace(Some(&wolfi)),
            ("wolfi".into(), Some("wolfi-20230201".into()))
        );
        let debian = OsRelease::parse("ID=debian\nVERSION_ID=12\n");
        assert_eq!(apk_namespace(Some(&debian)), ("alpine".into(), None));
    }
}
