//! A registry client of berth's own: pull images from OCI distribution
//! registries into the local store and push them back out.
//!
//! What it does: the Docker token flow (anonymous and with credentials,
//! tokens cached per scope), HTTP basic auth, credentials from berth's login
//! store and Docker's `config.json` (including `docker-credential-*`
//! helpers), retries with backoff, resumable and digest-verified blob
//! downloads, monolithic and chunked uploads, cross-repository mounts,
//! skipping blobs a registry already has, bounded parallel transfers with
//! progress events, platform selection from indexes, and reading an image
//! straight from a registry without storing it ([`remote`]).
//!
//! Transport policy ([`options`]): a bare `host[:port]` is HTTPS with
//! verified certificates, except loopback and listed-insecure registries,
//! which may use unverified HTTPS and then plain HTTP. A registry given as a
//! URL ([`Transport`], from `--insecure-registry`, `registries.toml`, `login`
//! or a mirror's upstream) is reached with that scheme only: `http://`
//! without trying HTTPS first, `https://` without falling back to HTTP.
//! TLS trust is per registry, in Docker's `certs.d` layout (berth's
//! `<config dir>/certs.d/<host[:port]>/` and `/etc/docker/certs.d/…`):
//! `*.crt` are extra CA roots for that registry only, `*.cert` + `*.key` a
//! client certificate; a certificate that does not verify is reported as
//! [`Error::UntrustedCertificate`], naming where a CA certificate goes.
//!
//! What it deliberately does not do: print anything (callers render
//! [`progress::Event`]s), convert or re-serialise manifests (they travel as
//! their exact bytes, so digests survive), unpack layers, or send
//! credentials over plain HTTP to registries that are neither loopback nor
//! listed as insecure (a pinned `http://` to such a registry is anonymous).
//!
//! Downloads resume: a pull writes each blob into the store's resumable
//! ingest for its digest ([`berth_content::Partial`]), so a dropped
//! connection, and equally the next pull after a killed or failed one,
//! continues with `Range: bytes=N-` from the bytes already there. The whole
//! blob is verified at the end as always; a registry that ignores `Range`
//! gets a full download, a partial that proves wrong is replaced by one,
//! and partials left unresumed for [`transfer::PARTIAL_MAX_AGE`] (or found
//! by image GC) are removed.
//!
//! **Architecture invariant**: nothing downloaded becomes visible in the
//! store before its digest and size are verified. Blobs stream into content
//! store ingests and are committed with the expected digest; a pull commits
//! only once every blob of the image has arrived and verified, so a failed
//! pull changes no tag and adds no blob.
//!
//! [`auth`] is public so that other berth crates (the pull-through mirror)
//! can authenticate to upstream registries the same way.

pub mod auth;
mod client;
pub mod credentials;
mod error;
pub mod ops;
pub mod options;
pub mod progress;
pub mod remote;
mod tls;
pub mod transfer;

pub use auth::{AuthCache, Challenge, Credential};
pub use client::{Client, api_host};
pub use credentials::{CredentialSource, DefaultCredentials, LoginStore};
pub use error::{Error, Result, error_chain};
pub use options::{ClientOptions, RetryPolicy, Transport, parse_registry};
pub use progress::{BlobOutcome, Event, Progress, ProgressSink};
pub use remote::{BlobReader, RemoteImage};
pub use transfer::{
    PullOptions, Pulled, PushOptions, Pushed, block_on, pull, pull_blocking, push, push_blocking,
};
