//! wharf: publish multi-arch container images you can prove are yours.
//!
//! Layers, bottom up: [`oci`] and [`cosign`] (pure data and formats), [`store`] (one trait over
//! registries and OCI layouts), [`sigstore`] (certificates, logs, timestamps, trust roots),
//! [`sign`] (one signer trait over keys and keyless), [`verify`] (the pure verification
//! engine), [`ops`] (push, sign, mirror, verify), [`cli`] (argument parsing and printing).

pub mod cli;
pub mod cosign;
pub mod files;
pub mod oci;
pub mod ops;
pub mod release;
pub mod report;
pub mod sbom;
pub mod sign;
pub mod sigstore;
pub mod store;
pub mod text;
pub mod ui;
pub mod verify;
pub mod yaml;
