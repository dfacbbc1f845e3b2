//! Registry authentication: `WWW-Authenticate` challenges, HTTP basic auth
//! and Docker's bearer-token flow, with tokens cached per registry and scope.
//!
//! The flow, as Docker and containerd do it: a request (usually the `/v2/`
//! ping) answers 401 with a challenge. `Basic` means "send credentials on
//! every request". `Bearer realm=…,service=…` means "get a token from the
//! realm for the scopes you need (`repository:NAME:pull,push`), then send it
//! as `Authorization: Bearer`". Tokens are fetched with the credentials (or
//! anonymously), cached until shortly before they expire, and reused for
//! every request needing the same scopes.
//!
//! This module is public so other berth crates (the pull-through mirror) can
//! authenticate to upstreams the same way; it knows nothing about images.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use crate::error::{Error, Result};

/// What the client may authenticate with.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A user name and password (or personal access token).
    Basic { username: String, password: String },
    /// An OAuth2 refresh token (`identitytoken` in Docker's config), exchanged
    /// at the realm for access tokens.
    IdentityToken(String),
    /// A bearer token to send as it is (`registrytoken` in Docker's config).
    RegistryToken(String),
}

impl fmt::Debug for Credential {
    // Never print secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .finish_non_exhaustive(),
            Credential::IdentityToken(_) => f.write_str("IdentityToken(..)"),
            Credential::RegistryToken(_) => f.write_str("RegistryToken(..)"),
        }
    }
}

impl Credential {
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Credential {
        Credential::Basic {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The `Authorization` value for HTTP basic auth, if this is a password.
    pub fn basic_header(&self) -> Option<String> {
        match self {
            Credential::Basic { username, password } => Some(format!(
                "Basic {}",
                STANDARD.encode(format!("{username}:{password}"))
            )),
            _ => None,
        }
    }
}

/// One authentication challenge from a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic {
        realm: Option<String>,
    },
    Bearer {
        realm: String,
        service: Option<String>,
        /// Scopes the server says the failed request needed.
        scopes: Vec<String>,
        /// `invalid_token`, `insufficient_scope`, ...
        error: Option<String>,
    },
}

impl Challenge {
    /// Parses a `WWW-Authenticate` value. Unknown schemes and malformed
    /// parameters yield `None`.
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = match header.find(char::is_whitespace) {
            Some(i) => (&header[..i], header[i..].trim_start()),
            None => (header, ""),
        };
        let params = parse_params(rest)?;
        let get = |k: &str| {
            params
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        if scheme.eq_ignore_ascii_case("basic") {
            Some(Challenge::Basic {
                realm: get("realm"),
            })
        } else if scheme.eq_ignore_ascii_case("bearer") {
            Some(Challenge::Bearer {
                realm: get("realm")?,
                service: get("service"),
                scopes: get("scope")
                    .map(|s| {
                        s.split(' ')
                            .filter(|x| !x.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
                error: get("error"),
            })
        } else {
            None
        }
    }
}

/// `k=v, k="quoted, v"` pairs (RFC 7235 auth-params).
fn parse_params(s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    loop {
        while i < b.len() && (b[i] == b',' || b[i].is_ascii_whitespace()) {
            i += 1;
        }
        if i >= b.len() {
            return Some(out);
        }
        let start = i;
        while i < b.len() && b[i] != b'=' && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = s[start..i].to_owned();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' {
            return None;
        }
        i += 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            loop {
                match b.get(i) {
                    None => return None,
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if i + 1 < b.len() => {
                        value.push(b[i + 1] as char);
                        i += 2;
                    }
                    Some(_) => {
                        // Copy one UTF-8 character.
                        let ch = s[i..].chars().next()?;
                        value.push(ch);
                        i += ch.len_utf8();
                    }
                }
            }
        } else {
            let vs = i;
            while i < b.len() && b[i] != b',' && !b[i].is_ascii_whitespace() {
                i += 1;
            }
            value.push_str(&s[vs..i]);
        }
        out.push((key, value));
    }
}

/// An action on a repository, as written in token scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Pull,
    Push,
}

/// The scope `repository:NAME:ACTIONS` for a repository path.
pub fn repository_scope(path: &str, actions: &[Action]) -> String {
    let mut acts: Vec<&str> = actions
        .iter()
        .map(|a| match a {
            Action::Pull => "pull",
            Action::Push => "push",
        })
        .collect();
    acts.sort_unstable();
    acts.dedup();
    format!("repository:{path}:{}", acts.join(","))
}

