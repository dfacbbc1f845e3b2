//! Run one process in a minimal Linux sandbox: berth's own small container
//! runtime, used for `RUN` steps (and later `berth run`).
//!
//! The process gets new mount, PID, UTS, IPC and cgroup namespaces, a new
//! network namespace with only loopback unless it shares the host's, and
//! optionally a user namespace with uid/gid maps (rootless operation). Its
//! root is an overlayfs (lower directories + upper + work) or a plain
//! directory, entered with `pivot_root`; it sees a fresh `/proc`, a minimal
//! `/dev` (tmpfs with `null`, `zero`, `full`, `random`, `urandom`, `tty`,
//! `/dev/pts`, `/dev/shm` and the `/dev/fd` links), `/sys` read-only, and
//! the caller's mounts (bind, tmpfs, overlay, in-memory files). Docker's
//! masked and read-only paths, its default capability set, `no_new_privs`,
//! a seccomp filter with the effect of Docker's default profile
//! ([`seccomp`]) and rlimits clamped to the inherited hard limits confine
//! it. The user is resolved in the image's `/etc/passwd` and `/etc/group`.
//!
//! **How it starts.** The caller may be multithreaded, so nothing but a few
//! async-signal-safe system calls runs between its `fork` and `exec`: the
//! sandbox is a *helper program* re-executed for the purpose (the `berth`
//! binary itself, via `/proc/self/exe`, or this crate's
//! `berth-sandbox-init`), which must call [`init_if_requested`] before
//! anything else. The helper reads the [`Spec`] from a pipe and reports over
//! a socket ([`proto`]); PID 1 in the sandbox is the helper's child, which
//! reaps zombies and forwards signals to the command. See [`init`] for the
//! stages.
//!
//! **Architecture invariant: this is the only crate with `unsafe`, `fork`
//! or namespaces.** `unsafe` is allowed crate-wide because `fork`, `execve`,
//! signal masks, `prctl`, `ioctl` and `pre_exec` have no safe wrappers; each
//! use carries a `// SAFETY:` comment. Everything else goes through `rustix`.
//!
//! What it deliberately does not do: images, layers or caching (the caller
//! passes directories and reads the overlay's upper directory afterwards);
//! cgroups (resource limits other than rlimits); networks other than none
//! and host; terminals. It knows nothing about Dockerfiles.
#![allow(unsafe_code)]

pub mod caps;
pub(crate) mod init;
mod mounts;
pub mod overlay;
mod parent;
pub mod proto;
pub mod seccomp;
pub mod spec;
pub mod user;

use std::path::PathBuf;

pub use parent::{Child, ExitStatus, Options, run, spawn};
pub use spec::{IdMap, IdRange, Mount, MountKind, Network, Rlimit, Rootfs, Security, Spec};

/// Errors from starting or running a sandbox. The command's own failure is
/// not an error: it is an [`ExitStatus`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid sandbox spec: {0}")]
    Spec(String),
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("starting the sandbox helper {path}")]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A step inside the sandbox failed before the command ran (a mount,
    /// the user lookup, `exec`...).
    #[error("{stage}: {message}")]
    Setup { stage: String, message: String },
    #[error("sandbox helper: {0}")]
    Protocol(String),
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs the sandbox's init stages instead of the program when this process
/// was started as a sandbox helper (by [`spawn`]); returns otherwise.
/// Programs used as helpers call it first thing in `main`.
pub fn init_if_requested() {
    if std::env::var_os(proto::INIT_ENV).is_some() {
        init::main();
    }
}
