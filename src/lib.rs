//! wharf: publish multi-arch container images you can prove are yours.
//!
//! Layers, bottom up: [`oci`] (pure data and formats), [`store`] (one trait over registries and
//! OCI layouts), [`ops`] (push, sign, mirror, verify), [`cli`] (argument parsing and printing).

pub mod cli;
pub mod oci;
pub mod ops;
pub mod store;
pub mod ui;
