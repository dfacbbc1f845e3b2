//! `berth dive --ci` and `--json` on images made by `berth import` and
//! `berth load`, and on archives read directly. Expected numbers are worked
//! out by hand in `dive_util::four_layers`.

mod common;
mod dive_util;

use common::{berth, fails, ok, stderr};
use dive_util::*;

/// A store with the four-layer image loaded as `multi:1`; also returns the archive.
fn store_with_four_layers() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("multi.tar");
    write_docker_archive(&archive, "multi:1", &four_layers(), &FOUR_COMMANDS);
    let root = dir.path().join("store");
    ok(berth(&root).args(["load", "-i"]).arg(&archive));
    (dir, archive)
}

fn read_json(path: &std::path::Path) -> serde_json::Value {
    common::json(&std::fs::read_to_string(path).unwrap())
}

#[test]
fn ci_fails_with_dive_defaults_and_reports_both_metric_sets() {
    let (dir, _) = store_with_four_layers();
    let root = dir.path().join("store");
    let json = dir.path().join("analysis.json");
    let out = berth(&root)
        .current_dir(dir.path())
        .args(["dive", "--ci", "multi:1", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", stderr(&out));
    assert!(text.contains("efficiency: 81.2500 %"), "{text}");
    assert!(text.contains("wastedBytes: 6000 bytes (6.0 kB)"), "{text}");
    assert!(text.contains("userWastedPercent: 200.0000 %"), "{text}");
    assert!(text.contains("wastedBytes: 8000 bytes (8.0 kB)"), "{text}");
    assert!(text.contains("efficiency: 27.2727 %"), "{text}");
    assert!(
        text.contains("FAIL: lowestEfficiency: image efficiency is too low (efficiency=0.8125 < threshold=0.9)"),
        "{text}"
    );
    assert!(text.contains("FAIL: highestUserWastedPercent"), "{text}");
    assert!(
        text.contains("SKIP: highestWastedBytes: rule disabled"),
        "{text}"
    );
    assert!(
        text.contains("Result:FAIL [Total:7] [Passed:0] [Failed:2] [Warn:0] [Skipped:5]"),
        "{text}"
    );
    // dive's inefficient files, largest first.
    let files = text.split("Inefficient Files:").nth(1).unwrap();
    let first = files.lines().nth(2).unwrap();
    assert!(
        first.contains("2") && first.contains("4.0 kB") && first.ends_with("/bin/app"),
        "{first}"
    );

    let doc = read_json(&json);
    assert_eq!(doc["image"]["efficiencyScore"], 0.8125);
    assert_eq!(doc["image"]["inefficientBytes"], 6000);
    assert_eq!(doc["image"]["sizeBytes"], 11000);
    assert_eq!(doc["image"]["fileReference"][0]["file"], "/bin/app");
    assert_eq!(doc["image"]["fileReference"][0]["sizeBytes"], 4000);
    assert_eq!(doc["image"]["fileReference"][1]["file"], "/etc/conf");
    let sizes: Vec<u64> = doc["layer"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["sizeBytes"].as_u64().unwrap())
        .collect();
    assert_eq!(sizes, [8000, 1000, 2000, 0]);
    assert_eq!(doc["layer"][3]["command"], "RUN rm -rf /usr/lib");
    let b = &doc["analysis"]["berth"];
    assert_eq!(b["total_bytes"], 11000);
    assert_eq!(b["wasted_bytes"], 8000);
    assert_eq!(b["final_bytes"], 3000);
    assert_eq!(b["duplicate_bytes"], 1000);
    assert_eq!(b["metadata_only_bytes"], 2000);
    assert_eq!(b["deleted_bytes"], 5000);
    assert_eq!(b["user_bytes"], 3000);
    assert_eq!(b["user_wasted_bytes"], 8000);
    assert!(close(b["efficiency"].as_f64().unwrap(), 3.0 / 11.0));
    let top = &doc["analysis"]["waste"][0];
    assert_eq!(top["path"], "/usr/lib");
    assert_eq!(top["bytes"], 5000);
    assert_eq!(top["reason"], "deleted-dir");
    assert_eq!(top["by_layer"], 3);
    assert_eq!(doc["analysis"]["waste"][1]["reason"], "metadata-only");
    assert_eq!(doc["analysis"]["waste"][1]["change"]["mode"], true);
    assert_eq!(doc["ci"]["pass"], false);
}

#[test]
fn dive_ci_file_and_flags_set_the_rules() {
    let (dir, _) = store_with_four_layers();
    let root = dir.path().join("store");
    // .dive-ci in the working directory, as dive reads it.
    std::fs::write(
        dir.path().join(".dive-ci"),
        "rules:\n  lowestEfficiency: 0.8\n  highestWastedBytes: 6kB\n  highestUserWastedPercent: disabled\n",
    )
    .unwrap();
    let text = ok(berth(&root)
        .current_dir(dir.path())
        .args(["dive", "--ci", "multi:1"]));
    assert!(text.contains("PASS: lowestEfficiency"), "{text}");
    assert!(text.contains("PASS: highestWastedBytes"), "{text}");
    assert!(
        text.contains("Result:PASS [Total:7] [Passed:2] [Failed:0] [Warn:0] [Skipped:5]"),
        "{text}"
    );

    // A flag overrides the file; 5999 bytes is one too few.
    let out = fails(berth(&root).current_dir(dir.path()).args([
        "dive",
        "--ci",
        "multi:1",
        "--highestWastedBytes",
        "5999",
    ]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains(
        "FAIL: highestWastedBytes: too many bytes wasted (wasted-bytes=6000 > threshold=5999)"
    ));

    // berth's rules, from another file.
    let cfg = dir.path().join("strict.yaml");
    std::fs::write(
        &cfg,
        "rules:\n  lowestEfficiency: disabled\n  highestUserWastedPercent: disabled\n  berthLowestEfficiency: 0.5\n  berthHighestMetadataOnlyBytes: 1kB\n",
    )
    .unwrap();
    let out = fails(
        berth(&root)
            .args(["dive", "--ci", "multi:1", "--ci-config"])
            .arg(&cfg),
    );
    let text = stdout(&out);
    assert!(text.contains("FAIL: berthLowestEfficiency"), "{text}");
    assert!(
        text.contains("FAIL: berthHighestMetadataOnlyBytes: too many bytes copied only to change mode or owner (metadata-only-bytes=2000 > threshold=1000)"),
        "{text}"
    );

    // Out of range: misconfigured, exit 1.
    let out = fails(berth(&root).current_dir(dir.path()).args([
        "dive",
        "--ci",
        "multi:1",
        "--lowest-efficiency",
        "2",
    ]));
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("MISCONFIGURED: lowestEfficiency"), "{text}");
    assert!(text.contains("CI Misconfigured"), "{text}");

    // An explicit config file that does not exist is an error.
    let out = fails(berth(&root).args([
        "dive",
        "--ci",
        "multi:1",
        "--ci-config",
        "/nonexistent/.dive-ci",
    ]));
    assert!(stderr(&out).contains("/nonexistent/.dive-ci"));
}

#[test]
fn imported_single_layer_image_passes_and_nan_user_waste_passes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let tarball = dir.path().join("rootfs.tar");
    std::fs::write(
        &tarball,
        layer_tar(&[
            Ent::Dir("bin/"),
            Ent::File("bin/tool", &[7u8; 300], 0o755),
            Ent::File("README", b"hello\n", 0o644),
        ]),
    )
    .unwrap();
    ok(berth(&root).arg("import").arg(&tarball).arg("single:1"));
    let json = dir.path().join("a.json");
    let text = ok(berth(&root)
        .current_dir(dir.path())
        .args(["dive", "--ci", "single:1", "--json"])
        .arg(&json));
    assert!(text.contains("efficiency: 100.0000 %"), "{text}");
    // One layer: dive divides 0 by 0 user bytes; NaN passes its rule.
    assert!(text.contains("userWastedPercent: NaN %"), "{text}");
    assert!(text.contains("Result:PASS"), "{text}");
    let doc = read_json(&json);
    assert_eq!(doc["image"]["sizeBytes"], 306);
    assert_eq!(doc["layer"].as_array().unwrap().len(), 1);
    assert!(doc["analysis"]["dive"]["user_wasted_percent"].is_null());
    assert_eq!(doc["analysis"]["berth"]["wasted_bytes"], 0);
}

/// Reads the `analysis` section of `berth dive --json -` for an image.
fn analysis_of(root: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let text = ok(berth(root).args(["dive", "--json", "-"]).args(args));
    common::json(&text)
}

#[test]
fn every_source_gives_the_same_analysis() {
    let (dir, archive) = store_with_four_layers();
    let root = dir.path().join("store");
    let from_store = analysis_of(&root, &["multi:1"]);
    let from_docker = analysis_of(
        &root,
        &["--source", "docker-archive", archive.to_str().unwrap()],
    );
    // dive's URL form.
    let from_url = analysis_of(&root, &[&format!("docker-archive://{}", archive.display())]);
    let oci = dir.path().join("multi-oci.tar");
    ok(berth(&root)
        .args(["save", "--format", "oci", "-o"])
        .arg(&oci)
        .arg("multi:1"));
    let from_oci = analysis_of(&root, &["--source", "oci-archive", oci.to_str().unwrap()]);
    // Unpack the OCI archive into a layout directory.
    let layout = dir.path().join("layout");
    tar::Archive::new(std::fs::File::open(&oci).unwrap())
        .unpack(&layout)
        .unwrap();
    let from_dir = analysis_of(&root, &["--source", "oci-dir", layout.to_str().unwrap()]);
    for doc in [&from_store, &from_docker, &from_url, &from_oci, &from_dir] {
        assert_eq!(doc["image"], from_store["image"]);
        assert_eq!(doc["analysis"]["berth"], from_store["analysis"]["berth"]);
        assert_eq!(doc["analysis"]["waste"], from_store["analysis"]["waste"]);
        let sizes: Vec<u64> = doc["layer"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["sizeBytes"].as_u64().unwrap())
            .collect();
        assert_eq!(sizes, [8000, 1000, 2000, 0]);
    }
    assert_eq!(from_store["image"]["inefficientBytes"], 6000);
    // The store's layers are gzip blobs with their digests and commands.
    assert!(
        from_store["analysis"]["layers"][0]["compressed_size"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(
        from_store["analysis"]["layers"][2]["created_by"],
        "RUN chmod +x /bin/app"
    );
}

#[test]
fn unreachable_registry_is_a_clear_error_and_missing_images_fail() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1 (the registry source is tested in dive_registry.rs).
    let out = fails(berth(dir.path()).args([
        "dive",
        "--ci",
        "--source",
        "registry",
        "127.0.0.1:1/nothing:1",
    ]));
    assert!(
        stderr(&out).contains("reading 127.0.0.1:1/nothing:1 from its registry"),
        "{}",
        stderr(&out)
    );
    let out = fails(berth(dir.path()).args(["dive", "--ci", "nosuch:1"]));
    assert!(stderr(&out).contains("no such image"), "{}", stderr(&out));
    let out = fails(berth(dir.path()).args([
        "dive",
        "--ci",
        "--source",
        "docker-archive",
        "/nonexistent.tar",
    ]));
    assert!(
        stderr(&out).contains("/nonexistent.tar"),
        "{}",
        stderr(&out)
    );
}

/// Writes a two-platform OCI layout by hand: linux/amd64 ships /amd64 (10
/// bytes), linux/arm64 ships /arm64 (20 bytes).
fn write_multi_platform_layout(dir: &std::path::Path) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| -> (String, usize) {
        let hex = sha256_hex(data);
        std::fs::write(blobs.join(&hex), data).unwrap();
        (format!("sha256:{hex}"), data.len())
    };
    let mut entries = Vec::new();
    for (arch, size) in [("amd64", 10usize), ("arm64", 20)] {
        let layer = layer_tar(&[Ent::File(arch, &vec![1u8; size], 0o644)]);
        let (ld, ls) = put(&layer);
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": arch, "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [ld]},
            "history": [{"created_by": format!("COPY {arch} /")}],
        }))
        .unwrap();
        let (cd, cs) = put(&config);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": ls}],
        }))
        .unwrap();
        let (md, ms) = put(&manifest);
        entries.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md, "size": ms,
            "platform": {"os": "linux", "architecture": arch},
        }));
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    }))
    .unwrap();
    let (id, is) = put(&index);
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": id, "size": is}],
        }))
        .unwrap(),
    )
    .unwrap();
}

