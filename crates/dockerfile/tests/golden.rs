//! Every case under `testdata/dockerfile/cases/` parses to exactly the dump
//! BuildKit's parser gives (golden files written by
//! `scripts/oracle/regen.py` from the PyPI `dockerfile` package).

mod common;

use std::path::PathBuf;

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/dockerfile")
}

#[test]
fn golden_corpus_matches_buildkit() {
    let cases = testdata().join("cases");
    let mut names: Vec<_> = std::fs::read_dir(&cases)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".Dockerfile"))
        .collect();
    names.sort();
    assert!(names.len() >= 400, "corpus too small: {}", names.len());
    let mut bad = Vec::new();
    let mut errors = 0;
    for name in &names {
        let src = std::fs::read_to_string(cases.join(name)).unwrap();
        let stem = name.trim_end_matches(".Dockerfile");
        let golden = testdata().join("golden").join(format!("{stem}.json"));
        let expected: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&golden).unwrap_or_else(|e| {
                panic!("{}: {e} (run scripts/oracle/regen.py)", golden.display())
            }))
            .unwrap();
        if expected.get("error").is_some() {
            errors += 1;
        }
        if let Some(d) = common::disagreement(&src, &expected) {
            bad.push(format!("{stem}: {d}"));
        }
    }
    assert!(errors >= 20, "the corpus should hold error cases too");
    assert!(
        bad.is_empty(),
        "{} of {} cases disagree with BuildKit:\n{}",
        bad.len(),
        names.len(),
        bad.join("\n")
    );
}
