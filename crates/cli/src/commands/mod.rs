//! One module per subcommand group; each is a short file calling library entry points.

pub mod build;
mod build_cache;
mod build_fetch;
mod build_registry;
pub mod build_tty;
pub mod builder;
pub mod changes;
pub mod dive;
pub mod dockerfile;
pub mod expand;
pub mod image;
pub mod registry;
pub mod system;
pub mod transfer;
pub mod util;
