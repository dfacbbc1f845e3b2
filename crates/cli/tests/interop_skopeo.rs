//! Interop with skopeo (containers/image), a producer and consumer nobody here wrote.
//! CI installs skopeo (`scripts/install-test-deps.sh`); these tests fail without it.

mod common;

use std::process::Command;

use common::*;

fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo is installed (scripts/install-test-deps.sh)");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn skopeo_reads_berth_archives_and_store() {
    let store = store_with_busybox();
    let root = store.path();
    let tmp = tempfile::tempdir().unwrap();
    let docker = tmp.path().join("d.tar");
    let oci = tmp.path().join("o.tar");
    ok(berth(root).args(["save", "-o"]).arg(&docker).arg("busybox"));
    ok(berth(root)
        .args(["save", "--format", "oci", "-o"])
        .arg(&oci)
        .arg("busybox"));
    let ours = json(&ok(berth(root).args(["inspect", "busybox"])));
    let diff_id = ours[0]["RootFS"]["Layers"][0].as_str().unwrap();

    let d = json(&skopeo(&[
        "inspect",
        &format!("docker-archive:{}", docker.display()),
    ]));
    assert_eq!(
        d["Layers"][0], diff_id,
        "docker-archive layers are uncompressed"
    );
    assert_eq!(
        d["Env"][0].as_str().is_some(),
        ours[0]["Config"]["Env"].is_array()
    );
    let o = json(&skopeo(&[
        "inspect",
        &format!("oci-archive:{}", oci.display()),
    ]));
    assert_eq!(
        o["Digest"], ours[0]["Descriptor"]["digest"],
        "the OCI archive carries our manifest unchanged"
    );
    // Config bytes survive skopeo's copy to an OCI layout.
    let layout = tmp.path().join("layout");
    skopeo(&[
        "copy",
        "-q",
        &format!("docker-archive:{}", docker.display()),
        &format!("oci:{}:copied", layout.display()),
    ]);
    let id = ours[0]["Id"].as_str().unwrap();
    let config = std::fs::read(layout.join("blobs/sha256").join(&id[7..])).unwrap();
    assert_eq!(sha256_hex(&config), &id[7..]);

    // The store itself is an OCI layout that skopeo reads by full name.
    let raw = skopeo(&[
        "inspect",
        "--raw",
        &format!("oci:{}:docker.io/library/busybox:latest", root.display()),
    ]);
    assert_eq!(
        format!("sha256:{}", sha256_hex(raw.as_bytes())),
        ours[0]["Descriptor"]["digest"].as_str().unwrap()
    );
}

#[test]
fn berth_loads_skopeo_archives_keeping_digests() {
    let store = store_with_busybox();
    let root = store.path();
    let tmp = tempfile::tempdir().unwrap();
    let src = format!("oci:{}:docker.io/library/busybox:latest", root.display());
    let docker = tmp.path().join("sk-docker.tar");
    let oci = tmp.path().join("sk-oci.tar");
    skopeo(&[
        "copy",
        "-q",
        &src,
        &format!("docker-archive:{}:sk/app:v1", docker.display()),
    ]);
    skopeo(&[
        "copy",
        "-q",
        &src,
        &format!("oci-archive:{}:sk/app:v2", oci.display()),
    ]);
    // A gzip-compressed layer, re-compressed by skopeo into an OCI layout, then tarred.
    let fresh = tempfile::tempdir().unwrap();
    let out = ok(berth(fresh.path()).arg("load").arg("-i").arg(&docker));
    assert!(out.contains("Loaded image: sk/app:v1"), "{out}");
    let out = ok(berth(fresh.path()).arg("load").arg("-i").arg(&oci));
    assert!(out.contains("Loaded image: sk/app:v2"), "{out}");
    let v1 = json(&ok(berth(fresh.path()).args(["inspect", "sk/app:v1"])));
    let v2 = json(&ok(berth(fresh.path()).args(["inspect", "sk/app:v2"])));
    let orig = json(&ok(berth(root).args(["inspect", "busybox"])));
    // Same config (image id) and diffIDs through both formats.
    assert_eq!(v1[0]["Id"], orig[0]["Id"]);
    assert_eq!(v2[0]["Id"], orig[0]["Id"]);
    assert_eq!(v1[0]["RootFS"], orig[0]["RootFS"]);
    // The OCI archive's manifest digest is kept exactly (never re-serialised).
    assert_eq!(
        v2[0]["Descriptor"]["digest"],
        orig[0]["Descriptor"]["digest"]
    );
    // The docker-archive's layer tar is stored byte-exact (its digest is the diffID).
    let m_digest = v1[0]["Manifest"]["Digest"].as_str().unwrap();
    let m = json(
        &std::fs::read_to_string(fresh.path().join("blobs/sha256").join(&m_digest[7..])).unwrap(),
    );
    assert_eq!(m["layers"][0]["digest"], v1[0]["RootFS"]["Layers"][0]);
    let check = ok(berth(fresh.path()).args(["system", "check"]));
    assert!(check.contains("store OK"), "{check}");
}
