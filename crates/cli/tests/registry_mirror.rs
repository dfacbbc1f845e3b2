//! The pull-through mirror (`berth registry serve --mirror`), against real
//! upstreams and real clients, all on 127.0.0.1 and started by the tests:
//!
//! - upstreams: Debian's `docker-registry` (the CNCF distribution registry)
//!   and second `berth registry serve` instances with token and basic auth,
//!   populated with skopeo;
//! - clients: skopeo (path prefix, bare names, a `registries.conf` mirror),
//!   raw HTTP (`?ns=`, concurrency), containerd's `ctr` with a `hosts.toml`
//!   mirror (which sends `?ns=`) and `dockerd` with `registry-mirrors`.
//!
//! Upstream traffic is counted by a small HTTP proxy put between the mirror
//! and the upstream ([`Proxy`]); it can also hold a response half-sent until
//! the test releases it (to make requests overlap without timing), corrupt
//! one, or cut one short. Missing tools fail the tests; nothing is skipped.

mod common;
mod registry_support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

use registry_support::*;

// ------------------------------------------------------------------ tools

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("{cmd:?} does not run (is it installed?): {e}"))
}

fn skopeo() -> Command {
    Command::new("skopeo")
}

/// Copies `src` (an OCI layout reference) to `docker://dest`.
fn push(src: &str, dest: &str) {
    run_ok(skopeo().args([
        "copy",
        "-q",
        "--preserve-digests",
        "--dest-tls-verify=false",
        src,
        &format!("docker://{dest}"),
    ]));
}

/// Copies `docker://src` into a fresh OCI layout; returns the layout and
/// the digest of the manifest it holds.
fn pull(src: &str) -> (tempfile::TempDir, String) {
    let out = tempfile::tempdir().unwrap();
    run_ok(skopeo().args([
        "copy",
        "-q",
        "--preserve-digests",
        "--src-tls-verify=false",
        &format!("docker://{src}"),
        &format!("oci:{}:x", out.path().display()),
    ]));
    let d = layout_digest(out.path());
    (out, d)
}

fn layout_digest(layout: &Path) -> String {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"].as_str().unwrap().to_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (bounded) until `cond` holds; panics with `what` otherwise.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ------------------------------------------------------------------ fixtures

/// A store (an OCI layout) holding busybox as `docker.io/library/busybox:latest`.
fn busybox() -> &'static str {
    static S: std::sync::OnceLock<(tempfile::TempDir, String)> = std::sync::OnceLock::new();
    let (_, r) = S.get_or_init(|| {
        let d = common::store_with_busybox();
        let r = format!(
            "oci:{}:docker.io/library/busybox:latest",
            d.path().display()
        );
        (d, r)
    });
    r
}

/// A store holding one image `docker.io/library/<name>:1` whose single
/// layer is `size` pseudo-random (incompressible) bytes from `seed`.
/// Returns the store and its OCI reference.
fn random_image(name: &str, seed: u64, size: usize) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut data = vec![0u8; size];
    let mut x = seed | 1;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let tar_path = dir.path().join("rootfs.tar");
    {
        let mut t = tar::Builder::new(std::fs::File::create(&tar_path).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_size(size as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        t.append_data(&mut h, format!("{name}.bin"), &data[..])
            .unwrap();
        t.finish().unwrap();
    }
    let store = dir.path().join("store");
    common::ok(common::berth(&store).args([
        "import",
        tar_path.to_str().unwrap(),
        &format!("{name}:1"),
    ]));
    let r = format!("oci:{}:docker.io/library/{name}:1", store.display());
    (dir, r)
}

/// The layer digests of an image, from its OCI layout reference.
fn layers_of(oci_ref: &str) -> Vec<String> {
    let out = run_ok(skopeo().args(["inspect", "--raw", oci_ref]));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect()
}

/// Starts Debian's `docker-registry` (distribution 2.8) on 127.0.0.1 with
/// filesystem storage under `dir`. It is a [`Server`] like berth's, so the
/// raw HTTP helpers work on it too.
fn distribution(dir: &Path) -> Server {
    let addr = format!("127.0.0.1:{}", free_port());
    let cfg = dir.join("config.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {addr}\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("log")).unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&cfg)
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("docker-registry starts (apt-get install docker-registry)");
    let s = Server {
        child,
        addr,
        root: dir.to_owned(),
    };
    wait_until("docker-registry answers /v2/", || {
        TcpStream::connect(&s.addr).is_ok() && s.req("GET", "/v2/").send().status == 200
    });
    s
}

/// `berth registry serve` with mirror flags (and BERTH_LOG=warn).
fn mirror(root: &Path, flags: &[&str]) -> Server {
    Server::start(root, flags)
}

/// A metric's value from `/metrics` (the first sample whose name and
/// labels start with `series`).
fn metric(s: &Server, series: &str) -> f64 {
    let text = s.req("GET", "/metrics").send().text();
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no metric {series} in:\n{text}"))
}

/// Waits until the mirror has no fetch in progress: everything it served is
/// then committed to its store (clients get verified bytes before the
/// store's fsyncs finish).
fn settle(m: &Server) {
    wait_until("the mirror's fetches are committed", || {
        metric(m, "berth_mirror_flights{kind=\"manifest\"}") == 0.0
            && metric(m, "berth_mirror_flights{kind=\"blob\"}") == 0.0
    });
}

fn manifest_get(s: &Server, path: &str) -> Resp {
    s.req("GET", path)
        .header(
            "Accept",
            "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
             application/vnd.docker.distribution.manifest.v2+json, \
             application/vnd.docker.distribution.manifest.list.v2+json",
        )
        .send()
}

/// The raw bytes answered to a GET, however the connection ends.
fn get_raw(addr: &str, path: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    raw
}

/// A GET with the manifest `Accept` header, on a plain address.
fn raw_get(addr: &str, path: &str) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/vnd.oci.image.manifest.v1+json\r\n\
         Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse_response(&raw, false)
}

fn blob_file(root: &Path, digest: &str) -> PathBuf {
    let (alg, hex) = digest.split_once(':').unwrap();
    root.join("blobs").join(alg).join(hex)
}

// ------------------------------------------------------------------ the proxy

/// What the proxy does to responses of requests whose path contains a pattern.
#[derive(Debug, Clone)]
enum Act {
    /// Send the head and `after` body bytes, then wait for [`Proxy::release`].
    Hold { after: usize },
    /// Flip the last body byte.
    Corrupt,
    /// Send the head and `after` body bytes, then close the connection.
    Cut { after: usize },
}

#[derive(Default)]
struct ProxyState {
    upstream: String,
    log: Mutex<Vec<String>>,
    rules: Mutex<Vec<(String, Act)>>,
    released: Mutex<bool>,
    cv: Condvar,
    stop: AtomicBool,
}

/// An HTTP/1.1 proxy in front of an upstream registry: one request per
/// connection (it adds `Connection: close`), every request line logged.
struct Proxy {
    addr: String,
    st: Arc<ProxyState>,
}

impl Proxy {
    fn start(upstream: &str) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let st = Arc::new(ProxyState {
            upstream: upstream.to_owned(),
            ..ProxyState::default()
        });
        let st2 = st.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                if st2.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(c) = c else { continue };
                let st = st2.clone();
                std::thread::spawn(move || proxy_one(c, &st));
            }
        });
        Proxy { addr, st }
    }

    /// Requests seen whose line (`METHOD /path?query`) starts with `method`
    /// (any method if empty) and contains `needle`.
    fn count(&self, method: &str, needle: &str) -> usize {
        self.st
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| {
                (method.is_empty() || l.starts_with(&format!("{method} "))) && l.contains(needle)
            })
            .count()
    }

    fn rule(&self, pattern: &str, act: Act) {
        *self.st.released.lock().unwrap() = false;
        self.st
            .rules
            .lock()
            .unwrap()
            .push((pattern.to_owned(), act));
    }

    fn clear(&self) {
        self.st.rules.lock().unwrap().clear();
        self.release();
    }

    fn release(&self) {
        *self.st.released.lock().unwrap() = true;
        self.st.cv.notify_all();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.release();
        self.st.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}

