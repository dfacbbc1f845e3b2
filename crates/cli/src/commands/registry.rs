//! `berth registry ...`: the OCI distribution registry server.

use clap::{Args, Subcommand};

use super::util::StoreArgs;

#[derive(Debug, Args)]
pub struct RegistryArgs {
    #[command(subcommand)]
    command: RegistryCommand,
}

#[derive(Debug, Subcommand)]
enum RegistryCommand {
    /// Serve the OCI distribution API.
    Serve,
}

/// Runs `berth registry`; returns the process exit code.
pub fn run(store: &StoreArgs, args: RegistryArgs) -> anyhow::Result<i32> {
    let _ = store;
    match args.command {
        RegistryCommand::Serve => anyhow::bail!("registry serve is not implemented yet"),
    }
}
