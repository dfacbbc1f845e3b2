//! Black-box tests of `berth build`: the cache (what invalidates and what
//! must not), targets, errors, and archive outputs. Images are read back
//! without berth (docker/OCI archive → layers → merged tree).

mod build_util;
mod common;

use std::time::{Duration, SystemTime};

use build_util::*;
use common::*;

fn copy_dir(src: &std::path::Path, dst: &std::path::Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
}

/// examples/hello, copied so the test can edit it.
fn hello_example() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    copy_dir(&repo_root().join("examples/hello"), d.path());
    d
}

#[test]
fn multistage_example_builds_and_rebuild_is_fully_cached() {
    let store = store_with_busybox();
    let root = store.path();
    let ctx = hello_example();
    let first = build(root, ctx.path(), &["-t", "hello"]);
    assert!(first.cached.is_empty(), "cold build: {}", first.stderr);
    assert!(!first.fully_cached());

    let fs = image_fs(root, "hello");
    // The final stage: busybox + the two other stages' outputs + the script.
    assert!(fs.contains_key("bin/busybox"), "based on busybox");
    assert_eq!(
        fs["srv/app/site/index.html"].data(),
        std::fs::read(ctx.path().join("site/index.html")).unwrap()
    );
    assert_eq!(
        fs["srv/app/site/build-info.txt"].text(),
        "built by berth from busybox:latest\n",
        "heredoc expanded with the stage's ARG"
    );
    assert_eq!(
        fs["etc/app/config.ini"].data(),
        std::fs::read(ctx.path().join("config.ini")).unwrap()
    );
    let serve = &fs["usr/local/bin/serve"];
    assert_eq!((serve.mode, serve.uid, serve.gid), (0o755, 1000, 1000));

    let inspect = json(&ok(berth(root).args(["inspect", "hello"])));
    let cfg = &inspect[0]["Config"];
    assert_eq!(cfg["User"], "app");
    assert_eq!(cfg["WorkingDir"], "/srv/app");
    assert_eq!(cfg["Cmd"], serde_json::json!(["serve"]));
    assert!(cfg["ExposedPorts"]["8080/tcp"].is_object());
    assert_eq!(
        cfg["Labels"]["org.opencontainers.image.title"],
        "berth example"
    );
    assert_eq!(inspect[0]["Id"], first.id.as_str());

    let again = build(root, ctx.path(), &["-t", "hello"]);
    assert!(again.fully_cached(), "{}", again.stderr);
    assert_eq!(
        again.id, first.id,
        "a fully cached rebuild is the same image"
    );
    // Every layer step was reported CACHED.
    assert!(
        again.ran_texts(&["COPY", "WORKDIR", "ADD"]).is_empty(),
        "{}",
        again.stderr
    );
}

#[test]
fn touch_does_not_invalidate_but_a_same_size_same_mtime_edit_does() {
    let store = store_with_busybox();
    let root = store.path();
    let ctx = Ctx::new("FROM busybox\nCOPY a.txt /a.txt\nCOPY b.txt /b.txt\n");
    ctx.write("a.txt", "alpha\n").write("b.txt", "bravo\n");
    let first = build(root, ctx.path(), &[]);

    // touch: new mtime, same content.
    set_mtime(
        &ctx.join("a.txt"),
        SystemTime::now() + Duration::from_secs(3600),
    );
    let touched = build(root, ctx.path(), &[]);
    assert!(touched.fully_cached(), "{}", touched.stderr);
    assert_eq!(touched.id, first.id);

    // Same size, and the mtime restored to the nanosecond: only the content
    // (and ctime, which cannot be restored) differ.
    let p = ctx.join("b.txt");
    let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
    std::fs::write(&p, "BRAVO\n").unwrap();
    set_mtime(&p, mtime);
    assert_eq!(std::fs::metadata(&p).unwrap().modified().unwrap(), mtime);
    let edited = build(root, ctx.path(), &[]);
    assert_eq!(
        edited.ran_texts(&["COPY"]),
        ["COPY b.txt /b.txt".to_owned()].into(),
        "{}",
        edited.stderr
    );
    assert_ne!(edited.id, first.id);
    assert_eq!(image_fs(root, &edited.id)["b.txt"].text(), "BRAVO\n");

    // A second rebuild uses the (now updated) hash cache and is fully cached.
    let again = build(root, ctx.path(), &[]);
    assert!(again.fully_cached(), "{}", again.stderr);
    assert_eq!(again.id, edited.id);
}

#[test]
fn unreferenced_context_changes_do_not_invalidate() {
    let store = store_with_busybox();
    let root = store.path();
    let ctx = Ctx::new("FROM busybox\nCOPY app/ /app/\n");
    ctx.write("app/main.sh", "echo hi\n")
        .write("docs/readme", "v1\n");
    let first = build(root, ctx.path(), &[]);
    ctx.write("docs/readme", "v2, longer\n")
        .write("docs/new", "x");
    let second = build(root, ctx.path(), &[]);
    assert!(second.fully_cached(), "{}", second.stderr);
    assert_eq!(second.id, first.id);
    // A new file inside the copied directory does invalidate.
    ctx.write("app/extra", "y");
    let third = build(root, ctx.path(), &[]);
    assert!(!third.fully_cached());
    assert_eq!(image_fs(root, &third.id)["app/extra"].text(), "y");
    // So does a mode change (the permission bits are part of the content).
    ctx.chmod("app/main.sh", 0o755);
    let fourth = build(root, ctx.path(), &[]);
    assert!(!fourth.fully_cached());
    assert_eq!(image_fs(root, &fourth.id)["app/main.sh"].mode, 0o755);
}

