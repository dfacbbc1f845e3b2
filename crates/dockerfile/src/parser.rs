//! The parse loop: physical lines → logical lines → instruction nodes, exactly
//! as BuildKit's `parser.Parse` reads them.

use std::borrow::Cow;

use crate::ast::{Directive, Dockerfile, Flag, Heredoc, Instruction, Keyword, Span, Word};
use crate::diag::{Diagnostic, DiagnosticKind as K, suggest_instruction};
use crate::go::{self, JsonArray};
use crate::heredoc_lex;

/// Longest physical line (with its newline) BuildKit's scanner accepts.
const MAX_TOKEN: usize = 64 * 1024;

/// Maps offsets in a logical line (continuations joined) back to the source.
struct LineMap<'a> {
    /// `(offset in logical line, offset in source, 1-based line, line start)`
    /// for each piece; every piece lies within one physical line.
    segs: &'a [(usize, usize, usize, usize)],
    idx: &'a LineIndex<'a>,
}

impl LineMap<'_> {
    fn seg(&self, off: usize) -> (usize, usize, usize, usize) {
        let i = self.segs.partition_point(|s| s.0 <= off).saturating_sub(1);
        self.segs.get(i).copied().unwrap_or((0, 0, 1, 0))
    }

    fn span(&self, start: usize, end: usize) -> Span {
        let (l, s, line, line_start) = self.seg(start);
        let s = s + (start - l.min(start));
        let e = if end > start {
            let (l2, s2, ..) = self.seg(end - 1);
            s2 + (end - 1 - l2.min(end - 1)) + 1
        } else {
            s
        };
        Span {
            start: s,
            end: e.max(s),
            line,
            col: self.idx.col(line_start, s),
        }
    }
}

/// Line and column lookups in the source.
pub(crate) struct LineIndex<'a> {
    src: &'a [u8],
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        LineIndex {
            src: src.as_bytes(),
        }
    }

    fn col(&self, line_start: usize, at: usize) -> usize {
        let at = at.min(self.src.len());
        let ls = line_start.min(at);
        let prefix = &self.src[ls..at];
        if prefix.is_ascii() {
            return prefix.len() + 1;
        }
        prefix.iter().filter(|&&b| b & 0xc0 != 0x80).count() + 1
    }

    /// A span whose line is known (the fast path).
    fn span_on(&self, start: usize, end: usize, line: usize, line_start: usize) -> Span {
        Span {
            start,
            end,
            line,
            col: self.col(line_start, start),
        }
    }

    /// A span anywhere (counts lines: for diagnostics and other rare spans).
    pub(crate) fn span(&self, start: usize, end: usize) -> Span {
        let before = &self.src[..start.min(self.src.len())];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let ls = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        self.span_on(start, end, line, ls)
    }
}

/// Physical lines, each with its newline, read lazily; stops at an over-long
/// line as BuildKit's scanner does.
struct Reader<'a> {
    src: &'a str,
    at: usize,
    too_long: Option<(usize, usize)>,
}

impl Reader<'_> {
    fn peek_start(&self) -> Option<usize> {
        (self.too_long.is_none() && self.at < self.src.len()).then_some(self.at)
    }

    fn next(&mut self) -> Option<(usize, usize)> {
        let at = self.peek_start()?;
        let end = self.src.as_bytes()[at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(self.src.len(), |p| at + p + 1);
        let len = end - at;
        let unterminated = self.src.as_bytes()[end - 1] != b'\n';
        if len > MAX_TOKEN || (unterminated && len >= MAX_TOKEN) {
            self.too_long = Some((at, end));
            return None;
        }
        self.at = end;
        Some((at, end))
    }
}

struct Directives {
    escape: char,
    done: bool,
    seen: Vec<String>,
    found: Vec<Directive>,
}

impl Directives {
    /// `possibleParserDirective`.
    fn check(&mut self, line: &str, idx: &LineIndex<'_>, at: usize) -> Option<Diagnostic> {
        if self.done {
            return None;
        }
        let span = idx.span(at, at + line.len());
        let Some((name, value)) = match_directive(line) else {
            self.done = true;
            return None;
        };
        let key = name.to_ascii_lowercase();
        if key != "escape" && key != "syntax" {
            self.done = true;
            return None;
        }
        if self.seen.contains(&key) {
            return Some(Diagnostic::error(K::DuplicateDirective(key), span));
        }
        self.seen.push(key.clone());
        self.found.push(Directive {
            name: key.clone(),
            value: value.to_string(),
            span,
        });
        if key == "escape" {
            match value {
                "\\" => self.escape = '\\',
                "`" => self.escape = '`',
                _ => {
                    return Some(
                        Diagnostic::error(K::InvalidEscape(value.to_string()), span)
                            .with_help("use `# escape=\\` or `# escape=``"),
                    );
                }
            }
        }
        None
    }
}

