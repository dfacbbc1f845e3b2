//! Lint rules: what BuildKit's `--check` reports, with its rule names and
//! messages. Rules that need the base image's configuration (its ENV) work
//! from what the Dockerfile itself declares, plus the usual image variables.

use std::collections::{BTreeSet, HashMap};

use berth_shell::{EnvMap, Lexer};
use serde::Serialize;

use crate::{Diagnostic, DiagnosticKind, Dockerfile, Keyword, Span};

/// One lint finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// BuildKit's rule name, e.g. `JSONArgsRecommended`.
    pub rule: &'static str,
    /// BuildKit's message.
    pub message: String,
    /// Where.
    pub span: Span,
}

/// Every rule this module knows, for `# check=skip=...` validation and docs.
pub const RULES: &[&str] = &[
    "ConsistentInstructionCasing",
    "DuplicateStageName",
    "ExposeProtoCasing",
    "FromAsCasing",
    "FromPlatformFlagConstDisallowed",
    "JSONArgsRecommended",
    "LegacyKeyValueFormat",
    "MaintainerDeprecated",
    "MultipleInstructionsDisallowed",
    "NoEmptyContinuation",
    "RedundantTargetPlatform",
    "ReservedStageName",
    "SecretsUsedInArgOrEnv",
    "StageNameCasing",
    "UndefinedArgInFrom",
    "UndefinedVar",
    "WorkdirRelativePath",
];

/// Build arguments BuildKit defines without an ARG.
const PREDEFINED_ARGS: &[&str] = &[
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
    "BUILDKIT_SYNTAX",
    "BUILDKIT_MULTI_PLATFORM",
    "BUILDKIT_INLINE_CACHE",
    "SOURCE_DATE_EPOCH",
];

/// Variables base images usually set; we cannot see the image here.
const IMAGE_ENV: &[&str] = &[
    "PATH", "HOME", "HOSTNAME", "TERM", "LANG", "USER", "PWD", "SHELL",
];

/// The `# check=` directive: which rules to skip, and whether findings fail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckConfig {
    /// Rules to skip (`all` skips every rule).
    pub skip: BTreeSet<String>,
    /// `error=true`: findings fail the build.
    pub error: bool,
}

impl CheckConfig {
    /// Reads `# check=skip=A,B;error=true` from the leading comment lines.
    pub fn from_source(src: &str) -> CheckConfig {
        let mut cfg = CheckConfig::default();
        for line in src.trim_start_matches('\u{feff}').lines() {
            let line = line.trim();
            let Some(rest) = line.strip_prefix('#') else {
                break;
            };
            let Some((k, v)) = rest.split_once('=') else {
                break;
            };
            if !k.trim().eq_ignore_ascii_case("check") {
                continue;
            }
            for part in v.split(';') {
                match part.trim().split_once('=') {
                    Some(("skip", rules)) => cfg
                        .skip
                        .extend(rules.split(',').map(|r| r.trim().to_string())),
                    Some(("error", b)) => cfg.error = b.trim() == "true",
                    _ => {}
                }
            }
        }
        cfg
    }

    fn enabled(&self, rule: &str) -> bool {
        !self.skip.contains("all") && !self.skip.contains(rule)
    }
}

struct Linter {
    findings: Vec<Finding>,
}

impl Linter {
    fn add(&mut self, rule: &'static str, message: String, span: Span) {
        self.findings.push(Finding {
            rule,
            message,
            span,
        });
    }
}

fn lexer(escape: char) -> Lexer {
    Lexer::new(escape)
}

/// Variables referenced in `word` that `env` does not define.
fn undefined_vars(lex: &Lexer, word: &str, env: &EnvMap) -> BTreeSet<String> {
    lex.expand(word, env)
        .map(|e| e.unmatched)
        .unwrap_or_default()
}

fn is_secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    if lower.contains("public") {
        return false;
    }
    const TOKENS: &[&str] = &[
        "apikey",
        "auth",
        "credential",
        "credentials",
        "key",
        "password",
        "pass",
        "pword",
        "passwd",
        "secret",
        "token",
    ];
    lower
        .split(['_', '-', '.'])
        .any(|part| TOKENS.contains(&part))
}

fn casing(s: &str) -> Option<bool> {
    if s.chars().all(|c| !c.is_lowercase()) {
        Some(true)
    } else if s.chars().all(|c| !c.is_uppercase()) {
        Some(false)
    } else {
        None
    }
}

