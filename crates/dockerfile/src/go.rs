//! Small pieces of Go's standard library whose exact behaviour BuildKit's
//! parser depends on: `unicode.IsSpace`, `strings.ToLower` for instruction
//! names, the `[\t\v\f\r ]+` whitespace class, and `encoding/json`'s decoder
//! for exec-form arrays.

/// `unicode.IsSpace`.
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace()
}

/// `unicode.IsSpace(rune(b))` on a single byte, as Go code that walks a
/// string byte by byte sees it (0x85 and 0xA0 count as space).
pub(crate) fn is_space_byte(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' | 0x85 | 0xa0)
}

/// The `[\t\v\f\r ]` class of BuildKit's `reWhitespace`.
pub(crate) fn is_re_ws(c: char) -> bool {
    matches!(c, '\t' | '\u{0b}' | '\u{0c}' | '\r' | ' ')
}

/// Go's `strings.ToLower` restricted to what matters for matching instruction
/// names: simple case mapping, where `İ` (U+0130) lowers to `i` and the
/// Kelvin sign (U+212A) to `k`.
pub(crate) fn lower(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{130}' => 'i',
            '\u{212a}' => 'k',
            c if c.is_ascii() => c.to_ascii_lowercase(),
            c => {
                let mut it = c.to_lowercase();
                match (it.next(), it.next()) {
                    (Some(l), None) => l,
                    _ => c,
                }
            }
        })
        .collect()
}

/// Go's `strings.TrimSpace` with the offset of the result in `s`.
pub(crate) fn trim_space(s: &str) -> (&str, usize) {
    let start = s.len() - s.trim_start_matches(is_space).len();
    (s[start..].trim_end_matches(is_space), start)
}

/// Splits on runs of `[\t\v\f\r ]` (Go's `regexp.Split(s, n)`), returning
/// each piece with its byte offset. `limit` 0 means unlimited.
pub(crate) fn split_re_ws(s: &str, limit: usize) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut it = s.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        if limit != 0 && out.len() + 1 == limit {
            break;
        }
        if is_re_ws(c) {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = it.peek() {
                if is_re_ws(d) {
                    end = j + d.len_utf8();
                    it.next();
                } else {
                    break;
                }
            }
            out.push((start, &s[start..i]));
            start = end;
        }
    }
    out.push((start, &s[start..]));
    out
}

/// `reWhitespace.Split(s, -1)` as an iterator of `(offset, piece)`.
pub(crate) fn split_re_ws_iter(s: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut pos = Some(0);
    std::iter::from_fn(move || {
        let start = pos?;
        let rest = &s[start..];
        match rest.find(is_re_ws) {
            None => {
                pos = None;
                Some((start, rest))
            }
            Some(i) => {
                let after = rest[i..].trim_start_matches(is_re_ws);
                pos = Some(s.len() - after.len());
                Some((start, &rest[..i]))
            }
        }
    })
}

/// `reWhitespace.Split(s, 2)`: the first piece and, if there is a separator,
/// the rest with its offset.
pub(crate) fn split_once_re_ws(s: &str) -> (&str, Option<(usize, &str)>) {
    match s.find(is_re_ws) {
        None => (s, None),
        Some(i) => {
            let after = s[i..].trim_start_matches(is_re_ws);
            (&s[..i], Some((s.len() - after.len(), after)))
        }
    }
}

/// What `json.NewDecoder(r).Decode(&[]interface{})` followed by BuildKit's
/// "strings only" check makes of a string that starts with `[`.
#[derive(Debug, PartialEq)]
pub(crate) enum JsonArray {
    /// A valid array of strings: each decoded string with the byte range of
    /// its literal. Bytes after the array are ignored, as Go's decoder does.
    Strings(Vec<(String, usize, usize)>),
    /// Valid JSON, but an element is not a string: BuildKit fails the file.
    NotStrings,
    /// Not valid JSON: BuildKit falls back to the shell form.
    Invalid,
}

const MAX_DEPTH: usize = 10000;

struct Json<'a> {
    b: &'a [u8],
    s: &'a str,
    i: usize,
}

