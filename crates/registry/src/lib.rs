//! The OCI distribution registry server (`berth registry serve`) and its
//! garbage collector (`berth registry gc`).
//!
//! What it does: serves the distribution API v1.1 (manifests, blobs,
//! uploads, tags, catalog, referrers) over HTTP/1.1 and HTTP/2 (TLS with
//! rustls, or cleartext with h2c prior knowledge) from a berth
//! store root, with htpasswd basic auth or the Docker token flow, Prometheus
//! metrics, access logs, and online GC.
//!
//! What it deliberately does not do: keep a second copy of any bytes. Blobs
//! and manifests live in the store's content-addressed `blobs/` (the same
//! files the local image store uses); the registry adds only *metadata*
//! (which repository links which blob, manifest, tag and referrer) under
//! `registry/` ([`storage`]). It does not convert manifests between schemas.
//! With upstreams configured it is also a pull-through mirror ([`mirror`]).
//!
//! **Invariants**
//! - Content becomes visible only after a verified commit: uploads stream
//!   into an ingest with a running digest; a mismatch publishes nothing.
//! - A repository can read only what was linked into it.
//! - Every metadata file is replaced atomically (temp + fsync + rename).
//! - Client mistakes get the spec's error JSON (never a 500 or a panic);
//!   [`ApiError::into_response`] is the one place errors become responses.
//! - Writers hold the store's shared writer lock (`locks/gc.lock`) while they
//!   work; GC holds it exclusively.

pub mod auth;
pub mod config;
mod error;
pub mod gc;
mod http;
mod metrics;
pub mod mirror;
mod registry;
pub mod routes;
pub mod server;
pub mod storage;
mod uploads;

pub use config::{AuthMode, Config, GcConfig, Grant, MirrorCacheConfig, MirrorConfig};
pub use error::{ApiError, Error, ErrorCode, Result, error_chain};
pub use gc::{GcOptions, GcReport, RegistryRoots, collect, collect_with, roots};
pub use registry::{Keeper, Registry};
pub use server::{init_logging, run, run_with};
