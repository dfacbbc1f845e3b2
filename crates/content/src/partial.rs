//! Resumable ingests: an ingest named after the digest it is meant to
//! have, so that the bytes a killed writer left can be continued by the
//! next one instead of fetched again.
//!
//! A [`Partial`] lives at `ingest/partial-<algorithm>-<hex>` and is held
//! with an exclusive `flock` while open, so two processes never write the
//! same one (the second is told to use an ordinary ingest instead). When
//! reopened, the bytes already there are hashed again to restore the
//! digester: a partial is never trusted, only continued, and the final
//! commit verifies the whole blob as any ingest does.
//!
//! Unlike an ordinary ingest, dropping a `Partial` keeps its file: that is
//! the point. [`Partial::discard`] removes it (for bytes known to be bad);
//! stale ones are removed with every other leftover ingest by
//! [`FsStore::clean_ingests`] (image and registry GC, under the store's
//! exclusive lock) or by [`FsStore::clean_partials_older_than`].
//!
//! What it does not do: decide whether a partial's bytes are a prefix of
//! the right blob; the caller continues it, and the digest at commit says.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use berth_oci::{Digest, Digester};
use rustix::fs::{FlockOperation, flock};

use crate::{Error, Expected, FsStore, Info, Ingest, Result, verify};

const PREFIX: &str = "partial-";
const BUFFER: usize = 1 << 20;

/// A resumable ingest for one digest. See the module documentation.
pub struct Partial {
    store: FsStore,
    path: PathBuf,
    file: BufWriter<File>,
    digester: Digester,
    resumed: u64,
}

impl std::fmt::Debug for Partial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partial")
            .field("path", &self.path)
            .field("size", &self.digester.len())
            .finish()
    }
}

impl FsStore {
    fn partial_path(&self, digest: &Digest) -> PathBuf {
        self.root().join("ingest").join(format!(
            "{PREFIX}{}-{}",
            digest.algorithm().as_str(),
            digest.hex()
        ))
    }

    /// Opens the resumable ingest for `digest`, continuing whatever bytes
    /// an interrupted writer left (hashed again here). `None` when another
    /// process holds it, that is, is writing the same blob right now.
    pub fn ingest_resumable(&self, digest: &Digest) -> Result<Option<Partial>> {
        let path = self.partial_path(digest);
        // Lock, then check that the path still names the locked file: a
        // writer that committed in between renamed it into blobs/.
        let file = loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| Error::io("open", &path, e))?;
            match flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {}
                Err(rustix::io::Errno::WOULDBLOCK) => return Ok(None),
                Err(e) => return Err(Error::io("lock", &path, e.into())),
            }
            let held = file.metadata().map_err(|e| Error::io("stat", &path, e))?;
            match fs::metadata(&path) {
                Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => break file,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("stat", &path, e)),
            }
        };
        let mut digester = digest.algorithm().digester();
        let mut reader = &file;
        let mut buf = vec![0u8; BUFFER];
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(|e| Error::io("read", &path, e))?;
            if n == 0 {
                break;
            }
            digester.update(&buf[..n]);
        }
        let mut file = file;
        file.seek(SeekFrom::End(0))
            .map_err(|e| Error::io("seek", &path, e))?;
        let resumed = digester.len();
        Ok(Some(Partial {
            store: self.clone(),
            path,
            file: BufWriter::with_capacity(BUFFER, file),
            digester,
            resumed,
        }))
    }

    /// Removes resumable ingests nobody holds whose last write is older
    /// than `age`; returns how many files and bytes went.
    pub fn clean_partials_older_than(&self, age: Duration) -> Result<(u64, u64)> {
        let dir = self.root().join("ingest");
        let mut count = 0;
        let mut bytes = 0;
        let now = SystemTime::now();
        for entry in fs::read_dir(&dir).map_err(|e| Error::io("read directory", &dir, e))? {
            let entry = entry.map_err(|e| Error::io("read directory", &dir, e))?;
            if !entry.file_name().to_string_lossy().starts_with(PREFIX) {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            let old = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|d| d > age);
            if !old {
                continue;
            }
            let Ok(f) = File::open(entry.path()) else {
                continue;
            };
            // Held by a writer: not stale, whatever its age.
            if flock(&f, FlockOperation::NonBlockingLockExclusive).is_err() {
                continue;
            }
            if fs::remove_file(entry.path()).is_ok() {
                count += 1;
                bytes += meta.len();
            }
        }
        Ok((count, bytes))
    }
}

impl Partial {
    /// How many bytes were already there when it was opened.
    pub fn resumed_from(&self) -> u64 {
        self.resumed
    }

    /// Throws the bytes away and starts from zero (the source does not
    /// support resuming, or the bytes turned out bad).
    pub fn restart(&mut self) -> Result<()> {
        self.file
            .flush()
            .map_err(|e| Error::io("flush", &self.path, e))?;
        let f = self.file.get_mut();
        f.set_len(0)
            .and_then(|()| f.seek(SeekFrom::Start(0)).map(drop))
            .map_err(|e| Error::io("truncate", &self.path, e))?;
        self.digester = self.digester.algorithm().digester();
        self.resumed = 0;
        Ok(())
    }

