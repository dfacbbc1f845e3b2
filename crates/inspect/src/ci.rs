//! CI gating: dive's `.dive-ci` rules, evaluated exactly as dive evaluates
//! them, plus rules over berth's corrected metrics. This module decides; the
//! CLI prints.
//!
//! The file is YAML with a `rules` mapping; keys are case-insensitive (dive
//! reads them through viper). Every value may be `disabled`.
//!
//! | key | default | fails when |
//! |---|---|---|
//! | `lowestEfficiency` | `0.9` | dive efficiency < value |
//! | `highestWastedBytes` | `disabled` | dive wasted bytes > value (sizes like `20MB`, `1.5GiB`) |
//! | `highestUserWastedPercent` | `0.1` | dive user wasted percent > value |
//! | `berthLowestEfficiency` | `disabled` | berth efficiency < value |
//! | `berthHighestWastedBytes` | `disabled` | berth wasted bytes > value |
//! | `berthHighestUserWastedPercent` | `disabled` | berth user wasted percent > value |
//! | `berthHighestMetadataOnlyBytes` | `disabled` | bytes copied only to chmod/chown > value |

use std::path::Path;

use serde::Serialize;

use crate::analysis::Analysis;
use crate::{Error, Result};

/// One CI rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Rule {
    LowestEfficiency,
    HighestWastedBytes,
    HighestUserWastedPercent,
    BerthLowestEfficiency,
    BerthHighestWastedBytes,
    BerthHighestUserWastedPercent,
    BerthHighestMetadataOnlyBytes,
}

impl Rule {
    pub const ALL: [Rule; 7] = [
        Rule::LowestEfficiency,
        Rule::HighestWastedBytes,
        Rule::HighestUserWastedPercent,
        Rule::BerthLowestEfficiency,
        Rule::BerthHighestWastedBytes,
        Rule::BerthHighestUserWastedPercent,
        Rule::BerthHighestMetadataOnlyBytes,
    ];

    /// The key under `rules:` in `.dive-ci`.
    pub fn key(self) -> &'static str {
        match self {
            Rule::LowestEfficiency => "lowestEfficiency",
            Rule::HighestWastedBytes => "highestWastedBytes",
            Rule::HighestUserWastedPercent => "highestUserWastedPercent",
            Rule::BerthLowestEfficiency => "berthLowestEfficiency",
            Rule::BerthHighestWastedBytes => "berthHighestWastedBytes",
            Rule::BerthHighestUserWastedPercent => "berthHighestUserWastedPercent",
            Rule::BerthHighestMetadataOnlyBytes => "berthHighestMetadataOnlyBytes",
        }
    }

    /// dive's defaults for its rules; berth's rules are off unless configured.
    pub fn default_value(self) -> &'static str {
        match self {
            Rule::LowestEfficiency => "0.9",
            Rule::HighestUserWastedPercent => "0.1",
            _ => "disabled",
        }
    }

    fn is_bytes(self) -> bool {
        matches!(
            self,
            Rule::HighestWastedBytes
                | Rule::BerthHighestWastedBytes
                | Rule::BerthHighestMetadataOnlyBytes
        )
    }

    fn is_ratio(self) -> bool {
        !self.is_bytes()
    }
}

/// Rule values, as strings (dive keeps them as strings too).
#[derive(Debug, Clone, PartialEq)]
pub struct CiConfig {
    values: Vec<(Rule, String)>,
}

impl Default for CiConfig {
    fn default() -> CiConfig {
        CiConfig {
            values: Rule::ALL
                .iter()
                .map(|r| (*r, r.default_value().to_owned()))
                .collect(),
        }
    }
}

impl CiConfig {
    /// Parses `.dive-ci` text over the defaults. Unknown keys are ignored, as dive does.
    pub fn parse(text: &str, path: &Path) -> Result<CiConfig> {
        let mut cfg = CiConfig::default();
        let doc: serde_norway::Value =
            serde_norway::from_str(text).map_err(|source| Error::CiConfig {
                path: path.to_owned(),
                source,
            })?;
        let rules = doc
            .as_mapping()
            .and_then(|m| {
                m.iter().find_map(|(k, v)| {
                    k.as_str()
                        .is_some_and(|k| k.eq_ignore_ascii_case("rules"))
                        .then_some(v)
                })
            })
            .and_then(|v| v.as_mapping());
        for (k, v) in rules.into_iter().flatten() {
            let Some(key) = k.as_str() else { continue };
            let Some(rule) = Rule::ALL.iter().find(|r| r.key().eq_ignore_ascii_case(key)) else {
                continue;
            };
            let value = match v {
                serde_norway::Value::String(s) => s.clone(),
                serde_norway::Value::Number(n) => n.to_string(),
                serde_norway::Value::Bool(b) => b.to_string(),
                _ => String::new(),
            };
            cfg.set(*rule, value);
        }
        Ok(cfg)
    }

    pub fn set(&mut self, rule: Rule, value: impl Into<String>) {
        if let Some(v) = self.values.iter_mut().find(|(r, _)| *r == rule) {
            v.1 = value.into();
        }
    }

