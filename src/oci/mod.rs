//! Pure OCI data: digests, descriptors, manifests, media types and references. No I/O.

pub mod digest;
pub mod manifest;
pub mod media;
pub mod reference;

pub use digest::Digest;
pub use manifest::{Descriptor, Manifest, Platform, RawManifest};
pub use reference::{ImageRef, Repository};
