//! `wharf key ...` and `wharf generate-key-pair`, plus reading key references and passwords for
//! the other commands.

use super::GlobalArgs;
use crate::files;
use crate::sign::keys;
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use std::io::IsTerminal;
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
    /// The password, from file, environment or prompt; `confirm` asks twice when prompting.
    pub fn read(&self, purpose: &str, confirm: bool) -> Result<Vec<u8>> {
        if let Some(file) = &self.password_file {
            let text =
                crate::files::read_bounded_text(file, crate::files::SECRET_LIMIT, "password file")?;
            return Ok(text.lines().next().unwrap_or("").as_bytes().to_vec());
        }
        for var in ["WHARF_PASSWORD", "COSIGN_PASSWORD"] {
            if let Ok(value) = std::env::var(var) {
                return Ok(value.into_bytes());
            }
        }
        if !std::io::stdin().is_terminal() {
            bail!("{purpose} needs a password: set WHARF_PASSWORD (or COSIGN_PASSWORD), or pass --password-file");
        }
        let first = rpassword::prompt_password(format!("Enter password for {purpose}: "))?;
        if confirm {
            let second = rpassword::prompt_password("Enter password again: ")?;
            if first != second {
                bail!("the passwords do not match");
            }
        }
        Ok(first.into_bytes())
    }
}

/// The most read of a key file: a PEM key is well under 1 KiB, a PEM with comments a few.
const KEY_FILE_LIMIT: u64 = 64 << 10;

/// Reads what a key reference points at: a file (a regular one, of at most 64 KiB), or
/// `env://VAR`.
pub fn read_key_reference(reference: &str) -> Result<Vec<u8>> {
    if let Some(var) = reference.strip_prefix("env://") {
        return std::env::var(var).map(String::into_bytes).map_err(|_| {
            anyhow!("environment variable {var} (from key reference {reference}) is not set")
        });
    }
    files::read_regular_file(std::path::Path::new(reference), KEY_FILE_LIMIT, "key")
}

/// Loads a private key from a reference, asking for a password only if it is encrypted.
pub fn load_private_key(reference: &str, password: &PasswordArgs) -> Result<p256::SecretKey> {
    let contents = read_key_reference(reference)?;
    keys::load_private_key(&contents, &mut || {
        password.read(&format!("key {reference}"), false)
    })
    .with_context(|| format!("key {reference}"))
}

/// Loads a public key from a reference; a private key reference yields its public half.
pub fn load_public_key(reference: &str, password: &PasswordArgs) -> Result<p256::PublicKey> {
    let contents = read_key_reference(reference)?;
    let is_public = String::from_utf8_lossy(&contents).contains("-----BEGIN PUBLIC KEY-----");
    if is_public {
        keys::load_public_key(&contents).with_context(|| format!("key {reference}"))
    } else {
        Ok(load_private_key(reference, password)?.public_key())
    }
}

pub fn run(args: &KeyArgs, global: &GlobalArgs) -> Result<ExitCode> {
    match &args.command {
        KeyCommand::Generate(a) => generate(a, global),
        KeyCommand::Public(a) => public(a),
        KeyCommand::Fingerprint(a) => {
            let key = load_public_key(&a.key, &a.password)?;
            let fp = keys::fingerprint(&key);
            global.print(&serde_json::json!({ "sha256": fp }), || format!("{fp}\n"))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `wharf key public` and its cosign name, `wharf public-key`.
pub fn public(args: &PublicArgs) -> Result<ExitCode> {
    let key = load_private_key(&args.key, &args.password)?;
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
    let password = args.password.read("the new private key", true)?;
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
    global.print(
        &serde_json::json!({
            "private_key": key_path, "public_key": pub_path, "sha256": fp,
        }),
        || {
            format!(
                "Private key written to {}\nPublic key written to {}\nFingerprint (sha256): {fp}\n",
                key_path.display(),
                pub_path.display()
            )
        },
    )?;
    Ok(ExitCode::SUCCESS)
}
