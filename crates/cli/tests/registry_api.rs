//! Black-box tests of the registry's HTTP surface: the real `berth registry
//! serve` on 127.0.0.1:0, driven by a raw HTTP client, over the endpoint
//! matrix and its edge cases.

mod registry_support;

use registry_support::*;

fn server() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    (dir, s)
}

#[test]
fn base_health_and_unknown_endpoints() {
    let (_d, s) = server();
    let r = s.req("GET", "/v2/").send();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Docker-Distribution-API-Version"),
        Some("registry/2.0")
    );
    assert_eq!(r.body, b"{}");
    assert_eq!(s.req("GET", "/health").send().status, 200);
    let r = s.req("GET", "/v2/a/nothing/here").send();
    assert_eq!(r.status, 404);
    assert_eq!(r.code(), "NOT_FOUND");
    let r = s.req("POST", "/v2/a/tags/list").send();
    assert_eq!(r.status, 405);
}

#[test]
fn blob_push_get_head_range_delete() {
    let (_d, s) = server();
    let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let d = push_blob(&s, "lib/a", &data);
    let path = format!("/v2/lib/a/blobs/{d}");
    let r = s.req("HEAD", &path).send();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some("1000"));
    assert_eq!(
        r.header("Docker-Content-Digest"),
        Some(d.to_string().as_str())
    );
    assert!(r.body.is_empty());
    let r = s.req("GET", &path).send();
    assert_eq!((r.status, &r.body), (200, &data));
    // Range edges.
    let range = |h: &str| s.req("GET", &path).header("Range", h).send();
    let r = range("bytes=0-0");
    assert_eq!((r.status, r.body.as_slice()), (206, &data[..1]));
    assert_eq!(r.header("Content-Range"), Some("bytes 0-0/1000"));
    let r = range("bytes=990-");
    assert_eq!((r.status, r.body.as_slice()), (206, &data[990..]));
    let r = range("bytes=-10");
    assert_eq!((r.status, r.body.as_slice()), (206, &data[990..]));
    let r = range("bytes=995-5000");
    assert_eq!((r.status, r.body.as_slice()), (206, &data[995..]));
    assert_eq!(r.header("Content-Range"), Some("bytes 995-999/1000"));
    let r = range("bytes=999-999");
    assert_eq!((r.status, r.body.as_slice()), (206, &data[999..]));
    let r = range("bytes=1000-");
    assert_eq!(r.status, 416);
    assert_eq!(r.header("Content-Range"), Some("bytes */1000"));
    assert_eq!(range("bytes=-0").status, 416);
    // Unparseable and multi-range requests get the whole blob.
    for h in ["bytes=5-1", "bytes=a-b", "bytes=0-1,5-6", "lines=1-2"] {
        let r = range(h);
        assert_eq!((r.status, r.body.len()), (200, 1000), "{h}");
    }
    // Another repository cannot read it without a mount.
    let r = s.req("GET", &format!("/v2/lib/b/blobs/{d}")).send();
    assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UNKNOWN"));
    // Unknown and invalid digests.
    let r = s
        .req("GET", &format!("/v2/lib/a/blobs/{}", sha256(b"nope")))
        .send();
    assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UNKNOWN"));
    for bad in [
        "sha256:zz",
        "sha256:..%2F..%2Fetc",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "nodigest:",
    ] {
        let r = s.req("GET", &format!("/v2/lib/a/blobs/{bad}")).send();
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "DIGEST_INVALID"),
            "{bad}"
        );
    }
    // Delete unlinks from the repository.
    assert_eq!(s.req("DELETE", &path).send().status, 202);
    assert_eq!(s.req("GET", &path).send().status, 404);
    let r = s.req("DELETE", &path).send();
    assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UNKNOWN"));
}

#[test]
fn large_blobs_stream_and_ranges_work_past_the_memory_threshold() {
    let (_d, s) = server();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let d = push_blob(&s, "big", &data);
    let r = s.req("GET", &format!("/v2/big/blobs/{d}")).send();
    assert_eq!(r.status, 200);
    assert!(r.body == data, "streamed body differs");
    let r = s
        .req("GET", &format!("/v2/big/blobs/{d}"))
        .header("Range", "bytes=1048570-2100000")
        .send();
    assert_eq!(r.status, 206);
    assert!(r.body == data[1_048_570..=2_100_000]);
}

#[test]
fn empty_blob_and_sha512() {
    let (_d, s) = server();
    let d = push_blob(&s, "e", b"");
    let r = s.req("GET", &format!("/v2/e/blobs/{d}")).send();
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(r.header("Content-Length"), Some("0"));
    // sha512, monolithic.
    let data = b"five twelve";
    let d512 = sha512(data);
    let r = s
        .req("POST", &format!("/v2/e/blobs/uploads/?digest={d512}"))
        .body(&data[..])
        .send();
    assert_eq!(r.status, 201, "{}", r.text());
    let r = s.req("GET", &format!("/v2/e/blobs/{d512}")).send();
    assert_eq!((r.status, r.body.as_slice()), (200, &data[..]));
    assert!(s.root.join("blobs/sha512").join(d512.hex()).is_file());
    // sha512 through a session (hashed as sha256 until the digest arrives).
    let other = b"another sha512 blob";
    let d = sha512(other);
    let r = s.req("POST", "/v2/e/blobs/uploads/").send();
    let loc = r.header("Location").unwrap().to_owned();
    let r = s.req("PATCH", &loc).body(&other[..5]).send();
    assert_eq!(r.status, 202);
    let r = s
        .req("PUT", &format!("{loc}?digest={d}"))
        .body(&other[5..])
        .send();
    assert_eq!(r.status, 201, "{}", r.text());
    let r = s.req("GET", &format!("/v2/e/blobs/{d}")).send();
    assert_eq!(r.body, other);
}

