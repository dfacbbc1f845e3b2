//! The client's error type: one enum, matched on by callers (never by text).

use std::io;
use std::path::PathBuf;

use berth_oci::Digest;

/// Errors from talking to a registry, reading credentials or writing the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request could not be sent or its response could not be read
    /// (connection refused or reset, TLS failure, timeout).
    #[error("{method} {url}")]
    Http {
        method: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The registry answered with an unexpected status. `code` and `message`
    /// come from the distribution error JSON when there is one.
    #[error("{method} {url}: {status}{}", describe(code, message))]
    Status {
        method: String,
        url: String,
        status: u16,
        code: Option<String>,
        message: Option<String>,
    },
    /// The registry refused our credentials (or wants some and we have none).
    #[error("{registry}: unauthorized{}{}", describe(code, message), hint(*anonymous))]
    Unauthorized {
        registry: String,
        code: Option<String>,
        message: Option<String>,
        /// True when no credentials were configured for the registry.
        anonymous: bool,
    },
    /// The credentials are valid but do not allow this.
    #[error("{registry}: access denied{}", describe(code, message))]
    Denied {
        registry: String,
        code: Option<String>,
        message: Option<String>,
    },
    /// A manifest, tag or blob does not exist.
    #[error("{what} not found{}", describe(code, &None))]
    NotFound { what: String, code: Option<String> },
    /// A `WWW-Authenticate` header we cannot act on.
    #[error("{registry}: cannot use authentication challenge {header:?}")]
    Challenge { registry: String, header: String },
    /// The token endpoint failed or answered nonsense.
    #[error("getting a token from {realm}: {message}")]
    Token { realm: String, message: String },
    /// Credentials would be sent over plain HTTP to a host that is not allowed it.
    #[error(
        "refusing to send credentials for {registry} to {url} over plain HTTP (add the host to the insecure registries to allow it)"
    )]
    InsecureRealm { registry: String, url: String },
    /// The registry's TLS certificate did not verify (unknown CA, expired,
    /// issued for another name). `dirs` are the `certs.d` directories where
    /// a CA certificate for this registry would be read from.
    #[error(
        "{registry}: the TLS certificate of {url} is not trusted ({reason}); to trust the CA that issued it, put the CA certificate (PEM, a name ending in .crt) in {}, or list the registry as insecure",
        certs_hint(dirs, registry, "ca.crt")
    )]
    UntrustedCertificate {
        registry: String,
        url: String,
        reason: String,
        dirs: Vec<PathBuf>,
    },
    /// The TLS handshake failed for another reason than our verification
    /// of the server, typically a server that wants a client certificate.
    #[error(
        "{registry}: TLS handshake with {url} failed ({reason}); if the registry requires a client certificate, put it in {} with its key as client.key",
        certs_hint(dirs, registry, "client.cert")
    )]
    TlsHandshake {
        registry: String,
        url: String,
        reason: String,
        dirs: Vec<PathBuf>,
    },
    /// A registry name or URL that cannot be used.
    #[error("invalid registry {registry:?}: {message}")]
    BadRegistry { registry: String, message: String },
    /// Content does not have the digest it was asked for.
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    /// Content is not the size its descriptor says.
    #[error("{digest}: size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    /// The server sent something that breaks the protocol (a bad Location,
    /// a Content-Range for other bytes, an unparsable body).
    #[error("{url}: {message}")]
    Protocol { url: String, message: String },
    /// A manifest or index that cannot be used.
    #[error("invalid manifest {reference}")]
    Manifest {
        reference: String,
        #[source]
        source: berth_oci::ManifestError,
    },
    /// A manifest larger than we accept.
    #[error("manifest {reference} is larger than {limit} bytes")]
    ManifestTooLarge { reference: String, limit: u64 },
    /// An index has no manifest for the wanted platform.
    #[error("{reference}: no manifest for platform {platform} (available: {})", available.join(", "))]
    NoPlatform {
        reference: String,
        platform: String,
        available: Vec<String>,
    },
    /// Something to push is missing from the local store.
    #[error("cannot push {reference}: {what} {digest} is not in the local store")]
    MissingLocal {
        reference: String,
        what: &'static str,
        digest: Digest,
    },
    #[error("invalid reference")]
    Reference(#[from] berth_oci::ReferenceError),
    /// A credentials or configuration file that cannot be used.
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    /// A `docker-credential-*` helper failed.
    #[error("credential helper docker-credential-{helper}: {message}")]
    CredentialHelper { helper: String, message: String },
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Content(#[from] berth_content::Error),
    #[error(transparent)]
    Image(#[from] berth_image::Error),
    /// Building the HTTP client failed (for example no TLS roots).
    #[error("setting up the HTTP client")]
    Setup(#[source] reqwest::Error),
}

fn describe(code: &Option<String>, message: &Option<String>) -> String {
    match (code, message) {
        (Some(c), Some(m)) => format!(" ({c}: {m})"),
        (Some(c), None) => format!(" ({c})"),
        (None, Some(m)) => format!(" ({m})"),
        (None, None) => String::new(),
    }
}

fn certs_hint(dirs: &[PathBuf], registry: &str, file: &str) -> String {
    let paths: Vec<String> = dirs
        .iter()
        .map(|d| d.join(registry).join(file).display().to_string())
        .collect();
    match paths.as_slice() {
        [] => format!("certs.d/{registry}/{file}"),
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} (or {})", rest.join(" or ")),
    }
}

fn hint(anonymous: bool) -> &'static str {
    if anonymous {
        "; log in first (berth login HOST)"
    } else {
        ""
    }
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn config(path: impl Into<PathBuf>, message: impl Into<String>) -> Error {
        Error::Config {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Whether trying the same thing again may succeed: connection problems,
    /// timeouts, 5xx and 429 answers, and content cut short.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Http { source, .. } => !source.is_builder() && !source.is_redirect(),
            Error::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and its sources on one line (`a: b: c`), for progress events
/// and messages that cannot carry the error itself.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let t = e.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = e.source();
    }
    s
}
