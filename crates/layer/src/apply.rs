//! Layer tar → directory, with whiteouts, confined to the root.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, Timestamps};
use rustix::io::Errno;

use crate::{Error, OPAQUE_MARKER, Result, WHITEOUT_PREFIX, clean_components};

/// The attribute that makes an overlay upper directory opaque.
const OVERLAY_OPAQUE: &str = "trusted.overlay.opaque";

/// Options for [`apply_layer`].
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Set owners from the tar (needs privilege; off for rootless unpacking).
    pub preserve_owner: bool,
    /// Write the layer as an overlayfs upper directory instead of applying
    /// it: whiteouts become 0/0 character devices and opaque markers the
    /// `trusted.overlay.opaque` attribute, nothing below is touched, and
    /// `trusted.overlay.*` attributes from the tar are dropped (a layer
    /// must not steer the overlay). For extracting one layer into an empty
    /// directory that becomes an overlay lower directory.
    pub overlay: bool,
}

impl Default for ApplyOptions {
    fn default() -> ApplyOptions {
        ApplyOptions {
            preserve_owner: rustix::process::geteuid().is_root(),
            overlay: false,
        }
    }
}

/// Counts of what was applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyStats {
    pub entries: u64,
    pub whiteouts: u64,
}

fn ts(secs: u64) -> Timestamps {
    let t = rustix::fs::Timespec {
        tv_sec: secs as i64,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

struct Applier<'a> {
    root: &'a Path,
    root_fd: OwnedFd,
    opts: &'a ApplyOptions,
    created: HashSet<String>,
    dir_times: Vec<(String, u64)>,
}

impl Applier<'_> {
    /// Opens (creating as needed) the directory `components` inside the root.
    /// Every lookup resolves symlinks as if the root were `/`; a dangling
    /// symlink on the way has its target created inside the root, as
    /// containerd and Docker do.
    fn open_dir(&self, components: &[&str]) -> Result<OwnedFd> {
        self.open_dir_depth(components.iter().map(|c| (*c).to_owned()).collect(), 0)
    }

    fn open_dir_depth(&self, components: Vec<String>, depth: u32) -> Result<OwnedFd> {
        if depth > 40 {
            return Err(Error::Tar(format!(
                "too many levels of symbolic links under {}",
                components.join("/")
            )));
        }
        let open = |rel: &str| {
            rustix::fs::openat2(
                &self.root_fd,
                if rel.is_empty() { "." } else { rel },
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            )
        };
        let mut fd = open("").map_err(|e| Error::io("open", self.root, e))?;
        for i in 0..components.len() {
            let c = components[i].as_str();
            let rel = components[..=i].join("/");
            let path = || self.root.join(&rel);
            fd = match open(&rel) {
                Ok(f) => f,
                Err(Errno::NOENT) => {
                    match rustix::fs::readlinkat(&fd, c, Vec::new()) {
                        Ok(target) => {
                            // A dangling symlink: create its target in the root.
                            let target = target.to_string_lossy().into_owned();
                            let mut next: Vec<String> = if target.starts_with('/') {
                                Vec::new()
                            } else {
                                components[..i].to_vec()
                            };
                            next.extend(target.split('/').map(str::to_owned));
                            next.extend(components[i + 1..].iter().cloned());
                            let joined = next.join("/");
                            let cleaned: Vec<String> = clean_components(&joined)
                                .into_iter()
                                .map(str::to_owned)
                                .collect();
                            return self.open_dir_depth(cleaned, depth + 1);
                        }
                        Err(_) => {
                            rustix::fs::mkdirat(&fd, c, Mode::from_raw_mode(0o755))
                                .or_else(|e| if e == Errno::EXIST { Ok(()) } else { Err(e) })
                                .map_err(|e| Error::io("create directory", path(), e))?;
                            open(&rel).map_err(|e| Error::io("open", path(), e))?
                        }
                    }
                }
                Err(Errno::NOTDIR) => {
                    // A non-directory is in the way of a parent: replace it.
                    rustix::fs::unlinkat(&fd, c, AtFlags::empty())
                        .map_err(|e| Error::io("remove", path(), e))?;
                    rustix::fs::mkdirat(&fd, c, Mode::from_raw_mode(0o755))
                        .map_err(|e| Error::io("create directory", path(), e))?;
                    open(&rel).map_err(|e| Error::io("open", path(), e))?
                }
                Err(e) => return Err(Error::io("open", path(), e)),
            };
        }
        Ok(fd)
    }

    /// The real path of a directory fd (for recursive removal with std).
    fn real_path(&self, fd: &OwnedFd) -> Result<PathBuf> {
        let link = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(fd));
        let p = std::fs::read_link(&link).map_err(|e| Error::io("readlink", &link, e))?;
        let root = std::fs::canonicalize(self.root)
            .map_err(|e| Error::io("canonicalize", self.root, e))?;
        if !p.starts_with(&root) {
            return Err(Error::Tar(format!(
                "{} resolved outside the root",
                p.display()
            )));
        }
        Ok(p)
    }

    /// Removes `name` in `dir` whatever it is (directories recursively).
    fn remove(&self, dir: &OwnedFd, name: &str) -> Result<()> {
        match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(Error::io("stat", name, e)),
            Ok(st)
                if rustix::fs::FileType::from_raw_mode(st.st_mode)
                    == rustix::fs::FileType::Directory =>
            {
                let p = self.real_path(dir)?.join(name);
                std::fs::remove_dir_all(&p).map_err(|e| Error::io("remove", p, e))
            }
            Ok(_) => rustix::fs::unlinkat(dir, name, AtFlags::empty())
                .map_err(|e| Error::io("remove", name, e)),
        }
    }

    fn apply_entry<R: Read>(
        &mut self,
        mut entry: tar::Entry<'_, R>,
        stats: &mut ApplyStats,
    ) -> Result<()> {
        let raw = String::from_utf8(entry.path_bytes().into_owned())
            .map_err(|_| Error::Tar("entry name is not UTF-8".into()))?;
        let comps = clean_components(&raw);
        let Some((&base, parents)) = comps.split_last() else {
            // The root itself: take its metadata only.
            return Ok(());
        };
        let rel = comps.join("/");
        let header = entry.header().clone();
        let kind = header.entry_type();
        let dir = self.open_dir(parents)?;
        let parent_rel = parents.join("/");

        if self.opts.overlay && base == OPAQUE_MARKER {
            let d = rustix::fs::openat(
                &dir,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| Error::io("open", self.root.join(&parent_rel), e))?;
            rustix::fs::fsetxattr(&d, OVERLAY_OPAQUE, b"y", rustix::fs::XattrFlags::empty())
                .map_err(|e| Error::io("mark opaque", self.root.join(&parent_rel), e))?;
            stats.whiteouts += 1;
            return Ok(());
        }
        if self.opts.overlay
            && let Some(hidden) = base.strip_prefix(WHITEOUT_PREFIX)
        {
            if rustix::fs::statat(&dir, hidden, AtFlags::SYMLINK_NOFOLLOW).is_ok() {
                self.remove(&dir, hidden)?;
            }
            rustix::fs::mknodat(
                &dir,
                hidden,
                rustix::fs::FileType::CharacterDevice,
                Mode::empty(),
                rustix::fs::makedev(0, 0),
            )
            .map_err(|e| Error::io("mknod whiteout", self.root.join(&rel), e))?;
            stats.whiteouts += 1;
            return Ok(());
        }
        if base == OPAQUE_MARKER {
            // Hide everything below this directory that earlier layers made.
            let path = self.real_path(&dir)?;
            let entries =
                std::fs::read_dir(&path).map_err(|e| Error::io("read directory", &path, e))?;
            for e in entries {
                let e = e.map_err(|err| Error::io("read directory", &path, err))?;
                let name = e.file_name().to_string_lossy().into_owned();
                let child = if parent_rel.is_empty() {
                    name.clone()
                } else {
                    format!("{parent_rel}/{name}")
                };
                if !self.created.contains(&child) {
                    self.remove(&dir, &name)?;
                }
            }
            stats.whiteouts += 1;
            return Ok(());
        }
        if let Some(hidden) = base.strip_prefix(WHITEOUT_PREFIX) {
            self.remove(&dir, hidden)?;
            stats.whiteouts += 1;
            return Ok(());
        }

        let mode = header
            .mode()
            .map_err(|e| Error::Tar(format!("{raw}: {e}")))?
            & 0o7777;
        // Empty numeric fields read as 0, as Go's archive/tar does.
        let uid = header.uid().unwrap_or(0) as u32;
        let gid = header.gid().unwrap_or(0) as u32;
        let mtime = header.mtime().unwrap_or(0);
        let mut xattrs = Vec::new();
        if let Ok(Some(exts)) = entry.pax_extensions() {
            for ext in exts.flatten() {
                if let Ok(k) = ext.key()
                    && let Some(name) = k.strip_prefix("SCHILY.xattr.")
                    && !(self.opts.overlay && name.starts_with("trusted.overlay."))
                {
                    xattrs.push((name.to_owned(), ext.value_bytes().to_vec()));
                }
            }
        }
        let owner = |fd: &OwnedFd| -> Result<()> {
            if self.opts.preserve_owner {
                rustix::fs::chownat(
                    fd,
                    base,
                    Some(rustix::fs::Uid::from_raw(uid)),
                    Some(rustix::fs::Gid::from_raw(gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|e| Error::io("chown", self.root.join(&rel), e))?;
            }
            Ok(())
        };

        // Replace whatever is there, except a directory that stays a directory.
        let existing = rustix::fs::statat(&dir, base, AtFlags::SYMLINK_NOFOLLOW).ok();
        let existing_is_dir = existing.as_ref().is_some_and(|st| {
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory
        });
        if existing.is_some() && !(kind == tar::EntryType::Directory && existing_is_dir) {
            self.remove(&dir, base)?;
        }
        match kind {
            tar::EntryType::Directory => {
                if !existing_is_dir {
                    rustix::fs::mkdirat(&dir, base, Mode::from_raw_mode(0o700))
                        .map_err(|e| Error::io("create directory", self.root.join(&rel), e))?;
                }
                owner(&dir)?;
                let d = rustix::fs::openat(
                    &dir,
                    base,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| Error::io("open", self.root.join(&rel), e))?;
                rustix::fs::fchmod(&d, Mode::from_raw_mode(mode))
                    .map_err(|e| Error::io("chmod", self.root.join(&rel), e))?;
                for (k, v) in &xattrs {
                    let _ =
                        rustix::fs::fsetxattr(&d, k.as_str(), v, rustix::fs::XattrFlags::empty());
                }
                self.dir_times.push((rel.clone(), mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let f = rustix::fs::openat(
                    &dir,
                    base,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| Error::io("create", self.root.join(&rel), e))?;
                let mut file = File::from(f);
                io::copy(&mut entry, &mut file)
                    .map_err(|e| Error::Tar(format!("{raw}: truncated or unreadable: {e}")))?;
                if self.opts.preserve_owner {
                    rustix::fs::fchown(
                        &file,
                        Some(rustix::fs::Uid::from_raw(uid)),
                        Some(rustix::fs::Gid::from_raw(gid)),
                    )
                    .map_err(|e| Error::io("chown", self.root.join(&rel), e))?;
                }
                // chmod after chown: chown clears set-id bits.
                rustix::fs::fchmod(&file, Mode::from_raw_mode(mode))
                    .map_err(|e| Error::io("chmod", self.root.join(&rel), e))?;
                for (k, v) in &xattrs {
                    let _ = rustix::fs::fsetxattr(
                        &file,
                        k.as_str(),
                        v,
                        rustix::fs::XattrFlags::empty(),
                    );
                }
                rustix::fs::futimens(&file, &ts(mtime))
                    .map_err(|e| Error::io("set times", self.root.join(&rel), e))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| Error::Tar(format!("{raw}: symlink without target")))?
                    .into_owned();
                rustix::fs::symlinkat(target.as_slice(), &dir, base)
                    .map_err(|e| Error::io("symlink", self.root.join(&rel), e))?;
                owner(&dir)?;
                let _ = rustix::fs::utimensat(&dir, base, &ts(mtime), AtFlags::SYMLINK_NOFOLLOW);
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| Error::Tar(format!("{raw}: hardlink without target")))?;
                let target = String::from_utf8_lossy(&target).into_owned();
                let tcomps = clean_components(&target);
                let Some((&tbase, tparents)) = tcomps.split_last() else {
                    return Err(Error::Tar(format!("{raw}: hardlink to the root")));
                };
                let tdir = self.open_dir(tparents)?;
                rustix::fs::linkat(&tdir, tbase, &dir, base, AtFlags::empty())
                    .map_err(|e| Error::io("hardlink", self.root.join(&rel), e))?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let ft = match kind {
                    tar::EntryType::Char => rustix::fs::FileType::CharacterDevice,
                    tar::EntryType::Block => rustix::fs::FileType::BlockDevice,
                    _ => rustix::fs::FileType::Fifo,
                };
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                rustix::fs::mknodat(
                    &dir,
                    base,
                    ft,
                    Mode::from_raw_mode(mode),
                    rustix::fs::makedev(major, minor),
                )
                .map_err(|e| Error::io("mknod", self.root.join(&rel), e))?;
                owner(&dir)?;
                let _ = rustix::fs::utimensat(&dir, base, &ts(mtime), AtFlags::SYMLINK_NOFOLLOW);
            }
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => return Ok(()),
            other => {
                return Err(Error::Tar(format!(
                    "{raw}: unsupported entry type {other:?}"
                )));
            }
        }
        self.created.insert(rel);
        stats.entries += 1;
        Ok(())
    }
}

/// Extracts a (decompressed) layer tar onto `root`, applying whiteouts.
pub fn apply_layer<R: Read>(root: &Path, tar: R, opts: &ApplyOptions) -> Result<ApplyStats> {
    std::fs::create_dir_all(root).map_err(|e| Error::io("create directory", root, e))?;
    let root_fd = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open", root, e))?;
    let mut a = Applier {
        root,
        root_fd,
        opts,
        created: HashSet::new(),
        dir_times: Vec::new(),
    };
    let mut archive = tar::Archive::new(tar);
    let mut stats = ApplyStats::default();
    let bad = |e: io::Error| Error::Tar(format!("cannot read the tar stream: {e}"));
    for entry in archive.entries().map_err(bad)? {
        let entry = entry.map_err(bad)?;
        a.apply_entry(entry, &mut stats)?;
    }
    // Directory times last: creating children changed them.
    for (rel, mtime) in a.dir_times.iter().rev() {
        let comps: Vec<&str> = rel.split('/').collect();
        let (base, parents) = comps.split_last().expect("non-empty");
        if let Ok(dir) = a.open_dir(parents) {
            let _ = rustix::fs::utimensat(&dir, *base, &ts(*mtime), AtFlags::SYMLINK_NOFOLLOW);
        }
    }
    Ok(stats)
}
