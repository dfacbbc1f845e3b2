//! Overlay mounts through the new mount API (`fsopen`/`fsconfig`/`fsmount`),
//! one `fsconfig` call per lower directory (`lowerdir+`, Linux 6.8+), so an
//! image with many layers is not limited by the one-page option string of
//! `mount(2)` (kernels without `lowerdir+` get the joined `lowerdir=` string
//! and the page limit); and [`private_mount_namespace`], which lets a
//! process mount overlays that die with it.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::io::Errno;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountPropagationFlags, MoveMountFlags,
};

/// What to mount: lower directories (topmost first) and, for a writable
/// overlay, its upper and work directories (same file system).
#[derive(Debug, Clone)]
pub struct Overlay<'a> {
    pub lower: &'a [PathBuf],
    pub upper: Option<(&'a Path, &'a Path)>,
    /// Keep the markers in `user.overlay.*` (mounts inside a user
    /// namespace).
    pub userxattr: bool,
}

fn path_str(p: &Path) -> io::Result<&str> {
    let s = p.to_str().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: overlay paths must be UTF-8", p.display()),
        )
    })?;
    if s.contains([',', ':', '\\']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{s}: overlay paths cannot contain ',', ':' or '\\'"),
        ));
    }
    Ok(s)
}

fn set(fd: &OwnedFd, key: &str, value: &str) -> io::Result<()> {
    rustix::mount::fsconfig_set_string(fd, key, value)
        .map_err(|e| io::Error::other(format!("overlay option {key}={value}: {e}")))
}

/// Mounts `o` at `target` (a path, possibly `/proc/self/fd/N`).
///
/// Neither redirects nor metacopy nor the inode index: a renamed directory
/// or a chmod must appear in the upper directory as a whole, so that it can
/// become a layer. A writable overlay is `volatile` when the kernel has it
/// (5.10+): the upper directory is read right after the command and an
/// unmount would otherwise sync the whole upper file system.
pub fn mount(target: &Path, o: &Overlay<'_>) -> io::Result<()> {
    if o.lower.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an overlay needs at least one lower directory",
        ));
    }
    let fs = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    let lowers = o
        .lower
        .iter()
        .map(|p| path_str(p))
        .collect::<io::Result<Vec<_>>>()?;
    let mut appended = true;
    for l in &lowers {
        match rustix::mount::fsconfig_set_string(&fs, "lowerdir+", *l) {
            Ok(()) => {}
            Err(Errno::INVAL) if l == &lowers[0] => {
                appended = false;
                break;
            }
            Err(e) => return Err(io::Error::other(format!("overlay lower {l}: {e}"))),
        }
    }
    if !appended {
        // Before Linux 6.8: one string, at most a page.
        let joined = lowers.join(":");
        if joined.len() > 4000 {
            return Err(io::Error::other(format!(
                "{} lower directories do not fit one overlay mount on this kernel (Linux 6.8+ has no limit)",
                lowers.len()
            )));
        }
        set(&fs, "lowerdir", &joined)?;
    }
    if let Some((upper, work)) = o.upper {
        // A work directory used by a volatile mount before must be told
        // that its upper directory is acceptable again.
        let _ = std::fs::remove_dir_all(work.join("work/incompat/volatile"));
        set(&fs, "upperdir", path_str(upper)?)?;
        set(&fs, "workdir", path_str(work)?)?;
        let _ = rustix::mount::fsconfig_set_flag(&fs, "volatile");
    }
    set(&fs, "metacopy", "off")?;
    set(&fs, "index", "off")?;
    if o.userxattr {
        // The kernel never creates redirects with userxattr and refuses
        // redirect_dir=off.
        rustix::mount::fsconfig_set_flag(&fs, "userxattr")?;
    } else {
        set(&fs, "redirect_dir", "off")?;
    }
    rustix::mount::fsconfig_create(&fs).map_err(|e| {
        io::Error::other(format!(
            "creating the overlay over {} lower directories: {e}",
            lowers.len()
        ))
    })?;
    let attrs = if o.upper.is_some() {
        MountAttrFlags::empty()
    } else {
        MountAttrFlags::MOUNT_ATTR_RDONLY
    };
    let mnt = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)?;
    rustix::mount::move_mount(
        mnt.as_fd(),
        "",
        rustix::fs::CWD,
        target,
        // `target` may be a `/proc/self/fd/N` link.
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_SYMLINKS,
    )?;
    Ok(())
}

/// A read-only bind mount of `source` at `target` (a view of one directory
/// that hard links cannot cross).
pub fn bind_readonly(source: &Path, target: &Path) -> io::Result<()> {
    rustix::mount::mount_bind(source, target)?;
    rustix::mount::mount_remount(
        target,
        rustix::mount::MountFlags::BIND | rustix::mount::MountFlags::RDONLY,
        "",
    )?;
    Ok(())
}

/// Detaches the mount at `target` (lazily: open files keep it alive).
pub fn unmount(target: &Path) -> io::Result<()> {
    rustix::mount::unmount(target, rustix::mount::UnmountFlags::DETACH)?;
    Ok(())
}

/// Moves the calling process into a new mount namespace that receives the
/// host's mounts but sends none back: what it mounts afterwards is private
/// and disappears when the process dies, however it dies (`kill -9`
/// included). Must be called while the process has a single thread: a
/// thread's mount namespace is its own, so the others would stay behind.
pub fn private_mount_namespace() -> io::Result<()> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse::<u32>().ok())
        .unwrap_or(0);
    if threads != 1 {
        return Err(io::Error::other(format!(
            "a private mount namespace needs a single-threaded process ({threads} threads)"
        )));
    }
    // SAFETY: the process has one thread (checked above), so no other
    // thread can be left in the old namespace or observe the change.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }?;
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
    )?;
    Ok(())
}
