//! The conformance suite every [`ContentStore`](crate::ContentStore)
//! implementation must pass.
//!
//! Use it from an implementation's tests with [`content_store_suite!`]; each
//! check becomes one `#[test]` so failures name the rule that broke.

use std::io::{Read, Seek, SeekFrom, Write};

use berth_oci::{Algorithm, Digest};

use crate::{ContentStore, Error, Expected};

/// A committed blob can be read back exactly and is listed.
pub fn commit_then_read(store: &dyn ContentStore) {
    let data = b"hello, content store".to_vec();
    let digest = Digest::sha256_of(&data);
    assert!(store.info(&digest).unwrap().is_none());
    let info = store
        .put(&data, Expected::exact(digest.clone(), data.len() as u64))
        .unwrap();
    assert_eq!(info.digest, digest);
    assert_eq!(
        store.info(&digest).unwrap().unwrap().size,
        data.len() as u64
    );
    assert_eq!(store.read_all(&digest).unwrap(), data);
    assert!(store.list().unwrap().iter().any(|i| i.digest == digest));
}

/// Content is invisible until commit, and a dropped ingest leaves nothing.
pub fn ingest_invisible_until_commit(store: &dyn ContentStore) {
    let data = b"not yet";
    let digest = Digest::sha256_of(data);
    let mut w = store.ingest(Algorithm::Sha256).unwrap();
    w.write_all(data).unwrap();
    assert_eq!(w.size(), data.len() as u64);
    assert_eq!(w.digest(), digest);
    assert!(store.info(&digest).unwrap().is_none());
    assert!(matches!(store.open(&digest), Err(Error::NotFound(_))));
    drop(w);
    assert!(store.info(&digest).unwrap().is_none());
    assert!(store.list().unwrap().iter().all(|i| i.digest != digest));
}

/// A commit with the wrong digest or size fails and publishes nothing.
pub fn commit_verifies(store: &dyn ContentStore) {
    let data = b"verified";
    let wrong = Digest::sha256_of(b"something else");
    let err = store
        .put(data, Expected::digest(wrong.clone()))
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(store.info(&wrong).unwrap().is_none());
    assert!(store.info(&Digest::sha256_of(data)).unwrap().is_none());
    let err = store
        .put(data, Expected::exact(Digest::sha256_of(data), 3))
        .unwrap_err();
    assert!(matches!(err, Error::SizeMismatch { .. }), "{err}");
    assert!(store.info(&Digest::sha256_of(data)).unwrap().is_none());
}

/// Committing content that exists already succeeds and keeps one copy.
pub fn commit_is_idempotent(store: &dyn ContentStore) {
    let data = b"twice";
    let a = store.put(data, Expected::default()).unwrap();
    let b = store.put(data, Expected::default()).unwrap();
    assert_eq!(a, b);
    let n = store
        .list()
        .unwrap()
        .iter()
        .filter(|i| i.digest == a.digest)
        .count();
    assert_eq!(n, 1);
}

/// sha512 content is stored under its sha512 digest.
pub fn sha512_blobs(store: &dyn ContentStore) {
    let data = b"five twelve";
    let digest = Algorithm::Sha512.digest(data);
    let info = store.put(data, Expected::digest(digest.clone())).unwrap();
    assert_eq!(info.digest, digest);
    assert_eq!(store.read_all(&digest).unwrap(), data);
}

/// The empty blob is a valid blob.
pub fn empty_blob(store: &dyn ContentStore) {
    let info = store.put(b"", Expected::default()).unwrap();
    assert_eq!(info.size, 0);
    assert_eq!(store.read_all(&info.digest).unwrap(), b"");
}

/// Readers can seek (registries serve Range requests from them).
pub fn readers_seek(store: &dyn ContentStore) {
    let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let info = store.put(&data, Expected::default()).unwrap();
    let mut r = store.open(&info.digest).unwrap();
    r.seek(SeekFrom::Start(9_000)).unwrap();
    let mut tail = Vec::new();
    r.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, &data[9_000..]);
}

/// `read_back` returns what was written so far, and the ingest stays usable.
pub fn read_back_then_commit(store: &dyn ContentStore) {
    let mut w = store.ingest(Algorithm::Sha256).unwrap();
    w.write_all(b"first ").unwrap();
    let mut seen = Vec::new();
    w.read_back().unwrap().read_to_end(&mut seen).unwrap();
    assert_eq!(seen, b"first ");
    w.write_all(b"second").unwrap();
    let info = w.commit(Expected::default()).unwrap();
    assert_eq!(store.read_all(&info.digest).unwrap(), b"first second");
}

/// Delete removes a blob and reports whether it existed.
pub fn delete_blob(store: &dyn ContentStore) {
    let info = store.put(b"doomed", Expected::default()).unwrap();
    assert!(store.delete(&info.digest).unwrap());
    assert!(!store.delete(&info.digest).unwrap());
    assert!(store.info(&info.digest).unwrap().is_none());
    assert!(matches!(store.open(&info.digest), Err(Error::NotFound(_))));
}

/// Concurrent writers of the same content all succeed and agree.
pub fn concurrent_same_content(store: &(dyn ContentStore + Sync)) {
    let data: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let digests: Vec<Digest> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| store.put(&data, Expected::default()).unwrap().digest))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(digests.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(store.read_all(&digests[0]).unwrap(), data);
}

/// Generates one `#[test]` per conformance check for a store constructor.
///
/// ```text
/// berth_content::content_store_suite!(fs_store, { let dir = tempfile::tempdir().unwrap(); (FsStore::open(dir.path()).unwrap(), dir) });
/// ```
/// The constructor yields `(store, guard)`; the guard lives as long as the test.
#[macro_export]
macro_rules! content_store_suite {
    ($name:ident, $make:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $crate::content_store_suite!(@tests $make;
                commit_then_read, ingest_invisible_until_commit, commit_verifies,
                commit_is_idempotent, sha512_blobs, empty_blob, readers_seek,
                read_back_then_commit, delete_blob, concurrent_same_content);
        }
    };
    (@tests $make:block; $($check:ident),*) => {$(
        #[test]
        fn $check() {
            let (store, _guard) = $make;
            $crate::testsuite::$check(&store);
        }
    )*};
}
