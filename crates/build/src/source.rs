//! Selecting what a COPY or ADD reads: sources with wildcards, top-level
//! symlinks followed, `--parents` (with the `/./` pivot and `**`) and
//! `--exclude`, from the build context or from a materialised file system
//! (a stage or an image).
//!
//! The result, a list of [`Selected`] items, is both what the cache key
//! hashes (for the context) and what the copy executes, so the key covers
//! exactly the files the step writes.
//!
//! Rules, as BuildKit's file operation applies them:
//! - a source path is cleaned; in the context `..` that leaves the root is
//!   refused (BuildKit silently clamps it; we prefer an error), in an image
//!   file system it stays at `/`;
//! - a source without wildcards must exist; wildcards (Go `filepath.Match`,
//!   `*` never crosses `/`) may match nothing;
//! - every matched path is resolved through symlinks (all components),
//!   confined to its tree: a context symlink leading outside the context is
//!   an error, an image's is clamped to its root as in `chroot`;
//! - a directory's contents are copied, not the directory itself.

use std::fs;
use std::path::{Path, PathBuf};

use berth_dockerignore::{EntryKind, IgnoreMatcher};

use crate::context::{Context, glob_component};

/// Where sources are read from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Tree<'a> {
    Context(&'a Context),
    /// A materialised file system (a stage's or an image's root).
    Dir(&'a Path),
}

/// One matched source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selected {
    /// The name the item takes inside a directory destination (the base
    /// name of the path as matched, before following symlinks).
    pub name: String,
    /// Its path in the tree after following symlinks (`""` is the root).
    pub path: String,
    pub kind: EntryKind,
    /// For a directory: what is copied below it, relative to `path`, parents
    /// before children (after `--exclude` and `--parents` filtering).
    pub below: Vec<(String, EntryKind)>,
}

/// How to select.
#[derive(Debug, Clone, Default)]
pub(crate) struct Selection<'a> {
    pub parents: bool,
    pub excludes: &'a [String],
}

