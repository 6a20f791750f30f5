//! Client CPU per 2048-input OpenAI request against the in-process fake
//! server (issue 4): the provider's request encoding, the HTTP client, and
//! the base64 (default) or float decoding into one buffer — measured as the
//! CPU time of the client's own thread, so the server's work (on another
//! thread) is not counted.
//!
//! ```text
//! cargo bench -p embeddings-bench --bench client_cpu
//! ```
//!
//! Prints, for 1536 dimensions and each encoding, the median over a few
//! requests of the client thread's CPU time and the wall time of the call.

use std::time::{Duration, Instant};

use cpu_time::ThreadTime;
use embeddings::{Config, Embedder};
use embeddings_testkit::{FakeServer, FakeServerConfig, ServerRuntime};

const INPUTS: usize = 2048;
const ROUNDS: usize = 7;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn main() {
    // The server runs on its own runtime and threads.
    let server_rt = ServerRuntime::new();
    let server = FakeServer::start_on(
        &server_rt,
        FakeServerConfig {
            request_log_limit: Some(0),
            ..FakeServerConfig::default()
        },
    )
    .expect("fake server");
    // The client: the bare provider on a current-thread runtime in this thread.
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let texts: Vec<String> = (0..INPUTS)
        .map(|i| format!("document {i}: a short passage of text to embed"))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    for encoding in ["base64", "float"] {
        let config = Config::from_toml_str(&format!(
            "provider = \"openai\"\nmodel = \"text-embedding-3-small\"\nbase_url = \"{}\"\n[openai]\nencoding_format = \"{encoding}\"\n",
            server.openai_base_url()
        ))
        .expect("config");
        let embedder = embeddings::registry::build(&config).expect("provider");
        let (mut cpu, mut wall) = (Vec::new(), Vec::new());
        for round in 0..=ROUNDS {
            let (c0, w0) = (ThreadTime::now(), Instant::now());
            let rows = client_rt
                .block_on(embedder.embed_documents(&refs))
                .expect("embed");
            let (c, w) = (c0.elapsed(), w0.elapsed());
            assert_eq!((rows.len(), rows.dim()), (INPUTS, 1536));
            if round > 0 {
                // Round 0 warms the connection and the tokenizer up.
                cpu.push(c);
                wall.push(w);
            }
        }
        println!(
            "client_cpu/openai/{encoding}/2048x1536: client CPU median {:.2} ms, wall median {:.2} ms ({ROUNDS} requests)",
            median(cpu).as_secs_f64() * 1e3,
            median(wall).as_secs_f64() * 1e3,
        );
    }
}
