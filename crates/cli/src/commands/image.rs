//! Image commands: load, save, import, images, tag, rmi, inspect, history, prune.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use berth_image::archive::{self, SaveFormat};
use berth_image::import::{self, ImportOptions};
use berth_image::inspect;
use berth_oci::Reference;
use berth_oci::media_type::Compression;
use clap::{Args, ValueEnum};

use super::util::{StoreArgs, human_age, human_size, print_table};

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Archive to read (docker-archive or OCI archive; plain, gzip or zstd). Default: stdin.
    #[arg(short, long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// Print only the image ids.
    #[arg(short, long)]
    quiet: bool,
}

pub fn load(store: &StoreArgs, args: LoadArgs) -> anyhow::Result<i32> {
    let store = store.open()?;
    let loaded = match &args.input {
        Some(p) if p != Path::new("-") => {
            let f = File::open(p).with_context(|| format!("opening {}", p.display()))?;
            archive::load(&store, f).with_context(|| format!("loading {}", p.display()))?
        }
        _ => archive::load(&store, io::stdin().lock()).context("loading from stdin")?,
    };
    for img in loaded {
        if args.quiet {
            println!("{}", img.id);
        } else if img.names.is_empty() {
            println!("Loaded image ID: {}", img.id);
        } else {
            for n in &img.names {
                println!("Loaded image: {}", n.familiar());
            }
        }
    }
    Ok(0)
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    Docker,
    Oci,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Write to this file instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Archive format.
    #[arg(long, value_enum, default_value = "docker")]
    format: FormatArg,
    /// Platform to save from multi-platform images (default: the host's).
    #[arg(long)]
    platform: Option<String>,
    /// Images to save.
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

pub fn save(store: &StoreArgs, args: SaveArgs) -> anyhow::Result<i32> {
    let store = store.open()?;
    let platform = args
        .platform
        .as_deref()
        .map(str::parse)
        .transpose()
        .context("--platform")?;
    let mut images = Vec::new();
    for input in &args.images {
        let rec = store.find(input)?;
        let img = store.resolve(&rec, platform.as_ref())?;
        // Name the image as asked: a tag keeps that tag; an id keeps all its tags.
        let names = match Reference::parse(input) {
            Ok(r) if rec.names.contains(&r) => vec![r],
            _ => rec.names.clone(),
        };
        images.push((img, names));
    }
    let format = match args.format {
        FormatArg::Docker => SaveFormat::Docker,
        FormatArg::Oci => SaveFormat::Oci,
    };
    match &args.output {
        Some(path) if path != Path::new("-") => {
            // Write next to the target and rename: a failed save leaves no half file.
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let tmp = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
            let w = archive::save(
                &store,
                &images,
                format,
                BufWriter::with_capacity(1 << 20, tmp),
            )?;
            let tmp = w.into_inner().map_err(|e| e.into_error())?;
            tmp.as_file().sync_all()?;
            tmp.persist(path)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        _ => {
            let stdout = io::stdout().lock();
            if io::IsTerminal::is_terminal(&stdout) {
                bail!("refusing to write an archive to a terminal; use -o FILE or redirect stdout");
            }
            let mut w = archive::save(
                &store,
                &images,
                format,
                BufWriter::with_capacity(1 << 20, stdout),
            )?;
            w.flush()?;
        }
    }
    Ok(0)
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CompressionArg {
    Gzip,
    Zstd,
    Uncompressed,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Root filesystem tarball (plain, gzip or zstd), or - for stdin.
    tarball: PathBuf,
    /// Name for the new image.
    reference: Option<String>,
    /// Commit message recorded in the history.
    #[arg(short, long)]
    message: Option<String>,
    /// Apply a Dockerfile instruction to the config (CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE, VOLUME, STOPSIGNAL).
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    changes: Vec<String>,
    /// Compression of the new layer.
    #[arg(long, value_enum, default_value = "gzip")]
    compression: CompressionArg,
    /// Platform to record (default: the host's).
    #[arg(long)]
    platform: Option<String>,
}

pub fn import_cmd(store: &StoreArgs, args: ImportArgs) -> anyhow::Result<i32> {
    let store = store.open()?;
    let name = args
        .reference
        .as_deref()
        .map(Reference::parse)
        .transpose()?;
    let mut opts = ImportOptions {
        compression: match args.compression {
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Zstd => Compression::Zstd,
            CompressionArg::Uncompressed => Compression::None,
        },
        message: args.message.clone(),
        platform: args.platform.as_deref().map(str::parse).transpose()?,
        ..ImportOptions::default()
    };
    for change in &args.changes {
        super::changes::apply(&mut opts.config, change)
            .with_context(|| format!("--change {change:?}"))?;
    }
    let imported = if args.tarball == Path::new("-") {
        import::import(&store, io::stdin().lock(), name.as_ref(), &opts)?
    } else {
        let f = File::open(&args.tarball)
            .with_context(|| format!("opening {}", args.tarball.display()))?;
        import::import(&store, f, name.as_ref(), &opts)
            .with_context(|| format!("importing {}", args.tarball.display()))?
    };
    println!("{}", imported.id);
    Ok(0)
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Output format: `table` (default) or `json` (one JSON object per line, like docker's `{{json .}}`).
    #[arg(long, default_value = "table")]
    format: String,
    /// Only show image ids.
    #[arg(short, long)]
    quiet: bool,
    /// Show full image ids.
    #[arg(long)]
    no_trunc: bool,
    /// Show digests.
    #[arg(long)]
    digests: bool,
}

pub fn images(store: &StoreArgs, args: ImagesArgs) -> anyhow::Result<i32> {
    let store = store.open()?;
    let rows = inspect::image_rows(&store)?;
    let short = |id: &str| -> String {
        if args.no_trunc {
            id.to_owned()
        } else {
            id.trim_start_matches("sha256:").chars().take(12).collect()
        }
    };
    if args.quiet {
        let mut seen = Vec::new();
        for r in &rows {
            let id = short(&r.id);
            if !seen.contains(&id) {
                println!("{id}");
                seen.push(id);
            }
        }
        return Ok(0);
    }
    match args.format.as_str() {
        "json" => {
            for r in &rows {
                println!("{}", serde_json::to_string(r)?);
            }
        }
        "table" => {
            let mut header = vec!["REPOSITORY", "TAG"];
            if args.digests {
                header.push("DIGEST");
            }
            header.extend(["IMAGE ID", "CREATED", "SIZE"]);
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    let mut row = vec![r.repository.clone(), r.tag.clone()];
                    if args.digests {
                        row.push(r.digest.clone());
                    }
                    row.extend([short(&r.id), human_age(&r.created_at), human_size(r.size)]);
                    row
                })
                .collect();
            print_table(&header, &table);
        }
        other => bail!("unknown --format {other:?} (expected table or json)"),
    }
    Ok(0)
}

#[derive(Debug, Args)]
pub struct TagArgs {
    /// Existing image (name, id or digest).
    source: String,
    /// New name.
    target: String,
}

pub fn tag(store: &StoreArgs, args: TagArgs) -> anyhow::Result<i32> {
    let store = store.open()?;
    let rec = store.find(&args.source)?;
    let target = Reference::parse(&args.target)?;
    if target.digest().is_some() {
        bail!("cannot tag with a digest reference: {}", args.target);
    }
    let guard = store.write_guard()?;
    store.tag(&guard, &rec.descriptor, &target)?;
    Ok(0)
}

#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Remove the image even if several names point at it.
    #[arg(short, long)]
    force: bool,
    /// Images to remove (names, ids or digests).
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

pub fn rmi(store: &StoreArgs, args: RmiArgs) -> anyhow::Result<i32> {
    let store = store.open()?;
    let mut failed = false;
    for input in &args.images {
        match rmi_one(&store, input, args.force) {
            Ok(()) => {}
            Err(e) => {
                eprintln!("Error response: {e:#}");
                failed = true;
            }
        }
    }
    let report = super::util::collect(&store)?;
    for d in &report.removed_blobs {
        println!("Deleted: {d}");
    }
    Ok(if failed { 1 } else { 0 })
}

fn rmi_one(store: &berth_image::ImageStore, input: &str, force: bool) -> anyhow::Result<()> {
    let rec = store.find(input)?;
    // A name removes that name; an id or digest removes the image.
    if let Ok(r) = Reference::parse(input)
        && r.digest().is_none()
        && rec.names.contains(&r)
    {
        store.untag(&r)?;
        println!("Untagged: {}", r.familiar());
        return Ok(());
    }
    if rec.names.len() > 1 && !force {
        return Err(berth_image::Error::MultipleTags {
            reference: input.to_owned(),
            tags: rec
                .names
                .iter()
                .map(Reference::familiar)
                .collect::<Vec<_>>()
                .join(", "),
        }
        .into());
    }
    for n in store.remove_image(&rec.descriptor.digest)? {
        println!("Untagged: {}", n.familiar());
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Platform for multi-platform images (default: the host's).
    #[arg(long)]
    platform: Option<String>,
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,
}

pub fn inspect_cmd(store: &StoreArgs, args: InspectArgs) -> anyhow::Result<i32> {
    let store = store.open()?;
    let platform = args.platform.as_deref().map(str::parse).transpose()?;
    let mut out = Vec::new();
    let mut code = 0;
    for input in &args.images {
        match store
            .find(input)
            .and_then(|rec| store.resolve(&rec, platform.as_ref()))
            .and_then(|img| inspect::inspect_json(&store, &img))
        {
            Ok(v) => out.push(v),
            Err(e) => {
                eprintln!("Error: {e}");
                code = 1;
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(code)
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Don't truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// `table` or `json` (one object per line).
    #[arg(long, default_value = "table")]
    format: String,
    image: String,
}

pub fn history(store: &StoreArgs, args: HistoryArgs) -> anyhow::Result<i32> {
    let store = store.open()?;
    let rec = store.find(&args.image)?;
    let img = store.resolve(&rec, None)?;
    let rows = inspect::history_rows(&store, &img)?;
    match args.format.as_str() {
        "json" => {
            for r in &rows {
                println!("{}", serde_json::to_string(r)?);
            }
        }
        "table" => {
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    let id = if args.no_trunc || r.id == "<missing>" {
                        r.id.clone()
                    } else {
                        r.id.trim_start_matches("sha256:")
                            .chars()
                            .take(12)
                            .collect()
                    };
                    let by = if args.no_trunc || r.created_by.chars().count() <= 45 {
                        r.created_by.clone()
                    } else {
                        format!("{}…", r.created_by.chars().take(44).collect::<String>())
                    };
                    vec![
                        id,
                        human_age(&r.created_at),
                        by,
                        human_size(r.size),
                        r.comment.clone(),
                    ]
                })
                .collect();
            print_table(
                &["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
                &table,
            );
        }
        other => bail!("unknown --format {other:?} (expected table or json)"),
    }
    Ok(0)
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all images, not only dangling ones.
    #[arg(short, long)]
    all: bool,
    /// Do not prompt (berth never prompts; accepted for docker compatibility).
    #[arg(short, long)]
    force: bool,
}

pub fn prune(store: &StoreArgs, args: PruneArgs) -> anyhow::Result<i32> {
    let _ = args.force;
    let store = store.open()?;
    let removed = store.prune_images(args.all)?;
    if !removed.is_empty() {
        println!("Deleted Images:");
    }
    for d in &removed {
        println!("untagged: {d}");
    }
    let report = super::util::collect(&store)?;
    for d in &report.removed_blobs {
        println!("deleted: {d}");
    }
    println!(
        "\nTotal reclaimed space: {}",
        human_size(report.reclaimed_bytes)
    );
    Ok(0)
}