/// Reads up to the end of an HTTP head; returns (head, bytes read past it).
fn read_head(s: &mut TcpStream) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(i + 4);
            return Some((buf, rest));
        }
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn proxy_one(mut client: TcpStream, st: &ProxyState) {
    // A TLS handshake (a client probing for HTTPS first) is refused at
    // once, as a plain HTTP server would.
    let mut first = [0u8; 1];
    if client.peek(&mut first).is_ok_and(|n| n == 1) && first[0] == 0x16 {
        return;
    }
    let Some((head, mut body)) = read_head(&mut client) else {
        return;
    };
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or("").to_owned();
    let mut parts = request_line.split(' ');
    let (method, target) = (
        parts.next().unwrap_or("").to_owned(),
        parts.next().unwrap_or("").to_owned(),
    );
    st.log.lock().unwrap().push(format!("{method} {target}"));
    let mut out = format!("{request_line}\r\n");
    let mut length = 0usize;
    for l in lines.filter(|l| !l.is_empty()) {
        let name = l
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if name == "connection" || name == "keep-alive" {
            continue;
        }
        if name == "content-length" {
            length = l
                .split(':')
                .nth(1)
                .unwrap_or("0")
                .trim()
                .parse()
                .unwrap_or(0);
        }
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    let Ok(mut up) = TcpStream::connect(&st.upstream) else {
        return; // the upstream is down: the client sees a closed connection
    };
    while body.len() < length {
        let mut c = vec![0u8; length - body.len()];
        match client.read(&mut c) {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&c[..n]),
        }
    }
    if up.write_all(out.as_bytes()).is_err() || up.write_all(&body).is_err() {
        return;
    }
    let Some((rhead, mut rest)) = read_head(&mut up) else {
        return;
    };
    let act = st
        .rules
        .lock()
        .unwrap()
        .iter()
        .find(|(p, _)| target.contains(p.as_str()))
        .map(|(_, a)| a.clone());
    if client.write_all(&rhead).is_err() {
        return;
    }
    let mut sent = 0usize;
    let mut waited = false;
    let mut held_back: Option<u8> = None;
    let wait = |waited: &mut bool| {
        let mut r = st.released.lock().unwrap();
        while !*r {
            r = st.cv.wait(r).unwrap();
        }
        *waited = true;
    };
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match &act {
            Some(Act::Hold { after }) if !waited && sent >= *after => wait(&mut waited),
            Some(Act::Cut { after }) if sent >= *after => {
                let _ = client.shutdown(Shutdown::Both);
                return;
            }
            _ => {}
        }
        let data: Vec<u8> = if rest.is_empty() {
            match up.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf[..n].to_vec(),
            }
        } else {
            std::mem::take(&mut rest)
        };
        if let Some(Act::Corrupt) = act {
            // Keep the last byte back: it is flipped at the end.
            if let Some(b) = held_back.take()
                && client.write_all(&[b]).is_err()
            {
                return;
            }
            if let Some((last, init)) = data.split_last() {
                if client.write_all(init).is_err() {
                    return;
                }
                held_back = Some(*last);
            }
            continue;
        }
        let mut data = &data[..];
        while !data.is_empty() {
            let room = match &act {
                Some(Act::Hold { after }) if !waited => after - sent,
                Some(Act::Cut { after }) => after - sent,
                _ => data.len(),
            };
            if room == 0 {
                if let Some(Act::Cut { .. }) = act {
                    let _ = client.shutdown(Shutdown::Both);
                    return;
                }
                wait(&mut waited);
                continue;
            }
            let n = room.min(data.len());
            if client.write_all(&data[..n]).is_err() {
                return;
            }
            sent += n;
            data = &data[n..];
        }
    }
    if let Some(b) = held_back {
        let _ = client.write_all(&[b ^ 0xff]);
    }
    let _ = client.shutdown(Shutdown::Write);
}

