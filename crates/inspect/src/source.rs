//! Where images come from: the local store, docker-archives, OCI archives,
//! OCI layout directories and remote images (a registry, through the
//! [`Remote`] trait). Each is read as a stream of layer tars (a
//! docker-archive's layers are tars inside the outer tar); nothing is
//! unpacked to disk and nothing is written to the store.
//!
//! Archives are read in one pass, as `docker save` puts `manifest.json` after
//! the layers: every entry that looks like a layer is parsed into a
//! [`LayerTree`] under its name, and the manifest decides the order after.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Cursor, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_content::ContentStore as _;
use berth_image::ImageStore;
use berth_image::archive::decompress;
use berth_oci::descriptor::{ANNOTATION_BASE_DIGEST, ANNOTATION_BASE_NAME};
use berth_oci::media_type::{self, Compression};
use berth_oci::{Descriptor, Digest, ImageConfig, ImageIndex, ImageManifest, Platform};

use crate::analysis::{ImageLayers, LayerMeta, UserLayers, UserLayersFrom};
use crate::layer::{Kind, LayerTree, components};
use crate::{Error, Result};

/// Where to read an image from.
#[derive(Debug, Clone)]
pub enum Source {
    /// An image in the local store, by reference, digest or id prefix.
    Store {
        store: ImageStore,
        reference: String,
    },
    /// A `docker save` tarball (plain, gzip or zstd).
    DockerArchive(PathBuf),
    /// A tarred OCI image layout (plain, gzip or zstd).
    OciArchive(PathBuf),
    /// An OCI image layout directory.
    OciDir(PathBuf),
    /// An image served blob by blob from elsewhere (a registry).
    Remote(Arc<dyn Remote>),
}

/// An image read from somewhere berth-inspect cannot reach itself (a
/// registry; the CLI implements this with berth-client), already resolved
/// to one platform. Layers are streamed, never stored.
pub trait Remote: Send + Sync + std::fmt::Debug {
    /// The image's name in reports.
    fn name(&self) -> String;
    /// The image manifest.
    fn manifest(&self) -> &ImageManifest;
    /// The config's exact bytes (verified against the manifest's digest).
    fn config(&self) -> &[u8];
    /// A blob of the image as a stream. The stream must be verified: its
    /// final read fails unless the bytes have `desc`'s digest and size (the
    /// reader is read to its end so that this check always runs).
    fn open(&self, desc: &Descriptor) -> io::Result<Box<dyn Read + '_>>;
    /// The layers of the base image named by the manifest's base
    /// annotations (`name` and manifest or index `digest`), if they can be
    /// found; `None` makes the user layers dive's "all but the first".
    fn base_layers(&self, name: Option<&str>, digest: &Digest) -> Option<Vec<Digest>>;
}

impl Source {
    fn describe(&self) -> String {
        match self {
            Source::Store { reference, .. } => reference.clone(),
            Source::DockerArchive(p) => format!("docker-archive:{}", p.display()),
            Source::OciArchive(p) => format!("oci-archive:{}", p.display()),
            Source::OciDir(p) => format!("oci-dir:{}", p.display()),
            Source::Remote(r) => r.name(),
        }
    }
}

/// The image's documents, once resolved to one platform.
#[derive(Debug, Clone)]
pub struct ImageInfo {
    pub name: String,
    pub config: ImageConfig,
    /// Manifest annotations (empty for docker-archives).
    pub annotations: std::collections::BTreeMap<String, String>,
    /// Per layer: how to find it again and what is known about it.
    pub layers: Vec<(String, LayerMeta)>,
}

