//! A small matcher for the Go regular expressions that moby/patternmatcher
//! generates from `.dockerignore` patterns.
//!
//! patternmatcher translates a pattern into a Go regexp *string* and lets
//! Go's `regexp` parse it; user text inside `[...]` and after `\` reaches that
//! parser nearly unchanged, so odd patterns (`[*]`, `[[:alpha:]]`, `\d`,
//! `a^b`) mean whatever Go's regexp syntax makes of them. To agree with Docker
//! on those too, this module parses the generated string with Go's rules
//! (Perl flags, `OneLine`, `ClassNL`: `^`/`$` anchor the text, `.` excludes
//! `\n`, negated classes include it) and answers "does any match exist" with a
//! Thompson NFA simulation: linear in the path length, no backtracking.
//!
//! Deliberately unsupported (reported as [`RegexError::Unsupported`]): Unicode
//! classes `\pN`/`\p{..}`, `\Q...\E`, flag groups `(?i)`, counted repetition
//! (patternmatcher escapes `{`, so none of these arise from ordinary patterns).

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegexError {
    /// What Go's regexp would reject (its messages, without the `error
    /// parsing regexp: ` prefix).
    #[error("{0}")]
    Invalid(String),
    /// Valid in Go but outside what berth implements.
    #[error("unsupported regexp syntax: {0}")]
    Unsupported(String),
}

#[derive(Debug, Clone)]
enum ClassItem {
    Range(char, char),
    /// A Perl or POSIX class inside a class (`[\d]`, `[[:alpha:]]`).
    Ranges(Vec<(char, char)>),
    /// A negated Perl or POSIX class inside a class (`[\D]`, `[[:^alpha:]]`).
    NotRanges(Vec<(char, char)>),
}

#[derive(Debug, Clone)]
struct Class {
    items: Vec<ClassItem>,
    negated: bool,
}

impl Class {
    fn contains(&self, c: char) -> bool {
        let hit = self.items.iter().any(|it| match it {
            ClassItem::Range(lo, hi) => *lo <= c && c <= *hi,
            ClassItem::Ranges(rs) => rs.iter().any(|(lo, hi)| *lo <= c && c <= *hi),
            ClassItem::NotRanges(rs) => !rs.iter().any(|(lo, hi)| *lo <= c && c <= *hi),
        });
        hit != self.negated
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Assert {
    BeginText,
    EndText,
    WordBoundary,
    NotWordBoundary,
}

#[derive(Debug, Clone)]
enum Node {
    Lit(char),
    AnyNotNl,
    Class(Class),
    Assert(Assert),
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    Star(Box<Node>),
    Plus(Box<Node>),
    Quest(Box<Node>),
    Empty,
}

struct Parser<'a> {
    s: &'a [char],
    i: usize,
}

fn invalid(msg: &str, arg: impl AsRef<str>) -> RegexError {
    RegexError::Invalid(format!("{msg}: `{}`", arg.as_ref()))
}

const DIGIT: &[(char, char)] = &[('0', '9')];
const SPACE: &[(char, char)] = &[('\t', '\n'), ('\u{c}', '\r'), (' ', ' ')];
const WORD: &[(char, char)] = &[('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')];

fn posix_class(name: &str) -> Option<&'static [(char, char)]> {
    Some(match name {
        "alnum" => &[('0', '9'), ('A', 'Z'), ('a', 'z')],
        "alpha" => &[('A', 'Z'), ('a', 'z')],
        "ascii" => &[('\0', '\u{7f}')],
        "blank" => &[('\t', '\t'), (' ', ' ')],
        "cntrl" => &[('\0', '\u{1f}'), ('\u{7f}', '\u{7f}')],
        "digit" => DIGIT,
        "graph" => &[('!', '~')],
        "lower" => &[('a', 'z')],
        "print" => &[(' ', '~')],
        "punct" => &[('!', '/'), (':', '@'), ('[', '`'), ('{', '~')],
        "space" => &[('\t', '\r'), (' ', ' ')],
        "upper" => &[('A', 'Z')],
        "word" => WORD,
        "xdigit" => &[('0', '9'), ('A', 'F'), ('a', 'f')],
        _ => return None,
    })
}

