//! `berth pull`, `berth push`, `berth login`/`logout` against real
//! registries: berth's own `registry serve` and Debian's `docker-registry`
//! (CNCF distribution), with skopeo as an independent client on the other
//! side. A tiny hand-written HTTP server plays the registries nobody would
//! run on purpose: one that lies about a blob's bytes, one that drops the
//! connection mid-blob and answers 503 once.
//!
//! Every test isolates berth's and Docker's configuration (`BERTH_CONFIG`,
//! `DOCKER_CONFIG`, `HOME`) in temporary directories.

mod common;
mod registry_support;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use common::{berth, fails, json, ok, stderr, store_state, store_with_busybox};
use registry_support::{Distribution, Server};

/// A `berth` command on store `root` with its own, empty configuration.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        for d in ["berth-config", "docker-config", "home", "bin"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        Env { dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn berth(&self, root: &Path) -> Command {
        let mut c = berth(root);
        c.env("BERTH_CONFIG", self.path("berth-config"))
            .env("DOCKER_CONFIG", self.path("docker-config"))
            .env("HOME", self.path("home"))
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    self.path("bin").display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            );
        c
    }
}

fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo is installed (apt-get install skopeo)");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The manifest digest and image id of a local image.
fn ids(root: &Path, name: &str) -> (String, String) {
    let v = json(&ok(berth(root).args(["inspect", name])));
    (
        v[0]["Descriptor"]["digest"].as_str().unwrap().to_owned(),
        v[0]["Id"].as_str().unwrap().to_owned(),
    )
}

/// Push busybox to `addr`, pull it into a fresh store, compare; then check
/// the skip-existing and cross-repository-mount paths. Returns the pushed
/// manifest digest.
fn roundtrip(env: &Env, addr: &str, chunk: Option<&str>) -> String {
    let src = store_with_busybox();
    let (digest, id) = ids(src.path(), "busybox");
    let name = format!("{addr}/library/busybox:1.0");
    let mut push = env.berth(src.path());
    push.args(["push", "busybox", &name]);
    if let Some(c) = chunk {
        push.args(["--chunk-size", c]);
    }
    let out = push.output().unwrap();
    assert!(out.status.success(), "push failed: {}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with(&format!("1.0: digest: {digest} size: ")),
        "{stdout}"
    );
    let err = stderr(&out);
    assert_eq!(err.matches(": Pushed").count(), 2, "config + layer: {err}");

    // skopeo reads what we pushed, byte for byte.
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{name}"),
    ]);
    assert_eq!(common::sha256_hex(raw.as_bytes()), digest[7..]);

    // Back into a fresh store: same manifest digest and image id, a complete image.
    let dst = tempfile::tempdir().unwrap();
    let out = ok(env.berth(dst.path()).args(["pull", &name]));
    assert_eq!(out.trim(), name);
    assert_eq!(ids(dst.path(), &name), (digest.clone(), id.clone()));
    ok(berth(dst.path()).args(["system", "check"]));
    // Pulling again downloads nothing.
    let again = env
        .berth(dst.path())
        .args(["pull", &name])
        .output()
        .unwrap();
    assert!(again.status.success());
    let e = stderr(&again);
    assert_eq!(e.matches("Already exists").count(), 2, "{e}");
    assert!(e.contains("Image is up to date"), "{e}");

    // Pushing again uploads nothing: the registry has every blob.
    let out = env
        .berth(src.path())
        .args(["push", "busybox", &name])
        .output()
        .unwrap();
    assert!(out.status.success());
    let e = stderr(&out);
    assert_eq!(e.matches("Layer already exists").count(), 2, "{e}");

    // A second repository on the same registry mounts the blobs from the
    // first, which the store knows holds them (the pulled image's name).
    let other = format!("{addr}/team/bb:x");
    ok(berth(dst.path()).args(["tag", &name, &other]));
    let out = env
        .berth(dst.path())
        .args(["push", &other])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let e = stderr(&out);
    assert_eq!(e.matches("Mounted from library/busybox").count(), 2, "{e}");
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{other}"),
    ]);
    assert_eq!(common::sha256_hex(raw.as_bytes()), digest[7..]);
    digest
}

