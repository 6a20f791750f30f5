//! Reading inputs: TEXT arguments, text files (one text per line), JSONL
//! files (`{"id":..,"text":..}` per line), stdin. Read lazily, in chunks.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use embeddings::{Error, Result};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Where texts come from.
#[derive(Debug)]
pub(crate) enum Source {
    /// Command-line arguments.
    Args(Vec<String>),
    /// A file; JSONL when its name ends in `.jsonl`.
    File { path: PathBuf, jsonl: bool },
    /// Standard input.
    Stdin { jsonl: bool },
}

impl Source {
    /// A `--input` value: `-` is stdin.
    pub(crate) fn path(p: &Path) -> Source {
        let jsonl = p
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("jsonl"));
        if p.as_os_str() == "-" {
            Source::Stdin { jsonl }
        } else {
            Source::File {
                path: p.to_owned(),
                jsonl,
            }
        }
    }
}

/// One input: its text, the id it was given (JSONL), and where it came from.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) text: String,
    pub(crate) id: Option<Box<RawValue>>,
    pub(crate) source: Arc<str>,
    pub(crate) line: usize,
}

#[derive(Deserialize)]
struct JsonlLine {
    id: Option<Box<RawValue>>,
    text: Option<String>,
}

struct Open {
    name: Arc<str>,
    reader: Box<dyn BufRead>,
    jsonl: bool,
    line: usize,
}

/// Yields records from the sources in order.
pub(crate) struct InputReader {
    sources: std::vec::IntoIter<Source>,
    current: Option<Open>,
    args: Option<(std::vec::IntoIter<String>, usize)>,
    buf: Vec<u8>,
}

impl InputReader {
    pub(crate) fn new(sources: Vec<Source>) -> Self {
        InputReader {
            sources: sources.into_iter(),
            current: None,
            args: None,
            buf: Vec::new(),
        }
    }

    /// Up to `n` records; empty when every source is exhausted.
    pub(crate) fn next_chunk(&mut self, n: usize) -> Result<Vec<Record>> {
        let mut out = Vec::with_capacity(n.min(1024));
        while out.len() < n {
            match self.next_record()? {
                Some(r) => out.push(r),
                None => break,
            }
        }
        Ok(out)
    }

    fn next_record(&mut self) -> Result<Option<Record>> {
        loop {
            if let Some((args, i)) = &mut self.args {
                if let Some(text) = args.next() {
                    *i += 1;
                    return Ok(Some(Record {
                        text,
                        id: None,
                        source: Arc::from("argument"),
                        line: *i,
                    }));
                }
                self.args = None;
            }
            if let Some(open) = &mut self.current {
                if let Some(r) = read_line(open, &mut self.buf)? {
                    return Ok(Some(r));
                }
                self.current = None;
            }
            match self.sources.next() {
                None => return Ok(None),
                Some(Source::Args(a)) => self.args = Some((a.into_iter(), 0)),
                Some(Source::File { path, jsonl }) => {
                    let f = File::open(&path).map_err(|e| {
                        Error::invalid_input(format!(
                            "cannot read input file {}: {e}",
                            path.display()
                        ))
                    })?;
                    self.current = Some(Open {
                        name: Arc::from(path.display().to_string()),
                        reader: Box::new(BufReader::with_capacity(1 << 16, f)),
                        jsonl,
                        line: 0,
                    });
                }
                Some(Source::Stdin { jsonl }) => {
                    let stdin: Box<dyn Read> = Box::new(std::io::stdin());
                    self.current = Some(Open {
                        name: Arc::from("stdin"),
                        reader: Box::new(BufReader::with_capacity(1 << 16, stdin)),
                        jsonl,
                        line: 0,
                    });
                }
            }
        }
    }
}

