//! `RUN`: planning (shell and exec forms, heredocs, `--mount`, `--network`,
//! `--security`) and execution in [`berth_sandbox`].
//!
//! Execution: the stage's snapshots ([`crate::snapshots`]; or, without
//! them, its privately extracted file system) are the lower directories of
//! an overlay whose upper directory starts empty; the command runs in the
//! sandbox; the upper directory (whiteouts, opaque directories) becomes the
//! step's layer, and then, by rename, the layer's snapshot.
//! A command that changes nothing makes no layer (as current BuildKit).
//!
//! The cache key is the step's whole definition — command, environment
//! (image `ENV` and the stage's `ARG`s), user, working directory, network,
//! security mode, and the bind and cache mounts — plus the parent key and
//! the inputs of bind mounts (a stage's key, an image's digest or the
//! context files' digest). Secret, SSH and tmpfs mounts never enter the
//! key; secrets never touch the disk (they travel to the sandbox through a
//! pipe and live in a tmpfs of its own), the key, the history or the logs.
//! The output of RUN is not hashed.
//!
//! The network is the host's unless `--network=none`: like `buildkitd`
//! without CNI, and so that package managers work (berth has no bridge
//! networking yet). `--security=insecure` needs the `security.insecure`
//! entitlement ([`RunOptions::allow_insecure`]).
//!
//! Cache mounts live under `<store root>/buildcache-mounts/`, one directory
//! per id, with `flock`s implementing the sharing modes (`shared`: shared
//! lock; `locked`: exclusive, waiting; `private`: exclusive if free, else a
//! throwaway directory). [`prune`] empties them and the step cache.

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_dockerfile::Instruction;
use berth_image::layer_writer::LayerWriter;
use berth_layer::write::{Source as TreeSource, WriteOptions};
use berth_oci::{Descriptor, Digest};
use berth_sandbox::{Mount, MountKind, Network, Rootfs, Security, Spec};
use berth_shell::{EnvMap, Lexer};

use crate::context::Context;
use crate::exec::{Event, Executor, StageState, key_of};
use crate::plan::Source;
use crate::{Error, Result};

/// What the caller of a build grants RUN steps.
#[derive(Clone)]
pub struct RunOptions {
    /// The sandbox helper: a program calling
    /// `berth_sandbox::init_if_requested` first (the `berth` binary).
    pub helper: PathBuf,
    /// Secrets by id (`--secret`).
    pub secrets: BTreeMap<String, Vec<u8>>,
    /// SSH agent sockets by id (`--ssh`).
    pub ssh: BTreeMap<String, PathBuf>,
    /// The `security.insecure` entitlement.
    pub allow_insecure: bool,
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions {
            helper: PathBuf::from("/proc/self/exe"),
            secrets: BTreeMap::new(),
            ssh: BTreeMap::new(),
            allow_insecure: false,
        }
    }
}

impl std::fmt::Debug for RunOptions {
    /// Secret ids only, never their values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("helper", &self.helper)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("ssh", &self.ssh)
            .field("allow_insecure", &self.allow_insecure)
            .finish()
    }
}

/// `--network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunNetwork {
    Default,
    None,
    Host,
}

/// `--mount=type=cache,sharing=...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sharing {
    Shared,
    Private,
    Locked,
}

/// One `--mount`. Targets may be relative to the working directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunMount {
    Bind {
        target: String,
        from: Source,
        source: String,
        rw: bool,
    },
    Cache {
        target: String,
        id: String,
        sharing: Sharing,
        from: Option<Source>,
        source: String,
        mode: u32,
        uid: u32,
        gid: u32,
        readonly: bool,
    },
    Tmpfs {
        target: String,
        size: Option<u64>,
    },
    Secret {
        id: String,
        target: Option<String>,
        env: Option<String>,
        required: bool,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Ssh {
        id: String,
        target: Option<String>,
        required: bool,
    },
}

/// A file the step provides (a heredoc with a shebang, run as a program).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InlineFile {
    pub path: String,
    pub contents: String,
    pub mode: u32,
}

/// A planned RUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOp {
    /// The process's argv (the shell prepended for the shell form).
    pub args: Vec<String>,
    pub files: Vec<InlineFile>,
    /// The stage's build arguments with values at this point (sorted):
    /// visible to the command unless `ENV` sets the same name.
    pub build_args: Vec<(String, String)>,
    /// Proxy variables given with `--build-arg` but not declared: visible
    /// to the command, kept out of the key and the history (as BuildKit).
    pub proxy_env: Vec<(String, String)>,
    pub mounts: Vec<RunMount>,
    pub network: RunNetwork,
    pub insecure: bool,
    /// The history text, as BuildKit writes it.
    pub created_by: String,
}

impl RunOp {
    /// Stages this step reads (`--mount ... from=`).
    pub fn stage_deps(&self) -> impl Iterator<Item = usize> + '_ {
        self.mounts.iter().filter_map(|m| match m {
            RunMount::Bind {
                from: Source::Stage(i),
                ..
            }
            | RunMount::Cache {
                from: Some(Source::Stage(i)),
                ..
            } => Some(*i),
            _ => None,
        })
    }
}

/// The raw `from=` values of an instruction's `--mount` flags, for
/// reachability before anything is expanded.
pub(crate) fn mount_froms(ins: &Instruction) -> Vec<String> {
    ins.flags
        .iter()
        .filter(|f| f.name() == "mount")
        .filter_map(|f| f.value())
        .flat_map(|v| {
            csv_fields(v)
                .into_iter()
                .filter_map(|f| f.strip_prefix("from=").map(str::to_owned))
        })
        .collect()
}

/// Splits `a=1,"b=2,3",c` into fields; double quotes group and are removed.
fn csv_fields(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().filter(|f| !f.is_empty()).collect()
}

