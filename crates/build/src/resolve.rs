//! Where the images a Dockerfile names come from: `FROM IMAGE`,
//! `COPY --from=IMAGE` and `RUN --mount=from=IMAGE`.
//!
//! berth-build does no network I/O. The executor asks an [`ImageResolver`]
//! for every image reference; the default, [`LocalOnly`], looks in the
//! local store. The CLI passes one that pulls missing images (and, with
//! `--pull`, re-checks tags) with berth-client, so that registries stay out
//! of this crate and the executor stays testable offline.
//!
//! Whatever the resolver answers, the cache key of a stage built on an
//! image starts from the digest of that image's (platform) manifest, so a
//! tag that moved to other content never hits the old cache.

use berth_image::{ImageRecord, ImageStore};

use crate::{Error, Result};

/// Finds the image a Dockerfile names in the local store, making it
/// available first if it can.
pub trait ImageResolver: Send + Sync {
    /// The store's record for `reference` (as written in the Dockerfile,
    /// after ARG expansion). A build may ask for the same reference several
    /// times, from several threads: answers must be consistent within a
    /// build (the CLI's resolver remembers them).
    ///
    /// Errors: [`Error::Image`] with [`berth_image::Error::NotFound`] when
    /// the image is nowhere to be found locally, [`Error::Pull`] when
    /// fetching it failed.
    fn resolve(&self, store: &ImageStore, reference: &str) -> Result<ImageRecord>;
}

/// The local store only: what library users get unless they say otherwise.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalOnly;

impl ImageResolver for LocalOnly {
    fn resolve(&self, store: &ImageStore, reference: &str) -> Result<ImageRecord> {
        Ok(store.find(reference)?)
    }
}

impl Error {
    /// A pull failure (for [`ImageResolver`] implementations).
    pub fn pull(
        reference: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Error {
        Error::Pull {
            line: None,
            reference: reference.into(),
            source: source.into(),
        }
    }
}
