//! `berth dockerfile expand`: BuildKit-exact word expansion, for testing and debugging.
//!
//! Prints each WORD expanded as BuildKit's `ProcessWord` would (one per line),
//! or with `--words` the words `ProcessWords` splits them into; `--format json`
//! prints a JSON array instead. Variables come only from `--env`, never from
//! berth's own environment, so the output is reproducible.

use std::io::Write as _;

use anyhow::{Context as _, bail};
use berth_shell::{EnvMap, Lexer};
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

/// Runs `berth dockerfile expand`; returns the process exit code.
pub fn run(args: ExpandArgs) -> anyhow::Result<i32> {
    if args.env.iter().any(|e| e.is_empty() || e.starts_with('=')) {
        bail!("--env needs KEY=VALUE with a non-empty KEY");
    }
    let env = EnvMap::from_kv_strings(&args.env);
    let lexer = Lexer::new(args.escape);
    let mut out: Vec<String> = Vec::new();
    for word in &args.words_in {
        let expanded = lexer.expand(word, &env)?;
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
