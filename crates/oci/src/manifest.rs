//! Image manifests and indexes (OCI and Docker schema 2), parsed next to the
//! exact bytes they came from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::descriptor::Descriptor;
use crate::digest::{Algorithm, Digest};
use crate::media_type;

/// An image manifest: one config and an ordered list of layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An index (or Docker manifest list): a list of manifests, usually one per platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ImageIndex {
    /// An empty OCI index, as written to a fresh image layout.
    pub fn empty() -> ImageIndex {
        ImageIndex {
            schema_version: 2,
            media_type: Some(media_type::OCI_INDEX.to_owned()),
            artifact_type: None,
            manifests: Vec::new(),
            subject: None,
            annotations: BTreeMap::new(),
        }
    }
}

/// Why bytes are not a usable manifest or index.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unsupported manifest schemaVersion {0} (only 2 is supported)")]
    SchemaVersion(u64),
    #[error("unsupported manifest media type {0:?}")]
    MediaType(String),
    #[error("manifest mediaType {declared:?} does not match the expected {expected:?}")]
    MediaTypeMismatch { declared: String, expected: String },
}

/// What kind of document a manifest is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub enum ManifestKind {
    Image(ImageManifest),
    Index(ImageIndex),
}

/// A manifest or index together with its exact bytes, digest and media type.
#[derive(Debug, Clone)]
pub struct ParsedManifest {
    pub bytes: Vec<u8>,
    pub digest: Digest,
    pub media_type: String,
    pub kind: ManifestKind,
}

impl ParsedManifest {
    /// Parses `bytes`, computing their sha256 digest. `declared` is the media
    /// type the bytes arrived with (a descriptor's or a Content-Type), if any.
    pub fn parse(bytes: Vec<u8>, declared: Option<&str>) -> Result<ParsedManifest, ManifestError> {
        Self::parse_with(bytes, declared, Algorithm::Sha256)
    }

    /// Like [`ParsedManifest::parse`] with a chosen digest algorithm.
    pub fn parse_with(
        bytes: Vec<u8>,
        declared: Option<&str>,
        algorithm: Algorithm,
    ) -> Result<ParsedManifest, ManifestError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Probe {
            schema_version: Option<u64>,
            media_type: Option<String>,
            manifests: Option<serde_json::Value>,
            config: Option<serde_json::Value>,
        }
        let probe: Probe = serde_json::from_slice(&bytes)?;
        match probe.schema_version {
            Some(2) => {}
            Some(v) => return Err(ManifestError::SchemaVersion(v)),
            None => return Err(ManifestError::SchemaVersion(0)),
        }
        let media_type = match (&probe.media_type, declared) {
            (Some(inner), Some(outer)) if inner != outer && !outer.is_empty() => {
                return Err(ManifestError::MediaTypeMismatch {
                    declared: inner.clone(),
                    expected: outer.to_owned(),
                });
            }
            (Some(inner), _) => inner.clone(),
            (None, Some(outer)) if !outer.is_empty() => outer.to_owned(),
            (None, _) if probe.manifests.is_some() => media_type::OCI_INDEX.to_owned(),
            (None, _) if probe.config.is_some() => media_type::OCI_MANIFEST.to_owned(),
            (None, _) => return Err(ManifestError::MediaType(String::new())),
        };
        let kind = if media_type::is_manifest(&media_type) {
            ManifestKind::Image(serde_json::from_slice(&bytes)?)
        } else if media_type::is_index(&media_type) {
            ManifestKind::Index(serde_json::from_slice(&bytes)?)
        } else {
            return Err(ManifestError::MediaType(media_type));
        };
        let digest = algorithm.digest(&bytes);
        Ok(ParsedManifest {
            bytes,
            digest,
            media_type,
            kind,
        })
    }

    /// A descriptor pointing at this manifest.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            self.media_type.clone(),
            self.digest.clone(),
            self.bytes.len() as u64,
        )
    }

    /// Every descriptor this document references directly (config, layers,
    /// child manifests, subject).
    pub fn children(&self) -> Vec<&Descriptor> {
        match &self.kind {
            ManifestKind::Image(m) => std::iter::once(&m.config)
                .chain(m.layers.iter())
                .chain(m.subject.iter())
                .collect(),
            ManifestKind::Index(i) => i.manifests.iter().chain(i.subject.iter()).collect(),
        }
    }
}

/// Serialises a manifest berth creates. Canonical: compact, fields in struct order.
pub fn to_vec<T: Serialize>(doc: &T) -> Vec<u8> {
    serde_json::to_vec(doc).expect("manifest serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_keeps_bytes_and_detects_kind() {
        // Odd spacing must survive: the digest is over these exact bytes.
        let raw = br#"{ "schemaVersion": 2,
          "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
          "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2,
                     "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},
          "layers": [] }"#
            .to_vec();
        let p = ParsedManifest::parse(raw.clone(), None).unwrap();
        assert_eq!(p.bytes, raw);
        assert_eq!(p.digest, Digest::sha256_of(&raw));
        assert_eq!(p.media_type, media_type::DOCKER_MANIFEST);
        assert!(matches!(p.kind, ManifestKind::Image(_)));
        assert_eq!(p.children().len(), 1);
    }

    #[test]
    fn parse_rejects_bad_documents() {
        assert!(matches!(
            ParsedManifest::parse(br#"{"schemaVersion":1}"#.to_vec(), None),
            Err(ManifestError::SchemaVersion(1))
        ));
        assert!(ParsedManifest::parse(b"not json".to_vec(), None).is_err());
        assert!(matches!(
            ParsedManifest::parse(
                br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#.to_vec(),
                Some(media_type::OCI_MANIFEST)
            ),
            Err(ManifestError::MediaTypeMismatch { .. })
        ));
        let idx =
            ParsedManifest::parse(br#"{"schemaVersion":2,"manifests":[]}"#.to_vec(), None).unwrap();
        assert_eq!(idx.media_type, media_type::OCI_INDEX);
    }
}
