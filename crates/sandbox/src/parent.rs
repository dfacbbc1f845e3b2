//! The caller's side: start the helper, hand it the spec, write id maps,
//! collect the outcome. Safe to call from a multithreaded process: the only
//! code that runs between `fork` and `exec` is a few async-signal-safe
//! system calls (`fcntl`, `dup2`, `prctl`).

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::proto::{self, CONTROL_FD, INIT_ENV, Msg, SPEC_FD};
use crate::spec::{IdMap, IdRange, MountKind, Rootfs, Spec};
use crate::{Error, Result, caps};

/// How a sandboxed command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

impl ExitStatus {
    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }

    /// The shell's convention: the code, or 128 + the signal.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => 128 + s,
        }
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit code: {c}"),
            ExitStatus::Signal(s) => write!(f, "killed by signal {s}"),
        }
    }
}

/// Where the helper comes from and what the command's standard streams are.
#[derive(Debug)]
pub struct Options {
    /// A program that calls [`crate::init_if_requested`] first thing: the
    /// `berth` binary itself (`/proc/self/exe`, the default), or the
    /// `berth-sandbox-init` binary of this crate.
    pub helper: PathBuf,
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            helper: PathBuf::from("/proc/self/exe"),
            stdin: Stdio::null(),
            stdout: Stdio::inherit(),
            stderr: Stdio::inherit(),
        }
    }
}

/// A running sandbox.
#[derive(Debug)]
pub struct Child {
    process: std::process::Child,
    ctl: OwnedFd,
    early: Option<Error>,
}

fn validate(spec: &Spec) -> Result<()> {
    let bad = |m: String| Err(Error::Spec(m));
    if spec.args.is_empty() {
        return bad("no command".into());
    }
    if !spec.scratch.is_absolute() || !spec.scratch.is_dir() {
        return bad(format!(
            "the scratch directory {} must be an existing absolute path",
            spec.scratch.display()
        ));
    }
    if !spec.cwd.starts_with('/') {
        return bad(format!(
            "the working directory {:?} is not absolute",
            spec.cwd
        ));
    }
    for m in &spec.mounts {
        if !m.target.starts_with('/') {
            return bad(format!("mount target {:?} is not absolute", m.target));
        }
    }
    caps::mask(&spec.security.capabilities).map_err(Error::Spec)?;
    if spec.security.seccomp && !crate::seccomp::SUPPORTED {
        return bad("no seccomp filter for this architecture".into());
    }
    Ok(())
}

/// Gives the directories the user namespace's root must write to that
/// root's outside ids.
fn chown_for_userns(spec: &Spec, map: &IdMap) -> Result<()> {
    let (Some(uid), Some(gid)) = (map.outside_uid(0), map.outside_gid(0)) else {
        return Err(Error::Spec("the user namespace maps no root".into()));
    };
    let mut dirs: Vec<&Path> = vec![&spec.scratch];
    if let Rootfs::Overlay { upper, work, .. } = &spec.rootfs {
        dirs.push(upper);
        dirs.push(work);
    }
    for m in &spec.mounts {
        if let MountKind::Overlay { upper, work, .. } = &m.kind {
            dirs.push(upper);
            dirs.push(work);
        }
    }
    for d in dirs {
        let md = std::fs::metadata(d).map_err(|e| Error::io("stat", d, e))?;
        if md.uid() != uid || md.gid() != gid {
            std::os::unix::fs::chown(d, Some(uid), Some(gid))
                .map_err(|e| Error::io("chown", d, e))?;
        }
    }
    Ok(())
}

fn map_lines(ranges: &[IdRange]) -> String {
    ranges
        .iter()
        .map(|r| format!("{} {} {}\n", r.inside, r.outside, r.count))
        .collect()
}

/// Writes the maps directly (root, or an unprivileged single self-mapping);
/// otherwise asks the setuid `newuidmap`/`newgidmap` helpers, as rootless
/// tools do with `/etc/subuid` ranges.
fn write_id_maps(pid: u32, map: &IdMap) -> Result<()> {
    for (file, tool, ranges) in [
        ("gid_map", "newgidmap", &map.gids),
        ("uid_map", "newuidmap", &map.uids),
    ] {
        let path = format!("/proc/{pid}/{file}");
        let direct = std::fs::write(&path, map_lines(ranges));
        if let Err(e) = direct {
            if file == "gid_map" && e.raw_os_error() == Some(libc::EPERM) {
                // Unprivileged writers must give up setgroups first.
                let _ = std::fs::write(format!("/proc/{pid}/setgroups"), "deny");
                if std::fs::write(&path, map_lines(ranges)).is_ok() {
                    continue;
                }
            }
            let mut cmd = Command::new(tool);
            cmd.arg(pid.to_string());
            for r in ranges {
                cmd.args([
                    r.inside.to_string(),
                    r.outside.to_string(),
                    r.count.to_string(),
                ]);
            }
            let ok = cmd.status().map(|s| s.success()).unwrap_or(false);
            if !ok {
                return Err(Error::io("write", &path, e));
            }
        }
    }
    Ok(())
}

