//! `embed merge DIR -o FILE`: the parts of a split job (`--shard`,
//! `--queue`), in the input order of `DIR/manifest.json`, as one output —
//! the same bytes one process would have written.
//!
//! The manifest must cover every input (`0..total`) without a gap; each
//! part is checked against it (its row count, its dimension and element
//! type) before anything is written. JSONL parts are concatenated (their
//! rows carry their index in the whole input); `.npy` parts are
//! concatenated behind one header; Parquet parts are read back and written
//! again through the job's writer (the same conversion, so the same file).
//! The output goes to `FILE.partial`, synced, then renamed into place.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use embeddings::{Error, ErrorKind, OutputType, Result, RowRef};
use serde_json::value::RawValue;

use crate::args::Format;
use crate::output::{Dest, Writer, with_suffix};
use crate::parts::{MANIFEST, Manifest};

/// `embed merge DIR -o FILE`.
#[derive(Debug, Args, Clone)]
pub(crate) struct MergeArgs {
    /// The directory of the parts (the -o DIR of --shard or --queue)
    #[arg(value_name = "DIR")]
    pub(crate) dir: PathBuf,
    /// The merged output file
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: PathBuf,
    /// No summary on stderr
    #[arg(short, long)]
    pub(crate) quiet: bool,
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Internal,
        format!("cannot {what} {}: {e}", path.display()),
    )
}

fn damaged(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::invalid_input(format!("the part {} is damaged: {why}", path.display()))
}

fn output_type(name: &str) -> Result<OutputType> {
    OutputType::ALL
        .into_iter()
        .find(|t| t.as_str() == name)
        .ok_or_else(|| {
            Error::invalid_input(format!("unknown output type {name:?} in the manifest"))
        })
}

/// Runs `embed merge`.
pub(crate) fn run(args: &MergeArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let Some(m) = Manifest::load(&args.dir)? else {
        return Err(Error::invalid_input(format!(
            "{} has no {MANIFEST}: it is not the output directory of --shard or --queue",
            args.dir.display()
        )));
    };
    let gaps = m.missing();
    if !gaps.is_empty() {
        let shown: Vec<String> = gaps
            .iter()
            .take(5)
            .map(|r| format!("{}..{}", r.start, r.end))
            .collect();
        return Err(Error::invalid_input(format!(
            "{} is incomplete: no part yet holds inputs {}{} (of {}); wait for the workers \
             (embed queue status) or run the missing shards",
            args.dir.display(),
            shown.join(", "),
            if gaps.len() > 5 { ", ..." } else { "" },
            m.total
        )));
    }
    let ext = args
        .output
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if ext.as_deref() != Some(m.format.as_str()) {
        return Err(Error::invalid_input(format!(
            "the parts are {}: name the merged output FILE.{} (the merge joins parts, it does \
             not convert them)",
            m.format, m.format
        )));
    }
    let output = output_type(&m.output_type)?;
    let parts: Vec<PathBuf> = m.parts.iter().map(|p| args.dir.join(&p.file)).collect();
    let rows: u64 = m.parts.iter().map(|p| p.rows).sum();
    match m.format.as_str() {
        "npy" => merge_npy(&m, &parts, &args.output, output)?,
        "jsonl" => merge_jsonl(&m, &parts, &args.output)?,
        "parquet" => merge_parquet(&m, &parts, &args.output, output)?,
        other => {
            return Err(Error::invalid_input(format!(
                "parts of format {other:?} cannot be merged (jsonl, npy or parquet)"
            )));
        }
    }
    if !args.quiet {
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "embed: merged {} parts, {rows} rows, in {secs:.2} s -> {}",
            parts.len(),
            args.output.display()
        );
    }
    Ok(())
}

/// Writes `<dest>.partial` through `fill`, syncs it and renames it into place.
fn write_whole(dest: &Path, fill: impl FnOnce(&mut BufWriter<File>) -> Result<()>) -> Result<()> {
    let partial = with_suffix(dest, ".partial");
    let f = File::create(&partial).map_err(|e| io_err("create", &partial, e))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let r = fill(&mut w).and_then(|()| {
        w.flush().map_err(|e| io_err("write", &partial, e))?;
        w.get_ref()
            .sync_all()
            .map_err(|e| io_err("sync", &partial, e))
    });
    if let Err(e) = r {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, dest).map_err(|e| io_err("rename", dest, e))
}

