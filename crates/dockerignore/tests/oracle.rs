//! Differential test against the npm package `@balena/dockerignore`.
//!
//! A seeded generator writes hundreds of `.dockerignore` files (random
//! patterns with wildcards, classes, escapes, `**`, `!`, leading and trailing
//! slashes, comments, blank lines, CRLF) and thousands of paths; the oracle
//! (`testdata/dockerignore/oracle/oracle.js`, run with node) decides every
//! (file, path) pair and so does berth. Disagreements fail the test unless
//! they fall under one of the documented deviations of the oracle from
//! Docker (see [`Deviation`]), where berth follows Docker.
//!
//! The test fails, it does not skip, when node or the package is missing:
//! install it with `npm ci --prefix testdata/dockerignore/oracle`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use berth_dockerignore::{GoRegex, IgnoreMatcher};

fn oracle_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/dockerignore/oracle")
}

/// xorshift64*: a tiny deterministic generator, so the corpus is the same on
/// every run and machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const NAMES: &[&str] = &[
    "a",
    "b",
    "c",
    "ab",
    "abc",
    "ba",
    "a.b",
    "x.go",
    "y.go",
    "main.rs",
    "foo",
    "bar",
    "foobar",
    "Foo",
    "d1",
    "d2",
    "_",
    "a b",
    ".hidden",
    ".git",
    "#c",
    "!x",
    "node_modules",
    "target",
    "x.txt",
    "[a]",
    "a*b",
    "a?b",
    "-",
    "é",
];

fn gen_path(rng: &mut Rng) -> String {
    let depth = 1 + rng.below(5);
    (0..depth)
        .map(|_| rng.pick(NAMES))
        .collect::<Vec<_>>()
        .join("/")
}

/// One path component of a pattern.
fn gen_component(rng: &mut Rng) -> String {
    let atoms = &[
        "a",
        "b",
        "c",
        "ab",
        "foo",
        "bar",
        "x",
        "go",
        "d1",
        "d2",
        ".git",
        "node_modules",
        "target",
        "a b",
        "é",
        "_",
        "-",
    ];
    match rng.below(16) {
        0 => "*".into(),
        1 => "**".into(),
        2 => "?".into(),
        3 => format!("{}*", rng.pick(atoms)),
        4 => format!("*.{}", rng.pick(&["go", "rs", "txt", "b"])),
        5 => format!("{}?", rng.pick(atoms)),
        6 => rng
            .pick(&[
                "[ab]", "[a-c]", "[^a]", "[!a]", "[a-z]*", "d[12]", "[_-]", "[\\]]", "[é]",
            ])
            .to_owned(),
        7 => rng
            .pick(&[
                "\\*", "a\\*b", "\\?", "\\[a]", "\\!x", "\\#c", "a\\?b", "\\a",
            ])
            .to_owned(),
        8 => rng.pick(&["*a*", "**foo", "a+", "(a)"]).to_owned(),
        9 => rng.pick(&[".", "..", "*.*"]).to_owned(),
        _ => rng.pick(atoms).to_owned(),
    }
}

fn gen_pattern(rng: &mut Rng) -> String {
    let n = 1 + rng.below(4);
    let mut p: String = (0..n)
        .map(|_| gen_component(rng))
        .collect::<Vec<_>>()
        .join("/");
    if rng.chance(15) {
        p.insert(0, '/');
    }
    if rng.chance(10) {
        p.insert_str(0, "./");
    }
    if rng.chance(10) {
        p.push('/');
    }
    if rng.chance(30) {
        p.insert(0, '!');
        if rng.chance(15) {
            p.insert(1, ' ');
        }
    }
    if rng.chance(5) {
        p = format!("  {p} \t");
    }
    p
}

