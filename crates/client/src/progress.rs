//! Progress events: what transfers report while they run. The library
//! never prints; the CLI turns these into progress bars or log lines.

use std::fmt;
use std::sync::Arc;

use berth_oci::Digest;

/// What happened to one blob in the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobOutcome {
    /// Downloaded and verified (committed when the whole pull succeeds).
    Downloaded,
    /// The local store had it already.
    AlreadyPresent,
    /// Uploaded to the registry.
    Uploaded,
    /// The registry had it already in the target repository.
    Exists,
    /// The registry linked it from another repository (a cross-repo mount).
    Mounted { from: String },
}

/// Whether a blob goes from or to the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Download,
    Upload,
}

/// One progress event.
#[derive(Debug, Clone)]
pub enum Event {
    /// A reference was resolved to a manifest or index.
    Resolved {
        reference: String,
        digest: Digest,
        media_type: String,
    },
    /// An index entry was chosen for a platform.
    PlatformSelected { platform: String, digest: Digest },
    /// A blob transfer is starting (or waiting for a free slot is over).
    BlobStart {
        digest: Digest,
        size: u64,
        direction: Direction,
    },
    /// `done` of `total` bytes have moved.
    BlobProgress {
        digest: Digest,
        done: u64,
        total: u64,
    },
    /// A download continues from `offset` bytes that an earlier,
    /// interrupted pull left in the store.
    BlobResumed { digest: Digest, offset: u64 },
    /// A transfer failed transiently and is being retried (or resumed at `resume_at`).
    BlobRetry {
        digest: Digest,
        resume_at: u64,
        error: String,
    },
    BlobDone {
        digest: Digest,
        size: u64,
        outcome: BlobOutcome,
    },
    /// A manifest was stored under a tag or digest in the registry.
    ManifestPushed {
        reference: String,
        digest: Digest,
        size: u64,
    },
}

/// A receiver of progress events; must be cheap (called per received chunk).
pub trait Progress: Send + Sync {
    fn event(&self, event: &Event);
}

impl<F: Fn(&Event) + Send + Sync> Progress for F {
    fn event(&self, event: &Event) {
        self(event)
    }
}

/// Discards every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&self, _event: &Event) {}
}

/// A shared progress receiver.
#[derive(Clone)]
pub struct ProgressSink(pub Arc<dyn Progress>);

impl ProgressSink {
    pub fn none() -> ProgressSink {
        ProgressSink(Arc::new(NoProgress))
    }

    pub fn emit(&self, event: Event) {
        self.0.event(&event);
    }
}

impl Default for ProgressSink {
    fn default() -> Self {
        ProgressSink::none()
    }
}

impl fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProgressSink")
    }
}
