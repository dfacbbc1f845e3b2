//! The aggregated filesystem: layers applied in order with OCI semantics
//! (whiteouts and opaque directories hide what lower layers shipped; a later
//! entry replaces an earlier one), recording every byte that ships in a layer
//! but not in the result, and why.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use crate::layer::{Change, Entry, Kind, LayerTree, NodeId, WHITEOUT_PREFIX, join};

/// How a node of a view relates to the selected layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Not touched by the selected layer.
    #[default]
    Unchanged,
    /// The path did not exist below the selected layer.
    Added,
    /// The selected layer replaced the path (see the node's `change`; no
    /// flag set means an identical copy).
    Modified,
    /// The selected layer deleted the path (a whiteout, an opaque directory,
    /// or a directory replaced by a file).
    Removed,
}

/// One node of an aggregated tree.
#[derive(Debug, Clone)]
pub struct FsNode {
    pub name: Box<str>,
    pub parent: NodeId,
    pub children: BTreeMap<Box<str>, NodeId>,
    /// `None` for a directory no layer listed (created as a parent).
    pub entry: Option<Entry>,
    /// The layer that supplied this version.
    pub layer: u32,
    pub status: Status,
    pub change: Change,
}

impl FsNode {
    pub fn is_dir(&self) -> bool {
        self.entry.as_ref().is_none_or(|e| e.kind == Kind::Dir)
    }

    pub fn size(&self) -> u64 {
        self.entry.as_ref().map_or(0, |e| e.size)
    }
}

/// Why bytes that a layer ships are not in the final filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WasteReason {
    /// A later layer wrote the same path again with identical data and metadata.
    Duplicate,
    /// A later layer copied the same data only to change mode or owner
    /// (`chmod`/`chown` in a later step).
    MetadataOnly,
    /// A later layer wrote different data (or a different type) at the path.
    Replaced,
    /// A later layer deleted the file (whiteout).
    DeletedFile,
    /// A later layer deleted a whole directory (whiteout of a directory).
    DeletedDir,
    /// A later layer marked the directory opaque, hiding everything below it.
    OpaqueDir,
    /// A later layer replaced a directory by a non-directory.
    DirReplaced,
    /// The same layer lists the path twice; extraction keeps the last.
    SameLayer,
}

/// Bytes shipped but not in the final filesystem, with the event that hid them.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WasteItem {
    /// The path hidden (for directory events, the directory).
    pub path: String,
    /// The layer that shipped the bytes, when they all came from one layer.
    pub layer: Option<u32>,
    /// The layer whose entry hid them.
    pub by_layer: u32,
    pub bytes: u64,
    /// Number of regular files whose data was hidden.
    pub files: u64,
    pub reason: WasteReason,
    /// For [`WasteReason::MetadataOnly`]: what changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<Change>,
    /// A hard link in the shipping layer points at the path; the bytes are
    /// waste only if no such link survives (settled after the last layer).
    #[serde(skip)]
    pub(crate) linked: bool,
}

/// What one layer did to the filesystem below it.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct LayerChanges {
    pub added: u64,
    pub modified: u64,
    pub removed: u64,
    pub added_bytes: u64,
    pub modified_bytes: u64,
    /// Bytes of lower layers (or earlier entries) this layer hid.
    pub hidden_bytes: u64,
}

/// An aggregated tree.
#[derive(Debug, Clone)]
pub struct FsTree {
    nodes: Vec<FsNode>,
}

impl Default for FsTree {
    fn default() -> FsTree {
        FsTree {
            nodes: vec![FsNode {
                name: "".into(),
                parent: 0,
                children: BTreeMap::new(),
                entry: None,
                layer: 0,
                status: Status::Unchanged,
                change: Change::default(),
            }],
        }
    }
}

/// Collects waste and per-layer changes while layers are applied.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    pub waste: Vec<WasteItem>,
    pub changes: LayerChanges,
}

impl FsTree {
    pub fn root(&self) -> NodeId {
        0
    }

    pub fn node(&self, id: NodeId) -> &FsNode {
        &self.nodes[id as usize]
    }

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

    pub fn find(&self, path: &str) -> Option<NodeId> {
        let mut cur: NodeId = 0;
        for c in crate::layer::components(path) {
            cur = *self.nodes[cur as usize].children.get(c)?;
        }
        Some(cur)
    }

    /// Every node reachable from the root, parent first, children sorted.
    pub fn walk(&self) -> Vec<NodeId> {
        let mut out = Vec::new();
        let mut stack = vec![0];
        while let Some(id) = stack.pop() {
            if id != 0 {
                out.push(id);
            }
            stack.extend(self.nodes[id as usize].children.values().rev().copied());
        }
        out
    }