#[test]
fn push_pull_berth_registry() {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    roundtrip(&env, &s.addr, None);
    assert_eq!(requests(&s, "PATCH"), 0, "monolithic uploads only");
}

/// How many requests with `method` the berth registry has answered (from its metrics).
fn requests(s: &Server, method: &str) -> u64 {
    let text = s.req("GET", "/metrics").send().text();
    text.lines()
        .filter(|l| {
            l.starts_with("berth_registry_requests_total{")
                && l.contains(&format!("method=\"{method}\""))
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

#[test]
fn push_pull_distribution_monolithic_and_chunked() {
    let env = Env::new();
    let d = Distribution::start();
    roundtrip(&env, &d.addr, None);
    let d2 = Distribution::start();
    // Chunks much smaller than the busybox layer: many PATCH requests.
    roundtrip(&env, &d2.addr, Some("200000"));
}

#[test]
fn chunked_push_to_berth_registry() {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    roundtrip(&env, &s.addr, Some("100000"));
    // The busybox layer is about 1 MB: at least ten 100 kB chunks.
    let patches = requests(&s, "PATCH");
    assert!(patches >= 11, "{patches} PATCH requests");
}

#[test]
fn pull_what_skopeo_pushed() {
    let env = Env::new();
    let d = Distribution::start();
    let src = store_with_busybox();
    let name = format!("{}/sk/busybox:v1", d.addr);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!(
            "oci:{}:docker.io/library/busybox:latest",
            src.path().display()
        ),
        &format!("docker://{name}"),
    ]);
    let theirs = json(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{name}"),
    ]));
    let dst = tempfile::tempdir().unwrap();
    ok(env.berth(dst.path()).args(["pull", "-q", &name]));
    let (digest, _) = ids(dst.path(), &name);
    assert_eq!(theirs["Digest"].as_str().unwrap(), digest);
    ok(berth(dst.path()).args(["system", "check"]));
    // By digest too: the name records the digest.
    let by_digest = format!("{}/sk/busybox@{digest}", d.addr);
    let dst2 = tempfile::tempdir().unwrap();
    ok(env.berth(dst2.path()).args(["pull", "-q", &by_digest]));
    assert_eq!(ids(dst2.path(), &by_digest).0, digest);
}

/// A small gzip'd layer holding one file.
fn gz_layer(name: &str, content: &[u8]) -> Vec<u8> {
    let mut tar_bytes = Vec::new();
    {
        let mut b = tar::Builder::new(&mut tar_bytes);
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, content).unwrap();
        b.finish().unwrap();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar_bytes).unwrap();
    gz.finish().unwrap()
}

/// (config, layer, manifest) for a one-layer image of `arch`.
fn image_for(arch: &str, variant: Option<&str>) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let content = format!("built for {arch}\n");
    let layer = gz_layer("arch.txt", content.as_bytes());
    let mut tar_bytes = Vec::new();
    flate2::read::GzDecoder::new(&layer[..])
        .read_to_end(&mut tar_bytes)
        .unwrap();
    let mut config = serde_json::json!({
        "architecture": arch, "os": "linux",
        "config": {"Cmd": ["cat", "/arch.txt"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", common::sha256_hex(&tar_bytes))]},
    });
    if let Some(v) = variant {
        config["variant"] = v.into();
    }
    let config = serde_json::to_vec(&config).unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": format!("sha256:{}", common::sha256_hex(&config)), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": format!("sha256:{}", common::sha256_hex(&layer)), "size": layer.len()}],
    }))
    .unwrap();
    (config, layer, manifest)
}

