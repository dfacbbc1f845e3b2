//! The distribution API operations: manifests, blob existence, verified and
//! resumable blob downloads, uploads (monolithic, chunked, mounted), and
//! manifest pushes. Each is one method on [`Client`].

use std::io::{Read as _, Seek as _, SeekFrom};
use std::sync::Arc;

use berth_content::{ContentStore, FsStore, Ingest, Partial};
use berth_oci::{Descriptor, Digest, ParsedManifest, media_type};
use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::{Method, Response};

use crate::auth::{Action, repository_scope};
use crate::client::{Client, status_error};
use crate::error::{Error, Result};
use crate::progress::{BlobOutcome, Event, ProgressSink};

/// Every manifest type berth understands, for `Accept`.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// How blobs are uploaded.
#[derive(Debug, Clone, Default)]
pub struct UploadOptions {
    /// Upload in `PATCH` chunks of this many bytes (raised to the
    /// registry's `OCI-Chunk-Min-Length`); `None` uploads in one `PUT`.
    pub chunk_size: Option<u64>,
    /// Repositories on the same registry that may hold the blob already:
    /// the first is offered as a cross-repository mount source.
    pub mount_from: Vec<String>,
}

/// Where a download writes: a fresh ingest, or a resumable one.
enum Target<'a> {
    Fresh {
        store: &'a dyn ContentStore,
        ingest: Box<dyn Ingest>,
    },
    Partial(Box<Partial>),
}

impl Target<'_> {
    fn ingest(&mut self) -> &mut dyn Ingest {
        match self {
            Target::Fresh { ingest, .. } => ingest.as_mut(),
            Target::Partial(p) => p.as_mut(),
        }
    }

    /// Starts from zero bytes.
    fn restart(&mut self) -> Result<()> {
        match self {
            Target::Fresh { store, ingest } => {
                *ingest = store.ingest(ingest.digest().algorithm())?;
            }
            Target::Partial(p) => p.restart()?,
        }
        Ok(())
    }

    /// Throws the bytes away, file and all (an ordinary ingest goes when dropped).
    fn discard(self) {
        if let Target::Partial(p) = self {
            let _ = (*p).discard();
        }
    }

    fn finish(self) -> Box<dyn Ingest> {
        match self {
            Target::Fresh { ingest, .. } => ingest,
            Target::Partial(p) => p,
        }
    }
}

fn header<'a>(resp: &'a Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

fn pull_scope(repo: &str) -> Vec<String> {
    vec![repository_scope(repo, &[Action::Pull])]
}

fn http_err(method: &str, url: &str, source: reqwest::Error) -> Error {
    Error::Http {
        method: method.to_owned(),
        url: url.to_owned(),
        source,
    }
}

/// Resolves an upload `Location` against the URL it came from.
fn resolve_location(resp: &Response) -> Result<url::Url> {
    let loc = header(resp, LOCATION.as_str()).ok_or_else(|| Error::Protocol {
        url: resp.url().to_string(),
        message: format!("{} without a Location header", resp.status()),
    })?;
    resp.url().join(loc).map_err(|e| Error::Protocol {
        url: resp.url().to_string(),
        message: format!("invalid Location {loc:?}: {e}"),
    })
}

