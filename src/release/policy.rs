//! Admission policies for a release: a Sigstore policy-controller `ClusterImagePolicy` or a
//! Kyverno `ClusterPolicy` that admits the release's images (primary and registry mirrors) only
//! as `wharf verify` would: signed by the key or the keyless identity of the config, in the
//! format the release writes, with its provenance.
//!
//! Pure: config in, YAML out. What a controller cannot enforce is said in the document's
//! comments rather than silently left out.
//!
//! How each controller decides that an image is one of the release's (read from their source):
//! - policy-controller parses the image with go-containerregistry (Docker Hub names become
//!   `index.docker.io/NAME`, one-component names `index.docker.io/library/NAME`, a missing tag
//!   `:latest`) and matches `images[].glob` against that whole name: `*` stops at `/`, `**`
//!   does not, `.` is literal.
//! - Kyverno matches `imageReferences` against `REGISTRY/PATH:TAG` or `REGISTRY/PATH@DIGEST`
//!   parsed without Docker's normalisation (`docker.io` and `index.docker.io` stay apart, no
//!   `library/` is added, a short name gets its `defaultRegistry`, `docker.io`, or none when
//!   that mutation is off), with wildcards where `*` matches anything, `/` included.
//!
//! Both get `NAME:*` and `NAME@*` for each spelling of each repository: only that repository's
//! tags and digests, never a sibling (`app-frontend`, `application/x`).

use super::config::{ReleaseConfig, SbomSource};
use crate::cosign::attestation::SLSA_PROVENANCE_V1;
use crate::oci::reference::{ImageRef, Repository};
use crate::ops::bundles::BundleFormat;
use crate::sigstore::bundle::SIGN_PREDICATE_TYPE;
use crate::verify::IdentityMatch;
use crate::yaml::{self, Yaml};
use anyhow::{bail, Result};

/// `subjectRegExp`/`issuerRegExp` and keyless `type: SigstoreBundle` came in Kyverno 1.13.
const KYVERNO_MIN: &str = "1.13.0";
/// Key-signed Sigstore bundles are verified from Kyverno 1.19 on.
const KYVERNO_MIN_KEY_BUNDLE: &str = "1.19.0";
/// `signatureFormat` came in policy-controller v0.13.0.
const POLICY_CONTROLLER_MIN_BUNDLE: &str = "v0.13.0";

/// Which admission controller the policy is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    PolicyController,
    Kyverno,
}

/// A registry repository the release publishes to (`registry` as wharf writes it:
/// `docker.io` for Docker Hub, `path` with `library/` for its official images).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleasedRepository {
    pub registry: String,
    pub path: String,
}

impl ReleasedRepository {
    pub fn parse(destination: &str) -> Result<Option<ReleasedRepository>> {
        Ok(match ImageRef::parse(destination)?.repository {
            Repository::Registry { registry, name } => Some(ReleasedRepository {
                registry,
                path: name,
            }),
            // Layout directories have no admission controller.
            Repository::Layout { .. } | Repository::Archive { .. } => None,
        })
    }

    /// policy-controller globs covering this repository's tags and digests.
    pub fn policy_controller_globs(&self) -> Result<Vec<String>> {
        if self.registry.starts_with('[') {
            // Its glob becomes a regexp with only `.` and `*` translated: brackets would
            // turn into a character class.
            bail!(
                "policy-controller globs cannot name the IPv6 registry {}: use its host name",
                self.registry
            );
        }
        let name = if self.registry == "docker.io" {
            format!("index.docker.io/{}", self.path)
        } else {
            format!("{}/{}", self.registry, self.path)
        };
        Ok(tags_and_digests(&[name]))
    }

    /// Kyverno `imageReferences` covering this repository's tags and digests.
    pub fn kyverno_image_references(&self) -> Vec<String> {
        if self.registry != "docker.io" {
            return tags_and_digests(&[format!("{}/{}", self.registry, self.path)]);
        }
        let mut paths = vec![self.path.clone()];
        if let Some(short) = self.path.strip_prefix("library/") {
            paths.push(short.to_string());
        }
        let mut names = Vec::new();
        for host in ["docker.io", "index.docker.io"] {
            names.extend(paths.iter().map(|p| format!("{host}/{p}")));
        }
        // With enableDefaultRegistryMutation off, Kyverno leaves short names without one.
        names.extend(paths);
        tags_and_digests(&names)
    }
}

fn tags_and_digests(names: &[String]) -> Vec<String> {
    names
        .iter()
        .flat_map(|n| [format!("{n}:*"), format!("{n}@*")])
        .collect()
}

