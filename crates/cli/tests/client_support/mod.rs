//! Helpers for the registry client's black-box tests: an isolated
//! configuration per test, the host's own (non-loopback) address, and a TCP
//! forwarder that records what clients send before passing it on to a real
//! registry (whether a connection began with a TLS ClientHello, and the
//! plain-HTTP bytes, so tests can see schemes and credentials on the wire).
#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

/// A `berth` command on a store with its own, empty configuration
/// (`BERTH_CONFIG`, `DOCKER_CONFIG`, `HOME`).
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        for d in ["berth-config", "docker-config", "home"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        Env { dir }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    pub fn berth(&self, root: &Path) -> Command {
        let mut c = super::common::berth(root);
        c.env("BERTH_CONFIG", self.path("berth-config"))
            .env("DOCKER_CONFIG", self.path("docker-config"))
            .env("HOME", self.path("home"));
        c
    }

    /// Writes `registries.toml` in this environment's berth config dir.
    pub fn registries_toml(&self, text: &str) {
        std::fs::write(self.path("berth-config/registries.toml"), text).unwrap();
    }
}

/// A non-loopback IPv4 address of this host: registries bound there are
/// not loopback, so berth verifies their certificates and does not allow
/// them plain HTTP by default. The first from `hostname -I`; on a machine
/// with none (a CI box without a network), one on a dummy interface made
/// for the tests (`berth-test0`, 192.0.2.77/32, a documentation address).
pub fn host_ip() -> String {
    static IP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    IP.get_or_init(|| {
        let find = || {
            let out = Command::new("hostname")
                .arg("-I")
                .output()
                .expect("hostname runs");
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .find(|a| {
                    a.parse::<std::net::Ipv4Addr>()
                        .is_ok_and(|ip| !ip.is_loopback())
                })
                .map(str::to_owned)
        };
        if let Some(ip) = find() {
            return ip;
        }
        for args in [
            &["link", "add", "berth-test0", "type", "dummy"][..],
            &["addr", "add", "192.0.2.77/32", "dev", "berth-test0"],
            &["link", "set", "berth-test0", "up"],
        ] {
            // Another test process may have made it already.
            let _ = Command::new("ip").args(args).status();
        }
        find().expect("no non-loopback IPv4 address, even after adding berth-test0")
    })
    .clone()
}

/// One connection seen by a [`Sniffer`].
#[derive(Debug, Clone, Default)]
pub struct Conn {
    /// It began with a TLS handshake record (0x16).
    pub tls: bool,
    /// Everything the client sent (for plain-HTTP connections).
    pub sent: Vec<u8>,
}

/// A TCP forwarder on `bind_ip:0` in front of `target`, recording every
/// connection. TLS connections are forwarded too (the bytes are opaque).
pub struct Sniffer {
    pub addr: String,
    pub conns: Arc<Mutex<Vec<Conn>>>,
}

impl Sniffer {
    pub fn start(bind_ip: &str, target: &str) -> Sniffer {
        let l = TcpListener::bind(format!("{bind_ip}:0")).unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let conns: Arc<Mutex<Vec<Conn>>> = Arc::default();
        let target = target.to_owned();
        let c2 = conns.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(client) = conn else { continue };
                let conns = c2.clone();
                let target = target.clone();
                std::thread::spawn(move || forward(client, &target, &conns));
            }
        });
        Sniffer { addr, conns }
    }

    pub fn conns(&self) -> Vec<Conn> {
        self.conns.lock().unwrap().clone()
    }

    pub fn tls_conns(&self) -> usize {
        self.conns().iter().filter(|c| c.tls).count()
    }

    pub fn plain_conns(&self) -> usize {
        self.conns().iter().filter(|c| !c.tls).count()
    }

    /// All plain-HTTP bytes clients sent, as text.
    pub fn plain_text(&self) -> String {
        self.conns()
            .iter()
            .filter(|c| !c.tls)
            .map(|c| String::from_utf8_lossy(&c.sent).into_owned())
            .collect()
    }

    pub fn clear(&self) {
        self.conns.lock().unwrap().clear();
    }
}

fn forward(mut client: TcpStream, target: &str, conns: &Mutex<Vec<Conn>>) {
    let mut first = [0u8; 1];
    let Ok(1) = client.read(&mut first) else {
        return;
    };
    let idx = {
        let mut c = conns.lock().unwrap();
        c.push(Conn {
            tls: first[0] == 0x16,
            sent: first.to_vec(),
        });
        c.len() - 1
    };
    let Ok(mut server) = TcpStream::connect(target) else {
        return;
    };
    if server.write_all(&first).is_err() {
        return;
    }
    let (mut s2, mut c2) = (server.try_clone().unwrap(), client.try_clone().unwrap());
    let back = std::thread::spawn(move || {
        let _ = std::io::copy(&mut s2, &mut c2);
        let _ = c2.shutdown(Shutdown::Write);
    });
    let mut buf = [0u8; 16384];
    loop {
        match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                {
                    let mut c = conns.lock().unwrap();
                    if !c[idx].tls && c[idx].sent.len() < (1 << 20) {
                        c[idx].sent.extend_from_slice(&buf[..n]);
                    }
                }
                if server.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = server.shutdown(Shutdown::Write);
    let _ = back.join();
}

/// Starts `berth registry serve` on `bind` (`IP:0`) with `extra` flags.
pub fn serve_on(bind: &str, root: &Path, extra: &[&str]) -> super::registry_support::Server {
    use std::io::BufRead as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("--root")
        .arg(root)
        .args(["registry", "serve", "--addr", bind])
        .args(extra)
        .env("BERTH_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("berth starts");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    let _ = std::io::BufReader::new(stdout).read_line(&mut line);
    let addr = line
        .strip_prefix("listening on ")
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    super::registry_support::Server {
        child,
        addr,
        root: root.to_owned(),
    }
}

/// A test CA and certificates it issues, made with openssl.
pub struct Pki {
    pub dir: tempfile::TempDir,
}

impl Pki {
    /// A CA (`ca.crt`, `ca.key`).
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=berth test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        Pki { dir }
    }

    pub fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }

    /// Issues `<name>.crt` + `<name>.key` signed by the CA, for `usage`
    /// (`serverAuth` or `clientAuth`), with `san` (`IP:1.2.3.4`) if given.
    pub fn issue(&self, name: &str, usage: &str, san: Option<&str>) {
        let d = self.dir.path();
        let mut ext = format!(
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage={usage}\n"
        );
        if let Some(s) = san {
            ext.push_str(&format!("subjectAltName={s}\n"));
        }
        std::fs::write(d.join(format!("{name}.ext")), ext).unwrap();
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &format!("{name}.crt"),
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed (scripts/install-test-deps.sh)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
