//! Whole-image transfers between a registry and the local [`ImageStore`]:
//! [`pull`] and [`push`].
//!
//! A pull resolves the reference (choosing a platform from an index),
//! downloads every missing blob in parallel into verified ingests, and only
//! when all of them have arrived commits them, then the manifests (their
//! exact bytes), then the tag. A push uploads what the registry lacks in
//! parallel (or mounts it from a sibling repository), then the manifests,
//! children before the index that lists them.

use std::collections::BTreeSet;
use std::sync::Arc;

use berth_content::{ContentStore, Expected, Ingest};
use berth_image::{ImageRecord, ImageStore};
use berth_oci::{
    Descriptor, Digest, ImageManifest, ManifestKind, ParsedManifest, Platform, Reference,
    media_type,
};
use tokio::task::JoinSet;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::ops::UploadOptions;
use crate::progress::{BlobOutcome, Direction, Event, ProgressSink};

/// How long an interrupted download's bytes wait to be resumed.
pub const PARTIAL_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// How to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// The platform to select from an index (default: the host's).
    pub platform: Option<Platform>,
    /// Keep the whole index and every platform's image.
    pub all_platforms: bool,
    /// Blobs downloaded at once.
    pub concurrency: usize,
    pub progress: ProgressSink,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: None,
            all_platforms: false,
            concurrency: 4,
            progress: ProgressSink::none(),
        }
    }
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The name now pointing at the image in the store.
    pub reference: Reference,
    /// What the name points at: the platform's manifest, or the index with
    /// `all_platforms`.
    pub descriptor: Descriptor,
    /// The digest the reference resolved to in the registry (an index's for
    /// multi-platform images): what Docker shows as the repo digest.
    pub resolved: Digest,
    /// Docker's image id: the config digest (the index digest with `all_platforms`).
    pub image_id: Digest,
    pub blobs_downloaded: usize,
    pub bytes_downloaded: u64,
    pub blobs_present: usize,
}

/// How to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Blobs uploaded at once.
    pub concurrency: usize,
    /// Chunk size for chunked uploads (`None`: one `PUT` per blob).
    pub chunk_size: Option<u64>,
    pub progress: ProgressSink,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            concurrency: 4,
            chunk_size: None,
            progress: ProgressSink::none(),
        }
    }
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub reference: Reference,
    /// The digest of the top manifest (or index) in the registry.
    pub digest: Digest,
    pub size: u64,
    pub uploaded: usize,
    pub existing: usize,
    pub mounted: usize,
}

/// The tag or digest part of a manifest URL for `r`.
pub(crate) fn manifest_ref(r: &Reference) -> String {
    match (r.digest(), r.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_owned(),
        (None, None) => berth_oci::reference::DEFAULT_TAG.to_owned(),
    }
}

/// Picks the index entry for `platform` (a single entry without a platform
/// is taken as matching, as some tools write such indexes).
pub fn select_platform<'a>(
    index: &'a berth_oci::ImageIndex,
    platform: &Platform,
) -> Option<&'a Descriptor> {
    index
        .manifests
        .iter()
        .find(|m| m.platform.as_ref().is_some_and(|p| p.matches(platform)))
        .or_else(|| {
            (index.manifests.len() == 1 && index.manifests[0].platform.is_none())
                .then(|| &index.manifests[0])
        })
}

fn check_child(parent: &str, desc: &Descriptor, m: &ParsedManifest) -> Result<()> {
    if m.bytes.len() as u64 != desc.size {
        return Err(Error::SizeMismatch {
            digest: desc.digest.clone(),
            expected: desc.size,
            actual: m.bytes.len() as u64,
        });
    }
    if m.digest != desc.digest {
        return Err(Error::DigestMismatch {
            what: format!("manifest listed in {parent}"),
            expected: desc.digest.clone(),
            actual: m.digest.clone(),
        });
    }
    Ok(())
}