#[test]
fn chunked_upload_in_order_out_of_order_and_status() {
    let (_d, s) = server();
    let data: Vec<u8> = (0..100u8).collect();
    let r = s.req("POST", "/v2/c/blobs/uploads/").send();
    assert_eq!(r.status, 202);
    assert_eq!(r.header("Range"), Some("0-0"));
    let loc = r.header("Location").unwrap().to_owned();
    assert!(loc.starts_with("/v2/c/blobs/uploads/"), "{loc}");
    let id = r.header("Docker-Upload-UUID").unwrap().to_owned();
    assert!(loc.ends_with(&id));
    let r = s
        .req("PATCH", &loc)
        .header("Content-Type", "application/octet-stream")
        .header("Content-Range", "0-39")
        .body(&data[..40])
        .send();
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.header("Range"), Some("0-39"));
    let r = s.req("GET", &loc).send();
    assert_eq!((r.status, r.header("Range")), (204, Some("0-39")));
    // Out of order: a chunk that does not start at 40.
    let r = s
        .req("PATCH", &loc)
        .header("Content-Range", "50-59")
        .body(&data[50..60])
        .send();
    assert_eq!(r.status, 416);
    assert_eq!(r.header("Range"), Some("0-39"));
    let r = s
        .req("PATCH", &loc)
        .header("Content-Range", "0-9")
        .body(&data[..10])
        .send();
    assert_eq!(r.status, 416, "a repeated chunk is out of order too");
    // Content-Range disagreeing with the body length.
    let r = s
        .req("PATCH", &loc)
        .header("Content-Range", "40-49")
        .body(&data[40..45])
        .send();
    assert_eq!(r.status, 416);
    assert_eq!(s.req("GET", &loc).send().header("Range"), Some("0-39"));
    // A streamed chunk (no Content-Range), then the last piece with the PUT.
    let r = s.req("PATCH", &loc).body(&data[40..90]).send();
    assert_eq!((r.status, r.header("Range")), (202, Some("0-89")));
    let d = sha256(&data);
    let r = s
        .req("PUT", &format!("{loc}?digest={d}"))
        .header("Content-Range", "90-99")
        .body(&data[90..])
        .send();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.header("Location"),
        Some(format!("/v2/c/blobs/{d}").as_str())
    );
    assert_eq!(
        r.header("Docker-Content-Digest"),
        Some(d.to_string().as_str())
    );
    assert_eq!(s.req("GET", &format!("/v2/c/blobs/{d}")).send().body, data);
    // The session is over.
    let r = s.req("GET", &loc).send();
    assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UPLOAD_UNKNOWN"));
    // POST + PUT with the whole body.
    let r = s.req("POST", "/v2/c/blobs/uploads/").send();
    let loc = r.header("Location").unwrap().to_owned();
    let d = sha256(b"whole");
    let r = s
        .req("PUT", &format!("{loc}?digest={d}"))
        .body("whole")
        .send();
    assert_eq!(r.status, 201);
    // A session belongs to its repository.
    let r = s.req("POST", "/v2/c/blobs/uploads/").send();
    let id = r.header("Docker-Upload-UUID").unwrap().to_owned();
    let r = s
        .req("GET", &format!("/v2/other/blobs/uploads/{id}"))
        .send();
    assert_eq!(r.status, 404);
}

#[test]
fn digest_mismatch_publishes_nothing() {
    let (_d, s) = server();
    let wrong = sha256(b"something else");
    let r = s
        .req("POST", &format!("/v2/m/blobs/uploads/?digest={wrong}"))
        .body("actual")
        .send();
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
    assert_eq!(
        s.req("HEAD", &format!("/v2/m/blobs/{wrong}")).send().status,
        404
    );
    assert_eq!(
        s.req("HEAD", &format!("/v2/m/blobs/{}", sha256(b"actual")))
            .send()
            .status,
        404
    );
    let r = s.req("POST", "/v2/m/blobs/uploads/").send();
    let loc = r.header("Location").unwrap().to_owned();
    s.req("PATCH", &loc).body("actual").send();
    // No digest, then an invalid one: the session survives both.
    let r = s.req("PUT", &loc).send();
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
    let r = s.req("PUT", &format!("{loc}?digest=sha256:123")).send();
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
    let r = s.req("PUT", &format!("{loc}?digest={wrong}")).send();
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
    assert_eq!(s.req("GET", &loc).send().status, 404);
    assert_eq!(files_under(&s.root.join("blobs")), Vec::<String>::new());
    assert_eq!(files_under(&s.root.join("ingest")), Vec::<String>::new());
}

