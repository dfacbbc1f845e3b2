//! The sandbox, for real: namespaces, overlayfs, mounts, capabilities,
//! seccomp and user namespaces on a busybox root filesystem made by the
//! project's fixture script (`scripts/fixtures/busybox-rootfs.sh`).

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use berth_sandbox::{
    Error, ExitStatus, IdMap, Mount, MountKind, Network, Options, Rlimit, Rootfs, Security, Spec,
};

fn helper() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_berth-sandbox-init"))
}

/// The busybox root filesystem, extracted once per test process.
fn rootfs() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        remove_dirs_of_dead_processes("berth-sandbox-test-");
        let dir = std::env::temp_dir().join(format!("berth-sandbox-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("rootfs")).unwrap();
        let tar = dir.join("busybox.tar");
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/fixtures/busybox-rootfs.sh");
        let st = Command::new("bash").arg(script).arg(&tar).status().unwrap();
        assert!(st.success(), "fixture script failed");
        let st = Command::new("tar")
            .args(["-xf"])
            .arg(&tar)
            .arg("-C")
            .arg(dir.join("rootfs"))
            .status()
            .unwrap();
        assert!(st.success(), "extracting the fixture failed");
        dir.join("rootfs")
    })
}

/// Removes `$TMPDIR/<prefix><pid>` directories of test processes that are gone.
fn remove_dirs_of_dead_processes(prefix: &str) {
    for e in fs::read_dir(std::env::temp_dir()).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix(prefix)
            && pid.parse::<u32>().is_ok()
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// A fresh overlay over the busybox root.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        for d in ["upper", "work", "scratch"] {
            fs::create_dir(dir.path().join(d)).unwrap();
        }
        Sandbox { dir }
    }

    fn upper(&self) -> PathBuf {
        self.dir.path().join("upper")
    }

    fn spec(&self, script: &str) -> Spec {
        let mut s = Spec::new(
            vec!["sh".into(), "-c".into(), script.into()],
            Rootfs::Overlay {
                lower: vec![rootfs().to_owned()],
                upper: self.upper(),
                work: self.dir.path().join("work"),
            },
            self.dir.path().join("scratch"),
        );
        s.env = vec!["PATH=/bin:/sbin:/usr/bin:/usr/sbin".into()];
        s.hostname = "sandboxed".into();
        s
    }
}

struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

fn run(spec: &Spec) -> Result<Output, Error> {
    let dir = tempfile::tempdir().unwrap();
    let (o, e) = (dir.path().join("out"), dir.path().join("err"));
    let opts = Options {
        helper: helper(),
        stdin: Stdio::null(),
        stdout: fs::File::create(&o).unwrap().into(),
        stderr: fs::File::create(&e).unwrap().into(),
    };
    let status = berth_sandbox::run(spec, opts)?;
    Ok(Output {
        status,
        stdout: fs::read_to_string(o).unwrap(),
        stderr: fs::read_to_string(e).unwrap(),
    })
}

/// Runs a script that must succeed; returns its stdout.
fn ok(spec: &Spec) -> String {
    let out = run(spec).unwrap_or_else(|e| panic!("sandbox error: {e}"));
    assert!(
        out.status.success(),
        "{:?} failed with {}:\n{}{}",
        spec.args,
        out.status,
        out.stdout,
        out.stderr
    );
    out.stdout
}

#[test]
fn echo_exit_codes_and_signals() {
    let sb = Sandbox::new();
    let out = run(&sb.spec("echo hello; echo oops >&2; exit 3")).unwrap();
    assert_eq!(out.status, ExitStatus::Code(3));
    assert_eq!(out.stdout, "hello\n");
    assert_eq!(out.stderr, "oops\n");
    let out = run(&sb.spec("kill -KILL $$")).unwrap();
    assert_eq!(out.status, ExitStatus::Signal(9));
    assert_eq!(out.status.code(), 137);
    // Exec form, looked up in PATH.
    let mut s = sb.spec("");
    s.args = vec!["echo".into(), "a  b".into()];
    assert_eq!(ok(&s), "a  b\n");
}

