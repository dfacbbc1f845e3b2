//! Mirrored manifests (by tag and by digest), tag lists and referrers.
//!
//! A manifest is fetched whole, verified (its bytes against the digest it was
//! asked by, or against the upstream's `Docker-Content-Digest`), stored and
//! linked before any client sees it. Tags carry the time they were last
//! confirmed upstream; past the upstream's TTL a `HEAD` asks whether the
//! digest changed (cheap, and not counted by Docker Hub's rate limit).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use berth_content::{ContentStore, Expected};
use berth_oci::{Digest, ManifestKind, ParsedManifest, media_type};
use bytes::Bytes;
use hyper::{Response, StatusCode};

use super::flight::Publish;
use super::{Failure, FailureKind, ManifestKey, Mirror, Subject, Target};
use crate::error::ApiError;
use crate::http::{Body, empty, full, json_typed, reply};
use crate::registry::Registry;
use crate::routes::{self, Reference};
use crate::storage::MetaStore;

/// How long a tag's re-validation may take before the cached manifest is
/// served instead.
const REVALIDATE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A manifest ready to serve.
#[derive(Debug)]
pub(crate) struct Cached {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Bytes,
}

/// What a manifest flight ends with.
pub(crate) type Outcome = Result<Arc<Cached>, Failure>;

/// Keeps the waiting gauge right however the request ends.
struct Waiting<'a>(&'a Mirror);

