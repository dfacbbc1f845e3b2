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

/// Drops the least recently used build-cache records (a hit refreshes a
/// record's mtime) until the layers that only the cache keeps weigh at most
/// `keep_bytes`. `size_of` gives a blob's size (`None`: gone); layers in
/// `elsewhere` (images, registry repositories) cost the cache nothing.
/// Returns how many records were removed; the caller runs the GC after.
pub fn prune_to(
    store_root: &Path,
    keep_bytes: u64,
    size_of: &dyn Fn(&Digest) -> Option<u64>,
    elsewhere: &std::collections::BTreeSet<Digest>,
) -> std::io::Result<usize> {
    use std::collections::BTreeMap;
    let dir = store_root.join("buildcache");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    // (mtime, path, layer) per record.
    let mut records = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Ok(md) = entry.metadata() else { continue };
        let layer = std::fs::read(entry.path())
            .ok()
            .and_then(|b| serde_json::from_slice::<CacheRecord>(&b).ok())
            .and_then(|r| r.layer)
            .map(|l| l.digest);
        records.push((md.modified()?, entry.path(), layer));
    }
    records.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    // How many records name each cache-only layer, and their total size.
    let mut users: BTreeMap<Digest, usize> = BTreeMap::new();
    for (_, _, layer) in &records {
        if let Some(d) = layer
            && !elsewhere.contains(d)
        {
            *users.entry(d.clone()).or_default() += 1;
        }
    }
    let mut total: u64 = users.keys().filter_map(size_of).sum();
    let mut removed = 0;
    for (_, path, layer) in records {
        if total <= keep_bytes {
            break;
        }
        std::fs::remove_file(&path)?;
        removed += 1;
        if let Some(d) = layer
            && let Some(n) = users.get_mut(&d)
        {
            *n -= 1;
            if *n == 0 {
                total = total.saturating_sub(size_of(&d).unwrap_or(0));
            }
        }
    }
    Ok(removed)
}
