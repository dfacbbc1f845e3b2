//! An in-memory content store, for tests and for short-lived staging.

use std::collections::BTreeMap;
use std::io::{self, Cursor, Read, Write};
use std::sync::{Arc, RwLock};

use berth_oci::{Algorithm, Digest, Digester};

use crate::{BlobReader, ContentStore, Error, Expected, Info, Ingest, Result, verify};

/// Blobs held in memory; cloning shares the same blobs.
#[derive(Debug, Clone, Default)]
pub struct MemStore {
    blobs: Arc<RwLock<BTreeMap<Digest, Arc<Vec<u8>>>>>,
}

impl MemStore {
    pub fn new() -> MemStore {
        MemStore::default()
    }
}

struct ArcBytes(Arc<Vec<u8>>);

impl AsRef<[u8]> for ArcBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl ContentStore for MemStore {
    fn info(&self, digest: &Digest) -> Result<Option<Info>> {
        Ok(self.blobs.read().unwrap().get(digest).map(|b| Info {
            digest: digest.clone(),
            size: b.len() as u64,
        }))
    }

    fn open(&self, digest: &Digest) -> Result<Box<dyn BlobReader>> {
        let blob = self
            .blobs
            .read()
            .unwrap()
            .get(digest)
            .cloned()
            .ok_or_else(|| Error::NotFound(digest.clone()))?;
        Ok(Box::new(Cursor::new(ArcBytes(blob))))
    }

    fn ingest(&self, algorithm: Algorithm) -> Result<Box<dyn Ingest>> {
        Ok(Box::new(MemIngest {
            store: self.clone(),
            buf: Vec::new(),
            digester: algorithm.digester(),
        }))
    }

    fn delete(&self, digest: &Digest) -> Result<bool> {
        Ok(self.blobs.write().unwrap().remove(digest).is_some())
    }

    fn list(&self) -> Result<Vec<Info>> {
        Ok(self
            .blobs
            .read()
            .unwrap()
            .iter()
            .map(|(d, b)| Info {
                digest: d.clone(),
                size: b.len() as u64,
            })
            .collect())
    }
}

struct MemIngest {
    store: MemStore,
    buf: Vec<u8>,
    digester: Digester,
}

impl Write for MemIngest {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        self.digester.update(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Ingest for MemIngest {
    fn size(&self) -> u64 {
        self.buf.len() as u64
    }

    fn digest(&self) -> Digest {
        self.digester.clone().finish()
    }

    fn read_back(&mut self) -> Result<Box<dyn Read + '_>> {
        Ok(Box::new(&self.buf[..]))
    }

    fn commit(self: Box<Self>, expected: Expected) -> Result<Info> {
        let MemIngest {
            store,
            buf,
            digester,
        } = *self;
        let digest = digester.finish();
        let size = buf.len() as u64;
        verify(&expected, &digest, size)?;
        store
            .blobs
            .write()
            .unwrap()
            .entry(digest.clone())
            .or_insert_with(|| Arc::new(buf));
        Ok(Info { digest, size })
    }
}