/// `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$` with RE2's `\s` = `[\t\n\f\r ]`.
fn match_directive(line: &str) -> Option<(&str, &str)> {
    let is_s = |c: char| matches!(c, '\t' | '\n' | '\u{c}' | '\r' | ' ');
    let r = line.strip_prefix('#')?.trim_start_matches(is_s);
    if !r.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let name_len = r.len()
        - r.trim_start_matches(|c: char| c.is_ascii_alphanumeric())
            .len();
    let (name, r) = r.split_at(name_len);
    let r = r.trim_start_matches(is_s).strip_prefix('=')?;
    let v = r.trim_start_matches(is_s);
    if v.is_empty() {
        // `.+?` takes the last blank when there is nothing else.
        let last = r.chars().last()?;
        return Some((name, &r[r.len() - last.len_utf8()..]));
    }
    Some((name, v.trim_end_matches(is_s)))
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

/// `isComment` on a raw physical line.
fn is_comment(raw: &str) -> bool {
    trim_newline(raw)
        .trim_start_matches(go::is_space)
        .starts_with('#')
}

/// Removes a line-continuation escape at the end: `(line, is_end_of_line)`.
fn trim_continuation(s: &str, escape: char) -> (&str, bool) {
    let t = s.trim_end_matches([' ', '\t']);
    let Some(before) = t.strip_suffix(escape) else {
        return (s, true);
    };
    if before.is_empty() {
        return ("", false);
    }
    if before.ends_with(escape) {
        return (s, true);
    }
    (before, false)
}

/// The parser's output for one logical line before heredocs.
struct Parsed {
    inst: Instruction,
    error: Option<Diagnostic>,
}

struct Ctx<'a> {
    escape: char,
    map: &'a LineMap<'a>,
}