fn perl_class(c: char) -> Option<(&'static [(char, char)], bool)> {
    Some(match c {
        'd' => (DIGIT, false),
        'D' => (DIGIT, true),
        's' => (SPACE, false),
        'S' => (SPACE, true),
        'w' => (WORD, false),
        'W' => (WORD, true),
        _ => return None,
    })
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }

    fn rest(&self) -> String {
        self.s[self.i..].iter().collect()
    }

    /// Go's `parseEscape` for an ordinary escape; `self.i` is at the `\`.
    fn escape_char(&mut self) -> Result<char, RegexError> {
        let start = self.i;
        self.i += 1;
        let Some(c) = self.peek() else {
            return Err(RegexError::Invalid(
                "trailing backslash at end of expression: ``".into(),
            ));
        };
        self.i += 1;
        if c.is_ascii() && !c.is_ascii_alphanumeric() {
            return Ok(c);
        }
        let text = |p: &Self| p.s[start..p.i].iter().collect::<String>();
        match c {
            '1'..='7' if !matches!(self.peek(), Some('0'..='7')) => {
                Err(invalid("invalid escape sequence", text(self)))
            }
            '0'..='7' => {
                let mut r = c as u32 - '0' as u32;
                for _ in 1..3 {
                    match self.peek() {
                        Some(d @ '0'..='7') => {
                            r = r * 8 + (d as u32 - '0' as u32);
                            self.i += 1;
                        }
                        _ => break,
                    }
                }
                Ok(char::from_u32(r).unwrap_or('\u{fffd}'))
            }
            'x' => Err(RegexError::Unsupported(format!(
                "hex escape in {}",
                self.rest()
            ))),
            'a' => Ok('\u{7}'),
            'f' => Ok('\u{c}'),
            'n' => Ok('\n'),
            'r' => Ok('\r'),
            't' => Ok('\t'),
            'v' => Ok('\u{b}'),
            _ => Err(invalid("invalid escape sequence", text(self))),
        }
    }

    fn parse_class(&mut self) -> Result<Node, RegexError> {
        let start = self.i;
        self.i += 1; // [
        let mut class = Class {
            items: Vec::new(),
            negated: false,
        };
        if self.peek() == Some('^') {
            class.negated = true;
            self.i += 1;
        }
        let mut first = true;
        loop {
            let Some(c) = self.peek() else {
                let text: String = self.s[start..].iter().collect();
                return Err(invalid("missing closing ]", text));
            };
            if c == ']' && !first {
                self.i += 1;
                break;
            }
            first = false;
            // POSIX [:name:]: Go searches for ":]" anywhere in the rest.
            if c == '[' && self.s.get(self.i + 1) == Some(&':') {
                let rest = &self.s[self.i + 2..];
                if let Some(k) = rest.windows(2).position(|w| w == [':', ']']) {
                    let name: String = rest[..k].iter().collect();
                    let full = format!("[:{name}:]");
                    let (neg, bare) = match name.strip_prefix('^') {
                        Some(b) => (true, b),
                        None => (false, name.as_str()),
                    };
                    let ranges = posix_class(bare)
                        .ok_or_else(|| invalid("invalid character class range", &full))?;
                    class.items.push(if neg {
                        ClassItem::NotRanges(ranges.to_vec())
                    } else {
                        ClassItem::Ranges(ranges.to_vec())
                    });
                    self.i += 2 + k + 2;
                    continue;
                }
            }
            if c == '\\' {
                match self.s.get(self.i + 1) {
                    Some('p' | 'P') => return Err(RegexError::Unsupported("\\p classes".into())),
                    Some(&p) if perl_class(p).is_some() => {
                        let (ranges, neg) = perl_class(p).unwrap_or((DIGIT, false));
                        class.items.push(if neg {
                            ClassItem::NotRanges(ranges.to_vec())
                        } else {
                            ClassItem::Ranges(ranges.to_vec())
                        });
                        self.i += 2;
                        continue;
                    }
                    _ => {}
                }
            }
            let range_start = self.i;
            let lo = self.class_char(start)?;
            let mut hi = lo;
            if self.peek() == Some('-') && self.s.get(self.i + 1).is_some_and(|&n| n != ']') {
                self.i += 1;
                hi = self.class_char(start)?;
                if hi < lo {
                    let text: String = self.s[range_start..self.i].iter().collect();
                    return Err(invalid("invalid character class range", text));
                }
            }
            class.items.push(ClassItem::Range(lo, hi));
        }
        Ok(Node::Class(class))
    }

    fn class_char(&mut self, class_start: usize) -> Result<char, RegexError> {
        match self.peek() {
            None => {
                let text: String = self.s[class_start..].iter().collect();
                Err(invalid("missing closing ]", text))
            }
            Some('\\') => self.escape_char(),
            Some(c) => {
                self.i += 1;
                Ok(c)
            }
        }
    }

    /// Parses an alternation up to `)` or the end.
    fn parse_alt(&mut self, depth: usize) -> Result<Node, RegexError> {
        let mut alts = vec![self.parse_concat(depth)?];
        while self.peek() == Some('|') {
            self.i += 1;
            alts.push(self.parse_concat(depth)?);
        }
        Ok(if alts.len() == 1 {
            alts.pop().unwrap_or(Node::Empty)
        } else {
            Node::Alt(alts)
        })
    }

    fn parse_concat(&mut self, depth: usize) -> Result<Node, RegexError> {
        let mut items: Vec<Node> = Vec::new();
        // Whether the last item is a repetition (Go rejects `a**`).
        let mut last_repeat = false;
        while let Some(c) = self.peek() {
            match c {
                '|' => break,
                ')' => {
                    if depth == 0 {
                        return Err(invalid(
                            "unexpected )",
                            self.s[..].iter().collect::<String>(),
                        ));
                    }
                    break;
                }
                '*' | '+' | '?' => {
                    let op_start = self.i;
                    self.i += 1;
                    if self.peek() == Some('?') {
                        self.i += 1; // non-greedy: same language
                    }
                    let op: String = self.s[op_start..self.i].iter().collect();
                    if last_repeat {
                        return Err(invalid("invalid nested repetition operator", op));
                    }
                    let Some(prev) = items.pop() else {
                        return Err(invalid("missing argument to repetition operator", op));
                    };
                    items.push(match c {
                        '*' => Node::Star(Box::new(prev)),
                        '+' => Node::Plus(Box::new(prev)),
                        _ => Node::Quest(Box::new(prev)),
                    });
                    last_repeat = true;
                    continue;
                }
                '{' => return Err(RegexError::Unsupported("counted repetition".into())),
                '(' => {
                    self.i += 1;
                    if self.peek() == Some('?') {
                        return Err(RegexError::Unsupported("group flags".into()));
                    }
                    if depth > 1000 {
                        return Err(RegexError::Unsupported("nesting depth".into()));
                    }
                    let inner = self.parse_alt(depth + 1)?;
                    if self.peek() != Some(')') {
                        return Err(invalid(
                            "missing closing )",
                            self.s[..].iter().collect::<String>(),
                        ));
                    }
                    self.i += 1;
                    items.push(inner);
                }
                '[' => items.push(self.parse_class()?),
                '.' => {
                    self.i += 1;
                    items.push(Node::AnyNotNl);
                }
                '^' => {
                    self.i += 1;
                    items.push(Node::Assert(Assert::BeginText));
                }
                '$' => {
                    self.i += 1;
                    items.push(Node::Assert(Assert::EndText));
                }
                '\\' => {
                    let next = self.s.get(self.i + 1).copied();
                    match next {
                        Some('A') => {
                            self.i += 2;
                            items.push(Node::Assert(Assert::BeginText));
                        }
                        Some('z') => {
                            self.i += 2;
                            items.push(Node::Assert(Assert::EndText));
                        }
                        Some('b') => {
                            self.i += 2;
                            items.push(Node::Assert(Assert::WordBoundary));
                        }
                        Some('B') => {
                            self.i += 2;
                            items.push(Node::Assert(Assert::NotWordBoundary));
                        }
                        Some('C') => return Err(invalid("invalid escape sequence", "\\C")),
                        Some('Q') => return Err(RegexError::Unsupported("\\Q...\\E".into())),
                        Some('p' | 'P') => {
                            return Err(RegexError::Unsupported("\\p classes".into()));
                        }
                        Some(p) if perl_class(p).is_some() => {
                            let (ranges, neg) = perl_class(p).unwrap_or((DIGIT, false));
                            self.i += 2;
                            items.push(Node::Class(Class {
                                items: vec![ClassItem::Ranges(ranges.to_vec())],
                                negated: neg,
                            }));
                        }
                        _ => {
                            let ch = self.escape_char()?;
                            items.push(Node::Lit(ch));
                        }
                    }
                }
                _ => {
                    self.i += 1;
                    items.push(Node::Lit(c));
                }
            }
            last_repeat = false;
        }
        Ok(match items.len() {
            0 => Node::Empty,
            1 => items.pop().unwrap_or(Node::Empty),
            _ => Node::Concat(items),
        })
    }
}