/// The registry repositories of the release (primary and mirrors), each once.
pub fn released_repositories(config: &ReleaseConfig) -> Result<Vec<ReleasedRepository>> {
    let mut out: Vec<ReleasedRepository> = Vec::new();
    let destinations = std::iter::once(config.repository.as_str())
        .chain(config.mirrors.iter().map(|m| m.destination.as_str()));
    for destination in destinations {
        if let Some(repo) = ReleasedRepository::parse(destination)? {
            if !out.contains(&repo) {
                out.push(repo);
            }
        }
    }
    Ok(out)
}

/// Who signed, as the policies need it.
enum Signer {
    Key(String),
    Keyless {
        subject: IdentityMatch,
        issuer: IdentityMatch,
        workflow_repository: Option<String>,
    },
}

struct Release {
    name: String,
    repositories: Vec<ReleasedRepository>,
    signer: Signer,
    tlog: bool,
    rekor_url: String,
    fulcio_url: String,
    format: BundleFormat,
    sbom: bool,
    provenance: bool,
    private_sigstore: bool,
}

impl Release {
    fn of(config: &ReleaseConfig, key_pem: Option<&str>) -> Result<Release> {
        let repositories = released_repositories(config)?;
        if repositories.is_empty() {
            bail!(
                "the release publishes to no registry (only oci: layouts): there is nothing to admit"
            );
        }
        let v = &config.verify;
        let signer = if config.key_based() {
            match key_pem {
                Some(pem) => Signer::Key(pem.to_string()),
                None => bail!(
                    "a key-signed release needs its public key ([verify] key) to write the policy"
                ),
            }
        } else {
            let (subject, issuer) = v.keyless_policy()?;
            Signer::Keyless {
                subject,
                issuer,
                workflow_repository: v.certificate_github_workflow_repository.clone(),
            }
        };
        let s = &config.signing;
        Ok(Release {
            name: policy_name(&repositories[0]),
            repositories,
            signer,
            tlog: s.tlog_upload,
            rekor_url: s.rekor_url.clone(),
            fulcio_url: s.fulcio_url.clone(),
            format: s.bundle_format,
            sbom: config.attestations.sbom != SbomSource::None,
            provenance: config.attestations.provenance,
            private_sigstore: config.private_sigstore(),
        })
    }

    /// Comments every policy carries: what it admits and what no controller checks.
    fn common_comments(&self, controller: &str) -> Vec<String> {
        let mut c = vec![
            format!("Generated by `wharf policy --format {controller}` from the release config: do not edit by hand."),
        ];
        match &self.signer {
            Signer::Key(_) => c.push("Admits the release's images only when signed with its key.".into()),
            Signer::Keyless { .. } => c.push(
                "Admits the release's images only when signed keylessly by its identity. Identity regexps are anchored (^(?:RE)$): the controller matches them anywhere in the value, wharf in full."
                    .into(),
            ),
        }
        if self.sbom {
            c.push("Not required here: the CycloneDX SBOM attestations. Each is on its platform's manifest, and the controller checks attestations on the digest a pod names (usually the index): requiring them would deny every multi-platform image. Check them with `wharf verify-attestation --recursive --type cyclonedx` (see the verification guide).".into());
        }
        if self.private_sigstore {
            c.push(format!(
                "This release uses its own Sigstore (Fulcio {}, Rekor {}): the controller must be given that instance's trust root; this policy names only the URLs.",
                self.fulcio_url, self.rekor_url
            ));
        }
        c
    }
}

/// The policy's name: `wharf-` and the last path element of the first registry repository.
fn policy_name(repository: &ReleasedRepository) -> String {
    let last = repository.path.rsplit('/').next().unwrap_or("release");
    let name: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("wharf-{}", name.trim_matches('-'))
}

/// The admission policy for `controller`, as YAML (one or more documents). `key_pem` is the
/// public key of a key-signed release.
pub fn admission_policy(
    config: &ReleaseConfig,
    controller: Controller,
    key_pem: Option<&str>,
) -> Result<String> {
    let release = Release::of(config, key_pem)?;
    let docs = match controller {
        Controller::PolicyController => policy_controller(&release)?,
        Controller::Kyverno => vec![kyverno(&release)],
    };
    Ok(yaml::documents(&docs))
}

