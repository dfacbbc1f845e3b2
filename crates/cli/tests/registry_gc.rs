//! Registry garbage collection, crash safety and concurrency, with real
//! processes: `berth registry gc`, the server's scheduled GC, `kill -9` in
//! the middle of an upload, and 50 concurrent pushes of one image.

mod common;
mod registry_support;

use std::time::{Duration, Instant};

use common::{berth, ok};
use registry_support::*;

fn blob_exists(root: &std::path::Path, d: &berth_oci::Digest) -> bool {
    root.join("blobs")
        .join(d.algorithm().as_str())
        .join(d.hex())
        .is_file()
}

#[test]
fn gc_marks_index_json_and_registry_content_and_honours_grace() {
    let store = common::store_with_busybox();
    let root = store.path();
    let busybox_blobs = files_under(&root.join("blobs"));
    let mut s = Server::start(root, &[]);
    let (m, tagged) = push_image(&s, "app", "v1", "tagged");
    let layer_of = |m: &[u8]| -> berth_oci::Digest {
        let j: serde_json::Value = serde_json::from_slice(m).unwrap();
        j["layers"][0]["digest"].as_str().unwrap().parse().unwrap()
    };
    let tagged_layer = layer_of(&m);
    // An untagged manifest with a layer of its own.
    let (um, untagged) = push_image(&s, "app", "tmp", "untagged");
    let untagged_layer = layer_of(&um);
    assert_eq!(s.req("DELETE", "/v2/app/manifests/tmp").send().status, 202);
    // A referrer of the tagged manifest, pushed by digest.
    let empty = push_blob(&s, "app", b"{}");
    let sig = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/x-sig",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.to_string(), "size": 2},
        "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": tagged.to_string(), "size": m.len()}
    }))
    .unwrap();
    let sig_d = sha256(&sig);
    let r = s
        .req("PUT", &format!("/v2/app/manifests/{sig_d}"))
        .header("Content-Type", OCI_MANIFEST)
        .body(sig)
        .send();
    assert_eq!(r.status, 201);
    // An orphan blob.
    let orphan = push_blob(&s, "app", b"orphan");
    assert!(s.terminate().success());

    let gc = |args: &[&str]| ok(berth(root).args(["registry", "gc"]).args(args));
    // Dry run: reports, changes nothing.
    let out = gc(&["--grace-secs", "0", "--dry-run"]);
    assert!(
        out.contains(&format!("would delete blob {orphan}")),
        "{out}"
    );
    assert!(blob_exists(root, &orphan));
    // Within the grace period the orphan is protected (a push may be in flight).
    let out = gc(&["--grace-secs", "3600"]);
    assert!(!out.contains(&orphan.to_string()), "{out}");
    assert!(blob_exists(root, &orphan));
    // Past it, it goes; manifests, their blobs and index.json images stay.
    let out = gc(&["--grace-secs", "0"]);
    assert!(out.contains(&format!("deleted blob {orphan}")), "{out}");
    assert!(!blob_exists(root, &orphan));
    assert!(
        !root
            .join("registry/repos/app/_layers/sha256")
            .join(orphan.hex())
            .exists()
    );
    for d in [&tagged, &tagged_layer, &untagged, &untagged_layer, &sig_d] {
        assert!(blob_exists(root, d), "{d} must be kept");
    }
    for b in &busybox_blobs {
        assert!(
            root.join("blobs").join(b).is_file(),
            "index.json image blob {b} must be kept"
        );
    }
    // The untagged policy deletes the untagged manifest and then its layer,
    // but keeps the referrer of a tagged manifest.
    let out = gc(&["--grace-secs", "0", "--delete-untagged"]);
    assert!(
        out.contains(&format!("deleted manifest app@{untagged}")),
        "{out}"
    );
    assert!(!blob_exists(root, &untagged));
    assert!(!blob_exists(root, &untagged_layer));
    assert!(blob_exists(root, &sig_d) && blob_exists(root, &tagged_layer));
    let s = Server::start(root, &[]);
    assert_eq!(s.req("GET", "/v2/app/manifests/v1").send().body, m);
    assert_eq!(
        s.req("GET", &format!("/v2/app/blobs/{tagged_layer}"))
            .send()
            .status,
        200
    );
    assert_eq!(
        s.req("GET", &format!("/v2/app/manifests/{untagged}"))
            .send()
            .status,
        404
    );
    assert_eq!(
        s.req("GET", &format!("/v2/app/blobs/{orphan}"))
            .send()
            .status,
        404
    );
    let refs = s
        .req("GET", &format!("/v2/app/referrers/{tagged}"))
        .send()
        .json();
    assert_eq!(refs["manifests"][0]["digest"], sig_d.to_string());
    ok(berth(root).args(["system", "check"]));
    ok(berth(root).args(["images"]));
}