#[test]
fn cancel_and_unknown_uploads() {
    let (_d, s) = server();
    let r = s.req("POST", "/v2/x/blobs/uploads/").send();
    let loc = r.header("Location").unwrap().to_owned();
    s.req("PATCH", &loc).body("partial").send();
    assert_eq!(s.req("DELETE", &loc).send().status, 204);
    let r = s.req("GET", &loc).send();
    assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UPLOAD_UNKNOWN"));
    assert_eq!(s.req("DELETE", &loc).send().status, 404);
    for id in ["nope", "..", "0123456789abcdef0123456789abcdef", "%2e%2e"] {
        let r = s
            .req("PATCH", &format!("/v2/x/blobs/uploads/{id}"))
            .body("x")
            .send();
        assert_eq!(
            (r.status, r.code().as_str()),
            (404, "BLOB_UPLOAD_UNKNOWN"),
            "{id}"
        );
    }
    assert_eq!(files_under(&s.root.join("ingest")), Vec::<String>::new());
}

#[test]
fn truncated_uploads_leave_nothing_visible() {
    let (_d, s) = server();
    let data = vec![7u8; 4096];
    let d = sha256(&data);
    let r = s
        .req("POST", &format!("/v2/t/blobs/uploads/?digest={d}"))
        .body(&data[..100])
        .send_raw(Some(4096), false);
    assert!(r.status >= 400 && r.status < 500, "got {}", r.status);
    assert_eq!(
        s.req("HEAD", &format!("/v2/t/blobs/{d}")).send().status,
        404
    );
    // Truncated chunk in a session: the server keeps what arrived.
    let r = s.req("POST", "/v2/t/blobs/uploads/").send();
    let loc = r.header("Location").unwrap().to_owned();
    let r = s
        .req("PATCH", &loc)
        .body(&data[..100])
        .send_raw(Some(4096), false);
    assert!(r.status >= 400, "got {}", r.status);
    let r = s.req("PUT", &format!("{loc}?digest={d}")).send();
    assert_eq!(
        r.status,
        400,
        "a truncated upload never commits: {}",
        r.text()
    );
    assert_eq!(
        s.req("HEAD", &format!("/v2/t/blobs/{d}")).send().status,
        404
    );
    assert!(!s.root.join("blobs/sha256").join(d.hex()).exists());
}

#[test]
fn cross_repository_mount_and_fallback() {
    let (_d, s) = server();
    let d = push_blob(&s, "src/repo", b"shared layer");
    let r = s
        .req(
            "POST",
            &format!("/v2/dst/blobs/uploads/?mount={d}&from=src/repo"),
        )
        .send();
    assert_eq!(r.status, 201);
    assert_eq!(
        r.header("Location"),
        Some(format!("/v2/dst/blobs/{d}").as_str())
    );
    assert_eq!(
        s.req("GET", &format!("/v2/dst/blobs/{d}")).send().body,
        b"shared layer"
    );
    // Unknown blob, unknown or invalid source: a normal upload session.
    for q in [
        format!("mount={}&from=src/repo", sha256(b"missing")),
        format!("mount={d}&from=nowhere"),
        format!("mount={d}&from=BAD"),
        "mount=sha256:bad&from=src/repo".to_owned(),
    ] {
        let r = s
            .req("POST", &format!("/v2/dst2/blobs/uploads/?{q}"))
            .send();
        assert_eq!(r.status, 202, "{q}");
        assert!(
            r.header("Location")
                .unwrap()
                .starts_with("/v2/dst2/blobs/uploads/")
        );
    }
}

#[test]
fn manifests_by_tag_and_digest() {
    let (_d, s) = server();
    let (m, d) = push_image(&s, "app", "v1", "one");
    for reference in ["v1".to_owned(), d.to_string()] {
        let r = s
            .req("GET", &format!("/v2/app/manifests/{reference}"))
            .send();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, m, "byte-exact");
        assert_eq!(r.header("Content-Type"), Some(OCI_MANIFEST));
        assert_eq!(
            r.header("Docker-Content-Digest"),
            Some(d.to_string().as_str())
        );
        let r = s
            .req("HEAD", &format!("/v2/app/manifests/{reference}"))
            .send();
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("Content-Length"),
            Some(m.len().to_string().as_str())
        );
        assert!(r.body.is_empty());
    }
    // Push by digest with odd whitespace: stored and served byte for byte.
    let mut odd = m.clone();
    odd.extend_from_slice(b"\n  ");
    let od = sha256(&odd);
    let r = s
        .req("PUT", &format!("/v2/app/manifests/{od}"))
        .header("Content-Type", OCI_MANIFEST)
        .body(odd.clone())
        .send();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.header("Location"),
        Some(format!("/v2/app/manifests/{od}").as_str())
    );
    assert_eq!(
        s.req("GET", &format!("/v2/app/manifests/{od}")).send().body,
        odd
    );
    // sha512 manifest digests.
    let d512 = sha512(&m);
    let r = s
        .req("PUT", &format!("/v2/app/manifests/{d512}"))
        .header("Content-Type", OCI_MANIFEST)
        .body(m.clone())
        .send();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.header("Docker-Content-Digest"),
        Some(d512.to_string().as_str())
    );
    assert_eq!(
        s.req("GET", &format!("/v2/app/manifests/{d512}"))
            .send()
            .body,
        m
    );
    // Unknown and invalid references.
    let r = s.req("GET", "/v2/app/manifests/nope").send();
    assert_eq!((r.status, r.code().as_str()), (404, "MANIFEST_UNKNOWN"));
    let r = s
        .req("GET", &format!("/v2/app/manifests/{}", sha256(b"x")))
        .send();
    assert_eq!((r.status, r.code().as_str()), (404, "MANIFEST_UNKNOWN"));
    let r = s.req("GET", "/v2/other/manifests/v1").send();
    assert_eq!((r.status, r.code().as_str()), (404, "MANIFEST_UNKNOWN"));
    let r = s.req("GET", "/v2/app/manifests/sha256:abc").send();
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
    let r = s.req("GET", "/v2/app/manifests/-bad-tag").send();
    assert_eq!(r.status, 400);
}

