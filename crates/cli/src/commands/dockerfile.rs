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
    /// List the stages, their bases and dependencies, and which ones a build
    /// of the target needs (the others are never evaluated).
    Stages {
        /// Output format.
        #[arg(long, value_enum, default_value_t = ParseFormat::Text)]
        format: ParseFormat,
        /// The stage to build (default: the last one).
        #[arg(long)]
        target: Option<String>,
        /// A build argument (KEY=VALUE, or KEY to take it from the environment).
        #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
        build_args: Vec<String>,
        /// The Dockerfile (`-` for standard input).
        file: std::path::PathBuf,
    },
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

fn stages(
    format: ParseFormat,
    file: &std::path::Path,
    target: Option<String>,
    build_args: &[String],
) -> anyhow::Result<i32> {
    use berth_build::plan::{Base, PlanOptions};
    let (name, src) = read_source(file)?;
    let df = match berth_dockerfile::parse_strict(&src) {
        Ok((df, _warnings)) => df,
        Err(d) => {
            eprint!("{}", d.render(&name, &src));
            bail!("{name}: BuildKit would reject this Dockerfile");
        }
    };
    let mut args = std::collections::BTreeMap::new();
    for a in build_args {
        match a.split_once('=') {
            Some((k, v)) => args.insert(k.to_owned(), v.to_owned()),
            None => match std::env::var(a) {
                Ok(v) => args.insert(a.clone(), v),
                Err(_) => continue,
            },
        };
    }
    let options = PlanOptions {
        build_args: args,
        target,
        platform: None,
    };
    // Without a store, base images' ENV is unknown: words that use it expand
    // as if it were empty (stage structure never depends on it).
    let plan = berth_build::plan::plan(&df, &options, &|_| Ok(Vec::new()))
        .map_err(|e| anyhow::anyhow!("{name}:{e}"))?;
    let froms: Vec<_> = df
        .instructions
        .iter()
        .filter(|i| i.kind == Some(berth_dockerfile::Keyword::From))
        .collect();
    let mut rows = Vec::new();
    for (i, from) in froms.iter().enumerate() {
        let words = from.values();
        let declared = match words.as_slice() {
            [_, _, n] => Some(n.to_lowercase()),
            _ => None,
        };
        let planned = plan.stages.get(&i);
        let base = planned.map(|st| match &st.base {
            Base::Scratch => serde_json::json!({"type": "scratch"}),
            Base::Image(r) => serde_json::json!({"type": "image", "ref": r}),
            Base::Stage(j) => serde_json::json!({"type": "stage", "index": j}),
        });
        rows.push(serde_json::json!({
            "index": i,
            "name": declared,
            "line": from.start_line,
            "reachable": planned.is_some(),
            "target": plan.target == i,
            "base": base,
            "deps": planned.map(|st| st.deps().into_iter().collect::<Vec<_>>()),
            "steps": planned.map(|st| st.steps.len()),
        }));
    }
    let mut out = std::io::stdout().lock();
    match format {
        ParseFormat::Json => {
            serde_json::to_writer_pretty(
                &mut out,
                &serde_json::json!({
                    "target": plan.target,
                    "order": plan.order,
                    "stages": rows,
                }),
            )?;
            writeln!(out)?;
        }
        ParseFormat::Text => {
            for r in &rows {
                let label = r["name"]
                    .as_str()
                    .map_or_else(|| r["index"].to_string(), str::to_owned);
                let base = match r["base"]["type"].as_str() {
                    Some("scratch") => "scratch".to_owned(),
                    Some("image") => format!("image {}", r["base"]["ref"].as_str().unwrap_or("")),
                    Some("stage") => format!("stage {}", r["base"]["index"]),
                    _ => "-".to_owned(),
                };
                writeln!(
                    out,
                    "{:>3} {:<16} line {:<4} {:<9} from {:<40} deps {}{}",
                    r["index"],
                    label,
                    r["line"],
                    if r["reachable"] == true {
                        "needed"
                    } else {
                        "skipped"
                    },
                    base,
                    r["deps"],
                    if r["target"] == true {
                        "  (target)"
                    } else {
                        ""
                    },
                )?;
            }
        }
    }
    Ok(0)
}

/// Runs `berth dockerfile`; returns the process exit code.
pub fn run(args: DockerfileArgs) -> anyhow::Result<i32> {
    match args.command {
        DockerfileCommand::Parse { format, file } => parse(format, &file),
        DockerfileCommand::Expand(args) => super::expand::run(args),
        DockerfileCommand::Lint { format, file } => lint(format, &file),
        DockerfileCommand::Stages {
            format,
            target,
            build_args,
            file,
        } => stages(format, &file, target, &build_args),
    }
}