/// Reads an image's layers (for [`crate::analyze`]) from `source`.
pub fn load(source: &Source, platform: Option<&Platform>) -> Result<(ImageInfo, ImageLayers)> {
    match source {
        Source::Store { store, reference } => {
            let rec = store.find(reference)?;
            let resolved = store.resolve(&rec, platform)?;
            let info = info_from(
                reference.clone(),
                &resolved.image,
                resolved.config.clone(),
                |d| d.digest.to_string(),
            );
            let user_layers = user_layers_from_store(store, &resolved.image, platform);
            let mut layers = Vec::new();
            for (desc, (_, meta)) in resolved.image.layers.iter().zip(&info.layers) {
                let tree = read_blob(desc, || Ok(store.content().open(&desc.digest)?))?;
                layers.push((meta.clone(), tree));
            }
            Ok((
                info.clone(),
                ImageLayers {
                    name: info.name,
                    layers,
                    user_layers,
                },
            ))
        }
        Source::Remote(remote) => {
            let manifest = remote.manifest();
            let config = ImageConfig::from_slice(remote.config()).map_err(|e| Error::Json {
                what: format!("config of {}", remote.name()),
                source: e,
            })?;
            let info = info_from(remote.name(), manifest, config, |d| d.digest.to_string());
            let mut layers = Vec::new();
            for (desc, (_, meta)) in manifest.layers.iter().zip(&info.layers) {
                let tree = read_remote_blob(remote.as_ref(), desc)?;
                layers.push((meta.clone(), tree));
            }
            let user_layers = user_layers_from_annotations(manifest, |d| {
                remote.base_layers(
                    manifest
                        .annotations
                        .get(ANNOTATION_BASE_NAME)
                        .map(String::as_str),
                    d,
                )
            });
            Ok((
                info.clone(),
                ImageLayers {
                    name: info.name,
                    layers,
                    user_layers,
                },
            ))
        }
        Source::OciDir(dir) => {
            let (manifest, config) = resolve_oci(
                &read_file(&dir.join("index.json"))?,
                &|d| read_file(&blob_path(dir, d)),
                platform,
                &source.describe(),
            )?;
            let info = info_from(source.describe(), &manifest, config, |d| {
                d.digest.to_string()
            });
            let mut layers = Vec::new();
            for (desc, (_, meta)) in manifest.layers.iter().zip(&info.layers) {
                let path = blob_path(dir, &desc.digest);
                let tree = read_blob(desc, || {
                    Ok(Box::new(
                        File::open(&path).map_err(|e| Error::io("open", &path, e))?,
                    ))
                })?;
                layers.push((meta.clone(), tree));
            }
            let user_layers = user_layers_from_annotations(&manifest, |_| None);
            Ok((
                info.clone(),
                ImageLayers {
                    name: info.name,
                    layers,
                    user_layers,
                },
            ))
        }
        Source::OciArchive(path) => {
            let mut scan = ArchiveScan::default();
            let links = scan_archive(path, &mut |name, reader| scan.visit(name, reader))?;
            scan.links = links.into_iter().collect();
            let (manifest, config) = resolve_oci(
                scan.json("index.json")?,
                &|d| {
                    scan.json(&format!("blobs/{}/{}", d.algorithm(), d.hex()))
                        .map(<[u8]>::to_vec)
                },
                platform,
                &source.describe(),
            )?;
            let mut info = info_from(source.describe(), &manifest, config, |d| {
                format!("blobs/{}/{}", d.digest.algorithm(), d.digest.hex())
            });
            let layers = scan.take_layers(&mut info)?;
            let user_layers = user_layers_from_annotations(&manifest, |_| None);
            Ok((
                info.clone(),
                ImageLayers {
                    name: info.name,
                    layers,
                    user_layers,
                },
            ))
        }
        Source::DockerArchive(path) => {
            let mut scan = ArchiveScan::default();
            let links = scan_archive(path, &mut |name, reader| scan.visit(name, reader))?;
            scan.links = links.into_iter().collect();
            let mut info = docker_archive_info(&scan, &source.describe())?;
            let layers = scan.take_layers(&mut info)?;
            Ok((
                info.clone(),
                ImageLayers {
                    name: info.name,
                    layers,
                    user_layers: UserLayers::all_but_first(),
                },
            ))
        }
    }
}

