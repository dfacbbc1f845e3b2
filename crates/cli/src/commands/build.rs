//! `berth build`: Dockerfile → image in the local store (and optional outputs:
//! docker/OCI archives, the final file system as a directory or a tar, a
//! registry). Images the Dockerfile names are pulled when missing
//! (`build_registry.rs`).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, bail};
use berth_build::context::Context;
use berth_build::exec::{Event, ExecOptions, Executor};
use berth_build::plan::{self, PlanOptions};
use berth_image::archive::{self, SaveFormat};
use berth_oci::Reference;
use berth_oci::media_type::Compression;
use clap::Args;

use super::util::StoreArgs;

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Build context directory, or - to read a Dockerfile from stdin (no context).
    context: String,
    /// Name the image (repeatable).
    #[arg(short, long = "tag", value_name = "NAME")]
    tags: Vec<String>,
    /// The Dockerfile (default: CONTEXT/Dockerfile).
    #[arg(short, long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Build this stage instead of the last one.
    #[arg(long)]
    target: Option<String>,
    /// Set a build argument (KEY=VALUE, or KEY to take it from the environment).
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    build_args: Vec<String>,
    /// Do not use the cache.
    #[arg(long)]
    no_cache: bool,
    /// Do not use the cache for these stages.
    #[arg(long, value_name = "STAGE")]
    no_cache_filter: Vec<String>,
    /// Write the image id to this file.
    #[arg(long, value_name = "FILE")]
    iidfile: Option<PathBuf>,
    /// Write build metadata (image digest, config digest) as JSON to this file.
    #[arg(long, value_name = "FILE")]
    metadata_file: Option<PathBuf>,
    /// Also export: type=docker|oci,dest=FILE (image archive), type=tar,dest=FILE or type=local,dest=DIR (the final file system), type=registry[,name=REF] (push; default: the -t names).
    #[arg(short, long, value_name = "SPEC")]
    output: Vec<String>,
    /// Layer compression.
    #[arg(long, default_value = "gzip", value_parser = ["gzip", "zstd", "uncompressed"])]
    compression: String,
    /// Progress output: auto, plain, tty or rawjson.
    #[arg(long, default_value = "auto")]
    progress: String,
    /// Print only the image id.
    #[arg(short, long)]
    quiet: bool,
    /// Stages built at once (default: the number of CPUs).
    #[arg(long, value_name = "N", default_value_t = 0)]
    jobs: usize,
    /// Expose a secret to RUN --mount=type=secret: id=ID,src=FILE or id=ID,env=VAR.
    #[arg(long = "secret", value_name = "SPEC")]
    secrets: Vec<String>,
    /// Forward an SSH agent to RUN --mount=type=ssh: default ($SSH_AUTH_SOCK) or ID=SOCKET.
    #[arg(long, value_name = "ID[=SOCKET]")]
    ssh: Vec<String>,
    /// Only check the Dockerfile (BuildKit's `--check` rules), do not build;
    /// exits 1 when a rule fires.
    #[arg(long)]
    check: bool,
    /// Grant an entitlement to RUN steps: security.insecure (network.host is implied).
    #[arg(long = "allow", value_name = "ENTITLEMENT")]
    allow: Vec<String>,
    /// Check the registry for newer versions of the images the Dockerfile
    /// names (pulling them if their tag moved); missing ones are always pulled.
    #[arg(long)]
    pull: bool,
    /// Push the image to each -t name's registry after the build
    /// (shorthand for --output type=registry).
    #[arg(long)]
    push: bool,
    /// Import build cache (repeatable): type=local,src=DIR or type=registry,ref=REF.
    #[arg(long = "cache-from", value_name = "SPEC")]
    cache_from: Vec<String>,
    /// Export the build cache: type=local,dest=DIR or type=registry,ref=REF
    /// [,mode=min|max] (min: the target stage's steps; max: every step).
    #[arg(long = "cache-to", value_name = "SPEC")]
    cache_to: Vec<String>,
    #[command(flatten)]
    net: super::transfer::NetArgs,
}

