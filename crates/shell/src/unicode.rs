//! Character classes as Go's `unicode` package defines them, and Go's `%q`.
//!
//! BuildKit's lexer decides what a variable name is with `unicode.IsLetter`
//! (general category L) and `unicode.IsDigit` (category Nd), splits words on
//! `unicode.IsSpace`, and quotes the input in its error messages with `%q`.
//! Rust's `char::is_alphabetic`/`is_numeric` use different properties
//! (Alphabetic, N*), so they are not used here.

use unicode_general_category::{GeneralCategory as Gc, get_general_category};

/// Go's `unicode.IsLetter`: general category L (Lu, Ll, Lt, Lm, Lo).
pub fn is_letter(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    matches!(
        get_general_category(c),
        Gc::UppercaseLetter
            | Gc::LowercaseLetter
            | Gc::TitlecaseLetter
            | Gc::ModifierLetter
            | Gc::OtherLetter
    )
}

/// Go's `unicode.IsDigit`: general category Nd.
pub fn is_digit(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_digit();
    }
    get_general_category(c) == Gc::DecimalNumber
}

/// Go's `unicode.IsSpace`. Rust's `char::is_whitespace` is the Unicode
/// White_Space property, which is exactly the set Go uses.
pub fn is_space(c: char) -> bool {
    c.is_whitespace()
}

/// Go's `unicode.IsPrint`: categories L, M, N, P, S and the ASCII space.
pub fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    !matches!(
        get_general_category(c),
        Gc::Control
            | Gc::Format
            | Gc::Surrogate
            | Gc::PrivateUse
            | Gc::Unassigned
            | Gc::SpaceSeparator
            | Gc::LineSeparator
            | Gc::ParagraphSeparator
    )
}

/// Go's `strconv.Quote` (what `%q` prints for a string).
pub fn go_quote(s: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            _ if is_print(c) => out.push(c),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            _ if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            _ if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            _ => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_go() {
        assert!(is_letter('한'));
        assert!(!is_letter('\u{2160}')); // ROMAN NUMERAL ONE is Nl: alphabetic in Rust, not a Go letter
        assert!(is_digit('٣'));
        assert!(!is_digit('²')); // No, not Nd
        assert!(is_space('\u{a0}') && is_space('\u{3000}') && !is_space('\u{200b}'));
    }

    #[test]
    fn quote_like_go() {
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("\n\t\u{1}\u{7f}"), r#""\n\t\x01\x7f""#);
        assert_eq!(go_quote("\u{a0}한\u{200b}"), "\"\\u00a0한\\u200b\"");
        assert_eq!(go_quote("\u{e0001}"), "\"\\U000e0001\"");
    }
}
