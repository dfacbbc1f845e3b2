//! `berth dockerfile stages`: the frontend's stage graph from the CLI —
//! names, bases, dependencies, global ARGs in FROM, `--target`, and which
//! stages a build evaluates (unreachable ones, even broken ones, are not).

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};

use common::{berth_bin, json};

fn stages(src: &str, extra: &[&str]) -> std::process::Output {
    let mut child = Command::new(berth_bin())
        .args(["dockerfile", "stages", "--format", "json"])
        .args(extra)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(src.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn ok_stages(src: &str, extra: &[&str]) -> serde_json::Value {
    let out = stages(src, extra);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    json(&String::from_utf8(out.stdout).unwrap())
}

const DF: &str = r#"ARG BASE=alpine:3.20
ARG VARIANT
FROM ${BASE} AS base
ENV STAGE=base

FROM busybox${VARIANT:+-$VARIANT} AS tools
WORKDIR /tools

FROM base AS deps
COPY --from=tools /bin/x /x

FROM scratch AS broken
COPY --from=nowhere-at-all /a /b
ENV A=${UNTERMINATED

FROM deps
COPY --from=0 /etc/os-release /etc/
"#;

#[test]
fn stages_bases_deps_and_reachability() {
    let v = ok_stages(DF, &[]);
    let st = v["stages"].as_array().unwrap();
    assert_eq!(st.len(), 5);
    assert_eq!(v["target"], 4);
    assert_eq!(st[0]["name"], "base");
    assert_eq!(st[0]["base"]["ref"], "alpine:3.20", "global ARG default");
    assert_eq!(st[2]["base"]["type"], "stage");
    assert_eq!(st[2]["base"]["index"], 0);
    assert_eq!(
        st[2]["deps"],
        serde_json::json!([0, 1]),
        "FROM base + COPY --from=tools"
    );
    assert_eq!(
        st[1]["base"]["ref"], "busybox",
        "an alternative value of an unset ARG"
    );
    assert_eq!(
        st[3]["reachable"], false,
        "the broken stage is never evaluated"
    );
    assert!(st[3]["base"].is_null());
    assert_eq!(st[4]["deps"], serde_json::json!([0, 2]));
    assert_eq!(st[4]["target"], true);
    // Dependencies come first in the build order.
    let order: Vec<u64> = v["order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    let pos = |i: u64| order.iter().position(|&x| x == i).unwrap();
    assert!(pos(0) < pos(2) && pos(1) < pos(2) && pos(2) < pos(4));
    assert!(!order.contains(&3));
}

#[test]
fn target_and_build_args() {
    let v = ok_stages(
        DF,
        &[
            "--target",
            "tools",
            "--build-arg",
            "VARIANT=musl",
            "--build-arg",
            "BASE=debian",
        ],
    );
    let st = v["stages"].as_array().unwrap();
    assert_eq!(v["target"], 1);
    assert_eq!(st[1]["base"]["ref"], "busybox-musl");
    for i in [0, 2, 3, 4] {
        assert_eq!(
            st[i]["reachable"], false,
            "stage {i} is not needed by tools"
        );
    }
    let v = ok_stages(DF, &["--target", "deps", "--build-arg", "BASE=debian"]);
    assert_eq!(v["stages"][0]["base"]["ref"], "debian");
}

#[test]
fn unknown_target_and_broken_needed_stage_fail_with_line() {
    let out = stages(DF, &["--target", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
    let out = stages(DF, &["--target", "broken"]);
    assert!(
        !out.status.success(),
        "the broken stage is evaluated when it is the target"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(":14") || err.contains(":13"), "{err}");
}

#[test]
fn build_check_reports_rules_and_builds_nothing() {
    let root = tempfile::tempdir().unwrap();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox as base\nMAINTAINER someone\nCMD echo hi\n",
    )
    .unwrap();
    let out = Command::new(berth_bin())
        .arg("--root")
        .arg(root.path())
        .args(["build", "--check", "-t", "never:built"])
        .arg(ctx.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for (rule, line) in [
        ("FromAsCasing", 1),
        ("MaintainerDeprecated", 2),
        ("JSONArgsRecommended", 3),
    ] {
        assert!(
            text.lines()
                .any(|l| l.contains(rule) && l.contains(&format!("Dockerfile:{line}:"))),
            "{rule} at line {line}:\n{text}"
        );
    }
    // Nothing was built (busybox is not even in this store).
    let images = Command::new(berth_bin())
        .arg("--root")
        .arg(root.path())
        .args(["images", "-q"])
        .output()
        .unwrap();
    assert!(images.stdout.is_empty());
    // A clean Dockerfile passes.
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox AS base\nCMD [\"echo\", \"hi\"]\n",
    )
    .unwrap();
    let out = Command::new(berth_bin())
        .arg("--root")
        .arg(root.path())
        .args(["build", "--check"])
        .arg(ctx.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
