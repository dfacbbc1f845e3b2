//! Data-driven tests: `testdata/shell/word.txt` (ProcessWord) and
//! `testdata/shell/words.txt` (ProcessWords). The format is described at the
//! top of `word.txt`.

use std::path::PathBuf;

use berth_shell::{EnvMap, Lexer, go_quote};

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/shell")
        .join(name)
}

/// Splits a case line on `||` separators that have a space or the line's
/// end on both sides; one space on each side belongs to the separator.
fn split_case(line: &str) -> Vec<String> {
    let b = line.as_bytes();
    let mut seps = Vec::new();
    let mut i = 1;
    while i + 1 < b.len() {
        if &b[i..i + 2] == b"||" && b[i - 1] == b' ' && (i + 2 == b.len() || b[i + 2] == b' ') {
            seps.push(i);
            i += 2;
        } else {
            i += 1;
        }
    }
    let mut parts = Vec::new();
    let mut start = 0;
    for (n, &s) in seps.iter().enumerate() {
        let mut seg = &line[start..s];
        if n > 0 {
            seg = seg.strip_prefix(' ').unwrap_or(seg);
        }
        seg = seg.strip_suffix(' ').unwrap_or(seg);
        parts.push(seg.to_owned());
        start = s + 2;
    }
    let last = &line[start..];
    parts.push(
        if seps.is_empty() {
            last
        } else {
            last.strip_prefix(' ').unwrap_or(last)
        }
        .to_owned(),
    );
    parts
}

struct Case {
    line_no: usize,
    env: EnvMap,
    escape: char,
    input: String,
    expected: String,
    refs: Option<String>,
}

fn load(name: &str) -> Vec<Case> {
    let text = std::fs::read_to_string(testdata(name)).unwrap();
    let mut env = EnvMap::new();
    let mut escape = '\\';
    let mut cases = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("@env") {
            env = EnvMap::from_kv_strings(rest.split(' ').filter(|s| !s.is_empty()));
            continue;
        }
        if let Some(rest) = line.strip_prefix("@set ") {
            let (k, v) = rest.split_once('=').unwrap();
            env.set(k, v);
            continue;
        }
        if let Some(rest) = line.strip_prefix("@escape ") {
            escape = rest.chars().next().unwrap();
            continue;
        }
        let parts = split_case(line);
        assert!(
            (2..=3).contains(&parts.len()),
            "{name}:{}: expected `INPUT || EXPECTED [|| refs]`, got {parts:?}",
            i + 1
        );
        cases.push(Case {
            line_no: i + 1,
            env: env.clone(),
            escape,
            input: parts[0].clone(),
            expected: parts[1].clone(),
            refs: parts.get(2).cloned(),
        });
    }
    assert!(cases.len() > 30, "{name} has too few cases");
    cases
}

fn check_refs(
    case: &Case,
    matched: &std::collections::BTreeSet<String>,
    unmatched: &std::collections::BTreeSet<String>,
) -> Option<String> {
    let refs = case.refs.as_deref()?;
    for part in refs.split(' ').filter(|p| !p.is_empty()) {
        let (kind, names) = part.split_once('=').unwrap();
        let want: std::collections::BTreeSet<String> = names
            .split(',')
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect();
        let got = match kind {
            "set" => matched,
            "unset" => unmatched,
            other => panic!("line {}: unknown refs kind {other}", case.line_no),
        };
        if &want != got {
            return Some(format!("{kind}: want {want:?}, got {got:?}"));
        }
    }
    None
}

fn run_table(name: &str, words_mode: bool) {
    let cases = load(name);
    let mut failures = Vec::new();
    for case in &cases {
        let lexer = Lexer::new(case.escape);
        let result = lexer.expand(&case.input, &case.env);
        let failure = match (&result, case.expected.strip_prefix('!')) {
            (Err(e), Some(msg)) => {
                let want = format!("failed to process {}: {msg}", go_quote(&case.input));
                (e.to_string() != want).then(|| format!("error {:?}, want {want:?}", e.to_string()))
            }
            (Err(e), None) => Some(format!("unexpected error: {e}")),
            (Ok(out), Some(_)) => Some(format!(
                "expected an error, got {:?} / {:?}",
                out.word, out.words
            )),
            (Ok(out), None) => {
                if words_mode {
                    let want: Vec<String> = serde_json::from_str(&case.expected)
                        .unwrap_or_else(|e| panic!("{name}:{}: bad JSON: {e}", case.line_no));
                    (out.words != want).then(|| format!("words {:?}, want {want:?}", out.words))
                } else if out.word != case.expected {
                    Some(format!("word {:?}, want {:?}", out.word, case.expected))
                } else {
                    check_refs(case, &out.matched, &out.unmatched)
                }
            }
        };
        if let Some(f) = failure {
            failures.push(format!("{name}:{}: {:?}: {f}", case.line_no, case.input));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn process_word_table() {
    run_table("word.txt", false);
}

#[test]
fn process_words_table() {
    run_table("words.txt", true);
}

#[test]
fn separator_parsing() {
    assert_eq!(split_case("a || b"), ["a", "b"]);
    assert_eq!(split_case("a ||"), ["a", ""]);
    assert_eq!(split_case("a || "), ["a", ""]);
    assert_eq!(split_case("$X || || unset=X"), ["$X", "", "unset=X"]);
    assert_eq!(split_case(" x  || y"), [" x ", "y"]);
    assert_eq!(split_case("a||b || c"), ["a||b", "c"]);
}