#[test]
fn exec_failures_are_setup_errors() {
    let sb = Sandbox::new();
    let mut s = sb.spec("");
    s.args = vec!["no-such-program".into()];
    match run(&s) {
        Err(Error::Setup { stage, message }) => {
            assert_eq!(stage, "exec");
            assert!(message.contains("executable file not found"), "{message}");
        }
        other => panic!("{:?}", other.map(|o| o.status)),
    }
    let mut s = sb.spec("true");
    s.user = "ghost".into();
    match run(&s) {
        Err(Error::Setup { message, .. }) => assert!(message.contains("unable to find user ghost")),
        other => panic!("{:?}", other.map(|o| o.status)),
    }
}

#[test]
fn pid_namespace_init_reaps_orphans() {
    let sb = Sandbox::new();
    // The command is PID 2 (PID 1 is the sandbox's init); no host process
    // is visible.
    let out =
        ok(&sb.spec("echo $$; ls /proc | grep -c '^[0-9]'; cat /proc/1/cmdline | tr '\\0' ' '"));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "2");
    let n: usize = lines[1].parse().unwrap();
    assert!(n <= 5, "only the sandbox's processes are visible, saw {n}");
    assert!(lines[2].starts_with("berth-sandbox-init"), "{}", lines[2]);
    // An orphan (re-parented to PID 1) that exits is reaped: poll until no
    // zombie is left (bounded, no timing assertion).
    let out = ok(&sb.spec(
        "sh -c 'true &'; for i in $(seq 200); do if ! cat /proc/[0-9]*/stat 2>/dev/null | grep -q ') Z '; then echo reaped; exit 0; fi; sleep 0.05; done; echo zombie",
    ));
    assert_eq!(out, "reaped\n");
}

#[test]
fn uts_ipc_hostname_and_etc_files_do_not_leak() {
    let sb = Sandbox::new();
    let mut s = sb.spec(
        "hostname; cat /etc/hosts; cat /etc/resolv.conf; echo made > /etc/newfile; echo x > /etc/hosts 2>/dev/null; ls /cache",
    );
    s.mounts = vec![
        Mount {
            target: "/etc/hosts".into(),
            kind: MountKind::File {
                contents: berth_sandbox::spec::hosts_file("sandboxed"),
                mode: 0o644,
                uid: 0,
                gid: 0,
                readonly: false,
            },
        },
        Mount {
            target: "/etc/resolv.conf".into(),
            kind: MountKind::File {
                contents: b"nameserver 10.9.8.7\n".to_vec(),
                mode: 0o644,
                uid: 0,
                gid: 0,
                readonly: true,
            },
        },
        Mount {
            target: "/cache/deep".into(),
            kind: MountKind::Tmpfs {
                size: None,
                mode: 0o755,
            },
        },
    ];
    let out = ok(&s);
    assert!(
        out.starts_with("sandboxed\n127.0.0.1\tlocalhost sandboxed\n"),
        "{out}"
    );
    assert!(out.contains("nameserver 10.9.8.7\n"), "{out}");
    // The file the command made is in the upper directory; the mountpoints
    // (absent from the image) are not, nor is any write to them.
    let upper = sb.upper();
    assert_eq!(
        fs::read_to_string(upper.join("etc/newfile")).unwrap(),
        "made\n"
    );
    assert!(!upper.join("etc/hosts").exists());
    assert!(!upper.join("etc/resolv.conf").exists());
    assert!(!upper.join("cache").exists());
    assert!(!upper.join("proc").exists() && !upper.join("dev").exists());
    // The copied-up /etc has the image's attributes.
    let (a, b) = (
        fs::metadata(upper.join("etc")).unwrap(),
        fs::metadata(rootfs().join("etc")).unwrap(),
    );
    assert_eq!((a.mode(), a.uid(), a.gid()), (b.mode(), b.uid(), b.gid()));
    // The host's hostname is untouched.
    assert_ne!(
        fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap()
            .trim(),
        "sandboxed"
    );
}

