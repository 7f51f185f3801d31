//! `summary.md`: the pipeline in a few lines a person reads, posted as a
//! Buildkite annotation (`buildkite-agent annotate --style info`): which
//! parent the targets were compared with, what each phase runs, skips and
//! leaves out, whether targets were batched, and which targets build.
//!
//! Labels are whatever a target's attribute names hold (`|`, `*`,
//! backticks, `<`, newlines…), so each goes in a code span long enough
//! for its backticks, with control characters escaped ([`printable`]);
//! other outside text (a reason, a branch) has Markdown's punctuation
//! escaped. An annotation holds at most 1 MiB: at most
//! [`CHANGED_SHOWN`] changed targets are listed, each label cut at
//! [`LABEL_SHOWN`] characters, so the file stays a few KiB.

use std::fmt::Write as _;

use super::index::{Branching, Index, Owner, SkipKind};
use crate::pipeline::{Chunks, jobs};
use crate::pipeline_dir::{ChunkName, Explanation};
use crate::printable::printable;

/// Changed targets listed by label; the rest are counted.
const CHANGED_SHOWN: usize = 50;

/// Characters of a label shown.
const LABEL_SHOWN: usize = 200;

/// The Markdown of `summary.md` for a pipeline of `phases` and `chunks`.
pub fn summary(record: &Explanation, phases: &[String], chunks: &Chunks) -> String {
    let files = phases.iter().flat_map(|phase| {
        let of_phase = chunks.get(phase).map_or(&[][..], Vec::as_slice);
        of_phase.iter().enumerate().map(|(i, steps)| {
            let name = ChunkName {
                phase: phase.clone(),
                number: i as u64 + 1,
            };
            (name, steps.as_slice())
        })
    });
    let index = Index::new(record, phases, files);
    let mut out = String::from("#### treekite pipeline\n\n");
    let parent = record.parent.line(code, text);
    writeln!(out, "**Parent:** {parent}\n").unwrap();
    writeln!(out, "**Targets:** {}\n", target_counts(&index)).unwrap();
    phase_table(&mut out, &index);
    if let Some(line) = &record.batching {
        writeln!(out, "**Batching:** {}\n", text(line)).unwrap();
    }
    changed_targets(&mut out, record);
    out.push_str(
        "Why a step runs, waits or is skipped: `treekite explain <pipeline directory> <label or step key>`.\n",
    );
    out
}

/// Targets (labels) by what happens to them.
fn target_counts(index: &Index) -> String {
    let mut build = 0;
    let mut skipped = [0usize; 4];
    for target in &index.record.targets {
        let kind = match index.meta_skipped(&target.key) {
            Some(i) => index.record.skipped[i].kind.into(),
            None if target.skip => SkipKind::Unchanged,
            None => {
                build += target.labels.len();
                continue;
            }
        };
        skipped[column(kind)] += target.labels.len();
    }
    for entry in &index.record.skipped {
        if !matches!(index.owner(&entry.key), Some(Owner::Target(_))) {
            skipped[column(entry.kind.into())] += 1;
        }
    }
    let [unchanged, ci_skip, broken, _] = skipped;
    format!(
        "{} — {build} to build, {unchanged} unchanged, {ci_skip} skipped by `meta.ci.skip`, {broken} broken",
        build + skipped.iter().sum::<usize>()
    )
}

/// The column of the phase table (and the slot) counting a skip kind.
fn column(kind: SkipKind) -> usize {
    match kind {
        SkipKind::Unchanged => 0,
        SkipKind::CiSkip => 1,
        SkipKind::Broken => 2,
        SkipKind::Other => 3,
    }
}

