//! Black-box tests of COPY and ADD semantics: destinations and trailing
//! slashes, directories, wildcards, symlinks, owners and modes, `--link`,
//! `--parents`, `--exclude`, `--from` an image, archives and URLs. Every
//! image is read back without berth (OCI archive → layers → merged tree).

mod build_util;
mod common;

use std::io::Write;

use build_util::*;
use common::*;

#[test]
fn destinations_directories_wildcards_and_symlinks() {
    let store = store_with_busybox();
    let root = store.path();
    let ctx = Ctx::new(
        "FROM busybox\n\
         COPY a.txt /abs\n\
         COPY a.txt /absdir/\n\
         COPY a.txt /etc\n\
         COPY a.txt b.txt /multi/\n\
         WORKDIR /w\n\
         COPY a.txt rel/\n\
         COPY b.txt .\n\
         COPY dir /d1\n\
         COPY dir/ /etc/\n\
         COPY *.txt /glob/\n\
         COPY di? /merged/\n\
         COPY nomatch* /empty/\n\
         COPY a.txt /tmp/\n\
         COPY link-to-a /followed\n\
         COPY dir /withlink/\n\
         COPY tree/ /\n\
         COPY a.txt /lk/\n",
    );
    ctx.write("a.txt", "A\n")
        .write("b.txt", "B\n")
        .write("dir/x", "X")
        .write("dir/sub/y", "Y")
        .symlink("dir/rel-link", "x")
        .symlink("link-to-a", "a.txt")
        .mkdir("tree/usrlib")
        .symlink("tree/lk", "usrlib");
    let b = build(root, ctx.path(), &["-t", "t"]);
    let saved = saved(root, "t");
    let fs = merge(&saved.layers);
    assert_eq!(fs["abs"].text(), "A\n", "file written as the destination");
    assert_eq!(fs["absdir/a.txt"].text(), "A\n", "trailing slash: inside");
    assert_eq!(
        fs["etc/a.txt"].text(),
        "A\n",
        "an existing directory receives the file"
    );
    assert_eq!(fs["etc"].kind, Kind::Dir);
    assert_eq!(fs["multi/a.txt"].text(), "A\n");
    assert_eq!(fs["multi/b.txt"].text(), "B\n");
    assert_eq!(fs["w/rel/a.txt"].text(), "A\n", "relative to WORKDIR");
    assert_eq!(fs["w/b.txt"].text(), "B\n");
    // A directory's contents, not the directory itself.
    assert_eq!(files_below(&fs, "d1"), ["rel-link", "sub/y", "x"]);
    assert_eq!(fs["etc/x"].text(), "X", "merged into an existing directory");
    assert!(
        fs.contains_key("etc/passwd"),
        "and the directory keeps its files"
    );
    assert_eq!(files_below(&fs, "glob"), ["a.txt", "b.txt"]);
    assert_eq!(files_below(&fs, "merged"), ["rel-link", "sub/y", "x"]);
    // A wildcard may match nothing (then nothing, not even the
    // destination, is created), as in BuildKit.
    assert!(!fs.contains_key("empty"));
    // The parent directory of a COPY keeps its metadata in the layer.
    assert_eq!(fs["tmp"].mode, 0o1777, "/tmp is still world-writable");
    assert_eq!(fs["tmp/a.txt"].text(), "A\n");
    // A top-level symlink source is followed; symlinks inside are kept.
    assert_eq!(fs["followed"].text(), "A\n");
    assert_eq!(fs["withlink/rel-link"].kind, Kind::Symlink("x".into()));
    // The destination is resolved through the image's symlinks.
    assert_eq!(fs["lk"].kind, Kind::Symlink("usrlib".into()));
    assert_eq!(fs["usrlib/a.txt"].text(), "A\n");
    // History like BuildKit's.
    let hist: Vec<&str> = saved.config["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["created_by"].as_str())
        .collect();
    assert!(
        hist.contains(&"COPY a.txt b.txt /multi/ # buildkit"),
        "{hist:?}"
    );
    assert!(!b.fully_cached());
}

#[test]
fn copy_errors_like_buildkit() {
    let store = store_with_busybox();
    let root = store.path();
    let ctx = Ctx::new("FROM busybox\nCOPY dir /etc/passwd\n");
    ctx.write("dir/x", "X").write("a", "A");
    let err = build_fails(root, ctx.path(), &[]);
    assert!(err.contains("non-directory"), "{err}");
    assert!(err.contains(":2"), "{err}");
    ctx.write(
        "Dockerfile",
        "FROM busybox\nCOPY a /etc/\nCOPY a /etc\nCOPY dir/ /x/\nCOPY a /x/\nCOPY a /x/x/\n",
    );
    let err = build_fails(root, ctx.path(), &[]);
    assert!(err.contains("/x/x") && err.contains(":6"), "{err}");
    ctx.write("Dockerfile", "FROM busybox\nCOPY --chmod=u+q a /a\n");
    let err = build_fails(root, ctx.path(), &[]);
    assert!(err.contains("chmod") && err.contains(":2"), "{err}");
    ctx.write("Dockerfile", "FROM busybox\nCOPY http://127.0.0.1:1/x /a\n");
    let err = build_fails(root, ctx.path(), &[]);
    assert!(err.contains("URL"), "{err}");
    ctx.write(
        "Dockerfile",
        "FROM busybox\nCOPY --from=nosuch:image /x /a\n",
    );
    let err = build_fails(root, ctx.path(), &[]);
    assert!(err.contains("nosuch"), "{err}");
}

#[test]
fn owners_modes_and_times() {
    let store = store_with_busybox();
    let root = store.path();
    let ctx = Ctx::new(
        "FROM busybox\n\
         COPY f /plain\n\
         COPY --chown=7:8 f /numeric\n\
         COPY --chown=app d/ /named/\n\
         COPY --chmod=640 d/ /octal/\n\
         COPY --chmod=u+x,g=r f /symbolic\n\
         COPY --chmod=go=rX d/ /rx/\n\
         COPY --from=busybox /home /homes/\n",
    );
    ctx.write("f", "f").chmod("f", 0o664);
    ctx.write("d/exe", "e").chmod("d/exe", 0o700);
    ctx.write("d/sub/file", "s").chmod("d/sub/file", 0o600);
    ctx.chmod("d/sub", 0o700);
    std::os::unix::fs::chown(ctx.join("f"), Some(1234), Some(4321)).unwrap();
    let t = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
    set_mtime(&ctx.join("f"), t);
    build(root, ctx.path(), &["-t", "t"]);
    let fs = image_fs(root, "t");
    let p = &fs["plain"];
    assert_eq!(
        (p.uid, p.gid, p.mode),
        (0, 0, 0o664),
        "context files are root's"
    );
    assert_eq!(p.mtime, 1_600_000_000, "the source mtime is kept");
    let n = &fs["numeric"];
    assert_eq!((n.uid, n.gid), (7, 8));
    // A user name: its uid and primary group from the image's /etc/passwd;
    // directories created for the destination belong to it too.
    for path in ["named", "named/exe", "named/sub", "named/sub/file"] {
        assert_eq!((fs[path].uid, fs[path].gid), (1000, 1000), "{path}");
    }
    // Octal --chmod applies to every copied entry, directories included,
    // but not to the destination directory it creates.
    assert_eq!(fs["octal/exe"].mode, 0o640);
    assert_eq!(fs["octal/sub"].mode, 0o640);
    assert_eq!(fs["octal"].mode, 0o755);
    assert_eq!(fs["symbolic"].mode, 0o744);
    assert_eq!(fs["rx/exe"].mode, 0o755, "X: already executable");
    assert_eq!(fs["rx/sub"].mode, 0o755, "X: a directory");
    assert_eq!(fs["rx/sub/file"].mode, 0o644);
    // From an image or stage, owners are kept.
    assert_eq!((fs["homes/app"].uid, fs["homes/app"].gid), (1000, 1000));
}

#[test]
fn link_layers_are_independent_of_the_base() {
    let store = store_with_busybox();
    let root = store.path();
    let ctx = Ctx::new(
        "FROM busybox AS one\nCOPY --link app/ /opt/app/\n\
         FROM scratch AS two\nCOPY other /other\nCOPY --link app/ /opt/app/\n",
    );
    ctx.write("app/run.sh", "#!/bin/sh\n").write("other", "o");
    let one = build(root, ctx.path(), &["--target", "one", "-t", "one"]);
    assert!(!one.fully_cached());
    let two = build(root, ctx.path(), &["--target", "two", "-t", "two"]);
    assert_eq!(
        two.cached_texts(),
        ["COPY --link app/ /opt/app/".to_owned()].into(),
        "the --link layer is reused on another base: {}",
        two.stderr
    );
    let a = saved(root, "one");
    let b = saved(root, "two");
    assert_eq!(a.layer_digests.last(), b.layer_digests.last());
    assert_ne!(a.layer_digests[0], b.layer_digests[0], "different bases");
    assert_eq!(merge(&b.layers)["opt/app/run.sh"].text(), "#!/bin/sh\n");
    // The layer holds only what was copied (and the directories above it).
    let names: Vec<String> = layer_entries(b.layers.last().unwrap())
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["opt", "opt/app", "opt/app/run.sh"]);
    // --chown by name is refused with --link (nothing to look names up in).
    ctx.write(
        "Dockerfile",
        "FROM busybox\nCOPY --link --chown=app app/ /x/\n",
    );
    let err = build_fails(root, ctx.path(), &[]);
    assert!(err.contains("numeric"), "{err}");
}