/// A bearer token and when to stop using it.
#[derive(Clone)]
pub struct Token {
    pub value: String,
    pub expires: Instant,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

/// Tokens live at least this long when the server does not say (the
/// distribution spec's default).
const DEFAULT_TOKEN_TTL: u64 = 60;
/// Tokens are renewed this long before they expire, so a request does not
/// carry a token that dies on the way.
const TOKEN_MARGIN: Duration = Duration::from_secs(10);

/// Fetches a token from `realm` for `scopes`: `GET realm?service=&scope=`
/// with basic credentials (or none), or the OAuth2 refresh-token grant
/// (`POST`) for an identity token. `allow_http` permits a plain-HTTP realm
/// (only for hosts the user marked insecure, or loopback).
pub async fn fetch_token(
    http: &reqwest::Client,
    registry: &str,
    realm: &str,
    service: Option<&str>,
    scopes: &[String],
    credential: Option<&Credential>,
    allow_http: bool,
) -> Result<Token> {
    let terr = |message: String| Error::Token {
        realm: realm.to_owned(),
        message,
    };
    let url = url::Url::parse(realm).map_err(|e| terr(format!("invalid realm URL: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http || credential.is_none() => {}
        "http" => {
            return Err(Error::InsecureRealm {
                registry: registry.to_owned(),
                url: realm.to_owned(),
            });
        }
        other => return Err(terr(format!("unsupported realm scheme {other:?}"))),
    }
    let request = match credential {
        Some(Credential::RegistryToken(t)) => {
            return Ok(Token {
                value: t.clone(),
                expires: Instant::now() + Duration::from_secs(3600),
            });
        }
        Some(Credential::IdentityToken(refresh)) => {
            let mut form: Vec<(&str, &str)> = vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh),
                ("client_id", "berth"),
            ];
            if let Some(s) = service {
                form.push(("service", s));
            }
            let scope = scopes.join(" ");
            if !scope.is_empty() {
                form.push(("scope", &scope));
            }
            let body = form
                .iter()
                .map(|(k, v)| format!("{k}={}", form_encode(v)))
                .collect::<Vec<_>>()
                .join("&");
            http.post(url.clone())
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body)
        }
        basic => {
            let mut u = url.clone();
            {
                let mut q = u.query_pairs_mut();
                if let Some(s) = service {
                    q.append_pair("service", s);
                }
                for s in scopes {
                    q.append_pair("scope", s);
                }
                if let Some(Credential::Basic { username, .. }) = basic {
                    q.append_pair("account", username);
                }
            }
            let mut r = http.get(u);
            if let Some(h) = basic.and_then(Credential::basic_header) {
                r = r.header("Authorization", h);
            }
            r
        }
    };
    let resp = request.send().await.map_err(|e| Error::Http {
        method: "GET".into(),
        url: realm.to_owned(),
        source: e,
    })?;
    let status = resp.status().as_u16();
    if status == 401 || status == 403 {
        return Err(Error::Unauthorized {
            registry: registry.to_owned(),
            code: None,
            message: Some(format!(
                "the token server at {realm} refused the credentials"
            )),
            anonymous: credential.is_none(),
        });
    }
    if !(200..300).contains(&status) {
        return Err(terr(format!("status {status}")));
    }
    let bytes = resp.bytes().await.map_err(|e| Error::Http {
        method: "GET".into(),
        url: realm.to_owned(),
        source: e,
    })?;
    let parsed: TokenResponse =
        serde_json::from_slice(&bytes).map_err(|e| terr(format!("invalid JSON: {e}")))?;
    let value = parsed
        .token
        .or(parsed.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| terr("no token in the response".into()))?;
    let ttl = Duration::from_secs(parsed.expires_in.unwrap_or(DEFAULT_TOKEN_TTL).max(1));
    Ok(Token {
        value,
        expires: Instant::now() + ttl.saturating_sub(TOKEN_MARGIN).max(Duration::from_secs(1)),
    })
}

fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// How a registry wants to be authenticated, as learnt from its challenges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    /// No challenge seen: send nothing.
    None,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// Per-registry authentication state: the scheme and the cached tokens,
/// keyed by the sorted set of scopes they were issued for.
#[derive(Debug, Default)]
pub struct AuthCache {
    hosts: Mutex<HashMap<String, HostState>>,
}

#[derive(Debug)]
struct HostState {
    scheme: Scheme,
    tokens: HashMap<String, Token>,
}

fn scope_key(scopes: &[String]) -> String {
    let mut s: Vec<&str> = scopes.iter().map(String::as_str).collect();
    s.sort_unstable();
    s.dedup();
    s.join(" ")
}

impl AuthCache {
    pub fn new() -> AuthCache {
        AuthCache::default()
    }

    /// The scheme learnt for `registry`, if any request has seen one yet.
    pub fn scheme(&self, registry: &str) -> Option<Scheme> {
        self.hosts
            .lock()
            .unwrap()
            .get(registry)
            .map(|h| h.scheme.clone())
    }

    /// Records what a registry's `/v2/` (or any 401) said.
    pub fn set_scheme(&self, registry: &str, scheme: Scheme) {
        let mut hosts = self.hosts.lock().unwrap();
        let h = hosts.entry(registry.to_owned()).or_insert(HostState {
            scheme: Scheme::None,
            tokens: HashMap::new(),
        });
        if h.scheme != scheme {
            h.tokens.clear();
        }
        h.scheme = scheme;
    }