/// A GET that reports (through `got_bytes`) once the first body byte has
/// arrived, then reads the whole response. `keep` false disconnects right
/// after the first bytes.
fn get_reporting(addr: &str, path: &str, got_bytes: mpsc::Sender<()>, keep: bool) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    let mut reported = false;
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        raw.extend_from_slice(&buf[..n]);
        if !reported
            && let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n")
            && raw.len() > i + 4
        {
            reported = true;
            let _ = got_bytes.send(());
            if !keep {
                let _ = s.shutdown(Shutdown::Both);
                break;
            }
        }
    }
    parse_response(&raw, false)
}

fn sha256_hex(b: &[u8]) -> String {
    sha256(b).to_string()
}

// ------------------------------------------------------------------ tests

/// One upstream (distribution) standing for docker.io behind the counting
/// proxy, busybox pushed as `library/busybox:1.0`; a second one under its
/// own `host:port` name. Every form of request gets the upstream's exact
/// bytes, and the upstream is asked for each object once.
#[test]
fn every_form_pulls_byte_exact_and_the_cache_answers_repeats() {
    let (up_dir, up2_dir, mroot) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let up = distribution(up_dir.path());
    let up2 = distribution(up2_dir.path());
    push(busybox(), &format!("{}/library/busybox:1.0", up.addr));
    push(busybox(), &format!("{}/tools/busybox:2", up2.addr));
    let raw = manifest_get(&up, "/v2/library/busybox/manifests/1.0");
    assert_eq!(raw.status, 200);
    let digest = raw.header("Docker-Content-Digest").unwrap().to_owned();
    assert_eq!(sha256_hex(&raw.body), digest);
    let px = Proxy::start(&up.addr);
    let m = mirror(
        mroot.path(),
        &[
            "--mirror",
            &format!("docker.io=http://{}", px.addr),
            "--mirror",
            &format!("http://{}", up2.addr),
        ],
    );

    // Path prefix, with skopeo.
    let (layout, d) = pull(&format!("{}/docker.io/library/busybox:1.0", m.addr));
    assert_eq!(d, digest);
    settle(&m);
    assert_eq!(
        std::fs::read(blob_file(layout.path(), &digest)).unwrap(),
        raw.body
    );
    // Stored byte-exact, under the upstream's digests.
    assert_eq!(
        std::fs::read(blob_file(mroot.path(), &digest)).unwrap(),
        raw.body
    );
    for l in layers_of(&format!("oci:{}:x", layout.path().display())) {
        let b = std::fs::read(blob_file(mroot.path(), &l)).unwrap();
        assert_eq!(sha256_hex(&b), l);
    }
    // A bare name (Docker's registry-mirrors form, library/ normalised).
    assert_eq!(pull(&format!("{}/busybox:1.0", m.addr)).1, digest);
    // skopeo with a registries.conf mirror for docker.io (Docker Hub itself
    // is unreachable here: only the mirror can answer).
    let conf = mroot.path().join("registries.conf");
    std::fs::write(
        &conf,
        format!(
            "[[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\n\
             [[registry.mirror]]\nlocation = \"{}/docker.io\"\ninsecure = true\n",
            m.addr
        ),
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    run_ok(skopeo().arg("--registries-conf").arg(&conf).args([
        "copy",
        "-q",
        "--preserve-digests",
        "docker://docker.io/library/busybox:1.0",
        &format!("oci:{}:x", out.path().display()),
    ]));
    assert_eq!(layout_digest(out.path()), digest);
    // containerd's ?ns= form, raw.
    let r = manifest_get(&m, "/v2/library/busybox/manifests/1.0?ns=docker.io");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, raw.body);
    assert_eq!(r.header("Docker-Content-Digest"), Some(digest.as_str()));
    let layer = &layers_of(busybox())[0];
    let r = m
        .req(
            "GET",
            &format!("/v2/library/busybox/blobs/{layer}?ns=docker.io"),
        )
        .send();
    assert_eq!(r.status, 200);
    assert_eq!(&sha256_hex(&r.body), layer);
    // The second upstream, by ?ns=host:port and by its host:port prefix.
    let r = manifest_get(
        &m,
        &format!("/v2/tools/busybox/manifests/2?ns={}", up2.addr),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, raw.body);
    let r = manifest_get(&m, &format!("/v2/{}/tools/busybox/manifests/2", up2.addr));
    assert_eq!(r.status, 200, "{}", r.text());
    // An ns no upstream stands for is refused, not answered with another's content.
    let r = manifest_get(&m, "/v2/library/busybox/manifests/1.0?ns=ghcr.io");
    assert_eq!((r.status, r.code().as_str()), (404, "NAME_UNKNOWN"));
    // Tags are listed from the upstream (including tags never pulled
    // through the mirror).
    push(busybox(), &format!("{}/library/busybox:2.0", up.addr));
    let r = m
        .req("GET", "/v2/docker.io/library/busybox/tags/list")
        .send();
    assert_eq!(r.status, 200);
    let mut tags: Vec<String> = serde_json::from_value(r.json()["tags"].clone()).unwrap();
    tags.sort();
    assert_eq!(tags, ["1.0", "2.0"]);
    assert_eq!(r.json()["name"].as_str(), Some("docker.io/library/busybox"));
    // distribution has no referrers API: an empty index.
    let r = m
        .req(
            "GET",
            &format!("/v2/docker.io/library/busybox/referrers/{digest}"),
        )
        .send();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["manifests"], serde_json::json!([]));
    assert_eq!(metric(&m, "berth_mirror_stale_served_total"), 0.0);
    // Four pulls and raw requests, one upstream fetch per object.
    assert_eq!(px.count("GET", "/manifests/1.0"), 1);
    assert_eq!(px.count("HEAD", "/manifests/"), 0);
    assert_eq!(px.count("GET", &format!("/blobs/{layer}")), 1);
    assert!(metric(&m, "berth_mirror_manifest_hits_total") >= 3.0);
}

