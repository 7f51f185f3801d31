//! `treekite upload` (not yet implemented).
use anyhow::{Result, bail};
use crate::cli::UploadArgs;
pub fn run(_args: &UploadArgs) -> Result<()> { bail!("not implemented yet") }
