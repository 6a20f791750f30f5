//! Loads a model, embeds 32 x 256-token texts and 32 short ones, and
//! prints the weights' size and the process's peak RSS (VmHWM).
//!
//! ```sh
//! cargo run --release -p embeddings-local --example peak_rss -- /path/to/model
//! ```

use embeddings_core::Embedder;
use embeddings_local::{LocalEmbedder, LocalSection};

fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: peak_rss MODEL_DIR")?;
    let weights = std::fs::metadata(std::path::Path::new(&dir).join("model.safetensors"))?.len();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let e = LocalEmbedder::from_dir(&dir, &LocalSection::default())?;
    rt.block_on(e.prepare())?;
    let after_load = vm_hwm_kb();
    let lorem = "The quick brown fox jumps over the lazy dog while the committee debates \
                 the annual budget, the weather turns, and a train leaves the station on time. ";
    let long: Vec<String> = (0..32)
        .map(|i| format!("{i} {}", lorem.repeat(15)))
        .collect();
    let long: Vec<&str> = long.iter().map(String::as_str).collect();
    for _ in 0..3 {
        rt.block_on(e.embed_documents(&long))?;
        rt.block_on(e.embed_documents(&long[..1]))?;
    }
    let peak = vm_hwm_kb();
    let mb = |kb: u64| kb as f64 / 1024.0;
    let w = weights as f64 / (1024.0 * 1024.0);
    println!(
        "weights {w:.1} MB; peak RSS after load {:.1} MB, after embedding {:.1} MB; target 1.5 x weights + 100 MB = {:.1} MB",
        mb(after_load),
        mb(peak),
        1.5 * w + 100.0
    );
    Ok(())
}
