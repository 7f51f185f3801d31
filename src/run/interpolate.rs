//! The variable interpolation `buildkite-agent pipeline upload` applies to a
//! pipeline before Buildkite sees it (the rules of github.com/buildkite/interpolate,
//! as the agent applies them).
//!
//! - `$$` and `\$` each give one `$`; only those two characters are consumed.
//! - `\\` stays `\\`; `$(` stays `$(` (command substitution is the shell's).
//! - `$NAME`, `${NAME}`: the value, or nothing when unset. NAME is a letter
//!   followed by letters, numbers and `_`, in Go's sense: Unicode general
//!   categories L* for letters, N* for numbers, from the Unicode version of
//!   Go's tables (15.0.0), not Rust's broader `is_alphabetic`.
//! - `${NAME:-W}` W when NAME is unset or empty; `${NAME-W}` W when unset;
//!   `${NAME?W}` the value, or the upload fails with W when unset.
//! - `${NAME:O}`, `${NAME:O:L}`: a substring on the value's bytes.
//! - `$` before anything that cannot start a name (a digit, punctuation,
//!   the end of the text) is a literal `$`.
//! - Anything else inside `${…}`, or a missing `}`, fails the upload.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use serde_json::{Map, Value};
use unicode_general_category::get_general_category;

/// Variables visible to interpolation.
pub type Env = HashMap<String, String>;

/// Why the agent would refuse the upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Result of interpolating text.
#[derive(Debug, Default)]
pub struct Expanded {
    pub text: String,
    /// Names substituted by a plain `$NAME`/`${NAME}` (or a substring)
    /// while unset: almost always a `$` meant for the shell.
    pub unset: BTreeSet<String>,
}

/// Interpolates one string.
pub fn interpolate(text: &str, env: &Env) -> Result<Expanded, Error> {
    let chars: Vec<char> = text.chars().collect();
    let mut parser = Parser { s: &chars, i: 0 };
    let items = parser.expression(None)?;
    let mut out = Expanded::default();
    expand(&items, env, &mut out)?;
    Ok(out)
}

/// Interpolates a whole upload (one chunk document) the way the agent does:
/// the pipeline's own `env` first, in order, each variable then visible to
/// the rest; then every string and map key, except step `signature`s and
/// the pipeline's `secrets`. A step's command list is joined with newlines
/// first (the agent decides on the joined text), so it comes back as one
/// string. Errors name the place, e.g. `steps[3].command`.
pub fn document(doc: Value, env: &mut Env) -> Result<(Value, BTreeSet<String>), String> {
    let mut walk = Walk {
        env,
        unset: BTreeSet::new(),
    };
    let doc = match doc {
        Value::Object(map) => Value::Object(walk.top(map)?),
        Value::Array(steps) => Value::Array(walk.steps(steps, "steps")?),
        other => other,
    };
    Ok((doc, walk.unset))
}

struct Walk<'e> {
    env: &'e mut Env,
    unset: BTreeSet<String>,
}