#[test]
fn parents_and_exclude() {
    let store = store_with_busybox();
    let root = store.path();
    let ctx = Ctx::new(
        "FROM scratch\n\
         COPY --parents ./x/a.txt ./y/a.txt /parents/\n\
         COPY ./x/a.txt ./y/a.txt /no_parents/\n\
         COPY --parents ./x/./y/*.txt /pivot/\n\
         COPY --parents ./src/**/*.txt /deep/\n\
         COPY --exclude=*.md --exclude=sub/skip . /ex/\n\
         COPY --exclude=*.txt hom* /hom/\n",
    );
    ctx.write("x/a.txt", "xa")
        .write("y/a.txt", "ya")
        .write("x/y/b.txt", "xyb")
        .write("src/a.txt", "1")
        .write("src/x/b.txt", "2")
        .write("src/x/y/c.txt", "3")
        .write("src/x/y/c.bin", "4")
        .write("notes.md", "n")
        .write("sub/skip/f", "s")
        .write("sub/keep", "k")
        .write("home.txt", "h")
        .write("homer", "hh");
    let b = build(root, ctx.path(), &["-t", "t"]);
    let fs = image_fs(root, "t");
    assert_eq!(files_below(&fs, "parents"), ["x/a.txt", "y/a.txt"]);
    assert_eq!(fs["parents/y/a.txt"].text(), "ya");
    assert_eq!(files_below(&fs, "no_parents"), ["a.txt"]);
    assert_eq!(fs["no_parents/a.txt"].text(), "ya", "the last one wins");
    assert_eq!(files_below(&fs, "pivot"), ["y/b.txt"]);
    assert_eq!(
        files_below(&fs, "deep"),
        ["src/a.txt", "src/x/b.txt", "src/x/y/c.txt"]
    );
    let ex = files_below(&fs, "ex");
    assert!(ex.contains(&"sub/keep".to_owned()), "{ex:?}");
    assert!(
        !ex.iter()
            .any(|f| f.ends_with(".md") || f.starts_with("sub/skip")),
        "{ex:?}"
    );
    assert_eq!(files_below(&fs, "hom"), ["homer"]);
    // A change to an excluded file does not invalidate the step.
    ctx.write("notes.md", "changed, and longer");
    let again = build(root, ctx.path(), &["-t", "t"]);
    assert!(again.fully_cached(), "{}", again.stderr);
    assert_eq!(again.id, b.id);
}