#[test]
fn proc_dev_and_sys() {
    let sb = Sandbox::new();
    let out = ok(&sb.spec(
        "ls /dev | tr '\\n' ' '; echo; \
         echo gone > /dev/null && head -c 3 /dev/zero | od -An -tx1; \
         test -c /dev/urandom && test -L /dev/fd && test -d /dev/pts && echo devs-ok; \
         echo shm > /dev/shm/x && cat /dev/shm/x; \
         touch /sys/x 2>/dev/null || echo sys-ro; \
         grep -w sysfs /proc/mounts | grep -c ro, ; \
         cat /proc/kcore | wc -c; ls /sys/firmware | wc -l; \
         echo 1 > /proc/sys/kernel/panic 2>/dev/null || echo proc-sys-ro",
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "fd full null ptmx pts random shm stderr stdin stdout tty urandom zero "
    );
    assert_eq!(lines[1].trim(), "00 00 00");
    assert_eq!(
        &lines[2..],
        ["devs-ok", "shm", "sys-ro", "1", "0", "0", "proc-sys-ro"]
    );
}

#[test]
fn network_none_has_only_loopback_up_and_host_shares() {
    let sb = Sandbox::new();
    let out =
        ok(&sb.spec("ls /sys/class/net; cat /sys/class/net/lo/flags; grep -c : /proc/net/dev"));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "lo");
    let flags = u32::from_str_radix(lines[1].trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 1, 1, "lo is up");
    assert_eq!(lines[2], "1");
    let mut s = sb.spec("ls /sys/class/net | sort");
    s.network = Network::Host;
    let mut host: Vec<String> = fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    host.sort();
    assert_eq!(ok(&s).lines().collect::<Vec<_>>(), host);
}

#[test]
fn capabilities_no_new_privs_and_seccomp() {
    let sb = Sandbox::new();
    let caps = "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\\t' ' '";
    let out = ok(&sb.spec(caps));
    assert_eq!(
        out,
        "CapInh: 0000000000000000\nCapPrm: 00000000a80425fb\nCapEff: 00000000a80425fb\nCapBnd: 00000000a80425fb\nCapAmb: 0000000000000000\nNoNewPrivs: 1\nSeccomp: 2\n"
    );
    // A non-root user has no effective capabilities, the same bounding set.
    let mut s = sb.spec(caps);
    s.user = "app".into();
    let out = ok(&s);
    assert!(out.contains("CapEff: 0000000000000000\n"), "{out}");
    assert!(out.contains("CapBnd: 00000000a80425fb\n"), "{out}");
    // Creating a user namespace needs no capability: only the seccomp filter
    // stops it.
    let probe = "unshare -U true && echo allowed || echo denied";
    assert_eq!(ok(&sb.spec(probe)), "denied\n");
    let mut s = sb.spec(probe);
    s.security.seccomp = false;
    assert_eq!(ok(&s), "allowed\n");
    // Mounting, the clock, and kernel modules.
    let out = ok(&sb.spec(
        "mount -t tmpfs none /mnt 2>/dev/null || echo no-mount; date -s 2000-01-01 2>&1 | grep -q 'not permitted' && echo no-clock; rmmod nothing 2>/dev/null || echo no-modules",
    ));
    assert_eq!(out, "no-mount\nno-clock\nno-modules\n");
    // --security=insecure: everything.
    let mut s = sb.spec(caps);
    s.security = Security::insecure();
    let out = ok(&s);
    // Every capability this process has (the machine may withhold some).
    let mine = fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("CapEff:"))
        .unwrap()
        .replace('\t', " ");
    assert!(out.contains(&format!("{mine}\n")), "{out}");
    assert!(out.contains("Seccomp: 0\n"), "{out}");
}

#[test]
fn users_groups_home_and_workdir() {
    let sb = Sandbox::new();
    let mut s = sb.spec("id; echo $HOME; pwd; touch mine; ls -ln mine | awk '{print $3\":\"$4}'");
    s.user = "app".into();
    s.cwd = "/home/app/work/deep".into();
    s.mounts.push(Mount {
        target: "/home/app/work/deep".into(),
        kind: MountKind::Tmpfs {
            size: None,
            mode: 0o777,
        },
    });
    let out = ok(&s);
    assert_eq!(
        out,
        "uid=1000(app) gid=1000(app) groups=10(wheel)\n/home/app\n/home/app/work/deep\n1000:1000\n"
    );
    // The working directory is created (and so recorded) when missing.
    let mut s = sb.spec("pwd");
    s.cwd = "/srv/app".into();
    s.user = "1000:10".into();
    assert_eq!(ok(&s), "/srv/app\n");
    assert!(sb.upper().join("srv/app").is_dir());
    let mut s = sb.spec("id");
    s.user = "nobody:wheel".into();
    assert_eq!(ok(&s), "uid=65534(nobody) gid=10(wheel)\n");
}

