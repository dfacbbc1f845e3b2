//! Build cache import and export (`--cache-from`, `--cache-to`), so that CI
//! runners share cache.
//!
//! One format serves every transport: an OCI *artifact manifest*
//! (`artifactType` [`ARTIFACT_TYPE`]) whose config ([`CONFIG_MEDIA_TYPE`])
//! lists cache records `{key, layer, diff_id, created}` and whose layers are
//! the distinct layer blobs those records name. `type=local` writes it as an
//! OCI image layout (`index.json` points at the manifest); `type=registry`
//! pushes the same manifest and blobs (the CLI does the network part; this
//! module only needs a [`CacheSource`] to read them back).
//!
//! Cache keys hold nothing machine-specific (they are digests of parent
//! key, op definition and input content), so records are portable.
//!
//! Import rules: a record already present locally is never overwritten;
//! every blob is verified (digest and size) as it is committed to the
//! content store and uncompressed once to check the record's diff_id, and a
//! blob that does not verify refuses its record (and only it: each record
//! is imported whole or not at all); records are
//! written to a temporary file and renamed into place, after their layer.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use berth_content::{ContentStore, Expected, Ingest};
use berth_image::ImageStore;
use berth_oci::manifest::ParsedManifest;
use berth_oci::{Descriptor, Digest, ImageIndex, ImageManifest, ManifestKind, media_type};
use serde::{Deserialize, Serialize};

use crate::exec::CacheRecord;

/// The artifact type of a build cache manifest.
pub const ARTIFACT_TYPE: &str = "application/vnd.berth.buildcache.v1";
/// The media type of its config: the JSON list of records.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.berth.buildcache.config.v1+json";

/// Manifests and configs larger than this are refused (they are JSON lists).
const MAX_DOCUMENT: u64 = 64 << 20;

/// An error boxed by a [`CacheSource`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Errors of cache import and export.
#[derive(Debug, thiserror::Error)]
pub enum CacheIoError {
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Content(#[from] berth_content::Error),
    #[error(transparent)]
    Image(#[from] berth_image::Error),
    /// The cache source holds something that is not a berth build cache.
    #[error("{source_name}: not a valid build cache: {message}")]
    Invalid {
        source_name: String,
        message: String,
    },
    /// Reading the cache source failed.
    #[error("{source_name}")]
    Source {
        source_name: String,
        #[source]
        source: BoxError,
    },
    /// A layer blob did not verify: its record was not imported.
    #[error(
        "{source_name}: cache record {key}: layer {digest} refused (nothing imported for this record): {reason}"
    )]
    BadBlob {
        source_name: String,
        key: Digest,
        digest: Digest,
        reason: String,
    },
}

impl CacheIoError {
    fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> CacheIoError {
        CacheIoError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = CacheIoError> = std::result::Result<T, E>;

/// One exported cache record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordEntry {
    pub key: Digest,
    /// The step's layer; `None`: the step changed nothing.
    pub layer: Option<Descriptor>,
    pub diff_id: Option<Digest>,
    pub created: Option<String>,
}

/// The config document of a cache manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheConfig {
    pub records: Vec<RecordEntry>,
}

/// `--cache-to ...,mode=`: which steps' records are exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// The target stage's chain (BuildKit's default).
    #[default]
    Min,
    /// Every step of the build.
    Max,
}

/// A cache ready to be written out: manifest, config and the layers.
#[derive(Debug, Clone)]
pub struct CacheExport {
    pub manifest: ParsedManifest,
    pub config: Vec<u8>,
    pub config_descriptor: Descriptor,
    /// The distinct layer blobs (in the store's content store).
    pub layers: Vec<Descriptor>,
    pub records: usize,
}

/// The build cache directory of a store.
fn records_dir(store: &ImageStore) -> PathBuf {
    store.root().join("buildcache")
}

