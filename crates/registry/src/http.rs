//! The HTTP surface: one handler that parses the route, checks read-only mode
//! and authorisation, dispatches, and turns every [`ApiError`] into the
//! distribution error JSON. Handlers never panic on input and never answer
//! 500 for a client's mistake.

use std::io::{self, Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use berth_content::{ContentStore, Expected, Ingest};
use berth_oci::{Algorithm, Descriptor, Digest, ManifestKind, ParsedManifest, media_type};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};

use crate::auth::{Action, Need};
use crate::error::{ApiError, ErrorCode};
use crate::registry::Registry;
use crate::routes::{self, Reference, Route};
use crate::uploads::{self, Session};

/// Response bodies.
pub type Body = BoxBody<Bytes, io::Error>;

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// Blobs up to this size are read into memory and sent in one piece.
const SMALL_BLOB: u64 = 1 << 20;
/// Chunk size when streaming larger blobs.
const STREAM_CHUNK: usize = 256 << 10;

/// A body fed by a blocking reader thread through a bounded channel.
struct ChannelBody {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    remaining: u64,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(b))) => {
                self.remaining = self.remaining.saturating_sub(b.len() as u64);
                Poll::Ready(Some(Ok(Frame::data(b))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.remaining)
    }
}

/// Builds a response; header values that cannot be encoded are dropped
/// (they are all built from validated names, digests and numbers).
pub(crate) fn reply(
    status: StatusCode,
    headers: &[(&'static str, String)],
    body: Body,
) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(v) {
            r.headers_mut().append(*k, v);
        }
    }
    r
}

fn header(h: &HeaderMap, name: impl hyper::header::AsHeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    header(h, CONTENT_LENGTH).and_then(|v| v.trim().parse().ok())
}

/// `0-<last byte>` as registries report upload progress (`0-0` when empty).
fn range_header(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}

/// Handles one request (the service function of every connection).
pub async fn handle(
    reg: Arc<Registry>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    // The mirror (if any) claims its requests; everything else is local.
    let route = crate::mirror::classify(&reg, &method, &path, req.uri().query());
    let label = route.as_ref().map_or("invalid", |(r, _)| r.label());
    let mut resp = match route {
        Ok((route, target)) => dispatch(&reg, route, target, req)
            .await
            .unwrap_or_else(ApiError::into_response),
        Err(e) => e.into_response(),
    };
    if path.starts_with("/v2") {
        resp.headers_mut().insert(
            "Docker-Distribution-API-Version",
            HeaderValue::from_static("registry/2.0"),
        );
    }
    let status = resp.status().as_u16();
    reg.metrics.request(label, method_label(&method), status);
    tracing::info!(
        target: "berth_registry::access",
        peer = %peer,
        method = %method,
        path = %path,
        status,
        micros = start.elapsed().as_micros() as u64,
        "request"
    );
    resp
}

fn need_for(route: &Route, method: &Method) -> Option<Need> {
    let repo = |a| route.name().map(|n| Need::Repo(n.to_owned(), a));
    match route {
        Route::Health | Route::Metrics | Route::Token | Route::Unknown => None,
        Route::Base => Some(Need::Base),
        Route::Catalog => Some(Need::Catalog),
        Route::Tags { .. } | Route::Referrers { .. } => repo(Action::Pull),
        Route::Manifest { .. } | Route::Blob { .. } => match *method {
            Method::DELETE => repo(Action::Delete),
            Method::PUT => repo(Action::Push),
            _ => repo(Action::Pull),
        },
        Route::Uploads { .. } | Route::Upload { .. } => repo(Action::Push),
    }
}

