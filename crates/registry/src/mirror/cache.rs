//! What the mirror keeps on disk, next to the local registry's metadata:
//!
//! ```text
//! registry/mirror/<upstream>/repos/...   a metadata tree per upstream (the local
//!                                        registry's layout: manifests, tags, blob links)
//! registry/mirror/cached/<alg>/<hex>     one file per mirrored blob or manifest:
//!                                        its size; mtime = last use (coarse)
//! ```
//!
//! Bytes live in the store's shared `blobs/`, like everything else. The
//! `cached/` index is what the size limit counts and what least-recently-used
//! eviction removes; local repositories' content never enters it, and a
//! mirrored blob that a local repository or image also uses loses its cache
//! entry on eviction but keeps its bytes.
//!
//! Everything here is a cache: a missing file means "fetch it again", so
//! index files are written without fsync, and a blob whose bytes vanished
//! (evicted, pruned) is simply fetched again.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use berth_content::{ContentStore, FsStore};
use berth_image::ImageStore;
use berth_oci::{Algorithm, Digest, ParsedManifest};

use crate::error::{Error, Result};
use crate::storage::{FsMeta, MetaStore};

/// How stale a persisted last-use time may get before it is rewritten.
const PERSIST_EVERY: Duration = Duration::from_secs(60);

/// The directory of the mirror's state in a store.
pub(crate) fn mirror_dir(store_root: &Path) -> PathBuf {
    store_root.join("registry/mirror")
}

/// The directory name of an upstream's metadata (`127.0.0.1:5000` → `127.0.0.1_5000`).
pub(crate) fn upstream_key(registry: &str) -> String {
    registry
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    size: u64,
    last: SystemTime,
    persisted: SystemTime,
}

#[derive(Debug, Default)]
struct Lru {
    entries: HashMap<Digest, Entry>,
    total: u64,
}

/// The mirror's cache index.
#[derive(Debug)]
pub(crate) struct Cache {
    dir: PathBuf,
    max_bytes: u64,
    lru: Mutex<Lru>,
}

/// What one eviction did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Evicted {
    /// Cache entries dropped.
    pub entries: usize,
    /// Bytes the cache no longer counts.
    pub bytes: u64,
    /// Blobs deleted from the store (the others are used locally).
    pub deleted: usize,
}

fn index_path(dir: &Path, d: &Digest) -> PathBuf {
    dir.join("cached")
        .join(d.algorithm().as_str())
        .join(d.hex())
}

