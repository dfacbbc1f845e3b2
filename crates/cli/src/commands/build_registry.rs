//! `berth build` meets registries: the image resolver that pulls the images
//! a Dockerfile names when the store lacks them (or, with `--pull`, when
//! their tag moved), and pushing the result (`--push`,
//! `--output type=registry`). The transfers are berth-client's; the build
//! engine only sees [`berth_build::ImageResolver`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::Context as _;
use berth_build::ImageResolver;
use berth_client::Client;
use berth_image::{ImageRecord, ImageStore};
use berth_oci::descriptor::ANNOTATION_BASE_NAME;
use berth_oci::{Descriptor, ManifestKind, Reference};

use super::transfer::{Drawer, NetArgs, sink};

/// What a reference resolved to, remembered for the rest of the build so
/// that every stage sees the same image and the registry is asked once.
#[derive(Clone)]
enum Answer {
    Found(Box<ImageRecord>),
    NotFound,
    PullFailed(Arc<berth_client::Error>),
}

/// Finds images in the store and pulls the missing ones.
pub(super) struct RegistryResolver {
    net: NetArgs,
    client: OnceLock<Result<Client, String>>,
    /// Re-check tags against the registry (`--pull`).
    pull: bool,
    quiet: bool,
    answers: Mutex<HashMap<String, Arc<Mutex<Option<Answer>>>>>,
}

impl RegistryResolver {
    pub(super) fn new(net: NetArgs, pull: bool, quiet: bool) -> RegistryResolver {
        RegistryResolver {
            net,
            client: OnceLock::new(),
            pull,
            quiet,
            answers: Mutex::new(HashMap::new()),
        }
    }

    /// The registry client, made on first use (a build that pulls nothing
    /// never reads the registry configuration).
    fn client(&self) -> Result<&Client, String> {
        self.client
            .get_or_init(|| self.net.client().map_err(|e| format!("{e:#}")))
            .as_ref()
            .map_err(Clone::clone)
    }

    fn lookup(&self, store: &ImageStore, r: &str) -> berth_build::Result<Answer> {
        let local = match store.find(r) {
            Ok(rec) => Some(rec),
            Err(berth_image::Error::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        // Image ids and other non-names can only be local.
        let Ok(reference) = Reference::parse(r) else {
            return Ok(local.map_or(Answer::NotFound, |r| Answer::Found(Box::new(r))));
        };
        if let Some(rec) = &local
            && (!self.pull || reference.digest().is_some())
        {
            return Ok(Answer::Found(Box::new(rec.clone())));
        }
        let client = self.client().map_err(|e| berth_build::Error::pull(r, e))?;
        if let Some(rec) = &local
            && let Some(tag) = reference.tag()
        {
            // --pull: keep the local image if the tag still points at it.
            let head = berth_client::block_on(client.head_manifest(
                reference.domain(),
                reference.path(),
                tag,
            ));
            if let Ok(Some(remote)) = head
                && remote.digest == rec.descriptor.digest
            {
                return Ok(Answer::Found(Box::new(rec.clone())));
            }
        }
        let drawer = Drawer::new("Downloading", self.quiet);
        if let Some(d) = &drawer {
            d.line(format!(
                "{}: Pulling from {}",
                reference.tag().unwrap_or("digest"),
                reference.name()
            ));
        }
        let opts = berth_client::PullOptions {
            progress: sink(&drawer),
            ..Default::default()
        };
        match berth_client::pull_blocking(client, store, &reference, &opts) {
            Ok(pulled) => {
                if let Some(d) = &drawer {
                    d.line(format!("Digest: {}", pulled.resolved));
                    d.line(format!(
                        "Status: {} for {}",
                        if pulled.blobs_downloaded == 0 {
                            "Image is up to date"
                        } else {
                            "Downloaded newer image"
                        },
                        reference.familiar()
                    ));
                }
                Ok(Answer::Found(Box::new(ImageRecord {
                    descriptor: pulled.descriptor,
                    names: vec![pulled.reference],
                })))
            }
            Err(e) => Ok(Answer::PullFailed(Arc::new(e))),
        }
    }
}

impl ImageResolver for RegistryResolver {
    fn resolve(&self, store: &ImageStore, reference: &str) -> berth_build::Result<ImageRecord> {
        let slot = self
            .answers
            .lock()
            .unwrap()
            .entry(reference.to_owned())
            .or_default()
            .clone();
        // Stages asking for the same image wait for one lookup.
        let mut slot = slot.lock().unwrap();
        let answer = match &*slot {
            Some(a) => a.clone(),
            None => {
                let a = self.lookup(store, reference)?;
                *slot = Some(a.clone());
                a
            }
        };
        match answer {
            Answer::Found(rec) => Ok(*rec),
            Answer::NotFound => Err(berth_image::Error::NotFound(reference.to_owned()).into()),
            Answer::PullFailed(e) => Err(berth_build::Error::pull(reference, e)),
        }
    }
}

/// Pushes the built image (`manifest`) to each of `names`, with progress
/// on stderr unless `quiet`.
pub(super) fn push_built(
    store: &ImageStore,
    net: &NetArgs,
    manifest: &Descriptor,
    names: &[Reference],
    quiet: bool,
) -> anyhow::Result<()> {
    let client = net.client()?;
    // The base image's repository may hold the base layers: offer it for
    // cross-repository mounts (the registry checks, else they are uploaded).
    let mut known_as = names.to_vec();
    if let Ok(m) = store.manifest(manifest)
        && let ManifestKind::Image(img) = m.kind
        && let Some(base) = img.annotations.get(ANNOTATION_BASE_NAME)
        && let Ok(base) = Reference::parse(base)
    {
        known_as.push(base);
    }
    let image = ImageRecord {
        descriptor: manifest.clone(),
        names: known_as,
    };
    for name in names {
        let drawer = Drawer::new("Uploading", quiet);
        if let Some(d) = &drawer {
            d.line(format!("The push refers to repository [{}]", name.name()));
        }
        let opts = berth_client::PushOptions {
            progress: sink(&drawer),
            ..Default::default()
        };
        let pushed = berth_client::push_blocking(&client, store, &image, name, &opts)
            .with_context(|| format!("pushing {}", name.familiar()))?;
        if let Some(d) = &drawer {
            d.line(format!(
                "{}: digest: {} size: {}",
                name.tag().unwrap_or("digest"),
                pushed.digest,
                pushed.size
            ));
        }
    }
    Ok(())
}
