//! JSON that Buildkite's agent reads back exactly as written.
//!
//! The agent parses an uploaded file with a YAML parser (go-pipeline on
//! yaml.v3), and JSON is YAML only almost. yaml.v3 refuses raw U+007F to
//! U+009F other than U+0085, and U+FFFE and U+FFFF ("control characters are
//! not allowed": the whole upload fails). It also reads three characters as
//! line breaks, which a double-quoted scalar folds: NEL (U+0085) becomes a
//! space, the blanks around LS (U+2028) and PS (U+2029) are dropped, and a
//! `---` after one ends the document. serde_json writes all of these raw, so
//! a target named with one of them either breaks the upload or builds
//! another attribute.
//!
//! Written as `\uXXXX` they mean the same to JSON and to YAML, so this
//! module writes exactly those characters that way and leaves everything
//! else as serde_json writes it. Characters outside the Basic Multilingual
//! Plane stay raw: JSON would need a surrogate pair, which yaml.v3 rejects.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::Value;
use serde_json::ser::{Formatter, Serializer};

/// Whether the agent's parser would refuse or change `c` written raw inside
/// a JSON string.
pub fn rewritten_by_agent(c: char) -> bool {
    matches!(
        c,
        '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{fffe}' | '\u{ffff}'
    )
}

/// Whether `byte` can start the UTF-8 form of a character
/// [`rewritten_by_agent`]: U+007F itself, or the lead byte of U+0080 to
/// U+009F (0xC2), of U+2028 and U+2029 (0xE2), of U+FFFE and U+FFFF (0xEF).
/// Lead bytes are never continuation bytes, so a match is always at a
/// character boundary; the scan looks at the character only there.
fn may_start_rewritten(byte: u8) -> bool {
    matches!(byte, 0x7f | 0xc2 | 0xe2 | 0xef)
}

/// Writes `value` as compact JSON, with the characters the agent would
/// rewrite escaped.
pub fn write<W: Write>(writer: &mut W, value: &Value) -> serde_json::Result<()> {
    value.serialize(&mut Serializer::with_formatter(writer, AgentFormatter))
}

/// serde_json's compact formatter (the trait's defaults), but for the
/// characters it writes raw in strings.
struct AgentFormatter;

impl Formatter for AgentFormatter {
    /// A fragment has no character serde_json escapes; this escapes those
    /// the agent would rewrite, and copies the rest in runs.
    #[inline]
    fn write_string_fragment<W>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()>
    where
        W: ?Sized + Write,
    {
        let bytes = fragment.as_bytes();
        let mut copied = 0;
        let mut at = 0;
        while at < bytes.len() {
            if !may_start_rewritten(bytes[at]) {
                at += 1;
                continue;
            }
            let c = fragment[at..]
                .chars()
                .next()
                .expect("at a character boundary");
            if rewritten_by_agent(c) {
                writer.write_all(&bytes[copied..at])?;
                write_unicode_escape(writer, c)?;
                copied = at + c.len_utf8();
            }
            at += c.len_utf8();
        }
        writer.write_all(&bytes[copied..])
    }
}

/// `\u` and four lowercase hex digits, as serde_json writes its own escapes.
fn write_unicode_escape<W: ?Sized + Write>(writer: &mut W, c: char) -> io::Result<()> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let code = u32::from(c);
    debug_assert!(code <= 0xffff, "only Basic Multilingual Plane characters");
    let digit = |shift: u32| HEX[((code >> shift) & 0xf) as usize];
    writer.write_all(&[b'\\', b'u', digit(12), digit(8), digit(4), digit(0)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(value: &Value) -> String {
        let mut out = Vec::new();
        write(&mut out, value).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// Every character of the Basic Multilingual Plane, and a sample of
    /// the others (their UTF-8 never starts with a byte the scan stops
    /// at): escaped exactly when the agent would rewrite it, otherwise as
    /// serde_json writes it; and the text parses back to the same string.
    #[test]
    fn escapes_exactly_what_the_agent_rewrites() {
        let astral = (0x10000..=0x10ffff).step_by(997).chain([0x1f980, 0x10ffff]);
        for c in (0..=0xffff).chain(astral).filter_map(char::from_u32) {
            let text = format!("a{c}b");
            let value = Value::String(text.clone());
            let ours = written(&value);
            let expected = if rewritten_by_agent(c) {
                format!("\"a\\u{:04x}b\"", u32::from(c))
            } else {
                serde_json::to_string(&value).unwrap()
            };
            assert_eq!(ours, expected, "U+{:04X}", u32::from(c));
            assert_eq!(serde_json::from_str::<String>(&ours).unwrap(), text);
        }
    }

    #[test]
    fn the_escaped_set_is_the_agents() {
        let escaped: Vec<u32> = (0..=0x10ffff)
            .filter_map(char::from_u32)
            .filter(|c| rewritten_by_agent(*c))
            .map(u32::from)
            .collect();
        let mut expected: Vec<u32> = (0x7f..=0x9f).collect();
        expected.extend([0x2028, 0x2029, 0xfffe, 0xffff]);
        assert_eq!(escaped, expected);
        for c in escaped.into_iter().filter_map(char::from_u32) {
            let mut utf8 = [0; 4];
            assert!(may_start_rewritten(c.encode_utf8(&mut utf8).as_bytes()[0]));
        }
    }

    #[test]
    fn keys_and_runs_are_escaped_and_astral_characters_stay_raw() {
        let value =
            serde_json::json!({ "k\u{85}": ["\u{7f}\u{7f}x\u{2028}--- y", "🦀\u{ffff}é\n"] });
        assert_eq!(
            written(&value),
            r#"{"k\u0085":["\u007f\u007fx\u2028--- y","🦀\uffffé\n"]}"#
        );
    }
}
