//! Equivalence with Docker's BuildKit: the same multi-stage Dockerfile with
//! RUN steps (mounts, users, whiteouts, links) built by berth and by the
//! dockerd this test starts (Debian's docker.io 20.10, BuildKit 0.8) must
//! give the same final file system (paths, types, modes, owners, contents,
//! symlink targets; not mtimes) and the same image config.
//!
//! BuildKit 0.8 predates heredocs and leaves the empty directories it makes
//! for mount targets in the image (current BuildKit does not), so the
//! Dockerfile mounts only on directories the base already has.

mod build_util;
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use build_util::*;
use common::*;

use common::dockerd::Dockerd;

/// What is compared of one entry: no mtimes.
fn comparable(fs: &BTreeMap<String, Entry>) -> BTreeMap<String, (String, u32, u64, u64)> {
    fs.iter()
        .map(|(p, e)| {
            let kind = match &e.kind {
                Kind::File(d) => format!("file {}", sha256_hex(d)),
                Kind::Dir => "dir".into(),
                Kind::Symlink(t) => format!("symlink {t}"),
                Kind::Hardlink(t) => format!("hardlink {t}"),
                Kind::Other => "other".into(),
            };
            (p.clone(), (kind, e.mode, e.uid, e.gid))
        })
        .collect()
}

/// Reads a `docker save` archive (docker-archive) into config and layers.
fn docker_saved(archive: &Path) -> (serde_json::Value, Vec<Vec<u8>>) {
    let entries: BTreeMap<String, Vec<u8>> = tar_entries(archive).into_iter().collect();
    let manifest = json(std::str::from_utf8(&entries["manifest.json"]).unwrap());
    let config = serde_json::from_slice(&entries[manifest[0]["Config"].as_str().unwrap()]).unwrap();
    let layers = manifest[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| decompress(&entries[l.as_str().unwrap()]))
        .collect();
    (config, layers)
}

/// A store holding `busybox:latest` made by `scripts/make-busybox-image.sh`
/// (with `PATH` in its config, as real base images have: BuildKit adds a
/// default `PATH` to images that lack one).
fn busybox_store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/make-busybox-image.sh"))
        .env("BERTH", berth_bin())
        .env("BERTH_ROOT", dir.path())
        .env("BERTH_FIXTURES", fixtures.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

const DOCKERFILE: &str = r#"FROM busybox AS build
RUN mkdir -p /out/sub && echo built > /out/artifact && chmod 640 /out/artifact && ln -s artifact /out/link && touch /out/sub/empty && chmod 1777 /out/sub
FROM busybox
ARG Z=9
ARG A=1
ARG Z=8
ENV B=2
WORKDIR /app
COPY --from=build /out /app/out
RUN --mount=type=cache,target=/var/tmp echo $A$B > /app/ab && rm /bin/vi && rm -r /home/app && echo 'bob:x:1234:1234::/home/bob:/bin/sh' >> /etc/passwd && mkdir -p /home/bob && chown 1234:1234 /home/bob /app/ab
RUN --mount=type=bind,from=build,source=/out,target=/root cat /root/artifact > /app/copied && mkfifo /app/fifo && ln /app/copied /app/hardlink && ln -s /app/copied /usr/bin/copied
RUN --mount=type=tmpfs,target=/tmp echo gone > /tmp/x && echo kept > /app/kept
RUN rm -rf /app/out/sub && mkdir /app/out/sub && echo new > /app/out/sub/new
USER bob
RUN id > /home/bob/id && echo $HOME $A $B > /home/bob/env && touch /home/bob/.hidden
CMD ["sh"]
"#;

#[test]
fn run_steps_build_the_same_image_as_docker_buildkit() {
    let docker = Dockerd::start();
    let store = busybox_store();
    let root = store.path();
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("busybox.tar");
    ok(berth(root)
        .arg("save")
        .arg("-o")
        .arg(&archive)
        .arg("busybox:latest"));
    let out = docker
        .command()
        .arg("load")
        .arg("-i")
        .arg(&archive)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let ctx = Ctx::new(DOCKERFILE);
    let out = docker
        .command()
        .args(["build", "--network", "none", "-t", "eq:docker"])
        .arg(ctx.path())
        .env("DOCKER_BUILDKIT", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs_tar = tmp.path().join("theirs.tar");
    let out = docker
        .command()
        .arg("save")
        .arg("-o")
        .arg(&theirs_tar)
        .arg("eq:docker")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (their_config, their_layers) = docker_saved(&theirs_tar);

    build(root, ctx.path(), &["-t", "eq:berth"]);
    let ours = saved(root, "eq:berth");

    let theirs_fs = comparable(&merge(&their_layers));
    let ours_fs = comparable(&merge(&ours.layers));
    let mut diff = Vec::new();
    for (p, t) in &theirs_fs {
        match ours_fs.get(p) {
            None => diff.push(format!("only in docker's: {p} {t:?}")),
            Some(o) if o != t => diff.push(format!("{p}: docker {t:?}, berth {o:?}")),
            _ => {}
        }
    }
    for (p, o) in &ours_fs {
        if !theirs_fs.contains_key(p) {
            diff.push(format!("only in berth's: {p} {o:?}"));
        }
    }
    assert!(diff.is_empty(), "file systems differ:\n{}", diff.join("\n"));
    // Sanity: the comparison saw the interesting entries.
    for p in [
        "app/ab",
        "app/hardlink",
        "app/fifo",
        "usr/bin/copied",
        "home/bob/id",
        "app/out/sub/new",
    ] {
        assert!(ours_fs.contains_key(p), "{p}");
    }
    for p in ["bin/vi", "home/app", "tmp/x", "app/out/sub/empty"] {
        assert!(!ours_fs.contains_key(p), "{p}");
    }

    // The image configs agree on what runs and how.
    for key in ["Env", "Cmd", "Entrypoint", "WorkingDir", "User", "Labels"] {
        assert_eq!(
            ours.config["config"][key], their_config["config"][key],
            "config.{key}"
        );
    }
    let created_by = |c: &serde_json::Value| -> Vec<String> {
        c["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["created_by"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(created_by(&ours.config), created_by(&their_config));
}