/// An `--output`: an archive of the image, or its final file system.
#[derive(Debug)]
enum Output {
    Archive(SaveFormat, PathBuf),
    Local(PathBuf),
    Tar(PathBuf),
    /// Push to these names (none: the -t names).
    Registry(Vec<Reference>),
}

fn parse_output(spec: &str) -> anyhow::Result<Output> {
    let mut kind = None;
    let mut dest = None;
    let mut push_names = Vec::new();
    for part in spec.split(',') {
        match part.split_once('=') {
            Some(("type", t)) => kind = Some(t.to_owned()),
            Some(("dest", d)) => dest = Some(PathBuf::from(d)),
            Some(("name", n)) => push_names.push(Reference::parse(n)?),
            _ => bail!(
                "invalid --output {spec:?}: expected type=docker|oci|tar|local,dest=PATH or type=registry[,name=REF]"
            ),
        }
    }
    if kind.as_deref() == Some("registry") {
        if dest.is_some() {
            bail!("--output type=registry takes name=REF, not dest=");
        }
        return Ok(Output::Registry(push_names));
    }
    if !push_names.is_empty() {
        bail!("--output {spec:?}: name= is for type=registry");
    }
    let dest = dest.with_context(|| format!("--output {spec:?} needs dest=PATH"))?;
    Ok(match kind.as_deref() {
        Some("docker") => Output::Archive(SaveFormat::Docker, dest),
        Some("oci") => Output::Archive(SaveFormat::Oci, dest),
        Some("local") => Output::Local(dest),
        Some("tar") => Output::Tar(dest),
        Some(other) => {
            bail!("--output type={other} is not supported (docker, oci, tar, local, registry)")
        }
        None => bail!("--output {spec:?} needs type="),
    })
}