/// containerd's `ctr` with a `hosts.toml` naming berth as docker.io's
/// mirror: containerd sends `?ns=docker.io`.
#[test]
fn containerd_pulls_through_a_hosts_toml_mirror() {
    let (up_dir, mroot) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let up = distribution(up_dir.path());
    push(busybox(), &format!("{}/library/busybox:1.0", up.addr));
    let digest = manifest_get(&up, "/v2/library/busybox/manifests/1.0")
        .header("Docker-Content-Digest")
        .unwrap()
        .to_owned();
    let m = mirror(
        mroot.path(),
        &["--mirror", &format!("docker.io=http://{}", up.addr)],
    );
    let c = tempfile::Builder::new()
        .prefix("ctrd")
        .tempdir_in("/tmp")
        .unwrap();
    let p = |n: &str| -> PathBuf { c.path().join(n) };
    let hosts = p("hosts/docker.io");
    std::fs::create_dir_all(&hosts).unwrap();
    std::fs::write(
        hosts.join("hosts.toml"),
        format!(
            "server = \"https://registry-1.docker.io\"\n\n[host.\"http://{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            m.addr
        ),
    )
    .unwrap();
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
    run_ok(ctr().args([
        "images",
        "pull",
        "--snapshotter",
        "native",
        "--hosts-dir",
        p("hosts").to_str().unwrap(),
        "docker.io/library/busybox:1.0",
    ]));
    let out = run_ok(ctr().args(["images", "ls"]));
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains("docker.io/library/busybox:1.0") && listing.contains(&digest),
        "{listing}"
    );
    // It came through the mirror's docker.io upstream.
    assert!(metric(&m, "berth_mirror_manifest_fetches_total") >= 1.0);
    settle(&m);
    assert!(blob_file(mroot.path(), &digest).exists());
}

/// dockerd with `registry-mirrors`: `docker pull busybox:1.0` asks the
/// mirror for `library/busybox` (Docker Hub itself is unreachable here).
#[test]
fn docker_pulls_through_registry_mirrors() {
    let (up_dir, mroot) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let up = distribution(up_dir.path());
    push(busybox(), &format!("{}/library/busybox:1.0", up.addr));
    let digest = manifest_get(&up, "/v2/library/busybox/manifests/1.0")
        .header("Docker-Content-Digest")
        .unwrap()
        .to_owned();
    let m = mirror(
        mroot.path(),
        &["--mirror", &format!("docker.io=http://{}", up.addr)],
    );
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
            .arg("--registry-mirror")
            .arg(format!("http://{}", m.addr))
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
    wait_until("dockerd answers", || {
        docker()
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    run_ok(docker().args(["pull", "busybox:1.0"]));
    let out = run_ok(docker().args([
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}}",
        "busybox:1.0",
    ]));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&digest),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    settle(&m);
    assert!(blob_file(mroot.path(), &digest).exists());
}

/// Twenty clients ask for the same uncached 2 MB blob while the upstream's
/// answer is held half-sent: all of them receive bytes before the blob is
/// complete (streaming), and the upstream is asked once (single flight).
#[test]
fn concurrent_blob_requests_share_one_streaming_upstream_fetch() {
    let (up_dir, mroot) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let up = distribution(up_dir.path());
    let (_img, src) = random_image("rnd", 7, 2 << 20);
    push(&src, &format!("{}/library/rnd:1", up.addr));
    let layer = layers_of(&src)[0].clone();
    let px = Proxy::start(&up.addr);
    let m = mirror(
        mroot.path(),
        &["--mirror", &format!("docker.io=http://{}", px.addr)],
    );
    px.rule(&format!("/blobs/{layer}"), Act::Hold { after: 64 << 10 });
    let (tx, rx) = mpsc::channel();
    let clients: Vec<_> = (0..20)
        .map(|_| {
            let (addr, tx) = (m.addr.clone(), tx.clone());
            let path = format!("/v2/docker.io/library/rnd/blobs/{layer}");
            std::thread::spawn(move || get_reporting(&addr, &path, tx, true))
        })
        .collect();
    for i in 0..20 {
        rx.recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!("only {i} of 20 clients got bytes before the upstream finished")
            });
    }
    // The bytes are written once: clients read the ingest file itself.
    let ingests = std::fs::read_dir(mroot.path().join("ingest"))
        .unwrap()
        .count();
    assert_eq!(ingests, 1, "one ingest file while the blob streams");
    px.release();
    for c in clients {
        let r = c.join().unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(sha256_hex(&r.body), layer, "{} bytes", r.body.len());
    }
    assert_eq!(px.count("GET", &format!("/blobs/{layer}")), 1);
    assert_eq!(metric(&m, "berth_mirror_blob_joins_total"), 19.0);
    wait_until("the blob is committed", || {
        blob_file(mroot.path(), &layer).exists()
    });
    // Now a cache hit.
    let r = m
        .req("GET", &format!("/v2/docker.io/library/rnd/blobs/{layer}"))
        .send();
    assert_eq!(sha256_hex(&r.body), layer);
    assert_eq!(px.count("GET", &format!("/blobs/{layer}")), 1);
}

