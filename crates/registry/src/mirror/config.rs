//! The mirror's configuration: `[[mirror]]` tables (one per upstream) and
//! `[mirror_cache]` in the server's TOML file, `--mirror [REGISTRY=]URL` on
//! the command line.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Default time a tag stays trusted before it is re-validated upstream.
pub const DEFAULT_TTL_SECS: u64 = 300;

/// One upstream registry the server mirrors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorConfig {
    /// The upstream registry's root URL (`https://registry-1.docker.io`;
    /// no path). `http://` only for loopback hosts or with `insecure`.
    pub url: String,
    /// The registry this upstream stands for, as clients name it: matched
    /// against containerd's `?ns=` and the first path component of the
    /// path-prefix form. Default: `docker.io` for Docker Hub's hosts,
    /// otherwise the URL's `host[:port]`.
    #[serde(default)]
    pub registry: Option<String>,
    /// Credentials for the upstream (basic auth, or the token flow's realm).
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// A file holding the password (trailing newline ignored).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Tags are re-validated upstream once they are this old (0: always).
    #[serde(default = "default_ttl")]
    pub ttl_secs: u64,
    /// Allow plain HTTP to a non-loopback host and accept any TLS certificate.
    #[serde(default)]
    pub insecure: bool,
}

fn default_ttl() -> u64 {
    DEFAULT_TTL_SECS
}

/// Limits of the mirror's cache.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MirrorCacheConfig {
    /// Mirrored bytes kept at most (0: no limit). Least recently used
    /// content is evicted first; local repositories never count and are
    /// never evicted.
    pub max_bytes: u64,
}

impl MirrorConfig {
    /// An upstream with default settings.
    pub fn new(url: impl Into<String>) -> MirrorConfig {
        MirrorConfig {
            url: url.into(),
            registry: None,
            username: None,
            password: None,
            password_file: None,
            ttl_secs: DEFAULT_TTL_SECS,
            insecure: false,
        }
    }

    /// Parses the flag form `[REGISTRY=]URL`.
    pub fn parse_flag(s: &str, insecure: bool) -> Result<MirrorConfig> {
        let (registry, url) = match s.split_once('=') {
            Some((r, u)) if !r.contains('/') => (Some(r.to_owned()), u),
            _ => (None, s),
        };
        let mut m = MirrorConfig::new(url);
        m.registry = registry;
        m.insecure = insecure;
        m.resolve()?;
        Ok(m)
    }

    /// Checks the entry and works out what the server needs from it.
    pub(crate) fn resolve(&self) -> Result<Resolved> {
        let bad = |why: String| Error::Config(format!("mirror {}: {why}", self.url));
        let url = reqwest::Url::parse(&self.url).map_err(|e| bad(e.to_string()))?;
        let host = url
            .host_str()
            .ok_or_else(|| bad("the URL has no host".into()))?
            .to_ascii_lowercase();
        match url.scheme() {
            "https" => {}
            "http" if self.insecure || is_loopback(&host) => {}
            "http" => {
                return Err(bad(
                    "plain HTTP is only allowed to loopback hosts or with insecure = true".into(),
                ));
            }
            s => return Err(bad(format!("unsupported scheme {s:?}"))),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "put credentials in username/password, not in the URL".into()
            ));
        }
        if url.query().is_some() || url.fragment().is_some() || url.path() != "/" {
            return Err(bad(
                "the URL is the registry's root: no path, query or fragment".into(),
            ));
        }
        let registry = match &self.registry {
            Some(r) => normalize_registry(r),
            None => {
                let h = match url.port() {
                    Some(p) => format!("{host}:{p}"),
                    None => host.clone(),
                };
                normalize_registry(&h)
            }
        };
        if registry.is_empty()
            || !registry.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'_' | b'[' | b']')
            })
        {
            return Err(bad(format!("invalid registry name {registry:?}")));
        }
        let password = match (&self.password, &self.password_file) {
            (Some(_), Some(_)) => {
                return Err(bad("password and password_file exclude each other".into()));
            }
            (Some(p), None) => Some(p.clone()),
            (None, Some(f)) => Some(
                std::fs::read_to_string(f)
                    .map_err(|e| bad(format!("reading {}: {e}", f.display())))?
                    .trim_end_matches(['\n', '\r'])
                    .to_owned(),
            ),
            (None, None) => None,
        };
        let credentials = match (&self.username, password) {
            (Some(u), Some(p)) => Some((u.clone(), p)),
            (None, None) => None,
            _ => return Err(bad("username and password go together".into())),
        };
        Ok(Resolved {
            registry,
            base: url,
            credentials,
        })
    }
}