    /// Removes the file: its bytes are known to be bad.
    pub fn discard(self) -> Result<()> {
        match fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove", &self.path, e)),
        }
    }
}

impl Write for Partial {
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

impl Ingest for Partial {
    fn size(&self) -> u64 {
        self.digester.len()
    }

    fn digest(&self) -> Digest {
        self.digester.clone().finish()
    }

    fn read_back(&mut self) -> Result<Box<dyn Read + '_>> {
        self.file
            .flush()
            .map_err(|e| Error::io("flush", &self.path, e))?;
        let f = File::open(&self.path).map_err(|e| Error::io("open", &self.path, e))?;
        Ok(Box::new(io::BufReader::with_capacity(BUFFER, f)))
    }

    /// Verifies and publishes as any ingest does; bytes that fail
    /// verification are removed (they cannot be continued into anything).
    fn commit(self: Box<Self>, expected: Expected) -> Result<Info> {
        let Partial {
            store,
            path,
            file,
            digester,
            ..
        } = *self;
        let size = digester.len();
        let digest = digester.finish();
        if let Err(e) = verify(&expected, &digest, size) {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        let file = file
            .into_inner()
            .map_err(|e| Error::io("flush", &path, e.into_error()))?;
        let target = store.blob_path(&digest);
        if fs::metadata(&target).is_ok_and(|m| m.len() == size) {
            let _ = fs::remove_file(&path);
            return Ok(Info { digest, size });
        }
        file.sync_all().map_err(|e| Error::io("fsync", &path, e))?;
        let dir = target.parent().expect("blob path has a parent").to_owned();
        fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
        // Renamed while still locked, so no other process can open and
        // lock this file under its partial name and write into the blob.
        fs::rename(&path, &target).map_err(|e| Error::io("rename into place", &target, e))?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io("fsync directory", &dir, e))?;
        drop(file);
        Ok(Info { digest, size })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ContentStore as _;

    #[test]
    fn continues_what_a_dropped_writer_left() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let digest = berth_oci::Algorithm::Sha256.digest(&data);
        let mut p = store.ingest_resumable(&digest).unwrap().unwrap();
        assert_eq!(p.resumed_from(), 0);
        // A second writer of the same blob is told to go elsewhere.
        assert!(store.ingest_resumable(&digest).unwrap().is_none());
        p.write_all(&data[..100_000]).unwrap();
        drop(p); // like a killed process: the bytes stay
        let mut p = store.ingest_resumable(&digest).unwrap().unwrap();
        assert_eq!((p.resumed_from(), p.size()), (100_000, 100_000));
        p.write_all(&data[100_000..]).unwrap();
        assert_eq!(p.digest(), digest);
        let info = Box::new(p)
            .commit(Expected::exact(digest.clone(), data.len() as u64))
            .unwrap();
        assert_eq!(info.size, data.len() as u64);
        assert_eq!(store.read_all(&digest).unwrap(), data);
        assert!(store.list_ingests().unwrap().is_empty());
    }

    #[test]
    fn restart_discard_and_bad_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::open(dir.path()).unwrap();
        let digest = berth_oci::Algorithm::Sha256.digest(b"right");
        let mut p = store.ingest_resumable(&digest).unwrap().unwrap();
        p.write_all(b"wrong bytes").unwrap();
        p.restart().unwrap();
        assert_eq!(p.size(), 0);
        p.write_all(b"wrong").unwrap();
        // A commit that fails verification removes the file.
        assert!(
            Box::new(p)
                .commit(Expected::digest(digest.clone()))
                .is_err()
        );
        assert!(store.list_ingests().unwrap().is_empty());
        let mut p = store.ingest_resumable(&digest).unwrap().unwrap();
        p.write_all(b"ri").unwrap();
        p.discard().unwrap();
        assert!(store.list_ingests().unwrap().is_empty());
        // Age-based cleaning spares young and held partials. (The file is
        // made two hours old rather than waited for.)
        let mut p = store.ingest_resumable(&digest).unwrap().unwrap();
        p.write_all(b"ri").unwrap();
        p.flush().unwrap();
        let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
        File::options()
            .write(true)
            .open(store.partial_path(&digest))
            .unwrap()
            .set_modified(two_hours_ago)
            .unwrap();
        let hour = Duration::from_secs(3600);
        assert_eq!(store.clean_partials_older_than(hour).unwrap().0, 0, "held");
        drop(p);
        assert_eq!(
            store.clean_partials_older_than(3 * hour).unwrap().0,
            0,
            "young enough"
        );
        assert_eq!(store.clean_partials_older_than(hour).unwrap().0, 1);
        assert!(store.list_ingests().unwrap().is_empty());
    }
}
