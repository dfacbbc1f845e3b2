//! The state one server shares between requests.

use std::path::Path;
use std::sync::Arc;

use berth_content::FsStore;
use berth_image::ImageStore;

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
}

impl Registry {
    /// Opens the store at `root` (creating an empty one if needed).
    pub fn open(root: &Path, cfg: Config) -> Result<Registry> {
        let images = ImageStore::open(root)?;
        let content = images.content().clone();
        let meta = Arc::new(FsMeta::open(root)?);
        let auth = Auth::new(&cfg.auth)?;
        let tls = cfg.tls_cert.is_some();
        Ok(Registry {
            cfg,
            images,
            content,
            meta,
            uploads: Uploads::default(),
            auth,
            metrics: Metrics::default(),
            tls,
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
}
