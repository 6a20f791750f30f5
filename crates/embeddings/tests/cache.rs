//! The cache layer through the facade: registered from the `cache` feature,
//! configured by `[cache]`, in its place in the stack, over every provider
//! (the conformance suite twice: the second run costs no request).

#![cfg(all(feature = "cache", feature = "mock"))]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use embeddings::layers;
use embeddings::mock::{MockEmbedder, vector};
use embeddings::{
    Config, EmbedRequest, Embedder, Embeddings, InputType, Result, Wrapper, async_trait,
};

/// Counts requests and inputs that reach the provider.
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn Embedder>,
    requests: AtomicUsize,
    log: std::sync::Mutex<Vec<usize>>,
}

#[async_trait]
impl Wrapper for Counting {
    fn inner(&self) -> &dyn Embedder {
        &*self.inner
    }
    async fn embed(&self, request: EmbedRequest<'_>) -> Result<Embeddings> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.log.lock().unwrap().push(request.inputs.len());
        self.inner.embed(request).await
    }
}

fn counting(dim: usize) -> Arc<Counting> {
    Arc::new(Counting {
        inner: Arc::new(MockEmbedder::new("mock", dim).unwrap()),
        requests: AtomicUsize::new(0),
        log: std::sync::Mutex::new(Vec::new()),
    })
}

fn check(rows: &Embeddings, texts: &[&str], dim: usize) {
    assert_eq!(rows.len(), texts.len());
    for (i, t) in texts.iter().enumerate() {
        let want = vector("mock", t, dim);
        assert!(
            rows.row(i)
                .iter()
                .zip(&want)
                .all(|(a, b)| (a - b).abs() <= 1e-5),
            "row {i}"
        );
    }
}

#[test]
fn the_cache_layer_is_registered_between_prompts_and_batch() {
    let names: Vec<_> = layers::registered_layers()
        .map(|l| (l.name, l.position))
        .collect();
    let at = |n: &str| names.iter().position(|(name, _)| *name == n).unwrap();
    assert!(
        at("prompts") < at("cache") && at("cache") < at("batch"),
        "{names:?}"
    );
    assert_eq!(names[at("cache")].1, 600);
}

#[tokio::test]
async fn a_memory_cache_from_toml_serves_a_rerun_without_requests_and_batches_only_misses() {
    let config = Config::from_toml_str(
        "provider = \"mock\"\ndimensions = 16\n[batch]\nmax_batch_size = 2\n[cache]\nstore = \"memory\"\nmax_bytes = \"16MiB\"\n",
    )
    .unwrap();
    embeddings::check_sections(&config).unwrap();
    let mock = counting(16);
    let e = layers::apply(mock.clone(), &config).unwrap();
    let texts = ["a", "b", "c", "d", "e"];
    check(&e.embed_documents(&texts).await.unwrap(), &texts, 16);
    assert_eq!(
        mock.requests.load(Ordering::SeqCst),
        3,
        "the batch layer is below the cache"
    );
    let again = e.embed_documents(&texts).await.unwrap();
    check(&again, &texts, 16);
    assert_eq!(again.usage().unwrap().cached_rows, 5);
    assert_eq!(mock.requests.load(Ordering::SeqCst), 3);
    // Three new texts among old ones: only they go down, batched by 2.
    let mixed = ["a", "x", "b", "y", "z"];
    check(&e.embed_documents(&mixed).await.unwrap(), &mixed, 16);
    assert_eq!(mock.log.lock().unwrap()[3..], [2, 1]);
    // A query is cached apart from a document.
    let q = e
        .embed(EmbedRequest::new(&["a"]).with_input_type(InputType::Query))
        .await
        .unwrap();
    assert_eq!(q.usage().unwrap().cached_rows, 0);
}

