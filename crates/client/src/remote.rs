//! Reading an image straight from a registry, without the local store: what
//! `berth dive --source registry` analyses.
//!
//! [`RemoteImage::open`] resolves a reference to one platform's manifest and
//! fetches its config (both verified against their digests);
//! [`RemoteImage::blob`] streams a blob as a blocking [`std::io::Read`] that
//! resumes a dropped connection with `Range` and fails its last read unless
//! the bytes have the descriptor's digest and size. Nothing is written
//! anywhere: memory holds one chunk of a blob at a time.

use std::io::{self, Read};
use std::sync::Arc;

use berth_oci::{Descriptor, Digest, Digester, ImageManifest, Platform, Reference};
use bytes::Bytes;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::progress::ProgressSink;
use crate::transfer::{manifest_ref, runtime, select_image};

/// The largest config blob [`RemoteImage::open`] reads into memory.
const MAX_CONFIG_BYTES: u64 = 32 << 20;

/// An image in a registry, resolved to one platform, read blob by blob.
#[derive(Debug)]
pub struct RemoteImage {
    client: Client,
    runtime: Arc<tokio::runtime::Runtime>,
    reference: Reference,
    /// What the reference resolved to in the registry (an index's digest for
    /// a multi-platform image).
    pub resolved: Digest,
    /// The chosen image manifest (with the index entry's platform, if any).
    pub descriptor: Descriptor,
    pub manifest: ImageManifest,
    /// The config's exact (verified) bytes.
    pub config_bytes: Vec<u8>,
}

impl RemoteImage {
    /// Resolves `reference` to the image for `platform` (default: the
    /// host's) and fetches its config. Blocking: must not be called from
    /// inside a tokio runtime.
    pub fn open(
        client: &Client,
        reference: &Reference,
        platform: Option<&Platform>,
    ) -> Result<RemoteImage> {
        let runtime = Arc::new(runtime()?);
        let (resolved, descriptor, manifest) =
            runtime.block_on(resolve(client, reference, platform))?;
        let mut image = RemoteImage {
            client: client.clone(),
            runtime,
            reference: reference.clone(),
            resolved,
            descriptor,
            manifest,
            config_bytes: Vec::new(),
        };
        let config = image.manifest.config.clone();
        if config.size > MAX_CONFIG_BYTES {
            return Err(Error::Protocol {
                url: reference.to_string(),
                message: format!(
                    "the config is {} bytes, more than the {MAX_CONFIG_BYTES} accepted",
                    config.size
                ),
            });
        }
        let mut bytes = Vec::with_capacity(config.size as usize);
        image
            .blob(&config)
            .read_to_end(&mut bytes)
            .map_err(from_io)?;
        image.config_bytes = bytes;
        Ok(image)
    }

    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    /// A stream of the blob `desc` from this image's repository. The last
    /// read fails (`InvalidData`) unless the bytes match `desc`'s digest and
    /// size; a connection that drops is resumed where it stopped.
    pub fn blob(&self, desc: &Descriptor) -> BlobReader {
        BlobReader {
            client: self.client.clone(),
            runtime: self.runtime.clone(),
            registry: self.reference.domain().to_owned(),
            repo: self.reference.path().to_owned(),
            desc: desc.clone(),
            response: None,
            skip: 0,
            pending: Bytes::new(),
            digester: desc.digest.algorithm().digester(),
            failures: 0,
            state: State::Streaming,
        }
    }

    /// The image manifest `reference` names (in any repository or
    /// registry), resolved to `platform` (default: the host's); for
    /// looking up a base image's layers.
    pub fn manifest_of(
        &self,
        reference: &Reference,
        platform: Option<&Platform>,
    ) -> Result<ImageManifest> {
        self.runtime
            .block_on(resolve(&self.client, reference, platform))
            .map(|(_, _, m)| m)
    }
}

/// The client error a [`BlobReader`] failed with (else the I/O error).
fn from_io(e: io::Error) -> Error {
    if !e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        return Error::io("read", "a blob", e);
    }
    *e.into_inner()
        .expect("checked above")
        .downcast::<Error>()
        .expect("checked above")
}

