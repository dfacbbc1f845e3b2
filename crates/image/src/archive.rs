//! Image archives in and out: `docker save` tarballs (docker-archive) and OCI
//! archives (a tarred OCI image layout), each optionally gzip- or
//! zstd-compressed as a whole.
//!
//! Loading reads the archive in one pass, hashing every entry as it streams
//! into the store's ingest area, then validates everything (digests, sizes,
//! diffIDs, references between documents) before the first blob is committed.
//! A bad archive therefore changes nothing. Blobs keep their exact bytes: a
//! compressed layer is stored compressed, an uncompressed one uncompressed.
//!
//! Saving writes deterministic tarballs (sorted, zero mtimes, root-owned).
//! A docker-archive holds uncompressed layers, as `docker save` writes and as
//! the format's diffIDs demand; an OCI archive holds blobs exactly as stored.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, BufRead, BufReader, Read, Write};

use berth_content::{ContentStore, Expected, Ingest};
use berth_oci::descriptor::ANNOTATION_REF_NAME;
use berth_oci::media_type::{self, Compression};
use berth_oci::{
    Algorithm, Descriptor, Digest, ImageConfig, ImageIndex, ImageManifest, ManifestKind,
    ParsedManifest, Reference,
};
use serde::{Deserialize, Serialize};

use crate::store::{ImageStore, Resolved};
use crate::{Error, Result};

/// The annotation containerd and docker use for an image's full name.
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
const IN_MEMORY_LIMIT: u64 = 1 << 20;

/// Wraps `reader` in a decoder for `compression`.
pub fn decompress<'a, R: Read + 'a>(
    reader: R,
    compression: Compression,
) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(reader)?),
    })
}

/// Sniffs the compression of a buffered stream without consuming it.
pub fn sniff<R: BufRead>(reader: &mut R) -> io::Result<Compression> {
    let head = reader.fill_buf()?;
    Ok(Compression::sniff(head))
}

/// One image that [`load`] stored.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    pub descriptor: Descriptor,
    pub id: Digest,
    pub names: Vec<Reference>,
}

/// A staged archive entry: hashed, not yet visible in the store.
enum Data {
    Memory(Vec<u8>),
    Ingest(Box<dyn Ingest>),
}

struct Staged {
    data: Data,
    digest: Digest,
    size: u64,
}

impl Staged {
    fn bytes(&self) -> Option<&[u8]> {
        match &self.data {
            Data::Memory(b) => Some(b),
            Data::Ingest(_) => None,
        }
    }

    fn reader(&mut self) -> Result<Box<dyn Read + '_>> {
        Ok(match &mut self.data {
            Data::Memory(b) => Box::new(&b[..]),
            Data::Ingest(i) => i.read_back()?,
        })
    }
}

enum Entry {
    File(Staged),
    Symlink(String),
    Hardlink(String),
}

/// Normalises an archive entry name; refuses absolute names and `..`.
fn clean_name(raw: &str) -> Result<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(Error::Archive(format!(
                    "entry {raw:?} escapes the archive (contains '..')"
                )));
            }
            p => parts.push(p),
        }
    }
    if raw.starts_with('/') {
        return Err(Error::Archive(format!(
            "entry {raw:?} has an absolute path"
        )));
    }
    Ok(parts.join("/"))
}

struct Staging {
    entries: HashMap<String, Entry>,
}

