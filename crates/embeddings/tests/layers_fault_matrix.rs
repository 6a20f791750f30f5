//! The fault matrix: every fault of the fake server × every provider that
//! has a testkit fixture × {transient, permanent}, through the full layer
//! stack built from a config. Transient faults end with every row equal to
//! its input's design vector, in order; permanent ones with the right typed
//! error after the right number of attempts. Plus the integrity load test
//! (100,000 inputs).
//!
//! Each fixture gets its own fake server of its own dialects, and faults go
//! to the fixture's embedding route; a new provider with a fixture is in the
//! matrix without an edit here.
//!
//! Real sockets on 127.0.0.1 need real time, so no outcome may depend on how
//! fast the machine is: only the `hang` case relies on the per-attempt
//! timeout (the server never answers, so it times out however slow the
//! machine); every other case runs with a timeout far beyond any answer, so
//! a loaded machine makes the matrix slower, never different. Backoffs are
//! kept to milliseconds and every case runs under an overall deadline, so
//! nothing hangs.
//!
//! `cargo test -p embeddings --features full --test layers_fault_matrix`

#![cfg(feature = "mock")]

use std::sync::Arc;
use std::time::Duration;

use embeddings::{Config, Embedder, Embeddings, ErrorKind};
use embeddings_testkit::{
    FakeServer, FakeServerConfig, Fault, FaultAction, Fixture, Latency, RateLimitedFault,
    StatusFault, Trigger, fixture,
};

const MAX_RETRIES: u32 = 2;
const CASE_DEADLINE: Duration = Duration::from_secs(60);
/// The per-attempt timeout of the `hang` case: the server never answers.
const HANG_TIMEOUT: Duration = Duration::from_millis(300);
/// The per-attempt timeout of every other case: never reached by an answer,
/// however loaded the machine (a slow answer must not become a timeout).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// The fixtures of the providers this build has (none without a network
/// provider feature: `--features full`; the conformance test
/// `every_registered_network_provider_has_a_fixture` makes sure none is
/// missing).
fn fixtures() -> Vec<&'static dyn Fixture> {
    let f = fixture::fixtures_registered();
    if f.is_empty() {
        eprintln!("no provider with a fixture in this build: enable --features full");
    }
    f
}

/// The fixture's configuration with the matrix's layer settings.
fn config(f: &dyn Fixture, server: &FakeServer, per_attempt: Duration) -> Config {
    let mut c = f.config(&server.base_url());
    c.batch.max_batch_size = Some(8);
    c.batch.concurrency = Some(2);
    c.retry.max_retries = MAX_RETRIES;
    c.retry.initial_backoff = Duration::from_millis(5);
    c.retry.max_backoff = Duration::from_millis(20);
    c.retry.max_retry_after = Duration::from_millis(50);
    c.timeout.per_attempt = Some(per_attempt);
    c
}

/// What a fault should end with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Every row correct.
    Rows,
    /// This error; `retried`: after every attempt, else after one.
    Error(ErrorKind, bool),
    /// Any of these.
    OneOf(&'static [Expect]),
}

struct Case {
    name: &'static str,
    action: FaultAction,
    /// When the fault fires on the first request only.
    transient: Expect,
    /// When it fires on every request.
    permanent: Expect,
}

fn status(code: u16) -> FaultAction {
    FaultAction::Status(StatusFault::new(code))
}