async fn dispatch(
    reg: &Arc<Registry>,
    route: Route,
    target: Option<crate::mirror::Target>,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let method = req.method().clone();
    let is_read = method == Method::GET || method == Method::HEAD;
    let unsupported = || ApiError::new(ErrorCode::Unsupported, "method not allowed here");
    if reg.cfg.read_only && !is_read && route.name().is_some() {
        return Err(ApiError::new(
            ErrorCode::Unsupported,
            "the registry is in read-only mode",
        ));
    }
    if let Some(need) = need_for(&route, &method) {
        let host = header(req.headers(), HOST);
        reg.auth.authorize(req.headers(), host, reg.tls, &need)?;
    }
    if let Some(t) = target {
        return crate::mirror::serve(reg, t, route, req).await;
    }
    let head = method == Method::HEAD;
    let q = routes::query(req.uri().query());
    match route {
        Route::Health if is_read => Ok(reply(
            StatusCode::OK,
            &[("Content-Type", "application/json".into())],
            full(&b"{\"status\":\"ok\"}"[..]),
        )),
        Route::Metrics if is_read => Ok(reply(
            StatusCode::OK,
            &[("Content-Type", "text/plain; version=0.0.4".into())],
            full(match &reg.mirror {
                Some(m) => reg.metrics.render() + &m.render_metrics(),
                None => reg.metrics.render(),
            }),
        )),
        Route::Token if is_read => {
            let v = reg.auth.issue_token(req.headers(), &q)?;
            Ok(json(StatusCode::OK, &v, false))
        }
        Route::Base if is_read => Ok(reply(
            StatusCode::OK,
            &[
                ("Content-Type", "application/json".into()),
                ("Content-Length", "2".into()),
            ],
            if head { empty() } else { full(&b"{}"[..]) },
        )),
        Route::Catalog if is_read => catalog(reg, &q, head),
        Route::Tags { name } if is_read => tags_list(reg, &name, &q, head),
        Route::Referrers { name, digest } if is_read => referrers(reg, &name, &digest, &q, head),
        Route::Manifest { name, reference } => match method {
            Method::GET | Method::HEAD => get_manifest(reg, &name, &reference, head),
            Method::PUT => put_manifest(reg, &name, &reference, req).await,
            Method::DELETE => delete_manifest(reg, &name, &reference).await,
            _ => Err(unsupported()),
        },
        Route::Blob { name, digest } => match method {
            Method::GET | Method::HEAD => get_blob(reg, &name, &digest, req.headers(), head).await,
            Method::DELETE => delete_blob(reg, &name, &digest).await,
            _ => Err(unsupported()),
        },
        Route::Uploads { name } if method == Method::POST => {
            start_upload(reg, &name, &q, req).await
        }
        Route::Upload { name, id } => match method {
            Method::PATCH => patch_upload(reg, &name, &id, req).await,
            Method::PUT => finish_upload(reg, &name, &id, &q, req).await,
            Method::GET => upload_status(reg, &name, &id).await,
            Method::DELETE => cancel_upload(reg, &name, &id),
            _ => Err(unsupported()),
        },
        Route::Unknown => Err(ApiError::new(ErrorCode::NotFound, "no such endpoint")),
        _ => Err(unsupported()),
    }
}

fn json(status: StatusCode, v: &serde_json::Value, head: bool) -> Response<Body> {
    json_typed(status, v, "application/json", head, &[])
}

