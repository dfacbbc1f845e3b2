//! COPY and ADD: the cache key, then (on a miss) the layer.
//!
//! A copy is staged in an empty directory that becomes the layer. Without
//! `--link`, the stage's file system (materialised lazily, only on a miss)
//! is consulted as the "lower" side: the destination is resolved through its
//! symlinks, an existing directory receives files, and the directories above
//! the destination are written into the layer with their existing metadata
//! (so `COPY x /tmp/` never turns `/tmp` into 0755), exactly as an overlay
//! diff of BuildKit's copy would contain them. With `--link` nothing below is
//! read: the layer depends only on the sources, its cache key leaves out the
//! parent, and the same layer is reused on any base.
//!
//! Destination rules (BuildKit's `fsutil` copy with `CopyDirContents`):
//! - a destination ending in `/` (or `.`) is a directory, created if needed;
//! - otherwise a file source is written *as* the destination, unless the
//!   destination already is a directory, in which case it goes inside;
//! - a directory source's contents are merged into the destination;
//! - directories created on the way are 0755, owned by `--chown` (or root);
//! - a file never replaces a directory and a directory never replaces a
//!   file (errors, as in BuildKit).
//!
//! Owners: files from the context, heredocs and URLs are root's; files from
//! a stage or an image keep theirs; `--chown` sets all. `--chmod` applies to
//! every copied entry (directories included), not to created parents.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use berth_dockerignore::EntryKind;
use serde_json::json;

use crate::chmod::Chmod;
use crate::context::Context;
use crate::exec::{Executor, StageState, key_of};
use crate::plan::{CopyOp, Source};
use crate::source::{Selected, Selection, Tree};
use crate::{Error, Result};

/// Whose owners copied entries get (before `--chown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owners {
    Root,
    Keep,
}

/// One group of selected sources from one tree.
struct Group<'t> {
    tree: Tree<'t>,
    items: Vec<Selected>,
    owners: Owners,
    /// Local archives among these are unpacked.
    unpack: bool,
}

/// The destination: `rel` is relative to `/`, cleaned; `dir` when it names a directory.
#[derive(Debug, Clone)]
pub(crate) struct Dest {
    pub rel: String,
    pub dir: bool,
}

impl Dest {
    /// BuildKit: relative to the working directory; a destination that is
    /// `.`, empty, or ends in `/` is a directory.
    pub(crate) fn new(dest: &str, workdir: &str) -> Dest {
        let abs = if dest.starts_with('/') {
            dest.to_owned()
        } else {
            format!("{}/{}", workdir.trim_end_matches('/'), dest)
        };
        Dest {
            rel: berth_layer::clean_components(&abs).join("/"),
            dir: dest.is_empty() || dest == "." || dest.ends_with('/'),
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

fn parent(rel: &str) -> &str {
    rel.rsplit_once('/').map_or("", |(p, _)| p)
}

fn kind_of(md: &fs::Metadata) -> EntryKind {
    let ft = md.file_type();
    if ft.is_dir() {
        EntryKind::Dir
    } else if ft.is_symlink() {
        EntryKind::Symlink
    } else if ft.is_file() {
        EntryKind::File
    } else {
        EntryKind::Other
    }
}

fn set_times(path: &Path, t: SystemTime) -> Result<()> {
    let d = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let ts = rustix::fs::Timespec {
        tv_sec: d.as_secs() as i64,
        tv_nsec: d.subsec_nanos() as _,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &rustix::fs::Timestamps {
            last_access: ts,
            last_modification: ts,
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| Error::io("set times", path, e.into()))
}

/// Copies a regular file's content to a new file with the given owner,
/// mode and times, through file descriptors (no further path lookups).
fn copy_file(
    src: &Path,
    dst: &Path,
    owner: (u32, u32),
    mode: u32,
    mtime: SystemTime,
) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut from = fs::File::open(src).map_err(|e| Error::io("open", src, e))?;
    let mut to = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dst)
        .map_err(|e| Error::io("create", dst, e))?;
    std::io::copy(&mut from, &mut to).map_err(|e| Error::io("copy", src, e))?;
    // Owner first: chown clears set-id bits, which the mode then restores.
    rustix::fs::fchown(
        &to,
        Some(rustix::fs::Uid::from_raw(owner.0)),
        Some(rustix::fs::Gid::from_raw(owner.1)),
    )
    .map_err(|e| Error::io("chown", dst, e.into()))?;
    rustix::fs::fchmod(&to, rustix::fs::Mode::from_raw_mode(mode))
        .map_err(|e| Error::io("chmod", dst, e.into()))?;
    to.set_times(fs::FileTimes::new().set_accessed(mtime).set_modified(mtime))
        .map_err(|e| Error::io("set times", dst, e))?;
    Ok(())
}

/// The staged layer plus, without `--link`, the file system below it.
struct Target<'a> {
    stage: &'a Path,
    base: Option<&'a Path>,
    chown: Option<(u32, u32)>,
    chmod: Option<Chmod>,
    /// The mtime of directories this copy creates.
    now: SystemTime,
    /// Directory mtimes to restore once everything is written.
    dir_times: Vec<(PathBuf, SystemTime)>,
    /// Hard links among the copied files: source (dev, ino) → staged path.
    links: HashMap<(u64, u64), PathBuf>,
    /// Directories known to exist in the stage (saves lookups per file).
    staged_dirs: std::collections::HashSet<String>,
    line: usize,
}

impl Target<'_> {
    fn err(&self, message: String) -> Error {
        Error::Copy {
            line: self.line,
            message,
        }
    }

