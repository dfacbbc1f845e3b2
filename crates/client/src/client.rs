//! The HTTP core: one [`Client`] per process, shared by every transfer.
//!
//! A request goes through [`Client::send`], which (1) pings the registry
//! once to learn its URL scheme and how it authenticates, (2) attaches the
//! right `Authorization` (a cached token for the request's scopes, or basic
//! credentials), (3) answers a 401 by re-authenticating once, and (4)
//! retries connection errors, 5xx and 429 answers with exponential backoff.
//! Callers see a response whose status is neither 401 nor a transient
//! failure; they decide what 404 or 202 means.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use reqwest::{Method, RequestBuilder, Response};

use crate::auth::{AuthCache, Challenge, Credential, Scheme};
use crate::error::{Error, Result};
use crate::options::ClientOptions;

/// A registry client. Cheap to clone; clones share connections, tokens and
/// learnt registry schemes.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// HTTPS with verified certificates (and plain HTTP).
    http: reqwest::Client,
    /// HTTPS without certificate verification, for insecure registries only.
    http_unverified: reqwest::Client,
    opts: ClientOptions,
    auth: AuthCache,
    /// registry → base URL (`https://host` or `http://host`), once pinged.
    bases: Mutex<HashMap<String, String>>,
    /// Serialises pings per registry so parallel transfers ping once.
    ping_lock: tokio::sync::Mutex<()>,
    /// registry → credential, looked up once (helpers are processes).
    credentials: Mutex<HashMap<String, Option<Credential>>>,
    /// (registry, verify) → an HTTPS client with the registry's own
    /// `certs.d` trust (CA roots, client certificate); `None` when the
    /// registry has no such settings and the shared clients serve it.
    tls: Mutex<HashMap<(String, bool), Option<reqwest::Client>>>,
}

/// The settings every HTTP client of a [`Client`] shares.
fn builder(opts: &ClientOptions) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(opts.user_agent.clone())
        .connect_timeout(opts.connect_timeout)
        .read_timeout(opts.read_timeout)
        .pool_max_idle_per_host(16)
        .tcp_nodelay(true)
}

/// Docker Hub's API host: references say `docker.io`.
pub fn api_host(registry: &str) -> &str {
    if registry == berth_oci::reference::DEFAULT_DOMAIN {
        "registry-1.docker.io"
    } else {
        registry
    }
}

/// The first error in a distribution error body (`{"errors":[{code,message}]}`).
pub(crate) fn error_body(bytes: &[u8]) -> (Option<String>, Option<String>) {
    #[derive(serde::Deserialize)]
    struct Body {
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        code: Option<String>,
        message: Option<String>,
    }
    match serde_json::from_slice::<Body>(bytes) {
        Ok(b) => match b.errors.into_iter().next() {
            Some(i) => (i.code, i.message.filter(|m| !m.is_empty())),
            None => (None, None),
        },
        Err(_) => {
            let text = String::from_utf8_lossy(bytes);
            let t = text.trim();
            (None, (!t.is_empty() && t.len() < 300).then(|| t.to_owned()))
        }
    }
}

/// Reads a (bounded) body, ignoring read errors: for error reports only.
pub(crate) async fn small_body(mut resp: Response) -> Vec<u8> {
    let mut out = Vec::new();
    while let Ok(Some(c)) = resp.chunk().await {
        out.extend_from_slice(&c);
        if out.len() > 64 << 10 {
            break;
        }
    }
    out
}

/// Turns an unexpected response into an [`Error::Status`] (or a more
/// specific variant), reading the error JSON from its body.
pub(crate) async fn status_error(method: &Method, resp: Response, registry: &str) -> Error {
    let status = resp.status().as_u16();
    let url = resp.url().to_string();
    let (code, message) = error_body(&small_body(resp).await);
    match status {
        403 => Error::Denied {
            registry: registry.to_owned(),
            code,
            message,
        },
        _ => Error::Status {
            method: method.to_string(),
            url,
            status,
            code,
            message,
        },
    }
}

