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
