//! Authentication (htpasswd basic auth, Docker's bearer-token flow) and
//! authorisation (per-repository grants from the configuration).
//!
//! Tokens are issued by the server itself at `/token` and are
//! `base64url(claims JSON) "." base64url(HMAC-SHA256(key, claims))`: only
//! this server reads them, so no public-key infrastructure is needed. The key
//! is random per start unless a key file is configured (then tokens survive
//! restarts and can be shared by replicas).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hyper::HeaderMap;
use hyper::header::AUTHORIZATION;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::config::{AuthConfig, AuthMode, Grant};
use crate::error::{ApiError, Error, ErrorCode, Result};

/// What a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    Pull,
    Push,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }

    fn parse(s: &str) -> Option<Action> {
        match s {
            "pull" => Some(Action::Pull),
            "push" => Some(Action::Push),
            "delete" => Some(Action::Delete),
            _ => None,
        }
    }
}

/// The permission a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// `/v2/`: any identity that may do something.
    Base,
    /// `/v2/_catalog`.
    Catalog,
    /// An action on one repository.
    Repo(String, Action),
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Anonymous,
    User(String),
}

impl Identity {
    pub fn name(&self) -> &str {
        match self {
            Identity::Anonymous => "anonymous",
            Identity::User(u) => u,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    exp: u64,
    iat: u64,
    access: Vec<AccessEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct AccessEntry {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    actions: Vec<String>,
}

/// The authenticator and policy of one server.
pub struct Auth {
    cfg: AuthConfig,
    users: HashMap<String, String>,
    key: [u8; 32],
    /// Successful bcrypt checks (user → sha256 of the password, when): bcrypt
    /// is deliberately slow, and clients send basic credentials on every request.
    verified: Mutex<HashMap<String, ([u8; 32], Instant)>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("mode", &self.cfg.mode)
            .field("users", &self.users.len())
            .finish()
    }
}

const VERIFIED_TTL: Duration = Duration::from_secs(300);

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// HMAC-SHA256 (RFC 2104).
fn hmac(key: &[u8; 32], msg: &[u8]) -> [u8; 32] {
    let mut ipad = [0x36u8; 64];
    let mut opad = [0x5cu8; 64];
    for (i, k) in key.iter().enumerate() {
        ipad[i] ^= k;
        opad[i] ^= k;
    }
    let mut inner = sha2::Sha256::new();
    inner.update(ipad);
    inner.update(msg);
    let inner = inner.finalize();
    let mut outer = sha2::Sha256::new();
    outer.update(opad);
    outer.update(inner.as_slice());
    let mut out = [0u8; 32];
    out.copy_from_slice(outer.finalize().as_slice());
    out
}

fn sha256(b: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(sha2::Sha256::digest(b).as_slice());
    out
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `*` matches any run of characters, including `/`.
fn glob(pattern: &str, s: &str) -> bool {
    let Some((first, rest)) = pattern.split_once('*') else {
        return pattern == s;
    };
    let Some(mut s) = s.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = rest.split('*').collect();
    for (i, part) in parts.iter().enumerate() {
        if i == parts.len() - 1 {
            return s.ends_with(part);
        }
        match s.find(part) {
            Some(pos) => s = &s[pos + part.len()..],
            None => return false,
        }
    }
    true
}

/// Parses an htpasswd file; only bcrypt hashes are accepted.
pub fn parse_htpasswd(text: &str) -> Result<HashMap<String, String>> {
    let mut users = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((user, hash)) = line.split_once(':') else {
            return Err(Error::Config(format!("htpasswd line {}: no ':'", n + 1)));
        };
        if !(hash.starts_with("$2y$") || hash.starts_with("$2b$") || hash.starts_with("$2a$")) {
            return Err(Error::Config(format!(
                "htpasswd line {}: only bcrypt hashes are supported (htpasswd -B)",
                n + 1
            )));
        }
        users.insert(user.to_owned(), hash.to_owned());
    }
    Ok(users)
}

impl Auth {
    pub fn new(cfg: &AuthConfig) -> Result<Auth> {
        let users = match &cfg.htpasswd {
            Some(p) => {
                parse_htpasswd(&std::fs::read_to_string(p).map_err(|e| Error::io("read", p, e))?)?
            }
            None => HashMap::new(),
        };
        let key = match &cfg.token_key_file {
            Some(p) => {
                let b = std::fs::read(p).map_err(|e| Error::io("read", p, e))?;
                if b.len() < 32 {
                    return Err(Error::Config(format!(
                        "token key file {} must hold at least 32 bytes",
                        p.display()
                    )));
                }
                sha256(&b)
            }
            None => {
                let mut k = [0u8; 32];
                getrandom::fill(&mut k)
                    .map_err(|e| Error::Config(format!("no randomness for the token key: {e}")))?;
                k
            }
        };
        Ok(Auth {
            cfg: cfg.clone(),
            users,
            key,
            verified: Mutex::new(HashMap::new()),
        })
    }

    pub fn mode(&self) -> AuthMode {
        self.cfg.mode
    }

    fn grants_for<'a>(&'a self, who: &'a Identity) -> impl Iterator<Item = &'a Grant> + 'a {
        self.cfg.grants.iter().filter(move |g| {
            g.accounts.iter().any(|a| match who {
                Identity::Anonymous => a == "anonymous",
                Identity::User(u) => a == u || a == "*",
            })
        })
    }

    /// The policy: may `who` perform `action` on `repo`?
    pub fn allowed(&self, who: &Identity, repo: &str, action: Action) -> bool {
        if self.cfg.mode == AuthMode::None {
            return true;
        }
        if action == Action::Pull && self.cfg.anonymous_pull {
            return true;
        }
        if self.cfg.grants.is_empty() {
            return matches!(who, Identity::User(_));
        }
        self.grants_for(who).any(|g| {
            g.repositories.iter().any(|p| glob(p, repo))
                && g.actions
                    .iter()
                    .any(|a| a == "*" || Action::parse(a) == Some(action))
        })
    }

    fn catalog_allowed(&self, who: &Identity) -> bool {
        if self.cfg.mode == AuthMode::None || self.cfg.anonymous_pull {
            return true;
        }
        if self.cfg.grants.is_empty() {
            return matches!(who, Identity::User(_));
        }
        self.grants_for(who).any(|g| {
            g.repositories.iter().any(|p| p == "*")
                && g.actions.iter().any(|a| a == "*" || a == "pull")
        })
    }

    fn base_allowed(&self, who: &Identity) -> bool {
        match who {
            Identity::User(_) => true,
            Identity::Anonymous => {
                self.cfg.mode == AuthMode::None
                    || self.cfg.anonymous_pull
                    || self.grants_for(who).next().is_some()
            }
        }
    }

    fn check_password(&self, user: &str, password: &str) -> bool {
        let Some(hash) = self.users.get(user) else {
            return false;
        };
        let pw = sha256(password.as_bytes());
        if let Some((seen, at)) = self.verified.lock().unwrap().get(user)
            && ct_eq(seen, &pw)
            && at.elapsed() < VERIFIED_TTL
        {
            return true;
        }
        let ok = bcrypt::verify(password, hash).unwrap_or(false);
        if ok {
            let mut cache = self.verified.lock().unwrap();
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(user.to_owned(), (pw, Instant::now()));
        }
        ok
    }

    /// Basic credentials from headers: `Ok(None)` if absent, `Err` if wrong.
    fn basic(&self, headers: &HeaderMap) -> Result<Option<Identity>, ApiError> {
        let Some(v) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return Ok(None);
        };
        let Some(b64) = v
            .strip_prefix("Basic ")
            .or_else(|| v.strip_prefix("basic "))
        else {
            return Ok(None);
        };
        let bad = || ApiError::new(ErrorCode::Unauthorized, "invalid credentials");
        let raw = STANDARD.decode(b64.trim()).map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let (user, pw) = raw.split_once(':').ok_or_else(bad)?;
        if self.check_password(user, pw) {
            Ok(Some(Identity::User(user.to_owned())))
        } else {
            Err(bad())
        }
    }

