//! Key references, as `--key` and a release config's keys name them: a file, or `env://VAR`
//! for PEM held in an environment variable; and the password of an encrypted key: a file, the
//! environment, or a prompt on a terminal. Every command resolves its keys through here.

use super::keys;
use crate::files;
use anyhow::{anyhow, bail, Context, Result};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// The most read of a key file: a PEM key is well under 1 KiB, a PEM with comments a few.
const KEY_FILE_LIMIT: u64 = 64 << 10;

/// Where a key is, as the user wrote it (messages quote it so).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRef(String);

/// What a key reference points at.
enum Location<'a> {
    File(&'a Path),
    Env(&'a str),
    /// `SCHEME://...`: a key management service (cosign's `awskms://`, `gcpkms://`,
    /// `hashivault://`, `k8s://`, ...), which wharf does not speak.
    Service(&'a str),
}

impl KeyRef {
    pub fn new(reference: impl Into<String>) -> KeyRef {
        KeyRef(reference.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn location(&self) -> Location<'_> {
        if let Some(var) = self.0.strip_prefix("env://") {
            return Location::Env(var);
        }
        match self.0.split_once("://") {
            Some((scheme, _))
                if !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric()) =>
            {
                Location::Service(scheme)
            }
            _ => Location::File(Path::new(&self.0)),
        }
    }

    /// The key's bytes: a regular file of at most 64 KiB, or the variable's value.
    pub fn read(&self) -> Result<Vec<u8>> {
        let reference = &self.0;
        match self.location() {
            Location::Env(var) => std::env::var(var).map(String::into_bytes).map_err(|_| {
                anyhow!("environment variable {var} (from key reference {reference}) is not set")
            }),
            Location::Service(scheme) => bail!(
                "key {reference}: {scheme}:// keys (a key management service) are not supported; \
                 wharf signs with a key file or env://VAR"
            ),
            Location::File(path) => files::read_regular_file(path, KEY_FILE_LIMIT, "key"),
        }
    }

    /// The private key, asking for a password only if it is encrypted (once: decrypting is
    /// deliberately slow, and each ask may be a prompt).
    pub fn load_private(&self, password: &PasswordSource) -> Result<p256::SecretKey> {
        let contents = self.read()?;
        keys::load_private_key(&contents, &mut || {
            password.read(&format!("key {self}"), false)
        })
        .with_context(|| format!("key {self}"))
    }

    /// The public key; a private key reference yields its public half.
    pub fn load_public(&self, password: &PasswordSource) -> Result<p256::PublicKey> {
        let contents = self.read()?;
        let is_public = String::from_utf8_lossy(&contents).contains("-----BEGIN PUBLIC KEY-----");
        if is_public {
            keys::load_public_key(&contents).with_context(|| format!("key {self}"))
        } else {
            Ok(self.load_private(password)?.public_key())
        }
    }
}

impl std::fmt::Display for KeyRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where the password of an encrypted key comes from: `file` (its first line), else
/// WHARF_PASSWORD or COSIGN_PASSWORD, else a prompt when standard input is a terminal.
#[derive(Debug, Clone, Default)]
pub struct PasswordSource {
    pub file: Option<PathBuf>,
}

impl PasswordSource {
    /// The password; `confirm` asks twice when prompting. `purpose` names the key in the
    /// prompt and in the error when there is no way to ask.
    pub fn read(&self, purpose: &str, confirm: bool) -> Result<Vec<u8>> {
        if let Some(file) = &self.file {
            let text = files::read_bounded_text(file, files::SECRET_LIMIT, "password file")?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_management_services_are_refused_by_name() {
        for reference in ["awskms://alias/release", "kms://x", "hashivault://transit"] {
            let err = KeyRef::new(reference).read().unwrap_err().to_string();
            assert!(err.contains("not supported"), "{err}");
            assert!(err.starts_with(&format!("key {reference}:")), "{err}");
        }
        let err = KeyRef::new("env://WHARF_TEST_SURELY_UNSET_VARIABLE")
            .read()
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not set"), "{err}");
        let err = KeyRef::new("no/such/dir/release.key")
            .read()
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read key"), "{err}");
    }
}
