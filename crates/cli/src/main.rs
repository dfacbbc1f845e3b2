//! `berth`: the command-line interface.
//!
//! This crate is glue only: it parses flags, calls one library entry point per
//! subcommand and maps errors to an exit code in one place (`main`). It holds no
//! domain logic; anything worth testing without a process lives in a library crate.

mod commands;

use clap::{Parser, Subcommand};
use commands::{image, system, util::StoreArgs};

/// berth: build, store, serve, run and inspect container images.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build an image from a Dockerfile.
    Build(commands::build::BuildArgs),
    /// Manage the build cache.
    #[command(subcommand)]
    Builder(commands::builder::BuilderCommand),
    /// Load images from a docker-archive or OCI archive.
    Load(image::LoadArgs),
    /// Save images to a docker-archive (default) or OCI archive.
    Save(image::SaveArgs),
    /// Create a one-layer image from a root filesystem tarball.
    Import(image::ImportArgs),
    /// List images.
    #[command(alias = "image-ls")]
    Images(image::ImagesArgs),
    /// Give an image another name.
    Tag(image::TagArgs),
    /// Remove images.
    Rmi(image::RmiArgs),
    /// Show an image's configuration as JSON (like `docker image inspect`).
    Inspect(image::InspectArgs),
    /// Show an image's history.
    History(image::HistoryArgs),
    /// Manage images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Manage the store.
    #[command(subcommand)]
    System(SystemCommand),
    /// Dockerfile tools: parse, expand words, lint.
    Dockerfile(commands::dockerfile::DockerfileArgs),
    /// Explore an image layer by layer; gate CI on wasted space.
    Dive(commands::dive::DiveArgs),
    /// Run an OCI distribution registry (and pull-through mirror).
    Registry(commands::registry::RegistryArgs),
    /// Pull an image from a registry into the store.
    Pull(commands::transfer::PullArgs),
    /// Push an image from the store to a registry.
    Push(commands::transfer::PushArgs),
    /// Log in to a registry (credentials are kept in berth's config directory).
    Login(commands::transfer::LoginArgs),
    /// Forget the credentials for a registry.
    Logout(commands::transfer::LogoutArgs),
}

#[derive(Debug, Subcommand)]
enum ImageCommand {
    /// Remove dangling images (all unused images with -a) and unreferenced blobs.
    Prune(image::PruneArgs),
    /// List images.
    Ls(image::ImagesArgs),
    /// Remove images.
    Rm(image::RmiArgs),
}

#[derive(Debug, Subcommand)]
enum SystemCommand {
    /// Show disk usage.
    Df,
    /// Verify every blob's digest and that every image is complete.
    Check(system::CheckArgs),
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    let s = &cli.store;
    match cli.command {
        Command::Build(a) => commands::build::run(s, a),
        Command::Builder(c) => commands::builder::run(s, c),
        Command::Load(a) => image::load(s, a),
        Command::Save(a) => image::save(s, a),
        Command::Import(a) => image::import_cmd(s, a),
        Command::Images(a) | Command::Image(ImageCommand::Ls(a)) => image::images(s, a),
        Command::Tag(a) => image::tag(s, a),
        Command::Rmi(a) | Command::Image(ImageCommand::Rm(a)) => image::rmi(s, a),
        Command::Inspect(a) => image::inspect_cmd(s, a),
        Command::History(a) => image::history(s, a),
        Command::Image(ImageCommand::Prune(a)) => image::prune(s, a),
        Command::System(SystemCommand::Df) => system::df(s),
        Command::System(SystemCommand::Check(a)) => system::check(s, a),
        Command::Dockerfile(a) => commands::dockerfile::run(a),
        Command::Dive(a) => commands::dive::run(s, a),
        Command::Registry(a) => commands::registry::run(s, a),
        Command::Pull(a) => commands::transfer::pull(s, a),
        Command::Push(a) => commands::transfer::push(s, a),
        Command::Login(a) => commands::transfer::login(a),
        Command::Logout(a) => commands::transfer::logout(a),
    }
}

fn main() {
    // RUN steps re-execute this binary as the sandbox's init stage.
    berth_sandbox::init_if_requested();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            eprintln!("berth: error: {err:#}");
            std::process::exit(1);
        }
    }
}
