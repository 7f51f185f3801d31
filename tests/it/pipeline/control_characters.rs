//! Target names holding characters that Buildkite's agent refuses, or
//! changes, when they are raw in an uploaded file (it reads every upload
//! with a YAML parser, yaml.v3): the chunk files carry them as `\uXXXX`,
//! and nothing else differs from plain JSON.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{assert_bkcheck_accepts, chunk_files, generate};
use crate::support::*;

/// One name for each kind: the ends of the refused ranges, NEL (which
/// would become a space), LS and PS (whose neighbouring blanks would be
/// dropped), the two refused non-characters; then an astral character,
/// which must stay raw (yaml.v3 rejects escaped surrogate pairs), and an
/// ordinary non-ASCII one.
const NAMES: [&str; 12] = [
    "del\u{7f}",
    "c1\u{80}",
    "c1\u{84}",
    "a\u{85}b",
    "c1\u{86}",
    "c1\u{9f}",
    "line \u{2028} sep",
    "para \u{2029}--- x",
    "non\u{fffe}",
    "non\u{ffff}",
    "crab🦀",
    "café",
];

/// The characters yaml.v3 refuses raw, or reads as line breaks.
fn rewritten_by_agent(c: char) -> bool {
    matches!(
        c,
        '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{fffe}' | '\u{ffff}'
    )
}

#[test]
fn names_the_agent_would_change_are_escaped_in_chunks() {
    let names = serde_json::to_string(&NAMES).unwrap();
    let out = generate("named", &["--argstr", "names", &names]);
    let files = chunk_files(out.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let text = read(&files[0]);

    let raw: BTreeSet<String> = text
        .chars()
        .filter(|c| rewritten_by_agent(*c))
        .map(|c| format!("U+{:04X}", u32::from(c)))
        .collect();
    assert!(raw.is_empty(), "raw in the chunk: {raw:?}");
    for c in NAMES.concat().chars().filter(|c| rewritten_by_agent(*c)) {
        let escape = format!("\\u{:04x}", u32::from(c));
        assert!(text.contains(&escape), "{escape} in {text}");
    }
    assert!(text.contains("crab🦀") && text.contains("café"), "{text}");
    assert!(
        !text.to_lowercase().contains("\\ud83e"),
        "no surrogate escapes"
    );

    // Read back as JSON: every name, exactly.
    let expected: BTreeSet<String> = NAMES.iter().map(|n| format!("named/{n}")).collect();
    let targets: BTreeSet<String> = chunks(out.path())
        .into_values()
        .flatten()
        .map(|step| step["env"]["READTREE_TARGET"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(targets, expected);
    assert_bkcheck_accepts(out.path());

    // The files that are not uploaded stay valid JSON, with the same names.
    let Value::Object(drvmap) = read_json(out.path().join("drvmap.json")) else {
        panic!("a drvmap is a set")
    };
    assert_eq!(drvmap.keys().cloned().collect::<BTreeSet<_>>(), expected);
    read_json(out.path().join("phases.json"));
}
