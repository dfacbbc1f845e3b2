//! Executing a plan against the local store, step by step, with the cache.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use berth_content::ContentStore;
use berth_dockerignore::EntryKind;
use berth_image::layer_writer::LayerWriter;
use berth_image::{ImageStore, WriteGuard};
use berth_layer::write::{Source as TreeSource, WriteOptions};
use berth_oci::descriptor::{ANNOTATION_BASE_DIGEST, ANNOTATION_BASE_NAME};
use berth_oci::media_type::{self, Compression};
use berth_oci::{Descriptor, Digest, History, ImageConfig, ImageManifest, Reference, RunConfig};
use serde::{Deserialize, Serialize};

use crate::context::Context;
use crate::plan::{Base, CopyOp, Op, Plan, Source, Stage};
use crate::{Error, Result};

/// How to run a build.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub compression: Compression,
    /// Ignore the cache for every step.
    pub no_cache: bool,
    /// Ignore the cache for steps of these stages (names or indices).
    pub no_cache_filter: Vec<String>,
    /// `SOURCE_DATE_EPOCH`: creation times and new files' mtimes are clamped to it.
    pub source_date_epoch: Option<i64>,
}

impl Default for ExecOptions {
    fn default() -> ExecOptions {
        ExecOptions {
            compression: Compression::Gzip,
            no_cache: false,
            no_cache_filter: Vec::new(),
            source_date_epoch: None,
        }
    }
}

/// A progress event, rendered by the CLI.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Step {
        id: usize,
        stage: String,
        index: usize,
        total: usize,
        text: String,
    },
    Cached {
        id: usize,
    },
    Done {
        id: usize,
        seconds: f64,
    },
}

/// What a finished build produced.
#[derive(Debug, Clone)]
pub struct Built {
    pub manifest: Descriptor,
    pub config_digest: Digest,
    /// Steps that produced or reused a layer, and how many were cached.
    pub cacheable_steps: usize,
    pub cached_steps: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CacheRecord {
    pub(crate) layer: Option<Descriptor>,
    diff_id: Option<Digest>,
    /// When the step first ran: reused on hits so that a fully cached
    /// rebuild yields the same config, hence the same image id.
    #[serde(default)]
    created: Option<String>,
}

/// A stage's state while it is being built.
#[derive(Debug)]
struct StageState {
    config: ImageConfig,
    layers: Vec<Descriptor>,
    key: Digest,
    base: Option<(String, Digest)>,
    rootfs: Option<tempfile::TempDir>,
    /// The creation time of the newest layer step (or of the base image).
    created: Option<String>,
}

impl Clone for StageState {
    fn clone(&self) -> StageState {
        StageState {
            config: self.config.clone(),
            layers: self.layers.clone(),
            key: self.key.clone(),
            base: self.base.clone(),
            rootfs: None,
            created: self.created.clone(),
        }
    }
}

fn key_of(parts: &[&[u8]]) -> Digest {
    let mut d = berth_oci::Algorithm::Sha256.digester();
    for p in parts {
        d.update(&(p.len() as u64).to_le_bytes());
        d.update(p);
    }
    d.finish()
}

fn rfc3339(epoch: Option<i64>) -> String {
    match epoch {
        Some(t) => berth_image::import::format_unix(t),
        None => berth_image::import::now_rfc3339(),
    }
}

/// Runs builds against one store.
pub struct Executor<'a> {
    store: &'a ImageStore,
    _guard: WriteGuard,
    opts: ExecOptions,
    progress: &'a mut dyn FnMut(Event),
    next_id: usize,
    cache_dir: PathBuf,
    tmp_dir: PathBuf,
}

impl std::fmt::Debug for Executor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("opts", &self.opts)
            .finish()
    }
}

