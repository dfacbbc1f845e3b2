//! A private `dockerd` (Debian's docker.io) for interop tests: its own data
//! and exec roots and socket, no iptables, no bridge; stopped with SIGTERM
//! so it unmounts and stops its containerd.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Dockerd {
    child: Child,
    pub sock: PathBuf,
    _dir: tempfile::TempDir,
}

impl Dockerd {
    pub fn start() -> Dockerd {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("docker.sock");
        let log = std::fs::File::create(dir.path().join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .arg("--host")
            .arg(format!("unix://{}", sock.display()))
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .arg("--pidfile")
            .arg(dir.path().join("docker.pid"))
            .args([
                "--storage-driver",
                "overlay2",
                "--iptables=false",
                "--bridge=none",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("dockerd is installed (scripts/install-test-deps.sh)");
        let d = Dockerd {
            child,
            sock,
            _dir: dir,
        };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if d.docker(&["version"]).status.success() {
                return d;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("dockerd did not start within 60 s");
    }

    /// The docker CLI talking to this daemon. Debian's CLI: another docker
    /// CLI (without the built-in BuildKit builder) may come first on PATH.
    pub fn command(&self) -> Command {
        let mut c = Command::new("/usr/bin/docker");
        c.arg("-H").arg(format!("unix://{}", self.sock.display()));
        c
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    /// Runs docker and returns its stdout; panics with stderr on failure.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn inspect(&self, image: &str) -> serde_json::Value {
        super::json(&self.ok(&["image", "inspect", image]))
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
