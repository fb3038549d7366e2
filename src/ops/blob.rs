//! Files: signing them into Sigstore bundles (`sign-blob`, `attest-blob`) and verifying them
//! against one (`verify-blob`, `verify-blob-attestation`). The I/O around the engine: files
//! are hashed as streams, bundles read with a size limit, outputs written atomically.

use super::verify::checks_performed;
use crate::cosign::attestation::{self, Envelope, IN_TOTO_PAYLOAD_TYPE};
use crate::oci::Digest;
use crate::report::Report;
use crate::sign::{Signer, Tlog};
use crate::sigstore::bundle::SigstoreBundle;
use crate::sigstore::cert::SigningCert;
use crate::sigstore::rekor;
use crate::sigstore::trust::TrustRoot;
use crate::verify::{verify_blob_bundle, Context as VerifyContext, Policy, VerifiedTime};
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Largest bundle file read.
pub const MAX_BUNDLE: u64 = super::bundles::MAX_BUNDLE;
/// Largest predicate file read for `attest-blob`.
pub const MAX_PREDICATE: u64 = 64 << 20;

/// What `verify-blob` is given: a file, or only its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Artifact {
    File(PathBuf),
    Digest([u8; 32]),
}

impl Artifact {
    /// `sha256:HEX` (64 hex digits) names a digest unless a file of that name exists, as the
    /// Sigstore conformance protocol says; anything else is a path.
    pub fn parse(arg: &str) -> Artifact {
        if !Path::new(arg).exists() {
            if let Some(hex_digest) = arg.strip_prefix("sha256:") {
                let mut digest = [0u8; 32];
                if hex_digest.len() == 64 && hex::decode_to_slice(hex_digest, &mut digest).is_ok() {
                    return Artifact::Digest(digest);
                }
            }
        }
        Artifact::File(PathBuf::from(arg))
    }

    pub fn sha256(&self) -> Result<[u8; 32]> {
        match self {
            Artifact::Digest(d) => Ok(*d),
            Artifact::File(path) => hash_file(path),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Artifact::File(path) => path.display().to_string(),
            Artifact::Digest(d) => format!("sha256:{}", hex::encode(d)),
        }
    }
}

/// Opens `path` for reading if it is a regular file (not a FIFO that would block, nor a
/// device that never ends), after following symlinks.
fn open_regular(path: &Path, what: &str) -> Result<(std::fs::File, u64)> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    if !meta.is_file() {
        bail!("{what} {} is not a regular file", path.display());
    }
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    Ok((file, meta.len()))
}

/// The SHA-256 of a file, read as a stream.
pub fn hash_file(path: &Path) -> Result<[u8; 32]> {
    let (mut file, _) = open_regular(path, "file")?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buffer)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hasher.finalize().into())
}

/// Reads a whole file of at most `limit` bytes.
pub fn read_bounded(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>> {
    let (file, len) = open_regular(path, what)?;
    if len > limit {
        bail!(
            "{what} {} is {len} bytes, more than the {limit} allowed",
            path.display()
        );
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    if bytes.len() as u64 > limit {
        bail!(
            "{what} {} grew past {limit} bytes while read",
            path.display()
        );
    }
    Ok(bytes)
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so
/// `path` holds either its old content or all of the new, never part of it.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| anyhow!("cannot write {}: {}", path.display(), e.error))?;
    Ok(())
}

/// A bundle read from a file: at most [`MAX_BUNDLE`] bytes of JSON.
pub fn read_bundle(path: &Path) -> Result<SigstoreBundle> {
    let bytes = read_bounded(path, MAX_BUNDLE, "bundle")?;
    SigstoreBundle::parse(&bytes).with_context(|| format!("bundle {}", path.display()))
}

/// Who signed, as a verification found it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignerSummary {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identities: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// SHA-256 of the key's DER SubjectPublicKeyInfo, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_fingerprint: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BlobVerifyReport {
    pub verified: bool,
    pub artifact: String,
    pub digest: String,
    pub bundle: String,
    pub media_type: String,
    pub signer: SignerSummary,
    /// The trusted times the signature was checked at.
    pub times: Vec<VerifiedTime>,
    pub log_entries: usize,
    /// The in-toto statement, for attestations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statement: Option<serde_json::Value>,
    pub checks: Vec<String>,
    /// Whether an attestation was asked for (its statement is then the result).
    #[serde(skip)]
    pub attestation: bool,
}

impl Report for BlobVerifyReport {
    fn result(&self) -> String {
        match (&self.statement, self.attestation) {
            (Some(statement), true) => format!("{statement}\n"),
            _ => String::new(),
        }
    }

    fn notes(&self) -> String {
        "Verified OK\n".into()
    }
}

pub struct BlobVerifyRequest<'a> {
    pub artifact: &'a Artifact,
    pub bundle: &'a Path,
    /// `verify-blob-attestation --type`: the statement must be of this predicate type.
    pub predicate_type: Option<&'a str>,
    /// An attestation is expected (a DSSE bundle), not a plain signature.
    pub attestation: bool,
    pub trust: &'a TrustRoot,
    pub ignore_tlog: bool,
    pub ignore_sct: bool,
}