fn parse_bool(key: &str, v: Option<&str>) -> std::result::Result<bool, String> {
    match v {
        None | Some("true") | Some("1") | Some("") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(v) => Err(format!("invalid value {v:?} for {key}")),
    }
}

/// `64m`, `1g`, `512` (bytes), as Docker's units parser reads RAM sizes.
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_suffix('b').unwrap_or(&s);
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1u64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        't' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let n: f64 = num.parse().ok()?;
    (n >= 0.0).then_some((n * mult as f64) as u64)
}

/// Parses one `--mount` value (already expanded).
fn parse_mount(
    value: &str,
    stage_ref: &dyn Fn(&str) -> Option<usize>,
    index: usize,
    ssh_count: &mut usize,
) -> std::result::Result<RunMount, String> {
    let mut kv: BTreeMap<String, Option<String>> = BTreeMap::new();
    for f in csv_fields(value) {
        let (k, v) = match f.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v.to_owned())),
            None => (f.to_ascii_lowercase(), None),
        };
        let k = match k.as_str() {
            "dst" | "destination" => "target".to_owned(),
            "src" => "source".to_owned(),
            "ro" => "readonly".to_owned(),
            "rw" => "readwrite".to_owned(),
            _ => k,
        };
        kv.insert(k, v);
    }
    let get = |k: &str| kv.get(k).and_then(|v| v.clone());
    let known: &[&str] = match get("type").as_deref().unwrap_or("bind") {
        "bind" => &["type", "target", "source", "from", "readonly", "readwrite"],
        "cache" => &[
            "type",
            "target",
            "source",
            "from",
            "readonly",
            "readwrite",
            "id",
            "sharing",
            "mode",
            "uid",
            "gid",
        ],
        "tmpfs" => &["type", "target", "size"],
        "secret" => &[
            "type", "target", "id", "env", "required", "mode", "uid", "gid",
        ],
        "ssh" => &["type", "target", "id", "required", "mode", "uid", "gid"],
        other => return Err(format!("unsupported mount type {other:?}")),
    };
    if let Some(k) = kv.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(format!("unexpected key {k:?} in --mount={value}"));
    }
    let octal = |k: &str, d: u32| -> std::result::Result<u32, String> {
        get(k).map_or(Ok(d), |v| {
            u32::from_str_radix(&v, 8).map_err(|_| format!("invalid {k} {v:?}"))
        })
    };
    let num = |k: &str| -> std::result::Result<u32, String> {
        get(k).map_or(Ok(0), |v| {
            v.parse().map_err(|_| format!("invalid {k} {v:?}"))
        })
    };
    let flag = |k: &str| -> std::result::Result<Option<bool>, String> {
        kv.get(k).map(|v| parse_bool(k, v.as_deref())).transpose()
    };
    let readonly = match (flag("readonly")?, flag("readwrite")?) {
        (Some(ro), _) => Some(ro),
        (None, Some(rw)) => Some(!rw),
        (None, None) => None,
    };
    let from = |f: Option<String>| -> std::result::Result<Option<Source>, String> {
        Ok(match f {
            None => None,
            Some(f) => Some(match stage_ref(&f) {
                Some(j) if j < index => Source::Stage(j),
                Some(_) => return Err(format!("from={f} refers to this stage or a later one")),
                None => Source::Image(f),
            }),
        })
    };
    let target = get("target");
    let need_target = || target.clone().ok_or("--mount needs target=".to_owned());
    Ok(match get("type").as_deref().unwrap_or("bind") {
        "bind" => RunMount::Bind {
            target: need_target()?,
            from: from(get("from"))?.unwrap_or(Source::Context),
            source: get("source").unwrap_or_default(),
            rw: readonly == Some(false),
        },
        "cache" => {
            let target = need_target()?;
            RunMount::Cache {
                id: get("id").unwrap_or_else(|| target.clone()),
                target,
                sharing: match get("sharing").as_deref() {
                    None | Some("shared") => Sharing::Shared,
                    Some("private") => Sharing::Private,
                    Some("locked") => Sharing::Locked,
                    Some(s) => return Err(format!("invalid sharing {s:?}")),
                },
                from: from(get("from"))?,
                source: get("source").unwrap_or_default(),
                mode: octal("mode", 0o755)?,
                uid: num("uid")?,
                gid: num("gid")?,
                readonly: readonly == Some(true),
            }
        }
        "tmpfs" => RunMount::Tmpfs {
            target: need_target()?,
            size: get("size")
                .map(|s| parse_size(&s).ok_or(format!("invalid size {s:?}")))
                .transpose()?,
        },
        "secret" => {
            let id = get("id")
                .or_else(|| {
                    target
                        .as_deref()
                        .and_then(|t| t.rsplit('/').next())
                        .map(str::to_owned)
                })
                .ok_or("a secret mount needs id= or target=")?;
            RunMount::Secret {
                id,
                target: target.clone(),
                env: get("env"),
                required: flag("required")?.unwrap_or(false),
                mode: octal("mode", 0o400)?,
                uid: num("uid")?,
                gid: num("gid")?,
            }
        }
        _ => {
            *ssh_count += 1;
            RunMount::Ssh {
                id: get("id").unwrap_or_else(|| "default".into()),
                target: target
                    .clone()
                    .or_else(|| Some(format!("/run/buildkit/ssh_agent.{}", *ssh_count - 1))),
                required: flag("required")?.unwrap_or(false),
            }
        }
    })
}

/// The argument of a heredoc marker that makes up the whole command
/// (`<<EOF`, `<<-"EOF"`, `3<<EOF`), as BuildKit's `^(\d*)<<(-?)([^<]*)$`
/// with a single word.
fn sole_heredoc(cmd: &str) -> Option<&str> {
    let rest = cmd.trim_start_matches(|c: char| c.is_ascii_digit());
    let rest = rest.strip_prefix("<<")?;
    let rest = rest.strip_prefix('-').unwrap_or(rest).trim();
    if rest.is_empty() || rest.contains('<') || rest.contains(char::is_whitespace) {
        return None;
    }
    Some(rest)
}

