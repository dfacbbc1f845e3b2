//! Registry authentication and authorisation: htpasswd basic auth, the
//! Docker token flow with the built-in `/token` endpoint, per-repository
//! grants and anonymous pull; and skopeo as a real token-flow client.

mod common;
mod registry_support;

use std::process::Command;

use registry_support::*;

fn htpasswd() -> String {
    common::repo_root()
        .join("testdata/registry/htpasswd")
        .display()
        .to_string()
}

fn push_as(s: &Server, repo: &str, auth: &dyn Fn(Req) -> Req) -> u16 {
    let data = format!("blob of {repo}");
    let d = sha256(data.as_bytes());
    auth(s.req("POST", &format!("/v2/{repo}/blobs/uploads/?digest={d}")))
        .body(data)
        .send()
        .status
}

#[test]
fn basic_auth_with_grants() {
    let dir = tempfile::tempdir().unwrap();
    let hp = htpasswd();
    let s = Server::start(
        dir.path(),
        &[
            "--auth",
            "basic",
            "--htpasswd",
            &hp,
            "--grant",
            "alice:*:*",
            "--grant",
            "bob:bob/*:pull,push",
        ],
    );
    let r = s.req("GET", "/v2/").send();
    assert_eq!((r.status, r.code().as_str()), (401, "UNAUTHORIZED"));
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some("Basic realm=\"berth-registry\"")
    );
    assert_eq!(
        s.req("GET", "/v2/")
            .basic("alice", "wonderland")
            .send()
            .status,
        200
    );
    assert_eq!(
        s.req("GET", "/v2/").basic("alice", "wrong").send().status,
        401
    );
    assert_eq!(
        s.req("GET", "/v2/").basic("mallory", "x").send().status,
        401
    );
    let alice = |r: Req| r.basic("alice", "wonderland");
    let bob = |r: Req| r.basic("bob", "builder");
    assert_eq!(push_as(&s, "team/app", &alice), 201);
    assert_eq!(push_as(&s, "bob/tools", &bob), 201);
    let r = bob(s.req("POST", "/v2/team/app/blobs/uploads/")).send();
    assert_eq!((r.status, r.code().as_str()), (403, "DENIED"));
    let r = bob(s.req("GET", "/v2/team/app/tags/list")).send();
    assert_eq!(r.status, 403);
    let r = s.req("GET", "/v2/team/app/tags/list").send();
    assert_eq!(r.status, 401, "anonymous pull is off");
    let r = bob(s.req(
        "DELETE",
        &format!("/v2/bob/tools/blobs/{}", sha256(b"blob of bob/tools")),
    ))
    .send();
    assert_eq!(r.status, 403, "bob may not delete");
    // Catalog needs a grant on every repository.
    assert_eq!(alice(s.req("GET", "/v2/_catalog")).send().status, 200);
    assert_eq!(bob(s.req("GET", "/v2/_catalog")).send().status, 403);
}