/// Verifies a file (or its digest) against a bundle. The error's chain holds the engine's
/// [`crate::verify::Rejection`] when the bundle itself was refused.
pub fn verify_blob(policy: &Policy, request: &BlobVerifyRequest<'_>) -> Result<BlobVerifyReport> {
    let what = request.artifact.describe();
    let digest = request.artifact.sha256()?;
    let bundle = read_bundle(request.bundle)?;
    if request.attestation && bundle.dsse_envelope.is_none() {
        bail!(
            "verification failed for {what}: bundle {} holds a plain signature, not an attestation (verify it with verify-blob)",
            request.bundle.display()
        );
    }
    let ctx = VerifyContext {
        trust: request.trust,
        now: super::verify::now(),
        ignore_tlog: request.ignore_tlog,
        ignore_sct: request.ignore_sct,
    };
    let verdict = verify_blob_bundle(&bundle, &digest, request.predicate_type, policy, &ctx)
        .map_err(|r| anyhow::Error::new(r).context(format!("verification failed for {what}")))?;
    let signer = match (&verdict.verified.signed.certificate, policy) {
        (Some(cert), _) => SignerSummary {
            identities: Some(cert.identities.clone()),
            issuer: cert.issuer.clone(),
            key_fingerprint: None,
        },
        (None, Policy::Key(key)) => SignerSummary {
            identities: None,
            issuer: None,
            key_fingerprint: Some(crate::sign::keys::fingerprint(key)),
        },
        (None, Policy::Identity(_)) => unreachable!("identity policies need a certificate"),
    };
    let mut checks = vec![format!(
        "the signature covers the artifact's SHA-256 {}",
        hex::encode(digest)
    )];
    checks.extend(checks_performed(
        policy,
        request.ignore_tlog,
        request.ignore_sct,
    ));
    if verdict
        .verified
        .times
        .iter()
        .any(|t| matches!(t.source, crate::verify::TimeSource::TimestampAuthority(_)))
    {
        checks.push(
            "the signed timestamp(s) come from a timestamp authority of the trusted root".into(),
        );
    }
    Ok(BlobVerifyReport {
        verified: true,
        artifact: what,
        digest: format!("sha256:{}", hex::encode(digest)),
        bundle: request.bundle.display().to_string(),
        media_type: bundle.media_type.clone(),
        signer,
        times: verdict.verified.times,
        log_entries: verdict.verified.log_entries,
        statement: verdict.statement.map(|s| s.value),
        checks,
        attestation: request.attestation,
    })
}

fn certificate_der(signer: &dyn Signer) -> Result<Option<Vec<u8>>> {
    Ok(signer
        .certificate_pem()
        .map(SigningCert::from_pem)
        .transpose()?
        .map(|c| c.der))
}

/// Signs a file: a message signature over its SHA-256, logged as a `hashedrekord` entry when
/// `tlog` is given. Returns the Sigstore bundle v0.3.
pub async fn sign_blob(
    file: &Path,
    signer: &dyn Signer,
    tlog: Option<&Tlog>,
) -> Result<SigstoreBundle> {
    let digest = hash_file(file)?;
    let signature = signer.sign_digest(&digest)?;
    let log = match tlog {
        Some(tlog) => Some(
            tlog.log(&rekor::hashedrekord_for_digest(
                &digest,
                &signature,
                &signer.verifier_pem(),
            ))
            .await
            .with_context(|| format!("logging the signature of {}", file.display()))?,
        ),
        None => None,
    };
    SigstoreBundle::for_message(
        &digest,
        &signature,
        certificate_der(signer)?.as_deref(),
        Some(crate::sign::keys::fingerprint(&signer.public_key())),
        log.as_ref(),
    )
}

/// Attests a file: an in-toto statement (subject: the file's name and SHA-256) around the
/// predicate's exact bytes, in a DSSE envelope, logged as a `dsse` entry when `tlog` is given.
pub async fn attest_blob(
    file: &Path,
    predicate_type: &str,
    predicate: &[u8],
    signer: &dyn Signer,
    tlog: Option<&Tlog>,
) -> Result<SigstoreBundle> {
    attestation::check_predicate(predicate_type, predicate)?;
    let digest = Digest::from_sha256(hash_file(file)?);
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.display().to_string());
    let statement = attestation::statement(&name, &digest, predicate_type, predicate)?;
    let signature = signer.sign(&attestation::pae(IN_TOTO_PAYLOAD_TYPE, &statement))?;
    let envelope = Envelope::new(&statement, &signature);
    let log = match tlog {
        Some(tlog) => Some(
            tlog.log(&rekor::dsse(&envelope.to_bytes(), &signer.verifier_pem()))
                .await
                .with_context(|| format!("logging the attestation of {}", file.display()))?,
        ),
        None => None,
    };
    SigstoreBundle::new(
        envelope,
        certificate_der(signer)?.as_deref(),
        Some(crate::sign::keys::fingerprint(&signer.public_key())),
        log.as_ref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_arguments() {
        let hex_digest = "a".repeat(64);
        assert_eq!(
            Artifact::parse(&format!("sha256:{hex_digest}")),
            Artifact::Digest([0xaa; 32])
        );
        assert_eq!(
            Artifact::parse("sha256:abc"),
            Artifact::File("sha256:abc".into())
        );
        assert_eq!(Artifact::parse("a.txt"), Artifact::File("a.txt".into()));
        let dir = tempfile::tempdir().unwrap();
        let existing = dir.path().join(format!("sha256:{hex_digest}"));
        std::fs::write(&existing, b"x").unwrap();
        let arg = existing.display().to_string();
        assert_eq!(Artifact::parse(&arg), Artifact::File(existing));
    }

    #[test]
    fn bounded_reads_and_atomic_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.json");
        write_atomically(&path, b"0123456789").unwrap();
        assert_eq!(read_bounded(&path, 10, "bundle").unwrap(), b"0123456789");
        let err = read_bounded(&path, 9, "bundle").unwrap_err().to_string();
        assert!(err.contains("more than the 9 allowed"), "{err}");
        let err = read_bounded(dir.path(), 9, "bundle")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a regular file"), "{err}");
        write_atomically(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
