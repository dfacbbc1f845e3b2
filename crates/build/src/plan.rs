//! The frontend: a parsed Dockerfile plus build arguments become a [`Plan`],
//! a pure value listing stages and their steps with every word expanded.
//!
//! Only stages reachable from the target are planned, as BuildKit lowers
//! only what the target needs: a broken instruction in an unused stage does
//! not fail the build.

use std::collections::{BTreeMap, BTreeSet};

use berth_dockerfile::{Dockerfile, Instruction, Keyword};
use berth_oci::Platform;
use berth_shell::{EnvMap, Lexer};

use crate::{Error, Result};

/// What the caller decides: build arguments, target, platform.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub platform: Option<Platform>,
}

/// Where a stage starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    Scratch,
    /// An image reference, as written after expansion.
    Image(String),
    /// An earlier stage, by index.
    Stage(usize),
}

/// Where COPY reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Context,
    Stage(usize),
    Image(String),
}

/// A COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOp {
    pub from: Source,
    /// Source paths or patterns (and, for ADD, `http(s)://` URLs).
    pub sources: Vec<String>,
    /// Inline files from heredocs: (name, content).
    pub inline: Vec<(String, String)>,
    pub dest: String,
    /// `--chmod`, validated (octal or symbolic; see [`crate::chmod`]).
    pub chmod: Option<String>,
    pub chown: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub excludes: Vec<String>,
    /// ADD: URLs are fetched and local archives unpacked.
    pub add: bool,
    /// `ADD --unpack`: overrides the default (local archives unpacked, URLs not).
    pub unpack: Option<bool>,
    /// `ADD --checksum=sha256:...` for a URL source.
    pub checksum: Option<String>,
}

/// One step of a stage.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Env(Vec<(String, String)>),
    Label(Vec<(String, String)>),
    Workdir(String),
    User(String),
    Cmd(Vec<String>),
    Entrypoint(Vec<String>),
    Expose(Vec<String>),
    Volume(Vec<String>),
    StopSignal(String),
    Shell(Vec<String>),
    Healthcheck(serde_json::Value),
    OnBuild(String),
    Arg,
    Copy(CopyOp),
    Run(crate::run::RunOp),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub op: Op,
    /// The history text (`created_by`), like BuildKit's.
    pub created_by: String,
    /// The instruction as written, for progress output.
    pub display: String,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub index: usize,
    pub name: Option<String>,
    pub base: Base,
    pub steps: Vec<Step>,
    pub line: usize,
}

/// The build graph: stages with their dependencies, a pure value.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Planned stages (unreachable ones are absent), by index.
    pub stages: BTreeMap<usize, Stage>,
    pub target: usize,
    /// Stages in an order where dependencies come first.
    pub order: Vec<usize>,
}

impl Stage {
    /// Stages this stage needs (its base, COPY --from and RUN --mount from= sources).
    pub fn deps(&self) -> BTreeSet<usize> {
        let mut d = BTreeSet::new();
        if let Base::Stage(i) = self.base {
            d.insert(i);
        }
        for s in &self.steps {
            if let Op::Run(r) = &s.op {
                d.extend(r.stage_deps());
            }
            if let Op::Copy(c) = &s.op
                && let Source::Stage(i) = c.from
            {
                d.insert(i);
            }
        }
        d
    }
}

fn err(line: usize, message: impl Into<String>) -> Error {
    Error::Dockerfile {
        line,
        message: message.into(),
    }
}

/// Platform arguments BuildKit defines automatically.
fn platform_args(p: &Platform) -> Vec<(String, String)> {
    let variant = p.variant.clone().unwrap_or_default();
    let full = p.to_string();
    vec![
        ("TARGETPLATFORM".into(), full.clone()),
        ("TARGETOS".into(), p.os.clone()),
        ("TARGETARCH".into(), p.architecture.clone()),
        ("TARGETVARIANT".into(), variant.clone()),
        ("BUILDPLATFORM".into(), full),
        ("BUILDOS".into(), p.os.clone()),
        ("BUILDARCH".into(), p.architecture.clone()),
        ("BUILDVARIANT".into(), variant),
    ]
}

