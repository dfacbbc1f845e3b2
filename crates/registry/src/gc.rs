//! Garbage collection of a registry store: mark from every root, sweep the
//! rest.
//!
//! Roots are the images of the store's `index.json` (the local image store),
//! every manifest linked in a registry repository (with `delete_untagged`,
//! only those reachable from a tag, through indexes, or referring to a kept
//! manifest), and everything the pull-through mirror caches (its size limit,
//! not GC, decides when mirrored content goes). Marking follows configs,
//! layers and index children, never `subject` (a referrer does not keep its
//! subject alive).
//!
//! The grace period protects a push in flight: blobs whose file, or whose
//! link in a repository, is younger than the grace period are kept even if
//! no manifest references them yet.
//!
//! GC holds the store's exclusive writer lock (`locks/gc.lock`), so it never
//! runs while an upload session, a manifest push or a `berth load` is in
//! progress; leftover ingest files are therefore all abandoned and removed.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::path::Path;
use std::time::{Duration, SystemTime};

use berth_content::{ContentStore, FsStore};
use berth_image::ImageStore;
use berth_oci::{Descriptor, Digest, ManifestKind, ParsedManifest, media_type};

use crate::error::{Error, Result};
use crate::storage::{FsMeta, MetaStore};

/// What to collect.
#[derive(Debug, Clone)]
pub struct GcOptions {
    pub dry_run: bool,
    pub grace: Duration,
    pub delete_untagged: bool,
    /// Wait for writers to finish (the CLI) instead of giving up (the server).
    pub wait: bool,
}

/// What a collection did (or would do, in a dry run).
#[derive(Debug, Default, Clone)]
pub struct GcReport {
    /// The writer lock was busy and `wait` was false: nothing was done.
    pub skipped_busy: bool,
    pub deleted_manifests: Vec<(String, Digest)>,
    pub removed_blobs: Vec<Digest>,
    pub removed_links: usize,
    pub reclaimed_bytes: u64,
    pub removed_ingests: u64,
    pub kept_blobs: usize,
    pub kept_bytes: u64,
}

struct ExclusiveLock {
    _file: File,
}

fn lock_exclusive(root: &Path, wait: bool) -> Result<Option<ExclusiveLock>> {
    use rustix::fs::{FlockOperation, flock};
    let path = root.join("locks/gc.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("open lock", &path, e))?;
    let op = if wait {
        FlockOperation::LockExclusive
    } else {
        FlockOperation::NonBlockingLockExclusive
    };
    loop {
        match flock(&file, op) {
            Ok(()) => return Ok(Some(ExclusiveLock { _file: file })),
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::WOULDBLOCK) if !wait => return Ok(None),
            Err(e) => return Err(Error::io("lock", &path, e.into())),
        }
    }
}

fn children(p: &ParsedManifest) -> Vec<&Descriptor> {
    match &p.kind {
        ManifestKind::Image(m) => std::iter::once(&m.config).chain(m.layers.iter()).collect(),
        ManifestKind::Index(i) => i.manifests.iter().collect(),
    }
}

fn load(content: &FsStore, d: &Digest) -> Option<ParsedManifest> {
    let bytes = content.read_all(d).ok()?;
    ParsedManifest::parse_with(bytes, None, d.algorithm()).ok()
}

/// Marks `d` and everything it references.
fn mark(content: &FsStore, d: &Digest, live: &mut BTreeSet<Digest>) {
    let mut stack = vec![d.clone()];
    while let Some(d) = stack.pop() {
        if !live.insert(d.clone()) {
            continue;
        }
        if let Some(p) = load(content, &d) {
            for c in children(&p) {
                stack.push(c.digest.clone());
            }
        }
    }
}

fn subject_of(p: &ParsedManifest) -> Option<&Digest> {
    match &p.kind {
        ManifestKind::Image(m) => m.subject.as_ref().map(|s| &s.digest),
        ManifestKind::Index(i) => i.subject.as_ref().map(|s| &s.digest),
    }
}

/// The manifests of `repo` kept under the untagged policy.
fn reachable_in_repo(
    meta: &dyn MetaStore,
    content: &FsStore,
    repo: &str,
) -> Result<BTreeSet<Digest>> {
    let mut kept = BTreeSet::new();
    let mut stack: Vec<Digest> = meta.tags(repo)?.into_iter().map(|(_, d)| d).collect();
    while let Some(d) = stack.pop() {
        if !kept.insert(d.clone()) {
            continue;
        }
        if let Some(p) = load(content, &d)
            && let ManifestKind::Index(i) = &p.kind
        {
            for c in &i.manifests {
                if media_type::is_manifest(&c.media_type) || media_type::is_index(&c.media_type) {
                    stack.push(c.digest.clone());
                }
            }
        }
    }
    // Referrers of kept manifests are kept (signatures, SBOMs...), transitively.
    loop {
        let mut grew = false;
        for d in meta.manifests(repo)? {
            if kept.contains(&d) {
                continue;
            }
            if let Some(p) = load(content, &d)
                && subject_of(&p).is_some_and(|s| kept.contains(s))
            {
                kept.insert(d);
                grew = true;
            }
        }
        if !grew {
            return Ok(kept);
        }
    }
}

fn young(t: SystemTime, grace: Duration) -> bool {
    t.elapsed().map_or(true, |age| age < grace)
}

/// Collects garbage in the store at `root`.
pub fn collect(root: &Path, opts: &GcOptions) -> Result<GcReport> {
    collect_with(root, opts, &[])
}

