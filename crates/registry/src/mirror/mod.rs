//! The pull-through mirror (`berth registry serve --mirror URL`): one server
//! is at once a Docker `registry-mirrors` endpoint, a containerd mirror
//! (`?ns=`), a path-prefix proxy (`/v2/<registry>/<repo>/...`) and the normal
//! registry for local repositories ([`route`] tells them apart).
//!
//! What it guarantees:
//! - **Byte-exact.** Manifests and blobs are stored and served with the
//!   upstream's bytes and digests; a manifest is verified before it is
//!   served or stored, a blob before its last byte reaches any client.
//! - **One upstream fetch per object.** Concurrent requests for the same
//!   uncached manifest or blob share one fetch ([`flight`], [`blob`]); blobs
//!   stream to every waiting client while they are written to the store.
//! - **Tags age, digests do not.** A tag is re-validated upstream after its
//!   upstream's TTL; content addressed by digest never is. An unreachable
//!   (or rate-limiting) upstream means cached content is served.
//! - **Bounded.** Mirrored content counts against a size limit and is evicted
//!   least-recently-used first ([`cache`]); local repositories never count
//!   and are never evicted.
//!
//! What it does not do: write through to upstreams (mirrored names refuse
//! pushes), convert manifests between schemas, or keep unverified bytes.

mod blob;
mod cache;
pub mod config;
mod flight;
mod manifest;
mod route;
mod upstream;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_oci::Digest;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

pub(crate) use cache::root_sets;
pub use cache::roots;
pub use config::{MirrorCacheConfig, MirrorConfig};
pub(crate) use route::{Target, classify};

use crate::config::Config;
use crate::error::{ApiError, ErrorCode, Result};
use crate::http::Body;
use crate::registry::Registry;
use crate::routes::Route;
use crate::storage::FsMeta;
use cache::Cache;
use flight::Flights;
use upstream::{Upstream, UpstreamError};

/// One configured upstream and its cached metadata.
#[derive(Debug)]
pub(crate) struct Source {
    pub up: Upstream,
    pub meta: FsMeta,
    pub ttl: Duration,
    pub url: String,
}

/// Why a mirrored request failed, shared by every request of a flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureKind {
    NotFound,
    Unavailable,
    RateLimited,
    Denied,
    Invalid,
    Internal,
}

/// What a failure is about, for the error code clients see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Subject {
    Manifest,
    Blob,
    Repository,
}

