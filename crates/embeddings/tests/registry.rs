//! The registry holds exactly the providers of the enabled features: this
//! catches the silently empty registry `inventory` gives when a provider
//! crate is not linked.

use embeddings::{ENABLED_PROVIDERS, ErrorKind, KNOWN_PROVIDERS, registered, registry};

#[test]
fn registered_equals_enabled_features() {
    let names: Vec<&str> = registered().iter().map(|r| r.name).collect();
    let mut expected = ENABLED_PROVIDERS.to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected);
}

/// The facade's one provider list (`providers!` in lib.rs) and its Cargo
/// features agree: every feature that enables a provider crate
/// (`crates/provider-*`) is a known provider of the same name, and every
/// known provider is such a feature. No list is kept by hand here.
#[test]
fn every_provider_feature_is_in_the_provider_list() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut provider_crates = Vec::new();
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        let is_provider = dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("provider-"));
        if is_provider {
            let manifest: toml::Table =
                toml::from_str(&std::fs::read_to_string(dir.join("Cargo.toml")).unwrap()).unwrap();
            provider_crates.push(manifest["package"]["name"].as_str().unwrap().to_owned());
        }
    }
    let facade: toml::Table = toml::from_str(include_str!("../Cargo.toml")).unwrap();
    let mut provider_features = Vec::new();
    for (feature, enables) in facade["features"].as_table().unwrap() {
        let enables: Vec<&str> = enables
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        if enables
            .iter()
            .any(|e| provider_crates.iter().any(|c| *e == format!("dep:{c}")))
        {
            provider_features.push(feature.as_str());
        }
    }
    provider_features.sort_unstable();
    let mut known = KNOWN_PROVIDERS.to_vec();
    known.sort_unstable();
    assert_eq!(provider_features, known);
    assert!(provider_crates.len() >= known.len(), "{provider_crates:?}");
}

#[test]
fn a_section_of_a_provider_this_build_lacks_names_the_feature() {
    let disabled: Vec<&&str> = KNOWN_PROVIDERS
        .iter()
        .filter(|p| !ENABLED_PROVIDERS.contains(p))
        .collect();
    for p in disabled {
        let config = embeddings::Config::from_toml_str(&format!("[{p}]\nx = 1")).unwrap();
        let err = embeddings::from_config(&config).unwrap_err();
        assert!(err.message().contains(&format!("`{p}` feature")), "{err}");
    }
    let config = embeddings::Config::from_toml_str("[nonesuch]\nx = 1").unwrap();
    let err = embeddings::from_config(&config).unwrap_err();
    assert!(
        err.message().contains("unknown config section [nonesuch]"),
        "{err}"
    );
    assert!(err.message().contains("batch"), "layers are listed: {err}");
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
