//! Corrupt, truncated and malicious archives are refused with a message naming
//! the problem, and the store is left exactly as it was.

mod common;

use std::path::Path;

use common::*;

/// A valid docker-archive of busybox, as (name, bytes) entries.
fn good_entries(root: &Path, tmp: &Path) -> Vec<(String, Vec<u8>)> {
    let a = tmp.join("good.tar");
    ok(berth(root).args(["save", "-o"]).arg(&a).arg("busybox"));
    tar_entries(&a)
}

fn write(path: &Path, entries: &[(String, Vec<u8>)]) {
    let refs: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    write_tar(path, &refs);
}

/// Loads `archive` into a fresh store holding only an unrelated image, and
/// asserts failure mentioning `needle` with the store unchanged.
fn refused(archive: &Path, needle: &str) {
    let store = tempfile::tempdir().unwrap();
    ok(berth(store.path())
        .arg("import")
        .arg(busybox_tarball())
        .arg("other:1")
        .args(["--compression", "zstd"]));
    let before = store_state(store.path());
    let out = fails(berth(store.path()).arg("load").arg("-i").arg(archive));
    let err = stderr(&out);
    assert!(err.contains(needle), "expected {needle:?} in:\n{err}");
    assert_eq!(store_state(store.path()), before, "store changed");
    assert!(
        std::fs::read_dir(store.path().join("ingest"))
            .unwrap()
            .next()
            .is_none(),
        "ingest files left behind"
    );
}

#[test]
fn refuses_bad_archives() {
    let src = store_with_busybox();
    let tmp = tempfile::tempdir().unwrap();
    let good = good_entries(src.path(), tmp.path());
    let t = |n: &str| tmp.path().join(n);
    let layer_name = good
        .iter()
        .find(|(n, _)| n.ends_with("layer.tar"))
        .unwrap()
        .0
        .clone();
    let config_name = good
        .iter()
        .find(|(n, _)| n.ends_with(".json") && n != "manifest.json")
        .unwrap()
        .0
        .clone();

    // Truncated: cut the archive in the middle of the layer.
    let full = t("full.tar");
    write(&full, &good);
    let bytes = std::fs::read(&full).unwrap();
    std::fs::write(t("truncated.tar"), &bytes[..bytes.len() / 2]).unwrap();
    refused(&t("truncated.tar"), "truncated");

    // A layer whose content does not match the config's diffID.
    let mut e = good.clone();
    for (n, b) in &mut e {
        if *n == layer_name {
            let last = b.len() - 1030;
            b[last] ^= 0xff;
        }
    }
    write(&t("diffid.tar"), &e);
    refused(&t("diffid.tar"), "diffID");

    // A config whose name is not its digest.
    let mut e = good.clone();
    for (n, b) in &mut e {
        if *n == config_name {
            let s = String::from_utf8(b.clone())
                .unwrap()
                .replace("\"sh\"", "\"ls\"");
            *b = s.into_bytes();
        }
    }
    write(&t("config.tar"), &e);
    refused(&t("config.tar"), "digest mismatch");

    // Duplicate entries.
    let mut e = good.clone();
    e.push(e[0].clone());
    write(&t("dup.tar"), &e);
    refused(&t("dup.tar"), "duplicate entry");

    // A missing layer.
    let e: Vec<_> = good
        .iter()
        .filter(|(n, _)| *n != layer_name)
        .cloned()
        .collect();
    write(&t("missing.tar"), &e);
    refused(&t("missing.tar"), "missing from the archive");

    // manifest.json naming a path outside the archive.
    let mut e = good.clone();
    for (n, b) in &mut e {
        if n == "manifest.json" {
            *b = String::from_utf8(b.clone())
                .unwrap()
                .replace(&layer_name, "../../etc/passwd")
                .into_bytes();
        }
    }
    write(&t("traversal.tar"), &e);
    refused(&t("traversal.tar"), "escapes the archive");

    // A symlink pointing outside the archive.
    {
        let path = t("symlink.tar");
        let mut b = tar::Builder::new(std::fs::File::create(&path).unwrap());
        for (n, data) in &good {
            if *n == layer_name {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                h.set_mode(0o777);
                b.append_link(&mut h, n, "/etc/passwd").unwrap();
            } else {
                let mut h = tar::Header::new_gnu();
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                b.append_data(&mut h, n, data.as_slice()).unwrap();
            }
        }
        b.finish().unwrap();
        refused(&path, "points outside the archive");
    }

    // Neither format.
    write(
        &t("neither.tar"),
        &[("hello.txt".to_owned(), b"hi".to_vec())],
    );
    refused(&t("neither.tar"), "neither manifest.json");

    // Not a tar at all, and empty input.
    std::fs::write(t("garbage.tar"), vec![0x42u8; 3000]).unwrap();
    refused(&t("garbage.tar"), "tar");
    std::fs::write(t("empty.tar"), b"").unwrap();
    refused(&t("empty.tar"), "empty");
}

#[test]
fn refuses_bad_oci_archives() {
    let src = store_with_busybox();
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("oci.tar");
    ok(berth(src.path())
        .args(["save", "--format", "oci", "-o"])
        .arg(&a)
        .arg("busybox"));
    let good = tar_entries(&a);
    let blob_names: Vec<String> = good
        .iter()
        .map(|(n, _)| n.clone())
        .filter(|n| n.starts_with("blobs/"))
        .collect();

    // Blob content that does not hash to its name.
    for victim in &blob_names {
        let mut e = good.clone();
        for (n, b) in &mut e {
            if n == victim {
                b[0] ^= 1;
            }
        }
        let p = tmp.path().join("bad-blob.tar");
        write(&p, &e);
        // A flipped manifest byte is also caught, as a digest mismatch.
        refused(&p, "digest mismatch");
    }

    // A missing blob.
    let e: Vec<_> = good
        .iter()
        .filter(|(n, _)| n != &blob_names[2])
        .cloned()
        .collect();
    let p = tmp.path().join("missing.tar");
    write(&p, &e);
    refused(&p, "missing from the archive");

    // A descriptor whose size is wrong.
    let mut e = good.clone();
    for (n, b) in &mut e {
        if n == "index.json" {
            let mut v: serde_json::Value = serde_json::from_slice(b).unwrap();
            let size = v["manifests"][0]["size"].as_u64().unwrap();
            v["manifests"][0]["size"] = (size + 1).into();
            *b = serde_json::to_vec(&v).unwrap();
        }
    }
    let p = tmp.path().join("size.tar");
    write(&p, &e);
    refused(&p, "size mismatch");

    // A sha512 digest in the index that does not exist.
    let mut e = good.clone();
    for (n, b) in &mut e {
        if n == "index.json" {
            let mut v: serde_json::Value = serde_json::from_slice(b).unwrap();
            v["manifests"][0]["digest"] = format!("sha512:{}", "a".repeat(128)).into();
            *b = serde_json::to_vec(&v).unwrap();
        }
    }
    let p = tmp.path().join("sha512.tar");
    write(&p, &e);
    refused(&p, "missing from the archive");
}
