//! The whole-image analysis: per-layer trees in, both metric sets, the waste
//! list and per-layer changes out.

use serde::Serialize;

use crate::dive::{self, DiveMetrics};
use crate::fs::{FsTree, LayerChanges, Recorder, WasteItem, WasteReason};
use crate::layer::LayerTree;

/// What is known about a layer besides its content.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LayerMeta {
    /// The blob's digest, when the source has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Size of the blob as stored (compressed), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compressed_size: Option<u64>,
    /// The history entry's `created_by` (the Dockerfile step).
    pub created_by: String,
    pub comment: String,
}

/// Where the user layers start, and how that was decided.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UserLayers {
    /// Index of the first layer that is not part of the base image.
    pub first: usize,
    pub from: UserLayersFrom,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum UserLayersFrom {
    /// The manifest's `org.opencontainers.image.base.*` annotations, with the
    /// base image's layer count read from the base manifest.
    BaseAnnotations {
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        digest: String,
    },
    /// No usable annotations: every layer but the first, as dive counts.
    AllButFirst,
}

impl UserLayers {
    pub fn all_but_first() -> UserLayers {
        UserLayers {
            first: 1,
            from: UserLayersFrom::AllButFirst,
        }
    }
}

/// An image's layers, read and ready to analyse.
#[derive(Debug, Clone)]
pub struct ImageLayers {
    /// How the image was named on the command line.
    pub name: String,
    pub layers: Vec<(LayerMeta, LayerTree)>,
    pub user_layers: UserLayers,
}

/// berth's corrected metrics.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BerthMetrics {
    /// Σ of the data bytes every layer ships.
    pub total_bytes: u64,
    /// Bytes of the final filesystem (`total_bytes - wasted_bytes`).
    pub final_bytes: u64,
    /// Bytes shipped but not in the final filesystem.
    pub wasted_bytes: u64,
    /// final_bytes / total_bytes (1 when the image ships no data).
    pub efficiency: f64,
    pub user_layers: UserLayers,
    /// Σ of the data bytes the user layers ship.
    pub user_bytes: u64,
    /// Waste hidden by an entry in a user layer.
    pub user_wasted_bytes: u64,
    /// user_wasted_bytes / user_bytes (0 when both are 0; infinite, serialised
    /// as null, when user layers only delete).
    pub user_wasted_percent: f64,
    /// The breakdown of `wasted_bytes` by reason.
    pub duplicate_bytes: u64,
    pub metadata_only_bytes: u64,
    pub replaced_bytes: u64,
    pub deleted_bytes: u64,
    pub same_layer_bytes: u64,
}

/// One layer's line in the report.
#[derive(Debug, Clone, Serialize)]
pub struct LayerReport {
    pub index: usize,
    #[serde(flatten)]
    pub meta: LayerMeta,
    /// Σ of the entries' data sizes (dive's layer size).
    pub size: u64,
    pub entries: u64,
    pub user: bool,
    pub changes: LayerChanges,
}

/// Everything berth knows about an image's layers.
#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    pub image: String,
    pub layers: Vec<LayerReport>,
    pub dive: DiveMetrics,
    pub berth: BerthMetrics,
    /// Every waste event, largest first.
    pub waste: Vec<WasteItem>,
    #[serde(skip)]
    pub trees: Vec<LayerTree>,
    #[serde(skip)]
    pub final_tree: FsTree,
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        if part == 0 { 0.0 } else { f64::INFINITY }
    } else {
        part as f64 / whole as f64
    }
}