#[derive(Debug, Clone)]
enum Inst {
    Char(char),
    AnyNotNl,
    Class(usize),
    Assert(Assert),
    Split(usize, usize),
    Jmp(usize),
    Match,
}

/// A compiled Go regexp (existence matching only).
#[derive(Debug, Clone)]
pub struct GoRegex {
    prog: Vec<Inst>,
    classes: Vec<Class>,
    /// Literal text every match must start the string with (`^lit...`).
    required_prefix: String,
    /// Literal text every match must end the string with (`...lit$`).
    required_suffix: String,
}

/// The literal runs right after a leading `^` and right before a trailing
/// `$` of a top-level concatenation: cheap necessary conditions that reject
/// most paths before the automaton runs.
fn anchored_literals(node: &Node) -> (String, String) {
    let Node::Concat(items) = node else {
        return (String::new(), String::new());
    };
    let lit = |n: &Node| match n {
        Node::Lit(c) => Some(*c),
        _ => None,
    };
    let mut prefix = String::new();
    if matches!(items.first(), Some(Node::Assert(Assert::BeginText))) {
        prefix = items[1..].iter().map_while(lit).collect();
    }
    let mut suffix = String::new();
    if matches!(items.last(), Some(Node::Assert(Assert::EndText))) {
        let rev: Vec<char> = items[..items.len() - 1]
            .iter()
            .rev()
            .map_while(lit)
            .collect();
        suffix = rev.into_iter().rev().collect();
    }
    (prefix, suffix)
}

