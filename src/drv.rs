//! Reading `.drv` files: which outputs a derivation has and where they go.
//!
//! Output paths come from the derivation itself, never from what `nix-store`
//! prints, which differs between Nix versions and for multi-output
//! derivations.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use nix_derivation::Derivation;

use crate::exit::bad_input;

/// The Nix store directory (`$NIX_STORE_DIR`, else `/nix/store`).
pub fn store_dir() -> String {
    std::env::var("NIX_STORE_DIR")
        .ok()
        .filter(|dir| !dir.is_empty())
        .unwrap_or_else(|| "/nix/store".to_owned())
}

/// Checks that `path` names a `.drv` directly in the Nix store.
pub fn check_path(path: &str) -> Result<()> {
    let store = store_dir();
    let base = path
        .strip_prefix(&store)
        .and_then(|rest| rest.strip_prefix('/'))
        .filter(|base| !base.is_empty() && !base.contains('/'));
    let Some(base) = base else {
        return Err(bad_input(format!(
            "--drv {path:?} is not a path in the Nix store {store}; pass the target's drvPath"
        )));
    };
    if !base.ends_with(".drv") {
        return Err(bad_input(format!(
            "--drv {path:?} is not a derivation (no .drv suffix); pass the target's drvPath, not its output path"
        )));
    }
    Ok(())
}

/// The input derivations of the `.drv` at `path`, for walking the graph.
pub fn read_input_drvs(path: &str) -> Result<Vec<String>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {path}"))?;
    input_drvs(&bytes).map_err(|e| anyhow::anyhow!("{path} is not a valid derivation: {e}"))
}

/// The input derivations of a `.drv` (its second field), read from the
/// ATerm text without parsing the rest: walking thousands of `.drv` files
/// needs nothing else, and their environments can be large.
///
/// Accepts `Derive(…)` and the versioned `DrvWithVersion("…", …)`, and an
/// input's outputs in either form (`["out"]` or the dynamic-derivation
/// `(["out"],[…])`): only each input's path is read.
pub fn input_drvs(bytes: &[u8]) -> std::result::Result<Vec<String>, String> {
    let mut aterm = ATerm { bytes, at: 0 };
    if aterm.eat(b"DrvWithVersion(") {
        aterm.skip_string()?;
        aterm.expect(b",")?;
    } else {
        aterm.expect(b"Derive(")?;
    }
    aterm.skip_value()?; // outputs
    aterm.expect(b",[")?;
    let mut inputs = Vec::new();
    if aterm.eat(b"]") {
        return Ok(inputs);
    }
    loop {
        aterm.expect(b"(")?;
        inputs.push(aterm.string()?);
        while aterm.eat(b",") {
            aterm.skip_value()?;
        }
        aterm.expect(b")")?;
        if aterm.eat(b"]") {
            return Ok(inputs);
        }
        aterm.expect(b",")?;
    }
}

