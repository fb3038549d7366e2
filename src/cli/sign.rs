//! `wharf sign`, `wharf verify`, `wharf attest`, `wharf verify-attestation`, and the argument
//! groups they share: who signs (key or keyless) and who must have signed (the policy).

use super::key::PasswordArgs;
use super::trust::TufArgs;
use super::{default_signing_jobs, CredentialTargets, GlobalArgs};
use crate::cosign::attestation;
use crate::oci::{Digest, ImageRef, Platform};
use crate::ops::attest::{attest, verify_attestations, AttestRequest};
use crate::ops::bundles::BundleFormat;
use crate::ops::failure::{Failure, FailureKind};
use crate::ops::graph::targets;
use crate::ops::policy::PolicySpec;
use crate::ops::sign::{sign_staged, stage, SignRequest};
use crate::ops::verify::{verify, Policy, VerifyRequest};
use crate::sign::keyref::KeyRef;
use crate::sign::spec::{SignerKind, SignerSpec, Signing};
use crate::sigstore::claims::GithubClaim;
use crate::sigstore::trust::TrustRoot;
use crate::sigstore::trust_source::TrustSource;
use crate::store::{resolve_reference, ManifestRef, Store};
use crate::verify::{FullMatch, IdentityPolicy};
use anyhow::{anyhow, bail, Context, Result};
use clap::{ArgAction, Args};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

/// Sigstore settings shared by signing and verification.
#[derive(Args, Debug, Clone)]
pub struct SigstoreArgs {
    /// Sigstore trusted_root.json (Fulcio CAs, Rekor and CT log keys) for a private Sigstore
    /// or an air-gapped site; bypasses TUF. Default: the public-good instance's, kept current
    /// through TUF (see `wharf trust`).
    #[arg(long, env = "WHARF_TRUSTED_ROOT", value_name = "FILE")]
    pub trusted_root: Option<PathBuf>,

    #[command(flatten)]
    pub tuf: TufArgs,

    /// Rekor, the transparency log.
    #[arg(long, env = "WHARF_REKOR_URL", default_value = crate::sigstore::PUBLIC_REKOR_URL, value_name = "URL")]
    pub rekor_url: String,
}

impl SigstoreArgs {
    pub fn trust_source(&self) -> TrustSource {
        TrustSource {
            trusted_root: self.trusted_root.clone(),
            tuf: self.tuf.source(),
        }
    }
}

/// Who signs: a key, or keyless (Fulcio certificate for an OIDC identity).
#[derive(Args, Debug, Clone)]
pub struct SignerArgs {
    /// The private key: a file (cosign, PKCS#8 or SEC1 PEM), or env://VAR. Without it, signing
    /// is keyless.
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,

    /// Upload to the Rekor transparency log (as cosign does by default). Keyless needs it.
    #[arg(long, default_value_t = true, action = ArgAction::Set, value_name = "BOOL")]
    pub tlog_upload: bool,

    /// OIDC identity token for keyless signing (or a file holding it). In GitHub Actions the
    /// job's own token is used (needs `permissions: id-token: write`).
    #[arg(
        long,
        env = "SIGSTORE_ID_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub identity_token: Option<String>,

    /// Fulcio, the certificate authority for keyless signing.
    #[arg(long, env = "WHARF_FULCIO_URL", default_value = crate::sigstore::PUBLIC_FULCIO_URL, value_name = "URL")]
    pub fulcio_url: String,

    /// Keyless: sign with a certificate whose SCT (proof that Fulcio logged it in certificate
    /// transparency) cannot be checked, because the trusted root lists no CT log (a private
    /// Sigstore without one). Verifiers then need --insecure-ignore-sct too. cosign's name
    /// for it, --insecure-skip-verify, is accepted.
    #[arg(long, alias = "insecure-skip-verify", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, value_name = "BOOL")]
    pub insecure_ignore_sct: bool,

    #[command(flatten)]
    pub sigstore: SigstoreArgs,

    #[command(flatten)]
    pub password: PasswordArgs,
}

