//! `berth dive`: dive-like layer inspection and CI gate.

use clap::Args;

use super::util::StoreArgs;

#[derive(Debug, Args)]
pub struct DiveArgs {
    /// Image to analyse.
    image: String,
}

/// Runs `berth dive`; returns the process exit code.
pub fn run(store: &StoreArgs, args: DiveArgs) -> anyhow::Result<i32> {
    let _ = store;
    anyhow::bail!("dive {} is not implemented yet", args.image)
}
