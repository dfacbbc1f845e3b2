//! Real directories and a real overlayfs mount: write → apply round trips,
//! whiteouts and opaque directories, and confinement of hostile tars.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

use berth_layer::apply::{ApplyOptions, apply_layer};
use berth_layer::write::{Source, WriteOptions, write_layer};

/// Every path below `root` with type, mode, owner, size, content digest, link target.
fn snapshot(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let md = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let extra = if md.file_type().is_symlink() {
                format!("-> {}", fs::read_link(&p).unwrap().display())
            } else if md.is_file() {
                format!("{:?}", fs::read(&p).unwrap())
            } else {
                String::new()
            };
            out.push(format!(
                "{rel} mode={:o} uid={} gid={} {extra}",
                md.mode(),
                md.uid(),
                md.gid()
            ));
            if md.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    walk(root, root, &mut out);
    out
}

fn tree(root: &Path) {
    fs::create_dir_all(root.join("etc/deep/er")).unwrap();
    fs::write(root.join("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n").unwrap();
    fs::write(root.join("etc/deep/er/file"), b"deep").unwrap();
    fs::set_permissions(root.join("etc/deep"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::write(root.join("suid"), b"x").unwrap();
    std::os::unix::fs::chown(root.join("suid"), Some(1000), Some(1000)).unwrap();
    fs::set_permissions(root.join("suid"), fs::Permissions::from_mode(0o4755)).unwrap();
    symlink("../etc/passwd", root.join("etc/deep/link")).unwrap();
    fs::hard_link(root.join("etc/passwd"), root.join("hardlink")).unwrap();
    let long = "d".repeat(120);
    fs::create_dir_all(root.join(&long)).unwrap();
    fs::write(
        root.join(&long).join("f".repeat(140)),
        b"long names use PAX",
    )
    .unwrap();
    symlink("t".repeat(150), root.join("longlink")).unwrap();
}

#[test]
fn tree_roundtrip_preserves_everything() {
    let src = tempfile::tempdir().unwrap();
    tree(src.path());
    let (tarball, stats) = write_layer(
        src.path(),
        Source::Tree,
        &WriteOptions::default(),
        Vec::new(),
    )
    .unwrap();
    assert!(stats.entries >= 10, "{stats:?}");
    let dst = tempfile::tempdir().unwrap();
    apply_layer(dst.path(), &tarball[..], &ApplyOptions::default()).unwrap();
    assert_eq!(snapshot(src.path()), snapshot(dst.path()));
    // Hardlinks stay hardlinks.
    let a = fs::metadata(dst.path().join("etc/passwd")).unwrap();
    let b = fs::metadata(dst.path().join("hardlink")).unwrap();
    assert_eq!(a.ino(), b.ino());
    // Deterministic: the same tree gives the same bytes.
    let (again, _) = write_layer(
        src.path(),
        Source::Tree,
        &WriteOptions::default(),
        Vec::new(),
    )
    .unwrap();
    assert_eq!(tarball, again);
}

#[test]
fn clamped_mtimes_and_prefix() {
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("a"), b"a").unwrap();
    let opts = WriteOptions {
        clamp_mtime: Some(1000),
        prefix: Some("app/bin".into()),
    };
    let (t, _) = write_layer(src.path(), Source::Tree, &opts, Vec::new()).unwrap();
    let mut ar = tar::Archive::new(&t[..]);
    let names: Vec<(String, u64)> = ar
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.path().unwrap().display().to_string(),
                e.header().mtime().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names.iter().map(|n| n.0.as_str()).collect::<Vec<_>>(),
        ["app/bin/", "app/bin/a"]
    );
    assert!(names.iter().all(|n| n.1 <= 1000));
}

fn mount_overlay(lower: &Path, upper: &Path, work: &Path, merged: &Path) {
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    let st = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &opts])
        .arg(merged)
        .status()
        .unwrap();
    assert!(st.success(), "mounting overlayfs");
}

