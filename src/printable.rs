//! Text from the pipeline and the steps, made safe to show on a terminal.
//!
//! Labels, group labels, skip reasons and keys are whatever a pipeline's
//! author, or a target's name, put there, and a failed step's log is
//! whatever the step printed. Written raw, an escape sequence in them
//! clears the screen, sets the window title or moves the cursor over the
//! status column; a carriage return overwrites the line and a newline
//! breaks the summary table. So everything `treekite run` and `treekite
//! explain` show goes through [`printable`], which escapes what a terminal acts on the way
//! Rust's `{:?}` writes it (`\n`, `\u{1b}`): one item stays one line, and
//! the person still sees what was there.

use std::borrow::Cow;

/// `text` with every character a terminal acts on escaped.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(acts_on_terminal) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if acts_on_terminal(c) {
            shown.extend(c.escape_debug());
        } else {
            shown.push(c);
        }
    }
    Cow::Owned(shown)
}

/// Control characters (C0, DEL and C1: escape sequences, newlines,
/// carriage returns, bells), the Unicode line and paragraph separators,
/// and the bidirectional formatting characters, which reorder what
/// follows them on the line. Other characters, combining marks and
/// joiners included, are shown as they are.
fn acts_on_terminal(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn escapes_what_a_terminal_acts_on() {
        assert_eq!(
            printable("\u{1b}[2J\u{1b}]0;title\u{7}x\ny\rz\tw\u{9b}1m\u{7f}"),
            r"\u{1b}[2J\u{1b}]0;title\u{7}x\ny\rz\tw\u{9b}1m\u{7f}"
        );
        assert_eq!(
            printable("a\u{202e}b\u{2066}c\u{2028}"),
            r"a\u{202e}b\u{2066}c\u{2028}"
        );
    }

    #[test]
    fn leaves_other_text_alone() {
        for text in [
            ":nix: build ✓ (from a/b)",
            "e\u{301} देवनागरी 中文 👩\u{200d}👩\u{200d}👧",
            r"back\slash \n",
        ] {
            assert_eq!(printable(text), text);
        }
        // Escaping twice changes nothing more.
        let once = printable("\u{1b}[K").into_owned();
        assert_eq!(printable(&once), once);
    }
}
