//! `wharf sign-blob`, `attest-blob`, `verify-blob`, `verify-blob-attestation`: files signed
//! into Sigstore bundles, cosign's verbs and flags.

use super::sign::{PolicyArgs, SignerArgs};
use super::GlobalArgs;
use crate::cosign::attestation;
use crate::ops::blob::{
    attest_blob, read_bounded, sign_blob, verify_blob, write_atomically, Artifact,
    BlobVerifyRequest, MAX_PREDICATE,
};
use crate::report::Document;
use crate::sigstore::bundle::SigstoreBundle;
use crate::verify::Rejection;
use anyhow::{bail, Context, Result};
use clap::{ArgAction, Args};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Flags cosign users pass that wharf needs no answer to.
#[derive(Args, Debug, Clone)]
pub struct CosignCompatArgs {
    /// Accepted for cosign compatibility: wharf reads and writes only Sigstore bundles
    /// (`--new-bundle-format=false` is refused).
    #[arg(long, default_value_t = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, value_name = "BOOL", hide = true)]
    pub new_bundle_format: bool,

    /// Accepted for cosign compatibility: wharf never asks for confirmation.
    #[arg(long, short = 'y', hide = true)]
    pub yes: bool,
}

impl CosignCompatArgs {
    fn check(&self) -> Result<()> {
        if !self.new_bundle_format {
            bail!("wharf writes and reads only the Sigstore bundle format: drop --new-bundle-format=false");
        }
        Ok(())
    }
}

/// Sign a file into a Sigstore bundle (v0.3, a signature over the file's SHA-256).
///
/// With --key, signs with that key; without, keylessly (an ephemeral key certified by Fulcio
/// for the identity in an OIDC token, GitHub Actions' own or --identity-token). The signature
/// is logged in Rekor (a hashedrekord entry) unless --tlog-upload=false. `cosign verify-blob
/// --bundle` and `sigstore verify` accept the bundle.
///
/// Examples:
///   wharf sign-blob --key release.key --bundle wharf.tar.gz.sigstore.json wharf.tar.gz
///   wharf sign-blob --bundle app.sigstore.json app            # keyless, in GitHub Actions
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct SignBlobArgs {
    #[command(flatten)]
    pub common: BlobSignArgs,

    /// Also write the signature, base64, here.
    #[arg(long, value_name = "FILE")]
    pub output_signature: Option<PathBuf>,

    /// Also write the signing certificate (keyless), PEM, here.
    #[arg(long, value_name = "FILE")]
    pub output_certificate: Option<PathBuf>,
}

/// What both blob signing verbs take.
#[derive(Args, Debug)]
pub struct BlobSignArgs {
    /// The file to sign, or that the statement is about.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Where to write the Sigstore bundle.
    #[arg(long, value_name = "FILE")]
    pub bundle: PathBuf,

    #[command(flatten)]
    pub signer: SignerArgs,

    #[command(flatten)]
    pub compat: CosignCompatArgs,
}

/// Attest a file: a signed in-toto statement about it, in a Sigstore bundle (v0.3, DSSE).
///
/// The statement's subject is the file's name and SHA-256; the predicate file is embedded
/// byte for byte. Logged in Rekor (a dsse entry) unless --tlog-upload=false.
///
/// Examples:
///   wharf attest-blob --key release.key --type slsaprovenance1 --predicate provenance.json \
///     --bundle wharf.tar.gz.intoto.sigstore.json wharf.tar.gz
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct AttestBlobArgs {
    #[command(flatten)]
    pub common: BlobSignArgs,

    /// Predicate type: cyclonedx, spdxjson, slsaprovenance1, slsaprovenance02, vuln, custom,
    /// or a predicate type URI.
    #[arg(long = "type", value_name = "TYPE", default_value = "custom")]
    pub kind: String,

    /// The predicate: a JSON file.
    #[arg(long, value_name = "FILE")]
    pub predicate: PathBuf,
}

/// Verify a file against a Sigstore bundle, fail-closed.
///
/// FILE may be the file, or its digest as sha256:HEX. Exits 0 only if the bundle's signature
/// covers the file, satisfies the policy (--key, or a keyless certificate identity and OIDC
/// issuer), is in the transparency log (unless --insecure-ignore-tlog) and was made while the
/// certificate was valid, by the log's or a timestamp authority's signed time. Offline: the
/// trusted root (built in, or --trusted-root) is all it needs. Bundles v0.1 to v0.3, Rekor v1
/// and v2 entries, and RFC 3161 timestamps are read.
///
/// Examples:
///   wharf verify-blob --key release.pub --bundle wharf.tar.gz.sigstore.json wharf.tar.gz
///   wharf verify-blob --bundle app.sigstore.json \
///     --certificate-identity-regexp 'https://github.com/acme/app/.*' \
///     --certificate-oidc-issuer https://token.actions.githubusercontent.com app
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct VerifyBlobArgs {
    #[command(flatten)]
    pub common: BlobVerifyArgs,
}

/// What both blob verifications take.
#[derive(Args, Debug)]
pub struct BlobVerifyArgs {
    /// The file, or its digest as sha256:HEX.
    #[arg(value_name = "FILE|sha256:HEX")]
    pub artifact: String,

    /// The Sigstore bundle to verify against.
    #[arg(long, value_name = "FILE")]
    pub bundle: PathBuf,

    #[command(flatten)]
    pub policy: PolicyArgs,

    #[command(flatten)]
    pub compat: CosignCompatArgs,
}

