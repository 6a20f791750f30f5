//! Input types, output types, error ranges and discovered limits, end to end
//! through every layer of the stack.

use std::sync::{Arc, Mutex, OnceLock};

use embeddings::layers::{self, StreamOptions, embed_iter};
use embeddings::mock::{MockEmbedder, MockFaults, RecordedCall, vector};
use embeddings::{
    Config, EmbedRequest, Embedder, Embeddings, ErrorKind, InputType, OutputType, OverLengthPolicy,
    ProviderInfo, Result, async_trait,
};
use futures::StreamExt;

const DIM: usize = 16;

fn recording(faults: MockFaults) -> (Arc<dyn Embedder>, Arc<Mutex<Vec<RecordedCall>>>) {
    let (mock, log) = MockEmbedder::new("mock", DIM)
        .unwrap()
        .with_faults(faults)
        .unwrap()
        .with_recorder();
    (Arc::new(mock), log)
}

fn config() -> Config {
    let mut c = Config::for_provider("mock");
    c.retry.jitter = false;
    c.retry.initial_backoff = std::time::Duration::from_millis(1);
    c.retry.max_backoff = std::time::Duration::from_millis(1);
    c
}

fn quantized(text: &str, t: OutputType) -> Embeddings {
    Embeddings::from_flat(vector("mock", text, DIM), DIM)
        .unwrap()
        .quantized(t)
        .unwrap()
}

#[tokio::test]
async fn a_query_stays_a_query_through_batching_chunking_and_retries() {
    let (mock, log) = recording(MockFaults {
        fail_on_calls: vec![1],
        max_input_tokens: Some(4),
        ..MockFaults::default()
    });
    let mut c = config();
    c.batch.over_length = OverLengthPolicy::Chunk;
    let e = layers::apply(mock, &c).unwrap();
    // 40 bytes = 10 estimated tokens > 4: chunked into pieces, each sent as a query.
    let long = "a query of far more than four tokens!!!!";
    let v = e.embed_query(long).await.unwrap();
    assert_eq!(v.len(), DIM);
    let short = e.embed_query("cats").await.unwrap();
    assert_eq!(short, vector("mock", "cats", DIM));
    let calls = log.lock().unwrap().clone();
    // The first call failed (simulated) and was retried: at least 3 calls.
    assert!(calls.len() >= 3, "{calls:?}");
    assert!(
        calls.iter().all(|c| c.input_type == InputType::Query),
        "{calls:?}"
    );
    // The chunked pieces cover the text, and token counts travelled with them.
    assert!(calls[0].inputs.len() > 1 && calls[0].had_token_counts);
    assert_eq!(calls[0].inputs.concat(), long);
}

#[tokio::test]
async fn every_input_type_reaches_the_provider_through_the_full_stack() {
    let (mock, log) = recording(MockFaults::default());
    let mut c = config();
    c.batch.max_batch_size = Some(2);
    let e = layers::apply(mock, &c).unwrap();
    let texts = ["a", "b", "c"];
    for t in InputType::ALL {
        let rows = e
            .embed(EmbedRequest::new(&texts).with_input_type(t))
            .await
            .unwrap();
        assert_eq!(rows.row(2), vector("mock", "c", DIM).as_slice());
    }
    let calls = log.lock().unwrap();
    assert_eq!(calls.len(), 2 * InputType::ALL.len());
    for (i, t) in InputType::ALL.iter().enumerate() {
        assert_eq!(calls[2 * i].input_type, *t);
        assert_eq!(calls[2 * i + 1].input_type, *t);
    }
}

#[tokio::test]
async fn the_stream_carries_its_input_and_output_types() {
    let (mock, log) = recording(MockFaults::default());
    let e = layers::apply(mock, &config()).unwrap();
    let texts: Vec<String> = (0..7).map(|i| format!("line {i}")).collect();
    let options = StreamOptions::default()
        .batch_size(3)
        .input_type(InputType::Query)
        .output_type(OutputType::Ubinary);
    let mut batches = embed_iter(e, texts.clone(), options);
    let mut n = 0;
    while let Some(b) = batches.next().await {
        let (range, rows) = b.unwrap();
        for (i, at) in range.enumerate() {
            assert_eq!(
                rows.row_ref(i),
                quantized(&texts[at], OutputType::Ubinary).row_ref(0)
            );
            n += 1;
        }
    }
    assert_eq!(n, 7);
    assert!(
        log.lock()
            .unwrap()
            .iter()
            .all(|c| c.input_type == InputType::Query && c.output_type == OutputType::Ubinary)
    );
}

