//! Listening, connections, timeouts, graceful shutdown and the periodic
//! maintenance task (expiring idle uploads, scheduled GC).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::gc::{self, GcOptions};
use crate::registry::Registry;

/// How long in-flight requests may take to finish after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(10);
/// How often idle uploads are expired.
const MAINTENANCE: Duration = Duration::from_secs(30);

/// Installs the global `tracing` subscriber (stderr; `BERTH_LOG` filters,
/// default `info`).
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        b.json().try_init()
    } else {
        b.with_ansi(false).try_init()
    };
}

/// Serves `cfg` until SIGINT or SIGTERM. `ready` is called with the bound
/// address once the server accepts connections.
pub fn run(root: PathBuf, cfg: Config, ready: impl FnOnce(SocketAddr)) -> Result<()> {
    run_with(root, cfg, Vec::new(), ready)
}

/// [`run`], telling the server which other keepers share the store's blobs
/// (the mirror's cache eviction spares what they keep).
pub fn run_with(
    root: PathBuf,
    cfg: Config,
    keepers: Vec<crate::registry::Keeper>,
    ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    cfg.validate()?;
    let tls = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => Some(tls_acceptor(c, k)?),
        _ => None,
    };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(8));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .map_err(|e| Error::io("start runtime", "", e))?;
    rt.block_on(async move {
        let listener = TcpListener::bind(&cfg.addr)
            .await
            .map_err(|source| Error::Bind {
                addr: cfg.addr.clone(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: cfg.addr.clone(),
            source,
        })?;
        let reg = Arc::new(Registry::open(&root, cfg)?.with_keepers(keepers));
        tokio::spawn(maintenance(reg.clone(), root.clone()));
        if let Some(m) = &reg.mirror {
            tokio::spawn(m.clone().maintenance(reg.clone()));
        }
        ready(addr);
        serve(reg, listener, tls).await;
        Ok(())
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => {}
                _ = i.recv() => {}
            }
        }
        _ => std::future::pending::<()>().await,
    }
}

/// A TLS acceptor from PEM files, offering HTTP/2 and HTTP/1.1 by ALPN.
fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor> {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &str, p: &Path, e: &dyn std::fmt::Display| {
        Error::Config(format!("{what} {}: {e}", p.display()))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad("reading certificates from", cert, &e))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| bad("reading certificates from", cert, &e))?;
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "no certificate in {}",
            cert.display()
        )));
    }
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| bad("reading the key from", key, &e))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::Config(format!("TLS certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

async fn serve(reg: Arc<Registry>, listener: TcpListener, tls: Option<TlsAcceptor>) {
    let io_timeout = Duration::from_secs(reg.cfg.io_timeout_secs);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(io_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(io_timeout))
        .keep_alive_timeout(io_timeout)
        .max_concurrent_streams(256);
    let graceful = GracefulShutdown::new();
    let signal = shutdown_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of descriptors and the like: back off, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let reg = reg.clone();
                let svc = service_fn(move |req| {
                    let reg = reg.clone();
                    async move { Ok::<_, std::convert::Infallible>(crate::http::handle(reg, req, peer).await) }
                });
                match &tls {
                    None => {
                        let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
                        let conn = graceful.watch(conn);
                        tokio::spawn(async move {
                            if let Err(e) = conn.await {
                                tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                            }
                        });
                    }
                    Some(acceptor) => {
                        // The handshake runs in the connection's task, bounded
                        // in time, so a silent client blocks nobody.
                        let acceptor = acceptor.clone();
                        let builder = builder.clone();
                        let watcher = graceful.watcher();
                        tokio::spawn(async move {
                            let stream = match tokio::time::timeout(io_timeout, acceptor.accept(stream)).await {
                                Ok(Ok(s)) => s,
                                Ok(Err(e)) => {
                                    tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => return,
                            };
                            let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
                            if let Err(e) = watcher.watch(conn).await {
                                tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                            }
                        });
                    }
                }
            }
            _ = &mut signal => {
                tracing::info!("shutting down");
                break;
            }
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN) => tracing::warn!("connections still open after the drain period"),
    }
}

async fn maintenance(reg: Arc<Registry>, root: PathBuf) {
    let idle = Duration::from_secs(reg.cfg.upload_idle_secs);
    let gc_every = Duration::from_secs(reg.cfg.gc.interval_secs);
    // Tick at least as often as GC is due.
    let tick = if gc_every.is_zero() {
        MAINTENANCE
    } else {
        gc_every.min(MAINTENANCE)
    };
    let mut since_gc = Duration::ZERO;
    loop {
        tokio::time::sleep(tick).await;
        let n = reg.uploads.expire(idle);
        if n > 0 {
            tracing::info!(expired = n, "cancelled idle uploads");
        }
        reg.metrics
            .uploads_open
            .store(reg.uploads.len() as u64, Ordering::Relaxed);
        if gc_every.is_zero() {
            continue;
        }
        since_gc += tick;
        if since_gc < gc_every {
            continue;
        }
        since_gc = Duration::ZERO;
        let opts = GcOptions {
            dry_run: false,
            grace: Duration::from_secs(reg.cfg.gc.grace_secs),
            delete_untagged: reg.cfg.gc.delete_untagged,
            wait: false,
        };
        let r = reg.clone();
        let root = root.clone();
        match tokio::task::spawn_blocking(move || {
            let keepers: Vec<&dyn berth_image::GcRoots> = r
                .keepers
                .0
                .iter()
                .map(|k| &**k as &dyn berth_image::GcRoots)
                .collect();
            let rep = gc::collect_with(&root, &opts, &keepers);
            (r, rep)
        })
        .await
        {
            Ok((r, Ok(rep))) if rep.skipped_busy => {
                tracing::info!("gc skipped: writers are active");
                drop(r);
            }
            Ok((r, Ok(rep))) => {
                r.metrics.gc_runs.fetch_add(1, Ordering::Relaxed);
                r.metrics
                    .gc_removed_blobs
                    .fetch_add(rep.removed_blobs.len() as u64, Ordering::Relaxed);
                r.metrics
                    .storage_bytes
                    .store(rep.kept_bytes, Ordering::Relaxed);
                r.metrics
                    .storage_blobs
                    .store(rep.kept_blobs as u64, Ordering::Relaxed);
                tracing::info!(
                    removed_blobs = rep.removed_blobs.len(),
                    reclaimed_bytes = rep.reclaimed_bytes,
                    deleted_manifests = rep.deleted_manifests.len(),
                    "gc done"
                );
            }
            Ok((_, Err(e))) => tracing::error!(error = %crate::error::error_chain(&e), "gc failed"),
            Err(e) => tracing::error!(error = %e, "gc panicked"),
        }
    }
}
