//! `.dockerignore` with Docker's exact semantics.
//!
//! This crate decides which files of a build context are sent to the
//! builder, the way `docker build` (BuildKit's context transfer through
//! `tonistiigi/fsutil`, with `moby/patternmatcher`) decides it:
//!
//! * reading the file ([`read_patterns`]): lines starting with `#` are
//!   comments (only at column 0), blank lines are skipped, CRLF and a UTF-8
//!   BOM are handled, each pattern is trimmed, `filepath.Clean`ed and loses a
//!   leading `/`; a leading `!` makes an exception ("re-include");
//! * compiling ([`IgnoreMatcher::from_patterns`]): the pattern syntax is
//!   Go's `filepath.Match` (`*`, `?`, `[...]`, `\` escapes) plus `**` for any
//!   number of directories; invalid patterns are errors, as in Docker, and
//!   each pattern is turned into the same Go regular expression patternmatcher
//!   builds, evaluated with Go's regexp rules (so odd patterns agree too);
//! * matching ([`IgnoreMatcher::matches`]): the last matching pattern wins; a
//!   pattern that matches a directory matches everything below it; matching
//!   follows the context walk (`MatchesUsingParentResults`), including its
//!   pruning of excluded directories that no exception can reach into;
//! * walking ([`walk_context`]): lists the included files of a directory fast,
//!   never descending into an excluded directory unless an exception pattern
//!   could re-include something inside it;
//! * the build files: [`IgnoreMatcher::keep_build_files`] makes sure the
//!   Dockerfile and `.dockerignore` are sent (Docker CLI's
//!   `TrimBuildFilesFromExcludes`), and [`find_ignore_file`] prefers
//!   `<Dockerfile>.dockerignore` next to a custom Dockerfile over the
//!   context's `.dockerignore`.
//!
//! Known limits: Go regexp syntax that ordinary patterns never produce
//! (`\pN`, `\Q...\E`, `\x41`) is rejected instead of interpreted; the
//! syntax check validates the whole pattern, as Go's `path.Match` does,
//! whereas `filepath.Match` of some Go releases (1.19 at least) stops at the
//! first chunk that fails to match and so accepts e.g. `x*[a-]` (most such
//! patterns then fail in Docker anyway, when their regexp is compiled); file
//! names that are not UTF-8 are matched lossily.
//!
//! What it deliberately does not do: Windows path rules (Docker on Windows
//! treats `\` as a separator; berth builds Linux images from Unix paths), case
//! folding, `.gitignore` semantics (a bare `foo` here matches only `./foo`, not
//! `a/foo`), following symlinks while walking, or reading file contents.

use std::path::{Path, PathBuf};

mod gopath;
mod goregex;
mod walk;

pub use walk::{
    ContextEntry, EntryKind, WalkError, WalkStats, walk_context, walk_context_with_stats,
};

/// The Go-regexp evaluator behind pattern matching; public only so the
/// differential tests can reach it.
#[doc(hidden)]
pub use goregex::{GoRegex, RegexError};

/// Re-implementations of Go's `filepath` pieces; public only so the
/// differential test against Go's standard library can reach them.
#[doc(hidden)]
pub mod go_filepath {
    pub use crate::gopath::{clean, dir, is_bad_pattern};
}

/// Why a `.dockerignore` could not be used. Messages follow Docker's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreError {
    /// A line of the file is longer than Go's `bufio.Scanner` accepts.
    #[error("error reading .dockerignore: bufio.Scanner: token too long (line {line})")]
    LineTooLong {
        /// 1-based line number.
        line: usize,
    },
    /// An error in a pattern of a `.dockerignore` file, with its line.
    #[error(".dockerignore line {line}: {error}")]
    AtLine {
        /// 1-based line number in the file.
        line: usize,
        /// What is wrong with the pattern on that line.
        #[source]
        error: Box<IgnoreError>,
    },
    /// A lone `!`.
    #[error("illegal exclusion pattern: \"!\"")]
    IllegalExclusion,
    /// `filepath.Match` rejects the pattern (an unclosed `[`, a trailing `\`, ...).
    #[error("syntax error in pattern {pattern:?}")]
    BadPattern {
        /// The pattern as cleaned by Docker.
        pattern: String,
    },
    /// The regular expression Docker derives from the pattern does not
    /// compile in Go (for example `\q`), or uses Go syntax berth does not
    /// implement.
    #[error("syntax error in pattern {pattern:?}: {reason}")]
    BadRegex {
        /// The pattern as cleaned by Docker.
        pattern: String,
        /// What the regexp parser said.
        reason: String,
    },
}

