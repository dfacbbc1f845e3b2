//! `berth system df` and `berth system check`.

use berth_content::ContentStore as _;
use clap::Args;

use super::util::{StoreArgs, human_size, print_table};

pub fn df(store: &StoreArgs) -> anyhow::Result<i32> {
    let store = store.open()?;
    let images = store.images()?;
    let blobs = store.content().list()?;
    let total: u64 = blobs.iter().map(|b| b.size).sum();
    let report = store.gc_with(true, &super::util::gc_roots())?;
    let dangling = images.iter().filter(|i| i.names.is_empty()).count();
    // The build cache: its records, the layers they keep, and which of those
    // only the cache keeps (what `berth builder prune` would reclaim).
    use berth_image::GcRoots as _;
    let cache_layers: std::collections::BTreeSet<_> = berth_build::BuildCacheRoots
        .roots(store.root())
        .map_err(|e| anyhow::anyhow!("reading the build cache: {e}"))?
        .into_iter()
        .collect();
    let records = std::fs::read_dir(store.root().join("buildcache"))
        .map(|d| d.count())
        .unwrap_or(0);
    let size_of =
        |d: &berth_oci::Digest| store.content().info(d).ok().flatten().map_or(0, |i| i.size);
    let cache_size: u64 = cache_layers.iter().map(size_of).sum();
    let without_cache = store.gc_with(true, &[&berth_registry::RegistryRoots])?;
    let cache_only: u64 = without_cache
        .removed_blobs
        .iter()
        .filter(|d| cache_layers.contains(*d))
        .map(size_of)
        .sum();
    let rows = vec![
        vec![
            "Images".to_owned(),
            images.len().to_string(),
            (images.len() - dangling).to_string(),
            human_size(total),
            format!(
                "{} (unreferenced blobs)",
                human_size(report.reclaimed_bytes)
            ),
        ],
        vec![
            "Build Cache".to_owned(),
            records.to_string(),
            "0".to_owned(),
            human_size(cache_size),
            human_size(cache_only),
        ],
        snapshots_row(store.root()),
    ];
    print_table(&["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], &rows);
    Ok(0)
}

/// Extracted layers kept for builds (all reclaimable: remade on demand).
fn snapshots_row(root: &std::path::Path) -> Vec<String> {
    let dir = berth_build::snapshots::snapshots_dir(root);
    let count = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .count()
        })
        .unwrap_or(0);
    let size = human_size(berth_build::snapshots::disk_usage(root));
    vec![
        "Layer Snapshots".to_owned(),
        count.to_string(),
        "0".to_owned(),
        size.clone(),
        size,
    ]
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Print a JSON report.
    #[arg(long)]
    json: bool,
}

pub fn check(store: &StoreArgs, args: CheckArgs) -> anyhow::Result<i32> {
    let store = store.open()?;
    let r = store.check_with(&super::util::gc_roots())?;
    if args.json {
        let pairs = |v: &[(berth_oci::Digest, String)]| {
            v.iter()
                .map(|(d, w)| serde_json::json!({"digest": d.to_string(), "problem": w}))
                .collect::<Vec<_>>()
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "ok": r.is_ok(),
                "blobs_checked": r.blobs_checked,
                "bytes_checked": r.bytes_checked,
                "corrupt": pairs(&r.corrupt),
                "missing": pairs(&r.missing),
                "invalid": pairs(&r.invalid),
                "unreferenced": r.unreferenced.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "stale_ingests": r.stale_ingests,
            }))?
        );
    } else {
        println!(
            "checked {} blobs ({})",
            r.blobs_checked,
            human_size(r.bytes_checked)
        );
        for (d, why) in &r.corrupt {
            println!("CORRUPT  {d}: {why}");
        }
        for (d, why) in &r.missing {
            println!("MISSING  {d}: {why}");
        }
        for (d, why) in &r.invalid {
            println!("INVALID  {d}: {why}");
        }
        if !r.unreferenced.is_empty() {
            println!(
                "{} unreferenced blobs (reclaim with `berth image prune`)",
                r.unreferenced.len()
            );
        }
        if r.stale_ingests > 0 {
            println!(
                "{} leftover files of interrupted writes (reclaim with `berth image prune`)",
                r.stale_ingests
            );
        }
        println!(
            "{}",
            if r.is_ok() {
                "store OK"
            } else {
                "store has problems"
            }
        );
    }
    Ok(if r.is_ok() { 0 } else { 1 })
}
