//! Reading inputs: TEXT arguments, text files (one text per line), JSONL
//! (`{"id":..,"text":..}` per line, field names configurable), CSV (a header
//! row, a text column and an optional id column), stdin. Read lazily, one
//! item at a time; every bad item is an error naming its source and line.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use embeddings::{Error, Result};
use serde_json::value::RawValue;

use crate::args::InputFormat;

/// Where texts come from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// Command-line arguments.
    Args(Vec<String>),
    /// A file.
    File { path: PathBuf, format: InputFormat },
    /// Standard input.
    Stdin { format: InputFormat },
}

impl Source {
    /// A `--input` value (`-` is stdin); the format from `forced`, else the extension.
    pub(crate) fn path(p: &Path, forced: Option<InputFormat>) -> Source {
        let by_ext = match p
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("jsonl" | "ndjson") => InputFormat::Jsonl,
            Some("csv") => InputFormat::Csv,
            _ => InputFormat::Lines,
        };
        let format = forced.unwrap_or(by_ext);
        if p.as_os_str() == "-" {
            Source::Stdin { format }
        } else {
            Source::File {
                path: p.to_owned(),
                format,
            }
        }
    }

    /// Whether the source can be read a second time from the start (TEXT
    /// arguments and regular files), as `--resume` must; a pipe, a FIFO,
    /// a terminal or stdin cannot.
    pub(crate) fn rereadable(&self) -> bool {
        match self {
            Source::Args(_) => true,
            Source::Stdin { .. } => false,
            Source::File { path, .. } => std::fs::metadata(path).is_ok_and(|m| m.is_file()),
        }
    }

    /// What a message calls the source.
    pub(crate) fn name(&self) -> String {
        match self {
            Source::Args(_) => "the TEXT arguments".to_owned(),
            Source::Stdin { .. } => "stdin".to_owned(),
            Source::File { path, .. } => path.display().to_string(),
        }
    }

    /// Lines in the source (for progress totals), when cheap to know: only
    /// a regular file is counted (reading a pipe or a FIFO to count it would
    /// consume its inputs).
    pub(crate) fn count_items(&self) -> Option<u64> {
        match self {
            Source::Args(a) => Some(a.len() as u64),
            Source::Stdin { .. } => None,
            Source::File { path, format } => {
                if !std::fs::metadata(path).ok()?.is_file() {
                    return None;
                }
                let mut f = BufReader::with_capacity(1 << 16, File::open(path).ok()?);
                // The last three bytes: a blank last line is not an input.
                let (mut n, mut tail) = (0u64, [0u8; 3]);
                let mut seen = 0usize;
                loop {
                    let buf = f.fill_buf().ok()?;
                    if buf.is_empty() {
                        break;
                    }
                    n += buf.iter().filter(|&&b| b == b'\n').count() as u64;
                    for &b in buf.iter().rev().take(3).rev() {
                        tail = [tail[1], tail[2], b];
                    }
                    seen += buf.len();
                    let len = buf.len();
                    f.consume(len);
                }
                let tail = &tail[3 - seen.min(3)..];
                if !tail.is_empty() && !tail.ends_with(b"\n") {
                    n += 1;
                } else if tail.ends_with(b"\n\n")
                    || tail.ends_with(b"\n\r\n")
                    || tail == b"\n"
                    || tail == b"\r\n"
                {
                    // The blank last line (see `read_item`).
                    n -= 1;
                }
                // The CSV header is not an item.
                Some(if *format == InputFormat::Csv {
                    n.saturating_sub(1)
                } else {
                    n
                })
            }
        }
    }
}

/// One input: its text, the id it was given (JSONL, CSV), where it came from.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) text: String,
    pub(crate) id: Option<Box<RawValue>>,
    pub(crate) source: Arc<str>,
    pub(crate) line: u64,
}

/// Field names for JSONL and CSV.
#[derive(Debug, Clone)]
pub(crate) struct Fields {
    pub(crate) text: String,
    pub(crate) id: String,
}

enum Open {
    Lines {
        name: Arc<str>,
        reader: Box<dyn BufRead + Send>,
        jsonl: bool,
        line: u64,
        /// Bytes read so far.
        offset: u64,
    },
    Csv {
        name: Arc<str>,
        reader: csv::Reader<Box<dyn Read + Send>>,
        text_col: usize,
        id_col: Option<usize>,
        record: csv::ByteRecord,
    },
}