/// Reads `.dockerignore` text into patterns exactly as Docker's
/// `ignorefile.ReadAll` does (comments, blank lines, trimming, `Clean`,
/// leading `/` removed, `!` kept in front).
pub fn read_patterns(text: &str) -> Result<Vec<String>, IgnoreError> {
    Ok(read_patterns_with_lines(text)?
        .into_iter()
        .map(|(_, p)| p)
        .collect())
}

/// [`read_patterns`], each pattern with its 1-based line number.
fn read_patterns_with_lines(text: &str) -> Result<Vec<(usize, String)>, IgnoreError> {
    const MAX_LINE: usize = 64 * 1024 - 1;
    let mut out = Vec::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines: Vec<&str> = text.split('\n').collect();
    if lines.last() == Some(&"") {
        lines.pop();
    }
    for (n, raw) in lines.into_iter().enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.len() > MAX_LINE {
            return Err(IgnoreError::LineTooLong { line: n + 1 });
        }
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut p = String::new();
        if !pattern.is_empty() {
            p = gopath::clean(pattern);
            if p.len() > 1 && p.starts_with('/') {
                p.remove(0);
            }
        }
        if invert {
            p.insert(0, '!');
        }
        out.push((n + 1, p));
    }
    Ok(out)
}

#[derive(Debug, Clone)]
enum MatchType {
    Exact,
    /// `foo**`: a plain prefix (bytes, as Go slices the string).
    Prefix(Vec<u8>),
    /// `**/foo`: a plain suffix, or the path `foo` itself.
    Suffix(Vec<u8>),
    Regex(goregex::GoRegex),
}

/// One compiled pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    cleaned: String,
    exclusion: bool,
    kind: MatchType,
}

impl Pattern {
    /// The pattern as Docker cleaned it, without the `!`.
    pub fn as_str(&self) -> &str {
        &self.cleaned
    }

    /// Whether this is an exception (`!pattern`): a match re-includes.
    pub fn is_exclusion(&self) -> bool {
        self.exclusion
    }

    fn compile(cleaned: String, exclusion: bool) -> Result<Pattern, IgnoreError> {
        // patternmatcher reads the pattern with Go's text/scanner, which
        // drops a leading byte-order mark.
        let chars: Vec<char> = cleaned
            .strip_prefix('\u{feff}')
            .unwrap_or(&cleaned)
            .chars()
            .collect();
        #[derive(PartialEq)]
        enum T {
            Exact,
            Prefix,
            Suffix,
            Regex,
        }
        let mut t = T::Exact;
        let mut re = String::from("^");
        let mut i = 0;
        let mut iter = 0;
        while i < chars.len() {
            let ch = chars[i];
            i += 1;
            match ch {
                '*' if chars.get(i) == Some(&'*') => {
                    i += 1;
                    if chars.get(i) == Some(&'/') {
                        i += 1;
                    }
                    if i >= chars.len() {
                        if t == T::Exact {
                            t = T::Prefix;
                        } else {
                            re.push_str(".*");
                            t = T::Regex;
                        }
                    } else {
                        re.push_str("(.*/)?");
                        t = T::Regex;
                    }
                    if iter == 0 {
                        t = T::Suffix;
                    }
                }
                '*' => {
                    re.push_str("[^/]*");
                    t = T::Regex;
                }
                '?' => {
                    re.push_str("[^/]");
                    t = T::Regex;
                }
                '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                    re.push('\\');
                    re.push(ch);
                }
                '\\' => {
                    if let Some(&next) = chars.get(i) {
                        i += 1;
                        re.push('\\');
                        re.push(next);
                        t = T::Regex;
                    } else {
                        re.push('\\');
                    }
                }
                '[' | ']' => {
                    re.push(ch);
                    t = T::Regex;
                }
                _ => re.push(ch),
            }
            iter += 1;
        }
        let kind = match t {
            T::Exact => MatchType::Exact,
            T::Prefix => {
                MatchType::Prefix(cleaned.as_bytes()[..cleaned.len().saturating_sub(2)].to_vec())
            }
            T::Suffix => {
                MatchType::Suffix(cleaned.as_bytes().get(2..).unwrap_or_default().to_vec())
            }
            T::Regex => {
                re.push('$');
                let compiled = goregex::GoRegex::new(&re).map_err(|e| IgnoreError::BadRegex {
                    pattern: cleaned.clone(),
                    reason: e.to_string(),
                })?;
                MatchType::Regex(compiled)
            }
        };
        Ok(Pattern {
            cleaned,
            exclusion,
            kind,
        })
    }

    /// patternmatcher's `Pattern.match`: this pattern against one path
    /// string, with no parent-directory logic.
    pub fn matches_path(&self, path: &str) -> bool {
        match &self.kind {
            MatchType::Exact => path == self.cleaned,
            MatchType::Prefix(p) => path.as_bytes().starts_with(p),
            MatchType::Suffix(s) => {
                path.as_bytes().ends_with(s)
                    || s.strip_prefix(b"/").is_some_and(|s| path.as_bytes() == s)
            }
            MatchType::Regex(re) => re.is_match(path),
        }
    }

    /// fsutil's `patternWithoutTrailingGlob`.
    fn without_trailing_glob(&self) -> &str {
        let p = self.cleaned.as_str();
        let p = p.strip_suffix("/**").unwrap_or(p);
        p.strip_suffix("/*").unwrap_or(p)
    }
}