pub(crate) fn json_typed(
    status: StatusCode,
    v: &serde_json::Value,
    content_type: &str,
    head: bool,
    extra: &[(&'static str, String)],
) -> Response<Body> {
    let bytes = serde_json::to_vec(v).unwrap_or_default();
    let mut headers = vec![
        ("Content-Type", content_type.to_owned()),
        ("Content-Length", bytes.len().to_string()),
    ];
    headers.extend_from_slice(extra);
    reply(status, &headers, if head { empty() } else { full(bytes) })
}

/// Runs blocking work (fsync, flock) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}

// ---------------------------------------------------------------- listings

/// Parses `n`: absent → `default`; clamped to `max`.
fn page_size(q: &[(String, String)], default: usize, max: usize) -> Result<usize, ApiError> {
    match routes::param(q, "n") {
        None | Some("") => Ok(default),
        Some(s) => s.parse::<usize>().map(|n| n.min(max)).map_err(|_| {
            ApiError::new(
                ErrorCode::PaginationNumberInvalid,
                format!("invalid page size {s:?}"),
            )
        }),
    }
}

/// One page of a sorted list after `last`, with the `Link` to the next page.
fn paginate(
    all: Vec<String>,
    q: &[(String, String)],
    base: &str,
    max: usize,
) -> Result<(Vec<String>, Option<String>), ApiError> {
    let explicit_n = routes::param(q, "n").is_some_and(|s| !s.is_empty());
    let n = page_size(q, max, max)?;
    let last = routes::param(q, "last").unwrap_or("");
    let rest: Vec<String> = all.into_iter().filter(|x| x.as_str() > last).collect();
    let more = rest.len() > n;
    let page: Vec<String> = rest.into_iter().take(n).collect();
    let link = match (more, page.last()) {
        (true, Some(l)) if explicit_n || n == max => Some(format!(
            "<{base}?n={n}&last={}>; rel=\"next\"",
            routes::encode(l)
        )),
        _ => None,
    };
    Ok((page, link))
}

const MAX_PAGE: usize = 10_000;

fn catalog(reg: &Registry, q: &[(String, String)], head: bool) -> Result<Response<Body>, ApiError> {
    let all = reg.meta.repositories()?;
    let (page, link) = paginate(all, q, "/v2/_catalog", MAX_PAGE)?;
    let extra: Vec<(&'static str, String)> = link.into_iter().map(|l| ("Link", l)).collect();
    Ok(json_typed(
        StatusCode::OK,
        &serde_json::json!({ "repositories": page }),
        "application/json",
        head,
        &extra,
    ))
}

fn tags_list(
    reg: &Registry,
    name: &str,
    q: &[(String, String)],
    head: bool,
) -> Result<Response<Body>, ApiError> {
    if !reg.meta.repo_exists(name)? {
        return Err(ApiError::new(
            ErrorCode::NameUnknown,
            format!("repository {name} is not known"),
        ));
    }
    let all = reg.meta.tag_names(name)?;
    let (page, link) = paginate(all, q, &format!("/v2/{name}/tags/list"), MAX_PAGE)?;
    let extra: Vec<(&'static str, String)> = link.into_iter().map(|l| ("Link", l)).collect();
    Ok(json_typed(
        StatusCode::OK,
        &serde_json::json!({ "name": name, "tags": page }),
        "application/json",
        head,
        &extra,
    ))
}

fn referrers(
    reg: &Registry,
    name: &str,
    digest: &str,
    q: &[(String, String)],
    head: bool,
) -> Result<Response<Body>, ApiError> {
    let subject = routes::digest(digest)?;
    let filter = routes::param(q, "artifactType").filter(|s| !s.is_empty());
    let mut list = reg.meta.referrers(name, &subject)?;
    // Entries whose manifest was unlinked behind our back are not served.
    list.retain(|d| {
        reg.meta
            .manifest_media_type(name, &d.digest)
            .is_ok_and(|m| m.is_some())
    });
    if let Some(f) = filter {
        list.retain(|d| d.artifact_type.as_deref() == Some(f));
    }
    let extra: Vec<(&'static str, String)> = filter
        .map(|_| ("OCI-Filters-Applied", "artifactType".to_owned()))
        .into_iter()
        .collect();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_INDEX,
        "manifests": list,
    });
    Ok(json_typed(
        StatusCode::OK,
        &index,
        media_type::OCI_INDEX,
        head,
        &extra,
    ))
}

// ---------------------------------------------------------------- manifests

fn manifest_unknown(r: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ManifestUnknown,
        format!("manifest {r} is not known"),
    )
}

fn resolve(reg: &Registry, name: &str, reference: &str) -> Result<(Digest, String), ApiError> {
    let digest = match routes::reference(reference)? {
        Reference::Tag(t) => reg
            .meta
            .tag(name, &t)?
            .ok_or_else(|| manifest_unknown(reference))?,
        Reference::Digest(d) => d,
    };
    let mt = reg
        .meta
        .manifest_media_type(name, &digest)?
        .ok_or_else(|| manifest_unknown(reference))?;
    Ok((digest, mt))
}

/// Reads a manifest's bytes, refusing to serve bytes that do not match.
fn read_manifest(reg: &Registry, digest: &Digest, reference: &str) -> Result<Vec<u8>, ApiError> {
    let path = reg.content.blob_path(digest);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(manifest_unknown(reference)),
        Err(e) => return Err(ApiError::internal(format!("read {}: {e}", path.display()))),
    };
    if digest.algorithm().digest(&bytes) != *digest {
        return Err(ApiError::internal(format!(
            "stored manifest {digest} does not match its digest"
        )));
    }
    Ok(bytes)
}

fn get_manifest(
    reg: &Registry,
    name: &str,
    reference: &str,
    head: bool,
) -> Result<Response<Body>, ApiError> {
    let (digest, mt) = resolve(reg, name, reference)?;
    let bytes = read_manifest(reg, &digest, reference)?;
    if !head {
        reg.metrics
            .bytes_out
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
    }
    Ok(reply(
        StatusCode::OK,
        &[
            ("Content-Type", mt),
            ("Content-Length", bytes.len().to_string()),
            ("Docker-Content-Digest", digest.to_string()),
            ("ETag", format!("\"{digest}\"")),
        ],
        if head { empty() } else { full(bytes) },
    ))
}

/// Reads a whole request body, refusing more than `limit` bytes.
async fn read_limited(reg: &Registry, body: Incoming, limit: u64) -> Result<Vec<u8>, ApiError> {
    let mut body = body;
    let mut out = Vec::new();
    while let Some(chunk) = next_chunk(reg, &mut body).await? {
        if out.len() as u64 + chunk.len() as u64 > limit {
            return Err(too_large(limit));
        }
        out.extend_from_slice(&chunk);
    }
    reg.metrics
        .bytes_in
        .fetch_add(out.len() as u64, Ordering::Relaxed);
    Ok(out)
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        ErrorCode::SizeInvalid,
        format!("the request body exceeds the limit of {limit} bytes"),
    )
    .with_status(StatusCode::PAYLOAD_TOO_LARGE)
}