    /// Σ of regular-file sizes under (and including) a node.
    pub fn subtree_size(&self, id: NodeId) -> u64 {
        let mut total = 0;
        let mut stack = vec![id];
        while let Some(n) = stack.pop() {
            total += self.nodes[n as usize].size();
            stack.extend(self.nodes[n as usize].children.values().copied());
        }
        total
    }

    /// Σ of regular-file sizes under (and including) a node, leaving out
    /// what is marked `Removed` unless the node itself is (dive shows a
    /// directory's size that way).
    pub fn visible_size(&self, id: NodeId) -> u64 {
        if self.nodes[id as usize].status == Status::Removed {
            return self.subtree_size(id);
        }
        let mut total = 0;
        let mut stack = vec![id];
        while let Some(n) = stack.pop() {
            let node = &self.nodes[n as usize];
            if node.status == Status::Removed {
                continue;
            }
            total += node.size();
            stack.extend(node.children.values().copied());
        }
        total
    }

    /// For every node, whether it or something below it has a status other
    /// than `Unchanged` (indexed by node id).
    pub fn changed_below(&self) -> Vec<bool> {
        let mut out = vec![false; self.nodes.len()];
        for id in self.walk().into_iter().rev() {
            let n = &self.nodes[id as usize];
            if n.status != Status::Unchanged {
                out[id as usize] = true;
            }
            if out[id as usize] {
                out[n.parent as usize] = true;
            }
        }
        out
    }

    fn push(&mut self, parent: NodeId, name: &str, entry: Option<Entry>, layer: u32) -> NodeId {
        let id = self.nodes.len() as NodeId;
        self.nodes.push(FsNode {
            name: name.into(),
            parent,
            children: BTreeMap::new(),
            entry,
            layer,
            status: Status::Added,
            change: Change::default(),
        });
        self.nodes[parent as usize].children.insert(name.into(), id);
        id
    }

    fn detach(&mut self, id: NodeId) {
        let parent = self.nodes[id as usize].parent;
        let name = self.nodes[id as usize].name.clone();
        self.nodes[parent as usize].children.remove(&name);
    }

    /// Records the data of everything under `id` (itself included when
    /// `include_self`) as hidden by `by_layer`.
    fn hide(
        &self,
        id: NodeId,
        include_self: bool,
        by_layer: u32,
        reason: WasteReason,
        layers: &[&LayerTree],
        rec: &mut Recorder,
    ) {
        let mut bytes = 0;
        let mut files = 0;
        let mut from: Option<Option<u32>> = None;
        let mut stack: Vec<NodeId> = if include_self {
            vec![id]
        } else {
            self.nodes[id as usize].children.values().copied().collect()
        };
        while let Some(n) = stack.pop() {
            let node = &self.nodes[n as usize];
            stack.extend(node.children.values().copied());
            let size = node.size();
            if size == 0 {
                continue;
            }
            let path = self.path(n);
            if layers
                .get(node.layer as usize)
                .is_some_and(|l| l.link_targets.contains(&path))
            {
                rec.waste.push(WasteItem {
                    path,
                    layer: Some(node.layer),
                    by_layer,
                    bytes: size,
                    files: 1,
                    reason,
                    change: None,
                    linked: true,
                });
                continue;
            }
            bytes += size;
            files += 1;
            from = Some(match from {
                None => Some(node.layer),
                Some(Some(l)) if l == node.layer => Some(l),
                Some(_) => None,
            });
        }
        rec.changes.hidden_bytes += bytes;
        if bytes > 0 {
            rec.waste.push(WasteItem {
                path: self.path(id),
                layer: from.flatten(),
                by_layer,
                bytes,
                files,
                reason,
                change: None,
                linked: false,
            });
        }
    }

