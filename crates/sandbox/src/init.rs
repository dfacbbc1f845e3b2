//! The init stages, run by the helper: a freshly executed, single-threaded
//! process, so forking and running Rust code after `fork` is sound here
//! (it never is in the caller, which may have threads holding locks).
//!
//! 1. **outer** (the helper itself): reads the spec; creates the user
//!    namespace (waiting for the caller to write the id maps), then the
//!    mount, PID, UTS, IPC, cgroup and network namespaces; forks PID 1 and
//!    forwards signals to it until it exits.
//! 2. **PID 1**: builds the filesystem and pivots into it, sets the hostname,
//!    brings up loopback, resolves the user, creates the working directory;
//!    takes the command's groups, ids and capabilities (staying dumpable, so
//!    the command can read PID 1's /proc entries as under runc, where PID 1
//!    is the command); forks the command; then reaps every zombie and
//!    forwards signals to the command until the command exits, reports its
//!    status and exits (which kills whatever the command left running).
//! 3. **command**: new session, rlimits, `no_new_privs`, seccomp, `execve`.
//!
//! Both long-lived stages die with their parent (`PR_SET_PDEATHSIG`), so a
//! `kill -9` of the caller takes the whole sandbox down.

use std::ffi::CString;
use std::fs;
use std::io::Read;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};

use rustix::process::{Pid, Signal, WaitOptions};
use rustix::thread::{CapabilitySet, CapabilitySets, UnshareFlags};

use crate::proto::{self, CONTROL_FD, Msg, SPEC_FD};
use crate::spec::{Network, Spec};
use crate::{caps, mounts, seccomp, user};

/// A failed setup step, reported to the caller.
#[derive(Debug)]
pub(crate) struct Fail {
    pub stage: String,
    pub message: String,
}

fn fail(stage: impl Into<String>, e: impl std::fmt::Display) -> Fail {
    Fail {
        stage: stage.into(),
        message: e.to_string(),
    }
}

/// Exit code of a stage whose setup failed (as runc/Docker use 125-127).
const SETUP_FAILED: i32 = 125;
const EXEC_FAILED: i32 = 127;

/// Signals forwarded from the outer stage to PID 1 and from PID 1 to the
/// command.
const FORWARDED: [i32; 9] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGTERM,
    libc::SIGCONT,
    libc::SIGWINCH,
    libc::SIGALRM,
];

/// The helper's entry point; never returns.
pub(crate) fn main() -> ! {
    // SAFETY: the caller placed the control socket at CONTROL_FD before
    // executing the helper (see `parent::spawn`); nothing else owns it.
    let ctl = unsafe { OwnedFd::from_raw_fd(CONTROL_FD) };
    let code = match outer(&ctl) {
        Ok(code) => code,
        Err(f) => {
            report_failure(&ctl, f);
            SETUP_FAILED
        }
    };
    std::process::exit(code)
}

fn report_failure(ctl: &OwnedFd, f: Fail) {
    let _ = proto::send(
        ctl.as_fd(),
        &Msg::Failed {
            stage: f.stage,
            message: f.message,
        },
    );
}

fn sigset(signals: &[i32]) -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::zeroed();
    // SAFETY: sigemptyset initialises the set; sigaddset only writes into it.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        for s in signals {
            libc::sigaddset(set.as_mut_ptr(), *s);
        }
        set.assume_init()
    }
}

fn set_signal_mask(how: libc::c_int, set: &libc::sigset_t) {
    // SAFETY: `set` is an initialised sigset; the old mask is not requested.
    unsafe {
        libc::sigprocmask(how, set, std::ptr::null_mut());
    }
}

/// Waits for one of the (blocked) signals in `set`.
fn wait_signal(set: &libc::sigset_t) -> i32 {
    loop {
        // SAFETY: `set` is initialised; a null siginfo pointer is allowed.
        let s = unsafe { libc::sigwaitinfo(set, std::ptr::null_mut()) };
        if s > 0 {
            return s;
        }
    }
}

fn fork() -> Result<Option<Pid>, Fail> {
    // SAFETY: the helper is single-threaded (it is a fresh exec that starts
    // no threads), so the child may run arbitrary code after fork.
    match unsafe { libc::fork() } {
        -1 => Err(fail("fork", std::io::Error::last_os_error())),
        0 => Ok(None),
        pid => Ok(Pid::from_raw(pid)),
    }
}

fn status_code(st: rustix::process::WaitStatus) -> (i32, Msg) {
    if let Some(s) = st.terminating_signal() {
        (128 + s, Msg::Signaled { signal: s })
    } else {
        let c = st.exit_status().unwrap_or(0);
        (c, Msg::Exited { code: c })
    }
}