/// The next data chunk of a request body, bounded in time so a slow client
/// cannot hold a request open forever.
async fn next_chunk(reg: &Registry, body: &mut Incoming) -> Result<Option<Bytes>, ApiError> {
    let timeout = Duration::from_secs(reg.cfg.io_timeout_secs);
    loop {
        match tokio::time::timeout(timeout, body.frame()).await {
            Err(_) => {
                return Err(ApiError::new(
                    ErrorCode::BlobUploadInvalid,
                    "timed out waiting for the request body",
                )
                .with_status(StatusCode::REQUEST_TIMEOUT));
            }
            Ok(None) => return Ok(None),
            Ok(Some(Err(e))) => {
                return Err(ApiError::new(
                    ErrorCode::BlobUploadInvalid,
                    format!("reading the request body: {e}"),
                ));
            }
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

/// Every blob a manifest needs in its repository, as (digest, must be a manifest).
fn required(parsed: &ParsedManifest) -> Vec<(&Descriptor, bool)> {
    match &parsed.kind {
        ManifestKind::Image(m) => std::iter::once(&m.config)
            .chain(m.layers.iter().filter(|l| {
                // Non-distributable layers live elsewhere; registries need not hold them.
                !media_type::is_non_distributable(&l.media_type) && l.urls.is_empty()
            }))
            .map(|d| (d, false))
            .collect(),
        ManifestKind::Index(i) => i
            .manifests
            .iter()
            .map(|d| {
                (
                    d,
                    media_type::is_manifest(&d.media_type) || media_type::is_index(&d.media_type),
                )
            })
            .collect(),
    }
}

async fn put_manifest(
    reg: &Arc<Registry>,
    name: &str,
    reference: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let reference = routes::reference(reference)?;
    let limit = reg.cfg.max_manifest_bytes;
    if content_length(req.headers()).is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let declared = header(req.headers(), CONTENT_TYPE)
        .map(|v| v.split(';').next().unwrap_or("").trim().to_owned())
        .filter(|v| !v.is_empty());
    let bytes = read_limited(reg, req.into_body(), limit).await?;
    let algorithm = match &reference {
        Reference::Digest(d) => d.algorithm(),
        Reference::Tag(_) => Algorithm::Sha256,
    };
    let parsed = ParsedManifest::parse_with(bytes, declared.as_deref(), algorithm)
        .map_err(|e| ApiError::new(ErrorCode::ManifestInvalid, crate::error::error_chain(&e)))?;
    if let Reference::Digest(d) = &reference
        && *d != parsed.digest
    {
        return Err(ApiError::new(
            ErrorCode::DigestInvalid,
            format!("manifest digest is {}, not {d}", parsed.digest),
        ));
    }
    let r = reg.clone();
    let guard = blocking(move || r.images.write_guard().map_err(ApiError::internal)).await?;
    for (d, manifest) in required(&parsed) {
        let present = if manifest {
            reg.meta.manifest_media_type(name, &d.digest)?.is_some()
        } else {
            reg.meta.blob_linked(name, &d.digest)?
                || reg.meta.manifest_media_type(name, &d.digest)?.is_some()
        } && reg.content.info(&d.digest)?.is_some();
        if !present {
            return Err(ApiError::new(
                ErrorCode::ManifestBlobUnknown,
                format!("manifest references {} which is not in {name}", d.digest),
            ));
        }
    }
    let (subject, artifact_type, annotations) = match &parsed.kind {
        ManifestKind::Image(m) => (
            m.subject.clone(),
            m.artifact_type
                .clone()
                .or(Some(m.config.media_type.clone())),
            m.annotations.clone(),
        ),
        ManifestKind::Index(i) => (
            i.subject.clone(),
            i.artifact_type.clone(),
            i.annotations.clone(),
        ),
    };
    let digest = parsed.digest.clone();
    let r = reg.clone();
    let repo = name.to_owned();
    let tag = match &reference {
        Reference::Tag(t) => Some(t.clone()),
        Reference::Digest(_) => None,
    };
    let subject_digest = subject.as_ref().map(|s| s.digest.clone());
    blocking(move || {
        let _guard = guard;
        r.content.put(
            &parsed.bytes,
            Expected::exact(parsed.digest.clone(), parsed.bytes.len() as u64),
        )?;
        r.meta
            .link_manifest(&repo, &parsed.digest, &parsed.media_type)?;
        if let Some(s) = &subject {
            let mut d = parsed.descriptor();
            d.artifact_type = artifact_type;
            d.annotations = annotations;
            r.meta.add_referrer(&repo, &s.digest, &d)?;
        }
        if let Some(t) = tag {
            r.meta.set_tag(&repo, &t, &parsed.digest)?;
        }
        Ok(())
    })
    .await?;
    let mut headers = vec![
        ("Location", format!("/v2/{name}/manifests/{digest}")),
        ("Docker-Content-Digest", digest.to_string()),
        ("Content-Length", "0".to_owned()),
    ];
    if let Some(s) = subject_digest {
        headers.push(("OCI-Subject", s.to_string()));
    }
    Ok(reply(StatusCode::CREATED, &headers, empty()))
}

fn deletion_disabled() -> ApiError {
    ApiError::new(
        ErrorCode::Unsupported,
        "deletion is disabled on this registry",
    )
}

async fn delete_manifest(
    reg: &Arc<Registry>,
    name: &str,
    reference: &str,
) -> Result<Response<Body>, ApiError> {
    if !reg.cfg.delete_enabled {
        return Err(deletion_disabled());
    }
    let r = reg.clone();
    let repo = name.to_owned();
    let reference = reference.to_owned();
    blocking(move || {
        match routes::reference(&reference)? {
            Reference::Tag(t) => {
                if !r.meta.delete_tag(&repo, &t)? {
                    return Err(manifest_unknown(&reference));
                }
            }
            Reference::Digest(d) => {
                if r.meta.manifest_media_type(&repo, &d)?.is_none() {
                    return Err(manifest_unknown(&reference));
                }
                if let Ok(bytes) = read_manifest(&r, &d, &reference)
                    && let Ok(p) = ParsedManifest::parse_with(bytes, None, d.algorithm())
                {
                    let subject = match &p.kind {
                        ManifestKind::Image(m) => m.subject.as_ref(),
                        ManifestKind::Index(i) => i.subject.as_ref(),
                    };
                    if let Some(s) = subject {
                        r.meta.remove_referrer(&repo, &s.digest, &d)?;
                    }
                }
                for (t, td) in r.meta.tags(&repo)? {
                    if td == d {
                        r.meta.delete_tag(&repo, &t)?;
                    }
                }
                r.meta.unlink_manifest(&repo, &d)?;
            }
        }
        Ok(())
    })
    .await?;
    Ok(reply(
        StatusCode::ACCEPTED,
        &[("Content-Length", "0".into())],
        empty(),
    ))
}

// ---------------------------------------------------------------- blobs

fn blob_unknown(d: &str) -> ApiError {
    ApiError::new(ErrorCode::BlobUnknown, format!("blob {d} is not known"))
}

/// What a `Range` header asks of a blob of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RangeReq {
    Full,
    /// Inclusive bounds.
    Part(u64, u64),
    Unsatisfiable,
}

/// Parses a single byte range. Syntactically invalid or multi-range headers
/// are ignored (the whole blob is served), as RFC 9110 allows.
pub(crate) fn parse_range(h: Option<&str>, len: u64) -> RangeReq {
    let Some(spec) = h.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return RangeReq::Full;
    };
    if spec.contains(',') {
        return RangeReq::Full;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return RangeReq::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let Ok(n) = b.parse::<u64>() else {
            return RangeReq::Full;
        };
        if n == 0 || len == 0 {
            return RangeReq::Unsatisfiable;
        }
        return RangeReq::Part(len.saturating_sub(n), len - 1);
    }
    let Ok(start) = a.parse::<u64>() else {
        return RangeReq::Full;
    };
    let end = if b.is_empty() {
        u64::MAX
    } else {
        match b.parse::<u64>() {
            Ok(e) if e >= start => e,
            _ => return RangeReq::Full,
        }
    };
    if start >= len {
        return RangeReq::Unsatisfiable;
    }
    RangeReq::Part(start, end.min(len - 1))
}

async fn get_blob(
    reg: &Arc<Registry>,
    name: &str,
    digest: &str,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response<Body>, ApiError> {
    let d = routes::digest(digest)?;
    if !(reg.meta.blob_linked(name, &d)? || reg.meta.manifest_media_type(name, &d)?.is_some()) {
        return Err(blob_unknown(digest));
    }
    serve_blob_file(reg, &d, headers, head).await
}

/// Serves a stored blob (whole or a single range), verifying full reads.
pub(crate) async fn serve_blob_file(
    reg: &Arc<Registry>,
    d: &Digest,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response<Body>, ApiError> {
    let d = d.clone();
    let digest = d.to_string();
    let digest = digest.as_str();
    let path = reg.content.blob_path(&d);
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(blob_unknown(digest)),
        Err(e) => return Err(ApiError::internal(format!("open {}: {e}", path.display()))),
    };
    let meta = file
        .metadata()
        .map_err(|e| ApiError::internal(format!("stat {}: {e}", path.display())))?;
    let len = meta.len();
    let key = crate::registry::VerifiedCache::key(&d, &meta);
    let range = parse_range(header(headers, "range"), len);
    let mut out: Vec<(&'static str, String)> = vec![
        ("Content-Type", "application/octet-stream".into()),
        ("Docker-Content-Digest", d.to_string()),
        ("Accept-Ranges", "bytes".into()),
        ("ETag", format!("\"{d}\"")),
    ];
    let (status, start, count) = match range {
        RangeReq::Full => (StatusCode::OK, 0, len),
        RangeReq::Part(s, e) => {
            out.push(("Content-Range", format!("bytes {s}-{e}/{len}")));
            (StatusCode::PARTIAL_CONTENT, s, e - s + 1)
        }
        RangeReq::Unsatisfiable => {
            return Err(ApiError::new(
                ErrorCode::RangeInvalid,
                format!("the range is outside the blob's {len} bytes"),
            )
            .with_header("Content-Range", format!("bytes */{len}")));
        }
    };
    out.push(("Content-Length", count.to_string()));
    if head {
        return Ok(reply(status, &out, empty()));
    }
    reg.metrics.bytes_out.fetch_add(count, Ordering::Relaxed);
    // Full reads are verified against the digest: a corrupt blob is never
    // served whole (small ones fail before the first byte, large ones abort
    // the connection before the last).
    let verify = reg.cfg.verify_reads && status == StatusCode::OK && !reg.verified.contains(&key);
    if count <= SMALL_BLOB {
        let mut buf = vec![0u8; count as usize];
        file.seek(SeekFrom::Start(start))
            .and_then(|_| file.read_exact(&mut buf))
            .map_err(|e| ApiError::internal(format!("read {}: {e}", path.display())))?;
        if verify {
            if d.algorithm().digest(&buf) != d {
                return Err(ApiError::internal(format!(
                    "stored blob {d} does not match its digest"
                )));
            }
            reg.verified.insert(key);
        }
        return Ok(reply(status, &out, full(buf)));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
    let r = reg.clone();
    tokio::task::spawn_blocking(move || {
        let mut digester = verify.then(|| d.algorithm().digester());
        if let Err(e) = file.seek(SeekFrom::Start(start)) {
            let _ = tx.blocking_send(Err(e));
            return;
        }
        let mut left = count;
        while left > 0 {
            let want = STREAM_CHUNK.min(left as usize);
            let mut buf = Vec::with_capacity(want);
            match (&mut file).take(want as u64).read_to_end(&mut buf) {
                Ok(n) if n == want => {}
                Ok(_) => {
                    let _ = tx.blocking_send(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "blob shorter than its size",
                    )));
                    return;
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
            left -= buf.len() as u64;
            if let Some(dg) = digester.as_mut() {
                dg.update(&buf);
                if left == 0 {
                    if dg.clone().finish() != d {
                        tracing::error!(digest = %d, "stored blob does not match its digest");
                        let _ = tx.blocking_send(Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "blob does not match its digest",
                        )));
                        return;
                    }
                    r.verified.insert(key.clone());
                }
            }
            if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                return; // the client went away
            }
        }
    });
    Ok(reply(
        status,
        &out,
        BoxBody::new(ChannelBody {
            rx,
            remaining: count,
        }),
    ))
}

