//! Black-box tests of RUN in `berth build`: the real binary, the real
//! sandbox, a busybox base made by `scripts/make-busybox-image.sh`, images
//! read back without berth (OCI archive → layers → merged tree).

mod build_util;
mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use build_util::*;
use common::*;

/// A store holding `busybox:latest` made by the project's script.
fn busybox_store() -> tempfile::TempDir {
    // The script caches its tarball; one writer at a time.
    static SCRIPT: Mutex<()> = Mutex::new(());
    let _g = SCRIPT.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    // Per test process; those of finished processes are removed.
    for e in std::fs::read_dir(std::env::temp_dir()).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("berth-run-fixtures-")
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    let fixtures = std::env::temp_dir().join(format!("berth-run-fixtures-{}", std::process::id()));
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/make-busybox-image.sh"))
        .env("BERTH", berth_bin())
        .env("BERTH_ROOT", dir.path())
        .env("BERTH_FIXTURES", &fixtures)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "make-busybox-image.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

fn history(saved: &Saved) -> Vec<(String, bool)> {
    saved.config["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["created_by"].as_str().unwrap_or("").to_owned(),
                h["empty_layer"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

/// Every entry name of every layer above the base.
fn names_above_base(saved: &Saved) -> Vec<String> {
    saved.layers[1..]
        .iter()
        .flat_map(|l| layer_entries(l).into_iter().map(|(n, _)| n))
        .collect()
}

#[test]
fn run_layers_land_in_the_image_and_a_rebuild_is_fully_cached() {
    let store = busybox_store();
    let root = store.path();
    let ctx = Ctx::new(
        "FROM busybox\nARG GREETING=hello\nENV WHO=world\n\
         RUN echo \"$GREETING $WHO\" > /greeting && rm /bin/vi && mkdir -p /srv/data && echo x > /srv/data/f && cat /etc/hosts > /hosts-seen && hostname > /hostname-seen\n\
         RUN true\n",
    );
    let first = build(root, ctx.path(), &["-t", "run-test"]);
    assert!(first.cached.is_empty(), "{}", first.stderr);
    let saved = saved(root, "run-test");
    let fs = merge(&saved.layers);
    assert_eq!(fs["greeting"].text(), "hello world\n");
    assert!(!fs.contains_key("bin/vi"), "the deletion is a whiteout");
    assert!(fs.contains_key("bin/sh"));
    assert_eq!(fs["srv/data/f"].text(), "x\n");
    assert!(fs["hosts-seen"].text().contains("buildkitsandbox"));
    assert_eq!(fs["hostname-seen"].text(), "buildkitsandbox\n");
    // One layer for the first RUN; the second changed nothing.
    assert_eq!(saved.layers.len(), 2);
    let names = names_above_base(&saved);
    for leak in [
        "etc/hosts",
        "etc/resolv.conf",
        "etc/hostname",
        "proc",
        "dev",
        "sys",
    ] {
        assert!(
            !names
                .iter()
                .any(|n| n == leak || n.starts_with(&format!("{leak}/"))),
            "{leak} leaked into the RUN layer: {names:?}"
        );
    }
    assert!(names.iter().any(|n| n == "bin/.wh.vi"), "{names:?}");
    let h = history(&saved);
    let runs: Vec<&(String, bool)> = h.iter().filter(|(c, _)| c.starts_with("RUN")).collect();
    assert_eq!(
        runs[0].0,
        "RUN |1 GREETING=hello /bin/sh -c echo \"$GREETING $WHO\" > /greeting && rm /bin/vi && mkdir -p /srv/data && echo x > /srv/data/f && cat /etc/hosts > /hosts-seen && hostname > /hostname-seen # buildkit"
    );
    assert_eq!(
        (runs[0].1, runs[1].1),
        (false, true),
        "only the first RUN has a layer"
    );
    // Fully cached rebuild: the same image.
    let again = build(root, ctx.path(), &["-t", "run-test"]);
    assert!(again.fully_cached(), "{}", again.stderr);
    assert_eq!(again.id, first.id);
    // A build argument is part of the key.
    let other = build(root, ctx.path(), &["--build-arg", "GREETING=bye"]);
    assert_eq!(
        other.ran_texts(&["RUN"]).len(),
        2,
        "both RUNs see the argument: {}",
        other.stderr
    );
    // --no-cache runs everything again.
    let fresh = build(root, ctx.path(), &["--no-cache"]);
    assert!(fresh.cached.is_empty(), "{}", fresh.stderr);
}

#[test]
fn a_failing_run_reports_stage_line_exit_code_and_output() {
    let store = busybox_store();
    let ctx = Ctx::new(
        "FROM busybox AS base\nRUN echo fine\nRUN echo first; echo >&2 second-to-stderr; exit 3\nRUN echo never\n",
    );
    let err = build_fails(store.path(), ctx.path(), &[]);
    assert!(err.contains("Dockerfile:3:"), "{err}");
    assert!(err.contains("[base 3/4]"), "{err}");
    assert!(err.contains("exit code: 3"), "{err}");
    assert!(
        err.contains("\n  second-to-stderr"),
        "the tail of the output: {err}"
    );
    assert!(!err.contains("never"), "{err}");
    let ctx = Ctx::new("FROM busybox\nRUN [\"no-such-program\"]\n");
    let err = build_fails(store.path(), ctx.path(), &[]);
    assert!(err.contains("Dockerfile:2:"), "{err}");
    assert!(err.contains("executable file not found"), "{err}");
}

#[test]
fn heredocs_exec_form_user_and_workdir() {
    let store = busybox_store();
    let ctx = Ctx::new(
        "FROM busybox\nWORKDIR /work\nUSER app\n\
         RUN id -u > /tmp/uid; pwd > /tmp/pwd; echo $HOME > /tmp/home\n\
         RUN <<EOF\necho \"from heredoc\" > /tmp/h1\nEOF\n\
         RUN <<EOF\n#!/bin/sh\necho \"script $0\" > /tmp/h2\nEOF\n\
         RUN [\"/bin/sh\", \"-c\", \"echo exec > /tmp/h3\"]\n\
         USER root\n\
         RUN cat <<A > /tmp/h4\nhome is $HOME\nA\n",
    );
    build(store.path(), ctx.path(), &["-t", "forms"]);
    let fs = image_fs(store.path(), "forms");
    assert_eq!(fs["tmp/uid"].text(), "1000\n");
    assert_eq!(fs["tmp/uid"].uid, 1000);
    assert_eq!(fs["tmp/pwd"].text(), "/work\n");
    assert_eq!(fs["tmp/home"].text(), "/home/app\n");
    assert_eq!(fs["tmp/h1"].text(), "from heredoc\n");
    assert_eq!(fs["tmp/h2"].text(), "script /dev/pipes/EOF\n");
    assert_eq!(fs["tmp/h3"].text(), "exec\n");
    assert_eq!(fs["tmp/h4"].text(), "home is /root\n");
}

#[test]
fn cache_bind_and_tmpfs_mounts_and_builder_prune() {
    let store = busybox_store();
    let root = store.path();
    let ctx = Ctx::new(
        "FROM busybox AS src\nRUN mkdir /out && echo from-stage > /out/f\n\
         FROM busybox\n\
         RUN --mount=type=cache,target=/cache n=$(cat /cache/n 2>/dev/null || echo 0); echo $((n+1)) > /cache/n; cp /cache/n /count\n\
         RUN --mount=type=bind,target=/ctx cat /ctx/input.txt > /from-ctx && ls /ctx > /ctx-list\n\
         RUN --mount=type=bind,from=src,source=/out,target=/o cat /o/f > /from-stage\n\
         RUN --mount=type=tmpfs,target=/scratch echo t > /scratch/t && cat /scratch/t > /tmpfs-seen\n\
         RUN --mount=type=bind,target=/rw,rw touch /rw/made-in-run && ls /rw > /rw-list\n",
    );
    ctx.write("input.txt", "context file\n");
    ctx.write("ignored.txt", "not sent\n");
    ctx.write(".dockerignore", "ignored.txt\n");
    build(root, ctx.path(), &["-t", "mounts"]);
    let saved1 = saved(root, "mounts");
    let fs = merge(&saved1.layers);
    assert_eq!(fs["count"].text(), "1\n");
    assert_eq!(fs["from-ctx"].text(), "context file\n");
    let listed = fs["ctx-list"].text();
    assert!(
        listed.contains("input.txt") && !listed.contains("ignored.txt"),
        "{listed}"
    );
    assert_eq!(fs["from-stage"].text(), "from-stage\n");
    assert_eq!(fs["tmpfs-seen"].text(), "t\n");
    assert!(fs["rw-list"].text().contains("made-in-run"));
    assert!(
        !ctx.join("made-in-run").exists(),
        "rw bind writes are discarded"
    );
    for mountpoint in ["cache", "ctx", "o", "scratch", "rw"] {
        assert!(
            !fs.contains_key(mountpoint),
            "{mountpoint} left in the image"
        );
    }
    // The cache mount persists across builds.
    build(root, ctx.path(), &["--no-cache", "-t", "mounts"]);
    assert_eq!(image_fs(root, "mounts")["count"].text(), "2\n");
    // Pruning empties it (and the step cache).
    let out = ok(berth(root).args(["builder", "prune"]));
    assert!(out.contains("1 cache mounts"), "{out}");
    let again = build(root, ctx.path(), &["-t", "mounts"]);
    assert!(
        again.cached.is_empty(),
        "the step cache is gone: {}",
        again.stderr
    );
    assert_eq!(image_fs(root, "mounts")["count"].text(), "1\n");
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                todo.push(p);
            } else if ft.is_file() {
                let bytes = std::fs::read(&p).unwrap_or_default();
                // Layers are compressed: look inside them too.
                let plain = decompress(&bytes);
                if plain.windows(needle.len()).any(|w| w == needle)
                    || bytes.windows(needle.len()).any(|w| w == needle)
                {
                    out.push(p.display().to_string());
                }
            }
        }
    }
    out
}

#[test]
fn secrets_are_readable_but_never_stored() {
    let store = busybox_store();
    let root = store.path();
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("token");
    std::fs::write(&secret_file, "s3cr3t-file-value").unwrap();
    // The Dockerfile (shown in the progress output) names only digests.
    let ctx = Ctx::new(&format!(
        "FROM busybox\n\
         RUN --mount=type=secret,id=tok test \"$(sha256sum < /run/secrets/tok)\" = '{}  -' && stat -c '%a %u' /run/secrets/tok > /mode\n\
         RUN --mount=type=secret,id=envtok,env=TOK test \"$(printf %s \"$TOK\" | sha256sum)\" = '{}  -' && test ! -e /run/secrets/envtok && echo ok > /ok\n",
        sha256_hex(b"s3cr3t-file-value"),
        sha256_hex(b"s3cr3t-env-value"),
    ));
    let secret_arg = format!("id=tok,src={}", secret_file.display());
    let out = build_cmd(
        root,
        ctx.path(),
        &[
            "-t",
            "secrets",
            "--secret",
            &secret_arg,
            "--secret",
            "id=envtok,env=BERTH_TEST_TOK",
        ],
    )
    .env("BERTH_TEST_TOK", "s3cr3t-env-value")
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let fs = image_fs(root, "secrets");
    assert_eq!(fs["mode"].text(), "400 0\n");
    assert_eq!(fs["ok"].text(), "ok\n");
    for value in ["s3cr3t-file-value", "s3cr3t-env-value"] {
        assert!(!stderr.contains(value));
        let hits = files_containing(root, value.as_bytes());
        assert!(hits.is_empty(), "{value} stored in {hits:?}");
    }
    assert!(
        !names_above_base(&saved(root, "secrets"))
            .iter()
            .any(|n| n.starts_with("run")),
        "the secret's mountpoint is not in a layer"
    );
    // A different secret value does not change the key.
    std::fs::write(&secret_file, "s3cr3t-file-value").unwrap();
    let again = build_cmd(
        root,
        ctx.path(),
        &[
            "--secret",
            &secret_arg,
            "--secret",
            "id=envtok,env=BERTH_TEST_TOK",
        ],
    )
    .env("BERTH_TEST_TOK", "another")
    .output()
    .unwrap();
    assert!(String::from_utf8_lossy(&again.stderr).contains("fully cached"));
    // A required secret that is missing fails the step.
    let ctx = Ctx::new("FROM busybox\nRUN --mount=type=secret,id=nope,required true\n");
    let err = build_fails(root, ctx.path(), &[]);
    assert!(
        err.contains("Dockerfile:2:") && err.contains("secret \"nope\" is required"),
        "{err}"
    );
}

#[test]
fn network_none_and_the_insecure_entitlement() {
    let store = busybox_store();
    let root = store.path();
    let ctx = Ctx::new(
        "FROM busybox\nRUN --network=none ls /sys/class/net > /nets\n\
         RUN --security=insecure grep CapEff /proc/self/status > /caps\n\
         RUN grep CapEff /proc/self/status > /default-caps\n",
    );
    let err = build_fails(root, ctx.path(), &[]);
    assert!(
        err.contains("Dockerfile:3:") && err.contains("--allow security.insecure"),
        "{err}"
    );
    build(
        root,
        ctx.path(),
        &["-t", "net", "--allow", "security.insecure"],
    );
    let fs = image_fs(root, "net");
    assert_eq!(fs["nets"].text(), "lo\n");
    let mine = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("CapEff:"))
        .unwrap()
        .to_owned();
    assert_eq!(fs["caps"].text().trim(), mine);
    assert_eq!(fs["default-caps"].text(), "CapEff:\t00000000a80425fb\n");
}

