//! Command-line arguments (a contract other tools script against).

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use embeddings::{Config, InputType, OutputType};

/// Embed texts with any registered provider (offline, the embedded static model, by default).
#[derive(Debug, Parser)]
#[command(
    name = "embed",
    version,
    about,
    args_conflicts_with_subcommands = true,
    after_help = "Environment: EMBEDDINGS_PROVIDER, EMBEDDINGS_MODEL, EMBEDDINGS_DIMENSIONS, \
                  EMBEDDINGS_CONFIG, OPENAI_API_KEY, OPENAI_BASE_URL, OLLAMA_HOST, RUST_LOG.\n\
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
    /// Cosine similarity of the first text with each of the others.
    Similarity(SimilarityArgs),
    /// The configured cache store: stats, compact or clear.
    Cache(crate::cache::CacheArgs),
    /// Joins the parts of a --shard or --queue job (DIR/manifest.json) into one output.
    Merge(crate::merge::MergeArgs),
    /// A --queue job on Redis: status.
    Queue(crate::parts::QueueArgs),
}

/// `embed similarity A B...`
#[derive(Debug, Args, Clone)]
pub(crate) struct SimilarityArgs {
    #[command(flatten)]
    pub(crate) common: CommonArgs,
    /// The text to compare with the others
    #[arg(value_name = "A")]
    pub(crate) first: String,
    /// The texts compared with A (one output line each: cosine, tab, text)
    #[arg(value_name = "B", required = true)]
    pub(crate) others: Vec<String>,
}

/// Options that select and configure the provider.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct CommonArgs {
    /// Provider name [default: $EMBEDDINGS_PROVIDER, else "static" (the embedded model; "mock" gives known test vectors)]
    #[arg(short, long, value_name = "NAME")]
    pub(crate) provider: Option<String>,
    /// Model [default: $EMBEDDINGS_MODEL, else the provider's default]
    #[arg(short, long, value_name = "MODEL")]
    pub(crate) model: Option<String>,
    /// Output dimension, 1..=65536 [default: the model's]
    #[arg(short, long, value_name = "N")]
    pub(crate) dimensions: Option<String>,
    /// Provider endpoint
    #[arg(long, value_name = "URL")]
    pub(crate) base_url: Option<String>,
    /// Model directory of an in-process provider (model_path of the static section with -p static, else of the local section)
    #[arg(long, value_name = "DIR")]
    pub(crate) model_path: Option<PathBuf>,
    /// Config file (TOML, or JSON by extension) [default: $EMBEDDINGS_CONFIG, else ./embeddings.toml if present]
    #[arg(short, long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Most inputs per request, 1..=1000000 (never more than the provider accepts)
    #[arg(long, value_name = "N")]
    pub(crate) batch_size: Option<String>,
    /// Requests in flight at once, 1..=4096
    #[arg(long, value_name = "N")]
    pub(crate) concurrency: Option<String>,
    /// Retries after a failed attempt, 0..=1000
    #[arg(long, value_name = "N")]
    pub(crate) max_retries: Option<String>,
    /// Log lines on stderr: off, error, warn, info, debug, trace, or filter directives such as
    /// "embeddings_openai=debug" [default: $RUST_LOG, else warn]
    #[arg(long, value_name = "FILTER")]
    pub(crate) log_level: Option<String>,
    /// Cache vectors in a directory, in Redis (redis://HOST:PORT/DB), or in memory ("memory")
    #[arg(long, value_name = "DIR|URL")]
    pub(crate) cache: Option<String>,
}

