//! Registry metadata: which repositories exist, their tags, and which
//! manifests, blobs and referrers each repository links.
//!
//! Blob *bytes* are not here: they live in the shared content store
//! (`blobs/<alg>/<hex>` at the store root), once, whichever repositories link
//! them. This module only records links, so a repository can never read a
//! blob it was not given (pushed, mounted or referenced by its manifests).
//!
//! [`MetaStore`] is the seam for other backends (an object store); [`FsMeta`]
//! keeps everything under `<root>/registry/repos/<name>/`:
//!
//! ```text
//! _manifests/<alg>/<hex>                    file holding the manifest's media type
//! _tags/<tag>                               file holding the tagged digest
//! _layers/<alg>/<hex>                       empty file; mtime = last time it was linked
//! _referrers/<alg>/<hex>/<alg>-<hex>        descriptor JSON of a manifest whose subject is <alg>:<hex>
//! ```
//!
//! Components of a repository name start with `[a-z0-9]`, so the `_`-prefixed
//! directories can never collide with a nested repository (`a` and `a/b`
//! share `repos/a/`). Every file is written to a temporary name, fsynced and
//! renamed into place, so a crash leaves the old state or the new one.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use berth_oci::{Descriptor, Digest};

use crate::error::{Error, Result};

/// Metadata storage for repositories. All methods take validated names,
/// tags and digests; implementations need not re-validate.
pub trait MetaStore: Send + Sync + std::fmt::Debug {
    /// Whether the repository has ever had anything linked.
    fn repo_exists(&self, repo: &str) -> Result<bool>;
    /// Every repository, sorted.
    fn repositories(&self) -> Result<Vec<String>>;

    /// Links a blob into a repository (refreshing the link's time).
    fn link_blob(&self, repo: &str, digest: &Digest) -> Result<()>;
    fn blob_linked(&self, repo: &str, digest: &Digest) -> Result<bool>;
    fn unlink_blob(&self, repo: &str, digest: &Digest) -> Result<bool>;
    /// Every blob link of a repository with the time it was last linked.
    fn blob_links(&self, repo: &str) -> Result<Vec<(Digest, SystemTime)>>;

    /// Links a manifest (whose bytes are in the content store) with its media type.
    fn link_manifest(&self, repo: &str, digest: &Digest, media_type: &str) -> Result<()>;
    /// The media type of a linked manifest, or `None` if it is not linked.
    fn manifest_media_type(&self, repo: &str, digest: &Digest) -> Result<Option<String>>;
    fn unlink_manifest(&self, repo: &str, digest: &Digest) -> Result<bool>;
    fn manifests(&self, repo: &str) -> Result<Vec<Digest>>;

    fn set_tag(&self, repo: &str, tag: &str, digest: &Digest) -> Result<()>;
    fn tag(&self, repo: &str, tag: &str) -> Result<Option<Digest>>;
    fn delete_tag(&self, repo: &str, tag: &str) -> Result<bool>;
    /// Tag names, sorted lexically.
    fn tag_names(&self, repo: &str) -> Result<Vec<String>>;
    /// Tags with their digests, sorted by tag.
    fn tags(&self, repo: &str) -> Result<Vec<(String, Digest)>> {
        let mut out = Vec::new();
        for t in self.tag_names(repo)? {
            if let Some(d) = self.tag(repo, &t)? {
                out.push((t, d));
            }
        }
        Ok(out)
    }

    /// Records that the manifest `referrer` has `subject` as its subject.
    fn add_referrer(&self, repo: &str, subject: &Digest, referrer: &Descriptor) -> Result<()>;
    fn remove_referrer(&self, repo: &str, subject: &Digest, referrer: &Digest) -> Result<()>;
    /// Descriptors of the manifests whose subject is `subject`, sorted by digest.
    fn referrers(&self, repo: &str, subject: &Digest) -> Result<Vec<Descriptor>>;
}

/// [`MetaStore`] on a local filesystem, under `<root>/registry/repos`.
#[derive(Debug, Clone)]
pub struct FsMeta {
    repos: PathBuf,
}

impl FsMeta {
    /// Opens (creating if needed) the metadata tree of the store at `root`.
    pub fn open(root: &Path) -> Result<FsMeta> {
        let repos = root.join("registry/repos");
        fs::create_dir_all(&repos).map_err(|e| Error::io("create directory", &repos, e))?;
        Ok(FsMeta { repos })
    }

