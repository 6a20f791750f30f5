//! A real `redis-server` for tests and benches: started on a free port of
//! 127.0.0.1 in a temporary directory (no persistence), waited for until it
//! answers `PING`, killed when dropped.
//!
//! ```no_run
//! use embeddings_testkit::RedisServer;
//!
//! // `None` (skip the test) when redis-server is not installed and `CI` is unset.
//! let Some(redis) = RedisServer::start(&[]) else { return };
//! assert_eq!(redis.command(&["SET", "k", "v"]), "OK");
//! println!("{}", redis.url());
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `redis-server` child process on 127.0.0.1; SIGKILLed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    extra: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one with `extra` arguments (e.g. `["--maxmemory", "1mb"]`), or
    /// returns `None` when `redis-server` is not installed — unless the `CI`
    /// environment variable is set, then it panics (`.ci/run` installs it,
    /// so a missing server there is a broken set-up, not a skip).
    pub fn start(extra: &[&str]) -> Option<RedisServer> {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                std::env::var_os("CI").is_none(),
                "redis-server is not installed (.ci/run installs it)"
            );
            eprintln!("skipped: redis-server is not installed");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("a free port on 127.0.0.1")
            .local_addr()
            .expect("the port")
            .port();
        let mut server = RedisServer {
            port,
            dir: tempfile::tempdir().expect("a temporary directory"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        server.restart();
        Some(server)
    }

    /// Starts the server again on the same port (after [`kill`](Self::kill));
    /// its data is gone (no persistence). Waits until it answers `PING`
    /// (at most 5 s).
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        for _ in 0..500 {
            if self.command(&["PING"]) == "PONG" {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    /// Kills the server (SIGKILL) and waits for it; a no-op when it is not
    /// running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Sends one command on a new connection and returns the answer as text:
    /// a status (`OK`), an error (`-ERR ...`, with its dash), an integer, a
    /// bulk string (`(nil)` for a null one), or, for an array, its number of
    /// elements as `*N` (elements are not read). An empty string when the
    /// server does not answer (not running, or slower than 1 s).
    pub fn command(&self, args: &[&str]) -> String {
        let Ok(mut conn) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return String::new();
        };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
        let mut req = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            req.extend_from_slice(a.as_bytes());
            req.extend_from_slice(b"\r\n");
        }
        if conn.write_all(&req).is_err() {
            return String::new();
        }
        let mut reader = BufReader::new(conn);
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            return String::new();
        }
        let line = line.trim_end();
        match line.as_bytes().first() {
            Some(b'+') | Some(b':') => line[1..].to_owned(),
            Some(b'$') => match line[1..].parse::<i64>() {
                Ok(n) if n >= 0 => {
                    let mut body = vec![0u8; n as usize + 2];
                    if reader.read_exact(&mut body).is_err() {
                        return String::new();
                    }
                    body.truncate(n as usize);
                    String::from_utf8_lossy(&body).into_owned()
                }
                _ => "(nil)".to_owned(),
            },
            _ => line.to_owned(),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
