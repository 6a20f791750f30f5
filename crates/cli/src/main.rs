//! `embed`: text in, vectors out, on any registered embedding provider.
//!
//! ```text
//! embed [OPTIONS] [TEXT]...      embed the texts (or --input files, or stdin)
//! embed providers                one line per registered provider
//! embed health                   check the configured provider; exit 0 when healthy
//! ```
//!
//! Vectors go to stdout (or `--output`) and nothing else does; any failure
//! exits non-zero with one line on stderr that names the error kind.

mod args;
mod input;
mod output;

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use embeddings::{Config, Embedder, Error, ErrorKind, Result};

use crate::args::{Cli, Command, CommonArgs, EmbedArgs};
use crate::input::{InputReader, Source};
use crate::output::OutputTarget;

/// Inputs handed to the library at once: bounded memory whatever the corpus size.
const CHUNK: usize = 4096;

fn main() -> ExitCode {
    let cli = Cli::parse();
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
            let line = e.to_string().replace('\n', " ");
            eprintln!("embed: {line}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Some(Command::Providers) => {
            providers();
            Ok(())
        }
        Some(Command::Health(common)) => health(&common).await,
        None => embed(&cli.common, &cli.embed).await,
    }
}

fn providers() {
    for r in embeddings::registered() {
        println!("{}\t{}", r.name, r.description);
    }
}

/// Defaults < config file (`--config`, else `./embeddings.toml`) <
/// `EMBEDDINGS_*` environment < flags.
fn load_config(common: &CommonArgs) -> Result<Config> {
    let mut config = match &common.config {
        Some(path) => Config::from_file(path)?,
        None if Path::new("embeddings.toml").is_file() => Config::from_file("embeddings.toml")?,
        None => Config::default(),
    };
    config.apply_env()?;
    if let Some(p) = &common.provider {
        config.provider.clone_from(p);
    }
    if let Some(m) = &common.model {
        config.model = Some(m.clone());
    }
    if let Some(d) = common.dimensions {
        config.dimensions = Some(d);
    }
    if let Some(u) = &common.base_url {
        config.base_url = Some(u.clone());
    }
    if let Some(n) = common.batch_size {
        config.batch.max_batch_size = Some(n);
    }
    if let Some(n) = common.concurrency {
        config.batch.concurrency = n;
    }
    if let Some(n) = common.max_retries {
        config.retry.max_retries = n;
    }
    config.validate()?;
    Ok(config)
}

fn build(common: &CommonArgs) -> Result<Arc<dyn Embedder>> {
    embeddings::from_config(&load_config(common)?)
}

async fn health(common: &CommonArgs) -> Result<()> {
    let embedder = build(common)?;
    embedder.health_check().await?;
    let info = embedder.info();
    println!(
        "healthy: {} (model {}, {} dimensions)",
        info.provider, info.model, info.dimension
    );
    Ok(())
}

async fn embed(common: &CommonArgs, args: &EmbedArgs) -> Result<()> {
    let embedder = build(common)?;
    let sources = if !args.texts.is_empty() {
        if !args.input.is_empty() {
            return Err(Error::invalid_input(
                "give TEXT arguments or --input files, not both",
            ));
        }
        vec![Source::Args(args.texts.clone())]
    } else if !args.input.is_empty() {
        args.input.iter().map(|p| Source::path(p)).collect()
    } else if !std::io::stdin().is_terminal() {
        vec![Source::Stdin { jsonl: false }]
    } else {
        return Err(Error::invalid_input(
            "nothing to embed: give TEXT arguments, --input FILE, or pipe text on stdin",
        ));
    };
    let mut reader = InputReader::new(sources);
    let mut out = OutputTarget::open(args.output.as_deref(), args.format)?;
    let result = async {
        let mut index = 0usize;
        loop {
            let records = reader.next_chunk(CHUNK)?;
            if records.is_empty() {
                break;
            }
            let texts: Vec<&str> = records.iter().map(|r| r.text.as_str()).collect();
            let rows = embedder.embed_documents(&texts).await.map_err(|e| {
                let first = &records[0];
                let last = &records[records.len() - 1];
                let msg = format!(
                    "{} (inputs {}..={}, from {} line {} to {} line {})",
                    e.message(),
                    index,
                    index + records.len() - 1,
                    first.source,
                    first.line,
                    last.source,
                    last.line
                );
                e.with_message(msg)
            })?;
            if rows.len() != records.len() {
                return Err(Error::new(
                    ErrorKind::InvalidResponse,
                    format!("{} vectors for {} inputs", rows.len(), records.len()),
                ));
            }
            out.write_rows(index, &records, &rows)?;
            index += records.len();
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => out.finish(),
        Err(e) => {
            out.abandon();
            Err(e)
        }
    }
}
