//! Talking to one upstream registry: the few distribution API calls a
//! pull-through cache needs, over the workspace's registry client
//! (`berth-client`), which owns the Docker token flow (anonymous or with
//! credentials), basic auth, the plain-HTTP policy and retries.
//!
//! What this module adds is the mirror's vocabulary: every failure becomes
//! an [`UpstreamError`] that says whether cached content may stand in for
//! the answer (an unreachable or rate-limiting upstream) or not (the
//! upstream said "not found" or "denied", or sent something invalid).
//! Blobs are returned as streaming responses, not downloaded here: the
//! mirror streams them to its clients while they arrive.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use berth_client::auth::{Action, Credential, repository_scope};
use berth_client::credentials::StaticCredentials;
use berth_client::{Client, ClientOptions, RetryPolicy, Transport};
use berth_oci::{Digest, ParsedManifest};
use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Method, Response};

use super::config::Resolved;
use crate::error::{Error, Result};

/// Why an upstream call failed, in the terms the mirror decides on.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// The upstream could not be reached or is failing (network errors,
    /// timeouts, 5xx, a failing token service): cached content may be
    /// served instead.
    #[error("{registry} is unavailable: {message}")]
    Unavailable { registry: String, message: String },
    /// The upstream rate-limits us (429): also a reason to serve the cache.
    #[error("{registry} is rate-limiting requests: {message}")]
    RateLimited { registry: String, message: String },
    /// The upstream says it does not have it.
    #[error("{registry} does not have {what}")]
    NotFound { registry: String, what: String },
    /// The upstream refused our credentials or has no access for them.
    #[error("{registry} denied access: {message}")]
    Denied { registry: String, message: String },
    /// The upstream answered something a registry must not answer
    /// (content not matching its digest included).
    #[error("{registry} sent an invalid response: {message}")]
    Invalid { registry: String, message: String },
}

impl UpstreamError {
    /// Whether cached content should be served instead of this error.
    pub(crate) fn is_unavailable(&self) -> bool {
        matches!(
            self,
            UpstreamError::Unavailable { .. } | UpstreamError::RateLimited { .. }
        )
    }
}

/// Counters of upstream traffic, for the metrics endpoint.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Calls made (each may be several HTTP requests: auth, retries).
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    /// Manifests refused for not matching their digest.
    pub digest_mismatches: AtomicU64,
}

/// One upstream registry.
#[derive(Debug)]
pub(crate) struct Upstream {
    /// The registry name clients use for it (`docker.io`).
    pub registry: String,
    /// The client's name for it: the URL's `host[:port]`.
    host: String,
    client: Client,
    pub counters: Counters,
}

impl Upstream {
    pub(crate) fn new(
        r: &Resolved,
        insecure: bool,
        io_timeout: Duration,
        max_manifest_bytes: u64,
    ) -> Result<Upstream> {
        let host = match r.base.port() {
            Some(p) => format!("{}:{p}", r.base.host_str().unwrap_or_default()),
            None => r.base.host_str().unwrap_or_default().to_owned(),
        };
        let mut creds = BTreeMap::new();
        if let Some((u, p)) = &r.credentials {
            creds.insert(host.clone(), Credential::basic(u, p));
        }
        let opts = ClientOptions {
            insecure_registries: if insecure {
                vec![host.clone()]
            } else {
                Vec::new()
            },
            // One quick retry: the mirror's own clients retry, and an
            // unreachable upstream should fall back to the cache fast.
            retry: RetryPolicy {
                attempts: 2,
                base_delay: Duration::from_millis(100),
                max_delay: Duration::from_secs(1),
            },
            credentials: Arc::new(StaticCredentials(creds)),
            max_manifest_bytes,
            user_agent: concat!("berth-mirror/", env!("CARGO_PKG_VERSION")).to_owned(),
            connect_timeout: io_timeout,
            read_timeout: io_timeout,
            // The URL's scheme is the only one used (no HTTPS try before http://).
            transports: [(
                host.clone(),
                match r.base.scheme() {
                    "http" => Transport::Http,
                    _ => Transport::Https,
                },
            )]
            .into(),
            ..ClientOptions::default()
        };
        let client = Client::new(opts).map_err(|e| {
            Error::Config(format!(
                "HTTP client for {}: {}",
                r.base,
                berth_client::error_chain(&e)
            ))
        })?;
        Ok(Upstream {
            registry: r.registry.clone(),
            host,
            client,
            counters: Counters::default(),
        })
    }

    fn scopes(repo: &str) -> Vec<String> {
        vec![repository_scope(repo, &[Action::Pull])]
    }