/// Twenty clients ask for the same uncached tag while the upstream's
/// manifest is held: one upstream fetch, twenty identical answers.
#[test]
fn concurrent_manifest_requests_share_one_upstream_fetch() {
    let (up_dir, mroot) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let up = distribution(up_dir.path());
    push(busybox(), &format!("{}/library/busybox:1.0", up.addr));
    let raw = manifest_get(&up, "/v2/library/busybox/manifests/1.0");
    let px = Proxy::start(&up.addr);
    let m = mirror(
        mroot.path(),
        &["--mirror", &format!("docker.io=http://{}", px.addr)],
    );
    px.rule("/manifests/", Act::Hold { after: 0 });
    let clients: Vec<_> = (0..20)
        .map(|_| {
            let addr = m.addr.clone();
            std::thread::spawn(move || {
                raw_get(&addr, "/v2/docker.io/library/busybox/manifests/1.0")
            })
        })
        .collect();
    wait_until("20 requests wait for the manifest", || {
        metric(&m, "berth_mirror_manifest_waiting") == 20.0
    });
    px.release();
    for c in clients {
        let r = c.join().unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.body, raw.body);
    }
    assert_eq!(px.count("GET", "/manifests/1.0"), 1);
    assert_eq!(metric(&m, "berth_mirror_manifest_joins_total"), 19.0);
}

/// A client that goes away mid-blob does not stop the fetch: the blob is
/// cached for the next client without asking the upstream again.
#[test]
fn a_client_disconnecting_does_not_abort_caching() {
    let (up_dir, mroot) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let up = distribution(up_dir.path());
    let (_img, src) = random_image("gone", 11, 1 << 20);
    push(&src, &format!("{}/library/gone:1", up.addr));
    let layer = layers_of(&src)[0].clone();
    let px = Proxy::start(&up.addr);
    let m = mirror(
        mroot.path(),
        &["--mirror", &format!("docker.io=http://{}", px.addr)],
    );
    px.rule(&format!("/blobs/{layer}"), Act::Hold { after: 32 << 10 });
    let (tx, rx) = mpsc::channel();
    let path = format!("/v2/docker.io/library/gone/blobs/{layer}");
    let (addr, p2) = (m.addr.clone(), path.clone());
    let c = std::thread::spawn(move || get_reporting(&addr, &p2, tx, false));
    rx.recv_timeout(Duration::from_secs(60)).unwrap();
    let r = c.join().unwrap();
    assert!(r.body.len() < 1 << 20, "the client left early");
    px.release();
    wait_until("the blob is committed", || {
        blob_file(mroot.path(), &layer).exists()
    });
    let r = m.req("GET", &path).send();
    assert_eq!(r.status, 200);
    assert_eq!(sha256_hex(&r.body), layer);
    assert_eq!(px.count("GET", &format!("/blobs/{layer}")), 1);
}

/// A flight receives only a little ahead of its fastest client, but a
/// client that stops reading does not hold it: the blob is fetched whole
/// and cached meanwhile, and the client still gets all of it afterwards.
#[test]
fn a_client_that_stops_reading_does_not_hold_the_fetch() {
    let (up_dir, mroot) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let up = distribution(up_dir.path());
    // Larger than what the lead and the sockets' buffers hold together.
    let (_img, src) = random_image("paused", 17, 48 << 20);
    push(&src, &format!("{}/library/paused:1", up.addr));
    let layer = layers_of(&src)[0].clone();
    let m = mirror(
        mroot.path(),
        &["--mirror", &format!("docker.io=http://{}", up.addr)],
    );
    let path = format!("/v2/docker.io/library/paused/blobs/{layer}");
    let mut s = TcpStream::connect(&m.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        m.addr
    )
    .unwrap();
    let mut raw = vec![0u8; 64 << 10];
    s.read_exact(&mut raw).unwrap();
    // The client reads nothing more until the blob is in the store.
    wait_until(
        "the blob is committed while its client does not read",
        || blob_file(mroot.path(), &layer).exists(),
    );
    s.read_to_end(&mut raw).unwrap();
    let r = parse_response(&raw, false);
    assert_eq!(r.status, 200);
    assert_eq!(sha256_hex(&r.body), layer);
    assert_eq!(metric(&m, "berth_mirror_blob_fetches_total"), 1.0);
}

