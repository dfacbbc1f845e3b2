//! The interactive explorer (placeholder until the TUI lands).

use berth_inspect::Analysis;
use berth_inspect::source::ImageInfo;

pub fn run(analysis: &Analysis, _info: &ImageInfo) -> anyhow::Result<()> {
    print!("{}", super::summary(analysis));
    Ok(())
}