/// Collects the local records of `keys` (those still present, whose layer
/// is still in the store) into a cache manifest.
pub fn collect(store: &ImageStore, keys: &[Digest]) -> Result<CacheExport> {
    let dir = records_dir(store);
    let mut records = BTreeMap::new();
    for key in keys {
        if records.contains_key(key) {
            continue;
        }
        let Ok(bytes) = fs::read(dir.join(key.hex())) else {
            continue;
        };
        let Ok(rec) = serde_json::from_slice::<CacheRecord>(&bytes) else {
            continue;
        };
        if let Some(l) = &rec.layer
            && store.content().info(&l.digest)?.is_none()
        {
            continue;
        }
        records.insert(
            key.clone(),
            RecordEntry {
                key: key.clone(),
                layer: rec.layer,
                diff_id: rec.diff_id,
                created: rec.created,
            },
        );
    }
    let mut layers: BTreeMap<Digest, Descriptor> = BTreeMap::new();
    for r in records.values() {
        if let Some(l) = &r.layer {
            layers
                .entry(l.digest.clone())
                .or_insert_with(|| Descriptor::new(l.media_type.clone(), l.digest.clone(), l.size));
        }
    }
    let n = records.len();
    let config = serde_json::to_vec(&CacheConfig {
        records: records.into_values().collect(),
    })
    .expect("serialises");
    let config_descriptor = Descriptor::new(
        CONFIG_MEDIA_TYPE,
        Digest::sha256_of(&config),
        config.len() as u64,
    );
    let layers: Vec<Descriptor> = layers.into_values().collect();
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.into()),
        artifact_type: Some(ARTIFACT_TYPE.into()),
        config: config_descriptor.clone(),
        layers: layers.clone(),
        subject: None,
        annotations: BTreeMap::new(),
    };
    let manifest = ParsedManifest::parse(berth_oci::manifest::to_vec(&manifest), None)
        .expect("a manifest berth made parses");
    Ok(CacheExport {
        manifest,
        config,
        config_descriptor,
        layers,
        records: n,
    })
}

/// The keys `mode` exports from a build.
pub fn keys_for(built: &crate::exec::Built, mode: Mode) -> &[Digest] {
    match mode {
        Mode::Min => &built.target_cache_keys,
        Mode::Max => &built.cache_keys,
    }
}

fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join("blobs")
        .join(digest.algorithm().as_str())
        .join(digest.hex())
}

/// Writes `bytes` to `path` through a temporary file and a rename.
fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut fs::File) -> std::io::Result<()>,
) -> Result<()> {
    let dir = path.parent().expect("a path in a directory");
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).map_err(|e| CacheIoError::io("create in", dir, e))?;
    write(tmp.as_file_mut()).map_err(|e| CacheIoError::io("write", path, e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| CacheIoError::io("sync", path, e))?;
    tmp.persist(path)
        .map_err(|e| CacheIoError::io("rename", path, e.error))?;
    Ok(())
}

/// Writes `export` as an OCI image layout in `dest` (created if needed):
/// blobs first, `index.json` last, so a reader never sees a manifest whose
/// blobs are missing. Blobs already there (same size) are kept.
pub fn write_layout(store: &ImageStore, export: &CacheExport, dest: &Path) -> Result<()> {
    let blobs = dest.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).map_err(|e| CacheIoError::io("create directory", &blobs, e))?;
    let fresh = |d: &Descriptor| -> Result<Option<PathBuf>> {
        let p = blob_path(dest, &d.digest);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| CacheIoError::io("create directory", parent, e))?;
        }
        Ok(match fs::metadata(&p) {
            Ok(md) if md.len() == d.size => None,
            _ => Some(p),
        })
    };
    for l in &export.layers {
        if let Some(p) = fresh(l)? {
            let mut r = store.content().open(&l.digest)?;
            write_atomic(&p, |f| std::io::copy(&mut r, f).map(|_| ()))?;
        }
    }
    for (d, bytes) in [
        (&export.config_descriptor, &export.config),
        (&export.manifest.descriptor(), &export.manifest.bytes),
    ] {
        if let Some(p) = fresh(d)? {
            write_atomic(&p, |f| f.write_all(bytes))?;
        }
    }
    let layout = dest.join("oci-layout");
    write_atomic(&layout, |f| {
        f.write_all(br#"{"imageLayoutVersion":"1.0.0"}"#)
    })?;
    let mut index = ImageIndex::empty();
    let mut desc = export.manifest.descriptor();
    desc.artifact_type = Some(ARTIFACT_TYPE.into());
    index.manifests.push(desc);
    let index_path = dest.join("index.json");
    write_atomic(&index_path, |f| {
        f.write_all(&berth_oci::manifest::to_vec(&index))
    })?;
    Ok(())
}

/// A cache manifest as a [`CacheSource`] found it.
#[derive(Debug, Clone)]
pub struct SourceManifest {
    pub bytes: Vec<u8>,
    /// The digest the bytes must have, when the source names one (the
    /// importer checks it).
    pub digest: Option<Digest>,
}

/// Where a cache is imported from.
pub trait CacheSource {
    /// For messages: `type=local,src=DIR`, a registry reference.
    fn name(&self) -> String;
    /// The cache manifest; `None` when there is no cache there.
    fn manifest(&self) -> std::result::Result<Option<SourceManifest>, BoxError>;
    /// Copies blob `desc` into a new ingest of `content`. The importer
    /// verifies and commits it, so the source need not.
    fn blob(
        &self,
        desc: &Descriptor,
        content: &dyn ContentStore,
    ) -> std::result::Result<Box<dyn Ingest>, BoxError>;
}

