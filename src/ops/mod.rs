//! Operations: push, sign, attest, mirror, verify, tree and the blob verbs, each a request in
//! and a report out ([`crate::report::Report`]), with what they share (the manifest graph,
//! copying, referrers, bundles, attaching). They reach storage through
//! [`crate::store::Store`] (and [`crate::store::Stores`], which opens one by reference), sign
//! through [`crate::sign::Signer`], and leave the verdicts to [`crate::verify`]. Who must have
//! signed is one value, [`policy::PolicySpec`].

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
pub mod policy;
pub mod push;
pub mod referrers;
pub mod sign;
pub mod tree;
pub mod verify;