fn pick_challenge(resp: &Response) -> Option<Challenge> {
    let mut basic = None;
    for v in resp.headers().get_all(reqwest::header::WWW_AUTHENTICATE) {
        match v.to_str().ok().and_then(Challenge::parse) {
            Some(c @ Challenge::Bearer { .. }) => return Some(c),
            Some(c) => basic = basic.or(Some(c)),
            None => {}
        }
    }
    basic
}

fn retry_after(resp: &Response) -> Option<std::time::Duration> {
    let secs: u64 = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (secs <= 30).then(|| std::time::Duration::from_secs(secs))
}

impl Client {
    /// Builds a client. Installs the `ring` TLS provider as the process
    /// default if there is none yet.
    pub fn new(opts: ClientOptions) -> Result<Client> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = builder(&opts).build().map_err(Error::Setup)?;
        let http_unverified = builder(&opts)
            .tls_danger_accept_invalid_certs(true)
            .build()
            .map_err(Error::Setup)?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                http_unverified,
                opts,
                auth: AuthCache::new(),
                bases: Mutex::new(HashMap::new()),
                ping_lock: tokio::sync::Mutex::new(()),
                credentials: Mutex::new(HashMap::new()),
                tls: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// A client with the user's settings ([`ClientOptions::from_env`]).
    pub fn from_env() -> Result<Client> {
        Client::new(ClientOptions::from_env()?)
    }

    pub fn options(&self) -> &ClientOptions {
        &self.inner.opts
    }

    /// The authentication state (schemes and tokens learnt so far).
    pub fn auth_cache(&self) -> &AuthCache {
        &self.inner.auth
    }

    /// The underlying HTTP client for `registry` at `base`: for HTTPS, one
    /// with the registry's `certs.d` settings if it has any ([`crate::tls`]),
    /// not verifying certificates for insecure registries.
    fn http_for(&self, registry: &str, base: &str) -> Result<reqwest::Client> {
        if !base.starts_with("https:") {
            return Ok(self.inner.http.clone());
        }
        let verify = !self.inner.opts.is_insecure(registry);
        let key = (registry.to_owned(), verify);
        if let Some(c) = self.inner.tls.lock().unwrap().get(&key) {
            return Ok(self.shared_or(c.clone(), verify));
        }
        let host = api_host(registry);
        let names: Vec<&str> = if host == registry {
            vec![registry]
        } else {
            vec![registry, host]
        };
        let settings = crate::tls::load(&self.inner.opts.certs_dirs, &names)?;
        let client = if settings.is_empty() {
            None
        } else {
            let mut b = builder(&self.inner.opts)
                .tls_certs_merge(settings.roots)
                .tls_danger_accept_invalid_certs(!verify);
            if let Some(id) = settings.identity {
                b = b.identity(id);
            }
            Some(b.build().map_err(Error::Setup)?)
        };
        self.inner.tls.lock().unwrap().insert(key, client.clone());
        Ok(self.shared_or(client, verify))
    }

    fn shared_or(&self, own: Option<reqwest::Client>, verify: bool) -> reqwest::Client {
        match own {
            Some(c) => c,
            None if verify => self.inner.http.clone(),
            None => self.inner.http_unverified.clone(),
        }
    }

    /// An [`Error::Http`] for a failed request, or the TLS error it really
    /// is (an untrusted certificate, a refused handshake), which says where
    /// the registry's certificates go.
    pub(crate) fn http_error(
        &self,
        registry: &str,
        method: &str,
        url: &str,
        source: reqwest::Error,
    ) -> Error {
        let dirs = self.inner.opts.certs_dirs.clone();
        match crate::tls::classify(&source) {
            Some(crate::tls::TlsFailure::Untrusted(reason)) => Error::UntrustedCertificate {
                registry: registry.to_owned(),
                url: url.to_owned(),
                reason,
                dirs,
            },
            Some(crate::tls::TlsFailure::Handshake(reason)) => Error::TlsHandshake {
                registry: registry.to_owned(),
                url: url.to_owned(),
                reason,
                dirs,
            },
            None => Error::Http {
                method: method.to_owned(),
                url: url.to_owned(),
                source,
            },
        }
    }