/// Where the reading is: the source (its position in the list) and the
/// bytes of it consumed by the items returned so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SourcePos {
    pub(crate) source: usize,
    pub(crate) offset: u64,
}

impl Open {
    /// Bytes of the source consumed by the items read so far.
    fn offset(&self) -> u64 {
        match self {
            Open::Lines { offset, .. } => *offset,
            Open::Csv { reader, .. } => reader.position().byte(),
        }
    }
}

/// Yields the items of every source in order. An item is `Ok(Record)` or an
/// error naming a bad line; either way it counts as one item (its index).
pub(crate) struct InputReader {
    sources: std::vec::IntoIter<Source>,
    /// The position of the current source in the list (+1).
    opened: usize,
    /// The end of the last item returned.
    pos: SourcePos,
    current: Option<Open>,
    args: Option<(std::vec::IntoIter<String>, u64)>,
    fields: Fields,
    buf: Vec<u8>,
    /// A source that could not be opened: the reading stops here.
    fatal: bool,
}

impl InputReader {
    pub(crate) fn new(sources: Vec<Source>, fields: Fields) -> Self {
        InputReader {
            sources: sources.into_iter(),
            opened: 0,
            pos: SourcePos::default(),
            current: None,
            args: None,
            fields,
            buf: Vec::new(),
            fatal: false,
        }
    }

    /// Whether the last error ends the reading (an unreadable source) rather
    /// than concerning one item.
    pub(crate) fn is_fatal(&self) -> bool {
        self.fatal
    }

    /// Where the last item returned by [`next_item`](Self::next_item) ends.
    pub(crate) fn position(&self) -> SourcePos {
        self.pos
    }

    /// The next item, or `None` when every source is exhausted.
    pub(crate) fn next_item(&mut self) -> Option<Result<Record>> {
        let item = self.next_inner();
        if let Some(open) = &self.current {
            self.pos = SourcePos {
                source: self.opened - 1,
                offset: open.offset(),
            };
        }
        item
    }

    fn next_inner(&mut self) -> Option<Result<Record>> {
        if self.fatal {
            return None;
        }
        loop {
            if let Some((args, i)) = &mut self.args {
                if let Some(text) = args.next() {
                    *i += 1;
                    let line = *i;
                    self.pos = SourcePos {
                        source: self.opened - 1,
                        offset: line,
                    };
                    if text.is_empty() {
                        return Some(Err(Error::invalid_input(format!(
                            "argument {line}: empty text"
                        ))));
                    }
                    return Some(Ok(Record {
                        text,
                        id: None,
                        source: Arc::from("argument"),
                        line,
                    }));
                }
                self.args = None;
            }
            if let Some(open) = &mut self.current {
                match read_item(open, &mut self.buf, &self.fields) {
                    Ok(None) => self.current = None,
                    Ok(Some(r)) => return Some(Ok(r)),
                    Err(ItemError::Item(e)) => return Some(Err(e)),
                    Err(ItemError::Fatal(e)) => {
                        self.fatal = true;
                        return Some(Err(e));
                    }
                }
                continue;
            }
            let source = self.sources.next()?;
            self.opened += 1;
            self.pos = SourcePos {
                source: self.opened - 1,
                offset: 0,
            };
            let opened = match source {
                Source::Args(a) => {
                    self.args = Some((a.into_iter(), 0));
                    continue;
                }
                Source::File { path, format } => match File::open(&path) {
                    Ok(f) => self.open(path.display().to_string(), Box::new(f), format),
                    Err(e) => Err(Error::invalid_input(format!(
                        "cannot read input file {}: {e}",
                        path.display()
                    ))),
                },
                Source::Stdin { format } => {
                    self.open("stdin".to_owned(), Box::new(std::io::stdin()), format)
                }
            };
            match opened {
                Ok(o) => self.current = Some(o),
                Err(e) => {
                    self.fatal = true;
                    return Some(Err(e));
                }
            }
        }
    }

