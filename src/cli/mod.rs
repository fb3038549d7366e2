//! The command line: parses arguments, calls an operation, prints its report. No logic of its own.

mod blob;
pub mod closed_pipe;
mod compat;
mod distribution;
mod docs;
mod github;
mod key;
mod mirror;
mod provenance;
mod push;
mod release;
mod sbom;
mod sign;
mod trust;

use crate::store::credentials::{CredentialSource, Credentials, Secret};
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
/// the Docker config (`docker login`), or from --registry-username with
/// --registry-password-stdin.
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

    /// Registry username, used for every registry instead of the Docker config.
    #[arg(
        long,
        global = true,
        env = "WHARF_REGISTRY_USERNAME",
        value_name = "USER"
    )]
    pub registry_username: Option<String>,

    /// Read the registry password for --registry-username from standard input
    /// (or set WHARF_REGISTRY_PASSWORD). Never put passwords in arguments.
    #[arg(long, global = true)]
    pub registry_password_stdin: bool,

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
    Sign(sign::SignArgs),
    Verify(sign::VerifyArgs),
    Attest(sign::AttestArgs),
    VerifyAttestation(sign::VerifyAttestationArgs),
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
    compat::cosign_booleans(Cli::command())
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

impl GlobalArgs {
    pub(crate) fn registry_options(&self) -> Result<RegistryOptions> {
        let insecure = if self.allow_insecure_registry {
            InsecureRegistries::All
        } else if self.insecure_registries.is_empty() {
            InsecureRegistries::None
        } else {
            InsecureRegistries::Hosts(self.insecure_registries.clone())
        };
        let explicit = match &self.registry_username {
            None => {
                if self.registry_password_stdin {
                    bail!("--registry-password-stdin needs --registry-username");
                }
                None
            }
            Some(username) => {
                let password = if self.registry_password_stdin {
                    let mut s = String::new();
                    std::io::stdin()
                        .read_to_string(&mut s)
                        .context("cannot read the registry password from standard input")?;
                    s.trim_end_matches(['\r', '\n']).to_string()
                } else {
                    std::env::var("WHARF_REGISTRY_PASSWORD").map_err(|_| {
                        anyhow::anyhow!(
                            "--registry-username needs a password: pass --registry-password-stdin \
                             or set WHARF_REGISTRY_PASSWORD"
                        )
                    })?
                };
                Some(Credentials {
                    username: username.clone(),
                    secret: Secret::new(password),
                })
            }
        };
        Ok(RegistryOptions {
            insecure,
            credentials: CredentialSource {
                explicit,
                docker_config: None,
            },
            retries: self.retries,
            ..RegistryOptions::default()
        })
    }

    pub fn stores(&self) -> Result<Stores> {
        Stores::new(self.registry_options()?)
    }

    pub fn progress(&self) -> Progress {
        Progress::new(!self.quiet && self.output == OutputFormat::Text)
    }

    /// Prints a result: JSON, or the text lines unless quiet.
    pub fn print<T: serde::Serialize>(
        &self,
        value: &T,
        text: impl FnOnce() -> String,
    ) -> Result<()> {
        match self.output {
            OutputFormat::Json => println!("{}", serde_json::to_string_pretty(value)?),
            OutputFormat::Text if !self.quiet => print!("{}", text()),
            OutputFormat::Text => {}
        }
        Ok(())
    }
}

pub async fn run(cli: Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Push(args) => push::run(args, &cli.global).await,
        Command::Mirror(args) => mirror::run(args, &cli.global).await,
        Command::Sign(args) => sign::run_sign(args, &cli.global).await,
        Command::Verify(args) => sign::run_verify(args, &cli.global).await,
        Command::Attest(args) => sign::run_attest(args, &cli.global).await,
        Command::VerifyAttestation(args) => sign::run_verify_attestation(args, &cli.global).await,
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
pub fn report_error(err: &anyhow::Error) {
    let message = format!("{err:#}");
    eprintln!("wharf: error: {message}");
    github::error_annotation(&message);
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
