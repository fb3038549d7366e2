//! `wharf key ...` and `wharf generate-key-pair`, plus reading key references and passwords for
//! the other commands.

use super::GlobalArgs;
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

/// Reads what a key reference points at: a file, or `env://VAR`.
pub fn read_key_reference(reference: &str) -> Result<Vec<u8>> {
    if let Some(var) = reference.strip_prefix("env://") {
        return std::env::var(var).map(String::into_bytes).map_err(|_| {
            anyhow!("environment variable {var} (from key reference {reference}) is not set")
        });
    }
    crate::files::read_bounded(
        std::path::Path::new(reference),
        crate::files::SECRET_LIMIT,
        "key",
    )
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
        Some(path) => std::fs::write(path, &pem)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{pem}"),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn generate(args: &GenerateArgs, global: &GlobalArgs) -> Result<ExitCode> {
    let key_path = PathBuf::from(format!("{}.key", args.output_key_prefix));
    let pub_path = PathBuf::from(format!("{}.pub", args.output_key_prefix));
    for path in [&key_path, &pub_path] {
        if path.exists() && !args.force {
            bail!(
                "{} already exists (pass --force to overwrite)",
                path.display()
            );
        }
    }
    let password = args.password.read("the new private key", true)?;
    let secret = keys::generate();
    let encrypted = keys::encrypt_cosign(&secret, &password)?;
    write_private(&key_path, encrypted.as_bytes())?;
    let public = keys::public_key_pem(&secret.public_key());
    std::fs::write(&pub_path, &public)
        .with_context(|| format!("cannot write {}", pub_path.display()))?;
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

/// Creates the private key file readable by its owner only, from the first byte on.
fn write_private(path: &std::path::Path, contents: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(contents)?;
    Ok(())
}