    /// Applies layer `index`. With `mark`, statuses describe this layer's
    /// changes and deleted paths stay in the tree marked `Removed`.
    pub(crate) fn apply(
        &mut self,
        index: u32,
        layer: &LayerTree,
        layers: &[&LayerTree],
        mark: bool,
        rec: &mut Recorder,
    ) {
        if mark {
            for n in &mut self.nodes {
                n.status = Status::Unchanged;
                n.change = Change::default();
            }
        }
        // Phase 1: whiteouts and opaque markers act on the layers below only.
        let mut removed: Vec<NodeId> = Vec::new();
        let mut deletions: Vec<(Vec<&str>, bool)> = Vec::new();
        let mut stack: Vec<(NodeId, Vec<&str>)> = vec![(layer.root(), Vec::new())];
        while let Some((id, comps)) = stack.pop() {
            let node = layer.node(id);
            if node.opaque {
                deletions.push((comps.clone(), true));
            }
            for (name, &child) in &node.children {
                let mut c = comps.clone();
                if layer.node(child).is_whiteout() {
                    c.push(&name[WHITEOUT_PREFIX.len()..]);
                    deletions.push((c, false));
                } else {
                    c.push(name);
                    stack.push((child, c));
                }
            }
        }
        for (comps, opaque) in deletions {
            let Some(target) = self.find_comps(&comps) else {
                continue;
            };
            if opaque {
                if !self.nodes[target as usize].is_dir() {
                    continue;
                }
                self.hide(target, false, index, WasteReason::OpaqueDir, layers, rec);
                let kids: Vec<NodeId> = self.nodes[target as usize]
                    .children
                    .values()
                    .copied()
                    .collect();
                for k in kids {
                    rec.changes.removed += 1;
                    self.detach(k);
                    removed.push(k);
                }
            } else {
                let reason = if self.nodes[target as usize].is_dir() {
                    WasteReason::DeletedDir
                } else {
                    WasteReason::DeletedFile
                };
                self.hide(target, true, index, reason, layers, rec);
                rec.changes.removed += 1;
                self.detach(target);
                removed.push(target);
            }
        }
        // Phase 2: entries, parents first.
        let mut stack: Vec<(NodeId, NodeId)> = vec![(layer.root(), 0)];
        while let Some((lid, aid)) = stack.pop() {
            for (name, &child) in &layer.node(lid).children {
                let lnode = layer.node(child);
                if lnode.is_whiteout() {
                    continue;
                }
                let existing = self.nodes[aid as usize].children.get(name).copied();
                let id = self.put(aid, name, existing, lnode.entry.clone(), index, layers, rec);
                stack.push((child, id));
            }
        }
        for (path, size) in &layer.shadowed {
            rec.changes.hidden_bytes += size;
            rec.waste.push(WasteItem {
                path: path.clone(),
                layer: Some(index),
                by_layer: index,
                bytes: *size,
                files: 1,
                reason: WasteReason::SameLayer,
                change: None,
                linked: false,
            });
        }
        if mark {
            for id in removed {
                let parent = self.nodes[id as usize].parent;
                let name = self.nodes[id as usize].name.clone();
                if let Some(&now) = self.nodes[parent as usize].children.get(&name) {
                    let n = &mut self.nodes[now as usize];
                    if n.status == Status::Added {
                        n.status = Status::Modified;
                        n.change.content = true;
                    }
                    continue;
                }
                self.nodes[parent as usize].children.insert(name, id);
                let mut stack = vec![id];
                while let Some(n) = stack.pop() {
                    self.nodes[n as usize].status = Status::Removed;
                    stack.extend(self.nodes[n as usize].children.values().copied());
                }
            }
        }
    }

    fn find_comps(&self, comps: &[&str]) -> Option<NodeId> {
        let mut cur: NodeId = 0;
        for c in comps {
            cur = *self.nodes[cur as usize].children.get(*c)?;
        }
        (cur != 0).then_some(cur)
    }

    /// Puts one layer entry (or an unlisted parent, `entry == None`) at
    /// `parent/name`; returns the node now at that path.
    #[allow(clippy::too_many_arguments)]
    fn put(
        &mut self,
        parent: NodeId,
        name: &str,
        existing: Option<NodeId>,
        entry: Option<Entry>,
        index: u32,
        layers: &[&LayerTree],
        rec: &mut Recorder,
    ) -> NodeId {
        let Some(id) = existing else {
            if let Some(e) = &entry {
                rec.changes.added += 1;
                rec.changes.added_bytes += e.size;
            }
            return self.push(parent, name, entry, index);
        };
        let old_is_dir = self.nodes[id as usize].is_dir();
        match entry {
            // An unlisted parent: an existing directory stays as it is.
            None if old_is_dir => {}
            None => {
                self.replace_file(id, None, index, Change::default(), layers, rec);
            }
            Some(e) if old_is_dir && e.kind == Kind::Dir => {
                let change = self.nodes[id as usize]
                    .entry
                    .as_ref()
                    .map_or(Change::default(), |old| Change::between(old, &e));
                let n = &mut self.nodes[id as usize];
                n.entry = Some(e);
                n.layer = index;
                if change.any() {
                    rec.changes.modified += 1;
                    n.status = Status::Modified;
                    n.change = change;
                }
            }
            Some(e) if old_is_dir => {
                self.hide(id, false, index, WasteReason::DirReplaced, layers, rec);
                let kids: Vec<NodeId> =
                    self.nodes[id as usize].children.values().copied().collect();
                for k in kids {
                    self.detach(k);
                }
                rec.changes.modified += 1;
                rec.changes.modified_bytes += e.size;
                let n = &mut self.nodes[id as usize];
                n.entry = Some(e);
                n.layer = index;
                n.status = Status::Modified;
                n.change = Change {
                    content: true,
                    ..Change::default()
                };
            }
            Some(e) => {
                let old = self.nodes[id as usize]
                    .entry
                    .as_ref()
                    .expect("a non-directory has an entry");
                let change = Change::between(old, &e);
                rec.changes.modified += 1;
                rec.changes.modified_bytes += e.size;
                self.replace_file(id, Some(e), index, change, layers, rec);
            }
        }
        id
    }