pub fn run(store: &StoreArgs, args: BuildArgs) -> anyhow::Result<i32> {
    let started = Instant::now();
    if !args.check && !rustix::process::geteuid().is_root() {
        anyhow::bail!(
            "berth build needs root for now: rootless builds (a user namespace with \
             subordinate ids, as rootless BuildKit does) are not implemented yet; \
             run it as root (e.g. with sudo), or use --check to only lint"
        );
    }
    let snapshots = use_snapshots();
    let store = store.open()?;
    let (context_dir, dockerfile_text, dockerfile_path) = if args.context == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the Dockerfile from stdin")?;
        let empty = tempfile::tempdir()?;
        (empty.keep(), s, PathBuf::from("Dockerfile"))
    } else {
        let dir = PathBuf::from(&args.context);
        let file = args.file.clone().unwrap_or_else(|| dir.join("Dockerfile"));
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        (dir, text, file)
    };
    let (df, diags) = berth_dockerfile::parse(&dockerfile_text);
    let name = dockerfile_path.display().to_string();
    let mut failed = false;
    for d in &diags {
        eprintln!("{}", d.render(&name, &dockerfile_text));
        failed |= d.severity == berth_dockerfile::Severity::Error;
    }
    if failed {
        bail!("the Dockerfile has syntax errors");
    }
    if args.check {
        let findings = berth_dockerfile::lint::lint(&df, &diags, &dockerfile_text);
        for f in &findings {
            println!(
                "{name}:{}:{} {}: {}",
                f.span.line, f.span.col, f.rule, f.message
            );
        }
        println!("{} finding(s)", findings.len());
        return Ok(i32::from(!findings.is_empty()));
    }
    let mut build_args = BTreeMap::new();
    for a in &args.build_args {
        match a.split_once('=') {
            Some((k, v)) => build_args.insert(k.to_owned(), v.to_owned()),
            None => match std::env::var(a) {
                Ok(v) => build_args.insert(a.clone(), v),
                Err(_) => continue,
            },
        };
    }
    let source_date_epoch = build_args
        .get("SOURCE_DATE_EPOCH")
        .cloned()
        .or_else(|| std::env::var("SOURCE_DATE_EPOCH").ok())
        .map(|s| {
            s.parse::<i64>()
                .context("SOURCE_DATE_EPOCH must be an integer")
        })
        .transpose()?;
    let mut names: Vec<Reference> = args
        .tags
        .iter()
        .map(|t| Reference::parse(t))
        .collect::<Result<_, _>>()?;
    let mut outputs: Vec<Output> = args
        .output
        .iter()
        .map(|o| parse_output(o))
        .collect::<anyhow::Result<_>>()?;
    if args.push {
        outputs.push(Output::Registry(Vec::new()));
    }
    // Pushed names are the image's names locally too; no names, no push.
    let tagged = names.clone();
    for out in &mut outputs {
        if let Output::Registry(push) = out {
            if push.is_empty() {
                if tagged.is_empty() {
                    bail!(
                        "nothing to push to: name the image (-t NAME) or give --output type=registry,name=NAME"
                    );
                }
                push.clone_from(&tagged);
            }
            for n in push.iter() {
                if !names.contains(n) {
                    names.push(n.clone());
                }
            }
        }
    }
    let caches = super::build_cache::Caches::parse(&args.cache_from, &args.cache_to)?;
    let resolver = super::build_registry::RegistryResolver::new(
        args.net.clone(),
        args.pull,
        args.quiet || args.progress == "rawjson",
    );
    let opts = PlanOptions {
        build_args,
        target: args.target.clone(),
        platform: None,
    };
    let lookup_store = store.clone();
    // Resolving (pulling) here, before planning, lets the plan see a pulled
    // base's ENV; the executor gets the same answers from the resolver.
    let plan = plan::plan(&df, &opts, &|r| {
        use berth_build::ImageResolver as _;
        match resolver
            .resolve(&lookup_store, r)
            .and_then(|rec| Ok(lookup_store.resolve(&rec, None)?))
        {
            Ok(img) => Ok(img.config.config.and_then(|c| c.env).unwrap_or_default()),
            // A missing base is reported by the executor with its line.
            Err(_) => Ok(Vec::new()),
        }
    })?;
    let hash_cache = store.root().join("meta").join(format!(
        "context-{}.json",
        berth_oci::Digest::sha256_of(
            std::fs::canonicalize(&context_dir)
                .unwrap_or(context_dir.clone())
                .as_os_str()
                .as_encoded_bytes()
        )
        .hex()
    ));
    let ctx = Context::load(
        &context_dir,
        Some(Path::new(&dockerfile_path)),
        Some(hash_cache),
    )?;
    caches.import(&store, &args.net, args.quiet)?;
    let tty = std::io::stderr().is_terminal();
    let mode = match args.progress.as_str() {
        "auto" if tty => "tty",
        "auto" | "plain" => "plain",
        "tty" => "tty",
        "rawjson" => "rawjson",
        other => bail!("unknown --progress {other:?} (auto, plain, tty, rawjson)"),
    };
    let quiet = args.quiet;
    let live = (mode == "tty" && !quiet).then(super::build_tty::TtyProgress::start);
    // Stages build in parallel: events arrive from several threads, each
    // printed whole.
    let progress = |e: Event| {
        if quiet {
            return;
        }
        if let Some(live) = &live {
            live.event(e);
            return;
        }
        let line = if mode == "rawjson" {
            serde_json::to_string(&e).unwrap_or_default()
        } else {
            match e {
                Event::Step {
                    id,
                    stage,
                    index,
                    total,
                    text,
                } => format!("#{id} [{stage} {index}/{total}] {text}"),
                Event::Cached { id } => format!("#{id} CACHED"),
                Event::Done { id, seconds } => format!("#{id} DONE {seconds:.3}s"),
                Event::Output { id, line } => format!("#{id} {line}"),
                _ => return,
            }
        };
        eprintln!("{line}");
    };
    let exec_opts = ExecOptions {
        compression: match args.compression.as_str() {
            "zstd" => Compression::Zstd,
            "uncompressed" => Compression::None,
            _ => Compression::Gzip,
        },
        no_cache: args.no_cache,
        no_cache_filter: args.no_cache_filter.clone(),
        source_date_epoch,
        jobs: args.jobs,
        run: super::builder::run_options(&args.secrets, &args.ssh, &args.allow)?,
        snapshots,
    };
    let fetcher = super::build_fetch::HttpsFetcher::new();
    let exec = Executor::new(&store, exec_opts, &progress)?
        .with_resolver(&resolver)
        .with_fetcher(&fetcher);
    let built = exec.build(&plan, &ctx)?;
    exec.tag(&built, &names)?;
    drop(exec);
    if let Some(mut live) = live {
        live.finish();
    }
    caches.export(&store, &args.net, &built, args.quiet)?;
    let id = built.config_digest.to_string();
    if !quiet {
        eprintln!("#0 writing image {id}");
        for n in &names {
            eprintln!("#0 naming to {n}");
        }
        let all = built.cacheable_steps > 0 && built.cached_steps == built.cacheable_steps;
        eprintln!(
            "built in {:.3}s ({} of {} layer steps cached{})",
            started.elapsed().as_secs_f64(),
            built.cached_steps,
            built.cacheable_steps,
            if all { ", fully cached" } else { "" }
        );
    }
    if let Some(f) = &args.iidfile {
        std::fs::write(f, &id).with_context(|| format!("writing {}", f.display()))?;
    }
    if let Some(f) = &args.metadata_file {
        let meta = serde_json::json!({
            "containerimage.digest": built.manifest.digest.to_string(),
            "containerimage.config.digest": id,
            "image.name": names.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(","),
        });
        std::fs::write(f, serde_json::to_vec_pretty(&meta)?)
            .with_context(|| format!("writing {}", f.display()))?;
    }
    for out in outputs {
        match out {
            Output::Archive(format, dest) => {
                let rec = store.find(&built.manifest.digest.to_string())?;
                let img = store.resolve(&rec, None)?;
                let file = std::fs::File::create(&dest)
                    .with_context(|| format!("creating {}", dest.display()))?;
                let w = archive::save(
                    &store,
                    &[(img, names.clone())],
                    format,
                    std::io::BufWriter::new(file),
                )?;
                w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            }
            Output::Local(dest) => {
                berth_build::output::write_local(&store, &built.manifest, &dest)
                    .with_context(|| format!("writing the file system to {}", dest.display()))?;
            }
            Output::Registry(push) => {
                super::build_registry::push_built(
                    &store,
                    &args.net,
                    &built.manifest,
                    &push,
                    quiet,
                )?;
            }
            Output::Tar(dest) => {
                let file = std::fs::File::create(&dest)
                    .with_context(|| format!("creating {}", dest.display()))?;
                let w = berth_build::output::write_tar(
                    &store,
                    &built.manifest,
                    &store.root().join("tmp"),
                    std::io::BufWriter::new(file),
                )?;
                w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            }
        }
    }
    if quiet {
        println!("{id}");
    }
    Ok(0)
}

/// Whether this build works on persistent overlay snapshots: as root, in a
/// private mount namespace entered here, while the process has one thread
/// (so the views it mounts die with it, however it dies). Otherwise (not
/// root, or `BERTH_SNAPSHOTS=off`) every build extracts the layers it needs
/// into private directories.
fn use_snapshots() -> bool {
    if std::env::var("BERTH_SNAPSHOTS").is_ok_and(|v| v == "off" || v == "0") {
        return false;
    }
    if !rustix::process::geteuid().is_root() {
        return false;
    }
    match berth_sandbox::overlay::private_mount_namespace() {
        Ok(()) => true,
        Err(e) => {
            if std::env::var_os("BERTH_DEBUG").is_some() {
                eprintln!("berth: no persistent snapshots: {e}");
            }
            false
        }
    }
}
