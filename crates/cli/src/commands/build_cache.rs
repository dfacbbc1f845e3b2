//! `berth build --cache-from` / `--cache-to`: the specs (BuildKit's syntax)
//! and the registry transport. The format, what is exported and the import
//! rules are `berth_build::cache_io`'s; `type=local` and `type=registry`
//! carry the same artifact manifest.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use berth_build::cache_io::{self, BoxError, CacheIoError, CacheSource, Mode, SourceManifest};
use berth_build::exec::Built;
use berth_client::Client;
use berth_client::ops::UploadOptions;
use berth_content::{ContentStore, Expected, Ingest};
use berth_image::ImageStore;
use berth_oci::{Descriptor, Reference};

use super::transfer::NetArgs;

#[derive(Debug, Clone)]
enum Place {
    Local(PathBuf),
    Registry(Reference),
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Local(p) => write!(f, "{}", p.display()),
            Place::Registry(r) => write!(f, "{r}"),
        }
    }
}

#[derive(Debug)]
struct CacheTo {
    place: Place,
    mode: Mode,
    ignore_error: bool,
}

/// The cache sources and destinations of one build.
#[derive(Debug, Default)]
pub(super) struct Caches {
    from: Vec<Place>,
    to: Vec<CacheTo>,
}

/// Splits `type=...,k=v,...` (a bare word is a registry reference, as BuildKit).
fn fields(spec: &str) -> anyhow::Result<Vec<(&str, &str)>> {
    if !spec.contains('=') {
        return Ok(vec![("type", "registry"), ("ref", spec)]);
    }
    spec.split(',')
        .map(|part| {
            part.split_once('=')
                .with_context(|| format!("invalid cache spec {spec:?}: {part:?} is not KEY=VALUE"))
        })
        .collect()
}

fn place(
    spec: &str,
    kind: Option<&str>,
    path: Option<&str>,
    reference: Option<&str>,
    path_key: &str,
) -> anyhow::Result<Place> {
    match kind {
        Some("local") => Ok(Place::Local(PathBuf::from(path.with_context(|| {
            format!("cache spec {spec:?}: type=local needs {path_key}=DIR")
        })?))),
        Some("registry") => {
            let r = reference
                .with_context(|| format!("cache spec {spec:?}: type=registry needs ref=REF"))?;
            Ok(Place::Registry(Reference::parse(r).with_context(|| {
                format!("cache spec {spec:?}: invalid ref {r:?}")
            })?))
        }
        Some(other) => bail!("cache type {other:?} is not supported (local, registry)"),
        None => bail!("cache spec {spec:?} needs type=local|registry"),
    }
}

impl Caches {
    /// Parses `--cache-from` and `--cache-to` specs.
    pub(super) fn parse(from: &[String], to: &[String]) -> anyhow::Result<Caches> {
        let mut out = Caches::default();
        for spec in from {
            let (mut kind, mut src, mut reference) = (None, None, None);
            for (k, v) in fields(spec)? {
                match k {
                    "type" => kind = Some(v),
                    "src" => src = Some(v),
                    "ref" => reference = Some(v),
                    // BuildKit's digest= (a specific cache manifest) is not needed here.
                    _ => bail!("--cache-from {spec:?}: unknown key {k:?} (type, src, ref)"),
                }
            }
            out.from.push(place(spec, kind, src, reference, "src")?);
        }
        for spec in to {
            let (mut kind, mut dest, mut reference) = (None, None, None);
            let mut mode = Mode::Min;
            let mut ignore_error = false;
            for (k, v) in fields(spec)? {
                match (k, v) {
                    ("type", _) => kind = Some(v),
                    ("dest", _) => dest = Some(v),
                    ("ref", _) => reference = Some(v),
                    ("mode", "min") => mode = Mode::Min,
                    ("mode", "max") => mode = Mode::Max,
                    ("mode", _) => bail!("--cache-to {spec:?}: mode is min or max"),
                    ("ignore-error", v) => ignore_error = v == "true",
                    // The cache is always an OCI image manifest: these are given.
                    ("oci-mediatypes" | "image-manifest", _) => {}
                    _ => bail!(
                        "--cache-to {spec:?}: unknown key {k:?} (type, dest, ref, mode, ignore-error)"
                    ),
                }
            }
            out.to.push(CacheTo {
                place: place(spec, kind, dest, reference, "dest")?,
                mode,
                ignore_error,
            });
        }
        Ok(out)
    }

