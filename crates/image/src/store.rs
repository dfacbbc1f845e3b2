//! The image store: an OCI image layout with tags, locks, GC and checks.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use berth_content::{ContentStore, Expected, FsStore};
use berth_oci::descriptor::ANNOTATION_REF_NAME;
use berth_oci::{
    Descriptor, Digest, ImageConfig, ImageIndex, ImageManifest, ManifestKind, ParsedManifest,
    Platform, Reference, media_type,
};

use crate::lock::FileLock;
use crate::{Error, Result};

const LAYOUT_FILE: &str = "oci-layout";
const LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
const INDEX_FILE: &str = "index.json";

/// A local image store rooted at a directory.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
    content: FsStore,
}

/// Proof that the holder may write blobs that it will tag later: GC waits
/// until every guard is dropped.
#[derive(Debug)]
pub struct WriteGuard {
    _lock: FileLock,
}

/// Proof that no writer runs: taken by the GC, and by whoever removes
/// caches that writers use without locks of their own (build snapshots).
/// New writers wait until it is dropped.
#[derive(Debug)]
pub struct ExclusiveGuard {
    _lock: FileLock,
}

/// One image in the store: a top-level descriptor and the names pointing at it.
#[derive(Debug, Clone)]
pub struct ImageRecord {
    pub descriptor: Descriptor,
    /// Full references, sorted; empty for a dangling image.
    pub names: Vec<Reference>,
}

/// An image resolved down to one platform's manifest and config.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// What the name points at (a manifest, or an index).
    pub top: Descriptor,
    /// The platform manifest that was chosen.
    pub manifest: ParsedManifest,
    pub image: ImageManifest,
    pub config_bytes: Vec<u8>,
    pub config: ImageConfig,
    /// Every name pointing at `top`.
    pub names: Vec<Reference>,
}

impl Resolved {
    /// Docker's image id: the config digest.
    pub fn id(&self) -> &Digest {
        &self.image.config.digest
    }
}

/// Another part of berth that keeps blobs of the shared content store alive
/// without an image in `index.json`: the registry server's repositories, the
/// build cache. [`ImageStore::gc_with`] asks every source for its roots
/// *after* taking the exclusive GC lock, so no root can appear in between.
pub trait GcRoots {
    /// A short name for error messages ("registry", "build cache").
    fn name(&self) -> &str;
    /// Digests to keep. A root that is a manifest or an index keeps its
    /// children too.
    fn roots(
        &self,
        store_root: &Path,
    ) -> std::result::Result<Vec<Digest>, Box<dyn std::error::Error + Send + Sync>>;
}

/// What [`ImageStore::gc`] did (or would do, in a dry run).
#[derive(Debug, Default, Clone)]
pub struct GcReport {
    pub removed_blobs: Vec<Digest>,
    pub reclaimed_bytes: u64,
    pub removed_ingests: u64,
    pub kept_blobs: usize,
}

/// What [`ImageStore::check`] found.
#[derive(Debug, Default, Clone)]
pub struct CheckReport {
    pub blobs_checked: usize,
    pub bytes_checked: u64,
    /// Blobs whose content does not match their name.
    pub corrupt: Vec<(Digest, String)>,
    /// Blobs referenced by a tagged or dangling image but absent.
    pub missing: Vec<(Digest, String)>,
    /// Documents that exist but cannot be parsed.
    pub invalid: Vec<(Digest, String)>,
    /// Blobs no image references (reclaimable by `image prune`).
    pub unreferenced: Vec<Digest>,
    /// Leftover files of interrupted writes.
    pub stale_ingests: usize,
}

impl CheckReport {
    pub fn is_ok(&self) -> bool {
        self.corrupt.is_empty() && self.missing.is_empty() && self.invalid.is_empty()
    }
}

