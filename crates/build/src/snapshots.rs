//! Persistent snapshots: every layer a build needs, extracted once and kept
//! in the store as an overlayfs lower directory, so that a build never
//! re-extracts its base image (the containerd overlay snapshotter's idea).
//!
//! A snapshot is named by its layer's *chain id* (OCI: the first diff_id,
//! then `sha256(parent chain id + " " + diff_id)`), which determines the
//! whole file system up to and including the layer:
//! `<store root>/snapshots/<chain id hex>/fs` is the layer alone in overlay
//! format (whiteouts as 0/0 character devices, opaque directories marked
//! with `trusted.overlay.opaque`) and `.../layer` names the layer blob it
//! came from. A stage's file system is the overlay of its chain's `fs`
//! directories, topmost first.
//!
//! **Invariant: a snapshot directory is complete and never changes.** It is
//! made in the build's scratch directory and renamed into place (a crash
//! leaves scratch, which the next build reaps); a snapshot that exists is
//! never written: steps see it through read-only views or as an overlay
//! lower directory. Snapshots are not fsynced: each records the boot it was
//! made in, and one from an earlier boot (perhaps torn by a crash) is
//! discarded and made again. A RUN step's upper directory and a COPY step's staged
//! tree *are* their layer, so they become snapshots by rename, never by
//! re-extraction.
//!
//! Snapshots are a cache: `berth builder prune` removes them (under the
//! store's exclusive GC lock, so never while a build runs), and they are
//! remade from the layers when needed.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_content::ContentStore;
use berth_image::ImageStore;
use berth_oci::media_type::Compression;
use berth_oci::{Descriptor, Digest};

use crate::{Error, Result};

/// The snapshot directory of a store.
pub fn snapshots_dir(store_root: &Path) -> PathBuf {
    store_root.join("snapshots")
}

/// OCI chain ids of a stack of layers given by their diff_ids, bottom first.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(parent) => berth_oci::Algorithm::Sha256.digest(format!("{parent} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// The snapshots of one store.
#[derive(Debug)]
pub(crate) struct Snapshots {
    dir: PathBuf,
    /// One lock per chain id being extracted by this process.
    inflight: Mutex<HashMap<Digest, Arc<Mutex<()>>>>,
    /// Chain ids found usable (or made) by this process: every RUN asks
    /// for its whole chain, and a snapshot, once usable, stays so.
    known: Mutex<std::collections::HashSet<Digest>>,
}

impl Snapshots {
    pub(crate) fn new(store_root: &Path) -> Result<Snapshots> {
        let dir = snapshots_dir(store_root);
        fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
        Ok(Snapshots {
            dir,
            inflight: Mutex::new(HashMap::new()),
            known: Mutex::new(Default::default()),
        })
    }

    fn fs_dir(&self, chain: &Digest) -> PathBuf {
        self.dir.join(chain.hex()).join("fs")
    }

    /// Whether snapshot `chain` exists and can be trusted: made since the
    /// machine booted. Snapshots are written without `fsync` (a synced
    /// extraction would cost more than it saves), so one made before a
    /// crash may hold torn files; one from an earlier boot is moved away
    /// and made again.
    fn usable(&self, chain: &Digest) -> bool {
        if self.known.lock().expect("known").contains(chain) {
            return true;
        }
        let dir = self.dir.join(chain.hex());
        if !dir.join("fs").is_dir() {
            return false;
        }
        if fs::read_to_string(dir.join("boot")).is_ok_and(|b| b == boot_id()) {
            self.known.lock().expect("known").insert(chain.clone());
            return true;
        }
        let stale = self
            .dir
            .join(format!(".stale-{}-{}", chain.hex(), std::process::id()));
        if fs::rename(&dir, &stale).is_ok() {
            let _ = fs::remove_dir_all(&stale);
        }
        false
    }

