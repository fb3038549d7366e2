//! The command line: turns flags into what the layers below take (who signs, who must have
//! signed, which registry gets which credentials, the request), calls the operation, and
//! prints the report it returns ([`report`]: the one place the output format is chosen).
//! What a flag means beyond its spelling (reading keys, the trust root, the release) lives
//! below it.

mod blob;
pub mod closed_pipe;
mod compat;
mod copy;
mod cosign_env;
mod distribution;
mod docs;
mod download;
pub mod exit;
mod github;
mod key;
mod mirror;
mod provenance;
mod push;
mod release;
mod report;
mod sbom;
mod sign;
mod trust;

use crate::oci::{ImageRef, Repository};
use crate::store::credentials::{same_registry, CredentialSource, Credentials, Secret};
use crate::store::registry::{InsecureRegistries, RegistryOptions};
use crate::store::Stores;
use crate::ui::Progress;
use anyhow::{bail, Context, Result};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use std::io::Read;
use std::process::ExitCode;

/// Publish container images you can prove are yours.
///
/// wharf pushes a multi-arch image from an OCI image layout to a registry by digest, signs the
/// index and every platform's manifest (cosign-compatible), attaches SBOMs and provenance, tags
/// only after all of that, mirrors the lot byte-for-byte, and verifies it fail-closed.
///
/// Images are named HOST[:PORT]/REPO[:TAG][@DIGEST] in a registry, oci:DIR[:REF][@DIGEST] for
/// an OCI image layout directory, or oci-archive:FILE[:REF][@DIGEST] for one packed in a tar
/// file (read by verify and tree, written by push and mirror). Registry credentials come from
/// --registry-username with --registry-password-stdin for the registry the command works on
/// (mirror's SRC: --source-registry-username), from --registry-auth-file (per host), or from
/// what `podman login` (REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json) and
/// `docker login` wrote, in that order. Each registry gets only its own credentials.
#[derive(Parser, Debug)]
#[command(
    name = "wharf",
    version = distribution::VERSION,
    long_version = distribution::LONG_VERSION,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    #[command(flatten)]
    pub global: GlobalArgs,
}

#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// How to print results: text for people, json for scripts.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text, env = "WHARF_OUTPUT")]
    pub output: OutputFormat,

    /// Print nothing but errors (and the JSON result with --output json).
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,

    /// Allow plain HTTP or unverified TLS for this registry HOST[:PORT] (repeatable).
    #[arg(long = "insecure-registry", global = true, value_name = "HOST")]
    pub insecure_registries: Vec<String>,

    /// Allow plain HTTP or unverified TLS for every registry (as cosign's flag of this name;
    /// cosign's --allow-http-registry is accepted as the same).
    #[arg(long, global = true, alias = "allow-http-registry")]
    pub allow_insecure_registry: bool,

    /// Username for the registry the command works on: DST for push and mirror, the image's
    /// registry for sign, verify, attest and the others, the `repository` of a release. Used
    /// for that registry only, instead of the Docker config; never sent to any other host.
    #[arg(
        long,
        global = true,
        env = "WHARF_REGISTRY_USERNAME",
        value_name = "USER"
    )]
    pub registry_username: Option<String>,

    /// Read the password for --registry-username from standard input
    /// (or set WHARF_REGISTRY_PASSWORD). Never put passwords in arguments.
    #[arg(long, global = true)]
    pub registry_password_stdin: bool,

    /// For mirror: username for the source registry (SRC), with
    /// --source-registry-password-stdin or WHARF_SOURCE_REGISTRY_PASSWORD.
    #[arg(
        long,
        global = true,
        env = "WHARF_SOURCE_REGISTRY_USERNAME",
        value_name = "USER"
    )]
    pub source_registry_username: Option<String>,

    /// Read the password for --source-registry-username from standard input (only one
    /// password can come from there).
    #[arg(long, global = true)]
    pub source_registry_password_stdin: bool,

    /// Credentials per registry host: a JSON file in the Docker config's format
    /// ({"auths": {"HOST": {"username": ..., "password": ...}}}; `auth`, `identitytoken`,
    /// `credHelpers` work too), consulted before podman's auth.json and the Docker config. For
    /// releases and mirrors whose registries need different credentials.
    #[arg(
        long,
        global = true,
        env = "WHARF_REGISTRY_AUTH_FILE",
        value_name = "FILE"
    )]
    pub registry_auth_file: Option<std::path::PathBuf>,

    /// Retries for a failed registry request (429, 5xx, connection errors), with backoff.
    #[arg(long, global = true, default_value_t = 5, value_name = "N")]
    pub retries: u32,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    Push(push::PushArgs),
    Mirror(mirror::MirrorArgs),
    Copy(copy::CopyArgs),
    Sign(sign::SignArgs),
    Verify(sign::VerifyArgs),
    Attest(sign::AttestArgs),
    VerifyAttestation(sign::VerifyAttestationArgs),
    Download(download::DownloadArgs),
    SignBlob(blob::SignBlobArgs),
    AttestBlob(blob::AttestBlobArgs),
    VerifyBlob(blob::VerifyBlobArgs),
    VerifyBlobAttestation(blob::VerifyBlobAttestationArgs),
    Provenance(provenance::ProvenanceArgs),
    Release(release::ReleaseArgs),
    Policy(docs::PolicyArgs),
    Docs(docs::DocsArgs),
    Sbom(sbom::SbomArgs),
    Tree(sbom::TreeArgs),
    Key(key::KeyArgs),
    Trust(trust::TrustArgs),
    /// Generate a cosign-compatible key pair (same as `wharf key generate`).
    GenerateKeyPair(key::GenerateArgs),
    /// Print the public key (PEM) of a private key (same as `wharf key public`).
    PublicKey(key::PublicArgs),
    Completion(distribution::CompletionArgs),
    Man(distribution::ManArgs),
}