async fn delete_blob(
    reg: &Arc<Registry>,
    name: &str,
    digest: &str,
) -> Result<Response<Body>, ApiError> {
    if !reg.cfg.delete_enabled {
        return Err(deletion_disabled());
    }
    let d = routes::digest(digest)?;
    let r = reg.clone();
    let repo = name.to_owned();
    let removed = blocking(move || Ok(r.meta.unlink_blob(&repo, &d)?)).await?;
    if !removed {
        return Err(blob_unknown(digest));
    }
    Ok(reply(
        StatusCode::ACCEPTED,
        &[("Content-Length", "0".into())],
        empty(),
    ))
}

// ---------------------------------------------------------------- uploads

/// Streams a request body into an ingest, enforcing the blob size limit.
async fn stream_into(
    reg: &Registry,
    body: &mut Incoming,
    ingest: &mut dyn Ingest,
) -> Result<u64, ApiError> {
    let limit = reg.cfg.max_blob_bytes;
    let mut n = 0u64;
    while let Some(chunk) = next_chunk(reg, body).await? {
        n += chunk.len() as u64;
        if limit > 0 && ingest.size() + chunk.len() as u64 > limit {
            return Err(too_large(limit));
        }
        // The ingest buffers 1 MiB in memory; most writes are copies.
        ingest
            .write_all(&chunk)
            .map_err(|e| ApiError::internal(format!("write ingest: {e}")))?;
        reg.metrics
            .bytes_in
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
    Ok(n)
}

/// Commits an ingest as `expected` and links it into `repo`.
async fn commit_and_link(
    reg: &Arc<Registry>,
    repo: &str,
    ingest: Box<dyn Ingest>,
    expected: Digest,
) -> Result<(), ApiError> {
    let r = reg.clone();
    let repo = repo.to_owned();
    blocking(move || {
        let mut ingest = ingest;
        // Sessions hash with sha256; a sha512 digest arrives only at the end,
        // so such uploads are re-hashed into a fresh ingest.
        if ingest.digest().algorithm() != expected.algorithm() {
            let mut fresh = r.content.ingest(expected.algorithm())?;
            io::copy(&mut ingest.read_back()?, &mut fresh)
                .map_err(|e| ApiError::internal(format!("re-hash upload: {e}")))?;
            ingest = fresh;
        }
        let size = ingest.size();
        match ingest.commit(Expected::digest(expected.clone())) {
            Ok(_) => {}
            Err(berth_content::Error::DigestMismatch { actual, .. }) => {
                return Err(ApiError::new(
                    ErrorCode::DigestInvalid,
                    format!("uploaded content ({size} bytes) has digest {actual}, not {expected}"),
                ));
            }
            Err(e) => return Err(e.into()),
        }
        r.meta.link_blob(&repo, &expected)?;
        Ok(())
    })
    .await
}

fn blob_created(name: &str, d: &Digest) -> Response<Body> {
    reply(
        StatusCode::CREATED,
        &[
            ("Location", format!("/v2/{name}/blobs/{d}")),
            ("Docker-Content-Digest", d.to_string()),
            ("Content-Length", "0".into()),
        ],
        empty(),
    )
}

fn upload_headers(name: &str, id: &str, size: u64) -> Vec<(&'static str, String)> {
    vec![
        ("Location", format!("/v2/{name}/blobs/uploads/{id}")),
        ("Range", range_header(size)),
        ("Docker-Upload-UUID", id.to_owned()),
        ("Content-Length", "0".into()),
    ]
}

async fn start_upload(
    reg: &Arc<Registry>,
    name: &str,
    q: &[(String, String)],
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    if let Some(limit) = Some(reg.cfg.max_blob_bytes).filter(|l| *l > 0)
        && content_length(req.headers()).is_some_and(|n| n > limit)
    {
        return Err(too_large(limit));
    }
    // Cross-repository mount: only if the caller may pull the source and
    // the blob is really there; otherwise fall back to a normal upload.
    if let (Some(m), Some(from)) = (routes::param(q, "mount"), routes::param(q, "from"))
        && let Ok(d) = m.parse::<Digest>()
        && routes::valid_name(from)
        && reg
            .auth
            .authorize(
                req.headers(),
                header(req.headers(), HOST),
                reg.tls,
                &Need::Repo(from.to_owned(), Action::Pull),
            )
            .is_ok()
        && reg.meta.blob_linked(from, &d)?
        && reg.content.info(&d)?.is_some()
    {
        let r = reg.clone();
        let repo = name.to_owned();
        let dd = d.clone();
        blocking(move || {
            let _guard = r.images.write_guard().map_err(ApiError::internal)?;
            // Re-check under the lock: GC may have run in between.
            if r.content.info(&dd)?.is_none() {
                return Err(blob_unknown(&dd.to_string()));
            }
            Ok(r.meta.link_blob(&repo, &dd)?)
        })
        .await?;
        return Ok(blob_created(name, &d));
    }
    let r = reg.clone();
    let guard = blocking(move || r.images.write_guard().map_err(ApiError::internal)).await?;
    if let Some(dg) = routes::param(q, "digest") {
        let d = routes::digest(dg)?;
        let started = Instant::now();
        let mut ingest = reg.content.ingest(d.algorithm())?;
        let mut body = req.into_body();
        stream_into(reg, &mut body, ingest.as_mut()).await?;
        commit_and_link(reg, name, ingest, d.clone()).await?;
        drop(guard);
        reg.metrics.upload_finished(started.elapsed());
        return Ok(blob_created(name, &d));
    }
    let id = uploads::new_id()?;
    let ingest = reg.content.ingest(Algorithm::Sha256)?;
    let now = Instant::now();
    reg.uploads.insert(
        id.clone(),
        Session {
            repo: name.to_owned(),
            ingest: Some(ingest),
            started: now,
            touched: now,
            _guard: guard,
        },
        reg.cfg.max_uploads,
    )?;
    reg.metrics
        .uploads_open
        .store(reg.uploads.len() as u64, Ordering::Relaxed);
    let mut headers = upload_headers(name, &id, 0);
    headers.push(("OCI-Chunk-Min-Length", "0".into()));
    Ok(reply(StatusCode::ACCEPTED, &headers, empty()))
}

fn upload_unknown(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::BlobUploadUnknown,
        format!("upload {id} is not known"),
    )
}