/// Pulls `reference` into `store` and tags it there. See the module
/// documentation for the order of commits; on error nothing is tagged and
/// no blob of this pull is committed.
pub async fn pull(
    client: &Client,
    store: &ImageStore,
    reference: &Reference,
    opts: &PullOptions,
) -> Result<Pulled> {
    let guard = store.write_guard()?;
    // Partial downloads nobody resumed for a week are garbage (image GC
    // removes them too). Best effort: a pull does not fail over this.
    let _ = store.content().clean_partials_older_than(PARTIAL_MAX_AGE);
    let registry = reference.domain();
    let repo = reference.path();
    let progress = &opts.progress;
    let top = client
        .get_manifest(registry, repo, &manifest_ref(reference))
        .await?;
    progress.emit(Event::Resolved {
        reference: reference.to_string(),
        digest: top.digest.clone(),
        media_type: top.media_type.clone(),
    });
    let host = Platform::host();
    let platform = opts.platform.as_ref().unwrap_or(&host);
    // Every document to store (children first), and what the name will point at.
    let mut documents: Vec<ParsedManifest> = Vec::new();
    let target: Descriptor;
    let image_id: Digest;
    let mut keep_top = true;
    match &top.kind {
        ManifestKind::Image(m) => {
            image_id = m.config.digest.clone();
            target = top.descriptor();
        }
        ManifestKind::Index(idx) if opts.all_platforms => {
            for child in &idx.manifests {
                if !(media_type::is_manifest(&child.media_type)
                    || media_type::is_index(&child.media_type))
                {
                    continue;
                }
                let m = client
                    .get_manifest(registry, repo, &child.digest.to_string())
                    .await?;
                check_child(&reference.to_string(), child, &m)?;
                if let ManifestKind::Index(_) = m.kind {
                    return Err(Error::Protocol {
                        url: reference.to_string(),
                        message: "nested indexes are not supported".into(),
                    });
                }
                documents.push(m);
            }
            image_id = top.digest.clone();
            target = top.descriptor();
        }
        ManifestKind::Index(_) => {
            let (d, current, img) = select_image(
                client,
                registry,
                repo,
                &reference.to_string(),
                &top,
                platform,
                progress,
            )
            .await?;
            image_id = img.config.digest;
            target = d;
            documents.push(current);
            // Only the chosen platform's image is stored, as Docker does.
            keep_top = false;
        }
    }
    let resolved = top.digest.clone();
    finish_pull(
        client,
        store,
        &guard,
        reference,
        opts,
        documents,
        keep_top.then_some(top),
        target,
        image_id,
        resolved,
    )
    .await
}

/// Walks from `top` (a manifest or an index, possibly nested) down to the
/// image manifest for `platform`, fetching and verifying each child. Returns
/// the chosen manifest's descriptor (carrying the index entry's platform,
/// which documents the choice), the manifest with its exact bytes, and the
/// manifest parsed. `what` names the image in errors.
pub async fn select_image(
    client: &Client,
    registry: &str,
    repo: &str,
    what: &str,
    top: &ParsedManifest,
    platform: &Platform,
    progress: &ProgressSink,
) -> Result<(Descriptor, ParsedManifest, ImageManifest)> {
    let mut current = top.clone();
    let mut chosen = top.descriptor();
    for _depth in 0..4 {
        let idx = match &current.kind {
            ManifestKind::Image(m) => {
                let m = m.clone();
                return Ok((chosen, current, m));
            }
            ManifestKind::Index(idx) => idx,
        };
        let child = select_platform(idx, platform).ok_or_else(|| Error::NoPlatform {
            reference: what.to_owned(),
            platform: platform.to_string(),
            available: idx
                .manifests
                .iter()
                .filter_map(|m| m.platform.as_ref().map(ToString::to_string))
                .collect(),
        })?;
        progress.emit(Event::PlatformSelected {
            platform: child
                .platform
                .as_ref()
                .map_or_else(|| platform.to_string(), ToString::to_string),
            digest: child.digest.clone(),
        });
        let m = client
            .get_manifest(registry, repo, &child.digest.to_string())
            .await?;
        check_child(what, child, &m)?;
        let mut d = m.descriptor();
        d.platform = child.platform.clone();
        chosen = d;
        current = m;
    }
    match &current.kind {
        ManifestKind::Image(m) => {
            let m = m.clone();
            Ok((chosen, current, m))
        }
        ManifestKind::Index(_) => Err(Error::Protocol {
            url: what.to_owned(),
            message: "indexes nested too deeply".into(),
        }),
    }
}