impl Walk<'_> {
    fn text(&mut self, text: &str, path: &str) -> Result<String, String> {
        let expanded = interpolate(text, self.env).map_err(|e| format!("{path}: {e}"))?;
        self.unset.extend(expanded.unset);
        Ok(expanded.text)
    }

    fn top(&mut self, map: Map<String, Value>) -> Result<Map<String, Value>, String> {
        let mut out = Map::new();
        if let Some(Value::Object(block)) = map.get("env") {
            let mut env_out = Map::new();
            for (name, value) in block {
                let path = format!("env.{name}");
                let name = self.text(name, &path)?;
                let value = match value {
                    Value::String(s) => Value::String(self.text(s, &path)?),
                    other => other.clone(),
                };
                self.env.insert(name.clone(), scalar_text(&value));
                env_out.insert(name, value);
            }
            out.insert("env".to_owned(), Value::Object(env_out));
        }
        for (name, value) in map {
            let value = match name.as_str() {
                "env" if value.is_object() => continue,
                "secrets" => value,
                "steps" => match value {
                    Value::Array(steps) => Value::Array(self.steps(steps, "steps")?),
                    other => self.value(other, "steps")?,
                },
                _ => self.value(value, &name)?,
            };
            out.insert(name, value);
        }
        Ok(out)
    }

    fn steps(&mut self, steps: Vec<Value>, path: &str) -> Result<Vec<Value>, String> {
        let mut out = Vec::with_capacity(steps.len());
        for (i, step) in steps.into_iter().enumerate() {
            out.push(self.step(step, &format!("{path}[{i}]"))?);
        }
        Ok(out)
    }

    fn step(&mut self, step: Value, path: &str) -> Result<Value, String> {
        let Value::Object(map) = step else {
            return self.value(step, path);
        };
        let mut out = Map::new();
        for (name, value) in map {
            let here = format!("{path}.{name}");
            let value = match (name.as_str(), value) {
                ("signature", value) => value,
                ("steps", Value::Array(steps)) => Value::Array(self.steps(steps, &here)?),
                ("command" | "commands", Value::Array(lines))
                    if lines.iter().all(Value::is_string) =>
                {
                    let joined: Vec<&str> = lines.iter().filter_map(Value::as_str).collect();
                    Value::String(self.text(&joined.join("\n"), &here)?)
                }
                (_, value) => self.value(value, &here)?,
            };
            let name = self.text(&name, &here)?;
            out.insert(name, value);
        }
        Ok(Value::Object(out))
    }

    fn value(&mut self, value: Value, path: &str) -> Result<Value, String> {
        Ok(match value {
            Value::String(s) => Value::String(self.text(&s, path)?),
            Value::Array(items) => Value::Array(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| self.value(v, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => {
                let mut out = Map::new();
                for (name, v) in map {
                    let here = format!("{path}.{name}");
                    let v = self.value(v, &here)?;
                    out.insert(self.text(&name, &here)?, v);
                }
                Value::Object(out)
            }
            other => other,
        })
    }
}

/// An environment value as text: strings as they are, other JSON as JSON.
pub fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[derive(Debug)]
enum Item {
    Text(String),
    /// `$$`, `\$`, or a `$` that starts nothing: one `$`.
    Dollar,
    Expansion(Expansion),
}

#[derive(Debug)]
struct Expansion {
    name: String,
    op: Op,
}

#[derive(Debug)]
enum Op {
    Plain,
    DefaultIfEmpty(Vec<Item>),
    DefaultIfUnset(Vec<Item>),
    Required(Vec<Item>),
    Substring { offset: i64, length: Option<i64> },
}

struct Parser<'a> {
    s: &'a [char],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }

    fn peek2(&self) -> Option<(char, char)> {
        Some((*self.s.get(self.i)?, *self.s.get(self.i + 1)?))
    }

    fn take(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.i += 1;
        }
        c
    }

    /// Advances while `keep` holds. Like the Go scanner, it also stops at
    /// U+FFFD (its marker for undecodable input).
    fn scan_while(&mut self, keep: impl Fn(char) -> bool) -> String {
        let start = self.i;
        while let Some(c) = self.peek() {
            if c == '\u{FFFD}' || !keep(c) {
                break;
            }
            self.i += 1;
        }
        self.s[start..self.i].iter().collect()
    }

    /// A sequence of text and expansions, up to the end or `stop` (the `}`
    /// closing a default value).
    fn expression(&mut self, stop: Option<char>) -> Result<Vec<Item>, Error> {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                break;
            }
            match self.peek2() {
                Some(('\\', '\\')) => {
                    items.push(Item::Text("\\\\".to_owned()));
                    self.i += 2;
                }
                Some(('\\' | '$', '$')) => {
                    items.push(Item::Dollar);
                    self.i += 2;
                }
                Some(('$', '(')) => {
                    items.push(Item::Text("$(".to_owned()));
                    self.i += 2;
                }
                Some(('$', _)) => items.push(self.dollar()?),
                _ => {
                    // One character, then up to the next `$`, `\` or stop.
                    let first = self.take().unwrap_or_default();
                    let rest = self.scan_while(|r| r != '$' && r != '\\' && Some(r) != stop);
                    items.push(Item::Text(format!("{first}{rest}")));
                }
            }
        }
        Ok(items)
    }

    fn dollar(&mut self) -> Result<Item, Error> {
        self.i += 1; // the `$`
        match self.peek() {
            Some('{') => Ok(Item::Expansion(self.braced()?)),
            c if is_letter(c) => Ok(Item::Expansion(Expansion {
                name: self.name()?,
                op: Op::Plain,
            })),
            _ => Ok(Item::Dollar),
        }
    }

    fn name(&mut self) -> Result<String, Error> {
        let c = self.peek();
        if !is_letter(c) {
            return Err(Error(format!(
                "expected a variable name to start with a letter, got {}",
                show(c)
            )));
        }
        Ok(self.scan_while(is_name_char))
    }

    fn braced(&mut self) -> Result<Expansion, Error> {
        self.take(); // the `{`
        let name = self.name()?;
        if self.peek() == Some('}') {
            self.take();
            return Ok(Expansion {
                name,
                op: Op::Plain,
            });
        }
        let op = match self.take() {
            Some(':') if self.peek() == Some('-') => {
                self.take();
                Op::DefaultIfEmpty(self.expression(Some('}'))?)
            }
            Some(':') => self.substring(&name)?,
            Some('-') => Op::DefaultIfUnset(self.expression(Some('}'))?),
            Some('?') => Op::Required(self.expression(Some('}'))?),
            other => {
                return Err(Error(format!(
                    "in `${{{name}…`: expected an operator (:- - ? :), got {}",
                    show(other)
                )));
            }
        };
        match self.take() {
            Some('}') => Ok(Expansion { name, op }),
            other => Err(Error(format!(
                "`${{{name}` is not closed: expected `}}`, got {}",
                show(other)
            ))),
        }
    }

    fn substring(&mut self, name: &str) -> Result<Op, Error> {
        let unparsable = |what: &str| {
            Error(format!(
                "in `${{{name}:…`: unable to parse the substring {what}"
            ))
        };
        let offset = go_atoi(go_trim_space(&self.scan_while(|r| r != ':' && r != '}')))
            .ok_or_else(|| unparsable("offset"))?;
        let mut length = None;
        if self.peek() != Some('}') {
            self.take(); // the `:` before the length
            let text = self.scan_while(|r| r != '}');
            length = Some(go_atoi(go_trim_space(&text)).ok_or_else(|| unparsable("length"))?);
        }
        Ok(Op::Substring { offset, length })
    }
}