/// `extractBuilderFlags`: walks the line byte by byte (so non-ASCII bytes in
/// flags become Latin-1 characters, as in BuildKit). Returns the offset where
/// the arguments start (None: no arguments) and the flags with their ranges.
fn extract_flags(s: &str) -> (Option<usize>, Vec<(String, usize, usize)>) {
    let b = s.as_bytes();
    let n = b.len();
    #[derive(PartialEq)]
    enum P {
        Spaces,
        Word,
        Quote,
    }
    let mut phase = P::Spaces;
    let mut words = Vec::new();
    let mut word = String::new();
    let mut word_start = 0;
    let mut quote = 0u8;
    let mut blank_ok = false;
    let mut pos = 0;
    while pos <= n {
        let mut ch = if pos < n { b[pos] } else { 0 };
        if phase == P::Spaces {
            if pos == n {
                break;
            }
            if go::is_space_byte(ch) {
                pos += 1;
                continue;
            }
            if ch != b'-' || pos + 1 == n || b[pos + 1] != b'-' {
                return (Some(pos), words);
            }
            phase = P::Word;
            word_start = pos;
            word.reserve(n - pos);
        }
        if pos == n {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push((word.as_str().to_owned(), word_start, pos));
            }
            break;
        }
        if phase == P::Word {
            if go::is_space_byte(ch) {
                phase = P::Spaces;
                if word == "--" {
                    return (Some(pos), words);
                }
                if blank_ok || !word.is_empty() {
                    words.push((word.as_str().to_owned(), word_start, pos));
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == b'\'' || ch == b'"' {
                quote = ch;
                blank_ok = true;
                phase = P::Quote;
                pos += 1;
                continue;
            }
            if ch == b'\\' {
                if pos + 1 == n {
                    pos += 1;
                    continue;
                }
                pos += 1;
                ch = b[pos];
            }
            word.push(char::from(ch));
            pos += 1;
            continue;
        }
        // In quotes.
        if ch == quote {
            phase = P::Word;
            pos += 1;
            continue;
        }
        if ch == b'\\' {
            if pos + 1 == n {
                phase = P::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            ch = b[pos];
        }
        word.push(char::from(ch));
        pos += 1;
    }
    (None, words)
}

/// `parseWords`: quote-aware word splitting that keeps quotes and escapes.
/// Every word is a slice of `rest` (BuildKit only ever drops an escape
/// character that ends the input), so this returns `(start, text_end,
/// span_end)` byte offsets and allocates nothing per word.
fn parse_words(rest: &str, escape: char) -> Vec<(usize, usize, usize)> {
    #[derive(PartialEq)]
    enum P {
        Spaces,
        Word,
        Quote,
    }
    let mut words = Vec::new();
    let mut phase = P::Spaces;
    let mut start = 0;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut text_end = 0;
    let len = rest.len();
    let mut pos = 0;
    let mut ch = '\0';
    let mut w = 0;
    let decode = |p: usize| -> (char, usize) {
        rest[p..]
            .chars()
            .next()
            .map_or(('\0', 1), |c| (c, c.len_utf8()))
    };
    loop {
        if pos > len {
            break;
        }
        if pos != len {
            (ch, w) = decode(pos);
        }
        if phase == P::Spaces {
            if pos == len {
                break;
            }
            if go::is_space(ch) {
                pos += w;
                continue;
            }
            phase = P::Word;
            start = pos;
            text_end = pos;
        }
        if pos == len {
            if blank_ok || text_end > start {
                words.push((start, text_end, pos));
            }
            break;
        }
        if phase == P::Word {
            if go::is_space(ch) {
                phase = P::Spaces;
                if blank_ok || text_end > start {
                    words.push((start, text_end, pos));
                }
                blank_ok = false;
                pos += w;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = P::Quote;
            }
            if ch == escape {
                if pos + w == len {
                    pos += w;
                    continue;
                }
                pos += w;
                (ch, w) = decode(pos);
            }
            pos += w;
            text_end = pos;
            continue;
        }
        // In quotes.
        if ch == quote {
            phase = P::Word;
        }
        if ch == escape && quote != '\'' {
            if pos + w == len {
                phase = P::Word;
                pos += w;
                continue;
            }
            pos += w;
            (ch, w) = decode(pos);
        }
        pos += w;
        text_end = pos;
    }
    words
}

impl Ctx<'_> {
    fn word(&self, value: impl Into<String>, start: usize, end: usize) -> Word {
        Word {
            value: value.into(),
            span: self.map.span(start, end),
        }
    }

    /// `parseStringsWhitespaceDelimited`.
    fn ws_delimited(&self, rest: &str, off: usize) -> Vec<Word> {
        if rest.is_empty() {
            return Vec::new();
        }
        go::split_re_ws_iter(rest)
            .map(|(o, s)| self.word(s, off + o, off + o + s.len()))
            .collect()
    }

    /// `parseJSON`: Some(words) for a string array, Err for non-strings.
    fn json(&self, rest: &str, off: usize) -> Result<Option<Vec<Word>>, K> {
        let trimmed = rest.trim_start_matches(go::is_space);
        let off = off + (rest.len() - trimmed.len());
        let rest = trimmed;
        if !rest.starts_with('[') {
            return Ok(None);
        }
        match go::json_array(rest) {
            JsonArray::Strings(v) => Ok(Some(
                v.into_iter()
                    .map(|(s, a, b)| self.word(s, off + a, off + b))
                    .collect(),
            )),
            JsonArray::NotStrings => Err(K::NotStringArray),
            JsonArray::Invalid => Ok(None),
        }
    }

    /// `parseMaybeJSON`: `(words, json)`.
    fn maybe_json(&self, rest: &str, off: usize) -> Result<(Vec<Word>, bool), K> {
        if rest.is_empty() {
            return Ok((Vec::new(), false));
        }
        Ok(match self.json(rest, off)? {
            Some(w) => (w, true),
            None => (vec![self.word(rest, off, off + rest.len())], false),
        })
    }

    /// `parseMaybeJSONToList`.
    fn maybe_json_list(&self, rest: &str, off: usize) -> Result<(Vec<Word>, bool), K> {
        Ok(match self.json(rest, off)? {
            Some(w) => (w, true),
            None => (self.ws_delimited(rest, off), false),
        })
    }

    /// `parseNameVal` for ENV and LABEL.
    fn name_val(&self, rest: &str, off: usize, key: Keyword) -> Result<Vec<Word>, K> {
        let words = parse_words(rest, self.escape);
        let Some(&(f0, f1, _)) = words.first() else {
            return Ok(Vec::new());
        };
        if !rest[f0..f1].contains('=') {
            let parts = go::split_re_ws(rest, 2);
            if parts.len() < 2 {
                return Err(K::MissingValue(key.as_str().to_string()));
            }
            return Ok(parts
                .into_iter()
                .map(|(o, s)| self.word(s, off + o, off + o + s.len()))
                .collect());
        }
        let mut out = Vec::with_capacity(words.len() * 2);
        for &(a, t, b) in &words {
            let w = &rest[a..t];
            let Some((k, v)) = w.split_once('=') else {
                return Err(K::MissingEquals(w.to_string()));
            };
            let eq = off + a + k.len();
            out.push(self.word(k, off + a, eq));
            out.push(self.word(v, eq + 1, off + b));
        }
        Ok(out)
    }

    /// `parseHealthConfig`: byte-wise, like BuildKit.
    fn health(&self, rest: &str, off: usize) -> Result<(Vec<Word>, bool), K> {
        let b = rest.as_bytes();
        let sep = b
            .iter()
            .position(|&c| go::is_space_byte(c))
            .unwrap_or(b.len());
        let next = b[sep..]
            .iter()
            .position(|&c| !go::is_space_byte(c))
            .map_or(b.len(), |p| sep + p);
        if sep == 0 {
            return Ok((Vec::new(), false));
        }
        let typ = String::from_utf8_lossy(&b[..sep]).into_owned();
        let cmd_text = String::from_utf8_lossy(&b[next..]);
        let (mut words, json) = self.maybe_json(&cmd_text, off + next)?;
        words.insert(0, self.word(typ, off, off + sep));
        Ok((words, json))
    }

    /// `newNodeFromLine` on `line`, which starts at `base` in the logical line.
    fn node(&self, line: &str, base: usize) -> Parsed {
        let (trimmed, t_off) = go::trim_space(line);
        let t_off = base + t_off;
        let (cmd, after) = go::split_once_re_ws(trimmed);
        let cmd_span = self.map.span(t_off, t_off + cmd.len());
        let mut flags = Vec::new();
        let mut rest: Cow<'_, str> = Cow::Borrowed("");
        let mut rest_off = t_off + trimmed.len();
        if let Some((after_off, after)) = after {
            let (args_at, fl) = extract_flags(after);
            for (raw, a, b) in fl {
                flags.push(Flag {
                    raw,
                    span: self.map.span(t_off + after_off + a, t_off + after_off + b),
                });
            }
            if let Some(at) = args_at {
                match after.get(at..) {
                    Some(raw) => {
                        let (r, r_off) = go::trim_space(raw);
                        rest_off = t_off + after_off + at + r_off;
                        rest = Cow::Borrowed(r);
                    }
                    None => {
                        let raw = String::from_utf8_lossy(&after.as_bytes()[at..]).into_owned();
                        let (r, r_off) = go::trim_space(&raw);
                        rest_off = t_off + after_off + at + r_off;
                        rest = Cow::Owned(r.to_string());
                    }
                }
            }
        }
        let kind = Keyword::from_name(cmd);
        let rest = rest.as_ref();
        let mut onbuild = None;
        let result: Result<(Vec<Word>, bool), K> = match kind {
            None => Ok((vec![self.word("", rest_off, rest_off)], false)),
            Some(Keyword::Add | Keyword::Copy | Keyword::Volume) => {
                self.maybe_json_list(rest, rest_off)
            }
            Some(Keyword::Arg) => Ok((
                parse_words(rest, self.escape)
                    .into_iter()
                    .map(|(a, t, b)| self.word(&rest[a..t], rest_off + a, rest_off + b))
                    .collect(),
                false,
            )),
            Some(Keyword::Cmd | Keyword::Entrypoint | Keyword::Run | Keyword::Shell) => {
                self.maybe_json(rest, rest_off)
            }
            Some(k @ (Keyword::Env | Keyword::Label)) => {
                self.name_val(rest, rest_off, k).map(|w| (w, false))
            }
            Some(Keyword::Expose | Keyword::From) => Ok((self.ws_delimited(rest, rest_off), false)),
            Some(Keyword::Healthcheck) => self.health(rest, rest_off),
            Some(Keyword::Maintainer | Keyword::Stopsignal | Keyword::User | Keyword::Workdir) => {
                if rest.is_empty() {
                    Ok((Vec::new(), false))
                } else {
                    Ok((
                        vec![self.word(rest, rest_off, rest_off + rest.len())],
                        false,
                    ))
                }
            }
            Some(Keyword::Onbuild) => {
                if rest.is_empty() {
                    Ok((Vec::new(), false))
                } else {
                    let mut inner = self.node(rest, rest_off);
                    inner.inst.original = rest.to_string();
                    let err = inner.error.clone();
                    onbuild = Some(Box::new(inner.inst));
                    match err {
                        Some(e) => Err(e.kind),
                        None => Ok((Vec::new(), false)),
                    }
                }
            }
        };
        let line_span = self.map.span(t_off, t_off + trimmed.len());
        let args_span = self.map.span(rest_off, rest_off + rest.len());
        let (args, json, error) = match result {
            Ok((a, j)) => (a, j, None),
            Err(kind) => {
                let span = match &kind {
                    K::MissingEquals(w) => rest.find(w.as_str()).map_or(args_span, |p| {
                        self.map.span(rest_off + p, rest_off + p + w.len())
                    }),
                    _ => args_span,
                };
                (Vec::new(), false, Some(Diagnostic::error(kind, span)))
            }
        };
        Parsed {
            inst: Instruction {
                keyword: cmd.to_string(),
                kind,
                keyword_span: cmd_span,
                flags,
                args,
                json,
                onbuild,
                heredocs: Vec::new(),
                original: String::new(),
                start_line: line_span.line,
                end_line: line_span.line,
                span: line_span,
                args_span,
            },
            error,
        }
    }
}

/// Warnings for what BuildKit's parser accepts but its build rejects or
/// silently reinterprets: unknown flags, and broken exec-form arrays.
fn semantic_warnings(inst: &Instruction, diags: &mut Vec<Diagnostic>) {
    let Some(kind) = inst.kind else { return };
    if kind != Keyword::Onbuild {
        let known = crate::diag::known_flags(kind);
        for f in &inst.flags {
            let name = f.name();
            if !known.contains(&name) {
                let mut d = Diagnostic::warning(
                    K::UnknownFlag {
                        flag: name.to_string(),
                        instruction: kind.as_str().to_string(),
                    },
                    f.span,
                );
                if let Some(s) = crate::diag::nearest(name, known) {
                    d = d.with_help(format!("did you mean `--{s}`?"));
                }
                diags.push(d);
            }
        }
    }
    let json_capable = matches!(
        kind,
        Keyword::Cmd
            | Keyword::Entrypoint
            | Keyword::Run
            | Keyword::Shell
            | Keyword::Add
            | Keyword::Copy
            | Keyword::Volume
            | Keyword::Healthcheck
    );
    let first = if kind == Keyword::Healthcheck {
        inst.args.get(1)
    } else {
        inst.args.first()
    };
    if json_capable
        && !inst.json
        && let Some(w) = first
        && w.value.starts_with('[')
    {
        let mut d = Diagnostic::warning(K::NotJsonForm(w.value.clone()), w.span);
        if w.value.contains('\'') {
            d = d.with_help("exec form needs double quotes: [\"executable\", \"arg\"]");
        }
        diags.push(d);
    }
}

fn can_contain_heredoc(inst: &Instruction) -> bool {
    let node = match (inst.kind, &inst.onbuild) {
        (Some(Keyword::Onbuild), Some(inner)) => inner,
        _ => inst,
    };
    node.kind.is_some_and(Keyword::takes_heredocs) && !node.json
}

/// Parses a Dockerfile exactly as BuildKit's parser does. Never fails and
/// never panics: problems come back as diagnostics (any [`Severity::Error`]
/// means BuildKit would reject the file), and the tree holds everything that
/// could be read.
///
/// [`Severity::Error`]: crate::Severity::Error
pub fn parse(src: &str) -> (Dockerfile, Vec<Diagnostic>) {
    let idx = LineIndex::new(src);
    let mut diags = Vec::new();
    let mut rd = Reader {
        src,
        at: 0,
        too_long: None,
    };
    let mut d = Directives {
        escape: '\\',
        done: false,
        seen: Vec::new(),
        found: Vec::new(),
    };
    let mut instructions = Vec::with_capacity(src.bytes().filter(|&b| b == b'\n').count() + 1);
    let mut segs: Vec<(usize, usize, usize, usize)> = Vec::new();
    let mut current_line = 0usize;
    while let Some((ls, le)) = rd.next() {
        let mut tok_off = ls;
        if current_line == 0 && src[ls..le].starts_with('\u{feff}') {
            tok_off += 3;
        }
        let raw = &src[tok_off..le];
        let stripped = trim_newline(raw).trim_start_matches(go::is_space);
        let s_off = tok_off + (trim_newline(raw).len() - stripped.len());
        if let Some(e) = d.check(stripped, &idx, s_off) {
            diags.push(e);
        }
        let processed = if stripped.starts_with('#') {
            ""
        } else {
            stripped
        };
        current_line += 1;
        let start_byte = s_off;
        let start_line = current_line;
        let (first, mut is_end) = trim_continuation(processed, d.escape);
        if is_end && first.is_empty() {
            continue;
        }
        let mut line = String::with_capacity(if is_end {
            first.len()
        } else {
            first.len() + 128
        });
        line.push_str(first);
        segs.clear();
        segs.push((0usize, s_off, current_line, ls));
        let mut last_end = le;
        let mut empty_cont = None;
        while !is_end {
            let Some((cs, ce)) = rd.next() else { break };
            last_end = ce;
            let raw = &src[cs..ce];
            let p = trim_newline(raw);
            if let Some(e) = d.check(p, &idx, cs) {
                diags.push(e);
            }
            current_line += 1;
            if is_comment(raw) {
                continue;
            }
            if p.trim_start_matches(go::is_space).is_empty() {
                empty_cont.get_or_insert((cs, current_line));
                continue;
            }
            let (cont, end) = trim_continuation(p, d.escape);
            is_end = end;
            segs.push((line.len(), cs, current_line, cs));
            line.push_str(cont);
        }
        let map = LineMap {
            segs: &segs,
            idx: &idx,
        };
        let ctx = Ctx {
            escape: d.escape,
            map: &map,
        };
        let Parsed { mut inst, error } = ctx.node(&line, 0);
        inst.original = line;
        let line = &inst.original;
        if let Some((cs, cl)) = empty_cont {
            diags.push(
                Diagnostic::warning(K::EmptyContinuationLine, idx.span_on(cs, cs, cl, cs))
                    .with_help(
                        "remove the empty line; BuildKit warns that it will become an error",
                    ),
            );
        }
        let mut fatal = error.is_some();
        if let Some(e) = error {
            diags.push(e);
        }
        for unknown in [Some(&inst), inst.onbuild.as_deref()].into_iter().flatten() {
            semantic_warnings(unknown, &mut diags);
            if unknown.kind.is_none() && !unknown.keyword.is_empty() {
                let mut diag = Diagnostic::warning(
                    K::UnknownInstruction(unknown.keyword.clone()),
                    unknown.keyword_span,
                );
                if let Some(s) = suggest_instruction(&unknown.keyword) {
                    diag = diag.with_help(format!("did you mean `{s}`?"));
                }
                diags.push(diag);
            }
        }
        if can_contain_heredoc(&inst) && line.contains("<<") {
            match heredoc_lex::markers(line) {
                Err(_) => {
                    diags.push(Diagnostic::error(
                        K::BadHeredocDelimiter(line.to_string()),
                        inst.args_span,
                    ));
                    fatal = true;
                }
                Ok(markers) => {
                    for m in markers {
                        let body_start = rd.peek_start().unwrap_or(src.len());
                        let body_line = current_line + 1;
                        let mut content = String::new();
                        let mut terminated = false;
                        while let Some((hs, he)) = rd.next() {
                            current_line += 1;
                            last_end = he;
                            let raw = &src[hs..he];
                            let mut cand = trim_newline(raw);
                            if m.chomp {
                                cand = cand.trim_start_matches('\t');
                            }
                            if cand == m.name {
                                terminated = true;
                                break;
                            }
                            content.push_str(raw);
                        }
                        if !terminated {
                            diags.push(
                                Diagnostic::error(
                                    K::UnterminatedHeredoc(m.name.clone()),
                                    inst.args_span,
                                )
                                .with_help(format!(
                                    "end the here-document with a line that is exactly `{}`",
                                    m.name
                                )),
                            );
                            fatal = true;
                        }
                        inst.heredocs.push(Heredoc {
                            name: m.name,
                            content,
                            chomp: m.chomp,
                            expand: m.expand,
                            fd: m.fd,
                            span: idx.span_on(
                                body_start.min(last_end),
                                last_end,
                                body_line,
                                body_start.min(last_end),
                            ),
                        });
                        if !terminated {
                            break;
                        }
                    }
                }
            }
        }
        let _ = fatal;
        let end_byte = last_end
            - (src[..last_end].len() - trim_newline(&src[..last_end]).len())
                .min(last_end - start_byte);
        inst.start_line = start_line;
        inst.end_line = current_line;
        inst.span = idx.span_on(start_byte, end_byte.max(start_byte), start_line, ls);
        instructions.push(inst);
    }
    if let Some((at, end)) = rd.too_long {
        diags.push(Diagnostic::error(K::LineTooLong, idx.span(at, end)));
    }
    if instructions.is_empty() && rd.too_long.is_none() {
        let end = src.len();
        diags.push(Diagnostic::error(K::NoInstructions, idx.span(end, end)));
    }
    (
        Dockerfile {
            directives: d.found,
            escape: d.escape,
            instructions,
        },
        diags,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directive_regex() {
        assert_eq!(match_directive("# escape=`"), Some(("escape", "`")));
        assert_eq!(match_directive("#escape = \\ \t"), Some(("escape", "\\")));
        assert_eq!(match_directive("# escape= "), Some(("escape", " ")));
        assert_eq!(match_directive("# escape="), None);
        assert_eq!(match_directive("# 1x=y"), None);
        assert_eq!(match_directive("#a b=c"), None);
    }

    #[test]
    fn continuation() {
        assert_eq!(trim_continuation("RUN a \\", '\\'), ("RUN a ", false));
        assert_eq!(trim_continuation("RUN a \\ \t", '\\'), ("RUN a ", false));
        assert_eq!(trim_continuation("RUN a \\\\", '\\'), ("RUN a \\\\", true));
        assert_eq!(trim_continuation("\\", '\\'), ("", false));
        assert_eq!(trim_continuation("RUN a `", '`'), ("RUN a ", false));
    }

    #[test]
    fn flags_bytewise() {
        let (at, f) = extract_flags("--from=\"a b\" --link x");
        assert_eq!(
            f.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(),
            ["--from=a b", "--link"]
        );
        assert_eq!(at, Some(20));
        let (at, f) = extract_flags("--x -- y");
        assert_eq!((at, f.len()), (Some(6), 1));
        let (_, f) = extract_flags("--c=é");
        assert_eq!(f[0].0, "--c=\u{c3}\u{a9}");
    }

    #[test]
    fn words_keep_quotes() {
        let src = r#"a="b c" d\ e 'f\' g\"#;
        let w: Vec<&str> = parse_words(src, '\\')
            .into_iter()
            .map(|x| &src[x.0..x.1])
            .collect();
        assert_eq!(w, [r#"a="b c""#, r"d\ e", r"'f\'", "g"]);
    }
}

#[cfg(test)]
mod warning_tests {
    use crate::{DiagnosticKind as K, Severity};

    fn warnings(src: &str) -> Vec<(K, Option<String>)> {
        let (_, d) = crate::parse(src);
        assert!(d.iter().all(|d| d.severity == Severity::Warning));
        d.into_iter().map(|d| (d.kind, d.help)).collect()
    }

    #[test]
    fn unknown_flags_and_broken_json() {
        let w = warnings("FROM a\nCOPY --chwon=1 a b\n");
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].1.as_deref(), Some("did you mean `--chown`?"));
        assert!(warnings("FROM --platform=x a\nRUN --mount=type=cache,target=/x y\n").is_empty());
        let w = warnings("FROM a\nCMD ['a', 'b']\n");
        assert!(matches!(w[0].0, K::NotJsonForm(_)), "{w:?}");
        assert!(w[0].1.as_deref().unwrap().contains("double quotes"));
        assert!(warnings("FROM a\nCMD [\"a\"]\nHEALTHCHECK CMD [\"a\"]\n").is_empty());
        let w = warnings("FROM a\nRUNN x\n");
        assert_eq!(w[0].1.as_deref(), Some("did you mean `RUN`?"));
    }
}
