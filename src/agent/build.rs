//! `treekite build`: realise targets, print one store path per target.
//!
//! The order that keeps every output rooted (see [`super::gcroot`]): each
//! link's place is checked and hidden from git before anything is built;
//! Nix roots the outputs as it builds them; treekite's links replace Nix's
//! roots only once the outputs are valid.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::gcroot::{self, NixRoots};
use super::nix;
use super::target::Targets;
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
    output: String,
    store_path: String,
    link: Option<PathBuf>,
}

pub fn run(request: &Request) -> Result<ExitCode> {
    let paths = build(request)?;
    let mut stdout = std::io::stdout().lock();
    for path in &paths {
        writeln!(stdout, "{path}").context("writing to stdout")?;
    }
    Ok(ExitCode::Success)
}

/// How many times a build is tried when a collection takes what it
/// needs (a .drv, or an output Nix's own collector lost despite its root).
const ATTEMPTS: usize = 3;

/// Builds and links what `request` asks for; the store path of each
/// target's output, in order.
pub fn build(request: &Request) -> Result<Vec<String>> {
    let out_link = match &request.link {
        Link::At(link) => Some(gcroot::absolute_link(link)?),
        Link::Default | Link::None => None,
    };
    let rooted = !matches!(request.link, Link::None);
    let mut roots = NixRoots::new()?;
    let mut again = Vec::new();
    for attempt in 1..=ATTEMPTS {
        let last = attempt == ATTEMPTS;
        let wanted = want(request, out_link.as_ref(), &mut roots, &again)?;
        if let Err(error) = realise(&wanted, rooted, &mut roots) {
            // A collection may take a .drv between reading it and building
            // it; its attribute path makes it again, rooted this time.
            again = lost_drvs(request, &wanted)?;
            if again.is_empty() || last {
                return Err(error);
            }
            eprintln!(
                "treekite: {} was garbage-collected before it was built; evaluating it again",
                wanted[again[0]].drv_path
            );
            continue;
        }
        // No collection runs while the outputs are checked and linked: a
        // collection already running has ended (Nix 2.8's can delete a
        // path it decided on despite a root made meanwhile), and one
        // starting later finds treekite's links.
        let collector = rooted.then(gcroot::hold_off_collection);
        match wanted.iter().find(|w| !Path::new(&w.store_path).exists()) {
            None => {
                for w in &wanted {
                    if let Some(link) = &w.link {
                        gcroot::place(link, &w.store_path)?;
                    }
                }
                drop(collector);
                // Only now, with treekite's links in place, may Nix's go.
                drop(roots);
                return Ok(wanted.into_iter().map(|w| w.store_path).collect());
            }
            Some(w) if last => bail!(
                "{} was built but its output {} is missing (a garbage collection took it each of {ATTEMPTS} times)",
                w.drv_path,
                w.store_path
            ),
            Some(w) => {
                eprintln!(
                    "treekite: {} was garbage-collected as it was built; building it again",
                    w.store_path
                );
                drop(collector);
                again = lost_drvs(request, &wanted)?;
            }
        }
    }
    unreachable!("the last attempt returns")
}

/// The outputs to build, with their links; every check that can fail on
/// the request is made here, before anything is built.
fn want(
    request: &Request,
    out_link: Option<&PathBuf>,
    roots: &mut NixRoots,
    again: &[usize],
) -> Result<Vec<Wanted>> {
    let drvs = request.targets.resolve(roots, again)?;
    let mut wanted = Vec::with_capacity(drvs.len());
    for drv in &drvs {
        let output = drv.pick_output(request.output.as_deref())?;
        let link = match (&request.link, out_link) {
            (Link::None, _) => None,
            (_, Some(link)) => Some(link.clone()),
            (_, None) => Some(gcroot::default_dir()?.join(gcroot::default_name(&drv.path, output))),
        };
        if let Some(link) = &link {
            gcroot::prepare(link)?;
        }
        wanted.push(Wanted {
            drv_path: drv.path.clone(),
            output: output.to_owned(),
            store_path: drv.output_path(output)?.to_owned(),
            link,
        });
    }
    Ok(wanted)
}

/// Builds every output at once (Nix builds them in parallel), rooted by
/// Nix in `roots` when links are wanted.
fn realise(wanted: &[Wanted], rooted: bool, roots: &mut NixRoots) -> Result<()> {
    let outputs: Vec<nix::Wanted> = wanted
        .iter()
        .map(|w| nix::Wanted {
            drv: &w.drv_path,
            output: &w.output,
        })
        .collect();
    let root = rooted.then(|| roots.next());
    nix::realise(&outputs, root.as_deref())
}

/// The targets (by index) whose .drv a failed build found collected, when
/// each of them has an attribute path to make it again; else none.
fn lost_drvs(request: &Request, wanted: &[Wanted]) -> Result<Vec<usize>> {
    let drvs: Vec<&str> = wanted.iter().map(|w| w.drv_path.as_str()).collect();
    let invalid = nix::invalid(&drvs)?;
    let lost: Vec<usize> = (0..wanted.len())
        .filter(|&i| invalid.contains(&wanted[i].drv_path))
        .collect();
    let remakeable = lost.iter().all(|&i| {
        request
            .targets
            .list
            .get(i)
            .is_some_and(|t| t.attr_path.is_some())
    });
    Ok(if remakeable { lost } else { Vec::new() })
}