    pub fn get(&self, rule: Rule) -> &str {
        self.values
            .iter()
            .find(|(r, _)| *r == rule)
            .map_or("disabled", |(_, v)| v.as_str())
    }
}

/// The outcome of one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// Disabled.
    Skip,
    /// The value is invalid; nothing was evaluated.
    Misconfigured,
    /// Valid, but not evaluated because another rule is misconfigured.
    Configured,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleResult {
    pub rule: Rule,
    pub key: &'static str,
    pub value: String,
    pub status: Status,
    pub message: String,
}

/// Every rule's result, sorted by key as dive prints them.
#[derive(Debug, Clone, Serialize)]
pub struct CiReport {
    pub results: Vec<RuleResult>,
    pub pass: bool,
    pub misconfigured: bool,
}

impl CiReport {
    pub fn count(&self, status: Status) -> usize {
        self.results.iter().filter(|r| r.status == status).count()
    }
}

/// go-humanize's `ParseBytes`: a number (commas allowed) and an optional SI
/// (`kB`, `MB`: powers of 1000) or IEC (`KiB`, `MiB`: powers of 1024) unit,
/// case-insensitive, spaces allowed between.
pub fn parse_bytes(s: &str) -> std::result::Result<u64, String> {
    let digits = s
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.' || *c == ','))
        .map_or(s.len(), |(i, _)| i);
    let num: String = s[..digits].chars().filter(|c| *c != ',').collect();
    let f: f64 = num
        .parse()
        .map_err(|_| format!("strconv.ParseFloat: parsing {num:?}: invalid syntax"))?;
    let unit = s[digits..].trim().to_ascii_lowercase();
    let mult: f64 = match unit.as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "ki" | "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mi" | "mib" => 1024f64.powi(2),
        "g" | "gb" => 1e9,
        "gi" | "gib" => 1024f64.powi(3),
        "t" | "tb" => 1e12,
        "ti" | "tib" => 1024f64.powi(4),
        "p" | "pb" => 1e15,
        "pi" | "pib" => 1024f64.powi(5),
        "e" | "eb" => 1e18,
        "ei" | "eib" => 1024f64.powi(6),
        other => return Err(format!("unhandled size name: {other}")),
    };
    let v = f * mult;
    if v >= u64::MAX as f64 {
        return Err(format!("too large: {s}"));
    }
    Ok(v as u64)
}

fn validate(rule: Rule, value: &str) -> std::result::Result<(), String> {
    if rule.is_bytes() {
        parse_bytes(value)
            .map(|_| ())
            .map_err(|e| format!("invalid config value ('{value}'): {e}"))
    } else {
        let v: f64 = value
            .parse()
            .map_err(|_| format!("invalid config value ('{value}'): invalid syntax"))?;
        if rule.is_ratio() && !(0.0..=1.0).contains(&v) {
            return Err(format!(
                "{} config value is outside allowed range (0-1), given '{value}'",
                rule.key()
            ));
        }
        Ok(())
    }
}

fn evaluate_one(rule: Rule, value: &str, a: &Analysis) -> (Status, String) {
    let ratio = || value.parse::<f64>().unwrap_or(f64::NAN);
    let bytes = || parse_bytes(value).unwrap_or(u64::MAX);
    let fail = |m: String| (Status::Fail, m);
    let pass = (Status::Pass, String::new());
    match rule {
        Rule::LowestEfficiency if ratio() > a.dive.efficiency => fail(format!(
            "image efficiency is too low (efficiency={} < threshold={})",
            a.dive.efficiency,
            ratio()
        )),
        Rule::HighestWastedBytes if a.dive.wasted_bytes > bytes() => fail(format!(
            "too many bytes wasted (wasted-bytes={} > threshold={})",
            a.dive.wasted_bytes,
            bytes()
        )),
        // dive compares threshold < value, so NaN (no user bytes) passes.
        Rule::HighestUserWastedPercent if ratio() < a.dive.user_wasted_percent => fail(format!(
            "too many bytes wasted, relative to the user bytes added (%-user-wasted-bytes={} > threshold={})",
            a.dive.user_wasted_percent,
            ratio()
        )),
        Rule::BerthLowestEfficiency if ratio() > a.berth.efficiency => fail(format!(
            "image efficiency is too low (berth efficiency={} < threshold={})",
            a.berth.efficiency,
            ratio()
        )),
        Rule::BerthHighestWastedBytes if a.berth.wasted_bytes > bytes() => fail(format!(
            "too many bytes wasted (berth wasted-bytes={} > threshold={})",
            a.berth.wasted_bytes,
            bytes()
        )),
        Rule::BerthHighestUserWastedPercent if ratio() < a.berth.user_wasted_percent => {
            fail(format!(
                "too many bytes wasted, relative to the user bytes added (berth %-user-wasted-bytes={} > threshold={})",
                a.berth.user_wasted_percent,
                ratio()
            ))
        }
        Rule::BerthHighestMetadataOnlyBytes if a.berth.metadata_only_bytes > bytes() => {
            fail(format!(
                "too many bytes copied only to change mode or owner (metadata-only-bytes={} > threshold={})",
                a.berth.metadata_only_bytes,
                bytes()
            ))
        }
        _ => pass,
    }
}

