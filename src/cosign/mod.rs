//! cosign's formats (pure data): Simple Signing payloads, the `sha256-<hex>.sig`/`.att`
//! manifests of its tag scheme, in-toto attestations in DSSE envelopes with the predicate
//! types `--type` names, and SLSA provenance predicates.

pub mod attestation;
pub mod payload;
pub mod provenance;
pub mod sigmanifest;