fn cases(f: &dyn Fixture) -> Vec<Case> {
    use Expect::{Error as E, Rows};
    let retried = |kind| (Rows, E(kind, true));
    let final_ = |kind| (E(kind, false), E(kind, false));
    let mut v = vec![
        (
            "latency",
            FaultAction::Latency(Latency::Fixed(Duration::from_millis(30))),
            (Rows, Rows),
        ),
        ("status 500", status(500), retried(ErrorKind::Unavailable)),
        ("status 502", status(502), retried(ErrorKind::Unavailable)),
        ("status 503", status(503), retried(ErrorKind::Unavailable)),
        ("status 408", status(408), retried(ErrorKind::Timeout)),
        (
            "rate limited (retry-after)",
            FaultAction::RateLimited(RateLimitedFault {
                retry_after_ms: Some(20),
                ..RateLimitedFault::default()
            }),
            retried(ErrorKind::RateLimited),
        ),
        ("hang", FaultAction::Hang, retried(ErrorKind::Timeout)),
        ("reset", FaultAction::Reset, retried(ErrorKind::Connection)),
        ("status 401", status(401), final_(ErrorKind::Authentication)),
        ("status 404", status(404), final_(ErrorKind::NotFound)),
        ("status 400", status(400), final_(ErrorKind::InvalidInput)),
        (
            "malformed json",
            FaultAction::MalformedJson,
            final_(ErrorKind::InvalidResponse),
        ),
        (
            "wrong count",
            FaultAction::WrongCount(-1),
            final_(ErrorKind::InvalidResponse),
        ),
        ("nan", FaultAction::Nan, final_(ErrorKind::InvalidResponse)),
        (
            "wrong dimension",
            FaultAction::WrongDimension(-1),
            final_(ErrorKind::InvalidResponse),
        ),
    ];
    // A body cut short is a broken connection (retried); a provider may also
    // report it as an invalid answer (reqwest calls it a decode error), which
    // is not retried. Both are typed errors with no partial result.
    const CUT: &[Expect] = &[
        Expect::Error(ErrorKind::Connection, true),
        Expect::Error(ErrorKind::InvalidResponse, false),
    ];
    const CUT_ONCE: &[Expect] = &[
        Expect::Rows,
        Expect::Error(ErrorKind::InvalidResponse, false),
    ];
    v.push((
        "truncated body",
        FaultAction::Truncate,
        (Expect::OneOf(CUT_ONCE), Expect::OneOf(CUT)),
    ));
    if f.rows_carry_index() {
        v.push(("shuffled index", FaultAction::ShuffleIndex, (Rows, Rows)));
        v.push((
            "duplicate index",
            FaultAction::DuplicateIndex,
            final_(ErrorKind::InvalidResponse),
        ));
    }
    // Rows without an index (Ollama's) cannot be told apart when a server
    // shuffles or duplicates them, by any client: those two are left out.
    v.into_iter()
        .map(|(name, action, (transient, permanent))| Case {
            name,
            action,
            transient,
            permanent,
        })
        .collect()
}

fn texts(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("document {i}: déjà vu 🌍"))
        .collect()
}

fn check_rows(rows: &Embeddings, f: &dyn Fixture, texts: &[String]) -> Result<(), String> {
    if rows.len() != texts.len() {
        return Err(format!("{} rows for {} inputs", rows.len(), texts.len()));
    }
    if rows.dim() != f.dimension() {
        return Err(format!("dimension {}", rows.dim()));
    }
    for (i, t) in texts.iter().enumerate() {
        let want = embeddings::mock::vector(f.model(), t, rows.dim());
        if rows
            .row(i)
            .iter()
            .zip(&want)
            .any(|(a, b)| (a - b).abs() > 1e-5)
        {
            return Err(format!("row {i} is not its input's vector"));
        }
    }
    Ok(())
}

async fn run_case(
    f: &dyn Fixture,
    server: &FakeServer,
    fault: Fault,
    expect: Expect,
) -> Result<(), String> {
    let per_attempt = if fault.action == FaultAction::Hang {
        HANG_TIMEOUT
    } else {
        ANSWER_TIMEOUT
    };
    server
        .try_set_faults(vec![fault])
        .map_err(|e| format!("the fixture's route is not served: {e}"))?;
    let embedder = embeddings::from_config(&config(f, server, per_attempt)).unwrap();
    let inputs = texts(20);
    let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let result = tokio::time::timeout(CASE_DEADLINE, embedder.embed_documents(&refs))
        .await
        .map_err(|_| "hung past the deadline".to_owned())?;
    check(f, &inputs, expect, &result)
}

