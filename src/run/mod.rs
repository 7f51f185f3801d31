//! `treekite run` (not yet implemented).

#[allow(dead_code)]
mod branches;
#[allow(dead_code)]
mod interpolate;

use anyhow::{Result, bail};

use crate::cli::RunArgs;

pub fn run(_args: &RunArgs) -> Result<u8> {
    bail!("not implemented yet")
}
