//! Live differential test against BuildKit's own parser (PyPI `dockerfile`,
//! run through `scripts/oracle/batch.py`): thousands of generated and mutated
//! Dockerfiles, seeded so failures reproduce. This test FAILS (never skips)
//! when the oracle is missing: install it with `pip install dockerfile==3.4.0`.

mod common;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const KEYWORDS: &[&str] = &[
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "MAINTAINER",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
    "FOO",
];
const FLAGS: &[&str] = &[
    "--from=build",
    "--chown=1:2",
    "--chmod=755",
    "--link",
    "--mount=type=cache,target=/x",
    "--network=none",
    "--platform=$BUILDPLATFORM",
    "--x=\"a b\"",
    "--y='c'",
    "--z=a\\ b",
    "--",
    "--interval=5s",
    "--e=é",
    "--q=\"",
    "--empty=",
    "--a=\\\"",
];
const TOKENS: &[&str] = &[
    "a",
    "b",
    "echo",
    "hello",
    "x=y",
    "k=v",
    "=",
    "a=",
    "=b",
    "\"q w\"",
    "'s t'",
    "\"",
    "'",
    "\\",
    "\\ ",
    "`",
    "$X",
    "${Y}",
    "${Z:-d}",
    "${A#b}",
    "${}",
    "[",
    "]",
    "[\"a\"]",
    "[\"a\", \"b\"]",
    "[\"a\" \"b\"]",
    "[1]",
    "[\"x\", null]",
    "[]",
    "{",
    "}",
    ",",
    "#",
    "# c",
    "<<EOF",
    "<<-EOF",
    "<<'EOF'",
    "<<\"EOF\"",
    "<<E\\OF",
    "3<<EOF",
    "cat<<EOF",
    "<<A",
    "<<B",
    "<<",
    "<<-",
    "NONE",
    "CMD",
    "RUN",
    "AS",
    "--not-flag",
    "-",
    "é",
    "日本",
    "\u{a0}",
    "\u{85}",
    "\u{3000}",
    "\t",
    "\u{b}",
    "\r",
    "&&",
    "|",
    ">",
    "/x/y",
    "a\\\"b",
    "\"a\\\"b\"",
    "\\$",
    "'",
    "\\u00e9",
    "[\"\\u00e9\"]",
    "${Aé}",
    "$é",
    "${A:-'x y'}",
    "\"${A}\"",
    "<<\"E\"O'F'",
    "<<E\\\\OF",
    "\"<<EOF\"",
    "${A:?}",
    "${1}",
    "$1x",
    "${@}",
    "${A/b}",
    "${A%%b}",
    "${A:+$B}",
    "<<${X}",
    "<<$X",
    "2<<-EOF",
    "<<EOF>x",
];
const BODY: &[&str] = &[
    "x",
    "echo hi",
    "EOF",
    "\tEOF",
    " EOF",
    "A",
    "B",
    "",
    "\t\tb",
    "EOF ",
    "$X",
    "#!/bin/sh",
];

fn gen_line(r: &mut Rng) -> String {
    let mut s = String::new();
    if r.chance(10) {
        s.push_str(r.pick(&["  ", "\t", "\u{a0}"]));
    }
    let mut kw = r.pick(KEYWORDS).to_string();
    if r.chance(20) {
        kw = kw.to_lowercase();
    }
    s.push_str(&kw);
    if kw.eq_ignore_ascii_case("ONBUILD") && r.chance(70) {
        s.push(' ');
        s.push_str(r.pick(KEYWORDS));
    }
    let nflags = if r.chance(30) { r.below(3) } else { 0 };
    for _ in 0..nflags {
        s.push(' ');
        s.push_str(r.pick(FLAGS));
    }
    for _ in 0..r.below(5) {
        s.push_str(r.pick(&[" ", " ", "  ", "\t", ""]));
        s.push_str(r.pick(TOKENS));
    }
    if r.chance(5) {
        s.push_str(r.pick(&[" ", "\t"]));
    }
    s
}

fn newline(r: &mut Rng) -> &'static str {
    if r.chance(8) { "\r\n" } else { "\n" }
}

fn generate(r: &mut Rng) -> String {
    let mut out = String::new();
    if r.chance(5) {
        out.push('\u{feff}');
    }
    if r.chance(25) {
        for _ in 0..=r.below(2) {
            out.push_str(r.pick(&[
                "# escape=`",
                "# escape=\\",
                "# syntax=docker/dockerfile:1",
                "#escape = `",
                "# check=skip=all",
                "# escape=x",
                "# comment",
                "",
            ]));
            out.push_str(newline(r));
        }
    }
    let escape = if out.contains("escape=`") || out.contains("escape = `") {
        "`"
    } else {
        "\\"
    };
    for _ in 0..=r.below(6) {
        match r.below(100) {
            0..=4 => out.push_str(r.pick(&["# comment", "  # indented", "#", ""])),
            5..=7 => out.push_str(r.pick(&["   ", "\t"])),
            _ => {
                out.push_str(&gen_line(r));
                // Continuations, with comments and blank lines inside.
                while r.chance(25) {
                    out.push_str(r.pick(&[" ", "", "\t"]));
                    out.push_str(if r.chance(85) {
                        escape
                    } else {
                        r.pick(&["\\", "`", "\\\\"])
                    });
                    if r.chance(20) {
                        out.push_str(r.pick(&[" ", " \t"]));
                    }
                    out.push_str(newline(r));
                    if r.chance(20) {
                        out.push_str(r.pick(&["# inner comment", "", "  ", "  # c"]));
                        out.push_str(newline(r));
                    }
                    if r.chance(60) {
                        out.push_str(r.pick(&["  ", "\t", ""]));
                    }
                    out.push_str(r.pick(TOKENS));
                    out.push(' ');
                    out.push_str(r.pick(TOKENS));
                }
            }
        }
        out.push_str(newline(r));
        // Heredoc bodies (sometimes for lines without a marker, too).
        if out.contains("<<") && r.chance(50) {
            for _ in 0..r.below(4) {
                out.push_str(r.pick(BODY));
                out.push_str(newline(r));
            }
        }
    }
    if r.chance(15) {
        out.pop();
    }
    out
}