fn policy_controller(r: &Release) -> Result<Vec<(Vec<String>, Yaml)>> {
    let bundle_only = r.format == BundleFormat::Bundle;
    if bundle_only && matches!(r.signer, Signer::Key(_)) {
        bail!("policy-controller verifies Sigstore bundles only for keyless signatures: a key-signed release it admits needs bundle_format = \"both\" or \"legacy\"");
    }
    let mut comments = r.common_comments("sigstore-policy-controller");
    comments.push("Globs match go-containerregistry's normalised names (Docker Hub as index.docker.io/...): NAME:* and NAME@* cover the repository's tags and digests and nothing else, since * does not cross '/'.".into());
    if let Signer::Keyless {
        workflow_repository: Some(repo),
        ..
    } = &r.signer
    {
        comments.push(format!("NOT ENFORCED HERE: certificate_github_workflow_repository = {repo:?}. policy-controller's keyless identities match only the issuer and the subject; `wharf verify` and cosign check the repository (see the verification guide)."));
    }
    if bundle_only {
        comments.push(format!("Needs policy-controller {POLICY_CONTROLLER_MIN_BUNDLE} or later (signatureFormat: bundle): an older one drops that field, looks for cosign 2.x signatures, finds none and denies every image."));
        comments.push(format!("policy-controller reads Sigstore bundles only as attestations (cosign's verifier has no bundle path for image signatures), so the signature is checked as what its bundle holds: an in-toto statement about the image, of predicate type {SIGN_PREDICATE_TYPE}."));
    } else if r.format == BundleFormat::Both {
        comments.push("The release writes both cosign 2.x signatures and Sigstore bundles; this policy reads the former, which every policy-controller version does.".into());
    }
    let mut globs = Vec::new();
    for repo in &r.repositories {
        globs.extend(repo.policy_controller_globs()?);
    }
    let images = Yaml::Seq(
        globs
            .iter()
            .map(|g| Yaml::map([("glob", Yaml::str(g))]))
            .collect(),
    );
    let authority = |name: &str, attestations: Option<Yaml>| {
        let mut a = vec![("name", Yaml::str(name))];
        match &r.signer {
            Signer::Key(pem) => a.push(("key", Yaml::map([("data", Yaml::str(pem))]))),
            Signer::Keyless {
                subject, issuer, ..
            } => {
                let identity = vec![
                    identity_field(issuer, ("issuer", "issuerRegExp"), |_| true),
                    identity_field(subject, ("subject", "subjectRegExp"), |_| true),
                ];
                a.push((
                    "keyless",
                    Yaml::map([
                        ("url", Yaml::str(&r.fulcio_url)),
                        ("identities", Yaml::Seq(vec![Yaml::map(identity)])),
                    ]),
                ));
            }
        }
        // Without ctlog, policy-controller skips the transparency log check.
        if r.tlog && !bundle_only {
            a.push(("ctlog", Yaml::map([("url", Yaml::str(&r.rekor_url))])));
        }
        if bundle_only {
            a.push(("signatureFormat", Yaml::str("bundle")));
        }
        if let Some(att) = attestations {
            a.push(("attestations", att));
        }
        Yaml::map(a)
    };
    let policy = |name: &str, authority: Yaml| {
        Yaml::map([
            ("apiVersion", Yaml::str("policy.sigstore.dev/v1beta1")),
            ("kind", Yaml::str("ClusterImagePolicy")),
            ("metadata", Yaml::map([("name", Yaml::str(name))])),
            (
                "spec",
                Yaml::map([
                    ("images", images.clone()),
                    ("authorities", Yaml::Seq(vec![authority])),
                ]),
            ),
        ])
    };
    let signature_bundle = bundle_only.then(|| {
        Yaml::Seq(vec![Yaml::map([
            ("name", Yaml::str("signature")),
            ("predicateType", Yaml::str(SIGN_PREDICATE_TYPE)),
        ])])
    });
    let mut docs = vec![(
        comments,
        policy(&r.name, authority("signature", signature_bundle)),
    )];
    if r.provenance {
        // An authority with attestations checks only those, and one passing authority admits
        // an image; every matching policy must pass, so the provenance is a second policy.
        let provenance = Yaml::Seq(vec![Yaml::map([
            ("name", Yaml::str("provenance")),
            ("predicateType", Yaml::str(SLSA_PROVENANCE_V1)),
        ])]);
        docs.push((
            vec!["The release's SLSA provenance (on the index), by the same signer: a second policy, since every policy matching an image must pass.".into()],
            policy(
                &format!("{}-provenance", r.name),
                authority("provenance", Some(provenance)),
            ),
        ));
    }
    Ok(docs)
}

