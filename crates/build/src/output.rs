//! Outputs other than the store: the built image's final file system as a
//! directory (`--output type=local,dest=DIR`) or as one tar stream
//! (`--output type=tar,dest=FILE`), as BuildKit's local and tar exporters
//! write them.
//!
//! Both apply the image's layers in order (whiteouts honoured) into a
//! directory; the tar is then written from that directory with the same
//! deterministic writer as layers (sorted names, owners and modes kept).

use std::io::Write;
use std::path::Path;

use berth_content::ContentStore;
use berth_image::ImageStore;
use berth_layer::write::{Source as TreeSource, WriteOptions};
use berth_oci::Descriptor;
use berth_oci::media_type::Compression;

use crate::{Error, Result};

/// Applies the layers of the image `manifest` (in `store`) into `dest`,
/// which is created if missing.
pub fn write_local(store: &ImageStore, manifest: &Descriptor, dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest).map_err(|e| Error::io("create directory", dest, e))?;
    let rec = store.find(&manifest.digest.to_string())?;
    let img = store.resolve(&rec, None)?;
    for l in &img.image.layers {
        let compression = Compression::of_layer(&l.media_type).unwrap_or(Compression::None);
        let r = berth_image::archive::decompress(store.content().open(&l.digest)?, compression)
            .map_err(|e| Error::io("decompress", l.digest.to_string(), e))?;
        berth_layer::apply::apply_layer(dest, r, &Default::default())?;
    }
    Ok(())
}

/// Writes the final file system of the image `manifest` as a tar to `out`.
pub fn write_tar<W: Write>(
    store: &ImageStore,
    manifest: &Descriptor,
    scratch: &Path,
    out: W,
) -> Result<W> {
    let dir = tempfile::Builder::new()
        .prefix("export-")
        .tempdir_in(scratch)
        .map_err(|e| Error::io("create directory in", scratch, e))?;
    write_local(store, manifest, dir.path())?;
    let (out, _) = berth_layer::write::write_layer(
        dir.path(),
        TreeSource::Tree,
        &WriteOptions::default(),
        out,
    )?;
    Ok(out)
}
