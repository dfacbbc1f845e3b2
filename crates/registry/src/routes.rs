//! The one path parser of the HTTP surface, and the one place repository
//! names are validated.
//!
//! Repository names may contain `/`, and even path components such as
//! `manifests` (`a/manifests/b` is a valid name), so routes are recognised
//! from the *end* of the path: the last one or two components say what is
//! asked for, everything before them is the name.

use berth_oci::Digest;

use crate::error::{ApiError, ErrorCode};

/// Longest repository name accepted (distribution's limit).
pub const MAX_NAME_LEN: usize = 255;

/// What a request path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Health,
    Metrics,
    Token,
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags {
        name: String,
    },
    /// `/v2/<name>/manifests/<reference>`
    Manifest {
        name: String,
        reference: String,
    },
    /// `/v2/<name>/blobs/<digest>`
    Blob {
        name: String,
        digest: String,
    },
    /// `/v2/<name>/blobs/uploads/`
    Uploads {
        name: String,
    },
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload {
        name: String,
        id: String,
    },
    /// `/v2/<name>/referrers/<digest>`
    Referrers {
        name: String,
        digest: String,
    },
    /// Anything else.
    Unknown,
}

impl Route {
    /// A low-cardinality label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Route::Health => "health",
            Route::Metrics => "metrics",
            Route::Token => "token",
            Route::Base => "base",
            Route::Catalog => "catalog",
            Route::Tags { .. } => "tags",
            Route::Manifest { .. } => "manifest",
            Route::Blob { .. } => "blob",
            Route::Uploads { .. } | Route::Upload { .. } => "upload",
            Route::Referrers { .. } => "referrers",
            Route::Unknown => "unknown",
        }
    }

    /// The repository a route addresses, if any.
    pub fn name(&self) -> Option<&str> {
        match self {
            Route::Tags { name }
            | Route::Manifest { name, .. }
            | Route::Blob { name, .. }
            | Route::Uploads { name }
            | Route::Upload { name, .. }
            | Route::Referrers { name, .. } => Some(name),
            _ => None,
        }
    }
}

/// Validates a repository name against the distribution spec's regex
/// (`[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`).
pub fn valid_name(name: &str) -> bool {
    name.len() <= MAX_NAME_LEN && berth_oci::reference::valid_path(name)
}

/// Validates a tag (`[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`).
pub fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

/// Parses a request path (without the query).
pub fn parse(path: &str) -> Result<Route, ApiError> {
    match path {
        "/health" | "/healthz" => return Ok(Route::Health),
        "/metrics" => return Ok(Route::Metrics),
        "/token" => return Ok(Route::Token),
        "/v2" | "/v2/" => return Ok(Route::Base),
        "/v2/_catalog" => return Ok(Route::Catalog),
        _ => {}
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return Ok(Route::Unknown);
    };
    let name = |n: &str| -> Result<String, ApiError> {
        if valid_name(n) {
            Ok(n.to_owned())
        } else {
            Err(ApiError::new(
                ErrorCode::NameInvalid,
                format!("invalid repository name {n:?}"),
            ))
        }
    };
    if let Some(n) = rest.strip_suffix("/tags/list") {
        return Ok(Route::Tags { name: name(n)? });
    }
    if let Some(n) = rest
        .strip_suffix("/blobs/uploads/")
        .or_else(|| rest.strip_suffix("/blobs/uploads"))
    {
        return Ok(Route::Uploads { name: name(n)? });
    }
    let Some((head, last)) = rest.rsplit_once('/') else {
        return Ok(Route::Unknown);
    };
    let Some((n, kind)) = head.rsplit_once('/') else {
        return Ok(Route::Unknown);
    };
    let last = last.to_owned();
    match kind {
        "manifests" => Ok(Route::Manifest {
            name: name(n)?,
            reference: last,
        }),
        "blobs" => Ok(Route::Blob {
            name: name(n)?,
            digest: last,
        }),
        "referrers" => Ok(Route::Referrers {
            name: name(n)?,
            digest: last,
        }),
        "uploads" => match n.strip_suffix("/blobs") {
            Some(n) => Ok(Route::Upload {
                name: name(n)?,
                id: last,
            }),
            None => Ok(Route::Unknown),
        },
        _ => Ok(Route::Unknown),
    }
}