/// Build arguments BuildKit predefines: usable without `ARG`.
const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// Removes leading tabs from every line (`<<-`).
fn chomp(s: &str) -> String {
    s.split_inclusive('\n')
        .map(|l| l.trim_start_matches('\t'))
        .collect()
}

/// Plans a RUN instruction. `env` is the stage's `ENV` so far (with the
/// base image's), `args` its `ARG`s; `scope` expands flag values.
#[allow(clippy::too_many_arguments)]
pub(crate) fn plan_run(
    ins: &Instruction,
    lexer: &Lexer,
    shell: &[String],
    env: &EnvMap,
    args: &EnvMap,
    scope: &EnvMap,
    cli_args: &BTreeMap<String, String>,
    arg_order: &[String],
    stage_ref: &dyn Fn(&str) -> Option<usize>,
    index: usize,
) -> Result<RunOp> {
    let line = ins.start_line;
    let err = |message: String| Error::Dockerfile { line, message };
    let values = ins.values();
    let mut files = Vec::new();
    let argv: Vec<String> = if ins.json {
        if !ins.heredocs.is_empty() {
            return Err(err("heredocs need the shell form of RUN".into()));
        }
        values.iter().map(|s| s.to_string()).collect()
    } else {
        let cmd = values.join(" ");
        let body = if ins.heredocs.is_empty() {
            cmd
        } else if let (Some(name), [h]) = (sole_heredoc(&cmd), ins.heredocs.as_slice()) {
            let _ = name;
            let data = if h.chomp {
                chomp(&h.content)
            } else {
                h.content.clone()
            };
            if data.starts_with("#!") {
                // A script with an interpreter: provided as a file and run.
                let path = format!("/dev/pipes/{}", h.name);
                files.push(InlineFile {
                    path: path.clone(),
                    contents: data,
                    mode: 0o755,
                });
                path
            } else {
                data
            }
        } else {
            // Anything else: the shell reads the heredocs itself.
            let mut full = cmd;
            for h in &ins.heredocs {
                full.push('\n');
                full.push_str(&h.content);
                full.push_str(&h.name);
            }
            full
        };
        let mut a = shell.to_vec();
        a.push(body);
        a
    };
    if argv.is_empty() || argv.iter().all(|a| a.is_empty()) {
        return Err(err("RUN needs a command".into()));
    }
    let mut mounts = Vec::new();
    let mut network = RunNetwork::Default;
    let mut insecure = false;
    let mut ssh_count = 0;
    for f in &ins.flags {
        let raw = f.value().unwrap_or("");
        let value = lexer
            .expand_word(raw, scope)
            .map_err(|e| err(e.to_string()))?;
        match f.name() {
            "mount" => mounts.push(
                parse_mount(&value, stage_ref, index, &mut ssh_count)
                    .map_err(|m| err(format!("--mount: {m}")))?,
            ),
            "network" => {
                network = match value.as_str() {
                    "default" => RunNetwork::Default,
                    "none" => RunNetwork::None,
                    "host" => RunNetwork::Host,
                    other => return Err(err(format!("unsupported --network={other}"))),
                }
            }
            "security" => {
                insecure = match value.as_str() {
                    "insecure" => true,
                    "sandbox" => false,
                    other => return Err(err(format!("unsupported --security={other}"))),
                }
            }
            other => return Err(err(format!("unknown flag --{other} for RUN"))),
        }
    }
    let build_args: Vec<(String, String)> = args
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    // BuildKit's history: `RUN |N K=V... argv # buildkit`: the ARGs with
    // a value in declaration order (a redeclared one twice), ENV winning.
    let declared: Vec<String> = arg_order
        .iter()
        .filter_map(|k| {
            let v = berth_shell::Env::lookup(args, k)?;
            let v = berth_shell::Env::lookup(env, k).unwrap_or(v);
            Some(format!("{k}={v}"))
        })
        .collect();
    let mut parts: Vec<String> = Vec::new();
    if !declared.is_empty() {
        parts.push(format!("|{}", declared.len()));
        parts.extend(declared);
    }
    parts.extend(argv.iter().cloned());
    let proxy_env = cli_args
        .iter()
        .filter(|(k, _)| PROXY_ARGS.contains(&k.as_str()))
        .filter(|(k, _)| !build_args.iter().any(|(a, _)| a == *k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(RunOp {
        args: argv,
        files,
        build_args,
        proxy_env,
        mounts,
        network,
        insecure,
        created_by: format!("RUN {} # buildkit", parts.join(" ")),
    })
}

/// Where a RUN sits in the build, for progress and errors.
#[derive(Debug, Clone)]
pub(crate) struct StepAt<'a> {
    pub id: usize,
    pub line: usize,
    /// `[stage 3/5]`.
    pub label: &'a str,
}

/// The process's environment: the image's, then build arguments that `ENV`
/// does not set.
fn process_env(image_env: &[String], build_args: &[(String, String)]) -> Vec<String> {
    let mut env = image_env.to_vec();
    for (k, v) in build_args {
        if !image_env
            .iter()
            .any(|e| e.split_once('=').map_or(e.as_str(), |(ek, _)| ek) == k)
        {
            env.push(format!("{k}={v}"));
        }
    }
    env
}

fn abs_target(target: &str, workdir: &str) -> String {
    let joined = if target.starts_with('/') {
        target.to_owned()
    } else {
        format!("{}/{target}", workdir.trim_end_matches('/'))
    };
    format!("/{}", berth_layer::clean_components(&joined).join("/"))
}

fn clean_rel(p: &str) -> String {
    berth_layer::clean_components(p).join("/")
}

/// Runs (or finds in the cache) one RUN step.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_step(
    ex: &Executor<'_>,
    st: &mut StageState,
    op: &RunOp,
    at: &StepAt<'_>,
    ctx: &Context,
    deps: &BTreeMap<usize, StageState>,
    no_cache: bool,
) -> Result<bool> {
    let rc = st.config.config.clone().unwrap_or_default();
    let env = process_env(rc.env.as_deref().unwrap_or(&[]), &op.build_args);
    let user = rc.user.clone().unwrap_or_default();
    let workdir = rc.working_dir.clone().unwrap_or_else(|| "/".into());
    let err = |message: String| Error::Dockerfile {
        line: at.line,
        message,
    };
    if op.insecure && !ex.options().run.allow_insecure {
        return Err(err(
            "RUN --security=insecure is not allowed: grant it with --allow security.insecure"
                .into(),
        ));
    }
    // The definition and the inputs of the mounts that enter the key.
    let mut mount_defs = Vec::new();
    let mut inputs: Vec<String> = Vec::new();
    for m in &op.mounts {
        let input = |from: &Source, source: &str| -> Result<String> {
            Ok(match from {
                Source::Stage(j) => deps[j].key.to_string(),
                Source::Image(r) => ex
                    .image_source(r)
                    .map_err(|e| err(format!("--mount from={r}: {e}")))?
                    .digest
                    .to_string(),
                Source::Context => {
                    let sel = crate::source::Tree::Context(ctx)
                        .select(&[source_or_root(source)], &Default::default())
                        .map_err(|e| err(format!("--mount: {e}")))?;
                    ctx.digest_selected(&sel)?.to_string()
                }
            })
        };
        match m {
            RunMount::Bind {
                target,
                from,
                source,
                rw,
            } => {
                mount_defs.push(serde_json::json!({"type": "bind", "target": abs_target(target, &workdir), "from": format!("{from:?}"), "source": clean_rel(source), "rw": rw}));
                inputs.push(input(from, source)?);
            }
            RunMount::Cache {
                target,
                id,
                sharing,
                from,
                source,
                mode,
                uid,
                gid,
                readonly,
            } => {
                mount_defs.push(serde_json::json!({"type": "cache", "target": abs_target(target, &workdir), "id": id, "sharing": sharing, "from": format!("{from:?}"), "source": clean_rel(source), "mode": mode, "uid": uid, "gid": gid, "ro": readonly}));
                if let Some(f) = from {
                    inputs.push(input(f, source)?);
                }
            }
            // Never part of the key.
            RunMount::Tmpfs { .. } | RunMount::Secret { .. } | RunMount::Ssh { .. } => {}
        }
    }
    let definition = serde_json::json!({
        "op": "run", "args": op.args, "files": op.files, "env": env, "user": user,
        "workdir": workdir, "network": op.network, "insecure": op.insecure, "mounts": mount_defs,
    })
    .to_string();
    let parent = st.key.to_string();
    let mut parts: Vec<&[u8]> = vec![parent.as_bytes(), definition.as_bytes()];
    for i in &inputs {
        parts.push(i.as_bytes());
    }
    let key = key_of(&parts);
    ex.run_cached(st, &key, no_cache, |ex, st| {
        let lower = if ex.uses_snapshots() {
            ex.lowers(&st.layers, &st.config.rootfs.diff_ids)?
        } else {
            vec![ex.rootfs(st)?.to_owned()]
        };
        execute(ex, st, lower, op, at, ctx, deps, &env, &user, &workdir)
    })
}

