//! One module per subcommand; each is a short file calling library entry points.

pub mod dockerfile;
pub mod expand;