    /// The credential configured for `registry`, looked up once per client.
    pub fn credential(&self, registry: &str) -> Result<Option<Credential>> {
        if let Some(c) = self.inner.credentials.lock().unwrap().get(registry) {
            return Ok(c.clone());
        }
        let c = self.inner.opts.credentials.get(registry)?;
        self.inner
            .credentials
            .lock()
            .unwrap()
            .insert(registry.to_owned(), c.clone());
        Ok(c)
    }

    /// Uses `credential` for `registry` instead of the configured ones (for
    /// `login`, which checks credentials before storing them).
    pub fn set_credential(&self, registry: &str, credential: Option<Credential>) {
        self.inner
            .credentials
            .lock()
            .unwrap()
            .insert(registry.to_owned(), credential);
    }

    /// The base URL of `registry` (`https://host` or, for insecure ones or
    /// ones pinned to `http://`, possibly `http://host`), pinging `/v2/` the
    /// first time to learn it and the registry's authentication scheme.
    pub async fn base_url(&self, registry: &str) -> Result<String> {
        if let Some(b) = self.inner.bases.lock().unwrap().get(registry) {
            return Ok(b.clone());
        }
        let _serial = self.inner.ping_lock.lock().await;
        if let Some(b) = self.inner.bases.lock().unwrap().get(registry) {
            return Ok(b.clone());
        }
        let host = api_host(registry);
        // A scheme the user wrote is the only one tried; otherwise HTTPS,
        // then plain HTTP for loopback and insecure registries.
        let candidates: Vec<String> = match self.inner.opts.transport(registry) {
            Some(t) => vec![format!("{}://{host}", t.as_str())],
            None if self.inner.opts.is_insecure(registry) => {
                vec![format!("https://{host}"), format!("http://{host}")]
            }
            None => vec![format!("https://{host}")],
        };
        let mut last_err = None;
        for (i, base) in candidates.iter().enumerate() {
            let fallback_left = i + 1 < candidates.len();
            match self.ping_base(registry, base, !fallback_left).await {
                Ok(scheme) => {
                    self.inner.auth.set_scheme(registry, scheme);
                    self.inner
                        .bases
                        .lock()
                        .unwrap()
                        .insert(registry.to_owned(), base.clone());
                    return Ok(base.clone());
                }
                // Only a failure to talk HTTPS at all moves on to plain HTTP.
                Err(
                    e @ (Error::Http { .. }
                    | Error::UntrustedCertificate { .. }
                    | Error::TlsHandshake { .. }),
                ) if fallback_left => last_err = Some(e),
                // If plain HTTP fails too, a TLS problem is the better report.
                Err(e) => {
                    return Err(match last_err {
                        Some(
                            tls @ (Error::UntrustedCertificate { .. } | Error::TlsHandshake { .. }),
                        ) => tls,
                        _ => e,
                    });
                }
            }
        }
        Err(last_err.expect("at least one candidate"))
    }

