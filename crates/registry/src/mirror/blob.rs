//! Mirrored blobs: served from the store when cached, otherwise fetched
//! once and streamed to every client that asks while the fetch runs.
//!
//! A fetch (a *flight*) runs in its own task. It writes what the upstream
//! sends once, into a content-store ingest (hashing as it goes; committed
//! only if the digest matches), and clients read that same file at their
//! own pace through a second handle on it
//! ([`FsStore::ingest_followed`](berth_content::FsStore::ingest_followed)),
//! which stays valid when the commit renames the file into `blobs/`.
//! Clients are told how far the file is written (flushed) through a `watch`
//! channel.
//!
//! Cost per byte is what a cold pull through the mirror pays over a direct
//! one (on a small machine the client, the mirror and the upstream share the
//! cores), so the receiving side does the least it can: one blocking thread
//! per flight asks for a piece, hashes it, writes it and drops it before it
//! asks for the next ([`receive`]). The HTTP connection then reads into the
//! same buffer every time: no fresh pages to fault in, and the bytes are
//! still in the CPU's cache while they are hashed and written. (Handing the
//! pieces to other threads, or keeping recent ones in memory for clients,
//! measured worse: every piece held is a new buffer.) On the serving side a
//! response body ([`FlightBody`]) reads the file when the connection polls
//! it, with no task or thread between the two: thread handoffs were a
//! quarter of the mirror's CPU time. (The receiving thread stays a thread:
//! a file write can block for long in writeback throttling, and that must
//! not stall the runtime's workers.) And while a client keeps up, the
//! flight receives only [`LEAD`] bytes ahead of it ([`Pace`]): the mirror's
//! work is spread beside the client's instead of in one burst that the
//! client competes with for the cores; alone, or with stalled clients, a
//! flight receives as fast as the upstream sends.
//!
//! Nothing unverified is ever served as final: while the flight runs, a
//! client gets every byte but the last of its response; the last one goes
//! out only once the whole blob matched its digest. On a mismatch, or an
//! upstream that dies mid-blob, every client's connection is aborted (a
//! retryable error) and nothing is committed. A client that disconnects
//! does not stop the flight: the blob is still cached for the next one.

use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use berth_content::{ContentStore, Expected, Ingest};
use berth_oci::Digest;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::body::Frame;
use hyper::{HeaderMap, Response, StatusCode};
use tokio::sync::watch;

use super::upstream::BlobResponse;
use super::{Failure, FailureKind, Mirror, Subject, Target};
use crate::error::{ApiError, ErrorCode};
use crate::http::{Body, empty, reply, serve_blob_file};
use crate::registry::Registry;
use crate::routes;
use crate::storage::MetaStore;

/// Bytes read from the ingest file per step.
const READ_CHUNK: usize = 256 << 10;

/// Where a flight is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum State {
    /// Waiting for the upstream's response.
    Connecting,
    /// Receiving; `written` bytes are in the file.
    Streaming,
    /// Everything arrived and matched the digest.
    Verified,
    Failed(Failure),
}

#[derive(Debug, Clone)]
pub(crate) struct Progress {
    pub state: State,
    /// The blob's size, if the upstream announced it.
    pub size: Option<u64>,
    pub written: u64,
}

/// One blob being fetched.
#[derive(Debug)]
pub(crate) struct BlobFlight {
    /// The repository the fetch asks the upstream for.
    pub repo: String,
    /// A reading handle on the ingest (later the blob) file; set before
    /// the state becomes [`State::Streaming`].
    file: OnceLock<std::fs::File>,
    progress: watch::Sender<Progress>,
    pace: Pace,
}

/// How far a flight receives ahead of its furthest client.
const LEAD: u64 = 4 << 20;
/// A flight whose clients took nothing for this long stops waiting for them.
const STALL: Duration = Duration::from_millis(200);

/// Keeps a flight at most [`LEAD`] bytes ahead of its furthest client, while
/// a client keeps taking bytes: the upstream, the mirror and the client then
/// work side by side instead of the mirror taking a core in a burst the
/// client competes with (on a small machine that burst is most of what a
/// cold pull through the mirror costs over a direct one). A flight with no
/// client, or whose clients stalled for [`STALL`], receives freely from
/// then on: the blob is cached whatever its clients do, and slow clients
/// never hold the upstream connection open.
#[derive(Debug)]
struct Pace {
    state: std::sync::Mutex<PaceState>,
    moved: std::sync::Condvar,
    stall: Duration,
}

