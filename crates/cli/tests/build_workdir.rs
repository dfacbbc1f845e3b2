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
