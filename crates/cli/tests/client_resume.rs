//! Downloads resume across pulls: a `berth pull` killed (SIGKILL) in the
//! middle of a large blob leaves its bytes in the store's resumable ingest,
//! and the next pull of the image continues with `Range: bytes=N-`. Real
//! processes throughout: `berth registry serve` holds the image, a slow
//! forwarder (testdata/client/throttle_proxy.py) in front of it logs every
//! request, and the pull is killed with SIGKILL once part of the blob is
//! on disk. Also covered: a registry that ignores `Range` (full download),
//! a partial whose bytes are wrong (thrown away, full download), and image
//! GC removing stale partials.

mod client_support;
mod common;
mod registry_support;

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use client_support::Env;
use common::{fails, json, ok, stderr};
use registry_support::Server;

const LAYER_BYTES: usize = 16 << 20;

/// The slow forwarder, killed on drop.
struct Proxy {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Proxy {
    fn start(upstream: &str, log: &Path, ignore_range: bool) -> Proxy {
        let script = common::repo_root().join("testdata/client/throttle_proxy.py");
        let mut c = Command::new("python3");
        c.arg(script).arg(upstream).arg(log);
        if ignore_range {
            c.arg("--ignore-range");
        }
        let mut child = c
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected proxy output {line:?}"))
            .trim()
            .to_owned();
        Proxy {
            child,
            addr,
            log: log.to_owned(),
        }
    }

    /// Logged requests for `path`: (range header, status, bytes sent),
    /// once at least `n` are logged (the proxy logs a request when its
    /// response has ended, which may be just after the client exited).
    fn requests(&self, path: &str, n: usize) -> Vec<(Option<String>, u64, u64)> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = self.logged(path);
            if r.len() >= n || Instant::now() > deadline {
                return r;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn logged(&self, path: &str) -> Vec<(Option<String>, u64, u64)> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["method"] == "GET" && v["path"] == path)
            .map(|v| {
                (
                    v["range"].as_str().map(str::to_owned),
                    v["status"].as_u64().unwrap(),
                    v["sent"].as_u64().unwrap(),
                )
            })
            .collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A registry holding `resume/big:1`, an image with one uncompressed
/// layer of about 16 MiB; returns the source store, the registry and the
/// layer's digest.
struct Setup {
    env: Env,
    src: tempfile::TempDir,
    _reg_root: tempfile::TempDir,
    reg: Server,
    layer: String,
    layer_size: u64,
}

fn setup() -> Setup {
    let env = Env::new();
    let src = tempfile::tempdir().unwrap();
    let mut data = Vec::with_capacity(LAYER_BYTES);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while data.len() < LAYER_BYTES {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    let tar = src.path().join("rootfs.tar");
    common::write_tar(&tar, &[("big.bin", &data)]);
    ok(common::berth(src.path())
        .args(["import", "--compression", "uncompressed"])
        .arg(&tar)
        .arg("big:1"));
    let reg_root = tempfile::tempdir().unwrap();
    let reg = Server::start(reg_root.path(), &[]);
    let name = format!("{}/resume/big:1", reg.addr);
    ok(env.berth(src.path()).args(["push", "-q", "big:1", &name]));
    let v = json(&ok(common::berth(src.path()).args(["inspect", "big:1"])));
    let manifest_digest = v[0]["Descriptor"]["digest"].as_str().unwrap().to_owned();
    let hex = manifest_digest.strip_prefix("sha256:").unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.path().join("blobs/sha256").join(hex)).unwrap())
            .unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().to_owned();
    let layer_size = manifest["layers"][0]["size"].as_u64().unwrap();
    assert!(layer_size > (8 << 20), "{layer_size}");
    Setup {
        env,
        src,
        _reg_root: reg_root,
        reg,
        layer,
        layer_size,
    }
}

impl Setup {
    fn name(&self, proxy: &Proxy) -> String {
        format!("{}/resume/big:1", proxy.addr)
    }

    fn blob_path(&self) -> String {
        format!("/v2/resume/big/blobs/{}", self.layer)
    }

    /// `berth pull` through `proxy` (plain HTTP pinned, so no TLS attempt).
    fn pull(&self, dst: &Path, proxy: &Proxy) -> Command {
        let mut c = self.env.berth(dst);
        c.args(["pull", "--insecure-registry"])
            .arg(format!("http://{}", proxy.addr))
            .arg(self.name(proxy));
        c
    }

    /// Where a pull into `dst` keeps the layer's partial download.
    fn partial(&self, dst: &Path) -> PathBuf {
        dst.join("ingest").join(format!(
            "partial-sha256-{}",
            self.layer.strip_prefix("sha256:").unwrap()
        ))
    }

