//! The registry against the container engines' own clients: containerd's
//! `ctr` and Docker's `dockerd`, each started by the test with private
//! roots and sockets, talking to 127.0.0.1 only. They fail, never skip,
//! when the tools are missing (Debian `containerd`, `docker.io`).

mod common;
mod registry_support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use registry_support::*;

/// A registry with busybox pushed by skopeo as `library/busybox:1.0`.
fn registry_with_busybox() -> (tempfile::TempDir, Server, String) {
    let src = common::store_with_busybox();
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    run_ok(Command::new("skopeo").args([
        "copy",
        "--dest-tls-verify=false",
        &format!(
            "oci:{}:docker.io/library/busybox:latest",
            src.path().display()
        ),
        &format!("docker://{}/library/busybox:1.0", s.addr),
    ]));
    let digest = s
        .req("HEAD", "/v2/library/busybox/manifests/1.0")
        .send()
        .header("Docker-Content-Digest")
        .unwrap()
        .to_owned();
    (dir, s, digest)
}

#[test]
fn containerd_ctr_pulls_over_plain_http() {
    let (_d, s, digest) = registry_with_busybox();
    let c = tempfile::Builder::new()
        .prefix("ctrd")
        .tempdir_in("/tmp")
        .unwrap();
    let p = |n: &str| -> PathBuf { c.path().join(n) };
    let sock = p("c.sock");
    std::fs::write(
        p("config.toml"),
        format!(
            "version = 2\nroot = \"{}\"\nstate = \"{}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{}\"\n[ttrpc]\n  address = \"{}\"\n",
            p("root").display(),
            p("state").display(),
            sock.display(),
            p("t.sock").display()
        ),
    )
    .unwrap();
    let _daemon = Daemon::spawn(
        Command::new("containerd")
            .arg("--config")
            .arg(p("config.toml")),
        &p("log"),
    );
    wait_for_socket(&sock, &p("log"));
    let ctr = || {
        let mut c = Command::new("ctr");
        c.arg("--address").arg(&sock).args(["-n", "berth-test"]);
        c
    };
    let image = format!("{}/library/busybox:1.0", s.addr);
    run_ok(ctr().args([
        "images",
        "pull",
        "--plain-http",
        "--snapshotter",
        "native",
        &image,
    ]));
    let out = run_ok(ctr().args(["images", "ls"]));
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains(&image) && listing.contains(&digest),
        "{listing}"
    );
}

#[test]
fn docker_pulls_and_pushes() {
    let (_d, s, digest) = registry_with_busybox();
    let c = tempfile::Builder::new()
        .prefix("dkd")
        .tempdir_in("/tmp")
        .unwrap();
    let p = |n: &str| -> PathBuf { c.path().join(n) };
    let sock = p("d.sock");
    let _daemon = Daemon::spawn(
        Command::new("dockerd")
            .arg("--host")
            .arg(format!("unix://{}", sock.display()))
            .arg("--data-root")
            .arg(p("data"))
            .arg("--exec-root")
            .arg(p("exec"))
            .arg("--pidfile")
            .arg(p("pid"))
            .args([
                "--storage-driver",
                "overlay2",
                "--iptables=false",
                "--bridge=none",
            ]),
        &p("log"),
    );
    wait_for_socket(&sock, &p("log"));
    let docker = || {
        let mut c = Command::new("/usr/bin/docker");
        c.arg("-H").arg(format!("unix://{}", sock.display()));
        c
    };
    // The daemon answers a moment after its socket appears.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !docker()
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        assert!(Instant::now() < deadline, "dockerd did not come up");
        std::thread::sleep(Duration::from_millis(200));
    }
    // 127.0.0.0/8 registries are plain HTTP for docker without configuration.
    let image = format!("{}/library/busybox:1.0", s.addr);
    run_ok(docker().args(["pull", &image]));
    let out = run_ok(docker().args([
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}}",
        &image,
    ]));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&digest));
    let pushed = format!("{}/docker/pushed:2", s.addr);
    run_ok(docker().args(["tag", &image, &pushed]));
    run_ok(docker().args(["push", &pushed]));
    let r = s.req("GET", "/v2/docker/pushed/manifests/2").send();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("Content-Type"),
        Some("application/vnd.docker.distribution.manifest.v2+json")
    );
    // And docker pulls back what it pushed, from a clean slate.
    run_ok(docker().args(["rmi", &pushed, &image]));
    run_ok(docker().args(["pull", &pushed]));
}