/// One row per phase: steps, jobs, chunks, skipped by why, left out.
fn phase_table(out: &mut String, index: &Index) {
    let left_out = match &index.record.branch {
        Some(branch) => format!("left out on {}", code(branch)),
        None => "with branch filters (branch unknown)".to_owned(),
    };
    writeln!(
        out,
        "| phase | steps | jobs | chunks | skipped: unchanged | skipped: `meta.ci.skip` | skipped: broken | skipped: other | {left_out} |\n\
         | :-- | --: | --: | --: | --: | --: | --: | --: | --: |"
    )
    .unwrap();
    for phase in index.phases {
        let (mut steps, mut jobs_in, mut filtered) = (0, 0, 0);
        let mut skipped = [0usize; 4];
        for (at, placed) in index.steps.iter().enumerate() {
            if placed.phase != phase || placed.group.is_some() {
                continue;
            }
            steps += 1;
            jobs_in += jobs(placed.step);
            if let Some(kind) = index.skip_kind(at) {
                skipped[column(kind)] += 1;
            }
            if matches!(
                (index.branching(at), &index.record.branch),
                (Branching::LeftOut(_), _) | (Branching::Unknown(_), None)
            ) {
                filtered += 1;
            }
        }
        let [unchanged, ci_skip, broken, other] = skipped;
        writeln!(
            out,
            "| {} | {steps} | {jobs_in} | {} | {unchanged} | {ci_skip} | {broken} | {other} | {filtered} |",
            text(phase),
            index.chunk_count(phase)
        )
        .unwrap();
    }
    out.push('\n');
}

/// The labels of the targets that build, the first [`CHANGED_SHOWN`].
fn changed_targets(out: &mut String, record: &Explanation) {
    let building: Vec<&String> = record
        .targets
        .iter()
        .filter(|t| !t.skip)
        .flat_map(|t| &t.labels)
        .collect();
    if building.is_empty() {
        out.push_str("**Changed targets:** none; no target builds.\n\n");
        return;
    }
    writeln!(out, "**Changed targets** ({} to build):\n", building.len()).unwrap();
    for label in building.iter().take(CHANGED_SHOWN) {
        writeln!(out, "- {}", code(label)).unwrap();
    }
    if building.len() > CHANGED_SHOWN {
        writeln!(out, "- … and {} more", building.len() - CHANGED_SHOWN).unwrap();
    }
    out.push('\n');
}

/// `text` as a code span: shown exactly (control characters escaped, cut
/// at [`LABEL_SHOWN`] characters), whatever backticks or Markdown it holds.
pub fn code(text: &str) -> String {
    let cut = cut(text);
    let shown = printable(&cut);
    let longest = shown.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    // A space on each side keeps a backtick at either end out of the fence
    // (Markdown drops one such space on each side).
    let padded = shown.starts_with('`')
        || shown.ends_with('`')
        || (shown.starts_with(' ') && shown.ends_with(' ') && shown.trim() != "");
    if padded {
        format!("{fence} {shown} {fence}")
    } else {
        format!("{fence}{shown}{fence}")
    }
}

/// Outside text in running Markdown: control characters and the
/// punctuation Markdown acts on escaped.
pub fn text(outside: &str) -> String {
    let mut out = String::with_capacity(outside.len());
    let cut = cut(outside);
    for c in printable(&cut).chars() {
        if "\\`*_[]<>|#!&~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn cut(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(LABEL_SHOWN) {
        Some((end, _)) => format!("{}…", &text[..end]).into(),
        None => text.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::{code, text};

    #[test]
    fn code_spans_hold_any_label() {
        assert_eq!(code("apps/hello"), "`apps/hello`");
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("`x``"), "``` `x`` ```");
        assert_eq!(code("a|b*c<d>"), "`a|b*c<d>`");
        assert_eq!(code("new\nline"), "`new\\nline`");
        assert_eq!(code(" x "), "`  x  `");
        assert_eq!(code(&"x".repeat(300)).chars().count(), 200 + 1 + 2);
    }

    #[test]
    fn outside_text_has_markdown_escaped() {
        assert_eq!(text("no *token* | <b>"), r"no \*token\* \| \<b\>");
        assert_eq!(text("a\nb"), r"a\\nb");
    }
}