#[test]
fn index_platform_selection() {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &[]);
    let host = berth_oci::Platform::host();
    let other_arch = if host.architecture == "amd64" {
        "arm64"
    } else {
        "amd64"
    };
    let other_variant = (other_arch == "arm64").then_some("v8");
    let mut entries = Vec::new();
    for (arch, variant) in [
        (host.architecture.as_str(), host.variant.as_deref()),
        (other_arch, other_variant),
    ] {
        let (config, layer, manifest) = image_for(arch, variant);
        registry_support::push_blob(&s, "multi", &config);
        registry_support::push_blob(&s, "multi", &layer);
        let d = registry_support::sha256(&manifest);
        let r = s
            .req("PUT", &format!("/v2/multi/manifests/{d}"))
            .header("Content-Type", registry_support::OCI_MANIFEST)
            .body(manifest.clone())
            .send();
        assert_eq!(r.status, 201, "{}", r.text());
        let mut platform = serde_json::json!({"architecture": arch, "os": "linux"});
        if let Some(v) = variant {
            platform["variant"] = v.into();
        }
        entries.push(serde_json::json!({
            "mediaType": registry_support::OCI_MANIFEST,
            "digest": d.to_string(), "size": manifest.len(), "platform": platform,
        }));
    }
    let index = serde_json::to_vec_pretty(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": registry_support::OCI_INDEX,
        "manifests": entries,
    }))
    .unwrap();
    let r = s
        .req("PUT", "/v2/multi/manifests/1")
        .header("Content-Type", registry_support::OCI_INDEX)
        .body(index.clone())
        .send();
    assert_eq!(r.status, 201, "{}", r.text());
    let name = format!("{}/multi:1", s.addr);
    let arch_of = |root: &Path| {
        json(&ok(berth(root).args(["inspect", &name])))[0]["Architecture"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    // Default: the host's platform; the name points at that manifest.
    let a = tempfile::tempdir().unwrap();
    ok(env.berth(a.path()).args(["pull", "-q", &name]));
    assert_eq!(arch_of(a.path()), host.architecture);
    assert_eq!(
        ids(a.path(), &name).0,
        entries[0]["digest"].as_str().unwrap()
    );
    ok(berth(a.path()).args(["system", "check"]));

    // --platform picks the other one.
    let b = tempfile::tempdir().unwrap();
    let platform = match other_variant {
        Some(v) => format!("linux/{other_arch}/{v}"),
        None => format!("linux/{other_arch}"),
    };
    ok(env
        .berth(b.path())
        .args(["pull", "-q", "--platform", &platform, &name]));
    assert_eq!(arch_of(b.path()), other_arch);
    assert_eq!(
        ids(b.path(), &name).0,
        entries[1]["digest"].as_str().unwrap()
    );

    // A platform the index lacks: a clear error, nothing stored.
    let c = tempfile::tempdir().unwrap();
    ok(berth(c.path()).args(["images"]));
    let before = store_state(c.path());
    let out = fails(
        env.berth(c.path())
            .args(["pull", "--platform", "linux/s390x", &name]),
    );
    let e = stderr(&out);
    assert!(e.contains("no manifest for platform linux/s390x"), "{e}");
    assert!(e.contains(&format!("linux/{other_arch}")), "{e}");
    assert_eq!(store_state(c.path()), before);

    // --all-platforms keeps the index (exact bytes) and both images; pushing
    // it elsewhere sends the index and both children.
    let d = tempfile::tempdir().unwrap();
    ok(env
        .berth(d.path())
        .args(["pull", "-q", "--all-platforms", &name]));
    let index_digest = registry_support::sha256(&index).to_string();
    assert_eq!(ids(d.path(), &name).0, index_digest);
    ok(berth(d.path()).args(["system", "check"]));
    let copy = format!("{}/copy:2", s.addr);
    ok(env.berth(d.path()).args(["push", &name, &copy]));
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{copy}"),
    ]);
    assert_eq!(raw.as_bytes(), &index[..]);
    for e in &entries {
        let digest = e["digest"].as_str().unwrap();
        let r = s
            .req("HEAD", &format!("/v2/copy/manifests/{digest}"))
            .send();
        assert_eq!(r.status, 200, "child {digest} was pushed");
    }
}