#[test]
fn manifest_put_rejects_bad_documents() {
    let (_d, s) = server();
    let (m, _) = push_image(&s, "app", "v1", "one");
    let put = |reference: &str, ct: &str, body: Vec<u8>| {
        s.req("PUT", &format!("/v2/app/manifests/{reference}"))
            .header("Content-Type", ct)
            .body(body)
            .send()
    };
    // Digest in the URL does not match the body.
    let r = put(&sha256(b"other").to_string(), OCI_MANIFEST, m.clone());
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
    // References a blob the repository does not have.
    let missing = sha256(b"never pushed");
    let cd = push_blob(&s, "app", b"{}");
    let bad = image_manifest((&cd, 2), &[(&missing, 12)]);
    let r = put("t", OCI_MANIFEST, bad);
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "MANIFEST_BLOB_UNKNOWN")
    );
    // A blob that exists only in another repository is unknown here too.
    let elsewhere = push_blob(&s, "other", b"elsewhere");
    let bad = image_manifest((&cd, 2), &[(&elsewhere, 9)]);
    let r = put("t", OCI_MANIFEST, bad);
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "MANIFEST_BLOB_UNKNOWN")
    );
    // Malformed documents.
    for body in [
        &b"not json"[..],
        br#"{"schemaVersion":1}"#,
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#,
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"x","digest":"sha256:../../etc/passwd","size":1}}"#,
        br#"[]"#,
        b"",
    ] {
        let r = put("t", OCI_MANIFEST, body.to_vec());
        assert_eq!((r.status, r.code().as_str()), (400, "MANIFEST_INVALID"), "{}", String::from_utf8_lossy(body));
    }
    // Content-Type disagreeing with the document's mediaType.
    let r = put("t", OCI_INDEX, m.clone());
    assert_eq!((r.status, r.code().as_str()), (400, "MANIFEST_INVALID"));
    // Too large.
    let big = vec![b' '; 5 << 20];
    let r = put("t", OCI_MANIFEST, big);
    assert_eq!(r.status, 413);
    assert_eq!(s.req("GET", "/v2/app/manifests/t").send().status, 404);
}

