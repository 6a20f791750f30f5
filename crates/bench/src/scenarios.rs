//! The deterministic benchmark scenarios counted by the `icount` runner under
//! callgrind and gated by `cargo xtask bench-check`.
//!
//! A scenario is everything that does not depend on the network or on thread
//! scheduling: fixed inputs, one thread (a current-thread tokio runtime), a
//! fixed number of iterations. Its setup (building the embedder, the inputs
//! and the runtime) happens outside the measured region; only the
//! iterations are counted.
//!
//! Names are stable identifiers (they key the baseline file): rename one only
//! together with a new baseline.

use std::hint::black_box;

use crate::fixtures::{self, BATCHES, DIMS, MODEL, QUERY};

/// Runs the scenario's operation `n` times.
pub type Run = Box<dyn FnMut(u64)>;

/// One named, deterministic piece of work.
pub struct Scenario {
    /// The stable name, such as `embed_query/mock/256`.
    pub name: String,
    /// How many times the runner repeats the operation inside the measured
    /// region (chosen so that each region counts a few million instructions).
    pub iterations: u64,
    setup: Box<dyn Fn() -> Run>,
}

impl std::fmt::Debug for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scenario")
            .field("name", &self.name)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl Scenario {
    fn new(name: impl Into<String>, iterations: u64, setup: impl Fn() -> Run + 'static) -> Self {
        Scenario {
            name: name.into(),
            iterations,
            setup: Box::new(setup),
        }
    }

    /// Builds the inputs (not measured) and returns the operation to repeat.
    pub fn prepare(&self) -> Run {
        (self.setup)()
    }
}

