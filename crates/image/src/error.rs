//! The image crate's error type.

use std::io;
use std::path::PathBuf;

use berth_oci::Digest;

/// Errors from the image store and archive code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Content(#[from] berth_content::Error),
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no such image: {0}")]
    NotFound(String),
    #[error("{input:?} is ambiguous: it matches {count} images")]
    Ambiguous { input: String, count: usize },
    #[error(
        "image {reference} is referenced by several tags ({tags}); remove them one by one or use --force"
    )]
    MultipleTags { reference: String, tags: String },
    #[error("invalid manifest {digest}")]
    Manifest {
        digest: Digest,
        #[source]
        source: berth_oci::ManifestError,
    },
    #[error("invalid image config {digest}")]
    Config {
        digest: Digest,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0}")]
    Reference(#[from] berth_oci::ReferenceError),
    #[error("no manifest for platform {platform} in index {digest}")]
    NoPlatform { digest: Digest, platform: String },
    #[error("corrupt store: {0}")]
    Corrupt(String),
    #[error("invalid archive: {0}")]
    Archive(String),
    #[error("invalid tarball: {0}")]
    Tarball(String),
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
