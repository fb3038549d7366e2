//! The release configuration (`wharf.toml`): what to publish, where, signed how, attested with
//! what, mirrored where, and verified against which policy.
//!
//! Every value can be overridden: `--set signing.key=env://KEY` on the command line, or an
//! environment variable `WHARF_CFG_SIGNING__KEY` (sections and keys joined by `__`).

use crate::ops::bundles::BundleFormat;
use crate::ops::policy::PolicySpec;
use crate::sign::keyref::{KeyRef, PasswordSource};
use crate::sign::spec::{SignerKind, SignerSpec};
use crate::sigstore::bundle::SIGN_PREDICATE_TYPE;
use crate::sigstore::claims::GithubClaim;
use crate::verify::{FullMatch, IdentityMatch, IdentityPolicy};
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The documented schema. Unknown keys are errors naming their line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseConfig {
    /// The OCI image layout to publish, `DIR[:REF]`.
    pub layout: String,
    /// The primary destination: `HOST/REPO` or `oci:DIR`.
    pub repository: String,
    /// Tags written once everything is signed, attested and verified.
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub signing: Signing,
    #[serde(default)]
    pub attestations: Attestations,
    #[serde(default)]
    pub verify: Verify,
    #[serde(default, rename = "mirror")]
    pub mirrors: Vec<Mirror>,
    /// Registries reached over plain HTTP or unverified TLS (`HOST[:PORT]`).
    #[serde(default)]
    pub insecure_registries: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signing {
    /// A private key reference (file or `env://VAR`); absent means keyless.
    pub key: Option<String>,
    /// Key password file (otherwise WHARF_PASSWORD / COSIGN_PASSWORD).
    pub password_file: Option<String>,
    #[serde(default = "yes")]
    pub tlog_upload: bool,
    #[serde(default = "default_fulcio")]
    pub fulcio_url: String,
    #[serde(default = "default_rekor")]
    pub rekor_url: String,
    pub trusted_root: Option<String>,
    /// Identity token for keyless signing outside GitHub Actions (or a file holding it).
    pub identity_token: Option<String>,
    #[serde(default = "default_format")]
    pub bundle_format: BundleFormat,
}

impl Default for Signing {
    fn default() -> Self {
        Signing {
            key: None,
            password_file: None,
            tlog_upload: true,
            fulcio_url: default_fulcio(),
            rekor_url: default_rekor(),
            trusted_root: None,
            identity_token: None,
            bundle_format: default_format(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attestations {
    /// `generate` (build one per platform from the image), `none`, or files per platform.
    #[serde(default)]
    pub sbom: SbomSource,
    /// Per-platform SBOM files (`"linux/amd64" = "sbom-amd64.cdx.json"`), when `sbom = "files"`.
    #[serde(default)]
    pub sbom_files: BTreeMap<String, String>,
    /// Attach SLSA provenance built from the GitHub Actions environment.
    #[serde(default)]
    pub provenance: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SbomSource {
    #[default]
    None,
    Generate,
    Files,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verify {
    /// Public key the release must verify under (key signing; default: the public half of
    /// [signing] key).
    pub key: Option<String>,
    pub certificate_identity: Option<String>,
    pub certificate_identity_regexp: Option<String>,
    pub certificate_oidc_issuer: Option<String>,
    pub certificate_oidc_issuer_regexp: Option<String>,
    pub certificate_github_workflow_repository: Option<String>,
    /// Accept signatures without transparency-log evidence (only with tlog_upload = false).
    #[serde(default)]
    pub insecure_ignore_tlog: bool,
    /// Keyless against a trusted root without CT logs (a private Sigstore): sign and verify
    /// certificates whose SCT cannot be checked.
    #[serde(default)]
    pub insecure_ignore_sct: bool,
    /// Where users download the public key (key-signed releases), e.g. an https URL; the
    /// verification guide tells them to fetch it from there and check its fingerprint.
    pub key_url: Option<String>,
}

impl Verify {
    /// The certificate identity policy, if keyless.
    pub fn identity_match(&self) -> Option<IdentityMatch> {
        IdentityMatch::from_pair(
            self.certificate_identity.as_deref(),
            self.certificate_identity_regexp.as_deref(),
        )
    }

    /// The OIDC issuer policy, if keyless.
    pub fn issuer_match(&self) -> Option<IdentityMatch> {
        IdentityMatch::from_pair(
            self.certificate_oidc_issuer.as_deref(),
            self.certificate_oidc_issuer_regexp.as_deref(),
        )
    }

    /// The keyless policy: the certificate identity and its OIDC issuer.
    pub fn keyless_policy(&self) -> Result<(IdentityMatch, IdentityMatch)> {
        match (self.identity_match(), self.issuer_match()) {
            (Some(identity), Some(issuer)) => Ok((identity, issuer)),
            _ => bail!("keyless signing needs [verify] certificate_identity (or _regexp) and certificate_oidc_issuer (or _regexp)"),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mirror {
    /// `HOST/REPO`, `oci:DIR` or `oci-archive:FILE`.
    pub destination: String,
    /// Tags at the mirror (default: the release's tags).
    pub tags: Option<Vec<String>>,
}

fn yes() -> bool {
    true
}
fn default_fulcio() -> String {
    crate::sigstore::PUBLIC_FULCIO_URL.into()
}
fn default_rekor() -> String {
    crate::sigstore::PUBLIC_REKOR_URL.into()
}
fn default_format() -> BundleFormat {
    BundleFormat::Legacy
}

/// The example release the README's first command runs when no config is given.
pub const EXAMPLE: &str = include_str!("../../examples/wharf.toml");

impl ReleaseConfig {
    /// Reads the config at `path` (`-`: the example release the README's first command
    /// runs), with environment and `--set` overrides.
    pub fn read(path: &std::path::Path, sets: &[String]) -> Result<ReleaseConfig> {
        let text = if path.as_os_str() == "-" {
            EXAMPLE.to_string()
        } else {
            crate::files::read_bounded_text(path, crate::files::CONFIG_LIMIT, "release config")?
        };
        let env = std::env::vars().collect();
        ReleaseConfig::load(&text, &path.display().to_string(), &env, sets)
    }

    /// Parses `text` (from `origin`, for messages), then applies environment and `--set`
    /// overrides, then checks the whole for consistency.
    pub fn load(
        text: &str,
        origin: &str,
        env: &BTreeMap<String, String>,
        sets: &[String],
    ) -> Result<ReleaseConfig> {
        let mut value: toml::Table =
            toml::from_str(text).map_err(|e| anyhow!("{origin}: {}", one_line(&e.to_string())))?;
        for (name, v) in env {
            if let Some(path) = name.strip_prefix("WHARF_CFG_") {
                let path = path.to_lowercase().replace("__", ".");
                set_path(&mut value, &path, v)
                    .with_context(|| format!("environment variable {name}"))?;
            }
        }
        for set in sets {
            let (path, v) = set.split_once('=').ok_or_else(|| {
                anyhow!("--set {set:?} is not PATH=VALUE (e.g. signing.key=env://KEY)")
            })?;
            set_path(&mut value, path.trim(), v).with_context(|| format!("--set {set}"))?;
        }
        // Re-serialise so errors in overridden values point at a line too.
        let merged = toml::to_string(&value)?;
        let config: ReleaseConfig = toml::from_str(&merged).map_err(|e| {
            // Errors in the file itself carry its own line numbers.
            match toml::from_str::<ReleaseConfig>(text) {
                Err(original) => anyhow!("{origin}: {}", one_line(&original.to_string())),
                Ok(_) => anyhow!("{origin} with overrides: {}", one_line(&e.to_string())),
            }
        })?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<()> {
        let v = &self.verify;
        let identity = v.certificate_identity.is_some() || v.certificate_identity_regexp.is_some();
        let issuer =
            v.certificate_oidc_issuer.is_some() || v.certificate_oidc_issuer_regexp.is_some();
        match (&self.signing.key, &v.key) {
            (None, None) if !(identity && issuer) => bail!(
                "keyless signing needs a [verify] identity policy: certificate_identity (or _regexp) and certificate_oidc_issuer (or _regexp)"
            ),
            _ => {}
        }
        if self.signing.key.is_none() && !self.signing.tlog_upload {
            bail!("[signing] keyless signatures must be logged: tlog_upload = false needs a key");
        }
        if !self.signing.tlog_upload && !v.insecure_ignore_tlog {
            bail!("[signing] tlog_upload = false makes signatures without log evidence: set [verify] insecure_ignore_tlog = true to accept them");
        }
        for (name, re) in [
            (
                "certificate_identity_regexp",
                &v.certificate_identity_regexp,
            ),
            (
                "certificate_oidc_issuer_regexp",
                &v.certificate_oidc_issuer_regexp,
            ),
        ] {
            if let Some(re) = re {
                regex::Regex::new(re).map_err(|e| {
                    anyhow!(
                        "[verify] {name} is not a valid regular expression: {}",
                        one_line(&e.to_string())
                    )
                })?;
            }
        }
        if self.attestations.sbom == SbomSource::Files && self.attestations.sbom_files.is_empty() {
            bail!("[attestations] sbom = \"files\" needs sbom_files = {{ \"linux/amd64\" = \"FILE\", ... }}");
        }
        Ok(())
    }
}

/// TOML errors span several lines (a snippet with a caret); keep them on one.
fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('|'))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Sets `a.b.c` in `table` to `raw`, read as a TOML value when it is one (`true`, `["x"]`),
/// else as a string.
fn set_path(table: &mut toml::Table, path: &str, raw: &str) -> Result<()> {
    let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts
        .pop()
        .filter(|l| !l.is_empty())
        .ok_or_else(|| anyhow!("empty key path"))?;
    let mut current = table;
    for part in parts {
        current = current
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
            .ok_or_else(|| anyhow!("{part} is not a section"))?;
    }
    current.insert(last.to_string(), value);
    Ok(())
}

impl ReleaseConfig {
    /// Where the signing key's password comes from.
    pub fn password(&self) -> PasswordSource {
        PasswordSource {
            file: self.signing.password_file.as_ref().map(Into::into),
        }
    }

    /// Who signs the release, as `[signing]` says.
    pub fn signer_spec(&self) -> SignerSpec {
        let s = &self.signing;
        let kind = match &s.key {
            Some(key) => SignerKind::Key {
                key: KeyRef::new(key),
                password: self.password(),
            },
            None => SignerKind::Keyless {
                // As for `wharf sign`: the token in the environment, when the config has none.
                identity_token: s
                    .identity_token
                    .clone()
                    .or_else(|| std::env::var("SIGSTORE_ID_TOKEN").ok()),
                fulcio_url: s.fulcio_url.clone(),
                // The same switch lets the release sign and verify without CT logs.
                ignore_sct: self.verify.insecure_ignore_sct,
            },
        };
        SignerSpec {
            kind,
            rekor_url: s.tlog_upload.then(|| s.rekor_url.clone()),
        }
    }

    /// Who must have signed the release, as `[verify]` says. Without `[verify] key`, a
    /// key-signed release verifies under its signer's public key (see
    /// [`PolicySpec::policy_for`]); so does a `[verify] key` naming the signing key itself.
    pub fn policy_spec(&self) -> Result<PolicySpec> {
        let v = &self.verify;
        let regex = |name: &str, re: &Option<String>| {
            re.as_deref()
                .map(FullMatch::new)
                .transpose()
                .with_context(|| format!("[verify] {name}"))
        };
        let github_claims = v
            .certificate_github_workflow_repository
            .iter()
            .map(|repo| (GithubClaim::WorkflowRepository, repo.clone()))
            .collect();
        Ok(PolicySpec {
            key: v
                .key
                .as_ref()
                .filter(|k| Some(*k) != self.signing.key.as_ref())
                .map(KeyRef::new),
            password: self.password(),
            identity: IdentityPolicy {
                identity: v.certificate_identity.clone(),
                identity_regexp: regex(
                    "certificate_identity_regexp",
                    &v.certificate_identity_regexp,
                )?,
                issuer: v.certificate_oidc_issuer.clone(),
                issuer_regexp: regex(
                    "certificate_oidc_issuer_regexp",
                    &v.certificate_oidc_issuer_regexp,
                )?,
                github_claims,
            },
            ignore_tlog: v.insecure_ignore_tlog,
            ignore_sct: v.insecure_ignore_sct,
        })
    }

    /// The release's public key: `[verify] key`, else the public half of `[signing] key`;
    /// none for keyless releases.
    pub fn public_key(&self) -> Result<Option<p256::PublicKey>> {
        let password = self.password();
        match (&self.verify.key, &self.signing.key) {
            (Some(k), _) => Ok(Some(KeyRef::new(k).load_public(&password)?)),
            (None, Some(k)) => Ok(Some(KeyRef::new(k).load_private(&password)?.public_key())),
            (None, None) => Ok(None),
        }
    }

    /// Whether the release is verified against a public key (else a keyless identity).
    pub fn key_based(&self) -> bool {
        self.verify.key.is_some() || self.signing.key.is_some()
    }

    /// Whether the release uses a Sigstore other than the public-good instance, whose trust
    /// root verifiers must be given.
    pub fn private_sigstore(&self) -> bool {
        let s = &self.signing;
        s.fulcio_url != crate::sigstore::PUBLIC_FULCIO_URL
            || s.rekor_url != crate::sigstore::PUBLIC_REKOR_URL
            || s.trusted_root.is_some()
    }

    /// The public key file as the releasing machine names it.
    fn local_public_key(&self) -> String {
        match (&self.verify.key, &self.signing.key) {
            (Some(k), _) => k.clone(),
            (None, Some(k)) => format!("{}.pub", k.trim_end_matches(".key")),
            (None, None) => String::new(),
        }
    }

    /// The commands that verify `reference` (an `IMAGE@DIGEST`, the release's index) under
    /// this release's policy, with wharf and (for registries) cosign, as the releasing machine
    /// runs them.
    pub fn verify_commands(&self, reference: &str) -> Vec<(&'static str, String)> {
        self.verify_commands_with_key(reference, &self.local_public_key())
    }

    /// [`Self::verify_commands`] for someone whose copy of the public key is `key_file`.
    pub fn verify_commands_with_key(
        &self,
        reference: &str,
        key_file: &str,
    ) -> Vec<(&'static str, String)> {
        let wharf_policy = self.policy_flags(key_file, false).join(" ");
        let cosign_policy = self.policy_flags(key_file, true).join(" ");
        // cosign 2.x reads only the .sig/.att tags unless told the release has bundles alone.
        let cosign_format = if self.signing.bundle_format == BundleFormat::Bundle {
            " --new-bundle-format"
        } else {
            ""
        };
        // cosign reads registries, not layouts.
        let registry = !crate::oci::reference::names_layout(reference);
        let repository = reference.split('@').next().unwrap_or(reference);
        let mut out = vec![(
            "wharf",
            format!("wharf verify --recursive {wharf_policy} {reference}"),
        )];
        if registry {
            let signature = if self.signing.bundle_format == BundleFormat::Bundle {
                // cosign 2.x has no bundle path for image signatures; the bundle holds an
                // in-toto statement of this type, which it verifies as an attestation (as
                // cosign 3's `verify` does).
                format!("cosign verify-attestation{cosign_format} --type {SIGN_PREDICATE_TYPE} {cosign_policy} {reference}")
            } else {
                format!("cosign verify {cosign_policy} {reference}")
            };
            out.push(("cosign", signature));
        }
        if self.attestations.sbom != SbomSource::None {
            out.push((
                "wharf",
                format!("wharf verify-attestation --recursive --type cyclonedx {wharf_policy} {reference}"),
            ));
            if registry {
                // Each platform carries its own SBOM; cosign checks one manifest at a time.
                out.push((
                    "cosign",
                    format!("cosign verify-attestation{cosign_format} --type cyclonedx {cosign_policy} {repository}@PLATFORM_DIGEST"),
                ));
            }
        }
        if self.attestations.provenance {
            out.push((
                "wharf",
                format!(
                    "wharf verify-attestation --type slsaprovenance1 {wharf_policy} {reference}"
                ),
            ));
            if registry {
                out.push((
                    "cosign",
                    format!("cosign verify-attestation{cosign_format} --type slsaprovenance1 {cosign_policy} {reference}"),
                ));
            }
        }
        out
    }

    /// The policy as command-line flags. wharf matches identity regexps in full; cosign
    /// matches them anywhere, so it is given them anchored.
    fn policy_flags(&self, key_file: &str, cosign: bool) -> Vec<String> {
        let v = &self.verify;
        let mut flags = Vec::new();
        if self.key_based() {
            flags.push(format!("--key {}", shell_word(key_file)));
        } else if cosign {
            for (flag, policy) in [
                ("--certificate-identity", v.identity_match()),
                ("--certificate-oidc-issuer", v.issuer_match()),
            ] {
                match policy {
                    Some(IdentityMatch::Exact(value)) => {
                        flags.push(format!("{flag} {}", shell_word(&value)))
                    }
                    Some(re) => flags.push(format!(
                        "{flag}-regexp {}",
                        shell_word(&re.anchored_regexp())
                    )),
                    None => {}
                }
            }
        } else {
            for (flag, value) in [
                ("--certificate-identity", &v.certificate_identity),
                (
                    "--certificate-identity-regexp",
                    &v.certificate_identity_regexp,
                ),
                ("--certificate-oidc-issuer", &v.certificate_oidc_issuer),
                (
                    "--certificate-oidc-issuer-regexp",
                    &v.certificate_oidc_issuer_regexp,
                ),
            ] {
                if let Some(value) = value {
                    flags.push(format!("{flag} {}", shell_word(value)));
                }
            }
        }
        if !self.key_based() {
            if let Some(repo) = &v.certificate_github_workflow_repository {
                flags.push(format!(
                    "--certificate-github-workflow-repository {}",
                    shell_word(repo)
                ));
            }
        }
        for (ignore, flag) in [
            (v.insecure_ignore_tlog, "--insecure-ignore-tlog"),
            // A key signature has no certificate, so no SCT to ignore.
            (
                v.insecure_ignore_sct && !self.key_based(),
                "--insecure-ignore-sct",
            ),
        ] {
            if ignore {
                flags.push(if cosign {
                    format!("{flag}=true")
                } else {
                    flag.to_string()
                });
            }
        }
        flags
    }
}

/// `word` as one POSIX shell word: as it is when it has nothing a shell would interpret, else
/// single-quoted.
pub fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
layout = "out/layout"
repository = "ghcr.io/acme/app"
tags = ["v1"]

[signing]
key = "release.key"
"#;

    #[test]
    fn example_parses() {
        ReleaseConfig::load(EXAMPLE, "examples/wharf.toml", &BTreeMap::new(), &[]).unwrap();
    }

    #[test]
    fn unknown_key_names_its_line() {
        let text = format!("{MINIMAL}\n[attestations]\nsboms = \"generate\"\n");
        let err = ReleaseConfig::load(&text, "wharf.toml", &BTreeMap::new(), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 10"), "{err}");
        assert!(err.contains("sboms"), "{err}");
    }

    #[test]
    fn overrides_from_env_and_flags() {
        let env = BTreeMap::from([(
            "WHARF_CFG_SIGNING__TLOG_UPLOAD".to_string(),
            "false".to_string(),
        )]);
        let sets = vec![
            "verify.insecure_ignore_tlog=true".to_string(),
            "repository=oci:./x".to_string(),
        ];
        let c = ReleaseConfig::load(MINIMAL, "wharf.toml", &env, &sets).unwrap();
        assert!(!c.signing.tlog_upload);
        assert!(c.verify.insecure_ignore_tlog);
        assert_eq!(c.repository, "oci:./x");
    }

    #[test]
    fn ignoring_the_sct_reaches_the_keyless_verify_commands_only() {
        let keyless = "layout = \"l\"\nrepository = \"r/a\"\n[verify]\ncertificate_identity = \"i\"\ncertificate_oidc_issuer = \"o\"\ninsecure_ignore_sct = true\n";
        let c = ReleaseConfig::load(keyless, "w", &BTreeMap::new(), &[]).unwrap();
        for (tool, cmd) in c.verify_commands("r/a@sha256:0") {
            let flag = match tool {
                "cosign" => "--insecure-ignore-sct=true",
                _ => "--insecure-ignore-sct",
            };
            assert!(cmd.split(' ').any(|w| w == flag), "{cmd}");
        }
        let key = format!("{MINIMAL}[verify]\ninsecure_ignore_sct = true\n");
        let c = ReleaseConfig::load(&key, "w", &BTreeMap::new(), &[]).unwrap();
        for (_, cmd) in c.verify_commands("r/a@sha256:0") {
            assert!(!cmd.contains("sct"), "{cmd}");
        }
    }

    #[test]
    fn inconsistent_configs_are_refused() {
        let keyless = "layout = \"l\"\nrepository = \"r/a\"\n";
        let err = ReleaseConfig::load(keyless, "w", &BTreeMap::new(), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("identity policy"), "{err}");
        let bad_type = format!("{MINIMAL}\n[attestations]\nprovenance = \"yes\"\n");
        let err = ReleaseConfig::load(&bad_type, "w", &BTreeMap::new(), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("line"), "{err}");
    }
}