    fn replace_file(
        &mut self,
        id: NodeId,
        entry: Option<Entry>,
        index: u32,
        change: Change,
        layers: &[&LayerTree],
        rec: &mut Recorder,
    ) {
        let path = self.path(id);
        let linked = layers
            .get(self.nodes[id as usize].layer as usize)
            .is_some_and(|l| l.link_targets.contains(&path));
        let n = &mut self.nodes[id as usize];
        let old_size = n.size();
        let old_layer = n.layer;
        if old_size > 0 {
            let reason = if !change.any() {
                WasteReason::Duplicate
            } else if change.metadata_only() {
                WasteReason::MetadataOnly
            } else {
                WasteReason::Replaced
            };
            rec.changes.hidden_bytes += old_size;
            rec.waste.push(WasteItem {
                path,
                layer: Some(old_layer),
                by_layer: index,
                bytes: old_size,
                files: 1,
                reason,
                change: (reason == WasteReason::MetadataOnly).then_some(change),
                linked,
            });
        }
        let content_changed = entry.is_none() || change.content;
        n.entry = entry;
        n.layer = index;
        n.status = Status::Modified;
        n.change = Change {
            content: content_changed,
            ..change
        };
    }

    /// Marks every node by how it differs from `base`: `Added`, `Modified`
    /// (with the change) or `Unchanged`; paths only `base` has are copied in,
    /// marked `Removed`. This is the "aggregated" view: everything layers
    /// after `base` did, at once.
    pub fn mark_against(&mut self, base: &FsTree) {
        for n in &mut self.nodes {
            n.status = Status::Unchanged;
            n.change = Change::default();
        }
        self.mark_rec(0, base, 0);
    }

    fn mark_rec(&mut self, id: NodeId, base: &FsTree, bid: NodeId) {
        let mine: Vec<(Box<str>, NodeId)> = self.nodes[id as usize]
            .children
            .iter()
            .map(|(n, &c)| (n.clone(), c))
            .collect();
        for (name, c) in &mine {
            match base.nodes[bid as usize].children.get(name) {
                None => {
                    let mut stack = vec![*c];
                    while let Some(n) = stack.pop() {
                        self.nodes[n as usize].status = Status::Added;
                        stack.extend(self.nodes[n as usize].children.values().copied());
                    }
                }
                Some(&bc) => {
                    let (x, y) = (&base.nodes[bc as usize], &self.nodes[*c as usize]);
                    let change = match (&x.entry, &y.entry) {
                        (Some(ex), Some(ey)) => Change::between(ex, ey),
                        (None, None) => Change::default(),
                        _ => Change {
                            content: x.is_dir() != y.is_dir(),
                            ..Change::default()
                        },
                    };
                    let both_dirs = x.is_dir() && y.is_dir();
                    if change.any() {
                        let n = &mut self.nodes[*c as usize];
                        n.status = Status::Modified;
                        n.change = change;
                    }
                    if both_dirs {
                        self.mark_rec(*c, base, bc);
                    }
                }
            }
        }
        let gone: Vec<NodeId> = base.nodes[bid as usize]
            .children
            .iter()
            .filter(|(n, _)| !self.nodes[id as usize].children.contains_key(*n))
            .map(|(_, &c)| c)
            .collect();
        for bc in gone {
            self.graft_removed(id, base, bc);
        }
    }

    fn graft_removed(&mut self, parent: NodeId, base: &FsTree, bid: NodeId) {
        let b = &base.nodes[bid as usize];
        let id = self.push(parent, &b.name, b.entry.clone(), b.layer);
        self.nodes[id as usize].status = Status::Removed;
        let kids: Vec<NodeId> = b.children.values().copied().collect();
        for k in kids {
            self.graft_removed(id, base, k);
        }
    }

    /// (layer, target) of every hard link in the tree.
    pub(crate) fn hardlinks(&self) -> HashSet<(u32, String)> {
        let mut out = HashSet::new();
        for id in self.walk() {
            let n = &self.nodes[id as usize];
            if let Some(e) = &n.entry
                && e.kind == Kind::Hardlink
                && let Some(l) = &e.link
            {
                out.insert((n.layer, join(&crate::layer::components(l))));
            }
        }
        out
    }
}
