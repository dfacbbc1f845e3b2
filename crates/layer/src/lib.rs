//! Filesystem trees and layer tarballs, both ways.
//!
//! - [`write`] turns a directory into an OCI layer tar: either a whole tree
//!   (a new layer from scratch, a COPY result) or an overlayfs *upper*
//!   directory, whose whiteout devices and opaque-directory xattrs become
//!   `.wh.<name>` and `.wh..wh..opq` entries. Output is deterministic:
//!   entries sorted bytewise, parents first, numeric owners only, PAX records
//!   for long names and xattrs, hardlinks preserved, mtimes optionally
//!   clamped (`SOURCE_DATE_EPOCH`).
//! - [`apply`] extracts a layer tar onto a directory, honouring whiteouts and
//!   opaque directories.
//!
//! What it deliberately does not do: compression (callers wrap the streams),
//! hashing, or mounting anything.
//!
//! **Architecture invariant: apply never writes outside its root.** Entry
//! names are cleaned lexically with `..` clamped at the root, and every
//! parent directory is opened with `openat2(RESOLVE_IN_ROOT)`, so symlinks
//! already in the tree (or created by earlier entries) resolve as if the root
//! were `/`. Final components are created with `*at` calls that never follow
//! symlinks.

pub mod apply;
pub mod write;

use std::io;
use std::path::PathBuf;

/// The prefix marking a whiteout entry in a layer.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The entry marking a directory as opaque (lower contents hidden).
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// Errors from writing or applying layers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid layer tar: {0}")]
    Tar(String),
}

impl Error {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
        source: impl Into<io::Error>,
    ) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source: source.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Cleans a tar entry name into components relative to the root, clamping
/// `..` at the root as a chroot would (`../../etc/x` → `etc/x`).
pub fn clean_components(name: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            p => out.push(p),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn clean_clamps_at_root() {
        assert_eq!(super::clean_components("./a/b/../c/"), ["a", "c"]);
        assert_eq!(
            super::clean_components("../../etc/passwd"),
            ["etc", "passwd"]
        );
        assert_eq!(super::clean_components("/abs//x"), ["abs", "x"]);
        assert!(super::clean_components("..").is_empty());
    }
}