    async fn ping_base(&self, registry: &str, base: &str, retry: bool) -> Result<Scheme> {
        let url = format!("{base}/v2/");
        let http = self.http_for(registry, base)?;
        let policy = self.inner.opts.retry;
        let mut attempt = 0;
        loop {
            let result = http.get(&url).send().await;
            let resp = match result {
                Ok(r) => r,
                Err(e) => {
                    let err = self.http_error(registry, "GET", &url, e);
                    if retry && err.is_transient() && attempt + 1 < policy.attempts {
                        tokio::time::sleep(policy.delay(attempt)).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(err);
                }
            };
            let status = resp.status().as_u16();
            match status {
                200..=299 => return Ok(Scheme::None),
                401 => {
                    return match pick_challenge(&resp) {
                        Some(Challenge::Basic { .. }) => Ok(Scheme::Basic),
                        Some(Challenge::Bearer { realm, service, .. }) => {
                            Ok(Scheme::Bearer { realm, service })
                        }
                        None => Err(Error::Challenge {
                            registry: registry.to_owned(),
                            header: resp
                                .headers()
                                .get(reqwest::header::WWW_AUTHENTICATE)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_owned(),
                        }),
                    };
                }
                s if (s >= 500 || s == 429) && attempt + 1 < policy.attempts => {
                    let wait = retry_after(&resp).unwrap_or(policy.delay(attempt));
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                _ => return Err(status_error(&Method::GET, resp, registry).await),
            }
        }
    }

    /// Checks that `credential` (or the configured one) is accepted by
    /// `registry`: pings, then authenticates without a scope, as
    /// `docker login` does.
    pub async fn login(&self, registry: &str) -> Result<()> {
        let base = self.base_url(registry).await?;
        let cred = self.credential(registry)?;
        let scheme = self.inner.auth.scheme(registry).unwrap_or(Scheme::None);
        let http = self.http_for(registry, &base)?;
        let http = &http;
        let allow_http = self.inner.opts.is_insecure(registry);
        if base.starts_with("http:") && !allow_http && cred.is_some() && scheme != Scheme::None {
            return Err(Error::InsecureRealm {
                registry: registry.to_owned(),
                url: base,
            });
        }
        let unauthorized = |message: &str| Error::Unauthorized {
            registry: registry.to_owned(),
            code: None,
            message: Some(message.to_owned()),
            anonymous: cred.is_none(),
        };
        match scheme {
            // Nothing to check against: the registry lets anyone in.
            Scheme::None => Ok(()),
            Scheme::Bearer { realm, service } => {
                if cred.is_none() {
                    return Err(unauthorized("no credentials given"));
                }
                crate::auth::fetch_token(
                    http,
                    registry,
                    &realm,
                    service.as_deref(),
                    &[],
                    cred.as_ref(),
                    allow_http,
                )
                .await
                .map(drop)
            }
            Scheme::Basic => {
                let header = cred
                    .as_ref()
                    .and_then(Credential::basic_header)
                    .ok_or_else(|| unauthorized("no credentials given"))?;
                let url = format!("{base}/v2/");
                let resp = http
                    .get(&url)
                    .header(reqwest::header::AUTHORIZATION, header)
                    .send()
                    .await
                    .map_err(|e| self.http_error(registry, "GET", &url, e))?;
                match resp.status().as_u16() {
                    200..=299 => Ok(()),
                    401 => Err(unauthorized("the registry refused the credentials")),
                    _ => Err(status_error(&Method::GET, resp, registry).await),
                }
            }
        }
    }

    /// Sends a request to `registry` with authentication and retries.
    ///
    /// `target` is a path starting with `/v2/` or an absolute URL (an upload
    /// `Location`). `build` adds headers and a body; it is called again for
    /// each retry, so bodies must be re-creatable. `scopes` are the token
    /// scopes the request needs. 401 (after one re-authentication), 403 and
    /// transient failures (after the retries) are errors; any other status
    /// is returned for the caller to judge.
    pub async fn send(
        &self,
        registry: &str,
        scopes: &[String],
        method: Method,
        target: &str,
        build: &(dyn Fn(RequestBuilder) -> RequestBuilder + Sync),
    ) -> Result<Response> {
        self.send_with(registry, scopes, method, target, build, true)
            .await
    }

    /// Like [`Client::send`] without retrying transient failures (only the
    /// re-authentication after a 401): for requests that must not be
    /// repeated blindly, such as the steps of an upload session.
    pub async fn send_once(
        &self,
        registry: &str,
        scopes: &[String],
        method: Method,
        target: &str,
        build: &(dyn Fn(RequestBuilder) -> RequestBuilder + Sync),
    ) -> Result<Response> {
        self.send_with(registry, scopes, method, target, build, false)
            .await
    }

    async fn send_with(
        &self,
        registry: &str,
        scopes: &[String],
        method: Method,
        target: &str,
        build: &(dyn Fn(RequestBuilder) -> RequestBuilder + Sync),
        retry: bool,
    ) -> Result<Response> {
        let base = self.base_url(registry).await?;
        let url = if target.starts_with("http://") || target.starts_with("https://") {
            target.to_owned()
        } else {
            format!("{base}{target}")
        };
        let http = self.http_for(registry, &base)?;
        let http = &http;
        let allow_http = self.inner.opts.is_insecure(registry);
        let configured = self.credential(registry)?;
        // Credentials never travel over plain HTTP to a registry that is
        // neither loopback nor insecure (reachable so only by a pinned
        // `http://`): such requests are anonymous.
        let plain_refused = base.starts_with("http:") && !allow_http;
        let cred = if plain_refused {
            None
        } else {
            configured.clone()
        };
        let policy = if retry {
            self.inner.opts.retry
        } else {
            crate::options::RetryPolicy {
                attempts: 1,
                ..self.inner.opts.retry
            }
        };
        let mut scopes: Vec<String> = scopes.to_vec();
        // Credentials go only to the registry itself, never to another
        // origin an upload Location may point at.
        let same_origin = match (url::Url::parse(&url), url::Url::parse(&base)) {
            (Ok(u), Ok(b)) => u.origin() == b.origin(),
            _ => false,
        };
        let mut reauthenticated = false;
        let mut attempt = 0;
        loop {
            let authz = if same_origin {
                self.inner
                    .auth
                    .authorization(http, registry, &scopes, cred.as_ref(), allow_http)
                    .await?
            } else {
                None
            };
            let mut rb = build(http.request(method.clone(), &url));
            if let Some(a) = authz {
                rb = rb.header(reqwest::header::AUTHORIZATION, a);
            }
            let resp = match rb.send().await {
                Ok(r) => r,
                Err(e) => {
                    let err = self.http_error(registry, method.as_str(), &url, e);
                    if err.is_transient() && attempt + 1 < policy.attempts {
                        tokio::time::sleep(policy.delay(attempt)).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(err);
                }
            };
            let status = resp.status().as_u16();
            if status == 401 {
                if !reauthenticated {
                    reauthenticated = true;
                    self.inner.auth.drop_token(registry, &scopes);
                    let again = match pick_challenge(&resp) {
                        Some(Challenge::Bearer {
                            realm,
                            service,
                            scopes: wanted,
                            ..
                        }) => {
                            self.inner
                                .auth
                                .set_scheme(registry, Scheme::Bearer { realm, service });
                            for s in wanted {
                                if !scopes.contains(&s) {
                                    scopes.push(s);
                                }
                            }
                            true
                        }
                        Some(Challenge::Basic { .. }) => {
                            self.inner.auth.set_scheme(registry, Scheme::Basic);
                            cred.is_some()
                        }
                        None => false,
                    };
                    if again {
                        continue;
                    }
                }
                if plain_refused && configured.is_some() {
                    return Err(Error::InsecureRealm {
                        registry: registry.to_owned(),
                        url,
                    });
                }
                let (code, message) = error_body(&small_body(resp).await);
                return Err(Error::Unauthorized {
                    registry: registry.to_owned(),
                    code,
                    message,
                    anonymous: cred.is_none(),
                });
            }
            if (status >= 500 || status == 429) && attempt + 1 < policy.attempts {
                let wait = retry_after(&resp).unwrap_or(policy.delay(attempt));
                drop(resp);
                tokio::time::sleep(wait).await;
                attempt += 1;
                continue;
            }
            if status >= 500 || status == 429 || status == 403 {
                return Err(status_error(&method, resp, registry).await);
            }
            return Ok(resp);
        }
    }
}