impl Failure {
    pub(crate) fn internal(message: impl Into<String>) -> Failure {
        Failure {
            kind: FailureKind::Internal,
            message: message.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Failure {
        Failure {
            kind: FailureKind::Invalid,
            message: message.into(),
        }
    }

    /// The distribution error a client gets. Through a bare name (a
    /// `registry-mirrors` request) anything but success reads as "not
    /// found", the answer the local registry would give.
    pub(crate) fn to_api(&self, what: Subject, bare: bool) -> ApiError {
        let unknown = match what {
            Subject::Manifest => ErrorCode::ManifestUnknown,
            Subject::Blob => ErrorCode::BlobUnknown,
            Subject::Repository => ErrorCode::NameUnknown,
        };
        match self.kind {
            FailureKind::NotFound => ApiError::new(unknown, &self.message),
            _ if bare && self.kind != FailureKind::Internal => {
                ApiError::new(unknown, format!("not found locally; {}", self.message))
            }
            FailureKind::Unavailable | FailureKind::Invalid => {
                ApiError::new(ErrorCode::Unknown, &self.message)
                    .with_status(StatusCode::BAD_GATEWAY)
            }
            FailureKind::RateLimited => ApiError::new(ErrorCode::TooManyRequests, &self.message),
            FailureKind::Denied => ApiError::new(ErrorCode::Denied, &self.message),
            FailureKind::Internal => ApiError::internal(&self.message),
        }
    }
}

impl From<UpstreamError> for Failure {
    fn from(e: UpstreamError) -> Failure {
        let kind = match &e {
            UpstreamError::Unavailable { .. } => FailureKind::Unavailable,
            UpstreamError::RateLimited { .. } => FailureKind::RateLimited,
            UpstreamError::NotFound { .. } => FailureKind::NotFound,
            UpstreamError::Denied { .. } => FailureKind::Denied,
            UpstreamError::Invalid { .. } => FailureKind::Invalid,
        };
        Failure {
            kind,
            message: format!("upstream {e}"),
        }
    }
}

impl From<crate::error::Error> for Failure {
    fn from(e: crate::error::Error) -> Failure {
        Failure::internal(crate::error::error_chain(&e))
    }
}

impl From<berth_content::Error> for Failure {
    fn from(e: berth_content::Error) -> Failure {
        Failure::internal(crate::error::error_chain(&e))
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub manifest_hits: AtomicU64,
    pub manifest_fetches: AtomicU64,
    pub manifest_joins: AtomicU64,
    pub manifest_waiting: AtomicU64,
    pub revalidations: AtomicU64,
    pub stale_served: AtomicU64,
    pub blob_hits: AtomicU64,
    pub blob_fetches: AtomicU64,
    pub blob_joins: AtomicU64,
    pub blob_streaming: AtomicU64,
    pub bytes_fetched: AtomicU64,
    pub digest_mismatches: AtomicU64,
    pub evicted_entries: AtomicU64,
    pub evicted_bytes: AtomicU64,
}

/// Key of a manifest flight: upstream, repository, tag or digest.
pub(crate) type ManifestKey = (usize, String, String);

/// The mirror's state, shared by every request.
#[derive(Debug)]
pub(crate) struct Mirror {
    pub(crate) sources: Vec<Source>,
    default: Option<usize>,
    pub(crate) cache: Cache,
    pub(crate) manifests: Arc<Flights<ManifestKey, manifest::Outcome>>,
    pub(crate) blobs: Mutex<HashMap<(usize, Digest), Arc<blob::BlobFlight>>>,
    /// When each (upstream, repository, tag) was last confirmed upstream.
    pub(crate) validated: Mutex<HashMap<ManifestKey, Instant>>,
    pub(crate) stats: Stats,
    evicting: AtomicBool,
}

/// How often the maintenance task checks the size limit.
const MAINTENANCE: Duration = Duration::from_secs(30);

impl Mirror {
    /// Sets up the upstreams of `cfg` over the store at `root`.
    pub(crate) fn open(
        root: &std::path::Path,
        cfg: &Config,
        content: &berth_content::FsStore,
    ) -> Result<Mirror> {
        let cache = Cache::open(root, content, cfg.mirror_cache.max_bytes)?;
        let io_timeout = Duration::from_secs(cfg.io_timeout_secs);
        let mut sources = Vec::new();
        for m in &cfg.mirrors {
            let r = m.resolve()?;
            sources.push(Source {
                up: Upstream::new(&r, m.insecure, io_timeout, cfg.max_manifest_bytes)?,
                meta: cache.upstream_meta(&r.registry)?,
                ttl: Duration::from_secs(m.ttl_secs),
                url: m.url.clone(),
            });
        }
        let default = sources
            .iter()
            .position(|s| s.up.registry == "docker.io")
            .or((!sources.is_empty()).then_some(0));
        Ok(Mirror {
            sources,
            default,
            cache,
            manifests: Arc::default(),
            blobs: Mutex::new(HashMap::new()),
            validated: Mutex::new(HashMap::new()),
            stats: Stats::default(),
            evicting: AtomicBool::new(false),
        })
    }

    /// The upstream standing for a registry name (`docker.io`, `ghcr.io`, `host:port`).
    pub(crate) fn upstream_for(&self, registry: &str) -> Option<usize> {
        let r = config::normalize_registry(registry);
        self.sources.iter().position(|s| s.up.registry == r)
    }

    pub(crate) fn default_upstream(&self) -> Option<usize> {
        self.default
    }

    pub(crate) fn registry(&self, i: usize) -> &str {
        &self.sources[i].up.registry
    }

    /// A client's repository name as the upstream knows it: Docker Hub's
    /// one-component names are `library/` images.
    pub(crate) fn upstream_repo(&self, i: usize, name: &str) -> String {
        if self.sources[i].up.registry == "docker.io" && !name.contains('/') {
            format!("library/{name}")
        } else {
            name.to_owned()
        }
    }

    /// Starts an eviction in the background if the cache is over its limit
    /// and none is running.
    pub(crate) fn maybe_evict(self: &Arc<Self>, reg: &Arc<Registry>) {
        if !self.cache.over_limit() || self.evicting.swap(true, Ordering::AcqRel) {
            return;
        }
        let (m, r) = (self.clone(), reg.clone());
        tokio::task::spawn_blocking(move || {
            match m.cache.evict(&r.images, r.meta.as_ref(), &r.keepers.0) {
                Ok(ev) if ev.entries > 0 => {
                    m.stats
                        .evicted_entries
                        .fetch_add(ev.entries as u64, Ordering::Relaxed);
                    m.stats.evicted_bytes.fetch_add(ev.bytes, Ordering::Relaxed);
                    tracing::info!(
                        entries = ev.entries,
                        bytes = ev.bytes,
                        deleted_blobs = ev.deleted,
                        "mirror cache eviction"
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %crate::error::error_chain(&e), "mirror cache eviction failed")
                }
            }
            m.evicting.store(false, Ordering::Release);
        });
    }

    /// Periodic work: keeps the cache within its limit.
    pub(crate) async fn maintenance(self: Arc<Self>, reg: Arc<Registry>) {
        loop {
            self.maybe_evict(&reg);
            tokio::time::sleep(MAINTENANCE).await;
        }
    }

    /// The mirror's metrics in the Prometheus text format.
    pub(crate) fn render_metrics(&self) -> String {
        let mut s = String::new();
        let st = &self.stats;
        let rows: [(&str, &str, &str, u64); 14] = [
            (
                "berth_mirror_manifest_hits_total",
                "counter",
                "Manifests served from the cache.",
                st.manifest_hits.load(Ordering::Relaxed),
            ),
            (
                "berth_mirror_manifest_fetches_total",
                "counter",
                "Manifest flights started (upstream fetches or re-validations).",
                st.manifest_fetches.load(Ordering::Relaxed),
            ),
            (
                "berth_mirror_manifest_joins_total",
                "counter",
                "Manifest requests that joined a flight in progress.",
                st.manifest_joins.load(Ordering::Relaxed),
            ),
            (
                "berth_mirror_manifest_waiting",
                "gauge",
                "Manifest requests waiting for a flight.",
                st.manifest_waiting.load(Ordering::Relaxed),
            ),
            (
                "berth_mirror_revalidations_total",
                "counter",
                "Tags re-validated upstream after their TTL.",
                st.revalidations.load(Ordering::Relaxed),
            ),
            (
                "berth_mirror_stale_served_total",
                "counter",
                "Cached manifests served because the upstream was unavailable.",
                st.stale_served.load(Ordering::Relaxed),
            ),
            (
                "berth_mirror_blob_hits_total",
                "counter",
                "Blobs served from the cache.",
                st.blob_hits.load(Ordering::Relaxed),
            ),
            (
                "berth_mirror_blob_fetches_total",
                "counter",
                "Blob flights started.",
                st.blob_fetches.load(Ordering::Relaxed),
            ),
            (
                "berth_mirror_blob_joins_total",
                "counter",
                "Blob requests that joined a flight in progress.",
                st.blob_joins.load(Ordering::Relaxed),
            ),
            (
                "berth_mirror_blob_streaming",
                "gauge",
                "Responses streaming a blob from a flight.",
                st.blob_streaming.load(Ordering::Relaxed),
            ),
            (
                "berth_mirror_fetched_bytes_total",
                "counter",
                "Blob bytes received from upstreams.",
                st.bytes_fetched.load(Ordering::Relaxed),
            ),
            (
                "berth_mirror_digest_mismatches_total",
                "counter",
                "Upstream content refused for not matching its digest.",
                st.digest_mismatches.load(Ordering::Relaxed)
                    + self
                        .sources
                        .iter()
                        .map(|s| s.up.counters.digest_mismatches.load(Ordering::Relaxed))
                        .sum::<u64>(),
            ),
            (
                "berth_mirror_evicted_entries_total",
                "counter",
                "Cache entries evicted by the size limit.",
                st.evicted_entries.load(Ordering::Relaxed),
            ),
            (
                "berth_mirror_evicted_bytes_total",
                "counter",
                "Bytes evicted by the size limit.",
                st.evicted_bytes.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, v) in rows {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        }
        let _ = writeln!(
            s,
            "# HELP berth_mirror_flights Upstream fetches in progress.\n# TYPE berth_mirror_flights gauge\n\
             berth_mirror_flights{{kind=\"manifest\"}} {}\nberth_mirror_flights{{kind=\"blob\"}} {}",
            self.manifests.len(),
            self.blobs.lock().unwrap().len()
        );
        let (bytes, entries) = self.cache.usage();
        let _ = writeln!(
            s,
            "# HELP berth_mirror_cache_bytes Bytes of mirrored content.\n# TYPE berth_mirror_cache_bytes gauge\nberth_mirror_cache_bytes {bytes}\n\
             # HELP berth_mirror_cache_entries Mirrored blobs and manifests.\n# TYPE berth_mirror_cache_entries gauge\nberth_mirror_cache_entries {entries}\n\
             # HELP berth_mirror_cache_limit_bytes The cache's size limit (0: none).\n# TYPE berth_mirror_cache_limit_bytes gauge\nberth_mirror_cache_limit_bytes {}",
            self.cache.max_bytes()
        );
        let _ = writeln!(
            s,
            "# HELP berth_mirror_upstream_requests_total Calls to each upstream (each may take several HTTP requests: auth, retries).\n# TYPE berth_mirror_upstream_requests_total counter"
        );
        for src in &self.sources {
            let _ = writeln!(
                s,
                "berth_mirror_upstream_requests_total{{registry=\"{}\"}} {}",
                src.up.registry,
                src.up.counters.requests.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            s,
            "# HELP berth_mirror_upstream_errors_total Failed upstream calls.\n# TYPE berth_mirror_upstream_errors_total counter"
        );
        for src in &self.sources {
            let _ = writeln!(
                s,
                "berth_mirror_upstream_errors_total{{registry=\"{}\"}} {}",
                src.up.registry,
                src.up.counters.errors.load(Ordering::Relaxed)
            );
        }
        s
    }
}

/// Answers a request [`classify`] gave to the mirror (after authorisation).
pub(crate) async fn serve(
    reg: &Arc<Registry>,
    target: Target,
    route: Route,
    req: Request<Incoming>,
) -> std::result::Result<Response<Body>, ApiError> {
    let Some(m) = reg.mirror.clone() else {
        return Err(ApiError::internal("mirror request without a mirror"));
    };
    let head = req.method() == Method::HEAD;
    if !route::is_pull(&route, req.method()) {
        let src = &m.sources[target.upstream];
        return Err(ApiError::new(
            ErrorCode::Denied,
            format!(
                "{}/{} is mirrored from {} and read-only here; push to a local repository name instead",
                src.up.registry, target.repo, src.url
            ),
        ));
    }
    match route {
        Route::Manifest { reference, .. } => {
            manifest::get(reg, &m, &target, &reference, head).await
        }
        Route::Blob { digest, .. } => {
            blob::get(reg, &m, &target, &digest, req.headers(), head).await
        }
        Route::Tags { name } => {
            manifest::tags(reg, &m, &target, &name, req.uri().query(), head).await
        }
        Route::Referrers { digest, .. } => {
            manifest::referrers(reg, &m, &target, &digest, req.uri().query(), head).await
        }
        _ => Err(ApiError::new(
            ErrorCode::Unsupported,
            "method not allowed here",
        )),
    }
}