/// Parses a digest from a request, answering `DIGEST_INVALID` for anything
/// that is not a well-formed sha256 or sha512 digest.
pub fn digest(s: &str) -> Result<Digest, ApiError> {
    s.parse::<Digest>()
        .map_err(|e| ApiError::new(ErrorCode::DigestInvalid, e.to_string()))
}

/// A manifest reference: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

/// Parses a manifest reference.
pub fn reference(s: &str) -> Result<Reference, ApiError> {
    if s.contains(':') {
        digest(s).map(Reference::Digest)
    } else if valid_tag(s) {
        Ok(Reference::Tag(s.to_owned()))
    } else {
        Err(ApiError::new(
            ErrorCode::TagInvalid,
            format!("invalid tag {s:?}"),
        ))
    }
}

/// Decoded `key=value` pairs of a query string, in order (`+` is a space,
/// as in Go's `url.ParseQuery`, which most clients are written against).
pub fn query(q: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = q else { return Vec::new() };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// The first value of `key` in a decoded query.
pub fn param<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        s.to_owned()
    }

    #[test]
    fn routes_from_the_end() {
        let cases: &[(&str, Route)] = &[
            ("/v2/", Route::Base),
            ("/v2", Route::Base),
            ("/v2/_catalog", Route::Catalog),
            ("/v2/a/tags/list", Route::Tags { name: n("a") }),
            (
                "/v2/a/manifests/b/manifests/latest",
                Route::Manifest {
                    name: n("a/manifests/b"),
                    reference: n("latest"),
                },
            ),
            (
                "/v2/a/b/blobs/sha256:x",
                Route::Blob {
                    name: n("a/b"),
                    digest: n("sha256:x"),
                },
            ),
            ("/v2/a/blobs/uploads/", Route::Uploads { name: n("a") }),
            ("/v2/a/blobs/uploads", Route::Uploads { name: n("a") }),
            (
                "/v2/a/blobs/uploads/abc",
                Route::Upload {
                    name: n("a"),
                    id: n("abc"),
                },
            ),
            (
                "/v2/a/referrers/sha256:x",
                Route::Referrers {
                    name: n("a"),
                    digest: n("sha256:x"),
                },
            ),
            ("/v2/a/other/x", Route::Unknown),
            ("/nope", Route::Unknown),
            ("/health", Route::Health),
        ];
        for (path, want) in cases {
            assert_eq!(&parse(path).unwrap(), want, "{path}");
        }
    }

    #[test]
    fn bad_names_are_name_invalid() {
        for path in [
            "/v2/A/tags/list",
            "/v2/../x/manifests/latest",
            "/v2/a//b/blobs/sha256:x",
            "/v2/a/./b/blobs/uploads/",
            "/v2/-a/manifests/x",
            "/v2/a%2Fb/manifests/x",
            "/v2//manifests/x",
        ] {
            let e = parse(path).unwrap_err();
            assert_eq!(e.code, ErrorCode::NameInvalid, "{path}");
        }
        let long = format!("/v2/{}/tags/list", "a".repeat(256));
        assert_eq!(parse(&long).unwrap_err().code, ErrorCode::NameInvalid);
    }

    #[test]
    fn references_and_queries() {
        assert_eq!(reference("v1.0").unwrap(), Reference::Tag(n("v1.0")));
        assert_eq!(reference(".x").unwrap_err().code, ErrorCode::TagInvalid);
        assert_eq!(
            reference(&"a".repeat(129)).unwrap_err().code,
            ErrorCode::TagInvalid
        );
        assert_eq!(
            reference("sha256:zz").unwrap_err().code,
            ErrorCode::DigestInvalid
        );
        assert_eq!(
            reference("md5:00").unwrap_err().code,
            ErrorCode::DigestInvalid
        );
        let q = query(Some(
            "n=2&last=a%2Fb&artifactType=application%2Fx%2Bjson&x=a+b&bad=%zz&t=%4",
        ));
        assert_eq!(param(&q, "n"), Some("2"));
        assert_eq!(param(&q, "last"), Some("a/b"));
        assert_eq!(param(&q, "artifactType"), Some("application/x+json"));
        assert_eq!(param(&q, "x"), Some("a b"));
        assert_eq!(param(&q, "bad"), Some("%zz"));
        assert_eq!(param(&q, "t"), Some("%4"));
        assert_eq!(encode("a/b c"), "a%2Fb%20c");
    }
}
