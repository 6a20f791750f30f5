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

/// Validates `config`, finds its provider and builds it (without layers).
pub fn build(config: &Config) -> Result<Arc<dyn Embedder>> {
    config.validate()?;
    let reg = find(&config.provider)?;
    (reg.build)(config)
}
