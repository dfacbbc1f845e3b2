//! Listing a build context the way Docker's context transfer walks it.

use std::path::{Path, PathBuf};

use crate::{IgnoreMatcher, MatchInfo};

/// What a context entry is (symlinks are reported, never followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A device, socket or FIFO.
    Other,
}

/// One entry sent to the builder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextEntry {
    /// Relative to the context root, `/`-separated.
    pub path: String,
    /// What it is.
    pub kind: EntryKind,
}

/// A file system error while walking.
#[derive(Debug, thiserror::Error)]
#[error("walking build context at {}: {source}", path.display())]
pub struct WalkError {
    /// The path that could not be read.
    pub path: PathBuf,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

/// Lists what Docker would send from `root` with `matcher`: entries in walk
/// order (names sorted bytewise within a directory, parents before
/// children). Excluded directories are not entered when no exception could
/// re-include something inside them; an excluded directory that does hold
/// a re-included entry is listed just before its first included descendant,
/// as fsutil does.
pub fn walk_context(root: &Path, matcher: &IgnoreMatcher) -> Result<Vec<ContextEntry>, WalkError> {
    walk_context_with_stats(root, matcher).map(|(entries, _)| entries)
}

/// How much work a walk did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalkStats {
    /// Directories whose listing was read (the root included).
    pub dirs_read: usize,
    /// Directory entries matched against the patterns.
    pub entries_matched: usize,
}

/// [`walk_context`], also reporting how much of the tree was visited (to
/// check that excluded directories are pruned).
pub fn walk_context_with_stats(
    root: &Path,
    matcher: &IgnoreMatcher,
) -> Result<(Vec<ContextEntry>, WalkStats), WalkError> {
    let mut out = Vec::new();
    let mut pending: Vec<(String, EntryKind)> = Vec::new();
    let mut stats = WalkStats::default();
    walk_dir(root, "", None, matcher, &mut pending, &mut out, &mut stats)?;
    Ok((out, stats))
}

fn walk_dir(
    abs: &Path,
    rel: &str,
    parent: Option<&MatchInfo>,
    matcher: &IgnoreMatcher,
    pending: &mut Vec<(String, EntryKind)>,
    out: &mut Vec<ContextEntry>,
    stats: &mut WalkStats,
) -> Result<(), WalkError> {
    let err = |source| WalkError {
        path: abs.to_owned(),
        source,
    };
    stats.dirs_read += 1;
    let mut entries: Vec<(Vec<u8>, std::fs::DirEntry)> = Vec::new();
    for e in std::fs::read_dir(abs).map_err(err)? {
        let e = e.map_err(err)?;
        entries.push((e.file_name().into_encoded_bytes(), e));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, entry) in entries {
        let name = String::from_utf8_lossy(&name);
        let path = if rel.is_empty() {
            name.into_owned()
        } else {
            format!("{rel}/{name}")
        };
        let ft = entry.file_type().map_err(|source| WalkError {
            path: entry.path(),
            source,
        })?;
        let kind = if ft.is_dir() {
            EntryKind::Dir
        } else if ft.is_file() {
            EntryKind::File
        } else if ft.is_symlink() {
            EntryKind::Symlink
        } else {
            EntryKind::Other
        };
        stats.entries_matched += 1;
        let (excluded, info) = if matcher.is_empty() {
            (false, MatchInfo::default())
        } else {
            matcher.matches_with_parent(&path, parent)
        };
        if kind == EntryKind::Dir {
            if excluded && matcher.can_prune_dir(&path) {
                continue;
            }
            if excluded {
                pending.push((path.clone(), kind));
            } else {
                out.extend(
                    pending
                        .drain(..)
                        .map(|(path, kind)| ContextEntry { path, kind }),
                );
                out.push(ContextEntry {
                    path: path.clone(),
                    kind,
                });
            }
            let depth = pending.len();
            walk_dir(
                &entry.path(),
                &path,
                Some(&info),
                matcher,
                pending,
                out,
                stats,
            )?;
            pending.truncate(
                depth
                    .saturating_sub(usize::from(excluded))
                    .min(pending.len()),
            );
        } else if !excluded {
            out.extend(
                pending
                    .drain(..)
                    .map(|(path, kind)| ContextEntry { path, kind }),
            );
            out.push(ContextEntry { path, kind });
        }
    }
    Ok(())
}
