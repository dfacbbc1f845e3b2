//! Per-registry TLS trust in Docker's `certs.d` layout, and telling
//! certificate failures apart from other connection errors.
//!
//! For a registry `host[:port]`, every directory `<dir>/<host[:port]>/` of
//! [`crate::ClientOptions::certs_dirs`] (berth's `<config dir>/certs.d` and
//! `/etc/docker/certs.d` by default) may hold:
//! - `*.crt`: CA certificates (PEM) trusted **for this registry only**, in
//!   addition to the system's roots;
//! - `*.cert` with a matching `*.key` (same stem): a client certificate and
//!   its private key (PEM), presented for mutual TLS.
//!
//! This is Docker's convention (`docker/daemon/certs.d`), so directories
//! written for Docker work unchanged. What this module does not do: read
//! anything for plain-HTTP registries, or verify certificates itself
//! (rustls and the platform verifier do).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// What the `certs.d` directories say about one registry.
#[derive(Debug, Default)]
pub(crate) struct RegistryTls {
    /// Extra CA roots (each a PEM certificate).
    pub roots: Vec<reqwest::Certificate>,
    /// A client certificate and key, for mutual TLS.
    pub identity: Option<reqwest::Identity>,
}

impl RegistryTls {
    pub(crate) fn is_empty(&self) -> bool {
        self.roots.is_empty() && self.identity.is_none()
    }
}

/// Reads the `certs.d` entries for `names` (the registry's name and, if it
/// differs, its API host) in each of `dirs`. CA files from every directory
/// count; the first client certificate found wins. A `.cert` without its
/// `.key` (or the reverse) and unreadable PEM are errors naming the file.
pub(crate) fn load(dirs: &[PathBuf], names: &[&str]) -> Result<RegistryTls> {
    let mut out = RegistryTls::default();
    for dir in dirs {
        for name in names {
            let d = dir.join(name);
            let entries = match std::fs::read_dir(&d) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => continue,
                Err(e) => return Err(Error::io("read directory", &d, e)),
            };
            let mut files: Vec<PathBuf> =
                entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            files.sort();
            for f in &files {
                match f.extension().and_then(|e| e.to_str()) {
                    Some("crt") => {
                        let pem = read(f)?;
                        let certs = reqwest::Certificate::from_pem_bundle(&pem)
                            .map_err(|e| Error::config(f, format!("not a PEM certificate: {e}")))?;
                        if certs.is_empty() {
                            return Err(Error::config(f, "no certificate in this file"));
                        }
                        out.roots.extend(certs);
                    }
                    Some("cert") => {
                        let key = f.with_extension("key");
                        if !key.exists() {
                            return Err(Error::config(
                                f,
                                format!("client certificate without its key {}", key.display()),
                            ));
                        }
                        if out.identity.is_none() {
                            let mut pem = read(f)?;
                            pem.push(b'\n');
                            pem.extend_from_slice(&read(&key)?);
                            out.identity =
                                Some(reqwest::Identity::from_pem(&pem).map_err(|e| {
                                    Error::config(
                                        f,
                                        format!("unusable client certificate or key: {e}"),
                                    )
                                })?);
                        }
                    }
                    Some("key") => {
                        let cert = f.with_extension("cert");
                        if !cert.exists() {
                            return Err(Error::config(
                                f,
                                format!("client key without its certificate {}", cert.display()),
                            ));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(out)
}

/// A certificate error in words.
fn describe(e: &rustls::CertificateError) -> String {
    use rustls::CertificateError as C;
    match e {
        C::UnknownIssuer => "issued by an unknown certificate authority".into(),
        C::Expired | C::ExpiredContext { .. } => "expired".into(),
        C::NotValidYet | C::NotValidYetContext { .. } => "not valid yet".into(),
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "not issued for this host name or address".into()
        }
        C::Revoked => "revoked".into(),
        C::BadSignature => "bad signature".into(),
        C::Other(o) => o.to_string(),
        other => format!("{other:?}"),
    }
}

fn read(p: &Path) -> Result<Vec<u8>> {
    std::fs::read(p).map_err(|e| Error::io("read", p, e))
}

/// What went wrong in a TLS handshake, if that is what `err` is.
pub(crate) enum TlsFailure {
    /// Our verification of the server's certificate failed.
    Untrusted(String),
    /// Anything else in the handshake (the server's alert, for example
    /// because it wants a client certificate).
    Handshake(String),
}

/// Finds a rustls error in `err`'s source chain. `io::Error` hides the
/// error it wraps from `source()`, so it is looked into explicitly.
pub(crate) fn classify(err: &(dyn std::error::Error + 'static)) -> Option<TlsFailure> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        let rustls_err = e.downcast_ref::<rustls::Error>().or_else(|| {
            e.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(r) = rustls_err {
            return Some(match r {
                rustls::Error::InvalidCertificate(c) => TlsFailure::Untrusted(describe(c)),
                other => TlsFailure::Handshake(other.to_string()),
            });
        }
        // An alert read after the handshake (TLS 1.3 servers refuse a
        // client certificate then) reaches us re-wrapped, not as a
        // `rustls::Error`; its text is rustls' own.
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let text = inner.to_string()
            && text.starts_with("received fatal alert")
        {
            return Some(TlsFailure::Handshake(text));
        }
        cur = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certs_d_files() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = [dir.path().join("missing"), dir.path().to_owned()];
        assert!(load(&dirs, &["reg:5000"]).unwrap().is_empty());
        let reg = dir.path().join("reg:5000");
        std::fs::create_dir_all(&reg).unwrap();
        std::fs::write(reg.join("README"), "ignored").unwrap();
        assert!(load(&dirs, &["reg:5000"]).unwrap().is_empty());
        std::fs::write(reg.join("client.key"), "x").unwrap();
        let e = load(&dirs, &["reg:5000"]).unwrap_err().to_string();
        assert!(
            e.contains("client.key") && e.contains("without its certificate"),
            "{e}"
        );
        std::fs::rename(reg.join("client.key"), reg.join("client.cert")).unwrap();
        let e = load(&dirs, &["reg:5000"]).unwrap_err().to_string();
        assert!(
            e.contains("client.cert") && e.contains("without its key"),
            "{e}"
        );
        std::fs::remove_file(reg.join("client.cert")).unwrap();
        std::fs::write(reg.join("ca.crt"), "not PEM").unwrap();
        let e = load(&dirs, &["reg:5000"]).unwrap_err().to_string();
        assert!(e.contains("ca.crt"), "{e}");
    }
}