/// A cursor over the ATerm text of a `.drv`.
struct ATerm<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl ATerm<'_> {
    fn eat(&mut self, token: &[u8]) -> bool {
        let found = self.bytes[self.at..].starts_with(token);
        if found {
            self.at += token.len();
        }
        found
    }

    fn expect(&mut self, token: &[u8]) -> std::result::Result<(), String> {
        if self.eat(token) {
            Ok(())
        } else {
            Err(format!("expected {:?} at byte {}", String::from_utf8_lossy(token), self.at))
        }
    }

    /// The end of the string starting at the cursor (after its closing quote).
    fn string_end(&self) -> std::result::Result<usize, String> {
        if self.bytes.get(self.at) != Some(&b'"') {
            return Err(format!("expected a string at byte {}", self.at));
        }
        let mut i = self.at + 1;
        while i < self.bytes.len() {
            match self.bytes[i] {
                b'\\' => i += 2,
                b'"' => return Ok(i + 1),
                _ => i += 1,
            }
        }
        Err("unterminated string".to_owned())
    }

    fn skip_string(&mut self) -> std::result::Result<(), String> {
        self.at = self.string_end()?;
        Ok(())
    }

    /// A string, with Nix's escapes (`\"`, `\\`, `\n`, `\r`, `\t`) undone.
    fn string(&mut self) -> std::result::Result<String, String> {
        let end = self.string_end()?;
        let raw = &self.bytes[self.at + 1..end - 1];
        self.at = end;
        let mut out = Vec::with_capacity(raw.len());
        let mut chars = raw.iter();
        while let Some(&c) = chars.next() {
            out.push(if c != b'\\' {
                c
            } else {
                match chars.next() {
                    Some(b'n') => b'\n',
                    Some(b'r') => b'\r',
                    Some(b't') => b'\t',
                    Some(&other) => other,
                    None => return Err("a string ends in a lone backslash".to_owned()),
                }
            });
        }
        String::from_utf8(out).map_err(|_| "a path is not UTF-8".to_owned())
    }

    /// Skips a string, or a list or tuple of values.
    fn skip_value(&mut self) -> std::result::Result<(), String> {
        let close = match self.bytes.get(self.at) {
            Some(b'"') => return self.skip_string(),
            Some(b'[') => b"]",
            Some(b'(') => b")",
            _ => return Err(format!("expected a value at byte {}", self.at)),
        };
        self.at += 1;
        if self.eat(close) {
            return Ok(());
        }
        loop {
            self.skip_value()?;
            if self.eat(close) {
                return Ok(());
            }
            self.expect(b",")?;
        }
    }
}

/// A parsed derivation: its path and its outputs.
pub struct Drv {
    pub path: String,
    /// Output name → store path, `None` for outputs only known after building
    /// (floating content-addressed).
    pub outputs: BTreeMap<String, Option<String>>,
}