    fn realm(&self, host: Option<&str>, tls: bool) -> String {
        match &self.cfg.realm {
            Some(r) => r.clone(),
            None => format!(
                "{}://{}/token",
                if tls { "https" } else { "http" },
                host.unwrap_or("localhost")
            ),
        }
    }

    fn challenge(&self, need: &Need, host: Option<&str>, tls: bool, err: Option<&str>) -> String {
        match self.cfg.mode {
            AuthMode::Token => {
                let mut s = format!(
                    "Bearer realm=\"{}\",service=\"{}\"",
                    self.realm(host, tls),
                    self.cfg.service
                );
                match need {
                    Need::Base => {}
                    Need::Catalog => s.push_str(",scope=\"registry:catalog:*\""),
                    Need::Repo(name, action) => {
                        s.push_str(&format!(",scope=\"repository:{name}:{}\"", action.as_str()));
                    }
                }
                if let Some(e) = err {
                    s.push_str(&format!(",error=\"{e}\""));
                }
                s
            }
            _ => format!("Basic realm=\"{}\"", self.cfg.service),
        }
    }

    /// Checks a request. Returns who is asking, or the 401/403 to answer.
    pub fn authorize(
        &self,
        headers: &HeaderMap,
        host: Option<&str>,
        tls: bool,
        need: &Need,
    ) -> Result<Identity, ApiError> {
        if self.cfg.mode == AuthMode::None {
            return Ok(Identity::Anonymous);
        }
        let unauthorized = |err: Option<&str>, msg: &str| {
            ApiError::new(ErrorCode::Unauthorized, msg)
                .with_header("WWW-Authenticate", self.challenge(need, host, tls, err))
        };
        // Bearer tokens carry their own grants.
        if self.cfg.mode == AuthMode::Token
            && let Some(tok) = headers
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
        {
            let Some(claims) = self.verify_token(tok.trim()) else {
                return Err(unauthorized(
                    Some("invalid_token"),
                    "invalid or expired token",
                ));
            };
            let who = Identity::User(claims.sub.clone());
            let ok = match need {
                Need::Base => true,
                Need::Catalog => claims
                    .access
                    .iter()
                    .any(|a| a.kind == "registry" && a.name == "catalog"),
                Need::Repo(name, action) => claims.access.iter().any(|a| {
                    a.kind == "repository"
                        && &a.name == name
                        && a.actions.iter().any(|x| x == action.as_str())
                }),
            };
            return if ok {
                Ok(who)
            } else {
                Err(unauthorized(
                    Some("insufficient_scope"),
                    "the token does not grant this access",
                ))
            };
        }
        let who = match self.basic(headers) {
            Ok(Some(who)) => who,
            // Token clients learn the realm from a 401 on their first request
            // (`/v2/`) and then fetch a token, even an anonymous one: answering
            // anonymous requests without a challenge would stop that flow.
            Ok(None) if self.cfg.mode == AuthMode::Token => {
                return Err(unauthorized(None, "a bearer token is required"));
            }
            Ok(None) => Identity::Anonymous,
            Err(e) => {
                return Err(
                    e.with_header("WWW-Authenticate", self.challenge(need, host, tls, None))
                );
            }
        };
        let ok = match need {
            Need::Base => self.base_allowed(&who),
            Need::Catalog => self.catalog_allowed(&who),
            Need::Repo(name, action) => self.allowed(&who, name, *action),
        };
        match (ok, &who) {
            (true, _) => Ok(who),
            (false, Identity::Anonymous) => Err(unauthorized(None, "authentication required")),
            (false, Identity::User(u)) => Err(ApiError::new(
                ErrorCode::Denied,
                format!("{u} may not access this resource"),
            )),
        }
    }

