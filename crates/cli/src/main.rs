//! `embed`: text in, vectors out, on any registered embedding provider
//! (by default the embedded static model: real semantic vectors, offline).
//!
//! ```text
//! embed [OPTIONS] [TEXT]...      embed the texts (or --input files, or stdin)
//! embed providers                one line per registered provider
//! embed health                   check the configured provider; exit 0 when healthy
//! embed cache stats|compact|clear the configured cache store
//! embed merge DIR -o FILE        join the parts of a --shard / --queue job
//! embed queue status --job NAME  where a --queue job stands
//! embed queue clear --job NAME   delete a finished --queue job's keys from Redis
//! ```
//!
//! Vectors go to stdout (or `--output`) and nothing else does; any failure
//! exits non-zero with one line on stderr that names the error kind.

mod args;
mod cache;
mod input;
mod job;
mod merge;
mod output;
mod parts;
mod progress;
mod resume;
mod retries;

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use embeddings::{Config, EmbedRequest, Embedder, Error, InputType, Result};

use crate::args::{Cli, Command, CommonArgs, EmbedArgs, InputFormat, SimilarityArgs};
use crate::input::Source;
use crate::job::Counting;
use crate::resume::JobIdentity;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let common = match &cli.command {
        Some(Command::Health(c)) => c,
        Some(Command::Similarity(a)) => &a.common,
        _ => &cli.common,
    };
    if let Err(e) = init_logging(common.log_level.as_deref()) {
        eprintln!("embed: {e}");
        return ExitCode::FAILURE;
    }
    retries::install();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("embed: internal: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("embed: {}", printable(&e.to_string()));
            ExitCode::FAILURE
        }
    }
}

/// `text` as one printable line: a line break becomes a space, every other
/// control character (ESC, CR, BEL, NUL, U+2028, ...) is escaped, so that
/// no server excerpt or file name can move the cursor or clear the terminal.
pub(crate) fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push(' '),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => {
                out.extend(c.escape_default());
            }
            c => out.push(c),
        }
    }
    out
}

/// Log lines (the library's `tracing` events) on stderr, filtered by
/// `--log-level`, else `RUST_LOG`, else `warn`. The library puts no text and
/// no key in its events.
fn init_logging(flag: Option<&str>) -> Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter = match flag {
        Some(f) => EnvFilter::try_new(f).map_err(|e| {
            Error::config(format!(
                "`--log-level` = {f:?}: not a level (off, error, warn, info, debug, trace) \
                 nor RUST_LOG directives ({e})"
            ))
        })?,
        None => match std::env::var("RUST_LOG") {
            // Set for other programs too: a value this one cannot read is
            // a warning, not a failure.
            Ok(v) if !v.trim().is_empty() => EnvFilter::try_new(&v).unwrap_or_else(|e| {
                eprintln!("embed: warning: RUST_LOG = {v:?} ignored ({e}); logging warnings");
                EnvFilter::new("warn")
            }),
            _ => EnvFilter::new("warn"),
        },
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init()
        .map_err(|e| Error::new(embeddings::ErrorKind::Internal, e.to_string()))
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Some(Command::Providers) => {
            for r in embeddings::registered() {
                println!("{}\t{}", r.name, r.description);
            }
            Ok(())
        }
        Some(Command::Health(common)) => health(&common).await,
        Some(Command::Similarity(args)) => similarity(&args).await,
        Some(Command::Cache(args)) => {
            cache::run(&load_config(args.action.common())?, &args.action).await
        }
        Some(Command::Merge(args)) => merge::run(&args),
        Some(Command::Queue(args)) => parts::queue_command(&args).await,
        None => embed(&cli.common, &cli.embed).await,
    }
}

