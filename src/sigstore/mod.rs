//! Sigstore: OIDC tokens, Fulcio certificates, Rekor transparency log entries and trust roots.
//!
//! sigstore-rs 0.15 cannot sign against a custom Fulcio/Rekor, insists on an `email` claim
//! (GitHub tokens have none) and skips SET checks when verifying, so wharf speaks these small
//! JSON protocols itself and verifies certificates, SCTs and SETs with RustCrypto.

pub mod bundle;
pub mod cert;
pub mod fulcio;
pub mod oidc;
pub mod rekor;
pub mod trust;

/// The public-good Sigstore instance.
pub const PUBLIC_FULCIO_URL: &str = "https://fulcio.sigstore.dev";
pub const PUBLIC_REKOR_URL: &str = "https://rekor.sigstore.dev";