    fn verify_token(&self, tok: &str) -> Option<Claims> {
        let (body, sig) = tok.split_once('.')?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        if !ct_eq(&sig, &hmac(&self.key, body.as_bytes())) {
            return None;
        }
        let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
        (claims.exp > now_secs() && claims.aud == self.cfg.service).then_some(claims)
    }

    fn sign(&self, claims: &Claims) -> String {
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let sig = URL_SAFE_NO_PAD.encode(hmac(&self.key, body.as_bytes()));
        format!("{body}.{sig}")
    }

    /// Serves `/token`: authenticates basic credentials (or none: anonymous)
    /// and issues a token for the requested scopes, narrowed to the policy.
    pub fn issue_token(
        &self,
        headers: &HeaderMap,
        query: &[(String, String)],
    ) -> Result<serde_json::Value, ApiError> {
        if self.cfg.mode != AuthMode::Token {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                "token auth is not enabled",
            ));
        }
        let who = match self.basic(headers)? {
            Some(w) => w,
            None => Identity::Anonymous,
        };
        let mut access: Vec<AccessEntry> = Vec::new();
        for (k, v) in query {
            if k != "scope" {
                continue;
            }
            // Several scopes may also be space-separated in one parameter.
            for scope in v.split(' ').filter(|s| !s.is_empty()) {
                let Some((kind, rest)) = scope.split_once(':') else {
                    continue;
                };
                let Some((name, actions)) = rest.rsplit_once(':') else {
                    continue;
                };
                match kind {
                    "repository" if crate::routes::valid_name(name) => {
                        let mut granted: Vec<String> = actions
                            .split(',')
                            .filter_map(Action::parse)
                            .filter(|a| self.allowed(&who, name, *a))
                            .map(|a| a.as_str().to_owned())
                            .collect();
                        if actions.split(',').any(|a| a == "*") {
                            for a in [Action::Pull, Action::Push, Action::Delete] {
                                if self.allowed(&who, name, a) {
                                    granted.push(a.as_str().to_owned());
                                }
                            }
                        }
                        granted.sort();
                        granted.dedup();
                        access.push(AccessEntry {
                            kind: "repository".into(),
                            name: name.to_owned(),
                            actions: granted,
                        });
                    }
                    "registry" if name == "catalog" && self.catalog_allowed(&who) => {
                        access.push(AccessEntry {
                            kind: "registry".into(),
                            name: "catalog".into(),
                            actions: vec!["*".into()],
                        });
                    }
                    _ => {}
                }
            }
        }
        let iat = now_secs();
        let claims = Claims {
            iss: "berth".into(),
            sub: who.name().to_owned(),
            aud: self.cfg.service.clone(),
            exp: iat + self.cfg.token_ttl_secs,
            iat,
            access,
        };
        let token = self.sign(&claims);
        let issued = time_rfc3339(iat);
        Ok(serde_json::json!({
            "token": token,
            "access_token": token,
            "expires_in": self.cfg.token_ttl_secs,
            "issued_at": issued,
        }))
    }
}