/// The command line as wharf parses it: the clap definitions below, with every on/off switch
/// also taking `=true`/`=false` as cosign's do. Completions and manual pages come from here too.
pub fn command() -> clap::Command {
    exit::document(compat::cosign_booleans(Cli::command()))
}

/// Parses the process's arguments with [`command`]; prints help, version or a usage error and
/// exits when that is what they ask for (SIGPIPE when the reader of that output is gone).
pub fn parse() -> Cli {
    let exit = |err: clap::Error| -> ! {
        if let Err(e) = err.print() {
            let _ = closed_pipe::or_die_of_closed_pipe(Err(e));
        }
        std::process::exit(err.exit_code())
    };
    let matches = command().try_get_matches().unwrap_or_else(|e| exit(e));
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| exit(e.format(&mut command())))
}

/// The registries a command works on, which explicit credentials (flags, environment) are
/// bound to.
#[derive(Clone, Copy, Default)]
pub struct CredentialTargets<'a> {
    /// The registry the command writes to (or reads, for verify and the like): where
    /// --registry-username goes. `None` for a layout.
    pub target: Option<&'a Repository>,
    /// mirror's source: where --source-registry-username goes.
    pub source: Option<&'a Repository>,
}

impl<'a> CredentialTargets<'a> {
    /// A command working on `image` alone.
    pub fn image(image: &'a ImageRef) -> CredentialTargets<'a> {
        CredentialTargets {
            target: Some(&image.repository),
            source: None,
        }
    }
}

impl GlobalArgs {
    pub(crate) fn registry_options(
        &self,
        targets: CredentialTargets<'_>,
    ) -> Result<RegistryOptions> {
        let insecure = if self.allow_insecure_registry {
            InsecureRegistries::All
        } else if self.insecure_registries.is_empty() {
            InsecureRegistries::None
        } else {
            InsecureRegistries::Hosts(self.insecure_registries.clone())
        };
        if self.registry_password_stdin && self.source_registry_password_stdin {
            bail!(
                "only one password can come from standard input: pass the other in \
                 WHARF_REGISTRY_PASSWORD or WHARF_SOURCE_REGISTRY_PASSWORD"
            );
        }
        let mut explicit = Vec::new();
        let target = explicit_credentials(
            "--registry-username",
            "--registry-password-stdin",
            self.registry_username.as_deref(),
            self.registry_password_stdin,
            "WHARF_REGISTRY_PASSWORD",
            targets.target,
        )?;
        let source = explicit_credentials(
            "--source-registry-username",
            "--source-registry-password-stdin",
            self.source_registry_username.as_deref(),
            self.source_registry_password_stdin,
            "WHARF_SOURCE_REGISTRY_PASSWORD",
            targets.source,
        )?;
        if let (Some((a, ca)), Some((b, cb))) = (&target, &source) {
            if same_registry(a, b)
                && (ca.username != cb.username || ca.secret.expose() != cb.secret.expose())
            {
                bail!(
                    "SRC and DST are both on {a}, which has one set of credentials in a run: \
                     give them once (--registry-username)"
                );
            }
        }
        explicit.extend(target);
        explicit.extend(source);
        Ok(RegistryOptions {
            insecure,
            credentials: CredentialSource {
                explicit,
                auth_file: self.registry_auth_file.clone(),
                ..CredentialSource::default()
            },
            retries: self.retries,
            ..RegistryOptions::default()
        })
    }