#[test]
fn rlimits_are_clamped_to_the_hard_limit() {
    let sb = Sandbox::new();
    let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .maximum
        .unwrap();
    let mut s = sb.spec("ulimit -Sn; ulimit -Hn");
    s.rlimits = vec![Rlimit {
        resource: "NOFILE".into(),
        soft: u64::MAX - 1,
        hard: u64::MAX - 1,
    }];
    assert_eq!(ok(&s), format!("{hard}\n{hard}\n"));
    let mut s = sb.spec("ulimit -Sn; ulimit -Hn");
    s.rlimits[0].soft = 100;
    s.rlimits[0].hard = 200.min(hard);
    assert_eq!(ok(&s), format!("100\n{}\n", 200.min(hard)));
}

#[test]
fn bind_tmpfs_overlay_and_file_mounts() {
    let sb = Sandbox::new();
    let host = tempfile::tempdir().unwrap();
    fs::write(host.path().join("in.txt"), "from host\n").unwrap();
    let (lower, upper, work) = (
        host.path().join("lower"),
        host.path().join("up"),
        host.path().join("wk"),
    );
    for d in [&lower, &upper, &work] {
        fs::create_dir(d).unwrap();
    }
    fs::write(lower.join("keep"), "lower\n").unwrap();
    let mut s = sb.spec(
        "cat /ro/in.txt; touch /ro/x 2>/dev/null || echo ro; echo hi > /rw/new; \
         echo t > /scratch/t && cat /scratch/t; echo changed > /view/keep; cat /view/keep; \
         cat /run/secrets/token; ls -ln /run/secrets/token | awk '{print $1, $3}'",
    );
    s.mounts = vec![
        Mount {
            target: "/ro".into(),
            kind: MountKind::Bind {
                source: host.path().to_owned(),
                readonly: true,
            },
        },
        Mount {
            target: "/rw".into(),
            kind: MountKind::Bind {
                source: host.path().to_owned(),
                readonly: false,
            },
        },
        Mount {
            target: "/scratch".into(),
            kind: MountKind::Tmpfs {
                size: Some(1 << 20),
                mode: 0o1777,
            },
        },
        Mount {
            target: "/view".into(),
            kind: MountKind::Overlay {
                lower: vec![lower.clone()],
                upper: upper.clone(),
                work,
            },
        },
        Mount {
            target: "/run/secrets/token".into(),
            kind: MountKind::File {
                contents: b"s3cr3t\n".to_vec(),
                mode: 0o400,
                uid: 1000,
                gid: 0,
                readonly: true,
            },
        },
    ];
    let out = ok(&s);
    assert_eq!(out, "from host\nro\nt\nchanged\ns3cr3t\n-r-------- 1000\n");
    assert_eq!(fs::read_to_string(host.path().join("new")).unwrap(), "hi\n");
    assert_eq!(fs::read_to_string(lower.join("keep")).unwrap(), "lower\n");
    assert_eq!(fs::read_to_string(upper.join("keep")).unwrap(), "changed\n");
    // Nothing of the mounts reached the image's upper directory.
    let names: Vec<String> = fs::read_dir(sb.upper())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

/// As under runc, where PID 1 is the command: the command may read every
/// /proc entry of PID 1 (`ls -R /`, `find /` must not fail there), as root
/// and as another user, and PID 1 still forwards signals and reaps.
#[test]
fn the_command_reads_pid_1s_proc_entries() {
    let sb = Sandbox::new();
    for user in ["", "app", "1000:10"] {
        let mut s = sb.spec(
            "ls -R /proc/1 > /dev/null && cat /proc/1/status | grep -c '^Uid' && \
             ls /proc/1/fdinfo /proc/1/map_files > /dev/null && echo readable",
        );
        s.user = user.into();
        assert_eq!(ok(&s), "1\nreadable\n", "user {user:?}");
    }
}

#[test]
fn user_namespace_maps_root_to_an_unprivileged_range() {
    let sb = Sandbox::new();
    let mut s = sb.spec(
        "id -u; cat /proc/self/uid_map | tr -s ' '; touch /made-inside; ls /sys/class/net; \
         grep CapEff /proc/self/status | tr -s '\\t' ' '",
    );
    s.user_namespace = Some(IdMap::root_at(200_000, 200_000, 65_536));
    let out = ok(&s);
    assert_eq!(out, "0\n 0 200000 65536\nlo\nCapEff: 00000000a80425fb\n");
    // Files the namespace's root creates belong to the mapped id outside.
    let md = fs::metadata(sb.upper().join("made-inside")).unwrap();
    assert_eq!((md.uid(), md.gid()), (200_000, 200_000));
    // The image's files (owned by the real root, unmapped) are read-only to it.
    let mut s = sb.spec("echo x >> /bin/busybox 2>/dev/null || echo denied");
    s.user_namespace = Some(IdMap::root_at(200_000, 200_000, 65_536));
    s.security.capabilities.retain(|c| c != "CAP_DAC_OVERRIDE");
    assert_eq!(ok(&s), "denied\n");
}

#[test]
fn signals_are_forwarded_to_the_command() {
    let sb = Sandbox::new();
    let (r, w) = rustix::pipe::pipe().unwrap();
    let opts = Options {
        helper: helper(),
        stdin: Stdio::null(),
        stdout: Stdio::from(w),
        stderr: Stdio::inherit(),
    };
    let mut child = berth_sandbox::spawn(
        &sb.spec("trap 'echo got-term; exit 7' TERM; echo ready; while true; do sleep 0.1; done"),
        opts,
    )
    .unwrap();
    let mut lines = BufReader::new(fs::File::from(r)).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    child.signal(libc::SIGTERM).unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "got-term");
    assert_eq!(child.wait().unwrap(), ExitStatus::Code(7));
}

