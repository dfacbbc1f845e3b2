//! Executing a plan against the local store, with the cache.
//!
//! The scheduler runs stages as soon as the stages they need are done, up
//! to `jobs` at once (default: the number of CPUs); the steps of one stage
//! run in order. Nothing observable depends on the schedule: step ids are
//! assigned from the plan before anything runs, cache keys depend only on
//! inputs, and a failed build reports the failure of the earliest stage.
//! Identical vertices (same cache key) run once: a per-key lock makes the
//! second wait for the first and then find its record.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use berth_content::ContentStore;
use berth_image::{ImageStore, WriteGuard};
use berth_layer::write::{Source as TreeSource, WriteOptions};
use berth_oci::descriptor::{ANNOTATION_BASE_DIGEST, ANNOTATION_BASE_NAME};
use berth_oci::media_type::{self, Compression};
use berth_oci::{Descriptor, Digest, History, ImageConfig, ImageManifest, Reference, RunConfig};
use serde::{Deserialize, Serialize};

use crate::context::Context;
use crate::plan::{Base, Op, Plan, Stage};
use crate::resolve::{ImageResolver, LocalOnly};
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
    /// Stages built at once (0: the number of CPUs).
    pub jobs: usize,
    /// What RUN steps may use (sandbox helper, secrets, SSH, entitlements).
    pub run: crate::run::RunOptions,
    /// Keep extracted layers in the store as overlay snapshots
    /// ([`crate::snapshots`]) and give steps overlay views of them instead
    /// of private extracted copies: a base image is extracted once, ever.
    /// Needs root and a process whose mounts die with it
    /// ([`berth_sandbox::overlay::private_mount_namespace`]), else a killed
    /// build would leave its views mounted.
    pub snapshots: bool,
}

impl Default for ExecOptions {
    fn default() -> ExecOptions {
        ExecOptions {
            compression: Compression::Gzip,
            no_cache: false,
            no_cache_filter: Vec::new(),
            source_date_epoch: None,
            jobs: 0,
            run: Default::default(),
            snapshots: false,
        }
    }
}

/// A progress event, rendered by the CLI. More kinds may come (RUN output,
/// say): renderers must accept events they do not know.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
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
    /// A line of a RUN step's output (stdout and stderr, in order).
    Output {
        id: usize,
        line: String,
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
    /// The cache keys of every layer step of the build, in the order the
    /// steps finished (for `--cache-to ...,mode=max`).
    pub cache_keys: Vec<Digest>,
    /// The cache keys of the target stage's chain (its steps and those of
    /// the stages it is `FROM`), for `--cache-to ...,mode=min`.
    pub target_cache_keys: Vec<Digest>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CacheRecord {
    pub(crate) layer: Option<Descriptor>,
    pub(crate) diff_id: Option<Digest>,
    /// When the step first ran: reused on hits so that a fully cached
    /// rebuild yields the same config, hence the same image id.
    #[serde(default)]
    pub(crate) created: Option<String>,
}

/// A stage's state while it is being built.
#[derive(Debug)]
pub(crate) struct StageState {
    pub(crate) config: ImageConfig,
    pub(crate) layers: Vec<Descriptor>,
    /// Determines the stage's file system and config so far.
    pub(crate) key: Digest,
    pub(crate) base: Option<(String, Digest)>,
    /// The stage's file system so far, if a step needed it.
    pub(crate) rootfs: Option<RootFs>,
    /// The creation time of the newest layer step (or of the base image).
    pub(crate) created: Option<String>,
    /// Cache keys of the layer steps of this stage's chain.
    pub(crate) keys: Vec<Digest>,
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
            keys: self.keys.clone(),
        }
    }
}

/// The entry of `key` in a map of per-key locks (made on first use).
pub(crate) fn slot<T: Default>(
    map: &Mutex<HashMap<Digest, Arc<Mutex<T>>>>,
    key: &Digest,
) -> Arc<Mutex<T>> {
    map.lock()
        .expect("lock map")
        .entry(key.clone())
        .or_default()
        .clone()
}

