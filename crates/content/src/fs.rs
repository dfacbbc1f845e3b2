//! The filesystem content store: blobs at `blobs/<alg>/<hex>`, the layout of
//! an OCI image layout, and in-progress writes under `ingest/`.
//!
//! Crash safety: an ingest is a temporary file in `ingest/`. Commit flushes and
//! `fsync`s it, renames it into `blobs/` (atomic on one filesystem) and
//! `fsync`s the directory. A process killed at any point leaves either no
//! blob or a complete one, plus perhaps a stray file in `ingest/` that
//! [`FsStore::clean_ingests`] removes.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use berth_oci::{Algorithm, Digest, Digester};

use crate::{BlobReader, ContentStore, Error, Expected, Info, Ingest, Result, verify};

const ALGORITHMS: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Sha512];
const WRITE_BUFFER: usize = 1 << 20;
/// Writes at least this big bypass a followed ingest's buffer.
const FOLLOWED_WRITE_BUFFER: usize = 8 << 10;

/// A content store in a directory.
#[derive(Debug, Clone)]
pub struct FsStore {
    root: PathBuf,
}

impl FsStore {
    /// Opens (creating if needed) a store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<FsStore> {
        let root = root.into();
        for dir in [
            root.join("blobs/sha256"),
            root.join("blobs/sha512"),
            root.join("ingest"),
        ] {
            fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
        }
        Ok(FsStore { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a blob lives (whether or not it exists). Useful for zero-copy
    /// serving; never write there directly.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    /// Starts an ingest whose bytes can be read while it is written: next
    /// to the ingest comes a second handle on its file, for positioned reads
    /// (`FileExt::read_at`) of what the writer has flushed
    /// ([`Write::flush`](std::io::Write::flush) on the ingest). The handle
    /// stays valid whatever becomes of the ingest: after a commit it reads
    /// the committed blob (the same file, renamed), after a discard an
    /// unlinked file.
    ///
    /// This is for a writer that streams to readers while it stores (the
    /// registry's pull-through mirror): the bytes are written once. What
    /// the readers see is not verified: telling them when it is (after
    /// [`Ingest::digest`] matched) is the caller's job.
    ///
    /// Its writes are barely buffered (such a writer flushes after each
    /// piece it receives anyway): a piece of a few KiB or more goes straight
    /// to the file, without a copy into a buffer first.
    pub fn ingest_followed(&self, algorithm: Algorithm) -> Result<(Box<dyn Ingest>, File)> {
        let ingest = self.new_ingest(algorithm, FOLLOWED_WRITE_BUFFER)?;
        let reader = ingest
            .file
            .get_ref()
            .as_file()
            .try_clone()
            .map_err(|e| Error::io("duplicate", ingest.file.get_ref().path(), e))?;
        Ok((Box::new(ingest), reader))
    }

    fn new_ingest(&self, algorithm: Algorithm, buffer: usize) -> Result<FsIngest> {
        let dir = self.ingest_dir();
        let file = tempfile::Builder::new()
            .prefix("ingest-")
            .tempfile_in(&dir)
            .map_err(|e| Error::io("create ingest file in", &dir, e))?;
        Ok(FsIngest {
            store: self.clone(),
            file: BufWriter::with_capacity(buffer, file),
            digester: algorithm.digester(),
        })
    }

    fn ingest_dir(&self) -> PathBuf {
        self.root.join("ingest")
    }

    /// Removes every leftover ingest file. Only safe when no writer is
    /// active (callers hold the store's exclusive lock); returns how many
    /// files and bytes were removed.
    pub fn clean_ingests(&self) -> Result<(u64, u64)> {
        let dir = self.ingest_dir();
        let mut count = 0;
        let mut bytes = 0;
        for entry in fs::read_dir(&dir).map_err(|e| Error::io("read directory", &dir, e))? {
            let entry = entry.map_err(|e| Error::io("read directory", &dir, e))?;
            let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
            match fs::remove_file(entry.path()) {
                Ok(()) => {
                    count += 1;
                    bytes += len;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("remove", entry.path(), e)),
            }
        }
        Ok((count, bytes))
    }

    /// Leftover ingest files (for `system check`).
    pub fn list_ingests(&self) -> Result<Vec<(PathBuf, u64)>> {
        let dir = self.ingest_dir();
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| Error::io("read directory", &dir, e))? {
            let entry = entry.map_err(|e| Error::io("read directory", &dir, e))?;
            out.push((entry.path(), entry.metadata().map(|m| m.len()).unwrap_or(0)));
        }
        Ok(out)
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync directory", dir, e))
}

impl ContentStore for FsStore {
    fn info(&self, digest: &Digest) -> Result<Option<Info>> {
        let path = self.blob_path(digest);
        match fs::metadata(&path) {
            Ok(m) => Ok(Some(Info {
                digest: digest.clone(),
                size: m.len(),
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("stat", path, e)),
        }
    }

    fn open(&self, digest: &Digest) -> Result<Box<dyn BlobReader>> {
        let path = self.blob_path(digest);
        match File::open(&path) {
            Ok(f) => Ok(Box::new(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::NotFound(digest.clone())),
            Err(e) => Err(Error::io("open", path, e)),
        }
    }

    fn ingest(&self, algorithm: Algorithm) -> Result<Box<dyn Ingest>> {
        Ok(Box::new(self.new_ingest(algorithm, WRITE_BUFFER)?))
    }

    fn delete(&self, digest: &Digest) -> Result<bool> {
        let path = self.blob_path(digest);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("remove", path, e)),
        }
    }

    fn list(&self) -> Result<Vec<Info>> {
        let mut out = Vec::new();
        for alg in ALGORITHMS {
            let dir = self.root.join("blobs").join(alg.as_str());
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("read directory", dir, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| Error::io("read directory", &dir, e))?;
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                // Anything that is not a well-formed digest name is not a blob.
                let Ok(digest) = Digest::new(alg, &name) else {
                    continue;
                };
                let size = entry
                    .metadata()
                    .map_err(|e| Error::io("stat", entry.path(), e))?
                    .len();
                out.push(Info { digest, size });
            }
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }
}

struct FsIngest {
    store: FsStore,
    file: BufWriter<tempfile::NamedTempFile>,
    digester: Digester,
}

impl Write for FsIngest {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.file.write(data)?;
        self.digester.update(&data[..n]);
        Ok(n)
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)?;
        self.digester.update(data);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Ingest for FsIngest {
    fn size(&self) -> u64 {
        self.digester.len()
    }

    fn digest(&self) -> Digest {
        self.digester.clone().finish()
    }

    fn read_back(&mut self) -> Result<Box<dyn Read + '_>> {
        let path = self.file.get_ref().path().to_owned();
        self.file
            .flush()
            .map_err(|e| Error::io("flush", &path, e))?;
        let f = File::open(&path).map_err(|e| Error::io("open", &path, e))?;
        Ok(Box::new(io::BufReader::with_capacity(WRITE_BUFFER, f)))
    }

    fn commit(self: Box<Self>, expected: Expected) -> Result<Info> {
        let FsIngest {
            store,
            file,
            digester,
        } = *self;
        let size = digester.len();
        let digest = digester.finish();
        verify(&expected, &digest, size)?;
        let target = store.blob_path(&digest);
        if fs::metadata(&target).is_ok_and(|m| m.len() == size) {
            // Already present: the temporary file is dropped (removed).
            return Ok(Info { digest, size });
        }
        let file = file
            .into_inner()
            .map_err(|e| Error::io("flush", "<ingest>", e.into_error()))?;
        file.as_file()
            .sync_all()
            .map_err(|e| Error::io("fsync", file.path(), e))?;
        let dir = target.parent().expect("blob path has a parent").to_owned();
        fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
        file.persist(&target)
            .map_err(|e| Error::io("rename into place", &target, e.error))?;
        sync_dir(&dir)?;
        Ok(Info { digest, size })
    }
}