impl Cache {
    /// Loads the index of the store at `store_root`, dropping entries whose
    /// bytes are gone.
    pub(crate) fn open(store_root: &Path, content: &FsStore, max_bytes: u64) -> Result<Cache> {
        let dir = mirror_dir(store_root);
        let mut lru = Lru::default();
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let sub = dir.join("cached").join(alg.as_str());
            fs::create_dir_all(&sub).map_err(|e| Error::io("create directory", &sub, e))?;
            for e in fs::read_dir(&sub).map_err(|e| Error::io("read directory", &sub, e))? {
                let e = e.map_err(|e| Error::io("read directory", &sub, e))?;
                let Some(d) = e
                    .file_name()
                    .to_str()
                    .and_then(|n| Digest::new(alg, n).ok())
                else {
                    continue;
                };
                let Some(info) = content.info(&d)? else {
                    let _ = fs::remove_file(e.path());
                    continue;
                };
                let last = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                lru.total += info.size;
                lru.entries.insert(
                    d,
                    Entry {
                        size: info.size,
                        last,
                        persisted: last,
                    },
                );
            }
        }
        Ok(Cache {
            dir,
            max_bytes,
            lru: Mutex::new(lru),
        })
    }

    /// Opens (creating) the metadata tree of one upstream.
    pub(crate) fn upstream_meta(&self, registry: &str) -> Result<FsMeta> {
        FsMeta::at(self.dir.join(upstream_key(registry)).join("repos"))
    }

    /// Records that `d` (`size` bytes) is now in the cache, used now.
    pub(crate) fn record(&self, d: &Digest, size: u64) {
        let now = SystemTime::now();
        {
            let mut lru = self.lru.lock().unwrap();
            let old = lru.entries.insert(
                d.clone(),
                Entry {
                    size,
                    last: now,
                    persisted: now,
                },
            );
            lru.total = lru.total - old.map_or(0, |e| e.size) + size;
        }
        let path = index_path(&self.dir, d);
        if let Err(e) = fs::write(&path, size.to_string()) {
            tracing::warn!(path = %path.display(), error = %e, "mirror cache index");
        }
    }

    /// Notes a use of `d` (no-op if it is not a cache entry).
    pub(crate) fn touch(&self, d: &Digest) {
        let now = SystemTime::now();
        let persist = {
            let mut lru = self.lru.lock().unwrap();
            let Some(e) = lru.entries.get_mut(d) else {
                return;
            };
            e.last = now;
            let due = now
                .duration_since(e.persisted)
                .is_ok_and(|age| age >= PERSIST_EVERY);
            if due {
                e.persisted = now;
            }
            due
        };
        if persist {
            let path = index_path(&self.dir, d);
            if let Ok(f) = fs::File::options().write(true).open(&path) {
                let _ = f.set_modified(now);
            }
        }
    }

    /// Drops the entry of `d` (its bytes turned out to be gone).
    pub(crate) fn forget(&self, d: &Digest) {
        let mut lru = self.lru.lock().unwrap();
        if let Some(e) = lru.entries.remove(d) {
            lru.total -= e.size;
        }
        drop(lru);
        let _ = fs::remove_file(index_path(&self.dir, d));
    }

    pub(crate) fn contains(&self, d: &Digest) -> bool {
        self.lru.lock().unwrap().entries.contains_key(d)
    }

    /// Bytes the cache holds and entries.
    pub(crate) fn usage(&self) -> (u64, usize) {
        let lru = self.lru.lock().unwrap();
        (lru.total, lru.entries.len())
    }

    pub(crate) fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    pub(crate) fn over_limit(&self) -> bool {
        self.max_bytes > 0 && self.lru.lock().unwrap().total > self.max_bytes
    }

    /// Evicts least recently used entries until the cache is at 90% of its
    /// limit. Blocking: holds the store's exclusive writer lock (so no local
    /// push can start using a blob that is being deleted) and deletes bytes
    /// only when no local repository or image reaches them.
    pub(crate) fn evict(
        &self,
        images: &ImageStore,
        local: &dyn MetaStore,
        keepers: &[crate::registry::Keeper],
    ) -> Result<Evicted> {
        if !self.over_limit() {
            return Ok(Evicted::default());
        }
        let _lock = ExclusiveLock::take(&images.root().join("locks/gc.lock"))?;
        let target = self.max_bytes - self.max_bytes / 10;
        let mut victims: Vec<(Digest, Entry)> = {
            let lru = self.lru.lock().unwrap();
            if lru.total <= self.max_bytes {
                return Ok(Evicted::default());
            }
            lru.entries.iter().map(|(d, e)| (d.clone(), *e)).collect()
        };
        victims.sort_by(|a, b| a.1.last.cmp(&b.1.last).then_with(|| a.0.cmp(&b.0)));
        let keep = local_live(images, local, keepers)?;
        let content = images.content();
        let mut out = Evicted::default();
        for (d, _) in victims {
            let removed = {
                let mut lru = self.lru.lock().unwrap();
                if lru.total <= target {
                    break;
                }
                lru.entries.remove(&d).inspect(|e| lru.total -= e.size)
            };
            let Some(e) = removed else { continue };
            let _ = fs::remove_file(index_path(&self.dir, &d));
            out.entries += 1;
            out.bytes += e.size;
            if !keep.contains(&d) && content.delete(&d)? {
                out.deleted += 1;
            }
        }
        Ok(out)
    }
}

