//! `berth`: the command-line interface.
//!
//! This crate is glue only: it parses flags, calls one library entry point per
//! subcommand and maps errors to an exit code in one place (`main`). It holds no
//! domain logic; anything worth testing without a process lives in a library crate.

mod commands;

use clap::{Parser, Subcommand};

/// berth: build, store, serve, run and inspect container images.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Dockerfile tools: parse, expand words, lint.
    Dockerfile(commands::dockerfile::DockerfileArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Dockerfile(args) => commands::dockerfile::run(args),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            eprintln!("berth: error: {err:#}");
            std::process::exit(1);
        }
    }
}