fn htpasswd() -> String {
    common::repo_root()
        .join("testdata/registry/htpasswd")
        .display()
        .to_string()
}

fn login(env: &Env, root: &Path, addr: &str, user: &str, password: &str) -> std::process::Output {
    let mut child = env
        .berth(root)
        .args(["login", "-u", user, "--password-stdin", addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn auth_roundtrip(mode: &str) {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let hp = htpasswd();
    let s = Server::start(dir.path(), &["--auth", mode, "--htpasswd", &hp]);
    let src = store_with_busybox();
    let name = format!("{}/private/busybox:1", s.addr);

    // No credentials: refused, with a hint.
    let out = fails(env.berth(src.path()).args(["push", "busybox", &name]));
    let e = stderr(&out);
    assert!(e.contains("unauthorized"), "{e}");
    assert!(e.contains("berth login"), "{e}");

    // Wrong password: refused, nothing stored.
    let out = login(&env, src.path(), &s.addr, "alice", "wrong");
    assert!(!out.status.success(), "{}", stderr(&out));
    let auth_file = env.path("berth-config/auth.json");
    assert!(!auth_file.exists());

    let out = login(&env, src.path(), &s.addr, "alice", "wonderland");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Login Succeeded\n");
    use std::os::unix::fs::PermissionsExt as _;
    let mode_bits = std::fs::metadata(&auth_file).unwrap().permissions().mode();
    assert_eq!(mode_bits & 0o777, 0o600);
    ok(env.berth(src.path()).args(["push", "-q", "busybox", &name]));
    let dst = tempfile::tempdir().unwrap();
    ok(env.berth(dst.path()).args(["pull", "-q", &name]));
    assert_eq!(ids(dst.path(), &name), ids(src.path(), "busybox"));

    // Logged out: refused again.
    let out = ok(env.berth(src.path()).args(["logout", &s.addr]));
    assert!(out.contains("Removing login credentials"), "{out}");
    let dst2 = tempfile::tempdir().unwrap();
    fails(env.berth(dst2.path()).args(["pull", "-q", &name]));
}

#[test]
fn login_token_auth() {
    auth_roundtrip("token");
}

#[test]
fn login_basic_auth() {
    auth_roundtrip("basic");
}

#[test]
fn docker_config_auths_and_credential_helpers() {
    use base64_encode as b64;
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let hp = htpasswd();
    let s = Server::start(
        dir.path(),
        &["--auth", "token", "--htpasswd", &hp, "--grant", "*:*:*"],
    );
    let src = store_with_busybox();
    let name = format!("{}/team/busybox:1", s.addr);
    // `auths` with base64 user:password, under a URL-shaped key.
    std::fs::write(
        env.path("docker-config/config.json"),
        format!(
            r#"{{"auths": {{"http://{}/": {{"auth": "{}"}}}}}}"#,
            s.addr,
            b64(b"bob:builder")
        ),
    )
    .unwrap();
    ok(env.berth(src.path()).args(["push", "-q", "busybox", &name]));

    // A credential helper named in credHelpers wins over auths; it is asked
    // for the registry host, and its answer is used.
    let log = env.path("helper.log");
    let helper = env.path("bin/docker-credential-berthtest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 3\nread -r url\necho \"$url\" >> {}\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"alice\",\"Secret\":\"wonderland\"}}' \"$url\"\n",
            log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        env.path("docker-config/config.json"),
        format!(
            r#"{{"auths": {{"{0}": {{"auth": "{1}"}}}}, "credHelpers": {{"{0}": "berthtest"}}}}"#,
            s.addr,
            b64(b"bob:wrong")
        ),
    )
    .unwrap();
    let dst = tempfile::tempdir().unwrap();
    ok(env.berth(dst.path()).args(["pull", "-q", &name]));
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        format!("{}\n", s.addr),
        "the helper was asked once, for the registry"
    );
    // credsStore applies to every registry; a helper saying "not found"
    // means anonymous, which this registry refuses.
    std::fs::write(
        &helper,
        "#!/bin/sh\necho 'credentials not found in native keychain'\nexit 1\n",
    )
    .unwrap();
    std::fs::write(
        env.path("docker-config/config.json"),
        r#"{"credsStore": "berthtest"}"#,
    )
    .unwrap();
    let dst2 = tempfile::tempdir().unwrap();
    let out = fails(env.berth(dst2.path()).args(["pull", "-q", &name]));
    assert!(stderr(&out).contains("unauthorized"), "{}", stderr(&out));
}

#[test]
fn anonymous_token_pull() {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let hp = htpasswd();
    let s = Server::start(
        dir.path(),
        &["--auth", "token", "--htpasswd", &hp, "--anonymous-pull"],
    );
    let src = store_with_busybox();
    let name = format!("{}/pub/busybox:1", s.addr);
    assert_eq!(
        login(&env, src.path(), &s.addr, "alice", "wonderland")
            .status
            .code(),
        Some(0)
    );
    ok(env.berth(src.path()).args(["push", "-q", "busybox", &name]));
    ok(env.berth(src.path()).args(["logout", &s.addr]));
    // No credentials at all: the anonymous token allows pulls.
    let dst = tempfile::tempdir().unwrap();
    ok(env.berth(dst.path()).args(["pull", "-q", &name]));
    assert_eq!(ids(dst.path(), &name), ids(src.path(), "busybox"));
    // ... but not pushes.
    let out =
        fails(
            env.berth(src.path())
                .args(["push", "busybox", &format!("{}/pub/other:1", s.addr)]),
        );
    let e = stderr(&out);
    assert!(e.contains("unauthorized") || e.contains("denied"), "{e}");
}

fn base64_encode(b: &[u8]) -> String {
    registry_support::base64(b)
}

// ---------------------------------------------------------------------------
// A scripted registry: the only way to get a registry that lies or breaks.

#[derive(Default)]
struct Script {
    /// path → (content type, body)
    docs: Vec<(String, String, Vec<u8>)>,
    /// The blob served for a path, and the byte count after which the first
    /// response is cut off (connection closed).
    cut_first_at: Option<usize>,
    /// Answer the first request for each manifest with 503.
    first_503: bool,
    /// (method, path, range header) of every request.
    seen: Vec<(String, String, Option<String>)>,
}

fn serve_scripted(script: Arc<Mutex<Script>>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(conn) = conn else { continue };
            let script = script.clone();
            std::thread::spawn(move || handle(conn, &script));
        }
    });
    addr
}

