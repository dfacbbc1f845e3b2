//! Word expansion exactly as BuildKit's Dockerfile shell lexer does it.
//!
//! Dockerfile instructions such as `ENV`, `ARG`, `COPY`, `WORKDIR` or `FROM`
//! expand `$VAR` references in their arguments with BuildKit's own small
//! lexer (`frontend/dockerfile/shell`), which is *not* POSIX `sh`: it knows
//! single and double quotes, an escape token that is `\` or `` ` `` (per the
//! `# escape=` directive), `$VAR`, `${VAR}` and the modifiers `:-` `-` `:+`
//! `+` `:?` `?` `#` `##` `%` `%%` `/` `//`, and nothing else (no command
//! substitution, no arithmetic, no `${#VAR}`, no `~`). This crate reproduces
//! that lexer: the expanded word ([`Lexer::expand_word`], BuildKit's
//! `ProcessWord`), the word split ([`Lexer::expand_words`], `ProcessWords`),
//! which variables were looked up and found or not found (for lint rules and
//! cache keys), and BuildKit's error messages, byte for byte.
//!
//! Quirks are reproduced on purpose, for example: `""` alone yields no word
//! when splitting; a `\` before a char other than `"`, `$` or `\` inside
//! double quotes stays; `${VAR:#pat}` behaves like `${VAR#pat}`; glob `*` and
//! `?` do not match a newline; `${V//p/r}` expands `$0` in `r` (Go's
//! `ReplaceAllString`) while `${V/p/r}` does not.
//!
//! What this crate deliberately does not do: it never reads the process
//! environment or the file system, it does not parse Dockerfiles (line
//! continuations, directives and heredocs belong to `berth-dockerfile`), and it
//! does not decide *which* instructions expand which arguments.
//!
//! ```
//! use berth_shell::{EnvMap, Lexer};
//! let env = EnvMap::from_pairs([("NAME", "world")]);
//! let lex = Lexer::new('\\');
//! assert_eq!(lex.expand_word("hello ${NAME:-you}", &env).unwrap(), "hello world");
//! assert_eq!(lex.expand_words("a 'b c' $NAME", &env).unwrap(), ["a", "b c", "world"]);
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};

mod lex;
mod pattern;
mod unicode;

pub use unicode::go_quote;

/// Go's character classes as this crate implements them; public only so the
/// differential test against Go's standard library can reach them.
#[doc(hidden)]
pub mod go_unicode {
    pub use crate::unicode::{is_digit, is_letter, is_print, is_space};
}

/// Where variable values come from. `None` means unset, which differs from
/// set-but-empty for `${V-w}`, `${V+w}` and `${V?m}`.
pub trait Env {
    /// The value of `name`, or `None` if it is not set.
    fn lookup(&self, name: &str) -> Option<&str>;
}

impl<E: Env + ?Sized> Env for &E {
    fn lookup(&self, name: &str) -> Option<&str> {
        (**self).lookup(name)
    }
}

impl Env for HashMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl Env for BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

/// An empty environment: every variable is unset.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEnv;

impl Env for NoEnv {
    fn lookup(&self, _name: &str) -> Option<&str> {
        None
    }
}

/// An ordered map of variables built like BuildKit's `BuildEnvs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvMap {
    vars: BTreeMap<String, String>,
}

impl EnvMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// From `KEY=VALUE` strings as BuildKit's `BuildEnvs` reads them: the
    /// first `=` splits, a string without `=` sets the key to the empty
    /// value, and a later duplicate wins.
    pub fn from_kv_strings<I, S>(items: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut m = Self::new();
        for item in items {
            let item = item.as_ref();
            match item.split_once('=') {
                Some((k, v)) => m.set(k, v),
                None => m.set(item, ""),
            }
        }
        m
    }

    /// From `(key, value)` pairs; a later duplicate wins.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut m = Self::new();
        for (k, v) in pairs {
            m.vars.insert(k.into(), v.into());
        }
        m
    }

    /// Sets `key` to `value`.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.vars.insert(key.into(), value.into());
    }

    /// Unsets `key`.
    pub fn remove(&mut self, key: &str) {
        self.vars.remove(key);
    }

    /// The variables, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl Env for EnvMap {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }
}

