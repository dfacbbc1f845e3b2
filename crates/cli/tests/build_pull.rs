//! `berth build` and registries: `FROM` (and `COPY --from`) pull a missing
//! image, `--pull` re-checks tags, `--push` and `--output type=registry`
//! push the result. The registry is berth's own `registry serve` on
//! 127.0.0.1; skopeo checks what landed there. berth's and Docker's
//! configuration are isolated in temporary directories.

mod build_util;
mod common;
mod registry_support;

use std::path::Path;
use std::process::{Command, Output};

use build_util::{Ctx, build_cmd};
use common::{berth, json, ok, store_with_busybox, tar_entries};
use registry_support::Server;

/// Empty berth and Docker configuration for the commands of one test.
struct Config(tempfile::TempDir);

impl Config {
    fn new() -> Config {
        Config(tempfile::tempdir().unwrap())
    }

    fn apply<'c>(&self, c: &'c mut Command) -> &'c mut Command {
        c.env("BERTH_CONFIG", self.0.path().join("berth"))
            .env("DOCKER_CONFIG", self.0.path().join("docker"))
            .env("HOME", self.0.path())
    }

    fn berth(&self, root: &Path) -> Command {
        let mut c = berth(root);
        self.apply(&mut c);
        c
    }

    /// Runs `berth build` (plain progress); returns the output.
    fn build(&self, root: &Path, ctx: &Ctx, extra: &[&str]) -> Output {
        let mut c = build_cmd(root, ctx.path(), extra);
        self.apply(&mut c).output().unwrap()
    }

    /// Builds, asserting success; returns (image id, stderr).
    fn build_ok(&self, root: &Path, ctx: &Ctx, extra: &[&str]) -> (String, String) {
        let out = self.build(root, ctx, extra);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "build {extra:?} failed:\n{err}");
        let iid = ctx.path().with_extension("iid");
        let id = std::fs::read_to_string(&iid).unwrap();
        std::fs::remove_file(iid).unwrap();
        (id, err)
    }
}