fn read_line(open: &mut Open, buf: &mut Vec<u8>) -> Result<Option<Record>> {
    buf.clear();
    let n = open.reader.read_until(b'\n', buf).map_err(|e| {
        Error::invalid_input(format!(
            "cannot read {} after line {}: {e}",
            open.name, open.line
        ))
    })?;
    if n == 0 {
        return Ok(None);
    }
    open.line += 1;
    let line = open.line;
    if buf.ends_with(b"\n") {
        buf.pop();
        if buf.ends_with(b"\r") {
            buf.pop();
        }
    }
    let at = |what: String| Error::invalid_input(format!("{} line {line}: {what}", open.name));
    let text = std::str::from_utf8(buf).map_err(|e| at(format!("not valid UTF-8 ({e})")))?;
    let (text, id) = if open.jsonl {
        let parsed: JsonlLine = serde_json::from_str(text).map_err(|e| {
            at(format!(
                "not a JSON object with a \"text\" field ({e})"
            ))
        })?;
        let text = parsed
            .text
            .ok_or_else(|| at("missing the \"text\" field".to_owned()))?;
        (text, parsed.id)
    } else {
        (text.to_owned(), None)
    };
    if text.is_empty() {
        return Err(at("empty text".to_owned()));
    }
    Ok(Some(Record {
        text,
        id,
        source: open.name.clone(),
        line,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(contents: &[u8], name: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::File::create(&p).unwrap().write_all(contents).unwrap();
        (dir, p)
    }

    #[test]
    fn text_lines_strip_line_endings() {
        let (_d, p) = file(b"one\r\ntwo\nthree", "a.txt");
        let mut r = InputReader::new(vec![Source::path(&p)]);
        let recs = r.next_chunk(10).unwrap();
        let texts: Vec<_> = recs.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(texts, ["one", "two", "three"]);
        assert_eq!(recs[2].line, 3);
        assert!(r.next_chunk(10).unwrap().is_empty());
    }

    #[test]
    fn jsonl_keeps_ids_verbatim() {
        let (_d, p) = file(
            b"{\"id\":\"a\",\"text\":\"x\"}\n{\"id\":7,\"text\":\"y\"}\n{\"text\":\"z\"}\n",
            "a.jsonl",
        );
        let recs = InputReader::new(vec![Source::path(&p)])
            .next_chunk(10)
            .unwrap();
        assert_eq!(recs[0].id.as_ref().unwrap().get(), "\"a\"");
        assert_eq!(recs[1].id.as_ref().unwrap().get(), "7");
        assert!(recs[2].id.is_none());
        assert_eq!(recs[2].text, "z");
    }

    #[test]
    fn bad_lines_are_named_by_number() {
        for (contents, name, want) in [
            (&b"ok\n\xff\xfe\n"[..], "a.txt", "line 2: not valid UTF-8"),
            (b"ok\n\nmore\n", "a.txt", "line 2: empty text"),
            (b"{\"text\":\"x\"}\nnot json\n", "a.jsonl", "line 2: not a JSON object"),
            (b"{\"id\":1}\n", "a.jsonl", "line 1: missing the \"text\" field"),
        ] {
            let (_d, p) = file(contents, name);
            let e = InputReader::new(vec![Source::path(&p)])
                .next_chunk(10)
                .unwrap_err();
            assert!(e.to_string().contains(want), "{e}");
        }
    }

    #[test]
    fn chunks_span_several_sources_in_order() {
        let (_d1, a) = file(b"a1\na2\n", "a.txt");
        let (_d2, b) = file(b"b1\n", "b.txt");
        let mut r = InputReader::new(vec![
            Source::Args(vec!["x".into()]),
            Source::path(&a),
            Source::path(&b),
        ]);
        let first: Vec<_> = r.next_chunk(2).unwrap().into_iter().map(|r| r.text).collect();
        let rest: Vec<_> = r.next_chunk(10).unwrap().into_iter().map(|r| r.text).collect();
        assert_eq!(first, ["x", "a1"]);
        assert_eq!(rest, ["a2", "b1"]);
    }
}
