//! Client settings: insecure registries, explicit schemes, retries, limits,
//! and the optional `registries.toml` in berth's configuration directory.
//!
//! ```toml
//! # ~/.config/berth/registries.toml
//! insecure = ["registry.lan:5000", "10.0.0.7", "http://build-cache.lan:5000"]
//! ```
//!
//! The transport policy for a registry given as bare `host[:port]`: plain
//! HTTP is used only for loopback registries (`localhost`, `127.0.0.0/8`,
//! `::1`) and for registries listed as insecure; for those berth tries HTTPS
//! without certificate verification first and falls back to HTTP, as Docker
//! does. Everything else is HTTPS with verified certificates.
//!
//! A registry given as a URL (an `insecure` entry, `--insecure-registry`,
//! `berth login URL`, a mirror's upstream) pins its scheme ([`Transport`]):
//! `http://` is plain HTTP at once, with no HTTPS attempt; `https://` is
//! HTTPS only, never falling back to HTTP. Credentials still never travel
//! over plain HTTP to a registry that is neither loopback nor insecure: a
//! pinned `http://` to such a registry is anonymous.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::credentials::{CredentialSource, DefaultCredentials};
use crate::error::{Error, Result};

/// How often and how patiently to retry transient failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all (1: no retry).
    pub attempts: u32,
    /// The first backoff; each retry doubles it.
    pub base_delay: Duration,
    /// The longest backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0-based).
    pub fn delay(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(16)).unwrap_or(u32::MAX);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// The one scheme a registry given as a URL is reached with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `http://`: plain HTTP only, never HTTPS first.
    Http,
    /// `https://`: HTTPS only, never plain HTTP.
    Https,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::Https => "https",
        }
    }
}

/// Splits a registry given as `host[:port]` or as a URL
/// (`http://host:port/`, `https://host`) into its name (the reference
/// domain, lower case; Docker Hub's API hosts become `docker.io`) and the
/// scheme the URL pins, if any. A URL must not have a path beyond `/`
/// (Docker's `https://index.docker.io/v1/` key is accepted).
pub fn parse_registry(s: &str) -> Result<(String, Option<Transport>)> {
    let s = s.trim();
    let (transport, rest) = if let Some(r) = strip_prefix_ci(s, "http://") {
        (Some(Transport::Http), r)
    } else if let Some(r) = strip_prefix_ci(s, "https://") {
        (Some(Transport::Https), r)
    } else if s.contains("://") {
        return Err(Error::BadRegistry {
            registry: s.to_owned(),
            message: "only http:// and https:// URLs name registries".into(),
        });
    } else {
        (None, s)
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let path_ok = path.is_empty() || path == "v1/" || path == "v1" || path == "v2/" || path == "v2";
    if host.is_empty() || !path_ok || host.contains(['@', '?', '#', ' ']) {
        return Err(Error::BadRegistry {
            registry: s.to_owned(),
            message: "expected HOST[:PORT] or http(s)://HOST[:PORT]".into(),
        });
    }
    Ok((crate::credentials::normalize_key(host), transport))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &s[prefix.len()..])
}

/// Docker's per-registry TLS directories, in the order they are read:
/// `<berth config dir>/certs.d` and `/etc/docker/certs.d`.
pub fn default_certs_dirs() -> Vec<PathBuf> {
    vec![
        crate::credentials::config_dir().join("certs.d"),
        PathBuf::from("/etc/docker/certs.d"),
    ]
}