    /// Imports every `--cache-from` into the store's build cache. A missing
    /// or unreachable source is a warning; a blob that does not verify is
    /// an error (after the sound records are imported).
    pub(super) fn import(
        &self,
        store: &ImageStore,
        net: &NetArgs,
        quiet: bool,
    ) -> anyhow::Result<()> {
        for from in &self.from {
            let source: Box<dyn CacheSource> = match from {
                Place::Local(dir) => Box::new(cache_io::LocalSource::new(dir)),
                Place::Registry(r) => Box::new(RegistrySource::new(net, r.clone())?),
            };
            let report = match cache_io::import(store, source.as_ref()) {
                Ok(r) => r,
                Err(e @ CacheIoError::Source { .. }) => {
                    eprintln!("WARNING: importing cache from {from}: {}", chain(&e));
                    continue;
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("importing cache from {from}"));
                }
            };
            if !report.found {
                eprintln!("WARNING: no build cache found at {from}");
                continue;
            }
            if !quiet {
                eprintln!(
                    "#0 importing cache from {from}: {} records ({} new, {} present), {} blobs",
                    report.records, report.imported, report.existing, report.blobs
                );
            }
            if let Some(first) = report.refused.first() {
                for e in &report.refused[1..] {
                    eprintln!("error: {e}");
                }
                bail!(
                    "importing cache from {from}: {first} ({} record(s) refused)",
                    report.refused.len()
                );
            }
        }
        Ok(())
    }

    /// Exports the build's records to every `--cache-to`.
    pub(super) fn export(
        &self,
        store: &ImageStore,
        net: &NetArgs,
        built: &Built,
        quiet: bool,
    ) -> anyhow::Result<()> {
        for to in &self.to {
            let r = export_one(store, net, built, to, quiet);
            match r {
                Err(e) if to.ignore_error => {
                    eprintln!("WARNING: exporting cache to {}: {e:#}", to.place);
                }
                r => r.with_context(|| format!("exporting cache to {}", to.place))?,
            }
        }
        Ok(())
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

fn export_one(
    store: &ImageStore,
    net: &NetArgs,
    built: &Built,
    to: &CacheTo,
    quiet: bool,
) -> anyhow::Result<()> {
    // Held while the blobs are read: the GC waits.
    let _guard = store.write_guard()?;
    let export = cache_io::collect(store, cache_io::keys_for(built, to.mode))?;
    match &to.place {
        Place::Local(dir) => cache_io::write_layout(store, &export, dir)?,
        Place::Registry(r) => {
            let client = net.client()?;
            // The config goes through the store so that one content store
            // serves every upload; unreferenced, the GC drops it later.
            store.content().put(
                &export.config,
                Expected::exact(
                    export.config_descriptor.digest.clone(),
                    export.config_descriptor.size,
                ),
            )?;
            let content: Arc<dyn ContentStore> = Arc::new(store.content().clone());
            let tag = r
                .digest()
                .map(|d| d.to_string())
                .or_else(|| r.tag().map(str::to_owned))
                .unwrap_or_else(|| "latest".to_owned());
            berth_client::block_on(async {
                let progress = berth_client::ProgressSink::none();
                for d in export
                    .layers
                    .iter()
                    .chain(std::iter::once(&export.config_descriptor))
                {
                    client
                        .upload_blob(
                            r.domain(),
                            r.path(),
                            d,
                            content.clone(),
                            &UploadOptions::default(),
                            &progress,
                        )
                        .await?;
                }
                client
                    .put_manifest(r.domain(), r.path(), &tag, &export.manifest)
                    .await
            })?;
        }
    }
    if !quiet {
        eprintln!(
            "#0 exporting cache to {} ({}): {} records, {} layers, manifest {}",
            to.place,
            match to.mode {
                Mode::Min => "mode=min",
                Mode::Max => "mode=max",
            },
            export.records,
            export.layers.len(),
            export.manifest.digest
        );
    }
    Ok(())
}

/// A cache pushed to a registry by `--cache-to type=registry`.
struct RegistrySource {
    client: Client,
    reference: Reference,
    rt: tokio::runtime::Runtime,
}

impl RegistrySource {
    fn new(net: &NetArgs, reference: Reference) -> anyhow::Result<RegistrySource> {
        Ok(RegistrySource {
            client: net.client()?,
            reference,
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?,
        })
    }
}

impl CacheSource for RegistrySource {
    fn name(&self) -> String {
        format!("type=registry,ref={}", self.reference)
    }

    fn manifest(&self) -> Result<Option<SourceManifest>, BoxError> {
        let r = &self.reference;
        let at = r
            .digest()
            .map(|d| d.to_string())
            .or_else(|| r.tag().map(str::to_owned))
            .unwrap_or_else(|| "latest".to_owned());
        match self
            .rt
            .block_on(self.client.get_manifest(r.domain(), r.path(), &at))
        {
            // get_manifest verified the bytes against the registry's digest.
            Ok(m) => Ok(Some(SourceManifest {
                bytes: m.bytes,
                digest: None,
            })),
            Err(berth_client::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Box::new(e)),
        }
    }

    fn blob(
        &self,
        desc: &Descriptor,
        content: &dyn ContentStore,
    ) -> Result<Box<dyn Ingest>, BoxError> {
        let r = &self.reference;
        Ok(self.rt.block_on(self.client.fetch_blob(
            r.domain(),
            r.path(),
            desc,
            content,
            &berth_client::ProgressSink::none(),
        ))?)
    }
}