impl Json<'_> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let h = self.b.get(at..at + 4)?;
        let mut v = 0u32;
        for &c in h {
            v = v * 16 + (c as char).to_digit(16)?;
        }
        Some(v)
    }

    /// A string literal at `self.i` (which is `"`), decoded as Go does.
    fn string(&mut self) -> Option<String> {
        self.i += 1;
        let mut out = String::new();
        loop {
            let c = self.peek()?;
            match c {
                b'"' => {
                    self.i += 1;
                    return Some(out);
                }
                b'\\' => {
                    let e = *self.b.get(self.i + 1)?;
                    self.i += 2;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let r = self.hex4(self.i)?;
                            self.i += 4;
                            if (0xd800..0xe000).contains(&r) {
                                let pair = if r < 0xdc00
                                    && self.b.get(self.i) == Some(&b'\\')
                                    && self.b.get(self.i + 1) == Some(&b'u')
                                {
                                    self.hex4(self.i + 2)
                                        .filter(|lo| (0xdc00..0xe000).contains(lo))
                                } else {
                                    None
                                };
                                match pair {
                                    Some(lo) => {
                                        self.i += 6;
                                        let cp = 0x10000 + ((r - 0xd800) << 10) + (lo - 0xdc00);
                                        out.push(char::from_u32(cp).unwrap_or('\u{fffd}'));
                                    }
                                    None => out.push('\u{fffd}'),
                                }
                            } else {
                                out.push(char::from_u32(r).unwrap_or('\u{fffd}'));
                            }
                        }
                        _ => return None,
                    }
                }
                0..=0x1f => return None,
                _ => {
                    let ch = self.s[self.i..].chars().next()?;
                    out.push(ch);
                    self.i += ch.len_utf8();
                }
            }
        }
    }

    fn lit(&mut self, w: &[u8]) -> Option<()> {
        if self.b.get(self.i..self.i + w.len()) == Some(w) {
            self.i += w.len();
            Some(())
        } else {
            None
        }
    }

    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.i += 1;
                }
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return None;
            }
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.i += 1;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return None;
            }
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.i += 1;
            }
        }
        Some(())
    }

    /// Validates one value (any type) without recursion; `depth` is the
    /// nesting depth of the container it sits in.
    fn skip_value(&mut self, depth: usize) -> Option<()> {
        // Stack of open containers: true = object, false = array.
        let mut stack: Vec<bool> = Vec::new();
        loop {
            // Expect a value.
            self.ws();
            match self.peek()? {
                b'"' => {
                    self.string()?;
                }
                b't' => self.lit(b"true")?,
                b'f' => self.lit(b"false")?,
                b'n' => self.lit(b"null")?,
                b'-' | b'0'..=b'9' => self.number()?,
                b'[' => {
                    self.i += 1;
                    if depth + stack.len() + 1 > MAX_DEPTH {
                        return None;
                    }
                    self.ws();
                    if self.peek() == Some(b']') {
                        self.i += 1;
                    } else {
                        stack.push(false);
                        continue;
                    }
                }
                b'{' => {
                    self.i += 1;
                    if depth + stack.len() + 1 > MAX_DEPTH {
                        return None;
                    }
                    self.ws();
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                    } else {
                        stack.push(true);
                        self.object_key()?;
                        continue;
                    }
                }
                _ => return None,
            }
            // After a value: close containers or continue them.
            loop {
                let Some(&obj) = stack.last() else {
                    return Some(());
                };
                self.ws();
                match (self.peek()?, obj) {
                    (b',', false) => {
                        self.i += 1;
                        break;
                    }
                    (b',', true) => {
                        self.i += 1;
                        self.ws();
                        self.object_key()?;
                        break;
                    }
                    (b']', false) | (b'}', true) => {
                        self.i += 1;
                        stack.pop();
                    }
                    _ => return None,
                }
            }
        }
    }

    fn object_key(&mut self) -> Option<()> {
        if self.peek() != Some(b'"') {
            return None;
        }
        self.string()?;
        self.ws();
        if self.peek() != Some(b':') {
            return None;
        }
        self.i += 1;
        Some(())
    }
}

/// Decodes `s` (which starts with `[`) as BuildKit's `parseJSON` does.
pub(crate) fn json_array(s: &str) -> JsonArray {
    let mut j = Json {
        b: s.as_bytes(),
        s,
        i: 1,
    };
    let mut out = Vec::new();
    let mut all_strings = true;
    j.ws();
    if j.peek() == Some(b']') {
        return JsonArray::Strings(out);
    }
    loop {
        j.ws();
        if j.peek() == Some(b'"') {
            let start = j.i;
            let Some(v) = j.string() else {
                return JsonArray::Invalid;
            };
            out.push((v, start, j.i));
        } else {
            if j.skip_value(1).is_none() {
                return JsonArray::Invalid;
            }
            all_strings = false;
        }
        j.ws();
        match j.peek() {
            Some(b',') => j.i += 1,
            Some(b']') => break,
            _ => return JsonArray::Invalid,
        }
    }
    if all_strings {
        JsonArray::Strings(out)
    } else {
        JsonArray::NotStrings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(s: &str) -> Vec<String> {
        match json_array(s) {
            JsonArray::Strings(v) => v.into_iter().map(|x| x.0).collect(),
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn json_like_go() {
        assert_eq!(strings(r#"["a", "b"] trailing"#), ["a", "b"]);
        assert_eq!(strings(r#"[ ]"#), Vec::<String>::new());
        assert_eq!(
            strings(r#"["\ud83d\ude00\ud800x\u00e9"]"#),
            ["😀\u{fffd}xé"]
        );
        assert_eq!(json_array(r#"["a", 1]"#), JsonArray::NotStrings);
        assert_eq!(
            json_array(r#"["a", [{"k": [null]}]]"#),
            JsonArray::NotStrings
        );
        assert_eq!(json_array(r#"["a" "b"]"#), JsonArray::Invalid);
        assert_eq!(json_array(r#"["a",]"#), JsonArray::Invalid);
        assert_eq!(json_array(r#"[01]"#), JsonArray::Invalid);
        assert_eq!(json_array("[\"a\tb\"]"), JsonArray::Invalid);
        assert_eq!(json_array("["), JsonArray::Invalid);
        let deep = "[".repeat(20000);
        assert_eq!(json_array(&deep), JsonArray::Invalid);
    }

    #[test]
    fn lower_like_go() {
        assert_eq!(lower("ENTRYPO\u{130}NT"), "entrypoint");
        assert_eq!(lower("HEALTHCHEC\u{212a}"), "healthcheck");
    }

    #[test]
    fn split_ws() {
        assert_eq!(split_re_ws("a  b\tc", 0), [(0, "a"), (3, "b"), (5, "c")]);
        assert_eq!(split_re_ws("a  b\tc", 2), [(0, "a"), (3, "b\tc")]);
        assert_eq!(split_re_ws("a\u{a0}b", 0), [(0, "a\u{a0}b")]);
        for t in ["a  b\tc", "a", "", "a \u{b}b\u{c}\rc ", " a", "a  "] {
            assert_eq!(
                split_re_ws_iter(t).collect::<Vec<_>>(),
                split_re_ws(t, 0),
                "{t:?}"
            );
        }
    }
}
