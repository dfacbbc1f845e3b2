//! `berth build`: Dockerfile → image, with a content-addressed step cache.
//!
//! Three parts, in BuildKit's spirit:
//! - [`plan`] (the frontend) turns a parsed Dockerfile, build arguments and a
//!   target into a [`plan::Plan`]: a pure value with every word expanded and
//!   only the stages the target needs;
//! - [`context`] reads the build context (honouring `.dockerignore`) and
//!   hashes exactly the files a step reads, with a hash cache validated by
//!   inode, size, mtime *and* ctime, so a content change is never missed and
//!   a `touch` never invalidates;
//! - [`exec`] performs a plan against the local store: a scheduler runs
//!   stages as their dependencies finish (bounded parallelism), every
//!   layer-producing step has a cache key = digest(parent key ‖ op
//!   definition ‖ content digest of its inputs) and reuses the recorded layer
//!   on a hit; identical vertices run once;
//! - `copy` (with `source` selecting what is read and `fetch` downloading
//!   URLs) implements COPY and ADD with BuildKit's destination rules,
//!   `--link`, `--parents`, `--exclude`, `--chmod` ([`chmod`]) and archives;
//! - [`resolve`] is the one door to registries: the executor asks an
//!   [`ImageResolver`] for the images `FROM`, `COPY --from` and
//!   `RUN --mount=from` name (the CLI's pulls missing ones);
//! - [`run`] plans and executes RUN (shell/exec forms, heredocs, `--mount`
//!   of every type, `--network`, `--security`) in `berth-sandbox`, turning
//!   the overlay's upper directory into the step's layer.
//!
//! What it deliberately does not do: network I/O of its own beyond plain
//! HTTP (images come through an [`resolve::ImageResolver`], ADD's URLs
//! through a [`fetch::UrlFetcher`], both passed in by the caller), and ADD
//! from git repositories (not yet).

pub mod cache_io;
pub mod chmod;
pub mod context;
mod copy;
pub mod exec;
pub mod fetch;
mod gc_roots;
pub mod output;
mod pgzip;
pub mod plan;
pub mod resolve;
pub mod run;
mod scratch;
pub mod snapshots;
mod source;

pub use gc_roots::{BuildCacheRoots, prune_to};
pub use resolve::{ImageResolver, LocalOnly};

use std::path::PathBuf;

/// The `PATH` BuildKit gives a stage whose base image sets none (Linux).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Errors from planning or executing a build.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Dockerfile:{line}: {message}")]
    Dockerfile { line: usize, message: String },
    /// A RUN command failed: its status and last lines of output.
    #[error(
        "Dockerfile:{line}: {step} RUN {command}: did not complete successfully: {status}{}",
        output_tail(output)
    )]
    Run {
        line: usize,
        /// `[stage 3/5]`.
        step: String,
        command: String,
        status: String,
        output: Vec<String>,
    },
    /// The sandbox could not run a RUN command.
    #[error("Dockerfile:{line}: RUN")]
    Sandbox {
        line: usize,
        #[source]
        source: berth_sandbox::Error,
    },
    #[error("Dockerfile:{line}: {what} is not supported yet")]
    Unsupported { line: usize, what: String },
    #[error("target stage {0:?} not found")]
    UnknownTarget(String),
    #[error("Dockerfile:{line}: {message}")]
    Copy { line: usize, message: String },
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Image(#[from] berth_image::Error),
    #[error(transparent)]
    Content(#[from] berth_content::Error),
    #[error(transparent)]
    Layer(#[from] berth_layer::Error),
    #[error("build context: {0}")]
    Context(String),
    /// An image whose manifest and config disagree.
    #[error("invalid image: {0}")]
    InvalidImage(String),
    /// An image the Dockerfile names could not be pulled (by the
    /// [`ImageResolver`]); `line` is the instruction's, when known.
    #[error("{}pulling {reference}", at_line(*line))]
    Pull {
        line: Option<usize>,
        reference: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn at_line(line: Option<usize>) -> String {
    line.map(|l| format!("Dockerfile:{l}: "))
        .unwrap_or_default()
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

fn output_tail(lines: &[String]) -> String {
    if lines.is_empty() {
        return String::new();
    }
    let mut s = String::from("\nlast lines of output:");
    for l in lines {
        s.push_str("\n  ");
        s.push_str(l);
    }
    s
}
