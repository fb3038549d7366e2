//! `wharf sign` and `wharf verify`.

use super::key::{load_private_key, load_public_key, PasswordArgs};
use super::{default_jobs, github, GlobalArgs};
use crate::oci::{Digest, ImageRef};
use crate::ops::sign::{sign, SignRequest, Tlog};
use crate::ops::verify::{verify, Policy, VerifyRequest};
use crate::sign::keyless::KeylessSigner;
use crate::sign::{KeySigner, Signer};
use crate::sigstore::cert::IdentityPolicy;
use crate::sigstore::oidc::TokenSource;
use crate::sigstore::trust::TrustRoot;
use crate::store::{resolve_reference, Store};
use anyhow::{anyhow, bail, Result};
use clap::{ArgAction, Args};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::process::ExitCode;

/// Sign an image by digest, cosign-compatibly (tag sha256-<hex>.sig in the same repository).
///
/// With --key, signs with that key. Without, signs keylessly: an ephemeral key certified by
/// Fulcio for the identity in an OIDC token (GitHub Actions' own, or --identity-token), the
/// signature logged in Rekor. With --recursive, the index and every manifest under it are signed, so each platform can be
/// verified on its own. Signatures are added to those already there, never replacing them; a
/// signature by the same key on the same payload is not added twice.
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

    /// The private key: a file (cosign, PKCS#8 or SEC1 PEM), or env://VAR.
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,

    /// Sign the index and every manifest under it.
    #[arg(long, short = 'r')]
    pub recursive: bool,

    /// Extra claim for the signed payload (repeatable), e.g. -a git-sha=abc123.
    #[arg(long = "annotations", short = 'a', value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,

    /// Accept IMAGE:TAG: resolve the tag once, sign that digest and print it.
    #[arg(long)]
    pub resolve_tag: bool,

    /// Upload the signature to the Rekor transparency log (as cosign does by default).
    #[arg(long, default_value_t = true, action = ArgAction::Set, value_name = "BOOL")]
    pub tlog_upload: bool,

    #[command(flatten)]
    pub sigstore: SigstoreArgs,

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

    /// How many manifests to sign at once.
    #[arg(long, short = 'j', default_value_t = default_jobs(), value_name = "N")]
    pub jobs: usize,

    #[command(flatten)]
    pub password: PasswordArgs,
}

/// Verify an image's signatures, fail-closed.
///
/// Exits 0 only if, for the image (and with --recursive every manifest under it), at least one
/// signature satisfies the policy (--key, or a keyless certificate identity and OIDC issuer),
/// has transparency-log evidence (unless --insecure-ignore-tlog), and names exactly that
/// manifest's digest. Prints the verified payloads as JSON on standard output and the checks
/// on standard error. No network access besides the registry: the bundle is checked offline.
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

    /// The public key (PEM file or env://VAR) the signatures must verify under.
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,

    /// Verify the index and every manifest under it.
    #[arg(long, short = 'r')]
    pub recursive: bool,

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

    #[command(flatten)]
    pub sigstore: SigstoreArgs,

    /// Accept signatures without transparency log evidence (made with --tlog-upload=false).
    #[arg(long, default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, value_name = "BOOL")]
    pub insecure_ignore_tlog: bool,

    #[arg(long, short = 'j', default_value_t = default_jobs(), value_name = "N")]
    pub jobs: usize,

    #[command(flatten)]
    pub password: PasswordArgs,
}

/// Sigstore settings shared by signing and verification.
#[derive(Args, Debug)]
pub struct SigstoreArgs {
    /// Sigstore trusted_root.json (Fulcio CAs, Rekor and CT log keys) for a private Sigstore
    /// or an air-gapped site. Default: the public-good instance's, built in.
    #[arg(long, env = "WHARF_TRUSTED_ROOT", value_name = "FILE")]
    pub trusted_root: Option<std::path::PathBuf>,

    /// Rekor, the transparency log.
    #[arg(long, env = "WHARF_REKOR_URL", default_value = crate::sigstore::PUBLIC_REKOR_URL, value_name = "URL")]
    pub rekor_url: String,
}

impl SigstoreArgs {
    pub fn trust_root(&self) -> Result<TrustRoot> {
        match &self.trusted_root {
            Some(path) => TrustRoot::load(path),
            None => Ok(TrustRoot::public_good()),
        }
    }
}