/// The manifest digest a name points at in a store.
fn digest_of(root: &Path, name: &str) -> String {
    json(&ok(berth(root).args(["inspect", name])))[0]["Descriptor"]["digest"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The manifest digest of `name` in its registry, as skopeo sees it.
fn remote_digest(name: &str) -> String {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{name}"))
        .output()
        .expect("skopeo is installed (apt-get install skopeo)");
    assert!(
        out.status.success(),
        "skopeo inspect {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!("sha256:{}", common::sha256_hex(&out.stdout))
}

/// Pushes the local image `local` of `src` to `dest`; returns its digest.
fn push(cfg: &Config, src: &Path, local: &str, dest: &str) -> String {
    ok(cfg.berth(src).args(["push", "-q", local, dest]))
        .trim()
        .to_owned()
}

/// The names of the files in a built image's final file system.
fn files_of(cfg: &Config, root: &Path, ctx: &Ctx, extra: &[&str]) -> Vec<String> {
    let tar = ctx.path().with_extension("tar");
    let dest = format!("type=tar,dest={}", tar.display());
    let mut args = extra.to_vec();
    args.extend(["-o", &dest]);
    cfg.build_ok(root, ctx, &args);
    tar_entries(&tar).into_iter().map(|(n, _)| n).collect()
}

#[test]
fn from_pulls_a_missing_base_and_rebuilds_offline_from_the_cache() {
    let cfg = Config::new();
    let reg = tempfile::tempdir().unwrap();
    let mut s = Server::start(reg.path(), &[]);
    let src = store_with_busybox();
    // The base sets an ENV that the Dockerfile below uses in a path.
    let with_env = Ctx::new("FROM busybox\nENV DEST=/from-env\n");
    cfg.build_ok(src.path(), &with_env, &["-t", "base:env"]);
    let base = format!("{}/lib/busybox:1", s.addr);
    let pushed = push(&cfg, src.path(), "base:env", &base);

    let fresh = tempfile::tempdir().unwrap();
    let ctx = Ctx::new(&format!("FROM {base}\nCOPY a.txt $DEST/a.txt\n"));
    ctx.write("a.txt", "hello\n");
    let tar = ctx.path().with_extension("tar");
    let out = format!("type=tar,dest={}", tar.display());
    let (id, err) = cfg.build_ok(fresh.path(), &ctx, &["-t", "app:1", "-o", &out]);
    assert!(err.contains("1: Pulling from"), "{err}");
    assert!(err.contains("Pull complete"), "{err}");
    // The plan saw the pulled base's ENV.
    let files: Vec<String> = tar_entries(&tar).into_iter().map(|(n, _)| n).collect();
    assert!(files.iter().any(|f| f == "from-env/a.txt"), "{files:?}");
    // The base is in the store under its name, with the pushed digest.
    assert_eq!(digest_of(fresh.path(), &base), pushed);
    ok(berth(fresh.path()).args(["system", "check"]));
    let v = json(&ok(berth(fresh.path()).args(["inspect", "app:1"])));
    assert_eq!(v[0]["RootFS"]["Layers"].as_array().unwrap().len(), 2);

    // Again: nothing pulled, everything cached, the same image.
    let (again, err) = cfg.build_ok(fresh.path(), &ctx, &["-t", "app:1"]);
    assert!(!err.contains("Pulling"), "{err}");
    assert!(err.contains("fully cached"), "{err}");
    assert_eq!(again, id);

    // `COPY --from=IMAGE` pulls the same way.
    let other = tempfile::tempdir().unwrap();
    let copy_ctx = Ctx::new(&format!(
        "FROM scratch\nCOPY --from={base} /bin/busybox /bb\n"
    ));
    let files = files_of(&cfg, other.path(), &copy_ctx, &[]);
    assert!(files.iter().any(|f| f == "bb"), "{files:?}");
    assert_eq!(digest_of(other.path(), &base), pushed);

    // The registry goes away: the rebuild needs no network...
    s.kill9();
    let (offline, err) = cfg.build_ok(fresh.path(), &ctx, &["-t", "app:1"]);
    assert!(err.contains("fully cached"), "{err}");
    assert_eq!(offline, id);
    // ... but a store without the base cannot build, and says why.
    let empty = tempfile::tempdir().unwrap();
    let out = cfg.build(empty.path(), &ctx, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("Dockerfile:1: pulling {base}")),
        "{err}"
    );
    assert!(err.contains("Connection refused"), "{err}");
}

#[test]
fn pull_flag_picks_up_a_base_whose_tag_moved() {
    let cfg = Config::new();
    let reg = tempfile::tempdir().unwrap();
    let s = Server::start(reg.path(), &[]);
    let src = store_with_busybox();
    let base = format!("{}/lib/base:1", s.addr);
    let first = push(&cfg, src.path(), "busybox", &base);

    let store = tempfile::tempdir().unwrap();
    let ctx = Ctx::new(&format!("FROM {base}\nCOPY a.txt /a.txt\n"));
    ctx.write("a.txt", "hello\n");
    let (id1, _) = cfg.build_ok(store.path(), &ctx, &[]);

    // Someone pushes another image under the same tag.
    let v2 = Ctx::new("FROM busybox\nCOPY marker /marker\n");
    v2.write("marker", "version 2\n");
    cfg.build_ok(src.path(), &v2, &["-t", "base:v2"]);
    let second = push(&cfg, src.path(), "base:v2", &base);
    assert_ne!(first, second);

    // Without --pull the local base is used: same image, from the cache.
    let (id, err) = cfg.build_ok(store.path(), &ctx, &[]);
    assert_eq!(id, id1);
    assert!(
        err.contains("fully cached") && !err.contains("Pulling"),
        "{err}"
    );
    assert_eq!(digest_of(store.path(), &base), first);

    // --pull sees the tag moved: the new base, a new COPY layer on it.
    let (id2, err) = cfg.build_ok(store.path(), &ctx, &["--pull"]);
    assert!(err.contains("Pulling from"), "{err}");
    assert!(!err.contains("fully cached"), "{err}");
    assert_ne!(id2, id1);
    assert_eq!(digest_of(store.path(), &base), second);
    let files = files_of(&cfg, store.path(), &ctx, &["--pull"]);
    assert!(files.iter().any(|f| f == "marker"), "{files:?}");
    assert!(files.iter().any(|f| f == "a.txt"), "{files:?}");

    // --pull when the tag has not moved: one HEAD, no pull, all cached.
    let (id3, err) = cfg.build_ok(store.path(), &ctx, &["--pull"]);
    assert_eq!(id3, id2);
    assert!(
        err.contains("fully cached") && !err.contains("Pulling"),
        "{err}"
    );
}

#[test]
fn push_and_registry_output_land_in_the_registry() {
    let cfg = Config::new();
    let reg = tempfile::tempdir().unwrap();
    let s = Server::start(reg.path(), &[]);
    let src = store_with_busybox();
    let ctx = Ctx::new("FROM busybox\nCOPY a.txt /a.txt\n");
    ctx.write("a.txt", "pushed\n");

    let one = format!("{}/team/app:1", s.addr);
    let (_, err) = cfg.build_ok(src.path(), &ctx, &["-t", &one, "--push"]);
    assert!(err.contains("The push refers to repository"), "{err}");
    let local = digest_of(src.path(), &one);
    assert_eq!(remote_digest(&one), local);

    // type=registry with a name: pushed, and named locally too.
    let two = format!("{}/team/app:2", s.addr);
    let out = format!("type=registry,name={two}");
    let (_, err) = cfg.build_ok(src.path(), &ctx, &["-o", &out]);
    assert!(err.contains("Layer already exists"), "{err}");
    assert_eq!(remote_digest(&two), local);
    assert_eq!(digest_of(src.path(), &two), local);

    // What was pushed pulls back whole into another store.
    let other = tempfile::tempdir().unwrap();
    ok(cfg.berth(other.path()).args(["pull", "-q", &one]));
    assert_eq!(digest_of(other.path(), &one), local);
    ok(berth(other.path()).args(["system", "check"]));

    // Nothing to push to is an error before anything is built.
    let out = cfg.build(src.path(), &ctx, &["--push"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing to push to"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