impl GoRegex {
    /// Parses `pattern` with Go's `regexp.Compile` rules.
    pub fn new(pattern: &str) -> Result<GoRegex, RegexError> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut p = Parser { s: &chars, i: 0 };
        let node = p.parse_alt(0)?;
        if p.i != chars.len() {
            return Err(invalid("unexpected )", pattern));
        }
        let (required_prefix, required_suffix) = anchored_literals(&node);
        let mut re = GoRegex {
            prog: Vec::new(),
            classes: Vec::new(),
            required_prefix,
            required_suffix,
        };
        re.emit(&node);
        re.prog.push(Inst::Match);
        Ok(re)
    }

    fn emit(&mut self, node: &Node) {
        match node {
            Node::Empty => {}
            Node::Lit(c) => self.prog.push(Inst::Char(*c)),
            Node::AnyNotNl => self.prog.push(Inst::AnyNotNl),
            Node::Class(c) => {
                self.classes.push(c.clone());
                self.prog.push(Inst::Class(self.classes.len() - 1));
            }
            Node::Assert(a) => self.prog.push(Inst::Assert(*a)),
            Node::Concat(items) => items.iter().for_each(|n| self.emit(n)),
            Node::Alt(alts) => {
                let mut jumps = Vec::new();
                for (k, alt) in alts.iter().enumerate() {
                    if k + 1 < alts.len() {
                        let split = self.prog.len();
                        self.prog.push(Inst::Split(split + 1, 0));
                        self.emit(alt);
                        jumps.push(self.prog.len());
                        self.prog.push(Inst::Jmp(0));
                        let next = self.prog.len();
                        self.prog[split] = Inst::Split(split + 1, next);
                    } else {
                        self.emit(alt);
                    }
                }
                let end = self.prog.len();
                for j in jumps {
                    self.prog[j] = Inst::Jmp(end);
                }
            }
            Node::Star(inner) => {
                let split = self.prog.len();
                self.prog.push(Inst::Split(split + 1, 0));
                self.emit(inner);
                self.prog.push(Inst::Jmp(split));
                let end = self.prog.len();
                self.prog[split] = Inst::Split(split + 1, end);
            }
            Node::Plus(inner) => {
                let start = self.prog.len();
                self.emit(inner);
                let end = self.prog.len() + 1;
                self.prog.push(Inst::Split(start, end));
            }
            Node::Quest(inner) => {
                let split = self.prog.len();
                self.prog.push(Inst::Split(split + 1, 0));
                self.emit(inner);
                let end = self.prog.len();
                self.prog[split] = Inst::Split(split + 1, end);
            }
        }
    }

    /// Go's `MatchString`: does the regexp match anywhere in `text`?
    pub fn is_match(&self, text: &str) -> bool {
        if !text.starts_with(&self.required_prefix) || !text.ends_with(&self.required_suffix) {
            return false;
        }
        let chars: Vec<char> = text.chars().collect();
        let n = self.prog.len();
        let mut cur: Vec<usize> = Vec::with_capacity(n);
        let mut next: Vec<usize> = Vec::with_capacity(n);
        let mut on = vec![usize::MAX; n];
        let mut stack = Vec::new();
        for pos in 0..=chars.len() {
            // Unanchored search: a new thread may start at every position.
            let gen_id = pos;
            self.add(&mut cur, &mut on, gen_id, 0, pos, &chars, &mut stack);
            if cur.iter().any(|&pc| matches!(self.prog[pc], Inst::Match)) {
                return true;
            }
            if pos == chars.len() {
                break;
            }
            let c = chars[pos];
            next.clear();
            let next_gen = pos + 1;
            for &pc in &cur {
                let ok = match &self.prog[pc] {
                    Inst::Char(x) => *x == c,
                    Inst::AnyNotNl => c != '\n',
                    Inst::Class(k) => self.classes[*k].contains(c),
                    _ => false,
                };
                if ok {
                    self.add(
                        &mut next,
                        &mut on,
                        next_gen,
                        pc + 1,
                        pos + 1,
                        &chars,
                        &mut stack,
                    );
                }
            }
            std::mem::swap(&mut cur, &mut next);
        }
        false
    }

    #[allow(clippy::too_many_arguments)]
    fn add(
        &self,
        list: &mut Vec<usize>,
        on: &mut [usize],
        generation: usize,
        pc: usize,
        pos: usize,
        text: &[char],
        stack: &mut Vec<usize>,
    ) {
        stack.push(pc);
        while let Some(pc) = stack.pop() {
            if on[pc] == generation {
                continue;
            }
            on[pc] = generation;
            match &self.prog[pc] {
                Inst::Jmp(t) => stack.push(*t),
                Inst::Split(a, b) => {
                    stack.push(*b);
                    stack.push(*a);
                }
                Inst::Assert(a) => {
                    if assert_holds(*a, pos, text) {
                        stack.push(pc + 1);
                    }
                }
                _ => list.push(pc),
            }
        }
    }
}

