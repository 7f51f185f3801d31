//! The derivations behind a `depends_on` edge: a target's step waits for
//! the nearest targets its derivation needs, possibly through any number
//! of derivations that are not targets (toolchains, wrappers). The graph
//! the analysis read is in `explain.json`; the chain is found here, when
//! asked, rather than stored for every edge.

use std::collections::VecDeque;

use crate::pipeline_dir::{Explanation, GraphRecord};

/// Intermediate derivations shown at each end of a long chain; the ones
/// between are counted instead.
const SHOWN_AT_EACH_END: usize = 3;

/// For each target in `to`, the nodes from target `from` to it (both
/// included), shortest first; `None` where there is none. Like the
/// analysis, the walk does not go through other targets: an edge is to the
/// *nearest* targets.
pub fn chains(
    graph: &GraphRecord,
    targets: usize,
    from: usize,
    to: &[usize],
) -> Vec<Option<Vec<usize>>> {
    let mut came_from: Vec<Option<usize>> = vec![None; graph.nodes.len()];
    let mut queue = VecDeque::from([from]);
    while let Some(node) = queue.pop_front() {
        if node != from && node < targets {
            continue;
        }
        for &input in graph.inputs.get(node).into_iter().flatten() {
            if input != from && came_from.get(input) == Some(&None) {
                came_from[input] = Some(node);
                queue.push_back(input);
            }
        }
    }
    to.iter()
        .map(|&end| {
            let mut path = vec![end];
            let mut node = end;
            while node != from {
                node = (*came_from.get(node)?)?;
                path.push(node);
            }
            path.reverse();
            Some(path)
        })
        .collect()
}

/// A chain in words: `apps/hello ← toolchain-3.drv ← libs/greeting`
/// (targets by label, other derivations by `.drv` name without the hash),
/// long ones shortened in the middle.
pub fn describe(record: &Explanation, graph: &GraphRecord, chain: &[usize]) -> String {
    let name = |node: usize| match record.targets.get(node) {
        Some(target) => target.labels.first().unwrap_or(&target.key).clone(),
        None => {
            let file = graph.nodes.get(node).map_or("?", String::as_str);
            file.split_once('-')
                .map_or(file, |(_, name)| name)
                .to_owned()
        }
    };
    let mut words: Vec<String> = Vec::new();
    let inner = chain.len().saturating_sub(2);
    for (at, &node) in chain.iter().enumerate() {
        let from_end = chain.len() - 1 - at;
        let long = inner > 2 * SHOWN_AT_EACH_END + 1;
        if long && at > SHOWN_AT_EACH_END && from_end > SHOWN_AT_EACH_END {
            if at == SHOWN_AT_EACH_END + 1 {
                words.push(format!("… {} more …", inner - 2 * SHOWN_AT_EACH_END));
            }
            continue;
        }
        words.push(name(node));
    }
    words.join(" ← ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline_dir::{ParentRecord, TargetRecord};

    fn target(label: &str) -> TargetRecord {
        TargetRecord {
            key: format!("drv-{label}"),
            labels: vec![label.to_owned()],
            drv: format!("/nix/store/h-{label}.drv"),
            skip: false,
            needs: Vec::new(),
            batch: None,
            parent: None,
        }
    }

    /// Targets a, b, c (nodes 0–2); a needs b through `inner` tools
    /// (tool-1 ← tool-2 ← …); b needs c, so a reaches c only through b.
    fn sample(inner: usize) -> (Explanation, GraphRecord) {
        let mut nodes: Vec<String> = ["a", "b", "c"].map(|n| format!("hash-{n}.drv")).to_vec();
        let mut inputs: Vec<Vec<usize>> = vec![vec![3], vec![2], vec![]];
        for i in 0..inner {
            nodes.push(format!("hash-tool-{}.drv", i + 1));
            inputs.push(vec![if i + 1 == inner { 1 } else { 4 + i }]);
        }
        let record = Explanation {
            version: 1,
            branch: None,
            parent: ParentRecord::NotAsked,
            dependencies: true,
            targets: ["a", "b", "c"].map(target).to_vec(),
            skipped: Vec::new(),
            batching: None,
            graph: None,
        };
        (record, GraphRecord { nodes, inputs })
    }

    #[test]
    fn chains_go_through_derivations_that_are_not_targets() {
        let (record, graph) = sample(2);
        let found = chains(&graph, 3, 0, &[1, 2]);
        assert_eq!(found, [Some(vec![0, 3, 4, 1]), None]);
        let chain = found[0].as_ref().unwrap();
        assert_eq!(
            describe(&record, &graph, chain),
            "a ← tool-1.drv ← tool-2.drv ← b"
        );
        assert_eq!(chains(&graph, 3, 1, &[2]), [Some(vec![1, 2])]);
    }

    #[test]
    fn long_chains_are_shortened_in_the_middle() {
        let (record, graph) = sample(7);
        let chain = chains(&graph, 3, 0, &[1]).remove(0).unwrap();
        assert_eq!(chain.len(), 9);
        assert_eq!(
            describe(&record, &graph, &chain),
            "a ← tool-1.drv ← tool-2.drv ← tool-3.drv ← tool-4.drv ← tool-5.drv ← tool-6.drv ← tool-7.drv ← b"
        );
        let (record, graph) = sample(8);
        let chain = chains(&graph, 3, 0, &[1]).remove(0).unwrap();
        assert_eq!(
            describe(&record, &graph, &chain),
            "a ← tool-1.drv ← tool-2.drv ← tool-3.drv ← … 2 more … ← tool-6.drv ← tool-7.drv ← tool-8.drv ← b"
        );
    }
}