#[test]
fn ssh_agent_socket_is_forwarded() {
    let store = busybox_store();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let ctx = Ctx::new(
        "FROM busybox\nRUN --mount=type=ssh test -S \"$SSH_AUTH_SOCK\" && echo \"$SSH_AUTH_SOCK\" > /sock\n",
    );
    let out = build_cmd(store.path(), ctx.path(), &["-t", "ssh", "--ssh", "default"])
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fs = image_fs(store.path(), "ssh");
    assert_eq!(fs["sock"].text(), "/run/buildkit/ssh_agent.0\n");
    assert!(!fs.contains_key("run/buildkit"), "no mountpoint left");
}

/// Host processes whose command line is exactly `argv`.
fn host_processes(argv: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " ").trim_end() == argv)
                .unwrap_or(false)
        })
        .count()
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..600 {
        if cond() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn kill_9_of_berth_leaves_no_process_and_the_next_build_cleans_up() {
    killed_build_leaves_nothing(rustix::process::Signal::KILL);
}

/// Ctrl-C reaches berth as SIGINT; CI timeouts send SIGTERM.
#[test]
fn sigint_and_sigterm_of_berth_leave_no_process_and_the_next_build_cleans_up() {
    killed_build_leaves_nothing(rustix::process::Signal::INT);
    killed_build_leaves_nothing(rustix::process::Signal::TERM);
}

fn killed_build_leaves_nothing(signal: rustix::process::Signal) {
    let store = busybox_store();
    let root = store.path();
    let marker = format!("sleep {}{}", 200_000 + std::process::id(), signal.as_raw());
    let ctx = Ctx::new(&format!(
        "FROM busybox\nRUN --mount=type=cache,target=/c {marker} & {marker}\n"
    ));
    let mut child = build_cmd(root, ctx.path(), &[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the RUN step to start", || host_processes(&marker) == 2);
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, signal).unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "{signal:?}: berth exited with {status}");
    // The sandbox dies with berth: nothing of the step keeps running.
    wait_for("the sandbox to die", || host_processes(&marker) == 0);
    let leftovers = |root: &Path| -> Vec<String> {
        std::fs::read_dir(root.join("tmp"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("run-"))
            .collect()
    };
    assert_eq!(leftovers(root).len(), 1, "the killed step's directory");
    // The cache mount was not left locked, and the next RUN removes the
    // killed build's directory.
    let ctx = Ctx::new("FROM busybox\nRUN --mount=type=cache,target=/c,sharing=locked true\n");
    build(root, ctx.path(), &[]);
    assert!(leftovers(root).is_empty(), "{:?}", leftovers(root));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&root.display().to_string()),
        "no mount of the store is left on the host"
    );
}