#[tokio::test]
async fn every_output_type_through_the_stack_is_the_quantised_design_vector() {
    let (mock, _) = recording(MockFaults::default());
    let mut c = config();
    c.batch.max_batch_size = Some(2);
    let e = layers::apply(mock, &c).unwrap();
    let texts = ["hello", "déjà vu 🌍", "", "three"];
    for t in OutputType::ALL {
        let rows = e
            .embed(EmbedRequest::new(&texts).with_output_type(t))
            .await
            .unwrap();
        assert_eq!((rows.len(), rows.output_type()), (4, t));
        for (i, text) in texts.iter().enumerate() {
            assert_eq!(
                rows.row_ref(i),
                quantized(text, t).row_ref(0),
                "{t} row {i}"
            );
        }
    }
}

/// A provider that produces only f32, learns its batch limit in `prepare`
/// (as a server advertising it would), and records request sizes.
#[derive(Debug)]
struct Advertising {
    configured: ProviderInfo,
    learned: OnceLock<ProviderInfo>,
    sizes: Mutex<Vec<usize>>,
    prepared: Mutex<u32>,
}

impl Advertising {
    fn new() -> Self {
        Advertising {
            configured: ProviderInfo::new("advertising", "mock", DIM),
            learned: OnceLock::new(),
            sizes: Mutex::new(Vec::new()),
            prepared: Mutex::new(0),
        }
    }
}

#[async_trait]
impl Embedder for Advertising {
    fn info(&self) -> &ProviderInfo {
        self.learned.get().unwrap_or(&self.configured)
    }
    async fn prepare(&self) -> Result<()> {
        *self.prepared.lock().unwrap() += 1;
        let mut info = self.configured.clone();
        info.max_batch_size = 4;
        let _ = self.learned.set(info);
        Ok(())
    }
    async fn embed(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
        self.info().check_output_type(&request)?;
        let max = self.info().max_batch_size;
        if request.inputs.len() > max {
            return Err(embeddings::Error::invalid_input(format!(
                "{} inputs; the server's limit is {max} (HTTP 413)",
                request.inputs.len()
            )));
        }
        self.sizes.lock().unwrap().push(request.inputs.len());
        Embeddings::from_rows(DIM, request.inputs.iter().map(|t| vector("mock", t, DIM)))
    }
    async fn health_check(&self) -> Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_batch_limit_the_server_advertises_is_honoured_from_the_first_call() {
    let provider = Arc::new(Advertising::new());
    let e = layers::apply(provider.clone(), &config()).unwrap();
    assert_eq!(e.info().max_batch_size, 2048, "not learned before prepare");
    let texts: Vec<String> = (0..10).map(|i| format!("text {i}")).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let rows = e.embed_documents(&refs).await.unwrap();
    for (i, t) in refs.iter().enumerate() {
        assert_eq!(rows.row(i), vector("mock", t, DIM).as_slice());
    }
    assert_eq!(*provider.sizes.lock().unwrap(), [4, 4, 2]);
    assert_eq!(e.info().max_batch_size, 4);
    e.embed_documents(&refs).await.unwrap();
    assert_eq!(*provider.prepared.lock().unwrap(), 1, "discovery runs once");
}

#[tokio::test]
async fn binary_is_computed_for_an_f32_provider_and_int8_is_refused_by_name() {
    for batch in [true, false] {
        let mut c = config();
        c.batch.enabled = batch;
        let e = layers::apply(Arc::new(Advertising::new()), &c).unwrap();
        let texts = ["hello", "world", "x"];
        for t in [OutputType::Binary, OutputType::Ubinary] {
            let rows = e
                .embed(EmbedRequest::new(&texts).with_output_type(t))
                .await
                .unwrap();
            for (i, text) in texts.iter().enumerate() {
                assert_eq!(rows.row_ref(i), quantized(text, t).row_ref(0));
            }
        }
        for t in [OutputType::Int8, OutputType::Uint8] {
            let err = e
                .embed(EmbedRequest::new(&texts).with_output_type(t))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
            assert!(
                err.message().contains("advertising") && err.message().contains(t.as_str()),
                "{err}"
            );
        }
    }
}

#[tokio::test]
async fn errors_name_the_callers_inputs() {
    // Requests of 2; the second request fails for good.
    let (mock, _) = recording(MockFaults {
        fail_on_calls: vec![2],
        error_kind: "invalid_input".into(),
        ..MockFaults::default()
    });
    let mut c = config();
    c.batch.max_batch_size = Some(2);
    c.batch.concurrency = Some(1);
    let e = layers::apply(mock, &c).unwrap();
    let err = e
        .embed_documents(&["a", "b", "c", "d", "e"])
        .await
        .unwrap_err();
    assert_eq!(err.inputs(), Some(2..4), "{err}");

    // An over-long input is named by its own index.
    let (mock, _) = recording(MockFaults {
        max_input_tokens: Some(2),
        ..MockFaults::default()
    });
    let e = layers::apply(mock, &config()).unwrap();
    let err = e
        .embed_documents(&["ok", "far too long for two tokens", "ok"])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ContextLengthExceeded);
    assert_eq!(err.inputs(), Some(1..2), "{err}");
}