fn source_or_root(s: &str) -> String {
    let c = clean_rel(s);
    if c.is_empty() { ".".into() } else { c }
}

/// A held cache-mount lock (released on drop).
struct CacheLease {
    _lock: Option<fs::File>,
}

/// The directory of cache mounts under a store root.
pub fn cache_mounts_dir(store_root: &Path) -> PathBuf {
    store_root.join("buildcache-mounts")
}

#[allow(clippy::too_many_arguments)]
fn execute(
    ex: &Executor<'_>,
    st: &StageState,
    mut lower: Vec<PathBuf>,
    op: &RunOp,
    at: &StepAt<'_>,
    ctx: &Context,
    deps: &BTreeMap<usize, StageState>,
    env: &[String],
    user: &str,
    workdir: &str,
) -> Result<Option<(Descriptor, Digest)>> {
    let err = |message: String| Error::Dockerfile {
        line: at.line,
        message,
    };
    reap_stale_run_dirs(ex.tmp_dir());
    let run_dir = tempfile::Builder::new()
        .prefix("run-")
        .tempdir_in(ex.tmp_dir())
        .map_err(|e| Error::io("create directory in", ex.tmp_dir(), e))?;
    // Held while the step runs: a run directory whose lock is free belongs
    // to a berth that was killed, and the next RUN removes it.
    // (Locked before it takes its name, so no reaper ever sees it free.)
    let lock_path = run_dir.path().join("lock");
    let tmp_lock = run_dir.path().join("lock.new");
    let in_use = fs::File::create(&tmp_lock).map_err(|e| Error::io("create", &tmp_lock, e))?;
    in_use.lock().map_err(|e| Error::io("lock", &tmp_lock, e))?;
    fs::rename(&tmp_lock, &lock_path).map_err(|e| Error::io("rename", &tmp_lock, e))?;
    let dir = |n: &str| -> Result<PathBuf> {
        let p = run_dir.path().join(n);
        fs::create_dir_all(&p).map_err(|e| Error::io("create directory", &p, e))?;
        Ok(p)
    };
    let (upper, work, scratch) = (dir("upper")?, dir("work")?, dir("scratch")?);
    let mut env = env.to_vec();
    for (k, v) in &op.proxy_env {
        if !env.iter().any(|e| e.split('=').next() == Some(k.as_str())) {
            env.push(format!("{k}={v}"));
        }
    }
    if lower.is_empty() {
        // A stage with no layers yet: an overlay needs a lower directory.
        lower.push(dir("empty")?);
    }
    let mut spec = Spec::new(
        op.args.clone(),
        Rootfs::Overlay {
            lower,
            upper: upper.clone(),
            work,
        },
        scratch,
    );
    spec.env = env;
    spec.user = user.to_owned();
    spec.cwd = workdir.to_owned();
    spec.hostname = "buildkitsandbox".into();
    spec.network = match op.network {
        RunNetwork::None => Network::None,
        RunNetwork::Default | RunNetwork::Host => Network::Host,
    };
    if op.insecure {
        spec.security = Security::insecure();
    }
    let host_resolv = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let file = |target: &str, contents: Vec<u8>, mode: u32| Mount {
        target: target.into(),
        kind: MountKind::File {
            contents,
            mode,
            uid: 0,
            gid: 0,
            readonly: false,
        },
    };
    spec.mounts = vec![
        file(
            "/etc/resolv.conf",
            berth_sandbox::spec::resolv_conf(&host_resolv, spec.network),
            0o644,
        ),
        file(
            "/etc/hosts",
            berth_sandbox::spec::hosts_file(&spec.hostname),
            0o644,
        ),
        file(
            "/etc/hostname",
            format!("{}\n", spec.hostname).into_bytes(),
            0o644,
        ),
    ];
    for f in &op.files {
        spec.mounts.push(Mount {
            target: f.path.clone(),
            kind: MountKind::File {
                contents: f.contents.clone().into_bytes(),
                mode: f.mode,
                uid: 0,
                gid: 0,
                readonly: true,
            },
        });
    }
    let mut leases = Vec::new();
    let mut snapshots = Vec::new();
    let mut extra_env: Vec<String> = Vec::new();
    let opts = &ex.options().run;
    for (n, m) in op.mounts.iter().enumerate() {
        match m {
            RunMount::Bind {
                target,
                from,
                source,
                rw,
            } => {
                let src = mount_source(
                    ex,
                    from,
                    source,
                    ctx,
                    deps,
                    run_dir.path(),
                    n,
                    &mut snapshots,
                )
                .map_err(|e| match e {
                    Error::Dockerfile { .. } => e,
                    other => err(format!("--mount {target}: {other}")),
                })?;
                let kind = if *rw {
                    // Writes are discarded: an overlay with a throwaway upper.
                    let (u, w) = (
                        dir(&format!("bind-{n}-upper"))?,
                        dir(&format!("bind-{n}-work"))?,
                    );
                    if src.is_dir() {
                        MountKind::Overlay {
                            lower: vec![src],
                            upper: u,
                            work: w,
                        }
                    } else {
                        let copy = run_dir.path().join(format!("bind-{n}-file"));
                        fs::copy(&src, &copy).map_err(|e| Error::io("copy", &src, e))?;
                        MountKind::Bind {
                            source: copy,
                            readonly: false,
                        }
                    }
                } else {
                    MountKind::Bind {
                        source: src,
                        readonly: true,
                    }
                };
                spec.mounts.push(Mount {
                    target: abs_target(target, workdir),
                    kind,
                });
            }
            RunMount::Cache {
                target,
                id,
                sharing,
                from,
                source,
                mode,
                uid,
                gid,
                readonly,
            } => {
                let seed = match from {
                    None => None,
                    Some(f) => Some(mount_source(
                        ex,
                        f,
                        source,
                        ctx,
                        deps,
                        run_dir.path(),
                        n,
                        &mut snapshots,
                    )?),
                };
                let (path, lease) = cache_dir(
                    ex.store().root(),
                    run_dir.path(),
                    id,
                    *sharing,
                    (*mode, *uid, *gid),
                    seed.as_deref(),
                )?;
                leases.push(lease);
                spec.mounts.push(Mount {
                    target: abs_target(target, workdir),
                    kind: MountKind::Bind {
                        source: path,
                        readonly: *readonly,
                    },
                });
            }
            RunMount::Tmpfs { target, size } => spec.mounts.push(Mount {
                target: abs_target(target, workdir),
                kind: MountKind::Tmpfs {
                    size: *size,
                    mode: 0o1777,
                },
            }),
            RunMount::Secret {
                id,
                target,
                env,
                required,
                mode,
                uid,
                gid,
            } => {
                let Some(value) = opts.secrets.get(id) else {
                    if *required {
                        return Err(err(format!(
                            "secret {id:?} is required but was not provided (berth build --secret id={id},src=FILE)"
                        )));
                    }
                    continue;
                };
                if let Some(var) = env {
                    extra_env.push(format!("{var}={}", String::from_utf8_lossy(value)));
                }
                if target.is_some() || env.is_none() {
                    let t = target
                        .clone()
                        .unwrap_or_else(|| format!("/run/secrets/{id}"));
                    spec.mounts.push(Mount {
                        target: abs_target(&t, workdir),
                        kind: MountKind::File {
                            contents: value.clone(),
                            mode: *mode,
                            uid: *uid,
                            gid: *gid,
                            readonly: true,
                        },
                    });
                }
            }
            RunMount::Ssh {
                id,
                target,
                required,
            } => {
                let Some(sock) = opts.ssh.get(id) else {
                    if *required {
                        return Err(err(format!(
                            "ssh agent {id:?} is required but was not forwarded (berth build --ssh {id})"
                        )));
                    }
                    continue;
                };
                let t = abs_target(
                    target.as_deref().unwrap_or("/run/buildkit/ssh_agent.0"),
                    workdir,
                );
                if !spec
                    .env
                    .iter()
                    .chain(&extra_env)
                    .any(|e| e.starts_with("SSH_AUTH_SOCK="))
                {
                    extra_env.push(format!("SSH_AUTH_SOCK={t}"));
                }
                spec.mounts.push(Mount {
                    target: t,
                    kind: MountKind::Bind {
                        source: sock.clone(),
                        readonly: false,
                    },
                });
            }
        }
    }
    // Mount sources and secrets' variables come last: they win.
    for e in extra_env {
        let k = e.split('=').next().unwrap_or("").to_owned();
        spec.env.retain(|x| x.split('=').next() != Some(k.as_str()));
        spec.env.push(e);
    }
    let (reader, writer) = std::io::pipe().map_err(|e| Error::io("pipe", "", e))?;
    let writer2 = writer.try_clone().map_err(|e| Error::io("pipe", "", e))?;
    let child = berth_sandbox::spawn(
        &spec,
        berth_sandbox::Options {
            helper: opts.helper.clone(),
            stdin: std::process::Stdio::null(),
            stdout: writer.into(),
            stderr: writer2.into(),
        },
    );
    drop(spec);
    let mut child = child.map_err(|source| Error::Sandbox {
        line: at.line,
        source,
    })?;
    let tail = stream_output(reader, |line| {
        ex.emit(Event::Output {
            id: at.id,
            line: line.to_owned(),
        })
    });
    let status = child.wait().map_err(|source| Error::Sandbox {
        line: at.line,
        source,
    })?;
    drop(leases);
    drop(snapshots);
    if !status.success() {
        return Err(Error::Run {
            line: at.line,
            step: at.label.to_owned(),
            command: op.args.join(" "),
            status: status.to_string(),
            output: tail.into_iter().collect(),
        });
    }
    let empty = fs::read_dir(&upper)
        .map_err(|e| Error::io("read directory", &upper, e))?
        .next()
        .is_none();
    if empty {
        return Ok(None);
    }
    let wopts = WriteOptions {
        clamp_mtime: ex.options().source_date_epoch.map(|e| e.max(0) as u64),
        prefix: None,
    };
    let w = LayerWriter::new(ex.store(), ex.options().compression)?;
    let (w, _) = berth_layer::write::write_layer(&upper, TreeSource::OverlayUpper, &wopts, w)?;
    let written = w.finish()?;
    // The upper directory is the layer, in overlay format: its snapshot.
    ex.commit_snapshot(st, &written.descriptor.digest, &written.diff_id, &upper)?;
    Ok(Some((written.descriptor, written.diff_id)))
}