/// Looks a session up by id; callers check its repository once they hold its lock.
fn session(reg: &Registry, id: &str) -> Result<uploads::SessionRef, ApiError> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(upload_unknown(id));
    }
    reg.uploads.get(id).ok_or_else(|| upload_unknown(id))
}

/// Parses `Content-Range: <start>-<end>` (also with a `bytes ` or `bytes=`
/// prefix and a `/<total>` suffix, as some clients send).
fn parse_content_range(v: &str) -> Option<(u64, u64)> {
    let v = v.trim();
    let v = v
        .strip_prefix("bytes ")
        .or_else(|| v.strip_prefix("bytes="))
        .unwrap_or(v);
    let v = v.split('/').next()?;
    let (a, b) = v.split_once('-')?;
    let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (b >= a).then_some((a, b))
}

/// Checks a chunk's `Content-Range` against the session's offset.
fn check_chunk(
    headers: &HeaderMap,
    name: &str,
    id: &str,
    offset: u64,
) -> Result<Option<u64>, ApiError> {
    let Some(v) = header(headers, "content-range") else {
        return Ok(None);
    };
    let out_of_order = || {
        let mut e = ApiError::new(
            ErrorCode::BlobUploadInvalid,
            format!("chunk does not start at the upload's offset {offset}"),
        )
        .with_status(StatusCode::RANGE_NOT_SATISFIABLE);
        for (k, v) in upload_headers(name, id, offset) {
            if k != "Content-Length" {
                e = e.with_header(k, v);
            }
        }
        e
    };
    let Some((start, end)) = parse_content_range(v) else {
        return Err(out_of_order());
    };
    if start != offset {
        return Err(out_of_order());
    }
    let len = end - start + 1;
    if content_length(headers).is_some_and(|n| n != len) {
        return Err(ApiError::new(
            ErrorCode::BlobUploadInvalid,
            "Content-Range and Content-Length disagree",
        )
        .with_status(StatusCode::RANGE_NOT_SATISFIABLE));
    }
    Ok(Some(len))
}

