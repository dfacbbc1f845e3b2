//! berth's re-implementations of Go behaviour (regexp syntax and matching,
//! `filepath.Clean`, the `filepath.Match` syntax check) against Go's own
//! standard library, over generated inputs.
//!
//! Needs a Go toolchain (Debian: `golang-go`, installed by
//! `scripts/install-test-deps.sh`). It fails, not skips, without `go`.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use berth_dockerignore::GoRegex;
use berth_dockerignore::go_filepath::{clean, is_bad_pattern};
use serde_json::{Value, json};

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
}

fn ask_go(requests: &[Value]) -> Vec<Value> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/dockerignore/gostd");
    let mut child = Command::new("go")
        .args(["run", "."])
        .current_dir(&dir)
        .env("GOFLAGS", "-mod=mod")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("this test needs Go (apt-get install golang-go)");
    let mut stdin = child.stdin.take().unwrap();
    let body: String = requests.iter().map(|r| format!("{r}\n")).collect();
    let writer = std::thread::spawn(move || stdin.write_all(body.as_bytes()).unwrap());
    let answers: Vec<Value> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    writer.join().unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(answers.len(), requests.len());
    answers
}

/// Regexps of the shapes patternmatcher generates, plus user text that
/// reaches Go's parser unchanged inside classes and after `\`.
fn gen_regex(rng: &mut Rng) -> String {
    let pieces = [
        "a",
        "b",
        "/",
        "\\.",
        "\\+",
        "\\(",
        "\\$",
        "[^/]*",
        "[^/]",
        "(.*/)?",
        ".*",
        "[ab]",
        "[a-c]",
        "[^a]",
        "[!a]",
        "[[^/]*]",
        "[a[^/]]",
        "[[:alpha:]]",
        "[[:^digit:]]",
        "[[:foo:]]",
        "\\d",
        "\\w",
        "\\S",
        "\\a",
        "\\q",
        "\\é",
        "\\_",
        "\\]",
        "[\\]]",
        "[z-a]",
        "[a-]",
        "^",
        "\\b",
        "\\B",
        "\\A",
        "\\z",
        "[",
        "]",
        "é",
        "-",
        "\\0",
        "\\12",
        "\\8",
        "\\t",
        "[\\d]",
        "[\\D]",
        "*",
        "?",
    ];
    let n = 1 + rng.below(6);
    let body: String = (0..n).map(|_| rng.pick(&pieces)).collect();
    format!("^{body}$")
}

fn gen_text(rng: &mut Rng) -> String {
    let chars = [
        "a", "b", "c", "/", ".", "+", "(", "$", "]", "[", "!", "^", "-", "1", "_", " ", "é", "\n",
        "\u{7}", "z",
    ];
    let n = rng.below(7);
    (0..n).map(|_| rng.pick(&chars)).collect()
}

#[test]
fn regexp_matches_go() {
    let mut rng = Rng(0x51ab_1e5e_ed00_0001);
    let mut requests = Vec::new();
    let mut cases = Vec::new();
    for _ in 0..4000 {
        let re = gen_regex(&mut rng);
        let inputs: Vec<String> = (0..25).map(|_| gen_text(&mut rng)).collect();
        requests.push(json!({"op": "regex", "regex": re, "inputs": inputs}));
        cases.push((re, inputs));
    }
    let answers = ask_go(&requests);
    let (mut compiled, mut checked, mut unsupported) = (0, 0, 0);
    let mut failures = Vec::new();
    for ((re, inputs), a) in cases.iter().zip(&answers) {
        let go_err = a["err"].as_bool().unwrap();
        match GoRegex::new(re) {
            Err(berth_dockerignore::RegexError::Unsupported(_)) => unsupported += 1,
            Err(_) if go_err => {}
            Err(e) => failures.push(format!("{re:?}: berth rejects ({e}), Go accepts")),
            Ok(_) if go_err => failures.push(format!("{re:?}: berth accepts, Go rejects")),
            Ok(ours) => {
                compiled += 1;
                for (s, want) in inputs.iter().zip(a["matches"].as_array().unwrap()) {
                    checked += 1;
                    if ours.is_match(s) != want.as_bool().unwrap() {
                        failures.push(format!(
                            "{re:?} on {s:?}: berth {}, Go {want}",
                            ours.is_match(s)
                        ));
                    }
                }
            }
        }
    }
    eprintln!(
        "regexps: {} generated, {compiled} compiled, {unsupported} unsupported, {checked} matches compared",
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures[..failures.len().min(30)].join("\n")
    );
}

#[test]
fn clean_and_match_syntax_match_go() {
    let mut rng = Rng(0xc1ea_4000_0000_0002);
    let atoms = [
        "a", "b", ".", "..", "", "/", "*", "?", "[", "]", "[a]", "[^a]", "[a-", "-", "\\", "\\*",
        "é", "!", "[]", "[!]",
    ];
    let inputs: Vec<String> = (0..20000)
        .map(|_| {
            let n = rng.below(6);
            (0..n)
                .map(|_| rng.pick(&atoms))
                .collect::<Vec<_>>()
                .join(if rng.below(2) == 0 { "/" } else { "" })
        })
        .collect();
    let mut requests = Vec::new();
    for s in &inputs {
        requests.push(json!({"op": "clean", "path": s}));
        requests.push(json!({"op": "badpattern", "path": s}));
    }
    let answers = ask_go(&requests);
    let mut failures = Vec::new();
    for (i, s) in inputs.iter().enumerate() {
        let go_clean = answers[2 * i]["out"].as_str().unwrap_or("");
        if clean(s) != go_clean {
            failures.push(format!(
                "Clean({s:?}): berth {:?}, Go {go_clean:?}",
                clean(s)
            ));
        }
        let go_bad = answers[2 * i + 1]["err"].as_bool().unwrap();
        if is_bad_pattern(s) != go_bad {
            failures.push(format!(
                "Match({s:?}) error: berth {}, Go {go_bad}",
                is_bad_pattern(s)
            ));
        }
    }
    eprintln!("clean/match: {} inputs compared", inputs.len());
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures[..failures.len().min(30)].join("\n")
    );
}