impl Staging {
    fn read<R: Read>(store: &ImageStore, input: R) -> Result<Staging> {
        let mut input = BufReader::with_capacity(1 << 20, input);
        let compression = sniff(&mut input).map_err(|e| Error::io("read", "<archive>", e))?;
        let reader =
            decompress(input, compression).map_err(|e| Error::io("read", "<archive>", e))?;
        let mut archive = tar::Archive::new(reader);
        let mut entries = HashMap::new();
        let bad = |e: io::Error| Error::Archive(format!("cannot read the tar stream: {e}"));
        let mut count = 0usize;
        for entry in archive.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            count += 1;
            let raw = String::from_utf8(entry.path_bytes().into_owned())
                .map_err(|_| Error::Archive("entry name is not UTF-8".into()))?;
            let name = clean_name(&raw)?;
            let kind = entry.header().entry_type();
            let staged = match kind {
                tar::EntryType::Directory => continue,
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let size = entry.header().size().map_err(bad)?;
                    let algorithm = if name.starts_with("blobs/sha512/") {
                        Algorithm::Sha512
                    } else {
                        Algorithm::Sha256
                    };
                    let truncated = |e: io::Error| {
                        Error::Archive(format!("entry {name:?} is truncated or unreadable: {e}"))
                    };
                    if size <= IN_MEMORY_LIMIT {
                        let mut buf = Vec::with_capacity(size as usize);
                        entry.read_to_end(&mut buf).map_err(truncated)?;
                        if buf.len() as u64 != size {
                            return Err(Error::Archive(format!("entry {name:?} is truncated")));
                        }
                        let digest = algorithm.digest(&buf);
                        Entry::File(Staged {
                            data: Data::Memory(buf),
                            digest,
                            size,
                        })
                    } else {
                        let mut ingest = store.content().ingest(algorithm)?;
                        let n = io::copy(&mut entry, &mut ingest).map_err(truncated)?;
                        if n != size {
                            return Err(Error::Archive(format!("entry {name:?} is truncated")));
                        }
                        Entry::File(Staged {
                            digest: ingest.digest(),
                            size,
                            data: Data::Ingest(ingest),
                        })
                    }
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let target = entry
                        .link_name_bytes()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .ok_or_else(|| Error::Archive(format!("link {name:?} has no target")))?;
                    if kind == tar::EntryType::Symlink {
                        Entry::Symlink(target)
                    } else {
                        Entry::Hardlink(clean_name(&target)?)
                    }
                }
                tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => continue,
                other => {
                    return Err(Error::Archive(format!(
                        "entry {name:?} has unexpected type {other:?}"
                    )));
                }
            };
            if entries.insert(name.clone(), staged).is_some() {
                return Err(Error::Archive(format!("duplicate entry {name:?}")));
            }
        }
        if count == 0 {
            return Err(Error::Archive("the archive is empty".into()));
        }
        Ok(Staging { entries })
    }

    /// Follows links to the name of a regular file.
    fn resolve(&self, name: &str) -> Result<String> {
        let mut current = clean_name(name)?;
        for _ in 0..16 {
            match self.entries.get(&current) {
                Some(Entry::File(_)) => return Ok(current),
                Some(Entry::Hardlink(t)) => current = t.clone(),
                Some(Entry::Symlink(t)) => {
                    let base = current.rsplit_once('/').map_or("", |(d, _)| d);
                    let joined = if t.starts_with('/') {
                        return Err(Error::Archive(format!(
                            "symlink {current:?} points outside the archive ({t:?})"
                        )));
                    } else if base.is_empty() {
                        t.clone()
                    } else {
                        format!("{base}/{t}")
                    };
                    current = clean_name(&joined).map_err(|_| {
                        Error::Archive(format!(
                            "symlink {current:?} points outside the archive ({t:?})"
                        ))
                    })?;
                }
                None => {
                    return Err(Error::Archive(format!(
                        "{name:?} is missing from the archive"
                    )));
                }
            }
        }
        Err(Error::Archive(format!(
            "too many levels of links at {name:?}"
        )))
    }

    fn get(&mut self, name: &str) -> Result<&mut Staged> {
        let resolved = self.resolve(name)?;
        match self.entries.get_mut(&resolved) {
            Some(Entry::File(s)) => Ok(s),
            _ => unreachable!("resolve returns regular files"),
        }
    }

    fn small(&mut self, name: &str) -> Result<Vec<u8>> {
        let s = self.get(name)?;
        match s.bytes() {
            Some(b) => Ok(b.to_vec()),
            None => Err(Error::Archive(format!(
                "{name:?} is too large for a metadata file"
            ))),
        }
    }

    fn has(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }
}

