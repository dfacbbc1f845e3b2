//! Building the sandbox's filesystem, inside its new mount namespace, before
//! `pivot_root`: the root (overlay or directory), the system mounts, the
//! caller's mounts, masked and read-only paths.
//!
//! Every mount target is resolved with `openat2(RESOLVE_IN_ROOT)` and
//! mounted through `/proc/self/fd/N`, so a symlink in the image can never
//! redirect a mount to a host path.
//!
//! Mountpoints that the image lacks are created as *stubs* in an extra
//! lower layer of the overlay (in the scratch directory), never in the upper
//! directory: the layer made from the upper directory contains only what the
//! command did. Stub directories copy the mode and owner of the directories
//! they shadow, so a later copy-up records the image's attributes.

use std::collections::VecDeque;
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};

use crate::init::Fail;
use crate::spec::{MountKind, Rootfs, Spec};

type R<T> = Result<T, Fail>;

fn fail(stage: impl Into<String>, e: impl std::fmt::Display) -> Fail {
    Fail {
        stage: stage.into(),
        message: e.to_string(),
    }
}

/// Path components of an absolute in-sandbox path, lexically cleaned.
fn components(path: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c.to_owned()),
        }
    }
    out
}

fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn open_in_root(root: &OwnedFd, path: &str) -> io::Result<OwnedFd> {
    let rel = components(path).join("/");
    let rel = if rel.is_empty() { ".".to_owned() } else { rel };
    Ok(rustix::fs::openat2(
        root,
        rel.as_str(),
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )?)
}

