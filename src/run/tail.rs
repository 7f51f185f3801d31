//! The last lines of a step's log, shown as the step fails.
//!
//! A step may print anything, hundreds of megabytes of it, binary too, and
//! all of it goes to its log file. Reading that file whole to show ten
//! lines took `treekite run` to 1.7 GB for 200 MB of output; only its end
//! is read now, at most [`TAIL_BYTES`], and each line shown is cut to
//! [`LINE_CHARS`], so memory is bounded whatever a step prints.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// How much of a log's end is read: room for the lines shown, however
/// long they are, and little memory.
const TAIL_BYTES: u64 = 64 * 1024;
/// Longer lines are cut (a binary log may have no newline at all).
const LINE_CHARS: usize = 300;

/// The last `n` lines of a log, lossily decoded; none when it cannot be
/// read (a missing log is not worth failing the run for).
pub fn last_lines(log: &Path, n: usize) -> Vec<String> {
    File::open(log)
        .and_then(|file| read_end(file, TAIL_BYTES))
        .map(|(bytes, whole)| lines(&bytes, whole, n))
        .unwrap_or_default()
}

/// The last `max` bytes of `source`, and whether they are all of it.
fn read_end(mut source: impl Read + Seek, max: u64) -> io::Result<(Vec<u8>, bool)> {
    let len = source.seek(SeekFrom::End(0))?;
    let start = len.saturating_sub(max);
    source.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::with_capacity(usize::try_from(len - start).unwrap_or_default());
    source.take(max).read_to_end(&mut bytes)?;
    Ok((bytes, start == 0))
}

/// The last `n` lines of `bytes`. When `bytes` are not the whole log, the
/// first line is only the end of one: it is left out, unless it is the
/// only line there is, which is then shown as the end of a line (`…`).
fn lines(bytes: &[u8], whole: bool, n: usize) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut lines: Vec<String> = text.lines().map(cut).collect();
    if !whole {
        match lines.len() {
            0 => {}
            1 => lines[0].insert(0, '…'),
            _ => drop(lines.remove(0)),
        }
    }
    lines.split_off(lines.len().saturating_sub(n))
}

fn cut(line: &str) -> String {
    match line.char_indices().nth(LINE_CHARS) {
        Some((end, _)) => format!("{}…", &line[..end]),
        None => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Counts the bytes read through it.
    struct Counting<R> {
        inner: R,
        read: u64,
    }

    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.read += n as u64;
            Ok(n)
        }
    }

    impl<R: Seek> Seek for Counting<R> {
        fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
            self.inner.seek(pos)
        }
    }

    #[test]
    fn reads_only_the_end_of_a_huge_log() {
        // 4 GiB of log (a hole: no disk), then the lines that matter.
        let mut log = tempfile::tempfile().unwrap();
        log.set_len(4 << 30).unwrap();
        log.seek(SeekFrom::End(0)).unwrap();
        for i in 1..=30 {
            writeln!(log, "line {i}").unwrap();
        }
        let mut counting = Counting {
            inner: log,
            read: 0,
        };
        let (bytes, whole) = read_end(&mut counting, TAIL_BYTES).unwrap();
        assert!(counting.read <= TAIL_BYTES, "read {} bytes", counting.read);
        assert!(!whole);
        let want: Vec<String> = (21..=30).map(|i| format!("line {i}")).collect();
        assert_eq!(lines(&bytes, whole, 10), want);
    }

    #[test]
    fn a_window_in_the_middle_drops_its_partial_first_line() {
        assert_eq!(lines(b"tial\na\nb\n", false, 10), ["a", "b"]);
        assert_eq!(lines(b"tial\na\nb\n", true, 10), ["tial", "a", "b"]);
        assert_eq!(lines(b"a\nb\nc", true, 2), ["b", "c"]);
        assert_eq!(lines(b"", false, 10), Vec::<String>::new());
    }

    #[test]
    fn one_endless_line_is_shown_cut() {
        let bytes = vec![b'x'; 10_000];
        let shown = lines(&bytes, false, 10);
        assert_eq!(shown.len(), 1);
        assert_eq!(shown[0].chars().count(), 1 + LINE_CHARS + 1);
        assert!(shown[0].starts_with("…x") && shown[0].ends_with("x…"));
    }

    #[test]
    fn binary_is_decoded_lossily() {
        assert_eq!(lines(b"\xff\xfeok\n", true, 10), ["\u{fffd}\u{fffd}ok"]);
    }
}
