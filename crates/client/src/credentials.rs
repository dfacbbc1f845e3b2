//! Where credentials come from: berth's own login store, then Docker's
//! `config.json` (`auths`, `credsStore`, `credHelpers` and the
//! `docker-credential-*` helper protocol).
//!
//! berth's login store (`auth.json` in the berth configuration directory)
//! has the same shape as Docker's `auths` so either file can be copied into
//! the other; it is written with mode 0600, atomically. berth never writes
//! Docker's file.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::auth::Credential;
use crate::error::{Error, Result};

/// Docker's key for Docker Hub in `auths` and credential helpers.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// Something that knows credentials for registries. `registry` is the
/// domain of a reference (`docker.io`, `localhost:5000`).
pub trait CredentialSource: Send + Sync + fmt::Debug {
    fn get(&self, registry: &str) -> Result<Option<Credential>>;
}

/// No credentials anywhere (anonymous access only).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoCredentials;

impl CredentialSource for NoCredentials {
    fn get(&self, _registry: &str) -> Result<Option<Credential>> {
        Ok(None)
    }
}

/// A fixed map of registry → credential (for example a mirror's per-upstream
/// credentials from its configuration file).
#[derive(Debug, Default, Clone)]
pub struct StaticCredentials(pub BTreeMap<String, Credential>);

impl CredentialSource for StaticCredentials {
    fn get(&self, registry: &str) -> Result<Option<Credential>> {
        let want = normalize_key(registry);
        Ok(self
            .0
            .iter()
            .find(|(k, _)| normalize_key(k) == want)
            .map(|(_, c)| c.clone()))
    }
}

/// berth's configuration directory: `$BERTH_CONFIG`, else
/// `$XDG_CONFIG_HOME/berth`, else `~/.config/berth`.
pub fn config_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("BERTH_CONFIG").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("berth");
    }
    home().join(".config/berth")
}

fn home() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/".into()))
}

/// Docker's `config.json`: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn docker_config_path() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d).join("config.json"),
        None => home().join(".docker/config.json"),
    }
}

/// The registry a credentials key names, in reference-domain form:
/// `https://index.docker.io/v1/` → `docker.io`, `http://h:5000/` → `h:5000`.
pub fn normalize_key(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = k.split('/').next().unwrap_or(k).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_owned()
        }
        _ => host,
    }
}

/// The server URL Docker uses for a registry in credential helpers.
pub fn helper_server_url(registry: &str) -> String {
    if normalize_key(registry) == "docker.io" {
        DOCKER_HUB_KEY.to_owned()
    } else {
        registry.to_owned()
    }
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct AuthEntry {
    /// base64 of `user:password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identitytoken: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registrytoken: Option<String>,
}

impl AuthEntry {
    fn credential(&self, path: &Path, key: &str) -> Result<Option<Credential>> {
        if let Some(t) = self.registrytoken.as_ref().filter(|t| !t.is_empty()) {
            return Ok(Some(Credential::RegistryToken(t.clone())));
        }
        if let Some(t) = self.identitytoken.as_ref().filter(|t| !t.is_empty()) {
            return Ok(Some(Credential::IdentityToken(t.clone())));
        }
        if let Some(a) = self.auth.as_ref().filter(|a| !a.is_empty()) {
            let raw = STANDARD
                .decode(a.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| Error::config(path, format!("auths.{key}.auth is not base64")))?;
            let (u, p) = raw.split_once(':').ok_or_else(|| {
                Error::config(path, format!("auths.{key}.auth is not USER:PASSWORD"))
            })?;
            return Ok(Some(Credential::basic(u, p)));
        }
        match (&self.username, &self.password) {
            (Some(u), Some(p)) if !u.is_empty() => Ok(Some(Credential::basic(u, p))),
            _ => Ok(None),
        }
    }
}

/// The parts of Docker's `config.json` that concern registry credentials.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DockerConfig {
    #[serde(default)]
    pub auths: BTreeMap<String, AuthEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creds_store: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cred_helpers: BTreeMap<String, String>,
}

