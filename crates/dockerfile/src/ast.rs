//! The syntax tree: what BuildKit's parser yields, with source spans.

use serde::Serialize;

/// A region of the source: byte offsets (`start..end`) and the 1-based line
/// and column (in characters) where it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Span {
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset one past the last byte.
    pub end: usize,
    /// 1-based line of `start`.
    pub line: usize,
    /// 1-based column of `start`, counted in characters.
    pub col: usize,
}

/// A parser directive (`# syntax=`, `# escape=`) from the top of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Directive {
    /// The directive's name, lower-cased (`syntax`, `escape`).
    pub name: String,
    /// Its value, trimmed.
    pub value: String,
    /// The directive's line.
    pub span: Span,
}

/// An instruction flag such as `--mount=type=cache,target=/x`, kept raw as
/// BuildKit keeps it (quotes removed, `\` escapes resolved).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flag {
    /// The flag as BuildKit yields it, e.g. `--from=build`.
    pub raw: String,
    /// Where it is written.
    pub span: Span,
}

impl Flag {
    /// The flag's name without dashes (`from` for `--from=build`).
    pub fn name(&self) -> &str {
        let s = self.raw.trim_start_matches('-');
        s.split_once('=').map_or(s, |(n, _)| n)
    }

    /// The value after the first `=`, if any (`None` for `--link`).
    pub fn value(&self) -> Option<&str> {
        self.raw.split_once('=').map(|(_, v)| v)
    }
}

/// One argument word as BuildKit's node list holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Word {
    /// The text (for exec form: the decoded JSON string; for ENV/LABEL: the
    /// key or the value with its quotes still in place, as BuildKit keeps it).
    pub value: String,
    /// Where it is written (approximate for words that BuildKit synthesizes).
    pub span: Span,
}

/// A here-document attached to RUN, COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heredoc {
    /// The delimiter, quotes removed (`EOF` for `<<'EOF'`).
    pub name: String,
    /// The body, every line with its line ending, without the terminator.
    pub content: String,
    /// `<<-`: leading tabs are stripped from the body when it is used.
    pub chomp: bool,
    /// No part of the delimiter was quoted: variables in the body expand.
    pub expand: bool,
    /// The file descriptor written before `<<` (`3<<EOF`), if any.
    pub fd: Option<u32>,
    /// The body and terminator lines.
    pub span: Span,
}

/// The instructions BuildKit knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
#[allow(missing_docs)]
pub enum Keyword {
    Add,
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    Stopsignal,
    User,
    Volume,
    Workdir,
}

impl Keyword {
    /// Every keyword, in alphabetical order.
    pub const ALL: [Keyword; 18] = [
        Keyword::Add,
        Keyword::Arg,
        Keyword::Cmd,
        Keyword::Copy,
        Keyword::Entrypoint,
        Keyword::Env,
        Keyword::Expose,
        Keyword::From,
        Keyword::Healthcheck,
        Keyword::Label,
        Keyword::Maintainer,
        Keyword::Onbuild,
        Keyword::Run,
        Keyword::Shell,
        Keyword::Stopsignal,
        Keyword::User,
        Keyword::Volume,
        Keyword::Workdir,
    ];