/// BuildKit's optional lexer switches (`Lex.RawQuotes` and friends), used by
/// some callers, e.g. when a word is expanded but must stay shell-quoted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LexOptions {
    /// Keep the quote characters in the output.
    pub raw_quotes: bool,
    /// Keep escape tokens in the output (they still protect the next char).
    pub raw_escapes: bool,
    /// Treat `'` and `"` as ordinary characters.
    pub skip_process_quotes: bool,
    /// Leave references to unset variables as written (`$X`, `${X:-w}`).
    pub skip_unset_env: bool,
}

/// The result of expanding one input string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expanded {
    /// The whole input expanded as one word (`ProcessWord`): quotes removed,
    /// inner whitespace kept.
    pub word: String,
    /// The input split into words after expansion (`ProcessWords`): unquoted
    /// whitespace separates words, including whitespace that came from a
    /// variable's value outside quotes.
    pub words: Vec<String>,
    /// Variables that were looked up and are set.
    pub matched: BTreeSet<String>,
    /// Variables that were looked up and are unset.
    pub unmatched: BTreeSet<String>,
}

/// A failed expansion. `Display` is BuildKit's message:
/// `failed to process "<input>": <reason>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to process {}: {kind}", go_quote(.input))]
pub struct ShellError {
    /// The string that was being expanded.
    pub input: String,
    /// What went wrong.
    pub kind: ShellErrorKind,
}

/// Why an expansion failed; each message is BuildKit's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShellErrorKind {
    /// `'` without its closing quote.
    #[error("unexpected end of statement while looking for matching single-quote")]
    UnterminatedSingleQuote,
    /// `"` without its closing quote.
    #[error("unexpected end of statement while looking for matching double-quote")]
    UnterminatedDoubleQuote,
    /// A nested word ended before its terminator (kept for completeness:
    /// BuildKit reports this as [`ShellErrorKind::MissingBrace`] or
    /// [`ShellErrorKind::MissingSlash`]).
    #[error("unexpected end of statement while looking for matching {0}")]
    UnexpectedEnd(char),
    /// `${` or `${V:-...` without the closing `}`.
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    /// `${V/pattern` without the `/` before the replacement.
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash,
    /// `${}`, `${:...}`, `${{...}`.
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    /// `${V=w}`, `${V:=w}`, `${#V}`, ... (U+FFFD stands for the end of input).
    #[error("unsupported modifier ({0}) in substitution")]
    UnsupportedModifier(String),
    /// `${V?message}` / `${V:?message}` with `V` unset (or empty).
    #[error("{name}: {message}")]
    Required {
        /// The variable.
        name: String,
        /// The user's message or BuildKit's default one.
        message: String,
    },
    /// `${...}` nested deeper than [`MAX_NESTING`] levels (berth's own limit).
    #[error("substitutions nested deeper than {0} levels")]
    TooDeep(usize),
    /// A `\` in a pattern before something other than `*`, `?`, `\`, `}`, `/`.
    #[error("invalid pattern ({pattern}) in substitution: invalid escape '\\{escaped}'")]
    InvalidPattern {
        /// The pattern as BuildKit compiled it (reversed for `%`/`%%`).
        pattern: String,
        /// The char after the backslash (U+FFFD at the end of the pattern).
        escaped: char,
    },
}

/// How deeply `${...}` words may nest before expansion fails with
/// [`ShellErrorKind::TooDeep`]. BuildKit has no limit (Go stacks grow); this
/// one only protects the stack against hostile input.
pub const MAX_NESTING: usize = 200;

/// BuildKit's shell lexer, configured with an escape token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexer {
    escape: char,
    options: LexOptions,
}

impl Default for Lexer {
    fn default() -> Self {
        Self::new('\\')
    }
}