/// Copies one regular file out of layer `layer` (whose tree is `tree`) to
/// `out`; returns its size. A hard link is followed to its target.
pub fn cat(
    source: &Source,
    path: &str,
    layer: usize,
    tree: &LayerTree,
    info: &ImageInfo,
    out: &mut dyn Write,
) -> Result<u64> {
    let Some(id) = tree.find(path) else {
        return Err(Error::PathNotFound {
            path: path.to_owned(),
            what: format!("layer {layer}"),
        });
    };
    let node = tree.node(id);
    let mut want = crate::layer::join(&components(path));
    match node.entry.as_ref().map(|e| e.kind) {
        Some(Kind::File) => {}
        Some(Kind::Hardlink) => {
            let target = node
                .entry
                .as_ref()
                .and_then(|e| e.link.clone())
                .unwrap_or_default();
            want = crate::layer::join(&components(&target));
        }
        other => {
            return Err(Error::NotAFile {
                path: path.to_owned(),
                kind: other.map_or("directory", Kind::name),
            });
        }
    }
    let (locator, meta) = &info.layers[layer];
    // A path the layer lists more than once: extraction keeps the last entry.
    let mut skip = tree.shadowed.iter().filter(|(p, _)| *p == want).count();
    let mut copy = |reader: &mut dyn Read| -> Result<Option<u64>> {
        let mut archive = tar::Archive::new(reader);
        for entry in archive.entries().map_err(|e| layer_err(locator, e))? {
            let mut entry = entry.map_err(|e| layer_err(locator, e))?;
            let p = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            if crate::layer::join(&components(&p)) == want
                && matches!(
                    entry.header().entry_type(),
                    tar::EntryType::Regular | tar::EntryType::Continuous
                )
            {
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                let n = io::copy(&mut entry, out).map_err(|e| Error::io("write", "<stdout>", e))?;
                return Ok(Some(n));
            }
        }
        Ok(None)
    };
    let found = match source {
        Source::Store { store, .. } => {
            let digest: Digest = locator
                .parse()
                .map_err(|_| Error::Archive(locator.clone()))?;
            let c = compression_of(meta.media_type.as_deref());
            let blob = store.content().open(&digest)?;
            let mut r = open_layer(Box::new(blob), c).map_err(|e| layer_err(locator, e))?;
            copy(&mut r)?
        }
        Source::OciDir(dir) => {
            let digest: Digest = locator
                .parse()
                .map_err(|_| Error::Archive(locator.clone()))?;
            let p = blob_path(dir, &digest);
            let f = File::open(&p).map_err(|e| Error::io("open", &p, e))?;
            let c = compression_of(meta.media_type.as_deref());
            let mut r = open_layer(Box::new(f), c).map_err(|e| layer_err(locator, e))?;
            copy(&mut r)?
        }
        Source::Remote(remote) => {
            let desc = remote
                .manifest()
                .layers
                .get(layer)
                .ok_or_else(|| Error::NoLayer {
                    index: layer,
                    count: remote.manifest().layers.len(),
                })?;
            let mut raw = remote.open(desc).map_err(|e| layer_err(locator, e))?;
            let c = compression_of(meta.media_type.as_deref());
            let found = {
                let mut r = open_layer(Box::new(&mut raw), c).map_err(|e| layer_err(locator, e))?;
                copy(&mut r)?
            };
            // The whole blob is verified, even when the file came early.
            io::copy(&mut raw, &mut io::sink()).map_err(|e| layer_err(locator, e))?;
            found
        }
        Source::OciArchive(p) | Source::DockerArchive(p) => {
            let mut found = None;
            let target = locator.clone();
            scan_archive(p, &mut |name, reader| {
                if found.is_none() && name == target {
                    let mut r = open_layer(reader, None).map_err(|e| layer_err(name, e))?;
                    found = copy(&mut r)?;
                }
                Ok(())
            })?;
            found
        }
    };
    found.ok_or_else(|| Error::PathNotFound {
        path: path.to_owned(),
        what: format!("layer {layer}'s tar"),
    })
}

fn layer_err(layer: &str, source: io::Error) -> Error {
    Error::Layer {
        layer: layer.to_owned(),
        source,
    }
}

fn compression_of(media_type: Option<&str>) -> Option<Compression> {
    media_type.and_then(Compression::of_layer)
}

/// Wraps a layer stream in its decompressor: the media type's, or sniffed.
fn open_layer<'a>(
    reader: Box<dyn Read + 'a>,
    compression: Option<Compression>,
) -> io::Result<Box<dyn Read + 'a>> {
    let mut r = BufReader::with_capacity(256 * 1024, reader);
    let c = match compression {
        Some(c) if c != Compression::None => c,
        _ => berth_image::archive::sniff(&mut r)?,
    };
    decompress(r, c)
}