#[derive(Debug, Default)]
struct PaceState {
    clients: usize,
    furthest: u64,
    /// The receiver is waiting for `furthest` to move.
    waiting: bool,
    free: bool,
}

impl Pace {
    fn new(stall: Duration) -> Pace {
        Pace {
            state: Default::default(),
            moved: Default::default(),
            stall,
        }
    }

    fn attach(&self) {
        self.state.lock().unwrap().clients += 1;
    }

    fn detach(&self) {
        let mut s = self.state.lock().unwrap();
        s.clients -= 1;
        if s.waiting {
            self.moved.notify_all();
        }
    }

    /// A client took the bytes before `pos`.
    fn took(&self, pos: u64) {
        let mut s = self.state.lock().unwrap();
        if pos > s.furthest {
            s.furthest = pos;
            if s.waiting {
                self.moved.notify_all();
            }
        }
    }

    /// Blocks the receiving thread while `received` is [`LEAD`] bytes past
    /// the furthest client, unless there is none or they stalled.
    fn wait(&self, received: u64) {
        let mut s = self.state.lock().unwrap();
        while !s.free && s.clients > 0 && received >= s.furthest + LEAD {
            let before = s.furthest;
            s.waiting = true;
            let (g, t) = self.moved.wait_timeout(s, self.stall).unwrap();
            s = g;
            s.waiting = false;
            if t.timed_out() && s.furthest == before {
                s.free = true;
            }
        }
    }
}

impl BlobFlight {
    fn set(&self, state: State) {
        self.progress.send_modify(|p| p.state = state);
    }
}

/// Ends a flight when its task ends, however it ends (a panic included):
/// clients still waiting are failed, and the table forgets the flight.
struct Landing {
    m: Arc<Mirror>,
    key: (usize, Digest),
    flight: Arc<BlobFlight>,
}

impl Drop for Landing {
    fn drop(&mut self) {
        self.flight.progress.send_if_modified(|p| {
            if matches!(p.state, State::Connecting | State::Streaming) {
                p.state = State::Failed(Failure::internal("the blob fetch ended early"));
                true
            } else {
                false
            }
        });
        self.m.blobs.lock().unwrap().remove(&self.key);
    }
}

/// Counts responses streaming from flights.
struct Streaming(Arc<Mirror>);

