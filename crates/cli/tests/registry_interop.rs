//! The registry against clients nobody here wrote: skopeo (containers/image)
//! and the PyPI `oras` SDK. These tests fail, never skip, when a tool is
//! missing: CI installs them (`scripts/install-test-deps.sh`).

mod common;
mod registry_support;

use std::process::Command;

use common::{berth, ok, store_with_busybox};
use registry_support::*;

fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo is installed (apt-get install skopeo)");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap()
}

#[test]
fn skopeo_copy_inspect_list_tags_and_delete() {
    let src = store_with_busybox();
    let ours = json(&ok(berth(src.path()).args(["inspect", "busybox"])));
    let manifest_digest = ours[0]["Descriptor"]["digest"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let reg = format!("docker://{}/library/busybox", s.addr);
    let oci_src = format!(
        "oci:{}:docker.io/library/busybox:latest",
        src.path().display()
    );
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &oci_src,
        &format!("{reg}:1.0"),
    ]);
    let i = json(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("{reg}:1.0"),
    ]));
    assert_eq!(
        i["Digest"],
        manifest_digest.as_str(),
        "pushed byte for byte"
    );
    assert_eq!(i["Architecture"], "amd64");
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("{reg}:1.0"),
    ]);
    assert_eq!(sha256(raw.as_bytes()).to_string(), manifest_digest);
    let t = json(&skopeo(&["list-tags", "--tls-verify=false", &reg]));
    assert_eq!(t["Tags"], serde_json::json!(["1.0"]));
    // Registry to registry (skopeo mounts blobs across repositories).
    let other = format!("docker://{}/mirror/busybox:copy", s.addr);
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("{reg}:1.0"),
        &other,
    ]);
    let i2 = json(&skopeo(&["inspect", "--tls-verify=false", &other]));
    assert_eq!(i2["Digest"], manifest_digest.as_str());
    // And back into an OCI layout, byte for byte.
    let back = tempfile::tempdir().unwrap();
    let dest = format!("oci:{}:back", back.path().display());
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("{reg}:1.0"),
        &dest,
    ]);
    let b = json(&skopeo(&["inspect", &dest]));
    assert_eq!(b["Digest"], manifest_digest.as_str());
    assert_eq!(b["Layers"], i["Layers"]);
    // Delete (by digest, as skopeo does): the tag disappears.
    skopeo(&["delete", "--tls-verify=false", &format!("{reg}:1.0")]);
    let r = s.req("GET", "/v2/library/busybox/manifests/1.0").send();
    assert_eq!(r.status, 404);
    let t = json(&skopeo(&["list-tags", "--tls-verify=false", &reg]));
    assert_eq!(t["Tags"], serde_json::json!([]));
}

#[test]
fn serving_the_image_store_itself_shares_blobs() {
    // The registry serves the same root the image store uses: pushing an
    // image that is already in the store adds metadata, never a second copy.
    let store = store_with_busybox();
    let before = files_under(&store.path().join("blobs"));
    let s = Server::start(store.path(), &[]);
    let oci_src = format!(
        "oci:{}:docker.io/library/busybox:latest",
        store.path().display()
    );
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &oci_src,
        &format!("docker://{}/busybox:latest", s.addr),
    ]);
    assert_eq!(files_under(&store.path().join("blobs")), before);
    let links = files_under(&store.path().join("registry/repos/busybox"));
    assert!(
        links.iter().any(|l| l.starts_with("_manifests/sha256/")),
        "{links:?}"
    );
    assert!(links.contains(&"_tags/latest".to_owned()), "{links:?}");
    // The image store still sees a consistent store.
    ok(berth(store.path()).args(["system", "check"]));
}

#[test]
fn oras_sdk_artifacts_subject_and_referrers() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let work = tempfile::tempdir().unwrap();
    let script = common::repo_root().join("testdata/registry/oras_artifacts.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(&s.addr)
        .arg(work.path())
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "oras SDK check failed (pip install oras==0.2.43):\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = json(String::from_utf8_lossy(&out.stdout).lines().last().unwrap());
    assert_eq!(summary["ok"], true);
}