/// What to commit once the whole archive is validated: entry name → expected digest.
#[derive(Default)]
struct Plan {
    commits: BTreeMap<String, Digest>,
    documents: Vec<Vec<u8>>,
    images: Vec<(Descriptor, Vec<Reference>)>,
    sizes: Vec<(Digest, u64)>,
}

/// Loads a docker-archive or OCI archive (plain, gzip or zstd) into the store.
pub fn load<R: Read>(store: &ImageStore, input: R) -> Result<Vec<LoadedImage>> {
    // Staged entries live in the store's ingest area: hold the writer lock
    // from the first byte so GC neither removes them nor the blobs we reuse.
    let guard = store.write_guard()?;
    let mut staging = Staging::read(store, input)?;
    let plan = if staging.has("index.json") && staging.has("oci-layout") {
        plan_oci(&mut staging)?
    } else if staging.has("manifest.json") {
        plan_docker(&mut staging)?
    } else {
        return Err(Error::Archive(
            "neither manifest.json (docker-archive) nor oci-layout and index.json (OCI archive) found"
                .into(),
        ));
    };

    // Everything is valid: publish. The guard keeps GC away until tags exist.
    let mut committed = BTreeSet::new();
    for (name, digest) in &plan.commits {
        if !committed.insert(digest.clone()) {
            continue;
        }
        let resolved = staging.resolve(name)?;
        let Some(Entry::File(staged)) = staging.entries.remove(&resolved) else {
            // Committed already under another name that links to the same file.
            continue;
        };
        let expected = Expected::exact(digest.clone(), staged.size);
        match staged.data {
            Data::Memory(bytes) => store.content().put(&bytes, expected)?,
            Data::Ingest(ingest) => ingest.commit(expected)?,
        };
    }
    for doc in &plan.documents {
        store.put_json(doc)?;
    }
    for (digest, size) in &plan.sizes {
        store.record_uncompressed_size(digest, *size);
    }
    let mut loaded = Vec::new();
    for (desc, names) in plan.images {
        if names.is_empty() {
            store.add_untagged(&guard, &desc)?;
        }
        for n in &names {
            store.tag(&guard, &desc, n)?;
        }
        let id = store.image_id(&desc)?;
        loaded.push(LoadedImage {
            descriptor: desc,
            id,
            names,
        });
    }
    Ok(loaded)
}

fn blob_name(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm(), d.hex())
}

/// Checks that a staged blob matches a descriptor and schedules its commit.
fn expect_blob(staging: &mut Staging, plan: &mut Plan, desc: &Descriptor) -> Result<bool> {
    let name = blob_name(&desc.digest);
    if !staging.has(&name) {
        return Ok(false);
    }
    let staged = staging.get(&name)?;
    if staged.digest != desc.digest {
        return Err(Error::Archive(format!(
            "digest mismatch for {name}: content hashes to {}",
            staged.digest
        )));
    }
    if staged.size != desc.size {
        return Err(Error::Archive(format!(
            "size mismatch for {name}: descriptor says {} bytes, archive has {}",
            desc.size, staged.size
        )));
    }
    plan.commits.insert(name, desc.digest.clone());
    Ok(true)
}