/// Bytes that do not match their digest, or an upstream dying mid-blob:
/// the client's transfer fails (never a complete wrong body), nothing is
/// cached, and the next attempt against a healthy upstream succeeds.
#[test]
fn corrupt_or_truncated_upstream_content_is_never_cached() {
    let (up_dir, mroot) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let up = distribution(up_dir.path());
    let (_img, src) = random_image("bad", 13, 1 << 20);
    push(&src, &format!("{}/library/bad:1", up.addr));
    let layer = layers_of(&src)[0].clone();
    let manifest = manifest_get(&up, "/v2/library/bad/manifests/1");
    let mdigest = manifest.header("Docker-Content-Digest").unwrap().to_owned();
    let px = Proxy::start(&up.addr);
    let m = mirror(
        mroot.path(),
        &["--mirror", &format!("docker.io=http://{}", px.addr)],
    );
    let path = format!("/v2/docker.io/library/bad/blobs/{layer}");
    let size = up
        .req("GET", &format!("/v2/library/bad/blobs/{layer}"))
        .send()
        .body
        .len();
    let ingest_empty = || {
        std::fs::read_dir(mroot.path().join("ingest"))
            .unwrap()
            .next()
            .is_none()
    };
    for act in [Act::Corrupt, Act::Cut { after: 100 << 10 }] {
        px.rule(&format!("/blobs/{layer}"), act.clone());
        // The connection may close before or after the head: either way
        // no complete body.
        let raw = get_raw(&m.addr, &path);
        if raw.windows(4).any(|w| w == b"\r\n\r\n") {
            let r = parse_response(&raw, false);
            assert!(
                r.status != 200 || r.body.len() < size,
                "{act:?}: the client must not get a complete body ({} bytes, {})",
                r.body.len(),
                r.status
            );
        }
        px.clear();
        wait_until("the failed fetch is cleaned up", ingest_empty);
        assert!(!blob_file(mroot.path(), &layer).exists(), "{act:?}");
    }
    assert_eq!(metric(&m, "berth_mirror_digest_mismatches_total"), 1.0);
    let r = m.req("GET", &path).send();
    assert_eq!(r.status, 200);
    assert_eq!(sha256_hex(&r.body), layer);
    // Manifests: a corrupt one is refused (by digest and by tag) and not stored.
    px.rule("/manifests/", Act::Corrupt);
    for reference in [mdigest.as_str(), "1"] {
        let r = manifest_get(
            &m,
            &format!("/v2/docker.io/library/bad/manifests/{reference}"),
        );
        assert_eq!(r.status, 502, "{reference}: {}", r.text());
    }
    assert!(!blob_file(mroot.path(), &mdigest).exists());
    px.clear();
    let r = manifest_get(&m, "/v2/docker.io/library/bad/manifests/1");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, manifest.body);
}

/// With the upstream gone, cached content is still served (tags included,
/// even past their TTL); what was never cached is an error that says so.
#[test]
fn an_unreachable_upstream_means_the_cache_is_served() {
    let (up_dir, mroot) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut up = distribution(up_dir.path());
    push(busybox(), &format!("{}/library/busybox:1.0", up.addr));
    let m = mirror(
        mroot.path(),
        &[
            "--mirror",
            &format!("docker.io=http://{}", up.addr),
            "--mirror-ttl-secs",
            "0",
        ],
    );
    let (_l, digest) = pull(&format!("{}/docker.io/library/busybox:1.0", m.addr));
    settle(&m);
    up.kill9();
    let (_l, again) = pull(&format!("{}/docker.io/library/busybox:1.0", m.addr));
    assert_eq!(again, digest);
    let (_l, bare) = pull(&format!("{}/busybox:1.0", m.addr));
    assert_eq!(bare, digest);
    assert!(metric(&m, "berth_mirror_stale_served_total") >= 2.0);
    // Never cached: a gateway error through the prefix, "not found" for a
    // bare name (the local registry's answer).
    let r = manifest_get(&m, "/v2/docker.io/library/other/manifests/1");
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("unavailable"), "{}", r.text());
    let r = manifest_get(&m, "/v2/other/manifests/1");
    assert_eq!((r.status, r.code().as_str()), (404, "MANIFEST_UNKNOWN"));
    let r = m
        .req("GET", "/v2/docker.io/library/busybox/tags/list")
        .send();
    assert_eq!(r.json()["tags"], serde_json::json!(["1.0"]));
}

