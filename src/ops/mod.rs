//! Operations, written against the [`crate::store::Store`] trait and (for signing) the signer
//! trait, never against a concrete registry or layout.

pub mod attach;
pub mod attest;
pub mod blob;
pub mod bundles;
pub mod copy;
pub mod copy_only;
pub mod download;
pub mod failure;
pub mod graph;
pub mod mirror;
pub mod push;
pub mod referrers;
pub mod release;
pub mod release_config;
pub mod release_docs;
pub mod release_policy;
pub mod sign;
pub mod tree;
pub mod verify;
