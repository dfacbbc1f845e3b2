//! Per-registry TLS trust from `certs.d` directories, as Docker does it:
//! `*.crt` files are extra CA roots for that registry only, `*.cert` +
//! `*.key` a client certificate. Real TLS throughout: a CA and certificates
//! made with openssl, `berth registry serve --tls-cert/--tls-key` and
//! Debian's `docker-registry` (which can require client certificates)
//! bound to the host's own non-loopback address, since loopback registries
//! are insecure and their certificates are not verified.

mod client_support;
mod common;
mod registry_support;

use std::path::Path;
use std::process::Command;

use client_support::{Env, Pki, host_ip, serve_on};
use common::{fails, json, ok, stderr, store_with_busybox};
use registry_support::Distribution;

fn image_id(root: &Path, name: &str) -> String {
    json(&ok(common::berth(root).args(["inspect", name])))[0]["Id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A test CA with a server certificate for this host's non-loopback
/// address (returned too).
fn server_pki() -> (Pki, String) {
    let ip = host_ip();
    let pki = Pki::new();
    pki.issue("server", "serverAuth", Some(&format!("IP:{ip}")));
    (pki, ip)
}

/// `berth registry serve` over TLS with `pki`'s server certificate, on `ip`.
fn tls_server(pki: &Pki, ip: &str, root: &Path) -> registry_support::Server {
    let (cert, key) = (pki.path("server.crt"), pki.path("server.key"));
    let flags = [
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    serve_on(&format!("{ip}:0"), root, &flags)
}

#[test]
fn certs_d_ca_trusts_one_registry() {
    let env = Env::new();
    let (pki, ip) = server_pki();
    let root = tempfile::tempdir().unwrap();
    let s = tls_server(&pki, &ip, root.path());
    let src = store_with_busybox();
    let name = format!("{}/tls/busybox:1", s.addr);
    let ca_dir = env.path("berth-config/certs.d").join(&s.addr);

    // Not trusted yet: push and pull fail, saying which registry, that its
    // certificate is not trusted, and where a CA certificate goes.
    let out = fails(env.berth(src.path()).args(["push", "busybox", &name]));
    let e = stderr(&out);
    assert!(e.contains(&s.addr), "{e}");
    assert!(e.contains("not trusted"), "{e}");
    assert!(
        e.contains(&ca_dir.join("ca.crt").display().to_string()),
        "{e}"
    );
    assert!(
        e.contains(&format!("/etc/docker/certs.d/{}/ca.crt", s.addr)),
        "{e}"
    );
    let dst = tempfile::tempdir().unwrap();
    let out = fails(env.berth(dst.path()).args(["pull", &name]));
    assert!(stderr(&out).contains("not trusted"), "{}", stderr(&out));

    // The CA in $BERTH_CONFIG/certs.d/<ip:port>/: push, pull and a build's
    // FROM work, with verified certificates.
    std::fs::create_dir_all(&ca_dir).unwrap();
    std::fs::copy(pki.path("ca.crt"), ca_dir.join("ca.crt")).unwrap();
    ok(env.berth(src.path()).args(["push", "-q", "busybox", &name]));
    ok(env.berth(dst.path()).args(["pull", "-q", &name]));
    assert_eq!(image_id(dst.path(), &name), image_id(src.path(), "busybox"));
    ok(common::berth(dst.path()).args(["system", "check"]));
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {name}\nENV VIA=tls\n"),
    )
    .unwrap();
    let built = tempfile::tempdir().unwrap();
    let mut build = env.berth(built.path());
    build
        .args(["build", "-q", "--progress", "plain", "-t", "built"])
        .arg(ctx.path());
    ok(&mut build);
    assert_eq!(
        image_id(built.path(), &name),
        image_id(src.path(), "busybox")
    );

    // Trust is per registry: the same certificate on another port is not
    // trusted, since certs.d has nothing for that registry.
    let root2 = tempfile::tempdir().unwrap();
    let s2 = tls_server(&pki, &ip, root2.path());
    let out = fails(env.berth(src.path()).args([
        "push",
        "busybox",
        &format!("{}/tls/busybox:1", s2.addr),
    ]));
    let e = stderr(&out);
    assert!(e.contains("not trusted") && e.contains(&s2.addr), "{e}");

    // A CA file that is not a certificate is reported with its path.
    let bad_dir = env.path("berth-config/certs.d").join(&s2.addr);
    std::fs::create_dir_all(&bad_dir).unwrap();
    std::fs::write(bad_dir.join("broken.crt"), "not a certificate\n").unwrap();
    let out = fails(env.berth(src.path()).args([
        "push",
        "busybox",
        &format!("{}/tls/busybox:1", s2.addr),
    ]));
    let e = stderr(&out);
    assert!(e.contains("broken.crt"), "{e}");
}

/// Runs `berth` in a private mount namespace whose `/etc` is an overlay
/// with `/etc/docker/certs.d/<registry>/ca.crt` added: the machine's real
/// `/etc` is never written.
fn berth_with_etc_docker_ca(
    env: &Env,
    root: &Path,
    registry: &str,
    ca: &Path,
    args: &[&str],
) -> std::process::Output {
    let upper = env.path("etc-upper");
    let work = env.path("etc-work");
    std::fs::create_dir_all(&upper).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let script = r#"set -e
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1,workdir=$2" /etc
mkdir -p "/etc/docker/certs.d/$3"
cp "$4" "/etc/docker/certs.d/$3/ca.crt"
shift 4
exec "$@""#;
    let berth = env.berth(root);
    let mut c = Command::new("unshare");
    c.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        "sh",
    ])
    .arg(&upper)
    .arg(&work)
    .arg(registry)
    .arg(ca)
    .arg(berth.get_program())
    .args(berth.get_args())
    .args(args);
    for (k, v) in berth.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    c.output().expect("unshare runs")
}