    /// Stores for a command working on the registries in `targets`.
    pub fn stores(&self, targets: CredentialTargets<'_>) -> Result<Stores> {
        Stores::new(self.registry_options(targets)?)
    }

    pub fn progress(&self) -> Progress {
        Progress::new(self.chatty())
    }
}

pub async fn run(cli: Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Push(args) => push::run(args, &cli.global).await,
        Command::Mirror(args) => mirror::run(args, &cli.global).await,
        Command::Copy(args) => copy::run(args, &cli.global).await,
        Command::Sign(args) => sign::run_sign(args, &cli.global).await,
        Command::Verify(args) => sign::run_verify(args, &cli.global).await,
        Command::Attest(args) => sign::run_attest(args, &cli.global).await,
        Command::VerifyAttestation(args) => sign::run_verify_attestation(args, &cli.global).await,
        Command::Download(args) => download::run(args, &cli.global).await,
        Command::SignBlob(args) => blob::run_sign_blob(args, &cli.global).await,
        Command::AttestBlob(args) => blob::run_attest_blob(args, &cli.global).await,
        Command::VerifyBlob(args) => blob::run_verify_blob(args, &cli.global).await,
        Command::VerifyBlobAttestation(args) => {
            blob::run_verify_blob_attestation(args, &cli.global).await
        }
        Command::Provenance(args) => provenance::run(args, &cli.global),
        Command::Release(args) => release::run(args, &cli.global).await,
        Command::Policy(args) => docs::run_policy(args, &cli.global),
        Command::Docs(args) => docs::run_docs(args, &cli.global),
        Command::Sbom(args) => sbom::run(args, &cli.global).await,
        Command::Tree(args) => sbom::run_tree(args, &cli.global).await,
        Command::Key(args) => key::run(args, &cli.global),
        Command::Trust(args) => trust::run(args, &cli.global).await,
        Command::GenerateKeyPair(args) => key::generate(args, &cli.global),
        Command::PublicKey(args) => key::public(args),
        Command::Completion(args) => distribution::run_completion(args),
        Command::Man(args) => distribution::run_man(args, &cli.global),
    }
}

/// Reports a failure as one line (plus a GitHub Actions annotation when running there).
/// Errors carry text peers wrote (a registry's message, a URL it handed out): whatever got
/// past the places that escape it, no control character reaches the log here, so nothing in
/// an error can start a line of its own (in GitHub Actions, a workflow command).
pub fn report_error(err: &anyhow::Error) {
    let message = crate::text::one_line(&format!("{err:#}"));
    eprintln!("wharf: error: {message}");
    github::error_annotation(&message);
}

/// The credentials a `--registry-username`-like flag gives, bound to the host of
/// `repository`, the password from standard input or `password_env`. None where the command
/// has no such registry (a layout, or no source): they are for that registry alone, and the
/// environment may hold them for other steps of a job.
fn explicit_credentials(
    flag: &str,
    stdin_flag: &str,
    username: Option<&str>,
    password_stdin: bool,
    password_env: &str,
    repository: Option<&Repository>,
) -> Result<Option<(String, Credentials)>> {
    let Some(username) = username else {
        if password_stdin {
            bail!("{stdin_flag} needs {flag}");
        }
        return Ok(None);
    };
    let Some(Repository::Registry { registry, .. }) = repository else {
        return Ok(None);
    };
    let host = registry.clone();
    let password = if password_stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read the registry password from standard input")?;
        s.trim_end_matches(['\r', '\n']).to_string()
    } else {
        std::env::var(password_env).map_err(|_| {
            anyhow::anyhow!("{flag} needs a password: pass {stdin_flag} or set {password_env}")
        })?
    };
    Ok(Some((
        host,
        Credentials {
            username: username.to_string(),
            secret: Secret::new(password),
        },
    )))
}

/// Default concurrency for transfers: enough to hide round trips, few enough to be polite.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| (n.get() * 2).clamp(4, 8))
        .unwrap_or(4)
}

/// Default concurrency for signing and verifying: each manifest costs a few small requests
/// (and a wait to confirm the write survived concurrent writers), so more at once pays.
pub fn default_signing_jobs() -> usize {
    16
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
        super::command().debug_assert();
    }
}
