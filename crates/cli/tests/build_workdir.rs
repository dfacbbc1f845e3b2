//! WORKDIR as BuildKit: missing directories are created owned by the current
//! USER; existing parents keep their mode and owner in the layer.

mod common;

use std::os::unix::fs::MetadataExt as _;

use common::{berth, ok, store_with_busybox};

#[test]
fn workdir_creates_directories_owned_by_user_and_keeps_parents() {
    let root = store_with_busybox();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox:latest\nWORKDIR /opt/rootdir\nUSER app\nWORKDIR /home/app/work/deep\n\
         RUN touch made-by-app\n",
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("fs");
    ok(berth(root.path())
        .args(["build", "--progress", "plain", "-o"])
        .arg(format!("type=local,dest={}", dest.display()))
        .arg(ctx.path()));
    let md = |p: &str| std::fs::metadata(dest.join(p)).unwrap();
    // The fixture's /home/app is 1000:1000 and /home root-owned: unchanged.
    assert_eq!((md("home").uid(), md("home").gid()), (0, 0));
    assert_eq!((md("home/app").uid(), md("home/app").gid()), (1000, 1000));
    for p in ["home/app/work", "home/app/work/deep"] {
        assert_eq!((md(p).uid(), md(p).gid()), (1000, 1000), "{p}");
        assert_eq!(md(p).mode() & 0o7777, 0o755, "{p}");
    }
    // Before USER: root's.
    assert_eq!((md("opt/rootdir").uid(), md("opt/rootdir").gid()), (0, 0));
    // And the user can write there.
    assert_eq!(md("home/app/work/deep/made-by-app").uid(), 1000);
}

/// As BuildKit (checked against docker 20.10's): a stage whose base sets no
/// PATH gets the default one, in the image config and for expansion.
#[test]
fn bases_without_path_get_the_default_path() {
    const DEFAULT: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    let root = tempfile::tempdir().unwrap();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("x"), "x\n").unwrap();
    let env_of = |dockerfile: &str, tag: &str| {
        std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
        ok(berth(root.path())
            .args(["build", "--progress", "plain", "-t", tag])
            .arg(ctx.path()));
        let v = common::json(&ok(berth(root.path()).args(["inspect", tag])));
        v[0]["Config"]["Env"].clone()
    };
    assert_eq!(
        env_of("FROM scratch\nCOPY x /x\n", "s1"),
        serde_json::json!([DEFAULT])
    );
    assert_eq!(
        env_of("FROM scratch\nENV PATH=$PATH:/opt/bin A=1\n", "s2"),
        serde_json::json!([format!("{DEFAULT}:/opt/bin"), "A=1"])
    );
    // An imported image has no Env at all.
    let tar = ctx.path().join("rootfs.tar");
    common::write_tar(&tar, &[("etc/hostname", b"h\n")]);
    ok(berth(root.path()).arg("import").arg(&tar).arg("noenv:1"));
    assert_eq!(
        env_of("FROM noenv:1\nENV B=2\n", "s3"),
        serde_json::json!([DEFAULT, "B=2"])
    );
}
