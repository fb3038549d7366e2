//! Environment variables cosign users have set, where wharf's meaning would differ from
//! cosign's: refused with a clear message rather than silently ignored or misread.

use anyhow::{bail, Result};
use std::path::Path;

/// cosign 2.5 reads `SIGSTORE_ROOT_FILE` as a PEM file of Fulcio CA certificates (roots and
/// intermediates) that replaces the public-good CAs; the Rekor and CT log keys come from
/// `SIGSTORE_REKOR_PUBLIC_KEY` and `SIGSTORE_CT_LOG_PUBLIC_KEY_FILE`. wharf takes a
/// Sigstore trust root whole, as one `trusted_root.json`, so that CAs, logs and their
/// validity windows are never mixed from different sources.
pub const SIGSTORE_ROOT_FILE: &str = "SIGSTORE_ROOT_FILE";

/// Refuses a keyless command (where the Fulcio CAs matter) that would otherwise run with the
/// public-good CAs while `SIGSTORE_ROOT_FILE` says the user meant others. An explicit
/// `--trusted-root` says what to trust, and wins.
pub fn refuse_sigstore_root_file(trusted_root: Option<&Path>) -> Result<()> {
    if trusted_root.is_some() {
        return Ok(());
    }
    match std::env::var_os(SIGSTORE_ROOT_FILE) {
        Some(value) if !value.is_empty() => bail!(
            "{SIGSTORE_ROOT_FILE} is set, and wharf does not read it: for cosign it is a PEM \
             file of Fulcio CA certificates alone, while wharf takes the whole Sigstore trust \
             root as one trusted_root.json; pass --trusted-root FILE (or WHARF_TRUSTED_ROOT), \
             or unset {SIGSTORE_ROOT_FILE} to trust the public-good instance"
        ),
        _ => Ok(()),
    }
}

/// Says where tag-scheme attachments of `image` go when `COSIGN_REPOSITORY` moves them, as
/// cosign's "Pushing signature to:" does.
pub fn note_signature_repository(
    stores: &crate::store::Stores,
    image: &crate::oci::ImageRef,
    quiet: bool,
) {
    if let Some(repository) = stores.signature_repository() {
        if !quiet && !image.repository.is_layout() {
            eprintln!("wharf: .sig/.att tags go to {repository} (COSIGN_REPOSITORY)");
        }
    }
}
