//! `berth dockerfile ...`: debugging tools for the Dockerfile frontend.

use std::io::{Read as _, Write as _};

use anyhow::{Context as _, bail};
use berth_dockerfile::Severity;
use clap::{Args, Subcommand, ValueEnum};

#[derive(Debug, Args)]
pub struct DockerfileArgs {
    #[command(subcommand)]
    command: DockerfileCommand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ParseFormat {
    /// JSON: for `parse`, BuildKit's node dump (the fields of PyPI
    /// `dockerfile`); for `lint`, the findings.
    Json,
    /// Text: one line per instruction or finding.
    Text,
}

#[derive(Debug, Subcommand)]
enum DockerfileCommand {
    /// Parse a Dockerfile and print its instructions.
    Parse {
        /// Output format.
        #[arg(long, value_enum, default_value_t = ParseFormat::Json)]
        format: ParseFormat,
        /// The Dockerfile to parse (`-` for standard input).
        file: std::path::PathBuf,
    },
    /// Expand words exactly as BuildKit's shell lexer does.
    Expand(super::expand::ExpandArgs),
    /// Check a Dockerfile with BuildKit's `--check` rules; exits 1 on findings.
    Lint {
        /// Output format.
        #[arg(long, value_enum, default_value_t = ParseFormat::Text)]
        format: ParseFormat,
        /// The Dockerfile to check (`-` for standard input).
        file: std::path::PathBuf,
    },
}

fn read_source(file: &std::path::Path) -> anyhow::Result<(String, String)> {
    let (name, bytes) = if file.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading the Dockerfile from standard input")?;
        ("<stdin>".to_string(), buf)
    } else {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        (file.display().to_string(), bytes)
    };
    match String::from_utf8(bytes) {
        Ok(s) => Ok((name, s)),
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            eprintln!(
                "warning: {name}: not valid UTF-8 at byte {at}; invalid bytes are read as U+FFFD"
            );
            Ok((name, String::from_utf8_lossy(e.as_bytes()).into_owned()))
        }
    }
}

fn parse(format: ParseFormat, file: &std::path::Path) -> anyhow::Result<i32> {
    let (name, src) = read_source(file)?;
    let (df, diags) = berth_dockerfile::parse(&src);
    let mut errors = 0;
    for d in &diags {
        eprint!("{}", d.render(&name, &src));
        if d.severity == Severity::Error {
            errors += 1;
        }
    }
    if errors > 0 {
        bail!("{name}: {errors} error(s); BuildKit would reject this Dockerfile");
    }
    let mut out = std::io::stdout().lock();
    match format {
        ParseFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &berth_dockerfile::dump(&df))?;
            writeln!(out)?;
        }
        ParseFormat::Text => {
            for n in berth_dockerfile::dump(&df) {
                let mut line = format!("{}: {}", n.start_line, n.cmd.unwrap_or_default());
                if let Some(s) = n.sub_cmd {
                    line.push(' ');
                    line.push_str(&s);
                }
                for f in n.flags {
                    line.push(' ');
                    line.push_str(&f);
                }
                line.push(' ');
                line.push_str(&serde_json::to_string(&n.value)?);
                for h in n.heredocs {
                    line.push_str(&format!(" <<{}", h.name));
                }
                writeln!(out, "{line}")?;
            }
        }
    }
    Ok(0)
}

fn lint(format: ParseFormat, file: &std::path::Path) -> anyhow::Result<i32> {
    let (name, src) = read_source(file)?;
    let (df, diags) = berth_dockerfile::parse(&src);
    let errors: Vec<_> = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    for d in &errors {
        eprint!("{}", d.render(&name, &src));
    }
    if !errors.is_empty() {
        bail!(
            "{name}: {} error(s); BuildKit would reject this Dockerfile",
            errors.len()
        );
    }
    let findings = berth_dockerfile::lint::lint(&df, &diags, &src);
    let mut out = std::io::stdout().lock();
    match format {
        ParseFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &findings)?;
            writeln!(out)?;
        }
        ParseFormat::Text => {
            for f in &findings {
                writeln!(
                    out,
                    "{name}:{}:{} {}: {}",
                    f.span.line, f.span.col, f.rule, f.message
                )?;
            }
            if !findings.is_empty() {
                writeln!(out, "{} finding(s)", findings.len())?;
            }
        }
    }
    Ok(i32::from(!findings.is_empty()))
}

/// Runs `berth dockerfile`; returns the process exit code.
pub fn run(args: DockerfileArgs) -> anyhow::Result<i32> {
    match args.command {
        DockerfileCommand::Parse { format, file } => parse(format, &file),
        DockerfileCommand::Expand(args) => super::expand::run(args),
        DockerfileCommand::Lint { format, file } => lint(format, &file),
    }
}
