//! berth-shell's re-implementations of Go behaviour against Go's own
//! standard library: `strconv.Quote` (BuildKit's `%q` in error messages), the
//! Unicode classes that decide variable names and word splitting, and the
//! leftmost-first regexp matching behind `${V#p}`, `${V##p}`, `${V/p/r}` and
//! `${V//p/r}` (driven end to end through the lexer).
//!
//! Needs a Go toolchain (Debian: `golang-go`, installed by
//! `scripts/install-test-deps.sh`). It fails, not skips, without `go`.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use berth_shell::go_unicode::{is_digit, is_letter, is_print, is_space};
use berth_shell::{EnvMap, Lexer, go_quote};
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
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/shell/gostd");
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

#[test]
fn quote_matches_strconv() {
    let mut rng = Rng(0x9007_e000_0000_0001);
    let atoms = [
        "a",
        "\"",
        "\\",
        "\n",
        "\t",
        "\u{0}",
        "\u{7f}",
        "\u{85}",
        "\u{a0}",
        "é",
        "한",
        "\u{200b}",
        "\u{feff}",
        "\u{e000}",
        "\u{1f600}",
        "\u{e0001}",
        "\u{10ffff}",
        "\u{2028}",
        " ",
        "$",
        "\u{fffd}",
    ];
    let inputs: Vec<String> = (0..5000)
        .map(|_| (0..rng.below(8)).map(|_| rng.pick(&atoms)).collect())
        .collect();
    let answers = ask_go(
        &inputs
            .iter()
            .map(|s| json!({"op": "quote", "s": s}))
            .collect::<Vec<_>>(),
    );
    let bad: Vec<String> = inputs
        .iter()
        .zip(&answers)
        .filter(|(s, a)| go_quote(s) != a["out"].as_str().unwrap())
        .map(|(s, a)| format!("{s:?}: berth {}, Go {}", go_quote(s), a["out"]))
        .collect();
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn unicode_classes_match_go() {
    let answers = ask_go(&[json!({"op": "categories"})]);
    let ranges = answers[0]["ranges"].as_array().unwrap();
    let (mut compared, mut newer) = (0u32, 0u32);
    let mut bad = Vec::new();
    for r in ranges {
        let lo: u32 = r[0].as_str().unwrap().parse().unwrap();
        let hi: u32 = r[1].as_str().unwrap().parse().unwrap();
        let cat = r[2].as_str().unwrap();
        for cp in lo..=hi {
            let Some(c) = char::from_u32(cp) else {
                continue;
            };
            let letter = cat.starts_with('L');
            let digit = cat == "Nd";
            let print = c == ' ' || matches!(&cat[..1], "L" | "M" | "N" | "P" | "S");
            if cat == "Cn" {
                // Unassigned in Go's (older) Unicode tables: only check that
                // berth does not call it a space, and count the rest.
                if is_letter(c) || is_digit(c) || is_print(c) {
                    newer += 1;
                }
                continue;
            }
            compared += 1;
            if is_letter(c) != letter || is_digit(c) != digit || is_print(c) != print {
                bad.push(format!(
                    "U+{cp:04X} (Go {cat}): letter {} digit {} print {}",
                    is_letter(c),
                    is_digit(c),
                    is_print(c)
                ));
            }
        }
    }
    for cp in 0..=0x10ffffu32 {
        if let Some(c) = char::from_u32(cp) {
            let go_space = matches!(cp, 0x09..=0x0d | 0x20 | 0x85 | 0xa0 | 0x1680 | 0x2000..=0x200a | 0x2028 | 0x2029 | 0x202f | 0x205f | 0x3000);
            if is_space(c) != go_space {
                bad.push(format!("U+{cp:04X}: space {}", is_space(c)));
            }
        }
    }
    eprintln!(
        "unicode: {compared} code points compared; {newer} assigned only in berth's newer Unicode tables; {} differ",
        bad.len()
    );
    // Unicode occasionally re-categorises a code point; allow a handful,
    // but no more.
    assert!(bad.len() <= 10, "{}", bad.join("\n"));
}

/// A glob token: "*", "?" or one literal char.
fn gen_tokens(rng: &mut Rng) -> Vec<String> {
    let lits = ["a", "b", "x", "é", ".", "*", "?", "\\", "\n", " ", "-", "["];
    (0..rng.below(5))
        .map(|_| match rng.below(5) {
            0 => "*".to_owned(),
            1 => "?".to_owned(),
            _ => rng.pick(&lits).to_owned(),
        })
        .collect()
}

#[test]
fn pattern_operators_match_go_regexp() {
    let mut rng = Rng(0x7a77_e440_0000_0003);
    let values = ["a", "b", "x", "é", ".", "*", "?", "\\", "\n", " ", "-", "["];
    let repls = [
        "", "r", "é", "-", "'$0'", "'$$'", "'${0}'", "'$x'", "'[$0]'",
    ];
    let mut requests = Vec::new();
    let mut inputs = Vec::new();
    for _ in 0..6000 {
        // Literal `*`, `?` and `\` tokens are written escaped; the glob
        // tokens "*" and "?" stay wildcards, so they are kept distinct here.
        let raw = gen_tokens(&mut rng);
        let (mut go_tokens, mut src) = (Vec::new(), String::new());
        for t in &raw {
            let wildcard = (t == "*" || t == "?") && rng.below(3) > 0;
            if wildcard {
                go_tokens.push(t.clone());
                src.push_str(t);
            } else {
                go_tokens.push(format!("lit:{t}"));
                // A literal `*`, `?` or `\` is written escaped.
                if matches!(t.as_str(), "*" | "?" | "\\") {
                    src.push('\\');
                }
                src.push_str(t);
            }
        }
        let value: String = (0..rng.below(8)).map(|_| rng.pick(&values)).collect();
        let op = rng.below(4);
        let repl = rng.pick(&repls);
        let go_repl = repl.trim_matches('\'');
        let (word, req) = match op {
            0 => (
                format!("${{V#{src}}}"),
                json!({"op": "prefix", "greedy": false}),
            ),
            1 => (
                format!("${{V##{src}}}"),
                json!({"op": "prefix", "greedy": true}),
            ),
            2 => (
                format!("${{V/{src}/{repl}}}"),
                json!({"op": "replace_first", "replace": go_repl}),
            ),
            _ => (
                format!("${{V//{src}/{repl}}}"),
                json!({"op": "replace_all", "replace": go_repl}),
            ),
        };
        // `#` first would mean `##`; an empty pattern makes `${V//r}`
        // ambiguous; skip those.
        if src.starts_with('#')
            || src.starts_with('%')
            || src.contains('/')
            || (op >= 2 && src.is_empty())
        {
            continue;
        }
        let mut req = req;
        let toks: Vec<String> = go_tokens
            .iter()
            .map(|t| t.strip_prefix("lit:").unwrap_or(t).to_owned())
            .collect();
        // Go side: "*"/"?" are wildcards, so literal `*`/`?` are sent as
        // one-char strings that QuoteMeta escapes: mark them with a prefix.
        let toks: Vec<String> = go_tokens
            .iter()
            .zip(toks)
            .map(|(g, t)| {
                if g.starts_with("lit:") && (t == "*" || t == "?") {
                    format!("\\{t}")
                } else {
                    t
                }
            })
            .collect();
        req["tokens"] = json!(toks);
        req["value"] = json!(value);
        requests.push(req);
        inputs.push((word, value));
    }
    let answers = ask_go(&requests);
    let mut bad = Vec::new();
    for ((word, value), a) in inputs.iter().zip(&answers) {
        let env = EnvMap::from_pairs([("V", value.as_str())]);
        let ours = Lexer::new('\\')
            .expand_word(word, &env)
            .unwrap_or_else(|e| format!("error: {e}"));
        let go = a["out"].as_str().unwrap();
        if ours != go {
            bad.push(format!(
                "{word:?} with V={value:?}: berth {ours:?}, Go {go:?}"
            ));
        }
    }
    eprintln!("patterns: {} expansions compared", inputs.len());
    assert!(
        bad.is_empty(),
        "{} differ:\n{}",
        bad.len(),
        bad[..bad.len().min(30)].join("\n")
    );
}