fn die_with_parent() -> Result<(), Fail> {
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))
        .map_err(|e| fail("set the parent-death signal", e))
}

fn outer(ctl: &OwnedFd) -> Result<i32, Fail> {
    let spec: Spec = {
        // SAFETY: the caller placed the spec pipe at SPEC_FD before exec.
        let mut f = unsafe { fs::File::from_raw_fd(SPEC_FD) };
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)
            .map_err(|e| fail("read the spec", e))?;
        serde_json::from_slice(&buf).map_err(|e| fail("read the spec", e))?
    };
    // Nothing inherited reaches the command (the control socket included).
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_uint,
        );
    }
    let userns = spec.user_namespace.is_some();
    if userns {
        // SAFETY: no CLONE_FILES; this process has a single thread.
        unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWUSER) }
            .map_err(|e| fail("create the user namespace", e))?;
        proto::send(ctl.as_fd(), &Msg::NeedIdMaps).map_err(|e| fail("ask for id maps", e))?;
        match proto::recv(ctl) {
            Ok(Some(Msg::IdMapsWritten)) => {}
            Ok(other) => return Err(fail("wait for id maps", format!("got {other:?}"))),
            Err(e) => return Err(fail("wait for id maps", e)),
        }
        let _ = rustix::thread::set_thread_groups(&[]);
        rustix::thread::set_thread_res_gid(
            rustix::process::Gid::ROOT,
            rustix::process::Gid::ROOT,
            rustix::process::Gid::ROOT,
        )
        .map_err(|e| fail("become root in the user namespace", e))?;
        rustix::thread::set_thread_res_uid(
            rustix::process::Uid::ROOT,
            rustix::process::Uid::ROOT,
            rustix::process::Uid::ROOT,
        )
        .map_err(|e| fail("become root in the user namespace", e))?;
        // Changing credentials cleared it.
        die_with_parent()?;
    }
    let mut flags = UnshareFlags::NEWNS
        | UnshareFlags::NEWPID
        | UnshareFlags::NEWUTS
        | UnshareFlags::NEWIPC
        | UnshareFlags::NEWCGROUP;
    if spec.network == Network::None {
        flags |= UnshareFlags::NEWNET;
    }
    // SAFETY: no CLONE_FILES; this process has a single thread.
    unsafe { rustix::thread::unshare_unsafe(flags) }
        .map_err(|e| fail("create the namespaces", e))?;
    let (alive_r, alive_w) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| fail("pipe", e))?;
    let mut signals = FORWARDED.to_vec();
    signals.push(libc::SIGCHLD);
    let set = sigset(&signals);
    set_signal_mask(libc::SIG_BLOCK, &set);
    match fork()? {
        None => {
            drop(alive_w);
            let code = match pid1(&spec, ctl, alive_r, userns, &set) {
                Ok(c) => c,
                Err(f) => {
                    report_failure(ctl, f);
                    SETUP_FAILED
                }
            };
            std::process::exit(code)
        }
        Some(pid) => {
            drop(alive_r);
            loop {
                let sig = wait_signal(&set);
                if sig == libc::SIGCHLD {
                    if let Ok(Some((_, st))) =
                        rustix::process::waitpid(Some(pid), WaitOptions::NOHANG)
                    {
                        let (code, msg) = status_code(st);
                        // PID 1 reports the command's status itself; a
                        // signal here means PID 1 was killed.
                        if matches!(msg, Msg::Signaled { .. }) {
                            let _ = proto::send(ctl.as_fd(), &msg);
                        }
                        drop(alive_w);
                        return Ok(code);
                    }
                } else {
                    let _ = rustix::process::kill_process(
                        pid,
                        Signal::from_named_raw(sig).unwrap_or(Signal::TERM),
                    );
                }
            }
        }
    }
}

