//! Which requests the mirror answers, and for which upstream repository.
//!
//! One server is at once four things, told apart by the request alone:
//!
//! 1. `?ns=<registry>` (containerd's mirror protocol): the upstream standing
//!    for that registry. An `ns` no upstream stands for is refused
//!    (NAME_UNKNOWN): serving another registry's content under its names
//!    would be wrong.
//! 2. `/v2/<registry>/<repo>/...` (path prefix): the upstream standing for
//!    `<registry>`, if one does.
//! 3. `/v2/<repo>/...` (Docker's `registry-mirrors`, and plain clients):
//!    a local repository if one exists by that name; otherwise, for pulls,
//!    the default upstream (the one standing for `docker.io`, else the
//!    first), with Docker Hub's `library/` normalisation. `HEAD` on a blob
//!    stays local: only pushers ask it, and a push to a new local name must
//!    neither wait for nor reveal itself to the upstream.
//! 4. Everything else is the local registry.
//!
//! Writes through forms 1 and 2 are refused (mirrored repositories are
//! read-only). Writes to bare names create local repositories, except under
//! `library/` when the default upstream is Docker Hub: those names are
//! Docker Hub's official images and a local push must not shadow them.

use hyper::Method;

use crate::error::{ApiError, ErrorCode};
use crate::registry::Registry;
use crate::routes::{self, Route};

/// A request the mirror answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// Index of the upstream.
    pub upstream: usize,
    /// The repository's name at the upstream (`library/busybox`).
    pub repo: String,
    /// Reached by a bare name (form 3): a failure upstream reads as "not
    /// found" (the local answer) rather than as a gateway error, so pushes
    /// that probe for blobs work when the upstream is down.
    pub bare: bool,
}

/// Parses a request path into a route and, if the mirror answers it, the
/// target. The route's name is the one the client used (what it is
/// authorised for); the target names the upstream repository.
pub(crate) fn classify(
    reg: &Registry,
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> Result<(Route, Option<Target>), ApiError> {
    let Some(m) = reg.mirror.as_deref() else {
        return Ok((routes::parse(path)?, None));
    };
    let q = routes::query(query);
    if let Some(ns) = routes::param(&q, "ns").filter(|s| !s.is_empty()) {
        let route = routes::parse(path)?;
        let Some(name) = route.name() else {
            return Ok((route, None));
        };
        let Some(i) = m.upstream_for(ns) else {
            return Err(ApiError::new(
                ErrorCode::NameUnknown,
                format!("this mirror has no upstream for registry {ns}"),
            ));
        };
        let repo = m.upstream_repo(i, name);
        return Ok((
            route,
            Some(Target {
                upstream: i,
                repo,
                bare: false,
            }),
        ));
    }
    if let Some(rest) = path.strip_prefix("/v2/")
        && let Some((first, tail)) = rest.split_once('/')
        && let Some(i) = m.upstream_for(first)
    {
        let route = routes::parse(&format!("/v2/{tail}"))?;
        if let Some(name) = route.name() {
            let repo = m.upstream_repo(i, name);
            let client = format!("{first}/{name}");
            let route = if routes::valid_name(&client) {
                rename(route, client)
            } else {
                route
            };
            return Ok((
                route,
                Some(Target {
                    upstream: i,
                    repo,
                    bare: false,
                }),
            ));
        }
    }
    let route = routes::parse(path)?;
    let (Some(name), Some(i)) = (route.name(), m.default_upstream()) else {
        return Ok((route, None));
    };
    let repo = m.upstream_repo(i, name);
    if !is_pull(&route, method) {
        let official = m.registry(i) == "docker.io" && repo.starts_with("library/");
        return Ok(if official {
            (
                route,
                Some(Target {
                    upstream: i,
                    repo,
                    bare: false,
                }),
            )
        } else {
            (route, None)
        });
    }
    // A HEAD on a blob is a pusher asking whether to upload (pulls GET
    // blobs): answered locally, so local pushes never reach the upstream.
    let blob_probe = *method == Method::HEAD && matches!(route, Route::Blob { .. });
    if blob_probe || reg.meta.repo_exists(name)? {
        return Ok((route, None));
    }
    Ok((
        route,
        Some(Target {
            upstream: i,
            repo,
            bare: true,
        }),
    ))
}

/// Reads the mirror can answer (everything else on a mirrored name is a write).
pub(crate) fn is_pull(route: &Route, method: &Method) -> bool {
    (method == Method::GET || method == Method::HEAD)
        && matches!(
            route,
            Route::Manifest { .. }
                | Route::Blob { .. }
                | Route::Tags { .. }
                | Route::Referrers { .. }
        )
}

/// The same route under another repository name.
fn rename(route: Route, name: String) -> Route {
    match route {
        Route::Tags { .. } => Route::Tags { name },
        Route::Manifest { reference, .. } => Route::Manifest { name, reference },
        Route::Blob { digest, .. } => Route::Blob { name, digest },
        Route::Uploads { .. } => Route::Uploads { name },
        Route::Upload { id, .. } => Route::Upload { name, id },
        Route::Referrers { digest, .. } => Route::Referrers { name, digest },
        other => other,
    }
}