#[test]
fn indexes_nested_indexes_docker_types_and_nondistributable_layers() {
    let (_d, s) = server();
    let (m1, d1) = push_image(&s, "multi", "a", "a");
    let (m2, d2) = push_image(&s, "multi", "b", "b");
    let index = |children: &[(&str, &berth_oci::Digest, usize)], mt: &str| {
        let ms: Vec<serde_json::Value> = children
            .iter()
            .map(|(t, d, n)| {
                serde_json::json!({"mediaType": t, "digest": d.to_string(), "size": n,
                "platform": {"architecture": "amd64", "os": "linux"}})
            })
            .collect();
        serde_json::to_vec(
            &serde_json::json!({"schemaVersion": 2, "mediaType": mt, "manifests": ms}),
        )
        .unwrap()
    };
    let idx = index(
        &[(OCI_MANIFEST, &d1, m1.len()), (OCI_MANIFEST, &d2, m2.len())],
        OCI_INDEX,
    );
    let r = s
        .req("PUT", "/v2/multi/manifests/idx")
        .header("Content-Type", OCI_INDEX)
        .body(idx.clone())
        .send();
    assert_eq!(r.status, 201, "{}", r.text());
    let di = sha256(&idx);
    let nested = index(&[(OCI_INDEX, &di, idx.len())], OCI_INDEX);
    let r = s
        .req("PUT", "/v2/multi/manifests/nested")
        .header("Content-Type", OCI_INDEX)
        .body(nested.clone())
        .send();
    assert_eq!(r.status, 201, "{}", r.text());
    let r = s.req("GET", "/v2/multi/manifests/nested").send();
    assert_eq!(
        (r.body.clone(), r.header("Content-Type")),
        (nested, Some(OCI_INDEX))
    );
    // An index whose child is missing.
    let bad = index(&[(OCI_MANIFEST, &sha256(b"ghost"), 10)], OCI_INDEX);
    let r = s
        .req("PUT", "/v2/multi/manifests/bad")
        .header("Content-Type", OCI_INDEX)
        .body(bad)
        .send();
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "MANIFEST_BLOB_UNKNOWN")
    );
    // Docker schema 2 manifest and manifest list.
    let cfg = b"{\"architecture\":\"amd64\",\"os\":\"linux\"}";
    let cd = push_blob(&s, "multi", cfg);
    let ld = push_blob(&s, "multi", b"docker layer");
    let dm = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": cd.to_string(), "size": cfg.len()},
        "layers": [
            {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": ld.to_string(), "size": 12},
            // Foreign layers live elsewhere: never pushed, still accepted.
            {"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
             "digest": sha256(b"windows base").to_string(), "size": 5, "urls": ["https://example.invalid/l"]}
        ]
    })).unwrap();
    let dmt = "application/vnd.docker.distribution.manifest.v2+json";
    let r = s
        .req("PUT", "/v2/multi/manifests/docker")
        .header("Content-Type", dmt)
        .body(dm.clone())
        .send();
    assert_eq!(r.status, 201, "{}", r.text());
    let ddm = sha256(&dm);
    let lmt = "application/vnd.docker.distribution.manifest.list.v2+json";
    let list = index(&[(dmt, &ddm, dm.len())], lmt);
    let r = s
        .req("PUT", "/v2/multi/manifests/list")
        .header("Content-Type", lmt)
        .body(list)
        .send();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        s.req("GET", "/v2/multi/manifests/list")
            .send()
            .header("Content-Type"),
        Some(lmt)
    );
    // OCI non-distributable layer, not pushed.
    let nd = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": cfg.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                    "digest": sha256(b"restricted").to_string(), "size": 10}]
    })).unwrap();
    let r = s
        .req("PUT", "/v2/multi/manifests/nd")
        .header("Content-Type", OCI_MANIFEST)
        .body(nd)
        .send();
    assert_eq!(r.status, 201, "{}", r.text());
}

#[test]
fn manifest_and_tag_deletion() {
    let (_d, s) = server();
    let (_, d) = push_image(&s, "del", "v1", "x");
    let r = s
        .req("PUT", "/v2/del/manifests/v2")
        .header("Content-Type", OCI_MANIFEST)
        .body(s.req("GET", "/v2/del/manifests/v1").send().body)
        .send();
    assert_eq!(r.status, 201);
    // Deleting a tag keeps the manifest and the other tag.
    assert_eq!(s.req("DELETE", "/v2/del/manifests/v1").send().status, 202);
    assert_eq!(s.req("GET", "/v2/del/manifests/v1").send().status, 404);
    assert_eq!(s.req("GET", "/v2/del/manifests/v2").send().status, 200);
    assert_eq!(
        s.req("GET", &format!("/v2/del/manifests/{d}"))
            .send()
            .status,
        200
    );
    // Deleting by digest removes the manifest and every tag pointing at it.
    assert_eq!(
        s.req("DELETE", &format!("/v2/del/manifests/{d}"))
            .send()
            .status,
        202
    );
    assert_eq!(
        s.req("GET", &format!("/v2/del/manifests/{d}"))
            .send()
            .status,
        404
    );
    assert_eq!(s.req("GET", "/v2/del/manifests/v2").send().status, 404);
    let r = s.req("GET", "/v2/del/tags/list").send();
    assert_eq!(r.json()["tags"], serde_json::json!([]));
    let r = s.req("DELETE", &format!("/v2/del/manifests/{d}")).send();
    assert_eq!((r.status, r.code().as_str()), (404, "MANIFEST_UNKNOWN"));
    let r = s.req("DELETE", "/v2/del/manifests/nope").send();
    assert_eq!((r.status, r.code().as_str()), (404, "MANIFEST_UNKNOWN"));
}

#[test]
fn tags_list_pagination() {
    let (_d, s) = server();
    let (m, _) = push_image(&s, "p", "b", "x");
    for t in ["a", "c", "B", "d"] {
        let r = s
            .req("PUT", &format!("/v2/p/manifests/{t}"))
            .header("Content-Type", OCI_MANIFEST)
            .body(m.clone())
            .send();
        assert_eq!(r.status, 201);
    }
    let tags = |q: &str| s.req("GET", &format!("/v2/p/tags/list{q}")).send();
    let r = tags("");
    assert_eq!(
        r.json(),
        serde_json::json!({"name": "p", "tags": ["B", "a", "b", "c", "d"]})
    );
    assert_eq!(r.header("Link"), None);
    let r = tags("?n=2");
    assert_eq!(r.json()["tags"], serde_json::json!(["B", "a"]));
    let link = r.header("Link").unwrap().to_owned();
    assert_eq!(link, "</v2/p/tags/list?n=2&last=a>; rel=\"next\"");
    let next = link
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_owned();
    let r = s.req("GET", &next).send();
    assert_eq!(r.json()["tags"], serde_json::json!(["b", "c"]));
    let r = tags("?n=2&last=c");
    assert_eq!(r.json()["tags"], serde_json::json!(["d"]));
    assert_eq!(r.header("Link"), None, "no next page after the last one");
    let r = tags("?n=1&last=d");
    assert_eq!(r.json()["tags"], serde_json::json!([]));
    let r = tags("?last=b");
    assert_eq!(r.json()["tags"], serde_json::json!(["c", "d"]));
    let r = tags("?n=5");
    assert_eq!(
        (r.json()["tags"].as_array().unwrap().len(), r.header("Link")),
        (5, None)
    );
    let r = tags("?n=0");
    assert_eq!(r.json()["tags"], serde_json::json!([]));
    let r = tags("?n=-1");
    assert_eq!(r.status, 400);
    let r = tags("?n=abc");
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "PAGINATION_NUMBER_INVALID")
    );
    let r = s.req("GET", "/v2/unknown/tags/list").send();
    assert_eq!((r.status, r.code().as_str()), (404, "NAME_UNKNOWN"));
}