/// Everything a [`crate::Client`] is configured with.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Registries (`host` or `host:port`) that may be reached over plain
    /// HTTP or HTTPS with unverified certificates. Loopback always may.
    pub insecure_registries: Vec<String>,
    pub retry: RetryPolicy,
    pub credentials: Arc<dyn CredentialSource>,
    /// Largest manifest or index accepted.
    pub max_manifest_bytes: u64,
    pub user_agent: String,
    /// Give up connecting after this long.
    pub connect_timeout: Duration,
    /// Give up when a response stalls (no bytes) for this long.
    pub read_timeout: Duration,
    /// Registries pinned to one scheme because they were given as URLs
    /// (keyed by registry name, `host[:port]`); see [`Transport`].
    pub transports: BTreeMap<String, Transport>,
    /// Directories holding per-registry TLS settings in Docker's `certs.d`
    /// layout (`<dir>/<host[:port]>/{*.crt, *.cert, *.key}`), first first.
    pub certs_dirs: Vec<PathBuf>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure_registries: Vec::new(),
            retry: RetryPolicy::default(),
            credentials: Arc::new(crate::credentials::NoCredentials),
            max_manifest_bytes: 4 << 20,
            user_agent: format!("berth/{}", env!("CARGO_PKG_VERSION")),
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(120),
            transports: BTreeMap::new(),
            certs_dirs: default_certs_dirs(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistriesFile {
    #[serde(default)]
    insecure: Vec<String>,
}

impl ClientOptions {
    /// The user's settings: credentials from berth's login store and
    /// Docker's config, insecure registries from `registries.toml` in
    /// berth's configuration directory (if it exists).
    pub fn from_env() -> Result<ClientOptions> {
        let mut o = ClientOptions {
            credentials: Arc::new(DefaultCredentials::from_env()),
            ..ClientOptions::default()
        };
        let path = crate::credentials::config_dir().join("registries.toml");
        for entry in load_insecure(&path)? {
            o.add_insecure(&entry)
                .map_err(|e| Error::config(&path, e.to_string()))?;
        }
        Ok(o)
    }

    /// Lists a registry (`host[:port]` or a URL) as insecure; a URL also
    /// pins its scheme.
    pub fn add_insecure(&mut self, entry: &str) -> Result<()> {
        self.add_registry(entry)?;
        self.insecure_registries.push(entry.trim().to_owned());
        Ok(())
    }

    /// Reads a registry given by the user (`host[:port]` or a URL), pins
    /// the scheme of a URL, and returns the registry's name.
    pub fn add_registry(&mut self, registry: &str) -> Result<String> {
        let (name, transport) = parse_registry(registry)?;
        if let Some(t) = transport {
            self.transports.insert(name.clone(), t);
        }
        Ok(name)
    }

    /// The scheme `registry` is pinned to, if it was given as a URL.
    pub fn transport(&self, registry: &str) -> Option<Transport> {
        self.transports.get(&registry.to_ascii_lowercase()).copied()
    }

    /// Whether `registry` (a reference domain, `host[:port]`) may use plain
    /// HTTP: loopback, or listed as insecure (by `host:port` or by `host`).
    pub fn is_insecure(&self, registry: &str) -> bool {
        let host = host_of(registry);
        if is_loopback(host) {
            return true;
        }
        self.insecure_registries.iter().any(|i| {
            let i = i.trim().trim_end_matches('/');
            let i = i
                .strip_prefix("http://")
                .or_else(|| i.strip_prefix("https://"))
                .unwrap_or(i);
            i.eq_ignore_ascii_case(registry) || i.eq_ignore_ascii_case(host)
        })
    }
}

/// Reads the `insecure` list of a `registries.toml`; a missing file is empty.
pub fn load_insecure(path: &Path) -> Result<Vec<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let f: RegistriesFile =
                toml::from_str(&text).map_err(|e| Error::config(path, e.to_string()))?;
            Ok(f.insecure)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// The host part of `host[:port]` or `[v6]:port`.
pub fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match registry.rsplit_once(':') {
        // A bare IPv6 address has several colons and no port.
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => registry,
    }
}

/// `localhost`, `127.0.0.0/8` and `::1`.
pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip.to_canonical().is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_hosts() {
        let o = ClientOptions {
            insecure_registries: vec!["reg.lan:5000".into(), "http://10.0.0.7/".into()],
            ..ClientOptions::default()
        };
        for yes in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:80",
            "127.1.2.3",
            "[::1]:5000",
            "::1",
            "reg.lan:5000",
            "10.0.0.7:443",
        ] {
            assert!(o.is_insecure(yes), "{yes}");
        }
        for no in [
            "docker.io",
            "reg.lan:5001",
            "reg.lan",
            "10.0.0.8",
            "localhost.evil.com",
            "127.0.0.1.nip.io",
        ] {
            assert!(!o.is_insecure(no), "{no}");
        }
    }

    #[test]
    fn registries_given_as_urls() {
        for (input, name, t) in [
            ("reg.lan:5000", "reg.lan:5000", None),
            ("http://reg.lan:5000", "reg.lan:5000", Some(Transport::Http)),
            (
                "HTTP://Reg.Lan:5000/",
                "reg.lan:5000",
                Some(Transport::Http),
            ),
            ("https://10.0.0.7", "10.0.0.7", Some(Transport::Https)),
            (
                "https://[::1]:5000/v2/",
                "[::1]:5000",
                Some(Transport::Https),
            ),
            (
                "https://index.docker.io/v1/",
                "docker.io",
                Some(Transport::Https),
            ),
        ] {
            assert_eq!(
                parse_registry(input).unwrap(),
                (name.to_owned(), t),
                "{input}"
            );
        }
        for bad in [
            "ftp://reg.lan",
            "http://",
            "http://reg.lan/some/path",
            "http://u@reg.lan",
        ] {
            assert!(
                matches!(parse_registry(bad), Err(Error::BadRegistry { .. })),
                "{bad}"
            );
        }
        let mut o = ClientOptions::default();
        o.add_insecure("http://reg.lan:5000").unwrap();
        o.add_insecure("10.0.0.7").unwrap();
        assert_eq!(o.transport("reg.lan:5000"), Some(Transport::Http));
        assert_eq!(o.transport("REG.lan:5000"), Some(Transport::Http));
        assert_eq!(o.transport("reg.lan:5001"), None);
        assert_eq!(o.transport("10.0.0.7"), None);
        assert!(o.is_insecure("reg.lan:5000") && o.is_insecure("10.0.0.7:5000"));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let r = RetryPolicy::default();
        assert_eq!(r.delay(0), Duration::from_millis(200));
        assert_eq!(r.delay(1), Duration::from_millis(400));
        assert_eq!(r.delay(3), Duration::from_millis(1600));
        assert_eq!(r.delay(10), Duration::from_secs(5));
        assert_eq!(r.delay(100), Duration::from_secs(5));
    }

    #[test]
    fn registries_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("registries.toml");
        assert!(load_insecure(&p).unwrap().is_empty());
        std::fs::write(&p, "insecure = [\"a:1\", \"b\"]\n").unwrap();
        assert_eq!(load_insecure(&p).unwrap(), ["a:1", "b"]);
        std::fs::write(&p, "insecur = []\n").unwrap();
        assert!(matches!(load_insecure(&p), Err(Error::Config { .. })));
    }
}
