//! Interop with Docker (Debian's docker.io 20.10): archives written by
//! `berth save` load in `docker load` and run; `docker save` output loads in
//! berth with the same image ids and layers. The test starts its own dockerd
//! on a private socket and data root; CI installs docker.io
//! (`scripts/install-test-deps.sh`), and the test fails without it.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

use common::dockerd::Dockerd;

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn docker_loads_berth_archives_and_berth_loads_docker_save() {
    let docker = Dockerd::start();
    let store = store_with_busybox();
    let root = store.path();
    let tmp = tempfile::tempdir().unwrap();
    let ours = json(&ok(berth(root).args(["inspect", "busybox"])));
    let id = ours[0]["Id"].as_str().unwrap().to_owned();

    // berth save (docker-archive) → docker load → same id, and it runs.
    let archive = tmp.path().join("bb.tar");
    ok(berth(root).args(["save", "-o", p(&archive), "busybox"]));
    let out = docker.ok(&["load", "-i", p(&archive)]);
    assert!(out.contains("Loaded image: busybox:latest"), "{out}");
    let theirs = docker.inspect("busybox:latest");
    assert_eq!(theirs[0]["Id"], id.as_str());
    assert_eq!(theirs[0]["RootFS"]["Layers"], ours[0]["RootFS"]["Layers"]);
    // (/etc/hostname is docker's own; /etc/passwd comes from our layer.)
    let out = docker.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "head",
        "-n1",
        "/etc/passwd",
    ]);
    assert_eq!(out.trim(), "root:x:0:0:root:/root:/bin/sh");

    // berth save --format oci → docker load (through its manifest.json).
    ok(berth(root).args(["tag", "busybox", "oci/bb:2"]));
    let oci = tmp.path().join("bb-oci.tar");
    ok(berth(root).args(["save", "--format", "oci", "-o", p(&oci), "oci/bb:2"]));
    let out = docker.ok(&["load", "-i", p(&oci)]);
    assert!(out.contains("oci/bb:2"), "{out}");
    assert_eq!(docker.inspect("oci/bb:2")[0]["Id"], id.as_str());

    // docker builds a two-layer image (legacy builder, no network) and saves it.
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN echo from-docker > /marker && mkdir -p /data && echo x > /data/x\nENV DEMO=1\nCMD [\"cat\", \"/marker\"]\n",
    )
    .unwrap();
    let out = Command::new("/usr/bin/docker")
        .arg("-H")
        .arg(format!("unix://{}", docker.sock.display()))
        .args(["build", "--network", "none", "-t", "dk/built:1"])
        .arg(&ctx)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built = docker.inspect("dk/built:1");
    let saved = tmp.path().join("built.tar");
    docker.ok(&["save", "-o", p(&saved), "dk/built:1"]);

    let fresh = tempfile::tempdir().unwrap();
    let out = ok(berth(fresh.path()).args(["load", "-i", p(&saved)]));
    assert!(out.contains("Loaded image: dk/built:1"), "{out}");
    let mine = json(&ok(berth(fresh.path()).args(["inspect", "dk/built:1"])));
    assert_eq!(mine[0]["Id"], built[0]["Id"], "same config bytes, same id");
    assert_eq!(mine[0]["RootFS"], built[0]["RootFS"]);
    assert_eq!(mine[0]["Config"]["Env"], built[0]["Config"]["Env"]);
    let hist = ok(berth(fresh.path()).args(["history", "--no-trunc", "dk/built:1"]));
    assert!(hist.contains("echo from-docker"), "{hist}");

    // And back: berth save → docker rmi → docker load → same id, runs.
    let back = tmp.path().join("back.tar");
    ok(berth(fresh.path()).args(["save", "-o", p(&back), "dk/built:1"]));
    docker.ok(&["rmi", "dk/built:1"]);
    docker.ok(&["load", "-i", p(&back)]);
    assert_eq!(docker.inspect("dk/built:1")[0]["Id"], built[0]["Id"]);
    let out = docker.ok(&["run", "--rm", "--network", "none", "dk/built:1"]);
    assert_eq!(out.trim(), "from-docker");
}
