//! The default seccomp filter: a classic-BPF deny list with the effect of
//! Docker's default profile for a container without `CAP_SYS_ADMIN` and the
//! other privileged capabilities.
//!
//! Docker's profile is an allow list (unknown system calls fail); this is a
//! deny list of what that allow list leaves out and that matters: kernel
//! modules and `kexec`; mounting, `pivot_root`, `unshare`, `setns` and
//! namespace flags to `clone` (container escapes); `clone3` fails with
//! `ENOSYS` so that libcs fall back to `clone`, whose flags can be checked,
//! as Docker does; the kernel keyring (`keyctl`, `add_key`, `request_key`);
//! `bpf`, `perf_event_open`, `userfaultfd`, `io_uring_*` (large kernel attack
//! surface); the clock (`settimeofday`, `clock_settime`, `clock_adjtime`);
//! `reboot`, `swapon/off`, `acct`, `quotactl`, `syslog`, `vhangup`;
//! `open_by_handle_at` and `name_to_handle_at` (the "shocker" escape);
//! `process_vm_readv/writev` and `kcmp`; `ioperm`/`iopl`; `AF_VSOCK`
//! sockets; and every obsolete or unimplemented call (`uselib`, `ustat`,
//! `_sysctl`, `sysfs`, `nfsservctl`...). Denied calls fail with `EPERM`.
//! `ptrace` is allowed, as Docker allows it on kernels ≥ 4.8 (without
//! `CAP_SYS_PTRACE` it only reaches processes of the same user, and the PID
//! namespace hides the others).
//!
//! System calls of another architecture (an i386 binary on x86_64) are
//! refused by killing the process: a deny list written for one syscall table
//! means nothing for another. x32 system calls on x86_64 fail with `EPERM`.

use std::io;

const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;

const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGE_K: u16 = 0x35;
const JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;

/// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
/// The low 32 bits of the first argument (little-endian targets).
const OFF_ARG0_LO: u32 = 16;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;

