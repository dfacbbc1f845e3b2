//! Persistent layer snapshots: builds as root work on overlay views of
//! layers extracted once into `<store>/snapshots/` (or committed straight
//! from a RUN's upper directory), and must produce exactly what a build on
//! private extracted copies (`BERTH_SNAPSHOTS=off`, the rootless path)
//! produces: whiteouts, opaque directories, metadata-only changes, COPY
//! --from, bind mounts from stages, WORKDIR.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::Path;

use common::{berth, ok, store_with_busybox};

const DOCKERFILE: &str = r#"FROM busybox:latest AS base
RUN mkdir -p /d/sub && echo a > /d/a && echo s > /d/sub/s && echo gone > /etc/gone && ln -s /d /dl
RUN rm /etc/gone && rm -rf /d && mkdir /d && echo b > /d/b
RUN chmod 700 /d && echo more >> /d/b && chown 1000:1000 /d/b

FROM busybox:latest AS other
WORKDIR /w/x
COPY --from=base /d /copied
RUN find /copied | sort > /w/list && stat -c '%n %a %u %g %s' /copied/b >> /w/list

FROM base
COPY --from=other /w /w
RUN test ! -e /etc/gone && test ! -e /d/a && test ! -e /d/sub && test -L /dl \
 && test "$(cat /d/b)" = "$(printf 'b\nmore')" && test "$(ls -A /d)" = b \
 && test "$(stat -c %a /d)" = 700 && test -f /w/list
RUN --mount=type=bind,from=other,source=/w,target=/mnt \
 grep -qx '/copied/b 644 1000 1000 7' /mnt/list && grep -qx /copied/b /mnt/list \
 && ! grep -q /copied/a /mnt/list && cp /mnt/list /mnt-list
"#;

fn context() -> tempfile::TempDir {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), DOCKERFILE).unwrap();
    ctx
}

fn build(root: &Path, ctx: &Path, tag: &str, snapshots: bool) -> String {
    let out = ok(berth(root)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env("BERTH_SNAPSHOTS", if snapshots { "on" } else { "off" })
        .args(["build", "-q", "-t", tag])
        .arg(ctx));
    out.trim().to_owned()
}

/// Snapshot name → inode of its `fs` directory.
fn snapshots(root: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir(root.join("snapshots")) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Ok(md) = std::fs::metadata(e.path().join("fs")) {
                out.insert(name, md.ino());
            }
        }
    }
    out
}

#[test]
fn snapshot_builds_equal_private_copy_builds_and_reuse_extracted_layers() {
    let root = store_with_busybox();
    let ctx = context();

    let flat = build(root.path(), ctx.path(), "flat", false);
    assert!(
        snapshots(root.path()).is_empty(),
        "BERTH_SNAPSHOTS=off made snapshots"
    );
    ok(berth(root.path()).args(["builder", "prune"]));

    let snap = build(root.path(), ctx.path(), "snap", true);
    assert_eq!(
        snap, flat,
        "a build on snapshots made a different image than one on private copies"
    );
    let first = snapshots(root.path());
    // The busybox layer, and the RUN/COPY/WORKDIR layers committed as made.
    // (The Dockerfile's RUN steps check what each stage sees.)
    assert!(first.len() >= 7, "snapshots: {first:?}");

    // Without the step cache, the snapshots are reused, not remade: the
    // same directories (inodes), and the same image again.
    ok(berth(root.path()).args(["builder", "prune", "--keep-storage", "0"]));
    let kept = snapshots(root.path());
    let base_chain: Vec<_> = kept.keys().cloned().collect();
    assert!(
        !base_chain.is_empty(),
        "the base image's snapshot was pruned"
    );
    let again = build(root.path(), ctx.path(), "again", true);
    assert_eq!(again, flat);
    let second = snapshots(root.path());
    for (name, ino) in &kept {
        assert_eq!(second.get(name), Some(ino), "snapshot {name} was remade");
    }

    // Once neither images nor the step cache keep the built layers, the GC
    // drops them and, with them, their snapshots; the base image's stays.
    ok(berth(root.path()).args(["rmi", "flat", "snap", "again"]));
    ok(berth(root.path()).args(["builder", "prune", "--keep-storage", "0"]));
    let left = snapshots(root.path());
    // A one-layer base: its chain id is its diff_id.
    let busybox = common::json(&ok(berth(root.path()).args(["inspect", "busybox:latest"])));
    let diff_id = busybox[0]["RootFS"]["Layers"][0]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        left.keys().collect::<Vec<_>>(),
        vec![diff_id.trim_start_matches("sha256:")],
        "only the base image's snapshot should be left"
    );

    // `system df` reports them.
    let df = ok(berth(root.path()).args(["system", "df"]));
    assert!(df.contains("Layer Snapshots"), "{df}");
    // A plain prune keeps the base image's (as docker keeps its images
    // unpacked); --all removes every snapshot.
    ok(berth(root.path()).args(["builder", "prune"]));
    assert_eq!(snapshots(root.path()).len(), 1);
    let out = ok(berth(root.path()).args(["builder", "prune", "--all"]));
    assert!(out.contains("1 layer snapshots"), "{out}");
    assert!(snapshots(root.path()).is_empty());
}