    /// What is at `rel` (not following a final symlink): staged first, then below.
    fn lstat(&self, rel: &str) -> Option<(fs::Metadata, bool)> {
        if let Ok(md) = fs::symlink_metadata(self.stage.join(rel)) {
            return Some((md, true));
        }
        let base = self.base?;
        fs::symlink_metadata(base.join(rel))
            .ok()
            .map(|md| (md, false))
    }

    fn read_link(&self, rel: &str, staged: bool) -> String {
        let root = if staged {
            self.stage
        } else {
            self.base.unwrap_or(self.stage)
        };
        fs::read_link(root.join(rel))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Resolves `rel` through symlinks (every component), confined to the root.
    fn resolve(&self, rel: &str) -> Result<String> {
        let mut todo: Vec<String> = rel
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .map(str::to_owned)
            .rev()
            .collect();
        let mut done: Vec<String> = Vec::new();
        let mut links = 0;
        while let Some(c) = todo.pop() {
            if c == ".." {
                done.pop();
                continue;
            }
            done.push(c);
            let cur = done.join("/");
            if let Some((md, staged)) = self.lstat(&cur)
                && md.file_type().is_symlink()
            {
                links += 1;
                if links > 255 {
                    return Err(self.err(format!("too many levels of symbolic links at /{rel}")));
                }
                let target = self.read_link(&cur, staged);
                done.pop();
                if target.starts_with('/') {
                    done.clear();
                }
                for t in target
                    .split('/')
                    .filter(|c| !c.is_empty() && *c != ".")
                    .rev()
                {
                    todo.push(t.to_owned());
                }
            }
        }
        Ok(done.join("/"))
    }

    /// Makes sure directory `rel` (resolved) exists in the staged layer:
    /// existing directories below are mirrored with their metadata, missing
    /// ones created 0755 and owned by `--chown` (or root).
    fn mkdir_all(&mut self, rel: &str) -> Result<()> {
        if rel.is_empty() || self.staged_dirs.contains(rel) {
            return Ok(());
        }
        let mut cur = String::new();
        for c in rel.split('/').filter(|c| !c.is_empty()) {
            cur = join(&cur, c);
            if self.staged_dirs.contains(&cur) {
                continue;
            }
            let dst = self.stage.join(&cur);
            match self.lstat(&cur) {
                Some((md, true)) if md.is_dir() => {}
                Some((md, false)) if md.is_dir() => {
                    fs::create_dir(&dst).map_err(|e| Error::io("create directory", &dst, e))?;
                    fs::set_permissions(&dst, fs::Permissions::from_mode(md.mode() & 0o7777))
                        .map_err(|e| Error::io("chmod", &dst, e))?;
                    std::os::unix::fs::lchown(&dst, Some(md.uid()), Some(md.gid()))
                        .map_err(|e| Error::io("chown", &dst, e))?;
                    let t = md.modified().unwrap_or(self.now);
                    self.dir_times.push((dst, t));
                }
                Some(_) => {
                    return Err(
                        self.err(format!("cannot create directory /{cur}: not a directory"))
                    );
                }
                None => {
                    fs::create_dir(&dst).map_err(|e| Error::io("create directory", &dst, e))?;
                    fs::set_permissions(&dst, fs::Permissions::from_mode(0o755))
                        .map_err(|e| Error::io("chmod", &dst, e))?;
                    let (u, g) = self.chown.unwrap_or((0, 0));
                    std::os::unix::fs::lchown(&dst, Some(u), Some(g))
                        .map_err(|e| Error::io("chown", &dst, e))?;
                    self.dir_times.push((dst, self.now));
                }
            }
            self.staged_dirs.insert(cur.clone());
        }
        Ok(())
    }

    /// Removes whatever is staged at `rel` so a file or symlink can take its
    /// place; refuses to replace a directory.
    fn ensure_empty_file_target(&self, rel: &str) -> Result<()> {
        match self.lstat(rel) {
            Some((md, _)) if md.is_dir() => {
                Err(self.err(format!("cannot replace directory /{rel} with a file")))
            }
            Some((_, true)) => {
                let p = self.stage.join(rel);
                fs::remove_file(&p).map_err(|e| Error::io("remove", &p, e))
            }
            _ => Ok(()),
        }
    }

    /// Copies one entry (`src` on the host) to staged `rel`, applying owners
    /// and `--chmod`. `top` marks the destination directory of a directory
    /// source, whose own metadata is left alone.
    fn copy_entry(&mut self, src: &Path, rel: &str, owners: Owners, top: bool) -> Result<()> {
        let md = fs::symlink_metadata(src).map_err(|e| Error::io("stat", src, e))?;
        let kind = kind_of(&md);
        let (uid, gid) = self.chown.unwrap_or(match owners {
            Owners::Root => (0, 0),
            Owners::Keep => (md.uid(), md.gid()),
        });
        let mode = match &self.chmod {
            Some(c) => c.apply(md.mode(), kind == EntryKind::Dir),
            None => md.mode() & 0o7777,
        };
        let mtime = md.modified().unwrap_or(self.now);
        let dst = self.stage.join(rel);
        match kind {
            EntryKind::Dir => {
                match self.lstat(rel) {
                    None => {
                        self.mkdir_all(parent(rel))?;
                        fs::create_dir(&dst).map_err(|e| Error::io("create directory", &dst, e))?;
                    }
                    Some((m, _)) if !m.is_dir() => {
                        return Err(self.err(format!("cannot copy to non-directory /{rel}")));
                    }
                    Some(_) => {
                        self.mkdir_all(rel)?;
                        if top {
                            return Ok(());
                        }
                    }
                }
                fs::set_permissions(&dst, fs::Permissions::from_mode(mode))
                    .map_err(|e| Error::io("chmod", &dst, e))?;
                std::os::unix::fs::lchown(&dst, Some(uid), Some(gid))
                    .map_err(|e| Error::io("chown", &dst, e))?;
                self.dir_times.push((dst, mtime));
            }
            EntryKind::File => {
                self.mkdir_all(parent(rel))?;
                self.ensure_empty_file_target(rel)?;
                let key = (md.dev(), md.ino());
                if md.nlink() > 1
                    && let Some(first) = self.links.get(&key)
                {
                    fs::hard_link(first, &dst).map_err(|e| Error::io("link", &dst, e))?;
                    return Ok(());
                }
                // From a materialised stage or image (private to this build,
                // never written in place) with nothing to change, the staged
                // file can share the inode: no data copied, metadata kept.
                if owners == Owners::Keep
                    && self.chown.is_none()
                    && self.chmod.is_none()
                    && fs::hard_link(src, &dst).is_ok()
                {
                    return Ok(());
                }
                copy_file(src, &dst, (uid, gid), mode, mtime)?;
                if md.nlink() > 1 {
                    self.links.insert(key, dst);
                }
            }
            EntryKind::Symlink => {
                self.mkdir_all(parent(rel))?;
                self.ensure_empty_file_target(rel)?;
                let t = fs::read_link(src).map_err(|e| Error::io("readlink", src, e))?;
                std::os::unix::fs::symlink(&t, &dst).map_err(|e| Error::io("symlink", &dst, e))?;
                std::os::unix::fs::lchown(&dst, Some(uid), Some(gid))
                    .map_err(|e| Error::io("chown", &dst, e))?;
                set_times(&dst, mtime)?;
            }
            // Devices, FIFOs and sockets are not copied.
            EntryKind::Other => {}
        }
        Ok(())
    }

    /// fsutil's `Copy` of one selected item to `dest`.
    fn copy_item(&mut self, g: &Group<'_>, it: &Selected, dest: &Dest) -> Result<()> {
        let src_host = g.tree.host_path(&it.path);
        if g.unpack
            && it.kind == EntryKind::File
            && let Some(compression) = archive_compression(&src_host)?
        {
            return self.unpack(&src_host, compression, &dest.rel);
        }
        // The destination's parent (or itself, for a directory) exists first.
        if dest.dir {
            let d = self.resolve(&dest.rel)?;
            self.mkdir_all(&d)?;
        } else {
            let p = self.resolve(parent(&dest.rel))?;
            self.mkdir_all(&p)?;
        }
        let mut dst = self.resolve(&dest.rel)?;
        let existing_dir = self.lstat(&dst).is_some_and(|(md, _)| md.is_dir());
        if it.kind != EntryKind::Dir && existing_dir {
            dst = join(&dst, &it.name);
        }
        if dst.is_empty() && it.kind != EntryKind::Dir {
            return Err(self.err("cannot copy a file to /".into()));
        }
        if it.kind != EntryKind::Dir {
            return self.copy_entry(&src_host, &dst, g.owners, true);
        }
        // A directory's contents go into the destination, created if
        // missing; an existing non-directory there is an error (below).
        if self.lstat(&dst).is_none() {
            self.mkdir_all(&dst)?;
        } else {
            self.mkdir_all(parent(&dst))?;
        }
        self.copy_entry(&src_host, &dst, g.owners, true)?;
        for (rel, _) in &it.below {
            self.copy_entry(
                &g.tree.host_path(&join(&it.path, rel)),
                &join(&dst, rel),
                g.owners,
                false,
            )?;
        }
        Ok(())
    }

    /// ADD of a local archive: extracted into the destination (a directory).
    fn unpack(&mut self, src: &Path, compression: ArchiveKind, dest: &str) -> Result<()> {
        let d = self.resolve(dest)?;
        self.mkdir_all(&d)?;
        let f = fs::File::open(src).map_err(|e| Error::io("open", src, e))?;
        let reader = decompressor(BufReader::new(f), compression)
            .map_err(|e| Error::io("decompress", src, e))?;
        berth_layer::apply::apply_layer(&self.stage.join(&d), reader, &Default::default())?;
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        // Deepest first, so setting a child's time does not move its parent's.
        self.dir_times
            .sort_by_key(|(p, _)| std::cmp::Reverse(p.as_os_str().len()));
        for (p, t) in &self.dir_times {
            set_times(p, *t)?;
        }
        Ok(())
    }
}

/// Moves a staged tree into a file system as an overlay would merge it:
/// directories present on both sides take the staged metadata and are
/// merged; everything else is renamed into place (a new directory moves
/// whole). Staged trees never hold whiteouts.
fn merge_into(stage: &Path, root: &Path) -> Result<()> {
    let mut names: Vec<_> = fs::read_dir(stage)
        .map_err(|e| Error::io("read directory", stage, e))?
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    names.sort();
    for n in names {
        let (s, d) = (stage.join(&n), root.join(&n));
        let smd = fs::symlink_metadata(&s).map_err(|e| Error::io("stat", &s, e))?;
        match fs::symlink_metadata(&d) {
            Ok(dmd) if dmd.is_dir() && smd.is_dir() => {
                merge_into(&s, &d)?;
                fs::set_permissions(&d, fs::Permissions::from_mode(smd.mode() & 0o7777))
                    .map_err(|e| Error::io("chmod", &d, e))?;
                std::os::unix::fs::lchown(&d, Some(smd.uid()), Some(smd.gid()))
                    .map_err(|e| Error::io("chown", &d, e))?;
                set_times(&d, smd.modified().unwrap_or(SystemTime::UNIX_EPOCH))?;
            }
            Ok(dmd) if dmd.is_dir() => {
                fs::remove_dir_all(&d).map_err(|e| Error::io("remove", &d, e))?;
                fs::rename(&s, &d).map_err(|e| Error::io("rename", &s, e))?;
            }
            _ => fs::rename(&s, &d).map_err(|e| Error::io("rename", &s, e))?,
        }
    }
    Ok(())
}

/// Compression of an archive ADD unpacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArchiveKind {
    Plain,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

fn sniff(head: &[u8]) -> ArchiveKind {
    if head.starts_with(&[0x1f, 0x8b]) {
        ArchiveKind::Gzip
    } else if head.starts_with(b"BZh") {
        ArchiveKind::Bzip2
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        ArchiveKind::Xz
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        ArchiveKind::Zstd
    } else {
        ArchiveKind::Plain
    }
}

fn decompressor<'r, R: BufRead + 'r>(
    r: R,
    kind: ArchiveKind,
) -> std::io::Result<Box<dyn Read + 'r>> {
    Ok(match kind {
        ArchiveKind::Plain => Box::new(r),
        ArchiveKind::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        ArchiveKind::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(r)?),
        ArchiveKind::Bzip2 => Box::new(bzip2_rs::DecoderReader::new(r)),
        ArchiveKind::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(r)),
    })
}

