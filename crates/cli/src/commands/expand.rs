//! `berth dockerfile expand`: BuildKit-exact word expansion, for testing and debugging.
//!
//! Prints each WORD expanded as BuildKit's `ProcessWord` would (one per line),
//! or with `--words` the words `ProcessWords` splits them into; `--format json`
//! prints a JSON array instead. Variables come only from `--env`, never from
//! berth's own environment, so the output is reproducible.

use std::io::Write as _;

use anyhow::{Context as _, bail};
use berth_shell::{EnvMap, Lexer, ShellErrorKind};
use clap::{Args, ValueEnum};

#[derive(Debug, Args)]
pub struct ExpandArgs {
    /// A variable for the expansion, as KEY=VALUE (KEY alone sets it to
    /// empty); repeatable, a later one wins.
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// The escape token, as set by the `# escape=` directive.
    #[arg(long, default_value = "\\", value_parser = parse_escape)]
    escape: char,
    /// Split each WORD into words after expansion (as for ENV, ARG, LABEL, COPY ...).
    #[arg(long)]
    words: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Words to expand (after `--`).
    #[arg(last = true, value_name = "WORD")]
    words_in: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// One expanded word per line.
    Text,
    /// A JSON array of strings.
    Json,
}

fn parse_escape(s: &str) -> Result<char, String> {
    match s {
        "\\" => Ok('\\'),
        "`" => Ok('`'),
        _ => Err(format!(
            "the escape token must be \\ or ` (as `# escape=` allows), not {s:?}"
        )),
    }
}

/// A suggestion to print under BuildKit's (terse) message.
fn hint(kind: &ShellErrorKind) -> Option<&'static str> {
    match kind {
        ShellErrorKind::UnsupportedModifier(m) if m.contains('\u{fffd}') => {
            Some("the word ends inside `${...}`: add the closing `}`")
        }
        ShellErrorKind::UnsupportedModifier(_) => Some(
            "BuildKit supports ${VAR}, ${VAR:-word}, ${VAR-word}, ${VAR:+word}, ${VAR+word}, ${VAR:?msg}, \
             ${VAR?msg}, ${VAR#pat}, ${VAR##pat}, ${VAR%pat}, ${VAR%%pat}, ${VAR/pat/repl} and ${VAR//pat/repl}",
        ),
        ShellErrorKind::BadSubstitution => Some("`${` must be followed by a variable name"),
        ShellErrorKind::UnterminatedSingleQuote | ShellErrorKind::UnterminatedDoubleQuote => {
            Some("close the quote, or escape it with the escape token (\\ or ` per `# escape=`)")
        }
        ShellErrorKind::InvalidPattern { .. } => {
            Some("in patterns `\\` may only escape `*`, `?`, `\\`, `}` and `/`")
        }
        _ => None,
    }
}

/// Runs `berth dockerfile expand`; returns the process exit code.
pub fn run(args: ExpandArgs) -> anyhow::Result<i32> {
    if args.env.iter().any(|e| e.is_empty() || e.starts_with('=')) {
        bail!("--env needs KEY=VALUE with a non-empty KEY");
    }
    let env = EnvMap::from_kv_strings(&args.env);
    let lexer = Lexer::new(args.escape);
    let mut out: Vec<String> = Vec::new();
    for word in &args.words_in {
        let expanded = match lexer.expand(word, &env) {
            Ok(e) => e,
            Err(e) => match hint(&e.kind) {
                Some(h) => bail!("{e}\nhint: {h}"),
                None => return Err(e.into()),
            },
        };
        if args.words {
            out.extend(expanded.words);
        } else {
            out.push(expanded.word);
        }
    }
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    match args.format {
        Format::Json => {
            serde_json::to_writer(&mut w, &out)?;
            writeln!(w)?;
        }
        Format::Text => {
            for line in &out {
                writeln!(w, "{line}")?;
            }
        }
    }
    w.flush().context("writing to stdout")?;
    Ok(0)
}
