//! Helpers for the `berth build` black-box tests: throwaway contexts, a build
//! runner that parses the progress output, and an independent reader of the
//! images berth writes (docker-archive → layers → a merged file tree), so the
//! tests check the bytes an image consumer would see, not berth's own view.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// A build context in a temporary directory.
pub struct Ctx {
    pub dir: tempfile::TempDir,
}

impl Ctx {
    pub fn new(dockerfile: &str) -> Ctx {
        let c = Ctx {
            dir: tempfile::tempdir().unwrap(),
        };
        c.write("Dockerfile", dockerfile);
        c
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> &Ctx {
        let p = self.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        self
    }

    pub fn mkdir(&self, rel: &str) -> &Ctx {
        std::fs::create_dir_all(self.join(rel)).unwrap();
        self
    }

    pub fn chmod(&self, rel: &str, mode: u32) -> &Ctx {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(self.join(rel), std::fs::Permissions::from_mode(mode)).unwrap();
        self
    }

    pub fn symlink(&self, rel: &str, target: &str) -> &Ctx {
        let p = self.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, p).unwrap();
        self
    }
}

/// What one build printed and produced.
#[derive(Debug)]
pub struct Build {
    pub id: String,
    pub stderr: String,
    /// Step id → text, in the order printed.
    pub steps: BTreeMap<usize, String>,
    pub cached: BTreeSet<usize>,
}

impl Build {
    /// Texts of the steps reported CACHED.
    pub fn cached_texts(&self) -> BTreeSet<String> {
        self.cached.iter().map(|i| self.steps[i].clone()).collect()
    }

    /// Texts of layer steps that actually ran (not cached), among those
    /// whose text starts with one of the given instruction keywords.
    pub fn ran_texts(&self, keywords: &[&str]) -> BTreeSet<String> {
        self.steps
            .iter()
            .filter(|(id, t)| {
                !self.cached.contains(id) && keywords.iter().any(|k| t.starts_with(k))
            })
            .map(|(_, t)| t.clone())
            .collect()
    }

    pub fn fully_cached(&self) -> bool {
        self.stderr.contains("fully cached")
    }
}

fn parse_progress(stderr: &str) -> (BTreeMap<usize, String>, BTreeSet<usize>) {
    let mut steps = BTreeMap::new();
    let mut cached = BTreeSet::new();
    for line in stderr.lines() {
        let Some(rest) = line.strip_prefix('#') else {
            continue;
        };
        let Some((id, rest)) = rest.split_once(' ') else {
            continue;
        };
        let Ok(id) = id.parse::<usize>() else {
            continue;
        };
        if rest == "CACHED" {
            cached.insert(id);
        } else if let Some(r) = rest.strip_prefix('[')
            && let Some((_, text)) = r.split_once("] ")
        {
            steps.insert(id, text.to_owned());
        }
    }
    (steps, cached)
}

/// Runs `berth build` with plain progress; asserts success.
pub fn build(root: &Path, ctx: &Path, extra: &[&str]) -> Build {
    let out = build_cmd(root, ctx, extra).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "berth build {extra:?} failed ({}):\n{stderr}",
        out.status
    );
    finish(ctx, stderr)
}

fn finish(ctx: &Path, stderr: String) -> Build {
    let idfile = iidfile(ctx);
    let id = std::fs::read_to_string(&idfile).unwrap();
    std::fs::remove_file(idfile).unwrap();
    let (steps, cached) = parse_progress(&stderr);
    Build {
        id,
        stderr,
        steps,
        cached,
    }
}

fn iidfile(ctx: &Path) -> PathBuf {
    ctx.with_extension("iid")
}

/// The build command (plain progress, id written next to the context).
pub fn build_cmd(root: &Path, ctx: &Path, extra: &[&str]) -> Command {
    let mut c = berth(root);
    c.arg("build")
        .arg("--progress=plain")
        .arg("--iidfile")
        .arg(iidfile(ctx))
        .args(extra)
        .arg(ctx);
    c
}

/// Runs `berth build` expecting failure; returns stderr.
pub fn build_fails(root: &Path, ctx: &Path, extra: &[&str]) -> String {
    let out = build_cmd(root, ctx, extra).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "berth build {extra:?} unexpectedly succeeded:\n{stderr}"
    );
    stderr
}

/// One file-system entry of an image, as a consumer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(String),
    Hardlink(String),
    Other,
}

impl Entry {
    pub fn data(&self) -> &[u8] {
        match &self.kind {
            Kind::File(d) => d,
            k => panic!("not a file: {k:?}"),
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.data().to_vec()).unwrap()
    }
}

/// Decompresses a layer blob by sniffing its magic (gzip, zstd or plain).
pub fn decompress(blob: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if blob.starts_with(&[0x1f, 0x8b]) {
        flate2::read::MultiGzDecoder::new(blob)
            .read_to_end(&mut out)
            .unwrap();
    } else if blob.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        out = zstd::stream::decode_all(blob).unwrap();
    } else {
        out = blob.to_vec();
    }
    out
}

