//! Helpers for the CLI's black-box tests: run the real `berth` binary against
//! throwaway stores, with fixtures made by the project's own scripts.
#![allow(dead_code)]

pub mod dockerd;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub fn berth_bin() -> &'static str {
    env!("CARGO_BIN_EXE_berth")
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A `berth` command using the store at `root`.
pub fn berth(root: &Path) -> Command {
    let mut c = Command::new(berth_bin());
    c.env("BERTH_ROOT", root);
    c
}

/// Runs and asserts success; returns stdout.
pub fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("berth runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs and asserts failure; returns the output.
pub fn fails(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("berth runs");
    assert!(
        !out.status.success(),
        "{cmd:?} unexpectedly succeeded:\nstdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The busybox rootfs tarball, made once per test process by the fixture script.
pub fn busybox_tarball() -> &'static Path {
    static T: OnceLock<PathBuf> = OnceLock::new();
    T.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("berth-test-fixtures-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("busybox-rootfs.tar");
        let status = Command::new("bash")
            .arg(repo_root().join("scripts/fixtures/busybox-rootfs.sh"))
            .arg(&out)
            .status()
            .expect("fixture script runs");
        assert!(status.success(), "busybox fixture script failed");
        out
    })
}

/// A fresh store with busybox imported as `busybox:latest`.
pub fn store_with_busybox() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ok(berth(dir.path())
        .arg("import")
        .arg(busybox_tarball())
        .arg("busybox:latest")
        .args(["--change", r#"CMD ["sh"]"#]));
    dir
}

/// Everything in a store that readers see: index.json and the blob names.
pub fn store_state(root: &Path) -> (Vec<u8>, Vec<String>) {
    let index = std::fs::read(root.join("index.json")).unwrap();
    let mut blobs = Vec::new();
    for alg in ["sha256", "sha512"] {
        if let Ok(rd) = std::fs::read_dir(root.join("blobs").join(alg)) {
            for e in rd {
                blobs.push(format!(
                    "{alg}:{}",
                    e.unwrap().file_name().to_string_lossy()
                ));
            }
        }
    }
    blobs.sort();
    (index, blobs)
}

/// Reads every entry of a (plain) tar file as (name, bytes).
pub fn tar_entries(path: &Path) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut a = tar::Archive::new(std::fs::File::open(path).unwrap());
    let mut out = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut buf = Vec::new();
        e.read_to_end(&mut buf).unwrap();
        out.push((name, buf));
    }
    out
}

/// Writes a tar file from (name, bytes) pairs (regular files only).
pub fn write_tar(path: &Path, entries: &[(&str, &[u8])]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.finish().unwrap();
}

pub fn sha256_hex(data: &[u8]) -> String {
    berth_oci::Digest::sha256_of(data).hex().to_owned()
}

pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}
