//! The verification engine: pure functions from bytes, a trusted root and a time to a verdict
//! or a specific [`Rejection`]. No I/O and no clock: `ops` finds and reads the candidates
//! (bundle files, OCI referrers, tag-scheme layers) and hands them here.
//!
//! - [`bundle`]: Sigstore bundles v0.1 to v0.3, for files and for image manifests;
//! - [`tag`]: cosign's tag-scheme `.sig` and `.att` layers;
//! - [`evidence`]: what both share: signature, transparency log (Rekor v1 SETs, inclusion
//!   proofs and checkpoints, Rekor v2 entries), RFC 3161 timestamps, certificate path, SCT;
//! - [`policy`]: who must have signed; [`rejection`]: why something does not count.

/// How many candidates (bundle referrers, tag-scheme layers) are examined per manifest and
/// scheme: verification must not cost in proportion to what a registry chooses to list.
pub const MAX_CANDIDATES: usize = 64;

pub mod bundle;
pub mod evidence;
pub mod policy;
pub mod rejection;
pub mod statement;
pub mod tag;

pub use bundle::{verify_blob_bundle, verify_manifest_bundle, BundleVerdict};
pub use evidence::{Context, TimeSource, Verified, VerifiedTime};
pub use policy::{FullMatch, IdentityMatch, IdentityPolicy, Policy};
pub use rejection::{Rejection, RejectionKind, Rejections};
pub use statement::VerifiedStatement;
pub use tag::{
    cosign_verified_payload, verify_attestation_layer, verify_signature_layer, LayerAnnotations,
};