    /// Maps a client error to the mirror's vocabulary.
    fn fail(&self, e: berth_client::Error) -> UpstreamError {
        use berth_client::Error as E;
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        let registry = self.registry.clone();
        let message = berth_client::error_chain(&e);
        match e {
            // A certificate that no longer verifies or a failed handshake is
            // the upstream being unreachable to us: cached content stands in.
            E::Http { .. }
            | E::Token { .. }
            | E::UntrustedCertificate { .. }
            | E::TlsHandshake { .. } => UpstreamError::Unavailable { registry, message },
            E::Status { status: 429, .. } => UpstreamError::RateLimited { registry, message },
            E::Status { status, .. } if status >= 500 || status == 408 => {
                UpstreamError::Unavailable { registry, message }
            }
            E::NotFound { what, .. } => UpstreamError::NotFound { registry, what },
            E::Status { status: 404, .. } => UpstreamError::NotFound {
                registry,
                what: message,
            },
            E::Unauthorized { .. }
            | E::Denied { .. }
            | E::Challenge { .. }
            | E::InsecureRealm { .. } => UpstreamError::Denied { registry, message },
            E::DigestMismatch { .. } | E::SizeMismatch { .. } => {
                self.counters
                    .digest_mismatches
                    .fetch_add(1, Ordering::Relaxed);
                UpstreamError::Invalid { registry, message }
            }
            _ => UpstreamError::Invalid { registry, message },
        }
    }

    /// Sends a `GET`/`HEAD` and turns a non-2xx answer into an error.
    async fn send(
        &self,
        method: Method,
        repo: &str,
        path: &str,
        accept: Option<&'static str>,
    ) -> Result<Response, UpstreamError> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let resp = self
            .client
            .send(
                &self.host,
                &Self::scopes(repo),
                method,
                path,
                &move |rb| match accept {
                    Some(a) => rb.header(ACCEPT, a),
                    None => rb,
                },
            )
            .await
            .map_err(|e| self.fail(e))?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(resp);
        }
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        let registry = self.registry.clone();
        Err(match status {
            404 => UpstreamError::NotFound {
                registry,
                what: path.to_owned(),
            },
            _ => UpstreamError::Invalid {
                registry,
                message: format!("{status} for {path}"),
            },
        })
    }

    /// A manifest by tag or digest, with its exact bytes, verified against
    /// the digest asked for and the upstream's `Docker-Content-Digest`.
    pub(crate) async fn manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<ParsedManifest, UpstreamError> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        self.client
            .get_manifest(&self.host, repo, reference)
            .await
            .map_err(|e| self.fail(e))
    }

    /// The digest a tag points to (`HEAD`), if the upstream says.
    pub(crate) async fn manifest_digest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<Digest>, UpstreamError> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        match self.client.head_manifest(&self.host, repo, reference).await {
            Ok(Some(d)) => Ok(Some(d.digest)),
            Ok(None) => Err(UpstreamError::NotFound {
                registry: self.registry.clone(),
                what: format!("{repo}:{reference}"),
            }),
            // No usable digest header: the caller fetches the manifest.
            Err(berth_client::Error::Protocol { .. }) => Ok(None),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// `GET /v2/<repo>/blobs/<digest>`: the response, to be streamed.
    pub(crate) async fn blob(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<BlobResponse, UpstreamError> {
        let resp = self
            .send(
                Method::GET,
                repo,
                &format!("/v2/{repo}/blobs/{digest}"),
                None,
            )
            .await?;
        Ok(BlobResponse {
            size: resp.content_length(),
            resp,
        })
    }

    /// The size of a blob the repository has (`HEAD`).
    pub(crate) async fn blob_size(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<u64, UpstreamError> {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        match self
            .client
            .blob_exists(&self.host, repo, digest, &Self::scopes(repo))
            .await
        {
            Ok(Some(n)) => Ok(n),
            Ok(None) => Err(UpstreamError::NotFound {
                registry: self.registry.clone(),
                what: format!("blob {digest} in {repo}"),
            }),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// A small JSON document (tags list, referrers): body, content type and
    /// `Link` header.
    pub(crate) async fn get_json(
        &self,
        repo: &str,
        path_and_query: &str,
        limit: u64,
    ) -> Result<(Bytes, Option<String>, Option<String>), UpstreamError> {
        let mut resp = self
            .send(Method::GET, repo, path_and_query, Some("application/json"))
            .await?;
        let ct = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let link = resp
            .headers()
            .get("link")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    body.extend_from_slice(&c);
                    if body.len() as u64 > limit {
                        return Err(UpstreamError::Invalid {
                            registry: self.registry.clone(),
                            message: format!(
                                "{path_and_query}: response larger than {limit} bytes"
                            ),
                        });
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(UpstreamError::Unavailable {
                        registry: self.registry.clone(),
                        message: berth_client::error_chain(&e),
                    });
                }
            }
        }
        Ok((Bytes::from(body), ct, link))
    }
}

/// A blob response being received.
#[derive(Debug)]
pub(crate) struct BlobResponse {
    /// `Content-Length`, if the upstream sent one.
    pub size: Option<u64>,
    resp: Response,
}

impl BlobResponse {
    /// The next piece of the body; `None` at the end.
    pub(crate) async fn chunk(&mut self) -> std::result::Result<Option<Bytes>, String> {
        self.resp
            .chunk()
            .await
            .map_err(|e| berth_client::error_chain(&e))
    }
}
