//! Black-box tests of the image commands against real stores.

mod common;

use common::*;

#[test]
fn import_images_inspect_history() {
    let store = store_with_busybox();
    let root = store.path();
    let images = ok(berth(root).args(["images", "--format", "json"]));
    let rows: Vec<serde_json::Value> = images.lines().map(json).collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["Repository"], "busybox");
    assert_eq!(rows[0]["Tag"], "latest");
    let tar_len = std::fs::metadata(busybox_tarball()).unwrap().len();
    assert_eq!(
        rows[0]["Size"], tar_len,
        "size is the uncompressed layer size"
    );

    let inspect = json(&ok(berth(root).args(["inspect", "busybox"])));
    let img = &inspect[0];
    assert_eq!(img["RepoTags"][0], "busybox:latest");
    assert_eq!(img["Config"]["Cmd"][0], "sh");
    assert_eq!(img["RootFS"]["Type"], "layers");
    // The diffID is the digest of the tarball exactly as given.
    let tarball = std::fs::read(busybox_tarball()).unwrap();
    assert_eq!(
        img["RootFS"]["Layers"][0],
        format!("sha256:{}", sha256_hex(&tarball))
    );
    let id = img["Id"].as_str().unwrap().to_owned();
    // The id is the config digest, and the config blob is in the OCI layout.
    let config = std::fs::read(root.join("blobs/sha256").join(&id[7..])).unwrap();
    assert_eq!(sha256_hex(&config), &id[7..]);

    // Lookup by id prefix and by full id.
    let by_prefix = json(&ok(berth(root).args(["inspect", &id[7..19]])));
    assert_eq!(by_prefix[0]["Id"], id.as_str());
    let hist = ok(berth(root).args(["history", "--format", "json", &id]));
    let h: Vec<serde_json::Value> = hist.lines().map(json).collect();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0]["CreatedBy"], "berth import");
    assert_eq!(h[0]["Size"], tar_len);

    // Unknown images fail with a clear message.
    let out = fails(berth(root).args(["inspect", "nope"]));
    assert!(
        stderr(&out).contains("no such image: nope"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn tag_rmi_dangling_and_prune() {
    let store = store_with_busybox();
    let root = store.path();
    ok(berth(root).args(["tag", "busybox", "localhost:5000/tools/bb:1"]));
    let images = ok(berth(root).args(["images"]));
    assert!(images.contains("localhost:5000/tools/bb"), "{images}");
    // The layout names are full references.
    let index = std::fs::read_to_string(root.join("index.json")).unwrap();
    assert!(index.contains("docker.io/library/busybox:latest"));
    assert!(index.contains("localhost:5000/tools/bb:1"));

    // Two names: removing by id needs --force; removing a name untags it only.
    let id = json(&ok(berth(root).args(["inspect", "busybox"])))[0]["Id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = fails(berth(root).args(["rmi", &id]));
    assert!(stderr(&out).contains("several tags"), "{}", stderr(&out));
    let out = ok(berth(root).args(["rmi", "localhost:5000/tools/bb:1"]));
    assert!(out.contains("Untagged: localhost:5000/tools/bb:1"));
    assert!(root.join("blobs/sha256").join(&id[7..]).exists());

    // Re-importing under the same name leaves the old image dangling.
    ok(berth(root)
        .arg("import")
        .arg(busybox_tarball())
        .arg("busybox:latest")
        .args(["--change", "ENV X=1"]));
    let images = ok(berth(root).args(["images"]));
    assert!(
        images.contains("<none>"),
        "old image is dangling:\n{images}"
    );
    assert!(root.join("blobs/sha256").join(&id[7..]).exists());
    let out = ok(berth(root).args(["image", "prune", "-f"]));
    assert!(
        out.contains(&id[7..]),
        "prune deletes the old config:\n{out}"
    );
    assert!(!root.join("blobs/sha256").join(&id[7..]).exists());
    let images = ok(berth(root).args(["images"]));
    assert!(!images.contains("<none>"), "{images}");
    // The shared layer survives: the new image still uses it.
    ok(berth(root).args(["system", "check"]));

    // Removing the last name deletes the image and its blobs.
    ok(berth(root).args(["rmi", "busybox"]));
    let (_, blobs) = store_state(root);
    assert!(blobs.is_empty(), "all blobs collected: {blobs:?}");
    assert!(ok(berth(root).args(["images", "-q"])).trim().is_empty());
}

#[test]
fn save_load_roundtrip_is_byte_exact() {
    let store = store_with_busybox();
    let root = store.path();
    let tmp = tempfile::tempdir().unwrap();
    for format in ["docker", "oci"] {
        let a = tmp.path().join(format!("a-{format}.tar"));
        ok(berth(root)
            .args(["save", "--format", format, "-o"])
            .arg(&a)
            .arg("busybox"));
        // Load into a fresh store, save again: identical archive bytes.
        let other = tempfile::tempdir().unwrap();
        let out = ok(berth(other.path()).arg("load").arg("-i").arg(&a));
        assert!(out.contains("Loaded image: busybox:latest"), "{out}");
        let b = tmp.path().join(format!("b-{format}.tar"));
        ok(berth(other.path())
            .args(["save", "--format", format, "-o"])
            .arg(&b)
            .arg("busybox"));
        assert_eq!(
            std::fs::read(&a).unwrap(),
            std::fs::read(&b).unwrap(),
            "{format} round trip changed bytes"
        );
        let i1 = json(&ok(berth(root).args(["inspect", "busybox"])));
        let i2 = json(&ok(berth(other.path()).args(["inspect", "busybox"])));
        assert_eq!(i1[0]["Id"], i2[0]["Id"]);
        assert_eq!(i1[0]["RootFS"], i2[0]["RootFS"]);
    }
    // The docker-archive holds the uncompressed layer: exactly the imported tarball.
    let entries = tar_entries(&tmp.path().join("a-docker.tar"));
    let tarball = std::fs::read(busybox_tarball()).unwrap();
    let layer = entries
        .iter()
        .find(|(n, _)| n.ends_with("/layer.tar"))
        .expect("a layer.tar");
    assert_eq!(layer.1, tarball);
    // The OCI archive's manifest is the store's manifest, byte for byte.
    let digest = json(&ok(berth(root).args(["inspect", "busybox"])))[0]["Descriptor"]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let oci = tar_entries(&tmp.path().join("a-oci.tar"));
    let m = oci
        .iter()
        .find(|(n, _)| n == &format!("blobs/sha256/{}", &digest[7..]))
        .expect("manifest blob");
    assert_eq!(
        m.1,
        std::fs::read(root.join("blobs/sha256").join(&digest[7..])).unwrap()
    );
}

#[test]
fn load_gzipped_and_zstd_archives_and_layers() {
    let store = store_with_busybox();
    let root = store.path();
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("plain.tar");
    ok(berth(root).args(["save", "-o"]).arg(&plain).arg("busybox"));
    // Whole-archive gzip (docker save | gzip).
    let gz = tmp.path().join("a.tar.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    std::io::copy(&mut std::fs::File::open(&plain).unwrap(), &mut enc).unwrap();
    enc.finish().unwrap();
    let other = tempfile::tempdir().unwrap();
    ok(berth(other.path()).arg("load").arg("-i").arg(&gz));
    ok(berth(other.path()).args(["system", "check"]));

    // zstd-compressed layer via import, saved as OCI, loaded elsewhere: kept compressed.
    ok(berth(root)
        .arg("import")
        .arg(busybox_tarball())
        .arg("bbz:1")
        .args(["--compression", "zstd"]));
    let oci = tmp.path().join("z.tar");
    ok(berth(root)
        .args(["save", "--format", "oci", "-o"])
        .arg(&oci)
        .arg("bbz:1"));
    let third = tempfile::tempdir().unwrap();
    ok(berth(third.path()).arg("load").arg("-i").arg(&oci));
    let i = json(&ok(berth(third.path()).args(["inspect", "bbz:1"])));
    let manifest = i[0]["Manifest"]["Digest"].as_str().unwrap();
    let bytes = std::fs::read(third.path().join("blobs/sha256").join(&manifest[7..])).unwrap();
    let m = json(std::str::from_utf8(&bytes).unwrap());
    assert_eq!(
        m["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    // A docker-archive of a zstd image holds the decompressed layer.
    let d = tmp.path().join("zd.tar");
    ok(berth(third.path())
        .args(["save", "-o"])
        .arg(&d)
        .arg("bbz:1"));
    let tarball = std::fs::read(busybox_tarball()).unwrap();
    assert!(
        tar_entries(&d)
            .iter()
            .any(|(n, b)| n.ends_with("layer.tar") && *b == tarball)
    );
    // Stdin works too.
    let fourth = tempfile::tempdir().unwrap();
    ok(berth(fourth.path())
        .arg("load")
        .stdin(std::fs::File::open(&d).unwrap()));
    assert!(ok(berth(fourth.path()).args(["images"])).contains("bbz"));
}

#[test]
fn import_refuses_bad_tarballs_and_changes_nothing() {
    let store = store_with_busybox();
    let root = store.path();
    let before = store_state(root);
    let tmp = tempfile::tempdir().unwrap();
    // '..' in an entry name.
    let evil = tmp.path().join("evil.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&evil).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        // set_path refuses '..', so write the name bytes directly.
        let name = b"../../etc/evil";
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_cksum();
        b.append(&h, &b"bad"[..]).unwrap();
        b.finish().unwrap();
    }
    let out = fails(berth(root).arg("import").arg(&evil).arg("evil:1"));
    assert!(
        stderr(&out).contains("escapes the root"),
        "{}",
        stderr(&out)
    );
    // Not a tar at all.
    let junk = tmp.path().join("junk.tar");
    std::fs::write(&junk, vec![7u8; 4096]).unwrap();
    let out = fails(berth(root).arg("import").arg(&junk).arg("junk:1"));
    assert!(stderr(&out).contains("not a valid tar"), "{}", stderr(&out));
    // Empty input.
    let empty = tmp.path().join("empty.tar");
    std::fs::write(&empty, b"").unwrap();
    let out = fails(berth(root).arg("import").arg(&empty).arg("e:1"));
    assert!(stderr(&out).contains("empty"), "{}", stderr(&out));
    // Nothing visible changed (stray ingest files are invisible and collectable).
    assert_eq!(store_state(root), before);
    ok(berth(root).args(["system", "check"]));
}
