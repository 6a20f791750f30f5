//! Writing vectors: JSONL, JSON, or `.npy` (float32, shape N×D).
//!
//! A file output is written to `<name>.partial` and renamed when every row is
//! written, so a failed run never leaves a file that looks complete.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use embeddings::{Embeddings, Error, ErrorKind, Result};

use crate::args::Format;
use crate::input::Record;

enum Sink {
    Stdout(BufWriter<std::io::Stdout>),
    File(BufWriter<File>),
    /// `.npy` to stdout: the header needs the row count, so rows are held.
    Memory(Vec<u8>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Stdout(w) => w.write(buf),
            Sink::File(w) => w.write(buf),
            Sink::Memory(v) => v.write(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Stdout(w) => w.write_all(buf),
            Sink::File(w) => w.write_all(buf),
            Sink::Memory(v) => v.write_all(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Stdout(w) => w.flush(),
            Sink::File(w) => w.flush(),
            Sink::Memory(_) => Ok(()),
        }
    }
}

/// Where the vectors go, in which format.
pub(crate) struct OutputTarget {
    sink: Sink,
    format: Format,
    paths: Option<(PathBuf, PathBuf)>,
    rows: usize,
    dim: Option<usize>,
}

/// Bytes reserved for the `.npy` header, so it can be rewritten in place
/// with the final shape (format version 1.0; a multiple of 64).
const NPY_HEADER_LEN: usize = 128;

fn write_err(e: std::io::Error) -> Error {
    Error::new(ErrorKind::Internal, format!("cannot write output: {e}"))
}

impl OutputTarget {
    pub(crate) fn open(path: Option<&Path>, format: Format) -> Result<Self> {
        let (sink, paths) = match path.filter(|p| p.as_os_str() != "-") {
            None => {
                let sink = if format == Format::Npy {
                    Sink::Memory(Vec::new())
                } else {
                    Sink::Stdout(BufWriter::with_capacity(1 << 16, std::io::stdout()))
                };
                (sink, None)
            }
            Some(p) => {
                let mut partial = p.as_os_str().to_owned();
                partial.push(".partial");
                let partial = PathBuf::from(partial);
                let f = File::create(&partial).map_err(|e| {
                    Error::new(
                        ErrorKind::InvalidInput,
                        format!("cannot write output file {}: {e}", p.display()),
                    )
                })?;
                (
                    Sink::File(BufWriter::with_capacity(1 << 16, f)),
                    Some((partial, p.to_owned())),
                )
            }
        };
        let mut t = OutputTarget {
            sink,
            format,
            paths,
            rows: 0,
            dim: None,
        };
        match format {
            Format::Npy => t.sink.write_all(&[b' '; NPY_HEADER_LEN]).map_err(write_err)?,
            Format::Json => t.sink.write_all(b"[").map_err(write_err)?,
            Format::Jsonl => {}
        }
        Ok(t)
    }

    /// Writes rows `first..first + records.len()`.
    pub(crate) fn write_rows(
        &mut self,
        first: usize,
        records: &[Record],
        rows: &Embeddings,
    ) -> Result<()> {
        match self.dim {
            None => self.dim = Some(rows.dim()),
            Some(d) if d != rows.dim() && !rows.is_empty() => {
                return Err(Error::new(
                    ErrorKind::DimensionMismatch,
                    format!("vectors of dimension {} after {d}", rows.dim()),
                ));
            }
            Some(_) => {}
        }
        let w = &mut self.sink;
        for (i, (rec, row)) in records.iter().zip(rows.iter()).enumerate() {
            match self.format {
                Format::Npy => {
                    for x in row {
                        w.write_all(&x.to_le_bytes()).map_err(write_err)?;
                    }
                }
                Format::Jsonl | Format::Json => {
                    if self.format == Format::Json && self.rows + i > 0 {
                        w.write_all(b",\n").map_err(write_err)?;
                    }
                    write!(w, "{{\"index\":{}", first + i).map_err(write_err)?;
                    if let Some(id) = &rec.id {
                        write!(w, ",\"id\":{}", id.get()).map_err(write_err)?;
                    }
                    w.write_all(b",\"embedding\":").map_err(write_err)?;
                    serde_json::to_writer(&mut *w, row)
                        .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?;
                    w.write_all(b"}").map_err(write_err)?;
                    if self.format == Format::Jsonl {
                        w.write_all(b"\n").map_err(write_err)?;
                    }
                }
            }
        }
        self.rows += records.len();
        Ok(())
    }

    /// Completes the output (npy header, closing bracket, rename into place).
    pub(crate) fn finish(mut self) -> Result<()> {
        match self.format {
            Format::Json => self.sink.write_all(b"]\n").map_err(write_err)?,
            Format::Npy => {
                let header = npy_header(self.rows, self.dim.unwrap_or(0));
                match &mut self.sink {
                    Sink::Memory(v) => {
                        v[..NPY_HEADER_LEN].copy_from_slice(&header);
                        let mut out = std::io::stdout().lock();
                        out.write_all(v).map_err(write_err)?;
                        out.flush().map_err(write_err)?;
                    }
                    Sink::File(w) => {
                        w.flush().map_err(write_err)?;
                        let f = w.get_mut();
                        f.seek(SeekFrom::Start(0)).map_err(write_err)?;
                        f.write_all(&header).map_err(write_err)?;
                    }
                    Sink::Stdout(_) => unreachable!("npy to stdout is held in memory"),
                }
            }
            Format::Jsonl => {}
        }
        self.sink.flush().map_err(write_err)?;
        if let Sink::File(w) = &self.sink {
            w.get_ref().sync_all().map_err(write_err)?;
        }
        if let Some((partial, dest)) = self.paths.take() {
            std::fs::rename(&partial, &dest).map_err(write_err)?;
        }
        Ok(())
    }

    /// Removes a partial output file after a failure.
    pub(crate) fn abandon(mut self) {
        let _ = self.sink.flush();
        if let Some((partial, _)) = self.paths.take() {
            let _ = std::fs::remove_file(partial);
        }
    }
}

/// The 128-byte `.npy` v1.0 header for a little-endian float32 (rows, dim) array.
fn npy_header(rows: usize, dim: usize) -> [u8; NPY_HEADER_LEN] {
    let mut h = [b' '; NPY_HEADER_LEN];
    h[..6].copy_from_slice(b"\x93NUMPY");
    h[6] = 1;
    h[7] = 0;
    let len = (NPY_HEADER_LEN - 10) as u16;
    h[8..10].copy_from_slice(&len.to_le_bytes());
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {dim}), }}");
    h[10..10 + dict.len()].copy_from_slice(dict.as_bytes());
    h[NPY_HEADER_LEN - 1] = b'\n';
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_is_aligned_and_names_the_shape() {
        let h = npy_header(1_000_000, 1536);
        assert_eq!(&h[..6], b"\x93NUMPY");
        assert_eq!(u16::from_le_bytes([h[8], h[9]]) as usize + 10, 128);
        let text = std::str::from_utf8(&h[10..]).unwrap();
        assert!(text.contains("'shape': (1000000, 1536)"), "{text}");
        assert!(text.ends_with('\n'));
    }
}