fn check(
    f: &dyn Fixture,
    inputs: &[String],
    expect: Expect,
    result: &embeddings::Result<Embeddings>,
) -> Result<(), String> {
    match (expect, result) {
        (Expect::OneOf(options), _) => {
            let mut why = Vec::new();
            for &option in options {
                match check(f, inputs, option, result) {
                    Ok(()) => return Ok(()),
                    Err(e) => why.push(e),
                }
            }
            Err(why.join("; or "))
        }
        (Expect::Rows, Ok(rows)) => check_rows(rows, f, inputs),
        (Expect::Rows, Err(e)) => Err(format!("expected rows, got {e}")),
        (Expect::Error(kind, _), Ok(_)) => Err(format!("expected {kind}, got rows")),
        (Expect::Error(kind, retried), Err(e)) => {
            let attempts = if retried { MAX_RETRIES + 1 } else { 1 };
            if e.kind() != kind || e.attempts() != Some(attempts) {
                return Err(format!(
                    "expected {kind} after {attempts} attempts, got {} after {:?}: {e}",
                    e.kind(),
                    e.attempts()
                ));
            }
            if let Some(secret) = f.secret()
                && (e.to_string().contains(secret) || format!("{e:?}").contains(secret))
            {
                return Err(format!("the key is in the error: {e}"));
            }
            Ok(())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix() {
    let mut failures = Vec::new();
    let mut ran = 0;
    for f in fixtures() {
        for case in cases(f) {
            for (label, trigger, expect) in [
                ("transient", Trigger::Nth(1), case.transient),
                ("permanent", Trigger::Always, case.permanent),
            ] {
                let fault = Fault::new(case.action.clone())
                    .on(f.embedding_route())
                    .when(trigger);
                ran += 1;
                // A server of its own per case: no request, connection or
                // counter of an earlier case can reach this one's fault.
                let server = fixture::start_server(f, FakeServerConfig::default())
                    .await
                    .unwrap();
                let outcome = run_case(f, &server, fault, expect).await;
                let requests = server.requests().len();
                drop(server);
                if let Err(why) = outcome {
                    let why = format!("{why} ({requests} requests reached the server)");
                    failures.push(format!("{} / {} / {label}: {why}", f.provider(), case.name));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {ran} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The fixture the load tests run on: the first whose rows carry an index
/// (so that shuffled answers can be part of the load).
fn indexed_fixture() -> Option<&'static dyn Fixture> {
    let f = fixtures().into_iter().find(|f| f.rows_carry_index());
    if f.is_none() {
        eprintln!("no fixture whose rows carry an index in this build: skipped");
    }
    f
}

/// 100,000 inputs through the full stack with 2% transient faults, shuffled
/// indices and a tokens-per-minute limit: no row lost, duplicated or misplaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrity_under_load() {
    // About 1.2 M tokens against a budget of 1 M a minute (a full bucket to
    // start with): the last ~0.2 M tokens are paced, ~12 s.
    let Some(f) = indexed_fixture() else {
        return;
    };
    let server = fixture::start_server(
        f,
        FakeServerConfig {
            tokens_per_minute: Some(1_000_000),
            ..FakeServerConfig::default()
        },
    )
    .await
    .unwrap();
    let route = f.embedding_route();
    server.set_faults(vec![
        Fault::new(status(503)).on(route).when(Trigger::Rate {
            probability: 0.01,
            seed: 1,
        }),
        Fault::new(FaultAction::Reset)
            .on(route)
            .when(Trigger::Rate {
                probability: 0.01,
                seed: 2,
            }),
        Fault::new(FaultAction::ShuffleIndex).on(route),
    ]);
    let mut config = config(f, &server, ANSWER_TIMEOUT);
    config.rate_limit.tokens_per_minute = Some(1_000_000);
    config.concurrency.max_in_flight = Some(16);
    config.batch.max_batch_size = Some(256);
    config.batch.concurrency = Some(16);
    config.retry.max_retries = 8;
    // The server's 429s say how long to wait (the client's and the server's
    // buckets drift apart by the time requests spend in transit, more on a
    // loaded machine): wait what it says, rather than a capped 50 ms that
    // eight retries can spend before the budget refills.
    config.retry.max_retry_after = Duration::from_secs(10);
    let embedder: Arc<dyn Embedder> = embeddings::from_config(&config).unwrap();
    let inputs = texts(100_000);
    let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let rows = tokio::time::timeout(Duration::from_secs(240), embedder.embed_documents(&refs))
        .await
        .expect("finished in time")
        .expect("every transient fault was retried");
    check_rows(&rows, f, &inputs).unwrap();
    let stats = server.stats();
    println!(
        "integrity: {} inputs, {} requests, {} answered 429, {} faults fired",
        inputs.len(),
        stats.route(route),
        stats.count(route, 429),
        stats.faults
    );
}

/// Throughput against 100 ms of latency per request, by concurrency
/// (`batch.concurrency` and `concurrency.max_in_flight`). A report, not a
/// check: `cargo test -p embeddings --features full --test layers_fault_matrix
/// -- --ignored --nocapture throughput`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a real-time measurement; run by hand"]
async fn throughput_by_concurrency() {
    let Some(f) = indexed_fixture() else {
        return;
    };
    let server = fixture::start_server(f, FakeServerConfig::default())
        .await
        .unwrap();
    server.set_faults(vec![
        Fault::new(FaultAction::Latency(Latency::Fixed(Duration::from_millis(
            100,
        ))))
        .on(f.embedding_route()),
    ]);
    for concurrency in [1usize, 4, 16, 64] {
        let mut config = config(f, &server, ANSWER_TIMEOUT);
        config.batch.max_batch_size = Some(16);
        config.batch.concurrency = Some(concurrency);
        config.concurrency.max_in_flight = Some(concurrency);
        let embedder = embeddings::from_config(&config).unwrap();
        let inputs = texts(16 * 10 * concurrency);
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let start = std::time::Instant::now();
        let rows = embedder.embed_documents(&refs).await.unwrap();
        let secs = start.elapsed().as_secs_f64();
        check_rows(&rows, f, &inputs).unwrap();
        println!(
            "concurrency {concurrency:>2}: {:>6.0} inputs/s, {:>5.1} requests/s",
            inputs.len() as f64 / secs,
            (inputs.len() / 16) as f64 / secs
        );
    }
}

/// A long job against a server enforcing L tokens per minute, with 100 ms
/// latency: the rate achieved once the first minute's burst is spent, as a
/// share of L, and the 429s; first with L configured in the rate-limit layer,
/// then with the adaptive part alone (the server's headers and 429s).
/// `... -- --ignored --nocapture sustained`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a real-time measurement (about 70 s); run by hand"]
async fn sustained_rate_under_a_token_limit() {
    const L: u32 = 300_000;
    for configured in [true, false] {
        sustained_run(L, configured).await;
    }
}

async fn sustained_run(l: u32, configured: bool) {
    use embeddings::layers::{StreamOptions, embed_iter};
    use futures::StreamExt;

    let Some(f) = indexed_fixture() else {
        return;
    };
    let route = f.embedding_route();
    let server = fixture::start_server(
        f,
        FakeServerConfig {
            tokens_per_minute: Some(l),
            ..FakeServerConfig::default()
        },
    )
    .await
    .unwrap();
    server.set_faults(vec![
        Fault::new(FaultAction::Latency(Latency::Fixed(Duration::from_millis(
            100,
        ))))
        .on(route),
    ]);
    let mut config = config(f, &server, ANSWER_TIMEOUT);
    if configured {
        config.rate_limit.tokens_per_minute = Some(l);
    }
    config.batch.max_batch_size = Some(64);
    config.batch.concurrency = Some(8);
    config.retry.max_retries = 10;
    config.retry.max_retry_after = Duration::from_secs(60);
    config.timeout.per_attempt = Some(Duration::from_secs(30));
    let embedder = embeddings::from_config(&config).unwrap();
    let inputs = texts(45_000);
    let options = StreamOptions::from_config(&config.batch);
    let mut batches = Box::pin(embed_iter(embedder.clone(), inputs.clone(), options));
    let start = std::time::Instant::now();
    let mut done = 0usize;
    let mut tokens = 0usize;
    let mut window: Option<(f64, usize)> = None;
    while let Some(batch) = batches.next().await {
        let (range, rows) = batch.unwrap();
        assert_eq!(range.start, done);
        check_rows(&rows, f, &inputs[range.clone()]).unwrap();
        done = range.end;
        tokens += inputs[range]
            .iter()
            .map(|t| embedder.count_tokens(t))
            .sum::<usize>();
        if window.is_none() && tokens as f64 > 1.1 * f64::from(l) {
            window = Some((start.elapsed().as_secs_f64(), tokens));
        }
    }
    assert_eq!(done, inputs.len());
    let secs = start.elapsed().as_secs_f64();
    let (t0, k0) = window.expect("the job outlasted the burst");
    let steady = (tokens - k0) as f64 / (secs - t0) * 60.0;
    let stats = server.stats();
    println!(
        "sustained ({}): {tokens} tokens in {secs:.1} s; after the burst {steady:.0} \
         tokens/min = {:.1}% of L = {l}; {} requests, {} answered 429, 0 failed inputs",
        if configured {
            "limit configured"
        } else {
            "adaptive only"
        },
        steady / f64::from(l) * 100.0,
        stats.route(route),
        stats.count(route, 429),
    );
}
