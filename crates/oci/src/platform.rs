//! Platforms (`os/arch[/variant]`) and the host's platform.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A platform as in an OCI index entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// A platform string that is not `os/arch[/variant]`.
#[derive(Debug, thiserror::Error)]
#[error("invalid platform {0:?}: expected OS/ARCH[/VARIANT], e.g. linux/amd64")]
pub struct PlatformError(String);

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            architecture: architecture.to_owned(),
            os: os.to_owned(),
            os_version: None,
            os_features: Vec::new(),
            variant: variant.map(str::to_owned),
        }
    }

    /// The platform this program was compiled for, in Go's naming.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            "arm" => "arm",
            other => other,
        };
        let variant = match arch {
            "arm64" => Some("v8"),
            "arm" => Some("v7"),
            _ => None,
        };
        Platform::new("linux", arch, variant)
    }

    /// True when an index entry for `self` can run on `wanted`; a missing
    /// variant matches any variant, and `arm64` treats `v8` as the default.
    pub fn matches(&self, wanted: &Platform) -> bool {
        if self.os != wanted.os || self.architecture != wanted.architecture {
            return false;
        }
        let norm = |v: &Option<String>| match (self.architecture.as_str(), v.as_deref()) {
            ("arm64", None | Some("v8")) => None,
            (_, v) => v.map(str::to_owned),
        };
        match (norm(&self.variant), norm(&wanted.variant)) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
    }
}

impl FromStr for Platform {
    type Err = PlatformError;

    fn from_str(s: &str) -> Result<Platform, PlatformError> {
        let parts: Vec<&str> = s.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(PlatformError(s.to_owned()));
        }
        match parts.as_slice() {
            [os, arch] => Ok(Platform::new(os, arch, None)),
            [os, arch, variant] => Ok(Platform::new(os, arch, Some(variant))),
            _ => Err(PlatformError(s.to_owned())),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_display_match() {
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!(p.matches(&"linux/arm64".parse().unwrap()));
        assert!(!p.matches(&"linux/amd64".parse().unwrap()));
        let v6: Platform = "linux/arm/v6".parse().unwrap();
        assert!(!v6.matches(&"linux/arm/v7".parse().unwrap()));
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux//v7".parse::<Platform>().is_err());
    }
}
