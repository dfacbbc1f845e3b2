//! The parser is total: random and adversarial inputs never panic and keep
//! its invariants (the same checks the fuzz target in `fuzz/` runs).

use std::path::PathBuf;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

const PIECES: &[&str] = &[
    "RUN ",
    "COPY ",
    "ONBUILD ",
    "HEALTHCHECK ",
    "ENV ",
    "LABEL ",
    "ARG ",
    "FROM ",
    "\n",
    "\r\n",
    "\\",
    "`",
    "\\\n",
    "<<EOF",
    "<<-'E'",
    "EOF\n",
    "\tEOF\n",
    "[",
    "]",
    "\"",
    "'",
    "=",
    "--x=",
    "-- ",
    " ",
    "\t",
    "#",
    "# escape=`\n",
    "${",
    "}",
    "$",
    "é",
    "\u{a0}",
    "\u{85}",
    "\u{feff}",
    "\u{130}",
    "\0",
    "[\"a\", 1]",
    "[\"\\ud800\"]",
    "NONE",
    "CMD ",
    "x",
];

#[test]
fn random_inputs_keep_invariants() {
    let mut r = Rng(0x0bad_5eed);
    for _ in 0..6_000 {
        let n = (r.next() % 24) as usize;
        let s: String = (0..n)
            .map(|_| PIECES[(r.next() % PIECES.len() as u64) as usize])
            .collect();
        berth_dockerfile::check_invariants(&s);
    }
}

#[test]
fn corpus_keeps_invariants() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/dockerfile/cases");
    for e in std::fs::read_dir(dir).unwrap() {
        let src = std::fs::read_to_string(e.unwrap().path()).unwrap();
        berth_dockerfile::check_invariants(&src);
        // Every prefix too: truncation inside any construct.
        for cut in (0..src.len())
            .filter(|&i| src.is_char_boundary(i))
            .step_by(5)
            .take(60)
        {
            berth_dockerfile::check_invariants(&src[..cut]);
        }
    }
}

#[test]
fn pathological_inputs() {
    for s in [
        "[".repeat(100_000),
        format!("RUN {}", "[".repeat(50_000)),
        "\\\n".repeat(10_000),
        format!("RUN <<EOF\n{}", "x\n".repeat(10_000)),
        "RUN x\n".repeat(5_000),
        format!("RUN {}\n", "a".repeat(70_000)),
        format!("COPY {} x\n", "--f ".repeat(5_000)),
        "\u{feff}".repeat(100),
        // Many diagnostics must not make parsing quadratic.
        "RUN a \\\n\nb\n".repeat(20_000),
        "FROM a\nCOPY --bogus=1 x y\nRUNN x\n".repeat(10_000),
    ] {
        berth_dockerfile::check_invariants(&s);
    }
}
