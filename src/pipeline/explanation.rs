//! What `explain.json` keeps of a finished pipeline: the record
//! `treekite explain` and `summary.md` read, made from what generation
//! already knows (the analysis, the edges, the batches, the parent), so
//! that nothing is evaluated or read twice.

use std::collections::HashMap;

use anyhow::{Result, anyhow};

use super::model::Pipeline;
use crate::pipeline_dir::{
    Drvmap, Explanation, FORMAT_VERSION, ParentRecord, TargetRecord, parse_drvmap,
};

/// The record for `pipeline`, generated against `parent` (whose drvmap is
/// `parent_map`, when there is one) for `branch`.
pub fn explanation(
    pipeline: &Pipeline,
    parent: ParentRecord,
    parent_map: Option<&Drvmap>,
    branch: Option<String>,
) -> Result<Explanation> {
    let mut labels = labels_by_drv(&pipeline.drvmap)?;
    let needs = &pipeline.dependencies.needs;
    let targets = pipeline
        .targets
        .iter()
        .enumerate()
        .map(|(i, target)| {
            let labels = labels.remove(target.drv_path.as_str()).unwrap_or_default();
            TargetRecord {
                key: target.key.clone(),
                parent: parent_map.map(|map| labels.iter().map(|l| map.get(l).cloned()).collect()),
                labels,
                drv: target.drv_path.clone(),
                skip: target.skip,
                needs: needs.get(i).cloned().unwrap_or_default(),
                batch: pipeline.batching.as_ref().map(|b| b.leader[i]),
            }
        })
        .collect();
    Ok(Explanation {
        version: FORMAT_VERSION,
        branch,
        parent,
        dependencies: pipeline.settings.dependencies,
        targets,
        skipped: pipeline.skipped.clone(),
        batching: pipeline.batching.as_ref().map(|b| b.line.clone()),
        graph: pipeline.dependencies.graph.as_ref().map(|g| g.record()),
    })
}

/// The labels of each drvPath in the drvmap (sorted, as Nix prints them):
/// targets sharing a derivation share a step.
fn labels_by_drv(drvmap: &str) -> Result<HashMap<String, Vec<String>>> {
    let map = parse_drvmap(drvmap.as_bytes())
        .map_err(|why| anyhow!("the drvmap mkPipeline printed is {why}"))?;
    let mut labels: HashMap<String, Vec<String>> = HashMap::new();
    for (label, drv_path) in map {
        labels.entry(drv_path).or_default().push(label);
    }
    Ok(labels)
}