#[test]
fn catalog_pagination() {
    let (_d, s) = server();
    for repo in ["b", "a/x", "a", "c/d/e"] {
        push_blob(&s, repo, b"x");
    }
    let r = s.req("GET", "/v2/_catalog").send();
    assert_eq!(
        r.json(),
        serde_json::json!({"repositories": ["a", "a/x", "b", "c/d/e"]})
    );
    let r = s.req("GET", "/v2/_catalog?n=2").send();
    assert_eq!(r.json()["repositories"], serde_json::json!(["a", "a/x"]));
    assert_eq!(
        r.header("Link"),
        Some("</v2/_catalog?n=2&last=a%2Fx>; rel=\"next\"")
    );
    let r = s.req("GET", "/v2/_catalog?n=2&last=a%2Fx").send();
    assert_eq!(r.json()["repositories"], serde_json::json!(["b", "c/d/e"]));
    assert_eq!(r.header("Link"), None);
}

#[test]
fn referrers_subject_and_artifact_type_filter() {
    let (_d, s) = server();
    let (m, subject) = push_image(&s, "ref", "v1", "base");
    let empty = push_blob(&s, "ref", b"{}");
    let layer = push_blob(&s, "ref", b"signature bytes");
    let artifact = |at: &str, note: &str| {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": at,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.to_string(), "size": 2},
            "layers": [{"mediaType": "application/octet-stream", "digest": layer.to_string(), "size": 15}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject.to_string(), "size": m.len()},
            "annotations": {"note": note}
        })).unwrap()
    };
    let sig = artifact("application/vnd.example.sig", "s");
    let sbom = artifact("application/vnd.example.sbom+json", "b");
    for a in [&sig, &sbom] {
        let d = sha256(a);
        let r = s
            .req("PUT", &format!("/v2/ref/manifests/{d}"))
            .header("Content-Type", OCI_MANIFEST)
            .body(a.clone())
            .send();
        assert_eq!(r.status, 201, "{}", r.text());
        assert_eq!(r.header("OCI-Subject"), Some(subject.to_string().as_str()));
    }
    let r = s.req("GET", &format!("/v2/ref/referrers/{subject}")).send();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some(OCI_INDEX));
    let j = r.json();
    assert_eq!(j["mediaType"], OCI_INDEX);
    let ms = j["manifests"].as_array().unwrap();
    assert_eq!(ms.len(), 2);
    let sig_entry = ms
        .iter()
        .find(|m| m["digest"] == sha256(&sig).to_string())
        .unwrap();
    assert_eq!(sig_entry["artifactType"], "application/vnd.example.sig");
    assert_eq!(sig_entry["annotations"]["note"], "s");
    assert_eq!(sig_entry["size"], sig.len());
    assert_eq!(sig_entry["mediaType"], OCI_MANIFEST);
    // artifactType filter (the `+` must arrive encoded as %2B).
    let r = s
        .req(
            "GET",
            &format!(
                "/v2/ref/referrers/{subject}?artifactType=application%2Fvnd.example.sbom%2Bjson"
            ),
        )
        .send();
    assert_eq!(r.header("OCI-Filters-Applied"), Some("artifactType"));
    let ms = r.json()["manifests"].as_array().unwrap().clone();
    assert_eq!(ms.len(), 1);
    assert_eq!(ms[0]["digest"], sha256(&sbom).to_string());
    let r = s
        .req(
            "GET",
            &format!("/v2/ref/referrers/{subject}?artifactType=none"),
        )
        .send();
    assert_eq!(r.json()["manifests"], serde_json::json!([]));
    // Unknown subjects have an empty list; bad digests are refused.
    let r = s
        .req("GET", &format!("/v2/ref/referrers/{}", sha256(b"nothing")))
        .send();
    assert_eq!(
        (r.status, r.json()["manifests"].clone()),
        (200, serde_json::json!([]))
    );
    let r = s.req("GET", "/v2/ref/referrers/sha256:nope").send();
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
    // A subject that is not in the registry is accepted (pushed before its subject).
    let ghost = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/x",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.to_string(), "size": 2},
        "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": sha256(b"later").to_string(), "size": 5}
    })).unwrap();
    let r = s
        .req("PUT", "/v2/ref/manifests/ghost")
        .header("Content-Type", OCI_MANIFEST)
        .body(ghost)
        .send();
    assert_eq!(r.status, 201);
    let r = s
        .req("GET", &format!("/v2/ref/referrers/{}", sha256(b"later")))
        .send();
    assert_eq!(r.json()["manifests"].as_array().unwrap().len(), 1);
    // Deleting a referrer removes it from the list.
    assert_eq!(
        s.req("DELETE", &format!("/v2/ref/manifests/{}", sha256(&sig)))
            .send()
            .status,
        202
    );
    let r = s.req("GET", &format!("/v2/ref/referrers/{subject}")).send();
    assert_eq!(r.json()["manifests"].as_array().unwrap().len(), 1);
}