fn handle(mut conn: TcpStream, script: &Mutex<Script>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    // berth tries HTTPS first on loopback: hang up on a TLS ClientHello.
    match reader.fill_buf() {
        Ok(b) if b.first() != Some(&0x16) => {}
        _ => return,
    }
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut range = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("range")
        {
            range = Some(v.trim().to_owned());
        }
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let (reply, cut) = {
        let mut s = script.lock().unwrap();
        let earlier = s.seen.iter().filter(|(_, p, _)| *p == path).count();
        s.seen.push((method.clone(), path.clone(), range.clone()));
        if path == "/v2/" {
            (
                Some((200, "application/json".to_owned(), b"{}".to_vec(), None)),
                None,
            )
        } else if let Some((_, ct, body)) = s.docs.iter().find(|(p, _, _)| *p == path).cloned() {
            if s.first_503 && earlier == 0 && path.contains("/manifests/") {
                (
                    Some((503, "text/plain".into(), b"busy".to_vec(), None)),
                    None,
                )
            } else if let Some(r) = range.as_deref().and_then(|r| r.strip_prefix("bytes=")) {
                let start: usize = r.trim_end_matches('-').parse().unwrap();
                let total = body.len();
                (
                    Some((
                        206,
                        ct,
                        body[start..].to_vec(),
                        Some(format!("bytes {start}-{}/{total}", total - 1)),
                    )),
                    None,
                )
            } else {
                let cut = if earlier == 0 && path.contains("/blobs/") {
                    s.cut_first_at
                } else {
                    None
                };
                (Some((200, ct, body, None)), cut)
            }
        } else {
            (None, None)
        }
    };
    let (status, ct, body, content_range) = reply.unwrap_or((
        404,
        "application/json".into(),
        br#"{"errors":[{"code":"NOT_FOUND"}]}"#.to_vec(),
        None,
    ));
    let reason = match status {
        200 => "OK",
        206 => "Partial Content",
        503 => "Service Unavailable",
        _ => "Not Found",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(cr) = content_range {
        head.push_str(&format!("Content-Range: {cr}\r\n"));
    }
    head.push_str("\r\n");
    let _ = conn.write_all(head.as_bytes());
    if method != "HEAD" {
        let n = cut.unwrap_or(body.len()).min(body.len());
        let _ = conn.write_all(&body[..n]);
    }
    let _ = conn.flush();
    let _ = conn.shutdown(std::net::Shutdown::Both);
}

/// A script serving one image at `repo:tag`, with `layer_served` as the
/// layer's bytes (what the manifest promises is `layer`).
fn scripted_image(repo: &str, layer: &[u8], layer_served: Vec<u8>) -> (Script, Vec<u8>) {
    let diff = format!("sha256:{}", common::sha256_hex(layer));
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": berth_oci::Platform::host().architecture, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff]},
    }))
    .unwrap();
    let cd = format!("sha256:{}", common::sha256_hex(&config));
    let ld = format!("sha256:{}", common::sha256_hex(layer));
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": layer.len()}],
    }))
    .unwrap();
    let s = Script {
        docs: vec![
            (
                format!("/v2/{repo}/manifests/1"),
                "application/vnd.oci.image.manifest.v1+json".into(),
                manifest.clone(),
            ),
            (
                format!("/v2/{repo}/blobs/{cd}"),
                "application/octet-stream".into(),
                config,
            ),
            (
                format!("/v2/{repo}/blobs/{ld}"),
                "application/octet-stream".into(),
                layer_served,
            ),
        ],
        ..Script::default()
    };
    (s, manifest)
}