fn is_word(c: Option<&char>) -> bool {
    c.is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
}

fn assert_holds(a: Assert, pos: usize, text: &[char]) -> bool {
    match a {
        Assert::BeginText => pos == 0,
        Assert::EndText => pos == text.len(),
        Assert::WordBoundary | Assert::NotWordBoundary => {
            let before = pos.checked_sub(1).and_then(|p| text.get(p));
            let boundary = is_word(before) != is_word(text.get(pos));
            boundary == (a == Assert::WordBoundary)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(re: &str, s: &str) -> bool {
        GoRegex::new(re).unwrap().is_match(s)
    }

    #[test]
    fn basics() {
        assert!(m("^a[^/]*$", "abc"));
        assert!(!m("^a[^/]*$", "ab/c"));
        assert!(m("^(.*/)?b$", "x/y/b"));
        assert!(m("^(.*/)?b$", "b"));
        assert!(!m("^(.*/)?b$", "xb"));
        assert!(m("^a\\.b$", "a.b"));
        assert!(!m("^a\\.b$", "axb"));
        assert!(!m("^.$", "\n"));
        assert!(m("^[^/]$", "\n"));
        assert!(m("^\\d$", "7"));
        assert!(m("^[[:alpha:]]$", "q"));
        assert!(!m("^a^b$", "ab"));
        assert!(m("^ab(.*/)?c\\.go$", "ab/x/c.go"));
        assert!(!m("^ab(.*/)?c\\.go$", "ab/x/c.gox"));
        assert!(m("^ab$", "ab"));
        assert!(!m("^ab$", "abab"));
    }

    #[test]
    fn go_class_quirks() {
        // `[*]` in a pattern becomes `[[^/]*]`: a class {'[', '^', '/'}
        // repeated, then a literal ']'.
        assert!(m("^[[^/]*]$", "]"));
        assert!(m("^[[^/]*]$", "[^/]"));
        assert!(!m("^[[^/]*]$", "*"));
        assert!(m("^[a-c]$", "b"));
        assert!(m("^[\\]]$", "]"));
        assert!(m("^[a-]$", "-"));
    }

    #[test]
    fn errors() {
        assert!(GoRegex::new("a**").is_err());
        assert!(GoRegex::new("*a").is_err());
        assert!(GoRegex::new("[z-a]").is_err());
        assert!(GoRegex::new("\\q").is_err());
        assert!(GoRegex::new("\\é").is_err());
        assert!(GoRegex::new("[abc").is_err());
        assert!(GoRegex::new("[[:foo:]]").is_err());
    }
}