/// Tags are re-validated after the TTL (a `HEAD`; the manifest is fetched
/// again only if the digest changed); within it the upstream is not asked.
#[test]
fn tags_are_revalidated_after_their_ttl() {
    let (up_dir, a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let up = distribution(up_dir.path());
    let (_i1, one) = random_image("one", 1, 1000);
    let (_i2, two) = random_image("two", 2, 1000);
    push(&one, &format!("{}/library/app:1", up.addr));
    let d1 = manifest_get(&up, "/v2/library/app/manifests/1")
        .header("Docker-Content-Digest")
        .unwrap()
        .to_owned();
    let (p0, p_long) = (Proxy::start(&up.addr), Proxy::start(&up.addr));
    let always = mirror(
        a.path(),
        &[
            "--mirror",
            &format!("docker.io=http://{}", p0.addr),
            "--mirror-ttl-secs",
            "0",
        ],
    );
    let long = mirror(
        b.path(),
        &[
            "--mirror",
            &format!("docker.io=http://{}", p_long.addr),
            "--mirror-ttl-secs",
            "3600",
        ],
    );
    let short = mirror(
        c.path(),
        &[
            "--mirror",
            &format!("docker.io=http://{}", up.addr),
            "--mirror-ttl-secs",
            "1",
        ],
    );
    let tag = |s: &Server| {
        let r = manifest_get(s, "/v2/docker.io/library/app/manifests/1");
        assert_eq!(r.status, 200, "{}", r.text());
        r.header("Docker-Content-Digest").unwrap().to_owned()
    };
    for s in [&always, &long, &short] {
        assert_eq!(tag(s), d1);
        settle(s);
    }
    // Unchanged upstream: TTL 0 re-validates with a HEAD, no new GET.
    assert_eq!(tag(&always), d1);
    settle(&always);
    assert_eq!(p0.count("GET", "/manifests/1"), 1);
    assert_eq!(p0.count("HEAD", "/manifests/1"), 1);
    // The tag moves upstream.
    push(&two, &format!("{}/library/app:1", up.addr));
    let d2 = manifest_get(&up, "/v2/library/app/manifests/1")
        .header("Docker-Content-Digest")
        .unwrap()
        .to_owned();
    assert_ne!(d1, d2);
    assert_eq!(tag(&always), d2);
    assert_eq!(p0.count("GET", "/manifests/1"), 2);
    // Within the TTL: the old digest, and the upstream is not asked.
    assert_eq!(tag(&long), d1);
    assert_eq!(p_long.count("GET", "/manifests/"), 1);
    assert_eq!(p_long.count("HEAD", "/manifests/"), 0);
    // Past a 1 s TTL the new digest shows.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(tag(&short), d2);
    // The old manifest stays addressable by digest.
    let r = manifest_get(&short, &format!("/v2/docker.io/library/app/manifests/{d1}"));
    assert_eq!(r.status, 200);
}

/// A small size limit evicts the least recently used mirrored content;
/// local repositories (and mirrored blobs that local images also use) keep
/// their bytes.
#[test]
fn lru_eviction_under_a_small_limit_spares_local_content() {
    let (up_dir, mroot) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let up = distribution(up_dir.path());
    let size = 300_000;
    let (_ia, a) = random_image("a", 21, size);
    let (_ib, b) = random_image("b", 22, size);
    let (_ic, c) = random_image("c", 23, size);
    let (_id, d) = random_image("d", 24, size);
    for (src, name) in [(&a, "a"), (&b, "b"), (&d, "d")] {
        push(src, &format!("{}/library/{name}:1", up.addr));
    }
    let m = mirror(
        mroot.path(),
        &[
            "--mirror",
            &format!("docker.io=http://{}", up.addr),
            "--mirror-cache-max-bytes",
            "500000",
        ],
    );
    // Local repositories: c, and d (which is also mirrored).
    push(&c, &format!("{}/team/c:1", m.addr));
    push(&d, &format!("{}/team/d:1", m.addr));
    let layer = |src: &str| layers_of(src)[0].clone();
    let (la, lb, lc, ld) = (layer(&a), layer(&b), layer(&c), layer(&d));
    pull(&format!("{}/docker.io/library/d:1", m.addr));
    settle(&m);
    pull(&format!("{}/docker.io/library/a:1", m.addr));
    settle(&m);
    assert!(blob_file(mroot.path(), &la).exists());
    pull(&format!("{}/docker.io/library/b:1", m.addr));
    wait_until("a's layer is evicted", || {
        !blob_file(mroot.path(), &la).exists()
    });
    for (what, l) in [("b", &lb), ("local c", &lc), ("local d", &ld)] {
        assert!(blob_file(mroot.path(), l).exists(), "{what} was evicted");
    }
    assert!(metric(&m, "berth_mirror_cache_bytes") <= 500_000.0);
    assert!(metric(&m, "berth_mirror_evicted_bytes_total") >= size as f64);
    // Local images still pull whole; a is fetched again on demand.
    pull(&format!("{}/team/d:1", m.addr));
    pull(&format!("{}/team/c:1", m.addr));
    pull(&format!("{}/docker.io/library/a:1", m.addr));
}

/// Pushes to mirrored names are refused with a distribution error that says
/// why; pushes to local names make local repositories, which win over the
/// default upstream for bare names.
#[test]
fn pushes_to_mirrored_names_are_refused_and_local_pushes_work() {
    let (up_dir, mroot) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let up = distribution(up_dir.path());
    let px = Proxy::start(&up.addr);
    let m = mirror(
        mroot.path(),
        &["--mirror", &format!("docker.io=http://{}", px.addr)],
    );
    let out = run(skopeo().args([
        "copy",
        "-q",
        "--dest-tls-verify=false",
        busybox(),
        &format!("docker://{}/docker.io/library/pushed:1", m.addr),
    ]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("read-only"), "{err}");
    for (method, path) in [
        ("POST", "/v2/docker.io/library/x/blobs/uploads/"),
        ("POST", "/v2/team/x/blobs/uploads/?ns=docker.io"),
        ("PUT", "/v2/docker.io/team/x/manifests/1"),
        ("DELETE", "/v2/docker.io/library/x/manifests/1"),
        // Docker Hub's official images cannot be shadowed by a local push.
        ("POST", "/v2/library/x/blobs/uploads/"),
        ("PUT", "/v2/busybox/manifests/1"),
    ] {
        let r = m.req(method, path).send();
        assert_eq!(
            (r.status, r.code().as_str()),
            (403, "DENIED"),
            "{method} {path}"
        );
        assert!(r.text().contains("mirrored from"), "{}", r.text());
    }
    // A local push, and its pull back.
    push(busybox(), &format!("{}/team/app:1", m.addr));
    let src = run_ok(skopeo().args(["inspect", "--raw", busybox()])).stdout;
    let r = manifest_get(&m, "/v2/team/app/manifests/1");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, src);
    let (_l, d) = pull(&format!("{}/team/app:1", m.addr));
    assert_eq!(d, sha256_hex(&src));
    // The upstream never heard of it; the catalog lists local repositories only.
    assert_eq!(px.count("", "team/app"), 0);
    let r = m.req("GET", "/v2/_catalog").send();
    assert_eq!(r.json()["repositories"], serde_json::json!(["team/app"]));
    // A bare name neither local nor upstream: not found.
    let r = manifest_get(&m, "/v2/team/nothing/manifests/1");
    assert_eq!((r.status, r.code().as_str()), (404, "MANIFEST_UNKNOWN"));
}

fn htpasswd() -> String {
    common::repo_root()
        .join("testdata/registry/htpasswd")
        .display()
        .to_string()
}

/// Upstreams with Docker's token flow (with credentials, and anonymous) and
/// with basic auth, configured in the TOML file with per-upstream
/// credentials; wrong or missing credentials are a clear DENIED.
#[test]
fn upstream_auth_token_flow_and_basic() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let hp = htpasswd();
    let token = Server::start(
        dirs[0].path(),
        &["--auth", "token", "--htpasswd", &hp, "--grant", "alice:*:*"],
    );
    let anon = Server::start(
        dirs[1].path(),
        &[
            "--auth",
            "token",
            "--htpasswd",
            &hp,
            "--anonymous-pull",
            "--grant",
            "alice:*:*",
        ],
    );
    let basic = Server::start(
        dirs[2].path(),
        &["--auth", "basic", "--htpasswd", &hp, "--grant", "alice:*:*"],
    );
    for (s, repo, tag) in [
        (&token, "secure", "1"),
        (&token, "secure", "2"),
        (&anon, "pub", "1"),
        (&basic, "plain", "1"),
    ] {
        run_ok(skopeo().args([
            "copy",
            "-q",
            "--preserve-digests",
            "--dest-tls-verify=false",
            "--dest-creds",
            "alice:wonderland",
            busybox(),
            &format!("docker://{}/{repo}/busybox:{tag}", s.addr),
        ]));
    }
    let digest = sha256_hex(&run_ok(skopeo().args(["inspect", "--raw", busybox()])).stdout);
    let pw = dirs[3].path().join("pw");
    std::fs::write(&pw, "wonderland\n").unwrap();
    let cfg = dirs[3].path().join("mirror.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[[mirror]]
url = "http://{t}"
registry = "token.test"
username = "alice"
password = "wonderland"

[[mirror]]
url = "http://{t}"
registry = "wrong.test"
username = "alice"
password = "not-her-password"

[[mirror]]
url = "http://{a}"
registry = "anon.test"

[[mirror]]
url = "http://{b}"
registry = "basic.test"
username = "alice"
password_file = "{pw}"
ttl_secs = 60

[[mirror]]
url = "http://{b}"
registry = "nocreds.test"
"#,
            t = token.addr,
            a = anon.addr,
            b = basic.addr,
            pw = pw.display()
        ),
    )
    .unwrap();
    let mroot = tempfile::tempdir().unwrap();
    let m = mirror(mroot.path(), &["--config", cfg.to_str().unwrap()]);
    for name in [
        "token.test/secure/busybox:1",
        "anon.test/pub/busybox:1",
        "basic.test/plain/busybox:1",
    ] {
        assert_eq!(pull(&format!("{}/{name}", m.addr)).1, digest, "{name}");
    }
    // Tag lists come from the upstream, paginated as the client asks, with
    // the next page's link at the mirror's path.
    let r = m
        .req("GET", "/v2/token.test/secure/busybox/tags/list?n=1")
        .send();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["tags"], serde_json::json!(["1"]));
    assert_eq!(
        r.header("Link"),
        Some("</v2/token.test/secure/busybox/tags/list?n=1&last=1>; rel=\"next\"")
    );
    for path in [
        "/v2/wrong.test/secure/busybox/manifests/1",
        "/v2/nocreds.test/plain/busybox/manifests/1",
    ] {
        let r = manifest_get(&m, path);
        assert_eq!((r.status, r.code().as_str()), (403, "DENIED"), "{path}");
        assert!(r.text().contains("unauthorized"), "{}", r.text());
    }
}