/// The default store root: `$BERTH_ROOT`, else `/var/lib/berth` for root and
/// `$XDG_DATA_HOME/berth` (or `~/.local/share/berth`) for other users.
pub fn default_root() -> PathBuf {
    if let Some(r) = std::env::var_os("BERTH_ROOT").filter(|r| !r.is_empty()) {
        return PathBuf::from(r);
    }
    if rustix::process::geteuid().is_root() {
        return PathBuf::from("/var/lib/berth");
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("berth");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
    PathBuf::from(home).join(".local/share/berth")
}

fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.tmp-"))
        .tempfile_in(dir)
        .map_err(|e| Error::io("create temporary file in", dir, e))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| Error::io("write", tmp.path(), e))?;
    let target = dir.join(name);
    tmp.persist(&target)
        .map_err(|e| Error::io("rename into place", &target, e.error))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync directory", dir, e))
}

impl ImageStore {
    /// Opens the store at `root`, creating an empty OCI layout if needed.
    pub fn open(root: impl Into<PathBuf>) -> Result<ImageStore> {
        let root = root.into();
        let content = FsStore::open(&root)?;
        for dir in [root.join("locks"), root.join("meta")] {
            fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
        }
        if !root.join(LAYOUT_FILE).exists() {
            write_atomic(&root, LAYOUT_FILE, LAYOUT_CONTENT)?;
        }
        if !root.join(INDEX_FILE).exists() {
            let _l = FileLock::exclusive(&root.join("locks/index.lock"))?;
            if !root.join(INDEX_FILE).exists() {
                write_atomic(
                    &root,
                    INDEX_FILE,
                    &berth_oci::manifest::to_vec(&ImageIndex::empty()),
                )?;
            }
        }
        Ok(ImageStore { root, content })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn content(&self) -> &FsStore {
        &self.content
    }

    /// Waits until every [`WriteGuard`] is dropped and keeps new ones out
    /// while the returned guard lives. Do not call [`Self::gc_with`] while
    /// holding it (it takes the same lock).
    pub fn exclusive(&self) -> Result<ExclusiveGuard> {
        Ok(ExclusiveGuard {
            _lock: FileLock::exclusive(&self.root.join("locks/gc.lock"))?,
        })
    }

    /// Takes the shared writer lock (see the crate's invariants).
    pub fn write_guard(&self) -> Result<WriteGuard> {
        Ok(WriteGuard {
            _lock: FileLock::shared(&self.root.join("locks/gc.lock"))?,
        })
    }

    /// Reads `index.json`. Readers need no lock: the file is replaced atomically.
    pub fn index(&self) -> Result<ImageIndex> {
        let path = self.root.join(INDEX_FILE);
        let bytes = fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))
    }

    /// Applies `f` to `index.json` under the index lock and writes it back atomically.
    fn update_index<T>(&self, f: impl FnOnce(&mut ImageIndex) -> Result<T>) -> Result<T> {
        let _l = FileLock::exclusive(&self.root.join("locks/index.lock"))?;
        let mut index = self.index()?;
        let out = f(&mut index)?;
        write_atomic(&self.root, INDEX_FILE, &berth_oci::manifest::to_vec(&index))?;
        Ok(out)
    }

    /// Every image, grouped by top-level digest, ordered by first appearance.
    pub fn images(&self) -> Result<Vec<ImageRecord>> {
        let index = self.index()?;
        let mut out: Vec<ImageRecord> = Vec::new();
        for d in index.manifests {
            let name = d.ref_name().and_then(|n| Reference::parse(n).ok());
            match out.iter_mut().find(|r| r.descriptor.digest == d.digest) {
                Some(r) => r.names.extend(name),
                None => {
                    let mut desc = d.clone();
                    desc.annotations.remove(ANNOTATION_REF_NAME);
                    out.push(ImageRecord {
                        descriptor: desc,
                        names: name.into_iter().collect(),
                    });
                }
            }
        }
        for r in &mut out {
            r.names.sort();
            r.names.dedup();
        }
        Ok(out)
    }

    /// Points `name` at `descriptor`. The image that held the name before, if
    /// it is left without names, stays in the store as a dangling image.
    pub fn tag(
        &self,
        _guard: &WriteGuard,
        descriptor: &Descriptor,
        name: &Reference,
    ) -> Result<()> {
        let name_str = name.to_string();
        self.update_index(|index| {
            let previous: Vec<Descriptor> = index
                .manifests
                .iter()
                .filter(|d| d.ref_name() == Some(name_str.as_str()))
                .cloned()
                .collect();
            index
                .manifests
                .retain(|d| d.ref_name() != Some(name_str.as_str()));
            // The new target is no longer dangling.
            index
                .manifests
                .retain(|d| !(d.digest == descriptor.digest && d.ref_name().is_none()));
            let mut entry = descriptor.clone();
            entry
                .annotations
                .insert(ANNOTATION_REF_NAME.to_owned(), name_str.clone());
            index.manifests.push(entry);
            for mut old in previous {
                if old.digest != descriptor.digest
                    && !index.manifests.iter().any(|d| d.digest == old.digest)
                {
                    // Keep the old image as `<none>`, as docker does.
                    old.annotations.remove(ANNOTATION_REF_NAME);
                    index.manifests.push(old);
                }
            }
            Ok(())
        })
    }

    /// Records an image without a name (a dangling image), unless it is tagged already.
    pub fn add_untagged(&self, _guard: &WriteGuard, descriptor: &Descriptor) -> Result<()> {
        self.update_index(|index| {
            if !index
                .manifests
                .iter()
                .any(|d| d.digest == descriptor.digest)
            {
                let mut d = descriptor.clone();
                d.annotations.remove(ANNOTATION_REF_NAME);
                index.manifests.push(d);
            }
            Ok(())
        })
    }

    /// Removes a name. Returns the digest of the image if that removed the
    /// image's last name (the image is then deleted from the index).
    pub fn untag(&self, name: &Reference) -> Result<Option<Digest>> {
        let name_str = name.to_string();
        self.update_index(|index| {
            let Some(pos) = index
                .manifests
                .iter()
                .position(|d| d.ref_name() == Some(name_str.as_str()))
            else {
                return Err(Error::NotFound(name.familiar()));
            };
            let removed = index.manifests.remove(pos);
            let still_used = index.manifests.iter().any(|d| d.digest == removed.digest);
            Ok((!still_used).then_some(removed.digest))
        })
    }

    /// Removes every index entry (names and dangling) for a top-level digest.
    pub fn remove_image(&self, digest: &Digest) -> Result<Vec<Reference>> {
        self.update_index(|index| {
            let mut names = Vec::new();
            index.manifests.retain(|d| {
                if &d.digest == digest {
                    names.extend(d.ref_name().and_then(|n| Reference::parse(n).ok()));
                    false
                } else {
                    true
                }
            });
            Ok(names)
        })
    }

    /// Removes dangling images (or, with `all`, every image); returns their digests.
    pub fn prune_images(&self, all: bool) -> Result<Vec<Digest>> {
        self.update_index(|index| {
            let mut removed = Vec::new();
            index.manifests.retain(|d| {
                let drop = all || d.ref_name().is_none();
                if drop && !removed.contains(&d.digest) {
                    removed.push(d.digest.clone());
                }
                !drop
            });
            Ok(removed)
        })
    }

    /// Finds the image `input` names: a reference (`busybox`, `x:1`,
    /// `name@sha256:…`), a full digest, or a unique image-id prefix.
    pub fn find(&self, input: &str) -> Result<ImageRecord> {
        let images = self.images()?;
        if let Ok(r) = Reference::parse(input) {
            if let Some(d) = r.digest() {
                if let Some(rec) = images.iter().find(|i| &i.descriptor.digest == d) {
                    return Ok(rec.clone());
                }
            } else if let Some(rec) = images.iter().find(|i| i.names.contains(&r)) {
                return Ok(rec.clone());
            }
        }
        let (full, prefix) = match input.parse::<Digest>() {
            Ok(d) => (Some(d), None),
            Err(_) => {
                let p = input.strip_prefix("sha256:").unwrap_or(input);
                let is_prefix = !p.is_empty()
                    && p.len() <= 64
                    && p.bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
                (None, is_prefix.then(|| p.to_owned()))
            }
        };
        let mut hits = Vec::new();
        for rec in &images {
            let id = self.image_id(&rec.descriptor).ok();
            let matches = |d: &Digest| match (&full, &prefix) {
                (Some(f), _) => f == d,
                (None, Some(p)) => {
                    d.algorithm() == berth_oci::Algorithm::Sha256 && d.hex().starts_with(p.as_str())
                }
                _ => false,
            };
            if id.as_ref().is_some_and(matches) || matches(&rec.descriptor.digest) {
                hits.push(rec.clone());
            }
        }
        match hits.len() {
            1 => Ok(hits.remove(0)),
            0 => Err(Error::NotFound(input.to_owned())),
            count => Err(Error::Ambiguous {
                input: input.to_owned(),
                count,
            }),
        }
    }

    /// Reads and parses a manifest or index blob.
    pub fn manifest(&self, desc: &Descriptor) -> Result<ParsedManifest> {
        let bytes = self.content.read_all(&desc.digest)?;
        let declared = (!desc.media_type.is_empty()).then_some(desc.media_type.as_str());
        ParsedManifest::parse_with(bytes, declared, desc.digest.algorithm()).map_err(|source| {
            Error::Manifest {
                digest: desc.digest.clone(),
                source,
            }
        })
    }

    /// Docker's image id for a top-level descriptor: the config digest of a
    /// manifest, or the digest of an index.
    pub fn image_id(&self, desc: &Descriptor) -> Result<Digest> {
        if media_type::is_index(&desc.media_type) {
            return Ok(desc.digest.clone());
        }
        match self.manifest(desc)?.kind {
            ManifestKind::Image(m) => Ok(m.config.digest),
            ManifestKind::Index(_) => Ok(desc.digest.clone()),
        }
    }

    /// Resolves an image record down to the manifest for `platform` (default: the host's).
    pub fn resolve(&self, rec: &ImageRecord, platform: Option<&Platform>) -> Result<Resolved> {
        let host = Platform::host();
        let platform = platform.unwrap_or(&host);
        let mut desc = rec.descriptor.clone();
        for _depth in 0..4 {
            let parsed = self.manifest(&desc)?;
            match &parsed.kind {
                ManifestKind::Image(m) => {
                    let image = m.clone();
                    let config_bytes = self.content.read_all(&image.config.digest)?;
                    let config =
                        ImageConfig::from_slice(&config_bytes).map_err(|source| Error::Config {
                            digest: image.config.digest.clone(),
                            source,
                        })?;
                    return Ok(Resolved {
                        top: rec.descriptor.clone(),
                        manifest: parsed,
                        image,
                        config_bytes,
                        config,
                        names: rec.names.clone(),
                    });
                }
                ManifestKind::Index(idx) => {
                    let child = idx
                        .manifests
                        .iter()
                        .find(|m| m.platform.as_ref().is_some_and(|p| p.matches(platform)))
                        .or_else(|| {
                            // A single-entry index without platforms (as some tools write).
                            (idx.manifests.len() == 1 && idx.manifests[0].platform.is_none())
                                .then(|| &idx.manifests[0])
                        })
                        .ok_or_else(|| Error::NoPlatform {
                            digest: desc.digest.clone(),
                            platform: platform.to_string(),
                        })?;
                    desc = child.clone();
                }
            }
        }
        Err(Error::Corrupt(format!(
            "indexes nested too deeply under {}",
            rec.descriptor.digest
        )))
    }

    /// Every blob reachable from `desc` (itself included); missing or
    /// unparsable documents are reported to `problem` and not descended into.
    fn mark(
        &self,
        desc: &Descriptor,
        seen: &mut BTreeSet<Digest>,
        problem: &mut dyn FnMut(&Digest, String, bool),
    ) {
        if !seen.insert(desc.digest.clone()) {
            return;
        }
        if !(media_type::is_manifest(&desc.media_type) || media_type::is_index(&desc.media_type)) {
            if !media_type::is_non_distributable(&desc.media_type)
                && matches!(self.content.info(&desc.digest), Ok(None))
            {
                problem(
                    &desc.digest,
                    format!("{} is missing", desc.media_type),
                    true,
                );
            }
            return;
        }
        match self.manifest(desc) {
            Ok(parsed) => {
                for child in parsed.children() {
                    self.mark(child, seen, problem);
                }
            }
            Err(Error::Content(berth_content::Error::NotFound(_))) => problem(
                &desc.digest,
                format!("{} is missing", desc.media_type),
                true,
            ),
            Err(e) => problem(&desc.digest, e.to_string(), false),
        }
    }

    /// Deletes every blob that no image references, and leftover ingests.
    /// Waits for running writers to finish first. Blobs that other parts of
    /// berth keep alive are lost: use [`Self::gc_with`] with their roots.
    pub fn gc(&self, dry_run: bool) -> Result<GcReport> {
        self.gc_with(dry_run, &[])
    }

    /// Like [`Self::gc`], keeping the roots of `extra` (and what they
    /// reference) too.
    pub fn gc_with(&self, dry_run: bool, extra: &[&dyn GcRoots]) -> Result<GcReport> {
        let _gc = FileLock::exclusive(&self.root.join("locks/gc.lock"))?;
        let live = self.live_set(extra, &mut |_, _, _| {})?;
        let mut report = GcReport::default();
        for info in self.content.list()? {
            if live.contains(&info.digest) {
                report.kept_blobs += 1;
                continue;
            }
            if !dry_run {
                self.content.delete(&info.digest)?;
                let _ = fs::remove_file(self.meta_path(&info.digest));
            }
            report.reclaimed_bytes += info.size;
            report.removed_blobs.push(info.digest);
        }
        if !dry_run {
            let (n, bytes) = self.content.clean_ingests()?;
            report.removed_ingests = n;
            report.reclaimed_bytes += bytes;
            // Temporary index files of killed processes.
            if let Ok(entries) = fs::read_dir(&self.root) {
                for e in entries.flatten() {
                    if e.file_name()
                        .to_string_lossy()
                        .starts_with(".index.json.tmp-")
                    {
                        let _ = fs::remove_file(e.path());
                    }
                }
            }
        }
        Ok(report)
    }

    /// Everything reachable from the images and from `extra`'s roots.
    fn live_set(
        &self,
        extra: &[&dyn GcRoots],
        problem: &mut dyn FnMut(&Digest, String, bool),
    ) -> Result<BTreeSet<Digest>> {
        let index = self.index()?;
        let mut live = BTreeSet::new();
        for d in &index.manifests {
            self.mark(d, &mut live, problem);
        }
        for source in extra {
            let roots = source.roots(&self.root).map_err(|e| {
                Error::Corrupt(format!("cannot list the {} roots: {e}", source.name()))
            })?;
            for digest in roots {
                // Only a small blob can be a manifest worth following.
                let small = matches!(self.content.info(&digest), Ok(Some(i)) if i.size <= 4 << 20);
                let parsed = small
                    .then(|| self.content.read_all(&digest).ok())
                    .flatten()
                    .and_then(|b| ParsedManifest::parse_with(b, None, digest.algorithm()).ok());
                match parsed {
                    Some(m) => {
                        if live.insert(digest) {
                            for child in m.children() {
                                self.mark(child, &mut live, &mut |_, _, _| {});
                            }
                        }
                    }
                    None => {
                        live.insert(digest);
                    }
                }
            }
        }
        Ok(live)
    }

    /// Verifies every blob's digest and that every image is complete.
    pub fn check(&self) -> Result<CheckReport> {
        self.check_with(&[])
    }

    /// Like [`Self::check`]; blobs kept by `extra` are not reported as
    /// unreferenced.
    pub fn check_with(&self, extra: &[&dyn GcRoots]) -> Result<CheckReport> {
        let mut report = CheckReport::default();
        let live = self.live_set(extra, &mut |digest, why, missing| {
            let entry = (digest.clone(), why);
            if missing {
                report.missing.push(entry);
            } else {
                report.invalid.push(entry);
            }
        })?;
        let blobs = self.content.list()?;
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let chunk = blobs.len().div_ceil(threads).max(1);
        let results: Vec<Vec<(Digest, u64, Option<String>)>> = std::thread::scope(|s| {
            let handles: Vec<_> = blobs
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || {
                        part.iter()
                            .map(|info| {
                                let problem = verify_blob(&self.content, &info.digest).err();
                                (info.digest.clone(), info.size, problem)
                            })
                            .collect()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (digest, size, problem) in results.into_iter().flatten() {
            report.blobs_checked += 1;
            report.bytes_checked += size;
            if let Some(p) = problem {
                report.corrupt.push((digest.clone(), p));
            }
            if !live.contains(&digest) {
                report.unreferenced.push(digest);
            }
        }
        report.stale_ingests = self.content.list_ingests()?.len();
        Ok(report)
    }

    fn meta_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("meta")
            .join(format!("{}-{}.size", digest.algorithm(), digest.hex()))
    }

    /// Records the uncompressed size of a layer blob (a cache; see [`Self::uncompressed_size`]).
    pub fn record_uncompressed_size(&self, digest: &Digest, size: u64) {
        // Best effort: the value can always be recomputed from the blob.
        let _ = write_atomic(
            &self.root.join("meta"),
            &format!("{}-{}.size", digest.algorithm(), digest.hex()),
            size.to_string().as_bytes(),
        );
    }

    /// The uncompressed size of a layer, from the cache or by decompressing it.
    pub fn uncompressed_size(&self, layer: &Descriptor) -> Result<u64> {
        use berth_oci::media_type::Compression;
        let compression = Compression::of_layer(&layer.media_type).unwrap_or(Compression::None);
        if compression == Compression::None {
            return Ok(layer.size);
        }
        if let Ok(s) = fs::read_to_string(self.meta_path(&layer.digest))
            && let Ok(n) = s.trim().parse()
        {
            return Ok(n);
        }
        let reader = crate::archive::decompress(self.content.open(&layer.digest)?, compression)
            .map_err(|e| Error::io("decompress", layer.digest.to_string(), e))?;
        let n = io::copy(&mut { reader }, &mut io::sink())
            .map_err(|e| Error::io("decompress", layer.digest.to_string(), e))?;
        self.record_uncompressed_size(&layer.digest, n);
        Ok(n)
    }

    /// Writes a document berth created (manifest or config) as a blob.
    pub fn put_json(&self, bytes: &[u8]) -> Result<Digest> {
        Ok(self.content.put(bytes, Expected::default())?.digest)
    }

    /// Names grouped by familiar repository, for `docker images`-style output.
    pub fn repo_tags(names: &[Reference]) -> BTreeMap<String, Vec<String>> {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for n in names {
            m.entry(n.familiar_name())
                .or_default()
                .push(n.tag().unwrap_or("<none>").to_owned());
        }
        m
    }
}

fn verify_blob(store: &FsStore, digest: &Digest) -> std::result::Result<(), String> {
    let mut reader = store.open(digest).map_err(|e| e.to_string())?;
    let mut hasher = digest.algorithm().digester();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    let actual = hasher.finish();
    if &actual == digest {
        Ok(())
    } else {
        Err(format!("content hashes to {actual}"))
    }
}