/// An OCI image layout written by [`write_layout`].
#[derive(Debug, Clone)]
pub struct LocalSource {
    pub dir: PathBuf,
}

impl LocalSource {
    pub fn new(dir: impl Into<PathBuf>) -> LocalSource {
        LocalSource { dir: dir.into() }
    }
}

fn read_limited(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    fs::File::open(path)?
        .take(limit + 1)
        .read_to_end(&mut out)?;
    if out.len() as u64 > limit {
        return Err(std::io::Error::other(format!(
            "{} is larger than {limit} bytes",
            path.display()
        )));
    }
    Ok(out)
}

impl CacheSource for LocalSource {
    fn name(&self) -> String {
        format!("type=local,src={}", self.dir.display())
    }

    fn manifest(&self) -> std::result::Result<Option<SourceManifest>, BoxError> {
        let index_path = self.dir.join("index.json");
        let bytes = match read_limited(&index_path, MAX_DOCUMENT) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("reading {}: {e}", index_path.display()).into()),
        };
        let index: ImageIndex =
            serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", index_path.display()))?;
        let desc = index
            .manifests
            .iter()
            .find(|d| d.artifact_type.as_deref() == Some(ARTIFACT_TYPE))
            .or(match index.manifests.as_slice() {
                [only] => Some(only),
                _ => None,
            })
            .ok_or_else(|| format!("{} names no build cache manifest", index_path.display()))?;
        if desc.size > MAX_DOCUMENT {
            return Err(format!("manifest {} is too large", desc.digest).into());
        }
        let p = blob_path(&self.dir, &desc.digest);
        let bytes = read_limited(&p, desc.size).map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(Some(SourceManifest {
            bytes,
            digest: Some(desc.digest.clone()),
        }))
    }

    fn blob(
        &self,
        desc: &Descriptor,
        content: &dyn ContentStore,
    ) -> std::result::Result<Box<dyn Ingest>, BoxError> {
        let p = blob_path(&self.dir, &desc.digest);
        let f = fs::File::open(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        let mut ingest = content.ingest(desc.digest.algorithm())?;
        // One byte more than expected is enough to detect a longer blob.
        std::io::copy(&mut f.take(desc.size + 1), &mut ingest)
            .map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(ingest)
    }
}

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportReport {
    /// Whether the source held a cache (a missing one is not an error).
    pub found: bool,
    /// Records in the source.
    pub records: usize,
    /// Records written to the local cache.
    pub imported: usize,
    /// Records the local cache had already (never overwritten).
    pub existing: usize,
    /// Layer blobs copied into the content store.
    pub blobs: usize,
    /// Records refused because a blob did not verify.
    pub refused: Vec<CacheIoError>,
}

/// Reads the cache manifest and config of `source`; `None` if there is none.
pub fn read_config(source: &dyn CacheSource) -> Result<Option<(ImageManifest, CacheConfig)>> {
    let name = source.name();
    let Some(SourceManifest {
        bytes,
        digest: expected,
    }) = source.manifest().map_err(|e| CacheIoError::Source {
        source_name: name.clone(),
        source: e,
    })?
    else {
        return Ok(None);
    };
    let invalid = |message: String| CacheIoError::Invalid {
        source_name: name.clone(),
        message,
    };
    if let Some(expected) = expected {
        let actual = expected.algorithm().digest(&bytes);
        if actual != expected {
            return Err(invalid(format!(
                "manifest {expected} does not match its digest (found {actual})"
            )));
        }
    }
    let parsed = ParsedManifest::parse(bytes, None).map_err(|e| invalid(e.to_string()))?;
    let ManifestKind::Image(m) = parsed.kind else {
        return Err(invalid("the manifest is an index".into()));
    };
    if m.artifact_type.as_deref() != Some(ARTIFACT_TYPE) || m.config.media_type != CONFIG_MEDIA_TYPE
    {
        return Err(invalid(format!(
            "artifact type {:?}, config {:?} (expected {ARTIFACT_TYPE:?}, {CONFIG_MEDIA_TYPE:?})",
            m.artifact_type, m.config.media_type
        )));
    }
    if m.config.size > MAX_DOCUMENT {
        return Err(invalid(format!("config of {} bytes", m.config.size)));
    }
    let staging = berth_content::MemStore::new();
    let ingest = source
        .blob(&m.config, &staging)
        .map_err(|e| CacheIoError::Source {
            source_name: name.clone(),
            source: e,
        })?;
    ingest
        .commit(Expected::exact(m.config.digest.clone(), m.config.size))
        .map_err(|e| invalid(format!("config: {e}")))?;
    let config: CacheConfig = serde_json::from_slice(&staging.read_all(&m.config.digest)?)
        .map_err(|e| invalid(format!("config: {e}")))?;
    for r in &config.records {
        // A layer without its diffID (or the reverse) would build a wrong image.
        if r.layer.is_some() != r.diff_id.is_some() {
            return Err(invalid(format!(
                "record {} has a layer or a diff_id but not both",
                r.key
            )));
        }
        if let Some(l) = &r.layer
            && media_type::Compression::of_layer(&l.media_type).is_none()
        {
            return Err(invalid(format!(
                "record {}: {:?} is not a layer media type",
                r.key, l.media_type
            )));
        }
    }
    Ok(Some((m, config)))
}

