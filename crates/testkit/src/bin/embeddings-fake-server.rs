//! `embeddings-fake-server`: the fake OpenAI/Ollama server as a process, to
//! run an application against without an API key.
//!
//! Prints the bound address (`127.0.0.1:PORT`) as the first line on stdout.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;

use clap::Parser;
use embeddings_testkit::{FakeServer, FakeServerConfig};

/// A fake OpenAI- and Ollama-compatible embedding server with fault injection.
#[derive(Debug, Parser)]
#[command(name = "embeddings-fake-server", version)]
struct Args {
    /// The port to listen on (0: a free one). Overrides `port` in the config.
    #[arg(long, short)]
    port: Option<u16>,
    /// The address to listen on. Overrides `host` in the config (default 127.0.0.1).
    #[arg(long)]
    host: Option<IpAddr>,
    /// A TOML configuration: models, api_key, limits and `[[faults]]`.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Require this API key on OpenAI routes. Overrides `api_key` in the config.
    #[arg(long, env = "FAKE_SERVER_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let mut config = match &args.config {
        None => FakeServerConfig::default(),
        Some(path) => {
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: cannot read {}: {e}", path.display());
                    return std::process::ExitCode::from(2);
                }
            };
            match FakeServerConfig::from_toml(&text) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {}: {e}", path.display());
                    return std::process::ExitCode::from(2);
                }
            }
        }
    };
    if let Some(port) = args.port {
        config.port = port;
    }
    if let Some(host) = args.host {
        config.host = Some(host);
    }
    if args.api_key.is_some() {
        config.api_key = args.api_key;
    }
    // A long-running process keeps only a short log.
    config.request_log_limit.get_or_insert(0);
    let faults = config.faults.len();
    let server = match FakeServer::start(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot start the server: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", server.addr());
    let _ = out.flush();
    drop(out);
    eprintln!(
        "embeddings-fake-server: {faults} fault(s); OPENAI_BASE_URL={} OLLAMA_HOST={}; Ctrl-C to stop",
        server.openai_base_url(),
        server.addr()
    );
    let _ = tokio::signal::ctrl_c().await;
    drop(server);
    std::process::ExitCode::SUCCESS
}