#[test]
fn proxy_build_args_reach_run_but_not_the_key_or_history() {
    let store = busybox_store();
    let root = store.path();
    let ctx = Ctx::new("FROM busybox\nRUN echo \"$HTTP_PROXY\" > /proxy\n");
    let first = build(
        root,
        ctx.path(),
        &[
            "-t",
            "proxy",
            "--build-arg",
            "HTTP_PROXY=http://proxy.invalid:3128",
        ],
    );
    let saved = saved(root, "proxy");
    assert_eq!(
        merge(&saved.layers)["proxy"].text(),
        "http://proxy.invalid:3128\n"
    );
    assert!(!saved.config.to_string().contains("proxy.invalid"));
    let again = build(
        root,
        ctx.path(),
        &["--build-arg", "HTTP_PROXY=http://other.invalid:8080"],
    );
    assert!(again.fully_cached(), "{}", again.stderr);
    assert_eq!(again.id, first.id);
}

/// Rootless builds are not implemented: a non-root `berth build` says so at
/// once instead of failing half-way on a chown or a namespace.
#[test]
fn a_non_root_build_is_refused_up_front() {
    let ctx = Ctx::new("FROM busybox\nRUN true\n");
    let root = tempfile::tempdir().unwrap();
    let store = root.path().join("store");
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(common::berth_bin())
        .arg("--root")
        .arg(&store)
        .arg("build")
        .arg(ctx.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("berth build needs root"), "{err}");
    assert!(!store.exists(), "nothing was written");
}

/// RUN output streams: prefixed with the step in plain mode, every line in
/// order in the rawjson stream (nothing dropped, however long).
#[test]
fn run_output_is_prefixed_in_plain_and_whole_in_rawjson() {
    let store = busybox_store();
    let root = store.path();
    let ctx = Ctx::new("FROM busybox\nRUN seq 1 20000 && echo done >&2\n");
    let out = berth(root)
        .args(["build", "--no-cache", "--progress", "rawjson"])
        .arg(ctx.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<String> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "output")
        .map(|v| v["line"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (1..=20000)
        .map(|n| n.to_string())
        .chain(["done".to_owned()])
        .collect();
    assert_eq!(lines, expected);
    let plain = build_cmd(root, ctx.path(), &["--no-cache"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&plain.stderr);
    assert!(
        stderr.lines().any(|l| l == "#2 19999"),
        "{}",
        &stderr[..500.min(stderr.len())]
    );
    assert!(stderr.lines().any(|l| l == "#2 done"));
}
