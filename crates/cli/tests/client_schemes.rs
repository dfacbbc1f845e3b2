//! Explicit schemes: a registry given as a URL is reached with that scheme
//! only. `http://` is plain HTTP at once (no HTTPS attempt first),
//! `https://` is HTTPS only (no fallback to HTTP); a bare `host[:port]`
//! keeps the default policy. Checked on the wire: a forwarder in front of
//! a real `berth registry serve` records whether each connection began with
//! a TLS ClientHello and what plain-HTTP bytes it carried.
//!
//! Covered: `--insecure-registry URL`, `registries.toml` entries, `berth
//! login URL`, a mirror's upstream URL, and the rule that credentials never
//! travel over plain HTTP to a registry that is neither loopback nor insecure.

mod client_support;
mod common;
mod registry_support;

use std::io::Write as _;
use std::path::Path;
use std::process::{Output, Stdio};

use client_support::{Env, Sniffer, host_ip};
use common::{fails, ok, stderr, store_with_busybox};
use registry_support::Server;

fn htpasswd() -> String {
    common::repo_root()
        .join("testdata/registry/htpasswd")
        .display()
        .to_string()
}

fn login(env: &Env, root: &Path, extra: &[&str], server: &str, user: &str, pw: &str) -> Output {
    let mut child = env
        .berth(root)
        .arg("login")
        .args(extra)
        .args(["-u", user, "--password-stdin", server])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{pw}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// busybox pushed to a fresh plain-HTTP `berth registry serve` as `repo:1`.
fn registry_with_busybox(env: &Env, repo: &str, extra: &[&str]) -> (tempfile::TempDir, Server) {
    let root = tempfile::tempdir().unwrap();
    let s = Server::start(root.path(), extra);
    let src = store_with_busybox();
    ok(env
        .berth(src.path())
        .args(["push", "-q", "busybox", &format!("{}/{repo}:1", s.addr)]));
    (root, s)
}

#[test]
fn pull_honours_explicit_schemes() {
    let env = Env::new();
    let (_root, s) = registry_with_busybox(&env, "lib/busybox", &[]);
    let sn = Sniffer::start("127.0.0.1", &s.addr);
    let name = format!("{}/lib/busybox:1", sn.addr);
    let pull = |extra: &[&str]| {
        let dst = tempfile::tempdir().unwrap();
        let out = env
            .berth(dst.path())
            .arg("pull")
            .args(extra)
            .arg(&name)
            .output()
            .unwrap();
        ok(common::berth(dst.path()).args(["system", "check"]));
        out
    };

    // Bare host:port, loopback: HTTPS is tried first, then plain HTTP.
    let out = pull(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(sn.tls_conns() >= 1, "{:?}", sn.conns());
    assert!(sn.plain_conns() >= 1);

    // --insecure-registry http://…: plain HTTP at once.
    sn.clear();
    let url = format!("http://{}", sn.addr);
    let out = pull(&["--insecure-registry", &url]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sn.tls_conns(), 0, "no HTTPS attempt: {:?}", sn.conns());
    assert!(sn.plain_text().contains("GET /v2/lib/busybox/manifests/1 "));

    // The same from registries.toml.
    sn.clear();
    env.registries_toml(&format!("insecure = [\"http://{}/\"]\n", sn.addr));
    let out = pull(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sn.tls_conns(), 0, "{:?}", sn.conns());
    assert!(sn.plain_conns() >= 1);

    // https://: HTTPS only. This registry speaks only plain HTTP, so the
    // pull fails, and no plain-HTTP connection is ever opened.
    sn.clear();
    env.registries_toml(&format!("insecure = [\"https://{}\"]\n", sn.addr));
    let dst = tempfile::tempdir().unwrap();
    let out = fails(env.berth(dst.path()).args(["pull", &name]));
    assert!(
        stderr(&out).contains(&format!("https://{}/v2/", sn.addr)),
        "{}",
        stderr(&out)
    );
    assert!(sn.tls_conns() >= 1);
    assert_eq!(sn.plain_conns(), 0, "no fallback to HTTP: {:?}", sn.conns());

    // Something that is not a registry URL is refused up front.
    let out = fails(env.berth(dst.path()).args([
        "pull",
        "--insecure-registry",
        "ftp://example.com",
        &name,
    ]));
    assert!(
        stderr(&out).contains("ftp://example.com"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn login_honours_explicit_schemes() {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let hp = htpasswd();
    let s = Server::start(dir.path(), &["--auth", "basic", "--htpasswd", &hp]);
    let sn = Sniffer::start("127.0.0.1", &s.addr);
    let store = tempfile::tempdir().unwrap();

    let out = login(
        &env,
        store.path(),
        &[],
        &format!("http://{}", sn.addr),
        "alice",
        "wonderland",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sn.tls_conns(), 0, "no HTTPS attempt: {:?}", sn.conns());
    assert!(
        sn.plain_text()
            .to_ascii_lowercase()
            .contains("authorization: basic")
    );
    // Stored under the registry's name, not the URL.
    let auth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.path("berth-config/auth.json")).unwrap())
            .unwrap();
    assert!(auth["auths"].get(sn.addr.as_str()).is_some(), "{auth}");

    sn.clear();
    let out = login(
        &env,
        store.path(),
        &[],
        &format!("https://{}", sn.addr),
        "alice",
        "wonderland",
    );
    assert!(!out.status.success());
    assert!(sn.tls_conns() >= 1);
    assert_eq!(sn.plain_conns(), 0, "no fallback to HTTP: {:?}", sn.conns());
}

#[test]
fn credentials_never_go_over_plain_http_to_a_registry_not_insecure() {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let hp = htpasswd();
    let s = Server::start(dir.path(), &["--auth", "basic", "--htpasswd", &hp]);
    // The host's own address: not loopback, so not insecure by default.
    let sn = Sniffer::start(&host_ip(), &s.addr);
    let store = tempfile::tempdir().unwrap();
    let url = format!("http://{}", sn.addr);

    let out = login(&env, store.path(), &[], &url, "alice", "wonderland");
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("refusing to send credentials"), "{e}");
    assert!(e.contains("plain HTTP"), "{e}");
    assert_eq!(sn.tls_conns(), 0, "http:// pinned: {:?}", sn.conns());
    assert!(
        sn.plain_conns() >= 1,
        "the registry was asked (anonymously)"
    );
    assert!(
        !sn.plain_text()
            .to_ascii_lowercase()
            .contains("authorization"),
        "{}",
        sn.plain_text()
    );
    assert!(!env.path("berth-config/auth.json").exists());

    // Listed as insecure, the same login goes through.
    sn.clear();
    let out = login(
        &env,
        store.path(),
        &["--insecure-registry", &sn.addr],
        &url,
        "alice",
        "wonderland",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(sn.tls_conns(), 0);
}

#[test]
fn mirror_upstream_url_scheme_is_honoured() {
    let env = Env::new();
    let (_root, up) = registry_with_busybox(&env, "library/busybox", &[]);
    let sn = Sniffer::start("127.0.0.1", &up.addr);
    let mroot = tempfile::tempdir().unwrap();
    let m = Server::start(
        mroot.path(),
        &["--mirror", &format!("docker.io=http://{}", sn.addr)],
    );
    let dst = tempfile::tempdir().unwrap();
    let name = format!("{}/library/busybox:1", m.addr);
    ok(env.berth(dst.path()).args(["pull", "-q", &name]));
    ok(common::berth(dst.path()).args(["system", "check"]));
    assert!(sn.plain_conns() >= 1, "the mirror asked its upstream");
    assert_eq!(
        sn.tls_conns(),
        0,
        "http:// upstream: no HTTPS attempt: {:?}",
        sn.conns()
    );
}
