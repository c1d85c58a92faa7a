//! The checked-in schema and example documents stay true to the types.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::path::Path;

use gateway_core::config::Config;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

#[test]
fn checked_in_schema_matches_the_types() {
    let path = repo().join("config/schema.json");
    let generated = serde_json::to_string_pretty(&Config::json_schema()).unwrap() + "\n";
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "config/schema.json is stale: run `UPDATE_SCHEMA=1 cargo test -p gateway-core --test config_documents`"
    );
}

#[test]
fn every_example_document_is_valid() {
    let mut seen = 0;
    for entry in std::fs::read_dir(repo().join("config/examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) == Some("json") {
            let bytes = std::fs::read(&path).unwrap();
            if let Err(e) = gateway_core::policy::accept(&bytes) {
                panic!("{} is invalid: {e}", path.display());
            }
            seen += 1;
        }
    }
    assert!(seen >= 2, "expected the example documents under config/examples/");
}

#[test]
fn every_cookbook_policy_validates_and_is_in_the_guardrails_example() {
    let example = std::fs::read_to_string(repo().join("config/examples/guardrails.json")).unwrap();
    let example: serde_json::Value = serde_json::from_str(&example).unwrap();
    let mut texts = Vec::new();
    let mut collect = |policies: &serde_json::Value| {
        for p in policies.as_array().into_iter().flatten() {
            texts.push(p["cedar"].as_str().unwrap().to_owned());
        }
    };
    for scope in ["routes", "mcp_servers"] {
        for (_, entry) in example[scope].as_object().unwrap() {
            collect(&entry["policies"]);
        }
    }
    let mut seen = 0;
    for entry in std::fs::read_dir(repo().join("config/examples/policies")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(texts.contains(&text), "{} is not used in config/examples/guardrails.json", path.display());
        seen += 1;
    }
    assert!(seen >= 6, "expected the cookbook under config/examples/policies/");
}
