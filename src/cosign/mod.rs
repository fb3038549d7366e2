//! cosign's formats (pure data): Simple Signing payloads and the `sha256-<hex>.sig`
//! signature manifests of its tag scheme.

pub mod attestation;
pub mod payload;
pub mod provenance;
pub mod sigmanifest;