fn gen_file(rng: &mut Rng) -> String {
    let n = 1 + rng.below(6);
    let eol = if rng.chance(15) { "\r\n" } else { "\n" };
    let mut lines = Vec::new();
    for _ in 0..n {
        match rng.below(20) {
            0 => lines.push("# a comment".to_owned()),
            1 => lines.push(String::new()),
            _ => lines.push(gen_pattern(rng)),
        }
    }
    lines.join(eol)
}

/// Hand-picked files covering each rule of the format at least once.
const HANDWRITTEN: &[&str] = &[
    "a",
    "/a",
    "a/",
    "./a",
    "a/b",
    "*",
    "*/",
    "*/b",
    "*/*/c",
    "**",
    "**/a",
    "a/**",
    "a/**/b",
    "**/*.go",
    "*.go\n!main.go",
    "*\n!a",
    "*\n!a/b",
    "a\n!a/b",
    "a\n!a/b\na/b/c",
    "**\n!**/*.go",
    "a?",
    "[ab]",
    "[^a]*",
    "\\*",
    "# comment\na",
    " # not a comment",
    "\\#c",
    "/#c",
    "!x",
    "\\!x",
    "/!x",
    "a/../b",
    "../a",
    "a\r\nb\r\n",
    "   a   ",
    "foo*\n!foobar",
    "d1/**\n!d1/x.go",
    "node_modules\n.git\ntarget",
    "*/*.go\n!d1/*.go",
    "a b",
    "é",
    // Oracle deviations on purpose (see `Deviation`):
    "**foo",
    "**.go",
    "a+b",
    "(x)|y",
    "{a,b}",
    "\\a",
    "d/f\n!d",
];

/// Known ways in which @balena/dockerignore differs from Docker. Each
/// disagreement must be explained by one of these, or the test fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Deviation {
    /// The oracle combines rules with moby v19.03's old parent logic (a rule
    /// with N path elements is tried against the path's first N parent
    /// elements only, `**` rules against a range of prefixes) and without
    /// Docker's walk state. Docker's context walk (fsutil +
    /// `MatchesUsingParentResults`) carries per-pattern results down the
    /// tree. Explained when the oracle's answer equals an emulation of its
    /// own combination logic run on berth's (Docker's) per-pattern matches.
    ParentLogic,
    /// The oracle escapes only `.` and `$` before handing a pattern to
    /// JavaScript's RegExp; Docker also escapes `+ ( ) | { }`, so patterns
    /// holding those mean different things (or fail to compile) in the
    /// oracle.
    RegexMetachar,
    /// Docker matches a pattern that starts with `**` and has no other
    /// wildcard by plain suffix (`**foo` matches `xfoo`, `**.go` matches
    /// `a.go`); the oracle's regexp requires a `/` boundary.
    SuffixMatch,
    /// JavaScript regexps read `[!a]`, `[^a]` alike, but differ from Go in
    /// escapes inside classes and in `\` + letter (`\a` is an escape error in
    /// Go, `a` in JS); Docker follows Go.
    RegexDialect,
}

/// How one rule matches one path string.
#[derive(Clone, Copy)]
enum RuleSemantics {
    /// Docker's: patternmatcher's regexp (or prefix/suffix shortcut).
    Docker,
    /// The oracle's: its own pattern-to-regexp translation.
    Oracle,
}

/// The oracle's pattern-to-regexp translation (`_compile` in its source),
/// transcribed. Returns None where JavaScript and Go read the resulting
/// regexp differently (`\` + letter or digit, `{`), so it cannot be
/// evaluated here.
fn oracle_regex(pattern: &str) -> Option<GoRegex> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut re = String::from("^");
    let mut i = 0;
    while i < chars.len() {
        let ch = chars[i];
        match ch {
            '*' if chars.get(i + 1) == Some(&'*') => {
                i += 1;
                if chars.get(i + 1) == Some(&'/') {
                    i += 1;
                }
                re.push_str(if i + 1 >= chars.len() { ".*" } else { "(.*/)?" });
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '.' | '$' => {
                re.push('\\');
                re.push(ch);
            }
            '\\' => match chars.get(i + 1) {
                Some(n) if n.is_alphanumeric() => return None,
                Some(&n) => {
                    re.push('\\');
                    re.push(n);
                    i += 1;
                }
                None => re.push('\\'),
            },
            '{' | '}' => return None,
            _ => re.push(ch),
        }
        i += 1;
    }
    re.push('$');
    GoRegex::new(&re).ok()
}