impl SignerArgs {
    /// Who signs, as these flags say.
    pub fn spec(&self) -> Result<SignerSpec> {
        if self.key.is_none() && !self.tlog_upload {
            bail!("keyless signatures must be logged: --tlog-upload=false needs --key");
        }
        let kind = match &self.key {
            Some(key) => SignerKind::Key {
                key: KeyRef::new(key),
                password: self.password.source(),
            },
            None => {
                super::cosign_env::refuse_sigstore_root_file(
                    self.sigstore.trusted_root.as_deref(),
                )?;
                SignerKind::Keyless {
                    identity_token: self.identity_token.clone(),
                    fulcio_url: self.fulcio_url.clone(),
                    ignore_sct: self.insecure_ignore_sct,
                }
            }
        };
        Ok(SignerSpec {
            kind,
            rekor_url: self.tlog_upload.then(|| self.sigstore.rekor_url.clone()),
        })
    }

    /// The signer these flags describe, and where its signatures are logged. Unless `quiet`,
    /// says whom a keyless certificate was issued to.
    pub async fn signer(&self, quiet: bool) -> Result<Signing> {
        let signing = self.spec()?.build(&self.sigstore.trust_source()).await?;
        if let (Some(identity), false) = (&signing.identity, quiet) {
            eprintln!(
                "wharf: signing keylessly as {}",
                crate::text::one_line(identity)
            );
        }
        Ok(signing)
    }
}

/// Who must have signed: a key, or a certificate identity with its OIDC issuer.
#[derive(Args, Debug, Clone)]
pub struct PolicyArgs {
    /// The public key (PEM file or env://VAR) the signatures must verify under.
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,

    /// Keyless: the exact identity (certificate SAN) that must have signed.
    #[arg(long, value_name = "IDENTITY")]
    pub certificate_identity: Option<String>,

    /// Keyless: a regular expression the identity must match in full,
    /// e.g. "https://github.com/OWNER/REPO/.*".
    #[arg(long, value_name = "REGEXP")]
    pub certificate_identity_regexp: Option<String>,

    /// Keyless: the OIDC issuer that must have vouched for the identity,
    /// e.g. https://token.actions.githubusercontent.com.
    #[arg(long, value_name = "ISSUER")]
    pub certificate_oidc_issuer: Option<String>,

    /// Keyless: a regular expression the OIDC issuer must match in full.
    #[arg(long, value_name = "REGEXP")]
    pub certificate_oidc_issuer_regexp: Option<String>,

    /// Keyless, GitHub: the repository (OWNER/REPO) the workflow ran in.
    #[arg(long, value_name = "OWNER/REPO")]
    pub certificate_github_workflow_repository: Option<String>,

    /// Keyless, GitHub: the git ref the workflow ran for, e.g. refs/tags/v1.2.0.
    #[arg(long, value_name = "REF")]
    pub certificate_github_workflow_ref: Option<String>,

    /// Keyless, GitHub: the commit the workflow ran for.
    #[arg(long, value_name = "SHA")]
    pub certificate_github_workflow_sha: Option<String>,

    /// Keyless, GitHub: the event that triggered the workflow, e.g. push.
    #[arg(long, value_name = "EVENT")]
    pub certificate_github_workflow_trigger: Option<String>,

    /// Keyless, GitHub: the workflow's name.
    #[arg(long, value_name = "NAME")]
    pub certificate_github_workflow_name: Option<String>,

    /// Accept signatures without transparency log evidence (made with --tlog-upload=false).
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, value_name = "BOOL")]
    pub insecure_ignore_tlog: bool,

    /// Accept a keyless certificate without checking its SCT (proof that it was logged in
    /// certificate transparency). Only for a trusted root that lists no CT log.
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, value_name = "BOOL")]
    pub insecure_ignore_sct: bool,

    #[command(flatten)]
    pub sigstore: SigstoreArgs,

    #[command(flatten)]
    pub password: PasswordArgs,
}

fn regex(flag: &str, value: &Option<String>) -> Result<Option<FullMatch>> {
    value
        .as_deref()
        .map(|v| {
            FullMatch::new(v).map_err(|e| anyhow!("{flag} is not a valid regular expression: {e}"))
        })
        .transpose()
}

impl PolicyArgs {
    /// The Sigstore trust material the checks need (see [`PolicySpec::trust_root`]).
    pub async fn trust_root(&self) -> Result<TrustRoot> {
        if self.key.is_none() {
            super::cosign_env::refuse_sigstore_root_file(self.sigstore.trusted_root.as_deref())?;
        }
        self.spec()?.trust_root(&self.sigstore.trust_source()).await
    }