#[test]
fn invalid_names_are_refused_everywhere() {
    let (_d, s) = server();
    for path in [
        "/v2/UPPER/tags/list",
        "/v2/a/../b/manifests/latest",
        "/v2/../../etc/manifests/passwd",
        "/v2/a//b/blobs/uploads/",
        "/v2/a/-b/manifests/x",
        "/v2/a__-b/tags/list",
        "/v2/a%2fb/manifests/x",
    ] {
        for m in ["GET", "PUT", "POST", "DELETE"] {
            let r = s.req(m, path).send();
            assert_eq!(
                (r.status, r.code().as_str()),
                (400, "NAME_INVALID"),
                "{m} {path}"
            );
        }
    }
    let long = format!("/v2/{}/tags/list", "a".repeat(256));
    assert_eq!(s.req("GET", &long).send().code(), "NAME_INVALID");
    assert!(files_under(&s.root.join("registry")).is_empty());
}

#[test]
fn read_only_mode_serves_but_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (m, d) = {
        let s = Server::start(dir.path(), &[]);
        push_image(&s, "ro", "v1", "x")
    };
    let s = Server::start(dir.path(), &["--read-only"]);
    assert_eq!(s.req("GET", "/v2/ro/manifests/v1").send().body, m);
    for (method, path) in [
        ("PUT", "/v2/ro/manifests/v2".to_owned()),
        ("POST", "/v2/ro/blobs/uploads/".to_owned()),
        ("DELETE", format!("/v2/ro/manifests/{d}")),
    ] {
        let r = s
            .req(method, &path)
            .header("Content-Type", OCI_MANIFEST)
            .body(m.clone())
            .send();
        assert_eq!(
            (r.status, r.code().as_str()),
            (405, "UNSUPPORTED"),
            "{method} {path}"
        );
    }
}

#[test]
fn restart_serves_everything_committed_and_sigterm_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path(), &[]);
    let (m, _) = push_image(&s, "keep", "v1", "k");
    let status = s.terminate();
    assert!(status.success(), "exit status after SIGTERM: {status}");
    let s = Server::start(dir.path(), &[]);
    assert_eq!(s.req("GET", "/v2/keep/manifests/v1").send().body, m);
}

#[test]
fn metrics_count_requests_and_bytes() {
    let (_d, s) = server();
    push_image(&s, "met", "v1", "m");
    s.req("GET", "/v2/met/manifests/v1").send();
    s.req("GET", "/v2/met/manifests/nope").send();
    let r = s.req("GET", "/metrics").send();
    assert_eq!(r.status, 200);
    let t = r.text();
    assert!(
        t.contains(
            "berth_registry_requests_total{route=\"manifest\",method=\"GET\",status=\"200\"} 1"
        ),
        "{t}"
    );
    assert!(
        t.contains(
            "berth_registry_requests_total{route=\"manifest\",method=\"GET\",status=\"404\"} 1"
        ),
        "{t}"
    );
    assert!(
        t.contains("berth_registry_upload_duration_seconds_count 2"),
        "{t}"
    );
    assert!(!t.contains("berth_registry_bytes_received_total 0"), "{t}");
}

#[test]
fn slow_clients_are_cut_off() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["--io-timeout-secs", "1"]);
    // Headers that never finish.
    let start = std::time::Instant::now();
    let mut c = std::net::TcpStream::connect(&s.addr).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    c.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut buf = Vec::new();
    let _ = c.read_to_end(&mut buf);
    assert!(
        start.elapsed().as_secs() < 10,
        "connection held {:?}",
        start.elapsed()
    );
    // A body that stalls.
    let start = std::time::Instant::now();
    let mut c = std::net::TcpStream::connect(&s.addr).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let d = sha256(b"0123456789");
    c.write_all(format!("POST /v2/slow/blobs/uploads/?digest={d} HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01").as_bytes()).unwrap();
    let mut buf = Vec::new();
    let _ = c.read_to_end(&mut buf);
    assert!(
        start.elapsed().as_secs() < 10,
        "connection held {:?}",
        start.elapsed()
    );
    let r = parse_response(&buf, false);
    assert_eq!(r.status, 408);
    // The server still serves others.
    assert_eq!(s.req("GET", "/v2/").send().status, 200);
}

