//! wharf: publish multi-arch container images you can prove are yours.
//!
//! Layers, bottom up; each imports only from those below it:
//!
//! - [`oci`] and [`cosign`]: pure data and formats;
//! - [`store`]: one trait over registry repositories, OCI layouts and layout archives;
//! - [`sigstore`]: certificates and their claims, logs, timestamps, trust roots and where
//!   they come from;
//! - [`sign`]: one signer trait over keys and keyless, and who signs as one spec;
//! - [`verify`]: the pure verification engine;
//! - [`ops`]: push, sign, attest, mirror, verify, tree, the blob verbs, and who must have
//!   signed as one spec;
//! - [`release`]: the release pipeline, its config, and the documents generated from it;
//! - [`cli`]: flags into specs and requests, and reports printed.
//!
//! Beside them: [`sbom`] (SBOMs from an image's layers, over [`store`]) and what any layer may
//! use: [`report`] (what a command reports), [`files`], [`text`], [`yaml`] and [`ui`].

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
