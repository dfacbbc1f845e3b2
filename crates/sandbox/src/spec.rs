//! What to run and how: a [`Spec`] is a plain value (serialisable, so the
//! init stage receives it whole), built by the caller and never mutated by
//! the sandbox.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::caps;

/// The root filesystem of the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rootfs {
    /// An overlayfs: `lower` (topmost first, never written), `upper` (receives
    /// every change, in overlayfs' format: whiteouts and opaque directories),
    /// `work` (an empty directory on the same filesystem as `upper`).
    ///
    /// Mountpoints that are missing from the lower directories are created in
    /// an extra lower layer of stubs inside the scratch directory, so they
    /// never appear in `upper`.
    Overlay {
        lower: Vec<PathBuf>,
        upper: PathBuf,
        work: PathBuf,
    },
    /// A plain directory used as it is. Missing mountpoints are created in it.
    Dir { path: PathBuf, readonly: bool },
}

/// One mount on top of the root filesystem, applied in order after the
/// system mounts (`/proc`, `/dev`, `/sys`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Absolute path inside the sandbox. Symlinks in it resolve inside the
    /// root, never on the host.
    pub target: String,
    pub kind: MountKind,
}

/// What is mounted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountKind {
    /// A host file or directory (recursively), optionally read-only.
    Bind { source: PathBuf, readonly: bool },
    /// A fresh tmpfs.
    Tmpfs { size: Option<u64>, mode: u32 },
    /// An overlay whose changes go to `upper` (e.g. a throwaway directory:
    /// a writable view of `lower` that leaves `lower` untouched).
    Overlay {
        lower: Vec<PathBuf>,
        upper: PathBuf,
        work: PathBuf,
    },
    /// A file with these contents, kept in memory (a tmpfs private to the
    /// sandbox) and never written to disk: for secrets and generated
    /// `/etc/hosts`-like files.
    File {
        contents: Vec<u8>,
        mode: u32,
        uid: u32,
        gid: u32,
        readonly: bool,
    },
}

/// The network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Network {
    /// A new network namespace with only the loopback interface, up.
    None,
    /// The host's network namespace.
    Host,
}

/// A range of ids in a user namespace map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// User and group id maps for a new user namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    pub uids: Vec<IdRange>,
    pub gids: Vec<IdRange>,
}

impl IdMap {
    /// Inside id 0 (and `count` ids above it) mapped to `outside..`.
    pub fn root_at(outside_uid: u32, outside_gid: u32, count: u32) -> IdMap {
        IdMap {
            uids: vec![IdRange {
                inside: 0,
                outside: outside_uid,
                count,
            }],
            gids: vec![IdRange {
                inside: 0,
                outside: outside_gid,
                count,
            }],
        }
    }

    /// The outside id of an inside uid, if mapped.
    pub fn outside_uid(&self, inside: u32) -> Option<u32> {
        map_id(&self.uids, inside)
    }

    /// The outside id of an inside gid, if mapped.
    pub fn outside_gid(&self, inside: u32) -> Option<u32> {
        map_id(&self.gids, inside)
    }
}

fn map_id(ranges: &[IdRange], id: u32) -> Option<u32> {
    ranges.iter().find_map(|r| {
        (id >= r.inside && id - r.inside < r.count).then(|| r.outside + (id - r.inside))
    })
}

/// A resource limit, by its name without `RLIMIT_` (`NOFILE`, `NPROC`...).
/// Both values are clamped to the hard limit the sandbox inherits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    pub resource: String,
    pub soft: u64,
    pub hard: u64,
}

/// Confinement: what the process may do once it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Security {
    /// Capability names (`CAP_CHOWN`...): the bounding set, and the
    /// effective/permitted sets when the user is root.
    pub capabilities: Vec<String>,
    /// Install the default seccomp filter ([`crate::seccomp`]).
    pub seccomp: bool,
    pub no_new_privileges: bool,
    /// Paths hidden from the process (files: `/dev/null` over them;
    /// directories: an empty read-only tmpfs).
    pub masked_paths: Vec<String>,
    /// Paths made read-only.
    pub readonly_paths: Vec<String>,
    /// Mount `/sys` read-only.
    pub readonly_sys: bool,
}