/// Whether this build has a filter for the running architecture.
pub const SUPPORTED: bool = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn denied() -> Vec<libc::c_long> {
    use libc::*;
    #[allow(unused_mut)]
    let mut v: Vec<libc::c_long> = vec![
        SYS_acct,
        SYS_add_key,
        SYS_bpf,
        SYS_clock_adjtime,
        SYS_clock_settime,
        SYS_delete_module,
        SYS_finit_module,
        SYS_init_module,
        SYS_kcmp,
        SYS_kexec_file_load,
        SYS_kexec_load,
        SYS_keyctl,
        SYS_lookup_dcookie,
        SYS_mount,
        SYS_move_mount,
        SYS_mount_setattr,
        SYS_name_to_handle_at,
        SYS_nfsservctl,
        SYS_open_by_handle_at,
        SYS_open_tree,
        SYS_fsopen,
        SYS_fsconfig,
        SYS_fsmount,
        SYS_fspick,
        SYS_perf_event_open,
        SYS_pivot_root,
        SYS_process_vm_readv,
        SYS_process_vm_writev,
        SYS_quotactl,
        SYS_quotactl_fd,
        SYS_reboot,
        SYS_request_key,
        SYS_setns,
        SYS_settimeofday,
        SYS_swapon,
        SYS_swapoff,
        SYS_syslog,
        SYS_umount2,
        SYS_unshare,
        SYS_userfaultfd,
        SYS_vhangup,
        SYS_io_uring_setup,
        SYS_io_uring_enter,
        SYS_io_uring_register,
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([
        SYS_ioperm,
        SYS_iopl,
        SYS_uselib,
        SYS_ustat,
        SYS__sysctl,
        SYS_sysfs,
        SYS_getpmsg,
        SYS_putpmsg,
        SYS_afs_syscall,
        SYS_tuxcall,
        SYS_security,
        SYS_vserver,
        // Removed from the kernel (and from libc's constants).
        174, // create_module
        177, // get_kernel_syms
        178, // query_module
    ]);
    v
}

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The filter program.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub fn program() -> Vec<libc::sock_filter> {
    let errno = |e: i32| insn(RET_K, 0, 0, RET_ERRNO | (e as u32 & 0xffff));
    let mut p = vec![
        insn(LD_W_ABS, 0, 0, OFF_ARCH),
        insn(JEQ_K, 1, 0, AUDIT_ARCH),
        insn(RET_K, 0, 0, RET_KILL_PROCESS),
        insn(LD_W_ABS, 0, 0, OFF_NR),
    ];
    if cfg!(target_arch = "x86_64") {
        // x32 system calls carry bit 30.
        p.push(insn(JGE_K, 0, 1, 0x4000_0000));
        p.push(errno(libc::EPERM));
    }
    for nr in denied() {
        p.push(insn(JEQ_K, 0, 1, nr as u32));
        p.push(errno(libc::EPERM));
    }
    p.push(insn(JEQ_K, 0, 1, libc::SYS_clone3 as u32));
    p.push(errno(libc::ENOSYS));
    // clone with namespace flags.
    let ns_flags = (libc::CLONE_NEWNS
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUSER
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWCGROUP) as u32;
    p.push(insn(JEQ_K, 0, 4, libc::SYS_clone as u32));
    p.push(insn(LD_W_ABS, 0, 0, OFF_ARG0_LO));
    p.push(insn(JSET_K, 0, 1, ns_flags));
    p.push(errno(libc::EPERM));
    p.push(insn(RET_K, 0, 0, RET_ALLOW));
    // socket(AF_VSOCK, ...).
    p.push(insn(JEQ_K, 0, 4, libc::SYS_socket as u32));
    p.push(insn(LD_W_ABS, 0, 0, OFF_ARG0_LO));
    p.push(insn(JEQ_K, 0, 1, libc::AF_VSOCK as u32));
    p.push(errno(libc::EPERM));
    p.push(insn(RET_K, 0, 0, RET_ALLOW));
    p.push(insn(RET_K, 0, 0, RET_ALLOW));
    p
}

/// Installs the filter on the calling thread (and what it executes). Needs
/// `no_new_privs` or `CAP_SYS_ADMIN`.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub fn install() -> io::Result<()> {
    let prog = program();
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `fprog` points to `prog`, a valid array of `len` instructions
    // that outlives the call; the kernel copies the program.
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER as libc::c_ulong,
            &fprog as *const libc::sock_fprog,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub fn install() -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "no seccomp filter for this architecture",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program on a `seccomp_data` the way the kernel does.
    fn eval(prog: &[libc::sock_filter], arch: u32, nr: u32, arg0: u64) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        data[16..24].copy_from_slice(&arg0.to_le_bytes());
        let (mut pc, mut a) = (0usize, 0u32);
        loop {
            let i = &prog[pc];
            match i.code {
                LD_W_ABS => {
                    let k = i.k as usize;
                    a = u32::from_le_bytes(data[k..k + 4].try_into().unwrap());
                    pc += 1;
                }
                JEQ_K | JGE_K | JSET_K => {
                    let t = match i.code {
                        JEQ_K => a == i.k,
                        JGE_K => a >= i.k,
                        _ => a & i.k != 0,
                    };
                    pc += 1 + if t { i.jt as usize } else { i.jf as usize };
                }
                RET_K => return i.k,
                c => panic!("unknown opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn decisions() {
        let p = program();
        let eperm = RET_ERRNO | libc::EPERM as u32;
        let run = |nr: i64, arg0: u64| eval(&p, AUDIT_ARCH, nr as u32, arg0);
        assert_eq!(run(libc::SYS_read, 0), RET_ALLOW);
        assert_eq!(run(libc::SYS_mount, 0), eperm);
        assert_eq!(run(libc::SYS_kexec_load, 0), eperm);
        assert_eq!(run(libc::SYS_keyctl, 0), eperm);
        assert_eq!(run(libc::SYS_bpf, 0), eperm);
        assert_eq!(run(libc::SYS_clone3, 0), RET_ERRNO | libc::ENOSYS as u32);
        assert_eq!(run(libc::SYS_clone, libc::SIGCHLD as u64), RET_ALLOW);
        assert_eq!(
            run(
                libc::SYS_clone,
                (libc::CLONE_NEWUSER | libc::SIGCHLD) as u64
            ),
            eperm
        );
        assert_eq!(run(libc::SYS_socket, libc::AF_INET as u64), RET_ALLOW);
        assert_eq!(run(libc::SYS_socket, libc::AF_VSOCK as u64), eperm);
        assert_eq!(run(libc::SYS_ptrace, 0), RET_ALLOW);
        assert_eq!(eval(&p, 0x4000_0003, 1, 0), RET_KILL_PROCESS);
        if cfg!(target_arch = "x86_64") {
            assert_eq!(eval(&p, AUDIT_ARCH, 0x4000_0000 | 1, 0), eperm);
        }
        assert!(
            p.len() < 4096,
            "BPF programs are limited to 4096 instructions"
        );
    }
}
