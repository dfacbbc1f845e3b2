//! Parallel gzip for layers, the way pigz does it: the stream is cut into
//! fixed 1 MiB chunks, each deflated on its own thread with the previous
//! 32 KiB as its dictionary and ended with a sync flush, so the pieces
//! concatenate into one ordinary gzip member any reader accepts.
//!
//! The output depends only on the input, the level and the chunk size,
//! never on the number of threads or their timing: layers stay
//! reproducible. A stream shorter than one chunk is compressed on the
//! calling thread.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, FlushCompress, Status};

const CHUNK: usize = 1 << 20;
const WINDOW: usize = 32 * 1024;

/// A gzip encoder compressing chunks on up to `threads` threads.
pub(crate) struct ParGzEncoder<W: Write> {
    out: W,
    level: u32,
    threads: usize,
    buf: Vec<u8>,
    dict: Option<Vec<u8>>,
    crc: crc32fast::Hasher,
    total: u64,
    header_written: bool,
    inflight: VecDeque<JoinHandle<io::Result<Vec<u8>>>>,
}

fn deflate(data: &[u8], dict: Option<&[u8]>, level: u32, last: bool) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(Compression::new(level), false);
    if let Some(d) = dict {
        c.set_dictionary(d).map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let consumed = c.total_in() as usize;
        let status = c
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = c.total_in() as usize == data.len();
        // Done when everything is in and the flush fitted (room left over).
        let done = match status {
            Status::StreamEnd => true,
            _ => !last && all_in && out.len() < out.capacity(),
        };
        if done {
            return Ok(out);
        }
    }
}

impl<W: Write> ParGzEncoder<W> {
    pub(crate) fn new(out: W, level: u32, threads: usize) -> ParGzEncoder<W> {
        ParGzEncoder {
            out,
            level,
            threads: threads.max(1),
            buf: Vec::with_capacity(CHUNK),
            dict: None,
            crc: crc32fast::Hasher::new(),
            total: 0,
            header_written: false,
            inflight: VecDeque::new(),
        }
    }