#[test]
fn scheduled_gc_in_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        dir.path(),
        &["--gc-interval-secs", "1", "--gc-grace-secs", "0"],
    );
    let (_, kept) = push_image(&s, "sched", "v1", "kept");
    let orphan = push_blob(&s, "sched", b"scheduled orphan");
    let deadline = Instant::now() + Duration::from_secs(30);
    while blob_exists(dir.path(), &orphan) {
        assert!(
            Instant::now() < deadline,
            "scheduled GC did not remove the orphan"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(blob_exists(dir.path(), &kept));
    assert_eq!(s.req("GET", "/v2/sched/manifests/v1").send().status, 200);
    let metrics = s.req("GET", "/metrics").send().text();
    assert!(
        !metrics.contains("berth_registry_gc_runs_total 0"),
        "{metrics}"
    );
}

#[test]
fn kill9_mid_upload_leaves_nothing_visible_and_restart_serves_the_rest() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), &[]);
    let (m, _) = push_image(&s, "crash", "v1", "before");
    let data = vec![42u8; 8 << 20];
    let d = sha256(&data);
    // A session with one chunk in, then a final PUT cut off by kill -9.
    let r = s.req("POST", "/v2/crash/blobs/uploads/").send();
    let loc = r.header("Location").unwrap().to_owned();
    assert_eq!(
        s.req("PATCH", &loc).body(&data[..1 << 20]).send().status,
        202
    );
    let mut c = std::net::TcpStream::connect(&s.addr).unwrap();
    write!(
        c,
        "PUT {loc}?digest={d} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        data.len() - (1 << 20)
    )
    .unwrap();
    c.write_all(&data[1 << 20..4 << 20]).unwrap();
    // And a monolithic upload in flight.
    let mut c2 = std::net::TcpStream::connect(&s.addr).unwrap();
    write!(c2, "POST /v2/crash/blobs/uploads/?digest={d} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", data.len()).unwrap();
    c2.write_all(&data[..2 << 20]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    s.kill9();
    assert!(!blob_exists(dir.path(), &d));
    let s = Server::start(dir.path(), &[]);
    assert_eq!(
        s.req("HEAD", &format!("/v2/crash/blobs/{d}")).send().status,
        404
    );
    assert_eq!(
        s.req("GET", &loc).send().status,
        404,
        "sessions do not survive a restart"
    );
    assert_eq!(s.req("GET", "/v2/crash/manifests/v1").send().body, m);
    drop(s);
    // Leftover ingest files are collectable.
    ok(berth(dir.path()).args(["registry", "gc"]));
    assert_eq!(
        files_under(&dir.path().join("ingest")),
        Vec::<String>::new()
    );
    ok(berth(dir.path()).args(["system", "check"]));
}

#[test]
fn fifty_concurrent_pushes_of_one_image_store_each_blob_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer: Vec<u8> = (0..(1u32 << 20)).map(|i| (i * 7 % 253) as u8).collect();
    let (cd, ld) = (sha256(&config), sha256(&layer));
    let manifest = image_manifest((&cd, config.len()), &[(&ld, layer.len())]);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let (s, config, layer, manifest) = (&s, &config, &layer, &manifest);
                let (cd, ld) = (&cd, &ld);
                scope.spawn(move || {
                    let repo = format!("same/r{}", i % 5);
                    for (blob, d) in [(config, cd), (layer, ld)] {
                        // Chunked: POST, PATCH in two pieces, PUT.
                        let r = s.req("POST", &format!("/v2/{repo}/blobs/uploads/")).send();
                        assert_eq!(r.status, 202);
                        let loc = r.header("Location").unwrap().to_owned();
                        let half = blob.len() / 2;
                        let r = s
                            .req("PATCH", &loc)
                            .header("Content-Range", &format!("0-{}", half.max(1) - 1))
                            .body(&blob[..half])
                            .send();
                        assert_eq!(r.status, 202, "{}", r.text());
                        let r = s
                            .req("PUT", &format!("{loc}?digest={d}"))
                            .body(&blob[half..])
                            .send();
                        assert_eq!(r.status, 201, "{}", r.text());
                    }
                    let r = s
                        .req("PUT", &format!("/v2/{repo}/manifests/t{i}"))
                        .header("Content-Type", OCI_MANIFEST)
                        .body(manifest.clone())
                        .send();
                    assert_eq!(r.status, 201, "{}", r.text());
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
    let blobs = files_under(&dir.path().join("blobs"));
    assert_eq!(
        blobs.len(),
        3,
        "config, layer and manifest, once each: {blobs:?}"
    );
    assert_eq!(
        files_under(&dir.path().join("ingest")),
        Vec::<String>::new()
    );
    let tags = s.req("GET", "/v2/same/r0/tags/list").send().json();
    assert_eq!(tags["tags"].as_array().unwrap().len(), 10);
    assert_eq!(
        s.req("GET", &format!("/v2/same/r3/blobs/{ld}")).send().body,
        layer
    );
}