fn walk_oci(staging: &mut Staging, plan: &mut Plan, desc: &Descriptor, depth: u32) -> Result<()> {
    if depth > 8 {
        return Err(Error::Archive("indexes nested too deeply".into()));
    }
    let present = expect_blob(staging, plan, desc)?;
    let is_doc =
        media_type::is_manifest(&desc.media_type) || media_type::is_index(&desc.media_type);
    if !present {
        if media_type::is_non_distributable(&desc.media_type) {
            return Ok(());
        }
        return Err(Error::Archive(format!(
            "{} {} is missing from the archive",
            desc.media_type, desc.digest
        )));
    }
    if !is_doc {
        return Ok(());
    }
    let bytes = staging.small(&blob_name(&desc.digest))?;
    let parsed = ParsedManifest::parse_with(bytes, Some(&desc.media_type), desc.digest.algorithm())
        .map_err(|e| Error::Archive(format!("manifest {}: {e}", desc.digest)))?;
    match &parsed.kind {
        ManifestKind::Image(m) => {
            walk_oci(staging, plan, &m.config, depth + 1)?;
            for l in &m.layers {
                walk_oci(staging, plan, l, depth + 1)?;
            }
        }
        ManifestKind::Index(i) => {
            // Archives often carry only some platforms of an index: missing
            // children are allowed, present ones must be complete.
            for child in &i.manifests {
                if staging.has(&blob_name(&child.digest)) {
                    walk_oci(staging, plan, child, depth + 1)?;
                }
            }
        }
    }
    Ok(())
}

fn name_from_annotations(desc: &Descriptor) -> Option<Reference> {
    if let Some(n) = desc.annotations.get(ANNOTATION_CONTAINERD_NAME)
        && let Ok(r) = Reference::parse(n)
    {
        return Some(r);
    }
    // `org.opencontainers.image.ref.name` is often a bare tag; only a value
    // that names a repository can name an image here.
    let n = desc.ref_name()?;
    if n.contains(':') || n.contains('/') {
        Reference::parse(n).ok()
    } else {
        None
    }
}

fn plan_oci(staging: &mut Staging) -> Result<Plan> {
    let layout = staging.small("oci-layout")?;
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Layout {
        image_layout_version: String,
    }
    let layout: Layout =
        serde_json::from_slice(&layout).map_err(|e| Error::Archive(format!("oci-layout: {e}")))?;
    if !layout.image_layout_version.starts_with("1.") {
        return Err(Error::Archive(format!(
            "unsupported OCI layout version {:?}",
            layout.image_layout_version
        )));
    }
    let index: ImageIndex = serde_json::from_slice(&staging.small("index.json")?)
        .map_err(|e| Error::Archive(format!("index.json: {e}")))?;
    let mut plan = Plan::default();
    let mut by_digest: Vec<(Descriptor, Vec<Reference>)> = Vec::new();
    for desc in &index.manifests {
        walk_oci(staging, &mut plan, desc, 0)?;
        if !(media_type::is_manifest(&desc.media_type) || media_type::is_index(&desc.media_type)) {
            continue;
        }
        let name = name_from_annotations(desc);
        let mut top = desc.clone();
        top.annotations.clear();
        match by_digest.iter_mut().find(|(d, _)| d.digest == top.digest) {
            Some((_, names)) => names.extend(name),
            None => by_digest.push((top, name.into_iter().collect())),
        }
    }
    plan.images = by_digest;
    Ok(plan)
}

#[derive(Debug, Serialize, Deserialize)]
struct DockerManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