/// Like [`collect`], keeping what the store's other keepers (the build
/// cache) hold; they are asked after the exclusive GC lock is taken.
pub fn collect_with(
    root: &Path,
    opts: &GcOptions,
    keepers: &[&dyn berth_image::GcRoots],
) -> Result<GcReport> {
    let images = ImageStore::open(root)?;
    let content = images.content().clone();
    let meta = FsMeta::open(root)?;
    let Some(_lock) = lock_exclusive(root, opts.wait)? else {
        return Ok(GcReport {
            skipped_busy: true,
            ..GcReport::default()
        });
    };
    let mut report = GcReport::default();
    let mut live = BTreeSet::new();
    for d in images.index()?.manifests {
        mark(&content, &d.digest, &mut live);
    }
    // The pull-through mirror's content is a cache with its own size limit
    // and LRU eviction: GC keeps all of it.
    let (mirrored_manifests, mirrored) = crate::mirror::root_sets(root)?;
    for d in mirrored_manifests {
        mark(&content, &d, &mut live);
    }
    live.extend(mirrored);
    for k in keepers {
        let roots = k
            .roots(root)
            .map_err(|e| Error::Corrupt(format!("cannot list the {} roots: {e}", k.name())))?;
        for d in roots {
            mark(&content, &d, &mut live);
        }
    }
    let repos = meta.repositories()?;
    for repo in &repos {
        let manifests = meta.manifests(repo)?;
        let kept = if opts.delete_untagged {
            reachable_in_repo(&meta, &content, repo)?
        } else {
            manifests.iter().cloned().collect()
        };
        for d in manifests {
            if kept.contains(&d) {
                mark(&content, &d, &mut live);
                continue;
            }
            if !opts.dry_run {
                if let Some(p) = load(&content, &d)
                    && let Some(s) = subject_of(&p)
                {
                    meta.remove_referrer(repo, s, &d)?;
                }
                meta.unlink_manifest(repo, &d)?;
            }
            report.deleted_manifests.push((repo.clone(), d));
        }
        for (d, linked_at) in meta.blob_links(repo)? {
            if young(linked_at, opts.grace) {
                live.insert(d);
            }
        }
    }
    // Manifests deleted above may still be marked through another repository;
    // the sweep below decides on bytes, the links were already removed.
    let mut removed = BTreeSet::new();
    for info in content.list()? {
        let fresh = std::fs::metadata(content.blob_path(&info.digest))
            .and_then(|m| m.modified())
            .is_ok_and(|t| young(t, opts.grace));
        if live.contains(&info.digest) || fresh {
            report.kept_blobs += 1;
            report.kept_bytes += info.size;
            continue;
        }
        if !opts.dry_run {
            content.delete(&info.digest)?;
        }
        report.reclaimed_bytes += info.size;
        removed.insert(info.digest.clone());
        report.removed_blobs.push(info.digest);
    }
    for repo in &repos {
        for (d, _) in meta.blob_links(repo)? {
            if removed.contains(&d) {
                if !opts.dry_run {
                    meta.unlink_blob(repo, &d)?;
                }
                report.removed_links += 1;
            }
        }
    }
    if !opts.dry_run {
        let (n, bytes) = content.clean_ingests()?;
        report.removed_ingests = n;
        report.reclaimed_bytes += bytes;
    }
    Ok(report)
}

/// Every digest the registry holds on to in the store at `root`: the
/// manifests linked in any repository, the blobs linked in any repository,
/// and the mirror's cached content. Another collector of the same store
/// (the image store's `prune`) must mark these, recursively through the
/// manifests, or it would delete registry content it cannot see from
/// `index.json`.
pub fn roots(root: &Path) -> Result<Vec<Digest>> {
    if !root.join("registry/repos").is_dir() {
        // No registry ever ran on this store: nothing to keep (and nothing
        // to create).
        return Ok(Vec::new());
    }
    let meta = FsMeta::open(root)?;
    let mut out = BTreeSet::new();
    for repo in meta.repositories()? {
        out.extend(meta.manifests(&repo)?);
        out.extend(meta.blob_links(&repo)?.into_iter().map(|(d, _)| d));
    }
    out.extend(crate::mirror::roots(root)?);
    Ok(out.into_iter().collect())
}

/// The registry's repositories as a source of GC roots, for
/// [`berth_image::ImageStore::gc_with`] (`berth image prune`, `berth rmi`).
#[derive(Debug, Clone, Copy, Default)]
pub struct RegistryRoots;

impl berth_image::GcRoots for RegistryRoots {
    fn name(&self) -> &str {
        "registry"
    }

    fn roots(
        &self,
        store_root: &Path,
    ) -> std::result::Result<Vec<Digest>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(roots(store_root)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_lists_manifest_and_blob_links_of_every_repository() {
        let dir = tempfile::tempdir().unwrap();
        let meta = FsMeta::open(dir.path()).unwrap();
        let (a, b, c) = (
            Digest::sha256_of(b"a"),
            Digest::sha256_of(b"b"),
            berth_oci::Algorithm::Sha512.digest(b"c"),
        );
        meta.link_manifest("x", &a, "application/vnd.oci.image.manifest.v1+json")
            .unwrap();
        meta.link_blob("x/y", &b).unwrap();
        meta.link_blob("z", &c).unwrap();
        meta.link_blob("z", &b).unwrap();
        let mut want = vec![a, b, c];
        want.sort();
        assert_eq!(roots(dir.path()).unwrap(), want);
    }
}
