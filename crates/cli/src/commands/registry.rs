//! `berth registry ...`: the OCI distribution registry server and its GC.
//!
//! Flags only: every option of the configuration file is also a flag, and
//! flags override the file. The work is in `berth-registry`.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use berth_registry::{AuthMode, Config, GcOptions, Grant, MirrorConfig};
use clap::{Args, Subcommand, ValueEnum};

use super::util::StoreArgs;

#[derive(Debug, Args)]
pub struct RegistryArgs {
    #[command(subcommand)]
    command: RegistryCommand,
}

#[derive(Debug, Subcommand)]
enum RegistryCommand {
    /// Serve the OCI distribution API from the store (--root).
    Serve(Box<ServeArgs>),
    /// Delete blobs (and optionally untagged manifests) nothing references.
    Gc(GcArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum AuthFlag {
    None,
    Basic,
    Token,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// TOML configuration file; flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, value_name = "HOST:PORT")]
    addr: Option<String>,
    /// Refuse pushes and deletes.
    #[arg(long)]
    read_only: bool,
    /// Refuse manifest, tag and blob deletion.
    #[arg(long)]
    no_delete: bool,
    /// Largest manifest accepted, in bytes.
    #[arg(long, value_name = "BYTES")]
    max_manifest_bytes: Option<u64>,
    /// Largest blob accepted, in bytes (0: no limit).
    #[arg(long, value_name = "BYTES")]
    max_blob_bytes: Option<u64>,
    /// Most upload sessions open at once.
    #[arg(long, value_name = "N")]
    max_uploads: Option<usize>,
    /// Cancel upload sessions idle for this long.
    #[arg(long, value_name = "SECS")]
    upload_idle_secs: Option<u64>,
    /// Time allowed for request headers and for each piece of a body.
    #[arg(long, value_name = "SECS")]
    io_timeout_secs: Option<u64>,
    /// Do not verify blob digests while serving full reads.
    #[arg(long)]
    no_verify_reads: bool,
    /// Access logs as JSON lines.
    #[arg(long)]
    log_json: bool,
    /// TLS certificate chain (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Run GC in the server every SECS seconds (0: never).
    #[arg(long, value_name = "SECS")]
    gc_interval_secs: Option<u64>,
    /// GC never removes blobs younger than this.
    #[arg(long, value_name = "SECS")]
    gc_grace_secs: Option<u64>,
    /// Scheduled GC also deletes untagged manifests.
    #[arg(long)]
    gc_delete_untagged: bool,
    /// Authentication mode.
    #[arg(long, value_enum)]
    auth: Option<AuthFlag>,
    /// htpasswd file (bcrypt) for basic and token auth.
    #[arg(long, value_name = "FILE")]
    htpasswd: Option<PathBuf>,
    /// Token realm URL (default: http://<Host>/token of the request).
    #[arg(long, value_name = "URL")]
    token_realm: Option<String>,
    /// Token service name.
    #[arg(long, value_name = "NAME")]
    token_service: Option<String>,
    /// Token lifetime.
    #[arg(long, value_name = "SECS")]
    token_ttl_secs: Option<u64>,
    /// File with at least 32 secret bytes to sign tokens (default: random per start).
    #[arg(long, value_name = "FILE")]
    token_key_file: Option<PathBuf>,
    /// Anyone may pull any repository.
    #[arg(long)]
    anonymous_pull: bool,
    /// A grant ACCOUNTS:REPOSITORIES:ACTIONS, e.g. 'alice,bob:team/*:pull,push' (repeatable).
    #[arg(long = "grant", value_name = "GRANT")]
    grants: Vec<String>,
    /// Mirror an upstream registry (repeatable), e.g. 'https://registry-1.docker.io'
    /// or 'docker.io=http://127.0.0.1:5001' (REGISTRY: the name clients use for it).
    /// Credentials per upstream go in the config file's [[mirror]] tables.
    #[arg(long = "mirror", value_name = "[REGISTRY=]URL")]
    mirrors: Vec<String>,
    /// Re-validate mirrored tags upstream once they are this old (every mirror).
    #[arg(long, value_name = "SECS")]
    mirror_ttl_secs: Option<u64>,
    /// Mirrors given by flags may use plain HTTP to any host and skip TLS verification.
    #[arg(long)]
    mirror_insecure: bool,
    /// Size limit of mirrored content; least recently used goes first (0: none).
    #[arg(long, value_name = "BYTES")]
    mirror_cache_max_bytes: Option<u64>,
}

#[derive(Debug, Args)]
struct GcArgs {
    /// Report what would be removed; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also delete manifests no tag reaches (and that refer to nothing kept).
    #[arg(long)]
    delete_untagged: bool,
    /// Keep blobs younger than this (protects pushes in progress).
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    grace_secs: u64,
}

/// Runs `berth registry`; returns the process exit code.
pub fn run(store: &StoreArgs, args: RegistryArgs) -> anyhow::Result<i32> {
    let root = store
        .root
        .clone()
        .unwrap_or_else(berth_image::store::default_root);
    match args.command {
        RegistryCommand::Serve(a) => serve(root, *a),
        RegistryCommand::Gc(a) => gc(root, a),
    }
}

fn config(a: ServeArgs) -> anyhow::Result<Config> {
    let mut c = match &a.config {
        Some(p) => Config::from_file(p)?,
        None => Config::default(),
    };
    macro_rules! set {
        ($($flag:ident => $($field:ident).+),* $(,)?) => {$(
            if let Some(v) = a.$flag { c.$($field).+ = v; }
        )*};
    }
    set!(
        addr => addr,
        max_manifest_bytes => max_manifest_bytes,
        max_blob_bytes => max_blob_bytes,
        max_uploads => max_uploads,
        upload_idle_secs => upload_idle_secs,
        io_timeout_secs => io_timeout_secs,
        gc_interval_secs => gc.interval_secs,
        gc_grace_secs => gc.grace_secs,
        token_service => auth.service,
        token_ttl_secs => auth.token_ttl_secs,
        mirror_cache_max_bytes => mirror_cache.max_bytes,
    );
    c.read_only |= a.read_only;
    c.delete_enabled &= !a.no_delete;
    c.verify_reads &= !a.no_verify_reads;
    c.log_json |= a.log_json;
    c.gc.delete_untagged |= a.gc_delete_untagged;
    c.auth.anonymous_pull |= a.anonymous_pull;
    if a.tls_cert.is_some() {
        c.tls_cert = a.tls_cert;
        c.tls_key = a.tls_key;
    }
    if let Some(m) = a.auth {
        c.auth.mode = match m {
            AuthFlag::None => AuthMode::None,
            AuthFlag::Basic => AuthMode::Basic,
            AuthFlag::Token => AuthMode::Token,
        };
    }
    if a.htpasswd.is_some() {
        c.auth.htpasswd = a.htpasswd;
    }
    if a.token_realm.is_some() {
        c.auth.realm = a.token_realm;
    }
    if a.token_key_file.is_some() {
        c.auth.token_key_file = a.token_key_file;
    }
    for g in &a.grants {
        c.auth.grants.push(Grant::parse_flag(g)?);
    }
    for m in &a.mirrors {
        c.mirrors
            .push(MirrorConfig::parse_flag(m, a.mirror_insecure)?);
    }
    if let Some(ttl) = a.mirror_ttl_secs {
        for m in &mut c.mirrors {
            m.ttl_secs = ttl;
        }
    }
    c.validate()?;
    Ok(c)
}

fn serve(root: PathBuf, a: ServeArgs) -> anyhow::Result<i32> {
    let cfg = config(a)?;
    berth_registry::init_logging(cfg.log_json);
    let shown = root.clone();
    // The build cache shares the store: the mirror's eviction must spare it.
    let keepers: Vec<berth_registry::Keeper> = vec![Box::new(berth_build::BuildCacheRoots)];
    berth_registry::run_with(root, cfg, keepers, |addr| {
        // Tests and scripts read this line to learn the port.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {addr} (store {})", shown.display());
        let _ = out.flush();
    })
    .context("registry server")?;
    Ok(0)
}

fn gc(root: PathBuf, a: GcArgs) -> anyhow::Result<i32> {
    let report = berth_registry::collect_with(
        &root,
        &GcOptions {
            dry_run: a.dry_run,
            grace: Duration::from_secs(a.grace_secs),
            delete_untagged: a.delete_untagged,
            wait: true,
        },
        &[&berth_build::BuildCacheRoots],
    )
    .with_context(|| format!("collecting garbage in {}", root.display()))?;
    let verb = if a.dry_run { "would delete" } else { "deleted" };
    for (repo, d) in &report.deleted_manifests {
        println!("{verb} manifest {repo}@{d}");
    }
    for d in &report.removed_blobs {
        println!("{verb} blob {d}");
    }
    println!(
        "{} {} manifests, {} blobs ({} bytes); kept {} blobs; removed {} stale uploads",
        if a.dry_run { "would delete" } else { "deleted" },
        report.deleted_manifests.len(),
        report.removed_blobs.len(),
        report.reclaimed_bytes,
        report.kept_blobs,
        report.removed_ingests
    );
    Ok(0)
}