    /// Starts a pull into `dst` and kills it with SIGKILL once at least
    /// 2 MiB of the layer are on disk; returns the partial's size then.
    fn pull_and_kill(&self, dst: &Path, proxy: &Proxy) -> u64 {
        let mut child = self
            .pull(dst, proxy)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let partial = self.partial(dst);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let len = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
            if len >= 2 << 20 {
                break;
            }
            if let Some(st) = child.try_wait().unwrap() {
                panic!("the pull ended ({st}) before it could be killed mid-blob");
            }
            assert!(
                Instant::now() < deadline,
                "the layer download did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let len = std::fs::metadata(&partial).unwrap().len();
        assert!(len < self.layer_size, "killed mid-blob: {len}");
        len
    }

    fn image_id(&self, root: &Path, name: &str) -> String {
        json(&ok(common::berth(root).args(["inspect", name])))[0]["Id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The pull into `dst` completed: same image as the source, a store
    /// that verifies, no leftover ingest.
    fn assert_complete(&self, dst: &Path, proxy: &Proxy) {
        assert_eq!(
            self.image_id(dst, &self.name(proxy)),
            self.image_id(self.src.path(), "big:1")
        );
        let check = ok(common::berth(dst).args(["system", "check"]));
        assert!(check.contains("store OK"), "{check}");
        assert!(!check.contains("leftover"), "{check}");
        assert_eq!(std::fs::read_dir(dst.join("ingest")).unwrap().count(), 0);
    }
}

fn range_start(r: &str) -> u64 {
    r.strip_prefix("bytes=")
        .and_then(|r| r.strip_suffix('-'))
        .unwrap_or_else(|| panic!("unexpected Range {r:?}"))
        .parse()
        .unwrap()
}

#[test]
fn a_killed_pull_is_resumed_with_range() {
    let s = setup();
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&s.reg.addr, &dir.path().join("log"), false);
    let dst = tempfile::tempdir().unwrap();
    let left = s.pull_and_kill(dst.path(), &proxy);
    // Killed: nothing tagged, the partial stays.
    fails(common::berth(dst.path()).args(["inspect", &s.name(&proxy)]));
    assert!(s.partial(dst.path()).exists());

    let out = s.pull(dst.path(), &proxy).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("resuming at byte"),
        "{}",
        stderr(&out)
    );
    let reqs = proxy.requests(&s.blob_path(), 2);
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(reqs[0].0, None, "the first pull asked for the whole blob");
    let n = range_start(reqs[1].0.as_deref().expect("the second pull sent Range"));
    assert!(n >= left && n > 0 && n < s.layer_size, "{n} {left}");
    assert_eq!(reqs[1].1, 206);
    assert_eq!(reqs[1].2, s.layer_size - n, "only the rest was sent");
    s.assert_complete(dst.path(), &proxy);
}

#[test]
fn a_registry_ignoring_range_gets_a_full_download() {
    let s = setup();
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&s.reg.addr, &dir.path().join("log"), true);
    let dst = tempfile::tempdir().unwrap();
    s.pull_and_kill(dst.path(), &proxy);
    let out = s.pull(dst.path(), &proxy).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let reqs = proxy.requests(&s.blob_path(), 2);
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert!(range_start(reqs[1].0.as_deref().unwrap()) > 0);
    assert_eq!((reqs[1].1, reqs[1].2), (200, s.layer_size), "whole blob");
    s.assert_complete(dst.path(), &proxy);
}

#[test]
fn a_bad_partial_is_replaced_by_a_full_download() {
    let s = setup();
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&s.reg.addr, &dir.path().join("log"), false);
    let dst = tempfile::tempdir().unwrap();
    s.pull_and_kill(dst.path(), &proxy);
    // Flip a byte of what was downloaded.
    let p = s.partial(dst.path());
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[4096] ^= 0xff;
    std::fs::write(&p, bytes).unwrap();
    let out = s.pull(dst.path(), &proxy).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let reqs = proxy.requests(&s.blob_path(), 3);
    assert_eq!(reqs.len(), 3, "{reqs:?}");
    assert!(
        range_start(reqs[1].0.as_deref().unwrap()) > 0,
        "resumed first"
    );
    assert_eq!(reqs[2].0, None, "then fetched whole: {reqs:?}");
    assert_eq!(reqs[2].2, s.layer_size);
    s.assert_complete(dst.path(), &proxy);
}

#[test]
fn image_gc_removes_stale_partials() {
    let s = setup();
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&s.reg.addr, &dir.path().join("log"), false);
    let dst = tempfile::tempdir().unwrap();
    s.pull_and_kill(dst.path(), &proxy);
    let check = ok(common::berth(dst.path()).args(["system", "check"]));
    assert!(check.contains("leftover"), "{check}");
    ok(common::berth(dst.path()).args(["image", "prune", "-f"]));
    assert!(!s.partial(dst.path()).exists());
    // The next pull starts from zero and completes.
    let out = s.pull(dst.path(), &proxy).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let reqs = proxy.requests(&s.blob_path(), 2);
    assert_eq!(reqs.last().unwrap().0, None, "{reqs:?}");
    s.assert_complete(dst.path(), &proxy);
}
