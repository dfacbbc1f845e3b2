//! `berth dive --source registry`: the analysis of an image read straight
//! from a registry (berth's own `registry serve`, and Debian's
//! `docker-registry` where a registry must serve corrupt bytes: berth's
//! checks what it serves), layer blobs streamed through verifying readers,
//! nothing written to the local store.

mod build_util;
mod common;
mod registry_support;

use std::path::Path;

use build_util::{Ctx, build};
use common::{berth, fails, json, ok, stderr};
use registry_support::{Distribution, Server};

/// Pushes busybox to `addr` as lib/busybox:1, builds on it (COPY steps,
/// one file copied twice: waste both metrics see) with uncompressed
/// layers, tags the result `name` and pushes it.
fn build_and_push(src: &Path, addr: &str, name: &str) {
    let base = format!("{addr}/lib/busybox:1");
    ok(berth(src).args(["tag", "busybox", &base]));
    ok(berth(src).args(["push", "-q", &base]));
    let ctx = Ctx::new(&format!(
        "FROM {base}\nCOPY big /data/big\nCOPY big /data/big\nCOPY small /small\n"
    ));
    ctx.write("big", vec![b'b'; 20_000]);
    ctx.write("small", "hello from the registry\n");
    build(
        src,
        ctx.path(),
        &["-t", name, "--compression", "uncompressed"],
    );
    ok(berth(src).args(["push", "-q", name]));
}

fn dive_json(root: &Path, args: &[&str]) -> serde_json::Value {
    let out = tempfile::NamedTempFile::new().unwrap();
    ok(berth(root)
        .arg("dive")
        .args(args)
        .arg("--json")
        .arg(out.path()));
    json(&std::fs::read_to_string(out.path()).unwrap())
}

#[test]
fn registry_analysis_equals_the_store_analysis_and_stores_nothing() {
    let reg = tempfile::tempdir().unwrap();
    let s = Server::start(reg.path(), &[]);
    let src = common::store_with_busybox();
    let name = format!("{}/team/app:1", s.addr);
    build_and_push(src.path(), &s.addr, &name);

    let from_store = dive_json(src.path(), &[&name]);
    let empty = tempfile::tempdir().unwrap();
    let root = empty.path().join("store");
    let from_registry = dive_json(&root, &["--source", "registry", &name]);
    assert_eq!(from_registry, from_store);
    // dive's URL form reads the same.
    let url_form = dive_json(&root, &[&format!("registry://{name}")]);
    assert_eq!(url_form, from_store);
    // Something was analysed: 3 layers over busybox, the duplicate is waste,
    // and the user layers come from the base annotations (the base's
    // manifest fetched from the registry by digest).
    let a = &from_registry["analysis"];
    assert_eq!(from_registry["layer"].as_array().unwrap().len(), 4);
    assert!(
        a["berth"]["wasted_bytes"].as_u64().unwrap() >= 20_000,
        "{a}"
    );
    assert_eq!(
        a["berth"]["user_layers"]["from"]["kind"], "base-annotations",
        "{a}"
    );
    assert_eq!(a["berth"]["user_layers"]["first"], 1, "{a}");
    // Nothing was written: the local store was never even created.
    assert!(!root.exists(), "dive --source registry created {root:?}");

    // `dive cat` reads a file from a streamed layer.
    let out = ok(berth(&root).args(["dive", "cat", "--source", "registry", &name, "/small"]));
    assert_eq!(out, "hello from the registry\n");
    assert!(!root.exists());
}