    fn header(&mut self) -> io::Result<()> {
        if !self.header_written {
            // No name, no mtime, unknown OS: the bytes depend on the data only.
            self.out
                .write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff])?;
            self.header_written = true;
        }
        Ok(())
    }

    fn drain(&mut self, keep: usize) -> io::Result<()> {
        while self.inflight.len() > keep {
            let h = self.inflight.pop_front().expect("non-empty");
            let bytes = h
                .join()
                .map_err(|_| io::Error::other("a compression thread panicked"))??;
            self.out.write_all(&bytes)?;
        }
        Ok(())
    }

    /// Sends the full buffer off to be compressed.
    fn spill(&mut self) -> io::Result<()> {
        self.header()?;
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        let next_dict = chunk[chunk.len().saturating_sub(WINDOW)..].to_vec();
        let dict = self.dict.replace(next_dict);
        let level = self.level;
        self.drain(self.threads - 1)?;
        self.inflight.push_back(std::thread::spawn(move || {
            deflate(&chunk, dict.as_deref(), level, false)
        }));
        Ok(())
    }

    /// Writes the last chunk and the trailer; returns the inner writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.header()?;
        let last = deflate(&self.buf, self.dict.as_deref(), self.level, true)?;
        self.drain(0)?;
        self.out.write_all(&last)?;
        let crc = self.crc.clone().finalize();
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.write_all(&(self.total as u32).to_le_bytes())?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ParGzEncoder<W> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let n = data.len();
        self.crc.update(data);
        self.total += n as u64;
        while !data.is_empty() {
            let room = CHUNK - self.buf.len();
            let take = room.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == CHUNK {
                self.spill()?;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Where a new layer's tar goes: gzip layers through [`ParGzEncoder`],
/// the others through the image store's [`LayerWriter`]. Either way the
/// uncompressed stream is hashed into the diffID on the way.
pub(crate) enum LayerSink<'a> {
    Store(berth_image::layer_writer::LayerWriter<'a>),
    Gzip {
        store: &'a berth_image::ImageStore,
        diff: berth_oci::Digester,
        enc: ParGzEncoder<Box<dyn berth_content::Ingest>>,
    },
}

impl<'a> LayerSink<'a> {
    pub(crate) fn new(
        store: &'a berth_image::ImageStore,
        compression: berth_oci::media_type::Compression,
    ) -> crate::Result<LayerSink<'a>> {
        use berth_content::ContentStore;
        Ok(match compression {
            berth_oci::media_type::Compression::Gzip => {
                let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
                LayerSink::Gzip {
                    store,
                    diff: berth_oci::Algorithm::Sha256.digester(),
                    // Level 6: gzip's default, what docker and BuildKit use.
                    enc: ParGzEncoder::new(
                        store.content().ingest(berth_oci::Algorithm::Sha256)?,
                        6,
                        threads,
                    ),
                }
            }
            other => LayerSink::Store(berth_image::layer_writer::LayerWriter::new(store, other)?),
        })
    }

    /// Commits the layer: its descriptor and diffID.
    pub(crate) fn finish(self) -> crate::Result<(berth_oci::Descriptor, berth_oci::Digest)> {
        match self {
            LayerSink::Store(w) => {
                let written = w.finish()?;
                Ok((written.descriptor, written.diff_id))
            }
            LayerSink::Gzip { store, diff, enc } => {
                let uncompressed = diff.len();
                let diff_id = diff.finish();
                let ingest = enc
                    .finish()
                    .map_err(|e| crate::Error::io("compress", "<layer>", e))?;
                let size = ingest.size();
                let info = ingest.commit(berth_content::Expected::default())?;
                store.record_uncompressed_size(&info.digest, uncompressed);
                Ok((
                    berth_oci::Descriptor::new(
                        berth_oci::media_type::Compression::Gzip.oci_layer_media_type(),
                        info.digest,
                        size,
                    ),
                    diff_id,
                ))
            }
        }
    }
}

impl Write for LayerSink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            LayerSink::Store(w) => w.write(buf),
            LayerSink::Gzip { diff, enc, .. } => {
                diff.update(buf);
                enc.write_all(buf)?;
                Ok(buf.len())
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn data(n: usize) -> Vec<u8> {
        // Compressible but not trivial: repeated text with a counter.
        let mut v = Vec::with_capacity(n);
        let mut i = 0u64;
        while v.len() < n {
            v.extend_from_slice(format!("line {} of some layer content\n", i % 5000).as_bytes());
            i = i
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407)
                >> 7;
        }
        v.truncate(n);
        v
    }

    #[test]
    fn round_trips_and_is_independent_of_threads() {
        for n in [0, 1, 1000, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 12345] {
            let input = data(n);
            let mut outputs = Vec::new();
            for threads in [1, 2, 4] {
                let mut e = ParGzEncoder::new(Vec::new(), 6, threads);
                // Odd write sizes, to cross chunk boundaries mid-write.
                for part in input.chunks(77_777) {
                    e.write_all(part).unwrap();
                }
                let gz = e.finish().unwrap();
                // An independent reader (single member, no multi-member tricks).
                let mut back = Vec::new();
                flate2::read::GzDecoder::new(&gz[..])
                    .read_to_end(&mut back)
                    .unwrap();
                assert_eq!(back, input, "size {n}, {threads} threads");
                outputs.push(gz);
            }
            assert!(outputs.windows(2).all(|w| w[0] == w[1]), "size {n}");
        }
        // It compresses.
        let input = data(4 * CHUNK);
        let mut e = ParGzEncoder::new(Vec::new(), 6, 2);
        e.write_all(&input).unwrap();
        assert!(e.finish().unwrap().len() < input.len() / 3);
    }
}