fn sigstore_http() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .user_agent(concat!("wharf/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(15))
        .timeout(std::time::Duration::from_secs(60))
        .build()?)
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

/// The digest to work on: the reference's own, or with `allow_tag` its tag resolved once.
async fn digest_of(store: &dyn Store, image: &ImageRef, allow_tag: bool) -> Result<Digest> {
    if let Some(d) = &image.digest {
        return Ok(d.clone());
    }
    if !allow_tag {
        image.require_digest()?;
    }
    let resolved = resolve_reference(store, image).await?;
    eprintln!("wharf: resolved {image} to {}", resolved.digest);
    Ok(resolved.digest)
}

pub async fn run_sign(args: &SignArgs, global: &GlobalArgs) -> Result<ExitCode> {
    let image = ImageRef::parse(&args.image)?;
    let http = sigstore_http()?;
    let signer: Box<dyn Signer> = match &args.key {
        Some(key) => Box::new(KeySigner::new(load_private_key(key, &args.password)?)),
        None => {
            let tokens = TokenSource {
                explicit: args.identity_token.clone(),
                audience: "sigstore".into(),
            };
            let trust = args.sigstore.trust_root()?;
            let signer = KeylessSigner::obtain(&http, &args.fulcio_url, &tokens, &trust).await?;
            if !global.quiet {
                eprintln!("wharf: signing keylessly as {}", signer.identity());
            }
            Box::new(signer)
        }
    };
    if args.key.is_none() && !args.tlog_upload {
        bail!("keyless signatures must be logged: --tlog-upload=false needs --key");
    }
    let tlog = args.tlog_upload.then(|| Tlog {
        http: http.clone(),
        rekor_url: args.sigstore.rekor_url.clone(),
    });
    let stores = global.stores()?;
    let store = stores.open(&image).await?;
    let digest = digest_of(store.as_ref(), &image, args.resolve_tag).await?;
    let request = SignRequest {
        digest: digest.clone(),
        recursive: args.recursive,
        annotations: parse_annotations(&args.annotations)?,
        jobs: args.jobs,
    };
    let report = sign(
        store.as_ref(),
        signer.as_ref(),
        tlog.as_ref(),
        &request,
        &global.progress(),
    )
    .await?;
    github::set_outputs(&[("signed-digest".into(), digest.to_string())])?;
    global.print(&report, || {
        let mut s = String::new();
        for m in &report.signed {
            let _ = writeln!(
                s,
                "{} {}@{}{}",
                if m.added { "signed" } else { "already signed" },
                report.repository,
                m.digest,
                m.platform
                    .as_deref()
                    .map(|p| format!(" ({p})"))
                    .unwrap_or_default()
            );
        }
        s
    })?;
    Ok(ExitCode::SUCCESS)
}

pub async fn run_verify(args: &VerifyArgs, global: &GlobalArgs) -> Result<ExitCode> {
    let image = ImageRef::parse(&args.image)?;
    let policy = verify_policy(args)?;
    let trust = args.sigstore.trust_root()?;
    let stores = global.stores()?;
    let store = stores.open(&image).await?;
    let digest = digest_of(store.as_ref(), &image, true).await?;
    let request = VerifyRequest {
        digest,
        recursive: args.recursive,
        ignore_tlog: args.insecure_ignore_tlog,
        trust,
        jobs: args.jobs,
    };
    let report = verify(store.as_ref(), &policy, &request).await?;
    match global.output {
        super::OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        super::OutputFormat::Text => {
            if !global.quiet {
                eprintln!(
                    "Verification for {}@{} --",
                    report.repository, request.digest
                );
                eprintln!("The following checks were performed on each of these signatures:");
                for c in &report.checks {
                    eprintln!("  - {c}");
                }
                for m in &report.verified {
                    eprintln!(
                        "  verified {}{}",
                        m.digest,
                        m.platform
                            .as_deref()
                            .map(|p| format!(" ({p})"))
                            .unwrap_or_default()
                    );
                }
            }
            // Like cosign: the verified payloads, as a JSON array, on standard output.
            let payloads: Vec<&serde_json::Value> =
                report.verified.iter().flat_map(|m| &m.payloads).collect();
            println!("{}", serde_json::to_string(&payloads)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn regex(flag: &str, value: &Option<String>) -> Result<Option<regex::Regex>> {
    value
        .as_deref()
        .map(|v| {
            regex::Regex::new(v)
                .map_err(|e| anyhow!("{flag} is not a valid regular expression: {e}"))
        })
        .transpose()
}

/// The verification policy the flags describe: a key, or an identity with its issuer. There
/// is no default: without a policy nothing is verified.
fn verify_policy(args: &VerifyArgs) -> Result<Policy> {
    let keyless_flags = args.certificate_identity.is_some()
        || args.certificate_identity_regexp.is_some()
        || args.certificate_oidc_issuer.is_some()
        || args.certificate_oidc_issuer_regexp.is_some();
    if let Some(key) = &args.key {
        if keyless_flags {
            bail!(
                "pass either --key or --certificate-identity/--certificate-oidc-issuer, not both"
            );
        }
        return Ok(Policy::Key(load_public_key(key, &args.password)?));
    }
    let mut github_claims = Vec::new();
    for (oid, value) in [
        (
            "1.3.6.1.4.1.57264.1.2",
            &args.certificate_github_workflow_trigger,
        ),
        (
            "1.3.6.1.4.1.57264.1.3",
            &args.certificate_github_workflow_sha,
        ),
        (
            "1.3.6.1.4.1.57264.1.4",
            &args.certificate_github_workflow_name,
        ),
        (
            "1.3.6.1.4.1.57264.1.5",
            &args.certificate_github_workflow_repository,
        ),
        (
            "1.3.6.1.4.1.57264.1.6",
            &args.certificate_github_workflow_ref,
        ),
    ] {
        if let Some(v) = value {
            github_claims.push((oid.to_string(), v.clone()));
        }
    }
    let identity = IdentityPolicy {
        identity: args.certificate_identity.clone(),
        identity_regexp: regex(
            "--certificate-identity-regexp",
            &args.certificate_identity_regexp,
        )?,
        issuer: args.certificate_oidc_issuer.clone(),
        issuer_regexp: regex(
            "--certificate-oidc-issuer-regexp",
            &args.certificate_oidc_issuer_regexp,
        )?,
        github_claims,
    };
    if !identity.is_set() {
        bail!(
            "verification needs a policy: --key PUBLIC_KEY, or --certificate-identity (or -regexp) \
             together with --certificate-oidc-issuer (or -regexp)"
        );
    }
    Ok(Policy::Identity(identity))
}
