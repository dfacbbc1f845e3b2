//! Writing a new layer: one pass hashes the uncompressed stream (the diffID)
//! and compresses it into an ingest.

use std::io::{self, Write};

use berth_content::{ContentStore, Expected, Ingest};
use berth_oci::media_type::Compression;
use berth_oci::{Descriptor, Digest, Digester};

use crate::store::ImageStore;
use crate::{Error, Result};

/// A layer being written: write the uncompressed tar into it, then [`LayerWriter::finish`].
pub struct LayerWriter<'a> {
    store: &'a ImageStore,
    compression: Compression,
    diff: Digester,
    encoder: Encoder,
}

impl std::fmt::Debug for LayerWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LayerWriter")
            .field("compression", &self.compression)
            .finish()
    }
}

enum Encoder {
    None(Box<dyn Ingest>),
    Gzip(flate2::write::GzEncoder<Box<dyn Ingest>>),
    Zstd(zstd::stream::write::Encoder<'static, Box<dyn Ingest>>),
}

/// A committed layer.
#[derive(Debug, Clone)]
pub struct WrittenLayer {
    pub descriptor: Descriptor,
    pub diff_id: Digest,
    pub uncompressed_size: u64,
}

impl<'a> LayerWriter<'a> {
    /// Starts a layer in `store`'s ingest area. Hold a write guard until the
    /// layer is referenced by a tag.
    pub fn new(store: &'a ImageStore, compression: Compression) -> Result<LayerWriter<'a>> {
        let ingest = store.content().ingest(berth_oci::Algorithm::Sha256)?;
        let encoder = match compression {
            Compression::None => Encoder::None(ingest),
            // Level 6 is gzip's default and what docker and BuildKit use.
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                ingest,
                flate2::Compression::default(),
            )),
            Compression::Zstd => Encoder::Zstd(
                zstd::stream::write::Encoder::new(ingest, 3)
                    .map_err(|e| Error::io("compress", "<layer>", e))?,
            ),
        };
        Ok(LayerWriter {
            store,
            compression,
            diff: berth_oci::Algorithm::Sha256.digester(),
            encoder,
        })
    }

    /// Compresses, commits and returns the layer's descriptor and diffID.
    pub fn finish(self) -> Result<WrittenLayer> {
        let uncompressed_size = self.diff.len();
        let diff_id = self.diff.finish();
        let ingest = match self.encoder {
            Encoder::None(w) => Ok(w),
            Encoder::Gzip(w) => w.finish(),
            Encoder::Zstd(w) => w.finish(),
        }
        .map_err(|e| Error::io("compress", "<layer>", e))?;
        let size = ingest.size();
        let info = ingest.commit(Expected::default())?;
        self.store
            .record_uncompressed_size(&info.digest, uncompressed_size);
        Ok(WrittenLayer {
            descriptor: Descriptor::new(self.compression.oci_layer_media_type(), info.digest, size),
            diff_id,
            uncompressed_size,
        })
    }
}

impl Write for LayerWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.diff.update(buf);
        match &mut self.encoder {
            Encoder::None(w) => w.write_all(buf),
            Encoder::Gzip(w) => w.write_all(buf),
            Encoder::Zstd(w) => w.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