impl DockerConfig {
    /// Reads a config file; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<DockerConfig> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| Error::config(path, format!("invalid JSON: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DockerConfig::default()),
            Err(e) => Err(Error::io("read", path, e)),
        }
    }

    /// The credential for `registry`, following Docker's precedence: a
    /// per-registry helper, then the default store, then `auths`.
    pub fn lookup(&self, path: &Path, registry: &str) -> Result<Option<Credential>> {
        let want = normalize_key(registry);
        if let Some((_, helper)) = self
            .cred_helpers
            .iter()
            .find(|(k, _)| normalize_key(k) == want)
        {
            return helper_get(helper, &helper_server_url(registry));
        }
        if let Some(store) = self.creds_store.as_ref().filter(|s| !s.is_empty())
            && let Some(c) = helper_get(store, &helper_server_url(registry))?
        {
            return Ok(Some(c));
        }
        for (k, entry) in &self.auths {
            if normalize_key(k) == want
                && let Some(c) = entry.credential(path, k)?
            {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperOutput {
    username: Option<String>,
    secret: Option<String>,
}

/// Runs `docker-credential-HELPER get` with `server_url` on stdin. A helper
/// that says it has nothing ("credentials not found") yields `None`.
pub fn helper_get(helper: &str, server_url: &str) -> Result<Option<Credential>> {
    let herr = |message: String| Error::CredentialHelper {
        helper: helper.to_owned(),
        message,
    };
    if helper.is_empty() || helper.contains('/') {
        return Err(herr("invalid helper name".into()));
    }
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| herr(format!("cannot run it: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading its input is fine.
        let _ = stdin.write_all(server_url.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| herr(format!("waiting for it: {e}")))?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        if text.to_ascii_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        return Err(herr(format!("{}: {}", out.status, text.trim())));
    }
    let parsed: HelperOutput =
        serde_json::from_slice(&out.stdout).map_err(|e| herr(format!("invalid output: {e}")))?;
    let secret = parsed.secret.unwrap_or_default();
    if secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(match parsed.username.as_deref() {
        // Docker's convention for identity tokens.
        Some("<token>") => Credential::IdentityToken(secret),
        Some(u) => Credential::basic(u, secret),
        None => Credential::IdentityToken(secret),
    }))
}

/// berth's own login store (`auth.json` in [`config_dir`]).
#[derive(Debug, Clone)]
pub struct LoginStore {
    path: PathBuf,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct LoginFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

impl LoginStore {
    /// The store in berth's configuration directory.
    pub fn default_location() -> LoginStore {
        LoginStore::at(config_dir().join("auth.json"))
    }

    pub fn at(path: impl Into<PathBuf>) -> LoginStore {
        LoginStore { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> Result<LoginFile> {
        match std::fs::read(&self.path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| Error::config(&self.path, format!("invalid JSON: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LoginFile::default()),
            Err(e) => Err(Error::io("read", &self.path, e)),
        }
    }

    fn write(&self, file: &LoginFile) -> Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".auth.json.tmp-")
            .permissions(std::fs::Permissions::from_mode(0o600))
            .tempfile_in(dir)
            .map_err(|e| Error::io("create temporary file in", dir, e))?;
        let bytes = serde_json::to_vec_pretty(file).expect("login file serialises");
        tmp.write_all(&bytes)
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| Error::io("write", tmp.path(), e))?;
        tmp.persist(&self.path)
            .map_err(|e| Error::io("rename into place", &self.path, e.error))?;
        Ok(())
    }

    /// The stored credential for `registry`.
    pub fn lookup(&self, registry: &str) -> Result<Option<Credential>> {
        let file = self.read()?;
        let want = normalize_key(registry);
        for (k, e) in &file.auths {
            if normalize_key(k) == want
                && let Some(c) = e.credential(&self.path, k)?
            {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    /// Stores (replacing) the credentials for `registry`.
    pub fn store(&self, registry: &str, username: &str, password: &str) -> Result<()> {
        let mut file = self.read()?;
        let want = normalize_key(registry);
        file.auths.retain(|k, _| normalize_key(k) != want);
        file.auths.insert(
            want,
            AuthEntry {
                auth: Some(STANDARD.encode(format!("{username}:{password}"))),
                ..AuthEntry::default()
            },
        );
        self.write(&file)
    }

    /// Removes the credentials for `registry`; returns whether there were any.
    pub fn erase(&self, registry: &str) -> Result<bool> {
        let mut file = self.read()?;
        let want = normalize_key(registry);
        let before = file.auths.len();
        file.auths.retain(|k, _| normalize_key(k) != want);
        if file.auths.len() == before {
            return Ok(false);
        }
        self.write(&file)?;
        Ok(true)
    }
}

/// berth's default lookup: its own login store, then Docker's config.
#[derive(Debug, Clone)]
pub struct DefaultCredentials {
    pub logins: LoginStore,
    pub docker_config: PathBuf,
}

impl DefaultCredentials {
    pub fn from_env() -> DefaultCredentials {
        DefaultCredentials {
            logins: LoginStore::default_location(),
            docker_config: docker_config_path(),
        }
    }
}

impl CredentialSource for DefaultCredentials {
    fn get(&self, registry: &str) -> Result<Option<Credential>> {
        if let Some(c) = self.logins.lookup(registry)? {
            return Ok(Some(c));
        }
        DockerConfig::load(&self.docker_config)?.lookup(&self.docker_config, registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_normalise_to_reference_domains() {
        for (k, want) in [
            ("https://index.docker.io/v1/", "docker.io"),
            ("registry-1.docker.io", "docker.io"),
            ("docker.io", "docker.io"),
            ("http://LocalHost:5000/v2/", "localhost:5000"),
            ("127.0.0.1:5000", "127.0.0.1:5000"),
        ] {
            assert_eq!(normalize_key(k), want, "{k}");
        }
        assert_eq!(helper_server_url("docker.io"), DOCKER_HUB_KEY);
        assert_eq!(helper_server_url("r:1"), "r:1");
    }

    #[test]
    fn docker_config_auths_forms() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            format!(
                r#"{{"auths": {{
                    "https://index.docker.io/v1/": {{"auth": "{}"}},
                    "r1:5000": {{"identitytoken": "refresh"}},
                    "r2": {{"username": "u", "password": "p"}},
                    "bad": {{"auth": "%%%"}}
                }}, "unrelated": {{"x": 1}}}}"#,
                STANDARD.encode("alice:pw:with:colons")
            ),
        )
        .unwrap();
        let cfg = DockerConfig::load(&path).unwrap();
        assert_eq!(
            cfg.lookup(&path, "docker.io").unwrap(),
            Some(Credential::basic("alice", "pw:with:colons"))
        );
        assert_eq!(
            cfg.lookup(&path, "r1:5000").unwrap(),
            Some(Credential::IdentityToken("refresh".into()))
        );
        assert_eq!(
            cfg.lookup(&path, "r2").unwrap(),
            Some(Credential::basic("u", "p"))
        );
        assert_eq!(cfg.lookup(&path, "elsewhere").unwrap(), None);
        assert!(matches!(
            cfg.lookup(&path, "bad"),
            Err(Error::Config { .. })
        ));
        assert!(
            DockerConfig::load(&dir.path().join("missing.json"))
                .unwrap()
                .auths
                .is_empty()
        );
    }

    #[test]
    fn login_store_roundtrip_and_mode() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let s = LoginStore::at(dir.path().join("sub/auth.json"));
        assert_eq!(s.lookup("h:1").unwrap(), None);
        s.store("h:1", "bob", "pw1").unwrap();
        s.store("http://h:1/", "bob", "pw2").unwrap();
        s.store("other", "carol", "x").unwrap();
        assert_eq!(
            s.lookup("h:1").unwrap(),
            Some(Credential::basic("bob", "pw2"))
        );
        let mode = std::fs::metadata(s.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(s.erase("h:1").unwrap());
        assert!(!s.erase("h:1").unwrap());
        assert_eq!(s.lookup("h:1").unwrap(), None);
        assert!(s.lookup("other").unwrap().is_some());
    }
}
