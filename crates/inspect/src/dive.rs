//! dive's metrics, computed as dive computes them (`dive/filetree/efficiency.go`
//! and `dive/image/analysis.go`), so that existing `.dive-ci` thresholds keep
//! their meaning. The quirks are deliberate; see `METRICS.md`.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::layer::{Kind, LayerTree, NodeId, WHITEOUT_PREFIX};

/// dive's numbers for an image.
#[derive(Debug, Clone, Serialize)]
pub struct DiveMetrics {
    /// Σ_p Min(p) / Σ_p Cumulative(p); 1 when nothing was seen.
    pub efficiency: f64,
    /// Σ Cumulative(p) over paths seen at least twice.
    pub wasted_bytes: u64,
    /// Σ of every layer's entry sizes.
    pub size_bytes: u64,
    /// Σ of the entry sizes of every layer but the first.
    pub user_size_bytes: u64,
    /// wasted_bytes / user_size_bytes (NaN or infinite when user_size_bytes is 0,
    /// as in dive; serialised as null then).
    pub user_wasted_percent: f64,
    /// Paths seen at least twice, largest Cumulative first.
    pub inefficiencies: Vec<DivePath>,
    /// Layers whose walk dive abandons: a whiteout whose target is absent
    /// from the layers below makes dive's visitor fail, and the rest of that
    /// layer's leaves (in dive's sorted, children-first order) go uncounted.
    pub aborted_walks: Vec<AbortedWalk>,
}

/// One entry of dive's "inefficient files" list.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DivePath {
    pub path: String,
    /// Number of leaf nodes (in all layers) with this path.
    pub count: u32,
    pub cumulative_size: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AbortedWalk {
    pub layer: usize,
    pub whiteout: String,
}

/// dive's stacked tree: sizes and is-dir flags only, as in its `FileInfo`.
struct StackTree {
    nodes: Vec<SNode>,
}

struct SNode {
    children: BTreeMap<Box<str>, NodeId>,
    size: u64,
    is_dir: bool,
}

fn info(tree: &LayerTree, id: NodeId) -> (u64, bool) {
    match &tree.node(id).entry {
        Some(e) => (e.size, e.kind == Kind::Dir),
        // dive gives unlisted parents an empty FileInfo: size 0, not a directory.
        None => (0, false),
    }
}

impl StackTree {
    /// `FileTree.Copy()` of a layer tree (whiteout nodes included, by name).
    fn copy_of(tree: &LayerTree) -> StackTree {
        let mut s = StackTree {
            nodes: vec![SNode {
                children: BTreeMap::new(),
                size: 0,
                is_dir: false,
            }],
        };
        fn rec(s: &mut StackTree, tree: &LayerTree, from: NodeId, to: NodeId) {
            for (name, &child) in &tree.node(from).children {
                let (size, is_dir) = info(tree, child);
                let id = s.nodes.len() as NodeId;
                s.nodes.push(SNode {
                    children: BTreeMap::new(),
                    size,
                    is_dir,
                });
                s.nodes[to as usize].children.insert(name.clone(), id);
                rec(s, tree, child, id);
            }
        }
        rec(&mut s, tree, tree.root(), 0);
        s
    }

    fn get(&self, comps: &[&str]) -> Option<NodeId> {
        let mut cur: NodeId = 0;
        for c in comps {
            cur = *self.nodes[cur as usize].children.get(*c)?;
        }
        Some(cur)
    }

    fn add_path(&mut self, comps: &[&str], size: u64, is_dir: bool) {
        let mut cur: NodeId = 0;
        for c in comps {
            cur = match self.nodes[cur as usize].children.get(*c) {
                Some(&id) => id,
                None => {
                    let id = self.nodes.len() as NodeId;
                    self.nodes.push(SNode {
                        children: BTreeMap::new(),
                        size: 0,
                        is_dir: false,
                    });
                    self.nodes[cur as usize].children.insert((*c).into(), id);
                    id
                }
            };
        }
        let n = &mut self.nodes[cur as usize];
        n.size = size;
        n.is_dir = is_dir;
    }

    fn remove(&mut self, comps: &[&str]) {
        let Some((last, parent)) = comps.split_last() else {
            return;
        };
        if let Some(p) = self.get(parent) {
            // The detached nodes stay in the arena; memory stays bounded by paths.
            self.nodes[p as usize].children.remove(*last);
        }
    }

    /// Σ size over a node and everything under it (dive's `sizer` over
    /// `VisitDepthChildFirst`).
    fn subtree_size(&self, id: NodeId) -> u64 {
        let mut total = 0;
        let mut stack = vec![id];
        while let Some(n) = stack.pop() {
            let node = &self.nodes[n as usize];
            total += node.size;
            stack.extend(node.children.values().copied());
        }
        total
    }