    fn open(&self, name: String, read: Box<dyn Read + Send>, format: InputFormat) -> Result<Open> {
        let name: Arc<str> = Arc::from(name);
        match format {
            InputFormat::Lines | InputFormat::Jsonl => Ok(Open::Lines {
                name,
                reader: Box::new(BufReader::with_capacity(1 << 16, read)),
                jsonl: format == InputFormat::Jsonl,
                line: 0,
                offset: 0,
            }),
            InputFormat::Csv => {
                let mut reader = csv::ReaderBuilder::new()
                    .has_headers(true)
                    .flexible(true)
                    .from_reader(read);
                let headers = reader.byte_headers().map_err(|e| {
                    Error::invalid_input(format!("{name} line 1: cannot read the CSV header: {e}"))
                })?;
                let find = |f: &str| headers.iter().position(|h| h == f.as_bytes());
                let text_col = find(&self.fields.text).ok_or_else(|| {
                    Error::invalid_input(format!(
                        "{name} line 1: no column named {:?} in the CSV header (choose one with --text-field)",
                        self.fields.text
                    ))
                })?;
                let id_col = find(&self.fields.id);
                Ok(Open::Csv {
                    name,
                    reader,
                    text_col,
                    id_col,
                    record: csv::ByteRecord::new(),
                })
            }
        }
    }
}

/// A UTF-8 byte order mark, as some editors put at the start of a file.
const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

enum ItemError {
    /// This item is bad; the next may be fine.
    Item(Error),
    /// The source cannot be read any further.
    Fatal(Error),
}

fn read_item(
    open: &mut Open,
    buf: &mut Vec<u8>,
    fields: &Fields,
) -> Result<Option<Record>, ItemError> {
    match open {
        Open::Lines {
            name,
            reader,
            jsonl,
            line,
            offset,
        } => {
            buf.clear();
            let n = reader.read_until(b'\n', buf).map_err(|e| {
                ItemError::Fatal(Error::invalid_input(format!(
                    "cannot read {name} after line {line}: {e}"
                )))
            })?;
            if n == 0 {
                return Ok(None);
            }
            *offset += n as u64;
            *line += 1;
            if *line == 1 && buf.starts_with(UTF8_BOM) {
                buf.drain(..UTF8_BOM.len());
            }
            let at = |what: String| {
                ItemError::Item(Error::invalid_input(format!("{name} line {line}: {what}")))
            };
            if buf.ends_with(b"\n") {
                buf.pop();
                if buf.ends_with(b"\r") {
                    buf.pop();
                }
            }
            if buf.is_empty() {
                // A blank last line ends the file (editors add one); any
                // other blank line is an empty input.
                let at_end = reader.fill_buf().map_err(|e| {
                    ItemError::Fatal(Error::invalid_input(format!(
                        "cannot read {name} after line {line}: {e}"
                    )))
                })?;
                if at_end.is_empty() {
                    return Ok(None);
                }
            }
            let text =
                std::str::from_utf8(buf).map_err(|e| at(format!("not valid UTF-8 ({e})")))?;
            let (text, id) = if *jsonl {
                parse_jsonl(text, fields).map_err(at)?
            } else {
                (text.to_owned(), None)
            };
            if text.is_empty() {
                return Err(at("empty text".to_owned()));
            }
            Ok(Some(Record {
                text,
                id,
                source: name.clone(),
                line: *line,
            }))
        }
        Open::Csv {
            name,
            reader,
            text_col,
            id_col,
            record,
        } => {
            let more = reader.read_byte_record(record).map_err(|e| {
                let line = e.position().map_or(0, csv::Position::line);
                ItemError::Fatal(Error::invalid_input(format!(
                    "{name} line {line}: bad CSV: {e}"
                )))
            })?;
            if !more {
                return Ok(None);
            }
            let line = record.position().map_or(0, csv::Position::line);
            let at = |what: String| {
                ItemError::Item(Error::invalid_input(format!("{name} line {line}: {what}")))
            };
            let text = record
                .get(*text_col)
                .ok_or_else(|| at(format!("missing the {:?} column", fields.text)))?;
            let text =
                std::str::from_utf8(text).map_err(|e| at(format!("not valid UTF-8 ({e})")))?;
            if text.is_empty() {
                return Err(at("empty text".to_owned()));
            }
            let id = match id_col.and_then(|c| record.get(c)) {
                Some(raw) => {
                    let s = std::str::from_utf8(raw)
                        .map_err(|e| at(format!("id is not valid UTF-8 ({e})")))?;
                    Some(serde_json::value::to_raw_value(s).map_err(|e| at(format!("id: {e}")))?)
                }
                None => None,
            };
            Ok(Some(Record {
                text: text.to_owned(),
                id,
                source: name.clone(),
                line,
            }))
        }
    }
}