#[test]
fn copy_from_an_image_in_the_store_and_a_stage_index() {
    let store = store_with_busybox();
    let root = store.path();
    let ctx = Ctx::new(
        "FROM scratch AS first\nCOPY --from=busybox:latest /bin/busybox /bin/busybox\n\
         FROM scratch\nCOPY --from=0 /bin/ /b/\nCOPY --from=busybox /etc/passwd /etc/\n",
    );
    build(root, ctx.path(), &["-t", "t"]);
    let fs = image_fs(root, "t");
    assert_eq!(
        fs["b/busybox"].data(),
        std::fs::read("/bin/busybox").unwrap()
    );
    assert!(fs["etc/passwd"].text().contains("app:x:1000"));
}

fn tar_bytes() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data, uid) in [("top.txt", &b"top"[..], 0), ("d/inner.txt", b"inner", 33)] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o640);
        h.set_uid(uid);
        h.set_gid(uid);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn add_unpacks_local_archives_by_content() {
    let store = store_with_busybox();
    let root = store.path();
    let ctx = Ctx::new(
        "FROM scratch\n\
         ADD a.tar /plain/\n\
         ADD a.tar.gz /gz\n\
         ADD a.tar.bz2 /bz2/\n\
         ADD a.tar.xz /xz/\n\
         ADD a.tar.zst /zst/\n\
         ADD notatar.gz /files/\n\
         ADD fake.tar.gz /files/\n\
         ADD --unpack=false a.tar.gz /kept/\n\
         COPY a.tar /copied/\n",
    );
    let tar = tar_bytes();
    ctx.write("a.tar", &tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    ctx.write("a.tar.gz", gz.finish().unwrap());
    // bzip2 by Python's bz2 module (an independent producer).
    let bz = std::process::Command::new("python3")
        .args([
            "-c",
            "import bz2, sys; sys.stdout.buffer.write(bz2.compress(open(sys.argv[1], 'rb').read()))",
        ])
        .arg(ctx.join("a.tar"))
        .output()
        .expect("python3 runs");
    assert!(bz.status.success());
    assert!(bz.stdout.starts_with(b"BZh"));
    ctx.write("a.tar.bz2", bz.stdout);
    let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
    xz.write_all(&tar).unwrap();
    ctx.write("a.tar.xz", xz.finish().unwrap());
    ctx.write("a.tar.zst", zstd::encode_all(&tar[..], 3).unwrap());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"just some text, not a tar").unwrap();
    ctx.write("notatar.gz", gz.finish().unwrap());
    ctx.write("fake.tar.gz", "");
    build(root, ctx.path(), &["-t", "t"]);
    let fs = image_fs(root, "t");
    for dir in ["plain", "gz", "bz2", "xz", "zst"] {
        assert_eq!(fs[&format!("{dir}/top.txt")].text(), "top", "{dir}");
        let inner = &fs[&format!("{dir}/d/inner.txt")];
        assert_eq!(inner.text(), "inner", "{dir}");
        assert_eq!(
            (inner.uid, inner.mode),
            (33, 0o640),
            "owners and modes from the tar"
        );
    }
    assert_eq!(
        fs["files/notatar.gz"].kind,
        Kind::File(std::fs::read(ctx.join("notatar.gz")).unwrap())
    );
    assert_eq!(
        fs["files/fake.tar.gz"].data(),
        b"",
        "an empty file is not an archive"
    );
    assert_eq!(files_below(&fs, "kept"), ["a.tar.gz"]);
    assert_eq!(files_below(&fs, "copied"), ["a.tar"], "COPY never unpacks");
}

