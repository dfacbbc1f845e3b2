//! Helpers for the registry's black-box tests: start the real `berth
//! registry serve` on 127.0.0.1:0 and talk to it with a small raw HTTP/1.1
//! client (raw so tests can send what real clients would not: bad paths,
//! truncated bodies, slow headers).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_oci::{Algorithm, Digest};

/// A running server; killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: String,
    pub root: PathBuf,
}

impl Server {
    /// Starts `berth registry serve` on the store at `root` with extra flags.
    pub fn start(root: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("--root")
            .arg(root)
            .args(["registry", "serve", "--addr", "127.0.0.1:0"])
            .args(extra)
            .env("BERTH_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("berth starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server prints its address within 30 s");
        let addr = line
            .strip_prefix("listening on ")
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Server {
            child,
            addr,
            root: root.to_owned(),
        }
    }

    pub fn req(&self, method: &str, path: &str) -> Req {
        Req {
            addr: self.addr.clone(),
            method: method.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait (bounded) for a clean exit; returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "server did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A request being built.
pub struct Req {
    addr: String,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// A parsed response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The first error code of an error response.
    pub fn code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Req {
    pub fn header(mut self, k: &str, v: &str) -> Req {
        self.headers.push((k.to_owned(), v.to_owned()));
        self
    }

    pub fn body(mut self, b: impl Into<Vec<u8>>) -> Req {
        self.body = b.into();
        self
    }

    pub fn basic(self, user: &str, pw: &str) -> Req {
        let v = format!("Basic {}", base64(format!("{user}:{pw}").as_bytes()));
        self.header("Authorization", &v)
    }

    /// Sends the request with `Content-Length` = body length.
    pub fn send(self) -> Resp {
        let len = self.body.len();
        self.send_raw(Some(len), true)
    }

    /// Sends headers (with `Content-Length` = `declared`, if any) and the
    /// body; unless `complete`, half-closes the connection before the body
    /// is as long as announced (a truncated upload).
    pub fn send_raw(self, declared: Option<usize>, complete: bool) -> Resp {
        let mut s = TcpStream::connect(&self.addr).expect("connect to the registry");
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.method, self.path, self.addr
        );
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(n) = declared {
            head.push_str(&format!("Content-Length: {n}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        let _ = s.write_all(&self.body);
        if !complete {
            let _ = s.shutdown(std::net::Shutdown::Write);
        }
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        parse_response(&raw, self.method == "HEAD")
    }
}

pub fn parse_response(raw: &[u8], head: bool) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(raw)));
    let text = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if head {
        Vec::new()
    } else if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_str = String::from_utf8_lossy(&b[..eol]);
        let size = usize::from_str_radix(size_str.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
}

pub fn base64(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

pub fn sha256(b: &[u8]) -> Digest {
    Digest::sha256_of(b)
}

pub fn sha512(b: &[u8]) -> Digest {
    Algorithm::Sha512.digest(b)
}

/// Pushes a blob monolithically; asserts 201.
pub fn push_blob(s: &Server, repo: &str, data: &[u8]) -> Digest {
    let d = sha256(data);
    let r = s
        .req("POST", &format!("/v2/{repo}/blobs/uploads/?digest={d}"))
        .header("Content-Type", "application/octet-stream")
        .body(data)
        .send();
    assert_eq!(r.status, 201, "push blob: {}", r.text());
    d
}

/// An OCI image manifest for a config and layers (all pushed by the caller).
pub fn image_manifest(config: (&Digest, usize), layers: &[(&Digest, usize)]) -> Vec<u8> {
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|(d, n)| {
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": d.to_string(), "size": n
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config.0.to_string(), "size": config.1},
        "layers": layers,
    }))
    .unwrap()
}

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Pushes a config and one layer, then a manifest under `reference`;
/// returns the manifest's bytes and digest.
pub fn push_image(s: &Server, repo: &str, reference: &str, seed: &str) -> (Vec<u8>, Digest) {
    let config = format!("{{\"architecture\":\"amd64\",\"os\":\"linux\",\"seed\":\"{seed}\"}}");
    let layer = format!("layer bytes of {seed}").repeat(10);
    let cd = push_blob(s, repo, config.as_bytes());
    let ld = push_blob(s, repo, layer.as_bytes());
    let m = image_manifest((&cd, config.len()), &[(&ld, layer.len())]);
    let r = s
        .req("PUT", &format!("/v2/{repo}/manifests/{reference}"))
        .header("Content-Type", OCI_MANIFEST)
        .body(m.clone())
        .send();
    assert_eq!(r.status, 201, "push manifest: {}", r.text());
    let d = sha256(&m);
    assert_eq!(
        r.header("Docker-Content-Digest"),
        Some(d.to_string().as_str())
    );
    (m, d)
}

/// Names of the files under a directory, recursively (relative paths, sorted).
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// A daemon (containerd, dockerd) killed and reaped on drop.
pub struct Daemon(pub Child);

impl Daemon {
    /// Spawns `cmd` with stdout and stderr going to `log`.
    pub fn spawn(cmd: &mut Command, log: &Path) -> Daemon {
        let log = std::fs::File::create(log).unwrap();
        Daemon(
            cmd.stdout(Stdio::from(log.try_clone().unwrap()))
                .stderr(Stdio::from(log))
                .spawn()
                .unwrap_or_else(|e| panic!("{cmd:?} starts: {e}")),
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits up to 60 s for a daemon's socket; fails with the daemon's log.
pub fn wait_for_socket(sock: &Path, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !sock.exists() {
        assert!(
            Instant::now() < deadline,
            "daemon socket {} did not appear:\n{}",
            sock.display(),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs a command that must succeed; fails with its output.
pub fn run_ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} does not run (is it installed?): {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Debian's `docker-registry` (CNCF distribution 2.8) on 127.0.0.1, with
/// deletes enabled; killed on drop.
pub struct Distribution {
    pub child: Child,
    pub addr: String,
    pub dir: tempfile::TempDir,
}

impl Distribution {
    /// Plain HTTP on a free loopback port.
    pub fn start() -> Distribution {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Distribution::start_on(&format!("127.0.0.1:{port}"), "")
    }

    /// On `addr`, with `http_extra` (YAML lines indented under `http:`,
    /// e.g. a `tls:` section) added to the configuration.
    pub fn start_on(addr: &str, http_extra: &str) -> Distribution {
        let dir = tempfile::tempdir().unwrap();
        let addr = addr.to_owned();
        let cfg = dir.path().join("config.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{http_extra}",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry is installed (scripts/install-test-deps.sh)");
        // Wait (bounded) until it answers HTTP; not a timing assertion. (A
        // TLS listener answers a plain request with an HTTP 400 too.)
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(mut c) = TcpStream::connect(&addr) {
                let _ = c.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
                let mut buf = [0u8; 5];
                if c.read_exact(&mut buf).is_ok() && &buf == b"HTTP/" {
                    break;
                }
            }
            if let Some(st) = child.try_wait().unwrap() {
                panic!("docker-registry exited early: {st}");
            }
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Distribution { child, addr, dir }
    }

    /// Where distribution keeps a blob's bytes.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