fn expand(items: &[Item], env: &Env, out: &mut Expanded) -> Result<(), Error> {
    for item in items {
        match item {
            Item::Text(text) => out.text.push_str(text),
            Item::Dollar => out.text.push('$'),
            Item::Expansion(e) => expand_one(e, env, out)?,
        }
    }
    Ok(())
}

fn expand_one(e: &Expansion, env: &Env, out: &mut Expanded) -> Result<(), Error> {
    let value = env.get(&e.name);
    match &e.op {
        Op::Plain => match value {
            Some(v) => out.text.push_str(v),
            None => {
                out.unset.insert(e.name.clone());
            }
        },
        Op::DefaultIfEmpty(default) => match value {
            Some(v) if !v.is_empty() => out.text.push_str(v),
            _ => expand(default, env, out)?,
        },
        Op::DefaultIfUnset(default) => match value {
            Some(v) => out.text.push_str(v),
            None => expand(default, env, out)?,
        },
        Op::Required(message) => match value {
            Some(v) => out.text.push_str(v),
            None => {
                let mut text = Expanded::default();
                expand(message, env, &mut text)?;
                let message = if text.text.is_empty() {
                    "not set".to_owned()
                } else {
                    text.text
                };
                return Err(Error(format!(
                    "${}: {message} (`${{{0}?…}}` fails the upload when {0} is unset)",
                    e.name
                )));
            }
        },
        Op::Substring { offset, length } => {
            if value.is_none() {
                out.unset.insert(e.name.clone());
            }
            out.text.push_str(&substring(
                value.map_or("", String::as_str),
                *offset,
                *length,
            ));
        }
    }
    Ok(())
}

/// `${NAME:O:L}` on the value's UTF-8 bytes, clamped to the value.
fn substring(value: &str, offset: i64, length: Option<i64>) -> String {
    let bytes = value.as_bytes();
    let len = bytes.len() as i128;
    let offset = i128::from(offset);
    let start = (if offset < 0 { offset + len } else { offset }).clamp(0, len);
    let end = match length.map(i128::from) {
        None => len,
        Some(l) if l >= 0 => start + l,
        Some(l) => (len + l).max(start),
    }
    .min(len);
    String::from_utf8_lossy(&bytes[start as usize..end as usize]).into_owned()
}