/// Whether a file is a tar archive ADD unpacks (decided by content, as in
/// BuildKit: a recognised compression, or none, and a valid first tar
/// header), and its compression.
pub(crate) fn archive_compression(path: &Path) -> Result<Option<ArchiveKind>> {
    let f = fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut r = BufReader::new(f);
    let head = r.fill_buf().map_err(|e| Error::io("read", path, e))?;
    let kind = sniff(head);
    let Ok(mut d) = decompressor(r, kind) else {
        return Ok(None);
    };
    let mut block = [0u8; 512];
    let mut n = 0;
    while n < 512 {
        match d.read(&mut block[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return Ok(None),
        }
    }
    Ok((n == 512 && valid_tar_header(&block)).then_some(kind))
}

/// A tar header block whose checksum is right (and which is not all zeros).
fn valid_tar_header(b: &[u8; 512]) -> bool {
    if b.iter().all(|&x| x == 0) {
        return false;
    }
    let field = &b[148..156];
    let text: String = field
        .iter()
        .map(|&c| c as char)
        .filter(|c| c.is_ascii_digit())
        .collect();
    let Ok(want) = u32::from_str_radix(&text, 8) else {
        return false;
    };
    let sum: u32 = b
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            if (148..156).contains(&i) {
                32
            } else {
                c as u32
            }
        })
        .sum();
    sum == want
}