/// The hex part of `<hex>.json` or `blobs/sha256/<hex>`, if the name has one.
fn hex_in_name(name: &str) -> Option<&str> {
    let base = name.rsplit('/').next()?;
    let hex = base.strip_suffix(".json").unwrap_or(base);
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

fn plan_docker(staging: &mut Staging) -> Result<Plan> {
    let entries: Vec<DockerManifestEntry> =
        serde_json::from_slice(&staging.small("manifest.json")?)
            .map_err(|e| Error::Archive(format!("manifest.json: {e}")))?;
    if entries.is_empty() {
        return Err(Error::Archive("manifest.json lists no images".into()));
    }
    let mut plan = Plan::default();
    for entry in entries {
        let config_name = staging.resolve(&entry.config)?;
        let config_bytes = staging.small(&config_name)?;
        let config_digest = Digest::sha256_of(&config_bytes);
        if let Some(hex) = hex_in_name(&entry.config)
            && hex != config_digest.hex()
        {
            return Err(Error::Archive(format!(
                "digest mismatch for {}: content hashes to {config_digest}",
                entry.config
            )));
        }
        let config = ImageConfig::from_slice(&config_bytes)
            .map_err(|e| Error::Archive(format!("{}: invalid image config: {e}", entry.config)))?;
        if config.rootfs.diff_ids.len() != entry.layers.len() {
            return Err(Error::Archive(format!(
                "{} lists {} layers but its config has {} diffIDs",
                entry.config,
                entry.layers.len(),
                config.rootfs.diff_ids.len()
            )));
        }
        let mut layers = Vec::new();
        for (i, (layer_name, diff_id)) in
            entry.layers.iter().zip(&config.rootfs.diff_ids).enumerate()
        {
            let resolved = staging.resolve(layer_name)?;
            let staged = staging.get(&resolved)?;
            let (digest, size) = (staged.digest.clone(), staged.size);
            let compression = {
                let mut head = [0u8; 4];
                let mut r = staged.reader()?;
                let n = read_up_to(&mut r, &mut head)
                    .map_err(|e| Error::io("read", layer_name.clone(), e))?;
                Compression::sniff(&head[..n])
            };
            let actual_diff = if compression == Compression::None {
                digest.clone()
            } else {
                let r = decompress(staged.reader()?, compression)
                    .map_err(|e| Error::Archive(format!("layer {layer_name}: {e}")))?;
                let mut h = diff_id.algorithm().digester();
                let n = io::copy(&mut { r }, &mut h)
                    .map_err(|e| Error::Archive(format!("layer {layer_name} is corrupt: {e}")))?;
                plan.sizes.push((digest.clone(), n));
                h.finish()
            };
            if &actual_diff != diff_id {
                return Err(Error::Archive(format!(
                    "layer {} ({layer_name}) has diffID {actual_diff}, but the config says {diff_id}",
                    i + 1
                )));
            }
            plan.commits.insert(resolved, digest.clone());
            layers.push(Descriptor::new(
                compression.oci_layer_media_type(),
                digest,
                size,
            ));
        }
        plan.commits.insert(config_name, config_digest.clone());
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(media_type::OCI_MANIFEST.to_owned()),
            artifact_type: None,
            config: Descriptor::new(
                media_type::OCI_CONFIG,
                config_digest,
                config_bytes.len() as u64,
            ),
            layers,
            subject: None,
            annotations: BTreeMap::new(),
        };
        let bytes = berth_oci::manifest::to_vec(&manifest);
        let desc = Descriptor::new(
            media_type::OCI_MANIFEST,
            Digest::sha256_of(&bytes),
            bytes.len() as u64,
        );
        plan.documents.push(bytes);
        let mut names = Vec::new();
        for t in entry.repo_tags.unwrap_or_default() {
            names.push(Reference::parse(&t)?);
        }
        plan.images.push((desc, names));
    }
    Ok(plan)
}

fn read_up_to(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Archive formats `save` can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveFormat {
    /// `docker save`'s format: `manifest.json`, configs, uncompressed layer tars.
    Docker,
    /// A tarred OCI image layout (plus a `manifest.json` so `docker load` reads it too).
    Oci,
}

struct TarOut<W: Write> {
    builder: tar::Builder<W>,
    written: BTreeSet<String>,
}

impl<W: Write> TarOut<W> {
    fn header(size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(size);
        h
    }

    fn bytes(&mut self, name: &str, data: &[u8]) -> Result<()> {
        if !self.written.insert(name.to_owned()) {
            return Ok(());
        }
        let mut h = Self::header(data.len() as u64);
        self.builder
            .append_data(&mut h, name, data)
            .map_err(|e| Error::io("write", name, e))
    }

    /// Appends exactly `size` bytes from `reader`, failing if it has fewer.
    fn stream(&mut self, name: &str, size: u64, reader: &mut dyn Read) -> Result<()> {
        if !self.written.insert(name.to_owned()) {
            return Ok(());
        }
        let mut h = Self::header(size);
        let mut counted = CountingReader {
            inner: reader.take(size),
            count: 0,
        };
        self.builder
            .append_data(&mut h, name, &mut counted)
            .map_err(|e| Error::io("write", name, e))?;
        if counted.count != size {
            return Err(Error::Corrupt(format!(
                "{name}: expected {size} bytes, the store has {}",
                counted.count
            )));
        }
        Ok(())
    }
}

struct CountingReader<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// A reader that hashes what it reads (to check a diffID while streaming).
struct HashingReader<R> {
    inner: R,
    digester: berth_oci::Digester,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digester.update(&buf[..n]);
        Ok(n)
    }
}