/// `reference` → (the digest it resolved to, the chosen manifest's descriptor, the manifest).
async fn resolve(
    client: &Client,
    reference: &Reference,
    platform: Option<&Platform>,
) -> Result<(Digest, Descriptor, ImageManifest)> {
    let host = Platform::host();
    let platform = platform.unwrap_or(&host);
    let (registry, repo) = (reference.domain(), reference.path());
    let top = client
        .get_manifest(registry, repo, &manifest_ref(reference))
        .await?;
    let (descriptor, _, manifest) = select_image(
        client,
        registry,
        repo,
        &reference.to_string(),
        &top,
        platform,
        &ProgressSink::none(),
    )
    .await?;
    Ok((top.digest, descriptor, manifest))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Streaming,
    /// Every byte was read and verified.
    Verified,
    /// An error was returned; later reads fail too.
    Failed,
}

/// A blob streamed from a registry, verified as it is read (see
/// [`RemoteImage::blob`]).
pub struct BlobReader {
    client: Client,
    runtime: Arc<tokio::runtime::Runtime>,
    registry: String,
    repo: String,
    desc: Descriptor,
    response: Option<reqwest::Response>,
    /// Bytes at the start of the current response already handed out (the
    /// registry ignored `Range` on a resume).
    skip: u64,
    pending: Bytes,
    digester: Digester,
    failures: u32,
    state: State,
}

impl std::fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobReader")
            .field("registry", &self.registry)
            .field("repo", &self.repo)
            .field("digest", &self.desc.digest)
            .field("read", &self.digester.len())
            .finish()
    }
}

impl BlobReader {
    /// The next chunk of the blob (already hashed), or `None` at its
    /// verified end. Transient failures resume from the bytes received.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        let policy = self.client.options().retry;
        loop {
            let got = self.digester.len();
            let resp = match &mut self.response {
                Some(r) => r,
                None => {
                    let (resp, start) = self
                        .client
                        .blob_response(&self.registry, &self.repo, &self.desc, got)
                        .await?;
                    self.skip = got - start;
                    self.response.insert(resp)
                }
            };
            let failure = match resp.chunk().await {
                Ok(Some(mut c)) => {
                    if self.skip > 0 {
                        let k = self.skip.min(c.len() as u64);
                        self.skip -= k;
                        c = c.slice(k as usize..);
                        if c.is_empty() {
                            continue;
                        }
                    }
                    let total = got + c.len() as u64;
                    if total > self.desc.size {
                        return Err(Error::SizeMismatch {
                            digest: self.desc.digest.clone(),
                            expected: self.desc.size,
                            actual: total,
                        });
                    }
                    self.digester.update(&c);
                    return Ok(Some(c));
                }
                Ok(None) if got == self.desc.size && self.skip == 0 => {
                    self.response = None;
                    let actual = self.digester.clone().finish();
                    if actual != self.desc.digest {
                        return Err(Error::DigestMismatch {
                            what: format!("blob from {}/{}", self.registry, self.repo),
                            expected: self.desc.digest.clone(),
                            actual,
                        });
                    }
                    return Ok(None);
                }
                // The body ended early: resume.
                Ok(None) => Error::SizeMismatch {
                    digest: self.desc.digest.clone(),
                    expected: self.desc.size,
                    actual: got,
                },
                Err(e) => Error::Http {
                    method: "GET".into(),
                    url: resp.url().to_string(),
                    source: e,
                },
            };
            self.response = None;
            self.failures += 1;
            if self.failures >= policy.attempts {
                return Err(failure);
            }
            tokio::time::sleep(policy.delay(self.failures - 1)).await;
        }
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.pending.is_empty() {
            match self.state {
                State::Verified => return Ok(0),
                State::Failed => {
                    return Err(io::Error::other(format!(
                        "blob {} failed earlier",
                        self.desc.digest
                    )));
                }
                State::Streaming => {}
            }
            let runtime = self.runtime.clone();
            match runtime.block_on(self.next_chunk()) {
                Ok(Some(c)) => self.pending = c,
                Ok(None) => self.state = State::Verified,
                Err(e) => {
                    self.state = State::Failed;
                    let kind = match e {
                        Error::DigestMismatch { .. } | Error::SizeMismatch { .. } => {
                            io::ErrorKind::InvalidData
                        }
                        _ => io::ErrorKind::Other,
                    };
                    return Err(io::Error::new(kind, e));
                }
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending.split_to(n));
        Ok(n)
    }
}