/// Verify a file's attestation (a Sigstore bundle with an in-toto statement), fail-closed.
///
/// As verify-blob, and the statement must name the file's SHA-256 among its subjects (and be
/// of --type, when given). Prints the statement.
///
/// Examples:
///   wharf verify-blob-attestation --key release.pub --type slsaprovenance1 \
///     --bundle wharf.tar.gz.intoto.sigstore.json wharf.tar.gz
#[derive(Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct VerifyBlobAttestationArgs {
    /// The predicate type the statement must have (see `wharf attest --type`).
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: Option<String>,

    #[command(flatten)]
    pub common: BlobVerifyArgs,
}

fn write_bundle(path: &Path, bundle: &SigstoreBundle) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(bundle)?;
    bytes.push(b'\n');
    write_atomically(path, &bytes)
}

pub async fn run_sign_blob(args: &SignBlobArgs, global: &GlobalArgs) -> Result<ExitCode> {
    let common = &args.common;
    common.compat.check()?;
    let signing = common.signer.signer(global.quiet).await?;
    let bundle = sign_blob(&common.file, signing.signer.as_ref(), signing.tlog.as_ref()).await?;
    write_bundle(&common.bundle, &bundle)?;
    if let Some(path) = &args.output_signature {
        let signature = &bundle
            .message_signature
            .as_ref()
            .expect("a message bundle")
            .signature;
        write_atomically(path, signature.as_bytes())?;
    }
    if let Some(path) = &args.output_certificate {
        let Some(pem) = signing.signer.certificate_pem() else {
            bail!("--output-certificate: signing with a key yields no certificate");
        };
        write_atomically(path, pem.as_bytes())?;
    }
    report_written(global, &common.file, &common.bundle, &bundle)
}

pub async fn run_attest_blob(args: &AttestBlobArgs, global: &GlobalArgs) -> Result<ExitCode> {
    let common = &args.common;
    common.compat.check()?;
    let predicate_type = attestation::predicate_type(&args.kind)?;
    let predicate = read_bounded(&args.predicate, MAX_PREDICATE, "predicate")?;
    attestation::check_predicate(&predicate_type, &predicate)
        .with_context(|| format!("predicate {}", args.predicate.display()))?;
    let signing = common.signer.signer(global.quiet).await?;
    let bundle = attest_blob(
        &common.file,
        &predicate_type,
        &predicate,
        signing.signer.as_ref(),
        signing.tlog.as_ref(),
    )
    .await?;
    write_bundle(&common.bundle, &bundle)?;
    report_written(global, &common.file, &common.bundle, &bundle)
}

fn report_written(
    global: &GlobalArgs,
    file: &Path,
    path: &Path,
    bundle: &SigstoreBundle,
) -> Result<ExitCode> {
    let logged = !bundle.verification_material.tlog_entries.is_empty();
    global.emit(&Document {
        json: serde_json::json!({
            "file": file.display().to_string(),
            "bundle": path.display().to_string(),
            "mediaType": bundle.media_type,
            "transparencyLog": logged,
        }),
        text: format!("Wrote bundle to file {}\n", path.display()),
    })?;
    Ok(ExitCode::SUCCESS)
}

pub async fn run_verify_blob(args: &VerifyBlobArgs, global: &GlobalArgs) -> Result<ExitCode> {
    verify(global, &args.common, None, false).await
}

pub async fn run_verify_blob_attestation(
    args: &VerifyBlobAttestationArgs,
    global: &GlobalArgs,
) -> Result<ExitCode> {
    let predicate_type = args
        .kind
        .as_deref()
        .map(attestation::predicate_type)
        .transpose()?;
    verify(global, &args.common, predicate_type.as_deref(), true).await
}

/// A failure's reason class, for `--output json`: the engine's rejection kind when the bundle
/// was refused, else what could not be read.
fn failure_reason(err: &anyhow::Error, stage: &str) -> String {
    err.chain()
        .find_map(|e| e.downcast_ref::<Rejection>())
        .map(|r| r.kind.code().to_string())
        .unwrap_or_else(|| stage.to_string())
}

async fn verify(
    global: &GlobalArgs,
    args: &BlobVerifyArgs,
    predicate_type: Option<&str>,
    attestation: bool,
) -> Result<ExitCode> {
    let policy_args = &args.policy;
    // Each stage can fail for its own reason; with --output json the reason is printed too.
    let fail = |err: anyhow::Error, stage: &str| -> Result<ExitCode> {
        global.emit(&Document {
            json: serde_json::json!({
                "verified": false,
                "reason": failure_reason(&err, stage),
                "error": format!("{err:#}"),
            }),
            text: String::new(),
        })?;
        Err(err)
    };
    if let Err(e) = args.compat.check() {
        return fail(e, "usage");
    }
    let policy = match policy_args.policy() {
        Ok(p) => p,
        Err(e) => return fail(e, "policy"),
    };
    let trust = match policy_args.trust_root().await {
        Ok(t) => t,
        Err(e) => return fail(e, "trusted-root"),
    };
    let artifact = Artifact::parse(&args.artifact);
    let request = BlobVerifyRequest {
        artifact: &artifact,
        bundle: &args.bundle,
        predicate_type,
        attestation,
        trust: &trust,
        ignore_tlog: policy_args.insecure_ignore_tlog,
        ignore_sct: policy_args.insecure_ignore_sct,
    };
    let report = match verify_blob(&policy, &request) {
        Ok(r) => r,
        Err(e) => return fail(e, "input"),
    };
    global.emit(&report)?;
    Ok(ExitCode::SUCCESS)
}
