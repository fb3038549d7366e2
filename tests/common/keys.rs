//! Key pairs for the end-to-end tests: made by wharf, by cosign, or by openssl.

use super::{require_tool, run_ok, wharf};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A key pair on disk.
pub struct Key {
    pub private: PathBuf,
    pub public: PathBuf,
}

impl Key {
    pub fn private(&self) -> &str {
        self.private.to_str().unwrap()
    }
    pub fn public(&self) -> &str {
        self.public.to_str().unwrap()
    }

    fn with_prefix(prefix: &Path) -> Key {
        Key {
            private: prefix.with_extension("key"),
            public: prefix.with_extension("pub"),
        }
    }
}

/// `wharf key generate` (cosign's encrypted format) at `DIR/NAME.{key,pub}`.
pub fn wharf_key(dir: &Path, name: &str, password: &str) -> Key {
    let prefix = dir.join(name);
    run_ok(
        wharf()
            .args(["-q", "key", "generate", "--output-key-prefix"])
            .arg(&prefix)
            .env("WHARF_PASSWORD", password),
    );
    Key::with_prefix(&prefix)
}

/// `cosign generate-key-pair` at `DIR/NAME.{key,pub}`.
pub fn cosign_key(dir: &Path, name: &str, password: &str) -> Key {
    let prefix = dir.join(name);
    run_ok(
        Command::new(require_tool("cosign"))
            .args(["generate-key-pair", "--output-key-prefix"])
            .arg(&prefix)
            .env("COSIGN_PASSWORD", password),
    );
    Key::with_prefix(&prefix)
}

/// An unencrypted PKCS#8 P-256 key pair from openssl at `DIR/NAME.{pem,pub}` (no scrypt:
/// signers start at once).
pub fn openssl_key(dir: &Path, name: &str) -> Key {
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub"));
    run_ok(
        Command::new(require_tool("openssl"))
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
            ])
            .arg(&private),
    );
    run_ok(
        Command::new(require_tool("openssl"))
            .args(["pkey", "-pubout", "-in"])
            .arg(&private)
            .arg("-out")
            .arg(&public),
    );
    Key { private, public }
}