struct RawStage<'a> {
    from: &'a Instruction,
    name: Option<String>,
    body: Vec<&'a Instruction>,
}

fn flag<'a>(ins: &'a Instruction, name: &str) -> Option<&'a str> {
    ins.flags
        .iter()
        .find(|f| f.name() == name)
        .map(|f| f.value().unwrap_or(""))
}

/// A boolean flag: absent is `None`, `--flag` and `--flag=true` are true.
fn bool_flag(ins: &Instruction, name: &str) -> Result<Option<bool>> {
    match ins.flags.iter().find(|f| f.name() == name) {
        None => Ok(None),
        Some(f) => match f.value() {
            None | Some("true") | Some("") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(v) => Err(err(
                ins.start_line,
                format!("--{name}={v}: expected true or false"),
            )),
        },
    }
}

/// Plans the build of `options.target` (default: the last stage).
///
/// `base_env` returns the `Env` of a base image (needed to expand `$PATH`
/// and friends); it is the only outside knowledge the frontend needs.
pub fn plan(
    df: &Dockerfile,
    options: &PlanOptions,
    base_env: &dyn Fn(&str) -> Result<Vec<String>>,
) -> Result<Plan> {
    let platform = options.platform.clone().unwrap_or_else(Platform::host);
    let lexer = Lexer::new(df.escape);
    // Global ARGs (before the first FROM) and stage boundaries.
    let mut global = EnvMap::new();
    for (k, v) in platform_args(&platform) {
        global.set(k, v);
    }
    let mut raw: Vec<RawStage<'_>> = Vec::new();
    for ins in &df.instructions {
        match ins.kind {
            Some(Keyword::From) => raw.push(RawStage {
                from: ins,
                name: None,
                body: Vec::new(),
            }),
            Some(Keyword::Arg) if raw.is_empty() => {
                for word in ins.values() {
                    let (k, v) = match word.split_once('=') {
                        Some((k, v)) => (
                            k.to_owned(),
                            Some(
                                lexer
                                    .expand_word(v, &global)
                                    .map_err(|e| err(ins.start_line, e.to_string()))?,
                            ),
                        ),
                        None => (word.to_owned(), None),
                    };
                    let value = options.build_args.get(&k).cloned().or(v);
                    if let Some(v) = value {
                        global.set(k, v);
                    }
                }
            }
            None if raw.is_empty() && ins.keyword.is_empty() => {}
            _ if raw.is_empty() => {
                return Err(err(
                    ins.start_line,
                    format!(
                        "{} before the first FROM: only ARG may come before FROM",
                        ins.keyword.to_uppercase()
                    ),
                ));
            }
            _ => raw.last_mut().expect("a stage").body.push(ins),
        }
    }
    if raw.is_empty() {
        return Err(err(1, "the Dockerfile has no FROM instruction"));
    }
    // Names and bases.
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    let mut bases = Vec::new();
    for (i, st) in raw.iter_mut().enumerate() {
        let v = st.from.values();
        let (image, name) = match v.as_slice() {
            [image] => (*image, None),
            [image, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => {
                (*image, Some(name.to_lowercase()))
            }
            _ => return Err(err(st.from.start_line, "FROM needs IMAGE [AS NAME]")),
        };
        let image = lexer
            .expand_word(image, &global)
            .map_err(|e| err(st.from.start_line, e.to_string()))?;
        if image.is_empty() {
            return Err(err(
                st.from.start_line,
                "FROM has an empty image name (an unset ARG?)",
            ));
        }
        let base = if image == "scratch" {
            Base::Scratch
        } else if let Some(&j) = names.get(&image.to_lowercase()) {
            Base::Stage(j)
        } else {
            Base::Image(image)
        };
        if let Some(n) = &name
            && names.insert(n.clone(), i).is_some()
        {
            return Err(err(
                st.from.start_line,
                format!("duplicate stage name {n:?}"),
            ));
        }
        st.name = name;
        bases.push(base);
    }
    let target = match &options.target {
        None => raw.len() - 1,
        Some(t) => *names
            .get(&t.to_lowercase())
            .ok_or_else(|| Error::UnknownTarget(t.clone()))?,
    };
    // Find reachable stages from the target using only FROM and --from, so
    // that unused stages are never expanded.
    let stage_ref = |s: &str| -> Option<usize> {
        names
            .get(&s.to_lowercase())
            .copied()
            .or_else(|| s.parse::<usize>().ok().filter(|i| *i < raw.len()))
    };
    let mut reachable = BTreeSet::new();
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if !reachable.insert(i) {
            continue;
        }
        if let Base::Stage(j) = bases[i] {
            todo.push(j);
        }
        for ins in &raw[i].body {
            if let Some(f) = flag(ins, "from")
                && let Some(j) = stage_ref(f)
                && j < i
            {
                todo.push(j);
            }
            for f in crate::run::mount_froms(ins) {
                if let Some(j) = stage_ref(&f)
                    && j < i
                {
                    todo.push(j);
                }
            }
        }
    }
    let mut stages = BTreeMap::new();
    for &i in &reachable {
        let st = &raw[i];
        let base = bases[i].clone();
        let mut env = EnvMap::new();
        if let Base::Image(r) = &base {
            for kv in base_env(r)? {
                if let Some((k, v)) = kv.split_once('=') {
                    env.set(k, v);
                }
            }
        }
        if let Base::Stage(j) = &base {
            // Inherit the ENV of the parent stage's steps.
            let parent: &Stage = stages.get(j).expect("dependencies are planned first");
            for s in &parent.steps {
                if let Op::Env(kvs) = &s.op {
                    for (k, v) in kvs {
                        env.set(k.clone(), v.clone());
                    }
                }
            }
            if let Some(Base::Image(r)) = Some(&parent.base) {
                for kv in base_env(r)? {
                    if let Some((k, v)) = kv.split_once('=')
                        && env.iter().all(|(ek, _)| ek != k)
                    {
                        env.set(k, v);
                    }
                }
            }
        }
        // As BuildKit: a stage whose base sets no PATH gets the default one.
        if env.iter().all(|(k, _)| k != "PATH") {
            env.set("PATH", crate::DEFAULT_PATH);
        }
        let mut args = EnvMap::new();
        let steps = plan_stage(
            &lexer, st, &mut env, &mut args, &global, options, &stage_ref, i,
        )?;
        stages.insert(
            i,
            Stage {
                index: i,
                name: st.name.clone(),
                base,
                steps,
                line: st.from.start_line,
            },
        );
    }
    let order: Vec<usize> = reachable.into_iter().collect();
    Ok(Plan {
        stages,
        target,
        order,
    })
}

