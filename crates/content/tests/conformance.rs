//! Every content store implementation runs the same conformance suite.

use berth_content::{FsStore, MemStore};

berth_content::content_store_suite!(fs_store, {
    let dir = tempfile::tempdir().unwrap();
    (FsStore::open(dir.path()).unwrap(), dir)
});

berth_content::content_store_suite!(mem_store, { (MemStore::new(), ()) });

#[test]
fn fs_store_commit_leaves_no_ingest_files() {
    use berth_content::{ContentStore, Expected};
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path()).unwrap();
    store.put(b"a", Expected::default()).unwrap();
    let mut w = store.ingest(berth_oci::Algorithm::Sha256).unwrap();
    w.write_all(b"b").unwrap();
    assert_eq!(store.list_ingests().unwrap().len(), 1);
    drop(w);
    assert!(store.list_ingests().unwrap().is_empty());
    // The blob is where an OCI image layout puts it.
    let d = berth_oci::Digest::sha256_of(b"a");
    assert_eq!(
        std::fs::read(dir.path().join("blobs/sha256").join(d.hex())).unwrap(),
        b"a"
    );
}

#[test]
fn fs_store_followed_ingest_is_readable_while_written_and_after() {
    use berth_content::{ContentStore, Expected};
    use std::io::Write;
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path()).unwrap();
    let (mut w, reader) = store.ingest_followed(berth_oci::Algorithm::Sha256).unwrap();
    w.write_all(b"hello, ").unwrap();
    w.flush().unwrap();
    // Flushed bytes are readable at once, and invisible as a blob.
    let mut buf = [0u8; 7];
    reader.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"hello, ");
    let d = berth_oci::Digest::sha256_of(b"hello, reader");
    assert!(store.info(&d).unwrap().is_none());
    w.write_all(b"reader").unwrap();
    w.commit(Expected::exact(d.clone(), 13)).unwrap();
    // The handle reads the committed blob; no ingest file is left.
    let mut all = [0u8; 13];
    reader.read_exact_at(&mut all, 0).unwrap();
    assert_eq!(&all, b"hello, reader");
    assert_eq!(store.read_all(&d).unwrap(), b"hello, reader");
    assert!(store.list_ingests().unwrap().is_empty());
    // A discarded ingest leaves no file, but its reader still reads.
    let (mut w, reader) = store.ingest_followed(berth_oci::Algorithm::Sha256).unwrap();
    w.write_all(b"gone").unwrap();
    w.flush().unwrap();
    drop(w);
    assert!(store.list_ingests().unwrap().is_empty());
    let mut buf = [0u8; 4];
    reader.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"gone");
}