#[test]
fn overlay_upper_diff_applies_to_the_merged_view() {
    let t = tempfile::tempdir().unwrap();
    let [lower, upper, work, merged, replay] =
        ["lower", "upper", "work", "merged", "replay"].map(|d| {
            let p = t.path().join(d);
            fs::create_dir_all(&p).unwrap();
            p
        });
    tree(&lower);
    fs::create_dir_all(lower.join("opaque/old")).unwrap();
    fs::write(lower.join("opaque/old/x"), b"x").unwrap();
    fs::write(lower.join("gone"), b"bye").unwrap();
    mount_overlay(&lower, &upper, &work, &merged);
    let result = std::panic::catch_unwind(|| {
        // What a RUN step might do.
        fs::remove_file(merged.join("gone")).unwrap();
        fs::remove_dir_all(merged.join("etc/deep")).unwrap();
        fs::remove_dir_all(merged.join("opaque")).unwrap();
        fs::create_dir(merged.join("opaque")).unwrap();
        fs::write(merged.join("opaque/new"), b"new").unwrap();
        fs::write(merged.join("etc/passwd"), b"changed\n").unwrap();
        fs::write(merged.join("added"), b"added").unwrap();
        let (diff, stats) = write_layer(
            &upper,
            Source::OverlayUpper,
            &WriteOptions::default(),
            Vec::new(),
        )
        .unwrap();
        assert!(stats.whiteouts >= 3, "{stats:?}");
        let names: Vec<String> = tar::Archive::new(&diff[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert!(names.contains(&".wh.gone".to_owned()), "{names:?}");
        assert!(names.contains(&"etc/.wh.deep".to_owned()), "{names:?}");
        assert!(
            names.contains(&"opaque/.wh..wh..opq".to_owned()),
            "{names:?}"
        );
        // Lower + diff == merged.
        let (base, _) =
            write_layer(&lower, Source::Tree, &WriteOptions::default(), Vec::new()).unwrap();
        apply_layer(&replay, &base[..], &ApplyOptions::default()).unwrap();
        apply_layer(&replay, &diff[..], &ApplyOptions::default()).unwrap();
        assert_eq!(snapshot(&merged), snapshot(&replay));
    });
    let _ = Command::new("umount").arg(&merged).status();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

fn raw_tar(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, data, link) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        // Raw name bytes: the tar crate refuses '..' in set_path.
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn hostile_tars_stay_inside_the_root() {
    let outside = tempfile::tempdir().unwrap();
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let out = outside.path().display().to_string();
    let tarball = raw_tar(&[
        (
            "../../../escape-dotdot",
            tar::EntryType::Regular,
            b"1",
            None,
        ),
        ("evil", tar::EntryType::Symlink, b"", Some(&out)),
        ("evil/through-symlink", tar::EntryType::Regular, b"2", None),
        ("abs", tar::EntryType::Symlink, b"", Some("/")),
        ("abs/tmp-escape", tar::EntryType::Regular, b"3", None),
        ("hl", tar::EntryType::Link, b"", Some("../../../etc/passwd")),
    ]);
    // The hardlink target is resolved inside the root, where it does not exist.
    let err = apply_layer(&root, &tarball[..], &ApplyOptions::default());
    let err = err.expect_err("hardlink to a missing in-root path fails");
    assert!(err.to_string().contains("hardlink"), "{err}");
    assert!(
        fs::read_dir(outside.path()).unwrap().next().is_none(),
        "nothing escaped"
    );
    assert_eq!(fs::read(root.join("escape-dotdot")).unwrap(), b"1");
    // The symlinked parent was resolved inside the root.
    let inside = root
        .join(outside.path().strip_prefix("/").unwrap())
        .join("through-symlink");
    assert_eq!(fs::read(inside).unwrap(), b"2");
    assert_eq!(fs::read(root.join("tmp-escape")).unwrap(), b"3");
    assert!(!Path::new("/tmp-escape").exists());
}