/// Everything local repositories, images and the other keepers (the build
/// cache) reach: never deleted by eviction.
fn local_live(
    images: &ImageStore,
    local: &dyn MetaStore,
    keepers: &[crate::registry::Keeper],
) -> Result<HashSet<Digest>> {
    let mut stack: Vec<Digest> = images
        .index()?
        .manifests
        .into_iter()
        .map(|d| d.digest)
        .collect();
    for k in keepers {
        stack.extend(k.roots(images.root()).map_err(|e| {
            Error::Corrupt(format!("the roots of the {} cannot be read: {e}", k.name()))
        })?);
    }
    let mut live = HashSet::new();
    for repo in local.repositories()? {
        stack.extend(local.manifests(&repo)?);
        live.extend(local.blob_links(&repo)?.into_iter().map(|(d, _)| d));
    }
    let content = images.content();
    let mut seen = HashSet::new();
    while let Some(d) = stack.pop() {
        if !seen.insert(d.clone()) {
            continue;
        }
        live.insert(d.clone());
        if let Some(p) = load_manifest(content, &d) {
            stack.extend(p.children().into_iter().map(|c| c.digest.clone()));
        }
    }
    Ok(live)
}

/// A stored manifest, if `d` is one (small JSON; layers are not read).
pub(crate) fn load_manifest(content: &FsStore, d: &Digest) -> Option<ParsedManifest> {
    let info = content.info(d).ok()??;
    if info.size > MAX_MANIFEST_READ {
        return None;
    }
    let bytes = content.read_all(d).ok()?;
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    ParsedManifest::parse_with(bytes, None, d.algorithm()).ok()
}

/// Larger blobs are never taken for manifests when marking.
const MAX_MANIFEST_READ: u64 = 16 << 20;

struct ExclusiveLock {
    _file: fs::File,
}

impl ExclusiveLock {
    fn take(path: &Path) -> Result<ExclusiveLock> {
        use rustix::fs::{FlockOperation, flock};
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| Error::io("open lock", path, e))?;
        loop {
            match flock(&file, FlockOperation::LockExclusive) {
                Ok(()) => return Ok(ExclusiveLock { _file: file }),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Error::io("lock", path, io::Error::from(e))),
            }
        }
    }
}

/// Every digest the mirror holds on to in the store at `store_root`, for
/// garbage collectors: cached manifests and blobs, and every manifest and
/// blob link of every upstream (whatever the current configuration says).
/// Collectors mark through these; the mirror's own size limit, not GC,
/// decides when mirrored content goes.
pub fn roots(store_root: &Path) -> Result<Vec<Digest>> {
    let (manifests, mut out) = root_sets(store_root)?;
    out.extend(manifests);
    out.sort();
    out.dedup();
    Ok(out)
}