/// `--chown=user[:group]`: numeric, or names from `root`'s /etc/passwd and /etc/group.
pub(crate) fn resolve_chown(
    root: Option<&Path>,
    spec: &str,
) -> std::result::Result<(u32, u32), String> {
    let (u, g) = spec
        .split_once(':')
        .map_or((spec, None), |(u, g)| (u, Some(g)));
    let lookup = |file: &str, name: &str| -> std::result::Result<(u32, Option<u32>), String> {
        if let Ok(n) = name.parse::<u32>() {
            return Ok((n, None));
        }
        let Some(root) = root else {
            return Err(format!(
                "--chown={spec} with --link needs numeric ids (names cannot be looked up in an empty file system)"
            ));
        };
        let text = fs::read_to_string(root.join(file))
            .map_err(|_| format!("unable to find {name:?}: no /{file} in the image"))?;
        for line in text.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 3 && f[0] == name {
                let id = f[2]
                    .parse()
                    .map_err(|_| format!("bad /{file} entry for {name}"))?;
                let gid = f.get(3).and_then(|g| g.parse().ok());
                return Ok((id, gid));
            }
        }
        Err(format!("unable to find user or group {name:?} in /{file}"))
    };
    let (uid, primary) = lookup("etc/passwd", u)?;
    let gid = match g {
        Some(g) => lookup("etc/group", g)?.0,
        None => primary.unwrap_or(uid),
    };
    Ok((uid, gid))
}