/// Removes the run directories of killed builds (their lock is free). The
/// sandbox's mounts lived in its own mount namespace and its processes died
/// with the build, so only files are left.
fn reap_stale_run_dirs(tmp: &Path) {
    let Ok(rd) = fs::read_dir(tmp) else {
        return;
    };
    for e in rd.flatten() {
        if !e.file_name().to_string_lossy().starts_with("run-") {
            continue;
        }
        let lock = e.path().join("lock");
        // A directory without a lock file yet is being created: skip it.
        let Ok(f) = fs::OpenOptions::new().write(true).open(&lock) else {
            continue;
        };
        if f.try_lock().is_ok() {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// How many lines of output an error shows.
const TAIL_LINES: usize = 12;
/// Longer lines are cut into pieces of this size (bounded memory).
const MAX_LINE: usize = 64 * 1024;

/// Reads output to the end, calling `each` per line; returns the last lines.
fn stream_output(r: impl Read, mut each: impl FnMut(&str)) -> VecDeque<String> {
    let mut r = BufReader::new(r);
    let mut tail = VecDeque::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = match (&mut r).take(MAX_LINE as u64).read_until(b'\n', &mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if n == 0 {
            break;
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.strip_suffix('\n').unwrap_or(&line);
        each(line);
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line.to_owned());
    }
    tail
}

/// The host path a bind (or cache seed) mount reads.
#[allow(clippy::too_many_arguments)]
fn mount_source(
    ex: &Executor<'_>,
    from: &Source,
    source: &str,
    ctx: &Context,
    deps: &BTreeMap<usize, StageState>,
    run_dir: &Path,
    n: usize,
    keep: &mut Vec<std::sync::Arc<crate::exec::RootFs>>,
) -> Result<PathBuf> {
    let rel = clean_rel(source);
    match from {
        Source::Context => {
            // Only what the context sends (after .dockerignore): a copy of
            // the selected entries, hard-linked where possible.
            let tree = crate::source::Tree::Context(ctx);
            let sel = tree
                .select(&[source_or_root(source)], &Default::default())
                .map_err(|e| Error::Context(e.to_string()))?;
            let out = run_dir.join(format!("context-{n}"));
            for s in &sel {
                let top = tree.host_path(&s.path);
                match s.kind {
                    berth_dockerignore::EntryKind::Dir => {
                        fs::create_dir_all(&out)
                            .map_err(|e| Error::io("create directory", &out, e))?;
                        copy_meta(&top, &out);
                        for (r, k) in &s.below {
                            link_or_copy(&top.join(r), &out.join(r), *k)?;
                        }
                    }
                    k => link_or_copy(&top, &out, k)?,
                }
            }
            Ok(out)
        }
        Source::Stage(j) => {
            let s = ex.snapshot(
                &deps[j].key,
                &deps[j].layers,
                &deps[j].config.rootfs.diff_ids,
            )?;
            let p = in_root(s.path(), &rel);
            keep.push(s);
            Ok(p)
        }
        Source::Image(r) => {
            let src = ex.image_source(r)?;
            let key = key_of(&[b"image", src.digest.to_string().as_bytes()]);
            let s = ex.snapshot(&key, &src.layers, &src.diff_ids)?;
            let p = in_root(s.path(), &rel);
            keep.push(s);
            Ok(p)
        }
    }
}

/// `rel` inside `root`, following symlinks as if `root` were `/`.
fn in_root(root: &Path, rel: &str) -> PathBuf {
    let mut out: Vec<String> = Vec::new();
    let mut queue: VecDeque<String> = rel
        .split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    let mut hops = 0;
    while let Some(c) = queue.pop_front() {
        match c.as_str() {
            "." => continue,
            ".." => {
                out.pop();
                continue;
            }
            _ => {}
        }
        let p = root.join(out.join("/")).join(&c);
        match fs::read_link(&p) {
            Ok(t) if hops < 40 => {
                hops += 1;
                let t = t.to_string_lossy().into_owned();
                if t.starts_with('/') {
                    out.clear();
                }
                let mut q: VecDeque<String> = t
                    .split('/')
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect();
                q.extend(queue.drain(..));
                queue = q;
            }
            _ => out.push(c),
        }
    }
    root.join(out.join("/"))
}

fn copy_meta(src: &Path, dst: &Path) {
    if let Ok(md) = fs::symlink_metadata(src) {
        let _ = fs::set_permissions(dst, fs::Permissions::from_mode(md.mode() & 0o7777));
        let _ = std::os::unix::fs::lchown(dst, Some(md.uid()), Some(md.gid()));
    }
}

fn link_or_copy(src: &Path, dst: &Path, kind: berth_dockerignore::EntryKind) -> Result<()> {
    use berth_dockerignore::EntryKind;
    if let Some(p) = dst.parent() {
        fs::create_dir_all(p).map_err(|e| Error::io("create directory", p, e))?;
    }
    match kind {
        EntryKind::Dir => {
            fs::create_dir_all(dst).map_err(|e| Error::io("create directory", dst, e))?;
            copy_meta(src, dst);
        }
        EntryKind::File => {
            if fs::hard_link(src, dst).is_err() {
                fs::copy(src, dst).map_err(|e| Error::io("copy", src, e))?;
            }
        }
        EntryKind::Symlink => {
            let t = fs::read_link(src).map_err(|e| Error::io("readlink", src, e))?;
            std::os::unix::fs::symlink(&t, dst).map_err(|e| Error::io("symlink", dst, e))?;
        }
        EntryKind::Other => {}
    }
    Ok(())
}

/// Copies a tree keeping modes, owners and symlinks (a cache seed).
fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let md = fs::symlink_metadata(src).map_err(|e| Error::io("stat", src, e))?;
    let ft = md.file_type();
    if ft.is_dir() {
        fs::create_dir_all(dst).map_err(|e| Error::io("create directory", dst, e))?;
        for e in fs::read_dir(src).map_err(|e| Error::io("read directory", src, e))? {
            let e = e.map_err(|err| Error::io("read directory", src, err))?;
            copy_tree(&e.path(), &dst.join(e.file_name()))?;
        }
    } else if ft.is_symlink() {
        let t = fs::read_link(src).map_err(|e| Error::io("readlink", src, e))?;
        std::os::unix::fs::symlink(&t, dst).map_err(|e| Error::io("symlink", dst, e))?;
        let _ = std::os::unix::fs::lchown(dst, Some(md.uid()), Some(md.gid()));
        return Ok(());
    } else if ft.is_file() {
        fs::copy(src, dst).map_err(|e| Error::io("copy", src, e))?;
    } else {
        return Ok(());
    }
    copy_meta(src, dst);
    Ok(())
}

/// The directory of cache mount `id`, created (and seeded) on first use,
/// with its lock held as the sharing mode says.
fn cache_dir(
    store_root: &Path,
    run_dir: &Path,
    id: &str,
    sharing: Sharing,
    (mode, uid, gid): (u32, u32, u32),
    seed: Option<&Path>,
) -> Result<(PathBuf, CacheLease)> {
    let base = cache_mounts_dir(store_root);
    fs::create_dir_all(&base).map_err(|e| Error::io("create directory", &base, e))?;
    let name = berth_oci::Digest::sha256_of(id.as_bytes()).hex()[..32].to_owned();
    let lock_path = base.join(format!("{name}.lock"));
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io("open", &lock_path, e))?;
    let fresh = |dir: &Path| -> Result<()> {
        match seed {
            Some(s) if s.exists() => copy_tree(s, dir)?,
            _ => fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?,
        }
        fs::set_permissions(dir, fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("chmod", dir, e))?;
        std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(|e| Error::io("chown", dir, e))
    };
    match sharing {
        Sharing::Shared => lock.lock_shared(),
        Sharing::Locked => lock.lock(),
        Sharing::Private => match lock.try_lock() {
            Ok(()) => Ok(()),
            Err(fs::TryLockError::WouldBlock) => {
                // In use: this step gets a cache of its own, thrown away after.
                let dir = run_dir.join("private-cache");
                fresh(&dir)?;
                return Ok((dir, CacheLease { _lock: None }));
            }
            Err(fs::TryLockError::Error(e)) => Err(e),
        },
    }
    .map_err(|e| Error::io("lock", &lock_path, e))?;
    let dir = base.join(&name);
    if !dir.exists() {
        // Built aside and renamed, so a half-made cache is never used.
        let tmp = base.join(format!("{name}.new-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fresh(&tmp)?;
        if let Err(e) = fs::rename(&tmp, &dir) {
            let _ = fs::remove_dir_all(&tmp);
            if !dir.exists() {
                return Err(Error::io("rename", &tmp, e));
            }
        }
    }
    Ok((dir, CacheLease { _lock: Some(lock) }))
}

/// What [`prune`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    pub cache_records: usize,
    pub cache_mounts: usize,
    /// Cache mounts in use by a running build, left alone.
    pub busy_mounts: usize,
}

/// Empties the build cache of a store: the step records (their layers
/// become collectable by the image GC) and the cache mounts not in use.
pub fn prune(store_root: &Path) -> Result<Pruned> {
    let mut out = Pruned::default();
    let records = store_root.join("buildcache");
    if let Ok(rd) = fs::read_dir(&records) {
        for e in rd.flatten() {
            if fs::remove_file(e.path()).is_ok() {
                out.cache_records += 1;
            }
        }
    }
    let base = cache_mounts_dir(store_root);
    let Ok(rd) = fs::read_dir(&base) else {
        return Ok(out);
    };
    let mut names: Vec<String> = rd
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let Some(stem) = name.strip_suffix(".lock") else {
            if name.contains(".new-") {
                let _ = fs::remove_dir_all(base.join(&name));
            }
            continue;
        };
        let lock_path = base.join(&name);
        let Ok(lock) = fs::OpenOptions::new().write(true).open(&lock_path) else {
            continue;
        };
        match lock.try_lock() {
            Ok(()) => {
                let dir = base.join(stem);
                if dir.exists() {
                    fs::remove_dir_all(&dir).map_err(|e| Error::io("remove", &dir, e))?;
                    out.cache_mounts += 1;
                }
                let _ = fs::remove_file(&lock_path);
            }
            Err(_) => out.busy_mounts += 1,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_one(src: &str) -> Result<RunOp> {
        let (df, _) = berth_dockerfile::parse(src);
        let ins = df
            .instructions
            .iter()
            .find(|i| i.kind == Some(berth_dockerfile::Keyword::Run))
            .unwrap();
        let mut args = EnvMap::new();
        args.set("V", "1");
        let mut env = EnvMap::new();
        env.set("E", "env");
        let scope = EnvMap::from_pairs([("V", "1"), ("E", "env")]);
        plan_run(
            ins,
            &Lexer::new('\\'),
            &["/bin/sh".into(), "-c".into()],
            &env,
            &args,
            &scope,
            &BTreeMap::from([
                ("HTTP_PROXY".to_owned(), "http://proxy:3128".to_owned()),
                ("V".to_owned(), "cli".to_owned()),
            ]),
            &["V".to_owned()],
            &|s| (s == "build").then_some(0),
            1,
        )
    }

    #[test]
    fn forms_and_heredocs() {
        let r = plan_one("FROM x\nRUN echo $V\n").unwrap();
        assert_eq!(r.args, ["/bin/sh", "-c", "echo $V"]);
        assert_eq!(r.created_by, "RUN |1 V=1 /bin/sh -c echo $V # buildkit");
        assert_eq!(
            r.proxy_env,
            [("HTTP_PROXY".to_owned(), "http://proxy:3128".to_owned())]
        );
        let r = plan_one("FROM x\nRUN [\"echo\", \"a b\"]\n").unwrap();
        assert_eq!(r.args, ["echo", "a b"]);
        let r = plan_one("FROM x\nRUN <<EOF\necho one\nEOF\n").unwrap();
        assert_eq!(r.args, ["/bin/sh", "-c", "echo one\n"]);
        let r = plan_one("FROM x\nRUN <<-EOF\n\techo one\n\tEOF\n").unwrap();
        assert_eq!(r.args[2], "echo one\n");
        let r = plan_one("FROM x\nRUN <<EOF\n#!/bin/sh -e\necho hi\nEOF\n").unwrap();
        assert_eq!(r.args, ["/bin/sh", "-c", "/dev/pipes/EOF"]);
        assert_eq!(r.files[0].contents, "#!/bin/sh -e\necho hi\n");
        let r = plan_one("FROM x\nRUN <<EOF sh -x\necho two\nEOF\n").unwrap();
        assert_eq!(r.args[2], "<<EOF sh -x\necho two\nEOF");
    }

    #[test]
    fn mounts_and_flags() {
        let r = plan_one(
            "FROM x\nRUN --mount=type=cache,target=/c,sharing=locked,mode=0700 --mount=from=build,source=/out,target=o --mount=type=secret,id=tok --mount=type=tmpfs,target=/t,size=64m --mount=type=ssh --network=none true\n",
        )
        .unwrap();
        assert_eq!(r.network, RunNetwork::None);
        assert!(
            matches!(&r.mounts[0], RunMount::Cache { id, sharing: Sharing::Locked, mode: 0o700, .. } if id == "/c")
        );
        assert!(matches!(
            &r.mounts[1],
            RunMount::Bind {
                from: Source::Stage(0),
                rw: false,
                ..
            }
        ));
        assert!(
            matches!(&r.mounts[2], RunMount::Secret { id, target: None, mode: 0o400, .. } if id == "tok")
        );
        assert_eq!(
            r.mounts[3],
            RunMount::Tmpfs {
                target: "/t".into(),
                size: Some(64 << 20)
            }
        );
        assert!(
            matches!(&r.mounts[4], RunMount::Ssh { id, target: Some(t), .. } if id == "default" && t == "/run/buildkit/ssh_agent.0")
        );
        assert_eq!(r.stage_deps().collect::<Vec<_>>(), [0]);
        assert!(plan_one("FROM x\nRUN --mount=type=nope,target=/x true\n").is_err());
        assert!(plan_one("FROM x\nRUN --mount=type=bind,target=/x,bogus=1 true\n").is_err());
        assert!(plan_one("FROM x\nRUN --network=bridge true\n").is_err());
        assert!(
            plan_one("FROM x\nRUN --security=insecure true\n")
                .unwrap()
                .insecure
        );
        assert_eq!(csv_fields("a=1,\"b=2,3\",c"), ["a=1", "b=2,3", "c"]);
    }

    #[test]
    fn output_tail_is_bounded() {
        let text: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let mut n = 0;
        let tail = stream_output(text.as_bytes(), |_| n += 1);
        assert_eq!(n, 100);
        assert_eq!(tail.len(), TAIL_LINES);
        assert_eq!(tail.back().unwrap(), "line 99");
        let long = "x".repeat(MAX_LINE * 2 + 5);
        let mut lens = Vec::new();
        stream_output(long.as_bytes(), |l| lens.push(l.len()));
        assert_eq!(lens, [MAX_LINE, MAX_LINE, 5]);
    }
}
