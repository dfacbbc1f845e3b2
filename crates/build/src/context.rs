//! The build context: the files COPY may read, and their content digests.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use berth_dockerignore::{EntryKind, IgnoreMatcher};
use berth_oci::Digest;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// What the hash cache remembers about a file. Any difference in these
/// fields means the file must be hashed again; ctime catches content edits
/// that restore mtime and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CachedHash {
    stamp: Stamp,
    digest: String,
}

/// A build context directory with its `.dockerignore` applied.
///
/// Shared by the stages building in parallel: the hash cache sits behind a
/// mutex (held only to look up and record hashes, never while hashing).
#[derive(Debug)]
pub struct Context {
    root: PathBuf,
    /// Included entries by relative path.
    entries: BTreeMap<String, EntryKind>,
    cache_file: Option<PathBuf>,
    cache: Mutex<HashMap<String, CachedHash>>,
    dirty: AtomicBool,
}

fn stamp(md: &fs::Metadata) -> Stamp {
    Stamp {
        dev: md.dev(),
        ino: md.ino(),
        size: md.len(),
        mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
        ctime_ns: md.ctime() * 1_000_000_000 + md.ctime_nsec(),
    }
}

/// Matches one path component against a Go `filepath.Match` pattern.
fn component_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let (mut star_p, mut star_n) = (usize::MAX, 0);
    while n < name.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star_p = p;
                    star_n = n;
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    n += 1;
                    continue;
                }
                b'[' => {
                    if let Some((true, len)) = class_match(&pattern[p..], name[n]) {
                        p += len;
                        n += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pattern.len() && pattern[p + 1] == name[n] => {
                    p += 2;
                    n += 1;
                    continue;
                }
                c if c == name[n] => {
                    p += 1;
                    n += 1;
                    continue;
                }
                _ => {}
            }
        }
        if star_p != usize::MAX {
            p = star_p + 1;
            star_n += 1;
            n = star_n;
            continue;
        }
        return false;
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

/// `[...]` class: returns (matched, pattern length) or None if malformed.
fn class_match(pattern: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = pattern.get(1) == Some(&b'^') || pattern.get(1) == Some(&b'!');
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < pattern.len() {
        if pattern[i] == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        let lo = pattern[i];
        if i + 2 < pattern.len() && pattern[i + 1] == b'-' && pattern[i + 2] != b']' {
            if lo <= c && c <= pattern[i + 2] {
                matched = true;
            }
            i += 3;
        } else {
            if lo == c {
                matched = true;
            }
            i += 1;
        }
    }
    None
}

/// Matches one path component against a Go `filepath.Match` pattern.
pub fn glob_component(pattern: &str, name: &str) -> bool {
    component_match(pattern.as_bytes(), name.as_bytes())
}

/// Cleans a COPY source into context-relative components; refuses escapes.
pub fn clean_source(src: &str) -> Result<String> {
    let mut out: Vec<&str> = Vec::new();
    for part in src.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.pop().is_none() {
                    return Err(Error::Context(format!(
                        "{src:?} is outside the build context (forbidden path)"
                    )));
                }
            }
            p => out.push(p),
        }
    }
    Ok(out.join("/"))
}