#[allow(clippy::too_many_arguments)]
async fn finish_pull(
    client: &Client,
    store: &ImageStore,
    guard: &berth_image::WriteGuard,
    reference: &Reference,
    opts: &PullOptions,
    mut documents: Vec<ParsedManifest>,
    top: Option<ParsedManifest>,
    target: Descriptor,
    image_id: Digest,
    resolved: Digest,
) -> Result<Pulled> {
    if let Some(t) = top {
        documents.push(t);
    }
    let progress = &opts.progress;
    // The blobs the images need, once each.
    let mut seen = BTreeSet::new();
    let mut wanted: Vec<Descriptor> = Vec::new();
    for doc in &documents {
        if let ManifestKind::Image(m) = &doc.kind {
            for d in std::iter::once(&m.config).chain(m.layers.iter()) {
                if media_type::is_non_distributable(&d.media_type) {
                    continue;
                }
                if seen.insert(d.digest.clone()) {
                    wanted.push(d.clone());
                }
            }
        }
    }
    let mut missing = Vec::new();
    let mut present = 0;
    for d in wanted {
        match store.content().info(&d.digest)? {
            Some(info) if info.size == d.size => {
                present += 1;
                progress.emit(Event::BlobDone {
                    digest: d.digest.clone(),
                    size: d.size,
                    outcome: BlobOutcome::AlreadyPresent,
                });
            }
            _ => missing.push(d),
        }
    }
    let staged = download_all(client, store, reference, missing, opts).await?;
    // Everything arrived and verified: publish blobs, then documents, then the name.
    let blobs_downloaded = staged.len();
    let mut bytes_downloaded = 0;
    for (d, ingest) in staged {
        bytes_downloaded += d.size;
        ingest.commit(Expected::exact(d.digest.clone(), d.size))?;
    }
    for doc in &documents {
        store.content().put(
            &doc.bytes,
            Expected::exact(doc.digest.clone(), doc.bytes.len() as u64),
        )?;
    }
    store.tag(guard, &target, reference)?;
    Ok(Pulled {
        reference: reference.clone(),
        descriptor: target,
        resolved,
        image_id,
        blobs_downloaded,
        bytes_downloaded,
        blobs_present: present,
    })
}

/// Downloads blobs in parallel (at most `opts.concurrency` at once) into
/// verified, uncommitted ingests. The first failure cancels the rest.
async fn download_all(
    client: &Client,
    store: &ImageStore,
    reference: &Reference,
    blobs: Vec<Descriptor>,
    opts: &PullOptions,
) -> Result<Vec<(Descriptor, Box<dyn Ingest>)>> {
    let slots = Arc::new(tokio::sync::Semaphore::new(opts.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for d in blobs {
        let client = client.clone();
        let store = store.clone();
        let registry = reference.domain().to_owned();
        let repo = reference.path().to_owned();
        let slots = slots.clone();
        let progress = opts.progress.clone();
        tasks.spawn(async move {
            let _slot = slots
                .acquire_owned()
                .await
                .expect("semaphore is never closed");
            progress.emit(Event::BlobStart {
                digest: d.digest.clone(),
                size: d.size,
                direction: Direction::Download,
            });
            let ingest = client
                .fetch_blob_resumable(&registry, &repo, &d, store.content(), &progress)
                .await?;
            progress.emit(Event::BlobDone {
                digest: d.digest.clone(),
                size: d.size,
                outcome: BlobOutcome::Downloaded,
            });
            Ok::<_, Error>((d, ingest))
        });
    }
    let mut out = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(x)) => out.push(x),
            Ok(Err(e)) => {
                tasks.abort_all();
                return Err(e);
            }
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Err(_) => {}
        }
    }
    Ok(out)
}

/// [`pull`] for synchronous callers (the build engine's `FROM`): runs it on
/// a private tokio runtime. Must not be called from inside a runtime.
pub fn pull_blocking(
    client: &Client,
    store: &ImageStore,
    reference: &Reference,
    opts: &PullOptions,
) -> Result<Pulled> {
    runtime()?.block_on(pull(client, store, reference, opts))
}

/// [`push`] for synchronous callers.
pub fn push_blocking(
    client: &Client,
    store: &ImageStore,
    image: &ImageRecord,
    dest: &Reference,
    opts: &PushOptions,
) -> Result<Pushed> {
    runtime()?.block_on(push(client, store, image, dest, opts))
}

/// Runs any of this crate's futures to completion on a private runtime, for
/// synchronous callers. Must not be called from inside a runtime.
pub fn block_on<T>(fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    runtime()?.block_on(fut)
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io("start", "the tokio runtime", e))
}