/// Reads a layer tar into (name, entry) pairs, names without `./` or trailing `/`.
pub fn layer_entries(tar_bytes: &[u8]) -> Vec<(String, Entry)> {
    let mut a = tar::Archive::new(tar_bytes);
    let mut out = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_owned();
        let h = e.header().clone();
        let kind = match h.entry_type() {
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => Kind::Symlink(
                e.link_name()
                    .unwrap()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            ),
            tar::EntryType::Link => Kind::Hardlink(
                e.link_name()
                    .unwrap()
                    .unwrap()
                    .to_string_lossy()
                    .trim_start_matches("./")
                    .to_owned(),
            ),
            tar::EntryType::Regular => {
                let mut d = Vec::new();
                e.read_to_end(&mut d).unwrap();
                Kind::File(d)
            }
            _ => Kind::Other,
        };
        out.push((
            name,
            Entry {
                kind,
                mode: h.mode().unwrap() & 0o7777,
                uid: h.uid().unwrap(),
                gid: h.gid().unwrap(),
                mtime: h.mtime().unwrap(),
            },
        ));
    }
    out
}

/// An image as saved by `berth save` (docker-archive): its config and layers.
pub struct Saved {
    pub config: serde_json::Value,
    /// Uncompressed layer tars, bottom first.
    pub layers: Vec<Vec<u8>>,
    /// The layer blobs' digests as stored (compressed), from the manifest.
    pub layer_digests: Vec<String>,
}

/// Saves `image` with `berth save --format oci` and reads it back without berth.
pub fn saved(root: &Path, image: &str) -> Saved {
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("img.tar");
    ok(berth(root)
        .args(["save", "--format", "oci", "-o"])
        .arg(&tar)
        .arg(image));
    let entries: BTreeMap<String, Vec<u8>> = tar_entries(&tar).into_iter().collect();
    let blob = |d: &str| -> &Vec<u8> {
        let (alg, hex) = d.split_once(':').unwrap();
        &entries[&format!("blobs/{alg}/{hex}")]
    };
    let index = json(std::str::from_utf8(&entries["index.json"]).unwrap());
    let mdigest = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(blob(mdigest)).unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(blob(manifest["config"]["digest"].as_str().unwrap())).unwrap();
    let mut layers = Vec::new();
    let mut layer_digests = Vec::new();
    for l in manifest["layers"].as_array().unwrap() {
        let d = l["digest"].as_str().unwrap();
        let bytes = blob(d);
        assert_eq!(
            format!("sha256:{}", sha256_hex(bytes)),
            d,
            "blob matches its digest"
        );
        layers.push(decompress(bytes));
        layer_digests.push(d.to_owned());
    }
    // diffIDs are the uncompressed digests.
    let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let computed: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{}", sha256_hex(l)))
        .collect();
    assert_eq!(diff_ids, computed, "diffIDs are the uncompressed digests");
    Saved {
        config,
        layers,
        layer_digests,
    }
}

/// Applies layers (whiteouts and opaque dirs included) into a path → entry map.
pub fn merge(layers: &[Vec<u8>]) -> BTreeMap<String, Entry> {
    let mut fs: BTreeMap<String, Entry> = BTreeMap::new();
    for l in layers {
        for (name, e) in layer_entries(l) {
            let (dir, base) = name.rsplit_once('/').unwrap_or(("", name.as_str()));
            if base == ".wh..wh..opq" {
                let prefix = format!("{dir}/");
                fs.retain(|k, _| !k.starts_with(&prefix));
                continue;
            }
            if let Some(gone) = base.strip_prefix(".wh.") {
                let p = if dir.is_empty() {
                    gone.to_owned()
                } else {
                    format!("{dir}/{gone}")
                };
                let prefix = format!("{p}/");
                fs.retain(|k, _| *k != p && !k.starts_with(&prefix));
                continue;
            }
            if e.kind != Kind::Dir {
                let prefix = format!("{name}/");
                fs.retain(|k, _| !k.starts_with(&prefix));
            }
            let e = match e.kind {
                Kind::Hardlink(t) => Entry {
                    kind: fs.get(&t).map(|x| x.kind.clone()).unwrap_or(Kind::Other),
                    ..e
                },
                _ => e,
            };
            fs.insert(name, e);
        }
    }
    fs
}

/// The merged file tree of `image`.
pub fn image_fs(root: &Path, image: &str) -> BTreeMap<String, Entry> {
    merge(&saved(root, image).layers)
}

/// Entries of `fs` at or below `dir` (relative names), for compact assertions.
pub fn below(fs: &BTreeMap<String, Entry>, dir: &str) -> BTreeMap<String, Entry> {
    let prefix = format!("{dir}/");
    fs.iter()
        .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|r| (r.to_owned(), v.clone())))
        .collect()
}

/// Names of files (not dirs) at or below `dir`.
pub fn files_below(fs: &BTreeMap<String, Entry>, dir: &str) -> Vec<String> {
    below(fs, dir)
        .into_iter()
        .filter(|(_, e)| e.kind != Kind::Dir)
        .map(|(k, _)| k)
        .collect()
}

/// Sets a file's mtime (seconds + nanoseconds) like `touch -d`.
pub fn set_mtime(path: &Path, t: std::time::SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}
