//! Docker's `.dockerignore` rules, one case each, and the context walk
//! checked against per-path matching on real directory trees.

use std::collections::BTreeSet;
use std::path::Path;

use berth_dockerignore::{
    EntryKind, IgnoreError, IgnoreMatcher, find_ignore_file, read_patterns, walk_context,
    walk_context_with_stats,
};
use proptest::prelude::*;

fn excluded(file: &str, path: &str) -> bool {
    IgnoreMatcher::parse(file).unwrap().matches(path, false)
}

/// (file, path, excluded?)
const CASES: &[(&str, &str, bool)] = &[
    // Plain names anchor at the context root (not .gitignore's "anywhere").
    ("foo", "foo", true),
    ("foo", "a/foo", false),
    ("foo", "foo/bar", true), // a matching directory takes its content along
    ("foo", "foobar", false),
    ("/foo", "foo", true),
    ("foo/", "foo", true),
    ("./foo", "foo/x", true),
    ("foo/../bar", "bar", true),
    // `*` and `?` never cross `/`.
    ("*", "a", true),
    ("*", "a/b", true), // through the parent `a`
    ("*/b", "a/b", true),
    ("*/b", "a/c/b", false),
    ("a?", "ab", true),
    ("a?", "a/", false),
    ("*.go", "x.go", true),
    ("*.go", "d/x.go", false),
    // `**` spans any number of directories, including none.
    ("**/x.go", "x.go", true),
    ("**/x.go", "a/b/x.go", true),
    ("**/*.go", "a/b/x.go", true),
    ("a/**/b", "a/b", true),
    ("a/**/b", "a/x/y/b", true),
    ("a/**", "a/x", true),
    ("a/**", "ab", false),
    ("**", "anything/at/all", true),
    // Docker's literal suffix/prefix shortcuts.
    ("**foo", "xfoo", true),
    ("**foo", "a/xfoo", true),
    ("foo**", "foobar/x", true),
    // Character classes and escapes.
    ("[ab]", "a", true),
    ("[ab]", "c", false),
    ("[^a]", "b", true),
    ("[^a]", "a", false),
    ("[a-c]x", "bx", true),
    ("\\*", "*", true),
    ("\\*", "a", false),
    ("a\\?b", "a?b", true),
    ("a\\?b", "axb", false),
    // Regexp metacharacters are literal.
    ("a.b", "axb", false),
    ("a+b", "a+b", true),
    ("a+b", "aab", false),
    ("(x)", "(x)", true),
    ("a|b", "a", false),
    ("{a,b}", "{a,b}", true),
    ("$x", "$x", true),
    // Comments only at column 0; `\#` and `/#` name a file starting with #.
    ("#foo", "#foo", false),
    (" #foo", "#foo", true),
    ("\\#foo", "#foo", true),
    ("/#foo", "#foo", true),
    // Exceptions: the last matching pattern wins.
    ("*.go\n!main.go", "main.go", false),
    ("*.go\n!main.go", "x.go", true),
    ("!main.go\n*.go", "main.go", true),
    ("a\n!a/b", "a/b", false),
    ("a\n!a/b", "a/b/c", false),
    ("a\n!a/b", "a/c", true),
    ("a\n!a/b\na/b/c", "a/b/c", true),
    ("*\n!*.go", "x.go", false),
    ("*\n!*.go", "d/x.go", true), // `*.go` does not reach into d
    ("\\!x", "!x", true),
    ("/!x", "x", false), // `/!x` is the exception `!x`, as in Docker
    // CRLF and blank lines.
    ("a\r\n\r\nb\r\n", "b", true),
    ("  a  \t", "a", true),
    // The walk state: an exception evaluated below the directory it names
    // is not re-tried against that directory (fsutil's MatchesUsingParentResults).
    ("d/f\n!d", "d/f", true),
    ("ab/*.b\n![a-z]*", "ab/a.b", true),
    // Go regexp semantics of odd patterns.
    ("\\d", "1", true),
    ("\\a", "a", false),
    ("a^b", "a^b", true),    // no wildcard: compared as a plain string
    ("a^b*", "a^bx", false), // with one, `^` is a regexp anchor mid-way
    ("[*]", "]", true),
    ("[[:alpha:]]", "q", true),
];