/// Reads a blob from a content store as a stream of chunks, starting at
/// `offset` and ending after `len` bytes. File reads run on tokio's
/// blocking pool, never on the async workers.
fn blob_body(
    store: Arc<dyn ContentStore>,
    digest: Digest,
    offset: u64,
    len: u64,
    progress: ProgressSink,
    total: u64,
) -> reqwest::Body {
    const CHUNK: usize = 256 << 10;
    struct State {
        reader: Option<Box<dyn berth_content::BlobReader>>,
        left: u64,
        sent: u64,
    }
    let state = State {
        reader: None,
        left: len,
        sent: offset,
    };
    let stream = futures_util::stream::unfold(
        (state, store, digest, progress),
        move |(mut st, store, digest, progress)| async move {
            if st.left == 0 {
                return None;
            }
            let want = st.left.min(CHUNK as u64) as usize;
            let reader = st.reader.take();
            let store2 = store.clone();
            let d2 = digest.clone();
            let start = st.sent;
            let res = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
                let mut r = match reader {
                    Some(r) => r,
                    None => {
                        let mut r = store2
                            .open(&d2)
                            .map_err(|e| std::io::Error::other(e.to_string()))?;
                        r.seek(SeekFrom::Start(start))?;
                        r
                    }
                };
                let mut buf = vec![0u8; want];
                let mut filled = 0;
                while filled < want {
                    let n = r.read(&mut buf[filled..])?;
                    if n == 0 {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            format!("blob {d2} is shorter than its descriptor says"),
                        ));
                    }
                    filled += n;
                }
                Ok((r, buf))
            })
            .await;
            let item = match res {
                Ok(Ok((r, buf))) => {
                    st.reader = Some(r);
                    st.left -= buf.len() as u64;
                    st.sent += buf.len() as u64;
                    progress.emit(Event::BlobProgress {
                        digest: digest.clone(),
                        done: st.sent,
                        total,
                    });
                    Ok(Bytes::from(buf))
                }
                Ok(Err(e)) => {
                    st.left = 0;
                    Err(e)
                }
                Err(join) => {
                    st.left = 0;
                    Err(std::io::Error::other(join.to_string()))
                }
            };
            Some((item, (st, store, digest, progress)))
        },
    );
    reqwest::Body::wrap_stream(stream)
}