fn pid1(
    spec: &Spec,
    ctl: &OwnedFd,
    alive: OwnedFd,
    userns: bool,
    set: &libc::sigset_t,
) -> Result<i32, Fail> {
    die_with_parent()?;
    // The outer stage may have died before the line above.
    let mut fds = [rustix::event::PollFd::new(
        &alive,
        rustix::event::PollFlags::IN,
    )];
    if rustix::event::poll(&mut fds, Some(&rustix::event::Timespec::default())).unwrap_or(0) > 0 {
        std::process::exit(SETUP_FAILED);
    }
    mounts::setup(spec, userns)?;
    rustix::system::sethostname(spec.hostname.as_bytes())
        .map_err(|e| fail("set the hostname", e))?;
    if spec.network == Network::None {
        loopback_up().map_err(|e| fail("bring up loopback", e))?;
    }
    let passwd = fs::read_to_string("/etc/passwd").ok();
    let group = fs::read_to_string("/etc/group").ok();
    let user = user::resolve(&spec.user, passwd.as_deref(), group.as_deref())
        .map_err(|m| fail("resolve the user", m))?;
    let mut env = spec.env.clone();
    let has = |env: &[String], k: &str| env.iter().any(|e| e.split('=').next() == Some(k));
    if !has(&env, "PATH") {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    if !has(&env, "HOME") {
        env.push(format!("HOME={}", user.home));
    }
    fs::create_dir_all(&spec.cwd)
        .map_err(|e| fail(format!("create the working directory {}", spec.cwd), e))?;
    let cstr = |s: &str| {
        CString::new(s).map_err(|_| fail("arguments", format!("{s:?} contains a NUL byte")))
    };
    let argv = spec
        .args
        .iter()
        .map(|a| cstr(a))
        .collect::<Result<Vec<_>, _>>()?;
    let envp = env.iter().map(|a| cstr(a)).collect::<Result<Vec<_>, _>>()?;
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("")
        .to_owned();
    // PID 1 takes the command's credentials before it forks, so that the
    // command may read PID 1's /proc entries as it may its own (as under
    // runc, where PID 1 is the command): `ls -R /` and `find /` must not
    // fail on /proc/1. It needs no privilege to reap, forward signals to a
    // child of the same user, or report.
    let sec = &spec.security;
    if sec.seccomp && !sec.no_new_privileges {
        // Without no_new_privs, installing a filter needs CAP_SYS_ADMIN,
        // which is about to be dropped.
        seccomp::install().map_err(|e| fail("install the seccomp filter", e))?;
    }
    take_credentials(spec, &user)?;
    match fork()? {
        None => {
            let f = command(spec, &path, &argv, &envp);
            report_failure(ctl, f);
            std::process::exit(EXEC_FAILED)
        }
        Some(child) => loop {
            let sig = wait_signal(set);
            if sig != libc::SIGCHLD {
                let _ = rustix::process::kill_process(
                    child,
                    Signal::from_named_raw(sig).unwrap_or(Signal::TERM),
                );
                continue;
            }
            // Reap everything: orphans are re-parented to PID 1.
            while let Ok(Some((pid, st))) = rustix::process::wait(WaitOptions::NOHANG) {
                if pid == child {
                    let (code, msg) = status_code(st);
                    let _ = proto::send(ctl.as_fd(), &msg);
                    return Ok(code);
                }
            }
        },
    }
}

/// Sets `IFF_UP` on `lo` in the (new) network namespace.
fn loopback_up() -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let sock = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        None,
    )?;
    // SAFETY: ifreq is plain old data; zero is a valid value for every field.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write `ifr`, a valid ifreq
    // naming `lo`; the union member used is ifru_flags, as the ioctls define.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn rlimit_resource(name: &str) -> Option<rustix::process::Resource> {
    use rustix::process::Resource as R;
    Some(
        match name.to_ascii_uppercase().trim_start_matches("RLIMIT_") {
            "CPU" => R::Cpu,
            "FSIZE" => R::Fsize,
            "DATA" => R::Data,
            "STACK" => R::Stack,
            "CORE" => R::Core,
            "RSS" => R::Rss,
            "NPROC" => R::Nproc,
            "NOFILE" => R::Nofile,
            "MEMLOCK" => R::Memlock,
            "AS" => R::As,
            "LOCKS" => R::Locks,
            "SIGPENDING" => R::Sigpending,
            "MSGQUEUE" => R::Msgqueue,
            "NICE" => R::Nice,
            "RTPRIO" => R::Rtprio,
            "RTTIME" => R::Rttime,
            _ => return None,
        },
    )
}

/// The last stage: returns only on failure.
fn command(spec: &Spec, path: &str, argv: &[CString], envp: &[CString]) -> Fail {
    match prepare_command(spec) {
        Ok(()) => {}
        Err(f) => return f,
    }
    let program = &spec.args[0];
    let resolved = if program.contains('/') {
        Some(program.clone())
    } else {
        path.split(':').filter(|d| !d.is_empty()).find_map(|d| {
            let cand = format!("{}/{program}", d.trim_end_matches('/'));
            let ok = fs::metadata(&cand).is_ok_and(|m| m.is_file())
                && rustix::fs::access(cand.as_str(), rustix::fs::Access::EXEC_OK).is_ok();
            ok.then_some(cand)
        })
    };
    let Some(resolved) = resolved else {
        return fail(
            "exec",
            format!("{program:?}: executable file not found in $PATH"),
        );
    };
    let Ok(c_path) = CString::new(resolved.as_bytes()) else {
        return fail("exec", "NUL in the program path");
    };
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    // SAFETY: path, argv and envp are NUL-terminated strings in
    // null-terminated arrays that live until the call (which only returns
    // on failure).
    unsafe {
        libc::execve(c_path.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr());
    }
    fail(
        "exec",
        format!("{resolved}: {}", std::io::Error::last_os_error()),
    )
}