/// Defaults < config file (`--config`, else `$EMBEDDINGS_CONFIG`, else
/// `./embeddings.toml`) < `EMBEDDINGS_*` environment < flags.
fn load_config(common: &CommonArgs) -> Result<Config> {
    let env_file = std::env::var_os("EMBEDDINGS_CONFIG").filter(|v| !v.is_empty());
    let file: Option<std::path::PathBuf> = match (&common.config, env_file) {
        (Some(path), _) => Some(path.clone()),
        (None, Some(path)) => Some(path.into()),
        (None, None) if Path::new("embeddings.toml").is_file() => Some("embeddings.toml".into()),
        (None, None) => None,
    };
    let mut config = match &file {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    // The CLI's default provider is the embedded static model (the
    // library's is the mock): used when no flag, variable or file names one.
    let env_provider = std::env::var_os(embeddings::ENV_PROVIDER).is_some_and(|v| !v.is_empty());
    if common.provider.is_none() && !env_provider && !file.as_deref().is_some_and(names_provider) {
        config.provider = DEFAULT_PROVIDER.to_owned();
    }
    config.apply_env()?;
    if let Some(p) = &common.provider {
        config.provider.clone_from(p);
    }
    if let Some(m) = &common.model {
        config.model = Some(m.clone());
    }
    if let Some(d) = &common.dimensions {
        config.dimensions = Some(flag_number("--dimensions", d, 1, MAX_DIMENSIONS)?);
    }
    if let Some(u) = &common.base_url {
        config.base_url = Some(u.clone());
    }
    if let Some(dir) = &common.model_path {
        // The in-process provider in use reads it; `local` otherwise.
        let section = if config.provider.eq_ignore_ascii_case("static") {
            "static"
        } else {
            "local"
        };
        set_section_key(
            &mut config,
            section,
            "model_path",
            dir.display().to_string().into(),
        );
    }
    if let Some(n) = &common.batch_size {
        config.batch.max_batch_size = Some(flag_number("--batch-size", n, 1, MAX_BATCH_SIZE)?);
    }
    if let Some(n) = &common.concurrency {
        let n = flag_number("--concurrency", n, 1, MAX_CONCURRENCY)?;
        // Both bounds: sub-batches of a call, and requests in flight overall.
        config.batch.concurrency = Some(n);
        config.concurrency.max_in_flight = Some(n);
    }
    if let Some(n) = &common.max_retries {
        let n = flag_number("--max-retries", n, 0, MAX_RETRIES as usize)?;
        config.retry.max_retries = u32::try_from(n).unwrap_or(MAX_RETRIES);
    }
    cache::apply_flag(&mut config, common.cache.as_deref());
    check_bounds(&config)?;
    config.validate()?;
    Ok(config)
}

/// The provider when nothing names one: the embedded static model.
const DEFAULT_PROVIDER: &str = "static";

/// Whether a config file sets `provider` (a top-level key: in TOML before
/// the first table header; in JSON a key of the top object). A file that
/// cannot be read is reported by `Config::from_file` before this runs.
fn names_provider(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
    {
        return serde_json::from_str::<serde_json::Value>(&text)
            .is_ok_and(|v| v.get("provider").is_some());
    }
    text.lines()
        .map(str::trim_start)
        .take_while(|l| !l.starts_with('['))
        .any(|l| {
            l.strip_prefix("provider")
                .or_else(|| l.strip_prefix("\"provider\""))
                .is_some_and(|r| r.trim_start().starts_with('='))
        })
}

/// Most dimensions a vector may have (`-d`, `dimensions`).
const MAX_DIMENSIONS: usize = 65_536;
/// Most inputs per batch (`--batch-size`, `batch.max_batch_size`).
const MAX_BATCH_SIZE: usize = 1_000_000;
/// Most batches or requests in flight (`--concurrency`, `batch.concurrency`,
/// `concurrency.max_in_flight`).
const MAX_CONCURRENCY: usize = 4_096;
/// Most retries after a failed attempt (`--max-retries`, `retry.max_retries`).
const MAX_RETRIES: u32 = 1_000;

/// A numeric flag: a whole number in `min..=max`, else an error naming the
/// flag and the value (never a panic or an abort later on).
fn flag_number(flag: &str, raw: &str, min: usize, max: usize) -> Result<usize> {
    match raw.parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => {
            let shown = if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
                raw.to_owned()
            } else {
                format!("{raw:?}")
            };
            Err(Error::config(format!(
                "`{flag}` = {shown}: must be a whole number from {min} to {max}"
            )))
        }
    }
}

/// The same bounds for values from the config file and the environment.
fn check_bounds(config: &Config) -> Result<()> {
    let at_most = |key: &str, value: Option<usize>, max: usize| match value {
        Some(v) if v > max => Err(Error::config(format!(
            "`{key}` = {v}: must be at most {max}"
        ))),
        _ => Ok(()),
    };
    at_most("dimensions", config.dimensions, MAX_DIMENSIONS)?;
    at_most(
        "batch.max_batch_size",
        config.batch.max_batch_size,
        MAX_BATCH_SIZE,
    )?;
    at_most(
        "batch.concurrency",
        config.batch.concurrency,
        MAX_CONCURRENCY,
    )?;
    at_most(
        "concurrency.max_in_flight",
        config.concurrency.max_in_flight,
        MAX_CONCURRENCY,
    )?;
    at_most(
        "retry.max_retries",
        Some(config.retry.max_retries as usize),
        MAX_RETRIES as usize,
    )
}

