//! Layer inspection: what each layer of an image adds, changes and removes,
//! and how much of what an image ships is wasted — the data behind
//! `berth dive`.
//!
//! What it does: streams layers (tar, optionally gzip or zstd) from the local
//! store, docker-archives, OCI archives, OCI layout directories or a remote
//! image ([`source::Remote`]: a registry, implemented by the CLI), and builds
//! per layer a tree of paths ([`layer::LayerTree`]) with metadata and content
//! hashes, never file bytes; then computes
//! - dive's metrics exactly as dive does ([`dive`]), so `.dive-ci`
//!   thresholds keep their meaning, and
//! - berth's corrected metrics ([`analysis::BerthMetrics`]): the kept copy is
//!   not waste, data hidden by deleting files, whole directories or by opaque
//!   directories is, and `chmod`/`chown`-only copies are called out.
//!
//! It also evaluates `.dive-ci` rules ([`ci`]), compares the final
//! filesystems of two images ([`diff`]) and extracts one file from a layer
//! ([`source::cat`]). Both metric sets are defined in `METRICS.md` next to
//! this crate's `Cargo.toml`.
//!
//! What it deliberately does not do: draw anything (it produces data; the
//! CLI draws the report and the TUI), unpack layers to disk, or keep file
//! contents in memory: memory grows with the number of paths, never bytes.
//! It does no network I/O itself: remote images come through a trait.

pub mod analysis;
pub mod ci;
pub mod diff;
pub mod dive;
mod error;
pub mod fs;
pub mod layer;
pub mod source;

pub use analysis::{Analysis, ImageLayers, LayerMeta, UserLayers, analyze};
pub use error::{Error, Result};
pub use fs::{FsTree, Status, WasteItem, WasteReason};
pub use layer::{Change, Entry, Kind, LayerTree};

#[cfg(test)]
mod tests;
