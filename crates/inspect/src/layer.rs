//! One layer read from its tar stream into a [`LayerTree`]: every path with
//! its metadata and a 128-bit content hash. File bytes are hashed as they
//! stream past and then dropped, so memory grows with the number of paths,
//! never with the number of bytes.
//!
//! The tree keeps whiteouts (`.wh.NAME`) as nodes under their own name, as
//! dive does, and records opaque markers (`.wh..wh..opq`) as a flag on the
//! directory that holds them instead of as nodes.

use std::collections::BTreeMap;
use std::io::{self, Read};

use serde::Serialize;

/// Prefix of a whiteout entry's name.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// Name of the opaque-directory marker.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// Prefix of AUFS metadata names; dive drops every path with one.
pub const META_PREFIX: &str = ".wh..wh.";

/// Index of a node in a tree's arena. Node 0 is the root.
pub type NodeId = u32;

/// What kind of file a tar entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Hardlink,
    Char,
    Block,
    Fifo,
    Other,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::File => "regular file",
            Kind::Dir => "directory",
            Kind::Symlink => "symbolic link",
            Kind::Hardlink => "hard link",
            Kind::Char => "character device",
            Kind::Block => "block device",
            Kind::Fifo => "fifo",
            Kind::Other => "special file",
        }
    }
}

/// The metadata of one tar entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub kind: Kind,
    /// Bytes of file data: the tar entry size for regular files, 0 for every
    /// header-only type (directories, links, devices, fifos).
    pub size: u64,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Target of a symbolic or hard link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<Box<str>>,
    /// xxh3-128 of the file data (0 for everything but regular files).
    #[serde(skip)]
    pub hash: u128,
}

/// How a later copy of a path differs from the one it replaces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Type, data or link target differ.
    pub content: bool,
    /// Permission bits differ.
    pub mode: bool,
    /// Owner or group differ.
    pub owner: bool,
}

impl Change {
    pub fn between(old: &Entry, new: &Entry) -> Change {
        Change {
            content: old.kind != new.kind || old.hash != new.hash || old.link != new.link,
            mode: old.mode != new.mode,
            owner: old.uid != new.uid || old.gid != new.gid,
        }
    }

    pub fn any(self) -> bool {
        self.content || self.mode || self.owner
    }

    /// Only the mode or the owner changed: a `chmod`/`chown` that copied the data.
    pub fn metadata_only(self) -> bool {
        !self.content && (self.mode || self.owner)
    }
}

/// One node of a [`LayerTree`].
#[derive(Debug, Clone)]
pub struct LayerNode {
    pub name: Box<str>,
    pub parent: NodeId,
    pub children: BTreeMap<Box<str>, NodeId>,
    /// `None` for a parent directory the tar did not list.
    pub entry: Option<Entry>,
    /// The directory held an opaque marker.
    pub opaque: bool,
}

impl LayerNode {
    pub fn is_whiteout(&self) -> bool {
        self.name.starts_with(WHITEOUT_PREFIX)
    }
}

/// The paths of one layer.
#[derive(Debug, Clone)]
pub struct LayerTree {
    nodes: Vec<LayerNode>,
    /// Number of tar entries (metadata-only entries such as PAX headers excluded).
    pub entries: u64,
    /// Sum of the entries' sizes (dive's layer size).
    pub size: u64,
    /// Entries replaced by a later entry for the same path in this same
    /// layer: (path, size). Extraction keeps only the last one.
    pub shadowed: Vec<(String, u64)>,
    /// Paths that hard links in this layer point at.
    pub link_targets: std::collections::HashSet<String>,
}

impl Default for LayerTree {
    fn default() -> LayerTree {
        LayerTree {
            nodes: vec![LayerNode {
                name: "".into(),
                parent: 0,
                children: BTreeMap::new(),
                entry: None,
                opaque: false,
            }],
            entries: 0,
            size: 0,
            shadowed: Vec::new(),
            link_targets: Default::default(),
        }
    }
}

