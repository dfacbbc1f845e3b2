//! `berth build --cache-to / --cache-from`: the build cache exported from
//! one store makes a build in a fresh store (another CI runner) fully
//! cached with the same image id, through a directory (an OCI layout) and
//! through a real registry (`berth registry serve` on 127.0.0.1). A
//! tampered blob is refused; mode=min and mode=max export different steps.

mod build_util;
mod common;
mod registry_support;

use std::path::Path;
use std::process::Command;

use build_util::{Build, Ctx, build_cmd, build_fails};
use common::{berth, busybox_tarball, ok, sha256_hex};
use registry_support::Server;

/// berth's and Docker's configuration isolated in a temporary directory.
struct Config(tempfile::TempDir);

impl Config {
    fn new() -> Config {
        Config(tempfile::tempdir().unwrap())
    }

    fn cmd(&self, root: &Path, ctx: &Ctx, extra: &[&str]) -> Command {
        let mut c = build_cmd(root, ctx.path(), extra);
        c.env("BERTH_CONFIG", self.0.path().join("berth"))
            .env("DOCKER_CONFIG", self.0.path().join("docker"))
            .env("HOME", self.0.path());
        c
    }

    /// Builds, asserting success.
    fn build(&self, root: &Path, ctx: &Ctx, extra: &[&str]) -> Build {
        let out = self.cmd(root, ctx, extra).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "build {extra:?} failed:\n{stderr}");
        let iid = ctx.path().with_extension("iid");
        let id = std::fs::read_to_string(&iid).unwrap();
        std::fs::remove_file(iid).unwrap();
        Build {
            id,
            stderr,
            steps: Default::default(),
            cached: Default::default(),
        }
    }
}