/// `berth registry gc` and `berth image prune` keep mirrored content: it
/// goes only by the mirror's own size limit.
#[test]
fn gc_and_prune_keep_mirrored_content() {
    let (up_dir, mroot) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut up = distribution(up_dir.path());
    push(busybox(), &format!("{}/library/busybox:1.0", up.addr));
    let m = mirror(
        mroot.path(),
        &["--mirror", &format!("docker.io=http://{}", up.addr)],
    );
    let (layout, digest) = pull(&format!("{}/docker.io/library/busybox:1.0", m.addr));
    let layer = layers_of(&format!("oci:{}:x", layout.path().display()))[0].clone();
    settle(&m);
    drop(m);
    common::ok(common::berth(mroot.path()).args(["registry", "gc", "--grace-secs", "0"]));
    common::ok(common::berth(mroot.path()).args(["image", "prune", "-a"]));
    for d in [&digest, &layer] {
        assert!(blob_file(mroot.path(), d).exists(), "{d} was collected");
    }
    up.kill9();
    let m = mirror(
        mroot.path(),
        &["--mirror", &format!("docker.io=http://{}", up.addr)],
    );
    assert_eq!(
        pull(&format!("{}/docker.io/library/busybox:1.0", m.addr)).1,
        digest
    );
}

// ------------------------------------------------------------------ daemons