fn has_magic(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'*' | b'?' | b'[' => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

impl<'a> Tree<'a> {
    fn strict(&self) -> bool {
        matches!(self, Tree::Context(_))
    }

    fn where_(&self) -> &'static str {
        match self {
            Tree::Context(_) => "in the build context",
            Tree::Dir(_) => "in the source image",
        }
    }

    /// The kind of `rel` without following a final symlink.
    pub(crate) fn lstat(&self, rel: &str) -> Option<EntryKind> {
        match self {
            Tree::Context(c) => c.kind(rel),
            Tree::Dir(root) => {
                let md = fs::symlink_metadata(root.join(rel)).ok()?;
                let ft = md.file_type();
                Some(if ft.is_dir() {
                    EntryKind::Dir
                } else if ft.is_symlink() {
                    EntryKind::Symlink
                } else if ft.is_file() {
                    EntryKind::File
                } else {
                    EntryKind::Other
                })
            }
        }
    }

    fn read_link(&self, rel: &str) -> Option<String> {
        let root = match self {
            Tree::Context(c) => c.root(),
            Tree::Dir(r) => r,
        };
        fs::read_link(root.join(rel))
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    }

    /// Absolute path of `rel` on the host.
    pub(crate) fn host_path(&self, rel: &str) -> PathBuf {
        match self {
            Tree::Context(c) => c.root().join(rel),
            Tree::Dir(r) => r.join(rel),
        }
    }

    /// Everything below directory `rel` (relative names), parents first, sorted.
    fn walk(&self, rel: &str) -> Vec<(String, EntryKind)> {
        match self {
            Tree::Context(c) => {
                let skip = if rel.is_empty() { 0 } else { rel.len() + 1 };
                c.below(rel)
                    .filter(|(p, _)| p.len() > rel.len())
                    .map(|(p, k)| (p[skip..].to_owned(), k))
                    .collect()
            }
            Tree::Dir(root) => {
                let mut out = Vec::new();
                walk_dir(&root.join(rel), "", &mut out);
                out
            }
        }
    }

    /// Children names of directory `rel`, sorted.
    fn children(&self, rel: &str) -> Vec<String> {
        match self {
            Tree::Context(c) => {
                let skip = if rel.is_empty() { 0 } else { rel.len() + 1 };
                c.below(rel)
                    .filter(|(p, _)| p.len() > rel.len() && !p[skip..].contains('/'))
                    .map(|(p, _)| p[skip..].to_owned())
                    .collect()
            }
            Tree::Dir(root) => {
                let mut v: Vec<String> = fs::read_dir(root.join(rel))
                    .map(|rd| {
                        rd.filter_map(|e| e.ok())
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                v.sort();
                v
            }
        }
    }

    /// Resolves `rel` through symlinks in every component (the last one
    /// too), confined to the tree. Returns the resolved path, or an error
    /// message if a symlink leaves a strict tree or loops.
    pub(crate) fn follow(&self, rel: &str) -> Result<String, String> {
        let mut todo: Vec<String> = rel
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .map(str::to_owned)
            .rev()
            .collect();
        let mut done: Vec<String> = Vec::new();
        let mut links = 0;
        while let Some(c) = todo.pop() {
            if c == ".." {
                if done.pop().is_none() && self.strict() {
                    return Err(format!("{rel:?} leads outside the build context"));
                }
                continue;
            }
            done.push(c);
            let cur = done.join("/");
            if self.lstat(&cur) == Some(EntryKind::Symlink) {
                links += 1;
                if links > 255 {
                    return Err(format!("too many levels of symbolic links in {rel:?}"));
                }
                let target = self.read_link(&cur).unwrap_or_default();
                done.pop();
                if target.starts_with('/') {
                    if self.strict() {
                        return Err(format!(
                            "{rel:?} is a symbolic link to {target:?}, outside the build context"
                        ));
                    }
                    done.clear();
                }
                for t in target
                    .split('/')
                    .filter(|c| !c.is_empty() && *c != ".")
                    .rev()
                {
                    todo.push(t.to_owned());
                }
            }
        }
        Ok(done.join("/"))
    }

    /// Cleans a source path; `..` above the root is an error in the context.
    fn clean(&self, src: &str) -> Result<String, String> {
        let mut out: Vec<&str> = Vec::new();
        for part in src.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    if out.pop().is_none() && self.strict() {
                        return Err(format!(
                            "{src:?} is outside the build context (forbidden path)"
                        ));
                    }
                }
                p => out.push(p),
            }
        }
        Ok(out.join("/"))
    }

    /// Paths matching a pattern whose wildcards may span several
    /// components (each matched with Go's rules); a matching directory is
    /// not descended into.
    fn glob(&self, prefix: &str, pattern: &[&str], out: &mut Vec<String>) {
        let Some((first, rest)) = pattern.split_first() else {
            return;
        };
        let dir = match self.follow(prefix) {
            Ok(d) => d,
            Err(_) => return,
        };
        if self.lstat(&dir) != Some(EntryKind::Dir) && !dir.is_empty() {
            return;
        }
        for name in self.children(&dir) {
            if !glob_component(first, &name) {
                continue;
            }
            let p = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            if rest.is_empty() {
                out.push(p);
            } else {
                self.glob(&p, rest, out);
            }
        }
    }

    /// Selects the sources of one COPY/ADD. Errors are messages for the
    /// user (the caller adds the Dockerfile line).
    pub(crate) fn select(
        &self,
        sources: &[String],
        how: &Selection<'_>,
    ) -> Result<Vec<Selected>, String> {
        let excludes = if how.excludes.is_empty() {
            None
        } else {
            Some(
                IgnoreMatcher::from_patterns(how.excludes.iter().map(String::as_str))
                    .map_err(|e| format!("invalid --exclude pattern: {e}"))?,
            )
        };
        let mut out = Vec::new();
        for src in sources {
            if how.parents {
                out.push(self.select_parents(src, excludes.as_ref())?);
                continue;
            }
            let clean = self.clean(src)?;
            let matches = if has_magic(&clean) {
                let comps: Vec<&str> = clean.split('/').collect();
                let fixed = comps.iter().take_while(|c| !has_magic(c)).count();
                let mut m = Vec::new();
                self.glob(&comps[..fixed].join("/"), &comps[fixed..], &mut m);
                m
            } else {
                vec![clean]
            };
            for m in matches {
                let path = self.follow(&m)?;
                let kind = match self.lstat(&path) {
                    Some(k) => k,
                    None if path.is_empty() => EntryKind::Dir,
                    None => {
                        return Err(if m == path {
                            format!("{src:?} not found {}", self.where_())
                        } else {
                            format!(
                                "{src:?} is a symbolic link to {path:?}, which is not {}",
                                self.where_().trim_start_matches("in ")
                            )
                        });
                    }
                };
                let name = m.rsplit('/').next().unwrap_or("").to_owned();
                // An excluded top-level match is skipped entirely (the
                // patterns are relative to where the match was found).
                if let Some(x) = &excludes
                    && !name.is_empty()
                    && x.matches(&name, kind == EntryKind::Dir)
                {
                    continue;
                }
                let below = if kind == EntryKind::Dir {
                    filter_excluded(self.walk(&path), excludes.as_ref())
                } else {
                    Vec::new()
                };
                out.push(Selected {
                    name,
                    path,
                    kind,
                    below,
                });
            }
        }
        Ok(out)
    }

    /// `--parents`: `dir/./pattern` keeps the structure below `dir`; without
    /// a pivot the structure below the root.
    fn select_parents(
        &self,
        src: &str,
        excludes: Option<&IgnoreMatcher>,
    ) -> Result<Selected, String> {
        let (parent, pattern) = match src.split_once("/./") {
            Some((p, pat)) => (p, pat),
            None => ("", src),
        };
        let parent = self.follow(&self.clean(parent)?)?;
        let pattern = self.clean(pattern)?;
        if !has_magic(&pattern) {
            let p = if parent.is_empty() {
                pattern.clone()
            } else {
                format!("{parent}/{pattern}")
            };
            if self.lstat(&p).is_none() {
                return Err(format!("{src:?} not found {}", self.where_()));
            }
        }
        let include = IgnoreMatcher::from_patterns([pattern.as_str()])
            .map_err(|e| format!("invalid source pattern {src:?}: {e}"))?;
        let all = self.walk(&parent);
        let mut keep: std::collections::BTreeSet<String> = Default::default();
        for (rel, _) in &all {
            if include.matches_or_parent_matches(rel) {
                // The entry and every directory above it.
                let mut p = rel.as_str();
                keep.insert(p.to_owned());
                while let Some((up, _)) = p.rsplit_once('/') {
                    keep.insert(up.to_owned());
                    p = up;
                }
            }
        }
        let below: Vec<(String, EntryKind)> =
            all.into_iter().filter(|(r, _)| keep.contains(r)).collect();
        Ok(Selected {
            name: String::new(),
            path: parent,
            kind: EntryKind::Dir,
            below: filter_excluded(below, excludes),
        })
    }
}