    /// Who must have signed, as these flags say. There is no default: without a policy
    /// nothing is verified.
    pub fn spec(&self) -> Result<PolicySpec> {
        let keyless_flags = self.certificate_identity.is_some()
            || self.certificate_identity_regexp.is_some()
            || self.certificate_oidc_issuer.is_some()
            || self.certificate_oidc_issuer_regexp.is_some();
        let mut spec = PolicySpec {
            key: self.key.as_deref().map(KeyRef::new),
            password: self.password.source(),
            ignore_tlog: self.insecure_ignore_tlog,
            ignore_sct: self.insecure_ignore_sct,
            ..PolicySpec::default()
        };
        if spec.key.is_some() {
            if keyless_flags {
                bail!("pass either --key or --certificate-identity/--certificate-oidc-issuer, not both");
            }
            return Ok(spec);
        }
        let github_claims = [
            (
                GithubClaim::WorkflowTrigger,
                &self.certificate_github_workflow_trigger,
            ),
            (
                GithubClaim::WorkflowSha,
                &self.certificate_github_workflow_sha,
            ),
            (
                GithubClaim::WorkflowName,
                &self.certificate_github_workflow_name,
            ),
            (
                GithubClaim::WorkflowRepository,
                &self.certificate_github_workflow_repository,
            ),
            (
                GithubClaim::WorkflowRef,
                &self.certificate_github_workflow_ref,
            ),
        ];
        spec.identity = IdentityPolicy {
            identity: self.certificate_identity.clone(),
            identity_regexp: regex(
                "--certificate-identity-regexp",
                &self.certificate_identity_regexp,
            )?,
            issuer: self.certificate_oidc_issuer.clone(),
            issuer_regexp: regex(
                "--certificate-oidc-issuer-regexp",
                &self.certificate_oidc_issuer_regexp,
            )?,
            github_claims: github_claims
                .into_iter()
                .filter_map(|(claim, value)| value.clone().map(|v| (claim, v)))
                .collect(),
        };
        if !spec.identity.is_set() {
            bail!(
                "verification needs a policy: --key PUBLIC_KEY, or --certificate-identity (or -regexp) \
                 together with --certificate-oidc-issuer (or -regexp)"
            );
        }
        Ok(spec)
    }

    /// The verification policy the flags describe, its key read.
    pub fn policy(&self) -> Result<Policy> {
        self.spec()?.policy()
    }
}

/// Sign an image by digest, cosign-compatibly (tag sha256-<hex>.sig in the same repository).
///
/// With --key, signs with that key. Without, signs keylessly: an ephemeral key certified by
/// Fulcio for the identity in an OIDC token (GitHub Actions' own, or --identity-token), the
/// signature logged in Rekor. With --recursive, the index and every manifest under it are
/// signed, so each platform can be verified on its own. Signatures are added to those already
/// there, never replacing them; the same payload signed by the same key is not added twice.
/// COSIGN_REPOSITORY=HOST/REPO keeps the .sig tags in that repository instead, as cosign does
/// (verify, attest and tree then need it set too).
///
/// Examples:
///   wharf sign --key cosign.key --recursive ghcr.io/acme/app@sha256:...
///   wharf sign --key env://SIGNING_KEY --tlog-upload=false oci:./out@sha256:...
///   wharf sign --recursive ghcr.io/acme/app@sha256:...          # keyless, in GitHub Actions
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct SignArgs {
    /// The image, by digest: HOST/REPO@sha256:... or oci:DIR@sha256:...
    #[arg(value_name = "IMAGE@DIGEST")]
    pub image: String,

    /// Sign the index and every manifest under it.
    #[arg(long, short = 'r')]
    pub recursive: bool,

    /// Extra claim for the signed payload (repeatable), e.g. -a git-sha=abc123.
    #[arg(long = "annotations", short = 'a', value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,

    /// Accept IMAGE:TAG: resolve the tag once, sign that digest and print it.
    #[arg(long)]
    pub resolve_tag: bool,

    /// How to store signatures and attestations: legacy (cosign 2.x's sha256-<hex>.sig/.att
    /// tags, read by cosign 2 and 3, skopeo and policy controllers), bundle (Sigstore bundle
    /// v0.3 as an OCI referrer, what cosign 3 and GitHub attestations write), or both.
    #[arg(long, value_enum, default_value_t = BundleFormat::Legacy, env = "WHARF_BUNDLE_FORMAT", value_name = "FORMAT")]
    pub bundle_format: BundleFormat,

    /// How many manifests to sign at once.
    #[arg(long, short = 'j', default_value_t = default_signing_jobs(), value_name = "N")]
    pub jobs: usize,

    #[command(flatten)]
    pub signer: SignerArgs,

    #[command(flatten)]
    pub assume_yes: super::compat::AssumeYes,
}