/// Opens `path` in the root, creating it (and its parents) when missing.
fn ensure_in_root(root: &OwnedFd, path: &str, dir: bool) -> io::Result<OwnedFd> {
    match open_in_root(root, path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        other => return other,
    }
    let comps = components(path);
    for i in 0..comps.len() {
        let prefix = comps[..=i].join("/");
        match open_in_root(root, &prefix) {
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let parent = open_in_root(root, &comps[..i].join("/"))?;
        let last = i + 1 == comps.len();
        if last && !dir {
            // O_PATH descriptors cannot create files; open the parent for real.
            let p = rustix::fs::openat(
                &parent,
                ".",
                OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            rustix::fs::openat(
                &p,
                comps[i].as_str(),
                OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                Mode::from_raw_mode(0o644),
            )?;
        } else {
            match rustix::fs::mkdirat(&parent, comps[i].as_str(), Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    open_in_root(root, path)
}

fn mount(
    source: &str,
    target: &str,
    fstype: &str,
    flags: MountFlags,
    data: Option<&str>,
) -> io::Result<()> {
    let data = data.map(|d| CString::new(d).expect("mount options have no NUL"));
    rustix::mount::mount(source, target, fstype, flags, data.as_deref())?;
    Ok(())
}

/// Remounts the mount at `fd` (a freshly opened path, so the top mount)
/// read-only, keeping the flags a user namespace would lock.
fn remount_readonly(fd: &OwnedFd) -> io::Result<()> {
    let path = fd_path(fd);
    let st = rustix::fs::statvfs(path.as_str())?;
    let mut flags = MountFlags::BIND | MountFlags::RDONLY;
    use rustix::fs::StatVfsMountFlags as S;
    for (s, m) in [
        (S::NOSUID, MountFlags::NOSUID),
        (S::NODEV, MountFlags::NODEV),
        (S::NOEXEC, MountFlags::NOEXEC),
        (S::NOATIME, MountFlags::NOATIME),
        (S::NODIRATIME, MountFlags::NODIRATIME),
        (S::RELATIME, MountFlags::RELATIME),
    ] {
        if st.f_flag.contains(s) {
            flags |= m;
        }
    }
    rustix::mount::mount_remount(path.as_str(), flags, "")?;
    Ok(())
}

/// What the lower layers hold at a path (topmost wins).
enum Found {
    Missing,
    Dir(fs::Metadata),
    Symlink(String),
    Other,
}

fn is_whiteout(md: &fs::Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

fn is_opaque(path: &Path) -> bool {
    let mut v = [0u8; 1];
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|n| matches!(rustix::fs::lgetxattr(path, *n, &mut v[..]), Ok(1)) && v[0] == b'y')
}

/// Looks a path up through overlay lower layers (whiteouts, opaque
/// directories), without following a final symlink.
fn lookup(lowers: &[PathBuf], comps: &[String]) -> Found {
    let mut layers: Vec<usize> = (0..lowers.len()).collect();
    let mut top: Option<fs::Metadata> = lowers.first().and_then(|l| fs::metadata(l).ok());
    for i in 0..comps.len() {
        let prefix = comps[..=i].join("/");
        let mut next = Vec::new();
        top = None;
        for &l in &layers {
            let p = lowers[l].join(&prefix);
            let Ok(md) = fs::symlink_metadata(&p) else {
                continue;
            };
            if is_whiteout(&md) {
                break;
            }
            let is_dir = md.is_dir();
            if top.is_none() {
                if md.file_type().is_symlink() {
                    return match fs::read_link(&p) {
                        Ok(t) => Found::Symlink(t.to_string_lossy().into_owned()),
                        Err(_) => Found::Other,
                    };
                }
                top = Some(md);
            }
            if !is_dir {
                break;
            }
            next.push(l);
            if is_opaque(&p) {
                break;
            }
        }
        match &top {
            None => return Found::Missing,
            Some(md) if !md.is_dir() => return Found::Other,
            Some(_) => layers = next,
        }
    }
    match top {
        Some(md) => Found::Dir(md),
        None => Found::Missing,
    }
}

/// Creates what `target` needs in `stubs` so that it exists in the overlay
/// of `stubs` over `lowers`. Returns the target's path with symlinks
/// resolved (in the image).
fn make_stub(stubs: &Path, lowers: &[PathBuf], target: &str, dir: bool) -> R<String> {
    let stage = || format!("mountpoint {target}");
    let mut queue: VecDeque<String> = components(target).into();
    let mut resolved: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(c) = queue.pop_front() {
        if c == ".." {
            resolved.pop();
            continue;
        }
        if c == "." {
            continue;
        }
        let mut cand = resolved.clone();
        cand.push(c.clone());
        match lookup(lowers, &cand) {
            Found::Symlink(t) => {
                hops += 1;
                if hops > 40 {
                    return Err(fail(stage(), "too many levels of symbolic links"));
                }
                if t.starts_with('/') {
                    resolved.clear();
                }
                let mut q: VecDeque<String> = t
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                q.extend(queue.drain(..));
                queue = q;
            }
            Found::Dir(_) => resolved.push(c),
            Found::Other if queue.is_empty() => return Ok(cand.join("/")),
            Found::Other => {
                return Err(fail(
                    stage(),
                    format!("/{} is not a directory", cand.join("/")),
                ));
            }
            Found::Missing => {
                // Existing parents first, with the image's attributes.
                let mut made: Vec<(PathBuf, fs::Metadata)> = Vec::new();
                for i in 0..resolved.len() {
                    let p = stubs.join(resolved[..=i].join("/"));
                    if fs::symlink_metadata(&p).is_ok() {
                        continue;
                    }
                    fs::create_dir(&p).map_err(|e| fail(stage(), e))?;
                    if let Found::Dir(md) = lookup(lowers, &resolved[..=i]) {
                        let _ =
                            fs::set_permissions(&p, fs::Permissions::from_mode(md.mode() & 0o7777));
                        let _ = std::os::unix::fs::lchown(&p, Some(md.uid()), Some(md.gid()));
                        made.push((p, md));
                    }
                }
                let mut rest: Vec<String> = vec![c];
                for r in queue.drain(..) {
                    match r.as_str() {
                        "." => {}
                        ".." => {
                            rest.pop();
                        }
                        _ => rest.push(r),
                    }
                }
                let mut p = stubs.join(resolved.join("/"));
                for (i, r) in rest.iter().enumerate() {
                    p.push(r);
                    let last = i + 1 == rest.len();
                    if last && !dir {
                        fs::File::create(&p).map_err(|e| fail(stage(), e))?;
                    } else if !p.is_dir() {
                        fs::create_dir(&p).map_err(|e| fail(stage(), e))?;
                    }
                }
                // Creating children changed the copied directories' mtimes.
                for (p, md) in made.iter().rev() {
                    if let Ok(t) = md.modified() {
                        let _ = fs::File::open(p).and_then(|f| f.set_modified(t));
                    }
                }
                resolved.extend(rest);
                return Ok(resolved.join("/"));
            }
        }
    }
    Ok(resolved.join("/"))
}

/// Whether `path` (components) lies under one of `mounted`.
fn under(mounted: &[Vec<String>], comps: &[String]) -> bool {
    mounted
        .iter()
        .any(|m| comps.len() > m.len() && comps[..m.len()] == m[..])
}

/// Is the target of this mount a directory?
fn target_is_dir(kind: &MountKind) -> bool {
    match kind {
        MountKind::Bind { source, .. } => source.is_dir(),
        MountKind::Tmpfs { .. } | MountKind::Overlay { .. } => true,
        MountKind::File { .. } => false,
    }
}

const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Sets up the whole filesystem and pivots into it. Runs in PID 1 of the
/// sandbox, in its own mount namespace.
pub fn setup(spec: &Spec, userns: bool) -> R<()> {
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(|e| fail("make mounts private", e))?;
    let scratch = &spec.scratch;
    let root_path = scratch.join("root");
    mkdir(&root_path)?;
    // Every target that might need a stub, in mount order.
    let mut targets: Vec<(String, bool)> = vec![
        ("/proc".into(), true),
        ("/dev".into(), true),
        ("/sys".into(), true),
    ];
    targets.extend(
        spec.mounts
            .iter()
            .map(|m| (m.target.clone(), target_is_dir(&m.kind))),
    );
    let (stub_dir, lowers): (PathBuf, Vec<PathBuf>) = match &spec.rootfs {
        Rootfs::Overlay { lower, .. } => (scratch.join("stubs"), lower.clone()),
        Rootfs::Dir { path, .. } => (path.clone(), vec![path.clone()]),
    };
    mkdir(&stub_dir)?;
    let mut mounted: Vec<Vec<String>> = Vec::new();
    for (t, dir) in &targets {
        let comps = components(t);
        if comps.is_empty() {
            return Err(fail(format!("mount {t}"), "cannot mount over the root"));
        }
        if under(&mounted, &comps) {
            continue;
        }
        let resolved = make_stub(&stub_dir, &lowers, t, *dir)?;
        mounted.push(components(&resolved));
        mounted.push(comps);
    }
    match &spec.rootfs {
        Rootfs::Overlay { lower, upper, work } => {
            let mut all = vec![stub_dir.clone()];
            all.extend(lower.iter().cloned());
            crate::overlay::mount(
                &root_path,
                &crate::overlay::Overlay {
                    lower: &all,
                    upper: Some((upper, work)),
                    userxattr: userns,
                },
            )
            .map_err(|e| fail("mount the overlay root", e))?;
        }
        Rootfs::Dir { path, .. } => {
            mount(
                path_str(path)?,
                path_str(&root_path)?,
                "",
                MountFlags::BIND | MountFlags::REC,
                None,
            )
            .map_err(|e| fail("bind the root directory", e))?;
        }
    }
    let root = rustix::fs::open(
        &root_path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| fail("open the root", e))?;
    system_mounts(spec, &root, userns)?;
    user_mounts(spec, &root, userns)?;
    for p in &spec.security.masked_paths {
        mask(&root, p).map_err(|e| fail(format!("mask {p}"), e))?;
    }
    for p in &spec.security.readonly_paths {
        readonly(&root, p).map_err(|e| fail(format!("make {p} read-only"), e))?;
    }
    if let Rootfs::Dir { readonly: true, .. } = spec.rootfs {
        let fd = open_in_root(&root, "/").map_err(|e| fail("reopen the root", e))?;
        remount_readonly(&fd).map_err(|e| fail("make the root read-only", e))?;
    }
    drop(root);
    pivot(&root_path)
}

fn mkdir(p: &Path) -> R<()> {
    match fs::create_dir(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(fail(format!("create {}", p.display()), e)),
    }
}

fn path_str(p: &Path) -> R<&str> {
    p.to_str()
        .ok_or_else(|| fail("paths", format!("{} is not UTF-8", p.display())))
}

fn system_mounts(spec: &Spec, root: &OwnedFd, userns: bool) -> R<()> {
    let _ = userns;
    let nosuid_nodev_noexec = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    // /proc
    let t = ensure_in_root(root, "/proc", true).map_err(|e| fail("mountpoint /proc", e))?;
    mount("proc", &fd_path(&t), "proc", nosuid_nodev_noexec, None)
        .map_err(|e| fail("mount /proc", e))?;
    // /dev
    let t = ensure_in_root(root, "/dev", true).map_err(|e| fail("mountpoint /dev", e))?;
    mount(
        "tmpfs",
        &fd_path(&t),
        "tmpfs",
        MountFlags::NOSUID | MountFlags::STRICTATIME,
        Some("mode=755,size=65536k"),
    )
    .map_err(|e| fail("mount /dev", e))?;
    for d in DEVICES {
        let target = format!("/dev/{d}");
        let t = ensure_in_root(root, &target, false)
            .map_err(|e| fail(format!("create {target}"), e))?;
        // Bind mounts of the host's nodes work in user namespaces too,
        // where mknod does not.
        mount(&target, &fd_path(&t), "", MountFlags::BIND, None)
            .map_err(|e| fail(format!("bind {target}"), e))?;
    }
    let t = ensure_in_root(root, "/dev/pts", true).map_err(|e| fail("mountpoint /dev/pts", e))?;
    let pts_flags = MountFlags::NOSUID | MountFlags::NOEXEC;
    if mount(
        "devpts",
        &fd_path(&t),
        "devpts",
        pts_flags,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )
    .is_err()
    {
        // gid 5 (tty) may be unmapped in a user namespace.
        mount(
            "devpts",
            &fd_path(&t),
            "devpts",
            pts_flags,
            Some("newinstance,ptmxmode=0666,mode=0620"),
        )
        .map_err(|e| fail("mount /dev/pts", e))?;
    }
    let t = ensure_in_root(root, "/dev/shm", true).map_err(|e| fail("mountpoint /dev/shm", e))?;
    mount(
        "shm",
        &fd_path(&t),
        "tmpfs",
        nosuid_nodev_noexec,
        Some("mode=1777,size=65536k"),
    )
    .map_err(|e| fail("mount /dev/shm", e))?;
    let dev = open_in_root(root, "/dev").map_err(|e| fail("open /dev", e))?;
    for (name, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        rustix::fs::symlinkat(target, &dev, name)
            .map_err(|e| fail(format!("link /dev/{name}"), e))?;
    }
    // /sys
    let t = ensure_in_root(root, "/sys", true).map_err(|e| fail("mountpoint /sys", e))?;
    let mut sys_flags = nosuid_nodev_noexec;
    if spec.security.readonly_sys {
        sys_flags |= MountFlags::RDONLY;
    }
    if mount("sysfs", &fd_path(&t), "sysfs", sys_flags, None).is_err() {
        // A user namespace without its own network namespace may not mount
        // sysfs: show the host's, read-only.
        mount(
            "/sys",
            &fd_path(&t),
            "",
            MountFlags::BIND | MountFlags::REC,
            None,
        )
        .map_err(|e| fail("mount /sys", e))?;
        if spec.security.readonly_sys {
            let t = open_in_root(root, "/sys").map_err(|e| fail("open /sys", e))?;
            remount_readonly(&t).map_err(|e| fail("make /sys read-only", e))?;
        }
    }
    Ok(())
}

fn user_mounts(spec: &Spec, root: &OwnedFd, userns: bool) -> R<()> {
    let files_dir = spec.scratch.join("files");
    if spec
        .mounts
        .iter()
        .any(|m| matches!(m.kind, MountKind::File { .. }))
    {
        mkdir(&files_dir)?;
        // A tmpfs in this mount namespace only: contents never reach a disk.
        mount(
            "tmpfs",
            path_str(&files_dir)?,
            "tmpfs",
            MountFlags::NOSUID | MountFlags::NODEV,
            Some("mode=0755"),
        )
        .map_err(|e| fail("mount the files tmpfs", e))?;
    }
    for (i, m) in spec.mounts.iter().enumerate() {
        let stage = || format!("mount {}", m.target);
        let dir = target_is_dir(&m.kind);
        let t = ensure_in_root(root, &m.target, dir).map_err(|e| fail(stage(), e))?;
        let tp = fd_path(&t);
        let ro = match &m.kind {
            MountKind::Bind { source, readonly } => {
                mount(
                    path_str(source)?,
                    &tp,
                    "",
                    MountFlags::BIND | MountFlags::REC,
                    None,
                )
                .map_err(|e| fail(stage(), format!("bind {}: {e}", source.display())))?;
                *readonly
            }
            MountKind::Tmpfs { size, mode } => {
                let mut o = format!("mode={mode:o}");
                if let Some(s) = size {
                    o.push_str(&format!(",size={s}"));
                }
                mount(
                    "tmpfs",
                    &tp,
                    "tmpfs",
                    MountFlags::NOSUID | MountFlags::NODEV,
                    Some(&o),
                )
                .map_err(|e| fail(stage(), e))?;
                false
            }
            MountKind::Overlay { lower, upper, work } => {
                crate::overlay::mount(
                    Path::new(&tp),
                    &crate::overlay::Overlay {
                        lower,
                        upper: Some((upper, work)),
                        userxattr: userns,
                    },
                )
                .map_err(|e| fail(stage(), e))?;
                false
            }
            MountKind::File {
                contents,
                mode,
                uid,
                gid,
                readonly,
            } => {
                let f = files_dir.join(i.to_string());
                fs::write(&f, contents).map_err(|e| fail(stage(), e))?;
                std::os::unix::fs::chown(&f, Some(*uid), Some(*gid))
                    .map_err(|e| fail(stage(), e))?;
                fs::set_permissions(&f, fs::Permissions::from_mode(*mode))
                    .map_err(|e| fail(stage(), e))?;
                mount(path_str(&f)?, &tp, "", MountFlags::BIND, None)
                    .map_err(|e| fail(stage(), e))?;
                *readonly
            }
        };
        if ro {
            let t = open_in_root(root, &m.target).map_err(|e| fail(stage(), e))?;
            remount_readonly(&t).map_err(|e| fail(stage(), e))?;
        }
    }
    Ok(())
}

fn mask(root: &OwnedFd, path: &str) -> io::Result<()> {
    let t = match open_in_root(root, path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other?,
    };
    let st = rustix::fs::fstat(&t)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory {
        mount(
            "tmpfs",
            &fd_path(&t),
            "tmpfs",
            MountFlags::RDONLY,
            Some("size=0"),
        )
    } else {
        mount("/dev/null", &fd_path(&t), "", MountFlags::BIND, None)
    }
}

fn readonly(root: &OwnedFd, path: &str) -> io::Result<()> {
    let t = match open_in_root(root, path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other?,
    };
    let p = fd_path(&t);
    mount(&p, &p, "", MountFlags::BIND | MountFlags::REC, None)?;
    let t = open_in_root(root, path)?;
    remount_readonly(&t)
}

fn pivot(root: &Path) -> R<()> {
    std::env::set_current_dir(root).map_err(|e| fail("enter the root", e))?;
    rustix::process::pivot_root(".", ".").map_err(|e| fail("pivot_root", e))?;
    rustix::mount::unmount(".", UnmountFlags::DETACH)
        .map_err(|e| fail("detach the old root", e))?;
    std::env::set_current_dir("/").map_err(|e| fail("enter the new root", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_components() {
        assert_eq!(components("/a/./b/../c//d/"), vec!["a", "c", "d"]);
        assert_eq!(components("/../.."), Vec::<String>::new());
    }

    #[test]
    fn stubs_follow_image_symlinks_and_layers() {
        let t = tempfile::tempdir().unwrap();
        let (top, bottom, stubs) = (
            t.path().join("top"),
            t.path().join("bottom"),
            t.path().join("stubs"),
        );
        for d in [&top, &bottom, &stubs] {
            fs::create_dir(d).unwrap();
        }
        fs::create_dir_all(bottom.join("etc")).unwrap();
        fs::set_permissions(bottom.join("etc"), fs::Permissions::from_mode(0o750)).unwrap();
        fs::write(bottom.join("etc/hostname"), "x").unwrap();
        std::os::unix::fs::symlink("/etc", top.join("conf")).unwrap();
        fs::create_dir_all(bottom.join("gone/deep")).unwrap();
        // A whiteout in the top layer hides /gone.
        rustix::fs::mknodat(
            rustix::fs::CWD,
            top.join("gone"),
            rustix::fs::FileType::CharacterDevice,
            Mode::empty(),
            0,
        )
        .unwrap();
        let lowers = vec![top.clone(), bottom.clone()];
        // Exists already: no stub.
        assert_eq!(
            make_stub(&stubs, &lowers, "/etc/hostname", false).unwrap(),
            "etc/hostname"
        );
        assert!(!stubs.join("etc").exists());
        // Through a symlink, into an existing directory.
        assert_eq!(
            make_stub(&stubs, &lowers, "/conf/hosts", false).unwrap(),
            "etc/hosts"
        );
        assert!(stubs.join("etc/hosts").is_file());
        assert_eq!(
            fs::metadata(stubs.join("etc")).unwrap().mode() & 0o777,
            0o750
        );
        // Hidden by a whiteout: created anew.
        assert_eq!(
            make_stub(&stubs, &lowers, "/gone/deep", true).unwrap(),
            "gone/deep"
        );
        assert!(stubs.join("gone/deep").is_dir());
        assert!(matches!(
            lookup(&lowers, &components("/gone/deep")),
            Found::Missing
        ));
        // A file in the way.
        assert!(make_stub(&stubs, &lowers, "/etc/hostname/x", true).is_err());
    }
}