impl Drv {
    /// Reads and parses the `.drv` at `path`.
    pub fn read(path: &str) -> Result<Drv> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {path}"))?;
        Drv::parse(path, &bytes)
    }

    /// Parses the contents of the `.drv` at `path`.
    pub fn parse(path: &str, bytes: &[u8]) -> Result<Drv> {
        let file_name = Path::new(path).file_name().and_then(|n| n.to_str()).unwrap_or(path);
        let name = file_name
            .strip_suffix(".drv")
            .and_then(|n| n.split_once('-').map(|(_, name)| name))
            .unwrap_or(file_name);
        let drv = Derivation::from_aterm_bytes(bytes, name)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("{path} is not a valid derivation"))?;
        let outputs = drv
            .outputs()
            .iter()
            .map(|(output, how)| {
                let known = how.path(drv.name(), output).ok().flatten();
                (output.clone(), known.map(|p| p.to_absolute_path()))
            })
            .collect();
        Ok(Drv { path: path.to_owned(), outputs })
    }

    /// The output to use: `requested` when given, else `out`, else the only one.
    pub fn pick_output<'a>(&'a self, requested: Option<&'a str>) -> Result<&'a str> {
        let names: Vec<&str> = self.outputs.keys().map(String::as_str).collect();
        let picked = match requested {
            Some(name) if self.outputs.contains_key(name) => Some(name),
            Some(name) => {
                return Err(bad_input(format!(
                    "{} has no output {name:?}; its outputs are {}",
                    self.path,
                    names.join(", ")
                )));
            }
            None if self.outputs.contains_key("out") => Some("out"),
            None if names.len() == 1 => Some(names[0]),
            None => None,
        };
        picked.ok_or_else(|| {
            bad_input(format!(
                "{} has several outputs ({}) and none is `out`; choose one with --output",
                self.path,
                names.join(", ")
            ))
        })
    }

    /// The store path of `output`, known before building.
    pub fn output_path(&self, output: &str) -> Result<&str> {
        self.outputs.get(output).and_then(|p| p.as_deref()).ok_or_else(|| {
            bad_input(format!(
                "output {output:?} of {} is content-addressed and has no path before it is built; treekite cannot link it",
                self.path
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The input derivations as nix_derivation reads them (sorted).
    fn full_parse(text: &str) -> Vec<String> {
        let drv = Derivation::from_aterm_bytes(text.as_bytes(), "x").expect("a valid derivation");
        drv.input_derivations().keys().map(|p| p.to_absolute_path()).collect()
    }

    const A: &str = "/nix/store/0c0wyl2d7mbhpsh4v1f4k4zl4c0vnlnx-a.drv";
    const B: &str = "/nix/store/1c0wyl2d7mbhpsh4v1f4k4zl4c0vnlnx-b.drv";

    fn drv(inputs: &str, env: &str) -> String {
        format!(
            r#"Derive([("out","/nix/store/2c0wyl2d7mbhpsh4v1f4k4zl4c0vnlnx-x","",""),("doc","/nix/store/3c0wyl2d7mbhpsh4v1f4k4zl4c0vnlnx-x-doc","","")],[{inputs}],["/nix/store/4c0wyl2d7mbhpsh4v1f4k4zl4c0vnlnx-src"],"x86_64-linux","/bin/sh",["-c","echo \"(\" ] , \\ \n"],[{env}])"#
        )
    }

    #[test]
    fn reads_input_derivations_like_a_full_parse() {
        let env = r#"("name","x"),("quote","a \"[(,)]\" b\\"),("nl","line\nline")"#;
        for inputs in [
            String::new(),
            format!(r#"("{A}",["out"])"#),
            format!(r#"("{A}",["dev","out"]),("{B}",["out"])"#),
        ] {
            let text = drv(&inputs, env);
            assert_eq!(input_drvs(text.as_bytes()).unwrap(), full_parse(&text), "{text}");
        }
    }

    #[test]
    fn reads_versioned_and_dynamic_derivations() {
        let text = format!(
            r#"DrvWithVersion("xp-dyn-drv",[("out","","r:sha256","")],[("{A}",(["out"],[("out",["lib"])])),("{B}",(["out"],[]))],[],"x86_64-linux","/bin/sh",[],[])"#
        );
        assert_eq!(input_drvs(text.as_bytes()).unwrap(), vec![A.to_owned(), B.to_owned()]);
    }

    #[test]
    fn undoes_escapes_in_paths() {
        let text = r#"Derive([],[("/nix/store/a\"b\\c\nd.drv",["out"])],[],"s","b",[],[])"#;
        assert_eq!(input_drvs(text.as_bytes()).unwrap(), vec!["/nix/store/a\"b\\c\nd.drv".to_owned()]);
    }

    #[test]
    fn rejects_what_is_not_a_derivation() {
        for text in ["", "Derive(", "Derive([],", "Derive([],[(\"/nix/store/a.drv\"", "Derive([],[(\"/a\",[\"out\"]", "{\"a\": 1}"] {
            assert!(input_drvs(text.as_bytes()).is_err(), "{text:?}");
        }
    }

    /// Every `.drv` in the store (up to a few hundred) reads the same both
    /// ways: the store holds whatever Nix really writes.
    #[test]
    fn reads_real_derivations_like_a_full_parse() {
        let Ok(entries) = std::fs::read_dir(store_dir()) else { return };
        let drvs = entries
            .filter_map(|e| e.ok()?.path().to_str().map(str::to_owned))
            .filter(|p| p.ends_with(".drv"))
            .take(300);
        for path in drvs {
            let text = std::fs::read_to_string(&path).unwrap();
            let mut fast = input_drvs(text.as_bytes()).unwrap_or_else(|e| panic!("{path}: {e}"));
            fast.sort();
            assert_eq!(fast, full_parse(&text), "{path}");
        }
    }
}