/// A checked `[[mirror]]` entry.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub registry: String,
    /// The registry's root URL.
    pub base: reqwest::Url,
    pub credentials: Option<(String, String)>,
}

/// Docker Hub goes by several host names; clients and `?ns=` say `docker.io`.
pub(crate) fn normalize_registry(r: &str) -> String {
    let r = r.trim().to_ascii_lowercase();
    match r.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".into()
        }
        _ => r,
    }
}

fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h == "localhost" || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Checks every entry and that no two stand for the same registry.
pub(crate) fn validate(mirrors: &[MirrorConfig]) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for m in mirrors {
        let r = m.resolve()?;
        if !seen.insert(r.registry.clone()) {
            return Err(Error::Config(format!(
                "two mirrors stand for registry {}",
                r.registry
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_registry_names() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "https://registry-1.docker.io",
                "docker.io",
                "https://registry-1.docker.io/",
            ),
            (
                "http://127.0.0.1:5001",
                "127.0.0.1:5001",
                "http://127.0.0.1:5001/",
            ),
            (
                "docker.io=http://127.0.0.1:5001",
                "docker.io",
                "http://127.0.0.1:5001/",
            ),
            ("Quay.IO=https://quay.io", "quay.io", "https://quay.io/"),
            ("http://[::1]:80", "[::1]", "http://[::1]/"),
        ];
        for (flag, registry, base) in cases {
            let m = MirrorConfig::parse_flag(flag, false).unwrap();
            let r = m.resolve().unwrap();
            assert_eq!(r.registry, *registry, "{flag}");
            assert_eq!(r.base.as_str(), *base, "{flag}");
            assert_eq!(m.ttl_secs, DEFAULT_TTL_SECS);
        }
        for bad in [
            "http://registry.example.com",
            "ftp://127.0.0.1",
            "https://user:pw@ghcr.io",
            "https://ghcr.io/?x=1",
            "https://ghcr.io/prefix",
            "not a url",
            "a b=https://ghcr.io",
        ] {
            assert!(MirrorConfig::parse_flag(bad, false).is_err(), "{bad}");
        }
        let mut m = MirrorConfig::parse_flag("http://registry.example.com", true).unwrap();
        assert!(m.insecure);
        m.username = Some("u".into());
        assert!(m.resolve().is_err(), "username without password");
        m.password = Some("p".into());
        assert_eq!(
            m.resolve().unwrap().credentials,
            Some(("u".into(), "p".into()))
        );
        assert!(
            validate(&[
                MirrorConfig::new("https://index.docker.io"),
                MirrorConfig::new("https://registry-1.docker.io"),
            ])
            .is_err()
        );
    }

    #[test]
    fn the_example_configuration_file() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/registry/config.toml"
        );
        let c = crate::Config::from_file(std::path::Path::new(path)).unwrap();
        assert_eq!(c.mirrors.len(), 2);
        assert_eq!(c.mirrors[0].resolve().unwrap().registry, "docker.io");
        assert_eq!(c.mirrors[1].registry.as_deref(), Some("ghcr.io"));
        assert_eq!(c.mirrors[1].ttl_secs, 60);
        assert!(c.mirror_cache.max_bytes > 0);
        let bad: std::result::Result<crate::Config, _> =
            toml::from_str("[[mirror]]\nurl = \"https://x.io\"\nbogus = 1\n");
        assert!(bad.is_err(), "unknown keys are refused");
    }
}