#[tokio::test]
async fn prompts_apply_per_input_type_before_the_provider() {
    let (mock, log) = recording(MockFaults::default());
    let mut c = config();
    c.sections.insert(
        "prompts".into(),
        serde_json::json!({"query": "search_query: ", "document": "search_document: "}),
    );
    let e = layers::apply(mock, &c).unwrap();
    let q = e.embed_query("cats").await.unwrap();
    assert_eq!(q, vector("mock", "search_query: cats", DIM));
    let d = e.embed_documents(&["dogs"]).await.unwrap();
    assert_eq!(
        d.row(0),
        vector("mock", "search_document: dogs", DIM).as_slice()
    );
    let s = e
        .embed(EmbedRequest::new(&["birds"]).with_input_type(InputType::Similarity))
        .await
        .unwrap();
    assert_eq!(
        s.row(0),
        vector("mock", "birds", DIM).as_slice(),
        "no prompt configured"
    );
    assert_eq!(log.lock().unwrap()[0].inputs, ["search_query: cats"]);
    // A bad key in the section is named.
    c.sections
        .insert("prompts".into(), serde_json::json!({"qurey": "x"}));
    let (mock, _) = recording(MockFaults::default());
    let err = layers::apply(mock, &c).unwrap_err();
    assert!(err.to_string().contains("qurey"), "{err}");
}

/// A provider that counts how often its tokenizer runs.
#[derive(Debug)]
struct CountsTokens {
    info: ProviderInfo,
    counted: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl Embedder for CountsTokens {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }
    fn count_tokens(&self, text: &str) -> usize {
        self.counted
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        text.len().div_ceil(4)
    }
    async fn embed(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
        Embeddings::from_rows(DIM, request.inputs.iter().map(|t| vector("mock", t, DIM)))
    }
    async fn health_check(&self) -> Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn texts_that_fit_by_their_byte_length_are_never_tokenized() {
    let mut info = ProviderInfo::new("counts", "mock", DIM);
    info.max_batch_size = 4;
    info.max_input_tokens = 100;
    info.max_batch_tokens = 1000;
    let provider = Arc::new(CountsTokens {
        info,
        counted: Default::default(),
    });
    let e = layers::apply(provider.clone(), &config()).unwrap();
    let texts: Vec<String> = (0..10).map(|i| format!("short text {i}")).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let rows = e.embed_documents(&refs).await.unwrap();
    assert_eq!(rows.row(9), vector("mock", "short text 9", DIM).as_slice());
    e.embed_query("one short query").await.unwrap();
    let counted = || provider.counted.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(counted(), 0, "nothing needed a count");
    // A text longer than the limit in bytes must be counted: here its 75
    // tokens fit the limit of 100, so it is embedded whole.
    let long = "x".repeat(300);
    let rows = e.embed_documents(&["a", &long]).await.unwrap();
    assert_eq!(rows.row(1), vector("mock", &long, DIM).as_slice());
    assert!(counted() > 0);
}