/// Processes on the host whose command line is exactly `argv`.
fn host_processes(argv: &str) -> usize {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            fs::read(e.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " ").trim_end() == argv)
                .unwrap_or(false)
        })
        .count()
}

#[test]
fn killing_the_helper_kills_everything_inside() {
    let sb = Sandbox::new();
    let (r, w) = rustix::pipe::pipe().unwrap();
    let opts = Options {
        helper: helper(),
        stdin: Stdio::null(),
        stdout: Stdio::from(w),
        stderr: Stdio::inherit(),
    };
    let marker = format!("sleep {}", 100_000 + std::process::id());
    let mut child = berth_sandbox::spawn(
        &sb.spec(&format!("{marker} & {marker} & echo started; wait")),
        opts,
    )
    .unwrap();
    let mut lines = BufReader::new(fs::File::from(r)).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "started");
    // The shell forks them asynchronously: wait until both run.
    for _ in 0..400 {
        if host_processes(&marker) == 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert_eq!(host_processes(&marker), 2);
    child.signal(libc::SIGKILL).unwrap();
    assert!(
        child.wait().is_err(),
        "a killed helper is an error, not a status"
    );
    // PID 1 dies with the helper, and the kernel kills the namespace.
    let mut left = 2;
    for _ in 0..400 {
        left = host_processes(&marker);
        if left == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert_eq!(left, 0, "processes survived the sandbox");
}

#[test]
fn plain_directory_root_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("root");
    let st = Command::new("cp")
        .arg("-a")
        .arg(rootfs())
        .arg(&copy)
        .status()
        .unwrap();
    assert!(st.success());
    let scratch = dir.path().join("scratch");
    fs::create_dir(&scratch).unwrap();
    let mut s = Spec::new(
        vec![
            "sh".into(),
            "-c".into(),
            "touch /x 2>/dev/null || echo read-only; cat /etc/hostname".into(),
        ],
        Rootfs::Dir {
            path: copy.clone(),
            readonly: true,
        },
        scratch,
    );
    s.env = vec!["PATH=/bin".into()];
    assert_eq!(ok(&s), "read-only\nberth-busybox\n");
}

#[test]
fn host_files_and_processes_are_out_of_reach() {
    let sb = Sandbox::new();
    let marker = std::env::temp_dir().join(format!("berth-host-marker-{}", std::process::id()));
    fs::write(&marker, "host").unwrap();
    let out = ok(&sb.spec(&format!(
        "test -e {m} && echo visible || echo hidden; \
         kill -0 1 && echo init-is-ours; kill -0 {host_pid} 2>/dev/null && echo host-pid-reachable || echo host-pid-unreachable; \
         ls /proc/1/root/ | grep -c berth-host-marker || true",
        m = marker.display(),
        host_pid = std::process::id(),
    )));
    let _ = fs::remove_file(&marker);
    assert_eq!(out, "hidden\ninit-is-ours\nhost-pid-unreachable\n0\n");
}