fn prepare_command(spec: &Spec) -> Result<(), Fail> {
    set_signal_mask(libc::SIG_SETMASK, &sigset(&[]));
    // Ignored signals stay ignored across exec (Rust ignores SIGPIPE).
    for sig in 1..libc::SIGRTMIN() {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: resetting a disposition to SIG_DFL involves no handler.
            unsafe {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
    }
    rustix::process::setsid().map_err(|e| fail("setsid", e))?;
    for r in &spec.rlimits {
        let res = rlimit_resource(&r.resource)
            .ok_or_else(|| fail("rlimits", format!("unknown resource {}", r.resource)))?;
        // Never above what this process may have (no CAP_SYS_RESOURCE is
        // assumed): clamp to the inherited hard limit.
        let cur = rustix::process::getrlimit(res);
        let hard = cur.maximum.map_or(r.hard, |h| h.min(r.hard));
        let soft = r.soft.min(hard);
        rustix::process::setrlimit(
            res,
            rustix::process::Rlimit {
                current: Some(soft),
                maximum: Some(hard),
            },
        )
        .map_err(|e| fail(format!("set RLIMIT_{}", r.resource), e))?;
    }
    let sec = &spec.security;
    if sec.no_new_privileges {
        rustix::thread::set_no_new_privs(true).map_err(|e| fail("set no_new_privs", e))?;
        if sec.seccomp {
            seccomp::install().map_err(|e| fail("install the seccomp filter", e))?;
        }
    }
    std::env::set_current_dir(&spec.cwd)
        .map_err(|e| fail(format!("enter the working directory {}", spec.cwd), e))?;
    Ok(())
}

/// The command's user, groups and capabilities, for PID 1 (and so for the
/// command, which it forks): the bounding set and the permitted, effective
/// and ambient sets reduced to the allowed capabilities, then the ids.
/// PID 1 stays dumpable, so that the command may read its /proc entries.
fn take_credentials(spec: &Spec, user: &user::ExecUser) -> Result<(), Fail> {
    let mask = caps::mask(&spec.security.capabilities).map_err(|m| fail("capabilities", m))?;
    let last_cap: u32 = fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40);
    for cap in 0..=last_cap.min(63) {
        if mask & (1 << cap) == 0 {
            // SAFETY: PR_CAPBSET_DROP takes a capability number; no pointers.
            let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
            if r != 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EINVAL) {
                    return Err(fail("drop capabilities from the bounding set", e));
                }
            }
        }
    }
    let groups: Vec<rustix::process::Gid> = user
        .groups
        .iter()
        .map(|g| rustix::process::Gid::from_raw(*g))
        .collect();
    if let Err(e) = rustix::thread::set_thread_groups(&groups) {
        // A user namespace whose setgroups is denied keeps no groups.
        if !(spec.user_namespace.is_some() && e == rustix::io::Errno::PERM) {
            return Err(fail("set supplementary groups", e));
        }
    }
    let gid = rustix::process::Gid::from_raw(user.gid);
    rustix::thread::set_thread_res_gid(gid, gid, gid)
        .map_err(|e| fail(format!("set gid {}", user.gid), e))?;
    let uid = rustix::process::Uid::from_raw(user.uid);
    rustix::thread::set_thread_res_uid(uid, uid, uid)
        .map_err(|e| fail(format!("set uid {}", user.uid), e))?;
    // Root keeps the allowed set; anyone else lost everything on setuid.
    let current = rustix::thread::capabilities(None).map_err(|e| fail("read capabilities", e))?;
    let keep = CapabilitySet::from_bits_retain(mask) & current.permitted;
    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: keep,
            permitted: keep,
            inheritable: CapabilitySet::empty(),
        },
    )
    .map_err(|e| fail("set capabilities", e))?;
    // SAFETY: PR_CAP_AMBIENT_CLEAR_ALL takes no pointers.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        );
    }
    // A change of uid made the process undumpable (its /proc entries
    // root's); the command, after exec, is dumpable again anyway.
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::Dumpable)
        .map_err(|e| fail("set dumpable", e))?;
    Ok(())
}