    /// The upper-case name (`RUN`).
    pub fn as_str(self) -> &'static str {
        match self {
            Keyword::Add => "ADD",
            Keyword::Arg => "ARG",
            Keyword::Cmd => "CMD",
            Keyword::Copy => "COPY",
            Keyword::Entrypoint => "ENTRYPOINT",
            Keyword::Env => "ENV",
            Keyword::Expose => "EXPOSE",
            Keyword::From => "FROM",
            Keyword::Healthcheck => "HEALTHCHECK",
            Keyword::Label => "LABEL",
            Keyword::Maintainer => "MAINTAINER",
            Keyword::Onbuild => "ONBUILD",
            Keyword::Run => "RUN",
            Keyword::Shell => "SHELL",
            Keyword::Stopsignal => "STOPSIGNAL",
            Keyword::User => "USER",
            Keyword::Volume => "VOLUME",
            Keyword::Workdir => "WORKDIR",
        }
    }

    /// Looks up an instruction name case-insensitively, with Go's
    /// `strings.ToLower` (so `ENTRYPO\u{130}NT` is ENTRYPOINT, as in BuildKit).
    pub fn from_name(name: &str) -> Option<Keyword> {
        if name.is_ascii() {
            if name.len() > 11 {
                return None;
            }
            let mut buf = [0u8; 11];
            for (d, b) in buf.iter_mut().zip(name.bytes()) {
                *d = b.to_ascii_uppercase();
            }
            return Some(match &buf[..name.len()] {
                b"ADD" => Keyword::Add,
                b"ARG" => Keyword::Arg,
                b"CMD" => Keyword::Cmd,
                b"COPY" => Keyword::Copy,
                b"ENTRYPOINT" => Keyword::Entrypoint,
                b"ENV" => Keyword::Env,
                b"EXPOSE" => Keyword::Expose,
                b"FROM" => Keyword::From,
                b"HEALTHCHECK" => Keyword::Healthcheck,
                b"LABEL" => Keyword::Label,
                b"MAINTAINER" => Keyword::Maintainer,
                b"ONBUILD" => Keyword::Onbuild,
                b"RUN" => Keyword::Run,
                b"SHELL" => Keyword::Shell,
                b"STOPSIGNAL" => Keyword::Stopsignal,
                b"USER" => Keyword::User,
                b"VOLUME" => Keyword::Volume,
                b"WORKDIR" => Keyword::Workdir,
                _ => return None,
            });
        }
        let l = crate::go::lower(name);
        Keyword::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(&l))
    }

    /// Whether BuildKit reads heredocs for this instruction (RUN, COPY, ADD).
    pub fn takes_heredocs(self) -> bool {
        matches!(self, Keyword::Run | Keyword::Copy | Keyword::Add)
    }
}

impl std::fmt::Display for Keyword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One instruction: BuildKit's node with everything it carries, plus spans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Instruction {
    /// The instruction name as written (`run`, `RUN`); empty for a line that
    /// holds only a line continuation.
    pub keyword: String,
    /// The known instruction, if the name is one.
    pub kind: Option<Keyword>,
    /// Where the name is written.
    pub keyword_span: Span,
    /// Flags (`--from=x`), raw.
    pub flags: Vec<Flag>,
    /// The argument words as BuildKit's node list holds them.
    pub args: Vec<Word>,
    /// The arguments are in exec (JSON) form.
    pub json: bool,
    /// ONBUILD's nested instruction.
    pub onbuild: Option<Box<Instruction>>,
    /// Here-documents, in marker order (for ONBUILD they are read, but
    /// BuildKit attaches them to the ONBUILD node itself).
    pub heredocs: Vec<Heredoc>,
    /// The logical line: continuation lines joined, comments dropped.
    pub original: String,
    /// 1-based first line.
    pub start_line: usize,
    /// 1-based last line (including heredoc bodies).
    pub end_line: usize,
    /// The whole instruction, heredoc bodies included.
    pub span: Span,
    /// The argument text after the flags.
    pub args_span: Span,
}

impl Instruction {
    /// The argument values as plain strings.
    pub fn values(&self) -> Vec<&str> {
        self.args.iter().map(|w| w.value.as_str()).collect()
    }
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Dockerfile {
    /// Parser directives found at the top.
    pub directives: Vec<Directive>,
    /// The escape character in force (`\` or `` ` ``).
    pub escape: char,
    /// The instructions, in order.
    pub instructions: Vec<Instruction>,
}

#[cfg(test)]
mod tests {
    use super::Keyword;

    #[test]
    fn keyword_lookup() {
        for k in Keyword::ALL {
            assert_eq!(Keyword::from_name(k.as_str()), Some(k));
            assert_eq!(Keyword::from_name(&k.as_str().to_lowercase()), Some(k));
        }
        assert_eq!(Keyword::from_name("rUn"), Some(Keyword::Run));
        assert_eq!(Keyword::from_name("RUNN"), None);
        assert_eq!(Keyword::from_name("HEALTHCHECKS"), None);
        assert_eq!(Keyword::from_name(""), None);
        assert_eq!(
            Keyword::from_name("ENTRYPO\u{130}NT"),
            Some(Keyword::Entrypoint)
        );
    }
}
