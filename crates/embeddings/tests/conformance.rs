//! The conformance suite over every provider that has a testkit fixture
//! (each against a fake server of its own dialects), bare and through the
//! full layer stack of `embeddings::from_config`; the mock's output types
//! through the layers; and a batch limit learned by `prepare()` honoured by
//! the layers.
//!
//! `cargo test -p embeddings --features full --test conformance`

#![cfg(feature = "mock")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use embeddings::{
    Config, EmbedRequest, Embedder, Embeddings, InputType, OutputType, ProviderInfo, Result,
    async_trait,
};
use embeddings_testkit::conformance::{self, Expectations};
use embeddings_testkit::{FakeServerConfig, Fixture, fixture};

/// Providers that run in this process and so need no fake server (nor fixture).
const IN_PROCESS: &[&str] = &["mock", "local", "static"];

fn fixtures() -> Vec<&'static dyn Fixture> {
    fixture::fixtures_registered()
}

#[test]
fn every_registered_network_provider_has_a_fixture() {
    let with_fixture: Vec<&str> = fixtures().iter().map(|f| f.provider()).collect();
    let missing: Vec<&str> = embeddings::registered()
        .iter()
        .map(|r| r.name)
        .filter(|n| !IN_PROCESS.contains(n) && !with_fixture.contains(n))
        .collect();
    assert!(
        missing.is_empty(),
        "providers without a testkit fixture (so without the conformance suite and the fault \
         matrix; see docs/providers.md): {missing:?}"
    );
    #[cfg(feature = "openai")]
    assert!(with_fixture.contains(&"openai"));
    #[cfg(feature = "ollama")]
    assert!(with_fixture.contains(&"ollama"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_over_every_fixture_bare() {
    for f in fixtures() {
        let server = fixture::start_server(f, FakeServerConfig::default())
            .await
            .unwrap();
        let provider = embeddings::registry::build(&f.config(&server.base_url())).unwrap();
        conformance::run_fixture(provider.as_ref(), f, &server, false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_over_every_fixture_through_the_layers() {
    for f in fixtures() {
        let server = fixture::start_server(f, FakeServerConfig::default())
            .await
            .unwrap();
        let mut config = f.config(&server.base_url());
        // Small sub-batches, so that the batch layer really splits and reassembles.
        config.batch.max_batch_size = Some(7);
        let layered = embeddings::from_config(&config).unwrap();
        conformance::run_fixture(layered.as_ref(), f, &server, true).await;
        // The layers split by 7: no request on the wire carried more.
        let largest = server
            .requests()
            .iter()
            .filter(|r| r.route == f.embedding_route())
            .filter_map(|r| r.inputs)
            .max();
        assert!(
            largest.is_some_and(|n| n <= 7),
            "{}: largest request {largest:?}",
            f.provider()
        );
    }
}

#[tokio::test]
async fn mock_honours_every_output_type_bare_and_through_the_layers() {
    let bare = embeddings::registry::build(&Config::for_provider("mock")).unwrap();
    let expect = Expectations::deterministic("mock", 128);
    conformance::run_all(bare.as_ref(), &expect.clone().packs_binary(false)).await;
    let mut config = Config::for_provider("mock");
    config.batch.max_batch_size = Some(2);
    let layered = embeddings::from_config(&config).unwrap();
    conformance::run_all(layered.as_ref(), &expect.packs_binary(true)).await;
    // One by hand: ubinary through the layers is the packed §4 vector.
    let e = layered
        .embed(EmbedRequest::query(&["hello"]).with_output_type(OutputType::Ubinary))
        .await
        .unwrap();
    let v = embeddings::mock::vector("mock", "hello", 128);
    let mut bits = vec![0u8; 16];
    embeddings::quantize::pack_bits(&v, &mut bits);
    assert_eq!(e.as_u8(), Some(&bits[..]));
}

/// A provider that learns its batch limit (4) in `prepare()`, as TEI's
/// `/info` or Ollama's `/api/show` tell theirs, and refuses more: it
/// records the largest request it was sent.
#[derive(Debug)]
struct AdvertisesFour {
    before: ProviderInfo,
    after: OnceLock<ProviderInfo>,
    prepared: AtomicUsize,
    largest: AtomicUsize,
    requests: AtomicUsize,
}

impl AdvertisesFour {
    fn new() -> Self {
        AdvertisesFour {
            before: ProviderInfo::new("advertises-four", "mock", 16),
            after: OnceLock::new(),
            prepared: AtomicUsize::new(0),
            largest: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
        }
    }
}

#[async_trait]
impl Embedder for AdvertisesFour {
    fn info(&self) -> &ProviderInfo {
        self.after.get().unwrap_or(&self.before)
    }

    async fn prepare(&self) -> Result<()> {
        self.prepared.fetch_add(1, Ordering::Relaxed);
        let mut info = self.before.clone();
        info.max_batch_size = 4;
        let _ = self.after.set(info);
        Ok(())
    }

    async fn embed(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
        self.info().check_output_type(&request)?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.largest
            .fetch_max(request.inputs.len(), Ordering::Relaxed);
        if request.inputs.len() > 4 {
            return Err(embeddings::Error::invalid_input(format!(
                "HTTP 413: {} inputs, the server takes 4",
                request.inputs.len()
            )));
        }
        let flat = request
            .inputs
            .iter()
            .flat_map(|t| embeddings::mock::vector("mock", t, 16))
            .collect();
        Embeddings::from_flat(flat, 16)
    }

    async fn health_check(&self) -> Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_batch_limit_learned_by_prepare_is_honoured_through_the_layers() {
    let provider = Arc::new(AdvertisesFour::new());
    assert_eq!(
        provider.info().max_batch_size,
        2048,
        "unknown before discovery"
    );
    let layered =
        embeddings::layers::apply(provider.clone(), &Config::for_provider("advertises-four"))
            .unwrap();
    let texts: Vec<String> = (0..37).map(|i| format!("text {i}")).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    // The very first call: nothing but the layers called prepare().
    let rows = layered
        .embed(EmbedRequest::new(&refs).with_input_type(InputType::Query))
        .await
        .unwrap();
    conformance::check_rows(&rows, "mock", &refs);
    assert_eq!(provider.largest.load(Ordering::Relaxed), 4);
    assert_eq!(provider.requests.load(Ordering::Relaxed), 10);
    assert!(provider.prepared.load(Ordering::Relaxed) >= 1);
    // The whole suite through the layers, and packed types too.
    conformance::run_all(
        layered.as_ref(),
        &Expectations::deterministic("mock", 16).packs_binary(true),
    )
    .await;
    assert_eq!(provider.largest.load(Ordering::Relaxed), 4);
}