/// Per-directory match state carried down a walk (patternmatcher's
/// `MatchInfo`): which patterns matched the directory or one of its parents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchInfo {
    parent_matched: Vec<bool>,
}

/// A compiled `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct IgnoreMatcher {
    patterns: Vec<Pattern>,
    /// fsutil's `onlyPrefixExcludeExceptions`: no exception uses wildcards,
    /// so whether one can reach into a directory is a prefix test.
    only_prefix_exceptions: bool,
}

impl IgnoreMatcher {
    /// Parses `.dockerignore` text ([`read_patterns`]) and compiles it.
    /// Errors name the offending line ([`IgnoreError::AtLine`]).
    pub fn parse(text: &str) -> Result<IgnoreMatcher, IgnoreError> {
        let mut patterns = Vec::new();
        for (line, p) in read_patterns_with_lines(text)? {
            let one = Self::from_patterns([p.as_str()]).map_err(|e| IgnoreError::AtLine {
                line,
                error: Box::new(e),
            })?;
            patterns.extend(one.patterns);
        }
        Ok(Self::from_compiled(patterns))
    }

    /// Compiles patterns as patternmatcher's `New` does (trim, `Clean`, `!`,
    /// syntax check). Empty patterns are skipped.
    pub fn from_patterns<I, S>(patterns: I) -> Result<IgnoreMatcher, IgnoreError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut out = Vec::new();
        for p in patterns {
            let p = p.as_ref().trim();
            if p.is_empty() {
                continue;
            }
            let mut p = gopath::clean(p);
            let exclusion = p.starts_with('!');
            if exclusion {
                if p.len() == 1 {
                    return Err(IgnoreError::IllegalExclusion);
                }
                p.remove(0);
            }
            if gopath::is_bad_pattern(&p) {
                return Err(IgnoreError::BadPattern { pattern: p });
            }
            out.push(Pattern::compile(p, exclusion)?);
        }
        Ok(Self::from_compiled(out))
    }

    fn from_compiled(patterns: Vec<Pattern>) -> IgnoreMatcher {
        const PATTERN_CHARS: &[char] = &['*', '[', ']', '?', '^', '\\'];
        let only_prefix_exceptions = !patterns
            .iter()
            .any(|p| p.exclusion && p.without_trailing_glob().contains(PATTERN_CHARS));
        IgnoreMatcher {
            patterns,
            only_prefix_exceptions,
        }
    }

    /// The compiled patterns, in file order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Whether any pattern is an exception (`!...`).
    pub fn has_exclusions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Whether there are no patterns at all (everything is sent).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// patternmatcher's `MatchesUsingParentResults`: whether `path` (relative,
    /// `/`-separated) is excluded, given the state of its parent directory
    /// (`None` for an entry at the top of the context). Returns the state to
    /// pass to the entry's children if it is a directory.
    pub fn matches_with_parent(&self, path: &str, parent: Option<&MatchInfo>) -> (bool, MatchInfo) {
        let parent = parent.filter(|p| !p.parent_matched.is_empty());
        let mut matched = false;
        let mut info = MatchInfo {
            parent_matched: vec![false; self.patterns.len()],
        };
        for (i, pattern) in self.patterns.iter().enumerate() {
            let mut m = parent.is_some_and(|p| p.parent_matched.get(i).copied().unwrap_or(false));
            if !m {
                if pattern.exclusion != matched {
                    continue;
                }
                m = pattern.matches_path(path);
                if !m && parent.is_none() {
                    m = self.parent_prefix_match(pattern, path);
                }
            }
            info.parent_matched[i] = m;
            if m {
                matched = !pattern.exclusion;
            }
        }
        (matched, info)
    }

    fn parent_prefix_match(&self, pattern: &Pattern, path: &str) -> bool {
        let parent = gopath::dir(path);
        if parent == "." {
            return false;
        }
        let mut end = 0;
        let bytes = parent.as_bytes();
        loop {
            let next = bytes[end..]
                .iter()
                .position(|&b| b == b'/')
                .map(|k| end + k);
            let prefix = &parent[..next.unwrap_or(parent.len())];
            if pattern.matches_path(prefix) {
                return true;
            }
            match next {
                Some(k) => end = k + 1,
                None => return false,
            }
        }
    }

    /// patternmatcher's `MatchesOrParentMatches`: the stateless per-path
    /// decision (every pattern also tried against every parent directory).
    /// Docker's own context walk uses [`IgnoreMatcher::matches`] semantics;
    /// the two differ only in rare pattern orders (see the crate tests).
    pub fn matches_or_parent_matches(&self, path: &str) -> bool {
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.exclusion != matched {
                continue;
            }
            if pattern.matches_path(path) || self.parent_prefix_match(pattern, path) {
                matched = !pattern.exclusion;
            }
        }
        matched
    }

    /// Whether the context walk may skip directory `dir` (already matched as
    /// excluded) without looking inside: no exception could re-include
    /// anything below it. Only decidable this way when no exception uses
    /// wildcards; otherwise the walk must descend.
    pub fn can_prune_dir(&self, dir: &str) -> bool {
        if !self.only_prefix_exceptions {
            return false;
        }
        let dir_slash = format!("{dir}/");
        !self
            .patterns
            .iter()
            .filter(|p| p.exclusion)
            .any(|p| format!("{}/", p.without_trailing_glob()).starts_with(&dir_slash))
    }

    /// Whether `path` (relative to the context root, `/`-separated, no `./`)
    /// is excluded from the build context, exactly as Docker's context walk
    /// decides: the path's ancestors are matched top-down carrying their
    /// state, and a path below a pruned directory is excluded.
    ///
    /// `is_dir` does not change Docker's decision for the path itself
    /// (patterns have no trailing-slash form after cleaning); it is accepted so
    /// callers state what they ask about. Note that an excluded directory is
    /// still sent (without its excluded content) when something inside it is
    /// re-included: use [`walk_context`] for the full list.
    pub fn matches(&self, path: &str, is_dir: bool) -> bool {
        let _ = is_dir;
        let path = path.trim_start_matches("./").trim_end_matches('/');
        if path.is_empty() || path == "." {
            return false;
        }
        let mut info: Option<MatchInfo> = None;
        let mut start = 0;
        while let Some(k) = path[start..].find('/') {
            let ancestor = &path[..start + k];
            let (m, next) = self.matches_with_parent(ancestor, info.as_ref());
            if m && self.can_prune_dir(ancestor) {
                return true;
            }
            info = Some(next);
            start += k + 1;
        }
        self.matches_with_parent(path, info.as_ref()).0
    }

    /// patternmatcher's deprecated `Matches` (one parent level only), which
    /// the Docker CLI still uses to decide whether the build files need an
    /// exception.
    fn matches_legacy(&self, path: &str) -> bool {
        let parent = gopath::dir(path);
        let parent_dirs: Vec<&str> = parent.split('/').collect();
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.exclusion != matched {
                continue;
            }
            let mut m = pattern.matches_path(path);
            let ndirs = pattern.cleaned.split('/').count();
            if !m && parent != "." && ndirs <= parent_dirs.len() {
                m = pattern.matches_path(&parent_dirs[..ndirs].join("/"));
            }
            if m {
                matched = !pattern.exclusion;
            }
        }
        matched
    }

    /// The Docker CLI rule that the build files always reach the builder:
    /// if `.dockerignore` or the Dockerfile (path relative to the context,
    /// when it lies inside it) would be excluded, an exception for it is
    /// appended (`TrimBuildFilesFromExcludes`). Like Docker, this fails if
    /// the Dockerfile's name is not a valid pattern (e.g. it contains `[`).
    pub fn keep_build_files(self, dockerfile: Option<&str>) -> Result<IgnoreMatcher, IgnoreError> {
        let mut extra = Vec::new();
        if self.matches_legacy(".dockerignore") {
            extra.push("!.dockerignore".to_owned());
        }
        if let Some(df) = dockerfile
            && self.matches_legacy(df)
        {
            extra.push(format!("!{df}"));
        }
        if extra.is_empty() {
            return Ok(self);
        }
        let added = IgnoreMatcher::from_patterns(extra)?;
        let mut patterns = self.patterns;
        patterns.extend(added.patterns);
        Ok(Self::from_compiled(patterns))
    }
}

/// Which ignore file applies to a build: `<Dockerfile>.dockerignore` next to
/// the Dockerfile if it exists (BuildKit's per-Dockerfile ignore file), else
/// `<context>/.dockerignore` if it exists, else none.
pub fn find_ignore_file(context_dir: &Path, dockerfile: Option<&Path>) -> Option<PathBuf> {
    if let Some(name) = dockerfile.and_then(Path::file_name) {
        let mut n = name.to_os_string();
        n.push(".dockerignore");
        let candidate = dockerfile.map(|df| df.with_file_name(n));
        if let Some(c) = candidate.filter(|c| c.is_file()) {
            return Some(c);
        }
    }
    let default = context_dir.join(".dockerignore");
    default.is_file().then_some(default)
}