/// Go's `unicode.IsLetter`: general categories Lu, Ll, Lt, Lm, Lo. Rust's
/// `is_alphabetic` is the Alphabetic property, which also takes marks
/// (U+0345, U+093E), symbols (Ⓐ) and letter numbers: Buildkite leaves `$Ⓐ`
/// as text and refuses `${Ⓐ}`.
fn is_letter(c: Option<char>) -> bool {
    use unicode_general_category::GeneralCategory as G;
    c.is_some_and(|c| {
        matches!(
            get_general_category(c),
            G::UppercaseLetter
                | G::LowercaseLetter
                | G::TitlecaseLetter
                | G::ModifierLetter
                | G::OtherLetter
        )
    })
}

/// A character after a name's first: a letter, `_`, or Go's
/// `unicode.IsNumber` (categories Nd, Nl, No: `²` and `Ⅻ` too, not only
/// the decimal digits `unicode.IsDigit` would take).
fn is_name_char(c: char) -> bool {
    use unicode_general_category::GeneralCategory as G;
    c == '_'
        || is_letter(Some(c))
        || matches!(
            get_general_category(c),
            G::DecimalNumber | G::LetterNumber | G::OtherNumber
        )
}

fn show(c: Option<char>) -> String {
    c.map_or_else(|| "end of text".to_owned(), |c| format!("{c:?}"))
}

/// Go's `strings.TrimSpace` (its notion of space, not Rust's).
fn go_trim_space(s: &str) -> &str {
    fn is_go_space(c: char) -> bool {
        matches!(
            c,
            '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r' | ' ' | '\u{85}' | '\u{A0}' | '\u{1680}'
        ) || ('\u{2000}'..='\u{200A}').contains(&c)
            || matches!(
                c,
                '\u{2028}' | '\u{2029}' | '\u{202F}' | '\u{205F}' | '\u{3000}'
            )
    }
    s.trim_matches(is_go_space)
}

