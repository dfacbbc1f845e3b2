//! `berth builder prune`, and the `berth build` flags that configure RUN
//! steps (`--secret`, `--ssh`, `--allow`) turned into
//! [`berth_build::run::RunOptions`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use berth_build::run::RunOptions;
use clap::Subcommand;

use super::util::{StoreArgs, gc_roots, human_size};

#[derive(Debug, Subcommand)]
pub enum BuilderCommand {
    /// Remove the build cache: step records, RUN cache mounts, the layers
    /// only the cache kept alive and their snapshots (with --all, every
    /// layer snapshot).
    Prune(PruneArgs),
}

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Also remove the layer snapshots of images still in the store (they
    /// are made again when a build needs them). Step records and RUN cache
    /// mounts go either way: berth's cache has no dangling entries.
    #[arg(short, long)]
    all: bool,
    /// Keep this much cache (e.g. 500MB, 2GiB): drop the least recently used
    /// step records until the layers only the cache keeps fit; RUN cache
    /// mounts are kept.
    #[arg(long, value_name = "SIZE")]
    keep_storage: Option<String>,
}

pub fn run(store: &StoreArgs, cmd: BuilderCommand) -> anyhow::Result<i32> {
    match cmd {
        BuilderCommand::Prune(args) if args.keep_storage.is_some() && !args.all => {
            let spec = args.keep_storage.as_deref().unwrap_or_default();
            let keep = berth_inspect::ci::parse_bytes(spec)
                .map_err(|e| anyhow::anyhow!("--keep-storage {spec:?}: {e}"))?;
            let store = store.open()?;
            // What images and the registry keep costs the cache nothing.
            let without_cache = store.gc_with(true, &[&berth_registry::RegistryRoots])?;
            let cache_only: std::collections::BTreeSet<_> =
                without_cache.removed_blobs.into_iter().collect();
            let elsewhere: std::collections::BTreeSet<_> =
                berth_content::ContentStore::list(store.content())?
                    .into_iter()
                    .map(|i| i.digest)
                    .filter(|d| !cache_only.contains(d))
                    .collect();
            let size_of = |d: &berth_oci::Digest| {
                berth_content::ContentStore::info(store.content(), d)
                    .ok()
                    .flatten()
                    .map(|i| i.size)
            };
            let removed = berth_build::prune_to(store.root(), keep, &size_of, &elsewhere)
                .context("pruning the build cache")?;
            let report = super::util::collect(&store)?;
            println!("Deleted {removed} cache records (least recently used first)");
            println!(
                "Total reclaimed space: {}",
                human_size(report.reclaimed_bytes)
            );
            Ok(0)
        }
        BuilderCommand::Prune(args) => {
            let store = store.open()?;
            let pruned = berth_build::run::prune(store.root())?;
            let report = store.gc_with(false, &gc_roots())?;
            // Images keep their layers' snapshots (as docker keeps its
            // images unpacked) unless --all.
            let snaps = berth_build::snapshots::prune(&store, args.all)?;
            println!(
                "Deleted {} cache records, {} cache mounts and {} layer snapshots{}",
                pruned.cache_records,
                pruned.cache_mounts,
                snaps.snapshots,
                if pruned.busy_mounts > 0 {
                    format!(" ({} in use left alone)", pruned.busy_mounts)
                } else {
                    String::new()
                }
            );
            println!(
                "Total reclaimed space: {}",
                human_size(report.reclaimed_bytes + snaps.bytes)
            );
            Ok(0)
        }
    }
}

/// `--secret id=ID,src=FILE`, `id=ID,env=VAR` (also `type=file|env`,
/// `source=`); a bare `id=ID` reads the variable `ID`.
fn parse_secret(spec: &str) -> anyhow::Result<(String, Vec<u8>)> {
    let (mut id, mut src, mut env, mut kind) = (None, None, None, None);
    for part in spec.split(',') {
        match part.split_once('=') {
            Some(("id", v)) => id = Some(v.to_owned()),
            Some(("src" | "source", v)) => src = Some(PathBuf::from(v)),
            Some(("env", v)) => env = Some(v.to_owned()),
            Some(("type", v)) => kind = Some(v.to_owned()),
            _ => bail!("invalid --secret {spec:?}: expected id=ID,src=FILE or id=ID,env=VAR"),
        }
    }
    let id = id.with_context(|| format!("--secret {spec:?} needs id="))?;
    if kind.as_deref() == Some("env") && env.is_none() {
        env = src.take().map(|p| p.to_string_lossy().into_owned());
    }
    let value = match (src, env) {
        (Some(p), None) => std::fs::read(&p)
            .with_context(|| format!("reading secret {id} from {}", p.display()))?,
        (None, Some(v)) => std::env::var(&v)
            .with_context(|| format!("secret {id}: environment variable {v} is not set"))?
            .into_bytes(),
        (None, None) => std::env::var(&id)
            .with_context(|| format!("secret {id}: give src=FILE or env=VAR"))?
            .into_bytes(),
        (Some(_), Some(_)) => bail!("--secret {spec:?}: src= and env= exclude each other"),
    };
    Ok((id, value))
}

/// The RUN options of `berth build`.
pub fn run_options(
    secrets: &[String],
    ssh: &[String],
    allow: &[String],
) -> anyhow::Result<RunOptions> {
    let mut opts = RunOptions::default();
    let mut map = BTreeMap::new();
    for s in secrets {
        let (id, v) = parse_secret(s)?;
        map.insert(id, v);
    }
    opts.secrets = map;
    for s in ssh {
        let (id, path) = match s.split_once('=') {
            Some((id, p)) => (id.to_owned(), PathBuf::from(p)),
            None => (
                s.clone(),
                std::env::var_os("SSH_AUTH_SOCK")
                    .map(PathBuf::from)
                    .with_context(|| format!("--ssh {s}: SSH_AUTH_SOCK is not set"))?,
            ),
        };
        let md =
            std::fs::metadata(&path).with_context(|| format!("--ssh {id}: {}", path.display()))?;
        if !std::os::unix::fs::FileTypeExt::is_socket(&md.file_type()) {
            bail!(
                "--ssh {id}: {} is not an agent socket (key files are not supported)",
                path.display()
            );
        }
        opts.ssh.insert(id, path);
    }
    for a in allow {
        match a.as_str() {
            "security.insecure" => opts.allow_insecure = true,
            // RUN shares the host network by default already.
            "network.host" => {}
            other => bail!("unknown entitlement {other:?} (security.insecure, network.host)"),
        }
    }
    Ok(opts)
}
