//! Reading a drvmap that another build wrote: `treekite pipeline`'s
//! `drvmap.json` (label → `{ drvPath, attrPath }`) or TVL's, which has the
//! same shape. A parent build's map decides which targets are skipped, so
//! a file that is not one (another artifact of the same name, a truncated
//! download) must be recognised before the depot reads it.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One entry: only `drvPath` matters to the reader (`mkPipeline` compares
/// it); other fields (`attrPath`) are allowed and ignored.
#[derive(Deserialize)]
#[serde(expecting = "an object with a drvPath")]
struct Entry {
    #[serde(rename = "drvPath")]
    drv_path: String,
}

/// A drvmap: label → drvPath.
pub type Drvmap = BTreeMap<String, String>;

/// Reads `text` as a drvmap: a JSON object whose every value has a
/// `drvPath` naming a `.drv` by absolute path; or says why it is not one
/// (one line, for messages).
pub fn parse_drvmap(text: &[u8]) -> Result<Drvmap, String> {
    let map: BTreeMap<String, Entry> = serde_json::from_slice(text)
        .map_err(|error| format!("not a drvmap (label → {{ drvPath, … }}): {error}"))?;
    if let Some((label, _)) = map
        .iter()
        .find(|(_, entry)| !(entry.drv_path.starts_with('/') && entry.drv_path.ends_with(".drv")))
    {
        return Err(format!(
            "not a drvmap: the drvPath of {label:?} is not the path of a .drv"
        ));
    }
    Ok(map
        .into_iter()
        .map(|(label, entry)| (label, entry.drv_path))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::parse_drvmap;

    fn check_drvmap(text: &[u8]) -> Result<usize, String> {
        parse_drvmap(text).map(|map| map.len())
    }

    #[test]
    fn drvmaps_are_told_from_other_json() {
        let ours = br#"{"a": {"drvPath": "/nix/store/x-a.drv", "attrPath": ["a"]}, "b/c": {"drvPath": "/nix/store/y-c.drv"}}"#;
        assert_eq!(check_drvmap(ours), Ok(2));
        assert_eq!(check_drvmap(b"{}"), Ok(0));
        for (text, says) in [
            (&b"[1, 2]"[..], "not a drvmap (label"),
            (b"{\"a\": {\"attrPath\": []}}", "drvPath"),
            (b"{\"a\": \"/nix/store/x.drv\"}", "not a drvmap"),
            (
                b"{\"a\": {\"drvPath\": \"x.drv\"}}",
                "\"a\" is not the path of a .drv",
            ),
            (
                b"{\"a\": {\"drvPath\": \"/nix/store/x\"}}",
                "not the path of a .drv",
            ),
            (b"{\"a\": ", "not a drvmap"),
        ] {
            let error = check_drvmap(text).unwrap_err();
            assert!(error.contains(says), "{error:?} should say {says:?}");
            assert!(!error.contains('\n'), "{error:?}");
        }
    }
}