/// Go's `strconv.Atoi`: an optional sign, ASCII digits, 64-bit range.
fn go_atoi(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn run(text: &str, pairs: &[(&str, &str)]) -> Option<String> {
        interpolate(text, &env(pairs)).ok().map(|e| e.text)
    }

    #[test]
    fn escapes_and_literals() {
        assert_eq!(run("no dollars", &[]).unwrap(), "no dollars");
        assert_eq!(run("a$$b $$", &[]).unwrap(), "a$b $");
        assert_eq!(run(r"\$HOME", &[("HOME", "h")]).unwrap(), "$HOME");
        assert_eq!(run(r"\\$HOME", &[("HOME", "h")]).unwrap(), r"\\h");
        assert_eq!(run(r"\n \x", &[]).unwrap(), r"\n \x");
        assert_eq!(run("$(pwd) $((2*3))", &[]).unwrap(), "$(pwd) $((2*3))");
        assert_eq!(
            run("$1 $@ $? $# $- $! 5$", &[]).unwrap(),
            "$1 $@ $? $# $- $! 5$"
        );
        assert_eq!(run("$", &[]).unwrap(), "$");
        // The escape covers `$$` only: what follows is parsed again.
        assert_eq!(run("$$$V", &[("V", "v")]).unwrap(), "$v");
        assert_eq!(run("$${A:-$B}", &[("B", "b")]).unwrap(), "${A:-b}");
        assert_eq!(run("$${#a[@]}", &[]).unwrap(), "${#a[@]}");
    }

    #[test]
    fn substitutions() {
        assert_eq!(run("$HOME/bin", &[]).unwrap(), "/bin");
        assert_eq!(run("${HOME}/bin", &[("HOME", "/h")]).unwrap(), "/h/bin");
        assert_eq!(run("${A:-d}", &[("A", "")]).unwrap(), "d");
        assert_eq!(run("${A-d}", &[("A", "")]).unwrap(), "");
        assert_eq!(run("${A-d}", &[]).unwrap(), "d");
        assert_eq!(run("${A:-${B:-$C}}", &[("C", "c")]).unwrap(), "c");
        assert_eq!(run("${A:-x}y}", &[]).unwrap(), "xy}");
        assert_eq!(run("${R?}", &[("R", "")]).unwrap(), "");
        assert_eq!(run("é$Ünï_1x", &[("Ünï_1x", "u")]).unwrap(), "éu");
    }

    #[test]
    fn substrings() {
        let c = [("C", "abcdef")];
        assert_eq!(run("${C:2:3}", &c).unwrap(), "cde");
        assert_eq!(run("${C: -2}", &c).unwrap(), "ef");
        assert_eq!(run("${C:1:-1}", &c).unwrap(), "bcde");
        assert_eq!(run("${C:10}", &c).unwrap(), "");
        assert_eq!(run("${C:0:7}", &[]).unwrap(), "");
    }

    #[test]
    fn failures() {
        for text in [
            "${#a[@]}",
            "${x/y/z}",
            "${1}",
            "${A",
            "${A:-x",
            "${R?}",
            "${A:?oops}",
            "${A:x}",
        ] {
            assert_eq!(run(text, &[]), None, "{text:?} should fail");
        }
        let error = interpolate("${R?is required}", &Env::new()).unwrap_err();
        assert!(error.to_string().contains("is required"), "{error}");
    }

    #[test]
    fn unset_names_are_reported() {
        let e = interpolate("$A ${B} ${C:-x} ${D-y} $$E ${F:1}", &env(&[("B", "b")])).unwrap();
        assert_eq!(e.unset.into_iter().collect::<Vec<_>>(), ["A", "F"]);
    }

    #[test]
    fn documents() {
        let doc = serde_json::json!({
            "env": {"GREETING": "hi $$USER", "WHO": "${NAME:-you}"},
            "steps": [
                {"label": "$WHO", "commands": ["echo $$1", "echo ${WHO}"], "signature": {"value": "$X"}},
                "wait",
                {"group": "g", "steps": [{"command": "echo $GREETING"}]}
            ]
        });
        let mut env = Env::new();
        let (out, unset) = document(doc, &mut env).unwrap();
        assert!(unset.is_empty());
        assert_eq!(out["env"]["GREETING"], "hi $USER");
        assert_eq!(out["steps"][0]["label"], "you");
        assert_eq!(out["steps"][0]["commands"], "echo $1\necho you");
        assert_eq!(out["steps"][0]["signature"]["value"], "$X");
        assert_eq!(out["steps"][2]["steps"][0]["command"], "echo hi $USER");
        let error = document(
            serde_json::json!({"steps": [{"command": "${X?}"}]}),
            &mut Env::new(),
        )
        .unwrap_err();
        assert!(error.starts_with("steps[0].command: "), "{error}");
    }

    /// Compares with bkcheck's re-implementation (shared/buildkite/bkcheck.py,
    /// itself checked against the Go code) on generated strings.
    #[test]
    fn agrees_with_bkcheck() {
        let env = env(&[("A", "abc"), ("E", ""), ("Ü", "ü"), ("LONG", "0123456789")]);
        let texts = generated_texts(3000);
        for (text, (want, _)) in texts.iter().zip(bkcheck(&texts, &env)) {
            let got = interpolate(text, &env).ok().map(|e| e.text);
            assert_eq!(got, want, "interpolating {text:?}");
        }
    }

    /// Names in Unicode, differentially against bkcheck: 5,000 strings
    /// around the characters where Rust's `is_alphabetic` and Go's
    /// `unicode.IsLetter`/`IsNumber` disagree (marks, symbols, letter
    /// numbers), and random ones. Texts with a character that either side's
    /// Unicode tables leave unassigned are not compared: Python's version
    /// (14.0.0 in Python 3.11) is not Go's (15.0.0), but no character
    /// assigned in both changed between letter, number and neither.
    #[test]
    fn unicode_names_agree_with_bkcheck() {
        use unicode_general_category::GeneralCategory;
        let env = env(&[
            ("A", "abc"),
            ("Ⓐ", "circled"),
            ("ͅ", "mark"),
            ("ा", "sign"),
            ("Ⅻ", "twelve"),
            ("Aⅻ", "a-twelve"),
            ("A²", "squared"),
            ("Aͅ", "a-mark"),
            ("中", "zhong"),
        ]);
        let texts = unicode_texts(5000);
        let mut compared = 0;
        for (text, (want, unassigned)) in texts.iter().zip(bkcheck(&texts, &env)) {
            if unassigned
                || text
                    .chars()
                    .any(|c| get_general_category(c) == GeneralCategory::Unassigned)
            {
                continue;
            }
            compared += 1;
            let got = interpolate(text, &env).ok().map(|e| e.text);
            assert_eq!(got, want, "interpolating {text:?}");
        }
        assert!(compared >= 4000, "only {compared} texts compared");
    }

    /// What bkcheck's interpolation makes of each text (`None`: the upload
    /// fails), and whether the text holds a character that Python's Unicode
    /// tables leave unassigned.
    fn bkcheck(texts: &[String], env: &Env) -> Vec<(Option<String>, bool)> {
        let bkcheck = find_bkcheck().expect(
            "bkcheck.py must be at ../shared/buildkite beside the repository (CI puts it there)",
        );
        let script = r#"
import json, sys, unicodedata
sys.path.insert(0, sys.argv[1])
import bkcheck
cases = json.load(sys.stdin)
out = []
for text in cases["texts"]:
    unassigned = any(unicodedata.category(c) == "Cn" for c in text)
    try:
        out.append([bkcheck.interpolate(text, cases["env"]).output, unassigned])
    except bkcheck.InterpolationError:
        out.append([None, unassigned])
json.dump(out, sys.stdout)
"#;
        let input = serde_json::json!({"texts": texts, "env": env});
        let mut child = std::process::Command::new("python3")
            .args(["-c", script, bkcheck.to_str().unwrap()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs");
        serde_json::to_writer(child.stdin.take().unwrap(), &input).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "bkcheck comparison script failed");
        serde_json::from_slice(&output.stdout).unwrap()
    }

    fn find_bkcheck() -> Option<std::path::PathBuf> {
        let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        manifest
            .ancestors()
            .skip(1)
            .take(2)
            .map(|dir| dir.join("shared/buildkite"))
            .find(|dir| dir.join("bkcheck.py").is_file())
    }

    /// A deterministic pseudo-random number generator (xorshift).
    fn xorshift() -> impl FnMut() -> u64 {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    /// Deterministic pseudo-random strings over the characters that matter.
    fn generated_texts(count: usize) -> Vec<String> {
        const PIECES: &[&str] = &[
            "$", "$", "$", "\\", "{", "}", ":", "-", "?", "(", ")", "A", "E", "LONG", "Ü", "Z",
            "_", "1", "-2", " ", "x", "é", "$$", "${", "${A", ":-", "}", "\n",
        ];
        let mut next = xorshift();
        (0..count)
            .map(|_| {
                let len = (next() % 12) as usize;
                (0..len)
                    .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
                    .collect()
            })
            .collect()
    }

    /// Deterministic pseudo-random strings of `$`, braces, ASCII names and
    /// Unicode: letters of every L* category, numbers of every N* category,
    /// marks and symbols that Rust calls alphabetic, and random code points
    /// from ranges dense with assigned characters (scripts, Brahmi's marks,
    /// mathematical letters and digits, emoji).
    fn unicode_texts(count: usize) -> Vec<String> {
        const PIECES: &[&str] = &["$", "$", "$", "${", "}", ":-", "A", "_", "1", " ", "$$"];
        // Marks and symbols that are Alphabetic; numbers of categories Nl,
        // No and Nd; letters Lo, Lt, Lm, Lo, Lu, Lu; symbols and joiners.
        const CHARS: &str =
            "Ⓐⓐ\u{345}\u{93e}\u{93f}\u{e31}\u{5b0}\u{1d165}Ⅻⅻ〇²½٣𝟘ªǅʰ中𝐀Ü🦀\u{200d}·\u{1f1e6}";
        const RANGES: &[(u32, u32)] = &[
            (0x80, 0x3000),
            (0xA000, 0xD7A4),
            (0xF900, 0xFFFE),
            (0x1_1000, 0x1_1200),
            (0x1_D400, 0x1_D800),
            (0x1_F300, 0x1_F700),
        ];
        let chars: Vec<char> = CHARS.chars().collect();
        let mut next = xorshift();
        (0..count)
            .map(|_| {
                let len = 1 + (next() % 8) as usize;
                let mut text = String::new();
                for _ in 0..len {
                    match next() % 3 {
                        0 => {
                            let (low, high) = RANGES[(next() % RANGES.len() as u64) as usize];
                            let code = low + (next() % u64::from(high - low)) as u32;
                            text.extend(char::from_u32(code));
                        }
                        1 => text.push(chars[(next() % chars.len() as u64) as usize]),
                        _ => text.push_str(PIECES[(next() % PIECES.len() as u64) as usize]),
                    }
                }
                text
            })
            .collect()
    }
}
