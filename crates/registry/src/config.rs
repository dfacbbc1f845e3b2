//! Server configuration: a TOML file whose every option is also a
//! command-line flag (the CLI overlays flags on the file).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub use crate::mirror::config::{MirrorCacheConfig, MirrorConfig};

/// Everything `berth registry serve` can be told.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `HOST:PORT` to listen on; port 0 picks a free port.
    pub addr: String,
    /// The berth store root served (blobs are shared with the image store).
    pub root: Option<PathBuf>,
    /// Refuse every write (pushes, deletes).
    pub read_only: bool,
    /// Allow manifest, tag and blob deletion.
    pub delete_enabled: bool,
    /// Largest manifest accepted, in bytes.
    pub max_manifest_bytes: u64,
    /// Largest blob accepted, in bytes (0: no limit).
    pub max_blob_bytes: u64,
    /// Most upload sessions open at once.
    pub max_uploads: usize,
    /// An upload session idle for this long is cancelled.
    pub upload_idle_secs: u64,
    /// Reading request headers, or the next piece of a body, may take at most this long.
    pub io_timeout_secs: u64,
    /// Verify blob digests while serving full (non-range) reads.
    pub verify_reads: bool,
    /// Access logs as JSON lines instead of text.
    pub log_json: bool,
    /// Serve TLS with this certificate chain (PEM) and key.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub gc: GcConfig,
    pub auth: AuthConfig,
    /// Upstreams of the pull-through mirror (`[[mirror]]` tables).
    #[serde(rename = "mirror")]
    pub mirrors: Vec<MirrorConfig>,
    pub mirror_cache: MirrorCacheConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: "127.0.0.1:5000".into(),
            root: None,
            read_only: false,
            delete_enabled: true,
            max_manifest_bytes: 4 << 20,
            max_blob_bytes: 0,
            max_uploads: 1024,
            upload_idle_secs: 900,
            io_timeout_secs: 30,
            verify_reads: true,
            log_json: false,
            tls_cert: None,
            tls_key: None,
            gc: GcConfig::default(),
            auth: AuthConfig::default(),
            mirrors: Vec::new(),
            mirror_cache: MirrorCacheConfig::default(),
        }
    }
}

/// Garbage collection policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GcConfig {
    /// Run GC inside the server every this many seconds (0: never).
    pub interval_secs: u64,
    /// Blobs and blob links younger than this are never collected: they may
    /// belong to a push whose manifest has not arrived yet.
    pub grace_secs: u64,
    /// Also delete manifests that no tag reaches (directly or through an
    /// index) and that are not referrers of a kept manifest.
    pub delete_untagged: bool,
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            interval_secs: 0,
            grace_secs: 3600,
            delete_untagged: false,
        }
    }
}

/// How clients authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Everyone may do everything the grants allow `anonymous` (all, if no grants).
    #[default]
    None,
    /// HTTP basic auth against an htpasswd file (bcrypt).
    Basic,
    /// Docker's token flow with the built-in `/token` endpoint.
    Token,
}

/// Authentication and authorisation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub mode: AuthMode,
    /// htpasswd file with bcrypt hashes (`user:$2y$...`), for basic and token modes.
    pub htpasswd: Option<PathBuf>,
    /// Token realm URL advertised to clients (default: `http(s)://<Host>/token`).
    pub realm: Option<String>,
    /// Token service name.
    pub service: String,
    /// Token lifetime.
    pub token_ttl_secs: u64,
    /// File holding the token signing key (default: a random key per start).
    pub token_key_file: Option<PathBuf>,
    /// Let anyone pull every repository.
    pub anonymous_pull: bool,
    /// Who may do what. With no grants, every authenticated user may do everything.
    pub grants: Vec<Grant>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            mode: AuthMode::None,
            htpasswd: None,
            realm: None,
            service: "berth-registry".into(),
            token_ttl_secs: 300,
            token_key_file: None,
            anonymous_pull: false,
            grants: Vec::new(),
        }
    }
}

/// A permission: `accounts` may perform `actions` on repositories matching `repositories`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// User names; `*` is any authenticated user, `anonymous` is no credentials.
    pub accounts: Vec<String>,
    /// Repository patterns; `*` matches any run of characters (including `/`).
    pub repositories: Vec<String>,
    /// `pull`, `push`, `delete` or `*`.
    pub actions: Vec<String>,
}

impl Grant {
    /// Parses the flag form `ACCOUNTS:REPOS:ACTIONS`, each part comma-separated
    /// (`alice,bob:team/*:pull,push`).
    pub fn parse_flag(s: &str) -> Result<Grant> {
        let parts: Vec<&str> = s.split(':').collect();
        let [a, r, x] = parts.as_slice() else {
            return Err(Error::Config(format!(
                "grant {s:?} is not ACCOUNTS:REPOSITORIES:ACTIONS"
            )));
        };
        let list = |p: &str| -> Vec<String> {
            p.split(',')
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let g = Grant {
            accounts: list(a),
            repositories: list(r),
            actions: list(x),
        };
        g.validate()?;
        Ok(g)
    }

    fn validate(&self) -> Result<()> {
        for a in &self.actions {
            if !matches!(a.as_str(), "pull" | "push" | "delete" | "*") {
                return Err(Error::Config(format!("unknown action {a:?} in a grant")));
            }
        }
        if self.accounts.is_empty() || self.repositories.is_empty() || self.actions.is_empty() {
            return Err(Error::Config(
                "a grant needs accounts, repositories and actions".into(),
            ));
        }
        Ok(())
    }
}

impl Config {
    /// Reads a TOML configuration file.
    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
        toml::from_str(&text).map_err(|source| Error::ConfigFile {
            path: path.to_owned(),
            source,
        })
    }

    /// Checks cross-field rules.
    pub fn validate(&self) -> Result<()> {
        for g in &self.auth.grants {
            g.validate()?;
        }
        if self.auth.mode != AuthMode::None
            && self.auth.htpasswd.is_none()
            && !self.auth.anonymous_pull
        {
            return Err(Error::Config(
                "auth mode basic/token needs an htpasswd file (or anonymous_pull)".into(),
            ));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(Error::Config("tls_cert and tls_key go together".into()));
        }
        crate::mirror::config::validate(&self.mirrors)?;
        if self.max_manifest_bytes == 0 || self.io_timeout_secs == 0 || self.max_uploads == 0 {
            return Err(Error::Config(
                "max_manifest_bytes, io_timeout_secs and max_uploads must be positive".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_and_flag_forms() {
        let c: Config = toml::from_str(
            r#"
addr = "0.0.0.0:5000"
read_only = true
[gc]
interval_secs = 60
[auth]
mode = "token"
htpasswd = "/etc/htpasswd"
anonymous_pull = true
[[auth.grants]]
accounts = ["alice"]
repositories = ["team/*"]
actions = ["pull", "push"]
"#,
        )
        .unwrap();
        assert!(c.read_only);
        assert_eq!(c.gc.interval_secs, 60);
        assert_eq!(c.auth.mode, AuthMode::Token);
        c.validate().unwrap();
        assert_eq!(
            Grant::parse_flag("alice,bob:team/*:pull,push").unwrap(),
            Grant {
                accounts: vec!["alice".into(), "bob".into()],
                repositories: vec!["team/*".into()],
                actions: vec!["pull".into(), "push".into()],
            }
        );
        assert!(Grant::parse_flag("alice:x").is_err());
        assert!(Grant::parse_flag("alice:x:fly").is_err());
        assert!(toml::from_str::<Config>("bogus = 1").is_err());
    }
}