/// Seconds since the epoch as an RFC 3339 UTC timestamp.
fn time_rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(user: &str, pw: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = format!("Basic {}", STANDARD.encode(format!("{user}:{pw}")));
        h.insert(AUTHORIZATION, v.parse().unwrap());
        h
    }

    fn auth(mode: AuthMode, grants: Vec<Grant>, anonymous_pull: bool) -> Auth {
        let mut a = Auth::new(&AuthConfig {
            mode,
            grants,
            anonymous_pull,
            ..AuthConfig::default()
        })
        .unwrap();
        a.users
            .insert("alice".into(), bcrypt::hash("secret", 4).unwrap());
        a.users.insert("bob".into(), bcrypt::hash("pw", 4).unwrap());
        a
    }

    #[test]
    fn hmac_matches_rfc4231_style_vector() {
        // HMAC-SHA256 with a 32-byte key of 0x0b... (RFC 4231 case 1 uses 20
        // bytes; pad our key the same way HMAC does: zero-extended).
        let mut key = [0u8; 32];
        key[..20].copy_from_slice(&[0x0b; 20]);
        assert_eq!(
            hex::encode(hmac(&key, b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }

    #[test]
    fn globs_and_timestamps() {
        assert!(glob("*", "a/b"));
        assert!(glob("team/*", "team/x/y"));
        assert!(!glob("team/*", "teamx"));
        assert!(glob("a*c*e", "abcde"));
        assert!(!glob("a*c*e", "abcdf"));
        assert_eq!(time_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(time_rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn basic_policy() {
        let grants = vec![
            Grant::parse_flag("alice:team/*:pull,push").unwrap(),
            Grant::parse_flag("*:public/*:pull").unwrap(),
            Grant::parse_flag("anonymous:open:pull").unwrap(),
        ];
        let a = auth(AuthMode::Basic, grants, false);
        let need = |r: &str, x| Need::Repo(r.into(), x);
        assert!(
            a.authorize(
                &hdr("alice", "secret"),
                None,
                false,
                &need("team/x", Action::Push)
            )
            .is_ok()
        );
        let e = a
            .authorize(
                &hdr("alice", "secret"),
                None,
                false,
                &need("team/x", Action::Delete),
            )
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::Denied);
        assert!(
            a.authorize(
                &hdr("bob", "pw"),
                None,
                false,
                &need("public/x", Action::Pull)
            )
            .is_ok()
        );
        let e = a
            .authorize(&hdr("bob", "nope"), None, false, &Need::Base)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::Unauthorized);
        let e = a
            .authorize(
                &HeaderMap::new(),
                None,
                false,
                &need("team/x", Action::Pull),
            )
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::Unauthorized);
        assert!(
            e.headers
                .iter()
                .any(|(k, v)| *k == "WWW-Authenticate" && v.starts_with("Basic"))
        );
        assert!(
            a.authorize(&HeaderMap::new(), None, false, &need("open", Action::Pull))
                .is_ok()
        );
        // The second check hits the cache and agrees.
        assert!(
            a.authorize(&hdr("alice", "secret"), None, false, &Need::Base)
                .is_ok()
        );
        assert!(
            a.authorize(&hdr("alice", "secret2"), None, false, &Need::Base)
                .is_err()
        );
    }

    #[test]
    fn tokens_carry_narrowed_grants() {
        let grants = vec![Grant::parse_flag("alice:team/*:pull,push").unwrap()];
        let a = auth(AuthMode::Token, grants, true);
        let q = |s: &str| vec![("scope".to_owned(), s.to_owned())];
        let resp = a
            .issue_token(
                &hdr("alice", "secret"),
                &q("repository:team/x:pull,push,delete"),
            )
            .unwrap();
        let tok = resp["token"].as_str().unwrap();
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, format!("Bearer {tok}").parse().unwrap());
        let need = |r: &str, x| Need::Repo(r.into(), x);
        assert!(
            a.authorize(&h, None, false, &need("team/x", Action::Push))
                .is_ok()
        );
        let e = a
            .authorize(&h, Some("h:1"), false, &need("team/x", Action::Delete))
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::Unauthorized);
        let chall = &e.headers[0].1;
        assert!(chall.contains("realm=\"http://h:1/token\""), "{chall}");
        assert!(
            chall.contains("scope=\"repository:team/x:delete\""),
            "{chall}"
        );
        assert!(
            a.authorize(&h, None, false, &need("other", Action::Pull))
                .is_err()
        );
        // Anonymous pull: a token without credentials grants pull only.
        let resp = a
            .issue_token(&HeaderMap::new(), &q("repository:other:pull,push"))
            .unwrap();
        let tok = resp["token"].as_str().unwrap();
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, format!("Bearer {tok}").parse().unwrap());
        assert!(
            a.authorize(&h, None, false, &need("other", Action::Pull))
                .is_ok()
        );
        assert!(
            a.authorize(&h, None, false, &need("other", Action::Push))
                .is_err()
        );
        // Tampered tokens are refused.
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, format!("Bearer x{tok}").parse().unwrap());
        assert!(a.authorize(&h, None, false, &Need::Base).is_err());
        // Wrong password at the token endpoint.
        assert!(
            a.issue_token(&hdr("alice", "bad"), &q("repository:team/x:pull"))
                .is_err()
        );
    }
}