/// Layers extracted into snapshots (not committed from a RUN) keep their
/// whiteouts and opaque directories in overlay form, and a build on them
/// sees what the layers say.
#[test]
fn extracted_layers_keep_whiteouts_and_opaque_directories() {
    let src = store_with_busybox();
    let ctx = context();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        DOCKERFILE
            .split("\nFROM busybox:latest AS other")
            .next()
            .unwrap(),
    )
    .unwrap();
    build(src.path(), ctx.path(), "layered:1", false);
    // Into a fresh store, through an archive: nothing there was built.
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("img.tar");
    ok(berth(src.path())
        .args(["save", "-o"])
        .arg(&tar)
        .arg("layered:1"));
    let root = tempfile::tempdir().unwrap();
    ok(berth(root.path()).arg("load").arg("-i").arg(&tar));
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM layered:1\nRUN test ! -e /etc/gone && test ! -e /d/a && test ! -e /d/sub \
         && test -L /dl && test \"$(cat /d/b)\" = \"$(printf 'b\\nmore')\" \
         && test \"$(ls -A /d)\" = b && touch /ok\n",
    )
    .unwrap();
    build(root.path(), ctx.path(), "checked", true);
    // Find the layer that removed /etc/gone and replaced /d: a whiteout
    // device and an opaque directory.
    let mut whiteout = false;
    let mut opaque = false;
    for name in snapshots(root.path()).keys() {
        let fs = root.path().join("snapshots").join(name).join("fs");
        if let Ok(md) = std::fs::symlink_metadata(fs.join("etc/gone")) {
            whiteout |= md.file_type().is_char_device() && md.rdev() == 0;
        }
        let mut buf = [0u8; 8];
        if let Ok(n) = rustix::fs::getxattr(fs.join("d"), "trusted.overlay.opaque", &mut buf) {
            opaque |= &buf[..n] == b"y";
        }
    }
    assert!(
        whiteout,
        "no whiteout device for /etc/gone in the snapshots"
    );
    assert!(opaque, "no opaque /d in the snapshots");
}

/// Snapshots are not fsynced: one made before the machine last booted (it
/// may have been torn by a crash) is made again, not used.
#[test]
fn snapshots_from_an_earlier_boot_are_made_again() {
    let root = store_with_busybox();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox:latest\nRUN cat /bin/busybox > /copy\n",
    )
    .unwrap();
    build(root.path(), ctx.path(), "a", true);
    let before = snapshots(root.path());
    assert_eq!(before.len(), 2, "{before:?}");
    // Pretend every snapshot comes from an earlier boot, and tear one file.
    for name in before.keys() {
        let dir = root.path().join("snapshots").join(name);
        std::fs::write(dir.join("boot"), "an-earlier-boot").unwrap();
        if dir.join("fs/copy").exists() {
            std::fs::write(dir.join("fs/copy"), b"").unwrap();
        }
    }
    ok(berth(root.path()).args(["builder", "prune", "--keep-storage", "0"]));
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox:latest\nRUN cat /bin/busybox > /copy\nRUN cmp /copy /bin/busybox\n",
    )
    .unwrap();
    build(root.path(), ctx.path(), "b", true);
    let after = snapshots(root.path());
    for (name, ino) in &before {
        assert_ne!(
            after.get(name),
            Some(ino),
            "snapshot {name} was used, not made again"
        );
    }
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    for name in after.keys() {
        let b =
            std::fs::read_to_string(root.path().join("snapshots").join(name).join("boot")).unwrap();
        assert_eq!(b, boot.trim());
    }
}

/// Builds running at once on one store extract a missing base once each at
/// most, never use each other's half-made snapshots, and both succeed.
#[test]
fn concurrent_builds_share_snapshots() {
    let root = store_with_busybox();
    let ctxs: Vec<tempfile::TempDir> = (0..4)
        .map(|i| {
            let ctx = tempfile::tempdir().unwrap();
            std::fs::write(
                ctx.path().join("Dockerfile"),
                format!(
                    "FROM busybox:latest\nRUN echo {i} > /n && cat /bin/busybox > /copy\n\
                     RUN test \"$(cat /n)\" = {i} && cmp /copy /bin/busybox\n"
                ),
            )
            .unwrap();
            ctx
        })
        .collect();
    let children: Vec<_> = ctxs
        .iter()
        .enumerate()
        .map(|(i, ctx)| {
            berth(root.path())
                .args(["build", "-q", "-t", &format!("c{i}")])
                .arg(ctx.path())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The base once, and each build's first RUN layer (the second changes
    // nothing, so it makes no layer).
    let snaps = snapshots(root.path());
    assert_eq!(snaps.len(), 1 + 4, "{snaps:?}");
    let leftovers: Vec<_> = std::fs::read_dir(root.path().join("snapshots"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    ok(berth(root.path()).args(["system", "check"]));
}