fn read_blob<'a>(
    desc: &Descriptor,
    open: impl FnOnce() -> Result<Box<dyn Read + 'a>>,
) -> Result<LayerTree> {
    let reader = open()?;
    let r = open_layer(reader, compression_of(Some(&desc.media_type)))
        .map_err(|e| layer_err(&desc.digest.to_string(), e))?;
    LayerTree::read(r).map_err(|e| layer_err(&desc.digest.to_string(), e))
}

/// Parses a remote layer, then reads its stream to the end: the remote's
/// verification runs at the end of the stream, and a tar's end-of-archive
/// marker (or a compressor's end) may come before it.
fn read_remote_blob(remote: &dyn Remote, desc: &Descriptor) -> Result<LayerTree> {
    let locator = desc.digest.to_string();
    let mut raw = remote.open(desc).map_err(|e| layer_err(&locator, e))?;
    let tree = {
        let r = open_layer(Box::new(&mut raw), compression_of(Some(&desc.media_type)))
            .map_err(|e| layer_err(&locator, e))?;
        LayerTree::read(r).map_err(|e| layer_err(&locator, e))?
    };
    io::copy(&mut raw, &mut io::sink()).map_err(|e| layer_err(&locator, e))?;
    Ok(tree)
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io("read", path, e))
}

fn blob_path(dir: &Path, d: &Digest) -> PathBuf {
    dir.join("blobs")
        .join(d.algorithm().to_string())
        .join(d.hex())
}

/// Layer commands from the config's history (non-empty entries, in order).
fn info_from(
    name: String,
    manifest: &ImageManifest,
    config: ImageConfig,
    locator: impl Fn(&Descriptor) -> String,
) -> ImageInfo {
    let mut history = config.history.iter().filter(|h| !h.empty_layer);
    let layers = manifest
        .layers
        .iter()
        .map(|d| {
            let h = history.next();
            (
                locator(d),
                LayerMeta {
                    digest: Some(d.digest.to_string()),
                    media_type: Some(d.media_type.clone()),
                    compressed_size: Some(d.size),
                    created_by: h.and_then(|h| h.created_by.clone()).unwrap_or_default(),
                    comment: h.and_then(|h| h.comment.clone()).unwrap_or_default(),
                },
            )
        })
        .collect();
    ImageInfo {
        name,
        config,
        annotations: manifest.annotations.clone(),
        layers,
    }
}

/// User layers from the base annotations, when the base image's layer count
/// can be learnt (`base_layers(digest)`) and its layers are this image's first.
fn user_layers_from_annotations(
    manifest: &ImageManifest,
    base_layers: impl Fn(&Digest) -> Option<Vec<Digest>>,
) -> UserLayers {
    let Some(digest) = manifest.annotations.get(ANNOTATION_BASE_DIGEST) else {
        return UserLayers::all_but_first();
    };
    let Ok(d) = digest.parse::<Digest>() else {
        return UserLayers::all_but_first();
    };
    match base_layers(&d) {
        Some(base)
            if base.len() <= manifest.layers.len()
                && base
                    .iter()
                    .zip(&manifest.layers)
                    .all(|(b, l)| *b == l.digest) =>
        {
            UserLayers {
                first: base.len(),
                from: UserLayersFrom::BaseAnnotations {
                    name: manifest.annotations.get(ANNOTATION_BASE_NAME).cloned(),
                    digest: digest.clone(),
                },
            }
        }
        _ => UserLayers::all_but_first(),
    }
}

fn user_layers_from_store(
    store: &ImageStore,
    manifest: &ImageManifest,
    platform: Option<&Platform>,
) -> UserLayers {
    user_layers_from_annotations(manifest, |d| {
        let rec = store.find(&d.to_string()).ok()?;
        let r = store.resolve(&rec, platform).ok()?;
        Some(r.image.layers.iter().map(|l| l.digest.clone()).collect())
    })
}

