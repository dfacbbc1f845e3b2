//! Directory → layer tar.

use std::collections::HashMap;
use std::fs::{self, File, Metadata};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::{Error, OPAQUE_MARKER, Result, WHITEOUT_PREFIX};

/// What kind of directory is being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A complete tree: every entry is written as it is.
    Tree,
    /// An overlayfs upper directory: 0/0 character devices are whiteouts and
    /// `trusted.overlay.opaque=y` marks opaque directories.
    OverlayUpper,
}

/// Options for [`write_layer`].
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// Clamp every mtime to at most this (seconds since the epoch).
    pub clamp_mtime: Option<u64>,
    /// Prefix prepended to every entry name (e.g. a COPY destination), without slashes at the ends.
    pub prefix: Option<String>,
}

/// Counts of what was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub entries: u64,
    pub file_bytes: u64,
    pub whiteouts: u64,
}

struct Writer<'a, W: Write> {
    builder: tar::Builder<W>,
    opts: &'a WriteOptions,
    source: Source,
    links: HashMap<(u64, u64), String>,
    stats: Stats,
}

fn is_whiteout_device(md: &Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

/// Extended attributes of a path (not following symlinks), sorted by name.
pub fn xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut names = vec![0u8; 4096];
    let n = match rustix::fs::llistxattr(path, &mut names[..]) {
        Ok(n) => n,
        Err(rustix::io::Errno::RANGE) => match rustix::fs::llistxattr(path, &mut [0u8; 0][..]) {
            Ok(size) => {
                names = vec![0u8; size];
                rustix::fs::llistxattr(path, &mut names[..]).unwrap_or(0)
            }
            Err(_) => 0,
        },
        Err(_) => 0,
    };
    let mut out = Vec::new();
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        let size = match rustix::fs::lgetxattr(path, name, &mut [0u8; 0][..]) {
            Ok(s) => s,
            Err(_) => continue,
        };
        let mut value = vec![0u8; size];
        if let Ok(k) = rustix::fs::lgetxattr(path, name, &mut value[..]) {
            value.truncate(k);
            out.push((name.to_owned(), value));
        }
    }
    out.sort();
    out
}

fn is_opaque(path: &Path) -> bool {
    let mut v = [0u8; 1];
    for name in ["trusted.overlay.opaque", "user.overlay.opaque"] {
        if matches!(rustix::fs::lgetxattr(path, name, &mut v[..]), Ok(1)) && v[0] == b'y' {
            return true;
        }
    }
    false
}

