//! The build cache as a source of GC roots: every layer a cache record
//! names stays in the store until `berth builder prune` drops the record.

use std::path::Path;

use berth_oci::Digest;

use crate::exec::CacheRecord;

/// The build cache's roots, for [`berth_image::ImageStore::gc_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct BuildCacheRoots;

impl berth_image::GcRoots for BuildCacheRoots {
    fn name(&self) -> &str {
        "build cache"
    }

    fn roots(
        &self,
        store_root: &Path,
    ) -> Result<Vec<Digest>, Box<dyn std::error::Error + Send + Sync>> {
        let dir = store_root.join("buildcache");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry?;
            // Records are written to a temporary file and renamed: skip
            // anything unreadable or half-written rather than fail the GC.
            let Ok(bytes) = std::fs::read(entry.path()) else {
                continue;
            };
            if let Ok(rec) = serde_json::from_slice::<CacheRecord>(&bytes)
                && let Some(layer) = rec.layer
            {
                out.push(layer.digest);
            }
        }
        Ok(out)
    }
}