/// What to embed and where the vectors go.
#[derive(Debug, Args, Clone)]
pub(crate) struct EmbedArgs {
    /// Texts to embed (else --input, else stdin)
    #[arg(value_name = "TEXT")]
    pub(crate) texts: Vec<String>,
    /// Input file, repeatable: one text per line; .jsonl: {"id":..,"text":..} per line; .csv: a header row and a text column; "-" = stdin
    #[arg(short, long, value_name = "FILE")]
    pub(crate) input: Vec<PathBuf>,
    /// How to read the inputs [default: by extension; stdin: lines]
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub(crate) input_format: Option<InputFormat>,
    /// JSONL field or CSV column holding the text
    #[arg(long, value_name = "NAME", default_value = "text")]
    pub(crate) text_field: String,
    /// JSONL field or CSV column holding the id (optional in the data)
    #[arg(long, value_name = "NAME", default_value = "id")]
    pub(crate) id_field: String,
    /// Output file [default: stdout]
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Output format [default: by --output extension, else jsonl]
    #[arg(long, value_enum)]
    pub(crate) format: Option<Format>,
    /// What the inputs are for (sent to providers that take it, else a configured prompt)
    /// [default: the config file's input_type, else document]
    #[arg(long, value_enum, value_name = "TYPE")]
    pub(crate) input_type: Option<InputTypeArg>,
    /// How vectors come back: f32, int8, uint8, or bits packed 8 per byte (binary: as int8,
    /// ubinary: as uint8) [default: the config file's output_type, else f32]
    #[arg(long, value_enum, value_name = "TYPE")]
    pub(crate) output_type: Option<OutputTypeArg>,
    /// Continue a job that stopped, from its last saved row (needs --output)
    #[arg(long)]
    pub(crate) resume: bool,
    /// What to do with a bad input (empty, malformed, over the provider's limit)
    #[arg(long, value_enum, default_value_t = OnError::Fail)]
    pub(crate) on_error: OnError,
    /// No progress and no summary on stderr (errors still go there)
    #[arg(short, long)]
    pub(crate) quiet: bool,
    /// How often a progress line is printed when stderr is not a terminal
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    pub(crate) progress_interval: std::time::Duration,
    /// The end-of-job summary on stderr: text for people, json for machines
    #[arg(long, value_enum, default_value_t = StatsFormat::Text)]
    pub(crate) stats: StatsFormat,
    /// A job split into parts: --shard, or --queue and its options.
    #[command(flatten)]
    pub(crate) dist: crate::parts::DistArgs,
}

impl EmbedArgs {
    /// The input and output types of every request: flags, else the config file, else
    /// document and f32.
    pub(crate) fn request_types(&self, config: &Config) -> (InputType, OutputType) {
        (
            self.input_type
                .map(InputType::from)
                .or(config.input_type)
                .unwrap_or_default(),
            self.output_type
                .map(OutputType::from)
                .or(config.output_type)
                .unwrap_or_default(),
        )
    }

    /// The output format: `--format`, else by the output file's extension, else jsonl.
    pub(crate) fn output_format(&self) -> Format {
        if let Some(f) = self.format {
            return f;
        }
        let ext = self
            .output
            .as_deref()
            .and_then(Path::extension)
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("npy") => Format::Npy,
            Some("json") => Format::Json,
            Some("parquet") => Format::Parquet,
            Some("arrow" | "arrows" | "ipc" | "feather") => Format::Arrow,
            _ => Format::Jsonl,
        }
    }
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// One {"index","id","embedding"} object per line.
    Jsonl,
    /// One JSON array of those objects.
    Json,
    /// NumPy .npy, shape (N, D): float32, or int8/uint8 (packed bits: N × ceil(D/8) bytes).
    Npy,
    /// Parquet: index (uint64), id (utf8, nullable), embedding (fixed-size list of float32, int8 or uint8).
    Parquet,
    /// Arrow IPC file, same columns as parquet.
    Arrow,
}

/// Input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum InputFormat {
    /// One text per line.
    Lines,
    /// One JSON object per line.
    Jsonl,
    /// CSV with a header row.
    Csv,
}

/// The bad-input policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OnError {
    /// Stop at the first bad input, with its line number.
    Fail,
    /// Leave bad inputs out, and list them in the summary.
    Skip,
}

/// Summary formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StatsFormat {
    /// One line for people.
    Text,
    /// One JSON object for machines.
    Json,
}

/// `--input-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum InputTypeArg {
    /// Texts to be searched.
    Document,
    /// Search queries.
    Query,
    /// Texts to be classified.
    Classification,
    /// Texts to be clustered.
    Clustering,
    /// Texts compared with each other.
    Similarity,
}

impl From<InputTypeArg> for InputType {
    fn from(t: InputTypeArg) -> Self {
        match t {
            InputTypeArg::Document => InputType::Document,
            InputTypeArg::Query => InputType::Query,
            InputTypeArg::Classification => InputType::Classification,
            InputTypeArg::Clustering => InputType::Clustering,
            InputTypeArg::Similarity => InputType::Similarity,
        }
    }
}

/// `--output-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputTypeArg {
    /// 32-bit floats.
    F32,
    /// Signed bytes, one per dimension.
    Int8,
    /// Unsigned bytes, one per dimension.
    Uint8,
    /// One bit per dimension, packed 8 per byte, stored as signed bytes.
    Binary,
    /// One bit per dimension, packed 8 per byte.
    Ubinary,
}

impl From<OutputTypeArg> for OutputType {
    fn from(t: OutputTypeArg) -> Self {
        match t {
            OutputTypeArg::F32 => OutputType::F32,
            OutputTypeArg::Int8 => OutputType::Int8,
            OutputTypeArg::Uint8 => OutputType::Uint8,
            OutputTypeArg::Binary => OutputType::Binary,
            OutputTypeArg::Ubinary => OutputType::Ubinary,
        }
    }
}