impl Client {
    /// Fetches a manifest or index by tag or digest, with its exact bytes.
    ///
    /// Verified: when `reference` is a digest, the bytes must hash to it;
    /// when the registry sends `Docker-Content-Digest`, the bytes must hash
    /// to that too.
    pub async fn get_manifest(
        &self,
        registry: &str,
        repo: &str,
        reference: &str,
    ) -> Result<ParsedManifest> {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let what = || format!("{registry}/{repo}:{reference}");
        let mut resp = self
            .send(registry, &pull_scope(repo), Method::GET, &path, &|rb| {
                rb.header(ACCEPT, MANIFEST_ACCEPT)
            })
            .await?;
        match resp.status().as_u16() {
            200 => {}
            404 => {
                let code = crate::client::error_body(&crate::client::small_body(resp).await).0;
                return Err(Error::NotFound {
                    what: format!("manifest {}", what()),
                    code,
                });
            }
            _ => return Err(status_error(&Method::GET, resp, registry).await),
        }
        let limit = self.options().max_manifest_bytes;
        let too_large = || Error::ManifestTooLarge {
            reference: what(),
            limit,
        };
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let declared = header(&resp, CONTENT_TYPE.as_str())
            .map(|c| c.split(';').next().unwrap_or("").trim().to_owned())
            .filter(|c| media_type::is_manifest(c) || media_type::is_index(c));
        let header_digest: Option<Digest> =
            header(&resp, "Docker-Content-Digest").and_then(|d| d.trim().parse().ok());
        let url = resp.url().to_string();
        let mut bytes = Vec::new();
        while let Some(c) = resp.chunk().await.map_err(|e| http_err("GET", &url, e))? {
            bytes.extend_from_slice(&c);
            if bytes.len() as u64 > limit {
                return Err(too_large());
            }
        }
        let by_digest: Option<Digest> = reference.parse().ok();
        let algorithm = by_digest
            .as_ref()
            .or(header_digest.as_ref())
            .map_or(berth_oci::Algorithm::Sha256, Digest::algorithm);
        let parsed = ParsedManifest::parse_with(bytes, declared.as_deref(), algorithm).map_err(
            |source| Error::Manifest {
                reference: what(),
                source,
            },
        )?;
        for expected in by_digest.iter().chain(header_digest.iter()) {
            let actual = expected.algorithm().digest(&parsed.bytes);
            if &actual != expected {
                return Err(Error::DigestMismatch {
                    what: format!("manifest {}", what()),
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        Ok(parsed)
    }

    /// `HEAD` on a manifest: its descriptor (digest, size, media type) if
    /// it exists, without downloading it. Needs `Docker-Content-Digest`.
    pub async fn head_manifest(
        &self,
        registry: &str,
        repo: &str,
        reference: &str,
    ) -> Result<Option<Descriptor>> {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let resp = self
            .send(registry, &pull_scope(repo), Method::HEAD, &path, &|rb| {
                rb.header(ACCEPT, MANIFEST_ACCEPT)
            })
            .await?;
        match resp.status().as_u16() {
            200 => {}
            404 => return Ok(None),
            _ => return Err(status_error(&Method::HEAD, resp, registry).await),
        }
        let digest: Digest = header(&resp, "Docker-Content-Digest")
            .and_then(|d| d.trim().parse().ok())
            .ok_or_else(|| Error::Protocol {
                url: resp.url().to_string(),
                message: "HEAD of a manifest without a valid Docker-Content-Digest".into(),
            })?;
        let size = header(&resp, CONTENT_LENGTH.as_str())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let mt = header(&resp, CONTENT_TYPE.as_str())
            .map(|c| c.split(';').next().unwrap_or("").trim().to_owned())
            .unwrap_or_default();
        Ok(Some(Descriptor::new(mt, digest, size)))
    }

    /// The size of a blob if the repository has it (`HEAD`), else `None`.
    pub async fn blob_exists(
        &self,
        registry: &str,
        repo: &str,
        digest: &Digest,
        scopes: &[String],
    ) -> Result<Option<u64>> {
        let path = format!("/v2/{repo}/blobs/{digest}");
        let resp = self
            .send(registry, scopes, Method::HEAD, &path, &|rb| rb)
            .await?;
        match resp.status().as_u16() {
            200..=299 => Ok(Some(
                header(&resp, CONTENT_LENGTH.as_str())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0),
            )),
            404 => Ok(None),
            _ => Err(status_error(&Method::HEAD, resp, registry).await),
        }
    }

    /// Starts a `GET` of a blob's bytes from `offset` on (with `Range` when
    /// `offset > 0`). Returns the response, whose body is not read yet, and
    /// the offset its body starts at: `offset`, or 0 when the registry
    /// ignored `Range` and sends the whole blob. The caller verifies what it
    /// reads ([`crate::remote::BlobReader`] does).
    pub async fn blob_response(
        &self,
        registry: &str,
        repo: &str,
        desc: &Descriptor,
        offset: u64,
    ) -> Result<(Response, u64)> {
        let path = format!("/v2/{repo}/blobs/{}", desc.digest);
        let resp = self
            .send(registry, &pull_scope(repo), Method::GET, &path, &|rb| {
                if offset > 0 {
                    rb.header(RANGE, format!("bytes={offset}-"))
                } else {
                    rb
                }
            })
            .await?;
        match resp.status().as_u16() {
            200 => Ok((resp, 0)),
            206 if offset > 0 => {
                let start = header(&resp, CONTENT_RANGE.as_str())
                    .and_then(|r| r.strip_prefix("bytes "))
                    .and_then(|r| r.split('-').next())
                    .and_then(|s| s.trim().parse::<u64>().ok());
                if start != Some(offset) {
                    return Err(Error::Protocol {
                        url: resp.url().to_string(),
                        message: format!(
                            "asked for bytes from {offset}, got Content-Range {:?}",
                            header(&resp, CONTENT_RANGE.as_str())
                        ),
                    });
                }
                Ok((resp, offset))
            }
            404 => Err(Error::NotFound {
                what: format!("blob {} in {registry}/{repo}", desc.digest),
                code: crate::client::error_body(&crate::client::small_body(resp).await).0,
            }),
            _ => Err(status_error(&Method::GET, resp, registry).await),
        }
    }

    /// Downloads a blob into an ingest of `store` and verifies it: the
    /// returned ingest holds exactly `desc.size` bytes hashing to
    /// `desc.digest`, ready for the caller to commit. Nothing is committed
    /// here, so a blob that fails verification never becomes visible.
    ///
    /// A connection that drops mid-body is resumed with `Range` from the
    /// bytes already received (or restarted if the registry ignores
    /// `Range`), up to the retry policy's attempts.
    pub async fn fetch_blob(
        &self,
        registry: &str,
        repo: &str,
        desc: &Descriptor,
        store: &dyn ContentStore,
        progress: &ProgressSink,
    ) -> Result<Box<dyn Ingest>> {
        let ingest = store.ingest(desc.digest.algorithm())?;
        self.fetch_into(
            registry,
            repo,
            desc,
            Target::Fresh { store, ingest },
            progress,
        )
        .await
    }

    /// Like [`Client::fetch_blob`], into the store's resumable ingest for
    /// the blob ([`berth_content::Partial`]): bytes an earlier, interrupted
    /// download left (a killed `berth pull`) are kept and the download
    /// continues with `Range: bytes=N-`. The whole blob is still verified;
    /// a registry that ignores `Range` gets a full download, and a partial
    /// whose bytes turn out wrong is thrown away and fetched again in full.
    /// Falls back to an ordinary ingest while another process is fetching
    /// the same blob.
    pub async fn fetch_blob_resumable(
        &self,
        registry: &str,
        repo: &str,
        desc: &Descriptor,
        store: &FsStore,
        progress: &ProgressSink,
    ) -> Result<Box<dyn Ingest>> {
        match store.ingest_resumable(&desc.digest)? {
            Some(p) => {
                self.fetch_into(registry, repo, desc, Target::Partial(Box::new(p)), progress)
                    .await
            }
            None => self.fetch_blob(registry, repo, desc, store, progress).await,
        }
    }

    async fn fetch_into(
        &self,
        registry: &str,
        repo: &str,
        desc: &Descriptor,
        mut target: Target<'_>,
        progress: &ProgressSink,
    ) -> Result<Box<dyn Ingest>> {
        match self
            .fetch_loop(registry, repo, desc, &mut target, progress)
            .await
        {
            Ok(()) => Ok(target.finish()),
            Err(e) => {
                // Wrong bytes are never kept for resuming; neither is an
                // empty partial. What arrived before a network failure is.
                let wrong = matches!(e, Error::DigestMismatch { .. } | Error::SizeMismatch { .. });
                if wrong || target.ingest().size() == 0 {
                    target.discard();
                }
                Err(e)
            }
        }
    }

    /// Fills `target` with the blob's verified bytes.
    async fn fetch_loop(
        &self,
        registry: &str,
        repo: &str,
        desc: &Descriptor,
        target: &mut Target<'_>,
        progress: &ProgressSink,
    ) -> Result<()> {
        let path = format!("/v2/{repo}/blobs/{}", desc.digest);
        let scopes = pull_scope(repo);
        let policy = self.options().retry;
        let mismatch = |actual: Digest| Error::DigestMismatch {
            what: format!("blob from {registry}/{repo}"),
            expected: desc.digest.clone(),
            actual,
        };
        // Bytes left by an earlier download: continue from them, unless
        // they cannot be a prefix of this blob.
        let mut from_partial = target.ingest().size() > 0;
        if target.ingest().size() > desc.size {
            target.restart()?;
            from_partial = false;
        }
        if from_partial {
            let offset = target.ingest().size();
            progress.emit(Event::BlobResumed {
                digest: desc.digest.clone(),
                offset,
            });
            progress.emit(Event::BlobProgress {
                digest: desc.digest.clone(),
                done: offset,
                total: desc.size,
            });
        }
        let mut failures = 0u32;
        loop {
            let offset = target.ingest().size();
            if offset == desc.size && offset > 0 {
                // Everything is here already (a complete partial).
                let actual = target.ingest().digest();
                if actual == desc.digest {
                    return Ok(());
                }
                if from_partial {
                    from_partial = false;
                    target.restart()?;
                    continue;
                }
                return Err(mismatch(actual));
            }
            let mut resp = self
                .send(registry, &scopes, Method::GET, &path, &|rb| {
                    if offset > 0 {
                        rb.header(RANGE, format!("bytes={offset}-"))
                    } else {
                        rb
                    }
                })
                .await?;
            let url = resp.url().to_string();
            match resp.status().as_u16() {
                200 => {
                    if offset > 0 {
                        // The registry ignored Range: start over.
                        target.restart()?;
                    }
                }
                206 if offset > 0 => {
                    let ok = header(&resp, CONTENT_RANGE.as_str())
                        .and_then(|r| r.strip_prefix("bytes "))
                        .and_then(|r| r.split('-').next())
                        .and_then(|s| s.trim().parse::<u64>().ok())
                        == Some(offset);
                    if !ok {
                        return Err(Error::Protocol {
                            url,
                            message: format!(
                                "asked for bytes from {offset}, got Content-Range {:?}",
                                header(&resp, CONTENT_RANGE.as_str())
                            ),
                        });
                    }
                }
                404 => {
                    return Err(Error::NotFound {
                        what: format!("blob {} in {registry}/{repo}", desc.digest),
                        code: crate::client::error_body(&crate::client::small_body(resp).await).0,
                    });
                }
                _ => return Err(status_error(&Method::GET, resp, registry).await),
            }
            let mut cut_short: Option<Error> = None;
            loop {
                match resp.chunk().await {
                    Ok(Some(c)) => {
                        let ingest = target.ingest();
                        let written = ingest.size();
                        if written + c.len() as u64 > desc.size {
                            return Err(Error::SizeMismatch {
                                digest: desc.digest.clone(),
                                expected: desc.size,
                                actual: written + c.len() as u64,
                            });
                        }
                        ingest
                            .write_all(&c)
                            .map_err(|e| Error::io("write", "<ingest>", e))?;
                        progress.emit(Event::BlobProgress {
                            digest: desc.digest.clone(),
                            done: written + c.len() as u64,
                            total: desc.size,
                        });
                    }
                    Ok(None) => break,
                    Err(e) => {
                        cut_short = Some(http_err("GET", &url, e));
                        break;
                    }
                }
            }
            let got = target.ingest().size();
            if cut_short.is_none() && got < desc.size {
                cut_short = Some(Error::SizeMismatch {
                    digest: desc.digest.clone(),
                    expected: desc.size,
                    actual: got,
                });
            }
            if let Some(err) = cut_short {
                failures += 1;
                if failures >= policy.attempts {
                    // A resumable ingest keeps what arrived for next time.
                    return Err(err);
                }
                progress.emit(Event::BlobRetry {
                    digest: desc.digest.clone(),
                    resume_at: got,
                    error: crate::error_chain(&err),
                });
                tokio::time::sleep(policy.delay(failures - 1)).await;
                continue;
            }
            let actual = target.ingest().digest();
            if actual != desc.digest {
                if from_partial {
                    // The bytes left earlier were not a prefix of this
                    // blob: fetch it whole once.
                    from_partial = false;
                    target.restart()?;
                    continue;
                }
                return Err(mismatch(actual));
            }
            return Ok(());
        }
    }

    /// Uploads a blob from `store` to `repo` unless the repository has it
    /// already; offers a cross-repository mount first when `opts.mount_from`
    /// names a candidate. Transient failures restart the upload session.
    pub async fn upload_blob(
        &self,
        registry: &str,
        repo: &str,
        desc: &Descriptor,
        store: Arc<dyn ContentStore>,
        opts: &UploadOptions,
        progress: &ProgressSink,
    ) -> Result<BlobOutcome> {
        let mount_from = opts.mount_from.iter().find(|r| r.as_str() != repo);
        let mut scopes = vec![repository_scope(repo, &[Action::Pull, Action::Push])];
        if let Some(from) = mount_from {
            scopes.push(repository_scope(from, &[Action::Pull]));
        }
        if let Some(size) = self
            .blob_exists(registry, repo, &desc.digest, &scopes)
            .await?
            && (size == desc.size || size == 0)
        {
            return Ok(BlobOutcome::Exists);
        }
        let policy = self.options().retry;
        let mut failures = 0;
        loop {
            match self
                .upload_session(
                    registry, repo, desc, &store, opts, mount_from, &scopes, progress,
                )
                .await
            {
                Ok(outcome) => return Ok(outcome),
                Err(e) if e.is_transient() && failures + 1 < policy.attempts => {
                    progress.emit(Event::BlobRetry {
                        digest: desc.digest.clone(),
                        resume_at: 0,
                        error: crate::error_chain(&e),
                    });
                    tokio::time::sleep(policy.delay(failures)).await;
                    failures += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn upload_session(
        &self,
        registry: &str,
        repo: &str,
        desc: &Descriptor,
        store: &Arc<dyn ContentStore>,
        opts: &UploadOptions,
        mount_from: Option<&String>,
        scopes: &[String],
        progress: &ProgressSink,
    ) -> Result<BlobOutcome> {
        let start = match mount_from {
            Some(from) => format!(
                "/v2/{repo}/blobs/uploads/?mount={}&from={}",
                desc.digest,
                url::form_urlencoded::byte_serialize(from.as_bytes()).collect::<String>()
            ),
            None => format!("/v2/{repo}/blobs/uploads/"),
        };
        let resp = self
            .send(registry, scopes, Method::POST, &start, &|rb| {
                rb.header(CONTENT_LENGTH, "0")
            })
            .await?;
        match (resp.status().as_u16(), mount_from) {
            (201, Some(from)) => {
                return Ok(BlobOutcome::Mounted { from: from.clone() });
            }
            (202, _) => {}
            _ => return Err(status_error(&Method::POST, resp, registry).await),
        }
        let min_chunk: u64 = header(&resp, "OCI-Chunk-Min-Length")
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        let mut location = resolve_location(&resp)?;
        drop(resp);
        let size = desc.size;
        progress.emit(Event::BlobProgress {
            digest: desc.digest.clone(),
            done: 0,
            total: size,
        });
        if let Some(chunk) = opts.chunk_size {
            let chunk = chunk.max(min_chunk).max(1);
            let mut offset = 0;
            while offset < size {
                let len = chunk.min(size - offset);
                let end = offset + len - 1;
                let body_store = store.clone();
                let digest = desc.digest.clone();
                let p = progress.clone();
                let target = location.to_string();
                let resp = self
                    .send_once(registry, scopes, Method::PATCH, &target, &|rb| {
                        rb.header(CONTENT_TYPE, "application/octet-stream")
                            .header(CONTENT_RANGE, format!("{offset}-{end}"))
                            .header(CONTENT_LENGTH, len.to_string())
                            .body(blob_body(
                                body_store.clone(),
                                digest.clone(),
                                offset,
                                len,
                                p.clone(),
                                size,
                            ))
                    })
                    .await?;
                // The spec says 202; some registries answer 201 or 204.
                if !matches!(resp.status().as_u16(), 201 | 202 | 204) {
                    return Err(status_error(&Method::PATCH, resp, registry).await);
                }
                // A registry that reports a different end has not stored this chunk.
                if let Some(r) = header(&resp, "Range")
                    && let Some(reported) = r
                        .rsplit('-')
                        .next()
                        .and_then(|n| n.trim().parse::<u64>().ok())
                    && reported != end
                {
                    return Err(Error::Protocol {
                        url: target,
                        message: format!(
                            "after sending bytes {offset}-{end} the registry reports Range {r}"
                        ),
                    });
                }
                if resp.headers().contains_key(LOCATION) {
                    location = resolve_location(&resp)?;
                }
                offset += len;
            }
            location
                .query_pairs_mut()
                .append_pair("digest", &desc.digest.to_string());
            let resp = self
                .send_once(registry, scopes, Method::PUT, location.as_str(), &|rb| {
                    rb.header(CONTENT_LENGTH, "0")
                })
                .await?;
            if resp.status().as_u16() != 201 && !resp.status().is_success() {
                return Err(status_error(&Method::PUT, resp, registry).await);
            }
        } else {
            location
                .query_pairs_mut()
                .append_pair("digest", &desc.digest.to_string());
            let digest = desc.digest.clone();
            let p = progress.clone();
            let resp = self
                .send_once(registry, scopes, Method::PUT, location.as_str(), &|rb| {
                    rb.header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_LENGTH, size.to_string())
                        .body(blob_body(
                            store.clone(),
                            digest.clone(),
                            0,
                            size,
                            p.clone(),
                            size,
                        ))
                })
                .await?;
            if !resp.status().is_success() {
                return Err(status_error(&Method::PUT, resp, registry).await);
            }
        }
        Ok(BlobOutcome::Uploaded)
    }

    /// Stores a manifest (its exact bytes) under `reference` (a tag or its
    /// digest). Returns the digest the registry reports, which must match.
    pub async fn put_manifest(
        &self,
        registry: &str,
        repo: &str,
        reference: &str,
        manifest: &ParsedManifest,
    ) -> Result<Digest> {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let scopes = vec![repository_scope(repo, &[Action::Pull, Action::Push])];
        let body = Bytes::from(manifest.bytes.clone());
        let resp = self
            .send(registry, &scopes, Method::PUT, &path, &|rb| {
                rb.header(CONTENT_TYPE, manifest.media_type.as_str())
                    .body(body.clone())
            })
            .await?;
        if !resp.status().is_success() {
            return Err(status_error(&Method::PUT, resp, registry).await);
        }
        if let Some(reported) =
            header(&resp, "Docker-Content-Digest").and_then(|d| d.trim().parse::<Digest>().ok())
            && reported.algorithm() == manifest.digest.algorithm()
            && reported != manifest.digest
        {
            return Err(Error::DigestMismatch {
                what: format!("manifest pushed to {registry}/{repo}:{reference}"),
                expected: manifest.digest.clone(),
                actual: reported,
            });
        }
        Ok(manifest.digest.clone())
    }
}
