//! Content descriptors: what a manifest or index points at.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::platform::Platform;

/// The annotation naming a reference in an OCI image layout's `index.json`.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The annotation recording when an image was created.
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
/// The annotations recording the base image an image was built on.
pub const ANNOTATION_BASE_NAME: &str = "org.opencontainers.image.base.name";
pub const ANNOTATION_BASE_DIGEST: &str = "org.opencontainers.image.base.digest";

/// An OCI content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Embedded content (base64), as the spec allows for small blobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

impl Descriptor {
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            platform: None,
            artifact_type: None,
            data: None,
        }
    }

    /// The reference name annotation used by OCI layouts, if any.
    pub fn ref_name(&self) -> Option<&str> {
        self.annotations
            .get(ANNOTATION_REF_NAME)
            .map(String::as_str)
    }
}
