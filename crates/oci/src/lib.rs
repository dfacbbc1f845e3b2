//! The OCI data model: digests, descriptors, media types, manifests, indexes,
//! image configurations, platforms and image references.
//!
//! What it does: parses, validates and produces the JSON documents of the OCI
//! image spec (and Docker's schema 2 equivalents), computes and verifies
//! digests over byte streams, and normalises references the way Docker does
//! (`alpine` → `docker.io/library/alpine:latest`).
//!
//! What it deliberately does not do: any I/O beyond `std::io::Read` adapters.
//! It never touches the filesystem or the network.
//!
//! **Invariant**: a digest is always computed over exact bytes. Types here can
//! be serialised, but anything that was read from elsewhere keeps its
//! original bytes next to the parsed value (see [`manifest::ParsedManifest`]);
//! re-serialising a parsed document would change its digest.

pub mod config;
pub mod descriptor;
pub mod digest;
pub mod manifest;
pub mod media_type;
pub mod platform;
pub mod reference;

pub use config::{History, ImageConfig, RootFs, RunConfig};
pub use descriptor::Descriptor;
pub use digest::{Algorithm, Digest, DigestError, Digester, VerifyingReader};
pub use manifest::{ImageIndex, ImageManifest, ManifestError, ManifestKind, ParsedManifest};
pub use platform::Platform;
pub use reference::{Reference, ReferenceError};
