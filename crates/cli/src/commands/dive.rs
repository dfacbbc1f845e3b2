//! `berth dive`: dive-like layer inspection, a CI gate on wasted space,
//! `dive diff` and `dive cat`. The analysis is `berth-inspect`'s; this file
//! parses flags and draws reports (the TUI lives in `dive/tui.rs`).

mod tui;

use std::fmt::Write as _;
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use berth_inspect::ci::{self, CiConfig, CiReport, Rule};
use berth_inspect::source::{self, ImageInfo, Source};
use berth_inspect::{Analysis, analyze};
use berth_oci::Platform;
use clap::{Args, Subcommand, ValueEnum};

use super::util::StoreArgs;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct DiveArgs {
    #[command(subcommand)]
    command: Option<DiveCommand>,
    /// Image to analyse: a reference in the store, a file or directory with
    /// --source, or a registry reference with --source registry (dive's
    /// `docker-archive://FILE` and `registry://REF` forms work too).
    #[arg(required = true)]
    image: Option<String>,
    #[command(flatten)]
    source: SourceArgs,
    /// Do not start the TUI: evaluate the CI rules, print a report and exit
    /// 1 if a rule fails.
    #[arg(long)]
    ci: bool,
    /// The CI rules file (dive's `.dive-ci` format; default: ./.dive-ci if present).
    #[arg(long, value_name = "FILE")]
    ci_config: Option<PathBuf>,
    /// Override rules.lowestEfficiency (0-1, or "disabled").
    #[arg(long, alias = "lowestEfficiency", value_name = "VALUE")]
    lowest_efficiency: Option<String>,
    /// Override rules.highestWastedBytes (e.g. 20MB, or "disabled").
    #[arg(long, alias = "highestWastedBytes", value_name = "VALUE")]
    highest_wasted_bytes: Option<String>,
    /// Override rules.highestUserWastedPercent (0-1, or "disabled").
    #[arg(long, alias = "highestUserWastedPercent", value_name = "VALUE")]
    highest_user_wasted_percent: Option<String>,
    /// Write the full analysis as JSON to FILE (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
struct SourceArgs {
    /// Where the image comes from.
    #[arg(long, value_enum, default_value = "store", global = true)]
    source: SourceKind,
    /// The platform to pick from a multi-platform image (default: the host's).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", global = true)]
    platform: Option<String>,
    /// With --source registry: allow plain HTTP (or HTTPS without
    /// certificate checks) to this registry; loopback registries always are.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]", global = true)]
    insecure: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SourceKind {
    /// The local store.
    Store,
    /// A `docker save` tarball.
    DockerArchive,
    /// A tarred OCI image layout.
    OciArchive,
    /// An OCI image layout directory.
    OciDir,
    /// A registry: layers are streamed into the analysis (verified against
    /// their digests), nothing is stored.
    Registry,
}

#[derive(Debug, Subcommand)]
enum DiveCommand {
    /// Show what changed between two images' final filesystems, by path.
    Diff(DiffArgs),
    /// Copy one file out of an image (the final filesystem's copy, or a layer's) to stdout.
    Cat(CatArgs),
}

#[derive(Debug, Args)]
struct DiffArgs {
    /// The image before.
    from: String,
    /// The image after.
    to: String,
    /// Print JSON instead of one line per path.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct CatArgs {
    /// The image.
    image: String,
    /// Path of the file in the image.
    path: String,
    /// Take the file from this layer (0 = the bottom layer) instead of the
    /// final filesystem.
    #[arg(long, value_name = "N")]
    layer: Option<usize>,
}

/// Runs `berth dive`; returns the process exit code.
pub fn run(store: &StoreArgs, args: DiveArgs) -> anyhow::Result<i32> {
    let platform: Option<Platform> = args
        .source
        .platform
        .as_deref()
        .map(str::parse)
        .transpose()?;
    match args.command {
        Some(DiveCommand::Diff(d)) => return diff(store, &args.source, platform.as_ref(), d),
        Some(DiveCommand::Cat(c)) => return cat(store, &args.source, platform.as_ref(), c),
        None => {}
    }
    let image = args.image.clone().context("an image is required")?;
    let src = make_source(store, &args.source, platform.as_ref(), &image)?;
    // The rules are read only for --ci, so a broken .dive-ci never stops the explorer.
    let config = if args.ci {
        let mut config = load_ci_config(args.ci_config.as_deref())?;
        for (rule, value) in [
            (Rule::LowestEfficiency, &args.lowest_efficiency),
            (Rule::HighestWastedBytes, &args.highest_wasted_bytes),
            (
                Rule::HighestUserWastedPercent,
                &args.highest_user_wasted_percent,
            ),
        ] {
            if let Some(v) = value {
                config.set(rule, v.clone());
            }
        }
        Some(config)
    } else {
        None
    };
    let (info, layers) =
        source::load(&src, platform.as_ref()).with_context(|| format!("reading {image}"))?;
    let analysis = analyze(layers);
    let report = config.as_ref().map(|c| ci::evaluate(c, &analysis));
    if let Some(path) = &args.json {
        let doc = json_doc(&analysis, report.as_ref());
        let text = serde_json::to_string_pretty(&doc)? + "\n";
        if path == Path::new("-") {
            std::io::stdout().write_all(text.as_bytes())?;
        } else {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    if let Some(report) = report {
        print!("{}", summary(&analysis));
        print!("{}", ci_report(&report));
        return Ok(if report.pass { 0 } else { 1 });
    }
    if args.json.is_some() {
        return Ok(0);
    }
    if std::io::stdout().is_terminal() {
        tui::run(&analysis, &info)?;
    } else {
        print!("{}", summary(&analysis));
    }
    Ok(0)
}

fn make_source(
    store: &StoreArgs,
    source: &SourceArgs,
    platform: Option<&Platform>,
    image: &str,
) -> anyhow::Result<Source> {
    let kind = source.source;
    // dive's `SCHEME://` form.
    let (kind, target) = match image.split_once("://") {
        Some(("docker-archive", rest)) => (SourceKind::DockerArchive, rest),
        Some(("oci-archive", rest)) => (SourceKind::OciArchive, rest),
        Some(("oci-dir", rest)) => (SourceKind::OciDir, rest),
        Some(("registry", rest)) => (SourceKind::Registry, rest),
        Some(("store", rest)) => (SourceKind::Store, rest),
        _ => (kind, image),
    };
    Ok(match kind {
        SourceKind::Store => Source::Store {
            store: store.open()?,
            reference: target.to_owned(),
        },
        SourceKind::DockerArchive => Source::DockerArchive(target.into()),
        SourceKind::OciArchive => Source::OciArchive(target.into()),
        SourceKind::OciDir => Source::OciDir(target.into()),
        SourceKind::Registry => {
            let reference = berth_oci::Reference::parse(target).with_context(|| {
                format!("--source registry needs an image reference, not {target:?}")
            })?;
            let client = super::transfer::client(&source.insecure)?;
            let image = berth_client::RemoteImage::open(&client, &reference, platform)
                .with_context(|| format!("reading {} from its registry", reference.familiar()))?;
            Source::Remote(std::sync::Arc::new(RegistryImage {
                name: target.to_owned(),
                image,
                platform: platform.cloned(),
            }))
        }
    })
}

/// An image read from its registry for the analysis: manifest and config
/// fetched, layers streamed through verifying readers, nothing stored.
#[derive(Debug)]
struct RegistryImage {
    name: String,
    image: berth_client::RemoteImage,
    platform: Option<Platform>,
}

impl source::Remote for RegistryImage {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn manifest(&self) -> &berth_oci::ImageManifest {
        &self.image.manifest
    }

    fn config(&self) -> &[u8] {
        &self.image.config_bytes
    }

    fn open(&self, desc: &berth_oci::Descriptor) -> std::io::Result<Box<dyn std::io::Read + '_>> {
        Ok(Box::new(self.image.blob(desc)))
    }

    fn base_layers(
        &self,
        name: Option<&str>,
        digest: &berth_oci::Digest,
    ) -> Option<Vec<berth_oci::Digest>> {
        // The base's own repository (from its name), else this image's.
        let repos = name
            .and_then(|n| berth_oci::Reference::parse(n).ok())
            .into_iter()
            .chain([self.image.reference().clone()]);
        repos
            .filter_map(|repo| {
                self.image
                    .manifest_of(&repo.with_digest(digest.clone()), self.platform.as_ref())
                    .ok()
            })
            .map(|m| m.layers.iter().map(|l| l.digest.clone()).collect())
            .next()
    }
}

fn load_ci_config(path: Option<&Path>) -> anyhow::Result<CiConfig> {
    let (path, explicit) = match path {
        Some(p) => (p, true),
        None => (Path::new(".dive-ci"), false),
    };
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(CiConfig::parse(&text, path)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Ok(CiConfig::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// go-humanize's `Bytes`: SI units, one decimal below 10.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 10 {
        return format!("{n} B");
    }
    let e = ((n as f64).ln() / 1000f64.ln()).floor() as usize;
    let e = e.min(UNITS.len() - 1);
    let val = ((n as f64 / 1000f64.powi(e as i32)) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1} {}", UNITS[e])
    } else {
        format!("{val:.0} {}", UNITS[e])
    }
}

fn percent(v: f64) -> String {
    if v.is_finite() {
        format!("{:.4} %", v * 100.0)
    } else if v.is_nan() {
        "NaN %".to_owned()
    } else {
        "+Inf %".to_owned()
    }
}

/// The analysis in dive's words, then berth's.
fn summary(a: &Analysis) -> String {
    let mut s = String::new();
    let d = &a.dive;
    let b = &a.berth;
    let _ = writeln!(s, "Image: {}", a.image);
    let _ = writeln!(s, "  layers: {}", a.layers.len());
    let _ = writeln!(s, "dive metrics:");
    let _ = writeln!(s, "  efficiency: {}", percent(d.efficiency));
    let _ = writeln!(
        s,
        "  wastedBytes: {} bytes ({})",
        d.wasted_bytes,
        human_bytes(d.wasted_bytes)
    );
    let _ = writeln!(s, "  userWastedPercent: {}", percent(d.user_wasted_percent));
    let _ = writeln!(
        s,
        "berth metrics (the kept copy is not waste; deleted files and directories are):"
    );
    let _ = writeln!(s, "  efficiency: {}", percent(b.efficiency));
    let _ = writeln!(
        s,
        "  wastedBytes: {} bytes ({})",
        b.wasted_bytes,
        human_bytes(b.wasted_bytes)
    );
    let users = match &b.user_layers.from {
        berth_inspect::analysis::UserLayersFrom::BaseAnnotations { name, .. } => format!(
            "layers {}.. after base {}",
            b.user_layers.first,
            name.as_deref().unwrap_or("image")
        ),
        berth_inspect::analysis::UserLayersFrom::AllButFirst => {
            "all but the first layer".to_owned()
        }
    };
    let _ = writeln!(
        s,
        "  userWastedPercent: {} (user layers: {users})",
        percent(b.user_wasted_percent)
    );
    let _ = writeln!(
        s,
        "  duplicated: {}  chmod/chown-only copies: {}  replaced: {}  deleted: {}",
        b.duplicate_bytes, b.metadata_only_bytes, b.replaced_bytes, b.deleted_bytes
    );
    if !d.aborted_walks.is_empty() {
        for w in &d.aborted_walks {
            let _ = writeln!(
                s,
                "  note: dive stops counting layer {} at the whiteout of {}, which no lower layer has",
                w.layer, w.whiteout
            );
        }
    }
    let _ = writeln!(s, "Inefficient Files:");
    let _ = writeln!(s, "{:>5}  {:>12}  File Path", "Count", "Wasted Space");
    if d.inefficiencies.is_empty() {
        let _ = writeln!(s, "None");
    }
    for f in &d.inefficiencies {
        let _ = writeln!(
            s,
            "{:>5}  {:>12}  {}",
            f.count,
            human_bytes(f.cumulative_size),
            f.path
        );
    }
    let _ = writeln!(s, "Wasted Space (berth):");
    let _ = writeln!(
        s,
        "{:>12}  {:<13}  {:>5}  Path",
        "Wasted", "Reason", "Layer"
    );
    if a.waste.is_empty() {
        let _ = writeln!(s, "None");
    }
    for w in a.waste.iter().take(20) {
        let reason = serde_json::to_value(w.reason).ok();
        let reason = reason.as_ref().and_then(|v| v.as_str()).unwrap_or("");
        let _ = writeln!(
            s,
            "{:>12}  {:<13}  {:>8}  {}",
            human_bytes(w.bytes),
            reason,
            w.by_layer,
            w.path
        );
    }
    if a.waste.len() > 20 {
        let _ = writeln!(s, "... and {} more (see --json)", a.waste.len() - 20);
    }
    s
}

fn ci_report(r: &CiReport) -> String {
    let mut s = String::from("Results:\n");
    for res in &r.results {
        let status = match res.status {
            ci::Status::Pass => "PASS",
            ci::Status::Fail => "FAIL",
            ci::Status::Skip => "SKIP",
            ci::Status::Misconfigured => "MISCONFIGURED",
            ci::Status::Configured => "CONFIGURED",
        };
        if res.message.is_empty() {
            let _ = writeln!(s, "  {status}: {}", res.key);
        } else {
            let _ = writeln!(s, "  {status}: {}: {}", res.key, res.message);
        }
    }
    if r.misconfigured {
        s.push_str("CI Misconfigured\n");
    } else {
        let _ = writeln!(
            s,
            "Result:{} [Total:{}] [Passed:{}] [Failed:{}] [Warn:0] [Skipped:{}]",
            if r.pass { "PASS" } else { "FAIL" },
            r.results.len(),
            r.count(ci::Status::Pass),
            r.count(ci::Status::Fail),
            r.count(ci::Status::Skip)
        );
    }
    s
}

/// dive's `--json` document (`layer`, `image`) plus berth's full analysis (`analysis`) and the CI results (`ci`).
fn json_doc(a: &Analysis, report: Option<&CiReport>) -> serde_json::Value {
    let layers: Vec<serde_json::Value> = a
        .layers
        .iter()
        .map(|l| {
            serde_json::json!({
                "index": l.index,
                "id": l.meta.digest.clone().unwrap_or_default(),
                "digestId": l.meta.digest.clone().unwrap_or_default(),
                "sizeBytes": l.size,
                "command": l.meta.created_by,
            })
        })
        .collect();
    let refs: Vec<serde_json::Value> = a
        .dive
        .inefficiencies
        .iter()
        .map(|f| serde_json::json!({"count": f.count, "sizeBytes": f.cumulative_size, "file": f.path}))
        .collect();
    let mut doc = serde_json::json!({
        "layer": layers,
        "image": {
            "sizeBytes": a.dive.size_bytes,
            "inefficientBytes": a.dive.wasted_bytes,
            "efficiencyScore": a.dive.efficiency,
            "fileReference": refs,
        },
        "analysis": a,
    });
    if let Some(r) = report {
        doc["ci"] = serde_json::to_value(r).unwrap_or_default();
    }
    doc
}

fn load_image(
    store: &StoreArgs,
    source: &SourceArgs,
    platform: Option<&Platform>,
    image: &str,
) -> anyhow::Result<(Source, ImageInfo, Analysis)> {
    let src = make_source(store, source, platform, image)?;
    let (info, layers) =
        source::load(&src, platform).with_context(|| format!("reading {image}"))?;
    Ok((src, info, analyze(layers)))
}

fn diff(
    store: &StoreArgs,
    source: &SourceArgs,
    platform: Option<&Platform>,
    args: DiffArgs,
) -> anyhow::Result<i32> {
    let (_, _, a) = load_image(store, source, platform, &args.from)?;
    let (_, _, b) = load_image(store, source, platform, &args.to)?;
    let entries = berth_inspect::diff::diff(&a.final_tree, &b.final_tree);
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &entries)?;
        writeln!(out)?;
        return Ok(0);
    }
    for e in &entries {
        let (mark, detail) = match e.kind {
            berth_inspect::diff::DiffKind::Added => ('A', human_bytes(e.after)),
            berth_inspect::diff::DiffKind::Removed => ('D', human_bytes(e.before)),
            berth_inspect::diff::DiffKind::Changed => {
                let c = e.change.unwrap_or_default();
                let mut what = Vec::new();
                if c.content {
                    what.push("content");
                }
                if c.mode {
                    what.push("mode");
                }
                if c.owner {
                    what.push("owner");
                }
                (
                    'M',
                    format!(
                        "{} -> {} ({})",
                        human_bytes(e.before),
                        human_bytes(e.after),
                        what.join(",")
                    ),
                )
            }
        };
        writeln!(out, "{mark} {}\t{detail}", e.path)?;
    }
    Ok(0)
}

fn cat(
    store: &StoreArgs,
    source: &SourceArgs,
    platform: Option<&Platform>,
    args: CatArgs,
) -> anyhow::Result<i32> {
    let (src, info, a) = load_image(store, source, platform, &args.image)?;
    let layer = match args.layer {
        Some(n) if n >= a.trees.len() => {
            return Err(berth_inspect::Error::NoLayer {
                index: n,
                count: a.trees.len(),
            }
            .into());
        }
        Some(n) => n,
        None => match a.final_tree.find(&args.path) {
            Some(id) => a.final_tree.node(id).layer as usize,
            None => bail!("{} is not in the image's final filesystem", args.path),
        },
    };
    let mut out = std::io::stdout().lock();
    source::cat(&src, &args.path, layer, &a.trees[layer], &info, &mut out)?;
    out.flush()?;
    Ok(0)
}