impl<'a> Waiting<'a> {
    fn new(m: &'a Mirror) -> Waiting<'a> {
        m.stats.manifest_waiting.fetch_add(1, Ordering::Relaxed);
        Waiting(m)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0
            .stats
            .manifest_waiting
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// `GET`/`HEAD /v2/<name>/manifests/<reference>` on a mirrored repository.
pub(crate) async fn get(
    reg: &Arc<Registry>,
    m: &Arc<Mirror>,
    t: &Target,
    reference: &str,
    head: bool,
) -> Result<Response<Body>, ApiError> {
    let r = routes::reference(reference)?;
    let fresh = fresh_cached(reg, m, t, &r).map_err(|f| f.to_api(Subject::Manifest, false))?;
    if let Some(c) = fresh {
        m.stats.manifest_hits.fetch_add(1, Ordering::Relaxed);
        return Ok(respond(reg, m, &c, head));
    }
    let key: ManifestKey = (t.upstream, t.repo.clone(), reference.to_owned());
    let waiting = Waiting::new(m);
    let (reg2, m2, t2) = (reg.clone(), m.clone(), t.clone());
    let (out, joined) = m
        .manifests
        .run(key, move |publish| async move {
            m2.stats.manifest_fetches.fetch_add(1, Ordering::Relaxed);
            fetch(&reg2, &m2, &t2, &r, &publish).await
        })
        .await;
    drop(waiting);
    if joined {
        m.stats.manifest_joins.fetch_add(1, Ordering::Relaxed);
    }
    match out {
        Some(Ok(c)) => Ok(respond(reg, m, &c, head)),
        Some(Err(f)) => Err(f.to_api(Subject::Manifest, t.bare)),
        None => Err(ApiError::internal("manifest fetch ended without a result")),
    }
}

fn respond(reg: &Registry, m: &Mirror, c: &Cached, head: bool) -> Response<Body> {
    m.cache.touch(&c.digest);
    if !head {
        reg.metrics
            .bytes_out
            .fetch_add(c.bytes.len() as u64, Ordering::Relaxed);
    }
    reply(
        StatusCode::OK,
        &[
            ("Content-Type", c.media_type.clone()),
            ("Content-Length", c.bytes.len().to_string()),
            ("Docker-Content-Digest", c.digest.to_string()),
            ("ETag", format!("\"{}\"", c.digest)),
        ],
        if head { empty() } else { full(c.bytes.clone()) },
    )
}

/// A cached manifest of the repository, if its bytes are still there.
fn cached_by_digest(
    reg: &Registry,
    m: &Mirror,
    t: &Target,
    d: &Digest,
) -> Result<Option<Arc<Cached>>, Failure> {
    let src = &m.sources[t.upstream];
    let Some(mt) = src.meta.manifest_media_type(&t.repo, d)? else {
        return Ok(None);
    };
    match reg.content.read_all(d) {
        Ok(bytes) => Ok(Some(Arc::new(Cached {
            digest: d.clone(),
            media_type: mt,
            bytes: Bytes::from(bytes),
        }))),
        // Evicted or pruned: fetch again.
        Err(berth_content::Error::NotFound(_)) => {
            m.cache.forget(d);
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

fn is_fresh(m: &Mirror, key: &ManifestKey) -> bool {
    let ttl = m.sources[key.0].ttl;
    m.validated
        .lock()
        .unwrap()
        .get(key)
        .is_some_and(|at| at.elapsed() < ttl)
}

/// What can be served without asking the upstream.
fn fresh_cached(
    reg: &Registry,
    m: &Mirror,
    t: &Target,
    r: &Reference,
) -> Result<Option<Arc<Cached>>, Failure> {
    match r {
        Reference::Digest(d) => cached_by_digest(reg, m, t, d),
        Reference::Tag(tag) => {
            let key = (t.upstream, t.repo.clone(), tag.clone());
            if !is_fresh(m, &key) {
                return Ok(None);
            }
            match m.sources[t.upstream].meta.tag(&t.repo, tag)? {
                Some(d) => cached_by_digest(reg, m, t, &d),
                None => Ok(None),
            }
        }
    }
}

/// The work of one manifest flight.
async fn fetch(
    reg: &Arc<Registry>,
    m: &Arc<Mirror>,
    t: &Target,
    r: &Reference,
    publish: &Publish<Outcome>,
) -> Outcome {
    let src = &m.sources[t.upstream];
    match r {
        Reference::Digest(d) => {
            if let Some(c) = cached_by_digest(reg, m, t, d)? {
                return Ok(c);
            }
            // Verified against `d` by the client.
            let p = src.up.manifest(&t.repo, &d.to_string()).await?;
            store(reg, m, t, None, p, publish).await
        }
        Reference::Tag(tag) => {
            let key = (t.upstream, t.repo.clone(), tag.clone());
            let cached = match src.meta.tag(&t.repo, tag)? {
                Some(d) => cached_by_digest(reg, m, t, &d)?,
                None => None,
            };
            if let Some(c) = &cached {
                if is_fresh(m, &key) {
                    return Ok(c.clone());
                }
                m.stats.revalidations.fetch_add(1, Ordering::Relaxed);
                // A cached answer exists: do not let a black-holed upstream
                // hold the client for the full I/O timeout.
                let head =
                    tokio::time::timeout(REVALIDATE_TIMEOUT, src.up.manifest_digest(&t.repo, tag))
                        .await
                        .unwrap_or_else(|_| {
                            Err(super::upstream::UpstreamError::Unavailable {
                                registry: src.up.registry.clone(),
                                message: format!(
                                    "no answer to the re-validation within {} s",
                                    REVALIDATE_TIMEOUT.as_secs()
                                ),
                            })
                        });
                match head {
                    Ok(Some(d)) if d == c.digest => {
                        m.validated.lock().unwrap().insert(key, Instant::now());
                        return Ok(c.clone());
                    }
                    Ok(_) => {}
                    Err(e) if e.is_unavailable() => return Ok(stale(m, t, tag, c, &e.into())),
                    Err(e) => return Err(gone(m, t, tag, e.into())),
                }
            }
            // Verified against the upstream's Docker-Content-Digest by the client.
            let p = match src.up.manifest(&t.repo, tag).await {
                Ok(p) => p,
                Err(e) if e.is_unavailable() && cached.is_some() => {
                    let c = cached.as_ref().expect("checked");
                    return Ok(stale(m, t, tag, c, &e.into()));
                }
                Err(e) => return Err(gone(m, t, tag, e.into())),
            };
            store(reg, m, t, Some(tag), p, publish).await
        }
    }
}

/// Serves cached content in place of an unavailable upstream.
fn stale(m: &Mirror, t: &Target, tag: &str, c: &Arc<Cached>, why: &Failure) -> Arc<Cached> {
    m.stats.stale_served.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(
        registry = %m.sources[t.upstream].up.registry,
        repository = %t.repo,
        tag,
        reason = %why.message,
        "serving the cached manifest"
    );
    c.clone()
}

/// An upstream that no longer has a tag: the mirror forgets it too.
fn gone(m: &Mirror, t: &Target, tag: &str, f: Failure) -> Failure {
    if f.kind == FailureKind::NotFound {
        let _ = m.sources[t.upstream].meta.delete_tag(&t.repo, tag);
        m.validated
            .lock()
            .unwrap()
            .remove(&(t.upstream, t.repo.clone(), tag.to_owned()));
    }
    f
}

/// Runs blocking work off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Failure::internal(e.to_string()))?
}

/// Hands a verified manifest to the waiting clients, then stores and links
/// it (and the tag) and records it in the cache. The flight ends only after
/// that, so later requests find it in the store.
async fn store(
    reg: &Arc<Registry>,
    m: &Arc<Mirror>,
    t: &Target,
    tag: Option<&str>,
    parsed: ParsedManifest,
    publish: &Publish<Outcome>,
) -> Outcome {
    let blobs: Vec<Digest> = match &parsed.kind {
        ManifestKind::Image(im) => std::iter::once(&im.config)
            .chain(im.layers.iter())
            .map(|d| d.digest.clone())
            .collect(),
        ManifestKind::Index(_) => Vec::new(),
    };
    let cached = Arc::new(Cached {
        digest: parsed.digest.clone(),
        media_type: parsed.media_type.clone(),
        bytes: Bytes::from(parsed.bytes),
    });
    // Verified (by the client, against the digest): clients need not wait
    // for the fsyncs below.
    publish.publish(Ok(cached.clone()));
    let (r, mm, tt, c, tg) = (
        reg.clone(),
        m.clone(),
        t.clone(),
        cached.clone(),
        tag.map(str::to_owned),
    );
    let stored = blocking(move || {
        let _guard = r
            .images
            .write_guard()
            .map_err(|e| Failure::internal(crate::error::error_chain(&e)))?;
        r.content.put(
            &c.bytes,
            Expected::exact(c.digest.clone(), c.bytes.len() as u64),
        )?;
        let meta = &mm.sources[tt.upstream].meta;
        meta.link_manifest(&tt.repo, &c.digest, &c.media_type)?;
        if let Some(tag) = &tg {
            meta.set_tag(&tt.repo, tag, &c.digest)?;
        }
        mm.cache.record(&c.digest, c.bytes.len() as u64);
        Ok(())
    })
    .await;
    if let Err(f) = stored {
        // The clients have it; the next request fetches it again.
        tracing::error!(digest = %cached.digest, error = %f.message, "caching a mirrored manifest failed");
        return Ok(cached);
    }
    if let Some(tag) = tag {
        m.validated
            .lock()
            .unwrap()
            .insert((t.upstream, t.repo.clone(), tag.to_owned()), Instant::now());
    }
    // The upstream served this manifest from the repository, so the
    // repository has its blobs: link them now (in the background, off the
    // response's path) so that blobs cached from another repository are
    // served without asking the upstream again.
    let (mm, tt) = (m.clone(), t.clone());
    tokio::task::spawn_blocking(move || {
        let meta = &mm.sources[tt.upstream].meta;
        for d in blobs {
            if !meta.blob_linked(&tt.repo, &d).unwrap_or(true) {
                let _ = meta.link_blob(&tt.repo, &d);
            }
        }
    });
    m.maybe_evict(reg);
    Ok(cached)
}

/// `GET /v2/<name>/tags/list` of a mirrored repository: the upstream's list
/// (paginated as the client asks), or the cached tags if it is unavailable.
pub(crate) async fn tags(
    reg: &Registry,
    m: &Arc<Mirror>,
    t: &Target,
    name: &str,
    query: Option<&str>,
    head: bool,
) -> Result<Response<Body>, ApiError> {
    let src = &m.sources[t.upstream];
    let q = routes::query(query);
    let mut path = format!("/v2/{}/tags/list", t.repo);
    let mut sep = '?';
    for k in ["n", "last"] {
        if let Some(v) = routes::param(&q, k) {
            path.push_str(&format!("{sep}{k}={}", routes::encode(v)));
            sep = '&';
        }
    }
    let limit = reg.cfg.max_manifest_bytes;
    let (list, link) = match src.up.get_json(&t.repo, &path, limit).await {
        Ok((body, _, link)) => {
            #[derive(serde::Deserialize)]
            struct List {
                tags: Option<Vec<String>>,
            }
            let l: List = serde_json::from_slice(&body).map_err(|e| {
                Failure::invalid(format!(
                    "upstream {} sent an invalid tag list: {e}",
                    src.up.registry
                ))
                .to_api(Subject::Repository, t.bare)
            })?;
            // The next page, at this server's path for the repository.
            let link = link.and_then(|l| {
                let q = l.split_once('?')?.1.split('>').next()?.to_owned();
                Some(format!("</v2/{name}/tags/list?{q}>; rel=\"next\""))
            });
            (l.tags.unwrap_or_default(), link)
        }
        Err(e) if e.is_unavailable() && src.meta.repo_exists(&t.repo).unwrap_or(false) => {
            m.stats.stale_served.fetch_add(1, Ordering::Relaxed);
            (src.meta.tag_names(&t.repo)?, None)
        }
        Err(e) => return Err(Failure::from(e).to_api(Subject::Repository, t.bare)),
    };
    let extra: Vec<(&'static str, String)> = link.into_iter().map(|l| ("Link", l)).collect();
    Ok(json_typed(
        StatusCode::OK,
        &serde_json::json!({ "name": name, "tags": list }),
        "application/json",
        head,
        &extra,
    ))
}

/// `GET /v2/<name>/referrers/<digest>`: the upstream's answer, passed on
/// (an upstream without the referrers API has none to report).
pub(crate) async fn referrers(
    reg: &Registry,
    m: &Arc<Mirror>,
    t: &Target,
    digest: &str,
    query: Option<&str>,
    head: bool,
) -> Result<Response<Body>, ApiError> {
    let d = routes::digest(digest)?;
    let src = &m.sources[t.upstream];
    let q = routes::query(query);
    let mut path = format!("/v2/{}/referrers/{d}", t.repo);
    if let Some(a) = routes::param(&q, "artifactType") {
        path.push_str(&format!("?artifactType={}", routes::encode(a)));
    }
    let empty_index = || {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": []
        }))
        .unwrap_or_default()
    };
    let body: Vec<u8> = match src
        .up
        .get_json(&t.repo, &path, reg.cfg.max_manifest_bytes)
        .await
    {
        Ok((b, _, _)) => b.to_vec(),
        Err(e) => {
            let f = Failure::from(e);
            if f.kind != FailureKind::NotFound {
                return Err(f.to_api(Subject::Repository, t.bare));
            }
            empty_index()
        }
    };
    Ok(reply(
        StatusCode::OK,
        &[
            ("Content-Type", media_type::OCI_INDEX.to_owned()),
            ("Content-Length", body.len().to_string()),
        ],
        if head { empty() } else { full(body) },
    ))
}
