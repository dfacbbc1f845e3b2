//! The word splitter BuildKit's parser uses to find heredoc markers.
//!
//! BuildKit runs the instruction line through its shell lexer with an empty
//! environment, "skip unset variables" (so `$X` stays `$X`), and, for the
//! first pass, raw quotes and raw escapes (quotes and escape characters kept).
//! Each word that looks like `[n]<<[-]rest` is a heredoc; `rest` is lexed
//! again without raw quotes to get the delimiter. Only the word boundaries,
//! the delimiter text and the lexer's errors matter here, so variable
//! references are reproduced as written. The escape character is always `\`
//! here, whatever `# escape=` says (as in BuildKit).

use berth_shell::go_unicode::{is_digit, is_letter};

#[derive(Debug)]
pub(crate) struct LexError;

struct Lex {
    chars: Vec<char>,
    pos: usize,
    raw_quotes: bool,
    raw_escapes: bool,
}

#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if crate::go::is_space(c) {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
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
            self.words.push(self.word);
        }
        self.words
    }
}

const ESCAPE: char = '\\';

impl Lex {
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

    fn process_stop_on(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), LexError> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if stop == Some(ch) {
                self.next();
                return Ok((result, words.finish()));
            }
            match ch {
                '$' => {
                    let s = self.process_dollar()?;
                    result.push_str(&s);
                    words.add_string(&s);
                }
                '\'' => {
                    let s = self.process_single_quote()?;
                    result.push_str(&s);
                    words.add_raw_string(&s);
                }
                '"' => {
                    let s = self.process_double_quote()?;
                    result.push_str(&s);
                    words.add_raw_string(&s);
                }
                _ => {
                    self.next();
                    if ch == ESCAPE {
                        if self.raw_escapes {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
                        let Some(c) = self.next() else { break };
                        words.add_raw_char(c);
                        result.push(c);
                    } else {
                        words.add_char(ch);
                        result.push(ch);
                    }
                }
            }
        }
        if stop.is_some() {
            return Err(LexError);
        }
        Ok((result, words.finish()))
    }

    fn process_single_quote(&mut self) -> Result<String, LexError> {
        let mut out = String::new();
        let q = self.next().ok_or(LexError)?;
        if self.raw_quotes {
            out.push(q);
        }
        loop {
            match self.next() {
                None => return Err(LexError),
                Some('\'') => {
                    if self.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, LexError> {
        let mut out = String::new();
        let q = self.next().ok_or(LexError)?;
        if self.raw_quotes {
            out.push(q);
        }
        loop {
            match self.peek() {
                None => return Err(LexError),
                Some('"') => {
                    self.next();
                    if self.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    let s = self.process_dollar()?;
                    out.push_str(&s);
                }
                Some(_) => {
                    let mut ch = self.next().ok_or(LexError)?;
                    if ch == ESCAPE {
                        if self.raw_escapes {
                            out.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some('"' | '$' | ESCAPE) => ch = self.next().ok_or(LexError)?,
                            Some(_) => {}
                        }
                    }
                    out.push(ch);
                }
            }
        }
    }

    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && is_digit(ch) {
                while let Some(d) = self.peek().filter(|&c| is_digit(c)) {
                    self.next();
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                name.push(ch);
                return name;
            }
            if !is_letter(ch) && !is_digit(ch) && ch != '_' {
                break;
            }
            self.next();
            name.push(ch);
        }
        name
    }

    /// `$...` with every variable unset and kept as written.
    fn process_dollar(&mut self) -> Result<String, LexError> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.process_name();
            return Ok(format!("${name}"));
        }
        self.next();
        match self.peek() {
            None | Some('{' | '}' | ':') => return Err(LexError),
            Some(_) => {}
        }
        let name = self.process_name();
        match self.next() {
            Some('}') => Ok(format!("${{{name}}}")),
            Some(':') => {
                let m = self.next().ok_or(LexError)?;
                let (word, _) = self.process_stop_on(Some('}'))?;
                Ok(format!("${{{name}:{m}{word}}}"))
            }
            Some(m @ ('?' | '-' | '+')) => {
                let (word, _) = self.process_stop_on(Some('}'))?;
                Ok(format!("${{{name}{m}{word}}}"))
            }
            _ => Err(LexError),
        }
    }
}