/// What the cache key of a source group hashes.
fn url_of(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

impl Executor<'_> {
    /// Runs (or finds in the cache) one COPY/ADD. Returns whether it was cached.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn copy(
        &self,
        st: &mut StageState,
        c: &CopyOp,
        workdir: &str,
        line: usize,
        ctx: &Context,
        deps: &std::collections::BTreeMap<usize, StageState>,
        no_cache: bool,
    ) -> Result<bool> {
        let copy_err = |message: String| Error::Copy { line, message };
        let dest = Dest::new(&c.dest, workdir);
        let chmod = c
            .chmod
            .as_deref()
            .map(Chmod::parse)
            .transpose()
            .map_err(|e| copy_err(e.to_string()))?;
        let how = Selection {
            parents: c.parents,
            excludes: &c.excludes,
        };
        let (local, urls): (Vec<String>, Vec<String>) =
            c.sources.iter().cloned().partition(|s| !url_of(s));
        let unpack_local = c.add && c.unpack != Some(false);
        // The inputs of the key: the context's selected content, the source
        // stage's key (which determines its whole file system), an image's
        // manifest digest, URLs' checksums or content.
        let mut inputs: Vec<String> = Vec::new();
        let mut ctx_items = None;
        let mut image_src: Option<crate::exec::ImageSource> = None;
        match &c.from {
            Source::Context => {
                let items = Tree::Context(ctx).select(&local, &how).map_err(copy_err)?;
                inputs.push(ctx.digest_selected(&items)?.to_string());
                ctx_items = Some(items);
            }
            Source::Stage(j) => inputs.push(deps[j].key.to_string()),
            Source::Image(r) => {
                let src = self.image_source(r).map_err(|e| match e {
                    Error::Image(berth_image::Error::NotFound(_)) => copy_err(format!(
                        "COPY --from={r}: no such image in the local store (load or import it first)"
                    )),
                    e => e,
                })?;
                inputs.push(src.digest.to_string());
                image_src = Some(src);
            }
        }
        let downloads = tempfile::Builder::new()
            .prefix("add-")
            .tempdir_in(self.scratch_dir())
            .map_err(|e| Error::io("create directory in", self.scratch_dir(), e))?;
        let mut url_downloads = Vec::new();
        for (n, u) in urls.iter().enumerate() {
            let (input, dl) =
                self.fetch_url(u, c.checksum.as_deref(), downloads.path(), n, line)?;
            inputs.push(input);
            url_downloads.push((u, dl));
        }
        let definition = json!({
            "op": if c.add { "add" } else { "copy" },
            "dest": dest.rel, "dest_dir": dest.dir,
            "chmod": c.chmod, "chown": c.chown, "link": c.link, "parents": c.parents,
            "excludes": c.excludes, "inline": c.inline, "sources": c.sources,
            "unpack": c.unpack, "checksum": c.checksum,
        })
        .to_string();
        let mut parts: Vec<&[u8]> = Vec::new();
        let parent_key = st.key.to_string();
        if !c.link {
            parts.push(parent_key.as_bytes());
        }
        parts.push(definition.as_bytes());
        for i in &inputs {
            parts.push(i.as_bytes());
        }
        let key = key_of(&parts);
        let epoch = self.epoch_time();
        let mut merged_rootfs = None;
        let cached = self.run_cached(st, &key, no_cache, |ex, st| {
            let base = if c.link {
                None
            } else {
                Some(ex.rootfs(st)?.to_owned())
            };
            let chown = c
                .chown
                .as_deref()
                .map(|s| resolve_chown(base.as_deref(), s))
                .transpose()
                .map_err(copy_err)?;
            // Sources from a stage or an image are selected in its file system.
            let mut _keep_src = None;
            let mut groups: Vec<Group<'_>> = Vec::new();
            let src_root: Option<PathBuf> = match &c.from {
                Source::Stage(j) => {
                    let root = ex.snapshot(
                        &deps[j].key,
                        &deps[j].layers,
                        &deps[j].config.rootfs.diff_ids,
                    )?;
                    let p = root.path().to_owned();
                    _keep_src = Some(root);
                    Some(p)
                }
                Source::Image(_) => {
                    let src = image_src.as_ref().expect("resolved above");
                    let root = ex.snapshot(&src.digest, &src.layers, &src.diff_ids)?;
                    let p = root.path().to_owned();
                    _keep_src = Some(root);
                    Some(p)
                }
                Source::Context => None,
            };
            if let Some(root) = &src_root {
                let tree = Tree::Dir(root);
                let items = tree.select(&local, &how).map_err(copy_err)?;
                groups.push(Group {
                    tree,
                    items,
                    owners: Owners::Keep,
                    unpack: unpack_local,
                });
            } else if let Some(items) = ctx_items.clone() {
                groups.push(Group {
                    tree: Tree::Context(ctx),
                    items,
                    owners: Owners::Root,
                    unpack: unpack_local,
                });
            }
            // Heredocs are files in a scratch directory (0644, root's).
            let inline_dir = downloads.path().join("inline");
            for (name, content) in &c.inline {
                fs::create_dir_all(&inline_dir)
                    .map_err(|e| Error::io("create directory", &inline_dir, e))?;
                let f = inline_dir.join(name);
                fs::write(&f, content).map_err(|e| Error::io("write", &f, e))?;
                fs::set_permissions(&f, fs::Permissions::from_mode(0o644))
                    .map_err(|e| Error::io("chmod", &f, e))?;
                if let Some(t) = epoch {
                    set_times(&f, t)?;
                }
            }
            let staging = ex.staging()?;
            let mut t = Target {
                stage: staging.path(),
                base: base.as_deref(),
                chown,
                chmod: chmod.clone(),
                now: epoch.unwrap_or_else(SystemTime::now),
                dir_times: Vec::new(),
                links: HashMap::new(),
                staged_dirs: Default::default(),
                line,
            };
            for g in &groups {
                for it in &g.items {
                    t.copy_item(g, it, &dest)?;
                }
            }
            let mut url_items = Vec::new();
            for (n, (u, dl)) in url_downloads.iter().enumerate() {
                let d = match dl {
                    Some(d) => d.clone(),
                    None => crate::fetch::deferred(
                        ex.fetcher(),
                        u,
                        c.checksum.as_deref(),
                        downloads.path(),
                        n,
                        line,
                    )?,
                };
                url_items.push(d.item);
            }
            let url_group = Group {
                tree: Tree::Dir(downloads.path()),
                items: url_items,
                owners: Owners::Root,
                unpack: c.unpack == Some(true),
            };
            for it in &url_group.items {
                t.copy_item(&url_group, it, &dest)?;
            }
            let inline_group = Group {
                tree: Tree::Dir(&inline_dir),
                items: c
                    .inline
                    .iter()
                    .map(|(name, _)| Selected {
                        name: name.clone(),
                        path: name.clone(),
                        kind: EntryKind::File,
                        below: Vec::new(),
                    })
                    .collect(),
                owners: Owners::Root,
                unpack: false,
            };
            for it in &inline_group.items {
                t.copy_item(&inline_group, it, &dest)?;
            }
            t.finish()?;
            let layer = ex.write_layer(staging.path())?;
            // The staged tree is the layer: it becomes the layer's snapshot,
            // or the stage's private file system takes the staged files by
            // rename (whole new directories at once); either way the layer
            // just written is not extracted again.
            if ex.uses_snapshots() {
                ex.commit_snapshot(st, &layer.0.digest, &layer.1, staging.path())?;
            } else if let Some(crate::exec::RootFs::Flat(rootfs)) = st.rootfs.take() {
                merge_into(staging.path(), rootfs.path())?;
                merged_rootfs = Some(crate::exec::RootFs::Flat(rootfs));
            }
            Ok(Some(layer))
        })?;
        if let Some(r) = merged_rootfs {
            st.rootfs = Some(r);
        }
        if c.link {
            // The layer is independent of what is below; the stage's state
            // still depends on both.
            st.key = key_of(&[parent_key.as_bytes(), b"link", key.to_string().as_bytes()]);
        }
        Ok(cached)
    }
}
