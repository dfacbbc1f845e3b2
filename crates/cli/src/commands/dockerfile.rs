//! `berth dockerfile ...`: debugging tools for the Dockerfile frontend.

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct DockerfileArgs {
    #[command(subcommand)]
    command: DockerfileCommand,
}

#[derive(Debug, Subcommand)]
enum DockerfileCommand {
    /// Parse a Dockerfile and print its instructions.
    Parse {
        /// The Dockerfile to parse.
        file: std::path::PathBuf,
    },
    /// Expand words exactly as BuildKit's shell lexer does.
    Expand(super::expand::ExpandArgs),
}

/// Runs `berth dockerfile`; returns the process exit code.
pub fn run(args: DockerfileArgs) -> anyhow::Result<i32> {
    match args.command {
        DockerfileCommand::Parse { file } => {
            anyhow::bail!("parsing {} is not implemented yet", file.display())
        }
        DockerfileCommand::Expand(args) => super::expand::run(args),
    }
}