/// Sets `key` in the section `[name]` (found case-insensitively, created
/// when absent), keeping the section's other keys.
fn set_section_key(config: &mut Config, name: &str, key: &str, value: embeddings::JsonValue) {
    let existing = config
        .sections
        .keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned();
    let section = config
        .sections
        .entry(existing.unwrap_or_else(|| name.to_owned()))
        .or_insert_with(|| embeddings::JsonValue::Object(Default::default()));
    if let embeddings::JsonValue::Object(map) = section {
        map.insert(key.to_owned(), value);
    }
}

/// The provider, counted, under the layers the configuration enables.
fn build(config: &Config) -> Result<(Arc<dyn Embedder>, Arc<Counting>)> {
    embeddings::check_sections(config)?;
    let provider = embeddings::registry::build(config)?;
    let counting = Arc::new(Counting::new(provider));
    let stack = embeddings::layers::apply(Arc::clone(&counting) as Arc<dyn Embedder>, config)?;
    Ok((stack, counting))
}

async fn health(common: &CommonArgs) -> Result<()> {
    let (embedder, _) = build(&load_config(common)?)?;
    // Discovery first, so that what the server advertises is reported.
    embedder.prepare().await?;
    embedder.health_check().await?;
    let info = embedder.info();
    println!(
        "healthy: {} (model {}, {} dimensions, {} max input tokens)",
        info.provider, info.model, info.dimension, info.max_input_tokens
    );
    Ok(())
}

async fn similarity(args: &SimilarityArgs) -> Result<()> {
    let config = load_config(&args.common)?;
    let (embedder, _) = build(&config)?;
    let mut texts: Vec<&str> = vec![args.first.as_str()];
    texts.extend(args.others.iter().map(String::as_str));
    if let Some(i) = texts.iter().position(|t| t.is_empty()) {
        return Err(Error::invalid_input(format!("text {} is empty", i + 1)));
    }
    // Texts compared with each other: the similarity input type, unless the
    // config file says otherwise; f32 rows (a cosine of quantized rows would
    // not be the cosine of the vectors).
    let input_type = config.input_type.unwrap_or(InputType::Similarity);
    let rows = embedder
        .embed(EmbedRequest::new(&texts).with_input_type(input_type))
        .await?;
    let a = rows.row(0);
    for (i, other) in args.others.iter().enumerate() {
        println!("{:.6}\t{other}", cosine(a, rows.row(i + 1)));
    }
    Ok(())
}

/// Cosine similarity (0 when either vector is zero).
fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

async fn embed(common: &CommonArgs, args: &EmbedArgs) -> Result<()> {
    let config = load_config(common)?;
    let (embedder, counting) = build(&config)?;
    let sources = if !args.texts.is_empty() {
        if !args.input.is_empty() {
            return Err(Error::invalid_input(
                "give TEXT arguments or --input files, not both",
            ));
        }
        vec![Source::Args(args.texts.clone())]
    } else if !args.input.is_empty() {
        args.input
            .iter()
            .map(|p| Source::path(p, args.input_format))
            .collect()
    } else if !std::io::stdin().is_terminal() {
        vec![Source::Stdin {
            format: args.input_format.unwrap_or(InputFormat::Lines),
        }]
    } else {
        return Err(Error::invalid_input(
            "nothing to embed: give TEXT arguments, --input FILE, or pipe text on stdin",
        ));
    };
    // Discovery first: what the server advertises (dimension, limits) is
    // part of the job's identity and of its plan.
    embedder.prepare().await?;
    // What must match for --resume to continue a job rather than mix two.
    let job_id = JobIdentity::new(embedder.info(), &config, args, &sources);
    let cache_before = embeddings::cache::global_stats();
    let mut summary = if args.dist.active() {
        parts::run(embedder, counting, &config, args, sources, job_id).await?
    } else {
        job::run(embedder, counting, &config, args, sources, job_id, None).await?
    };
    summary.cache = cache::counts_since(&config, cache_before);
    if !args.quiet {
        summary.print(args.stats);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::cosine;

    #[test]
    fn printable_escapes_control_characters() {
        assert_eq!(
            super::printable("a\r\x1b[2J\x07\0b\u{2028}c\nd é"),
            "a\\r\\u{1b}[2J\\u{7}\\u{0}b\\u{2028}c d é"
        );
    }

    #[test]
    fn cosine_of_known_vectors() {
        assert!((cosine(&[1.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-12);
        assert!(cosine(&[1.0, 0.0], &[0.0, 2.0]).abs() < 1e-12);
        assert!((cosine(&[1.0, 1.0], &[-1.0, -1.0]) + 1.0).abs() < 1e-12);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
    }
}