fn words(s: &str, raw: bool) -> Result<Vec<String>, LexError> {
    let s = s.strip_prefix('\u{feff}').unwrap_or(s);
    let mut lex = Lex {
        chars: s.chars().collect(),
        pos: 0,
        raw_quotes: raw,
        raw_escapes: raw,
    };
    lex.process_stop_on(None).map(|(_, w)| w)
}

fn words_raw_quotes_only(s: &str) -> Result<Vec<String>, LexError> {
    let s = s.strip_prefix('\u{feff}').unwrap_or(s);
    let mut lex = Lex {
        chars: s.chars().collect(),
        pos: 0,
        raw_quotes: true,
        raw_escapes: false,
    };
    lex.process_stop_on(None).map(|(_, w)| w)
}

/// A heredoc marker found on an instruction line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Marker {
    pub name: String,
    pub chomp: bool,
    pub expand: bool,
    pub fd: Option<u32>,
}

/// Parses one word as `^(\d*)<<(-?)([^<]*)$`; `Err` when the delimiter does
/// not lex (BuildKit then fails the instruction).
pub(crate) fn marker(word: &str) -> Result<Option<Marker>, LexError> {
    let digits = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let Some(after) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match after.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, after),
    };
    if rest.contains('<') || rest.is_empty() {
        return Ok(None);
    }
    let plain = words(rest, false)?;
    if plain.len() != 1 {
        return Ok(None);
    }
    let raw = words_raw_quotes_only(rest)?;
    if raw.len() != plain.len() {
        return Err(LexError);
    }
    let quotes = |s: &str| s.matches(['\'', '"']).count();
    let expand = quotes(&plain[0]) == quotes(&raw[0]);
    let fd = if digits == 0 {
        None
    } else {
        Some(word[..digits].parse().unwrap_or(u32::MAX))
    };
    Ok(Some(Marker {
        name: plain.into_iter().next().unwrap_or_default(),
        chomp,
        expand,
        fd,
    }))
}

/// All heredoc markers on an instruction line, in order.
pub(crate) fn markers(line: &str) -> Result<Vec<Marker>, LexError> {
    // BuildKit ignores a lexing error of the whole line: no heredocs then.
    let Ok(ws) = words(line, true) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for w in ws {
        if let Some(m) = marker(&w)? {
            out.push(m);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(line: &str) -> Vec<String> {
        markers(line).unwrap().into_iter().map(|m| m.name).collect()
    }

    #[test]
    fn finds_markers() {
        assert_eq!(names("RUN <<EOF cat"), ["EOF"]);
        assert_eq!(names("COPY <<A <<-'B' /x"), ["A", "B"]);
        assert_eq!(names(r#"RUN <<"E F""#), ["E F"]);
        assert_eq!(names(r"RUN <<E\ F"), ["E F"]);
        assert_eq!(names("RUN <<EOF<<X"), Vec::<String>::new());
        assert_eq!(names("RUN <<EOF ${A#b}"), Vec::<String>::new());
        assert_eq!(names("RUN <<EOF ${A:-b c}"), ["EOF"]);
        assert_eq!(names("RUN <<EOF echo \"x"), Vec::<String>::new());
        assert_eq!(names("RUN 3<<EOF"), ["EOF"]);
        assert_eq!(names("RUN <<''"), Vec::<String>::new());
        assert_eq!(names("RUN <<EO${Aé-b}"), ["EO${Aé-b}"]);
        assert_eq!(names("RUN <<E ${é}"), ["E"]);
        assert_eq!(names("RUN <<E ${Ⅰ}"), Vec::<String>::new());
        assert!(!markers("RUN <<'E'OF").unwrap()[0].expand);
        assert!(markers("RUN <<EOF").unwrap()[0].expand);
    }
}