/// An uncompressed layer tar of about `n` bytes of varied content.
fn big_layer(n: usize) -> Vec<u8> {
    let mut data = Vec::with_capacity(n);
    let mut x: u32 = 12345;
    while data.len() < n {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        data.push((x >> 16) as u8);
    }
    let mut tar_bytes = Vec::new();
    let mut b = tar::Builder::new(&mut tar_bytes);
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "data.bin", &data[..]).unwrap();
    b.finish().unwrap();
    drop(b);
    tar_bytes
}

#[test]
fn lying_registry_changes_nothing() {
    let env = Env::new();
    let layer = big_layer(300_000);
    // Same length, one byte different.
    let mut wrong = layer.clone();
    wrong[1000] ^= 0xff;
    let (script, _) = scripted_image("evil", &layer, wrong);
    let script = Arc::new(Mutex::new(script));
    let addr = serve_scripted(script.clone());
    let store = store_with_busybox();
    let before = store_state(store.path());
    let out = fails(
        env.berth(store.path())
            .args(["pull", &format!("{addr}/evil:1")]),
    );
    let e = stderr(&out);
    assert!(e.contains("digest mismatch"), "{e}");
    assert_eq!(store_state(store.path()), before, "no blob, no tag");
    // Nothing of the lying blob is kept; what is left is the resumable
    // download of the config blob, which verified (a later pull reuses it).
    let layer_hex = common::sha256_hex(&layer);
    let leftovers: Vec<String> = std::fs::read_dir(store.path().join("ingest"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        leftovers
            .iter()
            .all(|n| n.starts_with("partial-sha256-") && !n.ends_with(&layer_hex)),
        "no leftover of the lying blob: {leftovers:?}"
    );
    ok(berth(store.path()).args(["system", "check"]));

    // More bytes than the descriptor says: refused as well.
    let mut longer = layer.clone();
    longer.extend_from_slice(b"trailing junk");
    let (script, _) = scripted_image("long", &layer, longer);
    let addr = serve_scripted(Arc::new(Mutex::new(script)));
    let out = fails(
        env.berth(store.path())
            .args(["pull", &format!("{addr}/long:1")]),
    );
    assert!(stderr(&out).contains("size mismatch"), "{}", stderr(&out));
    assert_eq!(store_state(store.path()), before);
}

#[test]
fn download_resumes_after_a_dropped_connection_and_retries_5xx() {
    let env = Env::new();
    let layer = big_layer(400_000);
    let (mut script, manifest) = scripted_image("flaky", &layer, layer.clone());
    let cut = 150_000;
    script.cut_first_at = Some(cut);
    script.first_503 = true;
    let script = Arc::new(Mutex::new(script));
    let addr = serve_scripted(script.clone());
    let store = tempfile::tempdir().unwrap();
    let name = format!("{addr}/flaky:1");
    let out = env
        .berth(store.path())
        .args(["pull", &name])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("retrying from byte"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        ids(store.path(), &name).0,
        format!("sha256:{}", common::sha256_hex(&manifest))
    );
    ok(berth(store.path()).args(["system", "check"]));
    let seen = script.lock().unwrap().seen.clone();
    let ld = format!("/v2/flaky/blobs/sha256:{}", common::sha256_hex(&layer));
    let layer_requests: Vec<_> = seen.iter().filter(|(_, p, _)| *p == ld).collect();
    assert_eq!(layer_requests.len(), 2, "{seen:?}");
    assert_eq!(layer_requests[0].2, None);
    // The second request asks for the rest only; the bytes before it were kept.
    let resumed_at: usize = layer_requests[1]
        .2
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .unwrap()
        .parse()
        .unwrap();
    assert!(resumed_at > 0 && resumed_at <= cut, "{resumed_at}");
    let manifest_gets = seen
        .iter()
        .filter(|(m, p, _)| m == "GET" && p == "/v2/flaky/manifests/1")
        .count();
    assert_eq!(manifest_gets, 2, "a 503 is retried: {seen:?}");
}

#[test]
fn loopback_tls_registry_with_a_self_signed_certificate() {
    // Loopback registries are insecure by default, as in Docker: HTTPS is
    // tried first (certificate not verified), plain HTTP only if that fails.
    // This registry speaks only TLS (HTTP/2 by ALPN), so success means HTTPS.
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root = tempfile::tempdir().unwrap();
    let s = Server::start(
        root.path(),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let src = store_with_busybox();
    let name = format!("{}/tls/busybox:1", s.addr);
    ok(env.berth(src.path()).args(["push", "-q", "busybox", &name]));
    let dst = tempfile::tempdir().unwrap();
    ok(env.berth(dst.path()).args(["pull", "-q", &name]));
    assert_eq!(ids(dst.path(), &name), ids(src.path(), "busybox"));
    // `localhost` is loopback too.
    let port = s.addr.rsplit(':').next().unwrap();
    let by_name = format!("localhost:{port}/tls/busybox:1");
    let dst2 = tempfile::tempdir().unwrap();
    ok(env.berth(dst2.path()).args(["pull", "-q", &by_name]));
    assert_eq!(ids(dst2.path(), &by_name).1, ids(src.path(), "busybox").1);
    // Logging out of a registry one never logged in to is not an error.
    let out = ok(env.berth(dst2.path()).args(["logout", &s.addr]));
    assert!(out.contains("Not logged in"), "{out}");
}
