//! The data behind `images`, `inspect`, `history` and `system df`, shaped
//! as docker users expect. Rendering (tables, JSON printing) is the CLI's job.

use serde_json::{Value, json};

use crate::Result;
use crate::store::{ImageStore, Resolved};

/// One row of `berth images`.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageRow {
    pub repository: String,
    pub tag: String,
    pub digest: String,
    #[serde(rename = "ID")]
    pub id: String,
    pub created_at: String,
    /// Uncompressed size of all layers, in bytes.
    pub size: u64,
}

/// Total uncompressed size of an image's layers.
pub fn image_size(store: &ImageStore, img: &Resolved) -> Result<u64> {
    let mut total = 0;
    for l in &img.image.layers {
        total += store.uncompressed_size(l)?;
    }
    Ok(total)
}

/// Rows for `berth images`: one per name, one for each dangling image.
pub fn image_rows(store: &ImageStore) -> Result<Vec<ImageRow>> {
    let mut rows = Vec::new();
    for rec in store.images()? {
        let img = store.resolve(&rec, None)?;
        let size = image_size(store, &img)?;
        let created = img.config.created.clone().unwrap_or_default();
        let id = img.id().to_string();
        let digest = rec.descriptor.digest.to_string();
        if rec.names.is_empty() {
            rows.push(ImageRow {
                repository: "<none>".into(),
                tag: "<none>".into(),
                digest,
                id,
                created_at: created,
                size,
            });
            continue;
        }
        for n in &rec.names {
            rows.push(ImageRow {
                repository: n.familiar_name(),
                tag: n.tag().unwrap_or("<none>").to_owned(),
                digest: digest.clone(),
                id: id.clone(),
                created_at: created.clone(),
                size,
            });
        }
    }
    Ok(rows)
}

/// `docker image inspect`-shaped JSON for one image.
pub fn inspect_json(store: &ImageStore, img: &Resolved) -> Result<Value> {
    let c = &img.config;
    let size = image_size(store, img)?;
    let repo_tags: Vec<String> = img.names.iter().map(|n| n.familiar()).collect();
    let repo_digests: Vec<String> = {
        let mut v: Vec<String> = img
            .names
            .iter()
            .map(|n| format!("{}@{}", n.familiar_name(), img.top.digest))
            .collect();
        v.dedup();
        v
    };
    let extra = |k: &str| {
        c.extra
            .get(k)
            .cloned()
            .unwrap_or(Value::String(String::new()))
    };
    let mut v = json!({
        "Id": img.id().to_string(),
        "RepoTags": repo_tags,
        "RepoDigests": repo_digests,
        "Parent": extra("parent"),
        "Comment": c.history.last().and_then(|h| h.comment.clone()).unwrap_or_default(),
        "Created": c.created.clone().unwrap_or_default(),
        "DockerVersion": extra("docker_version"),
        "Author": c.author.clone().unwrap_or_default(),
        "Config": c.config.clone().map(|rc| serde_json::to_value(rc).expect("config serialises")).unwrap_or(Value::Null),
        "Architecture": c.architecture,
        "Os": c.os,
        "Size": size,
        "RootFS": {
            "Type": c.rootfs.kind,
            "Layers": c.rootfs.diff_ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
        },
        "Metadata": { "LastTagTime": "0001-01-01T00:00:00Z" },
        "Descriptor": serde_json::to_value(&img.top).expect("descriptor serialises"),
        "Manifest": { "Digest": img.manifest.digest.to_string(), "MediaType": img.manifest.media_type },
    });
    if let Some(variant) = &c.variant {
        v["Variant"] = Value::String(variant.clone());
    }
    Ok(v)
}

/// One row of `berth history`, newest first.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryRow {
    #[serde(rename = "ID")]
    pub id: String,
    pub created_at: String,
    pub created_by: String,
    /// Uncompressed size of the layer this step produced (0 for empty layers).
    pub size: u64,
    pub comment: String,
}

/// History rows for `berth history`, newest first, with layer sizes.
pub fn history_rows(store: &ImageStore, img: &Resolved) -> Result<Vec<HistoryRow>> {
    let mut layers = img.image.layers.iter();
    let mut rows = Vec::new();
    for h in &img.config.history {
        let size = if h.empty_layer {
            0
        } else {
            match layers.next() {
                Some(l) => store.uncompressed_size(l)?,
                None => 0,
            }
        };
        rows.push(HistoryRow {
            id: "<missing>".into(),
            created_at: h.created.clone().unwrap_or_default(),
            created_by: h.created_by.clone().unwrap_or_default(),
            size,
            comment: h.comment.clone().unwrap_or_default(),
        });
    }
    rows.reverse();
    if let Some(newest) = rows.first_mut() {
        newest.id = img.id().to_string();
    }
    Ok(rows)
}
