//! Route names: open, so that every dialect brings its own.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Mutex;

use serde::Deserialize;

/// A route of the fake server, or a group of routes a fault applies to.
///
/// A route is a name: `"openai_embeddings"`, `"ollama_embed"`, or whatever
/// a [`Dialect`](crate::Dialect) declares in its
/// [`routes`](crate::Dialect::routes). As a fault scope
/// ([`Fault::on`](crate::Fault::on)) it may also be [`Route::All`] or the
/// name of a dialect (`"openai"`: every route of that dialect).
///
/// The engine's own: [`Route::All`] and [`Route::NotFound`] (a path no
/// dialect serves). The built-in dialects add constants of theirs
/// (`Route::OpenaiEmbeddings`, `Route::OllamaEmbed`, ...); a dialect in
/// another crate declares its own with [`Route::new`]:
///
/// ```
/// use embeddings_testkit::Route;
/// const TEI_EMBED: Route = Route::new("tei_embed");
/// assert_eq!(TEI_EMBED.as_str(), "tei_embed");
/// assert_eq!(Route::named("tei_embed"), TEI_EMBED);
/// assert_eq!(Route::default(), Route::All);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route(&'static str);

#[allow(non_upper_case_globals)]
impl Route {
    /// Every route (a fault scope; the default).
    pub const All: Route = Route("all");
    /// Any path no mounted dialect serves (answered 404).
    pub const NotFound: Route = Route("not_found");

    /// A route (or dialect) of this name.
    pub const fn new(name: &'static str) -> Route {
        Route(name)
    }

    /// A route of a name known only at run time (from a configuration file);
    /// each distinct name is kept once for the life of the process.
    pub fn named(name: &str) -> Route {
        static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
        let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = names.get(name) {
            return Route(known);
        }
        let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
        names.insert(leaked);
        Route(leaked)
    }

    /// The name, as in the configuration (`"openai_embeddings"`).
    pub const fn as_str(self) -> &'static str {
        self.0
    }
}

impl Default for Route {
    fn default() -> Self {
        Route::All
    }
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Route({})", self.0)
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl<'de> Deserialize<'de> for Route {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        let name = name.trim();
        if name.is_empty() {
            return Err(serde::de::Error::custom("a route name must not be empty"));
        }
        Ok(Route::named(name))
    }
}