/// A fresh store (another runner) with the same busybox image as every
/// other: imported with a fixed creation time, so its manifest digest (the
/// base's cache input) is the same everywhere, as a pulled base's is.
fn store_with_busybox() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ok(berth(dir.path())
        .arg("import")
        .arg(busybox_tarball())
        .arg("busybox:latest")
        .args(["--change", r#"CMD ["sh"]"#])
        .env("SOURCE_DATE_EPOCH", "1700000000"));
    dir
}

fn app() -> Ctx {
    let ctx = Ctx::new("FROM busybox\nCOPY a.txt /a.txt\nWORKDIR /app\nCOPY b.txt ./b.txt\n");
    ctx.write("a.txt", "alpha\n").write("b.txt", "beta\n");
    ctx
}

fn blob(dir: &Path, digest: &str) -> std::path::PathBuf {
    let (alg, hex) = digest.split_once(':').unwrap();
    dir.join("blobs").join(alg).join(hex)
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The cache manifest and its config (the records) of an exported layout,
/// checked without berth: index.json → manifest → config, digests verified.
fn layout(dir: &Path) -> (serde_json::Value, serde_json::Value) {
    assert_eq!(
        read_json(&dir.join("oci-layout"))["imageLayoutVersion"],
        "1.0.0"
    );
    let index = read_json(&dir.join("index.json"));
    let desc = &index["manifests"][0];
    assert_eq!(desc["artifactType"], "application/vnd.berth.buildcache.v1");
    let get = |d: &serde_json::Value| {
        let digest = d["digest"].as_str().unwrap();
        let bytes = std::fs::read(blob(dir, digest)).unwrap();
        assert_eq!(format!("sha256:{}", sha256_hex(&bytes)), digest);
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
    };
    let manifest = get(desc);
    assert_eq!(
        manifest["artifactType"],
        "application/vnd.berth.buildcache.v1"
    );
    let config = get(&manifest["config"]);
    (manifest, config)
}

fn records(config: &serde_json::Value) -> &Vec<serde_json::Value> {
    config["records"].as_array().unwrap()
}

#[test]
fn local_cache_makes_a_fresh_store_fully_cached_with_the_same_image() {
    let cfg = Config::new();
    let ctx = app();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("cache");
    let a = store_with_busybox();
    let built = cfg.build(
        a.path(),
        &ctx,
        &["--cache-to", &format!("type=local,dest={}", dest.display())],
    );
    assert!(!built.fully_cached(), "{}", built.stderr);
    let (manifest, config) = layout(&dest);
    // Three layer steps; the layers are the two COPYs' and WORKDIR's.
    assert_eq!(records(&config).len(), 3, "{config}");
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3, "{manifest}");
    for l in layers {
        let d = l["digest"].as_str().unwrap();
        let bytes = std::fs::read(blob(&dest, d)).unwrap();
        assert_eq!(format!("sha256:{}", sha256_hex(&bytes)), d);
    }

    // Another runner: a fresh store with the same base.
    let b = store_with_busybox();
    let src = format!("type=local,src={}", dest.display());
    let again = cfg.build(b.path(), &ctx, &["--cache-from", &src]);
    assert!(again.fully_cached(), "{}", again.stderr);
    assert!(
        again.stderr.contains("3 records (3 new, 0 present)"),
        "{}",
        again.stderr
    );
    assert_eq!(again.id, built.id);
    // Without the import the same build in a fresh store is not cached.
    let c = store_with_busybox();
    let cold = cfg.build(c.path(), &ctx, &[]);
    assert!(!cold.fully_cached(), "{}", cold.stderr);
    // Importing again never overwrites: every record is already there.
    let third = cfg.build(b.path(), &ctx, &["--cache-from", &src]);
    assert!(
        third.stderr.contains("3 records (0 new, 3 present)"),
        "{}",
        third.stderr
    );
    assert_eq!(third.id, built.id);
    // A changed file misses (the imported cache is keyed by content).
    ctx.write("b.txt", "changed\n");
    let changed = cfg.build(b.path(), &ctx, &["--cache-from", &src]);
    assert!(!changed.fully_cached(), "{}", changed.stderr);
    assert!(
        changed.stderr.contains("2 of 3 layer steps cached"),
        "{}",
        changed.stderr
    );

    // A cache directory that does not exist is a warning, not an error.
    ctx.write("b.txt", "beta\n");
    missing_cache_warns(
        &cfg,
        &ctx,
        &format!("type=local,src={}", dir.path().join("nope").display()),
    );
}

/// A cache source that does not exist is a warning, not an error, and the
/// build runs uncached.
fn missing_cache_warns(cfg: &Config, ctx: &Ctx, src: &str) {
    let store = store_with_busybox();
    let warned = cfg.build(store.path(), ctx, &["--cache-from", src]);
    assert!(
        warned.stderr.contains("WARNING: no build cache found"),
        "{}",
        warned.stderr
    );
    assert!(!warned.fully_cached(), "{}", warned.stderr);
}

#[test]
fn registry_cache_round_trips_through_berth_registry_serve() {
    let cfg = Config::new();
    let reg = tempfile::tempdir().unwrap();
    let server = Server::start(reg.path(), &[]);
    let cache_ref = format!("{}/cache/app:buildcache", server.addr);
    let ctx = app();
    let a = store_with_busybox();
    let built = cfg.build(
        a.path(),
        &ctx,
        &["--cache-to", &format!("type=registry,ref={cache_ref}")],
    );
    assert!(
        built.stderr.contains("3 records, 3 layers"),
        "{}",
        built.stderr
    );
    // The registry holds the artifact manifest under the tag.
    let resp = server
        .req("GET", "/v2/cache/app/manifests/buildcache")
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send();
    assert_eq!(resp.status, 200);
    let manifest: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(
        manifest["artifactType"],
        "application/vnd.berth.buildcache.v1"
    );
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 3);

    let b = store_with_busybox();
    let again = cfg.build(
        b.path(),
        &ctx,
        &["--cache-from", &format!("type=registry,ref={cache_ref}")],
    );
    assert!(again.fully_cached(), "{}", again.stderr);
    assert_eq!(again.id, built.id);
    // Pushing again skips what the registry has; the manifest is the same.
    let again_out = cfg.build(
        b.path(),
        &ctx,
        &["--cache-to", &format!("type=registry,ref={cache_ref}")],
    );
    assert!(again_out.fully_cached());
    let resp2 = server
        .req("GET", "/v2/cache/app/manifests/buildcache")
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send();
    assert_eq!(resp2.body, resp.body);

    // A cache reference the registry does not have is a warning.
    missing_cache_warns(
        &cfg,
        &ctx,
        &format!("type=registry,ref={}/cache/none:nope", server.addr),
    );
}

