//! The `embeddings-fake-server` binary: prints its address, reads a TOML config.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::json;

use crate::common::*;

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_binary_serves_with_a_config() {
    let dir = std::env::temp_dir().join(format!("fake-server-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("faults.toml");
    std::fs::write(
        &config,
        "api_key = \"sk-bin\"\n[[faults]]\nroute = \"ollama_tags\"\naction = { status = 503 }\n",
    )
    .unwrap();
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_embeddings-fake-server"))
            .args(["--port", "0", "--config"])
            .arg(&config)
            .env_remove("FAKE_SERVER_API_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let addr: std::net::SocketAddr = line.trim().parse().expect("the first line is the address");
    assert!(addr.ip().is_loopback());
    let base = format!("http://{addr}");
    let a = send(
        client()
            .post(format!("{base}/v1/embeddings"))
            .bearer_auth("sk-bin")
            .json(&json!({"model": SMALL, "input": "hi", "dimensions": 3})),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_vector(SMALL, "hi", 3, &floats(&a.body["data"][0]["embedding"]));
    assert_eq!(get(&format!("{base}/api/tags")).await.status, 503);

    // A bad config is refused with a message.
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[[faults]]\naction = \"explode\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_embeddings-fake-server"))
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.toml"));
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
}