    /// The lower directories (topmost first) of the file system made of
    /// `layers`, extracting the layers that have no snapshot yet (in
    /// `scratch`, then renamed into place).
    pub(crate) fn lowers(
        &self,
        store: &ImageStore,
        layers: &[Descriptor],
        diff_ids: &[Digest],
        scratch: &Path,
    ) -> Result<Vec<PathBuf>> {
        if layers.len() != diff_ids.len() {
            return Err(Error::InvalidImage(format!(
                "{} layers but {} diff_ids in the image config",
                layers.len(),
                diff_ids.len()
            )));
        }
        let chains = chain_ids(diff_ids);
        // Each layer is extracted on its own, so missing ones are extracted
        // at once, one thread each up to the number of CPUs.
        let missing: Vec<usize> = (0..layers.len())
            .filter(|&i| !self.usable(&chains[i]))
            .collect();
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(missing.len());
        let next = std::sync::atomic::AtomicUsize::new(0);
        let work = || -> Result<()> {
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&i) = missing.get(n) else {
                    return Ok(());
                };
                self.extract(store, &layers[i], &diff_ids[i], &chains[i], scratch)?;
            }
        };
        if threads <= 1 {
            work()?;
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads).map(|_| s.spawn(work)).collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("extraction thread"))
                    .collect::<Result<Vec<()>>>()
            })?;
        }
        Ok(chains.iter().rev().map(|c| self.fs_dir(c)).collect())
    }

    fn extract(
        &self,
        store: &ImageStore,
        layer: &Descriptor,
        diff_id: &Digest,
        chain: &Digest,
        scratch: &Path,
    ) -> Result<()> {
        let slot = crate::exec::slot(&self.inflight, chain);
        let _held = slot.lock().expect("snapshot lock");
        if self.usable(chain) {
            return Ok(());
        }
        let tmp = tempfile::Builder::new()
            .prefix("snapshot-")
            .tempdir_in(scratch)
            .map_err(|e| Error::io("create directory in", scratch, e))?;
        let tree = tmp.path().join("fs");
        let compression = Compression::of_layer(&layer.media_type).unwrap_or(Compression::None);
        let r = berth_image::archive::decompress(store.content().open(&layer.digest)?, compression)
            .map_err(|e| Error::io("decompress", layer.digest.to_string(), e))?;
        // The snapshot is named by diff_ids: the layer must be what its
        // diff_id says, or a lying config (or cache record) would plant
        // its content under another layer's name for every later build.
        let mut hashed = Hashing {
            inner: r,
            digester: diff_id.algorithm().digester(),
        };
        let opts = berth_layer::apply::ApplyOptions {
            overlay: true,
            ..Default::default()
        };
        berth_layer::apply::apply_layer(&tree, &mut hashed, &opts)?;
        std::io::copy(&mut hashed, &mut std::io::sink())
            .map_err(|e| Error::io("decompress", layer.digest.to_string(), e))?;
        let actual = hashed.digester.finish();
        if &actual != diff_id {
            return Err(Error::InvalidImage(format!(
                "layer {} uncompresses to {actual}, not to its diff_id {diff_id}",
                layer.digest
            )));
        }
        self.commit(chain, &layer.digest, &tree)
    }

    /// Makes `tree` (the layer `layer` alone, in overlay format, on the
    /// store's file system) the snapshot `chain`, by rename; a snapshot
    /// that exists already wins and `tree` is left where it is.
    pub(crate) fn commit(&self, chain: &Digest, layer: &Digest, tree: &Path) -> Result<()> {
        let final_dir = self.dir.join(chain.hex());
        if self.usable(chain) {
            return Ok(());
        }
        let parent = tree.parent().unwrap_or(Path::new("/"));
        let wrap = tempfile::Builder::new()
            .prefix(".snapshot-")
            .tempdir_in(parent)
            .map_err(|e| Error::io("create directory in", parent, e))?;
        let wrapped = wrap.path().join("fs");
        fs::rename(tree, &wrapped).map_err(|e| Error::io("rename", tree, e))?;
        for (name, text) in [("layer", layer.to_string()), ("boot", boot_id().to_owned())] {
            let meta = wrap.path().join(name);
            fs::write(&meta, text).map_err(|e| Error::io("write", &meta, e))?;
        }
        match fs::rename(wrap.path(), &final_dir) {
            Ok(()) => {
                // Renamed away: nothing left for the guard to remove.
                let _ = wrap.keep();
                Ok(())
            }
            // Another build made it first: the same content.
            Err(_) if final_dir.join("fs").is_dir() => Ok(()),
            Err(e) => Err(Error::io("rename", &final_dir, e)),
        }
    }
}

/// A reader that digests what passes through.
struct Hashing<R> {
    inner: R,
    digester: berth_oci::Digester,
}

impl<R: std::io::Read> std::io::Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digester.update(&buf[..n]);
        Ok(n)
    }
}

/// This boot of the machine.
fn boot_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    })
}

/// What [`prune`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PrunedSnapshots {
    pub snapshots: usize,
    pub bytes: u64,
}