/// Every scenario, in a fixed order.
pub fn all() -> Vec<Scenario> {
    let mut v = Vec::new();

    // Registry: lookup alone, and lookup + validate + build (+ drop), the
    // "factory" cost of issue 2 (target ≤ 0.5 µs).
    v.push(Scenario::new("registry/find", 5_000, || {
        Box::new(|n| {
            for _ in 0..n {
                black_box(embeddings::registry::find(black_box("mock")).ok());
            }
        })
    }));
    v.push(Scenario::new("registry/build/mock", 2_000, || {
        let config = fixtures::config(256);
        Box::new(move |n| {
            for _ in 0..n {
                black_box(embeddings::registry::build(black_box(&config)).ok());
            }
        })
    }));
    v.push(Scenario::new("facade/from_config/mock", 2_000, || {
        let config = fixtures::config(256);
        Box::new(move |n| {
            for _ in 0..n {
                black_box(embeddings::from_config(black_box(&config)).ok());
            }
        })
    }));

    // dimension(): a virtual call through `Arc<dyn Embedder>` (target ≤ 2 ns).
    for (label, layered) in [("mock", false), ("layered", true)] {
        v.push(Scenario::new(
            format!("dimension/{label}"),
            20_000,
            move || {
                let e = if layered {
                    fixtures::layered(256)
                } else {
                    fixtures::bare(256)
                };
                Box::new(move |n| {
                    for _ in 0..n {
                        black_box(black_box(&e).dimension());
                    }
                })
            },
        ));
    }

    // embed_query on the bare mock from the registry.
    for dim in DIMS {
        let iterations = 256_000 / dim as u64;
        v.push(Scenario::new(
            format!("embed_query/mock/{dim}"),
            iterations,
            move || query(dim, false),
        ));
    }

    // embed_documents on the bare mock from the registry.
    for batch in BATCHES {
        for dim in DIMS {
            let iterations = (256_000 / (batch * dim) as u64).max(1);
            v.push(Scenario::new(
                format!("embed_documents/mock/{batch}x{dim}"),
                iterations,
                move || documents(batch, dim, false),
            ));
        }
    }

    // The same calls through the default layer stack of `from_config`: the
    // difference to the bare mock is the layers' overhead.
    v.push(Scenario::new("layers/embed_query/256", 1_000, || {
        query(256, true)
    }));
    for batch in BATCHES {
        let iterations = (256_000 / (batch * 256) as u64).max(1);
        v.push(Scenario::new(
            format!("layers/embed_documents/{batch}x256"),
            iterations,
            move || documents(batch, 256, true),
        ));
    }

    // The batch layer's planner: 2048 inputs into requests of at most 256
    // inputs and 2000 tokens.
    v.push(Scenario::new("layers/plan_batches/2048", 200, || {
        let counts = fixtures::token_counts(2048);
        Box::new(move |n| {
            for _ in 0..n {
                black_box(embeddings::layers::plan_batches(
                    black_box(&counts),
                    256,
                    2000,
                ));
            }
        })
    }));

    // OpenAI request encoding (base64 asked, 1536 dimensions).
    for (batch, iterations) in [(1, 2_000), (256, 50)] {
        v.push(Scenario::new(
            format!("openai/encode_request/{batch}"),
            iterations,
            move || {
                use embeddings::openai::decode::{
                    EmbeddingRequest, EncodingFormat, encode_request,
                };
                let texts: &'static [String] = Box::leak(fixtures::texts(batch).into_boxed_slice());
                let refs = fixtures::refs(texts);
                Box::new(move |n| {
                    for _ in 0..n {
                        let request = EmbeddingRequest {
                            model: fixtures::OPENAI_MODEL,
                            input: black_box(&refs),
                            encoding_format: EncodingFormat::Base64,
                            dimensions: Some(fixtures::OPENAI_DIM),
                            user: None,
                        };
                        black_box(encode_request(&request).expect("encodes"));
                    }
                })
            },
        ));
    }

    // OpenAI response decoding: base64 vs JSON floats, 1536 dimensions.
    for (format, base64) in [("base64", true), ("float", false)] {
        for rows in [1, 256] {
            let iterations = match (base64, rows) {
                (true, 1) => 100,
                (false, 1) => 10,
                _ => 1,
            };
            v.push(Scenario::new(
                format!("openai/decode/{format}/{rows}x{}", fixtures::OPENAI_DIM),
                iterations,
                move || {
                    let body = fixtures::openai_response(rows, fixtures::OPENAI_DIM, base64);
                    Box::new(move |n| {
                        for _ in 0..n {
                            black_box(
                                embeddings::openai::decode::decode_response(
                                    black_box(&body),
                                    rows,
                                    fixtures::OPENAI_DIM,
                                )
                                .expect("decodes"),
                            );
                        }
                    })
                },
            ));
        }
    }

    // Ollama `/api/embed` answer parsing, 768 dimensions.
    for (rows, iterations) in [(1, 40), (256, 1)] {
        v.push(Scenario::new(
            format!("ollama/parse/{rows}x{}", fixtures::OLLAMA_DIM),
            iterations,
            move || {
                let body = fixtures::ollama_response(rows, fixtures::OLLAMA_DIM);
                Box::new(move |n| {
                    for _ in 0..n {
                        black_box(
                            embeddings::ollama::parse_embed_response(
                                black_box(&body),
                                rows,
                                Some(fixtures::OLLAMA_DIM),
                            )
                            .expect("parses"),
                        );
                    }
                })
            },
        ));
    }

    // The cache layer's memory-hit path (issue 17: ≤ 1 µs per row + the
    // copy): key hash, moka lookup, copy of the row into the result.
    // One row per call: the 100-row variant's count was not reproducible
    // run to run (a few dozen instructions of hashing), so the gate keeps
    // only the one-row hit; the criterion bench in crates/cache has both.
    v.push(Scenario::new("cache/memory_hit/1x1536", 2_000, || {
        cache_hits(1, 1536)
    }));

    // Issue 14: the embedded static model through the default stack: one
    // query (tokenize, pool 256 int8 columns, normalise), and 32 short texts.
    v.push(Scenario::new("static/query/embedded", 2_000, || {
        static_model(1)
    }));
    v.push(Scenario::new("static/documents/embedded/32", 100, || {
        static_model(32)
    }));

    // Issue 12: what the layers spend planning and accounting a 20k-text
    // job for OpenAI (cl100k token bounds, 2048 inputs and 300k tokens per
    // request), over a provider that answers instantly: the batch layer
    // alone, then the default stack with a tokens-per-minute limit (the
    // rate limiter accounts from the answers' usage).
    for (label, rate_limited) in [("batch", false), ("rate_limited", true)] {
        v.push(Scenario::new(
            format!("layers/plan/openai/{label}/20000"),
            1,
            move || planned(20_000, rate_limited),
        ));
    }

    v
}

fn static_model(batch: usize) -> Run {
    let rt = fixtures::runtime();
    let e = embeddings::EmbedderBuilder::new("static")
        .build()
        .expect("the embedded static model");
    let texts: &'static [String] = Box::leak(fixtures::texts(batch).into_boxed_slice());
    let refs = fixtures::refs(texts);
    Box::new(move |n| {
        rt.block_on(async {
            for _ in 0..n {
                if batch == 1 {
                    black_box(e.embed_query(black_box(QUERY)).await.expect("static query"));
                } else {
                    black_box(
                        e.embed_documents(black_box(&refs))
                            .await
                            .expect("static documents"),
                    );
                }
            }
        })
    })
}

fn cache_hits(batch: usize, dim: usize) -> Run {
    use embeddings::Embedder;
    use embeddings::cache::{CacheLayer, MemoryStore};
    let rt = fixtures::runtime();
    let e = CacheLayer::memory(fixtures::bare(dim), MemoryStore::new(64 << 20, None));
    let texts: &'static [String] = Box::leak(fixtures::texts(batch).into_boxed_slice());
    let refs = fixtures::refs(texts);
    rt.block_on(e.embed_documents(&refs))
        .expect("mock documents");
    Box::new(move |n| {
        rt.block_on(async {
            for _ in 0..n {
                let rows = e
                    .embed_documents(black_box(&refs))
                    .await
                    .expect("cached documents");
                black_box(rows);
            }
        })
    })
}