/// The expansion environment: ARGs then ENV (ENV wins), as BuildKit.
fn scope(env: &EnvMap, args: &EnvMap) -> EnvMap {
    let mut m = args.clone();
    for (k, v) in env.iter() {
        m.set(k, v);
    }
    m
}

#[allow(clippy::too_many_arguments)]
fn plan_stage(
    lexer: &Lexer,
    st: &RawStage<'_>,
    env: &mut EnvMap,
    args: &mut EnvMap,
    global: &EnvMap,
    options: &PlanOptions,
    stage_ref: &dyn Fn(&str) -> Option<usize>,
    index: usize,
) -> Result<Vec<Step>> {
    let mut shell = vec!["/bin/sh".to_owned(), "-c".to_owned()];
    let mut steps = Vec::new();
    // ARG names in declaration order, repeats included (RUN's history).
    let mut arg_order: Vec<String> = Vec::new();
    for ins in &st.body {
        let line = ins.start_line;
        let values = ins.values();
        let expand = |s: &str, env: &EnvMap, args: &EnvMap| {
            lexer
                .expand_word(s, &scope(env, args))
                .map_err(|e| err(line, e.to_string()))
        };
        let display = format!(
            "{} {}",
            ins.keyword.to_uppercase(),
            ins.original
                .split_once(char::is_whitespace)
                .map_or("", |(_, r)| r.trim())
        );
        let mut copy_history: Option<String> = None;
        let kind = ins.kind.ok_or_else(|| {
            err(
                line,
                format!("unknown instruction: {}", ins.keyword.to_uppercase()),
            )
        })?;
        let op = match kind {
            Keyword::Env | Keyword::Label => {
                if values.len() % 2 != 0 {
                    return Err(err(line, format!("{kind} needs KEY=VALUE pairs")));
                }
                let mut kvs = Vec::new();
                for pair in values.chunks(2) {
                    let k = expand(pair[0], env, args)?;
                    let v = expand(pair[1], env, args)?;
                    if kind == Keyword::Env {
                        env.set(k.clone(), v.clone());
                    }
                    kvs.push((k, v));
                }
                if kind == Keyword::Env {
                    Op::Env(kvs)
                } else {
                    Op::Label(kvs)
                }
            }
            Keyword::Arg => {
                for word in &values {
                    let (k, default) = match word.split_once('=') {
                        Some((k, v)) => (k.to_owned(), Some(expand(v, env, args)?)),
                        None => (word.to_string(), None),
                    };
                    arg_order.push(k.clone());
                    let value = options
                        .build_args
                        .get(&k)
                        .cloned()
                        .or(default)
                        .or_else(|| berth_shell::Env::lookup(global, &k).map(str::to_owned));
                    match value {
                        Some(v) => args.set(k, v),
                        None => args.remove(&k),
                    }
                }
                Op::Arg
            }
            Keyword::Workdir => {
                let w = expand(values.first().copied().unwrap_or(""), env, args)?;
                Op::Workdir(w)
            }
            Keyword::User => Op::User(expand(values.first().copied().unwrap_or(""), env, args)?),
            Keyword::Stopsignal => {
                Op::StopSignal(expand(values.first().copied().unwrap_or(""), env, args)?)
            }
            Keyword::Expose => Op::Expose(
                values
                    .iter()
                    .map(|v| expand(v, env, args))
                    .collect::<Result<_>>()?,
            ),
            Keyword::Volume => Op::Volume(
                values
                    .iter()
                    .map(|v| expand(v, env, args))
                    .collect::<Result<_>>()?,
            ),
            Keyword::Cmd | Keyword::Entrypoint => {
                let argv: Vec<String> = if ins.json {
                    values.iter().map(|s| s.to_string()).collect()
                } else {
                    let mut a = shell.clone();
                    a.push(values.join(" "));
                    a
                };
                if kind == Keyword::Cmd {
                    Op::Cmd(argv)
                } else {
                    Op::Entrypoint(argv)
                }
            }
            Keyword::Shell => {
                if !ins.json {
                    return Err(err(line, "SHELL requires the arguments to be in JSON form"));
                }
                shell = values.iter().map(|s| s.to_string()).collect();
                Op::Shell(shell.clone())
            }
            Keyword::Healthcheck => {
                let v = values.clone();
                if v.first().is_some_and(|s| s.eq_ignore_ascii_case("none")) {
                    Op::Healthcheck(serde_json::json!({"Test": ["NONE"]}))
                } else {
                    let cmd: Vec<String> = if ins.json {
                        std::iter::once("CMD".to_owned())
                            .chain(v.iter().skip(1).map(|s| s.to_string()))
                            .collect()
                    } else {
                        vec![
                            "CMD-SHELL".to_owned(),
                            v.iter().skip(1).copied().collect::<Vec<_>>().join(" "),
                        ]
                    };
                    let mut hc = serde_json::json!({"Test": cmd});
                    for (name, key) in [
                        ("interval", "Interval"),
                        ("timeout", "Timeout"),
                        ("start-period", "StartPeriod"),
                        ("start-interval", "StartInterval"),
                    ] {
                        if let Some(d) = flag(ins, name) {
                            hc[key] = parse_duration_ns(d)
                                .ok_or_else(|| {
                                    err(line, format!("invalid --{name} duration {d:?}"))
                                })?
                                .into();
                        }
                    }
                    if let Some(r) = flag(ins, "retries") {
                        hc["Retries"] = r
                            .parse::<u64>()
                            .map_err(|_| err(line, format!("invalid --retries {r:?}")))?
                            .into();
                    }
                    Op::Healthcheck(hc)
                }
            }
            Keyword::Onbuild => Op::OnBuild(
                ins.original
                    .split_once(char::is_whitespace)
                    .map_or("", |(_, r)| r.trim())
                    .to_owned(),
            ),
            Keyword::Maintainer => Op::Label(vec![("maintainer".into(), values.join(" "))]),
            Keyword::Copy | Keyword::Add => {
                let add = kind == Keyword::Add;
                let words: Vec<String> = if ins.json {
                    values.iter().map(|s| s.to_string()).collect()
                } else {
                    values
                        .iter()
                        .map(|v| expand(v, env, args))
                        .collect::<Result<_>>()?
                };
                if words.len() < 2 {
                    return Err(err(
                        line,
                        format!("{kind} requires at least two arguments: SRC... DEST"),
                    ));
                }
                let (dest, srcs) = words.split_last().expect("two or more");
                let mut sources = Vec::new();
                let mut inline = Vec::new();
                for s in srcs {
                    if let Some(name) = s.strip_prefix("<<") {
                        let name = name
                            .trim_start_matches('-')
                            .trim_matches(|c| c == '"' || c == '\'');
                        let h = ins
                            .heredocs
                            .iter()
                            .find(|h| h.name == name)
                            .ok_or_else(|| err(line, format!("heredoc {name} has no body")))?;
                        let content = if h.expand {
                            expand_heredoc(lexer, &h.content, &scope(env, args))
                                .map_err(|e| err(line, e))?
                        } else {
                            h.content.clone()
                        };
                        inline.push((name.to_owned(), content));
                    } else {
                        let url = s.starts_with("http://") || s.starts_with("https://");
                        if url && !add {
                            return Err(err(line, "source can't be a URL for COPY"));
                        }
                        if add && (s.starts_with("git@") || (url && is_git_url(s))) {
                            return Err(Error::Unsupported {
                                line,
                                what: "ADD from a git repository".into(),
                            });
                        }
                        sources.push(s.clone());
                    }
                }
                let from = match flag(ins, "from") {
                    None => Source::Context,
                    Some(f) => {
                        let f = expand(f, env, args)?;
                        match stage_ref(&f) {
                            Some(j) if j < index => Source::Stage(j),
                            Some(_) => {
                                return Err(err(
                                    line,
                                    format!("COPY --from={f} refers to this stage or a later one"),
                                ));
                            }
                            None => Source::Image(f),
                        }
                    }
                };
                let chmod = flag(ins, "chmod")
                    .map(|m| expand(m, env, args))
                    .transpose()?;
                if let Some(m) = &chmod {
                    crate::chmod::Chmod::parse(m).map_err(|e| err(line, e.to_string()))?;
                }
                let chown = flag(ins, "chown")
                    .map(|c| expand(c, env, args))
                    .transpose()?;
                let checksum = flag(ins, "checksum")
                    .map(|c| expand(c, env, args))
                    .transpose()?;
                if let Some(c) = &checksum {
                    if !add {
                        return Err(err(line, "checksum can't be specified for COPY"));
                    }
                    if sources.len() != 1 || !inline.is_empty() {
                        return Err(err(
                            line,
                            "checksum can't be specified for multiple sources",
                        ));
                    }
                    if !sources[0].starts_with("http://") && !sources[0].starts_with("https://") {
                        return Err(err(line, "checksum requires HTTP(S) sources"));
                    }
                    let hex = c.strip_prefix("sha256:").unwrap_or("");
                    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(err(
                            line,
                            format!("invalid checksum {c:?}: expected sha256:<64 hex digits>"),
                        ));
                    }
                }
                let unpack = bool_flag(ins, "unpack")?;
                if unpack.is_some() && !add {
                    return Err(err(line, "--unpack is only for ADD"));
                }
                let parents = bool_flag(ins, "parents")?.unwrap_or(false);
                let link = bool_flag(ins, "link")?.unwrap_or(false);
                let mut msg = kind.to_string();
                if parents {
                    msg.push_str(" --parents");
                }
                if let Some(c) = &chown {
                    msg.push_str(&format!(" --chown={c}"));
                }
                if let Some(c) = &chmod {
                    msg.push_str(&format!(" --chmod={c}"));
                }
                for s in &sources {
                    msg.push_str(&format!(" {s}"));
                }
                for (name, _) in &inline {
                    msg.push_str(&format!(" <<{name}"));
                }
                msg.push_str(&format!(" {dest} # buildkit"));
                copy_history = Some(msg);
                Op::Copy(CopyOp {
                    from,
                    sources,
                    inline,
                    dest: dest.clone(),
                    chmod,
                    chown,
                    link,
                    parents,
                    excludes: ins
                        .flags
                        .iter()
                        .filter(|f| f.name() == "exclude")
                        .filter_map(|f| f.value())
                        .map(|v| expand(v, env, args))
                        .collect::<Result<_>>()?,
                    add,
                    unpack,
                    checksum,
                })
            }
            Keyword::Run => Op::Run(crate::run::plan_run(
                ins,
                lexer,
                &shell,
                env,
                args,
                &scope(env, args),
                &options.build_args,
                &arg_order,
                stage_ref,
                index,
            )?),
            Keyword::From => unreachable!("FROM starts a stage"),
        };
        let created_by = match &op {
            Op::Copy(_) => copy_history.take().unwrap_or_default(),
            Op::Run(r) => r.created_by.clone(),
            Op::Cmd(a) if ins.json => format!("CMD {}", serde_json::to_string(a).expect("json")),
            Op::Entrypoint(a) if ins.json => {
                format!("ENTRYPOINT {}", serde_json::to_string(a).expect("json"))
            }
            Op::Cmd(a) => format!("CMD {}", serde_json::to_string(a).expect("json")),
            Op::Entrypoint(a) => format!("ENTRYPOINT {}", serde_json::to_string(a).expect("json")),
            Op::Env(kvs) => format!(
                "ENV {}",
                kvs.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Op::Label(kvs) => format!(
                "LABEL {}",
                kvs.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Op::Workdir(w) => format!("WORKDIR {w}"),
            Op::User(u) => format!("USER {u}"),
            _ => display.clone(),
        };
        steps.push(Step {
            op,
            created_by,
            display,
            line,
        });
    }
    Ok(steps)
}

/// Whether an `http(s)://` source names a git repository (BuildKit treats
/// `*.git` URLs and `#ref` fragments on them as git).
fn is_git_url(s: &str) -> bool {
    let path = s.split('#').next().unwrap_or(s);
    path.ends_with(".git") || path.ends_with(".git/")
}

/// Expands `$VAR` in a heredoc body (quotes are literal there, as in BuildKit).
fn expand_heredoc(lexer: &Lexer, body: &str, env: &EnvMap) -> std::result::Result<String, String> {
    // Escape quotes so the word lexer treats them literally, then expand.
    let escaped: String = body
        .chars()
        .flat_map(|c| match c {
            '"' | '\'' => vec![lexer.escape(), c],
            c => vec![c],
        })
        .collect();
    lexer.expand_word(&escaped, env).map_err(|e| e.to_string())
}

/// Parses Go durations like `30s`, `1m30s`, `500ms` into nanoseconds.
fn parse_duration_ns(s: &str) -> Option<u64> {
    let mut total: f64 = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += n * mult;
        rest = &rest[unit_end..];
    }
    Some(total as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(src: &str, target: Option<&str>) -> Result<Plan> {
        let (df, _) =
            berth_dockerfile::parse_strict(src).map_err(|d| err(d.span.line, d.to_string()))?;
        let opts = PlanOptions {
            target: target.map(str::to_owned),
            ..PlanOptions::default()
        };
        plan(&df, &opts, &|_| Ok(vec!["PATH=/bin".into()]))
    }

    #[test]
    fn stages_targets_and_reachability() {
        let src = "ARG BASE=busybox\nFROM ${BASE} AS one\nRUN --network=bogus broken-but-unused\nFROM scratch AS two\nCOPY a /a\nFROM two\nCOPY --from=two /a /b\nENV P=$PATH:/x\n";
        let plan = p(src, None).unwrap();
        assert_eq!(
            plan.order,
            vec![1, 2],
            "stage 0 is unreachable and never planned"
        );
        assert_eq!(plan.stages[&2].base, Base::Stage(1));
        let steps = &plan.stages[&2].steps;
        assert!(matches!(&steps[0].op, Op::Copy(c) if c.from == Source::Stage(1)));
        // A scratch-based stage expands $PATH to BuildKit's default PATH.
        assert!(
            matches!(&steps[1].op, Op::Env(kv) if kv[0].1 == format!("{}:/x", crate::DEFAULT_PATH)),
            "{:?}",
            steps[1].op
        );
        let plan = p(src, Some("one"));
        assert!(
            matches!(plan, Err(Error::Dockerfile { line: 3, .. })),
            "{plan:?}"
        );
        assert!(matches!(p(src, Some("nope")), Err(Error::UnknownTarget(_))));
        let plan = p(
            "FROM busybox\nENV P=$PATH:/x\nWORKDIR /a/$P\nCMD echo hi\n",
            None,
        )
        .unwrap();
        let steps = &plan.stages[&0].steps;
        assert_eq!(steps[0].op, Op::Env(vec![("P".into(), "/bin:/x".into())]));
        assert_eq!(steps[1].op, Op::Workdir("/a//bin:/x".into()));
        assert_eq!(
            steps[2].op,
            Op::Cmd(vec!["/bin/sh".into(), "-c".into(), "echo hi".into()])
        );
        assert_eq!(parse_duration_ns("1m30s"), Some(90_000_000_000));
    }

    fn copy_op(src: &str) -> Result<(CopyOp, String)> {
        let plan = p(&format!("FROM scratch\nARG M=640\n{src}\n"), None)?;
        let step = plan.stages[&0].steps.last().expect("a step").clone();
        match step.op {
            Op::Copy(c) => Ok((c, step.created_by)),
            other => panic!("not a copy: {other:?}"),
        }
    }

    #[test]
    fn copy_and_add_flags() {
        let (c, hist) =
            copy_op("COPY --parents --link=false --chmod=$M --chown=1:2 a b /d/").unwrap();
        assert!(c.parents && !c.link && !c.add);
        assert_eq!(c.chmod.as_deref(), Some("640"), "flags are expanded");
        assert_eq!(
            hist,
            "COPY --parents --chown=1:2 --chmod=640 a b /d/ # buildkit"
        );
        let (c, _) = copy_op("COPY --link --exclude=*.md --exclude=x . /d/").unwrap();
        assert!(c.link);
        assert_eq!(c.excludes, ["*.md", "x"]);
        let sum = format!("sha256:{}", "a".repeat(64));
        let (c, _) = copy_op(&format!(
            "ADD --unpack=true --checksum={sum} http://h/x.tgz /d/"
        ))
        .unwrap();
        assert!(c.add);
        assert_eq!(
            (c.unpack, c.checksum.as_deref()),
            (Some(true), Some(sum.as_str()))
        );
        for (bad, why) in [
            ("COPY --chmod=u+q a /b", "chmod"),
            ("COPY --chmod=99999 a /b", "chmod"),
            ("COPY http://h/x /b", "URL"),
            ("COPY --checksum=sha256:00 a /b", "COPY"),
            ("ADD --checksum=sha256:00 http://h/x /b", "invalid checksum"),
            ("ADD --checksum=sha256:{64a} a /b", "HTTP"),
            ("COPY --unpack=true a /b", "ADD"),
            ("COPY --link=maybe a /b", "true or false"),
        ] {
            let bad = bad.replace("{64a}", &"a".repeat(64));
            let e = copy_op(&bad).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains(":3"), "{bad}: {e}");
        }
        assert!(matches!(
            copy_op("ADD https://example.com/repo.git /src"),
            Err(Error::Unsupported { line: 3, .. })
        ));
    }
}