/// An `.npy` part's header: its length, shape and dtype.
fn npy_header(path: &Path, f: &mut impl Read) -> Result<(u64, u64, String)> {
    let mut pre = [0u8; 10];
    f.read_exact(&mut pre).map_err(|e| damaged(path, e))?;
    if &pre[..6] != b"\x93NUMPY" || pre[6] != 1 {
        return Err(damaged(path, "not a .npy file of version 1"));
    }
    let len = u16::from_le_bytes([pre[8], pre[9]]) as usize;
    let mut dict = vec![0u8; len];
    f.read_exact(&mut dict).map_err(|e| damaged(path, e))?;
    let dict = String::from_utf8_lossy(&dict);
    let descr = dict
        .split("'descr': '")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .ok_or_else(|| damaged(path, "no dtype in its header"))?
        .to_owned();
    let shape = dict
        .split("'shape': (")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .ok_or_else(|| damaged(path, "no shape in its header"))?;
    let mut dims = shape.split(',').map(str::trim).filter(|s| !s.is_empty());
    let rows = dims.next().and_then(|s| s.parse().ok());
    let dim = dims.next().and_then(|s| s.parse().ok());
    match (rows, dim) {
        (Some(r), Some(d)) => Ok((r, d, descr)),
        _ => Err(damaged(path, format!("shape ({shape}) is not (rows, dim)"))),
    }
}

fn merge_npy(m: &Manifest, parts: &[PathBuf], dest: &Path, output: OutputType) -> Result<()> {
    // Check every part first: rows as the manifest says, one dimension, one dtype.
    let mut dim = None;
    let mut descr = None;
    for (p, e) in parts.iter().zip(&m.parts) {
        let mut f = File::open(p).map_err(|e| io_err("read", p, e))?;
        let (rows, d, t) = npy_header(p, &mut f)?;
        if rows != e.rows {
            return Err(damaged(
                p,
                format!("{rows} rows, the manifest says {}", e.rows),
            ));
        }
        if rows > 0 {
            match dim {
                None => dim = Some(d),
                Some(x) if x != d => {
                    return Err(damaged(
                        p,
                        format!("rows of {d} elements after rows of {x}"),
                    ));
                }
                _ => {}
            }
        }
        match &descr {
            None => descr = Some(t),
            Some(x) if *x != t => {
                return Err(damaged(p, format!("dtype {t} after {x}")));
            }
            _ => {}
        }
    }
    let dim = dim.unwrap_or(0) as usize;
    let total: u64 = m.parts.iter().map(|p| p.rows).sum();
    let row_bytes = (dim * output.element_size()) as u64;
    write_whole(dest, |w| {
        w.write_all(&crate::output::npy_header(total, dim, output))
            .map_err(|e| io_err("write", dest, e))?;
        for (p, e) in parts.iter().zip(&m.parts) {
            let mut f =
                BufReader::with_capacity(1 << 20, File::open(p).map_err(|e| io_err("read", p, e))?);
            npy_header(p, &mut f)?;
            let want = e.rows * row_bytes;
            let copied =
                std::io::copy(&mut (&mut f).take(want), w).map_err(|e| io_err("read", p, e))?;
            let mut extra = [0u8; 1];
            if copied != want || f.read(&mut extra).map_err(|e| io_err("read", p, e))? != 0 {
                return Err(damaged(p, "its data is not its shape's length"));
            }
        }
        Ok(())
    })
}

fn merge_jsonl(m: &Manifest, parts: &[PathBuf], dest: &Path) -> Result<()> {
    use std::io::BufRead;
    write_whole(dest, |w| {
        let mut line = Vec::with_capacity(1 << 14);
        for (p, e) in parts.iter().zip(&m.parts) {
            let mut f =
                BufReader::with_capacity(1 << 20, File::open(p).map_err(|e| io_err("read", p, e))?);
            let mut rows = 0u64;
            let mut last: Option<u64> = None;
            loop {
                line.clear();
                let n = f
                    .read_until(b'\n', &mut line)
                    .map_err(|e| io_err("read", p, e))?;
                if n == 0 {
                    break;
                }
                if !line.ends_with(b"\n") {
                    return Err(damaged(p, "its last row is cut short"));
                }
                // Each row's index must be in the part's range, increasing.
                let index = line
                    .strip_prefix(b"{\"index\":")
                    .and_then(|r| {
                        let end = r.iter().position(|b| !b.is_ascii_digit())?;
                        std::str::from_utf8(&r[..end]).ok()?.parse::<u64>().ok()
                    })
                    .ok_or_else(|| damaged(p, format!("row {} has no index", rows + 1)))?;
                if index < e.first || index >= e.end || last.is_some_and(|l| index <= l) {
                    return Err(damaged(
                        p,
                        format!(
                            "row {} has index {index}, outside {}..{} or out of order",
                            rows + 1,
                            e.first,
                            e.end
                        ),
                    ));
                }
                last = Some(index);
                w.write_all(&line).map_err(|e| io_err("write", dest, e))?;
                rows += 1;
            }
            if rows != e.rows {
                return Err(damaged(
                    p,
                    format!("{rows} rows, the manifest says {}", e.rows),
                ));
            }
        }
        Ok(())
    })
}