/// Removes every snapshot of a store (`all`), or only those whose layer
/// blob is gone from the store, once no build runs (under the store's
/// exclusive lock).
pub fn prune(store: &ImageStore, all: bool) -> Result<PrunedSnapshots> {
    let _no_writers = store.exclusive()?;
    let dir = snapshots_dir(store.root());
    let mut out = PrunedSnapshots::default();
    let Ok(rd) = fs::read_dir(&dir) else {
        return Ok(out);
    };
    for e in rd.flatten() {
        let p = e.path();
        if !all {
            let layer = fs::read_to_string(p.join("layer"))
                .ok()
                .and_then(|s| s.trim().parse::<Digest>().ok());
            let present = layer.is_some_and(|d| matches!(store.content().info(&d), Ok(Some(_))));
            if present {
                continue;
            }
        }
        out.bytes += tree_size(&p);
        // Out of the way first (one rename), so a crash mid-removal leaves
        // no half snapshot under a valid name.
        let doomed = dir.join(format!(".removing-{}", e.file_name().to_string_lossy()));
        let target = if e.file_name().to_string_lossy().starts_with('.') {
            p.clone()
        } else {
            fs::rename(&p, &doomed).map_err(|err| Error::io("rename", &p, err))?;
            doomed
        };
        fs::remove_dir_all(&target).map_err(|err| Error::io("remove", &target, err))?;
        out.snapshots += 1;
    }
    Ok(out)
}

/// Bytes used by the snapshots of a store (file sizes; hard links once).
pub fn disk_usage(store_root: &Path) -> u64 {
    tree_size(&snapshots_dir(store_root))
}

fn tree_size(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![p.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(md) = fs::symlink_metadata(&d) else {
            continue;
        };
        if md.is_dir() {
            if let Ok(rd) = fs::read_dir(&d) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        } else if md.is_file() && (md.nlink() == 1 || seen.insert((md.dev(), md.ino()))) {
            total += md.len();
        }
    }
    total
}

/// A read-only view of a file system made of snapshots: an overlay of its
/// lower directories (a read-only bind mount for one, an empty directory
/// for none), mounted in the build's scratch directory and detached on
/// drop. Hard links cannot cross into it, so nothing can write a snapshot
/// through a link.
#[derive(Debug)]
pub(crate) struct View {
    dir: tempfile::TempDir,
    mounted: bool,
}

impl View {
    pub(crate) fn mount(lowers: &[PathBuf], scratch: &Path) -> Result<View> {
        let dir = tempfile::Builder::new()
            .prefix("view-")
            .tempdir_in(scratch)
            .map_err(|e| Error::io("create directory in", scratch, e))?;
        let r = match lowers {
            [] => {
                return Ok(View {
                    dir,
                    mounted: false,
                });
            }
            [one] => berth_sandbox::overlay::bind_readonly(one, dir.path()),
            many => berth_sandbox::overlay::mount(
                dir.path(),
                &berth_sandbox::overlay::Overlay {
                    lower: many,
                    upper: None,
                    userxattr: false,
                },
            ),
        };
        r.map_err(|e| Error::io("mount a view of", dir.path(), e))?;
        Ok(View { dir, mounted: true })
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for View {
    fn drop(&mut self) {
        if self.mounted {
            let _ = berth_sandbox::overlay::unmount(self.dir.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A layer is extracted only as what its diff_id says: a wrong diff_id
    /// is refused and leaves no snapshot.
    #[test]
    fn extraction_checks_the_diff_id() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ImageStore::open(tmp.path().join("store")).unwrap();
        let tree = tmp.path().join("tree");
        fs::create_dir_all(tree.join("etc")).unwrap();
        fs::write(tree.join("etc/greeting"), "hello\n").unwrap();
        let w = berth_image::layer_writer::LayerWriter::new(&store, Compression::Gzip).unwrap();
        let (w, _) = berth_layer::write::write_layer(
            &tree,
            berth_layer::write::Source::Tree,
            &Default::default(),
            w,
        )
        .unwrap();
        let layer = w.finish().unwrap();
        let scratch = tmp.path().join("scratch");
        fs::create_dir_all(&scratch).unwrap();
        let snaps = Snapshots::new(store.root()).unwrap();
        let wrong = berth_oci::Algorithm::Sha256.digest(b"another layer");
        let err = snaps
            .lowers(
                &store,
                std::slice::from_ref(&layer.descriptor),
                std::slice::from_ref(&wrong),
                &scratch,
            )
            .unwrap_err();
        assert!(err.to_string().contains("not to its diff_id"), "{err}");
        assert!(!snaps.usable(&wrong));
        let lowers = snaps
            .lowers(
                &store,
                std::slice::from_ref(&layer.descriptor),
                std::slice::from_ref(&layer.diff_id),
                &scratch,
            )
            .unwrap();
        assert_eq!(
            fs::read_to_string(lowers[0].join("etc/greeting")).unwrap(),
            "hello\n"
        );
        assert!(snaps.usable(&layer.diff_id));
    }

    #[test]
    fn chain_ids_follow_the_oci_definition() {
        let a = berth_oci::Algorithm::Sha256.digest(b"a");
        let b = berth_oci::Algorithm::Sha256.digest(b"b");
        let c = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(c[0], a);
        assert_eq!(
            c[1],
            berth_oci::Algorithm::Sha256.digest(format!("{a} {b}").as_bytes())
        );
        assert_ne!(chain_ids(&[b, a])[1], c[1]);
    }
}