    /// `FileTree.Stack(upper)`: children first, in sorted order; whiteouts
    /// remove, everything else is added with its (possibly empty) info.
    fn stack(&mut self, upper: &LayerTree) {
        let mut comps: Vec<&str> = Vec::new();
        fn rec<'a>(s: &mut StackTree, upper: &'a LayerTree, id: NodeId, comps: &mut Vec<&'a str>) {
            for (name, &child) in &upper.node(id).children {
                comps.push(name);
                rec(s, upper, child, comps);
                comps.pop();
            }
            if id == upper.root() {
                return;
            }
            let node = upper.node(id);
            if node.is_whiteout() {
                let mut c = comps.clone();
                let last = c.len() - 1;
                c[last] = &c[last][WHITEOUT_PREFIX.len()..];
                s.remove(&c);
            } else {
                let (size, is_dir) = info(upper, id);
                s.add_path(comps, size, is_dir);
            }
        }
        rec(self, upper, upper.root(), &mut comps);
    }
}

#[derive(Default)]
struct PathStat {
    cumulative: i64,
    min: i64,
    count: u32,
}

/// Computes dive's metrics over the layers, bottom first.
pub fn metrics(layers: &[&LayerTree]) -> DiveMetrics {
    let mut stats: HashMap<String, PathStat> = HashMap::new();
    let mut inefficient: Vec<String> = Vec::new();
    let mut aborted = Vec::new();
    let mut stacked = layers.first().map(|t| StackTree::copy_of(t));
    for (index, tree) in layers.iter().enumerate() {
        let s = stacked.as_ref().expect("a first layer exists");
        let mut comps: Vec<&str> = Vec::new();
        let mut visit = |id: NodeId, comps: &[&str]| -> Result<(), String> {
            let node = tree.node(id);
            let mut key: Vec<&str> = comps.to_vec();
            let size: i64 = if node.is_whiteout() {
                let last = key.len() - 1;
                key[last] = &key[last][WHITEOUT_PREFIX.len()..];
                match s.get(&key) {
                    None => return Err(crate::layer::join(&key)),
                    Some(prev) if s.nodes[prev as usize].is_dir => s.subtree_size(prev) as i64,
                    Some(_) => 0,
                }
            } else {
                node.entry.as_ref().map_or(0, |e| e.size as i64)
            };
            let path = crate::layer::join(&key);
            let stat = stats.entry(path).or_insert_with_key(|p| {
                let _ = p;
                PathStat {
                    min: -1,
                    ..PathStat::default()
                }
            });
            stat.cumulative += size;
            if stat.min < 0 || size < stat.min {
                stat.min = size;
            }
            stat.count += 1;
            if stat.count == 2 {
                inefficient.push(crate::layer::join(&key));
            }
            Ok(())
        };
        if let Err(whiteout) = walk_leaves(tree, tree.root(), &mut comps, &mut visit) {
            aborted.push(AbortedWalk {
                layer: index,
                whiteout,
            });
        }
        if let Some(s) = stacked.as_mut() {
            s.stack(tree);
        }
    }
    let (mut min_sum, mut cum_sum) = (0i64, 0i64);
    for s in stats.values() {
        min_sum += s.min;
        cum_sum += s.cumulative;
    }
    let efficiency = if cum_sum == 0 {
        1.0
    } else {
        min_sum as f64 / cum_sum as f64
    };
    let mut inefficiencies: Vec<DivePath> = inefficient
        .into_iter()
        .map(|p| {
            let s = &stats[&p];
            DivePath {
                count: s.count,
                cumulative_size: s.cumulative as u64,
                path: p,
            }
        })
        .collect();
    inefficiencies.sort_by(|a, b| {
        b.cumulative_size
            .cmp(&a.cumulative_size)
            .then_with(|| a.path.cmp(&b.path))
    });
    let wasted_bytes = inefficiencies.iter().map(|p| p.cumulative_size).sum();
    let size_bytes = layers.iter().map(|t| t.size).sum();
    let user_size_bytes = layers.iter().skip(1).map(|t| t.size).sum();
    DiveMetrics {
        efficiency,
        wasted_bytes,
        size_bytes,
        user_size_bytes,
        user_wasted_percent: wasted_bytes as f64 / user_size_bytes as f64,
        inefficiencies,
        aborted_walks: aborted,
    }
}

/// dive's `VisitDepthChildFirst` with the `IsLeaf` evaluator; stops at the
/// first visitor error.
fn walk_leaves<'a, E>(
    tree: &'a LayerTree,
    id: NodeId,
    comps: &mut Vec<&'a str>,
    visit: &mut impl FnMut(NodeId, &[&str]) -> Result<(), E>,
) -> Result<(), E> {
    let node = tree.node(id);
    for (name, &child) in &node.children {
        comps.push(name);
        walk_leaves(tree, child, comps, visit)?;
        comps.pop();
    }
    if id != tree.root() && node.children.is_empty() {
        visit(id, comps)?;
    }
    Ok(())
}
