//! The state one server shares between requests.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::sync::{Arc, Mutex};

use berth_content::FsStore;
use berth_image::ImageStore;
use berth_oci::Digest;

use crate::auth::Auth;
use crate::config::Config;
use crate::error::Result;
use crate::metrics::Metrics;
use crate::storage::{FsMeta, MetaStore};
use crate::uploads::Uploads;

/// A registry over one berth store root.
#[derive(Debug)]
pub struct Registry {
    pub(crate) cfg: Config,
    pub(crate) images: ImageStore,
    pub(crate) content: FsStore,
    pub(crate) meta: Arc<dyn MetaStore>,
    pub(crate) uploads: Uploads,
    pub(crate) auth: Auth,
    pub(crate) metrics: Metrics,
    pub(crate) tls: bool,
    pub(crate) verified: VerifiedCache,
    /// The pull-through mirror, if upstreams are configured.
    pub(crate) mirror: Option<Arc<crate::mirror::Mirror>>,
    /// Other keepers of the shared store's blobs (the build cache): the
    /// mirror's eviction never deletes what they keep.
    pub(crate) keepers: Keepers,
}

/// A keeper of blobs in the shared store, besides the registry itself.
pub type Keeper = Box<dyn berth_image::GcRoots + Send + Sync>;

/// The other keepers, by name in debug output.
#[derive(Default)]
pub(crate) struct Keepers(pub(crate) Vec<Keeper>);

impl std::fmt::Debug for Keepers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|k| k.name()))
            .finish()
    }
}

/// Blob files whose content a previous full read verified, keyed by what
/// identifies one version of a file (inode, size, modification time): full
/// reads are verified once per version, not on every request. A rewrite
/// changes the key and brings verification back.
#[derive(Debug, Default)]
pub(crate) struct VerifiedCache {
    set: Mutex<HashSet<VerifiedKey>>,
}

pub(crate) type VerifiedKey = (Digest, u64, u64, i64, i64);

impl VerifiedCache {
    const MAX: usize = 100_000;

    pub(crate) fn key(d: &Digest, m: &std::fs::Metadata) -> VerifiedKey {
        (d.clone(), m.ino(), m.len(), m.mtime(), m.mtime_nsec())
    }

    pub(crate) fn contains(&self, k: &VerifiedKey) -> bool {
        self.set.lock().unwrap().contains(k)
    }

    pub(crate) fn insert(&self, k: VerifiedKey) {
        let mut set = self.set.lock().unwrap();
        if set.len() >= Self::MAX {
            set.clear();
        }
        set.insert(k);
    }
}

impl Registry {
    /// Opens the store at `root` (creating an empty one if needed).
    pub fn open(root: &Path, cfg: Config) -> Result<Registry> {
        let images = ImageStore::open(root)?;
        let content = images.content().clone();
        let meta = Arc::new(FsMeta::open(root)?);
        let auth = Auth::new(&cfg.auth)?;
        let tls = cfg.tls_cert.is_some();
        let mirror = if cfg.mirrors.is_empty() {
            None
        } else {
            Some(Arc::new(crate::mirror::Mirror::open(root, &cfg, &content)?))
        };
        Ok(Registry {
            cfg,
            images,
            content,
            meta,
            uploads: Uploads::default(),
            auth,
            metrics: Metrics::default(),
            tls,
            verified: VerifiedCache::default(),
            mirror,
            keepers: Keepers::default(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn images(&self) -> &ImageStore {
        &self.images
    }

    pub fn meta(&self) -> &dyn MetaStore {
        self.meta.as_ref()
    }

    /// Registers the other keepers of the store's blobs.
    pub fn with_keepers(mut self, keepers: Vec<Keeper>) -> Registry {
        self.keepers = Keepers(keepers);
        self
    }
}
