//! Fixtures: how to build provider X against a fake server, so that the
//! conformance suite and the fault matrix run over every provider that has
//! one.
//!
//! A fixture names its provider (as registered), the dialects a fake server
//! for it mounts, the [`Config`] that points the provider at that server,
//! the model and dimension whose §4 vectors come back, the route the fault
//! matrix injects faults on, and what the provider honours on the wire.
//!
//! Fixtures are collected with `inventory`, like providers: a crate
//! registers one with [`register_fixture!`](crate::register_fixture) and
//! [`fixtures`] lists every fixture linked into the binary. The OpenAI and
//! Ollama fixtures live here, next to their dialects; they build their
//! provider through the registry by name, so the testkit depends on no
//! provider crate, and a fixture whose provider is not registered in the
//! binary (its feature off) is left out by [`fixtures_registered`].
//!
//! ```
//! let names: Vec<_> = embeddings_testkit::fixtures().iter().map(|f| f.provider()).collect();
//! assert_eq!(names, ["ollama", "openai"]);
//! ```

use std::fmt::Debug;
use std::sync::Arc;

use embeddings_core::{Config, InputType, OutputType};

use crate::dialect::Dialect;
use crate::server::{FakeServer, FakeServerConfig, Route};

/// How to build one provider against a fake server.
///
/// Implemented by a unit struct (it is registered as a `&'static dyn
/// Fixture`). Every method is cheap and pure.
pub trait Fixture: Debug + Send + Sync + 'static {
    /// The provider's registered name (`"openai"`).
    fn provider(&self) -> &'static str;

    /// The dialects a fake server for this provider mounts (fresh values,
    /// with the dialects' default models).
    fn dialects(&self) -> Vec<Arc<dyn Dialect>>;

    /// The configuration that points the provider at a fake server whose
    /// root is `base_url` (`http://127.0.0.1:PORT`, no trailing slash):
    /// provider, model, dimension, endpoint, key. The layer sections are
    /// left at their defaults for the caller to set.
    fn config(&self, base_url: &str) -> Config;

    /// The model whose DESIGN.md §4 vectors the server answers.
    fn model(&self) -> &'static str;

    /// The dimension of every row.
    fn dimension(&self) -> usize;

    /// The route that embeds (the fault matrix's target).
    fn embedding_route(&self) -> Route;

    /// The input types the provider sends on the wire (its
    /// `ProviderInfo::input_types`); the dialect reads them back into the
    /// request log. Empty: none.
    fn input_types(&self) -> &'static [InputType] {
        &[]
    }

    /// The output types the provider produces natively besides `f32` (its
    /// `ProviderInfo::output_types`).
    fn output_types(&self) -> &'static [OutputType] {
        &[]
    }

    /// Whether the rows on the wire carry their input's index (OpenAI's
    /// `index`): then a shuffled answer must still come back in order and a
    /// duplicated index must be refused. Without one (Ollama) neither can be
    /// detected by any client, and the fault matrix leaves both out.
    fn rows_carry_index(&self) -> bool {
        false
    }

    /// The secret the configuration carries, which no error, log line or
    /// `Debug` output may show.
    fn secret(&self) -> Option<&'static str> {
        None
    }
}

/// One fixture in the `inventory` collection; see [`register_fixture!`](crate::register_fixture).
#[derive(Debug)]
pub struct FixtureRegistration {
    /// The fixture.
    pub fixture: &'static dyn Fixture,
}

embeddings_core::inventory::collect!(FixtureRegistration);

/// Registers a fixture (at item level, in any crate linked into the test):
///
/// ```ignore
/// #[derive(Debug)]
/// pub struct TeiFixture;
/// impl embeddings_testkit::Fixture for TeiFixture { /* ... */ }
/// embeddings_testkit::register_fixture!(TeiFixture);
/// ```
#[macro_export]
macro_rules! register_fixture {
    ($fixture:expr) => {
        $crate::__inventory::submit! {
            $crate::FixtureRegistration { fixture: &$fixture }
        }
    };
}

/// Every fixture linked into this binary, sorted by provider name.
pub fn fixtures() -> Vec<&'static dyn Fixture> {
    let mut v: Vec<&'static dyn Fixture> = embeddings_core::inventory::iter::<FixtureRegistration>
        .into_iter()
        .map(|r| r.fixture)
        .collect();
    v.sort_by_key(|f| f.provider());
    v
}

/// The fixtures whose provider is registered in this binary (the others'
/// provider crates are not linked: their feature is off).
pub fn fixtures_registered() -> Vec<&'static dyn Fixture> {
    fixtures()
        .into_iter()
        .filter(|f| embeddings_core::registry::find(f.provider()).is_ok())
        .collect()
}

/// A fake server of `fixture`'s dialects with the engine settings of
/// `config` (faults, limits, ...; its dialect settings are not used).
pub async fn start_server(
    fixture: &dyn Fixture,
    config: FakeServerConfig,
) -> std::io::Result<FakeServer> {
    FakeServer::builder()
        .config(config)
        .dialects(fixture.dialects())
        .start()
        .await
}