impl<W: Write> Writer<'_, W> {
    fn name(&self, rel: &str, dir: bool) -> String {
        let mut s = match &self.opts.prefix {
            Some(p) if !p.is_empty() && rel.is_empty() => p.clone(),
            Some(p) if !p.is_empty() => format!("{p}/{rel}"),
            _ => rel.to_owned(),
        };
        if dir {
            s.push('/');
        }
        s
    }

    fn mtime(&self, md: &Metadata) -> u64 {
        let t = md.mtime().max(0) as u64;
        match self.opts.clamp_mtime {
            Some(c) => t.min(c),
            None => t,
        }
    }

    /// Writes one header (plus PAX records when needed) and its data.
    fn emit(
        &mut self,
        name: &str,
        mut header: tar::Header,
        link: Option<&[u8]>,
        xattrs: &[(String, Vec<u8>)],
        data: &mut dyn io::Read,
    ) -> Result<()> {
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        if header.set_path(name).is_err() {
            pax.push(("path".into(), name.as_bytes().to_vec()));
            let short: Vec<u8> = name.bytes().take(99).collect();
            header.as_old_mut().name = [0; 100];
            header.as_old_mut().name[..short.len()].copy_from_slice(&short);
        }
        if let Some(l) = link {
            // Link targets are written byte for byte (no path normalisation).
            if l.len() > 100 {
                pax.push(("linkpath".into(), l.to_vec()));
            }
            let short: Vec<u8> = l.iter().copied().take(100).collect();
            header.as_old_mut().linkname = [0; 100];
            header.as_old_mut().linkname[..short.len()].copy_from_slice(&short);
        }
        for (k, v) in xattrs {
            pax.push((format!("SCHILY.xattr.{k}"), v.clone()));
        }
        if !pax.is_empty() {
            self.builder
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(|e| Error::io("write", name, e))?;
        }
        header.set_cksum();
        self.builder
            .append(&header, data)
            .map_err(|e| Error::io("write", name, e))?;
        self.stats.entries += 1;
        Ok(())
    }

    fn base_header(&self, md: &Metadata, kind: tar::EntryType) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(md.mode() & 0o7777);
        h.set_uid(md.uid() as u64);
        h.set_gid(md.gid() as u64);
        h.set_mtime(self.mtime(md));
        h.set_size(0);
        h
    }

    fn whiteout(&mut self, rel_parent: &str, name: &str, md: &Metadata) -> Result<()> {
        let rel = if rel_parent.is_empty() {
            format!("{WHITEOUT_PREFIX}{name}")
        } else {
            format!("{rel_parent}/{WHITEOUT_PREFIX}{name}")
        };
        let mut h = self.base_header(md, tar::EntryType::Regular);
        h.set_mode(0);
        h.set_uid(0);
        h.set_gid(0);
        let full = self.name(&rel, false);
        self.emit(&full, h, None, &[], &mut io::empty())?;
        self.stats.whiteouts += 1;
        Ok(())
    }

    fn walk(&mut self, abs: &Path, rel: &str) -> Result<()> {
        let md = fs::symlink_metadata(abs).map_err(|e| Error::io("stat", abs, e))?;
        let ft = md.file_type();
        let xa: Vec<(String, Vec<u8>)> = xattrs(abs)
            .into_iter()
            .filter(|(k, _)| !k.starts_with("trusted.overlay.") && !k.starts_with("user.overlay."))
            .collect();
        if ft.is_dir() {
            // The root of a Tree with no prefix has no entry of its own.
            if !(rel.is_empty() && self.opts.prefix.as_deref().unwrap_or("").is_empty()) {
                let h = self.base_header(&md, tar::EntryType::Directory);
                let name = self.name(rel, true);
                self.emit(&name, h, None, &xa, &mut io::empty())?;
            }
            if self.source == Source::OverlayUpper && is_opaque(abs) {
                let marker = if rel.is_empty() {
                    OPAQUE_MARKER.to_owned()
                } else {
                    format!("{rel}/{OPAQUE_MARKER}")
                };
                let mut h = self.base_header(&md, tar::EntryType::Regular);
                h.set_mode(0);
                let name = self.name(&marker, false);
                self.emit(&name, h, None, &[], &mut io::empty())?;
                self.stats.whiteouts += 1;
            }
            let mut children: Vec<(Vec<u8>, PathBuf)> = fs::read_dir(abs)
                .map_err(|e| Error::io("read directory", abs, e))?
                .map(|e| {
                    let e = e.map_err(|err| Error::io("read directory", abs, err))?;
                    Ok((e.file_name().as_bytes().to_vec(), e.path()))
                })
                .collect::<Result<_>>()?;
            children.sort();
            for (name, path) in children {
                let name = String::from_utf8(name).map_err(|n| {
                    Error::Tar(format!(
                        "file name {:?} in {} is not UTF-8",
                        String::from_utf8_lossy(n.as_bytes()),
                        abs.display()
                    ))
                })?;
                let child_rel = if rel.is_empty() {
                    name.clone()
                } else {
                    format!("{rel}/{name}")
                };
                if self.source == Source::OverlayUpper {
                    let cmd =
                        fs::symlink_metadata(&path).map_err(|e| Error::io("stat", &path, e))?;
                    if is_whiteout_device(&cmd) {
                        self.whiteout(rel, &name, &cmd)?;
                        continue;
                    }
                }
                self.walk(&path, &child_rel)?;
            }
            return Ok(());
        }
        let name = self.name(rel, false);
        if ft.is_symlink() {
            let target = fs::read_link(abs).map_err(|e| Error::io("readlink", abs, e))?;
            let h = self.base_header(&md, tar::EntryType::Symlink);
            return self.emit(
                &name,
                h,
                Some(target.as_os_str().as_bytes()),
                &xa,
                &mut io::empty(),
            );
        }
        if md.nlink() > 1 && !ft.is_dir() {
            let key = (md.dev(), md.ino());
            if let Some(first) = self.links.get(&key).cloned() {
                let h = self.base_header(&md, tar::EntryType::Link);
                return self.emit(&name, h, Some(first.as_bytes()), &[], &mut io::empty());
            }
            self.links.insert(key, name.clone());
        }
        if ft.is_file() {
            let mut h = self.base_header(&md, tar::EntryType::Regular);
            h.set_size(md.len());
            let mut f = File::open(abs).map_err(|e| Error::io("open", abs, e))?;
            let mut limited = io::Read::take(&mut f, md.len());
            self.emit(&name, h, None, &xa, &mut limited)?;
            self.stats.file_bytes += md.len();
            return Ok(());
        }
        let kind = if ft.is_char_device() {
            tar::EntryType::Char
        } else if ft.is_block_device() {
            tar::EntryType::Block
        } else if ft.is_fifo() {
            tar::EntryType::Fifo
        } else {
            // Sockets cannot be carried in a layer; BuildKit skips them too.
            return Ok(());
        };
        let mut h = self.base_header(&md, kind);
        let rdev = md.rdev();
        h.set_device_major(rustix::fs::major(rdev)).ok();
        h.set_device_minor(rustix::fs::minor(rdev)).ok();
        self.emit(&name, h, None, &xa, &mut io::empty())
    }
}

/// Writes `root` as a layer tar to `out`, returning `out` and what was written.
pub fn write_layer<W: Write>(
    root: &Path,
    source: Source,
    opts: &WriteOptions,
    out: W,
) -> Result<(W, Stats)> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    let mut w = Writer {
        builder,
        opts,
        source,
        links: HashMap::new(),
        stats: Stats::default(),
    };
    w.walk(root, "")?;
    let stats = w.stats.clone();
    let out = w
        .builder
        .into_inner()
        .map_err(|e| Error::io("write", root, e))?;
    Ok((out, stats))
}
