//! `treekite pipeline` (not yet implemented).
use anyhow::{Result, bail};
use crate::cli::PipelineArgs;
pub fn run(_args: &PipelineArgs) -> Result<()> { bail!("not implemented yet") }