/// Splits a tar path into clean components, like Go's `path.Clean` followed
/// by dive's split on `/` (`.` and empty components vanish, `..` pops).
pub fn components(path: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// `/a/b` for components `[a, b]`.
pub fn join(components: &[&str]) -> String {
    let mut s = String::new();
    for c in components {
        s.push('/');
        s.push_str(c);
    }
    if s.is_empty() {
        s.push('/');
    }
    s
}

impl LayerTree {
    /// Reads a layer from an uncompressed tar stream.
    pub fn read<R: Read>(reader: R) -> io::Result<LayerTree> {
        let mut tree = LayerTree::default();
        let mut archive = tar::Archive::new(reader);
        let mut buf = vec![0u8; 64 * 1024];
        for entry in archive.entries()? {
            let mut entry = entry?;
            let header = entry.header();
            let kind = match header.entry_type() {
                tar::EntryType::Regular
                | tar::EntryType::Continuous
                | tar::EntryType::GNUSparse => Kind::File,
                tar::EntryType::Directory => Kind::Dir,
                tar::EntryType::Symlink => Kind::Symlink,
                tar::EntryType::Link => Kind::Hardlink,
                tar::EntryType::Char => Kind::Char,
                tar::EntryType::Block => Kind::Block,
                tar::EntryType::Fifo => Kind::Fifo,
                tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => continue,
                _ => Kind::Other,
            };
            let mode = header.mode().unwrap_or(0) & 0o7777;
            let uid = header.uid().unwrap_or(0);
            let gid = header.gid().unwrap_or(0);
            let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let link = entry
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned().into_boxed_str());
            let (size, hash) = if kind == Kind::File {
                let mut h = twox_hash::XxHash3_128::new();
                let mut n = 0u64;
                loop {
                    let k = entry.read(&mut buf)?;
                    if k == 0 {
                        break;
                    }
                    h.write(&buf[..k]);
                    n += k as u64;
                }
                (n, h.finish_128())
            } else {
                (0, 0)
            };
            if kind == Kind::Hardlink
                && let Some(l) = &link
            {
                tree.link_targets.insert(join(&components(l)));
            }
            tree.entries += 1;
            tree.size += size;
            tree.insert(
                &path,
                Entry {
                    kind,
                    size,
                    mode,
                    uid,
                    gid,
                    link,
                    hash,
                },
            );
        }
        Ok(tree)
    }

    /// Adds one entry at `path`, creating unlisted parents as dive's
    /// `FileTree.AddPath` does (and stopping at AUFS metadata names).
    pub fn insert(&mut self, path: &str, entry: Entry) {
        let comps = components(path);
        if comps.is_empty() {
            return;
        }
        let mut cur: NodeId = 0;
        for (i, name) in comps.iter().enumerate() {
            if name.starts_with(META_PREFIX) {
                if i + 1 == comps.len() && *name == OPAQUE_MARKER {
                    self.nodes[cur as usize].opaque = true;
                }
                return;
            }
            cur = match self.nodes[cur as usize].children.get(*name) {
                Some(&id) => id,
                None => {
                    let id = self.nodes.len() as NodeId;
                    self.nodes.push(LayerNode {
                        name: (*name).into(),
                        parent: cur,
                        children: BTreeMap::new(),
                        entry: None,
                        opaque: false,
                    });
                    self.nodes[cur as usize].children.insert((*name).into(), id);
                    id
                }
            };
        }
        let node = &mut self.nodes[cur as usize];
        if let Some(old) = node.entry.replace(entry)
            && old.size > 0
        {
            self.shadowed.push((join(&comps), old.size));
        }
    }

    pub fn root(&self) -> NodeId {
        0
    }

    pub fn node(&self, id: NodeId) -> &LayerNode {
        &self.nodes[id as usize]
    }

    /// Number of nodes (listed entries and implied parents), root excluded.
    pub fn len(&self) -> usize {
        self.nodes.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.len() == 1
    }

    /// The path of a node (`/a/b`), with a whiteout's `.wh.` prefix kept.
    pub fn path(&self, id: NodeId) -> String {
        let mut names = Vec::new();
        let mut cur = id;
        while cur != 0 {
            names.push(&*self.nodes[cur as usize].name);
            cur = self.nodes[cur as usize].parent;
        }
        names.reverse();
        join(&names)
    }

    /// Looks a path up.
    pub fn find(&self, path: &str) -> Option<NodeId> {
        let mut cur: NodeId = 0;
        for c in components(path) {
            cur = *self.nodes[cur as usize].children.get(c)?;
        }
        Some(cur)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_clean_like_go() {
        assert_eq!(components("./a//b/./c/"), ["a", "b", "c"]);
        assert_eq!(components("/a/../b"), ["b"]);
        assert!(components("./").is_empty());
        assert_eq!(join(&[]), "/");
        assert_eq!(join(&["a", "b"]), "/a/b");
    }
}