/// `python3 -m http.server` on 127.0.0.1 serving `dir`; killed on drop.
struct HttpServer {
    child: std::process::Child,
    port: u16,
}

impl HttpServer {
    fn start(dir: &std::path::Path) -> HttpServer {
        let port = free_port();
        let port_arg = port.to_string();
        HttpServer::spawn(
            dir,
            port,
            &["-m", "http.server", "--bind", "127.0.0.1", &port_arg],
        )
    }

    /// `python3 ARGS` in `dir`, which must listen on `port`; returns once
    /// it accepts connections.
    fn spawn(dir: &std::path::Path, port: u16, args: &[&str]) -> HttpServer {
        let mut child = std::process::Command::new("python3")
            .args(args)
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 runs");
        // Wait (bounded) until it accepts connections.
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return HttpServer { child, port };
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("python3 {args:?} did not start listening on {port}");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn add_urls_with_checksums() {
    let store = store_with_busybox();
    let root = store.path();
    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("hello.txt"), "hello over http\n").unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar_bytes()).unwrap();
    std::fs::write(www.path().join("a.tar.gz"), gz.finish().unwrap()).unwrap();
    let server = HttpServer::start(www.path());
    let base = format!("http://127.0.0.1:{}", server.port);
    let sum = sha256_hex(b"hello over http\n");
    let ctx = Ctx::new(&format!(
        "FROM scratch\n\
         ADD {base}/hello.txt /dl/\n\
         ADD --checksum=sha256:{sum} {base}/hello.txt /named\n\
         ADD {base}/a.tar.gz /archive/\n\
         ADD --unpack=true {base}/a.tar.gz /unpacked/\n"
    ));
    build(root, ctx.path(), &["-t", "t"]);
    let fs = image_fs(root, "t");
    assert_eq!(fs["dl/hello.txt"].text(), "hello over http\n");
    assert_eq!(fs["dl/hello.txt"].mode, 0o600, "downloads are 0600");
    assert_eq!(fs["named"].text(), "hello over http\n");
    assert_eq!(
        files_below(&fs, "archive"),
        ["a.tar.gz"],
        "URLs are not unpacked by default"
    );
    assert_eq!(fs["unpacked/d/inner.txt"].text(), "inner");