fn rule_matches(
    rule: &berth_dockerignore::Pattern,
    sem: RuleSemantics,
    path: &str,
) -> Option<bool> {
    match sem {
        RuleSemantics::Docker => Some(rule.matches_path(path)),
        RuleSemantics::Oracle => oracle_regex(rule.as_str()).map(|re| re.is_match(path)),
    }
}

/// The oracle's way of combining rules (`_test` in its source): every rule
/// is evaluated (no walk state) and tried against the parent path cut to as
/// many elements as the rule has (a range of lengths for `**` rules).
fn oracle_combination(m: &IgnoreMatcher, sem: RuleSemantics, path: &str) -> Option<bool> {
    let parent = match path.rfind('/') {
        Some(i) => &path[..i],
        None => ".",
    };
    let parent_dirs: Vec<&str> = parent.split('/').collect();
    let mut matched = false;
    for rule in m.patterns() {
        let mut hit = rule_matches(rule, sem, path)?;
        if !hit && parent != "." {
            let dirs: Vec<&str> = rule.as_str().split('/').collect();
            if dirs.contains(&"**") {
                let start = dirs.iter().filter(|d| **d != "**").count();
                for i in start..=parent_dirs.len() {
                    hit = hit || rule_matches(rule, sem, &parent_dirs[..i].join("/"))?;
                }
            } else if dirs.len() <= parent_dirs.len() {
                hit = rule_matches(rule, sem, &parent_dirs[..dirs.len()].join("/"))?;
            }
        }
        if hit {
            matched = !rule.is_exclusion();
        }
    }
    Some(matched)
}

/// Explains a disagreement by going from Docker's semantics to the oracle's
/// one documented step at a time; a step that changes the answer names the
/// deviation. It holds only if the last step reproduces the oracle's answer
/// (or the oracle's regexp cannot be evaluated here and the file holds the
/// syntax that makes it so).
fn explain(m: &IgnoreMatcher, file: &str, path: &str, oracle: bool) -> Option<Deviation> {
    // Docker: the context walk.
    let walk = m.matches(path, false);
    // Docker's per-pattern matching, stateless, every parent tried.
    let stateless = m.matches_or_parent_matches(path);
    // Docker's per-pattern matching, the oracle's combination.
    let one_level = oracle_combination(m, RuleSemantics::Docker, path)?;
    // The oracle, emulated.
    let Some(full) = oracle_combination(m, RuleSemantics::Oracle, path) else {
        return file
            .contains(['{', '}', '\\'])
            .then_some(Deviation::RegexDialect);
    };
    if full != oracle {
        return None;
    }
    // Walk state only matters when some pattern is an exception.
    if walk != stateless && m.has_exclusions() {
        return Some(Deviation::ParentLogic);
    }
    if walk != stateless {
        return None;
    }
    if stateless != one_level {
        return Some(Deviation::ParentLogic);
    }
    let patterns = m.patterns();
    if patterns
        .iter()
        .any(|p| p.as_str().contains(['+', '(', ')', '|']))
    {
        return Some(Deviation::RegexMetachar);
    }
    if patterns
        .iter()
        .any(|p| p.as_str().starts_with("**") && !p.as_str().starts_with("**/"))
    {
        return Some(Deviation::SuffixMatch);
    }
    file.contains('\\').then_some(Deviation::RegexDialect)
}