#[test]
fn platform_picks_one_manifest_of_a_multi_platform_image() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    write_multi_platform_layout(&layout);
    let root = dir.path().join("store");
    for (platform, size, command) in [
        ("linux/arm64", 20, "COPY arm64 /"),
        ("linux/amd64", 10, "COPY amd64 /"),
    ] {
        let doc = analysis_of(
            &root,
            &[
                "--source",
                "oci-dir",
                layout.to_str().unwrap(),
                "--platform",
                platform,
            ],
        );
        assert_eq!(doc["layer"][0]["sizeBytes"], size, "{platform}");
        assert_eq!(doc["layer"][0]["command"], command, "{platform}");
    }
    let out = fails(berth(&root).args([
        "dive",
        "--ci",
        "--source",
        "oci-dir",
        layout.to_str().unwrap(),
        "--platform",
        "linux/s390x",
    ]));
    assert!(
        stderr(&out).contains("no manifest for platform linux/s390x"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn user_layers_start_after_the_base_named_by_annotations() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let base_layers = vec![
        layer_tar(&[Ent::File("a", &[1; 100], 0o644)]),
        layer_tar(&[Ent::File("b", &[2; 50], 0o644), Ent::Whiteout(".wh.a")]),
    ];
    let base_tar = dir.path().join("base.tar");
    let base_digest = write_oci_archive(
        &base_tar,
        "docker.io/library/base:1",
        &base_layers,
        serde_json::json!({}),
    );
    ok(berth(&root).args(["load", "-i"]).arg(&base_tar));
    let mut app_layers = base_layers.clone();
    app_layers.push(layer_tar(&[
        Ent::File("c", &[3; 20], 0o644),
        Ent::Whiteout(".wh.b"),
    ]));
    let app_tar = dir.path().join("app.tar");
    write_oci_archive(
        &app_tar,
        "docker.io/library/app:1",
        &app_layers,
        serde_json::json!({
            "org.opencontainers.image.base.name": "docker.io/library/base:1",
            "org.opencontainers.image.base.digest": base_digest,
        }),
    );
    ok(berth(&root).args(["load", "-i"]).arg(&app_tar));
    let doc = analysis_of(&root, &["app:1"]);
    let b = &doc["analysis"]["berth"];
    // Layers 0 and 1 are the base's: its own waste (a, 100 bytes, hidden by
    // layer 1) is not the user's; b (50, hidden by layer 2) is.
    assert_eq!(b["user_layers"]["first"], 2, "{b}");
    assert_eq!(b["user_layers"]["from"]["kind"], "base-annotations");
    assert_eq!(b["user_layers"]["from"]["name"], "docker.io/library/base:1");
    assert_eq!(b["wasted_bytes"], 150);
    assert_eq!(b["user_bytes"], 20);
    assert_eq!(b["user_wasted_bytes"], 50);
    assert!(close(b["user_wasted_percent"].as_f64().unwrap(), 2.5));
    // dive keeps "all but the first layer": 50 + 20.
    assert_eq!(doc["analysis"]["dive"]["user_size_bytes"], 70);
    // Without the base in the store, berth falls back to dive's rule.
    let other = dir.path().join("other");
    ok(berth(&other).args(["load", "-i"]).arg(&app_tar));
    let doc = analysis_of(&other, &["app:1"]);
    assert_eq!(doc["analysis"]["berth"]["user_layers"]["first"], 1);
    assert_eq!(
        doc["analysis"]["berth"]["user_layers"]["from"]["kind"],
        "all-but-first"
    );
    // Without a terminal and without --ci or --json, the report is printed.
    let text = ok(berth(&root).args(["dive", "app:1"]));
    assert!(
        text.contains("dive metrics:")
            && text.contains("user layers: layers 2.. after base docker.io/library/base:1"),
        "{text}"
    );
}

#[test]
fn compressed_archives_zstd_layers_and_layer_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    // A gzip-compressed docker-archive (`docker save | gzip`).
    let plain = dir.path().join("multi.tar");
    write_docker_archive(&plain, "multi:1", &four_layers(), &FOUR_COMMANDS);
    let gz = dir.path().join("multi.tar.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    std::io::copy(&mut std::fs::File::open(&plain).unwrap(), &mut enc).unwrap();
    enc.finish().unwrap();
    let doc = analysis_of(&root, &["--source", "docker-archive", gz.to_str().unwrap()]);
    assert_eq!(doc["image"]["inefficientBytes"], 6000);
    assert_eq!(doc["analysis"]["berth"]["wasted_bytes"], 8000);

    // A zstd layer in the store.
    let tarball = dir.path().join("rootfs.tar");
    std::fs::write(&tarball, layer_tar(&[Ent::File("z", &[9; 1234], 0o644)])).unwrap();
    ok(berth(&root)
        .args(["import", "--compression", "zstd"])
        .arg(&tarball)
        .arg("zstd:1"));
    let doc = analysis_of(&root, &["zstd:1"]);
    assert_eq!(doc["image"]["sizeBytes"], 1234);
    assert!(
        doc["analysis"]["layers"][0]["media_type"]
            .as_str()
            .unwrap()
            .ends_with("zstd")
    );

    // Older `docker save` writes a layer used twice once, plus a symlink.
    let layer = layer_tar(&[Ent::File("f", &[1; 100], 0o644)]);
    let diff_id = format!("sha256:{}", sha256_hex(&layer));
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": berth_oci::Platform::host().architecture, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id, diff_id]},
    }))
    .unwrap();
    let archive = dir.path().join("twice.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&archive).unwrap());
    let mut h = tar::Header::new_gnu();
    h.set_size(layer.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, "aaa/layer.tar", &layer[..]).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "bbb/layer.tar", "../aaa/layer.tar")
        .unwrap();
    for (name, data) in [
        ("config.json", config),
        (
            "manifest.json",
            serde_json::to_vec(&serde_json::json!([{
                "Config": "config.json", "RepoTags": ["twice:1"],
                "Layers": ["aaa/layer.tar", "bbb/layer.tar"],
            }]))
            .unwrap(),
        ),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    b.finish().unwrap();
    let doc = analysis_of(
        &root,
        &["--source", "docker-archive", archive.to_str().unwrap()],
    );
    // /f twice: dive wastes 200, berth 100 (a duplicate).
    assert_eq!(doc["image"]["inefficientBytes"], 200);
    assert_eq!(doc["analysis"]["berth"]["duplicate_bytes"], 100);
    assert_eq!(doc["layer"].as_array().unwrap().len(), 2);
}
