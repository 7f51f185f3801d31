//! `treekite build`: realise targets, print one store path per target.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use super::target::Targets;
use super::{gcroot, nix};
use crate::exit::ExitCode;

/// What `treekite build` was asked to do.
#[derive(Debug)]
pub struct Request {
    pub targets: Targets,
    /// The output of each target to print; `None` for `out`, else the
    /// only one.
    pub output: Option<String>,
    pub link: Link,
}

/// Where the GC-root link of each result goes.
#[derive(Debug)]
pub enum Link {
    /// Outside the work tree, under treekite's GC-root directory.
    Default,
    /// Exactly here (one target only; checked by the command line).
    At(PathBuf),
    /// No link at all.
    None,
}

/// One requested output and where its GC-root link goes.
struct Wanted {
    drv_path: String,
    store_path: String,
    link: Option<PathBuf>,
}

pub fn run(request: &Request) -> Result<ExitCode> {
    let out_link = match &request.link {
        Link::At(link) => Some(gcroot::absolute_link(link)?),
        Link::Default | Link::None => None,
    };
    let drvs = request.targets.resolve()?;
    let mut wanted = Vec::with_capacity(drvs.len());
    for drv in &drvs {
        let output = drv.pick_output(request.output.as_deref())?;
        let link = match (&request.link, &out_link) {
            (Link::None, _) => None,
            (_, Some(link)) => Some(link.clone()),
            (_, None) => Some(gcroot::default_dir()?.join(gcroot::default_name(&drv.path, output))),
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
    Ok(ExitCode::Success)
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