impl<'a> Executor<'a> {
    pub fn new(
        store: &'a ImageStore,
        opts: ExecOptions,
        progress: &'a mut dyn FnMut(Event),
    ) -> Result<Executor<'a>> {
        let cache_dir = store.root().join("buildcache");
        let tmp_dir = store.root().join("tmp");
        for d in [&cache_dir, &tmp_dir] {
            fs::create_dir_all(d).map_err(|e| Error::io("create directory", d, e))?;
        }
        Ok(Executor {
            _guard: store.write_guard()?,
            store,
            opts,
            progress,
            next_id: 1,
            cache_dir,
            tmp_dir,
        })
    }

    fn cache_get(&self, key: &Digest) -> Option<CacheRecord> {
        let bytes = fs::read(self.cache_dir.join(key.hex())).ok()?;
        let rec: CacheRecord = serde_json::from_slice(&bytes).ok()?;
        // A record whose layer was garbage-collected is a miss.
        if let Some(l) = &rec.layer
            && !matches!(self.store.content().info(&l.digest), Ok(Some(_)))
        {
            return None;
        }
        Some(rec)
    }

    fn cache_put(&self, key: &Digest, rec: &CacheRecord) -> Result<()> {
        let path = self.cache_dir.join(key.hex());
        let mut tmp = tempfile::NamedTempFile::new_in(&self.cache_dir)
            .map_err(|e| Error::io("create", &self.cache_dir, e))?;
        tmp.write_all(&serde_json::to_vec(rec).expect("serialises"))
            .map_err(|e| Error::io("write", &path, e))?;
        tmp.persist(&path)
            .map_err(|e| Error::io("rename", &path, e.error))?;
        Ok(())
    }

    fn start_state(&self, stage: &Stage, done: &BTreeMap<usize, StageState>) -> Result<StageState> {
        match &stage.base {
            Base::Scratch => {
                let p = berth_oci::Platform::host();
                Ok(StageState {
                    config: ImageConfig {
                        architecture: p.architecture,
                        os: p.os,
                        variant: p.variant,
                        config: Some(RunConfig::default()),
                        ..ImageConfig::default()
                    },
                    layers: Vec::new(),
                    key: key_of(&[b"scratch"]),
                    base: None,
                    rootfs: None,
                    created: None,
                })
            }
            Base::Stage(i) => Ok(done[i].clone()),
            Base::Image(r) => {
                let rec = self.store.find(r).map_err(|e| match e {
                    berth_image::Error::NotFound(_) => Error::Dockerfile {
                        line: stage.line,
                        message: format!("base image {r:?} is not in the local store (load or import it first; pulling from registries is not available yet)"),
                    },
                    other => other.into(),
                })?;
                let img = self.store.resolve(&rec, None)?;
                let name = Reference::parse(r)
                    .map(|n| n.to_string())
                    .unwrap_or_else(|_| r.clone());
                Ok(StageState {
                    key: key_of(&[b"image", img.manifest.digest.to_string().as_bytes()]),
                    layers: img.image.layers.clone(),
                    created: img.config.created.clone(),
                    config: img.config,
                    base: Some((name, rec.descriptor.digest.clone())),
                    rootfs: None,
                })
            }
        }
    }

    /// Materialises the stage's filesystem (applies its layers) if needed.
    fn rootfs<'s>(&self, st: &'s mut StageState) -> Result<&'s Path> {
        if st.rootfs.is_none() {
            let dir = tempfile::Builder::new()
                .prefix("rootfs-")
                .tempdir_in(&self.tmp_dir)
                .map_err(|e| Error::io("create directory in", &self.tmp_dir, e))?;
            for l in &st.layers {
                let compression = Compression::of_layer(&l.media_type).unwrap_or(Compression::None);
                let r = berth_image::archive::decompress(
                    self.store.content().open(&l.digest)?,
                    compression,
                )
                .map_err(|e| Error::io("decompress", l.digest.to_string(), e))?;
                berth_layer::apply::apply_layer(dir.path(), r, &Default::default())?;
            }
            st.rootfs = Some(dir);
        }
        Ok(st.rootfs.as_ref().expect("just set").path())
    }

    fn write_layer(&self, dir: &Path) -> Result<(Descriptor, Digest)> {
        let opts = WriteOptions {
            clamp_mtime: self.opts.source_date_epoch.map(|e| e.max(0) as u64),
            prefix: None,
        };
        let w = LayerWriter::new(self.store, self.opts.compression)?;
        let (w, _) = berth_layer::write::write_layer(dir, TreeSource::Tree, &opts, w)?;
        let written = w.finish()?;
        Ok((written.descriptor, written.diff_id))
    }

    fn push_layer(&self, st: &mut StageState, layer: Descriptor, diff_id: Digest) -> Result<()> {
        if let Some(root) = st.rootfs.as_ref().map(|r| r.path().to_owned()) {
            let compression = Compression::of_layer(&layer.media_type).unwrap_or(Compression::None);
            let r = berth_image::archive::decompress(
                self.store.content().open(&layer.digest)?,
                compression,
            )
            .map_err(|e| Error::io("decompress", layer.digest.to_string(), e))?;
            berth_layer::apply::apply_layer(&root, r, &Default::default())?;
        }
        st.layers.push(layer);
        st.config.rootfs.diff_ids.push(diff_id);
        Ok(())
    }

    /// Builds every stage of `plan` and writes the target image to the store.
    pub fn build(&mut self, plan: &Plan, ctx: &mut Context) -> Result<Built> {
        let mut done: BTreeMap<usize, StageState> = BTreeMap::new();
        let (mut cacheable, mut cached) = (0, 0);
        for &i in &plan.order {
            let stage = &plan.stages[&i];
            let mut st = self.start_state(stage, &done)?;
            let label = stage.name.clone().unwrap_or_else(|| format!("stage-{i}"));
            let total = stage.steps.len() + 1;
            let id = self.next_id;
            self.next_id += 1;
            let from_text = match &stage.base {
                Base::Scratch => "FROM scratch".to_owned(),
                Base::Image(r) => format!("FROM {r}"),
                Base::Stage(j) => format!(
                    "FROM {}",
                    plan.stages[j].name.clone().unwrap_or_else(|| j.to_string())
                ),
            };
            (self.progress)(Event::Step {
                id,
                stage: label.clone(),
                index: 1,
                total,
                text: from_text,
            });
            (self.progress)(Event::Done { id, seconds: 0.0 });
            let no_cache = self.opts.no_cache
                || self
                    .opts
                    .no_cache_filter
                    .iter()
                    .any(|f| Some(f) == stage.name.as_ref() || *f == i.to_string());
            for (n, step) in stage.steps.iter().enumerate() {
                let id = self.next_id;
                self.next_id += 1;
                let started = Instant::now();
                (self.progress)(Event::Step {
                    id,
                    stage: label.clone(),
                    index: n + 2,
                    total,
                    text: step.display.clone(),
                });
                let mut layer_step = false;
                let mut was_cached = false;
                let rc = st.config.config.get_or_insert_with(RunConfig::default);
                match &step.op {
                    Op::Env(kvs) => {
                        let env = rc.env.get_or_insert_with(Vec::new);
                        for (k, v) in kvs {
                            env.retain(|e| e.split_once('=').map_or(e.as_str(), |(ek, _)| ek) != k);
                            env.push(format!("{k}={v}"));
                        }
                    }
                    Op::Label(kvs) => {
                        let l = rc.labels.get_or_insert_with(Default::default);
                        for (k, v) in kvs {
                            l.insert(k.clone(), v.clone());
                        }
                    }
                    Op::User(u) => rc.user = Some(u.clone()),
                    Op::Cmd(c) => rc.cmd = Some(c.clone()),
                    Op::Entrypoint(e) => {
                        rc.entrypoint = Some(e.clone());
                        // As docker: a new ENTRYPOINT resets an inherited CMD.
                        if !stage.steps[..n].iter().any(|s| matches!(s.op, Op::Cmd(_))) {
                            rc.cmd = None;
                        }
                    }
                    Op::Expose(ports) => {
                        let p = rc.exposed_ports.get_or_insert_with(Default::default);
                        for port in ports {
                            let port = if port.contains('/') {
                                port.clone()
                            } else {
                                format!("{port}/tcp")
                            };
                            p.insert(port, serde_json::json!({}));
                        }
                    }
                    Op::Volume(vols) => {
                        let v = rc.volumes.get_or_insert_with(Default::default);
                        for vol in vols {
                            v.insert(vol.clone(), serde_json::json!({}));
                        }
                    }
                    Op::StopSignal(s) => rc.stop_signal = Some(s.clone()),
                    Op::Shell(s) => rc.shell = Some(s.clone()),
                    Op::Healthcheck(h) => rc.healthcheck = Some(h.clone()),
                    Op::OnBuild(t) => rc.on_build.get_or_insert_with(Vec::new).push(t.clone()),
                    Op::Arg => {}
                    Op::Workdir(w) => {
                        let base = rc.working_dir.clone().unwrap_or_else(|| "/".into());
                        let abs = if w.starts_with('/') {
                            w.clone()
                        } else {
                            format!("{}/{}", base.trim_end_matches('/'), w)
                        };
                        let abs = format!("/{}", berth_layer::clean_components(&abs).join("/"));
                        rc.working_dir = Some(abs.clone());
                        layer_step = true;
                        let key =
                            key_of(&[st.key.to_string().as_bytes(), b"workdir", abs.as_bytes()]);
                        was_cached = self.run_cached(&mut st, &key, no_cache, |ex, st| {
                            let root = ex.rootfs(st)?.to_owned();
                            let rel = abs.trim_start_matches('/');
                            if rel.is_empty() || root.join(rel).is_dir() {
                                return Ok(None);
                            }
                            let stage_dir = ex.staging()?;
                            let mut cur = PathBuf::new();
                            for c in rel.split('/') {
                                cur.push(c);
                                let src = root.join(&cur);
                                let dst = stage_dir.path().join(&cur);
                                fs::create_dir_all(&dst)
                                    .map_err(|e| Error::io("create directory", &dst, e))?;
                                if let Ok(md) = fs::metadata(&src) {
                                    fs::set_permissions(
                                        &dst,
                                        fs::Permissions::from_mode(md.mode() & 0o7777),
                                    )
                                    .ok();
                                }
                            }
                            ex.write_layer(stage_dir.path()).map(Some)
                        })?;
                    }
                    Op::Copy(c) => {
                        layer_step = true;
                        let workdir = rc.working_dir.clone().unwrap_or_else(|| "/".into());
                        was_cached =
                            self.copy(&mut st, c, &workdir, step.line, ctx, &done, no_cache)?;
                    }
                }
                if layer_step {
                    cacheable += 1;
                    if was_cached {
                        cached += 1;
                        (self.progress)(Event::Cached { id });
                    }
                }
                let empty_layer = !layer_step
                    || st.config.rootfs.diff_ids.len()
                        == st.config.history.iter().filter(|h| !h.empty_layer).count();
                st.config.history.push(History {
                    created: Some(self.created_of(&st)),
                    created_by: Some(step.created_by.clone()),
                    comment: Some("buildkit.dockerfile.v0".into()),
                    empty_layer,
                    ..History::default()
                });
                (self.progress)(Event::Done {
                    id,
                    seconds: started.elapsed().as_secs_f64(),
                });
            }
            done.insert(i, st);
        }
        ctx.save_cache();
        let mut st = done.remove(&plan.target).expect("target was built");
        self.export(&mut st, cacheable, cached)
    }

    fn staging(&self) -> Result<tempfile::TempDir> {
        tempfile::Builder::new()
            .prefix("layer-")
            .tempdir_in(&self.tmp_dir)
            .map_err(|e| Error::io("create directory in", &self.tmp_dir, e))
    }

    /// Looks `key` up; on a miss runs `make` (which returns the new layer,
    /// or `None` for a step with no changes) and records the result.
    fn run_cached(
        &mut self,
        st: &mut StageState,
        key: &Digest,
        no_cache: bool,
        make: impl FnOnce(&mut Self, &mut StageState) -> Result<Option<(Descriptor, Digest)>>,
    ) -> Result<bool> {
        if !no_cache && let Some(rec) = self.cache_get(key) {
            if let (Some(l), Some(d)) = (rec.layer, rec.diff_id) {
                self.push_layer(st, l, d)?;
            }
            if rec.created.is_some() {
                st.created = rec.created;
            }
            st.key = key.clone();
            return Ok(true);
        }
        let made = make(self, st)?;
        let created = rfc3339(self.opts.source_date_epoch);
        st.created = Some(created.clone());
        let rec = CacheRecord {
            layer: made.as_ref().map(|m| m.0.clone()),
            diff_id: made.as_ref().map(|m| m.1.clone()),
            created: Some(created),
        };
        self.cache_put(key, &rec)?;
        if let Some((l, d)) = made {
            self.push_layer(st, l, d)?;
        }
        st.key = key.clone();
        Ok(false)
    }

    #[allow(clippy::too_many_arguments)]
    fn copy(
        &mut self,
        st: &mut StageState,
        c: &CopyOp,
        workdir: &str,
        line: usize,
        ctx: &mut Context,
        done: &BTreeMap<usize, StageState>,
        no_cache: bool,
    ) -> Result<bool> {
        let copy_err = |message: String| Error::Copy { line, message };
        let dest_abs = if c.dest.starts_with('/') {
            c.dest.clone()
        } else {
            format!("{}/{}", workdir.trim_end_matches('/'), c.dest)
        };
        let dest_is_dir = c.dest.ends_with('/') || c.dest.ends_with("/.") || c.dest == ".";
        let dest_rel = berth_layer::clean_components(&dest_abs).join("/");
        let definition = serde_json::json!({
            "op": "copy", "dest": dest_rel, "dest_dir": dest_is_dir, "chmod": c.chmod, "chown": c.chown,
            "link": c.link, "excludes": c.excludes, "inline": c.inline, "sources": c.sources,
        })
        .to_string();
        // The inputs: context content, or the source stage's cache key.
        // The inputs: the context's content, or the source stage's cache key
        // (which already determines its whole filesystem).
        let (input, ctx_matched) = match &c.from {
            Source::Context => {
                let matched = ctx
                    .resolve(&c.sources)
                    .map_err(|e| copy_err(e.to_string()))?;
                let d = ctx.digest(&matched)?;
                (d.to_string(), Some(matched))
            }
            Source::Stage(j) => (done[j].key.to_string(), None),
            Source::Image(r) => {
                return Err(Error::Unsupported {
                    line,
                    what: format!("COPY --from={r} (an image not in this Dockerfile)"),
                });
            }
        };
        let wildcard = c.sources.iter().any(|s| s.contains(['*', '?', '[']));
        let check_multi = |n: usize| -> Result<bool> {
            let multi = n + c.inline.len() > 1 || wildcard;
            if multi && !dest_is_dir {
                return Err(copy_err("when using COPY with more than one source file, the destination must be a directory and end with a /".into()));
            }
            Ok(multi)
        };
        if let Some(m) = &ctx_matched {
            check_multi(m.len())?;
        }
        let key = key_of(&[
            st.key.to_string().as_bytes(),
            definition.as_bytes(),
            input.as_bytes(),
        ]);
        // Everything below runs only on a cache miss: a cached COPY never
        // materialises a filesystem or reads /etc/passwd.
        let result = self.run_cached(st, &key, no_cache, |ex, st| {
            let mut _src_tree: Option<tempfile::TempDir> = None;
            let (matched, src_root) = match (&c.from, ctx_matched) {
                (Source::Stage(j), _) => {
                    let mut src = done[j].clone();
                    let root = ex.rootfs(&mut src)?.to_owned();
                    _src_tree = src.rootfs.take();
                    (
                        resolve_in_dir(&root, &c.sources).map_err(copy_err)?,
                        Some(root),
                    )
                }
                (_, Some(m)) => (m, None),
                (_, None) => unreachable!("context sources are resolved above"),
            };
            let multi = check_multi(matched.len())?;
            let chown = match &c.chown {
                None => None,
                Some(spec) => Some(ex.resolve_chown(st, spec).map_err(copy_err)?),
            };
            let staging = ex.staging()?;
            let dest_path = staging.path().join(&dest_rel);
            for m in &matched {
                let (src_path, is_dir) = match &src_root {
                    None => (ctx.root().join(m), ctx.kind(m) == Some(EntryKind::Dir)),
                    Some(root) => {
                        let p = root.join(m);
                        let d = fs::symlink_metadata(&p)
                            .map(|md| md.is_dir())
                            .unwrap_or(false);
                        (p, d)
                    }
                };
                let target = if is_dir {
                    dest_path.clone()
                } else if dest_is_dir || multi {
                    dest_path.join(
                        Path::new(m)
                            .file_name()
                            .map(|n| n.to_owned())
                            .unwrap_or_default(),
                    )
                } else {
                    dest_path.clone()
                };
                match &src_root {
                    None => copy_from_context(ctx, m, &target)?,
                    Some(_) => copy_tree(&src_path, &target)?,
                }
            }
            for (name, content) in &c.inline {
                let target = if dest_is_dir {
                    dest_path.join(name)
                } else {
                    dest_path.clone()
                };
                if let Some(p) = target.parent() {
                    fs::create_dir_all(p).map_err(|e| Error::io("create directory", p, e))?;
                }
                fs::write(&target, content).map_err(|e| Error::io("write", &target, e))?;
                fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).ok();
            }
            // --chmod and --chown apply to what was copied, not to the parents.
            if dest_path.exists() {
                fix_owner_mode(&dest_path, c.chmod, chown)?;
            }
            ex.write_layer(staging.path()).map(Some)
        })?;
        Ok(result)
    }

    /// `--chown=user:group`: numeric, or names from the stage's /etc/passwd and /etc/group.
    fn resolve_chown(
        &self,
        st: &mut StageState,
        spec: &str,
    ) -> std::result::Result<(u32, u32), String> {
        let (u, g) = spec
            .split_once(':')
            .map_or((spec, None), |(u, g)| (u, Some(g)));
        let lookup = |file: &str,
                      name: &str,
                      st: &mut StageState|
         -> std::result::Result<(u32, Option<u32>), String> {
            if let Ok(n) = name.parse::<u32>() {
                return Ok((n, None));
            }
            let root = self.rootfs(st).map_err(|e| e.to_string())?;
            let text = fs::read_to_string(root.join(file))
                .map_err(|_| format!("unable to find {name:?}: no /{file} in the image"))?;
            for line in text.lines() {
                let f: Vec<&str> = line.split(':').collect();
                if f.len() >= 3 && f[0] == name {
                    let id = f[2]
                        .parse()
                        .map_err(|_| format!("bad /{file} entry for {name}"))?;
                    let gid = f.get(3).and_then(|g| g.parse().ok());
                    return Ok((id, gid));
                }
            }
            Err(format!("unable to find user or group {name:?} in /{file}"))
        };
        let (uid, primary) = lookup("etc/passwd", u, st)?;
        let gid = match g {
            Some(g) => lookup("etc/group", g, st)?.0,
            None => primary.unwrap_or(uid),
        };
        Ok((uid, gid))
    }

    /// The time recorded for a step: its layer's (first) creation, else the
    /// newest earlier one. Deterministic for cached steps.
    fn created_of(&self, st: &StageState) -> String {
        match self.opts.source_date_epoch {
            Some(t) => rfc3339(Some(t)),
            None => st.created.clone().unwrap_or_else(|| rfc3339(Some(0))),
        }
    }

    fn export(&mut self, st: &mut StageState, cacheable: usize, cached: usize) -> Result<Built> {
        st.config.created = Some(self.created_of(st));
        let config_bytes = st.config.to_vec();
        let config_digest = self.store.put_json(&config_bytes)?;
        let mut annotations = BTreeMap::new();
        if let Some((name, digest)) = &st.base {
            annotations.insert(ANNOTATION_BASE_NAME.to_owned(), name.clone());
            annotations.insert(ANNOTATION_BASE_DIGEST.to_owned(), digest.to_string());
        }
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(media_type::OCI_MANIFEST.into()),
            artifact_type: None,
            config: Descriptor::new(
                media_type::OCI_CONFIG,
                config_digest.clone(),
                config_bytes.len() as u64,
            ),
            layers: st.layers.clone(),
            subject: None,
            annotations,
        };
        let bytes = berth_oci::manifest::to_vec(&manifest);
        let digest = self.store.put_json(&bytes)?;
        Ok(Built {
            manifest: Descriptor::new(media_type::OCI_MANIFEST, digest, bytes.len() as u64),
            config_digest,
            cacheable_steps: cacheable,
            cached_steps: cached,
        })
    }

    /// Names (or records as dangling) the built image.
    pub fn tag(&self, built: &Built, names: &[Reference]) -> Result<()> {
        if names.is_empty() {
            self.store.add_untagged(&self._guard, &built.manifest)?;
        }
        for n in names {
            self.store.tag(&self._guard, &built.manifest, n)?;
        }
        Ok(())
    }
}

