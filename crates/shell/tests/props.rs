//! Property tests: the expander is total (never panics, whatever the input)
//! and a few invariants hold for every input.

use berth_shell::{EnvMap, LexOptions, Lexer, MAX_NESTING, ShellErrorKind};
use proptest::prelude::*;

/// Inputs dense in the characters the lexer cares about.
fn shellish() -> impl Strategy<Value = String> {
    let atoms = prop_oneof![
        Just("$".to_owned()),
        Just("${".to_owned()),
        Just("}".to_owned()),
        Just("{".to_owned()),
        Just(":".to_owned()),
        Just("-".to_owned()),
        Just("+".to_owned()),
        Just("?".to_owned()),
        Just("#".to_owned()),
        Just("%".to_owned()),
        Just("/".to_owned()),
        Just("*".to_owned()),
        Just("\\".to_owned()),
        Just("`".to_owned()),
        Just("'".to_owned()),
        Just("\"".to_owned()),
        Just(" ".to_owned()),
        Just("\n".to_owned()),
        Just("A".to_owned()),
        Just("B".to_owned()),
        Just("x".to_owned()),
        Just("0".to_owned()),
        Just("\u{feff}".to_owned()),
        Just("한".to_owned()),
        "\\PC{0,3}",
    ];
    prop::collection::vec(atoms, 0..40).prop_map(|v| v.concat())
}

fn env() -> EnvMap {
    EnvMap::from_kv_strings(["A=a b*c", "B=", "x=/x/y/z", "0=zero", "#=hash"])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn never_panics(input in shellish(), esc in prop_oneof![Just('\\'), Just('`')],
                    rq: bool, re: bool, sq: bool, su: bool) {
        let opts = LexOptions { raw_quotes: rq, raw_escapes: re, skip_process_quotes: sq, skip_unset_env: su };
        let _ = Lexer::new(esc).with_options(opts).expand(&input, &env());
    }

    #[test]
    fn arbitrary_strings_never_panic(input in "\\PC*") {
        let _ = Lexer::new('\\').expand(&input, &env());
    }

    /// Text without `$`, quotes or escapes is returned unchanged by
    /// ProcessWord, and ProcessWords is its whitespace split.
    #[test]
    fn plain_text_is_identity(input in "[a-zA-Z0-9 ./:=_,-]{0,40}") {
        let e = Lexer::new('\\').expand(&input, &env()).unwrap();
        prop_assert_eq!(&e.word, &input);
        let split: Vec<String> = input.split_whitespace().map(str::to_owned).collect();
        prop_assert_eq!(e.words, split);
        prop_assert!(e.matched.is_empty() && e.unmatched.is_empty());
    }

    /// Single-quoted text comes back verbatim.
    #[test]
    fn single_quotes_are_literal(body in "[^']{0,40}") {
        let quoted = format!("'{body}'");
        let e = Lexer::new('\\').expand(&quoted, &env()).unwrap();
        prop_assert_eq!(e.word, body);
    }

    /// Every variable reference is reported as set or unset, never both.
    #[test]
    fn refs_are_partitioned(input in shellish()) {
        if let Ok(e) = Lexer::new('\\').expand(&input, &env()) {
            prop_assert!(e.matched.is_disjoint(&e.unmatched));
        }
    }
}

#[test]
fn pathological_patterns_are_fast() {
    // Many stars against a long value: the matcher is a dynamic program, so
    // this must finish quickly (a naive backtracker would not).
    let value = "a".repeat(3000);
    let env = EnvMap::from_pairs([("V", value.as_str())]);
    let pat = "*a".repeat(200) + "b";
    let start = std::time::Instant::now();
    for op in ["#", "##", "%", "%%", "/", "//"] {
        let input = if op.starts_with('/') {
            format!("${{V{op}{pat}/x}}")
        } else {
            format!("${{V{op}{pat}}}")
        };
        let out = Lexer::new('\\').expand_word(&input, &env).unwrap();
        assert_eq!(out, value, "{op}");
    }
    assert!(
        start.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn deep_nesting_is_capped_not_a_stack_overflow() {
    let nest = |depth: usize| "${A:-".repeat(depth) + "x" + &"}".repeat(depth);
    let lexer = Lexer::new('\\');
    // Deep but allowed: expands like BuildKit.
    assert_eq!(
        lexer
            .expand_word(&nest(MAX_NESTING - 1), &EnvMap::new())
            .unwrap(),
        "x"
    );
    // Beyond the cap: a typed error, not an abort.
    let err = lexer
        .expand_word(&nest(100_000), &EnvMap::new())
        .unwrap_err();
    assert_eq!(err.kind, ShellErrorKind::TooDeep(MAX_NESTING));
}
