//! `berth dockerfile expand`: BuildKit-exact word expansion, for testing and debugging.

use clap::Args;

#[derive(Debug, Args)]
pub struct ExpandArgs {
    /// Words to expand.
    #[arg(last = true)]
    words: Vec<String>,
}

/// Runs `berth dockerfile expand`; returns the process exit code.
pub fn run(args: ExpandArgs) -> anyhow::Result<i32> {
    anyhow::bail!("expanding {} words is not implemented yet", args.words.len())
}
