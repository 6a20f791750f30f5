//! The registry holds exactly the providers of the enabled features: this
//! catches the silently empty registry `inventory` gives when a provider
//! crate is not linked.

use embeddings::{ENABLED_PROVIDERS, ErrorKind, registered, registry};

#[test]
fn registered_equals_enabled_features() {
    let names: Vec<&str> = registered().iter().map(|r| r.name).collect();
    let mut expected = ENABLED_PROVIDERS.to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected);
    let mut by_feature = Vec::new();
    if cfg!(feature = "mock") {
        by_feature.push("mock");
    }
    if cfg!(feature = "ollama") {
        by_feature.push("ollama");
    }
    if cfg!(feature = "openai") {
        by_feature.push("openai");
    }
    assert_eq!(names, by_feature);
}

#[test]
fn lookup_is_case_insensitive_and_unknown_names_list_the_registered() {
    for name in ENABLED_PROVIDERS {
        assert_eq!(registry::find(&name.to_uppercase()).unwrap().name, *name);
    }
    let err = registry::find("nosuch").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ProviderNotFound);
    for name in ENABLED_PROVIDERS {
        assert!(err.message().contains(name), "{err}");
    }
    assert!(err.message().contains("\"nosuch\""), "{err}");
}
