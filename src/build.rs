//! `treekite build`: realise targets, print one store path per target.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::cli::BuildArgs;
use crate::exit::bad_input;
use crate::{gcroot, nix, source};

/// One requested output and where its GC-root link goes.
struct Wanted {
    drv_path: String,
    store_path: String,
    link: Option<PathBuf>,
}

pub fn run(args: &BuildArgs) -> Result<()> {
    if args.source.drvs.len() > 1 && args.out_link.is_some() {
        return Err(bad_input(
            "--out-link names one link, so it takes one --drv; drop it to keep several targets' links outside the work tree",
        ));
    }
    let out_link = args
        .out_link
        .as_deref()
        .map(gcroot::absolute_link)
        .transpose()?;
    let drvs = source::resolve(&args.source)?;
    let mut wanted = Vec::with_capacity(drvs.len());
    for drv in &drvs {
        let output = drv.pick_output(args.output.as_deref())?;
        let link = match (&out_link, args.no_out_link) {
            (_, true) => None,
            (Some(link), false) => Some(link.clone()),
            (None, false) => {
                Some(gcroot::default_dir()?.join(gcroot::default_name(&drv.path, output)))
            }
        };
        wanted.push(Wanted {
            drv_path: drv.path.clone(),
            store_path: drv.output_path(output)?.to_owned(),
            link,
        });
    }
    realise_linked(&wanted)?;
    let mut stdout = std::io::stdout().lock();
    for w in &wanted {
        writeln!(stdout, "{}", w.store_path).context("writing to stdout")?;
    }
    Ok(())
}

/// Links first, then builds: the roots exist before the outputs do, so no
/// garbage collection can take an output between its build and its link.
fn realise_linked(wanted: &[Wanted]) -> Result<()> {
    let mut placed = Vec::new();
    let result = (|| {
        for w in wanted {
            if let Some(link) = &w.link {
                gcroot::place(link, &w.store_path)?;
                placed.push(link.clone());
            }
        }
        let drv_paths: Vec<&str> = wanted.iter().map(|w| w.drv_path.as_str()).collect();
        nix::realise(&drv_paths)?;
        for w in wanted {
            if !std::path::Path::new(&w.store_path).exists() {
                bail!(
                    "{} was built but its output {} is missing",
                    w.drv_path,
                    w.store_path
                );
            }
        }
        Ok(())
    })();
    if result.is_err() {
        placed.iter().for_each(|link| gcroot::remove(link));
    }
    result
}
