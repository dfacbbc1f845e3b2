//! Small helpers shared by subcommands: opening the store, human formatting.

use std::path::PathBuf;

use anyhow::Context as _;
use berth_image::ImageStore;

/// Options every store-using command accepts.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Store root (default: $BERTH_ROOT, /var/lib/berth as root, else ~/.local/share/berth).
    #[arg(long, global = true, env = "BERTH_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
}

impl StoreArgs {
    pub fn open(&self) -> anyhow::Result<ImageStore> {
        let root = self
            .root
            .clone()
            .unwrap_or_else(berth_image::store::default_root);
        ImageStore::open(&root).with_context(|| format!("opening the store at {}", root.display()))
    }
}

/// Everything besides images that keeps blobs of the store alive: image GC
/// (`rmi`, `image prune`, `system df`, `system check`) must respect these.
pub fn gc_roots() -> [&'static dyn berth_image::GcRoots; 2] {
    [
        &berth_registry::RegistryRoots,
        &berth_build::BuildCacheRoots,
    ]
}

/// The image GC with every root, then the build snapshots of layers it
/// removed (their size counts as reclaimed).
pub fn collect(store: &berth_image::ImageStore) -> anyhow::Result<berth_image::GcReport> {
    let mut report = store.gc_with(false, &gc_roots())?;
    let snaps = berth_build::snapshots::prune(store, false)?;
    report.reclaimed_bytes += snaps.bytes;
    Ok(report)
}

/// Sizes as docker prints them (decimal units, 3 significant digits).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        return format!("{bytes}B");
    }
    let s = if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    format!(
        "{}{}",
        s.trim_end_matches('0').trim_end_matches('.'),
        UNITS[unit]
    )
}

/// "3 days ago"-style age of an RFC 3339 timestamp.
pub fn human_age(rfc3339: &str) -> String {
    let Ok(t) =
        time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
    else {
        return "N/A".into();
    };
    let secs = (time::OffsetDateTime::now_utc() - t).whole_seconds();
    if secs < 0 {
        return "in the future".into();
    }
    let (n, unit) = match secs {
        s if s < 60 => return "Less than a minute ago".into(),
        s if s < 3600 => (s / 60, "minute"),
        s if s < 86_400 => (s / 3600, "hour"),
        s if s < 86_400 * 14 => (s / 86_400, "day"),
        s if s < 86_400 * 60 => (s / (86_400 * 7), "week"),
        s if s < 86_400 * 365 * 2 => (s / (86_400 * 30), "month"),
        s => (s / (86_400 * 365), "year"),
    };
    if n == 1 {
        format!(
            "{} {unit} ago",
            if unit == "hour" { "About an" } else { "1" }
        )
    } else {
        format!("{n} {unit}s ago")
    }
}

/// Prints rows as a left-aligned table with docker's three-space gutters.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}   ", w = widths[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_261_000), "4.26MB");
        assert_eq!(human_size(12_345_678), "12.3MB");
        assert_eq!(human_size(127_000_000), "127MB");
        assert_eq!(human_size(1_000), "1kB");
    }
}
