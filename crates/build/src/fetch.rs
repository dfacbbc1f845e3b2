//! `ADD <http(s)://...>`: downloading a URL source.
//!
//! The network side is a [`UrlFetcher`], passed to the executor like the
//! image resolver: berth-build does no TLS. Its default, [`PlainHttp`], is
//! a small HTTP/1.1 client on the standard library (GET, redirects,
//! `Content-Length` or chunked bodies) for `http://` URLs; a program
//! that has an HTTPS stack passes a fetcher built on it.
//!
//! Whatever fetches, the body is streamed to a file while hashing. Like
//! BuildKit, the file is named after the URL path's last component
//! (`__unnamed__` when there is none), gets mode 0600 and the
//! `Last-Modified` time; `--checksum=sha256:...` is verified before the file
//! is used and, being known in advance, lets a cached step skip the download.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use berth_dockerignore::EntryKind;

use crate::source::Selected;
use crate::{Error, Result};

/// Fetches the URLs of `ADD` sources.
pub trait UrlFetcher: Send + Sync {
    /// Streams the body of a successful GET of `url` into `out` and returns
    /// its `Last-Modified` time, if any. Errors are messages for the user.
    fn fetch(
        &self,
        url: &str,
        out: &mut dyn Write,
    ) -> std::result::Result<Option<SystemTime>, String>;
}

/// `http://` only, on the standard library: the default fetcher.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainHttp;

impl UrlFetcher for PlainHttp {
    fn fetch(
        &self,
        url: &str,
        out: &mut dyn Write,
    ) -> std::result::Result<Option<SystemTime>, String> {
        http_get(url, out)
    }
}

/// A downloaded file: where it is and its content digest.
#[derive(Debug, Clone)]
pub(crate) struct Download {
    pub item: Selected,
    pub digest: String,
}

/// The file name BuildKit gives a URL's download.
pub(crate) fn file_name(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest
        .find('/')
        .map_or("", |i| &rest[i..])
        .split(['?', '#'])
        .next()
        .unwrap_or("");
    match path.trim_end_matches('/').rsplit('/').next() {
        Some(base) if !base.is_empty() && base != "." => base.to_owned(),
        _ => "__unnamed__".to_owned(),
    }
}

struct Url {
    host: String,
    port: u16,
    path: String,
}

fn parse(url: &str) -> std::result::Result<Url, String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        format!("{url}: https:// is not supported yet (the built-in fetcher speaks plain HTTP)")
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = path.split('#').next().unwrap_or("/");
    let (host, port) = if let Some(h) = authority.strip_prefix('[') {
        let (h, p) = h
            .split_once(']')
            .ok_or_else(|| format!("{url}: bad host"))?;
        (format!("[{h}]"), p.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (authority.to_owned(), None),
        }
    };
    let port = match port {
        None | Some("") => 80,
        Some(p) => p.parse().map_err(|_| format!("{url}: bad port {p:?}"))?,
    };
    if host.is_empty() {
        return Err(format!("{url}: no host"));
    }
    Ok(Url {
        host,
        port,
        path: path.to_owned(),
    })
}

/// Parses an HTTP date (RFC 1123, `Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn http_date(s: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    if parts.len() != 6 {
        return None;
    }
    let day: u32 = parts[1].parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[2])? as u32
        + 1;
    let year: i64 = parts[3].parse().ok()?;
    let hms: Vec<u64> = parts[4].split(':').filter_map(|x| x.parse().ok()).collect();
    if hms.len() != 3 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m as i64 + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + (hms[0] * 3600 + hms[1] * 60 + hms[2]) as i64;
    (secs >= 0).then(|| SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64))
}

/// Downloads `url` with `fetcher` into `dir/<n>/<name>`; checks `checksum` if given.
pub(crate) fn download(
    fetcher: &dyn UrlFetcher,
    url: &str,
    checksum: Option<&str>,
    dir: &Path,
    n: usize,
) -> std::result::Result<Download, String> {
    let name = file_name(url);
    let sub = dir.join(format!("url-{n}"));
    fs::create_dir_all(&sub).map_err(|e| format!("{}: {e}", sub.display()))?;
    let target = sub.join(&name);
    struct Hashing {
        f: fs::File,
        d: berth_oci::Digester,
    }
    impl Write for Hashing {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.f.write_all(buf)?;
            self.d.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.f.flush()
        }
    }
    let mut out = Hashing {
        f: fs::File::create(&target).map_err(|e| format!("{}: {e}", target.display()))?,
        d: berth_oci::Algorithm::Sha256.digester(),
    };
    let modified = fetcher.fetch(url, &mut out)?;
    let Hashing { f, d } = out;
    let digest = d.finish().to_string();
    if let Some(want) = checksum
        && want != digest
    {
        return Err(format!(
            "digest mismatch for {url}: expected {want}, got {digest}"
        ));
    }
    f.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("{}: {e}", target.display()))?;
    if let Some(t) = modified {
        f.set_modified(t)
            .map_err(|e| format!("{}: {e}", target.display()))?;
    }
    Ok(Download {
        item: Selected {
            name: name.clone(),
            path: format!("url-{n}/{name}"),
            kind: EntryKind::File,
            below: Vec::new(),
        },
        digest,
    })
}