#[test]
fn http2_cleartext_and_tls_with_alpn() {
    use std::process::Command;
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{http_version}",
            ])
            .args(args)
            .output()
            .expect("curl is installed");
        assert!(
            out.status.success(),
            "curl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let (_d, s) = server();
    let url = format!("http://{}/v2/", s.addr);
    assert_eq!(curl(&["--http2-prior-knowledge", &url]), "200 2");
    assert_eq!(curl(&[&url]), "200 1.1");
    // TLS with a throwaway self-signed certificate.
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root = tempfile::tempdir().unwrap();
    let t = Server::start(
        root.path(),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let url = format!("https://{}/v2/", t.addr);
    let ca = cert.to_str().unwrap();
    assert_eq!(curl(&["--cacert", ca, &url]), "200 2", "ALPN picks h2");
    assert_eq!(curl(&["--cacert", ca, "--http1.1", &url]), "200 1.1");
    // A client that never finishes its handshake does not block others.
    let _idle = std::net::TcpStream::connect(&t.addr).unwrap();
    assert_eq!(curl(&["--cacert", ca, &url]), "200 2");
}

#[test]
fn corrupt_blobs_and_manifests_are_never_served() {
    let (_d, s) = server();
    let (m, md) = push_image(&s, "rot", "v1", "r");
    let small = push_blob(&s, "rot", b"small blob");
    let big_data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 241) as u8).collect();
    let big = push_blob(&s, "rot", &big_data);
    let flip = |d: &berth_oci::Digest| {
        let p = s
            .root
            .join("blobs")
            .join(d.algorithm().as_str())
            .join(d.hex());
        let mut b = std::fs::read(&p).unwrap();
        let last = b.len() - 1;
        b[last] ^= 1;
        std::fs::write(&p, b).unwrap();
    };
    // Read both once (so they are verified and remembered), then rot them:
    // a rewritten file is verified again.
    assert_eq!(
        s.req("GET", &format!("/v2/rot/blobs/{small}"))
            .send()
            .status,
        200
    );
    assert!(s.req("GET", &format!("/v2/rot/blobs/{big}")).send().body == big_data);
    std::thread::sleep(std::time::Duration::from_millis(50));
    flip(&small);
    flip(&big);
    let mut bad = m.clone();
    let last = bad.len() - 1;
    bad[last] = b' ';
    std::fs::write(s.root.join("blobs/sha256").join(md.hex()), &bad).unwrap();
    let r = s.req("GET", &format!("/v2/rot/blobs/{small}")).send();
    assert_eq!(r.status, 500);
    assert!(!r.text().contains("small blob"));
    let r = s.req("GET", "/v2/rot/manifests/v1").send();
    assert_eq!(r.status, 500);
    // A large blob is streamed; the stream is cut before its last byte.
    let r = s.req("GET", &format!("/v2/rot/blobs/{big}")).send();
    assert!(
        r.body.len() < big_data.len(),
        "a corrupt blob was served whole"
    );
    // Range reads cannot be verified and are served as stored.
    let r = s
        .req("GET", &format!("/v2/rot/blobs/{big}"))
        .header("Range", "bytes=0-9")
        .send();
    assert_eq!((r.status, r.body.as_slice()), (206, &big_data[..10]));
}

#[test]
fn absurd_sizes_are_refused_without_buffering() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        dir.path(),
        &["--max-blob-bytes", "1000", "--max-manifest-bytes", "2000"],
    );
    let data = vec![1u8; 2000];
    let d = sha256(&data);
    let r = s
        .req("POST", &format!("/v2/z/blobs/uploads/?digest={d}"))
        .body(data.clone())
        .send();
    assert_eq!((r.status, r.code().as_str()), (413, "SIZE_INVALID"));
    // Announced sizes far beyond anything: refused before a byte is read.
    let r = s
        .req("POST", &format!("/v2/z/blobs/uploads/?digest={d}"))
        .send_raw(Some(1 << 50), false);
    assert_eq!(r.status, 413);
    // u64::MAX does not even parse as a length (HTTP layer: a 4xx).
    let r = s
        .req("POST", &format!("/v2/z/blobs/uploads/?digest={d}"))
        .send_raw(Some(usize::MAX), false);
    assert!((400..500).contains(&r.status), "{}", r.status);
    let r = s
        .req("PUT", "/v2/z/manifests/t")
        .header("Content-Type", OCI_MANIFEST)
        .send_raw(Some(1 << 40), false);
    assert_eq!(r.status, 413);
    // A session cannot grow past the limit either.
    let r = s.req("POST", "/v2/z/blobs/uploads/").send();
    let loc = r.header("Location").unwrap().to_owned();
    assert_eq!(s.req("PATCH", &loc).body(&data[..800]).send().status, 202);
    let r = s.req("PATCH", &loc).body(&data[..800]).send();
    assert_eq!(r.status, 413);
    assert_eq!(files_under(&dir.path().join("blobs")), Vec::<String>::new());
    // Non-numeric Content-Length is a protocol error, not a crash.
    let r = s
        .req("POST", "/v2/z/blobs/uploads/")
        .header("Content-Length", "lots")
        .send_raw(None, true);
    assert_eq!(r.status, 400);
    assert_eq!(s.req("GET", "/v2/").send().status, 200);
}