impl Default for Security {
    /// Docker's defaults: its capability set, seccomp, masked and read-only
    /// paths; plus `no_new_privs`.
    fn default() -> Security {
        Security {
            capabilities: caps::DOCKER_DEFAULT.iter().map(|s| s.to_string()).collect(),
            seccomp: true,
            no_new_privileges: true,
            masked_paths: [
                "/proc/asound",
                "/proc/acpi",
                "/proc/interrupts",
                "/proc/kcore",
                "/proc/keys",
                "/proc/latency_stats",
                "/proc/timer_list",
                "/proc/timer_stats",
                "/proc/sched_debug",
                "/proc/scsi",
                "/sys/firmware",
                "/sys/devices/virtual/powercap",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            readonly_paths: [
                "/proc/bus",
                "/proc/fs",
                "/proc/irq",
                "/proc/sys",
                "/proc/sysrq-trigger",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            readonly_sys: true,
        }
    }
}

impl Security {
    /// Docker's `--privileged` (BuildKit's `--security=insecure`): every
    /// capability, no seccomp filter, nothing masked, `/sys` writable.
    pub fn insecure() -> Security {
        Security {
            capabilities: caps::ALL.iter().map(|s| s.to_string()).collect(),
            seccomp: false,
            no_new_privileges: false,
            masked_paths: Vec::new(),
            readonly_paths: Vec::new(),
            readonly_sys: false,
        }
    }
}

/// Everything the sandbox needs to run one process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// The command: `args[0]` is looked up in the `PATH` of `env` when it has
    /// no slash.
    pub args: Vec<String>,
    /// `KEY=VALUE` pairs. `PATH` and `HOME` get defaults when missing.
    pub env: Vec<String>,
    /// Working directory inside the sandbox; created when missing.
    pub cwd: String,
    /// `user[:group]`, names or numbers, resolved in the root filesystem's
    /// `/etc/passwd` and `/etc/group`; empty means root.
    pub user: String,
    pub hostname: String,
    pub rootfs: Rootfs,
    /// A directory private to this run (mountpoints, stubs). The caller
    /// creates it and removes it afterwards; nothing in it is useful after.
    pub scratch: PathBuf,
    pub mounts: Vec<Mount>,
    pub network: Network,
    /// Run in a new user namespace with these maps (rootless operation).
    pub user_namespace: Option<IdMap>,
    pub security: Security,
    pub rlimits: Vec<Rlimit>,
}

impl Spec {
    /// A spec with Docker-like defaults: no network, root, `/` as working
    /// directory, default security, `NOFILE` 1024/524288 (Docker's).
    pub fn new(args: Vec<String>, rootfs: Rootfs, scratch: PathBuf) -> Spec {
        Spec {
            args,
            env: Vec::new(),
            cwd: "/".into(),
            user: String::new(),
            hostname: "sandbox".into(),
            rootfs,
            scratch,
            mounts: Vec::new(),
            network: Network::None,
            user_namespace: None,
            security: Security::default(),
            rlimits: vec![Rlimit {
                resource: "NOFILE".into(),
                soft: 1024,
                hard: 524_288,
            }],
        }
    }
}

/// `/etc/hosts` for a sandbox with this hostname (as BuildKit writes it).
pub fn hosts_file(hostname: &str) -> Vec<u8> {
    format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n")
        .into_bytes()
}

/// `/etc/resolv.conf` for a sandbox: the host's, except that without the
/// host network, loopback name servers (unreachable from a new network
/// namespace) are dropped.
pub fn resolv_conf(host: &str, network: Network) -> Vec<u8> {
    let mut out = String::new();
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if network == Network::None
            && words.next() == Some("nameserver")
            && words
                .next()
                .is_some_and(|a| a.starts_with("127.") || a == "::1")
        {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_maps() {
        let m = IdMap::root_at(100_000, 200_000, 10);
        assert_eq!(m.outside_uid(0), Some(100_000));
        assert_eq!(m.outside_uid(9), Some(100_009));
        assert_eq!(m.outside_uid(10), None);
        assert_eq!(m.outside_gid(3), Some(200_003));
    }

    #[test]
    fn resolv_conf_drops_loopback_servers_without_host_network() {
        let host = "# c\nnameserver 127.0.0.53\nnameserver 10.0.0.1\nsearch x\n";
        assert_eq!(
            String::from_utf8(resolv_conf(host, Network::None)).unwrap(),
            "# c\nnameserver 10.0.0.1\nsearch x\n"
        );
        assert_eq!(
            String::from_utf8(resolv_conf(host, Network::Host)).unwrap(),
            host
        );
        assert!(
            String::from_utf8(hosts_file("h"))
                .unwrap()
                .contains("localhost h\n")
        );
    }
}