/// Resolves sources (with wildcards) inside a materialised stage filesystem.
fn resolve_in_dir(root: &Path, sources: &[String]) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    for s in sources {
        let clean = berth_layer::clean_components(s).join("/");
        if clean.contains(['*', '?', '[']) {
            let (dir, pat) = clean.rsplit_once('/').unwrap_or(("", clean.as_str()));
            let mut hits: Vec<String> = fs::read_dir(root.join(dir))
                .map_err(|_| format!("{s:?} not found in the source stage"))?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| crate::context::glob_component(pat, n))
                .map(|n| {
                    if dir.is_empty() {
                        n
                    } else {
                        format!("{dir}/{n}")
                    }
                })
                .collect();
            hits.sort();
            if hits.is_empty() {
                return Err(format!("no files in the source stage match {s:?}"));
            }
            out.extend(hits);
        } else {
            if fs::symlink_metadata(root.join(&clean)).is_err() {
                return Err(format!("{s:?} not found in the source stage"));
            }
            out.push(clean);
        }
    }
    Ok(out)
}

/// Copies a context entry (file, symlink or directory contents) to `target`.
fn copy_from_context(ctx: &Context, rel: &str, target: &Path) -> Result<()> {
    let root = ctx.root();
    let kind = ctx.kind(rel);
    if kind == Some(EntryKind::Dir) {
        fs::create_dir_all(target).map_err(|e| Error::io("create directory", target, e))?;
        if !rel.is_empty() {
            copy_meta(&root.join(rel), target)?;
        }
        let prefix_len = if rel.is_empty() { 0 } else { rel.len() + 1 };
        for (p, k) in ctx.below(rel) {
            if p == rel {
                continue;
            }
            let dst = target.join(&p[prefix_len..]);
            copy_one(&root.join(p), &dst, k)?;
        }
        return Ok(());
    }
    copy_one(&root.join(rel), target, kind.unwrap_or(EntryKind::File))
}