/// Writes the given images, each with the names to record for it, as one archive.
pub fn save<W: Write>(
    store: &ImageStore,
    images: &[(Resolved, Vec<Reference>)],
    format: SaveFormat,
    out: W,
) -> Result<W> {
    let mut tar = TarOut {
        builder: tar::Builder::new(out),
        written: BTreeSet::new(),
    };
    tar.builder.mode(tar::HeaderMode::Deterministic);
    match format {
        SaveFormat::Docker => save_docker(store, images, &mut tar)?,
        SaveFormat::Oci => save_oci(store, images, &mut tar)?,
    }
    tar.builder
        .into_inner()
        .map_err(|e| Error::io("write", "<archive>", e))
}

fn docker_manifest_json(
    images: &[(Resolved, Vec<Reference>)],
    layer_name: impl Fn(&Resolved, usize) -> String,
    config_name: impl Fn(&Resolved) -> String,
) -> Vec<u8> {
    let mut entries: Vec<DockerManifestEntry> = Vec::new();
    let mut seen: Vec<Digest> = Vec::new();
    for (img, names) in images {
        let tags: Vec<String> = names.iter().map(Reference::familiar).collect();
        if let Some(pos) = seen.iter().position(|d| d == img.id()) {
            entries[pos]
                .repo_tags
                .get_or_insert_with(Vec::new)
                .extend(tags);
            continue;
        }
        seen.push(img.id().clone());
        entries.push(DockerManifestEntry {
            config: config_name(img),
            repo_tags: Some(tags),
            layers: (0..img.image.layers.len())
                .map(|i| layer_name(img, i))
                .collect(),
        });
    }
    serde_json::to_vec(&entries).expect("manifest.json serialises")
}

fn save_docker<W: Write>(
    store: &ImageStore,
    images: &[(Resolved, Vec<Reference>)],
    tar: &mut TarOut<W>,
) -> Result<()> {
    for (img, _) in images {
        if img.config.rootfs.diff_ids.len() != img.image.layers.len() {
            return Err(Error::Corrupt(format!(
                "image {} has {} layers but {} diffIDs",
                img.id(),
                img.image.layers.len(),
                img.config.rootfs.diff_ids.len()
            )));
        }
        for (layer, diff_id) in img.image.layers.iter().zip(&img.config.rootfs.diff_ids) {
            let name = format!("{}/layer.tar", diff_id.hex());
            if tar.written.contains(&name) {
                continue;
            }
            let compression = Compression::of_layer(&layer.media_type).unwrap_or(Compression::None);
            let size = store.uncompressed_size(layer)?;
            let raw = store.content().open(&layer.digest)?;
            let mut reader = HashingReader {
                inner: decompress(raw, compression)
                    .map_err(|e| Error::io("decompress", layer.digest.to_string(), e))?,
                digester: diff_id.algorithm().digester(),
            };
            tar.stream(&name, size, &mut reader)?;
            let actual = reader.digester.finish();
            if &actual != diff_id {
                return Err(Error::Corrupt(format!(
                    "layer {} decompresses to {actual}, but the config says {diff_id}",
                    layer.digest
                )));
            }
        }
        tar.bytes(&format!("{}.json", img.id().hex()), &img.config_bytes)?;
    }
    let manifest = docker_manifest_json(
        images,
        |img, i| format!("{}/layer.tar", img.config.rootfs.diff_ids[i].hex()),
        |img| format!("{}.json", img.id().hex()),
    );
    tar.bytes("manifest.json", &manifest)?;
    // The legacy `repositories` file maps names to the top layer's id.
    let mut repos: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (img, names) in images {
        let Some(top) = img.config.rootfs.diff_ids.last() else {
            continue;
        };
        for n in names {
            if let Some(tag) = n.tag() {
                repos
                    .entry(n.familiar_name())
                    .or_default()
                    .insert(tag.to_owned(), top.hex().to_owned());
            }
        }
    }
    tar.bytes(
        "repositories",
        &serde_json::to_vec(&repos).expect("serialises"),
    )
}