impl Lexer {
    /// A lexer whose escape token is `escape` (`\` by default, `` ` `` with
    /// `# escape=``).
    pub fn new(escape: char) -> Self {
        Lexer {
            escape,
            options: LexOptions::default(),
        }
    }

    /// The same lexer with BuildKit's optional switches.
    pub fn with_options(mut self, options: LexOptions) -> Self {
        self.options = options;
        self
    }

    /// The escape token.
    pub fn escape(&self) -> char {
        self.escape
    }

    /// Expands `input` once and returns everything BuildKit computes: the
    /// single word, the split words and the variables referenced.
    pub fn expand(&self, input: &str, env: &dyn Env) -> Result<Expanded, ShellError> {
        lex::Processor::new(input, self.escape, self.options, env)
            .run()
            .map_err(|kind| ShellError {
                input: input.to_owned(),
                kind,
            })
    }

    /// BuildKit's `ProcessWord`: `input` expanded as one word.
    pub fn expand_word(&self, input: &str, env: &dyn Env) -> Result<String, ShellError> {
        self.expand(input, env).map(|e| e.word)
    }

    /// BuildKit's `ProcessWords`: `input` expanded and split into words.
    pub fn expand_words(&self, input: &str, env: &dyn Env) -> Result<Vec<String>, ShellError> {
        self.expand(input, env).map(|e| e.words)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(opts: LexOptions, input: &str, env: &[&str]) -> String {
        let env = EnvMap::from_kv_strings(env);
        Lexer::new('\\')
            .with_options(opts)
            .expand_word(input, &env)
            .unwrap()
    }

    #[test]
    fn raw_quotes_keep_quote_chars() {
        let o = LexOptions {
            raw_quotes: true,
            ..LexOptions::default()
        };
        assert_eq!(expand(o, r#"'a b' "c $X""#, &["X=1"]), r#"'a b' "c 1""#);
    }

    #[test]
    fn raw_escapes_keep_escape_chars() {
        let o = LexOptions {
            raw_escapes: true,
            ..LexOptions::default()
        };
        assert_eq!(expand(o, r"a\ b\$X", &["X=1"]), r"a\ b\$X");
        // Inside double quotes an escape before an ordinary char is doubled
        // (BuildKit writes it once raw and once as the literal char).
        assert_eq!(expand(o, r#""a\b""#, &[]), r#"a\\b"#);
    }

    #[test]
    fn skip_process_quotes_treats_quotes_as_text() {
        let o = LexOptions {
            skip_process_quotes: true,
            ..LexOptions::default()
        };
        assert_eq!(expand(o, r#"'$X' "$X""#, &["X=1"]), r#"'1' "1""#);
    }

    #[test]
    fn skip_unset_env_leaves_references() {
        let o = LexOptions {
            skip_unset_env: true,
            ..LexOptions::default()
        };
        assert_eq!(
            expand(o, "$X ${Y} ${Z:-w} ${Q?m} ${W/a/b} $S", &["S=set"]),
            "$X ${Y} ${Z:-w} ${Q?m} ${W/a/b} set"
        );
        // BuildKit rebuilds `${V//p/r}` with a single slash.
        assert_eq!(expand(o, "${W//a/b}", &[]), "${W/a/b}");
    }

    #[test]
    fn env_map_builds_like_buildkit() {
        let m = EnvMap::from_kv_strings(["A=1", "B", "C=x=y", "A=2"]);
        assert_eq!(m.lookup("A"), Some("2"));
        assert_eq!(m.lookup("B"), Some(""));
        assert_eq!(m.lookup("C"), Some("x=y"));
        assert_eq!(m.lookup("D"), None);
    }

    #[test]
    fn error_display_is_buildkits() {
        let e = Lexer::new('\\').expand("a\n${", &NoEnv).unwrap_err();
        assert_eq!(
            e.to_string(),
            "failed to process \"a\\n${\": syntax error: missing '}'"
        );
        assert_eq!(e.kind, ShellErrorKind::MissingBrace);
    }
}
