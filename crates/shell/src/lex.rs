//! The word processor: one pass over the input, mirroring the control flow of
//! BuildKit's `shellWord` so that results, word boundaries, the variables
//! looked up and the error raised (and where) are the same.

use std::collections::BTreeSet;

use crate::pattern::{self, Token};
use crate::unicode::{is_digit, is_letter, is_space};
use crate::{Env, Expanded, LexOptions, ShellErrorKind};

/// Word splitting state (BuildKit's `wordsStruct`).
#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if is_space(c) && self.in_word {
            if !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else if !is_space(c) {
            self.add_raw_char(c);
        }
    }

    fn add_raw_char(&mut self, c: char) {
        self.word.push(c);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        for c in s.chars() {
            self.add_char(c);
        }
    }

    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(std::mem::take(&mut self.word));
        }
        self.words
    }
}

pub(crate) struct Processor<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    opts: LexOptions,
    raw_escapes: bool,
    depth: usize,
    env: &'a dyn Env,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

/// What stops a nested word: BuildKit passes a rune, EOF meaning "none".
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    Eof,
    Char(char),
}

impl<'a> Processor<'a> {
    pub(crate) fn new(input: &str, escape: char, opts: LexOptions, env: &'a dyn Env) -> Self {
        let all: Vec<char> = input.chars().collect();
        let chars = pattern::skip_bom(&all).to_vec();
        Processor {
            chars,
            pos: 0,
            escape,
            opts,
            raw_escapes: opts.raw_escapes,
            depth: 0,
            env,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
        }
    }

    pub(crate) fn run(mut self) -> Result<Expanded, ShellErrorKind> {
        let raw = self.raw_escapes;
        let (word, words) = self.process_stop_on(Stop::Eof, raw)?;
        Ok(Expanded {
            word,
            words,
            matched: self.matched,
            unmatched: self.unmatched,
        })
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn at_eof(&self) -> bool {
        self.pos >= self.chars.len()
    }

    fn lookup(&mut self, name: &str) -> Option<String> {
        match self.env.lookup(name) {
            Some(v) => {
                self.matched.insert(name.to_owned());
                Some(v.to_owned())
            }
            None => {
                self.unmatched.insert(name.to_owned());
                None
            }
        }
    }

    fn process_stop_on(
        &mut self,
        stop: Stop,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), ShellErrorKind> {
        // Go's stacks grow; ours do not. Hostile input must not be able to
        // overflow the stack, so nesting is capped far above any real use.
        if self.depth >= crate::MAX_NESTING {
            return Err(ShellErrorKind::TooDeep(crate::MAX_NESTING));
        }
        self.depth += 1;
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let r = self.process_stop_on_inner(stop);
        self.raw_escapes = saved;
        self.depth -= 1;
        r
    }

    fn process_stop_on_inner(
        &mut self,
        stop: Stop,
    ) -> Result<(String, Vec<String>), ShellErrorKind> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(c) = self.peek() {
            if stop == Stop::Char(c) {
                self.pos += 1;
                return Ok((result, words.finish()));
            }
            let quotes = !self.opts.skip_process_quotes;
            if c == '$' {
                let v = self.process_dollar()?;
                result.push_str(&v);
                words.add_string(&v);
            } else if quotes && c == '\'' {
                let v = self.process_single_quote()?;
                result.push_str(&v);
                words.add_raw_string(&v);
            } else if quotes && c == '"' {
                let v = self.process_double_quote()?;
                result.push_str(&v);
                words.add_raw_string(&v);
            } else {
                self.pos += 1;
                if c == self.escape {
                    if self.raw_escapes {
                        words.add_raw_char(c);
                        result.push(c);
                    }
                    // The escape token escapes the next char; at the end of
                    // the input it is dropped.
                    let Some(n) = self.next() else { break };
                    words.add_raw_char(n);
                    result.push(n);
                } else {
                    words.add_char(c);
                    result.push(c);
                }
            }
        }
        if let Stop::Char(s) = stop {
            return Err(ShellErrorKind::UnexpectedEnd(s));
        }
        Ok((result, words.finish()))
    }

