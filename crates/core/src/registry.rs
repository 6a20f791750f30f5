//! The provider registry: each provider crate `inventory::submit!`s a
//! [`ProviderRegistration`]; lookups are by case-insensitive name.
//!
//! Caveat: rustc does not link a crate nothing references, and its
//! registrations then silently vanish. The `embeddings` facade references
//! every enabled provider crate, and tests there assert that
//! [`registered`] lists exactly the enabled providers.

use std::sync::Arc;

use crate::config::Config;
use crate::embedder::Embedder;
use crate::error::{Error, ErrorKind, Result};

/// Builds a provider from the configuration (no layers around it).
pub type BuildFn = fn(&Config) -> Result<Arc<dyn Embedder>>;

/// One provider's entry in the registry.
#[derive(Debug)]
pub struct ProviderRegistration {
    /// The name users select it by (lower case by convention).
    pub name: &'static str,
    /// One line for `embed providers`.
    pub description: &'static str,
    /// Builds the bare provider from a validated configuration.
    pub build: BuildFn,
}

inventory::collect!(ProviderRegistration);

/// Registers a provider (in the provider crate, at item level):
///
/// ```ignore
/// embeddings_core::register_provider! {
///     name: "mock",
///     description: "deterministic in-process vectors",
///     build: |config| Ok(std::sync::Arc::new(MockEmbedder::from_config(config)?)),
/// }
/// ```
///
/// The crate is then linked (and so registered) by its one `pub use` line in
/// the `embeddings` facade.
#[macro_export]
macro_rules! register_provider {
    (name: $name:expr, description: $description:expr, build: $build:expr $(,)?) => {
        $crate::inventory::submit! {
            $crate::registry::ProviderRegistration {
                name: $name,
                description: $description,
                build: $build,
            }
        }
    };
}

/// Wraps `inner` in the configured layer, or gives `inner` back when the
/// configuration (or the provider, by its `info()`: an in-process model needs
/// no adaptive rate limit) leaves the layer off.
pub type LayerBuildFn = fn(&Config, Arc<dyn Embedder>) -> Result<Arc<dyn Embedder>>;

/// A layer the configuration can switch on: its section name, its place in
/// the stack and how to build it. The facade's [`layers::apply`] stacks every
/// registered layer by `position` (larger = further out), so a crate adds a
/// layer (the cache, say) without editing core's `Config` or the facade.
///
/// Positions of the built-in layers (DESIGN.md §3): timeout 100,
/// concurrency 200, rate limit 300, retry 400, batch 500, (cache 600),
/// prompts 700, user layers of `EmbedderBuilder::layer` 800, instrument 900.
///
/// [`layers::apply`]: https://docs.rs/embeddings/latest/embeddings/layers/fn.apply.html
#[derive(Debug)]
pub struct LayerRegistration {
    /// The layer's name, which is also its config section (`[cache]`).
    pub name: &'static str,
    /// One line of documentation.
    pub description: &'static str,
    /// Its place in the stack: larger is further out.
    pub position: u32,
    /// Builds it from the configuration.
    pub build: LayerBuildFn,
}

inventory::collect!(LayerRegistration);

/// Every registered layer, outermost first (sorted once per process).
pub fn layers() -> &'static [&'static LayerRegistration] {
    static ORDER: std::sync::OnceLock<Vec<&'static LayerRegistration>> = std::sync::OnceLock::new();
    ORDER.get_or_init(|| {
        let mut v: Vec<_> = inventory::iter::<LayerRegistration>.into_iter().collect();
        v.sort_by(|a, b| b.position.cmp(&a.position).then(a.name.cmp(b.name)));
        v
    })
}

/// Registers a layer (at item level):
///
/// ```ignore
/// embeddings_core::register_layer! {
///     name: "cache",
///     description: "per-row cache of vectors",
///     position: 600,
///     build: |config, inner| CacheLayer::wrap(config, inner),
/// }
/// ```
#[macro_export]
macro_rules! register_layer {
    (name: $name:expr, description: $description:expr, position: $position:expr, build: $build:expr $(,)?) => {
        $crate::inventory::submit! {
            $crate::registry::LayerRegistration {
                name: $name,
                description: $description,
                position: $position,
                build: $build,
            }
        }
    };
}

/// Every registered provider, sorted by name.
pub fn registered() -> Vec<&'static ProviderRegistration> {
    let mut v: Vec<_> = inventory::iter::<ProviderRegistration>
        .into_iter()
        .collect();
    v.sort_by(|a, b| a.name.cmp(b.name));
    v
}

/// Finds a provider by case-insensitive name; the error lists the registered ones.
pub fn find(name: &str) -> Result<&'static ProviderRegistration> {
    let name = name.trim();
    inventory::iter::<ProviderRegistration>
        .into_iter()
        .find(|r| r.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| not_found(name))
}

fn not_found(name: &str) -> Error {
    let names: Vec<_> = registered().iter().map(|r| r.name).collect();
    let list = if names.is_empty() {
        "none (enable a provider feature of the `embeddings` crate)".to_owned()
    } else {
        names.join(", ")
    };
    Error::new(
        ErrorKind::ProviderNotFound,
        format!("no provider named {name:?}; registered providers: {list}"),
    )
}

/// Finds a registered layer by its (case-insensitive) section name.
pub fn find_layer(name: &str) -> Option<&'static LayerRegistration> {
    layers()
        .iter()
        .copied()
        .find(|l| l.name.eq_ignore_ascii_case(name))
}

/// Validates `config`, finds its provider and builds it (without layers).
pub fn build(config: &Config) -> Result<Arc<dyn Embedder>> {
    config.validate()?;
    let reg = find(&config.provider)?;
    (reg.build)(config)
}
