//! Image references with Docker's normalisation rules.
//!
//! `alpine` → `docker.io/library/alpine:latest`; `localhost:5000/x@sha256:…`
//! keeps its registry and digest. The grammar is the distribution project's
//! (lower-case path components separated by `.`, `_`, `__` or dashes; a
//! domain is the first component when it contains `.` or `:` or is
//! `localhost`, or has upper-case letters).

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;

pub const DEFAULT_DOMAIN: &str = "docker.io";
pub const DEFAULT_TAG: &str = "latest";
const LEGACY_DOMAIN: &str = "index.docker.io";
const OFFICIAL_PREFIX: &str = "library/";
const NAME_MAX: usize = 255;

/// A normalised image reference.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why a string is not an image reference.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("invalid reference format: {0:?} is empty")]
    Empty(String),
    #[error("invalid reference format: repository name in {0:?} must be lowercase")]
    Uppercase(String),
    #[error(
        "invalid repository name {0:?}: cannot be a 64-character hexadecimal string (an image id?)"
    )]
    LooksLikeId(String),
    #[error("invalid reference format: {0:?}")]
    Invalid(String),
    #[error("invalid reference {input:?}: repository name is longer than {NAME_MAX} characters")]
    TooLong { input: String },
    #[error("invalid reference {input:?}: invalid tag {tag:?}")]
    Tag { input: String, tag: String },
    #[error("invalid reference {input:?}")]
    Digest {
        input: String,
        #[source]
        source: crate::digest::DigestError,
    },
}

fn is_alnum_lower(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// A path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum_lower(b[0]) || !is_alnum_lower(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum_lower(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or one or more "-".
        let start = i;
        while i < b.len() && !is_alnum_lower(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// Validates a repository path (the part after the domain).
pub fn valid_path(path: &str) -> bool {
    !path.is_empty() && path.split('/').all(valid_component)
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        // IPv6 literal.
        let Some((addr, after)) = rest.split_once(']') else {
            return false;
        };
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => return !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()),
                None => return false,
            },
        }
    } else {
        match d.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
        })
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

