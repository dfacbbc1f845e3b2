//! One module per subcommand group; each is a short file calling library entry points.

pub mod build;
pub mod build_tty;
mod build_cache;
mod build_fetch;
mod build_registry;
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