#[tokio::test]
async fn a_disk_cache_from_config_survives_a_rebuild() {
    let dir = tempfile_dir();
    let toml = format!(
        "provider = \"mock\"\ndimensions = 32\n[cache]\nstore = \"disk\"\npath = {:?}\n",
        dir.to_string_lossy()
    );
    let config = Config::from_toml_str(&toml).unwrap();
    let texts: Vec<String> = (0..300).map(|i| format!("doc {i}")).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    {
        let e = embeddings::from_config(&config).unwrap();
        check(&e.embed_documents(&refs).await.unwrap(), &refs, 32);
    }
    let mock = counting(32);
    let e = layers::apply(mock.clone(), &config).unwrap();
    let rows = e.embed_documents(&refs).await.unwrap();
    check(&rows, &refs, 32);
    assert_eq!(rows.usage().unwrap().cached_rows, 300);
    assert_eq!(mock.requests.load(Ordering::SeqCst), 0);
    drop(e);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_cache_key_is_an_error_naming_it() {
    for (section, key) in [
        ("colour = 1", "colour"),
        ("store = \"disk\"", "cache.path"),
        ("max_bytes = \"lots\"", "cache.max_bytes"),
    ] {
        let config = Config::from_toml_str(&format!("[cache]\n{section}\n")).unwrap();
        let err = embeddings::from_config(&config).unwrap_err();
        assert!(err.message().contains(key), "{section}: {err}");
    }
    // A password in the URL is never echoed.
    let config = Config::from_toml_str("[cache]\nurl = \"redis://:hunter2@[bad\"\n").unwrap();
    let err = embeddings::from_config(&config).unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

fn tempfile_dir() -> std::path::PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "embeddings-cache-facade-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[cfg(feature = "openai")]
#[tokio::test]
async fn openai_through_the_fake_server_conforms_and_a_rerun_makes_no_request() {
    use embeddings_testkit::conformance::{self, Expectations};
    let server = embeddings_testkit::FakeServer::start(Default::default())
        .await
        .unwrap();
    let dir = tempfile_dir();
    let toml = format!(
        "provider = \"openai\"\nmodel = \"text-embedding-3-small\"\ndimensions = 64\nbase_url = {:?}\napi_key = \"sk-test\"\n[cache]\nstore = \"disk\"\npath = {:?}\nmemory_bytes = \"8MiB\"\n",
        server.openai_base_url(),
        dir.to_string_lossy()
    );
    let e = embeddings::from_config(&Config::from_toml_str(&toml).unwrap()).unwrap();
    let expect = Expectations::deterministic("text-embedding-3-small", 64);
    conformance::run_all(e.as_ref(), &expect).await;
    let first = server.stats().requests;
    assert!(first > 0);
    server.reset_log();
    conformance::run_all(e.as_ref(), &expect).await;
    // OpenAI refuses an empty string: an error is never cached, so that
    // one request is made again; every row was a hit.
    let again: Vec<_> = server
        .requests()
        .into_iter()
        .map(|r| r.body["input"].clone())
        .collect();
    assert_eq!(
        again,
        vec![serde_json::json!([""])],
        "the second run is all hits"
    );
    assert_eq!(server.stats().requests, first + 1);
    drop(e);
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(feature = "ollama")]
#[tokio::test]
async fn ollama_through_the_fake_server_conforms_and_a_rerun_makes_no_request() {
    use embeddings_testkit::conformance::{self, Expectations};
    let server = embeddings_testkit::FakeServer::start(Default::default())
        .await
        .unwrap();
    let toml = format!(
        "provider = \"ollama\"\nmodel = \"all-minilm\"\nbase_url = {:?}\n[cache]\nstore = \"memory\"\n",
        server.addr().to_string()
    );
    let e = embeddings::from_config(&Config::from_toml_str(&toml).unwrap()).unwrap();
    let expect = Expectations::deterministic("all-minilm", 384);
    conformance::run_all(e.as_ref(), &expect).await;
    let first = server.stats().requests;
    conformance::run_all(e.as_ref(), &expect).await;
    assert_eq!(server.stats().requests, first, "the second run is all hits");
}
