//! What changed between two images' final filesystems, by path.

use serde::Serialize;

use crate::fs::FsTree;
use crate::layer::{Change, NodeId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DiffKind {
    Added,
    Removed,
    Changed,
}

/// One difference. An added or removed directory is reported once, with the
/// files and bytes below it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DiffEntry {
    pub path: String,
    pub kind: DiffKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<Change>,
    /// Bytes at the path (whole subtree for directories) before and after.
    pub before: u64,
    pub after: u64,
}

/// Differences from `a` to `b`, in path order.
pub fn diff(a: &FsTree, b: &FsTree) -> Vec<DiffEntry> {
    let mut out = Vec::new();
    rec(a, a.root(), b, b.root(), &mut out);
    out
}

fn rec(a: &FsTree, ai: NodeId, b: &FsTree, bi: NodeId, out: &mut Vec<DiffEntry>) {
    let ac: Vec<(&str, NodeId)> = a
        .node(ai)
        .children
        .iter()
        .map(|(n, &i)| (&**n, i))
        .collect();
    let bc: Vec<(&str, NodeId)> = b
        .node(bi)
        .children
        .iter()
        .map(|(n, &i)| (&**n, i))
        .collect();
    let (mut i, mut j) = (0, 0);
    while i < ac.len() || j < bc.len() {
        let order = match (ac.get(i), bc.get(j)) {
            (Some(x), Some(y)) => x.0.cmp(y.0),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Equal => {
                let (x, y) = (ac[i].1, bc[j].1);
                i += 1;
                j += 1;
                let (nx, ny) = (a.node(x), b.node(y));
                let change = match (&nx.entry, &ny.entry) {
                    (Some(ex), Some(ey)) => Change::between(ex, ey),
                    (None, None) => Change::default(),
                    _ => Change {
                        content: nx.is_dir() != ny.is_dir(),
                        ..Change::default()
                    },
                };
                if change.any() {
                    out.push(DiffEntry {
                        path: b.path(y),
                        kind: DiffKind::Changed,
                        change: Some(change),
                        before: a.subtree_size(x),
                        after: b.subtree_size(y),
                    });
                }
                if nx.is_dir() && ny.is_dir() {
                    rec(a, x, b, y, out);
                }
            }
            std::cmp::Ordering::Less => {
                let x = ac[i].1;
                i += 1;
                out.push(DiffEntry {
                    path: a.path(x),
                    kind: DiffKind::Removed,
                    change: None,
                    before: a.subtree_size(x),
                    after: 0,
                });
            }
            std::cmp::Ordering::Greater => {
                let y = bc[j].1;
                j += 1;
                out.push(DiffEntry {
                    path: b.path(y),
                    kind: DiffKind::Added,
                    change: None,
                    before: 0,
                    after: b.subtree_size(y),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{E, file, image};

    #[test]
    fn diff_by_path() {
        let a = crate::analyze(image(&[vec![
            E::Dir("d/"),
            file("d/x", 3),
            file("same", 1),
            file("mod", 2),
            E::File("perm", 4, 0o644, 0),
        ]]));
        let b = crate::analyze(image(&[vec![
            file("same", 1),
            file("mod", 5),
            E::File("perm", 4, 0o600, 0),
            file("new", 6),
        ]]));
        let d = diff(&a.final_tree, &b.final_tree);
        let got: Vec<(&str, DiffKind, u64, u64)> = d
            .iter()
            .map(|e| (e.path.as_str(), e.kind, e.before, e.after))
            .collect();
        assert_eq!(
            got,
            [
                ("/d", DiffKind::Removed, 3, 0),
                ("/mod", DiffKind::Changed, 2, 5),
                ("/new", DiffKind::Added, 0, 6),
                ("/perm", DiffKind::Changed, 4, 4),
            ]
        );
        assert!(d[3].change.unwrap().mode && !d[3].change.unwrap().content);
    }
}