/// Drops excluded entries, and everything below an excluded directory.
fn filter_excluded(
    entries: Vec<(String, EntryKind)>,
    excludes: Option<&IgnoreMatcher>,
) -> Vec<(String, EntryKind)> {
    let Some(x) = excludes else {
        return entries;
    };
    let mut out = Vec::with_capacity(entries.len());
    let mut pruned: Option<String> = None;
    for (rel, kind) in entries {
        if let Some(p) = &pruned
            && rel.starts_with(p.as_str())
        {
            continue;
        }
        if x.matches(&rel, kind == EntryKind::Dir) {
            if kind == EntryKind::Dir {
                pruned = Some(format!("{rel}/"));
            }
            continue;
        }
        out.push((rel, kind));
    }
    out
}

fn walk_dir(abs: &Path, rel: &str, out: &mut Vec<(String, EntryKind)>) {
    let Ok(rd) = fs::read_dir(abs) else {
        return;
    };
    let mut names: Vec<_> = rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
    names.sort();
    for n in names {
        let name = n.to_string_lossy();
        let r = if rel.is_empty() {
            name.into_owned()
        } else {
            format!("{rel}/{name}")
        };
        let p = abs.join(&n);
        let Ok(md) = fs::symlink_metadata(&p) else {
            continue;
        };
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            EntryKind::Dir
        } else if ft.is_symlink() {
            EntryKind::Symlink
        } else if ft.is_file() {
            EntryKind::File
        } else {
            EntryKind::Other
        };
        out.push((r.clone(), kind));
        if kind == EntryKind::Dir {
            walk_dir(&p, &r, out);
        }
    }
}