#[test]
fn target_builds_only_the_stages_it_needs() {
    let store = store_with_busybox();
    let root = store.path();
    let ctx = Ctx::new(
        "FROM busybox AS broken\nCOPY does-not-exist /x\n\
         FROM scratch AS files\nCOPY a /a\n\
         FROM busybox AS final\nCOPY --from=files /a /from-files\n\
         FROM final AS unused-later\nCOPY also-missing /y\n",
    );
    ctx.write("a", "A");
    let b = build(root, ctx.path(), &["--target", "final", "-t", "t"]);
    let stages: Vec<&String> = b.steps.values().collect();
    assert!(
        stages.iter().all(|t| !t.contains("does-not-exist")),
        "the broken stage is not built: {}",
        b.stderr
    );
    assert!(!b.stderr.contains("broken"), "{}", b.stderr);
    assert_eq!(image_fs(root, "t")["from-files"].text(), "A");
    // Without --target the last stage is built, and it fails.
    let err = build_fails(root, ctx.path(), &[]);
    assert!(err.contains("also-missing"), "{err}");
    // An unknown target is an error naming it.
    let err = build_fails(root, ctx.path(), &["--target", "nope"]);
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn missing_copy_source_names_the_path_and_the_line() {
    let store = store_with_busybox();
    let root = store.path();
    let ctx = Ctx::new("FROM busybox\n\nCOPY present /p\nCOPY missing.txt /m\n");
    ctx.write("present", "1");
    let err = build_fails(root, ctx.path(), &[]);
    assert!(err.contains("missing.txt"), "{err}");
    assert!(err.contains(":4"), "names line 4: {err}");
    // The same from another stage.
    let ctx = Ctx::new("FROM busybox AS a\nFROM busybox\nCOPY --from=a /nowhere/file /m\n");
    let err = build_fails(root, ctx.path(), &[]);
    assert!(err.contains("/nowhere/file"), "{err}");
    assert!(err.contains(":3"), "{err}");
}

#[test]
fn context_escapes_are_refused() {
    let store = store_with_busybox();
    let root = store.path();
    let outer = tempfile::tempdir().unwrap();
    std::fs::write(outer.path().join("secret"), "s").unwrap();
    let ctx_dir = outer.path().join("ctx");
    std::fs::create_dir(&ctx_dir).unwrap();
    std::fs::write(
        ctx_dir.join("Dockerfile"),
        "FROM busybox\nCOPY ../secret /s\n",
    )
    .unwrap();
    let err = build_fails(root, &ctx_dir, &[]);
    assert!(err.contains("../secret"), "{err}");
    assert!(err.contains("outside the build context"), "{err}");

    // A symlink in the context pointing outside it cannot be followed.
    std::fs::write(ctx_dir.join("Dockerfile"), "FROM busybox\nCOPY link /s\n").unwrap();
    std::os::unix::fs::symlink(outer.path().join("secret"), ctx_dir.join("link")).unwrap();
    let err = build_fails(root, &ctx_dir, &[]);
    assert!(err.contains("link"), "{err}");
    std::fs::remove_file(ctx_dir.join("link")).unwrap();
    std::os::unix::fs::symlink("../secret", ctx_dir.join("link")).unwrap();
    let err = build_fails(root, &ctx_dir, &[]);
    assert!(err.contains("link"), "{err}");
}

#[test]
fn docker_archive_output_loads_into_a_fresh_store() {
    let store = store_with_busybox();
    let root = store.path();
    let ctx = hello_example();
    let out = tempfile::tempdir().unwrap();
    let tar = out.path().join("x.tar");
    let b = build(
        root,
        ctx.path(),
        &[
            "-t",
            "hello:1",
            "-o",
            &format!("type=docker,dest={}", tar.display()),
        ],
    );
    let fresh = tempfile::tempdir().unwrap();
    let loaded = ok(berth(fresh.path()).arg("load").arg("-i").arg(&tar));
    assert!(loaded.contains("hello:1"), "{loaded}");
    let inspect = json(&ok(berth(fresh.path()).args(["inspect", "hello:1"])));
    assert_eq!(inspect[0]["Id"], b.id.as_str(), "same image id after load");
    assert_eq!(
        image_fs(fresh.path(), "hello:1")["etc/app/config.ini"].data(),
        std::fs::read(ctx.path().join("config.ini")).unwrap()
    );
    // The fresh store passes its own consistency check.
    ok(berth(fresh.path()).args(["system", "check"]));
}

#[test]
fn build_arg_changes_invalidate_only_the_steps_that_use_them() {
    let store = store_with_busybox();
    let root = store.path();
    let ctx = Ctx::new(
        "FROM busybox AS other\nARG V\nCOPY a /other-a\n\
         FROM busybox\nCOPY a /a\nARG V=one\nCOPY b /b\nCOPY c /c-${V}\nCOPY d /d\n",
    );
    ctx.write("a", "a")
        .write("b", "b")
        .write("c", "c")
        .write("d", "d");
    let first = build(root, ctx.path(), &["--build-arg", "V=one"]);
    assert!(image_fs(root, &first.id).contains_key("c-one"));
    let second = build(root, ctx.path(), &["--build-arg", "V=two"]);
    // COPY a and COPY b do not use V; COPY c does; COPY d follows it.
    assert_eq!(
        second.ran_texts(&["COPY"]),
        ["COPY c /c-${V}".to_owned(), "COPY d /d".to_owned()].into(),
        "{}",
        second.stderr
    );
    let fs = image_fs(root, &second.id);
    assert!(fs.contains_key("c-two") && !fs.contains_key("c-one"));
    // Back to the first value: everything is cached again.
    let third = build(root, ctx.path(), &["--build-arg", "V=one"]);
    assert!(third.fully_cached(), "{}", third.stderr);
    assert_eq!(third.id, first.id);
}