fn parse_jsonl(line: &str, fields: &Fields) -> Result<(String, Option<Box<RawValue>>), String> {
    let map: HashMap<String, &RawValue> =
        serde_json::from_str(line).map_err(|e| format!("not a JSON object ({e})"))?;
    let text = map
        .get(&fields.text)
        .ok_or_else(|| format!("missing the {:?} field", fields.text))?;
    let text: String = serde_json::from_str(text.get())
        .map_err(|_| format!("the {:?} field is not a string", fields.text))?;
    let id = map.get(&fields.id).map(|r| (*r).to_owned());
    Ok((text, id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn fields() -> Fields {
        Fields {
            text: "text".into(),
            id: "id".into(),
        }
    }

    fn file(contents: &[u8], name: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::File::create(&p)
            .unwrap()
            .write_all(contents)
            .unwrap();
        (dir, p)
    }

    fn all(r: &mut InputReader) -> Vec<Result<Record>> {
        std::iter::from_fn(|| r.next_item()).collect()
    }

    #[test]
    fn text_lines_strip_line_endings() {
        let (_d, p) = file(b"one\r\ntwo\nthree", "a.txt");
        let src = Source::path(&p, None);
        assert_eq!(src.count_items(), Some(3));
        let recs = all(&mut InputReader::new(vec![src], fields()));
        let texts: Vec<_> = recs
            .iter()
            .map(|r| r.as_ref().unwrap().text.as_str())
            .collect();
        assert_eq!(texts, ["one", "two", "three"]);
        assert_eq!(recs[2].as_ref().unwrap().line, 3);
    }

    #[test]
    fn a_blank_last_line_and_a_bom_are_not_inputs() {
        for (contents, want) in [
            (&b"a\nb\n\n"[..], 2),
            (b"a\r\nb\r\n\r\n", 2),
            (b"\n", 0),
            (b"", 0),
            (b"\xef\xbb\xbfa\nb", 2),
        ] {
            let (_d, p) = file(contents, "a.txt");
            let src = Source::path(&p, None);
            assert_eq!(src.count_items(), Some(want), "{contents:?}");
            let recs = all(&mut InputReader::new(vec![src], fields()));
            assert_eq!(recs.len() as u64, want, "{contents:?}");
            if want > 0 {
                assert_eq!(recs[0].as_ref().unwrap().text, "a");
            }
        }
    }

    #[test]
    fn the_position_is_the_end_of_the_last_item_in_every_format() {
        for (contents, name) in [
            (&b"\xef\xbb\xbfone\ntwo\r\nthree"[..], "a.txt"),
            (
                b"{\"text\":\"one\"}\n{\"text\":\"two\"}\n{\"text\":\"three\"}\n",
                "a.jsonl",
            ),
            (b"\xef\xbb\xbftext\none\n\"tw\no\"\nthree\n", "a.csv"),
        ] {
            let (_d, p) = file(contents, name);
            let mut r = InputReader::new(
                vec![Source::Args(vec!["x".into()]), Source::path(&p, None)],
                fields(),
            );
            r.next_item().unwrap().unwrap();
            assert_eq!(
                r.position(),
                SourcePos {
                    source: 0,
                    offset: 1
                }
            );
            let mut ends = Vec::new();
            while let Some(item) = r.next_item() {
                item.unwrap();
                ends.push(r.position());
            }
            // Each item ends where the next one starts: after its line end.
            let text = std::str::from_utf8(contents).unwrap();
            let want: Vec<u64> = match name {
                "a.txt" => vec![7, 12, 17],
                "a.jsonl" => vec![15, 30, 47],
                _ => vec![12, 19, 25],
            };
            assert_eq!(
                ends.iter().map(|p| p.source).collect::<Vec<_>>(),
                [1, 1, 1],
                "{name}"
            );
            assert_eq!(
                ends.iter().map(|p| p.offset).collect::<Vec<_>>(),
                want,
                "{name}: {text:?}"
            );
        }
    }

    #[test]
    fn jsonl_keeps_ids_verbatim_and_honours_field_names() {
        let (_d, p) = file(
            b"{\"id\":\"a\",\"text\":\"x\"}\n{\"id\":7,\"text\":\"y\\n\"}\n{\"text\":\"z\"}\n",
            "a.jsonl",
        );
        let recs = all(&mut InputReader::new(
            vec![Source::path(&p, None)],
            fields(),
        ));
        let recs: Vec<_> = recs.into_iter().map(Result::unwrap).collect();
        assert_eq!(recs[0].id.as_ref().unwrap().get(), "\"a\"");
        assert_eq!(recs[1].id.as_ref().unwrap().get(), "7");
        assert_eq!(recs[1].text, "y\n");
        assert!(recs[2].id.is_none());

        let (_d, p) = file(b"{\"key\":1,\"body\":\"hello\"}\n", "b.jsonl");
        let f = Fields {
            text: "body".into(),
            id: "key".into(),
        };
        let recs = all(&mut InputReader::new(vec![Source::path(&p, None)], f));
        let r = recs[0].as_ref().unwrap();
        assert_eq!(
            (r.text.as_str(), r.id.as_ref().unwrap().get()),
            ("hello", "1")
        );
    }

    #[test]
    fn csv_reads_the_chosen_columns() {
        let (_d, p) = file(
            b"id,title,text\n1,A,\"hello, world\"\n2,B,\"multi\nline\"\n3,C,plain\n",
            "a.csv",
        );
        let src = Source::path(&p, None);
        let recs = all(&mut InputReader::new(vec![src], fields()));
        let recs: Vec<_> = recs.into_iter().map(Result::unwrap).collect();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0].text, "hello, world");
        assert_eq!(recs[0].id.as_ref().unwrap().get(), "\"1\"");
        assert_eq!(recs[1].text, "multi\nline");
        assert_eq!(recs[2].line, 5);
        let f = Fields {
            text: "title".into(),
            id: "none".into(),
        };
        let recs = all(&mut InputReader::new(vec![Source::path(&p, None)], f));
        assert_eq!(recs[1].as_ref().unwrap().text, "B");
        assert!(recs[1].as_ref().unwrap().id.is_none());
        let f = Fields {
            text: "body".into(),
            id: "id".into(),
        };
        let mut r = InputReader::new(vec![Source::path(&p, None)], f);
        let e = r.next_item().unwrap().unwrap_err();
        assert!(e.to_string().contains("no column named \"body\""), "{e}");
        assert!(r.is_fatal());
    }

    #[test]
    fn bad_lines_are_named_by_number_and_reading_goes_on() {
        for (contents, name, want) in [
            (
                &b"ok\n\xff\xfe\nok\n"[..],
                "a.txt",
                "line 2: not valid UTF-8",
            ),
            (b"ok\n\nok\n", "a.txt", "line 2: empty text"),
            (
                b"{\"text\":\"x\"}\nnot json\n{\"text\":\"x\"}\n",
                "a.jsonl",
                "line 2: not a JSON object",
            ),
            (
                b"{\"text\":\"x\"}\n{\"id\":1}\n{\"text\":\"x\"}\n",
                "a.jsonl",
                "line 2: missing the \"text\" field",
            ),
            (
                b"{\"text\":\"x\"}\n{\"text\":5}\n{\"text\":\"x\"}\n",
                "a.jsonl",
                "line 2: the \"text\" field is not a string",
            ),
            (b"text\nok\n\"\"\nok\n", "a.csv", "line 3: empty text"),
        ] {
            let (_d, p) = file(contents, name);
            let items = all(&mut InputReader::new(
                vec![Source::path(&p, None)],
                fields(),
            ));
            assert_eq!(items.len(), 3, "{name}");
            assert!(items[0].is_ok() && items[2].is_ok());
            let e = items[1].as_ref().unwrap_err();
            assert!(e.to_string().contains(want), "{e}");
        }
    }

    #[test]
    fn sources_are_read_in_order_and_a_missing_file_stops_reading() {
        let (_d1, a) = file(b"a1\na2\n", "a.txt");
        let mut r = InputReader::new(
            vec![
                Source::Args(vec!["x".into()]),
                Source::path(&a, None),
                Source::path(Path::new("/no/such/file"), None),
                Source::path(&a, None),
            ],
            fields(),
        );
        let items = all(&mut r);
        assert_eq!(items.len(), 4);
        let texts: Vec<_> = items[..3]
            .iter()
            .map(|r| r.as_ref().unwrap().text.clone())
            .collect();
        assert_eq!(texts, ["x", "a1", "a2"]);
        assert!(
            items[3]
                .as_ref()
                .unwrap_err()
                .to_string()
                .contains("/no/such/file")
        );
        assert!(r.is_fatal());
    }
}