/// `(exact key, value)` for an exact value `exact_ok` accepts, else `(regexp key, anchored
/// regexp)`.
fn identity_field(
    m: &IdentityMatch,
    (exact_key, regexp_key): (&'static str, &'static str),
    exact_ok: impl Fn(&str) -> bool,
) -> (&'static str, Yaml) {
    match m {
        IdentityMatch::Exact(v) if exact_ok(v) => (exact_key, Yaml::str(v)),
        other => (regexp_key, Yaml::str(other.anchored_regexp())),
    }
}

/// Kyverno's keyless `subject`/`issuer` are wildcard patterns (`*`, `?`) for cosign-format
/// signatures: an exact value holding either is written as an anchored regexp instead.
fn kyverno_match(keys: (&'static str, &'static str), m: &IdentityMatch) -> (&'static str, Yaml) {
    identity_field(m, keys, |v| !v.contains(['*', '?']))
}

fn kyverno(r: &Release) -> (Vec<String>, Yaml) {
    let min = kyverno_min_version(r);
    let mut references = Vec::new();
    for repo in &r.repositories {
        references.extend(repo.kyverno_image_references());
    }
    let attestors = || {
        Yaml::Seq(vec![Yaml::map([(
            "entries",
            Yaml::Seq(vec![kyverno_attestor(r)]),
        )])])
    };
    let mut verify = vec![
        ("imageReferences", Yaml::strs(&references)),
        ("failureAction", Yaml::str("Enforce")),
    ];
    if r.format == BundleFormat::Bundle {
        verify.push(("type", Yaml::str("SigstoreBundle")));
    }
    verify.extend([
        ("mutateDigest", Yaml::Bool(true)),
        ("verifyDigest", Yaml::Bool(true)),
        ("required", Yaml::Bool(true)),
        ("attestors", attestors()),
    ]);
    if r.provenance {
        verify.push((
            "attestations",
            Yaml::Seq(vec![Yaml::map([
                ("type", Yaml::str(SLSA_PROVENANCE_V1)),
                ("attestors", attestors()),
            ])]),
        ));
    }
    let rule = Yaml::map([
        ("name", Yaml::str("verify-release")),
        (
            "match",
            Yaml::map([(
                "any",
                Yaml::Seq(vec![Yaml::map([(
                    "resources",
                    Yaml::map([("kinds", Yaml::strs(&["Pod"]))]),
                )])]),
            )]),
        ),
        ("verifyImages", Yaml::Seq(vec![Yaml::map(verify)])),
    ]);
    let doc = Yaml::map([
        ("apiVersion", Yaml::str("kyverno.io/v1")),
        ("kind", Yaml::str("ClusterPolicy")),
        (
            "metadata",
            Yaml::map([
                ("name", Yaml::str(&r.name)),
                (
                    "annotations",
                    Yaml::map([("policies.kyverno.io/minversion", Yaml::str(min))]),
                ),
            ]),
        ),
        (
            "spec",
            Yaml::map([
                // Also per verifyImages entry (failureAction): releases before 1.13 read only
                // this one, later ones prefer the other.
                ("validationFailureAction", Yaml::str("Enforce")),
                ("webhookTimeoutSeconds", Yaml::Int(30)),
                ("rules", Yaml::Seq(vec![rule])),
            ]),
        ),
    ]);
    (kyverno_comments(r, min), doc)
}

/// The oldest Kyverno that enforces all of the policy.
fn kyverno_min_version(r: &Release) -> &'static str {
    if r.format == BundleFormat::Bundle && matches!(r.signer, Signer::Key(_)) {
        KYVERNO_MIN_KEY_BUNDLE
    } else {
        KYVERNO_MIN
    }
}

/// What the Kyverno policy's comments say beyond [`Release::common_comments`].
fn kyverno_comments(r: &Release, min: &str) -> Vec<String> {
    let mut comments = r.common_comments("kyverno");
    comments.push(format!("Needs Kyverno {min} or later (the policies.kyverno.io/minversion annotation): an older one drops the fields it does not know (subjectRegExp, issuerRegExp, failureAction, type) and then checks less than this policy says. `kubectl apply --validate=strict` refuses such fields instead of dropping them."));
    comments.push("Image references cover the repository's tags and digests only, in every spelling Kyverno compares (Docker Hub as docker.io/..., index.docker.io/... and short names).".into());
    if let Signer::Keyless {
        workflow_repository: Some(repo),
        ..
    } = &r.signer
    {
        if r.format == BundleFormat::Bundle {
            comments.push(format!("NOT ENFORCED HERE: certificate_github_workflow_repository = {repo:?}. Kyverno checks additionalExtensions only for cosign-format signatures, and this release writes Sigstore bundles only; `wharf verify` and cosign check it (see the verification guide)."));
        }
    }
    if r.format == BundleFormat::Both {
        comments.push("The release writes both cosign 2.x signatures and Sigstore bundles; this policy reads the former (type Cosign), for which Kyverno also checks certificate extensions.".into());
    }
    comments
}