/// A provider with OpenAI's limits and token counting (the real OpenAI
/// provider's `count_tokens`/`token_bound`, never called over the network)
/// that answers at once with one-dimensional zero rows and the usage a
/// server reports: the layers' own cost, without HTTP or vectors.
#[derive(Debug)]
struct InstantOpenAi {
    tokens: std::sync::Arc<dyn embeddings::Embedder>,
    info: embeddings::ProviderInfo,
}

#[embeddings::async_trait]
impl embeddings::Embedder for InstantOpenAi {
    fn info(&self) -> &embeddings::ProviderInfo {
        &self.info
    }

    async fn embed(
        &self,
        request: embeddings::EmbedRequest<'_>,
    ) -> embeddings::Result<embeddings::Embeddings> {
        let bytes: usize = request.inputs.iter().map(|t| t.len()).sum();
        let usage = embeddings::Usage::tokens(bytes as u64 / 4);
        // Like the real provider: straight into the batch layer's rows.
        if let Some(sink) = request.sink_for(request.inputs.len(), 1) {
            sink.write(&mut |rows| {
                rows.fill(0.0);
                Ok(())
            })?;
            return Ok(embeddings::Embeddings::empty(1).with_usage(usage));
        }
        Ok(embeddings::Embeddings::zeroed(request.inputs.len(), 1).with_usage(usage))
    }

    async fn health_check(&self) -> embeddings::Result<()> {
        Ok(())
    }

    fn count_tokens(&self, text: &str) -> usize {
        self.tokens.count_tokens(text)
    }

    fn token_bound(&self, bytes: usize) -> usize {
        self.tokens.token_bound(bytes)
    }
}

fn planned(rows: usize, rate_limited: bool) -> Run {
    use embeddings::Embedder;
    let rt = fixtures::runtime();
    let mut config = embeddings::Config::from_toml_str(
        "provider = \"openai\"\nmodel = \"text-embedding-3-small\"\napi_key = \"sk-bench\"\nbase_url = \"http://127.0.0.1:9\"\n",
    )
    .expect("config");
    let tokens = embeddings::registry::build(&config).expect("openai provider");
    let mut info = tokens.info().clone();
    info.dimension = 1;
    let provider = std::sync::Arc::new(InstantOpenAi { tokens, info });
    config.retry.enabled = false;
    config.timeout.per_attempt = None;
    if rate_limited {
        // Far above what the job spends: accounted, never waited for.
        config.rate_limit.tokens_per_minute = Some(u32::MAX);
        config.rate_limit.requests_per_minute = Some(u32::MAX);
    }
    let e = embeddings::layers::apply(provider, &config).expect("layers");
    let texts: &'static [String] = Box::leak(fixtures::texts(rows).into_boxed_slice());
    let refs = fixtures::refs(texts);
    rt.block_on(e.embed_documents(&refs)).expect("warm-up");
    Box::new(move |n| {
        rt.block_on(async {
            for _ in 0..n {
                let rows = e.embed_documents(black_box(&refs)).await.expect("planned");
                black_box(rows);
            }
        })
    })
}

/// The scenario called `name`.
pub fn find(name: &str) -> Option<Scenario> {
    all().into_iter().find(|s| s.name == name)
}

/// How many dimensions of extra work the `slowdown` feature adds to
/// `embed_query/mock/256` (about 10% of the scenario's instructions).
pub const SLOWDOWN_DIMS: usize = 26;

fn query(dim: usize, layered: bool) -> Run {
    let rt = fixtures::runtime();
    let e = if layered {
        fixtures::layered(dim)
    } else {
        fixtures::bare(dim)
    };
    let slow = cfg!(feature = "slowdown") && dim == 256 && !layered;
    let mut scratch = vec![0.0f32; SLOWDOWN_DIMS];
    Box::new(move |n| {
        rt.block_on(async {
            for _ in 0..n {
                let v = e.embed_query(black_box(QUERY)).await.expect("mock query");
                if slow {
                    // The deliberately slower variant: a partial second vector.
                    embeddings::mock::fill_vector(MODEL, QUERY, &mut scratch);
                    black_box(&mut scratch);
                }
                black_box(v);
            }
        })
    })
}

fn documents(batch: usize, dim: usize, layered: bool) -> Run {
    let rt = fixtures::runtime();
    let e = if layered {
        fixtures::layered(dim)
    } else {
        fixtures::bare(dim)
    };
    // Leaked so that the borrowed inputs live as long as the closure; a
    // scenario is prepared once per process.
    let texts: &'static [String] = Box::leak(fixtures::texts(batch).into_boxed_slice());
    let refs = fixtures::refs(texts);
    Box::new(move |n| {
        rt.block_on(async {
            for _ in 0..n {
                let rows = e
                    .embed_documents(black_box(&refs))
                    .await
                    .expect("mock documents");
                black_box(rows);
            }
        })
    })
}