fn run_oracle(files: &[String], paths: &[String]) -> Vec<Result<Vec<bool>, String>> {
    let dir = oracle_dir();
    assert!(
        dir.join("node_modules/@balena/dockerignore").is_dir(),
        "the oracle package is not installed: run `npm ci --prefix testdata/dockerignore/oracle`"
    );
    let input = serde_json::json!({ "files": files, "paths": paths }).to_string();
    let mut child = Command::new("node")
        .arg(dir.join("oracle.js"))
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node is required for the dockerignore oracle test (apt-get install nodejs)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "oracle failed: {}", out.status);
    let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    v.into_iter()
        .map(|r| match r {
            serde_json::Value::String(s) => Ok(s.bytes().map(|b| b == b'1').collect()),
            other => Err(other.to_string()),
        })
        .collect()
}

#[test]
fn agrees_with_balena_dockerignore() {
    let mut rng = Rng(0x00be_4711_d0c4_e21f);
    let mut files: Vec<String> = HANDWRITTEN.iter().map(|s| s.to_string()).collect();
    while files.len() < 600 {
        files.push(gen_file(&mut rng));
    }
    let mut paths: Vec<String> = NAMES.iter().map(|s| s.to_string()).collect();
    for a in ["a", "d1", "foo", ".git"] {
        for b in NAMES {
            paths.push(format!("{a}/{b}"));
        }
    }
    let mut unique: std::collections::BTreeSet<String> = paths.into_iter().collect();
    while unique.len() < 3000 {
        unique.insert(gen_path(&mut rng));
    }
    let paths: Vec<String> = unique.into_iter().collect();

    let oracle = run_oracle(&files, &paths);
    assert_eq!(oracle.len(), files.len());

    let mut compared = 0usize;
    let mut agreed = 0usize;
    let mut rejected_by_docker = 0usize;
    let mut oracle_errors = 0usize;
    let mut deviations: BTreeMap<Deviation, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for (file, answer) in files.iter().zip(&oracle) {
        let ours = match IgnoreMatcher::parse(file) {
            Ok(m) => m,
            Err(_) => {
                // Docker refuses the file (a lone `!`, an unclosed `[`, a
                // trailing `\`, `\` + letter, ...); the oracle accepts or
                // throws. Nothing to compare.
                rejected_by_docker += 1;
                continue;
            }
        };
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                // The oracle's RegExp did not compile; only acceptable for
                // the regexp-dialect deviations.
                assert!(
                    file.contains(['+', '(', ')', '|', '{', '}', '[', ']', '\\']),
                    "oracle threw {e} on {file:?}, which Docker accepts"
                );
                oracle_errors += 1;
                continue;
            }
        };
        for (path, &theirs) in paths.iter().zip(answer) {
            compared += 1;
            let mine = ours.matches(path, false);
            if mine == theirs {
                agreed += 1;
            } else if let Some(d) = explain(&ours, file, path, theirs) {
                let n = deviations.entry(d).or_default();
                *n += 1;
                if std::env::var_os("ORACLE_SHOW").is_some() && *n <= 8 {
                    eprintln!(
                        "{d:?}: file {file:?} path {path:?}: berth excludes={mine}, oracle={theirs}"
                    );
                }
            } else if failures.len() < 40 {
                failures.push(format!(
                    "file {file:?} path {path:?}: berth excludes={mine}, oracle={theirs}"
                ));
            } else {
                failures.push(String::new());
            }
        }
    }
    let pct = 100.0 * agreed as f64 / compared.max(1) as f64;
    eprintln!(
        "dockerignore oracle: {} files x {} paths; {compared} decisions compared, {agreed} agree ({pct:.3}%); \
         deviations {deviations:?}; {rejected_by_docker} files rejected by Docker; {oracle_errors} oracle errors",
        files.len(),
        paths.len()
    );
    assert!(compared > 1_000_000, "corpus too small: {compared}");
    assert!(
        failures.is_empty(),
        "{} unexplained disagreements:\n{}",
        failures.len(),
        failures
            .iter()
            .filter(|f| !f.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The deviations are the exception: most decisions must agree outright.
    assert!(pct > 97.0, "only {pct:.3}% agreement");
}