/// Starts the command described by `spec`.
pub fn spawn(spec: &Spec, opts: Options) -> Result<Child> {
    validate(spec)?;
    if let Some(map) = &spec.user_namespace {
        chown_for_userns(spec, map)?;
    }
    let (ctl, ctl_child) = rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::SEQPACKET,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| Error::io("socketpair", "", e.into()))?;
    let (spec_r, spec_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| Error::io("pipe", "", e.into()))?;
    let mut cmd = Command::new(&opts.helper);
    cmd.env(INIT_ENV, "1")
        .arg0("berth-sandbox-init")
        .stdin(opts.stdin)
        .stdout(opts.stdout)
        .stderr(opts.stderr);
    let (spec_fd, ctl_fd) = (spec_r.as_raw_fd(), ctl_child.as_raw_fd());
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe system calls (fcntl, dup2, prctl) on descriptors it
    // was given; it allocates nothing and takes no locks.
    unsafe {
        cmd.pre_exec(move || {
            // First out of the way (close-on-exec copies above 10), then into
            // place: dup2 clears close-on-exec on the targets.
            let s = libc::fcntl(spec_fd, libc::F_DUPFD_CLOEXEC, 10);
            let c = libc::fcntl(ctl_fd, libc::F_DUPFD_CLOEXEC, 10);
            if s < 0
                || c < 0
                || libc::dup2(s, SPEC_FD) < 0
                || libc::dup2(c, CONTROL_FD) < 0
                || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let process = cmd.spawn().map_err(|source| Error::Spawn {
        path: opts.helper.clone(),
        source,
    })?;
    drop(spec_r);
    drop(ctl_child);
    let mut child = Child {
        process,
        ctl,
        early: None,
    };
    let json = serde_json::to_vec(spec).expect("specs serialise");
    let mut w = std::fs::File::from(spec_w);
    if let Err(e) = w.write_all(&json) {
        child.early = Some(Error::io("write the spec to", "the helper", e));
        return Ok(child);
    }
    drop(w);
    if let Some(map) = &spec.user_namespace {
        match proto::recv(&child.ctl) {
            Ok(Some(Msg::NeedIdMaps)) => {
                let r = write_id_maps(child.process.id(), map);
                let ack = proto::send(child.ctl.as_fd(), &Msg::IdMapsWritten);
                if let Err(e) = r {
                    child.early = Some(e);
                    let _ = child.process.kill();
                } else if let Err(e) = ack {
                    child.early = Some(Error::Protocol(format!("sending the id-map ack: {e}")));
                }
            }
            Ok(Some(Msg::Failed { stage, message })) => {
                child.early = Some(Error::Setup { stage, message });
            }
            Ok(other) => {
                child.early = Some(Error::Protocol(format!(
                    "expected an id-map request, got {other:?}"
                )));
            }
            Err(e) => child.early = Some(Error::Protocol(e.to_string())),
        }
    }
    Ok(child)
}

impl Child {
    /// The helper's process id (outside the sandbox).
    pub fn id(&self) -> u32 {
        self.process.id()
    }

    /// Sends a signal; the sandbox forwards it to the command.
    pub fn signal(&self, signal: i32) -> Result<()> {
        // SAFETY: kill takes plain integers.
        if unsafe { libc::kill(self.process.id() as libc::pid_t, signal) } != 0 {
            return Err(Error::io(
                "signal",
                "the sandbox",
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// Waits for the command (and the sandbox) to end.
    pub fn wait(&mut self) -> Result<ExitStatus> {
        let mut status = None;
        let mut failure = self.early.take();
        loop {
            match proto::recv(&self.ctl) {
                Ok(None) => break,
                Ok(Some(Msg::Failed { stage, message })) => {
                    failure.get_or_insert(Error::Setup { stage, message });
                }
                Ok(Some(Msg::Exited { code })) => {
                    status.get_or_insert(ExitStatus::Code(code));
                }
                Ok(Some(Msg::Signaled { signal })) => {
                    status.get_or_insert(ExitStatus::Signal(signal));
                }
                Ok(Some(other)) => {
                    failure.get_or_insert(Error::Protocol(format!("unexpected {other:?}")));
                }
                Err(e) => {
                    failure.get_or_insert(Error::Protocol(e.to_string()));
                    break;
                }
            }
        }
        let helper = self
            .process
            .wait()
            .map_err(|e| Error::io("wait for", "the sandbox helper", e))?;
        if let Some(f) = failure {
            return Err(f);
        }
        status.ok_or_else(|| {
            Error::Protocol(format!(
                "the helper ended ({helper}) without reporting; is it a program that calls berth_sandbox::init_if_requested?"
            ))
        })
    }
}

/// Runs the command to completion.
pub fn run(spec: &Spec, opts: Options) -> Result<ExitStatus> {
    spawn(spec, opts)?.wait()
}