#[test]
fn a_tampered_blob_is_refused_and_its_record_not_imported() {
    let cfg = Config::new();
    let ctx = app();
    let dir = tempfile::tempdir().unwrap();
    let a = store_with_busybox();
    cfg.build(
        a.path(),
        &ctx,
        &[
            "--cache-to",
            &format!("type=local,dest={}", dir.path().display()),
        ],
    );
    let (_, config) = layout(dir.path());
    // Tamper with one record's layer, keeping its size.
    let recs = records(&config);
    let with_layer: Vec<&serde_json::Value> =
        recs.iter().filter(|r| r["layer"].is_object()).collect();
    assert_eq!(with_layer.len(), 3);
    let victim = with_layer[0];
    let digest = victim["layer"]["digest"].as_str().unwrap();
    let path = blob(dir.path(), digest);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();

    let b = store_with_busybox();
    let src = format!("type=local,src={}", dir.path().display());
    let mut c = cfg.cmd(b.path(), &ctx, &["--cache-from", &src]);
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("refused"), "{err}");
    assert!(err.contains(digest), "{err}");
    assert!(err.contains("1 record(s) refused"), "{err}");
    // Nothing of the victim's record landed; the other records did.
    let key_file = |r: &serde_json::Value| {
        let (_, hex) = r["key"].as_str().unwrap().split_once(':').unwrap();
        b.path().join("buildcache").join(hex)
    };
    assert!(!key_file(victim).exists());
    assert!(!blob(b.path(), digest).exists());
    for r in recs.iter().filter(|r| r["key"] != victim["key"]) {
        assert!(key_file(r).exists(), "{r}");
        let d = r["layer"]["digest"].as_str().unwrap();
        assert!(blob(b.path(), d).exists(), "{r}");
    }
    // Still refused on a second try (the sound records are present now).
    let err = build_fails(b.path(), ctx.path(), &["--cache-from", &src]);
    assert!(err.contains("refused"), "{err}");
}

/// Writes `bytes` as a blob of the layout; returns its descriptor fields.
fn put_blob(dir: &Path, bytes: &[u8]) -> (String, usize) {
    let digest = format!("sha256:{}", sha256_hex(bytes));
    std::fs::write(blob(dir, &digest), bytes).unwrap();
    (digest, bytes.len())
}