#[test]
fn token_flow_with_scopes_and_anonymous_pull() {
    let dir = tempfile::tempdir().unwrap();
    let hp = htpasswd();
    let s = Server::start(
        dir.path(),
        &[
            "--auth",
            "token",
            "--htpasswd",
            &hp,
            "--anonymous-pull",
            "--grant",
            "alice:*:*",
            "--grant",
            "bob:bob/*:pull,push",
        ],
    );
    let r = s.req("GET", "/v2/").send();
    assert_eq!(r.status, 401);
    let realm = format!(
        "Bearer realm=\"http://{}/token\",service=\"berth-registry\"",
        s.addr
    );
    assert_eq!(r.header("WWW-Authenticate"), Some(realm.as_str()));
    let r = s.req("POST", "/v2/team/app/blobs/uploads/").send();
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some(format!("{realm},scope=\"repository:team/app:push\"").as_str())
    );
    let token = |who: Option<(&str, &str)>, scope: &str| -> Option<String> {
        let mut q = s.req(
            "GET",
            &format!("/token?service=berth-registry&scope={scope}"),
        );
        if let Some((u, p)) = who {
            q = q.basic(u, p);
        }
        let r = q.send();
        (r.status == 200).then(|| r.json()["token"].as_str().unwrap().to_owned())
    };
    fn bearer(t: &str) -> impl Fn(Req) -> Req + '_ {
        move |r: Req| r.header("Authorization", &format!("Bearer {t}"))
    }
    let t = token(
        Some(("alice", "wonderland")),
        "repository:team/app:pull,push",
    )
    .unwrap();
    assert_eq!(push_as(&s, "team/app", &bearer(&t)), 201);
    // The token is scoped: it does not reach another repository or action.
    assert_eq!(push_as(&s, "team/other", &bearer(&t)), 401);
    let d = sha256(b"blob of team/app");
    let r = bearer(&t)(s.req("DELETE", &format!("/v2/team/app/blobs/{d}"))).send();
    assert_eq!(r.status, 401);
    assert!(
        r.header("WWW-Authenticate")
            .unwrap()
            .contains("error=\"insufficient_scope\"")
    );
    // Anonymous: pull is granted, push is not.
    let anon = token(None, "repository:team/app:pull,push").unwrap();
    let r = bearer(&anon)(s.req("GET", &format!("/v2/team/app/blobs/{d}"))).send();
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"blob of team/app"[..])
    );
    assert_eq!(push_as(&s, "team/app", &bearer(&anon)), 401);
    // bob gets push only where his grant says.
    let tb = token(Some(("bob", "builder")), "repository:team/app:push").unwrap();
    assert_eq!(push_as(&s, "team/app", &bearer(&tb)), 401);
    let tb = token(Some(("bob", "builder")), "repository:bob/x:push,pull").unwrap();
    assert_eq!(push_as(&s, "bob/x", &bearer(&tb)), 201);
    // Bad credentials get no token; forged tokens are refused.
    assert!(token(Some(("alice", "nope")), "repository:team/app:pull").is_none());
    let r = bearer("eyJzdWIiOiJhbGljZSJ9.AAAA")(s.req("GET", "/v2/")).send();
    assert_eq!(r.status, 401);
}

#[test]
fn skopeo_speaks_the_token_flow() {
    let src = common::store_with_busybox();
    let dir = tempfile::tempdir().unwrap();
    let hp = htpasswd();
    let s = Server::start(
        dir.path(),
        &[
            "--auth",
            "token",
            "--htpasswd",
            &hp,
            "--anonymous-pull",
            "--grant",
            "alice:*:*",
        ],
    );
    let oci_src = format!(
        "oci:{}:docker.io/library/busybox:latest",
        src.path().display()
    );
    let dest = format!("docker://{}/secure/busybox:1", s.addr);
    let run = |args: &[&str]| {
        Command::new("skopeo")
            .args(args)
            .output()
            .expect("skopeo is installed (apt-get install skopeo)")
    };
    let out = run(&["copy", "--dest-tls-verify=false", &oci_src, &dest]);
    assert!(!out.status.success(), "anonymous push must fail");
    let out = run(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:wonderland",
        &oci_src,
        &dest,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Anonymous pull through the token flow.
    let out = run(&["inspect", "--tls-verify=false", &dest]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        "alice:wrong",
        &dest,
    ]);
    assert!(!out.status.success(), "wrong password must fail");
}

#[test]
fn config_file_with_flag_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("registry.toml");
    std::fs::write(
        &cfg,
        format!(
            "addr = \"127.0.0.1:1\"\n[auth]\nmode = \"basic\"\nhtpasswd = \"{}\"\n\
             [[auth.grants]]\naccounts = [\"bob\"]\nrepositories = [\"bob/*\"]\nactions = [\"pull\", \"push\"]\n",
            htpasswd()
        ),
    )
    .unwrap();
    let root = tempfile::tempdir().unwrap();
    // --addr (added by Server::start) overrides the file's address.
    let s = Server::start(root.path(), &["--config", cfg.to_str().unwrap()]);
    let bob = |r: Req| r.basic("bob", "builder");
    assert_eq!(push_as(&s, "bob/a", &bob), 201);
    assert_eq!(push_as(&s, "team/a", &bob), 403);
    assert_eq!(s.req("GET", "/v2/").send().status, 401);
    drop(s);
    let s = Server::start(
        root.path(),
        &["--config", cfg.to_str().unwrap(), "--read-only"],
    );
    assert_eq!(push_as(&s, "bob/a", &bob), 405);
    // A bad file is refused at start.
    std::fs::write(&cfg, "no_such_option = 1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("--root")
        .arg(root.path())
        .args(["registry", "serve", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no_such_option"));
}