fn copy_blob<W: Write>(store: &ImageStore, tar: &mut TarOut<W>, desc: &Descriptor) -> Result<()> {
    let name = blob_name(&desc.digest);
    if tar.written.contains(&name) {
        return Ok(());
    }
    let info = store
        .content()
        .info(&desc.digest)?
        .ok_or_else(|| berth_content::Error::NotFound(desc.digest.clone()))?;
    let mut reader = berth_oci::VerifyingReader::new(
        store.content().open(&desc.digest)?,
        desc.digest.clone(),
        Some(info.size),
    );
    tar.stream(&name, info.size, &mut reader)
}

fn save_tree<W: Write>(store: &ImageStore, tar: &mut TarOut<W>, desc: &Descriptor) -> Result<()> {
    let is_doc =
        media_type::is_manifest(&desc.media_type) || media_type::is_index(&desc.media_type);
    if !is_doc {
        if media_type::is_non_distributable(&desc.media_type)
            && store.content().info(&desc.digest)?.is_none()
        {
            return Ok(());
        }
        return copy_blob(store, tar, desc);
    }
    let parsed = store.manifest(desc)?;
    tar.bytes(&blob_name(&desc.digest), &parsed.bytes)?;
    match &parsed.kind {
        ManifestKind::Image(m) => {
            copy_blob(store, tar, &m.config)?;
            for l in &m.layers {
                save_tree(store, tar, l)?;
            }
        }
        ManifestKind::Index(i) => {
            for child in &i.manifests {
                // Only platforms that are in the store go into the archive.
                if store.content().info(&child.digest)?.is_some() {
                    save_tree(store, tar, child)?;
                }
            }
        }
    }
    Ok(())
}

fn save_oci<W: Write>(
    store: &ImageStore,
    images: &[(Resolved, Vec<Reference>)],
    tar: &mut TarOut<W>,
) -> Result<()> {
    tar.bytes("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let mut index = ImageIndex::empty();
    for (img, names) in images {
        save_tree(store, tar, &img.top)?;
        let mut base = img.top.clone();
        base.annotations.clear();
        if names.is_empty() {
            index.manifests.push(base.clone());
        }
        for n in names {
            let mut d = base.clone();
            d.annotations
                .insert(ANNOTATION_CONTAINERD_NAME.to_owned(), n.to_string());
            d.annotations.insert(
                ANNOTATION_REF_NAME.to_owned(),
                n.tag().unwrap_or("latest").to_owned(),
            );
            index.manifests.push(d);
        }
    }
    tar.bytes("index.json", &berth_oci::manifest::to_vec(&index))?;
    let manifest = docker_manifest_json(
        images,
        |img, i| blob_name(&img.image.layers[i].digest),
        |img| blob_name(img.id()),
    );
    tar.bytes("manifest.json", &manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_name_rules() {
        assert_eq!(clean_name("./a//b/./c").unwrap(), "a/b/c");
        assert!(clean_name("../x").is_err());
        assert!(clean_name("a/../../x").is_err());
        assert!(clean_name("/etc/passwd").is_err());
        assert_eq!(
            hex_in_name(&format!("{}.json", "a".repeat(64))),
            Some(&*"a".repeat(64))
        );
        assert_eq!(hex_in_name("config.json"), None);
    }
}