/// Verify an image's signatures, fail-closed.
///
/// Exits 0 only if, for the image (and with --recursive every manifest under it), at least one
/// signature satisfies the policy (--key, or a keyless certificate identity and OIDC issuer),
/// has transparency-log evidence (unless --insecure-ignore-tlog), and names exactly that
/// manifest's digest. Prints the verified payloads as JSON on standard output and the checks
/// on standard error. No network access besides the registry: the bundle is checked offline.
/// Signatures are read from COSIGN_REPOSITORY=HOST/REPO when set, as cosign does.
///
/// Examples:
///   wharf verify --key cosign.pub --recursive ghcr.io/acme/app@sha256:...
///   wharf verify --key keys/release.pub --insecure-ignore-tlog oci:./out:v1
///   wharf verify --recursive \
///     --certificate-identity-regexp 'https://github.com/acme/app/.*' \
///     --certificate-oidc-issuer https://token.actions.githubusercontent.com \
///     ghcr.io/acme/app@sha256:...
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct VerifyArgs {
    /// The image: HOST/REPO@sha256:..., or a tag (resolved once and reported).
    #[arg(value_name = "IMAGE[@DIGEST]")]
    pub image: String,

    /// Verify the index and every manifest under it.
    #[arg(long, short = 'r')]
    pub recursive: bool,

    /// How many manifests to verify at once (cosign's --max-workers is accepted).
    #[arg(long, short = 'j', alias = "max-workers", default_value_t = default_signing_jobs(), value_name = "N")]
    pub jobs: usize,

    #[command(flatten)]
    pub policy: PolicyArgs,
}

/// Attach a signed in-toto attestation (an SBOM, SLSA provenance, ...) to an image.
///
/// The predicate file is wrapped, byte for byte, in an in-toto Statement whose subject is the
/// manifest digest, signed in a DSSE envelope and stored as cosign does (a layer of the
/// sha256-<hex>.att manifest), so `cosign verify-attestation` and `cosign download
/// attestation` read it. Attestations are appended; --replace replaces those of the same type.
///
/// Examples:
///   wharf attest --key cosign.key --type cyclonedx --predicate sbom.cdx.json \
///     ghcr.io/acme/app@sha256:...
///   wharf attest --key cosign.key --type cyclonedx --predicate sbom-arm64.cdx.json \
///     --platform linux/arm64 ghcr.io/acme/app@sha256:...
///   wharf attest --type slsaprovenance1 --predicate provenance.json \
///     ghcr.io/acme/app@sha256:...                       # keyless, in GitHub Actions
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct AttestArgs {
    /// The image, by digest.
    #[arg(value_name = "IMAGE@DIGEST")]
    pub image: String,

    /// Predicate type: cyclonedx, spdxjson, slsaprovenance1, slsaprovenance02, vuln, custom,
    /// or a predicate type URI.
    #[arg(long = "type", value_name = "TYPE", default_value = "custom")]
    pub kind: String,

    /// The predicate: a JSON file (e.g. a CycloneDX SBOM from syft, cdxgen or Trivy).
    #[arg(long, value_name = "FILE")]
    pub predicate: PathBuf,

    /// Attest the manifest of this platform (os/arch[/variant]) under the index.
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,

    /// Replace existing attestations of the same predicate type.
    #[arg(long)]
    pub replace: bool,

    /// Accept IMAGE:TAG: resolve the tag once and attest that digest.
    #[arg(long)]
    pub resolve_tag: bool,

    /// How to store signatures and attestations: legacy (cosign 2.x's sha256-<hex>.sig/.att
    /// tags, read by cosign 2 and 3, skopeo and policy controllers), bundle (Sigstore bundle
    /// v0.3 as an OCI referrer, what cosign 3 and GitHub attestations write), or both.
    #[arg(long, value_enum, default_value_t = BundleFormat::Legacy, env = "WHARF_BUNDLE_FORMAT", value_name = "FORMAT")]
    pub bundle_format: BundleFormat,

    #[command(flatten)]
    pub signer: SignerArgs,

    #[command(flatten)]
    pub assume_yes: super::compat::AssumeYes,
}