async fn patch_upload(
    reg: &Arc<Registry>,
    name: &str,
    id: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let s = session(reg, id)?;
    let mut s = s.lock().await;
    if s.repo != name {
        return Err(upload_unknown(id));
    }
    let Some(ingest) = s.ingest.as_mut() else {
        return Err(upload_unknown(id));
    };
    let offset = ingest.size();
    let want = check_chunk(req.headers(), name, id, offset)?;
    let mut body = req.into_body();
    let got = stream_into(reg, &mut body, ingest.as_mut()).await;
    let size = ingest.size();
    s.touched = Instant::now();
    let got = got?;
    if want.is_some_and(|w| w != got) {
        return Err(ApiError::new(
            ErrorCode::BlobUploadInvalid,
            format!(
                "Content-Range announced {} bytes, got {got}",
                want.unwrap_or(0)
            ),
        )
        .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
        .with_header("Range", range_header(size)));
    }
    Ok(reply(
        StatusCode::ACCEPTED,
        &upload_headers(name, id, size),
        empty(),
    ))
}

async fn finish_upload(
    reg: &Arc<Registry>,
    name: &str,
    id: &str,
    q: &[(String, String)],
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let sref = session(reg, id)?;
    let mut s = sref.lock().await;
    if s.repo != name || s.ingest.is_none() {
        return Err(upload_unknown(id));
    }
    let d = routes::digest(routes::param(q, "digest").unwrap_or(""))?;
    let Some(ingest) = s.ingest.as_mut() else {
        return Err(upload_unknown(id));
    };
    let offset = ingest.size();
    let want = check_chunk(req.headers(), name, id, offset)?;
    let mut body = req.into_body();
    let got = stream_into(reg, &mut body, ingest.as_mut()).await?;
    s.touched = Instant::now();
    if want.is_some_and(|w| w != got) {
        return Err(ApiError::new(
            ErrorCode::BlobUploadInvalid,
            "Content-Range does not match the body",
        )
        .with_status(StatusCode::RANGE_NOT_SATISFIABLE));
    }
    let ingest = s.ingest.take().ok_or_else(|| upload_unknown(id))?;
    let started = s.started;
    // The session ends here whatever the outcome: a failed commit is not retryable.
    reg.uploads.remove(id);
    let res = commit_and_link(reg, name, ingest, d.clone()).await;
    drop(s);
    reg.metrics
        .uploads_open
        .store(reg.uploads.len() as u64, Ordering::Relaxed);
    res?;
    reg.metrics.upload_finished(started.elapsed());
    Ok(blob_created(name, &d))
}