impl Context {
    /// Reads the context at `root` with `.dockerignore` (or
    /// `<Dockerfile>.dockerignore`) applied. `cache_file` persists file
    /// hashes between builds.
    pub fn load(
        root: &Path,
        dockerfile: Option<&Path>,
        cache_file: Option<PathBuf>,
    ) -> Result<Context> {
        let matcher = match berth_dockerignore::find_ignore_file(root, dockerfile) {
            Some(p) => {
                let text = fs::read_to_string(&p).map_err(|e| Error::io("read", &p, e))?;
                IgnoreMatcher::parse(&text)
                    .map_err(|e| Error::Context(format!("{}: {e}", p.display())))?
            }
            None => IgnoreMatcher::parse("").map_err(|e| Error::Context(e.to_string()))?,
        };
        let walked = berth_dockerignore::walk_context(root, &matcher)
            .map_err(|e| Error::Context(e.to_string()))?;
        let entries = walked.into_iter().map(|e| (e.path, e.kind)).collect();
        let cache = cache_file
            .as_ref()
            .and_then(|f| fs::read(f).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Ok(Context {
            root: root.to_owned(),
            entries,
            cache_file,
            cache: Mutex::new(cache),
            dirty: AtomicBool::new(false),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn kind(&self, rel: &str) -> Option<EntryKind> {
        if rel.is_empty() {
            return Some(EntryKind::Dir);
        }
        self.entries.get(rel).copied()
    }

    /// Included entries at or below `rel`, in sorted order.
    pub fn below<'a>(&'a self, rel: &'a str) -> impl Iterator<Item = (&'a String, EntryKind)> + 'a {
        self.entries
            .iter()
            .filter(move |(p, _)| {
                rel.is_empty()
                    || *p == rel
                    || (p.starts_with(rel) && p.as_bytes().get(rel.len()) == Some(&b'/'))
            })
            .map(|(p, k)| (p, *k))
    }

    /// A file's stamp, content digest and permission bits.
    fn hash_file(&self, rel: &str) -> Result<(Stamp, String, u32)> {
        let path = self.root.join(rel);
        let md = fs::symlink_metadata(&path).map_err(|e| Error::io("stat", &path, e))?;
        let st = stamp(&md);
        if let Some(c) = self.cache.lock().expect("hash cache").get(rel)
            && c.stamp == st
        {
            return Ok((st, c.digest.clone(), md.mode() & 0o7777));
        }
        let mut f = fs::File::open(&path).map_err(|e| Error::io("open", &path, e))?;
        let mut d = berth_oci::Algorithm::Sha256.digester();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = f.read(&mut buf).map_err(|e| Error::io("read", &path, e))?;
            if n == 0 {
                break;
            }
            d.update(&buf[..n]);
        }
        Ok((st, d.finish().to_string(), md.mode() & 0o7777))
    }

    /// The content digest of selected sources: for each, its name and
    /// type, then every entry copied below it with names relative to it,
    /// types, permission bits, file contents and symlink targets. Owners and
    /// mtimes are deliberately left out (COPY resets owners; a `touch` must
    /// not invalidate the cache), and so is everything not selected.
    pub(crate) fn digest_selected(&self, items: &[crate::source::Selected]) -> Result<Digest> {
        let mut files: Vec<String> = Vec::new();
        for it in items {
            match it.kind {
                EntryKind::File => files.push(it.path.clone()),
                EntryKind::Dir => {
                    for (rel, k) in &it.below {
                        if *k == EntryKind::File {
                            files.push(join(&it.path, rel));
                        }
                    }
                }
                _ => {}
            }
        }
        files.sort();
        files.dedup();
        let hashes = self.hash_files(&files)?;
        let mut h = berth_oci::Algorithm::Sha256.digester();
        let mut line = |k: EntryKind, name: &str, path: &str| -> Result<()> {
            let abs = self.root.join(path);
            let l = match k {
                // Files: the mode comes with the hash (one stat per file).
                EntryKind::File => {
                    let (digest, mode) = &hashes[path];
                    format!("f {name} {mode:o} {digest}\n")
                }
                EntryKind::Dir => {
                    let md = fs::symlink_metadata(&abs).map_err(|e| Error::io("stat", &abs, e))?;
                    format!("d {name} {:o}\n", md.mode() & 0o7777)
                }
                EntryKind::Symlink => format!(
                    "l {name} {}\n",
                    fs::read_link(&abs)
                        .map_err(|e| Error::io("readlink", &abs, e))?
                        .display()
                ),
                EntryKind::Other => format!("o {name}\n"),
            };
            h.update(l.as_bytes());
            Ok(())
        };
        for it in items {
            line(it.kind, &format!("[{}]", it.name), &it.path)?;
            for (rel, k) in &it.below {
                line(*k, rel, &join(&it.path, rel))?;
            }
        }
        Ok(h.finish())
    }

    /// Hashes files (relative paths) in parallel; the cache makes unchanged
    /// files free.
    fn hash_files(&self, files: &[String]) -> Result<HashMap<String, (String, u32)>> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let chunk = files.len().div_ceil(threads).max(1);
        type Hashed = (String, Stamp, String, u32);
        let results: Vec<Result<Vec<Hashed>>> = std::thread::scope(|s| {
            let hs: Vec<_> = files
                .chunks(chunk)
                .map(|part| {
                    s.spawn(move || {
                        part.iter()
                            .map(|p| self.hash_file(p).map(|(st, d, m)| (p.clone(), st, d, m)))
                            .collect()
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().expect("hash thread"))
                .collect()
        });
        let mut hashes = HashMap::with_capacity(files.len());
        let mut cache = self.cache.lock().expect("hash cache");
        for r in results {
            for (p, st, d, m) in r? {
                if cache.get(&p).is_none_or(|c| c.stamp != st) {
                    self.dirty.store(true, Ordering::Relaxed);
                    cache.insert(
                        p.clone(),
                        CachedHash {
                            stamp: st,
                            digest: d.clone(),
                        },
                    );
                }
                hashes.insert(p, (d, m));
            }
        }
        Ok(hashes)
    }

    /// Persists the hash cache (best effort: it is only a cache).
    pub fn save_cache(&self) {
        if let (true, Some(f)) = (self.dirty.load(Ordering::Relaxed), &self.cache_file)
            && let Some(dir) = f.parent()
            && fs::create_dir_all(dir).is_ok()
            && let Ok(bytes) = serde_json::to_vec(&*self.cache.lock().expect("hash cache"))
        {
            let tmp = f.with_extension(format!("tmp-{}", std::process::id()));
            if fs::write(&tmp, bytes).is_ok() {
                let _ = fs::rename(&tmp, f);
            }
        }
    }
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a}/{b}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_match_rules() {
        for (p, n, want) in [
            ("*.txt", "a.txt", true),
            ("*.txt", "a.txz", false),
            ("a?c", "abc", true),
            ("[a-c]x", "bx", true),
            ("[^a-c]x", "bx", false),
            ("*", "", true),
            ("a*b*c", "axxbyyc", true),
            ("\\*", "*", true),
        ] {
            assert_eq!(
                component_match(p.as_bytes(), n.as_bytes()),
                want,
                "{p} vs {n}"
            );
        }
        assert!(clean_source("../x").is_err());
        assert_eq!(clean_source("./a/../b").unwrap(), "b");
    }
}