/// The attestor entry: the release key, or its keyless identity, and the log.
fn kyverno_attestor(r: &Release) -> Yaml {
    let rekor = if r.tlog {
        Yaml::map([("url", Yaml::str(&r.rekor_url))])
    } else {
        Yaml::map([("ignoreTlog", Yaml::Bool(true))])
    };
    match &r.signer {
        Signer::Key(pem) => {
            let mut keys = vec![("publicKeys", Yaml::str(pem)), ("rekor", rekor)];
            if !r.tlog {
                // A key signature has no certificate, so no SCT; without a log entry
                // nothing else gives Kyverno a timestamp to require.
                keys.push(("ctlog", Yaml::map([("ignoreSCT", Yaml::Bool(true))])));
            }
            Yaml::map([("keys", Yaml::map(keys))])
        }
        Signer::Keyless {
            subject,
            issuer,
            workflow_repository,
        } => {
            let mut keyless = vec![
                kyverno_match(("subject", "subjectRegExp"), subject),
                kyverno_match(("issuer", "issuerRegExp"), issuer),
            ];
            if let (Some(repo), false) = (workflow_repository, r.format == BundleFormat::Bundle) {
                keyless.push((
                    "additionalExtensions",
                    Yaml::map([("githubWorkflowRepository", Yaml::str(repo))]),
                ));
            }
            keyless.push(("rekor", rekor));
            Yaml::map([("keyless", Yaml::map(keyless))])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn repo(destination: &str) -> ReleasedRepository {
        ReleasedRepository::parse(destination).unwrap().unwrap()
    }

    #[test]
    fn policy_controller_globs_use_normalised_names() {
        assert_eq!(
            repo("ghcr.io/acme/app").policy_controller_globs().unwrap(),
            ["ghcr.io/acme/app:*", "ghcr.io/acme/app@*"]
        );
        for hub in ["docker.io/acme/app", "acme/app", "index.docker.io/acme/app"] {
            assert_eq!(
                repo(hub).policy_controller_globs().unwrap(),
                ["index.docker.io/acme/app:*", "index.docker.io/acme/app@*"],
                "{hub}"
            );
        }
        assert_eq!(
            repo("docker.io/nginx").policy_controller_globs().unwrap(),
            [
                "index.docker.io/library/nginx:*",
                "index.docker.io/library/nginx@*"
            ]
        );
        assert!(repo("[::1]:5000/app").policy_controller_globs().is_err());
        assert_eq!(ReleasedRepository::parse("oci:out/x").unwrap(), None);
    }

    #[test]
    fn kyverno_references_cover_docker_hub_spellings() {
        assert_eq!(
            repo("123.dkr.ecr.eu-west-1.amazonaws.com/app").kyverno_image_references(),
            [
                "123.dkr.ecr.eu-west-1.amazonaws.com/app:*",
                "123.dkr.ecr.eu-west-1.amazonaws.com/app@*"
            ]
        );
        let library = repo("docker.io/library/nginx").kyverno_image_references();
        for name in [
            "docker.io/library/nginx",
            "docker.io/nginx",
            "index.docker.io/library/nginx",
            "index.docker.io/nginx",
            "library/nginx",
            "nginx",
        ] {
            assert!(
                library.contains(&format!("{name}:*")),
                "{name}: {library:?}"
            );
            assert!(
                library.contains(&format!("{name}@*")),
                "{name}: {library:?}"
            );
        }
        assert_eq!(library.len(), 12);
    }

    fn config(extra: &str) -> ReleaseConfig {
        let text = format!(
            "layout = \"l\"\nrepository = \"ghcr.io/acme/app\"\n{extra}\n[[mirror]]\ndestination = \"docker.io/acme/app\"\n[[mirror]]\ndestination = \"oci:air-gap\"\n"
        );
        ReleaseConfig::load(&text, "t", &BTreeMap::new(), &[]).unwrap()
    }

    const KEYLESS: &str = "[verify]\ncertificate_identity_regexp = '^https://github\\.com/acme/app/\\.github/workflows/r\\.yml@refs/(heads/master|tags/v.*)$'\ncertificate_oidc_issuer = \"https://token.actions.githubusercontent.com\"\ncertificate_github_workflow_repository = \"acme/app\"\n";

    #[test]
    fn keyless_regexps_are_anchored_and_backslashes_survive() {
        let y = admission_policy(&config(KEYLESS), Controller::PolicyController, None).unwrap();
        assert!(
            y.contains(r#"subjectRegExp: "^(?:^https://github\\.com/acme/app/\\.github/workflows/r\\.yml@refs/(heads/master|tags/v.*)$)$""#),
            "{y}"
        );
        assert!(y.contains("issuer: \"https://token.actions.githubusercontent.com\""));
        assert!(y.contains("NOT ENFORCED HERE: certificate_github_workflow_repository"));
        let k = admission_policy(&config(KEYLESS), Controller::Kyverno, None).unwrap();
        assert!(k.contains("githubWorkflowRepository: \"acme/app\""), "{k}");
        assert!(
            k.contains("policies.kyverno.io/minversion: \"1.13.0\""),
            "{k}"
        );
    }

    #[test]
    fn bundle_format_selects_the_controllers_bundle_mode() {
        let bundle = format!("[signing]\nbundle_format = \"bundle\"\n{KEYLESS}");
        let y = admission_policy(&config(&bundle), Controller::PolicyController, None).unwrap();
        assert!(y.contains("signatureFormat: \"bundle\""), "{y}");
        // The signature bundle is read as the attestation it is.
        assert!(
            y.contains("predicateType: \"https://sigstore.dev/cosign/sign/v1\""),
            "{y}"
        );
        let k = admission_policy(&config(&bundle), Controller::Kyverno, None).unwrap();
        assert!(k.contains("type: \"SigstoreBundle\""), "{k}");
        assert!(!k.contains("githubWorkflowRepository:"), "{k}");
        let key = "[signing]\nkey = \"k.key\"\nbundle_format = \"bundle\"\n";
        let err = admission_policy(&config(key), Controller::PolicyController, Some("PEM"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("only for keyless"), "{err}");
        let k = admission_policy(&config(key), Controller::Kyverno, Some("PEM")).unwrap();
        assert!(k.contains("minversion: \"1.19.0\""), "{k}");
    }

    #[test]
    fn kyverno_exact_identities_with_wildcard_characters_become_regexps() {
        let m = IdentityMatch::Exact("https://x/y?z=*".into());
        let (key, value) = kyverno_match(("subject", "subjectRegExp"), &m);
        assert_eq!(key, "subjectRegExp");
        assert_eq!(value, Yaml::str(r"^https://x/y\?z=\*$"));
        let (key, _) = kyverno_match(
            ("issuer", "issuerRegExp"),
            &IdentityMatch::Exact("https://i".into()),
        );
        assert_eq!(key, "issuer");
    }

    #[test]
    fn provenance_is_a_second_policy_controller_policy_and_sboms_are_not_required() {
        let text = format!("[attestations]\nsbom = \"generate\"\nprovenance = true\n{KEYLESS}");
        let y = admission_policy(&config(&text), Controller::PolicyController, None).unwrap();
        assert_eq!(y.matches("kind: \"ClusterImagePolicy\"").count(), 2, "{y}");
        assert!(y.contains("name: \"wharf-app-provenance\""));
        assert!(!y.contains("cyclonedx.org"), "{y}");
        assert!(y.contains("Not required here: the CycloneDX SBOM"));
        let k = admission_policy(&config(&text), Controller::Kyverno, None).unwrap();
        assert!(
            k.contains("type: \"https://slsa.dev/provenance/v1\""),
            "{k}"
        );
        assert!(!k.contains("cyclonedx.org"), "{k}");
    }

    #[test]
    fn names_and_refusals() {
        let text = "layout = \"l\"\nrepository = \"oci:out\"\n[signing]\nkey = \"k\"\n";
        let c = ReleaseConfig::load(text, "t", &BTreeMap::new(), &[]).unwrap();
        assert!(admission_policy(&c, Controller::Kyverno, Some("PEM")).is_err());
        let key = config("[signing]\nkey = \"k.key\"\n");
        assert!(admission_policy(&key, Controller::Kyverno, None).is_err());
        assert_eq!(policy_name(&repo("docker.io/acme/my_app")), "wharf-my-app");
    }
}