/// Evaluates every rule against an analysis, as dive's `CiEvaluator` does:
/// a misconfigured rule stops the evaluation and fails the run.
pub fn evaluate(config: &CiConfig, analysis: &Analysis) -> CiReport {
    let mut results: Vec<RuleResult> = Rule::ALL
        .iter()
        .map(|&rule| {
            let value = config.get(rule).to_owned();
            let (status, message) = if value == "disabled" {
                (Status::Skip, "rule disabled".to_owned())
            } else {
                match validate(rule, &value) {
                    Err(m) => (Status::Misconfigured, m),
                    Ok(()) => (Status::Configured, String::new()),
                }
            };
            RuleResult {
                rule,
                key: rule.key(),
                value,
                status,
                message,
            }
        })
        .collect();
    let misconfigured = results.iter().any(|r| r.status == Status::Misconfigured);
    if !misconfigured {
        for r in &mut results {
            if r.status == Status::Configured {
                (r.status, r.message) = evaluate_one(r.rule, &r.value, analysis);
            }
        }
    }
    results.sort_by(|a, b| a.key.cmp(b.key));
    let pass = !misconfigured && results.iter().all(|r| r.status != Status::Fail);
    CiReport {
        results,
        pass,
        misconfigured,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_bytes_like_go_humanize() {
        assert_eq!(parse_bytes("20MB"), Ok(20_000_000));
        assert_eq!(parse_bytes("20 mb"), Ok(20_000_000));
        assert_eq!(parse_bytes("1.5GiB"), Ok(1_610_612_736));
        assert_eq!(parse_bytes("1,000"), Ok(1000));
        assert_eq!(parse_bytes("42"), Ok(42));
        assert_eq!(parse_bytes("5k"), Ok(5000));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("5 parsecs").is_err());
    }

    #[test]
    fn dive_ci_file_over_defaults() {
        let text = "rules:\n  lowestEfficiency: 0.95\n  HighestWastedBytes: 20MB\n  highestUserWastedPercent: disabled\n  berthLowestEfficiency: 0.5\n  somethingElse: 3\n";
        let c = CiConfig::parse(text, Path::new(".dive-ci")).unwrap();
        assert_eq!(c.get(Rule::LowestEfficiency), "0.95");
        assert_eq!(c.get(Rule::HighestWastedBytes), "20MB");
        assert_eq!(c.get(Rule::HighestUserWastedPercent), "disabled");
        assert_eq!(c.get(Rule::BerthLowestEfficiency), "0.5");
        assert_eq!(c.get(Rule::BerthHighestWastedBytes), "disabled");
        let d = CiConfig::default();
        assert_eq!(d.get(Rule::LowestEfficiency), "0.9");
        assert_eq!(d.get(Rule::HighestUserWastedPercent), "0.1");
        assert!(CiConfig::parse("rules: [", Path::new("x")).is_err());
    }

    #[test]
    fn evaluation_matches_dive_including_nan_and_misconfiguration() {
        use crate::tests::{file, image};
        // Duplicate: dive efficiency 0.5, wasted 200, user wasted 2.0.
        let a = crate::analyze(image(&[vec![file("f", 100)], vec![file("f", 100)]]));
        let r = evaluate(&CiConfig::default(), &a);
        assert!(!r.pass);
        let status = |k: Rule| r.results.iter().find(|x| x.rule == k).unwrap().status;
        assert_eq!(status(Rule::LowestEfficiency), Status::Fail);
        assert_eq!(status(Rule::HighestUserWastedPercent), Status::Fail);
        assert_eq!(status(Rule::HighestWastedBytes), Status::Skip);
        let mut c = CiConfig::default();
        c.set(Rule::LowestEfficiency, "0.5");
        c.set(Rule::HighestUserWastedPercent, "disabled");
        c.set(Rule::HighestWastedBytes, "200B");
        c.set(Rule::BerthHighestWastedBytes, "99");
        let r = evaluate(&c, &a);
        assert!(!r.pass);
        let status = |k: Rule| r.results.iter().find(|x| x.rule == k).unwrap().status;
        assert_eq!(status(Rule::LowestEfficiency), Status::Pass);
        assert_eq!(status(Rule::HighestWastedBytes), Status::Pass);
        assert_eq!(status(Rule::BerthHighestWastedBytes), Status::Fail);
        // A single-layer image: user wasted percent is NaN and passes.
        let one = crate::analyze(image(&[vec![file("f", 1)]]));
        assert!(evaluate(&CiConfig::default(), &one).pass);
        // Out of range: misconfigured, fails without evaluating.
        c.set(Rule::LowestEfficiency, "1.5");
        let r = evaluate(&c, &one);
        assert!(r.misconfigured && !r.pass);
        assert_eq!(r.count(Status::Misconfigured), 1);
        assert_eq!(r.count(Status::Fail), 0);
    }
}
