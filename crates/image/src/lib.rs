//! The local image store and image interchange: tags, garbage collection,
//! consistency checks, `docker save`/OCI archives in and out, rootfs import,
//! and the data behind `images`, `inspect` and `history`.
//!
//! Layout: the store root *is* an OCI image layout (`oci-layout`,
//! `index.json`, `blobs/<alg>/<hex>`), so skopeo, umoci or oras can read it
//! as `oci:<root>:<name>`. Tags are `index.json` entries annotated with
//! `org.opencontainers.image.ref.name` = the full normalised reference
//! (`docker.io/library/busybox:latest`); an entry without that annotation is
//! a dangling image (`<none>`). berth's own additions live beside the layout:
//! `ingest/` (in-progress writes), `locks/` and `meta/` (caches that can be
//! rebuilt from blobs).
//!
//! What it deliberately does not do: talk to registries, build, or unpack
//! layers onto disk.
//!
//! **Architecture invariants**
//! - `index.json` is only replaced by an atomic rename, under the index lock.
//! - Writers (load, import, build) hold the store's *shared* lock from their
//!   first blob until their tags are written; garbage collection holds the
//!   *exclusive* lock. So GC never deletes a blob that a writer is about to
//!   tag, and two writers never block each other.
//! - A blob that was loaded from elsewhere keeps its exact bytes; berth only
//!   compresses layers it creates itself.

pub mod archive;
mod error;
pub mod import;
pub mod inspect;
pub mod layer_writer;
mod lock;
pub mod store;

pub use error::{Error, Result};
pub use store::{
    CheckReport, ExclusiveGuard, GcReport, GcRoots, ImageRecord, ImageStore, Resolved, WriteGuard,
};
