//! Media types of the OCI image spec and of Docker's image manifest v2 schema 2.

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const OCI_LAYER_NONDIST_TAR: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
pub const OCI_LAYER_NONDIST_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
pub const OCI_LAYER_NONDIST_ZSTD: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const DOCKER_FOREIGN_LAYER_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// How a layer blob is compressed, as told by its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The compression a layer media type declares, or `None` if the media
    /// type is not a known layer type.
    pub fn of_layer(media_type: &str) -> Option<Compression> {
        match media_type {
            OCI_LAYER_TAR | OCI_LAYER_NONDIST_TAR | DOCKER_LAYER_TAR => Some(Compression::None),
            OCI_LAYER_GZIP
            | OCI_LAYER_NONDIST_GZIP
            | DOCKER_LAYER_GZIP
            | DOCKER_FOREIGN_LAYER_GZIP => Some(Compression::Gzip),
            OCI_LAYER_ZSTD | OCI_LAYER_NONDIST_ZSTD => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// Detects compression from the first bytes of a stream.
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The OCI layer media type for this compression.
    pub fn oci_layer_media_type(self) -> &'static str {
        match self {
            Compression::None => OCI_LAYER_TAR,
            Compression::Gzip => OCI_LAYER_GZIP,
            Compression::Zstd => OCI_LAYER_ZSTD,
        }
    }
}

/// True for media types that are image manifests (OCI or Docker schema 2).
pub fn is_manifest(media_type: &str) -> bool {
    matches!(media_type, OCI_MANIFEST | DOCKER_MANIFEST)
}

/// True for media types that are indexes (OCI index or Docker manifest list).
pub fn is_index(media_type: &str) -> bool {
    matches!(media_type, OCI_INDEX | DOCKER_MANIFEST_LIST)
}

/// True for non-distributable ("foreign") layers, which registries may not hold.
pub fn is_non_distributable(media_type: &str) -> bool {
    matches!(
        media_type,
        OCI_LAYER_NONDIST_TAR
            | OCI_LAYER_NONDIST_GZIP
            | OCI_LAYER_NONDIST_ZSTD
            | DOCKER_FOREIGN_LAYER_GZIP
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_of_layer_types() {
        assert_eq!(
            Compression::of_layer(DOCKER_LAYER_GZIP),
            Some(Compression::Gzip)
        );
        assert_eq!(
            Compression::of_layer(OCI_LAYER_ZSTD),
            Some(Compression::Zstd)
        );
        assert_eq!(
            Compression::of_layer(OCI_LAYER_NONDIST_TAR),
            Some(Compression::None)
        );
        assert_eq!(Compression::of_layer(OCI_CONFIG), None);
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(
            Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::sniff(b"ustar"), Compression::None);
        assert!(is_non_distributable(DOCKER_FOREIGN_LAYER_GZIP));
        assert!(is_index(DOCKER_MANIFEST_LIST) && is_manifest(OCI_MANIFEST));
    }
}
