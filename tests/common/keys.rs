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

/// The key-derivation function of a crafted encrypted key file.
pub enum Kdf {
    /// PBKDF2-HMAC-SHA256 with this many iterations.
    Pbkdf2(u32),
    /// scrypt with N, r and p.
    Scrypt(u64, u16, u16),
}

/// An encrypted PKCS#8 (`ENCRYPTED PRIVATE KEY`) file at `path` asking for `kdf`, with junk
/// as ciphertext: what a hostile key file looks like to a reader before it decrypts anything.
pub fn pbes2_key_file(path: &Path, kdf: Kdf) {
    use pkcs8::der::Encode;
    use pkcs8::pkcs5::pbes2;
    let kdf = match kdf {
        Kdf::Pbkdf2(iterations) => {
            let mut params = pbes2::Pbkdf2Params::hmac_sha256(1, &[7; 16]).unwrap();
            params.iteration_count = iterations;
            pbes2::Kdf::Pbkdf2(params)
        }
        Kdf::Scrypt(n, r, p) => {
            let mut params = pbes2::ScryptParams::from_params_and_salt(
                scrypt::Params::new(10, 8, 1).unwrap(),
                &[7; 16],
            )
            .unwrap();
            params.cost_parameter = n;
            params.block_size = r;
            params.parallelization = p;
            pbes2::Kdf::Scrypt(params)
        }
    };
    let info = pkcs8::EncryptedPrivateKeyInfoOwned {
        encryption_algorithm: pkcs8::pkcs5::EncryptionScheme::Pbes2(pbes2::Parameters {
            kdf,
            encryption: pbes2::EncryptionScheme::Aes256Cbc { iv: [0; 16] },
        }),
        encrypted_data: pkcs8::der::asn1::OctetString::new(vec![0u8; 48]).unwrap(),
    };
    let pem = pem_rfc7468::encode_string(
        "ENCRYPTED PRIVATE KEY",
        pem_rfc7468::LineEnding::LF,
        &info.to_der().unwrap(),
    )
    .unwrap();
    std::fs::write(path, pem).unwrap();
}

/// A cosign-format encrypted key file at `path` whose scrypt asks for N = `n`.
pub fn cosign_key_file_with_scrypt_n(path: &Path, n: u64) {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let json = serde_json::json!({
        "kdf": {"name": "scrypt", "params": {"N": n, "r": 8, "p": 1}, "salt": b64(&[7; 32])},
        "cipher": {"name": "nacl/secretbox", "nonce": b64(&[0; 24])},
        "ciphertext": b64(&[0; 64]),
    });
    let pem = pem_rfc7468::encode_string(
        "ENCRYPTED SIGSTORE PRIVATE KEY",
        pem_rfc7468::LineEnding::LF,
        &serde_json::to_vec(&json).unwrap(),
    )
    .unwrap();
    std::fs::write(path, pem).unwrap();
}
