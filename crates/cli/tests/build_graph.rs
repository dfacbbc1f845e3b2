//! Black-box tests of the build graph: independent stages run at once
//! (bounded by --jobs), identical vertices run once, the result does not
//! depend on the schedule; and the file-system outputs (type=local, type=tar)
//! and layer compressions.

mod build_util;
mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use build_util::*;
use common::*;

/// An HTTP server whose responses wait until `n` requests are in flight at
/// once (or `patience` passes, so a serial client still finishes).
/// It records the largest number of requests it saw in flight together.
struct Barrier {
    port: u16,
    peak: Arc<Mutex<usize>>,
}

impl Barrier {
    fn start(n: usize, patience: Duration) -> Barrier {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new((Mutex::new((0usize, 0usize)), Condvar::new()));
        let peak = Arc::new(Mutex::new(0usize));
        let p = peak.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let state = state.clone();
                let peak = p.clone();
                std::thread::spawn(move || {
                    let mut r = BufReader::new(conn.try_clone().unwrap());
                    let mut path = String::new();
                    loop {
                        let mut l = String::new();
                        if r.read_line(&mut l).unwrap_or(0) == 0 || l == "\r\n" {
                            break;
                        }
                        if l.starts_with("GET ") {
                            path = l.split_whitespace().nth(1).unwrap_or("").to_owned();
                        }
                    }
                    // `arrived` opens the barrier once `n` requests came;
                    // `inflight` (for the peak) counts those not answered.
                    let (lock, cv) = &*state;
                    let mut g = lock.lock().unwrap();
                    g.0 += 1;
                    g.1 += 1;
                    {
                        let mut pk = peak.lock().unwrap();
                        *pk = (*pk).max(g.1);
                    }
                    cv.notify_all();
                    let (mut g, _) = cv
                        .wait_timeout_while(g, patience, |(arrived, _)| *arrived < n)
                        .unwrap();
                    g.1 -= 1;
                    drop(g);
                    let body = format!("content of {path}\n");
                    let _ = write!(
                        conn,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        Barrier { port, peak }
    }
}

fn two_downloading_stages(port: u16) -> Ctx {
    Ctx::new(&format!(
        "FROM scratch AS one\nADD http://127.0.0.1:{port}/one /one\n\
         FROM scratch AS two\nADD http://127.0.0.1:{port}/two /two\n\
         FROM scratch\nCOPY --from=one /one /one\nCOPY --from=two /two /two\n"
    ))
}

#[test]
fn independent_stages_run_at_once_bounded_by_jobs() {
    let store = store_with_busybox();
    let root = store.path();
    // Two stages that each fetch a URL: the server answers only when both
    // requests are in flight, which happens only if the stages run at once.
    let server = Barrier::start(2, Duration::from_secs(120));
    let ctx = two_downloading_stages(server.port);
    let b = build(root, ctx.path(), &["--jobs", "2", "-t", "t"]);
    assert_eq!(*server.peak.lock().unwrap(), 2, "{}", b.stderr);
    let fs = image_fs(root, "t");
    assert_eq!(fs["one"].text(), "content of /one\n");
    assert_eq!(fs["two"].text(), "content of /two\n");

    // --jobs 1: one stage at a time (each request waits out the server's
    // patience alone; with two at once the peak would be 2).
    let server = Barrier::start(2, Duration::from_secs(2));
    let ctx = two_downloading_stages(server.port);
    build(root, ctx.path(), &["--jobs", "1"]);
    assert_eq!(*server.peak.lock().unwrap(), 1);
}

#[test]
fn identical_vertices_run_once_and_the_schedule_changes_nothing() {
    let store = store_with_busybox();
    let root = store.path();
    let df = "FROM busybox AS a\nCOPY x /x\n\
              FROM busybox AS b\nCOPY x /x\n\
              FROM busybox AS c\nCOPY y /y\n\
              FROM scratch\nCOPY --from=a /x /a\nCOPY --from=b /x /b\nCOPY --from=c /y /c\n";
    let ctx = Ctx::new(df);
    ctx.write("x", "x").write("y", "y");
    // Even with --no-cache, the two identical COPY steps run once.
    let b = build(
        root,
        ctx.path(),
        &[
            "--no-cache",
            "--jobs",
            "3",
            "--build-arg",
            "SOURCE_DATE_EPOCH=1000",
        ],
    );
    let copies: Vec<usize> = b
        .steps
        .iter()
        .filter(|(_, t)| *t == "COPY x /x")
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(copies.len(), 2);
    assert_eq!(
        copies.iter().filter(|id| b.cached.contains(id)).count(),
        1,
        "one of the identical vertices reuses the other: {}",
        b.stderr
    );
    // Step numbering and the image do not depend on parallelism: a fresh
    // store, one job at a time, gives the same ids and the same image.
    let other = store_with_busybox();
    let serial = build(
        other.path(),
        ctx.path(),
        &[
            "--no-cache",
            "--jobs",
            "1",
            "--build-arg",
            "SOURCE_DATE_EPOCH=1000",
        ],
    );
    assert_eq!(serial.steps, b.steps);
    assert_eq!(serial.id, b.id, "same image whatever the schedule");
}

#[test]
fn a_failing_stage_fails_the_build_with_its_line() {
    let store = store_with_busybox();
    let root = store.path();
    let ctx = Ctx::new(
        "FROM busybox AS a\nCOPY missing-a /a\n\
         FROM busybox AS b\nCOPY present /b\n\
         FROM scratch\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n",
    );
    ctx.write("present", "p");
    for jobs in ["1", "4"] {
        let err = build_fails(root, ctx.path(), &["--jobs", jobs]);
        assert!(err.contains("missing-a") && err.contains(":2"), "{err}");
    }
}

#[test]
fn local_and_tar_outputs_hold_the_final_file_system() {
    let store = store_with_busybox();
    let root = store.path();
    let ctx = Ctx::new(
        "FROM scratch AS base\nCOPY a /a\nCOPY d/ /d/\n\
         FROM base\nCOPY --chmod=750 --chown=5:6 b /d/b\n",
    );
    ctx.write("a", "A").write("b", "B").write("d/x", "X");
    let out = tempfile::tempdir().unwrap();
    let local = out.path().join("rootfs");
    let tar = out.path().join("fs.tar");
    build(
        root,
        ctx.path(),
        &[
            "-o",
            &format!("type=local,dest={}", local.display()),
            "--output",
            &format!("type=tar,dest={}", tar.display()),
        ],
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::read_to_string(local.join("a")).unwrap(), "A");
    assert_eq!(std::fs::read_to_string(local.join("d/x")).unwrap(), "X");
    let md = std::fs::metadata(local.join("d/b")).unwrap();
    assert_eq!((md.mode() & 0o7777, md.uid(), md.gid()), (0o750, 5, 6));
    let entries = layer_entries(&std::fs::read(&tar).unwrap());
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a", "d", "d/b", "d/x"]);
    let b = &entries[2].1;
    assert_eq!((b.mode, b.uid, b.gid), (0o750, 5, 6));
    assert_eq!(b.data(), b"B");
    // Unknown output types are refused up front.
    let err = build_fails(root, ctx.path(), &["-o", "type=registry,dest=x"]);
    assert!(err.contains("type=registry"), "{err}");
}

#[test]
fn layer_compression_choices() {
    let store = store_with_busybox();
    let root = store.path();
    let ctx = Ctx::new("FROM scratch\nCOPY a /a\n");
    ctx.write("a", "a".repeat(10_000));
    for (flag, magic, media) in [
        (
            "gzip",
            &[0x1f, 0x8b][..],
            "application/vnd.oci.image.layer.v1.tar+gzip",
        ),
        (
            "zstd",
            &[0x28, 0xb5, 0x2f, 0xfd][..],
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
        (
            "uncompressed",
            &b"a"[..],
            "application/vnd.oci.image.layer.v1.tar",
        ),
    ] {
        let b = build(root, ctx.path(), &["--no-cache", "--compression", flag]);
        let manifest_dir = tempfile::tempdir().unwrap();
        let t = manifest_dir.path().join("x.tar");
        ok(berth(root)
            .args(["save", "--format", "oci", "-o"])
            .arg(&t)
            .arg(&b.id));
        let entries: std::collections::BTreeMap<String, Vec<u8>> =
            tar_entries(&t).into_iter().collect();
        let index = json(std::str::from_utf8(&entries["index.json"]).unwrap());
        let md = index["manifests"][0]["digest"]
            .as_str()
            .unwrap()
            .replace(':', "/");
        let manifest = json(std::str::from_utf8(&entries[&format!("blobs/{md}")]).unwrap());
        let layer = &manifest["layers"][0];
        assert_eq!(layer["mediaType"], media, "{flag}");
        let blob = &entries[&format!(
            "blobs/{}",
            layer["digest"].as_str().unwrap().replace(':', "/")
        )];
        assert!(blob.starts_with(magic), "{flag}");
        assert_eq!(merge(&[decompress(blob)])["a"].text(), "a".repeat(10_000));
    }
}

fn scratch_dirs(root: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.join("tmp"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("build-"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_killed_build_leaves_nothing_once_the_next_one_starts() {
    let store = store_with_busybox();
    let root = store.path();
    // A server that accepts and never answers: the build blocks in ADD.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let ctx = Ctx::new(&format!(
        "FROM busybox\nCOPY a /a\nADD http://127.0.0.1:{port}/never /n\n"
    ));
    ctx.write("a", "a");
    let mut child = build_cmd(root, ctx.path(), &[])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (conn, _) = listener.accept().unwrap();
    let during = scratch_dirs(root);
    assert_eq!(during.len(), 1, "one scratch directory while building");
    child.kill().unwrap();
    child.wait().unwrap();
    drop(conn);
    assert_eq!(scratch_dirs(root), during, "a killed build cannot clean up");
    // The next build (of anything) removes it; the store is whole.
    let other = Ctx::new("FROM busybox\nCOPY a /a\n");
    other.write("a", "a");
    build(root, other.path(), &[]);
    assert_eq!(scratch_dirs(root), Vec::<String>::new());
    ok(berth(root).args(["system", "check"]));
}