/// Resolves an OCI `index.json` to one image manifest and its config.
fn resolve_oci(
    index: &[u8],
    fetch: &dyn Fn(&Digest) -> Result<Vec<u8>>,
    platform: Option<&Platform>,
    source_name: &str,
) -> Result<(ImageManifest, ImageConfig)> {
    let host = Platform::host();
    let wanted = platform.unwrap_or(&host);
    let json = |what: &str, e| Error::Json {
        what: format!("{what} in {source_name}"),
        source: e,
    };
    let mut queue: Vec<Descriptor> = serde_json::from_slice::<ImageIndex>(index)
        .map_err(|e| json("index.json", e))?
        .manifests;
    queue.reverse();
    let mut depth = 0;
    while let Some(desc) = queue.pop() {
        if desc.platform.as_ref().is_some_and(|p| !p.matches(wanted)) {
            continue;
        }
        let bytes = fetch(&desc.digest)?;
        if media_type::is_index(&desc.media_type) {
            depth += 1;
            if depth > 16 {
                break;
            }
            let idx: ImageIndex =
                serde_json::from_slice(&bytes).map_err(|e| json(&desc.digest.to_string(), e))?;
            queue.extend(idx.manifests.into_iter().rev());
            continue;
        }
        let manifest: ImageManifest =
            serde_json::from_slice(&bytes).map_err(|e| json(&desc.digest.to_string(), e))?;
        let config_bytes = fetch(&manifest.config.digest)?;
        let config = ImageConfig::from_slice(&config_bytes)
            .map_err(|e| json(&manifest.config.digest.to_string(), e))?;
        if desc.platform.is_none()
            && !config.os.is_empty()
            && platform.is_some()
            && !Platform::new(&config.os, &config.architecture, config.variant.as_deref())
                .matches(wanted)
        {
            continue;
        }
        return Ok((manifest, config));
    }
    Err(Error::NoPlatform {
        source_name: source_name.to_owned(),
        platform: wanted.to_string(),
    })
}

/// What one pass over an archive found.
#[derive(Default)]
struct ArchiveScan {
    /// Small documents (JSON) by entry name.
    docs: HashMap<String, Vec<u8>>,
    /// Parsed layers by entry name.
    layers: HashMap<String, LayerTree>,
    /// Symbolic links between entries (older `docker save` dedups layers so).
    links: HashMap<String, String>,
}

const DOC_LIMIT: usize = 16 << 20;

impl ArchiveScan {
    fn visit(&mut self, name: &str, reader: Box<dyn Read + '_>) -> Result<()> {
        let mut head = Vec::with_capacity(512);
        let mut reader = reader;
        (&mut reader)
            .take(512)
            .read_to_end(&mut head)
            .map_err(|e| layer_err(name, e))?;
        let first = head.iter().find(|b| !b.is_ascii_whitespace()).copied();
        if matches!(first, Some(b'{') | Some(b'[')) {
            let mut doc = head;
            (&mut reader)
                .take(DOC_LIMIT as u64)
                .read_to_end(&mut doc)
                .map_err(|e| layer_err(name, e))?;
            self.docs.insert(name.to_owned(), doc);
            return Ok(());
        }
        let compressed = Compression::sniff(&head) != Compression::None;
        if !(compressed || looks_like_tar(&head)) {
            return Ok(());
        }
        let r = open_layer(Box::new(Cursor::new(head).chain(reader)), None)
            .map_err(|e| layer_err(name, e))?;
        let tree = LayerTree::read(r).map_err(|e| layer_err(name, e))?;
        self.layers.insert(name.to_owned(), tree);
        Ok(())
    }

    fn json(&self, name: &str) -> Result<&[u8]> {
        let name = self.resolve(name);
        self.docs
            .get(&name)
            .map(Vec::as_slice)
            .ok_or_else(|| Error::Archive(format!("{name} is missing")))
    }

    fn resolve(&self, name: &str) -> String {
        let mut n = clean(name);
        for _ in 0..8 {
            match self.links.get(&n) {
                Some(t) => n = t.clone(),
                None => break,
            }
        }
        n
    }

