//! Client settings: insecure registries, retries, limits, and the optional
//! `registries.toml` in berth's configuration directory.
//!
//! ```toml
//! # ~/.config/berth/registries.toml
//! insecure = ["registry.lan:5000", "10.0.0.7"]
//! ```
//!
//! Plain HTTP is used only for loopback registries (`localhost`,
//! `127.0.0.0/8`, `::1`) and for registries listed as insecure; for those
//! berth tries HTTPS without certificate verification first and falls back
//! to HTTP, as Docker does. Everything else is HTTPS with verified
//! certificates.

use std::net::IpAddr;
use std::path::Path;
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
        o.insecure_registries =
            load_insecure(&crate::credentials::config_dir().join("registries.toml"))?;
        Ok(o)
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
