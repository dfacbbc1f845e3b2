//! Advisory file locks (`flock`) that coordinate berth processes sharing a store.
//!
//! The kernel drops an flock when its holder dies, so a `kill -9` never leaves
//! a store locked.

use std::fs::{File, OpenOptions};
use std::path::Path;

use rustix::fs::{FlockOperation, flock};

use crate::{Error, Result};

/// A held lock; released on drop.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

impl FileLock {
    fn take(path: &Path, op: FlockOperation) -> Result<FileLock> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| Error::io("open lock", path, e))?;
        loop {
            match flock(&file, op) {
                Ok(()) => return Ok(FileLock { _file: file }),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Error::io("lock", path, e.into())),
            }
        }
    }

    /// Blocks until a shared lock is held.
    pub fn shared(path: &Path) -> Result<FileLock> {
        Self::take(path, FlockOperation::LockShared)
    }

    /// Blocks until an exclusive lock is held.
    pub fn exclusive(path: &Path) -> Result<FileLock> {
        Self::take(path, FlockOperation::LockExclusive)
    }
}