    /// The layers `info` lists, in order; their locators become the names
    /// of the entries that hold them (links followed).
    fn take_layers(&mut self, info: &mut ImageInfo) -> Result<Vec<(LayerMeta, LayerTree)>> {
        let mut out = Vec::new();
        let mut remaining: HashMap<String, usize> = HashMap::new();
        for (name, _) in &info.layers {
            *remaining.entry(self.resolve(name)).or_default() += 1;
        }
        for (name, meta) in &mut info.layers {
            let key = self.resolve(name);
            *name = key.clone();
            // A layer listed twice is parsed once; only then is it cloned.
            let used_again = remaining.get(&key).copied().unwrap_or(0) > 1;
            if let Some(n) = remaining.get_mut(&key) {
                *n -= 1;
            }
            let tree = match used_again {
                true => self.layers.get(&key).cloned(),
                false => self.layers.remove(&key),
            };
            let Some(tree) = tree else {
                return Err(Error::Archive(format!("layer {name} is missing")));
            };
            out.push((meta.clone(), tree));
        }
        self.layers.clear();
        Ok(out)
    }
}

fn clean(name: &str) -> String {
    components(name).join("/")
}

/// A tar header block: the ustar magic, a valid checksum, or the zero
/// block of an empty archive.
fn looks_like_tar(head: &[u8]) -> bool {
    if head.len() < 512 {
        return false;
    }
    if &head[257..262] == b"ustar" || head.iter().all(|&b| b == 0) {
        return true;
    }
    let field = String::from_utf8_lossy(&head[148..156]);
    let Ok(want) = u32::from_str_radix(field.trim_matches(|c: char| c == ' ' || c == '\0'), 8)
    else {
        return false;
    };
    let sum: u32 = head
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                b as u32
            }
        })
        .sum();
    sum == want
}

/// Receives each regular entry of an archive: its name and a reader.
type EntryVisitor<'v> = dyn FnMut(&str, Box<dyn Read + '_>) -> Result<()> + 'v;

/// Reads every regular entry of an archive file (plain, gzip or zstd) and
/// hands it to `visit`; symbolic links are recorded for name resolution.
fn scan_archive(path: &Path, visit: &mut EntryVisitor<'_>) -> Result<Vec<(String, String)>> {
    let f = File::open(path).map_err(|e| Error::io("open", path, e))?;
    let outer = open_layer(Box::new(f), None).map_err(|e| Error::io("read", path, e))?;
    let mut archive = tar::Archive::new(outer);
    let mut links: Vec<(String, String)> = Vec::new();
    for entry in archive.entries().map_err(|e| Error::io("read", path, e))? {
        let entry = entry.map_err(|e| Error::io("read", path, e))?;
        let name = clean(&String::from_utf8_lossy(&entry.path_bytes()));
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                visit(&name, Box::new(entry))?;
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                if let Some(target) = entry.link_name_bytes() {
                    let target = String::from_utf8_lossy(&target).into_owned();
                    let full = if entry.header().entry_type() == tar::EntryType::Symlink {
                        let dir = Path::new(&name)
                            .parent()
                            .map(|p| p.to_string_lossy().into_owned());
                        clean(&format!("{}/{target}", dir.unwrap_or_default()))
                    } else {
                        clean(&target)
                    };
                    links.push((name, full));
                }
            }
            _ => {}
        }
    }
    Ok(links)
}

/// The first image of a docker-archive's `manifest.json`.
fn docker_archive_info(scan: &ArchiveScan, source_name: &str) -> Result<ImageInfo> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Entry {
        config: String,
        #[serde(default)]
        layers: Vec<String>,
    }
    let entries: Vec<Entry> =
        serde_json::from_slice(scan.json("manifest.json")?).map_err(|e| Error::Json {
            what: format!("manifest.json in {source_name}"),
            source: e,
        })?;
    let Some(first) = entries.into_iter().next() else {
        return Err(Error::Archive("manifest.json lists no image".into()));
    };
    let config = ImageConfig::from_slice(scan.json(&first.config)?).map_err(|e| Error::Json {
        what: format!("{} in {source_name}", first.config),
        source: e,
    })?;
    let mut history = config.history.iter().filter(|h| !h.empty_layer);
    let layers = first
        .layers
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let h = history.next();
            (
                clean(name),
                LayerMeta {
                    digest: config.rootfs.diff_ids.get(i).map(ToString::to_string),
                    media_type: None,
                    compressed_size: None,
                    created_by: h.and_then(|h| h.created_by.clone()).unwrap_or_default(),
                    comment: h.and_then(|h| h.comment.clone()).unwrap_or_default(),
                },
            )
        })
        .collect();
    Ok(ImageInfo {
        name: source_name.to_owned(),
        config,
        annotations: Default::default(),
        layers,
    })
}