impl Drop for Streaming {
    fn drop(&mut self) {
        self.0.stats.blob_streaming.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `GET`/`HEAD /v2/<name>/blobs/<digest>` on a mirrored repository.
pub(crate) async fn get(
    reg: &Arc<Registry>,
    m: &Arc<Mirror>,
    t: &Target,
    digest: &str,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response<Body>, ApiError> {
    let d = routes::digest(digest)?;
    let src = &m.sources[t.upstream];
    let linked = src.meta.blob_linked(&t.repo, &d)?;
    let present = reg.content.info(&d)?.is_some();
    if present && !linked {
        // The bytes are here (from another repository, or local); the
        // upstream must confirm this repository has them.
        match src.up.blob_size(&t.repo, &d).await {
            Ok(_) => {
                let (mm, tt, dd) = (m.clone(), t.clone(), d.clone());
                let _ = tokio::task::spawn_blocking(move || {
                    mm.sources[tt.upstream].meta.link_blob(&tt.repo, &dd)
                })
                .await;
            }
            Err(e) => return Err(Failure::from(e).to_api(Subject::Blob, t.bare)),
        }
    }
    if present {
        if m.cache.contains(&d) {
            m.cache.touch(&d);
        }
        m.stats.blob_hits.fetch_add(1, Ordering::Relaxed);
        return match serve_blob_file(reg, &d, headers, head).await {
            // Deleted (evicted) between the check and the open: fetch it.
            Err(e) if e.code == ErrorCode::BlobUnknown => {
                m.cache.forget(&d);
                Box::pin(get(reg, m, t, digest, headers, head)).await
            }
            other => other,
        };
    }
    let existing = m
        .blobs
        .lock()
        .unwrap()
        .get(&(t.upstream, d.clone()))
        .cloned();
    if head && existing.is_none() {
        // A HEAD does not start a download.
        let size = src
            .up
            .blob_size(&t.repo, &d)
            .await
            .map_err(|e| Failure::from(e).to_api(Subject::Blob, t.bare))?;
        let out = [
            ("Content-Type", "application/octet-stream".to_owned()),
            ("Docker-Content-Digest", d.to_string()),
            ("Content-Length", size.to_string()),
        ];
        return Ok(reply(StatusCode::OK, &out, empty()));
    }
    let flight = join_or_start(reg, m, t, &d)?;
    let Some(flight) = flight else {
        // It landed in the store meanwhile: serve it (after the checks above).
        return Box::pin(get(reg, m, t, digest, headers, head)).await;
    };
    if flight.repo != t.repo && !linked {
        // Someone else's fetch: this repository must have the blob too.
        src.up
            .blob_size(&t.repo, &d)
            .await
            .map_err(|e| Failure::from(e).to_api(Subject::Blob, t.bare))?;
    }
    respond(reg, m, flight, &d, headers, head, t.bare).await
}

/// The flight for `d`, joined or started; `None` if the blob was committed
/// between the caller's check and now.
fn join_or_start(
    reg: &Arc<Registry>,
    m: &Arc<Mirror>,
    t: &Target,
    d: &Digest,
) -> Result<Option<Arc<BlobFlight>>, ApiError> {
    let key = (t.upstream, d.clone());
    let mut map = m.blobs.lock().unwrap();
    if let Some(f) = map.get(&key) {
        m.stats.blob_joins.fetch_add(1, Ordering::Relaxed);
        return Ok(Some(f.clone()));
    }
    // Flights leave the table only after committing, so this check under
    // the lock cannot miss one that just finished.
    if reg.content.info(d)?.is_some() {
        return Ok(None);
    }
    let (progress, _) = watch::channel(Progress {
        state: State::Connecting,
        size: None,
        written: 0,
    });
    let f = Arc::new(BlobFlight {
        repo: t.repo.clone(),
        file: OnceLock::new(),
        progress,
        pace: Pace::new(STALL),
    });
    map.insert(key.clone(), f.clone());
    drop(map);
    m.stats.blob_fetches.fetch_add(1, Ordering::Relaxed);
    let landing = Landing {
        m: m.clone(),
        key,
        flight: f.clone(),
    };
    let (reg, m, t, d, flight) = (reg.clone(), m.clone(), t.clone(), d.clone(), f.clone());
    tokio::spawn(async move {
        let res = fetch(&reg, &m, &t, &d, &flight).await;
        if let Err(f) = res {
            tracing::warn!(digest = %d, repository = %t.repo, error = %f.message, "mirror blob fetch failed");
            // Once verified, clients get their bytes whatever happens to
            // the commit (which only costs the next client a fetch).
            flight.progress.send_if_modified(|p| {
                if p.state == State::Verified {
                    false
                } else {
                    p.state = State::Failed(f);
                    true
                }
            });
        }
        drop(landing);
        m.maybe_evict(&reg);
    });
    Ok(Some(f))
}

/// The work of one flight: download, verify, commit, link, record.
async fn fetch(
    reg: &Arc<Registry>,
    m: &Arc<Mirror>,
    t: &Target,
    d: &Digest,
    flight: &Arc<BlobFlight>,
) -> Result<(), Failure> {
    let src = &m.sources[t.upstream];
    let r = reg.clone();
    let guard = tokio::task::spawn_blocking(move || r.images.write_guard())
        .await
        .map_err(|e| Failure::internal(e.to_string()))?
        .map_err(|e| Failure::internal(crate::error::error_chain(&e)))?;
    let mut resp = src.up.blob(&t.repo, d).await?;
    let limit = reg.cfg.max_blob_bytes;
    if limit > 0
        && let Some(n) = resp.size.filter(|n| *n > limit)
    {
        return Err(too_large(d, &src.up.registry, limit, n));
    }
    // One file: the ingest, which clients read while it is written.
    let (mut ingest, reader) = reg.content.ingest_followed(d.algorithm())?;
    let _ = flight.file.set(reader);
    flight.progress.send_modify(|p| {
        p.state = State::Streaming;
        p.size = resp.size;
    });
    let timeout = Duration::from_secs(reg.cfg.io_timeout_secs);
    let (f, mm, upstream, dd) = (flight.clone(), m.clone(), t.upstream, d.clone());
    let handle = tokio::runtime::Handle::current();
    let (outcome, resp, ingest) = tokio::task::spawn_blocking(move || {
        let cx = Receiving {
            m: &mm,
            upstream,
            digest: &dd,
            flight: &f,
            limit,
            timeout,
        };
        let outcome = receive(&handle, &cx, &mut resp, &mut *ingest);
        (outcome, resp, ingest)
    })
    .await
    .map_err(|e| Failure::internal(e.to_string()))?;
    outcome?;
    let size = ingest.size();
    if let Some(n) = resp.size
        && n != size
    {
        return Err(Failure {
            kind: FailureKind::Unavailable,
            message: format!(
                "upstream {} sent {size} of {n} bytes of {d}",
                src.up.registry
            ),
        });
    }
    let got = ingest.digest();
    if got != *d {
        m.stats.digest_mismatches.fetch_add(1, Ordering::Relaxed);
        return Err(Failure::invalid(format!(
            "upstream {} sent content with digest {got} for blob {d}",
            src.up.registry
        )));
    }
    // Clients may now finish; committing (fsync) is off their path.
    flight.set(State::Verified);
    let (rr, mm, tt, dd, ff) = (reg.clone(), m.clone(), t.clone(), d.clone(), flight.clone());
    tokio::task::spawn_blocking(move || -> Result<(), Failure> {
        let _guard = guard;
        // Linked first: a request between the two finds the link and joins
        // this flight (still in the table) instead of asking the upstream.
        mm.sources[tt.upstream].meta.link_blob(&tt.repo, &dd)?;
        ingest.commit(Expected::exact(dd.clone(), size))?;
        mm.cache.record(&dd, size);
        // These bytes were hashed on their way in: serving the committed
        // file need not hash them again. (If the commit found the blob
        // already there, this key names our discarded file, not the blob,
        // and never matches.)
        if let Some(meta) = ff.file.get().and_then(|f| f.metadata().ok()) {
            rr.verified
                .insert(crate::registry::VerifiedCache::key(&dd, &meta));
        }
        Ok(())
    })
    .await
    .map_err(|e| Failure::internal(e.to_string()))?
}

/// What [`receive`] needs to know about its flight.
struct Receiving<'a> {
    m: &'a Mirror,
    upstream: usize,
    digest: &'a Digest,
    flight: &'a BlobFlight,
    limit: u64,
    timeout: Duration,
}

/// Receives a blob's body into `ingest` (which hashes it), telling clients
/// how far the file is written after each piece. Runs on a blocking thread:
/// each piece is hashed, written and dropped before the next is asked for,
/// so the connection reuses its read buffer (no fresh pages per piece, and
/// the bytes are still in the CPU's cache when they are hashed and written).
fn receive(
    rt: &tokio::runtime::Handle,
    cx: &Receiving<'_>,
    resp: &mut BlobResponse,
    ingest: &mut dyn Ingest,
) -> Result<(), Failure> {
    let (d, registry) = (cx.digest, &cx.m.sources[cx.upstream].up.registry);
    let mut received = 0u64;
    loop {
        cx.flight.pace.wait(received);
        let b = match rt.block_on(tokio::time::timeout(cx.timeout, resp.chunk())) {
            Err(_) => {
                return Err(Failure {
                    kind: FailureKind::Unavailable,
                    message: format!("upstream {registry} stalled sending {d}"),
                });
            }
            Ok(Err(e)) => {
                return Err(Failure {
                    kind: FailureKind::Unavailable,
                    message: format!("upstream {registry} failed sending {d}: {e}"),
                });
            }
            Ok(Ok(None)) => return Ok(()),
            Ok(Ok(Some(b))) => b,
        };
        received += b.len() as u64;
        cx.m.stats
            .bytes_fetched
            .fetch_add(b.len() as u64, Ordering::Relaxed);
        if cx.limit > 0 && received > cx.limit {
            return Err(too_large(d, registry, cx.limit, received));
        }
        ingest
            .write_all(&b)
            .and_then(|()| ingest.flush())
            .map_err(|e| Failure::internal(format!("write {d}: {e}")))?;
        drop(b);
        cx.flight.progress.send_modify(|p| p.written = received);
    }
}

fn too_large(d: &Digest, registry: &str, limit: u64, n: u64) -> Failure {
    Failure::invalid(format!(
        "blob {d} from {registry} is larger than the limit of {limit} bytes ({n})"
    ))
}

/// A response streaming the flight's file.
async fn respond(
    reg: &Arc<Registry>,
    m: &Arc<Mirror>,
    flight: Arc<BlobFlight>,
    d: &Digest,
    headers: &HeaderMap,
    head: bool,
    bare: bool,
) -> Result<Response<Body>, ApiError> {
    let mut rx = flight.progress.subscribe();
    let ranged = headers.contains_key(hyper::header::RANGE);
    // A range is served from verified bytes only; a whole blob as it
    // arrives, once its first bytes are there (a fetch that fails at once
    // is still answered with an error response, not a cut connection).
    let ready = |p: &Progress| match p.state {
        State::Connecting => false,
        State::Streaming => !ranged && p.written > 0,
        State::Verified | State::Failed(_) => true,
    };
    let waited = rx.wait_for(ready).await.map(|p| p.clone());
    let p = match waited {
        Ok(p) => p,
        Err(_) => rx.borrow().clone(),
    };
    let size = match p.state {
        State::Failed(f) => return Err(f.to_api(Subject::Blob, bare)),
        State::Verified => Some(p.written),
        State::Streaming => p.size,
        State::Connecting => return Err(ApiError::internal("blob fetch ended early")),
    };
    let mut out: Vec<(&'static str, String)> = vec![
        ("Content-Type", "application/octet-stream".into()),
        ("Docker-Content-Digest", d.to_string()),
        ("ETag", format!("\"{d}\"")),
    ];
    let (status, start, end) = match (ranged, size) {
        (true, Some(len)) => {
            let h = headers
                .get(hyper::header::RANGE)
                .and_then(|v| v.to_str().ok());
            match crate::http::parse_range(h, len) {
                crate::http::RangeReq::Full => (StatusCode::OK, 0, len),
                crate::http::RangeReq::Part(s, e) => {
                    out.push(("Content-Range", format!("bytes {s}-{e}/{len}")));
                    (StatusCode::PARTIAL_CONTENT, s, e + 1)
                }
                crate::http::RangeReq::Unsatisfiable => {
                    return Err(ApiError::new(
                        ErrorCode::RangeInvalid,
                        format!("the range is outside the blob's {len} bytes"),
                    )
                    .with_header("Content-Range", format!("bytes */{len}")));
                }
            }
        }
        (_, Some(len)) => (StatusCode::OK, 0, len),
        (_, None) => (StatusCode::OK, 0, u64::MAX),
    };
    out.push(("Accept-Ranges", "bytes".into()));
    if end != u64::MAX {
        out.push(("Content-Length", (end - start).to_string()));
    }
    if head {
        return Ok(reply(status, &out, empty()));
    }
    m.stats.blob_streaming.fetch_add(1, Ordering::Relaxed);
    flight.pace.attach();
    let body = FlightBody {
        flight,
        rx: Some(rx),
        changed: None,
        start,
        pos: start,
        end,
        done: false,
        reg: reg.clone(),
        _streaming: Streaming(m.clone()),
    };
    Ok(reply(status, &out, BoxBody::new(body)))
}

/// A future waiting for a flight's next progress; gives the receiver back.
type Changed = Pin<Box<dyn Future<Output = (watch::Receiver<Progress>, bool)> + Send + Sync>>;

/// A response body with bytes `[start, end)` of a flight's file, read as
/// the flight writes them, the last byte held back until the blob is
/// verified.
///
/// The connection polls it when it can send more, and it reads the file
/// right there: the bytes were written a moment ago and are in the page
/// cache, so a read costs less than handing it to another thread (which
/// is what each piece cost before, twice over).
struct FlightBody {
    flight: Arc<BlobFlight>,
    /// The progress receiver, or the future holding it while waiting.
    rx: Option<watch::Receiver<Progress>>,
    changed: Option<Changed>,
    start: u64,
    pos: u64,
    end: u64,
    done: bool,
    reg: Arc<Registry>,
    _streaming: Streaming,
}

impl FlightBody {
    fn fail(&mut self, e: io::Error) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.done = true;
        Poll::Ready(Some(Err(e)))
    }
}

impl Drop for FlightBody {
    fn drop(&mut self) {
        self.flight.pace.detach();
        self.reg
            .metrics
            .bytes_out
            .fetch_add(self.pos - self.start, Ordering::Relaxed);
    }
}

impl hyper::body::Body for FlightBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            if let Some(fut) = this.changed.as_mut() {
                let Poll::Ready((rx, alive)) = fut.as_mut().poll(cx) else {
                    return Poll::Pending;
                };
                this.changed = None;
                let verified = rx.borrow().state == State::Verified;
                this.rx = Some(rx);
                if !alive && !verified {
                    return this.fail(io::Error::other("the upstream fetch ended early"));
                }
            }
            let Some(rx) = this.rx.as_mut() else {
                return this.fail(io::Error::other("the blob body lost its progress"));
            };
            let (written, state) = {
                let p = rx.borrow_and_update();
                (p.written, p.state.clone())
            };
            let verified = match state {
                State::Failed(f) => {
                    return this.fail(io::Error::new(io::ErrorKind::InvalidData, f.message));
                }
                State::Verified => true,
                _ => false,
            };
            let available = this.end.min(written);
            let limit = if verified || this.end == u64::MAX {
                // Unknown length: the body's end is the signal, sent only once verified.
                available
            } else {
                available.min(this.end - 1)
            };
            if this.pos < limit {
                let n = (limit - this.pos).min(READ_CHUNK as u64) as usize;
                let read = this
                    .flight
                    .file
                    .get()
                    .ok_or_else(|| io::Error::other("the blob fetch has no file"))
                    .and_then(|file| read_at(file, n, this.pos));
                return match read {
                    Ok(buf) => {
                        this.pos += n as u64;
                        this.flight.pace.took(this.pos);
                        Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))))
                    }
                    Err(e) => this.fail(e),
                };
            }
            if verified && this.pos >= available {
                this.done = true;
                return Poll::Ready(None);
            }
            // Not verified and nothing new to read: wait for more (a
            // flight that is gone fails above).
            let mut rx = this.rx.take().expect("checked above");
            this.changed = Some(Box::pin(async move {
                let alive = rx.changed().await.is_ok();
                (rx, alive)
            }));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        if self.end == u64::MAX {
            hyper::body::SizeHint::default()
        } else {
            hyper::body::SizeHint::with_exact(self.end - self.pos)
        }
    }
}