    // A wrong checksum fails the build and names both digests.
    let bad = Ctx::new(&format!(
        "FROM scratch\nADD --checksum=sha256:{} {base}/hello.txt /x\n",
        "0".repeat(64)
    ));
    let err = build_fails(root, bad.path(), &[]);
    assert!(err.contains("mismatch") && err.contains(&sum), "{err}");

    // With a checksum the step is cached without fetching: the server can go.
    let pinned = Ctx::new(&format!(
        "FROM scratch\nADD --checksum=sha256:{sum} {base}/hello.txt /x\n"
    ));
    let first = build(root, pinned.path(), &[]);
    drop(server);
    let again = build(root, pinned.path(), &[]);
    assert!(again.fully_cached(), "{}", again.stderr);
    assert_eq!(again.id, first.id);
    // Without one, the URL must be fetched (to know its content) and fails.
    let err = build_fails(root, ctx.path(), &[]);
    assert!(err.contains("hello.txt"), "{err}");
}

#[test]
fn copies_between_stages_do_not_leak_later_changes() {
    // `COPY --from` may share files with the source stage's materialised
    // file system; overwriting them later in the copying stage must not
    // change what another `COPY --from` of the source sees.
    let store = store_with_busybox();
    let root = store.path();
    let ctx = Ctx::new(
        "FROM busybox AS a\nCOPY x /x\n\
         FROM busybox AS b\nCOPY --from=a /x /x\nCOPY y /x\n\
         FROM scratch\nCOPY --from=b /x /bx\nCOPY --from=a /x /ax\n",
    );
    ctx.write("x", "from x").write("y", "from y");
    build(root, ctx.path(), &["-t", "t", "--jobs", "1"]);
    let fs = image_fs(root, "t");
    assert_eq!(fs["bx"].text(), "from y");
    assert_eq!(fs["ax"].text(), "from x");
}

/// A CA and a server certificate for 127.0.0.1, made with the openssl tool.
fn tls_files(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=berth test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "srv.key",
        "-out",
        "srv.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}

#[test]
fn add_https_urls_verify_certificates() {
    let store = store_with_busybox();
    let root = store.path();
    let tls = tempfile::tempdir().unwrap();
    tls_files(tls.path());
    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("hello.txt"), "hello over https\n").unwrap();
    let port = free_port();
    let script = format!(
        "import http.server, ssl\n\
         srv = http.server.HTTPServer(('127.0.0.1', {port}), http.server.SimpleHTTPRequestHandler)\n\
         c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
         c.load_cert_chain({:?}, {:?})\n\
         srv.socket = c.wrap_socket(srv.socket, server_side=True)\n\
         srv.serve_forever()\n",
        tls.path().join("srv.pem"),
        tls.path().join("srv.key"),
    );
    let _server = HttpServer::spawn(www.path(), port, &["-c", &script]);
    let sum = sha256_hex(b"hello over https\n");
    let ctx = Ctx::new(&format!(
        "FROM scratch\nADD --checksum=sha256:{sum} https://127.0.0.1:{port}/hello.txt /dl/\n"
    ));
    // The server's certificate is trusted only through SSL_CERT_FILE.
    let err = build_fails(root, ctx.path(), &[]);
    assert!(err.contains("certificate"), "{err}");
    let mut cmd = build_cmd(root, ctx.path(), &["-t", "t"]);
    cmd.env("SSL_CERT_FILE", tls.path().join("ca.pem"));
    ok(&mut cmd);
    let fs = image_fs(root, "t");
    assert_eq!(fs["dl/hello.txt"].text(), "hello over https\n");
    assert_eq!(fs["dl/hello.txt"].mode, 0o600);
}
