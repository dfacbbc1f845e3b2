//! The protocol between the caller and the init stages, over a
//! `SOCK_SEQPACKET` socket pair (one message per packet, so several
//! processes can report on the same socket without interleaving).
//!
//! 1. The caller writes the [`Spec`](crate::Spec) as JSON on the spec pipe
//!    (fd [`SPEC_FD`]) and closes it.
//! 2. With a user namespace, the outer stage sends [`Msg::NeedIdMaps`]; the
//!    caller writes `/proc/PID/{uid,gid}_map` and answers
//!    [`Msg::IdMapsWritten`].
//! 3. Any stage that fails sends [`Msg::Failed`] and exits; otherwise PID 1
//!    sends [`Msg::Exited`] or [`Msg::Signaled`] when the command ends.
//! 4. The socket reaches end-of-file when every stage has exited (the
//!    command itself never holds it: it is close-on-exec).

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use serde::{Deserialize, Serialize};

/// The spec pipe in the helper process.
pub const SPEC_FD: i32 = 3;
/// The control socket in the helper process.
pub const CONTROL_FD: i32 = 4;
/// Set (to any value) in the helper's environment to run the init stage.
pub const INIT_ENV: &str = "_BERTH_SANDBOX_INIT";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "msg", rename_all = "snake_case")]
pub enum Msg {
    NeedIdMaps,
    IdMapsWritten,
    Failed { stage: String, message: String },
    Exited { code: i32 },
    Signaled { signal: i32 },
}

const MAX: usize = 64 * 1024;

pub fn send(fd: BorrowedFd<'_>, msg: &Msg) -> io::Result<()> {
    let mut bytes = serde_json::to_vec(msg).expect("messages serialise");
    if bytes.len() > MAX
        && let Msg::Failed { stage, message } = msg
    {
        let short = Msg::Failed {
            stage: stage.clone(),
            message: message.chars().take(MAX / 8).collect(),
        };
        bytes = serde_json::to_vec(&short).expect("messages serialise");
    }
    rustix::net::send(fd, &bytes, rustix::net::SendFlags::NOSIGNAL)?;
    Ok(())
}

/// The next message, or `None` at end-of-file.
pub fn recv(fd: impl AsFd) -> io::Result<Option<Msg>> {
    let mut buf = vec![0u8; MAX];
    loop {
        match rustix::net::recv(&fd, &mut buf[..], rustix::net::RecvFlags::empty()) {
            Ok((0, _)) => return Ok(None),
            Ok((n, _)) => {
                return serde_json::from_slice(&buf[..n])
                    .map(Some)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e));
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