/// Reads `n` bytes at `at` into a new buffer (not zeroed first: the bytes
/// land in its spare capacity).
fn read_at(file: &std::fs::File, n: usize, at: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(n);
    while buf.len() < n {
        let off = at + buf.len() as u64;
        if rustix::io::pread(file, rustix::buffer::spare_capacity(&mut buf), off)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the blob's file is shorter than what was written",
            ));
        }
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    /// Runs `pace.wait(received)` on a thread and returns once it waits
    /// (bounded); the flag says it returned.
    fn waiting(
        pace: &Arc<Pace>,
        received: u64,
    ) -> (
        std::thread::JoinHandle<()>,
        Arc<std::sync::atomic::AtomicBool>,
    ) {
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (p, d) = (pace.clone(), done.clone());
        let h = std::thread::spawn(move || {
            p.wait(received);
            d.store(true, Ordering::SeqCst);
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !pace.state.lock().unwrap().waiting {
            assert!(!h.is_finished(), "returned without waiting");
            assert!(std::time::Instant::now() < deadline, "never waited");
            std::thread::yield_now();
        }
        (h, done)
    }

    #[test]
    fn pace_waits_for_the_furthest_client_only_while_one_is_attached() {
        // A stall no test outlives: only clients release the receiver here.
        let pace = Arc::new(Pace::new(Duration::from_secs(3600)));
        // No client: never waits.
        pace.wait(100 * LEAD);
        pace.attach();
        // Less than the lead ahead: no wait either.
        pace.wait(LEAD - 1);
        let (h, done) = waiting(&pace, LEAD);
        assert!(!done.load(Ordering::SeqCst), "must wait for the client");
        // A client behind the furthest one moves nothing.
        pace.took(0);
        assert!(!done.load(Ordering::SeqCst));
        pace.took(1);
        h.join().unwrap();
        assert!(done.load(Ordering::SeqCst));
        // The last client leaving releases a waiting receiver.
        let (h, _) = waiting(&pace, 10 * LEAD);
        pace.detach();
        h.join().unwrap();
        assert!(!pace.state.lock().unwrap().free, "nobody stalled");
    }

    #[test]
    fn pace_stops_waiting_for_stalled_clients_for_good() {
        let pace = Pace::new(STALL);
        pace.attach();
        let t = std::time::Instant::now();
        pace.wait(LEAD);
        assert!(t.elapsed() >= STALL, "a client is attached: wait first");
        assert!(pace.state.lock().unwrap().free);
        // Free from now on, however far ahead.
        pace.wait(1000 * LEAD);
    }

    #[test]
    fn read_at_reads_exactly_or_fails() {
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        f.write_all(&data).unwrap();
        assert_eq!(
            read_at(&f, 200_000, 50_000).unwrap(),
            &data[50_000..250_000]
        );
        assert_eq!(read_at(&f, 0, 7).unwrap(), b"");
        let e = read_at(&f, 10, 299_995).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