/// The digest of a stored layer's uncompressed bytes (its diff_id).
fn uncompressed_digest(store: &ImageStore, l: &Descriptor) -> std::result::Result<Digest, String> {
    let compression = media_type::Compression::of_layer(&l.media_type)
        .ok_or_else(|| format!("{:?} is not a layer media type", l.media_type))?;
    let blob = store.content().open(&l.digest).map_err(|e| e.to_string())?;
    let mut r = berth_image::archive::decompress(blob, compression).map_err(|e| e.to_string())?;
    let mut d = berth_oci::Algorithm::Sha256.digester();
    std::io::copy(&mut r, &mut d).map_err(|e| format!("uncompressing: {e}"))?;
    Ok(d.finish())
}

/// Imports the records of `source` into the store's build cache (see the
/// module documentation for the rules). A missing cache is reported as
/// `found: false`; blobs that do not verify are in `refused`.
pub fn import(store: &ImageStore, source: &dyn CacheSource) -> Result<ImportReport> {
    // Held until the records naming the new blobs exist (GC keeps them then).
    let _guard = store.write_guard()?;
    let mut report = ImportReport::default();
    let Some((manifest, config)) = read_config(source)? else {
        return Ok(report);
    };
    report.found = true;
    report.records = config.records.len();
    let name = source.name();
    let listed: BTreeSet<&Digest> = manifest.layers.iter().map(|l| &l.digest).collect();
    let dir = records_dir(store);
    fs::create_dir_all(&dir).map_err(|e| CacheIoError::io("create directory", &dir, e))?;
    // Each blob is fetched and uncompressed once: its diff_id, or why not.
    let mut fetched: HashMap<Digest, std::result::Result<Digest, String>> = HashMap::new();
    for r in &config.records {
        let path = dir.join(r.key.hex());
        if path.exists() {
            report.existing += 1;
            continue;
        }
        if let Some(l) = &r.layer {
            let outcome = match fetched.get(&l.digest) {
                Some(o) => o.clone(),
                None => {
                    let o = if !listed.contains(&l.digest) {
                        Err("not among the cache manifest's layers".to_owned())
                    } else if store.content().info(&l.digest)?.is_some() {
                        Ok(())
                    } else {
                        match source.blob(l, store.content()) {
                            Err(e) => Err(e.to_string()),
                            Ok(ingest) => {
                                match ingest.commit(Expected::exact(l.digest.clone(), l.size)) {
                                    Ok(_) => {
                                        report.blobs += 1;
                                        Ok(())
                                    }
                                    Err(e) => Err(e.to_string()),
                                }
                            }
                        }
                    }
                    .and_then(|()| uncompressed_digest(store, l));
                    fetched.insert(l.digest.clone(), o.clone());
                    o
                }
            };
            // A record whose diff_id is not its layer's would make images
            // whose configs lie about their layers.
            let outcome = outcome.and_then(|actual| match &r.diff_id {
                Some(d) if *d != actual => Err(format!(
                    "the layer uncompresses to {actual}, not to the record's diff_id {d}"
                )),
                _ => Ok(()),
            });
            if let Err(reason) = outcome {
                report.refused.push(CacheIoError::BadBlob {
                    source_name: name.clone(),
                    key: r.key.clone(),
                    digest: l.digest.clone(),
                    reason,
                });
                continue;
            }
        }
        let rec = CacheRecord {
            layer: r.layer.clone(),
            diff_id: r.diff_id.clone(),
            created: r.created.clone(),
        };
        let mut tmp = tempfile::NamedTempFile::new_in(&dir)
            .map_err(|e| CacheIoError::io("create in", &dir, e))?;
        tmp.write_all(&serde_json::to_vec(&rec).expect("serialises"))
            .map_err(|e| CacheIoError::io("write", &path, e))?;
        match tmp.persist_noclobber(&path) {
            Ok(_) => report.imported += 1,
            // Written meanwhile by a build: the local record stands.
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => report.existing += 1,
            Err(e) => return Err(CacheIoError::io("rename", &path, e.error)),
        }
    }
    Ok(report)
}