/// [`roots`] split into manifests (to mark through) and everything else
/// cached or linked (blobs: nothing to mark through, nothing to read).
pub(crate) fn root_sets(store_root: &Path) -> Result<(Vec<Digest>, Vec<Digest>)> {
    let dir = mirror_dir(store_root);
    let mut out = BTreeSet::new();
    let mut manifests = BTreeSet::new();
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
        Err(e) => return Err(Error::io("read directory", &dir, e)),
    };
    for e in rd {
        let e = e.map_err(|e| Error::io("read directory", &dir, e))?;
        let name = e.file_name();
        if name == "cached" {
            for alg in [Algorithm::Sha256, Algorithm::Sha512] {
                let sub = e.path().join(alg.as_str());
                let Ok(rd) = fs::read_dir(&sub) else { continue };
                for f in rd.flatten() {
                    if let Some(d) = f
                        .file_name()
                        .to_str()
                        .and_then(|n| Digest::new(alg, n).ok())
                    {
                        out.insert(d);
                    }
                }
            }
            continue;
        }
        let repos = e.path().join("repos");
        if !repos.is_dir() {
            continue;
        }
        let meta = FsMeta::at(repos)?;
        for repo in meta.repositories()? {
            manifests.extend(meta.manifests(&repo)?);
            out.extend(meta.blob_links(&repo)?.into_iter().map(|(d, _)| d));
        }
    }
    Ok((manifests.into_iter().collect(), out.into_iter().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_content::Expected;

    fn blob(store: &ImageStore, data: &[u8]) -> Digest {
        let d = Digest::sha256_of(data);
        store
            .content()
            .put(data, Expected::exact(d.clone(), data.len() as u64))
            .unwrap();
        d
    }

    #[test]
    fn lru_eviction_keeps_local_content_and_recent_entries() {
        let dir = tempfile::tempdir().unwrap();
        let images = ImageStore::open(dir.path()).unwrap();
        let local = FsMeta::open(dir.path()).unwrap();
        let (a, b, c, shared) = (
            blob(&images, &[1u8; 400]),
            blob(&images, &[2u8; 400]),
            blob(&images, &[3u8; 400]),
            blob(&images, &[4u8; 400]),
        );
        local.link_blob("team/app", &shared).unwrap();
        let cache = Cache::open(dir.path(), images.content(), 1000).unwrap();
        for d in [&shared, &a, &b] {
            cache.record(d, 400);
            std::thread::sleep(Duration::from_millis(2));
        }
        cache.touch(&shared); // now the most recent
        assert!(cache.over_limit());
        let ev = cache.evict(&images, &local, &[]).unwrap();
        // 1200 > 1000: evict down to 900 → one entry, the least recent (a).
        assert_eq!(
            ev,
            Evicted {
                entries: 1,
                bytes: 400,
                deleted: 1
            }
        );
        assert!(images.content().info(&a).unwrap().is_none());
        assert!(cache.contains(&b) && cache.contains(&shared));
        cache.record(&c, 400);
        std::thread::sleep(Duration::from_millis(2));
        cache.touch(&b);
        cache.touch(&c);
        let ev = cache.evict(&images, &local, &[]).unwrap();
        // shared is now least recent: evicted from the cache, bytes kept.
        assert_eq!(ev.entries, 1);
        assert_eq!(ev.deleted, 0);
        assert!(images.content().info(&shared).unwrap().is_some());
        assert!(!cache.contains(&shared));
        // The index survives a restart; roots list what is cached.
        let again = Cache::open(dir.path(), images.content(), 1000).unwrap();
        assert_eq!(again.usage(), (800, 2));
        let mut want = vec![b.clone(), c.clone()];
        want.sort();
        assert_eq!(roots(dir.path()).unwrap(), want);
        assert_eq!(upstream_key("127.0.0.1:5000"), "127.0.0.1_5000");
    }

    #[derive(Debug)]
    struct KeepsOne(Digest);

    impl berth_image::GcRoots for KeepsOne {
        fn name(&self) -> &str {
            "test keeper"
        }
        fn roots(
            &self,
            _: &Path,
        ) -> std::result::Result<Vec<Digest>, Box<dyn std::error::Error + Send + Sync>> {
            Ok(vec![self.0.clone()])
        }
    }

    #[test]
    fn eviction_spares_what_other_keepers_keep() {
        let dir = tempfile::tempdir().unwrap();
        let images = ImageStore::open(dir.path()).unwrap();
        let local = FsMeta::open(dir.path()).unwrap();
        let (kept, gone) = (blob(&images, &[5u8; 600]), blob(&images, &[6u8; 600]));
        let cache = Cache::open(dir.path(), images.content(), 100).unwrap();
        cache.record(&kept, 600);
        cache.record(&gone, 600);
        let keepers: Vec<crate::registry::Keeper> = vec![Box::new(KeepsOne(kept.clone()))];
        let ev = cache.evict(&images, &local, &keepers).unwrap();
        assert_eq!((ev.entries, ev.deleted), (2, 1));
        assert!(images.content().info(&kept).unwrap().is_some());
        assert!(images.content().info(&gone).unwrap().is_none());
    }
}