/// Replaces the layout's config with `config` (manifest and index updated,
/// so that only the content is wrong).
fn rewrite_config(dir: &Path, config: &serde_json::Value) {
    let (mut manifest, _) = layout(dir);
    let (d, n) = put_blob(dir, &serde_json::to_vec(config).unwrap());
    manifest["config"]["digest"] = d.into();
    manifest["config"]["size"] = n.into();
    let (d, n) = put_blob(dir, &serde_json::to_vec(&manifest).unwrap());
    let mut index = read_json(&dir.join("index.json"));
    index["manifests"][0]["digest"] = d.into();
    index["manifests"][0]["size"] = n.into();
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

#[test]
fn a_corrupt_or_inconsistent_cache_document_imports_nothing() {
    let cfg = Config::new();
    let ctx = app();
    let dir = tempfile::tempdir().unwrap();
    let a = store_with_busybox();
    cfg.build(
        a.path(),
        &ctx,
        &[
            "--cache-to",
            &format!("type=local,dest={}", dir.path().display()),
        ],
    );
    let src = format!("type=local,src={}", dir.path().display());
    let (manifest, config) = layout(dir.path());
    let imported = |root: &Path| {
        std::fs::read_dir(root.join("buildcache"))
            .map(|d| d.count())
            .unwrap_or(0)
    };

    // A config whose bytes do not match the manifest's digest.
    let cpath = blob(dir.path(), manifest["config"]["digest"].as_str().unwrap());
    let good = std::fs::read(&cpath).unwrap();
    let mut bad = good.clone();
    let i = bad.iter().position(|&b| b == b'{').unwrap();
    bad[i] = b'[';
    std::fs::write(&cpath, &bad).unwrap();
    let b = store_with_busybox();
    let err = build_fails(b.path(), ctx.path(), &["--cache-from", &src]);
    assert!(err.contains("not a valid build cache"), "{err}");
    assert_eq!(imported(b.path()), 0);
    std::fs::write(&cpath, &good).unwrap();

    // A record with a layer but no diffID would build a wrong image.
    let mut broken = config.clone();
    let rec = broken["records"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|r| r["layer"].is_object())
        .unwrap();
    rec["diff_id"] = serde_json::Value::Null;
    rewrite_config(dir.path(), &broken);
    let err = build_fails(b.path(), ctx.path(), &["--cache-from", &src]);
    assert!(err.contains("but not both"), "{err}");
    assert_eq!(imported(b.path()), 0);

    // Records whose diff_ids are each other's: the layers' bytes are sound
    // (their digests match), but the images built from them would lie.
    let mut swapped = config.clone();
    let recs = swapped["records"].as_array_mut().unwrap();
    let with_layer: Vec<usize> = (0..recs.len())
        .filter(|&i| recs[i]["layer"].is_object())
        .collect();
    let (i, j) = (with_layer[0], with_layer[1]);
    let di = recs[i]["diff_id"].clone();
    recs[i]["diff_id"] = recs[j]["diff_id"].clone();
    recs[j]["diff_id"] = di;
    rewrite_config(dir.path(), &swapped);
    let c = store_with_busybox();
    let err = build_fails(c.path(), ctx.path(), &["--cache-from", &src]);
    assert!(err.contains("not to the record's diff_id"), "{err}");
    assert!(err.contains("2 record(s) refused"), "{err}");

    // Put right again, the same cache imports.
    rewrite_config(dir.path(), &config);
    let ok_build = cfg.build(b.path(), &ctx, &["--cache-from", &src]);
    assert!(ok_build.fully_cached(), "{}", ok_build.stderr);
}

#[test]
fn mode_max_exports_every_stage_and_mode_min_only_the_target_chain() {
    let cfg = Config::new();
    let ctx = Ctx::new(
        "FROM busybox AS build\nCOPY a.txt /a.txt\nCOPY b.txt /b.txt\n\
         FROM busybox\nCOPY --from=build /a.txt /x.txt\n",
    );
    ctx.write("a.txt", "alpha\n").write("b.txt", "beta\n");
    let dir = tempfile::tempdir().unwrap();
    let min = dir.path().join("min");
    let max = dir.path().join("max");
    let a = store_with_busybox();
    let built = cfg.build(
        a.path(),
        &ctx,
        &[
            "--cache-to",
            &format!("type=local,dest={}", min.display()),
            "--cache-to",
            &format!("type=local,dest={},mode=max", max.display()),
        ],
    );
    let (_, min_config) = layout(&min);
    let (_, max_config) = layout(&max);
    assert_eq!(records(&min_config).len(), 1, "{min_config}");
    assert_eq!(records(&max_config).len(), 3, "{max_config}");
    // The min record is among the max ones.
    assert!(records(&max_config).contains(&records(&min_config)[0]));

    // max: a fresh store is fully cached; min: only the target's step hits.
    let b = store_with_busybox();
    let from_max = cfg.build(
        b.path(),
        &ctx,
        &["--cache-from", &format!("type=local,src={}", max.display())],
    );
    assert!(from_max.fully_cached(), "{}", from_max.stderr);
    assert_eq!(from_max.id, built.id);
    let c = store_with_busybox();
    let from_min = cfg.build(
        c.path(),
        &ctx,
        &["--cache-from", &format!("type=local,src={}", min.display())],
    );
    assert!(
        from_min.stderr.contains("1 of 3 layer steps cached"),
        "{}",
        from_min.stderr
    );
    assert_eq!(from_min.id, built.id);
}