/// Repositories on `dest`'s registry that hold `image` under another name
/// (from the image's names in the store): candidates for cross-repository
/// mounts.
pub fn mount_candidates(image: &ImageRecord, dest: &Reference) -> Vec<String> {
    let mut out: Vec<String> = image
        .names
        .iter()
        .filter(|n| n.domain() == dest.domain() && n.path() != dest.path())
        .map(|n| n.path().to_owned())
        .collect();
    out.dedup();
    out
}

/// Pushes `image` from `store` to `dest`.
pub async fn push(
    client: &Client,
    store: &ImageStore,
    image: &ImageRecord,
    dest: &Reference,
    opts: &PushOptions,
) -> Result<Pushed> {
    let registry = dest.domain();
    let repo = dest.path();
    let progress = &opts.progress;
    let missing = |what: &'static str, digest: &Digest| Error::MissingLocal {
        reference: dest.to_string(),
        what,
        digest: digest.clone(),
    };
    let read_doc = |d: &Descriptor| -> Result<ParsedManifest> {
        if store.content().info(&d.digest)?.is_none() {
            return Err(missing("manifest", &d.digest));
        }
        Ok(store.manifest(d)?)
    };
    let top = read_doc(&image.descriptor)?;
    let mut children = Vec::new();
    if let ManifestKind::Index(idx) = &top.kind {
        for c in &idx.manifests {
            let m = read_doc(c)?;
            if let ManifestKind::Index(_) = m.kind {
                return Err(Error::Protocol {
                    url: dest.to_string(),
                    message: "nested indexes are not supported".into(),
                });
            }
            children.push(m);
        }
    }
    let mut seen = BTreeSet::new();
    let mut blobs = Vec::new();
    for doc in children.iter().chain(std::iter::once(&top)) {
        if let ManifestKind::Image(m) = &doc.kind {
            for d in std::iter::once(&m.config).chain(m.layers.iter()) {
                if media_type::is_non_distributable(&d.media_type) || !seen.insert(&d.digest) {
                    continue;
                }
                match store.content().info(&d.digest)? {
                    Some(i) if i.size == d.size => blobs.push(d.clone()),
                    _ => return Err(missing("blob", &d.digest)),
                }
            }
        }
    }
    let upload = UploadOptions {
        chunk_size: opts.chunk_size,
        mount_from: mount_candidates(image, dest),
    };
    let content: Arc<dyn ContentStore> = Arc::new(store.content().clone());
    let slots = Arc::new(tokio::sync::Semaphore::new(opts.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for d in blobs {
        let client = client.clone();
        let registry = registry.to_owned();
        let repo = repo.to_owned();
        let slots = slots.clone();
        let progress = progress.clone();
        let upload = upload.clone();
        let content = content.clone();
        tasks.spawn(async move {
            let _slot = slots
                .acquire_owned()
                .await
                .expect("semaphore is never closed");
            progress.emit(Event::BlobStart {
                digest: d.digest.clone(),
                size: d.size,
                direction: Direction::Upload,
            });
            let outcome = client
                .upload_blob(&registry, &repo, &d, content, &upload, &progress)
                .await?;
            progress.emit(Event::BlobDone {
                digest: d.digest.clone(),
                size: d.size,
                outcome: outcome.clone(),
            });
            Ok::<_, Error>(outcome)
        });
    }
    let (mut uploaded, mut existing, mut mounted) = (0, 0, 0);
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(BlobOutcome::Uploaded)) => uploaded += 1,
            Ok(Ok(BlobOutcome::Mounted { .. })) => mounted += 1,
            Ok(Ok(_)) => existing += 1,
            Ok(Err(e)) => {
                tasks.abort_all();
                return Err(e);
            }
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Err(_) => {}
        }
    }
    for c in &children {
        client
            .put_manifest(registry, repo, &c.digest.to_string(), c)
            .await?;
    }
    let reference = manifest_ref(dest);
    let digest = client
        .put_manifest(registry, repo, &reference, &top)
        .await?;
    progress.emit(Event::ManifestPushed {
        reference: dest.to_string(),
        digest: digest.clone(),
        size: top.bytes.len() as u64,
    });
    Ok(Pushed {
        reference: dest.clone(),
        digest,
        size: top.bytes.len() as u64,
        uploaded,
        existing,
        mounted,
    })
}