/// Analyses an image.
pub fn analyze(image: ImageLayers) -> Analysis {
    let (metas, trees): (Vec<LayerMeta>, Vec<LayerTree>) = image.layers.into_iter().unzip();
    let refs: Vec<&LayerTree> = trees.iter().collect();
    let dive = dive::metrics(&refs);
    let mut fs = FsTree::default();
    let mut waste = Vec::new();
    let mut layers = Vec::new();
    for (i, (meta, tree)) in metas.into_iter().zip(&trees).enumerate() {
        let mut rec = Recorder::default();
        fs.apply(i as u32, tree, &refs, false, &mut rec);
        waste.extend(rec.waste);
        layers.push(LayerReport {
            index: i,
            meta,
            size: tree.size,
            entries: tree.entries,
            user: i >= image.user_layers.first,
            changes: rec.changes,
        });
    }
    // Data hidden under one name but still reachable through a surviving
    // hard link (from the same layer) ships after all.
    let links = fs.hardlinks();
    waste.retain(|w| !(w.linked && links.contains(&(w.layer.unwrap_or(u32::MAX), w.path.clone()))));
    waste.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.path.cmp(&b.path)));

    let total_bytes: u64 = trees.iter().map(|t| t.size).sum();
    let wasted_bytes: u64 = waste.iter().map(|w| w.bytes).sum();
    let final_bytes = total_bytes - wasted_bytes;
    let first_user = image.user_layers.first as u32;
    let user_bytes: u64 = trees.iter().skip(first_user as usize).map(|t| t.size).sum();
    let user_wasted_bytes: u64 = waste
        .iter()
        .filter(|w| w.by_layer >= first_user)
        .map(|w| w.bytes)
        .sum();
    let by = |reasons: &[WasteReason]| -> u64 {
        waste
            .iter()
            .filter(|w| reasons.contains(&w.reason))
            .map(|w| w.bytes)
            .sum()
    };
    let berth = BerthMetrics {
        total_bytes,
        final_bytes,
        wasted_bytes,
        efficiency: if total_bytes == 0 {
            1.0
        } else {
            final_bytes as f64 / total_bytes as f64
        },
        user_layers: image.user_layers,
        user_bytes,
        user_wasted_bytes,
        user_wasted_percent: ratio(user_wasted_bytes, user_bytes),
        duplicate_bytes: by(&[WasteReason::Duplicate]),
        metadata_only_bytes: by(&[WasteReason::MetadataOnly]),
        replaced_bytes: by(&[WasteReason::Replaced]),
        deleted_bytes: by(&[
            WasteReason::DeletedFile,
            WasteReason::DeletedDir,
            WasteReason::OpaqueDir,
            WasteReason::DirReplaced,
        ]),
        same_layer_bytes: by(&[WasteReason::SameLayer]),
    };
    Analysis {
        image: image.name,
        layers,
        dive,
        berth,
        waste,
        trees,
        final_tree: fs,
    }
}

impl Analysis {
    /// The filesystem as of layer `layer`, with that layer's changes marked
    /// (deleted paths kept, marked `Removed`). Rebuilt on demand so that
    /// memory holds one tree, not one per layer.
    pub fn view(&self, layer: usize) -> FsTree {
        let refs: Vec<&LayerTree> = self.trees.iter().collect();
        let mut fs = FsTree::default();
        let mut rec = Recorder::default();
        for (i, tree) in refs.iter().enumerate().take(layer + 1) {
            fs.apply(i as u32, tree, &refs, i == layer, &mut rec);
        }
        fs
    }

    /// The filesystem as of layer `layer`, marked with everything layers
    /// `1..=layer` changed relative to layer 0 (for layer 0, relative to
    /// nothing).
    pub fn aggregated_view(&self, layer: usize) -> FsTree {
        let refs: Vec<&LayerTree> = self.trees.iter().collect();
        let mut rec = Recorder::default();
        let mut fs = FsTree::default();
        let mut base = FsTree::default();
        for (i, tree) in refs.iter().enumerate().take(layer + 1) {
            fs.apply(i as u32, tree, &refs, false, &mut rec);
            if i == 0 && layer > 0 {
                base = fs.clone();
            }
        }
        fs.mark_against(&base);
        fs
    }
}