/// Verify an image's attestations and print them, fail-closed.
///
/// Exits 0 only if, for the image (and with --recursive every manifest under it), at least one
/// attestation of --type verifies under the policy, has transparency-log evidence (unless
/// --insecure-ignore-tlog) and has this manifest as its subject. Prints the verified DSSE
/// envelopes, one JSON object a line, as cosign does (the statement is base64 in `payload`);
/// --statements prints the decoded in-toto statements instead, and --output-predicate writes
/// the predicate exactly as attached.
///
/// Examples:
///   wharf verify-attestation --key cosign.pub --type cyclonedx \
///     --output-predicate sbom.json ghcr.io/acme/app@sha256:...
///   wharf verify-attestation --key cosign.pub --type cyclonedx ghcr.io/acme/app@sha256:... \
///     | jq -r .payload | base64 -d | jq .predicate
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct VerifyAttestationArgs {
    #[arg(value_name = "IMAGE[@DIGEST]")]
    pub image: String,

    /// The predicate type to look for (see `wharf attest --type`).
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: Option<String>,

    /// Check every manifest under the index has such an attestation.
    #[arg(long, short = 'r')]
    pub recursive: bool,

    /// Write the verified predicate, exactly as attached, to this file.
    #[arg(long, value_name = "FILE")]
    pub output_predicate: Option<PathBuf>,

    /// Print the verified in-toto statements, decoded, one JSON object a line, instead of
    /// their DSSE envelopes.
    #[arg(long)]
    pub statements: bool,

    /// How many manifests to verify at once (cosign's --max-workers is accepted).
    #[arg(long, short = 'j', alias = "max-workers", default_value_t = default_signing_jobs(), value_name = "N")]
    pub jobs: usize,

    #[command(flatten)]
    pub policy: PolicyArgs,
}

fn parse_annotations(pairs: &[String]) -> Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow!("annotation {p:?} is not KEY=VALUE"))
        })
        .collect()
}

/// The digest to work on: the reference's own, or with `allow_tag` its tag resolved once (a
/// missing tag is cosign's NonExistentTag failure, exit 11).
pub(super) async fn digest_of(
    store: &dyn Store,
    image: &ImageRef,
    allow_tag: bool,
) -> Result<Digest> {
    if let Some(d) = &image.digest {
        return Ok(d.clone());
    }
    if !allow_tag {
        image.require_digest()?;
    }
    // A missing tag is its own failure (cosign's exit code 11), not "no signatures".
    let resolved = match &image.tag {
        Some(tag) => store.resolve(ManifestRef::Tag(tag)).await?.ok_or_else(|| {
            Failure::error(
                FailureKind::TagNotFound,
                format!("tag {tag:?} not found in {}", store.repository()),
            )
        })?,
        None => resolve_reference(store, image).await?,
    };
    eprintln!("wharf: resolved {image} to {}", resolved.digest);
    Ok(resolved.digest)
}