    /// Opens (creating if needed) a metadata tree rooted at `repos` itself
    /// (the mirror keeps one per upstream).
    pub fn at(repos: PathBuf) -> Result<FsMeta> {
        fs::create_dir_all(&repos).map_err(|e| Error::io("create directory", &repos, e))?;
        Ok(FsMeta { repos })
    }

    /// The directory holding every repository.
    pub fn repos_dir(&self) -> &Path {
        &self.repos
    }

    fn repo(&self, repo: &str) -> PathBuf {
        self.repos.join(repo)
    }

    fn digest_path(&self, repo: &str, kind: &str, d: &Digest) -> PathBuf {
        self.repo(repo)
            .join(kind)
            .join(d.algorithm().as_str())
            .join(d.hex())
    }

    fn referrer_dir(&self, repo: &str, subject: &Digest) -> PathBuf {
        self.digest_path(repo, "_referrers", subject)
    }
}

/// Writes `bytes` to `path` atomically: temporary file, fsync, rename, fsync directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().expect("metadata paths have a parent");
    fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| Error::io("create temporary file in", dir, e))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| Error::io("write", tmp.path(), e))?;
    tmp.persist(path)
        .map_err(|e| Error::io("rename into place", path, e.error))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("fsync directory", dir, e))
}

fn read_opt(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if is_absent(&e) => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

fn remove(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if is_absent(&e) => Ok(false),
        Err(e) => Err(Error::io("remove", path, e)),
    }
}

