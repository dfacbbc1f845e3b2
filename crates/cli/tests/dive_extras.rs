//! `berth dive diff` and `berth dive cat`.

mod common;
mod dive_util;

use common::{berth, fails, ok, stderr};
use dive_util::*;

fn store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let a = dir.path().join("a.tar");
    write_docker_archive(&a, "multi:1", &four_layers(), &FOUR_COMMANDS);
    ok(berth(&root).args(["load", "-i"]).arg(&a));
    // multi:2 shares the base layer, rewrites /etc/conf and adds /opt/x.
    let base = four_layers().remove(0);
    let b = dir.path().join("b.tar");
    write_docker_archive(
        &b,
        "multi:2",
        &[
            base,
            layer_tar(&[Ent::Dir("etc/"), Ent::File("etc/conf", &[b'd'; 500], 0o644)]),
            layer_tar(&[Ent::Dir("opt/"), Ent::File("opt/x", &[b'x'; 10], 0o644)]),
        ],
        &["ADD rootfs.tar /", "COPY conf /etc/conf", "COPY x /opt/x"],
    );
    ok(berth(&root).args(["load", "-i"]).arg(&b));
    dir
}

#[test]
fn diff_lists_paths_added_removed_and_changed() {
    let dir = store();
    let root = dir.path().join("store");
    let text = ok(berth(&root).args(["dive", "diff", "multi:1", "multi:2"]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "M /bin/app\t2.0 kB -> 2.0 kB (mode)",
            "M /etc/conf\t1.0 kB -> 500 B (content)",
            "A /opt\t10 B",
            "A /usr/lib\t5.0 kB",
        ],
        "{text}"
    );
    let back = ok(berth(&root).args(["dive", "diff", "multi:2", "multi:1", "--json"]));
    let doc = common::json(&back);
    let kinds: Vec<(&str, &str)> = doc
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].as_str().unwrap(), e["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("/bin/app", "changed"),
            ("/etc/conf", "changed"),
            ("/opt", "removed"),
            ("/usr/lib", "removed")
        ]
    );
    assert_eq!(doc[3]["before"], 5000);
    // An image against itself: nothing.
    assert_eq!(
        ok(berth(&root).args(["dive", "diff", "multi:1", "multi:1"])),
        ""
    );
}

#[test]
fn cat_extracts_a_file_from_the_final_filesystem_or_a_layer() {
    let dir = store();
    let root = dir.path().join("store");
    let out = berth(&root)
        .args(["dive", "cat", "multi:1", "/bin/app"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, vec![b'a'; 2000]);
    let out = berth(&root)
        .args(["dive", "cat", "multi:2", "etc/conf"])
        .output()
        .unwrap();
    assert_eq!(out.stdout, vec![b'd'; 500]);
    // Deleted by layer 3, but layer 0 still ships it.
    let out = berth(&root)
        .args(["dive", "cat", "multi:1", "/usr/lib/big", "--layer", "0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, vec![b'b'; 5000]);
    // The same from the archive, without the store.
    let out = berth(&root)
        .args(["dive", "cat", "--source", "docker-archive"])
        .arg(dir.path().join("a.tar"))
        .args(["/usr/lib/big", "--layer", "0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout.len(), 5000);

    let out = fails(berth(&root).args(["dive", "cat", "multi:1", "/usr/lib/big"]));
    assert!(
        stderr(&out).contains("not in the image's final filesystem"),
        "{}",
        stderr(&out)
    );
    let out = fails(berth(&root).args(["dive", "cat", "multi:1", "/etc", "--layer", "0"]));
    assert!(
        stderr(&out).contains("/etc is a directory"),
        "{}",
        stderr(&out)
    );
    let out = fails(berth(&root).args(["dive", "cat", "multi:1", "/etc/conf", "--layer", "9"]));
    assert!(
        stderr(&out).contains("layer 9 does not exist (the image has 4 layers)"),
        "{}",
        stderr(&out)
    );
    let out = fails(berth(&root).args(["dive", "cat", "multi:1", "/etc/conf", "--layer", "2"]));
    assert!(
        stderr(&out).contains("/etc/conf is not in layer 2"),
        "{}",
        stderr(&out)
    );
}