    /// A cached, unexpired token for exactly these scopes.
    pub fn token(&self, registry: &str, scopes: &[String]) -> Option<String> {
        let hosts = self.hosts.lock().unwrap();
        let t = hosts.get(registry)?.tokens.get(&scope_key(scopes))?;
        (t.expires > Instant::now()).then(|| t.value.clone())
    }

    pub fn put_token(&self, registry: &str, scopes: &[String], token: Token) {
        let mut hosts = self.hosts.lock().unwrap();
        if let Some(h) = hosts.get_mut(registry) {
            h.tokens.insert(scope_key(scopes), token);
        }
    }

    /// Forgets a token the registry rejected.
    pub fn drop_token(&self, registry: &str, scopes: &[String]) {
        let mut hosts = self.hosts.lock().unwrap();
        if let Some(h) = hosts.get_mut(registry) {
            h.tokens.remove(&scope_key(scopes));
        }
    }

    /// The `Authorization` header to send to `registry` for `scopes`,
    /// fetching a token when the registry uses the token flow and none is
    /// cached. `None` when the registry wants nothing (or we have nothing to
    /// send for basic auth).
    pub async fn authorization(
        &self,
        http: &reqwest::Client,
        registry: &str,
        scopes: &[String],
        credential: Option<&Credential>,
        allow_http: bool,
    ) -> Result<Option<String>> {
        match self.scheme(registry) {
            None | Some(Scheme::None) => Ok(None),
            Some(Scheme::Basic) => match credential {
                Some(Credential::RegistryToken(t)) => Ok(Some(format!("Bearer {t}"))),
                Some(c) => Ok(c.basic_header()),
                None => Ok(None),
            },
            Some(Scheme::Bearer { realm, service }) => {
                if let Some(t) = self.token(registry, scopes) {
                    return Ok(Some(format!("Bearer {t}")));
                }
                let t = fetch_token(
                    http,
                    registry,
                    &realm,
                    service.as_deref(),
                    scopes,
                    credential,
                    allow_http,
                )
                .await?;
                let header = format!("Bearer {}", t.value);
                self.put_token(registry, scopes, t);
                Ok(Some(header))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            Challenge::parse(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scopes: vec!["repository:library/busybox:pull".into()],
                error: None,
            })
        );
        assert_eq!(
            Challenge::parse(r#"Basic realm="berth-registry""#),
            Some(Challenge::Basic {
                realm: Some("berth-registry".into())
            })
        );
        assert_eq!(
            Challenge::parse("basic"),
            Some(Challenge::Basic { realm: None })
        );
        // Several scopes in one parameter, spaces around '=' and ',', an escaped quote.
        let c = Challenge::parse(
            r#"bearer realm = "http://h/t" , scope="repository:a:pull repository:b:pull,push", error="insufficient_scope", x="q\"z""#,
        )
        .unwrap();
        match c {
            Challenge::Bearer {
                realm,
                scopes,
                error,
                service,
            } => {
                assert_eq!(realm, "http://h/t");
                assert_eq!(scopes, ["repository:a:pull", "repository:b:pull,push"]);
                assert_eq!(error.as_deref(), Some("insufficient_scope"));
                assert_eq!(service, None);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(Challenge::parse("Bearer service=x"), None, "no realm");
        assert_eq!(Challenge::parse(r#"Bearer realm="unterminated"#), None);
        assert_eq!(Challenge::parse("Negotiate abc"), None);
    }

    #[test]
    fn scopes_and_cache_keys() {
        assert_eq!(
            repository_scope("a/b", &[Action::Push, Action::Pull, Action::Push]),
            "repository:a/b:pull,push"
        );
        let cache = AuthCache::new();
        cache.set_scheme(
            "r",
            Scheme::Bearer {
                realm: "https://r/token".into(),
                service: None,
            },
        );
        let scopes = vec![
            "repository:b:pull".to_owned(),
            "repository:a:pull".to_owned(),
        ];
        cache.put_token(
            "r",
            &scopes,
            Token {
                value: "t1".into(),
                expires: Instant::now() + Duration::from_secs(60),
            },
        );
        let reversed: Vec<String> = scopes.iter().rev().cloned().collect();
        assert_eq!(cache.token("r", &reversed).as_deref(), Some("t1"));
        assert_eq!(cache.token("r", &scopes[..1]), None);
        cache.put_token(
            "r",
            &scopes[..1],
            Token {
                value: "old".into(),
                expires: Instant::now(),
            },
        );
        assert_eq!(cache.token("r", &scopes[..1]), None, "expired");
        // A new scheme invalidates tokens.
        cache.set_scheme("r", Scheme::Basic);
        assert_eq!(cache.token("r", &scopes), None);
    }

    #[test]
    fn credentials_do_not_print_secrets() {
        let c = Credential::basic("alice", "s3cret");
        assert!(!format!("{c:?}").contains("s3cret"));
        assert_eq!(
            c.basic_header().unwrap(),
            format!("Basic {}", STANDARD.encode("alice:s3cret"))
        );
        assert!(!format!("{:?}", Credential::IdentityToken("tok".into())).contains("tok"));
    }
}