#[test]
fn a_blob_that_does_not_match_its_digest_is_an_error() {
    let d = Distribution::start();
    let src = common::store_with_busybox();
    let name = format!("{}/team/bad:1", d.addr);
    build_and_push(src.path(), &d.addr, &name);
    // The last layer (COPY small, an uncompressed tar) as the registry
    // stores it: change one byte of the file's content, which a tar reader
    // accepts; only the digest says it is wrong.
    let v = json(&ok(berth(src.path()).args(["inspect", &name])));
    let layers = v[0]["RootFS"]["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), 4);
    let digest = v[0]["Descriptor"]["digest"].as_str().unwrap().to_owned();
    let manifest =
        json(&std::fs::read_to_string(src.path().join("blobs/sha256").join(&digest[7..])).unwrap());
    let blob = manifest["layers"][3]["digest"].as_str().unwrap().to_owned();
    let path = d.blob_path(&blob);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes
        .windows(5)
        .position(|w| w == b"hello")
        .expect("the file's content is in the tar");
    bytes[at] = b'J';
    std::fs::write(&path, &bytes).unwrap();

    let root = tempfile::tempdir().unwrap();
    let out = fails(berth(root.path()).args(["dive", "--ci", "--source", "registry", &name]));
    let e = stderr(&out);
    assert!(e.contains("digest mismatch"), "{e}");
    assert!(e.contains(&blob), "{e}");
    let out =
        fails(berth(root.path()).args(["dive", "cat", "--source", "registry", &name, "/small"]));
    assert!(stderr(&out).contains("digest mismatch"), "{}", stderr(&out));
}

/// Pushes a one-layer image for `arch` (an uncompressed tar holding
/// /arch.txt) to `multi`; returns its manifest (not pushed yet) and the
/// layer's digest.
fn push_arch_image(s: &Server, arch: &str) -> (Vec<u8>, berth_oci::Digest) {
    let content = format!("built for {arch}\n");
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, "arch.txt", content.as_bytes())
        .unwrap();
    let layer = b.into_inner().unwrap();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [registry_support::sha256(&layer).to_string()]},
    }))
    .unwrap();
    let cd = registry_support::push_blob(s, "multi", &config);
    let ld = registry_support::push_blob(s, "multi", &layer);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": registry_support::OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": cd.to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": ld.to_string(), "size": layer.len()}],
    }))
    .unwrap();
    (manifest, ld)
}

#[test]
fn platform_selects_from_an_index() {
    let reg = tempfile::tempdir().unwrap();
    let s = Server::start(reg.path(), &[]);
    let host = berth_oci::Platform::host();
    let (other, variant) = if host.architecture == "amd64" {
        ("arm64", Some("v8"))
    } else {
        ("amd64", None)
    };
    let mut entries = Vec::new();
    let mut layer_digests = Vec::new();
    for (arch, variant) in [
        (host.architecture.as_str(), host.variant.as_deref()),
        (other, variant),
    ] {
        let (manifest, layer) = push_arch_image(&s, arch);
        let d = registry_support::sha256(&manifest);
        let r = s
            .req("PUT", &format!("/v2/multi/manifests/{d}"))
            .header("Content-Type", registry_support::OCI_MANIFEST)
            .body(manifest.clone())
            .send();
        assert_eq!(r.status, 201, "{}", r.text());
        let mut platform = serde_json::json!({"architecture": arch, "os": "linux"});
        if let Some(v) = variant {
            platform["variant"] = v.into();
        }
        entries.push(serde_json::json!({
            "mediaType": registry_support::OCI_MANIFEST,
            "digest": d.to_string(), "size": manifest.len(), "platform": platform,
        }));
        layer_digests.push(layer.to_string());
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": registry_support::OCI_INDEX, "manifests": entries,
    }))
    .unwrap();
    let r = s
        .req("PUT", "/v2/multi/manifests/1")
        .header("Content-Type", registry_support::OCI_INDEX)
        .body(index)
        .send();
    assert_eq!(r.status, 201, "{}", r.text());
    let name = format!("{}/multi:1", s.addr);
    let root = tempfile::tempdir().unwrap();
    let host_json = dive_json(root.path(), &["--source", "registry", &name]);
    assert_eq!(host_json["layer"][0]["digestId"], layer_digests[0]);
    let platform = match variant {
        Some(v) => format!("linux/{other}/{v}"),
        None => format!("linux/{other}"),
    };
    let other_json = dive_json(
        root.path(),
        &["--source", "registry", "--platform", &platform, &name],
    );
    assert_eq!(other_json["layer"][0]["digestId"], layer_digests[1]);
    let out = fails(berth(root.path()).args([
        "dive",
        "--ci",
        "--source",
        "registry",
        "--platform",
        "linux/s390x",
        &name,
    ]));
    assert!(
        stderr(&out).contains("no manifest for platform linux/s390x"),
        "{}",
        stderr(&out)
    );
    let out = fails(berth(root.path()).args([
        "dive",
        "--ci",
        "--source",
        "registry",
        &format!("{}/multi:nosuch", s.addr),
    ]));
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
}
