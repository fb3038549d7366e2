//! ECDSA P-256 key files: cosign's encrypted format (scrypt + NaCl secretbox around PKCS#8),
//! PKCS#8 (plain and PBES2-encrypted), SEC1, and PKIX public keys. Pure: bytes in, keys out.

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::XSalsa20Poly1305;
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use p256::{PublicKey, SecretKey};
use pem_rfc7468::LineEnding;
use sha2::{Digest as _, Sha256};

pub const SIGSTORE_ENCRYPTED_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
pub const COSIGN_ENCRYPTED_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";
const PKCS8_LABEL: &str = "PRIVATE KEY";
const PKCS8_ENCRYPTED_LABEL: &str = "ENCRYPTED PRIVATE KEY";
const SEC1_LABEL: &str = "EC PRIVATE KEY";
const PUBLIC_LABEL: &str = "PUBLIC KEY";

/// The scrypt cost cosign writes (N = 2^16); N from 2^15 to 2^17 is read. Anything outside is
/// refused so a crafted key file cannot make us spend minutes or gigabytes.
const SCRYPT_LOG_N_WRITE: u8 = 16;
const SCRYPT_LOG_N_READ: std::ops::RangeInclusive<u8> = 15..=17;

/// A new random P-256 key.
pub fn generate() -> SecretKey {
    loop {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the OS random source works");
        // A random 32-byte string is a valid scalar except with negligible probability.
        if let Ok(key) = SecretKey::from_slice(&bytes) {
            return key;
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct EncryptedKey {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    salt: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

fn scrypt_key(password: &[u8], salt: &[u8], log_n: u8, r: u32, p: u32) -> Result<[u8; 32]> {
    let params =
        scrypt::Params::new(log_n, r, p).map_err(|e| anyhow!("bad scrypt parameters: {e}"))?;
    let mut key = [0u8; 32];
    scrypt::scrypt(password, salt, &params, &mut key).map_err(|e| anyhow!("scrypt failed: {e}"))?;
    Ok(key)
}

/// Writes `key` in cosign's encrypted format (`ENCRYPTED SIGSTORE PRIVATE KEY`).
pub fn encrypt_cosign(key: &SecretKey, password: &[u8]) -> Result<String> {
    let der = key
        .to_pkcs8_der()
        .context("cannot encode the key as PKCS#8")?;
    let mut salt = [0u8; 32];
    let mut nonce = [0u8; 24];
    getrandom::fill(&mut salt).expect("the OS random source works");
    getrandom::fill(&mut nonce).expect("the OS random source works");
    let box_key = scrypt_key(password, &salt, SCRYPT_LOG_N_WRITE, 8, 1)?;
    let cipher = XSalsa20Poly1305::new(&box_key.into());
    let sealed = cipher
        .encrypt(&nonce.into(), der.as_bytes())
        .map_err(|_| anyhow!("encryption failed"))?;
    let doc = EncryptedKey {
        kdf: Kdf {
            name: "scrypt".into(),
            params: ScryptParams {
                n: 1 << SCRYPT_LOG_N_WRITE,
                r: 8,
                p: 1,
            },
            salt: B64.encode(salt),
        },
        cipher: Cipher {
            name: "nacl/secretbox".into(),
            nonce: B64.encode(nonce),
        },
        ciphertext: B64.encode(sealed),
    };
    let json = serde_json::to_vec(&doc)?;
    pem_rfc7468::encode_string(SIGSTORE_ENCRYPTED_LABEL, LineEnding::LF, &json)
        .map_err(|e| anyhow!("cannot encode PEM: {e}"))
}

fn decrypt_cosign(body: &[u8], password: &[u8]) -> Result<SecretKey> {
    let doc: EncryptedKey =
        serde_json::from_slice(body).context("the encrypted key is not cosign's JSON format")?;
    if doc.kdf.name != "scrypt" || doc.cipher.name != "nacl/secretbox" {
        bail!(
            "unsupported key encryption {}/{} (cosign uses scrypt/nacl/secretbox)",
            doc.kdf.name,
            doc.cipher.name
        );
    }
    let n = doc.kdf.params.n;
    let log_n = n.trailing_zeros() as u8;
    if !n.is_power_of_two()
        || !SCRYPT_LOG_N_READ.contains(&log_n)
        || doc.kdf.params.r != 8
        || doc.kdf.params.p != 1
    {
        bail!(
            "unexpected scrypt parameters N={n} r={} p={} (cosign uses N=2^15..2^17, r=8, p=1)",
            doc.kdf.params.r,
            doc.kdf.params.p
        );
    }
    let salt = B64
        .decode(&doc.kdf.salt)
        .context("the key's salt is not base64")?;
    let nonce = B64
        .decode(&doc.cipher.nonce)
        .context("the key's nonce is not base64")?;
    let nonce: [u8; 24] = nonce
        .try_into()
        .map_err(|_| anyhow!("the key's nonce is not 24 bytes"))?;
    let sealed = B64
        .decode(&doc.ciphertext)
        .context("the key's ciphertext is not base64")?;
    let box_key = scrypt_key(password, &salt, log_n, 8, 1)?;
    let der = XSalsa20Poly1305::new(&box_key.into())
        .decrypt(&nonce.into(), sealed.as_slice())
        .map_err(|_| anyhow!("wrong password (the key could not be decrypted)"))?;
    secret_from_pkcs8(&der)
}

/// The most PBKDF2 iterations wharf computes to decrypt a PKCS#8 key: ten times OWASP's
/// recommendation for PBKDF2-HMAC-SHA256, a few seconds; OpenSSL writes 2048.
const PBKDF2_MAX_ITERATIONS: u32 = 10_000_000;

/// The most memory scrypt may take to decrypt a PKCS#8 key (128·r·N bytes): as much as the
/// largest cosign key wharf reads (N = 2^17, r = 8).
const SCRYPT_MAX_MEMORY: u64 = 128 << 20;

/// The most scrypt work (N·r·p) for a PKCS#8 key: sixteen times that largest cosign key.
const SCRYPT_MAX_WORK: u64 = 1 << 24;

/// Refuses PBES2 parameters that would make decryption take minutes or gigabytes (a key file
/// is input like any other): bounded like the cosign format's scrypt parameters.
fn check_pbes_cost(scheme: &pkcs8::pkcs5::EncryptionScheme) -> Result<()> {
    let pkcs8::pkcs5::EncryptionScheme::Pbes2(params) = scheme else {
        // PBES1 counts its iterations in 16 bits.
        return Ok(());
    };
    match &params.kdf {
        pkcs8::pkcs5::pbes2::Kdf::Pbkdf2(p) if p.iteration_count > PBKDF2_MAX_ITERATIONS => bail!(
            "the key asks for PBKDF2 with {} iterations, more than the {PBKDF2_MAX_ITERATIONS} \
             wharf computes",
            p.iteration_count
        ),
        pkcs8::pkcs5::pbes2::Kdf::Scrypt(p) => {
            let (n, r, par) = (
                p.cost_parameter,
                u64::from(p.block_size),
                u64::from(p.parallelization),
            );
            let memory = n.checked_mul(128 * r);
            let work = n.checked_mul(r).and_then(|nr| nr.checked_mul(par));
            if n < 2 || !n.is_power_of_two() || r == 0 || par == 0 {
                bail!("the key's scrypt parameters are invalid (N={n}, r={r}, p={par})");
            }
            if memory.is_none_or(|m| m > SCRYPT_MAX_MEMORY)
                || work.is_none_or(|w| w > SCRYPT_MAX_WORK)
            {
                bail!(
                    "the key asks for scrypt with N={n}, r={r}, p={par}, more than wharf \
                     computes (at most 128 MiB of memory, N·r·p up to 2^24)"
                );
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn secret_from_pkcs8(der: &[u8]) -> Result<SecretKey> {
    SecretKey::from_pkcs8_der(der).map_err(|e| describe_pkcs8_failure(der, e))
}

/// Tells "not P-256" from "garbled" when a PKCS#8 key does not load.
fn describe_pkcs8_failure(der: &[u8], e: impl std::fmt::Display) -> anyhow::Error {
    use pkcs8::der::Decode;
    match pkcs8::PrivateKeyInfoRef::from_der(der) {
        Ok(info) => {
            let alg = info.algorithm.oid.to_string();
            let curve = info
                .algorithm
                .parameters_oid()
                .map(|o| o.to_string())
                .unwrap_or_default();
            anyhow!(
                "not an ECDSA P-256 key (algorithm {alg}{}); wharf and cosign sign with P-256",
                if curve.is_empty() {
                    String::new()
                } else {
                    format!(", curve {curve}")
                }
            )
        }
        Err(_) => anyhow!("the key is garbled: {e}"),
    }
}

/// Loads a private key from file contents. `password` is asked for only when the key is
/// encrypted.
pub fn load_private_key(
    contents: &[u8],
    password: &mut dyn FnMut() -> Result<Vec<u8>>,
) -> Result<SecretKey> {
    let (label, body) = decode_pem(contents, "key file")?;
    match label.as_str() {
        SIGSTORE_ENCRYPTED_LABEL | COSIGN_ENCRYPTED_LABEL => decrypt_cosign(&body, &password()?),
        PKCS8_LABEL => secret_from_pkcs8(&body),
        PKCS8_ENCRYPTED_LABEL => {
            use pkcs8::der::Decode;
            let info = pkcs8::EncryptedPrivateKeyInfoRef::from_der(&body)
                .map_err(|e| anyhow!("the encrypted PKCS#8 key is garbled: {e}"))?;
            check_pbes_cost(&info.encryption_algorithm)?;
            let doc = info
                .decrypt(password()?)
                .map_err(|_| anyhow!("wrong password (the PKCS#8 key could not be decrypted)"))?;
            secret_from_pkcs8(doc.as_bytes())
        }
        SEC1_LABEL => SecretKey::from_sec1_der(&body)
            .map_err(|_| anyhow!("not an ECDSA P-256 key, or a garbled SEC1 key")),
        PUBLIC_LABEL => bail!("this is a public key; signing needs the private key"),
        other => {
            bail!("unsupported key type {other:?} (expected a cosign, PKCS#8 or SEC1 P-256 key)")
        }
    }
}

/// Loads a public key (PKIX `PUBLIC KEY` PEM).
pub fn load_public_key(contents: &[u8]) -> Result<PublicKey> {
    let (label, der) = decode_pem(contents, "public key")?;
    if label != PUBLIC_LABEL {
        bail!("expected a PUBLIC KEY PEM, found {label:?}");
    }
    PublicKey::from_public_key_der(&der).map_err(|e| match e {
        pkcs8::spki::Error::OidUnknown { .. } | pkcs8::spki::Error::AlgorithmParametersMissing => {
            anyhow!("not an ECDSA P-256 public key")
        }
        other => anyhow!("not an ECDSA P-256 public key ({other})"),
    })
}

/// The first PEM block of a key file (label, DER), read as leniently as Go's `encoding/pem`
/// reads it (as cosign does): any base64 line length, CRLF, text around the block.
fn decode_pem(contents: &[u8], what: &str) -> Result<(String, Vec<u8>)> {
    let text = std::str::from_utf8(contents).map_err(|_| anyhow!("not a PEM {what}"))?;
    let block = crate::sigstore::pem::decode_first(text)
        .map_err(|e| anyhow!("not a PEM {what}, or truncated ({e})"))?;
    Ok((block.label, block.der))
}

pub fn public_key_pem(key: &PublicKey) -> String {
    key.to_public_key_pem(pkcs8::LineEnding::LF)
        .expect("a P-256 public key encodes")
}

/// SHA-256 over the DER SubjectPublicKeyInfo, lowercase hex (what
/// `openssl pkey -pubin -outform DER | openssl dgst -sha256` prints).
pub fn fingerprint(key: &PublicKey) -> String {
    let der = key.to_public_key_der().expect("a P-256 public key encodes");
    hex::encode(Sha256::digest(der.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosign_format_round_trips_and_rejects_wrong_password() {
        let key = generate();
        let pem = encrypt_cosign(&key, b"pw").unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"));
        let loaded = load_private_key(pem.as_bytes(), &mut || Ok(b"pw".to_vec())).unwrap();
        assert_eq!(loaded.to_bytes(), key.to_bytes());
        let err = load_private_key(pem.as_bytes(), &mut || Ok(b"nope".to_vec())).unwrap_err();
        assert!(err.to_string().contains("wrong password"), "{err}");
    }

    #[test]
    fn pkcs8_and_sec1_load() {
        let key = generate();
        let pkcs8 = key.to_pkcs8_pem(pkcs8::LineEnding::LF).unwrap();
        let loaded =
            load_private_key(pkcs8.as_bytes(), &mut || panic!("no password needed")).unwrap();
        assert_eq!(loaded.to_bytes(), key.to_bytes());
        let sec1 = key.to_sec1_pem(pkcs8::LineEnding::LF).unwrap();
        let loaded =
            load_private_key(sec1.as_bytes(), &mut || panic!("no password needed")).unwrap();
        assert_eq!(loaded.to_bytes(), key.to_bytes());
    }

    #[test]
    fn garbled_and_truncated_files_are_refused() {
        let key = generate();
        let pem = encrypt_cosign(&key, b"pw").unwrap();
        let truncated = &pem.as_bytes()[..pem.len() / 2];
        assert!(load_private_key(truncated, &mut || Ok(b"pw".to_vec())).is_err());
        assert!(load_private_key(b"hello", &mut || Ok(vec![])).is_err());
    }

    /// An encrypted PKCS#8 key with these PBES2 parameters and junk ciphertext.
    fn pbes2_key(params: pkcs8::pkcs5::pbes2::Parameters) -> String {
        use pkcs8::der::Encode;
        let info = pkcs8::EncryptedPrivateKeyInfoOwned {
            encryption_algorithm: pkcs8::pkcs5::EncryptionScheme::Pbes2(params),
            encrypted_data: pkcs8::der::asn1::OctetString::new(vec![0u8; 48]).unwrap(),
        };
        pem_rfc7468::encode_string(
            PKCS8_ENCRYPTED_LABEL,
            LineEnding::LF,
            &info.to_der().unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn pbes2_costs_are_bounded_before_any_work() {
        let aes = |kdf: pkcs8::pkcs5::pbes2::Kdf| pkcs8::pkcs5::pbes2::Parameters {
            kdf,
            encryption: pkcs8::pkcs5::pbes2::EncryptionScheme::Aes256Cbc { iv: [0; 16] },
        };
        let pbkdf2 = |iterations: u32| {
            let mut p = pkcs8::pkcs5::pbes2::Pbkdf2Params::hmac_sha256(1, &[1; 16]).unwrap();
            p.iteration_count = iterations;
            aes(pkcs8::pkcs5::pbes2::Kdf::Pbkdf2(p))
        };
        let scrypt = |n: u64, r: u16, p: u16| {
            let mut params = pkcs8::pkcs5::pbes2::ScryptParams::from_params_and_salt(
                scrypt::Params::new(10, 8, 1).unwrap(),
                &[1; 16],
            )
            .unwrap();
            params.cost_parameter = n;
            params.block_size = r;
            params.parallelization = p;
            aes(pkcs8::pkcs5::pbes2::Kdf::Scrypt(params))
        };
        let started = std::time::Instant::now();
        for (params, expected) in [
            (pbkdf2(u32::MAX), "PBKDF2 with 4294967295 iterations"),
            (scrypt(1 << 40, 8, 1), "scrypt with N=1099511627776"),
            (scrypt(1 << 16, 8, 1 << 15), "p=32768"),
            (scrypt(3, 8, 1), "invalid"),
        ] {
            let pem = pbes2_key(params);
            let err = load_private_key(pem.as_bytes(), &mut || Ok(b"pw".to_vec())).unwrap_err();
            assert!(err.to_string().contains(expected), "{err}");
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        // Ordinary costs go on to decryption (here: a wrong password, junk ciphertext).
        let pem = pbes2_key(pbkdf2(2048));
        let err = load_private_key(pem.as_bytes(), &mut || Ok(b"pw".to_vec())).unwrap_err();
        assert!(err.to_string().contains("wrong password"), "{err}");
    }

    #[test]
    fn public_key_and_fingerprint() {
        let key = generate();
        let pem = public_key_pem(&key.public_key());
        let loaded = load_public_key(pem.as_bytes()).unwrap();
        assert_eq!(loaded, key.public_key());
        assert_eq!(fingerprint(&loaded).len(), 64);
        assert!(
            load_public_key(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
                .is_err()
        );
    }

    #[test]
    fn pem_is_read_as_go_reads_it() {
        // One long base64 line and CRLF line ends, as some tools write keys: cosign reads
        // them, so wharf does too.
        let key = generate();
        let pem = public_key_pem(&key.public_key());
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let one_line =
            format!("-----BEGIN PUBLIC KEY-----\r\n{body}\r\n-----END PUBLIC KEY-----\r\n");
        assert_eq!(
            load_public_key(one_line.as_bytes()).unwrap(),
            key.public_key()
        );
        let der = key.to_pkcs8_der().unwrap();
        let private = format!(
            "# a comment\n-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            B64.encode(der.as_bytes())
        );
        let loaded = load_private_key(private.as_bytes(), &mut || Ok(Vec::new())).unwrap();
        assert_eq!(loaded.public_key(), key.public_key());
    }
}