#[test]
fn docker_rules() {
    let mut failures = Vec::new();
    for &(file, path, want) in CASES {
        if excluded(file, path) != want {
            failures.push(format!("{file:?} on {path:?}: want excluded={want}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn invalid_files_are_errors() {
    let at = |line, e| IgnoreError::AtLine {
        line,
        error: Box::new(e),
    };
    assert_eq!(
        IgnoreMatcher::parse("!").unwrap_err(),
        at(1, IgnoreError::IllegalExclusion)
    );
    assert_eq!(
        IgnoreMatcher::parse("a\n# c\n! ").unwrap_err(),
        at(3, IgnoreError::IllegalExclusion)
    );
    assert_eq!(
        IgnoreMatcher::from_patterns(["!"]).unwrap_err(),
        IgnoreError::IllegalExclusion
    );
    assert_eq!(
        IgnoreMatcher::parse("ok\nx[").unwrap_err().to_string(),
        ".dockerignore line 2: syntax error in pattern \"x[\""
    );
    for bad in ["[", "a[b", "[]", "[a-]", "a\\", "\\q", "x\\é", "[z-a]"] {
        assert!(
            IgnoreMatcher::parse(bad).is_err(),
            "{bad:?} should be rejected"
        );
    }
    let long = "a".repeat(70_000);
    assert!(matches!(
        IgnoreMatcher::parse(&long),
        Err(IgnoreError::LineTooLong { line: 1 })
    ));
}

#[test]
fn read_patterns_like_docker() {
    let text = "\u{feff}# c\n\n /a/b/ \r\n!  ./c/../d\n/\n\\#x\n #y";
    assert_eq!(
        read_patterns(text).unwrap(),
        ["a/b", "!d", "/", "\\#x", "#y"]
    );
}

#[test]
fn build_files_are_kept() {
    let m = IgnoreMatcher::parse("*\n!src")
        .unwrap()
        .keep_build_files(Some("Dockerfile"))
        .unwrap();
    assert!(!m.matches(".dockerignore", false));
    assert!(!m.matches("Dockerfile", false));
    assert!(m.matches("other", false));
    let m = IgnoreMatcher::parse("build")
        .unwrap()
        .keep_build_files(Some("build/app.Dockerfile"))
        .unwrap();
    assert!(!m.matches("build/app.Dockerfile", false));
    assert!(m.matches("build/other", false));
    // Nothing added when nothing is excluded.
    let m = IgnoreMatcher::parse("x")
        .unwrap()
        .keep_build_files(Some("Dockerfile"))
        .unwrap();
    assert_eq!(m.patterns().len(), 1);
    // Docker validates the added exception like any pattern.
    assert!(
        IgnoreMatcher::parse("*")
            .unwrap()
            .keep_build_files(Some("a[b"))
            .is_err()
    );
}

#[test]
fn per_dockerfile_ignore_file_wins() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path();
    std::fs::create_dir(ctx.join("build")).unwrap();
    let df = ctx.join("build/app.Dockerfile");
    std::fs::write(&df, "FROM scratch").unwrap();
    assert_eq!(find_ignore_file(ctx, Some(&df)), None);
    std::fs::write(ctx.join(".dockerignore"), "x").unwrap();
    assert_eq!(
        find_ignore_file(ctx, Some(&df)),
        Some(ctx.join(".dockerignore"))
    );
    std::fs::write(ctx.join("build/app.Dockerfile.dockerignore"), "y").unwrap();
    assert_eq!(
        find_ignore_file(ctx, Some(&df)),
        Some(ctx.join("build/app.Dockerfile.dockerignore"))
    );
    assert_eq!(find_ignore_file(ctx, None), Some(ctx.join(".dockerignore")));
}

fn make_tree(root: &Path, files: &[String]) {
    for f in files {
        let p = root.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        if !p.exists() {
            std::fs::write(&p, b"x").unwrap();
        }
    }
}

/// Files the walk lists must be exactly the files `matches` keeps, and every
/// listed directory must be kept or hold a kept entry.
fn check_walk(file: &str, tree: &[String]) -> Result<(), TestCaseError> {
    let Ok(m) = IgnoreMatcher::parse(file) else {
        return Ok(());
    };
    let dir = tempfile::tempdir().unwrap();
    make_tree(dir.path(), tree);
    let entries = walk_context(dir.path(), &m).unwrap();
    let walked: BTreeSet<String> = entries
        .iter()
        .filter(|e| e.kind == EntryKind::File)
        .map(|e| e.path.clone())
        .collect();
    let all_files: BTreeSet<String> = tree
        .iter()
        .filter(|f| dir.path().join(f).is_file())
        .cloned()
        .collect();
    let expected: BTreeSet<String> = all_files
        .iter()
        .filter(|f| !m.matches(f, false))
        .cloned()
        .collect();
    prop_assert_eq!(&walked, &expected, "file {:?}", file);
    for e in entries.iter().filter(|e| e.kind == EntryKind::Dir) {
        let prefix = format!("{}/", e.path);
        prop_assert!(!m.matches(&e.path, true) || walked.iter().any(|w| w.starts_with(&prefix)));
    }
    Ok(())
}

#[test]
fn walk_lists_kept_files_and_their_parents() {
    let tree: Vec<String> = [
        "a/b/c.go",
        "a/b/d.txt",
        "a/x.go",
        "main.go",
        "d/f",
        "node_modules/p/i.js",
        "Dockerfile",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let dir = tempfile::tempdir().unwrap();
    make_tree(dir.path(), &tree);
    let m = IgnoreMatcher::parse("a\n!a/b/*.go\nnode_modules").unwrap();
    let got: Vec<(String, EntryKind)> = walk_context(dir.path(), &m)
        .unwrap()
        .into_iter()
        .map(|e| (e.path, e.kind))
        .collect();
    let want = vec![
        ("Dockerfile".to_owned(), EntryKind::File),
        ("a".to_owned(), EntryKind::Dir),
        ("a/b".to_owned(), EntryKind::Dir),
        ("a/b/c.go".to_owned(), EntryKind::File),
        ("d".to_owned(), EntryKind::Dir),
        ("d/f".to_owned(), EntryKind::File),
        ("main.go".to_owned(), EntryKind::File),
    ];
    assert_eq!(got, want);
}

#[test]
fn excluded_directories_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let mut tree = vec!["src/main.rs".to_owned(), "Dockerfile".to_owned()];
    for i in 0..50 {
        tree.push(format!("node_modules/p{i}/lib/index.js"));
        tree.push(format!("target/debug/d{i}/x.o"));
    }
    make_tree(dir.path(), &tree);
    let count = |file: &str| {
        let m = IgnoreMatcher::parse(file).unwrap();
        let (entries, stats) = walk_context_with_stats(dir.path(), &m).unwrap();
        (entries.len(), stats.dirs_read)
    };
    // No exceptions: neither excluded directory is opened.
    assert_eq!(count("node_modules\ntarget"), (3, 2)); // Dockerfile, src, src/main.rs; root + src read
    // An exception that cannot reach inside them: still pruned.
    assert_eq!(count("node_modules\ntarget\n!src/keep"), (3, 2));
    // An exception inside node_modules: that directory must be walked, and
    // only the re-included file (with its parents) is sent.
    let (n, dirs) = count("node_modules\ntarget\n!node_modules/p7/lib/index.js");
    assert_eq!(n, 3 + 4);
    // Inside it, only the branch leading to the exception is opened.
    assert_eq!(dirs, 5); // root, src, node_modules, p7, p7/lib
    // A wildcard exception could match anywhere: nothing can be pruned.
    let (_, dirs) = count("node_modules\ntarget\n!*.md");
    assert_eq!(dirs, 2 + (1 + 50 * 2) + (1 + 1 + 50));
}

#[test]
fn walk_is_fast() {
    // 20,000 files in 400 directories with a realistic ignore file.
    let dir = tempfile::tempdir().unwrap();
    let mut tree = Vec::new();
    for d in 0..400 {
        for f in 0..50 {
            tree.push(format!(
                "pkg{}/sub{}/file{f}.{}",
                d % 20,
                d,
                if f % 3 == 0 { "go" } else { "txt" }
            ));
        }
    }
    make_tree(dir.path(), &tree);
    let m = IgnoreMatcher::parse("**/*.txt\n!pkg1/**/file1.txt\n*.log\n.git\npkg3/sub*/file4*")
        .unwrap();
    let start = std::time::Instant::now();
    let entries = walk_context(dir.path(), &m).unwrap();
    let took = start.elapsed();
    assert!(entries.iter().any(|e| e.path == "pkg1/sub1/file1.txt"));
    assert!(!entries.iter().any(|e| e.path == "pkg2/sub2/file1.txt"));
    // Generous even for a debug build on a loaded machine.
    assert!(
        took < std::time::Duration::from_secs(10),
        "walk took {took:?}"
    );
    eprintln!("walked {} entries in {took:?}", entries.len());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn walk_agrees_with_matches(
        file in prop::collection::vec(
            prop::sample::select(vec!["a", "!a/b", "*", "!*.go", "**/c", "!**/d*", "a/*", "!a/b/*", "b", "*/b", "!b/c", "**", "!x"]),
            0..5,
        ),
        tree in prop::collection::vec("(a|b|x)(/(a|b|c|d1|e\\.go)){0,3}/f(1|2|\\.go)", 1..12),
    ) {
        check_walk(&file.join("\n"), &tree)?;
    }

    #[test]
    fn parse_and_match_never_panic(file in "\\PC{0,60}", path in "[a-z/.*?\\[\\]\\\\!é]{0,20}") {
        if let Ok(m) = IgnoreMatcher::parse(&file) {
            let _ = m.matches(&path, false);
            let _ = m.matches_or_parent_matches(&path);
        }
    }

    #[test]
    fn glob_syntax_never_panics(file in "([a-c*?!/\\\\\\[\\]^-]|\\[:alpha:\\]){0,20}", path in "[a-c/]{0,8}") {
        if let Ok(m) = IgnoreMatcher::parse(&file) {
            let _ = m.matches(&path, true);
        }
    }
}