fn is_absent(e: &io::Error) -> bool {
    // NotADirectory: a path through a file, e.g. a tag file used as a directory.
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// Names in a directory (empty if it does not exist), skipping temporaries.
fn entries(dir: &Path) -> Result<Vec<(String, fs::Metadata)>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if is_absent(&e) => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read directory", dir, e)),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|e| Error::io("read directory", dir, e))?;
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        if name.starts_with(".tmp-") {
            continue;
        }
        let Ok(meta) = e.metadata() else { continue };
        out.push((name, meta));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn digests_in(dir: &Path) -> Result<Vec<(Digest, SystemTime)>> {
    let mut out = Vec::new();
    for alg in [berth_oci::Algorithm::Sha256, berth_oci::Algorithm::Sha512] {
        for (name, meta) in entries(&dir.join(alg.as_str()))? {
            if let Ok(d) = Digest::new(alg, &name) {
                out.push((d, meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
            }
        }
    }
    Ok(out)
}

impl MetaStore for FsMeta {
    fn repo_exists(&self, repo: &str) -> Result<bool> {
        let dir = self.repo(repo);
        Ok(["_manifests", "_layers", "_tags"]
            .iter()
            .any(|k| dir.join(k).is_dir()))
    }

    fn repositories(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut stack = vec![(self.repos.clone(), String::new())];
        while let Some((dir, name)) = stack.pop() {
            let mut is_repo = false;
            for (entry, meta) in entries(&dir)? {
                if !meta.is_dir() {
                    continue;
                }
                if entry.starts_with('_') {
                    is_repo = true;
                } else if crate::routes::valid_name(&entry) {
                    let child = if name.is_empty() {
                        entry.clone()
                    } else {
                        format!("{name}/{entry}")
                    };
                    stack.push((dir.join(&entry), child));
                }
            }
            if is_repo && !name.is_empty() {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    fn link_blob(&self, repo: &str, digest: &Digest) -> Result<()> {
        write_atomic(&self.digest_path(repo, "_layers", digest), b"")
    }

    fn blob_linked(&self, repo: &str, digest: &Digest) -> Result<bool> {
        Ok(self.digest_path(repo, "_layers", digest).is_file())
    }

    fn unlink_blob(&self, repo: &str, digest: &Digest) -> Result<bool> {
        remove(&self.digest_path(repo, "_layers", digest))
    }

    fn blob_links(&self, repo: &str) -> Result<Vec<(Digest, SystemTime)>> {
        digests_in(&self.repo(repo).join("_layers"))
    }

    fn link_manifest(&self, repo: &str, digest: &Digest, media_type: &str) -> Result<()> {
        write_atomic(
            &self.digest_path(repo, "_manifests", digest),
            media_type.as_bytes(),
        )
    }

    fn manifest_media_type(&self, repo: &str, digest: &Digest) -> Result<Option<String>> {
        let path = self.digest_path(repo, "_manifests", digest);
        Ok(read_opt(&path)?.map(|b| String::from_utf8_lossy(&b).trim().to_owned()))
    }

    fn unlink_manifest(&self, repo: &str, digest: &Digest) -> Result<bool> {
        remove(&self.digest_path(repo, "_manifests", digest))
    }

    fn manifests(&self, repo: &str) -> Result<Vec<Digest>> {
        Ok(digests_in(&self.repo(repo).join("_manifests"))?
            .into_iter()
            .map(|(d, _)| d)
            .collect())
    }

    fn set_tag(&self, repo: &str, tag: &str, digest: &Digest) -> Result<()> {
        let path = self.repo(repo).join("_tags").join(tag);
        write_atomic(&path, digest.to_string().as_bytes())
    }

    fn tag(&self, repo: &str, tag: &str) -> Result<Option<Digest>> {
        let path = self.repo(repo).join("_tags").join(tag);
        match read_opt(&path)? {
            None => Ok(None),
            Some(b) => String::from_utf8_lossy(&b)
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| Error::Corrupt(format!("{} holds no digest", path.display()))),
        }
    }

    fn delete_tag(&self, repo: &str, tag: &str) -> Result<bool> {
        remove(&self.repo(repo).join("_tags").join(tag))
    }

    fn tag_names(&self, repo: &str) -> Result<Vec<String>> {
        Ok(entries(&self.repo(repo).join("_tags"))?
            .into_iter()
            .filter(|(n, m)| m.is_file() && crate::routes::valid_tag(n))
            .map(|(n, _)| n)
            .collect())
    }

    fn add_referrer(&self, repo: &str, subject: &Digest, referrer: &Descriptor) -> Result<()> {
        let path = self.referrer_dir(repo, subject).join(format!(
            "{}-{}",
            referrer.digest.algorithm(),
            referrer.digest.hex()
        ));
        let bytes = serde_json::to_vec(referrer).map_err(|e| Error::Corrupt(e.to_string()))?;
        write_atomic(&path, &bytes)
    }

    fn remove_referrer(&self, repo: &str, subject: &Digest, referrer: &Digest) -> Result<()> {
        let dir = self.referrer_dir(repo, subject);
        remove(&dir.join(format!("{}-{}", referrer.algorithm(), referrer.hex())))?;
        // Leave no empty directories behind; failure (not empty) is fine.
        let _ = fs::remove_dir(&dir);
        Ok(())
    }

    fn referrers(&self, repo: &str, subject: &Digest) -> Result<Vec<Descriptor>> {
        let dir = self.referrer_dir(repo, subject);
        let mut out = Vec::new();
        for (name, _) in entries(&dir)? {
            let path = dir.join(&name);
            let Some(bytes) = read_opt(&path)? else {
                continue;
            };
            let d: Descriptor = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))?;
            out.push(d);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_tags_and_referrers_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let m = FsMeta::open(dir.path()).unwrap();
        let d = Digest::sha256_of(b"x");
        let d512 = berth_oci::Algorithm::Sha512.digest(b"x");
        assert!(!m.repo_exists("a/b").unwrap());
        m.link_blob("a/b", &d).unwrap();
        m.link_blob("a/b", &d512).unwrap();
        assert!(m.blob_linked("a/b", &d).unwrap());
        assert!(!m.blob_linked("a", &d).unwrap());
        assert_eq!(m.blob_links("a/b").unwrap().len(), 2);
        m.link_manifest("a", &d, "application/vnd.oci.image.manifest.v1+json")
            .unwrap();
        m.set_tag("a", "v1", &d).unwrap();
        m.set_tag("a", "V0", &d).unwrap();
        assert_eq!(m.repositories().unwrap(), vec!["a", "a/b"]);
        assert_eq!(m.tag_names("a").unwrap(), vec!["V0", "v1"]);
        assert_eq!(m.tag("a", "v1").unwrap(), Some(d.clone()));
        assert_eq!(m.tag("a", "nope").unwrap(), None);
        assert!(m.delete_tag("a", "V0").unwrap());
        assert!(!m.delete_tag("a", "V0").unwrap());
        let r = Descriptor::new(
            "application/vnd.oci.image.manifest.v1+json",
            d512.clone(),
            3,
        );
        m.add_referrer("a", &d, &r).unwrap();
        assert_eq!(m.referrers("a", &d).unwrap(), vec![r]);
        m.remove_referrer("a", &d, &d512).unwrap();
        assert!(m.referrers("a", &d).unwrap().is_empty());
        assert_eq!(
            m.manifest_media_type("a", &d).unwrap().as_deref(),
            Some("application/vnd.oci.image.manifest.v1+json")
        );
        assert!(m.unlink_manifest("a", &d).unwrap());
        assert_eq!(m.manifest_media_type("a", &d).unwrap(), None);
    }
}