pub(crate) fn key_of(parts: &[&[u8]]) -> Digest {
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

/// An image used as a COPY or mount source.
#[derive(Debug, Clone)]
pub(crate) struct ImageSource {
    /// The manifest digest (the cache input).
    pub(crate) digest: Digest,
    pub(crate) layers: Vec<Descriptor>,
    pub(crate) diff_ids: Vec<Digest>,
}

/// A stage's (or image's) file system as steps see it.
#[derive(Debug)]
pub(crate) enum RootFs {
    /// Extracted into a private directory of this build (written in place
    /// as layers are added).
    Flat(tempfile::TempDir),
    /// A read-only view of persistent snapshots (replaced, not written,
    /// when a layer is added).
    View(crate::snapshots::View),
}

impl RootFs {
    pub(crate) fn path(&self) -> &Path {
        match self {
            RootFs::Flat(d) => d.path(),
            RootFs::View(v) => v.path(),
        }
    }
}

/// A read-only file system, shared by the steps that read it.
type Snapshot = Arc<RootFs>;

/// Runs builds against one store. Shared by the threads building stages.
pub struct Executor<'a> {
    store: &'a ImageStore,
    _guard: WriteGuard,
    opts: ExecOptions,
    progress: &'a (dyn Fn(Event) + Sync),
    /// Finds (or pulls) the images the Dockerfile names.
    resolver: &'a dyn ImageResolver,
    /// Fetches ADD's URLs.
    fetcher: &'a dyn crate::fetch::UrlFetcher,
    cache_dir: PathBuf,
    tmp_dir: PathBuf,
    /// One lock per cache key being computed (identical vertices run once).
    inflight: Mutex<HashMap<Digest, Arc<Mutex<()>>>>,
    /// Keys computed by this build (hits for identical vertices even with --no-cache).
    made: Mutex<HashSet<Digest>>,
    /// Materialised sources of `COPY --from` (stages and images), by key.
    snapshots: Mutex<HashMap<Digest, Arc<Mutex<Option<Snapshot>>>>>,
    /// This build's scratch directory (materialised file systems, staged
    /// layers, downloads): removed last, on drop.
    scratch: crate::scratch::Scratch,
    /// Every layer step's key, for [`Built::cache_keys`].
    used: Mutex<Vec<Digest>>,
    /// The store's persistent snapshots, when [`ExecOptions::snapshots`].
    snaps: Option<crate::snapshots::Snapshots>,
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
        progress: &'a (dyn Fn(Event) + Sync),
    ) -> Result<Executor<'a>> {
        let cache_dir = store.root().join("buildcache");
        let tmp_root = store.root().join("tmp");
        for d in [&cache_dir, &tmp_root] {
            fs::create_dir_all(d).map_err(|e| Error::io("create directory", d, e))?;
        }
        let scratch = crate::scratch::begin(&tmp_root)?;
        let tmp_dir = tmp_root;
        let snaps = if opts.snapshots {
            Some(crate::snapshots::Snapshots::new(store.root())?)
        } else {
            None
        };
        Ok(Executor {
            snaps,
            _guard: store.write_guard()?,
            store,
            opts,
            progress,
            resolver: &LocalOnly,
            fetcher: &crate::fetch::PlainHttp,
            cache_dir,
            tmp_dir,
            inflight: Mutex::new(HashMap::new()),
            made: Mutex::new(HashSet::new()),
            snapshots: Mutex::new(HashMap::new()),
            scratch,
            used: Mutex::new(Vec::new()),
        })
    }

    /// Uses `resolver` to find the images the Dockerfile names (default:
    /// [`LocalOnly`], the local store).
    pub fn with_resolver(mut self, resolver: &'a dyn ImageResolver) -> Executor<'a> {
        self.resolver = resolver;
        self
    }

    /// Uses `fetcher` for ADD's URLs (default:
    /// [`PlainHttp`](crate::fetch::PlainHttp), `http://` only).
    pub fn with_fetcher(mut self, fetcher: &'a dyn crate::fetch::UrlFetcher) -> Executor<'a> {
        self.fetcher = fetcher;
        self
    }

    pub(crate) fn fetcher(&self) -> &dyn crate::fetch::UrlFetcher {
        self.fetcher
    }

    pub(crate) fn store(&self) -> &'a ImageStore {
        self.store
    }

    pub(crate) fn options(&self) -> &ExecOptions {
        &self.opts
    }

    pub(crate) fn emit(&self, e: Event) {
        (self.progress)(e)
    }

    /// The store's `tmp` directory, shared by all builds.
    pub(crate) fn tmp_dir(&self) -> &Path {
        &self.tmp_dir
    }

    /// This build's own scratch directory inside `tmp`.
    pub(crate) fn scratch_dir(&self) -> &Path {
        self.scratch.path()
    }

    /// `SOURCE_DATE_EPOCH` as a time.
    pub(crate) fn epoch_time(&self) -> Option<SystemTime> {
        self.opts
            .source_date_epoch
            .map(|e| SystemTime::UNIX_EPOCH + Duration::from_secs(e.max(0) as u64))
    }

    /// An image as a COPY or mount source (from the store, or pulled by the
    /// resolver): its manifest digest (the cache input) and layers.
    pub(crate) fn image_source(&self, r: &str) -> Result<ImageSource> {
        let rec = self.resolver.resolve(self.store, r)?;
        let img = self.store.resolve(&rec, None)?;
        Ok(ImageSource {
            digest: img.manifest.digest.clone(),
            layers: img.image.layers.clone(),
            diff_ids: img.config.rootfs.diff_ids.clone(),
        })
    }

    /// The file system made of `layers`, materialised once per `key` and
    /// shared read-only.
    pub(crate) fn snapshot(
        &self,
        key: &Digest,
        layers: &[Descriptor],
        diff_ids: &[Digest],
    ) -> Result<Snapshot> {
        let slot = slot(&self.snapshots, key);
        let mut slot = slot.lock().expect("snapshot");
        if let Some(s) = &*slot {
            return Ok(s.clone());
        }
        let s = Arc::new(self.root_fs(layers, diff_ids)?);
        *slot = Some(s.clone());
        Ok(s)
    }

    /// The file system made of `layers`: a view of snapshots, or a private
    /// extracted copy.
    fn root_fs(&self, layers: &[Descriptor], diff_ids: &[Digest]) -> Result<RootFs> {
        match &self.snaps {
            Some(_) => Ok(RootFs::View(crate::snapshots::View::mount(
                &self.lowers(layers, diff_ids)?,
                self.scratch.path(),
            )?)),
            None => Ok(RootFs::Flat(self.materialise(layers)?)),
        }
    }

    /// The snapshot directories (topmost first) of `layers`, extracting
    /// missing ones. Only with [`ExecOptions::snapshots`].
    pub(crate) fn lowers(
        &self,
        layers: &[Descriptor],
        diff_ids: &[Digest],
    ) -> Result<Vec<PathBuf>> {
        let snaps = self.snaps.as_ref().expect("snapshots enabled");
        snaps.lowers(self.store, layers, diff_ids, self.scratch.path())
    }

    /// Whether steps work on snapshots (else on private extracted copies).
    pub(crate) fn uses_snapshots(&self) -> bool {
        self.snaps.is_some()
    }

    /// Records `tree` (the new layer alone, overlay format, in this build's
    /// scratch or run directory) as the snapshot of the stage's chain plus
    /// `diff_id`, by rename. A no-op without snapshots.
    pub(crate) fn commit_snapshot(
        &self,
        st: &StageState,
        layer: &Digest,
        diff_id: &Digest,
        tree: &Path,
    ) -> Result<()> {
        let Some(snaps) = &self.snaps else {
            return Ok(());
        };
        let mut ids = st.config.rootfs.diff_ids.clone();
        ids.push(diff_id.clone());
        let chain = crate::snapshots::chain_ids(&ids)
            .pop()
            .expect("one at least");
        snaps.commit(&chain, layer, tree)
    }

    fn materialise(&self, layers: &[Descriptor]) -> Result<tempfile::TempDir> {
        let dir = tempfile::Builder::new()
            .prefix("rootfs-")
            .tempdir_in(self.scratch.path())
            .map_err(|e| Error::io("create directory in", self.scratch.path(), e))?;
        for l in layers {
            let compression = Compression::of_layer(&l.media_type).unwrap_or(Compression::None);
            let r = berth_image::archive::decompress(
                self.store.content().open(&l.digest)?,
                compression,
            )
            .map_err(|e| Error::io("decompress", l.digest.to_string(), e))?;
            berth_layer::apply::apply_layer(dir.path(), r, &Default::default())?;
        }
        Ok(dir)
    }

    pub(crate) fn cache_get(&self, key: &Digest) -> Option<CacheRecord> {
        let bytes = fs::read(self.cache_dir.join(key.hex())).ok()?;
        let rec: CacheRecord = serde_json::from_slice(&bytes).ok()?;
        // A record whose layer was garbage-collected is a miss.
        if let Some(l) = &rec.layer
            && !matches!(self.store.content().info(&l.digest), Ok(Some(_)))
        {
            return None;
        }
        // A hit marks the record used (its mtime), for `builder prune
        // --keep-storage`, which drops the least recently used first.
        if let Ok(f) = fs::OpenOptions::new()
            .write(true)
            .open(self.cache_dir.join(key.hex()))
        {
            let _ = f.set_modified(SystemTime::now());
        }
        Some(rec)
    }

    pub(crate) fn cache_put(&self, key: &Digest, rec: &CacheRecord) -> Result<()> {
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
                        config: Some(RunConfig {
                            env: Some(vec![format!("PATH={}", crate::DEFAULT_PATH)]),
                            ..RunConfig::default()
                        }),
                        ..ImageConfig::default()
                    },
                    layers: Vec::new(),
                    key: key_of(&[b"scratch"]),
                    base: None,
                    rootfs: None,
                    created: None,
                    keys: Vec::new(),
                })
            }
            Base::Stage(i) => Ok(done[i].clone()),
            Base::Image(r) => {
                let rec = self.resolver.resolve(self.store, r).map_err(|e| match e {
                    Error::Image(berth_image::Error::NotFound(_)) => Error::Dockerfile {
                        line: stage.line,
                        message: format!(
                            "base image {r:?} is not in the local store (pull, load or import it first)"
                        ),
                    },
                    Error::Pull {
                        reference, source, ..
                    } => Error::Pull {
                        line: Some(stage.line),
                        reference,
                        source,
                    },
                    other => other,
                })?;
                let mut img = self.store.resolve(&rec, None)?;
                // As BuildKit: a base that sets no PATH gets the default one
                // (in the config, so RUN and the final image see it).
                let env = img
                    .config
                    .config
                    .get_or_insert_with(RunConfig::default)
                    .env
                    .get_or_insert_with(Vec::new);
                if !env.iter().any(|e| e.starts_with("PATH=")) {
                    env.push(format!("PATH={}", crate::DEFAULT_PATH));
                }
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
                    keys: Vec::new(),
                })
            }
        }
    }

    /// Materialises the stage's filesystem (applies its layers) if needed.
    pub(crate) fn rootfs<'s>(&self, st: &'s mut StageState) -> Result<&'s Path> {
        if st.rootfs.is_none() {
            st.rootfs = Some(self.root_fs(&st.layers, &st.config.rootfs.diff_ids)?);
        }
        Ok(st.rootfs.as_ref().expect("just set").path())
    }

    pub(crate) fn write_layer(&self, dir: &Path) -> Result<(Descriptor, Digest)> {
        let opts = WriteOptions {
            clamp_mtime: self.opts.source_date_epoch.map(|e| e.max(0) as u64),
            prefix: None,
        };
        let w = crate::pgzip::LayerSink::new(self.store, self.opts.compression)?;
        let (w, _) = berth_layer::write::write_layer(dir, TreeSource::Tree, &opts, w)?;
        w.finish()
    }

    pub(crate) fn push_layer(
        &self,
        st: &mut StageState,
        layer: Descriptor,
        diff_id: Digest,
    ) -> Result<()> {
        if let Some(RootFs::View(_)) = &st.rootfs {
            // A view shows the old chain: the next step mounts a new one.
            st.rootfs = None;
        }
        if let Some(RootFs::Flat(dir)) = &st.rootfs {
            let root = dir.path().to_owned();
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

    /// Builds every stage of `plan` (independent stages in parallel) and
    /// writes the target image to the store.
    pub fn build(&self, plan: &Plan, ctx: &Context) -> Result<Built> {
        // Step ids come from the plan, so they do not depend on the schedule.
        let mut ids = BTreeMap::new();
        let mut next = 1;
        for &i in &plan.order {
            ids.insert(i, next);
            next += plan.stages[&i].steps.len() + 1;
        }
        let jobs = match self.opts.jobs {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        struct Sched {
            done: BTreeMap<usize, StageState>,
            pending: Vec<usize>,
            failed: BTreeMap<usize, Error>,
            cacheable: usize,
            cached: usize,
        }
        let sched = Mutex::new(Sched {
            done: BTreeMap::new(),
            pending: plan.order.clone(),
            failed: BTreeMap::new(),
            cacheable: 0,
            cached: 0,
        });
        let wake = Condvar::new();
        std::thread::scope(|s| {
            for _ in 0..jobs.clamp(1, plan.order.len().max(1)) {
                s.spawn(|| {
                    loop {
                        let (i, deps) = {
                            let mut g = sched.lock().expect("scheduler");
                            loop {
                                if !g.failed.is_empty() || g.pending.is_empty() {
                                    return;
                                }
                                let ready = g.pending.iter().position(|i| {
                                    plan.stages[i].deps().iter().all(|d| g.done.contains_key(d))
                                });
                                if let Some(pos) = ready {
                                    let i = g.pending.remove(pos);
                                    let deps: BTreeMap<usize, StageState> = plan.stages[&i]
                                        .deps()
                                        .into_iter()
                                        .map(|d| (d, g.done[&d].clone()))
                                        .collect();
                                    break (i, deps);
                                }
                                g = wake.wait(g).expect("scheduler");
                            }
                        };
                        let r = self.build_stage(plan, i, ids[&i], &deps, ctx);
                        let mut g = sched.lock().expect("scheduler");
                        match r {
                            Ok((st, cacheable, cached)) => {
                                g.done.insert(i, st);
                                g.cacheable += cacheable;
                                g.cached += cached;
                            }
                            Err(e) => {
                                g.failed.insert(i, e);
                            }
                        }
                        wake.notify_all();
                    }
                });
            }
        });
        ctx.save_cache();
        let mut g = sched.into_inner().expect("scheduler");
        if let Some((_, e)) = g.failed.pop_first() {
            return Err(e);
        }
        let mut st = g.done.remove(&plan.target).expect("target was built");
        self.export(&mut st, g.cacheable, g.cached)
    }

    /// Builds one stage whose dependencies are done; returns its state and
    /// how many layer steps it had and found in the cache.
    fn build_stage(
        &self,
        plan: &Plan,
        i: usize,
        first_id: usize,
        deps: &BTreeMap<usize, StageState>,
        ctx: &Context,
    ) -> Result<(StageState, usize, usize)> {
        let (mut cacheable, mut cached) = (0, 0);
        {
            let stage = &plan.stages[&i];
            let mut st = self.start_state(stage, deps)?;
            let label = stage.name.clone().unwrap_or_else(|| format!("stage-{i}"));
            let total = stage.steps.len() + 1;
            let id = first_id;
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
                let id = first_id + n + 1;
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
                        // As BuildKit: missing directories are created owned
                        // by the current USER, so the user enters the key.
                        let user = rc.user.clone().filter(|u| !u.is_empty());
                        let parent = st.key.to_string();
                        let mut key_parts: Vec<&[u8]> =
                            vec![parent.as_bytes(), b"workdir", abs.as_bytes()];
                        if let Some(u) = &user {
                            key_parts.push(b"user");
                            key_parts.push(u.as_bytes());
                        }
                        let key = key_of(&key_parts);
                        was_cached = self.run_cached(&mut st, &key, no_cache, |ex, st| {
                            let root = ex.rootfs(st)?.to_owned();
                            let rel = abs.trim_start_matches('/');
                            if rel.is_empty() || root.join(rel).is_dir() {
                                return Ok(None);
                            }
                            let owner = match &user {
                                Some(u) => {
                                    Some(crate::copy::resolve_chown(Some(&root), u).map_err(
                                        |message| Error::Copy {
                                            line: step.line,
                                            message: format!("WORKDIR {abs}: user {message}"),
                                        },
                                    )?)
                                }
                                None => None,
                            };
                            let stage_dir = ex.staging()?;
                            let mut cur = PathBuf::new();
                            for c in rel.split('/') {
                                cur.push(c);
                                let src = root.join(&cur);
                                let dst = stage_dir.path().join(&cur);
                                fs::create_dir_all(&dst)
                                    .map_err(|e| Error::io("create directory", &dst, e))?;
                                // Existing parents keep their mode and owner in
                                // the layer; new directories belong to USER.
                                let (mode, uid, gid) = match fs::metadata(&src) {
                                    Ok(md) => (md.mode() & 0o7777, md.uid(), md.gid()),
                                    Err(_) => {
                                        let (u, g) = owner.unwrap_or((0, 0));
                                        (0o755, u, g)
                                    }
                                };
                                fs::set_permissions(&dst, fs::Permissions::from_mode(mode))
                                    .map_err(|e| Error::io("chmod", &dst, e))?;
                                std::os::unix::fs::chown(&dst, Some(uid), Some(gid))
                                    .map_err(|e| Error::io("chown", &dst, e))?;
                            }
                            let made = ex.write_layer(stage_dir.path())?;
                            ex.commit_snapshot(st, &made.0.digest, &made.1, stage_dir.path())?;
                            Ok(Some(made))
                        })?;
                    }
                    Op::Copy(c) => {
                        layer_step = true;
                        let workdir = rc.working_dir.clone().unwrap_or_else(|| "/".into());
                        was_cached =
                            self.copy(&mut st, c, &workdir, step.line, ctx, deps, no_cache)?;
                    }
                    Op::Run(r) => {
                        layer_step = true;
                        let label = format!("[{label} {}/{total}]", n + 2);
                        let at = crate::run::StepAt {
                            id,
                            line: step.line,
                            label: &label,
                        };
                        was_cached =
                            crate::run::run_step(self, &mut st, r, &at, ctx, deps, no_cache)?;
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
            // A materialised file system is kept for `COPY --from` of this stage.
            if let Some(dir) = st.rootfs.take() {
                let slot = slot(&self.snapshots, &st.key);
                let mut slot = slot.lock().expect("snapshot");
                if slot.is_none() {
                    *slot = Some(Arc::new(dir));
                }
            }
            Ok((st, cacheable, cached))
        }
    }

    pub(crate) fn staging(&self) -> Result<tempfile::TempDir> {
        tempfile::Builder::new()
            .prefix("layer-")
            .tempdir_in(self.scratch.path())
            .map_err(|e| Error::io("create directory in", self.scratch.path(), e))
    }

    /// Looks `key` up; on a miss runs `make` (which returns the new layer,
    /// or `None` for a step with no changes) and records the result. While
    /// `make` runs, other threads asking for the same key wait, then hit.
    pub(crate) fn run_cached(
        &self,
        st: &mut StageState,
        key: &Digest,
        no_cache: bool,
        make: impl FnOnce(&Self, &mut StageState) -> Result<Option<(Descriptor, Digest)>>,
    ) -> Result<bool> {
        let lock = slot(&self.inflight, key);
        let _held = lock.lock().expect("key lock");
        st.keys.push(key.clone());
        self.used.lock().expect("used").push(key.clone());
        let made_here = self.made.lock().expect("made").contains(key);
        if (!no_cache || made_here)
            && let Some(rec) = self.cache_get(key)
        {
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
        self.made.lock().expect("made").insert(key.clone());
        if let Some((l, d)) = made {
            self.push_layer(st, l, d)?;
        }
        st.key = key.clone();
        Ok(false)
    }

    /// The time recorded for a step: its layer's (first) creation, else the
    /// newest earlier one. Deterministic for cached steps.
    fn created_of(&self, st: &StageState) -> String {
        match self.opts.source_date_epoch {
            Some(t) => rfc3339(Some(t)),
            None => st.created.clone().unwrap_or_else(|| rfc3339(Some(0))),
        }
    }

    fn export(&self, st: &mut StageState, cacheable: usize, cached: usize) -> Result<Built> {
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
            cache_keys: self.used.lock().expect("used").clone(),
            target_cache_keys: st.keys.clone(),
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