    fn process_single_quote(&mut self) -> Result<String, ShellErrorKind> {
        // Everything up to the next ' is literal; a ' cannot be escaped.
        let mut result = String::new();
        let open = self.next();
        if self.opts.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.next() {
                None => return Err(ShellErrorKind::UnterminatedSingleQuote),
                Some('\'') => {
                    if self.opts.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, ShellErrorKind> {
        // Literal except `$`; the escape token escapes only `"`, `$` and
        // itself, and is kept before any other char.
        let mut result = String::new();
        let open = self.next();
        if self.opts.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.peek() {
                None => return Err(ShellErrorKind::UnterminatedDoubleQuote),
                Some('"') => {
                    self.pos += 1;
                    if self.opts.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let v = self.process_dollar()?;
                    result.push_str(&v);
                }
                Some(c) => {
                    self.pos += 1;
                    let mut out = c;
                    if c == self.escape {
                        if self.raw_escapes {
                            result.push(c);
                        }
                        match self.peek() {
                            // An escape at the very end is dropped (and the
                            // quote is then unterminated).
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.escape => {
                                self.pos += 1;
                                out = n;
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(out);
                }
            }
        }
    }

    fn process_dollar(&mut self) -> Result<String, ShellErrorKind> {
        self.pos += 1; // the '$'
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".to_owned());
            }
            return Ok(match self.lookup(&name) {
                Some(v) => v,
                None if self.opts.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.pos += 1; // the '{'
        match self.peek() {
            None => return Err(ShellErrorKind::MissingBrace),
            Some('{' | '}' | ':') => return Err(ShellErrorKind::BadSubstitution),
            Some(_) => {}
        }
        let name = self.process_name();
        // Go's scanner yields EOF (-1) here; string(rune(-1)) is U+FFFD.
        let mut ch = self.next().unwrap_or('\u{fffd}');
        let mut modifier = ch.to_string();
        let mut null_is_unset = false;
        match ch {
            '}' => Ok(match self.lookup(&name) {
                Some(v) => v,
                None if self.opts.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                if ch == ':' {
                    null_is_unset = true;
                    ch = self.next().unwrap_or('\u{fffd}');
                    modifier.push(ch);
                }
                let raw = ch == '#' || ch == '%';
                let word = self.nested(Stop::Char('}'), raw, ShellErrorKind::MissingBrace)?;
                let value = self.lookup(&name);
                let Some(value) = value else {
                    if self.opts.skip_unset_env {
                        return Ok(format!("${{{name}{modifier}{word}}}"));
                    }
                    return self.apply_modifier(ch, &name, &modifier, None, word, null_is_unset);
                };
                self.apply_modifier(ch, &name, &modifier, Some(value), word, null_is_unset)
            }
            '/' => {
                let all = self.peek() == Some('/');
                if all {
                    self.pos += 1;
                }
                let pat = self.nested(Stop::Char('/'), true, ShellErrorKind::MissingSlash)?;
                let repl = self.nested(Stop::Char('}'), true, ShellErrorKind::MissingBrace)?;
                let value = self.lookup(&name);
                if value.is_none() && self.opts.skip_unset_env {
                    return Ok(format!("${{{name}/{pat}/{repl}}}"));
                }
                let value = value.unwrap_or_default();
                let tokens = pattern::compile(&pat)?;
                Ok(if all {
                    pattern::replace_all(&tokens, &value, &repl)
                } else {
                    pattern::replace_first(&tokens, &value, &repl)
                })
            }
            _ => Err(ShellErrorKind::UnsupportedModifier(modifier)),
        }
    }

    /// A nested word up to `stop`; an error that leaves the input exhausted
    /// is reported as `at_eof` (BuildKit's "missing '}'" rewrite).
    fn nested(
        &mut self,
        stop: Stop,
        raw: bool,
        at_eof: ShellErrorKind,
    ) -> Result<String, ShellErrorKind> {
        match self.process_stop_on(stop, raw) {
            Ok((w, _)) => Ok(w),
            Err(_) if self.at_eof() => Err(at_eof),
            Err(e) => Err(e),
        }
    }

    fn apply_modifier(
        &mut self,
        ch: char,
        name: &str,
        modifier: &str,
        value: Option<String>,
        word: String,
        null_is_unset: bool,
    ) -> Result<String, ShellErrorKind> {
        let empty = value.as_deref().is_some_and(str::is_empty);
        let unset_or_null = value.is_none() || (null_is_unset && empty);
        match ch {
            '-' => Ok(if unset_or_null {
                word
            } else {
                value.unwrap_or_default()
            }),
            '+' => Ok(if unset_or_null { String::new() } else { word }),
            '?' => {
                if value.is_none() {
                    let message = if word.is_empty() {
                        "is not allowed to be unset".to_owned()
                    } else {
                        word
                    };
                    return Err(ShellErrorKind::Required {
                        name: name.to_owned(),
                        message,
                    });
                }
                if null_is_unset && empty {
                    let message = if word.is_empty() {
                        "is not allowed to be empty".to_owned()
                    } else {
                        word
                    };
                    return Err(ShellErrorKind::Required {
                        name: name.to_owned(),
                        message,
                    });
                }
                Ok(value.unwrap_or_default())
            }
            '#' | '%' => {
                // `#`/`%` take the shortest match, `##`/`%%` the longest.
                let (greedy, pat) = match word.strip_prefix(ch) {
                    Some(rest) => (true, rest.to_owned()),
                    None => (false, word),
                };
                let value = value.unwrap_or_default();
                if ch == '#' {
                    trim_prefix(&pat, &value, greedy)
                } else {
                    trim_suffix(&pat, &value, greedy)
                }
            }
            _ => Err(ShellErrorKind::UnsupportedModifier(modifier.to_owned())),
        }
    }

    fn process_name(&mut self) -> String {
        // A name is letters, digits and '_'; a leading digit reads only
        // digits; a leading special parameter is the whole name.
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && is_digit(c) {
                while let Some(d) = self.peek().filter(|&d| is_digit(d)) {
                    name.push(d);
                    self.pos += 1;
                }
                return name;
            }
            if name.is_empty() && is_special_param(c) {
                self.pos += 1;
                return c.to_string();
            }
            if !is_letter(c) && !is_digit(c) && c != '_' {
                break;
            }
            name.push(c);
            self.pos += 1;
        }
        name
    }
}

fn is_special_param(c: char) -> bool {
    matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0')
}

fn trim_prefix(pat: &str, value: &str, greedy: bool) -> Result<String, ShellErrorKind> {
    let tokens: Vec<Token> = pattern::compile(pat)?;
    let text: Vec<char> = value.chars().collect();
    Ok(match pattern::match_prefix(&tokens, &text, greedy) {
        Some(end) => text[end..].iter().collect(),
        None => value.to_owned(),
    })
}

fn trim_suffix(pat: &str, value: &str, greedy: bool) -> Result<String, ShellErrorKind> {
    // A shortest rightmost match is a shortest leftmost match of the
    // reversed pattern in the reversed value.
    let rpat = pattern::reverse_pattern(pat);
    let rvalue: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&rpat, &rvalue, greedy)?;
    Ok(trimmed.chars().rev().collect())
}
