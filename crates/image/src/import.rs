//! `import`: a root filesystem tarball becomes a one-layer image, like `docker import`.
//!
//! The tarball (plain, gzip or zstd) is streamed once: every byte goes to the
//! diffID hasher and to a fresh gzip (or zstd) encoder writing into an
//! ingest, while a tar parser walks the same bytes to refuse corrupt archives
//! and entries that escape the root.

use std::collections::BTreeMap;
use std::io::{self, BufReader, Read, Write};

use berth_oci::media_type::{self, Compression};
use berth_oci::{
    Descriptor, Digest, History, ImageConfig, ImageManifest, Platform, Reference, RootFs, RunConfig,
};

use crate::archive::{decompress, sniff};
use crate::layer_writer::LayerWriter;
use crate::store::ImageStore;
use crate::{Error, Result};

/// Options for [`import`].
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// How to compress the new layer.
    pub compression: Compression,
    /// The platform to record in the config (default: the host's).
    pub platform: Option<Platform>,
    /// The history comment (`docker import -m`).
    pub message: Option<String>,
    /// Image config to start from (`docker import --change` results).
    pub config: RunConfig,
    /// `created` timestamp (RFC 3339); default now, or `SOURCE_DATE_EPOCH`.
    pub created: Option<String>,
}

impl Default for ImportOptions {
    fn default() -> ImportOptions {
        ImportOptions {
            compression: Compression::Gzip,
            platform: None,
            message: None,
            config: RunConfig::default(),
            created: None,
        }
    }
}

/// What [`import`] created.
#[derive(Debug, Clone)]
pub struct Imported {
    pub manifest: Descriptor,
    pub id: Digest,
    pub diff_id: Digest,
}

/// Copies everything read into the writer as well.
struct Tee<R, W> {
    reader: R,
    writer: W,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.reader.read(buf)?;
        self.writer.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Checks one tar entry name: relative to the root, no `..`.
fn check_entry_path(raw: &[u8]) -> Result<()> {
    let s = String::from_utf8_lossy(raw);
    if s.split('/').any(|p| p == "..") {
        return Err(Error::Tarball(format!(
            "entry {s:?} escapes the root filesystem (contains '..')"
        )));
    }
    Ok(())
}

/// A Unix timestamp in RFC 3339 (UTC).
pub fn format_unix(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The current time (or `SOURCE_DATE_EPOCH`) in RFC 3339.
pub fn now_rfc3339() -> String {
    let t = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or_else(time::OffsetDateTime::now_utc);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Imports a root filesystem tarball as a one-layer image, tagging it `name` if given.
pub fn import<R: Read>(
    store: &ImageStore,
    input: R,
    name: Option<&Reference>,
    opts: &ImportOptions,
) -> Result<Imported> {
    let mut input = BufReader::with_capacity(1 << 20, input);
    let compression = sniff(&mut input).map_err(|e| Error::io("read", "<tarball>", e))?;
    if input.buffer().is_empty() {
        return Err(Error::Tarball("the tarball is empty".into()));
    }
    let plain = decompress(input, compression).map_err(|e| Error::io("read", "<tarball>", e))?;
    let guard = store.write_guard()?;
    let mut tee = Tee {
        reader: plain,
        writer: LayerWriter::new(store, opts.compression)?,
    };
    {
        let bad = |e: io::Error| Error::Tarball(format!("not a valid tar archive: {e}"));
        let mut archive = tar::Archive::new(&mut tee);
        for entry in archive.entries().map_err(bad)? {
            let entry = entry.map_err(bad)?;
            check_entry_path(&entry.path_bytes())?;
            if entry.header().entry_type() == tar::EntryType::Link
                && let Some(target) = entry.link_name_bytes()
            {
                check_entry_path(&target)?;
            }
        }
    }
    // The tar parser stops at the end-of-archive marker; keep the rest so
    // the layer is byte-identical to the input.
    io::copy(&mut tee, &mut io::sink()).map_err(|e| Error::io("read", "<tarball>", e))?;
    let written = tee.writer.finish()?;
    let diff_id = written.diff_id.clone();

    let platform = opts.platform.clone().unwrap_or_else(Platform::host);
    let created = opts.created.clone().unwrap_or_else(now_rfc3339);
    let config = ImageConfig {
        created: Some(created.clone()),
        author: None,
        architecture: platform.architecture.clone(),
        os: platform.os.clone(),
        os_version: None,
        variant: platform.variant.clone(),
        config: Some(opts.config.clone()),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![diff_id.clone()],
        },
        history: vec![History {
            created: Some(created),
            created_by: Some("berth import".into()),
            comment: opts.message.clone(),
            ..History::default()
        }],
        extra: BTreeMap::new(),
    };
    let config_bytes = config.to_vec();
    let config_digest = store.put_json(&config_bytes)?;
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.into()),
        artifact_type: None,
        config: Descriptor::new(
            media_type::OCI_CONFIG,
            config_digest.clone(),
            config_bytes.len() as u64,
        ),
        layers: vec![written.descriptor],
        subject: None,
        annotations: BTreeMap::new(),
    };
    let bytes = berth_oci::manifest::to_vec(&manifest);
    let digest = store.put_json(&bytes)?;
    let desc = Descriptor::new(media_type::OCI_MANIFEST, digest, bytes.len() as u64);
    match name {
        Some(n) => store.tag(&guard, &desc, n)?,
        None => store.add_untagged(&guard, &desc)?,
    }
    Ok(Imported {
        manifest: desc,
        id: config_digest,
        diff_id,
    })
}
