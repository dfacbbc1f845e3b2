//! `kill -9` at any moment leaves a readable, consistent store; concurrent
//! berth processes never lose tagged images. Real processes, real kills.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// Writes a rootfs tarball with `files` incompressible files of `size` bytes.
fn random_tarball(path: &Path, files: usize, size: usize, seed: u64) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    let mut x = seed | 1;
    for i in 0..files {
        let mut data = vec![0u8; size];
        for chunk in data.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        let mut h = tar::Header::new_gnu();
        h.set_size(size as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, format!("data/file{i}"), data.as_slice())
            .unwrap();
    }
    b.finish().unwrap();
}

/// A docker-archive of a large (64 MiB, three-layer-equivalent) image.
fn big_archive(dir: &Path) -> PathBuf {
    let scratch = tempfile::tempdir().unwrap();
    let tarball = dir.join("big-rootfs.tar");
    random_tarball(&tarball, 4, 16 << 20, 0x5eed);
    ok(berth(scratch.path())
        .arg("import")
        .arg(&tarball)
        .arg("big:1")
        .args(["--compression", "uncompressed"]));
    let archive = dir.join("big.tar");
    ok(berth(scratch.path())
        .args(["save", "-o"])
        .arg(&archive)
        .arg("big:1"));
    archive
}

fn assert_consistent(root: &Path) {
    let out = berth(root).args(["system", "check"]).output().unwrap();
    assert!(
        out.status.success(),
        "store inconsistent after kill:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let images = ok(berth(root).args(["images"]));
    assert!(images.contains("busybox"), "tagged image lost:\n{images}");
}

/// Starts `berth ARGS`, kills it with SIGKILL after `delay`, and waits for it.
fn kill_after(root: &Path, args: &[&str], extra: Option<&Path>, delay: Duration) {
    let mut cmd = berth(root);
    cmd.args(args);
    if let Some(p) = extra {
        cmd.arg(p);
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
}

#[test]
fn kill_9_during_load_import_and_prune_leaves_a_working_store() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = big_archive(tmp.path());
    let rootfs = tmp.path().join("big-rootfs.tar");
    let store = store_with_busybox();
    let root = store.path();
    for ms in [0u64, 3, 10, 25, 50, 80, 120, 200, 350, 600] {
        let d = Duration::from_millis(ms);
        kill_after(root, &["load", "-i"], Some(&archive), d);
        assert_consistent(root);
        kill_after(root, &["import"], Some(&rootfs), d);
        assert_consistent(root);
    }
    // A complete load after all that works and is verified.
    ok(berth(root).arg("load").arg("-i").arg(&archive));
    assert_consistent(root);
    // Kill prunes that have real work to do (an image to collect).
    for ms in [0u64, 2, 5, 10, 20, 40] {
        ok(berth(root).args(["rmi", "big:1"]));
        ok(berth(root).arg("load").arg("-i").arg(&archive));
        ok(berth(root).args(["tag", "big:1", "big:2"]));
        ok(berth(root).args(["rmi", "big:2"]));
        kill_after(
            root,
            &["image", "prune", "-a", "-f"],
            None,
            Duration::from_millis(ms),
        );
        // A killed prune may have removed whole images (that is its job) but
        // never leaves a half-deleted one behind a name.
        let out = berth(root).args(["system", "check"]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        ok(berth(root).args(["images"]));
        if !ok(berth(root).args(["images"])).contains("busybox") {
            ok(berth(root)
                .arg("import")
                .arg(busybox_tarball())
                .arg("busybox:latest"));
        }
        if !ok(berth(root).args(["images"])).contains("big") {
            ok(berth(root).arg("load").arg("-i").arg(&archive));
        }
    }
    // Leftovers of killed writers are reclaimed by the next prune.
    ok(berth(root).args(["image", "prune", "-f"]));
    assert!(
        std::fs::read_dir(root.join("ingest"))
            .unwrap()
            .next()
            .is_none(),
        "prune removes stale ingest files"
    );
    assert_consistent(root);
}

#[test]
fn concurrent_loads_and_prunes_lose_nothing_tagged() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = big_archive(tmp.path());
    let small = tmp.path().join("small.tar");
    {
        let s = store_with_busybox();
        ok(berth(s.path())
            .args(["save", "-o"])
            .arg(&small)
            .arg("busybox"));
    }
    let store = tempfile::tempdir().unwrap();
    let root = store.path().to_owned();
    std::thread::scope(|s| {
        let r = &root;
        let a = &archive;
        let sm = &small;
        let loader = s.spawn(move || {
            for _ in 0..4 {
                ok(berth(r).arg("load").arg("-i").arg(a));
            }
        });
        let loader2 = s.spawn(move || {
            for _ in 0..6 {
                ok(berth(r).arg("load").arg("-i").arg(sm));
            }
        });
        let pruner = s.spawn(move || {
            for _ in 0..15 {
                ok(berth(r).args(["image", "prune", "-f"]));
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        loader.join().unwrap();
        loader2.join().unwrap();
        pruner.join().unwrap();
    });
    let check = ok(berth(&root).args(["system", "check"]));
    assert!(check.contains("store OK"), "{check}");
    let images = ok(berth(&root).args(["images"]));
    assert!(
        images.contains("big") && images.contains("busybox"),
        "{images}"
    );
    // Every tagged image can still be saved in full.
    let out = tmp.path().join("again.tar");
    ok(berth(&root)
        .args(["save", "-o"])
        .arg(&out)
        .arg("big:1")
        .arg("busybox"));
    let _ = Command::new("true").status();
}
