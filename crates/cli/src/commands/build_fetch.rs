//! ADD's URLs for `berth build`: `https://` (and `http://`) over the same
//! HTTP stack as the registry client (reqwest with rustls; the system's
//! certificates, so `SSL_CERT_FILE` works), plugged into berth-build as
//! its [`UrlFetcher`].

use std::io::Write;
use std::time::{Duration, SystemTime};

use berth_build::fetch::UrlFetcher;

/// Fetches with reqwest on a small private runtime.
pub(super) struct HttpsFetcher {
    client: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl HttpsFetcher {
    pub(super) fn new() -> anyhow::Result<HttpsFetcher> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(120))
            .build()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(HttpsFetcher { client, rt })
    }
}

impl UrlFetcher for HttpsFetcher {
    fn fetch(&self, url: &str, out: &mut dyn Write) -> Result<Option<SystemTime>, String> {
        self.rt.block_on(async {
            let mut resp = self
                .client
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