/// GET over plain HTTP/1.1, following redirects; the body goes to `out`.
fn http_get(url: &str, out: &mut dyn Write) -> std::result::Result<Option<SystemTime>, String> {
    let mut current = url.to_owned();
    for _ in 0..10 {
        let u = parse(&current)?;
        let addr = format!("{}:{}", u.host, u.port);
        let stream = TcpStream::connect(&addr).map_err(|e| format!("GET {current}: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| format!("GET {current}: {e}"))?;
        let mut w = stream
            .try_clone()
            .map_err(|e| format!("GET {current}: {e}"))?;
        let host_header = if u.port == 80 {
            u.host.clone()
        } else {
            addr.clone()
        };
        write!(
            w,
            "GET {} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: berth\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n",
            u.path
        )
        .map_err(|e| format!("GET {current}: {e}"))?;
        let mut r = BufReader::new(stream);
        let mut status_line = String::new();
        r.read_line(&mut status_line)
            .map_err(|e| format!("GET {current}: {e}"))?;
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("GET {current}: bad response {status_line:?}"))?;
        let mut headers: Vec<(String, String)> = Vec::new();
        loop {
            let mut l = String::new();
            r.read_line(&mut l)
                .map_err(|e| format!("GET {current}: {e}"))?;
            let l = l.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        let header = |k: &str| {
            headers
                .iter()
                .find(|(h, _)| h == k)
                .map(|(_, v)| v.as_str())
        };
        if (300..400).contains(&status)
            && let Some(loc) = header("location")
        {
            current = if loc.contains("://") {
                loc.to_owned()
            } else if loc.starts_with('/') {
                format!("http://{}:{}{loc}", u.host, u.port)
            } else {
                let base = u.path.rsplit_once('/').map_or("", |(b, _)| b);
                format!("http://{}:{}{base}/{loc}", u.host, u.port)
            };
            continue;
        }
        if !(200..300).contains(&status) {
            return Err(format!(
                "GET {current}: {}",
                status_line.trim_end().split_once(' ').map_or("", |x| x.1)
            ));
        }
        let chunked =
            header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let length: Option<u64> = header("content-length").and_then(|v| v.parse().ok());
        let modified = header("last-modified").and_then(http_date);
        let mut sink = |buf: &[u8]| -> std::result::Result<(), String> {
            out.write_all(buf).map_err(|e| format!("GET {url}: {e}"))
        };
        let io = |e: std::io::Error| format!("GET {current}: {e}");
        if chunked {
            loop {
                let mut l = String::new();
                r.read_line(&mut l).map_err(io)?;
                let size = u64::from_str_radix(l.trim().split(';').next().unwrap_or(""), 16)
                    .map_err(|_| format!("GET {current}: bad chunk size {l:?}"))?;
                if size == 0 {
                    break;
                }
                copy_n(&mut r, size, &mut sink).map_err(|e| format!("GET {current}: {e}"))?;
                let mut crlf = String::new();
                r.read_line(&mut crlf).map_err(io)?;
            }
        } else if let Some(n) = length {
            copy_n(&mut r, n, &mut sink).map_err(|e| format!("GET {current}: {e}"))?;
        } else {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let k = r.read(&mut buf).map_err(io)?;
                if k == 0 {
                    break;
                }
                sink(&buf[..k])?;
            }
        }
        return Ok(modified);
    }
    Err(format!("GET {url}: too many redirects"))
}

fn copy_n(
    r: &mut impl Read,
    mut n: u64,
    sink: &mut impl FnMut(&[u8]) -> std::result::Result<(), String>,
) -> std::result::Result<(), String> {
    let mut buf = vec![0u8; 64 * 1024];
    while n > 0 {
        let want = buf.len().min(n as usize);
        let k = r.read(&mut buf[..want]).map_err(|e| e.to_string())?;
        if k == 0 {
            return Err("connection closed before the end of the body".into());
        }
        sink(&buf[..k])?;
        n -= k as u64;
    }
    Ok(())
}

impl crate::exec::Executor<'_> {
    /// A URL source: its cache input (the checksum when given, else the
    /// downloaded content's digest) and, unless it can wait, the file.
    /// Returns the input and a download to use on a cache miss.
    pub(crate) fn fetch_url(
        &self,
        url: &str,
        checksum: Option<&str>,
        dir: &Path,
        n: usize,
        line: usize,
    ) -> Result<(String, Option<Download>)> {
        if let Some(c) = checksum {
            return Ok((c.to_owned(), None));
        }
        let d = download(self.fetcher(), url, None, dir, n)
            .map_err(|message| Error::Copy { line, message })?;
        Ok((d.digest.clone(), Some(d)))
    }
}

/// Where a deferred download lands.
pub(crate) fn deferred(
    fetcher: &dyn UrlFetcher,
    url: &str,
    checksum: Option<&str>,
    dir: &Path,
    n: usize,
    line: usize,
) -> Result<Download> {
    download(fetcher, url, checksum, dir, n).map_err(|message| Error::Copy { line, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_dates() {
        assert_eq!(file_name("http://h/a/b.tar.gz"), "b.tar.gz");
        assert_eq!(file_name("http://h/a/b?x=1"), "b");
        assert_eq!(file_name("http://h/"), "__unnamed__");
        assert_eq!(file_name("http://h"), "__unnamed__");
        assert_eq!(file_name("http://h/dir/"), "dir");
        assert_eq!(
            http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777))
        );
        assert!(parse("https://x/").is_err());
        let u = parse("http://127.0.0.1:8080/a?b").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("127.0.0.1", 8080, "/a?b")
        );
    }
}
