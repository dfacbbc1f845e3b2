//! Shared by the oracle tests: berth's dump in the oracle's JSON shape, and
//! the comparison.

use serde_json::Value;

/// berth's answer in the oracle's shape: the dump, or `{"error": ...}`.
pub fn berth(src: &str) -> Value {
    let (df, diags) = berth_dockerfile::parse(src);
    if let Some(e) = diags
        .iter()
        .find(|d| d.severity == berth_dockerfile::Severity::Error)
    {
        return serde_json::json!({ "error": e.to_string() });
    }
    serde_json::to_value(berth_dockerfile::dump(&df)).unwrap()
}

/// None when berth agrees with the oracle's `expected`; else a description.
/// Error messages need not match, only the fact of an error.
pub fn disagreement(src: &str, expected: &Value) -> Option<String> {
    if expected.get("unsupported").is_some() {
        return None;
    }
    let got = berth(src);
    let agree = match (expected.get("error"), got.get("error")) {
        (Some(_), Some(_)) => true,
        (None, None) => &got == expected,
        _ => false,
    };
    (!agree).then(|| {
        format!(
            "source: {src:?}\n  oracle: {}\n  berth:  {}",
            serde_json::to_string(expected).unwrap(),
            serde_json::to_string(&got).unwrap()
        )
    })
}
