//! A content-addressed blob store: the one place berth keeps bytes.
//!
//! Vocabulary (used on every type here):
//! - a **blob** is immutable content named by its [`Digest`];
//! - an **ingest** is an in-progress write. Its bytes are hashed as they are
//!   written and are invisible to readers until **commit** (the one
//!   exception is deliberate and private to the writer:
//!   [`FsStore::ingest_followed`] hands the writer a reading handle on its
//!   own ingest, to stream it while storing it; no one else can find it);
//! - **commit** checks the expected size and digest, makes the bytes durable
//!   and publishes them atomically. A failed or abandoned ingest leaves
//!   nothing visible;
//! - a **partial** ([`Partial`], filesystem store only) is a resumable
//!   ingest named after the digest it should have: what a killed writer
//!   left is continued by the next one, and verified whole at commit.
//!
//! What it deliberately does not do: know about manifests, tags or images
//! (that is `berth-image`), or decide what is garbage. [`ContentStore::delete`]
//! removes what it is told to remove; reachability is the caller's business.
//!
//! **Architecture invariant**: every implementation passes the shared
//! conformance suite in [`testsuite`]; a blob readable under digest `D` has
//! content whose digest is `D` (the filesystem store guarantees this for
//! everything it wrote; `berth system check` verifies it for bytes changed
//! behind its back).

mod fs;
mod mem;
mod partial;
pub mod testsuite;

use std::io::{self, Read, Seek, Write};
use std::path::PathBuf;

use berth_oci::{Algorithm, Digest};

pub use fs::FsStore;
pub use mem::MemStore;
pub use partial::Partial;

/// Errors from a content store. Callers match on the variant, never on text.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("blob {0} not found")]
    NotFound(Digest),
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What is known about a committed blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub digest: Digest,
    pub size: u64,
}

/// What a commit must check before it publishes an ingest.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    pub digest: Option<Digest>,
    pub size: Option<u64>,
}

impl Expected {
    /// Expect exactly this digest and size.
    pub fn exact(digest: Digest, size: u64) -> Expected {
        Expected {
            digest: Some(digest),
            size: Some(size),
        }
    }

    /// Expect this digest, any size.
    pub fn digest(digest: Digest) -> Expected {
        Expected {
            digest: Some(digest),
            size: None,
        }
    }
}

/// A readable, seekable committed blob.
pub trait BlobReader: Read + Seek + Send {}
impl<T: Read + Seek + Send> BlobReader for T {}

/// An in-progress write. Dropping it without [`Ingest::commit`] discards it.
pub trait Ingest: Write + Send {
    /// Bytes written so far.
    fn size(&self) -> u64;
    /// The digest of the bytes written so far.
    fn digest(&self) -> Digest;
    /// Reads back everything written so far (for example to decompress a
    /// layer and compute its diffID before deciding to commit it).
    fn read_back(&mut self) -> Result<Box<dyn Read + '_>>;
    /// Verifies `expected`, makes the content durable and publishes it. If a
    /// blob with the same digest exists already, the ingest is discarded and
    /// the existing blob stands.
    fn commit(self: Box<Self>, expected: Expected) -> Result<Info>;
}

/// A content-addressed blob store. See the crate documentation for the vocabulary.
pub trait ContentStore: Send + Sync {
    /// Size of a committed blob, or `None` if there is no such blob.
    fn info(&self, digest: &Digest) -> Result<Option<Info>>;
    /// Opens a committed blob for reading.
    fn open(&self, digest: &Digest) -> Result<Box<dyn BlobReader>>;
    /// Starts an ingest hashed with `algorithm`.
    fn ingest(&self, algorithm: Algorithm) -> Result<Box<dyn Ingest>>;
    /// Removes a blob; returns whether it existed.
    fn delete(&self, digest: &Digest) -> Result<bool>;
    /// Every committed blob.
    fn list(&self) -> Result<Vec<Info>>;

    /// Writes `bytes` as one blob, verifying `expected`.
    fn put(&self, bytes: &[u8], expected: Expected) -> Result<Info> {
        let algorithm = expected
            .digest
            .as_ref()
            .map_or(Algorithm::Sha256, Digest::algorithm);
        let mut w = self.ingest(algorithm)?;
        w.write_all(bytes)
            .map_err(|e| Error::io("write", "<ingest>", e))?;
        w.commit(expected)
    }

    /// Reads a whole blob into memory, verifying its digest on the way.
    fn read_all(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        berth_oci::VerifyingReader::new(self.open(digest)?, digest.clone(), None)
            .read_to_end(&mut out)
            .map_err(|e| match e.kind() {
                io::ErrorKind::InvalidData => Error::DigestMismatch {
                    expected: digest.clone(),
                    actual: digest.algorithm().digest(&out),
                },
                _ => Error::io("read", digest.to_string(), e),
            })?;
        Ok(out)
    }
}

/// Checks an ingest's final size and digest against what was expected.
pub(crate) fn verify(expected: &Expected, actual: &Digest, size: u64) -> Result<()> {
    if let Some(want) = expected.size
        && want != size
    {
        return Err(Error::SizeMismatch {
            digest: expected.digest.clone().unwrap_or_else(|| actual.clone()),
            expected: want,
            actual: size,
        });
    }
    if let Some(want) = &expected.digest
        && want != actual
    {
        return Err(Error::DigestMismatch {
            expected: want.clone(),
            actual: actual.clone(),
        });
    }
    Ok(())
}
