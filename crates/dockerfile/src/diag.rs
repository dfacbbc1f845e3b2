//! Diagnostics: typed errors and warnings with spans, and their rendering as
//! `file:line:col`, the offending line and a caret.

use crate::ast::Span;

/// What went wrong. Errors are the cases where BuildKit's parser rejects the
/// file; warnings are accepted by the parser but worth telling.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiagnosticKind {
    /// A second `# escape=` or `# syntax=` directive.
    #[error("only one {0} parser directive can be used")]
    DuplicateDirective(String),
    /// `# escape=` with something other than `\` or `` ` ``.
    #[error("invalid escape token '{0}' does not match ` or \\")]
    InvalidEscape(String),
    /// An exec-form array with a non-string element.
    #[error("when using JSON array syntax, arrays must be comprised of strings only")]
    NotStringArray,
    /// `ENV key` or `LABEL key` without a value.
    #[error("{0} must have two arguments")]
    MissingValue(String),
    /// `ENV a=b c`: a later word has no `=`.
    #[error("Syntax error - can't find = in {0:?}. Must be of the form: name=value")]
    MissingEquals(String),
    /// A heredoc delimiter that does not lex (e.g. an unbalanced quote).
    #[error("invalid heredoc delimiter {0:?}")]
    BadHeredocDelimiter(String),
    /// The file ended inside a heredoc.
    #[error("unterminated heredoc {0:?}")]
    UnterminatedHeredoc(String),
    /// No instruction at all.
    #[error("file with no instructions")]
    NoInstructions,
    /// A physical line longer than BuildKit's scanner accepts.
    #[error("dockerfile line greater than max allowed size of 65535")]
    LineTooLong,
    /// An instruction BuildKit does not know (its parser keeps it, the build
    /// rejects it).
    #[error("unknown instruction: {0}")]
    UnknownInstruction(String),
    /// A flag the instruction does not take (BuildKit's parser keeps it; the
    /// build rejects it).
    #[error("unknown flag: --{flag} (for {instruction})")]
    UnknownFlag {
        /// The flag's name.
        flag: String,
        /// The instruction.
        instruction: String,
    },
    /// Arguments that start like an exec-form array but are not valid JSON:
    /// BuildKit silently runs them in shell form.
    #[error("not a valid JSON array, so this is the shell form: {0}")]
    NotJsonForm(String),
    /// An empty line inside a line continuation.
    #[error("empty continuation line")]
    EmptyContinuationLine,
}

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// BuildKit's parser accepts the file.
    Warning,
    /// BuildKit's parser rejects the file.
    Error,
}

/// A diagnostic with its place in the source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct Diagnostic {
    /// What went wrong.
    pub kind: DiagnosticKind,
    /// How bad it is.
    pub severity: Severity,
    /// Where.
    pub span: Span,
    /// A suggested fix, e.g. "did you mean `RUN`?".
    pub help: Option<String>,
}

impl Diagnostic {
    pub(crate) fn error(kind: DiagnosticKind, span: Span) -> Self {
        Diagnostic {
            kind,
            severity: Severity::Error,
            span,
            help: None,
        }
    }

    pub(crate) fn warning(kind: DiagnosticKind, span: Span) -> Self {
        Diagnostic {
            kind,
            severity: Severity::Warning,
            span,
            help: None,
        }
    }

    pub(crate) fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Renders the diagnostic for a terminal:
    ///
    /// ```text
    /// error: unknown instruction: RUNN
    ///  --> Dockerfile:3:1
    ///   |
    /// 3 | RUNN echo hi
    ///   | ^^^^
    ///   = help: did you mean `RUN`?
    /// ```
    pub fn render(&self, file: &str, src: &str) -> String {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut out = format!("{level}: {}\n", self.kind);
        let line_no = self.span.line.max(1);
        out.push_str(&format!(" --> {file}:{line_no}:{}\n", self.span.col.max(1)));
        // The line holding the span's start (found around it, not by counting
        // lines, so rendering many diagnostics stays linear).
        let at = self.span.start.min(src.len());
        let bytes = src.as_bytes();
        let ls = bytes[..at]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        let le = bytes[at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(src.len(), |p| at + p);
        let text = src.get(ls..le).unwrap_or("");
        let text = text.strip_suffix('\r').unwrap_or(text);
        let text = if ls == 0 {
            text.strip_prefix('\u{feff}').unwrap_or(text)
        } else {
            text
        };
        let gutter = " ".repeat(line_no.to_string().len());
        out.push_str(&format!(
            "{gutter} |\n{line_no} | {}\n",
            text.replace('\t', " ")
        ));
        let col = self.span.col.max(1) - 1;
        let line_chars = text.chars().count();
        let width = if self.span.end > self.span.start {
            // Underline up to the end of the span, but not past this line.
            let bytes = self.span.end - self.span.start;
            let avail = line_chars.saturating_sub(col).max(1);
            src.get(self.span.start..self.span.end)
                .map_or(bytes, |s| s.chars().take_while(|&c| c != '\n').count())
                .clamp(1, avail)
        } else {
            1
        };
        out.push_str(&format!(
            "{gutter} | {}{}\n",
            " ".repeat(col),
            "^".repeat(width)
        ));
        if let Some(help) = &self.help {
            out.push_str(&format!("{gutter} = help: {help}\n"));
        }
        out
    }
}

/// The known instruction nearest to `name` (edit distance at most 2), for
/// "did you mean" hints.
pub fn suggest_instruction(name: &str) -> Option<&'static str> {
    let upper = name.to_ascii_uppercase();
    crate::Keyword::ALL
        .iter()
        .map(|k| (levenshtein(&upper, k.as_str()), k.as_str()))
        .filter(|&(d, _)| d <= 2 && d < upper.len())
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k)
}

/// The flags each instruction takes.
pub fn known_flags(k: crate::Keyword) -> &'static [&'static str] {
    use crate::Keyword as K;
    match k {
        K::From => &["platform"],
        K::Run => &["mount", "network", "security", "device"],
        K::Copy => &["from", "chown", "chmod", "link", "parents", "exclude"],
        K::Add => &[
            "chown",
            "chmod",
            "link",
            "keep-git-dir",
            "checksum",
            "unpack",
            "exclude",
        ],
        K::Healthcheck => &[
            "interval",
            "timeout",
            "start-period",
            "start-interval",
            "retries",
        ],
        _ => &[],
    }
}

pub(crate) fn nearest<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (levenshtein(name, c), *c))
        .filter(|&(d, _)| d <= 2 && d < name.len())
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, &cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(suggest_instruction("RUNN"), Some("RUN"));
        assert_eq!(suggest_instruction("cpoy"), Some("COPY"));
        assert_eq!(suggest_instruction("ENTRYPONT"), Some("ENTRYPOINT"));
        assert_eq!(suggest_instruction("XYZZY"), None);
    }
}