fn copy_one(src: &Path, dst: &Path, kind: EntryKind) -> Result<()> {
    if let Some(p) = dst.parent() {
        fs::create_dir_all(p).map_err(|e| Error::io("create directory", p, e))?;
    }
    match kind {
        EntryKind::Dir => {
            fs::create_dir_all(dst).map_err(|e| Error::io("create directory", dst, e))?;
            copy_meta(src, dst)
        }
        EntryKind::File => {
            fs::copy(src, dst).map_err(|e| Error::io("copy", src, e))?;
            copy_meta(src, dst)
        }
        EntryKind::Symlink => {
            let t = fs::read_link(src).map_err(|e| Error::io("readlink", src, e))?;
            let _ = fs::remove_file(dst);
            std::os::unix::fs::symlink(&t, dst).map_err(|e| Error::io("symlink", dst, e))
        }
        EntryKind::Other => Ok(()),
    }
}

/// Copies a tree from a materialised stage (owners kept, as BuildKit does for --from).
fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let md = fs::symlink_metadata(src).map_err(|e| Error::io("stat", src, e))?;
    if md.is_dir() {
        fs::create_dir_all(dst).map_err(|e| Error::io("create directory", dst, e))?;
        let mut names: Vec<_> = fs::read_dir(src)
            .map_err(|e| Error::io("read directory", src, e))?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        names.sort();
        for n in names {
            copy_tree(&src.join(&n), &dst.join(&n))?;
        }
        copy_meta(src, dst)?;
        let _ = std::os::unix::fs::lchown(dst, Some(md.uid()), Some(md.gid()));
        return Ok(());
    }
    let kind = if md.file_type().is_symlink() {
        EntryKind::Symlink
    } else if md.is_file() {
        EntryKind::File
    } else {
        EntryKind::Other
    };
    copy_one(src, dst, kind)?;
    let _ = std::os::unix::fs::lchown(dst, Some(md.uid()), Some(md.gid()));
    Ok(())
}