async fn upload_status(
    reg: &Arc<Registry>,
    name: &str,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    let s = session(reg, id)?;
    let s = s.lock().await;
    if s.repo != name {
        return Err(upload_unknown(id));
    }
    let size = s.ingest.as_ref().ok_or_else(|| upload_unknown(id))?.size();
    Ok(reply(
        StatusCode::NO_CONTENT,
        &upload_headers(name, id, size),
        empty(),
    ))
}

fn cancel_upload(reg: &Registry, name: &str, id: &str) -> Result<Response<Body>, ApiError> {
    let s = session(reg, id)?;
    let matches = s.try_lock().map_or(true, |s| s.repo == name);
    if !matches {
        return Err(upload_unknown(id));
    }
    reg.uploads.remove(id);
    reg.metrics
        .uploads_open
        .store(reg.uploads.len() as u64, Ordering::Relaxed);
    Ok(reply(
        StatusCode::NO_CONTENT,
        &[("Content-Length", "0".into())],
        empty(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeReq::*;
        let cases: &[(Option<&str>, u64, RangeReq)] = &[
            (None, 10, Full),
            (Some("bytes=0-4"), 10, Part(0, 4)),
            (Some("bytes=5-"), 10, Part(5, 9)),
            (Some("bytes=9-9"), 10, Part(9, 9)),
            (Some("bytes=5-100"), 10, Part(5, 9)),
            (Some("bytes=-3"), 10, Part(7, 9)),
            (Some("bytes=-30"), 10, Part(0, 9)),
            (Some("bytes=10-"), 10, Unsatisfiable),
            (Some("bytes=-0"), 10, Unsatisfiable),
            (Some("bytes=0-"), 0, Unsatisfiable),
            (Some("bytes=4-2"), 10, Full),
            (Some("bytes=0-1,4-5"), 10, Full),
            (Some("items=0-1"), 10, Full),
            (Some("bytes=x-1"), 10, Full),
        ];
        for (h, len, want) in cases {
            assert_eq!(&parse_range(*h, *len), want, "{h:?} of {len}");
        }
    }

    #[test]
    fn content_ranges() {
        assert_eq!(parse_content_range("0-9"), Some((0, 9)));
        assert_eq!(parse_content_range("bytes 10-19/100"), Some((10, 19)));
        assert_eq!(parse_content_range("bytes=10-19"), Some((10, 19)));
        assert_eq!(parse_content_range("9-0"), None);
        assert_eq!(parse_content_range("a-b"), None);
    }
}
