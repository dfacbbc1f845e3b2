//! The crate's error type.

use std::io;
use std::path::PathBuf;

/// Errors from reading images and layers and from CI configuration.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading layer {layer}")]
    Layer {
        layer: String,
        #[source]
        source: io::Error,
    },
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Image(#[from] berth_image::Error),
    #[error(transparent)]
    Content(#[from] berth_content::Error),
    #[error("invalid archive: {0}")]
    Archive(String),
    #[error("invalid {what}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("no manifest for platform {platform} in {source_name}")]
    NoPlatform {
        source_name: String,
        platform: String,
    },
    #[error("layer {index} does not exist (the image has {count} layers)")]
    NoLayer { index: usize, count: usize },
    #[error("{path} is not in {what}")]
    PathNotFound { path: String, what: String },
    #[error("{path} is a {kind}, not a regular file")]
    NotAFile { path: String, kind: &'static str },
    #[error("invalid CI configuration {path}")]
    CiConfig {
        path: PathBuf,
        #[source]
        source: serde_norway::Error,
    },
    #[error("{0}")]
    Unsupported(String),
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