/// Runs every rule over a parsed Dockerfile. `diags` are the parser's
/// diagnostics (for NoEmptyContinuation); `src` is read for `# check=`.
pub fn lint(df: &Dockerfile, diags: &[Diagnostic], src: &str) -> Vec<Finding> {
    let cfg = CheckConfig::from_source(src);
    let mut l = Linter {
        findings: Vec::new(),
    };
    let lex = lexer(df.escape);

    for d in diags {
        if d.kind == DiagnosticKind::EmptyContinuationLine {
            l.add(
                "NoEmptyContinuation",
                "Empty continuation line".into(),
                d.span,
            );
        }
    }

    // Instruction casing: the majority wins.
    let (mut upper, mut lower) = (0, 0);
    for i in &df.instructions {
        match casing(&i.keyword) {
            Some(true) => upper += 1,
            Some(false) => lower += 1,
            None => {}
        }
    }
    let majority_upper = upper >= lower;
    for i in &df.instructions {
        for inst in [Some(i), i.onbuild.as_deref()].into_iter().flatten() {
            if inst.kind.is_some() && casing(&inst.keyword) != Some(majority_upper) {
                l.add(
                    "ConsistentInstructionCasing",
                    format!(
                        "Command '{}' should match the case of the command majority ({})",
                        inst.keyword,
                        if majority_upper {
                            "uppercase"
                        } else {
                            "lowercase"
                        }
                    ),
                    inst.keyword_span,
                );
            }
        }
    }

    // Global ARGs (before the first FROM).
    let mut global = EnvMap::new();
    for name in PREDEFINED_ARGS {
        global.set(*name, "");
    }
    let mut stage_names: HashMap<String, Span> = HashMap::new();
    let mut stage_env = EnvMap::new();
    let mut in_stage = false;
    let mut counts: HashMap<Keyword, usize> = HashMap::new();
    let mut shell_changed = false;
    let mut workdir_set = false;

    let close_stage = |l: &mut Linter,
                       counts: &HashMap<Keyword, usize>,
                       last: &[(Keyword, Span)]| {
        for k in [Keyword::Cmd, Keyword::Entrypoint, Keyword::Healthcheck] {
            if counts.get(&k).copied().unwrap_or(0) > 1 {
                for (_, span) in last.iter().filter(|(kk, _)| *kk == k).rev().skip(1) {
                    l.add(
                        "MultipleInstructionsDisallowed",
                        format!("Multiple {k} instructions should not be used in the same stage because only the last one will be used"),
                        *span,
                    );
                }
            }
        }
    };
    let mut seen_in_stage: Vec<(Keyword, Span)> = Vec::new();

    for inst in &df.instructions {
        let Some(kind) = inst.kind else { continue };
        let values = inst.values();
        match kind {
            Keyword::From => {
                if in_stage {
                    close_stage(&mut l, &counts, &seen_in_stage);
                }
                in_stage = true;
                counts.clear();
                seen_in_stage.clear();
                shell_changed = false;
                workdir_set = false;
                stage_env = EnvMap::new();
                for (k, v) in global.iter() {
                    stage_env.set(k, v);
                }
                for name in IMAGE_ENV {
                    stage_env.set(*name, "");
                }
                if let Some(image) = values.first() {
                    for v in undefined_vars(&lex, image, &global) {
                        l.add(
                            "UndefinedArgInFrom",
                            format!("FROM argument '{v}' is not declared"),
                            inst.args_span,
                        );
                    }
                }
                for f in &inst.flags {
                    if f.name() == "platform" {
                        let v = f.value().unwrap_or("");
                        if v == "$TARGETPLATFORM" || v == "${TARGETPLATFORM}" {
                            l.add(
                                "RedundantTargetPlatform",
                                format!("Setting platform to predefined {v} in FROM is redundant as this is the default behavior"),
                                f.span,
                            );
                        } else if !v.contains('$') && !v.is_empty() {
                            l.add(
                                "FromPlatformFlagConstDisallowed",
                                format!("FROM --platform flag should not use constant value {v:?}"),
                                f.span,
                            );
                        }
                    }
                }
                if values.len() == 3 && values[1].eq_ignore_ascii_case("as") {
                    let (as_word, name) = (&inst.args[1], &inst.args[2]);
                    if casing(&inst.keyword).is_some()
                        && casing(&as_word.value).is_some()
                        && casing(&inst.keyword) != casing(&as_word.value)
                    {
                        l.add(
                            "FromAsCasing",
                            "'as' and 'FROM' keywords' casing do not match".into(),
                            as_word.span,
                        );
                    }
                    if name.value.chars().any(char::is_uppercase) {
                        l.add(
                            "StageNameCasing",
                            format!("Stage name '{}' should be lowercase", name.value),
                            name.span,
                        );
                    }
                    let lname = name.value.to_lowercase();
                    if lname == "scratch" || lname == "context" {
                        l.add(
                            "ReservedStageName",
                            format!("'{lname}' is reserved and should not be used as a stage name"),
                            name.span,
                        );
                    }
                    if stage_names.insert(lname.clone(), name.span).is_some() {
                        l.add(
                            "DuplicateStageName",
                            format!(
                                "Duplicate stage name '{}', stage names should be unique",
                                name.value
                            ),
                            name.span,
                        );
                    }
                }
            }
            Keyword::Arg => {
                for w in &inst.args {
                    let (name, default) = match w.value.split_once('=') {
                        Some((n, d)) => (n.to_string(), Some(d)),
                        None => (w.value.clone(), None),
                    };
                    if let Some(d) = default {
                        let env = if in_stage { &stage_env } else { &global };
                        for v in undefined_vars(&lex, d, env) {
                            l.add(
                                "UndefinedVar",
                                format!("Usage of undefined variable '${v}'"),
                                w.span,
                            );
                        }
                    }
                    if is_secret_name(&name) {
                        l.add(
                            "SecretsUsedInArgOrEnv",
                            format!("Do not use ARG or ENV instructions for sensitive data (ARG {name:?})"),
                            w.span,
                        );
                    }
                    let value = default
                        .map(|d| lex.expand_word(d, &stage_env).unwrap_or_default())
                        .unwrap_or_default();
                    if in_stage {
                        stage_env.set(name, value);
                    } else {
                        global.set(name, value);
                    }
                }
            }
            Keyword::Env | Keyword::Label => {
                let legacy = inst.args.len() == 2 && {
                    let rest = &inst.original;
                    // Legacy form: the first word of the arguments has no `=`.
                    let args_start = inst.args[0].span.start.saturating_sub(inst.span.start);
                    rest.get(args_start..)
                        .and_then(|r| r.split_whitespace().next())
                        .is_some_and(|w| !w.contains('='))
                };
                if legacy {
                    l.add(
                        "LegacyKeyValueFormat",
                        format!("\"{kind} key=value\" should be used instead of legacy \"{kind} key value\" format"),
                        inst.args_span,
                    );
                }
                for pair in inst.args.chunks(2) {
                    let [k, v] = pair else { continue };
                    for name in undefined_vars(&lex, &v.value, &stage_env) {
                        l.add(
                            "UndefinedVar",
                            format!("Usage of undefined variable '${name}'"),
                            v.span,
                        );
                    }
                    if kind == Keyword::Env {
                        if is_secret_name(&k.value) {
                            l.add(
                                "SecretsUsedInArgOrEnv",
                                format!("Do not use ARG or ENV instructions for sensitive data (ENV {:?})", k.value),
                                k.span,
                            );
                        }
                        let value = lex.expand_word(&v.value, &stage_env).unwrap_or_default();
                        stage_env.set(k.value.clone(), value);
                    }
                }
            }
            Keyword::Maintainer => {
                l.add(
                    "MaintainerDeprecated",
                    "Maintainer instruction is deprecated in favor of using label".into(),
                    inst.keyword_span,
                );
            }
            Keyword::Shell => shell_changed = true,
            Keyword::Cmd | Keyword::Entrypoint
                if !inst.json && !values.is_empty() && !shell_changed =>
            {
                l.add(
                    "JSONArgsRecommended",
                    "JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals".into(),
                    inst.args_span,
                );
            }
            Keyword::Workdir => {
                if let Some(w) = values.first() {
                    for v in undefined_vars(&lex, w, &stage_env) {
                        l.add(
                            "UndefinedVar",
                            format!("Usage of undefined variable '${v}'"),
                            inst.args_span,
                        );
                    }
                    let expanded = lex
                        .expand_word(w, &stage_env)
                        .unwrap_or_else(|_| w.to_string());
                    let windows = expanded.len() >= 2 && expanded.as_bytes()[1] == b':';
                    if !workdir_set
                        && !expanded.starts_with('/')
                        && !windows
                        && !expanded.starts_with('\\')
                    {
                        l.add(
                            "WorkdirRelativePath",
                            format!("Relative workdir {expanded:?} can have unexpected results if the base image changes"),
                            inst.args_span,
                        );
                    }
                    workdir_set = true;
                }
            }
            Keyword::Expose => {
                for w in &inst.args {
                    if let Some((_, proto)) = w.value.split_once('/')
                        && proto.chars().any(char::is_uppercase)
                    {
                        l.add(
                            "ExposeProtoCasing",
                            format!("Defined protocol '{proto}' in expose instruction should be lowercase"),
                            w.span,
                        );
                    }
                }
            }
            Keyword::Copy
            | Keyword::Add
            | Keyword::User
            | Keyword::Volume
            | Keyword::Stopsignal
                if inst.heredocs.is_empty() =>
            {
                for w in &inst.args {
                    for v in undefined_vars(&lex, &w.value, &stage_env) {
                        l.add(
                            "UndefinedVar",
                            format!("Usage of undefined variable '${v}'"),
                            w.span,
                        );
                    }
                }
            }
            _ => {}
        }
        *counts.entry(kind).or_default() += 1;
        seen_in_stage.push((kind, inst.keyword_span));
    }
    if in_stage {
        close_stage(&mut l, &counts, &seen_in_stage);
    }
    let mut out: Vec<Finding> = l
        .findings
        .into_iter()
        .filter(|f| cfg.enabled(f.rule))
        .collect();
    out.sort_by_key(|f| (f.span.start, f.rule));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(src: &str) -> Vec<(&'static str, usize)> {
        let (df, diags) = crate::parse(src);
        lint(&df, &diags, src)
            .into_iter()
            .map(|f| (f.rule, f.span.line))
            .collect()
    }

    #[test]
    fn each_rule_fires() {
        assert_eq!(rules("FROM a AS Build\n"), [("StageNameCasing", 1)]);
        assert_eq!(rules("FROM a as b\n"), [("FromAsCasing", 1)]);
        assert_eq!(
            rules("FROM a AS b\nFROM c AS B\n"),
            [("DuplicateStageName", 2), ("StageNameCasing", 2)]
        );
        assert_eq!(rules("FROM a AS scratch\n"), [("ReservedStageName", 1)]);
        assert_eq!(rules("FROM a\nCMD echo hi\n"), [("JSONArgsRecommended", 2)]);
        assert_eq!(rules("FROM a\nSHELL [\"bash\",\"-c\"]\nCMD echo hi\n"), []);
        assert_eq!(
            rules("FROM a\nMAINTAINER me\n"),
            [("MaintainerDeprecated", 2)]
        );
        assert_eq!(rules("FROM a\nWORKDIR app\n"), [("WorkdirRelativePath", 2)]);
        assert_eq!(rules("FROM a\nWORKDIR /app\nWORKDIR sub\n"), []);
        assert_eq!(rules("FROM a:$V\n"), [("UndefinedArgInFrom", 1)]);
        assert_eq!(rules("ARG V=1\nFROM a:$V\n"), []);
        assert_eq!(rules("FROM --platform=$BUILDPLATFORM a\n"), []);
        assert_eq!(
            rules("FROM --platform=linux/amd64 a\n"),
            [("FromPlatformFlagConstDisallowed", 1)]
        );
        assert_eq!(
            rules("FROM --platform=$TARGETPLATFORM a\n"),
            [("RedundantTargetPlatform", 1)]
        );
        assert_eq!(rules("FROM a\nCOPY $SRC /x\n"), [("UndefinedVar", 2)]);
        assert_eq!(rules("FROM a\nARG SRC\nCOPY $SRC /x\nENV P=$PATH:/x\n"), []);
        assert_eq!(rules("FROM a\nENV a b\n"), [("LegacyKeyValueFormat", 2)]);
        assert_eq!(rules("FROM a\nENV a=b\n"), []);
        assert_eq!(
            rules("FROM a\nARG API_TOKEN\n"),
            [("SecretsUsedInArgOrEnv", 2)]
        );
        assert_eq!(rules("FROM a\nEXPOSE 80/TCP\n"), [("ExposeProtoCasing", 2)]);
        assert_eq!(
            rules("FROM a\nCMD [\"a\"]\nCMD [\"b\"]\n"),
            [("MultipleInstructionsDisallowed", 2)]
        );
        assert_eq!(
            rules("FROM a\nrun x\nRUN y\nRUN z\n"),
            [("ConsistentInstructionCasing", 2)]
        );
        assert_eq!(
            rules("FROM a\nRUN a \\\n\n  b\n"),
            [("NoEmptyContinuation", 3)]
        );
    }

    #[test]
    fn check_directive_skips() {
        assert_eq!(
            rules("# check=skip=MaintainerDeprecated\nFROM a\nMAINTAINER me\n"),
            []
        );
        assert_eq!(rules("# check=skip=all\nFROM a AS B\nMAINTAINER me\n"), []);
        assert!(CheckConfig::from_source("# check=skip=A,B;error=true\nFROM a\n").error);
    }
}
