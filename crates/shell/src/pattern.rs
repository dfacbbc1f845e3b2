//! The glob patterns of `${VAR#pat}`, `${VAR%pat}` and `${VAR/pat/repl}`.
//!
//! BuildKit turns such a pattern into a Go regular expression (`*` becomes
//! `.*` or `.*?`, `?` becomes `.`, everything else is literal, `\` escapes only
//! `*`, `?` and `\`) and runs it with Go's leftmost-first semantics. This module
//! implements exactly that language without a regex engine: a pattern is a list
//! of [`Token`]s and matching is a dynamic program over (token, position) that
//! yields the match Go's backtracking priority order would pick, in
//! O(tokens × chars) time, so hostile input cannot blow up.
//!
//! Go's `.` does not match `\n`; neither do `*` and `?` here.

use crate::ShellErrorKind;
use crate::unicode::{is_digit, is_letter};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token {
    Lit(char),
    /// `?`: any char but `\n`.
    Any,
    /// `*`: any run of non-`\n` chars.
    Star,
}

/// Strips one leading U+FEFF, as Go's `text/scanner` does on its first read.
pub(crate) fn skip_bom(chars: &[char]) -> &[char] {
    match chars.first() {
        Some('\u{feff}') => &chars[1..],
        _ => chars,
    }
}

/// Compiles a shell pattern (already expanded, escapes kept raw) into tokens.
pub(crate) fn compile(pattern: &str) -> Result<Vec<Token>, ShellErrorKind> {
    let all: Vec<char> = pattern.chars().collect();
    let chars = skip_bom(&all);
    let mut out = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => out.push(Token::Star),
            '?' => out.push(Token::Any),
            '\\' => {
                // `\}` and `\/` were needed to write the pattern inside `${}`;
                // the backslash is not part of the pattern.
                if matches!(chars.get(i), Some('}') | Some('/')) {
                    continue;
                }
                let next = chars.get(i).copied();
                i += 1;
                match next {
                    Some(n @ ('*' | '?' | '\\')) => out.push(Token::Lit(n)),
                    other => {
                        return Err(ShellErrorKind::InvalidPattern {
                            pattern: pattern.to_owned(),
                            // Go prints the scanner's EOF (-1) with %c as U+FFFD.
                            escaped: other.unwrap_or('\u{fffd}'),
                        });
                    }
                }
            }
            _ => out.push(Token::Lit(c)),
        }
    }
    Ok(out)
}

/// Reverses a pattern, keeping each `\x` pair in front of its char
/// (`a\*c` → `c\*a`), so a suffix search becomes a prefix search.
pub(crate) fn reverse_pattern(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut units: Vec<&[char]> = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\\' && i + 1 < chars.len() {
            units.push(&chars[i..i + 2]);
            i += 2;
        } else {
            units.push(&chars[i..i + 1]);
            i += 1;
        }
    }
    units.iter().rev().flat_map(|u| u.iter()).collect()
}

/// For every start position `s`, the end of the match Go would report for a
/// match beginning exactly at `s` (None: no match starts there).
fn match_ends(tokens: &[Token], text: &[char], greedy: bool) -> Vec<Option<usize>> {
    let n = text.len();
    // next[s] for token index k+1; starts as the row for "end of pattern".
    let mut next: Vec<Option<usize>> = (0..=n).map(Some).collect();
    let mut cur: Vec<Option<usize>> = vec![None; n + 1];
    for tok in tokens.iter().rev() {
        match *tok {
            Token::Lit(c) => {
                for s in 0..=n {
                    cur[s] = if s < n && text[s] == c {
                        next[s + 1]
                    } else {
                        None
                    };
                }
            }
            Token::Any => {
                for s in 0..=n {
                    cur[s] = if s < n && text[s] != '\n' {
                        next[s + 1]
                    } else {
                        None
                    };
                }
            }
            Token::Star => {
                // A star at s may consume text[s..e] for any e up to the next
                // '\n'. Greedy takes the largest e with a match, lazy the
                // smallest; both are one sweep per newline-free run.
                if greedy {
                    // Sweep right to left; `best` is the largest e in
                    // [s, run_end] with next[e] matching.
                    let mut best: Option<usize> = None;
                    for s in (0..=n).rev() {
                        if s < n && text[s] == '\n' {
                            // e may be s itself but nothing past the newline.
                            best = None;
                        }
                        if best.is_none() && next[s].is_some() {
                            best = Some(s);
                        }
                        cur[s] = best.and_then(|e| next[e]);
                    }
                } else {
                    // The smallest e >= s in the same run with next[e] set.
                    let mut best: Option<usize> = None;
                    for s in (0..=n).rev() {
                        if s < n && text[s] == '\n' {
                            best = None;
                        }
                        if next[s].is_some() {
                            best = Some(s);
                        }
                        cur[s] = best.and_then(|e| next[e]);
                    }
                }
            }
        }
        std::mem::swap(&mut cur, &mut next);
    }
    next
}

/// `^pattern` against `text`: the end of Go's match, if any.
pub(crate) fn match_prefix(tokens: &[Token], text: &[char], greedy: bool) -> Option<usize> {
    // Only start 0 matters; computing all starts keeps one code path.
    match_ends(tokens, text, greedy)[0]
}

