//! Image GC (`berth rmi`, `berth image prune`) shares the content store with
//! the registry server and the build cache: it must not delete what they
//! keep alive.

mod common;
mod registry_support;

use common::{berth, json, ok, store_with_busybox};
use registry_support::*;

fn blob_exists(root: &std::path::Path, d: &berth_oci::Digest) -> bool {
    root.join("blobs")
        .join(d.algorithm().as_str())
        .join(d.hex())
        .is_file()
}

#[test]
fn image_prune_keeps_registry_content() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (manifest, digest) = push_image(&server, "team/app", "v1", "kept");
    let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let layer: berth_oci::Digest = m["layers"][0]["digest"].as_str().unwrap().parse().unwrap();
    let config: berth_oci::Digest = m["config"]["digest"].as_str().unwrap().parse().unwrap();
    drop(server);

    ok(berth(dir.path()).args(["image", "prune", "-a"]));
    for d in [&digest, &layer, &config] {
        assert!(blob_exists(dir.path(), d), "{d} deleted by image prune");
    }
    let report = json(&ok(berth(dir.path()).args(["system", "check", "--json"])));
    assert_eq!(
        report["unreferenced"].as_array().map(Vec::len),
        Some(0),
        "{report}"
    );

    // The registry still serves the image, byte for byte.
    let server = Server::start(dir.path(), &[]);
    let r = server
        .req("GET", "/v2/team/app/manifests/v1")
        .header("Accept", OCI_MANIFEST)
        .send();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, manifest);
    let r = server
        .req("GET", &format!("/v2/team/app/blobs/{layer}"))
        .send();
    assert_eq!(r.status, 200);
    assert_eq!(sha256(&r.body), layer);
}

#[test]
fn rmi_keeps_build_cache_layers() {
    let root = store_with_busybox();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("a.txt"), "cached layer\n").unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox:latest\nCOPY a.txt /a.txt\n",
    )
    .unwrap();
    let build = |tag: &str| {
        let out = berth(root.path())
            .args(["build", "--progress", "plain", "-t", tag])
            .arg(ctx.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "build failed:\n{err}");
        err
    };
    build("app:1");
    let inspect = json(&ok(berth(root.path()).args(["inspect", "app:1"])));
    let top = inspect[0]["RootFS"]["Layers"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    ok(berth(root.path()).args(["rmi", "app:1"]));
    ok(berth(root.path()).args(["image", "prune"]));
    // The COPY layer only lives on in the build cache, and still does.
    let out = build("app:2");
    assert!(
        out.contains("fully cached"),
        "the rebuild after rmi + prune hits the cache:\n{out}"
    );
    let again = json(&ok(berth(root.path()).args(["inspect", "app:2"])));
    assert_eq!(
        again[0]["RootFS"]["Layers"].as_array().unwrap().last(),
        Some(&top)
    );
    assert_eq!(again[0]["Id"], inspect[0]["Id"]);
}

#[test]
fn registry_gc_keeps_build_cache_layers() {
    let root = store_with_busybox();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("b.txt"), "only the cache keeps me\n").unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox:latest AS a\nCOPY b.txt /b.txt\nFROM busybox:latest\nCOPY --from=a /b.txt /c.txt\n",
    )
    .unwrap();
    let build = || {
        let out = berth(root.path())
            .args(["build", "--progress", "plain", "-t", "two:1"])
            .arg(ctx.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "build failed:\n{err}");
        err
    };
    build();
    // Stage a's COPY layer is in no image: only the build cache keeps it.
    ok(berth(root.path()).args(["registry", "gc", "--grace-secs", "0"]));
    let out = build();
    assert!(out.contains("fully cached"), "{out}");
    let report = json(&ok(berth(root.path()).args(["system", "check", "--json"])));
    assert_eq!(report["ok"], true, "{report}");
}

#[test]
fn builder_prune_keep_storage_drops_least_recently_used_records() {
    let root = store_with_busybox();
    let ctx_a = tempfile::tempdir().unwrap();
    let ctx_b = tempfile::tempdir().unwrap();
    // Incompressible 200 KB per context, so each COPY layer weighs ~200 KB.
    let noise = |seed: u64| {
        let mut x = seed;
        (0..200_000)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 56) as u8
            })
            .collect::<Vec<u8>>()
    };
    for (ctx, seed) in [(&ctx_a, 1), (&ctx_b, 2)] {
        std::fs::write(ctx.path().join("blob"), noise(seed)).unwrap();
        std::fs::write(
            ctx.path().join("Dockerfile"),
            "FROM busybox:latest\nCOPY blob /blob\n",
        )
        .unwrap();
    }
    let build = |ctx: &tempfile::TempDir, tag: &str| {
        let out = berth(root.path())
            .args(["build", "--progress", "plain", "-t", tag])
            .arg(ctx.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "build failed:\n{err}");
        err.contains("fully cached")
    };
    assert!(!build(&ctx_a, "a:1"));
    assert!(!build(&ctx_b, "b:1"));
    // Not synchronisation: file mtimes come from the kernel's coarse clock
    // (a tick of a few ms), so b's record and a's refresh must be a tick
    // apart for "least recently used" to have an order.
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert!(build(&ctx_a, "a:1"), "a hit refreshes a's record");
    ok(berth(root.path()).args(["rmi", "a:1", "b:1"]));
    // Both layers now live only in the build cache (~400 KB); keep 300 KB.
    let out = ok(berth(root.path()).args(["builder", "prune", "--keep-storage", "300KB"]));
    assert!(out.contains("Deleted 1 cache records"), "{out}");
    assert!(build(&ctx_a, "a:2"), "the recently used record survives");
    assert!(
        !build(&ctx_b, "b:2"),
        "the least recently used one was dropped"
    );
    // A plain prune empties the cache.
    ok(berth(root.path()).args(["builder", "prune"]));
    assert!(!build(&ctx_a, "a:3"));
}