const MUTATION_CHARS: &[&str] = &[
    "\\", "`", "\n", "\r\n", " ", "\t", "\"", "'", "#", "=", "[", "]", "<<", "-", "--", "$", "{",
    "}", "é", "\u{a0}", "\u{2003}", "x", "EOF", ",", "\\\n", "`\n", "\n\n", "\n#c\n",
];

fn mutate(r: &mut Rng, src: &str) -> String {
    let mut s: Vec<char> = src.chars().collect();
    for _ in 0..=r.below(4) {
        let at = r.below(s.len() + 1);
        match r.below(3) {
            0 if !s.is_empty() => {
                let end = (at + 1 + r.below(4)).min(s.len());
                s.drain(at.min(end)..end);
            }
            1 if !s.is_empty() => {
                // Duplicate a slice.
                let end = (at + r.below(30)).min(s.len());
                let piece: Vec<char> = s[at.min(end)..end].to_vec();
                let to = r.below(s.len() + 1);
                s.splice(to..to, piece);
            }
            _ => {
                let ins: Vec<char> = r.pick(MUTATION_CHARS).chars().collect();
                s.splice(at..at, ins);
            }
        }
    }
    s.into_iter().collect()
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn oracle(srcs: &[String]) -> Vec<serde_json::Value> {
    let script = repo().join("scripts/oracle/batch.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is required for the differential test");
    let input = serde_json::to_vec(srcs).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "the BuildKit oracle failed (pip install dockerfile==3.4.0): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn oracle_is_installed() {
    let ok = Command::new("python3")
        .args(["-c", "import dockerfile"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "python3 -c 'import dockerfile' failed: run `pip install dockerfile==3.4.0`"
    );
}

#[test]
fn generated_and_mutated_dockerfiles_match_buildkit() {
    let seed: u64 = std::env::var("BERTH_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_0001);
    let n: usize = std::env::var("BERTH_DIFF_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4000);
    let mut r = Rng(seed.wrapping_mul(2).wrapping_add(1));
    let corpus_dir = repo().join("testdata/dockerfile/cases");
    let mut corpus: Vec<String> = std::fs::read_dir(&corpus_dir)
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
        .filter(|s| s.len() < 4096)
        .collect();
    corpus.sort();
    let mut srcs = Vec::with_capacity(n);
    for i in 0..n {
        let s = if i % 2 == 0 {
            generate(&mut r)
        } else {
            let base = corpus[r.below(corpus.len())].clone();
            mutate(&mut r, &base)
        };
        srcs.push(s);
    }
    // Extra inputs, e.g. a fuzzer's corpus: BERTH_DIFF_EXTRA_DIR=fuzz/corpus/parse.
    if let Ok(dir) = std::env::var("BERTH_DIFF_EXTRA_DIR") {
        for e in std::fs::read_dir(dir).unwrap() {
            let bytes = std::fs::read(e.unwrap().path()).unwrap();
            let s = String::from_utf8_lossy(&bytes).into_owned();
            if !s.contains('\0') {
                srcs.push(s);
            }
        }
    }
    let expected = oracle(&srcs);
    assert_eq!(expected.len(), srcs.len());
    let mut bad = Vec::new();
    let mut unsupported = 0;
    let mut errors = 0;
    for (src, exp) in srcs.iter().zip(&expected) {
        if exp.get("unsupported").is_some() {
            unsupported += 1;
            continue;
        }
        if exp.get("error").is_some() {
            errors += 1;
        }
        if let Some(d) = common::disagreement(src, exp) {
            bad.push(d);
        }
    }
    eprintln!(
        "differential: {} variants (seed {seed:#x}), {} agree, {} disagree, {errors} oracle errors, {unsupported} not representable by the oracle",
        srcs.len(),
        srcs.len() - unsupported - bad.len(),
        bad.len()
    );
    assert!(
        unsupported * 20 < srcs.len(),
        "too many variants the oracle cannot represent"
    );
    assert!(
        bad.is_empty(),
        "{} of {} variants disagree with BuildKit (seed {seed:#x}); first ones:\n{}",
        bad.len(),
        srcs.len(),
        bad.iter().take(15).cloned().collect::<Vec<_>>().join("\n")
    );
}