fn copy_meta(src: &Path, dst: &Path) -> Result<()> {
    let md = fs::metadata(src).map_err(|e| Error::io("stat", src, e))?;
    fs::set_permissions(dst, fs::Permissions::from_mode(md.mode() & 0o7777))
        .map_err(|e| Error::io("chmod", dst, e))?;
    let mtime = md.modified().map_err(|e| Error::io("stat", src, e))?;
    fs::File::options()
        .write(md.is_file())
        .read(!md.is_file())
        .open(dst)
        .and_then(|f| f.set_modified(mtime))
        .map_err(|e| Error::io("set mtime", dst, e))
}

fn fix_owner_mode(path: &Path, chmod: Option<u32>, chown: Option<(u32, u32)>) -> Result<()> {
    let md = fs::symlink_metadata(path).map_err(|e| Error::io("stat", path, e))?;
    if let Some((u, g)) = chown {
        std::os::unix::fs::lchown(path, Some(u), Some(g))
            .map_err(|e| Error::io("chown", path, e))?;
    }
    if let Some(m) = chmod
        && !md.file_type().is_symlink()
    {
        fs::set_permissions(path, fs::Permissions::from_mode(m))
            .map_err(|e| Error::io("chmod", path, e))?;
    }
    if md.is_dir() {
        for e in fs::read_dir(path).map_err(|e| Error::io("read directory", path, e))? {
            let e = e.map_err(|err| Error::io("read directory", path, err))?;
            fix_owner_mode(&e.path(), chmod, chown)?;
        }
    }
    Ok(())
}
