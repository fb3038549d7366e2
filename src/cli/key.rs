//! `wharf key ...` and `wharf generate-key-pair`, and the password flag the commands that read
//! keys share.

use super::GlobalArgs;
use crate::files;
use crate::report::Document;
use crate::sign::keyref::{KeyRef, PasswordSource};
use crate::sign::keys;
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Create, inspect and convert signing keys (ECDSA P-256, cosign-compatible).
#[derive(Args, Debug)]
pub struct KeyArgs {
    #[command(subcommand)]
    pub command: KeyCommand,
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    Generate(GenerateArgs),
    Public(PublicArgs),
    Fingerprint(FingerprintArgs),
}

/// Generate a key pair: PREFIX.key (cosign's encrypted format, mode 0600) and PREFIX.pub.
///
/// The password comes from WHARF_PASSWORD or COSIGN_PASSWORD, from --password-file, or from a
/// prompt (asked twice). It is never taken from the command line.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Path prefix of the files to write.
    #[arg(long, default_value = "wharf", value_name = "PREFIX")]
    pub output_key_prefix: String,

    #[command(flatten)]
    pub password: PasswordArgs,

    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
}

/// Print the public key (PEM) of a private key.
#[derive(Args, Debug)]
pub struct PublicArgs {
    /// The private key: a file, or env://VAR for PEM held in an environment variable.
    #[arg(long, value_name = "KEY")]
    pub key: String,

    /// Write to this file instead of standard output (cosign: --outfile).
    #[arg(long, alias = "outfile", value_name = "FILE")]
    pub output_file: Option<PathBuf>,

    #[command(flatten)]
    pub password: PasswordArgs,
}

/// Print a public key's SHA-256 fingerprint (over its DER SubjectPublicKeyInfo), the same as
/// `openssl pkey -pubin -in KEY.pub -outform DER | openssl dgst -sha256`.
#[derive(Args, Debug)]
pub struct FingerprintArgs {
    /// The public key PEM file (or a private key, whose public half is used), or env://VAR.
    #[arg(value_name = "KEY")]
    pub key: String,

    #[command(flatten)]
    pub password: PasswordArgs,
}

#[derive(Args, Debug, Clone)]
pub struct PasswordArgs {
    /// Read the key password from this file (first line). Otherwise WHARF_PASSWORD or
    /// COSIGN_PASSWORD, else a prompt on a terminal.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
}

impl PasswordArgs {
    pub fn source(&self) -> PasswordSource {
        PasswordSource {
            file: self.password_file.clone(),
        }
    }
}

pub fn run(args: &KeyArgs, global: &GlobalArgs) -> Result<ExitCode> {
    match &args.command {
        KeyCommand::Generate(a) => generate(a, global),
        KeyCommand::Public(a) => public(a),
        KeyCommand::Fingerprint(a) => {
            let key = KeyRef::new(&a.key).load_public(&a.password.source())?;
            let fp = keys::fingerprint(&key);
            global.emit(&Document {
                json: serde_json::json!({ "sha256": fp }),
                text: format!("{fp}\n"),
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `wharf key public` and its cosign name, `wharf public-key`.
pub fn public(args: &PublicArgs) -> Result<ExitCode> {
    let key = KeyRef::new(&args.key).load_private(&args.password.source())?;
    let pem = keys::public_key_pem(&key.public_key());
    match &args.output_file {
        Some(path) => files::write_output(path, pem.as_bytes())?,
        None => print!("{pem}"),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn generate(args: &GenerateArgs, global: &GlobalArgs) -> Result<ExitCode> {
    let key_path = PathBuf::from(format!("{}.key", args.output_key_prefix));
    let pub_path = PathBuf::from(format!("{}.pub", args.output_key_prefix));
    // Asked before the password prompt; the writes below check again, atomically. A
    // dangling symlink counts as existing: nothing is ever written through one.
    for path in [&key_path, &pub_path] {
        if std::fs::symlink_metadata(path).is_ok() && !args.force {
            bail!(
                "{} already exists (pass --force to overwrite)",
                path.display()
            );
        }
    }
    let password = args.password.source().read("the new private key", true)?;
    let secret = keys::generate();
    let encrypted = keys::encrypt_cosign(&secret, &password)?;
    let public = keys::public_key_pem(&secret.public_key());
    // Both written in full under temporary names first, then renamed into place: a crash
    // leaves the old pair or the new key, never a truncated key.
    let private = files::stage(&key_path, encrypted.as_bytes(), 0o600)?;
    let public_file = files::stage(&pub_path, public.as_bytes(), 0o644)?;
    private.commit(args.force)?;
    public_file.commit(args.force)?;
    let fp = keys::fingerprint(&secret.public_key());
    global.emit(&Document {
        text: format!(
            "Private key written to {}\nPublic key written to {}\nFingerprint (sha256): {fp}\n",
            key_path.display(),
            pub_path.display()
        ),
        json: serde_json::json!({
            "private_key": key_path, "public_key": pub_path, "sha256": fp,
        }),
    })?;
    Ok(ExitCode::SUCCESS)
}
