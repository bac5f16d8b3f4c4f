//! `schemas/*.schema.json` and `schemas/openapi.json` are generated from the Rust types and committed;
//! these tests fail when they are stale. `TRELLIS_UPDATE_SCHEMAS=1 cargo test --workspace schemas`
//! rewrites them.

use std::path::PathBuf;

fn schemas_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas"))
}

fn check_or_update(file: &str, value: &serde_json::Value) -> Option<String> {
    let path = schemas_dir().join(file);
    let expected = serde_json::to_string_pretty(value).unwrap() + "\n";
    if std::env::var("TRELLIS_UPDATE_SCHEMAS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &expected).unwrap();
        return None;
    }
    match std::fs::read_to_string(&path) {
        Ok(actual) if actual == expected => None,
        Ok(_) => Some(format!("{} is stale", path.display())),
        Err(_) => Some(format!("{} is missing", path.display())),
    }
}

#[test]
fn metadata_schemas_are_fresh() {
    let stale: Vec<String> = trellis_runtime::apps::metadata_schemas()
        .iter()
        .filter_map(|(name, schema)| check_or_update(&format!("{name}.schema.json"), schema))
        .collect();
    assert!(
        stale.is_empty(),
        "{}\nrun: TRELLIS_UPDATE_SCHEMAS=1 cargo test --workspace schemas",
        stale.join("\n")
    );
}

#[test]
fn openapi_document_is_fresh() {
    let document = trellis_server::openapi_document();
    if let Some(problem) = check_or_update("openapi.json", &document) {
        panic!("{problem}\nrun: TRELLIS_UPDATE_SCHEMAS=1 cargo test --workspace schemas");
    }
}

#[test]
fn generated_schemas_are_valid_json_schema_and_accept_the_gallery() {
    for (name, schema) in trellis_runtime::apps::metadata_schemas() {
        jsonschema::draft202012::meta::validate(&schema).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../templates-gallery/clm/trellis.json"
        ))
        .unwrap(),
    )
    .unwrap();
    assert!(trellis_model::schemas::validate_against("manifest", &manifest).is_empty());
    let broken = serde_json::json!({"format_version": 1, "id": "Bad", "version": "x"});
    let found = trellis_model::schemas::validate_against("manifest", &broken);
    let pointers: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
    assert!(
        pointers.contains(&"/id") && pointers.contains(&"/version"),
        "{found:?}"
    );
}