#[test]
fn etc_docker_certs_d_is_read_too() {
    let env = Env::new();
    let (pki, ip) = server_pki();
    let root = tempfile::tempdir().unwrap();
    let s = tls_server(&pki, &ip, root.path());
    let src = store_with_busybox();
    let name = format!("{}/etc/busybox:1", s.addr);
    let out = berth_with_etc_docker_ca(
        &env,
        src.path(),
        &s.addr,
        &pki.path("ca.crt"),
        &["push", "-q", "busybox", &name],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !Path::new("/etc/docker/certs.d").join(&s.addr).exists(),
        "the real /etc is untouched"
    );
    // Outside the namespace the registry is not trusted.
    let dst = tempfile::tempdir().unwrap();
    let out = fails(env.berth(dst.path()).args(["pull", &name]));
    assert!(stderr(&out).contains("not trusted"), "{}", stderr(&out));
}

/// Debian's `docker-registry` on `addr` over TLS, requiring client
/// certificates issued by the test CA.
fn mtls_registry(addr: &str, pki: &Pki) -> Distribution {
    Distribution::start_on(
        addr,
        &format!(
            "  tls:\n    certificate: {}\n    key: {}\n    clientcas:\n      - {}\n",
            pki.path("server.crt").display(),
            pki.path("server.key").display(),
            pki.path("ca.crt").display(),
        ),
    )
}

#[test]
fn client_certificate_from_certs_d_for_mutual_tls() {
    let env = Env::new();
    let (pki, ip) = server_pki();
    pki.issue("client", "clientAuth", None);
    let port = std::net::TcpListener::bind(format!("{ip}:0"))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("{ip}:{port}");
    let _reg = mtls_registry(&addr, &pki);
    let src = store_with_busybox();
    let name = format!("{addr}/mtls/busybox:1");
    let dir = env.path("berth-config/certs.d").join(&addr);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(pki.path("ca.crt"), dir.join("ca.crt")).unwrap();

    // The server is trusted, but we have no client certificate: refused,
    // and the message says where one goes.
    let out = fails(env.berth(src.path()).args(["push", "busybox", &name]));
    let e = stderr(&out);
    assert!(e.contains(&addr) && e.contains("TLS handshake"), "{e}");
    assert!(
        e.contains(&dir.join("client.cert").display().to_string()),
        "{e}"
    );

    // A certificate without its key is a configuration error naming the file.
    std::fs::copy(pki.path("client.crt"), dir.join("client.cert")).unwrap();
    let out = fails(env.berth(src.path()).args(["push", "busybox", &name]));
    let e = stderr(&out);
    assert!(
        e.contains("client.cert") && e.contains("without its key"),
        "{e}"
    );

    // With client.cert + client.key: push and pull work.
    std::fs::copy(pki.path("client.key"), dir.join("client.key")).unwrap();
    ok(env.berth(src.path()).args(["push", "-q", "busybox", &name]));
    let dst = tempfile::tempdir().unwrap();
    ok(env.berth(dst.path()).args(["pull", "-q", &name]));
    assert_eq!(image_id(dst.path(), &name), image_id(src.path(), "busybox"));
    ok(common::berth(dst.path()).args(["system", "check"]));
}