fn merge_parquet(m: &Manifest, parts: &[PathBuf], dest: &Path, output: OutputType) -> Result<()> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float32Type, Int8Type, UInt8Type, UInt64Type};
    use arrow_array::{Array, FixedSizeListArray};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let mut writer = Writer::create(&Dest::File(dest.to_owned()), Format::Parquet, output, None)?;
    let mut dim = 0usize;
    let r: Result<()> = (|| {
        for (p, e) in parts.iter().zip(&m.parts) {
            let f = File::open(p).map_err(|e| io_err("read", p, e))?;
            let reader = ParquetRecordBatchReaderBuilder::try_new(f)
                .and_then(|b| b.build())
                .map_err(|e| damaged(p, e))?;
            let mut rows = 0u64;
            for batch in reader {
                let batch = batch.map_err(|e| damaged(p, e))?;
                let (Some(index), Some(id), Some(emb)) = (
                    batch.column_by_name("index"),
                    batch.column_by_name("id"),
                    batch.column_by_name("embedding"),
                ) else {
                    return Err(damaged(p, "no index, id or embedding column"));
                };
                let index = index
                    .as_primitive_opt::<UInt64Type>()
                    .ok_or_else(|| damaged(p, "index is not uint64"))?;
                let id = id
                    .as_string_opt::<i32>()
                    .ok_or_else(|| damaged(p, "id is not utf8"))?;
                let emb: &FixedSizeListArray = emb
                    .as_fixed_size_list_opt()
                    .ok_or_else(|| damaged(p, "embedding is not a fixed-size list"))?;
                let d = emb.value_length() as usize;
                dim = d;
                for i in 0..batch.num_rows() {
                    let ix = index.value(i);
                    if ix < e.first || ix >= e.end {
                        return Err(damaged(
                            p,
                            format!("a row of index {ix}, outside {}..{}", e.first, e.end),
                        ));
                    }
                    // The writer stores a JSON string id as the string: give it back as one.
                    let raw = if id.is_null(i) {
                        None
                    } else {
                        let s = serde_json::to_string(id.value(i))
                            .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?;
                        Some(RawValue::from_string(s).map_err(|e| damaged(p, e))?)
                    };
                    let values = emb.value(i);
                    match output {
                        OutputType::F32 => {
                            let v = values
                                .as_primitive_opt::<Float32Type>()
                                .ok_or_else(|| damaged(p, "not float32 rows"))?;
                            writer.write(ix, raw.as_deref(), RowRef::F32(v.values()))?;
                        }
                        OutputType::Int8 | OutputType::Binary => {
                            let v = values
                                .as_primitive_opt::<Int8Type>()
                                .ok_or_else(|| damaged(p, "not int8 rows"))?;
                            writer.write(ix, raw.as_deref(), RowRef::I8(v.values()))?;
                        }
                        _ => {
                            let v = values
                                .as_primitive_opt::<UInt8Type>()
                                .ok_or_else(|| damaged(p, "not uint8 rows"))?;
                            writer.write(ix, raw.as_deref(), RowRef::U8(v.values()))?;
                        }
                    }
                    rows += 1;
                }
            }
            if rows != e.rows {
                return Err(damaged(
                    p,
                    format!("{rows} rows, the manifest says {}", e.rows),
                ));
            }
        }
        Ok(())
    })();
    match r {
        Ok(()) => writer.finish(dim),
        Err(e) => {
            writer.discard();
            Err(e)
        }
    }
}
