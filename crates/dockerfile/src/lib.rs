//! A Dockerfile parser that reads Dockerfiles exactly as BuildKit does.
//!
//! [`parse`] is total: it never fails and never panics. It returns the syntax
//! tree ([`Dockerfile`]: directives, instructions with flags, argument words,
//! exec/shell form, ONBUILD's nested instruction, heredocs; every node with its
//! [`Span`]) and a list of [`Diagnostic`]s. A diagnostic of severity
//! [`Severity::Error`] marks exactly the inputs that BuildKit's own parser
//! rejects; warnings flag what it accepts but the build would reject or
//! silently reinterpret (unknown instructions and unknown flags, with a "did
//! you mean" hint; `CMD ['a']`, which is not JSON and so runs in a shell;
//! empty continuation lines). [`Diagnostic::render`] prints `file:line:col`,
//! the line and a caret. [`lint::lint`] adds BuildKit's `--check` rules.
//!
//! ```
//! let (df, diags) = berth_dockerfile::parse("FROM alpine AS build\nRUN <<EOF\necho hi\nEOF\n");
//! assert!(diags.is_empty());
//! assert_eq!(df.instructions[1].heredocs[0].content, "echo hi\n");
//! assert_eq!(df.instructions[1].span.line, 2);
//! ```
//!
//! Fidelity target: BuildKit's `frontend/dockerfile/parser` as wrapped by the
//! PyPI package `dockerfile` 3.4, including its quirks: parser directives only
//! before anything else (`# syntax=`, `# escape=`; any other comment, a blank
//! line or an unknown directive such as `# check=` ends them), continuation
//! lines with comment and blank lines inside, an escaped escape at the end of
//! a line that is not a continuation, flags read byte by byte, JSON arrays
//! decoded like Go's `encoding/json` decoder (trailing text ignored), ENV and
//! LABEL keys and values with their quotes kept, heredocs only for RUN, COPY
//! and ADD in shell form (and ONBUILD of those). [`dump`] renders the tree as
//! that package does (`berth dockerfile parse --format json`).
//!
//! What this crate deliberately does not do: no file system and no
//! environment access (it parses a `&str`), no variable expansion of its own
//! (the [`lint`] rules ask `berth-shell`), and no build semantics (stages,
//! reachability and the build graph belong to the build frontend).

mod ast;
mod diag;
mod dump;
mod go;
mod heredoc_lex;
pub mod lint;
mod parser;

pub use ast::{Directive, Dockerfile, Flag, Heredoc, Instruction, Keyword, Span, Word};
pub use diag::{Diagnostic, DiagnosticKind, Severity, known_flags, suggest_instruction};
pub use dump::{DumpHeredoc, DumpNode, dump};
pub use parser::parse;

/// Parses `src` and fails on the first error, the way BuildKit does.
pub fn parse_strict(src: &str) -> Result<(Dockerfile, Vec<Diagnostic>), Diagnostic> {
    let (df, diags) = parse(src);
    match diags.iter().find(|d| d.severity == Severity::Error) {
        Some(e) => Err(e.clone()),
        None => Ok((df, diags)),
    }
}

/// Parses `src` and panics if any of the parser's invariants is broken: spans
/// inside the source and on character boundaries, line numbers in order, a
/// dump that serializes, diagnostics that render, and "no instructions" only
/// reported for inputs without any. Used by the fuzz target and the tests.
#[doc(hidden)]
pub fn check_invariants(src: &str) {
    let (df, diags) = parse(src);
    let check_span = |s: &Span, what: &str| {
        assert!(
            s.start <= s.end && s.end <= src.len(),
            "{what} span {s:?} out of bounds"
        );
        assert!(
            s.line >= 1 && s.col >= 1,
            "{what} span {s:?} has no position"
        );
    };
    let mut last_end = 0;
    for inst in &df.instructions {
        assert!(
            inst.start_line >= 1 && inst.start_line <= inst.end_line,
            "{inst:?}"
        );
        assert!(inst.start_line > last_end, "instructions overlap: {inst:?}");
        last_end = inst.end_line;
        check_span(&inst.span, "instruction");
        check_span(&inst.keyword_span, "keyword");
        check_span(&inst.args_span, "args");
        for w in &inst.args {
            check_span(&w.span, "word");
        }
        for f in &inst.flags {
            check_span(&f.span, "flag");
        }
        for h in &inst.heredocs {
            check_span(&h.span, "heredoc");
        }
    }
    for d in &diags {
        check_span(&d.span, "diagnostic");
        assert!(!d.render("Dockerfile", src).is_empty());
    }
    if df.instructions.is_empty() {
        assert!(diags.iter().any(|d| d.severity == Severity::Error));
    }
    serde_json::to_string(&dump(&df)).expect("the dump serializes");
}