impl Reference {
    /// Parses and normalises a reference as `docker pull` does, defaulting the
    /// tag to `latest` when neither tag nor digest is given.
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        let mut r = Self::parse_named(input)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_owned());
        }
        Ok(r)
    }

    /// Parses and normalises a reference without adding a default tag.
    pub fn parse_named(input: &str) -> Result<Reference, ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::Empty(input.to_owned()));
        }
        if input.len() == 64 && input.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ReferenceError::LooksLikeId(input.to_owned()));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((r, d)) => (
                r,
                Some(
                    d.parse::<Digest>()
                        .map_err(|source| ReferenceError::Digest {
                            input: input.to_owned(),
                            source,
                        })?,
                ),
            ),
            None => (input, None),
        };
        // A tag follows the last ':' that is after the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag
            && !valid_tag(t)
        {
            return Err(ReferenceError::Tag {
                input: input.to_owned(),
                tag: t.to_owned(),
            });
        }
        let (mut domain, mut path) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.to_lowercase() != first =>
            {
                (first.to_owned(), remainder.to_owned())
            }
            _ => (DEFAULT_DOMAIN.to_owned(), name.to_owned()),
        };
        if domain == LEGACY_DOMAIN {
            domain = DEFAULT_DOMAIN.to_owned();
        }
        if domain == DEFAULT_DOMAIN && !path.contains('/') {
            path = format!("{OFFICIAL_PREFIX}{path}");
        }
        if path.to_lowercase() != path {
            return Err(ReferenceError::Uppercase(input.to_owned()));
        }
        if !valid_domain(&domain) || !valid_path(&path) {
            return Err(ReferenceError::Invalid(input.to_owned()));
        }
        if domain.len() + 1 + path.len() > NAME_MAX {
            return Err(ReferenceError::TooLong {
                input: input.to_owned(),
            });
        }
        Ok(Reference {
            domain,
            path,
            tag: tag.map(str::to_owned),
            digest,
        })
    }

    /// The registry host (and port), e.g. `docker.io` or `localhost:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path within the registry, e.g. `library/alpine`.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The full repository name, `domain/path`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The repository name as Docker prints it (`alpine`, `user/app`,
    /// `localhost:5000/x`).
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            self.path
                .strip_prefix(OFFICIAL_PREFIX)
                .filter(|p| !p.contains('/'))
                .unwrap_or(&self.path)
                .to_owned()
        } else {
            self.name()
        }
    }

    /// The whole reference as Docker prints it (`alpine:latest`).
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        s
    }

    /// A copy with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: Some(tag.to_owned()),
            digest: None,
        }
    }

    /// A copy with this digest and no tag (`name@digest`).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: Some(digest),
        }
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Reference, ReferenceError> {
        Reference::parse(s)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! norm {
        ($($input:expr => $full:expr, $familiar:expr;)*) => {$(
            let r = Reference::parse($input).unwrap_or_else(|e| panic!("{}: {e}", $input));
            assert_eq!(r.to_string(), $full, "full form of {}", $input);
            assert_eq!(r.familiar(), $familiar, "familiar form of {}", $input);
            assert_eq!(Reference::parse(&r.to_string()).unwrap(), r, "round trip of {}", $input);
        )*};
    }

    #[test]
    fn normalisation_table() {
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        norm! {
            "alpine" => "docker.io/library/alpine:latest", "alpine:latest";
            "alpine:3.19" => "docker.io/library/alpine:3.19", "alpine:3.19";
            "library/alpine" => "docker.io/library/alpine:latest", "alpine:latest";
            "docker.io/alpine" => "docker.io/library/alpine:latest", "alpine:latest";
            "index.docker.io/alpine" => "docker.io/library/alpine:latest", "alpine:latest";
            "user/app:v1" => "docker.io/user/app:v1", "user/app:v1";
            "localhost/app" => "localhost/app:latest", "localhost/app:latest";
            "localhost:5000/x" => "localhost:5000/x:latest", "localhost:5000/x:latest";
            "127.0.0.1:5000/a/b/c:t" => "127.0.0.1:5000/a/b/c:t", "127.0.0.1:5000/a/b/c:t";
            "[::1]:5000/x:t" => "[::1]:5000/x:t", "[::1]:5000/x:t";
            "ghcr.io/a__b/c--d.e_f" => "ghcr.io/a__b/c--d.e_f:latest", "ghcr.io/a__b/c--d.e_f:latest";
            "Example.com/app" => "Example.com/app:latest", "Example.com/app:latest";
        }
        let r = Reference::parse(&format!("localhost:5000/x@{d}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest().unwrap().to_string(), d);
        assert_eq!(r.to_string(), format!("localhost:5000/x@{d}"));
        let r = Reference::parse(&format!("busybox:1@{d}")).unwrap();
        assert_eq!(r.tag(), Some("1"));
        assert_eq!(r.familiar(), format!("busybox:1@{d}"));
    }

    #[test]
    fn rejections() {
        use ReferenceError as E;
        assert!(matches!(Reference::parse(""), Err(E::Empty(_))));
        assert!(matches!(Reference::parse("Alpine"), Err(E::Uppercase(_))));
        assert!(matches!(
            Reference::parse("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            Err(E::LooksLikeId(_))
        ));
        assert!(matches!(Reference::parse("a:-bad"), Err(E::Tag { .. })));
        assert!(matches!(
            Reference::parse("a@sha256:zz"),
            Err(E::Digest { .. })
        ));
        for bad in [
            "a/../b",
            "a//b",
            "-a",
            "a-",
            "a..b",
            "a___b",
            "a/b/",
            "host:port/x",
            "a b",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad} should be rejected");
        }
        assert!(matches!(
            Reference::parse(&format!("a/{}", "b".repeat(300))),
            Err(E::TooLong { .. })
        ));
    }
}
