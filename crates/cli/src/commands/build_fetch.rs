//! ADD's URLs for `berth build`: `https://` (and `http://`) over the same
//! HTTP stack as the registry client (reqwest with rustls; the system's
//! certificates, so `SSL_CERT_FILE` works), plugged into berth-build as
//! its [`UrlFetcher`].

use std::io::Write;
use std::time::{Duration, SystemTime};

use berth_build::fetch::UrlFetcher;

/// Fetches with reqwest on a small private runtime, both made on first use
/// (loading the system's certificates is not free, and most builds fetch
/// nothing).
pub(super) struct HttpsFetcher {
    inner: std::sync::OnceLock<Result<(reqwest::Client, tokio::runtime::Runtime), String>>,
}

impl HttpsFetcher {
    pub(super) fn new() -> HttpsFetcher {
        HttpsFetcher {
            inner: std::sync::OnceLock::new(),
        }
    }

    fn get(&self) -> Result<&(reqwest::Client, tokio::runtime::Runtime), String> {
        self.inner
            .get_or_init(|| {
                let _ = rustls::crypto::ring::default_provider().install_default();
                let client = reqwest::Client::builder()
                    .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
                    .connect_timeout(Duration::from_secs(30))
                    .read_timeout(Duration::from_secs(120))
                    .build()
                    .map_err(|e| format!("setting up HTTPS: {}", chain(&e)))?;
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .map_err(|e| format!("setting up HTTPS: {e}"))?;
                Ok((client, rt))
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl UrlFetcher for HttpsFetcher {
    fn fetch(&self, url: &str, out: &mut dyn Write) -> Result<Option<SystemTime>, String> {
        let (client, rt) = self.get()?;
        rt.block_on(async {
            let mut resp = client
                .get(url)
                .send()
                .await
                .map_err(|e| format!("GET {url}: {}", chain(&e)))?;
            if !resp.status().is_success() {
                return Err(format!("GET {url}: {}", resp.status()));
            }
            let modified = resp
                .headers()
                .get(reqwest::header::LAST_MODIFIED)
                .and_then(|v| v.to_str().ok())
                .and_then(berth_build::fetch::http_date);
            while let Some(chunk) = resp
                .chunk()
                .await
                .map_err(|e| format!("GET {url}: {}", chain(&e)))?
            {
                out.write_all(&chunk)
                    .map_err(|e| format!("GET {url}: {e}"))?;
            }
            Ok(modified)
        })
    }
}

/// An error with its causes, one after the other.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
