//! Command-line arguments (a contract other tools script against).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Embed texts with any registered provider (offline `mock` by default).
#[derive(Debug, Parser)]
#[command(
    name = "embed",
    version,
    about,
    args_conflicts_with_subcommands = true,
    after_help = "Environment: EMBEDDINGS_PROVIDER, EMBEDDINGS_MODEL, EMBEDDINGS_DIMENSIONS, \
                  OPENAI_API_KEY, OPENAI_BASE_URL, OLLAMA_HOST.\n\
                  Precedence: defaults < config file < environment < flags."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    #[command(flatten)]
    pub(crate) common: CommonArgs,
    #[command(flatten)]
    pub(crate) embed: EmbedArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// One line per registered provider: name and description.
    Providers,
    /// Checks the configured provider; exit 0 when healthy.
    Health(CommonArgs),
}

/// Options that select and configure the provider.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct CommonArgs {
    /// Provider name [default: $EMBEDDINGS_PROVIDER, else "mock"]
    #[arg(short, long, value_name = "NAME")]
    pub(crate) provider: Option<String>,
    /// Model [default: $EMBEDDINGS_MODEL, else the provider's default]
    #[arg(short, long, value_name = "MODEL")]
    pub(crate) model: Option<String>,
    /// Output dimension [default: the model's]
    #[arg(short, long, value_name = "N")]
    pub(crate) dimensions: Option<usize>,
    /// Provider endpoint
    #[arg(long, value_name = "URL")]
    pub(crate) base_url: Option<String>,
    /// Config file (TOML, or JSON by extension) [default: ./embeddings.toml if present]
    #[arg(short, long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Most inputs per request
    #[arg(long, value_name = "N")]
    pub(crate) batch_size: Option<usize>,
    /// Requests of one call in flight at once
    #[arg(long, value_name = "N")]
    pub(crate) concurrency: Option<usize>,
    /// Retries after a failed attempt
    #[arg(long, value_name = "N")]
    pub(crate) max_retries: Option<u32>,
}

/// What to embed and where the vectors go.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct EmbedArgs {
    /// Texts to embed (else --input, else stdin)
    #[arg(value_name = "TEXT")]
    pub(crate) texts: Vec<String>,
    /// Input file: one text per line; a .jsonl file holds {"id":..,"text":..} per line; "-" = stdin
    #[arg(short, long, value_name = "FILE")]
    pub(crate) input: Vec<PathBuf>,
    /// Output file [default: stdout]
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub(crate) format: Format,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub(crate) enum Format {
    /// One {"index","id","embedding"} object per line.
    #[default]
    Jsonl,
    /// One JSON array of those objects.
    Json,
    /// NumPy .npy, float32, shape (N, D).
    Npy,
}