/// Go's `FindStringIndex` for an unanchored greedy pattern, from `from` on.
fn find_from(ends: &[Option<usize>], from: usize) -> Option<(usize, usize)> {
    (from..ends.len()).find_map(|s| ends[s].map(|e| (s, e)))
}

/// `${VAR/pat/repl}`: replace the first match, literally.
pub(crate) fn replace_first(tokens: &[Token], value: &str, replacement: &str) -> String {
    let text: Vec<char> = value.chars().collect();
    let ends = match_ends(tokens, &text, true);
    match find_from(&ends, 0) {
        Some((s, e)) => {
            let mut out: String = text[..s].iter().collect();
            out.push_str(replacement);
            out.extend(&text[e..]);
            out
        }
        None => value.to_owned(),
    }
}

/// `${VAR//pat/repl}`: Go's `Regexp.ReplaceAllString`, including its rule for
/// empty matches next to a previous match and its `$` template expansion.
pub(crate) fn replace_all(tokens: &[Token], value: &str, template: &str) -> String {
    let text: Vec<char> = value.chars().collect();
    let ends = match_ends(tokens, &text, true);
    let n = text.len();
    let mut out = String::with_capacity(value.len());
    let mut last_end = 0usize;
    let mut search = 0usize;
    while search <= n {
        let Some((s, e)) = find_from(&ends, search) else {
            break;
        };
        out.extend(&text[last_end..s]);
        if e > last_end || s == 0 {
            expand_template(&mut out, template, &text[s..e]);
        }
        last_end = e;
        // Advance past this match, always by at least one char.
        let width = usize::from(search < n);
        if search + width > e {
            search += width;
        } else if search + 1 > e {
            search += 1;
        } else {
            search = e;
        }
    }
    out.extend(&text[last_end..]);
    out
}

/// Go's `Regexp.Expand` for a regexp without capture groups: `$0`/`${0}` is
/// the match, `$$` a dollar, other names and numbers expand to nothing, and a
/// `$` that starts no valid reference stays literal.
fn expand_template(out: &mut String, template: &str, matched: &[char]) {
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        }
        match extract_ref(rest) {
            Some((name, after)) => {
                if name == "0" {
                    out.extend(matched);
                }
                rest = after;
            }
            None => out.push('$'),
        }
    }
    out.push_str(rest);
}

/// Parses `name` or `{name}` after a `$` as Go's `extract` does.
fn extract_ref(s: &str) -> Option<(&str, &str)> {
    let (braced, body) = match s.strip_prefix('{') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let len: usize = body
        .chars()
        .take_while(|&c| is_letter(c) || is_digit(c) || c == '_')
        .map(char::len_utf8)
        .sum();
    if len == 0 {
        return None;
    }
    let name = &body[..len];
    let mut after = &body[len..];
    if braced {
        after = after.strip_prefix('}')?;
    }
    Some((name, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(p: &str) -> Vec<Token> {
        compile(p).unwrap()
    }

    fn chars(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    #[test]
    fn prefix_shortest_and_longest() {
        let t = chars("xxyy");
        assert_eq!(match_prefix(&toks("*x*y"), &t, false), Some(3));
        assert_eq!(match_prefix(&toks("*x*y"), &t, true), Some(4));
        assert_eq!(match_prefix(&toks("*"), &t, false), Some(0));
        assert_eq!(match_prefix(&toks("*"), &t, true), Some(4));
        assert_eq!(match_prefix(&toks("y"), &t, true), None);
        // '.' does not cross newlines in Go
        assert_eq!(match_prefix(&toks("*"), &chars("ab\ncd"), true), Some(2));
        assert_eq!(match_prefix(&toks("?"), &chars("\n"), true), None);
    }

    #[test]
    fn escapes() {
        assert_eq!(
            toks(r"\*\?\\"),
            vec![Token::Lit('*'), Token::Lit('?'), Token::Lit('\\')]
        );
        assert_eq!(toks(r"\}\/"), vec![Token::Lit('}'), Token::Lit('/')]);
        assert!(compile(r"\x").is_err());
        assert!(compile("\\").is_err());
        assert_eq!(reverse_pattern(r"a\*c"), r"c\*a");
        assert_eq!(reverse_pattern(r"\\\ab"), r"b\a\\");
        assert_eq!(reverse_pattern(r"ab\"), r"\ba");
    }

    #[test]
    fn replace_all_like_go() {
        assert_eq!(replace_all(&toks(""), "xxyy", "ww"), "wwxwwxwwywwyww");
        assert_eq!(replace_all(&toks("x*"), "axxb", "-"), "a-");
        assert_eq!(replace_all(&toks("a"), "banana", "[$0]"), "b[a]n[a]n[a]");
        assert_eq!(replace_all(&toks("a"), "ab", "${0}$$$1$x$"), "a$$b");
        assert_eq!(replace_all(&toks("a"), "ab", "${0"), "${0b");
        assert_eq!(replace_first(&toks("a"), "banana", "$0"), "b$0nana");
    }
}