pub async fn run_sign(args: &SignArgs, global: &GlobalArgs) -> Result<ExitCode> {
    let image = ImageRef::parse(&args.image)?;
    let annotations = parse_annotations(&args.annotations)?;
    let stores = global.stores(CredentialTargets::image(&image))?;
    super::cosign_env::note_signature_repository(&stores, &image, global.quiet);
    // The signer (a key to decrypt, or a certificate to obtain) is made while the registry is
    // read and the payloads are uploaded: neither waits for the other.
    let prepare = async {
        let store = stores.open(&image).await?;
        let digest = digest_of(store.as_ref(), &image, args.resolve_tag).await?;
        let request = SignRequest {
            digest: digest.clone(),
            recursive: args.recursive,
            annotations,
            format: args.bundle_format,
            jobs: args.jobs,
        };
        let targets = targets(store.as_ref(), &digest, args.recursive, args.jobs).await?;
        let staged = stage(store.as_ref(), &request, targets).await?;
        Ok::<_, anyhow::Error>((store, request, staged))
    };
    let ((store, request, staged), signing) =
        tokio::try_join!(prepare, args.signer.signer(global.quiet))?;
    let report = sign_staged(
        store.as_ref(),
        signing.signer.as_ref(),
        signing.tlog.as_ref(),
        &request,
        staged,
        &global.progress(),
    )
    .await?;
    global.emit(&report)?;
    Ok(ExitCode::SUCCESS)
}

async fn verify_request(
    policy_args: &PolicyArgs,
    digest: Digest,
    recursive: bool,
    jobs: usize,
) -> Result<VerifyRequest> {
    Ok(VerifyRequest {
        digest,
        recursive,
        ignore_tlog: policy_args.insecure_ignore_tlog,
        ignore_sct: policy_args.insecure_ignore_sct,
        trust: policy_args.trust_root().await?,
        accept: BundleFormat::Both,
        jobs,
    })
}

pub async fn run_verify(args: &VerifyArgs, global: &GlobalArgs) -> Result<ExitCode> {
    let image = ImageRef::parse(&args.image)?;
    let policy = args.policy.policy()?;
    let stores = global.stores(CredentialTargets::image(&image))?;
    let store = stores.open(&image).await?;
    let digest = digest_of(store.as_ref(), &image, true).await?;
    let request = verify_request(&args.policy, digest, args.recursive, args.jobs).await?;
    let mut report = verify(store.as_ref(), &policy, &request).await?;
    report.image = Some(args.image.clone());
    global.emit(&report)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn run_attest(args: &AttestArgs, global: &GlobalArgs) -> Result<ExitCode> {
    let image = ImageRef::parse(&args.image)?;
    let predicate_type = attestation::predicate_type(&args.kind)?;
    let predicate =
        crate::files::read_bounded(&args.predicate, crate::files::PREDICATE_LIMIT, "predicate")?;
    attestation::check_predicate(&predicate_type, &predicate)
        .with_context(|| format!("predicate {}", args.predicate.display()))?;
    let platform = args.platform.as_deref().map(Platform::parse).transpose()?;
    let stores = global.stores(CredentialTargets::image(&image))?;
    super::cosign_env::note_signature_repository(&stores, &image, global.quiet);
    let store = stores.open(&image).await?;
    let digest = digest_of(store.as_ref(), &image, args.resolve_tag).await?;
    let signing = args.signer.signer(global.quiet).await?;
    let request = AttestRequest {
        digest,
        platform,
        predicate_type,
        predicate,
        replace: args.replace,
        format: args.bundle_format,
    };
    let report = attest(
        store.as_ref(),
        signing.signer.as_ref(),
        signing.tlog.as_ref(),
        &request,
    )
    .await?;
    global.emit(&report)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn run_verify_attestation(
    args: &VerifyAttestationArgs,
    global: &GlobalArgs,
) -> Result<ExitCode> {
    let image = ImageRef::parse(&args.image)?;
    let policy = args.policy.policy()?;
    let predicate_type = args
        .kind
        .as_deref()
        .map(attestation::predicate_type)
        .transpose()?;
    let stores = global.stores(CredentialTargets::image(&image))?;
    let store = stores.open(&image).await?;
    let digest = digest_of(store.as_ref(), &image, true).await?;
    let request = verify_request(&args.policy, digest, args.recursive, args.jobs).await?;
    let mut report =
        verify_attestations(store.as_ref(), &policy, &request, predicate_type.as_deref()).await?;
    if let Some(path) = &args.output_predicate {
        let predicate = report
            .verified
            .first()
            .and_then(|v| v.predicates.first())
            .ok_or_else(|| anyhow!("no verified predicate to write"))?;
        crate::files::write_output(path, predicate.as_bytes())?;
    }
    report.statements_on_stdout = args.statements;
    global.emit(&report)?;
    Ok(ExitCode::SUCCESS)
}
